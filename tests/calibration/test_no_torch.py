"""calibration imports and runs where torch cannot be imported."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]

SCRIPT = """
import sys

class BlockTorch:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError("torch is blocked in this test")
        return None

sys.meta_path.insert(0, BlockTorch())
try:
    import torch  # noqa: F401
except ImportError:
    pass
else:
    raise SystemExit("the torch blocker does not work")

import numpy as np
import calibration
import calibration.loco_defects
import calibration.metrics
import calibration.stats
import calibration.threshold

assert calibration.image_auroc(np.array([0.0, 1.0]), np.array([0, 1])) == 1.0
assert "torch" not in sys.modules
print("ok")
"""


def test_calibration_imports_without_torch() -> None:
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
