"""Data for deployment: calibration / validation loaders from the training config, the
``evaluate(predict_fn)`` callable and the default short fine-tune.

The pipeline itself (``pipeline.run_deploy``) only takes callables and iterables, so train.py,
the main job or a test can plug in their own.
"""

from __future__ import annotations

import copy
import itertools
import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import torch
from torch import nn

from .config import FinetuneConfig

__all__ = [
    "build_calibration_loader",
    "calibration_loader_config",
    "make_evaluate",
    "lr_factor",
    "make_finetune",
    "preprocessed",
]


def preprocessed(model: nn.Module, loader: Iterable) -> Iterator[dict]:
    """Batches of ``loader`` through the model's data preprocessor (evaluation mode)."""
    for data in loader:
        with torch.no_grad():
            batch = model.data_preprocessor(data, False)
        yield batch  # outside no_grad: a suspended generator would keep grad mode off


def _find_pipeline(node) -> list | None:
    if isinstance(node, Mapping):
        if isinstance(node.get("pipeline"), list):
            return node["pipeline"]
        for v in node.values():
            found = _find_pipeline(v)
            if found is not None:
                return found
    elif isinstance(node, (list, tuple)):
        for v in node:
            found = _find_pipeline(v)
            if found is not None:
                return found
    return None


def _replace_pipelines(node, pipeline: list):
    if isinstance(node, Mapping):
        return {
            k: copy.deepcopy(pipeline) if k == "pipeline" else _replace_pipelines(v, pipeline)
            for k, v in node.items()
        }
    if isinstance(node, (list, tuple)):
        return type(node)(_replace_pipelines(v, pipeline) for v in node)
    return node


def calibration_loader_config(cfg: Mapping, seed: int = 0) -> dict:
    """Calibration images: the TRAINING datasets read through the TEST pipeline (no
    augmentation; the val split stays unseen), shuffled with a fixed seed so every dataset is
    represented, one image per batch.

    Uses ``cfg['calibration_dataloader']`` as is when the config has one; falls back to the
    val dataloader when there is no training dataloader.
    """
    if cfg.get("calibration_dataloader"):
        return copy.deepcopy(dict(cfg["calibration_dataloader"]))
    val = cfg.get("val_dataloader")
    train = cfg.get("train_dataloader")
    if train is None and val is None:
        raise ValueError(
            "quantization needs calibration images: the config has no train_dataloader, "
            "val_dataloader or calibration_dataloader"
        )
    if train is None:
        dataset = copy.deepcopy(dict(val["dataset"]))
    else:
        test_pipeline = _find_pipeline(val) if val is not None else None
        dataset = dict(train["dataset"])
        if test_pipeline is not None:
            dataset = _replace_pipelines(dataset, test_pipeline)
    base = val if val is not None else train
    return dict(
        batch_size=1,
        num_workers=0,
        dataset=dataset,
        sampler=dict(type="DefaultSampler", shuffle=True, seed=seed),
        collate_fn=copy.deepcopy(base.get("collate_fn", dict(type="pseudo_collate"))),
    )


def build_calibration_loader(cfg: Mapping, seed: int = 0):
    from mmengine.runner import Runner

    return Runner.build_dataloader(calibration_loader_config(cfg, seed), seed=seed)


def make_evaluate(
    model: nn.Module, loader, evaluator, max_batches: int | None = None
) -> Callable[[Callable], dict[str, float]]:
    """``evaluate(predict_fn) -> {metric: value}`` over ``loader`` with an mmengine
    ``Evaluator`` (e.g. built from ``cfg.val_evaluator``: ``MultiTaskMetric`` or mmlab metrics).

    Args:
        model: provides the data preprocessor.
        loader: the validation dataloader.
        evaluator: an mmengine ``Evaluator``.
        max_batches: evaluate only this many batches (quick checks), None = all.
    """
    meta = getattr(loader.dataset, "metainfo", None)

    def evaluate(predict_fn: Callable[[Mapping], list]) -> dict[str, float]:
        if meta is not None:
            evaluator.dataset_meta = meta
        n = 0
        for data in itertools.islice(loader, max_batches):
            with torch.no_grad():
                batch = model.data_preprocessor(data, False)
                samples = predict_fn(batch)
            evaluator.process(data_samples=samples, data_batch=data)
            n += len(samples)
        return {k: float(v) for k, v in evaluator.evaluate(n).items()}

    return evaluate


def make_finetune(loader, optim_wrapper_cfg: Mapping, log=print) -> Callable:
    """``finetune(model, FinetuneConfig, teacher)``: ``iters`` steps of the model's own
    ``train_step`` (the step mmengine's training loop runs) with a fresh optimizer from the
    training config, the fine-tune's learning-rate schedule, and distillation from ``teacher``
    (the unpruned model) when ``FinetuneConfig.distill`` is set.

    Args:
        loader: the training data loader, or a callable ``seed -> loader`` (built with
            ``FinetuneConfig.seed``, so the data order and augmentations repeat).
        optim_wrapper_cfg: the training config's ``optim_wrapper``.
    """

    def finetune(model: nn.Module, cfg: FinetuneConfig, teacher: nn.Module | None = None) -> None:
        from mmengine.optim import build_optim_wrapper

        torch.manual_seed(cfg.seed)
        data = loader(cfg.seed) if callable(loader) else loader

        wrapper_cfg = copy.deepcopy(dict(optim_wrapper_cfg))
        if cfg.lr is not None:
            wrapper_cfg["optimizer"] = dict(wrapper_cfg["optimizer"], lr=cfg.lr)
        if wrapper_cfg.get("type") == "AmpOptimWrapper":  # a CPU fine-tune runs in fp32
            wrapper_cfg["type"] = "OptimWrapper"
            wrapper_cfg.pop("loss_scale", None)
        optim_wrapper = build_optim_wrapper(model, wrapper_cfg)
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optim_wrapper.optimizer, lambda step: lr_factor(step, cfg)
        )
        aux = None
        if cfg.distill is not None:
            if teacher is None:
                raise ValueError("deploy.pruning.finetune.distill is set but no teacher was given")
            from .distill import HeadDistillation

            aux = HeadDistillation(teacher, cfg.distill.weight, cfg.distill.tasks)
            model.auxiliary_losses.append(aux)
        model.train()
        data_iter = _forever(data)
        sums: dict[str, list[float]] = {}
        try:
            for it in range(1, cfg.iters + 1):
                losses = model.train_step(next(data_iter), optim_wrapper)
                scheduler.step()
                for k, v in losses.items():
                    if k.startswith("loss_"):  # batches of different tasks log different terms
                        sums.setdefault(k, []).append(
                            float(v.detach()) if torch.is_tensor(v) else float(v)
                        )
                if it % cfg.log_interval == 0 or it == cfg.iters:
                    shown = ", ".join(f"{k}={sum(v) / len(v):.4f}" for k, v in sorted(sums.items()))
                    log(f"[deploy] fine-tune {it}/{cfg.iters} (means since last line): {shown}")
                    sums.clear()
        finally:
            if aux is not None:
                model.auxiliary_losses.remove(aux)
            model.eval()

    return finetune


def lr_factor(step: int, cfg: FinetuneConfig) -> float:
    """Learning-rate factor of fine-tune step ``step`` (0-based): linear warm-up over
    ``warmup_iters``, then constant or cosine decay to 1% at the last step."""
    if step < cfg.warmup_iters:
        return (step + 1) / cfg.warmup_iters
    if cfg.schedule == "constant":
        return 1.0
    progress = (step - cfg.warmup_iters) / max(1, cfg.iters - 1 - cfg.warmup_iters)
    return 0.01 + 0.99 * 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))


def _forever(loader) -> Iterator[Any]:
    while True:
        yield from loader
