"""`NYUDepthDataset`: NYU Depth v2 depth (and 40-/13-class segmentation) in two on-disk layouts.

``layout='labeled'``: what ``scripts/download_data.sh nyu`` writes from the official labeled
subset (``nyu_depth_v2_labeled.mat``, 1449 frames; official 795 train / 654 test split), see
`multitask_vision.data.nyu_convert`::

    nyu_depth_v2/
      train.txt, test.txt        frame ids, one per line (``0001`` = MATLAB index 1)
      rgb/<id>.png               640x480 RGB
      depth/<id>.png             16-bit, millimetres (the in-painted ``depths``; no zeros)
      depth_raw/<id>.png         16-bit, millimetres (``rawDepths``; 0 = no Kinect reading)
      label40/<id>.png           uint8 0..39 (Gupta et al. 40 classes), 255 = unlabeled
      label13/<id>.png           uint8 0..12 (13 classes), 255 = unlabeled

``layout='bts'``: the pre-extracted layout of the depth literature (BTS, and DenseDepth-style
CSV lists when the depth PNGs are 16-bit): a split file with one ``rgb_path depth_path [focal]``
line per frame (whitespace- or comma-separated; paths relative to ``img_dir`` / ``depth_dir``
under ``data_root``; a leading ``/`` is ignored, as BTS concatenates strings), RGB jpg/png and
16-bit depth PNGs in millimetres, 0 = invalid. E.g. BTS's
``nyudepthv2_test_files_with_gt.txt`` over ``official_splits/test/``.

Depth is returned in metres (``png / depth_scale``); 0 marks invalid pixels, which losses and
metrics must mask out. NYUv2 with ``tasks=('depth', 'segmentation')`` is the standard
multi-task benchmark (795 / 654 frames).
"""

from __future__ import annotations

import os.path as osp
from collections.abc import Sequence

from multitask_vision.data.bad_samples import BadSampleError
from multitask_vision.data.base import MultiTaskDataset
from multitask_vision.data.file_io import read_split_file
from multitask_vision.data.voc import voc_colormap
from multitask_vision.registry import DATASETS

__all__ = ["NYU13_CLASSES", "NYU40_CLASSES", "NYUDepthDataset"]

NYU40_CLASSES = (
    "wall", "floor", "cabinet", "bed", "chair", "sofa", "table", "door", "window", "bookshelf",
    "picture", "counter", "blinds", "desk", "shelves", "curtain", "dresser", "pillow", "mirror",
    "floor mat", "clothes", "ceiling", "books", "refridgerator", "television", "paper", "towel",
    "shower curtain", "box", "whiteboard", "person", "night stand", "toilet", "sink", "lamp",
    "bathtub", "bag", "otherstructure", "otherfurniture", "otherprop",
)  # fmt: skip
NYU13_CLASSES = (
    "bed", "books", "ceiling", "chair", "floor", "furniture", "objects", "picture", "sofa",
    "table", "tv", "wall", "window",
)  # fmt: skip
_SEG_CLASSES = {"label40": NYU40_CLASSES, "label13": NYU13_CLASSES}
LAYOUTS = ("labeled", "bts")


@DATASETS.register_module()
class NYUDepthDataset(MultiTaskDataset):
    """NYU Depth v2: metric depth, and segmentation in the labeled layout.

    Args:
        data_root: e.g. ``'data/nyu_depth_v2'`` (labeled) or the BTS ``dataset/nyu_depth_v2``.
        split: ``'train'`` or ``'test'`` (labeled layout: the ``<split>.txt`` list).
        layout: ``'labeled'`` or ``'bts'`` (see the module docstring).
        tasks: ``('depth',)`` (default) or ``('depth', 'segmentation')`` (labeled layout only).
        split_file: the list file, relative to ``data_root``; default ``'<split>.txt'`` for the
            labeled layout; required for ``'bts'``.
        img_dir / depth_dir: folders under ``data_root`` (labeled: ``'rgb'`` / ``'depth'``;
            use ``depth_dir='depth_raw'`` for the raw Kinect depth with holes; bts: ``''``).
        seg_map_dir: ``'label40'`` (default) or ``'label13'``; picks the class list too.
        img_suffix: image file ending in the labeled layout.
        depth_scale: PNG units per metre (1000: millimetres).
        **kwargs: `MultiTaskDataset` / mmengine ``BaseDataset`` arguments.

    Config example::

        dict(type='NYUDepthDataset', data_root='data/nyu_depth_v2', split='train',
             tasks=['depth', 'segmentation'], pipeline=train_pipeline)
    """

    SUPPORTED_TASKS = ("depth", "segmentation")
    METAINFO = dict(
        dataset_name="nyu",
        classes=NYU40_CLASSES,
        palette=voc_colormap(41)[1:],
        seg_classes=NYU40_CLASSES,
        seg_palette=voc_colormap(41)[1:],
    )

    def __init__(
        self,
        data_root: str,
        split: str = "train",
        layout: str = "labeled",
        tasks: Sequence[str] = ("depth",),
        split_file: str | None = None,
        img_dir: str | None = None,
        depth_dir: str | None = None,
        seg_map_dir: str = "label40",
        img_suffix: str = ".png",
        depth_scale: float = 1000.0,
        **kwargs,
    ):
        if layout not in LAYOUTS:
            raise ValueError(f"NYUDepthDataset: layout={layout!r} is not one of {LAYOUTS}")
        if layout == "bts" and "segmentation" in tasks:
            raise ValueError(
                "NYUDepthDataset: layout='bts' has depth only; tasks=['depth'] (segmentation "
                "needs the labeled layout)"
            )
        if layout == "bts" and split_file is None:
            raise ValueError(
                "NYUDepthDataset: layout='bts' needs split_file=, e.g. "
                "'nyudepthv2_train_files_with_gt.txt'"
            )
        labeled = layout == "labeled"
        self.split, self.layout = split, layout
        self.split_file = split_file or f"{split}.txt"
        self.img_dir = img_dir if img_dir is not None else ("rgb" if labeled else "")
        self.depth_dir = depth_dir if depth_dir is not None else ("depth" if labeled else "")
        self.seg_map_dir, self.img_suffix = seg_map_dir, img_suffix
        self.depth_scale = float(depth_scale)
        metainfo = dict(kwargs.pop("metainfo", None) or {})
        if seg_map_dir in _SEG_CLASSES and "seg_classes" not in metainfo:
            metainfo.setdefault("classes", _SEG_CLASSES[seg_map_dir])
            metainfo["seg_classes"] = metainfo["classes"]
        elif "seg_classes" not in metainfo and "segmentation" in tasks:
            raise ValueError(
                f"NYUDepthDataset: seg_map_dir={seg_map_dir!r} is not label40/label13; give its "
                "class list as metainfo=dict(seg_classes=[...])"
            )
        super().__init__(tasks=tasks, data_root=data_root, metainfo=metainfo, **kwargs)

    def _owner(self) -> str:
        root = getattr(self, "data_root", None)
        where = f" ({root}, split {self.split!r})" if root else ""
        return super()._owner() + where

    def sample_extras(self) -> dict:
        return dict(super().sample_extras(), depth_scale=self.depth_scale)

    def load_data_list(self) -> list[dict]:
        root = self.data_root
        if not osp.isdir(root):
            raise FileNotFoundError(
                f"{self._owner()}: data_root {root!r} is not a folder; get NYUv2 with "
                "`bash scripts/download_data.sh nyu` or write the demo data with "
                "`python -m multitask_vision.data.demo`"
            )
        if "segmentation" in self.tasks and not osp.isdir(osp.join(root, self.seg_map_dir)):
            raise FileNotFoundError(
                f"{self._owner()}: no {self.seg_map_dir}/ folder under {root}; the converter "
                "writes label40/ and label13/ only when given the class mappings "
                "(scripts/download_data.sh nyu downloads them)"
            )
        split_path = osp.join(root, self.split_file)
        lines = read_split_file(split_path, self.backend_args)
        parse = self._parse_labeled if self.layout == "labeled" else self._parse_bts
        report = self._new_report()
        data_list = []
        for lineno, line in enumerate(lines, 1):
            info = self._parse_or_skip(report, parse, line, f"{split_path}:{lineno}")
            if info is not None:
                data_list.append(info)
        report.log_summary(len(lines))
        if not data_list:
            raise ValueError(f"{self._owner()}: no usable sample left after skipping bad ones")
        return data_list

    def _parse_labeled(self, frame_id: str, where: str) -> dict:
        if len(frame_id.split()) != 1:
            raise BadSampleError(f"{where}: expected one frame id per line, got {frame_id!r}")
        root = self.data_root
        info = dict(
            img_id=frame_id,
            img_path=osp.join(root, self.img_dir, frame_id + self.img_suffix),
            tasks=self.tasks,
            depth_path=osp.join(root, self.depth_dir, frame_id + ".png"),
        )
        if "segmentation" in self.tasks:
            info["seg_map_path"] = osp.join(root, self.seg_map_dir, frame_id + ".png")
        self._check_files(info)
        return info

    def _parse_bts(self, line: str, where: str) -> dict:
        fields = line.replace(",", " ").split()
        if len(fields) not in (2, 3):
            raise BadSampleError(f"{where}: expected 'rgb_path depth_path [focal]', got {line!r}")
        rgb, depth = fields[0].lstrip("/"), fields[1].lstrip("/")
        if depth == "None":
            raise BadSampleError(f"{where}: {rgb} has no ground-truth depth ('None')")
        root = self.data_root
        info = dict(
            img_id=osp.splitext(rgb)[0],
            img_path=osp.join(root, self.img_dir, rgb),
            tasks=self.tasks,
            depth_path=osp.join(root, self.depth_dir, depth),
        )
        if len(fields) == 3:
            try:
                info["focal"] = float(fields[2])
            except ValueError:
                raise BadSampleError(
                    f"{where}: focal length {fields[2]!r} is not a number"
                ) from None
        self._check_files(info)
        return info

    def _check_files(self, info: dict) -> None:
        if self.backend_args is not None:  # remote storage: checked when read
            return
        for key, what in (
            ("img_path", "image"),
            ("depth_path", "depth map"),
            ("seg_map_path", "segmentation mask"),
        ):
            if key in info and not osp.isfile(info[key]):
                raise BadSampleError(f"{info[key]}: {what} file not found")
