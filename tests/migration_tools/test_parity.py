"""Pure run pairing: nearest partner within the tolerance, misses count against parity."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from migration_tools.parity import RunSample, pair_runs

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def s(key: str, minutes: float, state: str = "succeeded", dur: float = 60) -> RunSample:
    at = T0 + timedelta(minutes=minutes)
    return RunSample(key, state, at, at, at + timedelta(seconds=dur))


def test_runs_pair_by_nearest_time_and_misses_lower_parity() -> None:
    legacy = [s("l0", 0), s("l1", 60), s("l2", 120, "failed"), s("l3", 180)]
    native = [s("n0", 1, dur=90), s("n2", 121, "failed"), s("n3a", 178), s("n3b", 181)]
    report = pair_runs(legacy, native, tolerance_s=300)
    verdicts = [
        (p.legacy and p.legacy.key, p.native and p.native.key, p.verdict) for p in report.pairs
    ]
    assert verdicts == [
        ("l0", "n0", "agree"),
        ("l1", None, "native_missed"),
        ("l2", "n2", "agree"),
        (None, "n3a", "legacy_missed"),
        ("l3", "n3b", "agree"),
    ]
    assert report.parity == 3 / 5
    assert report.duration_ratio_p50 == 1.0


def test_running_pairs_wait_and_outcome_classes_compare() -> None:
    report = pair_runs(
        [s("l0", 0, "cancelled"), s("l1", 60, "running")],
        [s("n0", 0, "failed"), s("n1", 60)],
        tolerance_s=60,
    )
    assert report.counts == {"agree": 1, "pending": 1}
    assert report.parity == 1.0 and report.compared == 1
