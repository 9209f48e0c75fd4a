"""A tiny Llama, its tokenizer and an alpaca-style data set, built locally (no download) for LLaMA-Factory runs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

#: Words of the data set; with the special tokens they make the whole vocabulary (64 entries at most).
WORDS = (
    "the",
    "cat",
    "sat",
    "on",
    "mat",
    "dog",
    "ran",
    "to",
    "park",
    "a",
    "bird",
    "sang",
    "in",
    "tree",
    "what",
    "did",
    "do",
    "where",
    "is",
    "it",
    "who",
    "see",
    "saw",
    "red",
    "blue",
    "green",
    "big",
    "small",
    "one",
    "two",
    "three",
    "four",
    "five",
    "yes",
    "no",
    "Human",
    "Assistant",
    ":",
    ".",
    "?",
)
SPECIAL = ("<unk>", "<s>", "</s>", "<pad>")
VOCAB_SIZE = 64
DATASET = "tiny_alpaca"


def build_tokenizer(directory: Path) -> Any:
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {token: index for index, token in enumerate([*SPECIAL, *WORDS])}
    assert len(vocab) <= VOCAB_SIZE, len(vocab)
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token="<s>", eos_token="</s>", pad_token="<pad>", unk_token="<unk>"
    )
    tokenizer.save_pretrained(directory)
    return tokenizer


def build_model(directory: Path, seed: int = 0) -> None:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=VOCAB_SIZE,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=3,
        tie_word_embeddings=False,
    )
    LlamaForCausalLM(config).save_pretrained(directory)


def build_dataset(directory: Path, count: int = 32) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    colours, animals = ("red", "blue", "green"), ("cat", "dog", "bird")
    rows = [
        {
            "instruction": f"what did the {animals[i % 3]} see ?",
            "input": "",
            "output": f"the {animals[i % 3]} saw a {colours[i % 3]} tree in the park .",
        }
        for i in range(count)
    ]
    (directory / f"{DATASET}.json").write_text(json.dumps(rows))
    info = {DATASET: {"file_name": f"{DATASET}.json"}}
    (directory / "dataset_info.json").write_text(json.dumps(info))


def build_all(root: Path) -> dict[str, Path]:
    """The model folder (weights, config, tokenizer) and the data set folder under ``root``."""
    model_dir, data_dir = root / "tiny-llama", root / "data"
    model_dir.mkdir(parents=True, exist_ok=True)
    build_tokenizer(model_dir)
    build_model(model_dir)
    build_dataset(data_dir)
    return {"model": model_dir, "data": data_dir}
