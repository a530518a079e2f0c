"""`glcf inspect` with several cameras: --source NAME=URI (repeatable), --station FILE, one runner,
one JSONL with `camera`, a summary and an exit code that cover every camera, errors before the
model loads."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from glcf_bench.fixtures.contract_model import write_images, write_model, write_video
from glcf_cli import main


def _glcf(args: list[str], monkeypatch: pytest.MonkeyPatch,
          capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    monkeypatch.setattr(sys, "argv", ["glcf", *map(str, args)])
    monkeypatch.setenv("COLUMNS", "200")
    with pytest.raises(SystemExit) as exit_info:
        main()
    captured = capsys.readouterr()
    return exit_info.value.code, " ".join((captured.out + captured.err).split())


def _records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An export, three clips of different lengths and a folder of frames."""
    root = tmp_path_factory.mktemp("site")
    write_model(root / "export")
    for name, n in (("top", 30), ("side", 8), ("lane3", 18)):
        write_video(root / f"{name}.avi", [i % 6 == 2 for i in range(n)])
    write_images(root / "tray", [False, True, False, False, True])
    return root


def test_four_cameras_one_runner_one_jsonl(site: Path, tmp_path: Path, monkeypatch, capsys
                                           ) -> None:
    jsonl, summary = tmp_path / "r.jsonl", tmp_path / "s.json"
    code, out = _glcf(["inspect", site / "export", "--backend", "onnxruntime", "--batch", "4",
                       "--source", f"top={site / 'top.avi'}", "--source",
                       f"side={site / 'side.avi'}", "--source", f"lane3={site / 'lane3.avi'}",
                       "--source", f"tray={site / 'tray'}", "--jsonl", jsonl,
                       "--summary-json", summary], monkeypatch, capsys)
    assert code == 0, out
    assert "4 cameras on one runner: top (" in out and "camera side" in out
    report = json.loads(summary.read_text())
    frames = {"top": 30, "side": 8, "lane3": 18, "tray": 5}
    assert {n: c["frames"] for n, c in report["cameras"].items()} == frames
    assert all(c["completed"] and c["exit_code"] == 0 for c in report["cameras"].values())
    assert report["frames"] == sum(frames.values()) and report["exit_code"] == 0
    assert 1 < report["mean_batch"] <= 4
    assert report["streams"] == 1 and "next: --streams 2 --batch 2 scores two batches" in out
    records = _records(jsonl)
    assert len(records) == sum(frames.values())
    for name, n in frames.items():
        assert [r["frame"] for r in records if r["camera"] == name] == list(range(n))
    assert {r["source"] for r in records if r["camera"] == "tray"} == {str(site / "tray")}


def test_exit_code_is_the_worst_camera(site: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    broken = tmp_path / "broken"
    write_images(broken, [False, False])
    (broken / "001b.png").write_bytes(b"\x89PNG corrupt")
    summary = tmp_path / "s.json"
    code, out = _glcf(["inspect", site / "export", "--backend", "onnxruntime", "--batch", "2",
                       "--source", f"a={site / 'side.avi'}", "--source", f"b={broken}",
                       "--summary-json", summary], monkeypatch, capsys)
    report = json.loads(summary.read_text())
    assert code == 3 and report["exit_code"] == 3, out
    assert report["cameras"]["a"]["exit_code"] == 0 and report["cameras"]["b"]["exit_code"] == 3
    assert report["cameras"]["b"]["errors"] == 1 and report["cameras"]["a"]["frames"] == 8


def test_station_file_yaml_with_crop_and_threshold(site: Path, tmp_path: Path, monkeypatch,
                                                   capsys) -> None:
    (tmp_path / "clips").symlink_to(site)
    station = tmp_path / "station.yaml"
    station.write_text(
        "cameras:\n"
        "  - name: top\n    source: clips/top.avi\n"
        "  - name: tray\n    source: clips/tray\n    threshold: 1.5\n"
        "  - name: corner\n    source: clips/tray\n    roi: 40,40,24,24\n"
    )
    jsonl, summary = tmp_path / "r.jsonl", tmp_path / "s.json"
    monkeypatch.chdir(site)  # sources are relative to the station file, not to the working folder
    code, out = _glcf(["inspect", site / "export", "--backend", "onnxruntime", "--batch", "3",
                       "--station", station, "--jsonl", jsonl, "--summary-json", summary],
                      monkeypatch, capsys)
    assert code == 0, out
    cameras = json.loads(summary.read_text())["cameras"]
    assert {n: c["anomalies"] for n, c in cameras.items()} == {"top": 5, "tray": 0, "corner": 0}
    assert cameras["tray"]["threshold"] == 1.5 and cameras["top"]["threshold"] == 0.5
    assert "tray (" in out and "threshold 1.5" in out and "cropped to (40, 40, 24, 24)" in out
    assert {r["camera"] for r in _records(jsonl)} == {"top", "tray", "corner"}


def test_station_file_json_and_one_named_camera(site: Path, tmp_path: Path, monkeypatch,
                                                capsys) -> None:
    station = tmp_path / "station.json"
    station.write_text(json.dumps([{"name": "only", "source": str(site / "tray"),
                                    "threshold": 1.5}]))
    jsonl, summary = tmp_path / "r.jsonl", tmp_path / "s.json"
    code, out = _glcf(["inspect", site / "export", "--backend", "onnxruntime", "--station",
                       station, "--jsonl", jsonl, "--summary-json", summary],
                      monkeypatch, capsys)
    assert code == 0, out
    report = json.loads(summary.read_text())
    assert report["threshold"] == 1.5 and report["anomalies"] == 0
    assert list(report["cameras"]) == ["only"]
    assert {r["camera"] for r in _records(jsonl)} == {"only"}


def test_one_source_without_a_name_is_its_own_camera(site: Path, tmp_path: Path, monkeypatch,
                                                     capsys) -> None:
    jsonl, summary = tmp_path / "r.jsonl", tmp_path / "s.json"
    code, out = _glcf(["inspect", site / "export", "--backend", "onnxruntime", "--source",
                       site / "side.avi", "--jsonl", jsonl, "--summary-json", summary],
                      monkeypatch, capsys)
    assert code == 0 and f"source {site / 'side.avi'}" in out, out
    records = _records(jsonl)
    assert [r["frame"] for r in records] == list(range(8))
    assert {(r["source"], r["camera"]) for r in records} == {(str(site / "side.avi"),) * 2}
    assert list(json.loads(summary.read_text())["cameras"]) == [str(site / "side.avi")]


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_streams_score_several_cameras_at_once(site: Path, tmp_path: Path, monkeypatch, capsys,
                                               backend: str) -> None:
    if backend == "openvino":
        pytest.importorskip("openvino")
    jsonl, summary = tmp_path / "r.jsonl", tmp_path / "s.json"
    code, out = _glcf(["inspect", site / "export", "--backend", backend, "--threads", "2",
                       "--streams", "2", "--batch", "2", "--source", f"top={site / 'top.avi'}",
                       "--source", f"side={site / 'side.avi'}", "--source",
                       f"lane3={site / 'lane3.avi'}", "--jsonl", jsonl, "--summary-json", summary],
                      monkeypatch, capsys)
    assert code == 0 and "2 streams" in out and "next: --streams" not in out, out
    frames = {"top": 30, "side": 8, "lane3": 18}
    report = json.loads(summary.read_text())
    assert report["frames"] == sum(frames.values()) and report["streams"] == 2
    records = _records(jsonl)
    for name, n in frames.items():
        assert [r["frame"] for r in records if r["camera"] == name] == list(range(n))


@pytest.mark.parametrize(("args", "station", "message"), [
    (["--source", "a=X", "--source", "a=X"], None,
     "--source: two cameras are named 'a'; give each camera its own name"),
    (["--source", "=X"], None, "the camera's name before '=' is empty; give --source NAME=URI"),
    (["--source", "X", "--source", "b=X"], None,
     "with several --source, name each camera: --source NAME=X"),
    (["--source", "a=X", "--station", "S"], "[{name: a, source: X}]",
     "and --source both name cameras; give the cameras in one of them"),
    ([], None, "no camera: give --source URI (or NAME=URI, repeatable) or --station FILE"),
    (["--station", "S"], "cameras:\n  - {name: a, source: X}\n  - {name: a, source: X}\n",
     "two cameras are named 'a'; give each camera its own name"),
    (["--station", "S"], "cameras:\n  - {name: '', source: X}\n",
     "camera 1 has an empty name; give every camera a name"),
    (["--station", "S"], "cameras:\n  - {name: a, source: X, zoom: 2}\n",
     "camera 'a': unknown key 'zoom'; the keys are name, source, roi, threshold"),
    (["--station", "S"], "cameras:\n  - {name: a}\n", "camera 'a' has no source; add source: URI"),
    (["--station", "S"], "cameras:\n  - {name: a, source: X, threshold: high}\n",
     "threshold 'high' is not a number"),
    (["--station", "S"], "cameras:\n  - name: a\n    source: X\n    roi: 1,2\n", "give x,y,w,h"),
    (["--station", "S"], "cameras: [\n", "cannot be read as YAML"),
    (["--station", "S"], "cameras: []\n", "no cameras; give a list 'cameras:'"),
    (["--station", "MISSING"], None, "no such file; give a YAML or JSON file"),
    (["--source", "a=X", "--source", "b=X", "--save-video", "v.avi"], None,
     "--save-video writes one camera's frames; with several cameras use"),
    (["--source", "a=X", "--batch-wait-ms", "-1"], None, "--batch-wait-ms -1.0: give milliseconds"),
    (["--source", "a=X", "--streams", "2"], None,
     "--streams 2 scores several cameras' frames at once; one camera's frames are scored in order"),
])
def test_camera_errors_exit_2_before_the_model_loads(
        tmp_path: Path, monkeypatch, capsys, args: list[str], station: str | None,
        message: str) -> None:
    if station is not None:
        (tmp_path / "station.yaml").write_text(station)
    args = [str(tmp_path / "station.yaml") if a == "S" else a for a in args]
    args = [str(tmp_path / "missing.yaml") if a == "MISSING" else a for a in args]
    code, out = _glcf(["inspect", tmp_path / "no-model", *args], monkeypatch, capsys)
    assert code == 2 and message in out, out
    assert "no-model" not in out  # refused before the model was looked for


def test_several_cameras_with_the_live_page(site: Path, tmp_path: Path, monkeypatch, capsys
                                            ) -> None:
    summary = tmp_path / "s.json"
    code, out = _glcf(["inspect", site / "export", "--backend", "onnxruntime", "--batch", "2",
                       "--source", f"top={site / 'top.avi'}", "--source",
                       f"tray={site / 'tray'}", "--serve", "127.0.0.1:0", "--summary-json",
                       summary], monkeypatch, capsys)
    assert code == 0 and "live page http://127.0.0.1:" in out, out
    assert {n: c["frames"] for n, c in json.loads(summary.read_text())["cameras"].items()} == {
        "top": 30, "tray": 5}
