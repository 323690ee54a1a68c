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

`matmul_peak` is the throughput of `torch.mm` at a given shape, measured in the same run, so that FLOP/s can
be read as a fraction of what this machine's matmuls reach. On a CPU it is the fastest of a few single calls
timed between synchronizes; on a GPU a single call at a small shape mostly times the launch, so
`peak_shape` asks for 8192^3 there and the mean of 50 back-to-back calls is timed with CUDA events.
`dense_bf16_flop_per_s` gives the card's data-sheet figure as well, so that MFU can also be read against the
vendor's spec rather than only against what this run's matmuls reached.
"""

from __future__ import annotations

import os
import re
import time

import torch

from common.methods import num_virtual_tokens, transformer_blocks
from common.data.prompts import IGNORE_INDEX

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


def peak_shape(device: str) -> dict:
    """The matmul that measures a device's peak: `m`, `k`, `n` and the timed `repeats`.

    CUDA: 8192^3 (large enough to fill an H100's tensor cores) timed over 50 back-to-back calls; a CPU keeps
    2048^3, the fastest of 5 calls (about a second on 2 cores, fp32).

    Example:
        >>> peak_shape("cuda:0"), peak_shape("cpu")
        ({'m': 8192, 'k': 8192, 'n': 8192, 'repeats': 50}, {'m': 2048, 'k': 2048, 'n': 2048, 'repeats': 5})
    """
    if device.startswith("cuda"):
        return {"m": 8192, "k": 8192, "n": 8192, "repeats": 50}
    return {"m": 2048, "k": 2048, "n": 2048, "repeats": 5}


def matmul_peak(device: str, dtype: str, m: int, k: int, n: int, repeats: int = 5) -> dict:
    """Dense matmul throughput of (m x k) @ (k x n) in `dtype` ("fp32", "bf16" or "fp16"): 2*m*k*n FLOPs over
    the time of one call, after one untimed call. CUDA: the mean of `repeats` back-to-back calls between two
    CUDA events (no host round trip inside the timing); elsewhere the fastest of `repeats` single calls.
    Returns the shape, repeats, the timing used, FLOP/s and the load average."""
    a = torch.randn(m, k, device=device, dtype=DTYPES[dtype])
    b = torch.randn(k, n, device=device, dtype=DTYPES[dtype])
    if device.startswith("cuda"):
        seconds, timing = mean_back_to_back_cuda(a, b, repeats), "mean of back-to-back calls, CUDA events"
    else:
        seconds, timing = fastest_single_call(device, a, b, repeats), "fastest single call, perf_counter"
    return {"shape": [m, k, n], "repeats": repeats, "timing": timing, "flop_per_s": 2 * m * k * n / seconds,
            "load_average": os.getloadavg()[0]}


def fastest_single_call(device: str, a: torch.Tensor, b: torch.Tensor, repeats: int) -> float:
    """Seconds of the fastest of `repeats` calls of a @ b, each between synchronizes (after one untimed)."""
    best = float("inf")
    for _ in range(repeats + 1):
        synchronize(device)
        start = time.perf_counter()
        torch.mm(a, b)
        synchronize(device)
        best = min(best, time.perf_counter() - start)
    return best


def mean_back_to_back_cuda(a: torch.Tensor, b: torch.Tensor, repeats: int) -> float:
    """Seconds per call of a @ b over `repeats` calls queued back to back into one output, timed by CUDA
    events recorded on the stream before and after them (after one untimed call)."""
    with torch.cuda.device(a.device):  # the events are recorded on the current stream of the tensors' device
        out = torch.mm(a, b)
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        torch.cuda.synchronize()
        start.record()
        for _ in range(repeats):
            torch.mm(a, b, out=out)
        end.record()
        end.synchronize()
    return start.elapsed_time(end) / 1000 / repeats


# Dense (no structured sparsity) BF16 tensor-core TFLOP/s from NVIDIA's data sheets. The sheets print the
# figure with 2:4 sparsity (marked *), so each entry is half of it:
#   H100 Tensor Core GPU data sheet: SXM 1,979* -> 989; PCIe 1,513* -> 756.
#   H200 Tensor Core GPU data sheet: H200 SXM 1,979* -> 989.
#   A100 Tensor Core GPU data sheet: 312 dense (624*), SXM4 and PCIe, 40 and 80 GB alike.
#   L4 Tensor Core GPU data sheet: 242* -> 121.  A10 Tensor Core GPU data sheet: 125 dense (250*).
# Matched as whole words in torch.cuda.get_device_name() (e.g. "NVIDIA H100 80GB HBM3" for the SXM card,
# "NVIDIA H100 PCIe"), first match wins. The NVL cards (lower clocks) and the AWS-only A10G (no NVIDIA data
# sheet) are left unknown rather than given a neighbour's figure; so is every card not listed.
DENSE_BF16_TFLOPS = (
    ("H100 NVL", None), ("H100 PCIe", 756), ("H100", 989),
    ("H200 NVL", None), ("H200", 989),
    ("A100", 312), ("L4", 121), ("A10", 125),
)


def dense_bf16_flop_per_s(device_name: str) -> float | None:
    """The card's dense bf16 tensor-core FLOP/s from its data sheet (`DENSE_BF16_TFLOPS`), None when unknown.

    Example:
        >>> dense_bf16_flop_per_s("NVIDIA H100 80GB HBM3"), dense_bf16_flop_per_s("NVIDIA L40S")
        (989000000000000.0, None)
    """
    for card, tflops in DENSE_BF16_TFLOPS:
        if re.search(rf"\b{re.escape(card)}\b", device_name, flags=re.IGNORECASE):
            return None if tflops is None else tflops * 1e12
    return None


def synchronize(device: str) -> None:
    """Wait for queued CUDA work, so that a timer read afterwards covers it (nothing on a CPU)."""
    if device.startswith("cuda"):
        torch.cuda.synchronize()
