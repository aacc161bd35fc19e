"""OpenLineage source: push-only ingestion of OpenLineage RunEvents from any producer."""

from adapters.openlineage.source import OpenLineageSource, create

__all__ = ["OpenLineageSource", "create"]
