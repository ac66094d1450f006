"""Homogeneous multi-dataset batches: `MultiTaskGroupSampler` + `MultiTaskGroupBatchSampler`.

Design (homogeneous batches, not per-sample loss masks): samples are partitioned into *groups*,
one per (dataset, task set), e.g. ``voc:detection``, ``voc:detection+segmentation``,
``nyu:depth+segmentation``. Every batch is drawn from a single group, so every sample of a batch
has the same ``gt_*`` fields, every head of the batch's tasks sees a full batch, and the model
never needs per-sample loss masks (a head with no ground truth in a batch simply does not run).

At each step the sampler picks a *dataset* by the strategy, then one of that dataset's groups
with probability proportional to the group's size (so, within a dataset, every image is seen
equally often), then takes the next ``batch_size * world_size`` indices of that group's shuffled
stream; rank ``r`` keeps slice ``r``. Strategies (dataset level):

- ``'proportional'``: P(dataset) proportional to its size (each image equally often overall).
- ``'ratios'``: P(dataset) proportional to ``ratios`` (a list in ``datasets`` order, or a dict
  ``{dataset_name: ratio}``).
- ``'temperature'``: P(dataset) proportional to ``size ** (1 / temperature)``; ``temperature=1``
  is proportional, a large temperature tends to uniform (small datasets are up-sampled).
- ``'round_robin'``: datasets in turn, one batch each, in ``datasets`` order.

Iteration is infinite (iteration-based training) and deterministic for a seed. Under DDP every
rank builds the same random streams from the same seed (mmengine passes the runner's seed, or
``sync_random_seed()`` broadcasts rank 0's), so all ranks pick the same group at the same step
(all ranks run the same heads, so gradients of every head are all-reduced consistently) and
take disjoint samples of it.

Config (mmengine ``Runner``)::

    train_dataloader = dict(
        batch_size=8, num_workers=2, persistent_workers=True,
        dataset=dict(type='MultiTaskConcatDataset', datasets=[voc_train, nyu_train]),
        sampler=dict(type='MultiTaskGroupSampler', strategy='ratios', ratios=[2, 1]),
        batch_sampler=dict(type='MultiTaskGroupBatchSampler'))

mmdet's ``MultiDataSampler`` / ``MultiDataAspectRatioBatchSampler`` were not reused: they
weight samples, not batches, and each rank fills its own per-dataset buckets, so ranks would
run different heads at the same step.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from mmengine.dist import get_dist_info, sync_random_seed
from mmengine.logging import print_log
from torch.utils.data import BatchSampler, Sampler

from multitask_vision.registry import DATA_SAMPLERS

__all__ = [
    "STRATEGIES",
    "MultiTaskGroupBatchSampler",
    "MultiTaskGroupSampler",
    "TaskGroup",
    "find_task_groups",
]

STRATEGIES = ("round_robin", "proportional", "ratios", "temperature")


@dataclass(frozen=True)
class TaskGroup:
    """Samples of one dataset with one task set.

    Attributes:
        dataset_idx: position of the dataset in the concatenation (0 for a single dataset).
        dataset_name: its ``metainfo['dataset_name']``.
        tasks: sorted task names, e.g. ``('detection', 'segmentation')``.
        indices: global indices (into the dataset given to the sampler), int64.
    """

    dataset_idx: int
    dataset_name: str
    tasks: tuple[str, ...]
    indices: np.ndarray

    @property
    def name(self) -> str:
        return f"{self.dataset_name}:{'+'.join(self.tasks) or 'no-ground-truth'}"


def _groups_of(dataset) -> dict[tuple[str, ...], np.ndarray]:
    if hasattr(dataset, "group_indices"):
        return dataset.group_indices()
    by_tasks: dict[tuple[str, ...], list[int]] = {}
    for i in range(len(dataset)):
        by_tasks.setdefault(tuple(dataset.get_data_info(i).get("tasks", ())), []).append(i)
    return {k: np.asarray(v, dtype=np.int64) for k, v in sorted(by_tasks.items())}


def find_task_groups(dataset) -> list[TaskGroup]:
    """The (dataset, task set) groups of a dataset or of a concatenation of datasets.

    Accepts a `MultiTaskDataset`, a `MultiTaskConcatDataset` or an mmengine ``ConcatDataset``
    (anything with ``datasets`` and ``cumulative_sizes``).
    """
    if hasattr(dataset, "full_init"):  # a lazy_init dataset has no index (or sizes) yet
        dataset.full_init()
    if hasattr(dataset, "datasets") and hasattr(dataset, "cumulative_sizes"):
        parts = list(dataset.datasets)
        offsets = [0, *dataset.cumulative_sizes[:-1]]
    else:
        parts, offsets = [dataset], [0]
    groups = []
    for d, (part, offset) in enumerate(zip(parts, offsets, strict=True)):
        name = (getattr(part, "metainfo", None) or {}).get("dataset_name", f"dataset{d}")
        for tasks, idx in _groups_of(part).items():
            if len(idx):
                groups.append(TaskGroup(d, name, tuple(tasks), idx + offset))
    if not groups:
        raise ValueError("MultiTaskGroupSampler: the dataset is empty")
    return groups


@DATA_SAMPLERS.register_module()
class MultiTaskGroupSampler(Sampler):
    """Infinite, seeded, DDP-consistent choice of one (dataset, task set) group per batch.

    It draws whole batches: use it with ``batch_sampler=dict(type='MultiTaskGroupBatchSampler')``,
    which gives it the batch size. See the module docstring for the strategies.

    Args:
        dataset: a `MultiTaskConcatDataset` (or mmengine ``ConcatDataset``) or a single dataset.
        strategy: ``'round_robin'``, ``'proportional'``, ``'ratios'`` or ``'temperature'``.
        ratios: for ``'ratios'``: one non-negative number per dataset (list in order, or dict by
            dataset name).
        temperature: for ``'temperature'``: T > 0.
        shuffle: shuffle each group's stream (each pass over a group is a new permutation).
        seed: the random seed; identical on every rank. None: ``sync_random_seed()``.
    """

    def __init__(
        self,
        dataset,
        strategy: str = "proportional",
        ratios: Sequence[float] | Mapping[str, float] | None = None,
        temperature: float | None = None,
        shuffle: bool = True,
        seed: int | None = None,
    ):
        self.rank, self.world_size = get_dist_info()
        self.dataset = dataset
        self.seed = sync_random_seed() if seed is None else int(seed)
        self.shuffle = shuffle
        self.groups = find_task_groups(dataset)
        self.strategy = _check_strategy(strategy, ratios, temperature)
        names = _dataset_names(self.groups)
        sizes = np.array(
            [sum(len(g.indices) for g in self.groups if g.dataset_idx == d) for d in names],
            dtype=np.float64,
        )
        if strategy == "ratios":
            weights = _ratios_to_weights(ratios, names)
        elif strategy == "temperature":
            weights = sizes ** (1.0 / temperature)
        elif strategy == "round_robin":
            weights = np.ones(len(names))
        else:
            weights = sizes
        self.dataset_ids = list(names)
        self.dataset_probs = weights / weights.sum()
        # P(group | dataset) is proportional to the group's size.
        self.group_probs = np.array(
            [
                self.dataset_probs[self.dataset_ids.index(g.dataset_idx)]
                * len(g.indices)
                / sizes[self.dataset_ids.index(g.dataset_idx)]
                for g in self.groups
            ]
        )
        print_log(self.summary(), logger="current")

    def summary(self) -> str:
        """One line per group: name, size and the probability of a batch coming from it."""
        lines = [f"MultiTaskGroupSampler (strategy={self.strategy!r}, seed={self.seed}):"]
        for g, p in zip(self.groups, self.group_probs, strict=True):
            lines.append(f"  {g.name:<40} {len(g.indices):>7} samples  P(batch)={p:.3f}")
        return "\n".join(lines)

    def iter_batches(self, batch_size: int) -> Iterator[list[int]]:
        """Infinite iterator over this rank's batches of ``batch_size`` global indices."""
        step_rng = np.random.default_rng([self.seed, 0])
        streams = [
            _GroupStream(g.indices, np.random.default_rng([self.seed, 1, k]), self.shuffle)
            for k, g in enumerate(self.groups)
        ]
        cum = np.cumsum(self.group_probs)
        cum[-1] = 1.0
        per_step = batch_size * self.world_size
        lo, hi = self.rank * batch_size, (self.rank + 1) * batch_size
        step = 0
        while True:
            if self.strategy == "round_robin":
                k = self._round_robin_group(step, step_rng)
            else:
                k = int(np.searchsorted(cum, step_rng.random(), side="right"))
            yield streams[k].take(per_step)[lo:hi]
            step += 1

    def _round_robin_group(self, step: int, rng: np.random.Generator) -> int:
        d = self.dataset_ids[step % len(self.dataset_ids)]
        members = [k for k, g in enumerate(self.groups) if g.dataset_idx == d]
        if len(members) == 1:
            return members[0]
        sizes = np.array([len(self.groups[k].indices) for k in members], dtype=np.float64)
        return members[int(rng.choice(len(members), p=sizes / sizes.sum()))]

    def __iter__(self):
        raise TypeError(
            "MultiTaskGroupSampler draws whole batches; add "
            "batch_sampler=dict(type='MultiTaskGroupBatchSampler') to the dataloader config"
        )

    def __len__(self) -> int:
        return math.ceil(len(self.dataset) / self.world_size)


@DATA_SAMPLERS.register_module()
class MultiTaskGroupBatchSampler(BatchSampler):
    """Batches of one (dataset, task set) group each, from a `MultiTaskGroupSampler`; infinite.

    Args:
        sampler: the `MultiTaskGroupSampler` (mmengine passes the dataloader's ``sampler``).
        batch_size: samples per batch on each rank (mmengine passes the dataloader's).
        drop_last: accepted for config compatibility; batches are always full.
    """

    def __init__(self, sampler: MultiTaskGroupSampler, batch_size: int, drop_last: bool = True):
        if not isinstance(sampler, MultiTaskGroupSampler):
            raise TypeError(
                "MultiTaskGroupBatchSampler needs sampler=dict(type='MultiTaskGroupSampler', ...), "
                f"got {type(sampler).__name__}"
            )
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size <= 0:
            raise ValueError(
                f"MultiTaskGroupBatchSampler: batch_size must be a positive int, got {batch_size!r}"
            )
        self.sampler = sampler
        self.batch_size = batch_size
        self.drop_last = drop_last
        per_step = batch_size * sampler.world_size
        small = [g.name for g in sampler.groups if len(g.indices) < per_step]
        if small:
            print_log(
                f"MultiTaskGroupBatchSampler: groups {small} have fewer samples than "
                f"batch_size x world_size = {per_step}; their batches repeat samples",
                logger="current",
                level="WARNING",
            )

    def __iter__(self) -> Iterator[list[int]]:
        return self.sampler.iter_batches(self.batch_size)

    def __len__(self) -> int:
        """Batches per rank in one pass over the data (iteration itself never ends)."""
        return math.ceil(len(self.sampler.dataset) / (self.batch_size * self.sampler.world_size))


class _GroupStream:
    """A group's endless sequence of indices: one (shuffled) pass after another.

    `take` returns the next ``m`` indices. A chunk that spans two passes never repeats an index
    (when the group holds at least ``m``): the new pass starts with indices not yet in the chunk,
    so the ranks' slices of one step stay disjoint and every pass still covers the whole group.
    """

    def __init__(self, indices: np.ndarray, rng: np.random.Generator, shuffle: bool):
        self.indices, self.rng, self.shuffle = indices, rng, shuffle
        self.order = np.empty(0, np.int64)
        self.pos = 0

    def take(self, m: int) -> list[int]:
        out: list[int] = []
        while len(out) < m:
            if self.pos == len(self.order):
                order = self.rng.permutation(self.indices) if self.shuffle else self.indices
                if out and len(self.indices) >= m:
                    seen = np.isin(order, out)
                    order = np.concatenate([order[~seen], order[seen]])
                self.order, self.pos = order, 0
            n = min(m - len(out), len(self.order) - self.pos)
            out.extend(self.order[self.pos : self.pos + n].tolist())
            self.pos += n
        return out


def _dataset_names(groups: list[TaskGroup]) -> dict[int, str]:
    return {g.dataset_idx: g.dataset_name for g in groups}


def _check_strategy(strategy: str, ratios, temperature) -> str:
    if strategy not in STRATEGIES:
        close = difflib.get_close_matches(str(strategy), STRATEGIES, n=1)
        raise ValueError(
            f"MultiTaskGroupSampler: unknown strategy {strategy!r}"
            + (f"; did you mean {close[0]!r}?" if close else "")
            + f" (choose from {', '.join(STRATEGIES)})"
        )
    if strategy == "ratios" and ratios is None:
        raise ValueError(
            "MultiTaskGroupSampler: strategy='ratios' needs ratios=[...] (per dataset)"
        )
    if strategy != "ratios" and ratios is not None:
        raise ValueError(
            f"MultiTaskGroupSampler: ratios={ratios!r} is only used by strategy='ratios', "
            f"not {strategy!r}"
        )
    if strategy == "temperature":
        if temperature is None or not temperature > 0:
            raise ValueError(
                "MultiTaskGroupSampler: strategy='temperature' needs temperature > 0 (1 = "
                f"proportional, larger = closer to uniform), got {temperature!r}"
            )
    elif temperature is not None:
        raise ValueError(
            f"MultiTaskGroupSampler: temperature={temperature!r} is only used by "
            f"strategy='temperature', not {strategy!r}"
        )
    return strategy


def _ratios_to_weights(ratios, names: dict[int, str]) -> np.ndarray:
    order = list(names)
    if isinstance(ratios, Mapping):
        unknown = [k for k in ratios if k not in names.values()]
        if unknown:
            close = difflib.get_close_matches(str(unknown[0]), list(names.values()), n=1)
            raise ValueError(
                f"MultiTaskGroupSampler: ratios names unknown dataset {unknown[0]!r}"
                + (f"; did you mean {close[0]!r}?" if close else "")
                + f" (datasets: {', '.join(names.values())})"
            )
        weights = [float(ratios.get(names[d], 0.0)) for d in order]
    else:
        ratios = list(ratios)
        if len(ratios) != len(order):
            raise ValueError(
                f"MultiTaskGroupSampler: {len(ratios)} ratios {ratios} for {len(order)} "
                f"datasets ({', '.join(names.values())}); give one ratio per dataset"
            )
        weights = [float(r) for r in ratios]
    w = np.asarray(weights, dtype=np.float64)
    if not np.all(np.isfinite(w)) or (w < 0).any() or w.sum() <= 0:
        raise ValueError(
            f"MultiTaskGroupSampler: ratios {weights} must be finite, >= 0, and not all 0"
        )
    return w
