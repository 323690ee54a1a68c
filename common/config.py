"""Typed run configuration, parsed once from an optional YAML file plus CLI overrides.

Every script builds the same parser from the same dataclasses; only the method dataclass and the
per-method defaults differ. Parsed dataclasses are never reassigned afterwards: code that needs a
derived value computes it from the config instead.

Every user mistake (a flag or YAML value of the wrong type or out of range, a setting that trains
nothing, a missing file) is a `ConfigError` raised here, before any model or data loads; its message
names the flag, the value and what is accepted. `check_lengths_against_model` adds the checks that
need the model's config (sequence lengths against its position limit).

Example:
    >>> cfg = parse_run_config("lora", ["--config", "configs/tiny/lora.yaml", "--num_train_epochs", "1"])
    >>> cfg.training.num_train_epochs, cfg.method.r
    (1.0, 4)
    >>> parse_run_config("lora", ["--learning_rate", "0"])
    Traceback (most recent call last):
    common.cli.ConfigError: --learning_rate 0.0: must be > 0
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import sys
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from transformers import HfArgumentParser, TrainingArguments
from transformers.hf_argparser import string_to_bool

from .cli import ConfigError, OneLineUsageErrors, require, require_at_least
from .methods import REGISTRY, get_method

DEFAULT_PROMPT_TEMPLATE = "Summarize the following news article.\n\nArticle: {article}\n\nSummary:\n"
DEFAULT_INSTRUCTION = "Summarize the following news article in three or four sentences.\n\n{article}"
DATA_FILE_SUFFIXES = (".jsonl", ".json", ".csv", ".parquet")
NONE_WORDS = ("", "none", "null")  # CLI spellings of "no value" for optional numbers and booleans


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
                  "same formulas (common/fast_kernels.py; outputs equal to float rounding); false keeps its own."},
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


class RunConfigParser(OneLineUsageErrors, HfArgumentParser):
    """HfArgumentParser whose usage errors are ConfigErrors: one `error:` line, not 130 lines of usage."""


def make_parser(method_name: str) -> RunConfigParser:
    """The parser of one script: all shared dataclasses, the method's one, and `--config FILE.yaml`."""
    dataclass_types = [ModelArguments, DataArguments, GenerationArguments, method_arguments(method_name),
                       SummarizationTrainingArguments]
    parser = RunConfigParser(dataclass_types)
    parser.add_argument("--config", default=None, metavar="FILE.yaml",
                        help="YAML file of flag values (keys are flag names without dashes); CLI flags override it.")
    parser.set_defaults(**method_defaults(method_name))
    _accept_none_for_optionals(parser)
    return parser


def field_types(parser: HfArgumentParser) -> dict[str, Any]:
    """The type hint of every flag of `parser` (the init fields of its dataclasses), by flag name."""
    hints: dict[str, Any] = {}
    for dtype in parser.dataclass_types:
        resolved = typing.get_type_hints(dtype)
        for item in dataclasses.fields(dtype):
            if item.init:
                hints.setdefault(item.name, resolved[item.name])
    return hints


SIMPLE_KINDS = {int: "an integer", float: "a number", bool: "true or false", str: "a string",
                list: "a list of strings"}


def simple_kind(hint: Any) -> tuple[type | None, bool]:
    """(int, float, bool, str, or list for list[str]; None for any other type) and whether None is allowed.

    Example:
        >>> simple_kind(int | None), simple_kind(list[str]), simple_kind(dict | str | None)
        ((<class 'int'>, True), (<class 'list'>, False), (None, True))
    """
    args = typing.get_args(hint)
    optional = typing.get_origin(hint) in (typing.Union, types.UnionType) and type(None) in args
    if optional:
        rest = [arg for arg in args if arg is not type(None)]
        hint = rest[0] if len(rest) == 1 else None
    if hint == list[str]:
        return list, optional
    return (hint if hint in SIMPLE_KINDS else None), optional


def convert_value(value: Any, kind: type) -> Any:
    """`value` as `kind`, read as the CLI reads a flag: a string is parsed ("5e-5" is 5e-05), an int is a
    valid float, a single string a one-element list. Anything else raises TypeError or ValueError.

    Example:
        >>> convert_value("5e-5", float), convert_value(1, float), convert_value("q_proj", list)
        (5e-05, 1.0, ['q_proj'])
    """
    if kind is list:
        items = [value] if isinstance(value, str) else value
        if isinstance(items, list) and items and all(isinstance(item, str) for item in items):
            return list(items)
    elif isinstance(value, str) and kind is not str:
        return string_to_bool(value) if kind is bool else kind(value)
    elif isinstance(value, kind) and (kind is bool or not isinstance(value, bool)):
        return value
    elif kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    raise TypeError(f"not {SIMPLE_KINDS[kind]}")


def yaml_value(path: str, key: str, value: Any, hint: Any, choices=None) -> Any:
    """One YAML value checked against its flag's type and choices, converted as the CLI would convert it.
    Values of other types (dicts, unions) pass unchanged: their dataclass checks them.

    Example:
        >>> yaml_value("p.yaml", "r", 2.5, int)
        Traceback (most recent call last):
        common.cli.ConfigError: --config p.yaml: r: 2.5 is not an integer
    """
    kind, optional = simple_kind(hint)
    converted = value
    if kind is not None and not (value is None and optional):
        try:
            converted = convert_value(value, kind)
        except (TypeError, ValueError, argparse.ArgumentTypeError):
            expected = SIMPLE_KINDS[kind] + (" or null" if optional else "") + (" (quote it)" if kind is str else "")
            raise ConfigError(f"--config {path}: {key}: {value!r} is not {expected}") from None
    if choices and isinstance(converted, str) and converted not in choices:
        raise ConfigError(f"--config {path}: {key}: {value!r} is not one of {', '.join(map(str, choices))}")
    return converted


def read_yaml_config(path: str, parser: HfArgumentParser) -> dict[str, Any]:
    """Load a YAML preset: every key a flag of `parser`, every value of that flag's type (converted as the
    CLI converts it), so that a typo or a wrong type never silently does something else.

    Raises a ConfigError naming the file, the key, the value and what is accepted.

    Example:
        >>> read_yaml_config("configs/tiny/lora.yaml", make_parser("lora"))["r"]
        4
    """
    values = _load_yaml_mapping(path)
    if "config" in values:
        raise ConfigError(f"--config {path}: config: {values['config']!r}: nested configs are not supported; "
                          "copy that file's keys into this one or pass them as flags")
    hints = field_types(parser)
    unknown = sorted(map(str, set(values) - set(hints)))
    if unknown:
        raise ConfigError(f"--config {path}: unknown key(s) {unknown}; run the script with --help for the flags")
    choices = {action.dest: action.choices for action in parser._actions if action.choices}
    return {key: yaml_value(path, key, value, hints[key], choices.get(key)) for key, value in values.items()}


def _load_yaml_mapping(path: str) -> dict:
    if not os.path.isfile(path):
        raise ConfigError(f"--config {path}: no such file")
    try:
        with open(path, encoding="utf-8") as handle:
            values = yaml.safe_load(handle) or {}
    except yaml.YAMLError as error:
        raise ConfigError(f"--config {path}: not valid YAML: {error}") from error
    if not isinstance(values, dict):
        raise ConfigError(f"--config {path}: expected a mapping of flag names to values, got {type(values).__name__}")
    return values


def _accept_none_for_optionals(parser: HfArgumentParser) -> None:
    """`--max_train_samples None` (or null) means None, as the help texts say: HfArgumentParser gives an
    optional int, float or bool flag the plain type, which rejects it."""
    hints = field_types(parser)
    for action in parser._actions:
        kind, optional = simple_kind(hints.get(action.dest))
        if optional and kind in (int, float, bool) and action.type is not None:
            action.type = _none_or(action.type)


def _none_or(convert):
    def parse(text: str):
        return None if text.strip().lower() in NONE_WORDS else convert(text)

    parse.__name__ = getattr(convert, "__name__", "value")  # argparse names it in "invalid int value"
    return parse


def check_training(args: Any) -> None:
    """Training flags that would crash late or train nothing (`args`: the parsed flags, or a
    SummarizationTrainingArguments). Only for methods that train.

    Example:
        >>> check_training(parse_run_config("lora", []).training)       # the defaults pass
    """
    require(math.isfinite(args.learning_rate) and args.learning_rate > 0, "learning_rate", args.learning_rate,
            "must be > 0")
    require(args.max_steps == -1 or args.max_steps >= 1, "max_steps", args.max_steps,
            "must be >= 1, or -1 to train for --num_train_epochs")
    require(args.max_steps != -1 or args.num_train_epochs > 0, "num_train_epochs", args.num_train_epochs,
            "must be > 0 when --max_steps is -1 (the default), or nothing is trained")
    require_at_least(args, 1, "per_device_train_batch_size", "per_device_eval_batch_size",
                     "gradient_accumulation_steps")
    evaluates = args.eval_strategy != "no"
    require(evaluates or args.save_strategy != "best", "save_strategy", args.save_strategy,
            "needs evaluations to find the best checkpoint; set --eval_strategy steps or epoch")
    if args.load_best_model_at_end:
        require(evaluates, "eval_strategy", args.eval_strategy,
                "--load_best_model_at_end needs evaluations: set --eval_strategy steps or epoch")
        require(args.save_strategy != "no", "save_strategy", args.save_strategy,
                "--load_best_model_at_end needs saved checkpoints: set --save_strategy steps, epoch or best")


def parse_run_config(method_name: str, argv: list[str] | None = None) -> RunConfig:
    """Parse `argv` (default: sys.argv[1:]) for `method_name` into a frozen RunConfig.

    Raises a ConfigError for any bad flag or YAML value, before any model or data loads.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = make_parser(method_name)
    config_file = _peek_config_flag(argv)
    if config_file:
        parser.set_defaults(**read_yaml_config(config_file, parser))
    namespace = parser.parse_args(argv)
    if trains(method_name):
        check_training(namespace)
    model, data, generation, method, training = _dataclasses_from(parser, namespace)
    _check_hub_flags(training, method_name)
    _check_half_precision_kernels(model, training)
    return RunConfig(method_name, model, data, generation, method, training, config_file)


def _dataclasses_from(parser: HfArgumentParser, namespace: argparse.Namespace) -> list:
    """One instance of each dataclass of `parser`; errors of their own checks (ours raise ConfigError,
    TrainingArguments' a ValueError, a missing data file FileNotFoundError) become ConfigErrors."""
    values = vars(namespace)
    instances = []
    for dtype in parser.dataclass_types:
        names = [item.name for item in dataclasses.fields(dtype) if item.init and item.name in values]
        try:
            instances.append(dtype(**{name: values[name] for name in names}))
        except ConfigError:
            raise
        except (ValueError, TypeError, OSError) as error:
            raise ConfigError(str(error)) from error
    return instances


def _check_hub_flags(training: SummarizationTrainingArguments, method_name: str) -> None:
    if training.push_to_hub and not trains(method_name):
        raise ConfigError("--push_to_hub: a zero-shot or generation-only run trains nothing to upload; push the "
                          "training run instead (train_*.py --push_to_hub --hub_model_id OWNER/NAME)")
    if training.push_to_hub and not training.hub_model_id:
        raise ConfigError("--push_to_hub needs --hub_model_id OWNER/NAME (e.g. your-user/gpt-neo-lora-cnndm); "
                          "checked now so that it does not fail after training")


def _check_half_precision_kernels(model: ModelArguments, training: SummarizationTrainingArguments) -> None:
    """FlashAttention-2 takes fp16/bf16 inputs only; the model is loaded in fp32, so only autocast gives them."""
    if model.attn_implementation == "flash_attention_2" and training.mixed_precision not in ("bf16", "fp16"):
        raise ConfigError("--attn_implementation flash_attention_2 computes in half precision only and the model "
                          "is loaded in fp32: add --bf16 true (or --fp16 true on a GPU without bf16), or leave "
                          "--attn_implementation out")


def check_precision_against_model(cfg: RunConfig, model_config: Any) -> None:
    """GPT-Neo's own attention overflows under fp16 autocast (its scores are unscaled and its fp32 upcast is
    undone by autocast: NaN loss on real weights); only the fused kernel computes them in fp32.

    Example:
        >>> from transformers import GPTNeoConfig
        >>> check_precision_against_model(parse_run_config("lora", ["--fp16", "true", "--fast_kernels", "false"]),
        ...                               GPTNeoConfig())
        Traceback (most recent call last):
        common.cli.ConfigError: --fp16 with --fast_kernels false: GPT-Neo's own attention overflows fp16 (unscaled scores, NaN loss); keep --fast_kernels true or use --bf16 true
    """
    own_attention = not cfg.model.fast_kernels and cfg.model.attn_implementation in (None, "eager")
    if own_attention and cfg.training.mixed_precision == "fp16" and getattr(model_config, "model_type", "") == "gpt_neo":
        raise ConfigError("--fp16 with --fast_kernels false: GPT-Neo's own attention overflows fp16 (unscaled scores, "
                          "NaN loss); keep --fast_kernels true or use --bf16 true")


def _peek_config_flag(argv: list[str]) -> str | None:
    peek = RunConfigParser([], add_help=False)
    peek.add_argument("--config", default=None)
    known, _ = peek.parse_known_args(argv)
    return known.config


POSITION_LIMIT_KEYS = ("max_position_embeddings", "n_positions")


def position_limit(model_config: Any) -> tuple[str, int] | None:
    """The model's longest sequence as (config key, value), or None when its config sets no limit.

    Example:
        >>> from transformers import GPTNeoConfig
        >>> position_limit(GPTNeoConfig(max_position_embeddings=64))
        ('max_position_embeddings', 64)
    """
    for key in POSITION_LIMIT_KEYS:
        value = getattr(model_config, key, None)
        if isinstance(value, int) and value > 0:
            return key, value
    return None


def check_lengths_against_model(cfg: RunConfig, model_config: Any, tokenizer: Any) -> None:
    """The longest training and generation sequences fit the model's positions; else a ConfigError before
    training, instead of an IndexError in the position embedding (for --max_new_tokens, after training).

    Upper bounds: prompt = template tokens + --max_source_length + --num_virtual_tokens; training
    sequence = prompt + --max_target_length; generation = prompt + --max_new_tokens.

    Example (model with max_position_embeddings 64, template of 14 tokens):
        >>> check_lengths_against_model(cfg, model_config, tokenizer)
        Traceback (most recent call last):
        common.cli.ConfigError: --max_source_length 512 + --max_target_length 128 + 14 prompt template tokens
        = 654 positions in a training sequence, beyond the model's max_position_embeddings 64; lower
        --max_source_length or --max_target_length
    """
    limit = position_limit(model_config)
    if limit is None:
        return
    prompt = [("--max_source_length", cfg.data.max_source_length),
              ("--num_virtual_tokens", getattr(cfg.method, "num_virtual_tokens", 0)),
              ("prompt template tokens", _template_tokens(cfg, tokenizer))]
    if trains(cfg.method_name):
        _check_positions([prompt[0], ("--max_target_length", cfg.data.max_target_length), *prompt[1:]],
                         "a training sequence", limit)
    _check_positions([prompt[0], ("--max_new_tokens", cfg.generation.max_new_tokens), *prompt[1:]],
                     "a generated sequence", limit)


def _template_tokens(cfg: RunConfig, tokenizer: Any) -> int:
    from .tokenization import make_prompt_parts  # imported here: tokenization imports this module

    try:
        parts = make_prompt_parts(tokenizer, cfg.data)
    except ValueError as error:  # --use_chat_template with a tokenizer that has none
        raise ConfigError(str(error)) from error
    return len(parts.prefix_ids) + len(parts.suffix_ids)


def _check_positions(terms: list[tuple[str, int]], what: str, limit: tuple[str, int]) -> None:
    total = sum(count for _, count in terms)
    if total <= limit[1]:
        return
    shown = [(f"--{name[2:]} {count}" if name.startswith("--") else f"{count} {name}") for name, count in terms
             if count]
    flags = " or ".join(name for name, count in terms if name.startswith("--") and count)
    raise ConfigError(f"{' + '.join(shown)} = {total} positions in {what}, beyond the model's {limit[0]} "
                      f"{limit[1]}; lower {flags}")
