"""Generation only: test summaries from a base model, or from a base model with a trained run's weights.

    python -m common.predict --model_name_or_path DIR --test_file test.jsonl --output_dir runs/zero_shot
    python -m common.predict --config configs/quality/zero_shot.yaml --adapter runs/quality/lora/adapter \
        --no_repeat_ngram_size 3 --output_dir runs/quality/lora_nrng3
    python -m common.predict --adapter OWNER/NAME ...        # a run pushed with --push_to_hub, by name

Without `--adapter` this is the zero-shot baseline (run.json method `zero_shot`, 0 trainable parameters).
With it (a run's `adapter/` folder or a pushed repo id; `--trained_path` is the same flag) run.json says
exactly what it is: `generation_only: true`, `method` the adapter's method, `trained_path` the adapter,
and the training run's parameter counts and training cost (from its run.json), so `evaluate_all.py`
lists it with that run's costs. Nothing is trained; the steps are those of a training run without `train`.
"""

from __future__ import annotations

import sys

from common.methods import count_parameters

from .config.arguments import GENERATION_ONLY, RunConfig
from .config.parsing import parse_run_config
from .core.cli import run
from .methods.reload import load_for_generation
from .models.loading import load_base_model
from .pipeline.steps import load_data, log_parameters, predict_and_commit, start


def predict(cfg: RunConfig) -> dict:
    """Load the base model (plus the adapter, if any), summarise the test split, commit the results."""
    run_ = start(cfg)
    tokenizer, splits, counts = load_data(cfg)
    model, carried = load_model(cfg)
    if carried:  # frozen here: the counts that matter are the training run's, carried into run.json
        trained = f" (trained {carried['trainable']:,} of {carried['total']:,} parameters)" if "total" in carried else ""
        print(f"Generating with {carried.get('method', 'trained weights')} from {carried['trained_path']}{trained}",
              flush=True)
    else:
        log_parameters(GENERATION_ONLY, count_parameters(model))
    return predict_and_commit(cfg, run_, model, tokenizer, splits, counts, costs={}, carried=carried)


def load_model(cfg: RunConfig):
    """The frozen base model, with the adapter's weights when --adapter is given; and the carried fields."""
    base = load_base_model(cfg.model).requires_grad_(False)
    if not cfg.method.trained_path:
        return base, {}
    model, carried = load_for_generation(base, cfg.method.trained_path)
    return model, {**carried, "generation_only": True}


def main(argv: list[str] | None = None) -> dict:
    return predict(parse_run_config(GENERATION_ONLY, argv))


if __name__ == "__main__":
    sys.exit(run(main))
