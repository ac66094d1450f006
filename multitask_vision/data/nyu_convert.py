"""Convert the official NYU Depth v2 labeled subset (``.mat``) into `NYUDepthDataset`'s layout.

    python -m multitask_vision.data.nyu_convert nyu_depth_v2_labeled.mat splits.mat \\
        data/nyu_depth_v2 --mapping40 classMapping40.mat --mapping13 class13Mapping.mat

Inputs:
    nyu_depth_v2_labeled.mat: MATLAB v7.3 (HDF5). As h5py reads it, arrays are transposed:
        images (N, 3, 640, 480) uint8 RGB, depths / rawDepths (N, 640, 480) float32 metres,
        labels (N, 640, 480) uint16 (0 = unlabeled, 1..894).
    splits.mat: MATLAB v5; trainNdxs (795, 1), testNdxs (654, 1), 1-based frame indices.
    classMapping40.mat (optional): mapClass (1, 894): 894 -> 40 classes (Gupta et al.).
    class13Mapping.mat (optional): struct classMapping13 whose first field maps 40 -> 13.

Output (see `multitask_vision.data.nyu`): rgb/, depth/, depth_raw/, label40/, label13/ with
``<id>.png`` files, id = the 1-based frame index as 4 digits, and train.txt / test.txt.

Resumable: frames whose outputs all exist are skipped; files are written under a temporary
name and renamed, so an interrupted run never leaves a half-written PNG behind.
"""

from __future__ import annotations

import argparse
import os
import os.path as osp
import sys
import time

import cv2
import numpy as np

__all__ = ["convert_nyu_labeled", "load_class_mapping_13", "load_class_mapping_40", "load_splits"]

FRAME_ID = "{:04d}"


def load_splits(path: str, num_frames: int) -> dict[str, np.ndarray]:
    """Read ``splits.mat``: {'train': 1-based indices, 'test': ...}, checked against the .mat."""
    from scipy.io import loadmat

    try:
        mat = loadmat(path)
    except (OSError, ValueError) as e:
        raise ValueError(f"{path}: cannot read the split file as a MATLAB .mat ({e})") from None
    splits = {}
    for name, key in (("train", "trainNdxs"), ("test", "testNdxs")):
        if key not in mat:
            found = sorted(k for k in mat if not k.startswith("__"))
            raise ValueError(f"{path}: no {key!r} variable (found: {found})")
        idx = np.asarray(mat[key]).astype(np.int64).ravel()
        if idx.size == 0:
            raise ValueError(f"{path}: {key} is empty")
        if idx.min() < 1 or idx.max() > num_frames:
            raise ValueError(
                f"{path}: {key} holds indices {idx.min()}..{idx.max()} outside 1..{num_frames} "
                "(the frames of the labeled .mat)"
            )
        splits[name] = idx
    both = np.intersect1d(splits["train"], splits["test"])
    if both.size:
        raise ValueError(f"{path}: frames {both[:10].tolist()} are in both train and test")
    return splits


def load_class_mapping_40(path: str) -> np.ndarray:
    """Lookup table 0..894 -> 0..39 (0 = unlabeled -> 255) from ``classMapping40.mat``."""
    from scipy.io import loadmat

    mapping = np.asarray(loadmat(path).get("mapClass", np.empty(0))).astype(np.int64).ravel()
    if mapping.size == 0:
        raise ValueError(f"{path}: no mapClass variable (the 894 -> 40 class map)")
    if mapping.min() < 1 or mapping.max() > 40:
        raise ValueError(f"{path}: mapClass values {mapping.min()}..{mapping.max()} not in 1..40")
    lut = np.full(mapping.size + 1, 255, np.uint8)
    lut[1:] = mapping - 1
    return lut


def load_class_mapping_13(path: str) -> np.ndarray:
    """Lookup table 0..39 (40-class labels) -> 0..12, 255 -> 255, from ``class13Mapping.mat``."""
    from scipy.io import loadmat

    struct = loadmat(path).get("classMapping13")
    try:
        mapping = np.asarray(struct[0][0][0]).astype(np.int64).ravel()
    except (TypeError, IndexError, ValueError):
        raise ValueError(
            f"{path}: no classMapping13 struct with a 40 -> 13 map as first field"
        ) from None
    if mapping.size != 40 or mapping.min() < 1 or mapping.max() > 13:
        raise ValueError(
            f"{path}: the 40 -> 13 map has {mapping.size} entries in "
            f"{mapping.min()}..{mapping.max()}; expected 40 entries in 1..13"
        )
    lut = np.full(256, 255, np.uint8)
    lut[:40] = mapping - 1
    return lut


def _open_mat(path: str):
    import h5py

    if not osp.isfile(path):
        raise FileNotFoundError(f"{path}: NYU labeled .mat not found")
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise ValueError(
            f"{path}: not an HDF5 (MATLAB v7.3) file ({e}); a truncated download? "
            "scripts/download_data.sh resumes it"
        ) from None
    n = None
    for key, ndim in (("images", 4), ("depths", 3), ("rawDepths", 3), ("labels", 3)):
        if key not in f:
            f.close()
            raise ValueError(f"{path}: no {key!r} dataset (found: {sorted(f.keys())})")
        shape = f[key].shape
        n = shape[0] if n is None else n
        ok = len(shape) == ndim and shape[0] == n and (ndim == 3 or shape[1] == 3)
        ok = ok and tuple(shape[-2:]) == tuple(f["images"].shape[-2:])
        if not ok:
            f.close()
            raise ValueError(
                f"{path}: {key!r} has shape {shape}; expected (N, 3, W, H) images and (N, W, H) "
                "depths/rawDepths/labels with one N, as h5py reads the v7.3 file (transposed)"
            )
    return f, n


def _write_png(path: str, array: np.ndarray) -> None:
    tmp = path[:-4] + ".tmp.png"
    if not cv2.imwrite(tmp, array):
        raise OSError(f"{tmp}: cv2.imwrite failed")
    os.replace(tmp, path)


def _metres_to_mm(depth: np.ndarray) -> np.ndarray:
    depth = np.nan_to_num(depth, nan=0.0, posinf=0.0, neginf=0.0)
    return np.clip(np.round(depth * 1000.0), 0, 65535).astype(np.uint16)


def convert_nyu_labeled(
    mat_path: str,
    splits_path: str,
    out_dir: str,
    mapping40_path: str | None = None,
    mapping13_path: str | None = None,
    raw_depth: bool = True,
    log=print,
) -> dict[str, int]:
    """Write the labeled layout; returns {'train': n, 'test': n, 'written': n, 'skipped': n}.

    Raises:
        FileNotFoundError / ValueError: a missing or malformed input, naming the file and key.
    """
    if mapping13_path and not mapping40_path:
        raise ValueError(
            "the 13-class labels are derived from the 40-class ones: give mapping40 too"
        )
    f, n = _open_mat(mat_path)
    try:
        splits = load_splits(splits_path, n)
        lut40 = lut13 = None
        if mapping40_path:
            lut40 = load_class_mapping_40(mapping40_path)
        if mapping13_path:
            lut13 = load_class_mapping_13(mapping13_path)
        dirs = {"rgb": True, "depth": True, "depth_raw": raw_depth, "label40": lut40 is not None}
        dirs["label13"] = lut13 is not None
        for d, on in dirs.items():
            if on:
                os.makedirs(osp.join(out_dir, d), exist_ok=True)
        frames = np.sort(np.concatenate([splits["train"], splits["test"]]))
        written = skipped = 0
        start = time.time()
        for k, index in enumerate(frames.tolist()):
            fid = FRAME_ID.format(index)
            paths = {d: osp.join(out_dir, d, fid + ".png") for d, on in dirs.items() if on}
            if all(osp.isfile(p) for p in paths.values()):
                skipped += 1
                continue
            i = index - 1
            rgb = np.asarray(f["images"][i]).transpose(2, 1, 0)  # (3, W, H) -> (H, W, 3) RGB
            _write_png(paths["rgb"], np.ascontiguousarray(rgb[..., ::-1]))
            _write_png(paths["depth"], _metres_to_mm(np.asarray(f["depths"][i]).T))
            if raw_depth:
                _write_png(paths["depth_raw"], _metres_to_mm(np.asarray(f["rawDepths"][i]).T))
            if lut40 is not None:
                labels = np.asarray(f["labels"][i]).T.astype(np.int64)
                if labels.max() >= len(lut40):
                    raise ValueError(
                        f"{mat_path}: frame {index} has label {labels.max()} beyond the "
                        f"{len(lut40) - 1} labels of {mapping40_path}"
                    )
                label40 = lut40[labels]
                _write_png(paths["label40"], label40)
                if lut13 is not None:
                    _write_png(paths["label13"], lut13[label40])
            written += 1
            if (k + 1) % 100 == 0:
                log(f"[nyu] {k + 1}/{len(frames)} frames ({time.time() - start:.0f} s)")
    finally:
        f.close()
    for name, idx in splits.items():
        tmp = osp.join(out_dir, f"{name}.txt.tmp")
        with open(tmp, "w") as out:
            out.write("".join(FRAME_ID.format(i) + "\n" for i in idx.tolist()))
        os.replace(tmp, osp.join(out_dir, f"{name}.txt"))
    log(
        f"[nyu] {out_dir}: {len(splits['train'])} train + {len(splits['test'])} test frames "
        f"({written} written, {skipped} already there)"
    )
    return dict(
        train=len(splits["train"]), test=len(splits["test"]), written=written, skipped=skipped
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mat", help="nyu_depth_v2_labeled.mat")
    parser.add_argument("splits", help="splits.mat (official 795/654 split)")
    parser.add_argument("out", help="output folder, e.g. data/nyu_depth_v2")
    parser.add_argument("--mapping40", help="classMapping40.mat (writes label40/)")
    parser.add_argument("--mapping13", help="class13Mapping.mat (writes label13/)")
    parser.add_argument("--no-raw-depth", action="store_true", help="skip depth_raw/")
    args = parser.parse_args(argv)
    try:
        convert_nyu_labeled(
            args.mat, args.splits, args.out, args.mapping40, args.mapping13, not args.no_raw_depth
        )
    except (FileNotFoundError, ValueError) as e:
        print(f"[nyu] error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
