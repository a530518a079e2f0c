"""Every glcf_runtime module (and the CLI) imports where torch cannot be imported."""

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
    assert "glcf_runtime.preprocess" in modules and "glcf_runtime.cli" in modules
    code = BLOCK_TORCH + "import importlib\n" + "".join(
        f"importlib.import_module({m!r})\n" for m in modules)
    code += "assert 'torch' not in sys.modules\nprint('ok')\n"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "ok" in proc.stdout, proc.stderr


def test_cli_help_without_torch() -> None:
    code = BLOCK_TORCH + "sys.argv = ['glcf', '--help']\nfrom glcf_runtime.cli import main\nmain()\n"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "train" in proc.stdout and "calibrate" in proc.stdout
