"""The cron source: a push-only adapter with ping routes and crontab control.

Cron hosts push everything (wrapper reports, pings, `sync`), so `poll` has
nothing to read and `discover` returns only the ping checks registered in the
source's options. `pause(job)`/`resume(job)` write the desired state of a
crontab line to a small JSON file; hosts pull it with `switchyard-cron sync`
(`GET /api/v1/cron/instructions`) and comment out or restore the line.

`pause` returns a receipt `{"was_paused": bool}`: a line already paused
(desired state paused, or — with no desired state recorded — reported paused
by the host's last sync, e.g. a `# switchyard:paused` line or a line deleted
since) is left as it is. `resume(job, receipt)` restores the line only when
the receipt says Switchyard paused it; `resume(job)` without a receipt
restores it unconditionally. A line its owner commented out by hand is no
schedule line at all: neither call ever touches it.

Options (`sources[].options` in switchyard.yaml):

- `tokens`: `[{token, hosts: [web-01, ...]}]`, the bearer tokens hosts use
  for `/api/v1/cron/*`, each allowed to report (runs, crontab lines) and read
  instructions only for the hosts it names (`adapters.cron.tokens`); a report
  for another host is 403. Recommended over
- `token`: one bearer token for every host (kept for existing set-ups);
  without either option the host API answers 403;
- `checks`: `{<uuid>: {name, slug, job, schedule, timezone, grace_s,
  max_duration_s, min_duration_s}}`: the registered checks. A ping to any other
  uuid answers 404 "not found" like Healthchecks, unless `auto_provision`;
- `auto_provision` (default false): a ping to an unknown well-formed uuid
  creates its check (job `ping/<uuid>`) instead of a 404;
- `provision_per_minute` (default 10) and `provision_burst` (default 20): a
  token bucket per source on creating checks (auto-provisioned uuids and
  `?create=1` slugs); beyond it a ping that would create one is 429 with
  `Retry-After`. A check a ping created is *provisional* (`PROVISIONAL`: its
  failures open no incident and send no alert) until an operator adopts it by
  listing it under `checks` (a slug check: with `slug` and `job: ping/slug/<slug>`);
- `control_file`: where pause/resume desired state lives (default
  `./switchyard-cron-control-<source>.json`; on several replicas put it on
  shared storage);
- `ping_key`: enables `/ping/<ping_key>/<slug>` URLs; a slug is a registered
  check's `slug`, or is created by its first ping with `?create=1`;
- `ping_body_limit`: bytes of a ping body kept (default 100000).
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from adapters.cron.normalize import CheckConfig, check_job
from adapters.cron.tokens import HOST_KEY, TokenConfigError, parse_tokens
from gateway.contract import (
    ControlReceipt,
    EventSink,
    JobSpec,
    PollResult,
    SourceConfig,
    SourceError,
)

if TYPE_CHECKING:
    from fastapi import APIRouter

DEFAULT_PING_BODY_LIMIT = 100_000
DEFAULT_PROVISION_PER_MINUTE = 10.0
DEFAULT_PROVISION_BURST = 20.0


class ControlState:
    """Desired paused/active state per job key, in one JSON file written atomically.

    Beside the desired state (`jobs`) it keeps what hosts last reported
    (`reported`: key -> paused), so a pause knows whether a line was already
    paused before Switchyard touched it.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._lock = threading.Lock()

    def _load(self) -> dict[str, Any]:
        try:
            with open(self.path, encoding="utf-8") as f:
                doc: dict[str, Any] = json.load(f)
        except FileNotFoundError:
            doc = {}
        doc.setdefault("jobs", {})
        doc.setdefault("reported", {})
        return doc

    def _write(self, doc: dict[str, Any]) -> None:
        tmp = f"{self.path}.tmp"
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(doc, f, indent=1, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)

    def read(self) -> dict[str, bool]:
        return {str(k): bool(v["paused"]) for k, v in self._load()["jobs"].items()}

    def _put(self, doc: dict[str, Any], job_key: str, paused: bool) -> None:
        doc["jobs"][job_key] = {"paused": paused, "at": datetime.now(UTC).isoformat()}

    def set(self, job_key: str, paused: bool) -> None:
        with self._lock:
            doc = self._load()
            self._put(doc, job_key, paused)
            self._write(doc)

    def pause(self, job_key: str) -> ControlReceipt:
        """Pause the line unless it already is; the receipt says which."""
        with self._lock:
            doc = self._load()
            desired = doc["jobs"].get(job_key)
            if desired is not None:
                was_paused = bool(desired["paused"])
            else:
                was_paused = bool(doc["reported"].get(job_key, False))
            if not was_paused:
                self._put(doc, job_key, True)
                self._write(doc)
            return {"was_paused": was_paused}

    def observe(self, reported: dict[str, bool]) -> None:
        """Record the paused state a host's sync reported for its lines."""
        with self._lock:
            doc = self._load()
            if all(doc["reported"].get(k) == v for k, v in reported.items()):
                return  # nothing new: no write per sync
            doc["reported"].update(reported)
            self._write(doc)

    def instructions(self, host: str | None) -> dict[str, list[str]]:
        """Keys to pause and to restore; keys naming another host are left out."""
        pause: list[str] = []
        resume: list[str] = []
        for key, paused in sorted(self.read().items()):
            m = HOST_KEY.match(key)
            if host and m and m.group(1) != host:
                continue
            (pause if paused else resume).append(key)
        return {"pause": pause, "resume": resume}


def _positive(source: str, name: str, value: Any, default: float) -> float:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise SourceError(source, f"options.{name} must be a positive number", retryable=False)
    return float(value)


class CronAdapter:
    """A configured cron source (see the module docstring for its options)."""

    kind = "cron"

    def __init__(self, config: SourceConfig) -> None:
        self.name = config.name
        opts = dict(config.options)
        try:
            self.tokens = parse_tokens(opts)
        except TokenConfigError as exc:
            raise SourceError(self.name, str(exc), retryable=False) from exc
        opts.pop("token", None)
        opts.pop("tokens", None)
        raw_checks = opts.pop("checks", None)
        self.auto_provision = opts.pop("auto_provision", False)
        if not isinstance(self.auto_provision, bool):
            raise SourceError(
                self.name, "options.auto_provision must be true or false", retryable=False
            )
        self.provision_per_minute = _positive(
            self.name,
            "provision_per_minute",
            opts.pop("provision_per_minute", None),
            DEFAULT_PROVISION_PER_MINUTE,
        )
        self.provision_burst = _positive(
            self.name, "provision_burst", opts.pop("provision_burst", None), DEFAULT_PROVISION_BURST
        )
        try:
            self.checks = {
                str(uuid).lower(): CheckConfig.model_validate(c or {})
                for uuid, c in (raw_checks or {}).items()
            }
        except ValidationError as exc:
            raise SourceError(self.name, f"options.checks: {exc}", retryable=False) from exc
        self.ping_body_limit = int(opts.pop("ping_body_limit", DEFAULT_PING_BODY_LIMIT))
        self.ping_key: str | None = opts.pop("ping_key", None)
        self.slugs: dict[str, list[str]] = {}
        for uuid, check in self.checks.items():
            if check.slug:
                self.slugs.setdefault(check.slug, []).append(uuid)
        control_file = opts.pop("control_file", f"switchyard-cron-control-{self.name}.json")
        if opts:
            raise SourceError(
                self.name, f"unknown option(s): {', '.join(sorted(opts))}", retryable=False
            )
        self.control = ControlState(str(control_file))
        self._closers: list[Callable[[], None]] = []
        try:
            self._check_jobs = [check_job(self.name, u, c) for u, c in self.checks.items()]
        except ValueError as exc:
            raise SourceError(self.name, f"options.{exc}", retryable=False) from exc

    def discover(self) -> list[JobSpec]:
        return list(self._check_jobs)

    def poll(self, cursor: str | None) -> PollResult:
        # Hosts push; there is nothing to read. The cursor is kept as it was.
        return PollResult(events=[], cursor=cursor)

    def routes(self, sink: EventSink) -> APIRouter:
        from adapters.cron.pings import cron_router

        return cron_router(self, sink)

    def on_close(self, closer: Callable[[], None]) -> None:
        """Run `closer` when the gateway closes this adapter (the routes' threads)."""
        self._closers.append(closer)

    def close(self) -> None:
        while self._closers:
            self._closers.pop()()

    def pause(self, job_key: str) -> ControlReceipt:
        return self.control.pause(job_key)

    def resume(self, job_key: str, receipt: ControlReceipt | None = None) -> None:
        if receipt is not None:
            was = receipt.get("was_paused") if isinstance(receipt, dict) else None
            if not isinstance(was, bool):
                raise SourceError(
                    self.name,
                    f"resume receipt for {job_key}: 'was_paused' must be true or false; "
                    "nothing was changed",
                    retryable=False,
                )
            if was:
                return  # paused before Switchyard's pause: not ours to restore
        self.control.set(job_key, False)
