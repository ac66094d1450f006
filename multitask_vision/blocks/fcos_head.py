"""``FCOSLiteHead``: a native anchor-free detection head in the style of FCOS (Tian et al. 2019).

Coordinates: boxes are (x1, y1, x2, y2) float pixels. Ground truth and training targets are in
network-input pixels (images are top-left aligned in the padded batch, so these equal
resized-image pixels); predictions are written in ORIGINAL image pixels.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from mmengine.structures import InstanceData
from torch import nn
from torchvision.ops import batched_nms, generalized_box_iou_loss, sigmoid_focal_loss

from multitask_vision.blocks._common import conv_norm_act, feature_list, samples_with, zero_loss
from multitask_vision.blocks.base import NativeHead
from multitask_vision.registry import BLOCKS

__all__ = ["FCOSLiteHead"]

#: forward() output: (cls_scores, bbox_preds, centernesses), one tuple entry per level.
FCOSOutputs = tuple[tuple[torch.Tensor, ...], tuple[torch.Tensor, ...], tuple[torch.Tensor, ...]]


def default_regress_ranges(strides: Sequence[int]) -> tuple[tuple[float, float], ...]:
    """FCOS's ranges of max(l, t, r, b) per level: boundaries at 8 x stride, open at both ends.

    Strides (8, 16, 32, 64, 128) give ((-1, 64), (64, 128), (128, 256), (256, 512), (512, inf)).
    """
    bounds = [-1.0] + [8.0 * s for s in strides[:-1]] + [math.inf]
    return tuple(zip(bounds[:-1], bounds[1:], strict=True))


def level_points(
    sizes: Sequence[tuple[int, int]], strides: Sequence[int], device: torch.device
) -> list[torch.Tensor]:
    """Centres of the feature-map cells: per level Tensor[h * w, 2] (x, y) input pixels.

    Cell (i, j) of a stride-s map has its point at ((j + 0.5) s, (i + 0.5) s), row-major, matching
    ``Tensor[B, C, h, w].permute(0, 2, 3, 1).reshape(B, h * w, C)``.
    """
    points = []
    for (h, w), s in zip(sizes, strides, strict=True):
        ys = (torch.arange(h, device=device, dtype=torch.float32) + 0.5) * s
        xs = (torch.arange(w, device=device, dtype=torch.float32) + 0.5) * s
        yy, xx = torch.meshgrid(ys, xs, indexing="ij")
        points.append(torch.stack([xx.reshape(-1), yy.reshape(-1)], dim=1))
    return points


def distance_to_boxes(points: torch.Tensor, ltrb: torch.Tensor) -> torch.Tensor:
    """Points Tensor[P, 2] (x, y) and distances Tensor[P, 4] (l, t, r, b) -> boxes Tensor[P, 4]."""
    return torch.cat([points - ltrb[:, :2], points + ltrb[:, 2:]], dim=1)


def centerness_target(ltrb: torch.Tensor) -> torch.Tensor:
    """FCOS centre-ness sqrt(min(l,r)/max(l,r) * min(t,b)/max(t,b)) of Tensor[P, 4] -> [P]."""
    lr, tb = ltrb[:, [0, 2]], ltrb[:, [1, 3]]
    ratio = (lr.min(-1).values / lr.max(-1).values) * (tb.min(-1).values / tb.max(-1).values)
    return ratio.clamp(min=0).sqrt()


@BLOCKS.register_module()
class FCOSLiteHead(NativeHead):
    """FCOS-style dense detection head shared across pyramid levels.

    Per level: ``stacked_convs`` conv-norm-ReLU layers in a classification tower and in a
    regression tower, then a 3x3 classifier (``num_classes`` sigmoid logits), a 3x3 box
    regressor (distances to the four sides, ``relu(scale_l * x) * stride`` input pixels, one
    learnable scale per level) and a 3x3 centre-ness logit on the regression tower (FCOS v2).
    Targets: a point is positive for the smallest-area ground truth box whose centre region
    (``center_sample_radius`` x stride, clipped to the box) contains it and whose max(l, t, r, b)
    lies in the level's regress range. Losses: sigmoid focal loss over all points / number of
    positives; GIoU over positives weighted by their centre-ness target; centre-ness BCE over
    positives. Samples without ``gt_instances`` (other tasks' datasets) are left out of the loss;
    samples with zero boxes are all-negative. ``ignored_instances`` are not used.

    forward(feats) -> ``(cls_scores, bbox_preds, centernesses)``, each a tuple over levels of
    Tensor[B, num_classes, h, w] logits, Tensor[B, 4, h, w] (l, t, r, b) distances in input
    pixels, Tensor[B, 1, h, w] logits. ``loss`` and ``predict`` take that tuple.

    Args:
        num_classes: number of object classes (no background class).
        in_channels: channels of every input level (all equal, e.g. the FPN's out_channels).
        strides: stride of every input level, fine to coarse.
        feat_channels: channels of the towers.
        stacked_convs: conv layers per tower.
        regress_ranges: per level (min, max) of max(l, t, r, b) in input pixels; default
            :func:`default_regress_ranges` (boundaries at 8 x stride).
        norm: ``'GN'`` (FCOS), ``'BN'`` (foldable into the convs for deployment; statistics
            shared across levels) or None.
        num_groups: GroupNorm groups (must divide ``feat_channels``).
        center_sampling: positives only near box centres (FCOS v2) instead of the whole box.
        center_sample_radius: centre region half-size in strides.
        focal_alpha, focal_gamma: focal loss parameters.
        loss_weights: multipliers of ``loss_cls``, ``loss_bbox``, ``loss_centerness``.
        prior_prob: initial foreground probability of the classifier.
        score_thr: predictions keep points whose class probability exceeds this (before the
            centre-ness factor).
        nms_pre: at most this many candidates per level before NMS.
        iou_threshold: class-wise NMS IoU threshold.
        max_per_img: at most this many detections per image.

    Example config (FPN levels 1..4 at strides 8..64)::

        dict(name='det_head', type='FCOSLiteHead', inputs=['fpn.1', 'fpn.2', 'fpn.3', 'fpn.4'],
             args=dict(num_classes=20, in_channels=64, feat_channels=64, stacked_convs=2,
                       strides=(8, 16, 32, 64)))
    """

    task = "detection"
    pred_field = "pred_instances"

    def __init__(
        self,
        num_classes: int,
        in_channels: int,
        strides: Sequence[int] = (8, 16, 32, 64, 128),
        feat_channels: int = 256,
        stacked_convs: int = 4,
        regress_ranges: Sequence[Sequence[float]] | None = None,
        norm: str | None = "GN",
        num_groups: int = 32,
        center_sampling: bool = True,
        center_sample_radius: float = 1.5,
        focal_alpha: float = 0.25,
        focal_gamma: float = 2.0,
        loss_weights: dict[str, float] | None = None,
        prior_prob: float = 0.01,
        score_thr: float = 0.05,
        nms_pre: int = 1000,
        iou_threshold: float = 0.5,
        max_per_img: int = 100,
    ):
        super().__init__()
        if not isinstance(in_channels, int):
            raise ValueError(
                f"FCOSLiteHead: in_channels must be one int (all levels share the head), got "
                f"{in_channels!r}"
            )
        self.num_classes = num_classes
        self.strides = tuple(int(s) for s in strides)
        ranges = default_regress_ranges(self.strides) if regress_ranges is None else regress_ranges
        if len(ranges) != len(self.strides):
            raise ValueError(
                f"FCOSLiteHead: {len(ranges)} regress_ranges for {len(self.strides)} strides "
                f"{self.strides}"
            )
        self.regress_ranges = tuple((float(lo), float(hi)) for lo, hi in ranges)
        weights = {"cls": 1.0, "bbox": 1.0, "centerness": 1.0}
        if loss_weights:
            unknown = set(loss_weights) - set(weights)
            if unknown:
                raise ValueError(
                    f"FCOSLiteHead: unknown loss_weights keys {sorted(unknown)}; "
                    f"valid: {sorted(weights)}"
                )
            weights.update(loss_weights)
        self.loss_weights = weights
        self.center_sampling = center_sampling
        self.center_sample_radius = center_sample_radius
        self.focal_alpha = focal_alpha
        self.focal_gamma = focal_gamma
        self.score_thr = score_thr
        self.nms_pre = nms_pre
        self.iou_threshold = iou_threshold
        self.max_per_img = max_per_img

        def tower() -> nn.Sequential:
            return nn.Sequential(
                *(
                    conv_norm_act(
                        in_channels if i == 0 else feat_channels,
                        feat_channels,
                        3,
                        norm,
                        num_groups,
                        owner="FCOSLiteHead",
                    )
                    for i in range(stacked_convs)
                )
            )

        self.cls_convs = tower()
        self.reg_convs = tower()
        last = feat_channels if stacked_convs > 0 else in_channels
        self.conv_cls = nn.Conv2d(last, num_classes, 3, padding=1)
        self.conv_reg = nn.Conv2d(last, 4, 3, padding=1)
        self.conv_centerness = nn.Conv2d(last, 1, 3, padding=1)
        self.scales = nn.Parameter(torch.ones(len(self.strides)))

        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, std=0.01)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        nn.init.constant_(self.conv_cls.bias, -math.log((1 - prior_prob) / prior_prob))

    def forward(self, *inputs) -> FCOSOutputs:
        """Feature maps Tensor[B, in_channels, h_l, w_l] per level -> ``FCOSOutputs``."""
        feats = feature_list(inputs)
        if len(feats) != len(self.strides):
            raise ValueError(
                f"FCOSLiteHead got {len(feats)} feature maps for {len(self.strides)} strides "
                f"{self.strides}"
            )
        cls_scores, bbox_preds, centernesses = [], [], []
        for level, (x, stride) in enumerate(zip(feats, self.strides, strict=True)):
            cls_feat = self.cls_convs(x)
            reg_feat = self.reg_convs(x)
            cls_scores.append(self.conv_cls(cls_feat))
            bbox_preds.append(F.relu(self.scales[level] * self.conv_reg(reg_feat)) * stride)
            centernesses.append(self.conv_centerness(reg_feat))
        return tuple(cls_scores), tuple(bbox_preds), tuple(centernesses)

    # -- training ------------------------------------------------------------------------------

    @torch.no_grad()
    def get_targets(
        self, points: list[torch.Tensor], gt_bboxes: torch.Tensor, gt_labels: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Targets of one image over the points of all levels.

        Args:
            points: per level Tensor[P_l, 2] (x, y) input pixels (see :func:`level_points`).
            gt_bboxes: Tensor[N, 4] (x1, y1, x2, y2) input pixels; N may be 0.
            gt_labels: Tensor[N] int64 in [0, num_classes).

        Returns:
            labels: Tensor[P] int64, ``num_classes`` = background.
            bbox_targets: Tensor[P, 4] (l, t, r, b) input pixels (0 for background).
        """
        pts = torch.cat(points)
        num_points = pts.shape[0]
        if gt_bboxes.shape[0] == 0:
            return (
                pts.new_full((num_points,), self.num_classes, dtype=torch.long),
                pts.new_zeros((num_points, 4)),
            )
        gt = gt_bboxes.to(pts)
        strides = torch.cat(
            [pts.new_full((len(p),), float(s)) for p, s in zip(points, self.strides, strict=True)]
        )
        ranges = torch.cat(
            [
                pts.new_tensor(r).expand(len(p), 2)
                for p, r in zip(points, self.regress_ranges, strict=True)
            ]
        )
        xs, ys = pts[:, 0:1], pts[:, 1:2]  # [P, 1]
        ltrb = torch.stack([xs - gt[:, 0], ys - gt[:, 1], gt[:, 2] - xs, gt[:, 3] - ys], -1)
        if self.center_sampling:
            cx, cy = (gt[:, 0] + gt[:, 2]) / 2, (gt[:, 1] + gt[:, 3]) / 2
            r = strides[:, None] * self.center_sample_radius
            x1, y1 = torch.maximum(cx - r, gt[:, 0]), torch.maximum(cy - r, gt[:, 1])
            x2, y2 = torch.minimum(cx + r, gt[:, 2]), torch.minimum(cy + r, gt[:, 3])
            inside = torch.stack([xs - x1, ys - y1, x2 - xs, y2 - ys], -1).min(-1).values > 0
        else:
            inside = ltrb.min(-1).values > 0
        max_dist = ltrb.max(-1).values
        in_range = (max_dist >= ranges[:, 0:1]) & (max_dist <= ranges[:, 1:2])
        areas = ((gt[:, 2] - gt[:, 0]) * (gt[:, 3] - gt[:, 1]))[None].expand(num_points, -1)
        areas = torch.where(inside & in_range, areas, math.inf)
        min_area, idx = areas.min(dim=1)
        labels = gt_labels.to(pts.device, torch.long)[idx]
        labels[min_area == math.inf] = self.num_classes
        return labels, ltrb[torch.arange(num_points, device=pts.device), idx]

    def loss(self, outputs: FCOSOutputs, data_samples: Sequence[Any]) -> dict[str, torch.Tensor]:
        """Focal + GIoU + centre-ness losses against ``data_samples[i].gt_instances``.

        Returns:
            ``loss_cls``, ``loss_bbox``, ``loss_centerness``: scalars, finite also for images
            without boxes (then 0 for the last two, still connected to the graph).
        """
        cls_scores, bbox_preds, centernesses = outputs
        keep = samples_with(data_samples, "gt_instances")
        if not keep:
            zero = zero_loss(*cls_scores, *bbox_preds, *centernesses)
            return {"loss_cls": zero, "loss_bbox": zero.clone(), "loss_centerness": zero.clone()}
        points = level_points(
            [tuple(c.shape[-2:]) for c in cls_scores], self.strides, cls_scores[0].device
        )
        labels, bbox_targets = [], []
        for i in keep:
            gt = data_samples[i].gt_instances
            lab, tgt = self.get_targets(points, gt.bboxes, gt.labels)
            labels.append(lab)
            bbox_targets.append(tgt)
        labels = torch.cat(labels)
        bbox_targets = torch.cat(bbox_targets)
        idx = torch.as_tensor(keep, device=cls_scores[0].device)

        def flat(maps: tuple[torch.Tensor, ...]) -> torch.Tensor:
            # per level [B, C, h, w] -> [B_kept * P, C], image-major like the targets
            return torch.cat(
                [m.index_select(0, idx).flatten(2).transpose(1, 2) for m in maps], dim=1
            ).flatten(0, 1)

        cls = flat(cls_scores).float()
        bbox = flat(bbox_preds).float()
        ctr = flat(centernesses).float()[:, 0]
        all_points = torch.cat(points).repeat(len(keep), 1)

        pos = labels < self.num_classes
        num_pos = pos.sum().clamp(min=1).float()
        one_hot = torch.zeros_like(cls)
        one_hot[pos, labels[pos]] = 1.0
        w = self.loss_weights
        loss_cls = sigmoid_focal_loss(
            cls, one_hot, alpha=self.focal_alpha, gamma=self.focal_gamma, reduction="sum"
        )
        losses = {"loss_cls": w["cls"] * loss_cls / num_pos}
        if pos.any():
            ctr_target = centerness_target(bbox_targets[pos])
            giou = generalized_box_iou_loss(
                distance_to_boxes(all_points[pos], bbox[pos]),
                distance_to_boxes(all_points[pos], bbox_targets[pos]),
                reduction="none",
            )
            losses["loss_bbox"] = (
                w["bbox"] * (giou * ctr_target).sum() / ctr_target.sum().clamp(min=1e-6)
            )
            losses["loss_centerness"] = (
                w["centerness"]
                * F.binary_cross_entropy_with_logits(ctr[pos], ctr_target, reduction="sum")
                / num_pos
            )
        else:
            losses["loss_bbox"] = zero_loss(bbox)
            losses["loss_centerness"] = zero_loss(ctr)
        return losses

    # -- inference -----------------------------------------------------------------------------

    @torch.no_grad()
    def predict(self, outputs: FCOSOutputs, data_samples: Sequence[Any]) -> None:
        """Write ``pred_instances`` = InstanceData(bboxes Tensor[K, 4] (x1, y1, x2, y2) ORIGINAL
        image pixels, scores Tensor[K], labels Tensor[K] int64) into every sample, K <=
        ``max_per_img``, sorted by decreasing score.

        Per level the ``nms_pre`` best (point, class) pairs above ``score_thr`` are kept; scores
        are then multiplied by the centre-ness probability; boxes are clipped to ``img_shape``,
        flipped back if ``flip`` is set (as ``dense_to_original`` does for dense maps), divided
        by ``scale_factor`` (w, h), clipped to ``ori_shape``, and class-wise NMS is applied.
        """
        cls_scores, bbox_preds, centernesses = outputs
        points = level_points(
            [tuple(c.shape[-2:]) for c in cls_scores], self.strides, cls_scores[0].device
        )
        for i, sample in enumerate(data_samples):
            boxes, scores, labels = [], [], []
            for level, pts in enumerate(points):
                prob = cls_scores[level][i].flatten(1).t().sigmoid()  # [P, C]
                cand = (prob > self.score_thr).nonzero()  # [K, 2] (point, class)
                cand_scores = prob[cand[:, 0], cand[:, 1]]
                order = cand_scores.argsort(descending=True)[: self.nms_pre]
                point_idx, cls_idx = cand[order, 0], cand[order, 1]
                ltrb = bbox_preds[level][i].flatten(1).t()[point_idx].float()
                ctr = centernesses[level][i, 0].flatten()[point_idx].sigmoid()
                boxes.append(distance_to_boxes(pts[point_idx], ltrb))
                scores.append(cand_scores[order] * ctr)
                labels.append(cls_idx)
            boxes = self._to_original(torch.cat(boxes), sample.metainfo)
            scores, labels = torch.cat(scores), torch.cat(labels)
            keep = batched_nms(boxes, scores, labels, self.iou_threshold)[: self.max_per_img]
            sample.pred_instances = InstanceData(
                bboxes=boxes[keep], scores=scores[keep], labels=labels[keep]
            )

    @staticmethod
    def _to_original(boxes: torch.Tensor, meta: dict) -> torch.Tensor:
        """Tensor[K, 4] input pixels -> original image pixels (see ``predict``)."""
        h, w = meta.get("img_shape", meta.get("batch_input_shape"))[:2]
        boxes = torch.stack(
            [
                boxes[:, 0].clamp(0, w),
                boxes[:, 1].clamp(0, h),
                boxes[:, 2].clamp(0, w),
                boxes[:, 3].clamp(0, h),
            ],
            dim=1,
        )
        if meta.get("flip", False):
            if meta.get("flip_direction", "horizontal") == "horizontal":
                boxes = torch.stack([w - boxes[:, 2], boxes[:, 1], w - boxes[:, 0], boxes[:, 3]], 1)
            else:
                boxes = torch.stack([boxes[:, 0], h - boxes[:, 3], boxes[:, 2], h - boxes[:, 1]], 1)
        sw, sh = meta.get("scale_factor", (1.0, 1.0))[:2]
        boxes = boxes / boxes.new_tensor([sw, sh, sw, sh])
        ori_h, ori_w = meta.get("ori_shape", (h / sh, w / sw))[:2]
        return torch.stack(
            [
                boxes[:, 0].clamp(0, ori_w),
                boxes[:, 1].clamp(0, ori_h),
                boxes[:, 2].clamp(0, ori_w),
                boxes[:, 3].clamp(0, ori_h),
            ],
            dim=1,
        )
