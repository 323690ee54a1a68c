"""Classic fine-tuning of the last transformer blocks (and final norm) of a causal LM for summarization.

    python train_finetune.py --config configs/tiny/finetune.yaml
    accelerate launch --config_file accelerate_config.yaml train_finetune.py --config configs/gpt-neo-125m/finetune.yaml

Writes OUTPUT_DIR/adapter (trained tensors only, safetensors), OUTPUT_DIR/predictions_test.csv and OUTPUT_DIR/run.json.
"""

from __future__ import annotations

import sys

from common.cli import run
from common.config import parse_run_config
from common.training import run_method

METHOD = "finetune"


def main(argv: list[str] | None = None) -> dict:
    return run_method(parse_run_config(METHOD, argv))


if __name__ == "__main__":
    sys.exit(run(main))
