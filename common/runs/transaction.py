"""A run folder as a transaction: the results of a run appear together or not at all.

A finished run is `OUTPUT_DIR/{adapter/, predictions_test.csv, run.json}`. A new run writes its results
into `OUTPUT_DIR/.staging/` and then commits them:

1. everything is written to `.staging/` (run.json last);
2. `.commit` is written (atomically): from here on the new results are the run's, whatever happens;
3. each old result moves to `.trash/` and the staged one takes its place (run.json last);
4. `.trash/`, `.staging/` and `.commit` are removed.

`recover` finishes step 3-4 when a kill left a `.commit` behind (roll forward) and discards a
`.staging/` without one (the old results were never touched), so a killed run leaves either the
previous complete results or the new ones, never a mix; checkpoints (`checkpoint-*/`, written by the
Trainer) are left alone. Every writer calls `recover` first; so does `finished_run`.

Example (a run replacing an earlier one, in a temporary folder instead of runs/lora):
    >>> import tempfile
    >>> from common.core.atomic import write_json
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     run_dir = Path(tmp, "lora")
    ...     write_json(run_dir / RUN_FILE, {"method": "lora", "seed": 1})        # the earlier run
    ...     staging = begin(run_dir)                                            # .staging/, empty
    ...     (staging / ADAPTER_DIR).mkdir()
    ...     (staging / PREDICTIONS_FILE).touch()
    ...     write_json(staging / RUN_FILE, {"method": "lora", "seed": 2})
    ...     json.loads((run_dir / RUN_FILE).read_text())["seed"]                # still the earlier run's
    ...     commit(run_dir)                                                     # the three appear together
    ...     sorted(p.name for p in run_dir.iterdir()), finished_run(run_dir)["seed"]
    1
    (['adapter', 'predictions_test.csv', 'run.json'], 2)
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from ..core.cli import ConfigError
from ..core.atomic import atomic_write_text
from .outputs import PREDICTIONS_FILE, RUN_FILE

ADAPTER_DIR = "adapter"
RESULT_NAMES = (ADAPTER_DIR, PREDICTIONS_FILE, RUN_FILE)  # run.json last: it marks a finished run
STAGING, TRASH, JOURNAL = ".staging", ".trash", ".commit"


def begin(out_dir: Path) -> Path:
    """An empty `.staging/` folder for the new results (after recovering from an earlier kill)."""
    recover(out_dir)
    staging = Path(out_dir) / STAGING
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    return staging


def commit(out_dir: Path) -> None:
    """Make the staged results the run's results (see the module docstring for the steps)."""
    out_dir = Path(out_dir)
    produced = [name for name in RESULT_NAMES if (out_dir / STAGING / name).exists()]
    if RUN_FILE not in produced:
        raise RuntimeError(f"{out_dir / STAGING}: no {RUN_FILE}, nothing to commit")
    atomic_write_text(out_dir / JOURNAL, json.dumps({"produced": produced}) + "\n")
    _swap_in(out_dir, produced)


def recover(out_dir: Path) -> None:
    """Finish a commit that a kill interrupted; drop staged results that were never committed."""
    out_dir = Path(out_dir)
    journal = out_dir / JOURNAL
    if journal.is_file():
        _swap_in(out_dir, json.loads(journal.read_text(encoding="utf-8"))["produced"])
    shutil.rmtree(out_dir / STAGING, ignore_errors=True)


def _swap_in(out_dir: Path, produced: list[str]) -> None:
    """Step 3-4, idempotent: an entry already swapped in is no longer in `.staging/`."""
    staging, trash = out_dir / STAGING, out_dir / TRASH
    trash.mkdir(exist_ok=True)
    for name in RESULT_NAMES:
        new, old = staging / name, out_dir / name
        if name in produced and not new.exists():
            continue  # swapped in before the kill
        if old.exists():
            _remove(trash / name)
            os.replace(old, trash / name)
        if name in produced:
            os.replace(new, old)
    shutil.rmtree(trash, ignore_errors=True)
    shutil.rmtree(staging, ignore_errors=True)
    (out_dir / JOURNAL).unlink(missing_ok=True)


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def finished_run(out_dir: Path) -> dict | None:
    """The run.json of the finished run in `out_dir` (None when there is none), after any recovery."""
    out_dir = Path(out_dir)
    if not out_dir.is_dir():
        return None
    recover(out_dir)
    path = out_dir / RUN_FILE
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}


def check_output_dir(out_dir: Path, overwrite: bool, resuming: bool) -> None:
    """Refuse to start a run into a folder that holds a finished one, unless asked to replace or resume it."""
    run = finished_run(out_dir)
    if run is None or overwrite or resuming:
        return
    raise ConfigError(f"--output_dir {out_dir} holds a finished {run.get('method', '')} run (run.json of "
                      f"{run.get('finished_at', 'unknown time')}); pass --overwrite_output_dir to replace it once the "
                      "new run is complete, or choose another --output_dir")


def remove_checkpoints(out_dir: Path) -> list[str]:
    """Delete `checkpoint-*/` of an earlier run (a fresh run with --overwrite_output_dir), so that
    `--resume_from_checkpoint last` can never pick one of them later; returns their names."""
    names = sorted(p.name for p in Path(out_dir).glob("checkpoint-*") if p.is_dir())
    for name in names:
        shutil.rmtree(Path(out_dir) / name)
    return names
