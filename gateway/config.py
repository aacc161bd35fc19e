"""`switchyard.yaml`: which sources to watch, and how the gateway runs.

Secrets are never written in the file: a value `${NAME}` is replaced by the
environment variable NAME when the file is loaded, and every value that came
from the environment is remembered in `Config.secret_values` so logs and API
output can be scrubbed of them. So is the value of every variable a source
option ending in `_env` names (`access_key_id_env: AWS_KEY_VAR`: the adapter
reads AWS_KEY_VAR itself) and `SWITCHYARD_SESSION_SECRET`. A missing
variable, an unknown key or a bad value is a `ConfigError` naming the key path
(`sources[1].interval`).

Example::

    database_url: ${SWITCHYARD_DATABASE_URL}     # optional; default ./switchyard.db
    listen: {host: 127.0.0.1, port: 8080}
    cookie_secure: auto                          # auto | true | false
    trusted_proxies: [10.0.0.0/8, 127.0.0.1]     # whose X-Forwarded-* headers count
    retention: 90d
    lease_ttl: 30s
    sources:
      - name: airflow-prod
        kind: airflow
        interval: 30s
        options:
          url: https://airflow.example.com
          username: switchyard
          password: ${AIRFLOW_PASSWORD}
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit, urlunsplit

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from gateway.contract import SourceConfig, adapter_kinds

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
# Not options of a source, but secrets all the same (dashboards.web.session).
SECRET_ENV_NAMES = ("SWITCHYARD_SESSION_SECRET",)
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$")
_UNIT_S = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, None: 1}


class ConfigError(ValueError):
    """The configuration is wrong; the message names the file and the key."""


def parse_duration(value: Any) -> float:
    """Seconds from `30`, `30s`, `5m`, `2h`, `90d`, `1w`."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a duration")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        m = _DURATION.match(str(value))
        if not m:
            raise ValueError(f"{value!r} is not a duration (use e.g. 30s, 5m, 2h, 90d)")
        seconds = float(m.group(1)) * _UNIT_S[m.group(2)]
    if seconds < 0:
        raise ValueError(f"{value!r}: a duration cannot be negative")
    return seconds


# Sources that serve the OpenLineage push routes (`POST /api/v1/lineage`), by
# kind: the option that turns the routes on (None: always on) and the option
# that holds their bearer key. Such a source needs its key, or
# `options.allow_anonymous: true` said out loud: no write path is anonymous by default.
LINEAGE_ROUTES: dict[str, tuple[str | None, str]] = {
    "openlineage": (None, "api_key"),
    "airflow": ("openlineage", "openlineage_api_key"),
}


class Listen(BaseModel):
    model_config = ConfigDict(extra="forbid")
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)


class SourceEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
    kind: str
    interval: float = 30.0
    enabled: bool = True
    options: dict[str, Any] = Field(default_factory=dict)

    _interval = field_validator("interval", mode="before")(parse_duration)

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, v: str) -> str:
        kinds = adapter_kinds()
        if v not in kinds:
            raise ValueError(f"unknown source kind {v!r}; installed kinds: {', '.join(kinds)}")
        return v

    @model_validator(mode="after")
    def _lineage_needs_a_key(self) -> SourceEntry:
        route = LINEAGE_ROUTES.get(self.kind)
        if route is None:
            return self
        switch, key = route
        if switch is not None and not self.options.get(switch):
            return self
        if self.options.get(key) or self.options.get("allow_anonymous") is True:
            return self
        raise ValueError(
            f"options.{key}: source {self.name!r} serves POST /api/v1/lineage and needs a key "
            f"(options.{key}: ${{ENV_VAR}}), or options.allow_anonymous: true to take "
            "anonymous pushes"
        )

    def source_config(self) -> SourceConfig:
        return SourceConfig(
            name=self.name, kind=self.kind, interval_s=self.interval, options=self.options
        )


class OtlpSettings(BaseModel):
    """`otlp:` — export finished runs as spans over OTLP/HTTP (protobuf)."""

    model_config = ConfigDict(extra="forbid")

    endpoint: str = Field(description="collector URL; a bare host gets /v1/traces")
    headers: dict[str, str] = Field(default_factory=dict)
    interval: float = Field(default=60.0, gt=0)
    timeout: float = Field(default=10.0, gt=0)

    _durations = field_validator("interval", "timeout", mode="before")(parse_duration)

    @field_validator("endpoint")
    @classmethod
    def _traces_url(cls, v: str) -> str:
        parsed = urlsplit(v.strip())
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise ValueError(f"{v!r} is not an http(s) URL (e.g. http://tempo:4318)")
        if parsed.path in ("", "/"):
            return urlunsplit(parsed._replace(path="/v1/traces"))
        return v.strip()


class AlertMatch(BaseModel):
    """Which incidents a route takes: every key given must fit (flow, job, source)."""

    model_config = ConfigDict(extra="forbid")
    flow: str | None = None
    job: str | None = None
    source: str | None = None


class AlertRoute(BaseModel):
    model_config = ConfigDict(extra="forbid")
    match: AlertMatch = Field(default_factory=AlertMatch)
    notify: list[str] = Field(min_length=1, description="Apprise URLs, e.g. json://host/hook")


class AlertsConfig(BaseModel):
    """`alerts:` — where incident notifications go (gateway.alerts)."""

    model_config = ConfigDict(extra="forbid")
    routes: list[AlertRoute] = Field(default_factory=list)
    default: list[str] = Field(default_factory=list)
    hold: float = Field(
        default=0.0, description="seconds an incident is open before it is announced"
    )

    _hold = field_validator("hold", mode="before")(parse_duration)

    @property
    def enabled(self) -> bool:
        return bool(self.routes or self.default)


def _proxy_network(value: Any) -> str:
    try:
        return str(ipaddress.ip_network(str(value).strip()))
    except ValueError as exc:
        raise ValueError(
            f"{value!r} is not an IP address or network ({exc}); "
            "list the proxies by address, e.g. 10.0.0.0/8 or 127.0.0.1"
        ) from None


# A trusted proxy: an address or network, normalised (`127.0.0.1` → `127.0.0.1/32`).
ProxyNetwork = Annotated[str, BeforeValidator(_proxy_network)]


class Config(BaseModel):
    model_config = ConfigDict(extra="forbid")

    database_url: str | None = None
    listen: Listen = Field(default_factory=Listen)
    retention: float | None = Field(default=90 * 86400.0, description="seconds; None keeps all")
    lease_ttl: float = 30.0
    max_body_bytes: int = Field(default=5 * 1024 * 1024, gt=0)
    states: str | None = None
    sources: list[SourceEntry] = Field(default_factory=list)
    alerts: AlertsConfig = Field(default_factory=AlertsConfig)
    flows_dir: str | None = None
    otlp: OtlpSettings | None = None
    cookie_secure: bool | Literal["auto"] = Field(
        default="auto", description="dashboard cookies Secure: auto (on HTTPS), true, false"
    )
    trusted_proxies: list[ProxyNetwork] = Field(
        default_factory=list,
        description="addresses or networks whose X-Forwarded-Proto/-For are believed",
    )

    secret_values: frozenset[str] = Field(default=frozenset(), exclude=True)
    path: str | None = Field(default=None, exclude=True)

    _durations = field_validator("lease_ttl", mode="before")(parse_duration)

    @field_validator("retention", mode="before")
    @classmethod
    def _retention(cls, v: Any) -> float | None:
        # YAML reads a bare `off`/`no` as False: that, too, means keep everything.
        if v is None or v is False or v in ("off", "none", "never"):
            return None
        return parse_duration(v)

    @field_validator("cookie_secure", mode="before")
    @classmethod
    def _cookie_secure(cls, v: Any) -> Any:
        if isinstance(v, str) and v.strip().lower() in ("true", "false", "auto"):
            text = v.strip().lower()
            return text == "true" if text != "auto" else "auto"
        if isinstance(v, bool):
            return v
        raise ValueError(f"{v!r} is not one of auto, true, false")

    @field_validator("sources")
    @classmethod
    def _unique_names(cls, v: list[SourceEntry]) -> list[SourceEntry]:
        seen: set[str] = set()
        for i, s in enumerate(v):
            if s.name in seen:
                raise ValueError(f"sources[{i}].name: {s.name!r} is used twice")
            seen.add(s.name)
        return v

    def source(self, name: str) -> SourceEntry:
        for s in self.sources:
            if s.name == name:
                return s
        names = ", ".join(s.name for s in self.sources) or "none configured"
        raise ConfigError(f"no source named {name!r} ({names})")

    def redact(self, text: str) -> str:
        """`text` with every secret value from the environment replaced by ***."""
        for secret in sorted(self.secret_values, key=len, reverse=True):
            if len(secret) >= 4:
                text = text.replace(secret, "***")
        return text


def _resolve_env(node: Any, path: str, env: dict[str, str], secrets: set[str]) -> Any:
    if isinstance(node, dict):
        return {
            k: _resolve_env(v, f"{path}.{k}" if path else str(k), env, secrets)
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_resolve_env(v, f"{path}[{i}]", env, secrets) for i, v in enumerate(node)]
    if isinstance(node, str) and "${" in node:

        def sub(m: re.Match[str]) -> str:
            name = m.group(1)
            if name not in env:
                raise ConfigError(f"{path}: environment variable {name} is not set")
            secrets.add(env[name])
            return env[name]

        return _ENV_REF.sub(sub, node)
    return node


def _named_env_values(node: Any, env: Mapping[str, str], secrets: set[str]) -> None:
    """Remember the values of variables that `*_env` options name (the adapter reads them)."""
    if isinstance(node, dict):
        for key, value in node.items():
            if str(key).endswith("_env") and isinstance(value, str) and value in env:
                secrets.add(env[value])
            else:
                _named_env_values(value, env, secrets)
    elif isinstance(node, list):
        for value in node:
            _named_env_values(value, env, secrets)


def _loc(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def parse_config(
    data: Any, *, origin: str = "<config>", env: dict[str, str] | None = None
) -> Config:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{origin}: the top level must be a mapping")
    secrets: set[str] = set()
    environ = dict(os.environ if env is None else env)
    resolved = _resolve_env(data, "", environ, secrets)
    _named_env_values(resolved.get("sources"), environ, secrets)
    secrets.update(environ[name] for name in SECRET_ENV_NAMES if environ.get(name))
    try:
        cfg = Config.model_validate(resolved)
    except ValidationError as exc:
        problems = "; ".join(
            f"{_loc(e['loc']) or '(top)'}: {e['msg'].removeprefix('Value error, ')}"
            for e in exc.errors()
        )
        raise ConfigError(f"{origin}: {problems}") from None
    return cfg.model_copy(update={"secret_values": frozenset(secrets), "path": origin})


def load_config(path: str | Path | None = None, *, env: dict[str, str] | None = None) -> Config:
    """Load and validate a config file; with no path, an empty config (no sources)."""
    if path is None:
        return parse_config({}, origin="<defaults>", env=env)
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read: {exc.strerror}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{p}: not valid YAML: {exc}") from exc
    return parse_config(data, origin=str(p), env=env)
