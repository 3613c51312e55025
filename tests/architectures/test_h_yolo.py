"""H-YOLO: cell targets and decoding agree, people's answers touch only their cells, SVD'd heads rebuild."""

from __future__ import annotations

import torch
from torch import nn

from hgen_ray.architectures import get_architecture
from hgen_ray.compress.svd import factorize_pointwise_conv
from hgen_ray.data.detection_splits import DetectionData
from hgen_ray.architectures.h_yolo.network import (
    GRID_STRIDE,
    CellVerdicts,
    HYolo,
    apply_cell_answers,
    cell_targets,
    decode_cells,
    rebuild_h_yolo,
)

SIDE = 96
GRID = SIDE // GRID_STRIDE


def _target(boxes: list[list[float]], labels: list[int]) -> dict[str, torch.Tensor]:
    return {"boxes": torch.tensor(boxes), "labels": torch.tensor(labels)}


def _perfect_output(targets: list[dict[str, torch.Tensor]]) -> torch.Tensor:
    """Logits whose decoding is exactly the targets: the inverse of decode_cells."""
    has_item, boxes, classes = cell_targets(targets, GRID, SIDE)
    output = torch.full((len(targets), 15, GRID, GRID), -30.0)
    output[:, 0] = torch.where(has_item.bool(), 30.0, -30.0)
    output[:, 1:5] = torch.logit(boxes.clamp(1e-6, 1 - 1e-6))
    output[:, 5:].scatter_(1, classes[:, None], 30.0)
    return output


def test_an_item_belongs_to_the_cell_holding_its_box_centre() -> None:
    target = _target([[10.0, 20.0, 30.0, 44.0]], [7])  # centre (20, 32): column 2, row 4
    has_item, boxes, classes = cell_targets([target], GRID, SIDE)
    assert torch.nonzero(has_item[0]).tolist() == [[4, 2]]
    assert classes[0, 4, 2] == 7
    assert torch.allclose(boxes[0, :, 4, 2], torch.tensor([0.5, 0.0, 20 / SIDE, 24 / SIDE]))


def test_decoding_perfect_cell_predictions_gives_back_the_true_boxes() -> None:
    targets = [_target([[10.0, 20.0, 30.0, 44.0], [50.0, 5.0, 90.0, 33.0]], [7, 2]), _target([[0.0, 80.0, 12.0, 96.0]], [0])]
    for detections, target in zip(decode_cells(_perfect_output(targets), SIDE), targets):
        order = torch.argsort(detections["boxes"][:, 0])
        assert torch.allclose(detections["boxes"][order], target["boxes"], atol=1e-3)
        assert detections["labels"][order].tolist() == target["labels"].tolist()
        assert torch.allclose(detections["scores"], torch.ones(len(target["labels"])))


def test_people_change_only_the_cells_they_checked() -> None:
    output = torch.randn(3, 15, GRID, GRID)
    verdicts = CellVerdicts({(0, 1, 1): (True, 4), (2, 5, 7): (False, 0)})
    edited = apply_cell_answers(output, verdicts)
    changed = (edited != output).any(1)
    assert torch.nonzero(changed).tolist() == [[0, 1, 1], [2, 5, 7]]
    confirmed = decode_cells(edited[:1], SIDE)[0]
    best = confirmed["scores"].argmax()
    assert confirmed["labels"][best] == 4 and confirmed["scores"][best] > 0.999


def test_a_factorised_head_rebuilds_from_its_state_dict() -> None:
    model = HYolo((8, 12, 16, 20), 32).eval()
    model.head1 = factorize_pointwise_conv(model.head1, 5)  # type: ignore[arg-type]
    rebuilt = rebuild_h_yolo(model.state_dict())
    canvases = torch.rand(2, 1, SIDE, SIDE)
    assert torch.equal(rebuilt(canvases), model(canvases))


def test_the_base_detector_learns_from_a_few_hundred_canvases(trained_yolo: nn.Module,
                                                              detection_data: DetectionData) -> None:
    # untrained it is ~0.0; two epochs on 400 canvases already find items
    assert get_architecture("h_yolo").map50(trained_yolo, detection_data.splits.val) > 0.02  # type: ignore[attr-defined]
