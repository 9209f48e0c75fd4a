"""C10 conversion after ``accelerator.prepare``, on the CPU with torchao: exactly the ``nn.Linear`` layers the
filter accepts become ``Float8Linear`` with the handler's config; every other module keeps its type and every
parameter its value."""

from __future__ import annotations

import pytest

from .implementation import Implementation
from .kit.accelerators import prepare_and_compare
from .kit.contract import fp8_arguments
from .kit.models import LLAMA_PROJECTIONS, mixed_model, tiny_llama

RECIPES = {"rowwise": False, "tensorwise": True}  # value: the all-gather flag that selects the recipe


@pytest.mark.parametrize("recipe", sorted(RECIPES))
def test_c10_prepare_converts_exactly_the_accepted_linear_layers(impl: Implementation, recipe: str) -> None:
    """A Sequential mixing eligible, odd-sized, head and look-alike layers. The tensorwise case is the
    config the implementation returns with the all-gather flag set."""
    result = prepare_and_compare(
        impl, fp8_arguments(fp8=True, backend="torchao", all_gather=RECIPES[recipe]), mixed_model()
    )
    # Which layers are eligible is C9's business; C10 checks that prepare follows the filter. The one
    # layer below is eligible under any reading of C9, so the comparison is never vacuous.
    assert "fc_in" in result.converted, f"the plain Linear(64, 64) 'fc_in' was not converted: {result.converted}"


def test_c10_tiny_llama_projections_are_converted_and_lm_head_is_not(impl: Implementation) -> None:
    """A tiny LlamaForCausalLM built from a LlamaConfig (no download)."""
    result = prepare_and_compare(impl, fp8_arguments(fp8=True, backend="auto"), tiny_llama())
    projections = {name for name, m in result.model.named_modules() if name.rsplit(".", 1)[-1] in LLAMA_PROJECTIONS}
    assert projections and projections <= result.converted, f"unconverted: {sorted(projections - result.converted)}"
    assert "lm_head" not in result.converted
