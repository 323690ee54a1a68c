"""Real-data quality run: eight trained systems on equal terms against zero-shot and lead-3, on two real test sets.

    python benchmarks/quality_run.py                 # about 2 h on a quiet 2-core Xeon @ 2.50GHz (stages measured)
    python benchmarks/quality_run.py --carve_only    # only write the splits (for benchmarks/tune_on_dev.py)
    python benchmarks/quality_run.py --generate_only # new generation settings, no retraining
    python benchmarks/quality_run.py --recheck       # regenerate what is here with the current code: same ROUGE?

Reads real CNN/DailyMail 3.0.0 rows from `--data_dir` (default `../shared/data/cnn_dailymail/` relative
to the project root) and carves them, seeded and disjoint (`benchmarks/quality_data.py`), into
`runs/quality/data/` (git-ignored: the data is never copied into the project):

- `train.jsonl`: validation rows not held out, plus the 100 train rows (1,458 rows by default);
- `dev.jsonl`: 100 validation rows, half CNN and half DailyMail, for every choice made before testing;
- `test_cnn.jsonl`: the 500 test rows (HF test[0:500], CNN stories only, short highlights);
- `test_mixed.jsonl`: 300 validation rows, DailyMail and CNN in the full test split's proportion (90/10).
  The dev rows come from the same validation pool (disjoint rows): choices made on them may fit this test
  set better than unseen data; the CNN test set shares no pool with them.

Each system's preset in `configs/quality/` (lora, dora, rslora, ia3, prefix_tuning, soft_prompt, finetune,
full_finetune: one file each, the same budget of 96 train examples, prompt, precision and decoding) trains on
the train rows, scoring a learning curve on the dev rows (loss on 32, greedy ROUGE on 8), into
`runs/quality/<system>/lr_<rate>/`; systems listed in `benchmarks/dev_variants/learning_rates.yaml` train once
per rate there and keep the run with the lowest final dev loss (`benchmarks/results/quality/dev/learning_rates.json`).
Each kept run (and zero-shot, `configs/quality/zero_shot.yaml`) then summarises the first 80 of a seeded order
of the CNN test rows and a seeded 100 of the mixed test rows (`CNN_TEST_USED`, `MIXED_TEST_USED`) as
generation-only runs from its saved weights (`common.predict --trained_path`; run.json keeps the training
run's costs and learning curve) into `runs/quality/test/<test-set>/<system>/`, with 4 beams and repeated
3-grams blocked. `evaluate_all.py` compares each test set into `runs/quality/comparison/<test-set>/`, and its
`comparison.json`, `comparison.md`, learning curves, Pareto plot and `peft_results/` (PEFT's field names) are
copied to `benchmarks/results/quality/<test-set>/`, where they are committed.

`--generate_only` keeps the trained weights and regenerates both test sets with each preset's current prompt and
generation settings (reusing a finished run of the same configuration unless `--force`), then compares those.
`benchmarks/decoding_ablation.py` regenerates a test set with another decoding beside the presets' runs.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402

from benchmarks.quality_data import SPLITS, carve  # noqa: E402
from common.models import offline as offline_model  # noqa: E402
from common.config.arguments import GENERATION_ONLY
from common.config.parsing import make_parser  # noqa: E402
from common.core.atomic import atomic_write_text  # noqa: E402
from common.comparison.peft_results import PEFT_RESULTS_DIR  # noqa: E402
from common.methods import method_for, recorded_names  # noqa: E402
from common.pipeline.presets import run_preset  # noqa: E402

DEFAULT_DATA = ROOT.parent / "shared" / "data" / "cnn_dailymail"
CONFIG_DIR = ROOT / "configs" / "quality"
SPLIT_DIR = ROOT / "runs" / "quality" / "data"
RUNS_DIR = ROOT / "runs" / "quality"
RESULTS_DIR = ROOT / "benchmarks" / "results" / "quality"
TEST_SETS = {"cnn": "test_cnn", "mixed": "test_mixed"}
COPIED = ("comparison.json", "comparison.md", "learning_curves.png", "pareto.png")
MIXED_TEST_USED = 100  # a seeded subset of the 300 held-out mixed rows (CPU time)
CNN_TEST_USED = 80  # the first 80 of a seeded order of the 500 CNN test rows (CPU time)
RATES_FILE = ROOT / "benchmarks" / "dev_variants" / "learning_rates.yaml"
SELECTED_FILE = "selected.json"  # runs/quality/<system>/selected.json: the run kept for the test sets


def read_rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def write_splits(data_dir: Path, args: argparse.Namespace) -> dict[str, int]:
    """Carve `data_dir`'s real rows into runs/quality/data/<split>.jsonl; returns the row counts."""
    splits = carve(read_rows(data_dir / "validation.jsonl"), read_rows(data_dir / "train.jsonl"),
                   read_rows(data_dir / "test.jsonl"), mixed_test_rows=args.mixed_test_rows,
                   dev_rows=args.dev_rows, cnn_test_rows=args.cnn_test_rows, seed=args.seed)
    for name in SPLITS:
        atomic_write_text(SPLIT_DIR / f"{name}.jsonl",
                          "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in splits[name]))
    counts = {name: len(rows) for name, rows in splits.items()}
    print("Splits in runs/quality/data/: " + ", ".join(f"{name} {count}" for name, count in counts.items()), flush=True)
    return counts


def systems() -> list[str]:
    """The systems compared: each recorded name (method or variant, registry order) with a preset in
    configs/quality/, then zero-shot."""
    return [name for name in recorded_names() if (CONFIG_DIR / f"{name}.yaml").is_file()] + [GENERATION_ONLY]


def preset_dir(test_set: str) -> Path:
    """Where a quality run keeps each system's generation-only runs on `test_set` (`<folder>/<system>/`)."""
    return RUNS_DIR / "test" / test_set


def preset_values(system: str) -> dict:
    """The fields of `configs/quality/<system>.yaml`, as written (no defaults filled in)."""
    return yaml.safe_load((CONFIG_DIR / f"{system}.yaml").read_text(encoding="utf-8"))


def adapter_path(system: str) -> str:
    """The saved weights a system's test summaries come from: its kept run's `adapter/` (selected.json, written
    by `train_system`), relative to the project root."""
    selected = RUNS_DIR / system / SELECTED_FILE
    if selected.is_file():
        return json.loads(selected.read_text(encoding="utf-8"))["run"] + "/adapter"
    return f"runs/quality/{system}/adapter"


def generation_preset(system: str, test_split: str, output_dir: Path, **overrides) -> dict:
    """`configs/quality/<system>.yaml` reduced to what a generation-only run takes, on `test_split`'s rows
    (`CNN_TEST_USED` or `MIXED_TEST_USED` of them), pointed at the system's kept weights; `overrides` (e.g.
    another decoding) come last."""
    values = preset_values(system)
    accepted = {action.dest for action in make_parser(GENERATION_ONLY)._actions}
    values = {key: value for key, value in values.items() if key in accepted and key != "eval_num_beams"}
    values.update(test_file=f"runs/quality/data/{test_split}.jsonl", output_dir=str(output_dir.relative_to(ROOT)),
                  eval_strategy="no", num_eval_generate=0,  # nothing is trained, so no curve (nor its beams)
                  max_test_samples=MIXED_TEST_USED if test_split == TEST_SETS["mixed"] else CNN_TEST_USED)
    if system != GENERATION_ONLY:
        values["trained_path"] = adapter_path(system)
    return {**values, **overrides}


def generate(test_set: str, folder: Path, model_path: Path, force: bool, methods: list[str] | None = None,
             suffix: str = "", **overrides) -> list[str]:
    """Summaries of one test set from the kept weights of `methods` (systems; default: every one, and
    zero-shot), as generation-only runs in `folder/<system><suffix>/`; `overrides` change their presets
    (`generation_preset`)."""
    methods = methods or systems()
    folders = []
    for number, method in enumerate(methods, start=1):
        name = f"{method}{suffix}"
        preset = generation_preset(method, TEST_SETS[test_set], folder / name, **overrides)
        if method != GENERATION_ONLY and not (ROOT / preset["trained_path"]).is_dir():
            raise SystemExit(f"error: {preset['trained_path']} is missing; run benchmarks/quality_run.py first")
        config_file = folder / f"{name}.yaml"
        atomic_write_text(config_file, yaml.safe_dump(preset, sort_keys=False, allow_unicode=True))
        run_preset(GENERATION_ONLY, config_file, model_path, force=force,
                   label=f"[{number}/{len(methods)}] {name} ({test_set} test rows)")
        folders.append(preset["output_dir"])
    return folders


def learning_rates(system: str) -> list[float]:
    """The rates `system` trains with: its list in learning_rates.yaml, else its preset's own rate."""
    grid = yaml.safe_load(RATES_FILE.read_text(encoding="utf-8")) or {}
    if system in grid:
        return [float(rate) for rate in grid[system]]
    return [float(preset_values(system)["learning_rate"])]


def rate_folder(system: str, rate: float) -> Path:
    """runs/quality/<system>/lr_<rate>/, e.g. lr_0.0003."""
    return RUNS_DIR / system / f"lr_{rate:g}"


def final_dev_loss(run: dict) -> float:
    """The dev loss at a finished run's last evaluation (its learning curve's last point)."""
    loss = run["learning_curve"]["points"][-1].get("dev_loss")
    if loss is None:
        raise SystemExit(f"error: the run of {run['method']} recorded no dev loss; train it again with --force")
    return loss


def train_system(system: str, model_path: Path, force: bool, label: str) -> dict:
    """Train `system`'s preset once per rate (a finished run of the same configuration is reused) and keep
    the one with the lowest final dev loss: written to runs/quality/<system>/selected.json; returns the
    search's record (every rate's dev loss, dev ROUGE-Lsum and training time)."""
    base = preset_values(system)
    tried = []
    for rate in learning_rates(system):
        folder = rate_folder(system, rate)
        config_file = RUNS_DIR / system / f"lr_{rate:g}.yaml"
        preset = {**base, "learning_rate": rate, "output_dir": str(folder.relative_to(ROOT))}
        atomic_write_text(config_file, yaml.safe_dump(preset, sort_keys=False, allow_unicode=True))
        run_preset(method_for(system).name, config_file, model_path, force=force, label=f"{label} lr {rate:g}")
        run = json.loads((folder / "run.json").read_text(encoding="utf-8"))
        last = run["learning_curve"]["points"][-1]
        tried.append({"learning_rate": rate, "run": str(folder.relative_to(ROOT)), "dev_loss": final_dev_loss(run),
                      "dev_rougeLsum": last["rougeLsum"], "train_time_s": run["train_time_s"]})
    kept = min(tried, key=lambda entry: entry["dev_loss"])
    atomic_write_text(RUNS_DIR / system / SELECTED_FILE, json.dumps({"run": kept["run"]}) + "\n")
    return {"system": system, "kept_learning_rate": kept["learning_rate"], "tried": tried}


def write_search(records: list[dict]) -> None:
    """benchmarks/results/quality/dev/learning_rates.json: every system's rates, dev losses and the kept one."""
    report = {"rates_file": str(RATES_FILE.relative_to(ROOT)), "dev_loss_rows": 32, "dev_rouge_rows": 8,
              "criterion": "lowest dev loss at the last evaluation (step 24, 96 examples)",
              "load_average": os.getloadavg(), "systems": records}
    atomic_write_text(RESULTS_DIR / "dev" / "learning_rates.json", json.dumps(report, indent=2) + "\n")


def compare(test_set: str, folders: list[str]) -> None:
    """evaluate_all.py over one test set's runs; its comparison and plots are copied to the results folder."""
    import evaluate_all

    output = RUNS_DIR / "comparison" / test_set
    evaluate_all.main([*folders, "--output_dir", str(output.relative_to(ROOT))])
    (RESULTS_DIR / test_set).mkdir(parents=True, exist_ok=True)
    for name in COPIED:
        if (output / name).is_file():
            shutil.copyfile(output / name, RESULTS_DIR / test_set / name)
        else:  # e.g. no learning curve among these runs: an older plot would describe other runs
            (RESULTS_DIR / test_set / name).unlink(missing_ok=True)
    shutil.rmtree(RESULTS_DIR / test_set / PEFT_RESULTS_DIR, ignore_errors=True)  # only these runs' files
    if (output / PEFT_RESULTS_DIR).is_dir():  # the trained runs in PEFT's method-comparison field names
        shutil.copytree(output / PEFT_RESULTS_DIR, RESULTS_DIR / test_set / PEFT_RESULTS_DIR)


def recheck(model_path: Path, force: bool) -> dict:
    """Regenerate, with the current generation code, every committed system whose weights are here (zero-shot
    always; a trained method where runs/quality/<method>/adapter exists) on both test sets, into
    runs/quality/recheck/<test-set>/, and compare each with its committed comparison: ROUGE must be identical
    (the same tokens), the generation time is the new path's. Writes benchmarks/results/quality/recheck.json."""
    report = {"load_average_before": os.getloadavg(), "test_sets": {}}
    for test_set in TEST_SETS:
        committed = json.loads((RESULTS_DIR / test_set / "comparison.json").read_text(encoding="utf-8"))
        methods = [m for m in systems() if m == GENERATION_ONLY or (ROOT / adapter_path(m)).is_dir()]
        folders = generate(test_set, RUNS_DIR / "recheck" / test_set, model_path, force, methods=methods)
        rows = {}
        for method, folder in zip(methods, folders):
            run = json.loads((ROOT / folder / "run.json").read_text(encoding="utf-8"))
            before = next(system for system in committed["systems"] if system["method"] == method)
            rouge = {key: run["test_rouge"][key] for key in ("rouge1", "rouge2", "rougeL", "rougeLsum")}
            costs = run["costs"] if "costs" in run else run
            rows[method] = {"committed_system": before["system"], "n_examples": before["n_examples"],
                            "rouge_committed": {key: round(before[key], 4) for key in rouge}, "rouge_now": rouge,
                            "rouge_identical": all(round(before[key], 4) == rouge[key] for key in rouge),
                            "generation_tokens_per_s_committed": before.get("generation_tokens_per_s"),
                            "generation_tokens_per_s_now": find_key(costs, "generation_tokens_per_s"),
                            "generation_wall_time_s_now": find_key(costs, "generation_wall_time_s")}
            print(f"{test_set} {method}: ROUGE identical {rows[method]['rouge_identical']}; tokens/s "
                  f"{rows[method]['generation_tokens_per_s_committed']} -> {rows[method]['generation_tokens_per_s_now']}"
                  f" ({rows[method]['generation_wall_time_s_now']} s)", flush=True)
        report["test_sets"][test_set] = rows
    report["load_average_after"] = os.getloadavg()
    atomic_write_text(RESULTS_DIR / "recheck.json", json.dumps(report, indent=2) + "\n")
    return report


def find_key(tree, key: str):
    """The first value of `key` anywhere in a nested dict (run.json keeps costs in a section of its own)."""
    if isinstance(tree, dict):
        if key in tree:
            return tree[key]
        return next((found for value in tree.values() if (found := find_key(value, key)) is not None), None)
    return None


def quality_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data_dir", default=str(DEFAULT_DATA), help="Folder holding the real CNN/DailyMail "
                        "rows as train.jsonl, validation.jsonl and test.jsonl; every split (train, dev and both "
                        "test sets) is carved from it. Default: ../shared/data/cnn_dailymail relative to the "
                        "project root (%(default)s).")
    parser.add_argument("--dev_rows", type=int, default=100, help="Validation rows kept as the dev set.")
    parser.add_argument("--mixed_test_rows", type=int, default=300, help="Validation rows held out as the mixed "
                        "test set (90%% DailyMail, as in the full test split).")
    parser.add_argument("--cnn_test_rows", type=int, default=500, help="Test rows used (HF order, CNN only).")
    parser.add_argument("--seed", type=int, default=0, help="Seed of the carve-out.")
    parser.add_argument("--force", action="store_true", help="Rerun even where a finished run matches.")
    parser.add_argument("--carve_only", action="store_true", help="Write the splits and stop.")
    parser.add_argument("--recheck", action="store_true", help="Regenerate the committed systems whose weights "
                        "are here (zero-shot always) with the current generation code and check that ROUGE is "
                        "identical to the committed comparisons (benchmarks/results/quality/recheck.json).")
    parser.add_argument("--generate_only", action="store_true", help="Reuse the trained adapters; generate both "
                        "test sets with the presets' generation settings into runs/quality/final/ (a finished run "
                        "of the same configuration is reused unless --force).")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = quality_parser().parse_args(argv)
    os.chdir(ROOT)
    data_dir = Path(args.data_dir)
    missing = [name for name in ("train.jsonl", "validation.jsonl", "test.jsonl") if not (data_dir / name).is_file()]
    if missing:
        raise SystemExit(f"error: {data_dir} must hold train.jsonl, validation.jsonl and test.jsonl (real "
                         f"CNN/DailyMail rows); missing {', '.join(missing)}; pass --data_dir")
    start = time.perf_counter()
    write_splits(data_dir, args)
    if args.carve_only:
        return
    model_path = offline_model.ensure_model()
    if args.recheck:
        recheck(model_path, args.force)
        print(f"Recheck finished in {time.perf_counter() - start:.0f} s", flush=True)
        return
    if args.generate_only:
        sets = {name: generate(name, RUNS_DIR / "final" / name, model_path, args.force) for name in TEST_SETS}
    else:
        sets = {name: [] for name in TEST_SETS}
        records = []
        for number, system in enumerate(systems(), start=1):
            label = f"[{number}/{len(systems())}] {system}"
            if system != GENERATION_ONLY:
                records.append(train_system(system, model_path, args.force, label))
                write_search(records)
            for test_set in TEST_SETS:
                sets[test_set] += generate(test_set, preset_dir(test_set), model_path, args.force, methods=[system])
    for test_set, folders in sets.items():
        compare(test_set, folders)
    print(f"Quality run finished in {time.perf_counter() - start:.0f} s", flush=True)


if __name__ == "__main__":
    main()
