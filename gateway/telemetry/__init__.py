"""Telemetry out of the store: stored runs exported as OpenTelemetry spans."""

from gateway.telemetry.export import (
    EXPORT_CURSOR,
    OtlpExportFailed,
    OtlpExportTask,
    export_finished_runs,
)
from gateway.telemetry.otlp import Hop, ResourceCatalog, RunRecord, spans_for

__all__ = [
    "EXPORT_CURSOR",
    "Hop",
    "OtlpExportFailed",
    "OtlpExportTask",
    "ResourceCatalog",
    "RunRecord",
    "export_finished_runs",
    "spans_for",
]
