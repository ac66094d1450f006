"""Do graph optimizers remove zeroed channels? Masked vs physically pruned ONNX files.

    uv run python benchmarks/masked_channels.py --amount 0.5

Builds the demo model (configs/demo_det_seg_depth_mmlab.py, ResNet-18 + FPN + FCOS / FCN /
depth heads), zeroes ``amount`` of the output channels of every prunable conv with
``torch.nn.utils.prune.ln_structured`` (the heads' output layers excluded), makes the masks
permanent and exports to ONNX. Then it lets ONNX Runtime optimize the file offline (every
level it can serialize) and, if installed, onnxslim; and for comparison removes the same
fraction of channels physically (Torch-Pruning). Prints file sizes, conv weight elements and how
many conv weights still hold all-zero output channels.
"""

from __future__ import annotations

import argparse
import copy
import os
import tempfile

import numpy as np
import onnx
import torch
from mmengine.config import Config
from onnx import numpy_helper


def conv_stats(path: str) -> tuple[float, int, str]:
    """(MB on disk, conv weight elements, convs with an all-zero output channel)."""
    model = onnx.load(path)
    inits = {i.name: i for i in model.graph.initializer}
    elements = zero_convs = 0
    blocked = False
    for node in model.graph.node:
        if node.op_type in ("Conv", "FusedConv", "NchwcConv") and node.input[1] in inits:
            w = numpy_helper.to_array(inits[node.input[1]])
            elements += w.size
            zero_convs += int((np.abs(w.reshape(w.shape[0], -1)).sum(1) == 0).any())
            blocked |= node.domain == "com.microsoft.nchwc"
    # NCHWc weights are reordered into channel blocks (padded to the block size)
    return os.path.getsize(path) / 1e6, elements, "n/a" if blocked else str(zero_convs)


def ort_optimize(src: str, dst: str, level: str) -> None:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = getattr(ort.GraphOptimizationLevel, level)
    so.optimized_model_filepath = dst
    so.log_severity_level = 3
    ort.InferenceSession(src, so, providers=["CPUExecutionProvider"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default="configs/demo_det_seg_depth_mmlab.py")
    parser.add_argument("--amount", type=float, default=0.5)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--keep", default=None, help="folder to keep the ONNX files in")
    args = parser.parse_args()

    from multitask_vision.compression.export import ExportModule, export_onnx
    from multitask_vision.compression.from_config import build_model
    from multitask_vision.compression.pruning import (
        find_output_layers,
        mask_structured,
        prunable_layers,
        prune_channels,
        remove_masks,
    )

    cfg = Config.fromfile(args.config)
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    x = torch.randn(1, 3, args.size, args.size)
    out = args.keep or tempfile.mkdtemp()
    os.makedirs(out, exist_ok=True)
    files = {}

    dense = os.path.join(out, "dense.onnx")
    export_onnx(ExportModule(model).eval(), dense, x, None)
    files["dense (no pruning)"] = dense

    masked_model = copy.deepcopy(model)
    layers = prunable_layers(masked_model, None, find_output_layers(masked_model, x))
    mask_structured(layers, args.amount, norm=1)
    remove_masks(masked_model)
    masked = os.path.join(out, "masked.onnx")
    export_onnx(ExportModule(masked_model).eval(), masked, x, None)
    files[f"masked {args.amount:.0%} (ln_structured)"] = masked
    # ORT_ENABLE_ALL adds layout (NCHWc) transforms; ONNX Runtime saves them with a warning that
    # the file is specific to this CPU.
    for level in ("ORT_ENABLE_BASIC", "ORT_ENABLE_EXTENDED", "ORT_ENABLE_ALL"):
        opt = os.path.join(out, f"masked_ort_{level.lower()}.onnx")
        ort_optimize(masked, opt, level)
        files[f"  + ONNX Runtime {level}"] = opt
    try:
        import onnxslim

        slim = os.path.join(out, "masked_onnxslim.onnx")
        onnx.save(onnxslim.slim(onnx.load(masked)), slim)
        files["  + onnxslim"] = slim
    except ImportError:
        print("onnxslim is not installed here; check it with: onnxslim masked.onnx out.onnx")

    pruned_model = copy.deepcopy(model)
    prune_channels(pruned_model, x, args.amount)
    pruned = os.path.join(out, "pruned.onnx")
    export_onnx(ExportModule(pruned_model).eval(), pruned, x, None)
    files[f"channels removed {args.amount:.0%} (Torch-Pruning)"] = pruned

    print(f"\n{'model':<44} {'file (MB)':>10} {'conv weights':>13} {'convs w/ zero ch.':>18}")
    for name, path in files.items():
        mb, elements, zeros = conv_stats(path)
        print(f"{name:<44} {mb:>10.2f} {elements:>13,} {zeros:>18}")
    print(f"\nfiles in {out}")


if __name__ == "__main__":
    main()
