"""What an error or log message names: a word of its own, or the package a user must install."""

from __future__ import annotations

import re

_WORD = r"(?<![A-Za-z0-9_]){}(?![A-Za-z0-9_])"


def mentions_word(text: str, word: str) -> bool:
    """Whether ``text`` names ``word`` as a word of its own (case-insensitive)."""
    return re.search(_WORD.format(re.escape(word)), text, flags=re.IGNORECASE) is not None


def mentions_package(text: str, package: str) -> bool:
    """Whether an error message names the package to install: ``torchao`` or ``transformer-engine``.

    The distribution name is required as written (``transformer-engine``): a bare
    ``No module named 'transformer_engine'`` names a module, not what to install.
    """
    return package.lower() in text.lower()


def names_all_gather_and_deepspeed(message: str) -> bool:
    """C16c: the message names the all-gather flag (``fp8_enable_fsdp_float8_all_gather``, the config field
    ``enable_fsdp_float8_all_gather`` or its ``ACCELERATE_FP8_...`` variable) and DeepSpeed, in any letter case and
    wording (``deepspeed_config``, ``DeepSpeedPlugin`` and ``ACCELERATE_USE_DEEPSPEED`` name it too)."""
    text = message.lower()
    return "enable_fsdp_float8_all_gather" in text and "deepspeed" in text
