"""The library side of ``visualize.py``: build the model and a split from a config, predict the
first samples of every dataset, and write figures, contact sheets and ``index.html``.

Output layout::

    <out_dir>/index.html
    <out_dir>/contact_sheet_<dataset>.png
    <out_dir>/<dataset>/<img_id>.png
"""

from __future__ import annotations

import math
import os
import os.path as osp
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np
import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from torch.utils.data import DataLoader, Subset

from .base import build_visualizers, task_metas
from .contact_sheet import contact_sheet, thumbnail
from .figure import format_metric, render_sample
from .index_html import FigureEntry, write_index_html

__all__ = [
    "SPLITS",
    "VisualizationReport",
    "build_for_visualization",
    "dataloader_settings",
    "dataset_parts",
    "datasets_meta",
    "first_indices",
    "predict",
    "write_visualizations",
]

SPLITS = ("val", "test", "train")
THUMB_W, THUMB_H = 400, 300


def dataset_parts(dataset) -> list[tuple[str, int, int]]:
    """(dataset name, first global index, length) of each dataset in ``dataset`` (a
    `MultiTaskConcatDataset`, or one dataset)."""
    if hasattr(dataset, "datasets") and hasattr(dataset, "cumulative_sizes"):
        starts = [0, *dataset.cumulative_sizes[:-1]]
        return [(dataset.dataset_name(i), starts[i], len(d))
                for i, d in enumerate(dataset.datasets)]  # fmt: skip
    name = (dataset.metainfo or {}).get("dataset_name", type(dataset).__name__)
    return [(name, 0, len(dataset))]


def datasets_meta(dataset) -> dict[str, dict]:
    """Dataset name -> its metainfo, for a concatenation or a single dataset."""
    meta = dataset.metainfo or {}
    if "datasets" in meta:
        return dict(meta["datasets"])
    return {dataset_parts(dataset)[0][0]: dict(meta)}


def first_indices(dataset, num_samples: int) -> dict[str, list[int]]:
    """The global indices of the first ``num_samples`` samples of every dataset in ``dataset``."""
    return {name: list(range(start, start + min(num_samples, n)))
            for name, start, n in dataset_parts(dataset)}  # fmt: skip


def _safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", str(text)).strip("._") or "sample"


def build_for_visualization(
    cfg: Config, checkpoint: str, split: str = "val", device: str | None = None
) -> tuple[torch.nn.Module, Any, dict]:
    """The model with the checkpoint's weights and the ``<split>_dataloader`` dataset of ``cfg``.

    Checks run before the slow steps: every model task needs a registered visualizer, the
    checkpoint must match the model (strict), the split must exist and be non-empty.

    Returns:
        (model in eval mode on ``device``, dataset, the split's dataloader config).

    Raises:
        KeyError: an unknown split or a task without a visualizer.
        CheckpointError: a checkpoint that does not match (missing / unexpected / reshaped keys).
        ValueError: a split with no samples (naming the empty dataset) or an empty split file.
        FileNotFoundError: a missing split file or data folder.
    """
    from ..checkpoint import load_model_weights
    from ..registry import DATASETS, MODELS
    from ..training import register_all_modules

    key = f"{split}_dataloader"
    if split not in SPLITS or not cfg.get(key):
        have = [s for s in SPLITS if cfg.get(f"{s}_dataloader")]
        raise KeyError(
            f"--split {split!r}: the config has no {key}; splits it defines: {', '.join(have)}"
        )
    register_all_modules()
    model = MODELS.build(cfg.model)
    build_visualizers(model.tasks, getattr(model, "heads", None))
    load_model_weights(model, checkpoint)  # strict: lists mismatched keys
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    model.to(device).eval()
    try:
        dataset = DATASETS.build(cfg[key].dataset)
    except (ValueError, FileNotFoundError) as e:  # e.g. an empty split file
        cls = FileNotFoundError if isinstance(e, FileNotFoundError) else ValueError
        why = str(e)
        if "need at least one array to concatenate" in why:  # mmengine serializing no samples
            why = "a dataset has no samples (after its split file, indices and filters)"
        raise cls(f"--split {split!r} ({key}.dataset): {why}") from e
    empty = [name for name, _, n in dataset_parts(dataset) if n == 0]
    if len(dataset) == 0 or empty:
        raise ValueError(
            f"--split {split!r}: {key}.dataset has no samples"
            + (f" in dataset(s) {empty}" if empty else "")
            + "; check its split file and data_root"
        )
    return model, dataset, dict(cfg[key])


def predict(
    model: torch.nn.Module,
    dataset,
    indices: Sequence[int],
    batch_size: int = 4,
    num_workers: int = 0,
) -> Iterator[Any]:
    """The data samples of ``indices`` with the model's ``pred_*`` fields, in order."""
    loader = DataLoader(Subset(dataset, list(indices)), batch_size=max(1, batch_size),
                        shuffle=False, num_workers=num_workers,
                        collate_fn=pseudo_collate)  # fmt: skip
    with torch.no_grad():
        for batch in loader:
            yield from model.test_step(batch)


@dataclass
class VisualizationReport:
    """What `write_visualizations` wrote, and the per-sample metrics it measured."""

    out_dir: str
    figures: dict[str, list[FigureEntry]] = field(default_factory=dict)
    contact_sheets: dict[str, str] = field(default_factory=dict)
    index: str = ""
    metrics: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    seconds_rendering: float = 0.0
    seconds_total: float = 0.0

    def mean_metrics(self, dataset: str) -> str:
        """``'detection AP50 0.412 (n=8), ...'``: per-sample metrics averaged (NaN left out)."""
        means = []
        for key, values in self.metrics.get(dataset, {}).items():
            finite = [v for v in values if not math.isnan(v)]
            if finite:
                means.append(f"{key} {np.mean(finite):.3f} (n={len(finite)})")
        return ", ".join(means)

    def summary(self) -> str:
        """Lines saying where everything went and the mean per-sample metrics."""
        n = sum(len(v) for v in self.figures.values())
        lines = [
            f"wrote {n} figures in {self.seconds_total:.1f} s "
            f"(rendering {self.seconds_rendering:.1f} s) to {self.out_dir}"
        ]
        for dataset, entries in self.figures.items():
            means = self.mean_metrics(dataset)
            folder = osp.join(self.out_dir, _safe_name(dataset))
            lines.append(
                f"  {dataset}: {len(entries)} figures in {folder}/"
                + (f"; mean per-sample {means}" if means else "")
            )
            if dataset in self.contact_sheets:
                lines.append(f"    contact sheet: {self.contact_sheets[dataset]}")
        lines.append(f"index: {self.index}")
        return "\n".join(lines)


def write_visualizations(
    model: torch.nn.Module,
    dataset,
    out_dir: str,
    num_samples: int = 8,
    score_thr: float = 0.3,
    batch_size: int = 4,
    num_workers: int = 0,
    min_side: int = 256,
    notes: Sequence[str] = (),
    log: Callable[[str], None] | None = None,
) -> VisualizationReport:
    """Predict and render the first ``num_samples`` samples of every dataset in ``dataset``.

    Args:
        model: a model with ``tasks`` and ``test_step`` (`MultiTaskModel`), in eval mode.
        dataset: a `MultiTaskConcatDataset` (or one dataset) with a test pipeline.
        out_dir: where figures, contact sheets and ``index.html`` go (created).
        num_samples: samples per dataset.
        score_thr: detection boxes scored below it are not drawn.
        min_side: the shorter side of displayed images is scaled up to this many pixels.
        notes: lines shown at the top of ``index.html`` (config, checkpoint, ...).
        log: called with a line per dataset done.
    """
    if num_samples < 1:
        raise ValueError(f"num_samples must be >= 1, got {num_samples}")
    start = time.perf_counter()
    heads = getattr(model, "heads", None)
    visualizers = build_visualizers(model.tasks, heads)
    metas = datasets_meta(dataset)
    report = VisualizationReport(out_dir)
    os.makedirs(out_dir, exist_ok=True)
    for name, indices in first_indices(dataset, num_samples).items():
        folder = osp.join(out_dir, _safe_name(name))
        os.makedirs(folder, exist_ok=True)
        entries, thumbs, captions, used = [], [], [], set()
        per_task: dict[str, list[float]] = {}
        tmetas = task_metas(metas, name, model.tasks)
        for sample in predict(model, dataset, indices, batch_size, num_workers):
            t0 = time.perf_counter()
            fig = render_sample(sample, visualizers, tmetas, score_thr, min_side=min_side)
            stem = _safe_name(sample.metainfo.get("img_id", f"sample{len(entries)}"))
            while stem in used:
                stem += "_"
            used.add(stem)
            path = osp.join(folder, stem + ".png")
            if not cv2.imwrite(path, np.ascontiguousarray(fig.image[..., ::-1])):
                raise OSError(f"could not write {path}")
            thumbs.append(thumbnail(fig.image, THUMB_W, THUMB_H))
            report.seconds_rendering += time.perf_counter() - t0
            entries.append(FigureEntry(path, fig.title))
            short = ", ".join(format_metric(m) for m in fig.metrics.values())
            captions.append(f"{stem}: {short}" if short else stem)
            for task, (metric, value) in fig.metrics.items():
                per_task.setdefault(f"{task} {metric}", []).append(value)
        report.figures[name] = entries
        report.metrics[name] = per_task
        sheet_path = osp.join(out_dir, f"contact_sheet_{_safe_name(name)}.png")
        sheet = contact_sheet(thumbs, captions)
        cv2.imwrite(sheet_path, np.ascontiguousarray(sheet[..., ::-1]))
        report.contact_sheets[name] = sheet_path
        if log is not None:
            log(f"[visualize] {name}: {len(entries)} figures -> {folder}")
    summaries = {name: f"mean per-sample {m}" for name in report.figures
                 if (m := report.mean_metrics(name))}  # fmt: skip
    report.index = write_index_html(out_dir, report.figures, report.contact_sheets, notes=notes,
                                    summaries=summaries)  # fmt: skip
    report.seconds_total = time.perf_counter() - start
    return report


def dataloader_settings(loader_cfg: Mapping) -> tuple[int, int]:
    """(batch_size, num_workers) of a dataloader config, for prediction."""
    return int(loader_cfg.get("batch_size", 4)), int(loader_cfg.get("num_workers", 0))
