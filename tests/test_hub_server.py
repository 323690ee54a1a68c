"""The real client libraries (huggingface_hub, transformers, datasets, peft) against `tests/hub_server.py`.

Loads by name run in a subprocess with HF_ENDPOINT pointing at the server: huggingface_hub and datasets read
HF_ENDPOINT, HF_HOME and HF_HUB_OFFLINE at import time, and this process runs with HF_HUB_OFFLINE=1. HfApi calls
run in this process with `endpoint=server.url` and `huggingface_hub.constants.HF_HUB_OFFLINE` lifted, since offline
mode makes every request of huggingface_hub's session raise OfflineModeIsEnabled. One server, one tiny model and
one subprocess per mode (online, then offline on the same HF_HOME) serve the whole module.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import pytest
from huggingface_hub import HfApi, constants, get_hf_file_metadata, hf_hub_download, hf_hub_url
from huggingface_hub.errors import (HfHubHTTPError, RemoteEntryNotFoundError, RepositoryNotFoundError,
                                    RevisionNotFoundError)

from helpers import ROOT
from hub_server import HubServer, make_dataset_repo_files

TOKEN = "hf_fake_token_for_the_local_hub"
MODEL_REPO, DATASET_REPO, ADAPTER_REPO = "EleutherAI/gpt-neo-125M", "abisee/cnn_dailymail", "test-user/tiny-lora"

# Everything by name: the model and tokenizer (compared with the local folder), the LoRA adapter by repo id on the
# Hub model (compared with the local adapter folder on the local model; skipped offline, as importing peft costs
# seconds) and the test split of the dataset.
LOADS = r"""
import json, sys
import torch
from datasets import load_dataset
from transformers import AutoModelForCausalLM, AutoTokenizer

local_dir, adapter_dir, model_repo, adapter_repo, dataset_repo, with_adapter = sys.argv[1:7]
text = "The council approved the new budget on Tuesday."
ids = AutoTokenizer.from_pretrained(model_repo)(text, return_tensors="pt").input_ids
model, local = (AutoModelForCausalLM.from_pretrained(name).eval() for name in (model_repo, local_dir))

def logits(net):
    with torch.no_grad():
        return net(input_ids=ids).logits

base = logits(model)
local_ids = AutoTokenizer.from_pretrained(local_dir)(text, return_tensors="pt").input_ids
result = {"same_ids": torch.equal(ids, local_ids), "same_logits": torch.equal(base, logits(local))}
if with_adapter == "1":
    from peft import PeftModel
    adapted = logits(PeftModel.from_pretrained(model, adapter_repo).eval())
    result["same_adapter_logits"] = torch.equal(adapted, logits(PeftModel.from_pretrained(local, adapter_dir).eval()))
    result["adapter_changes_logits"] = not torch.allclose(adapted, base)
result["test_rows"] = load_dataset(dataset_repo, "3.0.0", split="test").to_list()
print(json.dumps(result))
"""


@pytest.fixture(scope="module")
def fixture_rows(fixture_files) -> dict[str, list[dict]]:
    return {split: [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
            for split, path in fixture_files.items()}


@pytest.fixture(scope="module")
def hub(tmp_path_factory, tiny_model_dir, fixture_rows):
    with HubServer(tmp_path_factory.mktemp("hub")) as server:
        server.add_repo(MODEL_REPO, tiny_model_dir)
        server.add_repo(DATASET_REPO, make_dataset_repo_files(fixture_rows), repo_type="dataset")
        yield server


@pytest.fixture()
def online(monkeypatch):
    """Lift offline mode for huggingface_hub calls made in this process (they all name the local endpoint)."""
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)


@pytest.fixture(scope="module")
def adapter_dir(tmp_path_factory, tiny_model_dir) -> Path:
    """A saved LoRA adapter (with peft's README.md card) whose B matrices are random, so it changes the logits."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    config = LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    folder = tmp_path_factory.mktemp("adapter")
    get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_model_dir), config).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def upload(hub, adapter_dir) -> SimpleNamespace:
    """create_repo + upload_folder of the adapter through HfApi, with the requests they made."""
    api = HfApi(endpoint=hub.url, token=TOKEN)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(constants, "HF_HUB_OFFLINE", False)
        start = len(hub.requests)
        url = api.create_repo(ADAPTER_REPO, exist_ok=True)
        sha_before = api.model_info(ADAPTER_REPO).sha
        commit = api.upload_folder(folder_path=adapter_dir, repo_id=ADAPTER_REPO, commit_message="Add adapter")
    return SimpleNamespace(url=url, sha_before=sha_before, commit=commit, requests=hub.requests[start:])


def run_loads(hub: HubServer, hf_home: Path, offline: bool, tiny_model_dir: Path, adapter_dir: Path):
    """Run LOADS in a fresh interpreter against the server; returns its JSON result and the requests it made."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE_", "TRANSFORMERS_"))}
    env.update(HF_ENDPOINT=hub.url, HF_HOME=str(hf_home), HF_HUB_OFFLINE="1" if offline else "0")
    start = len(hub.requests)
    argv = [str(tiny_model_dir), str(adapter_dir), MODEL_REPO, ADAPTER_REPO, DATASET_REPO, "0" if offline else "1"]
    proc = subprocess.run([sys.executable, "-c", LOADS, *argv], env=env, cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1]), hub.requests[start:]


def files_of(root: Path) -> dict[str, bytes]:
    return {path.relative_to(root).as_posix(): path.read_bytes() for path in root.rglob("*") if path.is_file()}


@pytest.fixture(scope="module")
def hf_home(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("hf_home")


@pytest.fixture(scope="module")
def online_run(hub, upload, hf_home, tiny_model_dir, adapter_dir):
    return run_loads(hub, hf_home, False, tiny_model_dir, adapter_dir)


@pytest.fixture(scope="module")
def offline_run(hub, online_run, hf_home, tiny_model_dir, adapter_dir):
    return run_loads(hub, hf_home, True, tiny_model_dir, adapter_dir)


@pytest.mark.slow
def test_model_tokenizer_and_adapter_by_name_match_the_local_folders(online_run):
    result, requests = online_run
    assert result["same_ids"] and result["same_logits"]
    assert result["same_adapter_logits"] and result["adapter_changes_logits"]
    downloads = {r["path"].rsplit("/", 1)[-1] for r in requests if r["method"] == "GET" and r["status"] == 200}
    assert {"model.safetensors", "tokenizer.json", "adapter_model.safetensors", "adapter_config.json"} <= downloads


@pytest.mark.slow
def test_missing_optional_file_is_404_entry_not_found(hub, online, online_run, tmp_path):
    failed = {(r["method"], r["path"].rsplit("/", 1)[-1], r["status"], r["error"])
              for r in online_run[1] if r["status"] >= 400}
    assert ("HEAD", "tokenizer.model", 404, "EntryNotFound") in failed  # transformers' optional-file probe
    assert {(status, error) for _, _, status, error in failed} == {(404, "EntryNotFound")}

    with pytest.raises(RemoteEntryNotFoundError) as missing:
        hf_hub_download(MODEL_REPO, "tokenizer.model", endpoint=hub.url, cache_dir=tmp_path)
    assert missing.value.response.status_code == 404
    sha = HfApi(endpoint=hub.url).model_info(MODEL_REPO).sha  # the 404 carries X-Repo-Commit, so the miss is cached
    assert (tmp_path / "models--EleutherAI--gpt-neo-125M" / ".no_exist" / sha / "tokenizer.model").exists()
    api = HfApi(endpoint=hub.url)  # what peft's load_peft_weights asks
    assert api.file_exists(MODEL_REPO, "config.json") and not api.file_exists(MODEL_REPO, "adapter_config.json")


def test_resolve_metadata_and_range_requests(hub, online, tiny_model_dir):
    data = (tiny_model_dir / "model.safetensors").read_bytes()
    url = hf_hub_url(MODEL_REPO, "model.safetensors", endpoint=hub.url)
    meta = get_hf_file_metadata(url)
    assert (meta.etag, meta.size) == (hashlib.sha256(data).hexdigest(), len(data))
    assert meta.commit_hash == HfApi(endpoint=hub.url).model_info(MODEL_REPO).sha
    size = len(data)
    for header, start, end in [("bytes=10-99", 10, 99), ("bytes=-16", size - 16, size - 1), (f"bytes={size - 5}-",
                                                                                              size - 5, size - 1)]:
        with urllib.request.urlopen(urllib.request.Request(url, headers={"Range": header})) as response:
            assert (response.status, response.headers["Content-Range"]) == (206, f"bytes {start}-{end}/{size}")
            assert response.read() == data[start:end + 1]
    with pytest.raises(urllib.error.HTTPError) as beyond:
        urllib.request.urlopen(urllib.request.Request(url, headers={"Range": f"bytes={size}-"}))
    assert beyond.value.code == 416


@pytest.mark.slow
def test_load_dataset_by_name_online_then_offline_from_the_cache(online_run, offline_run, fixture_rows):
    assert online_run[0]["test_rows"] == fixture_rows["test"]
    result, requests = offline_run
    assert requests == []  # HF_HUB_OFFLINE=1 in a fresh process on the same HF_HOME: nothing reaches the server
    assert result["test_rows"] == fixture_rows["test"]
    assert result["same_ids"] and result["same_logits"]


def test_create_repo_upload_folder_and_snapshot_download_round_trip(hub, upload, adapter_dir, online, tmp_path):
    api = HfApi(endpoint=hub.url, token=TOKEN)
    assert (upload.url.repo_id, api.create_repo(ADAPTER_REPO, exist_ok=True)) == (ADAPTER_REPO, upload.url)
    with pytest.raises(HfHubHTTPError) as conflict:
        api.create_repo(ADAPTER_REPO)
    assert conflict.value.response.status_code == 409
    assert upload.commit.oid == api.model_info(ADAPTER_REPO).sha != upload.sha_before

    folder = Path(api.snapshot_download(ADAPTER_REPO, cache_dir=tmp_path / "fresh"))
    assert files_of(folder) == files_of(adapter_dir)
    assert {"README.md", "adapter_config.json", "adapter_model.safetensors"} <= set(files_of(folder))

    posts = {r["path"]: r["authorization"] for r in upload.requests if r["method"] == "POST"}
    for path in ("/api/repos/create", f"/api/models/{ADAPTER_REPO}/preupload/main",
                 f"/api/models/{ADAPTER_REPO}/commit/main", "/api/validate-yaml"):
        assert posts[path] == f"Bearer {TOKEN}"
    assert api.whoami()["name"] == hub.user

    deletion = api.delete_file("README.md", repo_id=ADAPTER_REPO)  # an NDJSON deletedFile operation
    assert deletion.oid != upload.commit.oid and not api.file_exists(ADAPTER_REPO, "README.md")


def test_unknown_repo_or_revision_raises_the_hub_errors(hub, online, tmp_path):
    api = HfApi(endpoint=hub.url)
    with pytest.raises(RepositoryNotFoundError):
        api.model_info("nobody/missing")
    with pytest.raises(RepositoryNotFoundError):
        api.dataset_info("nobody/missing")
    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download("nobody/missing", "config.json", endpoint=hub.url, cache_dir=tmp_path)
    with pytest.raises(RevisionNotFoundError):
        api.model_info(MODEL_REPO, revision="0" * 40)
