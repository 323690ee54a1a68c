"""The GPU path's settings and numbers, checked on a CPU: the one-GPU accelerate configs pin one GPU (as
accelerate 1.15's own launcher reads them), benchmarks/gpu_check.py (its rows from run.json's training time
and raw generated tokens, timeouts and the budget, one table, the FSDP row with 2 GPUs; training scripts
replaced by tiny fake scripts), and the benchmark's GPU peak, spec lookup, batch sizes and fp16 step."""

from __future__ import annotations

import doctest
import os
import shlex
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import yaml

from benchmarks import gpu_check
from benchmarks.flops import dense_bf16_flop_per_s, matmul_peak, peak_shape

ROOT = Path(__file__).resolve().parents[1]
SKIPPED_DIRS = {"runs", "__pycache__", "node_modules"}


def accelerate_configs() -> dict[Path, dict]:
    """Every accelerate launch config in the project (a YAML mapping with a distributed_type), by path
    relative to the root; hidden folders (.venv, .cache) and runs/ are not searched."""
    found = {}
    for folder, dirs, files in os.walk(ROOT):
        dirs[:] = [d for d in dirs if not d.startswith(".") and d not in SKIPPED_DIRS]
        for name in files:
            if name.endswith((".yaml", ".yml")):
                config = yaml.safe_load((Path(folder) / name).read_text(encoding="utf-8"))
                if isinstance(config, dict) and "distributed_type" in config:
                    found[(Path(folder) / name).relative_to(ROOT)] = config
    return found


def one_process_gpu_configs() -> list[Path]:
    """The configs that run one process on a GPU: distributed_type 'NO' and not use_cpu."""
    return sorted(path for path, config in accelerate_configs().items()
                  if config["distributed_type"] == "NO" and not config.get("use_cpu"))


def accelerate_launch_env(argv: list[str]) -> dict[str, str]:
    """The script's environment as `accelerate launch ARGV` makes it: accelerate 1.15's own argument checks
    (`_validate_launch_command`, which raises on a launch it refuses), then its single- or multi-GPU launcher's
    environment."""
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser
    from accelerate.utils.launch import prepare_multi_gpu_env, prepare_simple_launcher_cmd_env

    args, _, _ = _validate_launch_command(launch_command_parser().parse_args(argv))
    return prepare_multi_gpu_env(args) if args.multi_gpu else prepare_simple_launcher_cmd_env(args)[1]


def header_commands(path: Path) -> list[list[str]]:
    """The `accelerate launch` command lines of a config's header comment, each as the words after
    `accelerate launch`."""
    header = (ROOT / path).read_text(encoding="utf-8").split("\ncompute_environment:")[0]
    return [shlex.split(line.lstrip("# "))[2:] for line in header.splitlines()
            if line.startswith("#") and line.lstrip("# ").startswith("accelerate launch ")]


# Item 6: one GPU means one GPU.

def test_the_one_gpu_configs_are_found():
    assert {Path("accelerate_config.yaml"), Path("configs/accelerate/one_gpu.yaml")} <= set(one_process_gpu_configs())


@pytest.mark.parametrize("path", one_process_gpu_configs(), ids=str)
def test_a_one_process_gpu_config_pins_exactly_one_gpu(path, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1,2,3")  # a multi-GPU machine where the user named all four
    gpu_ids = accelerate_configs()[path]["gpu_ids"]
    assert isinstance(gpu_ids, str) and gpu_ids.isdigit(), gpu_ids  # a YAML int breaks accelerate's .split(",")
    env = accelerate_launch_env(["--config_file", str(ROOT / path), "train_lora.py"])
    assert env["CUDA_VISIBLE_DEVICES"] == gpu_ids


@pytest.mark.parametrize("path", one_process_gpu_configs(), ids=str)
def test_a_one_process_gpu_config_header_is_true(path, monkeypatch):
    """Every command in the header is one accelerate accepts and names this file; the plain one runs on GPU 0
    whatever CUDA_VISIBLE_DEVICES held, --gpu_ids 1 moves it to GPU 1, and --multi_gpu with --gpu_ids all sees
    every GPU again, as the header says."""
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3")
    header = (ROOT / path).read_text(encoding="utf-8").split("\ncompute_environment:")[0]
    assert header.startswith("# One GPU") and "CUDA_VISIBLE_DEVICES=0" in header and "--gpu_ids 1" in header
    commands = header_commands(path)
    assert commands and commands[0][:2] == ["--config_file", str(path)], commands
    for words in commands:
        assert words[:2] == ["--config_file", str(path)], words
        env = accelerate_launch_env(["--config_file", str(ROOT / path), *words[2:]])
        assert env["CUDA_VISIBLE_DEVICES"] == ("3" if "--multi_gpu" in words else "0"), words  # "3": untouched
    other = accelerate_launch_env(["--config_file", str(ROOT / path), "--gpu_ids", "1", *commands[0][2:]])
    assert other["CUDA_VISIBLE_DEVICES"] == "1"


# gpu_check: its runs, rows, timeouts, budget and table, with fake training scripts.

RUN_JSON = {  # run.json as common/pipeline/steps.py writes it (the fields gpu_check reads)
    "log_history": [{"loss": 2.5, "step": 1}, {"loss": 2.0, "step": 2}, {"eval_loss": 2.2, "step": 2}],
    "train_tokens": 6000, "train_time_s": 3.0, "eval_time_s": 9.0, "train_wall_time_s": 12.0,
    "train_tokens_per_s": 2000.0, "generated_tokens": 960, "generation_wall_time_s": 4.0,
    "generation_tokens_per_s": 240.0, "generation_precision": "bf16-autocast",
    "peak_memory": {"peak_cuda_allocated_mib": 1234.0}, "test_rouge": {"rougeLsum": 1.5}}

FAKE_TRAINING = f"""
import json, os, sys
from pathlib import Path
out = Path(sys.argv[sys.argv.index("--output_dir") + 1])
out.mkdir(parents=True, exist_ok=True)
run = {{**{RUN_JSON!r}, "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"), "argv": sys.argv[1:]}}
(out / "run.json").write_text(json.dumps(run))
"""

SLEEPER = """
import subprocess, sys, time
from pathlib import Path
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
Path(__file__).with_suffix(".pid").write_text(str(child.pid))
time.sleep(60)
"""


def fake_scripts(monkeypatch, folder: Path, source: str) -> Path:
    """Every method's training script replaced by `source`, written to `folder`."""
    script = folder / "fake_train.py"
    script.write_text(source)
    monkeypatch.setattr(gpu_check, "SCRIPTS", {method: str(script) for method in gpu_check.SCRIPTS})
    return script


def check_args(tmp_path: Path, *flags: str):
    return gpu_check.make_parser().parse_args(["--skip_benchmark", "--out", str(tmp_path / "gpu_check.json"), *flags])


def is_gone(pid: int, wait_s: float = 3.0) -> bool:
    """True once process `pid` has exited (gone or a zombie) within `wait_s` seconds."""
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        try:
            if Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z":
                return True
        except (FileNotFoundError, ProcessLookupError):
            return True
        time.sleep(0.05)
    return False


def test_row_reads_training_time_and_raw_generated_tokens():
    row = gpu_check.row("lora", "bf16", {**RUN_JSON, "wall_s": 20.0})
    assert row["train_time_s"] == 3.0 and row["eval_time_s"] == 9.0
    assert row["train_tokens_per_s"] == 6000 / 3.0  # optimizer steps only, not 6000 / 12 s of wall time
    assert row["gen_tokens_per_s"] == 960 / 4.0  # the raw new token ids, not re-tokenized text
    assert row["generation_precision"] == "bf16-autocast"
    assert (row["ok"], row["first_loss"], row["last_loss"], row["peak_cuda_mib"]) == (True, 2.5, 2.0, 1234.0)


def test_a_nan_loss_is_not_ok():
    log = [{"loss": 2.5}, {"loss": float("nan")}]
    assert gpu_check.row("lora", "fp16", {**RUN_JSON, "log_history": log, "wall_s": 1.0})["ok"] is False


@pytest.mark.parametrize(("visible", "expected"), [(None, "0"), ("0,1", "0"), ("3,1", "3")])
def test_each_training_run_sees_one_gpu(visible, expected, tmp_path, monkeypatch):
    """CUDA_VISIBLE_DEVICES=0 in the script's environment (the first GPU this process sees, when it names some)."""
    if visible is None:
        monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    else:
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
    fake_scripts(monkeypatch, tmp_path, FAKE_TRAINING)
    run = gpu_check.run_script("lora", "bf16", tmp_path / "model", tmp_path / "out", check_args(tmp_path), 30)
    assert run["cuda_visible_devices"] == expected
    assert run["argv"][run["argv"].index("--bf16") + 1] == "true" and run["wall_s"] > 0


def test_a_run_past_its_timeout_is_a_failed_row_and_its_processes_are_stopped(tmp_path, monkeypatch):
    script = fake_scripts(monkeypatch, tmp_path, SLEEPER)
    start = time.monotonic()
    run = gpu_check.run_script("lora", "bf16", tmp_path / "model", tmp_path / "out", check_args(tmp_path), 1)
    assert time.monotonic() - start < 4
    row = gpu_check.row("lora", "bf16", run)
    assert (row["ok"], row["error"]) == (False, "timed out after 1 s")
    assert is_gone(int(script.with_suffix(".pid").read_text()))  # the script's own child too


def test_a_failing_run_reports_its_last_stderr_line(tmp_path, monkeypatch):
    fake_scripts(monkeypatch, tmp_path, "import sys\nprint('loading', file=sys.stderr)\nsys.exit('error: no GPU')\n")
    run = gpu_check.run_script("lora", "bf16", tmp_path / "model", tmp_path / "out", check_args(tmp_path), 30)
    assert run["error"] == "error: no GPU"


def test_the_budget_shrinks_each_timeout_and_nothing_starts_once_it_is_spent(tmp_path, monkeypatch, capsys):
    fake_scripts(monkeypatch, tmp_path, SLEEPER)
    monkeypatch.setattr(gpu_check, "write_model", lambda folder: folder)
    start = time.monotonic()
    rows = gpu_check.check(check_args(tmp_path, "--dtypes", "bf16", "--budget_s", "1", "--timeout_s", "60"),
                           "fake GPU", gpu_count=1)
    assert time.monotonic() - start < 4
    assert [r["error"] for r in rows] == ["timed out after 1 s"] + ["not run: no time left of --budget_s"] * 2
    assert capsys.readouterr().out.count("| run | dtype |") == 1


@pytest.mark.parametrize("gpus", [1, 2])
def test_one_table_at_the_end_and_the_fsdp_row_with_two_gpus(gpus, tmp_path, monkeypatch, capsys):
    fake_scripts(monkeypatch, tmp_path, FAKE_TRAINING)
    monkeypatch.setattr(gpu_check, "write_model", lambda folder: folder)
    fsdp_timeouts = []

    def fsdp_check(tmp, timeout):  # the README's FSDP command needs 2 GPUs: its row as a fake run gives it
        fsdp_timeouts.append(timeout)
        return gpu_check.row(gpu_check.FSDP_ROW, "bf16", {**RUN_JSON, "wall_s": 5.0})

    monkeypatch.setattr(gpu_check, "fsdp_check", fsdp_check)
    rows = gpu_check.check(check_args(tmp_path), "fake GPU", gpu_count=gpus)
    assert [(r["method"], r["dtype"]) for r in rows] == [
        (method, dtype) for dtype in ("bf16", "fp16") for method in gpu_check.SCRIPTS] + (
        [(gpu_check.FSDP_ROW, "bf16")] if gpus >= 2 else [])
    assert len(fsdp_timeouts) == (gpus >= 2) and all(0 < t <= 150 for t in fsdp_timeouts)
    out = capsys.readouterr().out
    assert out.count("| run | dtype |") == 1
    table = out[out.index("| run | dtype |"):]
    assert table.count("| yes | 2.500 -> 2.000 | 3.0 | 9.0 | 2000 | 240 | bf16-autocast | 1234 |") == len(rows)
    assert (f"| {gpu_check.FSDP_ROW} |" in table) == (gpus >= 2)


def test_the_fsdp_check_is_the_readmes_command():
    """The README's command (tests/test_multiprocess.py checks what accelerate makes of fsdp.yaml), with the
    check's tiny model and output folder."""
    line = next(line for line in (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
                if "configs/accelerate/fsdp.yaml --num_processes 2" in line)
    write, launch = (shlex.split(part) for part in line.strip("`").split("&&"))
    assert write[:3] == ["python", "-m", "common.tiny_model"] and launch[:2] == ["accelerate", "launch"]
    assert yaml.safe_load((ROOT / "configs/tiny/lora.yaml").read_text())["model_name_or_path"] == write[3]
    words = launch[2:]
    words[words.index("--output_dir") + 1] = "OUT"
    command = gpu_check.fsdp_command(Path("MODEL"), Path("OUT"))
    assert command == [sys.executable, "-m", "accelerate.commands.launch", *words, "--model_name_or_path", "MODEL"]


# The benchmark's GPU peak, spec, batch sizes and fp16 step (benchmarks/flops.py, benchmarks/benchmark.py).

def test_the_peak_is_timed_at_8192_cubed_with_50_calls_on_cuda_and_as_before_on_cpu():
    for device in ("cuda", "cuda:1"):
        shape = peak_shape(device)
        assert (shape["m"], shape["k"], shape["n"]) == (8192, 8192, 8192) and shape["repeats"] >= 50
    assert peak_shape("cpu") == {"m": 2048, "k": 2048, "n": 2048, "repeats": 5}
    cpu = matmul_peak("cpu", "fp32", 8, 4, 2, repeats=2)
    assert cpu["timing"].startswith("fastest single call") and cpu["repeats"] == 2 and cpu["flop_per_s"] > 0


@pytest.mark.parametrize(("name", "tflops"), [
    ("NVIDIA H100 80GB HBM3", 989), ("NVIDIA H100 PCIe", 756), ("NVIDIA H200", 989),
    ("NVIDIA A100-SXM4-80GB", 312), ("NVIDIA A100 80GB PCIe", 312), ("NVIDIA L4", 121), ("NVIDIA A10", 125),
    ("NVIDIA H100 NVL", None), ("NVIDIA L40S", None), ("NVIDIA A10G", None), ("NVIDIA GeForce RTX 4090", None),
    ("Intel(R) Xeon(R) CPU @ 2.50GHz", None),
])
def test_dense_bf16_spec_by_device_name(name, tflops):
    assert dense_bf16_flop_per_s(name) == (None if tflops is None else tflops * 1e12)


def test_the_flops_examples_run():
    from benchmarks import flops

    for function in (flops.peak_shape, flops.dense_bf16_flop_per_s):
        for test in doctest.DocTestFinder().find(function, globs=vars(flops)):
            assert doctest.DocTestRunner().run(test).failed == 0


def test_the_benchmark_measures_at_the_gpu_presets_batch_sizes_on_cuda(tmp_path):
    from benchmarks.benchmark import CPU_BATCH_SIZES, make_parser, measured_batch_sizes, preset_batch_sizes

    (tmp_path / "lora.yaml").write_text("per_device_train_batch_size: 7\ngeneration_batch_size: 9\n")
    assert preset_batch_sizes("lora", tmp_path) == (7, 9)
    for method in ("lora", "soft_prompt", "finetune"):
        preset = yaml.safe_load((ROOT / "configs" / "gpt-neo-125m" / f"{method}.yaml").read_text())
        cuda = make_parser().parse_args(["--device", "cuda"])
        assert measured_batch_sizes(cuda, method) == (preset["per_device_train_batch_size"],
                                                      preset["generation_batch_size"])
        assert measured_batch_sizes(make_parser().parse_args(["--device", "cpu"]), method) == CPU_BATCH_SIZES
        given = make_parser().parse_args(["--device", "cuda", "--batch_size", "2", "--gen_batch_size", "3"])
        assert measured_batch_sizes(given, method) == (2, 3)


def test_the_fp16_step_unscales_the_gradients_before_clipping_and_skips_an_overflow():
    """ours_step with a Trainer whose accelerator scaled the loss (accelerate does so for fp16 on a GPU):
    the SGD step moves the weight by the true gradient, unclipped at norm 0.5 < max_grad_norm 1 (stepping the
    scaled gradient would move it 1024x as far, or by the clipped unit vector)."""
    from benchmarks.benchmark import ours_step

    weight = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
    scaler = torch.amp.GradScaler("cpu", init_scale=1024.0)

    def training_step(model, batch, items):  # what Trainer.training_step does: loss, accelerator.backward(loss)
        scaler.scale((weight * batch["x"]).sum()).backward()

    trainer = SimpleNamespace(training_step=training_step, accelerator=SimpleNamespace(scaler=scaler),
                              optimizer=torch.optim.SGD([weight], lr=0.1),
                              args=SimpleNamespace(bf16=False, fp16=False, max_grad_norm=1.0))
    labels = torch.tensor([[-100, 5, 6]])
    ours_step(trainer, None, [weight], {"x": torch.tensor([0.3, 0.4]), "labels": labels})
    torch.testing.assert_close(weight.detach(), torch.tensor([1.0 - 0.03, -2.0 - 0.04]))
    before = weight.detach().clone()
    ours_step(trainer, None, [weight], {"x": torch.tensor([float("inf"), 0.4]), "labels": labels})
    torch.testing.assert_close(weight.detach(), before)  # skipped
    assert scaler.get_scale() == 512.0 and weight.grad is None
