"""The Trainer every method trains with: the label-position loss, checkpoints that carry the run's costs, resume.

- `label_position_loss`: the causal-LM loss with the LM head computed only where a label is.
- `SummarizationTrainer`: that loss; validation loss averaged per token (not per batch, so it does not
  change with --per_device_eval_batch_size); every checkpoint gets a `costs.json`, written last, holding
  the training wall time, loss sum, tokens and resumes so far, so that costs accumulate across resumes
  and a checkpoint without it is known to be incomplete. A P-tuning checkpoint (and one of prefix tuning with its
  MLP) also keeps its prompt encoder (`prompt_encoder.safetensors`): the adapter file holds only its output.
- `resolve_checkpoint`: `--resume_from_checkpoint last` picks the newest complete checkpoint.
- `train_model`: train or resume; a checkpoint at the end of training is loaded, not trained again.

Usage (the `train` step of `pipeline.steps`; `tests/test_resume.py` runs it, killed and resumed):

    trainer = build_trainer(cfg, model, tokenizer, splits)
    costs = train_model(trainer, checkpoint=None)        # or a checkpoint folder to resume from
    costs["train_steps"], costs["resumes"], costs["train_time_s"], costs["eval_time_s"]
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import Sampler
from transformers import Trainer, TrainerState
from transformers.trainer_pt_utils import get_length_grouped_indices

from ..config.arguments import RunConfig
from ..core.atomic import atomic_write_text
from ..core.cli import ConfigError
from ..data.prompts import IGNORE_INDEX, PaddingCollator, build_prompts, tokenize_for_training
from ..generation.generate import generation_precision
from ..methods import is_prompt_learning, num_virtual_tokens, trains_prompt_encoder
from ..methods.base import unwrap_peft
from .callbacks import CostClock, GenerateAndScoreCallback, learning_curve

logger = logging.getLogger(__name__)
COSTS_FILE = "costs.json"
PROMPT_ENCODER_FILE = "prompt_encoder.safetensors"  # P-tuning / prefix MLP checkpoints: what the adapter lacks
STATE_FILE = "trainer_state.json"
WEIGHT_FILES = ("adapter_model.safetensors", "model.safetensors")


def label_position_loss(model, inputs: dict, virtual_tokens: int = 0, num_items_in_batch=None) -> torch.Tensor:
    """Causal-LM loss with the LM head computed only where the next token is a label.

    Equal to the usual shifted cross-entropy over all positions (ignored labels contribute nothing),
    but the (tokens x vocab) logits exist only for summary positions, not for the long prompt.
    `inputs`: `input_ids`, `attention_mask`, `labels`, each (batch, length). Soft prompts prepend
    `virtual_tokens` positions (`methods.num_virtual_tokens`), which never carry a label; prefix tuning's prefix is
    in the attention's keys and values, not in the logits (0).
    """
    labels = inputs["labels"]
    next_labels = labels[:, 1:]
    keep = next_labels != IGNORE_INDEX
    position_mask = F.pad(keep, (virtual_tokens, 1), value=False)
    outputs = model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"],
                    logits_to_keep=position_mask, use_cache=False)  # a cache would copy all keys and values
    loss = F.cross_entropy(outputs.logits.float(), next_labels[keep], reduction="sum")
    denominator = num_items_in_batch if num_items_in_batch is not None else keep.sum().clamp(min=1)
    return loss / denominator


class EpochLengthGroupedSampler(Sampler[int]):
    """Length-grouped order (transformers' `get_length_grouped_indices`) that is a function of (seed, epoch).

    transformers' `LengthGroupedSampler` draws its permutation from the global RNG when it is iterated
    and has no `set_epoch`, so a run resumed mid-epoch after the first epoch sees another order than the
    uninterrupted run (the global RNG is in another state in a new process). Here the Trainer's
    `set_epoch(epoch)` picks the permutation, like `DistributedSampler`: every process, and a resumed
    run, draws the same order for the same epoch.

    Example:
        >>> sampler = EpochLengthGroupedSampler([5, 1, 4, 2, 3, 6], batch_size=2, seed=0)
        >>> sampler.set_epoch(1); first = list(sampler)
        >>> sampler.set_epoch(0); sampler.set_epoch(1); list(sampler) == first, sorted(first)
        (True, [0, 1, 2, 3, 4, 5])
    """

    def __init__(self, lengths: list[int], batch_size: int, seed: int):
        self.lengths, self.batch_size, self.seed, self.epoch = list(lengths), batch_size, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.lengths)

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        return iter(get_length_grouped_indices(self.lengths, self.batch_size, generator=generator))


class SummarizationTrainer(Trainer):
    """Trainer with the label-position loss, per-token validation loss, cost-carrying checkpoints and a
    length-grouped order that resumes exactly (`EpochLengthGroupedSampler`)."""

    loss_is_scaled_for_ga = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.model_accepts_loss_kwargs = True  # so the Trainer counts label tokens across accumulation steps
        self.previous_costs = {"train_wall_time_s": 0.0, "loss_sum": 0.0, "resumes": 0}
        self.clock = CostClock()  # training steps and evaluation apart; restored from costs.json on resume
        self.add_callback(self.clock)
        self._session_start = time.perf_counter()
        self._eval_sums = torch.zeros(2, dtype=torch.float64)  # (loss x tokens, tokens) of this evaluation

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if not self.args.label_position_logits:
            outputs = model(**inputs)
            loss = outputs.loss
            if num_items_in_batch is not None:  # model's mean -> sum over this batch / all accumulated tokens
                loss = loss * (inputs["labels"][:, 1:] != IGNORE_INDEX).sum() / num_items_in_batch
        else:
            virtual = num_virtual_tokens(unwrap_peft(self.accelerator.unwrap_model(model)))
            loss = label_position_loss(model, inputs, virtual, num_items_in_batch)
            if num_items_in_batch is not None and self.args.average_tokens_across_devices and self.args.world_size > 1:
                loss = loss * self.args.world_size  # DDP averages gradients; num_items_in_batch is the global count
            outputs = {"loss": loss}
        if not model.training:  # evaluation: a per-batch mean, weighted here by the batch's label tokens
            tokens = (inputs["labels"][:, 1:] != IGNORE_INDEX).sum()
            self._eval_sums += torch.stack([loss.detach().double().cpu() * tokens.cpu(), tokens.cpu().double()])
        return (loss, outputs) if return_outputs else loss

    def evaluation_loop(self, *args, **kwargs):
        """The Trainer's loop, with `<prefix>_loss` the mean over all label tokens of all processes."""
        self._eval_sums.zero_()
        output = super().evaluation_loop(*args, **kwargs)
        totals = self.accelerator.reduce(self._eval_sums.to(self.args.device), reduction="sum").cpu()
        prefix = kwargs.get("metric_key_prefix", args[4] if len(args) > 4 else "eval")
        if totals[1] > 0 and f"{prefix}_loss" in output.metrics:
            output.metrics[f"{prefix}_loss"] = float(totals[0] / totals[1])
        return output

    def _get_train_sampler(self, train_dataset=None):
        dataset = train_dataset if train_dataset is not None else self.train_dataset
        column = self.args.length_column_name
        if self.args.train_sampling_strategy != "group_by_length" or column not in dataset.column_names:
            return super()._get_train_sampler(train_dataset)
        seed = self.args.data_seed if self.args.data_seed is not None else self.args.seed
        batch = self.args.train_batch_size * self.args.gradient_accumulation_steps
        return EpochLengthGroupedSampler(dataset[column], batch, seed)

    def train(self, *args, **kwargs):
        self._session_start = time.perf_counter()
        return super().train(*args, **kwargs)

    def evaluate(self, *args, **kwargs):
        with self.clock.evaluating():
            return super().evaluate(*args, **kwargs)

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        """Every log entry (loss, evaluation, the end of training) carries the training and evaluation seconds
        so far, for the trackers of --report_to and for log_history alike."""
        super().log({**logs, **self.clock.costs()}, start_time)

    def report(self, values: dict[str, float]) -> None:
        """Send `values`, with the costs so far, to the trackers of --report_to at this step, outside
        log_history (the learning curve keeps its own entries there). The Trainer logs an evaluation before
        its callbacks add the ROUGE, so the ROUGE callback reports it here."""
        self.control = self.callback_handler.on_log(self.args, self.state, self.control,
                                                    {**values, **self.clock.costs()})

    def costs_so_far(self) -> dict:
        """Wall time of train(), seconds in training steps and in evaluation, loss sum, steps, tokens and
        resumes up to now, all sessions together."""
        pending = getattr(self, "_tr_loss", None)  # the loss since the last log, not yet in _total_loss_scalar
        session_loss = self._total_loss_scalar + (pending.item() if pending is not None else 0.0)
        session_wall = time.perf_counter() - self._session_start
        return {"train_wall_time_s": self.previous_costs["train_wall_time_s"] + session_wall,
                "train_time_s": self.clock.train_seconds, "eval_time_s": self.clock.eval_seconds,
                "loss_sum": self.previous_costs["loss_sum"] + session_loss,
                "steps": self.state.global_step, "tokens": self.state.num_input_tokens_seen,
                "resumes": self.previous_costs["resumes"]}

    def _save_checkpoint(self, model, trial):
        super()._save_checkpoint(model, trial)
        if self.args.should_save:
            folder = Path(self._get_output_dir(trial=trial)) / f"checkpoint-{self.state.global_step}"
            save_prompt_encoder(unwrap_peft(self.accelerator.unwrap_model(self.model)), folder)
            write_costs(folder, self.costs_so_far())  # written last: a checkpoint without it was cut short

    # PEFT refuses to reload a prompt-learning adapter as trainable (load_adapter(is_trainable=True) raises),
    # which breaks both resuming and load_best_model_at_end; load the prompt tensors in place instead.
    def _load_from_checkpoint(self, resume_from_checkpoint, model=None):
        target = unwrap_peft(model if model is not None else self.model)
        if is_prompt_learning(target):
            return load_prompt_weights(target, resume_from_checkpoint)
        return super()._load_from_checkpoint(resume_from_checkpoint, model)

    def _load_best_model(self):
        target = unwrap_peft(self.model)
        if is_prompt_learning(target) and self.state.best_model_checkpoint:
            return load_prompt_weights(target, self.state.best_model_checkpoint)
        return super()._load_best_model()


def write_costs(folder: Path, costs: dict) -> None:
    atomic_write_text(Path(folder) / COSTS_FILE, json.dumps(costs, indent=2) + "\n")


def read_costs(checkpoint: str | Path) -> dict:
    return json.loads((Path(checkpoint) / COSTS_FILE).read_text(encoding="utf-8"))


def save_prompt_encoder(model, folder: Path) -> None:
    """The whole prompt encoder (input embedding and network) of a P-tuning model, or of prefix tuning with its
    MLP, into `folder`.

    The adapter file holds only the encoder's output, which generation needs and training cannot resume
    from; other models write nothing.
    """
    if trains_prompt_encoder(model):
        from safetensors.torch import save_file

        encoder = model.prompt_encoder[model.active_adapter]
        save_file({k: v.detach().contiguous() for k, v in encoder.state_dict().items()},
                  str(Path(folder) / PROMPT_ENCODER_FILE), metadata={"format": "pt"})


def load_prompt_weights(model, checkpoint: str) -> None:
    """Copy a checkpoint's prompt-learning tensors (P-tuning, prefix tuning with its MLP: the whole encoder) into
    `model` in place (they stay trainable)."""
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    if trains_prompt_encoder(model):
        path = Path(checkpoint) / PROMPT_ENCODER_FILE
        if not path.is_file():
            raise FileNotFoundError(f"{checkpoint}: no {PROMPT_ENCODER_FILE} to resume the prompt encoder from "
                                    "(the adapter file holds only its output); start again without "
                                    "--resume_from_checkpoint")
        model.prompt_encoder[model.active_adapter].load_state_dict(load_file(str(path)), strict=True)
        return
    path = Path(checkpoint) / "adapter_model.safetensors"
    if not path.is_file():
        raise FileNotFoundError(f"{checkpoint}: no adapter_model.safetensors to resume the soft prompt from")
    set_peft_model_state_dict(model, load_file(str(path)))


def checkpoint_problem(folder: Path) -> str | None:
    """Why `folder` cannot be resumed from (None when complete): costs.json (written last), the trainer
    state and the weights' safetensors header must all read back."""
    from safetensors import safe_open

    try:
        read_costs(folder)
        json.loads((folder / STATE_FILE).read_text(encoding="utf-8"))
        weights = next((folder / name for name in WEIGHT_FILES if (folder / name).is_file()), None)
        if weights is None:
            return "no weights file"
        with safe_open(str(weights), framework="pt") as handle:
            list(handle.keys())
    except (OSError, ValueError, KeyError) as error:
        return f"{type(error).__name__}: {error}"
    except Exception as error:  # noqa: BLE001 - safetensors raises its own error types for a cut file
        return f"{type(error).__name__}: {error}"
    return None


def checkpoints_newest_first(out_dir: str | Path) -> list[Path]:
    folders = [p for p in Path(out_dir).glob("checkpoint-*") if p.is_dir() and p.name.split("-")[-1].isdigit()]
    return sorted(folders, key=lambda p: int(p.name.split("-")[-1]), reverse=True)


def resolve_checkpoint(training_args) -> str | None:
    """`--resume_from_checkpoint PATH`, or 'last'/'true' for the newest complete checkpoint in output_dir.

    An incomplete checkpoint (a kill while it was written) is skipped with a warning; a named one is refused.
    """
    value = training_args.resume_from_checkpoint
    if value is None or str(value).lower() in {"", "false", "none"}:
        return None
    if str(value).lower() not in {"last", "true"}:
        problem = checkpoint_problem(Path(value)) if os.path.isdir(value) else "no such folder"
        if problem:
            raise ConfigError(f"--resume_from_checkpoint {value}: cannot resume from it ({problem})")
        return value
    for folder in checkpoints_newest_first(training_args.output_dir):
        problem = checkpoint_problem(folder)
        if problem is None:
            return str(folder)
        logger.warning("skipping incomplete checkpoint %s (%s)", folder, problem)
        print(f"Skipping incomplete checkpoint {folder}: {problem}", flush=True)
    raise ConfigError(f"--resume_from_checkpoint {value}: no complete checkpoint-* folder in "
                      f"{training_args.output_dir}")


def build_trainer(cfg: RunConfig, model, tokenizer, splits) -> SummarizationTrainer:
    """The Trainer for any method: tokenized splits, padding collator, ROUGE callback."""
    train = tokenize_for_training(splits["train"], tokenizer, cfg.data)
    evaluation = tokenize_for_training(splits["validation"], tokenizer, cfg.data)
    # The Trainer's own Hub push would upload every checkpoint; we push one prepared folder at the end.
    # The Trainer pickles its arguments into every checkpoint (training_args.bin): it never sees the token.
    # Checkpointing is switched on here rather than by the Trainer (see enable_activation_checkpointing).
    overrides = {"push_to_hub": False, "hub_token": None} if cfg.training.push_to_hub or cfg.training.hub_token else {}
    if cfg.training.ddp_find_unused_parameters is None:  # every method uses all it trains: skip DDP's extra pass
        overrides["ddp_find_unused_parameters"] = False
    if cfg.training.activation_checkpointing:
        enable_activation_checkpointing(model, cfg.training.activation_checkpointing_kwargs)
        overrides.update(activation_checkpointing=False, gradient_checkpointing=False)
    args = dataclasses.replace(cfg.training, **overrides) if overrides else cfg.training
    trainer = SummarizationTrainer(model=model, args=args, train_dataset=train, eval_dataset=evaluation,
                                   data_collator=PaddingCollator(pad_id=tokenizer.pad_token_id),
                                   processing_class=tokenizer)
    if cfg.generation.num_eval_generate > 0 and cfg.training.eval_strategy != "no":
        sample = splits["validation"].select(range(min(cfg.generation.num_eval_generate, len(splits["validation"]))))
        prompts = build_prompts(tokenizer, sample["article"], cfg.data)
        trainer.add_callback(GenerateAndScoreCallback(
            tokenizer, prompts, list(sample["summary"]), cfg.generation.for_evaluation(), trainer.clock,
            articles=list(sample["article"]), precision=generation_precision(cfg.training.mixed_precision),
            report=trainer.report if trackers(cfg.training.report_to) else None))
    return trainer


def trackers(report_to) -> list[str]:
    """The experiment trackers that --report_to names ('none' and an empty list: none).

    Example:
        >>> trackers(["tensorboard"]), trackers("none"), trackers(["none"])
        (['tensorboard'], [], [])
    """
    names = [report_to] if isinstance(report_to, str) else list(report_to or [])
    return [name for name in names if name != "none"]


def enable_activation_checkpointing(model, checkpoint_kwargs: dict | None = None) -> None:
    """Recompute each block's activations during the backward pass (--gradient_checkpointing).

    transformers also hooks the input embeddings so that their output requires grad, which only the
    reentrant variant needs. With the non-reentrant variant (the default) the hook is removed: it would
    make last-layer fine-tuning run a backward pass through every frozen block. The gradients are the
    same either way; tests/test_performance_paths.py checks both.
    """
    checkpoint_kwargs = {"use_reentrant": False, **(checkpoint_kwargs or {})}
    model.activation_checkpointing_enable(activation_checkpointing_kwargs=checkpoint_kwargs)
    if not checkpoint_kwargs["use_reentrant"]:
        model.disable_input_require_grads()


def train_model(trainer: SummarizationTrainer, checkpoint: str | None) -> dict:
    """Train, or resume from `checkpoint`, and return the costs of all sessions together.

    A checkpoint saved at the end of training (its step is the last one) is loaded instead of trained
    from: resuming it would run one step too many.
    """
    if checkpoint:
        costs = read_costs(checkpoint)
        trainer.previous_costs = {**costs, "resumes": costs["resumes"] + 1}
        trainer.clock.restore(costs)
        print(f"Resuming from {checkpoint} (resume {trainer.previous_costs['resumes']})", flush=True)
    state = TrainerState.load_from_json(str(Path(checkpoint) / STATE_FILE)) if checkpoint else None
    if state is not None and state.max_steps and state.global_step >= state.max_steps:
        load_finished(trainer, checkpoint, state)
        costs = trainer.previous_costs
    else:
        result = trainer.train(resume_from_checkpoint=checkpoint)
        steps_now = trainer.state.global_step - (state.global_step if state else 0)
        session_loss = result.training_loss * steps_now  # the Trainer's mean covers this session's steps only
        costs = {**trainer.costs_so_far(), "loss_sum": trainer.previous_costs["loss_sum"] + session_loss}
    steps, tokens = trainer.state.global_step, trainer.state.num_input_tokens_seen
    seconds = round(trainer.clock.train_seconds, 3)  # tokens/s as run.json's two fields give it
    curve = learning_curve(trainer.state.log_history)  # None unless the ROUGE callback recorded one
    return {"train_time_s": seconds, "eval_time_s": round(trainer.clock.eval_seconds, 3),
            "train_wall_time_s": round(costs["train_wall_time_s"], 3), "train_steps": steps,
            "train_loss": costs["loss_sum"] / steps if steps else None, "train_tokens": tokens,
            "train_tokens_per_s": round(tokens / seconds, 2) if seconds > 0 else None, "resumes": costs["resumes"],
            "best_model_checkpoint": trainer.state.best_model_checkpoint, "log_history": trainer.state.log_history,
            **({"learning_curve": curve} if curve else {})}


def load_finished(trainer: SummarizationTrainer, checkpoint: str, state: TrainerState) -> None:
    """Put a finished training's final model into `trainer` without training: the best checkpoint's
    weights when --load_best_model_at_end chose one, else the checkpoint's own."""
    print(f"{checkpoint} is the end of training ({state.global_step} of {state.max_steps} steps): "
          "loading it, not training again", flush=True)
    trainer.state = state
    best = state.best_model_checkpoint if trainer.args.load_best_model_at_end else None
    trainer._load_from_checkpoint(best if best and os.path.isdir(best) else checkpoint)
