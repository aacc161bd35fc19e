"""HTTP server for the Kestra emulator (threaded, 127.0.0.1, ephemeral port).

Speaks the tenant-scoped paths of Kestra's OpenAPI document
(`/api/v1/{tenant}/flows…`, `/executions…`, `/triggers…`) with YAML flow
bodies and JSON answers shaped like the document's schemas, so the official
`kestrapy` client and Switchyard's own client run against it unchanged.
Every request and response is kept in `exchanges` so tests can validate
them against the OpenAPI document.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import yaml

from emulators.http_server import LoopbackEmulator
from emulators.kestra.catalogue import Catalogue, catalogue
from emulators.kestra.flow_parser import check_flow
from emulators.kestra.state import (
    TERMINAL,
    ApiError,
    ExecutionRecord,
    InvalidEntity,
    KestraState,
    Scenario,
)

MAX_BODY = 4 * 1024 * 1024


@dataclass(frozen=True)
class Exchange:
    """One request and its answer, as they crossed the wire."""

    method: str
    path: str
    query: list[tuple[str, str]]
    content_type: str | None
    body: bytes
    status: int
    response_content_type: str | None
    response: Any


def _now() -> datetime:
    return datetime.now(UTC)


def _parse_date(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ApiError(400, f"Invalid date {text!r}") from exc
    return value if value.tzinfo else value.replace(tzinfo=UTC)


_FILTER = re.compile(r"^filters\[(\w+)\]\[(\w+)\](?:\[([^\]]+)\])?$")


@dataclass
class _Criteria:
    """The search filters the emulator understands; others are a 400, never ignored."""

    namespace: str | None = None
    namespace_prefix: str | None = None
    flow_id: str | None = None
    since: datetime | None = None
    since_strict: bool = False
    states: frozenset[str] | None = None
    labels: dict[str, str] = field(default_factory=dict)

    def match(self, e: ExecutionRecord, current: str) -> bool:
        if self.namespace is not None and e.namespace != self.namespace:
            return False
        prefix = self.namespace_prefix
        if prefix is not None and not (
            e.namespace == prefix or e.namespace.startswith(prefix + ".")
        ):
            return False
        if self.flow_id is not None and e.flow_id != self.flow_id:
            return False
        if self.since is not None:
            start = e.start_date()
            if start < self.since or (self.since_strict and start == self.since):
                return False
        if self.states is not None and current not in self.states:
            return False
        return all(e.labels.get(k) == v for k, v in self.labels.items())


def _execution_filter(query: list[tuple[str, str]]) -> _Criteria:
    c = _Criteria()
    for key, value in query:
        m = _FILTER.match(key)
        if not m:
            continue
        name, op, sub = m.groups()
        if name == "namespace" and op == "EQUALS":
            c.namespace = value
        elif name == "namespace" and op in ("PREFIX", "STARTS_WITH"):
            c.namespace_prefix = value
        elif name == "flowId" and op == "EQUALS":
            c.flow_id = value
        elif name == "startDate" and op in ("GREATER_THAN_OR_EQUAL_TO", "GREATER_THAN"):
            c.since, c.since_strict = _parse_date(value), op == "GREATER_THAN"
        elif name == "state" and op in ("IN", "EQUALS"):
            c.states = frozenset(value.split(","))
        elif name == "labels" and op == "EQUALS" and sub:
            c.labels[sub] = value
        else:
            raise ApiError(400, f"Unsupported filter {key}")
    return c


class KestraEmulator(LoopbackEmulator):
    """A running emulator. Use as a context manager or call `start`/`stop`.

    `clock` drives every timestamp (inject a controllable one in tests);
    `token`, when set, is required as `Authorization: Bearer <token>`.
    `version` is the Kestra major version it plays ("1" or "2"; "1.3.2" is
    read as "1"), fixed for its lifetime as a real server's is: flows are
    parsed and validated against that version's plugin catalogue
    (`catalogue.py`), so a flow meant for 2.0 is posted to a 2.0 emulator.
    """

    server_name = "kestra-emulator"
    poll_interval = 0.05

    def __init__(
        self,
        *,
        clock: Callable[[], datetime] = _now,
        token: str | None = None,
        port: int = 0,
        version: str = "1",
    ) -> None:
        self.catalogue: Catalogue = catalogue(version)
        self.version = self.catalogue.version
        self.state = KestraState(clock=clock, catalogue=self.catalogue)
        self.token = token
        self.port = port
        self.exchanges: list[Exchange] = []

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        return _make_handler(self)

    # scenario control ----------------------------------------------------
    def set_scenario(self, namespace: str, flow_id: str, scenario: Scenario) -> None:
        with self.state.lock:
            self.state.scenarios[(namespace, flow_id)] = scenario

    def fire_trigger(
        self, namespace: str, flow_id: str, trigger_id: str, *, tenant: str = "main"
    ) -> str:
        """Start an execution as the trigger would; refused while it is disabled."""
        with self.state.lock:
            tstate = self.state.triggers.get((tenant, namespace, flow_id, trigger_id))
            if tstate is None:
                raise ApiError(404, f"Trigger {namespace}.{flow_id}.{trigger_id} not found")
            if tstate.get("disabled"):
                raise ApiError(409, f"Trigger {trigger_id} is disabled")
            flow = self.state.flow(tenant, namespace, flow_id)
            ttype = next(
                (t["type"] for t in flow.body.get("triggers", []) if t["id"] == trigger_id), ""
            )
            record = self.state.create_execution(
                tenant, namespace, flow_id, {}, trigger={"id": trigger_id, "type": ttype}
            )
            return record.id

    # request handling ----------------------------------------------------
    def handle(
        self, method: str, path: str, query: list[tuple[str, str]], ctype: str | None, body: bytes
    ) -> tuple[int, Any]:
        m = re.match(r"^/api/v1/([^/]+)(/.*)$", path)
        if not m:
            raise ApiError(404, f"Not found: {path}")
        tenant, rest = m.group(1), m.group(2)
        q = dict(query)
        st = self.state
        now = st.clock()
        if rest == "/flows" and method == "POST":
            _need_yaml(ctype)
            return 200, st.put_flow(tenant, body.decode(), expect=None).as_json(with_source=True)
        if rest == "/flows/validate" and method == "POST":
            _need_yaml(ctype)
            return 200, _validate_docs(body.decode(), st.catalogue)
        if rest == "/flows/search" and method == "GET":
            flows = sorted(
                (f for f in st.flows.values() if f.tenant == tenant),
                key=lambda f: (f.namespace, f.id),
            )
            ns = _filter_value(query, "namespace")
            if ns:
                flows = [f for f in flows if f.namespace == ns or f.namespace.startswith(ns + ".")]
            page, size = _paging(q)
            chunk = flows[(page - 1) * size : page * size]
            return 200, {
                "results": [f.as_json(with_source=False) for f in chunk],
                "total": len(flows),
            }
        fm = re.match(r"^/flows/([^/]+)/([^/]+)$", rest)
        if fm:
            ns, fid = fm.groups()
            if method == "GET":
                return 200, st.flow(tenant, ns, fid).as_json(with_source=q.get("source") == "true")
            if method == "PUT":
                _need_yaml(ctype)
                updated = st.put_flow(tenant, body.decode(), expect=(ns, fid))
                return 200, updated.as_json(with_source=True)
            if method == "DELETE":
                with st.lock:
                    st.flow(tenant, ns, fid)
                    del st.flows[(tenant, ns, fid)]
                    for tkey in [k for k in st.triggers if k[:3] == (tenant, ns, fid)]:
                        del st.triggers[tkey]
                return 204, None
        if rest == "/executions/search" and method == "GET":
            return 200, self._search(tenant, query, now)
        em = re.match(r"^/executions/([^/]+)/([^/]+)$", rest)
        if em and method == "POST":
            labels: dict[str, str] = {}
            for name, value in query:
                if name == "labels":
                    k, sep, v = value.partition(":")
                    if not sep or not k or not v:
                        raise ApiError(400, f"Invalid label {value!r}: expected key:value")
                    labels[k] = v
            created = st.create_execution(tenant, em.group(1), em.group(2), labels)
            out = created.as_json(max(st.clock(), created.start_date()), light=False)
            out["deleted"] = False
            out["url"] = (
                f"{self.url}/ui/{tenant}/executions/"
                f"{created.namespace}/{created.flow_id}/{created.id}"
            )
            return 200, out
        gm = re.match(r"^/executions/([^/]+)$", rest)
        if gm and method == "GET":
            execution = st.executions.get(gm.group(1))
            if execution is None or execution.tenant != tenant:
                raise ApiError(404, f"Execution {gm.group(1)} not found")
            return 200, execution.as_json(now, light=False)
        if rest == "/triggers/set-disabled" and method == "PUT":
            try:
                req = json.loads(body or b"{}")
            except ValueError as exc:
                raise ApiError(400, f"Invalid JSON: {exc}") from exc
            key = (
                tenant,
                str(req.get("namespace")),
                str(req.get("flowId")),
                str(req.get("triggerId")),
            )
            with st.lock:
                tstate = st.triggers.get(key)
                if tstate is None:
                    raise ApiError(404, f"Trigger {key[1]}.{key[2]}.{key[3]} not found")
                tstate["disabled"] = bool(req.get("disabled"))
                tstate["updatedAt"] = _iso_now(now)
                return 200, dict(tstate)
        tm = re.match(r"^/triggers/([^/]+)/([^/]+)$", rest)
        if tm and method == "GET":
            items = [
                dict(v)
                for k, v in sorted(st.triggers.items())
                if k[:3] == (tenant, tm.group(1), tm.group(2))
            ]
            return 200, {"results": items, "total": len(items)}
        raise ApiError(404, f"Not found: {method} {path}")

    def _search(self, tenant: str, query: list[tuple[str, str]], now: datetime) -> dict[str, Any]:
        q = dict(query)
        match = _execution_filter(query)
        with self.state.lock:
            records = [
                e for e in self.state.executions.values() if e.tenant == tenant and e.started(now)
            ]
        records = [e for e in records if match.match(e, e.plan.at(now)[-1][0])]
        sort = q.get("sort", "state.startDate:desc")
        field, _, direction = sort.partition(":")
        if field not in ("state.startDate", "id"):
            raise ApiError(400, f"Unsupported sort {sort}")
        records.sort(
            key=lambda e: (e.start_date(), e.id) if field == "state.startDate" else (e.id,),
            reverse=direction == "desc",
        )
        page, size = _paging(q)
        chunk = records[(page - 1) * size : page * size]
        return {"results": [e.as_json(now, light=True) for e in chunk], "total": len(records)}


def _iso_now(now: datetime) -> str:
    return now.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _need_yaml(ctype: str | None) -> None:
    if (ctype or "").split(";")[0].strip() != "application/x-yaml":
        raise ApiError(415, f"Unsupported media type {ctype!r}; send application/x-yaml")


def _paging(q: dict[str, str]) -> tuple[int, int]:
    try:
        page, size = int(q.get("page", "1")), int(q.get("size", "10"))
    except ValueError as exc:
        raise ApiError(400, "page and size must be integers") from exc
    if page < 1 or size < 1:
        raise ApiError(400, "page and size must be ≥ 1")
    return page, size


def _filter_value(query: list[tuple[str, str]], field: str) -> str | None:
    for key, value in query:
        m = _FILTER.match(key)
        if m and m.group(1) == field:
            return value
    return None


def _validate_docs(text: str, plugins: Catalogue) -> list[dict[str, Any]]:
    """`POST /flows/validate`: one verdict per document; `constraints` is the
    violations as Kestra's ConstraintViolationException message joins them."""
    out: list[dict[str, Any]] = []
    try:
        docs = list(yaml.safe_load_all(text))
    except yaml.YAMLError as exc:
        return [
            {
                "index": 0,
                "constraints": f"yaml: Illegal flow source: {exc}",
                "outdated": False,
                "deprecationPaths": [],
                "warnings": [],
                "infos": [],
            }
        ]
    for index, doc in enumerate(docs):
        item: dict[str, Any] = {
            "index": index,
            "outdated": False,
            "deprecationPaths": [],
            "warnings": [],
            "infos": [],
        }
        if isinstance(doc, dict):
            if isinstance(doc.get("id"), str):
                item["flow"] = doc["id"]
            if isinstance(doc.get("namespace"), str):
                item["namespace"] = doc["namespace"]
        violations = check_flow(doc, plugins)
        if violations:
            item["constraints"] = ", ".join(str(v) for v in violations)
        out.append(item)
    return out


def _make_handler(emulator: KestraEmulator) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            return  # quiet: tests read exchanges, not stderr

        def _serve(self) -> None:
            parts = urlsplit(self.path)
            query = parse_qsl(parts.query, keep_blank_values=True)
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if 0 < length <= MAX_BODY else b""
            ctype = self.headers.get("Content-Type")
            status: int
            payload: Any
            if length > MAX_BODY:
                status, payload = 413, {"message": "Request body too large"}
            elif emulator.token and self.headers.get("Authorization") != f"Bearer {emulator.token}":
                status, payload = 401, {"message": "Unauthorized"}
            else:
                try:
                    status, payload = emulator.handle(self.command, parts.path, query, ctype, body)
                except ApiError as exc:
                    status, payload = exc.status, exc.body(parts.path)
                except Exception as exc:  # an emulator bug must answer, not hang the client
                    status, payload = 500, {"message": f"emulator error: {exc!r}"}
            data = b"" if payload is None else json.dumps(payload).encode()
            rtype = "application/json" if payload is not None else None
            emulator.exchanges.append(
                Exchange(self.command, parts.path, query, ctype, body, status, rtype, payload)
            )
            self.send_response(status)
            if rtype:
                self.send_header("Content-Type", rtype)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_DELETE = _serve

    return Handler


__all__ = ["TERMINAL", "ApiError", "Exchange", "InvalidEntity", "KestraEmulator", "Scenario"]
