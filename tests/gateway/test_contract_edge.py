"""The contract's edge: what text, numbers, times and links a source may report.

Names, keys, hosts, users and ids are one line of printable text; free text
may span lines but holds no NUL; JSON values hold finite numbers only; a
timestamp must convert to UTC; a `url` is an absolute http(s) URL. Each
refusal names the field, so the API can answer 422 naming it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from gateway.contract import (
    ErrorInfo,
    JobSpec,
    Ref,
    RunEvent,
    State,
    TaskSpec,
    as_one_line,
    ascii_number,
    loggable,
    read_json,
    secrets_match,
)

NOW = datetime(2026, 11, 25, 23, 12, 6, tzinfo=UTC)
# C0 (NUL, newline, CR, ESC), DEL, C1 (NEL, CSI) and a lone surrogate.
CONTROLS = ["\x00", "\n", "\r", "\x1b", "\x7f", "\x85", "\x9b", "\ud800"]


def run_event(**fields: Any) -> RunEvent:
    base: dict[str, Any] = {"source": "s", "key": "k", "state": State.running, "observed_at": NOW}
    return RunEvent(**{**base, **fields})


def job_spec(**fields: Any) -> JobSpec:
    return JobSpec(**{"source": "s", "key": "k", "kind": "job", **fields})


def refused_field(exc: ValidationError) -> tuple[Any, ...]:
    return tuple(exc.errors()[0]["loc"])


@pytest.mark.parametrize("char", CONTROLS, ids=[f"U+{ord(c):04X}" for c in CONTROLS])
@pytest.mark.parametrize("field", ["source", "key", "parent_key", "root_key", "job", "name"])
def test_run_event_names_with_a_control_character_are_refused_naming_the_field(
    field: str, char: str
) -> None:
    with pytest.raises(ValidationError) as exc:
        run_event(**{field: f"orders{char}finally: evil"})
    assert refused_field(exc.value) == (field,)
    if char != "\ud800":  # pydantic refuses a lone surrogate itself in some fields
        assert "one line of printable text" in str(exc.value)


@pytest.mark.parametrize(
    ("fields", "loc"),
    [
        ({"key": "a\nb"}, ("key",)),
        ({"name": "a\x00"}, ("name",)),
        ({"owner": "ops\r\nX-Evil: 1"}, ("owner",)),
        ({"labels": {"host": "web-1\n"}}, ("labels", "host")),
        ({"labels": {"ho\x00st": "web-1"}}, ("labels", "ho\x00st", "[key]")),
        ({"schedule": "* * * * *\n- evil"}, ("schedule",)),
        ({"timezone": "UTC\x00"}, ("timezone",)),
        ({"tasks": [{"id": "t\n", "type": "Bash"}]}, ("tasks", 0, "id")),
        ({"edges": [("a", "b\x85")]}, ("edges", 0, 1)),
    ],
)
def test_job_spec_keys_names_owners_labels_and_task_ids_are_one_line(
    fields: dict[str, Any], loc: tuple[Any, ...]
) -> None:
    with pytest.raises(ValidationError) as exc:
        job_spec(**fields)
    assert refused_field(exc.value) == loc


def test_refs_and_error_kinds_are_one_line() -> None:
    with pytest.raises(ValidationError):
        Ref(namespace="cron.rid", value="r1\nr2")
    with pytest.raises(ValidationError):
        ErrorInfo(kind="exit\ncode")


def test_free_text_keeps_newlines_and_tabs_but_never_nul() -> None:
    message = "Traceback (most recent call last):\n\tFile x\n\x1b[31mred\x1b[0m"
    assert run_event(error=ErrorInfo(kind="failed", message=message)).error is not None
    assert job_spec(source_text="0 * * * * backup.sh\n").source_text is not None
    with pytest.raises(ValidationError) as exc:
        run_event(error=ErrorInfo(kind="failed", message="boom\x00"))
    assert "NUL" in str(exc.value)
    with pytest.raises(ValidationError) as exc:
        job_spec(source_text="x\x00y")
    assert refused_field(exc.value) == ("source_text",)


@pytest.mark.parametrize(
    "attributes",
    [
        {"x": float("nan")},
        {"x": float("inf")},
        {"nested": {"deeper": [1, {"y": float("-inf")}]}},
        {"x": "NUL\x00inside"},
        {"ke\x00y": 1},
    ],
    ids=["nan", "inf", "nested -inf", "nul in a value", "nul in a key"],
)
def test_attributes_hold_finite_numbers_and_text_without_nul(attributes: dict[str, Any]) -> None:
    with pytest.raises(ValidationError) as exc:
        run_event(attributes=attributes)
    assert refused_field(exc.value) == ("attributes",)


def test_the_attribute_refusal_names_the_path_inside_the_attributes() -> None:
    with pytest.raises(ValidationError) as exc:
        run_event(attributes={"k8s": {"pods": [{"cpu": 1.0}, {"cpu": float("nan")}]}})
    assert "k8s.pods[1].cpu: nan is not a finite number" in str(exc.value)


def test_job_spec_numbers_and_json_values_are_finite() -> None:
    with pytest.raises(ValidationError) as exc:
        job_spec(grace_s=float("nan"))
    assert refused_field(exc.value) == ("grace_s",)
    with pytest.raises(ValidationError) as exc:
        job_spec(definition={"limits": {"cpu": float("inf")}})
    assert refused_field(exc.value) == ("definition",)
    with pytest.raises(ValidationError) as exc:
        TaskSpec(id="t", type="Bash", arguments={"retry_delay": float("nan")})
    assert refused_field(exc.value) == ("arguments",)


@pytest.mark.parametrize(
    "url",
    [
        "javascript:alert(document.cookie)",
        "JaVaScRiPt:alert(1)",
        " javascript:alert(1)",
        "data:text/html,<script>alert(1)</script>",
        "file:///etc/passwd",
        "ftp://example.com/x",
        "//evil.example/path",
        "/relative/path",
        "http://",
        "http://[::1",
        "https://example.com/\nSet-Cookie: x",
    ],
)
def test_url_fields_accept_only_absolute_http_and_https(url: str) -> None:
    with pytest.raises(ValidationError) as exc:
        run_event(url=url)
    assert refused_field(exc.value) == ("url",)
    with pytest.raises(ValidationError) as exc:
        job_spec(url=url)
    assert refused_field(exc.value) == ("url",)


def test_http_and_https_urls_are_kept_as_given() -> None:
    for url in ("http://airflow.internal:8080/dags/x", "HTTPS://console.aws.amazon.com/?a=b#c"):
        assert run_event(url=url).url == url
        assert job_spec(url=url).url == url


@pytest.mark.parametrize(
    "stamp", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00"], ids=["min", "max"]
)
@pytest.mark.parametrize("field", ["observed_at", "started_at", "ended_at", "nominal_time"])
def test_timestamps_that_overflow_when_converted_to_utc_are_refused(field: str, stamp: str) -> None:
    with pytest.raises(ValidationError) as exc:
        run_event(**{field: stamp})
    assert refused_field(exc.value) == (field,)
    assert "outside the years 1 to 9999" in str(exc.value)


def test_exit_codes_fit_the_column_they_are_stored_in() -> None:
    assert ErrorInfo(kind="exit_code", exit_code=-(2**31)).exit_code == -(2**31)
    with pytest.raises(ValidationError):
        ErrorInfo(kind="exit_code", exit_code=10**30)


def test_as_one_line_and_loggable_clean_text_rather_than_refuse_it() -> None:
    assert as_one_line("sh -c 'a\n  b'\x00") == "sh -c 'a b'"
    assert loggable("out\x00put\ud800") == "out\ufffdput\ufffd"
    assert loggable("plain\ntext") == "plain\ntext"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        *[("0", 0), ("255", 255), ("256", None), ("²", None), ("\u0661\u0662", None)],
        *[("9" * 5000, None), ("-1", None), ("", None), (" 1", None)],
    ],
)
def test_ascii_number_reads_only_ascii_digits_within_the_bound(
    text: str, expected: int | None
) -> None:
    assert ascii_number(text, most=255) == expected


def test_secrets_match_compares_any_text_without_raising() -> None:
    assert secrets_match("swy_é", "swy_é")
    assert not secrets_match("é", "e")
    assert not secrets_match("\ud800", "x")


@pytest.mark.parametrize("body", [b"NaN", b'{"x": Infinity}', b"[-Infinity]", b'{"x": 1e999}'])
def test_read_json_refuses_numbers_json_does_not_have(body: bytes) -> None:
    with pytest.raises(ValueError, match=r"finite|too large"):
        read_json(body)
    assert read_json(b'{"x": 1.5e3}') == {"x": 1500.0}
