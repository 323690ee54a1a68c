"""Fine-tune a causal LM for summarization with LoRA adapters (PEFT), then summarise the test split.

    python train_lora.py --config configs/tiny/lora.yaml
    python train_lora.py --config configs/tiny/lora.yaml --use_dora     # DoRA, recorded as method dora
    accelerate launch --config_file accelerate_config.yaml train_lora.py --config configs/gpt-neo-125m/lora.yaml

Writes OUTPUT_DIR/adapter (safetensors), OUTPUT_DIR/predictions_test.csv and OUTPUT_DIR/run.json, together
(a killed run leaves the previous results or the new ones, never a mix). `--help` lists every flag.
The train_*.py scripts are the same recipe; only METHOD differs. Every step lives in common/.
"""

from __future__ import annotations

import sys

from common.config.parsing import parse_run_config
from common.core.cli import run
from common.methods import build_method
from common.models.loading import load_base_model
from common.pipeline.steps import export, load_data, predict_and_commit, start, train

METHOD = "lora"


def main(argv: list[str] | None = None) -> dict:
    cfg = parse_run_config(METHOD, argv)  # YAML --config plus CLI flags; every value checked here
    run_ = start(cfg)  # launch and output-folder checks, the checkpoint to resume from
    tokenizer, splits, counts = load_data(cfg)  # local files or the Hub; lengths checked against the model
    model = build_method(METHOD, load_base_model(cfg.model), cfg.method, cfg.model)
    model, costs = train(cfg, run_, model, tokenizer, splits)  # Trainer; what was trained is staged
    summary = predict_and_commit(cfg, run_, model, tokenizer, splits, counts, costs)  # test summaries, run.json
    export(cfg, run_, model, tokenizer)  # optional: --merge_and_export, --push_to_hub
    return summary


if __name__ == "__main__":
    sys.exit(run(main))
