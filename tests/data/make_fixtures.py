#!/usr/bin/env python3
"""Cut the small real-data fixtures in tests/data/ from Fashion-MNIST.

    fmnist_base_500.fvecs    first 500 rows of train-images (784 float32 each, .fvecs)
    fmnist_queries_50.npy    first 50 rows of t10k-images (float32, shape (50, 784), .npy v1.0, C order)

Source: the Debian package dataset-fashion-mnist (/usr/share/datasets/fashion-mnist).
Pixel values are kept as they are (0..255 as float32). Python standard library
only; the output is byte-for-byte reproducible. Usage, from anywhere:

    python3 tests/data/make_fixtures.py [--src DIR]
"""
import argparse
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True  # no __pycache__ in bench/data
sys.path.insert(0, os.path.join(HERE, "..", "..", "bench", "data"))
import fashion_mnist  # noqa: E402  (the IDX reader and .fvecs writer)


def write_npy(path, n, dim, values):
    """float32 2-D array as .npy format version 1.0 (header padded to a multiple of 64 bytes)."""
    header = "{'descr': '<f4', 'fortran_order': False, 'shape': (%d, %d), }" % (n, dim)
    total = 10 + len(header) + 1
    header += " " * ((64 - total % 64) % 64) + "\n"
    magic = b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header))
    fashion_mnist.write_atomic(path, [magic, header.encode("latin1"), values.tobytes()])


def main():
    ap = argparse.ArgumentParser(description="cut tests/data fixtures from Fashion-MNIST")
    ap.add_argument("--src", default=fashion_mnist.DEFAULT_SRC)
    args = ap.parse_args()

    n, dim, data = fashion_mnist.read_idx_images(os.path.join(args.src, "train-images-idx3-ubyte.gz"), 500)
    path = os.path.join(HERE, "fmnist_base_500.fvecs")
    fashion_mnist.write_fvecs(path, n, dim, data)
    print("wrote %s (%d x %d)" % (path, n, dim))

    n, dim, data = fashion_mnist.read_idx_images(os.path.join(args.src, "t10k-images-idx3-ubyte.gz"), 50)
    path = os.path.join(HERE, "fmnist_queries_50.npy")
    write_npy(path, n, dim, fashion_mnist.rows_as_float32(data))
    print("wrote %s (%d x %d)" % (path, n, dim))


if __name__ == "__main__":
    main()
