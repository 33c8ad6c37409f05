#!/usr/bin/env python3
"""format_oracle.py — an independent decoder of tq's files, written from docs/format.md.

    python3 tests/format_oracle.py TQ_BINARY DATA_FILE TMPDIR

It proves that docs/format.md describes every byte tq writes. For a matrix of
configurations (every variant, rotation, norm mode, QJL kind, uniform mode and
scope, an outlier split, dims 24/37/100/784, bit widths 1..8) it runs
`tq encode` on rows cut from DATA_FILE (an .fvecs file), then

  1. parses the quantizer file (TQQZ) and the code file (TQCA) byte by byte as
     the document specifies: magic, versions, header sizes, every header field
     and its "unused fields are 0" rule, reserved fields, file_size, code_size
     (recomputed from the record layout of §1), every payload section, both
     CRC-32C checks of each file (CRC-32C implemented here), and the
     fingerprint that ties the codes to the quantizer;
  2. checks what the stored sections mean (§2.2-2.4): codebooks sorted,
     symmetric, bounds the float32 midpoints, centroids satisfying the
     Lloyd-Max condition for the coordinate law of the sphere; dense
     rotations orthogonal; per-channel ranges sane;
  3. decodes every record with numpy alone (§1, §1.5): plane unpacking,
     padding bits zero, sign bits, float32 and float16 factors, the Hadamard
     map regenerated from the seed (Philox4x32-10 from tests/gen/), the
     QJL constant kappa, the outlier split;
  4. re-derives what the encoder must have stored from the input rows (the
     factors' meaning of §1.2, indices as #{k : v > bound[k]}, QJL sign bits,
     uniform levels, all-zero records for zero vectors), allowing a different
     choice only where a value lies within float32 rounding of a decision
     boundary;
  5. compares its decoded vectors with `tq decode`: per row,
     max_j |oracle_j - tq_j| <= 1e-5 * (1 + max_j |tq_j|)
     (tq decodes in float32, the oracle in float64).

Nothing here imports or links tq's C code; the Philox stream and integer
shuffles come from tests/gen/gen_rng_golden.py, itself an independent Python
implementation of src/core/rng.h's specification.

Prints one line per case and finally "N passed, M failed"; exits 1 on any
failure (or if numpy is missing), 2 on a usage error.
"""
import math
import os
import struct
import subprocess
import sys

try:
    import numpy as np
except ImportError:
    print("format_oracle: numpy is required (Debian: apt-get install python3-numpy); %s has none" % sys.executable,
          file=sys.stderr)
    sys.exit(1)

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "gen"))
from gen_rng_golden import Rng  # noqa: E402  (independent Philox4x32-10 of rng.h)

MSE, PROD, QJL, UNIFORM = 0, 1, 2, 3
R_NONE, R_DENSE, R_HADAMARD = 0, 1, 2
Q_DENSE, Q_STRUCTURED = 0, 1
N_PLAIN, N_UNIT, N_UNBIASED = 0, 1, 2
U_SYM, U_ASYM = 0, 1
S_VECTOR, S_CHANNEL, S_GROUP = 0, 1, 2
TOL = 1e-5


class FormatError(Exception):
    pass


def need(cond, what):
    if not cond:
        raise FormatError(what)


# ---------------------------------------------------------------- CRC-32C

def _crc_table():
    t = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        t.append(c)
    return t


CRC_TABLE = _crc_table()


def crc32c(data, crc=0):
    """CRC-32C (Castagnoli): reflected 0x82F63B78, init and final XOR 0xFFFFFFFF."""
    c = crc ^ 0xFFFFFFFF
    t = CRC_TABLE
    for b in bytes(data):
        c = t[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


assert crc32c(b"123456789") == 0xE3069283
assert crc32c(b"") == 0


# ---------------------------------------------------------------- little-endian fields

def u16(b, o):
    return struct.unpack_from("<H", b, o)[0]


def u32(b, o):
    return struct.unpack_from("<I", b, o)[0]


def u64(b, o):
    return struct.unpack_from("<Q", b, o)[0]


# ---------------------------------------------------------------- the Hadamard map (§2.3)

def pow2_blocks(d):
    """Greedy power-of-two split of d, from offset 0 upwards."""
    out, off = [], 0
    while off < d:
        b = 1
        while b * 2 <= d - off:
            b *= 2
        out.append((off, b))
        off += b
    return out


_HCACHE = {}


def hadamard_matrix(n):
    """Orthonormal Walsh-Hadamard matrix in natural (Sylvester) order, H[i][j] = (-1)^popcount(i&j)/sqrt(n)."""
    if n not in _HCACHE:
        h = np.ones((1, 1))
        while h.shape[0] < n:
            h = np.block([[h, h], [h, -h]])
        _HCACHE[n] = h / math.sqrt(n)
    return _HCACHE[n]


class HadamardMap:
    """rounds x (signs D_r, block WHT, permutation P_r) drawn from Rng(seed, stream), §2.3."""

    def __init__(self, d, rounds, seed, stream):
        self.d, self.rounds = d, rounds
        r = Rng(seed, stream)
        self.signs, self.perms = [], []
        for _ in range(rounds):
            s = np.empty(d)
            for i in range(0, d, 32):
                w = r.u32()
                for b in range(min(32, d - i)):
                    s[i + b] = -1.0 if (w >> b) & 1 else 1.0
            p = list(range(d))
            for i in range(d - 1, 0, -1):
                j = r.below(i + 1)
                p[i], p[j] = p[j], p[i]
            self.signs.append(s)
            self.perms.append(np.array(p))
        self.blocks = pow2_blocks(d)

    def _wht(self, x):
        out = np.empty_like(x)
        for off, b in self.blocks:
            out[:, off:off + b] = x[:, off:off + b] @ hadamard_matrix(b)
        return out

    def forward(self, x):  # rows
        for r in range(self.rounds):
            x = self._wht(x * self.signs[r])[:, self.perms[r]]
        return x

    def inverse(self, y):
        for r in reversed(range(self.rounds)):
            t = np.empty_like(y)
            t[:, self.perms[r]] = y
            y = self._wht(t) * self.signs[r]
        return y


def sphere_abs_mean(d):
    """E|u_1| for u uniform on S^{d-1}: Gamma(d/2) / (sqrt(pi) Gamma((d+1)/2))."""
    return math.exp(math.lgamma(d / 2.0) - math.lgamma((d + 1) / 2.0)) / math.sqrt(math.pi)


# ---------------------------------------------------------------- TQQZ (§2)

VARIANT_NAMES = {MSE: "mse", PROD: "prod", QJL: "qjl", UNIFORM: "uniform"}


def plane_widths(bits):
    if bits == 8:
        return [8]
    out = []
    for w in (4, 2, 1):
        while bits >= w:
            out.append(w)
            bits -= w
    return out


def pack_size(d, bits):
    return sum((d * w + 7) // 8 for w in plane_widths(bits))


class Part:
    pass


def parse_quantizer(buf):
    """Parse and check a TQQZ file; return a dict describing the quantizer."""
    n = len(buf)
    need(n >= 8, "quantizer: shorter than 8 bytes")
    need(buf[0:4] == b"TQQZ", "quantizer: magic %r" % buf[0:4])
    need(u16(buf, 4) == 1 and u16(buf, 6) == 0, "quantizer: version %d.%d, tq writes 1.0" % (u16(buf, 4), u16(buf, 6)))
    hs = u32(buf, 8)
    need(hs == 96, "quantizer: header_size %d != 96" % hs)
    need(n >= hs, "quantizer: truncated header")
    need(u32(buf, hs - 4) == crc32c(buf[0:hs - 4]), "quantizer: header CRC mismatch")
    need(u32(buf, 12) == 0, "quantizer: flags not 0")
    need(u32(buf, 88) == 0, "quantizer: reserved u32 at 88 not 0")
    need(u64(buf, 16) == n, "quantizer: file_size %d != length %d" % (u64(buf, 16), n))
    q = {}
    for name, off in (("dim", 24), ("bits", 28), ("variant", 32), ("rotation", 36), ("rounds", 40), ("qjl", 44),
                      ("norm", 48), ("outlier_count", 52), ("outlier_bits", 56), ("uniform_mode", 60),
                      ("uniform_scope", 64), ("group_size", 68), ("calibrated", 80), ("code_size", 84)):
        q[name] = u32(buf, off)
    q["seed"] = u64(buf, 72)
    d, v = q["dim"], q["variant"]
    need(1 <= d <= 65536, "dim %d" % d)
    need(1 <= q["bits"] <= 8, "bits %d" % q["bits"])
    need(v <= 3 and q["rotation"] <= 2 and q["qjl"] <= 1 and q["norm"] <= 2 and q["uniform_mode"] <= 1
         and q["uniform_scope"] <= 2, "an enum is out of range")
    has_qjl = v in (PROD, QJL)
    uses_seed = q["rotation"] == R_HADAMARD or (has_qjl and q["qjl"] == Q_STRUCTURED)
    # §2.1: fields a configuration does not use are written as 0
    if uses_seed:
        need(1 <= q["rounds"] <= 8, "rounds %d must be 1..8 when used" % q["rounds"])
    else:
        need(q["rounds"] == 0 and q["seed"] == 0, "rounds/seed unused but not 0 (%d, %d)" % (q["rounds"], q["seed"]))
    need(has_qjl or q["qjl"] == 0, "qjl set for a variant without QJL")
    need(v == MSE or q["norm"] == 0, "norm set for a non-MSE variant")
    need(v == UNIFORM or (q["uniform_mode"] == 0 and q["uniform_scope"] == 0), "uniform fields set for non-uniform")
    group = v == UNIFORM and q["uniform_scope"] == S_GROUP
    need((q["group_size"] >= 1) if group else q["group_size"] == 0, "group_size %d" % q["group_size"])
    k = q["outlier_count"]
    need(k < d, "outlier_count %d >= dim" % k)
    need((1 <= q["outlier_bits"] <= 8) if k else q["outlier_bits"] == 0, "outlier_bits %d" % q["outlier_bits"])
    per_channel = v == UNIFORM and q["uniform_scope"] == S_CHANNEL
    need(q["calibrated"] in (0, 1) and (per_channel or q["calibrated"] == 0), "calibrated %d" % q["calibrated"])

    # parts and the record layout (§1.1, §1.2)
    parts = []
    dims = [(k, q["outlier_bits"]), (d - k, q["bits"])] if k else [(d, q["bits"])]
    off = 0
    for p, (dp, b) in enumerate(dims):
        pt = Part()
        pt.index, pt.dim, pt.bits = p, dp, b
        pt.mse_bits = {MSE: b, UNIFORM: b, PROD: b - 1, QJL: 0}[v]
        pt.has_qjl = has_qjl
        if v == MSE:
            pt.nfactors = 2 if q["norm"] == N_UNBIASED else 1
        elif v in (PROD, QJL):
            pt.nfactors = 2 if pt.mse_bits else 1
        else:
            pt.nfactors = (2 if q["uniform_mode"] == U_ASYM else 1) if q["uniform_scope"] == S_VECTOR else 0
        if group:
            need(dp % q["group_size"] == 0, "group_size %d does not divide part %d's %d channels"
                 % (q["group_size"], p, dp))
            pt.group_bytes = (dp // q["group_size"]) * (4 if q["uniform_mode"] == U_ASYM else 2)
        else:
            pt.group_bytes = 0
        pt.idx_bytes = pack_size(dp, pt.mse_bits) if pt.mse_bits else 0
        pt.sign_bytes = (dp + 7) // 8 if has_qjl else 0
        pt.off_group = 4 * pt.nfactors
        pt.off_idx = pt.off_group + pt.group_bytes
        pt.off_sign = pt.off_idx + pt.idx_bytes
        pt.code_size = pt.off_sign + pt.sign_bytes
        pt.offset = off
        off += pt.code_size
        parts.append(pt)
    need(off == q["code_size"], "code_size %d in the header, layout of §1 gives %d" % (q["code_size"], off))

    # payload (§2.2): sizes from the header alone
    pos = hs
    end = n - 4

    def take(count, dtype):
        nonlocal pos
        nb = count * np.dtype(dtype).itemsize
        need(pos + nb <= end, "payload shorter than the sections the header implies")
        a = np.frombuffer(buf, dtype=dtype, count=count, offset=pos)
        pos += nb
        return a

    if k:
        ol = take(k, "<u4").astype(np.int64)
        need(np.all(np.diff(ol) > 0) and ol[-1] < d, "outlier list not strictly increasing / < dim")
        channels = [ol, np.array([c for c in range(d) if c not in set(ol.tolist())], dtype=np.int64)]
    else:
        channels = [np.arange(d)]
    for pt in parts:
        pt.channels = channels[pt.index]
        pt.codebook = pt.bounds = pt.rot = pt.qjl = pt.lo = pt.step = None
        if v == MSE or (v == PROD and pt.mse_bits >= 1):
            L = 1 << pt.mse_bits
            pt.codebook = take(L, "<f4").astype(np.float64)
            pt.bounds = take(L - 1, "<f4").astype(np.float64)
        if q["rotation"] == R_DENSE:
            pt.rot = take(pt.dim * pt.dim, "<f4").astype(np.float64).reshape(pt.dim, pt.dim)
        if has_qjl and q["qjl"] == Q_DENSE:
            pt.qjl = take(pt.dim * pt.dim, "<f4").astype(np.float64).reshape(pt.dim, pt.dim)
        if per_channel and q["calibrated"]:
            pt.lo = take(pt.dim, "<f4").astype(np.float64)
            pt.step = take(pt.dim, "<f4").astype(np.float64)
    need(pos == end, "payload has %d bytes beyond the sections of 1.0" % (end - pos))
    need(u32(buf, end) == crc32c(buf[hs:end]), "quantizer: payload CRC mismatch")

    # what the stored sections mean (§2.3, §2.4)
    for pt in parts:
        if pt.codebook is not None:
            check_codebook(pt)
        if pt.rot is not None:
            err = np.abs(pt.rot @ pt.rot.T - np.eye(pt.dim)).max()
            need(err < 1e-5, "part %d: dense rotation is not orthogonal (|M M^T - I| = %.2g)" % (pt.index, err))
        if pt.qjl is not None:
            need(np.all(np.isfinite(pt.qjl)), "part %d: dense QJL matrix not finite" % pt.index)
            # S has i.i.d. N(0,1) entries: a loose sanity check of the law
            need(abs(pt.qjl.std() - 1.0) < 0.2 and abs(pt.qjl.mean()) < 0.2, "part %d: QJL entries are not N(0,1)-like"
                 % pt.index)
        if pt.lo is not None:
            need(np.all(np.isfinite(pt.lo)) and np.all(np.isfinite(pt.step)) and np.all(pt.step >= 0),
                 "part %d: bad per-channel ranges" % pt.index)
        # the regenerated maps (§2.3)
        pt.had = HadamardMap(pt.dim, q["rounds"], q["seed"], 1 + 16 * pt.index) if q["rotation"] == R_HADAMARD else None
        pt.sqjl = (HadamardMap(pt.dim, q["rounds"], q["seed"], 2 + 16 * pt.index)
                   if has_qjl and q["qjl"] == Q_STRUCTURED else None)
        if has_qjl:
            pt.kappa = (math.sqrt(math.pi / 2) / pt.dim if q["qjl"] == Q_DENSE
                        else 1.0 / (pt.dim * sphere_abs_mean(pt.dim)))
    q["parts"] = parts
    # the fingerprint of §3: everything but the two CRCs
    q["fingerprint"] = crc32c(buf[hs:end], crc32c(buf[0:hs - 4]))
    return q


def check_codebook(pt):
    c, bd, L, d = pt.codebook, pt.bounds, len(pt.codebook), pt.dim
    need(np.all(np.isfinite(c)) and np.all(np.diff(c) > 0) and np.all(np.abs(c) <= 1), "part %d: codebook order"
         % pt.index)
    need(np.all(c == -c[::-1]), "part %d: codebook not exactly symmetric" % pt.index)
    mids = ((c[:-1] + c[1:]) / 2.0).astype(np.float32).astype(np.float64)
    need(np.all(bd == mids), "part %d: bounds are not the float32 midpoints of the centroids" % pt.index)
    # Lloyd-Max for f_d(t) ~ (1 - t^2)^((d-3)/2): each centroid is the mean of its cell
    if d >= 4:
        t = np.linspace(-1.0, 1.0, 400001)
        w = (1.0 - t * t) ** ((d - 3) / 2.0)
        cell = np.searchsorted(bd, t, side="left")
        num = np.bincount(cell, weights=w * t, minlength=L)
        den = np.bincount(cell, weights=w, minlength=L)
        mean = num / den
        err = np.abs(mean - c).max()
        need(err < 2e-4 * np.abs(c).max(), "part %d: centroids are not the cell means of the sphere law (%.2g)"
             % (pt.index, err))
    if L == 2:
        need(abs(c[1] - sphere_abs_mean(d)) < 1e-6, "part %d: 1-bit centroid %r != E|u_1|" % (pt.index, c[1]))


# ---------------------------------------------------------------- TQCA (§3)

def parse_codes(buf, q):
    n = len(buf)
    need(n >= 8 and buf[0:4] == b"TQCA", "codes: magic")
    need(u16(buf, 4) == 1 and u16(buf, 6) == 0, "codes: version %d.%d" % (u16(buf, 4), u16(buf, 6)))
    hs = u32(buf, 8)
    need(hs == 40 and n >= hs, "codes: header_size %d" % hs)
    need(u32(buf, 36) == crc32c(buf[0:36]), "codes: header CRC mismatch")
    need(u32(buf, 12) == 0 and u32(buf, 32) == 0, "codes: flags/reserved not 0")
    need(u32(buf, 16) == q["fingerprint"], "codes: fingerprint %08x, quantizer's is %08x"
         % (u32(buf, 16), q["fingerprint"]))
    cs, count = u32(buf, 20), u64(buf, 24)
    need(cs == q["code_size"], "codes: code_size %d != quantizer's %d" % (cs, q["code_size"]))
    need(n == hs + count * cs + 4, "codes: length %d != %d + %d * %d + 4" % (n, hs, count, cs))
    body = buf[hs:hs + count * cs]
    need(u32(buf, n - 4) == crc32c(body), "codes: records CRC mismatch")
    return np.frombuffer(body, dtype=np.uint8).reshape(count, cs)


# ---------------------------------------------------------------- records (§1)

def unpack(raw, d, bits):
    """Planes of §1.3 -> (rows, d) indices; checks that padding bits are zero."""
    idx = np.zeros((raw.shape[0], d), dtype=np.int64)
    pos = shift = 0
    j = np.arange(d)
    for w in plane_widths(bits):
        nb = (d * w + 7) // 8
        plane = raw[:, pos:pos + nb].astype(np.int64)
        vals = (plane[:, (j * w) // 8] >> ((j * w) % 8)) & ((1 << w) - 1)
        idx |= vals << shift
        used = (d * w) % 8
        if used:
            need(np.all(plane[:, -1] >> used == 0), "unused high bits of a %d-bit plane are not zero" % w)
        pos += nb
        shift += w
    return idx


def signs_of(raw, d):
    j = np.arange(d)
    bits = (raw[:, j // 8].astype(np.int64) >> (j % 8)) & 1
    if d % 8:
        need(np.all(raw[:, -1].astype(np.int64) >> (d % 8) == 0), "sign padding bits are not zero")
    return bits


def rotate(pt, x):
    if pt.rot is not None:
        return x @ pt.rot.T
    if pt.had is not None:
        return pt.had.forward(x)
    return x


def unrotate(pt, y):
    if pt.rot is not None:
        return y @ pt.rot
    if pt.had is not None:
        return pt.had.inverse(y)
    return y


def qjl_project(pt, e):
    return e @ pt.qjl.T if pt.qjl is not None else pt.sqjl.forward(e)


def qjl_transpose(pt, z):
    return z @ pt.qjl if pt.qjl is not None else pt.sqjl.inverse(z)


def f16(raw, n):
    return np.frombuffer(raw.tobytes(), dtype="<f2").reshape(raw.shape[0], n).astype(np.float64)


def decode(q, recs):
    """§1.5: decode every record with numpy."""
    rows = recs.shape[0]
    out = np.zeros((rows, q["dim"]))
    v = q["variant"]
    pieces = []
    for pt in q["parts"]:
        rec = recs[:, pt.offset:pt.offset + pt.code_size]
        fac = (np.frombuffer(rec[:, :4 * pt.nfactors].tobytes(), dtype="<f4").reshape(rows, pt.nfactors)
               .astype(np.float64))
        idx = unpack(rec[:, pt.off_idx:pt.off_idx + pt.idx_bytes], pt.dim, pt.mse_bits) if pt.mse_bits else None
        z = None
        if pt.has_qjl:
            z = 2.0 * signs_of(rec[:, pt.off_sign:pt.off_sign + pt.sign_bytes], pt.dim) - 1.0
        L = 1 << pt.mse_bits
        if v == UNIFORM:
            lo, step = uniform_factors(q, pt, rec, fac, L)
            y = lo + step * idx
        else:
            y = np.zeros((rows, pt.dim))
            if pt.mse_bits:
                y = fac[:, :1] * pt.codebook[idx]
            if pt.has_qjl:
                gamma = fac[:, 1:2] if pt.mse_bits else fac[:, :1]
                y = y + pt.kappa * gamma * qjl_transpose(pt, z)
        out[:, pt.channels] = unrotate(pt, y)
        pieces.append((pt, rec, fac, idx, z))
    return out, pieces


def uniform_factors(q, pt, rec, fac, L):
    """(lo, step) per coordinate, (rows, d) arrays, for every uniform scope."""
    rows, sym = rec.shape[0], q["uniform_mode"] == U_SYM
    if q["uniform_scope"] == S_CHANNEL:
        return pt.lo[None, :], pt.step[None, :]
    if q["uniform_scope"] == S_VECTOR:
        step = fac[:, -1:]
        lo = -0.5 * (L - 1) * step if sym else fac[:, :1]
        return lo, step
    g = q["group_size"]
    ng = pt.dim // g
    h = f16(rec[:, pt.off_group:pt.off_group + pt.group_bytes], ng * (1 if sym else 2)).reshape(rows, ng, -1)
    step = h[:, :, -1]
    lo = -0.5 * (L - 1) * step if sym else h[:, :, 0]
    return np.repeat(lo, g, axis=1), np.repeat(step, g, axis=1)


# ---------------------------------------------------------------- what the encoder stored (§1.2-1.4)

def near_boundary(v, bounds, tol):
    return np.min(np.abs(v[..., None] - bounds), axis=-1) <= tol


def check_encoder(q, x, pieces):
    v = q["variant"]
    for pt, rec, fac, idx, z in pieces:
        xp = x[:, pt.channels].astype(np.float64)
        norm = np.linalg.norm(xp, axis=1)
        tag = "part %d: " % pt.index
        if v == UNIFORM:
            check_uniform(q, pt, xp, rec, fac, idx, tag)
            continue
        zero = norm == 0
        need(np.all(rec[zero] == 0), tag + "a zero vector's record is not all zero bytes")
        nz = ~zero
        if not np.any(nz):
            continue
        xp, norm, fac = xp[nz], norm[nz], fac[nz]
        y = rotate(pt, xp / norm[:, None])
        e = y
        if pt.mse_bits:
            ix = idx[nz]
            want = np.searchsorted(pt.bounds, y, side="left")  # #{k : y > bound[k]}
            bad = (want != ix) & ~near_boundary(y, pt.bounds, 1e-5)
            need(not np.any(bad), tag + "%d indices are not #{k : y > bound[k]}" % bad.sum())
            c = pt.codebook[ix]
            e = y - c
        rel = lambda a, b, t: np.all(np.abs(a - b) <= t * np.abs(b) + 1e-30)  # noqa: E731
        if v == MSE:
            if q["norm"] == N_PLAIN:
                need(rel(fac[:, 0], norm, 1e-6), tag + "scale != ||x||")
            elif q["norm"] == N_UNIT:
                need(rel(fac[:, 0], norm / np.linalg.norm(c, axis=1), 1e-5), tag + "scale != ||x|| / ||c[idx]||")
            else:
                need(rel(fac[:, 0], norm / np.sum(y * c, axis=1), 1e-4), tag + "scale != ||x|| / <y, c[idx]>")
                need(rel(fac[:, 1], norm, 1e-6), tag + "second factor != ||x||")
            continue
        gamma = norm * np.linalg.norm(e, axis=1)
        if pt.mse_bits:
            need(rel(fac[:, 0], norm, 1e-6), tag + "norm factor != ||x||")
            need(rel(fac[:, 1], gamma, 1e-4), tag + "gamma != ||x - x~_mse||")
        else:
            need(rel(fac[:, 0], norm, 1e-6), tag + "gamma != ||x|| (no MSE stage)")
        proj = qjl_project(pt, e)
        want = proj >= 0
        got = z[nz] > 0
        scale = np.linalg.norm(e, axis=1, keepdims=True) * (math.sqrt(pt.dim) if pt.qjl is not None else 1.0)
        bad = (want != got) & (np.abs(proj) > 1e-4 * scale)
        need(not np.any(bad), tag + "%d QJL sign bits are not sign(S e)" % bad.sum())


def check_uniform(q, pt, xp, rec, fac, idx, tag):
    L = 1 << pt.mse_bits
    vv = rotate(pt, xp)  # the rotated, not normalized, vector
    sym = q["uniform_mode"] == U_SYM
    scope = q["uniform_scope"]
    if scope == S_VECTOR:
        if sym:
            want_step = 2.0 * np.abs(vv).max(axis=1) / (L - 1)
        else:
            want_step = (vv.max(axis=1) - vv.min(axis=1)) / (L - 1)
            need(np.allclose(fac[:, 0], vv.min(axis=1), rtol=1e-5, atol=1e-5), tag + "lo != min of Pi x")
        need(np.allclose(fac[:, -1], want_step, rtol=1e-5, atol=1e-6), tag + "step != range / (L - 1)")
    elif scope == S_GROUP:
        g = q["group_size"]
        vg = vv.reshape(vv.shape[0], -1, g)
        if sym:
            want = 2.0 * np.abs(vg).max(axis=2) / (L - 1)
        else:
            want = (vg.max(axis=2) - vg.min(axis=2)) / (L - 1)
        lo, step = uniform_factors(q, pt, rec, fac, L)
        need(np.allclose(step[:, ::g], want, rtol=2e-3, atol=1e-4), tag + "fp16 group steps != group range / (L - 1)")
        if not sym:
            need(np.allclose(lo[:, ::g], vg.min(axis=2), rtol=2e-3, atol=1e-3), tag + "fp16 group lo != group min")
    else:
        lo_w = vv.min(axis=0)
        hi_w = vv.max(axis=0)
        if sym:
            m = np.maximum(np.abs(lo_w), np.abs(hi_w))
            want_step, want_lo = 2.0 * m / (L - 1), -m
        else:
            want_step, want_lo = (hi_w - lo_w) / (L - 1), lo_w
        need(np.allclose(pt.step, want_step, rtol=1e-5, atol=1e-6), tag + "per-channel steps != calibrated range")
        need(np.allclose(pt.lo, want_lo, rtol=1e-5, atol=1e-5), tag + "per-channel lo != calibrated minimum")
    lo, step = uniform_factors(q, pt, rec, fac, L)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = (vv - lo) / step
    want = np.clip(np.floor(t + 0.5), 0, L - 1)
    want = np.where(step > 0, want, 0)
    frac = np.abs(t - np.floor(t) - 0.5)
    bad = (want != idx) & ~((step > 0) & (frac < 1e-3))
    need(not np.any(bad), tag + "%d uniform levels are not round((v - lo) / step) clamped" % bad.sum())


# ---------------------------------------------------------------- driver

def read_fvecs(path):
    raw = np.fromfile(path, dtype="<i4")
    need(raw.size > 0, "%s is empty" % path)
    d = int(raw[0])
    a = raw.reshape(-1, d + 1)
    need(np.all(a[:, 0] == d), "%s is ragged" % path)
    return a[:, 1:].copy().view("<f4")


def write_fvecs(path, x):
    x = np.asarray(x, dtype="<f4")
    a = np.empty((x.shape[0], x.shape[1] + 1), dtype="<f4")
    a[:, 0] = np.array([x.shape[1]], dtype="<i4").view("<f4")[0]
    a[:, 1:] = x
    a.tofile(path)


# name, dim, tq encode options. Dims: 24 = 16+8, 37 = 32+4+1, 100 = 64+32+4, 784 = 512+256+16 Hadamard blocks.
CASES = [
    ("mse b1 hadamard plain", 24, "--bits 1"),
    ("mse b2 none plain", 24, "--bits 2 --rotation none"),
    ("mse b3 dense unit", 24, "--bits 3 --rotation dense --norm unit"),
    ("mse b4 hadamard unbiased", 100, "--bits 4 --norm unbiased"),
    ("mse b5 hadamard rounds 3 seed 7", 37, "--bits 5 --rounds 3 --seed 7"),
    ("mse b6 dense plain", 100, "--bits 6 --rotation dense --seed 11"),
    ("mse b7 none unbiased", 37, "--bits 7 --rotation none --norm unbiased"),
    ("mse b8 hadamard unit", 100, "--bits 8 --norm unit --seed 123456789012345"),
    ("mse b3 split 8@5", 100, "--bits 3 --outliers 8 --outlier-bits 5"),
    ("mse b2 split 32@3 unbiased d784", 784, "--bits 2 --outliers 32 --norm unbiased"),
    ("mse b4 hadamard d784", 784, "--bits 4"),
    ("prod b1 (no MSE stage) dense qjl", 24, "--variant prod --bits 1"),
    ("prod b2 hadamard dense qjl", 24, "--variant prod --bits 2"),
    ("prod b3 none structured", 37, "--variant prod --bits 3 --rotation none --qjl structured --seed 5"),
    ("prod b4 dense structured", 100, "--variant prod --bits 4 --rotation dense --qjl structured"),
    ("prod b5 hadamard structured rounds 1", 100, "--variant prod --bits 5 --qjl structured --rounds 1 --seed 3"),
    ("prod b8 hadamard dense qjl", 24, "--variant prod --bits 8 --seed 9"),
    ("prod b3 split 4@4 structured", 37, "--variant prod --bits 3 --qjl structured --outliers 4 --outlier-bits 4"),
    ("prod b2 structured d784", 784, "--variant prod --bits 2 --qjl structured"),
    ("qjl hadamard dense", 24, "--variant qjl --bits 1"),
    ("qjl none structured", 100, "--variant qjl --bits 1 --rotation none --qjl structured --seed 2"),
    ("qjl dense dense", 37, "--variant qjl --bits 1 --rotation dense --qjl dense"),
    ("uniform sym vector b4 none", 24, "--variant uniform --bits 4 --rotation none"),
    ("uniform asym vector b3 hadamard", 100, "--variant uniform --bits 3 --uniform asymmetric"),
    ("uniform sym channel b5 hadamard", 37, "--variant uniform --bits 5 --scope channel"),
    ("uniform asym channel b8 none", 100, "--variant uniform --bits 8 --scope channel --uniform asymmetric "
                                          "--rotation none"),
    ("uniform sym group 8 b2 dense", 24, "--variant uniform --bits 2 --scope group --group 8 --rotation dense"),
    ("uniform asym group 20 b7 hadamard", 100, "--variant uniform --bits 7 --scope group --group 20 "
                                               "--uniform asymmetric"),
    ("uniform asym channel b3 split 5@4", 100, "--variant uniform --bits 3 --scope channel --uniform asymmetric "
                                               "--outliers 5 --outlier-bits 4"),
    ("uniform sym group 4 b6 none split 4@7", 24, "--variant uniform --bits 6 --scope group --group 4 "
                                                  "--rotation none --outliers 4 --outlier-bits 7"),
]

ROWS = 160


def make_data(src, tmp):
    """Rows cut from DATA_FILE, scaled to about [-0.3, 0.7], with row 0 all zero (the zero-vector rule)."""
    x = read_fvecs(src)[:ROWS].astype(np.float64)
    need(x.shape[1] >= 784, "DATA_FILE must have at least 784 columns (the Fashion-MNIST fixture)")
    files = {}
    for d, start in ((24, 400), (37, 371), (100, 350), (784, 0)):
        v = x[:, start:start + d] / 255.0 - 0.3
        v[0] = 0.0
        path = os.path.join(tmp, "oracle_d%d.fvecs" % d)
        write_fvecs(path, v)
        files[d] = (path, read_fvecs(path).astype(np.float64))
    return files


def run(cmd):
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if p.returncode != 0:
        raise FormatError("%s exited %d: %s" % (" ".join(cmd[:2]), p.returncode, p.stderr.strip()))


def one_case(tq, tmp, name, dim, opts, files):
    path, x = files[dim]
    base = os.path.join(tmp, "oracle_case")
    qf, cf, yf = base + ".tqqz", base + ".tqca", base + "_decoded.fvecs"
    for f in (qf, cf, yf):
        if os.path.exists(f):
            os.remove(f)
    run([tq, "encode", "--data", path, "--quantizer", qf, "--codes", cf, "--quiet"] + opts.split())
    run([tq, "decode", "--quantizer", qf, "--codes", cf, "--out", yf, "--quiet"])
    with open(qf, "rb") as f:
        qbuf = f.read()
    with open(cf, "rb") as f:
        cbuf = f.read()
    q = parse_quantizer(qbuf)
    recs = parse_codes(cbuf, q)
    need(recs.shape[0] == x.shape[0], "codes hold %d records for %d rows" % (recs.shape[0], x.shape[0]))
    ours, pieces = decode(q, recs)
    check_encoder(q, x, pieces)
    theirs = read_fvecs(yf).astype(np.float64)
    need(theirs.shape == ours.shape, "tq decode gave shape %r, oracle %r" % (theirs.shape, ours.shape))
    need(np.all(np.isfinite(theirs)), "tq decode gave non-finite values")
    err = np.abs(ours - theirs).max(axis=1)
    lim = TOL * (1.0 + np.abs(theirs).max(axis=1))
    worst = int(np.argmax(err / lim))
    need(np.all(err <= lim), "row %d: |oracle - tq decode| = %.3g > %.3g" % (worst, err[worst], lim[worst]))
    rel = float(np.linalg.norm(theirs - x) / np.linalg.norm(x))
    return "%d rows, %d B/vector, %d B quantizer, max |diff| %.1e (%.3f of tolerance), rel. error %.4f" % (
        recs.shape[0], q["code_size"], len(qbuf), float(err.max()), float((err / lim).max()), rel)


def main():
    if len(sys.argv) != 4:
        print("usage: python3 format_oracle.py TQ_BINARY DATA_FILE TMPDIR", file=sys.stderr)
        sys.exit(2)
    tq, data, tmp = sys.argv[1:]
    tmp = os.path.join(tmp, "format_oracle.%d" % os.getpid())
    os.makedirs(tmp, exist_ok=True)
    passed = failed = 0
    try:
        files = make_data(data, tmp)
        for name, dim, opts in CASES:
            try:
                info = one_case(tq, tmp, name, dim, opts, files)
                passed += 1
                print("ok   %-40s d=%-4d %s" % (name, dim, info))
            except FormatError as e:
                failed += 1
                print("FAIL %-40s d=%-4d %s" % (name, dim, e))
            sys.stdout.flush()
    finally:
        for f in os.listdir(tmp):
            os.remove(os.path.join(tmp, f))
        os.rmdir(tmp)
    print("%d passed, %d failed" % (passed, failed))
    sys.exit(1 if failed or not passed else 0)


if __name__ == "__main__":
    main()
