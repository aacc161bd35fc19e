"""Plain cron hosts: the `switchyard-cron` wrapper, Healthchecks-style pings, crontab sync.

`create` imports the gateway-side adapter lazily: `adapters.cron.wrapper`,
`crontab` and `control` run on hosts with the standard library only, and
importing them must not pull pydantic or FastAPI in through this package.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from adapters.cron.adapter import CronAdapter
    from gateway.contract import SourceConfig


def create(config: SourceConfig) -> CronAdapter:
    """The cron adapter for one configured source (entry point `cron`)."""
    from adapters.cron.adapter import CronAdapter

    return CronAdapter(config)


def check_options(config: SourceConfig) -> None:
    """`SourceError` naming the option if the source's options are wrong (`config check`).

    Making the adapter reads and checks every option and touches nothing.
    """
    create(config)


__all__ = ["check_options", "create"]
