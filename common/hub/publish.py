"""A finished run on the Hugging Face Hub: the upload folder, its model card and the push (downloads and whether
the Hub can be reached are `core.hub_access`'s).

The card's metadata names the base model and the dataset and carries the test ROUGE as `model-index` results
with the split and the decoding, so the Hub page shows the scores. The upload folder is written locally first (`OUTPUT_DIR/hub_upload/`), so it can be inspected before,
or without, an upload; `push_folder` then sends exactly that folder. Nothing in it names a local
absolute path or the machine, and no token is ever written (see `public_payload`).

Usage (not run as a doctest: it needs a finished run's folder and its run.json; tests/test_resume_export_hub.py
prepares and pushes real runs to the test Hub):

    folder = prepare_hub_folder(Path("runs/lora"), read_run_json(Path("runs/lora/run.json")), "me/gpt-neo-lora-cnndm")
    sorted(p.name for p in folder.iterdir())
    # ['README.md', 'adapter_config.json', 'adapter_model.safetensors', 'run.json']
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from ..core.atomic import atomic_write_text
from ..core.hub_access import HubUnreachableError, is_hub_id, require_hub
from ..runs.outputs import RUN_FILE, read_run_json
from ..methods import method_for, method_title

HUB_FOLDER = "hub_upload"


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
    if not method_for(method).peft_adapter:
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


GENERATION_NOTES = {  # methods whose PEFT `generate` is wrong on transformers 5.x, by registry name
    "soft_prompt": "\nGenerate with `common.generation.generate.generate_summaries` from the toolkit: it feeds the "
                   "learned virtual tokens as `inputs_embeds`, which is right for left-padded batches.\n",
    "prefix_tuning": "\nGenerate with `common.generation.generate.generate_summaries` from the toolkit: PEFT's own "
                     "`generate` drops the prefix on transformers 5.x (it passes it as `past_key_values`, which the "
                     "model ignores for the cache `generate` gives it); ours starts the KV cache with the prefix, "
                     "after each row's left padding.\n"}
ROUGE_LABELS = {"rouge1": "ROUGE-1", "rouge2": "ROUGE-2", "rougeL": "ROUGE-L", "rougeLsum": "ROUGE-Lsum"}
DECODING_FIELDS = ("num_beams", "max_new_tokens", "no_repeat_ngram_size")


def test_dataset(data: dict) -> tuple[str, str | None]:
    """(dataset, configuration) the test summaries came from: the Hub dataset's id, or the local test file's name.

    Example:
        >>> test_dataset({"dataset_name": "abisee/cnn_dailymail", "dataset_config": "3.0.0", "test_file": None})
        ('abisee/cnn_dailymail', '3.0.0')
    """
    if data.get("test_file"):
        return Path(data["test_file"]).name, None
    return data["dataset_name"], data.get("dataset_config")


def eval_results(payload: dict, dataset: tuple[str, str | None]) -> list:
    """The card's machine-readable results (`model-index`): test ROUGE-1/2/L/Lsum (F1 x 100) on `dataset`'s
    test split, each with the decoding that produced the summaries (beams, token limit, n-gram blocking,
    precision) and the number of test examples, so the Hub page shows the scores with how they were made."""
    from huggingface_hub import EvalResult

    generation = payload["config"]["generation"]
    decoding = {**{key: generation[key] for key in DECODING_FIELDS},
                "precision": payload.get("generation_precision", "fp32"),
                "test_examples": payload.get("examples", {}).get("test", {}).get("used")}
    name, config = dataset
    return [EvalResult(task_type="summarization", task_name="Summarization", dataset_type=name, dataset_name=name,
                       dataset_config=config, dataset_split="test", metric_type="rouge", metric_name=label,
                       metric_config=key, metric_value=round(payload["test_rouge"][key], 2), metric_args=decoding)
            for key, label in ROUGE_LABELS.items() if key in payload.get("test_rouge", {})]


def model_card(payload: dict, repo_id: str):
    """A `huggingface_hub.ModelCard`: base model, method, parameters, data, test ROUGE and a load snippet.

    `payload` is run.json as uploaded (`public_payload`). A base model given as a local folder is named
    by its folder name in the text and left out of the card's `base_model` metadata (not a Hub id).
    """
    from huggingface_hub import ModelCard, ModelCardData

    method, base = payload["method"], payload["base_model"]  # the recorded name: 'dora', 'full_finetune', ...
    entry, title = method_for(method), method_title(method)
    rouge = payload.get("test_rouge", {})
    data = payload["config"]["data"]
    source = (data["dataset_name"] + (f" ({data['dataset_config']})" if data.get("dataset_config") else "")
              if not data.get("train_file") else f"local files ({Path(data['train_file']).name}, ...)")
    used = ", ".join(f"{split} {info['used']:,}" for split, info in payload.get("examples", {}).items())
    tied = (" This includes the LM head, which is tied to the input embeddings, so the whole embedding "
            "matrix was trained." if payload.get("tied_lm_head") else "")
    generation_note = GENERATION_NOTES.get(entry.name, "")
    dataset = test_dataset(data)
    card_data = ModelCardData(base_model=base if is_hub_id(base) else None,
                              datasets=[dataset[0]] if is_hub_id(dataset[0]) else None, metrics=["rouge"],
                              library_name="peft" if entry.peft_adapter else "transformers",
                              tags=["summarization", method], pipeline_tag="text-generation",
                              model_name=repo_id, eval_results=eval_results(payload, dataset) or None)
    scores = ", ".join(f"{label} {rouge.get(key, float('nan')):.2f}" for key, label in ROUGE_LABELS.items())
    content = f"""---
{card_data.to_yaml()}
---

# {repo_id}

{title[0].upper() + title[1:]} of `{base}` for abstractive summarization.

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


def publish_run(out_dir: Path, repo_id: str, token: str | None = None, private: bool | None = None) -> str:
    """Prepare a finished run's upload folder from its own run.json and push it; returns the commit URL.

    The training scripts call it after a run with --push_to_hub; `python -m common.push` calls it again for a
    run whose push failed, without retraining or regenerating.
    """
    payload = read_run_json(Path(out_dir) / RUN_FILE)
    folder = prepare_hub_folder(Path(out_dir), payload, repo_id)
    print(f"Hub folder prepared at {folder.resolve()}", flush=True)
    try:
        return push_folder(folder, repo_id, token=token, private=private)
    except HubUnreachableError as error:
        raise HubUnreachableError(f"{error}\nEverything else is saved; push again later with: "
                                  f"python -m common.push {out_dir} --hub_model_id {repo_id}") from error


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
