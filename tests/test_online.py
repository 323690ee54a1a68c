"""The user's online path, end to end, against the test Hub (tests/hub_server.py) on 127.0.0.1.

A tiny random GPT-Neo is served as `EleutherAI/gpt-neo-125M` and a few CNN/DailyMail rows (the real ones in
../shared when present, else the fixture rows) as `abisee/cnn_dailymail` config 3.0.0. The README's GPU
section then runs as written, in a scratch folder, with bf16 off and tiny budgets appended, and each
training run pushed to the test Hub with the token given by a different route. Then: every pushed repo is
pulled back by name into a fresh cache and regenerates the same predictions; no file anywhere holds the
token; the same run works offline from the cache; an unreachable endpoint fails fast, naming the flags.
"""

from __future__ import annotations

import json
import platform
import shlex
import socket
import subprocess
import sys

import pandas as pd
import pytest

from helpers import FIXTURES, ROOT, data_flags, online_env, talk_to_test_hub
from hub_server import make_dataset_repo_files

pytestmark = pytest.mark.slow

MODEL_ID, DATASET_ID, OWNER = "EleutherAI/gpt-neo-125M", "abisee/cnn_dailymail", "test-user"
METHODS = ("lora", "soft_prompt", "finetune")
TOKEN = "hf_FAKEtokenThatMustNeverBeWrittenToDisk42"
REAL_DATA = ROOT.parent / "shared" / "data" / "cnn_dailymail"
GENERATION = ["--max_source_length", "48", "--max_new_tokens", "6", "--generation_batch_size", "4"]
TRAINING = ["--max_steps", "2", "--per_device_train_batch_size", "2", "--per_device_eval_batch_size", "2",
            "--max_target_length", "16", "--num_eval_generate", "2", "--dataloader_num_workers", "0",
            "--bf16", "false", "--report_to", "none"]
LINK = ("train_lora.py", "train_soft_prompt.py", "train_finetune.py", "evaluate_all.py", "common", "configs",
        "accelerate_config.yaml")


def read_rows(split: str, count: int) -> list[dict]:
    """The first `count` rows of a split: real CNN/DailyMail rows when ../shared has them, else the fixtures."""
    folder = REAL_DATA if (REAL_DATA / f"{split}.jsonl").is_file() else FIXTURES
    with open(folder / f"{split}.jsonl", encoding="utf-8") as handle:
        rows = [json.loads(line) for line, _ in zip(handle, range(count))]
    return [{"id": r["id"], "article": r["article"], "highlights": r["highlights"]} for r in rows]


def readme_gpu_commands() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = text.split("<!-- gpu-commands -->")[1].split("<!-- /gpu-commands -->")[0]
    return [line for line in block.splitlines() if line.strip() and not line.startswith(("```", "pip "))]


def as_argv(line: str) -> list[str]:
    """A README line as an argv for this Python: `accelerate launch ...` and `python ...` alike."""
    words = shlex.split(line)
    if words[:2] == ["accelerate", "launch"]:
        return [sys.executable, "-m", "accelerate.commands.launch", *words[2:]]
    assert words[0] == "python", line
    return [sys.executable, *words[1:]]


def method_of(words: list[str]) -> str | None:
    return next((m for m in METHODS if f"train_{m}.py" in words), None)


def run(argv, cwd, env, timeout=600):
    result = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{' '.join(argv)}\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}"
    return result


@pytest.fixture(scope="module")
def served(hub_server, tiny_model_dir):
    """The tiny model and the rows on the test Hub, under the GPU presets' names."""
    rows = {"train": read_rows("train", 8), "validation": read_rows("validation", 4), "test": read_rows("test", 4)}
    hub_server.add_repo(MODEL_ID, tiny_model_dir)
    hub_server.add_repo(DATASET_ID, make_dataset_repo_files(rows, config="3.0.0"), repo_type="dataset")
    return rows


@pytest.fixture(scope="module")
def gpu_section(served, hub_server, tmp_path_factory):
    """The README's GPU commands, run in a scratch folder; each training run pushes with its own token route."""
    work = tmp_path_factory.mktemp("gpu-section")
    for name in LINK:
        (work / name).symlink_to(ROOT / name)
    hf_home = work / "hf-home"
    hf_home.mkdir()
    routes, outputs = {}, {}
    for line in readme_gpu_commands():
        argv, method = as_argv(line), method_of(shlex.split(line))
        env = online_env(hf_home)
        if method:
            argv += [*TRAINING, *GENERATION, "--push_to_hub", "--hub_model_id", f"{OWNER}/{method}"]
            routes[method] = {"lora": "flag", "soft_prompt": "HF_TOKEN", "finetune": "token file"}[method]
            if method == "lora":
                argv += ["--hub_token", TOKEN]
            elif method == "soft_prompt":
                env["HF_TOKEN"] = TOKEN
            else:
                (hf_home / "token").write_text(TOKEN)  # what `hf auth login` writes
        elif "common.zero_shot" in argv:
            argv += GENERATION
        first = len(hub_server.requests)
        outputs[line] = (run(argv, work, env), hub_server.requests[first:])
    return {"work": work, "hf_home": hf_home, "routes": routes, "outputs": outputs}


def test_readme_gpu_section_pulls_by_name_and_evaluate_all_runs_bare(gpu_section, served):
    lines = list(gpu_section["outputs"])
    assert lines[-1].strip() == "python evaluate_all.py" and len(lines) == 5
    first_paths = [r["path"] for r in gpu_section["outputs"][lines[0]][1]]  # later runs may use the cache
    assert any(p.startswith(f"/{MODEL_ID}/resolve/main/") for p in first_paths)
    assert any(p.startswith(f"/datasets/{DATASET_ID}/resolve/") for p in first_paths)
    print("$ python evaluate_all.py\n" + gpu_section["outputs"][lines[-1]][0].stdout)  # shown with pytest -rP
    comparison = json.loads((gpu_section["work"] / "runs" / "comparison" / "comparison.json").read_text())
    names = {system["system"] for system in comparison["systems"]}
    assert {"gpt-neo-125m/lora", "gpt-neo-125m/soft_prompt", "gpt-neo-125m/finetune",
            "gpt-neo-125m/zero_shot", "lead3"} <= names, names
    for method in METHODS:
        run_json = json.loads((gpu_section["work"] / "runs" / "gpt-neo-125m" / method / "run.json").read_text())
        assert run_json["base_model"] == MODEL_ID and run_json["examples"]["test"]["used"] == len(served["test"])
        assert run_json["examples"]["train"]["source"] == f"{DATASET_ID}[train]"


@pytest.mark.parametrize("method", METHODS)
def test_pushed_repo_pulled_back_by_name_gives_the_same_predictions(method, gpu_section, hub_server, tmp_path):
    """Download the pushed repo into a fresh cache, put it on the base model, regenerate: same summaries."""
    work = gpu_section["work"]
    argv = [sys.executable, "-m", "common.zero_shot", "--config", "configs/gpt-neo-125m/zero_shot.yaml",
            "--trained_path", f"{OWNER}/{method}", "--output_dir", str(tmp_path / "again"), *GENERATION]
    run(argv, work, online_env(tmp_path / "fresh-hf-home"))
    local = pd.read_csv(work / "runs" / "gpt-neo-125m" / method / "predictions_test.csv", keep_default_na=False)
    again = pd.read_csv(tmp_path / "again" / "predictions_test.csv", keep_default_na=False)
    assert again["id"].tolist() == local["id"].tolist()
    assert again["Predicted Summary"].tolist() == local["Predicted Summary"].tolist()
    carried = json.loads((tmp_path / "again" / "run.json").read_text())
    assert carried["method"] == method and carried["trained_path"] == f"{OWNER}/{method}"


@pytest.mark.parametrize("method", METHODS)
def test_pushed_repo_holds_weights_card_and_no_local_path(method, gpu_section, hub_server, tiny_model_dir):
    repo = hub_server.repo_path(f"{OWNER}/{method}")
    names = sorted(p.name for p in repo.iterdir())
    weights = "trained_params.safetensors" if method == "finetune" else "adapter_model.safetensors"
    assert {weights, "README.md", "run.json"} <= set(names), names
    assert not {"model.safetensors", "pytorch_model.bin"} & set(names)
    card = (repo / "README.md").read_text()
    assert f"base_model: {MODEL_ID}" in card and f"tags:\n- summarization\n- {method}" in card
    for path in repo.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            for local in (str(gpu_section["work"]), str(tiny_model_dir), "/tmp/", platform.platform()):
                assert local.encode() not in data, (path.name, local)
    assert "platform" not in json.loads((repo / "run.json").read_text())["versions"]


@pytest.mark.parametrize("method", METHODS)
def test_pushed_card_read_back_names_base_model_dataset_and_test_rouge(method, gpu_section, hub_server, monkeypatch):
    """The card as the Hub serves it, through huggingface_hub: base model, dataset and model-index results."""
    from huggingface_hub import ModelCard

    talk_to_test_hub(monkeypatch)
    card = ModelCard.load(f"{OWNER}/{method}")
    run = json.loads((hub_server.repo_path(f"{OWNER}/{method}") / "run.json").read_text())
    assert (card.data.base_model, card.data.datasets, card.data.model_name) == (MODEL_ID, [DATASET_ID],
                                                                                 f"{OWNER}/{method}")
    assert {r.metric_config: r.metric_value for r in card.data.eval_results} == {
        key: round(value, 2) for key, value in run["test_rouge"].items()}
    assert {(r.dataset_type, r.dataset_config, r.dataset_split) for r in card.data.eval_results} == {
        (DATASET_ID, "3.0.0", "test")}


def test_no_token_written_anywhere_and_each_route_delivered_it(gpu_section, hub_server):
    token_file = gpu_section["hf_home"] / "token"
    hits = [str(p) for p in gpu_section["work"].rglob("*")
            if p.is_file() and p != token_file and TOKEN.encode() in p.read_bytes()]
    checkpoints = list((gpu_section["work"] / "runs").rglob("training_args.bin"))
    files = [p for p in gpu_section["work"].rglob("*") if p.is_file()]
    print(f"token grep: {len(files)} files under the runs and the cache ({len(checkpoints)} training_args.bin), "
          f"{len(hits)} hold the token")
    assert checkpoints and hits == []
    for method, route in gpu_section["routes"].items():
        commits = [r for r in hub_server.requests if r["path"] == f"/api/models/{OWNER}/{method}/commit/main"]
        assert commits and all(r["authorization"] == f"Bearer {TOKEN}" for r in commits), (method, route)


def test_offline_rerun_uses_the_cached_model_and_dataset(gpu_section, hub_server):
    work, first = gpu_section["work"], len(hub_server.requests)
    argv = [sys.executable, "train_lora.py", "--config", "configs/gpt-neo-125m/lora.yaml",
            "--output_dir", "runs/offline/lora", *TRAINING, *GENERATION]
    run(argv, work, online_env(gpu_section["hf_home"], HF_HUB_OFFLINE="1"))
    assert hub_server.requests[first:] == []
    assert (work / "runs" / "offline" / "lora" / "predictions_test.csv").is_file()


def test_unreachable_endpoint_fails_fast_and_names_the_local_flags(tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}"
    env = online_env(tmp_path / "hf", HF_ENDPOINT=closed)
    result = subprocess.run([sys.executable, "train_lora.py", "--output_dir", str(tmp_path / "out")], cwd=ROOT,
                            env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode != 0
    assert closed in result.stderr and "--model_name_or_path" in result.stderr and "--train_file" in result.stderr
    assert not (tmp_path / "out").exists()


def test_token_from_yaml_never_reaches_a_checkpoint(tiny_model_dir, fixture_files, tmp_path):
    from common.config.parsing import parse_run_config
    from common.pipeline.steps import run_method

    config = tmp_path / "with_token.yaml"
    config.write_text(f"hub_token: {TOKEN}\nsave_strategy: steps\nsave_steps: 1\nmax_steps: 2\n")
    out = tmp_path / "run"
    run_method(parse_run_config("lora", ["--config", str(config), "--model_name_or_path", str(tiny_model_dir),
                                         *data_flags(fixture_files), "--output_dir", str(out), "--eval_strategy",
                                         "no", "--per_device_train_batch_size", "2", "--max_new_tokens", "4"]))
    files = [p for p in out.rglob("*") if p.is_file()]
    assert any(p.name == "training_args.bin" for p in files)
    assert [p for p in files if TOKEN.encode() in p.read_bytes()] == []
