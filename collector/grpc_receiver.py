"""OTLP/gRPC: the ``TraceService/Export`` RPC on its own port (default 4317).

vLLM's exporter and most SDKs default to gRPC. This receiver feeds the same
writer as OTLP/HTTP and keeps the same promise: OK only once the spans are
committed. gRPC itself enforces the size limit (after decompression) and
handles gzip. When the spans cannot be committed now, the RPC fails with
RESOURCE_EXHAUSTED (queue full) or UNAVAILABLE (database), which OTLP
exporters retry.
"""

from __future__ import annotations

import logging

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from collector.decode import decode_message
from collector.ingest import store
from collector.metrics import CollectorMetrics
from collector.writer import SpanWriter, WriterQueueFull, WriterUnavailable
from inferwatch.daemon import Daemon

log = logging.getLogger(__name__)

SHUTDOWN_GRACE_S = 5.0  # in-flight RPCs get this long to finish when the collector stops


class TraceService(trace_service_pb2_grpc.TraceServiceServicer):  # type: ignore[misc]
    def __init__(self, writer: SpanWriter, metrics: CollectorMetrics) -> None:
        self._writer = writer
        self._metrics = metrics

    async def Export(
        self, request: ExportTraceServiceRequest, context: grpc.aio.ServicerContext
    ) -> ExportTraceServiceResponse:
        try:
            response = await store(decode_message(request), self._writer, self._metrics)
        except WriterQueueFull as exc:
            await self._abort(context, grpc.StatusCode.RESOURCE_EXHAUSTED, str(exc))
        except WriterUnavailable as exc:
            await self._abort(context, grpc.StatusCode.UNAVAILABLE, str(exc))
        self._metrics.export_requests.labels(protocol="grpc", code="OK").inc()
        return response

    async def _abort(
        self, context: grpc.aio.ServicerContext, code: grpc.StatusCode, message: str
    ) -> None:
        self._metrics.export_requests.labels(protocol="grpc", code=code.name).inc()
        log.warning("refusing gRPC export (%s): %s", code.name, message)
        await context.abort(code, message)


class GrpcReceiver(Daemon):
    """Serves ``TraceService`` on ``host:port`` (port 0: any free port, see ``port``)."""

    name = "otlp-grpc"

    def __init__(
        self,
        host: str,
        port: int,
        max_message_bytes: int,
        writer: SpanWriter,
        metrics: CollectorMetrics,
    ) -> None:
        super().__init__()
        self._server = grpc.aio.server(
            options=[
                ("grpc.max_receive_message_length", max_message_bytes),
                ("grpc.so_reuseport", 1),  # worker processes share the port, as with HTTP
            ]
        )
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(
            TraceService(writer, metrics), self._server
        )
        try:
            self.port = self._server.add_insecure_port(f"{host}:{port}")
        except RuntimeError as exc:  # grpc's way of saying the bind failed
            raise OSError(f"cannot listen for OTLP/gRPC on {host}:{port}: {exc}") from exc

    async def start(self) -> None:
        await self._server.start()
        log.info("OTLP/gRPC receiver on port %d", self.port)
        await super().start()

    async def run(self) -> None:
        await self._stopping.wait()
        await self._server.stop(SHUTDOWN_GRACE_S)
