"""Flow files: the documented examples load; every mistake names the file and the key."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from gateway.api.app import create_app
from gateway.config import parse_config
from gateway.flows import FlowError, load_flows, parse_flow

EXAMPLES = Path(__file__).resolve().parents[2] / "mappings" / "flows" / "examples"


def test_documented_examples_load_and_normalise_waits_for_to_upstream_first() -> None:
    flows = {f.name: f for f in load_flows(EXAMPLES)}
    assert sorted(flows) == ["inventory", "orders"]
    wait = flows["orders"].edges[0]
    assert (str(wait.upstream), wait.relation, str(wait.downstream), wait.within_s) == (
        "k8s-prod:cronjob/batch/nightly-export",
        "waits_for",
        "airflow-prod:orders_etl",
        7200.0,
    )
    invokes, triggers = flows["inventory"].edges
    assert invokes.callee_fails_caller and not triggers.callee_fails_caller
    assert (
        triggers.declared_as
        == "lambda-prod:inventory-sync triggers k8s-prod:job/search/reindex within 10m"
    )


@pytest.mark.parametrize(
    ("doc", "key", "words"),
    [
        ({"jobs": ["a:b"]}, "name", "required"),
        ({"name": "x", "jobs": []}, "jobs", "non-empty"),
        ({"name": "x", "jobs": ["nocolon"]}, "jobs[0]", "<source>:<job>"),
        ({"name": "x", "jobs": ["a:b", "a:b"]}, "jobs[1]", "listed twice"),
        ({"name": "x", "jobs": ["a:b"], "owner": 3}, "owner", "string"),
        ({"name": "x", "jobs": ["a:b"], "colour": "red"}, "colour", "unknown key"),
        (
            {"name": "x", "jobs": ["a:b", "c:d"], "edges": ["a:b calls c:d"]},
            "edges[0]",
            "unknown relation 'calls'",
        ),
        (
            {"name": "x", "jobs": ["a:b"], "edges": ["a:b invokes c:d"]},
            "edges[0]",
            "'c:d' is not listed",
        ),
        (
            {"name": "x", "jobs": ["a:b", "c:d"], "edges": ["a:b invokes c:d within soon"]},
            "edges[0]",
            "not a duration",
        ),
        (
            {"name": "x", "jobs": ["a:b", "c:d"], "edges": [{"from": "a:b", "to": "c:d"}]},
            "edges[0].relation",
            "required",
        ),
        (
            {
                "name": "x",
                "jobs": ["a:b", "c:d"],
                "edges": [{"from": "a:b", "relation": "feeds", "to": "c:d", "lag": 1}],
            },
            "edges[0].lag",
            "unknown key",
        ),
        ({"name": "x", "jobs": ["a:b"], "edges": ["a:b"]}, "edges[0]", "is not '<source>:<job>"),
    ],
)
def test_mistakes_name_the_file_and_key(doc: dict[str, object], key: str, words: str) -> None:
    with pytest.raises(FlowError) as err:
        parse_flow(doc, file="flows/x.yaml")
    assert err.value.file == "flows/x.yaml" and err.value.key == key
    assert str(err.value).startswith(f"flows/x.yaml: {key}: ") and words in str(err.value)


def test_duplicate_flow_names_and_bad_yaml_are_refused(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("name: one\njobs: [s:j]\n")
    (tmp_path / "b.yaml").write_text("name: one\njobs: [s:k]\n")
    with pytest.raises(FlowError, match=r"b\.yaml: name: flow 'one' is also defined in .*a\.yaml"):
        load_flows(tmp_path)
    (tmp_path / "b.yaml").write_text("name: [unclosed\n")
    with pytest.raises(FlowError, match=r"b\.yaml: cannot read as YAML"):
        load_flows(tmp_path)


def test_app_start_refuses_a_bad_flow_file(tmp_path: Path, sqlite_engine: Engine) -> None:
    (tmp_path / "bad.yaml").write_text("name: x\njobs: [s:j]\nedges: ['s:j feeds t:u']\n")
    with pytest.raises(FlowError, match=r"bad\.yaml: edges\[0\]: job 't:u' is not listed in jobs"):
        create_app(parse_config({"flows_dir": str(tmp_path)}), sqlite_engine)
    with pytest.raises(FlowError, match="does not exist"):
        create_app(parse_config({"flows_dir": str(tmp_path / "missing")}), sqlite_engine)
