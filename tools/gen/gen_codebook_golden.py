#!/usr/bin/env python3
"""gen_codebook_golden.py -- golden Lloyd-Max codebooks for tests/test_codebook.c.

An implementation independent of src/core/codebook.c (different numerics,
different solver, different start), used to check it:

  * law: one coordinate t of x uniform on S^{d-1}, density
        f(t) = (1 - t^2)^((d-3)/2) / B(1/2, (d-1)/2)  on [-1, 1];
  * cell masses from scipy.special.betainc (P(T > t) = I_{(1-t)/2}(a, a),
    a = (d-1)/2), first moments from the closed form
        int_t^1 s f(s) ds = (1 - t^2)^a / (2 a B(1/2, a))
    with B from scipy.special.betaln;
  * solver: scipy.optimize.root (MINPACK hybrd, finite-difference Jacobian) on
    the fixed-point equations p = T(p) of the positive half (the codebook is
    symmetric), started from the quantiles (k + 1/2) / 2^b of f itself
    (scipy.special.betaincinv), then polished with plain Lloyd steps;
  * mse_unit = d * sum_k int_cell (t - c_k)^2 f(t) dt by scipy.integrate.quad
    in t = sin(theta) (smooth for every d >= 2, also the d = 2 arcsine law);
    it must agree with 1 - d sum_k P_k c_k^2 to 1e-8 relative, and the end
    masses must agree with quadrature; the fixed-point residual is checked.

Rerun (not part of CI; the output is committed):
    pip install numpy scipy
    python3 tools/gen/gen_codebook_golden.py            # writes tests/data/codebook_golden.h
    python3 tools/gen/gen_codebook_golden.py --out FILE
"""
import argparse
import math
import os
import sys

import numpy as np
import scipy
from scipy import integrate, optimize, special

CASES = [(d, b) for d in (2, 3, 8, 64, 128, 1536) for b in (1, 2, 3, 4)] + [(128, 8), (1536, 6)]


class Law:
    def __init__(self, d):
        self.d = d
        self.a = 0.5 * (d - 1)
        self.log_beta = special.betaln(0.5, self.a)  # B(1/2, a): normalizes f

    def tail(self, t):
        """P(T > t) for t >= 0 (vectorized)."""
        t = np.asarray(t, dtype=float)
        return special.betainc(self.a, self.a, 0.5 * (1.0 - t))

    def moment_tail(self, t):
        """int_t^1 s f(s) ds (vectorized)."""
        t = np.asarray(t, dtype=float)
        one_m = np.clip((1.0 - t) * (1.0 + t), 0.0, None)
        with np.errstate(divide="ignore"):
            return np.exp(self.a * np.log(one_m) - math.log(2.0 * self.a) - self.log_beta)

    def lloyd_map(self, p):
        """T(p): conditional means of the positive-half cells; also the masses."""
        mids = 0.5 * (p[:-1] + p[1:])
        edges = np.concatenate(([0.0], mids, [1.0]))
        s = self.tail(edges)
        s[0] = 0.5
        g = self.moment_tail(edges)
        mass = s[:-1] - s[1:]
        return (g[:-1] - g[1:]) / mass, mass, edges

    def quad_in_theta(self, fn, lo, hi):
        """int_lo^hi fn(t) f(t) dt with t = sin(theta): cos^(d-2) is smooth."""
        lb = self.log_beta
        d = self.d

        def integrand(th):
            return fn(math.sin(th)) * math.exp((d - 2) * math.log(math.cos(th)) - lb) if th < math.pi / 2 else 0.0

        val, _ = integrate.quad(integrand, math.asin(lo), math.asin(min(hi, 1.0)), epsabs=1e-15, epsrel=1e-13,
                                limit=200)
        return val


def solve(d, b):
    law = Law(d)
    h = (1 << b) // 2
    L = 1 << b
    # start: quantiles of f itself (the C code starts from the f^(1/3) compander)
    q = 0.5 + (np.arange(h) + 0.5) / L  # CDF levels of the positive-half points
    x = special.betaincinv(law.a, law.a, q)
    p = np.clip(2.0 * x - 1.0, 1e-300, 1 - 1e-16)
    scale = 1.0 / math.sqrt(d)

    # solve in units of 1/sqrt(d) so the tolerances mean the same for every d
    def resid(u):
        pp = np.sort(np.abs(u)) * scale
        return (pp - law.lloyd_map(pp)[0]) / scale

    sol = optimize.root(resid, p / scale, method="hybr", options={"xtol": 1e-15, "maxfev": 200000})
    p = np.sort(np.abs(sol.x)) * scale
    for _ in range(5):  # polish
        p = law.lloyd_map(p)[0]
    t, mass, edges = law.lloyd_map(p)
    res = np.max(np.abs(t - p)) / scale
    if not res < 1e-11:
        sys.exit("d=%d b=%d: not a fixed point (residual %.3g * 1/sqrt(d)); %s" % (d, b, res, sol.message))
    p = t
    t, mass, edges = law.lloyd_map(p)
    mse = 1.0 - d * 2.0 * float(np.sum(mass * p * p))

    # independent check of mse_unit and of the masses by quadrature
    mse_q = 0.0
    for k in range(h):
        ck = p[k]
        mse_q += law.quad_in_theta(lambda s, c=ck: (s - c) ** 2, edges[k], edges[k + 1])
    mse_q *= 2.0 * d
    # scipy's betainc loses ~1e-12 relative near x = 1/2 at large a, which the
    # cancellation in 1 - d sum P c^2 magnifies; quadrature does not cancel, so
    # it is the value written (the two must still agree to 1e-8).
    if not abs(mse_q - mse) <= 1e-8 * mse:
        sys.exit("d=%d b=%d: mse %.15g vs quadrature %.15g" % (d, b, mse, mse_q))
    for k in (0, h - 1):
        mq = law.quad_in_theta(lambda s: 1.0, edges[k], edges[k + 1])
        if not abs(mq - mass[k]) <= 1e-10 * mass[k]:
            sys.exit("d=%d b=%d: mass[%d] %.15g vs quadrature %.15g" % (d, b, k, mass[k], mq))
    return p, mse_q, res


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    default_out = os.path.normpath(os.path.join(here, "..", "..", "tests", "data", "codebook_golden.h"))
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=default_out)
    args = ap.parse_args()

    rows, flat = [], []
    for d, b in CASES:
        p, mse, res = solve(d, b)
        rows.append((d, b, mse, len(flat), len(p)))
        flat.extend(p.tolist())
        print("d=%5d b=%d mse_unit=%.12f fixed-point residual %.1e/sqrt(d)" % (d, b, mse, res), file=sys.stderr)

    out = []
    out.append("/*\n")
    out.append(" * codebook_golden.h -- GENERATED by tools/gen/gen_codebook_golden.py; do not edit.\n")
    out.append(" * Rerun: pip install numpy scipy && python3 tools/gen/gen_codebook_golden.py\n")
    out.append(" * (numpy %s, scipy %s). Lloyd-Max codebooks of the coordinate law of\n" % (np.__version__,
                                                                                          scipy.__version__))
    out.append(" * S^{d-1}, computed independently of src/core/codebook.c (scipy betainc +\n")
    out.append(" * MINPACK root finding, mse_unit by quadrature), in double.\n")
    out.append(" * Each entry: the 2^b / 2 positive centroids, ascending, starting at\n")
    out.append(" * tq_golden_cb_pos[offset]; the codebook is c[h + k] = pos[k],\n")
    out.append(" * c[h - 1 - k] = -pos[k] (h = 2^b / 2). mse_unit = E||x - x~||^2, unit x.\n")
    out.append(" */\n")
    out.append("#ifndef TQ_CODEBOOK_GOLDEN_H\n#define TQ_CODEBOOK_GOLDEN_H\n\n")
    out.append("typedef struct tq_golden_codebook {\n")
    out.append("    unsigned dim, bits;\n    double mse_unit;\n    unsigned offset; /* into tq_golden_cb_pos */\n")
    out.append("} tq_golden_codebook;\n\n")
    out.append("static const double tq_golden_cb_pos[%d] = {\n" % len(flat))
    for d, b, mse, off, n in rows:
        out.append("    /* d = %d, b = %d */\n" % (d, b))
        vals = flat[off:off + n]
        for i in range(0, n, 4):
            out.append("    " + " ".join("%.17g," % v for v in vals[i:i + 4]) + "\n")
    out.append("};\n\n")
    out.append("static const tq_golden_codebook tq_golden_cb[%d] = {\n" % len(rows))
    for d, b, mse, off, n in rows:
        out.append("    {%d, %d, %.17g, %d},\n" % (d, b, mse, off))
    out.append("};\n\n#endif /* TQ_CODEBOOK_GOLDEN_H */\n")
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as fh:
        fh.write("".join(out))
    print("wrote %s" % args.out, file=sys.stderr)


if __name__ == "__main__":
    main()
