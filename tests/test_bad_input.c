/*
 * test_bad_input.c — every bad input the project tries, in one table, and
 * the document docs/bad-input.md generated from it.
 *
 * The rule under test (README, tq.h): bad input (NaN, Inf, zero vectors,
 * wrong dimensions, truncated or corrupted files, absurd sizes) gets a clear
 * error and loses no stored data; the library never aborts, prints or exits.
 *
 * Each case is a row of `cases[]`: an area, what the bad input is, a function
 * that makes one real call with it, the status that call must return and a
 * piece of the tq_last_error() text it must leave. The function calls
 * took(call) to capture the status and message of that call, then verifies
 * what it can of the state after it (an index's size and search results, a
 * KV cache's length and attention output, caller buffers pre-filled with a
 * sentinel, the bytes of files on disk) through state(ok, phrase), whose
 * phrases make up the "state after" column: the document says exactly what
 * was checked. Every case runs with stdout and stderr redirected to a file
 * that must stay empty (the library prints nothing).
 *
 * Run without arguments (as ctest does) it runs every case and checks that
 * docs/bad-input.md is byte for byte what it would print; with --markdown it
 * prints that document instead:
 *     build/test_bad_input --markdown > docs/bad-input.md
 * Messages are made machine-independent before they are printed: the work
 * directory becomes <tmp>, temp-file names <path>.tmp.<pid>.<n>, and the
 * 8-digit hexadecimal checksums and fingerprints ("stored", "computed",
 * "fingerprint" ...) <crc> (a quantizer's bytes hold codebooks computed with
 * libm).
 *
 * HDF5 cases depend on libhdf5 (tq_build_info() says "input: hdf5 ..." or
 * "input: no-hdf5"). Built without it they expect "built without HDF5
 * support" and the comparison with the document skips the HDF5 table, which
 * is generated from a build with libhdf5.
 */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <fcntl.h>
#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "io/crc32c.h"
#include "tq.h"

#if defined(__GNUC__)
#define PRINTF_2_3 __attribute__((format(printf, 2, 3)))
#else
#define PRINTF_2_3
#endif

#define DIM 32u /* the dimension of the fixtures */
#define KV_H 2u
#define KV_D 16u
#define KV_N 12u /* tokens in the KV fixture */
#define IX_N 40u /* vectors in the index fixture */

/* ================================================================ helpers */

static char g_dir[400]; /* this process's own work directory */
static int g_have_hdf5;

static const char *path(const char *name) {
    static char buf[8][600];
    static int k;
    k = (k + 1) % 8;
    snprintf(buf[k], sizeof buf[k], "%s/%s", g_dir, name);
    return buf[k];
}

static void put_file(const char *p, const void *b, size_t n) {
    FILE *f = fopen(p, "wb");
    CHECK(f != NULL, "cannot write %s", p);
    if (!f) return;
    CHECK(fwrite(b, 1, n, f) == n, "short write to %s", p);
    fclose(f);
}

/* The whole file (malloc'd, NULL if unreadable); *n its length. */
static uint8_t *get_file(const char *p, size_t *n) {
    *n = 0;
    FILE *f = fopen(p, "rb");
    if (!f) return NULL;
    size_t cap = 4096, len = 0;
    uint8_t *b = malloc(cap);
    for (;;) {
        if (!b) break;
        len += fread(b + len, 1, cap - len, f);
        if (len < cap) break;
        uint8_t *nb = realloc(b, cap * 2);
        if (!nb) {
            free(b);
            b = NULL;
            break;
        }
        b = nb;
        cap *= 2;
    }
    fclose(f);
    *n = len;
    return b;
}

static int file_is(const char *p, const uint8_t *b, size_t n) {
    size_t m;
    uint8_t *f = get_file(p, &m);
    int same = f && m == n && memcmp(f, b, n) == 0;
    free(f);
    return same;
}

static int exists(const char *p) {
    struct stat st;
    return stat(p, &st) == 0;
}

static int is_dir(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static int entries(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) n += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
    closedir(d);
    return n;
}

static void rm_tree(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    char p[1024];
    while ((e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        if (is_dir(p)) rm_tree(p);
        else unlink(p);
    }
    closedir(d);
    rmdir(dir);
}

static void put32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static void put64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static uint64_t get64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

/* n floats, deterministic, uniform in [-1, 1) */
static float *gen(size_t n, uint64_t seed) {
    float *x = malloc(n * sizeof(float));
    uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
    for (size_t i = 0; x && i < n; i++) {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        x[i] = (float)((double)(s >> 40) / (double)(1u << 23)) - 1.0f;
    }
    return x;
}

static int all_bytes(const void *p, size_t n, uint8_t v) {
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++)
        if (b[i] != v) return 0;
    return 1;
}

#define SENT 0xA5u /* what output buffers are filled with before a call */

/* ============================================================ the harness */

static char g_msg[600];     /* tq_last_error() right after the call under test */
static tq_status g_status;  /* its status */
static int g_took;          /* took() calls in this case */
static char g_state[600];   /* the state phrases, "; "-separated */
static char g_state_bad[300];

/* A precondition of the case itself (no phrase in the document). */
static void require(int ok, const char *what) {
    if (!ok && !g_state_bad[0]) snprintf(g_state_bad, sizeof g_state_bad, "setup: %s", what);
}

/* Capture the call under test: its status and message. */
static tq_status took(tq_status s) {
    snprintf(g_msg, sizeof g_msg, "%s", tq_last_error());
    g_status = s;
    g_took++;
    return s;
}

/* One phrase of the "state after" column, and whether it held. */
static void state(int ok, const char *fmt, ...) PRINTF_2_3;
static void state(int ok, const char *fmt, ...) {
    char phrase[300];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(phrase, sizeof phrase, fmt, ap);
    va_end(ap);
    size_t len = strlen(g_state);
    snprintf(g_state + len, sizeof g_state - len, "%s%s", len ? "; " : "", phrase);
    if (!ok && !g_state_bad[0]) snprintf(g_state_bad, sizeof g_state_bad, "%s", phrase);
}

/* ============================================================ fixtures */

static tq_quantizer *g_q;      /* MSE, DIM, 4 bits, Hadamard, seed 7 */
static tq_quantizer *g_q2;     /* the same but seed 8: same code size, another rotation */
static tq_quantizer *g_q2bit;  /* MSE, DIM, 2 bits: another code size */
static tq_quantizer *g_qjl16;  /* QJL, 16 dims: a quantizer file shorter than an index header */
static size_t g_cs;            /* g_q's code size */
static uint8_t *g_qz, *g_ca, *g_ixf, *g_qjlz;
static size_t g_qz_len, g_ca_len, g_ixf_len, g_qjlz_len;
static const int64_t g_ids_file[6] = {1, 2, 3, 4, 5, 6};
static uint8_t *g_idsf;
static size_t g_idsf_len;

static tq_index *g_ix;         /* IX_N vectors, ids 0..IX_N-1 */
static float *g_ixq;           /* 2 queries */
static int64_t g_ix_ids[10];   /* their top 5 */
static float g_ix_sc[10];

typedef struct kv_snap {        /* what a cache answers one query token */
    float out[2 * KV_H * KV_D];
    float logits[2 * KV_H * KV_N];
} kv_snap;

static tq_kv *g_kv;            /* KV_N tokens; window 4, sinks 4 */
static tq_kv_config g_kvc;
static float *g_kvk, *g_kvv;   /* its tokens */
static float *g_kvq;           /* one query token, 2 * KV_H heads */
static kv_snap g_kv_snap;

static uint8_t *ser(const tq_quantizer *q, size_t *len) {
    *len = 0;
    size_t n = 0, w = 0;
    if (tq_quantizer_serialized_size(q, &n) != TQ_OK) return NULL;
    uint8_t *b = malloc(n);
    if (b && tq_quantizer_serialize(q, b, n, &w) != TQ_OK) {
        free(b);
        return NULL;
    }
    *len = w;
    return b;
}

static int ix_top5(const tq_index *ix, int64_t ids[10], float sc[10]) {
    return tq_index_search(ix, g_ixq, 2, 5, NULL, ids, sc) == TQ_OK;
}

/* g_ix still holds what it held */
static void ix_unchanged(void) {
    int64_t ids[10];
    float sc[10];
    int ok = tq_index_size(g_ix) == IX_N && ix_top5(g_ix, ids, sc) && !memcmp(ids, g_ix_ids, sizeof ids) &&
             !memcmp(sc, g_ix_sc, sizeof sc);
    state(ok, "index unchanged (%u vectors, same top-5 ids and scores)", IX_N);
}

static int kv_take(const tq_kv *kv, kv_snap *s) {
    return tq_kv_attend(kv, g_kvq, 1, 2 * KV_H, NULL, 0.0f, s->out) == TQ_OK &&
           tq_kv_logits(kv, g_kvq, 2 * KV_H, KV_N, 0.0f, s->logits) == TQ_OK;
}

/* kv (of KV_N tokens) still answers what it answered before */
static void kv_unchanged(const tq_kv *kv, const kv_snap *before) {
    kv_snap now;
    int ok = tq_kv_length(kv) == KV_N && kv_take(kv, &now) && !memcmp(&now, before, sizeof now);
    state(ok, "cache unchanged (%u tokens, same attention output and logits)", KV_N);
}

/* A cache with g_kv's config (changed by edit, when given) and tokens. */
static tq_kv *make_kv(void (*edit)(tq_kv_config *)) {
    tq_kv_config c = g_kvc;
    if (edit) edit(&c);
    tq_kv *kv = NULL;
    if (tq_kv_create(&c, &kv) != TQ_OK) return NULL;
    if (tq_kv_append(kv, g_kvk, g_kvv, KV_N) != TQ_OK) {
        tq_kv_free(kv);
        return NULL;
    }
    return kv;
}

/* The HDF5 fixture: a root group holding a 2 x 3 float32 dataset "test" and an empty group "grp", written
 * once with libhdf5 1.10 (H5Pset_libver_bounds V110, compact layout) and kept here as its non-zero runs. */
static const struct {
    unsigned off;
    const char *hex;
} h5_runs[] = {
    {0, "894844460d0a1a0a030808"},
    {20, "ffffffffffffffff6a0200000000000030000000000000004c841edf4f484452022034f20c6b34f20c6b34f20c6b34f20c6b7802"
         "1200000000ffffffffffffffffffffffffffffffff0a0200010000060f000001000474657374c300000000000000060e00000100"
         "03677270e7010000000000000033"},
    {191, "ac840b004f48445202011801012400000202010102000000000000000300000000000000020000000000000003000000000000"
          "000314000111201f000400000000002000170800177f000000050200010309081c0000040018000000803f00000040000040400000"
          "80400000a0400000c04000ae"},
    {483, "6335074f4f484452020078021200000000ffffffffffffffffffffffffffffffff0a02000100000058"},
    {614, "c5b9c8ac"},
};
#define H5_LEN 618u

static void write_h5_fixture(const char *p) {
    uint8_t b[H5_LEN];
    memset(b, 0, sizeof b);
    for (size_t r = 0; r < sizeof h5_runs / sizeof h5_runs[0]; r++) {
        const char *h = h5_runs[r].hex;
        for (size_t i = 0; h[2 * i]; i++) {
            unsigned v;
            sscanf(h + 2 * i, "%2x", &v);
            b[h5_runs[r].off + i] = (uint8_t)v;
        }
    }
    put_file(p, b, sizeof b);
}

static int setup(void) {
    mkdir(TQ_TEST_TMP_DIR, 0777);
    snprintf(g_dir, sizeof g_dir, "%s/bad_input-%ld", TQ_TEST_TMP_DIR, (long)getpid());
    rm_tree(g_dir);
    if (mkdir(g_dir, 0777) != 0) {
        CHECK(0, "cannot make %s", g_dir);
        return 0;
    }
    mkdir(path("adir"), 0777);
    g_have_hdf5 = strstr(tq_build_info(), "input: hdf5") != NULL;

    tq_config c;
    tq_config_init(&c, DIM, 4);
    c.seed = 7;
    CHECK_OK(tq_quantizer_create(&c, &g_q));
    c.seed = 8;
    CHECK_OK(tq_quantizer_create(&c, &g_q2));
    tq_config_init(&c, DIM, 2);
    CHECK_OK(tq_quantizer_create(&c, &g_q2bit));
    tq_config_init(&c, 16, 1);
    c.variant = TQ_VARIANT_QJL;
    c.qjl = TQ_QJL_STRUCTURED;
    CHECK_OK(tq_quantizer_create(&c, &g_qjl16));
    if (!g_q || !g_q2 || !g_q2bit || !g_qjl16) return 0;
    g_cs = tq_quantizer_code_size(g_q);
    g_qz = ser(g_q, &g_qz_len);
    g_qjlz = ser(g_qjl16, &g_qjlz_len);
    CHECK_OK(tq_quantizer_save(g_q, path("q.tqqz")));
    CHECK_OK(tq_quantizer_save(g_qjl16, path("qjl16.tqqz")));

    float *x = gen(10 * DIM, 1);
    uint8_t *codes = malloc(10 * g_cs);
    CHECK_OK(tq_encode(g_q, x, 10, codes));
    CHECK_OK(tq_codes_save(g_q, codes, 10, path("c.tqca")));
    g_ca = get_file(path("c.tqca"), &g_ca_len);
    free(x);
    free(codes);

    tq_index_config ic;
    tq_index_config_init(&ic, DIM, 4);
    CHECK_OK(tq_index_create(&ic, &g_ix));
    float *base = gen(IX_N * DIM, 2);
    g_ixq = gen(2 * DIM, 3);
    if (g_ix) {
        CHECK_OK(tq_index_add(g_ix, base, IX_N, NULL, NULL));
        CHECK(ix_top5(g_ix, g_ix_ids, g_ix_sc), "index search: %s", tq_last_error());
        CHECK_OK(tq_index_save(g_ix, path("ix.tqi")));
    }
    free(base);
    g_ixf = get_file(path("ix.tqi"), &g_ixf_len);

    CHECK_OK(tq_write_ids(path("ids.ivecs"), g_ids_file, 2, 3));
    g_idsf = get_file(path("ids.ivecs"), &g_idsf_len);
    write_h5_fixture(path("t.h5"));

    tq_kv_config_init(&g_kvc, KV_H, KV_D, 4, 4);
    g_kvc.window = 4;
    g_kvk = gen(KV_N * KV_H * KV_D, 4);
    g_kvv = gen(KV_N * KV_H * KV_D, 5);
    g_kvq = gen(2 * KV_H * KV_D, 6);
    g_kv = make_kv(NULL);
    CHECK(g_kv != NULL, "kv fixture: %s", tq_last_error());
    if (g_kv) CHECK(kv_take(g_kv, &g_kv_snap), "kv snapshot: %s", tq_last_error());
    return g_qz && g_ca && g_ixf && g_qjlz && g_idsf && g_ix && g_kv;
}

static void teardown(void) {
    tq_quantizer_free(g_q);
    tq_quantizer_free(g_q2);
    tq_quantizer_free(g_q2bit);
    tq_quantizer_free(g_qjl16);
    tq_index_free(g_ix);
    tq_kv_free(g_kv);
    free(g_qz);
    free(g_qjlz);
    free(g_ca);
    free(g_ixf);
    free(g_idsf);
    free(g_ixq);
    free(g_kvk);
    free(g_kvv);
    free(g_kvq);
    rm_tree(g_dir);
}

/* ======================================================= quantizer config */

static tq_status c_qcfg(int arg) {
    static const uint32_t dup[2] = {3, 3}, far[2] = {5, 40}, two[2] = {1, 2};
    tq_config c;
    tq_config_init(&c, DIM, 4);
    switch (arg) {
    case 0: c.dim = 0; break;
    case 1: c.dim = TQ_MAX_DIM + 1; break;
    case 2: c.dim = TQ_MAX_DENSE_DIM + 1; c.rotation = TQ_ROTATION_DENSE; break;
    case 3: c.dim = 8192; c.variant = TQ_VARIANT_PROD; c.qjl = TQ_QJL_DENSE; break;
    case 4: c.bits = 0; break;
    case 5: c.bits = 9; break;
    case 6: c.variant = TQ_VARIANT_QJL; c.bits = 2; break;
    case 7: c.dim = 1; break;
    case 8: c.variant = (tq_variant)7; break;
    case 9: c.rotation = (tq_rotation_kind)3; break;
    case 10: c.variant = TQ_VARIANT_PROD; c.qjl = (tq_qjl_kind)5; break;
    case 11: c.norm = (tq_norm_mode)3; break;
    case 12: c.variant = TQ_VARIANT_UNIFORM; c.uniform_mode = (tq_uniform_mode)2; break;
    case 13: c.variant = TQ_VARIANT_UNIFORM; c.uniform_scope = (tq_uniform_scope)3; break;
    case 14: c.rounds = 9; break;
    case 15: c.variant = TQ_VARIANT_PROD; c.norm = TQ_NORM_UNIT; break;
    case 16: c.outlier_count = DIM; c.outlier_bits = 5; break;
    case 17: c.outlier_count = 100; c.outlier_bits = 5; break;
    case 18: c.outlier_count = 2; c.outlier_bits = 5; c.outlier_channels = dup; break;
    case 19: c.outlier_count = 2; c.outlier_bits = 5; c.outlier_channels = far; break;
    case 20: c.outlier_channels = two; break;
    case 21: c.outlier_count = 4; c.outlier_bits = 0; break;
    case 22: c.outlier_count = 4; c.outlier_bits = 9; break;
    case 23: c.variant = TQ_VARIANT_UNIFORM; c.uniform_scope = TQ_UNIFORM_GROUP; c.group_size = 0; break;
    case 24: c.variant = TQ_VARIANT_UNIFORM; c.uniform_scope = TQ_UNIFORM_GROUP; c.group_size = 5; break;
    case 25: c.variant = TQ_VARIANT_PROD; c.bits = 1; c.outlier_count = 1; c.outlier_bits = 2; break;
    }
    tq_quantizer *q = g_q; /* not NULL: the call must clear it */
    tq_status s = took(tq_quantizer_create(&c, &q));
    state(q == NULL, "no quantizer; `*out` = NULL");
    if (s == TQ_OK) tq_quantizer_free(q);
    return s;
}

static tq_status c_qnull(int arg) {
    tq_config c;
    tq_config_init(&c, DIM, 4);
    tq_quantizer *q = g_q;
    if (arg == 0) {
        tq_status s = took(tq_quantizer_create(NULL, &q));
        state(q == NULL, "`*out` = NULL");
        return s;
    }
    if (arg == 1) {
        tq_status s = took(tq_quantizer_create(&c, NULL));
        state(1, "no quantizer");
        return s;
    }
    memset(&c, SENT, sizeof c);
    tq_status s = took(tq_quantizer_get_config(NULL, &c));
    state(all_bytes(&c, sizeof c, SENT), "output untouched");
    return s;
}

static tq_status c_setbits(int arg) {
    static const uint32_t chans[2] = {0, 5};
    tq_config c, before;
    tq_config_init(&c, 16, 3);
    c.outlier_count = 2;
    c.outlier_bits = 4;
    c.outlier_channels = chans;
    before = c;
    static const double bits[] = {0.5, 8.5, NAN, 3.01};
    if (arg == 4) {
        tq_status s = took(tq_config_set_bits(NULL, 3.5));
        state(1, "no effect");
        return s;
    }
    tq_status s = took(tq_config_set_bits(&c, bits[arg]));
    state(!memcmp(&c, &before, sizeof c), "config unchanged (bits, split and channel list)");
    return s;
}

static tq_quantizer *per_channel(uint32_t dim, uint32_t bits) {
    tq_config c;
    tq_config_init(&c, dim, bits);
    c.variant = TQ_VARIANT_UNIFORM;
    c.uniform_scope = TQ_UNIFORM_PER_CHANNEL;
    tq_quantizer *q = NULL;
    if (tq_quantizer_create(&c, &q) != TQ_OK) return NULL;
    return q;
}

static tq_status c_calib(int arg) {
    float *x = gen(4 * DIM, 10);
    uint8_t codes[64];
    tq_status s;
    if (arg == 0) {
        size_t l1, l2;
        uint8_t *b1 = ser(g_q, &l1);
        s = took(tq_quantizer_calibrate(g_q, x, 4));
        uint8_t *b2 = ser(g_q, &l2);
        state(b1 && b2 && l1 == l2 && !memcmp(b1, b2, l1), "quantizer unchanged (same serialized bytes)");
        free(b1);
        free(b2);
        free(x);
        return s;
    }
    tq_quantizer *pc = per_channel(DIM, 4);
    if (!pc) {
        free(x);
        return took(TQ_ERR_NOMEM);
    }
    memset(codes, SENT, sizeof codes);
    switch (arg) {
    case 1: s = took(tq_quantizer_calibrate(pc, x, 0)); break;
    case 2: x[3 * DIM + 2] = NAN; s = took(tq_quantizer_calibrate(pc, x, 4)); break;
    case 3: s = took(tq_quantizer_calibrate(pc, x, SIZE_MAX / 2)); break;
    case 4: s = took(tq_quantizer_calibrate(pc, x, SIZE_MAX / (4 * DIM) + 1)); break;
    default: s = took(tq_encode(pc, x, 1, codes)); break;
    }
    if (arg == 5) state(all_bytes(codes, sizeof codes, SENT), "output untouched");
    else state(tq_encode(pc, x, 1, codes) == TQ_ERR_STATE, "still uncalibrated (tq_encode: TQ_ERR_STATE)");
    tq_quantizer_free(pc);
    free(x);
    return s;
}

/* ===================================================== encode and score */

static tq_status c_enc(int arg) {
    float *x = gen(3 * DIM, 11);
    const tq_quantizer *q = g_q;
    tq_quantizer *uq = NULL;
    if (arg == 8 || arg == 10 || arg == 11) {
        tq_config c;
        tq_config_init(&c, DIM, arg == 11 ? 1 : arg == 10 ? 2 : 4);
        c.rotation = TQ_ROTATION_NONE;
        if (arg == 8) {
            c.variant = TQ_VARIANT_UNIFORM;
            c.uniform_scope = TQ_UNIFORM_GROUP;
            c.group_size = 8;
        } else if (arg == 10) {
            c.norm = TQ_NORM_UNBIASED;
        } else {
            c.variant = TQ_VARIANT_UNIFORM;
        }
        if (tq_quantizer_create(&c, &uq) != TQ_OK) {
            free(x);
            return took(TQ_ERR_NOMEM);
        }
        q = uq;
    }
    size_t cs = tq_quantizer_code_size(q);
    uint8_t *codes = malloc(3 * cs);
    memset(codes, SENT, 3 * cs);
    tq_status s = TQ_OK;
    switch (arg) {
    case 0: s = took(tq_encode(NULL, x, 3, codes)); break;
    case 1: s = took(tq_encode(q, NULL, 3, codes)); break;
    case 2: s = took(tq_encode(q, x, 3, NULL)); break;
    case 3: x[1 * DIM + 5] = NAN; s = took(tq_encode(q, x, 3, codes)); break;
    case 4: x[2 * DIM + 0] = -INFINITY; s = took(tq_encode(q, x, 3, codes)); break;
    case 5:
        for (uint32_t j = 0; j < DIM; j++) x[j] = 1e38f;
        s = took(tq_encode(q, x, 3, codes));
        break;
    case 6: s = took(tq_encode(q, x, SIZE_MAX / 2, codes)); break;
    case 7: s = took(tq_encode(q, x, SIZE_MAX / (4 * DIM) + 1, codes)); break;
    case 8: x[1 * DIM + 9] = 1e6f; s = took(tq_encode(q, x, 3, codes)); break;
    case 9: s = took(tq_encode(q, NULL, 0, NULL)); break;
    case 10:
    case 11:
        for (uint32_t j = 0; j < DIM; j++) x[DIM + j] = 0.0f;
        x[DIM + 3] = arg == 10 ? 1e38f : 2e38f;
        s = took(tq_encode(q, x, 3, codes));
        break;
    }
    state(all_bytes(codes, 3 * cs, SENT), "output untouched");
    free(codes);
    free(x);
    tq_quantizer_free(uq);
    return s;
}

/* Zero vectors through quantizers of each variant. */
static tq_status c_zero(int arg) {
    tq_config c;
    tq_config_init(&c, DIM, 3);
    if (arg == 1) c.variant = TQ_VARIANT_PROD;
    if (arg == 2) {
        c.variant = TQ_VARIANT_QJL;
        c.bits = 1;
    }
    if (arg == 3) c.variant = TQ_VARIANT_UNIFORM;
    tq_quantizer *q = NULL;
    tq_query *pq = NULL;
    if (tq_quantizer_create(&c, &q) != TQ_OK || tq_query_create(q, &pq) != TQ_OK) {
        tq_quantizer_free(q);
        return took(TQ_ERR_NOMEM);
    }
    float zero[DIM] = {0}, back[DIM];
    float *qv = gen(DIM, 12);
    size_t cs = tq_quantizer_code_size(q);
    uint8_t *rec = malloc(cs);
    memset(rec, SENT, cs);
    tq_status s = took(tq_encode(q, zero, 1, rec));
    state(all_bytes(rec, cs, 0), "the record is all zero bytes");
    memset(back, SENT, sizeof back);
    int ok = tq_decode(q, rec, 1, back) == TQ_OK;
    for (uint32_t j = 0; j < DIM; j++) ok &= back[j] == 0.0f;
    state(ok, "decodes to the zero vector");
    double qq = 0.0;
    for (uint32_t j = 0; j < DIM; j++) qq += (double)qv[j] * qv[j];
    float ip = -1.0f, l2 = -1.0f;
    ok = tq_query_set(pq, qv) == TQ_OK && tq_score(q, pq, TQ_METRIC_IP, rec, 1, &ip) == TQ_OK &&
         tq_score(q, pq, TQ_METRIC_L2, rec, 1, &l2) == TQ_OK;
    state(ok && ip == 0.0f && fabs(l2 - qq) <= 1e-5 * qq, "scores 0 (IP) and ‖q‖² (L2)");
    free(rec);
    free(qv);
    tq_query_free(pq);
    tq_quantizer_free(q);
    return s;
}

static tq_status c_dec(int arg) {
    uint8_t rec[64];
    float out[DIM];
    memset(out, SENT, sizeof out);
    memset(rec, 0xFF, sizeof rec);
    tq_status s = TQ_OK;
    switch (arg) {
    case 0: s = took(tq_decode(g_q, NULL, 1, out)); break;
    case 1: s = took(tq_decode(g_q, rec, 1, NULL)); break;
    case 2: s = took(tq_decode(g_q, rec, SIZE_MAX / (4 * DIM) + 1, out)); break;
    case 3: {
        s = took(tq_decode(g_q, rec, 1, out));
        int nan = 1;
        for (uint32_t j = 0; j < DIM; j++) nan &= isnan(out[j]) != 0;
        state(nan, "every value decodes to NaN: records are not validated (bytes 0xFF make a NaN factor)");
        return s;
    }
    }
    state(all_bytes(out, sizeof out, SENT), "output untouched");
    return s;
}

static tq_status c_query(int arg) {
    tq_query *pq = (tq_query *)g_q;
    if (arg == 0) {
        tq_status s = took(tq_query_create(NULL, &pq));
        state(pq == (tq_query *)g_q, "`*out` untouched");
        return s;
    }
    if (arg == 1) {
        tq_status s = took(tq_query_create(g_q, NULL));
        state(1, "no query");
        return s;
    }
    pq = NULL;
    float *qv = gen(DIM, 13), *x = gen(3 * DIM, 14), bad[DIM];
    uint8_t codes[3 * 64];
    float s1[3], s2[3];
    int ok = tq_query_create(g_q, &pq) == TQ_OK && tq_query_set(pq, qv) == TQ_OK &&
             tq_encode(g_q, x, 3, codes) == TQ_OK && tq_score(g_q, pq, TQ_METRIC_IP, codes, 3, s1) == TQ_OK;
    memcpy(bad, qv, sizeof bad);
    tq_status s;
    if (arg == 2) bad[7] = NAN;
    if (arg == 3)
        for (uint32_t j = 0; j < DIM; j++) bad[j] = 1e38f;
    if (arg == 4) s = took(tq_query_set(pq, NULL));
    else s = took(tq_query_set(pq, bad));
    ok = ok && tq_score(g_q, pq, TQ_METRIC_IP, codes, 3, s2) == TQ_OK && !memcmp(s1, s2, sizeof s1);
    state(ok, "the query keeps its previous vector (same scores)");
    tq_query_free(pq);
    free(qv);
    free(x);
    return s;
}

static tq_status c_score(int arg) {
    float *qv = gen(DIM, 15), *x = gen(3 * DIM, 16);
    uint8_t codes[3 * 64];
    float sc[3];
    tq_query *pq = NULL, *pq2 = NULL;
    tq_quantizer *pc = NULL;
    int ok = tq_query_create(g_q, &pq) == TQ_OK && tq_query_set(pq, qv) == TQ_OK &&
             tq_query_create(g_q2, &pq2) == TQ_OK && tq_query_set(pq2, qv) == TQ_OK &&
             tq_encode(g_q, x, 3, codes) == TQ_OK;
    memset(sc, SENT, sizeof sc);
    tq_status s = TQ_ERR_NOMEM;
    if (ok) switch (arg) {
        case 0: s = took(tq_score(g_q, pq2, TQ_METRIC_IP, codes, 3, sc)); break;
        case 1: s = took(tq_score(g_q, pq, (tq_metric)7, codes, 3, sc)); break;
        case 2: s = took(tq_score(g_q, pq, TQ_METRIC_IP, NULL, 3, sc)); break;
        case 3: s = took(tq_score(g_q, pq, TQ_METRIC_IP, codes, SIZE_MAX / 2, sc)); break;
        case 4: {
            ok = tq_encode(g_q2, x, 3, codes) == TQ_OK;
            s = took(tq_score(g_q, pq, TQ_METRIC_IP, codes, 3, sc));
            state(ok && !all_bytes(sc, sizeof sc, SENT),
                  "scores written (meaningless): records in memory carry no quantizer id; code files do");
            break;
        }
        case 5: {
            pc = per_channel(8, 1);
            tq_query *pqc = NULL;
            ok = pc && tq_quantizer_calibrate(pc, x, 4) == TQ_OK && tq_query_create(pc, &pqc) == TQ_OK &&
                 tq_query_set(pqc, x) == TQ_OK && tq_quantizer_code_size(pc) == 1;
            s = took(tq_score(pc, pqc, TQ_METRIC_IP, codes, SIZE_MAX / 2, sc));
            require(ok, "a calibrated per-channel quantizer of 1-byte records");
            tq_query_free(pqc);
            break;
        }
        }
    if (arg != 4) state(all_bytes(sc, sizeof sc, SENT), "output untouched");
    tq_quantizer_free(pc);
    tq_query_free(pq);
    tq_query_free(pq2);
    free(qv);
    free(x);
    return s;
}

static tq_status c_codebook(int arg) {
    float cb[256];
    double mse = -1.0;
    memset(cb, SENT, sizeof cb);
    static const uint32_t dims[] = {1, TQ_MAX_DIM + 1, DIM, DIM}, bits[] = {4, 4, 0, 9};
    tq_status s = arg == 4 ? took(tq_codebook_get(DIM, 4, NULL, &mse))
                           : took(tq_codebook_get(dims[arg], bits[arg], cb, &mse));
    state(all_bytes(cb, sizeof cb, SENT) && mse == -1.0, "outputs untouched");
    return s;
}

static tq_status c_select(int arg) {
    float *x = gen(4 * DIM, 17);
    uint32_t ch[DIM + 1];
    memset(ch, SENT, sizeof ch);
    tq_status s = TQ_OK;
    switch (arg) {
    case 0: s = took(tq_select_outliers(x, 4, DIM, DIM, ch)); break;
    case 1: s = took(tq_select_outliers(x, 4, DIM, 0, ch)); break;
    case 2: s = took(tq_select_outliers(x, 4, 0, 4, ch)); break;
    case 3: s = took(tq_select_outliers(x, 4, TQ_MAX_DIM + 1, 4, ch)); break;
    case 4: x[1 * DIM + 3] = NAN; s = took(tq_select_outliers(x, 4, DIM, 4, ch)); break;
    case 5: s = took(tq_select_outliers(x, 0, DIM, 4, ch)); break;
    case 6: s = took(tq_select_outliers(x, SIZE_MAX / (4 * DIM) + 1, DIM, 4, ch)); break;
    case 7: s = took(tq_select_outliers(NULL, 4, DIM, 4, ch)); break;
    }
    state(all_bytes(ch, sizeof ch, SENT), "output untouched");
    free(x);
    return s;
}

/* ================================================= files: quantizer (TQQZ) */

static void fix_qz_header(uint8_t *b) { put32(b + 92, tq_crc32c(0, b, 92)); }
static void fix_qz_payload(uint8_t *b, size_t len) { put32(b + len - 4, tq_crc32c(0, b + 96, len - 100)); }

static tq_status c_qzf(int arg) {
    size_t len = g_qz_len;
    uint8_t *b = malloc(len + 16);
    memcpy(b, g_qz, len);
    const char *p = path("bad.tqqz");
    int wr = 1;
    switch (arg) {
    case 0: p = path("missing.tqqz"); wr = 0; break;
    case 1: p = path("adir"); wr = 0; break;
    case 2: len = 0; break;
    case 3: len = 2; break;
    case 4: len = 6; break;
    case 5: len = 50; break;
    case 6: len = 150; break;
    case 7: len -= 1; break;
    case 8: b[len++] = 0; break;
    case 9: b[24] ^= 0x04; break;             /* dim */
    case 10: b[100] ^= 0x10; break;           /* a centroid */
    case 11: b[len - 2] ^= 0x01; break;       /* the payload CRC */
    case 12: b[93] ^= 0x80; break;            /* the header CRC */
    case 13: b[3] = 'X'; break;
    case 14: b[4] = 2; break;                 /* major 2 */
    case 15: b[6] = 1; fix_qz_header(b); break; /* minor 1, same layout */
    case 16: put32(b + 24, 100000); fix_qz_header(b); break;
    case 17: put32(b + 28, 0); fix_qz_header(b); break;
    case 18: put32(b + 32, 9); fix_qz_header(b); break;
    case 19: put64(b + 16, (uint64_t)1 << 40); fix_qz_header(b); break;
    case 20: put32(b + 96, 0x7fc00000u); fix_qz_payload(b, len); break;
    case 21: p = path("ix.tqi"); wr = 0; break;
    case 22: p = path("c.tqca"); wr = 0; break;
    case 23: {
        p = path("huge.tqqz");
        wr = 0;
        int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0666);
        int ok = fd >= 0 && write(fd, "TQQZ", 4) == 4 && ftruncate(fd, ((off_t)1 << 30) + 1) == 0;
        if (fd >= 0) close(fd);
        if (!ok) {
            free(b);
            return took(TQ_ERR_IO);
        }
        break;
    }
    }
    if (wr) put_file(p, b, len);
    size_t before_len = 0;
    uint8_t *before = arg == 23 ? NULL : get_file(p, &before_len);
    tq_quantizer *q = g_q;
    tq_status s = took(tq_quantizer_load(p, &q));
    if (s == TQ_OK) {
        state(q != NULL, "loads: a later minor version only appends");
        tq_quantizer_free(q);
    } else {
        state(q == NULL, "`*out` = NULL");
        if (arg == 0) state(!exists(p), "nothing created");
        else if (arg == 1) state(is_dir(p), "the directory is untouched");
        else if (arg != 23) state(before && file_is(p, before, before_len), "the file is unchanged");
    }
    if (arg == 23) unlink(p);
    free(before);
    free(b);
    return s;
}

static tq_status c_qzbuf(int arg) {
    tq_quantizer *q = g_q;
    tq_status s = TQ_OK;
    switch (arg) {
    case 0: s = took(tq_quantizer_deserialize(NULL, 5, &q)); break;
    case 1: s = took(tq_quantizer_deserialize(g_qz, 0, &q)); break;
    case 2: s = took(tq_quantizer_deserialize(g_qz, g_qz_len - 1, &q)); break;
    case 3: s = took(tq_quantizer_deserialize(g_qz, g_qz_len, NULL)); break;
    }
    state(arg == 3 || q == NULL, arg == 3 ? "no quantizer" : "`*out` = NULL");
    return s;
}

static tq_status c_qzsave(int arg) {
    int n0 = entries(g_dir);
    tq_status s = TQ_OK;
    switch (arg) {
    case 0:
        s = took(tq_quantizer_save(g_q2, path("no-such-dir/q.tqqz")));
        state(!exists(path("no-such-dir")), "nothing created");
        break;
    case 1:
        s = took(tq_quantizer_save(g_q2, path("adir")));
        state(is_dir(path("adir")), "the directory is untouched");
        break;
    case 2: s = took(tq_quantizer_save(g_q2, "")); break;
    case 3: s = took(tq_quantizer_save(NULL, path("q.tqqz"))); break;
    }
    state(entries(g_dir) == n0, "no temporary file left behind");
    state(file_is(path("q.tqqz"), g_qz, g_qz_len), "`<tmp>/q.tqqz` (saved before) unchanged");
    return s;
}

/* ===================================================== files: codes (TQCA) */

static void fix_ca_header(uint8_t *b) { put32(b + 36, tq_crc32c(0, b, 36)); }

static tq_status c_caf(int arg) {
    size_t len = g_ca_len;
    uint8_t *b = malloc(len + 16);
    memcpy(b, g_ca, len);
    const char *p = path("bad.tqca");
    const tq_quantizer *q = g_q;
    int wr = 1, inspect = 0;
    switch (arg) {
    case 0: q = g_q2; wr = 0; p = path("c.tqca"); break;
    case 1: q = g_q2bit; wr = 0; p = path("c.tqca"); break;
    case 2: p = path("missing.tqca"); wr = 0; break;
    case 3: p = path("adir"); wr = 0; break;
    case 4: len = 0; break;
    case 5: len = 3; break;
    case 6: len = 20; break;
    case 7: len = 100; break;
    case 8: len -= 1; break;
    case 9: b[len++] = 0; break;
    case 10: b[24] ^= 0x02; break;       /* n */
    case 11: b[60] ^= 0x01; break;       /* a record */
    case 12: b[len - 1] ^= 0x40; break;  /* the records CRC */
    case 13: b[0] = 'X'; break;
    case 14: p = path("q.tqqz"); wr = 0; break;
    case 15: b[4] = 2; break;
    case 16: put64(b + 24, (uint64_t)1 << 62); fix_ca_header(b); break;
    case 17: put64(b + 24, 1000); fix_ca_header(b); break;
    case 18: put32(b + 20, 0); fix_ca_header(b); inspect = 1; break;
    case 19: len = 100; inspect = 1; break;
    }
    if (wr) put_file(p, b, len);
    size_t before_len = 0;
    uint8_t *before = get_file(p, &before_len);
    tq_status s;
    if (inspect) {
        tq_codes_info info;
        memset(&info, SENT, sizeof info);
        s = took(tq_codes_inspect(p, &info));
        state(all_bytes(&info, sizeof info, 0), "`*info` zeroed");
    } else {
        uint8_t *codes = (uint8_t *)b;
        size_t n = 7;
        s = took(tq_codes_load(q, p, &codes, &n));
        state(codes == NULL && n == 0, "`*codes` = NULL, `*n` = 0");
    }
    if (arg == 2) state(!exists(p), "nothing created");
    else if (arg == 3) state(is_dir(p), "the directory is untouched");
    else state(before && file_is(p, before, before_len), "the file is unchanged");
    free(before);
    free(b);
    return s;
}

static tq_status c_casave(int arg) {
    uint8_t codes[3 * 64];
    memset(codes, 0, sizeof codes);
    int n0 = entries(g_dir);
    tq_status s = TQ_OK;
    switch (arg) {
    case 0: s = took(tq_codes_save(g_q, codes, SIZE_MAX / 2, path("c.tqca"))); break;
    case 1: s = took(tq_codes_save(g_q, NULL, 3, path("c.tqca"))); break;
    case 2:
        s = took(tq_codes_save(g_q, codes, 3, path("no-such-dir/c.tqca")));
        state(!exists(path("no-such-dir")), "nothing created");
        break;
    }
    state(entries(g_dir) == n0, "no temporary file left behind");
    state(file_is(path("c.tqca"), g_ca, g_ca_len), "`<tmp>/c.tqca` (saved before) unchanged");
    return s;
}

/* ===================================================== files: index (TQIX) */

static void fix_ix(uint8_t *b, size_t len) {
    put32(b + 184, tq_crc32c(0, b + 192, len - 192));
    put32(b + 188, tq_crc32c(0, b, 188));
}

static tq_status c_ixf(int arg) {
    size_t len = g_ixf_len;
    uint8_t *b = malloc(len + 16);
    memcpy(b, g_ixf, len);
    const char *p = path("bad.tqi");
    int wr = 1, mmap_ = 0;
    uint64_t ids_off = get64(b + 48 + 16 * 2);
    switch (arg) {
    case 0: p = path("missing.tqi"); wr = 0; break;
    case 1: p = path("adir"); wr = 0; break;
    case 2: len = 0; break;
    case 3: len = 2; break;
    case 4: len = 100; break;
    case 5: len = len / 2; break;
    case 6: len -= 1; break;
    case 7: b[len++] = 0; break;
    case 8: b[28] ^= 0x01; break;          /* dim */
    case 9: b[len - 7] ^= 0x20; break;     /* payload */
    case 10: b[189] ^= 0x01; break;        /* the header CRC */
    case 11: b[3] = 'Q'; break;
    case 12: p = path("q.tqqz"); wr = 0; break;
    case 13: p = path("qjl16.tqqz"); wr = 0; break;
    case 14: b[4] = 2; break;
    case 15: put64(b + 32, IX_N + 1); fix_ix(b, len); break;
    case 16: put64(b + 32, (uint64_t)1 << 40); put64(b + 40, (uint64_t)1 << 40); fix_ix(b, len); break;
    case 17: put64(b + ids_off + 8, 0); fix_ix(b, len); break;        /* slot 1 gets slot 0's id */
    case 18: put64(b + ids_off + 24, (uint64_t)-5); fix_ix(b, len); break;
    case 19: len = len / 2; mmap_ = 1; break;
    case 20: p = path("missing.tqi"); wr = 0; mmap_ = 1; break;
    }
    if (wr) put_file(p, b, len);
    size_t before_len = 0;
    uint8_t *before = get_file(p, &before_len);
    tq_index *ix = g_ix;
    tq_status s = mmap_ ? took(tq_index_open_mmap(p, &ix)) : took(tq_index_load(p, &ix));
    state(ix == NULL, "`*out` = NULL");
    if (arg == 0 || arg == 20) state(!exists(p), "nothing created");
    else if (arg == 1) state(is_dir(p), "the directory is untouched");
    else state(before && file_is(p, before, before_len), "the file is unchanged");
    if (s == TQ_OK) tq_index_free(ix);
    free(before);
    free(b);
    return s;
}

static tq_status c_ixsave(int arg) {
    int n0 = entries(g_dir);
    tq_status s = TQ_OK;
    switch (arg) {
    case 0:
        s = took(tq_index_save(g_ix, path("no-such-dir/ix.tqi")));
        state(!exists(path("no-such-dir")), "nothing created");
        break;
    case 1:
        s = took(tq_index_save(g_ix, path("adir")));
        state(is_dir(path("adir")), "the directory is untouched");
        break;
    case 2: s = took(tq_index_save(g_ix, NULL)); break;
    }
    state(entries(g_dir) == n0, "no temporary file left behind");
    state(file_is(path("ix.tqi"), g_ixf, g_ixf_len), "`<tmp>/ix.tqi` (saved before) unchanged");
    ix_unchanged();
    return s;
}

/* ========================================== files: vectors and ids (npy, vecs) */

typedef struct bbuf {
    uint8_t d[4096];
    size_t n;
} bbuf;

static void b_u32(bbuf *b, uint32_t v) {
    put32(b->d + b->n, v);
    b->n += 4;
}
static void b_f32(bbuf *b, float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    b_u32(b, u);
}

/* rows of `dim` (as stored) then `vals` values of 1, 2, 3, ... (f32 or u8 or i32) */
static void b_vecs(bbuf *b, size_t rows, int32_t dim, size_t vals, int kind /* 0 f32, 1 u8, 2 i32 */) {
    for (size_t r = 0; r < rows; r++) {
        b_u32(b, (uint32_t)dim);
        for (size_t j = 0; j < vals; j++) {
            if (kind == 0) b_f32(b, (float)(r * vals + j + 1));
            else if (kind == 1) b->d[b->n++] = (uint8_t)(r + j);
            else b_u32(b, (uint32_t)(r * vals + j));
        }
    }
}

/* an npy file: magic, version major.0, the dict padded with spaces and '\n' to a multiple of 64, data_bytes of
 * float32 1, 2, 3, ... */
static void b_npy(bbuf *b, int major, const char *dict, size_t data_bytes) {
    b->n = 0;
    memcpy(b->d, "\x93NUMPY", 6);
    b->d[6] = (uint8_t)major;
    b->d[7] = 0;
    size_t pre = major == 1 ? 10 : 12, len = strlen(dict), total = pre + len + 1;
    size_t pad = total % 64 ? 64 - total % 64 : 0, hlen = len + pad + 1;
    if (major == 1) {
        b->d[8] = (uint8_t)hlen;
        b->d[9] = (uint8_t)(hlen >> 8);
    } else {
        put32(b->d + 8, (uint32_t)hlen);
    }
    b->n = pre;
    memcpy(b->d + b->n, dict, len);
    b->n += len;
    memset(b->d + b->n, ' ', pad);
    b->n += pad;
    b->d[b->n++] = '\n';
    for (size_t i = 0; i < data_bytes / 4; i++) b_f32(b, (float)(i + 1));
    for (size_t i = 0; i < data_bytes % 4; i++) b->d[b->n++] = 0;
}

#define NPY_F4 "{'descr': '<f4', 'fortran_order': False, 'shape': (4, 3), }"
#define NPY(descr, shape) "{'descr': '" descr "', 'fortran_order': False, 'shape': " shape ", }"

static tq_status c_vec(int arg) {
    static bbuf B;
    B.n = 0;
    const char *p = path("x.fvecs");
    int wr = 1, ids = 0;
    switch (arg) {
    case 0: p = path("missing.fvecs"); wr = 0; break;
    case 1: p = path("adir"); wr = 0; break;
    case 2: break;
    case 3: b_u32(&B, 4); B.n = 2; break;
    case 4: b_vecs(&B, 3, 4, 4, 0); b_u32(&B, 4); b_f32(&B, 1.0f); break;
    case 5: b_vecs(&B, 1, 4, 4, 0); b_vecs(&B, 1, 5, 5, 0); b_vecs(&B, 1, 4, 4, 0); break;
    case 6: b_vecs(&B, 2, -4, 4, 0); break;
    case 7: b_vecs(&B, 2, 0, 4, 0); break;
    case 8: b_vecs(&B, 1, 100000, 4, 0); break;
    case 9: b_vecs(&B, 1, 65536, 2, 0); break;
    case 10: b_vecs(&B, 3, 4, 4, 0); put32(B.d + 1 * 20 + 4 + 2 * 4, 0x7fc00000u); break;
    case 11: b_vecs(&B, 3, 4, 4, 0); put32(B.d + 2 * 20 + 4 + 0 * 4, 0xff800000u); break;
    case 12: p = path("x.bvecs"); b_vecs(&B, 2, 8, 8, 1); B.n -= 3; break;
    case 13: p = path("x.ivecs"); b_vecs(&B, 2, 3, 3, 2); break;
    case 14: p = path("x.npy"); b_npy(&B, 1, "{'descr': '<f8', 'fortran_order': False, 'shape': (4, 3), }", 96); break;
    case 15: p = path("x.npy"); b_npy(&B, 1, "{'descr': '>f4', 'fortran_order': False, 'shape': (4, 3), }", 48); break;
    case 16: p = path("x.npy"); b_npy(&B, 1, "{'descr': '<f4', 'fortran_order': True, 'shape': (4, 3), }", 48); break;
    case 17: p = path("x.npy"); b_npy(&B, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (12,), }", 48); break;
    case 18: p = path("x.npy"); b_npy(&B, 1, NPY("<f4", "(2, 2, 3)"), 48); break;
    case 19: p = path("x.npy"); b_npy(&B, 1, "['<f4', False, (4, 3)]", 48); break;
    case 20: p = path("x.npy"); b_npy(&B, 1, "{'descr': '<f4', 'shape': (4, 3), 'x': 1}", 48); break;
    case 21: p = path("x.npy"); b_npy(&B, 1, "{'descr': '<f4', 'fortran_order': False}", 48); break;
    case 22: p = path("x.npy"); b_npy(&B, 1, NPY_F4, 48); B.d[6] = 9; break;
    case 23: p = path("x.npy"); b_npy(&B, 1, NPY_F4, 40); break;
    case 24: p = path("x.npy"); b_npy(&B, 1, NPY_F4, 52); break;
    case 25: p = path("x.npy"); b_npy(&B, 1, NPY("<f4", "(1099511627776, 4)"), 48); break;
    case 26: p = path("x.npy"); b_npy(&B, 1, NPY("<f4", "(4611686018427387904, 65536)"), 48); break;
    case 27: p = path("x.npy"); b_npy(&B, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (4, 0), }", 0); break;
    case 28: p = path("x.npy"); b_vecs(&B, 3, 4, 4, 0); break;
    case 29: p = path("x.npy"); b_npy(&B, 1, NPY_F4, 48); put32(B.d + B.n - 8, 0x7fc00000u); break;
    case 30: p = path("x.npy"); b_npy(&B, 1, NPY_F4, 48); B.n = 8; break;
    case 31: p = path("x.npy"); b_npy(&B, 1, NPY_F4, 48); B.n = 40; break;
    case 32: b_vecs(&B, 3, 4, 4, 0); put_file(path("x.fvecs"), B.d, B.n); p = path("x.fvecs:train"); wr = 0; break;
    case 33: p = path("x.h5"); b_vecs(&B, 3, 4, 4, 0); break;
    case 34: b_vecs(&B, 3, 4, 4, 0); break; /* NULL outputs */
    case 35: p = path("i.npy"); ids = 1; b_npy(&B, 1, NPY_F4, 48); break;
    case 36: ids = 1; b_vecs(&B, 3, 4, 4, 0); break;
    case 37: p = path("i.ivecs"); ids = 1; b_vecs(&B, 1, 3, 3, 2); b_vecs(&B, 1, 2, 2, 2); break;
    case 38: p = path("i.ivecs"); ids = 1; b_vecs(&B, 2, 3, 3, 2); B.n -= 2; break;
    case 39: p = path("i.npy"); ids = 1; b_npy(&B, 1, NPY("<u8", "(4, 3)"), 96); break;
    }
    if (wr) put_file(p, B.d, B.n);
    float *data = (float *)&B;
    int64_t *idata = (int64_t *)&B;
    size_t n = 777, d = 777;
    tq_status s;
    if (arg == 34) s = took(tq_read_vectors(p, 0, NULL, &n, &d));
    else if (ids) s = took(tq_read_ids(p, 0, &idata, &n, &d));
    else s = took(tq_read_vectors(p, 0, &data, &n, &d));
    state(data == (float *)&B && idata == (int64_t *)&B && n == 777 && d == 777, "outputs untouched");
    if (arg == 0) state(!exists(p), "nothing created");
    else if (arg == 1) state(is_dir(p), "the directory is untouched");
    else if (arg != 32) state(file_is(p, B.d, B.n), "the file is unchanged");
    return s;
}

static tq_status c_ids(int arg) {
    const int64_t big[2] = {1, (int64_t)INT32_MAX + 1}, small[2] = {INT32_MIN, (int64_t)INT32_MIN - 1};
    const int64_t fine[2] = {-1, 7};
    int n0 = entries(g_dir);
    const char *p = path("ids.ivecs");
    tq_status s = TQ_OK;
    switch (arg) {
    case 0: s = took(tq_write_ids(p, big, 1, 2)); break;
    case 1: s = took(tq_write_ids(path("ids.npy"), small, 2, 1)); break;
    case 2: s = took(tq_write_ids(p, big, 2, 0)); break;
    case 3: s = took(tq_write_ids(p, big, 1, TQ_MAX_DIM + 1)); break;
    case 4: s = took(tq_write_ids(p, big, SIZE_MAX / 2, 2)); break;
    case 5: s = took(tq_write_ids(p, NULL, 2, 1)); break;
    case 6:
        s = took(tq_write_ids(path("no-such-dir/ids.ivecs"), fine, 2, 1));
        state(!exists(path("no-such-dir")), "nothing created");
        break;
    case 7: s = took(tq_write_ids("", fine, 2, 1)); break;
    }
    state(entries(g_dir) == n0, "no file created, no temporary file left behind");
    state(file_is(p, g_idsf, g_idsf_len), "`<tmp>/ids.ivecs` (written before) unchanged");
    return s;
}

/* ======================================================= files: HDF5 */

static tq_status c_h5(int arg) {
    static bbuf B;
    B.n = 0;
    const char *p = path("t.h5");
    int ids = 0;
    switch (arg) {
    case 0:
        memcpy(B.d, "\x89HDF\r\n\x1a\n", 8);
        memset(B.d + 8, 'x', 100);
        B.n = 108;
        p = path("junk.h5");
        put_file(p, B.d, B.n);
        break;
    case 1: break;
    case 2: p = path("t.h5:nope"); break;
    case 3: p = path("t.h5:grp"); break;
    case 4: p = path("t.h5:test"); ids = 1; break;
    case 5: ids = 1; break;
    case 6: p = path("t.h5:"); break;
    case 7: p = path("missing.h5:train"); break;
    }
    float *data = (float *)&B;
    int64_t *idata = (int64_t *)&B;
    size_t n = 777, d = 777;
    tq_status s = ids ? took(tq_read_ids(p, 0, &idata, &n, &d)) : took(tq_read_vectors(p, 0, &data, &n, &d));
    state(data == (float *)&B && idata == (int64_t *)&B && n == 777 && d == 777, "outputs untouched");
    return s;
}

/* ================================================================ index */

static tq_status c_ixc(int arg) {
    tq_index_config c;
    tq_index_config_init(&c, DIM, 4);
    float center[DIM] = {0};
    switch (arg) {
    case 2: c.metric = (tq_index_metric)5; break;
    case 3: c.rerank = (tq_rerank_kind)4; break;
    case 4: c.rerank = TQ_RERANK_CODE; c.rerank_bits = 0; break;
    case 5: c.rerank = TQ_RERANK_CODE; c.rerank_bits = 9; break;
    case 6: c.center = (tq_center_mode)5; break;
    case 7: c.center = TQ_CENTER_GIVEN; break;
    case 8: c.center = TQ_CENTER_GIVEN; center[4] = NAN; c.center_vector = center; break;
    case 9:
        c.quant.variant = TQ_VARIANT_UNIFORM;
        c.quant.uniform_scope = TQ_UNIFORM_PER_CHANNEL;
        c.quant.norm = TQ_NORM_PLAIN;
        break;
    case 10: c.quant.dim = 0; break;
    case 11: c.quant.bits = 9; break;
    case 12: c.metric = TQ_INDEX_COSINE; c.quant.variant = TQ_VARIANT_QJL; break;
    }
    tq_index *ix = g_ix;
    tq_status s;
    if (arg == 0) s = took(tq_index_create(NULL, &ix));
    else if (arg == 1) s = took(tq_index_create(&c, NULL));
    else s = took(tq_index_create(&c, &ix));
    if (arg == 0) state(ix == NULL, "`*out` = NULL");
    else if (arg == 1) state(1, "no index");
    else state(ix == NULL, "no index; `*out` = NULL");
    if (s == TQ_OK && arg > 1) tq_index_free(ix);
    return s;
}

static tq_status c_ixadd(int arg) {
    float *x = gen(3 * DIM, 20);
    int64_t ids[3] = {100, 101, 102};
    int64_t assigned[3];
    memset(assigned, SENT, sizeof assigned);
    tq_status s = TQ_OK;
    switch (arg) {
    case 0: x[2 * DIM + 6] = NAN; s = took(tq_index_add(g_ix, x, 3, NULL, assigned)); break;
    case 1: x[0] = INFINITY; s = took(tq_index_add(g_ix, x, 3, ids, assigned)); break;
    case 2:
        for (uint32_t j = 0; j < DIM; j++) x[1 * DIM + j] = 1e38f;
        s = took(tq_index_add(g_ix, x, 3, NULL, assigned));
        break;
    case 3: ids[2] = 100; s = took(tq_index_add(g_ix, x, 3, ids, assigned)); break;
    case 4: ids[1] = 5; s = took(tq_index_add(g_ix, x, 3, ids, assigned)); break;
    case 5: ids[1] = -7; s = took(tq_index_add(g_ix, x, 3, ids, assigned)); break;
    case 6: s = took(tq_index_add(g_ix, x, SIZE_MAX / 2, NULL, assigned)); break;
    case 7: s = took(tq_index_add(g_ix, x, SIZE_MAX / (4 * DIM) + 1, NULL, assigned)); break;
    case 8: s = took(tq_index_add(g_ix, NULL, 3, NULL, assigned)); break;
    case 9: s = took(tq_index_add(NULL, x, 3, NULL, assigned)); break;
    }
    state(all_bytes(assigned, sizeof assigned, SENT), "`assigned` untouched");
    ix_unchanged();
    free(x);
    return s;
}

/* The first add of an index that takes its center from it, failing: no center is left behind. */
static tq_status c_ixfirst(int arg) {
    tq_index_config c;
    tq_index_config_init(&c, DIM, 4);
    tq_index *a = NULL, *b = NULL;
    float *x = gen(IX_N * DIM, 2), *bad = gen(3 * DIM, 21);
    if (arg == 0) bad[DIM + 1] = NAN;
    else
        for (uint32_t j = 0; j < DIM; j++) bad[2 * DIM + j] = -1e38f;
    int ok = tq_index_create(&c, &a) == TQ_OK && tq_index_create(&c, &b) == TQ_OK;
    tq_status s = ok ? took(tq_index_add(a, bad, 3, NULL, NULL)) : took(TQ_ERR_NOMEM);
    ok = ok && tq_index_size(a) == 0 && tq_index_add(a, x, IX_N, NULL, NULL) == TQ_OK &&
         tq_index_add(b, x, IX_N, NULL, NULL) == TQ_OK;
    int64_t ia[10], ib[10];
    float sa[10], sb[10];
    ok = ok && ix_top5(a, ia, sa) && ix_top5(b, ib, sb) && !memcmp(ia, ib, sizeof ia) && !memcmp(sa, sb, sizeof sa);
    state(ok, "still empty and without a center: the next add gives the results of a fresh index");
    tq_index_free(a);
    tq_index_free(b);
    free(x);
    free(bad);
    return s;
}

static tq_status c_ixzero(int arg) {
    tq_index_config c;
    tq_index_config_init(&c, DIM, 4);
    c.center = TQ_CENTER_NONE;
    tq_index *ix = NULL;
    float *x = gen(3 * DIM, 22);
    for (uint32_t j = 0; j < DIM; j++) x[DIM + j] = 0.0f;
    int64_t ids[3];
    float sc[3];
    tq_status s = tq_index_create(&c, &ix) == TQ_OK ? took(tq_index_add(ix, x, 3, NULL, NULL)) : took(TQ_ERR_NOMEM);
    int ok = s == TQ_OK && tq_index_size(ix) == 3 && tq_index_search(ix, g_ixq, 1, 3, NULL, ids, sc) == TQ_OK;
    int found = 0;
    for (int r = 0; ok && r < 3; r++)
        if (ids[r] == 1) found = sc[r] == 0.0f;
    state(found, "added; its inner-product score is 0 for any query");
    tq_index_free(ix);
    free(x);
    return s;
}

static tq_status c_ixrm(int arg) {
    const int64_t absent[3] = {1000, -1, INT64_MAX};
    size_t removed = 777;
    tq_status s = TQ_OK;
    switch (arg) {
    case 0:
        s = took(tq_index_remove(g_ix, absent, 3, &removed));
        state(removed == 0, "`*removed` = 0");
        break;
    case 1: s = took(tq_index_remove(g_ix, NULL, 2, &removed)); break;
    case 2: s = took(tq_index_remove(g_ix, absent, SIZE_MAX / 2, &removed)); break;
    case 3: s = took(tq_index_remove(NULL, absent, 1, &removed)); break;
    }
    ix_unchanged();
    return s;
}

static tq_status c_ixs(int arg) {
    float *q = gen(2 * DIM, 23);
    int64_t ids[10];
    float sc[10];
    memset(ids, SENT, sizeof ids);
    memset(sc, SENT, sizeof sc);
    tq_index *local = NULL;
    tq_status s = TQ_OK;
    int untouched = 1;
    switch (arg) {
    case 0: s = took(tq_index_search(g_ix, q, 2, 0, NULL, ids, sc)); break;
    case 1: q[DIM + 3] = NAN; s = took(tq_index_search(g_ix, q, 2, 5, NULL, ids, sc)); break;
    case 2:
        for (uint32_t j = 0; j < DIM; j++) q[DIM + j] = 3e37f;
        s = took(tq_index_search(g_ix, q, 2, 5, NULL, ids, sc));
        break;
    case 3: s = took(tq_index_search(g_ix, q, SIZE_MAX / (4 * DIM) + 1, 5, NULL, ids, sc)); break;
    case 4: s = took(tq_index_search(g_ix, q, 2, SIZE_MAX / 8, NULL, ids, sc)); break;
    case 5: s = took(tq_index_search(g_ix, NULL, 2, 5, NULL, ids, sc)); break;
    case 6: s = took(tq_index_search(NULL, q, 2, 5, NULL, ids, sc)); break;
    case 7:
    case 8: {
        tq_index_config c;
        tq_index_config_init(&c, DIM, 4);
        untouched = 0;
        if (tq_index_create(&c, &local) != TQ_OK || (arg == 8 && tq_index_add(local, q, 2, NULL, NULL) != TQ_OK)) {
            s = took(TQ_ERR_NOMEM);
            break;
        }
        s = took(tq_index_search(local, q, 2, 5, NULL, ids, sc));
        int ok = 1;
        size_t have = arg == 8 ? 2 : 0;
        for (size_t i = 0; i < 10; i++)
            ok &= (i % 5) < have ? ids[i] >= 0 && !isnan(sc[i]) : ids[i] == -1 && isnan(sc[i]);
        state(ok, arg == 8 ? "the 2 vectors, then id -1 and score NaN in the 3 places left"
                           : "every place id -1, score NaN");
        break;
    }
    }
    if (untouched) state(all_bytes(ids, sizeof ids, SENT) && all_bytes(sc, sizeof sc, SENT), "outputs untouched");
    if (!local) ix_unchanged();
    tq_index_free(local);
    free(q);
    return s;
}

/* ============================================================== KV cache */

static void kvc_none(tq_kv_config *c) { (void)c; }
static void kvc_f32(tq_kv_config *c) { c->factors = TQ_KV_FACTOR_F32; }
static void kvc_nowin(tq_kv_config *c) { c->window = 0; }
static void kvc_group(tq_kv_config *c) {
    c->window = 0;
    c->value.variant = TQ_VARIANT_UNIFORM;
    c->value.uniform_scope = TQ_UNIFORM_GROUP;
    c->value.group_size = 8;
    c->value.rotation = TQ_ROTATION_NONE;
}

static tq_status c_kvc(int arg) {
    static const uint32_t chans[2] = {0, 1};
    tq_kv_config c = g_kvc;
    switch (arg) {
    case 2: c.kv_heads = 0; break;
    case 3: c.kv_heads = 5000; break;
    case 4: c.head_dim = 0; break;
    case 5: c.head_dim = 70000; c.key.dim = c.value.dim = 70000; break;
    case 6: c.key.dim = 32; break;
    case 7: c.key.bits = 0; break;
    case 8: c.value.bits = 9; break;
    case 9: c.factors = (tq_kv_factor)2; break;
    case 10: c.outliers = (tq_kv_outliers)2; break;
    case 11: c.center = (tq_kv_center)4; break;
    case 12:
        c.key.variant = TQ_VARIANT_UNIFORM;
        c.key.uniform_scope = TQ_UNIFORM_PER_CHANNEL;
        c.key.norm = TQ_NORM_PLAIN;
        break;
    case 13: c.key.outlier_count = 2; c.key.outlier_bits = 5; c.key.outlier_channels = chans; break;
    case 14: c.key.outlier_count = 16; c.key.outlier_bits = 5; break;
    }
    tq_kv *kv = g_kv;
    tq_status s;
    if (arg == 0) s = took(tq_kv_create(NULL, &kv));
    else if (arg == 1) s = took(tq_kv_create(&c, NULL));
    else if (arg == 15) {
        size_t bytes = 777;
        s = took(tq_kv_token_bytes(NULL, &bytes, NULL, NULL));
        state(bytes == 777, "output untouched");
        return s;
    } else s = took(tq_kv_create(&c, &kv));
    if (arg == 1) state(1, "no cache");
    else state(kv == NULL, "no cache; `*out` = NULL");
    if (s == TQ_OK && arg > 1) tq_kv_free(kv);
    return s;
}

static tq_status c_kva(int arg) {
    float *k = gen(2 * KV_H * KV_D, 30), *v = gen(2 * KV_H * KV_D, 31);
    tq_kv *kv = g_kv, *local = NULL;
    kv_snap before = g_kv_snap;
    tq_status s = TQ_OK;
    switch (arg) {
    case 0: k[1 * KV_H * KV_D + 1 * KV_D + 3] = NAN; s = took(tq_kv_append(kv, k, v, 2)); break;
    case 1: v[0] = INFINITY; s = took(tq_kv_append(kv, k, v, 2)); break;
    case 2:
    case 3:
    case 5:
    case 6:
        local = make_kv(arg == 3 ? kvc_f32 : arg == 5 ? kvc_nowin : arg == 6 ? kvc_group : kvc_none);
        if (!local || !kv_take(local, &before)) {
            tq_kv_free(local);
            free(k);
            free(v);
            return took(TQ_ERR_NOMEM);
        }
        kv = local;
        for (uint32_t j = 0; j < KV_H * KV_D; j++) v[j] = arg == 6 ? 1e6f : 2e4f;
        s = took(tq_kv_append(kv, k, v, 1));
        break;
    case 4:
        for (uint32_t j = 0; j < KV_D; j++) k[j] = 1e38f;
        s = took(tq_kv_append(kv, k, v, 1));
        break;
    case 7: s = took(tq_kv_append(kv, k, v, SIZE_MAX / 2)); break;
    case 8: s = took(tq_kv_append(kv, NULL, v, 1)); break;
    case 9: s = took(tq_kv_append(NULL, k, v, 1)); break;
    }
    if (s == TQ_OK) {
        state(tq_kv_length(kv) == KV_N + 1, "appended (%u tokens): fp32 factors have the range", KV_N + 1);
    } else {
        kv_unchanged(kv, &before);
        if (local) {
            for (uint32_t j = 0; j < KV_H * KV_D; j++) v[j] = 0.5f;
            state(tq_kv_append(kv, k, v, 1) == TQ_OK && tq_kv_length(kv) == KV_N + 1,
                  "the next append of an ordinary token succeeds");
        }
    }
    tq_kv_free(local);
    free(k);
    free(v);
    return s;
}

static tq_status c_kvzero(int arg) {
    tq_kv_config c;
    tq_kv_config_init(&c, KV_H, KV_D, 4, 4);
    c.sinks = 0;
    tq_kv *kv = NULL;
    float zero[3 * KV_H * KV_D] = {0}, out[2 * KV_H * KV_D];
    tq_status s = tq_kv_create(&c, &kv) == TQ_OK ? took(tq_kv_append(kv, zero, zero, 3)) : took(TQ_ERR_NOMEM);
    int ok = s == TQ_OK && tq_kv_length(kv) == 3 && tq_kv_attend(kv, g_kvq, 1, 2 * KV_H, NULL, 0.0f, out) == TQ_OK;
    for (size_t i = 0; ok && i < sizeof out / sizeof out[0]; i++) ok = out[i] == 0.0f;
    state(ok, "appended (3 tokens); attention returns the zero vector");
    tq_kv_free(kv);
    return s;
}

static tq_status c_kvq(int arg) {
    float out[2 * KV_H * KV_D * 2];
    float q[2 * KV_H * KV_D * 2];
    memcpy(q, g_kvq, sizeof g_kvq[0] * 2 * KV_H * KV_D);
    memcpy(q + 2 * KV_H * KV_D, g_kvq, sizeof g_kvq[0] * 2 * KV_H * KV_D);
    memset(out, SENT, sizeof out);
    int64_t pos[2] = {3, 5};
    tq_kv *empty = NULL;
    tq_status s = TQ_OK;
    const uint32_t QH = 2 * KV_H;
    switch (arg) {
    case 0:
        if (tq_kv_create(&g_kvc, &empty) != TQ_OK) return took(TQ_ERR_NOMEM);
        s = took(tq_kv_attend(empty, q, 1, QH, NULL, 0.0f, out));
        break;
    case 1: s = took(tq_kv_attend(g_kv, q, 1, 3, NULL, 0.0f, out)); break;
    case 2: s = took(tq_kv_attend(g_kv, q, 1, 0, NULL, 0.0f, out)); break;
    case 3: s = took(tq_kv_attend(g_kv, q, 1, 129 * KV_H, NULL, 0.0f, out)); break;
    case 4: pos[1] = KV_N; s = took(tq_kv_attend(g_kv, q, 2, QH, pos, 0.0f, out)); break;
    case 5: pos[0] = -1; s = took(tq_kv_attend(g_kv, q, 2, QH, pos, 0.0f, out)); break;
    case 6: s = took(tq_kv_attend(g_kv, q, 1, QH, NULL, NAN, out)); break;
    case 7: s = took(tq_kv_attend(g_kv, q, 1, QH, NULL, -1.0f, out)); break;
    case 8: q[QH * KV_D + 2 * KV_D + 5] = NAN; s = took(tq_kv_attend(g_kv, q, 2, QH, NULL, 0.0f, out)); break;
    case 9: s = took(tq_kv_attend(g_kv, q, SIZE_MAX / (4 * QH * KV_D) + 1, QH, NULL, 0.0f, out)); break;
    case 10: s = took(tq_kv_attend(g_kv, NULL, 1, QH, NULL, 0.0f, out)); break;
    case 11: s = took(tq_kv_logits(g_kv, q, QH, KV_N + 1, 0.0f, out)); break;
    case 12: s = took(tq_kv_decode(g_kv, KV_N - 2, 5, out, NULL)); break;
    case 13: s = took(tq_kv_decode(g_kv, SIZE_MAX, 2, out, NULL)); break;
    }
    state(all_bytes(out, sizeof out, SENT), "output untouched");
    if (arg == 0) state(tq_kv_length(empty) == 0, "the cache is still empty");
    else kv_unchanged(g_kv, &g_kv_snap);
    tq_kv_free(empty);
    return s;
}

static tq_status c_att(int arg) {
    const uint32_t H = KV_H, D = KV_D, QH = 2 * KV_H;
    float out[2 * 2 * KV_H * KV_D];
    float k[KV_N * KV_H * KV_D], v[KV_N * KV_H * KV_D], q[2 * 2 * KV_H * KV_D];
    memcpy(k, g_kvk, sizeof k);
    memcpy(v, g_kvv, sizeof v);
    memcpy(q, g_kvq, sizeof q / 2);
    memcpy(q + QH * D, g_kvq, sizeof q / 2);
    memset(out, SENT, sizeof out);
    int64_t pos[2] = {3, KV_N};
    tq_status s = TQ_OK;
    switch (arg) {
    case 0: s = took(tq_attention_f32(k, v, 0, H, D, q, 1, QH, NULL, 0.0f, out)); break;
    case 1: s = took(tq_attention_f32(k, v, SIZE_MAX / 4 + 1, 1, 1, q, 1, 1, NULL, 0.0f, out)); break;
    case 2: s = took(tq_attention_f32(k, v, KV_N, H, D, q, 1, 3, NULL, 0.0f, out)); break;
    case 3: s = took(tq_attention_f32(k, v, KV_N, H, D, q, 2, QH, pos, 0.0f, out)); break;
    case 4: v[5 * H * D + D + 2] = NAN; s = took(tq_attention_f32(k, v, KV_N, H, D, q, 2, QH, NULL, 0.0f, out)); break;
    case 5: q[QH * D + 1] = INFINITY; s = took(tq_attention_f32(k, v, KV_N, H, D, q, 2, QH, NULL, 0.0f, out)); break;
    case 6: s = took(tq_attention_f32(NULL, v, KV_N, H, D, q, 1, QH, NULL, 0.0f, out)); break;
    }
    state(all_bytes(out, sizeof out, SENT), "output untouched");
    return s;
}

/* ============================================================== threads */

static tq_status c_thr(int arg) {
    uint32_t before = tq_get_threads();
    tq_status s = TQ_OK;
    if (arg == 0 || arg == 1) {
        s = took(tq_set_threads(arg == 0 ? 257 : UINT32_MAX));
        state(tq_get_threads() == before, "thread count unchanged");
        return s;
    }
    /* a failure inside a large batch: the same status and message with 1 thread and with 4, output untouched */
    const size_t n = 1000;
    float *x = gen(n * DIM, 40);
    uint8_t *out = malloc(n * 64 * sizeof(float));
    memset(out, SENT, n * 64 * sizeof(float));
    tq_quantizer *uq = NULL;
    const tq_quantizer *q = g_q;
    if (arg == 3) {
        tq_config c;
        tq_config_init(&c, DIM, 4);
        c.variant = TQ_VARIANT_UNIFORM;
        c.uniform_scope = TQ_UNIFORM_GROUP;
        c.group_size = 8;
        c.rotation = TQ_ROTATION_NONE;
        if (tq_quantizer_create(&c, &uq) != TQ_OK) {
            free(x);
            free(out);
            return took(TQ_ERR_NOMEM);
        }
        q = uq;
    }
    if (arg == 2) x[700 * DIM + 3] = NAN;
    if (arg == 3) x[900 * DIM + 17] = -1e6f;
    if (arg == 4) x[37 * DIM] = NAN;
    if (arg == 5)
        for (uint32_t j = 0; j < DIM; j++) x[50 * DIM + j] = 1e38f;
    float *kq = NULL;
    if (arg == 6) {
        kq = gen(16 * 2 * KV_H * KV_D, 41);
        kq[9 * 2 * KV_H * KV_D + 2 * KV_D + 5] = NAN;
    }
    char one[600];
    tq_status s1 = TQ_OK;
    for (int pass = 0; pass < 2; pass++) {
        if (tq_set_threads(pass == 0 ? 1 : 4) != TQ_OK) break;
        tq_status r;
        switch (arg) {
        case 2:
        case 3: r = tq_encode(q, x, n, out); break;
        case 4:
        case 5: r = tq_index_search(g_ix, x, 64, 5, NULL, (int64_t *)out, (float *)(out + 64 * 5 * 8)); break;
        default: r = tq_kv_attend(g_kv, kq, 16, 2 * KV_H, NULL, 0.0f, (float *)out); break;
        }
        if (pass == 0) {
            s1 = r;
            snprintf(one, sizeof one, "%s", tq_last_error());
        } else {
            s = took(r);
        }
    }
    tq_set_threads(0);
    state(s == s1 && !strcmp(one, g_msg), "the same status and message with 1 thread and with 4");
    state(all_bytes(out, n * 64 * sizeof(float), SENT), "output untouched");
    if (arg == 4 || arg == 5) ix_unchanged();
    if (arg == 6) kv_unchanged(g_kv, &g_kv_snap);
    tq_quantizer_free(uq);
    free(kq);
    free(out);
    free(x);
    return s;
}

/* ================================================================ the table */

enum { A_QUANT, A_ENCODE, A_FQZ, A_FCA, A_FIX, A_FVEC, A_FH5, A_INDEX, A_KV, A_THREADS, A_COUNT };

static const char *const area_title[A_COUNT] = {
    "Quantizer configuration",
    "Encode, decode, query and score",
    "Files: quantizer (`.tqqz`, TQQZ)",
    "Files: code arrays (`.tqca`, TQCA)",
    "Files: index (`.tqi`, TQIX)",
    "Files: vectors and ids (`.fvecs`, `.bvecs`, `.ivecs`, `.npy`)",
    "Files: HDF5",
    "Index",
    "KV cache",
    "Threads",
};

static const char *const area_intro[A_COUNT] = {
    "`tq_quantizer_create` from a `tq_config` (`tq_config_init(&c, 32, 4)`, then the change shown), "
    "`tq_config_set_bits` and `tq_quantizer_calibrate`.",
    "`q` is an MSE quantizer of dimension 32 at 4 bits; batches are 3 rows, output buffers pre-filled with a "
    "sentinel.",
    "`<tmp>/q.tqqz` is `q` saved (224 bytes: a 96-byte header, codebook, CRC). Damaged copies are written to "
    "`<tmp>/bad.tqqz`; \"CRC fixed\" means the checksums were recomputed, so only the field itself is wrong.",
    "`<tmp>/c.tqca` holds 10 records of `q` (40-byte header, 10 x 20 bytes, CRC); damaged copies go to "
    "`<tmp>/bad.tqca`.",
    "`<tmp>/ix.tqi` is the index below saved; damaged copies go to `<tmp>/bad.tqi`.",
    "`tq_read_vectors` unless the row says `tq_read_ids` or `tq_write_ids`. Outputs are pre-filled and must stay "
    "untouched on failure.",
    "`<tmp>/t.h5` holds a 2 x 3 float32 dataset `test` and an empty group `grp` (no `train`, no `neighbors`). "
    "Needs libhdf5 at build time; without it every HDF5 read is `TQ_ERR_FORMAT` \"built without HDF5 support\".",
    "The index holds 40 vectors (dimension 32, 4 bits, inner product, centered), ids 0..39; after each failure "
    "its size and the top 5 of two queries (ids and scores, bit for bit) are checked.",
    "The cache has 2 KV heads of 16 channels, 4-bit keys and values (defaults: fp16 factors, 4 sink tokens, "
    "centered keys) and an exact window of 4 tokens; it holds 12 tokens. After each failure its length, the "
    "attention output and the logits of one query (bit for bit) are checked.",
    "Batches with one bad row, run with 1 thread and again with 4: the status and message are the same (bad input "
    "is found before the work is split across threads) and outputs stay untouched.",
};

typedef struct bad_case {
    int area;
    const char *what;
    tq_status (*fn)(int);
    int arg;
    tq_status want;
    const char *msg; /* a piece of tq_last_error(); "" for TQ_OK */
    int h5;          /* the outcome needs libhdf5 (otherwise: "built without HDF5 support") */
} bad_case;

#define E(s) TQ_ERR_##s

static const bad_case cases[] = {
    /* ---- quantizer configuration */
    {A_QUANT, "config is NULL", c_qnull, 0, E(INVALID_ARG), "config is NULL", 0},
    {A_QUANT, "output pointer is NULL", c_qnull, 1, E(INVALID_ARG), "output pointer is NULL", 0},
    {A_QUANT, "`dim = 0`", c_qcfg, 0, E(DIM), "dim must be >= 1", 0},
    {A_QUANT, "`dim = 65537` (> `TQ_MAX_DIM`)", c_qcfg, 1, E(DIM), "exceeds the maximum 65536", 0},
    {A_QUANT, "dense rotation at `dim = 4097` (> `TQ_MAX_DENSE_DIM`)", c_qcfg, 2, E(DIM), "limited to 4096", 0},
    {A_QUANT, "PROD with a dense QJL matrix at `dim = 8192`", c_qcfg, 3, E(DIM), "dense QJL matrix is limited", 0},
    {A_QUANT, "`bits = 0`", c_qcfg, 4, E(BITS), "bits = 0 for the vector, must be 1..8", 0},
    {A_QUANT, "`bits = 9`", c_qcfg, 5, E(BITS), "bits = 9 for the vector, must be 1..8", 0},
    {A_QUANT, "QJL variant with `bits = 2`", c_qcfg, 6, E(BITS), "exactly 1 bit", 0},
    {A_QUANT, "MSE at `dim = 1` (no codebook for one channel)", c_qcfg, 7, E(DIM), "needs at least 2", 0},
    {A_QUANT, "unknown variant 7", c_qcfg, 8, E(INVALID_ARG), "unknown variant 7", 0},
    {A_QUANT, "unknown rotation 3", c_qcfg, 9, E(INVALID_ARG), "unknown rotation 3", 0},
    {A_QUANT, "unknown QJL kind 5", c_qcfg, 10, E(INVALID_ARG), "unknown qjl kind 5", 0},
    {A_QUANT, "unknown norm mode 3", c_qcfg, 11, E(INVALID_ARG), "unknown norm mode 3", 0},
    {A_QUANT, "unknown uniform mode 2", c_qcfg, 12, E(INVALID_ARG), "unknown uniform mode 2", 0},
    {A_QUANT, "unknown uniform scope 3", c_qcfg, 13, E(INVALID_ARG), "unknown uniform scope 3", 0},
    {A_QUANT, "`rounds = 9`", c_qcfg, 14, E(INVALID_ARG), "rounds = 9", 0},
    {A_QUANT, "PROD with a norm correction (`TQ_NORM_UNIT`)", c_qcfg, 15, E(INVALID_ARG), "mse variant only", 0},
    {A_QUANT, "`outlier_count = dim`", c_qcfg, 16, E(INVALID_ARG), "must be below dim", 0},
    {A_QUANT, "`outlier_count = 100 > dim`", c_qcfg, 17, E(INVALID_ARG), "must be below dim", 0},
    {A_QUANT, "outlier channel list with a duplicate (3, 3)", c_qcfg, 18, E(INVALID_ARG), "is repeated", 0},
    {A_QUANT, "outlier channel 40 at `dim = 32`", c_qcfg, 19, E(INVALID_ARG), "is out of range", 0},
    {A_QUANT, "outlier channels given with `outlier_count = 0`", c_qcfg, 20, E(INVALID_ARG), "outlier_count is 0", 0},
    {A_QUANT, "`outlier_bits = 0` with 4 outliers", c_qcfg, 21, E(BITS), "bits = 0 for the outlier set", 0},
    {A_QUANT, "`outlier_bits = 9`", c_qcfg, 22, E(BITS), "bits = 9 for the outlier set", 0},
    {A_QUANT, "PROD split with a 1-channel outlier set", c_qcfg, 25, E(DIM), "the outlier set has 1 channel", 0},
    {A_QUANT, "uniform GROUP with `group_size = 0`", c_qcfg, 23, E(INVALID_ARG), "group_size 0 must divide", 0},
    {A_QUANT, "uniform GROUP with `group_size = 5` at `dim = 32`", c_qcfg, 24, E(INVALID_ARG), "must divide", 0},
    {A_QUANT, "`tq_config_set_bits(0.5)`", c_setbits, 0, E(BITS), "bits = 0.5, must be 1..8", 0},
    {A_QUANT, "`tq_config_set_bits(8.5)`", c_setbits, 1, E(BITS), "bits = 8.5", 0},
    {A_QUANT, "`tq_config_set_bits(NaN)`", c_setbits, 2, E(BITS), "bits = nan", 0},
    {A_QUANT, "`tq_config_set_bits(3.01)` at `dim = 16` (0 channels in the split)", c_setbits, 3, E(BITS),
     "is not a split", 0},
    {A_QUANT, "`tq_config_set_bits` on a NULL config", c_setbits, 4, E(INVALID_ARG), "config is NULL", 0},
    {A_QUANT, "`tq_quantizer_get_config(NULL, ...)`", c_qnull, 2, E(INVALID_ARG), "NULL argument", 0},
    {A_QUANT, "calibrating a quantizer that is not per-channel uniform", c_calib, 0, E(STATE),
     "needs no training", 0},
    {A_QUANT, "calibrating with 0 rows", c_calib, 1, E(INVALID_ARG), "at least one sample row", 0},
    {A_QUANT, "calibrating with a NaN in the sample", c_calib, 2, E(NONFINITE), "sample row 3 channel 2 is NaN", 0},
    {A_QUANT, "calibrating with `n = SIZE_MAX / 2` rows", c_calib, 3, E(SIZE), "is too large", 0},
    {A_QUANT, "calibrating with `n = SIZE_MAX / (4 * dim) + 1` (n * dim fits, the bytes do not)", c_calib, 4,
     E(SIZE), "is too large", 0},
    {A_QUANT, "encoding with a per-channel uniform quantizer never calibrated", c_calib, 5, E(STATE),
     "not calibrated", 0},

    /* ---- encode / decode / score */
    {A_ENCODE, "`tq_encode` with a NULL quantizer", c_enc, 0, E(INVALID_ARG), "quantizer is NULL", 0},
    {A_ENCODE, "`tq_encode` with NULL vectors", c_enc, 1, E(INVALID_ARG), "is NULL", 0},
    {A_ENCODE, "`tq_encode` with a NULL code buffer", c_enc, 2, E(INVALID_ARG), "is NULL", 0},
    {A_ENCODE, "NaN in row 1 of the batch", c_enc, 3, E(NONFINITE), "input row 1 channel 5 is NaN", 0},
    {A_ENCODE, "-Inf in row 2", c_enc, 4, E(NONFINITE), "input row 2 channel 0 is Inf", 0},
    {A_ENCODE, "finite values whose norm overflows float32 (1e38 in every channel)", c_enc, 5, E(NONFINITE),
     "norm overflows float32", 0},
    {A_ENCODE, "`n = SIZE_MAX / 2` rows", c_enc, 6, E(SIZE), "is too large", 0},
    {A_ENCODE, "`n = SIZE_MAX / (4 * dim) + 1` rows (n * dim fits, the bytes do not)", c_enc, 7, E(SIZE),
     "is too large", 0},
    {A_ENCODE, "uniform GROUP quantizer, a group range beyond fp16 (1e6) in row 1", c_enc, 8, E(NONFINITE),
     "input row 1: group range 133333 exceeds the fp16 range", 0},
    {A_ENCODE, "`n = 0` with NULL buffers", c_enc, 9, TQ_OK, "", 0},
    {A_ENCODE, "MSE, unbiased norm, no rotation: row 1 = 1e38 e_3 (its norm fits float32, its scale does not)", c_enc,
     10, E(NONFINITE), "input row 1: its scale", 0},
    {A_ENCODE, "uniform per vector, 1 bit, no rotation: row 1 = 2e38 e_3 (its range overflows float32)", c_enc, 11,
     E(NONFINITE), "input row 1: its range", 0},
    {A_ENCODE, "zero vector, MSE", c_zero, 0, TQ_OK, "", 0},
    {A_ENCODE, "zero vector, PROD", c_zero, 1, TQ_OK, "", 0},
    {A_ENCODE, "zero vector, QJL", c_zero, 2, TQ_OK, "", 0},
    {A_ENCODE, "zero vector, uniform (per vector)", c_zero, 3, TQ_OK, "", 0},
    {A_ENCODE, "`tq_decode` with NULL codes", c_dec, 0, E(INVALID_ARG), "is NULL", 0},
    {A_ENCODE, "`tq_decode` with a NULL output", c_dec, 1, E(INVALID_ARG), "is NULL", 0},
    {A_ENCODE, "`tq_decode` of `n = SIZE_MAX / (4 * dim) + 1` records", c_dec, 2, E(SIZE), "is too large", 0},
    {A_ENCODE, "`tq_decode` of a record of 0xFF bytes", c_dec, 3, TQ_OK, "", 0},
    {A_ENCODE, "`tq_query_create` with a NULL quantizer", c_query, 0, E(INVALID_ARG), "NULL argument", 0},
    {A_ENCODE, "`tq_query_create` with a NULL output", c_query, 1, E(INVALID_ARG), "NULL argument", 0},
    {A_ENCODE, "`tq_query_set` with a NaN", c_query, 2, E(NONFINITE), "query row 0 channel 7 is NaN", 0},
    {A_ENCODE, "`tq_query_set` with a norm beyond float32", c_query, 3, E(NONFINITE), "norm overflows float32", 0},
    {A_ENCODE, "`tq_query_set` with a NULL vector", c_query, 4, E(INVALID_ARG), "NULL argument", 0},
    {A_ENCODE, "`tq_score` with a query prepared for another quantizer", c_score, 0, E(MISMATCH),
     "prepared for another quantizer", 0},
    {A_ENCODE, "`tq_score` with unknown metric 7", c_score, 1, E(INVALID_ARG), "unknown metric 7", 0},
    {A_ENCODE, "`tq_score` with NULL codes", c_score, 2, E(INVALID_ARG), "codes or scores is NULL", 0},
    {A_ENCODE, "`tq_score` of `n = SIZE_MAX / 2` records", c_score, 3, E(SIZE), "is too large", 0},
    {A_ENCODE, "`tq_score` of `n = SIZE_MAX / 2` 1-byte records (per-channel uniform, 8 dims, 1 bit: n * code_size "
     "fits, n scores do not)", c_score, 5, E(SIZE), "is too large", 0},
    {A_ENCODE, "`tq_score` of records encoded by another quantizer of the same code size", c_score, 4, TQ_OK, "",
     0},
    {A_ENCODE, "`tq_codebook_get` at `dim = 1`", c_codebook, 0, E(DIM), "dim 1 outside 2..65536", 0},
    {A_ENCODE, "`tq_codebook_get` at `dim = 65537`", c_codebook, 1, E(DIM), "outside 2..65536", 0},
    {A_ENCODE, "`tq_codebook_get` at `bits = 0`", c_codebook, 2, E(BITS), "bits 0 outside 1..8", 0},
    {A_ENCODE, "`tq_codebook_get` at `bits = 9`", c_codebook, 3, E(BITS), "bits 9 outside 1..8", 0},
    {A_ENCODE, "`tq_codebook_get` with a NULL output", c_codebook, 4, E(INVALID_ARG), "centroids is NULL", 0},
    {A_ENCODE, "`tq_select_outliers` with `k = dim`", c_select, 0, E(INVALID_ARG), "k = 32 must be 1..dim-1", 0},
    {A_ENCODE, "`tq_select_outliers` with `k = 0`", c_select, 1, E(INVALID_ARG), "k = 0 must be", 0},
    {A_ENCODE, "`tq_select_outliers` with `dim = 0`", c_select, 2, E(DIM), "dim 0 must be 1..65536", 0},
    {A_ENCODE, "`tq_select_outliers` with `dim = 65537`", c_select, 3, E(DIM), "must be 1..65536", 0},
    {A_ENCODE, "`tq_select_outliers` with a NaN in the sample", c_select, 4, E(NONFINITE),
     "sample row 1 channel 3 is NaN", 0},
    {A_ENCODE, "`tq_select_outliers` with 0 rows", c_select, 5, E(INVALID_ARG), "at least one sample row", 0},
    {A_ENCODE, "`tq_select_outliers` with `n = SIZE_MAX / (4 * dim) + 1`", c_select, 6, E(SIZE), "is too large",
     0},
    {A_ENCODE, "`tq_select_outliers` with NULL rows", c_select, 7, E(INVALID_ARG), "NULL argument", 0},

    /* ---- files: quantizer */
    {A_FQZ, "missing file", c_qzf, 0, E(IO), "No such file or directory", 0},
    {A_FQZ, "a directory", c_qzf, 1, E(IO), "is not a regular file", 0},
    {A_FQZ, "empty file", c_qzf, 2, E(FORMAT), "empty: 0 bytes", 0},
    {A_FQZ, "truncated inside the magic (2 bytes)", c_qzf, 3, E(FORMAT), "truncated: 2 bytes", 0},
    {A_FQZ, "truncated inside the version (6 bytes)", c_qzf, 4, E(FORMAT), "truncated: 6 bytes", 0},
    {A_FQZ, "truncated inside the header (50 bytes)", c_qzf, 5, E(FORMAT), "the header alone is 96", 0},
    {A_FQZ, "truncated inside the payload (150 bytes)", c_qzf, 6, E(FORMAT), "header says 224 bytes, file has 150",
     0},
    {A_FQZ, "last byte missing", c_qzf, 7, E(FORMAT), "header says 224 bytes, file has 223", 0},
    {A_FQZ, "one byte appended", c_qzf, 8, E(FORMAT), "1 trailing bytes", 0},
    {A_FQZ, "a bit flipped in the header (`dim`)", c_qzf, 9, E(CHECKSUM), "header checksum mismatch", 0},
    {A_FQZ, "a bit flipped in the payload (a centroid)", c_qzf, 10, E(CHECKSUM), "payload checksum mismatch", 0},
    {A_FQZ, "a bit flipped in the payload CRC", c_qzf, 11, E(CHECKSUM), "payload checksum mismatch", 0},
    {A_FQZ, "a bit flipped in the header CRC", c_qzf, 12, E(CHECKSUM), "header checksum mismatch", 0},
    {A_FQZ, "wrong magic (`TQQX`)", c_qzf, 13, E(FORMAT), "not a tq quantizer file", 0},
    {A_FQZ, "format version 2.0 (a future major)", c_qzf, 14, E(VERSION), "reads major version 1 only", 0},
    {A_FQZ, "format version 1.1 (a future minor, same layout; CRC fixed)", c_qzf, 15, TQ_OK, "", 0},
    {A_FQZ, "`dim = 100000` (CRC fixed)", c_qzf, 16, E(FORMAT), "dim = 100000, must be 1..65536", 0},
    {A_FQZ, "`bits = 0` (CRC fixed)", c_qzf, 17, E(FORMAT), "bits = 0, must be 1..8", 0},
    {A_FQZ, "`variant = 9` (CRC fixed)", c_qzf, 18, E(FORMAT), "variant = 9 is not a known value", 0},
    {A_FQZ, "`file_size = 2^40` (CRC fixed)", c_qzf, 19, E(FORMAT), "header says 1099511627776 bytes", 0},
    {A_FQZ, "a centroid set to NaN (payload CRC fixed)", c_qzf, 20, E(FORMAT), "part 0 codebook", 0},
    {A_FQZ, "an index file", c_qzf, 21, E(FORMAT), "not a tq quantizer file", 0},
    {A_FQZ, "a code file", c_qzf, 22, E(FORMAT), "not a tq quantizer file", 0},
    {A_FQZ, "a (sparse) file of 1 GiB + 1 byte", c_qzf, 23, E(FORMAT),
     "huge.tqqz: 1073741825 bytes, larger than any tq quantizer file", 0},
    {A_FQZ, "`tq_quantizer_deserialize(NULL, 5)`", c_qzbuf, 0, E(INVALID_ARG), "buffer is NULL", 0},
    {A_FQZ, "`tq_quantizer_deserialize` of 0 bytes", c_qzbuf, 1, E(FORMAT), "empty: 0 bytes", 0},
    {A_FQZ, "`tq_quantizer_deserialize` of the image less its last byte", c_qzbuf, 2, E(FORMAT),
     "file has 223", 0},
    {A_FQZ, "`tq_quantizer_deserialize` with a NULL output", c_qzbuf, 3, E(INVALID_ARG), "output pointer is NULL",
     0},
    {A_FQZ, "save into a directory that does not exist", c_qzsave, 0, E(IO), "No such file or directory", 0},
    {A_FQZ, "save over a path that is a directory", c_qzsave, 1, E(IO), "Is a directory", 0},
    {A_FQZ, "save to an empty path", c_qzsave, 2, E(INVALID_ARG), "path is NULL or empty", 0},
    {A_FQZ, "save a NULL quantizer", c_qzsave, 3, E(INVALID_ARG), "NULL argument", 0},

    /* ---- files: codes */
    {A_FCA, "loaded with another quantizer of the same code size", c_caf, 0, E(MISMATCH),
     "codes were written for another quantizer", 0},
    {A_FCA, "loaded with a quantizer of another code size", c_caf, 1, E(MISMATCH),
     "codes were written for another quantizer", 0},
    {A_FCA, "missing file", c_caf, 2, E(IO), "No such file or directory", 0},
    {A_FCA, "a directory", c_caf, 3, E(IO), "is not a regular file", 0},
    {A_FCA, "empty file", c_caf, 4, E(FORMAT), "empty: 0 bytes", 0},
    {A_FCA, "truncated inside the magic (3 bytes)", c_caf, 5, E(FORMAT), "truncated: 3 bytes", 0},
    {A_FCA, "truncated inside the header (20 bytes)", c_caf, 6, E(FORMAT), "the header alone is 40", 0},
    {A_FCA, "truncated inside the records (100 bytes)", c_caf, 7, E(FORMAT), "header says 244 bytes, file has 100",
     0},
    {A_FCA, "last byte missing", c_caf, 8, E(FORMAT), "header says 244 bytes, file has 243", 0},
    {A_FCA, "one byte appended", c_caf, 9, E(FORMAT), "1 trailing bytes", 0},
    {A_FCA, "a bit flipped in the header (`n`)", c_caf, 10, E(CHECKSUM), "header checksum mismatch", 0},
    {A_FCA, "a bit flipped in a record", c_caf, 11, E(CHECKSUM), "records checksum mismatch", 0},
    {A_FCA, "a bit flipped in the records CRC", c_caf, 12, E(CHECKSUM), "records checksum mismatch", 0},
    {A_FCA, "wrong magic", c_caf, 13, E(FORMAT), "not a tq code file", 0},
    {A_FCA, "a quantizer file", c_caf, 14, E(FORMAT), "not a tq code file (magic is not \"TQCA\"; 224 bytes)", 0},
    {A_FCA, "format version 2.0", c_caf, 15, E(VERSION), "reads major version 1 only", 0},
    {A_FCA, "`n = 2^62` records (CRC fixed)", c_caf, 16, E(SIZE), "size overflows", 0},
    {A_FCA, "`n = 1000` records in a file of 10 (CRC fixed)", c_caf, 17, E(FORMAT), "truncated: header says", 0},
    {A_FCA, "`tq_codes_inspect`: `code_size = 0` (CRC fixed)", c_caf, 18, E(FORMAT), "code_size is 0", 0},
    {A_FCA, "`tq_codes_inspect`: truncated inside the records", c_caf, 19, E(FORMAT), "truncated: header says", 0},
    {A_FCA, "save `n = SIZE_MAX / 2` records", c_casave, 0, E(SIZE), "overflow", 0},
    {A_FCA, "save NULL codes with `n = 3`", c_casave, 1, E(INVALID_ARG), "codes is NULL", 0},
    {A_FCA, "save into a directory that does not exist", c_casave, 2, E(IO), "No such file or directory", 0},

    /* ---- files: index */
    {A_FIX, "missing file", c_ixf, 0, E(IO), "cannot open: No such file or directory", 0},
    {A_FIX, "a directory", c_ixf, 1, E(IO), "not a regular file", 0},
    {A_FIX, "empty file", c_ixf, 2, E(FORMAT), "truncated: 0 bytes", 0},
    {A_FIX, "truncated inside the magic (2 bytes)", c_ixf, 3, E(FORMAT), "truncated: 2 bytes", 0},
    {A_FIX, "truncated inside the header (100 bytes)", c_ixf, 4, E(FORMAT), "truncated: 100 bytes", 0},
    {A_FIX, "truncated at half its length", c_ixf, 5, E(FORMAT), "truncated: section", 0},
    {A_FIX, "last byte missing", c_ixf, 6, E(FORMAT), "truncated: section", 0},
    {A_FIX, "one byte appended", c_ixf, 7, E(CHECKSUM), "payload checksum mismatch", 0},
    {A_FIX, "a bit flipped in the header (`dim`)", c_ixf, 8, E(CHECKSUM), "header checksum mismatch", 0},
    {A_FIX, "a bit flipped in the payload", c_ixf, 9, E(CHECKSUM), "payload checksum mismatch", 0},
    {A_FIX, "a bit flipped in the header CRC", c_ixf, 10, E(CHECKSUM), "header checksum mismatch", 0},
    {A_FIX, "wrong magic", c_ixf, 11, E(FORMAT), "not a tq index file", 0},
    {A_FIX, "a quantizer file (224 bytes)", c_ixf, 12, E(FORMAT), "not a tq index file", 0},
    {A_FIX, "a quantizer file shorter than an index header (100 bytes)", c_ixf, 13, E(FORMAT),
     "not a tq index file", 0},
    {A_FIX, "format version 2.0", c_ixf, 14, E(VERSION), "index format 2.0 is not supported", 0},
    {A_FIX, "`n = 41` with next id 40 (CRCs fixed)", c_ixf, 15, E(FORMAT), "41 vectors but next id 40", 0},
    {A_FIX, "`n = next_id = 2^40` (CRCs fixed)", c_ixf, 16, E(FORMAT), "section 2 is at", 0},
    {A_FIX, "two slots with the same id (CRCs fixed)", c_ixf, 17, E(FORMAT), "id 0 appears twice", 0},
    {A_FIX, "a negative id (CRCs fixed)", c_ixf, 18, E(FORMAT), "id -5 of slot 3 is outside", 0},
    {A_FIX, "`tq_index_open_mmap` of a file truncated at half", c_ixf, 19, E(FORMAT), "truncated: section", 0},
    {A_FIX, "`tq_index_open_mmap` of a missing file", c_ixf, 20, E(IO), "No such file or directory", 0},
    {A_FIX, "save into a directory that does not exist", c_ixsave, 0, E(IO), "No such file or directory", 0},
    {A_FIX, "save over a path that is a directory", c_ixsave, 1, E(IO), "Is a directory", 0},
    {A_FIX, "save to a NULL path", c_ixsave, 2, E(INVALID_ARG), "NULL index or path", 0},

    /* ---- files: vectors and ids */
    {A_FVEC, "missing file", c_vec, 0, E(IO), "No such file or directory", 0},
    {A_FVEC, "a directory", c_vec, 1, E(IO), "is not a regular file", 0},
    {A_FVEC, "`.fvecs`: empty file", c_vec, 2, E(FORMAT), "empty file", 0},
    {A_FVEC, "`.fvecs`: 2 bytes", c_vec, 3, E(FORMAT), "truncated: 2 bytes", 0},
    {A_FVEC, "`.fvecs`: partial last row", c_vec, 4, E(FORMAT), "truncated: row 3 has 8 of 20 bytes", 0},
    {A_FVEC, "`.fvecs`: rows of dims 4, 5, 4", c_vec, 5, E(FORMAT), "ragged: row 1 has dim 5, row 0 has 4", 0},
    {A_FVEC, "`.fvecs`: negative dim (-4)", c_vec, 6, E(DIM), "row 0 declares dim -4", 0},
    {A_FVEC, "`.fvecs`: dim 0", c_vec, 7, E(DIM), "row 0 declares dim 0", 0},
    {A_FVEC, "`.fvecs`: dim 100000", c_vec, 8, E(DIM), "row 0 declares dim 100000", 0},
    {A_FVEC, "`.fvecs`: dim 65536 in a 12-byte file", c_vec, 9, E(FORMAT), "row 0 has 12 of 262148 bytes", 0},
    {A_FVEC, "`.fvecs`: NaN at row 1, column 2", c_vec, 10, E(NONFINITE), "row 1, column 2 is NaN", 0},
    {A_FVEC, "`.fvecs`: -Inf at row 2, column 0", c_vec, 11, E(NONFINITE), "row 2, column 0 is Inf", 0},
    {A_FVEC, "`.bvecs`: partial last row", c_vec, 12, E(FORMAT), "truncated: row 1 has", 0},
    {A_FVEC, "`.ivecs` given to `tq_read_vectors`", c_vec, 13, E(FORMAT), "read it with tq_read_ids", 0},
    {A_FVEC, "`.npy`: dtype `<f8`", c_vec, 14, E(FORMAT), "npy dtype '<f8' is not supported", 0},
    {A_FVEC, "`.npy`: big-endian `>f4`", c_vec, 15, E(FORMAT), "npy dtype '>f4' is not supported", 0},
    {A_FVEC, "`.npy`: Fortran order", c_vec, 16, E(FORMAT), "Fortran order", 0},
    {A_FVEC, "`.npy`: 1-D", c_vec, 17, E(FORMAT), "npy array is 1-D", 0},
    {A_FVEC, "`.npy`: 3-D", c_vec, 18, E(FORMAT), "npy array is 3-D", 0},
    {A_FVEC, "`.npy`: header is not a dict", c_vec, 19, E(FORMAT), "not a Python dict", 0},
    {A_FVEC, "`.npy`: header with an unknown key", c_vec, 20, E(FORMAT), "unexpected key 'x'", 0},
    {A_FVEC, "`.npy`: header without `shape`", c_vec, 21, E(FORMAT), "lacks 'shape'", 0},
    {A_FVEC, "`.npy`: format version 9.0", c_vec, 22, E(FORMAT), "npy format version 9.0 is not supported", 0},
    {A_FVEC, "`.npy`: data cut short", c_vec, 23, E(FORMAT), "truncated: shape (4, 3) needs 48 data bytes", 0},
    {A_FVEC, "`.npy`: 4 bytes after the data", c_vec, 24, E(FORMAT), "4 trailing bytes", 0},
    {A_FVEC, "`.npy`: shape (2^40, 4) in a small file", c_vec, 25, E(FORMAT), "truncated: shape (1099511627776, 4)",
     0},
    {A_FVEC, "`.npy`: shape (2^62, 65536): the byte count overflows", c_vec, 26, E(FORMAT), "overflows", 0},
    {A_FVEC, "`.npy`: shape (4, 0)", c_vec, 27, E(DIM), "npy dim is 0, must be 1..65536", 0},
    {A_FVEC, "named `.npy` but without the npy magic", c_vec, 28, E(FORMAT), "lacks the npy magic", 0},
    {A_FVEC, "`.npy`: NaN in the data", c_vec, 29, E(NONFINITE), "row 3, column 1 is NaN", 0},
    {A_FVEC, "`.npy`: only the magic and version (8 bytes)", c_vec, 30, E(FORMAT), "truncated npy preamble", 0},
    {A_FVEC, "`.npy`: cut inside the header", c_vec, 31, E(FORMAT), "truncated: npy header says", 0},
    {A_FVEC, "`x.fvecs:train` (a dataset suffix on a file that is not HDF5)", c_vec, 32, E(FORMAT),
     "is not an HDF5 file", 0},
    {A_FVEC, "named `.h5` but without the HDF5 signature", c_vec, 33, E(FORMAT), "lacks the HDF5 signature", 0},
    {A_FVEC, "NULL output pointer", c_vec, 34, E(INVALID_ARG), "NULL argument", 0},
    {A_FVEC, "`tq_read_ids` of a float32 `.npy`", c_vec, 35, E(FORMAT), "not supported for ids", 0},
    {A_FVEC, "`tq_read_ids` of an `.fvecs` file", c_vec, 36, E(FORMAT), "read it with tq_read_vectors", 0},
    {A_FVEC, "`tq_read_ids`: `.ivecs` rows of 3 then 2 ids", c_vec, 37, E(FORMAT), "ragged: row 1 has dim 2", 0},
    {A_FVEC, "`tq_read_ids`: `.ivecs` with a partial last row", c_vec, 38, E(FORMAT), "truncated: row 1 has", 0},
    {A_FVEC, "`tq_read_ids`: `.npy` of dtype `<u8`", c_vec, 39, E(FORMAT), "npy dtype '<u8' is not supported", 0},
    {A_FVEC, "`tq_write_ids`: an id of 2^31", c_ids, 0, E(SIZE), "is 2147483648, outside int32", 0},
    {A_FVEC, "`tq_write_ids` (`.npy`): an id of -2^31 - 1", c_ids, 1, E(SIZE), "is -2147483649, outside int32", 0},
    {A_FVEC, "`tq_write_ids`: `cols = 0`", c_ids, 2, E(DIM), "cols is 0, must be 1..65536", 0},
    {A_FVEC, "`tq_write_ids`: `cols = 65537`", c_ids, 3, E(DIM), "cols is 65537", 0},
    {A_FVEC, "`tq_write_ids`: `n = SIZE_MAX / 2` rows", c_ids, 4, E(SIZE), "overflow", 0},
    {A_FVEC, "`tq_write_ids`: NULL data with `n = 2`", c_ids, 5, E(INVALID_ARG), "data is NULL", 0},
    {A_FVEC, "`tq_write_ids` into a directory that does not exist", c_ids, 6, E(IO), "No such file or directory",
     0},
    {A_FVEC, "`tq_write_ids` to an empty path", c_ids, 7, E(INVALID_ARG), "path is NULL or empty", 0},

    /* ---- files: HDF5 */
    {A_FH5, "HDF5 signature followed by garbage", c_h5, 0, E(FORMAT), "libhdf5 cannot open it", 1},
    {A_FH5, "no dataset `train` (the default)", c_h5, 1, E(FORMAT), "no dataset 'train' (the file has: grp, test)", 1},
    {A_FH5, "`t.h5:nope`: a missing dataset", c_h5, 2, E(FORMAT), "no dataset 'nope'", 1},
    {A_FH5, "`t.h5:grp`: a group, not a dataset", c_h5, 3, E(FORMAT), "'grp' is not a dataset", 1},
    {A_FH5, "`tq_read_ids` of a float dataset (`t.h5:test`)", c_h5, 4, E(FORMAT), "float", 1},
    {A_FH5, "`tq_read_ids`: no dataset `neighbors` (the default)", c_h5, 5, E(FORMAT), "no dataset 'neighbors'", 1},
    {A_FH5, "`t.h5:` (empty dataset name)", c_h5, 6, E(INVALID_ARG), "empty dataset name", 0},
    {A_FH5, "`missing.h5:train` (no such file)", c_h5, 7, E(IO), "No such file or directory", 0},

    /* ---- index */
    {A_INDEX, "create with a NULL config", c_ixc, 0, E(INVALID_ARG), "NULL index config", 0},
    {A_INDEX, "create with a NULL output", c_ixc, 1, E(INVALID_ARG), "out is NULL", 0},
    {A_INDEX, "unknown metric 5", c_ixc, 2, E(INVALID_ARG), "unknown metric 5", 0},
    {A_INDEX, "unknown rerank kind 4", c_ixc, 3, E(INVALID_ARG), "unknown rerank kind 4", 0},
    {A_INDEX, "code rerank with `rerank_bits = 0`", c_ixc, 4, E(BITS), "rerank_bits 0 must be 1..8", 0},
    {A_INDEX, "code rerank with `rerank_bits = 9`", c_ixc, 5, E(BITS), "rerank_bits 9 must be 1..8", 0},
    {A_INDEX, "unknown center mode 5", c_ixc, 6, E(INVALID_ARG), "unknown center mode 5", 0},
    {A_INDEX, "`TQ_CENTER_GIVEN` without a center vector", c_ixc, 7, E(INVALID_ARG), "needs center_vector", 0},
    {A_INDEX, "`TQ_CENTER_GIVEN` with a NaN in the center", c_ixc, 8, E(NONFINITE), "center channel 4 is not finite",
     0},
    {A_INDEX, "a per-channel uniform quantizer (needs calibration)", c_ixc, 9, E(INVALID_ARG),
     "an index cannot use it", 0},
    {A_INDEX, "quantizer `dim = 0`", c_ixc, 10, E(DIM), "dim must be >= 1", 0},
    {A_INDEX, "quantizer `bits = 9`", c_ixc, 11, E(BITS), "bits = 9", 0},
    {A_INDEX, "the QJL variant with a norm correction (the index default is `TQ_NORM_UNBIASED`)", c_ixc, 12,
     E(INVALID_ARG), "mse variant only", 0},
    {A_INDEX, "add: NaN in row 2", c_ixadd, 0, E(NONFINITE), "vector row 2, column 6 is NaN", 0},
    {A_INDEX, "add: +Inf in row 0", c_ixadd, 1, E(NONFINITE), "vector row 0, column 0 is Inf", 0},
    {A_INDEX, "add: a row whose norm overflows float32", c_ixadd, 2, E(NONFINITE),
     "vector row 1: its norm overflows float32", 0},
    {A_INDEX, "add: the same id twice in the batch", c_ixadd, 3, E(INVALID_ARG),
     "id 100 (row 2) is already in the index or repeated in the batch", 0},
    {A_INDEX, "add: an id already in the index", c_ixadd, 4, E(INVALID_ARG), "id 5 (row 1) is already in the index",
     0},
    {A_INDEX, "add: a negative id", c_ixadd, 5, E(INVALID_ARG), "id -7 (row 1) is negative", 0},
    {A_INDEX, "add: `n = SIZE_MAX / 2`", c_ixadd, 6, E(SIZE), "overflows", 0},
    {A_INDEX, "add: `n = SIZE_MAX / (4 * dim) + 1` (n * dim fits, the bytes do not)", c_ixadd, 7, E(SIZE),
     "overflows", 0},
    {A_INDEX, "add: NULL vectors", c_ixadd, 8, E(INVALID_ARG), "vectors are NULL", 0},
    {A_INDEX, "add to a NULL index", c_ixadd, 9, E(INVALID_ARG), "NULL index", 0},
    {A_INDEX, "first add (which sets the center) with a NaN", c_ixfirst, 0, E(NONFINITE), "is NaN", 0},
    {A_INDEX, "first add (which sets the center) with a norm beyond float32", c_ixfirst, 1, E(NONFINITE),
     "vector row 2: its norm overflows float32", 0},
    {A_INDEX, "add a zero vector (uncentered index)", c_ixzero, 0, TQ_OK, "", 0},
    {A_INDEX, "remove ids not in the index (1000, -1, INT64_MAX)", c_ixrm, 0, TQ_OK, "", 0},
    {A_INDEX, "remove: NULL ids with `n = 2`", c_ixrm, 1, E(INVALID_ARG), "ids are NULL", 0},
    {A_INDEX, "remove: `n = SIZE_MAX / 2`", c_ixrm, 2, E(SIZE), "overflows", 0},
    {A_INDEX, "remove from a NULL index", c_ixrm, 3, E(INVALID_ARG), "NULL index", 0},
    {A_INDEX, "search with `k = 0`", c_ixs, 0, TQ_OK, "", 0},
    {A_INDEX, "search: NaN in query 1", c_ixs, 1, E(NONFINITE), "query row 1, column 3 is NaN", 0},
    {A_INDEX, "search: query 1 of norm 1.7e38 (finite, but its scores overflow)", c_ixs, 2, E(NONFINITE),
     "query row 1: its norm 1.7e+38 plus the index center's", 0},
    {A_INDEX, "search: `nq = SIZE_MAX / (4 * dim) + 1`", c_ixs, 3, E(SIZE), "overflows", 0},
    {A_INDEX, "search: `k = SIZE_MAX / 8` (nq * k ids do not fit)", c_ixs, 4, E(SIZE), "overflows", 0},
    {A_INDEX, "search: NULL queries", c_ixs, 5, E(INVALID_ARG), "queries or ids is NULL", 0},
    {A_INDEX, "search a NULL index", c_ixs, 6, E(INVALID_ARG), "NULL index", 0},
    {A_INDEX, "search an empty index (k = 5)", c_ixs, 7, TQ_OK, "", 0},
    {A_INDEX, "search an index of 2 vectors with `k = 5`", c_ixs, 8, TQ_OK, "", 0},

    /* ---- KV cache */
    {A_KV, "create with a NULL config", c_kvc, 0, E(INVALID_ARG), "config is NULL", 0},
    {A_KV, "create with a NULL output", c_kvc, 1, E(INVALID_ARG), "output pointer is NULL", 0},
    {A_KV, "`kv_heads = 0`", c_kvc, 2, E(INVALID_ARG), "kv_heads = 0, must be 1..4096", 0},
    {A_KV, "`kv_heads = 5000`", c_kvc, 3, E(INVALID_ARG), "kv_heads = 5000", 0},
    {A_KV, "`head_dim = 0`", c_kvc, 4, E(DIM), "head_dim = 0, must be 1..65536", 0},
    {A_KV, "`head_dim = 70000`", c_kvc, 5, E(DIM), "head_dim = 70000", 0},
    {A_KV, "key quantizer of dim 32 for `head_dim = 16`", c_kvc, 6, E(DIM), "key quantizer's dim 32 is not head_dim 16",
     0},
    {A_KV, "key `bits = 0`", c_kvc, 7, E(BITS), "key quantizer: bits = 0 for the vector", 0},
    {A_KV, "value `bits = 9`", c_kvc, 8, E(BITS), "value quantizer: bits = 9 for the vector", 0},
    {A_KV, "unknown factor precision 2", c_kvc, 9, E(INVALID_ARG), "unknown factor precision 2", 0},
    {A_KV, "unknown outlier mode 2", c_kvc, 10, E(INVALID_ARG), "unknown outlier mode 2", 0},
    {A_KV, "unknown center mode 4", c_kvc, 11, E(INVALID_ARG), "unknown center mode 4", 0},
    {A_KV, "per-channel uniform keys", c_kvc, 12, E(INVALID_ARG), "needs calibration", 0},
    {A_KV, "an outlier channel list with `TQ_KV_OUTLIERS_FIRST`", c_kvc, 13, E(INVALID_ARG),
     "use TQ_KV_OUTLIERS_FIXED", 0},
    {A_KV, "`outlier_count = head_dim`", c_kvc, 14, E(INVALID_ARG), "key quantizer: outlier_count 16 must be below dim",
     0},
    {A_KV, "`tq_kv_token_bytes(NULL, ...)`", c_kvc, 15, E(INVALID_ARG), "config is NULL", 0},
    {A_KV, "append: NaN in a key", c_kva, 0, E(NONFINITE), "key of token 1, head 1, channel 3 is NaN", 0},
    {A_KV, "append: +Inf in a value", c_kva, 1, E(NONFINITE), "value of token 0, head 0, channel 0 is Inf", 0},
    {A_KV, "append: a value of norm 80000 (beyond fp16 factors) entering the exact window", c_kva, 2, E(NONFINITE),
     "value of token 12, head 0: a per-token factor (80000) exceeds the fp16 range", 0},
    {A_KV, "append: the same value with `TQ_KV_FACTOR_F32`", c_kva, 3, TQ_OK, "", 0},
    {A_KV, "append: a key whose norm overflows float32", c_kva, 4, E(NONFINITE),
     "key of token 12, head 0: its norm overflows float32", 0},
    {A_KV, "append: a value beyond fp16 factors, no window (encoded at once)", c_kva, 5, E(NONFINITE),
     "value of token 12, head 0: a per-token factor (80000)", 0},
    {A_KV, "append: uniform GROUP values, a group range beyond fp16", c_kva, 6, E(NONFINITE),
     "value of token 12, head 0: group range 133333 exceeds", 0},
    {A_KV, "append: `n = SIZE_MAX / 2` tokens", c_kva, 7, E(SIZE), "tokens is too large", 0},
    {A_KV, "append: NULL keys", c_kva, 8, E(INVALID_ARG), "keys or values is NULL", 0},
    {A_KV, "append to a NULL cache", c_kva, 9, E(INVALID_ARG), "cache is NULL", 0},
    {A_KV, "append zero tokens (all channels 0) to a new cache", c_kvzero, 0, TQ_OK, "", 0},
    {A_KV, "attend on an empty cache", c_kvq, 0, E(STATE), "the cache is empty", 0},
    {A_KV, "attend: `q_heads = 3` with 2 KV heads", c_kvq, 1, E(INVALID_ARG), "must be a positive multiple", 0},
    {A_KV, "attend: `q_heads = 0`", c_kvq, 2, E(INVALID_ARG), "must be a positive multiple", 0},
    {A_KV, "attend: 129 query heads per KV head", c_kvq, 3, E(INVALID_ARG), "at most 128 supported", 0},
    {A_KV, "attend: `q_pos[1] = 12` (= length)", c_kvq, 4, E(INVALID_ARG), "q_pos[1] = 12 is outside the 12 tokens",
     0},
    {A_KV, "attend: `q_pos[0] = -1`", c_kvq, 5, E(INVALID_ARG), "q_pos[0] = -1 is outside", 0},
    {A_KV, "attend: `scale = NaN`", c_kvq, 6, E(INVALID_ARG), "must be finite and >= 0", 0},
    {A_KV, "attend: `scale = -1`", c_kvq, 7, E(INVALID_ARG), "scale -1 must be finite", 0},
    {A_KV, "attend: NaN in query token 1", c_kvq, 8, E(NONFINITE), "query of token 1, head 2, channel 5 is NaN", 0},
    {A_KV, "attend: `nq = SIZE_MAX / (4 * q_heads * head_dim) + 1`", c_kvq, 9, E(SIZE), "is too large", 0},
    {A_KV, "attend: NULL queries", c_kvq, 10, E(INVALID_ARG), "queries or output is NULL", 0},
    {A_KV, "logits: `ntok = 13` > length", c_kvq, 11, E(INVALID_ARG), "ntok = 13 exceeds the 12 tokens", 0},
    {A_KV, "decode tokens 10..14 of 12", c_kvq, 12, E(INVALID_ARG), "5 tokens from position 10 are outside", 0},
    {A_KV, "decode from position `SIZE_MAX`", c_kvq, 13, E(INVALID_ARG), "are outside the 12 tokens", 0},
    {A_KV, "`tq_attention_f32` with 0 tokens", c_att, 0, E(STATE), "no tokens to attend to", 0},
    {A_KV, "`tq_attention_f32` with `ntok = SIZE_MAX / 4 + 1`", c_att, 1, E(SIZE), "is too large", 0},
    {A_KV, "`tq_attention_f32` with `q_heads = 3` for 2 KV heads", c_att, 2, E(INVALID_ARG), "positive multiple", 0},
    {A_KV, "`tq_attention_f32` with `q_pos[1] = ntok`", c_att, 3, E(INVALID_ARG), "q_pos[1] = 12 is outside", 0},
    {A_KV, "`tq_attention_f32` with a NaN value", c_att, 4, E(NONFINITE), "value of token 5, head 1, channel 2 is NaN",
     0},
    {A_KV, "`tq_attention_f32` with +Inf in query token 1", c_att, 5, E(NONFINITE),
     "query of token 1, head 0, channel 1 is Inf", 0},
    {A_KV, "`tq_attention_f32` with NULL keys", c_att, 6, E(INVALID_ARG), "NULL argument", 0},

    /* ---- threads */
    {A_THREADS, "`tq_set_threads(257)`", c_thr, 0, E(INVALID_ARG), "threads = 257, at most 256", 0},
    {A_THREADS, "`tq_set_threads(UINT32_MAX)`", c_thr, 1, E(INVALID_ARG), "at most 256", 0},
    {A_THREADS, "encode 1000 rows, NaN in row 700", c_thr, 2, E(NONFINITE), "input row 700 channel 3 is NaN", 0},
    {A_THREADS, "encode 1000 rows (uniform GROUP), a group range beyond fp16 in row 900", c_thr, 3, E(NONFINITE),
     "input row 900: group range", 0},
    {A_THREADS, "search 64 queries, NaN in query 37", c_thr, 4, E(NONFINITE), "query row 37, column 0 is NaN", 0},
    {A_THREADS, "search 64 queries, query 50 of norm 5.7e38", c_thr, 5, E(NONFINITE), "query row 50: its norm", 0},
    {A_THREADS, "attend 16 query tokens, NaN in token 9", c_thr, 6, E(NONFINITE),
     "query of token 9, head 2, channel 5 is NaN", 0},
};

#define NCASES (sizeof cases / sizeof cases[0])

/* ============================================================ the document */

typedef struct sbuf {
    char *s;
    size_t n, cap;
} sbuf;

static void sb_add(sbuf *b, const char *fmt, ...) PRINTF_2_3;
static void sb_add(sbuf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int need = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (need < 0) return;
    if (b->n + (size_t)need + 1 > b->cap) {
        size_t cap = (b->cap + (size_t)need + 1) * 2;
        char *ns = realloc(b->s, cap);
        if (!ns) return;
        b->s = ns;
        b->cap = cap;
    }
    va_start(ap, fmt);
    vsnprintf(b->s + b->n, b->cap - b->n, fmt, ap);
    va_end(ap);
    b->n += (size_t)need;
}

static const char *status_name(tq_status s) {
    static const char *const names[] = {"TQ_OK", "TQ_ERR_INVALID_ARG", "TQ_ERR_DIM", "TQ_ERR_BITS",
                                        "TQ_ERR_NONFINITE", "TQ_ERR_SIZE", "TQ_ERR_NOMEM", "TQ_ERR_IO",
                                        "TQ_ERR_FORMAT", "TQ_ERR_CHECKSUM", "TQ_ERR_VERSION", "TQ_ERR_STATE",
                                        "TQ_ERR_MISMATCH"};
    return (unsigned)s < sizeof names / sizeof names[0] ? names[s] : "?";
}

static int is_hex(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); }
static int is_word(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

/* out[0..o) ends with a word that checksums and fingerprints follow in messages */
static int after_crc_word(const char *out, size_t o) {
    static const char *const words[] = {"stored ", "computed ", "fingerprint ", "quantizer's is "};
    for (size_t w = 0; w < sizeof words / sizeof words[0]; w++) {
        size_t n = strlen(words[w]);
        if (o >= n && !strncmp(out + o - n, words[w], n)) return 1;
    }
    return 0;
}

/* The message with the machine-specific parts replaced (see the top of the file). */
static void sanitize(const char *in, char *out, size_t cap) {
    size_t dl = strlen(g_dir), o = 0;
    for (size_t i = 0; in[i] && o + 16 < cap;) {
        if (!strncmp(in + i, g_dir, dl)) {
            o += (size_t)snprintf(out + o, cap - o, "<tmp>");
            i += dl;
            continue;
        }
        if (!strncmp(in + i, ".tmp.", 5) && in[i + 5] >= '0' && in[i + 5] <= '9') {
            size_t j = i + 5;
            while (in[j] >= '0' && in[j] <= '9') j++;
            if (in[j] == '.' && in[j + 1] >= '0' && in[j + 1] <= '9') {
                j++;
                while (in[j] >= '0' && in[j] <= '9') j++;
                o += (size_t)snprintf(out + o, cap - o, ".tmp.<pid>.<n>");
                i = j;
                continue;
            }
        }
        if (i > 0 && in[i - 1] == ' ' && is_hex(in[i]) && after_crc_word(out, o)) {
            size_t j = i;
            while (is_hex(in[j])) j++;
            if (j - i == 8 && !is_word(in[j])) {
                o += (size_t)snprintf(out + o, cap - o, "<crc>");
                i = j;
                continue;
            }
        }
        out[o++] = in[i++];
    }
    out[o] = '\0';
}

/* Table cell text: '|' escaped, in a code span when asked. */
static void sb_cell(sbuf *b, const char *text, int code) {
    if (code) sb_add(b, "`");
    for (const char *c = text; *c; c++) {
        if (*c == '|') sb_add(b, "\\|");
        else if (*c == '`' && code) sb_add(b, "'");
        else sb_add(b, "%c", *c);
    }
    if (code) sb_add(b, "`");
}

static const char *const doc_intro =
    "# Bad input: what each one gets\n"
    "\n"
    "<!-- Generated by tests/test_bad_input.c; do not edit. Regenerate with\n"
    "     build/test_bad_input --markdown > docs/bad-input.md -->\n"
    "\n"
    "The rule: bad input (NaN, Inf, zero vectors, wrong dimensions, truncated or corrupted files, absurd\n"
    "sizes) gets a clear error and loses no stored data. The library never aborts, prints or exits.\n"
    "\n"
    "Every row below is a real call that `tests/test_bad_input.c` makes. The page is that program's output\n"
    "(`build/test_bad_input --markdown > docs/bad-input.md`), and ctest runs the program, which fails when\n"
    "this file differs from what it would print, so the tables say what the library does today.\n"
    "\n"
    "How errors surface: every fallible call returns a `tq_status` (`TQ_OK` is 0; the values are pinned in\n"
    "`include/tq.h`), and on failure `tq_last_error()` holds a one-line English detail for the calling\n"
    "thread. The *message* column is that text as captured at run time, with the machine-specific parts\n"
    "replaced: `<tmp>` is the test's temporary directory, `<pid>` and `<n>` the variable parts of a\n"
    "temporary file name, `<crc>` a checksum or fingerprint (a quantizer's bytes include codebooks computed\n"
    "with libm). For calls that succeed the message is empty (—).\n"
    "\n"
    "The *state after* column is what the test checked after the call: caller buffers are filled with a\n"
    "sentinel byte before the call and must still hold it; files on disk are compared byte for byte; an\n"
    "index or a KV cache must answer the same queries bit for bit. Every call also runs with stdout and\n"
    "stderr redirected, and must write nothing to either.\n";

static void build_doc(sbuf *b, char (*msgs)[600], char (*states)[600], const tq_status *got) {
    sb_add(b, "%s", doc_intro);
    for (int a = 0; a < A_COUNT; a++) {
        if (a == A_FH5) sb_add(b, "\n<!-- hdf5:begin -->");
        sb_add(b, "\n## %s\n\n%s\n\n", area_title[a], area_intro[a]);
        sb_add(b, "| bad input | status | message | state after |\n|---|---|---|---|\n");
        for (size_t i = 0; i < NCASES; i++) {
            if (cases[i].area != a) continue;
            sb_add(b, "| %s | `%s` | ", cases[i].what, status_name(got[i]));
            if (msgs[i][0]) sb_cell(b, msgs[i], 1);
            else sb_add(b, "—");
            sb_add(b, " | ");
            sb_cell(b, states[i], 0);
            sb_add(b, " |\n");
        }
        if (a == A_FH5) sb_add(b, "<!-- hdf5:end -->\n");
    }
}

/* text without the HDF5 section (builds without libhdf5 compare the rest) */
static void drop_h5(char *t) {
    char *s = strstr(t, "\n<!-- hdf5:begin -->"), *e = s ? strstr(s, "<!-- hdf5:end -->\n") : NULL;
    if (s && e) memmove(s, e + strlen("<!-- hdf5:end -->\n"), strlen(e + strlen("<!-- hdf5:end -->\n")) + 1);
}

static void compare_doc(char *gen_text) {
    const char *doc = TQ_TEST_DATA_DIR "/../../docs/bad-input.md";
    size_t n = 0;
    uint8_t *raw = get_file(doc, &n);
    char *have = raw ? realloc(raw, n + 1) : NULL;
    if (!have) {
        free(raw);
        CHECK(0, "cannot read %s; make it with: build/test_bad_input --markdown > docs/bad-input.md", doc);
        return;
    }
    have[n] = '\0';
    if (!g_have_hdf5) {
        drop_h5(have);
        drop_h5(gen_text);
    }
    int same = strcmp(have, gen_text) == 0;
    if (!same) {
        size_t line = 1, i = 0;
        while (have[i] && have[i] == gen_text[i]) line += have[i++] == '\n';
        size_t s1 = i, s2 = i;
        while (s1 > 0 && have[s1 - 1] != '\n') s1--;
        while (s2 > 0 && gen_text[s2 - 1] != '\n') s2--;
        int l1 = (int)(strcspn(have + s1, "\n")), l2 = (int)(strcspn(gen_text + s2, "\n"));
        fprintf(stderr,
                "docs/bad-input.md is out of date: first difference at line %zu\n  file: %.*s\n  now:  %.*s\n"
                "Regenerate it: build/test_bad_input --markdown > docs/bad-input.md\n",
                line, l1, have + s1, l2, gen_text + s2);
    }
    CHECK(same, "docs/bad-input.md matches the generated text%s", g_have_hdf5 ? "" : " (HDF5 table skipped)");
    free(have);
}

/* ================================================================= main */

static int g_saved_out = -1, g_saved_err = -1;

static void capture_begin(void) {
    fflush(stdout);
    fflush(stderr);
    int fd = open(path("printed.txt"), O_WRONLY | O_CREAT | O_TRUNC, 0666);
    g_saved_out = dup(1);
    g_saved_err = dup(2);
    if (fd >= 0) {
        dup2(fd, 1);
        dup2(fd, 2);
        close(fd);
    }
}

static long capture_end(void) {
    fflush(stdout);
    fflush(stderr);
    if (g_saved_out >= 0) dup2(g_saved_out, 1);
    if (g_saved_err >= 0) dup2(g_saved_err, 2);
    if (g_saved_out >= 0) close(g_saved_out);
    if (g_saved_err >= 0) close(g_saved_err);
    struct stat st;
    long n = stat(path("printed.txt"), &st) == 0 ? (long)st.st_size : -1;
    unlink(path("printed.txt"));
    return n;
}

int main(int argc, char **argv) {
    int markdown = argc > 1 && strcmp(argv[1], "--markdown") == 0;
    if (argc > 1 && !markdown) {
        fprintf(stderr, "usage: %s [--markdown]\n", argv[0]);
        return 2;
    }
    int ready = setup();
    CHECK(ready, "fixtures");
    if (!markdown) /* stdout and stderr are redirected around each case: a crash leaves its report there */
        printf("work directory %s (if this dies, see printed.txt there)\n", g_dir);
    static char msgs[NCASES][600], states[NCASES][600];
    static tq_status got[NCASES];
    int area_cases[A_COUNT] = {0};
    for (size_t i = 0; ready && i < NCASES; i++) {
        const bad_case *c = &cases[i];
        tq_status want = c->want;
        const char *want_msg = c->msg;
        if (c->h5 && !g_have_hdf5) {
            want = TQ_ERR_FORMAT;
            want_msg = "built without HDF5 support";
        }
        g_took = 0;
        g_msg[0] = g_state[0] = g_state_bad[0] = '\0';
        g_status = TQ_OK;
        capture_begin();
        tq_status s = c->fn(c->arg);
        long printed = capture_end();
        const char *area = area_title[c->area];
        CHECK(g_took == 1, "[%s] %s: the case captured %d calls", area, c->what, g_took);
        CHECK(s == g_status, "[%s] %s: returned %s, captured %s", area, c->what, status_name(s),
              status_name(g_status));
        CHECK(s == want, "[%s] %s: %s, want %s (%s)", area, c->what, status_name(s), status_name(want), g_msg);
        if (want == TQ_OK) CHECK(g_msg[0] == '\0', "[%s] %s: TQ_OK with message '%s'", area, c->what, g_msg);
        else CHECK(strstr(g_msg, want_msg) != NULL, "[%s] %s: message '%s' lacks '%s'", area, c->what, g_msg, want_msg);
        CHECK(!g_state_bad[0], "[%s] %s: state after: not \"%s\"", area, c->what, g_state_bad);
        CHECK(printed == 0, "[%s] %s: the library wrote %ld bytes to stdout/stderr", area, c->what, printed);
        sanitize(g_msg, msgs[i], sizeof msgs[i]);
        snprintf(states[i], sizeof states[i], "%s", g_state);
        got[i] = s;
        area_cases[c->area]++;
    }
    sbuf doc = {NULL, 0, 0};
    build_doc(&doc, msgs, states, got);
    if (ready) {
        if (markdown) {
            if (check_failed_ == 0 && doc.s) fputs(doc.s, stdout);
            if (!g_have_hdf5)
                fprintf(stderr, "note: built without libhdf5: the HDF5 table differs from the committed one; "
                                "generate docs/bad-input.md from a build with libhdf5\n");
        } else if (doc.s) {
            compare_doc(doc.s);
        }
    }
    free(doc.s);
    teardown();
    if (markdown) {
        if (check_failed_) fprintf(stderr, "%d checks failed: no document printed\n", check_failed_);
        return check_failed_ != 0;
    }
    for (int a = 0; a < A_COUNT; a++) printf("%-62s %3d cases\n", area_title[a], area_cases[a]);
    printf("%zu cases\n", (size_t)NCASES);
    return CHECK_DONE();
}
