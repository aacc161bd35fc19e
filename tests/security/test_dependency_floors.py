"""Dependency floors stay past the advisories docs/security.md lists; this environment meets them.

Each advisory names the first release that fixes it. The floor declared in
pyproject.toml must be at or above that release (a loosened floor would let a
resolver pick a vulnerable one again), and the version installed here must
satisfy the declared requirement.
"""

from __future__ import annotations

import tomllib
from importlib.metadata import version
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]

# (package, first fixed release, advisory)
ADVISORIES = [
    ("jinja2", "3.1.6", "CVE-2025-27516: sandbox breakout through the |attr filter"),
    ("starlette", "1.0.1", "CVE-2026-48710: Host header poisons request.url.path"),
    ("starlette", "1.3.0", "CVE-2026-54282: request path moves request.url's authority"),
    ("h11", "0.16.0", "CVE-2025-43859: lenient chunked-encoding parsing (request smuggling)"),
    ("urllib3", "2.7.0", "CVE-2026-44432: streaming decompression bomb"),
    ("requests", "2.33.0", "CVE-2026-25645: predictable temp file in extract_zipped_paths"),
]


def declared() -> dict[str, Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = (Requirement(r) for r in project["dependencies"])
    return {r.name.lower(): r for r in reqs}


def floor(req: Requirement) -> Version | None:
    floors = [Version(s.version) for s in req.specifier if s.operator in (">=", "==", "~=")]
    return max(floors) if floors else None


@pytest.mark.parametrize(("package", "fixed", "advisory"), ADVISORIES)
def test_declared_floor_is_at_or_past_the_fixed_release(
    package: str, fixed: str, advisory: str
) -> None:
    req = declared().get(package)
    assert req is not None, f"{package} is not declared in pyproject.toml ({advisory})"
    lowest = floor(req)
    assert lowest is not None and lowest >= Version(fixed), (
        f"{req} admits releases before {fixed} ({advisory})"
    )


@pytest.mark.parametrize("package", sorted({p for p, _, _ in ADVISORIES}))
def test_installed_release_satisfies_the_declared_requirement(package: str) -> None:
    req = declared()[package]
    installed = version(package)
    assert req.specifier.contains(installed, prereleases=True), f"{package} {installed}: {req}"
