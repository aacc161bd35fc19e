"""The per-job migration lifecycle: a state machine whose every step is audited and reversible.

    observed → translated → wrapped → shadow → cut_over → retired
                   └────────────────────↗        (shadow may follow translated)
    rollback: any state → observed

Each action is a named rule (`RULES`: the states it may start from and the
state it leads to). An action runs its side effects as a list of steps,
each with its undo; when a step fails, the undos of the steps already done
run in reverse order, so both sides are left as they were (cutover: if the
Kestra trigger cannot be enabled after the legacy schedule was paused, the
legacy schedule is resumed). Then one transaction writes the `migration`
row, `job.migration_state` and the `migration_audit` row (who, when, action,
before, after, outcome, detail) — or, on failure, only the audit row with
outcome `compensated` (or `inconsistent` when an undo failed too, naming
it).

Actions on one job are atomic with respect to each other. Before any side
effect an action *claims* the job: one conditional UPDATE of its `migration`
row (the state it read, and no live claim) sets `claim_token`, `claimed_by`,
`claim_action` and `claim_expires_at` (a fresh job's row is inserted with the
claim). An operator who loses that race gets `ActionInProgress` (409 through
the API) naming the job, the state found and who holds it, and nothing is
done. The commit of the outcome is guarded by the claim token and clears the
claim; if it fails after side effects (the database went away, the claim was
released or taken over), the steps' undos run as on a failed step and the
audit row says `compensated` (or `inconsistent`), failed step `commit`.
A claim expires `claim_ttl` (10 minutes) after it was taken, so one left by a
crashed process blocks the job no longer than that; `release` (`switchyard
migrate release`) clears it sooner and is audited. Release only a claim whose
holder is gone: a live holder finds its claim missing at its commit and undoes
its own steps.

`Migration.sides` records what Switchyard changed on each side (legacy
paused, wrap/native flow deployed, which triggers enabled); rollback undoes
exactly that, legacy first so the job never runs nowhere. The legacy pause
keeps the adapter's receipt (`legacy_receipt`: which rules or schedules it
disabled, whether the DAG or CronJob was already paused) and rollback hands
it back to `resume`, so a schedule its owner had paused before stays paused.

Audit details and the messages of failed actions go through `redact`
(`Config.redact` when built by `migrations_for`): a side's error text that
quotes a secret from the environment is stored and shown as `***`.
"""

from __future__ import annotations

import enum
import logging
import secrets
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, NoReturn

import sqlalchemy as sa
from pydantic import ValidationError
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from adapters.kestra.normalize import job_key as kestra_job_key
from gateway.config import Config, ConfigError, SourceEntry
from gateway.contract import ControlReceipt, JobSpec, create_adapter, job_id_for
from gateway.store.models import Job, Migration, MigrationAudit
from migration_tools.kestra_api import KestraApi
from migration_tools.parity import DEFAULT_TOLERANCE_S, ParityReport, parity_report
from migration_tools.translate import (
    DEFAULT_NAMESPACE,
    FlowYamlError,
    TranslationError,
    check_flow,
    translate,
)
from migration_tools.wrap import WrapError, WrapFlow, WrapOptions, WrapTarget, wrap

log = logging.getLogger(__name__)

# How long a claim holds a job when its holder never commits (a crashed process).
DEFAULT_CLAIM_TTL = timedelta(minutes=10)


class MigrationState(enum.StrEnum):
    observed = "observed"
    translated = "translated"
    wrapped = "wrapped"
    shadow = "shadow"
    cut_over = "cut_over"
    retired = "retired"


S = MigrationState


@dataclass(frozen=True)
class Rule:
    """An action: the states it may start from and the state it leads to (None: unchanged)."""

    name: str
    allowed_from: frozenset[MigrationState]
    to: MigrationState | None


RULES: dict[str, Rule] = {
    r.name: r
    for r in (
        Rule("translate", frozenset({S.observed, S.translated}), S.translated),
        Rule("deploy", frozenset({S.translated, S.wrapped, S.shadow}), None),
        Rule("wrap", frozenset({S.translated}), S.wrapped),
        Rule("shadow", frozenset({S.translated, S.wrapped}), S.shadow),
        Rule("cutover", frozenset({S.shadow}), S.cut_over),
        Rule("retire", frozenset({S.cut_over}), S.retired),
        Rule("rollback", frozenset(set(S) - {S.observed}), S.observed),
    )
}


class MigrationError(Exception):
    """A lifecycle action could not be done; names the job and why."""

    def __init__(self, source: str, job_key: str, message: str) -> None:
        super().__init__(f"{source}:{job_key}: {message}")
        self.source = source
        self.job_key = job_key
        self.message = message


class JobNotFound(MigrationError):
    def __init__(self, source: str, job_key: str) -> None:
        super().__init__(source, job_key, "no such discovered job (run discovery first)")


class TransitionRefused(MigrationError):
    """The action is not allowed from the job's current state (or a race moved it)."""


class ActionInProgress(TransitionRefused):
    """Another action holds the job (its claim is live); nothing was done."""


class ParityTooLow(MigrationError):
    def __init__(self, source: str, job_key: str, reason: str, report: ParityReport) -> None:
        super().__init__(source, job_key, reason)
        self.report = report


class SideEffectFailed(MigrationError):
    """A step on Kestra or the legacy system failed; `compensated` says if all was undone."""

    def __init__(
        self, source: str, job_key: str, message: str, *, compensated: bool, detail: dict[str, Any]
    ) -> None:
        super().__init__(source, job_key, message)
        self.compensated = compensated
        self.detail = detail


@dataclass(frozen=True)
class ParityPolicy:
    min_parity: float = 0.95
    min_runs: int = 5
    tolerance_s: float = DEFAULT_TOLERANCE_S


@dataclass(frozen=True)
class MigrationView:
    """A job's place in the lifecycle, as the CLI and API show it."""

    job_id: str
    source: str
    job_key: str
    state: str
    namespace: str | None
    flow_id: str | None
    wrap_flow_id: str | None
    readiness: str | None
    reasons: list[str]
    sides: dict[str, Any]
    updated_at: datetime | None
    state_changed_at: datetime | None
    # The action holding the job right now: {"by", "action", "until"}, else None.
    claim: dict[str, Any] | None = None

    @classmethod
    def of(cls, m: Migration) -> MigrationView:
        claim = None
        if m.claim_token:
            until = m.claim_expires_at.isoformat() if m.claim_expires_at else None
            claim = {"by": m.claimed_by, "action": m.claim_action, "until": until}
        return cls(
            m.job_id,
            m.source,
            m.job_key,
            m.state,
            m.namespace,
            m.flow_id,
            m.wrap_flow_id,
            m.readiness,
            list(m.reasons),
            dict(m.sides),
            m.updated_at,
            m.state_changed_at,
            claim,
        )

    def as_dict(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        for k in ("updated_at", "state_changed_at"):
            out[k] = out[k].isoformat() if out[k] else None
        return out


@dataclass
class _Step:
    name: str
    do: Callable[[], Any]
    undo: Callable[[], Any] | None = None


@dataclass
class _Plan:
    """Steps run in order; on failure the done steps' undos run in reverse."""

    steps: list[_Step] = field(default_factory=list)
    done: list[_Step] = field(default_factory=list)

    def add(self, name: str, do: Callable[[], Any], undo: Callable[[], Any] | None = None) -> None:
        self.steps.append(_Step(name, do, undo))

    def run(self) -> dict[str, Any] | None:
        """Run every step; None when all succeeded, else what failed and what was undone."""
        for step in self.steps:
            try:
                step.do()
            except Exception as exc:  # any side failing must trigger the undo of the others
                return self.compensate(step.name, str(exc))
            self.done.append(step)
        return None

    def compensate(self, failed_step: str, error: str) -> dict[str, Any]:
        """Undo the done steps, newest first, and say what failed and what was undone."""
        undone, undo_failed = [], []
        for prior in reversed(self.done):
            if prior.undo is None:
                continue
            try:
                prior.undo()
                undone.append(prior.name)
            except Exception as undo_exc:  # keep undoing; report every failure
                undo_failed.append(f"{prior.name}: {undo_exc}")
        self.done = []
        return {
            "failed_step": failed_step,
            "error": error,
            "undone": undone,
            "undo_failed": undo_failed,
        }


# What an action's effects hand back: a finishing touch run after its steps succeed.
After = Callable[[Migration], None] | None


def _resume_legacy(legacy: Any, job_key: str, receipt: ControlReceipt | None) -> None:
    # No receipt (a pause recorded before receipts, or an adapter without them):
    # the one-argument call, which every adapter takes and which resumes everything.
    if receipt is None:
        legacy.resume(job_key)
    else:
        legacy.resume(job_key, receipt)


@dataclass
class _LegacyPause:
    """The pause-legacy step: keeps the adapter's receipt; its undo resumes exactly that."""

    legacy: Any
    job_key: str
    receipt: ControlReceipt | None = None

    def do(self) -> None:
        self.receipt = self.legacy.pause(self.job_key)

    def undo(self) -> None:
        _resume_legacy(self.legacy, self.job_key, self.receipt)

    def record(self, done: Migration, detail: dict[str, Any]) -> None:
        if self.receipt is not None:
            done.sides = dict(done.sides, legacy_receipt=self.receipt)
            detail.update(legacy_receipt=self.receipt)


def _now() -> datetime:
    return datetime.now(UTC)


def _as_written(text: str) -> str:
    return text


@dataclass
class Migrations:
    """Lifecycle actions for the jobs in one store, against one Kestra and the legacy adapters.

    `legacy` maps a source name to its adapter (a `contract.ControlAdapter`:
    `pause(job_key)` returning a receipt or None, and `resume(job_key)` /
    `resume(job_key, receipt)`); `kestra` is the Kestra API client.
    """

    engine: Engine
    kestra: KestraApi | None = None
    legacy: Mapping[str, Any] = field(default_factory=dict)
    namespace: str = DEFAULT_NAMESPACE
    kestra_version: str = "1"
    wrap_options: WrapOptions | None = None
    parity: ParityPolicy = field(default_factory=ParityPolicy)
    clock: Callable[[], datetime] = _now
    redact: Callable[[str], str] = _as_written
    claim_ttl: timedelta = DEFAULT_CLAIM_TTL

    # reads ---------------------------------------------------------------
    def status(self, source: str, job_key: str) -> MigrationView:
        with Session(self.engine) as session:
            job = self._job(session, source, job_key)
            m = session.get(Migration, job.id)
            return MigrationView.of(m) if m else MigrationView.of(self._fresh(job))

    def list_migrations(self, *, state: str | None = None, limit: int = 500) -> list[MigrationView]:
        with Session(self.engine) as session:
            query = select(Migration).order_by(Migration.source, Migration.job_key).limit(limit)
            if state:
                query = query.where(Migration.state == state)
            return [MigrationView.of(m) for m in session.exec(query).all()]

    def audit(self, source: str, job_key: str, *, limit: int = 200) -> list[MigrationAudit]:
        job_id = job_id_for(source, job_key)
        with Session(self.engine) as session:
            query = (
                select(MigrationAudit)
                .where(MigrationAudit.job_id == job_id)
                .order_by(MigrationAudit.id)  # type: ignore[arg-type]  # column, not int
                .limit(limit)
            )
            return list(session.exec(query).all())

    def parity_report(
        self, source: str, job_key: str, *, since: datetime | None = None
    ) -> ParityReport:
        view = self.status(source, job_key)
        if not view.flow_id or not view.namespace:
            raise MigrationError(source, job_key, "not translated yet: no native flow to compare")
        start = since or view.sides.get("shadow_since")
        start_at = (
            datetime.fromisoformat(start)
            if isinstance(start, str)
            else start or self.clock() - timedelta(days=30)
        )
        return parity_report(
            self.engine,
            source=source,
            job_key=job_key,
            native_job=kestra_job_key(view.namespace, view.flow_id),
            since=start_at,
            tolerance_s=self.parity.tolerance_s,
        )

    # actions -------------------------------------------------------------
    def translate(self, source: str, job_key: str, *, actor: str) -> MigrationView:
        def effects(m: Migration, spec: JobSpec, plan: _Plan, detail: dict[str, Any]) -> After:
            try:
                t = translate(spec, kestra_version=self.kestra_version, namespace=self.namespace)
            except (TranslationError, FlowYamlError) as exc:
                raise TransitionRefused(source, job_key, f"cannot translate: {exc}") from None
            problems = check_flow(t.yaml_text, kestra_version=self.kestra_version)
            m.namespace, m.flow_id = t.namespace, t.flow_id
            m.translated_yaml, m.readiness = t.yaml_text, t.readiness
            m.reasons = list(t.reasons) + [str(p) for p in problems]
            detail.update(readiness=t.readiness, flow=f"{t.namespace}.{t.flow_id}")
            if t.secrets:
                detail.update(secrets_to_create=[s.name for s in t.secrets])
            return None

        return self._act("translate", source, job_key, actor, effects)

    def deploy(self, source: str, job_key: str, *, actor: str) -> MigrationView:
        """Push the native flow to Kestra as translated (its triggers stay disabled)."""

        def effects(m: Migration, spec: JobSpec, plan: _Plan, detail: dict[str, Any]) -> After:
            kestra = self._kestra(source, job_key)
            yaml_text = self._native_yaml(m)
            ns, fid = str(m.namespace), str(m.flow_id)
            result: dict[str, Any] = {}
            plan.add(
                "deploy native flow", lambda: result.update(kestra.put_flow(ns, fid, yaml_text))
            )

            def after(done: Migration) -> None:
                done.deployed_revision = result.get("revision")
                done.sides = dict(done.sides, native_deployed=True)
                detail.update(flow=f"{ns}.{fid}", revision=done.deployed_revision)

            return after

        return self._act("deploy", source, job_key, actor, effects)

    def wrap(self, source: str, job_key: str, *, actor: str) -> MigrationView:
        def effects(m: Migration, spec: JobSpec, plan: _Plan, detail: dict[str, Any]) -> After:
            kestra = self._kestra(source, job_key)
            legacy = self._legacy(source, job_key)
            wf = self._wrap_flow(source, job_key, spec)
            ns = wf.namespace
            plan.add(
                "deploy wrap flow",
                lambda: kestra.put_flow(ns, wf.flow_id, wf.yaml_text),
                lambda: kestra.delete_flow(ns, wf.flow_id),
            )
            pause = None if m.sides.get("legacy_paused") else _LegacyPause(legacy, job_key)
            if pause is not None:
                plan.add("pause legacy schedule", pause.do, pause.undo)
            for tid in wf.trigger_ids:
                plan.add(
                    f"enable wrap trigger {tid}",
                    partial(kestra.enable_trigger, ns, wf.flow_id, tid),
                    partial(kestra.disable_trigger, ns, wf.flow_id, tid),
                )
            m.wrap_flow_id, m.wrap_yaml = wf.flow_id, wf.yaml_text
            m.sides = dict(
                m.sides,
                wrap_deployed=True,
                legacy_paused=True,
                wrap_triggers=list(wf.trigger_ids),
                wrap_target=wf.target.as_dict(),
            )
            detail.update(
                wrap_flow=f"{ns}.{wf.flow_id}",
                triggers=list(wf.trigger_ids),
                wrap_target=wf.target.as_dict(),
            )
            return None if pause is None else partial(pause.record, detail=detail)

        return self._act("wrap", source, job_key, actor, effects)

    def wrap_target(self, source: str, job_key: str) -> WrapTarget:
        """Where `wrap` would make the job's work run (nothing is changed); for confirmations."""
        with Session(self.engine) as session:
            spec = self._stored_spec(self._job(session, source, job_key))
        return self._wrap_flow(source, job_key, spec).target

    def _wrap_flow(self, source: str, job_key: str, spec: JobSpec) -> WrapFlow:
        try:
            return wrap(spec, self.wrap_options or WrapOptions(namespace=self.namespace))
        except (WrapError, TranslationError, FlowYamlError) as exc:
            message = exc.message if isinstance(exc, WrapError) else str(exc)
            raise TransitionRefused(source, job_key, f"cannot wrap: {message}") from None

    def shadow(self, source: str, job_key: str, *, actor: str, safe: bool) -> MigrationView:
        """Run the native flow beside the legacy one; the caller says that is safe."""

        def effects(m: Migration, spec: JobSpec, plan: _Plan, detail: dict[str, Any]) -> After:
            if not safe:
                raise TransitionRefused(
                    source,
                    job_key,
                    "shadow runs the native flow beside the legacy job (both do the work); "
                    "confirm it is safe to run twice (--safe)",
                )
            if m.readiness != "full":
                raise TransitionRefused(
                    source,
                    job_key,
                    f"translation readiness is {m.readiness}, not full: "
                    + "; ".join(m.reasons or ["re-translate"]),
                )
            kestra = self._kestra(source, job_key)
            yaml_text = self._native_yaml(m)
            ns, fid = str(m.namespace), str(m.flow_id)
            triggers = _trigger_ids(yaml_text)
            if not triggers:
                raise TransitionRefused(source, job_key, "the native flow has no trigger to run on")
            plan.add("deploy native flow", lambda: kestra.put_flow(ns, fid, yaml_text))
            for tid in triggers:
                plan.add(
                    f"enable native trigger {tid}",
                    partial(kestra.enable_trigger, ns, fid, tid),
                    partial(kestra.disable_trigger, ns, fid, tid),
                )
            m.sides = dict(
                m.sides,
                native_deployed=True,
                native_triggers=triggers,
                shadow_since=self.clock().isoformat(),
            )
            detail.update(native_flow=f"{ns}.{fid}", triggers=triggers)
            return None

        return self._act("shadow", source, job_key, actor, effects)

    def cutover(
        self,
        source: str,
        job_key: str,
        *,
        actor: str,
        force: bool = False,
        min_parity: float | None = None,
        min_runs: int | None = None,
    ) -> MigrationView:
        """Pause legacy, stop the wrap, enable the native trigger — refused below parity."""
        floor = self.parity.min_parity if min_parity is None else min_parity
        need = self.parity.min_runs if min_runs is None else min_runs

        def effects(m: Migration, spec: JobSpec, plan: _Plan, detail: dict[str, Any]) -> After:
            report = self.parity_report(source, job_key)
            detail.update(parity=report.parity, compared=report.compared, forced=force)
            reason = None
            if report.compared < need:
                reason = f"only {report.compared} runs compared in shadow; {need} needed"
            elif report.parity is not None and report.parity < floor:
                reason = (
                    f"parity {report.parity:.2f} over {report.compared} runs is below "
                    f"{floor:.2f} ({report.counts})"
                )
            if reason and not force:
                raise ParityTooLow(source, job_key, reason + " (use --force to override)", report)
            if reason:
                detail["forced_over"] = reason
            kestra = self._kestra(source, job_key)
            legacy = self._legacy(source, job_key)
            ns, fid = str(m.namespace), str(m.flow_id)
            pause = None if m.sides.get("legacy_paused") else _LegacyPause(legacy, job_key)
            if pause is not None:
                plan.add("pause legacy schedule", pause.do, pause.undo)
            for tid in m.sides.get("wrap_triggers") or []:
                plan.add(
                    f"disable wrap trigger {tid}",
                    partial(kestra.disable_trigger, ns, str(m.wrap_flow_id), tid),
                    partial(kestra.enable_trigger, ns, str(m.wrap_flow_id), tid),
                )
            for tid in m.sides.get("native_triggers") or []:
                plan.add(
                    f"enable native trigger {tid}",
                    partial(kestra.enable_trigger, ns, fid, tid),
                    None,
                )
            m.sides = dict(m.sides, legacy_paused=True, wrap_triggers=[])
            return None if pause is None else partial(pause.record, detail=detail)

        return self._act("cutover", source, job_key, actor, effects)

    def retire(self, source: str, job_key: str, *, actor: str) -> MigrationView:
        def effects(m: Migration, spec: JobSpec, plan: _Plan, detail: dict[str, Any]) -> After:
            detail.update(legacy_paused=bool(m.sides.get("legacy_paused")))
            return None

        return self._act("retire", source, job_key, actor, effects)

    def rollback(self, source: str, job_key: str, *, actor: str) -> MigrationView:
        """Back to observed: legacy schedule resumed first, then Kestra's triggers and flows."""

        def effects(m: Migration, spec: JobSpec, plan: _Plan, detail: dict[str, Any]) -> After:
            sides = dict(m.sides)
            ns = str(m.namespace or self.namespace)
            if sides.get("legacy_paused"):
                legacy = self._legacy(source, job_key)
                receipt = sides.get("legacy_receipt")
                plan.add(
                    "resume legacy schedule",
                    partial(_resume_legacy, legacy, job_key, receipt),
                    lambda: legacy.pause(job_key),
                )
                detail.update(legacy_receipt=receipt)
            touches_kestra = sides.get("native_deployed") or sides.get("wrap_deployed")
            kestra = self._kestra(source, job_key) if touches_kestra else None
            if kestra is not None and m.flow_id:
                fid = str(m.flow_id)
                for tid in sides.get("native_triggers") or []:
                    plan.add(
                        f"disable native trigger {tid}",
                        partial(kestra.disable_trigger, ns, fid, tid),
                        partial(kestra.enable_trigger, ns, fid, tid),
                    )
            if kestra is not None and m.wrap_flow_id:
                wid = str(m.wrap_flow_id)
                for tid in sides.get("wrap_triggers") or []:
                    plan.add(
                        f"disable wrap trigger {tid}",
                        partial(kestra.disable_trigger, ns, wid, tid),
                        partial(kestra.enable_trigger, ns, wid, tid),
                    )
            # Deleting the flows comes last: with every trigger already off, a
            # failed delete leaves nothing running, so it is a warning, not a failure.
            warnings: list[str] = []
            for flag, flow_id in (
                ("wrap_deployed", m.wrap_flow_id),
                ("native_deployed", m.flow_id),
            ):
                if kestra is not None and sides.get(flag) and flow_id:
                    plan.add(
                        f"delete flow {flow_id}",
                        partial(_delete_quietly, kestra, ns, str(flow_id), warnings),
                    )
            detail["warnings"] = warnings
            m.sides = {}
            m.wrap_flow_id = m.wrap_yaml = None
            m.deployed_revision = None
            return None

        return self._act("rollback", source, job_key, actor, effects)

    def release(self, source: str, job_key: str, *, actor: str) -> MigrationView:
        """Clear the claim an action holds on the job (its holder crashed); audited.

        Only for a holder that is gone: a live one finds its claim missing when
        it commits, and undoes its own steps.
        """
        job_id = job_id_for(source, job_key)
        mt = _table(Migration)
        with self.engine.begin() as conn:
            row = conn.execute(sa.select(mt).where(mt.c.job_id == job_id)).mappings().first()
            if row is None or row["claim_token"] is None:
                raise MigrationError(source, job_key, "no action holds this job")
            conn.execute(
                sa.update(mt)
                .where(mt.c.job_id == job_id, mt.c.claim_token == row["claim_token"])
                .values(**_NO_CLAIM)
            )
            state = MigrationState(row["state"])
            held = {
                "claimed_by": row["claimed_by"],
                "claim_action": row["claim_action"],
                "claim_expires_at": row["claim_expires_at"],
            }
            who = _Attempt(job_id, source, job_key, actor, "release")
            self._record_audit(who, state, state, "ok", held, conn=conn)
        return self.status(source, job_key)

    # machinery -----------------------------------------------------------
    def _act(
        self,
        action: str,
        source: str,
        job_key: str,
        actor: str,
        effects: Callable[[Migration, JobSpec, _Plan, dict[str, Any]], After],
    ) -> MigrationView:
        """Claim the job, run the action's steps, commit the outcome and clear the claim.

        1. Read the job's state; refuse (audited) if the rule does not start there.
        2. Claim the job: one conditional UPDATE (or INSERT for a fresh job) that
           succeeds only from that state with no live claim; else `ActionInProgress`
           or `TransitionRefused` naming the state found, with nothing done.
        3. Plan the steps from the row as it is under the claim and run them; a
           failed step undoes the done ones (`SideEffectFailed`, audited).
        4. Commit row, job state and audit row, guarded by the claim token; if that
           fails, undo the steps as in 3 and audit it.
        """
        rule = RULES[action]
        with Session(self.engine) as session:
            job = self._job(session, source, job_key)
            stored = session.get(Migration, job.id)
            before = MigrationState(stored.state if stored is not None else S.observed)
            spec = self._stored_spec(job)
        who = _Attempt(job.id, source, job_key, actor, action)

        def audit_unchanged(outcome: str, audit_detail: dict[str, Any]) -> None:
            # Refused and failed attempts leave the state where it was; the audit says so.
            self._record_audit(who, before, before, outcome, audit_detail)

        if before not in rule.allowed_from:
            allowed = ", ".join(sorted(rule.allowed_from))
            reason = f"not allowed from {before} (only from {allowed})"
            audit_unchanged("refused", {"reason": reason})
            raise TransitionRefused(
                source, job_key, f"cannot {action} from {before}; {action} needs {allowed}"
            )
        claim = self._claim(who, before)
        detail: dict[str, Any] = {}
        plan = _Plan()
        try:
            work = _copy(claim.migration)
            after_run = effects(work, spec, plan, detail)
        except BaseException as exc:
            self._release(claim)
            if isinstance(exc, MigrationError):
                audit_unchanged("refused", dict(detail, reason=exc.message))
            raise
        after = rule.to or before
        failure = plan.run()
        if failure is None:
            try:
                if after_run is not None:
                    after_run(work)
                self._commit(work, claim, who, before, after, detail)
            except Exception as exc:  # the outcome was not recorded: undo what was done
                error = _short_error(exc)
                log.error("%s could not be recorded (%s); undoing it", who, error)
                failure = plan.compensate("commit", error)
            else:
                work.state = after.value
                work.claim_token = None
                return MigrationView.of(work)
        failure = _jsonable(failure, self.redact)  # error texts may quote a secret
        clean = not failure["undo_failed"]
        try:
            audit_unchanged("compensated" if clean else "inconsistent", dict(detail, **failure))
        except Exception:  # the database that failed the commit may fail this too
            log.exception("%s failed and its audit row was lost", who)
        self._release(claim)
        message = f"{action} failed at '{failure['failed_step']}': {failure['error']}"
        message += (
            "; everything done before it was undone"
            if clean
            else "; UNDO FAILED: " + "; ".join(failure["undo_failed"])
        )
        raise SideEffectFailed(source, job_key, message, compensated=clean, detail=failure)

    def _claim(self, who: _Attempt, before: MigrationState) -> _Claim:
        """Take the job for the attempt: one conditional UPDATE (an INSERT for a fresh job)."""
        now = self.clock()
        job_id = who.job_id
        token = secrets.token_hex(16)
        values = {
            "claim_token": token,
            "claimed_by": who.actor,
            "claim_action": who.action,
            "claim_expires_at": now + self.claim_ttl,
        }
        mt = _table(Migration)
        created = False
        with self.engine.begin() as conn:
            taken = conn.execute(
                sa.update(mt)
                .where(
                    mt.c.job_id == job_id,
                    mt.c.state == before.value,
                    sa.or_(mt.c.claim_token.is_(None), mt.c.claim_expires_at <= now),
                )
                .values(**values)
            )
            moved = taken.rowcount == 1
            if not moved and before is S.observed:
                try:  # a job no action has touched yet has no row: the claim creates it
                    with conn.begin_nested():
                        conn.execute(
                            sa.insert(mt).values(
                                job_id=job_id,
                                source=who.source,
                                job_key=who.job_key,
                                state=before.value,
                                reasons=[],
                                sides={},
                                created_at=now,
                                **values,
                            )
                        )
                    moved = created = True
                except IntegrityError:
                    pass
        if not moved:
            self._refuse_claim(who, before, now)
        with Session(self.engine, expire_on_commit=False) as session:
            m = session.get(Migration, job_id)
            assert m is not None and m.claim_token == token  # ours until we clear it
            session.expunge(m)
        return _Claim(token, created, m, who)

    def _refuse_claim(self, who: _Attempt, before: MigrationState, now: datetime) -> NoReturn:
        """Audit and raise why the claim was not taken: another holder, or a new state."""
        with Session(self.engine) as session:
            row = session.get(Migration, who.job_id)
            found = MigrationState(row.state) if row is not None else S.observed
            holder: tuple[str | None, str | None, datetime] | None = None
            until = row.claim_expires_at if row is not None and row.claim_token else None
            if row is not None and until is not None and until > now:
                holder = (row.claimed_by, row.claim_action, until)
        if holder is not None:
            by, what, until = holder
            reason = (
                f"{who.action} refused: the job is in state {found} and {by} is running {what} "
                f"on it (claimed until {until.isoformat(timespec='seconds')})"
            )
            error: TransitionRefused = ActionInProgress(who.source, who.job_key, reason)
        else:
            moved = f"another action moved the job from {before} to {found}"
            reason = f"{who.action} refused: {moved}"
            error = TransitionRefused(who.source, who.job_key, reason)
        self._record_audit(who, found, found, "refused", {"reason": reason})
        raise error

    def _release(self, claim: _Claim) -> None:
        """Clear our claim (delete the row it created), best effort: else it expires."""
        mt = _table(Migration)
        mine = sa.and_(mt.c.job_id == claim.migration.job_id, mt.c.claim_token == claim.token)
        try:
            with self.engine.begin() as conn:
                if claim.created:
                    conn.execute(sa.delete(mt).where(mine, mt.c.state == S.observed.value))
                else:
                    conn.execute(sa.update(mt).where(mine).values(**_NO_CLAIM))
        except Exception:  # the claim then expires on its own
            log.exception("%s: releasing its claim failed; it expires by itself", claim.who)

    def _commit(
        self,
        m: Migration,
        claim: _Claim,
        who: _Attempt,
        before: MigrationState,
        after: MigrationState,
        detail: dict[str, Any],
    ) -> None:
        now = self.clock()
        mt = _table(Migration)
        jt = _table(Job)
        values = {
            "state": after.value,
            "namespace": m.namespace,
            "flow_id": m.flow_id,
            "readiness": m.readiness,
            "reasons": list(m.reasons),
            "translated_yaml": m.translated_yaml,
            "wrap_flow_id": m.wrap_flow_id,
            "wrap_yaml": m.wrap_yaml,
            "sides": dict(m.sides),
            "deployed_revision": m.deployed_revision,
            "updated_at": now,
            "state_changed_at": now if after != before else m.state_changed_at,
            **_NO_CLAIM,
        }
        job_id = m.job_id
        with self.engine.begin() as conn:
            updated = conn.execute(
                sa.update(mt)
                .where(mt.c.job_id == job_id, mt.c.claim_token == claim.token)
                .values(**values)
            )
            if updated.rowcount != 1:
                raise ClaimLost("the claim was released or taken over before the commit")
            conn.execute(sa.update(jt).where(jt.c.id == job_id).values(migration_state=after.value))
            self._record_audit(who, before, after, "ok", detail, conn=conn)

    def _record_audit(
        self,
        who: _Attempt,
        before: MigrationState,
        after: MigrationState,
        outcome: str,
        detail: dict[str, Any],
        *,
        conn: Connection | None = None,
    ) -> None:
        """Write one audit row: in `conn`'s transaction when given, else in one of its own."""
        if conn is None:
            with self.engine.begin() as own:
                self._record_audit(who, before, after, outcome, detail, conn=own)
            return
        conn.execute(
            sa.insert(_table(MigrationAudit)).values(
                job_id=who.job_id,
                source=who.source,
                job_key=who.job_key,
                actor=who.actor,
                at=self.clock(),
                action=who.action,
                before=before.value,
                after=after.value,
                outcome=outcome,
                detail=_jsonable(detail, self.redact),
            )
        )

    def _job(self, session: Session, source: str, job_key: str) -> Job:
        job = session.get(Job, job_id_for(source, job_key))
        if job is None:
            raise JobNotFound(source, job_key)
        return job

    @staticmethod
    def _stored_spec(job: Job) -> JobSpec:
        """The job's stored definition, refused when today's contract no longer accepts it.

        A store written before the contract refused a value (a control character in
        a key, say) may still hold it; nothing is generated from such a definition.
        """
        try:
            return JobSpec.model_validate(job.spec)
        except ValidationError as exc:
            found = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'spec'}: "
                f"{str(e['msg']).removeprefix('Value error, ')}"
                for e in exc.errors()
            )
            raise TransitionRefused(
                job.source,
                job.key,
                f"its stored definition is refused by the contract ({found}); "
                "nothing was generated or changed",
            ) from None

    def _fresh(self, job: Job) -> Migration:
        return Migration(
            job_id=job.id,
            source=job.source,
            job_key=job.key,
            state=S.observed.value,
            reasons=[],
            sides={},
        )

    def _kestra(self, source: str, job_key: str) -> KestraApi:
        if self.kestra is None:
            raise MigrationError(source, job_key, "no Kestra server configured (--kestra-url)")
        return self.kestra

    def _legacy(self, source: str, job_key: str) -> Any:
        adapter = self.legacy.get(source)
        if adapter is None or not callable(getattr(adapter, "pause", None)):
            raise MigrationError(
                source,
                job_key,
                f"source {source!r} has no adapter with pause/resume configured here",
            )
        return adapter

    def _native_yaml(self, m: Migration) -> str:
        if not m.translated_yaml or not m.flow_id:
            raise MigrationError(m.source, m.job_key, "not translated yet (run translate first)")
        return m.translated_yaml


class ClaimLost(Exception):
    """The commit found the job's claim no longer ours (released, or expired and taken over)."""


@dataclass(frozen=True)
class _Attempt:
    """One action by one actor on one job, as its audit rows name it."""

    job_id: str
    source: str
    job_key: str
    actor: str
    action: str

    def __str__(self) -> str:
        return f"{self.source}:{self.job_key}: {self.action} by {self.actor}"


@dataclass(frozen=True)
class _Claim:
    """A claim an attempt holds: its token, whether it created the row, the row under it."""

    token: str
    created: bool
    migration: Migration
    who: _Attempt


# The claim columns of a row no action holds.
_NO_CLAIM: dict[str, Any] = {
    "claim_token": None,
    "claimed_by": None,
    "claim_action": None,
    "claim_expires_at": None,
}


def _table(model: type[Any]) -> sa.Table:
    table: sa.Table = model.__table__  # SQLModel table classes carry their Table
    return table


def _short_error(exc: BaseException) -> str:
    """One line for the audit and the caller: a database error's SQL and values stay out."""
    cause = getattr(exc, "orig", None) or exc
    text = (str(cause).strip().splitlines() or [""])[0]
    return f"{type(cause).__name__}: {text}"[:300]


def _copy(m: Migration) -> Migration:
    return Migration(
        job_id=m.job_id,
        source=m.source,
        job_key=m.job_key,
        state=m.state,
        namespace=m.namespace,
        flow_id=m.flow_id,
        readiness=m.readiness,
        reasons=list(m.reasons or []),
        translated_yaml=m.translated_yaml,
        wrap_flow_id=m.wrap_flow_id,
        wrap_yaml=m.wrap_yaml,
        sides=dict(m.sides or {}),
        deployed_revision=m.deployed_revision,
        created_at=m.created_at,
        updated_at=m.updated_at,
        state_changed_at=m.state_changed_at,
    )


def _trigger_ids(yaml_text: str) -> list[str]:
    import yaml

    flow = yaml.safe_load(yaml_text) or {}
    return [str(t["id"]) for t in flow.get("triggers") or [] if isinstance(t, dict)]


def _delete_quietly(kestra: KestraApi, ns: str, flow_id: str, warnings: list[str]) -> None:
    from migration_tools.kestra_api import KestraApiError

    try:
        kestra.delete_flow(ns, flow_id)
    except KestraApiError as exc:
        if exc.status != 404:
            warnings.append(str(exc))


def _jsonable(value: Any, redact: Callable[[str], str]) -> Any:
    """`value` as JSON data, every string passed through `redact`."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v, redact) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v, redact) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if value is None or isinstance(value, int | float | bool):
        return value
    return redact(str(value))


__all__ = [
    "DEFAULT_CLAIM_TTL",
    "RULES",
    "ActionInProgress",
    "ClaimLost",
    "JobNotFound",
    "MigrationError",
    "MigrationState",
    "MigrationView",
    "Migrations",
    "ParityPolicy",
    "ParityTooLow",
    "Rule",
    "SideEffectFailed",
    "SourceAdapters",
    "TransitionRefused",
    "kestra_source",
    "migrations_for",
]


class SourceAdapters(Mapping[str, Any]):
    """Adapters of the configured sources, created on first use (given ones win)."""

    def __init__(self, config: Config, given: Mapping[str, Any] | None = None) -> None:
        self._config = config
        self._given: dict[str, Any] = dict(given or {})
        self._made: dict[str, Any] = {}

    def __getitem__(self, name: str) -> Any:
        if name in self._given:
            return self._given[name]
        if name not in self._made:
            entry = self._config.source(name)
            self._made[name] = create_adapter(entry.source_config())
        return self._made[name]

    def __iter__(self) -> Iterator[str]:
        return iter(s.name for s in self._config.sources)

    def __len__(self) -> int:
        return len(self._config.sources)

    def get(self, name: str, default: Any = None) -> Any:
        try:
            return self[name]
        except ConfigError:
            return default

    def close(self) -> None:
        """Close the adapters made here; given ones belong to their owner."""
        for adapter in self._made.values():
            close = getattr(adapter, "close", None)
            if callable(close):
                close()
        self._made.clear()


def kestra_source(config: Config, name: str | None = None) -> SourceEntry | None:
    """The Kestra source the migration deploys to: `name`, else the only `kestra` source."""
    if name:
        return config.source(name)
    found = [s for s in config.sources if s.kind == "kestra"]
    if len(found) > 1:
        raise ConfigError(
            "several kestra sources are configured ("
            + ", ".join(s.name for s in found)
            + "); choose one with --kestra-source"
        )
    return found[0] if found else None


def migrations_for(
    config: Config,
    engine: Engine,
    *,
    adapters: Mapping[str, Any] | None = None,
    kestra_source_name: str | None = None,
    **options: Any,
) -> Migrations:
    """A `Migrations` wired from the config: the Kestra source's client and the legacy adapters."""
    legacy = SourceAdapters(config, adapters)
    entry = kestra_source(config, kestra_source_name)
    kestra = legacy[entry.name].api if entry is not None else None
    if entry is not None and "namespace" not in options and entry.options.get("namespace"):
        options["namespace"] = str(entry.options["namespace"])
    options.setdefault("redact", config.redact)
    return Migrations(engine, kestra=kestra, legacy=legacy, **options)
