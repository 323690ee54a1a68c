"""Adding a method is one registry entry plus its builder: a throwaway method (PEFT's LoHa) defined here,
in this file alone, trains and predicts end to end through the shared path, and is listed wherever
methods are listed."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pandas as pd
import pytest
from peft import LoHaConfig, TaskType, get_peft_model

from common.methods import REGISTRY, Method, method_names, recorded_names, register


@dataclass(frozen=True)
class LoHaArguments:
    """LoHa: low-rank Hadamard-product updates (PEFT LoHaConfig)."""

    loha_r: int = field(default=2, metadata={"help": "LoHa rank."})
    loha_target_modules: list[str] = field(default_factory=lambda: ["q_proj", "v_proj"],
                                           metadata={"help": "Modules to adapt."})


def build_loha(model, args: LoHaArguments, model_args=None):
    config = LoHaConfig(task_type=TaskType.CAUSAL_LM, r=args.loha_r, alpha=args.loha_r,
                        target_modules=list(args.loha_target_modules))
    return get_peft_model(model, config)


@pytest.fixture()
def loha_registered():
    register(Method(name="loha", title="LoHa", arguments=LoHaArguments, build=build_loha, script="train_loha.py",
                    defaults={"num_train_epochs": 1, "learning_rate": 1e-2, "output_dir": "runs/loha"}))
    yield
    REGISTRY.pop("loha")


@pytest.mark.slow
def test_a_registered_method_trains_and_predicts_end_to_end(loha_registered, tiny_model_dir, fixture_files,
                                                            tmp_path):
    from common.hub import publish as hub
    from common.config.parsing import parse_run_config
    from common.pipeline.steps import run_method
    from common.pipeline.presets import preset_methods
    from helpers import data_flags

    assert method_names()[-1] == "loha" and preset_methods()[-2:] == ["loha", "zero_shot"]
    assert recorded_names()[-1] == "loha"
    out = tmp_path / "loha"
    cfg = parse_run_config("loha", ["--model_name_or_path", str(tiny_model_dir), *data_flags(fixture_files),
                                    "--output_dir", str(out), "--max_steps", "2", "--per_device_train_batch_size", "2",
                                    "--max_new_tokens", "4", "--eval_strategy", "no", "--save_strategy", "no",
                                    "--loha_target_modules", "v_proj"])
    assert cfg.training.learning_rate == 1e-2 and cfg.method.loha_target_modules == ["v_proj"]
    summary = run_method(cfg)
    run = json.loads((out / "run.json").read_text())
    # v_proj (64 x 64) in 2 layers, two rank-2 factor pairs each: 2 x 2 x (2 x 64 + 2 x 64)
    assert run["method"] == "loha" and run["train_steps"] == 2 and run["trainable"] == 1024
    assert json.loads((out / "adapter" / "adapter_config.json").read_text())["peft_type"] == "LOHA"
    assert len(pd.read_csv(out / "predictions_test.csv")) == 4 and summary["test_rouge"]
    card = str(hub.model_card(hub.public_payload(run), "me/loha"))
    assert "LoHa of" in card and "library_name: peft" in card
