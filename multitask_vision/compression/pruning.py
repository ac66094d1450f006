"""Pruning: masks through ``torch.nn.utils.prune``, and channel removal that shrinks the model.

Three modes (``deploy.pruning``):

- ``method='unstructured'``: global L1 magnitude over the weights of every conv / linear layer
  of the target blocks (``prune.global_unstructured`` with ``prune.L1Unstructured``). Masks
  only: shapes, MACs, file size and latency do not change (dense kernels multiply the zeros).
- ``method='structured', physical=False``: per-layer output-channel masks by Ln norm
  (``prune.ln_structured(..., dim=0)``), the original design. Masks only, as above: ONNX
  Runtime's graph optimizations and onnxslim do not remove zeroed channels (see
  docs/deployment.md).
- ``method='structured'`` (default, ``physical=True``): channels are REMOVED with Torch-Pruning's
  dependency graph, which keeps coupled layers consistent (residual adds, FPN lateral / top-down
  adds, heads shared across levels, BatchNorm / GroupNorm, grouped convolutions). Importance of a
  channel group: the mean Ln norm of its weights across the coupled layers; ``amount`` of every
  group is removed. Wrapper attributes that store channel counts (mmcv ``ConvModule``,
  ``in_channels`` / ``out_channels`` / ``channels`` / ``feat_channels`` of blocks) are brought in
  line afterwards.

In every mode the heads' output layers (the convs whose outputs reach a head's output without
passing another conv: class logits, box regression, centre-ness, segmentation classifier,
depth) are never pruned: the task outputs keep their shapes. GroupNorm keeps its group count, so
a GroupNorm'ed layer loses channels in steps of ``num_groups`` (Torch-Pruning removes the same
positions from every group).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils import prune

from .export import ExportModule, flatten_outputs

__all__ = [
    "ChannelPruningResult",
    "find_output_layers",
    "mask_structured",
    "mask_unstructured",
    "prunable_layers",
    "prune_channels",
    "remove_masks",
    "rounded_ratio",
    "reshape_to_state_dict",
    "sparsity",
    "sync_channel_attributes",
]

_LAYERS = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)


def find_output_layers(model: nn.Module, example: torch.Tensor) -> dict[str, nn.Module]:
    """Conv / linear layers whose outputs reach a graph output without another conv / linear.

    Found on Torch-Pruning's dependency graph of the whole model (every head), so any head
    type works: mmdet ``conv_cls`` / ``conv_reg`` / ``conv_centerness``, mmseg ``conv_seg``,
    native ``classifier`` / ``conv_depth``...

    Returns:
        ``{'blocks.<block>.<path>': module}``.
    """
    import torch_pruning as tp

    module = ExportModule(model).eval()
    with warnings.catch_warnings(), torch.enable_grad():  # the graph is traced by autograd
        warnings.filterwarnings("ignore", message="Unwrapped parameters detected")
        dg = tp.DependencyGraph().build_dependency(module, example, verbose=False)
    names = {m: n for n, m in model.named_modules()}
    found = {}
    for m, node in dg.module2node.items():
        if not isinstance(m, _LAYERS):
            continue
        todo, seen, internal = list(node.outputs), set(), False
        while todo:
            n = todo.pop()
            if id(n) in seen:
                continue
            seen.add(id(n))
            if isinstance(n.module, _LAYERS):
                internal = True
                break
            todo.extend(n.outputs)
        if not internal:
            found[names[m]] = m
    return found


def _block_of(name: str) -> str:
    return name.split(".")[1]  # 'blocks.<block>.<...>'


def prunable_layers(
    model: nn.Module, targets: Sequence[str] | None, output_layers: Mapping[str, nn.Module]
) -> dict[str, nn.Module]:
    """Conv / linear layers of the target blocks (None = all), output layers excluded."""
    keep = set(targets) if targets else set(model.blocks.keys())
    return {
        name: m
        for name, m in model.named_modules()
        if isinstance(m, _LAYERS)
        and name.startswith("blocks.")
        and _block_of(name) in keep
        and name not in output_layers
    }


def mask_unstructured(layers: Mapping[str, nn.Module], amount: float) -> None:
    """Global L1 magnitude masks over all ``layers``' weights (``prune.global_unstructured``)."""
    prune.global_unstructured(
        [(m, "weight") for m in layers.values()],
        pruning_method=prune.L1Unstructured,
        amount=amount,
    )


def mask_structured(layers: Mapping[str, nn.Module], amount: float, norm: float) -> None:
    """Per-layer output-channel masks by Ln norm (``prune.ln_structured(dim=0)``)."""
    for m in layers.values():
        prune.ln_structured(m, "weight", amount=amount, n=norm, dim=0)


def remove_masks(model: nn.Module) -> int:
    """Make masks permanent (``prune.remove``); returns how many were removed."""
    count = 0
    for m in model.modules():
        for hook in list(m._forward_pre_hooks.values()):
            if isinstance(hook, prune.BasePruningMethod):
                prune.remove(m, hook._tensor_name)
                count += 1
    return count


def sparsity(layers: Iterable[nn.Module]) -> float:
    """Fraction of zero weights over ``layers`` (masked or not)."""
    zeros = total = 0
    for m in layers:
        w = m.weight
        zeros += int((w == 0).sum())
        total += w.numel()
    return zeros / max(total, 1)


@dataclass
class ChannelPruningResult:
    """Attributes:
    params_before / params_after: parameter counts of the whole model.
    channels: per pruned layer name, (out channels before, after).
    """

    params_before: int
    params_after: int
    channels: dict[str, tuple[int, int]]


def prune_channels(
    model: nn.Module,
    example: torch.Tensor,
    amount: float,
    targets: Sequence[str] | None = None,
    norm: float = 1.0,
    round_to: int | None = None,
) -> ChannelPruningResult:
    """Remove ``amount`` of the output channels of every prunable layer group, in place.

    Args:
        model: a ``MultiTaskModel`` in eval mode.
        example: Tensor[1, 3, H, W], an input to trace the dependency graph with.
        amount: fraction in [0, 1) of each channel group to remove.
        targets: blocks whose layers lose output channels (None = all). Layers of other blocks
            only lose the input channels that follow.
        norm: p of the Ln-norm importance.
        round_to: each pruned layer keeps the multiple of ``round_to`` nearest to
            ``C * (1 - amount)`` channels (at least ``round_to``; layers with fewer channels are
            left whole), so ``amount`` stays what was asked. Torch-Pruning's own ``round_to``
            rounds down (64 channels at 30% keep 32 with ``round_to=16``), so it is not used.
            Multiples of the CPU's vector width (16 floats with AVX-512, 8 with AVX2) let ONNX
            Runtime run its blocked (NCHWc) convolutions; GroupNorm'ed layers keep multiples of
            their group count as well.
    """
    import torch_pruning as tp

    model.eval()
    outputs = find_output_layers(model, example)
    layers = prunable_layers(model, targets, outputs)
    before = {n: m.weight.shape[0] for n, m in layers.items()}
    params_before = sum(p.numel() for p in model.parameters())
    ignored: list = [
        m for m in model.modules() if isinstance(m, _LAYERS) and m not in set(layers.values())
    ]
    # 0-d parameters (mmcv ``Scale``) have no channels to follow.
    ignored += [p for p in model.parameters() if p.dim() == 0]
    ratios = {m: rounded_ratio(m.weight.shape[0], amount, round_to) for m in layers.values()}
    module = ExportModule(model).eval()
    with warnings.catch_warnings(), torch.enable_grad():
        warnings.filterwarnings("ignore", message="Unwrapped parameters detected")
        pruner = tp.pruner.MetaPruner(
            module,
            example,
            importance=tp.importance.MagnitudeImportance(p=norm),
            pruning_ratio=amount,
            pruning_ratio_dict=ratios if round_to else None,
            ignored_layers=ignored,
        )
        pruner.step()
    sync_channel_attributes(model, example)
    return ChannelPruningResult(
        params_before,
        sum(p.numel() for p in model.parameters()),
        {n: (before[n], m.weight.shape[0]) for n, m in layers.items()},
    )


def rounded_ratio(channels: int, amount: float, round_to: int | None) -> float:
    """The pruning ratio that makes Torch-Pruning keep the multiple of ``round_to`` nearest to
    ``channels * (1 - amount)`` (it keeps ``int(channels * (1 - ratio))``); 0 when that is not
    fewer than ``channels``."""
    if not round_to:
        return amount
    keep = max(round_to, round(channels * (1 - amount) / round_to) * round_to)
    return 0.0 if keep >= channels else 1 - (keep + 0.5) / channels


def _leaf_channels(value) -> list[int]:
    leaves, _ = flatten_outputs(value)
    return [int(t.shape[1]) for t in leaves]


@torch.no_grad()
def sync_channel_attributes(model: nn.Module, example: torch.Tensor) -> None:
    """Bring stored channel counts in line with the (pruned) weights.

    - conv wrappers (mmcv ``ConvModule`` and alike: a ``conv`` child and ``in_channels`` /
      ``out_channels`` ints) take their conv's counts;
    - each block's ``in_channels`` (int or list) takes the channels of its inputs and
      ``out_channels`` (int or dict) those of its outputs, measured in one forward pass;
    - ``channels`` of heads with a ``conv_seg`` (mmseg) and ``feat_channels`` of heads with a
      ``conv_cls`` (mmdet) take those layers' input channels.
    """
    for m in model.modules():
        conv = getattr(m, "conv", None)
        if isinstance(conv, _LAYERS[:3]):
            for attr in ("in_channels", "out_channels"):
                if isinstance(getattr(m, attr, None), int):
                    setattr(m, attr, getattr(conv, attr))
    graph = model.blocks
    was_training = model.training
    model.eval()
    values = graph({model.input_name: example})
    values[model.input_name] = example
    model.train(was_training)
    for name in graph.order:
        block = graph[name]
        in_ch = []
        for src, path in graph.specs[name].input_refs():
            v = values[src]
            for key in path:
                v = v[key] if isinstance(v, Mapping) else v[int(key)]
            in_ch += _leaf_channels(v)
        current = getattr(block, "in_channels", None)
        if isinstance(current, int) and not isinstance(current, bool) and len(set(in_ch)) == 1:
            block.in_channels = in_ch[0]
        elif isinstance(current, (list, tuple)) and len(current) == len(in_ch):
            block.in_channels = type(current)(in_ch)
        out = values[name]
        current = getattr(block, "out_channels", None)
        if isinstance(current, Mapping) and isinstance(out, Mapping):
            block.out_channels = {k: int(out[k].shape[1]) for k in current if k in out}
        elif isinstance(current, int) and not isinstance(current, bool):
            chans = _leaf_channels(out)
            if len(set(chans)) == 1:
                block.out_channels = chans[0]
        if isinstance(getattr(block, "conv_seg", None), nn.Conv2d) and hasattr(block, "channels"):
            block.channels = block.conv_seg.in_channels
        if isinstance(getattr(block, "conv_cls", None), nn.Conv2d) and hasattr(
            block, "feat_channels"
        ):
            block.feat_channels = block.conv_cls.in_channels


def reshape_to_state_dict(model: nn.Module, state_dict: Mapping[str, torch.Tensor]) -> list[str]:
    """Give ``model``'s parameters and buffers the shapes they have in ``state_dict``.

    Used to load a checkpoint of a physically pruned model into a model freshly built from the
    unpruned config; layer attributes (``Conv2d.out_channels``, ``BatchNorm2d.num_features``,
    ``GroupNorm.num_channels``, ``Linear.in_features``...) follow. Call
    :func:`sync_channel_attributes` afterwards for wrapper and block attributes.

    Returns:
        The names of the tensors that were reshaped.
    """
    changed = []
    for mod_name, m in model.named_modules():
        prefix = f"{mod_name}." if mod_name else ""
        for kind in ("_parameters", "_buffers"):
            for key, t in list(getattr(m, kind).items()):
                full = prefix + key
                if t is None or full not in state_dict or state_dict[full].shape == t.shape:
                    continue
                new = torch.empty(state_dict[full].shape, dtype=t.dtype, device=t.device)
                if kind == "_parameters":
                    new = nn.Parameter(new, requires_grad=t.requires_grad)
                getattr(m, kind)[key] = new
                changed.append(full)
        if isinstance(m, nn.modules.conv._ConvNd):
            old_in = m.in_channels
            m.out_channels = m.weight.shape[0]
            if m.groups > 1 and m.groups == old_in:  # depthwise stays depthwise
                m.groups = m.out_channels
            m.in_channels = m.weight.shape[1] * m.groups
        elif isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.num_features = (m.running_mean if m.running_mean is not None else m.weight).shape[0]
        elif isinstance(m, nn.GroupNorm) and m.weight is not None:
            m.num_channels = m.weight.shape[0]
        elif isinstance(m, nn.Linear):
            m.out_features, m.in_features = m.weight.shape
    return changed
