"""Scene model for the synthetic data sets: shapes in unit coordinates, rendering, masks.

A scene is plain data (frozen dataclasses), so a defect is a change to the data and its
ground truth is the footprint of the shapes it changed. Coordinates are fractions of the image
side (x right, y down), so one scene renders at any image size. numpy and OpenCV only.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

import cv2
import numpy as np

Color = tuple[int, int, int]  # BGR, 0..255
Point = tuple[float, float]  # (x, y) in fractions of the image side

_SHIFT = 4  # sub-pixel bits for OpenCV drawing
_SCALE = 1 << _SHIFT


@dataclass(frozen=True)
class Shape:
    """A filled polygon, or a polyline of ``width`` (unit coordinates) when ``width > 0``."""

    points: tuple[Point, ...]
    color: Color
    width: float = 0.0


@dataclass(frozen=True)
class Part:
    """Shapes drawn in order; with ``clip``, drawn only inside the clip shapes' footprint."""

    name: str
    shapes: tuple[Shape, ...]
    clip: tuple[Shape, ...] = ()
    geometry: tuple[float, ...] = ()  # what the part was built from (centre, size, ...)

    def moved(self, dx: float, dy: float) -> Part:
        shapes = tuple(
            replace(s, points=tuple((x + dx, y + dy) for x, y in s.points)) for s in self.shapes
        )
        return replace(self, shapes=shapes)


@dataclass(frozen=True)
class Scene:
    """Everything needed to render one image; identical noise for identical ``noise_seed``."""

    background: Color
    parts: tuple[Part, ...]
    overlays: tuple[Part, ...] = ()  # structural defects, drawn after all parts
    pose: tuple[float, float, float] = (0.0, 0.0, 0.0)  # dx, dy (unit), rotation (degrees)
    light: tuple[float, float, float] = (0.0, 0.0, 1.0)  # gradient amplitude, direction, gain
    noise_sigma: float = 3.0  # grey levels
    noise_seed: int = 0

    def part(self, name: str) -> Part:
        return next(p for p in self.parts if p.name == name)

    def without(self, *names: str) -> Scene:
        return replace(self, parts=tuple(p for p in self.parts if p.name not in names))

    def replaced(self, name: str, new: Part) -> Scene:
        return replace(self, parts=tuple(new if p.name == name else p for p in self.parts))

    def with_parts(self, *parts: Part) -> Scene:
        return replace(self, parts=self.parts + parts)

    def with_overlay(self, *parts: Part) -> Scene:
        return replace(self, overlays=self.overlays + parts)


@dataclass(frozen=True)
class Defect:
    """One annotated defect: its ground truth is ``region`` (intersected with ``clip``)."""

    name: str
    region: tuple[Shape, ...]
    clip: tuple[Shape, ...] = ()


# ---------------------------------------------------------------- shape builders


def shade(color: Color, factor: float) -> Color:
    return tuple(int(np.clip(round(c * factor), 0, 255)) for c in color)  # type: ignore[return-value]


def rotate(offset: Point, angle: float) -> Point:
    """``offset`` rotated by ``angle`` degrees (image coordinates, y down)."""
    a = math.radians(angle)
    return (
        offset[0] * math.cos(a) - offset[1] * math.sin(a),
        offset[0] * math.sin(a) + offset[1] * math.cos(a),
    )


def at(center: Point, offset: Point, angle: float = 0.0) -> Point:
    """The point ``offset`` from ``center`` in a frame rotated by ``angle`` degrees."""
    dx, dy = rotate(offset, angle)
    return (center[0] + dx, center[1] + dy)


def ellipse(center: Point, axes: tuple[float, float], color: Color, angle: float = 0.0) -> Shape:
    """Filled ellipse with semi-axes ``axes``."""
    t = np.linspace(0.0, 2.0 * math.pi, 48, endpoint=False)
    return Shape(
        tuple(at(center, (axes[0] * math.cos(a), axes[1] * math.sin(a)), angle) for a in t), color
    )


def circle(center: Point, radius: float, color: Color) -> Shape:
    return ellipse(center, (radius, radius), color)


def rect(center: Point, size: tuple[float, float], color: Color, angle: float = 0.0) -> Shape:
    """Filled rectangle of full size ``size`` rotated by ``angle`` degrees about its centre."""
    w, h = size[0] / 2, size[1] / 2
    corners = ((-w, -h), (w, -h), (w, h), (-w, h))
    return Shape(tuple(at(center, c, angle) for c in corners), color)


def closed(points: tuple[Point, ...]) -> tuple[Point, ...]:
    """The points with the first repeated at the end: a closed outline for ``line``."""
    return (*points, points[0])


def line(points: tuple[Point, ...], width: float, color: Color) -> Shape:
    return Shape(tuple(points), color, width)


def bezier(p0: Point, p1: Point, p2: Point, n: int = 24) -> tuple[Point, ...]:
    """``n`` points on the quadratic Bézier curve with control point ``p1``."""
    t = np.linspace(0.0, 1.0, n)[:, None]
    pts = (1 - t) ** 2 * np.array(p0) + 2 * (1 - t) * t * np.array(p1) + t**2 * np.array(p2)
    return tuple((float(x), float(y)) for x, y in pts)


def ball(name: str, center: Point, radius: float, color: Color, stem: Color | None = None) -> Part:
    """A round fruit: dark rim, body, highlight and an optional stem dot."""
    shapes = [
        circle(center, radius, shade(color, 0.7)),
        circle(center, radius * 0.92, color),
        ellipse(
            at(center, (-0.35 * radius, -0.35 * radius)),
            (0.3 * radius, 0.2 * radius),
            shade(color, 1.35),
            angle=-45,
        ),
    ]
    if stem is not None:
        shapes.append(circle(at(center, (0.15 * radius, 0.1 * radius)), 0.1 * radius, stem))
    return Part(name, tuple(shapes), geometry=(center[0], center[1], radius))


def blob(center: Point, radius: float, color: Color, rng: np.random.Generator) -> Shape:
    """An irregular, roughly round blob of mean radius ``radius``."""
    t = np.linspace(0.0, 2.0 * math.pi, 40, endpoint=False)
    phases = rng.uniform(0, 2 * math.pi, 3)
    r = radius * (1 + sum(0.12 * np.sin(k * t + p) for k, p in zip((2, 3, 5), phases, strict=True)))
    return Shape(
        tuple(at(center, (ri * math.cos(a), ri * math.sin(a))) for ri, a in zip(r, t, strict=True)),
        color,
    )


def scratch(
    start: Point, length: float, angle: float, width: float, color: Color, rng: np.random.Generator
) -> Shape:
    """A slightly bent line from ``start``: a scratch several pixels wide."""
    bend = rng.uniform(-0.15, 0.15) * length
    end = at(start, (length, 0.0), angle)
    mid = at(start, (length / 2, bend), angle)
    return line(bezier(start, mid, end, 12), width, color)


def jitter(rng: np.random.Generator, point: Point, amount: float) -> Point:
    dx, dy = rng.uniform(-amount, amount, 2)
    return (point[0] + float(dx), point[1] + float(dy))


# ---------------------------------------------------------------- rendering


def _to_pixels(
    points: tuple[Point, ...], pose: tuple[float, float, float], size: int
) -> np.ndarray:
    """Unit points → fixed-point pixel coordinates ``[K, 2]`` int32 after the scene pose."""
    dx, dy, angle = pose
    pts = np.asarray(points, dtype=np.float64) - 0.5
    a = math.radians(angle)
    rot = np.array([[math.cos(a), math.sin(a)], [-math.sin(a), math.cos(a)]])
    pts = pts @ rot + (0.5 + dx, 0.5 + dy)
    return np.round((pts * size - 0.5) * _SCALE).astype(np.int32)


def _draw(canvas: np.ndarray, shape: Shape, pose, size: int, color, antialias: bool) -> None:
    pts = _to_pixels(shape.points, pose, size)
    line_type = cv2.LINE_AA if antialias else cv2.LINE_8
    if shape.width > 0:
        thickness = max(1, round(shape.width * size))
        cv2.polylines(canvas, [pts], False, color, thickness, line_type, _SHIFT)
    else:
        cv2.fillPoly(canvas, [pts], color, line_type, _SHIFT)


def footprint(shapes: tuple[Shape, ...], pose: tuple[float, float, float], size: int) -> np.ndarray:
    """``[size, size]`` bool: the pixels the shapes cover (no anti-aliasing)."""
    mask = np.zeros((size, size), np.uint8)
    for shape in shapes:
        _draw(mask, shape, pose, size, 255, antialias=False)
    return mask > 0


def defect_mask(defect: Defect, pose: tuple[float, float, float], size: int) -> np.ndarray:
    """``[size, size]`` bool ground truth of one defect."""
    mask = footprint(defect.region, pose, size)
    return mask & footprint(defect.clip, pose, size) if defect.clip else mask


def _draw_part(canvas: np.ndarray, part: Part, pose, size: int) -> None:
    target = canvas.copy() if part.clip else canvas
    for shape in part.shapes:
        _draw(target, shape, pose, size, shape.color, antialias=True)
    if part.clip:  # one pixel wider than the clip, so no anti-aliased rim of the old part stays
        keep = cv2.dilate(
            footprint(part.clip, pose, size).astype(np.uint8), np.ones((3, 3), np.uint8)
        )
        canvas[keep > 0] = target[keep > 0]


def render(scene: Scene, size: int) -> np.ndarray:
    """Render a scene as uint8 BGR ``[size, size, 3]``: parts, overlays, lighting, noise."""
    canvas = np.empty((size, size, 3), np.uint8)
    canvas[:] = scene.background
    for part in scene.parts + scene.overlays:
        _draw_part(canvas, part, scene.pose, size)
    amplitude, direction, gain = scene.light
    coords = (np.arange(size, dtype=np.float32) + 0.5) / size - 0.5
    ramp = math.cos(direction) * coords[None, :] + math.sin(direction) * coords[:, None]
    light = (gain + amplitude * ramp)[:, :, None]
    noise = np.random.default_rng(scene.noise_seed).standard_normal(
        (size, size, 3), dtype=np.float32
    )
    image = canvas.astype(np.float32) * light + scene.noise_sigma * noise
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


# ---------------------------------------------------------------- building blocks of categories


def random_look(rng: np.random.Generator, max_shift: float, max_angle: float) -> dict:
    """Pose, lighting and noise keyword arguments for ``Scene``: the per-image variation."""
    return {
        "pose": (
            *(float(v) for v in rng.uniform(-max_shift, max_shift, 2)),
            float(rng.uniform(-max_angle, max_angle)),
        ),
        "light": (
            float(rng.uniform(0.0, 0.1)),
            float(rng.uniform(0, 2 * math.pi)),
            float(rng.uniform(0.94, 1.05)),
        ),
        "noise_sigma": float(rng.uniform(2.0, 3.5)),
        "noise_seed": int(rng.integers(2**32)),
    }


Regions = list[tuple[tuple[Shape, ...], tuple[Shape, ...]]]  # (region, clip) per defect
Anomaly = Callable[[Scene, np.random.Generator], tuple[Scene, Regions]]


@dataclass(frozen=True)
class Example:
    """One generated image: the scene, the defect-free scene it came from, and its defects."""

    scene: Scene
    normal: Scene
    defects: tuple[Defect, ...]


def vary(color: Color, rng: np.random.Generator, amount: int) -> Color:
    return tuple(int(np.clip(c + rng.integers(-amount, amount + 1), 0, 255)) for c in color)  # type: ignore[return-value]


def inside(
    surface: tuple[Shape, ...], rng: np.random.Generator, margin: float
) -> tuple[float, float]:
    """A point in the middle ``1 - 2 * margin`` of the surface's bounding box."""
    pts = np.array([p for s in surface for p in s.points])
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    x, y = lo + (hi - lo) * rng.uniform(margin, 1 - margin, 2)
    return (float(x), float(y))


def add_scratch(
    scene: Scene,
    surface: tuple[Shape, ...],
    color: Color,
    rng: np.random.Generator,
    length: tuple[float, float] = (0.28, 0.38),
) -> tuple[Scene, Regions]:
    """A dark scratch 7-10 px wide (at 256 px) across ``surface``, clipped to it."""
    mid, size = inside(surface, rng, 0.3), rng.uniform(*length)
    angle = rng.uniform(0, 360)
    start = (
        mid[0] - 0.5 * size * math.cos(math.radians(angle)),
        mid[1] - 0.5 * size * math.sin(math.radians(angle)),
    )
    mark = scratch(start, size, angle, rng.uniform(0.028, 0.038), color, rng)
    return scene.with_overlay(Part("scratch", (mark,), clip=surface)), [((mark,), surface)]


def add_contamination(
    scene: Scene,
    surface: tuple[Shape, ...],
    rng: np.random.Generator,
    radius: tuple[float, float] = (0.07, 0.095),
) -> tuple[Scene, Regions]:
    """A dirt blob of 1.5-3 % of the image on ``surface``, clipped to it."""
    colors = ((30, 70, 35), (30, 45, 70), (25, 25, 25))  # mould, grease, soot
    color = colors[int(rng.integers(len(colors)))]
    spot = blob(inside(surface, rng, 0.25), rng.uniform(*radius), color, rng)
    return scene.with_overlay(Part("contamination", (spot,), clip=surface)), [((spot,), surface)]


class SceneCategory:
    """A scene sampler with named logical and structural anomalies.

    Subclasses set ``name``, ``description``, ``logical`` and ``structural`` (name → anomaly);
    ``saturation`` gives a relative sPRO saturation threshold where it is not 1.0.
    """

    name = ""
    description = ""
    logical: dict[str, Anomaly]
    structural: dict[str, Anomaly]
    saturation: dict[str, float] = {}  # noqa: RUF012 - read only

    def normal(self, rng: np.random.Generator) -> Scene:
        raise NotImplementedError

    def example(self, kind: str, rng: np.random.Generator) -> Example:
        """A scene of ``kind`` ("good", "logical" or "structural") drawn from ``rng``."""
        normal = self.normal(rng)
        if kind == "good":
            return Example(normal, normal, ())
        table = {"logical": self.logical, "structural": self.structural}[kind]
        name = list(table)[int(rng.integers(len(table)))]
        scene, regions = table[name](normal, rng)
        return Example(scene, normal, tuple(Defect(name, r, c) for r, c in regions))

    def defects_config(self) -> list[dict]:
        """MVTec LOCO ``defects_config.json`` entries, pixel values from 255 down."""
        names = list(self.logical) + list(self.structural)
        return [
            {
                "defect_name": n,
                "pixel_value": 255 - i,
                "saturation_threshold": self.saturation.get(n, 1.0),
                "relative_saturation": True,
            }
            for i, n in enumerate(names)
        ]
