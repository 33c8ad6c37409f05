#!/usr/bin/env bash
# demo.sh — set up, build, and show tq on real data (the README's first command).
#
#   bash scripts/demo.sh
#
# 1. installs what is missing (cmake, gcc, make, python3, Debian's
#    dataset-fashion-mnist) with apt-get — as root, or through sudo;
# 2. installs the Python package (pip install .) and pytest, configures and
#    builds tq in ./build (Release), tests included, so that
#    `ctest --test-dir build --output-on-failure` runs next;
# 3. converts Fashion-MNIST to float32 .fvecs in ~/.cache/tq
#    (bench/data/fashion_mnist.py);
# 4. runs `tq bench distortion` on Fashion-MNIST rows and, as a check of the
#    theory only, on random unit vectors, then `tq bench recall` on the 60k base;
# 5. builds a compressed index of the 60k normalized images at 2 and 4 bits,
#    searches it with 1000 test images and scores the result against the exact
#    top-100 (tq index build, tq search, tq eval recall);
# 6. compresses SmolLM2-135M's keys and values (the committed layer-15 fixture)
#    and compares attention computed from the codes with exact attention
#    (tq kv eval), and plans the whole model's cache (tq plan).
#
# About two minutes on a 2-core machine with AVX2. Environment: TQ_DEMO_NQ (queries for the
# recall runs, default 1000), JOBS (build parallelism, default nproc).
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
NQ=${TQ_DEMO_NQ:-1000}
JOBS=${JOBS:-$(nproc 2>/dev/null || echo 2)}
FMNIST_SRC=/usr/share/datasets/fashion-mnist

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
note() { printf '   %s\n' "$*"; }

# ---- 1. dependencies ------------------------------------------------------------
missing=()
for tool in cmake gcc make python3; do
    command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
[ -f "$FMNIST_SRC/train-images-idx3-ubyte.gz" ] || missing+=(dataset-fashion-mnist)
if [ ${#missing[@]} -gt 0 ]; then
    say "installing: ${missing[*]}"
    SUDO=
    if [ "$(id -u)" -ne 0 ]; then
        if command -v sudo >/dev/null 2>&1; then
            SUDO=sudo
        else
            echo "demo.sh: missing ${missing[*]}, and not root (no sudo): install them and run again" >&2
            exit 1
        fi
    fi
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update
    $SUDO apt-get install -y --no-install-recommends cmake gcc make libc6-dev python3 python3-numpy \
        libhdf5-dev pkg-config dataset-fashion-mnist
else
    say "dependencies: cmake, gcc, make, python3 and dataset-fashion-mnist are present"
fi
# numpy for the format oracle among the tests (the README's second command), in
# the python3 that CMake will find first on PATH
python3 -c 'import numpy' 2>/dev/null || python3 -m pip install --quiet numpy
# the Python package (tq, one extension module over the C library) and pytest, for the test suite's
# "python" test; a Debian system python3 wants --break-system-packages for pip (PEP 668)
pip_install() { python3 -m pip install --quiet "$@" || python3 -m pip install --quiet --break-system-packages "$@"; }
python3 -c 'import pytest' 2>/dev/null || pip_install pytest
say "installing the Python package: pip install ."
pip_install "$ROOT"

# ---- 2. build -------------------------------------------------------------------
say "building tq in ./build (Release)"
cmake -S "$ROOT" -B "$ROOT/build" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$ROOT/build" -j "$JOBS"
TQ=$ROOT/build/tq
"$TQ" info

# ---- 3. data --------------------------------------------------------------------
say "Fashion-MNIST (Debian dataset-fashion-mnist) -> float32 .fvecs"
python3 "$ROOT/bench/data/fashion_mnist.py"
CACHE=${TQ_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/tq}
BASE=$CACHE/fashion-mnist-train.fvecs
QUERIES=$CACHE/fashion-mnist-t10k.fvecs

# ---- 4. distortion ----------------------------------------------------------------
say "Distortion on Fashion-MNIST (d = 784, first 10000 training images, rows normalized)"
note "TurboQuant-MSE with the block-Hadamard rotation, 1..4 bits per coordinate."
note "mse_pred is the Lloyd-Max prediction for uniform unit vectors; real rows, once rotated, should match it."
"$TQ" bench distortion --data "$BASE" --variant mse --rotation hadamard --bits 1,2,3,4 --n 10000

say "Same, with the paper's dense Haar rotation (2 bits, 2000 rows: a dense rotation costs d^2 per vector)"
"$TQ" bench distortion --data "$BASE" --variant mse --rotation dense --bits 2 --n 2000

say "TurboQuant-PROD on Fashion-MNIST ((b-1)-bit MSE + 1-bit QJL of the residual), Hadamard rotation"
note "ip_bias should be within a few bias_se of 0: the inner-product estimate is unbiased."
"$TQ" bench distortion --data "$BASE" --variant prod --rotation hadamard --bits 1,2,3,4 --n 2000

say "Theory check on random unit vectors, d = 128 (not a result: only the paper's setting)"
note "The paper gives D_mse ~ 0.36, 0.117, 0.03, 0.009 for b = 1..4."
"$TQ" bench distortion --dim 128 --variant mse --rotation hadamard --bits 1,2,3,4 --n 10000
"$TQ" bench distortion --dim 128 --variant mse --rotation dense --bits 1,2,3,4 --n 10000
note "PROD at d = 128: d_prod should sit near prod_pred = (pi/2 - 1/d) * D_mse(b-1) / d."
"$TQ" bench distortion --dim 128 --variant prod --rotation dense --bits 1,2,3,4 --n 10000

# ---- 5. recall ---------------------------------------------------------------------
say "Search from codes: 60000 Fashion-MNIST images as the base, the first $NQ test images as queries"
note "Rows normalized, inner product. R@1: the top-1 from codes is the true top-1."
note "plain stores ||x|| per vector (the paper); unbiased stores ||x||/<y, c[idx]> so the inner-product"
note "estimate is unbiased along x — on data whose vectors all point roughly the same way it should help a lot."
for norm in plain unbiased; do
    echo
    "$TQ" bench recall --base "$BASE" --queries "$QUERIES" --nq "$NQ" --bits 2,4 --variant mse \
        --rotation hadamard --norm "$norm" --metric ip --normalize --k 10
done

# ---- 6. the index -------------------------------------------------------------------
say "A compressed vector index: Fashion-MNIST, rows normalized, inner product (the paper's Figure 5 task)"
note "tq index build encodes every vector as it arrives (no training); tq search scores from the codes;"
note "tq eval recall compares with the exact top-100 (computed once by bench/data/fashion_mnist.py)."
python3 "$ROOT/bench/data/fashion_mnist.py" --normalized
DEMO=$ROOT/build/demo
mkdir -p "$DEMO"
for b in 2 4; do
    "$TQ" index build --bits "$b" --threads 1 "$CACHE/fmnist-norm-base.fvecs" "$DEMO/fmnist-$b.tqi" > "$DEMO/build-$b.json"
    "$TQ" search --k 64 --threads 1 "$DEMO/fmnist-$b.tqi" "$CACHE/fmnist-norm-queries.fvecs" \
        --out "$DEMO/result-$b.ivecs" > "$DEMO/search-$b.json"
    "$TQ" eval recall --gt "$CACHE/fmnist-norm-gt.ivecs" "$DEMO/result-$b.ivecs" > "$DEMO/recall-$b.json"
    python3 - "$b" "$DEMO" <<'PYEOF'
import json, sys
b, d = sys.argv[1], sys.argv[2]
bu, se, re = (json.load(open("%s/%s-%s.json" % (d, k, b))) for k in ("build", "search", "recall"))
r = re["recall_1_at_k"]
print("   %s bits: %d B/vector (%.1fx smaller than float32), %d vectors indexed in %.2f s, %.0f queries/s on 1 thread"
      % (b, bu["bytes_per_vector"], 4.0 * bu["dim"] / bu["bytes_per_vector"], bu["n"], bu["seconds"], se["qps"]))
print("          recall@1 %.3f, true top-1 within the first 4: %.3f, within 16: %.3f; recall@10@10 %.3f"
      % (r["1"], r["4"], r["16"], re["recall_10_at_10"]))
PYEOF
done

# ---- 7. the KV cache ----------------------------------------------------------------
say "A compressed KV cache: attention straight from the codes, on SmolLM2-135M's own keys, values and queries"
note "tests/data/smollm2_l15_*: layer 15 of SmolLM2-135M over the first 256 tokens of a text (see its README);"
note "the cache gets the first 64 tokens as the prompt, then the rest; the 192 later positions attend causally."
note "top-1: the most-attended token is the true one; cosine: of the attention outputs, against exact float attention."
"$TQ" kv eval --keys "$ROOT/tests/data/smollm2_l15_k256.npy" --values "$ROOT/tests/data/smollm2_l15_v256.npy" \
    --queries "$ROOT/tests/data/smollm2_l15_q256.npy" --kv-heads 3 --prompt 64 --positions 192 --bits 4,3.5,3,2.5
note "Keys given more bits than values (the keys carry the softmax):"
"$TQ" kv eval --keys "$ROOT/tests/data/smollm2_l15_k256.npy" --values "$ROOT/tests/data/smollm2_l15_v256.npy" \
    --queries "$ROOT/tests/data/smollm2_l15_q256.npy" --kv-heads 3 --prompt 64 --positions 192 --k-bits 4.5 --v-bits 2.5
say "What such a cache takes for the whole model at 8192 tokens"
"$TQ" plan --layers 30 --kv-heads 3 --head-dim 64 --context 8192 --k-bits 4 --v-bits 3
note "All 30 layers and 4096 tokens, side by side with KIVI-style and uniform caches and float32/int8 decode speed:"
note "python3 bench/data/smollm2_kv.py && python3 bench/kv.py   (needs torch + transformers; see bench/README.md)"

say "done"
note "Run the tests with: ctest --test-dir build --output-on-failure"
