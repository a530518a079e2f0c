"""The live page of ``glcf inspect --serve``: a sink that keeps the latest results (``state``), an
HTTP server for the page, its JSON API and MJPEG stream (``server``), and Prometheus metrics
(``metrics``). Standard library and ``prometheus_client`` only."""

from glcf_runtime.serve.server import LiveServer, check_exposure, open_live_page, parse_bind
from glcf_runtime.serve.state import LiveState, model_card

__all__ = [
    "LiveServer",
    "LiveState",
    "check_exposure",
    "model_card",
    "open_live_page",
    "parse_bind",
]
