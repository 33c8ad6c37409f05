"""Tests of tq.hf.TurboQuantCache (transformers integration) on a tiny random Llama model.

Needs torch and transformers; the whole module is skipped when they are not importable (CI does not
install torch). No download: LlamaForCausalLM(LlamaConfig(tiny)) with random weights.
"""

import numpy as np
import pytest

try:
    import torch
    import transformers
    from transformers import DynamicCache, LlamaConfig, LlamaForCausalLM
except Exception as e:  # ImportError, or a broken torch install
    pytest.skip("torch and transformers are needed for tq.hf (not installed: %s)" % e, allow_module_level=True)

import tq
import tq.hf

PREFIX, TOTAL = 32, 40


def _config():
    return LlamaConfig(vocab_size=128, hidden_size=256, intermediate_size=256, num_hidden_layers=2,
                       num_attention_heads=4, num_key_value_heads=2, head_dim=64,
                       max_position_embeddings=256)


@pytest.fixture(scope="module")
def model_ids():
    torch.manual_seed(0)
    model = LlamaForCausalLM(_config()).eval()
    model.set_attn_implementation("sdpa")
    ids = torch.randint(0, 128, (2, TOTAL))
    return model, ids


def _run(model, ids, cache):
    """Prefill PREFIX tokens, then decode the rest one token at a time; logits of every position."""
    with torch.no_grad():
        out = [model(ids[:, :PREFIX], cache=cache, use_cache=True).logits]
        for t in range(PREFIX, ids.shape[1]):
            out.append(model(ids[:, t:t + 1], cache=cache, use_cache=True).logits)
    return torch.cat(out, 1)


def _with_attn(model, name, fn):
    old = model.config._attn_implementation
    try:
        if name == "tq":
            tq.hf.use_tq_attention(model)
        else:
            model.set_attn_implementation(name)
        return fn()
    finally:
        model.set_attn_implementation(old) if old != "tq" else tq.hf.use_tq_attention(model)


def test_tq_attention_close_to_full_cache_at_8_bits(model_ids):
    model, ids = model_ids
    full = _run(model, ids, DynamicCache(config=model.config))
    cache = tq.hf.TurboQuantCache(model.config, key_bits=8, value_bits=8)
    got = _with_attn(model, "tq", lambda: _run(model, ids, cache))
    # the prefill is exact attention over the chunk's own float keys/values
    assert torch.allclose(got[:, :PREFIX], full[:, :PREFIX], atol=1e-5, rtol=0)
    # decode tokens attend from 8-bit codes
    scale = full.abs().max().item()
    diff = (got[:, PREFIX:] - full[:, PREFIX:]).abs().max().item()
    assert 0 < diff < 0.02 * scale
    assert (got[:, PREFIX:].argmax(-1) == full[:, PREFIX:].argmax(-1)).float().mean().item() > 0.9
    # at 2 bits the logits move further away than at 8
    cache2 = tq.hf.TurboQuantCache(model.config, key_bits=2, value_bits=2)
    got2 = _with_attn(model, "tq", lambda: _run(model, ids, cache2))
    assert (got2[:, PREFIX:] - full[:, PREFIX:]).abs().max().item() > diff


def test_materialize_mode_close_to_full_cache_at_8_bits(model_ids):
    model, ids = model_ids
    full = _run(model, ids, DynamicCache(config=model.config))
    cache = tq.hf.TurboQuantCache(model.config, key_bits=8, value_bits=8, attend="materialize")
    got = _with_attn(model, "sdpa", lambda: _run(model, ids, cache))
    scale = full.abs().max().item()
    assert torch.allclose(got[:, :PREFIX], full[:, :PREFIX], atol=1e-5, rtol=0)   # exact prefill
    assert (got - full).abs().max().item() < 0.02 * scale
    assert cache.get_seq_length() == TOTAL
    # every forward after the prefill materialized the whole context in float32: keys + values, all layers
    # (the prefill attends over its own float keys/values and decodes nothing)
    L, b, H, D = model.config.num_hidden_layers, ids.shape[0], model.config.num_key_value_heads, 64
    lengths = list(range(PREFIX + 1, TOTAL + 1))
    assert cache.materialized_bytes == sum(2 * L * b * H * n * D * 4 for n in lengths)
    assert cache.materialize_seconds > 0


class _Module:
    num_key_value_groups = 2
    is_causal = True
    training = False


def test_decode_path_is_kvcache_attend_and_close_to_attention_f32():
    rng = np.random.default_rng(1)
    H, QH, D, n = 2, 4, 64, 50
    keys = rng.standard_normal((1, H, n + 1, D)).astype(np.float32)
    values = rng.standard_normal((1, H, n + 1, D)).astype(np.float32)
    query = rng.standard_normal((1, QH, 1, D)).astype(np.float32)
    layer = tq.hf.TurboQuantLayer(H, D, 8, 8)
    k, v = layer.update(torch.from_numpy(keys[:, :, :n]), torch.from_numpy(values[:, :, :n]))
    assert layer.prefill_exact and layer.get_seq_length() == n
    del k._tq_layer
    k, v = layer.update(torch.from_numpy(keys[:, :, n:]), torch.from_numpy(values[:, :, n:]))
    assert not layer.prefill_exact and k.shape[-2] == 1     # only the new token comes back
    out, w = tq.hf.tq_attention_forward(_Module(), torch.from_numpy(query), k, v, None, scaling=0.125)
    assert w is None and tuple(out.shape) == (1, 1, QH, D)
    q_rows = query[0].transpose(1, 0, 2)                      # (1, QH, D)
    # exactly what the compressed cache computes
    direct = layer.caches[0].attend(q_rows, q_pos=[n], scale=0.125)
    np.testing.assert_array_equal(out[0].numpy(), direct)
    # and close to the float32 reference over the same tensors
    ref = tq.attention_f32(keys[0].transpose(1, 0, 2), values[0].transpose(1, 0, 2), q_rows, q_pos=[n], scale=0.125)
    assert np.abs(out[0].numpy() - ref).max() < 0.02 * np.abs(ref).max()
    # exact when every token is kept exact (sinks cover the context)
    exact = tq.hf.TurboQuantLayer(H, D, 2, 2, sinks=n + 1)
    exact.update(torch.from_numpy(keys), torch.from_numpy(values))
    exact.prefill_exact = False
    k = torch.from_numpy(keys[:, :, n:].copy())
    k._tq_layer = exact
    out, _ = tq.hf.tq_attention_forward(_Module(), torch.from_numpy(query), k, None, None, scaling=0.125)
    np.testing.assert_allclose(out[0].numpy(), ref, atol=1e-5, rtol=1e-5)


def test_tq_attention_matches_multi_token_chunks(model_ids):
    """A chunk of several tokens after the prefill goes through KVCache.attend with causal q_pos."""
    model, ids = model_ids
    cache = tq.hf.TurboQuantCache(model.config, key_bits=4, value_bits=4)
    chunk = tq.hf.TurboQuantCache(model.config, key_bits=4, value_bits=4)

    def both():
        a = _run(model, ids, cache)
        with torch.no_grad():
            model(ids[:, :PREFIX], cache=chunk, use_cache=True)
            b = model(ids[:, PREFIX:], cache=chunk, use_cache=True).logits
        return a, b

    a, b = _with_attn(model, "tq", both)
    # the same tokens in the same compressed caches: chunked and token-by-token decode agree
    assert torch.allclose(a[:, PREFIX:], b, atol=1e-4, rtol=0)


def test_length_and_memory_accounting(model_ids):
    model, ids = model_ids
    cache = tq.hf.TurboQuantCache(model.config, key_bits=3.5, value_bits=3, sinks=4)
    _with_attn(model, "tq", lambda: _run(model, ids, cache))
    b = ids.shape[0]
    assert cache.get_seq_length() == TOTAL and len(cache.layers) == model.config.num_hidden_layers
    total = 0
    for layer in cache.layers:
        assert layer.get_seq_length() == TOTAL and len(layer.caches) == b
        for kv in layer.caches:
            assert len(kv) == TOTAL
            mu = kv.memory_usage()
            kb, vb = kv.token_bytes
            assert mu["compressed"] == TOTAL - 4
            assert mu["key_codes"] == (TOTAL - 4) * 2 * kb and mu["value_codes"] == (TOTAL - 4) * 2 * vb
            total += mu["total"]
    assert cache.memory_bytes() == total
    assert cache.float_bytes(4) == 2 * cache.float_bytes(2) == 2 * 2 * 2 * b * 2 * TOTAL * 64 * 2
    # the codes alone are well under fp16 (the totals also hold quantizers and reserved capacity)
    codes = sum(kv.memory_usage()["key_codes"] + kv.memory_usage()["value_codes"]
                for layer in cache.layers for kv in layer.caches)
    assert codes < 0.3 * cache.float_bytes(2)


def test_generate_with_cache(model_ids):
    model, ids = model_ids
    prompt = ids[:1, :10]
    full = model.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=6, do_sample=False)
    cache = tq.hf.TurboQuantCache(model.config, key_bits=8, value_bits=8)
    got = _with_attn(model, "tq", lambda: model.generate(prompt, attention_mask=torch.ones_like(prompt),
                                                          cache=cache, max_new_tokens=6, do_sample=False))
    assert got.shape == full.shape
    assert cache.get_seq_length() == 10 + 6 - 1      # the last token generated is never fed back
    assert torch.equal(got, full)


def test_unsupported_operations():
    layer = tq.hf.TurboQuantLayer(2, 64, 4, 4)
    with pytest.raises(NotImplementedError):
        layer.crop(-1)
    with pytest.raises(NotImplementedError):
        layer.reorder_cache(torch.tensor([0]))
    with pytest.raises(ValueError, match="attend"):
        tq.hf.TurboQuantLayer(2, 64, 4, 4, attend="both")
