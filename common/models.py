"""Models in and out: the base model and tokenizer (local folder, cache or Hub), trained weights put
back on a base model (from a run folder or a Hub repo), LoRA merged for generation and export.

Example:
    >>> tokenizer, base = load_tokenizer(cfg.model), load_base_model(cfg.model)
    >>> model, carried = load_for_generation(base, "runs/lora/adapter")   # or a pushed repo id
    >>> carried["method"]
    'lora'
"""

from __future__ import annotations

import copy
import json
import logging
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from .cli import ConfigError
from .fast_kernels import use_fast_kernels
from .hub import LOCAL_PATH_HINT, HubUnreachableError, cache_then_hub, is_hub_id
from .methods import load_trained
from .run_files import RUN_FILE

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
    """The loaded model with the fused kernels of common/fast_kernels.py unless --fast_kernels false."""
    if model_args.fast_kernels:
        swapped = use_fast_kernels(model)
        if swapped:
            logger.info("fused kernels in place of the model's own: %s", swapped)
    return model


def merged_for_generation(model):
    """A LoRA model merged into a copy of its weights, else the model itself.

    Same logits up to float rounding (tests/test_resume_export_hub.py), without the two extra adapter
    matmuls per linear layer at every decoding step (about 8% of CPU generation time on GPT-Neo-125M).
    """
    from peft import PeftModel

    if isinstance(model, PeftModel) and model.active_peft_config.peft_type.value == "LORA":
        return copy.deepcopy(model).merge_and_unload()
    return model


def export_merged(merged, tokenizer, out_dir: str) -> Path:
    """Write a LoRA model merged by `merged_for_generation` as plain weights (AutoModelForCausalLM alone)."""
    from peft import PeftModel

    if isinstance(merged, PeftModel):
        raise ValueError("--merge_and_export applies to LoRA adapters only")
    merged.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    return Path(out_dir)


CARRIED_FIELDS = ("method", "trainable", "total", "trainable_percent", "tied_lm_head", "train_time_s", "eval_time_s",
                  "train_wall_time_s", "train_steps", "train_loss", "train_tokens", "train_tokens_per_s",
                  "saved_size_bytes", "peak_memory")


def load_for_generation(base_model, trained_path: str) -> tuple[torch.nn.Module, dict]:
    """`base_model` with a training run's saved adapter or tensors, and the fields of that run's run.json
    (method, parameter counts, training cost) that the new run.json carries over.

    `trained_path` is a run's `adapter/` folder (run.json is read from the folder above it) or the Hub
    id of a pushed run (`--push_to_hub`), whose run.json sits beside the weights.

    Example:
        >>> model, carried = load_for_generation(base, "runs/lora/adapter")
        >>> carried["method"], carried["trained_path"]
        ('lora', 'runs/lora/adapter')
    """
    folder = resolve_trained_path(trained_path)
    model = load_trained(base_model, folder)
    source = next((p for p in (folder / RUN_FILE, folder.parent / RUN_FILE) if p.is_file()), None)
    run = json.loads(source.read_text(encoding="utf-8")) if source else {}
    if not run:
        logger.warning("no run.json in or above %s: run.json will not carry the training run's method and costs",
                       folder)
    return model, {**{k: run[k] for k in CARRIED_FIELDS if k in run}, "trained_path": str(trained_path)}


def resolve_trained_path(trained_path: str) -> Path:
    """A local folder as is; a Hub repo id from the local cache, else downloaded."""
    if Path(trained_path).is_dir():
        return Path(trained_path)
    if not is_hub_id(trained_path):
        raise FileNotFoundError(f"--trained_path {trained_path}: no such folder (nor a Hub repo id)")
    from huggingface_hub import snapshot_download

    return Path(cache_then_hub(lambda local_files_only: snapshot_download(
        trained_path, local_files_only=local_files_only), f"Trained weights '{trained_path}'"))
