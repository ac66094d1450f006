"""The multi-task model: the block graph, its adapters and the task losses, as an mmengine model.

Config (``model=`` in an mmengine config)::

    model = dict(
        type='MultiTaskModel',
        data_preprocessor=dict(type='MultiTaskDataPreprocessor', ...),
        blocks=[
            dict(name='backbone', type='ResNetBackbone', inputs=['image'], args=dict(depth=18)),
            dict(name='neck', type='FPN', scope='mmdet', inputs=['backbone'], args=dict(...)),
            dict(name='det_head', type='FCOSHead', inputs=['neck'], task='detection', args=...),
            dict(name='seg_head', type='FCNHead', inputs=['backbone.layer4'],
                 task='segmentation', args=dict(...)),
        ],
        losses=dict(detection=dict(weight=1.0), segmentation=dict(weight=1.0)),
    )

The whole config is validated before any block is built; every problem is reported at once.
In ``mode='loss'`` only the heads of the tasks the batch has ground truth for run, and only the
blocks those heads need.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from mmengine.logging import MessageHub
from mmengine.model import BaseModel
from mmengine.optim import OptimWrapper

from ._hints import did_you_mean
from .adapters import BlockAdapter, detect_adapter
from .model import BlockGraph, BlockSpec, GraphConfigError, parse_block_specs
from .registry import ADAPTERS, MODELS, find_block_type
from .task_weighting import build_task_weighting, task_weighting_types

__all__ = ["MultiTaskModel", "build_adapters"]

_LOSS_KEYS = {"weight"}


def _tensors(value) -> list[torch.Tensor]:
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _closest(name: str, choices: Sequence[str]) -> str:
    return did_you_mean(name, choices, template="; did you mean {!r}?")


def build_adapters(specs: Sequence[BlockSpec], problems: list[str]) -> dict[str, BlockAdapter]:
    """Resolve each spec's type and adapter; problems are appended, not raised."""
    adapters: dict[str, BlockAdapter] = {}
    for spec in specs:
        try:
            block_type = find_block_type(spec.type, spec.scope)
        except KeyError as e:
            problems.append(f"{spec.where}: key 'type' value {spec.type!r}: {e.args[0]}")
            continue
        if spec.adapter is not None:
            names = sorted(ADAPTERS.module_dict)
            if spec.adapter not in ADAPTERS.module_dict:
                problems.append(
                    f"{spec.where}: key 'adapter' value {spec.adapter!r} is not a registered "
                    f"adapter{_closest(spec.adapter, names)} (valid: {names})"
                )
                continue
            adapter_cls = ADAPTERS.get(spec.adapter)
        else:
            adapter_cls = detect_adapter(block_type)
        adapters[spec.name] = adapter_cls(spec, block_type.cls)
    return adapters


def _check_graph_semantics(
    specs: Sequence[BlockSpec],
    adapters: Mapping[str, BlockAdapter],
    losses: Mapping,
    problems: list[str],
) -> None:
    by_name = {s.name: s for s in specs}
    consumers: dict[str, list[str]] = {s.name: [] for s in specs}
    for spec in specs:
        for ref, (src, path) in zip(spec.inputs, spec.input_refs(), strict=True):
            if src in consumers:
                consumers[src].append(spec.name)
            if not path or src not in adapters:
                continue
            src_spec = by_name[src]
            names = adapters[src].output_names(adapters[src].block_cls, src_spec.args)
            if names is not None and path[0] not in names:
                problems.append(
                    f"{spec.where}: key 'inputs' value {ref!r}: block {src!r} "
                    f"({src_spec.type}) has no sub-output {path[0]!r}"
                    f"{_closest(path[0], names)}; its sub-outputs: {list(names)}"
                )

    heads_by_task: dict[str, list[str]] = {}
    for spec in specs:
        adapter = adapters.get(spec.name)
        if adapter is None:  # its type did not resolve (reported): trust its task= for losses
            if spec.task:
                heads_by_task.setdefault(spec.task, []).append(spec.name)
            continue
        hint = adapter.default_task(adapter.block_cls)
        if adapter.is_head and not spec.task:
            problems.append(
                f"{spec.where}: key 'task' is missing: {spec.type} is a head "
                f"({adapter.protocol}); add task={hint or '<task name>'!r}"
            )
        elif spec.task and not adapter.is_head:
            problems.append(
                f"{spec.where}: key 'task' value {spec.task!r}: {spec.type} "
                f"({adapter.protocol}) is not a head (it has no loss/predict); remove task= or "
                "set adapter= to a head adapter"
            )
        elif not spec.task and not consumers[spec.name]:
            problems.append(
                f"{spec.where}: no block takes its output and it has no task; remove it or "
                "use it as an input"
            )
        if spec.task and adapter.is_head:
            heads_by_task.setdefault(spec.task, []).append(spec.name)

    for task, heads in heads_by_task.items():
        if len(heads) > 1:
            problems.append(
                f"task {task!r} is served by several heads {heads}; give each its own task name "
                "(e.g. 'segmentation_voc', 'segmentation_nyu') and map datasets to it with "
                "gt_key_tasks"
            )
    if not isinstance(losses, Mapping):
        problems.append(f"model.losses must be a dict task -> dict(weight=...), got {losses!r}")
        return
    tasks = sorted(heads_by_task)
    for task in tasks:
        if task not in losses:
            problems.append(
                f"task {task!r} (head {heads_by_task[task][0]!r}) has no entry in model.losses; "
                f"add losses=dict({task}=dict(weight=1.0), ...)"
            )
    for task, entry in losses.items():
        if task not in heads_by_task:
            problems.append(
                f"model.losses key {task!r}: no head serves this task"
                f"{_closest(task, tasks)} (tasks with heads: {tasks})"
            )
            continue
        if not isinstance(entry, Mapping):
            problems.append(
                f"model.losses[{task!r}] must be a dict like dict(weight=1.0), got {entry!r}"
            )
            continue
        unknown = sorted(set(entry) - _LOSS_KEYS)
        if unknown:
            problems.append(
                f"model.losses[{task!r}]: unknown key(s) {unknown}; valid keys: "
                f"{sorted(_LOSS_KEYS)}"
            )
        weight = entry.get("weight", 1.0)
        if not isinstance(weight, (int, float)) or isinstance(weight, bool) or weight < 0:
            problems.append(
                f"model.losses[{task!r}]: key 'weight' value {weight!r} must be a number >= 0"
            )


def validate_model_config(
    blocks: Sequence[Mapping],
    losses: Mapping,
    graph_inputs: Sequence[str] = ("image",),
    task_weighting: Mapping | None = None,
) -> tuple[list[BlockSpec], dict[str, BlockAdapter]]:
    """Validate the whole model config without building anything.

    Raises:
        GraphConfigError: listing every problem (block index and name, key, value, valid choices).
    """
    specs, problems = parse_block_specs(blocks, graph_inputs)
    adapters = build_adapters(specs, problems)
    if specs:
        _check_graph_semantics(specs, adapters, losses, problems)
    if task_weighting is not None:
        kind = task_weighting.get("type") if isinstance(task_weighting, Mapping) else None
        if kind not in task_weighting_types():
            problems.append(
                f"model.task_weighting type {kind!r} is not a task weighting"
                f"{_closest(str(kind), task_weighting_types())} (valid: {task_weighting_types()})"
            )
    if problems:
        raise GraphConfigError(problems)
    return specs, adapters


@MODELS.register_module()
class MultiTaskModel(BaseModel):
    """A shared-backbone multi-task model built from a block graph config.

    Args:
        blocks: the block configs (see :func:`multitask_vision.model.parse_block_specs`).
        losses: task -> ``dict(weight=w)``; every head's task needs one.
        data_preprocessor: a built preprocessor or its config (our ``MODELS`` registry, which
            also reaches mmengine's); default ``MultiTaskDataPreprocessor()``.
        graph_inputs: names of the external inputs; ``'image'`` receives the batch tensor.
        task_weighting: how task losses combine, e.g. ``dict(type='UncertaintyWeighting')`` or
            ``dict(type='DynamicWeightAverage', temperature=2.0, window=100)``; default static.
        nonfinite_loss: a NaN/inf loss term stops training with an error naming the task, term
            and step (``'error'``), or the step is skipped without an update and counted in the
            log as ``skipped_steps`` (``'skip'``).
        qat: quantization-aware training: ``dict(blocks='all' | [names], backend='onnxruntime',
            observer='moving_average_minmax')`` inserts fake quantization into those blocks
            (see ``multitask_vision.compression.qat``); ``deploy.py`` converts the result to int8.
        init_cfg: mmengine ``init_cfg``.

    Attributes:
        auxiliary_losses: extra loss terms added to every ``mode='loss'`` call (a plain list,
            empty by default; e.g. deploy's distillation during the fine-tune after pruning).
            Each item is a callable ``aux(graph_inputs, outs, data_samples) -> {key: loss}``
            with a ``blocks`` attribute: the blocks whose outputs it needs, run on every batch
            besides the batch's heads (``outs`` holds those and the batch's heads). Keys start
            with ``loss_`` and must not collide with the task losses.
    """

    def __init__(
        self,
        blocks: Sequence[Mapping],
        losses: Mapping,
        data_preprocessor: Mapping | torch.nn.Module | None = None,
        graph_inputs: Sequence[str] = ("image",),
        task_weighting: Mapping | None = None,
        nonfinite_loss: str = "error",
        qat: Mapping | None = None,
        init_cfg: Mapping | None = None,
    ):
        if nonfinite_loss not in ("error", "skip"):
            raise ValueError(
                f"model.nonfinite_loss must be 'error' or 'skip', got {nonfinite_loss!r}"
            )
        specs, adapters = validate_model_config(blocks, losses, graph_inputs, task_weighting)
        if data_preprocessor is None:
            data_preprocessor = dict(type="MultiTaskDataPreprocessor")
        if isinstance(data_preprocessor, Mapping):
            import multitask_vision.data  # noqa: F401  (registers the preprocessor)

            data_preprocessor = MODELS.build(dict(data_preprocessor))
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        modules = {name: adapter.build() for name, adapter in adapters.items()}
        self.blocks = BlockGraph(specs, modules, callers=adapters, graph_inputs=graph_inputs)
        self.adapters = adapters
        self.input_name = graph_inputs[0]
        self.heads = {s.task: s.name for s in specs if s.task}  # task -> head block
        weights = {task: float(losses[task].get("weight", 1.0)) for task in self.heads}
        self.task_weighting = build_task_weighting(task_weighting, weights)
        self.nonfinite_loss = nonfinite_loss
        self.skipped_steps = 0
        self.auxiliary_losses: list = []
        if qat is not None:
            from .compression.qat import prepare_qat

            prepare_qat(self, qat)

    def train_step(self, data, optim_wrapper: OptimWrapper) -> dict[str, torch.Tensor]:
        """mmengine's train step, with a guard against non-finite losses before the update."""
        with optim_wrapper.optim_context(self):
            data = self.data_preprocessor(data, True)
            losses = self._run_forward(data, mode="loss")
        bad = [
            k for k, v in losses.items()
            if "loss" in k and not all(torch.isfinite(t).all() for t in _tensors(v))
        ]  # fmt: skip
        if bad:
            step = MessageHub.get_current_instance().get_info("iter", -1) + 1
            terms = ", ".join(f"{k}={float(sum(t.sum() for t in _tensors(losses[k]))):.4g}"
                              for k in bad)  # fmt: skip
            if self.nonfinite_loss == "error":
                raise FloatingPointError(
                    f"non-finite loss at step {step}: {terms} (task and term in the key, "
                    "loss_<task>_<term>); lower the learning rate, check the data of that task, "
                    "or set model.nonfinite_loss='skip' to skip such steps"
                )
            self.skipped_steps += 1
            optim_wrapper.zero_grad()
            _, log_vars = self.parse_losses({k: v for k, v in losses.items() if k not in bad})
            log_vars["skipped_steps"] = torch.tensor(float(self.skipped_steps))
            return log_vars
        parsed, log_vars = self.parse_losses(losses)
        optim_wrapper.update_params(parsed)
        if self.skipped_steps:
            log_vars["skipped_steps"] = torch.tensor(float(self.skipped_steps))
        return log_vars

    @property
    def tasks(self) -> list[str]:
        return list(self.heads)

    def batch_tasks(self, data_samples: Sequence[Any]) -> list[str]:
        """The model's tasks that this (task-homogeneous) batch has ground truth for."""
        task_sets = {tuple(sorted(s.metainfo.get("tasks", ()))) for s in data_samples}
        if len(task_sets) > 1:
            raise ValueError(
                f"a batch mixes samples with different task sets {sorted(task_sets)}; batches "
                "must be homogeneous (use the MultiTaskBatchSampler, which groups samples by "
                "dataset and task set)"
            )
        (present,) = task_sets
        return [t for t in self.heads if t in present]

    def forward(
        self,
        inputs: torch.Tensor,
        data_samples: Sequence[Any] | None = None,
        mode: str = "tensor",
    ):
        """Run the graph.

        Args:
            inputs: Tensor[B, 3, H, W], normalised and padded by the data preprocessor.
            data_samples: MultiTaskDataSample list (ground truth and metainfo).
            mode: ``'loss'`` -> dict of ``loss_<task>_<term>`` (only the batch's tasks);
                ``'predict'`` -> the data samples with ``pred_*`` fields of every task;
                ``'tensor'`` -> the raw outputs of every head, by head name.
        """
        graph_inputs = {self.input_name: inputs}
        if mode == "loss":
            tasks = self.batch_tasks(data_samples)
            if not tasks:
                present = sorted({t for s in data_samples for t in s.metainfo.get("tasks", ())})
                raise ValueError(
                    f"the batch has ground truth for tasks {present}, none of which has a head "
                    f"(model tasks: {self.tasks}); check the dataset's gt_key_tasks"
                )
            wanted = [self.heads[t] for t in tasks]
            wanted += [b for aux in self.auxiliary_losses for b in aux.blocks]
            outs = self.blocks(graph_inputs, list(dict.fromkeys(wanted)))
            per_task = {}
            for task in tasks:
                head = self.heads[task]
                per_task[task] = self.adapters[head].loss(
                    self.blocks[head], outs[head], data_samples
                )
            losses = self.task_weighting(per_task)
            for aux in self.auxiliary_losses:
                extra = aux(graph_inputs, outs, data_samples)
                clash = sorted(set(extra) & set(losses))
                if clash:
                    raise KeyError(f"auxiliary loss {aux!r} returned keys {clash} that exist")
                losses.update(extra)
            return losses
        if mode == "predict":
            outs = self.blocks(graph_inputs, list(self.heads.values()))
            with torch.no_grad():
                for head in self.heads.values():
                    self.adapters[head].predict(self.blocks[head], outs[head], data_samples)
            return data_samples
        if mode == "tensor":
            return self.blocks(graph_inputs, list(self.heads.values()))
        raise ValueError(f"mode must be 'loss', 'predict' or 'tensor', got {mode!r}")
