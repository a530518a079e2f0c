"""The synthetic scene generator writes the MVTec LOCO layout, deterministically, with true masks."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from glcf_runtime.errors import ConfigError, DataError
from glcf_train.data.scenes import defect_mask, render
from glcf_train.data.synth import CATEGORIES, KIND_FOLDERS, describe, example, generate

REPO_ROOT = Path(__file__).resolve().parents[3]
SIZE = 64
COUNTS = {"n_train": 3, "n_val": 2, "n_test": 3}


def _files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth")
    generate(out, image_size=SIZE, seed=3, **COUNTS)
    return out


def test_layout_is_mvtec_loco(written: Path) -> None:
    assert sorted(p.name for p in written.iterdir()) == sorted(CATEGORIES)
    for name, category in CATEGORIES.items():
        root = written / name
        assert sorted(p.name for p in root.iterdir()) == [
            "defects_config.json",
            "ground_truth",
            "test",
            "train",
            "validation",
        ]
        assert [p.name for p in sorted((root / "train" / "good").iterdir())] == [
            "000.png",
            "001.png",
            "002.png",
        ]
        assert len(list((root / "validation" / "good").iterdir())) == COUNTS["n_val"]
        assert sorted(p.name for p in (root / "test").iterdir()) == sorted(KIND_FOLDERS.values())
        assert sorted(p.name for p in (root / "ground_truth").iterdir()) == [
            "logical_anomalies",
            "structural_anomalies",
        ]
        config = json.loads((root / "defects_config.json").read_text())
        assert [e["defect_name"] for e in config] == [*category.logical, *category.structural]
        for entry in config:
            assert set(entry) == {
                "defect_name",
                "pixel_value",
                "saturation_threshold",
                "relative_saturation",
            }
            assert 0 < entry["saturation_threshold"] <= 1 and entry["relative_saturation"] is True
        assert len({e["pixel_value"] for e in config}) == len(config)


def test_every_anomaly_has_masks_of_its_kind(written: Path) -> None:
    for name, category in CATEGORIES.items():
        root = written / name
        values = {
            e["pixel_value"]: e["defect_name"]
            for e in json.loads((root / "defects_config.json").read_text())
        }
        assert len(list((root / "test" / "good").iterdir())) == COUNTS["n_test"]
        for folder, names in (
            ("logical_anomalies", category.logical),
            ("structural_anomalies", category.structural),
        ):
            images = sorted((root / "test" / folder).iterdir())
            assert len(images) == COUNTS["n_test"]
            assert sorted(p.name for p in (root / "ground_truth" / folder).iterdir()) == [
                p.stem for p in images
            ]
            for image in images:
                masks = sorted((root / "ground_truth" / folder / image.stem).iterdir())
                assert masks, image
                for mask_path in masks:
                    mask = cv2.imread(str(mask_path), cv2.IMREAD_UNCHANGED)
                    assert mask.shape == (SIZE, SIZE) and mask.dtype == np.uint8
                    present = set(np.unique(mask)) - {0}
                    assert len(present) == 1, mask_path
                    assert values[int(present.pop())] in names


@pytest.mark.parametrize("category", sorted(CATEGORIES))
@pytest.mark.parametrize("kind", ["logical", "structural"])
def test_masks_mark_exactly_what_changed(category: str, kind: str) -> None:
    size = 128
    seen = set()
    for index in range(16):
        ex = example(category, "test", kind, index, seed=1)
        changed = (
            np.abs(render(ex.scene, size).astype(int) - render(ex.normal, size)).max(axis=2) > 10
        )
        union = np.zeros((size, size), bool)
        for defect in ex.defects:
            mask = defect_mask(defect, ex.scene.pose, size)
            assert changed[mask].mean() > 0.25, (index, defect.name)
            union |= mask
            seen.add(defect.name)
        near = cv2.dilate(union.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
        assert not changed[~near].any(), (index, [d.name for d in ex.defects])
    assert seen == set(getattr(CATEGORIES[category], kind)), "16 draws should cover every defect"


def test_good_examples_have_no_defects() -> None:
    for name in CATEGORIES:
        ex = example(name, "train", "good", 0)
        assert ex.defects == () and ex.scene == ex.normal


def test_same_seed_same_bytes_other_seed_other_images(tmp_path: Path) -> None:
    small = {"categories": ["cable_pair"], "image_size": SIZE, "n_train": 2, "n_val": 1}
    generate(tmp_path / "a", seed=5, n_test=1, **small)
    generate(tmp_path / "b", seed=5, n_test=1, **small)
    generate(tmp_path / "c", seed=6, n_test=1, **small)
    generate(tmp_path / "d", seed=5, n_test=2, **small)
    a, b, c, d = (_files(tmp_path / x / "cable_pair") for x in "abcd")
    assert a == b
    assert a["train/good/000.png"] != c["train/good/000.png"]
    assert all(d[k] == v for k, v in a.items() if k.startswith(("train", "validation")))


def test_refuses_to_overwrite(tmp_path: Path) -> None:
    small = {
        "categories": ["juice_bottle"],
        "image_size": SIZE,
        "n_train": 1,
        "n_val": 1,
        "n_test": 1,
    }
    (tmp_path / "breakfast_tray").mkdir()  # an empty folder is fine to fill
    generate(tmp_path, **{**small, "categories": ["breakfast_tray"]})
    generate(tmp_path, seed=1, **small)
    before = _files(tmp_path)
    with pytest.raises(DataError, match=r"juice_bottle.*overwrite"):
        generate(tmp_path, seed=2, **small)
    assert _files(tmp_path) == before
    generate(tmp_path, seed=2, overwrite=True, **small)
    assert _files(tmp_path / "juice_bottle") != {
        k[len("juice_bottle/") :]: v for k, v in before.items()
    }
    assert sorted(p.name for p in tmp_path.iterdir()) == ["breakfast_tray", "juice_bottle"]


def test_rejects_unknown_category_and_bad_counts(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="breakfast_tray"):
        generate(tmp_path, categories=["screw_bag"])
    with pytest.raises(ConfigError, match="n_train"):
        generate(tmp_path, n_train=0)
    assert not any(tmp_path.iterdir())


def test_progress_and_describe(tmp_path: Path) -> None:
    calls = []
    roots = generate(
        tmp_path,
        categories=["cable_pair"],
        image_size=SIZE,
        n_train=2,
        n_val=1,
        n_test=1,
        progress=lambda done, total: calls.append((done, total)),
    )
    assert roots == [tmp_path / "cable_pair"]
    assert calls == [(i, 6) for i in range(1, 7)]
    assert set(describe()) == set(CATEGORIES) and all(describe().values())


def test_imports_without_torch() -> None:
    script = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] == 'torch': raise ImportError('blocked')\n"
        "sys.meta_path.insert(0, Block())\n"
        "import glcf_train.data.synth, glcf_train.data.datasets\n"
        "assert 'torch' not in sys.modules\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
