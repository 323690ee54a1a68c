"""LoRA: rank-r adapters on the chosen linear layers (PEFT LoraConfig); the base model stays frozen.

Two variants are recorded under their own names (run.json, tables, cards): `--use_dora` (DoRA, Liu et al.
2024: each adapted weight split into a learned magnitude per output and a LoRA-updated direction) is `dora`,
`--use_rslora` (rank-stabilised LoRA, Kalajdzievski 2023: the update scaled by alpha / sqrt(r) instead of
alpha / r) is `rslora`.

Example (the tests' tiny random GPT-Neo):
    >>> from common.methods import count_parameters, get_method
    >>> from common.models.tiny import build_tiny_model, build_tokenizer
    >>> model = get_method("lora").build(build_tiny_model(len(build_tokenizer())), LoraArguments(r=4), None)
    >>> count_parameters(model)
    ParameterCounts(trainable=9216, total=207232, tied_lm_head=False)
    >>> sorted({name.split(".")[-2] for name, _ in model.named_modules() if name.endswith("lora_A")})
    ['c_fc', 'c_proj', 'k_proj', 'out_proj', 'q_proj', 'v_proj']
    >>> dora_args = LoraArguments(r=4, use_dora=True)
    >>> dora = get_method("lora").build(build_tiny_model(len(build_tokenizer())), dora_args, None)
    >>> count_parameters(dora).trainable - 9216      # plus a magnitude per output: 2 x (4 x 64 + 256 + 64)
    1152
"""

from __future__ import annotations

from dataclasses import dataclass, field

from peft import LoraConfig, TaskType, get_peft_model

from ..core.cli import require, require_at_least
from .registry import Method, Variant, register


@dataclass(frozen=True)
class LoraArguments:
    """LoRA adapters (PEFT LoraConfig)."""

    r: int = field(default=16, metadata={"help": "LoRA rank."})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA scaling numerator (scale = alpha / r)."})
    lora_dropout: float = field(default=0.0, metadata={"help": "Dropout on the LoRA input (PEFT's default 0: on 2 CPU "
                                "cores 0.05 costs a fifth of a GPT-Neo-125M step, benchmarks/profile_step.py)."})
    target_modules: list[str] = field(
        default_factory=lambda: ["all-linear"],
        metadata={"help": "Module names to adapt; 'all-linear' adapts every linear layer but the LM head, which "
                  "suits GPT-Neo (q/k/v/out_proj, c_fc, c_proj) and Llama-style models alike."},
    )
    use_dora: bool = field(default=False, metadata={"help": "DoRA: also learn a magnitude per output of each "
                           "adapted layer (out_features more parameters per layer), the LoRA update steering only "
                           "the weight's direction. Recorded as method 'dora'."})
    use_rslora: bool = field(default=False, metadata={"help": "Rank-stabilised LoRA: scale the update by lora_alpha "
                             "/ sqrt(r) instead of lora_alpha / r (8 instead of 2 at r 16, alpha 32: the same "
                             "learning rate moves the weights further). Same parameters as LoRA. Recorded as "
                             "method 'rslora'."})
    merge_and_export: str | None = field(default=None, metadata={"help": "After training, also write a "
                                         "standalone merged model (base + adapter) to this folder."})

    def __post_init__(self):
        require_at_least(self, 1, "r", "lora_alpha")
        require(0 <= self.lora_dropout < 1, "lora_dropout", self.lora_dropout, "must be in [0, 1)")
        require(len(self.target_modules) > 0, "target_modules", self.target_modules,
                "name at least one module, or 'all-linear'")
        require(not (self.use_dora and self.use_rslora), "use_rslora", self.use_rslora,
                "cannot be combined with --use_dora: pick one of --use_dora (dora) and --use_rslora (rslora)")


def build_lora(model, args: LoraArguments, model_args=None):
    targets = args.target_modules[0] if list(args.target_modules) == ["all-linear"] else list(args.target_modules)
    config = LoraConfig(task_type=TaskType.CAUSAL_LM, r=args.r, lora_alpha=args.lora_alpha,
                        lora_dropout=args.lora_dropout, target_modules=targets, use_dora=args.use_dora,
                        use_rslora=args.use_rslora)
    return get_peft_model(model, config)


register(Method(name="lora", title="LoRA", arguments=LoraArguments, build=build_lora, script="train_lora.py",
                defaults={"num_train_epochs": 6, "learning_rate": 2e-4, "output_dir": "runs/lora"},
                variants=(Variant("dora", "DoRA", {"use_dora": True}),
                          Variant("rslora", "rsLoRA", {"use_rslora": True}))))
