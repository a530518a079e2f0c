"""The synthetic scene categories: each draws normal scenes that obey a few logical rules and
anomalies that break one rule (logical) or damage a surface (structural). numpy and OpenCV only."""

from __future__ import annotations

import math
from dataclasses import replace

import cv2
import numpy as np

from glcf_train.data.hard_categories import FastenerTray, PillBlister
from glcf_train.data.scenes import (
    Color,
    Part,
    Regions,
    Scene,
    SceneCategory,
    Shape,
    add_contamination,
    add_scratch,
    at,
    ball,
    bezier,
    blob,
    circle,
    closed,
    ellipse,
    jitter,
    line,
    random_look,
    rect,
    shade,
    vary,
)


class BreakfastTray(SceneCategory):
    name = "breakfast_tray"
    description = (
        "A tray with two oranges in the left compartment, a pile of nuts top right and "
        "a banana bottom right. Logical: an orange missing, extra nuts by the oranges, a lime in "
        "place of an orange, no nuts. Structural: a scratch, contamination, a bruised "
        "orange."
    )
    saturation = {"missing_nuts": 0.5}  # noqa: RUF012
    TRAY = (0.5, 0.5), (0.89, 0.73)  # centre, size of the tray's floor

    def __init__(self) -> None:
        self.logical = {
            "missing_orange": self._missing_orange,
            "extra_nuts": self._extra_nuts,
            "lime_instead_of_orange": self._lime,
            "missing_nuts": self._missing_nuts,
        }
        self.structural = {
            "scratch": self._scratch,
            "contamination": self._contamination,
            "bruised_orange": self._bruised,
        }

    def normal(self, rng: np.random.Generator) -> Scene:
        floor = vary((212, 218, 222), rng, 5)
        tray = Part(
            "tray",
            (
                rect(self.TRAY[0], (0.92, 0.76), (120, 128, 135)),
                rect(*self.TRAY, floor),
                line(((0.46, 0.15), (0.46, 0.85)), 0.014, (160, 166, 170)),
                line(((0.46, 0.48), (0.93, 0.48)), 0.014, (160, 166, 170)),
            ),
        )
        oranges = [self._orange(f"orange{i}", (0.255, y), rng) for i, y in enumerate((0.32, 0.68))]
        nuts = []  # eight almonds in two loose rows
        for k in range(8):
            center = jitter(
                rng, (0.565 + 0.09 * (k % 4) + 0.045 * (k // 4), 0.255 + 0.1 * (k // 4)), 0.01
            )
            nuts += self._almond(center, rng.uniform(-20, 20) + 90 * (k // 4), rng)
        pts = bezier(*(jitter(rng, p, 0.01) for p in ((0.56, 0.62), (0.70, 0.84), (0.85, 0.62))))
        banana = Part(
            "banana",
            (
                line(pts, 0.075, (40, 140, 175)),
                line(pts, 0.058, vary((45, 205, 235), rng, 10)),
                circle(pts[0], 0.016, (30, 50, 60)),
                circle(pts[-1], 0.012, (30, 50, 60)),
            ),
        )
        return Scene(
            vary((75, 85, 95), rng, 10),
            (tray, *oranges, Part("nuts", tuple(nuts)), banana),
            **random_look(rng, 0.01, 1.5),
        )

    @staticmethod
    def _orange(
        name: str, center: tuple[float, float], rng: np.random.Generator, color: Color | None = None
    ) -> Part:
        color = color or (int(rng.integers(10, 35)), int(rng.integers(115, 150)), 245)
        return ball(name, jitter(rng, center, 0.012), rng.uniform(0.12, 0.13), color, (40, 90, 60))

    def _missing_orange(self, scene: Scene, rng: np.random.Generator) -> tuple[Scene, Regions]:
        name = f"orange{int(rng.integers(2))}"
        return scene.without(name), [(scene.part(name).shapes, ())]

    @staticmethod
    def _almond(center: tuple[float, float], angle: float, rng: np.random.Generator) -> list[Shape]:
        color = vary((45, 95, 150), rng, 12)
        return [
            ellipse(center, (0.046, 0.027), (30, 60, 95), angle),
            ellipse(center, (0.04, 0.021), color, angle),
        ]

    def _extra_nuts(self, scene: Scene, rng: np.random.Generator) -> tuple[Scene, Regions]:
        """Three almonds in the gap between the oranges, where nothing belongs."""
        shapes = []
        for x in (0.16, 0.255, 0.35):
            shapes += self._almond(jitter(rng, (x, 0.5), 0.008), rng.uniform(-15, 15), rng)
        return scene.with_parts(Part("extra_nuts", tuple(shapes))), [(tuple(shapes), ())]

    def _lime(self, scene: Scene, rng: np.random.Generator) -> tuple[Scene, Regions]:
        name = f"orange{int(rng.integers(2))}"
        x, y, r = scene.part(name).geometry
        lime = ball(name, (x, y), r, vary((40, 185, 110), rng, 10), (40, 90, 60))
        return scene.replaced(name, lime), [(lime.shapes, ())]

    def _missing_nuts(self, scene: Scene, rng: np.random.Generator) -> tuple[Scene, Regions]:
        pts = np.array([p for s in scene.part("nuts").shapes for p in s.points], np.float32)
        hull = tuple((float(x), float(y)) for x, y in cv2.convexHull(pts)[:, 0])
        return scene.without("nuts"), [((Shape(hull, (0, 0, 0)),), ())]

    def _floor(self, scene: Scene) -> tuple[Shape, ...]:
        return (scene.part("tray").shapes[1],)

    def _scratch(self, scene: Scene, rng: np.random.Generator) -> tuple[Scene, Regions]:
        return add_scratch(scene, self._floor(scene), vary((70, 72, 76), rng, 8), rng)

    def _contamination(self, scene: Scene, rng: np.random.Generator) -> tuple[Scene, Regions]:
        return add_contamination(scene, self._floor(scene), rng)

    def _bruised(self, scene: Scene, rng: np.random.Generator) -> tuple[Scene, Regions]:
        orange = scene.part(f"orange{int(rng.integers(2))}")
        x, y, r = orange.geometry
        angle = math.radians(rng.uniform(0, 360))
        rot = vary((25, 55, 85), rng, 8)
        spot = (x + 0.6 * r * math.cos(angle), y + 0.6 * r * math.sin(angle))
        bruise = blob(spot, r * rng.uniform(0.5, 0.6), rot, rng)
        damaged = scene.with_overlay(Part("bruise", (bruise,), clip=orange.shapes))
        return damaged, [((bruise,), orange.shapes)]


CABLE = (190, 110, 30)  # every good cable is blue
WRONG_CABLES = ((40, 40, 200), (30, 200, 230), (60, 160, 40))  # red, yellow, green


class CablePair(SceneCategory):
    name = "cable_pair"
    description = (
        "Two splicing connectors joined by a blue cable; the pair has the same number of "
        "levers (2, 3 or 5 per image). Logical: connectors with different lever counts, a "
        "cable of another colour, no cable, a loose extra cable. Structural: a cut cable, "
        "contamination, a broken connector."
    )
    saturation = {"wrong_cable_colour": 0.5, "missing_cable": 0.5}  # noqa: RUF012

    def __init__(self) -> None:
        self.logical = {
            "mismatched_connectors": self._mismatched,
            "wrong_cable_colour": self._colour,
            "missing_cable": self._missing_cable,
            "extra_cable": self._extra_cable,
        }
        self.structural = {
            "cut_cable": self._cut,
            "contamination": self._contamination,
            "broken_connector": self._broken,
        }

    def normal(self, rng: np.random.Generator) -> Scene:
        n = (2, 3, 5)[int(rng.integers(3))]
        ends = []
        for name, x, turn in (("left", 0.17, 0.0), ("right", 0.83, 180.0)):
            center = (x + rng.uniform(-0.01, 0.01), 0.5 + rng.uniform(-0.02, 0.02))
            ends.append(self._connector(name, center, turn + rng.uniform(-3, 3), n))
        (ax, ay), (bx, by) = (at(e.geometry[:2], (0.075, 0.0), e.geometry[2]) for e in ends)
        mid = ((ax + bx) / 2 + rng.uniform(-0.02, 0.02), (ay + by) / 2 + rng.uniform(0.0, 0.06))
        pts = bezier((ax, ay), mid, (bx, by), 32)
        color = vary(CABLE, rng, 8)
        cable = Part("cable", (line(pts, 0.05, shade(color, 0.55)), line(pts, 0.036, color)))
        return Scene(vary((178, 180, 176), rng, 6), (*ends, cable), **random_look(rng, 0.01, 2.0))

    @staticmethod
    def _connector(name: str, center: tuple[float, float], angle: float, n: int) -> Part:
        """A block with ``n`` levers on its outer half and ``n`` wire holes on its inner edge."""
        shapes = [
            rect(center, (0.164, 0.07 * n + 0.054), (105, 108, 108), angle),
            rect(center, (0.15, 0.07 * n + 0.04), (222, 226, 226), angle),
        ]
        for i in range(n):
            y = (i - (n - 1) / 2) * 0.07
            shapes.append(
                rect(at(center, (-0.015, y), angle), (0.085, 0.036), (25, 115, 235), angle)
            )
            shapes.append(rect(at(center, (0.05, y), angle), (0.026, 0.02), (60, 60, 60), angle))
        return Part(name, tuple(shapes), geometry=(center[0], center[1], angle, n))

    def _mismatched(self, scene: Scene, rng: np.random.Generator) -> tuple[Scene, Regions]:
        old = scene.part(("left", "right")[int(rng.integers(2))])
        x, y, angle, n = old.geometry
        other = [k for k in (2, 3, 5) if k != n][int(rng.integers(2))]
        new = self._connector(old.name, (x, y), angle, other)
        return scene.replaced(old.name, new), [(old.shapes + new.shapes, ())]

    def _colour(self, scene: Scene, rng: np.random.Generator) -> tuple[Scene, Regions]:
        outline, core = scene.part("cable").shapes
        color = WRONG_CABLES[int(rng.integers(len(WRONG_CABLES)))]
        cable = Part(
            "cable", (replace(outline, color=shade(color, 0.55)), replace(core, color=color))
        )
        return scene.replaced("cable", cable), [(cable.shapes, ())]

    def _missing_cable(self, scene: Scene, rng: np.random.Generator) -> tuple[Scene, Regions]:
        return scene.without("cable"), [(scene.part("cable").shapes, ())]

    def _extra_cable(self, scene: Scene, rng: np.random.Generator) -> tuple[Scene, Regions]:
        """A loose piece of the same cable lying above or below the pair."""
        y = (0.2, 0.82)[int(rng.integers(2))] + rng.uniform(-0.02, 0.02)
        x, bend = 0.5 + rng.uniform(-0.06, 0.06), rng.uniform(-0.05, 0.05)
        pts = bezier((x - 0.2, y + rng.uniform(-0.03, 0.03)), (x, y + bend), (x + 0.2, y), 24)
        outline, core = scene.part("cable").shapes
        extra = Part("extra_cable", (replace(outline, points=pts), replace(core, points=pts)))
        return scene.with_parts(extra), [(extra.shapes, ())]

    def _cut(self, scene: Scene, rng: np.random.Generator) -> tuple[Scene, Regions]:
        cable = scene.part("cable").shapes
        k = int(rng.integers(8, 17))
        cut = line(cable[0].points[k : k + 7], 0.08, scene.background)  # a gap of ~50 px at 256 px
        return scene.with_overlay(Part("cut", (cut,), clip=cable)), [((cut,), cable)]

    def _contamination(self, scene: Scene, rng: np.random.Generator) -> tuple[Scene, Regions]:
        return add_contamination(scene, (rect((0.5, 0.5), (0.8, 0.6), (0, 0, 0)),), rng)

    def _broken(self, scene: Scene, rng: np.random.Generator) -> tuple[Scene, Regions]:
        block = scene.part(("left", "right")[int(rng.integers(2))])
        x, y, angle, n = block.geometry
        corner = at(
            (x, y), (-0.075, (0.035 * n + 0.02) * (1 if rng.uniform() < 0.5 else -1)), angle
        )
        chunk = blob(corner, rng.uniform(0.075, 0.09), (65, 68, 72), rng)  # the dark clamp inside
        damaged = scene.with_overlay(Part("break", (chunk,), clip=block.shapes))
        return damaged, [((chunk,), block.shapes)]


JUICES = ((20, 130, 240), (60, 25, 140), (95, 210, 235))  # orange, cherry, banana (BGR)


class JuiceBottle(SceneCategory):
    name = "juice_bottle"
    description = (
        "A juice bottle filled to just below the shoulder, with a centred label whose "
        "fruit icon matches the juice (orange, cherry or banana). Logical: the wrong "
        "icon, no label, too little juice, the label out of place. Structural: a "
        "scratch on the glass, contamination in the juice, a torn label."
    )
    saturation = {"wrong_fill_level": 0.5, "misplaced_label": 0.5}  # noqa: RUF012
    BODY = rect((0.5, 0.63), (0.40, 0.58), (0, 0, 0))  # below the shoulder: y 0.34 .. 0.92

    def __init__(self) -> None:
        self.logical = {
            "wrong_fruit_icon": self._icon_swap,
            "missing_label": self._missing_label,
            "wrong_fill_level": self._low_fill,
            "misplaced_label": self._misplaced,
        }
        self.structural = {
            "scratch": self._scratch,
            "contamination": self._contamination,
            "torn_label": self._torn,
        }

    def normal(self, rng: np.random.Generator) -> Scene:
        fruit = int(rng.integers(3))
        xs = (0.30, 0.30, 0.43, 0.43, 0.57, 0.57, 0.70, 0.70)
        ys = (0.92, 0.345, 0.24, 0.11, 0.11, 0.24, 0.345, 0.92)  # silhouette from bottom left
        outline = tuple(zip(xs, ys, strict=True))
        bottle = Part(
            "bottle",
            (
                Shape(outline, vary((185, 196, 192), rng, 8)),
                line((*outline, outline[0]), 0.012, (110, 120, 118)),
                rect((0.5, 0.095), (0.17, 0.06), vary((60, 60, 60), rng, 15)),
            ),
        )
        liquid = self._liquid(0.40 + rng.uniform(-0.008, 0.008), vary(JUICES[fruit], rng, 8))
        shine = Part("shine", (line(((0.322, 0.37), (0.322, 0.88)), 0.014, (235, 240, 240)),))
        cx, cy = 0.5 + rng.uniform(-0.008, 0.008), 0.68 + rng.uniform(-0.01, 0.01)
        label = Part(
            "label",
            (
                rect((cx, cy), (0.32, 0.2), (236, 238, 240)),
                line(closed(rect((cx, cy), (0.32, 0.2), (0, 0, 0)).points), 0.006, (170, 172, 175)),
                rect((cx, cy + 0.055), (0.22, 0.014), (90, 90, 90)),
                rect((cx, cy + 0.078), (0.14, 0.012), (90, 90, 90)),
            ),
        )
        parts = (bottle, liquid, shine, label, self._icon((cx, cy - 0.025), fruit))
        return Scene(vary((50, 45, 42), rng, 8), parts, **random_look(rng, 0.01, 1.5))

    @staticmethod
    def _liquid(level: float, color: Color) -> Part:
        return Part(
            "liquid",
            (rect((0.5, (level + 0.905) / 2), (0.37, 0.905 - level), color),),
            geometry=(level,),
        )

    @staticmethod
    def _icon(center: tuple[float, float], fruit: int) -> Part:
        x, y = center
        if fruit == 0:  # an orange with a leaf
            shapes = (
                circle(center, 0.05, JUICES[0]),
                ellipse((x + 0.02, y - 0.05), (0.024, 0.011), (40, 150, 60), -30),
            )
        elif fruit == 1:  # two cherries on stems
            shapes = tuple(
                line(((x + dx, y + 0.015), (x, y - 0.055)), 0.007, (40, 110, 50))
                for dx in (-0.026, 0.026)
            )
            shapes += tuple(
                circle((x + dx, y + 0.02), 0.029, (40, 20, 170)) for dx in (-0.026, 0.026)
            )
        else:  # a banana
            pts = bezier((x - 0.055, y - 0.03), (x, y + 0.065), (x + 0.055, y - 0.03), 16)
            shapes = (line(pts, 0.038, (40, 140, 175)), line(pts, 0.028, (45, 205, 235)))
        return Part("icon", shapes, geometry=(x, y, fruit))

    def _icon_swap(self, scene: Scene, rng: np.random.Generator) -> tuple[Scene, Regions]:
        old = scene.part("icon")
        x, y, fruit = old.geometry
        new = self._icon((x, y), (int(fruit) + int(rng.integers(1, 3))) % 3)
        return scene.replaced("icon", new), [(old.shapes + new.shapes, ())]

    def _missing_label(self, scene: Scene, rng: np.random.Generator) -> tuple[Scene, Regions]:
        return scene.without("label", "icon"), [(scene.part("label").shapes, ())]

    def _low_fill(self, scene: Scene, rng: np.random.Generator) -> tuple[Scene, Regions]:
        old = scene.part("liquid")
        level = old.geometry[0] + rng.uniform(0.12, 0.145)
        gap = rect(
            (0.5, old.geometry[0] + (level - old.geometry[0]) / 2),
            (0.37, level - old.geometry[0]),
            (0, 0, 0),
        )
        return scene.replaced("liquid", self._liquid(level, old.shapes[0].color)), [((gap,), ())]

    def _misplaced(self, scene: Scene, rng: np.random.Generator) -> tuple[Scene, Regions]:
        dy = rng.uniform(0.08, 0.11) * (1 if rng.uniform() < 0.5 else -1)
        label, icon = scene.part("label").moved(0, dy), scene.part("icon").moved(0, dy)
        moved = scene.replaced("label", label).replaced("icon", icon)
        return moved, [(scene.part("label").shapes + label.shapes, ())]

    def _scratch(self, scene: Scene, rng: np.random.Generator) -> tuple[Scene, Regions]:
        return add_scratch(scene, (self.BODY,), vary((45, 45, 48), rng, 8), rng, (0.22, 0.3))

    def _contamination(self, scene: Scene, rng: np.random.Generator) -> tuple[Scene, Regions]:
        """Dirt in the juice above or below the label, where the juice is visible."""
        level, label = scene.part("liquid").geometry[0], scene.part("label").shapes[0].points
        top, bottom = min(y for _, y in label), max(y for _, y in label)
        y0, y1 = (level, top) if rng.uniform() < 0.5 else (bottom, 0.905)
        band = rect((0.5, (y0 + y1) / 2), (0.37, y1 - y0), (0, 0, 0))
        return add_contamination(scene, (band,), rng, (0.055, 0.07))

    def _torn(self, scene: Scene, rng: np.random.Generator) -> tuple[Scene, Regions]:
        label = scene.part("label")
        corner = label.shapes[0].points[int(rng.integers(4))]
        tear = blob(corner, rng.uniform(0.09, 0.11), scene.part("liquid").shapes[0].color, rng)
        edge = line(closed(tear.points), 0.01, (95, 95, 100))  # the ragged paper edge
        damaged = scene.with_overlay(Part("tear", (tear, edge), clip=label.shapes))
        return damaged, [((tear,), label.shapes)]


CATEGORIES: dict[str, SceneCategory] = {
    "breakfast_tray": BreakfastTray(),
    "cable_pair": CablePair(),
    "juice_bottle": JuiceBottle(),
    # Harder scenes: loose parts, counts and pairings, defects a few pixels wide.
    "fastener_tray": FastenerTray(),
    "pill_blister": PillBlister(),
}
