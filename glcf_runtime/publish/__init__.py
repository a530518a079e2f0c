"""Plant outputs of ``glcf inspect --publish``: MQTT (``mqtt``), webhooks (``webhook``) and
OPC UA (``opcua``) publishers behind one ``Publisher`` interface (``base``), each fed by its own
delivery thread (``delivery``) from the durable outbox (``glcf_runtime.outbox``) that the
loop's ``PublishSink`` (``sink``) fills. See docs/station.md."""

from glcf_runtime.publish.base import Publisher, PublishOptions, SendFailed, mask
from glcf_runtime.publish.sink import PublishSink, make_publishers

__all__ = ["PublishOptions", "PublishSink", "Publisher", "SendFailed", "make_publishers", "mask"]
