"""The Kestra API client the migration tools use: the Kestra adapter's own.

One client per system: the adapter (`adapters/kestra/client.py`, built on the
official `kestrapy` SDK) owns it, and the migration tools reach it here, as
DESIGN.md allows them to reach adapters.
"""

from adapters.kestra.client import FlowValidation, KestraApi, KestraApiError, plain

__all__ = ["FlowValidation", "KestraApi", "KestraApiError", "plain"]
