"""Soft prompt tuning: `num_virtual_tokens` learned input vectors (PEFT PromptTuningConfig).

Prompt tuning moves only a few input vectors whose gradients are small, so it needs a far larger
learning rate than the other methods (published setups use 3e-2 to 0.3).

Example:
    >>> model = get_method("soft_prompt").build(base_model, SoftPromptArguments(num_virtual_tokens=8), model_args)
"""

from __future__ import annotations

from dataclasses import dataclass, field

from peft import PromptTuningConfig, PromptTuningInit, TaskType, get_peft_model

from ..cli import require_at_least
from .registry import Method, register

DEFAULT_SOFT_PROMPT_INIT_TEXT = "Summarize the following news article in three or four sentences:"
PROMPT_INIT = {"text": PromptTuningInit.TEXT, "sample_vocab": PromptTuningInit.SAMPLE_VOCAB,
               "random": PromptTuningInit.RANDOM}


@dataclass(frozen=True)
class SoftPromptArguments:
    """Soft prompt tuning (PEFT PromptTuningConfig)."""

    num_virtual_tokens: int = field(default=20, metadata={"help": "Learned prompt vectors prepended to the input."})
    prompt_init: str = field(default="text", metadata={"help": "Initialisation: 'text' (embeddings of "
                             "--prompt_init_text), 'sample_vocab' (random vocabulary embeddings) or 'random'.",
                             "choices": ["text", "sample_vocab", "random"]})
    prompt_init_text: str = field(default=DEFAULT_SOFT_PROMPT_INIT_TEXT, metadata={"help": "Text whose token "
                                  "embeddings initialise the prompt with --prompt_init text."})

    def __post_init__(self):
        require_at_least(self, 1, "num_virtual_tokens")


def build_soft_prompt(model, args: SoftPromptArguments, model_args):
    init = PROMPT_INIT[args.prompt_init]
    text_options = {"prompt_tuning_init_text": args.prompt_init_text,
                    "tokenizer_name_or_path": model_args.tokenizer_path}
    config = PromptTuningConfig(task_type=TaskType.CAUSAL_LM, num_virtual_tokens=args.num_virtual_tokens,
                                prompt_tuning_init=init, **(text_options if init == PromptTuningInit.TEXT else {}))
    return get_peft_model(model, config)


register(Method(name="soft_prompt", title="soft prompt tuning", arguments=SoftPromptArguments,
                build=build_soft_prompt, script="train_soft_prompt.py",
                defaults={"num_train_epochs": 6, "learning_rate": 3e-2, "output_dir": "runs/soft_prompt"}))
