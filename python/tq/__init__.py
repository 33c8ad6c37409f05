"""tq: TurboQuant vector quantization (Zandieh et al., arXiv 2504.19874).

Python bindings over the tq C library (one extension module, ``tq._tq``, built
from the library's own C sources; nothing is reimplemented in Python).

* :class:`Quantizer` — encode float32 vectors into fixed-size codes, decode
  them, and score queries straight against the codes.
* :class:`Index` — a flat, training-free compressed vector index.
* :class:`KVCache` — compressed keys and values of one attention layer, with
  decode attention computed from the codes; :func:`attention_f32` is the
  float32 reference.

Arrays go in and come out as numpy arrays. Inputs are converted with
``numpy.ascontiguousarray(x, dtype=...)``, which copies only when the array is
not already C-contiguous of the right dtype. Outputs are allocated here and
filled by the C library in place. Every failing C call raises :class:`TQError`
carrying the library's status and message. Long calls release the GIL.
"""

from __future__ import annotations

import operator
import os
from typing import Any, Dict, Optional, Sequence, Tuple, Union

import numpy as np

from . import _tq
from ._tq import TQError

__all__ = [
    "Quantizer",
    "Index",
    "KVCache",
    "TQError",
    "attention_f32",
    "codebook",
    "read_vectors",
    "set_threads",
    "get_threads",
    "kernel_name",
    "build_info",
    "__version__",
]

__version__ = "%d.%d.%d" % (_tq.VERSION_MAJOR, _tq.VERSION_MINOR, _tq.VERSION_PATCH)

PathLike = Union[str, bytes, "os.PathLike[str]", "os.PathLike[bytes]"]
ArrayLike = Any  # anything numpy.asarray accepts

_VARIANTS = {"mse": _tq.VARIANT_MSE, "prod": _tq.VARIANT_PROD, "qjl": _tq.VARIANT_QJL, "uniform": _tq.VARIANT_UNIFORM}
_ROTATIONS = {"none": _tq.ROTATION_NONE, "dense": _tq.ROTATION_DENSE, "hadamard": _tq.ROTATION_HADAMARD}
_QJL = {"dense": _tq.QJL_DENSE, "structured": _tq.QJL_STRUCTURED}
_NORMS = {"plain": _tq.NORM_PLAIN, "unit": _tq.NORM_UNIT, "unbiased": _tq.NORM_UNBIASED}
_METRICS = {"ip": _tq.METRIC_IP, "l2": _tq.METRIC_L2}
_INDEX_METRICS = {"ip": _tq.INDEX_IP, "l2": _tq.INDEX_L2, "cosine": _tq.INDEX_COSINE}
_RERANKS = {"none": _tq.RERANK_NONE, "float": _tq.RERANK_FLOAT, "code": _tq.RERANK_CODE}
_CENTERS = {"none": _tq.CENTER_NONE, "first": _tq.CENTER_FIRST}
_KV_CENTERS = {
    "none": _tq.KV_CENTER_NONE,
    "keys": _tq.KV_CENTER_KEYS,
    "values": _tq.KV_CENTER_VALUES,
    "both": _tq.KV_CENTER_BOTH,
}
_KV_FACTORS = {"f16": _tq.KV_FACTOR_F16, "f32": _tq.KV_FACTOR_F32}


def _enum(table: Dict[str, int], value: str, what: str) -> int:
    try:
        return table[str(value).lower()]
    except KeyError:
        raise ValueError("%s must be one of %s, got %r" % (what, ", ".join(repr(k) for k in table), value)) from None


def _name(table: Dict[str, int], value: int) -> str:
    for k, v in table.items():
        if v == value:
            return k
    return str(value)


def _count(value: Any, what: str, minimum: int = 0) -> int:
    try:
        v = operator.index(value)
    except TypeError:
        raise TypeError("%s must be an integer, got %r" % (what, value)) from None
    if v < minimum:
        raise ValueError("%s must be >= %d, got %d" % (what, minimum, v))
    return v


def _f32(x: ArrayLike) -> np.ndarray:
    return np.ascontiguousarray(x, dtype=np.float32)


def _i64(x: ArrayLike) -> np.ndarray:
    return np.ascontiguousarray(x, dtype=np.int64)


def _rows(x: ArrayLike, dim: int, what: str) -> Tuple[np.ndarray, bool]:
    """float32 C-contiguous (n, dim) view of x; also whether x was one vector (dim,)."""
    a = _f32(x)
    if a.ndim == 1:
        if a.shape[0] != dim:
            raise ValueError("%s has %d values, expected dim = %d" % (what, a.shape[0], dim))
        return a.reshape(1, dim), True
    if a.ndim != 2 or a.shape[1] != dim:
        raise ValueError("%s must have shape (n, %d) or (%d,), got %s" % (what, dim, dim, a.shape))
    return a, False


def _scale(scale: Optional[float]) -> float:
    if scale is None:
        return 0.0
    s = float(scale)
    if not (s > 0.0 and np.isfinite(s)):
        raise ValueError("scale must be a finite number > 0 (or None for 1/sqrt(head_dim)), got %r" % (scale,))
    return s


def _positions(q_pos: Optional[ArrayLike], nq: int) -> Optional[np.ndarray]:
    if q_pos is None:
        return None
    p = _i64(q_pos).reshape(-1)
    if p.shape[0] != nq:
        raise ValueError("q_pos has %d entries, expected one per query token (%d)" % (p.shape[0], nq))
    return p


# ------------------------------------------------------------------ library


def set_threads(n: int) -> None:
    """Threads used for batch work (tq_set_threads): 0 = all online cores, 1 = the calling thread."""
    _tq.set_threads(_count(n, "n"))


def get_threads() -> int:
    """Thread count batch work uses now (tq_get_threads)."""
    return _tq.get_threads()


def kernel_name() -> str:
    """The kernel table this process runs: "ref", "avx2" or "avx512" (tq_kernel_name)."""
    return _tq.kernel_name()


def build_info() -> str:
    """One line on how the library was built (tq_build_info)."""
    return _tq.build_info()


def codebook(dim: int, bits: int) -> Tuple[np.ndarray, float]:
    """The Lloyd-Max codebook for one coordinate of a uniform unit vector in R^dim (tq_codebook_get).

    Returns (centroids float32 (2**bits,), predicted E||x - x~||^2 for unit x).
    """
    bits = _count(bits, "bits", 1)
    if bits > _tq.MAX_BITS:
        raise ValueError("bits must be 1..%d, got %d" % (_tq.MAX_BITS, bits))
    out = np.empty(1 << bits, dtype=np.float32)
    mse = _tq.codebook(_count(dim, "dim"), bits, out)
    return out, mse


def read_vectors(path: PathLike, max_rows: int = 0) -> np.ndarray:
    """Read float32 vectors from .npy, .fvecs or .bvecs (tq_read_vectors) -> float32 (n, dim).

    max_rows = 0 reads all rows. NaN/Inf raise TQError (TQ_ERR_NONFINITE); this build has no HDF5.
    """
    buf, n, dim = _tq.read_vectors(os.fspath(path), _count(max_rows, "max_rows"))
    return np.frombuffer(buf, dtype=np.float32).reshape(n, dim)


# ---------------------------------------------------------------- Quantizer


class Quantizer:
    """A TurboQuant quantizer (tq_quantizer): float32 vectors of ``dim`` values to fixed-size codes.

    Args:
        dim: vector dimension.
        bits: bits per coordinate, 1..8; fractional (e.g. 2.5) splits the channels
            into an outlier set at ceil(bits) and the rest at floor(bits) (tq_config_set_bits).
        variant: "mse" (Algorithm 1), "prod" (Algorithm 2: unbiased inner products),
            "qjl" (1 bit) or "uniform" (scalar baseline, per vector).
        rotation: "hadamard" (default), "dense" (Haar-random, dim <= 4096) or "none".
        norm: MSE per-vector scale: "plain" (paper), "unit" or "unbiased".
        seed: everything random derives from it; the same config gives bit-identical codes everywhere.
        qjl: "dense" (paper) or "structured" QJL map (prod and qjl variants).
        rounds: Hadamard rounds, 1..8.

    A quantizer is read-only: encode, decode and score may run from many threads at once.
    """

    __slots__ = ("_h",)

    def __init__(
        self,
        dim: int,
        bits: float,
        variant: str = "mse",
        rotation: str = "hadamard",
        norm: str = "plain",
        seed: int = 0,
        qjl: str = "dense",
        rounds: int = 2,
    ) -> None:
        self._h = _tq.quantizer_create(
            _count(dim, "dim", 1),
            float(bits),
            _enum(_VARIANTS, variant, "variant"),
            _enum(_ROTATIONS, rotation, "rotation"),
            _enum(_NORMS, norm, "norm"),
            _count(seed, "seed"),
            _enum(_QJL, qjl, "qjl"),
            _count(rounds, "rounds"),
        )

    @classmethod
    def _wrap(cls, handle: Any) -> "Quantizer":
        self = cls.__new__(cls)
        self._h = handle
        return self

    @classmethod
    def load(cls, path: PathLike) -> "Quantizer":
        """Load a quantizer file written by :meth:`save` (tq_quantizer_load)."""
        return cls._wrap(_tq.quantizer_load(os.fspath(path)))

    @classmethod
    def from_bytes(cls, data: bytes) -> "Quantizer":
        """Rebuild a quantizer from :meth:`to_bytes` output (tq_quantizer_deserialize)."""
        return cls._wrap(_tq.quantizer_deserialize(data))

    def save(self, path: PathLike) -> None:
        """Write the quantizer to a file, atomically (tq_quantizer_save)."""
        self._h.save(os.fspath(path))

    def to_bytes(self) -> bytes:
        """The serialized quantizer (tq_quantizer_serialize), the same bytes :meth:`save` writes."""
        return self._h.serialize()

    @property
    def dim(self) -> int:
        """Vector dimension."""
        return self._h.dim()

    @property
    def code_size(self) -> int:
        """Bytes of one encoded vector."""
        return self._h.code_size()

    @property
    def bits_per_value(self) -> float:
        """Stored bits per coordinate, per-vector factors included (code_size * 8 / dim)."""
        return self._h.bits_per_value()

    @property
    def fingerprint(self) -> int:
        """The 32-bit fingerprint that ties code files to this quantizer."""
        return self._h.fingerprint()

    @property
    def config(self) -> Dict[str, Any]:
        """The configuration (tq_quantizer_get_config), enums as names."""
        c = self._h.config()
        c["variant"] = _name(_VARIANTS, c["variant"])
        c["rotation"] = _name(_ROTATIONS, c["rotation"])
        c["qjl"] = _name(_QJL, c["qjl"])
        c["norm"] = _name(_NORMS, c["norm"])
        return c

    def encode(self, x: ArrayLike) -> np.ndarray:
        """Encode float32 vectors: (n, dim) -> uint8 (n, code_size); one vector (dim,) -> (code_size,).

        NaN or Inf anywhere rejects the whole batch (TQError, status TQ_ERR_NONFINITE).
        """
        a, single = _rows(x, self.dim, "x")
        out = np.empty((a.shape[0], self.code_size), dtype=np.uint8)
        self._h.encode(a, out)
        return out[0] if single else out

    def decode(self, codes: ArrayLike) -> np.ndarray:
        """Decode records: uint8 (n, code_size) -> float32 (n, dim); one record (code_size,) -> (dim,)."""
        c, single = self._codes(codes)
        out = np.empty((c.shape[0], self.dim), dtype=np.float32)
        self._h.decode(c, out)
        return out[0] if single else out

    def score(self, query: ArrayLike, codes: ArrayLike, metric: str = "ip") -> np.ndarray:
        """Score one query (dim,) against records (n, code_size) straight from the codes -> float32 (n,).

        metric "ip" estimates <q, x_i>; "l2" estimates ||q - x_i||^2
        (tq_query_create + tq_query_set + tq_score).
        """
        q = _f32(query).reshape(-1)
        if q.shape[0] != self.dim:
            raise ValueError("query has %d values, expected dim = %d" % (q.shape[0], self.dim))
        c, _ = self._codes(codes)
        out = np.empty(c.shape[0], dtype=np.float32)
        self._h.score(q, _enum(_METRICS, metric, "metric"), c, out)
        return out

    def _codes(self, codes: ArrayLike) -> Tuple[np.ndarray, bool]:
        c = np.ascontiguousarray(codes, dtype=np.uint8)
        cs = self.code_size
        if c.ndim == 1:
            if c.shape[0] != cs:
                raise ValueError("codes has %d bytes, expected code_size = %d" % (c.shape[0], cs))
            return c.reshape(1, cs), True
        if c.ndim != 2 or c.shape[1] != cs:
            raise ValueError("codes must have shape (n, %d) or (%d,), got %s" % (cs, cs, c.shape))
        return c, False

    def save_codes(self, codes: ArrayLike, path: PathLike) -> None:
        """Write records (n, code_size) to a code-array file tied to this quantizer (tq_codes_save)."""
        c, _ = self._codes(codes)
        self._h.codes_save(c, os.fspath(path))

    def load_codes(self, path: PathLike) -> np.ndarray:
        """Read a code-array file written for this quantizer -> uint8 (n, code_size) (tq_codes_load).

        A file written for another quantizer raises TQError (TQ_ERR_MISMATCH).
        """
        buf, n = self._h.codes_load(os.fspath(path))
        return np.frombuffer(buf, dtype=np.uint8).reshape(n, self.code_size)

    def __repr__(self) -> str:
        c = self._h.config()
        return "tq.Quantizer(dim=%d, variant=%r, code_size=%d, bits_per_value=%.4g)" % (
            c["dim"],
            _name(_VARIANTS, c["variant"]),
            self.code_size,
            self.bits_per_value,
        )


# -------------------------------------------------------------------- Index


class Index:
    """A flat, training-free compressed vector index (tq_index).

    Args:
        dim: vector dimension.
        bits: bits per coordinate of the search quantizer (fractional allowed, as in :class:`Quantizer`).
        metric: "ip" (larger is closer), "l2" (squared distance, smaller is closer) or "cosine".
        variant: quantizer variant (see :class:`Quantizer`).
        rerank: "none", "float" (keep float32 vectors, exact scores for the shortlist) or
            "code" (a second, finer code of ``rerank_bits``).
        center: "first" (the mean of the first :meth:`add`), "none", or a (dim,) array (a given center).
        seed: quantizer seed.
        norm: the quantizer's norm mode; None means "unbiased" for "mse" (the library's index default,
            best ranking) and "plain" for the other variants (which require it).
        rotation: "hadamard", "dense" or "none".
        rerank_bits: bits of the rerank code (rerank="code"); 0 means the default, 8.

    Vectors are searchable the moment :meth:`add` returns. Searches may run from many threads at once;
    add/remove/save take an exclusive lock.
    """

    __slots__ = ("_h",)

    def __init__(
        self,
        dim: int,
        bits: float,
        metric: str = "ip",
        variant: str = "mse",
        rerank: str = "none",
        center: Union[str, ArrayLike] = "first",
        seed: int = 0,
        *,
        norm: Optional[str] = None,
        rotation: str = "hadamard",
        rerank_bits: int = 0,
    ) -> None:
        dim = _count(dim, "dim", 1)
        v = _enum(_VARIANTS, variant, "variant")
        if norm is None:
            norm = "unbiased" if v == _tq.VARIANT_MSE else "plain"
        if isinstance(center, str):
            cmode, cvec = _enum(_CENTERS, center, "center"), None
        else:
            cvec = _f32(center).reshape(-1)
            if cvec.shape[0] != dim:
                raise ValueError("center has %d values, expected dim = %d" % (cvec.shape[0], dim))
            cmode = _tq.CENTER_GIVEN
        self._h = _tq.index_create(
            dim,
            float(bits),
            _enum(_INDEX_METRICS, metric, "metric"),
            v,
            _enum(_NORMS, norm, "norm"),
            _enum(_ROTATIONS, rotation, "rotation"),
            _enum(_RERANKS, rerank, "rerank"),
            _count(rerank_bits, "rerank_bits"),
            cmode,
            cvec,
            _count(seed, "seed"),
        )

    @classmethod
    def load(cls, path: PathLike, mmap: bool = False) -> "Index":
        """Load an index file (tq_index_load), or open it memory-mapped with ``mmap=True`` (tq_index_open_mmap)."""
        self = cls.__new__(cls)
        self._h = _tq.index_load(os.fspath(path), bool(mmap))
        return self

    def save(self, path: PathLike) -> None:
        """Write the index to a file, atomically (tq_index_save)."""
        self._h.save(os.fspath(path))

    @property
    def dim(self) -> int:
        """Vector dimension."""
        return self._h.dim()

    @property
    def quantizer(self) -> Quantizer:
        """The search quantizer (owned by the index; the returned object keeps the index alive)."""
        return Quantizer._wrap(self._h.quantizer())

    @property
    def config(self) -> Dict[str, Any]:
        """The configuration (tq_index_get_config), enums as names."""
        c = self._h.config()
        c["metric"] = _name(_INDEX_METRICS, c["metric"])
        c["rerank"] = _name(_RERANKS, c["rerank"])
        c["center"] = {_tq.CENTER_NONE: "none", _tq.CENTER_FIRST: "first", _tq.CENTER_GIVEN: "given"}.get(
            c["center"], c["center"]
        )
        q = c["quant"]
        for key, table in (("variant", _VARIANTS), ("rotation", _ROTATIONS), ("qjl", _QJL), ("norm", _NORMS)):
            q[key] = _name(table, q[key])
        return c

    def __len__(self) -> int:
        return self._h.size()

    def add(self, x: ArrayLike, ids: Optional[ArrayLike] = None) -> np.ndarray:
        """Add vectors (n, dim) (or one (dim,)); returns the int64 ids used (n,).

        ids: n distinct ids >= 0 not in the index, or None to number them automatically
        (one more than the largest id ever added). All or nothing: on failure
        (NaN, duplicate id) the index is unchanged.
        """
        a, _ = _rows(x, self.dim, "x")
        n = a.shape[0]
        idv = None
        if ids is not None:
            idv = _i64(ids).reshape(-1)
            if idv.shape[0] != n:
                raise ValueError("ids has %d entries, expected one per vector (%d)" % (idv.shape[0], n))
        out = np.empty(n, dtype=np.int64)
        self._h.add(a, idv, out)
        return out

    def remove(self, ids: ArrayLike) -> int:
        """Remove the vectors with these ids; ids not present are skipped. Returns how many were removed."""
        return self._h.remove(_i64(ids).reshape(-1))

    def search(
        self, queries: ArrayLike, k: int, *, shortlist: int = 0, rerank: int = 0
    ) -> Tuple[np.ndarray, np.ndarray]:
        """Top k for each query: (nq, dim) -> (ids int64 (nq, k), scores float32 (nq, k)), best first.

        One query (dim,) gives (k,) arrays. With fewer than k vectors the rest are id -1, score NaN.
        shortlist / rerank: search knobs (tq_search_params); 0 means the library's default.
        """
        a, single = _rows(queries, self.dim, "queries")
        k = _count(k, "k", 1)
        ids = np.empty((a.shape[0], k), dtype=np.int64)
        scores = np.empty((a.shape[0], k), dtype=np.float32)
        self._h.search(a, k, _count(shortlist, "shortlist"), _count(rerank, "rerank"), ids, scores)
        if single:
            return ids[0], scores[0]
        return ids, scores

    def memory_usage(self) -> Dict[str, int]:
        """Bytes held (tq_index_memory_usage): codes, rerank, ids, total, mapped."""
        return self._h.memory_usage()

    def __repr__(self) -> str:
        return "tq.Index(dim=%d, size=%d)" % (self.dim, len(self))


# ------------------------------------------------------------------ KVCache


class KVCache:
    """Compressed keys and values of one attention layer (tq_kv), attention computed from the codes.

    Args:
        kv_heads: key/value heads.
        head_dim: channels per head.
        key_bits, value_bits: bits per channel (fractional allowed: 2.5, 3.5 split the channels).
        window: the most recent ``window`` tokens are kept exact (float32).
        sinks: the first ``sinks`` tokens are kept exact (attention sinks).
        center: "keys" (default), "values", "both" or "none": per-head centering by the mean of the
            first append (exact for the softmax; it shortens what is quantized).
        factors: per-token factors stored as "f16" (default) or "f32".
        seed: key quantizer seed; the value quantizer uses seed + 1.

    Layouts: keys/values (n, kv_heads, head_dim); queries and outputs (nq, q_heads, head_dim),
    q_heads a multiple of kv_heads (GQA). Safe from many threads: attends run side by
    side, an append runs alone.
    """

    __slots__ = ("_h", "_kv_heads", "_head_dim")

    def __init__(
        self,
        kv_heads: int,
        head_dim: int,
        key_bits: float,
        value_bits: float,
        window: int = 0,
        sinks: int = 4,
        center: str = "keys",
        factors: str = "f16",
        seed: int = 0,
    ) -> None:
        self._kv_heads = _count(kv_heads, "kv_heads", 1)
        self._head_dim = _count(head_dim, "head_dim", 1)
        self._h = _tq.kv_create(
            self._kv_heads,
            self._head_dim,
            float(key_bits),
            float(value_bits),
            _count(window, "window"),
            _count(sinks, "sinks"),
            _enum(_KV_CENTERS, center, "center"),
            _enum(_KV_FACTORS, factors, "factors"),
            _count(seed, "seed"),
        )

    @property
    def kv_heads(self) -> int:
        """Key/value heads."""
        return self._kv_heads

    @property
    def head_dim(self) -> int:
        """Channels per head."""
        return self._head_dim

    @property
    def config(self) -> Dict[str, Any]:
        """The configuration (tq_kv_get_config), enums as names."""
        c = self._h.config()
        c["center"] = _name(_KV_CENTERS, c["center"])
        c["factors"] = _name(_KV_FACTORS, c["factors"])
        c["outliers"] = {0: "fixed", 1: "first"}.get(c["outliers"], c["outliers"])
        for side in ("key", "value"):
            for key, table in (("variant", _VARIANTS), ("rotation", _ROTATIONS), ("qjl", _QJL), ("norm", _NORMS)):
                c[side][key] = _name(table, c[side][key])
        return c

    def __len__(self) -> int:
        return self._h.length()

    @property
    def token_bytes(self) -> Tuple[int, int]:
        """Bytes of one compressed token per KV head: (key_bytes, value_bytes) (tq_kv_token_bytes).

        All heads together: ``(key_bytes + value_bytes) * kv_heads``.
        """
        _, kb, vb = self._h.token_bytes()
        return kb, vb

    def memory_usage(self) -> Dict[str, int]:
        """Bytes held (tq_kv_memory_usage): tokens, compressed, key_codes, value_codes, window,
        reserved, quantizers, centers, total."""
        return self._h.memory_usage()

    def _tokens(self, x: ArrayLike, what: str) -> np.ndarray:
        a = _f32(x)
        H, D = self._kv_heads, self._head_dim
        if a.ndim == 3 and a.shape[1:] == (H, D):
            return a
        if a.ndim == 2 and a.shape[1] == H * D:
            return a
        raise ValueError(
            "%s must have shape (n, %d, %d) or (n, %d), got %s" % (what, H, D, H * D, a.shape)
        )

    def append(self, keys: ArrayLike, values: ArrayLike) -> None:
        """Append n tokens: keys and values (n, kv_heads, head_dim) or (n, kv_heads * head_dim).

        All or nothing: NaN/Inf, a factor beyond fp16 range or no memory leave the cache unchanged.
        """
        k = self._tokens(keys, "keys")
        v = self._tokens(values, "values")
        if k.shape[0] != v.shape[0]:
            raise ValueError("keys hold %d tokens but values %d" % (k.shape[0], v.shape[0]))
        self._h.append(k, v)

    def _queries(self, q: ArrayLike, ndim: int, what: str) -> np.ndarray:
        a = _f32(q)
        D = self._head_dim
        shape = "(nq, q_heads, %d)" % D if ndim == 3 else "(q_heads, %d)" % D
        if a.ndim != ndim or a.shape[-1] != D:
            raise ValueError("%s must have shape %s, got %s" % (what, shape, a.shape))
        qh = a.shape[-2]
        if qh == 0 or qh % self._kv_heads != 0:
            raise ValueError(
                "%s has %d query heads, which is not a positive multiple of kv_heads = %d" % (what, qh, self._kv_heads)
            )
        return a

    def attend(self, q: ArrayLike, q_pos: Optional[ArrayLike] = None, scale: Optional[float] = None) -> np.ndarray:
        """softmax(scale * q K^T) V from the codes: q (nq, q_heads, head_dim) -> float32 (nq, q_heads, head_dim).

        q_pos: per query token, the last position it attends (causal; < len(self)); None attends every token.
        scale: None means 1 / sqrt(head_dim).
        """
        a = self._queries(q, 3, "q")
        nq, qh = a.shape[0], a.shape[1]
        out = np.empty(a.shape, dtype=np.float32)
        self._h.attend(a, qh, _positions(q_pos, nq), _scale(scale), out)
        return out

    def logits(self, q: ArrayLike, ntok: Optional[int] = None, scale: Optional[float] = None) -> np.ndarray:
        """The logits scale * <q, k_t> the cache computes for one query token q (q_heads, head_dim)
        and tokens 0..ntok-1 (default: all) -> float32 (q_heads, ntok)."""
        a = self._queries(q, 2, "q")
        n = len(self) if ntok is None else _count(ntok, "ntok")
        out = np.empty((a.shape[0], n), dtype=np.float32)
        self._h.logits(a, a.shape[0], n, _scale(scale), out)
        return out

    def decode(self, start: int = 0, n: Optional[int] = None) -> Tuple[np.ndarray, np.ndarray]:
        """Tokens start .. start+n-1 (default: to the end) back as float32 keys and values, each
        (n, kv_heads, head_dim) (tq_kv_decode): sink and window tokens exactly, compressed tokens
        decoded from their codes. For inspection or float attention kernels; attend() never decodes."""
        s = _count(start, "start")
        m = len(self) - s if n is None else _count(n, "n")
        keys = np.empty((m, self._kv_heads, self._head_dim), dtype=np.float32)
        values = np.empty((m, self._kv_heads, self._head_dim), dtype=np.float32)
        self._h.decode(s, m, keys, values)
        return keys, values

    def __repr__(self) -> str:
        return "tq.KVCache(kv_heads=%d, head_dim=%d, tokens=%d)" % (self._kv_heads, self._head_dim, len(self))


def attention_f32(
    keys: ArrayLike,
    values: ArrayLike,
    q: ArrayLike,
    q_pos: Optional[ArrayLike] = None,
    scale: Optional[float] = None,
) -> np.ndarray:
    """Float32 reference attention on plain arrays (tq_attention_f32), same conventions as
    :meth:`KVCache.attend`: keys, values (ntok, kv_heads, head_dim); q (nq, q_heads, head_dim)
    -> float32 (nq, q_heads, head_dim). Scores and softmax are computed in double."""
    k = _f32(keys)
    v = _f32(values)
    a = _f32(q)
    if k.ndim != 3:
        raise ValueError("keys must have shape (ntok, kv_heads, head_dim), got %s" % (k.shape,))
    if v.shape != k.shape:
        raise ValueError("values must have the shape of keys %s, got %s" % (k.shape, v.shape))
    ntok, H, D = k.shape
    if a.ndim != 3 or a.shape[2] != D:
        raise ValueError("q must have shape (nq, q_heads, %d), got %s" % (D, a.shape))
    if H == 0 or a.shape[1] == 0 or a.shape[1] % H != 0:
        raise ValueError("q has %d query heads, which is not a positive multiple of kv_heads = %d" % (a.shape[1], H))
    out = np.empty(a.shape, dtype=np.float32)
    _tq.attention_f32(k, v, H, D, a, a.shape[1], _positions(q_pos, a.shape[0]), _scale(scale), out)
    return out
