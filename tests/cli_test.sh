#!/bin/sh
# cli_test.sh — end-to-end checks of the tq command-line tool (registered as
# ctest test "cli"). POSIX sh; python3's json module parses the output.
#
#   sh tests/cli_test.sh PATH/TO/tq tests/data TMPDIR
#
# Every check asserts something; the script exits non-zero if any failed.

TQ=$1
DATA=$2
TMP=$3
if [ -z "$TQ" ] || [ -z "$DATA" ] || [ -z "$TMP" ]; then
    echo "usage: sh cli_test.sh TQ_BINARY DATA_DIR TMP_DIR" >&2
    exit 2
fi
TMP=$TMP/cli_test.$$
mkdir -p "$TMP" || exit 2
trap 'rm -rf "$TMP"' EXIT

FAILED=0
PASSED=0
pass() { PASSED=$((PASSED + 1)); echo "ok   $1"; }
fail() { FAILED=$((FAILED + 1)); echo "FAIL $1" >&2; }

BASE=$DATA/fmnist_base_500.fvecs
QUERIES=$DATA/fmnist_queries_50.npy

# ---- the JSON checker -------------------------------------------------------
cat > "$TMP/check.py" <<'EOF'
import json, math, sys

kind, path = sys.argv[1], sys.argv[2]
args = dict(a.split("=", 1) for a in sys.argv[3:])
text = open(path).read()
obj = json.loads(text)  # exactly one JSON value, nothing else on stdout
problems = []

def need(cond, what):
    if not cond:
        problems.append(what)

def num(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)

need(isinstance(obj, dict), "top level is not an object")
need(text.strip().count("\n") == 0, "more than one line of JSON")

if kind == "distortion":
    for k in ("dim", "n", "variant", "rotation", "results"):
        need(k in obj, "missing key %s" % k)
    need(obj.get("dim") == int(args["dim"]), "dim %r != %s" % (obj.get("dim"), args["dim"]))
    need(obj.get("n") == int(args["n"]), "n %r != %s" % (obj.get("n"), args["n"]))
    need(obj.get("variant") == args["variant"], "variant %r" % obj.get("variant"))
    need(obj.get("rotation") == args.get("rotation", "hadamard"), "rotation %r" % obj.get("rotation"))
    bits = [int(b) for b in args["bits"].split(",")]
    res = obj.get("results", [])
    need([r.get("bits") for r in res] == bits, "results bits %r != %r" % ([r.get("bits") for r in res], bits))
    dim = obj.get("dim")
    for r in res:
        b = r.get("bits")
        for k in ("d_mse", "d_prod", "ip_bias", "ip_bias_stderr", "bits_per_value",
                  "upper_bound", "lower_bound"):
            need(k in r, "b=%s: missing key %s" % (b, k))
        for k in ("d_mse", "d_prod", "ip_bias", "ip_bias_stderr", "bits_per_value"):
            need(num(r.get(k)), "b=%s: %s = %r is not a finite number" % (b, k, r.get(k)))
        if problems:
            break
        need(r["d_mse"] >= 0 and r["d_prod"] >= 0 and r["ip_bias_stderr"] > 0, "b=%d: negative moments" % b)
        need(r["bits_per_value"] >= b, "b=%d: bits_per_value %g < bits" % (b, r["bits_per_value"]))
        need(abs(r["bits_per_value"] - r["code_size"] * 8.0 / dim) <= 1e-7 * r["bits_per_value"],
             "b=%d: bits_per_value %g != code_size*8/dim" % (b, r["bits_per_value"]))
        v = obj["variant"]
        if v == "uniform":
            need(r["upper_bound"] is None and r["lower_bound"] is None, "uniform has no bounds")
            continue
        p4 = 4.0 ** -b
        if v == "mse":
            up, lo, m = math.sqrt(3) * math.pi / 2 * p4, p4, r["d_mse"]
        else:
            up, lo, m = math.sqrt(3) * math.pi ** 2 / dim * p4, p4 / dim, r["d_prod"]
        need(abs(r["upper_bound"] - up) <= 1e-6 * up, "b=%d: upper_bound %r != %g" % (b, r["upper_bound"], up))
        need(abs(r["lower_bound"] - lo) <= 1e-6 * lo, "b=%d: lower_bound %r != %g" % (b, r["lower_bound"], lo))
        need(lo <= m <= up, "b=%d: %s = %g outside the paper's bounds [%g, %g]"
             % (b, r.get("bound_metric"), m, lo, up))
        need(r.get("within_bounds") is True, "b=%d: within_bounds is %r" % (b, r.get("within_bounds")))
        if v == "mse" and "rel" in args and num(r.get("d_mse_predicted")):
            rel = abs(r["d_mse"] / r["d_mse_predicted"] - 1)
            need(rel <= float(args["rel"]), "b=%d: d_mse %g vs predicted %g (%.1f%%)"
                 % (b, r["d_mse"], r["d_mse_predicted"], 100 * rel))
        if v in ("prod", "qjl"):
            # the inner-product estimate is unbiased: |bias| within 4 standard errors
            need(abs(r["ip_bias"]) <= 4 * r["ip_bias_stderr"],
                 "b=%d: ip_bias %g exceeds 4 stderr (%g)" % (b, r["ip_bias"], r["ip_bias_stderr"]))
            if r.get("d_prod_predicted") is not None and "rel" in args:
                rel = abs(r["d_prod"] / r["d_prod_predicted"] - 1)
                need(rel <= float(args["rel"]), "b=%d: d_prod %g vs predicted %g (%.1f%%)"
                     % (b, r["d_prod"], r["d_prod_predicted"], 100 * rel))
elif kind == "recall":
    for k in ("n_base", "nq", "dim", "metric", "k", "results"):
        need(k in obj, "missing key %s" % k)
    need(obj.get("n_base") == int(args["n_base"]), "n_base %r" % obj.get("n_base"))
    need(obj.get("nq") == int(args["nq"]), "nq %r" % obj.get("nq"))
    need(obj.get("dim") == 784, "dim %r" % obj.get("dim"))
    res = obj.get("results", [])
    bits = [int(b) for b in args["bits"].split(",")]
    need([r.get("bits") for r in res] == bits, "results bits %r" % [r.get("bits") for r in res])
    for r in res:
        for k in ("recall_at_1", "recall_1_at_k", "bits_per_value", "encode_s", "score_s"):
            need(num(r.get(k)), "b=%s: %s = %r" % (r.get("bits"), k, r.get(k)))
        if problems:
            break
        need(0 <= r["recall_at_1"] <= r["recall_1_at_k"] <= 1,
             "b=%d: recalls %g, %g out of order" % (r["bits"], r["recall_at_1"], r["recall_1_at_k"]))
    if "min_r1" in args and res and not problems:
        last = res[-1]
        need(last["recall_at_1"] >= float(args["min_r1"]),
             "b=%d: recall_at_1 %g < %s" % (last["bits"], last["recall_at_1"], args["min_r1"]))
        need(last["recall_1_at_k"] >= float(args["min_r1k"]),
             "b=%d: recall_1_at_k %g < %s" % (last["bits"], last["recall_1_at_k"], args["min_r1k"]))
else:
    problems.append("unknown check kind " + kind)

for p in problems:
    print("  " + p, file=sys.stderr)
sys.exit(1 if problems else 0)
EOF

# run NAME CHECK_KIND CHECK_ARGS -- TQ_ARGS...: run tq, expect exit 0 and JSON that passes the checker.
run_json() {
    name=$1 kind=$2 cargs=$3
    shift 3
    if ! "$TQ" "$@" > "$TMP/out.json" 2> "$TMP/err.txt"; then
        fail "$name: tq $* exited non-zero"
        cat "$TMP/err.txt" >&2
        return
    fi
    # shellcheck disable=SC2086
    if python3 "$TMP/check.py" "$kind" "$TMP/out.json" $cargs; then
        pass "$name"
    else
        fail "$name: tq $*"
        head -c 2000 "$TMP/out.json" >&2
        echo >&2
    fi
}

# expect_error NAME TQ_ARGS...: tq must exit non-zero, say why on stderr, print nothing on stdout.
expect_error() {
    name=$1
    shift
    "$TQ" "$@" > "$TMP/out.txt" 2> "$TMP/err.txt"
    rc=$?
    if [ "$rc" -eq 0 ]; then
        fail "$name: tq $* exited 0"
    elif [ "$rc" -gt 125 ]; then
        fail "$name: tq $* crashed (status $rc)"
    elif ! grep -q '^tq: ' "$TMP/err.txt"; then
        fail "$name: tq $* gave no 'tq: ' message on stderr"
    elif [ -s "$TMP/out.txt" ]; then
        fail "$name: tq $* wrote to stdout on error"
    else
        pass "$name ($(head -n 1 "$TMP/err.txt"))"
    fi
}

# expect_ok_text NAME PATTERN TQ_ARGS...: exit 0 and stdout contains PATTERN.
expect_ok_text() {
    name=$1 pattern=$2
    shift 2
    if ! "$TQ" "$@" > "$TMP/out.txt" 2> "$TMP/err.txt"; then
        fail "$name: tq $* exited non-zero"
        cat "$TMP/err.txt" >&2
    elif ! grep -q -- "$pattern" "$TMP/out.txt"; then
        fail "$name: output of tq $* lacks '$pattern'"
        cat "$TMP/out.txt" >&2
    else
        pass "$name"
    fi
}

# ---- distortion on random unit vectors ---------------------------------------
run_json "distortion mse" distortion "dim=64 n=2000 variant=mse bits=1,2 rel=0.05" \
    bench distortion --dim 64 --bits 1,2 --variant mse --n 2000 --json
run_json "distortion mse dense" distortion "dim=64 n=2000 variant=mse rotation=dense bits=1,2,3 rel=0.05" \
    bench distortion --dim 64 --bits 1,2,3 --variant mse --rotation dense --n 2000 --json
run_json "distortion mse unbiased norm" distortion "dim=64 n=1000 variant=mse bits=2" \
    bench distortion --dim 64 --bits 2 --variant mse --norm unbiased --n 1000 --json
run_json "distortion prod" distortion "dim=64 n=2000 variant=prod bits=1,2 rel=0.15" \
    bench distortion --dim 64 --bits 1,2 --variant prod --n 2000 --json
run_json "distortion prod structured" distortion "dim=64 n=2000 variant=prod bits=2" \
    bench distortion --dim 64 --bits 2 --variant prod --qjl structured --n 2000 --json
run_json "distortion qjl" distortion "dim=64 n=2000 variant=qjl bits=1 rel=0.15" \
    bench distortion --dim 64 --bits 1 --variant qjl --n 2000 --json
run_json "distortion uniform" distortion "dim=64 n=500 variant=uniform rotation=none bits=4" \
    bench distortion --dim 64 --bits 4 --variant uniform --rotation none --n 500 --json
run_json "distortion --opt=value form" distortion "dim=48 n=300 variant=mse bits=3" \
    bench distortion --dim=48 --bits=3 --n=300 --seed=7 --json

# same seed, same output (the tool's data and the library's codes are deterministic)
"$TQ" bench distortion --dim 32 --bits 2 --n 300 --seed 5 --json > "$TMP/a.json" 2>/dev/null
"$TQ" bench distortion --dim 32 --bits 2 --n 300 --seed 5 --json > "$TMP/b.json" 2>/dev/null
"$TQ" bench distortion --dim 32 --bits 2 --n 300 --seed 6 --json > "$TMP/c.json" 2>/dev/null
if [ -s "$TMP/a.json" ] && cmp -s "$TMP/a.json" "$TMP/b.json" && ! cmp -s "$TMP/a.json" "$TMP/c.json"; then
    pass "distortion is deterministic per seed"
else
    fail "distortion: same seed gave different output, or another seed the same"
fi

# ---- distortion on the real-data fixture ------------------------------------
run_json "distortion --data fvecs" distortion "dim=784 n=500 variant=mse bits=1,2" \
    bench distortion --data "$BASE" --bits 1,2 --json
run_json "distortion --data npy --n" distortion "dim=784 n=40 variant=prod bits=2" \
    bench distortion --data "$QUERIES" --dim 784 --variant prod --bits 2 --n 40 --json
expect_ok_text "distortion table" "d_mse" bench distortion --dim 32 --bits 1,2 --n 200
expect_ok_text "distortion --help" "bits_per_value" bench distortion --help
expect_ok_text "tq --help" "bench distortion" --help
expect_ok_text "tq info" "tq" info

# ---- bad arguments -----------------------------------------------------------
expect_error "no command"
expect_error "unknown command" frobnicate
expect_error "unknown bench" bench nothing
expect_error "missing --dim" bench distortion --bits 1
expect_error "--dim 0" bench distortion --dim 0
expect_error "--dim not a number" bench distortion --dim 12x
expect_error "--dim negative" bench distortion --dim -5
expect_error "--dim too large" bench distortion --dim 99999999
expect_error "--bits 9" bench distortion --dim 16 --bits 9
expect_error "--bits 0" bench distortion --dim 16 --bits 0
expect_error "--bits garbage" bench distortion --dim 16 --bits 1,,2
expect_error "--bits repeated" bench distortion --dim 16 --bits 2,2
expect_error "--variant unknown" bench distortion --dim 16 --variant foo
expect_error "--rotation unknown" bench distortion --dim 16 --rotation spin
expect_error "--qjl unknown" bench distortion --dim 16 --variant prod --qjl fast
expect_error "--norm unknown" bench distortion --dim 16 --norm big
expect_error "--qjl with mse" bench distortion --dim 16 --qjl structured
expect_error "--rounds with dense" bench distortion --dim 16 --rotation dense --rounds 3
expect_error "--norm with prod" bench distortion --dim 16 --variant prod --norm unbiased
expect_error "qjl with 2 bits" bench distortion --dim 16 --variant qjl --bits 1,2
expect_error "--n 1" bench distortion --dim 16 --n 1
expect_error "--seed garbage" bench distortion --dim 16 --seed abc
expect_error "option without value" bench distortion --dim
expect_error "unknown option" bench distortion --dim 16 --frob 3
expect_error "stray argument" bench distortion --dim 16 extra
expect_error "--data missing file" bench distortion --data "$TMP/nope.fvecs"
expect_error "--data dim mismatch" bench distortion --data "$BASE" --dim 100
printf 'not a vector file at all' > "$TMP/junk.fvecs"
expect_error "--data junk file" bench distortion --data "$TMP/junk.fvecs"
expect_error "dense rotation too large" bench distortion --dim 5000 --rotation dense --n 2
expect_error "recall without files" bench recall --bits 2
expect_error "recall --metric unknown" bench recall --base "$BASE" --queries "$QUERIES" --metric cos
expect_error "recall --k 0" bench recall --base "$BASE" --queries "$QUERIES" --k 0

# ---- recall on the fixtures ---------------------------------------------------
run_json "recall mse" recall "n_base=500 nq=50 bits=2,4" \
    bench recall --base "$BASE" --queries "$QUERIES" --bits 2,4 --normalize --quiet --json
# 8-bit codes with the unbiased scale are nearly exact: the true top-1 must be found
run_json "recall mse 8 bits" recall "n_base=500 nq=20 bits=8 min_r1=0.85 min_r1k=1.0" \
    bench recall --base "$BASE" --queries "$QUERIES" --nq 20 --bits 8 --norm unbiased --normalize --quiet --json
run_json "recall l2 prod" recall "n_base=500 nq=10 bits=3" \
    bench recall --base "$BASE" --queries "$QUERIES" --nq 10 --bits 3 --variant prod --metric l2 --k 5 --quiet --json
expect_ok_text "recall table" "R@1" bench recall --base "$BASE" --queries "$QUERIES" --nq 10 --bits 2 --quiet

# ---- encode, decode, inspect ------------------------------------------------
# expect_status NAME CODE TQ_ARGS...: tq must exit with CODE (1 run-time, 2 usage), say why in a 'tq: '
# line on stderr and print nothing on stdout.
expect_status() {
    name=$1 want=$2
    shift 2
    "$TQ" "$@" > "$TMP/out.txt" 2> "$TMP/err.txt"
    rc=$?
    if [ "$rc" -ne "$want" ]; then
        fail "$name: tq $* exited $rc, expected $want"
        cat "$TMP/err.txt" >&2
    elif ! grep -q '^tq: ' "$TMP/err.txt"; then
        fail "$name: tq $* gave no 'tq: ' message on stderr"
    elif [ -s "$TMP/out.txt" ]; then
        fail "$name: tq $* wrote to stdout on error"
    else
        pass "$name ($(head -n 1 "$TMP/err.txt"))"
    fi
}

# relerr.py ORIG DECODED MAX: every value finite and ||x - y|| / ||x|| over all rows <= MAX (stdlib only).
cat > "$TMP/relerr.py" <<'PYEOF'
import math, struct, sys

def rows(path):
    data = open(path, "rb").read()
    if data[:6] == b"\x93NUMPY":
        hl = struct.unpack_from("<H", data, 8)[0]
        header = data[10:10 + hl].decode("latin1")
        shape = tuple(int(t) for t in header[header.index("(") + 1:header.index(")")].split(",") if t.strip())
        vals = struct.unpack_from("<%df" % (shape[0] * shape[1]), data, 10 + hl)
        return [vals[i * shape[1]:(i + 1) * shape[1]] for i in range(shape[0])]
    out, pos = [], 0
    while pos < len(data):
        d = struct.unpack_from("<i", data, pos)[0]
        out.append(struct.unpack_from("<%df" % d, data, pos + 4))
        pos += 4 + 4 * d
    return out

x, y = rows(sys.argv[1]), rows(sys.argv[2])
lim = float(sys.argv[3])
if len(x) != len(y) or any(len(a) != len(b) for a, b in zip(x, y)):
    sys.exit("shape mismatch: %d vs %d rows" % (len(x), len(y)))
if not all(math.isfinite(v) for r in y for v in r):
    sys.exit("non-finite decoded values")
num = sum((a - b) ** 2 for r, s in zip(x, y) for a, b in zip(r, s))
den = sum(a * a for r in x for a in r)
rel = math.sqrt(num / den)
print("%.4f" % rel)
sys.exit(0 if rel <= lim else "relative error %.4f > %s" % (rel, lim))
PYEOF

# rel_error_check NAME DECODED MAX
rel_error_check() {
    if python3 "$TMP/relerr.py" "$BASE" "$2" "$3" > "$TMP/rel.txt" 2> "$TMP/err.txt"; then
        pass "$1 (relative error $(cat "$TMP/rel.txt") <= $3)"
    else
        fail "$1: $(cat "$TMP/err.txt")"
    fi
}

# Lloyd-Max on the sphere: ||x - x~|| / ||x|| is about sqrt(D_mse) = 0.34 at 2 bits, 0.097 at 4 bits.
if "$TQ" encode --data "$BASE" --quantizer "$TMP/q4.tqqz" --codes "$TMP/c4.tqca" --bits 4 2> "$TMP/err.txt" &&
    grep -q '^tq: encoded 500 rows .*bits per value' "$TMP/err.txt"; then
    pass "encode creates a quantizer ($(cat "$TMP/err.txt"))"
else
    fail "encode --bits 4: $(cat "$TMP/err.txt")"
fi
if "$TQ" decode --quantizer "$TMP/q4.tqqz" --codes "$TMP/c4.tqca" --out "$TMP/y4.fvecs" --quiet; then
    rel_error_check "decode mse 4 bits" "$TMP/y4.fvecs" 0.13
else
    fail "decode mse 4 bits"
fi
if "$TQ" encode --data "$BASE" --quantizer "$TMP/q2.tqqz" --codes "$TMP/c2.tqca" --bits 2 --norm unit --quiet &&
    "$TQ" decode --quantizer "$TMP/q2.tqqz" --codes "$TMP/c2.tqca" --out "$TMP/y2.npy" --quiet; then
    rel_error_check "decode mse 2 bits, unit norm, to .npy" "$TMP/y2.npy" 0.45
else
    fail "encode/decode mse 2 bits"
fi
if "$TQ" encode --data "$BASE" --quantizer "$TMP/qp.tqqz" --codes "$TMP/cp.tqca" --variant prod --bits 3 \
    --qjl structured --outliers 16 --seed 3 --quiet &&
    "$TQ" decode --quantizer "$TMP/qp.tqqz" --codes "$TMP/cp.tqca" --out "$TMP/yp.fvecs" --quiet; then
    rel_error_check "decode prod 3 bits, outlier split" "$TMP/yp.fvecs" 0.6
else
    fail "encode/decode prod 3 bits"
fi
if "$TQ" encode --data "$BASE" --quantizer "$TMP/qu.tqqz" --codes "$TMP/cu.tqca" --variant uniform \
    --scope channel --uniform asymmetric --bits 8 --rotation none --quiet &&
    "$TQ" decode --quantizer "$TMP/qu.tqqz" --codes "$TMP/cu.tqca" --out "$TMP/yu.fvecs" --quiet; then
    rel_error_check "decode uniform per-channel 8 bits" "$TMP/yu.fvecs" 0.01
else
    fail "encode/decode uniform per-channel"
fi
# an existing quantizer is reused as it is: the same codes, byte for byte
if "$TQ" encode --data "$BASE" --quantizer "$TMP/q4.tqqz" --codes "$TMP/c4b.tqca" --quiet &&
    cmp -s "$TMP/c4.tqca" "$TMP/c4b.tqca"; then
    pass "encode with an existing quantizer gives the same codes"
else
    fail "encode with an existing quantizer: the codes differ, or it failed"
fi
if "$TQ" encode --data "$TMP/y2.npy" --quantizer "$TMP/q2.tqqz" --codes "$TMP/c2b.tqca" --n 7 --quiet &&
    "$TQ" inspect "$TMP/c2b.tqca" --json > "$TMP/i.json" &&
    python3 -c 'import json, sys; sys.exit(json.load(open(sys.argv[1]))["n"] != 7)' "$TMP/i.json"; then
    pass "encode reads the .npy that decode wrote (--n 7)"
else
    fail "encode --data decoded.npy --n 7"
fi

# inspect: both kinds, text and JSON; the fingerprints agree
expect_ok_text "inspect quantizer" "fingerprint" inspect "$TMP/q4.tqqz"
expect_ok_text "inspect codes" "500 records" inspect "$TMP/c4.tqca"
cat > "$TMP/inspect.py" <<'PYEOF'
import json, sys
q, c = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
assert q["kind"] == "quantizer" and c["kind"] == "codes", (q["kind"], c["kind"])
assert q["dim"] == 784 and q["bits"] == 4 and q["variant"] == "mse" and q["rotation"] == "hadamard", q
assert q["rounds"] == 2 and q["qjl"] is None and q["norm"] == "plain" and q["outliers"] == 0, q
assert abs(q["bits_per_value"] - q["code_size"] * 8 / 784) < 1e-6, q
assert c["n"] == 500 and c["code_size"] == q["code_size"] and c["fingerprint"] == q["fingerprint"], (q, c)
PYEOF
if "$TQ" inspect --json "$TMP/q4.tqqz" > "$TMP/iq.json" && "$TQ" inspect "$TMP/c4.tqca" --json > "$TMP/ic.json" &&
    python3 "$TMP/inspect.py" "$TMP/iq.json" "$TMP/ic.json"; then
    pass "inspect --json: config, code size and fingerprints agree"
else
    fail "inspect --json"
fi

# usage errors (exit 2) and run-time errors (exit 1)
expect_status "encode without --codes" 2 encode --data "$BASE" --quantizer "$TMP/qx.tqqz"
expect_status "encode: a new quantizer needs --bits" 2 encode --data "$BASE" --quantizer "$TMP/qx.tqqz" \
    --codes "$TMP/cx.tqca"
expect_status "encode: quantizer option with an existing quantizer" 2 encode --data "$BASE" \
    --quantizer "$TMP/q4.tqqz" --codes "$TMP/cx.tqca" --bits 4
expect_status "encode --bits list" 2 encode --data "$BASE" --quantizer "$TMP/qx.tqqz" --codes "$TMP/cx.tqca" \
    --bits 2,3
expect_status "encode --norm with prod" 2 encode --data "$BASE" --quantizer "$TMP/qx.tqqz" \
    --codes "$TMP/cx.tqca" --bits 3 --variant prod --norm unit
expect_status "encode --json" 2 encode --json --data "$BASE" --quantizer "$TMP/qx.tqqz" --codes "$TMP/cx.tqca"
expect_status "decode without --out" 2 decode --quantizer "$TMP/q4.tqqz" --codes "$TMP/c4.tqca"
expect_status "decode --bits" 2 decode --quantizer "$TMP/q4.tqqz" --codes "$TMP/c4.tqca" --out "$TMP/z" --bits 2
expect_status "inspect without a file" 2 inspect
expect_status "inspect two files" 2 inspect "$TMP/q4.tqqz" "$TMP/c4.tqca"
expect_status "encode: missing data" 1 encode --data "$TMP/nope.fvecs" --quantizer "$TMP/qx.tqqz" \
    --codes "$TMP/cx.tqca" --bits 2
python3 -c 'import struct, sys; open(sys.argv[1], "wb").write(struct.pack("<i4f", 4, 1, 2, 3, 4) * 3)' \
    "$TMP/d4.fvecs"
expect_status "encode: data of another dimension" 1 encode --data "$TMP/d4.fvecs" --quantizer "$TMP/q4.tqqz" \
    --codes "$TMP/cx.tqca"
expect_status "encode: --outliers >= dim" 2 encode --data "$BASE" --quantizer "$TMP/qx.tqqz" \
    --codes "$TMP/cx.tqca" --bits 2 --outliers 784
if [ -e "$TMP/qx.tqqz" ] || [ -e "$TMP/cx.tqca" ]; then
    fail "a failed encode left a file behind"
else
    pass "failed encodes left no files"
fi
expect_status "decode with the wrong quantizer" 1 decode --quantizer "$TMP/q2.tqqz" --codes "$TMP/c4.tqca" \
    --out "$TMP/z.fvecs"
if grep -q 'another quantizer' "$TMP/err.txt"; then
    pass "wrong quantizer: the message says so"
else
    fail "wrong quantizer: the message lacks 'another quantizer'"
fi
expect_status "decode into a missing directory" 1 decode --quantizer "$TMP/q4.tqqz" --codes "$TMP/c4.tqca" \
    --out "$TMP/no/such/dir/y.fvecs"
expect_status "inspect junk" 1 inspect "$TMP/junk.fvecs"
expect_status "inspect a missing file" 1 inspect "$TMP/nope.tqqz"

# corrupt and truncated files fail cleanly (exit 1, one message), never crash
cat > "$TMP/corrupt.py" <<'PYEOF'
import sys
d = sys.argv[1]
q, c = open(d + "/q4.tqqz", "rb").read(), open(d + "/c4.tqca", "rb").read()
def flip(b, i):
    b = bytearray(b)
    b[i] ^= 0x10
    return bytes(b)
files = {
    "c_record.tqca": flip(c, 40 + 1000), "c_header.tqca": flip(c, 24), "c_trunc.tqca": c[:-5],
    "c_short.tqca": c[:20], "q_payload.tqqz": flip(q, 100), "q_header.tqqz": flip(q, 28),
    "q_trunc.tqqz": q[:-1], "q_short.tqqz": q[:50],
}
for name, data in files.items():
    open(d + "/" + name, "wb").write(data)
PYEOF
python3 "$TMP/corrupt.py" "$TMP"
for f in c_record c_header c_trunc c_short; do
    expect_status "decode corrupt codes ($f)" 1 decode --quantizer "$TMP/q4.tqqz" --codes "$TMP/$f.tqca" \
        --out "$TMP/z.fvecs"
    expect_status "inspect corrupt codes ($f)" 1 inspect "$TMP/$f.tqca"
done
for f in q_payload q_header q_trunc q_short; do
    expect_status "decode with a corrupt quantizer ($f)" 1 decode --quantizer "$TMP/$f.tqqz" \
        --codes "$TMP/c4.tqca" --out "$TMP/z.fvecs"
    expect_status "inspect corrupt quantizer ($f)" 1 inspect "$TMP/$f.tqqz"
done
if [ -e "$TMP/z.fvecs" ]; then
    fail "a failed decode left an output file"
else
    pass "failed decodes left no output file"
fi
expect_ok_text "encode --help" "--quantizer" encode --help
expect_ok_text "decode --help" "--out" decode --help
expect_ok_text "inspect --help" "fingerprint" inspect --help


# ---- the index: build, info, search, eval recall, add -----------------------
# jget FILE KEY: one value from a JSON line (python3 stdlib).
jget() { python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print(eval('d'+sys.argv[2]))" "$1" "$2"; }
IX=$TMP/ix.tqi
if "$TQ" index build --bits 4 --metric ip "$BASE" "$IX" > "$TMP/b.json" 2> "$TMP/err.txt" &&
   [ "$(jget "$TMP/b.json" "['n']")" = 500 ] && [ "$(jget "$TMP/b.json" "['dim']")" = 784 ] &&
   [ ! -s "$TMP/err.txt" ]; then
    pass "index build (500 x 784, silent stderr when not a terminal)"
else
    fail "index build"; cat "$TMP/b.json" "$TMP/err.txt" >&2
fi
expect_ok_text "index info" '"variant": "mse"' index info "$IX"
# exact ground truth from a float-rerank index searched over everything
"$TQ" index build --bits 2 --rerank float "$BASE" "$TMP/exact.tqi" > /dev/null 2>&1
if "$TQ" search --k 16 --shortlist 500 --rerank-depth 500 "$TMP/exact.tqi" "$QUERIES" --out "$TMP/gt.ivecs" \
       > "$TMP/s.json" 2> "$TMP/err.txt" && [ "$(jget "$TMP/s.json" "['queries']")" = 50 ]; then
    pass "search with float rerank"
else
    fail "search with float rerank"; cat "$TMP/err.txt" >&2
fi
"$TQ" eval recall --gt "$TMP/gt.ivecs" "$TMP/gt.ivecs" > "$TMP/e.json" 2> "$TMP/err.txt"
if [ "$(jget "$TMP/e.json" "['recall_1_at_k']['1']")" = 1 ] && [ "$(jget "$TMP/e.json" "['recall_10_at_10']")" = 1 ]; then
    pass "eval recall of the ground truth against itself is 1"
else
    fail "eval recall self"; cat "$TMP/e.json" "$TMP/err.txt" >&2
fi
"$TQ" search --k 16 "$IX" "$QUERIES" --out "$TMP/r.npy" > /dev/null 2> "$TMP/err.txt"
"$TQ" eval recall --gt "$TMP/gt.ivecs" "$TMP/r.npy" > "$TMP/e.json" 2> "$TMP/err.txt"
if python3 - "$TMP/e.json" <<'PYEOF'
import json, sys
d = json.load(open(sys.argv[1]))
r = d["recall_1_at_k"]
assert sorted(r, key=int) == ["1", "2", "4", "8", "16"], r
vals = [r[k] for k in ("1", "2", "4", "8", "16")]
assert all(a <= b for a, b in zip(vals, vals[1:])), vals      # non-decreasing in k
assert 0.5 <= vals[0] < 1.0 + 1e-9 and vals[-1] >= 0.95, vals  # 4-bit codes on real data
assert 0.5 <= d["recall_10_at_10"] <= 1.0, d
PYEOF
then pass "4-bit recall from an .npy result: sane and monotone"; else fail "4-bit recall"; cat "$TMP/e.json" >&2; fi
cp "$IX" "$TMP/ix_before.tqi"
"$TQ" index add "$IX" "$QUERIES" > "$TMP/a.json" 2> "$TMP/err.txt"
if [ "$(jget "$TMP/a.json" "['n']")" = 550 ] && [ "$(jget "$TMP/a.json" "['added']")" = 50 ]; then
    pass "index add appends (550 vectors)"
else
    fail "index add"; cat "$TMP/a.json" "$TMP/err.txt" >&2
fi
# a query added to a cosine index finds itself (id 500 + row) first
"$TQ" index build --bits 4 --metric cosine "$BASE" "$TMP/cos.tqi" > /dev/null 2>&1
"$TQ" index add "$TMP/cos.tqi" "$QUERIES" > /dev/null 2>&1
"$TQ" search --k 1 --load "$TMP/cos.tqi" "$QUERIES" --out "$TMP/self.ivecs" > /dev/null 2>&1
if python3 - "$TMP/self.ivecs" <<'PYEOF'
import struct, sys
b = open(sys.argv[1], "rb").read()
ids = [struct.unpack_from("<i", b, 8 * i + 4)[0] for i in range(len(b) // 8)]
hits = sum(1 for i, v in enumerate(ids) if v == 500 + i)
assert len(ids) == 50 and hits >= 45, (len(ids), hits)
PYEOF
then pass "added vectors are searchable"; else fail "added vectors are searchable"; fi
printf 'TQIX-junk' > "$TMP/junk.tqi"
python3 -c "import sys; b=bytearray(open(sys.argv[1],'rb').read()); b[300]^=1; open(sys.argv[2],'wb').write(b)" \
    "$TMP/ix_before.tqi" "$TMP/flip.tqi"
expect_status "search a corrupt index" 1 search --k 5 "$TMP/flip.tqi" "$QUERIES" --out "$TMP/x.ivecs"
expect_status "search a junk file" 1 search --k 5 "$TMP/junk.tqi" "$QUERIES" --out "$TMP/x.ivecs"
expect_status "index add to a corrupt index" 1 index add "$TMP/flip.tqi" "$QUERIES"
if cmp -s "$TMP/flip.tqi" "$TMP/flip.tqi" && [ ! -e "$TMP/x.ivecs" ]; then pass "failed searches wrote nothing"; else fail "failed search output"; fi
expect_status "search: queries of another dimension" 1 search --k 5 "$IX" "$TMP/gt.ivecs" --out "$TMP/x.ivecs"
expect_status "index build: missing input" 1 index build --bits 4 "$TMP/none.fvecs" "$TMP/n.tqi"
expect_error "index build without --bits" index build "$BASE" "$TMP/n.tqi"
expect_error "index build --bits 9" index build --bits 9 "$BASE" "$TMP/n.tqi"
expect_error "index build --metric bogus" index build --bits 4 --metric dot "$BASE" "$TMP/n.tqi"
expect_error "search without --k" search "$IX" "$QUERIES" --out "$TMP/x.ivecs"
expect_error "search --k 0" search --k 0 "$IX" "$QUERIES" --out "$TMP/x.ivecs"
expect_error "eval without --gt" eval recall "$TMP/r.npy"
"$TQ" search --k 16 --max-queries 10 "$IX" "$QUERIES" --out "$TMP/gt10.ivecs" > /dev/null 2>&1
expect_status "eval: ground truth shorter than the result" 1 eval recall --gt "$TMP/gt10.ivecs" "$TMP/gt.ivecs"
"$TQ" index build --bits 2.5 "$BASE" "$TMP/frac.tqi" > "$TMP/f.json" 2> "$TMP/err.txt"
if python3 -c "import json,sys; d=json.load(open(sys.argv[1])); assert 2.5 < d['bits_per_value'] < 2.75, d  # 2.5 + two parts' factors" "$TMP/f.json"; then
    pass "index build --bits 2.5 (outlier split)"
else
    fail "index build --bits 2.5"; cat "$TMP/f.json" "$TMP/err.txt" >&2
fi
expect_ok_text "index --help" "--rerank" index --help
expect_ok_text "search --help" "--shortlist" search --help
expect_ok_text "eval recall --help" "recall_10_at_10" eval recall --help

# ---- tq plan: KV cache memory, checked against figures computed here ----------
# SmolLM2-135M: 30 layers, 3 KV heads, head_dim 64, 8192 tokens; K at 3.5 bits, V at 3, fp16 factors.
# K per head: 32 channels at 4 bits (16 B) + 32 at 3 bits (12 B) + one fp16 scale per part (2 + 2) = 32 B;
# V per head: 64 channels at 3 bits (24 B) + one fp16 scale = 26 B.
SMOL="--layers 30 --kv-heads 3 --head-dim 64 --context 8192"
# plan_check NAME 'PYTHON ASSERTIONS on d' TQ_ARGS...: tq plan --json exits 0 and the assertions hold.
plan_check() {
    name=$1 cond=$2
    shift 2
    if ! "$TQ" plan "$@" --json > "$TMP/plan.json" 2> "$TMP/err.txt"; then
        fail "$name: tq plan $* exited non-zero"; cat "$TMP/err.txt" >&2; return
    fi
    if python3 -c "import json,sys; d=json.load(open(sys.argv[1])); $cond" "$TMP/plan.json" 2> "$TMP/err.txt" &&
       [ "$(wc -l < "$TMP/plan.json")" -eq 1 ]; then
        pass "$name"
    else
        fail "$name: tq plan $*"; cat "$TMP/plan.json" "$TMP/err.txt" >&2
    fi
}
FP16=$((2 * 30 * 3 * 64 * 8192 * 2))
CODES=$(((32 + 26) * 3 * 30 * 8188))  # 4 sink tokens (the default) stay exact
# shellcheck disable=SC2086
plan_check "plan SmolLM2 3.5/3 bits" "
assert d['fp16_bytes'] == $FP16 == 188743680, d['fp16_bytes']
assert (d['k_bytes_per_head'], d['v_bytes_per_head']) == (32, 26), d
assert (d['k_bytes_per_token_layer'], d['v_bytes_per_token_layer'], d['tq_bytes_per_token_layer']) == (96, 78, 174), d
assert d['fp16_bytes_per_token_layer'] == 2 * 3 * 64 * 2
assert (d['k_bits_per_value'], d['v_bits_per_value']) == (32 * 8 / 64, 26 * 8 / 64) == (4.0, 3.25), d
assert d['codes_bytes'] == $CODES, d
assert (d['k_codes_bytes'], d['v_codes_bytes']) == (32 * 3 * 30 * 8188, 26 * 3 * 30 * 8188), d
assert d['sinks'] == 4 and d['window_tokens'] == 4 and d['compressed_tokens'] == 8188, d
assert d['window_bytes'] == 4 * 3 * 64 * 4 * 2 * 30, d
assert d['center_bytes'] == 3 * 64 * 4 * 30, d  # keys centered: a float per channel, head and layer
assert d['quantizers_per_head'] is True and d['k_outlier_channels'] == 32 and d['v_outlier_channels'] == 0, d
assert 0 < d['quantizer_bytes_per_set'] < 4096, d  # per head: the cache picks outliers per head
assert d['quantizer_bytes'] == d['quantizer_bytes_per_set'] * 3 * 30 + d['center_bytes'], d
assert d['tq_bytes'] == $CODES + d['window_bytes'] + d['quantizer_bytes'], d
assert all(isinstance(d[k], int) and not isinstance(d[k], bool) for k in d if k.endswith('_bytes')), d
assert abs(d['compression_ratio'] - $FP16 / d['tq_bytes']) < 1e-6 and 4.3 < d['compression_ratio'] < 4.5, d
assert d['fit_context'] == 4 + ($FP16 - d['quantizer_bytes'] - d['window_bytes']) // (174 * 30), d
assert d['more_tokens'] == d['fit_context'] - 8192, d
" $SMOL --k-bits 3.5 --v-bits 3
# window W (+ the 4 default sinks): W + 4 tokens per sequence stay float32 (H*D*4*2 bytes per layer), the rest
# compressed; batch multiplies both;
# f32 factors: K 16+12+4+4 = 36 B, V 24+4 = 28 B per head
# shellcheck disable=SC2086
plan_check "plan with --window, --batch, --factors f32" "
assert d['fp16_bytes'] == 2 * 30 * 3 * 64 * 8192 * 2 * 2, d
assert (d['k_bytes_per_head'], d['v_bytes_per_head']) == (36, 28), d
assert d['window_tokens'] == 132 and d['compressed_tokens'] == 8192 - 132, d  # window 128 + 4 sinks
assert d['window_bytes'] == 132 * 3 * 64 * 4 * 2 * 30 * 2, d
assert d['codes_bytes'] == (36 + 28) * 3 * 30 * 2 * (8192 - 132), d
assert d['tq_bytes'] == d['codes_bytes'] + d['window_bytes'] + d['quantizer_bytes'], d
" $SMOL --k-bits 3.5 --v-bits 3 --window 128 --batch 2 --factors f32
# --sinks 0: every token compressed
# shellcheck disable=SC2086
plan_check "plan --sinks 0" "
assert d['sinks'] == 0 and d['compressed_tokens'] == 8192 and d['window_bytes'] == 0, d
assert d['codes_bytes'] == (32 + 26) * 3 * 30 * 8192, d
" $SMOL --k-bits 3.5 --v-bits 3 --sinks 0
# a window longer than the context: everything exact at float32, twice fp16; integer bits share the quantizers
# shellcheck disable=SC2086
plan_check "plan: window beyond the context" "
assert d['codes_bytes'] == 0 and d['window_bytes'] == 100 * 3 * 64 * 4 * 2 * 30, d
assert d['quantizers_per_head'] is False, d
assert d['quantizer_bytes'] == d['quantizer_bytes_per_set'] * 30 + d['center_bytes'], d
assert d['compression_ratio'] < 0.5 and d['more_tokens'] < 0, d
" --layers 30 --kv-heads 3 --head-dim 64 --context 100 --k-bits 4 --v-bits 4 --window 1000
# prod at 3 bits: 2-bit MSE (16 B) + 1 QJL bit (8 B) + norm and gamma (2 + 2) = 28 B; qjl at 1 bit: 8 B + norm = 10 B
# shellcheck disable=SC2086
plan_check "plan --k-variant prod / qjl" "
assert d['k_variant'] == 'prod' and d['k_bytes_per_head'] == 28 and d['v_bytes_per_head'] == 18, d
" $SMOL --k-bits 3 --v-bits 2 --k-variant prod
# shellcheck disable=SC2086
plan_check "plan --v-variant qjl" "
assert d['v_variant'] == 'qjl' and d['v_bytes_per_head'] == 10, d
" $SMOL --k-bits 2 --v-bits 1 --v-variant qjl
# shellcheck disable=SC2086
expect_ok_text "plan table" "180.00 MiB" plan $SMOL --k-bits 3.5 --v-bits 3
if grep -q '4.41x' "$TMP/out.txt" && grep -q '^  total bytes .* 188743680 ' "$TMP/out.txt"; then
    pass "plan table: ratio and exact bytes"
else
    fail "plan table: ratio and exact bytes"; cat "$TMP/out.txt" >&2
fi
expect_ok_text "plan --help" "--k-bits" plan --help
expect_ok_text "tq --help lists plan" "plan " --help
# shellcheck disable=SC2086
{
expect_status "plan without --context" 2 plan --layers 30 --kv-heads 3 --head-dim 64 --k-bits 3.5 --v-bits 3
expect_status "plan without --v-bits" 2 plan $SMOL --k-bits 3.5
expect_status "plan --k-bits 0" 2 plan $SMOL --k-bits 0 --v-bits 3
expect_status "plan --k-bits 9" 2 plan $SMOL --k-bits 9 --v-bits 3
expect_status "plan --k-bits abc" 2 plan $SMOL --k-bits abc --v-bits 3
expect_status "plan --v-bits 8.5" 2 plan $SMOL --k-bits 3 --v-bits 8.5
expect_status "plan --k-bits without a value" 2 plan $SMOL --v-bits 3 --k-bits
expect_status "plan --head-dim 0" 2 plan --layers 30 --kv-heads 3 --head-dim 0 --context 8192 --k-bits 3 --v-bits 3
expect_status "plan --head-dim 1 (no codebook)" 2 plan --layers 30 --kv-heads 3 --head-dim 1 --context 8 --k-bits 2 \
    --v-bits 2
expect_status "plan: 2.001 bits is no split" 2 plan $SMOL --k-bits 2.001 --v-bits 3
expect_status "plan --kv-heads 5000" 2 plan --layers 30 --kv-heads 5000 --head-dim 64 --context 8 --k-bits 3 --v-bits 3
expect_status "plan --context 10^15 (beyond 2^63 bytes)" 2 plan --layers 30 --kv-heads 3 --head-dim 64 \
    --context 1000000000000000 --k-bits 3.5 --v-bits 3
expect_status "plan --context 10^20" 2 plan --layers 30 --kv-heads 3 --head-dim 64 --context 100000000000000000000 \
    --k-bits 3.5 --v-bits 3
expect_status "plan --batch 0" 2 plan $SMOL --k-bits 3 --v-bits 3 --batch 0
expect_status "plan --k-variant qjl at 3 bits" 2 plan $SMOL --k-bits 3 --v-bits 3 --k-variant qjl
expect_status "plan --v-variant unknown" 2 plan $SMOL --k-bits 3 --v-bits 3 --v-variant uniform
expect_status "plan --factors unknown" 2 plan $SMOL --k-bits 3 --v-bits 3 --factors f8
expect_status "plan unknown option" 2 plan $SMOL --k-bits 3 --v-bits 3 --bits 3
expect_status "plan stray argument" 2 plan $SMOL --k-bits 3 --v-bits 3 extra
}

# ---- tq kv eval on the SmolLM2 fixture (layer 15, 256 tokens) ---------------------------------------------
KV="--keys $DATA/smollm2_l15_k256.npy --values $DATA/smollm2_l15_v256.npy --queries $DATA/smollm2_l15_q256.npy"
# shellcheck disable=SC2086
if "$TQ" kv eval $KV --kv-heads 3 --prompt 64 --positions 48 --bits 4,2.5 --json > "$TMP/kv.json" 2> "$TMP/err.txt" &&
   python3 - "$TMP/kv.json" <<'EOF2'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
assert len(rows) == 2, rows
a, b = rows
# 4 bits: 32 B of indices + one fp16 scale = 34 B per head = 4.25 bits per value; 2.5 bits: two parts, 3.0
assert (a["k_bits_per_value"], a["v_bits_per_value"], b["k_bits_per_value"]) == (4.25, 4.25, 3.0), rows
assert a["positions"] == 48 and a["query_heads"] == 9, a
# measured on this fixture: 4 bits top-1 0.97, cosine 0.994; 2.5 bits 0.90, 0.97 -- fewer bits, more error
assert a["top1"] > 0.9 and a["cosine"] > 0.99 and 0 < a["kl"] < 0.05, a
assert b["top1"] < a["top1"] + 0.02 and b["cosine"] < a["cosine"] and b["kl"] > a["kl"], rows
EOF2
then
    pass "kv eval on the SmolLM2 fixture"
else
    fail "kv eval on the SmolLM2 fixture"; cat "$TMP/kv.json" "$TMP/err.txt" >&2
fi
# shellcheck disable=SC2086
expect_ok_text "kv eval table" "top-1" kv eval $KV --kv-heads 3 --prompt 128 --positions 8 --k-bits 5 --v-bits 3
expect_ok_text "kv eval --help" "--kv-heads" kv eval --help
# shellcheck disable=SC2086
{
expect_status "kv eval without --kv-heads" 2 kv eval $KV
expect_status "kv eval: 5 KV heads do not divide 192 columns" 2 kv eval $KV --kv-heads 5
expect_status "kv eval --k-bits alone" 2 kv eval $KV --kv-heads 3 --k-bits 4
expect_status "kv eval --bits 0" 2 kv eval $KV --kv-heads 3 --bits 4,0
expect_status "kv eval --prompt past the tokens" 2 kv eval $KV --kv-heads 3 --prompt 256
expect_status "kv eval: values from another file shape" 2 kv eval --keys "$DATA/smollm2_l15_k256.npy" \
    --values "$DATA/smollm2_l15_q256.npy" --queries "$DATA/smollm2_l15_q256.npy" --kv-heads 3
expect_status "kv unknown subcommand" 2 kv evaluate
}
expect_error "kv eval: a missing file" kv eval --keys "$TMP/none.npy" --values "$TMP/none.npy" \
    --queries "$TMP/none.npy" --kv-heads 3

echo "cli_test: $PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
