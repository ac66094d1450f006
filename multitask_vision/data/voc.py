"""`VOCMultitaskDataset`: PASCAL VOC (2007, 2012) detection + segmentation, read from VOCdevkit.

On-disk layout (exactly the official tarballs, e.g. ``data/VOCdevkit/VOC2012``)::

    VOC2012/
      JPEGImages/<id>.jpg
      Annotations/<id>.xml               boxes, 1-based inclusive pixel indices, difficult flags
      SegmentationClass/<id>.png         palette PNG: 0 background, 1..20 classes, 255 boundary
      ImageSets/Main/<split>.txt         image ids with detection ground truth
      ImageSets/Segmentation/<split>.txt image ids with segmentation ground truth

An image's task set is decided by the split lists: ``'detection'`` if its id is in
``ImageSets/Main/<split>.txt``, ``'segmentation'`` if in ``ImageSets/Segmentation/<split>.txt``.
Most VOC images have boxes only (VOC2012 trainval: 11540 detection, 2913 segmentation), so the
dataset holds two groups, ``('detection',)`` and ``('detection', 'segmentation')``, which the
group batch sampler keeps in separate batches. An id listed only for segmentation (its XML may
belong to the other detection split) gets no boxes, so no split leaks into another.

Box convention: as mmdet's ``XMLDataset`` (``x - 1`` on all four coordinates), so that boxes
are ``(x1, y1, x2, y2)`` 0-based pixel indices and mmdet's ``VOCMetric`` (which uses VOC's
legacy ``+1`` areas) reproduces the official devkit numbers. ``difficult`` objects become
``ignored_instances``: kept out of training targets, ignored by VOC evaluation as the devkit
does; ``truncated`` is kept in the instance dict for reference.
"""

from __future__ import annotations

import difflib
import io
import os.path as osp
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from xml.sax.saxutils import escape

import numpy as np
from PIL import Image

from multitask_vision.data.bad_samples import BadSampleError
from multitask_vision.data.base import MultiTaskDataset
from multitask_vision.data.file_io import read_bytes, read_split_file
from multitask_vision.registry import DATASETS

__all__ = [
    "VOC_CLASSES",
    "VOCMultitaskDataset",
    "parse_voc_xml",
    "save_palette_png",
    "voc_annotation_xml",
    "voc_colormap",
]

VOC_CLASSES = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train",
    "tvmonitor",
)  # fmt: skip


def voc_colormap(n: int = 256) -> list[tuple[int, int, int]]:
    """The VOC segmentation palette (RGB): colour ``i`` spreads the bits of ``i`` over R, G, B."""
    cmap = []
    for i in range(n):
        r = g = b = 0
        c = i
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        cmap.append((r, g, b))
    return cmap


def voc_annotation_xml(
    img_id: str, w: int, h: int, objects: list[dict], segmented: bool = False
) -> str:
    """The text of a VOC ``Annotations/<id>.xml`` file.

    Args:
        objects: dicts with name, xmin, ymin, xmax, ymax (VOC 1-based inclusive pixel indices),
            and optionally truncated, difficult (0 or 1).
    """
    objs = "".join(
        f"  <object>\n    <name>{escape(o['name'])}</name>\n    <pose>Unspecified</pose>\n"
        f"    <truncated>{o.get('truncated', 0)}</truncated>\n"
        f"    <difficult>{o.get('difficult', 0)}</difficult>\n"
        f"    <bndbox>\n      <xmin>{o['xmin']}</xmin>\n      <ymin>{o['ymin']}</ymin>\n"
        f"      <xmax>{o['xmax']}</xmax>\n      <ymax>{o['ymax']}</ymax>\n    </bndbox>\n"
        "  </object>\n"
        for o in objects
    )
    return (
        f"<annotation>\n  <folder>VOC2012</folder>\n  <filename>{img_id}.jpg</filename>\n"
        "  <source>\n    <database>MultitaskVision demo</database>\n  </source>\n"
        f"  <size>\n    <width>{w}</width>\n    <height>{h}</height>\n    <depth>3</depth>\n"
        f"  </size>\n  <segmented>{int(segmented)}</segmented>\n{objs}</annotation>\n"
    )


def save_palette_png(path: str, mask: np.ndarray, palette: list[tuple[int, int, int]]) -> None:
    """Write a uint8 class mask as a palette ('P' mode) PNG, as VOC's SegmentationClass."""
    mask = np.ascontiguousarray(mask, dtype=np.uint8)
    png = Image.frombytes("P", (mask.shape[1], mask.shape[0]), mask.tobytes())
    png.putpalette([c for rgb in palette for c in rgb])
    png.save(path)


def _class_hint(name: str, classes: Sequence[str]) -> str:
    close = difflib.get_close_matches(name, list(classes), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def parse_voc_xml(
    xml_path: str,
    classes: Sequence[str],
    img_path: str | None = None,
    backend_args: dict | None = None,
) -> dict:
    """Parse one VOC annotation file and check every object against the image and class list.

    Args:
        xml_path: the ``Annotations/<id>.xml`` file.
        classes: the class list; an object whose ``name`` is not in it is an error.
        img_path: the image, read only when the XML has no ``<size>``.

    Returns:
        dict(width, height, instances): ``instances`` is a list of dict(bbox=[x1, y1, x2, y2]
        float, 0-based pixel indices (VOC value - 1), bbox_label=int, ignore_flag=0 or 1
        (difficult), truncated=0 or 1), the mmdet ``instances`` format.

    Raises:
        BadSampleError: unreadable XML, missing fields, a label not in ``classes``, a box with
            xmax < xmin or ymax < ymin, or a box outside ``1..width`` x ``1..height``.
    """
    data = read_bytes(xml_path, backend_args, what="annotation")
    try:
        root = ET.fromstring(data)
    except ET.ParseError as e:
        raise BadSampleError(f"{xml_path}: not a valid XML annotation ({e})") from None
    width, height = _image_size(root, xml_path, img_path, backend_args)
    label_of = {name: i for i, name in enumerate(classes)}
    instances = []
    for k, obj in enumerate(root.findall("object")):
        name = (obj.findtext("name") or "").strip()
        where = f"{xml_path}: object {k} ({name or 'no name'})"
        if name not in label_of:
            raise BadSampleError(
                f"{where}: label {name!r} is not in the class list{_class_hint(name, classes)}; "
                f"{len(classes)} classes: {', '.join(classes)}"
            )
        box = obj.find("bndbox")
        if box is None:
            raise BadSampleError(f"{where}: has no <bndbox>")
        try:
            xmin, ymin, xmax, ymax = (
                int(float(box.findtext(t))) for t in ("xmin", "ymin", "xmax", "ymax")
            )
        except (TypeError, ValueError):
            raise BadSampleError(
                f"{where}: <bndbox> needs numeric xmin, ymin, xmax, ymax, got "
                + ", ".join(f"{t}={box.findtext(t)!r}" for t in ("xmin", "ymin", "xmax", "ymax"))
            ) from None
        coords = f"xmin={xmin} ymin={ymin} xmax={xmax} ymax={ymax}"
        if xmax < xmin or ymax < ymin:
            raise BadSampleError(f"{where}: degenerate box {coords} (max < min)")
        if xmin < 1 or ymin < 1 or xmax > width or ymax > height:
            raise BadSampleError(
                f"{where}: box {coords} lies outside the {width}x{height} image (VOC boxes are "
                "1-based pixel indices within 1..width and 1..height)"
            )
        instances.append(
            dict(
                bbox=[float(xmin - 1), float(ymin - 1), float(xmax - 1), float(ymax - 1)],
                bbox_label=label_of[name],
                ignore_flag=int(_flag(obj, "difficult", where)),
                truncated=int(_flag(obj, "truncated", where)),
            )
        )
    return dict(width=width, height=height, instances=instances)


def _flag(obj: ET.Element, tag: str, where: str) -> bool:
    text = obj.findtext(tag)
    if text is None or not text.strip():
        return False
    try:
        return bool(int(float(text)))
    except ValueError:
        raise BadSampleError(f"{where}: <{tag}> must be 0 or 1, got {text!r}") from None


def _image_size(
    root: ET.Element, xml_path: str, img_path: str | None, backend_args: dict | None
) -> tuple[int, int]:
    size = root.find("size")
    if size is not None:
        try:
            w, h = int(size.findtext("width")), int(size.findtext("height"))
        except (TypeError, ValueError):
            raise BadSampleError(f"{xml_path}: <size> needs integer width and height") from None
        if w > 0 and h > 0:
            return w, h
    if img_path is None:
        raise BadSampleError(f"{xml_path}: no valid <size> and no image to measure")
    try:  # Pillow reads the header only
        with Image.open(io.BytesIO(read_bytes(img_path, backend_args, what="image"))) as im:
            return im.size
    except OSError as e:
        raise BadSampleError(f"{img_path}: cannot read image header ({e})") from None


@DATASETS.register_module()
class VOCMultitaskDataset(MultiTaskDataset):
    """PASCAL VOC detection (20 classes) and segmentation (background + 20), from VOCdevkit.

    Args:
        data_root: the year folder, e.g. ``'data/VOCdevkit/VOC2012'`` or ``.../VOC2007``.
        split: split name; selects ``ImageSets/Main/<split>.txt`` and
            ``ImageSets/Segmentation/<split>.txt`` (``train``, ``val``, ``trainval``, ``test``).
        tasks: ``('detection', 'segmentation')`` (default), or one of them.
        det_split_file / seg_split_file: split lists relative to ``data_root``; ``{split}`` is
            replaced by ``split``.
        img_dir / ann_dir / seg_map_dir: folders relative to ``data_root``; use
            ``seg_map_dir='SegmentationClassAug'`` (with its split files) for the SBD-augmented set.
        img_suffix / seg_map_suffix: file name endings.
        **kwargs: `MultiTaskDataset` / mmengine ``BaseDataset`` arguments (``metainfo`` to change
            the class list, as for the demo data; ``pipeline``; ``test_mode``; ``on_bad_sample``).

    Config example::

        dict(type='VOCMultitaskDataset', data_root='data/VOCdevkit/VOC2012', split='train',
             tasks=['detection', 'segmentation'], pipeline=train_pipeline)
    """

    SUPPORTED_TASKS = ("detection", "segmentation")
    METAINFO = dict(
        dataset_name="voc",
        classes=VOC_CLASSES,
        palette=voc_colormap(21)[1:],
        seg_classes=("background", *VOC_CLASSES),
        seg_palette=voc_colormap(21),
    )

    def __init__(
        self,
        data_root: str,
        split: str = "train",
        tasks: Sequence[str] = ("detection", "segmentation"),
        det_split_file: str = "ImageSets/Main/{split}.txt",
        seg_split_file: str = "ImageSets/Segmentation/{split}.txt",
        img_dir: str = "JPEGImages",
        ann_dir: str = "Annotations",
        seg_map_dir: str = "SegmentationClass",
        img_suffix: str = ".jpg",
        seg_map_suffix: str = ".png",
        **kwargs,
    ):
        self.split = split
        self.det_split_file = det_split_file.format(split=split)
        self.seg_split_file = seg_split_file.format(split=split)
        self.img_dir, self.ann_dir, self.seg_map_dir = img_dir, ann_dir, seg_map_dir
        self.img_suffix, self.seg_map_suffix = img_suffix, seg_map_suffix
        self._user_seg_classes = "seg_classes" in (kwargs.get("metainfo") or {})
        super().__init__(tasks=tasks, data_root=data_root, **kwargs)

    def _finish_metainfo(self) -> None:
        super()._finish_metainfo()
        meta = self._metainfo
        # A custom detection class list implies the segmentation list, as in VOC.
        if not self._user_seg_classes and meta["seg_classes"][1:] != meta["classes"]:
            meta["seg_classes"] = ("background", *meta["classes"])
            meta["seg_palette"] = voc_colormap(len(meta["seg_classes"]))

    def _owner(self) -> str:
        root = getattr(self, "data_root", None)
        where = f" ({root}, split {self.split!r})" if root else ""
        return super()._owner() + where

    def load_data_list(self) -> list[dict]:
        root = self.data_root
        if not osp.isdir(root):
            raise FileNotFoundError(
                f"{self._owner()}: data_root {root!r} is not a folder; download VOC with "
                "`bash scripts/download_data.sh voc2012` or write the demo data with "
                "`python -m multitask_vision.data.demo`"
            )
        ids: dict[str, set[str]] = {}
        if "detection" in self.tasks:
            for i in read_split_file(osp.join(root, self.det_split_file), self.backend_args):
                ids.setdefault(i, set()).add("detection")
        if "segmentation" in self.tasks:
            for i in read_split_file(osp.join(root, self.seg_split_file), self.backend_args):
                ids.setdefault(i, set()).add("segmentation")
        report = self._new_report()
        data_list = []
        for img_id, tasks in ids.items():
            info = self._parse_or_skip(report, self._parse_one, img_id, tasks)
            if info is not None:
                data_list.append(info)
        report.log_summary(len(ids))
        if not data_list:
            raise ValueError(f"{self._owner()}: no usable sample left after skipping bad ones")
        return data_list

    def _parse_one(self, img_id: str, tasks: set[str]) -> dict:
        root = self.data_root
        info = dict(
            img_id=img_id,
            img_path=osp.join(root, self.img_dir, img_id + self.img_suffix),
            tasks=tuple(sorted(tasks)),
        )
        if "detection" in tasks:
            xml_path = osp.join(root, self.ann_dir, img_id + ".xml")
            ann = parse_voc_xml(
                xml_path, self._metainfo["classes"], info["img_path"], self.backend_args
            )
            info.update(xml_path=xml_path, **ann)
        if "segmentation" in tasks:
            info["seg_map_path"] = osp.join(root, self.seg_map_dir, img_id + self.seg_map_suffix)
        if self.backend_args is None:  # local files: a missing one is reported now, with the rest
            for key, what in (("img_path", "image"), ("seg_map_path", "segmentation mask")):
                if key in info and not osp.isfile(info[key]):
                    raise BadSampleError(f"{info[key]}: {what} file not found")
        return info
