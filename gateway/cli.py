"""The `switchyard` command.

Every error a user can meet — a bad config, an unreachable database, an
unknown source, an unknown token — is one line on stderr and a non-zero exit
(2 for a usage or config error, 1 for everything else), never a traceback.
Secret values from the config are never printed. The config path is
`--config`, else `$SWITCHYARD_CONFIG`, else none (no sources).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any, NoReturn

import typer
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import SQLAlchemyError

from gateway.auth import Role, TokenError, create_token, list_tokens, revoke_token
from gateway.config import Config, ConfigError, load_config, parse_duration
from gateway.contract import (
    SourceError,
    UnknownAdapterKind,
    check_source_options,
    create_adapter,
)
from gateway.flows import FlowError
from gateway.store.db import database_url, make_engine
from gateway.store.migrate import current_revision, upgrade

CONFIG_ENV = "SWITCHYARD_CONFIG"

app = typer.Typer(
    name="switchyard",
    help="Switchyard: one view over Airflow, Kubernetes, Lambda, cron and Kestra runs.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
config_app = typer.Typer(help="Check the configuration file.", no_args_is_help=True)
token_app = typer.Typer(help="Create, list and revoke API tokens.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema and retention.", no_args_is_help=True)
app.add_typer(config_app, name="config")
app.add_typer(token_app, name="token")
app.add_typer(db_app, name="db")

ConfigOption = Annotated[
    str | None,
    typer.Option(
        "--config",
        "-c",
        envvar=CONFIG_ENV,
        help=f"switchyard.yaml (default: ${CONFIG_ENV}, else no sources)",
        show_default=False,
    ),
]


class CliError(Exception):
    """A user-facing failure: printed as one line, exit with `code`."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def _fail(message: str, code: int) -> NoReturn:
    typer.echo(f"switchyard: {message}", err=True)
    raise typer.Exit(code)


@contextmanager
def _user_errors(config: Config | None = None) -> Iterator[None]:
    """Turn the errors a user can cause into one redacted line and an exit code."""
    redact: Callable[[str], str] = config.redact if config else (lambda s: s)
    try:
        yield
    except typer.Exit:
        raise
    except CliError as exc:
        _fail(redact(str(exc)), exc.code)
    except ConfigError as exc:
        _fail(redact(str(exc)), 2)
    except (TokenError, UnknownAdapterKind, FlowError) as exc:
        _fail(redact(str(exc)), 2)
    except SourceError as exc:
        _fail(redact(str(exc)), 1)
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        _fail(f"database error: {redact(reason)}", 1)


def _load(path: str | None) -> Config:
    with _user_errors():
        return load_config(path)


def _display_url(config: Config) -> str:
    return make_url(database_url(config.database_url)).render_as_string(hide_password=True)


def _engine(config: Config) -> Engine:
    """An engine that has answered once, so an unreachable database fails here, clearly."""
    engine = make_engine(config.database_url)
    try:
        with engine.connect():
            pass
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        raise CliError(
            f"cannot reach the database {_display_url(config)}: {config.redact(reason)}"
        ) from None
    return engine


@app.command()
def serve(
    config_path: ConfigOption = None,
    host: Annotated[str | None, typer.Option(help="default: listen.host, 127.0.0.1")] = None,
    port: Annotated[int | None, typer.Option(help="default: listen.port, 8080")] = None,
    workers: Annotated[
        int, typer.Option(min=1, help="worker processes (each with its own sink and pollers)")
    ] = 1,
) -> None:
    """Migrate the database, then serve the API and run the pollers.

    With --workers N (N > 1), SWITCHYARD_SESSION_SECRET must be set: every
    worker has to sign dashboard sessions with the same key.
    """
    from dashboards.web.session import check_session_secret
    from gateway.api.app import SourceSetupError, build_adapters, create_app
    from gateway.server import SERVE_CONFIG_ENV, rid_less_pairing_warning
    from gateway.server import serve as serve_gateway

    config = _load(config_path)
    with _user_errors(config):
        try:
            check_session_secret(workers)
        except ValueError as exc:
            raise CliError(str(exc), 2) from None
        engine = _engine(config)
        upgrade(engine)
        try:
            if workers == 1:
                api: Any = create_app(config, engine, run_pollers=True)
            else:
                # Each worker builds its own app; a bad source fails here, before any starts.
                for adapter in build_adapters(config).values():
                    if callable(getattr(adapter, "close", None)):
                        adapter.close()
                api = "gateway.server:app_from_environment"
                os.environ[SERVE_CONFIG_ENV] = config_path or ""
        except SourceSetupError as exc:
            raise CliError(str(exc), 2) from None
    warning = rid_less_pairing_warning(config, workers)
    if warning:
        typer.echo(f"warning: {warning}", err=True)
    serve_gateway(
        api,
        workers=workers,
        host=host or config.listen.host,
        port=config.listen.port if port is None else port,
        log_level=os.environ.get("SWITCHYARD_LOG_LEVEL", "info").lower(),
    )


@app.command()
def demo(
    host: Annotated[str, typer.Option(help="interface to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="0 picks a free port")] = 8080,
    data_dir: Annotated[
        str, typer.Option("--data-dir", help="SQLite db, spool dirs, kubeconfig")
    ] = ".demo",
    reset: Annotated[bool, typer.Option("--reset", help="delete the data directory first")] = False,
) -> None:
    """Serve Switchyard on SQLite over an emulated estate of every source kind."""
    from pathlib import Path

    from gateway.demo.serve import run_demo

    with _user_errors():
        run_demo(data_dir=Path(data_dir).resolve(), host=host, port=port, reset=reset)


@config_app.command("check")
def config_check(config_path: ConfigOption = None) -> None:
    """Validate the config; list each source and its kind (never secret values)."""
    config = _load(config_path)
    origin = config.path or "<defaults>"
    with _user_errors(config):
        for i, source in enumerate(config.sources):
            try:
                check_source_options(source.source_config())
            except SourceError as exc:  # the adapter names the option; say where it is
                raise ConfigError(f"{origin}: sources[{i}].{exc.message}") from None
    typer.echo(f"{origin}: ok, {len(config.sources)} source(s)")
    for s in config.sources:
        state = "" if s.enabled else " (disabled)"
        typer.echo(f"  {s.name}\t{s.kind}\tevery {s.interval:g}s{state}")


@token_app.command("create")
def token_create(
    role: Annotated[Role, typer.Option(help="viewer, operator, admin or ingest")] = Role.viewer,
    name: Annotated[str | None, typer.Option(help="who or what the token is for")] = None,
    sources: Annotated[
        str | None,
        typer.Option(help="ingest only: the sources it may push events into, comma-separated"),
    ] = None,
    config_path: ConfigOption = None,
) -> None:
    """Create a token and print it once; only its hash is stored."""
    config = _load(config_path)
    with _user_errors(config):
        scope = sources.split(",") if sources is not None else None
        engine = _engine(config)
        upgrade(engine)
        token = create_token(engine, role=role, name=name, sources=scope)
    typer.echo(token)
    typer.echo(f"created {role.value} token; it is shown only this once", err=True)


@token_app.command("list")
def token_list(
    all_: Annotated[bool, typer.Option("--all", help="include revoked tokens")] = False,
    config_path: ConfigOption = None,
) -> None:
    """List tokens (their display prefix, never the token)."""
    config = _load(config_path)
    with _user_errors(config):
        tokens = list_tokens(_engine(config), include_revoked=all_)
    typer.echo("id\tname\trole\tsources\tprefix\tcreated\tlast used\trevoked")
    for t in tokens:
        cells = [
            str(t.id),
            t.name,
            t.role.value,
            ",".join(t.sources) or "-",
            t.prefix + "…",
            t.created_at.isoformat(timespec="seconds") if t.created_at else "-",
            t.last_used_at.isoformat(timespec="seconds") if t.last_used_at else "-",
            t.revoked_at.isoformat(timespec="seconds") if t.revoked_at else "-",
        ]
        typer.echo("\t".join(cells))


@token_app.command("revoke")
def token_revoke(
    token_id: Annotated[int, typer.Argument(help="the id shown by `token list`")],
    config_path: ConfigOption = None,
) -> None:
    """Revoke a token; requests with it are refused from now on."""
    config = _load(config_path)
    with _user_errors(config):
        info = revoke_token(_engine(config), token_id)
    typer.echo(f"revoked token {info.id} ({info.name}, {info.prefix}…)")


@app.command("poll-once")
def poll_once_command(
    source: Annotated[str, typer.Argument(help="a source name from the config")],
    config_path: ConfigOption = None,
) -> None:
    """Poll one source once and store what it returns (no lease taken)."""
    from gateway.runtime import poll_once
    from gateway.runtime.poller import read_cursor

    config = _load(config_path)
    with _user_errors(config):
        entry = config.source(source)
        engine = _engine(config)
        upgrade(engine)
        try:
            adapter = create_adapter(entry.source_config())
        except ValueError as exc:
            raise CliError(f"source {source!r}: {exc}", 2) from None
        try:
            report = poll_once(engine, adapter)
        finally:
            close = getattr(adapter, "close", None)
            if callable(close):
                close()
        cursor = read_cursor(engine, source)
    typer.echo(
        f"{source}: {report.events} event(s): {report.applied} applied, "
        f"{report.duplicates} duplicate(s); runs {report.runs_created} created, "
        f"{report.runs_updated} updated; links {report.links_created} created; "
        f"jobs {report.jobs}; cursor {cursor if cursor is not None else '-'}"
    )


@db_app.command("upgrade")
def db_upgrade(config_path: ConfigOption = None) -> None:
    """Apply every pending migration."""
    config = _load(config_path)
    with _user_errors(config):
        engine = _engine(config)
        upgrade(engine)
        revision = current_revision(engine)
    typer.echo(f"database {_display_url(config)} at revision {revision}")


@db_app.command("prune")
def db_prune(
    older_than: Annotated[
        str, typer.Option("--older-than", help="e.g. 90d, 12h; default: the config's retention")
    ] = "",
    config_path: ConfigOption = None,
) -> None:
    """Delete finished run trees last observed longer ago than `--older-than`."""
    from gateway.runtime import prune

    config = _load(config_path)
    with _user_errors(config):
        if older_than:
            try:
                seconds = parse_duration(older_than)
            except ValueError as exc:
                raise CliError(f"--older-than: {exc}", 2) from None
        elif config.retention is not None:
            seconds = config.retention
        else:
            raise CliError("--older-than is needed: the config keeps runs forever", 2)
        engine = _engine(config)
        removed = prune(engine, seconds)
    typer.echo(f"removed {removed} run row(s) older than {seconds:g}s")


# `inventory` and `migrate …` live with the migration tools; mounted here, after
# the helpers above that they use.
from migration_tools.cli import register as _register_migration  # noqa: E402

_register_migration(app)


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


__all__ = ["app", "main"]
