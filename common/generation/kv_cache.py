"""A KV cache that writes each decoding step in place instead of re-concatenating the whole cache.

transformers' `DynamicLayer.update` runs `torch.cat([keys, new], dim=-2)` at every decoding step, so
each step copies the full cache of every layer: for GPT-Neo-125M, 8 rows and 500 cached positions
that is 12 layers x 2 x 8 x 500 x 768 x 4 bytes = 295 MB per generated token, which on a 2-core CPU
costs about as much as the step's matmuls. `GrowingLayer` keeps one buffer sized for the prompt plus
`reserve` new tokens, writes new states into it and returns views of the filled part: attention sees
the very same keys and values (same length, same order), so generations are unchanged, including
GPT-Neo's local-attention layers, whose window is applied by the model's mask, not by the cache.

Layers of other kinds (sliding-window, linear attention) keep transformers' own classes.

Prefix tuning's learned keys and values go in first (`seed_prefix`), each row's after its left padding: see there.

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
        self._prefix_after: torch.Tensor | None = None  # rows' left padding, behind which a seeded prefix moves

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
        if self._prefix_after is not None:
            self._move_prefix_after_padding(length)
        self.keys = self._key_buffer[:, :, :length + new]
        self.values = self._value_buffer[:, :, :length + new]
        return self.keys, self.values

    def seed_prefix(self, keys: torch.Tensor, values: torch.Tensor, after: torch.Tensor) -> None:
        """Start this empty layer with a learned prefix, keys and values (batch, heads, P, head_dim), that the
        next `update` (the left-padded prompts' prefill) moves behind each row's left padding, `after` (batch,):
        row i then holds [after[i] padding][prefix][text], its prefix right before its text as when alone.

        Example (a 1-position prefix, 9; the second prompt is [padding, padding, 3]):
            >>> layer = GrowingLayer(reserve=0)
            >>> layer.seed_prefix(torch.full((2, 1, 1, 1), 9.), torch.zeros(2, 1, 1, 1), torch.tensor([0, 2]))
            >>> prompts = torch.tensor([[1., 2., 3.], [0., 0., 3.]]).view(2, 1, 3, 1)
            >>> keys, _ = layer.update(prompts, torch.zeros(2, 1, 3, 1))
            >>> keys[:, 0, :, 0].tolist()       # the padded row: [stale, padding, prefix, text]
            [[9.0, 1.0, 2.0, 3.0], [9.0, 0.0, 9.0, 3.0]]
        """
        if self.get_seq_length():
            raise ValueError("a prefix starts an empty cache: seed it before the prompt's prefill")
        self.update(keys, values)
        self._prefix_after = after.to(keys.device) if bool((after > 0).any()) else None

    def _move_prefix_after_padding(self, prefix_length: int) -> None:
        """Row i's prefix, at positions [0, P), copied to [after[i], after[i] + P), over its own padding; the
        positions before it keep stale values, which the attention mask hides as the padding they stand for."""
        after, self._prefix_after = self._prefix_after, None
        width = prefix_length + int(after.max())  # the text of row i starts at P + after[i]
        columns = torch.arange(width, device=after.device)
        inside = (columns >= after[:, None]) & (columns < after[:, None] + prefix_length)
        source = torch.where(inside, columns - after[:, None], columns)  # (batch, width)
        for buffer in (self._key_buffer, self._value_buffer):
            index = source[:, None, :, None].expand(-1, buffer.shape[1], -1, buffer.shape[-1])
            buffer[:, :, :width] = buffer[:, :, :width].gather(2, index)

    def _holds_views(self) -> bool:
        """True when `keys` is still the view of the buffer that the last `update` left."""
        return (self._key_buffer is not None and self.keys.numel() > 0
                and self.keys.data_ptr() == self._key_buffer.data_ptr()
                and self.keys.stride() == self._key_buffer.stride()
                and self.keys.shape[:2] == self._key_buffer.shape[:2])

    def _move_to_new_buffers(self, capacity: int, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        """Buffers with `capacity` positions, shaped like the incoming states, holding the cached ones, in the
        dtype `torch.cat` of both would have (a float32 prefix stays float32 under bf16 autocast, as in training)."""
        batch, heads, _, key_dim = key_states.shape
        length = self.get_seq_length()
        dtype = torch.promote_types(self.keys.dtype, key_states.dtype) if length else key_states.dtype
        key_buffer = key_states.new_empty(batch, heads, capacity, key_dim, dtype=dtype)
        value_buffer = value_states.new_empty(batch, heads, capacity, value_states.shape[-1], dtype=dtype)
        if length:
            key_buffer[:, :, :length] = self.keys
            value_buffer[:, :, :length] = self.values
        self._key_buffer, self._value_buffer = key_buffer, value_buffer

    def select_rows(self, rows: torch.Tensor, reserve: int) -> None:
        """Keep (or repeat) the cached rows `rows`, (new_batch,), in buffers with room for `reserve` more
        positions: beam search expands each prompt's row to its beams, and drops the rows of finished articles.

        Example (two prompts of 3 positions, each expanded to 2 beams):
            >>> layer = GrowingLayer(reserve=0)
            >>> _ = layer.update(torch.arange(2.).view(2, 1, 1, 1).expand(2, 1, 3, 1), torch.zeros(2, 1, 3, 1))
            >>> layer.select_rows(torch.tensor([0, 0, 1, 1]), reserve=5)
            >>> layer.keys[:, 0, :, 0].tolist(), layer._key_buffer.shape[2]
            ([[0.0, 0.0, 0.0], [0.0, 0.0, 0.0], [1.0, 1.0, 1.0], [1.0, 1.0, 1.0]], 8)
        """
        length = self.get_seq_length()
        if self._holds_views() and rows.numel() <= self.keys.shape[0] and bool((rows[1:] > rows[:-1]).all()) \
                and self._key_buffer.shape[-2] >= length + reserve:
            self._compact(rows.tolist())  # a subset in order: move rows down in the same buffers
            return
        key_buffer = self.keys.new_empty(rows.numel(), self.keys.shape[1], length + reserve, self.keys.shape[-1])
        value_buffer = self.values.new_empty(rows.numel(), self.values.shape[1], length + reserve,
                                             self.values.shape[-1])
        key_buffer[:, :, :length] = self.keys.index_select(0, rows)
        value_buffer[:, :, :length] = self.values.index_select(0, rows)
        self._key_buffer, self._value_buffer = key_buffer, value_buffer
        self.keys, self.values = key_buffer[:, :, :length], value_buffer[:, :, :length]

    def _compact(self, rows: list[int]) -> None:
        """Rows `rows` (ascending) moved to the front of the buffers, which then end after them."""
        for new, old in enumerate(rows):
            if new != old:
                self._key_buffer[new].copy_(self._key_buffer[old])
                self._value_buffer[new].copy_(self._value_buffer[old])
        length = self.get_seq_length()
        self._key_buffer, self._value_buffer = self._key_buffer[:len(rows)], self._value_buffer[:len(rows)]
        self.keys, self.values = self._key_buffer[:, :, :length], self._value_buffer[:, :, :length]

    def reorder_rows(self, rows: torch.Tensor, start: int) -> None:
        """Row i's positions from `start` on become row rows[i]'s, in place (beam search: positions before
        `start`, the prompt, are the same in every row an index can move between).

        Example (3 rows of 2 positions; from position 1, row 0 takes row 2's states):
            >>> layer = GrowingLayer(reserve=1)
            >>> _ = layer.update(torch.arange(6.).view(3, 1, 2, 1), torch.zeros(3, 1, 2, 1))
            >>> layer.reorder_rows(torch.tensor([2, 1, 1]), start=1)
            >>> layer.keys[:, 0, :, 0].tolist()
            [[0.0, 5.0], [2.0, 3.0], [4.0, 3.0]]
        """
        length = self.get_seq_length()
        if length <= start or torch.equal(rows, torch.arange(rows.numel(), device=rows.device)):
            return
        self._key_buffer[:, :, start:length] = self._key_buffer[rows, :, start:length]
        self._value_buffer[:, :, start:length] = self._value_buffer[rows, :, start:length]

    def reset(self) -> None:
        self._key_buffer = self._value_buffer = self._prefix_after = None
        super().reset()


def select_cache_rows(cache: DynamicCache, rows: torch.Tensor, reserve: int) -> None:
    """Keep (or repeat) the batch rows `rows` in every layer of `cache`: `GrowingLayer`s with room for `reserve`
    more positions (`GrowingLayer.select_rows`), other layers through transformers' own row selection. Beam search
    expands each prompt's row to its beams with it, and both searches drop the rows of finished prompts.

    Example (the cache of two prompts, each row repeated for 2 beams):
        >>> from transformers import GPTNeoConfig
        >>> cache = growing_cache(GPTNeoConfig(num_layers=1, attention_types=[[["global"], 1]]), reserve=0)
        >>> _ = cache.update(torch.arange(2.).view(2, 1, 1, 1), torch.zeros(2, 1, 1, 1), 0)
        >>> select_cache_rows(cache, torch.tensor([0, 0, 1, 1]), reserve=4)
        >>> cache.layers[0].keys.flatten().tolist()
        [0.0, 0.0, 1.0, 1.0]
    """
    for layer in cache.layers:
        if isinstance(layer, GrowingLayer):
            layer.select_rows(rows, reserve=reserve)
        else:
            layer.batch_select_indices(rows)


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


def seed_prefix(cache: DynamicCache, prefix: list[tuple[torch.Tensor, torch.Tensor]],
                attention_mask: torch.Tensor) -> torch.Tensor:
    """Start an empty `growing_cache` with prefix tuning's learned keys and values, per layer (batch, heads, P,
    head_dim), for left-padded prompts (attention_mask (batch, L), 0 over the padding). Returns the mask of the
    cache and the prompts together, (batch, P + L): [padding][P ones][text].

    Each row's prefix goes after its padding, right before its text, not at the start of the row: GPT-Neo's local
    layers count their window in cache positions (its `bias` buffer is indexed by them), so padding between the
    prefix and the text would hide the prefix from a padded row's early tokens where the same prompt alone sees
    it; `generate.prompt_after_padding` places a soft prompt so for the same reason. Position ids counted over
    the returned mask give the text P, P + 1, ..., as PEFT's forward gives them in training (the prefix fills the
    first P positions of the cache there).

    Example (a 2-position prefix in the 2 layers of a cache; the second prompt has 1 position of padding):
        >>> from transformers import GPTNeoConfig
        >>> cache = growing_cache(GPTNeoConfig(num_layers=2, attention_types=[[["global", "local"], 1]]), reserve=4)
        >>> prefix = [(torch.zeros(2, 12, 2, 64), torch.zeros(2, 12, 2, 64))] * 2
        >>> seed_prefix(cache, prefix, torch.tensor([[1, 1, 1], [0, 1, 1]])).tolist(), cache.get_seq_length()
        ([[1, 1, 1, 1, 1], [0, 1, 1, 1, 1]], 2)
    """
    if len(prefix) != len(cache.layers):
        raise ValueError(f"a prefix of {len(prefix)} layers for a cache of {len(cache.layers)}")
    after = (attention_mask == 0).sum(dim=1)  # left padding: the zeros lead each row
    for layer, (keys, values) in zip(cache.layers, prefix):
        if not isinstance(layer, GrowingLayer):
            raise ValueError(f"prefix tuning generates on full-attention caches only, not {type(layer).__name__}")
        layer.seed_prefix(keys, values, after)
    width = prefix[0][0].shape[-2] + attention_mask.shape[1]
    columns = torch.arange(width, device=attention_mask.device)
    return (columns[None, :] >= after[:, None]).to(attention_mask.dtype)
