"""The REST API: `create_app` builds it; `routes/` holds one module per resource."""

from gateway.api.app import create_app

__all__ = ["create_app"]
