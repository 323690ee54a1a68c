"""Configuration: YAML presets plus CLI overrides, and every shipped preset parses."""

from pathlib import Path

import pytest
import torch
import yaml

from common.config import METHOD_ARGUMENTS, parse_run_config
from conftest import FIXTURES

ROOT = Path(__file__).resolve().parents[1]
PRESETS = sorted((ROOT / "configs").rglob("*.yaml"))


def method_of(path: Path) -> str:
    stem = path.stem
    return next(m for m in METHOD_ARGUMENTS if stem == m or stem.startswith(m))


def test_cli_overrides_yaml(tmp_path):
    preset = tmp_path / "p.yaml"
    preset.write_text("num_train_epochs: 3\nr: 4\nmax_source_length: 100\n")
    cfg = parse_run_config("lora", ["--config", str(preset), "--num_train_epochs", "1", "--output_dir", "x"])
    assert (cfg.training.num_train_epochs, cfg.method.r, cfg.data.max_source_length) == (1.0, 4, 100)


def test_method_defaults_follow_the_seed():
    assert parse_run_config("lora", []).training.num_train_epochs == 6
    assert parse_run_config("soft_prompt", []).training.learning_rate == 3e-2
    finetune = parse_run_config("finetune", [])
    assert finetune.training.num_train_epochs == 10 and finetune.training.output_dir == "runs/finetune"
    data = finetune.data
    assert (data.max_train_samples, data.max_eval_samples, data.max_test_samples) == (21000, 6000, 3000)
    assert finetune.model.model_name_or_path == "EleutherAI/gpt-neo-125M"


def test_unknown_yaml_key_names_file_and_key(tmp_path):
    preset = tmp_path / "p.yaml"
    preset.write_text("lora_rank: 4\n")
    with pytest.raises(ValueError, match=r"p\.yaml: unknown key\(s\) \['lora_rank'\]"):
        parse_run_config("lora", ["--config", str(preset)])


def test_config_is_frozen():
    cfg = parse_run_config("lora", [])
    with pytest.raises(Exception):
        cfg.data.max_source_length = 3  # type: ignore[misc]


@pytest.mark.parametrize("preset", PRESETS, ids=[str(p.relative_to(ROOT)) for p in PRESETS])
def test_shipped_presets_parse(preset, tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    # GPU presets ask for bf16, which TrainingArguments rejects on a CPU-only machine: override only that.
    cpu_override = [] if torch.cuda.is_available() else ["--bf16", "false"]
    # Quality presets name files that their script carves out at run time: point those at fixtures.
    values = yaml.safe_load(preset.read_text())
    file_overrides = [item for key in ("train_file", "validation_file", "test_file")
                      if values.get(key) and not (ROOT / values[key]).is_file()
                      for item in (f"--{key}", str(FIXTURES / "test.jsonl"))]
    cfg = parse_run_config(method_of(preset), ["--config", str(preset), *cpu_override, *file_overrides])
    assert cfg.config_file == str(preset)
    assert cfg.method_name == method_of(preset)
