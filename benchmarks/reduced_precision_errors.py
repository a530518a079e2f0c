"""Where the anomaly-map error of a reduced-precision run comes from: the networks or the scoring.

The fused graph is cut where the scorer starts (its inputs are the feature tensors Φ and Ψ that
it subtracts): the feature part and the scoring part are compiled separately, each in FP32 or in
BF16 (OpenVINO's inference precision hint), and chained. Against the whole graph in FP32, the
four combinations give the error of each part on its own; the INT8 file (where the export wrote
one) is compared too — its scorer is never quantized, so its error is the networks'. Errors are
the largest |map − FP32 map| as a share of the FP32 maps' range (the export gates' measure) and
the Spearman correlation of the image scores.

    python benchmarks/reduced_precision_errors.py EXPORT_FOLDER IMAGES_FOLDER [--images 24]

(``IMAGES_FOLDER``: its PNG files, in subfolders too, except ``ground_truth`` masks.)

Prints the CPU and its instructions beside the figures.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import onnx
from onnx.utils import extract_model

from glcf_bench.machine import machine_info
from glcf_export.onnx_export import SCORER_SCOPE
from glcf_export.quantize import evenly
from glcf_runtime.artifacts import FP32_FILE, INT8_FILE
from glcf_runtime.compare import spearman
from glcf_runtime.metadata import INPUT_NAME, MAP_NAME, SCORE_NAME
from glcf_runtime.preprocess import PreprocessSpec, load_preprocessed
from glcf_runtime.requires import require


def scorer_inputs(model: onnx.ModelProto) -> list[str]:
    """The tensors the scorer reads from outside it: the features it subtracts."""
    made_inside = {o for n in model.graph.node if n.name.startswith(SCORER_SCOPE) for o in n.output}
    constants = {i.name for i in model.graph.initializer}
    names = [i for n in model.graph.node if n.name.startswith(SCORER_SCOPE) for i in n.input
             if i and i not in made_inside and i not in constants]
    return list(dict.fromkeys(names))


def compile_ov(core, path: Path, hint: str):
    return core.compile_model(core.read_model(str(path)), "CPU", {
        "INFERENCE_PRECISION_HINT": hint, "INFERENCE_NUM_THREADS": 2})


def run(compiled, feeds: list[dict]) -> list[dict]:
    return [{port.get_any_name(): value for port, value in compiled(feed).items()} for feed in feeds]


def errors(ref: list[dict], got: list[dict]) -> tuple[float, float]:
    maps_ref = np.concatenate([r[MAP_NAME] for r in ref])
    maps = np.concatenate([g[MAP_NAME] for g in got])
    span = float(maps_ref.max() - maps_ref.min()) or 1.0
    scores_ref = np.concatenate([r[SCORE_NAME] for r in ref]).ravel()
    scores = np.concatenate([g[SCORE_NAME] for g in got]).ravel()
    return float(np.abs(maps - maps_ref).max()) / span, spearman(scores_ref, scores)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("export", type=Path)
    parser.add_argument("images", type=Path)
    parser.add_argument("--images", dest="count", type=int, default=24)
    args = parser.parse_args()
    ov = require("openvino", "openvino")
    core = ov.Core()
    fp32 = args.export / FP32_FILE
    model = onnx.load(str(fp32))
    size = model.graph.input[0].type.tensor_type.shape.dim[1].dim_value
    spec = PreprocessSpec(size, size)
    files = evenly(sorted(p for p in args.images.rglob("*.png") if "ground_truth" not in p.parts),
                   args.count)
    frames = [{INPUT_NAME: load_preprocessed(f, spec)[None]} for f in files]
    cut = scorer_inputs(model)
    with tempfile.TemporaryDirectory() as tmp:
        features, scorer = Path(tmp) / "features.onnx", Path(tmp) / "scorer.onnx"
        extract_model(str(fp32), str(features), [INPUT_NAME], cut)
        extract_model(str(fp32), str(scorer), cut, [MAP_NAME, SCORE_NAME])
        ref = run(compile_ov(core, fp32, "f32"), frames)
        rows = {}
        for feat_hint in ("f32", "bf16"):
            feats = run(compile_ov(core, features, feat_hint), frames)
            for score_hint in ("f32", "bf16"):
                compiled = compile_ov(core, scorer, score_hint)
                rows[f"networks {feat_hint}, scoring {score_hint}"] = errors(ref, run(compiled, feats))
        rows["whole graph bf16 (one compiled model)"] = errors(ref, run(compile_ov(core, fp32, "bf16"), frames))
        if (args.export / INT8_FILE).is_file():
            rows["INT8 file (its scoring: FP32)"] = errors(
                ref, run(compile_ov(core, args.export / INT8_FILE, "f32"), frames))
    info = machine_info()
    print(f"{info['cpu']}, {info['usable_cores']} cores; {len(frames)} images of {args.images}")
    print(f"{'run':44s} {'map error (of range)':>22s} {'Spearman':>10s}")
    for name, (err, rho) in rows.items():
        print(f"{name:44s} {err:21.2%} {rho:10.4f}")


if __name__ == "__main__":
    main()
