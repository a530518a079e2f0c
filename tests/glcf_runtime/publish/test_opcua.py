"""OPC UA through asyncua's own server in this process: the verdict, score and frame of every
message are written to existing variables, as each node's own type; read back afterwards."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from glcf_bench.fixtures.contract_model import write_images
from glcf_runtime.errors import ConfigError
from glcf_runtime.loop import inspect
from glcf_runtime.publish import PublishOptions, PublishSink, make_publishers
from glcf_runtime.sinks import JsonlSink
from glcf_runtime.sources import open_source
from tests.glcf_runtime.publish.plant import OpcUaServer


def test_verdict_score_and_frame_are_written_to_the_nodes(runner, tmp_path: Path) -> None:
    folder = write_images(tmp_path / "cam", [False, False, True])[0].parent
    server = OpcUaServer()
    nodes = (f"verdict={server.node('Reject')}", f"score={server.node('Score')}",
             f"frame={server.node('Frame')}")
    options = PublishOptions((server.url,), opcua_nodes=nodes)
    jsonl = JsonlSink(tmp_path / "run.jsonl")
    sink = PublishSink(make_publishers(options), tmp_path / "o.sqlite", options)
    try:
        with open_source(str(folder)) as source:
            summary = inspect(runner, source, sinks=[sink, jsonl])
        values = server.read("Reject"), server.read("Score"), server.read("Frame")
    finally:
        server.close()
    assert (summary.publish["delivered"], summary.publish["pending"]) == (3, 0)
    last = json.loads((tmp_path / "run.jsonl").read_text().splitlines()[-1])
    assert values[0] is True and values[2] == 2 and isinstance(values[2], int)
    assert values[1] == pytest.approx(last["score"])


@pytest.mark.parametrize(("nodes", "message"), [
    ((), "name the nodes to write"),
    (("reject=ns=2;s=X",), "KEY one of verdict, score, frame"),
    (("verdict=ns=2;s=X", "verdict=ns=2;s=Y"), "given twice"),
])
def test_bad_node_options_are_named(nodes: tuple[str, ...], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        make_publishers(PublishOptions(("opc.tcp://127.0.0.1:4840",), opcua_nodes=nodes))
