"""H-Faster-RCNN: torchvision's Faster R-CNN on a small backbone, plus boxes drawn by people.

The main path is DESIGN.md's: input, conv x3, RoI, fc, output. The backbone
(three conv blocks, stride 8) and the two-fc box head are small and trained
from scratch; no pretrained weights are downloaded. Images are never resized
(``min_size = max_size`` = the canvas side), so boxes stay in canvas pixels.

The human side path: for an image whose best detection score is below tau, a
person draws boxes on its Sobel edge map, and those boxes join the RPN's
proposals into the RoI head (:meth:`HFasterRCNN.detect`). Since a person
vouched that each holds an item, the head only names its class (background
left out) and the drawn box is kept; per-class NMS then merges them with the
network's own detections.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn
from torchvision.models.detection import FasterRCNN
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.models.detection.rpn import AnchorGenerator
from torchvision.ops import MultiScaleRoIAlign, batched_nms

from hgen_ray.architectures.h_cnn.network import FASHION_MNIST_MEAN, FASHION_MNIST_STD, NUM_CLASSES

__all__ = ["FRCNN_COMPRESSIBLE_LAYERS", "HFasterRCNN", "SmallBackbone", "build_h_faster_rcnn", "faster_rcnn_loss",
           "rebuild_h_faster_rcnn", "sobel_edges", "unsure_images"]

BACKBONE_CHANNELS = (16, 32, 64)
BOX_HEAD_UNITS = 128  # fc6 and fc7 width (torchvision's default, 1024, is for ImageNet backbones)
ANCHOR_SIDES_PX = ((12, 24, 40),)  # items are 10-40 px on a 96 px canvas
ANCHOR_RATIOS = ((0.5, 1.0, 2.0),)
ROI_SIDE = 7
# Proposal budgets far below torchvision's COCO defaults (2000 / 1000): a canvas holds at most 8 items.
RPN_PRE_NMS_TRAIN, RPN_POST_NMS_TRAIN = 300, 100
RPN_PRE_NMS_TEST, RPN_POST_NMS_TEST = 150, 50
SAMPLES_PER_IMAGE = 64  # anchors and RoIs sampled per image for the losses
SCORE_FLOOR = 0.01  # detections below this never matter for mAP@0.5
MAX_DETECTIONS = 20
NMS_IOU = 0.5  # torchvision's default for the box head

# The backbone's last conv feeds the RPN and the box head, so pruning it would
# need surgery outside the backbone; conv1 and conv2 are pruned, fc6 and fc7 factorised.
FRCNN_COMPRESSIBLE_LAYERS: dict[str, str] = {"backbone.conv1": "conv", "backbone.conv2": "conv",
                                             "roi_heads.box_head.fc6": "fc", "roi_heads.box_head.fc7": "fc"}
SPEEDUP_MODULE = "backbone"  # tracing the whole detector fails (data-dependent control flow); this part traces


class SmallBackbone(nn.Module):
    """conv-bn-relu-pool x3: stride 8, ``out_channels`` as torchvision expects."""

    def __init__(self, channels: tuple[int, int, int] = BACKBONE_CHANNELS) -> None:
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(1, channels[0], 3, padding=1), nn.BatchNorm2d(channels[0])
        self.conv2, self.bn2 = nn.Conv2d(channels[0], channels[1], 3, padding=1), nn.BatchNorm2d(channels[1])
        self.conv3, self.bn3 = nn.Conv2d(channels[1], channels[2], 3, padding=1), nn.BatchNorm2d(channels[2])
        self.out_channels = channels[2]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.max_pool2d(torch.relu(self.bn1(self.conv1(x))), 2)
        x = torch.max_pool2d(torch.relu(self.bn2(self.conv2(x))), 2)
        return torch.max_pool2d(torch.relu(self.bn3(self.conv3(x))), 2)


class HFasterRCNN(FasterRCNN):
    """Faster R-CNN whose :meth:`detect` also takes people's boxes as extra, vouched-for proposals."""

    @torch.no_grad()
    def detect(self, images: torch.Tensor, extra_proposals: list[torch.Tensor] | None = None
               ) -> list[dict[str, torch.Tensor]]:
        """Detections per image for a float batch ``[N, 1, S, S]``, labels 0-9 as in the data.

        Args:
            images: Canvases in ``[0, 1]``.
            extra_proposals: Per image, ``[k, 4]`` boxes (canvas pixels) people drew.
        """
        self.eval()
        batch = list(images)
        sizes = [tuple(image.shape[-2:]) for image in batch]
        transformed, _ = self.transform(batch)
        features = self.backbone(transformed.tensors)
        feature_maps = {"0": features}
        proposals, _ = self.rpn(transformed, feature_maps)
        detections, _ = self.roi_heads(feature_maps, proposals, transformed.image_sizes)
        if extra_proposals is not None:
            vouched = self._name_vouched_boxes(feature_maps, extra_proposals, transformed.image_sizes)
            detections = [_merged(found, named) for found, named in zip(detections, vouched)]
        found = self.transform.postprocess(detections, transformed.image_sizes, sizes)  # type: ignore[arg-type]
        return [{**d, "labels": d["labels"] - 1} for d in found]  # torchvision's class 0 is background

    def _name_vouched_boxes(self, feature_maps: dict[str, torch.Tensor], boxes: list[torch.Tensor],
                            image_sizes: list[tuple[int, int]]) -> list[dict[str, torch.Tensor]]:
        """Run people's boxes through the RoI head as proposals a person vouched for.

        A person said "an item is here", so the head only names the class: its
        softmax over the item classes, background left out, and the drawn box is kept.
        """
        boxes = [b.to(feature_maps["0"]).reshape(-1, 4) for b in boxes]
        pooled = self.roi_heads.box_roi_pool(feature_maps, boxes, image_sizes)
        class_logits, _ = self.roi_heads.box_predictor(self.roi_heads.box_head(pooled))
        score, label = torch.softmax(class_logits[:, 1:], 1).max(1)
        named = []
        for image_boxes, image_scores, image_labels in zip(boxes, score.split([len(b) for b in boxes]),
                                                            (label + 1).split([len(b) for b in boxes])):
            named.append({"boxes": image_boxes, "scores": image_scores, "labels": image_labels})
        return named


def unsure_images(detections: list[dict[str, torch.Tensor]], tau: float) -> torch.Tensor:
    """The gate: images whose best detection score is below ``tau`` (no detection counts as 0) go to people."""
    best = torch.tensor([float(d["scores"].max()) if len(d["scores"]) else 0.0 for d in detections])
    return best < tau


def _merged(found: dict[str, torch.Tensor], named: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The network's and the people's detections of one image, after per-class NMS."""
    merged = {key: torch.cat([found[key], named[key]]) for key in ("boxes", "scores", "labels")}
    keep = batched_nms(merged["boxes"], merged["scores"], merged["labels"], NMS_IOU)[:MAX_DETECTIONS]
    return {key: value[keep] for key, value in merged.items()}


def build_h_faster_rcnn(canvas_side: int, channels: tuple[int, int, int] = BACKBONE_CHANNELS,
                        fc_units: tuple[int, int] = (BOX_HEAD_UNITS, BOX_HEAD_UNITS)) -> HFasterRCNN:
    """A freshly initialised H-Faster-RCNN for ``canvas_side`` px greyscale canvases."""
    backbone = SmallBackbone(channels)
    box_head = TwoMLPHead(channels[2] * ROI_SIDE**2, fc_units[0])
    if fc_units[1] != fc_units[0]:
        box_head.fc7 = nn.Linear(fc_units[0], fc_units[1])
    return HFasterRCNN(
        backbone, min_size=canvas_side, max_size=canvas_side, image_mean=[FASHION_MNIST_MEAN], image_std=[FASHION_MNIST_STD],
        rpn_anchor_generator=AnchorGenerator(ANCHOR_SIDES_PX, ANCHOR_RATIOS),
        box_roi_pool=MultiScaleRoIAlign(["0"], ROI_SIDE, sampling_ratio=2),
        box_head=box_head, box_predictor=FastRCNNPredictor(fc_units[1], NUM_CLASSES + 1),  # class 0 is background
        rpn_pre_nms_top_n_train=RPN_PRE_NMS_TRAIN, rpn_post_nms_top_n_train=RPN_POST_NMS_TRAIN,
        rpn_pre_nms_top_n_test=RPN_PRE_NMS_TEST, rpn_post_nms_top_n_test=RPN_POST_NMS_TEST,
        rpn_batch_size_per_image=SAMPLES_PER_IMAGE, box_batch_size_per_image=SAMPLES_PER_IMAGE,
        box_score_thresh=SCORE_FLOOR, box_detections_per_img=MAX_DETECTIONS,
    )


def faster_rcnn_loss(model: HFasterRCNN, images: torch.Tensor, targets: list[dict[str, torch.Tensor]]) -> torch.Tensor:
    """The sum of torchvision's four losses; our labels 0-9 become 1-10 (0 is background)."""
    shifted = [{"boxes": t["boxes"].to(images.device), "labels": t["labels"].to(images.device) + 1} for t in targets]
    return sum(model(list(images), shifted).values())  # type: ignore[return-value]


def _linear_or_factorised(state_dict: Mapping[str, torch.Tensor], name: str) -> tuple[nn.Module, int]:
    if f"{name}.0.weight" in state_dict:
        rank, in_features = state_dict[f"{name}.0.weight"].shape
        out_features = state_dict[f"{name}.1.weight"].shape[0]
        return nn.Sequential(nn.Linear(in_features, rank, bias=False), nn.Linear(rank, out_features)), out_features
    out_features, in_features = state_dict[f"{name}.weight"].shape
    return nn.Linear(in_features, out_features), out_features


def rebuild_h_faster_rcnn(state_dict: Mapping[str, torch.Tensor], canvas_side: int) -> HFasterRCNN:
    """An H-Faster-RCNN shaped like ``state_dict`` (pruned backbone, factorised fc6/fc7).

    Raises:
        KeyError: The state dict is not an H-Faster-RCNN's.
    """
    channels = tuple(state_dict[f"backbone.conv{i}.weight"].shape[0] for i in range(1, 4))
    model = build_h_faster_rcnn(canvas_side, channels)  # type: ignore[arg-type]
    head = model.roi_heads.box_head
    head.fc6, fc6_units = _linear_or_factorised(state_dict, "roi_heads.box_head.fc6")
    head.fc7, fc7_units = _linear_or_factorised(state_dict, "roi_heads.box_head.fc7")
    model.roi_heads.box_predictor = FastRCNNPredictor(fc7_units, NUM_CLASSES + 1)
    model.load_state_dict(state_dict)
    return model.eval()


def sobel_edges(images: torch.Tensor) -> torch.Tensor:
    """Gradient magnitude of ``[N, 1, H, W]`` images: the map a person draws boxes on."""
    kx = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])
    kernels = torch.stack([kx, kx.T])[:, None]
    gradients = nn.functional.conv2d(nn.functional.pad(images, [1] * 4, mode="replicate"), kernels)
    return gradients.square().sum(1, keepdim=True).sqrt()
