"""Wave planning: which jobs to migrate first.

Pure: `plan_waves(items, edges)` gives each job a wave number. Dependencies
come first (a job's wave is after every declared upstream's), and simple,
healthy jobs come before complex ones: a job's earliest wave is 1 when its
translation is full and it fails less than `unhealthy_rate` of its runs, 2
when it is partial or unhealthy, 3 when nothing of it translates. Jobs in a
dependency cycle cannot be ordered; they share the latest wave of the cycle
and are reported in `cycles`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

JobRef = tuple[str, str]  # (source, job key)

UNHEALTHY_RATE = 0.1


@dataclass(frozen=True)
class WaveInput:
    ref: JobRef
    readiness: str  # full | partial | none
    failure_rate: float | None
    tasks: int = 1


@dataclass(frozen=True)
class WavePlan:
    waves: dict[JobRef, int]
    reasons: dict[JobRef, str]
    cycles: list[list[JobRef]] = field(default_factory=list)


def base_wave(item: WaveInput, unhealthy_rate: float = UNHEALTHY_RATE) -> tuple[int, str]:
    if item.readiness == "none":
        return 3, "nothing translates: needs a hand-written flow"
    unhealthy = item.failure_rate is not None and item.failure_rate >= unhealthy_rate
    if item.readiness != "full":
        return 2, "partial translation: review the marked parts"
    if unhealthy:
        return 2, f"fails {item.failure_rate:.0%} of runs: fix or understand it first"
    return 1, "fully translated and healthy"


def plan_waves(
    items: Iterable[WaveInput],
    edges: Iterable[tuple[JobRef, JobRef]],
    *,
    unhealthy_rate: float = UNHEALTHY_RATE,
) -> WavePlan:
    """A wave per job: after its upstreams, no earlier than its own complexity allows."""
    by_ref = {i.ref: i for i in items}
    ups: dict[JobRef, set[JobRef]] = {r: set() for r in by_ref}
    for up, down in edges:
        if up in by_ref and down in by_ref and up != down:
            ups[down].add(up)
    waves: dict[JobRef, int] = {}
    reasons: dict[JobRef, str] = {}
    for ref, item in by_ref.items():
        waves[ref], reasons[ref] = base_wave(item, unhealthy_rate)
    # Longest-path layering; at most len(jobs) rounds, so a cycle cannot loop forever.
    for _ in range(len(by_ref)):
        changed = False
        for ref in sorted(by_ref):
            for up in ups[ref]:
                if waves[up] + 1 > waves[ref]:
                    waves[ref] = waves[up] + 1
                    reasons[ref] = f"after its upstream {up[0]}:{up[1]} (wave {waves[up]})"
                    changed = True
        if not changed:
            break
    cycles = _cycles(ups)
    for cycle in cycles:
        top = max(waves[r] for r in cycle)
        for r in cycle:
            waves[r] = top
            reasons[r] = "in a dependency cycle: migrate these together"
    return WavePlan(waves, reasons, cycles)


def _cycles(ups: Mapping[JobRef, set[JobRef]]) -> list[list[JobRef]]:
    """Strongly connected components with more than one job (Tarjan, iterative)."""
    index: dict[JobRef, int] = {}
    low: dict[JobRef, int] = {}
    on_stack: set[JobRef] = set()
    stack: list[JobRef] = []
    out: list[list[JobRef]] = []
    counter = 0
    for root in sorted(ups):
        if root in index:
            continue
        work: list[tuple[JobRef, list[JobRef]]] = [(root, sorted(ups[root]))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, pending = work[-1]
            if pending:
                nxt = pending.pop()
                if nxt not in index:
                    index[nxt] = low[nxt] = counter
                    counter += 1
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, sorted(ups[nxt])))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    out.append(sorted(component))
    return out


__all__ = ["JobRef", "WaveInput", "WavePlan", "base_wave", "plan_waves"]
