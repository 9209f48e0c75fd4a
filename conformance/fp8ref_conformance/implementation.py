"""The implementation under test: imported once per process, described (module, file, version, the contract
functions it lacks, or the error that makes it unusable), and seen by the tests through :class:`Implementation`.

A test that uses a contract function the module does not offer fails with :class:`MissingContractFunctions`,
an exception that carries the names as data: the plugin copies them into the test report's
``user_properties``, which survive pytest-xdist, so that the clause table says ``missing: <function>``
without parsing failure messages.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import sys
import types
from dataclasses import dataclass
from typing import Any

from _pytest.outcomes import Failed

from .kit.contract import CONTRACT_FUNCTIONS

#: The key under which a test report's ``user_properties`` carry the missing functions.
MISSING_PROPERTY = "fp8_missing_functions"


class MissingContractFunctions(Failed):
    """The test needs contract functions that the implementation does not offer (a test failure, reported as
    ``missing``)."""

    def __init__(self, names: tuple[str, ...]) -> None:
        super().__init__(msg=f"missing: {', '.join(names)}", pytrace=False)
        self.names = names


@dataclass(frozen=True)
class ImplementationInfo:
    """What the suite knows about the implementation named ``name``."""

    name: str
    module: types.ModuleType | None
    file: str | None = None
    version: str | None = None
    missing: tuple[str, ...] = ()
    error: str | None = None

    def describe(self) -> dict[str, Any]:
        """The report's ``implementation`` entry."""
        info: dict[str, Any] = {"module": self.name, "file": self.file, "version": self.version}
        if self.module is not None:
            info["missing"] = list(self.missing)
        if self.error is not None:
            info["error"] = self.error
        return info


def load_implementation(name: str) -> ImplementationInfo:
    """Import ``name`` and describe it; an import failure, or a module with none of the five functions, is
    described as the error that makes it unusable (reported, not raised: the header must still print)."""
    try:
        module = importlib.import_module(name)
    except Exception as exc:  # any import failure of the implementation is reported as its error
        return ImplementationInfo(name, None, error=f"{type(exc).__name__}: {exc}")
    missing = tuple(f for f in CONTRACT_FUNCTIONS if not callable(getattr(module, f, None)))
    error = None
    if len(missing) == len(CONTRACT_FUNCTIONS):
        error = f"{name} offers none of the contract functions ({', '.join(CONTRACT_FUNCTIONS)})"
    return ImplementationInfo(
        name, module, file=getattr(module, "__file__", None), version=_version_of(module), missing=missing, error=error
    )


def _version_of(module: types.ModuleType) -> str | None:
    top = module.__name__.split(".", 1)[0]
    for candidate in (module, sys.modules.get(top)):
        version = getattr(candidate, "__version__", None)
        if isinstance(version, str):
            return version
    try:
        dists = importlib.metadata.packages_distributions().get(top, [])
        return importlib.metadata.version(dists[0]) if dists else None
    except (importlib.metadata.PackageNotFoundError, ValueError):
        return None


class Implementation:
    """The module under test, seen through the contract: attribute access passes through, except that a
    contract function the module does not offer fails the test at once with :class:`MissingContractFunctions`,
    so that a partial implementation is judged clause by clause (a clause that never calls the missing function
    is judged on its merits)."""

    def __init__(self, info: ImplementationInfo) -> None:
        assert info.module is not None, info.error
        self.__dict__["_module"] = info.module
        self.__dict__["missing"] = info.missing

    @property
    def module(self) -> types.ModuleType:
        module: types.ModuleType = self.__dict__["_module"]
        return module

    def require(self, *names: str) -> None:
        """Fail the test as ``missing`` unless the module offers every one of ``names`` (for checks that reach
        the implementation only in a child process)."""
        absent = tuple(name for name in names if name in self.missing)
        if absent:
            raise MissingContractFunctions(absent)

    def __getattr__(self, name: str) -> Any:
        if name in self.__dict__["missing"]:
            raise MissingContractFunctions((name,))
        return getattr(self.__dict__["_module"], name)

    def __repr__(self) -> str:
        return f"<implementation {self.module.__name__}>"
