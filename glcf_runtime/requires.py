"""Optional packages: import one where it is needed, or say in one line which extra of glcf
brings it (``this needs X, which is not installed: pip install 'glcf[EXTRA]'``).

Ctrl-C during an import can surface as an ImportError raised by an extension's initialisation
(pybind11 turns the KeyboardInterrupt into one): that is re-raised as KeyboardInterrupt, and an
installed package that fails to import is not reported as missing.
"""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

from glcf_runtime.errors import ConfigError, GlcfError

# The extra that brings each optional package (a runtime-only install lacks the others).
EXTRAS = {
    "glcf_train": "train", "glcf_export": "train,export", "torch": "train", "timm": "train",
    "torchvision": "train", "safetensors": "train", "scipy": "train", "matplotlib": "train",
    "onnxslim": "train,export", "onnx": "runtime", "onnxruntime": "runtime",
    "openvino": "openvino", "tensorrt": "trt", "paho": "plant", "asyncua": "plant",
}


def install_hint(module: str, extra: str | None = None) -> str:
    """``pip install 'glcf[openvino]'``: the command that brings an optional package (``extra``:
    that extra instead of ``EXTRAS`` of its top-level package)."""
    return f"pip install 'glcf[{extra or EXTRAS.get(module.split('.')[0], 'all')}]'"


class MissingPackage(ConfigError):
    """An optional package that is not installed; the message names the extra that brings it.

    Attributes:
        module: the top-level module that is missing.
        extra: the extra of glcf that installs it.
    """

    def __init__(self, module: str, extra: str, who: str = "this", note: str = "") -> None:
        self.module = module
        self.extra = extra
        super().__init__(
            f"{who} needs {module}, which is not installed: {install_hint(module, extra)}{note}"
        )


class BrokenPackage(GlcfError):
    """An optional package that is installed but fails to import.

    Attributes:
        module: the module asked for.
        error: the ImportError its import raised.
    """

    def __init__(self, module: str, error: ImportError) -> None:
        self.module = module
        self.error = error
        super().__init__(
            f"{module} is installed but cannot be imported ({error}); if the import was "
            f"interrupted, run again, else reinstall it: pip install --force-reinstall {module}"
        )


def require(module: str, extra: str | None = None, who: str = "this", note: str = "") -> ModuleType:
    """``import module``, or an error that says what to install.

    Args:
        module: the module to import (``onnxruntime``, ``torch``, ``glcf_train``).
        extra: the extra of glcf that brings it; None: ``EXTRAS`` of its top-level package.
        who: what needs it, for the message (``this command``, ``--preset tiny``).
        note: appended to the message (another way to install it).

    Raises:
        MissingPackage: the module is not installed.
        BrokenPackage: it is installed but does not import (``error`` holds why).
        KeyboardInterrupt: the import was interrupted.
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise import_failure(exc, module, extra, who, note) from exc


def import_failure(exc: ImportError, module: str, extra: str | None = None, who: str = "this",
                   note: str = "") -> BaseException:
    """What a failed ``import module`` means for the user (see ``require``)."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, KeyboardInterrupt):
            return KeyboardInterrupt()
        cause = cause.__cause__ or cause.__context__
    top = module.split(".")[0]
    if isinstance(exc, ModuleNotFoundError) and (exc.name or "").split(".")[0] == top:
        return MissingPackage(top, extra or EXTRAS.get(top, "all"), who, note)
    return BrokenPackage(module, exc)


def installed(module: str) -> bool:
    """Whether ``module`` can be found here; nothing is imported (an interrupted or broken parent
    package counts as not installed)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False
