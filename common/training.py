"""The one training path shared by all methods: load, build, train, generate, score, save.

`run_method(cfg)` is what every `train_*.py` calls. The scripts differ only in `cfg.method_name`
and the method dataclass; everything else (Trainer setup, the ROUGE callback, test predictions,
result files) happens here, once.

Example:
    >>> cfg = parse_run_config("lora", ["--model_name_or_path", "/tmp/tiny", "--train_file", "train.jsonl", ...])
    >>> summary = run_method(cfg)
    >>> summary["test_rouge"]["rougeLsum"]
    12.3
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import os
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from accelerate import PartialState
from accelerate.utils import DistributedType
from transformers import AutoModelForCausalLM, AutoTokenizer, Trainer, set_seed
from transformers.trainer_utils import get_last_checkpoint

from .callbacks import GenerateAndScoreCallback
from .cli import ConfigError
from .config import RunConfig
from .data import SPLITS, load_splits
from .generation import generate_summaries, unwrap_peft
from .hub import LOCAL_PATH_HINT, HubUnreachableError, is_hub_id, prepare_hub_folder, push_folder, require_hub
from .methods import build_method, count_parameters, load_trained, num_virtual_tokens, save_trained
from .metrics import mean_words, rouge_scores
from .results import (PREDICTIONS_FILE, RUN_FILE, folder_size_bytes, package_versions, peak_memory, write_json,
                      write_predictions_csv)
from .tokenization import IGNORE_INDEX, PaddingCollator, build_prompts, tokenize_for_training

logger = logging.getLogger(__name__)
ADAPTER_DIR = "adapter"


def from_pretrained_or_explain(loader, name: str, what: str, **kwargs):
    """`loader.from_pretrained(name)`: a local folder, a cached copy, or the Hub, with a clear error if unreachable."""
    if Path(name).is_dir():
        return loader.from_pretrained(name, **kwargs)
    try:
        return loader.from_pretrained(name, local_files_only=True, **kwargs)
    except (OSError, ValueError):
        pass
    require_hub(f"{what.capitalize()} '{name}' (not in the local cache)")
    try:
        return loader.from_pretrained(name, **kwargs)
    except OSError as error:
        raise HubUnreachableError(f"Could not load {what} '{name}': {error}. {LOCAL_PATH_HINT}") from error


def load_tokenizer(model_args):
    """The tokenizer, with pad = EOS when the model defines no pad token (GPT-Neo, GPT-2)."""
    tokenizer = from_pretrained_or_explain(AutoTokenizer, model_args.tokenizer_path, "tokenizer")
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    if tokenizer.eos_token_id is None:
        raise ValueError(f"tokenizer {model_args.tokenizer_path} has no EOS token; summaries must end with one")
    return tokenizer


def load_base_model(model_args):
    """The base causal LM in fp32 (mixed precision, if any, comes from --bf16/--fp16 autocast)."""
    kwargs = {"dtype": torch.float32}
    if model_args.attn_implementation:
        kwargs["attn_implementation"] = model_args.attn_implementation
    return from_pretrained_or_explain(AutoModelForCausalLM, model_args.model_name_or_path, "model", **kwargs)


def label_position_loss(model, inputs: dict, virtual_tokens: int = 0, num_items_in_batch=None) -> torch.Tensor:
    """Causal-LM loss with the LM head computed only where the next token is a label.

    Equal to the usual shifted cross-entropy over all positions (ignored labels contribute nothing),
    but the (tokens x vocab) logits exist only for summary positions, not for the long prompt.
    `inputs`: `input_ids`, `attention_mask`, `labels`, each (batch, length). Prompt-learning models
    prepend `virtual_tokens` positions, which never carry a label.
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


class SummarizationTrainer(Trainer):
    """Trainer whose loss computes logits only at labelled positions (see `label_position_loss`)."""

    loss_is_scaled_for_ga = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.model_accepts_loss_kwargs = True  # so the Trainer counts label tokens across accumulation steps

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if not self.args.label_position_logits:
            outputs = model(**inputs)
            loss = outputs.loss
            if num_items_in_batch is not None:  # model's mean -> sum over this batch / all accumulated tokens
                loss = loss * (inputs["labels"][:, 1:] != IGNORE_INDEX).sum() / num_items_in_batch
            return (loss, outputs) if return_outputs else loss
        virtual = num_virtual_tokens(unwrap_peft(self.accelerator.unwrap_model(model)))
        loss = label_position_loss(model, inputs, virtual, num_items_in_batch)
        if num_items_in_batch is not None and self.args.average_tokens_across_devices and self.args.world_size > 1:
            loss = loss * self.args.world_size  # DDP averages gradients; num_items_in_batch is the global count
        return (loss, {"loss": loss}) if return_outputs else loss

    # PEFT refuses to reload a prompt-learning adapter as trainable (load_adapter(is_trainable=True) raises),
    # which breaks both resuming and load_best_model_at_end; load the prompt tensors in place instead.
    def _load_from_checkpoint(self, resume_from_checkpoint, model=None):
        target = unwrap_peft(model if model is not None else self.model)
        if num_virtual_tokens(target):
            return load_prompt_weights(target, resume_from_checkpoint)
        return super()._load_from_checkpoint(resume_from_checkpoint, model)

    def _load_best_model(self):
        target = unwrap_peft(self.model)
        if num_virtual_tokens(target) and self.state.best_model_checkpoint:
            return load_prompt_weights(target, self.state.best_model_checkpoint)
        return super()._load_best_model()


def load_prompt_weights(model, checkpoint: str) -> None:
    """Copy a checkpoint's prompt-tuning tensors into `model` in place (they stay trainable)."""
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    path = Path(checkpoint) / "adapter_model.safetensors"
    if not path.is_file():
        raise FileNotFoundError(f"{checkpoint}: no adapter_model.safetensors to resume the soft prompt from")
    set_peft_model_state_dict(model, load_file(str(path)))


def resolve_checkpoint(training_args) -> str | None:
    """`--resume_from_checkpoint PATH`, or 'last'/'true' for the newest checkpoint in output_dir."""
    value = training_args.resume_from_checkpoint
    if value is None or str(value).lower() in {"", "false", "none"}:
        return None
    if str(value).lower() in {"last", "true"}:
        last = get_last_checkpoint(training_args.output_dir) if os.path.isdir(training_args.output_dir) else None
        if last is None:
            raise FileNotFoundError(f"--resume_from_checkpoint {value}: no checkpoint-* folder in "
                                    f"{training_args.output_dir}")
        return last
    if not os.path.isdir(value):
        raise FileNotFoundError(f"--resume_from_checkpoint {value}: no such checkpoint folder")
    return value


def build_trainer(cfg: RunConfig, model, tokenizer, splits) -> SummarizationTrainer:
    """The Trainer for any method: tokenized splits, padding collator, ROUGE callback."""
    train = tokenize_for_training(splits["train"], tokenizer, cfg.data)
    evaluation = tokenize_for_training(splits["validation"], tokenizer, cfg.data)
    callbacks = []
    if cfg.generation.num_eval_generate > 0 and cfg.training.eval_strategy != "no":
        sample = splits["validation"].select(range(min(cfg.generation.num_eval_generate, len(splits["validation"]))))
        prompts = build_prompts(tokenizer, sample["article"], cfg.data)
        callbacks.append(GenerateAndScoreCallback(tokenizer, prompts, list(sample["summary"]), cfg.generation))
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
    return SummarizationTrainer(model=model, args=args, train_dataset=train, eval_dataset=evaluation,
                                data_collator=PaddingCollator(pad_id=tokenizer.pad_token_id),
                                processing_class=tokenizer, callbacks=callbacks)


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


def train_model(trainer: SummarizationTrainer, cfg: RunConfig) -> dict:
    """Train (resuming if asked) and return wall time and throughput."""
    start = time.perf_counter()
    result = trainer.train(resume_from_checkpoint=resolve_checkpoint(cfg.training))
    wall = time.perf_counter() - start
    tokens = trainer.state.num_input_tokens_seen
    return {"train_wall_time_s": round(wall, 3), "train_steps": trainer.state.global_step,
            "train_loss": result.training_loss, "train_tokens": tokens,
            "train_tokens_per_s": round(tokens / wall, 2) if wall > 0 else None,
            "best_model_checkpoint": trainer.state.best_model_checkpoint,
            "log_history": trainer.state.log_history}


def predict_test(model, tokenizer, test_split, cfg: RunConfig) -> tuple[list[str], dict]:
    """Summaries for the test split and the generation throughput."""
    prompts = build_prompts(tokenizer, test_split["article"], cfg.data)
    start = time.perf_counter()
    predictions = generate_summaries(model, tokenizer, prompts, cfg.generation)
    wall = time.perf_counter() - start
    generated = sum(len(tokenizer(p, add_special_tokens=False)["input_ids"]) for p in predictions)
    return predictions, {"generation_wall_time_s": round(wall, 3), "generated_tokens": generated,
                         "generation_tokens_per_s": round(generated / wall, 2) if wall > 0 else None}


def merged_for_generation(model):
    """A LoRA model merged into a copy of its weights, else the model itself.

    Same logits up to float rounding (tests/test_resume_export_hub.py), without the two extra adapter
    matmuls per linear layer at every decoding step (about 8% of CPU generation time on GPT-Neo-125M).
    """
    from peft import PeftModel

    if isinstance(model, PeftModel) and model.active_peft_config.peft_type.value == "LORA":
        return copy.deepcopy(model).merge_and_unload()
    return model


def run_method(cfg: RunConfig) -> dict:
    """Load, build, train (unless zero-shot), save, predict the test split, write the result files."""
    set_seed(cfg.training.seed)
    state = PartialState()
    check_launch(state, cfg.method_name)
    out_dir = Path(cfg.training.output_dir)
    tokenizer = load_tokenizer(cfg.model)
    needed = ("test",) if cfg.method_name == "zero_shot" else SPLITS
    splits, counts = load_splits(cfg.data, needed)
    trained_path = getattr(cfg.method, "trained_path", None)
    if trained_path:
        model, carried = load_for_generation(load_base_model(cfg.model), trained_path)
    else:
        model, carried = build_method(cfg.method_name, load_base_model(cfg.model), cfg.method, cfg.model), {}
    params = count_parameters(model)
    _log_parameters(f"{carried['method']} from {trained_path}" if carried.get("method") else cfg.method_name, params)
    train_stats: dict = {}
    if cfg.method_name != "zero_shot":
        trainer = build_trainer(cfg, model, tokenizer, splits)
        train_stats = train_model(trainer, cfg)
        model = unwrap_peft(trainer.accelerator.unwrap_model(trainer.model))
        # FSDP: gathering the sharded weights is collective, so every process takes part.
        full_state = trainer.accelerator.get_state_dict(trainer.model) if trainer.is_fsdp_enabled else None
        if state.is_main_process:
            save_trained(model, out_dir / ADAPTER_DIR, cfg.method_name, cfg.model.model_name_or_path, full_state)
        state.wait_for_everyone()
        if trainer.is_fsdp_enabled:  # sharded weights can be neither deep-copied (merge) nor run by one process
            model = load_trained(load_base_model(cfg.model), out_dir / ADAPTER_DIR).to(state.device)
    else:
        model.to(state.device)
    inference_model = merged_for_generation(model)  # merged once, for the test summaries and the export
    predictions, gen_stats = predict_test(inference_model, tokenizer, splits["test"], cfg)
    summary = {}
    if state.is_main_process:
        summary = write_results(cfg, splits["test"], predictions, counts, params, train_stats, gen_stats, carried)
        export_extras(cfg, inference_model, tokenizer, summary)
        print(f"Results written to {out_dir.resolve()}: {PREDICTIONS_FILE}, {RUN_FILE}"
              + (f", {ADAPTER_DIR}/" if cfg.method_name != "zero_shot" else ""), flush=True)
    state.wait_for_everyone()
    return summary


def check_launch(state, method_name: str) -> None:
    """Refuse launches that would go wrong, before anything loads.

    - Processes launched together that each run alone (each would write every file): on a machine
      without GPUs, a multi-process launch (torchrun, accelerate's MULTI_GPU type) needs --use_cpu true.
    - Soft prompt tuning under FSDP: PEFT cannot save a sharded prompt; the prompt is tiny, DDP suits it.
    """
    launched = int(os.environ.get("WORLD_SIZE", "1"))
    if launched != state.num_processes:
        raise ConfigError(f"{launched} processes were launched but each one runs alone (accelerate sees "
                          f"{state.num_processes}): on a machine without GPUs add --use_cpu true")
    if method_name == "soft_prompt" and state.distributed_type == DistributedType.FSDP:
        raise ConfigError("soft prompt tuning under FSDP is not supported (PEFT cannot save a sharded prompt); "
                          "launch it with DDP (configs/accelerate/multi_gpu.yaml): the prompt is tiny")


def export_extras(cfg: RunConfig, model, tokenizer, summary: dict) -> None:
    """Optional outputs after the results: the merged LoRA model, the Hub upload.

    `model` is the inference model of `run_method`: for LoRA, already merged by `merged_for_generation`.
    """
    merge_dir = getattr(cfg.method, "merge_and_export", None)
    if merge_dir:
        export_merged(model, tokenizer, merge_dir)
        print(f"Merged model written to {Path(merge_dir).resolve()}", flush=True)
    if cfg.training.push_to_hub:
        folder = prepare_hub_folder(Path(cfg.training.output_dir), summary, cfg.training.hub_model_id)
        print(f"Hub folder prepared at {folder.resolve()}", flush=True)
        try:
            url = push_folder(folder, cfg.training.hub_model_id, token=cfg.training.hub_token,
                              private=cfg.training.hub_private_repo)
        except HubUnreachableError as error:
            raise HubUnreachableError(f"{error}\nEverything else is saved; upload later with: "
                                      f"hf upload {cfg.training.hub_model_id} {folder}") from error
        print(f"Pushed to the Hub: {url}", flush=True)


def export_merged(merged, tokenizer, out_dir: str) -> Path:
    """Write a LoRA model merged by `merged_for_generation` as plain weights (AutoModelForCausalLM alone)."""
    from peft import PeftModel

    if isinstance(merged, PeftModel):
        raise ValueError("--merge_and_export applies to LoRA adapters only")
    merged.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    return Path(out_dir)


CARRIED_FIELDS = ("method", "trainable", "total", "trainable_percent", "tied_lm_head", "train_wall_time_s",
                  "train_steps", "train_loss", "train_tokens", "train_tokens_per_s", "saved_size_bytes", "peak_memory")


def load_for_generation(base_model, trained_path: str) -> tuple[torch.nn.Module, dict]:
    """`base_model` with a training run's saved adapter or tensors, and the fields of that run's run.json
    (method, parameter counts, training cost) that the new run.json carries over.

    `trained_path` is a run's `adapter/` folder (run.json is read from the folder above it) or the Hub
    id of a pushed run (`--push_to_hub`), whose run.json sits beside the weights.

    Example:
        >>> model, carried = load_for_generation(base, "runs/lora/adapter")
        >>> carried["method"], carried["trained_path"]
        ('lora', 'runs/lora/adapter')
    """
    folder = resolve_trained_path(trained_path)
    model = load_trained(base_model, folder)
    source = next((p for p in (folder / RUN_FILE, folder.parent / RUN_FILE) if p.is_file()), None)
    run = json.loads(source.read_text(encoding="utf-8")) if source else {}
    if not run:
        logger.warning("no run.json in or above %s: run.json will not carry the training run's method and costs",
                       folder)
    return model, {**{k: run[k] for k in CARRIED_FIELDS if k in run}, "trained_path": str(trained_path)}


def resolve_trained_path(trained_path: str) -> Path:
    """A local folder as is; a Hub repo id from the local cache, else downloaded."""
    if Path(trained_path).is_dir():
        return Path(trained_path)
    if not is_hub_id(trained_path):
        raise FileNotFoundError(f"--trained_path {trained_path}: no such folder (nor a Hub repo id)")
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(trained_path, local_files_only=True))
    except (OSError, ValueError):
        require_hub(f"Trained weights '{trained_path}' (not in the local cache)")
    return Path(snapshot_download(trained_path))


def write_results(cfg: RunConfig, test_split, predictions, counts, params, train_stats, gen_stats,
                  carried: dict | None = None) -> dict:
    """Write predictions_test.csv and run.json (atomically) and return the run.json payload.

    `carried`: fields from the training run whose saved weights generated these predictions (see
    `load_for_generation`); they replace this run's own method, parameter counts, (absent) training cost
    and peak memory (the training run's, which covered its own generation; this run's is kept as
    `generation_peak_memory`).
    """
    out_dir = Path(cfg.training.output_dir)
    references = list(test_split["summary"])
    write_predictions_csv(out_dir / PREDICTIONS_FILE, list(test_split["id"]), list(test_split["article"]),
                          references, predictions)
    test_rouge = {k: round(v, 4) for k, v in rouge_scores(predictions, references).items()}
    memory = peak_memory()
    payload = {
        "method": cfg.method_name,
        "base_model": cfg.model.model_name_or_path,
        **params.to_dict(),
        "examples": counts,
        **train_stats,
        **gen_stats,
        "peak_memory": memory,
        "world_size": PartialState().num_processes,
        "saved_size_bytes": folder_size_bytes(out_dir / ADAPTER_DIR),
        "test_rouge": test_rouge,
        "test_mean_words": {"predicted": round(mean_words(predictions), 2),
                            "reference": round(mean_words(references), 2)},
        "config": cfg.to_dict(),
        "versions": package_versions(),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        **({"generation_peak_memory": memory, **carried} if carried else {}),
    }
    write_json(out_dir / RUN_FILE, payload)
    print("Test ROUGE: " + ", ".join(f"{k}={v:.2f}" for k, v in test_rouge.items()), flush=True)
    return payload


def _log_parameters(method_name: str, params) -> None:
    tied = " (includes the LM head tied to the input embeddings)" if params.tied_lm_head else ""
    logger.info("%s: %d trainable of %d parameters (%.4f%%)%s", method_name, params.trainable, params.total,
                params.trainable_percent, tied)
    if PartialState().is_main_process:
        print(f"{method_name}: trainable {params.trainable:,} / total {params.total:,} "
              f"({params.trainable_percent:.4f}%){tied}", flush=True)
