"""A tiny random GPT-Neo with a byte-level BPE tokenizer, both built offline.

`python -m common.tiny_model OUT_DIR` writes a folder loadable with `--model_name_or_path OUT_DIR`
(2 blocks, hidden size 64, about 0.2M parameters, tied LM head like the real GPT-Neo). The
tokenizer is trained in a fraction of a second on a small built-in corpus; being byte-level, it
encodes any text. Tests, CI and benchmarks use it; it never touches the network.

Example:
    >>> import tempfile
    >>> from transformers import AutoModelForCausalLM, AutoTokenizer
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     path = write_tiny_model(Path(tmp) / "tiny")
    ...     model, tokenizer = AutoModelForCausalLM.from_pretrained(path), AutoTokenizer.from_pretrained(path)
    >>> model.config.num_layers, model.num_parameters(), tokenizer.eos_token, tokenizer.pad_token
    (2, 198016, '<|endoftext|>', None)
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import GPTNeoConfig, GPTNeoForCausalLM, PreTrainedTokenizerFast

EOS = "<|endoftext|>"
CORPUS = [
    "The council approved the new budget on Tuesday after a long debate about schools and roads.",
    "Police said the driver was taken to hospital with minor injuries following the crash.",
    "Scientists have found that the river's water quality improved over the past ten years.",
    "The team won the championship for the first time since 1998, fans celebrated in the streets.",
    "Officials warned that heavy rain could cause flooding across the north of the country.",
    "The company reported higher profits and said it would hire 500 more workers next year.",
    "A spokesman for the hospital said the patient was in a stable condition.",
    "Summarize the following news article. Article: Summary: TL;DR: Highlights:",
    "CNN reported that the president met with leaders to discuss trade, climate and security.",
    "By . Daily Mail Reporter . PUBLISHED: . UPDATED: . (CNN) -- The mayor said on Monday.",
    "0123456789 !?.,;:'\"()[]-- percent dollars pounds million billion",
]


def build_tokenizer(vocab_size: int = 512) -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer with `<|endoftext|>` as BOS, EOS and UNK (pad is left unset, as in GPT-Neo)."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[EOS],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tokenizer.train_from_iterator(CORPUS * 4, trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token=EOS, eos_token=EOS, unk_token=EOS,
                                   model_max_length=1024)


def tiny_config(vocab_size: int, num_layers: int = 2, hidden_size: int = 64) -> GPTNeoConfig:
    """A GPT-Neo config of the real model's shape family, scaled down (global + local attention)."""
    return GPTNeoConfig(vocab_size=vocab_size, hidden_size=hidden_size, num_layers=num_layers, num_heads=4,
                        attention_types=[[["global", "local"], num_layers // 2]], intermediate_size=4 * hidden_size,
                        max_position_embeddings=1024, window_size=256, bos_token_id=0, eos_token_id=0,
                        tie_word_embeddings=True)


def build_tiny_model(vocab_size: int, seed: int = 0, num_layers: int = 2) -> GPTNeoForCausalLM:
    torch.manual_seed(seed)
    return GPTNeoForCausalLM(tiny_config(vocab_size, num_layers=num_layers)).eval()


def write_tiny_model(out_dir: str | Path, seed: int = 0) -> Path:
    """Write the tiny model and its tokenizer to `out_dir` (safetensors) and return the path."""
    out_dir = Path(out_dir)
    tokenizer = build_tokenizer()
    model = build_tiny_model(len(tokenizer), seed=seed)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return out_dir


def gpt_neo_125m_config() -> GPTNeoConfig:
    """The architecture of EleutherAI/gpt-neo-125M (from its config.json), for random-weight benchmarks."""
    return GPTNeoConfig(vocab_size=50257, hidden_size=768, num_layers=12, num_heads=12,
                        attention_types=[[["global", "local"], 6]], max_position_embeddings=2048, window_size=256,
                        intermediate_size=None, bos_token_id=50256, eos_token_id=50256, tie_word_embeddings=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Write a tiny random GPT-Neo and an offline tokenizer.")
    parser.add_argument("out_dir", help="Folder to write (created if missing).")
    parser.add_argument("--seed", type=int, default=0, help="Seed of the random weights.")
    args = parser.parse_args(argv)
    path = write_tiny_model(args.out_dir, seed=args.seed)
    print(f"Tiny GPT-Neo written to {path} (use --model_name_or_path {path})")

