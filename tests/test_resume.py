"""Nothing lost, nothing misreported: the run folder as a transaction, complete checkpoints, costs across resumes.

The kill test starts a real training script, SIGKILLs it once at a checkpoint and once during test
generation, and resumes it to the end: the adapter, predictions and token counts must equal those of an
uninterrupted run, and run.json must count the resumes.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

import train_lora
from common.runs import transaction
from common.config.parsing import parse_run_config
from common.training.trainer import SummarizationTrainer, build_trainer, resolve_checkpoint
from common.pipeline.steps import run_method
from helpers import FIXTURES, ROOT, cli, data_flags

RESULTS = ("adapter", "predictions_test.csv", "run.json")


def quick_run(model_dir, files, out_dir, *extra):
    return run_method(parse_run_config("lora", [
        "--model_name_or_path", str(model_dir), *data_flags(files), "--output_dir", str(out_dir),
        "--per_device_train_batch_size", "2", "--max_new_tokens", "4", "--eval_strategy", "no",
        "--learning_rate", "1e-2", *extra]))


def results_of(folder: Path) -> dict[str, bytes]:
    """The bytes of every result file (adapter files by name)."""
    files = [folder / "predictions_test.csv", folder / "run.json", *sorted((folder / "adapter").glob("*"))]
    return {p.name: p.read_bytes() for p in files if p.is_file()}


@pytest.mark.slow
def test_resume_last_skips_incomplete_checkpoints(tiny_model_dir, fixture_files, tmp_path):
    quick_run(tiny_model_dir, fixture_files, tmp_path, "--max_steps", "3", "--save_strategy", "steps",
              "--save_steps", "1", "--save_total_limit", "5")
    cfg = parse_run_config("lora", ["--output_dir", str(tmp_path), "--resume_from_checkpoint", "last"])
    assert resolve_checkpoint(cfg.training) == str(tmp_path / "checkpoint-3")
    (tmp_path / "checkpoint-3" / "costs.json").unlink()  # killed before its last file was written
    weights = tmp_path / "checkpoint-2" / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])  # killed while the weights were written
    assert resolve_checkpoint(cfg.training) == str(tmp_path / "checkpoint-1")
    (tmp_path / "checkpoint-1" / "trainer_state.json").write_text("{")
    with pytest.raises(Exception, match="no complete checkpoint"):
        resolve_checkpoint(cfg.training)


@pytest.mark.slow
def test_a_finished_run_is_kept_unless_overwrite_is_asked(tiny_model_dir, fixture_files, tmp_path, capsys):
    out = tmp_path / "run"
    quick_run(tiny_model_dir, fixture_files, out, "--max_steps", "1", "--save_strategy", "no")
    before = results_of(out)
    argv = ["--model_name_or_path", str(tiny_model_dir), *data_flags(fixture_files), "--output_dir", str(out),
            "--max_steps", "2", "--per_device_train_batch_size", "2", "--max_new_tokens", "4", "--eval_strategy",
            "no", "--save_strategy", "no"]
    code, err = cli(train_lora.main, argv, capsys)
    assert code == 2 and err.startswith("error: --output_dir") and "--overwrite_output_dir" in err
    assert results_of(out) == before
    code, _ = cli(train_lora.main, [*argv, "--overwrite_output_dir"], capsys)
    assert code == 0 and json.loads((out / "run.json").read_text())["train_steps"] == 2
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]


def test_commit_rolls_forward_or_back_after_a_kill(tmp_path):
    """A kill after the commit point leaves the new results (completed by recover), before it the old ones."""
    def stage(folder: Path, text: str) -> None:
        staging = transaction.begin(folder)
        (staging / "adapter").mkdir()
        (staging / "adapter" / "w.txt").write_text(text)
        (staging / "predictions_test.csv").write_text(text)
        (staging / "run.json").write_text(json.dumps({"v": text}))

    stage(tmp_path, "old")
    transaction.commit(tmp_path)
    stage(tmp_path, "new")  # killed before the commit point: recover drops the staged results
    transaction.recover(tmp_path)
    assert (tmp_path / "adapter" / "w.txt").read_text() == "old" and not (tmp_path / ".staging").exists()
    stage(tmp_path, "new")  # killed in the middle of the swap: journal written, adapter swapped, the rest not
    (tmp_path / ".commit").write_text(json.dumps({"produced": list(RESULTS)}))
    (tmp_path / ".trash").mkdir()
    os.replace(tmp_path / "adapter", tmp_path / ".trash" / "adapter")
    os.replace(tmp_path / ".staging" / "adapter", tmp_path / "adapter")
    assert transaction.finished_run(tmp_path) == {"v": "new"}  # reading recovers first
    assert [(tmp_path / n).exists() for n in (".commit", ".staging", ".trash")] == [False] * 3
    assert (tmp_path / "adapter" / "w.txt").read_text() == (tmp_path / "predictions_test.csv").read_text() == "new"


def test_eval_loss_is_per_token_whatever_the_batch_size(tiny_model_dir, fixture_files, tmp_path):
    from common.data.loading import load_splits
    from common.methods import build_method
    from common.models.loading import load_base_model, load_tokenizer

    losses = []
    for batch in ("1", "3"):
        cfg = parse_run_config("lora", ["--model_name_or_path", str(tiny_model_dir), *data_flags(fixture_files),
                                        "--output_dir", str(tmp_path / batch), "--per_device_eval_batch_size", batch,
                                        "--num_eval_generate", "0", "--report_to", "none"])
        torch.manual_seed(0)
        model = build_method("lora", load_base_model(cfg.model), cfg.method, cfg.model)
        trainer = build_trainer(cfg, model, load_tokenizer(cfg.model), load_splits(cfg.data)[0])
        losses.append(trainer.evaluate()["eval_loss"])
    assert losses[0] == pytest.approx(losses[1], rel=1e-6)


def write_rows(path: Path, n: int) -> Path:
    rows = [json.loads(line) for line in (FIXTURES / "test.jsonl").read_text().splitlines() if line.strip()]
    path.write_text("".join(json.dumps({**rows[i % len(rows)], "id": f"t{i:02d}"}) + "\n" for i in range(n)))
    return path


def start(argv: list[str]) -> subprocess.Popen:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "train_lora.py", *argv], cwd=ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def kill_when(process: subprocess.Popen, ready, timeout_s: float = 300) -> str:
    """SIGKILL `process` as soon as `ready(line)` holds for a line it prints; returns what it printed."""
    seen, deadline = [], time.monotonic() + timeout_s
    for line in process.stdout:
        seen.append(line)
        if ready(line) or time.monotonic() > deadline:
            break
    process.send_signal(signal.SIGKILL)
    process.wait()
    return "".join(seen)


@pytest.mark.slow
def test_killed_at_a_checkpoint_and_in_generation_then_resumed_equals_uninterrupted(tiny_model_dir, tmp_path):
    test_file = write_rows(tmp_path / "test.jsonl", 40)
    common = ["--model_name_or_path", str(tiny_model_dir), "--train_file", str(FIXTURES / "train.jsonl"),
              "--validation_file", str(FIXTURES / "validation.jsonl"), "--test_file", str(test_file),
              "--max_steps", "12", "--per_device_train_batch_size", "2", "--learning_rate", "1e-2",
              "--save_strategy", "steps", "--save_steps", "1", "--save_total_limit", "3", "--eval_strategy", "no",
              "--logging_steps", "1", "--max_new_tokens", "16", "--generation_batch_size", "1"]
    full, killed = tmp_path / "full", tmp_path / "killed"
    assert start([*common, "--output_dir", str(full)]).wait() == 0

    out = kill_when(start([*common, "--output_dir", str(killed)]),
                    lambda line: (killed / "checkpoint-2" / "costs.json").is_file())
    assert not any((killed / name).exists() for name in RESULTS), out[-2000:]
    out = kill_when(start([*common, "--output_dir", str(killed), "--resume_from_checkpoint", "last"]),
                    lambda line: line.startswith("Generating:"))
    assert "Resuming from" in out and "Generating:" in out, out[-2000:]
    assert not any((killed / name).exists() for name in RESULTS)
    last = start([*common, "--output_dir", str(killed), "--resume_from_checkpoint", "last"])
    printed = last.stdout.read()
    assert last.wait() == 0, printed[-3000:]
    assert "is the end of training (12 of 12 steps)" in printed

    expected, actual = (load_file(d / "adapter" / "adapter_model.safetensors") for d in (full, killed))
    assert expected.keys() == actual.keys()
    for name in expected:
        torch.testing.assert_close(actual[name], expected[name], rtol=0, atol=1e-6)
    csv = [pd.read_csv(d / "predictions_test.csv", keep_default_na=False) for d in (full, killed)]
    assert csv[0]["Predicted Summary"].tolist() == csv[1]["Predicted Summary"].tolist()
    runs = [json.loads((d / "run.json").read_text()) for d in (full, killed)]
    assert [r["resumes"] for r in runs] == [0, 2]
    assert runs[1]["train_steps"] == runs[0]["train_steps"] == 12
    assert runs[1]["train_tokens"] == runs[0]["train_tokens"]
    assert runs[1]["train_loss"] == pytest.approx(runs[0]["train_loss"], rel=1e-4)
    assert runs[1]["train_tokens_per_s"] == pytest.approx(runs[1]["train_tokens"] / runs[1]["train_time_s"], rel=1e-3)
    assert 0 < runs[1]["train_time_s"] + runs[1]["eval_time_s"] <= runs[1]["train_wall_time_s"]
    print("\nkill-and-resume figures:", json.dumps({
        name: {"adapter_sha256": __import__("hashlib").sha256(
            (d / "adapter" / "adapter_model.safetensors").read_bytes()).hexdigest()[:16],
            **{k: r[k] for k in ("train_time_s", "eval_time_s", "train_wall_time_s", "train_tokens", "train_tokens_per_s",
                                   "train_loss", "resumes")}}
        for name, d, r in (("uninterrupted", full, runs[0]), ("killed twice, resumed", killed, runs[1]))}, indent=1))


class Killed(Exception):
    """Stands for a SIGKILL right after a checkpoint was written: the next run starts from that folder alone."""


def write_varied_rows(path: Path, n: int) -> Path:
    """`n` training rows of the fixture texts whose articles grow by a sentence a row, so lengths differ."""
    rows = [json.loads(line) for line in (FIXTURES / "train.jsonl").read_text().splitlines() if line.strip()]
    lines = [{**rows[i % len(rows)], "id": f"v{i:02d}",
              "article": " ".join(rows[(i + k) % len(rows)]["article"] for k in range(1 + i % 4))} for i in range(n)]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["group_by_length", "random"])
def test_killed_mid_epoch_after_the_first_resumes_to_the_same_adapter(strategy, tiny_model_dir, tmp_path,
                                                                      monkeypatch):
    """3 epochs of 5 batches, killed after checkpoint-7 (mid epoch 2), resumed: the adapter is the
    uninterrupted one bit for bit, whichever order the batches are drawn in."""
    files = {"train": str(write_varied_rows(tmp_path / "train.jsonl", 10)),
             "validation": str(FIXTURES / "validation.jsonl"), "test": str(FIXTURES / "test.jsonl")}
    flags = ["--num_train_epochs", "3", "--save_strategy", "steps", "--save_steps", "7", "--save_total_limit", "3",
             "--train_sampling_strategy", strategy, "--max_new_tokens", "2", "--logging_steps", "1"]
    full, killed = quick_run(tiny_model_dir, files, tmp_path / "full", *flags), tmp_path / "killed"
    save_checkpoint = SummarizationTrainer._save_checkpoint

    def save_then_die(self, model, trial):
        save_checkpoint(self, model, trial)
        if self.state.global_step == 7:
            raise Killed

    with monkeypatch.context() as patch:
        patch.setattr(SummarizationTrainer, "_save_checkpoint", save_then_die)
        with pytest.raises(Killed):
            quick_run(tiny_model_dir, files, killed, *flags)
    resumed = quick_run(tiny_model_dir, files, killed, *flags, "--resume_from_checkpoint", "last")
    assert (full["train_steps"], resumed["train_steps"], resumed["resumes"]) == (15, 15, 1)
    expected, actual = (load_file(d / "adapter" / "adapter_model.safetensors") for d in (tmp_path / "full", killed))
    assert expected.keys() == actual.keys()
    for name in expected:
        torch.testing.assert_close(actual[name], expected[name], rtol=0, atol=0)
