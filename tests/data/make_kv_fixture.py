#!/usr/bin/env python3
"""Cut the SmolLM2 KV fixture for the C tests from the cache made by bench/data/smollm2_kv.py.

Reads   <cache>/smollm2/layerLL-{k,v,q}.npy and meta.json (cache: $TQ_CACHE_DIR, or $XDG_CACHE_HOME/tq,
        or ~/.cache/tq; --src DIR to name the smollm2 folder itself),
writes  tests/data/smollm2_lLL_k256.npy  (256, 192)  post-RoPE keys, 3 KV heads x 64 concatenated
        tests/data/smollm2_lLL_v256.npy  (256, 192)  values, same layout
        tests/data/smollm2_lLL_q256.npy  (256, 576)  post-RoPE queries, 9 heads x 64; head i uses KV head i // 3
for LL = 00 and 15: rows 0..255 (the first 256 tokens of the GPL-3 text), float32 '<f4', C order,
written with numpy.save, so the files are byte-for-byte reproducible from the same cache.
Layer 0 is the first layer, whose keys and queries come straight from the token embeddings (the layer
with the most unusual statistics in Llama-style models); layer 15 is a middle layer, typical of the rest.
Because attention is causal, the first 256 rows are what a 256-token run gives (up to float32 rounding).

Needs python3 and numpy only. Usage: python3 tests/data/make_kv_fixture.py [--src DIR] [--out DIR]
"""
import argparse
import hashlib
import json
import os
import sys

import numpy as np

LAYERS = (0, 15)
ROWS = 256
SHAPES = {"k": 192, "v": 192, "q": 576}


def cache_dir():
    if os.environ.get("TQ_CACHE_DIR"):
        base = os.environ["TQ_CACHE_DIR"]
    else:
        xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        base = os.path.join(xdg, "tq")
    return os.path.join(base, "smollm2")


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--src", default=cache_dir(), help="the smollm2 cache folder")
    ap.add_argument("--out", default=here, help="where to write the fixture (default: tests/data)")
    args = ap.parse_args()

    meta_path = os.path.join(args.src, "meta.json")
    if not os.path.exists(meta_path):
        sys.exit("make_kv_fixture.py: %s not found; make it first with: python3 bench/data/smollm2_kv.py" % meta_path)
    with open(meta_path) as f:
        meta = json.load(f)
    if meta.get("tokens", 0) < ROWS:
        sys.exit("make_kv_fixture.py: the cache has T=%s tokens, fewer than %d" % (meta.get("tokens"), ROWS))

    for L in LAYERS:
        for kind, cols in SHAPES.items():
            name = "layer%02d-%s.npy" % (L, kind)
            path = os.path.join(args.src, name)
            with open(path, "rb") as f:
                digest = hashlib.sha256(f.read()).hexdigest()
            if digest != meta["files"][name]["sha256"]:
                sys.exit("make_kv_fixture.py: %s does not match its SHA-256 in meta.json" % path)
            a = np.load(path)
            if a.dtype.str != "<f4" or a.ndim != 2 or a.shape[1] != cols:
                sys.exit("make_kv_fixture.py: %s has shape %s dtype %s" % (path, a.shape, a.dtype.str))
            cut = np.ascontiguousarray(a[:ROWS], dtype="<f4")
            dst = os.path.join(args.out, "smollm2_l%02d_%s%d.npy" % (L, kind, ROWS))
            tmp = dst + ".tmp"
            with open(tmp, "wb") as f:
                np.save(f, cut, allow_pickle=False)
            os.replace(tmp, dst)
            print("wrote %s %s %s" % (dst, cut.shape, cut.dtype.str))
    print("source: %s (model %s sha256 %s, text %s sha256 %s)" % (
        args.src, meta["model"]["file"], meta["model"]["sha256"], meta["text"]["path"], meta["text"]["sha256"]))


if __name__ == "__main__":
    main()
