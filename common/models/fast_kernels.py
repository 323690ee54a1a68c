"""Faster kernels for operations some models' own code computes step by step: same formulas, fewer passes.

GPT-Neo (transformers 5.x) offers only eager attention (and FlashAttention-2, which needs a CUDA package):
it materializes the (batch, heads, length, length) scores, masks them twice, softmaxes and multiplies, each
a pass over memory, forward and backward. Its `gelu_new` activation is eight elementwise operations.
`use_fast_kernels` swaps, in place, the class of

- every `GPTNeoSelfAttention` for `SDPASelfAttention`: the same scores (GPT-Neo does not scale them, so
  `scale=1`), the same causal and local-window mask and padding mask, through
  `torch.nn.functional.scaled_dot_product_attention` (a fused kernel on CPU and GPU);
- every `NewGELUActivation` for `TanhGELU`: the same tanh formula through torch's fused
  `gelu(approximate="tanh")`.

Weights, state dicts and saved files are unchanged; outputs agree to float rounding (tests/test_fast_kernels.py:
logits, loss, gradients and greedy tokens against the eager classes). Measured on GPT-Neo-125M's shape, one
training step of 4 x 630 tokens on 2 CPU cores: attention forward+backward 0.37 -> 0.13 s per layer, the MLP
activation 0.074 -> 0.034 s per block (benchmarks/profile_step.py). GPT-Neo does not scale its scores, which
overflow fp16 on real weights; its own attention casts query and key to fp32 for that, but under fp16
autocast the matmul runs in fp16 anyway (inf scores, NaN loss). Here fp16 attention is computed in fp32 with
autocast off, then cast back. Attention weights are not returned (output_attentions gives None).
`--fast_kernels false` keeps the model's own classes (refused with --fp16 on GPT-Neo: `config/parsing.py`).

Example (the tests' tiny random GPT-Neo, 2 blocks; GPT-Neo-125M has 12 of each):
    >>> from common.models.tiny import build_tiny_model, build_tokenizer
    >>> model = build_tiny_model(len(build_tokenizer()))
    >>> batch = {"input_ids": torch.tensor([[5, 6, 7, 8]]), "labels": torch.tensor([[5, 6, 7, 8]])}
    >>> eager_loss = model(**batch).loss
    >>> use_fast_kernels(model)
    {'SDPASelfAttention': 2, 'TanhGELU': 2}
    >>> torch.allclose(model(**batch).loss, eager_loss)            # equal to float rounding
    True
    >>> with eager_kernels(model):      # the model's own classes for a while (the benchmark's stock path)
    ...     torch.equal(model(**batch).loss, eager_loss)
    True
    >>> type(model.transformer.h[0].attn.attention).__name__       # the fast class again after the block
    'SDPASelfAttention'
"""

from __future__ import annotations

import contextlib
from collections import Counter

import torch
import torch.nn.functional as F
from torch import nn
from transformers.activations import NewGELUActivation
from transformers.models.gpt_neo.modeling_gpt_neo import GPTNeoSelfAttention


class SDPASelfAttention(GPTNeoSelfAttention):
    """GPT-Neo self-attention through scaled_dot_product_attention (state and weights as the parent's)."""

    def _attn(self, query, key, value, attention_mask=None):
        """query (batch, heads, q, head_dim), key/value (batch, heads, k, head_dim) -> ((batch, heads, q,
        head_dim), None). The mask is the parent's: its causal/local `bias` buffer, then the additive padding
        mask."""
        if query.dtype == torch.float16:  # unscaled scores overflow fp16: compute in fp32, autocast off
            with torch.autocast(query.device.type, enabled=False):
                output, _ = self._attn(query.float(), key.float(), value.float(),
                                       None if attention_mask is None else attention_mask.float())
            return output.to(value.dtype), None
        query_length, key_length = query.size(-2), key.size(-2)
        allowed = self.bias[:, :, key_length - query_length:key_length, :key_length]
        if attention_mask is None:
            mask = allowed
        else:
            mask = padded_mask(allowed, attention_mask).to(query.dtype)
        dropout = self.attn_dropout.p if self.training else 0.0
        output = F.scaled_dot_product_attention(query, key, value.to(query.dtype), attn_mask=mask,
                                                dropout_p=dropout, scale=1.0)
        return output.to(value.dtype), None


def padded_mask(allowed: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """The additive mask scaled_dot_product_attention gets: `attention_mask` (batch, 1, q, k; 0 or the dtype's
    minimum) where the causal/local `allowed` (1, 1, q, k; bool) lets a key through, -inf elsewhere.

    A query row whose every allowed key is padding (left padding) keeps its allowed keys at 0 instead: with
    all scores at the dtype's minimum the fused kernel's log-sum-exp loses the scores' differences and its
    backward pass is wrong. Such a row's output is then a softmax over its earlier (padded) keys, where the
    eager class averages them uniformly; no real token attends to a padded one, so only the padded positions'
    own outputs differ.

    Example (one row padded at position 0):
        >>> allowed = torch.tril(torch.ones(2, 2, dtype=torch.bool))[None, None]
        >>> low = torch.finfo(torch.float32).min
        >>> mask = padded_mask(allowed, torch.tensor([[[[low, low], [low, 0.0]]]]))
        >>> mask[0, 0, 0].tolist(), mask[0, 0, 1].tolist() == [low, 0.0]
        ([0.0, -inf], True)
    """
    mask = torch.where(allowed, attention_mask, float("-inf"))
    low = torch.finfo(attention_mask.dtype).min
    only_padding = (mask <= low).all(dim=-1, keepdim=True)
    return torch.where(only_padding & allowed, 0.0, mask)


class TanhGELU(NewGELUActivation):
    """NewGELUActivation's formula, 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), in torch's fused kernel."""

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return F.gelu(input, approximate="tanh")


FAST_CLASSES = {GPTNeoSelfAttention: SDPASelfAttention, NewGELUActivation: TanhGELU}
EAGER_CLASSES = {fast: eager for eager, fast in FAST_CLASSES.items()}


def use_fast_kernels(model: nn.Module) -> dict[str, int]:
    """Swap every module whose exact class has a faster equivalent; returns {new class name: count}.

    Subclasses (e.g. GPT-Neo's FlashAttention-2 class) are left alone. Calling it twice changes nothing more.
    """
    return _swap(model, FAST_CLASSES)


@contextlib.contextmanager
def eager_kernels(model: nn.Module):
    """The model's own classes inside the block, the fast ones again after it (where they were)."""
    swapped = [m for m in model.modules() if type(m) in EAGER_CLASSES]
    for module in swapped:
        module.__class__ = EAGER_CLASSES[type(module)]
    try:
        yield model
    finally:
        for module in swapped:
            module.__class__ = FAST_CLASSES[type(module)]


def _swap(model: nn.Module, classes: dict) -> dict[str, int]:
    counts = Counter()
    for module in model.modules():
        new = classes.get(type(module))
        if new is not None:
            module.__class__ = new
            counts[new.__name__] += 1
    return dict(counts)
