/*
 * make_seeds.c — writes the seed corpus of every fuzz target into DIR/<target>/
 * (DIR is argv[1]): valid files of each format made by the library itself
 * (so the fuzzer starts from deep inside the parsers), with the mode bytes
 * the targets read, and a few structured seeds for the generated-input
 * targets. Deterministic: the same seeds on every run.
 */
#include <errno.h>
#include <sys/stat.h>

#include "fuzz_common.h"

static const char *root;
static unsigned counter;

static void put(const char *target, const uint8_t *prefix, size_t np, const uint8_t *body, size_t nb) {
    char dir[512], path[600];
    snprintf(dir, sizeof dir, "%s/%s", root, target);
    if (mkdir(dir, 0777) != 0 && errno != EEXIST) {
        perror(dir);
        exit(1);
    }
    snprintf(path, sizeof path, "%s/seed-%04u", dir, counter++);
    FILE *f = fopen(path, "wb");
    if (!f || (np && fwrite(prefix, 1, np, f) != np) || (nb && fwrite(body, 1, nb, f) != nb) || fclose(f) != 0) {
        perror(path);
        exit(1);
    }
}

static uint8_t *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc(len > 0 ? (size_t)len : 1);
    *n = b ? fread(b, 1, (size_t)len, f) : 0;
    fclose(f);
    return b;
}

static void die(tq_status s, const char *what) {
    if (s == TQ_OK) return;
    fprintf(stderr, "make_seeds: %s: %s (%s)\n", what, tq_status_str(s), tq_last_error());
    exit(1);
}

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static float frand(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (float)((double)(rng >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

static void quantizer_seeds(void) {
    struct { uint32_t dim, bits; tq_variant v; tq_rotation_kind r; tq_qjl_kind qjl; tq_norm_mode norm; uint32_t oc, ob; }
    cfgs[] = {
        {16, 4, TQ_VARIANT_MSE, TQ_ROTATION_HADAMARD, TQ_QJL_DENSE, TQ_NORM_PLAIN, 0, 0},
        {12, 2, TQ_VARIANT_MSE, TQ_ROTATION_DENSE, TQ_QJL_DENSE, TQ_NORM_UNBIASED, 0, 0},
        {10, 3, TQ_VARIANT_PROD, TQ_ROTATION_HADAMARD, TQ_QJL_DENSE, TQ_NORM_PLAIN, 0, 0},
        {24, 3, TQ_VARIANT_PROD, TQ_ROTATION_HADAMARD, TQ_QJL_STRUCTURED, TQ_NORM_PLAIN, 0, 0},
        {8, 1, TQ_VARIANT_QJL, TQ_ROTATION_NONE, TQ_QJL_DENSE, TQ_NORM_PLAIN, 0, 0},
        {20, 2, TQ_VARIANT_MSE, TQ_ROTATION_HADAMARD, TQ_QJL_DENSE, TQ_NORM_UNIT, 4, 3},
        {9, 4, TQ_VARIANT_UNIFORM, TQ_ROTATION_NONE, TQ_QJL_DENSE, TQ_NORM_PLAIN, 0, 0},
    };
    for (size_t i = 0; i < sizeof cfgs / sizeof cfgs[0]; i++) {
        tq_config c;
        tq_config_init(&c, cfgs[i].dim, cfgs[i].bits);
        c.variant = cfgs[i].v;
        c.rotation = cfgs[i].r;
        c.qjl = cfgs[i].qjl;
        c.norm = cfgs[i].norm;
        c.outlier_count = cfgs[i].oc;
        c.outlier_bits = cfgs[i].ob;
        c.seed = 7 + i;
        if (c.variant == TQ_VARIANT_UNIFORM && i % 2 == 0) c.uniform_scope = TQ_UNIFORM_PER_CHANNEL;
        tq_quantizer *q = NULL;
        die(tq_quantizer_create(&c, &q), "quantizer");
        if (c.uniform_scope == TQ_UNIFORM_PER_CHANNEL && c.variant == TQ_VARIANT_UNIFORM) {
            float x[9 * 5];
            for (int j = 0; j < 45; j++) x[j] = frand();
            die(tq_quantizer_calibrate(q, x, 5), "calibrate");
        }
        size_t sz = 0, w = 0;
        die(tq_quantizer_serialized_size(q, &sz), "size");
        uint8_t *b = malloc(sz);
        die(tq_quantizer_serialize(q, b, sz, &w), "serialize");
        for (uint8_t mode = 0; mode < 4; mode++) put("quantizer", &mode, 1, b, sz);
        free(b);
        tq_quantizer_free(q);
    }
}

static void codes_seeds(const char *tmp) {
    for (unsigned which = 0; which < FUZZ_CODES_QUANTIZERS; which++) {
        tq_quantizer *q = NULL;
        die(fuzz_codes_quantizer(which, &q), "codes quantizer");
        size_t dim = tq_quantizer_dim(q), cs = tq_quantizer_code_size(q);
        for (size_t n = 0; n <= 5; n += 5) {
            float *x = malloc((n + 1) * dim * sizeof *x);
            uint8_t *codes = malloc((n + 1) * cs);
            for (size_t j = 0; j < n * dim; j++) x[j] = frand();
            die(tq_encode(q, x, n, codes), "encode");
            die(tq_codes_save(q, codes, n, tmp), "codes_save");
            size_t len = 0;
            uint8_t *b = slurp(tmp, &len);
            uint8_t pre[2] = {1, (uint8_t)which};
            put("codes", pre, 2, b, len);
            pre[0] = 0;
            put("codes", pre, 2, b, len);
            free(b);
            free(x);
            free(codes);
        }
        tq_quantizer_free(q);
    }
    remove(tmp);
}

static void index_seeds(const char *tmp) {
    struct { uint32_t dim, bits; tq_variant v; tq_index_metric m; tq_rerank_kind r; tq_center_mode c; size_t n; int rm; }
    cfgs[] = {
        {8, 4, TQ_VARIANT_MSE, TQ_INDEX_IP, TQ_RERANK_NONE, TQ_CENTER_FIRST, 40, 0},
        {12, 2, TQ_VARIANT_MSE, TQ_INDEX_L2, TQ_RERANK_FLOAT, TQ_CENTER_NONE, 5, 1},
        {8, 3, TQ_VARIANT_PROD, TQ_INDEX_COSINE, TQ_RERANK_CODE, TQ_CENTER_FIRST, 9, 1},
        {6, 4, TQ_VARIANT_MSE, TQ_INDEX_IP, TQ_RERANK_NONE, TQ_CENTER_GIVEN, 0, 0},
        {10, 3, TQ_VARIANT_MSE, TQ_INDEX_IP, TQ_RERANK_NONE, TQ_CENTER_NONE, 33, 0},
    };
    for (size_t i = 0; i < sizeof cfgs / sizeof cfgs[0]; i++) {
        tq_index_config c;
        tq_index_config_init(&c, cfgs[i].dim, cfgs[i].bits);
        c.quant.variant = cfgs[i].v;
        if (c.quant.variant != TQ_VARIANT_MSE) c.quant.norm = TQ_NORM_PLAIN;
        c.metric = cfgs[i].m;
        c.rerank = cfgs[i].r;
        c.center = cfgs[i].c;
        float center[16];
        for (int j = 0; j < 16; j++) center[j] = 0.1f * (float)j;
        if (c.center == TQ_CENTER_GIVEN) c.center_vector = center;
        tq_index *ix = NULL;
        die(tq_index_create(&c, &ix), "index_create");
        size_t n = cfgs[i].n;
        float *x = malloc((n + 1) * cfgs[i].dim * sizeof *x);
        for (size_t j = 0; j < n * cfgs[i].dim; j++) x[j] = frand();
        if (n) die(tq_index_add(ix, x, n, NULL, NULL), "index_add");
        if (cfgs[i].rm && n > 2) {
            int64_t id = 1;
            die(tq_index_remove(ix, &id, 1, NULL), "remove");
        }
        die(tq_index_save(ix, tmp), "index_save");
        size_t len = 0;
        uint8_t *b = slurp(tmp, &len);
        static const uint8_t modes[] = {0, 1, 3, 5, 7};
        for (size_t m = 0; m < sizeof modes; m++) put("index", &modes[m], 1, b, len);
        free(b);
        free(x);
        tq_index_free(ix);
    }
    remove(tmp);
}

static void put_vec(uint8_t kind, uint8_t maxrows, const uint8_t *b, size_t n) {
    uint8_t pre[2] = {kind, maxrows};
    put("vectors", pre, 2, b, n);
}

static void vector_seeds(const char *tmp) {
    /* .npy float32 (3, 4), written by hand as numpy does */
    uint8_t npy[128 + 48];
    const char *hdr = "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }";
    memset(npy, ' ', 128);
    memcpy(npy, "\x93NUMPY\x01\x00", 8);
    npy[8] = 118;
    npy[9] = 0;
    memcpy(npy + 10, hdr, strlen(hdr));
    npy[127] = '\n';
    for (int j = 0; j < 12; j++) {
        float v = frand();
        memcpy(npy + 128 + 4 * j, &v, 4);
    }
    put_vec(0, 0, npy, sizeof npy);
    put_vec(0, 129, npy, sizeof npy);
    /* .fvecs and .bvecs: 3 rows of 4 */
    uint8_t fv[3 * 20], bv[3 * 8];
    for (int r = 0; r < 3; r++) {
        int32_t d = 4;
        memcpy(fv + 20 * r, &d, 4);
        memcpy(bv + 8 * r, &d, 4);
        for (int j = 0; j < 4; j++) {
            float v = frand();
            memcpy(fv + 20 * r + 4 + 4 * j, &v, 4);
            bv[8 * r + 4 + j] = (uint8_t)(37 * r + j);
        }
    }
    put_vec(1, 0, fv, sizeof fv);
    put_vec(5, 130, fv, sizeof fv);
    put_vec(2, 0, bv, sizeof bv);
    /* ids: .ivecs and int32 .npy through tq_write_ids */
    int64_t ids[6] = {0, 5, -1, 7, 2147483647, 3};
    const char *names[2] = {".ivecs", ".npy"};
    for (int f = 0; f < 2; f++) {
        char path[600];
        snprintf(path, sizeof path, "%s%s", tmp, names[f]);
        die(tq_write_ids(path, ids, 2, 3), "write_ids");
        size_t len = 0;
        uint8_t *b = slurp(path, &len);
        put_vec(f == 0 ? 3 : 4, 0, b, len);
        free(b);
        remove(path);
    }
}

static void random_seeds(const char *target, int count, size_t len, int first_byte_mod) {
    for (int i = 0; i < count; i++) {
        uint8_t b[512];
        for (size_t j = 0; j < len && j < sizeof b; j++) b[j] = (uint8_t)(frand() * 127.0f + 128.0f);
        if (first_byte_mod) b[0] = (uint8_t)(i % first_byte_mod);
        put(target, NULL, 0, b, len);
    }
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: make_seeds DIR\n");
        return 2;
    }
    root = argv[1];
    if (mkdir(root, 0777) != 0 && errno != EEXIST) {
        perror(root);
        return 1;
    }
    char tmp[512];
    snprintf(tmp, sizeof tmp, "%s/.scratch", root);
    tq_set_threads(1);
    quantizer_seeds();
    codes_seeds(tmp);
    index_seeds(tmp);
    vector_seeds(tmp);
    random_seeds("kernels", 22, 400, 11);
    random_seeds("roundtrip", 16, 300, 0);
    random_seeds("hdf5", 16, 200, 0);
    printf("make_seeds: %u seeds in %s\n", counter, root);
    return 0;
}
