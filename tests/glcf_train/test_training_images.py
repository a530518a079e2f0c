"""What `glcf train` refuses as a training image, on real files: an image whose header declares
more pixels than --max-pixels (refused before it is decoded), and a flat image."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from glcf_bench.fixtures.crafted_images import black_png
from glcf_cli import app
from glcf_runtime.errors import ConfigError, DataError, ImageReadError
from glcf_train.config import preset
from glcf_train.distributed import DistInfo
from glcf_train.training_data import load_training_data


def _folder(tmp_path: Path, extra: dict[str, bytes]) -> Path:
    """20 varied good images (noise on a gradient), plus ``extra`` files (name → bytes)."""
    folder = tmp_path / "good"
    folder.mkdir()
    rng = np.random.default_rng(0)
    ramp = np.linspace(40, 200, 64, dtype=np.float32)[None, :, None]
    for i in range(20):
        image = np.clip(ramp + rng.normal(0, 12, (64, 64, 3)), 0, 255).astype(np.uint8)
        assert cv2.imwrite(str(folder / f"{i:02d}.png"), image)
    for name, data in extra.items():
        (folder / name).write_bytes(data)
    return folder


def _load(folder: Path, **kw: int):
    return load_training_data(folder, None, preset("tiny"), DistInfo(), progress=False, **kw)


def test_training_images_that_are_fine_load(tmp_path: Path) -> None:
    data = _load(_folder(tmp_path, {}))
    assert data.count == 18 and data.images.shape[1:] == (224, 224, 3)


def test_shift_augment_adds_one_shifted_copy_of_each_image(tmp_path: Path) -> None:
    from glcf_train.config import with_train
    from glcf_train.training_data import shifted

    folder = _folder(tmp_path, {})
    plain = _load(folder)
    cfg = with_train(preset("tiny"), shift_augment=7)
    data = load_training_data(folder, None, cfg, DistInfo(), progress=False)
    assert data.count == 2 * plain.count and data.paths == plain.paths * 2
    np.testing.assert_array_equal(data.images[: plain.count], plain.images)  # originals first
    np.testing.assert_array_equal(data.images[plain.count :], shifted(plain.images, 7, cfg.train.seed))
    assert cfg.hash() != preset("tiny").hash()
    # a pixel moved by (dx, dy) lands dx to the right and dy down; the border repeats the edge
    image = np.arange(10 * 10 * 3, dtype=np.uint8).reshape(1, 10, 10, 3)
    moves = set()
    for seed in range(40):
        (out,) = shifted(image, 3, seed)
        matches = [(dx, dy) for dx in range(-3, 4) for dy in range(-3, 4)
                   if np.array_equal(out[max(dy, 0) : 10 + min(dy, 0), max(dx, 0) : 10 + min(dx, 0)],
                                     image[0, max(-dy, 0) : 10 - max(dy, 0), max(-dx, 0) : 10 - max(dx, 0)])]
        (dx, dy) = matches[0]
        assert len(matches) == 1
        if dx > 0:
            assert (out[:, :dx] == out[:, dx : dx + 1]).all()  # replicated left edge
        moves.add((dx, dy))
    assert len(moves) > 10  # seeded draws over the whole range, not one fixed move
    np.testing.assert_array_equal(shifted(image, 3, 5), shifted(image, 3, 5))  # deterministic
    for bad in (-1, 112, 2.5):
        with pytest.raises(ConfigError, match=r"train.shift_augment is .*from 0 \(no shifted copies\) to 111"):
            load_training_data(folder, None, with_train(preset("tiny"), shift_augment=bad), DistInfo(),
                               progress=False)


def test_an_oversized_training_image_is_refused_before_decoding(tmp_path: Path) -> None:
    """The 389 KB PNG declaring 20000×20000 that `glcf train` once decoded (3.1 GB) and trained
    on as a good image."""
    folder = _folder(tmp_path, {"07_huge.png": black_png(20000, 20000)})
    with pytest.raises(ImageReadError, match=r"07_huge\.png: it declares 20000×20000 pixels "
                       r"\(400\.0 megapixels\), more than the limit of 50 megapixels"):
        _load(folder)
    with pytest.raises(ImageReadError, match=r"00\.png: it declares 64×64 pixels"):
        _load(folder, max_pixels=4000)
    with pytest.raises(ConfigError, match="--max-pixels 0"):
        _load(folder, max_pixels=0)


@pytest.mark.parametrize("value", [0, 128, 255])
def test_a_flat_training_image_is_refused_by_name(tmp_path: Path, value: int) -> None:
    flat = cv2.imencode(".png", np.full((48, 64, 3), value, np.uint8))[1].tobytes()
    folder = _folder(tmp_path, {"05_blank.png": flat, "12_blank.png": flat})
    with pytest.raises(DataError, match=r"training image .*05_blank\.png \(and 1 more\) is flat"
                       r".*remove it from the training images"):
        _load(folder)


def test_cli_train_refuses_the_oversized_image_and_writes_nothing(tmp_path: Path) -> None:
    folder = _folder(tmp_path, {"07_huge.png": black_png(20000, 20000)})
    args = ["train", "--data", str(folder), "--preset", "tiny", "--random-init", "--device",
            "cpu", "--steps", "1", "--out", str(tmp_path / "run")]
    result = CliRunner().invoke(app, args)
    assert isinstance(result.exception, ImageReadError) and "07_huge.png" in str(result.exception)
    result = CliRunner().invoke(app, [*args, "--max-pixels", "-1"])
    assert isinstance(result.exception, ConfigError) and "--max-pixels -1" in str(result.exception)
    assert not (tmp_path / "run" / "checkpoint.pt").exists()


@pytest.mark.parametrize("name", ["03a.png", "08a.png"])  # 08a.png falls in the validation split
def test_a_dangling_link_or_loop_stops_training_by_name(tmp_path: Path, name: str) -> None:
    folder = _folder(tmp_path, {})
    (folder / name).symlink_to(tmp_path / "gone.png")
    (folder / "15a.png").symlink_to("15a.png")  # a loop
    with pytest.raises(ImageReadError, match=rf"{name}: a symbolic link to nothing \(dangling\) "
                       r"\(1 more entry of .* cannot be read: 15a\.png\)"):
        _load(folder)
