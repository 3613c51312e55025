"""Uploads to ``/v1/predict``: a PNG, a JPEG or a NumPy ``.npy`` array, checked before anything decodes far.

Only the formats named are opened (by their magic bytes), the body is size-capped before decoding, the
size (pixels, or a .npy's shape) is read from the header before anything else is, and every decoder
error becomes one line.
The image must already be the network's input: its height, width and channels, so nothing is resized
behind the caller's back.
"""

from __future__ import annotations

import base64
import io

import numpy as np
from PIL import Image

__all__ = ["ImageError", "decode_image", "png_data_url"]

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
JPEG_MAGIC = b"\xff\xd8\xff"
NPY_MAGIC = b"\x93NUMPY"
MODES = {1: "L", 3: "RGB"}  # channels -> the Pillow mode that holds them


class ImageError(ValueError):
    """An upload that is not an image the network takes; the message is one line naming what is allowed."""


def _allowed(shape: tuple[int, ...]) -> str:
    channels, height, width = shape
    kind = "greyscale" if channels == 1 else "RGB"
    return (f"a {width}x{height} {kind} PNG or JPEG, or a .npy array of shape ({height}, {width}) or "
            f"({channels}, {height}, {width}), uint8 or float in [0, 1]")


def _from_picture(body: bytes, shape: tuple[int, ...]) -> np.ndarray:
    channels, height, width = shape
    try:
        with Image.open(io.BytesIO(body)) as picture:
            if picture.size != (width, height):  # read from the header, before any pixel is decoded
                raise ImageError(f"the image is {picture.size[0]}x{picture.size[1]}; allowed: {_allowed(shape)}")
            if picture.mode != MODES.get(channels):
                raise ImageError(f"the image is in mode {picture.mode}; allowed: {_allowed(shape)}")
            pixels = np.asarray(picture.convert(MODES[channels]), dtype=np.float32) / 255.0
    except ImageError:
        raise
    except Exception as error:  # Pillow raises many kinds for a damaged file; each means "not decodable"
        raise ImageError(f"the body is not a decodable PNG or JPEG ({type(error).__name__}); "
                         f"allowed: {_allowed(shape)}") from None
    return pixels[None] if channels == 1 else pixels.transpose(2, 0, 1)


def _declared_shape(body: bytes) -> tuple[int, ...]:
    """The shape a .npy header declares, read before any array is allocated."""
    stream = io.BytesIO(body)
    version = np.lib.format.read_magic(stream)
    declared, _, _ = (np.lib.format.read_array_header_1_0(stream) if version == (1, 0)
                      else np.lib.format.read_array_header_2_0(stream))
    return tuple(declared)


def _from_array(body: bytes, shape: tuple[int, ...]) -> np.ndarray:
    try:
        declared = _declared_shape(body)
        if declared not in (shape, shape[1:] if shape[0] == 1 else shape):
            raise ImageError(f"the array has shape {declared}; allowed: {_allowed(shape)}")
        array = np.load(io.BytesIO(body), allow_pickle=False)  # never unpickle an upload
    except ImageError:
        raise
    except Exception as error:
        raise ImageError(f"the body is not a readable .npy array ({type(error).__name__}); "
                         f"allowed: {_allowed(shape)}") from None
    array = array.reshape(shape)
    if array.dtype == np.uint8:
        return array.astype(np.float32) / 255.0
    if array.dtype.kind != "f" or not np.all(np.isfinite(array)) or array.min() < 0 or array.max() > 1:
        raise ImageError(f"the array is {array.dtype} with values outside [0, 1] or not finite; "
                         f"allowed: {_allowed(shape)}")
    return array.astype(np.float32)


def decode_image(body: bytes, shape: tuple[int, ...], max_bytes: int) -> np.ndarray:
    """One float32 image ``[C, H, W]`` in ``[0, 1]``.

    Args:
        body: The request body.
        shape: The network's input: channels, height, width.
        max_bytes: The largest body accepted.

    Raises:
        ImageError: The body is empty, too large, of another format, size or channel count, or damaged.
    """
    if not body:
        raise ImageError(f"the body is empty; allowed: {_allowed(shape)}")
    if len(body) > max_bytes:
        raise ImageError(f"the body is {len(body)} bytes; allowed: at most {max_bytes} (serve.max_upload_bytes)")
    if body.startswith(NPY_MAGIC):
        return _from_array(body, shape)
    if body.startswith(PNG_MAGIC) or body.startswith(JPEG_MAGIC):
        return _from_picture(body, shape)
    raise ImageError(f"the body is not an image; allowed: {_allowed(shape)}")


def png_data_url(image: np.ndarray) -> str:
    """A ``[C, H, W]`` float image in ``[0, 1]`` as a ``data:`` URL the people page shows without another fetch."""
    pixels = np.clip(np.rint(image * 255.0), 0, 255).astype(np.uint8)
    picture = Image.fromarray(pixels[0] if pixels.shape[0] == 1 else pixels.transpose(1, 2, 0))
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()
