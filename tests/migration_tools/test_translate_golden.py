"""Golden-file translation tests over the corpus.

Regenerate the goldens deliberately with
`SWITCHYARD_UPDATE_GOLDEN=1 .venv/bin/pytest tests/migration_tools/test_translate_golden.py`;
they are never rewritten otherwise, and a missing golden fails.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml

from migration_tools.translate import translate, validate_flow
from tests.migration_tools.corpus_loader import GOLDEN, case_name, corpus_cases, load_case

UPDATE = os.environ.get("SWITCHYARD_UPDATE_GOLDEN") == "1"
CASES = corpus_cases()


def _verdict(t) -> str:  # type: ignore[no-untyped-def]
    return (
        json.dumps(
            {
                "flow_id": t.flow_id,
                "namespace": t.namespace,
                "readiness": t.readiness,
                "reasons": list(t.reasons),
                "placeholders": [p.__dict__ for p in t.placeholders],
                "notes": list(t.notes),
            },
            indent=2,
            sort_keys=True,
        )
        + "\n"
    )


@pytest.mark.parametrize("case", CASES, ids=[case_name(c) for c in CASES])
def test_translation_matches_golden(case: Path) -> None:
    spec, options = load_case(case)
    t = translate(spec, **options)
    flow_path = GOLDEN / f"{case_name(case)}.yaml"
    verdict_path = GOLDEN / f"{case_name(case)}.verdict.json"
    if UPDATE:
        flow_path.write_text(t.yaml_text)
        verdict_path.write_text(_verdict(t))
    assert flow_path.exists(), f"no golden for {case.name}; run with SWITCHYARD_UPDATE_GOLDEN=1"
    assert t.yaml_text == flow_path.read_text()
    assert _verdict(t) == verdict_path.read_text()


@pytest.mark.parametrize("case", CASES, ids=[case_name(c) for c in CASES])
def test_every_generated_flow_is_structurally_valid(case: Path) -> None:
    spec, options = load_case(case)
    t = translate(spec, **options)
    assert validate_flow(t.yaml_text, kestra_version=t.kestra_version) == []
    assert yaml.safe_load(t.yaml_text) == t.flow


@pytest.mark.parametrize("case", CASES, ids=[case_name(c) for c in CASES])
def test_every_flow_names_the_legacy_job_it_replaces(case: Path) -> None:
    spec, options = load_case(case)
    t = translate(spec, **options)
    assert t.flow["labels"]["switchyard.job"] == f"{spec.source}:{spec.key}"
    assert t.flow["labels"]["switchyard.readiness"] == t.readiness


def test_translation_is_deterministic_across_calls() -> None:
    for case in CASES:
        spec, options = load_case(case)
        assert translate(spec, **options).yaml_text == translate(spec, **options).yaml_text


def test_corpus_covers_every_kind_and_operator_the_brief_names() -> None:
    specs = [load_case(c)[0] for c in CASES]
    kinds = [s.kind for s in specs]
    assert kinds.count("dag") >= 5 and kinds.count("crontab") >= 5
    assert kinds.count("cronjob") >= 2 and kinds.count("lambda") >= 2
    operators = {t.type.rsplit(".", 1)[-1] for s in specs for t in s.tasks}
    assert {
        "BashOperator",
        "PythonOperator",
        "KubernetesPodOperator",
        "LambdaInvokeFunctionOperator",
        "TriggerDagRunOperator",
        "HttpOperator",
        "SimpleHttpOperator",
        "SnowflakeOperator",
    } <= operators
    natives = {s.schedule_native for s in specs}
    assert "@daily" in natives
    assert any(n and n.startswith("CRON_TZ=") for n in natives)
