"""Models in: the base model and tokenizer (local folder, cache or Hub). Trained weights are put back on a
base model by `methods.reload` (from a run folder or a Hub repo); LoRA is merged for generation and export by
`methods.merge`.

Example (the tests' tiny random GPT-Neo in a temporary folder; a run passes `cfg.model`):
    >>> import tempfile
    >>> from common.config.arguments import ModelArguments
    >>> from common.models.tiny import write_tiny_model
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     model_args = ModelArguments(model_name_or_path=str(write_tiny_model(tmp + "/tiny")))
    ...     tokenizer, base = load_tokenizer(model_args), load_base_model(model_args)
    >>> tokenizer.pad_token == tokenizer.eos_token, base.dtype, type(base.transformer.h[0].attn.attention).__name__
    (True, torch.float32, 'SDPASelfAttention')
    >>> load_tokenizer(ModelArguments(model_name_or_path="EleutherAI/gpt-neo-125M"))   # offline, not in the cache
    Traceback (most recent call last):
    common.core.hub_access.HubUnreachableError: Tokenizer 'EleutherAI/gpt-neo-125M' (not in the local cache) needs
    the Hugging Face Hub, but offline mode is set (HF_HUB_OFFLINE=1). ...
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from ..core.cli import ConfigError
from ..core.hub_access import LOCAL_PATH_HINT, HubUnreachableError, cache_then_hub
from .fast_kernels import use_fast_kernels

logger = logging.getLogger(__name__)


def from_pretrained_or_explain(loader, name: str, what: str, **kwargs):
    """`loader.from_pretrained(name)`: a local folder, a cached copy, or the Hub, with a clear error if unreachable."""
    if Path(name).is_dir():
        return loader.from_pretrained(name, **kwargs)
    try:
        return cache_then_hub(lambda local_files_only: loader.from_pretrained(
            name, local_files_only=local_files_only, **kwargs), f"{what.capitalize()} '{name}'")
    except OSError as error:  # the cache was tried first, so this is the Hub's answer
        raise HubUnreachableError(f"Could not load {what} '{name}': {error}. {LOCAL_PATH_HINT}") from error


def load_tokenizer(model_args):
    """The tokenizer, with pad = EOS when the model defines no pad token (GPT-Neo, GPT-2)."""
    tokenizer = from_pretrained_or_explain(AutoTokenizer, model_args.tokenizer_path, "tokenizer")
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    if tokenizer.eos_token_id is None:
        raise ConfigError(f"--tokenizer_name_or_path {model_args.tokenizer_path}: the tokenizer has no EOS token; "
                          "summaries must end with one")
    return tokenizer


def load_base_model(model_args):
    """The base causal LM in fp32 (mixed precision, if any, comes from --bf16/--fp16 autocast), with fused
    kernels where the model has step-by-step ones (`prepare_base_model`)."""
    kwargs = {"dtype": torch.float32}
    if model_args.attn_implementation:
        kwargs["attn_implementation"] = model_args.attn_implementation
    model = from_pretrained_or_explain(AutoModelForCausalLM, model_args.model_name_or_path, "model", **kwargs)
    return prepare_base_model(model, model_args)


def prepare_base_model(model, model_args):
    """The loaded model with the fused kernels of common/models/fast_kernels.py unless --fast_kernels false."""
    if model_args.fast_kernels:
        swapped = use_fast_kernels(model)
        if swapped:
            logger.info("fused kernels in place of the model's own: %s", swapped)
    return model


