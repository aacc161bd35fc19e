"""Checks recorded Kestra emulator exchanges against Kestra's OpenAPI document.

The document (`data/kestra-openapi.yml`, Kestra EE 2.0.0-SNAPSHOT, see
`data/README.md`) is committed as test data, so it is never missing;
`$SWITCHYARD_KESTRA_OPENAPI` may point at another copy. A missing document is
an error (`FileNotFoundError`), never a skip. Three defects of the document
are patched before use, each for a stated reason (see `_patch`); everything
else is checked as published.
"""

from __future__ import annotations

import copy
import os
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from openapi_schema_validator import OAS30Validator

from emulators.kestra.server import Exchange

COMMITTED = Path(__file__).parent / "data" / "kestra-openapi.yml"


def spec_path() -> Path:
    """The document to check against; FileNotFoundError naming it when it is missing."""
    override = os.environ.get("SWITCHYARD_KESTRA_OPENAPI")
    path = Path(override) if override else COMMITTED
    if not path.is_file():
        raise FileNotFoundError(
            f"Kestra's OpenAPI document is missing at {path}"
            + (" (set by SWITCHYARD_KESTRA_OPENAPI)" if override else "; it is committed test data")
        )
    return path


def _patch(doc: dict[str, Any]) -> dict[str, Any]:
    schemas = doc["components"]["schemas"]

    # 1. Java regex classes (\p{Ll}, \p{L}) in label-key patterns: Python's `re`
    #    has no \p; ASCII classes keep the check meaningful for our ASCII keys.
    def fix(node: Any) -> None:
        if isinstance(node, dict):
            pattern = node.get("pattern")
            if isinstance(pattern, str):
                node["pattern"] = pattern.replace(r"\p{Ll}", "a-z").replace(r"\p{L}", "a-zA-Z")
            for v in node.values():
                fix(v)
        elif isinstance(node, list):
            for v in node:
                fix(v)

    fix(doc)
    # 2. Property<Duration> says `type: object` yet `oneOf: [object, string]`;
    #    flows carry `timeout: PT1H` (a string), which the oneOf allows.
    schemas["Property_Duration_"].pop("type", None)
    # 3. AbstractTrigger lists `when` (the 2.0 Pebble condition) as required;
    #    a trigger without a condition is valid YAML in every documented example.
    schemas["AbstractTrigger"]["required"] = [
        r for r in schemas["AbstractTrigger"].get("required", []) if r != "when"
    ]
    return doc


@lru_cache(maxsize=1)
def load_spec() -> dict[str, Any]:
    path = spec_path()
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # the document is 28k lines
    return _patch(yaml.load(path.read_text(), Loader=loader))


@lru_cache(maxsize=1)
def _routes() -> list[tuple[re.Pattern[str], str, int]]:
    out = []
    for template in load_spec()["paths"]:
        regex = "^" + re.sub(r"\{[^/}]+\}", "[^/]+", template) + "$"
        literal = len(re.sub(r"\{[^/}]+\}", "", template))
        out.append((re.compile(regex), template, literal))
    # The most literal template wins (…/executions/search over …/executions/{id}).
    return sorted(out, key=lambda r: -r[2])


def operation_for(method: str, path: str) -> tuple[str, dict[str, Any]]:
    for regex, template, _ in _routes():
        if regex.match(path):
            op = load_spec()["paths"][template].get(method.lower())
            if op is not None:
                return template, op
    raise AssertionError(f"{method} {path} is not an operation of the Kestra OpenAPI document")


_VALIDATORS: dict[int, OAS30Validator] = {}


def _schema_errors(schema: dict[str, Any], instance: Any) -> list[str]:
    # One validator per schema object of the (cached, never mutated) document.
    validator = _VALIDATORS.get(id(schema))
    if validator is None:
        rooted = dict(copy.deepcopy(schema))
        rooted["components"] = load_spec()["components"]
        validator = _VALIDATORS[id(schema)] = OAS30Validator(rooted)
    return [
        f"{'/'.join(str(p) for p in e.absolute_path) or '(root)'}: {e.message}"
        for e in validator.iter_errors(instance)
    ]


def check_exchange(ex: Exchange) -> list[str]:
    """Every way `ex` departs from the document; [] when it conforms."""
    template, op = operation_for(ex.method, ex.path)
    where = f"{ex.method} {template}"
    problems: list[str] = []
    params = {p["name"]: p for p in op.get("parameters", []) if p.get("in") == "query"}
    seen = set()
    for key, _ in ex.query:
        name = key.split("[", 1)[0]
        seen.add(name)
        if name not in params:
            problems.append(f"{where}: query parameter {key!r} is not declared")
    for name, p in params.items():
        if p.get("required") and name not in seen:
            problems.append(f"{where}: required query parameter {name!r} missing")
    body_spec = op.get("requestBody")
    ctype = (ex.content_type or "").split(";")[0].strip() or None
    if ex.body:
        if body_spec is None:
            problems.append(f"{where}: sends a body the operation does not take")
        elif ctype not in body_spec["content"]:
            problems.append(
                f"{where}: content type {ctype!r} not in {sorted(body_spec['content'])}"
            )
        elif ctype == "application/json":
            import json

            schema = body_spec["content"][ctype].get("schema", {})
            problems += [
                f"{where} request {e}" for e in _schema_errors(schema, json.loads(ex.body))
            ]
    elif body_spec is not None and body_spec.get("required"):
        problems.append(f"{where}: required request body missing")
    responses = op.get("responses", {})
    answer = responses.get(str(ex.status)) or responses.get("default")
    if answer is None:
        if ex.status < 400:
            problems.append(f"{where}: status {ex.status} is not documented")
        return problems
    content = answer.get("content") or {}
    if ex.response is not None and "application/json" in content:
        schema = content["application/json"].get("schema", {})
        problems += [f"{where} response {e}" for e in _schema_errors(schema, ex.response)]
    return problems
