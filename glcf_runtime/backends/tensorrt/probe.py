"""What this box offers TensorRT: the ``tensorrt`` package (and whether it loads), its version, and
a CUDA GPU through either binding (cuda-python or pycuda, see ``cuda.py``).

``import tensorrt`` fails in different ways that need different fixes: the package is absent
(``ModuleNotFoundError`` for ``tensorrt``), half installed (the ``tensorrt`` front package of
``tensorrt-cu12`` without its ``tensorrt_bindings`` wheel), or installed while its shared libraries
(``libnvinfer.so.10``, …) do not load, which the extension module reports as a plain
``ImportError`` whose ``name`` is also ``tensorrt``. The version is parsed once, here, and decides
what differs between TensorRT 10.x and 11.x (strong typing: a creation flag on 10.x, always on
and the flag deprecated on 11.x).
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from types import ModuleType

from glcf_runtime.backends.tensorrt.cuda import INSTALL, CudaUnavailable, load_cuda_api
from glcf_runtime.errors import GlcfError
from glcf_runtime.requires import BrokenPackage, MissingPackage, require

MIN_VERSION = (10, 3)  # name-based I/O and strong typing; JetPack 6's TensorRT
MEANWHILE = ("Meanwhile the exported ONNX files stay valid and run with ONNX Runtime: "
             "--backend onnxruntime")
BINDINGS = ("tensorrt-cu12-bindings", "tensorrt-cu13-bindings")  # pip's wheels of tensorrt_bindings


class TensorRTUnavailable(GlcfError):
    """TensorRT (or a CUDA GPU for it) is missing where an engine was asked for.

    Attributes:
        reason: a few words for one-line summaries (``--backend auto``, test skips).
    """

    def __init__(self, message: str, reason: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason or message


@dataclass(frozen=True)
class TrtVersion:
    text: str  # tensorrt.__version__, e.g. "10.3.0" or "11.4.0.106"
    major: int
    minor: int

    @property
    def strongly_typed_always(self) -> bool:
        """TensorRT 11 builds every network strongly typed; its STRONGLY_TYPED flag is ignored."""
        return self.major >= 11


@dataclass(frozen=True)
class GpuInfo:
    name: str
    compute_capability: str  # "8.7" on Jetson Orin, "9.0" on H100


def parse_trt_version(text: str) -> TrtVersion:
    """``"11.4.0.106"`` → TrtVersion(major 11, minor 4).

    Raises:
        TensorRTUnavailable: not a version string.
    """
    match = re.match(r"(\d+)\.(\d+)", str(text))
    if match is None:
        raise TensorRTUnavailable(f"tensorrt reports the version {text!r}, which is not one; "
                                  "reinstall TensorRT", reason=f"tensorrt version {text!r}")
    return TrtVersion(str(text), int(match.group(1)), int(match.group(2)))


def _missing_library(message: str) -> str | None:
    """``libnvinfer.so.10`` out of the loader's "cannot open shared object file" message."""
    match = re.search(r"(lib[\w.+-]+\.so[\w.]*)", message)
    return match.group(1) if match else None


def import_tensorrt() -> ModuleType:
    """``import tensorrt``, checked to be 10.3 or newer.

    Raises:
        TensorRTUnavailable: not installed, installed but not loading (naming the library and
            how to provide it), or too old.
    """
    try:
        tensorrt = require("tensorrt", "trt")
    except MissingPackage as exc:
        raise TensorRTUnavailable(
            f"tensorrt is not installed for this Python ({sys.executable}). The TensorRT "
            "backend needs the tensorrt Python package, and engines are built on the target "
            "device (an engine runs only on the GPU model and TensorRT version that built "
            f"it): {INSTALL}. {MEANWHILE}",
            reason="tensorrt is not installed",
        ) from exc
    except BrokenPackage as exc:
        raise _import_failure(exc.error) from exc
    version = parse_trt_version(getattr(tensorrt, "__version__", "?"))
    if (version.major, version.minor) < MIN_VERSION:
        raise TensorRTUnavailable(
            f"TensorRT {version.text} is installed; GLCF needs TensorRT 10.3 or newer (its "
            "name-based I/O and strongly typed networks): JetPack 6 or later on a Jetson, "
            f"glcf[trt] or glcf[trt-cu13] elsewhere. {MEANWHILE}",
            reason=f"TensorRT {version.text} is too old (10.3 or newer needed)",
        )
    return tensorrt


def _import_failure(exc: ImportError) -> TensorRTUnavailable:
    """The package is there but half installed (its bindings wheel is missing), or its shared
    libraries do not load."""
    if isinstance(exc, ModuleNotFoundError):
        return TensorRTUnavailable(
            f"tensorrt is installed for this Python ({sys.executable}) but incomplete: "
            f"{exc.name} is missing; reinstall it with its parts (pip install --force-reinstall "
            f"'glcf[trt]', or 'glcf[trt-cu13]' for TensorRT 11), or on a Jetson use JetPack's "
            f"TensorRT (apt install python3-libnvinfer). {MEANWHILE}",
            reason=f"tensorrt is incomplete ({exc.name} is missing)",
        )
    return _load_failure(exc)


def _libs_wheel() -> str:
    """``pip install tensorrt-cu12-libs==10.3.0``: the libraries that go with the bindings here."""
    from importlib.metadata import PackageNotFoundError, version

    for dist in BINDINGS:
        try:
            return f"pip install {dist.replace('-bindings', '-libs')}=={version(dist)}"
        except PackageNotFoundError:
            continue
    return ("pip install the libraries' wheel of the same version as the bindings "
            "(tensorrt-cu12-libs or tensorrt-cu13-libs)")


def _load_failure(exc: ImportError) -> TensorRTUnavailable:
    """The package is there; its shared libraries are not (or do not match it)."""
    library = _missing_library(str(exc))
    return TensorRTUnavailable(
        f"tensorrt is installed for this Python ({sys.executable}) but does not load: {exc}. "
        f"Provide the library: {_libs_wheel()}, or, where TensorRT comes from a tar file or "
        "the system (JetPack), add its lib folder to LD_LIBRARY_PATH (e.g. export "
        f"LD_LIBRARY_PATH=/usr/lib/aarch64-linux-gnu:$LD_LIBRARY_PATH). {MEANWHILE}",
        reason=f"tensorrt does not load ({library} is missing)" if library
        else f"tensorrt does not load ({exc})",
    )


def require_tensorrt() -> ModuleType:
    """Import tensorrt (10.3 or newer) and check that a CUDA GPU is visible.

    Raises:
        TensorRTUnavailable: see ``import_tensorrt`` and ``gpu_info``.
    """
    trt = import_tensorrt()
    gpu_info()
    return trt


def tensorrt_here() -> tuple[bool, str]:
    """Whether TensorRT (10.3 or newer, loading) and an NVIDIA GPU (seen through cuda-python or
    pycuda) are usable here, and why not in a few words."""
    try:
        require_tensorrt()
    except TensorRTUnavailable as exc:
        return False, exc.reason
    return True, "tensorrt and an NVIDIA GPU are present"


def gpu_info() -> GpuInfo:
    """Name and compute capability of the current CUDA device, through cuda-python or pycuda.

    Raises:
        TensorRTUnavailable: no binding is installed, or none sees a GPU.
    """
    try:
        name, capability = load_cuda_api().device()
    except CudaUnavailable as exc:
        raise TensorRTUnavailable(
            f"{exc}. Build the engine on the target device; the exported ONNX files stay valid "
            "and run with ONNX Runtime.",
            reason=str(exc).split(" (")[0],
        ) from exc
    return GpuInfo(name, capability)
