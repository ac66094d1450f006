"""The embedded demo data: a small VOC tree and a small NYU tree, written from procedural scenes.

    python -m multitask_vision.data.demo --root data/demo        # a few seconds; idempotent

It writes the two real on-disk formats, read by the real loaders:

    data/demo/VOCdevkit/VOC2012/   JPEGImages, Annotations (XML with truncated / difficult),
                                   SegmentationClass (palette PNG, 255 boundary band and
                                   difficult objects), ImageSets/Main + ImageSets/Segmentation
                                   (train / val / trainval). About half the images have a mask,
                                   as in VOC, so both task groups exist.
    data/demo/nyu_depth_v2/        rgb/, depth/ (16-bit mm, with Kinect-like holes = 0),
                                   label6/ (floor, wall, 4 shapes), train.txt / test.txt:
                                   the layout the NYU converter writes (``label6`` in place of
                                   ``label40``; no ``depth_raw``: ``depth`` already has holes).

Classes (both datasets): circle, square, triangle, cross, told apart by shape only. Images are
small (VOC-like 112-160 px, NYU-like 160x120) and objects large, so a small model learns all
three tasks in minutes on a CPU. Every image comes from its own seeded generator, so the data
are identical for a seed whatever the order or the machine.

Use `demo_voc_dataset` / `demo_nyu_dataset` for dataset configs pointing at the tree.
"""

from __future__ import annotations

import argparse
import json
import os
import os.path as osp
import shutil
import sys
import time

import cv2
import numpy as np

from multitask_vision.data.demo_scenes import (
    NYU_DEMO_CLASSES,
    SHAPES,
    render_nyu_scene,
    render_voc_scene,
)
from multitask_vision.data.voc import save_palette_png, voc_annotation_xml, voc_colormap

__all__ = [
    "DEMO_NYU_METAINFO",
    "DEMO_VOC_METAINFO",
    "demo_nyu_dataset",
    "demo_voc_dataset",
    "make_demo_data",
]

DEMO_VERSION = 1  # bump when the rendering changes: existing trees are then rewritten
DEMO_VOC_METAINFO = dict(dataset_name="demo_voc", classes=SHAPES)
DEMO_NYU_METAINFO = dict(
    dataset_name="demo_nyu", classes=NYU_DEMO_CLASSES, seg_classes=NYU_DEMO_CLASSES
)
MANIFEST = "demo_manifest.json"
VOC_SUBDIR = osp.join("VOCdevkit", "VOC2012")
NYU_SUBDIR = "nyu_depth_v2"
NYU_SEG_DIR = "label6"
_VOC_SIZES = (112, 128, 144, 160)


def demo_voc_dataset(root: str = "data/demo", split: str = "train", **kwargs) -> dict:
    """Config of the demo VOC dataset (``split`` 'train', 'val' or 'trainval')."""
    return dict(
        type="VOCMultitaskDataset",
        data_root=osp.join(root, VOC_SUBDIR),
        split=split,
        metainfo=dict(DEMO_VOC_METAINFO),
        **kwargs,
    )


def demo_nyu_dataset(root: str = "data/demo", split: str = "train", **kwargs) -> dict:
    """Config of the demo NYU dataset (``split`` 'train' or 'test'); tasks default to depth+seg."""
    kwargs.setdefault("tasks", ("depth", "segmentation"))
    return dict(
        type="NYUDepthDataset",
        data_root=osp.join(root, NYU_SUBDIR),
        split=split,
        seg_map_dir=NYU_SEG_DIR,
        metainfo=dict(DEMO_NYU_METAINFO),
        **kwargs,
    )


def _write_lines(path: str, lines: list[str]) -> None:
    with open(path, "w") as f:
        f.write("".join(line + "\n" for line in lines))


def _write_voc(root: str, seed: int, num_train: int, num_val: int, scale: int) -> dict[str, int]:
    out = osp.join(root, VOC_SUBDIR)
    for d in (
        "JPEGImages",
        "Annotations",
        "SegmentationClass",
        "ImageSets/Main",
        "ImageSets/Segmentation",
    ):
        os.makedirs(osp.join(out, d), exist_ok=True)
    palette = voc_colormap(256)
    splits = {"train": [], "val": []}
    seg_splits = {"train": [], "val": []}
    counts = dict(images=0, masks=0, objects=0, difficult=0, truncated=0)
    for i in range(num_train + num_val):
        split = "train" if i < num_train else "val"
        rng = np.random.default_rng([seed, 0, i])
        h, w = (int(rng.choice(_VOC_SIZES)) * scale for _ in range(2))
        scene = render_voc_scene(rng, h, w, band=scale, margin=24 * scale)
        segmented = bool(rng.random() < 0.5)
        img_id = f"2026_{i + 1:06d}"
        cv2.imwrite(
            osp.join(out, "JPEGImages", img_id + ".jpg"),
            scene.image[..., ::-1],
            [cv2.IMWRITE_JPEG_QUALITY, 92],
        )
        with open(osp.join(out, "Annotations", img_id + ".xml"), "w") as f:
            f.write(voc_annotation_xml(img_id, w, h, scene.objects, segmented))
        splits[split].append(img_id)
        if segmented:
            save_palette_png(
                osp.join(out, "SegmentationClass", img_id + ".png"), scene.class_mask, palette
            )
            seg_splits[split].append(img_id)
            counts["masks"] += 1
        counts["images"] += 1
        counts["objects"] += len(scene.objects)
        counts["difficult"] += sum(o["difficult"] for o in scene.objects)
        counts["truncated"] += sum(o["truncated"] for o in scene.objects)
    for folder, lists in (("Main", splits), ("Segmentation", seg_splits)):
        for split, ids in lists.items():
            _write_lines(osp.join(out, "ImageSets", folder, f"{split}.txt"), ids)
        _write_lines(
            osp.join(out, "ImageSets", folder, "trainval.txt"), lists["train"] + lists["val"]
        )
    return counts


def _write_nyu(root: str, seed: int, num_train: int, num_val: int, scale: int) -> dict[str, int]:
    out = osp.join(root, NYU_SUBDIR)
    for d in ("rgb", "depth", NYU_SEG_DIR):
        os.makedirs(osp.join(out, d), exist_ok=True)
    total = num_train + num_val
    # Interleaved like the official split: frame ids in order, a seeded choice of test frames.
    is_test = np.zeros(total, bool)
    is_test[np.random.default_rng([seed, 1]).choice(total, num_val, replace=False)] = True
    counts = dict(frames=0, invalid_pixels=0, pixels=0)
    for i in range(total):
        rng = np.random.default_rng([seed, 2, i])
        scene = render_nyu_scene(rng, 120 * scale, 160 * scale)
        fid = f"{i + 1:04d}"
        cv2.imwrite(osp.join(out, "rgb", fid + ".png"), scene.image[..., ::-1])
        depth_mm = np.clip(np.round(scene.depth * 1000.0), 0, 65535).astype(np.uint16)
        cv2.imwrite(osp.join(out, "depth", fid + ".png"), depth_mm)
        cv2.imwrite(osp.join(out, NYU_SEG_DIR, fid + ".png"), scene.labels)
        counts["frames"] += 1
        counts["invalid_pixels"] += int((depth_mm == 0).sum())
        counts["pixels"] += depth_mm.size
    ids = [f"{i + 1:04d}" for i in range(total)]
    _write_lines(
        osp.join(out, "train.txt"), [f for f, t in zip(ids, is_test, strict=True) if not t]
    )
    _write_lines(osp.join(out, "test.txt"), [f for f, t in zip(ids, is_test, strict=True) if t])
    return counts


def make_demo_data(
    root: str = "data/demo",
    seed: int = 0,
    num_train: int = 300,
    num_val: int = 80,
    force: bool = False,
    scale: int = 1,
    log=print,
) -> dict:
    """Write the demo trees under ``root`` unless a complete copy with the same settings exists.

    ``scale`` multiplies image sizes (4: VOC-like 448-640 px, NYU 640x480; for benchmarks).

    Returns:
        The manifest: settings, counts, and ``voc_root`` / ``nyu_root`` paths.

    Raises:
        FileExistsError: ``root`` holds a VOC or NYU tree the generator did not write (no
            manifest) and ``force`` is False.
    """
    settings = dict(version=DEMO_VERSION, seed=seed, num_train=num_train, num_val=num_val)
    if scale != 1:  # larger images, e.g. scale=4 for VOC / NYU sizes in benchmarks
        settings["scale"] = scale
    manifest_path = osp.join(root, MANIFEST)
    trees = [osp.join(root, VOC_SUBDIR), osp.join(root, NYU_SUBDIR)]
    old = None
    if osp.isfile(manifest_path):
        with open(manifest_path) as f:
            old = json.load(f)
        if not force and old.get("complete") and old.get("settings") == settings:
            log(f"[demo] {root}: demo data already complete ({_describe(old)}); nothing to do")
            return old
    elif any(osp.exists(t) for t in trees) and not force:
        raise FileExistsError(
            f"{root} already holds {' and '.join(t for t in trees if osp.exists(t))} without a "
            f"{MANIFEST}: not written by the demo generator; choose another --root or --force"
        )
    for t in trees:
        if osp.exists(t):
            shutil.rmtree(t)
    os.makedirs(root, exist_ok=True)
    manifest = dict(settings=settings, complete=False)
    with open(manifest_path, "w") as f:
        json.dump(manifest, f)
    start = time.time()
    manifest["voc"] = _write_voc(root, seed, num_train, num_val, scale)
    manifest["nyu"] = _write_nyu(root, seed, num_train, num_val, scale)
    manifest.update(complete=True, voc_root=trees[0], nyu_root=trees[1])
    with open(manifest_path, "w") as f:
        json.dump(manifest, f, indent=1)
    log(f"[demo] wrote {root} in {time.time() - start:.1f} s: {_describe(manifest)}")
    return manifest


def _describe(m: dict) -> str:
    v, n = m["voc"], m["nyu"]
    s = m["settings"]
    return (
        f"VOC-style {v['images']} images ({s['num_train']} train / {s['num_val']} val, "
        f"{v['masks']} with masks, {v['objects']} objects, {v['difficult']} difficult, "
        f"{v['truncated']} truncated); NYU-style {n['frames']} frames "
        f"({100 * n['invalid_pixels'] / max(n['pixels'], 1):.1f}% invalid depth)"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write the MultitaskVision demo data.")
    parser.add_argument("--root", default="data/demo", help="output folder (default data/demo)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--num-train", type=int, default=300, help="train images per dataset")
    parser.add_argument("--num-val", type=int, default=80, help="val/test images per dataset")
    parser.add_argument("--force", action="store_true", help="rewrite even if complete")
    args = parser.parse_args(argv)
    try:
        make_demo_data(args.root, args.seed, args.num_train, args.num_val, args.force)
    except FileExistsError as e:
        print(f"[demo] error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
