"""Pause, resume and trigger a DAG: the cutover levers for an Airflow source.

Each call is one authenticated request (a pause: a read, then the patch only
if the DAG is not paused yet); failures raise `SourceError` naming the source
and the DAG, and nothing is retried behind the caller's back (a trigger must
not run twice).

`pause` returns a receipt `{"was_paused": bool}`: a DAG its owner had already
paused is left alone. `resume` with that receipt unpauses only a DAG that
Switchyard paused; without a receipt it unpauses unconditionally (the old
behaviour, for callers that have none).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from adapters.airflow.client import AirflowClient
from gateway.contract import ControlReceipt, SourceError


def _checked(source: str, dag_id: str, action: str, call: Any) -> dict[str, Any]:
    try:
        result: dict[str, Any] = call()
    except SourceError as exc:
        raise SourceError(
            source, f"{action} {dag_id}: {exc.message}", retryable=exc.retryable
        ) from exc
    return result


def pause(client: AirflowClient, source: str, dag_id: str) -> ControlReceipt:
    """Pause the DAG unless it already is; the receipt says which."""
    details = _checked(source, dag_id, "pause", lambda: client.dag_details(dag_id))
    if details.get("is_paused"):
        return {"was_paused": True}
    _checked(source, dag_id, "pause", lambda: client.set_paused(dag_id, True))
    return {"was_paused": False}


def resume(
    client: AirflowClient, source: str, dag_id: str, receipt: ControlReceipt | None = None
) -> None:
    """Unpause the DAG unless the receipt says it was paused before Switchyard's pause."""
    if receipt is not None:
        was = receipt.get("was_paused") if isinstance(receipt, dict) else None
        if not isinstance(was, bool):
            raise SourceError(
                source,
                f"resume receipt for {dag_id}: 'was_paused' must be true or false; "
                "nothing was changed",
                retryable=False,
            )
        if was:
            return  # its owner paused it: not ours to resume
    _checked(source, dag_id, "resume", lambda: client.set_paused(dag_id, False))


def trigger(
    client: AirflowClient,
    source: str,
    dag_id: str,
    *,
    run_id: str | None = None,
    conf: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Start a DAG run now (logical date left empty); returns Airflow's run payload."""
    return _checked(
        source, dag_id, "trigger", lambda: client.trigger(dag_id, run_id=run_id, conf=conf)
    )
