"""Real-data quality run: the three methods against zero-shot and lead-3 on real CNN/DailyMail rows.

    python benchmarks/quality_run.py                       # about an hour on 2 CPU cores
    python benchmarks/quality_run.py --train_rows 600 --force
    python benchmarks/quality_run.py --generate_only   # new generation settings, no retraining

Uses `../shared/data/cnn_dailymail/` relative to the project root (real CNN/DailyMail 3.0.0 rows). Its
train split has only 100 rows, so the script trains on validation rows and keeps other validation rows as
a dev set; the test rows are the real test split (200 by default, a seeded subset), read by the presets
themselves (`test_file` in `configs/quality/*.yaml`), so `--data_dir` moves the train and dev rows only.
The carved-out files go to `runs/quality/data/` (git-ignored: the data is never copied into the project).
Presets are `configs/quality/*.yaml`; results are compared by `evaluate_all.py` into `runs/quality/comparison/`.

`--generate_only` keeps the trained adapters in `runs/quality/<method>/adapter/` and only generates the
test summaries again, with each preset's current prompt and generation settings, into
`runs/quality/final/<method>/` (`common.zero_shot --trained_path`, so run.json keeps each training run's
costs), then compares those. Use it after tuning generation settings on the dev rows
(`benchmarks/tune_on_dev.py`): the training part of the presets is unchanged, so the adapters are the
ones the presets train.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402

from common import offline_model  # noqa: E402
from common.config import make_parser  # noqa: E402
from common.presets import preset_methods, run_all, run_preset  # noqa: E402
from common.files import atomic_write_text  # noqa: E402

DEFAULT_DATA = ROOT.parent / "shared" / "data" / "cnn_dailymail"
CONFIG_DIR = ROOT / "configs" / "quality"
SPLIT_DIR = ROOT / "runs" / "quality" / "data"
FINAL_DIR = ROOT / "runs" / "quality" / "final"


def carve_splits(validation_file: Path, train_rows: int, dev_rows: int, seed: int) -> None:
    """Seeded, disjoint train and dev subsets of the real validation rows, as JSON Lines."""
    rows = [json.loads(line) for line in validation_file.read_text(encoding="utf-8").splitlines() if line.strip()]
    if train_rows + dev_rows > len(rows):
        raise ValueError(f"{validation_file}: {len(rows)} rows, fewer than --train_rows + --dev_rows "
                         f"({train_rows} + {dev_rows})")
    random.Random(seed).shuffle(rows)
    for name, part in (("train", rows[:train_rows]), ("dev", rows[train_rows:train_rows + dev_rows])):
        atomic_write_text(SPLIT_DIR / f"{name}.jsonl",
                          "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in part))


def preset_test_files() -> set[str]:
    """The test files the presets name (relative to the project root); --data_dir does not change them."""
    return {yaml.safe_load((CONFIG_DIR / f"{method}.yaml").read_text(encoding="utf-8"))["test_file"]
            for method in preset_methods()}


def generation_preset(method: str) -> dict:
    """`configs/quality/<method>.yaml` reduced to what a generation-only run takes, pointed at the adapter."""
    values = yaml.safe_load((CONFIG_DIR / f"{method}.yaml").read_text(encoding="utf-8"))
    accepted = {action.dest for action in make_parser("zero_shot")._actions}
    values = {key: value for key, value in values.items() if key in accepted}
    values["output_dir"] = str((FINAL_DIR / method).relative_to(ROOT))
    if method != "zero_shot":
        values["trained_path"] = f"runs/quality/{method}/adapter"
    return values


def generate_only(model_path: Path) -> list[str]:
    """Test summaries from the trained adapters (and zero-shot) with the presets' generation settings."""
    folders = []
    for number, method in enumerate(preset_methods(), start=1):
        preset = generation_preset(method)
        if method != "zero_shot" and not (ROOT / preset["trained_path"]).is_dir():
            raise SystemExit(f"error: {preset['trained_path']} is missing; run benchmarks/quality_run.py first")
        config_file = FINAL_DIR / f"{method}.yaml"
        atomic_write_text(config_file, yaml.safe_dump(preset, sort_keys=False, allow_unicode=True))
        run_preset("zero_shot", config_file, model_path, force=True,
                   label=f"[{number}/{len(preset_methods())}] {method} (test summaries only)")
        folders.append(preset["output_dir"])
    return folders


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data_dir", default=str(DEFAULT_DATA), help="Folder whose validation.jsonl (real "
                        "CNN/DailyMail rows) is carved into the train and dev rows; default: "
                        "../shared/data/cnn_dailymail relative to the project root (%(default)s). It moves the "
                        "train and dev rows only: the test rows are the presets' test_file (configs/quality/*.yaml: "
                        "../shared/data/cnn_dailymail/test.jsonl), which this flag does not change.")
    parser.add_argument("--train_rows", type=int, default=320, help="Validation rows used for training.")
    parser.add_argument("--dev_rows", type=int, default=64, help="Other validation rows kept as a dev set.")
    parser.add_argument("--seed", type=int, default=0, help="Seed of the train/dev carve-out.")
    parser.add_argument("--force", action="store_true", help="Rerun even where a finished run matches.")
    parser.add_argument("--generate_only", action="store_true", help="Reuse the trained adapters; generate the test "
                        "summaries again with the presets' generation settings into runs/quality/final/.")
    args = parser.parse_args(argv)
    os.chdir(ROOT)
    data_dir = Path(args.data_dir)
    if not (data_dir / "validation.jsonl").is_file():
        raise SystemExit(f"error: {data_dir} must hold validation.jsonl (real CNN/DailyMail rows); pass --data_dir")
    missing = sorted(path for path in preset_test_files() if not (ROOT / path).is_file())
    if missing:
        raise SystemExit(f"error: the presets in {CONFIG_DIR.relative_to(ROOT)}/ read their test rows from "
                         f"{', '.join(missing)}, which is missing (--data_dir does not move the test rows)")
    start = time.perf_counter()
    if args.generate_only:
        folders = generate_only(offline_model.ensure_model())
    else:
        carve_splits(data_dir / "validation.jsonl", args.train_rows, args.dev_rows, args.seed)
        folders = run_all(CONFIG_DIR, offline_model.ensure_model(), args.force)
    import evaluate_all

    evaluate_all.main([*folders, "--output_dir", "runs/quality/comparison"])
    print(f"Quality run finished in {time.perf_counter() - start:.0f} s", flush=True)


if __name__ == "__main__":
    main()
