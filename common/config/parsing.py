"""Typed run configuration, parsed once from an optional YAML file plus CLI overrides.

Every script builds the same parser from the same dataclasses; only the method dataclass and the
per-method defaults differ. Parsed dataclasses are never reassigned afterwards: code that needs a
derived value computes it from the config instead.

Every user mistake (a flag or YAML value of the wrong type or out of range, a setting that trains
nothing, a missing file) is a `ConfigError` raised here, before any model or data loads; its message
names the flag, the value and what is accepted. The checks that need the model's config come once it is
read: `check_precision_against_model` here, the sequence lengths in `data.lengths`.

Example:
    >>> cfg = parse_run_config("lora", ["--config", "configs/tiny/lora.yaml", "--num_train_epochs", "1"])
    >>> cfg.training.num_train_epochs, cfg.method.r
    (1.0, 4)
    >>> parse_run_config("lora", ["--learning_rate", "0"])
    Traceback (most recent call last):
    common.core.cli.ConfigError: --learning_rate 0.0: must be > 0
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import sys
import types
import typing
from typing import Any

import yaml
from transformers import HfArgumentParser
from transformers.hf_argparser import string_to_bool

from ..core.cli import ConfigError, OneLineUsageErrors, require, require_at_least
from .arguments import (DataArguments, GenerationArguments, ModelArguments, RunConfig, SummarizationTrainingArguments,
                        method_arguments, method_defaults, trains)

NONE_WORDS = ("", "none", "null")  # CLI spellings of "no value" for optional numbers and booleans


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
        common.core.cli.ConfigError: --config p.yaml: r: 2.5 is not an integer
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
    if trains(method_name) and hasattr(method, "check_training_arguments"):
        method.check_training_arguments(training)  # a method's own limits on the training flags (prefix tuning)
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
        common.core.cli.ConfigError: --fp16 with --fast_kernels false: GPT-Neo's own attention overflows fp16 ...
    """
    own_attention = not cfg.model.fast_kernels and cfg.model.attn_implementation in (None, "eager")
    gpt_neo = getattr(model_config, "model_type", "") == "gpt_neo"
    if own_attention and gpt_neo and cfg.training.mixed_precision == "fp16":
        raise ConfigError("--fp16 with --fast_kernels false: GPT-Neo's own attention overflows fp16 (unscaled scores, "
                          "NaN loss); keep --fast_kernels true or use --bf16 true")


def _peek_config_flag(argv: list[str]) -> str | None:
    peek = RunConfigParser([], add_help=False)
    peek.add_argument("--config", default=None)
    known, _ = peek.parse_known_args(argv)
    return known.config


