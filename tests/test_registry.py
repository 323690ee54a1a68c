"""Adding a method is one registry entry plus its builder: a throwaway method (PEFT's IA3) defined here,
in this file alone, trains and predicts end to end through the shared path, and is listed wherever
methods are listed."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pandas as pd
import pytest
from peft import IA3Config, TaskType, get_peft_model

from common.methods import REGISTRY, Method, method_names, register


@dataclass(frozen=True)
class IA3Arguments:
    """IA3: learned rescaling vectors on attention and feed-forward activations (PEFT IA3Config)."""

    ia3_target_modules: list[str] = field(default_factory=lambda: ["q_proj", "v_proj", "c_proj"],
                                          metadata={"help": "Modules whose activations are rescaled."})
    ia3_feedforward_modules: list[str] = field(default_factory=lambda: ["c_proj"],
                                               metadata={"help": "Those of them that are feed-forward layers."})


def build_ia3(model, args: IA3Arguments, model_args=None):
    config = IA3Config(task_type=TaskType.CAUSAL_LM, target_modules=list(args.ia3_target_modules),
                       feedforward_modules=list(args.ia3_feedforward_modules))
    return get_peft_model(model, config)


@pytest.fixture()
def ia3_registered():
    register(Method(name="ia3", title="IA3", arguments=IA3Arguments, build=build_ia3, script="train_ia3.py",
                    defaults={"num_train_epochs": 1, "learning_rate": 1e-2, "output_dir": "runs/ia3"}))
    yield
    REGISTRY.pop("ia3")


@pytest.mark.slow
def test_a_registered_method_trains_and_predicts_end_to_end(ia3_registered, tiny_model_dir, fixture_files,
                                                            tmp_path):
    from common.hub import publish as hub
    from common.config.parsing import parse_run_config
    from common.pipeline.steps import run_method
    from common.pipeline.presets import preset_methods
    from helpers import data_flags

    assert method_names()[-1] == "ia3" and preset_methods()[-2:] == ["ia3", "zero_shot"]
    out = tmp_path / "ia3"
    cfg = parse_run_config("ia3", ["--model_name_or_path", str(tiny_model_dir), *data_flags(fixture_files),
                                   "--output_dir", str(out), "--max_steps", "2", "--per_device_train_batch_size", "2",
                                   "--max_new_tokens", "4", "--eval_strategy", "no", "--save_strategy", "no",
                                   "--ia3_target_modules", "v_proj", "c_proj"])
    assert cfg.training.learning_rate == 1e-2 and cfg.method.ia3_target_modules == ["v_proj", "c_proj"]
    summary = run_method(cfg)
    run = json.loads((out / "run.json").read_text())
    assert run["method"] == "ia3" and run["train_steps"] == 2 and 0 < run["trainable"] < 2_000
    assert json.loads((out / "adapter" / "adapter_config.json").read_text())["peft_type"] == "IA3"
    assert len(pd.read_csv(out / "predictions_test.csv")) == 4 and summary["test_rouge"]
    card = str(hub.model_card(hub.public_payload(run), "me/ia3"))
    assert "IA3 of" in card and "library_name: peft" in card
