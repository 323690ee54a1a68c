"""Everything that talks to the Hugging Face Hub: whether it can be reached, and what is uploaded.

Reachability goes through `huggingface_hub` itself, so `HF_ENDPOINT` (a mirror), `HTTPS_PROXY` and
`HF_HUB_OFFLINE` mean what they mean to `from_pretrained` and `load_dataset`. Callers try the local
cache first and ask `require_hub` only when the cache cannot serve, which answers within seconds
instead of the client's own retries (about 25 s per file).

The upload folder is written locally first (`OUTPUT_DIR/hub_upload/`), so it can be inspected before,
or without, an upload; `push_folder` then sends exactly that folder. Nothing in it names a local
absolute path or the machine, and no token is ever written (see `public_payload`).

Example:
    >>> folder = prepare_hub_folder(Path("runs/lora"), run_payload, "me/gpt-neo-lora-cnndm")
    >>> sorted(p.name for p in folder.iterdir())
    ['README.md', 'adapter_config.json', 'adapter_model.safetensors', 'run.json']
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import threading
from pathlib import Path
from typing import Any

from .cli import UserError
from .methods import get_method
from .files import atomic_write_text

HUB_FOLDER = "hub_upload"
LOCAL_PATH_HINT = ("Pass local data with --train_file/--validation_file/--test_file (.jsonl, .json, .csv, .parquet) "
                   "and a local model folder with --model_name_or_path (e.g. `python -m common.tiny_model DIR`).")
OFFLINE_VARIABLES = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE")
REACH_TIMEOUT_S = 10.0


class HubUnreachableError(UserError, RuntimeError):
    """The Hugging Face Hub is needed but cannot be reached (offline mode or no network)."""


def hub_endpoint() -> str:
    """The endpoint huggingface_hub talks to (HF_ENDPOINT, read when it was imported)."""
    from huggingface_hub import constants

    return constants.ENDPOINT


def hub_is_offline() -> bool:
    """True when huggingface_hub runs offline, or an offline variable is set now."""
    from huggingface_hub import constants

    now = any(os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"} for name in OFFLINE_VARIABLES)
    return now or constants.HF_HUB_OFFLINE


@functools.lru_cache(maxsize=None)
def _endpoint_answers(endpoint: str, timeout_s: float) -> bool:
    """One HEAD request through huggingface_hub's own HTTP client (its proxies and headers); any
    HTTP answer counts. Name resolution can ignore timeouts, so the request runs in a daemon thread."""
    from huggingface_hub.utils import get_session

    answered = threading.Event()

    def probe():
        try:
            get_session().head(endpoint, timeout=timeout_s)
            answered.set()
        except Exception:  # noqa: BLE001 - any failure to get an HTTP answer means unreachable
            pass

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout_s)
    return answered.is_set()


def hub_reachable(timeout_s: float = REACH_TIMEOUT_S) -> bool:
    """False in offline mode or when the endpoint gives no HTTP answer within `timeout_s` (asked once per process)."""
    return not hub_is_offline() and _endpoint_answers(hub_endpoint(), timeout_s)


def require_hub(what: str, timeout_s: float = REACH_TIMEOUT_S) -> None:
    """Raise a HubUnreachableError naming the local-path flags unless `what` can be fetched from the Hub."""
    if hub_is_offline():
        raise HubUnreachableError(f"{what} needs the Hugging Face Hub, but offline mode is set (HF_HUB_OFFLINE=1). "
                                  f"{LOCAL_PATH_HINT}")
    if not hub_reachable(timeout_s):
        raise HubUnreachableError(f"{what} needs the Hugging Face Hub, but {hub_endpoint()} gave no answer within "
                                  f"{timeout_s:.0f} s (HF_ENDPOINT sets a mirror, HTTPS_PROXY a proxy). {LOCAL_PATH_HINT}")


def cache_then_hub(fetch, what: str):
    """`fetch(local_files_only=True)` (the local cache), else `fetch(local_files_only=False)` once the Hub is
    known to answer; `what` names the thing in the error when it cannot (see `require_hub`).

    Example:
        >>> cache_then_hub(lambda local_files_only: snapshot_download("me/run", local_files_only=local_files_only),
        ...                "Trained weights 'me/run'")
    """
    try:
        return fetch(local_files_only=True)
    except (OSError, ValueError):
        pass
    require_hub(f"{what} (not in the local cache)")
    return fetch(local_files_only=False)


def is_hub_id(name: str) -> bool:
    """True for a Hub repo id ('owner/name' or 'name'), False for a local path.

    Example:
        >>> is_hub_id("EleutherAI/gpt-neo-125M"), is_hub_id("/tmp/tiny"), is_hub_id("runs/tiny/model")
        (True, False, False)
    """
    return not os.path.isabs(name) and not Path(name).exists() and name.count("/") <= 1 and not name.startswith(".")


def public_value(value: Any) -> Any:
    """`value` with every absolute local path replaced by its last component (recursively).

    Example:
        >>> public_value({"model": "/home/me/tiny", "data": ["a.jsonl", "/tmp/t.jsonl"], "n": 3})
        {'model': 'tiny', 'data': ['a.jsonl', 't.jsonl'], 'n': 3}
    """
    if isinstance(value, dict):
        return {key: public_value(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [public_value(item) for item in value]
    if isinstance(value, str) and os.path.isabs(value):
        return Path(value).name
    return value


def public_payload(payload: dict) -> dict:
    """run.json as uploaded: no absolute local paths, no platform string, no token."""
    public = public_value(payload)
    public["versions"] = {k: v for k, v in public.get("versions", {}).items() if k != "platform"}
    return public


def load_snippet(method: str, base_model: str, repo_or_path: str) -> str:
    """Python that puts the trained weights back on the base model (runs as is, given the packages)."""
    head = ("from transformers import AutoModelForCausalLM, AutoTokenizer\n"
            f"base = AutoModelForCausalLM.from_pretrained({base_model!r})\n"
            f"tokenizer = AutoTokenizer.from_pretrained({base_model!r})\n")
    if not get_method(method).peft_adapter:
        return head + ("import os\n"
                       "from huggingface_hub import snapshot_download\n"
                       "from safetensors.torch import load_file\n"
                       f"folder = {repo_or_path!r}\n"
                       "folder = folder if os.path.isdir(folder) else snapshot_download(folder)\n"
                       "base.load_state_dict(load_file(os.path.join(folder, 'trained_params.safetensors')), "
                       "strict=False)\n"
                       "model = base.eval()\n")
    return head + ("from peft import PeftModel\n"
                   f"model = PeftModel.from_pretrained(base, {repo_or_path!r}).eval()\n")


def model_card(payload: dict, repo_id: str):
    """A `huggingface_hub.ModelCard`: base model, method, parameters, data, test ROUGE and a load snippet.

    `payload` is run.json as uploaded (`public_payload`). A base model given as a local folder is named
    by its folder name in the text and left out of the card's `base_model` metadata (not a Hub id).
    """
    from huggingface_hub import ModelCard, ModelCardData

    method, base = payload["method"], payload["base_model"]
    entry = get_method(method)
    rouge = payload.get("test_rouge", {})
    data = payload["config"]["data"]
    source = (data["dataset_name"] + (f" ({data['dataset_config']})" if data.get("dataset_config") else "")
              if not data.get("train_file") else f"local files ({Path(data['train_file']).name}, ...)")
    used = ", ".join(f"{split} {info['used']:,}" for split, info in payload.get("examples", {}).items())
    tied = (" This includes the LM head, which is tied to the input embeddings, so the whole embedding "
            "matrix was trained." if payload.get("tied_lm_head") else "")
    generation_note = ("\nGenerate with `common.generation.generate_summaries` from the toolkit: it feeds the "
                       "learned virtual tokens as `inputs_embeds`, which is right for left-padded batches.\n"
                       if method == "soft_prompt" else "")
    card_data = ModelCardData(base_model=base if is_hub_id(base) else None,
                              library_name="peft" if entry.peft_adapter else "transformers",
                              tags=["summarization", method], pipeline_tag="text-generation")
    scores = ", ".join(f"{label} {rouge.get(key, float('nan')):.2f}" for key, label in
                       (("rouge1", "ROUGE-1"), ("rouge2", "ROUGE-2"), ("rougeL", "ROUGE-L"), ("rougeLsum", "ROUGE-Lsum")))
    content = f"""---
{card_data.to_yaml()}
---

# {repo_id}

{entry.title[0].upper() + entry.title[1:]} of `{base}` for abstractive summarization.

- Trainable parameters: {payload['trainable']:,} of {payload['total']:,} ({payload['trainable_percent']:.4f}%).{tied}
- Data: {source}; examples used: {used}.
- Test ROUGE (F1 x 100): {scores}.
- Prompt template: `{json.dumps(data['prompt_template'])[1:-1]}` (chat template: {data['use_chat_template']}).
- Training time: {payload.get('train_time_s') or 0:.0f} s in optimizer steps, {payload.get('eval_time_s') or 0:.0f} s in evaluation during training; summaries generated in {payload.get('generation_precision', 'fp32')}. The full configuration is in `run.json`.

## Load

```python
{load_snippet(method, base, repo_id)}```
{generation_note}"""
    return ModelCard(content)


def prepare_hub_folder(out_dir: Path, payload: dict, repo_id: str, adapter_dir: str = "adapter") -> Path:
    """Copy the saved weights into OUTPUT_DIR/hub_upload/ with the public run.json and the model card."""
    folder = Path(out_dir) / HUB_FOLDER
    if folder.exists():
        shutil.rmtree(folder)
    shutil.copytree(Path(out_dir) / adapter_dir, folder, ignore=shutil.ignore_patterns("README.md"))
    public = public_payload(payload)
    atomic_write_text(folder / "run.json", json.dumps(public, indent=2, default=str) + "\n")
    atomic_write_text(folder / "README.md", str(model_card(public, repo_id)))
    return folder


def push_folder(folder: Path, repo_id: str, token: str | None = None, private: bool | None = None) -> str:
    """Create the model repo if needed and upload `folder`; returns the commit URL.

    `token` None lets huggingface_hub find one (HF_TOKEN, or the file `hf auth login` writes).
    """
    require_hub(f"Uploading to '{repo_id}'")
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    api.create_repo(repo_id, exist_ok=True, private=private, repo_type="model")
    commit = api.upload_folder(folder_path=str(folder), repo_id=repo_id, repo_type="model",
                               commit_message="Upload from the PEFT summarization toolkit")
    return str(getattr(commit, "commit_url", commit))
