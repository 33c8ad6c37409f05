/*
 * vectors.c — tq_read_vectors: float32 vectors from .fvecs or .npy files
 * (rules in docs/format.md §5), told apart by content, not by name: a file
 * that starts with the npy magic "\x93NUMPY" is npy, anything else is fvecs.
 *
 * Both readers are hostile-input readers. Sizes come from the file system
 * (fstat) and every declared size is checked against them before the output
 * is allocated, so a header claiming 10^12 rows costs nothing. The npy header
 * is parsed by a small recursive-descent reader of the Python literal subset
 * numpy writes (a dict of strings, booleans and a tuple of integers); anything
 * else (structured dtypes, object arrays, other keys) is refused with a
 * message naming what was found. NaN and Inf are rejected at read
 * (TQ_ERR_NONFINITE, with row and column) so a bad file is blamed on the file,
 * not on a later encode.
 */
#include <math.h>
#include <stdlib.h>

#include "../core/common.h"
#include "fileio.h"

#define NPY_MAX_HEADER 65536u

/* Convert n little-endian float32 in place (a no-op on little-endian hosts) and check them. */
static tq_status finish_rows(float *data, size_t first_row, size_t rows, size_t dim, const char *path) {
    size_t count = rows * dim;
    for (size_t i = 0; i < count; i++) {
        float v = tq_get_f32((const uint8_t *)(data + i));
        if (!isfinite(v))
            return tq_fail(TQ_ERR_NONFINITE, "%s: row %zu, column %zu is %s", path, first_row + i / dim, i % dim,
                           isnan(v) ? "NaN" : "Inf");
        data[i] = v;
    }
    return TQ_OK;
}

/* ------------------------------------------------------------------- fvecs */

static tq_status read_fvecs(tq_rfile *rf, const uint8_t *head, size_t nhead, size_t max_rows, float **data,
                            size_t *n_out, size_t *dim_out) {
    const char *path = rf->path;
    TQ_RETURN_IF(rf->size == 0, TQ_ERR_FORMAT, "%s: empty file", path);
    TQ_RETURN_IF(nhead < 4, TQ_ERR_FORMAT, "%s: truncated: %zu bytes, an fvecs row starts with a 4-byte dim", path,
                 nhead);
    int32_t d = (int32_t)tq_get_u32(head);
    TQ_RETURN_IF(d <= 0 || (uint32_t)d > TQ_MAX_DIM, TQ_ERR_DIM,
                 "%s: row 0 declares dim %d (must be 1..%u; is this an fvecs file?)", path, (int)d, TQ_MAX_DIM);
    size_t dim = (size_t)d;
    uint64_t row_bytes = 4u + 4u * (uint64_t)dim;
    uint64_t full = rf->size / row_bytes, rest = rf->size % row_bytes;
    uint64_t want = full;
    if (max_rows && max_rows < want) want = max_rows;
    int check_tail = rest != 0 && want == full; /* the partial last row will be reached */
    if (full == 0) {
        return tq_fail(TQ_ERR_FORMAT, "%s: truncated: row 0 has %llu of %llu bytes", path,
                       (unsigned long long)rf->size, (unsigned long long)row_bytes);
    }
    size_t count;
    TQ_RETURN_IF(want > SIZE_MAX || !tq_mul_size((size_t)want, dim, &count) || count > SIZE_MAX / 4, TQ_ERR_SIZE,
                 "%s: %llu rows of %zu floats do not fit in memory", path, (unsigned long long)want, dim);
    float *out = malloc(count ? count * 4 : 1);
    TQ_RETURN_IF(!out, TQ_ERR_NOMEM, "%s: out of memory for %llu x %zu floats", path, (unsigned long long)want, dim);

    tq_status s = TQ_OK;
    size_t used = 0; /* bytes of head consumed */
    uint8_t dimb[4];
    for (uint64_t r = 0; r < want && s == TQ_OK; r++) {
        float *row = out + (size_t)r * dim;
        /* the first bytes were already read into head */
        size_t take = used < nhead ? (nhead - used < 4 ? nhead - used : 4) : 0;
        memcpy(dimb, head + used, take);
        used += take;
        s = tq_rfile_read(rf, dimb + take, 4 - take);
        if (s != TQ_OK) break;
        int32_t rd = (int32_t)tq_get_u32(dimb);
        if (rd != d) {
            s = tq_fail(TQ_ERR_FORMAT, "%s: ragged: row %llu has dim %d, row 0 has %d", path, (unsigned long long)r,
                        (int)rd, (int)d);
            break;
        }
        size_t body = dim * 4, from_head = used < nhead ? nhead - used : 0;
        if (from_head > body) from_head = body;
        memcpy(row, head + used, from_head);
        used += from_head;
        s = tq_rfile_read(rf, (uint8_t *)row + from_head, body - from_head);
        if (s == TQ_OK) s = finish_rows(row, (size_t)r, 1, dim, path);
    }
    if (s == TQ_OK && check_tail) {
        /* a partial row follows: say whether it is ragged or cut short */
        uint8_t tail[4] = {0, 0, 0, 0};
        if (rest >= 4 && used + 4 <= nhead) {
            memcpy(tail, head + used, 4);
        } else if (rest >= 4) {
            size_t from_head = used < nhead ? nhead - used : 0;
            memcpy(tail, head + used, from_head);
            s = tq_rfile_read(rf, tail + from_head, 4 - from_head);
        }
        if (s == TQ_OK) {
            if (rest >= 4 && (int32_t)tq_get_u32(tail) != d)
                s = tq_fail(TQ_ERR_FORMAT, "%s: ragged: row %llu has dim %d, row 0 has %d", path,
                            (unsigned long long)full, (int)(int32_t)tq_get_u32(tail), (int)d);
            else
                s = tq_fail(TQ_ERR_FORMAT, "%s: truncated: row %llu has %llu of %llu bytes", path,
                            (unsigned long long)full, (unsigned long long)rest, (unsigned long long)row_bytes);
        }
    }
    if (s != TQ_OK) {
        free(out);
        return s;
    }
    *data = out;
    *n_out = (size_t)want;
    *dim_out = dim;
    return TQ_OK;
}

/* --------------------------------------------------------------------- npy */

typedef struct npy_parser {
    const char *p, *end;
    const char *path;
} npy_parser;

static void npy_ws(npy_parser *ps) {
    while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r')) ps->p++;
}

static int npy_eat(npy_parser *ps, char c) {
    npy_ws(ps);
    if (ps->p < ps->end && *ps->p == c) {
        ps->p++;
        return 1;
    }
    return 0;
}

/* A quoted string (no escapes: numpy's keys and dtype strings have none) into out[cap]. */
static int npy_string(npy_parser *ps, char *out, size_t cap) {
    npy_ws(ps);
    if (ps->p >= ps->end || (*ps->p != '\'' && *ps->p != '"')) return 0;
    char q = *ps->p++;
    size_t len = 0;
    while (ps->p < ps->end && *ps->p != q) {
        if (*ps->p == '\\' || len + 1 >= cap) return 0;
        out[len++] = *ps->p++;
    }
    if (ps->p >= ps->end) return 0;
    ps->p++;
    out[len] = '\0';
    return 1;
}

static int npy_word(npy_parser *ps, const char *w) {
    npy_ws(ps);
    size_t n = strlen(w);
    if ((size_t)(ps->end - ps->p) >= n && memcmp(ps->p, w, n) == 0) {
        ps->p += n;
        return 1;
    }
    return 0;
}

/* Tuple of non-negative integers: shape. Returns count, or -1 on a syntax error / too many dims / overflow. */
static int npy_shape(npy_parser *ps, uint64_t dims[8]) {
    if (!npy_eat(ps, '(')) return -1;
    int nd = 0;
    for (;;) {
        npy_ws(ps);
        if (npy_eat(ps, ')')) return nd;
        if (ps->p >= ps->end || *ps->p < '0' || *ps->p > '9') return -1;
        uint64_t v = 0;
        while (ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9') {
            unsigned dgt = (unsigned)(*ps->p - '0');
            if (v > (UINT64_MAX - dgt) / 10) return -1;
            v = v * 10 + dgt;
            ps->p++;
        }
        if (ps->p < ps->end && (*ps->p == 'L' || *ps->p == 'l')) ps->p++; /* Python 2 longs */
        if (nd == 8) return -1;
        dims[nd++] = v;
        if (npy_eat(ps, ',')) continue;
        if (npy_eat(ps, ')')) return nd;
        return -1;
    }
}

static tq_status npy_header(npy_parser *ps, char *descr, size_t dcap, int *fortran, uint64_t dims[8], int *nd) {
    const char *path = ps->path;
    int have_descr = 0, have_fortran = 0, have_shape = 0;
    TQ_RETURN_IF(!npy_eat(ps, '{'), TQ_ERR_FORMAT, "%s: npy header is not a Python dict", path);
    for (;;) {
        if (npy_eat(ps, '}')) break;
        char key[32];
        TQ_RETURN_IF(!npy_string(ps, key, sizeof key), TQ_ERR_FORMAT, "%s: npy header: expected a quoted key", path);
        TQ_RETURN_IF(!npy_eat(ps, ':'), TQ_ERR_FORMAT, "%s: npy header: expected ':' after '%s'", path, key);
        if (strcmp(key, "descr") == 0) {
            TQ_RETURN_IF(have_descr, TQ_ERR_FORMAT, "%s: npy header: 'descr' given twice", path);
            TQ_RETURN_IF(!npy_string(ps, descr, dcap), TQ_ERR_FORMAT,
                         "%s: npy dtype is not a simple type string (structured dtypes are not supported; need "
                         "'<f4')",
                         path);
            have_descr = 1;
        } else if (strcmp(key, "fortran_order") == 0) {
            TQ_RETURN_IF(have_fortran, TQ_ERR_FORMAT, "%s: npy header: 'fortran_order' given twice", path);
            if (npy_word(ps, "True")) *fortran = 1;
            else if (npy_word(ps, "False")) *fortran = 0;
            else return tq_fail(TQ_ERR_FORMAT, "%s: npy header: fortran_order is not True or False", path);
            have_fortran = 1;
        } else if (strcmp(key, "shape") == 0) {
            TQ_RETURN_IF(have_shape, TQ_ERR_FORMAT, "%s: npy header: 'shape' given twice", path);
            *nd = npy_shape(ps, dims);
            TQ_RETURN_IF(*nd < 0, TQ_ERR_FORMAT, "%s: npy header: shape is not a tuple of at most 8 integers", path);
            have_shape = 1;
        } else {
            return tq_fail(TQ_ERR_FORMAT, "%s: npy header: unexpected key '%s'", path, key);
        }
        if (npy_eat(ps, ',')) continue;
        TQ_RETURN_IF(!npy_eat(ps, '}'), TQ_ERR_FORMAT, "%s: npy header: expected ',' or '}'", path);
        break;
    }
    npy_ws(ps);
    TQ_RETURN_IF(ps->p != ps->end, TQ_ERR_FORMAT, "%s: npy header: unexpected text after the dict", path);
    TQ_RETURN_IF(!have_descr || !have_fortran || !have_shape, TQ_ERR_FORMAT,
                 "%s: npy header lacks %s", path, !have_descr ? "'descr'" : !have_fortran ? "'fortran_order'" : "'shape'");
    return TQ_OK;
}

static tq_status read_npy(tq_rfile *rf, const uint8_t *head, size_t nhead, size_t max_rows, float **data,
                          size_t *n_out, size_t *dim_out) {
    const char *path = rf->path;
    TQ_RETURN_IF(nhead < 10, TQ_ERR_FORMAT, "%s: truncated npy preamble (%zu bytes)", path, nhead);
    unsigned major = head[6], minor = head[7];
    TQ_RETURN_IF(major < 1 || major > 3, TQ_ERR_FORMAT, "%s: npy format version %u.%u is not supported (1.0-3.0)",
                 path, major, minor);
    size_t pre = major == 1 ? 10 : 12;
    TQ_RETURN_IF(nhead < pre, TQ_ERR_FORMAT, "%s: truncated npy preamble (%zu bytes)", path, nhead);
    uint32_t hlen = major == 1 ? tq_get_u16(head + 8) : tq_get_u32(head + 8);
    TQ_RETURN_IF(hlen > NPY_MAX_HEADER, TQ_ERR_FORMAT, "%s: npy header of %u bytes exceeds the limit %u", path, hlen,
                 NPY_MAX_HEADER);
    uint64_t data_off = pre + (uint64_t)hlen;
    TQ_RETURN_IF(rf->size < data_off, TQ_ERR_FORMAT, "%s: truncated: npy header says %u bytes, file has %llu", path,
                 hlen, (unsigned long long)(rf->size - pre));
    char *hdr = malloc(hlen + 1);
    TQ_RETURN_IF(!hdr, TQ_ERR_NOMEM, "%s: out of memory", path);
    size_t from_head = nhead - pre < hlen ? nhead - pre : hlen;
    memcpy(hdr, head + pre, from_head);
    tq_status s = tq_rfile_read(rf, hdr + from_head, hlen - from_head);
    if (s != TQ_OK) {
        free(hdr);
        return s;
    }
    hdr[hlen] = '\0';
    npy_parser ps = {hdr, hdr + hlen, path};
    char descr[32] = "";
    int fortran = 0, nd = 0;
    uint64_t dims[8];
    s = npy_header(&ps, descr, sizeof descr, &fortran, dims, &nd);
    free(hdr);
    TQ_FORWARD(s);
    /* head may hold data bytes past the header */
    size_t head_data = nhead > data_off ? nhead - (size_t)data_off : 0;

    TQ_RETURN_IF(strcmp(descr, "<f4") != 0, TQ_ERR_FORMAT, "%s: npy dtype '%s' is not supported: need '<f4' "
                 "(float32 little-endian; convert with .astype('<f4'))", path, descr);
    TQ_RETURN_IF(fortran, TQ_ERR_FORMAT,
                 "%s: npy array is in Fortran order; need C order (np.ascontiguousarray)", path);
    TQ_RETURN_IF(nd != 2, TQ_ERR_FORMAT, "%s: npy array is %d-D; need 2-D (rows, dim)", path, nd);
    TQ_RETURN_IF(dims[1] == 0 || dims[1] > TQ_MAX_DIM, TQ_ERR_DIM, "%s: npy dim is %llu, must be 1..%u", path,
                 (unsigned long long)dims[1], TQ_MAX_DIM);
    uint64_t rows = dims[0], dim = dims[1];
    TQ_RETURN_IF(rows > (UINT64_MAX / 4) / dim, TQ_ERR_FORMAT, "%s: npy shape (%llu, %llu) overflows", path,
                 (unsigned long long)rows, (unsigned long long)dim);
    uint64_t bytes = rows * dim * 4, have = rf->size - data_off;
    TQ_RETURN_IF(have < bytes, TQ_ERR_FORMAT, "truncated: %s: shape (%llu, %llu) needs %llu data bytes, file has %llu",
                 path, (unsigned long long)rows, (unsigned long long)dim, (unsigned long long)bytes,
                 (unsigned long long)have);
    TQ_RETURN_IF(have > bytes, TQ_ERR_FORMAT, "%s: %llu trailing bytes after the npy data", path,
                 (unsigned long long)(have - bytes));

    uint64_t want = rows;
    if (max_rows && max_rows < want) want = max_rows;
    if (want == 0) {
        *data = NULL;
        *n_out = 0;
        *dim_out = (size_t)dim;
        return TQ_OK;
    }
    uint64_t out_bytes = want * dim * 4;
    TQ_RETURN_IF(out_bytes > SIZE_MAX, TQ_ERR_SIZE, "%s: %llu rows do not fit in memory", path,
                 (unsigned long long)want);
    float *out = malloc((size_t)out_bytes);
    TQ_RETURN_IF(!out, TQ_ERR_NOMEM, "%s: out of memory for %llu x %llu floats", path, (unsigned long long)want,
                 (unsigned long long)dim);
    size_t hd = head_data < out_bytes ? head_data : (size_t)out_bytes;
    if (hd) memcpy(out, head + (size_t)data_off, hd);
    s = tq_rfile_read(rf, (uint8_t *)out + hd, (size_t)out_bytes - hd);
    if (s == TQ_OK) s = finish_rows(out, 0, (size_t)want, (size_t)dim, path);
    if (s != TQ_OK) {
        free(out);
        return s;
    }
    *data = out;
    *n_out = (size_t)want;
    *dim_out = (size_t)dim;
    return TQ_OK;
}

tq_status tq_read_vectors(const char *path, size_t max_rows, float **data, size_t *n, size_t *dim) {
    tq_clear_error();
    TQ_RETURN_IF(!path || !data || !n || !dim, TQ_ERR_INVALID_ARG, "NULL argument");
    tq_rfile rf;
    TQ_FORWARD(tq_rfile_open(&rf, path));
    uint8_t head[16];
    size_t nhead = rf.size < sizeof head ? (size_t)rf.size : sizeof head;
    tq_status s = tq_rfile_read(&rf, head, nhead);
    float *out = NULL;
    size_t rows = 0, d = 0;
    if (s == TQ_OK) {
        if (nhead >= 6 && memcmp(head, "\x93NUMPY", 6) == 0)
            s = read_npy(&rf, head, nhead, max_rows, &out, &rows, &d);
        else
            s = read_fvecs(&rf, head, nhead, max_rows, &out, &rows, &d);
    }
    tq_rfile_close(&rf);
    if (s != TQ_OK) return s;
    *data = out;
    *n = rows;
    *dim = d;
    return TQ_OK;
}
