"""Zero-shot baseline: the base model, no adaptation, through the same prompt and generation path.

    python -m common.zero_shot --model_name_or_path DIR --test_file test.jsonl --output_dir runs/zero_shot

Writes OUTPUT_DIR/predictions_test.csv and OUTPUT_DIR/run.json like the training scripts (with 0
trainable parameters and no training time), so evaluate_all.py treats it as one more run.

With `--trained_path RUN/adapter` it generates with what a training run saved instead (no training):
score a trained run on another test file, or with other generation settings, e.g.

    python -m common.zero_shot --config configs/quality/zero_shot.yaml --trained_path runs/quality/lora/adapter \
        --no_repeat_ngram_size 3 --output_dir runs/quality/lora_nrng3

and run.json carries that run's method, parameter counts and training time.
"""

from __future__ import annotations

import sys

from common.cli import run
from common.config import parse_run_config
from common.training import run_method

METHOD = "zero_shot"


def main(argv: list[str] | None = None) -> dict:
    return run_method(parse_run_config(METHOD, argv))


if __name__ == "__main__":
    sys.exit(run(main))
