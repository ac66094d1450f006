"""Reference decoders: exported raw outputs -> predictions, in NumPy only.

Detection post-processing is not part of the exported graph (score threshold, top-k and NMS are
data-dependent and run best, or only, on the host CPU of most accelerators). These functions
are the reference for porting it: they take the outputs of an exported model (ONNX Runtime or a
device runtime, ``{output name: Array[1, C, h, w]}``), the ``model_io.json`` written next to the
export (:func:`io_spec`) and the image's meta, and return what the model's ``predict`` writes:

- ``'fcos'`` (mmdet ``FCOSHead``, native ``FCOSLiteHead``): per level, class probabilities
  ``sigmoid(cls)`` above ``score_thr``, the ``nms_pre`` best (point, class) pairs, boxes
  ``(x - l, y - t, x + r, y + b)`` around the points ``((j + 0.5) s, (i + 0.5) s)`` clipped to
  ``img_shape``; then scores times ``sigmoid(centerness)``, boxes divided by ``scale_factor``
  (w, h) to ORIGINAL image pixels, boxes of zero size dropped (mmdet ``min_bbox_size``),
  class-wise NMS at ``iou_threshold``, at most ``max_per_img`` boxes by decreasing score.
  Returns ``bboxes`` Array[K, 4] (x1, y1, x2, y2), ``scores`` Array[K], ``labels`` Array[K].
- ``'segmentation'``: logits bilinearly upsampled to the padded input, cropped to
  ``img_shape``, resized to ``ori_shape``; ``labels`` Array[H, W] = argmax (or sigmoid >
  threshold for a one-channel head).
- ``'depth'``: metres, same resizing; ``depth`` Array[H, W].

Image meta (per image): ``img_shape`` (h, w of the resized image inside the padded input),
``scale_factor`` (w, h: resized / original), ``ori_shape`` (original h, w). Flipped inputs are
not handled (evaluation pipelines do not flip).

This module needs NumPy only (no torch), so it can run next to a device runtime.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = [
    "DENSE_DETECTION_PARTS",
    "batched_nms",
    "decode",
    "decode_dense",
    "decode_fcos",
    "io_spec",
    "nms",
    "resize_bilinear",
]

#: Names of the parts of a dense detection head's output tuple, by its length.
DENSE_DETECTION_PARTS = {
    2: ("cls_scores", "bbox_preds"),
    3: ("cls_scores", "bbox_preds", "centernesses"),
}


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Greedy NMS. boxes Array[N, 4] (x1, y1, x2, y2), scores Array[N] -> kept indices by
    decreasing score (areas without the legacy +1, as mmcv 2 and torchvision)."""
    order = np.argsort(-scores, kind="stable")
    x1, y1, x2, y2 = boxes.T
    areas = (x2 - x1) * (y2 - y1)
    keep = []
    while order.size:
        i = order[0]
        keep.append(i)
        rest = order[1:]
        w = np.clip(np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]), 0, None)
        h = np.clip(np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]), 0, None)
        inter = w * h
        iou = inter / np.maximum(areas[i] + areas[rest] - inter, np.finfo(np.float32).eps)
        order = rest[iou <= iou_threshold]
    return np.asarray(keep, dtype=np.int64)


def batched_nms(
    boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray, iou_threshold: float
) -> np.ndarray:
    """Class-wise NMS: boxes of different classes never suppress each other."""
    if boxes.size == 0:
        return np.zeros(0, dtype=np.int64)
    offsets = labels.astype(boxes.dtype) * (boxes.max() + 1)
    return nms(boxes + offsets[:, None], scores, iou_threshold)


def decode_fcos(
    cls_scores: Sequence[np.ndarray],
    bbox_preds: Sequence[np.ndarray],
    centernesses: Sequence[np.ndarray] | None,
    meta: Mapping[str, Any],
    params: Mapping[str, Any],
) -> dict[str, np.ndarray]:
    """FCOS-style boxes of ONE image (see the module docstring).

    Args:
        cls_scores: per level Array[C, h, w] (or [1, C, h, w]) class logits.
        bbox_preds: per level Array[4, h, w] (l, t, r, b) distances in input pixels.
        centernesses: per level Array[1, h, w] logits, or None.
        meta: ``img_shape``, ``scale_factor``, ``ori_shape``.
        params: ``strides``, ``score_thr``, ``nms_pre``, ``iou_threshold``, ``max_per_img``,
            ``min_bbox_size`` (None = no filter), ``clip_to_original``.
    """
    h_img, w_img = meta["img_shape"][:2]
    boxes, scores, labels, factors = [], [], [], []
    for level, stride in enumerate(params["strides"]):
        cls = np.asarray(cls_scores[level]).reshape(-1, *np.shape(cls_scores[level])[-2:])
        c, h, w = cls.shape
        prob = sigmoid(cls.reshape(c, -1).T.astype(np.float32))  # [P, C], row-major points
        ltrb = np.asarray(bbox_preds[level]).reshape(4, -1).T.astype(np.float32)
        flat = prob.reshape(-1)
        cand = np.nonzero(flat > params["score_thr"])[0]
        order = cand[np.argsort(-flat[cand], kind="stable")][: params["nms_pre"]]
        point, label = order // c, order % c
        ys, xs = np.divmod(point, w)
        px, py = (xs + 0.5) * stride, (ys + 0.5) * stride
        d = ltrb[point]
        b = np.stack([px - d[:, 0], py - d[:, 1], px + d[:, 2], py + d[:, 3]], axis=1)
        b[:, 0::2] = b[:, 0::2].clip(0, w_img)
        b[:, 1::2] = b[:, 1::2].clip(0, h_img)
        boxes.append(b)
        scores.append(flat[order])
        labels.append(label)
        if centernesses is not None:
            ctr = np.asarray(centernesses[level]).reshape(-1).astype(np.float32)
            factors.append(sigmoid(ctr[point]))
    boxes = np.concatenate(boxes).astype(np.float32)
    scores = np.concatenate(scores).astype(np.float32)
    labels = np.concatenate(labels).astype(np.int64)
    if factors:
        scores = scores * np.concatenate(factors)
    sw, sh = meta.get("scale_factor", (1.0, 1.0))[:2]
    boxes = boxes / np.array([sw, sh, sw, sh], dtype=np.float32)
    if params.get("clip_to_original"):
        oh, ow = meta["ori_shape"][:2]
        boxes[:, 0::2] = boxes[:, 0::2].clip(0, ow)
        boxes[:, 1::2] = boxes[:, 1::2].clip(0, oh)
    min_size = params.get("min_bbox_size")
    if min_size is not None and min_size >= 0:
        ok = (boxes[:, 2] - boxes[:, 0] > min_size) & (boxes[:, 3] - boxes[:, 1] > min_size)
        boxes, scores, labels = boxes[ok], scores[ok], labels[ok]
    keep = batched_nms(boxes, scores, labels, params["iou_threshold"])[: params["max_per_img"]]
    return dict(bboxes=boxes[keep], scores=scores[keep], labels=labels[keep])


def _source_index(out_size: int, in_size: int, align_corners: bool):
    dst = np.arange(out_size, dtype=np.float64)
    if align_corners:
        src = dst * ((in_size - 1) / (out_size - 1)) if out_size > 1 else np.zeros_like(dst)
    else:
        src = np.maximum((dst + 0.5) * (in_size / out_size) - 0.5, 0.0)
    i0 = np.minimum(np.floor(src).astype(np.int64), in_size - 1)
    i1 = np.minimum(i0 + 1, in_size - 1)
    return i0, i1, (src - i0).astype(np.float32)


def resize_bilinear(x: np.ndarray, size: Sequence[int], align_corners: bool = False) -> np.ndarray:
    """Array[C, h, w] -> Array[C, H, W], as ``F.interpolate(mode='bilinear')`` (no antialias)."""
    H, W = size
    if tuple(x.shape[-2:]) == (H, W):
        return x
    y0, y1, wy = _source_index(H, x.shape[-2], align_corners)
    x0, x1, wx = _source_index(W, x.shape[-1], align_corners)
    rows = x[:, y0] * (1 - wy)[:, None] + x[:, y1] * wy[:, None]
    return rows[:, :, x0] * (1 - wx) + rows[:, :, x1] * wx


def decode_dense(
    maps: np.ndarray, meta: Mapping[str, Any], align_corners: bool = False
) -> np.ndarray:
    """Array[C, h, w] over the padded input -> Array[C, ori_h, ori_w] (see module docstring)."""
    maps = np.asarray(maps, dtype=np.float32).reshape(-1, *np.shape(maps)[-2:])
    pad = meta.get("batch_input_shape") or meta["pad_shape"]
    maps = resize_bilinear(maps, pad[:2], align_corners)
    h, w = meta["img_shape"][:2]
    return resize_bilinear(maps[:, :h, :w], meta["ori_shape"][:2], align_corners)


def decode(
    outputs: Mapping[str, np.ndarray], spec: Mapping[str, Any], meta: Mapping[str, Any]
) -> dict[str, dict[str, np.ndarray]]:
    """Decode every head of ONE image.

    Args:
        outputs: ``{output name: Array[1, ...]}`` from the exported model.
        spec: ``model_io.json`` (:func:`io_spec`).
        meta: the image's ``img_shape``, ``scale_factor``, ``ori_shape`` (and the exported
            input size as ``batch_input_shape``; default: the spec's input size).

    Returns:
        ``{task: result}``: ``fcos`` -> bboxes / scores / labels; ``segmentation`` -> labels;
        ``depth`` -> depth.
    """
    meta = dict(meta)
    meta.setdefault("batch_input_shape", tuple(spec["input"]["shape"][-2:]))
    results = {}
    for task, head in spec["heads"].items():
        kind, names = head["kind"], head["outputs"]
        if kind == "fcos":
            ctr = (
                [outputs[n][0] for n in names["centernesses"]] if "centernesses" in names else None
            )
            results[task] = decode_fcos(
                [outputs[n][0] for n in names["cls_scores"]],
                [outputs[n][0] for n in names["bbox_preds"]],
                ctr, meta, head["params"],
            )  # fmt: skip
        elif kind == "segmentation":
            logits = decode_dense(
                outputs[names["logits"]][0], meta, head["params"]["align_corners"]
            )
            if logits.shape[0] == 1:
                labels = (sigmoid(logits[0]) > head["params"]["threshold"]).astype(np.int64)
            else:
                labels = logits.argmax(0)
            results[task] = dict(labels=labels)
        elif kind == "depth":
            depth = decode_dense(outputs[names["depth"]][0], meta, head["params"]["align_corners"])
            results[task] = dict(depth=depth[0])
    return results


# -- the spec, written from the PyTorch side ------------------------------------------------------


def _head_spec(model, head: str, task: str, names: Mapping[str, Any]) -> dict | None:
    """Decoder kind and parameters of one head, or None if no reference decoder covers it."""
    block = model.blocks[head]
    cls_name = type(block).__name__
    adapter = model.adapters[head]
    if isinstance(names, Mapping) and "cls_scores" in names:
        if cls_name == "FCOSLiteHead":
            params = dict(
                strides=list(block.strides), score_thr=block.score_thr, nms_pre=block.nms_pre,
                iou_threshold=block.iou_threshold, max_per_img=block.max_per_img,
                min_bbox_size=None, clip_to_original=True,
            )  # fmt: skip
        elif adapter.protocol == "mmdet_dense_head" and "centernesses" in names:
            cfg = block.test_cfg
            strides = [s[0] if isinstance(s, (tuple, list)) else s for s in block.strides]
            params = dict(
                strides=strides, score_thr=float(cfg.get("score_thr", 0.0)),
                nms_pre=int(cfg.get("nms_pre", -1)), iou_threshold=float(cfg.nms.iou_threshold),
                max_per_img=int(cfg.get("max_per_img", 100)),
                min_bbox_size=cfg.get("min_bbox_size", -1), clip_to_original=False,
            )  # fmt: skip
            if params["nms_pre"] < 0:
                params["nms_pre"] = 1 << 30
        else:
            return None
        return dict(kind="fcos", task=task, outputs=dict(names), params=params)
    if not isinstance(names, str):
        return None
    if (
        adapter.protocol == "mmseg_decode_head"
        or getattr(block, "pred_field", "") == "pred_sem_seg"
    ):
        params = dict(
            align_corners=bool(getattr(block, "align_corners", False)),
            threshold=float(getattr(block, "threshold", None) or 0.3),
        )
        return dict(kind="segmentation", task=task, outputs=dict(logits=names), params=params)
    if getattr(block, "pred_field", "") == "pred_depth_map":
        params = dict(align_corners=False, min_depth=getattr(block, "min_depth", None),
                      max_depth=getattr(block, "max_depth", None))  # fmt: skip
        return dict(kind="depth", task=task, outputs=dict(depth=names), params=params)
    return None


def io_spec(model, module, img_size: Sequence[int]) -> dict:
    """The ``model_io.json`` of an export: input (name, shape, normalisation), outputs, and
    per head the decoder kind, its output names and its parameters.

    Args:
        model: the ``MultiTaskModel``.
        module: the ``ExportModule`` that was exported (after ``trace_structure``).
        img_size: (H, W) of the exported input.
    """
    pre = model.data_preprocessor
    mean = getattr(pre, "mean", None)
    std = getattr(pre, "std", None)
    # datasets load BGR (OpenCV); the preprocessor swaps to RGB when bgr_to_rgb is set
    order = "RGB" if getattr(pre, "_channel_conversion", False) else "BGR"
    spec: dict[str, Any] = dict(
        input=dict(
            name=module.input_name, shape=[1, 3, *img_size], dtype="float32",
            channel_order=order,
            layout=f"NCHW, {order}, (x - mean) / std, image top-left in the padded input, "
            "padding 0",
            mean=None if mean is None else [float(f"{float(v):.7g}") for v in mean.reshape(-1)],
            std=None if std is None else [float(f"{float(v):.7g}") for v in std.reshape(-1)],
        ),
        outputs=list(module.output_names),
        structure=module.structure,
        heads={},
        undecoded=[],
    )  # fmt: skip
    tasks = {head: task for task, head in model.heads.items()}
    for target, structure in module.structure.items():
        if target not in tasks:
            continue
        task = tasks[target]
        if isinstance(structure, int):
            names: Any = module.output_names[structure]
        elif isinstance(structure, list) and len(structure) in (2, 3):
            parts = DENSE_DETECTION_PARTS[len(structure)]
            names = {
                p: [module.output_names[i] for i in lv]
                for p, lv in zip(parts, structure, strict=True)
            }
        else:
            names = None
        head = _head_spec(model, target, task, names) if names is not None else None
        if head is None:
            spec["undecoded"].append(task)
        else:
            spec["heads"][task] = head
    return spec
