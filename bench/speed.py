#!/usr/bin/env python3
"""tq speed, side by side with FAISS and a numpy TurboQuant, single thread, one command.

    python3 bench/speed.py [--quick] [--build-dir DIR] [--out-dir DIR]

What it does, in order (see bench/README.md):
  1. checks what it needs and says what is missing (it installs nothing);
  2. builds the tq_speed_bench target in --build-dir (default ./build; configures it with cmake if needed);
  3. converts Fashion-MNIST with bench/data/fashion_mnist.py if the .fvecs are not in the cache yet;
  4. per dataset (Fashion-MNIST 784-d with rows normalized; 384-d WordNet/MiniLM text embeddings when
     bench/data/text_embeddings.py has made them; random unit vectors at d = 128 and 1536, for scaling
     only): runs tq_speed_bench (tq encode / query preparation / scan, and the machine's memory
     bandwidth), then, in a separate process with single-thread settings, FAISS (faiss-cpu >= 1.15) and
     a naive numpy TurboQuant-MSE;
  5. writes bench/results/speed-<date>[-quick].json (every measurement) and .md (the table).

Honesty rules it follows: one heavy thing at a time; medians of >= 5 timed repeats after a warm-up; each
encode repeat is sized by time (~--encode-s seconds); FAISS restricted to one thread
(faiss.omp_set_num_threads(1) + OMP/OpenBLAS/MKL thread variables = 1) and tq to one thread
(tq_set_threads(1)); OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE are removed only from the peer process's
environment (they slow a current numpy/OpenBLAS); nothing a method needs is left out of its time
(rotation included); a FAISS factory string this FAISS does not accept is reported, not replaced.

The peer half runs as `python3 bench/speed.py --peer SPEC.json` (internal).
"""
import argparse
import datetime
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
TOPK = 10
INSTALL_HINT = "pip install faiss-cpu numpy   (optional: threadpoolctl)"


def log(msg):
    print("[speed] " + msg, file=sys.stderr, flush=True)


def cache_dir():
    if os.environ.get("TQ_CACHE_DIR"):
        return os.environ["TQ_CACHE_DIR"]
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "tq")


# ---------------------------------------------------------------------------------------------------
# Peer process: FAISS and numpy. Everything below until "Driver" runs with single-thread settings.
# ---------------------------------------------------------------------------------------------------

def peer_env():
    env = dict(os.environ)
    removed = [k for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE") if k in env]
    for k in removed:
        del env[k]
    for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS",
              "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS"):
        env[k] = "1"
    return env, removed


def read_fvecs(np, path, max_rows=0):
    raw = np.fromfile(path, dtype=np.int32, count=1)
    if raw.size == 0:
        raise ValueError("%s: empty" % path)
    d = int(raw[0])
    row = d + 1
    count = -1 if not max_rows else max_rows * row
    a = np.fromfile(path, dtype=np.int32, count=count)
    a = a.reshape(-1, row)
    if not (a[:, 0] == d).all():
        raise ValueError("%s: rows of different dimensions" % path)
    return np.ascontiguousarray(a[:, 1:].view(np.float32))


def normalize(np, x):
    n = np.linalg.norm(x, axis=1, keepdims=True)
    n[n == 0] = 1
    return np.ascontiguousarray((x / n).astype(np.float32))


def load_dataset(np, spec):
    if spec["kind"] == "fvecs":
        xb = normalize(np, read_fvecs(np, spec["base"], spec["n"]))
        xq = normalize(np, read_fvecs(np, spec["queries"], spec["nq"]))
    else:
        rng = np.random.default_rng(12345 + spec["dim"])
        xb = normalize(np, rng.standard_normal((spec["n"], spec["dim"]), dtype=np.float32))
        xq = normalize(np, rng.standard_normal((spec["nq"], spec["dim"]), dtype=np.float32))
    return xb, xq


def time_encode(fn, x, target_s, reps):
    """Warm up on growing slices until one call takes >= 0.05 s (learns the rate), then time `reps`
    calls on as many rows as fit in target_s (capped at len(x)). Returns (rows, [seconds])."""
    n = x.shape[0]
    w = min(n, 64)
    while True:
        t0 = time.perf_counter()
        fn(x[:w])
        dt = time.perf_counter() - t0
        if dt >= 0.05 or w == n:
            break
        w = min(n, w * 4)
    rate = w / max(dt, 1e-9)
    m = max(1, min(n, int(rate * target_s)))
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn(x[:m])
        times.append(time.perf_counter() - t0)
    return m, times


def numpy_tq_mse(np, d, bits, seed=0):
    """A naive TurboQuant-MSE in numpy (the speed floor and a readable reference):
    dense Haar rotation (QR of a Gaussian matrix), Lloyd-Max codebook for N(0, 1/d) fitted by a few
    Lloyd iterations on samples, nearest centroid by searchsorted on the midpoints, codes packed
    into bytes, and the norm kept as float32. Returns encode(x) -> (codes, norms)."""
    rng = np.random.default_rng(seed)
    g = rng.standard_normal((d, d))
    qm, r = np.linalg.qr(g)
    qm = (qm * np.sign(np.diag(r))).astype(np.float32)  # Haar: fix the signs of the QR factor
    s = rng.standard_normal(200000) / np.sqrt(d)
    k = 1 << bits
    c = np.quantile(s, (np.arange(k) + 0.5) / k)
    for _ in range(30):  # Lloyd: centroids = conditional means of their cells
        cell = np.searchsorted((c[1:] + c[:-1]) / 2, s)
        c = np.array([s[cell == j].mean() for j in range(k)])
    mids = ((c[1:] + c[:-1]) / 2).astype(np.float32)
    per_byte = 8 // bits
    shifts = (np.arange(per_byte, dtype=np.uint8) * bits).astype(np.uint8)

    def encode(x):
        norms = np.linalg.norm(x, axis=1)
        y = (x / np.where(norms == 0, 1, norms)[:, None]) @ qm.T
        idx = np.searchsorted(mids, y).astype(np.uint8)
        pad = (-d) % per_byte
        if pad:
            idx = np.pad(idx, ((0, 0), (0, pad)))
        idx = idx.reshape(x.shape[0], -1, per_byte) << shifts
        return np.bitwise_or.reduce(idx, axis=2), norms.astype(np.float32)

    return encode


def faiss_threads_check(faiss):
    try:
        faiss.omp_set_num_threads(1)
        return faiss.omp_get_max_threads()
    except Exception:
        return None


def run_faiss_method(np, faiss, fs, xb, xq, spec, out):
    d = xb.shape[1]
    rec = {"type": "faiss", "label": spec["label"], "factory": fs, "dim": d, "n": xb.shape[0], "metric": "ip"}
    try:
        index = faiss.index_factory(d, fs, faiss.METRIC_INNER_PRODUCT)
    except Exception as e:  # not accepted by this FAISS: say so
        msg = str(e).strip().splitlines()[-1] if str(e).strip() else repr(e)
        rec["error"] = "index_factory rejected it: " + re.sub(r"^Error in .*? at \S+:\d+: ", "", msg)[:160]
        out(rec)
        return
    inner = faiss.downcast_index(index.index) if isinstance(index, faiss.IndexPreTransform) else index
    rec["class"] = type(inner).__name__ + (" (in IndexPreTransform)" if inner is not index else "")
    # Train once (FAISS's own sampling; for PQ this is k-means per sub-quantizer), timed once.
    xt = xb[:spec["train_n"]]
    t0 = time.perf_counter()
    index.train(xt)
    rec["train_s"] = time.perf_counter() - t0
    rec["train_n"] = xt.shape[0]
    rec["code_bytes"] = int(index.sa_code_size())
    rec["bits_per_value"] = rec["code_bytes"] * 8.0 / d

    # Encode: sa_encode (transform + codes), as many rows per repeat as fit in encode_s.
    def enc(x):
        index.sa_encode(x)
    m, times = time_encode(enc, xb, spec["encode_s"], spec["reps"])
    med = statistics.median(times)
    rec.update({"rows_per_rep": m, "reps": len(times), "encode_s_median": med, "encode_s_min": min(times),
                "encode_s_max": max(times), "encode_vps": m / med, "encode_in_gbs": m * d * 4 / med / 1e9})
    if spec.get("scan"):
        # Fill the index with all N vectors if that takes <= fill_s (timed: add = encode + store),
        # else add the first rows and repeat their codes (IndexFlatCodes only), like tq_speed_bench.
        # Fast-scan indexes cannot take codes (no add_sa_codes): they get 4x the time before N is cut.
        n = xb.shape[0]
        est = n / rec["encode_vps"]
        unique = n
        flat = isinstance(inner, faiss.IndexFlatCodes) and type(inner).__name__ not in (
            "IndexPQFastScan", "IndexRaBitQFastScan", "IndexAdditiveQuantizerFastScan")
        if est <= spec["fill_s"] * (1 if flat else 4):
            t0 = time.perf_counter()
            index.add(xb)
            rec["add_all_s"] = time.perf_counter() - t0
        elif flat:
            unique = max(1, int(rec["encode_vps"] * spec["fill_s"] / 2))
            codes = index.sa_encode(xb[:unique])
            reps_n = -(-n // unique)
            tiled = np.ascontiguousarray(np.tile(codes, (reps_n, 1))[:n])
            inner.add_sa_codes(tiled)
            if inner is not index:
                index.ntotal = inner.ntotal
        else:
            unique = max(1, int(rec["encode_vps"] * spec["fill_s"]))
            index.add(xb[:unique])
            rec["scan_n_reduced"] = True
        ntot = int(index.ntotal)
        rec["scan_n"] = ntot
        rec["scan_unique"] = min(unique, ntot)
        nq = xq.shape[0]
        index.search(xq[:1], TOPK)  # warm-up
        per = []
        for i in range(nq):
            t0 = time.perf_counter()
            index.search(xq[i:i + 1], TOPK)
            per.append(time.perf_counter() - t0)
        batch = []
        for _ in range(3):
            t0 = time.perf_counter()
            index.search(xq, TOPK)
            batch.append(time.perf_counter() - t0)
        ms = statistics.median(per) * 1e3
        rec.update({"nq": nq, "k": TOPK, "scan_ms_per_query": ms,
                    "scan_ms_per_query_batch": statistics.median(batch) / nq * 1e3,
                    "codes_per_s": ntot / (ms / 1e3), "scan_code_gbs": ntot * rec["code_bytes"] / (ms / 1e3) / 1e9})
    out(rec)


def peer_main(spec_path):
    with open(spec_path) as f:
        spec = json.load(f)

    def out(rec):
        print(json.dumps(rec), flush=True)

    try:
        import numpy as np
    except ImportError:
        out({"type": "peer_error", "label": spec["label"], "what": "numpy", "error": "numpy is not installed: " + INSTALL_HINT})
        return 0
    info = {"type": "peer_info", "label": spec["label"], "numpy": np.__version__, "python": platform.python_version(),
            "removed_env": spec.get("removed_env", []),
            "thread_env": {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                                        "MKL_NUM_THREADS")}}
    try:
        import faiss
        info["faiss"] = faiss.__version__
        info["faiss_omp_threads"] = faiss_threads_check(faiss)
        try:
            info["faiss_compile_options"] = faiss.get_compile_options()
        except Exception:
            pass
    except ImportError:
        faiss = None
        info["faiss"] = None
        info["faiss_error"] = "faiss is not installed: " + INSTALL_HINT
    limiter = None
    try:
        import threadpoolctl
        limiter = threadpoolctl.threadpool_limits(1)
        info["threadpoolctl"] = [{k: p.get(k) for k in ("user_api", "internal_api", "version", "num_threads",
                                                          "architecture", "threading_layer", "filepath")}
                                 for p in threadpoolctl.threadpool_info()]
    except ImportError:
        info["threadpoolctl"] = "threadpoolctl not installed (pip install threadpoolctl to record BLAS/OpenMP pools)"
    out(info)

    xb, xq = load_dataset(np, spec)
    d = xb.shape[1]

    # numpy TurboQuant-MSE: encode only (the naive floor).
    for bits in spec["numpy_bits"]:
        enc = numpy_tq_mse(np, d, bits)
        m, times = time_encode(enc, xb, spec["encode_s"], spec["reps"])
        med = statistics.median(times)
        code_bytes = -(-d * bits // 8) + 4
        out({"type": "numpy", "label": spec["label"], "method": "numpy TQ-MSE b=%d (dense)" % bits, "bits": bits,
             "dim": d, "code_bytes": code_bytes, "bits_per_value": code_bytes * 8.0 / d, "rows_per_rep": m,
             "reps": len(times), "encode_s_median": med, "encode_vps": m / med,
             "encode_in_gbs": m * d * 4 / med / 1e9})

    if faiss is not None:
        for fs, scan in spec["faiss"]:
            log("%s: FAISS %s" % (spec["label"], fs))
            run_faiss_method(np, faiss, fs, xb, xq, dict(spec, scan=scan), out)
    if limiter is not None:
        limiter.unregister() if hasattr(limiter, "unregister") else None
    return 0


# ---------------------------------------------------------------------------------------------------
# Driver
# ---------------------------------------------------------------------------------------------------

def check_tools():
    missing = [t for t in ("cmake", "cc") if shutil.which(t) is None]
    if missing:
        sys.exit("speed.py: missing %s; run the README quick start first (bash scripts/demo.sh installs them)"
                 % ", ".join(missing))


def peer_versions():
    """Ask a clean subprocess what the peers have (the driver itself needs only the standard library)."""
    code = ("import json\nr={}\ntry:\n import numpy; r['numpy']=numpy.__version__\nexcept ImportError: r['numpy']=None\n"
            "try:\n import faiss; r['faiss']=faiss.__version__\nexcept ImportError: r['faiss']=None\n"
            "try:\n import threadpoolctl; r['threadpoolctl']=threadpoolctl.__version__\n"
            "except ImportError: r['threadpoolctl']=None\nprint(json.dumps(r))")
    env, _ = peer_env()
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    try:
        return json.loads(p.stdout.strip().splitlines()[-1])
    except Exception:
        return {"numpy": None, "faiss": None, "threadpoolctl": None}


def build(build_dir):
    # Configure every time (cheap, idempotent): a build folder made before the
    # bench targets existed would otherwise not know them.
    fresh = not os.path.exists(os.path.join(build_dir, "CMakeCache.txt"))
    log("configuring %s (cmake%s)" % (build_dir, ", Release" if fresh else ""))
    cmd = ["cmake", "-S", ROOT, "-B", build_dir] + (["-DCMAKE_BUILD_TYPE=Release"] if fresh else [])
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    log("building tq_speed_bench in %s" % build_dir)
    subprocess.run(["cmake", "--build", build_dir, "--target", "tq_speed_bench", "-j2"], check=True,
                   stdout=subprocess.DEVNULL)
    exe = os.path.join(build_dir, "tq_speed_bench")
    if not os.path.exists(exe):
        sys.exit("speed.py: %s was not built" % exe)
    try:
        cc = subprocess.run(["cc", "--version"], capture_output=True, text=True).stdout.splitlines()[0]
    except Exception:
        cc = "unknown"
    return exe, cc


def git_state():
    """HEAD, plus a short hash of uncommitted library changes (tracked diffs and untracked files under
    src/ and include/), so two runs on one commit with different work trees can be told apart."""
    try:
        def git(*a):
            return subprocess.run(["git", "-C", ROOT] + list(a), capture_output=True, text=True).stdout
        head = git("rev-parse", "--short", "HEAD").strip()
        diff = git("diff", "HEAD", "--", "src", "include", "CMakeLists.txt")
        untracked = git("ls-files", "--others", "--exclude-standard", "--", "src", "include").split()
        if not diff and not untracked:
            return head
        import hashlib
        h = hashlib.sha1(diff.encode())
        for u in sorted(untracked):
            try:
                with open(os.path.join(ROOT, u), "rb") as f:
                    h.update(u.encode() + f.read())
            except OSError:
                pass
        return "%s + uncommitted library changes (work tree %s%s)" % (
            head, h.hexdigest()[:10], ", untracked: " + " ".join(untracked) if untracked else "")
    except Exception:
        return "unknown"


def llc_bytes():
    best = 0
    base = "/sys/devices/system/cpu/cpu0/cache"
    try:
        for e in os.listdir(base):
            try:
                with open(os.path.join(base, e, "size")) as f:
                    v = f.read().strip()
                mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(v[-1:], 1)
                best = max(best, int(v.rstrip("KMG")) * mult)
            except (OSError, ValueError):
                pass
    except OSError:
        pass
    return best or None


def fashion_mnist_files():
    d = cache_dir()
    base = os.path.join(d, "fashion-mnist-train.fvecs")
    queries = os.path.join(d, "fashion-mnist-t10k.fvecs")
    if not (os.path.exists(base) and os.path.exists(queries)):
        log("converting Fashion-MNIST (bench/data/fashion_mnist.py)")
        p = subprocess.run([sys.executable, os.path.join(HERE, "data", "fashion_mnist.py")])
        if p.returncode != 0:
            return None, None, "Fashion-MNIST not available (apt-get install dataset-fashion-mnist)"
    return base, queries, None


def text_embedding_files():
    """The 384-d WordNet/MiniLM set of bench/data/text_embeddings.py; it is not built here (it takes ~10
    minutes and pip packages), only found."""
    d = cache_dir()
    base = os.path.join(d, "wordnet-minilm-base.fvecs")
    queries = os.path.join(d, "wordnet-minilm-queries.fvecs")
    if not (os.path.exists(base) and os.path.exists(queries)):
        return None, None, ("384-d text embeddings not measured: run python3 bench/data/text_embeddings.py "
                            "first (see bench/README.md)")
    return base, queries, None


def run_jsonl(cmd, env=None, label=None):
    log(" ".join(cmd))
    # stdout: JSON lines; stderr: progress, passed straight through to the user.
    p = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, env=env)
    recs = []
    for line in p.stdout.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                recs.append(json.loads(line))
            except json.JSONDecodeError:
                pass
    if p.returncode != 0:
        recs.append({"type": "run_error", "label": label, "cmd": cmd, "rc": p.returncode,
                     "error": "%s exited with status %d (see its messages above)" % (os.path.basename(cmd[0]),
                                                                                   p.returncode)})
        log("command failed (rc %d)" % p.returncode)
    return recs


def faiss_list(d, quick):
    """(factory, also scan?) per dataset; PQ M = d*b/4 sub-quantizers of 4 bits = tq's index bytes at b bits."""
    lst = [("SQtqmse4", True), ("RR,SQtqmse4", True), ("HR,SQtqmse4", True), ("SQtq3", True), ("RR,SQtq3", False),
           ("RaBitQ4", True), ("RR,RaBitQ4", False), ("RaBitQfs4", True), ("RaBitQfs2", True), ("SQ4", True),
           ("PQ%dx4fs" % d, True), ("PQ%dx4fs" % (d // 2), True)]
    if quick:
        lst = [t for t in lst if t[0] not in ("RR,SQtq3", "RR,RaBitQ4")]
    return lst


def main():
    ap = argparse.ArgumentParser(description="tq speed side by side with FAISS and numpy (single thread)")
    ap.add_argument("--quick", action="store_true", help="smaller N, fewer queries: ~2-3 minutes")
    ap.add_argument("--build-dir", default=os.path.join(ROOT, "build"))
    ap.add_argument("--out-dir", default=os.path.join(HERE, "results"))
    ap.add_argument("--datasets", default="fmnist,minilm,rand128,rand1536",
                    help="comma list of fmnist, minilm (384-d text embeddings), rand128, rand1536 (default all)")
    ap.add_argument("--isa", default="", help="TQ_FORCE_ISA for tq (ref|avx2); default: what the CPU picks")
    ap.add_argument("--no-peers", action="store_true", help="tq only (no FAISS / numpy)")
    ap.add_argument("--peer", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.peer:
        return peer_main(args.peer)

    t_start = time.time()
    check_tools()
    exe, cc = build(os.path.abspath(args.build_dir))
    vers = peer_versions() if not args.no_peers else {}
    missing = [k for k in ("numpy", "faiss") if not vers.get(k)] if not args.no_peers else []
    notes = []
    if missing:
        notes.append("Not measured: %s is not installed (%s)." % (" and ".join(missing), INSTALL_HINT))
        log("MISSING: %s -- those columns are skipped. Install with: %s" % (", ".join(missing), INSTALL_HINT))
    if vers.get("faiss"):
        fv = tuple(int(p) for p in vers["faiss"].split(".")[:2] if p.isdigit())
        if fv < (1, 15):
            log("faiss %s is older than 1.15: SQtqmse/SQtq (TurboQuant) and RaBitQfs may be missing" % vers["faiss"])

    q = args.quick
    p = {"reps": 5 if q else 7, "nq": 10 if q else 30, "encode_s": 0.15 if q else 0.5, "fill_s": 8 if q else 30}
    sizes = {"fmnist": 20000 if q else 60000, "minilm": 20000 if q else 100000, "rand128": 20000 if q else 100000,
             "rand1536": 20000 if q else 100000}
    want = [s.strip() for s in args.datasets.split(",") if s.strip()]
    tq_configs = {
        "fmnist": "mse:2:hadamard:unbiased,mse:4:hadamard:unbiased,mse:4:dense:unbiased,prod:3:hadamard",
        "minilm": "mse:2:hadamard:unbiased,mse:4:hadamard:unbiased,prod:3:hadamard",
        "rand128": "mse:2:hadamard:unbiased,mse:4:hadamard:unbiased,prod:3:hadamard",
        "rand1536": "mse:2:hadamard:unbiased,mse:4:hadamard:unbiased,prod:3:hadamard",
    }
    env_tq = dict(os.environ)
    if args.isa:
        env_tq["TQ_FORCE_ISA"] = args.isa
    penv, removed = peer_env()

    records = []
    for ds in want:
        if ds == "fmnist":
            base, queries, err = fashion_mnist_files()
            if err:
                notes.append(err)
                log(err)
                continue
            label, dim = "Fashion-MNIST 784 (rows normalized)", 784
            data_args = ["--data", base, "--queries", queries, "--max-rows", str(sizes[ds]), "--normalize"]
            spec = {"kind": "fvecs", "base": base, "queries": queries}
        elif ds == "minilm":
            base, queries, err = text_embedding_files()
            if err:
                notes.append(err)
                log(err)
                continue
            label, dim = "WordNet glosses, all-MiniLM-L6-v2 384 (text embeddings)", 384
            data_args = ["--data", base, "--queries", queries, "--max-rows", str(sizes[ds]), "--normalize"]
            spec = {"kind": "fvecs", "base": base, "queries": queries}
        elif ds in ("rand128", "rand1536"):
            dim = int(ds[4:])
            label = "random unit d=%d" % dim
            data_args = ["--random", str(dim), str(sizes[ds])]
            spec = {"kind": "random"}
        else:
            sys.exit("speed.py: unknown dataset %s" % ds)
        n = sizes[ds]
        cmd = [exe] + data_args + ["--configs", tq_configs[ds], "--nq", str(p["nq"]), "--reps", str(p["reps"]),
                                   "--encode-s", str(p["encode_s"]), "--fill-s", str(p["fill_s"]),
                                   "--label", label]
        if q:
            cmd += ["--bw-mib", "512"]
        records += run_jsonl(cmd, env=env_tq, label=label)
        if args.no_peers or not vers.get("numpy"):
            continue
        spec.update({"label": label, "dim": dim, "n": n, "nq": p["nq"], "reps": p["reps"],
                     "encode_s": p["encode_s"], "fill_s": p["fill_s"], "train_n": n, "removed_env": removed,
                     "numpy_bits": [4] if q else [2, 4],
                     "faiss": faiss_list(dim, q) if vers.get("faiss") else []})
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
            json.dump(spec, f)
            spec_path = f.name
        try:
            records += run_jsonl([sys.executable, os.path.abspath(__file__), "--peer", spec_path], env=penv, label=label)
        finally:
            os.remove(spec_path)

    elapsed = time.time() - t_start
    meta = {"type": "meta", "date": datetime.datetime.now().strftime("%Y-%m-%d %H:%M"), "quick": q,
            "host": platform.node(), "python": platform.python_version(), "compiler": cc, "params": p,
            "sizes": sizes, "versions": vers, "removed_env_for_peers": removed, "notes": notes,
            "elapsed_s": elapsed, "tq_commit": git_state(), "llc_bytes": llc_bytes(),
            "machine_note": "2 cores shared with other jobs; single-thread figures"}
    records.insert(0, meta)
    os.makedirs(args.out_dir, exist_ok=True)
    stem = "speed-%s%s" % (datetime.date.today().isoformat(), "-quick" if q else "")
    jpath = os.path.join(args.out_dir, stem + ".json")
    with open(jpath, "w") as f:  # one record per line: small, and diffs well
        f.write("[\n" + ",\n".join(json.dumps(r, sort_keys=True) for r in records) + "\n]\n")
    md = report(records)
    mpath = os.path.join(args.out_dir, stem + ".md")
    with open(mpath, "w") as f:
        f.write(md)
    print(md)
    log("wrote %s and %s in %.0f s" % (jpath, mpath, elapsed))
    return 0


# ---------------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------------

def fmt(v, spec="%.3g", none="—"):
    if v is None:
        return none
    return spec % v


def fmt_int(v):
    return "—" if v is None else "{:,.0f}".format(v)


def nominal_bits(name):
    """The bits per coordinate a method is compared at (for the equal-bytes scan ratios)."""
    import re
    m = re.match(r"tq (?:index )?(mse|prod|qjl|uniform):(\d+)", name)
    if m:
        return int(m.group(2))
    m = re.search(r"(?:SQtqmse|SQtq|RaBitQfs|RaBitQ|SQ)(\d+)$", name)
    if m:
        return int(m.group(1))
    m = re.match(r"PQ(\d+)x4fs$", name)
    return None if not m else m.group(1)


def goals(byname, d):
    """The issue's goals, stated against this table (tq mse b=4, Hadamard)."""
    out = []
    t4 = byname.get("tq mse:4:hadamard:unbiased")
    if not t4 or not d:
        return out
    bits = []
    for ref in ("FAISS SQtqmse4", "FAISS RR,SQtqmse4", "FAISS HR,SQtqmse4"):
        r = byname.get(ref)
        if r and r.get("vps") and t4.get("vps"):
            bits.append("%.2f× `%s`" % (t4["vps"] / r["vps"], ref[6:]))
    if bits:
        out.append("- Goal \"encode >= 5× FAISS SQtqmse4\": tq mse:4 encodes at " + ", ".join(bits) + ".")
    for row, what in ((byname.get("tq index mse:4:hadamard:unbiased"), "tq index (fast scan + shortlist)"),
                      (t4, "tq_score (exact scorer alone)")):
        if not row:
            continue
        bits = []
        for ref in ("FAISS PQ%dx4fs" % d, "FAISS PQ%dx4fs" % (d // 2), "FAISS RaBitQfs4"):
            r = byname.get(ref)
            if r and r.get("ms") and row.get("ms"):
                one = "%.2f× `%s` (%s B/vec)" % (r["ms"] / row["ms"], ref[6:], fmt_int(r["bytes"]))
                if r.get("msb") and row.get("msb"):
                    one += ", batched %.2f×" % (r["msb"] / row["msb"])
                bits.append(one)
        if bits:
            out.append("- Goal \"4-bit scan >= 3× PQ fast-scan, faster than RaBitQfs4\", %s, mse:4 (%s B/vec): "
                       % (what, fmt_int(row["bytes"])) + ", ".join(bits) + " (> 1: tq faster). Equal bytes to "
                       "4-bit tq is PQ%dx4fs; PQ%dx4fs has the bytes of 2-bit tq." % (d, d // 2))
    return out


def report(records):
    meta = records[0]
    infos = [r for r in records if r.get("type") == "info"]
    peer = next((r for r in records if r.get("type") == "peer_info"), {})
    bws = [r for r in records if r.get("type") == "membw"]
    lines = []
    date = meta["date"]
    lines.append("# tq speed, side by side (single thread)%s — %s" % (" — quick mode" if meta["quick"] else "", date))
    lines.append("")
    cpu = infos[0]["cpu"] if infos else "?"
    lines.append("- **CPU**: %s, %s; %s. **Threads: 1** for every method (tq_set_threads(1) = %s; "
                 "faiss.omp_set_num_threads(1) -> %s; OMP/OpenBLAS/MKL thread variables = 1)."
                 % (cpu, platform.machine(), meta["machine_note"],
                    infos[0].get("threads") if infos else "?", peer.get("faiss_omp_threads")))
    if infos:
        lines.append("- **tq**: `%s`; kernel table running: **%s**%s." % (
            infos[0]["build_info"], infos[0]["kernel"],
            (" (TQ_FORCE_ISA=%s)" % infos[0]["force_isa"]) if infos[0].get("force_isa") else ""))
    tp = peer.get("threadpoolctl")
    if isinstance(tp, list):
        tps = "; ".join("%s %s %s threads=%s" % (p.get("internal_api"), p.get("version"), p.get("architecture") or "",
                                                 p.get("num_threads")) for p in tp)
    else:
        tps = tp or "—"
    lines.append("- **tq source**: %s. **Last-level cache**: %s MiB (codes smaller than that are scanned from "
                 "cache, so their %%BW can pass 100%%)." % (meta.get("tq_commit"), fmt(
                     meta["llc_bytes"] / 2**20 if meta.get("llc_bytes") else None, "%.0f")))
    lines.append("- **Versions**: compiler %s; faiss %s (%s); numpy %s; Python %s; threadpoolctl pools: %s."
                 % (meta["compiler"], peer.get("faiss") or "not installed",
                    (peer.get("faiss_compile_options") or "—").strip(),
                    peer.get("numpy"), meta["python"], tps))
    if meta.get("removed_env_for_peers"):
        lines.append("- Removed from the FAISS/numpy process only: %s." % ", ".join(meta["removed_env_for_peers"]))
    if bws:
        lines.append("- **Memory bandwidth** (one thread, %d MiB buffer: read-sum / copy counted "
                     "read+write), per dataset run: %s GB/s read, %s GB/s copy. \"%% BW\" = input (encode) or "
                     "code (scan) bytes per second over that run's read bandwidth."
                     % (bws[0]["buffer_mib"], ", ".join("%.1f" % b["read_gbs"] for b in bws), ", ".join("%.1f" % b["copy_gbs"] for b in bws)))
    for n in meta.get("notes") or []:
        lines.append("- **%s**" % n)
    lines.append("- Medians of %d timed repeats after a warm-up (encode; each repeat ~%.2f s of work), medians over "
                 "%d queries (scan, one query per call, IP, top-%d). Total run time %.0f s."
                 % (meta["params"]["reps"], meta["params"]["encode_s"], meta["params"]["nq"], TOPK,
                    meta["elapsed_s"]))
    lines.append("")

    labels = []
    for r in records:
        if r.get("label") and r["label"] not in labels:
            labels.append(r["label"])
    for label in labels:
        info = next((r for r in infos if r["label"] == label), None)
        bw = None
        for r in records:
            if r.get("type") == "info" and r["label"] == label:
                idx = records.index(r)
                nxt = records[idx + 1] if idx + 1 < len(records) else {}
                bw = nxt.get("read_gbs") if nxt.get("type") == "membw" else None
        rows = []
        enc = {r["config"]: r for r in records if r.get("type") == "tq_encode" and r["label"] == label}
        scn = {r["config"]: r for r in records if r.get("type") == "tq_scan" and r["label"] == label}
        isr = {r["config"]: r for r in records if r.get("type") == "tq_index_search" and r["label"] == label}
        for c, e in enc.items():
            s = scn.get(c, {})
            rows.append({"method": "tq " + c, "bytes": e["code_bytes"], "bpv": e["bits_per_value"],
                         "vps": e["encode_vps"], "gbs": e["encode_in_gbs"], "train": None,
                         "ms": s.get("scan_ms_per_query"), "msb": None, "prep_us": s.get("query_prep_us"),
                         "scan_gbs": s.get("scan_code_gbs"), "n": s.get("n"), "unique": s.get("scan_unique"),
                         "err": None})
            ix = isr.get(c)
            if ix:
                # the index row: "encode" is tq_index_add of all N (encode + fast-scan layout + ids)
                add_vps = ix["n"] / ix["add_s"] if ix.get("add_s") else None
                rows.append({"method": "tq index " + c, "bytes": ix["index_bytes_per_vector"],
                             "bpv": 8.0 * ix["index_bytes_per_vector"] / ix["dim"], "vps": add_vps,
                             "gbs": add_vps * ix["dim"] * 4 / 1e9 if add_vps else None, "train": None,
                             "ms": ix["search_ms_per_query"], "msb": ix["batch_ms_per_query"], "prep_us": None,
                             "scan_gbs": ix["search_code_gbs"], "n": ix["n"], "unique": ix.get("scan_unique"),
                             "err": None})
        for r in records:
            if r.get("type") == "numpy" and r["label"] == label:
                rows.append({"method": r["method"], "bytes": r["code_bytes"], "bpv": r["bits_per_value"],
                             "vps": r["encode_vps"], "gbs": r["encode_in_gbs"], "train": None, "ms": None,
                             "msb": None, "prep_us": None, "scan_gbs": None, "n": None, "unique": None, "err": None})
            if r.get("type") == "faiss" and r["label"] == label:
                rows.append({"method": "FAISS " + r["factory"], "bytes": r.get("code_bytes"),
                             "bpv": r.get("bits_per_value"), "vps": r.get("encode_vps"), "gbs": r.get("encode_in_gbs"),
                             "train": r.get("train_s"), "ms": r.get("scan_ms_per_query"),
                             "msb": r.get("scan_ms_per_query_batch"), "prep_us": None,
                             "scan_gbs": r.get("scan_code_gbs"), "n": r.get("scan_n"), "unique": r.get("scan_unique"),
                             "err": r.get("error")})
        byname = {r["method"]: r for r in rows}
        # encode reference: the fastest FAISS TurboQuant-MSE-4 pipeline that includes a rotation
        tq4 = [byname[k] for k in ("FAISS RR,SQtqmse4", "FAISS HR,SQtqmse4") if k in byname and byname[k]["vps"]]
        enc_ref = max(tq4, key=lambda r: r["vps"]) if tq4 else None

        def scan_ref(prefix_fn, b):
            if b is None:
                return None
            r = byname.get(prefix_fn(b))
            return r["ms"] if r and r["ms"] else None

        n_scan = max([r["n"] for r in rows if r["n"]] or [0]) or None
        lines.append("## %s — %s" % (label, "N = %s" % fmt_int(info["n"]) if info else ""))
        lines.append("")
        if enc_ref:
            lines.append("Encode ratio: vectors/s over FAISS `%s` (the faster FAISS TurboQuant-MSE-4 pipeline with "
                         "a rotation). Scan ratios: FAISS ms/query over this row's, at equal nominal bits "
                         "(PQ{d·b/4}x4fs, RaBitQfs{b}); > 1 means this row is faster."
                         % enc_ref["method"].replace("FAISS ", ""))
        lines.append("")
        lines.append("| method | B/vec | bits/val | encode vec/s | enc GB/s | enc ×FAISS-TQ4 | enc %BW | train s "
                     "| scan ms/q | batch ms/q | q-prep µs | Mcodes/s | scan ×PQfs | scan ×RaBitQfs | scan %BW |")
        lines.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        d = info["dim"] if info else None
        for r in rows:
            if r["err"]:
                lines.append("| %s | — | — | %s | | | | | | | | | | | |" % (r["method"], r["err"][:120]))
                continue
            b = nominal_bits(r["method"].replace("FAISS ", "").split(",")[-1]) if not r["method"].startswith("tq") \
                else nominal_bits(r["method"])
            pq_ms = scan_ref(lambda bb: "FAISS PQ%dx4fs" % (d * bb // 4) if d and isinstance(bb, int)
                             and (d * bb) % 4 == 0 and d % (d * bb // 4) == 0 else "", b)
            rb_ms = scan_ref(lambda bb: "FAISS RaBitQfs%d" % bb if isinstance(bb, int) else "", b)
            lines.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
                r["method"], fmt_int(r["bytes"]), fmt(r["bpv"], "%.2f"), fmt_int(r["vps"]), fmt(r["gbs"], "%.3f"),
                fmt(r["vps"] / enc_ref["vps"] if enc_ref and r["vps"] else None, "%.2f"),
                fmt(100 * r["gbs"] / bw if bw and r["gbs"] else None, "%.1f%%"),
                fmt(r["train"], "%.2f"), fmt(r["ms"], "%.3g"), fmt(r["msb"], "%.3g"), fmt(r["prep_us"], "%.3g"),
                fmt(r["n"] / r["ms"] / 1e3 if r["ms"] and r["n"] else None, "%.3g"),
                fmt(pq_ms / r["ms"] if pq_ms and r["ms"] else None, "%.2f"),
                fmt(rb_ms / r["ms"] if rb_ms and r["ms"] else None, "%.2f"),
                fmt(100 * r["scan_gbs"] / bw if bw and r["scan_gbs"] else None, "%.1f%%")))
        tiled = [r["method"] for r in rows if r["n"] and r["unique"] and r["unique"] < r["n"]]
        n_max = max([r["n"] for r in rows if r["n"]] or [0])
        reduced = ["%s (N = %s)" % (r["method"], fmt_int(r["n"])) for r in rows if r["n"] and r["n"] < n_max]
        lines.append("")
        if n_scan:
            lines.append("Scan over N = %s records (%s MB of codes at 4 bits, %s MB at 2 bits)." % (
                fmt_int(n_scan), fmt(n_scan * d * 4 / 8 / 1e6 if d else None, "%.0f"),
                fmt(n_scan * d * 2 / 8 / 1e6 if d else None, "%.0f")) +
                (" Codes of %s were encoded from the first rows and repeated to fill N (scan speed does "
                 "not depend on code values)." % ", ".join(tiled) if tiled else "") +
                (" **Scanned fewer records** (filling N took too long; compare Mcodes/s, not ms/q): %s."
                 % ", ".join(reduced) if reduced else ""))
        lines.extend(goals(byname, d))
        errs = [r for r in records if r.get("type") in ("run_error", "peer_error") and
                (r.get("label") in (None, label))]
        for e in errs:
            lines.append("- error: %s" % e.get("error"))
        lines.append("")
    lines.append("Notes: `B/vec` counts every stored byte (tq: codes + per-vector factors; FAISS: sa_code_size). "
                 "FAISS `SQtqmse{b}`/`SQtq{b}` are FAISS's TurboQuant scalar codecs; the paper's random rotation is the "
                 "`RR,` (dense) or `HR,` (Hadamard, pads d to a power of two: more bytes) prefix, so the bare rows "
                 "do less work than tq. FAISS `RaBitQ{b}` rows are the factory strings as given (no `RR,`). tq's numbers include its "
                 "rotation and norm. FAISS scan = `index.search(q, k=10)` one query per call (batch ms/q: all "
                 "queries in one call); `tq CONFIG` rows: scan = tq_query_set + tq_score over N (the exact scorer) + a "
                 "top-10 selection; `tq index CONFIG` rows: `tq_index_search(k=10)` (the fast scan with in-register "
                 "tables, then exact scores for a shortlist: what an index user gets; the center and ids it keeps are "
                 "in B/vec), one query per call and all queries in one call, and its encode columns are "
                 "`tq_index_add` of all N (encode + fast-scan layout + ids). "
                 "Random unit vectors are for scaling only (DESIGN.md §6). The machine has 2 cores shared with "
                 "other jobs: treat differences under ~10% as noise.")
    lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
