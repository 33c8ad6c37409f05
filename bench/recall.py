#!/usr/bin/env python3
"""tq recall on real data, side by side with FAISS: the paper's Figure 5, one command.

    python3 bench/recall.py [--quick] [--seeds 0,1,2] [--datasets fmnist,minilm] [--bits 2,4]

What it does, in order (see bench/README.md, "Recall (Figure 5)"):
  1. checks what it needs and says what is missing (it installs nothing);
  2. builds the `tq` command-line tool (target tq_cli) in --build-dir (default ./build) and checks that it
     has `tq index build` / `tq search` / `tq eval recall`;
  3. makes the data if it is missing: Fashion-MNIST rows normalized + exact inner-product top-100
     (bench/data/fashion_mnist.py --normalized); the 384-d WordNet/MiniLM text embeddings are only found
     (bench/data/text_embeddings.py makes them, ~10 minutes);
  4. per dataset, bit width (2, 4), method and seed: tq `index build` (single thread, timed), `tq search
     --k 64` (recall), `tq eval recall` (cross-checked against this script's own count), and, for the first
     seed, timed `tq search --k 10 --threads 1` runs (queries per second);
  5. FAISS (faiss-cpu >= 1.15), in a separate process: PQ at tq's code bytes, FAISS's own TurboQuant
     (SQtqmse / SQtq) and RaBitQ, each trained and filled on one thread (timed), searched for recall with
     k = 64, and timed at k = 10 on one thread; results are cached in <cache>/recall-faiss/ so a rerun is
     instant (--refresh-faiss recomputes);
  6. writes bench/results/recall-<date>[-quick].json (every measurement), .md (the tables) and, when
     matplotlib is installed, -fig5.png (recall@1@k against k) and -qps.png (recall@10@10 against QPS).

Definitions. recall@1@k: the fraction of queries whose true top-1 (by exact inner product) is among the
top k returned from codes (the paper's Figure 5). recall@10@10: |top-10 returned ∩ true top-10| / 10,
averaged over queries. Both from the same k = 64 search (its first k ids are the top k).

The peer half runs as `python3 bench/recall.py --peer SPEC.json` (internal).
"""
import argparse
import datetime
import hashlib
import json
import os
import platform
import re
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
KS = (1, 2, 4, 8, 16, 32, 64)
KMAX = 64
KTIME = 10
CACHE_VERSION = 1
INSTALL_HINT = "pip install faiss-cpu numpy   (optional: matplotlib for the plots)"

# tq methods: (label, index build flags). All use tq's default Hadamard rotation (2 rounds) and score straight
# from codes (--rerank none). "nc" = norm correction (--norm unbiased); "center" = --center first (encode x - c,
# c the mean of the first rows added; no training). tq's CLI defaults are mse + nc + center.
TQ_METHODS = (
    ("tq mse", ["--variant", "mse", "--norm", "plain", "--center", "none"]),          # the paper's Algorithm 1
    ("tq mse+nc", ["--variant", "mse", "--norm", "unbiased", "--center", "none"]),
    ("tq mse+nc+center", ["--variant", "mse", "--norm", "unbiased", "--center", "first"]),  # tq's defaults
    ("tq prod", ["--variant", "prod", "--center", "none"]),                           # the paper's Algorithm 2
    ("tq prod+center", ["--variant", "prod", "--center", "first"]),
)

DATASETS = {
    "fmnist": {"title": "Fashion-MNIST 784-d, rows normalized (60,000 base, t10k queries)",
               "base": "fmnist-norm-base.fvecs", "queries": "fmnist-norm-queries.fvecs",
               "gt": "fmnist-norm-gt.ivecs"},
    "minilm": {"title": "WordNet glosses x all-MiniLM-L6-v2 384-d (100,000 base, 1,000 queries)",
               "base": "wordnet-minilm-base.fvecs", "queries": "wordnet-minilm-queries.fvecs",
               "gt": "wordnet-minilm-gt.ivecs"},
}


def log(msg):
    print("[recall] " + msg, file=sys.stderr, flush=True)


def cache_dir():
    if os.environ.get("TQ_CACHE_DIR"):
        return os.environ["TQ_CACHE_DIR"]
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "tq")


def faiss_methods(d, b, rabitq_float=False):
    """(factory string, what it is[, index attributes to set]) at b bits per coordinate, d dimensions. PQ gets tq's code bytes d*b/8
    with 8-bit sub-quantizers; a string this FAISS rejects is reported as rejected, never replaced."""
    m = d * b // 8
    out = []
    # "np": no polysemous training. Plain "PQ{M}" also runs FAISS's polysemous training, a reordering of
    # the centroids for Hamming-filtered search that flat IP search (search_type ST_PQ) does not use: it
    # leaves the recall unchanged and took ~7x the k-means time here (824 s vs ~110 s, PQ196, 20k rows).
    if (d * b) % 8 == 0 and d % m == 0:
        out.append(("PQ%dnp" % m, "PQ, %d sub-quantizers of 8 bits over %d dims each (tq's code bytes); "
                    "k-means on the base; np = no polysemous training" % (m, d // m)))
    else:
        out.append(("PQ%dnp" % m, "PQ at tq's code bytes: d %% M != 0, FAISS will reject it"))
    out += [
        ("L2norm,RR,SQtqmse%d" % b, "FAISS TurboQuant-MSE with its dense random rotation, in the form of "
         "FAISS's own search test (L2norm is a no-op on these unit rows)"),
        ("SQtqmse%d" % b, "the same codec bare: no rotation (the codec assumes rotated input)"),
        ("RR,SQtq%d" % b, "FAISS TurboQuant-PROD: %d-bit MSE + 1-bit QJL + norm/gamma, dense rotation" % (b - 1)),
        ("RaBitQ%d" % b, "FAISS RaBitQ, %d bits, factory string as given (no rotation; FAISS's RaBitQuantizer "
         "header says the rotation is done outside)" % b),
        ("RR,RaBitQ%d" % b, "FAISS RaBitQ, %d bits, after FAISS's dense random rotation (the paper's form)" % b),
    ]
    if rabitq_float:  # opt-in: ~1/100 of the speed (~2 min per (set, bits) for the recall pass alone)
        out.append(("RR,RaBitQ%d" % b, "the same with float queries (qb = 0): FAISS's most accurate RaBitQ scoring",
                    {"qb": 0}))
    return out


def faiss_label(fs, params):
    return "FAISS " + fs + "".join(" %s=%s" % kv for kv in sorted((params or {}).items()))


# ---------------------------------------------------------------------------------------------------
# Small file helpers (standard library only, used by both halves)
# ---------------------------------------------------------------------------------------------------

def vecs_shape(path, elem=4):
    """(rows, dim) of an .fvecs/.ivecs file (int32 dim, then dim 4-byte values, per row)."""
    with open(path, "rb") as f:
        head = f.read(4)
    if len(head) != 4:
        raise ValueError("%s: empty" % path)
    d = struct.unpack("<i", head)[0]
    size = os.path.getsize(path)
    row = 4 + elem * d
    if d <= 0 or size % row:
        raise ValueError("%s: not an .fvecs/.ivecs file (dim %d, %d bytes)" % (path, d, size))
    return size // row, d


def head_rows(src, dst, rows):
    """The first `rows` rows of an .fvecs/.ivecs file (fixed-size rows: a byte prefix)."""
    n, d = vecs_shape(src)
    if rows > n:
        raise ValueError("%s has %d rows, %d wanted" % (src, n, rows))
    with open(src, "rb") as f:
        data = f.read(rows * (4 + 4 * d))
    with open(dst, "wb") as f:
        f.write(data)


def read_ivecs(path):
    """List of int lists (standard library; the result files are small)."""
    import array
    n, d = vecs_shape(path)
    a = array.array("i")
    with open(path, "rb") as f:
        a.frombytes(f.read())
    if sys.byteorder != "little":
        a.byteswap()
    row = d + 1
    return [list(a[i * row + 1:(i + 1) * row]) for i in range(n)]


def recall_from_ids(gt, res, ks=KS):
    """recall@1@k for k in ks (true top-1 among the first k returned) and recall@10@10."""
    nq = len(res)
    out = {}
    for k in ks:
        if res and k <= len(res[0]):
            out[str(k)] = sum(1 for g, r in zip(gt, res) if g[0] in r[:k]) / nq
    r10 = None
    if res and len(res[0]) >= 10 and len(gt[0]) >= 10:
        r10 = sum(len(set(g[:10]) & set(r[:10])) for g, r in zip(gt, res)) / (10.0 * nq)
    return out, r10


def file_sig(path):
    st = os.stat(path)
    return [os.path.basename(path), st.st_size, int(st.st_mtime)]


# ---------------------------------------------------------------------------------------------------
# Peer process: FAISS (single-thread settings; the recall pass may use every core)
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


def read_fvecs_np(np, path, max_rows=0):
    d = int(np.fromfile(path, dtype="<i4", count=1)[0])
    a = np.fromfile(path, dtype="<i4", count=-1 if not max_rows else max_rows * (d + 1)).reshape(-1, d + 1)
    if not (a[:, 0] == d).all():
        raise ValueError("%s: rows of different dimensions" % path)
    return np.ascontiguousarray(a[:, 1:].view("<f4"))


def read_ivecs_np(np, path, max_rows=0):
    d = int(np.fromfile(path, dtype="<i4", count=1)[0])
    a = np.fromfile(path, dtype="<i4", count=-1 if not max_rows else max_rows * (d + 1)).reshape(-1, d + 1)
    return np.ascontiguousarray(a[:, 1:])


def recall_np(np, gt, ids):
    r1 = {str(k): float((ids[:, :k] == gt[:, :1]).any(axis=1).mean()) for k in KS if k <= ids.shape[1]}
    inter = [len(set(g[:10].tolist()) & set(r[:10].tolist())) for g, r in zip(gt, ids)]
    return r1, float(sum(inter)) / (10.0 * len(inter))


def dataset_info(np, faiss, name, xb, xq, gt):
    """Checks that the task is what it says: unit rows, ground truth = FAISS exact top-1, ties counted."""
    nb, nqn = np.linalg.norm(xb, axis=1), np.linalg.norm(xq, axis=1)
    s1 = np.einsum("ij,ij->i", xq.astype(np.float64), xb[gt[:, 0]].astype(np.float64))
    s2 = np.einsum("ij,ij->i", xq.astype(np.float64), xb[gt[:, 1]].astype(np.float64))
    rec = {"type": "dataset_info", "dataset": name, "n": int(xb.shape[0]), "dim": int(xb.shape[1]),
           "nq": int(xq.shape[0]), "gt_k": int(gt.shape[1]),
           "base_norm_min": float(nb.min()), "base_norm_max": float(nb.max()),
           "query_norm_min": float(nqn.min()), "query_norm_max": float(nqn.max()),
           "gt_top1_score_mean": float(s1.mean()), "gt_top1_top2_gap_median": float(np.median(s1 - s2)),
           "gt_top1_ties": int((s1 == s2).sum())}
    if faiss is not None:
        flat = faiss.IndexFlatIP(xb.shape[1])
        flat.add(xb)
        dist, ids = flat.search(xq, 1)
        # agree = same id, or a float32 score within rounding of the float64 top-1 (a near-tie)
        same = (ids[:, 0] == gt[:, 0]) | (np.abs(dist[:, 0] - s1) <= 1e-6)
        rec["gt_vs_faiss_flat_top1_agree"] = float(same.mean())
        rec["gt_vs_faiss_flat_top1_same_id"] = float((ids[:, 0] == gt[:, 0]).mean())
    return rec


RR_DEFAULT_SEED = 12345  # the seed FAISS's RandomRotationMatrix trains with


def faiss_cache_key(spec, ds, fs, params, faiss_version, rr_seed=None):
    extra = {"params": params} if params else {}  # (absent when empty: keys of plain factory strings unchanged)
    if rr_seed is not None and rr_seed != RR_DEFAULT_SEED:
        extra["rr_seed"] = rr_seed  # (and for FAISS's own seed: keys of earlier runs stay valid)
    blob = json.dumps({"v": CACHE_VERSION, **extra, "dataset": ds["name"], "base": file_sig(ds["base"]),
                       "queries": file_sig(ds["queries"]), "gt": file_sig(ds["gt"]), "nq": ds["nq"],
                       "nq_time": ds["nq_time"], "train_n": spec["train_n"], "factory": fs, "faiss": faiss_version,
                       "kmax": KMAX, "ktime": KTIME, "reps": spec["reps"], "metric": "ip"}, sort_keys=True)
    return hashlib.sha1(blob.encode()).hexdigest()[:16]


def run_faiss_method(np, faiss, spec, ds, fs, params, b, what, xb, xq, xq_time, gt, out, rr_seed=None):
    d = xb.shape[1]
    rec = {"type": "faiss", "dataset": ds["name"], "bits": b, "method": faiss_label(fs, params), "factory": fs,
           "params": params or {}, "what": what, "dim": d, "n": int(xb.shape[0]), "nq": int(xq.shape[0]),
           "metric": "ip"}
    if rr_seed is not None:
        rec["seed"] = rr_seed  # of FAISS's RandomRotationMatrix
    key = faiss_cache_key(spec, ds, fs, params, faiss.__version__, rr_seed)
    cpath = os.path.join(spec["faiss_cache"], key + ".json")
    if not spec["refresh"] and os.path.exists(cpath):
        try:
            with open(cpath) as f:
                cached = json.load(f)
            cached["cached"] = True
            cached["cache_file"] = cpath
            out(cached)
            return
        except (OSError, ValueError):
            pass
    try:
        index = faiss.index_factory(d, fs, faiss.METRIC_INNER_PRODUCT)
    except Exception as e:  # not accepted by this FAISS: say so, replace nothing
        msg = str(e).strip().splitlines()[-1] if str(e).strip() else repr(e)
        rec["error"] = "index_factory rejected it: " + re.sub(r"^Error in .*? at \S+:\d+: ", "", msg)[:200]
        out(rec)
        return
    inner = faiss.downcast_index(index.index) if isinstance(index, faiss.IndexPreTransform) else index
    if rr_seed is not None:  # draw the rotation from this seed; train() then leaves it as it is
        rrs = [faiss.downcast_VectorTransform(index.chain.at(i)) for i in range(index.chain.size())] \
            if isinstance(index, faiss.IndexPreTransform) else []
        rrs = [t for t in rrs if isinstance(t, faiss.RandomRotationMatrix)]
        if len(rrs) != 1:
            rec["error"] = "no single RandomRotationMatrix to seed in %s" % fs
            out(rec)
            return
        rrs[0].init(rr_seed)
        rrs[0].is_trained = True
    rec["class"] = type(inner).__name__ + (" (in IndexPreTransform)" if inner is not index else "")
    for k, v in (params or {}).items():
        if not hasattr(inner, k):
            rec["error"] = "%s has no attribute %s" % (type(inner).__name__, k)
            out(rec)
            return
        setattr(inner, k, v)
    if hasattr(inner, "qb"):
        rec["rabitq_qb"] = int(inner.qb)  # query bits (FAISS default for the factory index; 0 = float queries)
        rec["rabitq_centered"] = bool(getattr(inner, "centered", False))
    if hasattr(inner, "rabitq"):
        rec["rabitq_nb_bits"] = int(inner.rabitq.nb_bits)
    faiss.omp_set_num_threads(1)
    xt = xb[:spec["train_n"]] if spec["train_n"] else xb
    log("%s %d-bit: FAISS %s: train on %d rows (1 thread)" % (ds["name"], b, fs, xt.shape[0]))
    t0 = time.perf_counter()
    index.train(xt)
    rec["train_s"] = time.perf_counter() - t0
    rec["train_n"] = int(xt.shape[0])
    t0 = time.perf_counter()
    index.add(xb)
    rec["add_s"] = time.perf_counter() - t0
    rec["build_s"] = rec["train_s"] + rec["add_s"]
    rec["build_s_per_100k"] = rec["build_s"] / xb.shape[0] * 1e5
    rec["bytes_per_vector"] = int(index.sa_code_size())
    # recall pass: k = 64, every core (results do not depend on the thread count)
    faiss.omp_set_num_threads(spec["threads_recall"])
    t0 = time.perf_counter()
    _, ids = index.search(xq, KMAX)
    rec["recall_search_s"] = time.perf_counter() - t0
    rec["recall_threads"] = spec["threads_recall"]
    rec["recall_1_at_k"], rec["recall_10_at_10"] = recall_np(np, gt, ids)
    rec["invalid_ids"] = int((ids < 0).sum())
    # QPS: k = 10, one thread, all timing queries in one call (as `tq search` takes a query file), median
    faiss.omp_set_num_threads(1)
    index.search(xq_time[:8], KTIME)  # warm-up
    times = []
    for _ in range(spec["reps"]):
        t0 = time.perf_counter()
        index.search(xq_time, KTIME)
        times.append(time.perf_counter() - t0)
    rec["qps_runs"] = [xq_time.shape[0] / t for t in times]
    rec["qps"] = xq_time.shape[0] / statistics.median(times)
    rec["nq_time"] = int(xq_time.shape[0])
    rec["cached"] = False
    rec["measured"] = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    os.makedirs(spec["faiss_cache"], exist_ok=True)
    tmp = cpath + ".tmp"
    with open(tmp, "w") as f:
        json.dump(rec, f, sort_keys=True)
    os.replace(tmp, cpath)
    out(rec)


def peer_main(spec_path):
    with open(spec_path) as f:
        spec = json.load(f)

    def out(rec):
        print(json.dumps(rec, sort_keys=True), flush=True)

    try:
        import numpy as np
    except ImportError:
        out({"type": "peer_error", "error": "numpy is not installed: " + INSTALL_HINT})
        return 0
    info = {"type": "peer_info", "numpy": np.__version__, "python": platform.python_version(),
            "thread_env": {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS")}}
    try:
        import faiss
        info["faiss"] = faiss.__version__
        faiss.omp_set_num_threads(1)
        info["faiss_omp_threads_timed"] = faiss.omp_get_max_threads()
        try:
            info["faiss_compile_options"] = faiss.get_compile_options().strip()
        except Exception:
            pass
    except ImportError:
        faiss = None
        info["faiss"] = None
        info["faiss_error"] = "faiss is not installed: " + INSTALL_HINT
    out(info)
    for ds in spec["datasets"]:
        xb = read_fvecs_np(np, ds["base"])
        xq = read_fvecs_np(np, ds["queries"], ds["nq"])
        gt = read_ivecs_np(np, ds["gt"], ds["nq"])
        xq_time = np.ascontiguousarray(xq[:ds["nq_time"]])
        if faiss is not None:
            faiss.omp_set_num_threads(spec["threads_recall"])
        out(dataset_info(np, faiss, ds["name"], xb, xq, gt))
        if faiss is None:
            continue
        for b in spec["bits"]:
            for m in faiss_methods(xb.shape[1], b, spec.get("rabitq_float")):
                fs, what, params = m[0], m[1], (m[2] if len(m) > 2 else None)
                if spec.get("only") and fs not in spec["only"]:
                    continue
                # the methods with a random rotation run once per rotation seed, as tq does (one seed only
                # for the slow float-query RaBitQ row)
                rr = re.search(r"(^|,)RR,", fs) is not None
                for seed in (spec.get("rr_seeds") or [RR_DEFAULT_SEED])[:1 if params else None] if rr else [None]:
                    try:
                        run_faiss_method(np, faiss, spec, ds, fs, params, b, what, xb, xq, xq_time, gt, out, seed)
                    except Exception as e:  # a failure of one method is reported, the others still run
                        out({"type": "faiss", "dataset": ds["name"], "bits": b, "method": faiss_label(fs, params),
                             "factory": fs, "what": what, "seed": seed, "error": "failed: %r" % (e,)})
    return 0


# ---------------------------------------------------------------------------------------------------
# Driver (standard library only; matplotlib optional for the plots)
# ---------------------------------------------------------------------------------------------------

def check_tools(need_build):
    missing = [t for t in ("cmake", "cc") if shutil.which(t) is None] if need_build else []
    if missing:
        sys.exit("recall.py: missing %s; run the README quick start first (bash scripts/demo.sh installs them)"
                 % ", ".join(missing))


def peer_versions():
    code = ("import json\nr={}\nfor m in ('numpy','faiss','matplotlib'):\n"
            " try:\n  r[m]=__import__(m).__version__\n except ImportError: r[m]=None\nprint(json.dumps(r))")
    env, _ = peer_env()
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    try:
        return json.loads(p.stdout.strip().splitlines()[-1])
    except Exception:
        return {"numpy": None, "faiss": None, "matplotlib": None}


def build_cli(build_dir):
    fresh = not os.path.exists(os.path.join(build_dir, "CMakeCache.txt"))
    log("configuring %s (cmake%s)" % (build_dir, ", Release" if fresh else ""))
    cmd = ["cmake", "-S", ROOT, "-B", build_dir] + (["-DCMAKE_BUILD_TYPE=Release"] if fresh else [])
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    log("building tq_cli in %s" % build_dir)
    p = subprocess.run(["cmake", "--build", build_dir, "--target", "tq_cli", "-j2"], stdout=subprocess.DEVNULL)
    exe = os.path.join(build_dir, "tq")
    if p.returncode != 0 or not os.path.exists(exe):
        sys.exit("recall.py: building tq_cli in %s failed (see the messages above)" % build_dir)
    return exe


def tq_has_index(exe):
    """True when this tq has `index build`, `search` and `eval recall` (the interface this script uses)."""
    for sub in (["index", "build", "--help"], ["search", "--help"], ["eval", "recall", "--help"]):
        p = subprocess.run([exe] + sub, capture_output=True, text=True)
        if p.returncode != 0:
            return False, "`tq %s` exited with status %d: %s" % (" ".join(sub), p.returncode,
                                                                 (p.stderr or p.stdout).strip()[:160])
    return True, None


def run_json(cmd, env=None):
    """Run, return (last JSON object on stdout or None, wall seconds, error text or None)."""
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    obj = None
    for line in p.stdout.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                obj = json.loads(line)
            except json.JSONDecodeError:
                pass
    if p.returncode != 0 or obj is None:
        return obj, wall, "%s exited with status %d: %s" % (" ".join(os.path.basename(c) if i == 0 else c
                                                                    for i, c in enumerate(cmd[:3])),
                                                           p.returncode, (p.stderr or p.stdout).strip()[-300:])
    return obj, wall, None


def git_state():
    try:
        def git(*a):
            return subprocess.run(["git", "-C", ROOT] + list(a), capture_output=True, text=True).stdout
        head = git("rev-parse", "--short", "HEAD").strip()
        diff = git("diff", "HEAD", "--", "src", "include", "tools", "CMakeLists.txt")
        untracked = git("ls-files", "--others", "--exclude-standard", "--", "src", "include", "tools").split()
        if not diff and not untracked:
            return head
        h = hashlib.sha1(diff.encode())
        for u in sorted(untracked):
            try:
                with open(os.path.join(ROOT, u), "rb") as f:
                    h.update(u.encode() + f.read())
            except OSError:
                pass
        return "%s + uncommitted changes to src/include/tools (work tree %s)" % (head, h.hexdigest()[:10])
    except Exception:
        return "unknown"


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def prepare_data(want, notes):
    """{name: {base, queries, gt}} for the datasets that are there (made if cheap)."""
    d = cache_dir()
    have = {}
    for name in want:
        if name not in DATASETS:
            sys.exit("recall.py: unknown dataset %s (known: %s)" % (name, ", ".join(DATASETS)))
        spec = DATASETS[name]
        paths = {k: os.path.join(d, spec[k]) for k in ("base", "queries", "gt")}
        if name == "fmnist" and not all(os.path.exists(p) for p in paths.values()):
            log("making the normalized Fashion-MNIST task (bench/data/fashion_mnist.py --normalized)")
            p = subprocess.run([sys.executable, os.path.join(HERE, "data", "fashion_mnist.py"), "--normalized"])
            if p.returncode != 0:
                notes.append("Fashion-MNIST not measured: bench/data/fashion_mnist.py --normalized failed "
                             "(apt-get install dataset-fashion-mnist; pip install numpy)")
                continue
        missing = [p for p in paths.values() if not os.path.exists(p)]
        if missing:
            msg = ("%s not measured: %s missing%s" % (
                name, ", ".join(os.path.basename(m) for m in missing),
                " (run python3 bench/data/text_embeddings.py first; see bench/README.md)" if name == "minilm" else ""))
            notes.append(msg)
            log(msg)
            continue
        have[name] = paths
    return have


def tq_recall_pass(exe, k, threads, idx, paths, res, gt, nq):
    """`tq search --k k` over the recall queries, this script's own recall count, and `tq eval recall` on the same
    result (cross-check). Returns (record fields, error)."""
    obj, _, err = run_json([exe, "search", "--k", str(k), "--threads", str(threads), idx, paths["queries_run"],
                            "--out", res])
    if err:
        return None, err
    ids = read_ivecs(res)
    r1, r10 = recall_from_ids(gt[:nq], ids)
    out = {"search": obj, "recall_1_at_k": r1, "recall_10_at_10": r10, "result_rows": len(ids)}
    ev, _, err = run_json([exe, "eval", "recall", "--gt", paths["gt_run"], res])
    out["tq_eval"] = ev
    if err:
        out["tq_eval_error"] = err
    else:
        theirs = ev.get("recall_1_at_k") or {}
        diffs = [abs(r1[kk] - theirs[kk]) for kk in r1 if kk in theirs]
        if ev.get("recall_10_at_10") is not None and r10 is not None:
            diffs.append(abs(ev["recall_10_at_10"] - r10))
        out["tq_eval_agrees"] = bool(diffs) and max(diffs) < 1e-6 and len(ids) == ev.get("queries")
    return out, None


def run_tq(exe, name, paths, nq, nq_time, bits_list, seeds, reps, work, threads_recall, records):
    n, dim = vecs_shape(paths["base"])
    gt = read_ivecs(paths["gt"])
    for b in bits_list:
        for label, flags in TQ_METHODS:
            for seed in seeds:
                rec = {"type": "tq", "dataset": name, "bits": b, "method": label, "seed": seed, "n": n, "dim": dim,
                       "nq": nq}
                idx = os.path.join(work, "index.tqi")
                res = os.path.join(work, "res.ivecs")
                cmd = [exe, "index", "build", "--bits", str(b)] + flags + [
                    "--metric", "ip", "--rerank", "none", "--seed", str(seed), "--threads", "1", "--quiet",
                    paths["base"], idx]
                rec["build_cmd"] = " ".join(["tq"] + cmd[1:-2] + ["BASE", "OUT.tqi"])
                obj, wall, err = run_json(cmd)
                if err:
                    rec["error"] = err
                    records.append(rec)
                    log("%s %d-bit %s seed %d: %s" % (name, b, label, seed, err))
                    continue
                rec["build"] = obj
                rec["build_wall_s"] = wall
                rec["bytes_per_vector"] = obj.get("bytes_per_vector")
                rec["build_s"] = obj.get("seconds")
                rec["build_s_per_100k"] = obj["seconds"] / obj["n"] * 1e5 if obj.get("seconds") is not None \
                    and obj.get("n") else None
                # recall@1@k from a k = 64 search; recall@10@10 from a k = 10 search (the configuration that is
                # timed: tq's shortlist depends on k), both over every recall query, all cores
                r64, err = tq_recall_pass(exe, KMAX, threads_recall, idx, paths, res, gt, nq)
                r10, err10 = tq_recall_pass(exe, KTIME, threads_recall, idx, paths, res, gt, nq) if not err \
                    else (None, None)
                if err or err10:
                    rec["error"] = err or err10
                    records.append(rec)
                    log("%s %d-bit %s seed %d: %s" % (name, b, label, seed, rec["error"]))
                    os.remove(idx)
                    continue
                rec["recall_1_at_k"] = r64["recall_1_at_k"]
                rec["recall_10_at_10"] = r10["recall_10_at_10"]
                rec["recall_10_at_10_from_k64"] = r64["recall_10_at_10"]
                rec["search_k64"], rec["search_k10"] = r64["search"], r10["search"]
                rec["tq_eval_k64"], rec["tq_eval_k10"] = r64["tq_eval"], r10["tq_eval"]
                rec["tq_eval_agrees"] = bool(r64.get("tq_eval_agrees") and r10.get("tq_eval_agrees"))
                for e in (r64.get("tq_eval_error"), r10.get("tq_eval_error")):
                    if e:
                        rec["tq_eval_error"] = e
                # QPS: k = 10, one thread, the timing queries, median of reps (tq's own "qps": search only)
                runs, walls = [], []
                for _ in range(reps):
                    obj, wall, err = run_json([exe, "search", "--k", str(KTIME), "--threads", "1", idx,
                                               paths["queries_time"], "--out", res])
                    if err:
                        rec["qps_error"] = err
                        break
                    runs.append(obj.get("qps"))
                    walls.append(wall)
                if runs and all(r is not None for r in runs):
                    rec["qps_runs"] = runs
                    rec["qps"] = statistics.median(runs)
                    rec["qps_wall"] = nq_time / statistics.median(walls)  # process start + load + search
                    rec["nq_time"] = nq_time
                    rec["search_kernel"] = obj.get("kernel")
                log("%s %d-bit %-16s seed %d: R@1@1 %.3f  R@1@64 %.3f  R@10@10 %.3f  %s B/vec  build %.2f s  "
                    "%s q/s (1 thread)%s" % (
                        name, b, label, seed, rec["recall_1_at_k"].get("1", float("nan")),
                        rec["recall_1_at_k"].get("64", float("nan")), rec["recall_10_at_10"] or float("nan"),
                        fmt_bytes(rec["bytes_per_vector"]), rec["build_s"] or float("nan"),
                        fmt_int(rec.get("qps")), "" if rec["tq_eval_agrees"] else "  (tq eval recall DISAGREES)"))
                records.append(rec)
                os.remove(idx)


def run_peer(spec, env):
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(spec, f)
        path = f.name
    try:
        log("FAISS (separate process, single-thread settings)")
        p = subprocess.run([sys.executable, os.path.abspath(__file__), "--peer", path], stdout=subprocess.PIPE,
                           text=True, env=env)
    finally:
        os.remove(path)
    recs = []
    for line in p.stdout.splitlines():
        if line.startswith("{"):
            try:
                recs.append(json.loads(line))
            except json.JSONDecodeError:
                pass
    if p.returncode != 0:
        recs.append({"type": "peer_error", "error": "the FAISS process exited with status %d" % p.returncode})
    return recs


# ---------------------------------------------------------------------------------------------------
# Aggregation and report
# ---------------------------------------------------------------------------------------------------

def mean_std(vals):
    vals = [v for v in vals if v is not None]
    if not vals:
        return None, None
    return statistics.mean(vals), (statistics.stdev(vals) if len(vals) > 1 else None)


def aggregate(records):
    """One row per (dataset, bits, method): means and sample std over seeds (tq's, and FAISS's rotation seeds for
    its RR methods); single runs for the other FAISS methods."""
    rows = {}
    for r in records:
        if r.get("type") not in ("tq", "faiss"):
            continue
        key = (r["dataset"], r["bits"], r["method"])
        rows.setdefault(key, []).append(r)
    out = []
    for (ds, b, m), rs in rows.items():
        ok = [r for r in rs if not r.get("error")]
        row = {"dataset": ds, "bits": b, "method": m, "kind": rs[0]["type"], "runs": len(ok),
               "seeds": [r.get("seed") for r in ok] if any(r.get("seed") is not None for r in ok) else None,
               "error": rs[0].get("error") if not ok else None, "what": rs[0].get("what")}
        if ok:
            row["recall_1_at_k"] = {}
            row["recall_1_at_k_std"] = {}
            for k in KS:
                mu, sd = mean_std([r.get("recall_1_at_k", {}).get(str(k)) for r in ok])
                row["recall_1_at_k"][str(k)] = mu
                row["recall_1_at_k_std"][str(k)] = sd
            row["recall_10_at_10"], row["recall_10_at_10_std"] = mean_std([r.get("recall_10_at_10") for r in ok])
            row["bytes_per_vector"] = ok[0].get("bytes_per_vector")
            bs = [r.get("build_s_per_100k") for r in ok if r.get("build_s_per_100k") is not None]
            row["build_s_per_100k"] = statistics.median(bs) if bs else None
            row["build_s"] = statistics.median([r["build_s"] for r in ok if r.get("build_s") is not None] or [0]) \
                if any(r.get("build_s") is not None for r in ok) else None
            row["train_s"] = ok[0].get("train_s")
            row["add_s"] = ok[0].get("add_s")
            q = [r["qps"] for r in ok if r.get("qps")]
            row["qps"] = statistics.median(q) if q else None
            row["qps_runs"] = [x for r in ok for x in (r.get("qps_runs") or [])]
            row["cached"] = any(r.get("cached") for r in ok)
            row["rabitq_qb"] = ok[0].get("rabitq_qb")
            row["class"] = ok[0].get("class")
            row["tq_eval_agrees"] = all(r.get("tq_eval_agrees") for r in ok) if rs[0]["type"] == "tq" else None
        out.append(row)
    order = {m: i for i, (m, _) in enumerate(TQ_METHODS)}
    out.sort(key=lambda r: (r["dataset"], r["bits"], 0 if r["kind"] == "tq" else 1, order.get(r["method"], 99),
                            r["method"]))
    return out


def fmt(v, spec="%.3f", none="—"):
    return none if v is None else spec % v


def fmt_ms(mu, sd):
    if mu is None:
        return "—"
    return "%.3f ± %.3f" % (mu, sd) if sd is not None else "%.3f" % mu


def fmt_int(v):
    return "—" if v is None else "{:,.0f}".format(v)


def fmt_bytes(v):
    if v is None:
        return "—"
    return "%d" % v if abs(v - round(v)) < 1e-9 else "%.2f" % v


def family(method):
    """A method's name with its bit-dependent number replaced: 'FAISS PQ196' -> 'FAISS PQ{d·b/8}'."""
    if not method.startswith("FAISS"):
        return method
    if re.match(r"FAISS PQ\d+(np)?$", method):
        return "FAISS PQ{d·b/8}np"
    return re.sub(r"\d+((?: \w+=\S+)*)$", r"{b}\1", method)


def best_rabitq(rows, ds, b):
    """The better FAISS RaBitQ row at (ds, b) among those measured over the most runs: a mean over rotation seeds is
    what tq's mean over seeds compares with, not one draw (the float-query row has FAISS's seed only)."""
    rb = [r for r in rows if r["dataset"] == ds and r["bits"] == b and re.search(r"RaBitQ\d", r["method"])
          and not r.get("error")]
    if not rb:
        return None
    most = max(r["runs"] for r in rb)
    return max((r for r in rb if r["runs"] == most), key=lambda r: r["recall_1_at_k"]["1"] or 0)


def gaps(rows):
    out = []
    for r in rows:
        if r["kind"] != "tq" or r.get("error"):
            continue
        rb = best_rabitq(rows, r["dataset"], r["bits"])
        if not rb:
            continue
        out.append({"dataset": r["dataset"], "bits": r["bits"], "method": r["method"], "vs": rb["method"],
                    "r1": r["recall_1_at_k"]["1"], "r1_std": r["recall_1_at_k_std"]["1"],
                    "vs_r1": rb["recall_1_at_k"]["1"], "vs_r1_std": rb["recall_1_at_k_std"]["1"],
                    "d_r1_at_1": r["recall_1_at_k"]["1"] - rb["recall_1_at_k"]["1"],
                    "d_r10_at_10": (r["recall_10_at_10"] - rb["recall_10_at_10"])
                    if r["recall_10_at_10"] is not None and rb["recall_10_at_10"] is not None else None})
    return out


def report(meta, records, rows, plots):
    L = []
    L.append("# tq recall on real data (the paper's Figure 5), side by side with FAISS%s — %s"
             % (" — quick mode" if meta["quick"] else "", meta["date"]))
    L.append("")
    if meta.get("tq_stand_in"):
        L.append("> **The tq rows come from a stand-in binary (%s), not from tq. Do not report them.**"
                 % meta["tq_exe"])
        L.append("")
    peer = next((r for r in records if r.get("type") == "peer_info"), {})
    L.append("- **Command**: `%s`." % meta["command"])
    L.append("- **Machine**: %s, %s, %d logical cores, shared with other jobs. **Timed runs use one thread**: "
             "`tq index build --threads 1`, `tq search --threads 1`; FAISS `omp_set_num_threads(1)` for train, add "
             "and search (OMP/OpenBLAS/MKL thread variables = 1 in its process). The recall-only searches use %d "
             "threads (results do not depend on the thread count)." % (
                 meta["cpu"], meta["arch"], meta["cores"], meta["threads_recall"]))
    L.append("- **tq**: `%s` (%s); source %s." % (meta["tq_exe"], meta.get("tq_info") or "?", meta["tq_commit"]))
    L.append("- **Versions**: FAISS %s; numpy %s; Python %s; matplotlib %s." % (
        peer.get("faiss") or "not installed", peer.get("numpy") or "—", meta["python"],
        meta["versions"].get("matplotlib") or "not installed (no plots)"))
    rr_seeds = meta.get("rr_seeds") or [RR_DEFAULT_SEED]
    L.append("- **Seeds**: tq %s (the rotation depends on the seed); mean ± sample std over seeds. FAISS: the "
             "methods with a dense random rotation (`RR`) once per RandomRotationMatrix seed %s (%d is FAISS's own), "
             "mean ± sample std likewise, except the slow float-query RaBitQ row (seed %d only); the others one run "
             "with FAISS's built-in seeds (k-means seed 1234 for PQ)." % (
                 ", ".join(str(s) for s in meta["seeds"]), ", ".join(str(s) for s in rr_seeds), RR_DEFAULT_SEED,
                 rr_seeds[0]))
    qb = sorted({r.get("rabitq_qb") for r in records if r.get("rabitq_qb") is not None})
    if qb:
        L.append("- **FAISS RaBitQ query bits** `qb` = 4: the factory index quantizes queries to 4 bits (its "
                 "default; `centered` = false)%s." % (
                     "; the rows marked `qb=0` score float queries (`--rabitq-float`)" if 0 in qb else
                     "; `--rabitq-float` adds rows with float queries (`qb` = 0)"))
    for inf in [r for r in records if r.get("type") == "dataset_info"]:
        L.append("- **%s**: N = %s, d = %d, %d queries (first %d for QPS); norms base [%.6f, %.6f], queries "
                 "[%.6f, %.6f]; ground truth exact top-%d by inner product in float64 (%s of top-1 agree with FAISS "
                 "IndexFlatIP; %d top-1 ties; median top-1/top-2 score gap %.2g)." % (
                     DATASETS[inf["dataset"]]["title"], fmt_int(inf["n"]), inf["dim"], inf["nq"],
                     meta["nq_time"], inf["base_norm_min"], inf["base_norm_max"], inf["query_norm_min"],
                     inf["query_norm_max"], inf["gt_k"],
                     fmt(inf.get("gt_vs_faiss_flat_top1_agree"), "%.3f"), inf["gt_top1_ties"],
                     inf["gt_top1_top2_gap_median"]))
    if meta.get("train_n"):
        L.append("- **Quick mode**: FAISS trains on the first %s base rows (full mode: all of them)."
                 % fmt_int(meta["train_n"]))
    for n in meta.get("notes") or []:
        L.append("- **%s**" % n)
    cached = sorted({r["method"] for r in rows if r.get("cached")})
    if cached:
        L.append("- FAISS rows read from the cache (%s/recall-faiss; measured in an earlier run of this script on "
                 "the same data, `--refresh-faiss` remeasures): %d of %d." % (
                     meta["cache_dir"], sum(1 for r in rows if r.get("cached")),
                     sum(1 for r in rows if r["kind"] == "faiss")))
    L.append("- Total run time %.0f s.%s" % (meta["elapsed_s"], " Report written again from the run's JSON on %s "
             "(`--from-json`; nothing remeasured)." % meta["rendered_again"] if meta.get("rendered_again") else ""))
    L.append("")

    datasets = []
    for r in rows:
        if r["dataset"] not in datasets:
            datasets.append(r["dataset"])
    L.append("## recall@1@k — the true top-1 among the top k scored from codes (Figure 5)")
    L.append("")
    if plots.get("fig5"):
        L.append("![recall@1@k](%s)" % os.path.basename(plots["fig5"]))
        L.append("")
    for ds in datasets:
        for b in sorted({r["bits"] for r in rows if r["dataset"] == ds}):
            L.append("### %s — %d bits" % (DATASETS[ds]["title"], b))
            L.append("")
            L.append("| method | B/vec | " + " | ".join("@%d" % k for k in KS) + " | R@10@10 |")
            L.append("|---|---:|" + "---:|" * len(KS) + "---:|")
            for r in rows:
                if r["dataset"] != ds or r["bits"] != b:
                    continue
                if r.get("error"):
                    L.append("| %s | — | %s |" % (r["method"], r["error"][:160]) + " |" * len(KS))
                    continue
                L.append("| %s | %s | %s | %s |" % (
                    r["method"], fmt_bytes(r["bytes_per_vector"]),
                    " | ".join(fmt_ms(r["recall_1_at_k"][str(k)], r["recall_1_at_k_std"][str(k)]) for k in KS),
                    fmt_ms(r["recall_10_at_10"], r["recall_10_at_10_std"])))
            L.append("")

    L.append("## Gap to RaBitQ (tq minus the better FAISS RaBitQ row at the same bits, of those measured over "
             "rotation seeds)")
    L.append("")
    L.append("| dataset | bits | tq method | recall@1@1 | vs | its recall@1@1 | Δ recall@1@1 | Δ recall@10@10 |")
    L.append("|---|---:|---|---:|---|---:|---:|---:|")
    for g in gaps(rows):
        L.append("| %s | %d | %s | %s | %s | %s | %+.3f | %s |" % (
            g["dataset"], g["bits"], g["method"], fmt_ms(g["r1"], g["r1_std"]), g["vs"],
            fmt_ms(g["vs_r1"], g["vs_r1_std"]), g["d_r1_at_1"], fmt(g["d_r10_at_10"], "%+.3f")))
    L.append("")
    L.append("± is the sample std over rotation seeds: a difference within about one of them is not one the seeds "
             "can tell apart.")
    L.append("")

    L.append("## recall@10@10 against queries per second (one thread, k = 10)")
    L.append("")
    if plots.get("qps"):
        L.append("![recall@10@10 vs QPS](%s)" % os.path.basename(plots["qps"]))
        L.append("")
    L.append("| dataset | bits | method | B/vec | R@10@10 | QPS | ms/query |")
    L.append("|---|---:|---|---:|---:|---:|---:|")
    for r in rows:
        if r.get("error"):
            continue
        L.append("| %s | %d | %s | %s | %s | %s | %s |" % (
            r["dataset"], r["bits"], r["method"], fmt_bytes(r["bytes_per_vector"]), fmt(r["recall_10_at_10"]),
            fmt_int(r["qps"]), fmt(1e3 / r["qps"] if r["qps"] else None, "%.2f")))
    L.append("")
    L.append("QPS: the first %d queries searched in one call with k = %d on one thread. tq: one `tq search "
             "--threads 1` run, its own `qps` field (search only: process start and index load excluded; the index "
             "is memory-mapped and warm), median of %d runs per seed, then the median over seeds. FAISS: one "
             "`index.search` call, median of %d runs (and over rotation seeds for `RR` methods). recall@10@10 — tq: from a k = 10 search over all %s queries "
             "(the timed configuration: tq's exact-rescoring shortlist depends on k); FAISS: the first 10 of the "
             "k = 64 search (exhaustive scoring: the same ids)." % (meta["nq_time"], KTIME, meta["reps"],
                                                                   meta["params"]["faiss_reps"],
                                                                   fmt_int(meta["params"]["nq"])))
    L.append("")

    L.append("## Build time per 100,000 vectors (one thread)")
    L.append("")
    L.append("| dataset | bits | method | B/vec | train s | build s (train + add / index build) | s per 100k "
             "| FAISS PQ / this |")
    L.append("|---|---:|---|---:|---:|---:|---:|---:|")
    for r in rows:
        if r.get("error"):
            continue
        pq = next((x for x in rows if x["dataset"] == r["dataset"] and x["bits"] == r["bits"]
                   and re.match(r"FAISS PQ\d+(np)?$", x["method"]) and not x.get("error")), None)
        ratio = pq["build_s_per_100k"] / r["build_s_per_100k"] if pq and r.get("build_s_per_100k") else None
        L.append("| %s | %d | %s | %s | %s | %s | %s | %s |" % (
            r["dataset"], r["bits"], r["method"], fmt_bytes(r["bytes_per_vector"]), fmt(r.get("train_s"), "%.2f"),
            fmt(r.get("build_s") if r["kind"] == "tq" else (r.get("train_s") or 0) + (r.get("add_s") or 0), "%.2f"),
            fmt(r.get("build_s_per_100k"), "%.2f"), fmt(ratio, "%.0f×" if ratio and ratio >= 10 else "%.1f×")))
    L.append("")
    L.append("tq: the `seconds` that `tq index build --threads 1` reports (index creation, center, checks, "
             "rotation, encode and scan layout; not the file read), median over seeds. FAISS: `train` + `add` on "
             "one thread (for PQ the k-means is nearly all of it), median over rotation seeds for `RR` methods. "
             "Divided by N and scaled to 100,000 vectors.")
    L.append("")
    L.append("## Bytes per vector")
    L.append("")
    L.append("tq: `bytes_per_vector` from `tq index build` (codes + every per-vector factor: norm or scale, "
             "⟨x, c⟩ with centering, γ for PROD; the index also keeps an 8-byte id per vector, counted in its "
             "`memory_bytes` but not here). FAISS: `sa_code_size()` (a flat FAISS index stores no ids). PQ is sized "
             "to tq's code bytes d·b/8 (its codebooks live in the index, not per vector); FAISS RaBitQ adds its "
             "per-vector factors; `SQtqmse` stores no norm (it expects unit rows).")
    L.append("")
    meths = []
    for r in rows:
        if family(r["method"]) not in meths:
            meths.append(family(r["method"]))
    cols = [(ds, b) for ds in datasets for b in sorted({r["bits"] for r in rows if r["dataset"] == ds})]
    L.append("| method | " + " | ".join("%s %d-bit" % c for c in cols) + " |")
    L.append("|---|" + "---:|" * len(cols))
    for m in meths:
        cells = []
        for ds, b in cols:
            r = next((x for x in rows if family(x["method"]) == m and x["dataset"] == ds and x["bits"] == b),
                     None)
            cells.append(fmt_bytes(r.get("bytes_per_vector")) if r and not r.get("error") else "—")
        L.append("| %s | %s |" % (m, " | ".join(cells)))
    L.append("")
    L.append("Methods. tq (all `--metric ip --rerank none --rotation hadamard`: scores straight from codes): "
             "`tq mse` = TurboQuant-MSE storing ‖x‖ (`--norm plain --center none`, the paper's Algorithm 1); "
             "`tq mse+nc` = the same codes with tq's norm correction ‖x‖/⟨y, c[idx]⟩ (`--norm unbiased`); "
             "`tq mse+nc+center` = norm correction and centering (`--center first`: encode x − c, c the mean of "
             "the first rows added, fixed, no training; the exact ⟨x, c⟩ is kept per vector) — tq's defaults; "
             "`tq prod` = TurboQuant-PROD ((b−1)-bit MSE + 1-bit structured QJL sketch of the residual, the "
             "paper's Algorithm 2); `tq prod+center` the same, centered. "
             "FAISS (all `METRIC_INNER_PRODUCT`, `index_factory`): `PQ{d·b/8}np` — PQ at tq's code bytes, 8-bit "
             "sub-quantizers, k-means on the base, without the polysemous training that plain `PQ{M}` adds (a "
             "centroid reordering that flat search does not use: same recall, several times the training time); "
             "`L2norm,RR,SQtqmse{b}` — FAISS's TurboQuant-MSE after its dense random rotation, the form of FAISS's "
             "own search test (`L2norm` is a no-op on unit rows); `SQtqmse{b}` — the same codec bare, no rotation "
             "(the codec assumes rotated input; shown to make that visible); `RR,SQtq{b}` — FAISS's "
             "TurboQuant-PROD ((b−1)-bit MSE + 1-bit QJL + norm and γ); `RaBitQ{b}` — FAISS's b-bit RaBitQ as "
             "the factory string gives it (FAISS's RaBitQuantizer expects the rotation to be done outside; it "
             "centers on the training mean); `RR,RaBitQ{b}` — the same after FAISS's dense random rotation, the "
             "paper's form" + ("; `RR,RaBitQ{b} qb=0` — the same scoring float queries instead of 4-bit ones"
                                if any("qb=0" in r["method"] for r in rows) else "") + ".")
    L.append("")
    return "\n".join(L)


def make_plots(rows, stem, out_dir):
    """PNG plots when matplotlib is installed; returns {name: path} (empty without matplotlib)."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return {}
    plots = {}
    datasets = []
    for r in rows:
        if r["dataset"] not in datasets:
            datasets.append(r["dataset"])
    bits = sorted({r["bits"] for r in rows})
    methods = list(dict.fromkeys(family(r["method"]) for r in rows if not r.get("error")))
    tq_colors = ["tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple"]
    faiss_colors = ["black", "tab:gray", "tab:brown", "tab:pink", "tab:olive", "tab:cyan", "gold"]
    pref = {"FAISS RR,RaBitQ{b}": "black", "FAISS RR,RaBitQ{b} qb=0": "tab:gray",
            "FAISS RaBitQ{b}": "tab:olive", "FAISS PQ{d·b/8}np": "tab:brown"}
    color = {}
    for m in methods:
        if m in pref:
            color[m] = pref[m]
    for m in methods:
        if m not in color:
            pool = tq_colors if m.startswith("tq") else faiss_colors
            free = [c for c in pool if c not in color.values()] or pool
            color[m] = free[0]
    key = family

    fig, axes = plt.subplots(len(datasets), len(bits), figsize=(4.6 * len(bits) + 2.6, 3.8 * len(datasets) + 0.4),
                             squeeze=False)
    for i, ds in enumerate(datasets):
        for j, b in enumerate(bits):
            ax = axes[i][j]
            for r in rows:
                if r["dataset"] != ds or r["bits"] != b or r.get("error"):
                    continue
                ks = [k for k in KS if r["recall_1_at_k"].get(str(k)) is not None]
                ys = [r["recall_1_at_k"][str(k)] for k in ks]
                es = [r["recall_1_at_k_std"].get(str(k)) or 0 for k in ks]
                tq = r["kind"] == "tq"
                ax.errorbar(ks, ys, yerr=es if tq else None, marker="o" if tq else "s", ms=4, capsize=2,
                            lw=2 if tq else 1.2, ls="-" if tq else "--", color=color[key(r["method"])],
                            label=r["method"])
            ax.set_xscale("log", base=2)
            ax.set_xticks(KS)
            ax.set_xticklabels([str(k) for k in KS])
            lows = [r["recall_1_at_k"]["1"] for r in rows if r["dataset"] == ds and r["bits"] == b
                    and not r.get("error") and r["recall_1_at_k"].get("1") is not None]
            ax.set_ylim(max(0.0, (int(min(lows or [0]) * 10) - 1) / 10.0), 1.01)
            ax.grid(alpha=0.3)
            ax.set_title("%s, %d bits" % (ds, b))
            ax.set_xlabel("k")
            ax.set_ylabel("recall@1@k")
    handles, labels = {}, []
    for ax in axes.flat:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            f = family(lab)
            if f not in handles:
                handles[f] = h
                labels.append(f)
    fig.legend([handles[f] for f in labels], labels, loc="center right", fontsize=8, frameon=False)
    fig.suptitle("recall@1@k (true top-1 among the top k), inner product, scored from codes; "
                 "tq: mean ± std over seeds", fontsize=10)
    fig.tight_layout(rect=(0, 0, 0.78, 0.96))
    p = os.path.join(out_dir, stem + "-fig5.png")
    fig.savefig(p, dpi=110)
    plt.close(fig)
    plots["fig5"] = p

    from matplotlib.lines import Line2D
    fig, axes = plt.subplots(1, len(datasets), figsize=(5.0 * len(datasets) + 2.8, 4.4), squeeze=False)
    used = []
    for i, ds in enumerate(datasets):
        ax = axes[0][i]
        pts = [r for r in rows if r["dataset"] == ds and not r.get("error") and r.get("qps")
               and r["recall_10_at_10"] is not None]
        for r in pts:
            ax.scatter([r["qps"]], [r["recall_10_at_10"]], color=color[key(r["method"])],
                       marker="o" if r["bits"] == bits[0] else "^", s=46 if r["kind"] == "tq" else 30,
                       edgecolors="k" if r["kind"] == "tq" else "none", zorder=3)
            if key(r["method"]) not in used:
                used.append(key(r["method"]))
        ax.set_xscale("log")
        lo = min([r["recall_10_at_10"] for r in pts] or [0])
        ax.set_ylim(max(0.0, (int(lo * 10) - 1) / 10.0), 1.01)
        ax.grid(alpha=0.3)
        ax.set_xlabel("queries per second (1 thread, k = 10)")
        ax.set_ylabel("recall@10@10")
        ax.set_title(ds)
    handles = [Line2D([], [], ls="none", marker="o", color=color[m], markeredgecolor="k" if m.startswith("tq")
                      else color[m], label=m) for m in used]
    handles += [Line2D([], [], ls="none", marker=mk, color="w", markeredgecolor="k", label="%d bits" % bb)
                for mk, bb in zip(("o", "^"), bits)]
    fig.legend(handles=handles, loc="center right", fontsize=8, frameon=False)
    fig.suptitle("recall@10@10 against single-thread queries per second (tq: black edge; median over seeds)",
                 fontsize=10)
    fig.tight_layout(rect=(0, 0, 0.76, 0.95))
    p = os.path.join(out_dir, stem + "-qps.png")
    fig.savefig(p, dpi=110)
    plt.close(fig)
    plots["qps"] = p
    return plots


def main():
    ap = argparse.ArgumentParser(description="tq recall on real data (Figure 5) side by side with FAISS")
    ap.add_argument("--quick", action="store_true", help="200 queries, FAISS trained on 20,000 rows")
    ap.add_argument("--seeds", default="0,1,2", help="tq seeds (default %(default)s)")
    ap.add_argument("--faiss-rr-seeds", default="%d,1,2" % RR_DEFAULT_SEED,
                    help="seeds of FAISS's random rotation for its RR methods (default %(default)s; the first is "
                    "FAISS's own)")
    ap.add_argument("--datasets", default="fmnist,minilm", help="comma list of fmnist, minilm (default both)")
    ap.add_argument("--bits", default="2,4", help="bit widths (default %(default)s)")
    ap.add_argument("--build-dir", default=os.path.join(ROOT, "build"))
    ap.add_argument("--tq", default=None, help="a tq binary to use as it is (no build); default: build "
                    "BUILD_DIR/tq")
    ap.add_argument("--out-dir", default=os.path.join(HERE, "results"))
    ap.add_argument("--no-faiss", action="store_true", help="tq only")
    ap.add_argument("--refresh-faiss", action="store_true", help="remeasure FAISS instead of reading its cache")
    ap.add_argument("--rabitq-float", action="store_true",
                    help="also FAISS RR,RaBitQ{b} with float queries (qb=0): slow, ~4 queries/s")
    ap.add_argument("--peer", help=argparse.SUPPRESS)
    ap.add_argument("--stand-in", action="store_true", help=argparse.SUPPRESS)  # plumbing tests only
    ap.add_argument("--from-json", metavar="RESULT.json",
                    help="measure nothing: write the report, plots and summary again from the records of an earlier "
                    "run's JSON (same file names, in --out-dir)")
    args = ap.parse_args()
    if args.peer:
        return peer_main(args.peer)
    if args.from_json:
        with open(args.from_json) as f:
            old = json.load(f)
        meta = next((r for r in old if r.get("type") == "meta"), None)
        if meta is None:
            sys.exit("recall.py: %s has no meta record (not a recall.py result)" % args.from_json)
        records = [r for r in old if r.get("type") not in ("meta", "summary", "gap_to_rabitq")]
        meta["rendered_again"] = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
        stem = os.path.splitext(os.path.basename(args.from_json))[0]
        return write_outputs(meta, records, stem, args.out_dir)

    t_start = time.time()
    q = args.quick
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    rr_seeds = [int(s) for s in args.faiss_rr_seeds.split(",") if s.strip()] or [RR_DEFAULT_SEED]
    bits_list = [int(b) for b in args.bits.split(",") if b.strip()]
    want = [s.strip() for s in args.datasets.split(",") if s.strip()]
    p = {"nq": 200 if q else 1000, "nq_time": 100 if q else 200, "reps": 3 if q else 5, "faiss_reps": 3,
         "train_n": 20000 if q else 0}
    threads_recall = os.cpu_count() or 1
    notes = []

    check_tools(args.tq is None)
    exe = os.path.abspath(args.tq) if args.tq else build_cli(os.path.abspath(args.build_dir))
    has_index, why = tq_has_index(exe)
    if not has_index:
        notes.append("tq not measured: this tq has no `index build` / `search` / `eval recall` yet (%s)" % why)
        log("tq rows skipped: " + why)
    tq_info = subprocess.run([exe, "info"], capture_output=True, text=True).stdout.strip().splitlines()
    stand_in = args.stand_in or any("stand-in" in line for line in tq_info)
    vers = peer_versions()
    missing = [k for k in ("numpy", "faiss") if not vers.get(k)] if not args.no_faiss else []
    if missing:
        notes.append("Not measured: %s is not installed (%s)." % (" and ".join(missing), INSTALL_HINT))
        log("MISSING: %s -- FAISS rows are skipped. Install with: %s" % (", ".join(missing), INSTALL_HINT))
    if not vers.get("matplotlib"):
        log("matplotlib is not installed: no plots (pip install matplotlib)")
        notes.append("No plots: matplotlib is not installed (pip install matplotlib).")
    if vers.get("faiss"):
        fv = tuple(int(x) for x in vers["faiss"].split(".")[:2] if x.isdigit())
        if fv < (1, 15):
            log("faiss %s is older than 1.15: SQtqmse/SQtq (TurboQuant) may be missing" % vers["faiss"])

    have = prepare_data(want, notes)
    records = []
    work = tempfile.mkdtemp(prefix="tq-recall-")
    try:
        for name, paths in have.items():
            n_gt, _ = vecs_shape(paths["gt"])
            n_q, _ = vecs_shape(paths["queries"])
            nq = min(p["nq"], n_gt, n_q)
            paths["queries_run"] = os.path.join(work, name + "-queries.fvecs")
            paths["gt_run"] = os.path.join(work, name + "-gt.ivecs")
            paths["queries_time"] = os.path.join(work, name + "-queries-time.fvecs")
            head_rows(paths["queries"], paths["queries_run"], nq)
            head_rows(paths["gt"], paths["gt_run"], nq)
            head_rows(paths["queries"], paths["queries_time"], min(p["nq_time"], nq))
            paths["nq"] = nq
            if has_index:
                run_tq(exe, name, paths, nq, min(p["nq_time"], nq), bits_list, seeds, p["reps"], work,
                       threads_recall, records)
        if have and not args.no_faiss and vers.get("numpy"):
            penv, removed = peer_env()
            spec = {"datasets": [{"name": nm, "base": pth["base"], "queries": pth["queries"], "gt": pth["gt"],
                                  "nq": pth["nq"], "nq_time": min(p["nq_time"], pth["nq"])}
                                 for nm, pth in have.items()],
                    "bits": bits_list, "train_n": p["train_n"], "reps": p["faiss_reps"], "refresh": args.refresh_faiss,
                    "faiss_cache": os.path.join(cache_dir(), "recall-faiss"), "threads_recall": threads_recall,
                    "rabitq_float": args.rabitq_float, "rr_seeds": rr_seeds}
            records += run_peer(spec, penv)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    meta = {"type": "meta", "date": datetime.datetime.now().strftime("%Y-%m-%d %H:%M"), "quick": q,
            "host": platform.node(), "cpu": cpu_model(), "arch": platform.machine(), "cores": os.cpu_count(),
            "python": platform.python_version(), "versions": vers, "params": p, "nq_time": p["nq_time"],
            "reps": p["reps"], "train_n": p["train_n"], "seeds": seeds, "rr_seeds": rr_seeds, "bits": bits_list, "kmax": KMAX,
            "threads_recall": threads_recall, "tq_exe": exe, "tq_info": "; ".join(tq_info[-1:]),
            "tq_stand_in": stand_in, "tq_commit": git_state(), "cache_dir": cache_dir(),
            "command": " ".join(["python3", "bench/recall.py"] + sys.argv[1:]), "notes": notes, "machine_note": "2 cores shared with other jobs; timed figures are single-thread"}
    stem = "recall-%s%s" % (datetime.date.today().isoformat(), "-quick" if q else "")
    meta["elapsed_s"] = time.time() - t_start
    return write_outputs(meta, records, stem, args.out_dir)


def write_outputs(meta, records, stem, out_dir):
    """The JSON (meta, records, summary rows, gaps), the markdown report and the plots, from the records."""
    rows = aggregate(records)
    os.makedirs(out_dir, exist_ok=True)
    plots = make_plots(rows, stem, out_dir) if rows else {}
    meta["plots"] = {k: os.path.basename(v) for k, v in plots.items()}
    jpath = os.path.join(out_dir, stem + ".json")
    with open(jpath, "w") as f:  # one record per line: small, and diffs well
        f.write("[\n" + ",\n".join(json.dumps(r, sort_keys=True) for r in [meta] + records +
                                    [dict(r, type="summary") for r in rows] +
                                    [dict(g, type="gap_to_rabitq") for g in gaps(rows)]) + "\n]\n")
    md = report(meta, records, rows, plots)
    mpath = os.path.join(out_dir, stem + ".md")
    with open(mpath, "w") as f:
        f.write(md)
    print(md)
    log("wrote %s and %s%s in %.0f s" % (jpath, mpath, (" and " + ", ".join(plots.values())) if plots else "",
                                          meta["elapsed_s"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
