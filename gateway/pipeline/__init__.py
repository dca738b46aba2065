"""From transports' bytes to committed records, then acknowledgement."""

from gateway.pipeline.queue import Inbound, IngestQueue
from gateway.pipeline.writer import Pipeline

__all__ = ["Inbound", "IngestQueue", "Pipeline"]
