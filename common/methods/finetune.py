"""Last-layer fine-tuning: the last transformer blocks, the final norm and optionally the LM head; or, with
`--num_trainable_layers -1`, full fine-tuning: every parameter (recorded as method `full_finetune`).

On models that tie the LM head to the input embeddings (GPT-Neo) training the head trains the whole
embedding matrix; run.json records that as `tied_lm_head`. Saved as the trained tensors alone
(`trained_params.safetensors`; for full fine-tuning that is every weight, each tied tensor once), loaded
back into a fresh base model.

Example (the tests' tiny random GPT-Neo, 2 blocks, LM head tied to the embeddings):
    >>> from common.methods import count_parameters, get_method
    >>> from common.models.tiny import build_tiny_model, build_tokenizer
    >>> vocab = len(build_tokenizer())
    >>> model = get_method("finetune").build(build_tiny_model(vocab), FinetuneArguments(num_trainable_layers=1), None)
    >>> count_parameters(model)          # the last block and the final norm
    ParameterCounts(trainable=49920, total=198016, tied_lm_head=False)
    >>> head_only = FinetuneArguments(num_trainable_layers=0, train_lm_head=True)
    >>> count_parameters(get_method("finetune").build(build_tiny_model(vocab), head_only, None))  # the embeddings
    ParameterCounts(trainable=32768, total=198016, tied_lm_head=True)
    >>> count_parameters(get_method("finetune").build(build_tiny_model(vocab), FinetuneArguments(-1), None))
    ParameterCounts(trainable=198016, total=198016, tied_lm_head=True)
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..core.cli import ConfigError, require, require_at_least
from .base import final_norm, transformer_blocks
from .registry import Method, Variant, register


@dataclass(frozen=True)
class FinetuneArguments:
    """Classic fine-tuning of the last transformer blocks only, or of every parameter."""

    num_trainable_layers: int = field(default=1, metadata={"help": "Last transformer blocks trained; every other "
                                      "weight stays frozen. 0 with --train_lm_head trains the LM head alone (the "
                                      "seed's setting). -1: full fine-tuning, every parameter (blocks, embeddings, "
                                      "final norm, LM head), recorded as method 'full_finetune'."})
    train_final_norm: bool | None = field(default=None, metadata={"help": "Also train the final layer norm (after "
                                          "the last block). Default: yes when blocks are trained "
                                          "(--num_trainable_layers > 0), no otherwise."})
    train_lm_head: bool = field(default=False, metadata={"help": "Also train the LM head. On models that tie "
                                "it to the input embeddings (GPT-Neo: 50,257 x 768 = 38.6M shared parameters) this "
                                "trains the whole embedding matrix, which run.json records as tied_lm_head."})

    def __post_init__(self):
        require_at_least(self, -1, "num_trainable_layers")
        require(not (self.trains_everything and self.train_final_norm is False), "train_final_norm", False,
                "--num_trainable_layers -1 trains every parameter, the final norm included")
        require(self.num_trainable_layers != 0 or self.train_lm_head or bool(self.train_final_norm),
                "num_trainable_layers", 0, "trains nothing unless --train_lm_head or --train_final_norm")

    @property
    def trains_everything(self) -> bool:
        """Full fine-tuning: `num_trainable_layers` -1."""
        return self.num_trainable_layers == -1

    @property
    def trains_final_norm(self) -> bool:
        """`train_final_norm`, or its default: trained together with the last blocks."""
        if self.train_final_norm is None:
            return self.num_trainable_layers != 0
        return self.train_final_norm


def build_finetune(model, args: FinetuneArguments, model_args=None):
    """Freeze everything, then unfreeze the last blocks and, if asked, the final norm and the LM head; or
    unfreeze every parameter (`num_trainable_layers` -1)."""
    if args.trains_everything:
        return model.requires_grad_(True)
    model.requires_grad_(False)
    blocks = transformer_blocks(model)
    if args.num_trainable_layers > len(blocks):
        raise ConfigError(f"--num_trainable_layers {args.num_trainable_layers}: the model has {len(blocks)} blocks")
    for block in list(blocks)[len(blocks) - args.num_trainable_layers:]:
        block.requires_grad_(True)
    if args.trains_final_norm:
        final_norm(model).requires_grad_(True)
    if args.train_lm_head:
        model.get_output_embeddings().requires_grad_(True)
    return model


register(Method(name="finetune", title="last-layer fine-tuning", arguments=FinetuneArguments, build=build_finetune,
                script="train_finetune.py", peft_adapter=False,
                defaults={"num_train_epochs": 10, "learning_rate": 5e-5, "output_dir": "runs/finetune"},
                variants=(Variant("full_finetune", "full fine-tuning", {"num_trainable_layers": -1}),)))
