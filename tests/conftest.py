"""Shared fixtures: a small synthetic data set written once per session (real PNGs on disk)."""

from __future__ import annotations

from pathlib import Path

import pytest


def _torch_gpu() -> str | None:
    """Why torch sees no CUDA device; None when it sees one."""
    try:
        import torch
    except ImportError:
        return "torch is not installed"
    return None if torch.cuda.is_available() else "torch sees no CUDA device"


def _driver_gpu() -> str | None:
    """Why the CUDA driver shows no GPU, asked through cuda-python, pycuda and nvidia-smi (on a
    Jetson the first two); None when one of them shows one. No torch, no CUDA context."""
    import shutil
    import subprocess

    reasons = []
    try:
        try:
            from cuda.bindings import runtime as cudart
        except ImportError:
            from cuda import cudart
        error, count = cudart.cudaGetDeviceCount()
        if error == cudart.cudaError_t.cudaSuccess and count:
            return None
        reasons.append(f"cuda-python: {getattr(error, 'name', error)}, {count or 0} devices")
    except ImportError:
        reasons.append("cuda-python is not installed")
    except Exception as exc:  # the binding raises its own types where the driver library is absent
        reasons.append(f"cuda-python: {type(exc).__name__}")
    try:
        import pycuda.driver as driver

        driver.init()
        if driver.Device.count():
            return None
        reasons.append("pycuda: 0 devices")
    except ImportError:
        reasons.append("pycuda is not installed")
    except Exception as exc:  # pycuda.driver.Error's subclasses
        reasons.append(f"pycuda: {exc}")
    smi = shutil.which("nvidia-smi")
    if smi is None:
        reasons.append("no nvidia-smi")
    else:
        try:
            done = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired) as exc:
            reasons.append(f"nvidia-smi: {exc}")
        else:
            if done.returncode == 0 and any(line.startswith("GPU ") for line in done.stdout.splitlines()):
                return None
            reasons.append(f"nvidia-smi -L: exit {done.returncode}, no GPU listed")
    return "; ".join(reasons)


def _tensorrt() -> str | None:
    """Why ``import tensorrt`` fails here (not installed, or does not load); None when it works."""
    from glcf_runtime.backends.tensorrt.probe import TensorRTUnavailable, import_tensorrt

    try:
        import_tensorrt()
    except TensorRTUnavailable as exc:
        return exc.reason
    return None


def marker_skips(markers: set[str]) -> dict[str, str]:
    """The skip reason of each of ``markers`` ("gpu", "tensorrt") this machine cannot serve.

    ``gpu``: a GPU seen by torch or by the CUDA driver. ``tensorrt``: tensorrt imports and the
    driver shows a GPU, whether torch is installed or not (a deployment box has no torch).
    """
    skips: dict[str, str] = {}
    driver = _driver_gpu() if markers else None
    if "gpu" in markers and driver is not None:
        torch = _torch_gpu()
        if torch is not None:
            skips["gpu"] = f"needs an NVIDIA GPU; no CUDA GPU is visible ({torch}; {driver})"
    if "tensorrt" in markers:
        missing = _tensorrt()
        if missing is not None:
            skips["tensorrt"] = f"needs TensorRT: {missing}"
        elif driver is not None:
            skips["tensorrt"] = f"needs TensorRT and a GPU; no CUDA GPU is visible ({driver})"
    return skips


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """``gpu`` and ``tensorrt`` tests skip, with the reason, where the machine lacks what they
    need (see ``marker_skips``); the machine is probed only when such a test was collected."""
    # markers, not keywords: a test's folder name is a keyword too (tests/.../tensorrt/)
    wanted = {m for item in items for m in ("gpu", "tensorrt") if item.get_closest_marker(m)}
    skips = marker_skips(wanted)
    for item in items:
        for marker, reason in skips.items():
            if item.get_closest_marker(marker):
                item.add_marker(pytest.mark.skip(reason=reason))
                break


@pytest.fixture(scope="session")
def synth_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One synthetic category in the MVTec LOCO layout: 6 train, 4 validation, 2 per test kind."""
    from glcf_train.data.synth import generate

    root = tmp_path_factory.mktemp("synth")
    generate(root, ["breakfast_tray"], n_train=6, n_val=4, n_test=2, seed=0, image_size=256)
    return root


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory: pytest.TempPathFactory, synth_root: Path) -> Path:
    """A tiny run trained briefly (enough to spread the scores), not calibrated. Do not modify."""
    from glcf_train.config import preset, with_train
    from glcf_train.train import TrainOptions, train

    out = tmp_path_factory.mktemp("trained") / "run"
    cfg = with_train(preset("tiny"), steps=60, batch_size=4)
    train(TrainOptions(out=out, data=synth_root, category="breakfast_tray", config=cfg,
                       random_init=True, progress=False))
    return out


@pytest.fixture(scope="session")
def calibrated_run(tmp_path_factory: pytest.TempPathFactory, trained_run: Path) -> Path:
    """A copy of ``trained_run`` with calibration.json. Do not modify."""
    import shutil

    from calibration.settings import CalibrationSettings
    from glcf_train.calibrate import calibrate_run

    out = tmp_path_factory.mktemp("calibrated") / "run"
    shutil.copytree(trained_run, out)
    calibrate_run(out, CalibrationSettings(device="cpu"), progress=False)
    return out
