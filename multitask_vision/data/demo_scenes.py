"""Procedural scenes for the demo data: shapes on textures (VOC-like) and rooms in 3-D (NYU-like).

Object classes differ by *shape* only: every class draws its colour and texture from the same
distribution, so a model must look at outlines, not hues. All randomness comes from the
``numpy.random.Generator`` passed in, so a seed fixes every pixel.

Shapes are tested analytically in object coordinates ``(x, y)`` in [-1, 1] (y up), rotated by
the object's angle; the same tests rasterise the 2-D VOC-like scenes and the 3-D billboards of
the NYU-like rooms, whose depth is exact per pixel.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

__all__ = [
    "NYU_DEMO_CLASSES",
    "SHAPES",
    "NYUScene",
    "VOCScene",
    "render_nyu_scene",
    "render_voc_scene",
    "shape_mask",
]

SHAPES = ("circle", "square", "triangle", "cross")


def shape_mask(shape: str, x: np.ndarray, y: np.ndarray, angle: float) -> np.ndarray:
    """Points of ``shape`` among object coordinates (x, y) (y up), shape rotated by ``angle`` rad.

    The shapes have similar areas (about 2.3 for a unit circumradius) so size does not give the
    class away.
    """
    c, s = np.cos(angle), np.sin(angle)
    u, v = c * x + s * y, -s * x + c * y
    if shape == "circle":
        return u * u + v * v <= 0.75
    if shape == "square":
        return np.maximum(np.abs(u), np.abs(v)) <= 0.76
    if shape == "triangle":  # equilateral, circumradius 1.05
        r = 1.05
        inside = v >= -0.5 * r
        for a in (np.pi / 6, 5 * np.pi / 6):  # the two slanted edges
            nx, ny = np.cos(a), np.sin(a)
            inside &= u * nx + v * ny <= 0.5 * r
        return inside
    if shape == "cross":
        arm, half = 0.3, 0.95
        return ((np.abs(u) <= arm) & (np.abs(v) <= half)) | (
            (np.abs(v) <= arm) & (np.abs(u) <= half)
        )
    raise ValueError(f"unknown shape {shape!r}; shapes: {', '.join(SHAPES)}")


def _random_colour(rng: np.random.Generator) -> np.ndarray:
    """A saturated RGB colour, float32 in [0, 255]."""
    hsv = np.array(
        [[[rng.integers(0, 180), rng.integers(120, 256), rng.integers(90, 256)]]], np.uint8
    )
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0].astype(np.float32)


def _texture(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A random background texture, Array[h, w, 3] float32 RGB: stripes, checks or blobs."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    c1, c2 = _random_colour(rng) * 0.8, _random_colour(rng) * 0.8
    kind = rng.integers(3)
    if kind == 0:  # soft stripes at a random angle
        a = rng.uniform(0, np.pi)
        period = rng.uniform(6, 20)
        t = 0.5 + 0.5 * np.sin((xx * np.cos(a) + yy * np.sin(a)) * 2 * np.pi / period)
    elif kind == 1:  # checks
        cell = rng.integers(6, 18)
        t = (((xx // cell) + (yy // cell)) % 2).astype(np.float32)
    else:  # smooth blobs
        low = rng.random((max(2, h // 16), max(2, w // 16))).astype(np.float32)
        t = cv2.resize(low, (w, h), interpolation=cv2.INTER_CUBIC).clip(0, 1)
    return c1 * t[..., None] + c2 * (1 - t[..., None])


def _object_fill(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """An object's surface: a colour with a light gradient or second-colour stripes."""
    base = _random_colour(rng)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    a = rng.uniform(0, 2 * np.pi)
    ramp = ((xx * np.cos(a) + yy * np.sin(a)) / max(h, w))[..., None]
    fill = base * (0.8 + 0.35 * ramp)
    if rng.random() < 0.3:
        period = rng.uniform(4, 10)
        stripes = (np.sin((xx - yy) * 2 * np.pi / period) > 0)[..., None]
        fill = np.where(stripes, fill, _random_colour(rng))
    return fill


@dataclass
class VOCScene:
    """A VOC-like image with its annotations.

    Attributes:
        image: Array[H, W, 3] uint8 RGB.
        objects: dicts(name, label, xmin, ymin, xmax, ymax (VOC 1-based inclusive), truncated,
            difficult).
        class_mask: Array[H, W] uint8: 0 background, 1 + label objects, 255 the boundary band
            and difficult objects (as VOC's ``SegmentationClass``).
    """

    image: np.ndarray
    objects: list[dict]
    class_mask: np.ndarray


def render_voc_scene(
    rng: np.random.Generator, h: int, w: int, band: int = 1, margin: int = 24
) -> VOCScene:
    """Render 1-3 shapes on a textured background, with VOC boxes and a class mask.

    Boxes enclose the *visible* pixels (VOC's rule). An object is ``truncated`` when part of it
    falls outside the image and ``difficult`` when under 40% of it is visible or its box is under
    8 px; difficult objects are 255 in the class mask, as in VOC. The boundary band is ``band``
    pixels on each side of every object outline.
    """
    hh, ww = h + 2 * margin, w + 2 * margin  # objects may leave the image: render on a margin
    canvas = _texture(rng, hh, ww)
    instance = np.zeros((hh, ww), np.int32)
    yy, xx = np.mgrid[0:hh, 0:ww].astype(np.float32)
    placed: list[tuple[int, np.ndarray]] = []
    for _ in range(int(rng.choice([1, 2, 3], p=[0.35, 0.4, 0.25]))):
        for _attempt in range(20):
            label = int(rng.integers(len(SHAPES)))
            radius = rng.uniform(0.16, 0.3) * min(h, w)
            cx = margin + rng.uniform(0.15, 0.85) * w
            cy = margin + rng.uniform(0.15, 0.85) * h
            mask = shape_mask(
                SHAPES[label], (xx - cx) / radius, (cy - yy) / radius, rng.uniform(0, 2 * np.pi)
            )
            overlap = [(instance == k + 1)[mask].mean() for k in range(len(placed))]
            if not overlap or max(overlap) < 0.3:
                break
        else:
            continue
        fill = _object_fill(rng, hh, ww)
        canvas[mask] = fill[mask]
        instance[mask] = len(placed) + 1
        placed.append((label, mask))
    canvas += rng.normal(0, 5, canvas.shape).astype(np.float32)
    crop = (slice(margin, margin + h), slice(margin, margin + w))
    image = canvas[crop].clip(0, 255).astype(np.uint8)
    inst = instance[crop]
    class_mask = np.zeros((h, w), np.uint8)
    objects = []
    for k, (label, full) in enumerate(placed):
        visible = inst == k + 1
        n_visible = int(visible.sum())
        if n_visible == 0:
            continue
        rows, cols = np.flatnonzero(visible.any(1)), np.flatnonzero(visible.any(0))
        xmin, xmax, ymin, ymax = cols[0] + 1, cols[-1] + 1, rows[0] + 1, rows[-1] + 1
        truncated = bool(full.sum() > full[crop].sum())
        small = min(xmax - xmin + 1, ymax - ymin + 1) < 8
        difficult = n_visible < 0.4 * full.sum() or small
        class_mask[visible] = 255 if difficult else label + 1
        objects.append(
            dict(
                name=SHAPES[label], label=label, xmin=int(xmin), ymin=int(ymin), xmax=int(xmax),
                ymax=int(ymax), truncated=int(truncated), difficult=int(difficult),
            )
        )  # fmt: skip
    kernel = np.ones((2 * band + 1, 2 * band + 1), np.uint8)
    inst8 = inst.astype(np.uint8)
    edge = cv2.dilate(inst8, kernel) != cv2.erode(inst8, kernel)
    class_mask[edge] = 255
    return VOCScene(image, objects, class_mask)


@dataclass
class NYUScene:
    """An NYU-like room frame.

    Attributes:
        image: Array[H, W, 3] uint8 RGB.
        depth: Array[H, W] float32 metres (camera z), 0 where the simulated Kinect has no
            reading (shadows left of objects, dropouts).
        labels: Array[H, W] uint8: 0 floor, 1 wall, 2 + shape index for objects.
        full_depth: Array[H, W] float32 metres without the holes.
    """

    image: np.ndarray
    depth: np.ndarray
    labels: np.ndarray
    full_depth: np.ndarray


NYU_DEMO_CLASSES = ("floor", "wall", *SHAPES)


def render_nyu_scene(rng: np.random.Generator, h: int = 120, w: int = 160) -> NYUScene:
    """Ray-cast a room: a floor in perspective, walls, and 1-3 upright shapes standing on the floor.

    The camera (focal ``0.81 w`` px, as the Kinect's 518.8 px at 640) sits 1.0-1.6 m above the
    floor, pitched 5-20 degrees down. Depth is the camera-z distance of the first surface hit,
    so the floor's depth grows towards the horizon and each object sits at its own depth.
    """
    f = 0.81 * w
    cx, cy = (w - 1) / 2, (h - 1) / 2
    cam_h = rng.uniform(1.0, 1.6)
    pitch = np.deg2rad(rng.uniform(5, 20))
    back = rng.uniform(4.0, 7.0)
    vv, uu = np.mgrid[0:h, 0:w].astype(np.float64)
    dx, dy = (uu - cx) / f, (vv - cy) / f
    down = dy * np.cos(pitch) + np.sin(pitch)  # per unit of camera z
    fwd = np.cos(pitch) - dy * np.sin(pitch)
    inf = np.full((h, w), np.inf)
    t_floor = np.where(down > 1e-6, cam_h / np.maximum(down, 1e-6), inf)
    t_wall = np.where(fwd > 1e-6, back / np.maximum(fwd, 1e-6), inf)
    for side in (-1, 1):  # side walls, each present half of the time
        if rng.random() < 0.5:
            dist = rng.uniform(1.5, 3.0)
            hit = side * dx > 1e-6
            t_wall = np.minimum(t_wall, np.where(hit, dist / np.maximum(side * dx, 1e-6), inf))
    depth = np.minimum(t_floor, t_wall)
    labels = np.where(t_floor <= t_wall, 0, 1).astype(np.uint8)

    # Surfaces: floor tiles in world coordinates, wall stripes.
    t_seen = np.where(np.isfinite(t_floor), t_floor, 0.0)
    floor_x, floor_z = dx * t_seen, fwd * t_seen
    tile = rng.uniform(0.3, 0.6)
    checks = ((np.floor(floor_x / tile) + np.floor(floor_z / tile)) % 2)[..., None]
    f1, f2 = _random_colour(rng) * 0.7, _random_colour(rng) * 0.7
    wall_c = _random_colour(rng) * 0.6 + 80
    stripes = (0.85 + 0.15 * np.sin(uu * 2 * np.pi / rng.uniform(8, 30)))[..., None]
    image = np.where(labels[..., None] == 0, f1 * checks + f2 * (1 - checks), wall_c * stripes)
    image = image * (1.0 / (1.0 + 0.06 * depth))[..., None]  # darker far away

    # Objects: upright planar shapes facing the camera's horizontal direction.
    occluders = []
    for _ in range(int(rng.choice([1, 2, 3], p=[0.3, 0.4, 0.3]))):
        label = int(rng.integers(len(SHAPES)))
        z_obj = rng.uniform(2.0, back - 0.5)
        size = rng.uniform(0.35, 0.7)  # metres, circumradius
        x_obj = (rng.uniform(0.15, 0.85) * w - cx) / f * z_obj
        t_obj = z_obj / np.maximum(fwd, 1e-6)
        ox = dx * t_obj - x_obj
        oy = cam_h - down * t_obj - size * rng.uniform(1.0, 1.3)  # height above the centre
        mask = shape_mask(SHAPES[label], ox / size, oy / size, rng.uniform(-0.6, 0.6))
        mask &= (fwd > 1e-6) & (t_obj < depth)
        if mask.sum() < 30:
            continue
        fill = _object_fill(rng, h, w) * (1.0 / (1.0 + 0.06 * t_obj))[..., None]
        image[mask] = fill[mask]
        depth[mask] = t_obj[mask]
        labels[mask] = 2 + label
        occluders.append(mask)
    image = (image + rng.normal(0, 4, image.shape)).clip(0, 255).astype(np.uint8)
    full = depth.astype(np.float32)

    # Kinect-like holes: the projector's shadow left of each object, and random dropouts.
    holes = np.zeros((h, w), bool)
    for mask in occluders:
        for s in range(1, int(rng.integers(2, 5))):
            shifted = np.zeros_like(mask)
            shifted[:, :-s] = mask[:, s:]
            holes |= shifted & ~mask
    holes_u8 = holes.astype(np.uint8)
    for _ in range(int(rng.integers(0, 3))):
        centre = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        axes = (int(rng.integers(2, 7)), int(rng.integers(2, 7)))
        cv2.ellipse(holes_u8, centre, axes, float(rng.uniform(0, 180)), 0, 360, 1, -1)
    holes = holes_u8.astype(bool)
    measured = np.where(holes, 0.0, full).astype(np.float32)
    return NYUScene(image, measured, labels, full)
