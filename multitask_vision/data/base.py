"""`MultiTaskDataset`: the mmengine `BaseDataset` every MultitaskVision dataset subclasses.

What it adds to mmengine's dataset:

- **Task sets.** Each ``data_info`` declares ``tasks``: the sorted tuple of task names
  (``'detection'``, ``'segmentation'``, ``'depth'``) it has ground truth for. Samples with the same
  task set form a *group*; `MultiTaskGroupBatchSampler` builds every batch from one group, so all
  samples of a batch carry the same ``gt_*`` fields (VOC detection-only images never share a batch
  with detection+segmentation images).
- **The ``gt_key_tasks`` contract.** ``metainfo['gt_key_tasks']`` maps each ground-truth field of
  the packed sample to its task (``gt_instances`` -> ``'detection'`` ...). A new dataset plugs in
  by producing these fields; the model side never needs to know the dataset.
- **Bad samples.** ``on_bad_sample='error' | 'skip'`` (see `bad_samples`); a pipeline that drops a
  training sample (returns None) is refilled from the *same group*, never from another task set.

Metainfo keys every dataset provides: ``dataset_name``, ``tasks`` (the dataset's task set),
``gt_key_tasks``, and per task: ``classes`` / ``palette`` (detection; or segmentation when the
dataset has no detection) and ``seg_classes`` / ``seg_palette`` (segmentation: index ``i`` of
``gt_sem_seg`` means ``seg_classes[i]``; 255 = ignore).
"""

from __future__ import annotations

import difflib
import logging
from collections.abc import Mapping, Sequence

import numpy as np
from mmengine.dataset import BaseDataset
from mmengine.logging import print_log

from multitask_vision.data.bad_samples import BadSampleError, BadSampleReport, check_on_bad_sample

__all__ = ["GT_KEY_TASKS", "TASKS", "MultiTaskDataset", "check_tasks", "make_palette"]

#: The task names of MultitaskVision, in canonical (sorted) order.
TASKS = ("depth", "detection", "segmentation")

#: Packed ground-truth field -> task. Part of every dataset's metainfo.
GT_KEY_TASKS = {"gt_instances": "detection", "gt_sem_seg": "segmentation", "gt_depth_map": "depth"}


def check_tasks(tasks: Sequence[str], supported: Sequence[str], owner: str) -> tuple[str, ...]:
    """Validate a ``tasks`` argument and return it as a sorted tuple.

    Raises:
        ValueError: empty, a string instead of a sequence, or an unsupported task name (with the
            closest supported name).
    """
    if isinstance(tasks, str):
        raise ValueError(f"{owner}: tasks={tasks!r} must be a list of task names, e.g. [{tasks!r}]")
    tasks = tuple(tasks)
    if not tasks:
        raise ValueError(f"{owner}: tasks is empty; choose from {', '.join(supported)}")
    for task in tasks:
        if task not in supported:
            close = difflib.get_close_matches(str(task), list(supported) + list(TASKS), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ValueError(
                f"{owner}: unknown or unsupported task {task!r} in tasks={list(tasks)}{hint} "
                f"(this dataset supports: {', '.join(supported)})"
            )
    return tuple(sorted(set(tasks)))


def make_palette(n: int, seed: int = 42) -> list[tuple[int, int, int]]:
    """A deterministic palette of ``n`` RGB colours, for class lists given without one."""
    rng = np.random.default_rng(seed)
    return [tuple(int(c) for c in rng.integers(0, 256, 3)) for _ in range(n)]


class MultiTaskDataset(BaseDataset):
    """Base class: task sets, the ``gt_key_tasks`` contract, grouping and bad-sample handling.

    Subclasses set ``METAINFO`` (with ``dataset_name`` and class lists), ``SUPPORTED_TASKS``, and
    implement ``load_data_list`` returning dicts with at least ``img_path``, ``img_id`` and
    ``tasks``, calling `_parse_or_skip` around per-sample parsing.

    Args:
        tasks: the tasks to load ground truth for; a subset of ``SUPPORTED_TASKS``.
        on_bad_sample: ``'error'`` or ``'skip'`` (see `multitask_vision.data.bad_samples`).
        backend_args: mmengine file backend arguments, as in mmdet.
        **kwargs: mmengine ``BaseDataset`` arguments (``metainfo``, ``pipeline``, ``test_mode``,
            ``lazy_init``, ``serialize_data``, ``indices``, ``max_refetch``, ...).
    """

    SUPPORTED_TASKS: tuple[str, ...] = TASKS

    def __init__(
        self,
        tasks: Sequence[str] = (),
        on_bad_sample: str = "error",
        backend_args: dict | None = None,
        **kwargs,
    ):
        self.tasks = check_tasks(tasks or self.SUPPORTED_TASKS, self.SUPPORTED_TASKS, self._owner())
        self.on_bad_sample = check_on_bad_sample(on_bad_sample, self._owner())
        self.backend_args = backend_args
        self._groups: dict[tuple[str, ...], np.ndarray] | None = None
        self._skipped_at_read = 0
        super().__init__(**kwargs)
        self._finish_metainfo()

    # ----------------------------------------------------------------------------- metainfo
    @classmethod
    def _load_metainfo(cls, metainfo: Mapping | None = None) -> dict:
        # mmengine treats every string value as a possible class-list file and warns when it is
        # not one; a dataset name is never a file.
        metainfo = dict(metainfo or {})
        name = metainfo.pop("dataset_name", None)
        meta = super()._load_metainfo(metainfo)
        if name is not None:
            meta["dataset_name"] = name
        return meta

    def _finish_metainfo(self) -> None:
        meta = self._metainfo
        meta.setdefault("dataset_name", type(self).__name__)
        meta["tasks"] = self.tasks
        meta["gt_key_tasks"] = {k: t for k, t in GT_KEY_TASKS.items() if t in self.tasks}
        for names_key, palette_key in (("classes", "palette"), ("seg_classes", "seg_palette")):
            if names_key not in meta:
                continue
            names = tuple(meta[names_key])
            if len(set(names)) != len(names):
                dup = sorted({c for c in names if names.count(c) > 1})
                raise ValueError(f"{self._owner()}: metainfo {names_key} repeats {dup}")
            meta[names_key] = names
            if len(meta.get(palette_key) or ()) != len(names):
                meta[palette_key] = make_palette(len(names))

    @property
    def dataset_name(self) -> str:
        return self._metainfo["dataset_name"]

    def _owner(self) -> str:
        name = getattr(self, "_metainfo", {}).get("dataset_name")
        return f"{type(self).__name__}" + (f" {name!r}" if name else "")

    # ------------------------------------------------------------------------------ loading
    def _new_report(self) -> BadSampleReport:
        return BadSampleReport(self._owner())

    def _parse_or_skip(self, report: BadSampleReport, parse, *args):
        """Call ``parse(*args)``; on `BadSampleError` raise or record it, per ``on_bad_sample``."""
        try:
            return parse(*args)
        except BadSampleError as e:
            if self.on_bad_sample == "error":
                raise
            report.add(e)
            return None

    def sample_extras(self) -> dict:
        """Dataset-level keys added to every sample's results before the pipeline runs."""
        meta = self._metainfo
        extras = dict(dataset=self.dataset_name, gt_key_tasks=meta["gt_key_tasks"])
        if "detection" in self.tasks and "classes" in meta:
            extras["num_det_classes"] = len(meta["classes"])
        if "segmentation" in self.tasks and "seg_classes" in meta:
            extras["num_seg_classes"] = len(meta["seg_classes"])
        if self.backend_args is not None:
            extras["backend_args"] = self.backend_args
        return extras

    def prepare_data(self, idx: int):
        data_info = self.get_data_info(idx)
        data_info.update(self.sample_extras())
        return self.pipeline(data_info)

    def __getitem__(self, idx: int) -> dict:
        """Run the pipeline on sample ``idx``; in training, refill a dropped one from its group.

        Raises:
            BadSampleError: a bad file, with ``on_bad_sample='error'`` or in ``test_mode``.
            RuntimeError: a test pipeline dropped a sample, or ``max_refetch`` replacements failed.
        """
        if not self._fully_initialized:
            self.full_init()
        first = idx
        for _ in range(self.max_refetch + 1):
            try:
                data = self.prepare_data(idx)
            except BadSampleError:
                if self.test_mode or self.on_bad_sample == "error":
                    raise
                self._skipped_at_read += 1
                print_log(
                    f"{self._owner()}: skipped bad sample {idx} "
                    f"({self._skipped_at_read} skipped so far in this process, "
                    "on_bad_sample='skip')",
                    logger="current",
                    level=logging.WARNING,
                )
                data = None
            except Exception as e:
                e.add_note(f"while preparing sample {idx} of {self._owner()}")
                raise
            if data is not None:
                return data
            if self.test_mode:
                raise RuntimeError(
                    f"{self._owner()}: the test pipeline dropped sample {idx}; test pipelines must "
                    "keep every sample (a metric on fewer images is not comparable)"
                )
            idx = self._rand_another_in_group(idx)
        raise RuntimeError(
            f"{self._owner()}: no valid sample after {self.max_refetch} replacements of sample "
            f"{first}; check the pipeline (e.g. a crop that always loses every box)"
        )

    # ------------------------------------------------------------------------------- groups
    def group_indices(self) -> dict[tuple[str, ...], np.ndarray]:
        """Indices of this dataset per task set, e.g. ``{('detection',): [...], ...}``.

        Groups are listed in sorted order of their task sets, indices in dataset order.
        """
        if self._groups is None:
            by_tasks: dict[tuple[str, ...], list[int]] = {}
            for i in range(len(self)):
                by_tasks.setdefault(tuple(self.get_data_info(i)["tasks"]), []).append(i)
            self._groups = {k: np.asarray(by_tasks[k], dtype=np.int64) for k in sorted(by_tasks)}
        return self._groups

    def get_subset_(self, indices) -> None:
        self._groups = None
        super().get_subset_(indices)

    def _rand_another_in_group(self, idx: int) -> int:
        members = self.group_indices()[tuple(self.get_data_info(idx)["tasks"])]
        if len(members) > 1:
            members = members[members != idx]
        return int(members[np.random.randint(len(members))])
