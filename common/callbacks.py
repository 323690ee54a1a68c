"""The generate-and-score callback: ROUGE on validation summaries at every evaluation.

At each `on_evaluate` it generates summaries for the first `num_eval_generate` validation examples
(sharded over processes, gathered without duplicates), scores ROUGE and adds `eval_rouge1`,
`eval_rouge2`, `eval_rougeL`, `eval_rougeLsum` to the evaluation metrics, so that
`--metric_for_best_model rougeLsum --load_best_model_at_end` selects on ROUGE.

Example:
    >>> callback = GenerateAndScoreCallback(tokenizer, prompts, references, GenerationArguments())
    >>> trainer.add_callback(callback)
"""

from __future__ import annotations

import logging

from transformers import TrainerCallback

from .config import GenerationArguments
from .generation import generate_summaries, unwrap_peft
from .metrics import mean_words, rouge_scores

logger = logging.getLogger(__name__)


class GenerateAndScoreCallback(TrainerCallback):
    def __init__(self, tokenizer, prompts: list[list[int]], references: list[str], gen_args: GenerationArguments):
        if len(prompts) != len(references):
            raise ValueError("prompts and references must have the same length")
        self.tokenizer = tokenizer
        self.prompts = prompts
        self.references = references
        self.gen_args = gen_args

    def on_evaluate(self, args, state, control, model=None, metrics=None, **kwargs):
        if not self.prompts or model is None or metrics is None:
            return
        predictions = generate_summaries(unwrap_peft(model), self.tokenizer, self.prompts, self.gen_args)
        scores = {f"eval_{key}": round(value, 4) for key, value in rouge_scores(predictions, self.references).items()}
        scores["eval_gen_len_words"] = round(mean_words(predictions), 2)
        metrics.update(scores)
        state.log_history.append({**scores, "epoch": state.epoch, "step": state.global_step})
        if state.is_world_process_zero:
            logger.info("Validation ROUGE on %d examples at step %d: %s", len(predictions), state.global_step, scores)
            print(f"[eval step {state.global_step}] " + ", ".join(f"{k[5:]}={v:.2f}" for k, v in scores.items()),
                  flush=True)
