"""Graph overhead: forward + backward through the block graph vs the same blocks wired by hand.

    uv run python benchmarks/graph_overhead.py --size 128 --batch 2 --repeats 15

Both variants share the very same module objects (ResNet-18, mmdet FPN + FCOSHead, mmseg
FCNHead, native DenseDepthHead) and inputs; runs alternate between them so that machine noise hits
both alike. Prints a table of median times and the ratio graph / hand-wired (target <= 1.03).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn

from multitask_vision.multitask_model import MultiTaskModel

BLOCKS = [
    dict(name="backbone", type="ResNetBackbone", inputs=["image"], args=dict(depth=18)),
    dict(name="neck", type="FPN", scope="mmdet", inputs=["backbone"],
         args=dict(in_channels=[64, 128, 256, 512], out_channels=64, num_outs=4)),
    dict(name="det_head", type="FCOSHead", inputs=["neck"], task="detection",
         args=dict(num_classes=20, in_channels=64, feat_channels=64, stacked_convs=2,
                   strides=[4, 8, 16, 32],
                   regress_ranges=((-1, 32), (32, 64), (64, 128), (128, 1e8)))),
    dict(name="seg_head", type="FCNHead", scope="mmseg", inputs=["backbone.layer4"],
         task="segmentation", args=dict(in_channels=512, channels=64, num_classes=21)),
    dict(name="depth_head", type="DenseDepthHead", inputs=["backbone.layer4"], task="depth",
         args=dict(in_channels=512, channels=64)),
]  # fmt: skip
LOSSES = dict(detection=dict(weight=1.0), segmentation=dict(weight=1.0), depth=dict(weight=1.0))


class HandWired(nn.Module):
    """The same blocks, called directly in the order and conventions each library expects."""

    def __init__(self, blocks: nn.ModuleDict):
        super().__init__()
        self.backbone, self.neck = blocks["backbone"], blocks["neck"]
        self.det_head, self.seg_head = blocks["det_head"], blocks["seg_head"]
        self.depth_head = blocks["depth_head"]

    def forward(self, image):
        feats = self.backbone(image)
        det = self.det_head(self.neck(tuple(feats.values())))
        seg = self.seg_head([feats["layer4"]])
        depth = self.depth_head(feats["layer4"])
        return det, seg, depth


def _total(outputs) -> torch.Tensor:
    if isinstance(outputs, torch.Tensor):
        return outputs.float().mean()
    if isinstance(outputs, dict):
        outputs = list(outputs.values())
    return sum(_total(o) for o in outputs)


def _step(fn, image) -> float:
    t0 = time.perf_counter()
    _total(fn(image)).backward()
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    model = MultiTaskModel(BLOCKS, LOSSES, data_preprocessor=dict(type="BaseDataPreprocessor"))
    model.train()
    hand = HandWired(model.blocks).train()
    image = torch.randn(args.batch, 3, args.size, args.size)

    def graph(x):
        return model(x, mode="tensor")

    # same outputs, or the comparison is meaningless
    with torch.no_grad():
        model.eval()
        g, h = graph(image), hand(image)
        model.train()
    assert torch.allclose(_total(g), _total(h)), "graph and hand-wired outputs differ"

    for _ in range(3):  # warm-up (allocator, oneDNN primitive caches)
        _step(graph, image)
        _step(hand, image)
    times = {"graph": [], "hand-wired": []}
    for i in range(args.repeats):
        order = [("graph", graph), ("hand-wired", hand)]
        for name, fn in order if i % 2 == 0 else order[::-1]:
            model.zero_grad(set_to_none=True)
            times[name].append(_step(fn, image))
    med = {k: statistics.median(v) for k, v in times.items()}
    print(
        f"forward+backward, batch {args.batch}, {args.size}x{args.size}, "
        f"{args.threads} threads, median of {args.repeats} alternating runs"
    )
    print("| variant    | median ms | min ms |")
    print("|------------|-----------|--------|")
    for k, v in times.items():
        print(f"| {k:<10} | {1000 * med[k]:9.1f} | {1000 * min(v):6.1f} |")
    print(
        f"ratio graph / hand-wired (median): {med['graph'] / med['hand-wired']:.3f} "
        "(target <= 1.03)"
    )


if __name__ == "__main__":
    main()
