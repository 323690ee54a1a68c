"""Helpers shared by test modules: no test module imports another, and conftest.py holds only the environment
set at collection and the fixtures.

Nothing here imports torch, transformers or pandas at module level (the functions that need them import them
when called), so a module that only needs paths or `online_env` (test_online.py) is collected without them.
"""

from __future__ import annotations

import json
import os
import traceback
from pathlib import Path
from typing import Callable

from common.core.cli import run

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"


def data_flags(files: dict[str, str]) -> list[str]:
    """The three split flags for the `fixture_files` fixture (or any {split: path})."""
    return ["--train_file", files["train"], "--validation_file", files["validation"], "--test_file", files["test"]]


def online_env(hf_home: Path, **extra: str) -> dict[str, str]:
    """Environment of a subprocess that talks to the test Hub as a user's machine talks to the real one."""
    env = {**os.environ, "HF_ENDPOINT": os.environ["HF_ENDPOINT"], "HF_HOME": str(hf_home), "HF_HUB_OFFLINE": "0",
           "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false", "HF_HUB_DISABLE_TELEMETRY": "1"}
    for name in ("TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE", "HF_TOKEN", "ACCELERATE_USE_CPU"):
        env.pop(name, None)
    env.update(extra)
    return env


def talk_to_test_hub(monkeypatch, token: str = "hf_test") -> None:
    """This process talks to the test Hub (HF_ENDPOINT, see conftest) with `token`, as a user's machine would."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_TOKEN", token)


def cli(main: Callable[[list[str]], object], argv: list[str], capsys) -> tuple[int, str]:
    """Run a script's `main` as `python script.py ARGV` would, in-process: through `common.cli.run`, with
    an exception that `run` lets through (a bug) printed with its traceback and exit code 1, as the
    interpreter does, and a SystemExit (argparse's --help) giving its code.

    Returns (exit code, everything written to stderr).

    Example:
        >>> cli(train_lora.main, ["--learning_rate", "0"], capsys)
        (2, 'error: --learning_rate 0.0: must be > 0\\n')
    """
    capsys.readouterr()
    try:
        code = run(main, list(argv))
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 1
    except Exception:  # noqa: BLE001 - what the interpreter does with an uncaught exception
        traceback.print_exc()
        code = 1
    return code, capsys.readouterr().err


# The methods on the tiny model, in-process (test_methods.py, test_loss.py, test_performance_paths.py).

ARTICLES = ["The council approved the budget on Tuesday after a long debate.",
            "Police said the driver was taken to hospital.",
            "Scientists found that the river's water quality improved over the past ten years, officials said."]


def method_arguments() -> dict:
    """{method: its arguments for the tiny model} for every name a run can be recorded under (each registered
    method and its variants: dora, rslora, full_finetune; the tests parametrize over these keys): small
    settings for the built-in methods, the dataclass defaults for any other, with a variant's settings."""
    from common.methods import method_for, recorded_names, variant_settings

    lora = {"r": 4, "lora_alpha": 8, "lora_dropout": 0.0}
    small = {"lora": lora, "dora": lora, "rslora": lora,
             "soft_prompt": {"num_virtual_tokens": 5, "prompt_init": "text", "prompt_init_text": "Summarize it:"},
             "finetune": {"num_trainable_layers": 1}, "prefix_tuning": {"num_virtual_tokens": 4},
             "prefix_tuning_mlp": {"num_virtual_tokens": 4, "encoder_hidden_size": 16}}
    return {name: method_for(name).arguments(**{**small.get(name, {}), **variant_settings(name)})
            for name in recorded_names()}


def variant_flags(name: str) -> list[str]:
    """The flags that select a recorded name (`--use_dora true` for dora; none for a method's own name)."""
    from common.methods import variant_settings

    return [item for key, value in variant_settings(name).items()
            for item in (f"--{key}", str(value).lower() if isinstance(value, bool) else str(value))]


def build(method, tiny_model_dir, args=None):
    """`method` (a recorded name: 'dora' builds LoRA) on a fresh copy of the tiny model, with `args` or its
    `method_arguments()`."""
    from transformers import AutoModelForCausalLM

    from common.config.arguments import ModelArguments
    from common.methods import build_method, method_for

    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    return build_method(method_for(method).name, base, args or method_arguments()[method],
                        ModelArguments(model_name_or_path=str(tiny_model_dir)))


def a_batch(tokenizer):
    """ARTICLES, each with the summary "Short.", masked and padded as training batches are."""
    from common.data.prompts import PaddingCollator, mask_prompt

    examples = [mask_prompt(tokenizer(a)["input_ids"], tokenizer("Short.")["input_ids"], tokenizer.eos_token_id, 8)
                for a in ARTICLES]
    return PaddingCollator(pad_id=tokenizer.eos_token_id)(examples)


def train_steps(model, batch, steps=3, lr=1e-2):
    """`steps` AdamW steps on `batch` with the training loss (seeded); returns the model in eval mode."""
    import torch

    from common.methods import num_virtual_tokens
    from common.training.trainer import label_position_loss

    torch.manual_seed(0)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
    model.train()
    for _ in range(steps):
        loss = label_position_loss(model, batch, num_virtual_tokens(model))
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    return model.eval()


# Training killed at a checkpoint, then resumed (test_resume_export_hub.py, test_p_tuning.py).

def stop_after(step):
    """A Trainer callback ending training once the checkpoint at `step` is saved, as a killed job would."""
    from transformers import TrainerCallback

    class StopAfter(TrainerCallback):
        def on_save(self, args, state, control, **kwargs):
            if state.global_step >= step:
                control.should_training_stop = True

    return StopAfter()


def trainer_for(method, model_dir, files, out_dir, extra=()):
    """`method`'s Trainer (a recorded name: 'dora' is LoRA with --use_dora true) on the fixture files: 4 steps
    of 2 examples, a checkpoint every 2 steps, seeded."""
    from transformers import set_seed

    from common.config.parsing import parse_run_config
    from common.data.loading import load_splits
    from common.methods import build_method, method_for
    from common.models.loading import load_base_model, load_tokenizer
    from common.training.trainer import build_trainer

    name = method_for(method).name
    cfg = parse_run_config(name, ["--model_name_or_path", str(model_dir), *data_flags(files),
                                  "--output_dir", str(out_dir), "--max_steps", "4", "--save_strategy", "steps",
                                  "--save_steps", "2", "--eval_strategy", "no", "--per_device_train_batch_size",
                                  "2", "--learning_rate", "1e-2", "--save_total_limit", "5", *variant_flags(method),
                                  *extra])
    set_seed(cfg.training.seed)  # as run_method does: the LoRA init and the P-tuning encoder are random
    tokenizer = load_tokenizer(cfg.model)
    splits, _ = load_splits(cfg.data)
    model = build_method(name, load_base_model(cfg.model), cfg.method, cfg.model)
    return build_trainer(cfg, model, tokenizer, splits)


# A script run end to end on the tiny model (test_end_to_end.py, test_performance_paths.py).

RUN_FIELDS = {"method", "base_model", "trainable", "total", "trainable_percent", "tied_lm_head", "examples",
              "train_wall_time_s", "train_tokens_per_s", "train_tokens", "peak_memory", "test_rouge", "config",
              "versions", "generation_tokens_per_s", "saved_size_bytes"}


def quick_flags(model_dir, files, out_dir):
    """Flags for a two-step run with an eval at each step and a short generation."""
    return ["--model_name_or_path", str(model_dir), *data_flags(files), "--output_dir", str(out_dir),
            "--max_steps", "2", "--per_device_train_batch_size", "2", "--max_new_tokens", "6",
            "--num_eval_generate", "2", "--eval_strategy", "steps", "--eval_steps", "1", "--save_strategy", "no",
            "--logging_steps", "1"]


def check_outputs(out_dir, method, n_test):
    """Check the predictions CSV and run.json of a `quick_flags` run; returns (predictions frame, run.json)."""
    import pandas as pd

    frame = pd.read_csv(out_dir / "predictions_test.csv", keep_default_na=False)
    assert list(frame.columns) == ["id", "Article", "Actual Summary", "Predicted Summary", "Stopped"]
    assert len(frame) == n_test and frame["id"].is_unique and set(frame["Stopped"]) <= {"eos", "limit"}
    run_json = json.loads((out_dir / "run.json").read_text())
    cut = (frame["Stopped"] == "limit").sum()
    assert run_json["summaries_cut_at_limit"] == cut and run_json["summaries_cut_share"] == round(cut / n_test, 4)
    assert RUN_FIELDS <= set(run_json), RUN_FIELDS - set(run_json)
    assert run_json["method"] == method and 0 < run_json["trainable"] <= run_json["total"]
    assert run_json["examples"]["test"]["used"] == n_test and run_json["train_steps"] == 2
    assert set(run_json["test_rouge"]) == {"rouge1", "rouge2", "rougeL", "rougeLsum"}
    assert not list(out_dir.glob(".*.tmp"))
    return frame, run_json


def gpt_neo_with_short_window(local_first: bool = False):
    """A 2-layer random GPT-Neo whose local layer's window (8) is shorter than the tests' prompts, so the window
    is exercised; `local_first` puts the local layer first (the prefix-tuning tests, where the prefix plus a
    prompt must also outrun the window)."""
    import torch
    from transformers import GPTNeoConfig, GPTNeoForCausalLM

    torch.manual_seed(0)
    order = ["local", "global"] if local_first else ["global", "local"]
    return GPTNeoForCausalLM(GPTNeoConfig(vocab_size=128, hidden_size=32, num_layers=2, num_heads=4,
                                          attention_types=[[order, 1]], window_size=8,
                                          max_position_embeddings=256, bos_token_id=1, eos_token_id=2)).eval()


def small_llama():
    """A 2-layer random Llama with grouped-query attention (2 key/value heads for 4 query heads)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    return LlamaForCausalLM(LlamaConfig(vocab_size=128, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                        num_attention_heads=4, num_key_value_heads=2, bos_token_id=1,
                                        eos_token_id=2, pad_token_id=0)).eval()
