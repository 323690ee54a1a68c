"""Sequence lengths against the model's positions, checked once the model's config is read and before any
weights load: prompt template + article + (virtual tokens) + summary or generated tokens.

Example:
    >>> from transformers import GPTNeoConfig
    >>> position_limit(GPTNeoConfig(max_position_embeddings=64))
    ('max_position_embeddings', 64)
"""

from __future__ import annotations

from typing import Any

from ..config.arguments import RunConfig, trains
from ..core.cli import ConfigError
from .prompts import make_prompt_parts

POSITION_LIMIT_KEYS = ("max_position_embeddings", "n_positions")


def position_limit(model_config: Any) -> tuple[str, int] | None:
    """The model's longest sequence as (config key, value), or None when its config sets no limit.

    Example:
        >>> from transformers import GPTNeoConfig
        >>> position_limit(GPTNeoConfig(max_position_embeddings=64))
        ('max_position_embeddings', 64)
    """
    for key in POSITION_LIMIT_KEYS:
        value = getattr(model_config, key, None)
        if isinstance(value, int) and value > 0:
            return key, value
    return None


def check_lengths_against_model(cfg: RunConfig, model_config: Any, tokenizer: Any) -> None:
    """The longest training and generation sequences fit the model's positions; else a ConfigError before
    training, instead of an IndexError in the position embedding (for --max_new_tokens, after training).

    Upper bounds: prompt = template tokens + --max_source_length + --num_virtual_tokens; training
    sequence = prompt + --max_target_length; generation = prompt + --max_new_tokens.

    Example (LoRA's default flags, the tiny model's tokenizer: a template of 20 tokens):
        >>> from transformers import GPTNeoConfig
        >>> from common.config.parsing import parse_run_config
        >>> from common.models.tiny import build_tokenizer
        >>> cfg, tokenizer = parse_run_config("lora", []), build_tokenizer()
        >>> check_lengths_against_model(cfg, GPTNeoConfig(max_position_embeddings=1024), tokenizer)   # fits
        >>> check_lengths_against_model(cfg, GPTNeoConfig(max_position_embeddings=64), tokenizer)
        Traceback (most recent call last):
        common.core.cli.ConfigError: --max_source_length 512 + --max_target_length 128 + 20 prompt template tokens
        = 660 positions in a training sequence, beyond the model's max_position_embeddings 64; lower
        --max_source_length or --max_target_length
    """
    limit = position_limit(model_config)
    if limit is None:
        return
    prompt = [("--max_source_length", cfg.data.max_source_length),
              ("--num_virtual_tokens", getattr(cfg.method, "num_virtual_tokens", 0)),
              ("prompt template tokens", _template_tokens(cfg, tokenizer))]
    if trains(cfg.method_name):
        _check_positions([prompt[0], ("--max_target_length", cfg.data.max_target_length), *prompt[1:]],
                         "a training sequence", limit)
    _check_positions([prompt[0], ("--max_new_tokens", cfg.generation.max_new_tokens), *prompt[1:]],
                     "a generated sequence", limit)


def _template_tokens(cfg: RunConfig, tokenizer: Any) -> int:
    try:
        parts = make_prompt_parts(tokenizer, cfg.data)
    except ValueError as error:  # --use_chat_template with a tokenizer that has none
        raise ConfigError(str(error)) from error
    return len(parts.prefix_ids) + len(parts.suffix_ids)


def _check_positions(terms: list[tuple[str, int]], what: str, limit: tuple[str, int]) -> None:
    total = sum(count for _, count in terms)
    if total <= limit[1]:
        return
    shown = [(f"--{name[2:]} {count}" if name.startswith("--") else f"{count} {name}") for name, count in terms
             if count]
    flags = " or ".join(name for name, count in terms if name.startswith("--") and count)
    raise ConfigError(f"{' + '.join(shown)} = {total} positions in {what}, beyond the model's {limit[0]} "
                      f"{limit[1]}; lower {flags}")
