"""HTTP access to one Airflow: Airflow 3 (`/api/v2`) or Airflow 2 (`/api/v1`).

Both clients return the API's JSON as plain dicts (the normaliser reads both
versions) and raise `SourceError` for anything that stops a read: connection
failures, timeouts, 5xx, and a 401 that a fresh credential does not cure.

- `V2Client` goes through `apache-airflow-client` 3.x. It gets a JWT from
  ``POST /auth/token`` (username/password) — or uses a configured token — and
  on a 401 fetches a new one and repeats the request once.
- `V1Client` speaks ``/api/v1`` with basic auth over httpx.

`create_client` picks one from ``options.api`` (``v2``, ``v1`` or ``auto``:
probe ``/api/v2/monitor/health`` then ``/api/v1/health``).

Every list call is one request for one page; paging and watermarks live in the
poller. `requests` counts HTTP requests made, for the benchmark and the tests.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any, Protocol
from urllib.parse import quote

import httpx

from adapters.airflow.logs import DEFAULT_MAX_BYTES, LogTail
from gateway.contract import SourceError

PAGE_LIMIT = 100
DEFAULT_TIMEOUT_S = 30.0


@dataclass
class Page:
    """One page of a list endpoint."""

    items: list[dict[str, Any]]
    total: int | None
    next_cursor: str | None = None
    server_time: datetime | None = None
    supports_cursor: bool = False


@dataclass
class Settings:
    """What a client needs, read from a source's options."""

    source: str
    base_url: str
    api: str = "auto"
    username: str | None = None
    password: str | None = None
    token: str | None = None
    timeout_s: float = DEFAULT_TIMEOUT_S
    verify_tls: bool = True
    log_max_bytes: int = DEFAULT_MAX_BYTES

    @classmethod
    def from_options(cls, source: str, options: Mapping[str, Any]) -> Settings:
        url = options.get("url") or options.get("base_url")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ValueError(f"source {source!r}: options.url must be an http(s) URL")
        api = str(options.get("api", "auto"))
        if api not in ("auto", "v1", "v2"):
            raise ValueError(f"source {source!r}: options.api must be v2, v1 or auto, not {api!r}")
        return cls(
            source=source,
            base_url=url.rstrip("/"),
            api=api,
            username=options.get("username"),
            password=options.get("password"),
            token=options.get("token"),
            timeout_s=float(options.get("timeout_s", DEFAULT_TIMEOUT_S)),
            verify_tls=bool(options.get("verify_tls", True)),
            log_max_bytes=int(options.get("log_max_bytes", DEFAULT_MAX_BYTES)),
        )


class AirflowClient(Protocol):
    api_version: str
    requests: int

    def list_dag_runs(
        self, *, updated_since: datetime | None, offset: int, cursor: str | None, limit: int
    ) -> Page: ...

    def list_task_instances(
        self, *, updated_since: datetime | None, offset: int, cursor: str | None, limit: int
    ) -> Page: ...

    def task_tries(
        self, dag_id: str, run_id: str, task_id: str, map_index: int
    ) -> list[dict[str, Any]]: ...

    def log_lines(
        self, dag_id: str, run_id: str, task_id: str, map_index: int, try_number: int
    ) -> list[str]: ...

    def list_dags(self, *, offset: int, limit: int) -> Page: ...

    def dag_details(self, dag_id: str) -> dict[str, Any]: ...

    def dag_tasks(self, dag_id: str) -> list[dict[str, Any]]: ...

    def dag_source(self, dag: Mapping[str, Any]) -> str | None: ...

    def set_paused(self, dag_id: str, paused: bool) -> dict[str, Any]: ...

    def trigger(
        self, dag_id: str, *, run_id: str | None, conf: Mapping[str, Any] | None
    ) -> dict[str, Any]: ...

    def close(self) -> None: ...


def _server_time(headers: Mapping[str, str]) -> datetime | None:
    value = headers.get("date") or headers.get("Date")
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    # A header we cannot read as one aware instant (e.g. two Date headers joined by a
    # proxy) is ignored: the poller then falls back to its own clock.
    return parsed if parsed.tzinfo is not None else None


def _token_refused(body: bytes | None) -> bool:
    # Airflow 3.3 answers 403 {"detail": "Invalid JWT token"} for a token it cannot
    # verify (401 is for a missing or expired one): both call for a new token.
    return bool(body) and b"JWT" in (body or b"")


def _iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def _q(value: str) -> str:
    return quote(value, safe="")


class _HttpCore:
    """Shared request loop: counting, error typing, one credential renewal on 401."""

    # The media type a version's log endpoint is asked for (`log_lines`).
    log_media_type = "text/plain"

    def __init__(self, settings: Settings, prefix: str) -> None:
        self.settings = settings
        self.prefix = prefix
        self.requests = 0
        self._http = httpx.Client(
            base_url=settings.base_url,
            timeout=settings.timeout_s,
            verify=settings.verify_tls,
            headers={"Accept": "application/json"},
        )

    def _auth_headers(self, renew: bool) -> dict[str, str]:
        return {}

    def _fail(self, message: str, *, retryable: bool = True) -> SourceError:
        return SourceError(self.settings.source, message, retryable=retryable)

    def send(
        self,
        method: str,
        path: str,
        *,
        params: Any = None,
        json_body: Any = None,
        headers: Mapping[str, str] | None = None,
        ok: tuple[int, ...] = (200,),
        stream_limit: int | None = None,
    ) -> httpx.Response:
        url = path if path.startswith("/auth") else f"{self.prefix}{path}"
        for attempt in (0, 1):
            request_headers = {**self._auth_headers(renew=attempt == 1), **(headers or {})}
            self.requests += 1
            try:
                if stream_limit is None:
                    response = self._http.request(
                        method, url, params=params, json=json_body, headers=request_headers
                    )
                else:
                    response = self._read_bounded(
                        method, url, params, request_headers, stream_limit
                    )
            except httpx.TimeoutException as exc:
                raise self._fail(
                    f"timed out after {self.settings.timeout_s}s on {method} {url}"
                ) from exc
            except httpx.HTTPError as exc:
                raise self._fail(f"cannot reach {self.settings.base_url}: {exc}") from exc
            refused = response.status_code == 401 or (
                response.status_code == 403 and _token_refused(response.content)
            )
            if refused and attempt == 0:
                continue
            if refused:
                raise self._fail(
                    f"{response.status_code} from {method} {url} even with a new credential",
                    retryable=False,
                )
            if response.status_code in ok:
                return response
            detail = response.text[:300]
            if response.status_code >= 500 or response.status_code == 429:
                raise self._fail(f"{response.status_code} from {method} {url}: {detail}")
            raise self._fail(
                f"{response.status_code} from {method} {url}: {detail}", retryable=False
            )
        raise AssertionError("unreachable: the loop returns or raises")  # pragma: no cover

    def _read_bounded(
        self, method: str, url: str, params: Any, headers: Mapping[str, str], limit: int
    ) -> httpx.Response:
        # Reads at most `limit` bytes, keeping only the tail in memory.
        with self._http.stream(method, url, params=params, headers=headers) as streamed:
            if streamed.status_code != 200:
                streamed.read()
                return streamed
            tail = LogTail()
            read = 0
            for chunk in streamed.iter_text():
                tail.feed(chunk)
                read += len(chunk)
                if read >= limit:
                    break
            return httpx.Response(
                200,
                headers={"content-type": streamed.headers.get("content-type", "")},
                content="\n".join(tail.lines()).encode(),
            )

    def get_json(self, path: str, **params: Any) -> Any:
        response = self.send("GET", path, params={k: v for k, v in params.items() if v is not None})
        try:
            return response.json()
        except ValueError as exc:
            raise self._fail(f"GET {path} did not return JSON") from exc

    def log_lines(
        self, dag_id: str, run_id: str, task_id: str, map_index: int, try_number: int
    ) -> list[str]:
        path = (
            f"/dags/{_q(dag_id)}/dagRuns/{_q(run_id)}/taskInstances/{_q(task_id)}/logs/{try_number}"
        )
        params: dict[str, Any] = {"full_content": "true"}
        if map_index >= 0:
            params["map_index"] = map_index
        response = self.send(
            "GET",
            path,
            params=params,
            headers={"Accept": self.log_media_type},
            stream_limit=self.settings.log_max_bytes,
        )
        return response.text.splitlines()

    def close(self) -> None:
        self._http.close()


class V1Client(_HttpCore):
    """Airflow 2: ``/api/v1`` with basic auth."""

    api_version = "v1"

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings, "/api/v1")
        if settings.username is not None:
            self._http.auth = httpx.BasicAuth(settings.username, settings.password or "")

    def _list(
        self, path: str, key: str, updated_since: datetime | None, offset: int, limit: int
    ) -> Page:
        params: dict[str, Any] = {"limit": limit, "offset": offset, "order_by": "id"}
        if updated_since is not None:
            params["updated_at_gte"] = _iso(updated_since)
        response = self.send("GET", path, params=params)
        body = response.json()
        return Page(
            items=list(body.get(key) or []),
            total=body.get("total_entries"),
            server_time=_server_time(response.headers),
        )

    def list_dag_runs(
        self, *, updated_since: datetime | None, offset: int, cursor: str | None, limit: int
    ) -> Page:
        return self._list("/dags/~/dagRuns", "dag_runs", updated_since, offset, limit)

    def list_task_instances(
        self, *, updated_since: datetime | None, offset: int, cursor: str | None, limit: int
    ) -> Page:
        # Airflow 2.6+ filters TIs by updated_at but cannot order this list; offset paging
        # over a growing set may repeat a row, which the poller's dedupe absorbs.
        params: dict[str, Any] = {"limit": limit, "offset": offset}
        if updated_since is not None:
            params["updated_at_gte"] = _iso(updated_since)
        response = self.send("GET", "/dags/~/dagRuns/~/taskInstances", params=params)
        body = response.json()
        return Page(
            items=list(body.get("task_instances") or []),
            total=body.get("total_entries"),
            server_time=_server_time(response.headers),
        )

    def task_tries(
        self, dag_id: str, run_id: str, task_id: str, map_index: int
    ) -> list[dict[str, Any]]:
        path = f"/dags/{_q(dag_id)}/dagRuns/{_q(run_id)}/taskInstances/{_q(task_id)}"
        if map_index >= 0:
            path += f"/{map_index}"
        body = self.get_json(f"{path}/tries")
        return list(body.get("task_instances") or [])

    def list_dags(self, *, offset: int, limit: int) -> Page:
        body = self.get_json("/dags", limit=limit, offset=offset, order_by="dag_id")
        return Page(items=list(body.get("dags") or []), total=body.get("total_entries"))

    def dag_details(self, dag_id: str) -> dict[str, Any]:
        return dict(self.get_json(f"/dags/{_q(dag_id)}/details"))

    def dag_tasks(self, dag_id: str) -> list[dict[str, Any]]:
        return list(self.get_json(f"/dags/{_q(dag_id)}/tasks").get("tasks") or [])

    def dag_source(self, dag: Mapping[str, Any]) -> str | None:
        token = dag.get("file_token")
        if not token:
            return None
        response = self.send("GET", f"/dagSources/{token}", headers={"Accept": "text/plain"})
        return response.text

    def set_paused(self, dag_id: str, paused: bool) -> dict[str, Any]:
        response = self.send(
            "PATCH",
            f"/dags/{_q(dag_id)}",
            params={"update_mask": "is_paused"},
            json_body={"is_paused": paused},
        )
        return dict(response.json())

    def trigger(
        self, dag_id: str, *, run_id: str | None, conf: Mapping[str, Any] | None
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"conf": dict(conf or {})}
        if run_id:
            body["dag_run_id"] = run_id
        response = self.send("POST", f"/dags/{_q(dag_id)}/dagRuns", json_body=body)
        return dict(response.json())


class V2Client(_HttpCore):
    """Airflow 3: ``/api/v2`` with a JWT from ``POST /auth/token``, renewed on 401.

    Requests are built and sent by `apache-airflow-client` (its generated
    parameter serialisation is the reference for list parameters); responses
    are read raw, as JSON, so a field the client's models do not know yet
    never fails a poll.
    """

    api_version = "v2"
    # NDJSON streams one record per line, so the tail can be kept within a byte budget.
    log_media_type = "application/x-ndjson"

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings, "/api/v2")
        from airflow_client import client as afc  # imported here: only Airflow 3 sources need it

        self._afc = afc
        self._token: str | None = settings.token
        self._configuration = afc.Configuration(host=settings.base_url)
        self._configuration.verify_ssl = settings.verify_tls
        self._api = afc.ApiClient(self._configuration)
        self._dag_runs = afc.DagRunApi(self._api)
        self._task_instances = afc.TaskInstanceApi(self._api)
        self._dags = afc.DAGApi(self._api)

    # -- credentials -------------------------------------------------------
    def _fetch_token(self) -> str:
        if self.settings.username is None:
            if self.settings.token:
                return self.settings.token
            raise self._fail(
                "no credentials: set options.username/password or options.token", retryable=False
            )
        self.requests += 1
        try:
            response = self._http.post(
                "/auth/token",
                json={"username": self.settings.username, "password": self.settings.password or ""},
            )
        except httpx.HTTPError as exc:
            raise self._fail(f"cannot reach {self.settings.base_url}/auth/token: {exc}") from exc
        if response.status_code not in (200, 201):
            retryable = response.status_code >= 500
            raise self._fail(
                f"POST /auth/token answered {response.status_code}: {response.text[:200]}",
                retryable=retryable,
            )
        return str(response.json()["access_token"])

    def _auth_headers(self, renew: bool) -> dict[str, str]:
        if self._token is None or renew:
            self._token = self._fetch_token()
        self._configuration.access_token = self._token
        return {"Authorization": f"Bearer {self._token}"}

    # -- calls through the generated client ----------------------------------
    def _call(self, build: Any, *, ok: tuple[int, ...] = (200,)) -> tuple[Any, Mapping[str, str]]:
        """Run a generated `*_without_preload_content` call with renewal and typing."""
        import urllib3

        for attempt in (0, 1):
            headers = self._auth_headers(renew=attempt == 1)
            self.requests += 1
            try:
                response = build(headers)
                status, data, resp_headers = response.status, response.data, response.headers
            except urllib3.exceptions.HTTPError as exc:
                raise self._fail(f"cannot reach {self.settings.base_url}: {exc}") from exc
            except OSError as exc:
                raise self._fail(f"cannot reach {self.settings.base_url}: {exc}") from exc
            refused = status == 401 or (status == 403 and _token_refused(data))
            if refused and attempt == 0:
                continue
            if refused:
                raise self._fail(
                    f"{status} even with a new token from /auth/token", retryable=False
                )
            if status not in ok:
                text = data.decode(errors="replace")[:300] if data else ""
                raise self._fail(
                    f"{status} from Airflow: {text}", retryable=status >= 500 or status == 429
                )
            try:
                return (json.loads(data) if data else None), resp_headers
            except ValueError as exc:
                raise self._fail("Airflow did not return JSON") from exc
        raise AssertionError("unreachable")  # pragma: no cover

    def _timeout(self) -> float:
        return self.settings.timeout_s

    def _list_page(
        self,
        call: Any,
        key: str,
        updated_since: datetime | None,
        offset: int,
        cursor: str | None,
        limit: int,
    ) -> Page:
        params: dict[str, Any] = {"limit": limit, "order_by": ["id"]}
        if cursor is not None:
            params["cursor"] = cursor
        else:
            params["offset"] = offset
        if updated_since is not None:
            params["updated_at_gte"] = updated_since
        body, headers = self._call(
            lambda h: call(_headers=h, _request_timeout=self._timeout(), **params)
        )
        return Page(
            items=list(body.get(key) or []),
            total=body.get("total_entries"),
            next_cursor=body.get("next_cursor"),
            server_time=_server_time(headers),
            supports_cursor="next_cursor" in body,
        )

    def list_dag_runs(
        self, *, updated_since: datetime | None, offset: int, cursor: str | None, limit: int
    ) -> Page:
        def call(**kw: Any) -> Any:
            return self._dag_runs.get_dag_runs_without_preload_content(dag_id="~", **kw)

        return self._list_page(call, "dag_runs", updated_since, offset, cursor, limit)

    def list_task_instances(
        self, *, updated_since: datetime | None, offset: int, cursor: str | None, limit: int
    ) -> Page:
        def call(**kw: Any) -> Any:
            return self._task_instances.get_task_instances_without_preload_content(
                dag_id="~", dag_run_id="~", **kw
            )

        return self._list_page(call, "task_instances", updated_since, offset, cursor, limit)

    def task_tries(
        self, dag_id: str, run_id: str, task_id: str, map_index: int
    ) -> list[dict[str, Any]]:
        api = self._task_instances
        if map_index >= 0:
            body, _ = self._call(
                lambda h: api.get_mapped_task_instance_tries_without_preload_content(
                    dag_id, run_id, task_id, map_index, _headers=h, _request_timeout=self._timeout()
                )
            )
        else:
            body, _ = self._call(
                lambda h: api.get_task_instance_tries_without_preload_content(
                    dag_id, run_id, task_id, _headers=h, _request_timeout=self._timeout()
                )
            )
        return list(body.get("task_instances") or [])

    def list_dags(self, *, offset: int, limit: int) -> Page:
        body, _ = self._call(
            lambda h: self._dags.get_dags_without_preload_content(
                limit=limit,
                offset=offset,
                order_by=["dag_id"],
                _headers=h,
                _request_timeout=self._timeout(),
            )
        )
        return Page(items=list(body.get("dags") or []), total=body.get("total_entries"))

    def dag_details(self, dag_id: str) -> dict[str, Any]:
        body, _ = self._call(
            lambda h: self._dags.get_dag_details_without_preload_content(
                dag_id, _headers=h, _request_timeout=self._timeout()
            )
        )
        return dict(body)

    def dag_tasks(self, dag_id: str) -> list[dict[str, Any]]:
        return list(self.get_json(f"/dags/{_q(dag_id)}/tasks").get("tasks") or [])

    def dag_source(self, dag: Mapping[str, Any]) -> str | None:
        body = self.get_json(f"/dagSources/{_q(str(dag['dag_id']))}")
        content = body.get("content") if isinstance(body, Mapping) else None
        return str(content) if content is not None else None

    def set_paused(self, dag_id: str, paused: bool) -> dict[str, Any]:
        afc = self._afc
        body, _ = self._call(
            lambda h: self._dags.patch_dag_without_preload_content(
                dag_id,
                afc.DAGPatchBody(is_paused=paused),
                update_mask=["is_paused"],
                _headers=h,
                _request_timeout=self._timeout(),
            )
        )
        return dict(body)

    def trigger(
        self, dag_id: str, *, run_id: str | None, conf: Mapping[str, Any] | None
    ) -> dict[str, Any]:
        afc = self._afc
        payload = afc.TriggerDAGRunPostBody(
            dag_run_id=run_id, conf=dict(conf or {}), logical_date=None
        )
        body, _ = self._call(
            lambda h: self._dag_runs.trigger_dag_run_without_preload_content(
                dag_id, payload, _headers=h, _request_timeout=self._timeout()
            )
        )
        return dict(body)

    def close(self) -> None:
        super().close()
        self._api.rest_client.pool_manager.clear()


def detect_api(settings: Settings) -> str:
    """``v2`` or ``v1``: which API the server answers (health needs no auth)."""
    with httpx.Client(
        base_url=settings.base_url, timeout=settings.timeout_s, verify=settings.verify_tls
    ) as http:
        for version, path in (("v2", "/api/v2/monitor/health"), ("v1", "/api/v1/health")):
            try:
                if http.get(path).status_code == 200:
                    return version
            except httpx.HTTPError as exc:
                raise SourceError(
                    settings.source, f"cannot reach {settings.base_url}: {exc}"
                ) from exc
    raise SourceError(
        settings.source,
        f"{settings.base_url} answers neither /api/v2 nor /api/v1 health; set options.api",
    )


def create_client(settings: Settings) -> AirflowClient:
    api = settings.api if settings.api != "auto" else detect_api(settings)
    return V2Client(settings) if api == "v2" else V1Client(settings)


def iter_pages(fetch: Any, limit: int = PAGE_LIMIT) -> Iterator[Page]:
    """Pages of a list endpoint until a short page, the total, or the end of cursors."""
    offset = 0
    cursor: str | None = ""
    seen = 0
    use_cursor: bool | None = None
    while True:
        page: Page = fetch(
            offset=offset, cursor=cursor if use_cursor is not False else None, limit=limit
        )
        if use_cursor is None:
            use_cursor = page.supports_cursor
        yield page
        seen += len(page.items)
        offset += len(page.items)
        if len(page.items) < limit:
            return
        if page.total is not None and seen >= page.total:
            return
        if use_cursor:
            if not page.next_cursor:
                return
            cursor = page.next_cursor
