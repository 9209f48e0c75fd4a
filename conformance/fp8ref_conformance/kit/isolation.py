"""Putting process state back: ``os.environ``, ``sys.path``, accelerate's process-wide state singletons, and the
namespaces an implementation's patch may change: the ``Accelerator`` class, accelerate's module bindings such as
``convert_model``, and transformers' ``Trainer`` and ``TrainingArguments`` classes and the modules that bind them
(``transformers.trainer.Accelerator``, for one). transformers' are covered once imported (importing
``transformers.trainer`` takes seconds, so a snapshot does not do it): the DeepSpeed child imports it first.

One module for every place that needs it: the suite's conftest (around every test), the children that run
several trainings in one process (DeepSpeed), the tests that build several Accelerators in one test (C13, C17),
the bench, and fp8ref's own tests.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
import types
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from .env import FP8_ENV_PREFIXES, restore_environ

#: Modules whose namespaces an implementation's patch may change (Accelerator, convert_model, ...).
PATCHABLE_MODULES = (
    "accelerate",
    "accelerate.accelerator",
    "accelerate.utils",
    "accelerate.utils.ao",
    "accelerate.utils.transformer_engine",
)

#: transformers' modules and classes a patch may change, covered when already imported.
TRANSFORMERS_MODULES = ("transformers", "transformers.trainer", "transformers.training_args")
TRANSFORMERS_CLASSES = (("transformers.trainer", "Trainer"), ("transformers.training_args", "TrainingArguments"))

_ABSENT = object()


def reset_accelerate_state() -> None:
    """Forget accelerate's process-wide singletons (``AcceleratorState``, ``PartialState``, ``GradientState``)."""
    from accelerate.state import AcceleratorState, GradientState, PartialState

    AcceleratorState._reset_state(True)
    PartialState._reset_state()
    GradientState._reset_state()


def drop_fp8_variables() -> None:
    """Remove the ``ACCELERATE_*`` and ``FP8_*`` variables from ``os.environ`` (a clean FP8 environment: what a
    bare ``Accelerator()`` reads is then what the test itself set). :meth:`Snapshot.restore` puts them back."""
    for name in [n for n in os.environ if n.startswith(FP8_ENV_PREFIXES)]:
        del os.environ[name]


def _restore_namespace(target: Any, original: dict[str, Any]) -> None:
    """Put back what ``target``'s namespace held; names added since are removed, except submodules
    that an import added to a package (they belong to ``sys.modules`` too)."""
    current = vars(target)
    for name in [n for n in current if n not in original]:
        if not isinstance(current[name], types.ModuleType):
            delattr(target, name)
    for name, value in original.items():
        if name in ("__dict__", "__weakref__"):
            continue
        if current.get(name, _ABSENT) is not value:
            setattr(target, name, value)


@dataclass
class Snapshot:
    """What :func:`snapshot` saw; :meth:`restore` puts it back (as often as needed)."""

    environ: dict[str, str]
    sys_path: list[str]
    accelerator_class: type
    accelerator_class_dict: dict[str, Any]
    modules: dict[str, tuple[types.ModuleType, dict[str, Any]]] = field(default_factory=dict)
    classes: list[tuple[type, dict[str, Any]]] = field(default_factory=list)

    def restore(self) -> None:
        restore_environ(self.environ)
        sys.path[:] = self.sys_path
        self.restore_accelerate()

    def restore_accelerate(self) -> None:
        """The patchable namespaces (accelerate's, and transformers' where they were imported), the ``Accelerator``
        class and accelerate's state singletons; not ``os.environ`` or ``sys.path``."""
        for module, namespace in self.modules.values():
            _restore_namespace(module, namespace)
        _restore_namespace(self.accelerator_class, self.accelerator_class_dict)
        for cls, namespace in self.classes:
            _restore_namespace(cls, namespace)
        reset_accelerate_state()


def snapshot(modules: tuple[str, ...] = PATCHABLE_MODULES) -> Snapshot:
    """The environment, ``sys.path``, and the namespaces of ``modules``, of ``Accelerator`` and of transformers'
    patchable modules and classes that are imported, as they are now."""
    import accelerate.accelerator

    cls = accelerate.accelerator.Accelerator
    loaded = {name: importlib.import_module(name) for name in modules}
    loaded.update({name: sys.modules[name] for name in TRANSFORMERS_MODULES if name in sys.modules})
    classes = [getattr(sys.modules.get(module), name, None) for module, name in TRANSFORMERS_CLASSES]
    return Snapshot(
        environ=dict(os.environ),
        sys_path=list(sys.path),
        accelerator_class=cls,
        accelerator_class_dict=dict(vars(cls)),
        modules={name: (module, dict(vars(module))) for name, module in loaded.items()},
        classes=[(c, dict(vars(c))) for c in classes if isinstance(c, type)],
    )


@contextlib.contextmanager
def isolated() -> Iterator[Snapshot]:
    """A block that starts from fresh accelerate state and leaves everything :func:`snapshot` covers as it was."""
    reset_accelerate_state()
    saved = snapshot()
    try:
        yield saved
    finally:
        saved.restore()
