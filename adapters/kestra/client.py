"""Kestra API client: flows (YAML), validation, triggers, executions.

Built on the official `kestrapy` SDK (2.x `KestraClient`), which covers every
call used here; answers come back as plain JSON-shaped dicts (the SDK's
models are folded back, `additional_properties` included) so the pure
normaliser in `adapters/kestra` reads the same shapes as the wire. All paths
are tenant-scoped (`/api/v1/{tenant}/…`). Every failure is a
`KestraApiError` carrying the operation, the flow (or execution) involved and
the HTTP status; network failures have status None and are retryable.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import requests
from kestrapy import KestraClient
from kestrapy.exceptions import ApiException
from pydantic import BaseModel

T = TypeVar("T")
DEFAULT_TENANT = "main"


class KestraApiError(Exception):
    """A Kestra call failed: which call, on what, with which status."""

    def __init__(
        self, operation: str, target: str | None, status: int | None, message: str
    ) -> None:
        where = f" {target}" if target else ""
        code = f"HTTP {status}" if status is not None else "no answer"
        super().__init__(f"kestra {operation}{where}: {code}: {message}")
        self.operation = operation
        self.target = target
        self.status = status
        self.message = message

    @property
    def retryable(self) -> bool:
        return self.status is None or self.status == 429 or self.status >= 500


@dataclass(frozen=True)
class FlowValidation:
    """One document's verdict from `POST /flows/validate`."""

    index: int
    flow: str | None
    namespace: str | None
    constraints: str | None
    warnings: tuple[str, ...] = ()

    @property
    def valid(self) -> bool:
        return not self.constraints


def _fold(value: Any) -> Any:
    """SDK model dump → wire-shaped JSON (extra fields back in place)."""
    if isinstance(value, dict):
        extra = value.pop("additional_properties", None) or {}
        out = {k: _fold(v) for k, v in value.items()}
        for k, v in extra.items():
            out.setdefault(k, _fold(v))
        return out
    if isinstance(value, list):
        return [_fold(v) for v in value]
    return value


def plain(obj: Any) -> Any:
    """JSON-shaped data from whatever the SDK returned (models, lists, dicts)."""
    if isinstance(obj, BaseModel):
        # No serializer warnings: Kestra sends a flow's labels as a map or as a
        # list of key/value pairs (its OpenAPI says both), the SDK types only
        # the list, and the map is dumped unchanged either way.
        dumped = obj.model_dump(mode="json", by_alias=True, exclude_none=True, warnings=False)
        return _fold(dumped)
    if isinstance(obj, list):
        return [plain(v) for v in obj]
    return _fold(obj)


def _message(exc: ApiException) -> str:
    body = getattr(exc, "body", None) or ""
    try:
        import json

        parsed = json.loads(body)
        if isinstance(parsed, dict) and parsed.get("message"):
            return str(parsed["message"])
    except (TypeError, ValueError):
        pass
    return str(body or getattr(exc, "reason", "") or exc)[:500]


class KestraApi:
    """One Kestra server and tenant. Construct once from config, pass it in."""

    def __init__(
        self,
        url: str,
        *,
        tenant: str = DEFAULT_TENANT,
        token: str | None = None,
        username: str | None = None,
        password: str | None = None,
        timeout: float = 30.0,
    ) -> None:
        self.url = url.rstrip("/")
        self.tenant = tenant
        self._client = KestraClient(
            host=self.url, token=token, username=username, password=password, timeout=timeout
        )

    def _call(self, operation: str, target: str | None, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except ApiException as exc:
            raise KestraApiError(operation, target, exc.status, _message(exc)) from exc
        except requests.RequestException as exc:
            raise KestraApiError(operation, target, None, str(exc)) from exc

    # flows ---------------------------------------------------------------
    def create_flow(self, yaml_text: str) -> dict[str, Any]:
        target = _flow_target(yaml_text)
        result = self._call(
            "create flow", target, lambda: self._client.flows.create_flow(self.tenant, yaml_text)
        )
        return dict(plain(result))

    def update_flow(self, namespace: str, flow_id: str, yaml_text: str) -> dict[str, Any]:
        result = self._call(
            "update flow",
            f"{namespace}.{flow_id}",
            lambda: self._client.flows.update_flow(namespace, flow_id, self.tenant, yaml_text),
        )
        return dict(plain(result))

    def put_flow(self, namespace: str, flow_id: str, yaml_text: str) -> dict[str, Any]:
        """Create the flow, or update it when it exists (a new revision)."""
        try:
            return self.update_flow(namespace, flow_id, yaml_text)
        except KestraApiError as exc:
            if exc.status != 404:
                raise
        return self.create_flow(yaml_text)

    def get_flow(self, namespace: str, flow_id: str, *, source: bool = True) -> dict[str, Any]:
        result = self._call(
            "get flow",
            f"{namespace}.{flow_id}",
            lambda: self._client.flows.flow(namespace, flow_id, self.tenant, source=source),
        )
        return dict(plain(result))

    def delete_flow(self, namespace: str, flow_id: str) -> None:
        self._call(
            "delete flow",
            f"{namespace}.{flow_id}",
            lambda: self._client.flows.delete_flow(namespace, flow_id, self.tenant),
        )

    def search_flows(
        self, *, namespace: str | None = None, page: int = 1, size: int = 100
    ) -> tuple[list[dict[str, Any]], int]:
        filters = (
            [{"field": "namespace", "operation": "PREFIX", "value": namespace}]
            if namespace
            else None
        )
        result = self._call(
            "search flows",
            namespace,
            lambda: self._client.flows.search_flows(
                self.tenant, page=page, size=size, filters=filters
            ),
        )
        body = plain(result)
        return list(body.get("results") or []), int(body.get("total") or 0)

    def validate(self, yaml_text: str) -> list[FlowValidation]:
        """Kestra's own verdict on one or more flows (`---`-separated)."""
        result = self._call(
            "validate flows",
            _flow_target(yaml_text),
            lambda: self._client.flows.validate_flows(self.tenant, yaml_text),
        )
        out = []
        for item in plain(result):
            out.append(
                FlowValidation(
                    index=int(item.get("index", 0)),
                    flow=item.get("flow"),
                    namespace=item.get("namespace"),
                    constraints=item.get("constraints") or None,
                    warnings=tuple(item.get("warnings") or ()),
                )
            )
        return out

    # triggers ------------------------------------------------------------
    def set_trigger_disabled(
        self, namespace: str, flow_id: str, trigger_id: str, *, disabled: bool
    ) -> dict[str, Any]:
        request = {
            "namespace": namespace,
            "flowId": flow_id,
            "triggerId": trigger_id,
            "disabled": disabled,
        }
        result = self._call(
            "disable trigger" if disabled else "enable trigger",
            f"{namespace}.{flow_id}.{trigger_id}",
            lambda: self._client.triggers.disable_trigger_by_id(self.tenant, request),
        )
        return dict(plain(result))

    def flow_triggers(self, namespace: str, flow_id: str) -> list[dict[str, Any]]:
        """The trigger states (disabled, next evaluation…) of one flow."""
        result = self._call(
            "list triggers",
            f"{namespace}.{flow_id}",
            lambda: self._client.triggers.search_triggers_for_flow(
                self.tenant, namespace, flow_id, page=1, size=100
            ),
        )
        return list(plain(result).get("results") or [])

    def enable_trigger(self, namespace: str, flow_id: str, trigger_id: str) -> dict[str, Any]:
        return self.set_trigger_disabled(namespace, flow_id, trigger_id, disabled=False)

    def disable_trigger(self, namespace: str, flow_id: str, trigger_id: str) -> dict[str, Any]:
        return self.set_trigger_disabled(namespace, flow_id, trigger_id, disabled=True)

    # executions ----------------------------------------------------------
    def trigger_execution(
        self, namespace: str, flow_id: str, *, labels: Mapping[str, str] | None = None
    ) -> dict[str, Any]:
        pairs = [f"{k}:{v}" for k, v in (labels or {}).items()]
        result = self._call(
            "trigger execution",
            f"{namespace}.{flow_id}",
            lambda: self._client.executions.create_execution(
                self.tenant, namespace, flow_id, labels=pairs or None
            ),
        )
        return dict(plain(result))

    def get_execution(self, execution_id: str) -> dict[str, Any]:
        result = self._call(
            "get execution",
            execution_id,
            lambda: self._client.executions.execution(execution_id, self.tenant),
        )
        return dict(plain(result))

    def search_executions(
        self,
        *,
        namespace: str | None = None,
        flow_id: str | None = None,
        since: datetime | None = None,
        labels: Mapping[str, str] | None = None,
        states: list[str] | None = None,
        page: int = 1,
        size: int = 100,
        sort: str = "state.startDate:asc",
    ) -> tuple[list[dict[str, Any]], int]:
        """One page of executions (light form: no task runs) and the total."""
        filters: list[dict[str, Any]] = []
        if namespace:
            filters.append({"field": "namespace", "operation": "PREFIX", "value": namespace})
        if flow_id:
            filters.append({"field": "flowId", "operation": "EQUALS", "value": flow_id})
        if since is not None:
            filters.append(
                {"field": "startDate", "operation": "GREATER_THAN_OR_EQUAL_TO", "value": since}
            )
        if labels:
            filters.append({"field": "labels", "operation": "EQUALS", "value": dict(labels)})
        if states:
            filters.append({"field": "state", "operation": "IN", "value": list(states)})
        result = self._call(
            "search executions",
            f"{namespace}.{flow_id}" if namespace and flow_id else namespace,
            lambda: self._client.executions.search_executions(
                self.tenant, page=page, size=size, sort=[sort], filters=filters or None
            ),
        )
        body = plain(result)
        return list(body.get("results") or []), int(body.get("total") or 0)


def _flow_target(yaml_text: str) -> str | None:
    """`namespace.id` of the first flow in a YAML text, for error messages."""
    import yaml

    try:
        doc = next(iter(yaml.safe_load_all(yaml_text)), None)
    except yaml.YAMLError:
        return None
    if isinstance(doc, dict) and doc.get("id"):
        return f"{doc.get('namespace')}.{doc.get('id')}"
    return None
