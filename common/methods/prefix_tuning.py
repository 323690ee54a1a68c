"""Prefix tuning: learned keys and values that every attention layer sees before the text (PEFT
PrefixTuningConfig), trained directly or through a reparametrizing MLP (`--prefix_projection true`).

Prefix tuning (Li & Liang 2021) prepends `num_virtual_tokens` trained key and value vectors to the attention of
every layer; the text attends to them as to earlier tokens, and nothing else of the model changes. Trained
directly, the prefix is the parameters: on GPT-Neo-125M 20 tokens x 12 layers x 2 (key, value) x 768 = 368,640.
With `--prefix_projection true` (the paper's reparametrization, which steadies training) a small embedding
(num_virtual_tokens x hidden) goes through a two-layer MLP (hidden -> `--encoder_hidden_size` -> layers x 2 x
hidden) whose output is the prefix: far more trained parameters (14,780,160 on GPT-Neo-125M), recorded as the
variant `prefix_tuning_mlp`. The adapter saves only the projected prefix, so it loads and generates like one
trained directly; checkpoints also keep the MLP (`prompt_encoder.safetensors`, common/training/trainer.py) so a
run resumes where it stopped.

Like prompt tuning, it moves a few vectors from a random start, so it needs a far larger learning rate than
LoRA: 1e-2 by default (PEFT's prefix-tuning examples). The prefix lives in the KV cache, which transformers drops
in blocks run under activation checkpointing, so `--gradient_checkpointing` is refused. Generation puts the
prefix at the start of our KV cache (`prefix_key_values`; `generation.kv_cache.seed_prefix` places it after each
row's left padding).

Example (the tests' tiny random GPT-Neo: 2 layers of hidden size 64):
    >>> from common.methods import count_parameters, get_method
    >>> from common.models.tiny import build_tiny_model, build_tokenizer
    >>> model = get_method("prefix_tuning").build(build_tiny_model(len(build_tokenizer())),
    ...                                           PrefixTuningArguments(num_virtual_tokens=4), None)
    >>> count_parameters(model).trainable         # 4 x 2 layers x 2 x 64
    1024
    >>> [tuple(keys.shape) for keys, values in prefix_key_values(model, batch_size=3)]   # (batch, heads, 4, head_dim)
    [(3, 4, 4, 16), (3, 4, 4, 16)]
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from peft import PeftModel, PrefixTuningConfig, TaskType, get_peft_model

from ..core.cli import require, require_at_least
from .base import unwrap_peft
from .registry import Method, Variant, register


@dataclass(frozen=True)
class PrefixTuningArguments:
    """Prefix tuning (PEFT PrefixTuningConfig), trained directly or through an MLP (--prefix_projection)."""

    num_virtual_tokens: int = field(default=20, metadata={"help": "Learned key/value positions prepended to the "
                                    "attention of every layer."})
    prefix_projection: bool = field(default=False, metadata={"help": "false: the prefix itself is trained "
                                    "(layers x 2 x hidden numbers per virtual token). true: the prefix is the output "
                                    "of a two-layer MLP on a small embedding, trained in its place (Li & Liang's "
                                    "reparametrization, steadier; many more trained parameters); the adapter saves "
                                    "the prefix, so it loads and generates like one trained directly. Recorded as "
                                    "'prefix_tuning_mlp'. Prefix tuning needs a high learning rate (default 1e-2, "
                                    "as PEFT's prefix-tuning examples; 5e-3 to 1e-2 is the usual range)."})
    encoder_hidden_size: int | None = field(default=None, metadata={"help": "Hidden size of the MLP of "
                                            "--prefix_projection true. Default: the model's hidden size."})

    def __post_init__(self):
        require_at_least(self, 1, "num_virtual_tokens")
        if self.encoder_hidden_size is not None:
            require_at_least(self, 1, "encoder_hidden_size")
            require(self.prefix_projection, "encoder_hidden_size", self.encoder_hidden_size,
                    "applies to the MLP only: pass --prefix_projection true as well")

    def check_training_arguments(self, training) -> None:
        """Training flags this method cannot honour (config.parsing calls it with the parsed training flags)."""
        require(not training.gradient_checkpointing, "gradient_checkpointing", training.gradient_checkpointing,
                "prefix tuning keeps its prefix in the KV cache, which transformers drops in checkpointed blocks "
                "(the prefix would silently vanish from training): leave it off")


def build_prefix_tuning(model, args: PrefixTuningArguments, model_args=None):
    """The base model wrapped for prefix tuning (the MLP's hidden size: the flag, else the model's hidden size)."""
    hidden = args.encoder_hidden_size or model.get_input_embeddings().embedding_dim
    config = PrefixTuningConfig(task_type=TaskType.CAUSAL_LM, num_virtual_tokens=args.num_virtual_tokens,
                                prefix_projection=args.prefix_projection, encoder_hidden_size=hidden)
    return get_peft_model(model, config)


def is_prefix_tuning_model(model) -> bool:
    """True for a PEFT model (under any DDP/compile wrapper) whose active adapter is prefix tuning."""
    model = unwrap_peft(model)
    return isinstance(model, PeftModel) and model.active_peft_config.peft_type.value == "PREFIX_TUNING"


def prefix_key_values(model, batch_size: int) -> list[tuple[torch.Tensor, torch.Tensor]] | None:
    """Per layer, the learned prefix's (keys, values), each (batch_size, kv heads, num_virtual_tokens, head_dim),
    as PEFT's own forward puts them in the cache; None for a model that is not prefix tuning.

    Computed once (through the MLP with --prefix_projection, from the saved prefix once reloaded) and expanded
    to the batch: every row gets the very same tensors, and the adapter file holds that batch-1 result.
    """
    if not is_prefix_tuning_model(model):
        return None
    prompt = unwrap_peft(model).get_prompt(batch_size=1)  # a transformers Cache, or a tuple of (key, value)
    layers = [(layer.keys, layer.values) for layer in prompt.layers] if hasattr(prompt, "layers") else prompt
    return [(keys.expand(batch_size, -1, -1, -1), values.expand(batch_size, -1, -1, -1)) for keys, values in layers]


register(Method(name="prefix_tuning", title="prefix tuning", arguments=PrefixTuningArguments,
                build=build_prefix_tuning, script="train_prefix_tuning.py",
                defaults={"num_train_epochs": 6, "learning_rate": 1e-2, "output_dir": "runs/prefix_tuning"},
                variants=(Variant("prefix_tuning_mlp", "prefix tuning (MLP)", {"prefix_projection": True}),)))
