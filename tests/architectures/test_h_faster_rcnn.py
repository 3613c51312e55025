"""H-Faster-RCNN: human boxes enter as proposals, edge maps, compressed models rebuild."""

from __future__ import annotations

import torch
from torch import nn

from hgen_ray.compress.svd import factorize_linear
from hgen_ray.data.detection_splits import DetectionData
from hgen_ray.architectures.h_faster_rcnn.network import build_h_faster_rcnn, rebuild_h_faster_rcnn, sobel_edges


def test_edges_are_zero_on_flat_images_and_strong_on_item_borders() -> None:
    image = torch.zeros(1, 1, 16, 16)
    image[..., 4:12, 4:12] = 1.0
    edges = sobel_edges(image)[0, 0]
    assert edges[0, 0] == 0 and edges[8, 8] == 0
    assert edges[8, 4] >= 2.0  # a unit step seen by the 1-2-1 Sobel kernel


def test_true_boxes_as_proposals_recover_items_the_rpn_missed(trained_frcnn: nn.Module,
                                                            detection_data: DetectionData) -> None:
    test = detection_data.challenges.sets["fog"]  # the base detector is weakest here
    model = trained_frcnn
    plain = model.detect(test.images)
    helped = model.detect(test.images, [boxes for boxes in test.boxes])
    recalled = lambda found: sum(  # noqa: E731
        int(((torch.cdist(f["boxes"][:, :2], t[:, :2]) < 3).any(0)).sum()) for f, t in zip(found, test.boxes))
    assert recalled(helped) > recalled(plain)


def test_a_compressed_detector_rebuilds_from_its_state_dict(detection_data: DetectionData) -> None:
    model = build_h_faster_rcnn(96, (8, 12, 16)).eval()
    head = model.roi_heads.box_head
    head.fc6 = factorize_linear(head.fc6, 10)  # type: ignore[assignment]
    rebuilt = rebuild_h_faster_rcnn(model.state_dict(), 96)
    canvases = detection_data.splits.val.images[:3]
    for a, b in zip(rebuilt.detect(canvases), model.detect(canvases)):
        assert torch.equal(a["boxes"], b["boxes"]) and torch.equal(a["labels"], b["labels"])
