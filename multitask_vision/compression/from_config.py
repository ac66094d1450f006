"""Deploy from files: the training config, a checkpoint and a deploy config (what deploy.py,
train.py or the main job call)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch

from .config import DeployConfig, parse_deploy_config
from .pipeline import DeployResult, run_deploy

__all__ = [
    "block_names",
    "build_model",
    "check_inputs",
    "config_evaluate",
    "config_finetune",
    "deploy_from_config",
]


def block_names(cfg: Mapping) -> list[str]:
    """The model's block names, read from the config without building anything."""
    model = cfg.get("model") or {}
    return [b.get("name") for b in model.get("blocks", []) if isinstance(b, Mapping)]


def build_model(cfg) -> torch.nn.Module:
    """``cfg.model`` built in the config's default scope (weights not loaded)."""
    from mmengine.registry import DefaultScope

    from ..registry import MODELS
    from ..training import register_all_modules

    register_all_modules()
    if DefaultScope.get_current_instance() is None:
        DefaultScope.get_instance(
            f"deploy-{os.getpid()}", scope_name=cfg.get("default_scope", "mtv")
        )
    return MODELS.build(cfg.model)


def config_finetune(cfg, log: Callable[[str], None] = print) -> Callable:
    """The fine-tune after pruning on the config's ``train_dataloader`` and ``optim_wrapper``."""
    from mmengine.runner import Runner

    from .data import make_finetune

    return make_finetune(
        lambda seed: Runner.build_dataloader(cfg.train_dataloader, seed=seed),
        cfg.optim_wrapper,
        log,
    )


def config_evaluate(cfg, model, max_val_batches: int | None = None) -> Callable | None:
    """``evaluate(predict_fn)`` on the config's ``val_dataloader`` + ``val_evaluator``, or None
    when the config has none."""
    from mmengine.evaluator import Evaluator
    from mmengine.runner import Runner

    from .data import make_evaluate

    if not (cfg.get("val_dataloader") and cfg.get("val_evaluator")):
        return None
    loader = Runner.build_dataloader(cfg.val_dataloader)
    return make_evaluate(model, loader, Evaluator(cfg.val_evaluator), max_val_batches)


def check_inputs(
    cfg: Mapping, checkpoint: str, deploy: Mapping | DeployConfig | None
) -> DeployConfig:
    """Everything checkable before building: the deploy config against the model's blocks, the
    checkpoint file, and for ``method='qat'`` that the checkpoint is a QAT one.

    Raises:
        DeployConfigError, FileNotFoundError, QATCheckpointError, CheckpointError.
    """
    dcfg = (
        deploy
        if isinstance(deploy, DeployConfig)
        else parse_deploy_config(deploy, block_names(cfg))
    )
    if not os.path.isfile(checkpoint):
        raise FileNotFoundError(f"checkpoint {checkpoint!r} does not exist")
    if dcfg.quantization is not None and dcfg.quantization.method == "qat":
        from ..checkpoint import load_checkpoint_file
        from .qat import qat_meta_from_checkpoint

        qat_meta_from_checkpoint(load_checkpoint_file(checkpoint), checkpoint)
    return dcfg


def deploy_from_config(
    cfg,
    checkpoint: str,
    deploy: Mapping | DeployConfig | None,
    output_dir: str,
    overwrite: bool = False,
    evaluate: bool | Callable = True,
    max_val_batches: int | None = None,
    calibration: Iterable[Mapping] | None = None,
    log: Callable[[str], None] = print,
) -> DeployResult:
    """Build the model from ``cfg`` (an mmengine ``Config``), load ``checkpoint`` and run every
    stage of ``deploy`` into ``output_dir``.

    Args:
        cfg: the training config (``model``, ``train_dataloader``, ``val_dataloader``,
            ``val_evaluator``, ``optim_wrapper``).
        checkpoint: a checkpoint of that model (plain, physically pruned, or QAT).
        deploy: the ``deploy`` dict of a deploy config, or an already parsed ``DeployConfig``.
        output_dir: where the artifacts and ``report.json`` go.
        overwrite: replace a non-empty ``output_dir``.
        evaluate: True = the config's ``val_dataloader`` + ``val_evaluator``; False = no
            metrics; or an ``evaluate(predict_fn)`` callable.
        max_val_batches: evaluate on this many validation batches only (quick runs).
        calibration: preprocessed calibration batches; default: the training datasets read
            through the test pipeline (``data.calibration_loader_config``).
    """
    from .checkpoint import load_deploy_checkpoint
    from .data import build_calibration_loader, preprocessed

    dcfg = check_inputs(cfg, checkpoint, deploy)
    if os.path.isdir(output_dir) and os.listdir(output_dir) and not overwrite:
        raise FileExistsError(
            f"output folder {output_dir!r} is not empty; choose another --output or pass "
            "--overwrite to replace it"
        )
    model = build_model(cfg)
    example = torch.zeros(1, 3, *dcfg.export.img_size)
    loaded = load_deploy_checkpoint(
        model, checkpoint, example,
        require_qat=dcfg.quantization is not None and dcfg.quantization.method == "qat",
    )  # fmt: skip
    model.eval()
    log(
        f"[deploy] loaded {checkpoint}"
        + (f" (QAT: {loaded.qat}, {len(loaded.qat_overrides)} learned input ranges)"
           if loaded.qat else "")
        + (" (physically pruned)" if loaded.pruned else "")
    )  # fmt: skip
    if dcfg.quantization is not None and calibration is None:
        calibration = preprocessed(model, build_calibration_loader(cfg))
    eval_fn: Any = None
    if callable(evaluate):
        eval_fn = evaluate
    elif evaluate:
        eval_fn = config_evaluate(cfg, model, max_val_batches)
    finetune = None
    if dcfg.pruning is not None and dcfg.pruning.finetune is not None:
        finetune = config_finetune(cfg, log)
    return run_deploy(
        model, dcfg, output_dir, calibration=calibration, evaluate=eval_fn, finetune=finetune,
        qat_overrides=loaded.qat_overrides or None, overwrite=overwrite, log=log,
        extra_report=dict(checkpoint=os.path.abspath(checkpoint), qat=loaded.qat,
                          model_config=getattr(cfg, "filename", None)),
    )  # fmt: skip
