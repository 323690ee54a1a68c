"""Presets run as a user would run them: a YAML file through its method's entry point, in its own process.

A run whose `run.json` already holds the same resolved configuration is reused, so a second call only
re-scores; a finished run with another configuration (or `force`) is replaced once the new one is complete.
Used by the demo, `benchmarks/quality_run.py` and `benchmarks/tune_on_dev.py`.

Usage (not run as a doctest: it trains in a subprocess):

    cfg = run_preset("lora", Path("configs/demo/lora.yaml"), model_path, force=False, label="[1/4] lora")
    # prints "[1/4] lora: running (runs/demo/lora)", or "... finished run found in runs/demo/lora, reused"
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import time
from pathlib import Path

from ..config.arguments import GENERATION_ONLY, RunConfig
from ..config.parsing import parse_run_config
from ..methods import get_method, method_names
from ..runs.outputs import RUN_FILE

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def preset_methods() -> list[str]:
    """Every registered method, then the zero-shot baseline: the runs a comparison needs."""
    return [*method_names(), GENERATION_ONLY]


def entry_point(method: str) -> list[str]:
    """What follows `python` to run `method`: its training script, or the generation-only module."""
    return ["-m", "common.predict"] if method == GENERATION_ONLY else [get_method(method).script]


def preset_config(config_dir: Path, method: str, model_path: Path) -> RunConfig:
    """`config_dir/<method>.yaml` with the model path filled in."""
    return parse_run_config(method, ["--config", str(config_dir / f"{method}.yaml"),
                                     "--model_name_or_path", str(model_path)])


def is_finished(cfg: RunConfig) -> bool:
    """True when OUTPUT_DIR/run.json was written by a run with this very configuration.

    A field added to the configuration after that run counts as the same where this run leaves it at its
    default (the run could not have set it, and the default keeps the old behaviour)."""
    path = Path(cfg.training.output_dir) / RUN_FILE
    if not path.is_file():
        return False
    try:
        previous = json.loads(path.read_text(encoding="utf-8")).get("config")
    except (OSError, json.JSONDecodeError):
        return False
    current = json.loads(json.dumps(cfg.to_dict(), default=str))
    previous = _with_new_defaults(previous, current, section_defaults(cfg))
    return _without_overwrite(previous) == _without_overwrite(current)


def section_defaults(cfg: RunConfig) -> dict[str, dict]:
    """Each section of `cfg` (its dataclass fields: model, data, generation, method, training) with its fields'
    defaults, in run.json's JSON form (fields without a default are left out)."""
    defaults = {}
    for section in dataclasses.fields(cfg):
        values = getattr(cfg, section.name)
        if dataclasses.is_dataclass(values):
            defaults[section.name] = {f.name: f.default for f in dataclasses.fields(values)
                                      if f.default is not dataclasses.MISSING}
    return json.loads(json.dumps(defaults, default=str))


def _with_new_defaults(previous, current: dict, defaults: dict[str, dict]):
    """`previous` with each field it lacks filled from `current`, where `current` holds that field's default.

    Example:
        >>> _with_new_defaults({"generation": {"num_beams": 1}}, {"generation": {"num_beams": 1, "eval_num_beams": 0}},
        ...                    {"generation": {"eval_num_beams": 0}})
        {'generation': {'num_beams': 1, 'eval_num_beams': 0}}
    """
    if not isinstance(previous, dict):
        return previous
    filled = dict(previous)
    for section, section_default in defaults.items():
        stored, now = previous.get(section), current.get(section)
        if isinstance(stored, dict) and isinstance(now, dict):
            new = {key: value for key, value in now.items()
                   if key not in stored and key in section_default and value == section_default[key]}
            filled[section] = {**stored, **new}
    return filled


def _without_overwrite(config) -> dict | None:
    """The configuration less --overwrite_output_dir, which says how a run was started, not what it is."""
    if not isinstance(config, dict):
        return None
    return {**config, "training": {k: v for k, v in config.get("training", {}).items() if k != "overwrite_output_dir"}}


def run_preset(method: str, config_file: Path, model_path: Path | str, force: bool, label: str) -> RunConfig:
    """Run `config_file` with `method`'s entry point in its own process, unless a finished run with the
    same configuration exists (and not `force`); returns the parsed configuration.

    One process per run, as a user would launch it: peak memory in run.json is then this run's alone.
    """
    argv = ["--config", str(config_file), "--model_name_or_path", str(model_path)]
    cfg = parse_run_config(method, argv)
    if not force and is_finished(cfg):
        print(f"{label}: finished run found in {cfg.training.output_dir}, reused", flush=True)
        return cfg
    print(f"\n{label}: running ({cfg.training.output_dir})", flush=True)
    start = time.perf_counter()
    # A finished run with another configuration (or --force) is replaced, once the new one is complete.
    subprocess.run([sys.executable, *entry_point(method), *argv, "--overwrite_output_dir"], check=True,
                   cwd=PROJECT_ROOT)
    print(f"{label}: done in {time.perf_counter() - start:.0f} s", flush=True)
    return cfg


def run_all(config_dir: Path, model_path: Path, force: bool) -> list[str]:
    """Train or reuse the run of each preset in `config_dir`; returns the run folders."""
    methods = preset_methods()
    return [run_preset(method, config_dir / f"{method}.yaml", model_path, force,
                       label=f"[{number}/{len(methods)}] {method}").training.output_dir
            for number, method in enumerate(methods, start=1)]
