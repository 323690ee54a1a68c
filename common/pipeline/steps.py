"""One run as a short sequence of named steps; the scripts show the same steps (train_lora.py).

    cfg = parse_run_config("lora", argv)              # flags and YAML, every value checked
    run = start(cfg)                                 # launch and output-folder checks, resume point
    tokenizer, splits, counts = load_data(cfg)       # tokenizer (+ length checks) and splits
    model = build_method("lora", load_base_model(cfg.model), cfg.method, cfg.model)
    model, costs = train(cfg, run, model, tokenizer, splits)       # train or resume; adapter staged
    summary = predict_and_commit(cfg, run, model, tokenizer, splits, counts, costs)
    export(cfg, run, model, tokenizer)               # --merge_and_export, --push_to_hub

`run_method(cfg)` runs them for any registered method; `common.predict` is the generation-only path
(no training: the base model, or a trained run's weights). Results are written as one transaction
(`runs.transaction`): adapter, predictions and run.json appear together or not at all.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

from accelerate import PartialState
from accelerate.utils import DistributedType
from transformers import AutoConfig, set_seed

from ..config.arguments import RunConfig, trains
from ..config.parsing import check_precision_against_model
from ..core.atomic import folder_size_bytes, write_json
from ..core.cli import ConfigError
from ..data.lengths import check_lengths_against_model
from ..data.loading import SPLITS, load_splits
from ..data.prompts import build_prompts
from ..generation.generate import Summary, generate_summaries_and_stops, generation_precision
from ..hub.publish import publish_run
from ..methods import build_method, count_parameters, load_trained, save_trained
from ..methods.base import unwrap_peft
from ..methods.merge import export_merged, merged_for_generation
from ..models.loading import from_pretrained_or_explain, load_base_model, load_tokenizer
from ..runs import transaction
from ..runs.outputs import PREDICTIONS_FILE, RUN_FILE, STOPPED, package_versions, peak_memory, write_predictions_csv
from ..scoring.rouge import mean_words, rouge_scores
from ..training.trainer import build_trainer, resolve_checkpoint, train_model

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Run:
    """Where a run writes: its folder, the staging folder of its results, and the checkpoint it resumes."""

    out_dir: Path
    checkpoint: str | None

    @property
    def staging(self) -> Path:
        return self.out_dir / transaction.STAGING


def run_method(cfg: RunConfig) -> dict:
    """Train a registered method and write its results: the steps of the module docstring."""
    if not trains(cfg.method_name):
        raise ConfigError(f"run_method trains; '{cfg.method_name}' is generation only (use common.predict)")
    run = start(cfg)
    tokenizer, splits, counts = load_data(cfg)
    model = build_method(cfg.method_name, load_base_model(cfg.model), cfg.method, cfg.model)
    model, costs = train(cfg, run, model, tokenizer, splits)
    summary = predict_and_commit(cfg, run, model, tokenizer, splits, counts, costs)
    export(cfg, run, model, tokenizer)
    return summary


def start(cfg: RunConfig) -> Run:
    """Seed, then refuse what would go wrong before anything loads: the launch, the output folder
    (a finished run is replaced only with --overwrite_output_dir, or resumed), the resume point."""
    set_seed(cfg.training.seed)
    state = PartialState()
    check_launch(state, cfg.method_name)
    checkpoint = resolve_checkpoint(cfg.training) if trains(cfg.method_name) else None
    run = Run(Path(cfg.training.output_dir), checkpoint)
    if state.is_main_process:
        transaction.check_output_dir(run.out_dir, cfg.training.overwrite_output_dir, resuming=checkpoint is not None)
        if cfg.training.overwrite_output_dir and checkpoint is None and trains(cfg.method_name):
            removed = transaction.remove_checkpoints(run.out_dir)
            if removed:
                print(f"--overwrite_output_dir: removed the earlier run's {', '.join(removed)}", flush=True)
    state.wait_for_everyone()
    return run


def load_data(cfg: RunConfig):
    """The tokenizer (lengths checked against the model's positions) and the splits the run needs."""
    tokenizer = load_tokenizer(cfg.model)
    model_config = from_pretrained_or_explain(AutoConfig, cfg.model.model_name_or_path, "model config")
    check_lengths_against_model(cfg, model_config, tokenizer)
    check_precision_against_model(cfg, model_config)
    splits, counts = load_splits(cfg.data, SPLITS if trains(cfg.method_name) else ("test",))
    return tokenizer, splits, counts


def train(cfg: RunConfig, run: Run, model, tokenizer, splits):
    """Train (or resume) and stage what was trained in `run.staging/adapter`; returns the model to
    generate with and the training costs."""
    state = PartialState()
    if state.is_main_process:
        transaction.begin(run.out_dir)  # an empty staging folder; nothing is written before this step
    log_parameters(cfg.recorded_method, count_parameters(model))
    trainer = build_trainer(cfg, model, tokenizer, splits)
    costs = train_model(trainer, run.checkpoint)
    model = unwrap_peft(trainer.accelerator.unwrap_model(trainer.model))
    # FSDP: gathering the sharded weights is collective, so every process takes part.
    full_state = trainer.accelerator.get_state_dict(trainer.model) if trainer.is_fsdp_enabled else None
    if state.is_main_process:
        save_trained(model, run.staging / transaction.ADAPTER_DIR, cfg.recorded_method, cfg.model.model_name_or_path,
                     full_state)
    state.wait_for_everyone()
    if trainer.is_fsdp_enabled:  # sharded weights can be neither deep-copied (merge) nor run by one process
        model = load_trained(load_base_model(cfg.model), run.staging / transaction.ADAPTER_DIR).to(state.device)
    return model, costs


def predict_and_commit(cfg: RunConfig, run: Run, model, tokenizer, splits, counts, costs: dict,
                       carried: dict | None = None) -> dict:
    """Summarise the test split, stage predictions_test.csv and run.json beside the adapter and commit
    them together; returns the run.json payload (on the main process; {} on the others).

    `carried`: for generation only, the fields of the training run whose weights are used."""
    state = PartialState()
    model.to(state.device)
    params = count_parameters(model)
    summaries, gen_stats = predict_test(merged_for_generation(model), tokenizer, splits["test"], cfg)
    summary = {}
    if state.is_main_process:
        if not trains(cfg.method_name):
            transaction.begin(run.out_dir)
        summary = write_results(run.staging, cfg, splits["test"], summaries, counts, params, costs, gen_stats,
                                carried)
        transaction.commit(run.out_dir)
        print(f"Results written to {run.out_dir.resolve()}: {PREDICTIONS_FILE}, {RUN_FILE}"
              + (f", {transaction.ADAPTER_DIR}/" if trains(cfg.method_name) else ""), flush=True)
    state.wait_for_everyone()
    return summary


def predict_test(model, tokenizer, test_split, cfg: RunConfig) -> tuple[list[Summary], dict]:
    """Summaries for the test split (each with whether `max_new_tokens` cut it), the precision they were
    generated in, the throughput (new token ids as generated, EOS excluded) and the share of summaries cut
    at the limit instead of ended by EOS."""
    prompts = build_prompts(tokenizer, test_split["article"], cfg.data)
    precision = generation_precision(cfg.training.mixed_precision)
    start = time.perf_counter()
    summaries = generate_summaries_and_stops(model, tokenizer, prompts, cfg.generation, precision)
    wall = time.perf_counter() - start
    generated = sum(s.tokens for s in summaries)
    cut = sum(s.cut for s in summaries)
    return summaries, {"generation_precision": precision, "generation_wall_time_s": round(wall, 3),
                       "generated_tokens": generated,
                       "generation_tokens_per_s": round(generated / wall, 2) if wall > 0 else None,
                       "summaries_cut_at_limit": cut, "summaries_cut_share": round(cut / max(len(summaries), 1), 4)}


def check_launch(state, method_name: str) -> None:
    """Refuse launches that would go wrong, before anything loads.

    - Processes launched together that each run alone (each would write every file): on a machine
      without GPUs, a multi-process launch (torchrun, accelerate's MULTI_GPU type) needs --use_cpu true.
    - Soft prompt and prefix tuning under FSDP: PEFT cannot save a sharded prompt; the prompt is tiny, DDP suits it.
    """
    launched = int(os.environ.get("WORLD_SIZE", "1"))
    if launched != state.num_processes:
        raise ConfigError(f"{launched} processes were launched but each one runs alone (accelerate sees "
                          f"{state.num_processes}): on a machine without GPUs add --use_cpu true")
    if method_name in ("soft_prompt", "prefix_tuning") and state.distributed_type == DistributedType.FSDP:
        raise ConfigError(f"{method_name} under FSDP is not supported (PEFT cannot save a sharded prompt); "
                          "launch it with DDP (configs/accelerate/multi_gpu.yaml): the prompt is tiny")


def export(cfg: RunConfig, run: Run, model, tokenizer) -> None:
    """Optional outputs once the results are committed (main process): the merged LoRA model, the Hub upload
    (from the committed run.json, as `python -m common.push` does it again later)."""
    if not PartialState().is_main_process:
        return
    merge_dir = getattr(cfg.method, "merge_and_export", None)
    if merge_dir:
        export_merged(merged_for_generation(model), tokenizer, merge_dir)
        print(f"Merged model written to {Path(merge_dir).resolve()}", flush=True)
    if cfg.training.push_to_hub:
        url = publish_run(run.out_dir, cfg.training.hub_model_id, token=cfg.training.hub_token,
                          private=cfg.training.hub_private_repo)
        print(f"Pushed to the Hub: {url}", flush=True)


def write_results(folder: Path, cfg: RunConfig, test_split, summaries: list[Summary], counts, params, train_stats,
                  gen_stats, carried: dict | None = None) -> dict:
    """Write predictions_test.csv and run.json into `folder` (the staging folder) and return the payload.

    `carried`: fields from the training run whose saved weights generated these predictions (see
    `load_for_generation`); they replace this run's own method, parameter counts, (absent) training cost
    and peak memory (the training run's, which covered its own generation; this run's is kept as
    `generation_peak_memory`).
    """
    references, predictions = list(test_split["summary"]), [summary.text for summary in summaries]
    write_predictions_csv(folder / PREDICTIONS_FILE, list(test_split["id"]), list(test_split["article"]),
                          references, predictions, stopped=[STOPPED[summary.cut] for summary in summaries])
    test_rouge = {k: round(v, 4) for k, v in rouge_scores(predictions, references).items()}
    memory = peak_memory()
    payload = {
        "method": cfg.recorded_method,  # 'dora' for lora with --use_dora, ...
        "base_model": cfg.model.model_name_or_path,
        **params.to_dict(),
        "examples": counts,
        **train_stats,
        **gen_stats,
        "peak_memory": memory,
        "world_size": PartialState().num_processes,
        "saved_size_bytes": folder_size_bytes(folder / transaction.ADAPTER_DIR),
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


def log_parameters(method_name: str, params) -> None:
    tied = " (includes the LM head tied to the input embeddings)" if params.tied_lm_head else ""
    logger.info("%s: %d trainable of %d parameters (%.4f%%)%s", method_name, params.trainable, params.total,
                params.trainable_percent, tied)
    if PartialState().is_main_process:
        print(f"{method_name}: trainable {params.trainable:,} / total {params.total:,} "
              f"({params.trainable_percent:.4f}%){tied}", flush=True)
