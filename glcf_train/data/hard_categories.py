"""Harder synthetic categories: loose parts whose positions vary within their compartment,
logical rules on counts and pairings, and structural defects only a few pixels wide
(1-pixel hairlines, small chips and specks at 256 px). numpy and OpenCV only."""

from __future__ import annotations

import math

import numpy as np

from glcf_train.data.scenes import (
    Color,
    Part,
    Regions,
    Scene,
    SceneCategory,
    Shape,
    at,
    blob,
    circle,
    ellipse,
    line,
    random_look,
    rect,
    scratch,
    shade,
    vary,
)

HAIRLINE = 0.004  # 1 px at 256 px
STEEL, BRASS = (150, 150, 146), (40, 150, 190)  # BGR


def _hairline(surface: tuple[Shape, ...], center: tuple[float, float], reach: float,
              color: Color, rng: np.random.Generator) -> tuple[Part, Regions]:
    """A 1-px scratch of length ``reach`` through ``center``, clipped to ``surface``."""
    angle = rng.uniform(0, 360)
    start = at(center, (-reach / 2, 0.0), angle)
    mark = scratch(start, reach, angle, HAIRLINE, color, rng)
    return Part("hairline", (mark,), clip=surface), [((mark,), surface)]


def _speck(surface: tuple[Shape, ...], center: tuple[float, float], rng: np.random.Generator,
           radius: tuple[float, float] = (0.008, 0.013)) -> tuple[Part, Regions]:
    """A dark speck 4-7 px across, clipped to ``surface``."""
    color = ((30, 60, 35), (30, 40, 60), (28, 28, 28))[int(rng.integers(3))]
    spot = blob(center, rng.uniform(*radius), color, rng)
    return Part("speck", (spot,), clip=surface), [((spot,), surface)]


def _place(rng: np.random.Generator, box: tuple[float, float, float, float], n: int,
           gap: float, taken: list[tuple[float, float]] | None = None) -> list[tuple[float, float]]:
    """``n`` random points in ``box`` (x0, y0, x1, y1), at least ``gap`` apart (and from ``taken``)."""
    taken = list(taken or [])
    for _ in range(5000):  # draw all n at once until they keep their distance
        xy = rng.uniform(box[:2], box[2:], (n, 2))
        points = [(float(x), float(y)) for x, y in xy]
        if all(math.dist(p, q) >= gap for i, p in enumerate(points)
               for q in points[i + 1:] + taken):
            return points
    raise RuntimeError(f"could not place {n} parts {gap} apart in {box}")


class FastenerTray(SceneCategory):
    name = "fastener_tray"
    description = (
        "A two-compartment tray: 2 or 3 bolts lie loose on the left and exactly as many steel "
        "nuts loose on the right, at random positions and angles. Logical: one nut too many, "
        "one too few, a bolt among the nuts, a brass nut. Structural: a 1-pixel hairline "
        "scratch on the floor, a small chip in a nut, a small speck on a bolt."
    )
    LEFT, RIGHT = (0.17, 0.2, 0.38, 0.8), (0.6, 0.16, 0.86, 0.84)  # part centres stay inside
    FLOOR = rect((0.5, 0.5), (0.88, 0.8), (0, 0, 0))

    def __init__(self) -> None:
        self.logical = {
            "extra_nut": self._extra_nut,
            "missing_nut": self._missing_nut,
            "bolt_among_nuts": self._bolt_among_nuts,
            "brass_nut": self._brass_nut,
        }
        self.structural = {
            "hairline_scratch": self._scratch,
            "chipped_nut": self._chip,
            "speck_on_bolt": self._speck,
        }

    def normal(self, rng: np.random.Generator) -> Scene:
        k = int(rng.integers(2, 4))
        floor = vary((205, 210, 212), rng, 5)
        tray = Part("tray", (rect((0.5, 0.5), (0.92, 0.84), (110, 115, 120)),
                             rect((0.5, 0.5), (0.88, 0.8), floor),
                             line(((0.5, 0.1), (0.5, 0.9)), 0.014, (150, 155, 160))))
        bolts = [self._bolt(f"bolt{i}", p, rng)
                 for i, p in enumerate(_place(rng, self.LEFT, k, 0.2))]
        nuts = [self._nut(f"nut{i}", p, rng, STEEL)
                for i, p in enumerate(_place(rng, self.RIGHT, k, 0.13))]
        return Scene(vary((70, 80, 90), rng, 8), (tray, *bolts, *nuts), **random_look(rng, 0.01, 1.5))

    @staticmethod
    def _bolt(name: str, center: tuple[float, float], rng: np.random.Generator) -> Part:
        angle = rng.uniform(0, 180)
        shapes = (
            rect(at(center, (0.03, 0.0), angle), (0.16, 0.034), (90, 92, 95), angle),
            rect(at(center, (0.03, 0.0), angle), (0.152, 0.026), vary(STEEL, rng, 6), angle),
            rect(at(center, (-0.06, 0.0), angle), (0.036, 0.07), (80, 82, 85), angle),
        )
        return Part(name, shapes, geometry=(center[0], center[1], angle))

    @staticmethod
    def _nut(name: str, center: tuple[float, float], rng: np.random.Generator, color: Color) -> Part:
        angle = rng.uniform(0, 60)
        hexagon = tuple(at(center, (0.045 * math.cos(math.radians(a)), 0.045 * math.sin(math.radians(a))), angle)
                        for a in range(0, 360, 60))
        shapes = (Shape(hexagon, vary(color, rng, 6)),
                  line((*hexagon, hexagon[0]), 0.006, shade(color, 0.6)),
                  circle(center, 0.019, (60, 62, 66)))
        return Part(name, shapes, geometry=(center[0], center[1], angle))

    @staticmethod
    def _named(scene: Scene, prefix: str) -> list[Part]:
        return [p for p in scene.parts if p.name.startswith(prefix)]

    def _extra_nut(self, scene: Scene, rng: np.random.Generator) -> tuple[Scene, Regions]:
        taken = [p.geometry[:2] for p in self._named(scene, "nut")]
        spot = _place(rng, self.RIGHT, 1, 0.13, taken)[0]
        nut = self._nut("nut_extra", spot, rng, STEEL)
        return scene.with_parts(nut), [(nut.shapes, ())]

    def _missing_nut(self, scene: Scene, rng: np.random.Generator) -> tuple[Scene, Regions]:
        nut = self._named(scene, "nut")[-1]
        return scene.without(nut.name), [(nut.shapes, ())]

    def _bolt_among_nuts(self, scene: Scene, rng: np.random.Generator) -> tuple[Scene, Regions]:
        taken = [p.geometry[:2] for p in self._named(scene, "nut")]
        spot = _place(rng, (0.65, 0.2, 0.8, 0.8), 1, 0.17, taken)[0]
        bolt = self._bolt("bolt_extra", spot, rng)
        return scene.with_parts(bolt), [(bolt.shapes, ())]

    def _brass_nut(self, scene: Scene, rng: np.random.Generator) -> tuple[Scene, Regions]:
        old = self._named(scene, "nut")[int(rng.integers(len(self._named(scene, "nut"))))]
        new = self._nut(old.name, old.geometry[:2], rng, BRASS)
        return scene.replaced(old.name, new), [(new.shapes, ())]

    def _scratch(self, scene: Scene, rng: np.random.Generator) -> tuple[Scene, Regions]:
        box = self.LEFT if rng.uniform() < 0.5 else self.RIGHT
        center = (float(rng.uniform(box[0], box[2])), float(rng.uniform(box[1], box[3])))
        part, regions = _hairline((self.FLOOR,), center, rng.uniform(0.12, 0.2),
                                  vary((80, 82, 86), rng, 8), rng)
        return scene.with_overlay(part), regions

    def _chip(self, scene: Scene, rng: np.random.Generator) -> tuple[Scene, Regions]:
        nut = self._named(scene, "nut")[int(rng.integers(len(self._named(scene, "nut"))))]
        corner = nut.shapes[0].points[int(rng.integers(6))]
        chip = blob(corner, rng.uniform(0.014, 0.02), scene.part("tray").shapes[1].color, rng)
        damaged = scene.with_overlay(Part("chip", (chip,), clip=nut.shapes))
        return damaged, [((chip,), nut.shapes)]

    def _speck(self, scene: Scene, rng: np.random.Generator) -> tuple[Scene, Regions]:
        bolt = self._named(scene, "bolt")[0]
        x, y, angle = bolt.geometry
        center = at((x, y), (rng.uniform(0.0, 0.08), 0.0), angle)
        part, regions = _speck(bolt.shapes[:2], center, rng)
        return scene.with_overlay(part), regions


PILL_COLOURS = ((235, 235, 235), (60, 150, 235), (200, 120, 60), (80, 190, 110))  # BGR


class PillBlister(SceneCategory):
    name = "pill_blister"
    description = (
        "A blister of 2 × 4 cells, one loose pill per cell at a random spot and angle; the two "
        "pills of a column share a colour (colours vary by column). Logical: an empty cell, "
        "two pills in one cell, a column whose pills differ. Structural: a 1-pixel crack "
        "across a pill, a small chip off a pill's edge, a small speck on the foil."
    )
    CELL = (0.19, 0.3)  # cell size; cells centred at x 0.215 + 0.19 j, y 0.34 + 0.32 i
    FOIL = rect((0.5, 0.5), (0.86, 0.74), (0, 0, 0))

    def __init__(self) -> None:
        self.logical = {
            "empty_cell": self._empty,
            "two_pills_in_a_cell": self._double,
            "mismatched_pair": self._mismatch,
        }
        self.structural = {
            "cracked_pill": self._crack,
            "chipped_pill": self._chip,
            "speck_on_foil": self._speck,
        }

    @classmethod
    def _cell(cls, i: int, j: int) -> tuple[float, float]:
        return (0.215 + 0.19 * j, 0.34 + 0.32 * i)

    def normal(self, rng: np.random.Generator) -> Scene:
        foil = Part("foil", (rect((0.5, 0.5), (0.88, 0.76), (150, 152, 155)),
                             rect((0.5, 0.5), (0.86, 0.74), vary((196, 198, 200), rng, 5))))
        cells, pills = [], []
        for j in range(4):
            colour = PILL_COLOURS[int(rng.integers(len(PILL_COLOURS)))]
            for i in range(2):
                cx, cy = self._cell(i, j)
                cells.append(rect((cx, cy), (0.16, 0.27), (178, 180, 183)))
                pills.append(self._pill(f"pill{i}{j}", self._spot((cx, cy), rng), colour, rng))
        return Scene(vary((60, 62, 66), rng, 8), (foil, Part("cells", tuple(cells)), *pills),
                     **random_look(rng, 0.01, 1.5))

    @staticmethod
    def _spot(cell: tuple[float, float], rng: np.random.Generator) -> tuple[float, float]:
        return (cell[0] + float(rng.uniform(-0.025, 0.025)), cell[1] + float(rng.uniform(-0.06, 0.06)))

    @staticmethod
    def _pill(name: str, center: tuple[float, float], colour: Color, rng: np.random.Generator) -> Part:
        angle = rng.uniform(60, 120)
        shapes = (ellipse(center, (0.07, 0.04), shade(colour, 0.7), angle),
                  ellipse(center, (0.064, 0.034), vary(colour, rng, 6), angle))
        return Part(name, shapes, geometry=(center[0], center[1], angle, *colour))

    def _pick(self, scene: Scene, rng: np.random.Generator) -> Part:
        return scene.part(f"pill{int(rng.integers(2))}{int(rng.integers(4))}")

    def _empty(self, scene: Scene, rng: np.random.Generator) -> tuple[Scene, Regions]:
        pill = self._pick(scene, rng)
        return scene.without(pill.name), [(pill.shapes, ())]

    def _double(self, scene: Scene, rng: np.random.Generator) -> tuple[Scene, Regions]:
        pill = self._pick(scene, rng)
        x, y = pill.geometry[:2]
        cell_y = self._cell(int(pill.name[4]), 0)[1]
        other = (x, cell_y - 0.07 if y > cell_y else cell_y + 0.07)
        extra = self._pill(pill.name + "_extra", other, tuple(int(c) for c in pill.geometry[3:]), rng)
        return scene.with_parts(extra), [(extra.shapes, ())]

    def _mismatch(self, scene: Scene, rng: np.random.Generator) -> tuple[Scene, Regions]:
        pill = self._pick(scene, rng)
        current = tuple(int(c) for c in pill.geometry[3:])
        others = [c for c in PILL_COLOURS if c != current]
        new = self._pill(pill.name, pill.geometry[:2], others[int(rng.integers(len(others)))], rng)
        return scene.replaced(pill.name, new), [(new.shapes, ())]

    def _crack(self, scene: Scene, rng: np.random.Generator) -> tuple[Scene, Regions]:
        pill = self._pick(scene, rng)
        colour = shade(tuple(int(c) for c in pill.geometry[3:]), 0.45)
        part, regions = _hairline(pill.shapes[1:], pill.geometry[:2], 0.12, colour, rng)
        return scene.with_overlay(part), regions

    def _chip(self, scene: Scene, rng: np.random.Generator) -> tuple[Scene, Regions]:
        pill = self._pick(scene, rng)
        edge = pill.shapes[0].points[int(rng.integers(len(pill.shapes[0].points)))]
        chip = blob(edge, rng.uniform(0.014, 0.02), (178, 180, 183), rng)
        damaged = scene.with_overlay(Part("chip", (chip,), clip=pill.shapes))
        return damaged, [((chip,), pill.shapes)]

    def _speck(self, scene: Scene, rng: np.random.Generator) -> tuple[Scene, Regions]:
        i, j = int(rng.integers(2)), int(rng.integers(3))
        x0, y0 = self._cell(i, j)
        center = (x0 + 0.095 + float(rng.uniform(-0.008, 0.008)), y0 + float(rng.uniform(-0.1, 0.1)))
        part, regions = _speck((self.FOIL,), center, rng)
        return scene.with_overlay(part), regions
