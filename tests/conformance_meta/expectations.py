"""What the suite must say of each broken or partial implementation, declared by the implementation itself.

Each module of ``broken/`` or ``partial/`` that the suite must judge in a plain way ends with a module-level
``EXPECTED = {...}``: a dict literal of the fields of :class:`Expected` (the clauses that fail, pass, or miss a
function; the tests that fail or pass; text a failure names; the ``-k`` selection of its one suite session), under
a comment that says why these verdicts. It is
a literal, not an ``Expected(...)`` call, so that the module needs no import from the meta-tests: the suite and the
children it starts import it from its folder alone. The meta-tests read it with :mod:`ast`, without importing the
module (some broken modules patch fp8ref or end the interpreter when imported). The suite itself never reads it:
it looks at an implementation's five contract functions and ``__version__`` only.

Adding a broken implementation is one file: the module, with its ``EXPECTED``;
``test_broken_implementations.py`` finds it, runs it, and judges it.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from .suite_runs import SuiteRun, suite_args

META = Path(__file__).resolve().parent
BROKEN_DIR, PARTIAL_DIR, CORRECT_DIR = META / "broken", META / "partial", META / "correct"
#: Where implementations that declare ``EXPECTED`` live, and how their file names start.
DECLARING = ((BROKEN_DIR, "fp8broken_"), (PARTIAL_DIR, "fp8partial_"))

#: The suite's test modules that start training processes (FSDP2 on two ranks, DeepSpeed), left out of a session
#: unless it asks for ``children``: their clauses' in-process tests judge the same functions, and each such process
#: costs 10 to 30 s of a 2-core machine. The one place the meta-tests name suite files.
WITHOUT_CHILDREN = "not test_c15_distributed and not deepspeed"


@dataclass(frozen=True)
class Expected:
    """The verdicts one session of the suite, restricted to ``select``, must give an implementation."""

    select: str
    #: Clauses that must fail (each naming its first failure), pass, or be ``missing`` these functions.
    fails: tuple[str, ...] = ()
    passes: tuple[str, ...] = ()
    missing: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: MappingProxyType({}))
    #: Tests (their names without the module, as in the report) that must fail, and that must pass; ``name[*]``
    #: stands for every parametrization of ``name`` (at least one must have run).
    failing_tests: tuple[str, ...] = ()
    passing_tests: tuple[str, ...] = ()
    #: Text the first failure of each of these clauses must contain.
    says: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    via_env: bool = False  # choose the implementation with $FP8REF_IMPL instead of --fp8-impl
    children: bool = False  # keep the test modules that start training processes (see WITHOUT_CHILDREN)

    def __post_init__(self) -> None:
        if not (self.fails or self.missing):
            raise ValueError(f"an expectation for {self.select!r} fails no clause: the suite would pass it")
        for name in ("fails", "passes", "failing_tests", "passing_tests"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        object.__setattr__(self, "missing", MappingProxyType({c: tuple(f) for c, f in self.missing.items()}))
        object.__setattr__(self, "says", MappingProxyType(dict(self.says)))


@dataclass(frozen=True)
class Declared:
    """An implementation module and what it declares."""

    module: str
    folder: Path
    expected: Expected


def declaration_of(path: Path) -> Expected | None:
    """The ``EXPECTED`` literal of the module at ``path``, read without importing it; None if it has none."""
    tree = ast.parse(path.read_text(), str(path))
    for node in tree.body:
        if isinstance(node, ast.Assign) and [ast.unparse(t) for t in node.targets] == ["EXPECTED"]:
            return Expected(**ast.literal_eval(node.value))
    return None


def implementation_files() -> list[Path]:
    """Every broken and partial implementation module, in name order."""
    return sorted(path for folder, prefix in DECLARING for path in folder.glob(f"{prefix}*.py"))


def declared() -> list[Declared]:
    """The implementations that declare ``EXPECTED``, in name order."""
    found = []
    for path in implementation_files():
        expected = declaration_of(path)
        if expected is not None:
            found.append(Declared(path.stem, path.parent, expected))
    return found


#: A test name that stands for every parametrization of the test: ``test_c12e_x[*]``.
EVERY_PARAMETRIZATION = "[*]"


def outcomes_named(name: str, ran: Mapping[str, str]) -> dict[str, str | None]:
    """The outcomes, in ``ran`` (outcome by test name), of the tests that ``name`` stands for: itself, or with
    ``[*]`` every parametrization of it (``None`` for a name that did not run)."""
    if not name.endswith(EVERY_PARAMETRIZATION):
        return {name: ran.get(name)}
    stem = name[: -len(EVERY_PARAMETRIZATION)] + "["
    return {test: outcome for test, outcome in ran.items() if test.startswith(stem)} or {name: None}


def session_of(
    impl: str, select: str, *, via_env: bool = False, children: bool = False
) -> tuple[tuple[str, ...], dict[str, str]]:
    """The pytest arguments and environment of one session of the suite against ``impl``; without ``children``
    the selection leaves out the tests that start training processes."""
    keyword = select if children else f"({select}) and {WITHOUT_CHILDREN}"
    return suite_args(impl, keyword, via_env=via_env), ({"FP8REF_IMPL": impl} if via_env else {})


def run_of(case: Declared) -> SuiteRun:
    """The one suite session of a declared implementation, importable from its folder."""
    expected = case.expected
    args, env = session_of(case.module, expected.select, via_env=expected.via_env, children=expected.children)
    return SuiteRun(case.module, args, env, (str(case.folder),))


def scenario_run(key: str, impl: str, folder: Path, select: str, *extra: str) -> SuiteRun:
    """A session of a scenario test, which judges its runs with assertions of its own (``test_verdicts.py``,
    ``test_partial_implementations.py``): the suite against ``impl`` from ``folder``, restricted to ``select``."""
    return SuiteRun(key, suite_args(impl, select, *extra), {}, (str(folder),))
