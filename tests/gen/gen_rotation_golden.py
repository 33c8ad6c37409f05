#!/usr/bin/env python3
"""gen_rotation_golden.py — golden checksums for tests/test_rotation.c.

An independent re-implementation of src/core/rotation.c from its documented
specification (draw order, fill order, Householder convention, accumulation
orders), on top of gen_rng_golden.Rng. Python floats are IEEE doubles; float32
arithmetic is emulated by rounding each double result to float32, which is
exact emulation for + - * (a double holds the exact product of two floats, and
rounding a sum twice, 53 then 24 bits, equals rounding it once). Regenerate with

    python3 tests/gen/gen_rotation_golden.py

and paste the table into tests/test_rotation.c.

Checksum: FNV-1a 64 over the little-endian bytes of the float32 bit patterns
of forward(e_0), ..., forward(e_{d-1}), forward(x), inverse(x), concatenated,
where x[j] = ((j % 7) - 3) * 0.25.
"""
import math
import os
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen_rng_golden import Rng  # noqa: E402


def f32(x):
    return struct.unpack("<f", struct.pack("<f", x))[0]


def pow2_floor(n):
    p = 1
    while p <= n // 2:
        p *= 2
    return p


def fwht(x, off, n):
    if n < 2:
        return
    h = 1
    while h < n:
        for i in range(0, n, 2 * h):
            for j in range(h):
                u, v = x[off + i + j], x[off + i + j + h]
                x[off + i + j] = f32(u + v)
                x[off + i + j + h] = f32(u - v)
        h *= 2
    scale = f32(1.0 / math.sqrt(float(n)))
    for i in range(n):
        x[off + i] = f32(x[off + i] * scale)


def fwht_blocks(x, d):
    off = 0
    while off < d:
        b = pow2_floor(d - off)
        fwht(x, off, b)
        off += b


class Hadamard:
    def __init__(self, d, rounds, seed, stream):
        self.d, self.rounds = d, rounds
        r = Rng(seed, stream)
        self.signs, self.perms = [], []
        for _ in range(rounds):
            s = []
            for i in range(0, d, 32):
                w = r.u32()
                s += [(w >> b) & 1 for b in range(min(32, d - i))]
            p = list(range(d))
            for i in range(d - 1, 0, -1):
                j = r.below(i + 1)
                p[i], p[j] = p[j], p[i]
            self.signs.append(s)
            self.perms.append(p)

    def forward(self, x):
        cur = list(x)
        for r in range(self.rounds):
            t = [-c if s else c for c, s in zip(cur, self.signs[r])]
            fwht_blocks(t, self.d)
            cur = [t[p] for p in self.perms[r]]
        return cur

    def inverse(self, y):
        cur = list(y)
        for r in reversed(range(self.rounds)):
            t = [0.0] * self.d
            for i, p in enumerate(self.perms[r]):
                t[p] = cur[i]
            fwht_blocks(t, self.d)
            cur = [-c if s else c for c, s in zip(t, self.signs[r])]
        return cur


def dot4(a, b):
    s = [0.0, 0.0, 0.0, 0.0]
    for k in range(len(a)):
        s[k % 4] += a[k] * b[k]
    return (s[0] + s[1]) + (s[2] + s[3])


class Dense:
    def __init__(self, d, seed, stream):
        self.d = d
        r = Rng(seed, stream)
        A = [[r.gauss() for _ in range(d)] for _ in range(d)]  # row-major fill
        At = [[A[i][j] for i in range(d)] for j in range(d)]  # At[j] = column j
        tau, rsign = [0.0] * d, [1.0] * d
        for k in range(d):
            x = At[k]
            alpha = x[k]
            xnorm2 = dot4(x[k + 1:], x[k + 1:]) if d - k > 1 else 0.0
            beta, t = alpha, 0.0
            if xnorm2 > 0.0:
                norm = math.sqrt(alpha * alpha + xnorm2)
                beta = -norm if alpha >= 0.0 else norm
                t = (beta - alpha) / beta
                inv = 1.0 / (alpha - beta)
                for i in range(k + 1, d):
                    x[i] *= inv
            tau[k] = t
            rsign[k] = -1.0 if beta < 0.0 else 1.0
            x[k] = 1.0
            if t == 0.0:
                continue
            self._reflect(At, k, t)
        for k in reversed(range(d)):
            t = tau[k]
            if t != 0.0:
                self._reflect(At, k, t)
            v = At[k]
            for i in range(k + 1, d):
                v[i] = -t * v[i]
            v[k] = 1.0 - t
            for i in range(k):
                v[i] = 0.0
        self.M = [[f32(At[j][i] * rsign[j]) for j in range(d)] for i in range(d)]

    def _reflect(self, At, k, t):
        v = At[k][k:]
        for j in range(k + 1, self.d):
            c = At[j]
            w = t * dot4(v, c[k:])
            for i in range(len(v)):
                c[k + i] -= w * v[i]

    def forward(self, x):
        return [f32(dot4(row, x)) for row in self.M]

    def inverse(self, y):
        out = []
        for j in range(self.d):
            acc = 0.0
            for i in range(self.d):
                acc += self.M[i][j] * y[i]
            out.append(f32(acc))
        return out


def fnv1a(floats, h=0xCBF29CE484222325):
    for f in floats:
        for byte in struct.pack("<f", f):
            h = ((h ^ byte) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def checksum(rot, d):
    vals = []
    for k in range(d):
        e = [0.0] * d
        e[k] = 1.0
        vals += rot.forward(e)
    x = [((j % 7) - 3) * 0.25 for j in range(d)]
    vals += rot.forward(x)
    vals += rot.inverse(x)
    return fnv1a(vals)


CONFIGS = [  # kind, dim, rounds, seed, stream
    ("TQ_ROTATION_HADAMARD", 7, 3, 42, 1),
    ("TQ_ROTATION_HADAMARD", 100, 2, 42, 1),
    ("TQ_ROTATION_HADAMARD", 64, 1, 0x0123456789ABCDEF, 17),
    ("TQ_ROTATION_DENSE", 8, 0, 42, 1),
    ("TQ_ROTATION_DENSE", 37, 0, 0x0123456789ABCDEF, 17),
]


def main():
    print("/* Generated by tests/gen/gen_rotation_golden.py (FNV-1a 64 of forward(e_0..e_{d-1}),")
    print(" * forward(x), inverse(x) with x[j] = ((j % 7) - 3) * 0.25, float32 bits little-endian). */")
    print("static const struct { tq_rotation_kind kind; uint32_t dim, rounds; uint64_t seed, stream, fnv; }")
    print("    tq_golden_rot[] = {")
    for kind, d, rounds, seed, stream in CONFIGS:
        rot = Hadamard(d, rounds, seed, stream) if kind == "TQ_ROTATION_HADAMARD" else Dense(d, seed, stream)
        print("        {%s, %d, %d, 0x%016xull, %d, 0x%016xull}," % (kind, d, rounds, seed, stream, checksum(rot, d)))
    print("};")


if __name__ == "__main__":
    main()
