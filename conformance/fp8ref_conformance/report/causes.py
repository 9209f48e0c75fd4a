"""Root causes: the distinct defects behind a run's verdicts, so that a maintainer reads a dozen defects, not
thirty failed clauses.

A defect groups the clauses that fail for one reason:

- the sub-clauses of one clause (``C13a`` to ``C13e`` are one part of the contract, ``C9`` and ``C9a`` to ``C9f``
  another), each with its own first failure;
- clauses in different parts whose first failure is the same crash (the same exception type and message: one
  ``ModuleNotFoundError`` seen by several clauses), but never merely the same assertion wording;
- the clauses that lack the same contract functions (``missing: patch_accelerator_for_fp8``).

Each blocked clause is listed under the defect of the clause that blocks it (following a chain of blocks). A
block whose blocker passed, or did not run, is a defect of its own: nothing in the run explains it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from .records import ClauseResult, clause_sort_key

_FAMILY = re.compile(r"^[CG]\d+")
_CRASH = re.compile(r"\b(?P<type>[A-Z][A-Za-z]*(?:Error|Exception)): (?P<message>.+)$")
#: Exceptions whose message is an assertion's wording, not the signature of one crash.
_NOT_A_CRASH = ("AssertionError", "Failed")


def family(clause: str) -> str:
    """The part of the contract a clause belongs to: ``C13d`` -> ``C13``, ``G3/cpu`` -> ``G3``."""
    match = _FAMILY.match(clause)
    return match.group(0) if match else clause


def crash_signature(first_failure: str | None) -> str | None:
    """``Type: message`` of the exception a first failure reports, when it is a crash (not an assertion)."""
    if not first_failure:
        return None
    headline = first_failure.split(": ", 1)[1] if first_failure.startswith("test_") else first_failure
    match = _CRASH.search(headline)
    if match is None or match["type"] in _NOT_A_CRASH:
        return None
    return f"{match['type']}: {' '.join(match['message'].split())}"


class _Groups:
    def __init__(self) -> None:
        self.parent: dict[str, str] = {}

    def find(self, key: str) -> str:
        self.parent.setdefault(key, key)
        while self.parent[key] != key:
            self.parent[key] = self.parent[self.parent[key]]
            key = self.parent[key]
        return key

    def union(self, a: str, b: str) -> None:
        self.parent[self.find(a)] = self.find(b)


def root_causes(results: Iterable[ClauseResult]) -> list[dict[str, Any]]:
    """The defects of a run, in contract order of their first clause; see the module docstring."""
    by_clause = {r.clause: r for r in results}
    failing = [r for r in by_clause.values() if r.outcome in ("failed", "known", "missing")]
    groups = _Groups()
    anchors: dict[str, str] = {}
    for result in failing:
        keys = (
            [f"missing:{','.join(result.missing)}"]
            if result.outcome == "missing"
            else [f"part:{family(result.clause)}"]
        )
        signature = crash_signature(result.first_failure) if result.outcome != "missing" else None
        if signature:
            keys.append(f"crash:{signature}")
        for key in keys:
            groups.union(f"clause:{result.clause}", anchors.setdefault(key, f"clause:{result.clause}"))

    def blocker_root(clause: str, seen: frozenset[str] = frozenset()) -> str | None:
        result = by_clause.get(clause)
        if result is None or clause in seen:
            return None
        if result.outcome in ("failed", "known", "missing"):
            return groups.find(f"clause:{clause}")
        if result.outcome == "blocked" and result.blocked_by:
            return blocker_root(result.blocked_by[0], seen | {clause})
        return None

    members: dict[str, dict[str, list[str]]] = {}
    for result in failing:
        members.setdefault(groups.find(f"clause:{result.clause}"), {"fails": [], "blocks": []})["fails"].append(
            result.clause
        )
    for result in by_clause.values():
        if result.outcome != "blocked":
            continue
        root = blocker_root(result.blocked_by[0]) if result.blocked_by else None
        key = root or f"unexplained:{result.clause}"
        members.setdefault(key, {"fails": [], "blocks": []})["blocks"].append(result.clause)

    causes = []
    for key, entry in members.items():
        fails = sorted(entry["fails"], key=clause_sort_key)
        blocks = sorted(entry["blocks"], key=clause_sort_key)
        first = by_clause[fails[0]] if fails else by_clause[blocks[0]]
        causes.append(
            {
                "clause": first.clause,
                "fails": fails,
                "blocks": blocks,
                "known": bool(fails) and all(by_clause[c].held for c in fails),
                "first_failure": first.first_failure,
                "failures": {c: by_clause[c].first_failure for c in fails},
                "explained": not key.startswith("unexplained:"),
                "blocked_by": sorted({b for c in blocks for b in by_clause[c].blocked_by}, key=clause_sort_key)
                if key.startswith("unexplained:")
                else [],
                "missing": sorted({f for c in fails for f in by_clause[c].missing})
                if fails and all(by_clause[c].outcome == "missing" for c in fails)
                else [],
            }
        )
    return sorted(causes, key=lambda c: clause_sort_key(c["clause"]))


def _headline(cause: dict[str, Any]) -> str:
    name = family(cause["clause"])
    if cause.get("missing"):
        name = f"missing {', '.join(cause['missing'])}"
    parts = []
    if cause["fails"]:
        parts.append("fails " + ", ".join(cause["fails"]))
    if cause["blocks"]:
        parts.append("blocks " + ", ".join(cause["blocks"]))
    if not cause["explained"]:
        blockers = cause.get("blocked_by") or ["a clause"]
        parts.append(f"blocked by {', '.join(blockers)}, which passes here or did not run")
    return f"{name}{' (known)' if cause['known'] else ''}: {'; '.join(parts)}"


def summary_of(causes: list[dict[str, Any]]) -> str:
    failing = sum(len(c["fails"]) for c in causes)
    blocked = sum(len(c["blocks"]) for c in causes)
    return f"{len(causes)} defect(s): {failing} clause(s) do not pass, {blocked} more are blocked by them"


def root_cause_lines(report: Mapping[str, Any], width: int = 110) -> list[str]:
    """The defects of a report as lines for the terminal: one line per defect, then its clauses' first
    failures."""
    causes = list(report.get("root_causes") or [])
    if not causes:
        return []
    lines = [f"Root causes: {summary_of(causes)}"]
    for number, cause in enumerate(causes, start=1):
        lines.append(f"{number:>3}. {_headline(cause)}"[:width])
        details = cause["failures"] or {cause["clause"]: cause["first_failure"]}
        for clause, failure in details.items():
            lines.append(f"       {clause}: {' '.join((failure or '').split())}"[:width])
    return lines


def root_cause_markdown(name: str, report: Mapping[str, Any]) -> list[str]:
    """The defects of a report as a Markdown list (after the table)."""
    causes = list(report.get("root_causes") or [])
    if not causes:
        return []
    lines = ["", f"**Root causes of `{name}`**: {summary_of(causes)}.", ""]
    for number, cause in enumerate(causes, start=1):
        lines.append(f"{number}. {_headline(cause)}")
        details = cause["failures"] or {cause["clause"]: cause["first_failure"]}
        for clause, failure in details.items():
            text = " ".join((failure or "").split()).replace("|", "\\|")
            lines.append(f"    - {clause}: {text[:300]}")
    return lines
