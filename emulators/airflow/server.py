"""A replay server for the Airflow 3 REST API (`/api/v2`) over recorded payloads.

It answers the requests Switchyard's Airflow adapter makes, with bodies
recorded from a real Airflow 3.3.2 (`recording.py`), so the adapter polls it
exactly as it polls Airflow:

* `POST /auth/token` → `201 {"access_token": …}` (any username/password when
  `password` is None, else only that password); every `/api/v2` call except
  `monitor/health` needs `Authorization: Bearer <that token>` (401 otherwise);
* `GET /dags/~/dagRuns` and `/dags/~/dagRuns/~/taskInstances` with `limit`,
  `offset` or the Airflow 3.3 keyset `cursor` (opaque; `next_cursor` is null on
  the last page), `order_by=id` and `updated_at_gte` (a row's update time is
  its latest own timestamp), answered with a `Date` header;
* `…/taskInstances/{task}[/{map_index}]/tries`, `…/logs/{try}` (NDJSON),
  `GET /dags`, `/dags/{id}/details`, `/dags/{id}/tasks`, `/dagSources/{id}`,
  and `PATCH /dags/{id}?update_mask=is_paused`.

Anything else is a 404 problem body like Airflow's. Binds 127.0.0.1; port 0
picks a free port.
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
from datetime import datetime
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from emulators.airflow.recording import Recording, parse_instant, row_updated_at
from emulators.http_server import LoopbackEmulator


class _HttpError(Exception):
    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


def _encode_cursor(index: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"after": index}).encode()).decode()


def _decode_cursor(cursor: str) -> int:
    if not cursor:
        return 0
    try:
        return int(json.loads(base64.urlsafe_b64decode(cursor.encode()))["after"])
    except (ValueError, KeyError, TypeError) as exc:
        raise _HttpError(400, f"Invalid cursor: {cursor!r}") from exc


class AirflowReplay(LoopbackEmulator):
    """A running replay server. `start()` binds, `stop()` shuts down."""

    server_name = "airflow-replay"
    poll_interval = 0.1

    def __init__(
        self,
        recording: Recording | None = None,
        *,
        anchor: datetime | None = None,
        password: str | None = None,
        port: int = 0,
    ) -> None:
        self.recording = recording or Recording.load(anchor)
        self.password = password
        self.port = port
        self.token = "replay-" + secrets.token_urlsafe(16)
        self.requests: list[tuple[str, str]] = []
        self._lock = threading.Lock()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        return type("Handler", (_Handler,), {"replay": self})

    # answers -------------------------------------------------------------
    def token_for(self, body: dict[str, Any]) -> str:
        if self.password is not None and body.get("password") != self.password:
            raise _HttpError(401, "Invalid credentials")
        return self.token

    def _page(self, rows: list[dict[str, Any]], key: str, q: dict[str, str]) -> dict[str, Any]:
        if "updated_at_gte" in q:
            try:
                since = parse_instant(q["updated_at_gte"])
            except ValueError as exc:
                raise _HttpError(422, f"updated_at_gte: {exc}") from exc
            indexed = [(i, r) for i, r in enumerate(rows) if row_updated_at(r) >= since]
        else:
            indexed = list(enumerate(rows))
        try:
            limit = max(1, min(int(q.get("limit", "50")), 1000))
            offset = int(q.get("offset", "0"))
        except ValueError as exc:
            raise _HttpError(422, f"limit/offset must be integers: {exc}") from exc
        body: dict[str, Any] = {"total_entries": len(indexed), "total_entries_limit": 50000}
        if "cursor" in q:
            after = _decode_cursor(q["cursor"])
            window = [(i, r) for i, r in indexed if i >= after][:limit]
            last = window[-1][0] + 1 if window else after
            more = any(i >= last for i, _ in indexed)
            body["next_cursor"] = _encode_cursor(last) if window and more else None
            body["previous_cursor"] = q["cursor"] or None
        else:
            window = indexed[offset : offset + limit]
        body[key] = [r for _, r in window]
        return body

    def get(self, parts: list[str], q: dict[str, str]) -> dict[str, Any] | str:
        rec = self.recording
        match parts:
            case ["monitor", "health"]:
                return {"metadatabase": {"status": "healthy"}, "scheduler": {"status": "healthy"}}
            case ["dags", "~", "dagRuns"]:
                return self._page(rec.dag_runs, "dag_runs", q)
            case ["dags", "~", "dagRuns", "~", "taskInstances"]:
                return self._page(rec.task_instances, "task_instances", q)
            case ["dags", dag, "dagRuns", run, "taskInstances", task, "tries"]:
                return self._tries(f"{dag}/{run}/{task}/-1", dag, run, task, -1)
            case ["dags", dag, "dagRuns", run, "taskInstances", task, index, "tries"]:
                return self._tries(f"{dag}/{run}/{task}/{index}", dag, run, task, int(index))
            case ["dags", dag, "dagRuns", run, "taskInstances", task, "logs", try_number]:
                key = f"{dag}/{run}/{task}/{q.get('map_index', '-1')}/{try_number}"
                if key not in rec.logs:
                    raise _HttpError(404, f"TaskInstance log {key} not found")
                return rec.logs[key]
            case ["dags"]:
                with self._lock:
                    return self._page(
                        rec.dags, "dags", {k: v for k, v in q.items() if k != "cursor"}
                    )
            case ["dags", dag, "details"]:
                return self._dag_part(rec.details, dag)
            case ["dags", dag, "tasks"]:
                return {
                    "tasks": self._dag_part(rec.tasks, dag),
                    "total_entries": len(rec.tasks[dag]),
                }
            case ["dagSources", dag]:
                return self._dag_part(rec.sources, dag)
        raise _HttpError(404, "Not Found")

    def _tries(self, key: str, dag: str, run: str, task: str, index: int) -> dict[str, Any]:
        rec = self.recording
        if key in rec.tries:
            rows = rec.tries[key]
        else:
            # A task with one try: its tries are its instance row, as Airflow answers.
            rows = [
                ti
                for ti in rec.task_instances
                if (ti["dag_id"], ti["dag_run_id"], ti["task_id"], ti["map_index"])
                == (dag, run, task, index)
            ]
            if not rows:
                raise _HttpError(404, f"TaskInstance {key} not found")
        return {"task_instances": rows, "total_entries": len(rows)}

    def _dag_part(self, table: dict[str, Any], dag: str) -> Any:
        if dag not in table:
            raise _HttpError(404, f"The Dag with ID: `{dag}` was not found")
        return table[dag]

    def patch_dag(self, dag: str, body: dict[str, Any]) -> dict[str, Any]:
        if "is_paused" not in body:
            raise _HttpError(400, "only is_paused can be patched")
        with self._lock:
            for row in self.recording.dags:
                if row["dag_id"] == dag:
                    row["is_paused"] = bool(body["is_paused"])
                    if dag in self.recording.details:
                        self.recording.details[dag]["is_paused"] = row["is_paused"]
                    return row
        raise _HttpError(404, f"The Dag with ID: `{dag}` was not found")


class _Handler(BaseHTTPRequestHandler):
    replay: AirflowReplay
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet: pollers call often
        pass

    def _send(self, status: int, body: Any, ctype: str = "application/json") -> None:
        data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Date", formatdate(usegmt=True))
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> dict[str, Any]:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            doc = json.loads(raw) if raw else {}
        except ValueError as exc:
            raise _HttpError(400, "the body is not JSON") from exc
        if not isinstance(doc, dict):
            raise _HttpError(400, "the body must be a JSON object")
        return doc

    def _serve(self, method: str) -> None:
        split = urlsplit(self.path)
        path = split.path
        q = {k: v[-1] for k, v in parse_qs(split.query, keep_blank_values=True).items()}
        self.replay.requests.append((method, path))
        try:
            if method == "POST" and path == "/auth/token":
                self._send(201, {"access_token": self.replay.token_for(self._body())})
                return
            if not path.startswith("/api/v2/"):
                raise _HttpError(404, "Not Found")
            parts = [unquote(p) for p in path[len("/api/v2/") :].strip("/").split("/")]
            authorized = self.headers.get("Authorization") == f"Bearer {self.replay.token}"
            if parts != ["monitor", "health"] and not authorized:
                raise _HttpError(401, "Not authenticated")
            if method == "GET":
                body = self.replay.get(parts, q)
                if isinstance(body, str):
                    self._send(200, body, "application/x-ndjson")
                else:
                    self._send(200, body)
            elif method == "PATCH" and len(parts) == 2 and parts[0] == "dags":
                self._send(200, self.replay.patch_dag(parts[1], self._body()))
            else:
                raise _HttpError(405, "Method Not Allowed")
        except _HttpError as exc:
            self._send(exc.status, {"detail": exc.detail})

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_PATCH(self) -> None:
        self._serve("PATCH")


__all__ = ["AirflowReplay"]
