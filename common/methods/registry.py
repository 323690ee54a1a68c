"""The method registry: one entry per adaptation method, read by everything that lists methods.

An entry names the method, its argument dataclass and per-method defaults, its builder, the script
that trains it, its title for cards and tables, and whether it saves a PEFT adapter (loaded with
`PeftModel.from_pretrained`) or the trained tensors (loaded into the base model). Config parsing, the
Hub card, the demo, the benchmark and the tests' parametrization read it, so adding a method is one
`register(Method(...))` in a module of its own plus its script (docs/architecture.md).

An entry may also name variants: settings of its arguments that are recorded under a name of their own
(LoRA with `--use_dora` is `dora`), in run.json, the comparison table and the Hub card alike.
`recorded_method_name` is the one place that name comes from.

Example:
    >>> get_method("lora").title, get_method("lora").defaults["learning_rate"]
    ('LoRA', 0.0002)
    >>> from common.methods import LoraArguments
    >>> recorded_method_name("lora", LoraArguments()), recorded_method_name("lora", LoraArguments(use_dora=True))
    ('lora', 'dora')
    >>> method_for("dora").name, method_title("dora"), variant_settings("dora")
    ('lora', 'DoRA', {'use_dora': True})
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from ..core.cli import ConfigError


@dataclass(frozen=True)
class Variant:
    """A setting of a method's arguments recorded under its own name (run.json, tables, cards).

    `settings`: argument values that together select the variant, e.g. {"use_dora": True}.
    """

    name: str
    title: str
    settings: dict[str, Any]

    def matches(self, method_args) -> bool:
        return all(getattr(method_args, key) == value for key, value in self.settings.items())


@dataclass(frozen=True)
class Method:
    """One adaptation method.

    `build(model, args, model_args)` freezes or wraps a freshly loaded base model and returns the model
    to train; `args` is an instance of `arguments`, `model_args` the parsed ModelArguments.
    """

    name: str
    title: str
    arguments: type
    build: Callable[[Any, Any, Any], Any]
    script: str
    defaults: dict[str, Any] = field(default_factory=dict)
    peft_adapter: bool = True
    variants: tuple[Variant, ...] = ()


REGISTRY: dict[str, Method] = {}


def register(method: Method) -> Method:
    """Add `method` to the registry (again under the same name replaces it, for tests)."""
    REGISTRY[method.name] = method
    return method


def get_method(name: str) -> Method:
    if name not in REGISTRY:
        raise ConfigError(f"unknown method '{name}'; registered: {', '.join(REGISTRY)}")
    return REGISTRY[name]


def method_names() -> list[str]:
    """The registered methods, in registration order (lora, soft_prompt, finetune, ia3, prefix_tuning, then any
    others)."""
    return list(REGISTRY)


def recorded_names() -> list[str]:
    """Every name a run can be recorded under: each method, then its variants, in registration order."""
    return [name for method in REGISTRY.values() for name in (method.name, *(v.name for v in method.variants))]


def recorded_method_name(method: str, method_args) -> str:
    """The name run.json, the comparison table and the Hub card record for `method` run with `method_args`:
    its variant's name where the arguments select one (LoRA with use_dora: 'dora'), else the method's own.
    A name outside the registry (the generation-only 'zero_shot') is returned as is."""
    entry = REGISTRY.get(method)
    if entry is None:
        return method
    return next((variant.name for variant in entry.variants if variant.matches(method_args)), method)


def _find(recorded: str) -> tuple[Method, Variant | None]:
    for method in REGISTRY.values():
        if method.name == recorded:
            return method, None
        for variant in method.variants:
            if variant.name == recorded:
                return method, variant
    raise ConfigError(f"unknown method '{recorded}'; registered: {', '.join(recorded_names())}")


def method_for(recorded: str) -> Method:
    """The registry entry that a recorded name (a method or one of its variants) belongs to."""
    return _find(recorded)[0]


def method_title(recorded: str) -> str:
    """The title of a recorded name, for cards and tables ('DoRA', 'full fine-tuning')."""
    method, variant = _find(recorded)
    return variant.title if variant else method.title


def variant_settings(recorded: str) -> dict[str, Any]:
    """The argument values that select a recorded name ({} for a method's own name)."""
    variant = _find(recorded)[1]
    return dict(variant.settings) if variant else {}
