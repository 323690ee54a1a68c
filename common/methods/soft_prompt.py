"""Soft prompt tuning: `num_virtual_tokens` learned input vectors (PEFT PromptTuningConfig), or their
P-tuning variant (`--prompt_encoder mlp|lstm`, PEFT PromptEncoderConfig).

Prompt tuning moves only a few input vectors whose gradients are small, so it needs a far larger
learning rate than the other methods (published setups use 3e-2 to 0.3). P-tuning trains a small
encoder network whose output is the virtual tokens (a reparameterisation that steadies training on
small models, Liu et al. 2021); the adapter saves that output, so a P-tuning adapter is loaded and
generates exactly like a prompt-tuning one, with no encoder. Checkpoints also keep the encoder
(`prompt_encoder.safetensors`, common/training/trainer.py), so a run resumes where it stopped.

Example (the tests' tiny random GPT-Neo, hidden size 64, in a temporary folder: the text start reads its
tokenizer from `model_args`):
    >>> import tempfile
    >>> from transformers import AutoModelForCausalLM
    >>> from common.config.arguments import ModelArguments
    >>> from common.methods import count_parameters, get_method
    >>> from common.models.tiny import write_tiny_model
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     model_args = ModelArguments(model_name_or_path=str(write_tiny_model(tmp + "/tiny")))
    ...     base, other_base = (AutoModelForCausalLM.from_pretrained(model_args.model_name_or_path) for _ in "ab")
    ...     model = get_method("soft_prompt").build(base, SoftPromptArguments(num_virtual_tokens=8), model_args)
    ...     p_tuned = get_method("soft_prompt").build(other_base, SoftPromptArguments(prompt_encoder="mlp"), model_args)
    >>> model.active_peft_config.peft_type.value, count_parameters(model).trainable    # 8 x 64
    ('PROMPT_TUNING', 512)
    >>> p_tuned.active_peft_config.peft_type.value
    'P_TUNING'
"""

from __future__ import annotations

from dataclasses import dataclass, field

from peft import (PromptEncoderConfig, PromptEncoderReparameterizationType, PromptTuningConfig, PromptTuningInit,
                  TaskType, get_peft_model)

from ..core.cli import require, require_at_least
from .registry import Method, register

DEFAULT_SOFT_PROMPT_INIT_TEXT = "Summarize the following news article in three or four sentences:"
PROMPT_INIT = {"text": PromptTuningInit.TEXT, "sample_vocab": PromptTuningInit.SAMPLE_VOCAB,
               "random": PromptTuningInit.RANDOM}
PROMPT_ENCODERS = {"mlp": PromptEncoderReparameterizationType.MLP, "lstm": PromptEncoderReparameterizationType.LSTM}


@dataclass(frozen=True)
class SoftPromptArguments:
    """Soft prompt tuning (PEFT PromptTuningConfig), or P-tuning with --prompt_encoder (PEFT PromptEncoderConfig)."""

    num_virtual_tokens: int = field(default=20, metadata={"help": "Learned prompt vectors prepended to the input."})
    prompt_encoder: str = field(default="none", metadata={"help": "'none': prompt tuning, the vectors themselves "
                                "are trained. 'mlp' or 'lstm': P-tuning, the vectors are the output of a small "
                                "encoder network trained in their place (steadier on small models); the adapter "
                                "saves the vectors, so it loads and generates like a prompt-tuning one.",
                                "choices": ["none", "mlp", "lstm"]})
    encoder_hidden_size: int | None = field(default=None, metadata={"help": "P-tuning encoder's hidden size. "
                                            "Default: the model's hidden size."})
    prompt_init: str | None = field(default=None, metadata={"help": "Initialisation: 'text' (embeddings of "
                                    "--prompt_init_text), 'sample_vocab' (random vocabulary embeddings) or 'random'. "
                                    "Default: 'text' for prompt tuning, 'random' for P-tuning (the encoder's input, "
                                    "the only start PEFT gives it).",
                                    "choices": ["text", "sample_vocab", "random"]})
    prompt_init_text: str = field(default=DEFAULT_SOFT_PROMPT_INIT_TEXT, metadata={"help": "Text whose token "
                                  "embeddings initialise the prompt with --prompt_init text."})

    def __post_init__(self):
        require_at_least(self, 1, "num_virtual_tokens")
        if self.encoder_hidden_size is not None:
            require_at_least(self, 1, "encoder_hidden_size")
        if self.is_p_tuning:
            require(self.prompt_init in (None, "random"), "prompt_init", self.prompt_init,
                    f"P-tuning (--prompt_encoder {self.prompt_encoder}) starts its encoder from random inputs: "
                    "leave --prompt_init unset or pass random, or use --prompt_encoder none for a text start")
        else:
            require(self.encoder_hidden_size is None, "encoder_hidden_size", self.encoder_hidden_size,
                    "applies to P-tuning only: pass --prompt_encoder mlp or lstm as well")

    @property
    def is_p_tuning(self) -> bool:
        return self.prompt_encoder != "none"

    @property
    def init(self) -> str:
        """`prompt_init`, or its default: 'text' for prompt tuning, 'random' for P-tuning."""
        return self.prompt_init or ("random" if self.is_p_tuning else "text")


def build_soft_prompt(model, args: SoftPromptArguments, model_args):
    """The base model wrapped for prompt tuning, or P-tuning when `args.prompt_encoder` names an encoder."""
    if args.is_p_tuning:
        hidden = args.encoder_hidden_size or model.get_input_embeddings().embedding_dim
        config = PromptEncoderConfig(task_type=TaskType.CAUSAL_LM, num_virtual_tokens=args.num_virtual_tokens,
                                     encoder_reparameterization_type=PROMPT_ENCODERS[args.prompt_encoder],
                                     encoder_hidden_size=hidden)
        return get_peft_model(model, config)
    init = PROMPT_INIT[args.init]
    text_options = {"prompt_tuning_init_text": args.prompt_init_text,
                    "tokenizer_name_or_path": model_args.tokenizer_path}
    config = PromptTuningConfig(task_type=TaskType.CAUSAL_LM, num_virtual_tokens=args.num_virtual_tokens,
                                prompt_tuning_init=init, **(text_options if init == PromptTuningInit.TEXT else {}))
    return get_peft_model(model, config)


register(Method(name="soft_prompt", title="soft prompt tuning", arguments=SoftPromptArguments,
                build=build_soft_prompt, script="train_soft_prompt.py",
                defaults={"num_train_epochs": 6, "learning_rate": 3e-2, "output_dir": "runs/soft_prompt"}))
