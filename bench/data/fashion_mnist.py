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

Usage: python3 bench/data/fashion_mnist.py [--src DIR] [--out DIR]
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


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--src", default=DEFAULT_SRC, help="folder with the IDX .gz files (default %(default)s)")
    ap.add_argument("--out", default=None, help="output folder (default ~/.cache/tq)")
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


if __name__ == "__main__":
    main()
