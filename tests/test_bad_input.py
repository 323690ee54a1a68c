"""Bad input, run through the real scripts' `main`: one `error:` line naming the flag, the usage exit code
(2) for flags and YAML values, no traceback, nothing written.

Every case uses the tiny model and the fixture splits with a small budget, so a missing check does not
pass silently: the run would start (and write --output_dir) or crash with a traceback. Every check
fires at parse time, before any model or data loads, so each case takes well under a second.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

import evaluate_all
import train_finetune
import train_ia3
import train_lora
import train_prefix_tuning
import train_soft_prompt
from common import zero_shot
from helpers import cli, data_flags

SCRIPTS = {"lora": train_lora.main, "soft_prompt": train_soft_prompt.main, "finetune": train_finetune.main,
           "ia3": train_ia3.main, "prefix_tuning": train_prefix_tuning.main, "zero_shot": zero_shot.main,
           "evaluate_all": evaluate_all.main}
# A run that would finish in seconds if a check were missing (and then write --output_dir).
SMALL_RUN = ["--max_train_samples", "4", "--max_eval_samples", "2", "--max_test_samples", "2",
             "--num_train_epochs", "1", "--per_device_train_batch_size", "2", "--max_source_length", "32",
             "--max_target_length", "8", "--max_new_tokens", "4", "--num_eval_generate", "0",
             "--eval_strategy", "no", "--save_strategy", "no", "--report_to", "none", "--num_virtual_tokens", "4"]
EVALUATE_FAST = ["--bootstrap_samples", "200", "--allow_few_bootstrap_samples"]


@dataclass(frozen=True)
class Case:
    """One bad input: `flags` go after the working ones (the last value of a flag wins); `yaml`, if set, is
    written to {tmp}/bad.yaml and passed as --config. `{tmp}` in a flag is the test's tmp_path."""

    script: str
    flags: tuple[str, ...]
    needle: str  # must appear in the error line: the flag (or YAML key) at fault
    code: int = 2
    yaml: str | None = None


CASES = {
    # Training flags (item 2): each would train nothing, or crash later.
    "learning_rate 0": Case("lora", ("--learning_rate", "0"), "--learning_rate 0.0: must be > 0"),
    "learning_rate negative": Case("finetune", ("--learning_rate", "-0.001"), "--learning_rate -0.001"),
    "num_train_epochs 0": Case("lora", ("--num_train_epochs", "0"), "--num_train_epochs 0.0"),
    "max_steps 0": Case("lora", ("--max_steps", "0"), "--max_steps 0"),
    "max_steps -5": Case("soft_prompt", ("--max_steps", "-5"), "--max_steps -5"),
    "lora_alpha 0": Case("lora", ("--lora_alpha", "0"), "--lora_alpha 0"),
    "lora_alpha negative": Case("lora", ("--lora_alpha", "-16"), "--lora_alpha -16"),
    "r 0": Case("lora", ("--r", "0"), "--r 0"),
    "lora_dropout 1": Case("lora", ("--lora_dropout", "1"), "--lora_dropout 1.0: must be in [0, 1)"),
    "lora_dropout negative": Case("lora", ("--lora_dropout", "-0.1"), "--lora_dropout -0.1"),
    "num_virtual_tokens 0": Case("soft_prompt", ("--num_virtual_tokens", "0"), "--num_virtual_tokens 0"),
    "per_device_train_batch_size 0": Case("lora", ("--per_device_train_batch_size", "0"),
                                          "--per_device_train_batch_size 0"),
    "per_device_eval_batch_size 0": Case("lora", ("--per_device_eval_batch_size", "0"),
                                         "--per_device_eval_batch_size 0"),
    "gradient_accumulation_steps 0": Case("finetune", ("--gradient_accumulation_steps", "0"),
                                          "--gradient_accumulation_steps 0"),
    "load_best without saves": Case("lora", ("--load_best_model_at_end", "--eval_strategy", "epoch",
                                             "--save_strategy", "no"), "--load_best_model_at_end"),
    "load_best without evaluations": Case("lora", ("--load_best_model_at_end", "--save_strategy", "epoch"),
                                          "--load_best_model_at_end"),
    "save_strategy best without evaluations": Case("lora", ("--save_strategy", "best"), "--save_strategy best"),
    "finetune trains nothing": Case("finetune", ("--num_trainable_layers", "0"), "--num_trainable_layers 0"),
    "num_trainable_layers -2": Case("finetune", ("--num_trainable_layers", "-2"),
                                    "--num_trainable_layers -2: must be >= -1"),
    "full finetune without its final norm": Case("finetune", ("--num_trainable_layers", "-1", "--train_final_norm",
                                                              "false"), "--train_final_norm False"),
    "dora and rslora": Case("lora", ("--use_dora", "--use_rslora"),
                            "--use_rslora True: cannot be combined with --use_dora"),
    "ia3 feedforward not a target": Case("ia3", ("--ia3_target_modules", "q_proj", "--ia3_feedforward_modules",
                                                 "c_proj"), "--ia3_feedforward_modules ['c_proj']: must be among"),
    "ia3 learning_rate 0": Case("ia3", ("--learning_rate", "0"), "--learning_rate 0.0: must be > 0"),
    "prefix tuning num_virtual_tokens 0": Case("prefix_tuning", ("--num_virtual_tokens", "0"),
                                               "--num_virtual_tokens 0: must be >= 1"),
    "prefix tuning encoder_hidden_size without the MLP": Case("prefix_tuning", ("--encoder_hidden_size", "32"),
                                                              "--encoder_hidden_size 32: applies to the MLP only"),
    "prefix tuning with gradient checkpointing": Case("prefix_tuning", ("--gradient_checkpointing", "true"),
                                                      "--gradient_checkpointing True: prefix tuning keeps its prefix"),
    # Data and generation flags (every method).
    "max_train_samples 0": Case("lora", ("--max_train_samples", "0"), "--max_train_samples 0"),
    "max_eval_samples 0": Case("lora", ("--max_eval_samples", "0"), "--max_eval_samples 0"),
    "max_test_samples 0": Case("zero_shot", ("--max_test_samples", "0"), "--max_test_samples 0"),
    "max_test_samples negative": Case("lora", ("--max_test_samples", "-3"), "--max_test_samples -3"),
    "generation_batch_size 0": Case("lora", ("--generation_batch_size", "0"), "--generation_batch_size 0"),
    "max_new_tokens 0": Case("zero_shot", ("--max_new_tokens", "0"), "--max_new_tokens 0"),
    "num_beams 0": Case("lora", ("--num_beams", "0"), "--num_beams 0"),
    "no_repeat_ngram_size negative": Case("zero_shot", ("--no_repeat_ngram_size", "-1"), "--no_repeat_ngram_size -1"),
    "max_source_length 0": Case("lora", ("--max_source_length", "0"), "--max_source_length 0"),
    "zero-shot push_to_hub": Case("zero_shot", ("--push_to_hub", "--hub_model_id", "me/x"), "--push_to_hub"),
    # Files and the prompt template (handled before; here through the scripts).
    "train_file missing": Case("lora", ("--train_file", "{tmp}/nonexistent.jsonl"), "--train_file"),
    "train_file unknown suffix": Case("lora", ("--train_file", "{tmp}/train.txt"), "unknown file type '.txt'"),
    "prompt template without {article}": Case("lora", ("--prompt_template", "Summarize:"), "--prompt_template"),
    "config file missing": Case("lora", ("--config", "{tmp}/nope.yaml"), "--config"),
    # argparse-level errors: one line too (the usage of the training scripts is 130 lines).
    "unknown flag": Case("lora", ("--lora_rank", "4"), "unrecognized arguments: --lora_rank"),
    "int flag given a float": Case("lora", ("--seed", "3.7"), "--seed"),
    # YAML values (item 3): file, key, value and expected type.
    "yaml max_source_length 12.5": Case("lora", (), "bad.yaml: max_source_length: 12.5 is not an integer",
                                        yaml="max_source_length: 12.5"),
    "yaml r 2.5": Case("lora", (), "bad.yaml: r: 2.5 is not an integer", yaml="r: 2.5"),
    "yaml seed 3.7": Case("soft_prompt", (), "bad.yaml: seed: 3.7 is not an integer", yaml="seed: 3.7"),
    "yaml max_target_length list": Case("lora", (), "bad.yaml: max_target_length: [1, 2] is not an integer",
                                        yaml="max_target_length: [1, 2]"),
    "yaml learning_rate abc": Case("lora", (), "bad.yaml: learning_rate: 'abc' is not a number",
                                   yaml='learning_rate: "abc"'),
    "yaml bool as 1": Case("finetune", (), "bad.yaml: train_lm_head: 1 is not true or false", yaml="train_lm_head: 1"),
    "yaml choice": Case("soft_prompt", (), "bad.yaml: prompt_init: 'vocab' is not one of", yaml="prompt_init: vocab"),
    "yaml nested config": Case("lora", (), "bad.yaml: config: 'other.yaml': nested configs are not supported",
                               yaml="config: other.yaml"),
    "yaml unknown key": Case("lora", (), "bad.yaml: unknown key(s) ['lora_rank']", yaml="lora_rank: 4"),
    "yaml value out of range": Case("lora", (), "--num_beams 0", yaml="num_beams: 0"),
    # evaluate_all.py (item 5).
    "evaluate_all bootstrap_samples 0": Case("evaluate_all", ("--bootstrap_samples", "0"), "--bootstrap_samples"),
    "evaluate_all bootstrap_samples 200": Case("evaluate_all", ("--bootstrap_samples", "200"), "--bootstrap_samples"),
    "evaluate_all num_examples_md -1": Case("evaluate_all", ("--num_examples_md", "-1", *EVALUATE_FAST),
                                            "--num_examples_md"),
    "evaluate_all unknown flag": Case("evaluate_all", ("--nope", "x"), "unrecognized arguments: --nope"),
    "evaluate_all empty runs_dir": Case("evaluate_all", ("--runs_dir", "{tmp}/none", *EVALUATE_FAST), "--runs_dir"),
    "evaluate_all missing input": Case("evaluate_all", ("{tmp}/nope.csv", *EVALUATE_FAST), "nope.csv: file not found",
                                       code=1),
}


def build_argv(case: Case, tmp: Path, model_dir: Path, files: dict[str, str]) -> list[str]:
    """The command line of `case`: working flags for a small run, then the bad ones."""
    (tmp / "train.txt").write_text("not a split\n")
    flags = [flag.replace("{tmp}", str(tmp)) for flag in case.flags]
    if case.yaml is not None:
        (tmp / "bad.yaml").write_text(case.yaml + "\n")
        flags = ["--config", str(tmp / "bad.yaml"), *flags]
    if case.script == "evaluate_all":
        return [*flags, "--output_dir", str(tmp / "out")]
    small_run = SMALL_RUN if case.script == "soft_prompt" else _without(SMALL_RUN, "--num_virtual_tokens")
    return ["--model_name_or_path", str(model_dir), *data_flags(files), "--output_dir", str(tmp / "out"),
            *small_run, *flags]


def _without(flags: list[str], name: str) -> list[str]:
    at = flags.index(name)
    return flags[:at] + flags[at + 2:]


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_is_one_error_line(name, tmp_path, tiny_model_dir, fixture_files, capsys):
    case = CASES[name]
    code, err = cli(SCRIPTS[case.script], build_argv(case, tmp_path, tiny_model_dir, fixture_files), capsys)
    assert "Traceback" not in err
    assert code == case.code, err
    assert len(err.splitlines()) == 1 and err.startswith("error: "), err
    assert case.needle in err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("how", ["--debug", "PEFT_SUM_DEBUG=1"])
def test_debug_shows_the_traceback_of_a_user_error(how, tmp_path, tiny_model_dir, fixture_files, capsys,
                                                   monkeypatch):
    argv = build_argv(CASES["learning_rate 0"], tmp_path, tiny_model_dir, fixture_files)
    if how == "--debug":
        argv.append("--debug")
    else:
        monkeypatch.setenv("PEFT_SUM_DEBUG", "1")
    code, err = cli(train_lora.main, argv, capsys)
    assert code == 2 and err.startswith("Traceback") and "ConfigError" in err
    assert err.splitlines()[-1] == "error: --learning_rate 0.0: must be > 0"


def test_a_bug_keeps_its_traceback(tmp_path, tiny_model_dir, fixture_files, capsys, monkeypatch):
    def broken(cfg):
        raise KeyError("a bug, not a user error")

    monkeypatch.setattr(train_lora, "start", broken)  # main's first step after parsing
    argv = build_argv(Case("lora", (), ""), tmp_path, tiny_model_dir, fixture_files)
    code, err = cli(train_lora.main, argv, capsys)
    assert code == 1 and err.startswith("Traceback") and "KeyError: 'a bug, not a user error'" in err
    assert "error: " not in err
