"""Known upstream FP8 defects, by package version: the list in ``fp8ref/data/upstream_defects.json``, typed, and which
of its entries apply to the packages installed here.

A tool reads it (``fp8ref preflight`` lists what applies; ``fp8ref doctor`` can too): :func:`load_defects` gives every
entry, :func:`applicable_defects` those whose version ranges all hold for the installed versions.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version

from fp8ref.backends import installed_version
from fp8ref.errors import FP8ConfigError

DATA_FILE = "upstream_defects.json"


@dataclass(frozen=True)
class UpstreamDefect:
    """One defect of an upstream package (accelerate, peft, Transformer Engine, ...) that changes what FP8 does."""

    id: str
    title: str
    #: Distribution name to the version range it affects (``packaging`` specifiers): every one must hold.
    affects: tuple[tuple[str, SpecifierSet], ...]
    #: ``torchao``, ``te`` or None (any backend).
    backend: str | None
    how_to_see: str
    fp8ref_works_around: bool
    workaround: str | None
    fix: str

    def applies_to(self, versions: Mapping[str, str | None]) -> bool:
        """Whether every affected package is installed (in ``versions``) at a version inside its range."""
        for package, specifier in self.affects:
            version = versions.get(package)
            if version is None:
                return False
            try:
                if not specifier.contains(Version(version), prereleases=True):
                    return False
            except InvalidVersion:
                return False
        return True

    def ranges(self) -> str:
        return ", ".join(f"{package} {specifier}" for package, specifier in self.affects)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "affects": {package: str(specifier) for package, specifier in self.affects},
            "backend": self.backend,
            "how_to_see": self.how_to_see,
            "fp8ref_works_around": self.fp8ref_works_around,
            "workaround": self.workaround,
            "fix": self.fix,
        }


def _defect(entry: Mapping[str, Any]) -> UpstreamDefect:
    try:
        affects = tuple((str(name), SpecifierSet(str(spec))) for name, spec in dict(entry["affects"]).items())
        return UpstreamDefect(
            id=str(entry["id"]),
            title=str(entry["title"]),
            affects=affects,
            backend=entry.get("backend"),
            how_to_see=str(entry["how_to_see"]),
            fp8ref_works_around=bool(entry["fp8ref_works_around"]),
            workaround=entry.get("workaround"),
            fix=str(entry["fix"]),
        )
    except (KeyError, TypeError, InvalidSpecifier) as exc:
        raise FP8ConfigError(f"{DATA_FILE}: entry {entry.get('id', '?')!r} is malformed: {exc}") from exc


def load_defects(text: str | None = None) -> tuple[UpstreamDefect, ...]:
    """Every entry of the data file (or of ``text``, the same JSON layout)."""
    if text is None:
        text = resources.files("fp8ref.data").joinpath(DATA_FILE).read_text(encoding="utf-8")
    entries = json.loads(text)["defects"]
    return tuple(_defect(entry) for entry in entries)


def installed_versions(defects: tuple[UpstreamDefect, ...]) -> dict[str, str | None]:
    """The installed version of every package the entries name (None when not installed)."""
    names = {package for defect in defects for package, _ in defect.affects}
    return {name: installed_version(name) for name in sorted(names)}


def applicable_defects(
    versions: Mapping[str, str | None] | None = None,
    *,
    backend: str | None = None,
    defects: tuple[UpstreamDefect, ...] | None = None,
    versions_of: Callable[[tuple[UpstreamDefect, ...]], dict[str, str | None]] = installed_versions,
) -> tuple[UpstreamDefect, ...]:
    """The entries that apply to ``versions`` (default: what is installed); with ``backend`` (``torchao``/``te``)
    only those of that backend or of any backend."""
    known = load_defects() if defects is None else defects
    found = versions_of(known) if versions is None else versions
    return tuple(
        defect
        for defect in known
        if defect.applies_to(found) and (backend is None or defect.backend in (None, backend))
    )
