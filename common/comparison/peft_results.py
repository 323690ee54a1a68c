"""The compared runs in the field names of PEFT's method comparison (`method_comparison/` in huggingface/peft):
one JSON per trained run with `run_info`, `train_info` and `meta_info`, so that PEFT's results tools and their
readers can take ours. Written by evaluate_all.py to OUTPUT_DIR/peft_results/<name>.json, the name's `/` as
`--` (PEFT's file naming); baselines and CSVs without a run.json get no file (PEFT's results are trained runs).

The mapping, from run.json and this comparison; what we do not measure is null, never estimated:

run_info:
    created_at: null (run.json records when a run finished, `finished_at`, not when it started).
    total_time: null (we time training, evaluation and generation apart, not the whole process).
    experiment_name: the system's name in the comparison (e.g. `gpt-neo-125m/lora`).
    peft_branch: null.
    train_config: run.json `config` (the resolved configuration), plus `model_id` <- `base_model`.
    peft_config: the run's `adapter/adapter_config.json` (PEFT methods); null otherwise (fine-tuning), which
        PEFT reads as a run without a PEFT config.
    error_msg: "" (a run folder holds results only once its run has finished).
train_info:
    accelerator_memory_max: `peak_memory.peak_cuda_allocated_mib` x 2**20, in bytes (torch's
        `max_memory_allocated`, as PEFT's); null without a GPU, where run.json records resident memory instead.
    accelerator_memory_reserved_avg, accelerator_memory_reserved_99th: null (not measured).
    train_time: `train_time_s` (seconds in optimizer steps; evaluation excluded, as in PEFT).
    file_size: `saved_size_bytes` (the adapter or the trained tensors on disk).
    num_trainable_params: `trainable`; num_total_params: `total`.
    status: "success".
    metrics: one entry, the end of training: `step` <- `train_steps`, `train loss` <- `train_loss` (the mean over
        all of training; PEFT logs the last interval's), `train samples` null (not recorded), `train total tokens`
        <- `train_tokens`; and this comparison's test scores: `test <key>` (ROUGE F1 x 100 for rouge1, rouge2,
        rougeL, rougeLsum) with `test <key> ci95` ([low, high], bootstrap), on `test examples` examples of
        `test set`.
meta_info:
    model_info, dataset_info: {"sha": null, "created_at": null} (we record names, not revisions).
    package_info: `<package>-version` <- run.json `versions` (null where not recorded), `<package>-commit-hash` null.
    system_info: {"platform", "python"} <- run.json `versions`.
    pytorch_info: null.

Example (a LoRA run scored in memory; `write_peft_results` writes one such file per trained run):
    >>> from common.comparison.systems import System, compare
    >>> run = {"method": "lora", "base_model": "gpt-neo", "trainable": 36864, "total": 125_000_000,
    ...        "train_time_s": 95.0, "saved_size_bytes": 157312, "peak_memory": {"peak_rss_mib": 900.0},
    ...        "train_steps": 40, "train_loss": 2.5, "config": {"training": {"learning_rate": 0.001}}}
    >>> lora = System("neo/lora", "lora", "runs/neo/lora", ["The cat sat."], ["The cat sat."], keys=["a"], run=run)
    >>> result = compare([lora], ["a"], samples=10, seed=0)
    >>> payload = peft_result(result.systems[0], "cnn_dailymail[test]")
    >>> info = payload["train_info"]
    >>> info["num_trainable_params"], info["train_time"], info["file_size"], info["accelerator_memory_max"]
    (36864, 95.0, 157312, None)
    >>> info["metrics"][-1]["test rougeLsum"], info["metrics"][-1]["test rougeLsum ci95"]
    (100.0, [100.0, 100.0])
    >>> payload["run_info"]["train_config"]["model_id"], result_file_name("neo/lora")
    ('gpt-neo', 'neo--lora.json')
"""

from __future__ import annotations

import json
from pathlib import Path

from ..core.atomic import write_json
from ..runs.transaction import ADAPTER_DIR
from ..scoring.rouge import ROUGE_KEYS
from .systems import Comparison, Scored

PEFT_RESULTS_DIR = "peft_results"
PEFT_PACKAGES = ("transformers", "peft", "datasets", "bitsandbytes", "torch")  # the ones PEFT's readers expect
SYSTEM_FIELDS = ("platform", "python")  # in run.json `versions`, not packages
UNMEASURED_MEMORY = ("accelerator_memory_reserved_avg", "accelerator_memory_reserved_99th")


def adapter_config(source: str) -> dict | None:
    """The run's adapter/adapter_config.json (a PEFT method's config), or None when there is none or it is unreadable.

    Example:
        >>> adapter_config("runs/nowhere") is None
        True
    """
    path = Path(source) / ADAPTER_DIR / "adapter_config.json"
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return payload if isinstance(payload, dict) else None


def run_info(scored: Scored) -> dict:
    """PEFT's run_info: the name, the configuration with `model_id`, the adapter's PEFT config."""
    run = scored.system.run
    return {"created_at": None, "total_time": None, "experiment_name": scored.name, "peft_branch": None,
            "train_config": {"model_id": run.get("base_model"), **(run.get("config") or {})},
            "peft_config": adapter_config(scored.system.source), "error_msg": ""}


def accelerator_bytes(run: dict) -> int | None:
    """Peak GPU memory allocated, in bytes, from run.json's MiB; None when the run recorded none.

    Example:
        >>> accelerator_bytes({"peak_memory": {"peak_cuda_allocated_mib": 1.5}}), accelerator_bytes({})
        (1572864, None)
    """
    mib = (run.get("peak_memory") or {}).get("peak_cuda_allocated_mib")
    return None if mib is None else int(round(mib * 2**20))


def final_metrics(scored: Scored, test_set: str) -> dict:
    """The metrics entry at the end of training: training figures from run.json, test ROUGE with its 95% CI."""
    run = scored.system.run
    entry = {"step": run.get("train_steps"), "train loss": run.get("train_loss"), "train samples": None,
             "train total tokens": run.get("train_tokens"), "test set": test_set, "test examples": len(scored.scores)}
    for key in ROUGE_KEYS:
        entry.update({f"test {key}": scored.means[key], f"test {key} ci95": list(scored.ci[key])})
    return entry


def train_info(scored: Scored, test_set: str) -> dict:
    """PEFT's train_info: memory, time, size, parameter counts and the metrics."""
    run = scored.system.run
    return {"accelerator_memory_max": accelerator_bytes(run), **dict.fromkeys(UNMEASURED_MEMORY),
            "train_time": run.get("train_time_s"), "file_size": run.get("saved_size_bytes"),
            "num_trainable_params": run.get("trainable"), "num_total_params": run.get("total"), "status": "success",
            "metrics": [final_metrics(scored, test_set)]}


def meta_info(run: dict) -> dict:
    """PEFT's meta_info: package versions as `<name>-version` (null where not recorded), no revisions.

    Example:
        >>> meta_info({"versions": {"torch": "2.5.0", "python": "3.11.7"}})["package_info"]["torch-version"]
        '2.5.0'
    """
    recorded = run.get("versions") or {}
    versions = {name: value for name, value in recorded.items() if name not in SYSTEM_FIELDS}
    packages = {}
    for name in dict.fromkeys((*PEFT_PACKAGES, *versions)):
        packages.update({f"{name}-version": versions.get(name), f"{name}-commit-hash": None})
    return {"model_info": {"sha": None, "created_at": None}, "dataset_info": {"sha": None, "created_at": None},
            "package_info": packages, "system_info": {key: recorded.get(key) for key in SYSTEM_FIELDS},
            "pytorch_info": None}


def peft_result(scored: Scored, test_set: str) -> dict:
    """One run as a PEFT method-comparison result (see the module doc for each field)."""
    return {"run_info": run_info(scored), "train_info": train_info(scored, test_set),
            "meta_info": meta_info(scored.system.run)}


def result_file_name(name: str) -> str:
    """PEFT's file name for an experiment: its `/` as `--`, then .json."""
    return name.replace("/", "--") + ".json"


def write_peft_results(result: Comparison, output_dir: str | Path, test_set: str) -> list[Path]:
    """OUTPUT_DIR/peft_results/<name>.json for each trained run with a run.json; files there from an earlier
    comparison that this one does not write are removed, as they would show other runs."""
    folder = Path(output_dir) / PEFT_RESULTS_DIR
    written = []
    for scored in result.systems:
        if not scored.system.is_baseline and scored.system.run:
            written.append(folder / result_file_name(scored.name))
            write_json(written[-1], peft_result(scored, test_set))
    for stale in folder.glob("*.json") if folder.is_dir() else []:
        if stale not in written:
            stale.unlink()
    return written
