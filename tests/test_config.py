"""Configuration: YAML presets plus CLI overrides, and every shipped preset parses."""

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import yaml
from transformers import GPTNeoConfig

from common.core.cli import ConfigError
from common.config.arguments import DATA_FILE_SUFFIXES, DataArguments
from common.data.lengths import check_lengths_against_model
from common.config.parsing import check_training, parse_run_config
from common.data.loading import SUFFIXES
from common.methods import method_for, recorded_method_name, recorded_names
from common.pipeline.presets import preset_methods
from common.data.prompts import make_prompt_parts
from helpers import FIXTURES, ROOT, variant_flags

# configs/accelerate/ holds accelerate launch configs, checked in tests/test_multiprocess.py.
PRESETS = sorted(p for p in (ROOT / "configs").rglob("*.yaml") if p.parent.name != "accelerate")


def method_of(path: Path) -> str:
    """The entry point's method of a preset: its file is named after a method or one of its variants
    (configs/quality/dora.yaml runs LoRA), or starts with a method's name (configs/gpu/lora_fsdp.yaml)."""
    stem = path.stem
    if stem in recorded_names():
        return method_for(stem).name
    return next(m for m in preset_methods() if stem == m or stem.startswith(m))


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


@pytest.mark.parametrize("name", recorded_names())
def test_the_recorded_method_name_comes_from_the_script_and_its_flags(name):
    """run.json, the comparison table and the Hub card record `dora` for train_lora.py --use_dora true, and so on."""
    cfg = parse_run_config(method_for(name).name, variant_flags(name))
    assert cfg.recorded_method == recorded_method_name(cfg.method_name, cfg.method) == name
    if name == "ia3":
        assert cfg.training.learning_rate == 3e-3 and cfg.method.ia3_target_modules is None
    if name.startswith("prefix_tuning"):
        assert cfg.training.learning_rate == 1e-2 and cfg.method.num_virtual_tokens == 20
        assert cfg.method.prefix_projection == (name == "prefix_tuning_mlp")


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
    if preset.stem in recorded_names():  # a variant's preset selects it (dora.yaml: use_dora true)
        assert cfg.recorded_method == preset.stem


# --- values: YAML types, ranges, what zero-shot ignores ------------------------------------------------


@pytest.mark.parametrize("text, section, key, expected", [
    ("learning_rate: 5e-5", "training", "learning_rate", 5e-5),  # PyYAML reads 5e-5 as a string
    ("learning_rate: 1", "training", "learning_rate", 1.0),
    ("target_modules: q_proj", "method", "target_modules", ["q_proj"]),  # one string: a one-element list
    ("target_modules: [q_proj, v_proj]", "method", "target_modules", ["q_proj", "v_proj"]),
    ("max_train_samples: null", "data", "max_train_samples", None),
    ('seed: "7"', "training", "seed", 7),  # a quoted number reads as on the CLI
    ("use_chat_template: true", "data", "use_chat_template", True),
])
def test_yaml_values_are_read_as_the_cli_reads_them(text, section, key, expected, tmp_path):
    preset = tmp_path / "p.yaml"
    preset.write_text(text + "\n")
    value = getattr(getattr(parse_run_config("lora", ["--config", str(preset)]), section), key)
    assert value == expected and type(value) is type(expected)


@pytest.mark.parametrize("text, message", [
    ("max_source_length: 12.5", "max_source_length: 12.5 is not an integer"),
    ("r: true", "r: True is not an integer"),
    ("max_target_length: [1, 2]", "max_target_length: [1, 2] is not an integer"),
    ('learning_rate: "abc"', "learning_rate: 'abc' is not a number"),
    ("max_test_samples: 1.5", "max_test_samples: 1.5 is not an integer or null"),
    ("target_modules: [1, 2]", "target_modules: [1, 2] is not a list of strings"),
    ("hub_model_id: 12", "hub_model_id: 12 is not a string or null (quote it)"),
    ("lr_scheduler_type: linearr", "lr_scheduler_type: 'linearr' is not one of linear, cosine"),
    ("config: other.yaml", "config: 'other.yaml': nested configs are not supported"),
    ("[r, 4]", "expected a mapping of flag names to values, got list"),
])
def test_yaml_value_of_the_wrong_type_names_file_key_value_and_type(text, message, tmp_path):
    preset = tmp_path / "p.yaml"
    preset.write_text(text + "\n")
    with pytest.raises(ConfigError) as error:
        parse_run_config("lora", ["--config", str(preset)])
    assert str(error.value).startswith(f"--config {preset}: ") and message in str(error.value)


def test_none_on_the_cli_means_all_rows_as_the_help_says():
    cfg = parse_run_config("lora", ["--max_train_samples", "None", "--max_test_samples", "null"])
    assert (cfg.data.max_train_samples, cfg.data.max_test_samples) == (None, None)


def test_zero_shot_ignores_training_flags_it_never_uses():
    cfg = parse_run_config("zero_shot", ["--learning_rate", "0", "--num_train_epochs", "0",
                                         "--per_device_train_batch_size", "0"])
    assert cfg.training.learning_rate == 0
    with pytest.raises(ConfigError, match="--learning_rate 0.0: must be > 0"):
        check_training(cfg.training)  # the same values on a method that trains


def test_training_with_max_steps_needs_no_epochs():
    assert parse_run_config("lora", ["--num_train_epochs", "0", "--max_steps", "3"]).training.max_steps == 3


def test_parse_errors_raise_instead_of_exiting():
    with pytest.raises(ConfigError, match=r"^unrecognized arguments: --lora_rank 4 \(see --help\)$"):
        parse_run_config("lora", ["--lora_rank", "4"])


def test_data_file_suffixes_match_the_loader():
    assert DATA_FILE_SUFFIXES == SUFFIXES


# --- lengths against the model's positions -------------------------------------------------------------

LIMIT = 64


def lengths_config(method: str, source: int, target: int, new: int, *extra: str):
    return parse_run_config(method, ["--max_source_length", str(source), "--max_target_length", str(target),
                                     "--max_new_tokens", str(new), *extra])


@pytest.fixture(scope="module")
def neo64():
    return GPTNeoConfig(max_position_embeddings=LIMIT, num_layers=2, attention_types=[[["global"], 2]])


@pytest.fixture(scope="module")
def template_tokens(tiny_tokenizer):
    parts = make_prompt_parts(tiny_tokenizer, DataArguments())
    return len(parts.prefix_ids) + len(parts.suffix_ids)


def test_lengths_that_fill_the_model_exactly_pass(neo64, tiny_tokenizer, template_tokens):
    source = LIMIT - template_tokens - 8
    check_lengths_against_model(lengths_config("lora", source, 8, 8), neo64, tiny_tokenizer)
    check_lengths_against_model(lengths_config("soft_prompt", source - 4, 8, 8, "--num_virtual_tokens", "4"),
                                neo64, tiny_tokenizer)


def test_training_sequence_beyond_the_model_names_flags_values_and_limit(neo64, tiny_tokenizer, template_tokens):
    source = LIMIT - template_tokens - 8 + 1
    with pytest.raises(ConfigError) as error:
        check_lengths_against_model(lengths_config("lora", source, 8, 4), neo64, tiny_tokenizer)
    assert str(error.value) == (f"--max_source_length {source} + --max_target_length 8 + {template_tokens} prompt "
                                f"template tokens = {LIMIT + 1} positions in a training sequence, beyond the model's "
                                f"max_position_embeddings {LIMIT}; lower --max_source_length or --max_target_length")


def test_max_new_tokens_beyond_the_model_fails_before_training(neo64, tiny_tokenizer, template_tokens):
    new = LIMIT - template_tokens - 8 + 1
    with pytest.raises(ConfigError, match=rf"--max_new_tokens {new} .* = {LIMIT + 1} positions in a generated "
                                          rf"sequence, .* max_position_embeddings {LIMIT};"):
        check_lengths_against_model(lengths_config("lora", 8, 8, new), neo64, tiny_tokenizer)


def test_virtual_tokens_count_against_the_model(neo64, tiny_tokenizer, template_tokens):
    cfg = lengths_config("soft_prompt", 8, 8, 8, "--num_virtual_tokens", str(LIMIT - template_tokens - 16 + 1))
    with pytest.raises(ConfigError, match="lower --max_source_length or --max_target_length or --num_virtual_tokens"):
        check_lengths_against_model(cfg, neo64, tiny_tokenizer)


def test_zero_shot_checks_the_generated_sequence_only(neo64, tiny_tokenizer):
    check_lengths_against_model(lengths_config("zero_shot", 8, 1000, 8), neo64, tiny_tokenizer)
    with pytest.raises(ConfigError, match="--max_new_tokens 100"):
        check_lengths_against_model(lengths_config("zero_shot", 8, 8, 100), neo64, tiny_tokenizer)


def test_position_limit_from_n_positions_or_none(tiny_tokenizer):
    cfg = lengths_config("lora", 4000, 8, 8)
    check_lengths_against_model(cfg, SimpleNamespace(), tiny_tokenizer)  # no limit in the config
    with pytest.raises(ConfigError, match="beyond the model's n_positions 1024"):
        check_lengths_against_model(cfg, SimpleNamespace(n_positions=1024), tiny_tokenizer)
