"""The run's typed arguments: one frozen dataclass per concern (model, data, generation, the method's, training),
every field with help text, cross-field checks in `__post_init__`, and `RunConfig` holding them all.

Example:
    >>> GenerationArguments(num_beams=4, eval_num_beams=1).for_evaluation().num_beams
    1
    >>> DataArguments(prompt_template="no placeholder")
    Traceback (most recent call last):
    common.core.cli.ConfigError: --prompt_template must contain '{article}'; got 'no placeholder'
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from transformers import TrainingArguments

from ..core.cli import ConfigError, require, require_at_least
from ..methods import REGISTRY, get_method, recorded_method_name

DEFAULT_PROMPT_TEMPLATE = "Summarize the following news article.\n\nArticle: {article}\n\nSummary:\n"
DEFAULT_INSTRUCTION = "Summarize the following news article in three or four sentences.\n\n{article}"
DATA_FILE_SUFFIXES = (".jsonl", ".json", ".csv", ".parquet")


@dataclass(frozen=True)
class ModelArguments:
    """Which pre-trained causal LM to adapt."""

    model_name_or_path: str = field(
        default="EleutherAI/gpt-neo-125M",
        metadata={"help": "Hub id or local folder of the base causal LM (e.g. the folder written by "
                  "`python -m common.tiny_model DIR` or `python -m common.offline_model`)."},
    )
    tokenizer_name_or_path: str | None = field(
        default=None, metadata={"help": "Hub id or local folder of the tokenizer; defaults to --model_name_or_path."}
    )
    attn_implementation: str | None = field(
        default=None,
        metadata={"help": "Attention kernel passed to from_pretrained ('eager', 'sdpa', 'flash_attention_2'). "
                  "GPT-Neo supports only 'eager' and 'flash_attention_2'. Default: the model's own choice."},
    )
    fast_kernels: bool = field(
        default=True,
        metadata={"help": "Swap the model's step-by-step GPT-Neo attention and gelu_new for fused kernels with the "
                  "same formulas (common/models/fast_kernels.py; outputs equal to float rounding); false keeps its own."},
    )

    @property
    def tokenizer_path(self) -> str:
        return self.tokenizer_name_or_path or self.model_name_or_path


@dataclass(frozen=True)
class DataArguments:
    """Where the article/summary pairs come from, how many are used and how prompts are built."""

    dataset_name: str = field(default="abisee/cnn_dailymail", metadata={"help": "Hub dataset id, used for "
                              "every split that has no local file (--train_file/--validation_file/--test_file)."})
    dataset_config: str | None = field(default="3.0.0", metadata={"help": "Hub dataset configuration name."})
    train_file: str | None = field(default=None, metadata={"help": "Local train split (.jsonl, .json, .csv, .parquet)."})
    validation_file: str | None = field(default=None, metadata={"help": "Local validation split (.jsonl, .json, .csv, .parquet)."})
    test_file: str | None = field(default=None, metadata={"help": "Local test split (.jsonl, .json, .csv, .parquet)."})
    article_column: str = field(default="article", metadata={"help": "Column holding the source article."})
    summary_column: str = field(default="highlights", metadata={"help": "Column holding the reference summary."})
    id_column: str = field(default="id", metadata={"help": "Column holding a unique example id; "
                           "row numbers are used where the column is absent."})
    max_train_samples: int | None = field(default=21_000, metadata={"help": "Train examples used (seeded random "
                                          "subset of the valid rows); empty/None for all."})
    max_eval_samples: int | None = field(default=6_000, metadata={"help": "Validation examples used (seeded subset)."})
    max_test_samples: int | None = field(default=3_000, metadata={"help": "Test examples used (seeded subset)."})
    selection_seed: int = field(default=42, metadata={"help": "Seed of the subset selection, kept apart from "
                                "--seed so that changing the training seed keeps the same examples."})
    max_source_length: int = field(default=512, metadata={"help": "Article tokens kept; longer articles are "
                                   "cut at the end. The template and the summary are never cut by this."})
    max_target_length: int = field(default=128, metadata={"help": "Summary tokens kept in training, EOS included."})
    prompt_template: str = field(default=DEFAULT_PROMPT_TEMPLATE, metadata={"help": "Prompt around the "
                                 "article; must contain '{article}'. The summary follows it directly, then EOS. "
                                 "With --use_chat_template it is the user message instead."})
    use_chat_template: bool = field(default=False, metadata={"help": "Wrap the prompt in the tokenizer's chat "
                                    "template (for instruction-tuned models such as SmolLM2-Instruct); the "
                                    "summary becomes the assistant turn."})

    def __post_init__(self):
        if "{article}" not in self.prompt_template:
            raise ConfigError(f"--prompt_template must contain '{{article}}'; got {self.prompt_template!r}")
        require_at_least(self, 1, "max_source_length", "max_target_length")
        for flag in ("max_train_samples", "max_eval_samples", "max_test_samples"):
            value = getattr(self, flag)
            require(value is None or value >= 1, flag, value, "must be >= 1, or None (null in YAML) for all rows")
        for flag in ("train_file", "validation_file", "test_file"):
            _check_data_file(flag, getattr(self, flag))


def _check_data_file(flag: str, path: str | None) -> None:
    """A local split file exists and has a suffix the loader reads (FileNotFoundError, ConfigError)."""
    if path is None:
        return
    if not Path(path).is_file():
        raise FileNotFoundError(f"--{flag} {path}: no such file. Give the path of a .jsonl, .json, .csv "
                                "or .parquet file, or leave the flag out to use --dataset_name.")
    suffix = Path(path).suffix.lower()
    require(suffix in DATA_FILE_SUFFIXES, flag, path,
            f"unknown file type '{suffix}'; use one of {', '.join(DATA_FILE_SUFFIXES)}")


@dataclass(frozen=True)
class GenerationArguments:
    """How summaries are generated for validation scoring and the test predictions."""

    num_eval_generate: int = field(default=64, metadata={"help": "Validation examples summarised and scored "
                                   "with ROUGE at each evaluation (0 disables; ROUGE is then absent from eval metrics)."})
    max_new_tokens: int = field(default=128, metadata={"help": "Most tokens generated per summary."})
    num_beams: int = field(default=1, metadata={"help": "1 for greedy decoding, more for beam search."})
    eval_num_beams: int = field(default=0, metadata={"help": "Beams for the validation summaries scored at each "
                                "evaluation (the learning curve); 0 uses --num_beams. 1 keeps the curve greedy and "
                                "cheap while the test summaries use beam search."})
    no_repeat_ngram_size: int = field(default=0, metadata={"help": "Forbid repeating, within the generated "
                                      "summary, an n-gram of this size (0 off). Unlike transformers' own setting, "
                                      "n-grams of the article in the prompt stay allowed."})
    generation_batch_size: int = field(default=16, metadata={"help": "Prompts generated together per process "
                                       "(left-padded, sorted by length)."})

    def __post_init__(self):
        require_at_least(self, 1, "max_new_tokens", "num_beams", "generation_batch_size")
        require_at_least(self, 0, "num_eval_generate", "no_repeat_ngram_size", "eval_num_beams")

    def for_evaluation(self) -> "GenerationArguments":
        """The settings of the learning-curve summaries: these, with `eval_num_beams` beams where it is set.

            >>> GenerationArguments(num_beams=4, eval_num_beams=1).for_evaluation().num_beams
            1
        """
        return dataclasses.replace(self, num_beams=self.eval_num_beams or self.num_beams)


@dataclass(frozen=True)
class ZeroShotArguments:
    """Generation only (`common.predict`): the base model, or the base model with a trained run's weights."""

    trained_path: str | None = field(default=None, metadata={"aliases": ["--adapter"], "help": "A training run's "
                                     "adapter/ folder (LoRA, soft prompt, or last-layer tensors), or the Hub id a run "
                                     "was pushed to (--push_to_hub): generate with it instead of the bare base model, "
                                     "e.g. to score a trained run on another file or with other generation settings "
                                     "without retraining. run.json then carries that run's method, parameter counts "
                                     "and training cost, and says generation_only."})


@dataclass
class SummarizationTrainingArguments(TrainingArguments):
    """HF TrainingArguments with this toolkit's defaults and a few extra fields."""

    learning_rate: float = field(default=2e-4, metadata={"help": "Peak learning rate (AdamW). Default per method: "
                                 "lora 2e-4; soft_prompt 3e-2, because prompt tuning moves only a few input "
                                 "vectors whose gradients are small, so it needs a far larger rate (published "
                                 "setups use 3e-2 to 0.3); finetune 5e-5, as for full pre-trained weights; ia3 "
                                 "3e-3, because its vectors start at one and rescale activations (the T-Few recipe's "
                                 "rate; PEFT's examples use 3e-3 to 1e-2); prefix_tuning 1e-2, because like a soft "
                                 "prompt its prefix moves from a random start (PEFT's prefix-tuning examples; 5e-3 to "
                                 "1e-2 is the usual range)."})
    eval_strategy: str = field(default="epoch", metadata={"help": "When to evaluate (and generate + score ROUGE): "
                               "'no', 'steps' or 'epoch'."})
    save_strategy: str = field(default="epoch", metadata={"help": "When to save checkpoints: 'no', 'steps', 'epoch' "
                               "or 'best'."})
    save_total_limit: int | None = field(default=2, metadata={"help": "Checkpoints kept in output_dir."})
    logging_steps: float = field(default=10, metadata={"help": "Log the training loss every N steps."})
    remove_unused_columns: bool = field(default=False, metadata={"help": "Kept False: the collator picks the "
                                        "fields it needs and the length-grouped sampler needs 'length'."})
    train_sampling_strategy: str = field(default="group_by_length", metadata={"help": "'group_by_length' batches "
                                         "examples of similar length (less padding); 'random' or 'sequential'."})
    include_num_input_tokens_seen: str = field(default="non_padding", metadata={"help": "Count training "
                                                      "tokens ('non_padding', 'all' or 'no'); run.json reports tokens/s."})
    push_to_hub: bool = field(default=False, metadata={"help": "Upload the adapter (or trained tensors) with a "
                              "model card to --hub_model_id after training."})
    label_position_logits: bool = field(default=True, metadata={"help": "Compute the LM head only at positions "
                                        "that carry a label (same loss, far fewer FLOPs on long prompts)."})
    overwrite_output_dir: bool = field(default=False, metadata={"help": "Replace the finished run in --output_dir "
                                       "(its results stay until the new ones are complete; its checkpoints are "
                                       "deleted at the start). Without it such a folder is refused, unless resumed."})


GENERATION_ONLY = "zero_shot"  # generation without training: the base model, or a trained run's weights
GENERATION_DEFAULTS: dict[str, Any] = {"output_dir": "runs/zero_shot", "eval_strategy": "no", "save_strategy": "no"}


def trains(method_name: str) -> bool:
    """Whether the method trains (a registered method), so that its training flags matter."""
    return method_name in REGISTRY


def method_arguments(method_name: str) -> type:
    """The method's argument dataclass: the registry's, or ZeroShotArguments for generation only."""
    return ZeroShotArguments if method_name == GENERATION_ONLY else get_method(method_name).arguments


def method_defaults(method_name: str) -> dict[str, Any]:
    """Per-method defaults of the training flags (the seed's epochs and learning rates)."""
    return GENERATION_DEFAULTS if method_name == GENERATION_ONLY else get_method(method_name).defaults


@dataclass(frozen=True)
class RunConfig:
    """Everything one run needs, parsed once."""

    method_name: str
    model: ModelArguments
    data: DataArguments
    generation: GenerationArguments
    method: Any
    training: SummarizationTrainingArguments
    config_file: str | None = None

    @property
    def recorded_method(self) -> str:
        """The method's name as run.json, the comparison table and the Hub card record it: 'dora' for lora with
        --use_dora, 'full_finetune' for finetune with --num_trainable_layers -1 (`recorded_method_name`)."""
        return recorded_method_name(self.method_name, self.method)

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON view of the resolved configuration (for run.json and model cards)."""
        return {
            "method_name": self.method_name,
            "config_file": self.config_file,
            "model": dataclasses.asdict(self.model),
            "data": dataclasses.asdict(self.data),
            "generation": dataclasses.asdict(self.generation),
            "method": dataclasses.asdict(self.method),
            "training": self.training.to_dict(),
        }
