"""A model file whose export stopped before its checks passed is refused where users open models
(``open_runner``: glcf inspect, threshold, bench, the live page), with the fix; the export's own
checks still open it through the runner classes."""

from __future__ import annotations

from pathlib import Path

import pytest

from glcf_bench.fixtures.contract_model import contract_metadata, write_model
from glcf_runtime.backends import OnnxRuntimeRunner, open_runner
from glcf_runtime.errors import ConfigError
from glcf_runtime.metadata import CHECKS_KEY, CHECKS_PASSED, CHECKS_PENDING


@pytest.mark.parametrize("backend", [None, "onnxruntime", "auto"])
def test_a_file_with_pending_checks_is_refused(tmp_path: Path, backend: str | None) -> None:
    model = write_model(tmp_path / "export", contract_metadata(extra={CHECKS_KEY: CHECKS_PENDING}))
    with pytest.raises(ConfigError, match="stopped before its checks passed; export again"):
        open_runner(model, backend)
    with OnnxRuntimeRunner(model) as runner:  # what the export's checks use
        assert runner.metadata.extra[CHECKS_KEY] == CHECKS_PENDING


def test_checked_and_unmarked_files_open(tmp_path: Path) -> None:
    checked = write_model(tmp_path / "a", contract_metadata(extra={CHECKS_KEY: CHECKS_PASSED}))
    unmarked = write_model(tmp_path / "b")  # written before files carried the mark
    for model in (checked, unmarked):
        with open_runner(model, "onnxruntime") as runner:
            assert runner.metadata.height > 0
