"""``import tensorrt`` fails in three ways, and each gets its own message: the package is missing,
it is installed but its libraries do not load, or it is too old for the name-based API."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from glcf_runtime.backends.tensorrt.probe import (
    TensorRTUnavailable,
    require_tensorrt,
    tensorrt_here,
)
from glcf_runtime.backends.tensorrt.runner import TensorRTRunner
from tests.glcf_runtime.backends.test_backends import _engine

# What tensorrt-cu12 10.3's ``tensorrt/__init__.py`` (``from tensorrt_bindings import *``) raises
# where the bindings wheel is installed but libnvinfer is not: an ImportError (not a
# ModuleNotFoundError) from the extension module, whose ``name`` is "tensorrt" too.
BROKEN_LOAD = (
    "raise ImportError('libnvinfer.so.10: cannot open shared object file: No such file or "
    "directory', name='tensorrt', path=__file__.replace('__init__.py', 'tensorrt.so'))\n"
)


def _package(root: Path, name: str, body: str) -> None:
    (root / name).mkdir(parents=True)
    (root / name / "__init__.py").write_text(body)


def _tensorrt_modules() -> list[str]:
    return [m for m in sys.modules if m.split(".")[0] in ("tensorrt", "tensorrt_bindings")]


@pytest.fixture
def on_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A folder first on sys.path, with any tensorrt imported before or during the test forgotten
    (the tests after it see the machine's own)."""
    for name in _tensorrt_modules():
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    for name in _tensorrt_modules():
        del sys.modules[name]


def test_missing_package_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    with pytest.raises(TensorRTUnavailable) as err:
        require_tensorrt()
    text = str(err.value)
    assert "tensorrt is not installed" in text and "pip install 'glcf[trt]'" in text
    assert "glcf[trt-cu13]" in text and "--system-site-packages" in text
    assert err.value.reason == "tensorrt is not installed"


def test_a_library_that_does_not_load_is_not_called_missing(on_path: Path) -> None:
    _package(on_path, "tensorrt", "from tensorrt_bindings import *\n")
    _package(on_path, "tensorrt_bindings", BROKEN_LOAD)
    with pytest.raises(TensorRTUnavailable) as err:
        require_tensorrt()
    text = str(err.value)
    assert "not installed" not in text, text
    assert "is installed" in text and "libnvinfer.so.10" in text
    assert "tensorrt-cu12-libs" in text and "LD_LIBRARY_PATH" in text
    assert err.value.reason == "tensorrt does not load (libnvinfer.so.10 is missing)"
    assert tensorrt_here() == (False, err.value.reason)


def test_the_runner_says_the_same(on_path: Path, tmp_path: Path) -> None:
    _package(on_path, "tensorrt", BROKEN_LOAD)
    with pytest.raises(TensorRTUnavailable, match=r"libnvinfer\.so\.10.*LD_LIBRARY_PATH"):
        TensorRTRunner(_engine(tmp_path / "models"))


def test_half_installed_package(on_path: Path) -> None:
    """The ``tensorrt`` front package without its bindings wheel."""
    _package(on_path, "tensorrt", "from tensorrt_bindings import *\n")
    with pytest.raises(TensorRTUnavailable) as err:
        require_tensorrt()
    assert "tensorrt_bindings" in str(err.value) and "not installed" not in str(err.value)
    assert "reinstall" in str(err.value)


def test_tensorrt_8_is_refused(on_path: Path) -> None:
    _package(on_path, "tensorrt", "__version__ = '8.5.2.2'\n")
    with pytest.raises(TensorRTUnavailable, match=r"TensorRT 8\.5\.2\.2 .*10\.3 or newer"):
        require_tensorrt()
