"""Uploads: the network's own input shape in PNG, JPEG or .npy, and one clear line for anything else."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from hgen_ray.serve.images import ImageError, decode_image, png_data_url

GREY = (1, 28, 28)
PIXELS = (np.arange(28 * 28) % 256).astype(np.uint8).reshape(28, 28)


def _encoded(picture: Image.Image, kind: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    picture.save(buffer, format=kind)
    return buffer.getvalue()


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=True)
    return buffer.getvalue()


def test_a_png_and_an_npy_of_the_same_pixels_decode_alike() -> None:
    from_png = decode_image(_encoded(Image.fromarray(PIXELS)), GREY, 10_000)
    from_npy = decode_image(_npy(PIXELS), GREY, 10_000)
    assert from_png.shape == GREY and from_png.dtype == np.float32
    assert np.array_equal(from_png, from_npy)
    assert from_png.max() == pytest.approx(255 / 255) and from_png.min() == 0.0


def test_a_jpeg_decodes_near_its_pixels() -> None:
    decoded = decode_image(_encoded(Image.fromarray(PIXELS), "JPEG"), GREY, 10_000)
    assert np.abs(decoded - PIXELS / 255.0).mean() < 0.1


@pytest.mark.parametrize("body, names", [
    (b"", "empty"),
    (b"GIF89a....", "not an image"),
    (b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, "not a decodable PNG or JPEG"),
    (_encoded(Image.fromarray(np.zeros((32, 32), np.uint8))), "32x32"),
    (_encoded(Image.fromarray(np.zeros((28, 28, 3), np.uint8))), "mode RGB"),
    (_npy(np.zeros((3, 28, 28), np.float32)), "shape (3, 28, 28)"),
    (_npy(np.full((28, 28), 2.0, np.float32)), "outside [0, 1]"),
    (_npy(np.full((28, 28), None, dtype=object)), "not a readable .npy"),  # a pickle inside is never loaded
    (b"\x89PNG\r\n\x1a\n" + b"\x00" * 20_000, "at most 10000"),
])
def test_what_the_network_cannot_take_gets_one_line_naming_what_is_allowed(body: bytes, names: str) -> None:
    with pytest.raises(ImageError) as refused:
        decode_image(body, GREY, 10_000)
    message = str(refused.value)
    assert names in message and "allowed:" in message and "\n" not in message


def test_a_huge_declared_picture_is_refused_before_its_pixels_are_decoded() -> None:
    header_only = _encoded(Image.new("L", (20_000, 20_000)))  # compresses to little; decoding would be 400 MB
    with pytest.raises(ImageError, match="DecompressionBombError|20000x20000"):  # Pillow's guard, else our size check
        decode_image(header_only, GREY, len(header_only) + 1)


def test_the_page_s_data_url_round_trips_the_pixels() -> None:
    import base64

    image = PIXELS[None].astype(np.float32) / 255.0
    url = png_data_url(image)
    assert url.startswith("data:image/png;base64,")
    back = np.asarray(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))))
    assert np.array_equal(back, PIXELS)


def test_an_array_header_declaring_a_huge_shape_is_refused_before_anything_is_allocated() -> None:
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False,
                                                  "shape": (100_000, 100_000)})  # 40 GB, if it were believed
    with pytest.raises(ImageError, match=r"shape \(100000, 100000\)"):
        decode_image(header.getvalue() + b"\x00" * 64, GREY, 10_000)
