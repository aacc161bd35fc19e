"""An OpenAPI description of the routes the gateway's own document leaves out, for fuzzing.

The dashboard (HTML pages and form posts, `include_in_schema=False`), the
Healthchecks-style pings (plain Starlette routes) and the bodies of the push
routes that read their request themselves (the cron host API, OpenLineage,
signed webhooks: in the document, but without a request body) are described
here so schemathesis can generate requests for them. This is a test's map of
the surface, not a published API: the public document stays the REST API.
"""

from __future__ import annotations

from typing import Any

from adapters.cron.normalize import HostJob, HostReport


def _query(*names: str) -> list[dict[str, Any]]:
    return [{"name": n, "in": "query", "schema": {"type": "string"}} for n in names]


def _path(*names: str) -> list[dict[str, Any]]:
    return [
        {"name": n, "in": "path", "required": True, "schema": {"type": "string"}} for n in names
    ]


def _form(*fields: str) -> dict[str, Any]:
    props = {f: {"type": "string"} for f in fields}
    schema = {"type": "object", "properties": props}
    return {"content": {"application/x-www-form-urlencoded": {"schema": schema}}}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": schema}}}


def _op(
    parameters: list[dict[str, Any]] | None = None, body: dict[str, Any] | None = None
) -> dict[str, Any]:
    op: dict[str, Any] = {"responses": {"default": {"description": "any answer but a 5xx"}}}
    if parameters:
        op["parameters"] = parameters
    if body:
        op["requestBody"] = body
    return op


SIGNATURE = {"name": "X-Switchyard-Signature", "in": "header", "schema": {"type": "string"}}
RUN_FILTERS = ("source", "state", "kind", "job", "q", "range", "since", "until", "cursor")

OPENLINEAGE_EVENT: dict[str, Any] = {
    "type": "object",
    "properties": {
        "eventType": {"enum": ["START", "RUNNING", "COMPLETE", "ABORT", "FAIL", "OTHER"]},
        "eventTime": {"type": "string", "format": "date-time"},
        "producer": {"type": "string"},
        "run": {
            "type": "object",
            "properties": {
                "runId": {"type": "string", "format": "uuid"},
                "facets": {"type": "object"},
            },
        },
        "job": {
            "type": "object",
            "properties": {"namespace": {"type": "string"}, "name": {"type": "string"}},
        },
    },
}


def unlisted_routes() -> dict[str, Any]:
    paths: dict[str, Any] = {
        # -- the dashboard ----------------------------------------------------
        "/login": {
            "get": _op(_query("next")),
            "post": _op(body=_form("csrf", "token", "next")),
        },
        "/logout": {"post": _op(body=_form("csrf"))},
        "/static/{name}": {"get": _op(_path("name"))},
        "/": {"get": _op(_query("repoll", "outcome"))},
        "/runs": {"get": _op(_query(*RUN_FILTERS))},
        "/runs/rows": {"get": _op(_query(*RUN_FILTERS))},
        "/traces/{trace_id}": {"get": _op(_path("trace_id"))},
        "/jobs": {"get": _op(_query("source", "q", "cursor"))},
        "/timeline": {"get": _op(_query("window", "source"))},
        "/incidents": {"get": _op(_query("status", "cursor"))},
        "/incidents/{incident_id}": {"get": _op(_path("incident_id"))},
        "/actions/sources/{name}/poll": {"post": _op(_path("name"), _form("csrf"))},
        "/migrations": {"get": _op(_query("source", "page"))},
        "/migrations/{job_id}": {"get": _op(_path("job_id"))},
        "/actions/migrations/{job_id}/{action}": {
            "post": _op(_path("job_id", "action"), _form("csrf", "note"))
        },
        # -- pings ------------------------------------------------------------
        "/ping/{uuid}": {"get": _op(_path("uuid") + _query("rid"))},
        "/ping/{uuid}/{action}": {
            "get": _op(_path("uuid", "action") + _query("rid")),
            "post": _op(
                _path("uuid", "action"),
                {"content": {"text/plain": {"schema": {"type": "string"}}}},
            ),
        },
        "/ping/{key}/{slug}": {"get": _op(_path("key", "slug") + _query("create"))},
        "/ping/{key}/{slug}/{action}": {"get": _op(_path("key", "slug", "action"))},
        # -- push routes' bodies ----------------------------------------------
        "/api/v1/cron/report": {
            "post": _op(
                body=_json(
                    {
                        "type": "object",
                        "properties": {
                            "reports": {"type": "array", "items": HostReport.model_json_schema()}
                        },
                    }
                )
            )
        },
        "/api/v1/cron/jobs": {
            "post": _op(
                body=_json(
                    {
                        "type": "object",
                        "properties": {
                            "host": {"type": "string"},
                            "jobs": {"type": "array", "items": HostJob.model_json_schema()},
                        },
                    }
                )
            )
        },
        "/api/v1/lineage": {"post": _op(body=_json(OPENLINEAGE_EVENT))},
        "/api/v1/lineage/batch": {
            "post": _op(body=_json({"type": "array", "items": OPENLINEAGE_EVENT}))
        },
        "/api/v1/sources/{name}/webhook": {
            "post": _op(
                [*_path("name"), SIGNATURE],
                _json({"type": "object"}),
            )
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "Switchyard routes outside the API document", "version": "1"},
        "paths": paths,
    }


__all__ = ["unlisted_routes"]
