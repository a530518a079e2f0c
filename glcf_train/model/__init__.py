"""GLCF model: pure ``nn.Module``s; no losses, no export code."""

from glcf_train.model.glcf import GLCF, GlcfFeatures, ImageNormalizer

__all__ = ["GLCF", "GlcfFeatures", "ImageNormalizer"]
