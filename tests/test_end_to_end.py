"""Each script end to end on the tiny model: two steps, fixture rows, every output file checked."""

import importlib
import json

import pandas as pd
import pytest

from conftest import data_flags

RUN_FIELDS = {"method", "base_model", "trainable", "total", "trainable_percent", "tied_lm_head", "examples",
              "train_wall_time_s", "train_tokens_per_s", "train_tokens", "peak_memory", "test_rouge", "config",
              "versions", "generation_tokens_per_s", "saved_size_bytes"}
SCRIPTS = {"lora": "train_lora", "soft_prompt": "train_soft_prompt", "finetune": "train_finetune"}


def quick_flags(model_dir, files, out_dir):
    return ["--model_name_or_path", str(model_dir), *data_flags(files), "--output_dir", str(out_dir),
            "--max_steps", "2", "--per_device_train_batch_size", "2", "--max_new_tokens", "6",
            "--num_eval_generate", "2", "--eval_strategy", "steps", "--eval_steps", "1", "--save_strategy", "no",
            "--logging_steps", "1"]


def check_outputs(out_dir, method, n_test):
    frame = pd.read_csv(out_dir / "predictions_test.csv", keep_default_na=False)
    assert list(frame.columns) == ["id", "Article", "Actual Summary", "Predicted Summary"]
    assert len(frame) == n_test and frame["id"].is_unique
    run = json.loads((out_dir / "run.json").read_text())
    assert RUN_FIELDS <= set(run), RUN_FIELDS - set(run)
    assert run["method"] == method and 0 < run["trainable"] < run["total"]
    assert run["examples"]["test"]["used"] == n_test and run["train_steps"] == 2
    assert set(run["test_rouge"]) == {"rouge1", "rouge2", "rougeL", "rougeLsum"}
    assert not list(out_dir.glob(".*.tmp"))
    return frame, run


@pytest.mark.parametrize("method", ["lora", "soft_prompt", "finetune"])
def test_script_writes_adapter_csv_and_run_json(method, tiny_model_dir, fixture_files, tmp_path):
    script = importlib.import_module(SCRIPTS[method])
    out_dir = tmp_path / method
    script.main(quick_flags(tiny_model_dir, fixture_files, out_dir))
    _, run = check_outputs(out_dir, method, n_test=4)
    weights = "trained_params.safetensors" if method == "finetune" else "adapter_model.safetensors"
    assert (out_dir / "adapter" / weights).is_file()
    assert run["saved_size_bytes"] > 0 and run["train_tokens"] > 0
    assert any("eval_rougeLsum" in entry for entry in json.loads((out_dir / "run.json").read_text())["log_history"])
    check_generation_from_saved_weights(method, tiny_model_dir, fixture_files, out_dir, tmp_path / "again")


def check_generation_from_saved_weights(method, model_dir, files, trained_dir, out_dir):
    """common.zero_shot --trained_path: the saved weights reproduce the run's test predictions, and the
    new run.json carries the training run's method and costs."""
    from common import zero_shot

    zero_shot.main(["--model_name_or_path", str(model_dir), "--test_file", files["test"], "--max_new_tokens", "6",
                    "--output_dir", str(out_dir), "--trained_path", str(trained_dir / "adapter")])
    trained = pd.read_csv(trained_dir / "predictions_test.csv", keep_default_na=False)
    again = pd.read_csv(out_dir / "predictions_test.csv", keep_default_na=False)
    assert again["Predicted Summary"].tolist() == trained["Predicted Summary"].tolist()
    source, run = (json.loads((d / "run.json").read_text()) for d in (trained_dir, out_dir))
    for field in ("method", "trainable", "total", "train_wall_time_s", "saved_size_bytes", "peak_memory"):
        assert run[field] == source[field], field
    assert run["trained_path"] == str(trained_dir / "adapter") and run["config"]["method"]["trained_path"]
    assert run["generation_peak_memory"]["peak_rss_mib"] > 0
