"""Adaptation methods: the registry (`registry.py`), what they share (`base.py`) and one module each.

Importing this package registers the built-in methods: lora (with its variants dora and rslora),
soft_prompt, finetune (with full_finetune), ia3 and prefix_tuning (with prefix_tuning_mlp). A new method is
one module like `lora.py` (argument dataclass, builder, `register(Method(...))`), imported below, and its
`train_<name>.py` script; see docs/architecture.md.

Example (the tests' tiny random GPT-Neo; `model_args`, the parsed ModelArguments, only soft prompts read):
    >>> from common.models.tiny import build_tiny_model, build_tokenizer
    >>> model = build_method("lora", build_tiny_model(len(build_tokenizer())), LoraArguments(r=4), model_args=None)
    >>> count_parameters(model)          # the rank-4 adapters on every linear layer but the LM head
    ParameterCounts(trainable=9216, total=207232, tied_lm_head=False)
"""

from .base import (ParameterCounts, count_parameters, final_norm, is_prompt_learning, lm_head_is_tied, load_trained,
                   num_virtual_tokens, save_trained, trained_state_dict, trains_prompt_encoder,
                   transformer_blocks, unwrap_peft)
from .registry import (REGISTRY, Method, Variant, get_method, method_for, method_names, method_title,
                       recorded_method_name, recorded_names, register, variant_settings)
# Each module registers itself on import; this order is the order of tables, presets and tests.
from . import lora  # noqa: E402,F401,I001
from . import soft_prompt  # noqa: E402,F401,I001
from . import finetune  # noqa: E402,F401,I001
from . import ia3  # noqa: E402,F401,I001
from . import prefix_tuning  # noqa: E402,F401,I001
from .finetune import FinetuneArguments
from .ia3 import IA3Arguments
from .lora import LoraArguments
from .prefix_tuning import PrefixTuningArguments, prefix_key_values
from .soft_prompt import SoftPromptArguments


def build_method(name: str, model, method_args, model_args):
    """Wrap or freeze `model` for the registered method `name`; returns the model to train."""
    return get_method(name).build(model, method_args, model_args)


__all__ = ["REGISTRY", "FinetuneArguments", "IA3Arguments", "LoraArguments", "Method", "ParameterCounts",
           "PrefixTuningArguments", "SoftPromptArguments", "Variant", "build_method", "count_parameters", "final_norm",
           "get_method", "is_prompt_learning", "lm_head_is_tied", "load_trained", "method_for", "method_names",
           "method_title", "num_virtual_tokens", "prefix_key_values", "recorded_method_name", "recorded_names",
           "register", "save_trained", "trained_state_dict", "trains_prompt_encoder", "transformer_blocks",
           "unwrap_peft", "variant_settings"]
