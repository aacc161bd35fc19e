"""Lift a PythonOperator's callable out of its DAG file, with what it needs.

Pure: parses the DAG text with `ast` (never imports or runs it). The result
carries the function's own source plus the top-level imports, constants and
helper functions it refers to (transitively), and lists the names it uses
that the file does not define, so the caller can say what is missing rather
than emit a script that fails at run time.
"""

from __future__ import annotations

import ast
import builtins
import sys
from dataclasses import dataclass

_BUILTINS = frozenset(dir(builtins))
# Names Airflow injects into a callable that accepts the task context.
AIRFLOW_CONTEXT_NAMES = frozenset(
    {
        "context",
        "ti",
        "task_instance",
        "dag_run",
        "ds",
        "ts",
        "logical_date",
        "execution_date",
        "params",
        "data_interval_start",
        "data_interval_end",
    }
)


@dataclass(frozen=True)
class ExtractedCallable:
    name: str
    lineno: int
    script: str
    unresolved: tuple[str, ...]
    third_party_modules: tuple[str, ...]
    uses_airflow_context: bool
    airflow_imports: tuple[str, ...]


class CallableNotFound(LookupError):
    pass


def _bound_names(node: ast.stmt) -> set[str]:
    if isinstance(node, ast.Import):
        return {(a.asname or a.name).split(".")[0] for a in node.names}
    if isinstance(node, ast.ImportFrom):
        return {a.asname or a.name for a in node.names}
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        return {node.name}
    if isinstance(node, ast.Assign):
        return {t.id for t in node.targets if isinstance(t, ast.Name)}
    if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
        return {node.target.id}
    return set()


def _free_names(fn: ast.AST) -> set[str]:
    """Names read in `fn` that it does not bind itself (params, locals)."""
    bound: set[str] = set()
    used: set[str] = set()
    for node in ast.walk(fn):
        if isinstance(node, ast.arg):
            bound.add(node.arg)
        elif isinstance(node, ast.Name):
            (used if isinstance(node.ctx, ast.Load) else bound).add(node.id)
        elif (
            isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
            and node is not fn
        ):
            bound.add(node.name)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            bound |= _bound_names(node)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            bound.add(node.name)
    return used - bound


def _is_airflow_import(node: ast.stmt) -> bool:
    if isinstance(node, ast.ImportFrom):
        return (node.module or "").split(".")[0] == "airflow"
    if isinstance(node, ast.Import):
        return any(a.name.split(".")[0] == "airflow" for a in node.names)
    return False


def _module_of(node: ast.stmt) -> list[str]:
    if isinstance(node, ast.ImportFrom):
        return [(node.module or "").split(".")[0]] if node.level == 0 else []
    if isinstance(node, ast.Import):
        return [a.name.split(".")[0] for a in node.names]
    return []


def extract_callable(source_text: str, name: str, *, filename: str = "dag.py") -> ExtractedCallable:
    """The script for top-level function `name` in `source_text`.

    Raises `CallableNotFound` when the file has no such top-level function
    (a lambda, an imported callable) and `SyntaxError` when it does not parse.
    """
    tree = ast.parse(source_text, filename=filename)
    top: dict[str, ast.stmt] = {}
    for stmt in tree.body:
        for bound in _bound_names(stmt):
            top.setdefault(bound, stmt)
    target = top.get(name)
    if not isinstance(target, ast.FunctionDef | ast.AsyncFunctionDef) or target.name != name:
        raise CallableNotFound(f"no top-level function {name!r} in {filename}")

    needed: list[ast.stmt] = []
    unresolved: set[str] = set()
    airflow_imports: set[str] = set()
    queue: list[ast.stmt] = [target]
    seen: set[int] = set()
    while queue:
        stmt = queue.pop()
        if id(stmt) in seen:
            continue
        seen.add(id(stmt))
        needed.append(stmt)
        if isinstance(stmt, ast.Import | ast.ImportFrom):
            continue
        for free in sorted(_free_names(stmt)):
            if free in _BUILTINS:
                continue
            dep = top.get(free)
            if dep is None:
                unresolved.add(free)
            elif _is_airflow_import(dep):
                airflow_imports.add(free)
            elif isinstance(dep, ast.Assign | ast.AnnAssign) and _mentions_airflow(dep, top):
                unresolved.add(free)
            else:
                queue.append(dep)

    ordered = sorted(needed, key=lambda s: s.lineno)
    parts = [ast.get_source_segment(source_text, s) or ast.unparse(s) for s in ordered]
    imports = [s for s in ordered if isinstance(s, ast.Import | ast.ImportFrom)]
    third_party = sorted(
        {m for s in imports for m in _module_of(s) if m and m not in sys.stdlib_module_names}
    )
    args = target.args
    param_names = {a.arg for a in args.args + args.kwonlyargs + args.posonlyargs}
    uses_context = bool(args.kwarg) or bool(param_names & AIRFLOW_CONTEXT_NAMES)
    script = "\n\n\n".join(_join_simple(ordered, parts)).rstrip() + "\n"
    return ExtractedCallable(
        name=name,
        lineno=target.lineno,
        script=script,
        unresolved=tuple(sorted(unresolved)),
        third_party_modules=tuple(third_party),
        uses_airflow_context=uses_context,
        airflow_imports=tuple(sorted(airflow_imports)),
    )


def _mentions_airflow(stmt: ast.stmt, top: dict[str, ast.stmt]) -> bool:
    """A module constant built from Airflow objects (Variable.get…) cannot move."""
    for free in _free_names(stmt):
        dep = top.get(free)
        if dep is not None and _is_airflow_import(dep):
            return True
    return False


def _join_simple(stmts: list[ast.stmt], parts: list[str]) -> list[str]:
    """Consecutive imports and constants form one block; each def stands apart."""
    out: list[str] = []
    simple_run: list[str] = []
    for stmt, text in zip(stmts, parts, strict=True):
        if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            if simple_run:
                out.append("\n".join(simple_run))
                simple_run = []
            out.append(text)
        else:
            simple_run.append(text)
    if simple_run:
        out.append("\n".join(simple_run))
    return out
