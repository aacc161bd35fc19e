"""boto3 clients for one Lambda source, built from its config in one place.

Guarantees:

* every AWS request the adapter sends (retries included) first takes a token
  from one `RateLimiter` shared by all its clients, so the source never exceeds
  `options.max_requests_per_s`;
* every request is counted per operation (`AwsClients.calls`), which the
  benchmark and the status page read;
* an AWS failure reaches the gateway as a `SourceError` naming the source, the
  operation and the AWS error code, after botocore's own bounded retries.

Options (all optional): `region`, `endpoint_url` (one URL, or a mapping
service → URL), `profile`, `access_key_id_env` / `secret_access_key_env` /
`session_token_env` (names of environment variables holding credentials),
`max_requests_per_s` (default 10), `burst` (default = the rate),
`max_attempts` (botocore retries, default 4), `timeout_s` (default 10).
"""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import boto3
from botocore.config import Config as BotoConfig
from botocore.exceptions import BotoCoreError, ClientError

from gateway.contract import SourceConfig, SourceError

SERVICES = ("lambda", "logs", "events", "scheduler", "resourcegroupstaggingapi")
THROTTLE_CODES = frozenset(
    {
        "ThrottlingException",
        "Throttling",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "LimitExceededException",
        "RequestThrottledException",
    }
)
AUTH_CODES = frozenset(
    {
        "AccessDenied",
        "AccessDeniedException",
        "UnrecognizedClientException",
        "InvalidSignatureException",
        "ExpiredTokenException",
        "InvalidClientTokenId",
    }
)


class RateLimiter:
    """A token bucket: `acquire()` blocks until a request may be sent.

    Thread-safe; one instance is shared by every client of a source so the
    limit holds across services and worker threads.
    """

    def __init__(
        self,
        rate_per_s: float,
        burst: float | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate_per_s <= 0:
            raise ValueError("max_requests_per_s must be positive")
        self.rate = float(rate_per_s)
        self.capacity = float(burst if burst is not None else max(1.0, rate_per_s))
        if self.capacity < 1:
            raise ValueError("burst must be at least 1")
        self._tokens = self.capacity
        self._clock = clock
        self._sleep = sleep
        self._last = clock()
        self._lock = threading.Lock()
        self.waited_s = 0.0

    def acquire(self) -> None:
        # Reserve the token now (the balance may go negative) and sleep off the debt
        # outside the lock: callers are served in order and none spins.
        with self._lock:
            now = self._clock()
            self._tokens = min(self.capacity, self._tokens + (now - self._last) * self.rate)
            self._last = now
            self._tokens -= 1
            wait = -self._tokens / self.rate if self._tokens < 0 else 0.0
            self.waited_s += wait
        if wait > 0:
            self._sleep(wait)


@dataclass
class AwsClients:
    """The clients of one source, its limiter and its request counts."""

    source: str
    region: str
    lambda_: Any
    logs: Any
    events: Any
    scheduler: Any
    tagging: Any
    limiter: RateLimiter
    calls: Counter[str] = field(default_factory=Counter)

    @property
    def total_calls(self) -> int:
        return sum(self.calls.values())


def _option_float(options: Mapping[str, Any], name: str, default: float, source: str) -> float:
    value = options.get(name, default)
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise SourceError(
            source, f"options.{name} must be a number, got {value!r}", retryable=False
        ) from None
    if number <= 0:
        raise SourceError(
            source, f"options.{name} must be positive, got {value!r}", retryable=False
        )
    return number


def _credentials(options: Mapping[str, Any], source: str) -> dict[str, str]:
    creds: dict[str, str] = {}
    for option, kwarg in (
        ("access_key_id_env", "aws_access_key_id"),
        ("secret_access_key_env", "aws_secret_access_key"),
        ("session_token_env", "aws_session_token"),
    ):
        var = options.get(option)
        if var is None:
            continue
        if not isinstance(var, str) or var not in os.environ:
            raise SourceError(
                source,
                f"options.{option} names environment variable {var!r}, which is not set",
                retryable=False,
            )
        creds[kwarg] = os.environ[var]
    if ("aws_access_key_id" in creds) != ("aws_secret_access_key" in creds):
        raise SourceError(
            source,
            "options.access_key_id_env and options.secret_access_key_env go together",
            retryable=False,
        )
    return creds


def build_clients(config: SourceConfig) -> AwsClients:
    """The boto3 clients for `config`, all behind one rate limiter."""
    options = config.options
    source = config.name
    rate = _option_float(options, "max_requests_per_s", 10.0, source)
    burst = _option_float(options, "burst", max(1.0, rate), source)
    attempts = int(_option_float(options, "max_attempts", 4, source))
    timeout = _option_float(options, "timeout_s", 10.0, source)
    profile = options.get("profile")
    session = boto3.session.Session(
        profile_name=profile if isinstance(profile, str) else None,
        region_name=options.get("region") or os.environ.get("AWS_DEFAULT_REGION"),
        **_credentials(options, source),
    )
    region = session.region_name
    if not region:
        raise SourceError(
            source, "options.region is not set (nor AWS_DEFAULT_REGION)", retryable=False
        )
    boto_config = BotoConfig(
        retries={"mode": "standard", "max_attempts": attempts},
        connect_timeout=timeout,
        read_timeout=timeout,
        max_pool_connections=max(10, int(options.get("concurrency", 4)) * 2),
    )
    endpoint = options.get("endpoint_url")
    limiter = RateLimiter(rate, burst)
    calls: Counter[str] = Counter()

    def before_send(event_name: str = "", **_: Any) -> None:
        limiter.acquire()
        calls[event_name.removeprefix("before-send.")] += 1

    made: dict[str, Any] = {}
    for service in SERVICES:
        url = endpoint.get(service) if isinstance(endpoint, Mapping) else endpoint
        client = session.client(service, endpoint_url=url, config=boto_config)
        client.meta.events.register("before-send", before_send)
        made[service] = client
    return AwsClients(
        source=source,
        region=region,
        lambda_=made["lambda"],
        logs=made["logs"],
        events=made["events"],
        scheduler=made["scheduler"],
        tagging=made["resourcegroupstaggingapi"],
        limiter=limiter,
        calls=calls,
    )


def error_code(exc: BaseException) -> str | None:
    if isinstance(exc, ClientError):
        code = exc.response.get("Error", {}).get("Code")
        return str(code) if code else None
    return None


def source_error(source: str, exc: BaseException, doing: str) -> SourceError:
    """A `SourceError` a user can act on, for an AWS failure while `doing`."""
    code = error_code(exc)
    if code in THROTTLE_CODES:
        return SourceError(
            source,
            f"AWS throttled {doing} ({code}) after retries; backing off. "
            "Lower options.max_requests_per_s or raise the account's quota.",
        )
    if code in AUTH_CODES:
        return SourceError(
            source,
            f"AWS refused {doing} ({code}): check the credentials and IAM policy",
            retryable=False,
        )
    if isinstance(exc, ClientError):
        message = exc.response.get("Error", {}).get("Message") or str(exc)
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
        return SourceError(
            source, f"AWS error while {doing}: {code}: {message}", retryable=int(status) >= 500
        )
    if isinstance(exc, BotoCoreError):
        return SourceError(source, f"cannot reach AWS while {doing}: {exc}")
    return SourceError(source, f"unexpected failure while {doing}: {exc!r}")
