"""Adaptation methods: the registry (`registry.py`), what they share (`base.py`) and one module each.

Importing this package registers the built-in methods: lora, soft_prompt, finetune. A new method is
one module like `lora.py` (argument dataclass, builder, `register(Method(...))`), imported below, and
its `train_<name>.py` script; see docs/architecture.md.

Example (the tests' tiny random GPT-Neo; `model_args`, the parsed ModelArguments, only soft prompts read):
    >>> from common.models.tiny import build_tiny_model, build_tokenizer
    >>> model = build_method("lora", build_tiny_model(len(build_tokenizer())), LoraArguments(r=4), model_args=None)
    >>> count_parameters(model)          # the rank-4 adapters on every linear layer but the LM head
    ParameterCounts(trainable=9216, total=207232, tied_lm_head=False)
"""

from .base import (ParameterCounts, count_parameters, final_norm, lm_head_is_tied, load_trained, num_virtual_tokens,
                   save_trained, trained_state_dict, transformer_blocks)
from .registry import REGISTRY, Method, get_method, method_names, register
# Each module registers itself on import; this order is the order of tables, presets and tests.
from . import lora  # noqa: E402,F401,I001
from . import soft_prompt  # noqa: E402,F401,I001
from . import finetune  # noqa: E402,F401,I001
from .finetune import FinetuneArguments
from .lora import LoraArguments
from .soft_prompt import SoftPromptArguments


def build_method(name: str, model, method_args, model_args):
    """Wrap or freeze `model` for the registered method `name`; returns the model to train."""
    return get_method(name).build(model, method_args, model_args)


__all__ = ["REGISTRY", "FinetuneArguments", "LoraArguments", "Method", "ParameterCounts", "SoftPromptArguments",
           "build_method", "count_parameters", "final_norm", "get_method", "lm_head_is_tied", "load_trained",
           "method_names", "num_virtual_tokens", "register", "save_trained", "trained_state_dict",
           "transformer_blocks"]
