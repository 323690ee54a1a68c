"""The benchmark's FLOP model: what a training step must compute, what it actually computes, and the matmul peak.

Counted FLOPs (`FlopCounter.step`) are those the method must do for the batch's non-pad tokens, the same
count for ours and naive, so FLOP/s compares the two paths on equal work:

- every nn.Linear (base, LoRA A/B, LM head) with `in` inputs, `out` outputs and R rows costs
      2 * in * out * R                 forward
    + 2 * in * out * R                 if its input depends on a trainable tensor (input gradient)
    + 2 * in * out * R                 if its weight trains (weight gradient).
  R is a row's non-pad tokens plus the soft prompt's virtual tokens for the body, and the labelled
  positions only for the LM head. Which passes apply is read from `requires_grad` in forward hooks on a
  one-row probe, so LoRA counts input gradients through every block but weight gradients only for its
  A/B matrices, and a block-finetune counts forward only for the frozen blocks below the trained ones.
- attention (QK^T and A.V) in each layer, for a sequence of length L, costs 4 * d * P forward, d the
  attention width (heads x head size) and P = causal_pairs(L, window) the query-key pairs it scores
  (GPT-Neo's local layers see 256 keys); x3 when the block's output needs a gradient.
- norms, activations, softmax, dropout, embeddings and the optimizer are not counted.

Executed FLOPs (`FlopCounter.executed`) are what a step runs as computed: every row at the batch's padded
width, full width x width attention scores (eager and SDPA score every pair, masked or not) and the LM head
at every position (the naive loss) or at the labelled ones only (ours). Their naive / ours ratio is the
training speed-up that padding and the LM head alone can buy at equal FLOP/s.

`matmul_peak` is the best throughput of `torch.mm` at a given shape, measured in the same run, so that
FLOP/s can be read as a fraction of what this machine's matmuls reach.
"""

from __future__ import annotations

import os
import time

import torch

from common.methods import num_virtual_tokens, transformer_blocks
from common.tokenization import IGNORE_INDEX

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


class FlopCounter:
    """FLOPs per training step of one model (formulas in the module docstring).

    Args:
        model: the model as the method built it (PEFT wrapper or plain), trainable tensors already marked.
        probe_batch: a batch whose first row (8 tokens at most) runs once through the model with hooks.
    Attributes:
        body, head: FLOPs per row of the body's linears (all blocks) and of the LM head, passes included.
        block_grads: per block, whether its output needs a gradient (its attention then costs x3).
        windows: per layer, the keys a query sees at most (None: all earlier ones).
        attn_dim: heads x head size.  virtual: soft-prompt tokens added to every row.
    Example (the tiny GPT-Neo frozen: 2 blocks of 4 64x64 + 2 64x256 linears, LM head 64 x 512):
        >>> counter = FlopCounter(frozen_model, batch)
        >>> counter.body, counter.head, counter.block_grads
        (196608, 65536, [False, False])
    """

    def __init__(self, model, probe_batch: dict):
        self.virtual = num_virtual_tokens(model)
        config = model.config
        self.hidden = config.hidden_size
        heads = getattr(config, "num_attention_heads", None) or config.num_heads
        self.attn_dim = heads * (getattr(config, "head_dim", None) or self.hidden // heads)
        layers = getattr(config, "attention_layers", None)  # GPT-Neo: "global" / "local" per layer
        self.windows = [config.window_size if kind == "local" else None for kind in layers] if layers else \
            [getattr(config, "sliding_window", None)] * config.num_hidden_layers
        self.body, self.head, self.block_grads = self._probe(model, probe_batch)

    def _probe(self, model, batch):
        """Per-row FLOPs of the body and of the LM head, and which blocks pass a gradient, read from hooks."""
        head = model.get_output_embeddings()
        uses, grads, hooks = {"body": 0, "head": 0}, [], []

        def on_linear(module, inputs, output):
            passes = 1 + inputs[0].requires_grad + module.weight.requires_grad
            uses["head" if module is head else "body"] += 2 * module.in_features * module.out_features * passes

        def on_block(module, inputs, output):
            grads.append((output[0] if isinstance(output, tuple) else output).requires_grad)

        hooks += [m.register_forward_hook(on_linear) for m in model.modules() if isinstance(m, torch.nn.Linear)]
        base = model.get_base_model() if hasattr(model, "get_base_model") else model  # PEFT wraps the model
        hooks += [b.register_forward_hook(on_block) for b in transformer_blocks(base)]
        model.train()
        try:
            with torch.enable_grad():
                model(input_ids=batch["input_ids"][:1, :8], attention_mask=batch["attention_mask"][:1, :8],
                      logits_to_keep=1)
        finally:
            for hook in hooks:
                hook.remove()
        return uses["body"], uses["head"], grads

    def step(self, batch: dict) -> float:
        """FLOPs the method must do for this batch: body x (non-pad + virtual tokens), head x labelled
        positions, attention over each row's own causal pairs."""
        lengths = (batch["attention_mask"].sum(1) + self.virtual).tolist()
        labelled = int((batch["labels"][:, 1:] != IGNORE_INDEX).sum())
        attention = sum(4 * self.attn_dim * causal_pairs(n, window) * (3 if grad else 1)
                        for n in lengths for window, grad in zip(self.windows, self.block_grads))
        return self.body * sum(lengths) + self.head * labelled + attention

    def executed(self, batch: dict, head_everywhere: bool) -> float:
        """FLOPs a step runs as computed: every row at the batch's padded width, the full width x width
        attention scores (eager/SDPA score every pair, masked or not), and the LM head at every position
        (`head_everywhere`, the naive loss) or at the labelled ones only (ours)."""
        rows, width = batch["input_ids"].shape
        width += self.virtual
        labelled = int((batch["labels"][:, 1:] != IGNORE_INDEX).sum())
        attention = rows * sum(4 * self.attn_dim * width * width * (3 if grad else 1) for grad in self.block_grads)
        return self.body * rows * width + self.head * (rows * width if head_everywhere else labelled) + attention


def causal_pairs(length: int, window: int | None) -> int:
    """Query-key pairs of causal attention over `length` tokens, each query seeing at most `window` keys
    (itself included): sum over i < length of min(i + 1, window).

    Example:
        >>> causal_pairs(4, None), causal_pairs(4, 2)   # 1+2+3+4; 1+2+2+2
        (10, 7)
    """
    if window is None or window >= length:
        return length * (length + 1) // 2
    return window * (window + 1) // 2 + (length - window) * window


def matmul_peak(device: str, dtype: str, m: int, k: int, n: int, repeats: int = 5) -> dict:
    """Best dense matmul throughput of (m x k) @ (k x n) in `dtype` ("fp32", "bf16" or "fp16"): 2*m*k*n FLOPs
    over the fastest of `repeats` timed calls (after one untimed). Returns the shape, FLOP/s and the load average."""
    a = torch.randn(m, k, device=device, dtype=DTYPES[dtype])
    b = torch.randn(k, n, device=device, dtype=DTYPES[dtype])
    best = float("inf")
    for _ in range(repeats + 1):
        synchronize(device)
        start = time.perf_counter()
        torch.mm(a, b)
        synchronize(device)
        best = min(best, time.perf_counter() - start)
    return {"shape": [m, k, n], "flop_per_s": 2 * m * k * n / best, "load_average": os.getloadavg()[0]}


def synchronize(device: str) -> None:
    """Wait for queued CUDA work, so that a timer read afterwards covers it (nothing on a CPU)."""
    if device.startswith("cuda"):
        torch.cuda.synchronize()
