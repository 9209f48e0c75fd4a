"""The results file: a pytest-benchmark JSON read into :class:`Result` objects, one per fp8ref benchmark, or a
:class:`ReportError` that says why the file cannot be used and how to write one that can."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class ReportError(Exception):
    """A results file that cannot be reported on; the message says why and what to do."""


@dataclass(frozen=True)
class Result:
    """One benchmark of the JSON, with the fields of its ``extra_info``."""

    name: str
    bench: str
    variant: str
    recipe: str | None
    shape: str
    m: int | None
    k: int | None
    n: int | None
    flops: float
    median_s: float
    device: str
    device_name: str
    compute_capability: str | None
    compiled: bool
    emulate: bool


def load_results(path: Path) -> tuple[list[Result], dict[str, Any]]:
    """Read a pytest-benchmark JSON; raise :class:`ReportError` with the reason when it is unusable."""
    if not path.exists():
        raise ReportError(f"results file not found: {path} (write one with: pytest bench --benchmark-json {path})")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ReportError(f"{path} is not valid JSON: {exc}") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ReportError(f"cannot read {path}: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("benchmarks"), list):
        raise ReportError(
            f"{path} is not a pytest-benchmark JSON (no 'benchmarks' list); "
            "produce one with: pytest bench --benchmark-json FILE"
        )
    results: list[Result] = []
    foreign = 0
    for entry in data["benchmarks"]:
        info = entry.get("extra_info") if isinstance(entry, dict) else None
        if not isinstance(info, dict) or "variant" not in info or "flops" not in info:
            foreign += 1
            continue
        try:
            median = float(entry["stats"]["median"])
            results.append(
                Result(
                    name=str(entry.get("name", "?")),
                    bench=str(info.get("bench", "other")),
                    variant=str(info["variant"]),
                    recipe=info.get("recipe"),
                    shape=str(info.get("shape", entry.get("name", "?"))),
                    m=info.get("m"),
                    k=info.get("k"),
                    n=info.get("n"),
                    flops=float(info["flops"]),
                    median_s=median,
                    device=str(info.get("device", "unknown")),
                    device_name=str(info.get("device_name", "unknown")),
                    compute_capability=info.get("compute_capability"),
                    compiled=bool(info.get("compile", False)),
                    emulate=bool(info.get("emulate", False)),
                )
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ReportError(f"{path}: benchmark {entry.get('name', '?')!r} lacks a usable median: {exc}") from exc
        if not (median > 0 and math.isfinite(median)):
            raise ReportError(f"{path}: benchmark {entry.get('name', '?')!r} has a median of {median}")
    if not results:
        raise ReportError(
            f"{path} holds {len(data['benchmarks'])} benchmark(s) but none from the fp8ref bench "
            "(no extra_info 'variant' and 'flops'); run: pytest bench --benchmark-json FILE"
        )
    meta = {k: data.get(k) for k in ("datetime", "version", "machine_info", "commit_info")}
    meta["foreign"] = foreign
    return results, meta
