"""An HTTP server that speaks the Kubernetes list/watch protocol for batch workloads.

Serves `pods` and `events` (core/v1), `jobs` and `cronjobs` (batch/v1) and
`events` (events.k8s.io/v1, converted from the core objects as the real server
does), cluster-wide and per namespace, to the official `kubernetes` client:

* list with `resourceVersion` in the list metadata, `limit`/`continue` paging
  over a consistent snapshot, `labelSelector` and `fieldSelector`;
* watch (`?watch=1`): a chunked stream of newline-delimited
  `{"type","object"}` events replayed from a resourceVersion, BOOKMARK events
  when `allowWatchBookmarks` is set, `timeoutSeconds`, and an `ERROR` event with
  a `410 Expired` Status when the version is older than the retained history;
* get one object; PATCH (merge or strategic-merge, same for the fields used) on
  cronjobs and jobs;
* bearer-token auth, and a log of (verb, group, resource, namespace) per request
  so a test can check the RBAC a client needs.

Fault injection for tests: `break_watches()`, `compact()`, `set_available()`.
Binds 127.0.0.1 on an ephemeral port.
"""

from __future__ import annotations

import base64
import json
import queue
import re
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import yaml

from emulators.http_server import LoopbackEmulator
from emulators.kube_apiserver.selectors import SelectorError, field_selector, label_selector
from emulators.kube_apiserver.store import (
    BREAK,
    Change,
    Expired,
    NotFound,
    Obj,
    ObjectStore,
    merge_patch,
)


@dataclass(frozen=True)
class Resource:
    group: str
    version: str
    plural: str
    kind: str
    storage: str  # the store table it reads

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version


RESOURCES = {
    ("", "pods"): Resource("", "v1", "pods", "Pod", "pods"),
    ("", "events"): Resource("", "v1", "events", "Event", "events"),
    ("batch", "jobs"): Resource("batch", "v1", "jobs", "Job", "jobs"),
    ("batch", "cronjobs"): Resource("batch", "v1", "cronjobs", "CronJob", "cronjobs"),
    ("events.k8s.io", "events"): Resource("events.k8s.io", "v1", "events", "Event", "events"),
}
PATCHABLE = {"jobs", "cronjobs"}
_PATH = re.compile(
    r"^/(?:api/v1|apis/(?P<group>[a-z0-9.\-]+)/v1)"
    r"(?:/namespaces/(?P<ns>[^/]+))?/(?P<plural>[a-z]+)(?:/(?P<name>[^/]+))?/?$"
)


@dataclass(frozen=True)
class Request:
    verb: str
    group: str
    resource: str
    namespace: str | None
    name: str | None


def to_events_v1(obj: Obj) -> Obj:
    """A core/v1 Event as events.k8s.io/v1 serves it."""
    out: Obj = {
        "apiVersion": "events.k8s.io/v1",
        "kind": "Event",
        "metadata": obj.get("metadata", {}),
        "eventTime": obj.get("eventTime") or obj.get("firstTimestamp"),
        "reason": obj.get("reason"),
        "note": obj.get("message"),
        "type": obj.get("type"),
        "regarding": obj.get("involvedObject"),
        "reportingController": obj.get("reportingComponent")
        or (obj.get("source") or {}).get("component"),
        "reportingInstance": obj.get("reportingInstance")
        or (obj.get("source") or {}).get("host")
        or "",
        "action": obj.get("action") or obj.get("reason"),
        "deprecatedSource": obj.get("source"),
        "deprecatedFirstTimestamp": obj.get("firstTimestamp"),
        "deprecatedLastTimestamp": obj.get("lastTimestamp"),
        "deprecatedCount": obj.get("count"),
    }
    if (obj.get("count") or 1) > 1:
        out["series"] = {"count": obj["count"], "lastObservedTime": obj.get("lastTimestamp")}
    return {k: v for k, v in out.items() if v is not None}


def _status(code: int, reason: str, message: str) -> Obj:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }


class KubeApiServer(LoopbackEmulator):
    """The emulated API server. `start()` binds, `stop()` shuts down and drops watches."""

    server_name = "kube-apiserver"

    def __init__(
        self,
        *,
        token: str | None = "switchyard-test-token",
        bookmark_interval_s: float = 1.0,
        store: ObjectStore | None = None,
    ) -> None:
        self.store = store or ObjectStore()
        self.token = token
        self.bookmark_interval_s = bookmark_interval_s
        self.requests: list[Request] = []
        self._available = threading.Event()
        self._available.set()
        self._snapshots: dict[str, tuple[list[Obj], int]] = {}
        self._lock = threading.Lock()
        self._stopping = False

    # --- lifecycle ----------------------------------------------------------

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        return type("Handler", (_Handler,), {"api": self})

    def stop(self) -> None:
        self._stopping = True
        self.store.close_watches()
        super().stop()

    def write_kubeconfig(
        self, path: Path, *, context: str = "emulator", namespace: str = "default"
    ) -> Path:
        """A kubeconfig file pointing at this server with its bearer token."""
        user: dict[str, Any] = {"token": self.token} if self.token else {}
        doc = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "emulator", "cluster": {"server": self.url}}],
            "users": [{"name": "switchyard", "user": user}],
            "contexts": [
                {
                    "name": context,
                    "context": {
                        "cluster": "emulator",
                        "user": "switchyard",
                        "namespace": namespace,
                    },
                }
            ],
            "current-context": context,
        }
        path.write_text(yaml.safe_dump(doc))
        return path

    # --- faults -------------------------------------------------------------

    def break_watches(self) -> int:
        return self.store.break_watches()

    def compact(self) -> int:
        with self._lock:
            self._snapshots.clear()  # continue tokens expire with the history
        return self.store.compact()

    def set_available(self, available: bool) -> None:
        """While unavailable every request gets 503 and open watches are dropped."""
        if available:
            self._available.set()
        else:
            self._available.clear()
            self.store.break_watches()

    @property
    def available(self) -> bool:
        return self._available.is_set()

    def verbs_used(self) -> set[tuple[str, str, str]]:
        """(verb, apiGroup, resource) of every request served so far."""
        return {(r.verb, r.group, r.resource) for r in list(self.requests)}

    # --- list paging --------------------------------------------------------

    def _page(
        self, items: list[Obj], rv: int, limit: int | None, token: str | None
    ) -> tuple[list[Obj], int, str | None]:
        offset = 0
        if token:
            try:
                decoded = json.loads(base64.urlsafe_b64decode(token.encode()))
                snap_id, offset = str(decoded["id"]), int(decoded["offset"])
            except (ValueError, KeyError, TypeError) as exc:
                raise _HttpError(400, "BadRequest", f"invalid continue token: {exc}") from exc
            with self._lock:
                snap = self._snapshots.get(snap_id)
            if snap is None:
                raise _HttpError(
                    410,
                    "Expired",
                    "The provided continue parameter is too old to display a consistent list "
                    "result.",
                )
            items, rv = snap
        else:
            snap_id = uuid.uuid4().hex
        if not limit or offset + limit >= len(items):
            with self._lock:
                self._snapshots.pop(snap_id, None)
            return items[offset:], rv, None
        with self._lock:
            self._snapshots[snap_id] = (items, rv)
        next_token = base64.urlsafe_b64encode(
            json.dumps({"id": snap_id, "offset": offset + limit}).encode()
        ).decode()
        return items[offset : offset + limit], rv, next_token


class _HttpError(Exception):
    def __init__(self, code: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.code, self.reason, self.message = code, reason, message


class _Handler(BaseHTTPRequestHandler):
    api: KubeApiServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet: tests run many requests
        return

    # --- plumbing -----------------------------------------------------------

    def _send_json(self, code: int, body: Obj) -> None:
        data = json.dumps(body, separators=(",", ":")).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _route(
        self, verb_for_collection: str, verb_for_object: str
    ) -> tuple[Resource, str | None, str | None, str]:
        parts = urlsplit(self.path)
        m = _PATH.match(parts.path)
        if not m:
            raise _HttpError(
                404, "NotFound", f"the server could not find the requested resource ({parts.path})"
            )
        group = m.group("group") or ""
        resource = RESOURCES.get((group, m.group("plural")))
        if resource is None:
            raise _HttpError(
                404, "NotFound", f"the server could not find the requested resource ({parts.path})"
            )
        name = m.group("name")
        verb = verb_for_object if name else verb_for_collection
        self.api.requests.append(Request(verb, group, resource.plural, m.group("ns"), name))
        return resource, m.group("ns"), name, parts.query

    def _guard(self) -> None:
        if not self.api.available:
            raise _HttpError(
                503, "ServiceUnavailable", "the server is currently unable to handle the request"
            )
        if self.api.token and self.headers.get("Authorization") != f"Bearer {self.api.token}":
            raise _HttpError(401, "Unauthorized", "Unauthorized")

    def _served(self, resource: Resource, obj: Obj) -> Obj:
        if resource.group == "events.k8s.io":
            return to_events_v1(obj)
        return obj

    def _handle(self, method: str) -> None:
        try:
            self._guard()
            if method == "GET":
                query = parse_qs(urlsplit(self.path).query)
                watching = query.get("watch", ["false"])[0] in ("1", "true")
                resource, ns, name, _ = self._route("watch" if watching else "list", "get")
                if name:
                    self._send_json(
                        200, self._served(resource, self._get(resource, ns or "", name))
                    )
                elif watching:
                    self._watch(resource, ns, query)
                else:
                    self._list(resource, ns, query)
            elif method == "PATCH":
                resource, ns, name, _ = self._route("patch", "patch")
                if not name or resource.storage not in PATCHABLE or resource.group != "batch":
                    raise _HttpError(
                        405, "MethodNotAllowed", "PATCH is supported on jobs and cronjobs only"
                    )
                self._patch(resource, ns or "", name)
            else:
                raise _HttpError(
                    405, "MethodNotAllowed", f"{method} is not supported by this emulator"
                )
        except _HttpError as err:
            self._send_json(err.code, _status(err.code, err.reason, err.message))
        except (BrokenPipeError, ConnectionResetError):
            return

    def do_GET(self) -> None:
        self._handle("GET")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    # --- verbs --------------------------------------------------------------

    def _get(self, resource: Resource, ns: str, name: str) -> Obj:
        try:
            return self.api.store.get(resource.storage, ns, name)
        except NotFound:
            raise _HttpError(404, "NotFound", f'{resource.plural} "{name}" not found') from None

    def _selectors(self, query: dict[str, list[str]]) -> tuple[Any, Any]:
        try:
            return (
                label_selector(query.get("labelSelector", [""])[0]),
                field_selector(query.get("fieldSelector", [""])[0]),
            )
        except SelectorError as exc:
            raise _HttpError(400, "BadRequest", str(exc)) from exc

    def _list(self, resource: Resource, ns: str | None, query: dict[str, list[str]]) -> None:
        labels, fields = self._selectors(query)
        token = query.get("continue", [None])[0]
        limit_text = query.get("limit", [None])[0]
        limit = int(limit_text) if limit_text else None
        items: list[Obj] = []
        rv = 0
        if not token:
            raw, rv = self.api.store.list_objects(resource.storage, ns)
            items = [o for o in (self._served(resource, x) for x in raw) if labels(o) and fields(o)]
        page, rv, next_token = self.api._page(items, rv, limit, token)
        meta: Obj = {"resourceVersion": str(rv)}
        if next_token:
            meta["continue"] = next_token
        body = {
            "kind": f"{resource.kind}List",
            "apiVersion": resource.api_version,
            "metadata": meta,
            "items": page,
        }
        self._send_json(200, body)

    def _patch(self, resource: Resource, ns: str, name: str) -> None:
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip()
        if ctype not in ("application/merge-patch+json", "application/strategic-merge-patch+json"):
            raise _HttpError(
                415,
                "UnsupportedMediaType",
                f"the body of the request was in an unknown format: {ctype}",
            )
        length = int(self.headers.get("Content-Length") or 0)
        try:
            patch = json.loads(self.rfile.read(length) or b"{}")
        except ValueError as exc:
            raise _HttpError(400, "BadRequest", f"invalid JSON patch: {exc}") from exc
        store = self.api.store
        with store.lock:
            current = self._get(resource, ns, name)
            merged = merge_patch(current, patch)
            merged["metadata"]["name"], merged["metadata"]["namespace"] = name, ns
            updated = store.update(resource.storage, merged)
        self._send_json(200, updated)

    def _watch(self, resource: Resource, ns: str | None, query: dict[str, list[str]]) -> None:
        labels, fields = self._selectors(query)
        rv_text = query.get("resourceVersion", [""])[0]
        since = int(rv_text) if rv_text not in ("", "0") else None
        bookmarks = query.get("allowWatchBookmarks", ["false"])[0] in ("1", "true")
        timeout_text = query.get("timeoutSeconds", [None])[0]
        deadline = time.monotonic() + (float(timeout_text) if timeout_text else 1800.0)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            watcher, backlog = self.api.store.watch(resource.storage, ns, since)
        except Expired as exc:
            event = {"type": "ERROR", "object": _status(410, "Expired", str(exc))}
            self._chunk(json.dumps(event).encode() + b"\n")
            self._chunk(b"")
            return
        store = self.api.store
        try:
            for change in backlog:
                self._send_change(resource, change, labels, fields)
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    item = watcher.queue.get(timeout=min(remaining, self.api.bookmark_interval_s))
                except queue.Empty:  # idle: tell the client how far it is
                    if bookmarks:
                        rv = store.idle_rv(watcher)
                        if rv is not None:
                            self._bookmark(resource, rv)
                    continue
                if item is None:
                    break
                if item is BREAK:
                    # Drop the connection halfway through an event, as a dying
                    # proxy or apiserver does.
                    self.wfile.write(b'40\r\n{"type":"MODIFIED","object":{"kind"')
                    self.wfile.flush()
                    self.connection.shutdown(socket.SHUT_RDWR)
                    self.close_connection = True
                    return
                self._send_change(resource, item, labels, fields)
            self._chunk(b"")
        except (BrokenPipeError, ConnectionResetError, OSError):
            self.close_connection = True
        finally:
            store.unwatch(watcher)

    def _send_change(self, resource: Resource, change: Change, labels: Any, fields: Any) -> None:
        obj = self._served(resource, change.obj)
        if not (labels(obj) and fields(obj)):
            return
        self._chunk(
            json.dumps({"type": change.type, "object": obj}, separators=(",", ":")).encode() + b"\n"
        )

    def _bookmark(self, resource: Resource, rv: int) -> None:
        obj = {
            "kind": resource.kind,
            "apiVersion": resource.api_version,
            "metadata": {"resourceVersion": str(rv)},
        }
        self._chunk(json.dumps({"type": "BOOKMARK", "object": obj}).encode() + b"\n")
