"""Dense-map post-processing shared by segmentation and depth heads of every protocol."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

__all__ = ["dense_to_original"]


def dense_to_original(
    maps: torch.Tensor,
    metainfos: Sequence[dict],
    mode: str = "bilinear",
    align_corners: bool = False,
) -> list[torch.Tensor]:
    """Bring dense batch predictions back to each sample's original image.

    Args:
        maps: Tensor[B, C, h, w], predictions over the padded batch input at any stride.
        metainfos: per sample ``batch_input_shape`` (padded H, W), ``img_shape`` (h, w of the
            resized image inside the padding), ``ori_shape`` (original h, w), optional ``flip``
            and ``flip_direction`` ('horizontal' or 'vertical').
        mode: interpolation for the two resizes (``'bilinear'`` for logits and depth).
        align_corners: for bilinear/bicubic modes (mmseg heads carry their own setting).

    Returns:
        One Tensor[C, ori_h, ori_w] per sample: upsampled to the padded input, cropped to the
        valid image, flipped back if the input was flipped, resized to the original size.
    """
    align = align_corners if mode in ("bilinear", "bicubic") else None
    pad_h, pad_w = metainfos[0].get("batch_input_shape", maps.shape[-2:])
    if tuple(maps.shape[-2:]) != (pad_h, pad_w):
        maps = F.interpolate(maps, size=(pad_h, pad_w), mode=mode, align_corners=align)
    out = []
    for i, meta in enumerate(metainfos):
        h, w = meta.get("img_shape", (pad_h, pad_w))[:2]
        m = maps[i : i + 1, :, :h, :w]
        if meta.get("flip", False):
            direction = meta.get("flip_direction", "horizontal")
            m = m.flip(-1) if direction == "horizontal" else m.flip(-2)
        ori_h, ori_w = meta.get("ori_shape", (h, w))[:2]
        if (ori_h, ori_w) != (h, w):
            m = F.interpolate(m, size=(ori_h, ori_w), mode=mode, align_corners=align)
        out.append(m[0])
    return out
