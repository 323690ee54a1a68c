"""Score variants of one preset on the dev rows only (never the test rows), and print a table.

    python benchmarks/tune_on_dev.py benchmarks/dev_variants/zero_shot.yaml

The variants file names a method, a base preset and named overrides of its fields:

    method: zero_shot
    name: zero_shot                              # folder name under runs/quality/dev/ (default: method)
    base: configs/quality/zero_shot.yaml
    dev_file: runs/quality/data/dev.jsonl        # written by benchmarks/quality_run.py (--carve_only)
    common: {max_train_samples: 160}             # optional: overrides shared by every variant
    variants:
      as_preset: {}
      tokens_64: {max_new_tokens: 64}

Each variant runs as its own process (`train_<method>.py` or `common.zero_shot`) with the dev file as
its test file, into `runs/quality/dev/<name>/<variant>/`; a finished run with the same config is
reused. The table (ROUGE-1/2/Lsum, mean words predicted / reference) is also written as
`runs/quality/dev/<name>/summary.json` and, to be committed, `benchmarks/results/quality/dev/<name>.json`. Generation settings of a trained run are tuned without
retraining: method `zero_shot` with `trained_path: runs/quality/<method>/adapter` in the overrides.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from common.models import offline as offline_model  # noqa: E402
from common.pipeline.presets import run_preset  # noqa: E402
from common.core.atomic import atomic_write_text, write_json  # noqa: E402
from common.runs.outputs import RUN_FILE  # noqa: E402

DEV_DIR = ROOT / "runs" / "quality" / "dev"
RESULTS_DIR = ROOT / "benchmarks" / "results" / "quality" / "dev"


def variant_yaml(base: dict, overrides: dict, dev_file: str, output_dir: Path) -> str:
    """The base preset with the overrides, the dev rows as the test split (all of them unless the overrides
    set max_test_samples) and this variant's folder."""
    fields = {**base, "max_test_samples": None, **overrides, "test_file": dev_file,
              "output_dir": str(output_dir.relative_to(ROOT))}
    return yaml.safe_dump(fields, sort_keys=False, allow_unicode=True)


def variant_overrides(spec: dict) -> dict[str, dict]:
    """Each variant's overrides of the base preset: the file's `common` ones, then the variant's own.

    Example:
        >>> variant_overrides({"common": {"max_test_samples": 40}, "variants": {"as_is": None, "beams": {"num_beams": 4}}})
        {'as_is': {'max_test_samples': 40}, 'beams': {'max_test_samples': 40, 'num_beams': 4}}
    """
    return {variant: {**spec.get("common", {}), **(overrides or {})} for variant, overrides in spec["variants"].items()}


def summary_row(variant: str, overrides: dict, run: dict) -> dict:
    """One variant's line of the search: its overrides, test (= dev) ROUGE, lengths, share cut at the token cap
    and generation seconds per row (from its run.json); the training time where the variant itself trained (a
    generation-only run carries its adapter's training time, which is not this variant's).

    Example:
        >>> run = {"test_rouge": {"rouge1": 30.0}, "test_mean_words": {"predicted": 40.0, "reference": 45.0},
        ...        "examples": {"test": {"used": 40}}, "summaries_cut_share": 0.25, "generation_wall_time_s": 100.0}
        >>> summary_row("greedy", {}, run)["generation_s_per_row"]
        2.5
    """
    used = run["examples"]["test"]["used"]
    row = {"variant": variant, "overrides": overrides or {}, "rouge": run["test_rouge"],
           "mean_words": run["test_mean_words"], "rows": used, "cut_share": run["summaries_cut_share"],
           "generation_s_per_row": round(run["generation_wall_time_s"] / used, 2)}
    trained = "train_wall_time_s" in run and not run.get("generation_only")
    return {**row, "train_wall_time_s": run["train_wall_time_s"]} if trained else row


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("variants_file", help="YAML with method, base, dev_file and variants (see above).")
    args = parser.parse_args(argv)
    spec = yaml.safe_load(Path(args.variants_file).read_text(encoding="utf-8"))
    method, base = spec["method"], yaml.safe_load((ROOT / spec["base"]).read_text(encoding="utf-8"))
    name = spec.get("name", method)
    if not (ROOT / spec["dev_file"]).is_file():
        raise SystemExit(f"error: {spec['dev_file']} is missing; run benchmarks/quality_run.py first (it carves it)")
    model_path = str(offline_model.ensure_model())
    rows = []
    for variant, overrides in variant_overrides(spec).items():
        folder = DEV_DIR / name / variant
        config_file = folder.with_suffix(".yaml")
        atomic_write_text(config_file, variant_yaml(base, overrides, spec["dev_file"], folder))
        print(f"\n[{name}: {variant}] {overrides or 'preset as is'}", flush=True)
        cfg = run_preset(method, config_file, model_path, force=False, label=f"{name}: {variant}")
        run = json.loads((Path(cfg.training.output_dir) / RUN_FILE).read_text(encoding="utf-8"))
        rows.append(summary_row(variant, overrides, run))
    print(f"\n{name} on {spec['dev_file']} ({rows[0]['rows']} rows)\n")
    print("| variant | ROUGE-1 | ROUGE-2 | ROUGE-Lsum | words pred/ref | cut at limit | generation s/row |\n"
          "|---|---|---|---|---|---|---|")
    for row in rows:
        r, w = row["rouge"], row["mean_words"]
        print(f"| {row['variant']} | {r['rouge1']:.1f} | {r['rouge2']:.1f} | {r['rougeLsum']:.1f} | "
              f"{w['predicted']:.1f} / {w['reference']:.1f} | {100 * row['cut_share']:.0f}% | "
              f"{row['generation_s_per_row']:.1f} |")
    write_json(DEV_DIR / name / "summary.json", rows)
    write_json(RESULTS_DIR / f"{name}.json", {"variants_file": str(Path(args.variants_file)), "dev_file": spec["dev_file"],
                                              "base": spec["base"], "variants": rows})


if __name__ == "__main__":
    main()
