"""Each script end to end on the tiny model: two steps, fixture rows, every output file checked."""

import importlib
import json

import pandas as pd
import pytest

from common.methods import method_for, recorded_names
from helpers import check_outputs, quick_flags, variant_flags


@pytest.mark.slow
@pytest.mark.parametrize("method", recorded_names())
def test_script_writes_adapter_csv_and_run_json(method, tiny_model_dir, fixture_files, tmp_path):
    """Each method's script, and each variant through its method's script with its flags (train_lora.py
    --use_dora true), recorded in run.json under its own name."""
    script = importlib.import_module(method_for(method).script.removesuffix(".py"))
    out_dir = tmp_path / method
    script.main([*quick_flags(tiny_model_dir, fixture_files, out_dir), *variant_flags(method)])
    _, run = check_outputs(out_dir, method, n_test=4)
    weights = "adapter_model.safetensors" if method_for(method).peft_adapter else "trained_params.safetensors"
    assert (out_dir / "adapter" / weights).is_file()
    assert (run["trainable"] == run["total"]) == (method == "full_finetune")
    if method_for(method).name == "lora":  # the variant is in the adapter, so reloading it rebuilds the same model
        adapter_config = json.loads((out_dir / "adapter" / "adapter_config.json").read_text())
        assert (adapter_config["use_dora"], adapter_config["use_rslora"]) == (method == "dora", method == "rslora")
    assert run["saved_size_bytes"] > 0 and run["train_tokens"] > 0
    assert any("eval_rougeLsum" in entry for entry in json.loads((out_dir / "run.json").read_text())["log_history"])
    check_generation_from_saved_weights(method, tiny_model_dir, fixture_files, out_dir, tmp_path / "again")


def check_generation_from_saved_weights(method, model_dir, files, trained_dir, out_dir):
    """common.zero_shot --trained_path: the saved weights reproduce the run's test predictions, and the
    new run.json carries the training run's method, costs and learning curve."""
    from common import zero_shot

    zero_shot.main(["--model_name_or_path", str(model_dir), "--test_file", files["test"], "--max_new_tokens", "6",
                    "--output_dir", str(out_dir), "--trained_path", str(trained_dir / "adapter")])
    trained = pd.read_csv(trained_dir / "predictions_test.csv", keep_default_na=False)
    again = pd.read_csv(out_dir / "predictions_test.csv", keep_default_na=False)
    assert again["Predicted Summary"].tolist() == trained["Predicted Summary"].tolist()
    source, run = (json.loads((d / "run.json").read_text()) for d in (trained_dir, out_dir))
    for field in ("method", "trainable", "total", "train_wall_time_s", "saved_size_bytes", "peak_memory",
                  "learning_curve"):
        assert run[field] == source[field], field
    assert run["trained_path"] == str(trained_dir / "adapter") and run["config"]["method"]["trained_path"]
    assert run["generation_peak_memory"]["peak_rss_mib"] > 0
    assert run["examples"] == {"test": {**source["examples"]["test"]}}  # this run's data counts, test split only
