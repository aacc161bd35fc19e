"""Reads the translation corpus: JobSpec YAML files, DAG sources beside them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from gateway.contract import JobSpec

CORPUS = Path(__file__).parent / "corpus"
GOLDEN = Path(__file__).parent / "golden"


def corpus_cases() -> list[Path]:
    return sorted(CORPUS.glob("*/*.yaml"))


def case_name(path: Path) -> str:
    return f"{path.parent.name}__{path.stem}"


def load_case(path: Path) -> tuple[JobSpec, dict[str, Any]]:
    raw = yaml.safe_load(path.read_text())
    options = raw.pop("translate_options", {}) or {}
    source_file = raw.pop("source_file", None)
    if source_file:
        raw["source_text"] = (path.parent / source_file).read_text()
    return JobSpec.model_validate(raw), options
