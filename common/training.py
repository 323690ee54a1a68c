"""One run, as a short sequence of named steps: what every `train_*.py` and `common.zero_shot` call.

`run_method(cfg)`: check the launch and the output folder, load tokenizer, data and model, build the
method, train (or resume), then write the results as one transaction (`run_folder`: adapter,
predictions and run.json appear together or not at all), then the optional merged export and Hub push.

Example:
    >>> cfg = parse_run_config("lora", ["--model_name_or_path", "/tmp/tiny", "--train_file", "train.jsonl", ...])
    >>> summary = run_method(cfg)
    >>> summary["test_rouge"]["rougeLsum"]
    12.3
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

from accelerate import PartialState
from accelerate.utils import DistributedType
from transformers import AutoConfig, set_seed

from . import run_folder
from .cli import ConfigError
from .config import RunConfig, check_lengths_against_model, trains
from .data import SPLITS, load_splits
from .generation import generate_summaries, unwrap_peft
from .hub import HubUnreachableError, prepare_hub_folder, push_folder
from .methods import build_method, count_parameters, load_trained, save_trained
from .metrics import mean_words, rouge_scores
from .models import (export_merged, from_pretrained_or_explain, load_base_model, load_for_generation, load_tokenizer,
                     merged_for_generation)
from .results import PREDICTIONS_FILE, RUN_FILE, folder_size_bytes, package_versions, peak_memory, write_json, write_predictions_csv
from .run_folder import ADAPTER_DIR
from .tokenization import build_prompts
from .trainer import build_trainer, resolve_checkpoint, train_model

logger = logging.getLogger(__name__)


def run_method(cfg: RunConfig) -> dict:
    """Check, load, build, train (unless generation only), predict, commit the results, export."""
    set_seed(cfg.training.seed)
    state = PartialState()
    check_launch(state, cfg.method_name)
    out_dir = Path(cfg.training.output_dir)
    checkpoint = resolve_checkpoint(cfg.training) if trains(cfg.method_name) else None
    prepare_output_dir(out_dir, cfg, resuming=checkpoint is not None)
    tokenizer = load_tokenizer(cfg.model)
    model_config = from_pretrained_or_explain(AutoConfig, cfg.model.model_name_or_path, "model config")
    check_lengths_against_model(cfg, model_config, tokenizer)
    splits, counts = load_splits(cfg.data, SPLITS if trains(cfg.method_name) else ("test",))
    model, carried = load_model(cfg)
    params = count_parameters(model)
    _log_parameters(f"{carried['method']} from {carried['trained_path']}" if carried.get("method")
                    else cfg.method_name, params)
    staging = out_dir / run_folder.STAGING
    if state.is_main_process:
        run_folder.begin(out_dir)
    state.wait_for_everyone()
    train_stats = {}
    if trains(cfg.method_name):
        model, train_stats = train_and_save(cfg, model, tokenizer, splits, checkpoint, staging)
    else:
        model.to(state.device)
    inference_model = merged_for_generation(model)  # merged once, for the test summaries and the export
    predictions, gen_stats = predict_test(inference_model, tokenizer, splits["test"], cfg)
    summary = {}
    if state.is_main_process:
        summary = write_results(staging, cfg, splits["test"], predictions, counts, params, train_stats, gen_stats,
                                carried)
        run_folder.commit(out_dir)
        print(f"Results written to {out_dir.resolve()}: {PREDICTIONS_FILE}, {RUN_FILE}"
              + (f", {ADAPTER_DIR}/" if trains(cfg.method_name) else ""), flush=True)
        export_extras(cfg, inference_model, tokenizer, summary)
    state.wait_for_everyone()
    return summary


def prepare_output_dir(out_dir: Path, cfg: RunConfig, resuming: bool) -> None:
    """Refuse a folder holding a finished run unless told to replace or resume it; a fresh run that
    replaces one deletes the old run's checkpoints (its results stay until the new ones are committed)."""
    state = PartialState()
    if state.is_main_process:
        run_folder.check_output_dir(out_dir, cfg.training.overwrite_output_dir, resuming)
        if cfg.training.overwrite_output_dir and not resuming and trains(cfg.method_name):
            removed = run_folder.remove_checkpoints(out_dir)
            if removed:
                print(f"--overwrite_output_dir: removed the earlier run's {', '.join(removed)}", flush=True)
    state.wait_for_everyone()


def load_model(cfg: RunConfig):
    """The model to train or generate with, and the fields carried from a training run (generation only)."""
    trained_path = getattr(cfg.method, "trained_path", None)
    if trained_path:
        return load_for_generation(load_base_model(cfg.model), trained_path)
    return build_method(cfg.method_name, load_base_model(cfg.model), cfg.method, cfg.model), {}


def train_and_save(cfg: RunConfig, model, tokenizer, splits, checkpoint: str | None, staging: Path):
    """Train (or resume) and save what was trained to `staging/adapter`; returns the model to generate
    with and the training costs."""
    state = PartialState()
    trainer = build_trainer(cfg, model, tokenizer, splits)
    train_stats = train_model(trainer, checkpoint)
    model = unwrap_peft(trainer.accelerator.unwrap_model(trainer.model))
    # FSDP: gathering the sharded weights is collective, so every process takes part.
    full_state = trainer.accelerator.get_state_dict(trainer.model) if trainer.is_fsdp_enabled else None
    if state.is_main_process:
        save_trained(model, staging / ADAPTER_DIR, cfg.method_name, cfg.model.model_name_or_path, full_state)
    state.wait_for_everyone()
    if trainer.is_fsdp_enabled:  # sharded weights can be neither deep-copied (merge) nor run by one process
        model = load_trained(load_base_model(cfg.model), staging / ADAPTER_DIR).to(state.device)
    return model, train_stats


def predict_test(model, tokenizer, test_split, cfg: RunConfig) -> tuple[list[str], dict]:
    """Summaries for the test split and the generation throughput."""
    prompts = build_prompts(tokenizer, test_split["article"], cfg.data)
    start = time.perf_counter()
    predictions = generate_summaries(model, tokenizer, prompts, cfg.generation)
    wall = time.perf_counter() - start
    generated = sum(len(tokenizer(p, add_special_tokens=False)["input_ids"]) for p in predictions)
    return predictions, {"generation_wall_time_s": round(wall, 3), "generated_tokens": generated,
                         "generation_tokens_per_s": round(generated / wall, 2) if wall > 0 else None}


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


def write_results(folder: Path, cfg: RunConfig, test_split, predictions, counts, params, train_stats, gen_stats,
                  carried: dict | None = None) -> dict:
    """Write predictions_test.csv and run.json into `folder` (the staging folder) and return the payload.

    `carried`: fields from the training run whose saved weights generated these predictions (see
    `load_for_generation`); they replace this run's own method, parameter counts, (absent) training cost
    and peak memory (the training run's, which covered its own generation; this run's is kept as
    `generation_peak_memory`).
    """
    references = list(test_split["summary"])
    write_predictions_csv(folder / PREDICTIONS_FILE, list(test_split["id"]), list(test_split["article"]),
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
        "saved_size_bytes": folder_size_bytes(folder / ADAPTER_DIR),
        "test_rouge": test_rouge,
        "test_mean_words": {"predicted": round(mean_words(predictions), 2),
                            "reference": round(mean_words(references), 2)},
        "config": cfg.to_dict(),
        "versions": package_versions(),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        **({"generation_peak_memory": memory, **carried} if carried else {}),
    }
    write_json(folder / RUN_FILE, payload)
    print("Test ROUGE: " + ", ".join(f"{k}={v:.2f}" for k, v in test_rouge.items()), flush=True)
    return payload


def _log_parameters(method_name: str, params) -> None:
    tied = " (includes the LM head tied to the input embeddings)" if params.tied_lm_head else ""
    logger.info("%s: %d trainable of %d parameters (%.4f%%)%s", method_name, params.trainable, params.total,
                params.trainable_percent, tied)
    if PartialState().is_main_process:
        print(f"{method_name}: trainable {params.trainable:,} / total {params.total:,} "
              f"({params.trainable_percent:.4f}%){tied}", flush=True)
