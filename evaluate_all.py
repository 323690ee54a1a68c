"""Compare every run's test predictions with the lead-3 and zero-shot baselines on the same examples.

    python evaluate_all.py                                   # every run folder under runs/, at any depth
    python evaluate_all.py --runs_dir runs/gpt-neo-125m      # only the runs under runs/gpt-neo-125m/
    python evaluate_all.py runs/lora runs/zero_shot old_predictions.csv --output_dir runs/comparison

Inputs are run folders (predictions_test.csv + run.json) or CSVs with the classic `Predicted Summary`
and `Actual Summary` columns. With no input, every folder under --runs_dir that holds
predictions_test.csv is a run (e.g. runs/gpt-neo-125m/lora/), named by its path relative to
--runs_dir (`gpt-neo-125m/lora`); hidden folders, --output_dir and a run's own subfolders (adapter/,
hub_upload/, checkpoint-*) are not searched. Inputs given on the command line are named by their
folder (or CSV) name, with -2, -3, ... on repeats. An input named lead3 is listed as `lead3 (run)`.

Writes OUTPUT_DIR/comparison.{md,csv,json}, examples.md and three PNG plots (ROUGE-Lsum against
trainable parameters, against training time, and pareto.png with the Pareto front of both), and prints the
ranked table with a recommendation paragraph written from the numbers (common/comparison/recommendation.py:
best quality, best within 1% of the parameters, cheapest not significantly worse than the best); also
OUTPUT_DIR/peft_results/<name>.json, each trained run in the field names of PEFT's method comparison
(common/comparison/peft_results.py has the mapping). When a run.json holds a `learning_curve` (trained
with --eval_strategy steps and --num_eval_generate K), also learning_curves.png: dev ROUGE-Lsum against
examples seen and training time. A bad input is skipped with its reason; with no valid input left the
script exits with an error (exit 1); a bad flag, or no input and no run under --runs_dir, is a usage error
(exit 2).
"""

from __future__ import annotations

import argparse
import sys

from common.comparison.peft_results import PEFT_RESULTS_DIR, write_peft_results
from common.comparison.plots import write_learning_curves, write_pareto_plot, write_plots
from common.comparison.recommendation import describe_test_set, recommend
from common.comparison.report import system_rows, write_reports
from common.comparison.systems import add_lead3, align_systems, compare, load_systems
from common.core.atomic import atomic_write_text
from common.core.cli import ArgumentParser, ConfigError, run
from common.runs.outputs import InputError, discover_run_dirs, run_name
from common.scoring.stats import MIN_SAMPLES


def make_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("inputs", nargs="*", help="Run folders or prediction CSVs. Default: every run found "
                        "under --runs_dir.")
    parser.add_argument("--runs_dir", default="runs", help="When no input is given: every folder under it, at any "
                        "depth, that holds predictions_test.csv is a run, named by its path relative to it (e.g. "
                        "gpt-neo-125m/lora). Hidden folders, --output_dir and a run's own subfolders are not "
                        "searched.")
    parser.add_argument("--output_dir", default="runs/comparison", help="Where the reports and plots are written.")
    parser.add_argument("--bootstrap_samples", type=int, default=MIN_SAMPLES,
                        help=f"Resamples for the bootstrap CIs and the paired permutation test (>= {MIN_SAMPLES}).")
    parser.add_argument("--allow_few_bootstrap_samples", action="store_true",
                        help=f"Accept --bootstrap_samples below {MIN_SAMPLES} (for fast tests only).")
    parser.add_argument("--seed", type=int, default=0, help="Seed of the resampling, so reports are reproducible.")
    parser.add_argument("--num_examples_md", type=int, default=3, help="Examples shown side by side in examples.md.")
    parser.add_argument("--no_lead3", action="store_true", help="Leave out the lead-3 baseline.")
    return parser


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = make_parser()
    args = parser.parse_args(argv)
    if args.bootstrap_samples < 1 or (args.bootstrap_samples < MIN_SAMPLES and not args.allow_few_bootstrap_samples):
        parser.error(f"--bootstrap_samples must be >= {MIN_SAMPLES} (got {args.bootstrap_samples})")
    if args.num_examples_md < 0:
        parser.error(f"--num_examples_md must be >= 0 (got {args.num_examples_md})")
    return args


def main(argv: list[str] | None = None):
    args = parse_args(argv)
    paths = args.inputs or discover_run_dirs(args.runs_dir, args.output_dir)
    if not paths:
        raise ConfigError(f"no inputs given and no run folder found under --runs_dir {args.runs_dir}/ "
                          "(a run folder holds predictions_test.csv); give run folders or CSVs as inputs")
    names = None if args.inputs else [run_name(path, args.runs_dir) for path in paths]
    systems, skipped = load_systems(paths, names)
    systems, keys, unaligned = align_systems(systems)
    skipped += unaligned
    if not systems:
        reasons = "; ".join(f"{item.name}: {item.reason}" for item in skipped)
        raise InputError(f"no valid system to evaluate; skipped: {reasons}")
    if not args.no_lead3:
        systems, lead3_skipped = add_lead3(systems, keys)
        skipped += [lead3_skipped] if lead3_skipped else []
    result = compare(systems, keys, args.bootstrap_samples, args.seed)
    rows, test_set = system_rows(result), describe_test_set(result)
    recommendation = recommend(rows, result.pairs, len(result.keys), test_set)
    markdown = write_reports(result, skipped, args.output_dir, args.num_examples_md, recommendation)
    plots = [path.name for path in (*write_plots(rows, args.output_dir), write_pareto_plot(rows, args.output_dir))]
    peft_files = write_peft_results(result, args.output_dir, test_set)
    curves = write_learning_curves(run_curves(result), args.output_dir)
    if curves:
        markdown += (f"\n## Learning curves\n\n`{curves.name}`: dev ROUGE-Lsum during training against the "
                     "training examples seen and the training time, one line per run.\n")
        atomic_write_text(curves.parent / "comparison.md", markdown)  # report.py's text, plus this section
        plots.append(curves.name)
    print(markdown, flush=True)
    print(f"Wrote {len(peft_files)} run(s) in PEFT's method-comparison format to {args.output_dir}/{PEFT_RESULTS_DIR}/")
    print(f"Wrote comparison.md, comparison.csv, comparison.json, examples.md, {', '.join(plots)} "
          f"to {args.output_dir}/")
    return result


def run_curves(result) -> dict[str, dict]:
    """{label: run.json learning_curve} of the compared runs that hold one; the label is the run's name,
    with its method in brackets where the name does not end with it."""
    curves = {}
    for scored in result.systems:
        curve, method = scored.system.run.get("learning_curve"), scored.system.method
        if curve is not None:
            label = scored.name if scored.name.split("/")[-1] == method else f"{scored.name} ({method})"
            curves[label] = curve
    return curves


if __name__ == "__main__":
    sys.exit(run(main))
