"""The step both receivers (OTLP/HTTP and OTLP/gRPC) share: count, write, answer.

``store`` waits until the decoded rows are committed and returns the OTLP
response, with ``partial_success`` when spans were rejected. When the spans
cannot be committed now it raises ``WriterQueueFull`` or ``WriterUnavailable``
(counted as refused); the receiver turns those into its protocol's
retryable error.
"""

from __future__ import annotations

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTracePartialSuccess,
    ExportTraceServiceResponse,
)

from collector.decode import Decoded
from collector.metrics import CollectorMetrics
from collector.writer import SpanWriter, WriterQueueFull, WriterUnavailable


async def store(
    decoded: Decoded, writer: SpanWriter, metrics: CollectorMetrics
) -> ExportTraceServiceResponse:
    metrics.spans_received.inc(len(decoded.rows) + decoded.rejected)
    if decoded.rejected:
        metrics.spans_rejected.labels(reason="invalid").inc(decoded.rejected)
    rejected, errors = decoded.rejected, list(decoded.errors)
    if decoded.rows:
        try:
            result = await writer.submit(decoded.rows)
        except WriterQueueFull:
            metrics.spans_refused.labels(reason="queue_full").inc(len(decoded.rows))
            raise
        except WriterUnavailable:
            metrics.spans_refused.labels(reason="unavailable").inc(len(decoded.rows))
            raise
        rejected += result.rejected
        errors += result.errors
    response = ExportTraceServiceResponse()
    if rejected:
        response.partial_success.CopyFrom(
            ExportTracePartialSuccess(rejected_spans=rejected, error_message="; ".join(errors))
        )
    return response
