"""GLCF runtime: pre-processing contract, artifacts, backends and the inspection loop.

Imports numpy and OpenCV only; backends import their libraries lazily. Never imports torch.
"""

__version__ = "0.1.0"
