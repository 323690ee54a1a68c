"""Result files: predictions CSV and run.json, always written to a temporary name and renamed.

A crash mid-write never leaves a half-written file under the final name, and an older complete
file stays in place until the new one is whole.

Example:
    >>> write_predictions_csv("runs/lora/predictions_test.csv", ["id-1"], ["An article"], ["Ref."], ["Pred."])
    >>> pd.read_csv("runs/lora/predictions_test.csv").columns.tolist()
    ['id', 'Article', 'Actual Summary', 'Predicted Summary']
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import resource
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable

import pandas as pd
import torch

PREDICTION_COLUMNS = ("id", "Article", "Actual Summary", "Predicted Summary")
PREDICTIONS_FILE = "predictions_test.csv"
RUN_FILE = "run.json"
PACKAGES = ("torch", "transformers", "peft", "accelerate", "datasets", "rouge-score", "safetensors", "tokenizers")


def atomic_write(path: str | Path, write: Callable[[str], None]) -> None:
    """Call `write(tmp_path)` on a temporary file beside `path`, then rename it over `path` atomically.

    On any error the temporary file is removed and an existing `path` is left untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    try:
        write(tmp_name)
        os.chmod(tmp_name, 0o666 & ~_umask())  # mkstemp creates 0600; results are ordinary readable files
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write `text` (UTF-8) to `path` through a temporary file and an atomic rename."""
    atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8", newline=""))


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def write_json(path: str | Path, payload: dict[str, Any]) -> None:
    atomic_write_text(path, json.dumps(payload, indent=2, sort_keys=False, default=str) + "\n")


def write_predictions_csv(path: str | Path, ids: list[str], articles: list[str], references: list[str],
                          predictions: list[str]) -> None:
    """The predictions CSV: `id` plus the classic `Article`, `Actual Summary`, `Predicted Summary` columns."""
    if not len(ids) == len(articles) == len(references) == len(predictions):
        raise ValueError("ids, articles, references and predictions must have the same length")
    frame = pd.DataFrame(dict(zip(PREDICTION_COLUMNS, (ids, articles, references, predictions))))
    atomic_write_text(path, frame.to_csv(index=False))


def package_versions() -> dict[str, str]:
    versions = {"python": sys.version.split()[0], "platform": platform.platform()}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def peak_memory() -> dict[str, Any]:
    """Peak accelerator memory allocated by torch (CUDA) and the process's peak resident memory, in MiB."""
    result: dict[str, Any] = {"peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    if torch.cuda.is_available():
        result["peak_cuda_allocated_mib"] = torch.cuda.max_memory_allocated() / 2**20
    return result


def folder_size_bytes(path: str | Path) -> int:
    """Bytes of all files under `path` (0 when it does not exist)."""
    path = Path(path)
    if not path.exists():
        return 0
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
