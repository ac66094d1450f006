"""Deployment: pruning, int8 quantization (post-training and QAT), export, verification, report.

Entry point: ``deploy.py`` (thin) -> :func:`run_deploy`. The pieces:

- ``config``: the deploy config, validated in full before anything runs;
- ``pruning``: ``torch.nn.utils.prune`` masks and physical channel removal (Torch-Pruning);
- ``quantization``: ONNX Runtime static int8 (QDQ, per-channel), calibrated on real images;
- ``qat``: ``prepare_qat`` for training, conversion of QAT checkpoints to the same int8 path;
- ``export``: ONNX (dynamo exporter) / TorchScript of the whole model or chosen blocks, checked
  against eager;
- ``decode``: NumPy reference decoders of the exported raw outputs (NMS outside the graph);
- ``runtime`` / ``latency`` / ``report``: ONNX Runtime predictors, timing, ``report.json``.
"""

from .checkpoint import LoadedCheckpoint, load_deploy_checkpoint, save_checkpoint
from .config import DeployConfig, DeployConfigError, FinetuneConfig, parse_deploy_config
from .data import build_calibration_loader, make_evaluate, make_finetune, preprocessed
from .decode import decode, io_spec
from .export import ExportModule, export_onnx, export_torchscript, verify_onnx, verify_torchscript
from .pipeline import DeployResult, ExportParityError, run_deploy
from .pruning import (
    find_output_layers,
    mask_structured,
    mask_unstructured,
    prune_channels,
    remove_masks,
)
from .qat import (
    QATCheckpointError,
    QATCheckpointHook,
    load_qat_checkpoint,
    prepare_qat,
    qat_meta,
    set_qat_state,
    strip_qat,
)
from .quantization import quantize_onnx
from .runtime import ExportedPredictor, eager_predict_fn

__all__ = [
    "DeployConfig",
    "DeployConfigError",
    "DeployResult",
    "ExportModule",
    "ExportParityError",
    "ExportedPredictor",
    "FinetuneConfig",
    "LoadedCheckpoint",
    "QATCheckpointError",
    "QATCheckpointHook",
    "build_calibration_loader",
    "decode",
    "eager_predict_fn",
    "export_onnx",
    "export_torchscript",
    "find_output_layers",
    "io_spec",
    "load_deploy_checkpoint",
    "load_qat_checkpoint",
    "make_evaluate",
    "make_finetune",
    "mask_structured",
    "mask_unstructured",
    "parse_deploy_config",
    "prepare_qat",
    "preprocessed",
    "prune_channels",
    "qat_meta",
    "quantize_onnx",
    "remove_masks",
    "run_deploy",
    "save_checkpoint",
    "set_qat_state",
    "strip_qat",
    "verify_onnx",
    "verify_torchscript",
]
