"""A KV cache that writes each decoding step in place instead of re-concatenating the whole cache.

transformers' `DynamicLayer.update` runs `torch.cat([keys, new], dim=-2)` at every decoding step, so
each step copies the full cache of every layer: for GPT-Neo-125M, 8 rows and 500 cached positions
that is 12 layers x 2 x 8 x 500 x 768 x 4 bytes = 295 MB per generated token, which on a 2-core CPU
costs about as much as the step's matmuls. `GrowingLayer` keeps one buffer sized for the prompt plus
`reserve` new tokens, writes new states into it and returns views of the filled part: attention sees
the very same keys and values (same length, same order), so generations are unchanged, including
GPT-Neo's local-attention layers, whose window is applied by the model's mask, not by the cache.

Layers of other kinds (sliding-window, linear attention) keep transformers' own classes.

Example (the tests' tiny random GPT-Neo; a 12-token prompt):
    >>> from common.models.tiny import build_tiny_model, build_tokenizer
    >>> tokenizer = build_tokenizer()
    >>> model = build_tiny_model(len(tokenizer))
    >>> ids = torch.tensor([tokenizer("Rain fell on Paris.")["input_ids"]])
    >>> greedy = dict(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=4, do_sample=False,
    ...               pad_token_id=tokenizer.eos_token_id)
    >>> cache = growing_cache(model.config, reserve=4)
    >>> torch.equal(model.generate(**greedy, cache=cache), model.generate(**greedy))    # the same tokens
    True
    >>> cache.get_seq_length()     # the prompt and the 3 new tokens fed back (the 4th never is)
    15
"""

from __future__ import annotations

import torch
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer


class GrowingLayer(DynamicLayer):
    """A `DynamicLayer` backed by a preallocated buffer, (batch, heads, capacity, head_dim).

    `keys`/`values` are always views `buffer[:, :, :length]`. Operations inherited from `DynamicLayer`
    that replace them with new tensors (beam reordering, batch selection, cropping) are detected on the
    next `update`, which then re-seeds the buffer from the replaced tensors.

    Example:
        >>> layer = GrowingLayer(reserve=2)
        >>> layer.update(torch.ones(1, 1, 3, 4), torch.ones(1, 1, 3, 4))[0].shape
        torch.Size([1, 1, 3, 4])
        >>> layer.update(torch.ones(1, 1, 1, 4), torch.ones(1, 1, 1, 4))[0].shape   # written in place
        torch.Size([1, 1, 4, 4])
    """

    def __init__(self, reserve: int = 128):
        super().__init__()
        self.reserve = reserve
        self._key_buffer: torch.Tensor | None = None
        self._value_buffer: torch.Tensor | None = None

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """Append (batch, heads, new, head_dim) states; returns views of all cached states."""
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        length, new = self.get_seq_length(), key_states.shape[-2]
        if not self._holds_views() or length + new > self._key_buffer.shape[-2]:
            self._move_to_new_buffers(length + new + self.reserve, key_states, value_states)
        self._key_buffer[:, :, length:length + new] = key_states
        self._value_buffer[:, :, length:length + new] = value_states
        self.keys = self._key_buffer[:, :, :length + new]
        self.values = self._value_buffer[:, :, :length + new]
        return self.keys, self.values

    def _holds_views(self) -> bool:
        """True when `keys` is still the view of the buffer that the last `update` left."""
        return (self._key_buffer is not None and self.keys.numel() > 0
                and self.keys.data_ptr() == self._key_buffer.data_ptr()
                and self.keys.stride() == self._key_buffer.stride()
                and self.keys.shape[:2] == self._key_buffer.shape[:2])

    def _move_to_new_buffers(self, capacity: int, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        """Buffers with `capacity` positions, shaped like the incoming states, holding the cached ones."""
        batch, heads, _, key_dim = key_states.shape
        key_buffer = key_states.new_empty(batch, heads, capacity, key_dim)
        value_buffer = value_states.new_empty(batch, heads, capacity, value_states.shape[-1])
        length = self.get_seq_length()
        if length:
            key_buffer[:, :, :length] = self.keys
            value_buffer[:, :, :length] = self.values
        self._key_buffer, self._value_buffer = key_buffer, value_buffer

    def reset(self) -> None:
        self._key_buffer = self._value_buffer = None
        super().reset()


def growing_cache(config, reserve: int) -> DynamicCache:
    """A `DynamicCache` for `config` whose full-attention layers are `GrowingLayer`s with room for `reserve`.

    Example (GPT-Neo's global and local layers alike; Gemma 2's sliding-window layers keep their class):
        >>> from transformers import Gemma2Config, GPTNeoConfig
        >>> neo = GPTNeoConfig(num_layers=2, attention_types=[[["global", "local"], 1]])
        >>> [type(layer).__name__ for layer in growing_cache(neo, reserve=96).layers]
        ['GrowingLayer', 'GrowingLayer']
        >>> [type(layer).__name__ for layer in growing_cache(Gemma2Config(num_hidden_layers=2), reserve=96).layers]
        ['DynamicSlidingWindowLayer', 'GrowingLayer']
    """
    cache = DynamicCache(config=config)
    cache.layers = [GrowingLayer(reserve) if type(layer) is DynamicLayer else layer for layer in cache.layers]
    return cache
