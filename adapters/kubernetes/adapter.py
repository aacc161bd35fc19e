"""The Kubernetes source: watch threads that buffer normalised events; `poll` drains.

Guarantees (the `Adapter` contract, for a stream):

* `poll(None)` lists every watched resource synchronously and returns the
  current Jobs, pods and missed schedules with a fresh discovery; a failure
  raises `SourceError` and nothing is returned.
* Afterwards one thread per (resource, namespace) watches from the list's
  resourceVersion. Each change is normalised under one lock and appended to
  the buffer together with the resourceVersion it brings its stream to, so
  the cursor returned with a batch (JSON `{"rv": {"jobs@ns": "123", ...}}`)
  never runs ahead of the events in it.
* A batch stays owed until the next `poll` presents the cursor returned with
  it; a `poll` with any other cursor gets it again (a failed commit loses
  nothing; duplicates are harmless).
* A batch holds at most `max_batch_events` events (default 2000) unless one
  list alone is larger: the buffer is a queue of chunks, each the events one
  stream change produced and the version it brings that stream to, and a
  batch takes whole chunks in order, so its cursor covers exactly what it
  carries. What stays buffered is returned by the next polls.
* Within what is still buffered, an update to a run that leaves its kind,
  state and attempt unchanged replaces the buffered one (the newer object
  carries everything the older did): a busy stream costs the store one event
  per run and step, not one per write to the object.
* The runtime's poller is woken (`set_wakeup`, `contract.WakingAdapter`)
  whenever events are buffered, so a change need not wait for the interval.
* A new adapter given a stored cursor lists once to learn the objects (emits
  nothing), then watches from the stored versions, so changes made while the
  gateway was down — including the final state a DELETED event carries for a
  Job removed by TTL — are replayed. If those versions have expired (410),
  it relists and reconciles: objects gone from the list are finished from
  the last copy it holds, and Jobs deleted unseen are finished from the Job
  controller's Events (`Completed`, `BackoffLimitExceeded`, …).
"""

from __future__ import annotations

import json
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError as Urllib3Error

from adapters.kubernetes import normalize
from adapters.kubernetes.client import build_api_client
from adapters.kubernetes.control import resume as resume_cronjob
from adapters.kubernetes.control import suspend as suspend_cronjob
from adapters.kubernetes.watch import Obj, StreamSpec, StreamWatcher, list_all
from gateway.contract import (
    ControlReceipt,
    JobSpec,
    PollResult,
    RunEvent,
    SourceConfig,
    SourceError,
)
from gateway.states import StateMap, default_state_map

CURSOR_VERSION = 1
MAX_EVIDENCE_PER_OBJECT = 20
MAX_TRACKED = 50_000
JOB_EVENT_REASONS = normalize.JOB_FAILURE_REASONS | {"Completed"}


@dataclass(eq=False)
class _Chunk:
    """What one stream change produced, and the version it brings its stream to.

    A slot is None once a newer event of the same run and step replaced it.
    """

    stream: str | None
    rv: str | None
    events: list[RunEvent | None] = field(default_factory=list)


def _same_step(a: RunEvent, b: RunEvent) -> bool:
    return a.kind == b.kind and a.state == b.state and a.attempt == b.attempt


def _now() -> datetime:
    return datetime.now(UTC)


def _key(obj: Mapping[str, Any]) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return str(meta.get("namespace") or ""), str(meta.get("name") or "")


class KubernetesAdapter:
    kind = "kubernetes"

    def __init__(
        self,
        config: SourceConfig,
        *,
        api_client: client.ApiClient | None = None,
        states: StateMap | None = None,
    ) -> None:
        self.name = config.name
        options = dict(config.options)
        self.api = api_client or build_api_client(config.name, options)
        self.states = states or default_state_map()
        self.namespaces = self._namespaces(options)
        self.page_size = int(options.get("page_size", 500))
        self.watch_timeout_s = int(options.get("watch_timeout_s", 300))
        self.retry_backoff_s = float(options.get("retry_backoff_s", 1.0))
        self.default_timezone = str(options.get("controller_timezone", "UTC"))
        airflow_pods = bool(options.get("airflow_pods", True))
        self.streams = self._stream_specs(airflow_pods)
        self.batch = client.BatchV1Api(self.api)

        self.max_batch_events = int(options.get("max_batch_events", 2000))
        if self.max_batch_events < 1:
            raise SourceError(
                self.name, "options.max_batch_events must be at least 1", retryable=False
            )
        self._lock = threading.RLock()
        self._buffer: deque[_Chunk] = deque()
        self._buffered = 0  # live (not replaced) events in the buffer
        # run key -> where its newest still-buffered event sits
        self._newest: dict[str, tuple[_Chunk, int]] = {}
        self._owed: list[RunEvent] = []
        # Stream versions as of everything handed out so far: the cursor.
        self._rvs: dict[str, str] = {}
        self._wakeup: Callable[[], None] | None = None
        self._last_cursor: str | None = None
        self._discovery_dirty = False
        # stream key -> (last error, monotonic time it started failing)
        self._errors: dict[str, tuple[str, float]] = {}
        self.error_grace_s = float(options.get("error_grace_s", 10.0))
        self._threads: list[StreamWatcher] = []
        self._started = False
        # What the streams have shown, for reconciling a relist and for
        # re-normalising an object when an Event about it arrives.
        self._members: dict[str, set[tuple[str, str]]] = {}
        self._jobs: dict[tuple[str, str], Obj] = {}
        self._pods: dict[tuple[str, str], Obj] = {}
        self._cronjobs: dict[tuple[str, str], Obj] = {}
        self._evidence: OrderedDict[tuple[str, str, str], list[dict[str, Any]]] = OrderedDict()
        self._attempts: dict[str, dict[str, int]] = {}
        self._finished_jobs: OrderedDict[str, None] = OrderedDict()
        # Discovery as of the last `_discovery()`, by (resource, namespace,
        # name), and the CronJobs and Jobs that changed since: only those are
        # translated again.
        self._specs: dict[tuple[str, str, str], JobSpec] = {}
        self._stale: set[tuple[str, str, str]] = set()

    # --- configuration ------------------------------------------------------

    def _namespaces(self, options: Mapping[str, Any]) -> list[str | None]:
        raw = options.get("namespaces", options.get("namespace"))
        if raw in (None, "", "*", [], ["*"]):
            return [None]
        if isinstance(raw, str):
            raw = [raw]
        if not isinstance(raw, list) or not all(isinstance(n, str) and n for n in raw):
            raise SourceError(
                self.name,
                "options.namespaces must be a namespace or a list of them",
                retryable=False,
            )
        return list(dict.fromkeys(raw))

    def _stream_specs(self, airflow_pods: bool) -> list[StreamSpec]:
        specs: list[StreamSpec] = []
        for ns in self.namespaces:
            specs += [
                StreamSpec("cronjobs", ns),
                StreamSpec("jobs", ns),
                StreamSpec("pods", ns, "batch.kubernetes.io/job-name", "job"),
                StreamSpec("events", ns),
            ]
            if airflow_pods:
                specs += [
                    StreamSpec("pods", ns, "kubernetes_pod_operator", "kpo"),
                    StreamSpec("pods", ns, "airflow-worker", "executor"),
                ]
        return specs

    # --- Adapter protocol ---------------------------------------------------

    def discover(self) -> list[JobSpec]:
        """CronJobs and standalone Jobs: from the watch cache while every stream
        is watching (an informer's view, as fresh as a list), else listed.

        Listing every Job on each discovery made the poll cycle grow with the
        cluster's Job count; the watches already hold them.
        """
        with self._lock:
            if self._started and not self._errors and all(t.is_alive() for t in self._threads):
                return self._discovery()
        specs: list[JobSpec] = []
        try:
            for spec in self.streams:
                if spec.resource == "cronjobs":
                    items, _ = list_all(self.api, spec, self.page_size)
                    specs += [self._cronjob_spec(o) for o in items]
                elif spec.resource == "jobs":
                    items, _ = list_all(self.api, spec, self.page_size)
                    specs += [
                        normalize.standalone_job_spec(o, source=self.name)
                        for o in items
                        if normalize.cronjob_owner(o) is None
                    ]
        except (ApiException, Urllib3Error, OSError, ValueError) as exc:
            raise SourceError(self.name, f"discover failed: {exc}") from exc
        return specs

    def poll(self, cursor: str | None) -> PollResult:
        if not self._started:
            self._start(cursor)
        with self._lock:
            if cursor is not None and cursor == self._last_cursor:
                self._owed = []
            # A dropped connection is routine (the stream reconnects); a stream
            # that keeps failing is the source's error for the status page.
            failing = {
                k: msg
                for k, (msg, since) in self._errors.items()
                if time.monotonic() - since >= self.error_grace_s
            }
            if not self._buffered and not self._owed and failing:
                detail = "; ".join(f"{k}: {v}" for k, v in sorted(failing.items()))
                raise SourceError(self.name, f"watch failing: {detail}")
            self._drain_into_owed()
            new_cursor = json.dumps({"v": CURSOR_VERSION, "rv": self._rvs}, sort_keys=True)
            self._last_cursor = new_cursor
            jobs = self._discovery() if self._discovery_dirty else None
            self._discovery_dirty = False
            result = PollResult(events=list(self._owed), cursor=new_cursor, jobs=jobs)
            more = self._buffered > 0
        if more:
            self._wake()  # the rest of a size-limited drain
        return result

    def set_wakeup(self, callback: Callable[[], None] | None) -> None:
        """`contract.WakingAdapter`: `callback()` whenever events are buffered."""
        with self._lock:
            self._wakeup = callback
            pending = self._buffered > 0
        if pending:
            self._wake()

    def _wake(self) -> None:
        callback = self._wakeup
        if callback is not None:
            callback()

    # --- the buffer (callers hold the lock) ---------------------------------

    def _push(self, stream: str | None, rv: str | None, events: list[RunEvent]) -> None:
        chunk = _Chunk(stream, rv or None)
        for event in events:
            where = self._newest.get(event.key)
            if where is not None:
                older_chunk, i = where
                older = older_chunk.events[i]
                if older is not None and _same_step(older, event):
                    older_chunk.events[i] = None
                    self._buffered -= 1
            self._newest[event.key] = (chunk, len(chunk.events))
            chunk.events.append(event)
            self._buffered += 1
        self._buffer.append(chunk)

    def _drain_into_owed(self) -> None:
        """Move whole chunks, in order, to the owed batch (up to the size limit)."""
        taken = len(self._owed)
        while self._buffer:
            chunk = self._buffer[0]
            live = [e for e in chunk.events if e is not None]
            if live and taken and taken + len(live) > self.max_batch_events:
                return
            self._buffer.popleft()
            for i, event in enumerate(chunk.events):
                if event is not None and self._newest.get(event.key) == (chunk, i):
                    del self._newest[event.key]
            self._owed.extend(live)
            self._buffered -= len(live)
            taken += len(live)
            if chunk.stream is not None and chunk.rv:
                self._rvs[chunk.stream] = chunk.rv

    def pause(self, job_key: str) -> ControlReceipt:
        return suspend_cronjob(self.batch, self.name, job_key)

    def resume(self, job_key: str, receipt: ControlReceipt | None = None) -> None:
        resume_cronjob(self.batch, self.name, job_key, receipt)

    def close(self) -> None:
        for t in self._threads:
            t.stop()
        for t in self._threads:
            t.join(timeout=5)
        self._threads = []
        self._started = False

    @property
    def relists(self) -> int:
        return sum(t.relists for t in self._threads)

    # --- start-up -----------------------------------------------------------

    def _parse_cursor(self, cursor: str | None) -> dict[str, str]:
        if cursor is None:
            return {}
        try:
            doc = json.loads(cursor)
            rvs = doc["rv"]
            if not isinstance(rvs, dict):
                raise TypeError("rv is not an object")
        except (ValueError, KeyError, TypeError) as exc:
            raise SourceError(
                self.name, f"stored cursor is not a Kubernetes cursor: {exc}", retryable=False
            ) from exc
        return {str(k): str(v) for k, v in rvs.items()}

    def _start(self, cursor: str | None) -> None:
        stored = self._parse_cursor(cursor)
        listed: list[tuple[StreamSpec, list[Obj], str]] = []
        try:
            for spec in self.streams:
                items, rv = list_all(self.api, spec, self.page_size)
                listed.append((spec, items, rv))
        except (ApiException, Urllib3Error, OSError, ValueError) as exc:
            raise SourceError(self.name, f"initial list failed: {exc}") from exc
        start_rvs: dict[str, str] = {}
        with self._lock:
            for spec, items, rv in listed:
                if spec.key in stored:
                    # Learn the objects, emit nothing: the watch replays what
                    # changed since the stored version.
                    self._remember(spec, items)
                    start_rvs[spec.key] = stored[spec.key]
                    self._rvs[spec.key] = stored[spec.key]
                else:
                    self.on_list(spec, items, rv)
                    start_rvs[spec.key] = rv
            self._discovery_dirty = True
        self._threads = [
            StreamWatcher(
                self.api,
                spec,
                self,
                resource_version=start_rvs[spec.key],
                page_size=self.page_size,
                watch_timeout_s=self.watch_timeout_s,
                retry_backoff_s=self.retry_backoff_s,
            )
            for spec in self.streams
        ]
        for t in self._threads:
            t.start()
        self._started = True

    def _remember(self, spec: StreamSpec, items: list[Obj]) -> None:
        members = self._members.setdefault(spec.key, set())
        for obj in sorted(
            items, key=lambda o: str((o.get("metadata") or {}).get("creationTimestamp"))
        ):
            key = _key(obj)
            if spec.resource in ("jobs", "cronjobs"):
                self._hold(spec.resource, key, obj)
            elif spec.resource == "pods":
                self._pods[key] = obj
                self._attempt(obj)
            if spec.resource != "events":
                members.add(key)

    # --- StreamHandler (called from watch threads) --------------------------

    def on_list(self, spec: StreamSpec, items: list[Obj], rv: str) -> None:
        """A full list: emit every object, and finish those that vanished."""
        observed = _now()
        with self._lock:
            events: list[RunEvent] = []
            before = set(self._members.get(spec.key, set()))
            ordered = sorted(
                items, key=lambda o: str((o.get("metadata") or {}).get("creationTimestamp"))
            )
            for obj in ordered:
                events += self._apply(spec, "ADDED", obj, observed)
            present = {_key(o) for o in items}
            if spec.resource != "events":
                for key in before - present:
                    gone = self._last_copy(spec.resource, key)
                    if gone is not None:
                        events += self._apply(spec, "DELETED", gone, observed, unseen=True)
            self._push(spec.key, rv, events)
        if events:
            self._wake()

    def on_change(self, spec: StreamSpec, type_: str, obj: Obj, rv: str) -> None:
        observed = _now()
        with self._lock:
            events = self._apply(spec, type_, obj, observed)
            self._push(spec.key, rv, events)
        if events:
            self._wake()

    def on_bookmark(self, spec: StreamSpec, rv: str) -> None:
        with self._lock:
            if self._buffer:
                self._push(spec.key, rv, [])  # after the events still buffered
            else:
                self._rvs[spec.key] = rv

    def on_error(self, spec: StreamSpec, message: str | None) -> None:
        with self._lock:
            if message is None:
                self._errors.pop(spec.key, None)
            else:
                since = self._errors.get(spec.key, (message, time.monotonic()))[1]
                self._errors[spec.key] = (message, since)

    # --- normalising under the lock -----------------------------------------

    def _last_copy(self, resource: str, key: tuple[str, str]) -> Obj | None:
        table = {"jobs": self._jobs, "pods": self._pods, "cronjobs": self._cronjobs}.get(resource)
        return None if table is None else table.get(key)

    def _apply(
        self, spec: StreamSpec, type_: str, obj: Obj, observed: datetime, *, unseen: bool = False
    ) -> list[RunEvent]:
        key = _key(obj)
        members = self._members.setdefault(spec.key, set())
        deleted = type_ == "DELETED"
        if spec.resource != "events":
            if deleted:
                members.discard(key)
            else:
                members.add(key)
        if spec.resource == "jobs":
            return self._apply_job(obj, key, observed, deleted=deleted, unseen=unseen)
        if spec.resource == "pods":
            return self._apply_pod(obj, key, observed, deleted=deleted)
        if spec.resource == "cronjobs":
            self._hold("cronjobs", key, None if deleted else obj)
            self._discovery_dirty = True
            return []
        return self._apply_event(obj, observed)

    def _evidence_for(self, kind: str, key: tuple[str, str]) -> list[dict[str, Any]]:
        return self._evidence.get((kind, *key), [])

    def _apply_job(
        self, obj: Obj, key: tuple[str, str], observed: datetime, *, deleted: bool, unseen: bool
    ) -> list[RunEvent]:
        evidence = self._evidence_for("Job", key)
        event = normalize.job_event(
            obj,
            source=self.name,
            observed_at=observed,
            states=self.states,
            evidence=evidence,
            # Gone from a relist: how it ended is unknown unless Events say.
            deleted=deleted and not unseen,
        )
        uid = str((obj.get("metadata") or {}).get("uid") or "")
        self._hold("jobs", key, None if deleted else obj)
        if deleted:
            self._evidence.pop(("Job", *key), None)
            self._attempts.pop(uid, None)
            if event.state.terminal:
                self._finished_jobs[uid] = None
            while len(self._finished_jobs) > MAX_TRACKED:
                self._finished_jobs.popitem(last=False)
        return [event]

    def _hold(self, resource: str, key: tuple[str, str], obj: Obj | None) -> None:
        """Keep the newest copy of a Job or CronJob (None: it is gone)."""
        table = self._jobs if resource == "jobs" else self._cronjobs
        if obj is None:
            table.pop(key, None)
        else:
            table[key] = obj
        self._stale.add((resource, *key))

    def _attempt(self, pod: Obj) -> int:
        job_uid = normalize.pod_job_uid(pod)
        if not job_uid:
            return 1
        uid = str((pod.get("metadata") or {}).get("uid") or "")
        seen = self._attempts.setdefault(job_uid, {})
        if uid not in seen:
            seen[uid] = len(seen) + 1
        return seen[uid]

    def _apply_pod(
        self, obj: Obj, key: tuple[str, str], observed: datetime, *, deleted: bool
    ) -> list[RunEvent]:
        event = normalize.pod_event(
            obj,
            source=self.name,
            observed_at=observed,
            states=self.states,
            attempt=self._attempt(obj),
            evidence=self._evidence_for("Pod", key),
            deleted=deleted,
        )
        if deleted:
            self._pods.pop(key, None)
            self._evidence.pop(("Pod", *key), None)
        else:
            self._pods[key] = obj
        return [event]

    def _apply_event(self, obj: Obj, observed: datetime) -> list[RunEvent]:
        view = normalize.event_view(obj)
        kind, reason = view["kind"], view["reason"]
        key = (str(view["namespace"]), str(view["name"]))
        if kind == "CronJob":
            missed = normalize.missed_run_event(view, source=self.name, observed_at=observed)
            return [missed] if missed is not None else []
        relevant = (kind == "Pod" and reason in normalize.POD_EVIDENCE_REASONS) or (
            kind == "Job" and reason in JOB_EVENT_REASONS
        )
        if not relevant:
            return []
        if kind == "Job" and view.get("uid") in self._finished_jobs:
            return []  # its final state was already taken from the object
        evidence = self._evidence.setdefault((kind, *key), [])
        self._evidence.move_to_end((kind, *key))
        entry = {k: view[k] for k in ("reason", "message", "type", "at", "uid")}
        if entry in evidence:
            return []
        evidence.append(entry)
        del evidence[:-MAX_EVIDENCE_PER_OBJECT]
        while len(self._evidence) > MAX_TRACKED:
            self._evidence.popitem(last=False)
        if kind == "Pod":
            pod = self._pods.get(key)
            return self._apply_pod(pod, key, observed, deleted=False) if pod is not None else []
        job = self._jobs.get(key)
        if job is not None:
            if (job.get("metadata") or {}).get("uid") != view.get("uid") and view.get("uid"):
                return []  # an Event about an older Job of the same name
            return self._apply_job(job, key, observed, deleted=False, unseen=False)
        from_events = normalize.job_event_from_events(
            view, evidence, source=self.name, observed_at=observed, job=self._owner_guess(key)
        )
        return [from_events] if from_events is not None else []

    def _owner_guess(self, key: tuple[str, str]) -> str | None:
        """A CronJob's Jobs are named `<cronjob>-<minutes since epoch>`."""
        ns, name = key
        base, _, suffix = name.rpartition("-")
        if suffix.isdigit() and (ns, base) in self._cronjobs:
            return normalize.cronjob_job_key(ns, base)
        return None

    # --- discovery from what the streams hold -------------------------------

    def _cronjob_spec(self, obj: Obj) -> JobSpec:
        return normalize.cronjob_spec(obj, source=self.name, default_timezone=self.default_timezone)

    def _discovery(self) -> list[JobSpec]:
        """Every CronJob and standalone Job as a spec; callers hold the lock.

        It runs under the lock the watch threads need, every few intervals,
        over every Job the cluster keeps: translating only what changed since
        the last discovery keeps it from growing with the cluster.
        """
        for where in self._stale:
            resource, ns, name = where
            obj = (self._jobs if resource == "jobs" else self._cronjobs).get((ns, name))
            spec = None if obj is None else self._spec_of(resource, obj)
            if spec is None:
                self._specs.pop(where, None)
            else:
                self._specs[where] = spec
        self._stale.clear()
        return list(self._specs.values())

    def _spec_of(self, resource: str, obj: Obj) -> JobSpec | None:
        if resource == "cronjobs":
            return self._cronjob_spec(obj)
        if normalize.cronjob_owner(obj) is None:
            return normalize.standalone_job_spec(obj, source=self.name)
        return None  # a CronJob's Job: its CronJob is the job


def create(config: SourceConfig) -> KubernetesAdapter:
    return KubernetesAdapter(config)
