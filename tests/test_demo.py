"""Presets: a finished run is reused only when its run.json holds the same resolved config; every method
in the registry (and the zero-shot baseline) has a demo preset for the offline model."""


from common.config.parsing import parse_run_config
from common.demo import CONFIG_DIR
from common.pipeline.presets import is_finished, preset_config, preset_methods
from common.core.atomic import write_json


def test_is_finished_requires_the_same_config(tmp_path):
    cfg = parse_run_config("lora", ["--output_dir", str(tmp_path), "--r", "4"])
    assert not is_finished(cfg)
    write_json(tmp_path / "run.json", {"config": cfg.to_dict()})
    assert is_finished(cfg)
    changed = parse_run_config("lora", ["--output_dir", str(tmp_path), "--r", "8"])
    assert not is_finished(changed)
    (tmp_path / "run.json").write_text("{broken")
    assert not is_finished(cfg)


def test_a_field_added_since_the_run_matches_only_at_its_default(tmp_path):
    """A run.json written before `eval_num_beams` existed is this configuration when it keeps the default."""
    cfg = parse_run_config("lora", ["--output_dir", str(tmp_path), "--num_beams", "4"])
    stored = cfg.to_dict()
    del stored["generation"]["eval_num_beams"]
    write_json(tmp_path / "run.json", {"config": stored})
    assert is_finished(cfg)
    assert not is_finished(parse_run_config("lora", ["--output_dir", str(tmp_path), "--num_beams", "4",
                                                     "--eval_num_beams", "1"]))
    assert not is_finished(parse_run_config("lora", ["--output_dir", str(tmp_path), "--num_beams", "2"]))


def test_every_demo_method_has_a_preset_for_the_offline_model(tmp_path):
    for method in preset_methods():
        cfg = preset_config(CONFIG_DIR, method, tmp_path)
        assert cfg.model.model_name_or_path == str(tmp_path)
        assert cfg.data.use_chat_template and cfg.data.test_file == "data/sample/test.jsonl"
        assert cfg.training.output_dir == f"runs/demo/{method}"
