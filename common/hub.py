"""What goes to the Hugging Face Hub: the saved adapter (or trained tensors), run.json and a model card.

The upload folder is written locally first (`OUTPUT_DIR/hub_upload/`), so it can be inspected
before, or without, an upload; `push_folder` then sends exactly that folder.

Example:
    >>> folder = prepare_hub_folder(Path("runs/lora"), run_payload, "me/gpt-neo-lora-cnndm")
    >>> sorted(p.name for p in folder.iterdir())
    ['README.md', 'adapter_config.json', 'adapter_model.safetensors', 'run.json']
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from .data import ensure_hub_reachable
from .results import atomic_write_text

HUB_FOLDER = "hub_upload"
METHOD_TITLES = {"lora": "LoRA", "soft_prompt": "soft prompt tuning", "finetune": "last-layer fine-tuning"}


def load_snippet(method: str, base_model: str, repo_or_path: str) -> str:
    """Python that puts the trained weights back on the base model (runs as is, given the packages)."""
    head = ("from transformers import AutoModelForCausalLM, AutoTokenizer\n"
            f"base = AutoModelForCausalLM.from_pretrained({base_model!r})\n"
            f"tokenizer = AutoTokenizer.from_pretrained({base_model!r})\n")
    if method == "finetune":
        return head + ("import json, os\n"
                       "from huggingface_hub import snapshot_download\n"
                       "from safetensors.torch import load_file\n"
                       f"folder = {repo_or_path!r}\n"
                       "folder = folder if os.path.isdir(folder) else snapshot_download(folder)\n"
                       "base.load_state_dict(load_file(os.path.join(folder, 'trained_params.safetensors')), "
                       "strict=False)\n"
                       "model = base.eval()\n")
    return head + ("from peft import PeftModel\n"
                   f"model = PeftModel.from_pretrained(base, {repo_or_path!r}).eval()\n")


def model_card(payload: dict, repo_id: str) -> str:
    """A model card stating base model, method, parameters, data, test ROUGE and a load snippet."""
    method, base = payload["method"], payload["base_model"]
    rouge = payload.get("test_rouge", {})
    data = payload["config"]["data"]
    source = (data["dataset_name"] + (f" ({data['dataset_config']})" if data.get("dataset_config") else "")
              if not data.get("train_file") else f"local files ({Path(data['train_file']).name}, ...)")
    examples = payload.get("examples", {})
    used = ", ".join(f"{split} {info['used']:,}" for split, info in examples.items())
    tied = (" This includes the LM head, which is tied to the input embeddings, so the whole embedding "
            "matrix was trained." if payload.get("tied_lm_head") else "")
    generation_note = ("\nGenerate with `common.generation.generate_summaries` from the toolkit: it feeds the "
                       "learned virtual tokens as `inputs_embeds`, which is right for left-padded batches.\n"
                       if method == "soft_prompt" else "")
    front = {"base_model": base, "library_name": "peft" if method != "finetune" else "transformers",
             "tags": ["summarization", method], "pipeline_tag": "text-generation"}
    front_matter = "\n".join(f"{k}: {json.dumps(v)}" for k, v in front.items())
    return f"""---
{front_matter}
---

# {repo_id}

{METHOD_TITLES.get(method, method)} of `{base}` for abstractive summarization.

- Trainable parameters: {payload['trainable']:,} of {payload['total']:,} ({payload['trainable_percent']:.4f}%).{tied}
- Data: {source}; examples used: {used}.
- Test ROUGE (F1 x 100): ROUGE-1 {rouge.get('rouge1', float('nan')):.2f}, ROUGE-2 {rouge.get('rouge2', float('nan')):.2f}, ROUGE-L {rouge.get('rougeL', float('nan')):.2f}, ROUGE-Lsum {rouge.get('rougeLsum', float('nan')):.2f}.
- Prompt template: `{json.dumps(data['prompt_template'])[1:-1]}` (chat template: {data['use_chat_template']}).
- Train wall time: {payload.get('train_wall_time_s', 0):.0f} s. The full configuration is in `run.json`.

## Load

```python
{load_snippet(method, base, repo_id)}```
{generation_note}"""


def prepare_hub_folder(out_dir: Path, payload: dict, repo_id: str, adapter_dir: str = "adapter") -> Path:
    """Copy the saved weights and run.json into OUTPUT_DIR/hub_upload/ and write the model card there."""
    folder = Path(out_dir) / HUB_FOLDER
    if folder.exists():
        shutil.rmtree(folder)
    shutil.copytree(Path(out_dir) / adapter_dir, folder, ignore=shutil.ignore_patterns("README.md"))
    atomic_write_text(folder / "run.json", json.dumps(payload, indent=2, default=str) + "\n")
    atomic_write_text(folder / "README.md", model_card(payload, repo_id))
    return folder


def push_folder(folder: Path, repo_id: str, token: str | None = None, private: bool | None = None) -> str:
    """Create the model repo if needed and upload `folder`; returns the commit URL."""
    ensure_hub_reachable(f"Uploading to '{repo_id}'")
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    api.create_repo(repo_id, exist_ok=True, private=private, repo_type="model")
    commit = api.upload_folder(folder_path=str(folder), repo_id=repo_id, repo_type="model",
                               commit_message="Upload from the PEFT summarization toolkit")
    return str(getattr(commit, "commit_url", commit))
