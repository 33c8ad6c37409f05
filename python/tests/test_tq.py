"""pytest suite of the tq Python bindings (build first: pip install .).

Real data comes from the repository's committed fixtures (tests/data): 500
Fashion-MNIST images and one SmolLM2 attention layer's keys, values and
queries. No network, no timing assertions.
"""

import gc
import math
import threading
from pathlib import Path

import numpy as np
import pytest

import tq

DATA = Path(__file__).resolve().parents[2] / "tests" / "data"


def read_fvecs(path):
    raw = np.fromfile(path, dtype=np.int32)
    dim = int(raw[0])
    rows = raw.reshape(-1, dim + 1)
    assert (rows[:, 0] == dim).all()
    return rows[:, 1:].copy().view(np.float32)


@pytest.fixture(scope="module")
def unit_vectors():
    rng = np.random.default_rng(12345)
    x = rng.standard_normal((2000, 128)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def fmnist():
    x = read_fvecs(DATA / "fmnist_base_500.fvecs")
    assert x.shape == (500, 784)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def smollm2():
    k = np.load(DATA / "smollm2_l15_k256.npy")
    v = np.load(DATA / "smollm2_l15_v256.npy")
    q = np.load(DATA / "smollm2_l15_q256.npy")
    assert k.shape == (256, 192) and v.shape == (256, 192) and q.shape == (256, 576)
    return k.reshape(256, 3, 64), v.reshape(256, 3, 64), q.reshape(256, 9, 64)


# Fields a quantizer never uses (group_size of a non-uniform one, ...) read back
# as 0 after a load (the file format is canonical, tq.h), so compare these.
USED = ("dim", "bits", "variant", "rotation", "rounds", "qjl", "norm", "seed", "outlier_count", "outlier_bits")


def used(cfg):
    return {f: cfg[f] for f in USED}


def cosine(a, b):
    return (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))


# ------------------------------------------------------------------ library


def test_library_info():
    assert tq.__version__ == "0.1.0"
    assert tq.kernel_name() in ("ref", "avx2", "avx512")
    info = tq.build_info()
    assert info.startswith("tq 0.1.0") and "no-hdf5" in info


def test_threads_do_not_change_codes(unit_vectors):
    q = tq.Quantizer(128, 3)
    old = tq.get_threads()
    try:
        tq.set_threads(1)
        assert tq.get_threads() == 1
        one = q.encode(unit_vectors)
        tq.set_threads(4)
        four = q.encode(unit_vectors)
    finally:
        tq.set_threads(old)
    assert np.array_equal(one, four)
    with pytest.raises(tq.TQError) as e:
        tq.set_threads(257)
    assert e.value.status == "TQ_ERR_INVALID_ARG"


def test_codebook():
    c, mse = tq.codebook(128, 2)
    assert c.shape == (4,) and c.dtype == np.float32
    assert np.all(np.diff(c) > 0) and np.allclose(c, -c[::-1])
    assert 4.0**-2 <= mse <= math.sqrt(3) * math.pi / 2 * 4.0**-2


# ---------------------------------------------------------------- Quantizer


def test_quantizer_properties():
    q = tq.Quantizer(128, 4)
    assert q.dim == 128
    assert q.code_size == 68  # 64 bytes of 4-bit indices + one float32 norm
    assert q.bits_per_value == pytest.approx(68 * 8 / 128)
    cfg = q.config
    assert cfg["variant"] == "mse" and cfg["rotation"] == "hadamard" and cfg["norm"] == "plain"
    f = tq.Quantizer(128, 2.5)
    assert f.config["outlier_count"] == 64 and f.config["outlier_bits"] == 3 and f.config["bits"] == 2


def test_roundtrip_distortion_within_paper_bound(unit_vectors):
    q = tq.Quantizer(128, 4)
    codes = q.encode(unit_vectors)
    assert codes.shape == (2000, q.code_size) and codes.dtype == np.uint8
    y = q.decode(codes)
    assert y.shape == (2000, 128) and y.dtype == np.float32
    mse = float(((unit_vectors - y) ** 2).sum(axis=1).mean())
    # Theorem 1: 4^-b <= D_mse <= (sqrt(3) pi / 2) 4^-b
    assert 4.0**-4 <= mse <= math.sqrt(3) * math.pi / 2 * 4.0**-4


def test_single_vector_shapes(unit_vectors):
    q = tq.Quantizer(128, 4)
    c = q.encode(unit_vectors[0])
    assert c.shape == (q.code_size,)
    assert np.array_equal(c, q.encode(unit_vectors[:1])[0])
    assert q.decode(c).shape == (128,)


def test_input_conversion(unit_vectors):
    q = tq.Quantizer(128, 4)
    ref = q.encode(unit_vectors[:50])
    # float64 and non-contiguous inputs are converted by the Python layer
    assert np.array_equal(q.encode(unit_vectors[:50].astype(np.float64)), ref)
    wide = np.zeros((50, 256), dtype=np.float32)
    wide[:, ::2] = unit_vectors[:50]
    assert np.array_equal(q.encode(wide[:, ::2]), ref)
    # the C layer checks its buffers too
    with pytest.raises(TypeError, match="float32"):
        q._h.encode(unit_vectors[:50].astype(np.float64), np.empty((50, q.code_size), np.uint8))
    with pytest.raises(ValueError, match="out holds"):
        q._h.encode(unit_vectors[:50], np.empty((49, q.code_size), np.uint8))
    with pytest.raises(TypeError, match="writable"):
        out = np.empty((50, q.code_size), np.uint8)
        out.flags.writeable = False
        q._h.encode(unit_vectors[:50], out)


def test_score_equals_inner_product_with_decoded(unit_vectors):
    rng = np.random.default_rng(7)
    q = tq.Quantizer(128, 4, variant="mse", norm="plain")
    x = unit_vectors[:500] * rng.uniform(0.5, 3.0, size=(500, 1)).astype(np.float32)
    codes = q.encode(x)
    query = rng.standard_normal(128).astype(np.float32)
    scores = q.score(query, codes)
    ref = q.decode(codes).astype(np.float64) @ query.astype(np.float64)
    assert scores.shape == (500,) and scores.dtype == np.float32
    assert np.abs(scores - ref).max() <= 1e-4 * np.abs(ref).max()
    # l2 scores estimate ||q - x||^2
    l2 = q.score(query, codes, metric="l2")
    true_l2 = ((x - query) ** 2).sum(axis=1)
    assert np.corrcoef(l2, true_l2)[0, 1] > 0.99


def test_save_load_identical_codes(tmp_path, unit_vectors):
    q = tq.Quantizer(128, 3, variant="prod", seed=42)
    path = tmp_path / "q.tqqz"
    q.save(path)
    r = tq.Quantizer.load(path)
    assert used(r.config) == used(q.config) and r.fingerprint == q.fingerprint
    assert np.array_equal(r.encode(unit_vectors), q.encode(unit_vectors))
    s = tq.Quantizer.from_bytes(q.to_bytes())
    assert np.array_equal(s.encode(unit_vectors), q.encode(unit_vectors))
    assert path.read_bytes() == q.to_bytes()


@pytest.mark.parametrize("name", ["mse", "prod", "uniform"])
def test_golden_files_bit_exact(name):
    """The committed golden files of the C tests: this build encodes the committed input to the
    committed codes, byte for byte, and decodes them to the committed values."""
    q = tq.Quantizer.load(DATA / ("golden_%s.tqqz" % name))
    assert q.to_bytes() == (DATA / ("golden_%s.tqqz" % name)).read_bytes()
    codes = q.load_codes(DATA / ("golden_%s.tqca" % name))
    x = tq.read_vectors(DATA / ("golden_%s_input.fvecs" % name))
    want = tq.read_vectors(DATA / ("golden_%s_decoded.fvecs" % name))
    assert codes.shape == (x.shape[0], q.code_size) and x.shape == want.shape == (x.shape[0], q.dim)
    assert np.array_equal(q.encode(x), codes)
    assert np.abs(q.decode(codes) - want).max() <= 1e-6


def test_codes_and_vectors_files(tmp_path, unit_vectors):
    q = tq.Quantizer(128, 2)
    codes = q.encode(unit_vectors[:100])
    q.save_codes(codes, tmp_path / "c.tqca")
    back = q.load_codes(tmp_path / "c.tqca")
    assert np.array_equal(back, codes)
    other = tq.Quantizer(128, 2, seed=1)
    with pytest.raises(tq.TQError) as e:
        other.load_codes(tmp_path / "c.tqca")
    assert e.value.status == "TQ_ERR_MISMATCH"
    np.save(tmp_path / "v.npy", unit_vectors[:7])
    assert np.array_equal(tq.read_vectors(tmp_path / "v.npy"), unit_vectors[:7])
    assert tq.read_vectors(DATA / "fmnist_base_500.fvecs", max_rows=3).shape == (3, 784)


def test_load_errors(tmp_path):
    with pytest.raises(tq.TQError) as e:
        tq.Quantizer.load(tmp_path / "missing.tqqz")
    assert e.value.status == "TQ_ERR_IO"
    bad = tmp_path / "bad.tqqz"
    bad.write_bytes(b"not a quantizer file at all, definitely not")
    with pytest.raises(tq.TQError) as e:
        tq.Quantizer.load(bad)
    assert e.value.status == "TQ_ERR_FORMAT"
    assert str(e.value).startswith("bad file format")


def test_nan_raises_with_c_message(unit_vectors):
    q = tq.Quantizer(128, 4)
    x = unit_vectors[:10].copy()
    x[3, 5] = np.nan
    with pytest.raises(tq.TQError) as e:
        q.encode(x)
    err = e.value
    assert err.status == "TQ_ERR_NONFINITE" and err.code == 4
    assert "NaN" in str(err) and "row 3" in err.detail and "channel 5" in err.detail
    assert str(err) == "NaN or Inf in input: " + err.detail
    assert isinstance(err, Exception)


def test_bad_arguments():
    q = tq.Quantizer(128, 4)
    with pytest.raises(ValueError, match=r"\(n, 128\)"):
        q.encode(np.zeros((4, 127), np.float32))
    with pytest.raises(ValueError):
        q.decode(np.zeros((4, 67), np.uint8))
    with pytest.raises(ValueError):
        q.score(np.zeros(64, np.float32), np.zeros((1, 68), np.uint8))
    with pytest.raises(ValueError, match="variant"):
        tq.Quantizer(128, 4, variant="nope")
    with pytest.raises(tq.TQError) as e:
        tq.Quantizer(128, 9)
    assert e.value.status == "TQ_ERR_BITS" and "bits = 9" in str(e.value)
    with pytest.raises(tq.TQError) as e:
        tq.Quantizer(5000, 4, rotation="dense")
    assert e.value.status == "TQ_ERR_DIM"


# -------------------------------------------------------------------- Index


def test_index_self_search(fmnist):
    ix = tq.Index(784, 4, metric="ip")
    ids = ix.add(fmnist)
    assert ids.dtype == np.int64 and np.array_equal(ids, np.arange(500))
    assert len(ix) == 500
    top, scores = ix.search(fmnist, 10)
    assert top.shape == (500, 10) and scores.shape == (500, 10)
    assert top.dtype == np.int64 and scores.dtype == np.float32
    assert (top[:, 0] == ids).mean() >= 0.95
    assert np.all(np.diff(scores, axis=1) <= 0)  # best first
    mu = ix.memory_usage()
    assert set(mu) == {"codes", "rerank", "ids", "total", "mapped"}
    assert mu["codes"] > 0 and mu["total"] >= mu["codes"] + mu["ids"] and mu["mapped"] == 0


def test_index_single_query_and_short_results(fmnist):
    ix = tq.Index(784, 4)
    ix.add(fmnist[:3])
    ids, scores = ix.search(fmnist[0], 5)
    assert ids.shape == (5,) and ids[0] == 0
    assert list(ids[3:]) == [-1, -1] and np.isnan(scores[3:]).all()


def test_index_ids_and_remove(fmnist):
    ix = tq.Index(784, 4)
    given = np.arange(1000, 1500, dtype=np.int64)
    assert np.array_equal(ix.add(fmnist, ids=given), given)
    top, _ = ix.search(fmnist[:20], 1)
    assert np.array_equal(top[:, 0], given[:20])
    assert ix.remove([1000, 1001, 1002, 7]) == 3
    assert len(ix) == 497
    top, _ = ix.search(fmnist[:3], 5)
    assert not np.isin(top, [1000, 1001, 1002]).any()
    # automatic ids continue after the largest id ever added
    new = ix.add(fmnist[:2])
    assert list(new) == [1500, 1501]
    # all or nothing: a duplicate id or a NaN leaves the index unchanged
    with pytest.raises(tq.TQError):
        ix.add(fmnist[:2], ids=[5000, 1003])
    bad = fmnist[:2].copy()
    bad[1, 3] = np.inf
    with pytest.raises(tq.TQError) as e:
        ix.add(bad)
    assert e.value.status == "TQ_ERR_NONFINITE"
    assert len(ix) == 499
    with pytest.raises(ValueError, match="ids has"):
        ix.add(fmnist[:2], ids=[1])


@pytest.mark.parametrize("mmap", [False, True])
def test_index_save_load(tmp_path, fmnist, mmap):
    ix = tq.Index(784, 4, rerank="float")
    ix.add(fmnist[:400], ids=np.arange(400) * 3)
    ix.remove([0, 3])
    path = tmp_path / "ix.tqix"
    ix.save(path)
    loaded = tq.Index.load(path, mmap=mmap)
    assert len(loaded) == len(ix) and loaded.dim == 784
    a, b = loaded.config, ix.config
    assert used(a.pop("quant")) == used(b.pop("quant")) and a == b
    a_ids, a_scores = ix.search(fmnist[400:], 10)
    b_ids, b_scores = loaded.search(fmnist[400:], 10)
    assert np.array_equal(a_ids, b_ids) and np.array_equal(a_scores, b_scores)
    if mmap:
        assert loaded.memory_usage()["mapped"] > 0
    loaded.add(fmnist[400:])  # the first add copies a mapped index into memory
    assert len(loaded) == len(ix) + 100


def test_index_quantizer_keeps_index_alive(fmnist):
    ix = tq.Index(784, 4, center="none")
    ix.add(fmnist[:10])
    q = ix.quantizer
    assert q.dim == 784 and q.config["norm"] == "unbiased"
    del ix
    gc.collect()
    assert q.decode(q.encode(fmnist[:2])).shape == (2, 784)


def test_index_given_center_and_metrics(fmnist):
    ix = tq.Index(784, 4, metric="cosine", center=fmnist.mean(axis=0))
    assert ix.config["center"] == "given" and ix.config["metric"] == "cosine"
    ix.add(fmnist * 7.0)
    top, _ = ix.search(fmnist[:50], 1)
    assert (top[:, 0] == np.arange(50)).mean() >= 0.95
    with pytest.raises(ValueError, match="center"):
        tq.Index(784, 4, center=np.zeros(3))
    with pytest.raises(ValueError, match="metric"):
        tq.Index(784, 4, metric="dot")


def test_index_concurrent_searches(fmnist):
    ix = tq.Index(784, 4)
    ix.add(fmnist)
    ref = ix.search(fmnist, 5)[0]
    results = [None] * 4
    errors = []

    def work(i):
        try:
            results[i] = ix.search(fmnist, 5)[0]
        except Exception as exc:  # pragma: no cover
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert all(np.array_equal(r, ref) for r in results)


# ------------------------------------------------------------------ KVCache


def test_kv_attend_close_to_reference(smollm2):
    k, v, q = smollm2
    pos = np.arange(64, 256)
    ref = tq.attention_f32(k, v, q[64:], q_pos=pos)
    assert ref.shape == (192, 9, 64) and ref.dtype == np.float32
    kv = tq.KVCache(3, 64, 4, 4)
    kv.append(k.reshape(256, 192), v.reshape(256, 192))  # the flat layout works too
    assert len(kv) == 256
    out = kv.attend(q[64:], q_pos=pos)
    assert out.shape == (192, 9, 64) and out.dtype == np.float32
    assert cosine(out, ref).mean() >= 0.99
    # fewer bits, lower fidelity
    kv2 = tq.KVCache(3, 64, 2, 2)
    kv2.append(k, v)
    assert cosine(kv2.attend(q[64:], q_pos=pos), ref).mean() < cosine(out, ref).mean()


def test_kv_all_exact_equals_reference(smollm2):
    k, v, q = smollm2
    pos = np.arange(64, 256)
    ref = tq.attention_f32(k, v, q[64:], q_pos=pos)
    kv = tq.KVCache(3, 64, 4, 4, sinks=256)
    kv.append(k, v)
    assert kv.memory_usage()["compressed"] == 0
    out = kv.attend(q[64:], q_pos=pos)
    assert np.abs(out - ref).max() <= 1e-5
    # decode (no q_pos) attends every token
    last = kv.attend(q[255:])
    assert np.abs(last - ref[-1:]).max() <= 1e-5
    # logits are scale * <q, k_t>
    lg = kv.logits(q[100], ntok=101)
    exact = np.einsum("hd,thd->ht", q[100].astype(np.float64), np.repeat(k[:101], 3, axis=1)) / 8.0
    assert lg.shape == (9, 101)
    assert np.abs(lg - exact).max() <= 1e-4 * max(1.0, np.abs(exact).max())


def test_kv_explicit_scale(smollm2):
    k, v, q = smollm2
    ref = tq.attention_f32(k[:32], v[:32], q[31:32], scale=0.05)
    kv = tq.KVCache(3, 64, 4, 4, sinks=32)
    kv.append(k[:32], v[:32])
    assert np.abs(kv.attend(q[31:32], scale=0.05) - ref).max() <= 1e-5
    with pytest.raises(ValueError, match="scale"):
        kv.attend(q[31:32], scale=-1.0)


def test_kv_append_nan_is_all_or_nothing(smollm2):
    k, v, _ = smollm2
    kv = tq.KVCache(3, 64, 4, 4)
    kv.append(k[:100], v[:100])
    bad = v[100:110].copy()
    bad[4, 1, 7] = np.nan
    with pytest.raises(tq.TQError) as e:
        kv.append(k[100:110], bad)
    assert e.value.status == "TQ_ERR_NONFINITE" and e.value.detail
    assert len(kv) == 100
    kv.append(k[100:110], v[100:110])
    assert len(kv) == 110


def test_kv_shape_errors(smollm2):
    k, v, q = smollm2
    kv = tq.KVCache(3, 64, 4, 4)
    with pytest.raises(ValueError, match="keys"):
        kv.append(k.reshape(256, 3, 64)[:, :2], v[:, :2])
    with pytest.raises(ValueError, match="tokens"):
        kv.append(k[:10], v[:9])
    kv.append(k, v)
    # GQA: q_heads must be a multiple of kv_heads
    with pytest.raises(ValueError, match="multiple of kv_heads"):
        kv.attend(q[:, :4])
    with pytest.raises(ValueError, match="shape"):
        kv.attend(q[0])
    with pytest.raises(ValueError, match="q_pos"):
        kv.attend(q[:4], q_pos=[1, 2])
    # the C library checks too, and its message comes back
    with pytest.raises(tq.TQError) as e:
        kv._h.attend(np.ascontiguousarray(q[:1, :4]), 4, None, 0.0, np.empty((1, 4, 64), np.float32))
    assert e.value.status == "TQ_ERR_INVALID_ARG" and "kv_heads" in str(e.value)
    with pytest.raises(tq.TQError) as e:
        kv.attend(q[:1], q_pos=[256])
    assert e.value.status == "TQ_ERR_INVALID_ARG" and "256" in str(e.value)
    with pytest.raises(ValueError, match="multiple of kv_heads"):
        tq.attention_f32(k, v, q[:, :5])


def test_kv_bad_config():
    with pytest.raises(tq.TQError) as e:
        tq.KVCache(3, 64, 9.5, 4)
    assert e.value.status == "TQ_ERR_BITS" and "9.5" in str(e.value)
    with pytest.raises(ValueError, match="center"):
        tq.KVCache(3, 64, 4, 4, center="queries")


def test_kv_sizes(smollm2):
    k, v, _ = smollm2
    kv = tq.KVCache(3, 64, 4, 2, sinks=0, factors="f32")
    kb, vb = kv.token_bytes
    assert kb > vb > 0  # 4-bit keys take more room than 2-bit values
    kv.append(k, v)
    mu = kv.memory_usage()
    assert mu["tokens"] == 256 and mu["compressed"] == 256
    assert mu["key_codes"] == 256 * 3 * kb and mu["value_codes"] == 256 * 3 * vb
    assert mu["total"] == sum(mu[f] for f in ("key_codes", "value_codes", "window", "reserved", "quantizers", "centers"))
    cfg = kv.config
    assert cfg["kv_heads"] == 3 and cfg["head_dim"] == 64 and cfg["factors"] == "f32"
    assert cfg["key"]["bits"] == 4 and cfg["value"]["bits"] == 2


def test_kv_decode(smollm2):
    k, v, q = smollm2
    kv = tq.KVCache(3, 64, 4, 4, sinks=4)
    kv.append(k[:100], v[:100])
    kv.append(k[100:], v[100:])
    dk, dv = kv.decode()
    assert dk.shape == (256, 3, 64) and dv.dtype == np.float32
    # the sink tokens come back exactly, the others within the 4-bit error (relative MSE ~ 0.0095 per vector)
    assert np.array_equal(dk[:4], k[:4]) and np.array_equal(dv[:4], v[:4])
    rel = ((dv[4:] - v[4:]) ** 2).sum(-1) / (v[4:] ** 2).sum(-1)
    assert 0.003 < rel.mean() < 0.03
    # float attention over the decoded cache is what attend() computes from the codes
    pos = np.arange(64, 256)
    via_floats = tq.attention_f32(dk, dv, q[64:], q_pos=pos)
    assert np.abs(kv.attend(q[64:], q_pos=pos) - via_floats).max() <= 1e-3 * np.abs(via_floats).max()
    part_k, part_v = kv.decode(120, 7)
    assert np.array_equal(part_k, dk[120:127]) and np.array_equal(part_v, dv[120:127])
    with pytest.raises(tq.TQError):
        kv.decode(250, 10)
