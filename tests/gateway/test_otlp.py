"""OTLP export: stored runs reach a real OTLP/HTTP receiver as the spans they are.

The receiver is an `http.server` on 127.0.0.1 (port 0) accepting
`POST /v1/traces` protobuf, decoded with the official
`ExportTraceServiceRequest`; the sender is the SDK's `OTLPSpanExporter`. Runs
are stored through `gateway.ingest.apply_batch`, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import gzip
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import sqlalchemy as sa
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode
from sqlalchemy.engine import Engine

from gateway.config import ConfigError, parse_config
from gateway.contract import ErrorInfo, Ref, RunEvent, RunKind, State, span_id_for, trace_id_for
from gateway.ingest import apply_batch
from gateway.links import table
from gateway.runtime.housekeeping import HOUSEKEEPING_LEASE, default_tasks, run_tasks
from gateway.runtime.replica import Runtime
from gateway.telemetry.export import (
    EXPORT_CURSOR,
    ExportPositionMoved,
    OtlpExportFailed,
    OtlpExportTask,
    export_finished_runs,
    read_position,
)
from gateway.telemetry.otlp import RunRecord, caller_and_callee, result_of

T0 = datetime(2026, 11, 25, 23, 0, tzinfo=UTC)
KINDS = {"airflow-prod": "airflow", "k8s-prod": "kubernetes", "lambda-prod": "lambda",
         "cron-hosts": "cron"}  # fmt: skip

DAG_RUN = "orders_etl/scheduled__2026-11-25T23:00:00+00:00"
TASK = f"{DAG_RUN}/transform"
TRY = f"{TASK}/1"
TI_REF = Ref(
    namespace="airflow.ti", value="orders_etl/scheduled__2026-11-25T23:00:00+00:00/transform/-1/1"
)
POD_JOB = "etl/transform-7f9c"


# --- an OTLP/HTTP receiver ----------------------------------------------------


@dataclass
class Receiver:
    """Decodes every `POST /v1/traces`; answers `status` (200 unless told)."""

    server: ThreadingHTTPServer
    requests: list[ExportTraceServiceRequest] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    status: int = 200

    @property
    def endpoint(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}/v1/traces"

    def spans(self) -> list[tuple[dict[str, Any], Span]]:
        """(resource attributes, span) for every span received, in order."""
        out: list[tuple[dict[str, Any], Span]] = []
        for request in self.requests:
            for rs in request.resource_spans:
                resource = attributes(rs.resource.attributes)
                for ss in rs.scope_spans:
                    out.extend((resource, span) for span in ss.spans)
        return out


def _value(v: AnyValue) -> Any:
    kind = v.WhichOneof("value")
    if kind == "array_value":
        return tuple(_value(x) for x in v.array_value.values)
    return getattr(v, kind) if kind else None


def attributes(kvs: Any) -> dict[str, Any]:
    return {kv.key: _value(kv.value) for kv in kvs if isinstance(kv, KeyValue)}


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    holder: dict[str, Receiver] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            if self.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            rec = holder["r"]
            if self.path != "/v1/traces":
                self.send_response(404)
                self.end_headers()
                return
            if rec.status != 200:
                self.send_response(rec.status)
                self.end_headers()
                return
            request = ExportTraceServiceRequest()
            request.ParseFromString(body)
            rec.requests.append(request)
            rec.headers.append(dict(self.headers.items()))
            payload = ExportTraceServiceResponse().SerializeToString()
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    holder["r"] = Receiver(server)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield holder["r"]
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def exporter_for(endpoint: str, **kw: Any) -> OTLPSpanExporter:
    return OTLPSpanExporter(endpoint=endpoint, timeout=1, **kw)


# --- stored runs ----------------------------------------------------------------


def seed(engine: Engine) -> None:
    """An Airflow DAG run whose task launched a pod that was OOMKilled, a Lambda
    invocation, a missed cron run and a cron run still running."""
    at = T0
    airflow = [
        RunEvent(
            source="airflow-prod",
            key=DAG_RUN,
            job="orders_etl",
            name="orders_etl",
            state=State.failed,
            started_at=at,
            ended_at=at + timedelta(minutes=10),
            observed_at=at + timedelta(minutes=10),
            url="https://airflow/dags/orders_etl",
            attributes={"cicd.pipeline.name": "orders_etl"},
        ),
        RunEvent(
            source="airflow-prod",
            kind=RunKind.task,
            key=TASK,
            parent_key=DAG_RUN,
            job="orders_etl",
            name="transform",
            state=State.failed,
            started_at=at + timedelta(seconds=5),
            ended_at=at + timedelta(minutes=9),
            observed_at=at + timedelta(minutes=9),
        ),
        RunEvent(
            source="airflow-prod",
            kind=RunKind.attempt,
            key=TRY,
            parent_key=TASK,
            root_key=DAG_RUN,
            job="orders_etl",
            name="transform",
            attempt=1,
            state=State.failed,
            started_at=at + timedelta(seconds=5),
            ended_at=at + timedelta(minutes=9),
            observed_at=at + timedelta(minutes=9),
            error=ErrorInfo(kind="pod_failed", message="Pod returned a failure"),
            refs=[TI_REF],
        ),
    ]
    k8s = [
        RunEvent(
            source="k8s-prod",
            key=f"jobs/{POD_JOB}",
            job="etl/transform",
            name=POD_JOB,
            state=State.failed,
            started_at=at + timedelta(seconds=8),
            ended_at=at + timedelta(minutes=8),
            observed_at=at + timedelta(minutes=8),
            error=ErrorInfo(kind="OOMKilled", message="container main OOMKilled", exit_code=137),
            attributes={
                "k8s.namespace.name": "etl",
                "k8s.job.name": POD_JOB,
                "k8s.pod.label.dag_id": "orders_etl",
                "k8s.container.status.reason": "OOMKilled",
                "k8s.container.restart_count": 0,
            },
            refs=[TI_REF],
        ),
    ]
    lam = [
        RunEvent(
            source="lambda-prod",
            key="resize/req-1",
            job="resize",
            name="resize",
            state=State.succeeded,
            started_at=at,
            ended_at=at + timedelta(seconds=3),
            observed_at=at + timedelta(seconds=4),
            attributes={
                "faas.invocation_id": "req-1",
                "faas.trigger": "timer",
                "cloud.region": "eu-west-1",
                "faas.coldstart": True,
            },
        ),
    ]
    cron = [
        RunEvent(source="cron-hosts", key="backup@db1/missed", job="backup@db1", name="backup",
                 state=State.missed, nominal_time=at, observed_at=at + timedelta(minutes=10),
                 error=ErrorInfo(kind="missed", message="no start within 10m")),
        RunEvent(source="cron-hosts", key="backup@db1/now", job="backup@db1", name="backup",
                 state=State.running, started_at=at, observed_at=at + timedelta(minutes=1)),
    ]  # fmt: skip
    for source, events in (("airflow-prod", airflow), ("k8s-prod", k8s),
                           ("lambda-prod", lam), ("cron-hosts", cron)):  # fmt: skip
        apply_batch(engine, source, events)


def sid(source: str, key: str) -> bytes:
    return bytes.fromhex(span_id_for(source, key))


def tid(source: str, root: str) -> bytes:
    return bytes.fromhex(trace_id_for(source, root))


# --- the tests --------------------------------------------------------------------


def test_runs_arrive_with_stored_ids_parents_kinds_and_attributes(
    engine: Engine, receiver: Receiver
) -> None:
    seed(engine)
    sent = export_finished_runs(engine, exporter_for(receiver.endpoint), kinds=KINDS)
    assert sent == 6  # everything but the running cron run
    spans = {span.span_id: (res, span) for res, span in receiver.spans()}

    res, dag = spans[sid("airflow-prod", DAG_RUN)]
    assert res["service.name"] == "airflow" and res["switchyard.source"] == "airflow-prod"
    assert dag.trace_id == tid("airflow-prod", DAG_RUN)
    assert dag.parent_span_id == b"" and dag.kind == Span.SPAN_KIND_SERVER
    assert dag.start_time_unix_nano == int(T0.timestamp()) * 10**9
    assert dag.end_time_unix_nano == int((T0 + timedelta(minutes=10)).timestamp()) * 10**9
    a = attributes(dag.attributes)
    assert a["cicd.pipeline.name"] == "orders_etl"
    assert a["cicd.pipeline.run.id"] == DAG_RUN
    assert a["cicd.pipeline.run.url.full"] == "https://airflow/dags/orders_etl"
    assert a["cicd.pipeline.result"] == "failure" and a["error.type"] == "failure"
    assert dag.status.code == Status.STATUS_CODE_ERROR

    _, task = spans[sid("airflow-prod", TASK)]
    _, attempt = spans[sid("airflow-prod", TRY)]
    assert task.parent_span_id == dag.span_id and task.kind == Span.SPAN_KIND_INTERNAL
    assert attempt.parent_span_id == task.span_id and attempt.trace_id == dag.trace_id
    a = attributes(attempt.attributes)
    assert a["cicd.pipeline.task.name"] == "transform"
    assert a["cicd.pipeline.task.run.id"] == TRY
    assert a["cicd.pipeline.task.run.result"] == "failure"
    assert a["error.type"] == "pod_failed"
    assert attempt.status.message == "Pod returned a failure"

    res, job = spans[sid("k8s-prod", f"jobs/{POD_JOB}")]
    assert res["service.name"] == "kubernetes"
    assert job.trace_id == tid("k8s-prod", f"jobs/{POD_JOB}")
    a = attributes(job.attributes)
    assert a["k8s.namespace.name"] == "etl" and a["k8s.job.name"] == POD_JOB
    assert a["k8s.container.status.reason"] == "OOMKilled"
    assert a["k8s.container.restart_count"] == 0 and a["process.exit.code"] == 137
    assert a["error.type"] == "OOMKilled"

    res, inv = spans[sid("lambda-prod", "resize/req-1")]
    assert res["service.name"] == "lambda"
    a = attributes(inv.attributes)
    assert a["faas.invocation_id"] == "req-1" and a["faas.coldstart"] is True
    assert a["cicd.pipeline.result"] == "success" and "error.type" not in a
    assert inv.status.code == Status.STATUS_CODE_OK

    res, missed = spans[sid("cron-hosts", "backup@db1/missed")]
    assert res["service.name"] == "cron"
    assert attributes(missed.attributes)["cicd.pipeline.result"] == "error"
    assert missed.start_time_unix_nano == int(T0.timestamp()) * 10**9  # when it was due
    assert sid("cron-hosts", "backup@db1/now") not in spans


def test_cross_system_hop_is_a_client_server_pair(engine: Engine, receiver: Receiver) -> None:
    seed(engine)
    export_finished_runs(engine, exporter_for(receiver.endpoint), kinds=KINDS)
    received = receiver.spans()
    clients = [(r, s) for r, s in received if s.kind == Span.SPAN_KIND_CLIENT]
    servers = {s.parent_span_id: (r, s) for r, s in received if s.kind == Span.SPAN_KIND_SERVER}
    assert len(clients) == 1
    client_res, client = clients[0]
    # Under the caller (the Airflow try), in the caller's trace and service.
    assert client_res["service.name"] == "airflow"
    assert client.parent_span_id == sid("airflow-prod", TRY)
    assert client.trace_id == tid("airflow-prod", DAG_RUN)
    a = attributes(client.attributes)
    assert a["peer.service"] == "kubernetes"
    assert a["switchyard.link.relation"] == "ref:airflow.ti"
    assert a["switchyard.link.strength"] == "exact"
    # Its SERVER child, under the callee's service, in the same trace.
    server_res, server = servers[client.span_id]
    assert server_res["service.name"] == "kubernetes"
    assert server.trace_id == client.trace_id
    assert server.status.code == Status.STATUS_CODE_ERROR
    assert attributes(server.attributes)["k8s.container.status.reason"] == "OOMKilled"
    # Both lead to the callee's own span in its own trace, and back.
    (link,) = server.links
    assert link.span_id == sid("k8s-prod", f"jobs/{POD_JOB}")
    assert link.trace_id == tid("k8s-prod", f"jobs/{POD_JOB}")
    callee = next(s for _, s in received if s.span_id == sid("k8s-prod", f"jobs/{POD_JOB}"))
    assert [lk.span_id for lk in callee.links] == [client.span_id]
    assert client.start_time_unix_nano <= server.start_time_unix_nano
    assert server.start_time_unix_nano <= server.end_time_unix_nano


def test_receiver_down_means_retry_not_loss(engine: Engine, receiver: Receiver) -> None:
    seed(engine)
    down = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    dead_endpoint = f"http://127.0.0.1:{down.server_address[1]}/v1/traces"
    down.server_close()  # nothing listens there any more
    with pytest.raises(OtlpExportFailed, match="6 runs"):
        export_finished_runs(engine, exporter_for(dead_endpoint), kinds=KINDS)
    assert read_position(engine) is None

    receiver.status = 503  # up, but unavailable
    with pytest.raises(OtlpExportFailed):
        export_finished_runs(engine, exporter_for(receiver.endpoint), kinds=KINDS)
    receiver.status = 400  # refuses outright
    with pytest.raises(OtlpExportFailed):
        export_finished_runs(engine, exporter_for(receiver.endpoint), kinds=KINDS)
    assert read_position(engine) is None and receiver.requests == []

    receiver.status = 200
    assert export_finished_runs(engine, exporter_for(receiver.endpoint), kinds=KINDS) == 6
    assert len({s.span_id for _, s in receiver.spans()}) == 6 + 2  # runs + the hop pair
    assert read_position(engine) is not None


def test_restart_resumes_from_the_stored_position_without_resending(
    engine: Engine, receiver: Receiver
) -> None:
    seed(engine)
    assert export_finished_runs(engine, exporter_for(receiver.endpoint), kinds=KINDS) == 6
    first = len(receiver.spans())
    # A new exporter and a new call: what a restarted replica does.
    assert export_finished_runs(engine, exporter_for(receiver.endpoint), kinds=KINDS) == 0
    assert len(receiver.spans()) == first

    # The running cron run finishes: only it goes out.
    apply_batch(engine, "cron-hosts", [
        RunEvent(source="cron-hosts", key="backup@db1/now", job="backup@db1", name="backup",
                 state=State.succeeded, started_at=T0, ended_at=T0 + timedelta(minutes=3),
                 observed_at=T0 + timedelta(minutes=3)),
    ])  # fmt: skip
    assert export_finished_runs(engine, exporter_for(receiver.endpoint), kinds=KINDS) == 1
    (_, span) = receiver.spans()[-1]
    assert span.span_id == sid("cron-hosts", "backup@db1/now")
    assert attributes(span.attributes)["cicd.pipeline.result"] == "success"


def test_changed_run_is_resent_with_the_same_ids(engine: Engine, receiver: Receiver) -> None:
    seed(engine)
    export_finished_runs(engine, exporter_for(receiver.endpoint), kinds=KINDS)
    apply_batch(engine, "lambda-prod", [
        RunEvent(source="lambda-prod", key="resize/req-1", job="resize", name="resize",
                 state=State.succeeded, started_at=T0, ended_at=T0 + timedelta(seconds=3),
                 observed_at=T0 + timedelta(seconds=9),
                 attributes={"faas.max_memory": 536870912}),
    ])  # fmt: skip
    assert export_finished_runs(engine, exporter_for(receiver.endpoint), kinds=KINDS) == 1
    (_, span) = receiver.spans()[-1]
    assert span.span_id == sid("lambda-prod", "resize/req-1")
    assert span.trace_id == tid("lambda-prod", "resize/req-1")
    assert attributes(span.attributes)["faas.max_memory"] == 536870912


def test_late_commit_below_the_watermark_is_still_exported(engine: Engine) -> None:
    seed(engine)
    exporter = InMemorySpanExporter()
    assert export_finished_runs(engine, exporter) == 6
    # A transaction that began earlier commits now: its rows carry an older
    # updated_at than rows already sent.
    apply_batch(engine, "cron-hosts", [
        RunEvent(source="cron-hosts", key="backup@db1/now", job="backup@db1", state=State.failed,
                 started_at=T0, ended_at=T0 + timedelta(minutes=2),
                 observed_at=T0 + timedelta(minutes=2)),
    ])  # fmt: skip
    run = table("run")  # typed columns: aware datetimes on SQLite and PostgreSQL
    with engine.begin() as conn:
        newest = conn.execute(sa.select(sa.func.max(run.c.updated_at))).scalar_one()
        conn.execute(
            run.update()
            .where(run.c.id == span_id_for("cron-hosts", "backup@db1/now"))
            .values(updated_at=newest - timedelta(seconds=60))
        )
    exporter.clear()
    assert export_finished_runs(engine, exporter) == 1
    (span,) = exporter.get_finished_spans()
    assert span.context.span_id == int(span_id_for("cron-hosts", "backup@db1/now"), 16)


def test_position_moved_by_another_replica_stops_this_one(engine: Engine) -> None:
    seed(engine)

    class Interloper(InMemorySpanExporter):
        def export(self, spans: Any) -> Any:
            result = super().export(spans)
            with engine.begin() as conn:  # another replica writes the position meanwhile
                conn.execute(sa.text(
                    "INSERT INTO source_cursor (source, value) VALUES (:s, '{}')"
                ), {"s": EXPORT_CURSOR})  # fmt: skip
            return result

    with pytest.raises(ExportPositionMoved):
        export_finished_runs(engine, Interloper())
    assert read_position(engine) == "{}"


def test_export_pages_through_many_runs(sqlite_engine: Engine) -> None:
    events = [
        RunEvent(source="lambda-prod", key=f"f/req-{i}", job="f", state=State.succeeded,
                 started_at=T0 + timedelta(seconds=i), ended_at=T0 + timedelta(seconds=i + 1),
                 observed_at=T0 + timedelta(seconds=i + 1))
        for i in range(23)
    ]  # fmt: skip
    apply_batch(sqlite_engine, "lambda-prod", events)
    exporter = InMemorySpanExporter()
    assert export_finished_runs(sqlite_engine, exporter, page_size=5) == 23
    ids = [s.context.span_id for s in exporter.get_finished_spans()]
    assert len(ids) == len(set(ids)) == 23
    assert export_finished_runs(sqlite_engine, exporter, page_size=5) == 0


def _record(**kw: Any) -> RunRecord:
    base: dict[str, Any] = dict(
        id="00" * 8, trace_id="11" * 16, parent_id=None, source="s", key="k", kind="run",
        job=None, name=None, state="failed", attempt=1, started_at=T0, ended_at=T0,
        observed_at=T0, state_at=T0, nominal_time=None, error_kind=None, error_message=None,
        exit_code=None, url=None,
    )  # fmt: skip
    base.update(kw)
    return RunRecord(**base)


@pytest.mark.parametrize(
    ("state", "error_kind", "result", "status"),
    [
        ("succeeded", None, "success", StatusCode.OK),
        ("failed", "OOMKilled", "failure", StatusCode.ERROR),
        ("failed", "DeadlineExceeded", "timeout", StatusCode.ERROR),
        ("failed", "Evicted", "error", StatusCode.ERROR),
        ("up_for_retry", None, "failure", StatusCode.ERROR),
        ("missed", "missed", "error", StatusCode.ERROR),
        ("cancelled", None, "cancellation", StatusCode.UNSET),
        ("skipped", None, "skip", StatusCode.OK),
    ],
)
def test_states_map_to_cicd_results_and_status(
    state: str, error_kind: str | None, result: str, status: StatusCode
) -> None:
    assert result_of(_record(state=state, error_kind=error_kind)) == (result, status)


def test_caller_is_the_run_that_started_first_unless_declared() -> None:
    task = _record(id="aa" * 8, parent_id="bb" * 8, started_at=T0)
    pod = _record(id="01" * 8, started_at=T0 + timedelta(seconds=3))
    assert caller_and_callee(pod, task, strength="exact") == (task, pod)
    same_time = _record(id="01" * 8, started_at=T0)
    assert caller_and_callee(same_time, task, strength="exact") == (task, same_time)
    assert caller_and_callee(pod, task, strength="declared") == (pod, task)


def test_otlp_config_is_validated_and_adds_the_housekeeping_task() -> None:
    cfg = parse_config({"otlp": {"endpoint": "http://tempo:4318", "interval": "2m",
                                 "headers": {"Authorization": "Bearer ${TEMPO_TOKEN}"}}},
                       env={"TEMPO_TOKEN": "s3cr3t-token"})  # fmt: skip
    assert cfg.otlp is not None
    assert cfg.otlp.endpoint == "http://tempo:4318/v1/traces"
    assert cfg.otlp.interval == 120.0
    assert cfg.redact(cfg.otlp.headers["Authorization"]) == "Bearer ***"
    assert "otlp-export" in [t.name for t in default_tasks(cfg)]
    assert "otlp-export" not in [t.name for t in default_tasks(parse_config({}))]
    with pytest.raises(ConfigError, match=r"otlp\.endpoint"):
        parse_config({"otlp": {"endpoint": "tempo:4318"}})
    with pytest.raises(ConfigError, match=r"otlp\.compression"):
        parse_config({"otlp": {"endpoint": "http://tempo:4318", "compression": "gzip"}})


def test_housekeeping_exports_with_configured_headers_once_per_interval(
    engine: Engine, receiver: Receiver
) -> None:
    seed(engine)
    cfg = parse_config({
        "sources": [{"name": n, "kind": k} for n, k in KINDS.items()],
        "retention": "off",
        "otlp": {"endpoint": receiver.endpoint, "interval": "5m", "timeout": "2s",
                 "headers": {"x-scope-orgid": "team-a"}},
    })  # fmt: skip
    tasks = [t for t in default_tasks(cfg) if t.name == OtlpExportTask.name]
    done = run_tasks(engine, cfg, tasks, now=T0)
    assert done == {"otlp-export": 6}
    assert receiver.headers[0]["x-scope-orgid"] == "team-a"
    assert {r["service.name"] for r, _ in receiver.spans()} == set(KINDS.values())
    # Within the interval the task waits; after it, it exports what is new (nothing).
    assert run_tasks(engine, cfg, tasks, now=T0 + timedelta(minutes=1)) == {"otlp-export": 0}
    assert run_tasks(engine, cfg, tasks, now=T0 + timedelta(minutes=6)) == {"otlp-export": 0}
    assert len(receiver.requests) == 1


def test_a_task_waiting_for_its_retry_is_not_exported_but_its_failed_try_is(
    sqlite_engine: Engine,
) -> None:
    run_key, task_key = "d/r1", "d/r1/t"
    apply_batch(sqlite_engine, "airflow-prod", [
        RunEvent(source="airflow-prod", key=run_key, job="d", state=State.running,
                 started_at=T0, observed_at=T0),
        RunEvent(source="airflow-prod", kind=RunKind.task, key=task_key, parent_key=run_key,
                 job="d", state=State.up_for_retry, started_at=T0, observed_at=T0),
        RunEvent(source="airflow-prod", kind=RunKind.attempt, key=f"{task_key}/1",
                 parent_key=task_key, root_key=run_key, job="d", state=State.up_for_retry,
                 started_at=T0, ended_at=T0 + timedelta(seconds=5),
                 observed_at=T0 + timedelta(seconds=5)),
    ])  # fmt: skip
    exporter = InMemorySpanExporter()
    assert export_finished_runs(sqlite_engine, exporter) == 1
    (span,) = exporter.get_finished_spans()
    assert span.context.span_id == int(span_id_for("airflow-prod", f"{task_key}/1"), 16)
    assert span.attributes is not None
    assert span.attributes["cicd.pipeline.task.run.result"] == "failure"


@pytest.mark.slow
def test_runtime_exports_under_the_housekeeping_lease(engine: Engine, receiver: Receiver) -> None:
    seed(engine)
    cfg = parse_config({"retention": "off",
                        "otlp": {"endpoint": receiver.endpoint, "timeout": "2s"}})  # fmt: skip
    runtime = Runtime(cfg, engine, replica_id="replica-a").start()
    try:
        for _ in range(200):  # bounded wait for the first housekeeping round
            if read_position(engine) is not None:
                break
            threading.Event().wait(0.1)
        assert HOUSEKEEPING_LEASE in runtime.held()
    finally:
        runtime.stop()
    assert read_position(engine) is not None
    assert len({s.span_id for _, s in receiver.spans()}) == 6 + 2
