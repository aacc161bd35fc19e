"""`switchyard inventory` and `switchyard migrate …`: the migration from the command line.

Jobs are named `SOURCE:KEY` (several at once, with a progress bar). Every
action is a `Migrations` call, so it is audited with `--actor` (default: the
login name) and refused or compensated exactly as through the API. Errors a
user can meet are one line on stderr and exit 1 (2 for usage), never a
traceback. Mounted on the `switchyard` app by `register(app)`.
"""

from __future__ import annotations

import getpass
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer
from rich.progress import track

from migration_tools.inventory import FORMATS, collect_inventory, render

if TYPE_CHECKING:
    from migration_tools.lifecycle import Migrations, MigrationView
from migration_tools.wrap import AirflowTarget, WrapError, WrapOptions

migrate_app = typer.Typer(
    help="Walk jobs through observed → translated → wrapped → shadow → cut_over → retired.",
    no_args_is_help=True,
)

JobsArg = Annotated[list[str], typer.Argument(help="jobs as SOURCE:KEY", show_default=False)]
ActorOption = Annotated[
    str | None, typer.Option("--actor", help="who is acting, for the audit (default: login)")
]
KestraOption = Annotated[
    str | None, typer.Option("--kestra-source", help="the kestra source to deploy to")
]


def _split(job: str) -> tuple[str, str]:
    source, sep, key = job.partition(":")
    if not sep or not source or not key:
        raise typer.BadParameter(f"{job!r}: expected SOURCE:KEY")
    return source, key


@contextmanager
def _session(
    config_path: str | None, kestra_source: str | None = None, **options: Any
) -> Iterator[Migrations]:
    # Imported here: the Kestra SDK loads only for commands that use it.
    from gateway.cli import CliError, _engine, _load, _user_errors
    from migration_tools.lifecycle import MigrationError, migrations_for

    config = _load(config_path)
    with _user_errors(config):
        engine = _engine(config)
        from gateway.store.migrate import upgrade

        upgrade(engine)
        m = migrations_for(config, engine, kestra_source_name=kestra_source, **options)
        try:
            yield m
        except (MigrationError, WrapError) as exc:
            raise CliError(str(exc), 1) from None
        finally:
            legacy = m.legacy
            close = getattr(legacy, "close", None)
            if callable(close):
                close()


def _show(view: MigrationView) -> None:
    flow = f"{view.namespace}.{view.flow_id}" if view.flow_id else "-"
    readiness = view.readiness or "-"
    typer.echo(f"{view.source}:{view.job_key}\t{view.state}\t{readiness}\t{flow}")


def _each(jobs: list[str], label: str, act: Callable[[str, str], MigrationView]) -> None:
    pairs = [_split(j) for j in jobs]
    views = [act(s, k) for s, k in (track(pairs, description=label) if len(pairs) > 1 else pairs)]
    for view in views:
        _show(view)


def _actor(actor: str | None) -> str:
    return actor or getpass.getuser()


ConfigOpt = Annotated[
    str | None,
    typer.Option("--config", "-c", envvar="SWITCHYARD_CONFIG", help="switchyard.yaml"),
]


@migrate_app.command("status")
def status(
    jobs: Annotated[list[str] | None, typer.Argument(help="SOURCE:KEY (default: all)")] = None,
    json_out: Annotated[bool, typer.Option("--json")] = False,
    config_path: ConfigOpt = None,
) -> None:
    """Where each job stands (every job in the lifecycle when none is named)."""
    with _session(config_path) as m:
        views = [m.status(*_split(j)) for j in jobs] if jobs else m.list_migrations()
    if json_out:
        typer.echo(json.dumps([v.as_dict() for v in views], indent=2))
        return
    for view in views:
        _show(view)


@migrate_app.command("plan")
def plan(
    source: Annotated[str | None, typer.Option(help="only this source")] = None,
    config_path: ConfigOpt = None,
) -> None:
    """The suggested waves: dependencies first, simple and healthy before complex."""
    with _session(config_path) as m:
        inventory = collect_inventory(m.engine, source=source)
    for item in inventory.items:
        typer.echo(f"wave {item.wave}\t{item.ref}\t{item.readiness}\t{item.wave_reason}")


@migrate_app.command("translate")
def translate_cmd(jobs: JobsArg, actor: ActorOption = None, config_path: ConfigOpt = None) -> None:
    """Generate and store the Kestra flow of each job (nothing is deployed)."""
    with _session(config_path) as m:
        _each(jobs, "translating", lambda s, k: m.translate(s, k, actor=_actor(actor)))


@migrate_app.command("show")
def show(job: Annotated[str, typer.Argument()], config_path: ConfigOpt = None) -> None:
    """Print the stored translated flow YAML (and the wrap flow, if any)."""
    from sqlmodel import Session

    from gateway.contract import job_id_for
    from gateway.store.models import Migration
    from migration_tools.lifecycle import MigrationError

    source, key = _split(job)
    with _session(config_path) as m, Session(m.engine) as session:
        row = session.get(Migration, job_id_for(source, key))
        if row is None or not row.translated_yaml:
            raise MigrationError(source, key, "not translated yet")
        typer.echo(row.translated_yaml, nl=False)
        if row.wrap_yaml:
            typer.echo("---\n" + row.wrap_yaml, nl=False)


@migrate_app.command("deploy")
def deploy(
    jobs: JobsArg,
    actor: ActorOption = None,
    kestra_source: KestraOption = None,
    config_path: ConfigOpt = None,
) -> None:
    """Push each translated flow to Kestra (its triggers stay disabled)."""
    with _session(config_path, kestra_source) as m:
        _each(jobs, "deploying", lambda s, k: m.deploy(s, k, actor=_actor(actor)))


@migrate_app.command("wrap")
def wrap_cmd(
    jobs: JobsArg,
    actor: ActorOption = None,
    kestra_source: KestraOption = None,
    airflow_url: Annotated[str | None, typer.Option(help="Airflow base URL for DAGs")] = None,
    airflow_version: Annotated[str, typer.Option(help="2 or 3")] = "3",
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help="do not ask; wrap where each job is shown to run")
    ] = False,
    config_path: ConfigOpt = None,
) -> None:
    """Kestra takes over each job's schedule and calls the legacy job; legacy schedule paused.

    Before anything changes, each job's line says where its work will run: the
    host and user over SSH, or the Kestra worker itself. Without --yes the
    command asks before wrapping (and stops when nobody can answer).
    """
    if airflow_version not in ("2", "3"):
        raise typer.BadParameter("--airflow-version must be 2 or 3")
    version: Literal["2", "3"] = "2" if airflow_version == "2" else "3"
    airflow = AirflowTarget(airflow_url, version) if airflow_url else None
    pairs = [_split(j) for j in jobs]
    with _session(config_path, kestra_source) as m:
        m.wrap_options = WrapOptions(namespace=m.namespace, airflow=airflow)
        for source, key in pairs:
            target = m.wrap_target(source, key)
            typer.echo(f"wrap {source}:{key}: {target.summary}")
        if not yes and not typer.confirm(f"Wrap {len(pairs)} job(s) as shown?", default=False):
            raise typer.Exit(1)
        _each(jobs, "wrapping", lambda s, k: m.wrap(s, k, actor=_actor(actor)))


@migrate_app.command("shadow")
def shadow(
    jobs: JobsArg,
    safe: Annotated[
        bool, typer.Option("--safe", help="confirm the job may run twice (legacy and native)")
    ] = False,
    actor: ActorOption = None,
    kestra_source: KestraOption = None,
    config_path: ConfigOpt = None,
) -> None:
    """Run the native flow beside the legacy job, to measure parity."""
    with _session(config_path, kestra_source) as m:
        _each(jobs, "shadowing", lambda s, k: m.shadow(s, k, actor=_actor(actor), safe=safe))


@migrate_app.command("parity")
def parity(
    job: Annotated[str, typer.Argument()],
    tolerance: Annotated[float, typer.Option(help="pairing tolerance, seconds")] = 300.0,
    json_out: Annotated[bool, typer.Option("--json")] = False,
    config_path: ConfigOpt = None,
) -> None:
    """The shadow parity report: legacy and native runs compared run by run."""
    from migration_tools.lifecycle import ParityPolicy

    with _session(config_path, parity=ParityPolicy(tolerance_s=tolerance)) as m:
        report = m.parity_report(*_split(job))
    if json_out:
        typer.echo(json.dumps(report.as_dict(), indent=2, default=str))
        return
    value = "n/a" if report.parity is None else f"{report.parity:.3f}"
    typer.echo(f"parity {value} over {report.compared} compared run(s): {report.counts}")
    for p in report.pairs:
        legacy = f"{p.legacy.state}@{p.legacy.anchor:%Y-%m-%d %H:%M}" if p.legacy else "-"
        native = f"{p.native.state}@{p.native.anchor:%Y-%m-%d %H:%M}" if p.native else "-"
        typer.echo(f"  {p.verdict}\tlegacy {legacy}\tnative {native}")


@migrate_app.command("cutover")
def cutover(
    jobs: JobsArg,
    min_parity: Annotated[float, typer.Option("--min-parity")] = 0.95,
    min_runs: Annotated[int, typer.Option("--min-runs")] = 5,
    force: Annotated[bool, typer.Option("--force", help="cut over below parity")] = False,
    actor: ActorOption = None,
    kestra_source: KestraOption = None,
    config_path: ConfigOpt = None,
) -> None:
    """Pause the legacy schedule and enable the Kestra trigger (refused below parity)."""
    from migration_tools.lifecycle import MigrationError, ParityTooLow

    with _session(config_path, kestra_source) as m:
        try:
            _each(
                jobs,
                "cutting over",
                lambda s, k: m.cutover(
                    s, k, actor=_actor(actor), force=force, min_parity=min_parity, min_runs=min_runs
                ),
            )
        except ParityTooLow as exc:
            raise MigrationError(
                exc.source, exc.job_key, f"cutover refused: {exc.message}"
            ) from None


@migrate_app.command("rollback")
def rollback(
    jobs: JobsArg,
    actor: ActorOption = None,
    kestra_source: KestraOption = None,
    config_path: ConfigOpt = None,
) -> None:
    """Back to observed: legacy schedule resumed, Kestra triggers off and flows removed."""
    with _session(config_path, kestra_source) as m:
        _each(jobs, "rolling back", lambda s, k: m.rollback(s, k, actor=_actor(actor)))


@migrate_app.command("retire")
def retire(jobs: JobsArg, actor: ActorOption = None, config_path: ConfigOpt = None) -> None:
    """Mark a cut-over job retired (its legacy schedule stays paused)."""
    with _session(config_path) as m:
        _each(jobs, "retiring", lambda s, k: m.retire(s, k, actor=_actor(actor)))


@migrate_app.command("release")
def release(jobs: JobsArg, actor: ActorOption = None, config_path: ConfigOpt = None) -> None:
    """Clear the claim a crashed action left on each job (it would expire on its own)."""
    with _session(config_path) as m:
        _each(jobs, "releasing", lambda s, k: m.release(s, k, actor=_actor(actor)))


@migrate_app.command("audit")
def audit(job: Annotated[str, typer.Argument()], config_path: ConfigOpt = None) -> None:
    """Every action on a job: when, who, what, before → after, outcome."""
    with _session(config_path) as m:
        rows = m.audit(*_split(job))
    for r in rows:
        at = r.at.isoformat(timespec="seconds") if r.at else "-"
        detail = json.dumps(r.detail, default=str) if r.detail else ""
        typer.echo(f"{at}\t{r.actor}\t{r.action}\t{r.before} → {r.after}\t{r.outcome}\t{detail}")


def inventory_command(
    fmt: Annotated[str, typer.Option("--format", "-f", help="markdown, csv or json")] = "markdown",
    output: Annotated[Path | None, typer.Option("--output", "-o")] = None,
    discover: Annotated[bool, typer.Option("--discover", help="run discovery first")] = False,
    days: Annotated[int, typer.Option(help="run history window")] = 30,
    source: Annotated[str | None, typer.Option(help="only this source")] = None,
    config_path: ConfigOpt = None,
) -> None:
    """Every job of every source: schedule, owner, run health, dependencies, readiness, wave."""
    if fmt not in FORMATS:
        raise typer.BadParameter(f"--format must be one of {', '.join(FORMATS)}")
    from gateway.cli import _engine, _load, _user_errors
    from gateway.contract import create_adapter
    from gateway.ingest import apply_batch
    from gateway.store.migrate import upgrade

    config = _load(config_path)
    with _user_errors(config):
        engine = _engine(config)
        upgrade(engine)
        if discover:
            entries = [s for s in config.sources if s.enabled and (not source or s.name == source)]
            for entry in track(entries, description="discovering"):
                adapter = create_adapter(entry.source_config())
                try:
                    apply_batch(engine, entry.name, [], jobs=adapter.discover())
                finally:
                    close = getattr(adapter, "close", None)
                    if callable(close):
                        close()
        text = render(collect_inventory(engine, days=days, source=source), fmt)
    if output is not None:
        output.write_text(text, encoding="utf-8")
        typer.echo(f"wrote {output}", err=True)
    else:
        typer.echo(text, nl=False)


def register(app: typer.Typer) -> None:
    """Mount `inventory` and `migrate` on the `switchyard` app."""
    app.command("inventory")(inventory_command)
    app.add_typer(migrate_app, name="migrate")


__all__ = ["inventory_command", "migrate_app", "register"]
