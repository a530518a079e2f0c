"""The live page of ``glcf inspect --serve``: a sink that keeps the latest results, in all and per
camera (``state``, ``cameras``), an HTTP server for the page, its JSON API and MJPEG stream
(``server``), who may read it (token, cookie, Host header: ``access``), how many connections it
keeps and for how long (``connections``), and Prometheus metrics (``metrics``). Standard library
and ``prometheus_client`` only."""

from glcf_runtime.serve.access import check_exposure, parse_allowed_hosts
from glcf_runtime.serve.connections import ServeLimits
from glcf_runtime.serve.server import LiveServer, open_live_page, parse_bind
from glcf_runtime.serve.state import LiveState, model_card

__all__ = [
    "LiveServer",
    "LiveState",
    "ServeLimits",
    "check_exposure",
    "model_card",
    "open_live_page",
    "parse_allowed_hosts",
    "parse_bind",
]
