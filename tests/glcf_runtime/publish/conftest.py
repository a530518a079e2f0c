"""The contract model and its runner, shared by the publishing tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from glcf_bench.fixtures.contract_model import write_model
from glcf_runtime.backends import OnnxRuntimeRunner


@pytest.fixture(scope="package")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_model(tmp_path_factory.mktemp("model"))


@pytest.fixture(scope="package")
def runner(model: Path):
    with OnnxRuntimeRunner(model, threads=1) as r:
        yield r
