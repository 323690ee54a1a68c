"""Soft prompt tuning (PEFT PromptTuningConfig) of a frozen causal LM for summarization.

    python train_soft_prompt.py --config configs/tiny/soft_prompt.yaml
    accelerate launch --config_file accelerate_config.yaml train_soft_prompt.py --config configs/gpt-neo-125m/soft_prompt.yaml

Writes OUTPUT_DIR/adapter (safetensors), OUTPUT_DIR/predictions_test.csv and OUTPUT_DIR/run.json.
"""

from __future__ import annotations

import sys

from common.cli import run
from common.config import parse_run_config
from common.training import run_method

METHOD = "soft_prompt"


def main(argv: list[str] | None = None) -> dict:
    return run_method(parse_run_config(METHOD, argv))


if __name__ == "__main__":
    sys.exit(run(main))
