"""Failure evidence: the last meaningful error line of a task log."""

from __future__ import annotations

import json

from adapters.airflow.logs import LogTail, error_from_log, records_from_lines


def test_airflow3_structured_exception_wins_over_later_noise() -> None:
    lines = [
        json.dumps({"event": "starting", "level": "info"}),
        json.dumps(
            {
                "event": "Task failed with exception",
                "level": "error",
                "error_detail": [
                    {"exc_type": "KeyError", "exc_value": "'id'", "is_cause": True},
                    {"exc_type": "ValueError", "exc_value": "bad rows", "is_cause": False},
                ],
            }
        ),
        json.dumps({"event": "::endgroup::", "level": "info"}),
    ]
    error = error_from_log(records_from_lines(lines))
    assert error is not None
    assert (error.kind, error.message) == ("ValueError", "ValueError: bad rows")


def test_airflow2_text_log_yields_the_traceback_last_line() -> None:
    text = """[2026-01-01, 00:00:01 UTC] {taskinstance.py:3311} ERROR - Task failed with exception
Traceback (most recent call last):
  File "/opt/dags/etl.py", line 9, in _explode
    raise ValueError("switchyard-marker: 0 rows")
ValueError: switchyard-marker: 0 rows
[2026-01-01, 00:00:01 UTC] {taskinstance.py:1225} INFO - Marking task as FAILED."""
    error = error_from_log(records_from_lines(text.splitlines()))
    assert error is not None
    assert error.message == "ValueError: switchyard-marker: 0 rows"


def test_error_level_line_is_the_fallback_and_clean_logs_give_none() -> None:
    error = error_from_log(["[x] {pod.py:1} ERROR - Pod returned a failure: OOMKilled"])
    assert error is not None and error.message is not None and "OOMKilled" in error.message
    assert error_from_log([json.dumps({"event": "done", "level": "info"})]) is None


def test_log_tail_keeps_only_the_last_bytes() -> None:
    tail = LogTail(budget=100)
    for i in range(1000):
        tail.feed(f"line {i}\n")
    lines = tail.lines()
    assert lines[-1] == "line 999"
    assert sum(len(x) + 1 for x in lines) <= 100
