"""Loss functions of the native heads, registered in ``LOSSES`` (build with ``LOSSES.build``).

Depth losses take ``pred`` and ``target`` as Tensor[B, 1, H, W] in metres at the same
resolution; ``target <= 0`` or non-finite marks an invalid pixel (no ground truth). Invalid
pixels contribute neither to the value nor to the gradient, whatever ``pred`` holds there (NaN
and inf included), and a batch without a single valid pixel gives an exact zero that stays
connected to the graph.

The detection head uses ``torchvision.ops.sigmoid_focal_loss`` and
``torchvision.ops.generalized_box_iou_loss`` directly.
"""

from __future__ import annotations

import torch
from torch import nn

from multitask_vision.registry import LOSSES

__all__ = ["L1DepthLoss", "SILogLoss", "masked_l1_loss", "silog_loss", "valid_depth_mask"]


def valid_depth_mask(target: torch.Tensor) -> torch.Tensor:
    """Bool mask of pixels with depth ground truth: finite and > 0."""
    return torch.isfinite(target) & (target > 0)


def _masked(
    pred: torch.Tensor, target: torch.Tensor, valid_mask: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(pred, target, mask) with invalid pixels of both set to 1.0, so they cancel exactly.

    ``torch.where`` passes no gradient to the pixels it drops, and nothing downstream sees a
    NaN/inf there (``0 * NaN`` in a backward pass would otherwise poison the gradient).
    """
    if pred.shape != target.shape:
        raise ValueError(
            f"depth loss: pred {tuple(pred.shape)} and target {tuple(target.shape)} differ; "
            "upsample the prediction to the ground truth size first"
        )
    valid = valid_depth_mask(target)
    if valid_mask is not None:
        valid = valid & valid_mask.bool()
    one = torch.ones((), dtype=pred.dtype, device=pred.device)
    target = torch.where(valid, target.to(pred.dtype), one)
    pred = torch.where(valid, pred, target)
    return pred, target, valid


def silog_loss(
    pred: torch.Tensor,
    target: torch.Tensor,
    valid_mask: torch.Tensor | None = None,
    lambd: float = 0.85,
    eps: float = 1e-6,
) -> torch.Tensor:
    """Scale-invariant log loss (Eigen et al. 2014) in the square-root form of BTS / AdaBins.

    Per image, with ``d_i = log(pred_i) - log(target_i)`` over its n valid pixels::

        loss = sqrt(mean(d^2) - lambd * mean(d)^2)

    averaged over the images that have valid pixels. ``lambd = 1`` is fully scale-invariant;
    ``lambd = 0`` is the RMSE of log depth. A prediction ``c * target`` gives
    ``sqrt(1 - lambd) * |log c|``. BTS and AdaBins compute the statistics over the whole batch
    (the same for one image) and multiply by 10 (``SILogLoss.loss_weight``).

    Args:
        pred: Tensor[B, 1, H, W] predicted depth, metres (> 0; clamped to ``eps``).
        target: Tensor[B, 1, H, W] ground truth depth, metres; <= 0 or non-finite = invalid.
        valid_mask: optional bool Tensor[B, 1, H, W], further restricting the valid pixels.
        lambd: variance focus, in [0, 1].
        eps: lower clamp of the depths before the log.

    Returns:
        Scalar Tensor; exactly 0 when no pixel is valid.
    """
    pred, target, valid = _masked(pred, target, valid_mask)
    d = (torch.log(pred.clamp(min=eps)) - torch.log(target.clamp(min=eps))).flatten(1)
    n = valid.flatten(1).sum(dim=1)
    denom = n.clamp(min=1).to(d.dtype)
    mean_d = d.sum(dim=1) / denom
    mean_d2 = (d * d).sum(dim=1) / denom
    # Clamp: the sqrt has an infinite slope at 0 (pred == c * target with lambd = 1).
    per_image = torch.sqrt((mean_d2 - lambd * mean_d * mean_d).clamp(min=1e-12))
    has_valid = n > 0
    return torch.where(has_valid, per_image, 0.0).sum() / has_valid.sum().clamp(min=1)


def masked_l1_loss(
    pred: torch.Tensor, target: torch.Tensor, valid_mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Mean absolute error in metres over all valid pixels of the batch.

    Args:
        pred: Tensor[B, 1, H, W] predicted depth, metres.
        target: Tensor[B, 1, H, W] ground truth depth, metres; <= 0 or non-finite = invalid.
        valid_mask: optional bool Tensor[B, 1, H, W], further restricting the valid pixels.

    Returns:
        Scalar Tensor; exactly 0 when no pixel is valid.
    """
    pred, target, valid = _masked(pred, target, valid_mask)
    return (pred - target).abs().sum() / valid.sum().clamp(min=1)


@LOSSES.register_module()
class SILogLoss(nn.Module):
    """Scale-invariant log depth loss; see :func:`silog_loss`.

    Args:
        lambd: variance focus (BTS / AdaBins: 0.85; Eigen et al.: 0.5).
        loss_weight: multiplier; 10 as in BTS / AdaBins.
        eps: lower clamp of the depths before the log.
    """

    loss_name = "silog"

    def __init__(self, lambd: float = 0.85, loss_weight: float = 10.0, eps: float = 1e-6):
        super().__init__()
        if not 0.0 <= lambd <= 1.0:
            raise ValueError(f"SILogLoss: lambd must be in [0, 1], got {lambd}")
        self.lambd = lambd
        self.loss_weight = loss_weight
        self.eps = eps

    def forward(
        self, pred: torch.Tensor, target: torch.Tensor, valid_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        return self.loss_weight * silog_loss(pred, target, valid_mask, self.lambd, self.eps)


@LOSSES.register_module()
class L1DepthLoss(nn.Module):
    """Masked mean absolute depth error in metres; see :func:`masked_l1_loss`.

    Args:
        loss_weight: multiplier.
    """

    loss_name = "l1"

    def __init__(self, loss_weight: float = 1.0):
        super().__init__()
        self.loss_weight = loss_weight

    def forward(
        self, pred: torch.Tensor, target: torch.Tensor, valid_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        return self.loss_weight * masked_l1_loss(pred, target, valid_mask)
