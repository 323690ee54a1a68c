"""Several processes: the shipped accelerate configs, and two CPU processes started as the README says.

`accelerate launch --config_file configs/accelerate/cpu_2proc.yaml SCRIPT ... --use_cpu true` starts two
DDP processes over gloo. Each must generate only its share of the test prompts (prompt i on process
i % 2), the shares must come back whole and in order, and every file must be written once, by the main
process. Generation is compared with a one-process run; training is not (two processes split each batch).
"""

import json
import os
import subprocess
import sys

import pandas as pd
import pytest
import torch
from accelerate.commands.config.config_args import load_config_from_file
from accelerate.commands.launch import _validate_launch_command, launch_command_parser
from safetensors.torch import load_file

from helpers import FIXTURES, ROOT, data_flags

CONFIGS = ROOT / "configs" / "accelerate"
CPU_CONFIG = CONFIGS / "cpu_2proc.yaml"
DISTRIBUTED_TYPES = {"one_gpu": "NO", "multi_gpu": "MULTI_GPU", "fsdp": "FSDP", "multi_node": "MULTI_GPU",
                     "cpu_2proc": "MULTI_GPU"}
# generation.report_progress prints "done/total prompts on this process" only above 16 prompts per process:
# 34 rows give each of two processes 17 (and one process alone 34).
N_TEST = 34
TWO_RANKS_LINE = "Generating: 17/17 prompts on this process"


def write_test_rows(path, n: int = N_TEST):
    """`n` test rows cycled from the fixture, each with its own id and article, as JSON lines."""
    rows = [json.loads(line) for line in (FIXTURES / "test.jsonl").read_text().splitlines() if line.strip()]
    with open(path, "w", encoding="utf-8") as handle:
        for i in range(n):
            row = rows[i % len(rows)]
            handle.write(json.dumps({**row, "id": f"test-{i:02d}", "article": f"{row['article']} Item {i}."}) + "\n")
    return path


def launch_two_cpu_processes(script_args: list[str]) -> str:
    """Run the README's two-process CPU command; return its stdout (both ranks), failing with its stderr."""
    command = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(CPU_CONFIG), *script_args,
               "--use_cpu", "true"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    return result.stdout


def check_written_once(out_dir, stdout: str, test_ids: list[str]) -> pd.DataFrame:
    """Two ranks generated, each test row is in the CSV once, and the main process alone wrote the files."""
    assert TWO_RANKS_LINE in stdout and f"{N_TEST}/{N_TEST} prompts" not in stdout, stdout[-2000:]
    print("\n".join(line for line in stdout.splitlines() if "prompts on this process" in line or "Results" in line))
    assert stdout.count("Results written to") == 1
    frame = pd.read_csv(out_dir / "predictions_test.csv", keep_default_na=False)
    assert frame["id"].tolist() == test_ids
    assert not list(out_dir.rglob(".*.tmp"))
    run = json.loads((out_dir / "run.json").read_text())
    assert run["examples"]["test"]["used"] == N_TEST and run["world_size"] == 2
    return frame


def generation_flags(model_dir, test_file, out_dir) -> list[str]:
    return ["--model_name_or_path", str(model_dir), "--test_file", str(test_file), "--max_new_tokens", "6",
            "--output_dir", str(out_dir)]


@pytest.mark.parametrize("name", sorted(DISTRIBUTED_TYPES))
def test_accelerate_config_loads_and_names_its_command(name):
    path = CONFIGS / f"{name}.yaml"
    config = load_config_from_file(str(path))
    assert config.distributed_type.value == DISTRIBUTED_TYPES[name]
    header = path.read_text().split("\ncompute_environment:")[0]
    assert f"accelerate launch --config_file configs/accelerate/{name}.yaml" in header
    launch_options = set(vars(launch_command_parser().parse_args(["script.py"])))
    assert set(config.fsdp_config) <= launch_options, set(config.fsdp_config) - launch_options


def test_every_accelerate_config_is_checked():
    assert sorted(p.stem for p in CONFIGS.glob("*.yaml")) == sorted(DISTRIBUTED_TYPES)


def test_fsdp_config_launches_fsdp2_full_shard():
    """What `accelerate launch` makes of fsdp.yaml (FSDP itself needs GPUs: accelerate 1.15 has no CPU FSDP)."""
    args = launch_command_parser().parse_args(["--config_file", str(CONFIGS / "fsdp.yaml"), "--num_processes", "2",
                                               "train_lora.py"])
    args, _, _ = _validate_launch_command(args)
    assert args.use_fsdp and args.num_processes == 2
    assert (args.fsdp_version, args.fsdp_reshard_after_forward, args.fsdp_auto_wrap_policy) == (
        2, True, "TRANSFORMER_BASED_WRAP")
    assert args.fsdp_state_dict_type == "FULL_STATE_DICT"


@pytest.mark.slow
def test_two_processes_generate_like_one(tiny_model_dir, tmp_path):
    """Zero-shot (no training): two processes give the very predictions of one, each row once."""
    from common import zero_shot

    test_file = write_test_rows(tmp_path / "test.jsonl")
    test_ids = [f"test-{i:02d}" for i in range(N_TEST)]
    stdout = launch_two_cpu_processes(["-m", "common.zero_shot",
                                       *generation_flags(tiny_model_dir, test_file, tmp_path / "two")])
    two = check_written_once(tmp_path / "two", stdout, test_ids)
    zero_shot.main(generation_flags(tiny_model_dir, test_file, tmp_path / "one"))
    one = pd.read_csv(tmp_path / "one" / "predictions_test.csv", keep_default_na=False)
    pd.testing.assert_frame_equal(two, one)


@pytest.mark.slow
def test_two_processes_train_checkpoint_and_score_once(tiny_model_dir, fixture_files, tmp_path):
    """LoRA on two processes: both ranks train (one RNG state each per checkpoint), the eval ROUGE callback
    gathers across them, the main process writes adapter, CSV and run.json once, and the adapter
    regenerates the two-process predictions in one process."""
    from common import zero_shot

    test_file = write_test_rows(tmp_path / "test.jsonl")
    test_ids = [f"test-{i:02d}" for i in range(N_TEST)]
    out_dir = tmp_path / "lora"
    stdout = launch_two_cpu_processes([
        str(ROOT / "train_lora.py"), "--model_name_or_path", str(tiny_model_dir),
        *data_flags({**fixture_files, "test": str(test_file)}), "--output_dir", str(out_dir), "--max_steps", "2",
        "--per_device_train_batch_size", "2", "--max_new_tokens", "6", "--num_eval_generate", "3",
        "--eval_strategy", "steps", "--eval_steps", "1", "--save_strategy", "steps", "--save_steps", "1",
        "--logging_steps", "1"])
    two = check_written_once(out_dir, stdout, test_ids)
    for step in (1, 2):
        checkpoint = out_dir / f"checkpoint-{step}"
        assert sorted(p.name for p in checkpoint.glob("rng_state*.pth")) == ["rng_state_0.pth", "rng_state_1.pth"]
        assert json.loads((checkpoint / "trainer_state.json").read_text())["global_step"] == step
        assert stdout.count(f"[eval step {step}]") == 1  # printed by the main process only
    final = load_file(out_dir / "adapter" / "adapter_model.safetensors")
    last = load_file(out_dir / "checkpoint-2" / "adapter_model.safetensors")
    assert final.keys() == last.keys()
    for name in final:
        torch.testing.assert_close(final[name], last[name], rtol=0, atol=0)
    run = json.loads((out_dir / "run.json").read_text())
    assert run["train_steps"] == 2
    assert [e["step"] for e in run["log_history"] if "eval_rougeLsum" in e] == [1, 2]

    zero_shot.main([*generation_flags(tiny_model_dir, test_file, tmp_path / "one"),
                    "--trained_path", str(out_dir / "adapter")])
    one = pd.read_csv(tmp_path / "one" / "predictions_test.csv", keep_default_na=False)
    assert two["Predicted Summary"].tolist() == one["Predicted Summary"].tolist()


@pytest.mark.slow
@pytest.mark.skipif(torch.cuda.is_available(), reason="with GPUs the processes do form one group")
def test_two_cpu_processes_without_use_cpu_are_refused_before_anything_is_written(tiny_model_dir, tmp_path):
    """Without --use_cpu each process would run alone and write every file: refused with the fix named."""
    command = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(CPU_CONFIG), "-m",
               "common.zero_shot", *generation_flags(tiny_model_dir, FIXTURES / "test.jsonl", tmp_path / "out")]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode != 0
    assert "error: 2 processes were launched but each one runs alone" in result.stderr and "--use_cpu true" in result.stderr
    assert not (tmp_path / "out").exists()
