#!/usr/bin/env python3
"""Fashion-MNIST as float32 .fvecs for tq's benchmarks and demo.

Reads the IDX files that the Debian package `dataset-fashion-mnist` installs in
/usr/share/datasets/fashion-mnist/ and writes, in the cache folder
(~/.cache/tq, or $TQ_CACHE_DIR, or $XDG_CACHE_HOME/tq):

    fashion-mnist-train.fvecs   60000 x 784  (the base set)
    fashion-mnist-t10k.fvecs    10000 x 784  (the query set)

Pixel values are kept as they are (0..255 as float32), the way ann-benchmarks'
fashion-mnist-784-euclidean set stores them. Idempotent: a file that already
exists with the expected size is left alone. Python standard library only.

With --normalized (needs numpy) it also writes the inner-product task of the
paper's Figure 5 (rows scaled to unit L2 norm; Fashion-MNIST has no all-zero
image, a zero row would be kept as zeros):

    fmnist-norm-base.fvecs      60000 x 784  the train rows, normalized
    fmnist-norm-queries.fvecs   NQ x 784     the first NQ t10k rows, normalized (--nq, default 1000)
    fmnist-norm-gt.ivecs        NQ rows of (int32 K, then the ids of the K base rows with the
                                largest inner product with the query, best first; exact, in
                                float64 over the float32 normalized rows, ties broken by the
                                smaller id; --k, default 100)

computed once (chunked, ~10-20 s on 2 cores) and kept while the files have the
expected sizes. It prints how many queries have a tie for the top-1 (duplicate
images), since a tie makes "the true top-1" ambiguous.

Usage: python3 bench/data/fashion_mnist.py [--src DIR] [--out DIR] [--normalized [--nq NQ] [--k K]]
"""
import argparse
import array
import gzip
import os
import struct
import sys

DEFAULT_SRC = "/usr/share/datasets/fashion-mnist"
SETS = (("train-images-idx3-ubyte.gz", "fashion-mnist-train.fvecs"),
        ("t10k-images-idx3-ubyte.gz", "fashion-mnist-t10k.fvecs"))


def cache_dir():
    if os.environ.get("TQ_CACHE_DIR"):
        return os.environ["TQ_CACHE_DIR"]
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "tq")


def read_idx_images(path, max_rows=0):
    """Return (n, dim, bytes) of an IDX3 uint8 image file (gzip or plain); rows are flattened."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        head = f.read(16)
        if len(head) != 16:
            raise ValueError("%s: truncated IDX header" % path)
        magic, n, rows, cols = struct.unpack(">IIII", head)
        if magic != 0x00000803:
            raise ValueError("%s: not an IDX3 uint8 file (magic 0x%08x)" % (path, magic))
        if max_rows:
            n = min(n, max_rows)
        dim = rows * cols
        data = f.read(n * dim)
        if len(data) != n * dim:
            raise ValueError("%s: truncated: %d of %d bytes" % (path, len(data), n * dim))
    return n, dim, data


def rows_as_float32(data):
    """uint8 bytes -> array('f') of the same values, little-endian when serialized."""
    a = array.array("f", iter(data))  # iter: ints 0..255 (a bytes initializer would be reinterpreted)
    if sys.byteorder != "little":
        a.byteswap()
    return a


def write_atomic(path, chunks):
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        for c in chunks:
            f.write(c)
    os.replace(tmp, path)


def fvecs_chunks(n, dim, values):
    head = struct.pack("<i", dim)
    for i in range(n):
        yield head
        yield values[i * dim:(i + 1) * dim].tobytes()


def write_fvecs(path, n, dim, data):
    write_atomic(path, fvecs_chunks(n, dim, rows_as_float32(data)))


NORM_FILES = ("fmnist-norm-base.fvecs", "fmnist-norm-queries.fvecs", "fmnist-norm-gt.ivecs")


def read_fvecs_np(np, path, max_rows=0):
    head = np.fromfile(path, dtype="<i4", count=1)
    d = int(head[0])
    a = np.fromfile(path, dtype="<i4", count=-1 if not max_rows else max_rows * (d + 1)).reshape(-1, d + 1)
    if not (a[:, 0] == d).all():
        raise ValueError("%s: rows of different dimensions" % path)
    return np.ascontiguousarray(a[:, 1:].view("<f4"))


def write_rows_np(np, path, x, dtype):
    """.fvecs (dtype <f4) or .ivecs (<i4): each row is int32 dim, then the values."""
    n, d = x.shape
    rows = np.empty((n, d + 1), dtype=dtype)
    rows[:, 0] = np.array([d], dtype="<i4").view(dtype)[0]
    rows[:, 1:] = x
    write_atomic(path, [rows.tobytes()])


def ground_truth_ip(np, base, queries, k, block=10000):
    """Exact top-k by inner product (float64), best first, ties -> smaller id. Returns (ids, scores)."""
    q = queries.astype(np.float64)
    best_s = np.full((len(q), 0), -np.inf)
    best_i = np.zeros((len(q), 0), dtype=np.int64)
    for s in range(0, len(base), block):
        sc = q @ base[s:s + block].astype(np.float64).T
        kk = min(k, sc.shape[1])
        part = np.argpartition(-sc, kk - 1, axis=1)[:, :kk]
        best_s = np.concatenate([best_s, np.take_along_axis(sc, part, 1)], 1)
        best_i = np.concatenate([best_i, part + s], 1)
        o = np.lexsort((best_i, -best_s), axis=1)[:, :k]
        best_s, best_i = np.take_along_axis(best_s, o, 1), np.take_along_axis(best_i, o, 1)
    return best_i.astype(np.int32), best_s


def make_normalized(out, nq, k):
    """The inner-product task on unit rows (Figure 5 of the paper): normalized copies + exact top-k."""
    try:
        import numpy as np
    except ImportError:
        sys.exit("fashion_mnist.py: --normalized needs numpy (pip install numpy)")
    import time
    p_b, p_q, p_gt = (os.path.join(out, f) for f in NORM_FILES)
    want = {p_b: 60000 * (4 + 784 * 4), p_q: nq * (4 + 784 * 4), p_gt: nq * (4 + 4 * k)}
    if all(os.path.exists(p) and os.path.getsize(p) == size for p, size in want.items()):
        print("kept   %s, %s, %s (already there)" % NORM_FILES)
        return

    def unit(x):
        n = np.linalg.norm(x.astype(np.float64), axis=1, keepdims=True)
        zero = int((n == 0).sum())
        n[n == 0] = 1
        return np.ascontiguousarray((x / n).astype(np.float32)), zero

    base, zb = unit(read_fvecs_np(np, os.path.join(out, SETS[0][1])))
    queries, zq = unit(read_fvecs_np(np, os.path.join(out, SETS[1][1]), nq))
    if queries.shape[0] < nq:
        sys.exit("fashion_mnist.py: only %d query rows" % queries.shape[0])
    write_rows_np(np, p_b, base, "<f4")
    write_rows_np(np, p_q, queries, "<f4")
    print("wrote  %s (%d x %d, unit rows; %d zero rows kept as zeros), %s (%d x %d; %d zero rows)"
          % (p_b, base.shape[0], base.shape[1], zb, p_q, nq, queries.shape[1], zq))
    t0 = time.time()
    ids, scores = ground_truth_ip(np, base, queries, k)
    write_rows_np(np, p_gt, ids, "<i4")
    ties = int((scores[:, 0] == scores[:, 1]).sum())
    print("wrote  %s (%d x top-%d inner-product ids; top-1 score mean %.4f, %d-th mean %.4f; %d queries with a tie "
          "for the top-1) in %.1f s" % (p_gt, nq, k, scores[:, 0].mean(), k, scores[:, -1].mean(), ties,
                                        time.time() - t0))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--src", default=DEFAULT_SRC, help="folder with the IDX .gz files (default %(default)s)")
    ap.add_argument("--out", default=None, help="output folder (default ~/.cache/tq)")
    ap.add_argument("--normalized", action="store_true",
                    help="also write fmnist-norm-{base,queries}.fvecs and fmnist-norm-gt.ivecs (needs numpy)")
    ap.add_argument("--nq", type=int, default=1000, help="with --normalized: query rows (default %(default)s)")
    ap.add_argument("--k", type=int, default=100, help="with --normalized: ground-truth neighbours (default %(default)s)")
    args = ap.parse_args()
    out = args.out or cache_dir()
    os.makedirs(out, exist_ok=True)
    for src_name, dst_name in SETS:
        src = os.path.join(args.src, src_name)
        dst = os.path.join(out, dst_name)
        if not os.path.exists(src):
            sys.exit("fashion_mnist.py: %s not found; install it with: apt-get install dataset-fashion-mnist" % src)
        expect_n = 60000 if src_name.startswith("train") else 10000
        expect_size = expect_n * (4 + 784 * 4)
        if os.path.exists(dst) and os.path.getsize(dst) == expect_size:
            print("kept   %s (%d x 784 float32, already there)" % (dst, expect_n))
            continue
        n, dim, data = read_idx_images(src)
        write_fvecs(dst, n, dim, data)
        print("wrote  %s (%d x %d float32, from %s)" % (dst, n, dim, src))
    if args.normalized:
        make_normalized(out, args.nq, args.k)


if __name__ == "__main__":
    main()
