"""Typed run configuration, parsed once from an optional YAML file plus CLI overrides.

Every script builds the same parser from the same dataclasses; only the method dataclass and the
per-method defaults differ. Parsed dataclasses are never reassigned afterwards: code that needs a
derived value computes it from the config instead.

Example:
    >>> cfg = parse_run_config("lora", ["--config", "configs/tiny/lora.yaml", "--num_train_epochs", "1"])
    >>> cfg.training.num_train_epochs, cfg.method.r
    (1.0, 8)
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from transformers import HfArgumentParser, TrainingArguments

DEFAULT_PROMPT_TEMPLATE = "Summarize the following news article.\n\nArticle: {article}\n\nSummary:\n"
DEFAULT_INSTRUCTION = "Summarize the following news article in three or four sentences.\n\n{article}"
DEFAULT_SOFT_PROMPT_INIT_TEXT = "Summarize the following news article in three or four sentences:"


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
            raise ValueError(f"--prompt_template must contain '{{article}}'; got {self.prompt_template!r}")
        for name in ("max_source_length", "max_target_length"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name} must be at least 1; got {getattr(self, name)}")
        for name in ("train_file", "validation_file", "test_file"):
            path = getattr(self, name)
            if path is not None and not Path(path).is_file():
                raise FileNotFoundError(f"--{name} {path}: no such file. Give the path of a .jsonl, .json, .csv "
                                        "or .parquet file, or leave the flag out to use --dataset_name.")


@dataclass(frozen=True)
class GenerationArguments:
    """How summaries are generated for validation scoring and the test predictions."""

    num_eval_generate: int = field(default=64, metadata={"help": "Validation examples summarised and scored "
                                   "with ROUGE at each evaluation (0 disables; ROUGE is then absent from eval metrics)."})
    max_new_tokens: int = field(default=128, metadata={"help": "Most tokens generated per summary."})
    num_beams: int = field(default=1, metadata={"help": "1 for greedy decoding, more for beam search."})
    no_repeat_ngram_size: int = field(default=0, metadata={"help": "Forbid repeating, within the generated "
                                      "summary, an n-gram of this size (0 off). Unlike transformers' own setting, "
                                      "n-grams of the article in the prompt stay allowed."})
    generation_batch_size: int = field(default=16, metadata={"help": "Prompts generated together per process "
                                       "(left-padded, sorted by length)."})

    def __post_init__(self):
        if self.num_beams < 1 or self.max_new_tokens < 1 or self.generation_batch_size < 1:
            raise ValueError("--num_beams, --max_new_tokens and --generation_batch_size must be at least 1")


@dataclass(frozen=True)
class LoraArguments:
    """LoRA adapters (PEFT LoraConfig)."""

    r: int = field(default=16, metadata={"help": "LoRA rank."})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA scaling numerator (scale = alpha / r)."})
    lora_dropout: float = field(default=0.05, metadata={"help": "Dropout on the LoRA input."})
    target_modules: list[str] = field(
        default_factory=lambda: ["all-linear"],
        metadata={"help": "Module names to adapt; 'all-linear' adapts every linear layer but the LM head, which "
                  "suits GPT-Neo (q/k/v/out_proj, c_fc, c_proj) and Llama-style models alike."},
    )
    merge_and_export: str | None = field(default=None, metadata={"help": "After training, also write a "
                                         "standalone merged model (base + adapter) to this folder."})

    def __post_init__(self):
        if self.r < 1:
            raise ValueError(f"--r must be at least 1; got {self.r}")


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
        if self.num_virtual_tokens < 1:
            raise ValueError(f"--num_virtual_tokens must be at least 1; got {self.num_virtual_tokens}")


@dataclass(frozen=True)
class FinetuneArguments:
    """Classic fine-tuning of the last transformer blocks only."""

    num_trainable_layers: int = field(default=1, metadata={"help": "Last transformer blocks trained; every other "
                                      "weight stays frozen. 0 with --train_lm_head trains the LM head alone (the "
                                      "seed's setting)."})
    train_final_norm: bool | None = field(default=None, metadata={"help": "Also train the final layer norm (after "
                                          "the last block). Default: yes when blocks are trained "
                                          "(--num_trainable_layers > 0), no otherwise."})
    train_lm_head: bool = field(default=False, metadata={"help": "Also train the LM head. On models that tie "
                                "it to the input embeddings (GPT-Neo: 50,257 x 768 = 38.6M shared parameters) this "
                                "trains the whole embedding matrix, which run.json records as tied_lm_head."})

    def __post_init__(self):
        if self.num_trainable_layers < 0:
            raise ValueError(f"--num_trainable_layers must be >= 0; got {self.num_trainable_layers}")
        if self.num_trainable_layers == 0 and not (self.train_lm_head or self.train_final_norm):
            raise ValueError("--num_trainable_layers 0 trains nothing unless --train_lm_head or --train_final_norm")

    @property
    def trains_final_norm(self) -> bool:
        """`train_final_norm`, or its default: trained together with the last blocks."""
        return self.num_trainable_layers > 0 if self.train_final_norm is None else self.train_final_norm


@dataclass(frozen=True)
class ZeroShotArguments:
    """No adaptation: the base model through the same prompt and generation path, or (with
    `trained_path`) generation only with what a training run saved."""

    trained_path: str | None = field(default=None, metadata={"help": "A training run's adapter/ folder "
                                     "(LoRA, soft prompt, or last-layer tensors), or the Hub id a run was pushed to "
                                     "(--push_to_hub): generate with it instead of the "
                                     "bare base model, e.g. to score a trained run on another file or with other "
                                     "generation settings without retraining. run.json then carries that run's "
                                     "method, parameter counts and training time (from the folder above adapter/)."})


@dataclass
class SummarizationTrainingArguments(TrainingArguments):
    """HF TrainingArguments with this toolkit's defaults and a few extra fields."""

    learning_rate: float = field(default=2e-4, metadata={"help": "Peak learning rate (AdamW). Default per method: "
                                 "lora 2e-4; soft_prompt 3e-2, because prompt tuning moves only a few input "
                                 "vectors whose gradients are small, so it needs a far larger rate (published "
                                 "setups use 3e-2 to 0.3); finetune 5e-5, as for full pre-trained weights."})
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


METHOD_ARGUMENTS = {
    "lora": LoraArguments,
    "soft_prompt": SoftPromptArguments,
    "finetune": FinetuneArguments,
    "zero_shot": ZeroShotArguments,
}

# The seed's experiment: epochs and learning rates per method (prompt tuning needs a far larger rate).
METHOD_DEFAULTS: dict[str, dict[str, Any]] = {
    "lora": {"num_train_epochs": 6, "learning_rate": 2e-4, "output_dir": "runs/lora"},
    "soft_prompt": {"num_train_epochs": 6, "learning_rate": 3e-2, "output_dir": "runs/soft_prompt"},
    "finetune": {"num_train_epochs": 10, "learning_rate": 5e-5, "output_dir": "runs/finetune"},
    "zero_shot": {"output_dir": "runs/zero_shot", "eval_strategy": "no", "save_strategy": "no"},
}


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


def make_parser(method_name: str) -> HfArgumentParser:
    """The parser of one script: all shared dataclasses, the method's one, and `--config FILE.yaml`."""
    dataclass_types = [ModelArguments, DataArguments, GenerationArguments, METHOD_ARGUMENTS[method_name],
                       SummarizationTrainingArguments]
    parser = HfArgumentParser(dataclass_types)
    parser.add_argument("--config", default=None, metavar="FILE.yaml",
                        help="YAML file of flag values (keys are flag names without dashes); CLI flags override it.")
    parser.set_defaults(**METHOD_DEFAULTS[method_name])
    return parser


def read_yaml_config(path: str, parser: argparse.ArgumentParser) -> dict[str, Any]:
    """Load a YAML preset and check every key is a flag of `parser`.

    Raises a ValueError naming the file and the unknown key, so a typo never silently does nothing.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"--config {path}: no such file")
    with open(path, encoding="utf-8") as handle:
        values = yaml.safe_load(handle) or {}
    if not isinstance(values, dict):
        raise ValueError(f"--config {path}: expected a mapping of flag names to values, got {type(values).__name__}")
    known = {action.dest for action in parser._actions}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"--config {path}: unknown key(s) {unknown}; run the script with --help for the flags")
    return values


def parse_run_config(method_name: str, argv: list[str] | None = None) -> RunConfig:
    """Parse `argv` (default: sys.argv[1:]) for `method_name` into a frozen RunConfig."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = make_parser(method_name)
    config_file = _peek_config_flag(argv)
    if config_file:
        parser.set_defaults(**read_yaml_config(config_file, parser))
    model, data, generation, method, training, _extra = parser.parse_args_into_dataclasses(args=argv)
    if training.push_to_hub and method_name == "zero_shot":
        parser.error("--push_to_hub: a zero-shot or generation-only run trains nothing to upload; push the "
                     "training run instead (train_*.py --push_to_hub --hub_model_id OWNER/NAME)")
    if training.push_to_hub and not training.hub_model_id:
        parser.error("--push_to_hub needs --hub_model_id OWNER/NAME (e.g. your-user/gpt-neo-lora-cnndm); "
                     "checked now so that it does not fail after training")
    return RunConfig(method_name, model, data, generation, method, training, config_file)


def _peek_config_flag(argv: list[str]) -> str | None:
    peek = argparse.ArgumentParser(add_help=False)
    peek.add_argument("--config", default=None)
    known, _ = peek.parse_known_args(argv)
    return known.config
