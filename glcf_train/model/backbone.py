"""Φ_L: the frozen local feature extractor (timm Swin transformer, stages 1-3 + stage 4 merging)."""

from __future__ import annotations

from pathlib import Path

import torch
from timm.models.swin_transformer import SwinTransformer, checkpoint_filter_fn
from torch import nn

from glcf_runtime.errors import ConfigError
from glcf_train.checkpoint import load_failure
from glcf_train.config import BackboneConfig

WEIGHTS_HELP = (
    "Φ_L needs ImageNet weights for Swin-T. Either let timm download them (needs internet; they "
    "are cached under ~/.cache/huggingface), or download 'swin_tiny_patch4_window7_224' once "
    "elsewhere (timm's model.safetensors from the Hugging Face hub, or the original "
    "swin_tiny_patch4_window7_224.pth release) and pass --backbone-weights FILE. "
    "For tests and demos only: --random-init."
)


class WeightsError(ConfigError):
    """Backbone weights that cannot be had or do not fit."""


class LocalExtractor(nn.Module):
    """Swin transformer cut to the four taps of DESIGN §2; frozen and always in eval mode.

    Input ``[B, 3, H, W]`` normalised RGB; output the taps t0..t3, NHWC:
    ``[B, H/4, W/4, C]``, ``[B, H/8, W/8, 2C]``, ``[B, H/16, W/16, 4C]``, ``[B, H/32, W/32, 8C]``.
    """

    def __init__(self, cfg: BackboneConfig, image_size: int) -> None:
        super().__init__()
        swin = build_swin(cfg, image_size)
        self.patch_embed = swin.patch_embed
        self.stage1 = swin.layers[0]
        self.merge2, self.stage2 = swin.layers[1].downsample, swin.layers[1].blocks
        self.merge3, self.stage3 = swin.layers[2].downsample, swin.layers[2].blocks
        self.merge4 = swin.layers[3].downsample  # stage 4's blocks, final norm and head are cut
        self.requires_grad_(False)
        super().train(False)

    def train(self, mode: bool = True) -> LocalExtractor:
        """Φ_L stays in eval mode whatever the rest of the model does."""
        return super().train(False)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        t0 = self.patch_embed(x)
        t1 = self.merge2(self.stage1(t0))
        t2 = self.merge3(self.stage2(t1))
        t3 = self.merge4(self.stage3(t2))
        return [t0, t1, t2, t3]


def build_swin(cfg: BackboneConfig, image_size: int) -> SwinTransformer:
    """The full timm Swin transformer for ``cfg`` (stage 4 with one block; it is cut later)."""
    return SwinTransformer(
        img_size=image_size,
        patch_size=cfg.patch_size,
        embed_dim=cfg.embed_dim,
        depths=(*cfg.depths, 1),
        num_heads=(*cfg.num_heads, 2 * cfg.num_heads[-1]),
        window_size=cfg.window_size,
        num_classes=0,
        drop_path_rate=0.0,
    )


def _timm_layout(state: dict[str, torch.Tensor], swin: SwinTransformer,
                 source: str) -> dict[str, torch.Tensor]:
    """Convert timm's or the original Swin release's keys to timm's, and keep Φ_L's part."""
    for key in ("model", "state_dict"):
        if isinstance(state.get(key), dict):
            state = state[key]
    try:
        state = checkpoint_filter_fn(state, swin)  # also maps the original release's layout
    except (AttributeError, KeyError, RuntimeError, ValueError) as exc:
        raise WeightsError(
            f"{source}: the weights do not fit this preset's Swin ({exc}); the checkpoint is for "
            "another Swin size or is not a Swin checkpoint"
        ) from None
    return {k: v for k, v in state.items() if _kept(k)}


def _kept(key: str) -> bool:
    if key.startswith("patch_embed."):
        return True
    for i in range(3):
        if key.startswith(f"layers.{i}."):
            return True
    return key.startswith("layers.3.downsample.")


def _extractor_key(timm_key: str) -> str:
    """Map a timm Swin key to the matching :class:`LocalExtractor` key."""
    replacements = (
        ("layers.0.blocks.", "stage1.blocks."),
        ("layers.1.downsample.", "merge2."),
        ("layers.1.blocks.", "stage2."),
        ("layers.2.downsample.", "merge3."),
        ("layers.2.blocks.", "stage3."),
        ("layers.3.downsample.", "merge4."),
    )
    for old, new in replacements:
        if timm_key.startswith(old):
            return new + timm_key[len(old) :]
    return timm_key


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """A state dict from ``.safetensors`` or a torch file (loaded with ``weights_only=True``)."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"backbone weights file {path} does not exist. {WEIGHTS_HELP}")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # the libraries raise many kinds; all mean "not a weights file"
        raise WeightsError(
            f"cannot read backbone weights {path}: {load_failure(exc)}. Expected a .safetensors "
            "file or a PyTorch state dict (.pth/.pt)."
        ) from None


def load_backbone_weights(extractor: LocalExtractor, cfg: BackboneConfig, image_size: int,
                          path: str | Path) -> None:
    """Load timm- or original-layout Swin weights from ``path`` into ``extractor``.

    Raises:
        WeightsError: the file is unreadable, misses keys Φ_L needs, or has other shapes.
    """
    swin = build_swin(cfg, image_size)
    state = _timm_layout(read_state_dict(path), swin, str(path))
    mapped = {_extractor_key(k): v for k, v in state.items()}
    _load_checked(extractor, mapped, source=str(path))


def load_hub_weights(extractor: LocalExtractor, cfg: BackboneConfig, image_size: int) -> None:
    """Load ImageNet weights through timm's hub (internet or the local Hugging Face cache)."""
    if cfg.timm_name is None:
        raise WeightsError(
            "this preset's Swin sizes have no published ImageNet weights; use --preset paper "
            "with weights, pass --backbone-weights FILE with weights of these sizes, or "
            "--random-init for a test run."
        )
    import timm

    try:
        swin = timm.create_model(cfg.timm_name, pretrained=True, num_classes=0)
    except Exception as exc:  # offline, no cache, hub errors: all mean "not available here"
        raise WeightsError(f"could not get {cfg.timm_name} weights from timm's hub ({exc}). "
                           f"{WEIGHTS_HELP}") from None
    state = {k: v for k, v in swin.state_dict().items() if _kept(k)}
    _load_checked(extractor, {_extractor_key(k): v for k, v in state.items()}, source=cfg.timm_name)


def _load_checked(extractor: LocalExtractor, state: dict[str, torch.Tensor], source: str) -> None:
    own = {k: v for k, v in extractor.state_dict().items() if not _is_buffer_key(k)}
    missing = sorted(set(own) - set(state))
    if missing:
        raise WeightsError(
            f"{source} lacks {len(missing)} weights Φ_L needs (first: {missing[:3]}); it is not a "
            f"Swin checkpoint of this size (embed_dim {extractor.patch_embed.proj.out_channels})."
        )
    wrong = [k for k in own if tuple(state[k].shape) != tuple(own[k].shape)]
    if wrong:
        k = wrong[0]
        raise WeightsError(
            f"{source}: {len(wrong)} weights have other shapes (e.g. {k}: "
            f"{tuple(state[k].shape)} vs {tuple(own[k].shape)}); the checkpoint is for another "
            "Swin size than this preset."
        )
    extractor.load_state_dict({k: state[k] for k in own}, strict=False)


def _is_buffer_key(key: str) -> bool:
    return key.endswith(("relative_position_index", "attn_mask"))
