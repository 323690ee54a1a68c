"""Another decoding on a quality test set: the trained adapters (and zero-shot) regenerate it, compared with the
presets' own runs of the same rows.

    python benchmarks/decoding_ablation.py --test_set mixed --num_beams 1    # greedy, against the presets' 4 beams
    python benchmarks/decoding_ablation.py --test_set cnn --systems zero_shot finetune --num_beams 2

Needs a finished `benchmarks/quality_run.py` (the adapters, the carved rows and the presets' runs). Each system
runs as a generation-only run of its preset (`quality_run.generate`: same prompt, rows and token cap) with
`--num_beams` and `--no_repeat_ngram_size` overridden, into
`runs/quality/<test-set>_beams_<N>/<system>_beams_<N>/`; `evaluate_all.py` then compares them with the presets'
runs, lead-3 included (`quality_run.compare`: comparison.json, comparison.md and the learning-curve plot are
copied to `benchmarks/results/quality/<test-set>_beams_<N>/`). 4 beams cost 3.6-6x the greedy generation
time on 2 CPU cores (every prompt is expanded to N rows before the prefill; longer articles cost more).

The committed `mixed_beams_4/` and `cnn_beams_4/` were made when the presets still decoded greedily: they compare
4 beams (the runs named `<system>_beams_4`, the same settings as today's presets) with those greedy runs.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks import quality_run as q  # noqa: E402
from common.models import offline as offline_model  # noqa: E402


def decoding_overrides(num_beams: int, no_repeat: int, max_test_samples: int | None = None) -> dict:
    """What the ablation changes in a system's generation preset (`quality_run.generation_preset`): the
    decoding, and with `max_test_samples` fewer rows, the first of the same seeded order (so a subset of the
    preset run's rows)."""
    rows = {"max_test_samples": max_test_samples} if max_test_samples else {}
    return {"num_beams": num_beams, "no_repeat_ngram_size": no_repeat, **rows}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--test_set", choices=sorted(q.TEST_SETS), default="mixed")
    parser.add_argument("--systems", nargs="+", choices=q.systems(), default=q.systems(),
                        help="Presets whose runs regenerate the test set (zero_shot: the base model).")
    parser.add_argument("--num_beams", type=int, default=4)
    parser.add_argument("--no_repeat_ngram_size", type=int, default=3)
    parser.add_argument("--max_test_samples", type=int, default=None, help="Fewer rows than the presets use (CPU "
                        "time): the first of the same seeded order, so the comparison pairs them with the presets' runs.")
    args = parser.parse_args(argv)
    os.chdir(q.ROOT)  # the presets' paths, and the run names in the comparison, are relative to the project root
    presets = [os.path.relpath(q.preset_dir(args.test_set) / system) for system in args.systems]
    missing = [path for path in presets if not (Path(path) / "run.json").is_file()]
    if missing:
        raise SystemExit(f"error: no finished preset run in {', '.join(missing)}; run benchmarks/quality_run.py first")
    tag = f"{args.test_set}_beams_{args.num_beams}"
    overrides = decoding_overrides(args.num_beams, args.no_repeat_ngram_size, args.max_test_samples)
    folders = q.generate(args.test_set, q.RUNS_DIR / tag, offline_model.ensure_model(), force=False,
                         methods=args.systems, suffix=f"_beams_{args.num_beams}", **overrides)
    q.compare(tag, [*presets, *folders])


if __name__ == "__main__":
    main()
