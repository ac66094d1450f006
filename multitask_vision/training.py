"""Building the mmengine Runner from a config: the library side of ``train.py`` / ``test.py``."""

from __future__ import annotations

import os
import os.path as osp
from collections.abc import Mapping

import torch
from mmengine.config import Config, ConfigDict

from .checkpoint import (
    CheckpointError,
    check_checkpoint_matches,
    checkpoint_state_dict,
    load_checkpoint_file,
)
from .runner import MultiTaskRunner, find_latest_checkpoint

__all__ = ["build_runner", "register_all_modules"]


def register_all_modules(init_default_scope: bool = True) -> None:
    """Import every module that registers something, so configs can name it (scope ``mtv``);
    with ``init_default_scope``, make ``mtv`` the default scope (as mmdet's function does)."""
    import multitask_vision.blocks  # noqa: F401
    import multitask_vision.compression.qat  # noqa: F401  (QATCheckpointHook)
    import multitask_vision.data  # noqa: F401
    import multitask_vision.evaluation  # noqa: F401
    import multitask_vision.hooks  # noqa: F401
    import multitask_vision.loops  # noqa: F401
    import multitask_vision.multitask_model  # noqa: F401
    import multitask_vision.visualization  # noqa: F401

    if init_default_scope:
        from mmengine.registry import init_default_scope as _init

        _init("mtv")


def _ensure_hook(cfg: Config, hook_type: str, **kwargs) -> None:
    hooks = list(cfg.get("custom_hooks", []) or [])
    if not any(h.get("type") == hook_type for h in hooks):
        hooks.append(dict(type=hook_type, **kwargs))
    cfg.custom_hooks = hooks


def _check_data_exists(cfg: Config) -> None:
    """Fail early, naming the data root and the command that fetches it."""
    roots = set()

    def walk(node):
        if isinstance(node, Mapping):
            if isinstance(node.get("data_root"), str):
                roots.add(node["data_root"])
            for v in node.values():
                walk(v)
        elif isinstance(node, (list, tuple)):
            for v in node:
                walk(v)

    for key in ("train_dataloader", "val_dataloader", "test_dataloader"):
        walk(cfg.get(key))
    missing = sorted(r for r in roots if not osp.isdir(r))
    if missing:
        hint = cfg.get("data_hint", "bash scripts/download_data.sh")
        raise FileNotFoundError(
            f"dataset folder(s) {missing} do not exist; run `{hint}` first (or point data_root "
            "at your copy with --cfg-options)"
        )


def build_runner(
    cfg: Config,
    work_dir: str | None = None,
    resume: str | None = None,
    cfg_options: Mapping | None = None,
    launcher: str = "none",
    amp: bool = False,
    config_path: str | None = None,
    load_from: str | None = None,
) -> MultiTaskRunner:
    """Apply command-line overrides to ``cfg`` and build the runner.

    Args:
        cfg: the loaded config.
        work_dir: overrides ``cfg.work_dir``; default ``work_dirs/<config file stem>``.
        resume: ``'auto'`` (``<work_dir>/latest.pth``, an error if there is none) or a path.
        cfg_options: ``--cfg-options`` overrides.
        launcher: ``'none'`` or a distributed launcher (``'pytorch'`` for torchrun).
        amp: mixed precision through mmengine's ``AmpOptimWrapper`` (CUDA only).
        config_path: the config file, for the default work dir.
        load_from: weights to start from (not a resume: iteration 0, fresh optimizer).
    """
    register_all_modules()
    if cfg_options:
        cfg.merge_from_dict(dict(cfg_options))
    cfg.launcher = launcher
    stem = osp.splitext(osp.basename(config_path or "config.py"))[0]
    cfg.work_dir = work_dir or cfg.get("work_dir") or osp.join("work_dirs", stem)
    cfg.setdefault("default_scope", "mtv")

    if amp:
        if not torch.cuda.is_available():
            raise RuntimeError(
                "--amp needs a CUDA GPU: mmengine's AmpOptimWrapper does not run on the CPU; "
                "train without --amp here"
            )
        cfg.optim_wrapper.type = "AmpOptimWrapper"
        cfg.optim_wrapper.setdefault("loss_scale", "dynamic")

    if resume is not None:
        path = find_latest_checkpoint(cfg.work_dir) if resume == "auto" else resume
        if path is None:
            raise FileNotFoundError(
                f"--resume: no {osp.join(cfg.work_dir, 'latest.pth')} to resume from; give a "
                "checkpoint path or the --work-dir of the interrupted run"
            )
        try:
            resume_state = checkpoint_state_dict(load_checkpoint_file(path))
        except CheckpointError as e:  # a clear error now, not deep inside the runner
            raise CheckpointError(f"--resume: {e}") from e
        cfg.resume, cfg.load_from = True, path
    else:
        resume_state = None
    if load_from is not None and resume is None:
        cfg.resume, cfg.load_from = False, load_from

    if launcher != "none":
        if not torch.cuda.is_available():  # NCCL needs GPUs; gloo runs DDP on CPU processes
            cfg.setdefault("env_cfg", ConfigDict()).setdefault("dist_cfg", ConfigDict())
            cfg.env_cfg.dist_cfg.backend = "gloo"
            if launcher == "pytorch" and not torch.distributed.is_initialized():
                # mmengine's init_dist calls torch.cuda.set_device, which fails without a GPU
                # on a CUDA build of torch; the Runner keeps a group that already exists.
                torch.distributed.init_process_group(backend="gloo")
        wrapper = dict(cfg.get("model_wrapper_cfg") or {})
        wrapper.setdefault("type", "MMDistributedDataParallel")
        # Heads of tasks absent from a batch get no gradient in that step.
        wrapper.setdefault("find_unused_parameters", True)
        if not torch.cuda.is_available():
            wrapper.setdefault("device_ids", None)  # CPU processes: no device to pin
        cfg.model_wrapper_cfg = ConfigDict(wrapper)
    _ensure_hook(cfg, "RNGStateHook")
    _ensure_hook(cfg, "SafeCheckpointHook")
    _check_data_exists(cfg)
    os.makedirs(cfg.work_dir, exist_ok=True)
    runner = MultiTaskRunner.from_cfg(cfg)
    if resume_state is not None:
        # mmengine resumes non-strictly (a warning); a checkpoint of another model is an error.
        model = runner.model.module if hasattr(runner.model, "module") else runner.model
        check_checkpoint_matches(model, resume_state, cfg.load_from)
    return runner
