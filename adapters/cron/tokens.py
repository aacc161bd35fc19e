"""Which bearer tokens may use the cron host API, and for which hosts.

A cron source takes `tokens: [{token: ..., hosts: [web-01, web-02]}, ...]`:
each token may report runs and crontab lines, and read pause instructions,
only for the hosts it names, so one compromised host cannot rewrite another
host's jobs (a job's command is what a wrap later runs). The older single
`token` still works and may report for any host; it is kept for existing
set-ups, and `tokens` is the recommendation.

`HostTokens.grant(presented)` compares the presented token with every
configured one in constant time and returns the `HostGrant` it matches, or
None. `host_of_key` reads the host out of the job keys and run ids that name
one (`<host>/<user>/<hash>` lines, `cronlog/<host>/…` runs), so a token cannot
slip another host's key in under its own host name.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# `crontab.job_key`: host/user/<12 hex of the command>[#n]; cron log runs: cronlog/<host>/...
HOST_KEY = re.compile(r"^([^/]+)/[^/]+/[0-9a-f]{12}(?:#\d+)?$")
_CRONLOG_RUN = re.compile(r"^cronlog/([^/]+)/")


class TokenConfigError(ValueError):
    """`options.token` / `options.tokens` is malformed; the message starts with the option path."""


@dataclass(frozen=True)
class HostGrant:
    """What one token may do: report for `hosts` (None: any host, the single `token`)."""

    hosts: frozenset[str] | None

    def allows(self, host: str) -> bool:
        return self.hosts is None or host in self.hosts

    def refused(self, hosts: set[str]) -> list[str]:
        """The hosts of `hosts` this grant may not report for, sorted."""
        return sorted(h for h in hosts if not self.allows(h))


@dataclass(frozen=True)
class HostTokens:
    entries: tuple[tuple[bytes, HostGrant], ...]

    @property
    def configured(self) -> bool:
        return bool(self.entries)

    def grant(self, presented: str) -> HostGrant | None:
        candidate = presented.encode("utf-8", "surrogatepass")
        found = None
        for token, grant in self.entries:  # every entry compared: no early exit to time
            if hmac.compare_digest(candidate, token) and found is None:
                found = grant
        return found


def _text(value: Any, path: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise TokenConfigError(f"{path}: must be a non-empty string")
    return value


def parse_tokens(options: Mapping[str, Any]) -> HostTokens:
    """The tokens of a cron source's options; `TokenConfigError` names the bad key."""
    entries: list[tuple[bytes, HostGrant]] = []
    if options.get("token") is not None:
        entries.append((_text(options["token"], "options.token").encode(), HostGrant(None)))
    raw = options.get("tokens")
    if raw is not None:
        if not isinstance(raw, list) or not raw:
            raise TokenConfigError("options.tokens: must be a non-empty list of {token, hosts}")
        for i, item in enumerate(raw):
            path = f"options.tokens[{i}]"
            if not isinstance(item, Mapping):
                raise TokenConfigError(f"{path}: must be a mapping {{token, hosts}}")
            unknown = sorted(set(item) - {"token", "hosts"})
            if unknown:
                raise TokenConfigError(f"{path}: unknown key(s) {', '.join(unknown)}")
            token = _text(item.get("token"), f"{path}.token").encode()
            hosts = item.get("hosts")
            if not isinstance(hosts, list) or not hosts:
                raise TokenConfigError(f"{path}.hosts: must be a non-empty list of host names")
            names = [_text(h, f"{path}.hosts[{j}]") for j, h in enumerate(hosts)]
            if any(token == known for known, _ in entries):
                raise TokenConfigError(f"{path}.token: the same token is configured twice")
            entries.append((token, HostGrant(frozenset(names))))
    return HostTokens(tuple(entries))


def host_of_key(key: str) -> str | None:
    """The host a job key or run id names, if it names one."""
    m = HOST_KEY.match(key) or _CRONLOG_RUN.match(key)
    return m.group(1) if m else None


__all__ = [
    "HOST_KEY",
    "HostGrant",
    "HostTokens",
    "TokenConfigError",
    "host_of_key",
    "parse_tokens",
]
