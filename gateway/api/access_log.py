"""What the gateway logs about requests, without the secrets some URLs carry.

A Healthchecks-style ping URL is its own credential: `/ping/<uuid>` (the
check's uuid) or `/ping/<ping_key>/<slug>` (the source's key). Whoever reads
the access log must not be able to ping — or, with a ping key, create checks
— so the segment after `/ping/` is logged as its first four characters and
`…` (`/ping/6f1c…/start`), enough to tell checks apart. `MaskPingSecrets` does
it to uvicorn's access log records (installed by `access_log_config`, the
logging config `gateway.server` hands uvicorn); `mask_ping_path` does it to
any other log line that names a request path.
"""

from __future__ import annotations

import copy
import logging
import re
from typing import Any

from uvicorn.config import LOGGING_CONFIG

_PING_SECRET = re.compile(r"(/ping/)([^/?#]{0,4})[^/?#]*")
SHOWN_CHARS = 4


def mask_ping_path(path: str) -> str:
    """`/ping/6f1c2a…-uuid/start?rid=x` → `/ping/6f1c…/start?rid=x`; other paths unchanged."""
    if "/ping/" not in path:
        return path
    return _PING_SECRET.sub(lambda m: f"{m.group(1)}{m.group(2)}…", path, count=1)


class MaskPingSecrets(logging.Filter):
    """Masks the path of uvicorn access records: (client, method, path, version, status)."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) == 5 and isinstance(args[2], str):
            record.args = (args[0], args[1], mask_ping_path(args[2]), args[3], args[4])
        return True


def access_log_config() -> dict[str, Any]:
    """uvicorn's default logging config with `MaskPingSecrets` on the access logger."""
    config = copy.deepcopy(LOGGING_CONFIG)
    config.setdefault("filters", {})["mask_ping_secrets"] = {"()": MaskPingSecrets}
    config["loggers"]["uvicorn.access"]["filters"] = ["mask_ping_secrets"]
    return config


__all__ = ["MaskPingSecrets", "access_log_config", "mask_ping_path"]
