"""The method registry: one entry per adaptation method, read by everything that lists methods.

An entry names the method, its argument dataclass and per-method defaults, its builder, the script
that trains it, its title for cards and tables, and whether it saves a PEFT adapter (loaded with
`PeftModel.from_pretrained`) or the trained tensors (loaded into the base model). Config parsing, the
Hub card, the demo, the benchmark and the tests' parametrization read it, so adding a method is one
`register(Method(...))` in a module of its own plus its script (docs/architecture.md).

Example:
    >>> get_method("lora").title, get_method("lora").defaults["learning_rate"]
    ('LoRA', 0.0002)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from ..core.cli import ConfigError


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
    """The registered methods, in registration order (lora, soft_prompt, finetune, then any others)."""
    return list(REGISTRY)
