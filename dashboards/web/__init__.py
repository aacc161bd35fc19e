"""The built-in web dashboard: `router` serves it at `/` (see `routes`)."""

from dashboards.web.routes import router

__all__ = ["router"]
