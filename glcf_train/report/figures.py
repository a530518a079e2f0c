"""The report's figures, drawn with matplotlib's object API on the Agg canvas (no display, no
pyplot state): ROC curves, score histograms with the threshold, and the gallery."""

from __future__ import annotations

import io
from dataclasses import dataclass

import cv2
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from glcf_train.report.tables import GOOD, Group

COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd")  # one per detector
KIND_STYLE = {"logical": "-", "structural": "--", "all": ":"}


@dataclass(frozen=True)
class Drawn:
    """One detector's scores as the figures need them."""

    name: str
    scores: np.ndarray  # [N]
    threshold: float


def _figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def to_bytes(fig: Figure, fmt: str) -> bytes:
    """``fig`` as SVG (fonts as paths, fixed ids: same input, same bytes) or PNG."""
    buf = io.BytesIO()
    metadata = {"Date": None} if fmt == "svg" else {"Software": None}
    fig.savefig(buf, format=fmt, metadata=metadata)
    return buf.getvalue()


def roc_curve(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """False- and true-positive rates at every distinct score (score >= t), from (0, 0) to (1, 1)."""
    order = np.argsort(-scores, kind="stable")
    s, y = scores[order], labels[order]
    ends = np.flatnonzero(np.append(s[1:] != s[:-1], True))
    tp, fp = np.cumsum(y)[ends], np.cumsum(1 - y)[ends]
    return (np.r_[0.0, fp / max(1, (1 - y).sum())], np.r_[0.0, tp / max(1, y.sum())])


def roc_figure(detectors: list[Drawn], index: dict[Group, np.ndarray], kinds: list[str]) -> Figure:
    """ROC per defect kind: one panel per detector, one curve per kind."""
    fig = _figure(4.2 * len(detectors), 3.8)
    axes = fig.subplots(1, len(detectors), squeeze=False)[0]
    good = index[GOOD]
    for ax, det in zip(axes, detectors, strict=True):
        for kind in kinds:
            anomalous = index[Group(kind)]
            scores = np.r_[det.scores[good], det.scores[anomalous]]
            labels = np.r_[np.zeros(good.size), np.ones(anomalous.size)]
            fpr, tpr = roc_curve(scores, labels)
            ax.plot(fpr, tpr, KIND_STYLE.get(kind, "-"), label=kind, drawstyle="steps-post")
        ax.plot([0, 1], [0, 1], color="0.7", lw=0.8)
        ax.set(title=det.name, xlabel="false-positive rate (good images)",
               ylabel="true-positive rate", xlim=(0, 1), ylim=(0, 1.02))
        ax.legend(loc="lower right", fontsize=8)
    return fig


def histogram_figure(detectors: list[Drawn], index: dict[Group, np.ndarray],
                     kinds: list[str]) -> Figure:
    """Score histograms of the good and each kind of anomalous test images, threshold drawn."""
    fig = _figure(4.2 * len(detectors), 3.4)
    axes = fig.subplots(1, len(detectors), squeeze=False)[0]
    for ax, det in zip(axes, detectors, strict=True):
        bins = np.histogram_bin_edges(np.r_[det.scores, det.threshold], bins=30)
        for colour, group in zip(COLOURS, [GOOD, *map(Group, kinds)], strict=False):
            ax.hist(det.scores[index[group]], bins=bins, alpha=0.55, color=colour,
                    label=f"{group.label} ({index[group].size})")
        ax.axvline(det.threshold, color="black", lw=1.5, ls="--",
                   label=f"threshold {det.threshold:.4g}")
        ax.set(title=det.name, xlabel="image score", ylabel="images")
        ax.legend(fontsize=8)
    return fig


def _rgb(image_bgr: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(image_bgr, cv2.COLOR_BGR2RGB)


def gallery_figure(images: np.ndarray, maps: np.ndarray, masks: np.ndarray,
                   captions: list[str], vrange: tuple[float, float]) -> Figure:
    """Rows of image | heat map | ground truth (mask outlined on the image).

    Args:
        images: ``[K, S, S, 3]`` uint8 BGR.
        maps: ``[K, S, S]`` anomaly maps.
        masks: ``[K, S, S]`` bool ground truth (all False for good images).
        captions: one per row.
        vrange: colour range of the heat maps.
    """
    k = len(images)
    fig = _figure(7.2, 2.3 * k)
    axes = fig.subplots(k, 3, squeeze=False)
    for row, (image, amap, mask, caption) in enumerate(zip(images, maps, masks, captions, strict=True)):
        rgb = _rgb(image)
        axes[row, 0].imshow(rgb)
        axes[row, 0].set_title(caption, fontsize=8, loc="left")
        shown = axes[row, 1].imshow(amap, cmap="jet", vmin=vrange[0], vmax=vrange[1])
        fig.colorbar(shown, ax=axes[row, 1], fraction=0.046, pad=0.02)
        axes[row, 1].set_title("anomaly map", fontsize=8)
        axes[row, 2].imshow(rgb)
        if mask.any():
            axes[row, 2].contour(mask.astype(float), levels=[0.5], colors="red", linewidths=1.2)
            axes[row, 2].set_title("ground truth", fontsize=8)
        else:
            axes[row, 2].set_title("ground truth: defect-free", fontsize=8)
        for ax in axes[row]:
            ax.set_axis_off()
    return fig
