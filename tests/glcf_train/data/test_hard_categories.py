"""The harder scenes: defects a few pixels wide, rules that hold while parts move."""

from __future__ import annotations

import numpy as np
import pytest

from glcf_train.data.scenes import defect_mask
from glcf_train.data.synth import example

SIZE = 256
SMALL = {"hairline_scratch", "chipped_nut", "speck_on_bolt", "cracked_pill", "chipped_pill",
         "speck_on_foil"}


@pytest.mark.parametrize("category", ["fastener_tray", "pill_blister"])
def test_structural_defects_are_a_few_pixels(category: str) -> None:
    areas, widths = [], []
    for index in range(24):
        ex = example(category, "test", "structural", index)
        for defect in ex.defects:
            assert defect.name in SMALL
            mask = defect_mask(defect, ex.scene.pose, SIZE)
            areas.append(mask.sum())
            if "scratch" in defect.name or "crack" in defect.name:
                # a 1-pixel line: at most 2 pixels across in any row or column it crosses
                widths.append(min(mask.sum(axis=0).max(), mask.sum(axis=1).max()))
    assert 0 < max(areas) < 0.004 * SIZE * SIZE, max(areas)  # under 0.4 % of the image
    assert widths and max(widths) <= 3


def test_fastener_counts_match_and_parts_move() -> None:
    centres = []
    for index in range(12):
        scene = example("fastener_tray", "train", "good", index).scene
        bolts = [p for p in scene.parts if p.name.startswith("bolt")]
        nuts = [p for p in scene.parts if p.name.startswith("nut")]
        assert len(bolts) == len(nuts) in (2, 3)
        centres.append(bolts[0].geometry[:2])
    spread = np.ptp(np.array(centres), axis=0)
    assert (spread > 0.1).all(), "loose parts should move around their compartment"


def test_fastener_count_anomalies_break_the_pairing() -> None:
    broken = 0
    for index in range(16):
        ex = example("fastener_tray", "test", "logical", index)
        names = [p.name for p in ex.scene.parts]
        bolts = sum(n.startswith("bolt") for n in names)
        nuts = sum(n.startswith("nut") for n in names)
        kind = ex.defects[0].name
        assert (bolts != nuts) == (kind in {"extra_nut", "missing_nut", "bolt_among_nuts"}), kind
        broken += bolts != nuts
    assert broken > 0


def test_pill_columns_share_a_colour_unless_mismatched() -> None:
    for kind in ("good", "logical"):
        for index in range(12):
            ex = example("pill_blister", "test", kind, index)
            colour = {p.name: p.geometry[3:] for p in ex.scene.parts if p.name.startswith("pill")}
            pairs_equal = all(colour[f"pill0{j}"] == colour[f"pill1{j}"] for j in range(4)
                              if f"pill0{j}" in colour and f"pill1{j}" in colour)
            mismatched = bool(ex.defects) and ex.defects[0].name == "mismatched_pair"
            assert pairs_equal is not mismatched, (kind, index)
