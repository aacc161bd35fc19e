"""Fixtures: a controllable clock and a Kestra emulator checked against the OpenAPI document."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from emulators.kestra import KestraEmulator
from tests.migration_tools.openapi_check import check_exchange, load_spec


class ManualClock:
    def __init__(self, start: datetime = datetime(2026, 3, 1, 2, 0, tzinfo=UTC)) -> None:
        self._now = start
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def kestra(clock: ManualClock) -> Iterator[KestraEmulator]:
    """The emulator; at teardown every request and response must match the document."""
    load_spec()  # a missing document is an error here, never a skip
    with KestraEmulator(clock=clock) as emulator:
        yield emulator
        problems = [p for ex in emulator.exchanges for p in check_exchange(ex)]
        assert problems == [], "exchanges depart from the Kestra OpenAPI document"
