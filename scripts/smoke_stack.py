"""Smoke run of the OpenMMLab stack: a torchvision ResNet-18 with mmdet's FPN + FCOSHead and
mmseg's FCNHead, trained for a few SGD steps on random data with the heads' own losses.

    uv run python scripts/smoke_stack.py --steps 3

Stands in for the main job until train.py lands; prints the losses of each step.
"""

import argparse
import time

import mmdet.models  # noqa: F401  (registers mmdet's modules)
import mmseg.models  # noqa: F401
import torch
import torchvision
from mmdet.registry import MODELS as MMDET_MODELS
from mmengine.config import ConfigDict
from mmengine.structures import InstanceData, PixelData
from mmseg.registry import MODELS as MMSEG_MODELS
from mmseg.structures import SegDataSample


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--size", type=int, default=128)
    args = parser.parse_args()
    torch.manual_seed(0)

    resnet = torchvision.models.resnet18()
    fpn = MMDET_MODELS.build(
        dict(type="FPN", in_channels=[64, 128, 256, 512], out_channels=64, num_outs=4)
    )
    det = MMDET_MODELS.build(
        ConfigDict(
            type="FCOSHead",
            num_classes=3,
            in_channels=64,
            feat_channels=64,
            stacked_convs=2,
            strides=[4, 8, 16, 32],
            regress_ranges=((-1, 32), (32, 64), (64, 128), (128, 1e8)),
        )
    )
    seg = MMSEG_MODELS.build(
        dict(type="FCNHead", in_channels=512, channels=64, num_convs=1, num_classes=4)
    )
    params = [p for m in (resnet, fpn, det, seg) for p in m.parameters()]
    opt = torch.optim.SGD(params, lr=0.01, momentum=0.9)

    b, s = 2, args.size
    images = torch.randn(b, 3, s, s)
    meta = dict(img_shape=(s, s), pad_shape=(s, s), scale_factor=(1.0, 1.0))
    gt_instances = [
        InstanceData(bboxes=torch.tensor([[10.0, 12.0, 70.0, 80.0]]), labels=torch.tensor([1]))
        for _ in range(b)
    ]
    seg_samples = []
    for _ in range(b):
        sample = SegDataSample(metainfo=meta)
        sample.gt_sem_seg = PixelData(data=torch.randint(0, 4, (1, s, s)))
        seg_samples.append(sample)

    for step in range(args.steps):
        t0 = time.perf_counter()
        x = resnet.maxpool(resnet.relu(resnet.bn1(resnet.conv1(images))))
        feats = []
        for layer in (resnet.layer1, resnet.layer2, resnet.layer3, resnet.layer4):
            x = layer(x)
            feats.append(x)
        losses = det.loss_by_feat(*det(fpn(feats)), gt_instances, [meta] * b)
        losses.update(seg.loss_by_feat(seg([feats[-1]]), seg_samples))
        total = sum(v for k, v in losses.items() if k.startswith("loss"))
        opt.zero_grad()
        total.backward()
        opt.step()
        terms = "  ".join(f"{k}={float(v):.4f}" for k, v in losses.items())
        print(
            f"step {step + 1}/{args.steps}  total={float(total):.4f}  {terms}  "
            f"({time.perf_counter() - t0:.2f} s)"
        )
    print("smoke run finished: mmdet FPN + FCOSHead and mmseg FCNHead trained on CPU")


if __name__ == "__main__":
    main()
