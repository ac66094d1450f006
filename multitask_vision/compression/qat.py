"""Quantization-aware training (QAT) that converts to the same int8 ONNX artifact as PTQ.

Scheme: every ``nn.Conv2d`` of the chosen blocks becomes a :class:`QATConv2d` (still an
``nn.Conv2d``, same parameter names) that fake-quantizes, with PyTorch's own
``torch.ao.quantization.FakeQuantize`` modules (straight-through gradients):

- its input: uint8, per tensor, asymmetric; ``MovingAverageMinMaxObserver`` (PyTorch's QAT
  default, averaging constant 0.01) or ``MinMaxObserver``;
- its weight: int8 in [-127, 127], per output channel, symmetric, from the current weights.

That is exactly what ONNX Runtime's quantizer produces for a convolution (``QLinearConv`` with
U8 activations and symmetric per-channel S8 weights; per-channel symmetric weight scales
commute with folding BatchNorm into the conv, so BN need not be folded during training).
Conversion (:func:`load_qat_checkpoint`): the learned float weights are exported to ONNX and
quantized by ONNX Runtime (``quantization.py``), with the scales / zero points the input
observers learned imposed on each conv's input tensor; tensors QAT did not observe (residual
adds, head outputs) are calibrated on real images as in post-training quantization.

Contract with training:

- ``prepare_qat(model, dict(blocks='all', backend='onnxruntime',
  observer='moving_average_minmax'))`` before training (the QAT training config calls it); the
  model trains with the normal loop (``train_step``); mmdet / mmseg heads work unchanged.
- The checkpoint must say it is QAT: ``meta['qat'] = qat_meta(model)`` (``QATCheckpointHook``
  writes it), and ``prepare_qat`` also adds a ``qat_marker`` submodule whose extra state
  (``'qat_marker._extra_state'`` in the state dict) carries the same dict, so a checkpoint saved
  without the hook is still recognised.
- ``deploy.quantization.method='qat'`` refuses a checkpoint without either.
"""

from __future__ import annotations

import copy
import difflib
from collections.abc import Mapping, Sequence

import torch
from mmengine.hooks import Hook
from torch import nn
from torch.ao.quantization import (
    FakeQuantize,
    MinMaxObserver,
    MovingAverageMinMaxObserver,
    MovingAveragePerChannelMinMaxObserver,
)

from ..registry import HOOKS

__all__ = [
    "QAT_BACKENDS",
    "QAT_OBSERVERS",
    "QATCheckpointError",
    "QATCheckpointHook",
    "QATConv2d",
    "activation_overrides",
    "is_qat_model",
    "load_qat_checkpoint",
    "prepare_qat",
    "qat_meta",
    "qat_meta_from_checkpoint",
    "set_qat_state",
    "strip_qat",
]

QAT_BACKENDS = ("onnxruntime",)
QAT_OBSERVERS = ("moving_average_minmax", "minmax")
_QAT_KEYS = ("blocks", "backend", "observer")
MARKER = "qat_marker"


class QATCheckpointError(ValueError):
    """A checkpoint that is not a QAT checkpoint was given to the QAT conversion."""


def _act_fake_quant(observer: str) -> FakeQuantize:
    if observer == "minmax":
        obs, kwargs = MinMaxObserver, {}
    else:
        obs, kwargs = MovingAverageMinMaxObserver, {"averaging_constant": 0.01}
    return FakeQuantize(
        observer=obs, quant_min=0, quant_max=255, dtype=torch.quint8,
        qscheme=torch.per_tensor_affine, reduce_range=False, **kwargs,
    )  # fmt: skip


def _weight_fake_quant() -> FakeQuantize:
    # averaging_constant=1: the scale follows the current weights, as ONNX Runtime computes it
    # from the final ones.
    return FakeQuantize(
        observer=MovingAveragePerChannelMinMaxObserver, quant_min=-127, quant_max=127,
        dtype=torch.qint8, qscheme=torch.per_channel_symmetric, ch_axis=0, reduce_range=False,
        averaging_constant=1.0,
    )  # fmt: skip


class QATConv2d(nn.Conv2d):
    """``nn.Conv2d`` with fake-quantized input and weight (see the module docstring).

    forward(x Tensor[B, C_in, H, W]) -> Tensor[B, C_out, H', W'], as the float conv but with
    ``activation_fake_quant(x)`` and ``weight_fake_quant(weight)``. State dict: the conv's
    ``weight`` / ``bias`` plus ``activation_fake_quant.*`` and ``weight_fake_quant.*``.
    """

    @classmethod
    def from_float(cls, conv: nn.Conv2d, observer: str) -> QATConv2d:
        new = cls(
            conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
            conv.dilation, conv.groups, conv.bias is not None, conv.padding_mode,
            device=conv.weight.device, dtype=conv.weight.dtype,
        )  # fmt: skip
        new.weight = conv.weight
        new.bias = conv.bias
        new.train(conv.training)
        new.activation_fake_quant = _act_fake_quant(observer)
        new.weight_fake_quant = _weight_fake_quant()
        return new.to(conv.weight.device)

    def to_float(self) -> nn.Conv2d:
        conv = nn.Conv2d(
            self.in_channels, self.out_channels, self.kernel_size, self.stride, self.padding,
            self.dilation, self.groups, self.bias is not None, self.padding_mode,
            device=self.weight.device, dtype=self.weight.dtype,
        )  # fmt: skip
        conv.weight = self.weight
        conv.bias = self.bias
        conv.train(self.training)
        return conv

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(
            self.activation_fake_quant(x), self.weight_fake_quant(self.weight), self.bias
        )


class _QATMarker(nn.Module):
    """Carries the QAT settings in the state dict (``qat_marker._extra_state``)."""

    def __init__(self, meta: dict):
        super().__init__()
        self.meta = dict(meta)

    def get_extra_state(self) -> dict:
        return dict(self.meta)

    def set_extra_state(self, state: dict) -> None:
        self.meta = dict(state)


def _check_qat_cfg(qat_cfg: Mapping, block_names: Sequence[str]) -> dict:
    if not isinstance(qat_cfg, Mapping):
        raise ValueError(f"qat config must be a dict like dict(blocks='all'), got {qat_cfg!r}")
    problems = []
    for key in qat_cfg:
        if key not in _QAT_KEYS:
            close = difflib.get_close_matches(str(key), _QAT_KEYS, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            problems.append(f"unknown key {key!r}{hint}; valid keys: {list(_QAT_KEYS)}")
    blocks = qat_cfg.get("blocks", "all")
    if blocks == "all" or blocks is None:
        blocks = list(block_names)
    elif isinstance(blocks, str):
        blocks = [blocks]
    unknown = [b for b in blocks if b not in block_names]
    if unknown:
        problems.append(f"blocks: unknown block(s) {unknown}; the model's blocks: {block_names}")
    backend = qat_cfg.get("backend", "onnxruntime")
    if backend not in QAT_BACKENDS:
        problems.append(f"backend: unsupported value {backend!r}; valid: {list(QAT_BACKENDS)}")
    observer = qat_cfg.get("observer", "moving_average_minmax")
    if observer not in QAT_OBSERVERS:
        problems.append(f"observer: unsupported value {observer!r}; valid: {list(QAT_OBSERVERS)}")
    if problems:
        raise ValueError("invalid qat config:\n  - " + "\n  - ".join(problems))
    return dict(blocks=list(blocks), backend=backend, observer=observer)


def prepare_qat(model: nn.Module, qat_cfg: Mapping) -> nn.Module:
    """Insert fake quantization into the chosen blocks of a ``MultiTaskModel``, in place.

    Args:
        model: the float model (weights loaded or not).
        qat_cfg: ``dict(blocks='all' | [names], backend='onnxruntime',
            observer='moving_average_minmax' | 'minmax')``.

    Returns:
        The same model, with ``QATConv2d`` layers and a ``qat_marker`` submodule.
    """
    if is_qat_model(model):
        raise ValueError("prepare_qat: the model already has fake quantization")
    meta = _check_qat_cfg(qat_cfg, list(model.blocks.keys()))
    for block in meta["blocks"]:
        for parent in model.blocks[block].modules():
            for name, child in list(parent.named_children()):
                if type(child) is nn.Conv2d:
                    setattr(parent, name, QATConv2d.from_float(child, meta["observer"]))
    model.add_module(MARKER, _QATMarker(meta))
    return model


def is_qat_model(model: nn.Module) -> bool:
    return any(isinstance(m, QATConv2d) for m in model.modules())


def qat_meta(model: nn.Module) -> dict:
    """The ``meta['qat']`` entry of a QAT checkpoint: ``dict(blocks, backend, observer)``."""
    marker = getattr(model, MARKER, None)
    if marker is None:
        raise ValueError("qat_meta: the model was not prepared with prepare_qat")
    return marker.get_extra_state()


def set_qat_state(model: nn.Module, observers: bool = True, fake_quant: bool = True) -> None:
    """Enable / freeze the observers and fake quantization (e.g. freeze observers for the last
    part of QAT, as PyTorch's QAT recipe does)."""
    for m in model.modules():
        if isinstance(m, FakeQuantize):
            (m.enable_observer if observers else m.disable_observer)()
            (m.enable_fake_quant if fake_quant else m.disable_fake_quant)()


def activation_overrides(model: nn.Module) -> dict[str, tuple[float, int]]:
    """``{'blocks.<block>.<conv>': (scale, zero_point)}`` learned by the input observers
    (convs whose observer never saw data are left out)."""
    out = {}
    for name, m in model.named_modules():
        if isinstance(m, QATConv2d):
            fq = m.activation_fake_quant
            obs = fq.activation_post_process
            if torch.isfinite(obs.min_val).all() and torch.isfinite(obs.max_val).all():
                out[name] = (float(fq.scale.reshape(-1)[0]), int(fq.zero_point.reshape(-1)[0]))
    return out


def strip_qat(model: nn.Module) -> nn.Module:
    """Replace every ``QATConv2d`` by a plain ``nn.Conv2d`` with the same (learned) weights and
    drop the marker, in place."""
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, QATConv2d):
                setattr(parent, name, child.to_float())
    if hasattr(model, MARKER):
        delattr(model, MARKER)
    return model


def qat_meta_from_checkpoint(checkpoint: Mapping, path: str = "<checkpoint>") -> dict:
    """The QAT settings of a checkpoint: ``meta['qat']``, else the marker's extra state.

    Raises:
        QATCheckpointError: neither is there (not a QAT checkpoint).
    """
    meta = (checkpoint.get("meta") or {}).get("qat")
    if meta is None:
        meta = (checkpoint.get("state_dict") or {}).get(f"{MARKER}._extra_state")
    if meta is None:
        has_fq = any("fake_quant" in k for k in (checkpoint.get("state_dict") or {}))
        raise QATCheckpointError(
            f"deploy.quantization.method='qat' needs a checkpoint trained with QAT, but {path} "
            "has no meta['qat'] and no 'qat_marker._extra_state'"
            + (" (it has fake-quant buffers but no QAT settings)" if has_fq else "")
            + ": train with a QAT config (prepare_qat, e.g. configs/det_seg_depth_mmlab_qat.py), "
            "or use method='static' for post-training quantization of this checkpoint"
        )
    return dict(meta)


def load_qat_checkpoint(
    model: nn.Module, checkpoint: Mapping, path: str = "<checkpoint>"
) -> tuple[nn.Module, dict[str, tuple[float, int]]]:
    """Load a QAT checkpoint into a freshly built model (float, or already prepared by
    ``MultiTaskModel(qat=...)``) and convert it.

    Returns:
        ``(float model with the learned weights, activation overrides for the quantizer)``.

    Raises:
        QATCheckpointError: not a QAT checkpoint.
        RuntimeError: the state dict does not fit the model (mismatched keys are listed).
    """
    from .checkpoint import load_state_dict_strict

    meta = qat_meta_from_checkpoint(checkpoint, path)
    if not is_qat_model(model):  # a config with model.qat=... builds it prepared already
        prepare_qat(model, meta)
    state = dict(checkpoint["state_dict"])
    state.setdefault(f"{MARKER}._extra_state", copy.deepcopy(meta))
    load_state_dict_strict(model, state, path)
    overrides = activation_overrides(model)
    return strip_qat(model), overrides


@HOOKS.register_module()
class QATCheckpointHook(Hook):
    """mmengine hook writing ``meta['qat'] = qat_meta(model)`` into every checkpoint."""

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        model = runner.model.module if hasattr(runner.model, "module") else runner.model
        checkpoint.setdefault("meta", {})["qat"] = qat_meta(model)
