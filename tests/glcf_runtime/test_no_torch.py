"""Every glcf_runtime module (and the CLI's entry point) imports where torch cannot be imported."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import glcf_runtime

BLOCK_TORCH = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('torch', 'timm', 'torchvision'):
            raise ImportError('torch is blocked in this test')
sys.meta_path.insert(0, Block())
"""


def test_runtime_modules_import_without_torch() -> None:
    modules = [m.name for m in pkgutil.walk_packages(glcf_runtime.__path__, "glcf_runtime.")
               if not m.name.endswith("__main__")]
    assert "glcf_runtime.preprocess" in modules and "glcf_runtime.backends.tensorrt.build" in modules
    modules += ["glcf_cli"]
    code = BLOCK_TORCH + "import importlib\n" + "".join(
        f"importlib.import_module({m!r})\n" for m in modules)
    code += "assert 'torch' not in sys.modules\nprint('ok')\n"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "ok" in proc.stdout, proc.stderr


def test_cli_help_without_torch() -> None:
    code = BLOCK_TORCH + "sys.argv = ['glcf', '--help']\nfrom glcf_cli import main\nmain()\n"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "train" in proc.stdout and "calibrate" in proc.stdout


def test_threshold_path_needs_neither_torch_nor_scipy() -> None:
    """`glcf threshold` runs on a bare runtime install: calibration.threshold is numpy only."""
    code = BLOCK_TORCH.replace("('torch', 'timm', 'torchvision')", "('torch', 'timm', 'torchvision', 'scipy', 'sklearn')")
    code += (
        "import numpy as np\n"
        "from calibration.threshold import select_threshold\n"
        "import glcf_runtime.loop\n"
        "r = select_threshold(np.array([0.1, 0.2, 0.3, 0.9]), None, 0.99, 0.0)\n"
        "assert r.threshold > 0.3, r\n"
        "assert 'scipy' not in sys.modules and 'torch' not in sys.modules\n"
        "print('ok')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "ok" in proc.stdout, proc.stderr


def test_runtime_modules_import_without_the_plant_extra() -> None:
    """A box with `glcf[runtime]` only (no paho-mqtt, asyncua or cryptography) imports every
    runtime module and the CLI; the publishers import their libraries when a --publish needs them."""
    modules = [m.name for m in pkgutil.walk_packages(glcf_runtime.__path__, "glcf_runtime.")
               if not m.name.endswith("__main__")] + ["glcf_cli"]
    code = BLOCK_TORCH.replace("('torch', 'timm', 'torchvision')", "('paho', 'asyncua', 'cryptography')"
                               ).replace("torch is blocked", "the plant extra is not installed")
    code += "import importlib\n" + "".join(f"importlib.import_module({m!r})\n" for m in modules)
    code += "assert not {'paho', 'asyncua', 'cryptography'} & set(sys.modules)\nprint('ok')\n"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "ok" in proc.stdout, proc.stderr
