"""What every method shares: honest parameter counts, the model's blocks, saving and loading what was trained.

Example (the tests' tiny random GPT-Neo, whose LM head is tied to the input embeddings):
    >>> from common.models.tiny import build_tiny_model, build_tokenizer
    >>> model = build_tiny_model(len(build_tokenizer()))
    >>> count_parameters(model)          # the tied head and embeddings counted once, and trainable
    ParameterCounts(trainable=198016, total=198016, tied_lm_head=True)
    >>> _ = model.requires_grad_(False)
    >>> _ = transformer_blocks(model)[-1].requires_grad_(True)     # the last block alone
    >>> count_parameters(model), f"{count_parameters(model).trainable_percent:.1f}%"
    (ParameterCounts(trainable=49792, total=198016, tied_lm_head=False), '25.1%')
"""

from __future__ import annotations

import json
import operator
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from peft import PeftModel
from safetensors.torch import load_file, save_file
from torch import nn

from ..core.cli import ConfigError

TRAINED_PARAMS_FILE = "trained_params.safetensors"
TRAINED_META_FILE = "trained_params.json"
BLOCK_PATHS = ("transformer.h", "model.layers", "gpt_neox.layers", "transformer.blocks", "model.decoder.layers")
FINAL_NORM_PATHS = ("transformer.ln_f", "model.norm", "gpt_neox.final_layer_norm", "transformer.norm_f",
                    "model.decoder.final_layer_norm")


@dataclass(frozen=True)
class ParameterCounts:
    """Trainable and total parameters, each shared (tied) tensor counted once."""

    trainable: int
    total: int
    tied_lm_head: bool

    @property
    def trainable_percent(self) -> float:
        return 100.0 * self.trainable / self.total if self.total else 0.0

    def to_dict(self) -> dict:
        return {**asdict(self), "trainable_percent": self.trainable_percent}


def lm_head_is_tied(model: nn.Module) -> bool:
    """True when the output projection shares its weight tensor with the input embeddings."""
    output, embeddings = model.get_output_embeddings(), model.get_input_embeddings()
    if output is None or output.weight.is_meta:  # meta tensors have no storage to compare
        return output is not None and output.weight is embeddings.weight
    return output.weight.data_ptr() == embeddings.weight.data_ptr()


def count_parameters(model: nn.Module) -> ParameterCounts:
    """Count unique parameter tensors (by storage), so a tied LM head is counted once.

    `tied_lm_head` is True only when the tied head/embedding tensor is itself trainable. A model built on the
    meta device (shapes without storage, every `data_ptr()` 0) is counted by parameter object instead.
    """
    seen, trainable, total = set(), 0, 0
    for parameter in model.parameters():
        key = id(parameter) if parameter.is_meta else parameter.data_ptr()
        if key in seen:
            continue
        seen.add(key)
        total += parameter.numel()
        trainable += parameter.numel() if parameter.requires_grad else 0
    embeddings = model.get_input_embeddings()
    tied_trained = lm_head_is_tied(model) and embeddings.weight.requires_grad
    return ParameterCounts(trainable=trainable, total=total, tied_lm_head=tied_trained)


def transformer_blocks(model: nn.Module) -> nn.ModuleList:
    """The stack of transformer blocks (GPT-Neo `transformer.h`, Llama `model.layers`, ...)."""
    return _find_module(model, BLOCK_PATHS, "transformer blocks")


def final_norm(model: nn.Module) -> nn.Module:
    return _find_module(model, FINAL_NORM_PATHS, "final layer norm")


def _find_module(model: nn.Module, paths: tuple[str, ...], what: str) -> nn.Module:
    for path in paths:
        try:
            return operator.attrgetter(path)(model)
        except AttributeError:
            continue
    raise ValueError(f"Cannot find the {what} of {type(model).__name__} (looked for {', '.join(paths)})")


def is_prompt_learning(model: nn.Module) -> bool:
    """True for a PEFT model whose adapter is a learned prompt: soft prompt, P-tuning or prefix tuning."""
    return isinstance(model, PeftModel) and model.active_peft_config.is_prompt_learning


def num_virtual_tokens(model: nn.Module) -> int:
    """Virtual tokens a soft prompt (prompt tuning, P-tuning) prepends to every input sequence; 0 for other
    models, prefix tuning included: its prefix goes into every layer's keys and values, not into the input, so
    the model's logits (and the loss's label positions) keep the text's length."""
    if is_prompt_learning(model) and model.active_peft_config.peft_type.value != "PREFIX_TUNING":
        return model.active_peft_config.num_virtual_tokens
    return 0


def trains_prompt_encoder(model: nn.Module) -> bool:
    """True for a prompt-learning model that trains a network whose output its adapter saves (P-tuning, prefix
    tuning with --prefix_projection): resuming needs the network itself, which the adapter file lacks."""
    if not is_prompt_learning(model) or model.active_peft_config.inference_mode:
        return False
    config = model.active_peft_config
    return config.peft_type.value == "P_TUNING" or (config.peft_type.value == "PREFIX_TUNING"
                                                     and config.prefix_projection)


def trained_state_dict(model: nn.Module, state_dict: dict | None = None) -> dict[str, torch.Tensor]:
    """The trainable tensors by (first) name, each shared tensor once, contiguous for safetensors.

    `state_dict`: full tensors gathered from a sharded (FSDP) model, read instead of the parameters.
    """
    source = state_dict if state_dict is not None else dict(model.named_parameters())
    return {name: source[name].detach().contiguous() for name, p in model.named_parameters() if p.requires_grad}


def save_trained(model: nn.Module, out_dir: str | Path, method_name: str, base_model: str,
                 state_dict: dict | None = None) -> Path:
    """Save only what was trained: a PEFT adapter folder, or the trained tensors with a small JSON.

    `state_dict`: full tensors gathered from a sharded (FSDP) model; None for an ordinary one.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if isinstance(model, PeftModel):
        if state_dict is not None and model.active_peft_config.is_prompt_learning:
            raise ConfigError("soft prompt and prefix tuning under FSDP are not supported (PEFT cannot save a sharded "
                              "prompt); use DDP (configs/accelerate/multi_gpu.yaml): the prompt is tiny")
        model.save_pretrained(out_dir, safe_serialization=True, state_dict=state_dict)
        return out_dir
    tensors = trained_state_dict(model, state_dict)
    save_file(tensors, str(out_dir / TRAINED_PARAMS_FILE), metadata={"format": "pt"})
    meta = {"method": method_name, "base_model_name_or_path": base_model, "parameters": sorted(tensors)}
    (out_dir / TRAINED_META_FILE).write_text(json.dumps(meta, indent=2), encoding="utf-8")
    return out_dir


def load_trained(base_model: nn.Module, path: str | Path) -> nn.Module:
    """Put a saved adapter or trained-tensor folder back onto a freshly loaded base model."""
    path = Path(path)
    if (path / "adapter_config.json").is_file():
        return PeftModel.from_pretrained(base_model, str(path))
    if (path / TRAINED_PARAMS_FILE).is_file():
        tensors = load_file(str(path / TRAINED_PARAMS_FILE))
        missing = set(tensors) - {name for name, _ in base_model.named_parameters()}
        if missing:
            raise ValueError(f"{path}: tensors {sorted(missing)[:5]} do not exist in {type(base_model).__name__}; "
                             "was it trained on another base model?")
        base_model.load_state_dict(tensors, strict=False)
        return base_model
    raise FileNotFoundError(f"{path}: neither a PEFT adapter (adapter_config.json) nor trained tensors "
                            f"({TRAINED_PARAMS_FILE})")


def unwrap_peft(model):
    """The PeftModel or plain model under any DDP/compile wrapper."""
    while hasattr(model, "module") and not isinstance(model, PeftModel):
        model = model.module
    return model
