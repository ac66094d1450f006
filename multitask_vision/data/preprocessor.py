"""`MultiTaskDataPreprocessor`: collated lists -> one normalised, padded batch (on the device)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from mmengine.model import ImgDataPreprocessor
from mmengine.structures import PixelData

from multitask_vision.registry import MODELS

__all__ = ["MultiTaskDataPreprocessor"]

#: Ground-truth pixel maps of a sample and the value their padding gets.
_PAD_FIELDS = ("gt_sem_seg", "gt_depth_map")


@MODELS.register_module()
class MultiTaskDataPreprocessor(ImgDataPreprocessor):
    """BGR -> RGB, ``(x - mean) / std``, and pad the batch to a multiple of ``pad_size_divisor``.

    Input (from ``pseudo_collate`` of `PackMultiTaskInputs` outputs): ``dict(inputs=list of
    Tensor[3, H_i, W_i] uint8 BGR, data_samples=list of MultiTaskDataSample)``.

    Output: ``dict(inputs=Tensor[B, 3, Hp, Wp] float32, data_samples=list)``, images at the
    top-left of the padded canvas, padding 0 (after normalisation, as mmdet). Every sample gets
    metainfo ``batch_input_shape = pad_shape = (Hp, Wp)`` and ``padding_size = [0, Wp - W_i,
    0, Hp - H_i]`` (mmseg's left, right, top, bottom).

    In training the ground-truth maps are padded to (Hp, Wp) as well: ``gt_sem_seg`` with
    ``seg_pad_value`` (255, ignored by the loss) and ``gt_depth_map`` with ``depth_pad_value``
    (0, invalid); they must have their image's size. Outside training they are left alone:
    evaluation pipelines keep ground truth in original image pixels (loaded after ``Resize``).

    Batches must be homogeneous in training: one dataset and one task set, which
    `MultiTaskGroupBatchSampler` guarantees; a mixed batch is an error that says so.

    Args:
        mean / std: per-channel statistics in RGB order if ``bgr_to_rgb`` (ImageNet defaults).
        bgr_to_rgb: swap the channels of the BGR inputs.
        pad_size_divisor: the padded size is a multiple of this.
        pad_to: optional (h, w): pad every batch to at least this size, so that evaluation sees
            the canvas that training crops and a fixed-size export (deploy) see; None: only the
            divisor.
        pad_value: image padding value, after normalisation.
        seg_pad_value / depth_pad_value: padding of ``gt_sem_seg`` / ``gt_depth_map``.
        non_blocking: as mmengine's.
    """

    def __init__(
        self,
        mean: Sequence[float] = (123.675, 116.28, 103.53),
        std: Sequence[float] = (58.395, 57.12, 57.375),
        bgr_to_rgb: bool = True,
        pad_size_divisor: int = 32,
        pad_value: float = 0,
        seg_pad_value: int = 255,
        depth_pad_value: float = 0.0,
        pad_to: Sequence[int] | None = None,
        non_blocking: bool = False,
    ):
        super().__init__(
            mean=mean,
            std=std,
            pad_size_divisor=pad_size_divisor,
            pad_value=pad_value,
            bgr_to_rgb=bgr_to_rgb,
            non_blocking=non_blocking,
        )
        self.pad_values = {"gt_sem_seg": seg_pad_value, "gt_depth_map": depth_pad_value}
        if pad_to is not None and (len(pad_to) != 2 or min(pad_to) <= 0):
            raise ValueError(f"MultiTaskDataPreprocessor: pad_to must be (h, w) > 0, got {pad_to}")
        self.pad_to = tuple(pad_to) if pad_to is not None else None

    def forward(self, data: dict, training: bool = False) -> dict:
        data = self.cast_data(data)  # to the model's device, still uint8
        inputs = data["inputs"]
        samples = data.get("data_samples")
        if isinstance(inputs, torch.Tensor):  # already stacked (e.g. a test that builds a batch)
            inputs = list(inputs)
        for i, x in enumerate(inputs):
            if x.dim() != 3 or x.shape[0] != 3:
                raise ValueError(
                    f"MultiTaskDataPreprocessor: inputs[{i}] has shape {list(x.shape)}; expected "
                    "[3, H, W] (PackMultiTaskInputs output)"
                )
        if training and samples:
            _check_homogeneous(samples)
        sizes = [tuple(x.shape[-2:]) for x in inputs]
        d = self.pad_size_divisor
        hp = math.ceil(max(h for h, _ in sizes) / d) * d
        wp = math.ceil(max(w for _, w in sizes) / d) * d
        if self.pad_to is not None:
            hp, wp = max(hp, self.pad_to[0]), max(wp, self.pad_to[1])
        # Pad as uint8, then convert and normalise the batch at once (one allocation, instead of
        # mmengine's per-image float copies); same numbers as ImgDataPreprocessor + stack_batch.
        batch = inputs[0].new_zeros((len(inputs), 3, hp, wp))
        for i, x in enumerate(inputs):
            batch[i, :, : x.shape[1], : x.shape[2]] = x
        batch = batch.float()
        if self._channel_conversion:
            batch = batch[:, [2, 1, 0]]
        if self._enable_normalize:
            batch = (batch - self.mean) / self.std
        for i, (h, w) in enumerate(sizes):
            batch[i, :, h:, :] = self.pad_value
            batch[i, :, :h, w:] = self.pad_value
        for sample, (h, w) in zip(samples or [], sizes, strict=False):
            sample.set_metainfo(
                dict(
                    batch_input_shape=(hp, wp),
                    pad_shape=(hp, wp),
                    padding_size=[0, wp - w, 0, hp - h],
                )
            )
            if training:
                self._pad_gt(sample, h, w, hp, wp)
        return dict(inputs=batch, data_samples=samples)

    def _pad_gt(self, sample, h: int, w: int, hp: int, wp: int) -> None:
        for field in _PAD_FIELDS:
            if not hasattr(sample, field):
                continue
            pixel_data = getattr(sample, field)
            gt = pixel_data.data
            if tuple(gt.shape[-2:]) != (h, w):
                raise ValueError(
                    f"MultiTaskDataPreprocessor: {sample.metainfo.get('img_path')}: {field} is "
                    f"{tuple(gt.shape[-2:])} but the image is {(h, w)} (h, w); in a training "
                    "pipeline LoadMultiTaskAnnotations must come before Resize/crops"
                )
            if (h, w) != (hp, wp):
                padded = F.pad(gt, (0, wp - w, 0, hp - h), value=self.pad_values[field])
                setattr(sample, field, PixelData(data=padded, metainfo=pixel_data.metainfo))


def _check_homogeneous(samples) -> None:
    kinds: dict[tuple, int] = {}
    for s in samples:
        key = (s.metainfo.get("dataset"), tuple(s.metainfo.get("tasks", ())))
        kinds[key] = kinds.get(key, 0) + 1
    if len(kinds) > 1:
        listed = ", ".join(f"{d}:{'+'.join(t)} x{n}" for (d, t), n in kinds.items())
        raise ValueError(
            f"MultiTaskDataPreprocessor: a training batch mixes datasets or task sets ({listed}); "
            "build training batches with sampler=dict(type='MultiTaskGroupSampler') and "
            "batch_sampler=dict(type='MultiTaskGroupBatchSampler')"
        )
