"""A typed, validated view of the FP8 training arguments.

Trainers pass any object (an HF ``TrainingArguments`` subclass, a namespace, a dataclass). fp8ref reads
these attributes from it:

========================================  ==========================  ==========================
attribute                                 values                      when missing
========================================  ==========================  ==========================
``fp8``                                   bool                        ``False``
``fp8_backend``                           ``auto``/``torchao``/``te``  ``auto`` (case-insensitive)
``fp8_enable_fsdp_float8_all_gather``     bool                        ``False``
``fp8_recipe`` (fp8ref extra)             ``rowwise``/``tensorwise``/  ``None``: rowwise, or
                                          ``rowwise_with_gw_hp``       tensorwise with all-gather
``fp8_auto_filter`` (fp8ref extra)        bool                        ``False``
========================================  ==========================  ==========================
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass
from typing import Any

from fp8ref.errors import FP8ConfigError

logger = logging.getLogger(__name__)


class Backend(str, enum.Enum):
    """The FP8 backend a user asks for. ``AUTO`` resolves to torchao, else Transformer Engine."""

    AUTO = "auto"
    TORCHAO = "torchao"
    TE = "te"

    @property
    def accelerate_name(self) -> str:
        """The value of ``ACCELERATE_FP8_BACKEND`` (and of ``Accelerator.fp8_backend``) for this backend."""
        if self is Backend.AUTO:
            raise FP8ConfigError("the 'auto' backend has no accelerate name; resolve it first")
        return "AO" if self is Backend.TORCHAO else "TE"

    @classmethod
    def from_accelerate_name(cls, name: object) -> Backend | None:
        """The backend whose :attr:`accelerate_name` is ``name`` (``AO``, ``TE``); ``None`` for another (``MSAMP``)."""
        return {"AO": cls.TORCHAO, "TE": cls.TE}.get(str(name))

    @property
    def package(self) -> str:
        """The pip package that provides this backend."""
        return {
            Backend.TORCHAO: "torchao",
            Backend.TE: "transformer-engine",
            Backend.AUTO: "torchao or transformer-engine",
        }[self]


class TorchaoRecipe(str, enum.Enum):
    """torchao float8 training recipes (``Float8LinearConfig.from_recipe_name``)."""

    ROWWISE = "rowwise"
    TENSORWISE = "tensorwise"
    ROWWISE_WITH_GW_HP = "rowwise_with_gw_hp"


VALID_BACKENDS: tuple[str, ...] = tuple(b.value for b in Backend)
VALID_RECIPES: tuple[str, ...] = tuple(r.value for r in TorchaoRecipe)
DEFAULT_RECIPE = TorchaoRecipe.ROWWISE


def _read_bool(training_args: Any, name: str) -> bool:
    value = getattr(training_args, name, None)
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    # numpy.bool_ and 0/1 integers are common in parsed configs; strings such as "false" are not safe.
    if type(value).__name__ == "bool_" or (isinstance(value, int) and value in (0, 1)):
        return bool(value)
    raise FP8ConfigError(f"training_args.{name} must be a bool, got {value!r} ({type(value).__name__})")


def parse_backend(value: object) -> Backend:
    """Parse a backend name, case-insensitively; ``None`` means ``auto``."""
    if value is None:
        return Backend.AUTO
    if isinstance(value, Backend):
        return value
    if isinstance(value, str) and value.strip().lower() in VALID_BACKENDS:
        return Backend(value.strip().lower())
    raise FP8ConfigError(
        f"invalid fp8_backend {value!r}: valid values are {', '.join(repr(v) for v in VALID_BACKENDS)} "
        "(case-insensitive)"
    )


def parse_recipe(value: object) -> TorchaoRecipe | None:
    """Parse a torchao recipe name, case-insensitively; ``None`` means "fp8ref chooses"."""
    if value is None:
        return None
    if isinstance(value, TorchaoRecipe):
        return value
    if isinstance(value, str) and value.strip().lower() in VALID_RECIPES:
        return TorchaoRecipe(value.strip().lower())
    raise FP8ConfigError(f"invalid fp8_recipe {value!r}: valid values are {', '.join(repr(v) for v in VALID_RECIPES)}")


@dataclass(frozen=True)
class FP8Settings:
    """The FP8 request, validated. Build it with :meth:`from_training_args`."""

    enabled: bool = False
    backend: Backend = Backend.AUTO
    recipe: TorchaoRecipe | None = None
    enable_fsdp_float8_all_gather: bool = False
    auto_filter: bool = False

    def __post_init__(self) -> None:
        explicit_rowwise = self.recipe in (TorchaoRecipe.ROWWISE, TorchaoRecipe.ROWWISE_WITH_GW_HP)
        if self.enable_fsdp_float8_all_gather and explicit_rowwise and self.backend is not Backend.TE:
            raise FP8ConfigError(
                f"fp8_recipe={self.recipe.value!r} cannot be combined with "  # type: ignore[union-attr]
                "fp8_enable_fsdp_float8_all_gather=True: torchao casts weights to float8 before the FSDP "
                "all-gather only with tensorwise scaling. Set fp8_recipe='tensorwise' (or leave it unset), "
                "or set fp8_enable_fsdp_float8_all_gather=False."
            )

    @classmethod
    def from_training_args(cls, training_args: Any) -> FP8Settings:
        """Validate the FP8 attributes of any arguments object (see the module docstring)."""
        if isinstance(training_args, FP8Settings):
            return training_args
        return cls(
            enabled=_read_bool(training_args, "fp8"),
            backend=parse_backend(getattr(training_args, "fp8_backend", None)),
            recipe=parse_recipe(getattr(training_args, "fp8_recipe", None)),
            enable_fsdp_float8_all_gather=_read_bool(training_args, "fp8_enable_fsdp_float8_all_gather"),
            auto_filter=_read_bool(training_args, "fp8_auto_filter"),
        )

    @property
    def effective_recipe(self) -> TorchaoRecipe:
        """The torchao recipe in effect: the one asked for, else tensorwise with all-gather, else rowwise."""
        if self.recipe is not None:
            return self.recipe
        if self.enable_fsdp_float8_all_gather:
            return TorchaoRecipe.TENSORWISE
        return DEFAULT_RECIPE
