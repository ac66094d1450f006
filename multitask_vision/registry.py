"""Registries of MultitaskVision, and block lookup across our registry, mmdet's and mmseg's.

Blocks, losses, adapters and task visualizers have registries of our own. Datasets, transforms,
samplers, models, metrics, hooks and training loops are children of mmengine's root registries
(scope ``mtv``), so the mmengine ``Runner`` builds them from config, as mmdet and mmseg do for
theirs. Optimizers, optimizer wrappers (and their constructors), parameter schedulers,
visualizers and their backends get ``mtv`` children too: empty, they let a project register its
own and keep mmengine from warning "Failed to search registry with scope 'mtv'" each time one is
built.

A block ``type`` is looked up in our BLOCKS registry, then in mmdet's MODELS, then in mmseg's
MODELS. A name found in several needs ``scope='mtv' | 'mmdet' | 'mmseg'`` in the block config.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass

from mmengine.registry import DATA_SAMPLERS as MMENGINE_DATA_SAMPLERS
from mmengine.registry import DATASETS as MMENGINE_DATASETS
from mmengine.registry import HOOKS as MMENGINE_HOOKS
from mmengine.registry import LOOPS as MMENGINE_LOOPS
from mmengine.registry import METRICS as MMENGINE_METRICS
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import OPTIM_WRAPPER_CONSTRUCTORS as MMENGINE_OPTIM_WRAPPER_CONSTRUCTORS
from mmengine.registry import OPTIM_WRAPPERS as MMENGINE_OPTIM_WRAPPERS
from mmengine.registry import OPTIMIZERS as MMENGINE_OPTIMIZERS
from mmengine.registry import PARAM_SCHEDULERS as MMENGINE_PARAM_SCHEDULERS
from mmengine.registry import TRANSFORMS as MMENGINE_TRANSFORMS
from mmengine.registry import VISBACKENDS as MMENGINE_VISBACKENDS
from mmengine.registry import VISUALIZERS as MMENGINE_VISUALIZERS
from mmengine.registry import Registry

__all__ = [
    "ADAPTERS",
    "BLOCKS",
    "BLOCK_SCOPES",
    "DATASETS",
    "DATA_SAMPLERS",
    "HOOKS",
    "LOOPS",
    "LOSSES",
    "METRICS",
    "MODELS",
    "OPTIMIZERS",
    "OPTIM_WRAPPERS",
    "OPTIM_WRAPPER_CONSTRUCTORS",
    "PARAM_SCHEDULERS",
    "TASK_VISUALIZERS",
    "TRANSFORMS",
    "VISBACKENDS",
    "VISUALIZERS",
    "BlockType",
    "find_block_type",
    "register_visualizer",
]

BLOCKS = Registry("block", scope="mtv", locations=["multitask_vision.blocks"])
LOSSES = Registry("loss", scope="mtv", locations=["multitask_vision.losses"])
ADAPTERS = Registry("adapter", scope="mtv", locations=["multitask_vision.adapters"])
TASK_VISUALIZERS = Registry(
    "task visualizer", scope="mtv", locations=["multitask_vision.visualization"]
)

MODELS = Registry(
    "model", parent=MMENGINE_MODELS, scope="mtv", locations=["multitask_vision.multitask_model"]
)
DATASETS = Registry(
    "dataset", parent=MMENGINE_DATASETS, scope="mtv", locations=["multitask_vision.data"]
)
TRANSFORMS = Registry(
    "transform", parent=MMENGINE_TRANSFORMS, scope="mtv", locations=["multitask_vision.data"]
)
DATA_SAMPLERS = Registry(
    "data sampler", parent=MMENGINE_DATA_SAMPLERS, scope="mtv", locations=["multitask_vision.data"]
)
METRICS = Registry(
    "metric", parent=MMENGINE_METRICS, scope="mtv", locations=["multitask_vision.evaluation"]
)
HOOKS = Registry("hook", parent=MMENGINE_HOOKS, scope="mtv", locations=["multitask_vision.hooks"])
LOOPS = Registry("loop", parent=MMENGINE_LOOPS, scope="mtv", locations=["multitask_vision.loops"])
OPTIMIZERS = Registry("optimizer", parent=MMENGINE_OPTIMIZERS, scope="mtv")
OPTIM_WRAPPERS = Registry("optim_wrapper", parent=MMENGINE_OPTIM_WRAPPERS, scope="mtv")
OPTIM_WRAPPER_CONSTRUCTORS = Registry(
    "optimizer wrapper constructor", parent=MMENGINE_OPTIM_WRAPPER_CONSTRUCTORS, scope="mtv"
)
PARAM_SCHEDULERS = Registry("parameter scheduler", parent=MMENGINE_PARAM_SCHEDULERS, scope="mtv")
VISUALIZERS = Registry("visualizer", parent=MMENGINE_VISUALIZERS, scope="mtv")
VISBACKENDS = Registry("vis_backend", parent=MMENGINE_VISBACKENDS, scope="mtv")

#: Where block types are looked up, in order. Each entry: scope -> function returning the registry.
BLOCK_SCOPES: tuple[str, ...] = ("mtv", "mmdet", "mmseg")


def register_visualizer(task: str) -> Callable[[type], type]:
    """Class decorator: ``@register_visualizer('depth')`` registers a visualizer for a task."""
    return TASK_VISUALIZERS.register_module(name=task)


def _scope_registry(scope: str) -> Registry:
    if scope == "mtv":
        import multitask_vision.blocks  # noqa: F401  (registers our blocks)

        return BLOCKS
    if scope == "mmdet":
        import mmdet.models  # noqa: F401  (registers mmdet's modules)
        from mmdet.registry import MODELS as MMDET_MODELS

        return MMDET_MODELS
    if scope == "mmseg":
        import mmseg.models  # noqa: F401
        from mmseg.registry import MODELS as MMSEG_MODELS

        return MMSEG_MODELS
    raise KeyError(scope)


@dataclass(frozen=True)
class BlockType:
    """A resolved block type: the class and the library (scope) it came from."""

    cls: type
    scope: str

    @property
    def qualname(self) -> str:
        return f"{self.scope}.{self.cls.__name__}"


def _all_block_names() -> dict[str, list[str]]:
    names: dict[str, list[str]] = {}
    for scope in BLOCK_SCOPES:
        for name in _scope_registry(scope).module_dict:
            names.setdefault(name, []).append(scope)
    return names


def closest_block_types(name: str, n: int = 3) -> list[str]:
    """Closest registered block type names across all scopes, as ``'Name' (scope)`` strings."""
    names = _all_block_names()
    matches = difflib.get_close_matches(name, list(names), n=n, cutoff=0.6)
    if not matches:  # case-insensitive fallback ('fcoshead' -> 'FCOSHead')
        lower = {k.lower(): k for k in names}
        matches = [lower[m] for m in difflib.get_close_matches(name.lower(), list(lower), n=n)]
    return [f"'{m}' ({', '.join(names[m])})" for m in matches]


def find_block_type(name: str, scope: str | None = None) -> BlockType:
    """Resolve a block ``type`` name to its class.

    Args:
        name: the registered name, e.g. ``'FCOSHead'``; ``'mmdet.FCOSHead'`` is also accepted.
        scope: ``'mtv'``, ``'mmdet'`` or ``'mmseg'`` to pick one library explicitly.

    Raises:
        KeyError: unknown name (with the closest matches), unknown scope, or a name registered in
            several scopes without ``scope=`` (naming the scopes).
    """
    if scope is None and "." in name:
        prefix, _, rest = name.partition(".")
        if prefix in BLOCK_SCOPES:
            scope, name = prefix, rest
    if scope is not None:
        if scope not in BLOCK_SCOPES:
            raise KeyError(f"unknown scope {scope!r}; valid scopes: {', '.join(BLOCK_SCOPES)}")
        cls = _scope_registry(scope).module_dict.get(name)
        if cls is None:
            hint = closest_block_types(name)
            raise KeyError(
                f"block type {name!r} is not registered in scope {scope!r}"
                + (f"; did you mean {' or '.join(hint)}?" if hint else "")
            )
        return BlockType(cls, scope)
    found = [s for s in BLOCK_SCOPES if name in _scope_registry(s).module_dict]
    if not found:
        hint = closest_block_types(name)
        raise KeyError(
            f"unknown block type {name!r}"
            + (f"; did you mean {' or '.join(hint)}?" if hint else "")
            + f" (searched: {', '.join(BLOCK_SCOPES)})"
        )
    if len(found) > 1:
        raise KeyError(
            f"block type {name!r} is registered in several libraries ({', '.join(found)}); "
            f"add scope= to the block config, e.g. scope={found[0]!r}"
        )
    return BlockType(_scope_registry(found[0]).module_dict[name], found[0])
