"""The emulated API server's storage: objects, one resourceVersion, watch history.

Like etcd behind a real API server, every write bumps one global
resourceVersion and is appended to a history that watches replay from. History
can be compacted (`compact()`), after which a watch from an older version gets
`410 Expired`, exactly the case clients must survive. All methods are
thread-safe; watchers receive events in resourceVersion order.
"""

from __future__ import annotations

import copy
import queue
import threading
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

Obj = dict[str, Any]
BREAK = object()  # tells a watch stream to drop its connection mid-stream


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Expired(Exception):
    """The requested resourceVersion is older than the retained history."""

    def __init__(self, requested: int, oldest: int) -> None:
        super().__init__(f"too old resource version: {requested} ({oldest})")


class NotFound(KeyError):
    pass


@dataclass(eq=False)
class Watcher:
    resource: str
    namespace: str | None
    queue: queue.Queue[Any] = field(default_factory=queue.Queue)


@dataclass
class Change:
    rv: int
    resource: str
    type: str  # ADDED | MODIFIED | DELETED
    obj: Obj


class ObjectStore:
    def __init__(self, history_limit: int = 200_000) -> None:
        self.lock = threading.RLock()
        self._rv = 1
        self._objects: dict[str, dict[tuple[str, str], Obj]] = {}
        self._history: deque[Change] = deque()
        self._history_limit = history_limit
        self._compacted_rv = 1  # history holds every change after this rv
        self._watchers: set[Watcher] = set()
        self.change_listeners: list[Callable[[Change], None]] = []

    @property
    def resource_version(self) -> int:
        with self.lock:
            return self._rv

    # --- writes -------------------------------------------------------------

    def _commit(self, resource: str, type_: str, obj: Obj) -> Obj:
        self._rv += 1
        obj["metadata"]["resourceVersion"] = str(self._rv)
        snapshot = copy.deepcopy(obj)
        change = Change(self._rv, resource, type_, snapshot)
        self._history.append(change)
        while len(self._history) > self._history_limit:
            self._compacted_rv = self._history.popleft().rv
        ns = snapshot["metadata"].get("namespace")
        for w in list(self._watchers):
            if w.resource == resource and (w.namespace is None or w.namespace == ns):
                w.queue.put(change)
        for listener in self.change_listeners:
            listener(change)
        return copy.deepcopy(snapshot)

    def create(self, resource: str, obj: Obj) -> Obj:
        with self.lock:
            obj = copy.deepcopy(obj)
            meta = obj.setdefault("metadata", {})
            key = (meta.get("namespace") or "", meta["name"])
            table = self._objects.setdefault(resource, {})
            if key in table:
                raise ValueError(f"{resource} {key[0]}/{key[1]} already exists")
            meta.setdefault("uid", str(uuid.uuid4()))
            meta.setdefault("creationTimestamp", now_rfc3339())
            meta["generation"] = 1
            table[key] = obj
            return self._commit(resource, "ADDED", obj)

    def update(self, resource: str, obj: Obj) -> Obj:
        with self.lock:
            meta = obj["metadata"]
            key = (meta.get("namespace") or "", meta["name"])
            current = self._objects.get(resource, {}).get(key)
            if current is None:
                raise NotFound(f"{resource} {key[0]}/{key[1]}")
            obj = copy.deepcopy(obj)
            obj["metadata"]["uid"] = current["metadata"]["uid"]
            obj["metadata"]["creationTimestamp"] = current["metadata"]["creationTimestamp"]
            if obj.get("spec") != current.get("spec"):
                obj["metadata"]["generation"] = current["metadata"].get("generation", 1) + 1
            self._objects[resource][key] = obj
            return self._commit(resource, "MODIFIED", obj)

    def delete(self, resource: str, namespace: str, name: str) -> Obj:
        with self.lock:
            obj = self._objects.get(resource, {}).pop((namespace, name), None)
            if obj is None:
                raise NotFound(f"{resource} {namespace}/{name}")
            return self._commit(resource, "DELETED", obj)

    # --- reads --------------------------------------------------------------

    def get(self, resource: str, namespace: str, name: str) -> Obj:
        with self.lock:
            obj = self._objects.get(resource, {}).get((namespace, name))
            if obj is None:
                raise NotFound(f"{resource} {namespace}/{name}")
            return copy.deepcopy(obj)

    def list_objects(self, resource: str, namespace: str | None) -> tuple[list[Obj], int]:
        """Current objects in key order (namespace, name) and the list's rv."""
        with self.lock:
            items = [
                copy.deepcopy(obj)
                for (ns, _), obj in sorted(self._objects.get(resource, {}).items())
                if namespace is None or ns == namespace
            ]
            return items, self._rv

    def watch(
        self, resource: str, namespace: str | None, since: int | None
    ) -> tuple[Watcher, list[Change]]:
        """Register a watcher; return it with the backlog it must send first.

        `since=None` means "from now, with the current objects as ADDED"
        (resourceVersion unset or "0"); otherwise the changes after `since`.
        """
        with self.lock:
            watcher = Watcher(resource, namespace)
            if since is None:
                items, rv = self.list_objects(resource, namespace)
                backlog = [Change(rv, resource, "ADDED", o) for o in items]
            else:
                if since < self._compacted_rv:
                    raise Expired(since, self._compacted_rv)
                backlog = [
                    Change(c.rv, c.resource, c.type, copy.deepcopy(c.obj))
                    for c in self._history
                    if c.rv > since
                    and c.resource == resource
                    and (namespace is None or c.obj["metadata"].get("namespace") == namespace)
                ]
            self._watchers.add(watcher)
            return watcher, backlog

    def unwatch(self, watcher: Watcher) -> None:
        with self.lock:
            self._watchers.discard(watcher)

    def idle_rv(self, watcher: Watcher) -> int | None:
        """The rv a BOOKMARK may carry: current, if the watcher has sent all before it."""
        with self.lock:
            return self._rv if watcher.queue.empty() else None

    # --- faults -------------------------------------------------------------

    def compact(self) -> int:
        """Forget all history (as etcd compaction does); old rvs now get 410."""
        with self.lock:
            self._history.clear()
            self._compacted_rv = self._rv
            return self._rv

    def break_watches(self) -> int:
        """Drop every open watch connection mid-stream; returns how many."""
        with self.lock:
            watchers = list(self._watchers)
            for w in watchers:
                w.queue.put(BREAK)
            return len(watchers)

    def close_watches(self) -> None:
        with self.lock:
            for w in list(self._watchers):
                w.queue.put(None)


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch (also how strategic merge treats scalars/maps)."""
    if not isinstance(patch, Mapping):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result
