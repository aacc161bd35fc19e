"""A poller stand-in: applies a deterministic synthetic source, batch by batch.

`python -m tests.gateway.crash.writer URL SOURCE TOTAL BATCH` resumes from the
stored cursor and applies events [cursor, cursor + BATCH) with the new cursor
in one `apply_batch`, until TOTAL events are in. The crash test kills it with
SIGKILL at random moments and checks what survived.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta

from gateway.contract import Ref, RunEvent, State
from gateway.ingest import apply_batch, read_cursor
from gateway.store.db import make_engine

T0 = datetime(2026, 11, 25, tzinfo=UTC)
EVENTS_PER_RUN = 3
_STATES = (State.queued, State.running, State.succeeded)


def synthetic_event(source: str, i: int) -> RunEvent:
    """Event number `i` of the source: run i // 3 goes queued → running → succeeded."""
    run = i // EVENTS_PER_RUN
    return RunEvent(
        source=source,
        key=f"job-{run % 17}/run-{run}",
        job=f"job-{run % 17}",
        state=_STATES[i % EVENTS_PER_RUN],
        observed_at=T0 + timedelta(seconds=i),
        started_at=T0 + timedelta(seconds=run * EVENTS_PER_RUN + 1),
        ended_at=T0 + timedelta(seconds=i) if i % EVENTS_PER_RUN == 2 else None,
        attributes={"seq": i},
        refs=[Ref(namespace="cron.rid", value=f"{source}-{run}")],
    )


def main(argv: list[str]) -> int:
    url, source, total, batch = argv[0], argv[1], int(argv[2]), int(argv[3])
    engine = make_engine(url)
    position = int(read_cursor(engine, source) or 0)
    while position < total:
        end = min(position + batch, total)
        events = [synthetic_event(source, i) for i in range(position, end)]
        apply_batch(engine, source, events, cursor=str(end))
        position = end
    engine.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
