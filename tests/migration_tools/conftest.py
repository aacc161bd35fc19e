"""Fixtures: a controllable clock and Kestra emulators checked against the OpenAPI document."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
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


@contextmanager
def checked_kestra(clock: ManualClock, version: str = "1") -> Iterator[KestraEmulator]:
    """An emulator of Kestra `version` whose every request and response, at the
    end, must match the OpenAPI document (a missing document is an error)."""
    load_spec()
    with KestraEmulator(clock=clock, version=version) as emulator:
        yield emulator
        problems = [p for ex in emulator.exchanges for p in check_exchange(ex)]
        assert problems == [], "exchanges depart from the Kestra OpenAPI document"


@pytest.fixture
def kestra(clock: ManualClock) -> Iterator[KestraEmulator]:
    """A Kestra 1.x emulator checked against the OpenAPI document."""
    with checked_kestra(clock, "1") as emulator:
        yield emulator


@pytest.fixture
def kestra2(clock: ManualClock) -> Iterator[KestraEmulator]:
    """A Kestra 2.0 emulator checked against the OpenAPI document."""
    with checked_kestra(clock, "2") as emulator:
        yield emulator
