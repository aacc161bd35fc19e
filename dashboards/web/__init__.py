"""The built-in web dashboard: `router` serves it at `/` (see `routes` and `migrations`)."""

# `routes` first: `migrations` imports the API's migration routes, whose package
# imports this one back for `router`, so `router` must already be bound.
from dashboards.web.routes import router

# isort: split
from dashboards.web import migrations

router.include_router(migrations.router)

__all__ = ["router"]
