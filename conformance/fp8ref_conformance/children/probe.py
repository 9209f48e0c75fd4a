"""Run contract calls in a fresh interpreter where some packages are not importable.

Started by the suite (``kit/processes.run_probe``) as ``python -m fp8ref_conformance.children.probe SPEC_JSON``:
the spec names the implementation, the packages to hide (``sys.modules[name] = None`` before anything imports
them, which is what a missing package looks like to ``import`` and to ``importlib.util.find_spec``), an optional
directory holding the stand-in ``transformer_engine``, and the calls to make. The results go to stdout as one
JSON object. A fresh process is the honest way to say "not installed": nothing was cached before.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import types
from typing import Any

from ..kit.processes import PROBE_MARKER as MARKER


def _describe_handler(handler: Any) -> dict[str, Any]:
    cls = type(handler)
    desc: dict[str, Any] = {"class": f"{cls.__module__}.{cls.__qualname__}", "name": cls.__name__}
    for attr in ("backend", "fp8_format", "amax_history_len", "amax_compute_algo"):
        if hasattr(handler, attr):
            value = getattr(handler, attr)
            desc[attr] = value if isinstance(value, (str, int, float, bool, type(None))) else repr(value)
    config = getattr(handler, "config", None)
    if config is not None:
        desc["config_class"] = f"{type(config).__module__}.{type(config).__qualname__}"
    return desc


def _run_call(impl: types.ModuleType, call: dict[str, Any]) -> dict[str, Any]:
    args = types.SimpleNamespace(**call["args"])
    before = dict(os.environ)
    out: dict[str, Any] = {"id": call["id"]}
    try:
        result = getattr(impl, call["fn"])(args)
    except Exception as exc:  # every outcome is data here
        out.update(
            ok=False,
            exc_type=type(exc).__name__,
            is_import_error=isinstance(exc, ImportError),
            is_value_error=isinstance(exc, ValueError),
            message=str(exc),
        )
    else:
        out["ok"] = True
        if isinstance(result, list):
            out["handlers"] = [_describe_handler(h) for h in result]
        else:
            out["result_repr"] = repr(result)[:200]
    after = dict(os.environ)
    out["env"] = {k: after.get(k) for k in set(before) | set(after) if before.get(k) != after.get(k)}
    os.environ.clear()
    os.environ.update(before)
    return out


def main(argv: list[str]) -> int:
    spec = json.loads(argv[0])
    for name in spec.get("hide", []):
        sys.modules[name] = None  # type: ignore[assignment]
    if spec.get("standin"):
        sys.path.insert(0, spec["standin"])
    impl = importlib.import_module(spec["impl"])
    results = [_run_call(impl, call) for call in spec["calls"]]
    state = {name: name in sys.modules and sys.modules[name] is not None for name in spec.get("report", [])}
    sys.stdout.write("\n" + MARKER + json.dumps({"results": results, "imported": state}) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
