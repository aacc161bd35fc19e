"""List, then watch, one resource in one namespace (or all) — and survive.

`StreamWatcher` runs in its own thread: it lists (paged, `limit`/`continue`)
to get the objects and the list's resourceVersion, then watches from that
version with bookmarks, hands every change to its `StreamHandler`, and keeps
the last version it handed over. It reconnects from that version when the
stream ends or breaks, and on `410 Gone` (an `ERROR` event or a 410 response)
lists again and hands the handler the full list so it can reconcile. It never
starts a watch without a version from a list or the stored cursor
(kubernetes-client/python#819).

Raw JSON dicts, not client models, reach the handler: the normaliser reads
the objects as the API server wrote them, and skipping model deserialisation
keeps the stream cheap.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError as Urllib3Error

log = logging.getLogger(__name__)

Obj = dict[str, Any]


@dataclass(frozen=True)
class StreamSpec:
    """One list+watch: a resource, a namespace (None = all) and a label selector."""

    resource: str  # jobs | cronjobs | pods | events
    namespace: str | None
    label_selector: str | None = None
    variant: str = ""  # distinguishes several pod streams in the cursor

    @property
    def key(self) -> str:
        name = f"{self.resource}:{self.variant}" if self.variant else self.resource
        return f"{name}@{self.namespace or '*'}"


class StreamHandler(Protocol):
    def on_list(self, spec: StreamSpec, items: list[Obj], rv: str) -> None: ...

    def on_change(self, spec: StreamSpec, type_: str, obj: Obj, rv: str) -> None: ...

    def on_bookmark(self, spec: StreamSpec, rv: str) -> None: ...

    def on_error(self, spec: StreamSpec, message: str | None) -> None: ...


class Gone(Exception):
    """The resourceVersion is older than the server's history: relist."""


def _list_function(api: client.ApiClient, spec: StreamSpec) -> Callable[..., Any]:
    batch, core = client.BatchV1Api(api), client.CoreV1Api(api)
    table: dict[str, tuple[Callable[..., Any], Callable[..., Any]]] = {
        "jobs": (batch.list_job_for_all_namespaces, batch.list_namespaced_job),
        "cronjobs": (batch.list_cron_job_for_all_namespaces, batch.list_namespaced_cron_job),
        "pods": (core.list_pod_for_all_namespaces, core.list_namespaced_pod),
        "events": (core.list_event_for_all_namespaces, core.list_namespaced_event),
    }
    every, namespaced = table[spec.resource]
    if spec.namespace is None:
        return every
    ns = spec.namespace
    return lambda **kw: namespaced(ns, **kw)


def list_all(api: client.ApiClient, spec: StreamSpec, page_size: int) -> tuple[list[Obj], str]:
    """Every object (all pages of one consistent snapshot) and the list's version."""
    fn = _list_function(api, spec)
    items: list[Obj] = []
    token: str | None = None
    while True:
        kwargs: dict[str, Any] = {"limit": page_size, "_preload_content": False}
        if spec.label_selector:
            kwargs["label_selector"] = spec.label_selector
        if token:
            kwargs["_continue"] = token
        resp = fn(**kwargs)
        body = json.loads(resp.data)
        items.extend(body.get("items") or [])
        meta = body.get("metadata") or {}
        token = meta.get("continue")
        if not token:
            return items, str(meta.get("resourceVersion") or "")


def _lines(resp: Any) -> Iterator[bytes]:
    buffer = b""
    for chunk in resp.stream(amt=None, decode_content=False):
        buffer += chunk
        *complete, buffer = buffer.split(b"\n")
        yield from (line for line in complete if line.strip())


class StreamWatcher(threading.Thread):
    def __init__(
        self,
        api: client.ApiClient,
        spec: StreamSpec,
        handler: StreamHandler,
        *,
        resource_version: str | None,
        page_size: int = 500,
        watch_timeout_s: int = 300,
        retry_backoff_s: float = 1.0,
        max_backoff_s: float = 30.0,
    ) -> None:
        super().__init__(name=f"k8s-watch-{spec.key}", daemon=True)
        self.api = api
        self.spec = spec
        self.handler = handler
        self.resource_version = resource_version
        self.page_size = page_size
        self.watch_timeout_s = watch_timeout_s
        self.retry_backoff_s = retry_backoff_s
        self.max_backoff_s = max_backoff_s
        self._stopping = threading.Event()
        self._resp: Any = None
        self.relists = 0

    def stop(self) -> None:
        self._stopping.set()
        resp = self._resp
        if resp is not None:
            # Unblock a read parked on an idle stream.
            sock = getattr(getattr(resp, "connection", None), "sock", None)
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def run(self) -> None:
        backoff = self.retry_backoff_s
        while not self._stopping.is_set():
            try:
                if self.resource_version is None:
                    items, rv = list_all(self.api, self.spec, self.page_size)
                    self.relists += 1
                    self.handler.on_list(self.spec, items, rv)
                    self.resource_version = rv
                self._watch_once()
                backoff = self.retry_backoff_s
                self.handler.on_error(self.spec, None)
            except Gone:
                log.info("watch %s: resourceVersion expired, relisting", self.spec.key)
                self.resource_version = None
            except ApiException as exc:
                if exc.status == 410:
                    self.resource_version = None
                    continue
                self._failed(f"HTTP {exc.status} {exc.reason}", backoff)
                backoff = min(backoff * 2, self.max_backoff_s)
            except (Urllib3Error, OSError, ValueError) as exc:
                if self._stopping.is_set():
                    return
                self._failed(f"{type(exc).__name__}: {exc}", backoff)
                backoff = min(backoff * 2, self.max_backoff_s)

    def _failed(self, message: str, backoff: float) -> None:
        log.warning("watch %s failed (%s); retrying in %.1fs", self.spec.key, message, backoff)
        self.handler.on_error(self.spec, message)
        self._stopping.wait(backoff)

    def _watch_once(self) -> None:
        fn = _list_function(self.api, self.spec)
        kwargs: dict[str, Any] = {
            "watch": True,
            "resource_version": self.resource_version,
            "allow_watch_bookmarks": True,
            "timeout_seconds": self.watch_timeout_s,
            "_preload_content": False,
            "_request_timeout": (10, self.watch_timeout_s + 30),
        }
        if self.spec.label_selector:
            kwargs["label_selector"] = self.spec.label_selector
        resp = fn(**kwargs)
        self._resp = resp
        try:
            if self._stopping.is_set():  # stop() ran before _resp was set
                return
            first = True
            for line in _lines(resp):
                if self._stopping.is_set():
                    return
                event = json.loads(line)
                type_, obj = event.get("type"), event.get("object") or {}
                if type_ == "ERROR":
                    if obj.get("code") == 410:
                        raise Gone(obj.get("message"))
                    raise ApiException(status=obj.get("code"), reason=obj.get("message"))
                if first:
                    self.handler.on_error(self.spec, None)
                    first = False
                rv = str((obj.get("metadata") or {}).get("resourceVersion") or "")
                if type_ == "BOOKMARK":
                    if rv:
                        self.resource_version = rv
                        self.handler.on_bookmark(self.spec, rv)
                    continue
                self.handler.on_change(self.spec, str(type_), obj, rv)
                if rv:
                    self.resource_version = rv
        finally:
            self._resp = None
            resp.release_conn()
