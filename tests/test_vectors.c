/*
 * test_vectors.c — the input readers and the ids writer (docs/format.md §5):
 * tq_read_vectors on .fvecs, .bvecs, .npy and HDF5, tq_read_ids on .ivecs,
 * int32/int64 .npy and HDF5, tq_write_ids to .ivecs and .npy. Small files
 * written here (exact contents known), the committed real-data fixtures, and
 * every malformed shape the readers must refuse cleanly: truncated, ragged,
 * empty, absurd dims and shapes, other dtypes and byte orders, Fortran order,
 * 1-D and 3-D arrays, broken headers, NaN and Inf, files whose names and
 * contents disagree. numpy (python3, found at configure time) reads what
 * tq_write_ids writes; with libhdf5 (TQ_HAVE_HDF5) the HDF5 files are made
 * here with its C API, without it the "built without HDF5" refusal is checked.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdlib.h>
#include <string.h>

#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "tq.h"

/* A directory of this process's own under the build's tmp dir: the suite runs
 * each test program twice (once per kernel table), possibly at the same time,
 * and the two must not share files. */
static const char *tmp_dir(void) {
    static char dir[400];
    if (!dir[0]) {
        mkdir(TQ_TEST_TMP_DIR, 0777);
        snprintf(dir, sizeof dir, "%s/%s-%ld", TQ_TEST_TMP_DIR, "vectors", (long)getpid());
        mkdir(dir, 0777);
    }
    return dir;
}


static char *tmp_path(const char *name) {
    static char buf[512];
    snprintf(buf, sizeof buf, "%s/vec_%s", tmp_dir(), name);
    return buf;
}

static void write_file(const char *path, const void *b, size_t n) {
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL, "cannot write %s", path);
    if (!f) return;
    if (n) fwrite(b, 1, n, f);
    fclose(f);
}

typedef struct buf {
    uint8_t d[1 << 16];
    size_t n;
} buf;

static void put_u32(buf *b, uint32_t v) {
    for (int i = 0; i < 4; i++) b->d[b->n++] = (uint8_t)(v >> (8 * i));
}
static void put_f32(buf *b, float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    put_u32(b, u);
}
static void put_bytes(buf *b, const void *p, size_t n) {
    memcpy(b->d + b->n, p, n);
    b->n += n;
}

static float val(size_t i, size_t j) { return (float)i * 10.0f + (float)j * 0.25f - 3.0f; }

/* rows x dim fvecs with val(i, j). */
static void make_fvecs(buf *b, size_t rows, uint32_t dim) {
    b->n = 0;
    for (size_t i = 0; i < rows; i++) {
        put_u32(b, dim);
        for (uint32_t j = 0; j < dim; j++) put_f32(b, val(i, j));
    }
}

/* An npy file: version major, header dict text (padded as numpy does), then data. */
static void make_npy(buf *b, int major, const char *dict, size_t rows, size_t dim, size_t data_rows) {
    b->n = 0;
    put_bytes(b, "\x93NUMPY", 6);
    b->d[b->n++] = (uint8_t)major;
    b->d[b->n++] = 0;
    size_t pre = major == 1 ? 10 : 12;
    size_t len = strlen(dict) + 1;
    size_t pad = (64 - (pre + len) % 64) % 64;
    size_t hlen = len + pad;
    if (major == 1) {
        b->d[b->n++] = (uint8_t)hlen;
        b->d[b->n++] = (uint8_t)(hlen >> 8);
    } else {
        put_u32(b, (uint32_t)hlen);
    }
    put_bytes(b, dict, strlen(dict));
    memset(b->d + b->n, ' ', pad);
    b->n += pad;
    b->d[b->n++] = '\n';
    (void)rows;
    for (size_t i = 0; i < data_rows; i++)
        for (size_t j = 0; j < dim; j++) put_f32(b, val(i, j));
}

static tq_status read_buf(const buf *b, size_t max_rows, float **data, size_t *n, size_t *dim) {
    const char *p = tmp_path("t.bin");
    write_file(p, b->d, b->n);
    return tq_read_vectors(p, max_rows, data, n, dim);
}

static int matches(const float *x, size_t rows, size_t dim) {
    for (size_t i = 0; i < rows; i++)
        for (size_t j = 0; j < dim; j++)
            if (x[i * dim + j] != val(i, j)) return 0;
    return 1;
}

static buf B;

static void test_fvecs(void) {
    float *x = NULL;
    size_t n = 0, d = 0;
    make_fvecs(&B, 5, 3);
    CHECK_OK(read_buf(&B, 0, &x, &n, &d));
    CHECK(n == 5 && d == 3 && x && matches(x, 5, 3), "fvecs 5x3: n %zu d %zu", n, d);
    tq_free(x);
    x = NULL;
    CHECK_OK(read_buf(&B, 2, &x, &n, &d));
    CHECK(n == 2 && d == 3 && x && matches(x, 2, 3), "fvecs max_rows 2");
    tq_free(x);
    x = NULL;
    CHECK_OK(read_buf(&B, 99, &x, &n, &d));
    CHECK(n == 5, "max_rows above the count");
    tq_free(x);
    x = NULL;
    make_fvecs(&B, 1, 1);
    CHECK_OK(read_buf(&B, 0, &x, &n, &d));
    CHECK(n == 1 && d == 1 && x && x[0] == val(0, 0), "1x1");
    tq_free(x);
    x = NULL;

    /* every truncation of a 4x3 file inside a row fails, and says "truncated" (or is empty) */
    make_fvecs(&B, 4, 3);
    size_t full = B.n;
    int ok = 0, msg = 0;
    for (size_t k = 0; k < full; k++) {
        B.n = k;
        tq_status s = read_buf(&B, 0, &x, &n, &d);
        if (k > 0 && k % 16 == 0) { /* a cut at a row boundary is a shorter, valid file */
            CHECK(s == TQ_OK && n == k / 16 && x && matches(x, n, 3), "cut at row boundary %zu", k);
            tq_free(x);
            x = NULL;
            continue;
        }
        if (s == TQ_OK) ok++;
        if (k > 0 && !strstr(tq_last_error(), "truncated")) msg++;
        if (k == 0 && !strstr(tq_last_error(), "empty")) msg++;
        CHECK(s == TQ_ERR_FORMAT, "truncated at %zu -> %s (%s)", k, tq_status_str(s), tq_last_error());
        if (s == TQ_OK) tq_free(x);
        x = NULL;
    }
    CHECK(ok == 0 && msg == 0, "%d truncations accepted, %d without the right message", ok, msg);
    /* but a truncated tail beyond max_rows is not read */
    B.n = full - 1;
    CHECK_OK(read_buf(&B, 2, &x, &n, &d));
    CHECK(n == 2, "max_rows stops before the damage");
    tq_free(x);
    x = NULL;

    /* ragged: row 2 has dim 2 (the file length still a multiple of nothing useful) */
    B.n = 0;
    for (int i = 0; i < 4; i++) {
        uint32_t dim = i == 2 ? 2 : 3;
        put_u32(&B, dim);
        for (uint32_t j = 0; j < dim; j++) put_f32(&B, 1.0f);
    }
    CHECK_STATUS(read_buf(&B, 0, &x, &n, &d), TQ_ERR_FORMAT);
    CHECK(strstr(tq_last_error(), "ragged") && strstr(tq_last_error(), "row 2"), "message: %s", tq_last_error());
    /* ragged where the lengths happen to line up: rows of dim 3, 3, 1, 5 = 4 rows of 16 bytes */
    B.n = 0;
    uint32_t dims[4] = {3, 3, 1, 5};
    for (int i = 0; i < 4; i++) {
        put_u32(&B, dims[i]);
        for (uint32_t j = 0; j < dims[i]; j++) put_f32(&B, 1.0f);
    }
    CHECK_STATUS(read_buf(&B, 0, &x, &n, &d), TQ_ERR_FORMAT);
    CHECK(strstr(tq_last_error(), "ragged"), "message: %s", tq_last_error());
    /* ragged last partial row */
    make_fvecs(&B, 2, 3);
    put_u32(&B, 7);
    CHECK_STATUS(read_buf(&B, 0, &x, &n, &d), TQ_ERR_FORMAT);
    CHECK(strstr(tq_last_error(), "ragged"), "message: %s", tq_last_error());

    /* dims: 0, negative, absurd */
    uint32_t bad[3] = {0, 0xffffffffu, TQ_MAX_DIM + 1};
    for (int i = 0; i < 3; i++) {
        B.n = 0;
        put_u32(&B, bad[i]);
        put_f32(&B, 1.0f);
        CHECK_STATUS(read_buf(&B, 0, &x, &n, &d), TQ_ERR_DIM);
    }
    /* NaN and Inf: rejected, naming row and column */
    make_fvecs(&B, 3, 4);
    uint32_t nan_bits = 0x7fc00000u;
    memcpy(B.d + 1 * 20 + 4 + 2 * 4, &nan_bits, 4);
    CHECK_STATUS(read_buf(&B, 0, &x, &n, &d), TQ_ERR_NONFINITE);
    CHECK(strstr(tq_last_error(), "row 1, column 2") && strstr(tq_last_error(), "NaN"), "message: %s",
          tq_last_error());
    make_fvecs(&B, 3, 4);
    uint32_t inf_bits = 0xff800000u;
    memcpy(B.d + 2 * 20 + 4 + 3 * 4, &inf_bits, 4);
    CHECK_STATUS(read_buf(&B, 0, &x, &n, &d), TQ_ERR_NONFINITE);
    CHECK(strstr(tq_last_error(), "row 2, column 3"), "message: %s", tq_last_error());
    CHECK_OK(read_buf(&B, 2, &x, &n, &d)); /* the bad row is past max_rows */
    tq_free(x);
    x = NULL;

    /* not files */
    CHECK_STATUS(tq_read_vectors(tmp_path("missing.fvecs"), 0, &x, &n, &d), TQ_ERR_IO);
    CHECK_STATUS(tq_read_vectors(tmp_dir(), 0, &x, &n, &d), TQ_ERR_IO);
    CHECK_STATUS(tq_read_vectors(NULL, 0, &x, &n, &d), TQ_ERR_INVALID_ARG);
    CHECK_STATUS(tq_read_vectors(tmp_path("t.bin"), 0, NULL, &n, &d), TQ_ERR_INVALID_ARG);
    CHECK(x == NULL, "no output on failure");
}

static void test_npy(void) {
    float *x = NULL;
    size_t n = 0, d = 0;
    const char *good = "{'descr': '<f4', 'fortran_order': False, 'shape': (4, 3), }";
    for (int major = 1; major <= 3; major++) {
        make_npy(&B, major, good, 4, 3, 4);
        CHECK_OK(read_buf(&B, 0, &x, &n, &d));
        CHECK(n == 4 && d == 3 && x && matches(x, 4, 3), "npy v%d", major);
        tq_free(x);
        x = NULL;
    }
    make_npy(&B, 1, good, 4, 3, 4);
    CHECK_OK(read_buf(&B, 3, &x, &n, &d));
    CHECK(n == 3 && x && matches(x, 3, 3), "npy max_rows");
    tq_free(x);
    x = NULL;
    /* other spellings numpy or people write */
    make_npy(&B, 1, "{\"shape\":(4,3),\"fortran_order\":False,\"descr\":\"<f4\"}", 4, 3, 4);
    CHECK_OK(read_buf(&B, 0, &x, &n, &d));
    CHECK(n == 4 && d == 3 && x && matches(x, 4, 3), "reordered keys, double quotes");
    tq_free(x);
    x = NULL;
    make_npy(&B, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (0, 7), }", 0, 7, 0);
    CHECK_OK(read_buf(&B, 0, &x, &n, &d));
    CHECK(n == 0 && d == 7 && x == NULL, "empty array");

    /* every truncation fails */
    make_npy(&B, 1, good, 4, 3, 4);
    size_t full = B.n;
    int ok = 0;
    for (size_t k = 0; k < full; k++) {
        B.n = k;
        tq_status s = read_buf(&B, 0, &x, &n, &d);
        if (s == TQ_OK) {
            ok++;
            tq_free(x);
        }
        x = NULL;
    }
    CHECK(ok == 0, "%d truncated npy files accepted", ok);
    B.n = full + 4; /* trailing bytes */
    CHECK_STATUS(read_buf(&B, 0, &x, &n, &d), TQ_ERR_FORMAT);

    struct {
        const char *dict;
        tq_status want;
        const char *msg;
    } bad[] = {
        {"{'descr': '<f8', 'fortran_order': False, 'shape': (4, 3), }", TQ_ERR_FORMAT, "'<f8'"},
        {"{'descr': '>f4', 'fortran_order': False, 'shape': (4, 3), }", TQ_ERR_FORMAT, "'>f4'"},
        {"{'descr': '<i4', 'fortran_order': False, 'shape': (4, 3), }", TQ_ERR_FORMAT, "'<i4'"},
        {"{'descr': '|u1', 'fortran_order': False, 'shape': (4, 3), }", TQ_ERR_FORMAT, "'|u1'"},
        {"{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (4, 3), }", TQ_ERR_FORMAT, "structured"},
        {"{'descr': '<f4', 'fortran_order': True, 'shape': (4, 3), }", TQ_ERR_FORMAT, "Fortran"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (12,), }", TQ_ERR_FORMAT, "1-D"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2, 3), }", TQ_ERR_FORMAT, "3-D"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (), }", TQ_ERR_FORMAT, "0-D"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (4, 0), }", TQ_ERR_DIM, "dim"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (1, 70000), }", TQ_ERR_DIM, "dim"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999, 3), }", TQ_ERR_FORMAT, "truncated"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (18446744073709551615, 3), }", TQ_ERR_FORMAT,
         "overflow"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999999, 3), }", TQ_ERR_FORMAT,
         "shape"},
        {"{'descr': '<f4', 'fortran_order': False}", TQ_ERR_FORMAT, "'shape'"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (4, 3), 'extra': 1}", TQ_ERR_FORMAT, "'extra'"},
        {"{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (4, 3)}", TQ_ERR_FORMAT, "twice"},
        {"{'descr': '<f4', 'fortran_order': Maybe, 'shape': (4, 3)}", TQ_ERR_FORMAT, "fortran_order"},
        {"['descr', '<f4']", TQ_ERR_FORMAT, "dict"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (4, 3)} junk", TQ_ERR_FORMAT, "after"},
        {"{'descr': '<f4, 'fortran_order': False, 'shape': (4, 3)}", TQ_ERR_FORMAT, "npy"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        make_npy(&B, 1, bad[i].dict, 4, 3, 4);
        tq_status s = read_buf(&B, 0, &x, &n, &d);
        CHECK(s == bad[i].want, "%s -> %s (%s), want %s", bad[i].dict, tq_status_str(s), tq_last_error(),
              tq_status_str(bad[i].want));
        CHECK(strstr(tq_last_error(), bad[i].msg) != NULL, "%s: message '%s' lacks '%s'", bad[i].dict,
              tq_last_error(), bad[i].msg);
        if (s == TQ_OK) tq_free(x);
        x = NULL;
    }
    /* unsupported versions, absurd header lengths */
    make_npy(&B, 1, good, 4, 3, 4);
    B.d[6] = 4;
    CHECK_STATUS(read_buf(&B, 0, &x, &n, &d), TQ_ERR_FORMAT);
    make_npy(&B, 2, good, 4, 3, 4);
    B.d[8] = 0;
    B.d[9] = 0;
    B.d[10] = 0;
    B.d[11] = 0x7f; /* 2 GB header */
    CHECK_STATUS(read_buf(&B, 0, &x, &n, &d), TQ_ERR_FORMAT);
    make_npy(&B, 1, good, 4, 3, 4);
    B.d[8] = 0xff;
    B.d[9] = 0xff; /* header longer than the file */
    CHECK_STATUS(read_buf(&B, 0, &x, &n, &d), TQ_ERR_FORMAT);
    /* NaN in npy data */
    make_npy(&B, 1, good, 4, 3, 4);
    uint32_t nan_bits = 0x7f800001u;
    memcpy(B.d + B.n - 4, &nan_bits, 4);
    CHECK_STATUS(read_buf(&B, 0, &x, &n, &d), TQ_ERR_NONFINITE);
    CHECK(strstr(tq_last_error(), "row 3, column 2") != NULL, "message: %s", tq_last_error());
    CHECK(x == NULL, "no output on failure");
}

/* The committed real-data fixtures (tests/data/make_fixtures.py): Fashion-MNIST pixels. */
static void test_fixtures(void) {
    float *x = NULL, *y = NULL;
    size_t n = 0, d = 0, m = 0, e = 0;
    CHECK_OK(tq_read_vectors(TQ_TEST_DATA_DIR "/fmnist_base_500.fvecs", 0, &x, &n, &d));
    CHECK(n == 500 && d == 784, "fmnist base: %zu x %zu", n, d);
    CHECK_OK(tq_read_vectors(TQ_TEST_DATA_DIR "/fmnist_queries_50.npy", 10, &y, &m, &e));
    CHECK(m == 10 && e == 784, "fmnist queries: %zu x %zu", m, e);
    int bad = 0;
    for (size_t i = 0; x && i < n * d; i++) bad += !(x[i] >= 0.0f && x[i] <= 255.0f && x[i] == (float)(int)x[i]);
    for (size_t i = 0; y && i < m * e; i++) bad += !(y[i] >= 0.0f && y[i] <= 255.0f && y[i] == (float)(int)y[i]);
    CHECK(bad == 0, "%d pixel values outside 0..255 integers", bad);
    tq_free(x);
    tq_free(y);
}

/* ------------------------------------------------------------------ bvecs */

static uint8_t bval(size_t i, size_t j) { return i == 1 && j == 0 ? 255 : (uint8_t)((i * 97 + j * 31) % 256); }

static void make_bvecs(buf *b, size_t rows, uint32_t dim) {
    b->n = 0;
    for (size_t i = 0; i < rows; i++) {
        put_u32(b, dim);
        for (uint32_t j = 0; j < dim; j++) b->d[b->n++] = bval(i, j);
    }
}

static tq_status read_named(const char *name, const buf *b, size_t max_rows, float **data, size_t *n, size_t *dim) {
    const char *p = tmp_path(name);
    write_file(p, b->d, b->n);
    return tq_read_vectors(p, max_rows, data, n, dim);
}

static tq_status ids_named(const char *name, const buf *b, size_t max_rows, int64_t **data, size_t *n,
                           size_t *cols) {
    const char *p = tmp_path(name);
    write_file(p, b->d, b->n);
    return tq_read_ids(p, max_rows, data, n, cols);
}

static void test_bvecs(void) {
    float *x = NULL;
    size_t n = 0, d = 0;
    make_bvecs(&B, 4, 5);
    CHECK_OK(read_named("t.bvecs", &B, 0, &x, &n, &d));
    int bad = 0;
    for (size_t i = 0; x && i < 4; i++)
        for (size_t j = 0; j < 5; j++) bad += x[i * 5 + j] != (float)bval(i, j);
    CHECK(n == 4 && d == 5 && x && bad == 0 && x[5] == 255.0f, "bvecs 4x5: n %zu d %zu, %d wrong", n, d, bad);
    tq_free(x);
    x = NULL;
    CHECK_OK(read_named("t.BVECS", &B, 3, &x, &n, &d)); /* the suffix in any case */
    CHECK(n == 3 && d == 5 && x && x[2 * 5 + 4] == (float)bval(2, 4), "bvecs max_rows 3");
    tq_free(x);
    x = NULL;
    /* the same bytes under another name are fvecs: 9-byte rows do not make 24-byte fvecs rows */
    CHECK_STATUS(read_named("t.bin", &B, 0, &x, &n, &d), TQ_ERR_FORMAT);

    /* every cut inside a row fails as "truncated" (or "empty"); cuts at row boundaries are shorter files */
    size_t full = B.n, row = 4 + 5;
    int wrong = 0;
    for (size_t k = 0; k < full; k++) {
        B.n = k;
        tq_status s = read_named("t.bvecs", &B, 0, &x, &n, &d);
        if (k > 0 && k % row == 0) {
            wrong += !(s == TQ_OK && n == k / row && d == 5);
        } else {
            wrong += !(s == TQ_ERR_FORMAT && strstr(tq_last_error(), k ? "truncated" : "empty"));
        }
        if (s == TQ_OK) tq_free(x);
        x = NULL;
    }
    CHECK(wrong == 0, "%d cuts of a bvecs file handled wrongly", wrong);
    /* ragged: row 1 declares 4 */
    make_bvecs(&B, 3, 5);
    B.d[row] = 4;
    CHECK_STATUS(read_named("t.bvecs", &B, 0, &x, &n, &d), TQ_ERR_FORMAT);
    CHECK(strstr(tq_last_error(), "ragged") && strstr(tq_last_error(), "row 1"), "message: %s", tq_last_error());
    /* absurd dims */
    uint32_t dims[3] = {0, 0x80000000u, TQ_MAX_DIM + 1};
    for (int i = 0; i < 3; i++) {
        B.n = 0;
        put_u32(&B, dims[i]);
        put_u32(&B, 0);
        CHECK_STATUS(read_named("t.bvecs", &B, 0, &x, &n, &d), TQ_ERR_DIM);
        CHECK(strstr(tq_last_error(), "bvecs") != NULL, "message names the format: %s", tq_last_error());
    }
    /* a large legal dim with almost no data: refused before allocating */
    B.n = 0;
    put_u32(&B, TQ_MAX_DIM);
    put_u32(&B, 0);
    CHECK_STATUS(read_named("t.bvecs", &B, 0, &x, &n, &d), TQ_ERR_FORMAT);
    CHECK(strstr(tq_last_error(), "truncated") != NULL, "message: %s", tq_last_error());
    CHECK(x == NULL, "no output on failure");
}

/* ------------------------------------------------------------------ ivecs */

static const int32_t IV[3][4] = {{0, 1, -1, 7}, {INT32_MAX, INT32_MIN, 42, -42}, {100000, 5, 6, 2000000000}};

static void make_ivecs(buf *b, size_t rows) {
    b->n = 0;
    for (size_t i = 0; i < rows; i++) {
        put_u32(b, 4);
        for (size_t j = 0; j < 4; j++) put_u32(b, (uint32_t)IV[i][j]);
    }
}

static int ids_match(const int64_t *x, size_t rows) {
    for (size_t i = 0; i < rows; i++)
        for (size_t j = 0; j < 4; j++)
            if (x[i * 4 + j] != (int64_t)IV[i][j]) return 0;
    return 1;
}

static void test_ivecs(void) {
    int64_t *x = NULL;
    size_t n = 0, c = 0;
    make_ivecs(&B, 3);
    CHECK_OK(ids_named("t.ivecs", &B, 0, &x, &n, &c));
    CHECK(n == 3 && c == 4 && x && ids_match(x, 3), "ivecs 3x4: n %zu cols %zu", n, c);
    tq_free(x);
    x = NULL;
    CHECK_OK(ids_named("t.bin", &B, 2, &x, &n, &c)); /* ivecs is the default for ids */
    CHECK(n == 2 && c == 4 && x && ids_match(x, 2), "ivecs by content, max_rows 2");
    tq_free(x);
    x = NULL;

    size_t full = B.n, row = 4 + 16;
    int wrong = 0;
    for (size_t k = 1; k < full; k++) {
        B.n = k;
        tq_status s = ids_named("t.ivecs", &B, 0, &x, &n, &c);
        if (k % row == 0) wrong += !(s == TQ_OK && n == k / row && c == 4 && x && ids_match(x, n));
        else wrong += !(s == TQ_ERR_FORMAT && strstr(tq_last_error(), "truncated"));
        if (s == TQ_OK) tq_free(x);
        x = NULL;
    }
    CHECK(wrong == 0, "%d cuts of an ivecs file handled wrongly", wrong);
    /* an empty ivecs file is 0 rows (what tq_write_ids writes for n = 0) */
    B.n = 0;
    CHECK_OK(ids_named("t.ivecs", &B, 0, &x, &n, &c));
    CHECK(n == 0 && c == 0 && x == NULL, "empty ivecs: n %zu cols %zu", n, c);
    /* ragged, including a ragged partial last row */
    make_ivecs(&B, 3);
    B.d[2 * row] = 3;
    CHECK_STATUS(ids_named("t.ivecs", &B, 0, &x, &n, &c), TQ_ERR_FORMAT);
    CHECK(strstr(tq_last_error(), "ragged") && strstr(tq_last_error(), "row 2"), "message: %s", tq_last_error());
    make_ivecs(&B, 2);
    put_u32(&B, 9);
    CHECK_STATUS(ids_named("t.ivecs", &B, 0, &x, &n, &c), TQ_ERR_FORMAT);
    CHECK(strstr(tq_last_error(), "ragged"), "message: %s", tq_last_error());
    uint32_t dims[3] = {0, 0xfffffffeu, TQ_MAX_DIM + 1};
    for (int i = 0; i < 3; i++) {
        B.n = 0;
        put_u32(&B, dims[i]);
        put_u32(&B, 1);
        CHECK_STATUS(ids_named("t.ivecs", &B, 0, &x, &n, &c), TQ_ERR_DIM);
        CHECK(strstr(tq_last_error(), "ivecs") != NULL, "message names the format: %s", tq_last_error());
    }
    /* a *vecs name of the other kind is refused, not misread */
    make_ivecs(&B, 3);
    float *v = NULL;
    size_t d = 0;
    CHECK_STATUS(read_named("t.ivecs", &B, 0, &v, &n, &d), TQ_ERR_FORMAT);
    CHECK(strstr(tq_last_error(), "tq_read_ids") != NULL, "message: %s", tq_last_error());
    make_fvecs(&B, 2, 3);
    CHECK_STATUS(ids_named("t.fvecs", &B, 0, &x, &n, &c), TQ_ERR_FORMAT);
    CHECK(strstr(tq_last_error(), "tq_read_vectors") != NULL, "message: %s", tq_last_error());
    make_bvecs(&B, 2, 3);
    CHECK_STATUS(ids_named("t.bvecs", &B, 0, &x, &n, &c), TQ_ERR_FORMAT);
    /* files named .npy / .hdf5 without their magic are refused, not read as *vecs */
    make_ivecs(&B, 3);
    CHECK_STATUS(ids_named("t.npy", &B, 0, &x, &n, &c), TQ_ERR_FORMAT);
    CHECK(strstr(tq_last_error(), "npy magic") != NULL, "message: %s", tq_last_error());
    CHECK_STATUS(ids_named("t.h5", &B, 0, &x, &n, &c), TQ_ERR_FORMAT);
    CHECK(strstr(tq_last_error(), "HDF5 signature") != NULL, "message: %s", tq_last_error());
    CHECK_STATUS(tq_read_ids(tmp_path("missing.ivecs"), 0, &x, &n, &c), TQ_ERR_IO);
    CHECK_STATUS(tq_read_ids(NULL, 0, &x, &n, &c), TQ_ERR_INVALID_ARG);
    CHECK_STATUS(tq_read_ids(tmp_path("t.ivecs"), 0, &x, NULL, &c), TQ_ERR_INVALID_ARG);
    CHECK(x == NULL && v == NULL, "no output on failure");
}

/* ---------------------------------------------------------------- int npy */

static void put_u64(buf *b, uint64_t v) {
    for (int i = 0; i < 8; i++) b->d[b->n++] = (uint8_t)(v >> (8 * i));
}

static const int64_t I64[2][3] = {{5000000000LL, -5000000000LL, -1}, {INT64_MAX, INT64_MIN, 0}};

static void test_npy_ids(void) {
    int64_t *x = NULL;
    size_t n = 0, c = 0;
    for (int major = 1; major <= 3; major++) {
        make_npy(&B, major, "{'descr': '<i4', 'fortran_order': False, 'shape': (3, 4), }", 3, 4, 0);
        for (int i = 0; i < 3; i++)
            for (int j = 0; j < 4; j++) put_u32(&B, (uint32_t)IV[i][j]);
        CHECK_OK(ids_named("t.npy", &B, 0, &x, &n, &c));
        CHECK(n == 3 && c == 4 && x && ids_match(x, 3), "int32 npy v%d", major);
        tq_free(x);
        x = NULL;
    }
    CHECK_OK(ids_named("t.npy", &B, 1, &x, &n, &c));
    CHECK(n == 1 && c == 4 && x && ids_match(x, 1), "int32 npy max_rows");
    tq_free(x);
    x = NULL;
    size_t full = B.n;
    int ok = 0;
    for (size_t k = 0; k < full; k++) {
        B.n = k;
        tq_status s = ids_named("t.npy", &B, 0, &x, &n, &c);
        if (s == TQ_OK) {
            ok++;
            tq_free(x);
        }
        x = NULL;
    }
    CHECK(ok == 0, "%d truncated int32 npy files accepted", ok);

    make_npy(&B, 1, "{'descr': '<i8', 'fortran_order': False, 'shape': (2, 3), }", 2, 3, 0);
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 3; j++) put_u64(&B, (uint64_t)I64[i][j]);
    CHECK_OK(ids_named("t.npy", &B, 0, &x, &n, &c));
    int bad = 0;
    for (int i = 0; x && i < 6; i++) bad += x[i] != I64[i / 3][i % 3];
    CHECK(n == 2 && c == 3 && x && bad == 0, "int64 npy: n %zu cols %zu, %d wrong", n, c, bad);
    tq_free(x);
    x = NULL;
    B.n -= 1;
    CHECK_STATUS(ids_named("t.npy", &B, 0, &x, &n, &c), TQ_ERR_FORMAT);
    CHECK(strstr(tq_last_error(), "truncated") != NULL, "message: %s", tq_last_error());
    B.n += 9;
    CHECK_STATUS(ids_named("t.npy", &B, 0, &x, &n, &c), TQ_ERR_FORMAT);
    CHECK(strstr(tq_last_error(), "trailing") != NULL, "message: %s", tq_last_error());
    make_npy(&B, 1, "{'descr': '<i8', 'fortran_order': False, 'shape': (0, 5), }", 0, 5, 0);
    CHECK_OK(ids_named("t.npy", &B, 0, &x, &n, &c));
    CHECK(n == 0 && c == 5 && x == NULL, "empty int npy");

    struct {
        const char *dict;
        tq_status want;
        const char *msg;
    } bad_ids[] = {
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", TQ_ERR_FORMAT, "'<f4'"},
        {"{'descr': '>i4', 'fortran_order': False, 'shape': (2, 3), }", TQ_ERR_FORMAT, "'>i4'"},
        {"{'descr': '<u4', 'fortran_order': False, 'shape': (2, 3), }", TQ_ERR_FORMAT, "'<i4' or '<i8'"},
        {"{'descr': '|i1', 'fortran_order': False, 'shape': (2, 3), }", TQ_ERR_FORMAT, "'|i1'"},
        {"{'descr': [('a', '<i4')], 'fortran_order': False, 'shape': (2, 3), }", TQ_ERR_FORMAT, "'<i4' or '<i8'"},
        {"{'descr': '<i4', 'fortran_order': True, 'shape': (2, 3), }", TQ_ERR_FORMAT, "Fortran"},
        {"{'descr': '<i4', 'fortran_order': False, 'shape': (6,), }", TQ_ERR_FORMAT, "1-D"},
        {"{'descr': '<i8', 'fortran_order': False, 'shape': (3, 0), }", TQ_ERR_DIM, "column"},
        {"{'descr': '<i8', 'fortran_order': False, 'shape': (4611686018427387904, 3), }", TQ_ERR_FORMAT,
         "overflow"},
        {"{'descr': '<i8', 'fortran_order': False, 'shape': (99999999999, 3), }", TQ_ERR_FORMAT, "truncated"},
    };
    for (size_t i = 0; i < sizeof bad_ids / sizeof bad_ids[0]; i++) {
        make_npy(&B, 1, bad_ids[i].dict, 2, 3, 2);
        tq_status s = ids_named("t.npy", &B, 0, &x, &n, &c);
        CHECK(s == bad_ids[i].want && strstr(tq_last_error(), bad_ids[i].msg), "%s -> %s (%s), want %s '%s'",
              bad_ids[i].dict, tq_status_str(s), tq_last_error(), tq_status_str(bad_ids[i].want), bad_ids[i].msg);
        if (s == TQ_OK) tq_free(x);
        x = NULL;
    }
}

/* ---------------------------------------------------------- tq_write_ids */

static size_t read_back(const char *path, uint8_t *out, size_t cap) {
    FILE *f = fopen(path, "rb");
    if (!f) return (size_t)-1;
    size_t got = fread(out, 1, cap, f);
    fclose(f);
    return got;
}

static uint8_t FILEBUF[1 << 16];

/* Does python3 + numpy read what tq_write_ids wrote, and do its files read back here? */
static void numpy_check(const int64_t *ids) {
#ifdef TQ_TEST_PYTHON3
    char script[600], cmd[1400], npy[512], ivecs[512];
    snprintf(script, sizeof script, "%s", tmp_path("numpy_check.py"));
    snprintf(npy, sizeof npy, "%s", tmp_path("w.npy"));
    snprintf(ivecs, sizeof ivecs, "%s", tmp_path("np.npy"));
    FILE *f = fopen(script, "w");
    CHECK(f != NULL, "cannot write %s", script);
    if (!f) return;
    fputs("import sys\n"
          "import numpy as np\n"
          "a = np.load(sys.argv[1], allow_pickle=False)\n"
          "assert a.dtype == np.dtype('<i4') and a.shape == (3, 4) and a.flags.c_contiguous, (a.dtype, a.shape)\n"
          "want = [int(v) for v in sys.argv[3:]]\n"
          "assert a.reshape(-1).tolist() == want, (a.tolist(), want)\n"
          "with open(sys.argv[1], 'rb') as f:\n"
          "    assert np.lib.format.read_magic(f) == (1, 0)\n"
          "    np.lib.format.read_array_header_1_0(f)\n"
          "    assert f.tell() % 64 == 0, f.tell()\n"
          "import io\n"
          "b = io.BytesIO()\n"
          "np.save(b, a)\n"
          "with open(sys.argv[1], 'rb') as f:\n"
          "    assert f.read() == b.getvalue(), 'not the bytes np.save writes'\n"
          "np.save(sys.argv[2], np.array(want, dtype='<i8').reshape(3, 4) * 3)\n",
          f);
    fclose(f);
    int len = snprintf(cmd, sizeof cmd, "'%s' '%s' '%s' '%s'", TQ_TEST_PYTHON3, script, npy, ivecs);
    for (int i = 0; i < 12; i++) len += snprintf(cmd + len, sizeof cmd - (size_t)len, " %lld", (long long)ids[i]);
    int rc = system(cmd);
    CHECK(rc == 0, "numpy does not read tq_write_ids' npy the same (exit %d; is python3-numpy installed?): %s", rc,
          cmd);
    int64_t *x = NULL;
    size_t n = 0, c = 0;
    CHECK_OK(tq_read_ids(ivecs, 0, &x, &n, &c));
    int bad = 0;
    for (int i = 0; x && i < 12; i++) bad += x[i] != ids[i] * 3;
    CHECK(n == 3 && c == 4 && x && bad == 0, "numpy's int64 npy: n %zu cols %zu, %d wrong", n, c, bad);
    tq_free(x);
#else
    (void)ids;
    fprintf(stderr, "test_vectors: no python3 found at configure time: numpy check of tq_write_ids skipped\n");
#endif
}

static void test_write_ids(void) {
    int64_t ids[12];
    for (int i = 0; i < 12; i++) ids[i] = IV[i / 4][i % 4];
    int64_t *x = NULL;
    size_t n = 0, c = 0;

    /* ivecs: byte-exact */
    char path[512];
    snprintf(path, sizeof path, "%s", tmp_path("w.ivecs"));
    CHECK_OK(tq_write_ids(path, ids, 3, 4));
    make_ivecs(&B, 3);
    size_t got = read_back(path, FILEBUF, sizeof FILEBUF);
    CHECK(got == B.n && memcmp(FILEBUF, B.d, B.n) == 0, "ivecs bytes: %zu of %zu", got, B.n);
    CHECK_OK(tq_read_ids(path, 0, &x, &n, &c));
    CHECK(n == 3 && c == 4 && x && ids_match(x, 3), "ivecs round trip");
    tq_free(x);
    x = NULL;

    /* npy: byte-exact np.save layout (20 spare spaces for the row count, then padding to 64) */
    snprintf(path, sizeof path, "%s", tmp_path("w.npy"));
    CHECK_OK(tq_write_ids(path, ids, 3, 4));
    make_npy(&B, 1, "{'descr': '<i4', 'fortran_order': False, 'shape': (3, 4), }                    ", 3, 4, 0);
    size_t header = B.n;
    for (int i = 0; i < 12; i++) put_u32(&B, (uint32_t)ids[i]);
    got = read_back(path, FILEBUF, sizeof FILEBUF);
    CHECK(header == 128 && got == B.n && memcmp(FILEBUF, B.d, B.n) == 0, "npy bytes: %zu of %zu, header %zu", got, B.n,
          header);
    CHECK_OK(tq_read_ids(path, 0, &x, &n, &c));
    CHECK(n == 3 && c == 4 && x && ids_match(x, 3), "npy round trip");
    tq_free(x);
    x = NULL;
    numpy_check(ids);

    /* a longer row count takes from the spare spaces: the header stays 128 bytes */
    snprintf(path, sizeof path, "%s", tmp_path("wide.npy"));
    int64_t *many = calloc(100000, sizeof *many);
    CHECK(many != NULL, "calloc");
    if (many) {
        many[99999] = -7;
        CHECK_OK(tq_write_ids(path, many, 100000, 1));
        got = read_back(path, FILEBUF, 256);
        static const char dict[] = "{'descr': '<i4', 'fortran_order': False, 'shape': (100000, 1), }";
        CHECK(got == 256 && FILEBUF[8] + 10 == 128 && FILEBUF[127] == '\n' && FILEBUF[126] == ' ' &&
                  memcmp(FILEBUF + 10, dict, sizeof dict - 1) == 0,
              "npy header of (100000, 1) is 128 bytes");
        CHECK_OK(tq_read_ids(path, 0, &x, &n, &c));
        CHECK(n == 100000 && c == 1 && x && x[99999] == -7 && x[0] == 0, "100000 x 1 round trip");
        tq_free(x);
        x = NULL;
        free(many);
    }

    /* n = 0: an empty ivecs file, an npy of shape (0, cols); both read back as 0 rows */
    snprintf(path, sizeof path, "%s", tmp_path("empty.ivecs"));
    CHECK_OK(tq_write_ids(path, NULL, 0, 4));
    CHECK(read_back(path, FILEBUF, sizeof FILEBUF) == 0, "n = 0 ivecs is empty");
    CHECK_OK(tq_read_ids(path, 0, &x, &n, &c));
    CHECK(n == 0 && x == NULL, "n = 0 ivecs reads back");
    snprintf(path, sizeof path, "%s", tmp_path("empty.npy"));
    CHECK_OK(tq_write_ids(path, NULL, 0, 4));
    CHECK_OK(tq_read_ids(path, 0, &x, &n, &c));
    CHECK(n == 0 && c == 4 && x == NULL, "n = 0 npy reads back with its cols");

    /* values outside int32 are refused and the existing file is left alone */
    snprintf(path, sizeof path, "%s", tmp_path("w.ivecs"));
    int64_t over[6] = {1, 2, 3, 4, 5, (int64_t)INT32_MAX + 1};
    CHECK_STATUS(tq_write_ids(path, over, 2, 3), TQ_ERR_SIZE);
    CHECK(strstr(tq_last_error(), "row 1, column 2") && strstr(tq_last_error(), "2147483648"), "message: %s",
          tq_last_error());
    over[5] = (int64_t)INT32_MIN - 1;
    CHECK_STATUS(tq_write_ids(path, over, 2, 3), TQ_ERR_SIZE);
    over[5] = INT64_MIN;
    CHECK_STATUS(tq_write_ids(tmp_path("w2.npy"), over, 2, 3), TQ_ERR_SIZE);
    CHECK(access(tmp_path("w2.npy"), F_OK) != 0, "nothing written on failure");
    CHECK_OK(tq_read_ids(path, 0, &x, &n, &c));
    CHECK(n == 3 && c == 4 && x && ids_match(x, 3), "the earlier file survives a refused write");
    tq_free(x);
    x = NULL;

    CHECK_STATUS(tq_write_ids(path, ids, 3, 0), TQ_ERR_DIM);
    CHECK_STATUS(tq_write_ids(path, ids, 1, TQ_MAX_DIM + 1), TQ_ERR_DIM);
    CHECK_STATUS(tq_write_ids(path, NULL, 3, 4), TQ_ERR_INVALID_ARG);
    CHECK_STATUS(tq_write_ids(NULL, ids, 3, 4), TQ_ERR_INVALID_ARG);
    CHECK_STATUS(tq_write_ids("", ids, 3, 4), TQ_ERR_INVALID_ARG);
    CHECK_STATUS(tq_write_ids(tmp_path("no/such/dir.ivecs"), ids, 3, 4), TQ_ERR_IO);
    CHECK_STATUS(tq_write_ids(tmp_dir(), ids, 3, 4), TQ_ERR_IO);
}

/* ------------------------------------------------------------------- HDF5 */

/* The part before a ':' may name the file; a path that exists is never split. */
static void test_colon_paths(void) {
    float *x = NULL;
    size_t n = 0, d = 0;
    make_fvecs(&B, 2, 3);
    CHECK_OK(read_named("a:b.fvecs", &B, 0, &x, &n, &d));
    CHECK(n == 2 && d == 3 && x && matches(x, 2, 3), "an existing path with ':' is taken whole");
    tq_free(x);
    x = NULL;
    char p[512];
    snprintf(p, sizeof p, "%s:train", tmp_path("a:b.fvecs"));
    CHECK_STATUS(tq_read_vectors(p, 0, &x, &n, &d), TQ_ERR_FORMAT);
    CHECK(strstr(tq_last_error(), "not an HDF5 file") != NULL, "':DATASET' on a non-HDF5 file: %s", tq_last_error());
    snprintf(p, sizeof p, "%s:train", tmp_path("missing.hdf5"));
    CHECK_STATUS(tq_read_vectors(p, 0, &x, &n, &d), TQ_ERR_IO);
    CHECK(x == NULL, "no output on failure");
}

/* Run a reader with stderr captured: the library must print nothing, libhdf5 included. */
static int stderr_fd = -1;
static void quiet_begin(void) {
    fflush(stderr);
    stderr_fd = dup(2);
    FILE *f = fopen(tmp_path("stderr.txt"), "w");
    if (f) {
        dup2(fileno(f), 2);
        fclose(f);
    }
}
static size_t quiet_end(void) {
    fflush(stderr);
    if (stderr_fd >= 0) {
        dup2(stderr_fd, 2);
        close(stderr_fd);
        stderr_fd = -1;
    }
    return read_back(tmp_path("stderr.txt"), FILEBUF, sizeof FILEBUF);
}

#ifdef TQ_HAVE_HDF5
#include <hdf5.h>

static void h5_put(hid_t f, const char *name, hid_t file_type, hid_t mem_type, int rank, hsize_t d0, hsize_t d1,
                   const void *data) {
    hsize_t dims[2] = {d0, d1};
    hid_t sp = H5Screate_simple(rank, dims, NULL);
    hid_t ds = H5Dcreate2(f, name, file_type, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    CHECK(ds >= 0 && H5Dwrite(ds, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) >= 0, "writing dataset %s", name);
    H5Dclose(ds);
    H5Sclose(sp);
}

static void make_hdf5(const char *path) {
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    CHECK(f >= 0, "H5Fcreate %s", path);
    if (f < 0) return;
    float train[5][3];
    for (int i = 0; i < 5; i++)
        for (int j = 0; j < 3; j++) train[i][j] = val((size_t)i, (size_t)j);
    h5_put(f, "train", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 2, 5, 3, train);
    double test[2][3] = {{0.5, -1.25, 3e10}, {1e-3, 7, -0.0}};
    h5_put(f, "test", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 2, 2, 3, test);
    int32_t nb[3][4];
    memcpy(nb, IV, sizeof nb);
    h5_put(f, "neighbors", H5T_STD_I32LE, H5T_NATIVE_INT32, 2, 3, 4, nb);
    h5_put(f, "neighbors64", H5T_STD_I64BE, H5T_NATIVE_INT64, 2, 2, 3, I64);
    uint8_t u8[2][2] = {{0, 255}, {128, 7}};
    h5_put(f, "bytes", H5T_STD_U8LE, H5T_NATIVE_UINT8, 2, 2, 2, u8);
    uint64_t u64[1][2] = {{1, (uint64_t)INT64_MAX + 1}};
    h5_put(f, "u64", H5T_STD_U64LE, H5T_NATIVE_UINT64, 2, 1, 2, u64);
    float nanv[2][2] = {{1, 2}, {3, NAN}};
    h5_put(f, "nan", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 2, 2, 2, nanv);
    double big[1][2] = {{1, 1e300}};
    h5_put(f, "big", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 2, 1, 2, big);
    float flat[6] = {1, 2, 3, 4, 5, 6};
    h5_put(f, "flat", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 1, 6, 0, flat);
    h5_put(f, "empty", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 2, 0, 4, flat);
    hid_t g = H5Gcreate2(f, "grp", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    h5_put(g, "inner", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 2, 2, 3, train);
    H5Gclose(g);
    /* a big chunked, compressed dataset: several hyperslab reads */
    enum { BR = 20000, BC = 7 };
    int32_t *bigids = malloc(sizeof(int32_t) * BR * BC);
    if (bigids) {
        for (int i = 0; i < BR * BC; i++) bigids[i] = i * 3 - 5;
        hsize_t dims[2] = {BR, BC}, chunk[2] = {1000, BC};
        hid_t sp = H5Screate_simple(2, dims, NULL), pl = H5Pcreate(H5P_DATASET_CREATE);
        H5Pset_chunk(pl, 2, chunk);
        H5Pset_deflate(pl, 4);
        hid_t ds = H5Dcreate2(f, "chunked", H5T_STD_I32LE, sp, H5P_DEFAULT, pl, H5P_DEFAULT);
        CHECK(ds >= 0 && H5Dwrite(ds, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, bigids) >= 0, "chunked");
        H5Dclose(ds);
        H5Pclose(pl);
        H5Sclose(sp);
        free(bigids);
    }
    H5Fclose(f);
}

static void test_hdf5(void) {
    float *x = NULL;
    int64_t *y = NULL;
    size_t n = 0, d = 0;
    char file[512], p[600];
    snprintf(file, sizeof file, "%s", tmp_path("t.hdf5"));
    make_hdf5(file);

    quiet_begin();
    tq_status s1 = tq_read_vectors(file, 0, &x, &n, &d); /* default dataset: train */
    CHECK(s1 == TQ_OK && n == 5 && d == 3 && x && matches(x, 5, 3), "hdf5 train: %s n %zu d %zu (%s)",
          tq_status_str(s1), n, d, tq_last_error());
    tq_free(x);
    x = NULL;
    snprintf(p, sizeof p, "%s:train", file);
    CHECK_OK(tq_read_vectors(p, 2, &x, &n, &d));
    CHECK(n == 2 && d == 3 && x && matches(x, 2, 3), "hdf5 train max_rows 2");
    tq_free(x);
    x = NULL;
    snprintf(p, sizeof p, "%s:test", file);
    CHECK_OK(tq_read_vectors(p, 0, &x, &n, &d));
    CHECK(n == 2 && d == 3 && x && x[0] == 0.5f && x[1] == -1.25f && x[2] == 3e10f && x[3] == 1e-3f && x[4] == 7.0f,
          "hdf5 float64 test");
    tq_free(x);
    x = NULL;
    snprintf(p, sizeof p, "%s:neighbors", file);
    CHECK_OK(tq_read_vectors(p, 0, &x, &n, &d));
    CHECK(n == 3 && d == 4 && x && x[2] == -1.0f && x[3] == 7.0f, "hdf5 int32 as vectors");
    tq_free(x);
    x = NULL;
    snprintf(p, sizeof p, "%s:bytes", file);
    CHECK_OK(tq_read_vectors(p, 0, &x, &n, &d));
    CHECK(n == 2 && d == 2 && x && x[1] == 255.0f && x[2] == 128.0f, "hdf5 uint8 as vectors");
    tq_free(x);
    x = NULL;
    snprintf(p, sizeof p, "%s:grp/inner", file);
    CHECK_OK(tq_read_vectors(p, 0, &x, &n, &d));
    CHECK(n == 2 && d == 3 && x && matches(x, 2, 3), "a dataset in a group");
    tq_free(x);
    x = NULL;
    snprintf(p, sizeof p, "%s:empty", file);
    CHECK_OK(tq_read_vectors(p, 0, &x, &n, &d));
    CHECK(n == 0 && d == 4 && x == NULL, "0-row dataset");

    CHECK_OK(tq_read_ids(file, 0, &y, &n, &d)); /* default dataset: neighbors */
    CHECK(n == 3 && d == 4 && y && ids_match(y, 3), "hdf5 neighbors");
    tq_free(y);
    y = NULL;
    snprintf(p, sizeof p, "%s:neighbors", file);
    CHECK_OK(tq_read_ids(p, 1, &y, &n, &d));
    CHECK(n == 1 && d == 4 && y && ids_match(y, 1), "hdf5 neighbors max_rows 1");
    tq_free(y);
    y = NULL;
    snprintf(p, sizeof p, "%s:neighbors64", file);
    CHECK_OK(tq_read_ids(p, 0, &y, &n, &d));
    int bad = 0;
    for (int i = 0; y && i < 6; i++) bad += y[i] != I64[i / 3][i % 3];
    CHECK(n == 2 && d == 3 && y && bad == 0, "hdf5 big-endian int64: %d wrong", bad);
    tq_free(y);
    y = NULL;
    snprintf(p, sizeof p, "%s:chunked", file);
    CHECK_OK(tq_read_ids(p, 0, &y, &n, &d));
    bad = 0;
    for (int i = 0; y && i < 20000 * 7; i++) bad += y[i] != (int64_t)i * 3 - 5;
    CHECK(n == 20000 && d == 7 && y && bad == 0, "hdf5 chunked + deflate: %d wrong", bad);
    tq_free(y);
    y = NULL;
    CHECK_OK(tq_read_ids(p, 12345, &y, &n, &d));
    CHECK(n == 12345 && y && y[12344 * 7 + 6] == (int64_t)(12344 * 7 + 6) * 3 - 5, "chunked max_rows");
    tq_free(y);
    y = NULL;

    /* refusals */
    struct {
        const char *ds;
        int ids;
        tq_status want;
        const char *msg;
    } bad_cases[] = {
        {"nope", 0, TQ_ERR_FORMAT, "no dataset 'nope'"},
        {"nope", 1, TQ_ERR_FORMAT, "neighbors, neighbors64"},
        {"grp/nope", 0, TQ_ERR_FORMAT, "no dataset"},
        {"grp", 0, TQ_ERR_FORMAT, "not a dataset"},
        {"flat", 0, TQ_ERR_FORMAT, "1-D"},
        {"flat", 1, TQ_ERR_FORMAT, "1-D"},
        {"train", 1, TQ_ERR_FORMAT, "floating-point"},
        {"nan", 0, TQ_ERR_NONFINITE, "row 1, column 1 is NaN"},
        {"big", 0, TQ_ERR_NONFINITE, "row 0, column 1 is beyond the float32 range"},
        {"u64", 1, TQ_ERR_SIZE, "row 0, column 1 is 9223372036854775808"},
        {"", 0, TQ_ERR_INVALID_ARG, "empty dataset name"},
    };
    for (size_t i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++) {
        snprintf(p, sizeof p, "%s:%s", file, bad_cases[i].ds);
        tq_status s = bad_cases[i].ids ? tq_read_ids(p, 0, &y, &n, &d) : tq_read_vectors(p, 0, &x, &n, &d);
        CHECK(s == bad_cases[i].want && strstr(tq_last_error(), bad_cases[i].msg), "%s (%s) -> %s (%s), want %s '%s'",
              bad_cases[i].ds, bad_cases[i].ids ? "ids" : "vectors", tq_status_str(s), tq_last_error(),
              tq_status_str(bad_cases[i].want), bad_cases[i].msg);
    }
    snprintf(p, sizeof p, "%s:u64", file); /* unsigned 64-bit as vectors is fine */
    CHECK_OK(tq_read_vectors(p, 0, &x, &n, &d));
    CHECK(n == 1 && d == 2 && x && x[1] == 9223372036854775808.0f, "uint64 as float");
    tq_free(x);
    x = NULL;

    /* HDF5 is recognised by its signature, not its name */
    uint8_t *whole = malloc(1 << 20);
    size_t size = whole ? read_back(file, whole, 1 << 20) : 0;
    CHECK(size > 0 && size < (1 << 20), "read the hdf5 file back (%zu bytes)", size);
    snprintf(p, sizeof p, "%s", tmp_path("renamed.dat"));
    if (whole) write_file(p, whole, size);
    CHECK_OK(tq_read_vectors(p, 0, &x, &n, &d));
    CHECK(n == 5 && d == 3 && x && matches(x, 5, 3), "HDF5 under another name");
    tq_free(x);
    x = NULL;
    /* a damaged one (signature kept, the rest cut) is refused cleanly */
    snprintf(p, sizeof p, "%s", tmp_path("cut.h5"));
    if (whole) write_file(p, whole, 200);
    CHECK_STATUS(tq_read_vectors(p, 0, &x, &n, &d), TQ_ERR_FORMAT);
    CHECK(strstr(tq_last_error(), "libhdf5 cannot open") != NULL, "message: %s", tq_last_error());
    free(whole);
    /* a non-HDF5 file named .hdf5 */
    make_fvecs(&B, 2, 3);
    CHECK_STATUS(read_named("fake.hdf5", &B, 0, &x, &n, &d), TQ_ERR_FORMAT);
    CHECK(strstr(tq_last_error(), "HDF5 signature") != NULL, "message: %s", tq_last_error());
    snprintf(p, sizeof p, "%s:train", tmp_path("fake.hdf5"));
    CHECK_STATUS(tq_read_vectors(p, 0, &x, &n, &d), TQ_ERR_FORMAT);
    CHECK(strstr(tq_last_error(), "not an HDF5 file") != NULL, "message: %s", tq_last_error());
    size_t printed = quiet_end();
    CHECK(printed == 0, "the library printed %zu bytes to stderr: %.200s", printed, (const char *)FILEBUF);
    CHECK(x == NULL && y == NULL, "no output on failure");
    CHECK(strstr(tq_build_info(), "input: hdf5 ") != NULL, "build info: %s", tq_build_info());
}

#else /* !TQ_HAVE_HDF5 */

static void test_hdf5(void) {
    float *x = NULL;
    int64_t *y = NULL;
    size_t n = 0, d = 0;
    B.n = 0;
    put_bytes(&B, "\x89HDF\r\n\x1a\n", 8);
    memset(B.d + B.n, 0, 200);
    B.n += 200;
    quiet_begin();
    CHECK_STATUS(read_named("t.hdf5", &B, 0, &x, &n, &d), TQ_ERR_FORMAT);
    CHECK(strstr(tq_last_error(), "built without HDF5 support") && strstr(tq_last_error(), "libhdf5-dev"),
          "message: %s", tq_last_error());
    CHECK_STATUS(ids_named("t.dat", &B, 0, &y, &n, &d), TQ_ERR_FORMAT);
    CHECK(strstr(tq_last_error(), "built without HDF5 support") != NULL, "message: %s", tq_last_error());
    char p[600];
    snprintf(p, sizeof p, "%s:test", tmp_path("t.hdf5"));
    CHECK_STATUS(tq_read_vectors(p, 0, &x, &n, &d), TQ_ERR_FORMAT);
    CHECK(strstr(tq_last_error(), "built without HDF5 support") != NULL, "message: %s", tq_last_error());
    make_fvecs(&B, 2, 3);
    CHECK_STATUS(read_named("fake.hdf5", &B, 0, &x, &n, &d), TQ_ERR_FORMAT);
    CHECK(strstr(tq_last_error(), "HDF5 signature") != NULL, "message: %s", tq_last_error());
    size_t printed = quiet_end();
    CHECK(printed == 0, "the library printed %zu bytes to stderr", printed);
    CHECK(x == NULL && y == NULL, "no output on failure");
    CHECK(strstr(tq_build_info(), "input: no-hdf5") != NULL, "build info: %s", tq_build_info());
}

#endif /* TQ_HAVE_HDF5 */

int main(void) {
    test_fvecs();
    test_npy();
    test_fixtures();
    test_bvecs();
    test_ivecs();
    test_npy_ids();
    test_write_ids();
    test_colon_paths();
    test_hdf5();
    return CHECK_DONE();
}
