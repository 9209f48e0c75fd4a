"""Environment snapshots: what changed between two, putting one back, and a block with a reshaped environment."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

#: Prefixes of the variables that accelerate or FP8 helpers read (dropped for a clean start, and from every
#: child process the suite starts, so that the caller's shell cannot decide a verdict).
FP8_ENV_PREFIXES = ("ACCELERATE_", "FP8_")


@dataclass(frozen=True)
class EnvChange:
    """One variable that differs between two environment snapshots (``None`` means unset)."""

    name: str
    before: str | None
    after: str | None


def env_diff(before: Mapping[str, str], after: Mapping[str, str]) -> list[EnvChange]:
    """The variables that were added, removed or changed between two snapshots, sorted by name."""
    names = sorted(set(before) | set(after))
    return [EnvChange(name, before.get(name), after.get(name)) for name in names if before.get(name) != after.get(name)]


def restore_environ(saved: Mapping[str, str]) -> None:
    """Make ``os.environ`` exactly ``saved`` again (removing added variables, resetting changed ones)."""
    for name in list(os.environ):
        if name not in saved:
            del os.environ[name]
    for name, value in saved.items():
        if os.environ.get(name) != value:
            os.environ[name] = value


@contextlib.contextmanager
def env_snapshot(
    replace: Mapping[str, str] | None = None, *, drop_prefixes: tuple[str, ...] = ()
) -> Iterator[dict[str, str]]:
    """Snapshot ``os.environ``, optionally reshape it, and restore the snapshot on exit.

    ``drop_prefixes`` removes variables with those prefixes for the duration, ``replace`` sets
    variables; the yielded dict is the environment as it stands at the start of the block.
    """
    saved = dict(os.environ)
    try:
        for name in list(os.environ):
            if drop_prefixes and name.startswith(drop_prefixes):
                del os.environ[name]
        if replace:
            os.environ.update(replace)
        yield dict(os.environ)
    finally:
        restore_environ(saved)


def fp8_env_prefixes() -> tuple[str, ...]:
    """Prefixes of the variables that accelerate or FP8 helpers read (dropped for a clean start)."""
    return FP8_ENV_PREFIXES


def without_fp8_variables(environ: Mapping[str, str]) -> dict[str, str]:
    """``environ`` without the variables accelerate or FP8 helpers read."""
    return {k: v for k, v in environ.items() if not k.startswith(FP8_ENV_PREFIXES)}
