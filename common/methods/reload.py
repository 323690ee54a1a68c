"""Trained weights put back on a base model, from a run's `adapter/` folder or a pushed Hub repo, with the
fields of the training run's run.json that a generation-only run carries over.

Example:
    >>> model, carried = load_for_generation(base, "runs/lora/adapter")   # or a pushed repo id
    >>> carried["method"]
    'lora'
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
