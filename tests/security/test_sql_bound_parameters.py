"""SQL is built only with SQLAlchemy constructs and bound parameters.

A static check over the shipped code (`gateway`, `adapters`, `dashboards`,
`migration_tools`), on its syntax tree rather than on text, so comments and
log messages do not confuse it:

1. No string built at run time — f-string, `.format`, `%` or `+` with a
   non-literal — is passed to `execute`, `exec_driver_sql`, `text`,
   `literal_column`, `executescript`, `executemany` or `exec`, and no such
   string anywhere looks like an SQL statement. Values reach the database as
   bound parameters (`:name`, `.where(col == value)`), never spliced in.
2. Every textual SQL call site (a literal given to one of those calls) is in
   `REVIEWED` with the reason it is safe; a new one fails until someone reads
   it and adds it, and an entry that no longer matches fails too, so the list
   cannot rot.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("gateway", "adapters", "dashboards", "migration_tools")
SQL_CALLS = {
    "execute",
    "exec_driver_sql",
    "text",
    "literal_column",
    "executescript",
    "executemany",
    "exec",
}
LOOKS_LIKE_SQL = re.compile(
    r"\bSELECT\b.+\bFROM\b|\bINSERT\s+INTO\b|\bUPDATE\s+\w+\s+SET\b|\bDELETE\s+FROM\b"
    r"|\b(CREATE|DROP|ALTER|TRUNCATE)\s+(TABLE|INDEX|DATABASE|SCHEMA|VIEW)\b"
    r"|\bWHERE\s+\w+\s*(=|<|>|LIKE|IN)\b",
    re.IGNORECASE | re.DOTALL,
)

# (path, start of the literal, or <name: var>) -> why this textual SQL is safe. Reviewed by hand.
REVIEWED: dict[tuple[str, str], str] = {
    ("gateway/store/db.py", "BEGIN"): (
        "constant statements (BEGIN, BEGIN IMMEDIATE); SQLite transaction modes, no values"
    ),
    ("gateway/ingest.py", "SELECT pg_advisory_xact_lock(c, k) FROM "): (
        "constant text; lock classes and keys are bound as :cs and :ks arrays"
    ),
    ("gateway/flows.py", "SELECT pg_advisory_xact_lock(1398341888, 7)"): (
        "constant statement; fixed advisory-lock key, no values"
    ),
    ("gateway/store/bulk.py", "<Attribute>"): (
        "SQLAlchemy's own compilation of an insert()/update() construct of a model table;"
        " every value is a positional bound parameter of executemany"
    ),
    ("gateway/store/bulk.py", "SET LOCAL plan_cache_mode "): (
        "constant statements; a planner setting, no values"
    ),
    ("gateway/store/upkeep.py", "SELECT reltuples FROM pg_class"): (
        "constant text; the table name is bound as :name"
    ),
    ("gateway/store/upkeep.py", "<Subscript>"): (
        "one of the literal ANALYZE statements of _ANALYZE, picked by a table name it holds"
    ),
    ("gateway/migrations/versions/0002_run_sort_indexes.py", "<name: p>"): (
        "index expression from the module constant _SORT (column names only), not user input"
    ),
}


@dataclass(frozen=True)
class Site:
    path: str
    line: int
    what: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.what}"


def _called_name(call: ast.Call) -> str | None:
    f = call.func
    if isinstance(f, ast.Attribute):
        return f.attr
    if isinstance(f, ast.Name):
        return f.id
    return None


def _is_dynamic_string(node: ast.AST) -> bool:
    """A string assembled at run time from something other than literals."""
    if isinstance(node, ast.JoinedStr):
        return any(isinstance(v, ast.FormattedValue) for v in node.values)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod | ast.Add):
        return not (isinstance(node.left, ast.Constant) and isinstance(node.right, ast.Constant))
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "format"
    )


def _literal_text(node: ast.AST) -> str:
    if isinstance(node, ast.JoinedStr):
        return "".join(
            v.value for v in node.values if isinstance(v, ast.Constant) and isinstance(v.value, str)
        )
    if isinstance(node, ast.BinOp):
        return _literal_text(node.left) + " " + _literal_text(node.right)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        return _literal_text(node.func.value)
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    return ""


def scan() -> tuple[list[Site], dict[tuple[str, str], Site]]:
    """(violations of rule 1, textual SQL call sites keyed like REVIEWED)."""
    violations: list[Site] = []
    textual: dict[tuple[str, str], Site] = {}
    for package in PACKAGES:
        for file in sorted((ROOT / package).rglob("*.py")):
            rel = file.relative_to(ROOT).as_posix()
            tree = ast.parse(file.read_text(), filename=rel)
            for node in ast.walk(tree):
                if _is_dynamic_string(node) and LOOKS_LIKE_SQL.search(_literal_text(node)):
                    violations.append(
                        Site(rel, node.lineno, "SQL-looking string built at run time")
                    )
                if not isinstance(node, ast.Call) or _called_name(node) not in SQL_CALLS:
                    continue
                if not node.args:
                    continue
                arg = node.args[0]
                if _is_dynamic_string(arg):
                    violations.append(
                        Site(rel, node.lineno, f"{_called_name(node)}() of a run-time string")
                    )
                elif _called_name(node) in ("text", "exec_driver_sql", "literal_column"):
                    if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                        key = (rel, arg.value)
                    elif isinstance(arg, ast.Name):
                        key = (rel, f"<name: {arg.id}>")
                    else:
                        key = (rel, f"<{type(arg).__name__}>")
                    textual[key] = Site(rel, node.lineno, f"{_called_name(node)}({key[1][:60]!r})")
    return violations, textual


def _matches(reviewed: tuple[str, str], found: tuple[str, str]) -> bool:
    return reviewed[0] == found[0] and found[1].startswith(reviewed[1])


def test_no_sql_is_assembled_from_run_time_strings() -> None:
    violations, _ = scan()
    assert [str(v) for v in violations] == []


def test_every_textual_sql_site_is_reviewed_and_the_review_list_is_current() -> None:
    _, textual = scan()
    unreviewed = [str(s) for k, s in textual.items() if not any(_matches(r, k) for r in REVIEWED)]
    assert unreviewed == [], "review these and add them to REVIEWED with a reason"
    stale = [r for r in REVIEWED if not any(_matches(r, k) for k in textual)]
    assert stale == [], "REVIEWED names call sites that no longer exist"


def test_the_scanner_catches_the_patterns_it_forbids(tmp_path: Path) -> None:
    """The check is not vacuous: each forbidden shape is found in a sample."""
    sample = (
        "def f(conn, name, value):\n"
        "    conn.execute(text(f\"SELECT * FROM run WHERE source = '{name}'\"))\n"
        '    conn.exec_driver_sql("DELETE FROM run WHERE id = %s" % value)\n'
        '    q = "UPDATE run SET state = {}".format(value)\n'
        '    conn.execute(sa.text("SELECT * FROM run WHERE key = " + value))\n'
    )
    tree = ast.parse(sample)
    dynamic = [n for n in ast.walk(tree) if _is_dynamic_string(n)]
    assert len(dynamic) == 4
    assert all(LOOKS_LIKE_SQL.search(_literal_text(n)) for n in dynamic)
    assert not LOOKS_LIKE_SQL.search("delete flow 42 from the inventory")
