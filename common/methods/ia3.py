"""IA3: learned vectors that rescale a few activations (PEFT IA3Config); the base model stays frozen.

(IA)^3 (Liu et al. 2022) multiplies the outputs of the chosen attention projections, and the input of the
chosen feed-forward projection, by a learned vector each, initialised to ones. That is far fewer parameters
than LoRA (on GPT-Neo-125M 55,296: 12 layers x (768 + 768 + 3,072)), and the vectors start where the model
is and move slowly, so IA3 needs a far larger learning rate than LoRA (default 3e-3, the rate of the T-Few
recipe that introduced it; PEFT's examples use 3e-3 to 1e-2).

Targets default to PEFT's own for the model type (`TRANSFORMERS_MODELS_TO_IA3_TARGET_MODULES_MAPPING`):
GPT-Neo `q_proj`, `v_proj` and the MLP's `c_proj` (feed-forward); Llama `k_proj`, `v_proj` and `down_proj`
(feed-forward).

Example (the tests' tiny random GPT-Neo: 2 layers of hidden size 64, MLP width 256):
    >>> from common.methods import count_parameters, get_method
    >>> from common.models.tiny import build_tiny_model, build_tokenizer
    >>> model = get_method("ia3").build(build_tiny_model(len(build_tokenizer())), IA3Arguments(), None)
    >>> count_parameters(model).trainable        # 2 x (64 + 64 + 256)
    768
    >>> ia3_modules(model.config.model_type, IA3Arguments(ia3_target_modules=["v_proj", "c_proj"]))
    (['v_proj', 'c_proj'], ['c_proj'])
"""

from __future__ import annotations

from dataclasses import dataclass, field

from peft import IA3Config, TaskType, get_peft_model
from peft.utils.constants import (TRANSFORMERS_MODELS_TO_IA3_FEEDFORWARD_MODULES_MAPPING as FEEDFORWARD_DEFAULTS,
                                  TRANSFORMERS_MODELS_TO_IA3_TARGET_MODULES_MAPPING as TARGET_DEFAULTS)

from ..core.cli import ConfigError, require
from .registry import Method, register


@dataclass(frozen=True)
class IA3Arguments:
    """IA3 rescaling vectors (PEFT IA3Config)."""

    ia3_target_modules: list[str] | None = field(default=None, metadata={"help": "Modules whose activations are "
                                                 "rescaled by a learned vector. Default: PEFT's for the model type "
                                                 "(GPT-Neo: q_proj v_proj c_proj; Llama: k_proj v_proj down_proj)."})
    ia3_feedforward_modules: list[str] | None = field(default=None, metadata={"help": "Those targets that are "
                                                      "feed-forward layers: their input is rescaled instead of their "
                                                      "output. Default: PEFT's for the model type (GPT-Neo c_proj, "
                                                      "Llama down_proj) among the targets."})

    def __post_init__(self):
        targets, feedforward = self.ia3_target_modules, self.ia3_feedforward_modules
        require(targets is None or len(targets) > 0, "ia3_target_modules", targets, "name at least one module")
        if feedforward is not None:
            require(targets is not None, "ia3_feedforward_modules", feedforward,
                    "needs --ia3_target_modules too (the feed-forward modules are a subset of the targets)")
            require(set(feedforward) <= set(targets), "ia3_feedforward_modules", feedforward,
                    f"must be among --ia3_target_modules {targets}")


def ia3_modules(model_type: str, args: IA3Arguments) -> tuple[list[str], list[str]]:
    """(target modules, feed-forward modules) for a model of `model_type`: the flags, else PEFT's defaults."""
    targets = args.ia3_target_modules
    if targets is None:
        if model_type not in TARGET_DEFAULTS:
            raise ConfigError(f"IA3 has no default modules for model type '{model_type}': name them with "
                              "--ia3_target_modules (and --ia3_feedforward_modules)")
        targets = TARGET_DEFAULTS[model_type]
    feedforward = args.ia3_feedforward_modules
    if feedforward is None:
        feedforward = [name for name in FEEDFORWARD_DEFAULTS.get(model_type, []) if name in targets]
    return list(targets), list(feedforward)


def build_ia3(model, args: IA3Arguments, model_args=None):
    targets, feedforward = ia3_modules(model.config.model_type, args)
    config = IA3Config(task_type=TaskType.CAUSAL_LM, target_modules=targets, feedforward_modules=feedforward)
    return get_peft_model(model, config)


register(Method(name="ia3", title="IA3", arguments=IA3Arguments, build=build_ia3, script="train_ia3.py",
                defaults={"num_train_epochs": 6, "learning_rate": 3e-3, "output_dir": "runs/ia3"}))
