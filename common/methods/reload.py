"""Trained weights put back on a base model, from a run's `adapter/` folder or a pushed Hub repo, with the
fields of the training run's run.json that a generation-only run carries over.

Usage (a run's adapter folder, or a pushed repo id; `load_for_generation` has an example that runs):

    model, carried = load_for_generation(base, "runs/lora/adapter")
    carried["method"]      # 'lora', with the training run's parameter counts and costs
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch

from ..core.hub_access import cache_then_hub, is_hub_id
from ..runs.outputs import RUN_FILE
from .base import load_trained

logger = logging.getLogger(__name__)

CARRIED_FIELDS = ("method", "trainable", "total", "trainable_percent", "tied_lm_head", "train_time_s", "eval_time_s",
                  "train_wall_time_s", "train_steps", "train_loss", "train_tokens", "train_tokens_per_s",
                  "saved_size_bytes", "peak_memory", "learning_curve")


def load_for_generation(base_model, trained_path: str) -> tuple[torch.nn.Module, dict]:
    """`base_model` with a training run's saved adapter or tensors, and the fields of that run's run.json
    (method, parameter counts, training cost) that the new run.json carries over.

    `trained_path` is a run's `adapter/` folder (run.json is read from the folder above it) or the Hub
    id of a pushed run (`--push_to_hub`), whose run.json sits beside the weights.

    Example (a LoRA run on the tests' tiny random GPT-Neo, saved in a temporary folder):
        >>> import tempfile
        >>> from common.core.atomic import write_json
        >>> from common.methods import LoraArguments, count_parameters, get_method, save_trained
        >>> from common.models.tiny import build_tiny_model, build_tokenizer
        >>> vocab = len(build_tokenizer())
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     trained = get_method("lora").build(build_tiny_model(vocab), LoraArguments(r=4), None)
        ...     adapter = str(save_trained(trained, Path(tmp, "lora", "adapter"), "lora", "tiny"))
        ...     write_json(Path(tmp, "lora", RUN_FILE), {"method": "lora", "trainable": 9216, "seed": 0})
        ...     model, carried = load_for_generation(build_tiny_model(vocab), adapter)
        >>> carried == {"method": "lora", "trainable": 9216, "trained_path": adapter}     # no "seed": not carried
        True
        >>> count_parameters(model)
        ParameterCounts(trainable=0, total=207232, tied_lm_head=False)
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
