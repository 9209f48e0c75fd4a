"""The clause report rendered for people: the terminal table of one implementation, the verdict line, the table
across implementations (text and Markdown)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..spec import SPEC_URL, anchor
from .records import clause_sort_key


def _shorten(text: str | None, width: int) -> str:
    if not text:
        return ""
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 3] + "..."


def format_table(report: Mapping[str, Any], width: int = 110) -> list[str]:
    """The clause table as lines: clause, outcome, counts, and the first failure (or skip reason)."""
    impl = report.get("implementation", {})
    lines = [f"FP8 conformance of {impl.get('module') or '?'} {impl.get('version') or ''}".rstrip()]
    if impl.get("error"):
        lines.append(f"implementation error: {impl['error']}")
    if impl.get("missing"):
        lines.append(f"missing contract functions: {', '.join(impl['missing'])}")
    lines.append(f"{'clause':<7} {'outcome':<8} {'pass':>4} {'fail':>4} {'skip':>4}  detail")
    for clause, data in report.get("clauses", {}).items():
        counts = data["counts"]
        prefix = f"{clause:<7} {data['outcome'].upper():<8} {counts['passed']:>4} "
        failing = sum(counts.get(o, 0) for o in ("failed", "error", "missing", "known"))
        prefix += f"{failing:>4} {counts['skipped']:>4}  "
        if data["outcome"] in ("failed", "missing", "known"):
            # Every failure line points to its clause's section of the spec, before the (shortened) detail.
            detail = f"[{data.get('spec') or clause}] {data.get('first_failure') or ''}"
        else:
            detail = data.get("skip_reason") or ""
        lines.append(prefix + _shorten(detail, max(20, width - len(prefix))))
    lines.append(verdict_line(report))
    return lines


def verdict_line(report: Mapping[str, Any]) -> str:
    summary = report.get("summary", {})
    if report.get("all_passed"):
        verdict = "CONFORMS"
    elif summary.get("failed", 0) or summary.get("missing", 0) or not report.get("clauses"):
        verdict = "DOES NOT CONFORM"
    else:
        verdict = "NOT VERIFIED (clauses skipped)"
    counts = ", ".join(f"{summary.get(o, 0)} {o}" for o in ("failed", "missing", "known", "skipped") if summary.get(o))
    return f"{verdict}: {summary.get('passed', 0)} clauses passed" + (f", {counts}" if counts else "")


def clauses_of(reports: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Every clause that any of ``reports`` has, in contract order."""
    clauses = {c for data in reports.values() for c in data.get("clauses", {})}
    return sorted(clauses, key=clause_sort_key)


def outcome_of(data: Mapping[str, Any] | None, clause: str) -> str:
    """The outcome of ``clause`` in a report (``-``: not run; ``error``: the run wrote no report)."""
    if data is None:
        return "error"
    entry = data.get("clauses", {}).get(clause)
    return str(entry["outcome"]) if entry else "-"


def across_table_lines(reports: Mapping[str, Mapping[str, Any] | None]) -> list[str]:
    """The text table across implementations: clauses down, one column per implementation (``None``: no
    report), then each implementation's failures and verdict line."""
    names = list(reports)
    present = {n: d for n, d in reports.items() if d is not None}
    width = max(8, *(len(n) for n in names))
    lines = [
        "FP8 conformance by clause and implementation",
        f"{'clause':<7} " + " ".join(f"{n:<{width}}" for n in names),
    ]
    for clause in clauses_of(present):
        cells = [outcome_of(reports[n], clause).upper() for n in names]
        lines.append(f"{clause:<7} " + " ".join(f"{c:<{width}}" for c in cells))
    return lines


def failure_lines(name: str, data: Mapping[str, Any]) -> list[str]:
    """One implementation's error, failed and missing clauses (each pointing to the spec), and verdict."""
    lines = []
    impl = data.get("implementation", {})
    if impl.get("error"):
        lines.append(f"{name}: implementation error: {impl['error']}")
    for clause, entry in data.get("clauses", {}).items():
        if entry["outcome"] in ("failed", "missing"):
            lines.append(f"{name} {clause} [{anchor(clause)}] {entry.get('first_failure') or ''}"[:400])
    lines.append(f"{name}: {verdict_line(data)}")
    return lines


def markdown_table(reports: Mapping[str, Mapping[str, Any]]) -> str:
    """The table as Markdown: clauses down (each linked to its section of the spec), implementations across."""
    names = list(reports)
    lines = ["| clause | " + " | ".join(f"`{n}`" for n in names) + " |", "|---|" + "---|" * len(names)]
    for clause in clauses_of(reports):
        cells = [outcome_of(reports[n], clause) for n in names]
        section = anchor(clause).split("#", 1)[1]
        lines.append(f"| [{clause}]({SPEC_URL}#{section}) | " + " | ".join(cells) + " |")
    lines.append("| **verdict** | " + " | ".join(verdict_line(reports[n]) for n in names) + " |")
    return "\n".join(lines) + "\n"
