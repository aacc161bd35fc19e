"""The gateway's background work: pollers under leases, source status, retention."""

from gateway.runtime.poller import poll_once
from gateway.runtime.replica import Runtime
from gateway.runtime.retention import prune
from gateway.runtime.status import SourceStatus, source_statuses

__all__ = ["Runtime", "SourceStatus", "poll_once", "prune", "source_statuses"]
