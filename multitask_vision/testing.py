"""Helpers for tests: tiny datasets written in the real on-disk formats, and fake results dicts.

Kept in the package (as detectron2's ``utils/testing.py`` and mmengine's ``testing/``) so that
every test module, and the lead's, writes the same fixtures.
"""

from __future__ import annotations

import os
import os.path as osp
from collections.abc import Sequence

import cv2
import numpy as np

__all__ = [
    "VOCImage",
    "toy_task_dataset",
    "write_class_mappings",
    "write_depth_png",
    "write_nyu_labeled_tree",
    "write_nyu_mat",
    "write_nyu_splits",
    "write_voc_tree",
]


class VOCImage(dict):
    """One image of a tiny VOC tree: ``VOCImage(img_id, w, h, objects=[...], mask=None)``.

    ``objects``: dicts(name, xmin, ymin, xmax, ymax[, difficult, truncated]) in VOC 1-based
    inclusive pixels. ``mask``: Array[h, w] uint8 class indices, or None for no mask file.
    """

    def __init__(self, img_id: str, w: int, h: int, objects=(), mask=None, seed: int = 0):
        super().__init__(img_id=img_id, w=w, h=h, objects=list(objects), mask=mask, seed=seed)


def write_voc_tree(
    root: str,
    images: Sequence[VOCImage],
    det_splits: dict[str, Sequence[str]],
    seg_splits: dict[str, Sequence[str]] | None = None,
) -> str:
    """Write ``root`` (a ``VOC20xx`` folder) with JPEGs, XMLs, palette PNGs and split lists.

    Images are seeded noise, so their content is reproducible. Returns ``root``.
    """
    from multitask_vision.data.voc import save_palette_png, voc_annotation_xml, voc_colormap

    for d in ("JPEGImages", "Annotations", "SegmentationClass", "ImageSets/Main"):
        os.makedirs(osp.join(root, d), exist_ok=True)
    os.makedirs(osp.join(root, "ImageSets/Segmentation"), exist_ok=True)
    for im in images:
        rng = np.random.default_rng(im["seed"])
        pixels = rng.integers(0, 256, (im["h"], im["w"], 3), dtype=np.uint8)
        cv2.imwrite(osp.join(root, "JPEGImages", im["img_id"] + ".jpg"), pixels)
        xml = voc_annotation_xml(
            im["img_id"], im["w"], im["h"], im["objects"], im["mask"] is not None
        )
        with open(osp.join(root, "Annotations", im["img_id"] + ".xml"), "w") as f:
            f.write(xml)
        if im["mask"] is not None:
            save_palette_png(
                osp.join(root, "SegmentationClass", im["img_id"] + ".png"),
                im["mask"],
                voc_colormap(),
            )
    for folder, splits in (("Main", det_splits), ("Segmentation", seg_splits or {})):
        for split, ids in splits.items():
            with open(osp.join(root, "ImageSets", folder, f"{split}.txt"), "w") as f:
                f.write("".join(i + "\n" for i in ids))
    return root


def write_depth_png(path: str, depth_m: np.ndarray, scale: float = 1000.0) -> None:
    """Write metres as a 16-bit PNG of ``depth * scale`` (rounded), 0 staying 0."""
    os.makedirs(osp.dirname(path) or ".", exist_ok=True)
    cv2.imwrite(path, np.clip(np.round(depth_m * scale), 0, 65535).astype(np.uint16))


def write_nyu_mat(path: str, n: int = 4, h: int = 24, w: int = 32, seed: int = 0) -> dict:
    """Write a small NYU ``nyu_depth_v2_labeled.mat`` with the real file's HDF5 structure.

    Like the real MATLAB v7.3 file: a 512-byte user block, ``MATLAB_class`` attributes, and
    arrays stored transposed, so that h5py reads images as (N, 3, W, H), depths / rawDepths /
    labels as (N, W, H).

    Returns:
        The frames in image orientation: images (N, H, W, 3) uint8 RGB, depths and rawDepths
        (N, H, W) float32 metres (rawDepths has zeros), labels (N, H, W) uint16 in 0..894.
    """
    import h5py

    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, h, w, 3), dtype=np.uint8)
    # Multiples of 1 mm so that the mm PNGs are exact.
    depths = (rng.integers(500, 9000, (n, h, w)) / 1000.0).astype(np.float32)
    raw = depths.copy()
    raw[rng.random((n, h, w)) < 0.2] = 0.0
    labels = rng.integers(0, 895, (n, h, w)).astype(np.uint16)
    with h5py.File(path, "w", userblock_size=512) as f:
        for key, array in (
            ("images", images.transpose(0, 3, 2, 1)),
            ("depths", depths.transpose(0, 2, 1)),
            ("rawDepths", raw.transpose(0, 2, 1)),
            ("labels", labels.transpose(0, 2, 1)),
        ):
            ds = f.create_dataset(key, data=np.ascontiguousarray(array))
            ds.attrs["MATLAB_class"] = np.bytes_(
                {"images": "uint8", "labels": "uint16"}.get(key, "single")
            )
    with open(path, "r+b") as f:
        f.write(b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: test HDF5 schema 1.00 .")
    return dict(images=images, depths=depths, rawDepths=raw, labels=labels)


def write_nyu_splits(path: str, train: Sequence[int], test: Sequence[int]) -> None:
    """Write ``splits.mat`` (MATLAB v5) with 1-based ``trainNdxs`` / ``testNdxs`` columns."""
    from scipy.io import savemat

    savemat(
        path,
        {
            "trainNdxs": np.asarray(train, np.float64).reshape(-1, 1),
            "testNdxs": np.asarray(test, np.float64).reshape(-1, 1),
        },
    )


def write_class_mappings(folder: str, seed: int = 0) -> tuple[str, str, np.ndarray, np.ndarray]:
    """Write ``classMapping40.mat`` (894 -> 40) and ``class13Mapping.mat`` (40 -> 13).

    Returns:
        (path40, path13, map40 Array[894] in 1..40, map13 Array[40] in 1..13).
    """
    from scipy.io import savemat

    rng = np.random.default_rng(seed)
    map40 = rng.integers(1, 41, 894)
    map13 = rng.integers(1, 14, 40)
    p40, p13 = osp.join(folder, "classMapping40.mat"), osp.join(folder, "class13Mapping.mat")
    savemat(p40, {"mapClass": map40.reshape(1, -1).astype(np.float64)})
    savemat(
        p13, {"classMapping13": {"labels": map13.reshape(1, -1).astype(np.float64), "names": "x"}}
    )
    return p40, p13, map40, map13


def write_nyu_labeled_tree(
    root: str,
    depths: dict[str, np.ndarray],
    splits: dict[str, Sequence[str]],
    labels: dict[str, np.ndarray] | None = None,
    seg_dir: str = "label40",
    seed: int = 0,
) -> str:
    """Write an NYU labeled-layout tree: rgb/, depth/ (16-bit mm), optional labels, split files.

    Args:
        depths: frame id -> Array[H, W] metres (0 = invalid).
        labels: frame id -> Array[H, W] uint8 class indices.
    """
    rng = np.random.default_rng(seed)
    for d in ("rgb", "depth", seg_dir):
        os.makedirs(osp.join(root, d), exist_ok=True)
    for fid, depth in depths.items():
        rgb = rng.integers(0, 256, (*depth.shape, 3), dtype=np.uint8)
        cv2.imwrite(osp.join(root, "rgb", fid + ".png"), rgb)
        write_depth_png(osp.join(root, "depth", fid + ".png"), depth)
    for fid, label in (labels or {}).items():
        cv2.imwrite(osp.join(root, seg_dir, fid + ".png"), label.astype(np.uint8))
    for split, ids in splits.items():
        with open(osp.join(root, f"{split}.txt"), "w") as f:
            f.write("".join(i + "\n" for i in ids))
    return root


def toy_task_dataset(name: str, group_sizes: dict[tuple[str, ...], int], **kwargs):
    """An in-memory `MultiTaskDataset` with ``group_sizes[tasks]`` samples per task set.

    Samples carry ``img_id`` ``'<name>_<i>'`` and no files; for sampler tests.
    """
    from multitask_vision.data.base import MultiTaskDataset

    class ToyTaskDataset(MultiTaskDataset):
        METAINFO = dict(dataset_name=name)

        def load_data_list(self):
            infos = []
            for tasks, n in group_sizes.items():
                for _ in range(n):
                    infos.append(dict(img_id=f"{name}_{len(infos)}", img_path="", tasks=tasks))
            return infos

    tasks = sorted({t for k in group_sizes for t in k})
    return ToyTaskDataset(tasks=tasks, **kwargs)
