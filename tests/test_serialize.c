/*
 * test_serialize.c — the TQQZ / TQCA formats (docs/format.md) and CRC-32C.
 *
 *  - CRC-32C: the standard check value, chaining, and the table regenerated
 *    bit by bit from the polynomial.
 *  - Round trip of every variant x rotation x QJL kind x norm mode x uniform
 *    mode/scope x outlier split: serialize -> deserialize gives identical
 *    bytes, identical codes, identical decodes and identical scores.
 *  - Files: save/load, codes save/load, codes read with another quantizer
 *    (TQ_ERR_MISMATCH), atomic replacement (a failed save leaves the old
 *    file intact and no temp file behind).
 *  - Hostile input: every truncation and every bit flip of small files, byte
 *    flips of a larger one, crafted headers (magic, versions, reserved fields,
 *    enums, absurd sizes) and crafted payloads (NaN, unsorted codebook, bad
 *    rotation), each with its documented status.
 *  - Golden files written by tests/gen/gen_golden_files.c must still load and
 *    decode to their committed values, so any format change is caught.
 */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "core/pack.h"
#include "io/crc32c.h"
#include "tq.h"

/* A directory of this process's own under the build's tmp dir: the suite runs
 * each test program twice (once per kernel table), possibly at the same time,
 * and the two must not share files. */
static const char *tmp_dir(void) {
    static char dir[400];
    if (!dir[0]) {
        mkdir(TQ_TEST_TMP_DIR, 0777);
        snprintf(dir, sizeof dir, "%s/%s-%ld", TQ_TEST_TMP_DIR, "serialize", (long)getpid());
        mkdir(dir, 0777);
    }
    return dir;
}


/* ------------------------------------------------------------- helpers */

static char *tmp_path(const char *name) {
    static char buf[4][512];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/ser_%s", tmp_dir(), name);
    return buf[k];
}

static void write_file(const char *path, const uint8_t *b, size_t n) {
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL, "cannot write %s", path);
    if (!f) return;
    if (n) CHECK(fwrite(b, 1, n, f) == n, "short write %s", path);
    fclose(f);
}

static uint8_t *read_file(const char *path, size_t *n) {
    *n = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc(len > 0 ? (size_t)len : 1);
    if (b && len > 0 && fread(b, 1, (size_t)len, f) != (size_t)len) {
        free(b);
        b = NULL;
    }
    fclose(f);
    *n = (size_t)len;
    return b;
}

/* Deterministic, varied test vectors (integer LCG, exact floats). */
static void gen_input(float *x, size_t n, uint32_t dim, uint32_t seed) {
    uint32_t s = seed * 2654435761u + 12345u;
    for (size_t i = 0; i < n * dim; i++) {
        s = s * 1664525u + 1013904223u;
        x[i] = (float)((int32_t)(s >> 8) % 2001 - 1000) / 250.0f;
    }
}

static uint8_t *ser(const tq_quantizer *q, size_t *len) {
    size_t sz = 0, w = 0;
    CHECK_OK(tq_quantizer_serialized_size(q, &sz));
    uint8_t *b = malloc(sz ? sz : 1);
    CHECK_OK(tq_quantizer_serialize(q, b, sz, &w));
    CHECK(w == sz, "wrote %zu, size says %zu", w, sz);
    *len = sz;
    return b;
}

/* Recompute both CRCs of a TQQZ buffer (header 96 bytes, minor 0 layout). */
static void qz_fix_crcs(uint8_t *b, size_t len) {
    uint32_t hs = (uint32_t)b[8] | (uint32_t)b[9] << 8 | (uint32_t)b[10] << 16 | (uint32_t)b[11] << 24;
    uint32_t c = tq_crc32c(0, b, hs - 4);
    for (int i = 0; i < 4; i++) b[hs - 4 + i] = (uint8_t)(c >> (8 * i));
    c = tq_crc32c(0, b + hs, len - hs - 4);
    for (int i = 0; i < 4; i++) b[len - 4 + i] = (uint8_t)(c >> (8 * i));
}

static void put32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static void put64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static void putf(uint8_t *p, float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    put32(p, u);
}

static int count_temp_files(void) {
    DIR *d = opendir(tmp_dir());
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (strncmp(e->d_name, "ser_", 4) == 0 && strstr(e->d_name, ".tmp.")) n++;
    closedir(d);
    return n;
}

/* ----------------------------------------------------------------- CRC */

static void test_crc32c(void) {
    CHECK(tq_crc32c(0, "123456789", 9) == 0xE3069283u, "check value %08x", tq_crc32c(0, "123456789", 9));
    CHECK(tq_crc32c(0, "", 0) == 0u, "empty");
    CHECK(tq_crc32c(tq_crc32c(0, "1234", 4), "56789", 5) == 0xE3069283u, "chaining");
    /* 32 zero bytes: the iSCSI test vector of RFC 3720 B.4 */
    uint8_t z[32] = {0}, ff[32];
    memset(ff, 0xff, sizeof ff);
    CHECK(tq_crc32c(0, z, 32) == 0x8A9136AAu, "32 zeros: %08x", tq_crc32c(0, z, 32));
    CHECK(tq_crc32c(0, ff, 32) == 0x62A8AB43u, "32 0xff: %08x", tq_crc32c(0, ff, 32));
    /* the table, regenerated bit by bit: CRC of one byte b is ~T[~0 ^ b & 0xff] ^ 0x00ffffff-shift... simply
     * compare with a bitwise CRC for every single byte and a few lengths */
    int bad = 0;
    for (int b = 0; b < 256; b++) {
        uint32_t c = 0xffffffffu ^ (uint32_t)b;
        for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0x82F63B78u & (0u - (c & 1u)));
        uint8_t byte = (uint8_t)b;
        bad += tq_crc32c(0, &byte, 1) != ~c;
    }
    CHECK(bad == 0, "%d single-byte CRCs differ from the bitwise definition", bad);
}

/* ---------------------------------------------------------- round trips */

typedef struct combo {
    tq_variant v;
    uint32_t bits;
    tq_qjl_kind qjl;
    tq_norm_mode norm;
    tq_uniform_mode umode;
    tq_uniform_scope uscope;
    int calibrate;
} combo;

static const combo combos[] = {
    {TQ_VARIANT_MSE, 2, 0, TQ_NORM_PLAIN, 0, 0, 0},
    {TQ_VARIANT_MSE, 3, 0, TQ_NORM_UNIT, 0, 0, 0},
    {TQ_VARIANT_MSE, 1, 0, TQ_NORM_UNBIASED, 0, 0, 0},
    {TQ_VARIANT_MSE, 8, 0, TQ_NORM_PLAIN, 0, 0, 0},
    {TQ_VARIANT_PROD, 1, TQ_QJL_DENSE, 0, 0, 0, 0},
    {TQ_VARIANT_PROD, 3, TQ_QJL_DENSE, 0, 0, 0, 0},
    {TQ_VARIANT_PROD, 2, TQ_QJL_STRUCTURED, 0, 0, 0, 0},
    {TQ_VARIANT_PROD, 4, TQ_QJL_STRUCTURED, 0, 0, 0, 0},
    {TQ_VARIANT_QJL, 1, TQ_QJL_DENSE, 0, 0, 0, 0},
    {TQ_VARIANT_QJL, 1, TQ_QJL_STRUCTURED, 0, 0, 0, 0},
    {TQ_VARIANT_UNIFORM, 4, 0, 0, TQ_UNIFORM_SYMMETRIC, TQ_UNIFORM_PER_VECTOR, 0},
    {TQ_VARIANT_UNIFORM, 3, 0, 0, TQ_UNIFORM_ASYMMETRIC, TQ_UNIFORM_PER_VECTOR, 0},
    {TQ_VARIANT_UNIFORM, 2, 0, 0, TQ_UNIFORM_SYMMETRIC, TQ_UNIFORM_GROUP, 0},
    {TQ_VARIANT_UNIFORM, 5, 0, 0, TQ_UNIFORM_ASYMMETRIC, TQ_UNIFORM_GROUP, 0},
    {TQ_VARIANT_UNIFORM, 4, 0, 0, TQ_UNIFORM_SYMMETRIC, TQ_UNIFORM_PER_CHANNEL, 1},
    {TQ_VARIANT_UNIFORM, 6, 0, 0, TQ_UNIFORM_ASYMMETRIC, TQ_UNIFORM_PER_CHANNEL, 1},
    {TQ_VARIANT_UNIFORM, 2, 0, 0, TQ_UNIFORM_ASYMMETRIC, TQ_UNIFORM_PER_CHANNEL, 0},
};

enum { RT_DIM = 12, RT_N = 7 };

static void config_of(const combo *c, tq_rotation_kind rot, int split, uint64_t seed, tq_config *cfg) {
    tq_config_init(cfg, RT_DIM, c->bits);
    cfg->variant = c->v;
    cfg->rotation = rot;
    cfg->qjl = c->qjl;
    cfg->norm = c->norm;
    cfg->uniform_mode = c->umode;
    cfg->uniform_scope = c->uscope;
    cfg->group_size = 4;
    cfg->seed = seed;
    cfg->rounds = 3;
    if (split) {
        static const uint32_t ch[4] = {7, 2, 11, 5}; /* unsorted on purpose */
        cfg->outlier_count = 4;
        cfg->outlier_bits = c->v == TQ_VARIANT_QJL ? 1 : (c->bits < 8 ? c->bits + 1 : 8);
        cfg->outlier_channels = ch;
    }
}

/* Same codes, decodes and scores from a and b on the same input. */
static void check_same_behaviour(const tq_quantizer *a, const tq_quantizer *b, const char *what) {
    size_t cs = tq_quantizer_code_size(a), d = tq_quantizer_dim(a);
    CHECK(cs == tq_quantizer_code_size(b) && d == tq_quantizer_dim(b), "%s: shapes differ", what);
    float *x = malloc(RT_N * d * sizeof(float)), *ya = calloc(RT_N * d, sizeof(float)),
          *yb = calloc(RT_N * d, sizeof(float));
    gen_input(x, RT_N, (uint32_t)d, 3);
    for (size_t j = 0; j < d; j++) x[2 * d + j] = 0.0f; /* a zero row */
    uint8_t *ca = calloc(RT_N, cs), *cb = calloc(RT_N, cs);
    tq_status sa = tq_encode(a, x, RT_N, ca), sb = tq_encode(b, x, RT_N, cb);
    CHECK(sa == sb, "%s: encode statuses %d vs %d", what, sa, sb);
    if (sa == TQ_OK) {
        CHECK(memcmp(ca, cb, RT_N * cs) == 0, "%s: codes differ after a round trip", what);
        CHECK_OK(tq_decode(a, ca, RT_N, ya));
        CHECK_OK(tq_decode(b, ca, RT_N, yb));
        CHECK(memcmp(ya, yb, RT_N * d * sizeof(float)) == 0, "%s: decodes differ after a round trip", what);
        tq_query *qa = NULL, *qb = NULL;
        CHECK_OK(tq_query_create(a, &qa));
        CHECK_OK(tq_query_create(b, &qb));
        if (qa && qb) {
            float sa_[RT_N], sb_[RT_N];
            CHECK_OK(tq_query_set(qa, x + d));
            CHECK_OK(tq_query_set(qb, x + d));
            for (int m = 0; m < 2; m++) {
                CHECK_OK(tq_score(a, qa, (tq_metric)m, ca, RT_N, sa_));
                CHECK_OK(tq_score(b, qb, (tq_metric)m, ca, RT_N, sb_));
                CHECK(memcmp(sa_, sb_, sizeof sa_) == 0, "%s: scores differ after a round trip", what);
            }
        }
        tq_query_free(qa);
        tq_query_free(qb);
    }
    free(x);
    free(ya);
    free(yb);
    free(ca);
    free(cb);
}

static void test_round_trips(void) {
    int n = 0;
    for (size_t ci = 0; ci < sizeof combos / sizeof combos[0]; ci++) {
        for (int rot = 0; rot < 3; rot++) {
            for (int split = 0; split < 2; split++) {
                const combo *c = &combos[ci];
                char what[128];
                snprintf(what, sizeof what, "combo %zu (variant %d bits %u) rotation %d split %d", ci, c->v, c->bits,
                         rot, split);
                tq_config cfg;
                config_of(c, (tq_rotation_kind)rot, split, 1000 + ci, &cfg);
                tq_quantizer *q = NULL;
                tq_status s = tq_quantizer_create(&cfg, &q);
                CHECK(s == TQ_OK, "%s: create -> %s (%s)", what, tq_status_str(s), tq_last_error());
                if (s != TQ_OK) continue;
                if (c->calibrate) {
                    float cal[20 * RT_DIM];
                    gen_input(cal, 20, RT_DIM, 9);
                    for (int i = 0; i < 20; i++) cal[i * RT_DIM + 4] = 1.5f; /* a constant channel: step 0 */
                    CHECK_OK(tq_quantizer_calibrate(q, cal, 20));
                }
                size_t len, len2;
                uint8_t *b = ser(q, &len);
                tq_quantizer *r = NULL;
                s = tq_quantizer_deserialize(b, len, &r);
                CHECK(s == TQ_OK, "%s: deserialize -> %s (%s)", what, tq_status_str(s), tq_last_error());
                if (r) {
                    uint8_t *b2 = ser(r, &len2);
                    CHECK(len2 == len && memcmp(b, b2, len) == 0, "%s: re-serialized bytes differ", what);
                    free(b2);
                    check_same_behaviour(q, r, what);
                    tq_config rc;
                    CHECK_OK(tq_quantizer_get_config(r, &rc));
                    CHECK(rc.dim == cfg.dim && rc.bits == cfg.bits && rc.variant == cfg.variant &&
                              rc.rotation == cfg.rotation && rc.outlier_count == cfg.outlier_count,
                          "%s: config differs", what);
                    if (split && rc.outlier_channels) {
                        CHECK(rc.outlier_channels[0] == 2 && rc.outlier_channels[1] == 5 &&
                                  rc.outlier_channels[2] == 7 && rc.outlier_channels[3] == 11,
                              "%s: outlier list", what);
                    }
                }
                tq_quantizer_free(r);
                free(b);
                tq_quantizer_free(q);
                n++;
            }
        }
    }
    CHECK(n == (int)(sizeof combos / sizeof combos[0]) * 6, "ran %d round trips", n);

    /* Canonical form: fields the config does not use do not change the bytes. */
    tq_config a, b;
    tq_config_init(&a, 16, 3);
    a.rotation = TQ_ROTATION_NONE;
    b = a;
    b.seed = 99;
    b.group_size = 7;
    b.qjl = TQ_QJL_STRUCTURED;
    b.rounds = 5;
    b.uniform_mode = TQ_UNIFORM_ASYMMETRIC;
    tq_quantizer *qa = NULL, *qb = NULL;
    CHECK_OK(tq_quantizer_create(&a, &qa));
    CHECK_OK(tq_quantizer_create(&b, &qb));
    if (qa && qb) {
        size_t la, lb;
        uint8_t *ba = ser(qa, &la), *bb = ser(qb, &lb);
        CHECK(la == lb && memcmp(ba, bb, la) == 0, "unused fields changed the serialization");
        CHECK(la == 96 + (8 + 7) * 4 + 4, "MSE 16-d 3-bit, no rotation: %zu bytes", la);
        free(ba);
        free(bb);
    }
    tq_quantizer_free(qa);
    tq_quantizer_free(qb);

    /* The size example of format.md §2.5 */
    tq_config e;
    tq_config_init(&e, 128, 4);
    tq_quantizer *qe = NULL;
    size_t sz = 0;
    CHECK_OK(tq_quantizer_create(&e, &qe));
    CHECK_OK(tq_quantizer_serialized_size(qe, &sz));
    CHECK(sz == 224, "format.md example: %zu bytes, documented 224", sz);
    uint8_t small[100];
    size_t w = 123;
    CHECK_STATUS(tq_quantizer_serialize(qe, small, sizeof small, &w), TQ_ERR_SIZE);
    CHECK(w == 0, "written on failure: %zu", w);
    tq_quantizer_free(qe);
}

/* The examples of format.md §1 */
static void test_record_example(void) {
    const uint8_t idx[5] = {7, 0, 5, 2, 1};
    uint8_t packed[3] = {0xee, 0xee, 0xee};
    CHECK(tq_pack_size(5, 3) == 3, "pack size");
    tq_pack(idx, 5, 3, packed);
    CHECK(packed[0] == 0x93 && packed[1] == 0x01 && packed[2] == 0x05, "documented packing example: %02x %02x %02x",
          packed[0], packed[1], packed[2]);
    tq_config c;
    tq_config_init(&c, 5, 3);
    tq_quantizer *q = NULL;
    CHECK_OK(tq_quantizer_create(&c, &q));
    CHECK(tq_quantizer_code_size(q) == 4 + 2 + 1, "5-d 3-bit MSE record: %zu bytes", tq_quantizer_code_size(q));
    tq_quantizer_free(q);
    c.variant = TQ_VARIANT_PROD;
    c.dim = 20;
    CHECK_OK(tq_quantizer_create(&c, &q));
    /* norm, gamma; 2-bit plane 5 bytes; signs 3 bytes */
    CHECK(tq_quantizer_code_size(q) == 8 + 5 + 3, "20-d 3-bit PROD record: %zu bytes", tq_quantizer_code_size(q));
    tq_quantizer_free(q);
}

/* ------------------------------------------------------------ file i/o */

static tq_quantizer *small_dense_prod(uint64_t seed) {
    tq_config c;
    tq_config_init(&c, 10, 3);
    c.variant = TQ_VARIANT_PROD;
    c.rotation = TQ_ROTATION_DENSE;
    c.qjl = TQ_QJL_DENSE;
    c.seed = seed;
    c.outlier_count = 3;
    c.outlier_bits = 4;
    tq_quantizer *q = NULL;
    CHECK_OK(tq_quantizer_create(&c, &q));
    return q;
}

static void test_files(void) {
    tq_quantizer *q = small_dense_prod(5), *other = small_dense_prod(6);
    if (!q || !other) return;
    const char *qp = tmp_path("q.tqqz"), *cp = tmp_path("c.tqca");
    CHECK_OK(tq_quantizer_save(q, qp));
    tq_quantizer *l = NULL;
    CHECK_OK(tq_quantizer_load(qp, &l));
    if (l) {
        size_t a, b, fl;
        uint8_t *ba = ser(q, &a), *bb = ser(l, &b), *bf = read_file(qp, &fl);
        CHECK(a == b && memcmp(ba, bb, a) == 0, "load(save(q)) serializes differently");
        CHECK(fl == a && bf && memcmp(ba, bf, a) == 0, "saved file differs from serialize()");
        free(ba);
        free(bb);
        free(bf);
        check_same_behaviour(q, l, "save/load");
    }

    enum { N = 9 };
    size_t cs = tq_quantizer_code_size(q);
    float x[N * 10];
    gen_input(x, N, 10, 77);
    uint8_t *codes = malloc(N * cs);
    CHECK_OK(tq_encode(q, x, N, codes));
    CHECK_OK(tq_codes_save(q, codes, N, cp));
    uint8_t *got = NULL;
    size_t n = 0;
    CHECK_OK(tq_codes_load(q, cp, &got, &n));
    CHECK(n == N && got && memcmp(got, codes, N * cs) == 0, "codes round trip");
    tq_free(got);
    got = NULL;
    if (l) { /* a loaded copy of q has the same fingerprint */
        CHECK_OK(tq_codes_load(l, cp, &got, &n));
        tq_free(got);
        got = NULL;
    }
    CHECK_STATUS(tq_codes_load(other, cp, &got, &n), TQ_ERR_MISMATCH);
    CHECK(got == NULL && n == 0, "outputs set on failure");
    {
        tq_config c;
        tq_config_init(&c, 10, 3);
        tq_quantizer *m = NULL;
        CHECK_OK(tq_quantizer_create(&c, &m));
        CHECK_STATUS(tq_codes_load(m, cp, &got, &n), TQ_ERR_MISMATCH);
        tq_quantizer_free(m);
    }
    /* Quantizers that differ only in the header (seed) or only in the payload (a dense
     * matrix) have different fingerprints: the CRC fields are left out of it (format.md §3). */
    {
        tq_config c;
        tq_config_init(&c, 10, 3);
        c.seed = 1;
        tq_quantizer *m1 = NULL, *m2 = NULL;
        CHECK_OK(tq_quantizer_create(&c, &m1));
        c.seed = 2;
        CHECK_OK(tq_quantizer_create(&c, &m2));
        uint8_t *rec = calloc(2, tq_quantizer_code_size(m1));
        const char *fp = tmp_path("fp.tqca");
        CHECK_OK(tq_codes_save(m1, rec, 2, fp));
        CHECK_OK(tq_codes_load(m1, fp, &got, &n));
        tq_free(got);
        got = NULL;
        CHECK_STATUS(tq_codes_load(m2, fp, &got, &n), TQ_ERR_MISMATCH);
        free(rec);
        tq_quantizer_free(m1);
        tq_quantizer_free(m2);
    }
    /* zero records */
    CHECK_OK(tq_codes_save(q, NULL, 0, cp));
    got = (uint8_t *)1;
    CHECK_OK(tq_codes_load(q, cp, &got, &n));
    CHECK(got == NULL && n == 0, "empty code file");

    /* missing files, a directory */
    tq_quantizer *none = (tq_quantizer *)&n;
    CHECK_STATUS(tq_quantizer_load(tmp_path("does-not-exist"), &none), TQ_ERR_IO);
    CHECK(none == NULL, "out set on failure");
    CHECK_STATUS(tq_quantizer_load(tmp_dir(), &none), TQ_ERR_IO);
    CHECK_STATUS(tq_codes_load(q, tmp_dir(), &got, &n), TQ_ERR_IO);
    CHECK_STATUS(tq_quantizer_load(NULL, &none), TQ_ERR_INVALID_ARG);
    CHECK_STATUS(tq_quantizer_save(NULL, qp), TQ_ERR_INVALID_ARG);
    CHECK_STATUS(tq_codes_save(q, NULL, 3, cp), TQ_ERR_INVALID_ARG);

    free(codes);
    tq_quantizer_free(l);
    tq_quantizer_free(q);
    tq_quantizer_free(other);
}

/* A failed save must leave the old file byte-for-byte intact, and no temp file behind. */
static void test_atomic_save(void) {
    tq_config c;
    tq_config_init(&c, 8, 2);
    tq_quantizer *small = NULL, *big = NULL;
    CHECK_OK(tq_quantizer_create(&c, &small));
    tq_config_init(&c, 200, 2);
    c.rotation = TQ_ROTATION_DENSE; /* 160 kB */
    CHECK_OK(tq_quantizer_create(&c, &big));
    if (!small || !big) return;
    const char *p = tmp_path("atomic.tqqz");
    CHECK_OK(tq_quantizer_save(small, p));
    size_t n0, n1;
    uint8_t *before = read_file(p, &n0);

    /* 1. the file size limit makes the write fail half way (a stand-in for a full disk) */
    struct rlimit old, lim;
    getrlimit(RLIMIT_FSIZE, &old);
    void (*prev)(int) = signal(SIGXFSZ, SIG_IGN);
    lim = old;
    lim.rlim_cur = 4096;
    if (setrlimit(RLIMIT_FSIZE, &lim) == 0) {
        tq_status s = tq_quantizer_save(big, p);
        setrlimit(RLIMIT_FSIZE, &old);
        CHECK(s == TQ_ERR_IO, "save past the size limit -> %s (%s)", tq_status_str(s), tq_last_error());
        uint8_t *after = read_file(p, &n1);
        CHECK(n1 == n0 && after && memcmp(before, after, n0) == 0, "a failed save damaged the old file");
        free(after);
        /* codes too */
        uint8_t *codes = calloc(3000, tq_quantizer_code_size(big));
        const char *cp = tmp_path("atomic.tqca");
        CHECK_OK(tq_codes_save(small, codes, 1, cp));
        size_t m0, m1;
        uint8_t *cb = read_file(cp, &m0);
        setrlimit(RLIMIT_FSIZE, &lim);
        s = tq_codes_save(big, codes, 3000, cp);
        setrlimit(RLIMIT_FSIZE, &old);
        CHECK(s == TQ_ERR_IO, "codes save past the size limit -> %s", tq_status_str(s));
        uint8_t *ca = read_file(cp, &m1);
        CHECK(m0 == m1 && ca && memcmp(cb, ca, m0) == 0, "a failed codes save damaged the old file");
        free(ca);
        free(cb);
        free(codes);
    }
    signal(SIGXFSZ, prev);

    /* 2. the path is a directory */
    const char *dp = tmp_path("a-directory");
    mkdir(dp, 0777);
    CHECK_STATUS(tq_quantizer_save(small, dp), TQ_ERR_IO);
    struct stat st;
    CHECK(stat(dp, &st) == 0 && S_ISDIR(st.st_mode), "the directory survived");

    /* 3. the directory does not exist */
    CHECK_STATUS(tq_quantizer_save(small, tmp_path("no-such-dir/x.tqqz")), TQ_ERR_IO);

    /* 4. overwriting with a good save works and is loadable */
    CHECK_OK(tq_quantizer_save(big, p));
    tq_quantizer *l = NULL;
    CHECK_OK(tq_quantizer_load(p, &l));
    tq_quantizer_free(l);

    CHECK(count_temp_files() == 0, "%d temp files left behind", count_temp_files());
    free(before);
    tq_quantizer_free(small);
    tq_quantizer_free(big);
}

/* -------------------------------------------------------- hostile input */

static void test_truncation_and_flips(void) {
    tq_quantizer *q = small_dense_prod(11);
    if (!q) return;
    size_t len;
    uint8_t *b = ser(q, &len);
    uint8_t *t = malloc(len);
    int ok = 0, crashed = 0;
    tq_quantizer *r = NULL;
    /* every truncation, in memory */
    for (size_t k = 0; k < len; k++) {
        memcpy(t, b, k);
        tq_status s = tq_quantizer_deserialize(k ? t : NULL, k, &r);
        if (s == TQ_OK) ok++;
        if (r) crashed++;
        tq_quantizer_free(r);
        r = NULL;
    }
    CHECK(ok == 0 && crashed == 0, "%d of %zu truncations accepted", ok, len);
    /* every truncation, from a file (the file loader's own pre-checks) */
    const char *p = tmp_path("trunc.tqqz");
    ok = 0;
    for (size_t k = 0; k < len; k++) {
        write_file(p, b, k);
        if (tq_quantizer_load(p, &r) == TQ_OK) ok++;
        tq_quantizer_free(r);
        r = NULL;
    }
    CHECK(ok == 0, "%d truncated files loaded", ok);
    /* every bit flip */
    ok = 0;
    for (size_t bit = 0; bit < len * 8; bit++) {
        memcpy(t, b, len);
        t[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        if (tq_quantizer_deserialize(t, len, &r) == TQ_OK) ok++;
        tq_quantizer_free(r);
        r = NULL;
    }
    CHECK(ok == 0, "%d of %zu bit flips accepted", ok, len * 8);
    /* one extra byte */
    uint8_t *x = malloc(len + 1);
    memcpy(x, b, len);
    x[len] = 0;
    CHECK_STATUS(tq_quantizer_deserialize(x, len + 1, &r), TQ_ERR_FORMAT);
    free(x);

    /* codes file: every truncation and every bit flip */
    enum { N = 3 };
    size_t cs = tq_quantizer_code_size(q);
    float in[N * 10];
    gen_input(in, N, 10, 5);
    uint8_t *codes = malloc(N * cs);
    CHECK_OK(tq_encode(q, in, N, codes));
    const char *cp = tmp_path("trunc.tqca");
    CHECK_OK(tq_codes_save(q, codes, N, cp));
    size_t clen;
    uint8_t *cf = read_file(cp, &clen);
    CHECK(clen == 40 + N * cs + 4, "code file is %zu bytes", clen);
    /* tq_codes_inspect reports the header and ties the file to q's fingerprint */
    tq_codes_info ci;
    uint32_t fp = 0;
    CHECK_OK(tq_codes_inspect(cp, &ci));
    CHECK_OK(tq_quantizer_fingerprint(q, &fp));
    CHECK(ci.format_major == 1 && ci.n == N && ci.code_size == cs && ci.fingerprint == fp,
          "inspect: %u.%u n=%llu code_size=%u fingerprint=%08x (q's %08x)", ci.format_major, ci.format_minor,
          (unsigned long long)ci.n, ci.code_size, ci.fingerprint, fp);
    uint8_t *got = NULL;
    size_t n = 0;
    int inspected = 0;
    ok = 0;
    const char *cp2 = tmp_path("trunc2.tqca");
    for (size_t k = 0; k < clen; k++) {
        write_file(cp2, cf, k);
        if (tq_codes_load(q, cp2, &got, &n) == TQ_OK) ok++;
        if (tq_codes_inspect(cp2, &ci) == TQ_OK) inspected++;
        tq_free(got);
        got = NULL;
    }
    CHECK(ok == 0 && inspected == 0, "%d truncated code files loaded, %d inspected", ok, inspected);
    ok = inspected = 0;
    uint8_t *cm = malloc(clen);
    for (size_t bit = 0; bit < clen * 8; bit++) {
        memcpy(cm, cf, clen);
        cm[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        write_file(cp2, cm, clen);
        if (tq_codes_load(q, cp2, &got, &n) == TQ_OK) ok++;
        if (tq_codes_inspect(cp2, &ci) == TQ_OK) inspected++;
        tq_free(got);
        got = NULL;
    }
    CHECK(ok == 0 && inspected == 0, "%d of %zu bit-flipped code files loaded, %d inspected", ok, clen * 8,
          inspected);
    free(cm);
    free(cf);
    free(codes);
    free(t);
    free(b);
    tq_quantizer_free(q);

    /* a larger file: every byte xor 0xff */
    tq_config c;
    tq_config_init(&c, 32, 4);
    c.variant = TQ_VARIANT_PROD;
    c.rotation = TQ_ROTATION_DENSE;
    CHECK_OK(tq_quantizer_create(&c, &q));
    if (!q) return;
    b = ser(q, &len);
    t = malloc(len);
    memcpy(t, b, len);
    ok = 0;
    for (size_t k = 0; k < len; k++) {
        t[k] ^= 0xff;
        if (tq_quantizer_deserialize(t, len, &r) == TQ_OK) ok++;
        tq_quantizer_free(r);
        r = NULL;
        t[k] ^= 0xff;
    }
    CHECK(ok == 0, "%d of %zu byte flips accepted (%zu-byte file)", ok, len, len);
    free(t);
    free(b);
    tq_quantizer_free(q);
}

/* Crafted files with valid CRCs: each defect gets its documented status. */
static void test_crafted(void) {
    tq_quantizer *q = small_dense_prod(21);
    if (!q) return;
    size_t len;
    uint8_t *b = ser(q, &len), *t = malloc(len + 64);
    tq_quantizer *r = NULL;

#define MUTATE(stmt, want, fix)                                  \
    do {                                                         \
        memcpy(t, b, len);                                       \
        stmt;                                                    \
        if (fix) qz_fix_crcs(t, len);                            \
        CHECK_STATUS(tq_quantizer_deserialize(t, len, &r), want); \
        CHECK(r == NULL, "out set on failure");                  \
    } while (0)

    MUTATE(t[0] = 'X', TQ_ERR_FORMAT, 0);
    MUTATE(t[3] = 'A', TQ_ERR_FORMAT, 1);
    MUTATE(t[4] = 2, TQ_ERR_VERSION, 0);  /* major 2, even with a bad CRC */
    MUTATE(t[4] = 0, TQ_ERR_VERSION, 1);  /* major 0 */
    MUTATE(t[5] = 1, TQ_ERR_VERSION, 1);  /* major 257 */
    MUTATE(t[44] ^= 1, TQ_ERR_CHECKSUM, 0);
    MUTATE(t[len - 10] ^= 1, TQ_ERR_CHECKSUM, 0);
    MUTATE(t[12] = 1, TQ_ERR_FORMAT, 1);  /* flags */
    MUTATE(t[91] = 0x80, TQ_ERR_FORMAT, 1); /* reserved */
    MUTATE(put32(t + 8, 100), TQ_ERR_FORMAT, 0); /* header size of a minor-0 file */
    MUTATE(put64(t + 16, (uint64_t)len + 1), TQ_ERR_FORMAT, 1);
    MUTATE(put64(t + 16, UINT64_MAX), TQ_ERR_FORMAT, 1);
    MUTATE(put64(t + 16, 10), TQ_ERR_FORMAT, 1);
    MUTATE(put32(t + 24, 0), TQ_ERR_FORMAT, 1);           /* dim 0 */
    MUTATE(put32(t + 24, 0x80000000u), TQ_ERR_FORMAT, 1); /* absurd dim */
    MUTATE(put32(t + 24, 5000); put32(t + 52, 0); put32(t + 56, 0), TQ_ERR_DIM, 1); /* dense beyond 4096 */
    MUTATE(put32(t + 28, 0), TQ_ERR_FORMAT, 1);           /* bits 0 */
    MUTATE(put32(t + 28, 9), TQ_ERR_FORMAT, 1);           /* bits 9 */
    MUTATE(put32(t + 32, 4), TQ_ERR_FORMAT, 1);           /* variant */
    MUTATE(put32(t + 36, 3), TQ_ERR_FORMAT, 1);           /* rotation */
    MUTATE(put32(t + 44, 2), TQ_ERR_FORMAT, 1);           /* qjl */
    MUTATE(put32(t + 48, 1), TQ_ERR_FORMAT, 1);           /* norm on PROD */
    MUTATE(put32(t + 52, 10), TQ_ERR_FORMAT, 1);          /* outliers == dim */
    MUTATE(put32(t + 56, 9), TQ_ERR_FORMAT, 1);           /* outlier bits */
    MUTATE(put32(t + 60, 1), TQ_ERR_FORMAT, 1);           /* uniform mode on PROD */
    MUTATE(put32(t + 68, 4), TQ_ERR_FORMAT, 1);           /* group size unused */
    MUTATE(put32(t + 40, 2), TQ_ERR_FORMAT, 1);           /* rounds with nothing seeded */
    MUTATE(put64(t + 72, 5), TQ_ERR_FORMAT, 1);           /* seed with nothing seeded */
    MUTATE(put32(t + 80, 1), TQ_ERR_FORMAT, 1);           /* calibrated on PROD */
    MUTATE(put32(t + 84, 99), TQ_ERR_FORMAT, 1);          /* code size */
    MUTATE(put32(t + 28, 4), TQ_ERR_FORMAT, 1);           /* other bits: payload size differs */
    /* payload: outliers at 96.., then part 0: codebook (8 + 7 floats), rotation 3x3, qjl 3x3 */
    MUTATE(put32(t + 96, 9), TQ_ERR_FORMAT, 1);           /* outlier list not increasing */
    MUTATE(put32(t + 104, 10), TQ_ERR_FORMAT, 1);         /* outlier >= dim */
    size_t cb0 = 96 + 3 * 4;
    MUTATE(putf(t + cb0, NAN), TQ_ERR_FORMAT, 1);
    MUTATE(putf(t + cb0, 1.5f), TQ_ERR_FORMAT, 1);
    MUTATE(putf(t + cb0 + 4, -2.0f / 3.0f + 0.3f), TQ_ERR_FORMAT, 1); /* unsorted or asymmetric */
    {
        memcpy(t, b, len); /* swap c0 and c1: unsorted */
        uint8_t tmp[4];
        memcpy(tmp, t + cb0, 4);
        memcpy(t + cb0, t + cb0 + 4, 4);
        memcpy(t + cb0 + 4, tmp, 4);
        qz_fix_crcs(t, len);
        CHECK_STATUS(tq_quantizer_deserialize(t, len, &r), TQ_ERR_FORMAT);
    }
    MUTATE(putf(t + cb0 + 8 * 4, 0.99f), TQ_ERR_FORMAT, 1);  /* bound 0 outside [c0, c1] */
    size_t rot0 = cb0 + 15 * 4;
    MUTATE(putf(t + rot0, INFINITY), TQ_ERR_FORMAT, 1);
    MUTATE(putf(t + rot0, 1.5f), TQ_ERR_FORMAT, 1);
    MUTATE(putf(t + rot0, 0.0f); putf(t + rot0 + 4, 0.0f); putf(t + rot0 + 8, 0.0f), TQ_ERR_FORMAT, 1);
    size_t qjl0 = rot0 + 9 * 4;
    MUTATE(putf(t + qjl0 + 4, NAN), TQ_ERR_FORMAT, 1);
    memcpy(t, b, len); /* any finite Gaussian entry is legal */
    putf(t + qjl0 + 4, 3.0f);
    qz_fix_crcs(t, len);
    CHECK_OK(tq_quantizer_deserialize(t, len, &r));
    tq_quantizer_free(r);
    r = NULL;
#undef MUTATE

    /* A future minor version: longer header and an extra payload section are ignored. */
    {
        size_t ext = len + 8 + 12;
        uint8_t *f = calloc(1, ext);
        memcpy(f, b, 92);                      /* header without its CRC */
        put32(f + 8, 104);                     /* header grows by 8 bytes of new fields */
        f[6] = 1;                              /* minor 1 */
        f[92] = 0xAB;                          /* a new field */
        put64(f + 16, ext);
        memcpy(f + 104, b + 96, len - 100);    /* 1.0 payload */
        memset(f + 104 + len - 100, 0x5A, 12); /* a new payload section */
        qz_fix_crcs(f, ext);
        CHECK_OK(tq_quantizer_deserialize(f, ext, &r));
        if (r) check_same_behaviour(q, r, "minor 1 file");
        tq_quantizer_free(r);
        r = NULL;
        f[6] = 0; /* the same bytes claiming minor 0 are refused */
        qz_fix_crcs(f, ext);
        CHECK_STATUS(tq_quantizer_deserialize(f, ext, &r), TQ_ERR_FORMAT);
        f[6] = 1;
        put32(f + 8, 70000); /* header beyond the cap (checked before any CRC) */
        CHECK_STATUS(tq_quantizer_deserialize(f, ext, &r), TQ_ERR_FORMAT);
        free(f);
    }

    /* Per-channel ranges: negative step */
    {
        tq_config c;
        tq_config_init(&c, 8, 3);
        c.variant = TQ_VARIANT_UNIFORM;
        c.uniform_scope = TQ_UNIFORM_PER_CHANNEL;
        c.rotation = TQ_ROTATION_NONE;
        tq_quantizer *u = NULL;
        CHECK_OK(tq_quantizer_create(&c, &u));
        float cal[16];
        gen_input(cal, 2, 8, 1);
        CHECK_OK(tq_quantizer_calibrate(u, cal, 2));
        size_t ul;
        uint8_t *ub = ser(u, &ul);
        CHECK(ul == 96 + 64 + 4, "uniform per-channel file: %zu bytes", ul);
        putf(ub + 96 + 32 + 8, -1.0f);
        qz_fix_crcs(ub, ul);
        CHECK_STATUS(tq_quantizer_deserialize(ub, ul, &r), TQ_ERR_FORMAT);
        putf(ub + 96 + 32 + 8, 0.0f);
        putf(ub + 96, NAN);
        qz_fix_crcs(ub, ul);
        CHECK_STATUS(tq_quantizer_deserialize(ub, ul, &r), TQ_ERR_FORMAT);
        free(ub);
        tq_quantizer_free(u);
    }

    CHECK_STATUS(tq_quantizer_deserialize(NULL, 5, &r), TQ_ERR_INVALID_ARG);
    CHECK_STATUS(tq_quantizer_deserialize(b, len, NULL), TQ_ERR_INVALID_ARG);
    CHECK_STATUS(tq_quantizer_deserialize(NULL, 0, &r), TQ_ERR_FORMAT);

    /* Oversized file on disk: rejected before reading (sparse, costs no disk). */
    {
        const char *p = tmp_path("huge.tqqz");
        FILE *f = fopen(p, "wb");
        if (f) {
            fwrite(b, 1, 96, f);
            fclose(f);
            if (truncate(p, ((off_t)1 << 30) + 1) == 0) {
                CHECK_STATUS(tq_quantizer_load(p, &r), TQ_ERR_FORMAT);
                CHECK(strstr(tq_last_error(), "larger") != NULL, "message: %s", tq_last_error());
            }
            remove(p);
        }
    }

    /* Code files: crafted headers */
    size_t cs = tq_quantizer_code_size(q);
    uint8_t *codes = calloc(4, cs);
    const char *cp = tmp_path("crafted.tqca");
    CHECK_OK(tq_codes_save(q, codes, 4, cp));
    size_t cl;
    uint8_t *cf = read_file(cp, &cl), *cm = malloc(cl);
    const char *cp2 = tmp_path("crafted2.tqca");
    uint8_t *got = NULL;
    size_t n;
#define CMUTATE(stmt, want, fix)                                                 \
    do {                                                                         \
        memcpy(cm, cf, cl);                                                      \
        stmt;                                                                    \
        if (fix) {                                                               \
            uint32_t c_ = tq_crc32c(0, cm, 36);                                  \
            put32(cm + 36, c_);                                                  \
        }                                                                        \
        write_file(cp2, cm, cl);                                                 \
        CHECK_STATUS(tq_codes_load(q, cp2, &got, &n), want);                     \
        CHECK(got == NULL, "codes set on failure");                              \
    } while (0)
    CMUTATE(cm[0] = 'Z', TQ_ERR_FORMAT, 0);
    CMUTATE(cm[4] = 2, TQ_ERR_VERSION, 0);
    CMUTATE(cm[20] ^= 1, TQ_ERR_CHECKSUM, 0);
    CMUTATE(cm[12] = 1, TQ_ERR_FORMAT, 1);
    CMUTATE(cm[33] = 1, TQ_ERR_FORMAT, 1);
    CMUTATE(cm[16] ^= 1, TQ_ERR_MISMATCH, 1);
    CMUTATE(put32(cm + 20, (uint32_t)cs + 1), TQ_ERR_MISMATCH, 1);
    CMUTATE(put64(cm + 24, 5), TQ_ERR_FORMAT, 1);
    CMUTATE(put64(cm + 24, 3), TQ_ERR_FORMAT, 1);
    CMUTATE(put64(cm + 24, (uint64_t)1 << 60), TQ_ERR_SIZE, 1);
    CMUTATE(put64(cm + 24, (uint64_t)1 << 40), TQ_ERR_FORMAT, 1);
    CMUTATE(cm[40] ^= 4, TQ_ERR_CHECKSUM, 0);
    CMUTATE(cm[cl - 1] ^= 4, TQ_ERR_CHECKSUM, 0);
    CMUTATE(put32(cm + 8, 41), TQ_ERR_FORMAT, 1);
#undef CMUTATE
    write_file(cp2, NULL, 0);
    CHECK_STATUS(tq_codes_load(q, cp2, &got, &n), TQ_ERR_FORMAT);
    CHECK_STATUS(tq_codes_load(q, cp2, NULL, &n), TQ_ERR_INVALID_ARG);
    free(cm);
    free(cf);
    free(codes);
    free(t);
    free(b);
    tq_quantizer_free(q);
}

/* ------------------------------------------------------------- golden */

static float *read_fvecs_simple(const char *path, size_t *n, size_t *dim) {
    float *d = NULL;
    tq_status s = tq_read_vectors(path, 0, &d, n, dim);
    CHECK(s == TQ_OK, "%s: %s (%s)", path, tq_status_str(s), tq_last_error());
    return d;
}

static void test_golden(void) {
    static const char *names[] = {"mse", "prod", "uniform"};
    for (int g = 0; g < 3; g++) {
        char qp[512], cp[512], ip[512], dp[512];
        snprintf(qp, sizeof qp, "%s/golden_%s.tqqz", TQ_TEST_DATA_DIR, names[g]);
        snprintf(cp, sizeof cp, "%s/golden_%s.tqca", TQ_TEST_DATA_DIR, names[g]);
        snprintf(ip, sizeof ip, "%s/golden_%s_input.fvecs", TQ_TEST_DATA_DIR, names[g]);
        snprintf(dp, sizeof dp, "%s/golden_%s_decoded.fvecs", TQ_TEST_DATA_DIR, names[g]);
        tq_quantizer *q = NULL;
        tq_status s = tq_quantizer_load(qp, &q);
        CHECK(s == TQ_OK, "golden %s: %s (%s)", qp, tq_status_str(s), tq_last_error());
        if (!q) continue;
        /* the writer still produces the committed bytes */
        size_t fl, sl;
        uint8_t *file = read_file(qp, &fl), *bytes = ser(q, &sl);
        CHECK(fl == sl && file && memcmp(file, bytes, fl) == 0,
              "golden %s: re-serialization differs from the committed file (format change?)", names[g]);
        free(file);
        free(bytes);

        uint8_t *codes = NULL;
        size_t n = 0, ni = 0, di = 0, nd = 0, dd = 0;
        CHECK_OK(tq_codes_load(q, cp, &codes, &n));
        float *in = read_fvecs_simple(ip, &ni, &di);
        float *want = read_fvecs_simple(dp, &nd, &dd);
        size_t dim = tq_quantizer_dim(q), cs = tq_quantizer_code_size(q);
        CHECK(codes && in && want && n == ni && n == nd && di == dim && dd == dim, "golden %s: shapes", names[g]);
        if (codes && in && want && n == ni && n == nd && di == dim && dd == dim) {
            float *out = malloc(n * dim * sizeof(float));
            CHECK_OK(tq_decode(q, codes, n, out));
            double worst = 0.0;
            for (size_t i = 0; i < n * dim; i++) {
                double e = fabs((double)out[i] - want[i]) / (1.0 + fabs(want[i]));
                if (e > worst) worst = e;
            }
            CHECK(worst <= 1e-6, "golden %s: decode differs from the committed values by %g", names[g], worst);
            /* determinism: the same input encodes to the committed codes (DESIGN §4) */
            uint8_t *again = malloc(n * cs);
            CHECK_OK(tq_encode(q, in, n, again));
            CHECK(memcmp(again, codes, n * cs) == 0,
                  "golden %s: encoding the committed input no longer gives the committed codes "
                  "(if intended, regenerate with tests/gen/gen_golden_files.c and say why)",
                  names[g]);
            free(again);
            free(out);
        }
        tq_free(codes);
        tq_free(in);
        tq_free(want);
        tq_quantizer_free(q);
    }
}

int main(void) {
    mkdir(tmp_dir(), 0777);
    test_crc32c();
    test_round_trips();
    test_record_example();
    test_files();
    test_atomic_save();
    test_truncation_and_flips();
    test_crafted();
    test_golden();
    return CHECK_DONE();
}
