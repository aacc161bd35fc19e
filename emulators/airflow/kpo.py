"""The labels KubernetesPodOperator puts on the pods it launches.

Mirrors `apache-airflow-providers-cncf-kubernetes`: `_get_ti_pod_labels`
(`dag_id`, `task_id`, `run_id`, `kubernetes_pod_operator`, `map_index` for a
mapped task, `try_number`, each through `make_safe_label_value`) and
`build_pod_request_obj` (`airflow_version`, `airflow_kpo_in_cluster`). It is
written here from the provider's behaviour, not imported from Switchyard's
Airflow adapter, so an emulated pod checks the adapter instead of echoing it.
"""

from __future__ import annotations

import hashlib
import re

MAX_LABEL_LEN = 63
_UNSAFE = re.compile(r"^[^a-z0-9A-Z]*|[^a-zA-Z0-9_\-\.]|[^a-z0-9A-Z]*$")


def make_safe_label_value(value: str) -> str:
    """Drop invalid characters; if anything changed or it is too long, truncate and hash."""
    safe = _UNSAFE.sub("", value)
    if len(safe) > MAX_LABEL_LEN or value != safe:
        digest = hashlib.md5(value.encode()).hexdigest()[:9]
        safe = safe[: MAX_LABEL_LEN - len(digest) - 1] + "-" + digest
    return safe


def kpo_pod_labels(
    dag_id: str,
    task_id: str,
    run_id: str,
    try_number: int,
    *,
    map_index: int = -1,
    airflow_version: str = "3.3.2",
    in_cluster: bool = True,
) -> dict[str, str]:
    labels: dict[str, str] = {
        "dag_id": dag_id,
        "task_id": task_id,
        "run_id": run_id,
        "kubernetes_pod_operator": "True",
    }
    if map_index >= 0:
        labels["map_index"] = str(map_index)
    labels["try_number"] = str(try_number)
    safe = {k: make_safe_label_value(v) for k, v in labels.items()}
    safe["airflow_version"] = airflow_version.replace("+", "-")
    safe["airflow_kpo_in_cluster"] = str(in_cluster)
    return safe


__all__ = ["kpo_pod_labels", "make_safe_label_value"]
