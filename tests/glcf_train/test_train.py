"""The training loop on real synthetic PNGs: loss, resume, checkpoints, errors, DDP, CLI."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from glcf_cli import app
from glcf_runtime.errors import DataError, GlcfError, ImageReadError
from glcf_train.checkpoint import RunError, load_checkpoint
from glcf_train.config import preset, with_train
from glcf_train.distributed import DistInfo, device_for_rank
from glcf_train.train import TrainingDiverged, TrainOptions, train

CATEGORY = "breakfast_tray"


def _opts(out: Path, data: Path, **kw) -> TrainOptions:
    cfg = with_train(preset("tiny"), batch_size=2, steps=kw.pop("steps", 6))
    return TrainOptions(out=out, data=data, category=CATEGORY, config=cfg, random_init=True,
                        progress=False, **kw)


def _log(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "train_log.jsonl").read_text().splitlines()]


def test_train_writes_run_and_loss_falls(tmp_path: Path, synth_root: Path) -> None:
    result = train(_opts(tmp_path / "run", synth_root, steps=12))
    assert result.completed and result.step == 12
    assert result.last_losses["total"] < result.first_losses["total"]
    ckpt = load_checkpoint(tmp_path / "run")
    assert ckpt["step"] == 12 and ckpt["backbone"] == "random-init"
    assert ckpt["data"]["count"] == 6 and ckpt["config"]["preset"] == "tiny"
    assert (tmp_path / "run" / "config.yaml").is_file()
    assert [r["step"] for r in _log(tmp_path / "run")] == list(range(1, 13))


def test_resume_gives_the_same_next_losses(tmp_path: Path, synth_root: Path) -> None:
    train(_opts(tmp_path / "straight", synth_root, steps=6))
    stopped = train(_opts(tmp_path / "resumed", synth_root, steps=6, on_step=lambda s, _: s == 4))
    assert not stopped.completed and stopped.step == 4
    assert load_checkpoint(tmp_path / "resumed")["step"] == 4
    # resume mid-epoch (3 steps per epoch): the config comes from the checkpoint
    train(TrainOptions(out=tmp_path / "resumed", resume=True, progress=False))
    straight = {r["step"]: r["total"] for r in _log(tmp_path / "straight")}
    resumed = {r["step"]: r["total"] for r in _log(tmp_path / "resumed")}
    assert sorted(resumed) == [1, 2, 3, 4, 5, 6]
    for step in (5, 6):
        assert math.isclose(resumed[step], straight[step], rel_tol=1e-6), step


def test_existing_run_is_never_overwritten(tmp_path: Path, synth_root: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "notes.txt").write_text("mine")
    with pytest.raises(RunError, match=r"--resume.*--overwrite"):
        train(_opts(run, synth_root, steps=1))
    train(_opts(run, synth_root, steps=1, overwrite=True))
    assert (run / "notes.txt").read_text() == "mine"  # only the run's own files are replaced
    with pytest.raises(RunError, match="contradict"):
        train(_opts(run, synth_root, steps=1, overwrite=True, resume=True))


def test_nan_loss_stops_with_last_good_checkpoint(tmp_path: Path, synth_root: Path) -> None:
    def poison(step: int, _: dict) -> bool:
        if step == 4:  # epoch 1 (steps 1-3) has been checkpointed; now break the weights
            model_params = poison.model.parameters()
            with torch.no_grad():
                next(p for p in model_params if p.requires_grad).fill_(float("nan"))
        return False

    import glcf_train.train as train_mod

    original = train_mod._loop

    def capture(state, *args):
        poison.model = state.model
        return original(state, *args)

    train_mod._loop = capture
    try:
        with pytest.raises(TrainingDiverged, match=r"step 5.*intact"):
            train(_opts(tmp_path / "run", synth_root, steps=9, on_step=poison))
    finally:
        train_mod._loop = original
    ckpt = load_checkpoint(tmp_path / "run")
    assert ckpt["step"] == 3
    assert all(torch.isfinite(v).all() for v in ckpt["model"].values() if v.is_floating_point())


def test_bad_file_in_training_folder_names_it(tmp_path: Path) -> None:
    import cv2
    import numpy as np

    folder = tmp_path / "good"
    folder.mkdir()
    for i in range(20):
        cv2.imwrite(str(folder / f"{i}.png"), np.full((64, 64, 3), 10 * i, np.uint8))
    (folder / "1_corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    cfg = with_train(preset("tiny"), steps=1)
    opts = TrainOptions(out=tmp_path / "run", data=folder, config=cfg, random_init=True, progress=False)
    with pytest.raises(ImageReadError, match=r"1_corrupt\.png"):
        train(opts)
    assert not (tmp_path / "run" / "checkpoint.pt").exists()


def test_ddp_two_cpu_processes(tmp_path: Path, synth_root: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
           "--master-port", "29517", "-m", "glcf_cli", "train", "--data", str(synth_root),
           "--category", CATEGORY, "--preset", "tiny", "--random-init", "--device", "cpu",
           "--steps", "3", "--batch-size", "2", "--out", str(tmp_path / "ddp")]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ckpt = load_checkpoint(tmp_path / "ddp")
    assert ckpt["step"] == 3
    log = _log(tmp_path / "ddp")
    assert [r["step"] for r in log] == [1, 2, 3]  # one log, written by rank 0


def test_cli_dry_run_prints_parts_and_shapes() -> None:
    result = CliRunner().invoke(app, ["train", "--preset", "paper", "--dry-run"])
    assert result.exit_code == 0, result.output
    for text in ("Φ_L", "semantic bottleneck", "Ψ_G decoder", "[1, 56, 56, 96]", "[1, 7, 7, 768]",
                 "13,333,962"):
        assert text in result.output, text


def test_cli_refuses_paper_without_weights_with_both_ways(tmp_path: Path, synth_root: Path) -> None:
    result = CliRunner().invoke(app, ["train", "--preset", "tiny", "--data", str(synth_root),
                                      "--category", CATEGORY, "--out", str(tmp_path / "r")])
    assert result.exit_code != 0
    assert "--random-init" in str(result.exception)


def _run_files(run: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(run.iterdir()) if p.is_file()}


def test_overwrite_checks_inputs_before_touching_the_old_run(tmp_path: Path, synth_root: Path) -> None:
    run = tmp_path / "run"
    train(_opts(run, synth_root, steps=1))
    (run / "calibration.json").write_text("{}")
    before = _run_files(run)
    for bad in ({"data": tmp_path / "typo"}, {"steps": -1}):
        opts = _opts(run, bad.get("data", synth_root), steps=bad.get("steps", 2), overwrite=True)
        with pytest.raises(GlcfError):
            train(opts)
        assert _run_files(run) == before, bad
    assert sorted(p.name for p in run.iterdir()) == sorted(before)


def test_overwrite_restores_the_old_run_if_the_new_one_fails_early(tmp_path: Path,
                                                                    synth_root: Path) -> None:
    run = tmp_path / "run"
    train(_opts(run, synth_root, steps=1))
    before = _run_files(run)

    def power_cut(step: int, _: dict) -> bool:
        raise OSError("power cut")  # before the first checkpoint (end of epoch 1, step 3)

    with pytest.raises(OSError, match="power cut"):
        train(_opts(run, synth_root, steps=6, overwrite=True, on_step=power_cut))
    assert _run_files(run) == before and not (run / ".previous-run").exists()
    train(_opts(run, synth_root, steps=2, overwrite=True))
    assert load_checkpoint(run)["step"] == 2 and not (run / ".previous-run").exists()


def test_negative_steps_are_refused_and_nothing_is_written(tmp_path: Path, synth_root: Path) -> None:
    result = CliRunner().invoke(app, ["train", "--data", str(synth_root), "--category", CATEGORY,
                                      "--preset", "tiny", "--random-init", "--device", "cpu",
                                      "--steps", "-1", "--out", str(tmp_path / "r")])
    assert result.exit_code != 0 and "--steps -1" in str(result.exception)
    assert not (tmp_path / "r").exists()


def test_plain_folder_too_small_to_calibrate_is_refused_at_train_time(tmp_path: Path) -> None:
    import cv2
    import numpy as np

    folder = tmp_path / "good"
    folder.mkdir()
    for i in range(12):
        cv2.imwrite(str(folder / f"{i:02d}.png"), np.full((64, 64, 3), 10 * i, np.uint8))
    cfg = with_train(preset("tiny"), steps=1)
    opts = TrainOptions(out=tmp_path / "run", data=folder, config=cfg, random_init=True,
                        progress=False)
    with pytest.raises(DataError, match="at least 20 images"):
        train(opts)
    assert not (tmp_path / "run").exists()


def test_grad_scaler_state_is_saved_and_restored(tmp_path: Path, synth_root: Path) -> None:
    import glcf_train.train as train_mod

    run = tmp_path / "run"
    train(_opts(run, synth_root, steps=1))
    assert load_checkpoint(run)["scaler"] is None  # no FP16 autocast on CPU
    state = train_mod._restore(TrainOptions(out=run, resume=True, progress=False,
                                            train_overrides={"steps": 3}),
                               torch.device("cpu"), DistInfo())
    state.scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10, growth_interval=7)
    train_mod._save(state, TrainOptions(out=run), DistInfo(), None)
    saved = load_checkpoint(run)["scaler"]
    assert saved["scale"] == 2.0**10 and saved["growth_interval"] == 7
    restored = train_mod._restore(TrainOptions(out=run, resume=True, progress=False,
                                               train_overrides={"steps": 3}),
                                  torch.device("cpu"), DistInfo())
    assert restored.scaler_state == saved


def test_each_torchrun_rank_takes_its_own_gpu() -> None:
    second = DistInfo(rank=1, world_size=2, local_rank=1)
    assert device_for_rank("cuda:0", second) == "cuda:1"
    assert device_for_rank("cuda", second) == "cuda:1"
    assert device_for_rank("cpu", second) == "cpu"
    assert device_for_rank("cuda:0", DistInfo()) == "cuda:0"  # a single process keeps its choice


def test_unsafe_checkpoint_is_refused_without_torch_advice(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    torch.save({"format": "glcf-checkpoint/1", "payload": Path("x")}, run / "checkpoint.pt")
    with pytest.raises(RunError) as err:
        load_checkpoint(run)
    assert "weights_only" not in str(err.value) and "could run code" in str(err.value)
    (run / "checkpoint.pt").write_bytes(b"\x80\x02garbage")
    with pytest.raises(RunError, match="damaged or not a PyTorch file"):
        load_checkpoint(run)


@pytest.mark.gpu
def test_fp16_amp_resume_is_exact_on_gpu(tmp_path: Path, synth_root: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """FP16 autocast (BF16 turned off, as on a GPU without it): the GradScaler's scale is saved
    and restored, so the resumed steps match an uninterrupted run."""
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    train(_opts(tmp_path / "straight", synth_root, steps=6, device="cuda"))
    train(_opts(tmp_path / "resumed", synth_root, steps=6, device="cuda",
                on_step=lambda s, _: s == 4))
    assert load_checkpoint(tmp_path / "resumed")["scaler"]["scale"] > 0
    train(TrainOptions(out=tmp_path / "resumed", resume=True, progress=False, device="cuda"))
    straight = {r["step"]: r["total"] for r in _log(tmp_path / "straight")}
    resumed = {r["step"]: r["total"] for r in _log(tmp_path / "resumed")}
    for step in (5, 6):
        assert math.isclose(resumed[step], straight[step], rel_tol=1e-5), step


def test_unsafe_backbone_weights_are_refused_without_torch_advice(tmp_path: Path) -> None:
    from glcf_train.model.backbone import WeightsError, read_state_dict

    torch.save({"patch_embed.proj.weight": torch.zeros(1), "hook": Path("x")}, tmp_path / "w.pth")
    with pytest.raises(WeightsError) as err:
        read_state_dict(tmp_path / "w.pth")
    assert "weights_only" not in str(err.value) and "could run code" in str(err.value)
