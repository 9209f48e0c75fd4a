"""Hypothesis strategies of the conformance suite (environments, backend names, module filter inputs)."""

from __future__ import annotations

import os
import string

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from .contract import ALLOWED_ENV_PREFIXES, HEAD_NAMES, LORA_ADAPTER_COMPONENTS, VALID_BACKENDS

#: Examples per property under CI (derandomized, so every CI run checks the same cases) and for development.
CI_EXAMPLES = 100
DEV_EXAMPLES = 30

#: Set by ``fp8ref check`` so that a check is as thorough as CI wherever it runs.
THOROUGH_ENV_VAR = "FP8REF_CONFORMANCE_THOROUGH"


def suite_settings() -> settings:
    """The hypothesis settings of the suite's property tests, applied test by test (a decorator), never
    as a profile: a profile would change the hypothesis settings of every project that installs fp8ref.

    Under CI (``$CI`` set) or ``fp8ref check``: 100 derandomized examples and no example database, so a
    run is reproducible. Otherwise 30 random examples, for quick local runs.
    """
    thorough = bool(os.environ.get("CI") or os.environ.get(THOROUGH_ENV_VAR))
    common = {"deadline": None, "suppress_health_check": [HealthCheck.too_slow], "print_blob": True}
    if thorough:
        return settings(max_examples=CI_EXAMPLES, derandomize=True, database=None, **common)  # type: ignore[arg-type]
    return settings(max_examples=DEV_EXAMPLES, **common)  # type: ignore[arg-type]


_ENV_NAME_CHARS = string.ascii_uppercase + string.digits + "_"
_ENV_VALUE_CHARS = string.ascii_letters + string.digits + " _-./:=,"


def case_variants(word: str) -> st.SearchStrategy[str]:
    """``word`` with each letter in upper or lower case (``te``, ``TE``, ``tE``, ``Te``)."""
    return st.lists(st.booleans(), min_size=len(word), max_size=len(word)).map(
        lambda flags: "".join(c.upper() if up else c.lower() for c, up in zip(word, flags, strict=True))
    )


def valid_backends(*, include: tuple[str, ...] = VALID_BACKENDS) -> st.SearchStrategy[str]:
    """The valid backend names as the contract writes them (lower case): what C1 to C17 judge. Other letter
    cases are C0's business (:func:`backend_spellings`)."""
    return st.sampled_from(include)


def backend_spellings(*, include: tuple[str, ...] = VALID_BACKENDS) -> st.SearchStrategy[str]:
    """The valid backend names in any letter case (``TorchAO``, ``tE``): C0 matches them case-insensitively."""
    return st.sampled_from(include).flatmap(case_variants)


def invalid_backends() -> st.SearchStrategy[str]:
    """Names outside {auto, torchao, te} (in any case); names that equal one after stripping blanks
    are left out, so an implementation that tolerates surrounding blanks is not penalised."""
    near_misses = st.sampled_from(
        [
            "",
            "torch",
            "ao",
            "AO",
            "TE2",
            "transformer_engine",
            "transformer-engine",
            "fp8",
            "none",
            "msamp",
            "torchao2",
            "autoo",
            "t e",
            "default",
        ]
    )
    free = st.text(alphabet=string.ascii_letters + string.digits + "-_. ", max_size=12)
    return st.one_of(near_misses, free).filter(lambda s: s.strip().lower() not in VALID_BACKENDS)


def _unrelated_name() -> st.SearchStrategy[str]:
    return st.text(alphabet=_ENV_NAME_CHARS, min_size=1, max_size=16).filter(
        lambda n: n[0].isalpha() and not n.startswith(ALLOWED_ENV_PREFIXES) and n not in {"CI"}
    )


def _other_accelerate_name() -> st.SearchStrategy[str]:
    fixed = st.sampled_from(
        [
            "ACCELERATE_USE_CPU",
            "ACCELERATE_DYNAMO_BACKEND",
            "ACCELERATE_DEBUG_MODE",
            "ACCELERATE_LOG_LEVEL",
            "ACCELERATE_GRADIENT_ACCUMULATION_STEPS",
            "ACCELERATE_FP8",
            "ACCELERATE_MIXED",
        ]
    )
    free = st.text(alphabet=_ENV_NAME_CHARS, min_size=1, max_size=10).map(lambda s: "ACCELERATE_" + s)
    return st.one_of(fixed, free).filter(lambda n: not n.startswith(ALLOWED_ENV_PREFIXES))


def env_values() -> st.SearchStrategy[str]:
    return st.text(alphabet=_ENV_VALUE_CHARS, max_size=20)


def preset_fp8_variables() -> st.SearchStrategy[dict[str, str]]:
    """Variables that a previous run, a launcher or a user may have set already."""
    return st.fixed_dictionaries(
        {},
        optional={
            "ACCELERATE_MIXED_PRECISION": st.sampled_from(["no", "bf16", "fp16", "fp8", "FP8"]),
            "ACCELERATE_FP8_BACKEND": st.sampled_from(["AO", "TE", "MSAMP", "ao", "te"]),
            "ACCELERATE_FP8_ENABLE_FSDP_FLOAT8_ALL_GATHER": st.sampled_from(["true", "false", "1", "0", "True"]),
            "ACCELERATE_FP8_FORMAT": st.sampled_from(["HYBRID", "E4M3"]),
            "FP8_BACKEND": st.sampled_from(["torchao", "te", "auto"]),
            "FP8_ENABLE_FSDP_FLOAT8_ALL_GATHER": st.sampled_from(["true", "false"]),
        },
    )


def environments() -> st.SearchStrategy[dict[str, str]]:
    """A pre-existing environment: unrelated variables, other ``ACCELERATE_*`` variables that are
    not the FP8 helper's business, and pre-set FP8 variables."""
    unrelated = st.dictionaries(_unrelated_name(), env_values(), max_size=4)
    accelerate_other = st.dictionaries(_other_accelerate_name(), env_values(), max_size=3)
    return st.tuples(unrelated, accelerate_other, preset_fp8_variables()).map(
        lambda parts: {**parts[0], **parts[1], **parts[2]}
    )


# --------------------------------------------------------------------------- module filter (C9)

ORDINARY_COMPONENTS = ("dense", "q_proj", "fc1", "mlp", "attention", "layer", "self_attn", "proj", "block")
#: Longer names that contain a head name but are not one (C9d: these are converted).
CONTAINING_COMPONENTS = (
    "output_proj",
    "attention_output",
    "lm_head_proj",
    "embed_in_proj",
    "wte_adapter",
    "scores",
    "score_fc",
    "classifier_dense",
    "heads",
    "head_dim_proj",
    "pre_output",
    "embedding_mlp",
    "outputs",
    "sub_head",
)
#: PEFT's structure around a LoRA layer, and names that only look like adapter components (C17b: these
#: decide nothing; ``lora_A_proj``, ``lora_a`` and ``lora`` are ordinary components).
LORA_STRUCTURE_COMPONENTS = ("base_layer", "default", "lora_A_proj", "lora_a", "lora", "my_lora_B", "lora_dropout")


def fqn_components() -> st.SearchStrategy[str]:
    return st.one_of(
        st.sampled_from(ORDINARY_COMPONENTS),
        st.sampled_from(CONTAINING_COMPONENTS),
        st.sampled_from(HEAD_NAMES),
        st.sampled_from(HEAD_NAMES).flatmap(case_variants),  # C9c is exact: LM_HEAD and Output are converted
        st.sampled_from(LORA_ADAPTER_COMPONENTS),
        st.sampled_from(LORA_STRUCTURE_COMPONENTS),
        st.integers(0, 40).map(str),
        st.text(alphabet=string.ascii_lowercase + "_", min_size=1, max_size=10),
    )


def fqns() -> st.SearchStrategy[str]:
    """Dotted names whose components include head names alone (also in other letter cases), inside longer names,
    and as parents, and LoRA adapter components (C17b) anywhere."""
    return st.one_of(
        st.just(""),
        st.lists(fqn_components(), min_size=1, max_size=5).map(".".join),
    )


def dims() -> st.SearchStrategy[int]:
    return st.one_of(st.sampled_from([16, 32, 48, 64, 128, 256]), st.integers(1, 200))
