"""The generate-and-score callback: ROUGE on validation summaries at every evaluation, and the learning curve.

At each `on_evaluate` it generates summaries for the first `num_eval_generate` validation examples
(sharded over processes, gathered without duplicates), scores ROUGE and adds `eval_rouge1`,
`eval_rouge2`, `eval_rougeL`, `eval_rougeLsum` to the evaluation metrics, so that
`--metric_for_best_model rougeLsum --load_best_model_at_end` selects on ROUGE.

It also records a learning curve on the same examples: at `on_train_begin` the starting model (a step-0
point) and two reference lines, zero-shot (the base model without what is trained) and lead-3 (the
articles' first three sentences); at each evaluation a point with the training examples seen and the
seconds spent in training steps alone (evaluation and generation excluded). Everything is kept in
`state.log_history`, which every checkpoint saves, so a resumed run continues its curve;
`learning_curve(log_history)` reads it back as run.json's `learning_curve` field.

`CostClock` splits a run's time into training (optimizer steps only) and evaluation (validation loss,
the curve's generations); the Trainer registers it and the callback reads its training seconds.

Usage (what `training.trainer.build_trainer` does; `tests/test_learning_curve.py` runs it on the tiny model):

    callback = GenerateAndScoreCallback(tokenizer, prompts, references, GenerationArguments(), trainer.clock,
                                        articles=articles, report=trainer.report)
    trainer.add_callback(callback)
    trainer.train()
    learning_curve(trainer.state.log_history)["points"][0]["step"]      # 0: the starting model
"""

from __future__ import annotations

import contextlib
import logging
import time
from typing import Callable

import torch
from peft import PeftModel
from transformers import TrainerCallback

from ..config.arguments import GenerationArguments
from ..generation.generate import generate_summaries
from ..methods.base import unwrap_peft
from ..scoring.baselines import lead3
from ..scoring.rouge import mean_words, rouge_scores

logger = logging.getLogger(__name__)
CURVE_KEYS = ("rouge1", "rouge2", "rougeLsum")
BEGIN_KEY = "learning_curve_begin"  # the log_history entry holding the step-0 point and the reference lines


def curve_scores(predictions: list[str], references: list[str]) -> dict[str, float]:
    """ROUGE-1/2/Lsum (F1 x 100) and the mean words of `predictions`, rounded as the log rounds them."""
    scores = rouge_scores(predictions, references)
    return {**{key: round(scores[key], 4) for key in CURVE_KEYS}, "mean_words": round(mean_words(predictions), 2)}


def examples_seen(args, step: int) -> int:
    """Training examples behind `step` optimizer steps, all processes together (the nominal batch size:
    an epoch's short last batch counts in full)."""
    return step * args.per_device_train_batch_size * args.gradient_accumulation_steps * args.world_size


def synchronize() -> None:
    """Wait for the accelerator's queued work, so that a step's time is not counted under what waits next."""
    if torch.accelerator.is_available():
        torch.accelerator.synchronize()


class CostClock(TrainerCallback):
    """Seconds in optimizer steps (`train_seconds`) and in evaluation (`eval_seconds`), all sessions of a
    resumed run together.

    A step runs from `on_step_begin` to `on_step_end` (forward, backward and optimizer step of all its
    accumulated batches); evaluation is whatever runs inside `evaluating()` (the Trainer's `evaluate`, the
    learning curve's first generations); nested `evaluating()` blocks count once. Checkpointing, logging
    and fetching the first batch of a step are in neither.

    Example:
        >>> clock = CostClock(train_seconds=2.0)
        >>> with clock.evaluating():
        ...     with clock.evaluating():
        ...         time.sleep(0.01)
        >>> clock.train_seconds, 0.01 <= clock.eval_seconds < 0.5
        (2.0, True)
    """

    def __init__(self, train_seconds: float = 0.0, eval_seconds: float = 0.0):
        self.train_seconds, self.eval_seconds = train_seconds, eval_seconds
        self._step_started: float | None = None
        self._depth = 0

    def costs(self) -> dict[str, float]:
        """The seconds so far as run.json names them (rounded to the millisecond).

        Example:
            >>> CostClock(train_seconds=1.23456, eval_seconds=2.0).costs()
            {'train_time_s': 1.235, 'eval_time_s': 2.0}
        """
        return {"train_time_s": round(self.train_seconds, 3), "eval_time_s": round(self.eval_seconds, 3)}

    def restore(self, costs: dict) -> None:
        """Continue from a checkpoint's costs.json (one written before the split counts its wall time as
        training, the only time it knew)."""
        self.train_seconds = costs.get("train_time_s", costs.get("train_wall_time_s", 0.0))
        self.eval_seconds = costs.get("eval_time_s", 0.0)

    def on_step_begin(self, args, state, control, **kwargs):
        synchronize()
        self._step_started = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        if self._step_started is not None:
            synchronize()
            self.train_seconds += time.perf_counter() - self._step_started
            self._step_started = None

    @contextlib.contextmanager
    def evaluating(self):
        self._depth += 1
        started = time.perf_counter()
        try:
            yield self
        finally:
            self._depth -= 1
            if self._depth == 0:
                synchronize()
                self.eval_seconds += time.perf_counter() - started


class GenerateAndScoreCallback(TrainerCallback):
    def __init__(self, tokenizer, prompts: list[list[int]], references: list[str], gen_args: GenerationArguments,
                 clock: CostClock, articles: list[str] | None = None, precision: str = "fp32",
                 report: Callable[[dict], None] | None = None):
        if len(prompts) != len(references) or (articles is not None and len(articles) != len(references)):
            raise ValueError("prompts, references and articles must have the same length")
        self.tokenizer = tokenizer
        self.prompts = prompts
        self.references = references
        self.gen_args = gen_args
        self.clock = clock  # the Trainer's: training seconds for the curve's points, evaluation seconds
        self.articles = articles
        self.precision = precision
        self.report = report  # the trackers of --report_to (SummarizationTrainer.report), if any

    def generate(self, model) -> list[str]:
        with self.clock.evaluating():
            return generate_summaries(model, self.tokenizer, self.prompts, self.gen_args, self.precision)

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        if not self.prompts or model is None:
            return
        # Resumed: the curve so far came back with the checkpoint's log_history, the clock with its costs.json.
        if any(BEGIN_KEY in entry for entry in state.log_history):
            return
        begin = self.score_start(unwrap_peft(model), args, state.global_step)
        state.log_history.append({BEGIN_KEY: begin, "step": state.global_step})
        if self.report:  # eval/start_rougeLsum, eval/zero_shot_rougeLsum, eval/lead3_rougeLsum, ... at this step
            self.report({f"eval_{line}_{key}": value for line in ("start", "zero_shot", "lead3")
                         for key, value in (begin[line] or {}).items() if key in CURVE_KEYS})
        if state.is_world_process_zero:
            logger.info("Learning curve start on %d validation examples: %s", len(self.prompts), begin)
            lines = {"start": begin["start"], "zero-shot": begin["zero_shot"], "lead-3": begin["lead3"]}
            print(f"[learning curve, step {state.global_step}] " + ", ".join(
                f"{name} rougeLsum={scores['rougeLsum']:.2f}" for name, scores in lines.items() if scores), flush=True)

    def score_start(self, model, args, step: int) -> dict:
        """The starting model's scores and the zero-shot and lead-3 lines (None where unknown).

        Zero-shot is the base model without the trained part: a LoRA model with its adapter disabled,
        a prompt-learning model's base model (no virtual tokens). For fine-tuning the starting model is
        the base model at step 0, so it is scored once; after a resume from a checkpoint written without
        a curve, the base weights are gone and zero-shot is None.
        """
        start = self.generate(model)
        if not isinstance(model, PeftModel):
            zero_shot = start if step == 0 else None
        elif model.active_peft_config.is_prompt_learning:
            zero_shot = self.generate(model.get_base_model())
        else:
            with model.disable_adapter():
                zero_shot = self.generate(model.get_base_model())
        return {"dev_examples": len(self.prompts),
                "start": {"step": step, "examples_seen": examples_seen(args, step), "train_seconds": 0.0,
                          **curve_scores(start, self.references)},
                "zero_shot": curve_scores(zero_shot, self.references) if zero_shot is not None else None,
                "lead3": (curve_scores([lead3(a) for a in self.articles], self.references)
                          if self.articles is not None else None)}

    def on_evaluate(self, args, state, control, model=None, metrics=None, **kwargs):
        if not self.prompts or model is None or metrics is None:
            return
        predictions = self.generate(unwrap_peft(model))
        scores = {f"eval_{key}": round(value, 4) for key, value in rouge_scores(predictions, self.references).items()}
        scores["eval_gen_len_words"] = round(mean_words(predictions), 2)
        metrics.update(scores)
        point = {**scores, "examples_seen": examples_seen(args, state.global_step),
                 "train_seconds": round(self.clock.train_seconds, 3)}
        if "eval_loss" in metrics:  # the Trainer's loss on the validation rows (max_eval_samples of them)
            point["dev_loss"] = round(metrics["eval_loss"], 4)
        state.log_history.append({**point, "epoch": state.epoch, "step": state.global_step})
        if self.report:  # the Trainer logged this evaluation before the ROUGE existed
            self.report(point)
        if state.is_world_process_zero:
            logger.info("Validation ROUGE on %d examples at step %d: %s", len(predictions), state.global_step, scores)
            print(f"[eval step {state.global_step}] " + ", ".join(f"{k[5:]}={v:.2f}" for k, v in scores.items()),
                  flush=True)


def learning_curve(log_history: list[dict]) -> dict | None:
    """run.json's `learning_curve` from a log_history the callback wrote to; None when it recorded none.

    Returns {"dev_examples": n, "points": [{step, examples_seen, train_seconds, rouge1, rouge2, rougeLsum,
    mean_words, dev_loss}, ...] (the start first, without dev_loss, then one per evaluation; dev_loss: the
    Trainer's loss on the validation rows, None when it computed none), "zero_shot": {rouge1, rouge2, rougeLsum,
    mean_words} or None, "lead3": the same or None}.
    """
    begin = next((entry[BEGIN_KEY] for entry in log_history if BEGIN_KEY in entry), None)
    if begin is None:
        return None
    points = [begin["start"]] + [{"step": e["step"], "examples_seen": e["examples_seen"],
                                  "train_seconds": e["train_seconds"], **{k: e[f"eval_{k}"] for k in CURVE_KEYS},
                                  "mean_words": e["eval_gen_len_words"], "dev_loss": e.get("dev_loss")}
                                 for e in log_history if "eval_rougeLsum" in e and "examples_seen" in e]
    return {"dev_examples": begin["dev_examples"], "points": points, "zero_shot": begin["zero_shot"],
            "lead3": begin["lead3"]}
