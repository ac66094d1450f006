"""`MultiTaskConcatDataset`: several datasets with different classes and tasks, side by side.

mmengine's ``ConcatDataset`` requires every dataset to share its metainfo (class lists and all);
datasets of a multi-task run differ by design (VOC's 20 classes and NYU's 40), so this wrapper
keeps each dataset's metainfo under its name instead. Dataset names must be unique: they name
the groups of the sampler and the ``dataset`` metainfo key of every sample.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

from mmengine.dataset import BaseDataset, ConcatDataset

from multitask_vision.registry import DATASETS

__all__ = ["MultiTaskConcatDataset"]


@DATASETS.register_module()
class MultiTaskConcatDataset(ConcatDataset):
    """Concatenation of datasets whose metainfo may differ; indices run dataset after dataset.

    Args:
        datasets: built datasets or their configs (built from our ``DATASETS`` registry).
        lazy_init: as mmengine's ``ConcatDataset``.

    ``metainfo`` is ``dict(dataset_names=[...], datasets={name: metainfo of that dataset})``.

    Config example::

        dataset=dict(type='MultiTaskConcatDataset', datasets=[voc_train, nyu_train])
    """

    def __init__(self, datasets: Sequence[BaseDataset | dict], lazy_init: bool = False):
        if not datasets:
            raise ValueError("MultiTaskConcatDataset: datasets is empty")
        self.datasets: list[BaseDataset] = []
        for i, dataset in enumerate(datasets):
            if isinstance(dataset, dict):
                dataset = DATASETS.build(dataset)
            elif not isinstance(dataset, BaseDataset):
                raise TypeError(
                    f"MultiTaskConcatDataset: datasets[{i}] must be a dataset or its config "
                    f"dict, got {type(dataset).__name__}"
                )
            self.datasets.append(dataset)
        names = [self.dataset_name(i) for i in range(len(self.datasets))]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(
                f"MultiTaskConcatDataset: dataset names {names} repeat {dup}; give each dataset "
                "its own name with metainfo=dict(dataset_name=...)"
            )
        self._metainfo = dict(
            dataset_names=names,
            datasets={n: d.metainfo for n, d in zip(names, self.datasets, strict=True)},
        )
        self.ignore_keys = []
        self._fully_initialized = False
        if not lazy_init:
            self.full_init()

    @property
    def metainfo(self) -> dict:
        return copy.deepcopy(self._metainfo)

    def dataset_name(self, dataset_idx: int) -> str:
        """The ``dataset_name`` of ``datasets[dataset_idx]`` (``'dataset<i>'`` if it has none)."""
        meta = getattr(self.datasets[dataset_idx], "metainfo", {}) or {}
        return meta.get("dataset_name", f"dataset{dataset_idx}")

    def get_dataset_source(self, idx: int) -> int:
        """Index in ``datasets`` of the dataset holding global index ``idx`` (as mmdet's)."""
        return self._get_ori_dataset_idx(idx)[0]
