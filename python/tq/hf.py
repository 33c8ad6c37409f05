"""tq's compressed KV cache inside Hugging Face transformers (tested with transformers 5.24, torch 2.x, CPU).

Two ways to use it:

1. Attention through tq (the decode path reads only the compressed cache)::

       import tq.hf
       tq.hf.use_tq_attention(model)              # registers attention "tq" and selects it for the model
       cache = tq.hf.TurboQuantCache(model.config, key_bits=3.5, value_bits=3)
       out = model(input_ids, cache=cache, use_cache=True)    # prefill (past_key_values= before 5.x)
       out = model(next_id, cache=cache, use_cache=True)      # decode: tq.KVCache.attend
       model.generate(input_ids, cache=cache, max_new_tokens=32, do_sample=False)   # works too

   Every layer keeps one ``tq.KVCache`` per batch row. ``cache.update`` appends the new keys/values
   (post-RoPE) to it and hands back only the *new* tensors, tagged with the layer; the registered
   attention function then computes

   * the first chunk written into an empty cache (the prefill): exact attention (torch SDPA, causal)
     over that chunk's own float keys/values, which are appended to the compressed cache as well;
   * every later forward (one decode token, or a chunk of several tokens, teacher forcing):
     ``KVCache.attend(q, q_pos=causal positions, scale=module.scaling)`` per batch row, from the codes
     (GQA, causal; the new tokens are appended before they attend, so a token attends to its own
     compressed key, as in a tq-backed engine).

   No float copy of past keys/values exists in this mode: the cache holds codes (plus the ``sinks``
   and ``window`` tokens tq keeps exact).

2. ``attend="materialize"`` (any attention implementation: eager, sdpa): the cache must return full
   float key/value tensors from ``update``, because transformers' eager/SDPA attention takes
   ``(batch, kv_heads, seq, head_dim)`` tensors. The same ``tq.KVCache`` holds the codes, and
   **every cached token is decoded on every forward** (``KVCache.decode``, tq_kv_decode: sinks and
   window exact, the rest from the codes), materializing float32 keys and values of the whole
   context, per layer, per step, as transformers' own QuantizedCache does.
   ``cache.materialize_seconds`` and ``cache.materialized_bytes`` record what that costs. The first
   chunk into an empty cache (the prefill) attends over its own float keys/values, as in the "tq" mode
   and in QuantizedCache.

Limitations: no padding (every batch row holds the same number of real tokens; an attention mask
with padding is ignored by the "tq" path), no beam search reordering or cropping, float32 CPU tensors
are handed to tq (other dtypes/devices are converted, and the result converted back).
"""

import time
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import torch
from transformers.cache_utils import Cache, CacheLayerMixin

import tq

ATTN_NAME = "tq"

__all__ = ["TurboQuantCache", "TurboQuantLayer", "tq_attention_forward", "use_tq_attention", "ATTN_NAME"]


def _rows(x: torch.Tensor) -> np.ndarray:
    """(heads, seq, head_dim) torch -> (seq, heads, head_dim) float32 C-contiguous numpy."""
    return np.ascontiguousarray(x.detach().to("cpu", torch.float32).transpose(0, 1).numpy())


class TurboQuantLayer(CacheLayerMixin):
    """One attention layer: one tq.KVCache per batch row; attention from its codes (attend="tq") or over its
    decoded floats (attend="materialize")."""

    is_sliding = False
    is_croppable = False
    is_compileable = False
    supports_early_init = False

    def __init__(self, kv_heads: int, head_dim: int, key_bits: float, value_bits: float, window: int = 0,
                 sinks: int = 4, center: str = "keys", factors: str = "f16", seed: int = 0,
                 attend: str = "tq", owner: Optional["TurboQuantCache"] = None):
        super().__init__()
        if attend not in ("tq", "materialize"):
            raise ValueError("attend must be 'tq' or 'materialize', got %r" % (attend,))
        self.kv_heads, self.head_dim = kv_heads, head_dim
        self.key_bits, self.value_bits = float(key_bits), float(value_bits)
        self.window, self.sinks, self.center, self.factors, self.seed = window, sinks, center, factors, seed
        self.attend = attend
        self.owner = owner
        self.caches: List[tq.KVCache] = []
        self.length = 0
        self.prefill_exact = False     # the last update was the first chunk into an empty cache

    # -- CacheLayerMixin -------------------------------------------------------------------
    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        self.device, self.dtype = key_states.device, key_states.dtype
        b, h, _, d = key_states.shape
        if (h, d) != (self.kv_heads, self.head_dim):
            raise ValueError("key states have %d heads of %d channels, the cache was made for %d x %d"
                             % (h, d, self.kv_heads, self.head_dim))
        self.batch = b
        self.caches = [tq.KVCache(self.kv_heads, self.head_dim, self.key_bits, self.value_bits,
                                  window=self.window, sinks=self.sinks, center=self.center,
                                  factors=self.factors, seed=self.seed) for _ in range(b)]
        self.is_initialized = True

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs
               ) -> Tuple[torch.Tensor, torch.Tensor]:
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        if key_states.shape[0] != self.batch:
            raise ValueError("batch size changed from %d to %d" % (self.batch, key_states.shape[0]))
        n = key_states.shape[-2]
        self.prefill_exact = self.length == 0
        for b, kv in enumerate(self.caches):
            kv.append(_rows(key_states[b]), _rows(value_states[b]))
        self.length += n
        if self.attend == "tq":
            # Hand back only the new tensors, tagged: tq_attention_forward finds the layer through them.
            key_states._tq_layer = self
            return key_states, value_states
        if self.prefill_exact:
            # as transformers' QuantizedCache: the prefill attends over its own float keys/values
            return key_states, value_states
        return self._materialize()

    def get_mask_sizes(self, query_length: int) -> Tuple[int, int]:
        return self.length + query_length, 0

    def get_seq_length(self) -> int:
        return self.length

    def get_max_length(self) -> int:
        return -1

    def reset(self) -> None:
        self.caches, self.length, self.is_initialized = [], 0, False

    def reorder_cache(self, beam_idx: torch.LongTensor) -> None:
        raise NotImplementedError("TurboQuantCache does not support beam search")

    def crop(self, tokens_to_remove: int) -> None:
        raise NotImplementedError("TurboQuantCache cannot be cropped")

    def batch_repeat_interleave(self, repeats: int) -> None:
        raise NotImplementedError("TurboQuantCache does not support batch expansion")

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        raise NotImplementedError("TurboQuantCache does not support batch selection")

    # -- materialize mode ------------------------------------------------------------------
    def _materialize(self) -> Tuple[torch.Tensor, torch.Tensor]:
        """Every cached token of every batch row decoded back to float32 (batch, kv_heads, seq, head_dim)."""
        t0 = time.perf_counter()
        ks, vs = [], []
        for kv in self.caches:
            k, v = kv.decode()
            ks.append(k.transpose(1, 0, 2))
            vs.append(v.transpose(1, 0, 2))
        K = torch.from_numpy(np.ascontiguousarray(np.stack(ks))).to(self.device, self.dtype)
        V = torch.from_numpy(np.ascontiguousarray(np.stack(vs))).to(self.device, self.dtype)
        if self.owner is not None:
            self.owner.materialize_seconds += time.perf_counter() - t0
            self.owner.materialized_bytes += K.numel() * K.element_size() + V.numel() * V.element_size()
        return K, V

    # -- accounting ------------------------------------------------------------------------
    def memory_bytes(self) -> int:
        """Bytes the layer's compressed caches hold (tq.KVCache.memory_usage()['total'] per row)."""
        return sum(kv.memory_usage()["total"] for kv in self.caches)


class TurboQuantCache(Cache):
    """A transformers Cache whose keys and values live in tq's compressed KV cache.

    Args:
        config: the model's config (num_hidden_layers, num_key_value_heads, head_dim are read).
        key_bits, value_bits: bits per channel (fractional 2.5 / 3.5 allowed).
        window, sinks, center, factors, seed: as tq.KVCache. ``window`` recent tokens stay exact (float32,
            window x 2 x kv_heads x head_dim x 4 bytes per layer). On SmolLM2-135M (bench/e2e.py) window=128,
            transformers QuantizedCache's residual_length, took 3.5-bit perplexity from +6.4% to +0.7% over the
            full cache and made greedy generations match it on 8 of 8 prompts at 3.5 and 4 bits.
        attend: "tq" (attention from the codes; needs ``use_tq_attention(model)``) or "materialize"
            (returns dequantized float keys/values to any attention implementation).
    """

    def __init__(self, config, key_bits: float = 4.0, value_bits: Optional[float] = None, window: int = 0,
                 sinks: int = 4, center: str = "keys", factors: str = "f16", seed: int = 0, attend: str = "tq"):
        config = config.get_text_config(decoder=True) if hasattr(config, "get_text_config") else config
        value_bits = key_bits if value_bits is None else value_bits
        head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
        kv_heads = getattr(config, "num_key_value_heads", None) or config.num_attention_heads
        self.attend = attend
        self.materialize_seconds = 0.0
        self.materialized_bytes = 0
        layers = [TurboQuantLayer(kv_heads, head_dim, key_bits, value_bits, window=window, sinks=sinks,
                                  center=center, factors=factors, seed=seed, attend=attend, owner=self)
                  for _ in range(config.num_hidden_layers)]
        super().__init__(layers=layers)

    def memory_bytes(self) -> int:
        """Bytes of every layer's compressed cache (tq.KVCache.memory_usage totals)."""
        return sum(layer.memory_bytes() for layer in self.layers)

    def float_bytes(self, bytes_per_value: int = 2) -> int:
        """Bytes the same tokens take in a plain cache of that element size (2: fp16/bf16, 4: fp32)."""
        return sum(2 * getattr(l, "batch", 0) * l.kv_heads * l.length * l.head_dim * bytes_per_value
                   for l in self.layers)


def tq_attention_forward(module: torch.nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                         attention_mask: Optional[torch.Tensor], scaling: Optional[float] = None,
                         dropout: float = 0.0, **kwargs: Any):
    """Attention function for transformers' AttentionInterface (name "tq").

    query (batch, q_heads, nq, head_dim); key/value are what the cache's update returned. When they
    come from a TurboQuantLayer that already held tokens, the output is tq.KVCache.attend over the
    compressed cache; otherwise (first chunk, or another cache) it is torch SDPA on the given tensors.
    Returns (batch, nq, q_heads, head_dim), None.
    """
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    layer = getattr(key, "_tq_layer", None)
    if layer is not None:
        del key._tq_layer
    if layer is None or layer.prefill_exact:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout,
                                      scaling=scaling, **kwargs)
    b, qh, nq, d = query.shape
    L = layer.length
    q_pos = np.arange(L - nq, L, dtype=np.int64)
    outs = []
    for i, kv in enumerate(layer.caches):
        q = np.ascontiguousarray(query[i].detach().to("cpu", torch.float32).transpose(0, 1).numpy())
        outs.append(kv.attend(q, q_pos=q_pos, scale=scaling))
    out = torch.from_numpy(np.stack(outs)).to(query.device, query.dtype)   # (b, nq, q_heads, d)
    return out, None


def use_tq_attention(model) -> None:
    """Register tq_attention_forward as attention implementation "tq" and select it for `model`."""
    from transformers import AttentionInterface
    AttentionInterface.register(ATTN_NAME, tq_attention_forward)
    try:
        model.set_attn_implementation(ATTN_NAME)
    except Exception:    # older/newer API: set the config field directly
        model.config._attn_implementation = ATTN_NAME
