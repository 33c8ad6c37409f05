/*
 * test_vectors.c — tq_read_vectors on .fvecs and .npy (docs/format.md §5):
 * small files written here (exact contents known), the committed real-data
 * fixtures, and every malformed shape the readers must refuse cleanly:
 * truncated, ragged, empty, absurd dims and shapes, other dtypes and byte
 * orders, Fortran order, 1-D and 3-D arrays, broken headers, NaN and Inf.
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

int main(void) {
    test_fvecs();
    test_npy();
    test_fixtures();
    return CHECK_DONE();
}
