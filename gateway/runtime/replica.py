"""One gateway replica's background work: pollers, leases and housekeeping.

`Runtime(config, engine)` starts, on `start()`:

- one `LeaseKeeper` thread holding, for this replica, as many of the leases
  `<source name>` (one per enabled source) and `:housekeeping` as it can get;
- one `SourcePoller` thread per enabled source, polling only while its lease
  is held;
- one `Housekeeper` thread (retention, expectations) under `:housekeeping`.

Several replicas on one PostgreSQL therefore poll each source exactly once
between them; when one dies its leases expire after `config.lease_ttl` and
the others take them over within about `lease_ttl x 4/3`.

**Fencing.** Two layers. The `LeaseKeeper` renews every `ttl/3` and trusts
a lease only until `ttl x 0.8` after the start of its last successful renewal
(monotonic clock); a poller polls only while its lease is trusted, so a
replica cut off from the database stops polling on its own. And the batch
itself is fenced: the ingest transaction first checks the lease row (locking
it on PostgreSQL) and writes nothing unless this replica still holds it, so a
take-over and a batch commit are strictly ordered — a replica that lost its
lease can never commit a batch or move the cursor backwards. (We check inside
the transaction rather than stopping on a failed renewal alone because a
poll can outlast a renewal interval; `ingest_events` lets the runtime own the
transaction.)

`stop()` is prompt: it wakes every thread, waits for the poll in flight,
releases the leases (so another replica takes over at once, not after the
TTL) and closes the adapters it created.

`poll_now(name)` asks for an immediate cycle of a source this replica holds
(the dashboard's "Re-poll now"); it answers False when another replica holds
the lease, so the caller can say who polls it instead.
"""

from __future__ import annotations

import logging
import os
import random
import socket
import threading
import uuid
from collections.abc import Mapping, Sequence
from types import TracebackType

from sqlalchemy.engine import Engine

from gateway.config import Config
from gateway.contract import Adapter
from gateway.runtime import status
from gateway.runtime.housekeeping import (
    DEFAULT_INTERVAL_S,
    HOUSEKEEPING_LEASE,
    Housekeeper,
    HousekeepingTask,
    default_tasks,
)
from gateway.runtime.leases import LeaseKeeper
from gateway.runtime.poller import SourcePoller

log = logging.getLogger(__name__)


def default_replica_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class UnknownSource(LookupError):
    """`Runtime.poll_now` was given a name that is not an enabled configured source."""

    def __init__(self, source: str) -> None:
        super().__init__(f"no enabled source named {source!r}")
        self.source = source


class Runtime:
    """The background work of one replica. See the module docstring."""

    def __init__(
        self,
        config: Config,
        engine: Engine,
        *,
        replica_id: str | None = None,
        adapters: Mapping[str, Adapter] | None = None,
        housekeeping: Sequence[HousekeepingTask] | None = None,
        housekeeping_interval_s: float = DEFAULT_INTERVAL_S,
        rng: random.Random | None = None,
    ) -> None:
        """`adapters` (source name → adapter) replaces the entry-point lookup
        for those sources (tests, embedding); such adapters are not closed by
        `stop()`. `housekeeping=[]` runs no housekeeping (and takes no lease).
        """
        self.config = config
        self.engine = engine
        self.replica_id = replica_id or default_replica_id()
        given = dict(adapters or {})
        unknown = set(given) - {s.name for s in config.sources}
        if unknown:
            raise ValueError(f"adapters given for unconfigured sources: {sorted(unknown)}")
        self._stopping = threading.Event()
        self._started = False
        self.tasks = list(default_tasks(config) if housekeeping is None else housekeeping)
        enabled = [s for s in config.sources if s.enabled]
        names = [s.name for s in enabled]
        if self.tasks:
            names.append(HOUSEKEEPING_LEASE)
        self.keeper = LeaseKeeper(
            engine, self.replica_id, config.lease_ttl, names, on_change=self._lease_changed
        )
        self.pollers: dict[str, SourcePoller] = {
            s.name: SourcePoller(
                engine=engine,
                config=config,
                entry=s,
                keeper=self.keeper,
                stopping=self._stopping,
                adapter=given.get(s.name),
                rng=rng,
            )
            for s in enabled
        }
        self.housekeeper: Housekeeper | None = (
            Housekeeper(
                engine=engine,
                config=config,
                keeper=self.keeper,
                stopping=self._stopping,
                tasks=self.tasks,
                interval_s=housekeeping_interval_s,
            )
            if self.tasks
            else None
        )

    def _lease_changed(self, name: str, held: bool) -> None:
        poller = self.pollers.get(name)
        if poller is not None:
            poller.wake.set()
        elif name == HOUSEKEEPING_LEASE and self.housekeeper is not None:
            self.housekeeper.wake.set()

    def held(self) -> list[str]:
        """Lease names this replica holds right now."""
        return self.keeper.held()

    def poll_now(self, source_name: str) -> bool:
        """Have this replica poll `source_name` at once; whether it will.

        True: this replica holds the source's lease, and its poller starts a
        cycle as soon as it is free (without waiting for the interval or a
        failure backoff). False: it will not — another replica holds the
        lease (and polls on its own schedule), or this runtime is not
        running. Raises `UnknownSource` for a name that is not an enabled
        configured source.
        """
        poller = self.pollers.get(source_name)
        if poller is None:
            raise UnknownSource(source_name)
        if not self._started or self._stopping.is_set() or not self.keeper.holds(source_name):
            return False
        poller.request_poll()
        return True

    def start(self) -> Runtime:
        if self._started:
            raise RuntimeError("Runtime already started")
        self._started = True
        status.register_sources(self.engine, self.config)
        self.keeper.start()
        for poller in self.pollers.values():
            poller.thread.start()
        if self.housekeeper is not None:
            self.housekeeper.thread.start()
        log.info(
            "runtime %s: started (%d sources, holding %s)",
            self.replica_id,
            len(self.pollers),
            ", ".join(self.held()) or "nothing yet",
        )
        return self

    def stop(self, timeout_s: float = 30.0) -> None:
        """Stop every thread, release this replica's leases, close adapters."""
        if not self._started or self._stopping.is_set():
            return
        self._stopping.set()
        threads = [p.thread for p in self.pollers.values()]
        for poller in self.pollers.values():
            poller.wake.set()
        if self.housekeeper is not None:
            self.housekeeper.wake.set()
            threads.append(self.housekeeper.thread)
        for t in threads:
            t.join(timeout_s)
            if t.is_alive():
                log.warning("runtime %s: %s did not stop in time", self.replica_id, t.name)
        self.keeper.stop(release_leases=True)
        for poller in self.pollers.values():
            poller.close()
        log.info("runtime %s: stopped", self.replica_id)

    def __enter__(self) -> Runtime:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
