"""The files of a run, written and read in one place: predictions_test.csv and run.json.

Writing: `write_predictions_csv` (the `id` column plus the classic `Article`, `Actual Summary`,
`Predicted Summary`), and what run.json records about the machine (`package_versions`, `peak_memory`);
both files go through `core.atomic.atomic_write`. Reading: the predictions CSV in either layout (ours, or the
classic one with only `Predicted Summary` and `Actual Summary`, aligned by row order), run.json with every
field the report reads checked, and the run folders under a folder at any depth. Errors name the file.

Example (in a temporary folder instead of runs/lora):
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     path = Path(tmp, "lora", PREDICTIONS_FILE)
    ...     write_predictions_csv(path, ["id-1"], ["An article"], ["Ref."], ["Pred."], stopped=["eos"])
    ...     read_predictions_csv(path).values.tolist()
    [['id-1', 'An article', 'Ref.', 'Pred.', 'eos']]
"""

from __future__ import annotations

import importlib.metadata
import json
import math
import platform
import resource
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from ..core.cli import UserError
from ..core.atomic import atomic_write_text

PREDICTION_COLUMNS = ("id", "Article", "Actual Summary", "Predicted Summary")
STOPPED_COLUMN = "Stopped"  # optional: how each summary ended
STOPPED = {False: "eos", True: "limit"}  # keyed by "cut at max_new_tokens"
PREDICTIONS_FILE = "predictions_test.csv"
RUN_FILE = "run.json"
PACKAGES = ("torch", "transformers", "peft", "accelerate", "datasets", "rouge-score", "safetensors", "tokenizers")
REQUIRED_COLUMNS = ("Predicted Summary", "Actual Summary")
NUMBER = "a number >= 0"
PEAK_MEMORY_FIELDS = ("peak_rss_mib", "peak_cuda_allocated_mib")  # inside run.json's "peak_memory" object
SHOWN_CHARS = 40  # of a wrong value quoted in a warning


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value >= 0


def _text(value) -> bool:
    return isinstance(value, str)


def _flag(value) -> bool:
    return isinstance(value, bool)


RUN_FIELDS = {  # the run.json fields the report reads, in its column order: (check, what it must be)
    "method": (_text, "text"), "trainable": (_number, NUMBER), "total": (_number, NUMBER),
    "trainable_percent": (_number, NUMBER), "tied_lm_head": (_flag, "true or false"),
    "train_time_s": (_number, NUMBER), "eval_time_s": (_number, NUMBER), "train_wall_time_s": (_number, NUMBER),
    "train_tokens_per_s": (_number, NUMBER), "saved_size_bytes": (_number, NUMBER),
    "generation_tokens_per_s": (_number, NUMBER), "generation_precision": (_text, "text"), "base_model": (_text, "text"),
}


class InputError(UserError, ValueError):
    """A prediction file or run folder that cannot be evaluated; the message names the file."""


def write_predictions_csv(path: str | Path, ids: list[str], articles: list[str], references: list[str],
                          predictions: list[str], stopped: list[str] | None = None) -> None:
    """The predictions CSV: `id` plus the classic `Article`, `Actual Summary`, `Predicted Summary` columns,
    and `Stopped` (`eos`: the model ended the summary; `limit`: cut at max_new_tokens) when given."""
    columns = [ids, articles, references, predictions] + ([stopped] if stopped is not None else [])
    if len({len(column) for column in columns}) != 1:
        raise ValueError("ids, articles, references, predictions (and stopped) must have the same length")
    frame = pd.DataFrame(dict(zip((*PREDICTION_COLUMNS, STOPPED_COLUMN), columns)))
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


def read_predictions_csv(path: str | Path) -> pd.DataFrame:
    """The CSV as text columns (missing cells stay NaN), checked for the needed columns and at least one row.

    Example:
        >>> read_predictions_csv("missing.csv")
        Traceback (most recent call last):
        common.runs.outputs.InputError: missing.csv: file not found
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: file not found")
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
    except pd.errors.EmptyDataError:
        raise InputError(f"{path}: file is empty (no header, no rows)") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as error:
        raise InputError(f"{path}: not a readable CSV ({error})") from None
    missing = [column for column in REQUIRED_COLUMNS if column not in frame.columns]
    if missing:
        raise InputError(f"{path}: missing column(s) {missing}; found {frame.columns.tolist()}, "
                         f"need {list(REQUIRED_COLUMNS)}")
    if frame.empty:
        raise InputError(f"{path}: no rows (header only)")
    return frame


def csv_ids(frame: pd.DataFrame, path: str | Path) -> list[str] | None:
    """The `id` column as strings, or None when there is none; blank or repeated ids are an error.

    Example:
        >>> csv_ids(pd.DataFrame({"id": ["a", "b"]}), "p.csv")
        ['a', 'b']
    """
    if "id" not in frame.columns:
        return None
    ids = frame["id"]
    if ids.isna().any():
        raise InputError(f"{path}: {int(ids.isna().sum())} row(s) have no id")
    repeated = ids[ids.duplicated()].tolist()
    if repeated:
        raise InputError(f"{path}: repeated id(s), e.g. {repeated[:3]}")
    return ids.astype(str).tolist()


def read_run_json(path: str | Path) -> dict:
    """run.json as a dict, with the file named in any error.

    Example (in a temporary folder instead of runs/lora):
        >>> import tempfile
        >>> tmp = tempfile.TemporaryDirectory()
        >>> _ = Path(tmp.name, RUN_FILE).write_text('{"method": "lora"}')
        >>> read_run_json(Path(tmp.name, RUN_FILE))["method"]
        'lora'
        >>> _ = Path(tmp.name, "list.json").write_text("[1, 2]")
        >>> read_run_json(Path(tmp.name, "list.json"))
        Traceback (most recent call last):
        common.runs.outputs.InputError: /.../list.json: expected a JSON object, got list
        >>> tmp.cleanup()
        >>> read_run_json("runs/nowhere/run.json")
        Traceback (most recent call last):
        common.runs.outputs.InputError: runs/nowhere/run.json: file not found (each run folder needs its run.json; pass
        the CSV path itself to score predictions without costs)
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: file not found (each run folder needs its {RUN_FILE}; pass the CSV "
                         "path itself to score predictions without costs)")
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise InputError(f"{path}: not valid JSON ({error})") from None
    if not isinstance(payload, dict):
        raise InputError(f"{path}: expected a JSON object, got {type(payload).__name__}")
    return payload


def checked_run(run: dict, path: str | Path) -> tuple[dict, list[str]]:
    """`run` with each field the report reads (RUN_FIELDS, peak_memory) set to None where it is absent,
    NaN or of the wrong type, and one warning per wrong field naming the file and the field: a bad
    cost field shows that cost as missing instead of costing the system its ROUGE row.

    Example:
        >>> run, warnings = checked_run({"method": "lora", "trainable": "many"}, "runs/lora/run.json")
        >>> run["trainable"], warnings
        (None, ['runs/lora/run.json: "trainable" is "many", not a number >= 0; shown as missing'])
    """
    checked, warnings = dict(run), []
    for name, (valid, expected) in RUN_FIELDS.items():
        checked[name] = _checked(run.get(name), valid, f"{path}: \"{name}\"", expected, warnings)
    memory = run.get("peak_memory")
    if memory is not None and not isinstance(memory, dict):
        warnings.append(f"{path}: \"peak_memory\" is {_shown(memory)}, not an object; shown as missing")
        memory = None
    if memory is not None:
        memory = {**memory, **{name: _checked(memory.get(name), _number, f"{path}: \"peak_memory.{name}\"",
                                              NUMBER, warnings) for name in PEAK_MEMORY_FIELDS}}
    checked["peak_memory"] = memory
    return checked, warnings


def _checked(value, valid, where: str, expected: str, warnings: list[str]):
    """`value` if valid; None if null or NaN (not measured); else None and a warning."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if valid(value):
        return value
    warnings.append(f"{where} is {_shown(value)}, not {expected}; shown as missing")
    return None


def _shown(value) -> str:
    text = json.dumps(value)
    return text if len(text) <= SHOWN_CHARS else text[:SHOWN_CHARS] + "..."


def text_column(frame: pd.DataFrame, column: str) -> list[str]:
    """A column as a list of str, NaN as ''.

    Example:
        >>> text_column(pd.DataFrame({"a": ["x", None]}), "a")
        ['x', '']
    """
    return ["" if pd.isna(value) else str(value) for value in frame[column].tolist()]


def discover_run_dirs(runs_dir: str | Path, output_dir: str | Path) -> list[Path]:
    """Every folder below `runs_dir`, at any depth, that holds predictions_test.csv (a run), sorted.

    Not searched: hidden folders, `output_dir` and everything under it (wherever it is, so an older
    report is never read as a run), and the subfolders of a run: `adapter/`, `hub_upload/` and
    `checkpoint-*` are the run's own files, so a run saved inside another run's folder is not found
    (pass it as an input). `runs_dir` itself is never a run. Symlinked folders are followed once.

    Example (a runs/ tree in a temporary folder; every folder listed holds a predictions_test.csv):
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as runs:
        ...     for folder in ("gpt-neo-125m/lora", "gpt-neo-125m/zero_shot", "lora", "lora/checkpoint-10",
        ...                    "comparison/old", ".hidden"):
        ...         Path(runs, folder).mkdir(parents=True)
        ...         Path(runs, folder, PREDICTIONS_FILE).touch()
        ...     [run_name(path, runs) for path in discover_run_dirs(runs, Path(runs, "comparison"))]
        ['gpt-neo-125m/lora', 'gpt-neo-125m/zero_shot', 'lora']
    """
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        return []
    return sorted(_find_runs(runs_dir, Path(output_dir).resolve(), {runs_dir.resolve()}))


def _find_runs(folder: Path, output: Path, seen: set[Path]) -> list[Path]:
    """Runs below `folder`: a subfolder with the predictions CSV is one, any other is searched in turn."""
    runs = []
    for child in _subfolders(folder):
        real = child.resolve()
        if child.name.startswith(".") or real == output or real in seen:
            continue
        seen.add(real)  # a symlink back up the tree is not walked twice
        runs.extend([child] if (child / PREDICTIONS_FILE).is_file() else _find_runs(child, output, seen))
    return runs


def _subfolders(folder: Path) -> list[Path]:
    """The folders in `folder`, sorted; none when it cannot be listed (no permission)."""
    try:
        return sorted(path for path in folder.iterdir() if path.is_dir())
    except OSError:
        return []


def run_name(run_dir: str | Path, runs_dir: str | Path) -> str:
    """A discovered run's name: its path relative to `runs_dir`, with forward slashes.

    Example:
        >>> run_name("runs/gpt-neo-125m/lora", "runs")
        'gpt-neo-125m/lora'
    """
    return Path(run_dir).relative_to(runs_dir).as_posix()
