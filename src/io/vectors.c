/*
 * vectors.c — the input-file readers and the ids writer (rules in
 * docs/format.md §5):
 *
 *   tq_read_vectors  float32 rows from .fvecs, .bvecs, .npy ('<f4') or HDF5;
 *   tq_read_ids      int64 rows from .ivecs, .npy ('<i4', '<i8') or HDF5;
 *   tq_write_ids     .ivecs, or an int32 .npy by a ".npy" name.
 *
 * Which reader runs is decided by content first, then by name: a file that
 * starts with the npy magic "\x93NUMPY" is npy and one that starts with the
 * HDF5 signature "\x89HDF\r\n\x1a\n" is HDF5, whatever their names; a file
 * named .npy/.hdf5/.h5 without its magic is refused rather than misread; the
 * rest are *vecs files: .bvecs by name, otherwise fvecs for vectors and ivecs
 * for ids (a *vecs name of the wrong kind is refused with a pointer to the
 * right function, since int32 and float32 rows are indistinguishable).
 * "file.hdf5:DATASET" names an HDF5 dataset: a path that exists is always
 * taken whole, so only a path that does not exist is split at its last ':'.
 *
 * All readers are hostile-input readers. Sizes come from the file system
 * (fstat) and every declared size is checked against them before the output
 * is allocated, so a header claiming 10^12 rows costs nothing. Data are read
 * in bounded chunks of whole rows into a scratch buffer and converted from
 * little-endian into the output, so byte order never depends on the host.
 * The npy header is parsed by a small recursive-descent reader of the Python
 * literal subset numpy writes (a dict of strings, booleans and a tuple of
 * integers); anything else (structured dtypes, object arrays, other keys) is
 * refused with a message naming what was found. NaN and Inf are rejected at
 * read (TQ_ERR_NONFINITE, with row and column) so a bad file is blamed on the
 * file, not on a later encode.
 */
#if !defined(_POSIX_C_SOURCE) || _POSIX_C_SOURCE < 200809L
#undef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "../core/common.h"
#include "fileio.h"
#include "hdf5_reader.h"

#define NPY_MAX_HEADER 65536u
/* Scratch buffer for chunked reads: this many bytes of whole rows (at least one row). */
#define READ_CHUNK_BYTES (1u << 18)

static const uint8_t HDF5_SIGNATURE[8] = {0x89, 'H', 'D', 'F', '\r', '\n', 0x1a, '\n'};

/* ------------------------------------------------------- element conversion */

/* Element types found on disk (all little-endian). */
typedef enum el_type { EL_F32, EL_U8, EL_I32, EL_I64 } el_type;

static size_t el_size(el_type t) { return t == EL_U8 ? 1 : t == EL_I64 ? 8 : 4; }

/*
 * Convert count raw elements into out (float for to_float, int64 otherwise)
 * at element offset `at` of a (rows, dim) output; raw elements of F32 are
 * checked finite. U8 and F32 only ever go to float, I32 and I64 to int64.
 */
static tq_status convert(const uint8_t *raw, el_type t, size_t count, int to_float, void *out, size_t at,
                         size_t dim, const char *path) {
    if (to_float) {
        float *o = (float *)out + at;
        if (t == EL_U8) {
            for (size_t i = 0; i < count; i++) o[i] = (float)raw[i];
            return TQ_OK;
        }
        for (size_t i = 0; i < count; i++) {
            float v = tq_get_f32(raw + 4 * i);
            if (!isfinite(v))
                return tq_fail(TQ_ERR_NONFINITE, "%s: row %zu, column %zu is %s", path, (at + i) / dim,
                               (at + i) % dim, isnan(v) ? "NaN" : "Inf");
            o[i] = v;
        }
        return TQ_OK;
    }
    int64_t *o = (int64_t *)out + at;
    if (t == EL_I64)
        for (size_t i = 0; i < count; i++) o[i] = (int64_t)tq_get_u64(raw + 8 * i);
    else
        for (size_t i = 0; i < count; i++) o[i] = (int64_t)(int32_t)tq_get_u32(raw + 4 * i);
    return TQ_OK;
}

static tq_status seek_to(tq_rfile *rf, uint64_t off) {
    TQ_RETURN_IF(off > (uint64_t)LONG_MAX || fseek(rf->f, (long)off, SEEK_SET) != 0, TQ_ERR_IO,
                 "%s: cannot seek to byte %llu", rf->path, (unsigned long long)off);
    return TQ_OK;
}

/* --------------------------------------------------- fvecs, bvecs and ivecs */

/*
 * Rows of "i32 dim, then dim elements of type el". kind names the format in
 * messages. An empty file is refused for vectors and is 0 rows (cols 0) for
 * ids: that is what tq_write_ids writes for n = 0.
 */
static tq_status read_xvecs(tq_rfile *rf, const char *kind, el_type el, int to_float, size_t max_rows,
                            void **data, size_t *n_out, size_t *dim_out) {
    const char *path = rf->path;
    if (rf->size == 0 && !to_float) {
        *data = NULL;
        *n_out = 0;
        *dim_out = 0;
        return TQ_OK;
    }
    TQ_RETURN_IF(rf->size == 0, TQ_ERR_FORMAT, "%s: empty file", path);
    TQ_RETURN_IF(rf->size < 4, TQ_ERR_FORMAT, "%s: truncated: %llu bytes, an %s row starts with a 4-byte dim", path,
                 (unsigned long long)rf->size, kind);
    uint8_t dimb[4];
    TQ_FORWARD(seek_to(rf, 0));
    TQ_FORWARD(tq_rfile_read(rf, dimb, 4));
    int32_t d = (int32_t)tq_get_u32(dimb);
    TQ_RETURN_IF(d <= 0 || (uint32_t)d > TQ_MAX_DIM, TQ_ERR_DIM,
                 "%s: row 0 declares dim %d (must be 1..%u; is this an %s file?)", path, (int)d, TQ_MAX_DIM, kind);
    size_t dim = (size_t)d, es = el_size(el);
    uint64_t row_bytes = 4u + (uint64_t)es * dim;
    uint64_t full = rf->size / row_bytes, rest = rf->size % row_bytes;
    TQ_RETURN_IF(full == 0, TQ_ERR_FORMAT, "%s: truncated: row 0 has %llu of %llu bytes", path,
                 (unsigned long long)rf->size, (unsigned long long)row_bytes);
    uint64_t want = full;
    if (max_rows && max_rows < want) want = max_rows;
    int check_tail = rest != 0 && want == full; /* the partial last row will be reached */
    size_t out_size = to_float ? sizeof(float) : sizeof(int64_t), count, bytes;
    TQ_RETURN_IF(want > SIZE_MAX || !tq_mul_size((size_t)want, dim, &count) || !tq_mul_size(count, out_size, &bytes),
                 TQ_ERR_SIZE, "%s: %llu rows of %zu values do not fit in memory", path, (unsigned long long)want,
                 dim);
    uint64_t step = READ_CHUNK_BYTES / row_bytes ? READ_CHUNK_BYTES / row_bytes : 1;
    if (step > want) step = want;
    uint8_t *out = malloc(bytes);
    uint8_t *buf = malloc((size_t)(step * row_bytes));
    if (!out || !buf) {
        free(out);
        free(buf);
        return tq_fail(TQ_ERR_NOMEM, "%s: out of memory for %llu x %zu values", path, (unsigned long long)want, dim);
    }

    tq_status s = seek_to(rf, 0);
    for (uint64_t r0 = 0; r0 < want && s == TQ_OK; r0 += step) {
        uint64_t take = want - r0 < step ? want - r0 : step;
        s = tq_rfile_read(rf, buf, (size_t)(take * row_bytes));
        for (uint64_t k = 0; k < take && s == TQ_OK; k++) {
            const uint8_t *row = buf + (size_t)(k * row_bytes);
            int32_t rd = (int32_t)tq_get_u32(row);
            if (rd != d)
                s = tq_fail(TQ_ERR_FORMAT, "%s: ragged: row %llu has dim %d, row 0 has %d", path,
                            (unsigned long long)(r0 + k), (int)rd, (int)d);
            else
                s = convert(row + 4, el, dim, to_float, out, (size_t)(r0 + k) * dim, dim, path);
        }
    }
    free(buf);
    if (s == TQ_OK && check_tail) {
        /* a partial row follows: say whether it is ragged or cut short */
        uint8_t tail[4];
        if (rest >= 4) s = tq_rfile_read(rf, tail, 4);
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

/* The header dict; need (e.g. "'<f4'") names the accepted dtypes in messages. */
static tq_status npy_header(npy_parser *ps, const char *need, char *descr, size_t dcap, int *fortran,
                            uint64_t dims[8], int *nd) {
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
                         "%s: npy dtype is not a simple type string (structured dtypes are not supported; need %s)",
                         path, need);
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

/*
 * A 2-D C-order npy array: '<f4' for vectors (to_float), '<i4' or '<i8' for
 * ids. head holds the file's first nhead bytes (the magic among them).
 */
static tq_status read_npy(tq_rfile *rf, const uint8_t *head, size_t nhead, int to_float, size_t max_rows,
                          void **data, size_t *n_out, size_t *dim_out) {
    const char *path = rf->path;
    const char *need = to_float ? "'<f4'" : "'<i4' or '<i8'";
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
    tq_status s = seek_to(rf, pre);
    if (s == TQ_OK) s = tq_rfile_read(rf, hdr, hlen);
    if (s != TQ_OK) {
        free(hdr);
        return s;
    }
    hdr[hlen] = '\0';
    npy_parser ps = {hdr, hdr + hlen, path};
    char descr[32] = "";
    int fortran = 0, nd = 0;
    uint64_t dims[8];
    s = npy_header(&ps, need, descr, sizeof descr, &fortran, dims, &nd);
    free(hdr);
    TQ_FORWARD(s);

    el_type el;
    if (to_float) {
        TQ_RETURN_IF(strcmp(descr, "<f4") != 0, TQ_ERR_FORMAT, "%s: npy dtype '%s' is not supported: need '<f4' "
                     "(float32 little-endian; convert with .astype('<f4'))", path, descr);
        el = EL_F32;
    } else if (strcmp(descr, "<i4") == 0) {
        el = EL_I32;
    } else if (strcmp(descr, "<i8") == 0) {
        el = EL_I64;
    } else {
        return tq_fail(TQ_ERR_FORMAT, "%s: npy dtype '%s' is not supported for ids: need '<i4' or '<i8' "
                       "(little-endian int32 or int64; convert with .astype('<i8'))", path, descr);
    }
    TQ_RETURN_IF(fortran, TQ_ERR_FORMAT,
                 "%s: npy array is in Fortran order; need C order (np.ascontiguousarray)", path);
    TQ_RETURN_IF(nd != 2, TQ_ERR_FORMAT, "%s: npy array is %d-D; need 2-D (rows, %s)", path, nd,
                 to_float ? "dim" : "cols");
    TQ_RETURN_IF(dims[1] == 0 || dims[1] > TQ_MAX_DIM, TQ_ERR_DIM, "%s: npy %s is %llu, must be 1..%u", path,
                 to_float ? "dim" : "column count", (unsigned long long)dims[1], TQ_MAX_DIM);
    uint64_t rows = dims[0], dim = dims[1], es = el_size(el);
    TQ_RETURN_IF(rows > (UINT64_MAX / es) / dim, TQ_ERR_FORMAT, "%s: npy shape (%llu, %llu) overflows", path,
                 (unsigned long long)rows, (unsigned long long)dim);
    uint64_t bytes = rows * dim * es, have = rf->size - data_off;
    TQ_RETURN_IF(have < bytes, TQ_ERR_FORMAT, "%s: truncated: shape (%llu, %llu) needs %llu data bytes, file has %llu",
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
    size_t out_size = to_float ? sizeof(float) : sizeof(int64_t), count, out_bytes;
    TQ_RETURN_IF(want > SIZE_MAX || !tq_mul_size((size_t)want, (size_t)dim, &count) ||
                     !tq_mul_size(count, out_size, &out_bytes),
                 TQ_ERR_SIZE, "%s: %llu rows do not fit in memory", path, (unsigned long long)want);
    uint64_t row_bytes = dim * es;
    uint64_t step = READ_CHUNK_BYTES / row_bytes ? READ_CHUNK_BYTES / row_bytes : 1;
    if (step > want) step = want;
    uint8_t *out = malloc(out_bytes);
    uint8_t *buf = malloc((size_t)(step * row_bytes));
    if (!out || !buf) {
        free(out);
        free(buf);
        return tq_fail(TQ_ERR_NOMEM, "%s: out of memory for %llu x %llu values", path, (unsigned long long)want,
                       (unsigned long long)dim);
    }
    s = seek_to(rf, data_off);
    for (uint64_t r0 = 0; r0 < want && s == TQ_OK; r0 += step) {
        uint64_t take = want - r0 < step ? want - r0 : step;
        s = tq_rfile_read(rf, buf, (size_t)(take * row_bytes));
        if (s == TQ_OK)
            s = convert(buf, el, (size_t)(take * dim), to_float, out, (size_t)(r0 * dim), (size_t)dim, path);
    }
    free(buf);
    if (s != TQ_OK) {
        free(out);
        return s;
    }
    *data = out;
    *n_out = (size_t)want;
    *dim_out = (size_t)dim;
    return TQ_OK;
}

/* ---------------------------------------------------------------- dispatch */

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    if (n < m) return 0;
    for (size_t i = 0; i < m; i++)
        if (tolower((unsigned char)s[n - m + i]) != tolower((unsigned char)suffix[i])) return 0;
    return 1;
}

static int is_regular_file(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/*
 * Open what path names and read it. to_float: vectors (float32 out, default
 * HDF5 dataset "train"); otherwise ids (int64 out, default "neighbors").
 */
static tq_status read_any(const char *path, int to_float, size_t max_rows, void **data, size_t *n, size_t *cols) {
    /* "file.hdf5:DATASET": only when path itself does not exist and the part before the last ':' does */
    char *file = NULL;
    const char *dataset = NULL;
    struct stat st;
    const char *colon = strrchr(path, ':');
    if (stat(path, &st) != 0 && colon && colon != path) {
        size_t len = (size_t)(colon - path);
        file = malloc(len + 1);
        TQ_RETURN_IF(!file, TQ_ERR_NOMEM, "out of memory");
        memcpy(file, path, len);
        file[len] = '\0';
        if (is_regular_file(file)) {
            dataset = colon + 1;
        } else {
            free(file);
            file = NULL;
        }
    }
    const char *fpath = file ? file : path;

    tq_rfile rf;
    tq_status s = tq_rfile_open(&rf, fpath);
    if (s != TQ_OK) {
        free(file);
        return s;
    }
    uint8_t head[16];
    size_t nhead = rf.size < sizeof head ? (size_t)rf.size : sizeof head;
    s = tq_rfile_read(&rf, head, nhead);
    int is_npy = nhead >= 6 && memcmp(head, "\x93NUMPY", 6) == 0;
    int is_hdf5 = nhead >= 8 && memcmp(head, HDF5_SIGNATURE, 8) == 0;
    void *out = NULL;
    size_t rows = 0, d = 0;
    if (s != TQ_OK) {
        /* the status says why */
    } else if (dataset && !is_hdf5) {
        s = tq_fail(TQ_ERR_FORMAT, "%s: does not exist, and %s is not an HDF5 file (only HDF5 files take "
                    "':DATASET')", path, fpath);
    } else if (dataset && !*dataset) {
        s = tq_fail(TQ_ERR_INVALID_ARG, "%s: empty dataset name after ':'", path);
    } else if (is_hdf5) {
        tq_rfile_close(&rf);
        s = tq_hdf5_read(fpath, dataset ? dataset : to_float ? "train" : "neighbors", to_float, max_rows, &out,
                         &rows, &d);
    } else if (is_npy) {
        s = read_npy(&rf, head, nhead, to_float, max_rows, &out, &rows, &d);
    } else if (ends_with(fpath, ".npy")) {
        s = tq_fail(TQ_ERR_FORMAT, "%s: named .npy but lacks the npy magic \\x93NUMPY", fpath);
    } else if (ends_with(fpath, ".hdf5") || ends_with(fpath, ".h5")) {
        s = tq_fail(TQ_ERR_FORMAT, "%s: named like an HDF5 file but lacks the HDF5 signature \\x89HDF\\r\\n\\x1a\\n "
                    "at byte 0", fpath);
    } else if (to_float && ends_with(fpath, ".ivecs")) {
        s = tq_fail(TQ_ERR_FORMAT, "%s: an .ivecs file holds integer ids, not vectors (read it with tq_read_ids)",
                    fpath);
    } else if (!to_float && (ends_with(fpath, ".fvecs") || ends_with(fpath, ".bvecs"))) {
        s = tq_fail(TQ_ERR_FORMAT, "%s: an %s file holds vectors, not ids (read it with tq_read_vectors)", fpath,
                    ends_with(fpath, ".fvecs") ? ".fvecs" : ".bvecs");
    } else if (to_float && ends_with(fpath, ".bvecs")) {
        s = read_xvecs(&rf, "bvecs", EL_U8, 1, max_rows, &out, &rows, &d);
    } else if (to_float) {
        s = read_xvecs(&rf, "fvecs", EL_F32, 1, max_rows, &out, &rows, &d);
    } else {
        s = read_xvecs(&rf, "ivecs", EL_I32, 0, max_rows, &out, &rows, &d);
    }
    tq_rfile_close(&rf);
    free(file);
    if (s != TQ_OK) return s;
    *data = out;
    *n = rows;
    *cols = d;
    return TQ_OK;
}

tq_status tq_read_vectors(const char *path, size_t max_rows, float **data, size_t *n, size_t *dim) {
    tq_clear_error();
    TQ_RETURN_IF(!path || !data || !n || !dim, TQ_ERR_INVALID_ARG, "NULL argument");
    void *out = NULL;
    TQ_FORWARD(read_any(path, 1, max_rows, &out, n, dim));
    *data = out;
    return TQ_OK;
}

tq_status tq_read_ids(const char *path, size_t max_rows, int64_t **data, size_t *n, size_t *cols) {
    tq_clear_error();
    TQ_RETURN_IF(!path || !data || !n || !cols, TQ_ERR_INVALID_ARG, "NULL argument");
    void *out = NULL;
    TQ_FORWARD(read_any(path, 0, max_rows, &out, n, cols));
    *data = out;
    return TQ_OK;
}

/* ------------------------------------------------------------ tq_write_ids */

typedef struct ids_writer {
    const int64_t *data;
    size_t n, cols;
    int npy;
} ids_writer;

static tq_status write_ids_body(void *ctx, FILE *f) {
    const ids_writer *w = ctx;
    if (w->npy) {
        /* np.save's layout: preamble, the dict, spare spaces so the row count could grow to 21 digits in
         * place, then spaces and '\n' up to a multiple of 64 bytes in all */
        char dict[160];
        int len = snprintf(dict, sizeof dict, "{'descr': '<i4', 'fortran_order': False, 'shape': (%zu, %zu), }",
                           w->n, w->cols);
        char rows[32];
        int growth = 21 - snprintf(rows, sizeof rows, "%zu", w->n);
        size_t total = 10 + (size_t)len + (growth > 0 ? (size_t)growth : 0) + 1;
        size_t pad = (total % 64 ? 64 - total % 64 : 0) + (growth > 0 ? (size_t)growth : 0);
        uint8_t pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, 0, 0};
        tq_put_u16(pre + 8, (uint16_t)((size_t)len + pad + 1));
        char spaces[96];
        memset(spaces, ' ', pad);
        spaces[pad] = '\n';
        if (fwrite(pre, 1, 10, f) != 10 || fwrite(dict, 1, (size_t)len, f) != (size_t)len ||
            fwrite(spaces, 1, pad + 1, f) != pad + 1)
            return tq_fail(TQ_ERR_IO, "write failed: %s", strerror(errno));
    }
    /* rows in chunks of whole rows; ivecs rows carry their i32 column count */
    size_t row_bytes = (w->npy ? 0 : 4) + 4 * w->cols;
    size_t step = READ_CHUNK_BYTES / row_bytes ? READ_CHUNK_BYTES / row_bytes : 1;
    uint8_t *buf = malloc(step * row_bytes);
    TQ_RETURN_IF(!buf, TQ_ERR_NOMEM, "out of memory");
    for (size_t r0 = 0; r0 < w->n; r0 += step) {
        size_t take = w->n - r0 < step ? w->n - r0 : step;
        uint8_t *p = buf;
        for (size_t r = r0; r < r0 + take; r++) {
            if (!w->npy) {
                tq_put_u32(p, (uint32_t)w->cols);
                p += 4;
            }
            const int64_t *row = w->data + r * w->cols;
            for (size_t j = 0; j < w->cols; j++, p += 4) tq_put_u32(p, (uint32_t)(int32_t)row[j]);
        }
        if (fwrite(buf, 1, take * row_bytes, f) != take * row_bytes) {
            free(buf);
            return tq_fail(TQ_ERR_IO, "write failed: %s", strerror(errno));
        }
    }
    free(buf);
    return TQ_OK;
}

tq_status tq_write_ids(const char *path, const int64_t *data, size_t n, size_t cols) {
    tq_clear_error();
    TQ_RETURN_IF(!path || !*path, TQ_ERR_INVALID_ARG, "path is NULL or empty");
    TQ_RETURN_IF(cols == 0 || cols > TQ_MAX_DIM, TQ_ERR_DIM, "%s: cols is %zu, must be 1..%u", path, cols,
                 TQ_MAX_DIM);
    size_t count; /* n * cols int64 are in memory, so the file's n * (cols + 1) * 4 bytes cannot overflow */
    TQ_RETURN_IF(!tq_mul_size(n, cols, &count) || count > SIZE_MAX / 8, TQ_ERR_SIZE,
                 "%s: %zu rows of %zu ids overflow", path, n, cols);
    TQ_RETURN_IF(count && !data, TQ_ERR_INVALID_ARG, "%s: data is NULL", path);
    for (size_t i = 0; i < count; i++)
        TQ_RETURN_IF(data[i] < INT32_MIN || data[i] > INT32_MAX, TQ_ERR_SIZE,
                     "%s: row %zu, column %zu is %lld, outside int32 (ids files hold int32)", path, i / cols,
                     i % cols, (long long)data[i]);
    ids_writer w = {data, n, cols, ends_with(path, ".npy")};
    return tq_write_atomic(path, write_ids_body, &w);
}
