"""The clause report rendered for people: the terminal table of one implementation, the root causes, the verdict
line, the table across implementations (text and Markdown).

Every label printed here is one the known-failures file accepts with the same meaning (see :mod:`.known`): a
clause id (``C9d``, ``C8``), a CPU twin (``G3/cpu``), a test name as the detail column gives it. No link points to
a place that may not exist: the spec is named by its installed path, and Markdown links point where the caller
says (``spec_base``: a path relative to the written file, or the spec's URL for a pull request)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..spec import SPEC_PATH, anchor
from .causes import root_cause_lines, root_cause_markdown
from .records import clause_sort_key

#: The cell of an implementation whose run wrote no report.
NOT_RUN = "did not run"


def _shorten(text: str | None, width: int) -> str:
    if not text:
        return ""
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 3] + "..."


def outcome_label(entry: Mapping[str, Any] | None, *, upper: bool = False) -> str:
    """A clause's outcome as the tables print it: ``passed``, ``blocked by C6``, ``missing (known)`` (a listed
    missing clause: held by the known-failures file, still missing)."""
    if entry is None:
        return "-"
    outcome = str(entry["outcome"])
    label = outcome.upper() if upper else outcome
    if outcome == "blocked":
        label += " by " + ", ".join(entry.get("blocked_by") or ["?"])
    if entry.get("held") and outcome != "known":
        label += " (known)"
    return label


def format_table(report: Mapping[str, Any], width: int = 110) -> list[str]:
    """The clause table as lines (clause, outcome, counts, first failure or skip reason), the root causes, and
    the verdict line last."""
    impl = report.get("implementation", {})
    lines = [f"FP8 conformance of {impl.get('module') or '?'} {impl.get('version') or ''}".rstrip()]
    lines.append(f"spec: {report.get('spec_file') or SPEC_PATH} (a clause's section: SPEC.md#c9d for C9d)")
    if impl.get("error"):
        lines.append(f"implementation error: {impl['error']}")
    if impl.get("missing"):
        lines.append(f"missing contract functions: {', '.join(impl['missing'])}")
    clauses = report.get("clauses", {})
    labels = {clause: outcome_label(data, upper=True) for clause, data in clauses.items()}
    col = max([8, *(len(label) for label in labels.values())])
    lines.append(f"{'clause':<7} {'outcome':<{col}} {'pass':>4} {'fail':>4} {'blk':>4} {'skip':>4}  detail")
    for clause, data in clauses.items():
        counts = data["counts"]
        failing = sum(counts.get(o, 0) for o in ("failed", "error", "missing", "known"))
        prefix = f"{clause:<7} {labels[clause]:<{col}} {counts['passed']:>4} {failing:>4} "
        prefix += f"{counts.get('blocked', 0):>4} {counts['skipped']:>4}  "
        if data["outcome"] in ("failed", "missing", "known", "blocked"):
            # Every failure line points to its clause's section of the spec, before the (shortened) detail.
            detail = f"[{data.get('spec') or clause}] {data.get('first_failure') or ''}"
        else:
            detail = data.get("skip_reason") or ""
        lines.append(prefix + _shorten(detail, max(20, width - len(prefix))))
    lines += root_cause_lines(report, width)
    lines.append(verdict_line(report))
    return lines


def _held_summary(clauses: Mapping[str, Any]) -> str:
    parts = []
    for clause, data in clauses.items():
        if data.get("held"):
            parts.append(clause if data["outcome"] == "known" else f"{clause} ({data.get('label') or data['outcome']})")
    return ", ".join(parts)


def verdict_line(report: Mapping[str, Any]) -> str:
    """``CONFORMS`` only when every clause of the suite ran and passed. Known failures say so
    (``CONFORMS except 2 known failures``); a run of a subset of the clauses (``-k``/``-m``) is ``NOT VERIFIED``
    and names the clauses it did not run; anything failed, missing or blocked and not held is ``DOES NOT
    CONFORM``."""
    summary = report.get("summary", {})
    clauses = report.get("clauses", {})
    not_run = list(report.get("not_run") or [])
    counts = ", ".join(
        f"{summary.get(o, 0)} {o}" for o in ("failed", "missing", "blocked", "known", "skipped") if summary.get(o)
    )
    passed = summary.get("passed", 0)
    text = f"{passed} clause{'s' if passed != 1 else ''} passed" + (f", {counts}" if counts else "")
    unheld = [d["outcome"] for d in clauses.values() if d["outcome"] != "passed" and not d.get("held")]
    held = sum(1 for d in clauses.values() if d.get("held"))
    if not clauses or any(o in ("failed", "missing", "blocked") for o in unheld):
        verdict = "DOES NOT CONFORM"
    elif unheld:
        verdict = "NOT VERIFIED (clauses skipped)"
    elif not_run:
        verdict = "NOT VERIFIED (only a subset of the clauses ran)"
    elif held:
        verdict = f"CONFORMS except {held} known failure{'s' if held != 1 else ''}"
    else:
        verdict = "CONFORMS"
    line = f"{verdict}: {text}"
    if held:
        line += f"; known: {_held_summary(clauses)}"
    if not_run:
        line += f"; not run: {', '.join(not_run)}"
    return line


def clauses_of(reports: Mapping[str, Mapping[str, Any] | None]) -> list[str]:
    """Every clause that any of ``reports`` has, in contract order."""
    clauses = {c for data in reports.values() if data is not None for c in data.get("clauses", {})}
    return sorted(clauses, key=clause_sort_key)


def outcome_of(data: Mapping[str, Any] | None, clause: str) -> str:
    """The label of ``clause`` in a report (``-``: not run there; ``did not run``: the run wrote no report)."""
    if data is None:
        return NOT_RUN
    return outcome_label(data.get("clauses", {}).get(clause))


def _cell(data: Mapping[str, Any] | None, clause: str) -> str:
    """A cell of the text table: the outcome in capitals, the clauses it names as the report spells them
    (``BLOCKED by C13d``, a label the known-failures file takes)."""
    if data is None:
        return NOT_RUN.upper()
    return outcome_label(data.get("clauses", {}).get(clause), upper=True)


def across_table_lines(
    reports: Mapping[str, Mapping[str, Any] | None], reasons: Mapping[str, str] | None = None
) -> list[str]:
    """The text table across implementations: clauses down, one column per implementation (``None``: its run
    wrote no report, shown as a column that did not run, with the reason below)."""
    names = list(reports)
    cells = {n: {c: _cell(reports[n], c) for c in clauses_of(reports)} for n in names}
    width = max([8, *(len(n) for n in names), *(len(v) for col in cells.values() for v in col.values())])
    lines = [
        "FP8 conformance by clause and implementation",
        f"{'clause':<7} " + " ".join(f"{n:<{width}}" for n in names),
    ]
    for clause in clauses_of(reports):
        lines.append(f"{clause:<7} " + " ".join(f"{cells[n][clause]:<{width}}" for n in names))
    for name in names:
        if reports[name] is None:
            lines.append(f"{name}: {NOT_RUN}: {(reasons or {}).get(name, 'the suite wrote no report')}")
    return lines


def failure_lines(name: str, data: Mapping[str, Any]) -> list[str]:
    """One implementation's error, failed, missing and blocked clauses (each pointing to the spec), root causes
    and verdict."""
    lines = []
    impl = data.get("implementation", {})
    if impl.get("error"):
        lines.append(f"{name}: implementation error: {impl['error']}")
    for clause, entry in data.get("clauses", {}).items():
        if entry["outcome"] in ("failed", "missing", "blocked") and not entry.get("held"):
            lines.append(f"{name} {clause} [{anchor(clause)}] {entry.get('first_failure') or ''}"[:400])
    lines += [f"{name}: {line}" for line in root_cause_lines(data)[:1]]
    lines.append(f"{name}: {verdict_line(data)}")
    return lines


def markdown_table(
    reports: Mapping[str, Mapping[str, Any] | None],
    *,
    spec_base: str | None = None,
    reasons: Mapping[str, str] | None = None,
) -> str:
    """The table as Markdown: clauses down (linked to their section at ``spec_base``, a path relative to the
    written file or a URL; plain ids without it), implementations across, a verdict row, then each
    implementation's root causes."""
    names = list(reports)
    lines = ["| clause | " + " | ".join(f"`{n}`" for n in names) + " |", "|---|" + "---|" * len(names)]
    for clause in clauses_of(reports):
        cells = [outcome_of(reports[n], clause) for n in names]
        section = anchor(clause).split("#", 1)[1]
        label = f"[{clause}]({spec_base}#{section})" if spec_base else clause
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    verdicts = []
    for name in names:
        data = reports[name]
        verdicts.append(verdict_line(data) if data else f"{NOT_RUN}: {(reasons or {}).get(name, 'no report')}")
    lines.append("| **verdict** | " + " | ".join(verdicts) + " |")
    for name in names:
        data = reports[name]
        if data:
            lines += root_cause_markdown(name, data)
    return "\n".join(lines) + "\n"
