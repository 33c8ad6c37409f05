/*
 * hdf5_reader.c — see hdf5_reader.h. The ann-benchmarks data sets ship as
 * HDF5 files holding 2-D datasets (train and test float32, neighbors int32,
 * distances float32); this reads one of them, converted to what tq works on.
 *
 * Why the conversion is done here and not by libhdf5: libhdf5 converts
 * float64 beyond the float32 range to ±Inf (or clips, by its exception
 * settings) and unsigned 64-bit integers beyond int64 by clipping, silently.
 * So float datasets are read as double and integer datasets as 64-bit
 * integers of their own signedness (both exact for every common type), and
 * the narrowing is checked here, naming row and column like the other
 * readers. Rows are read in bounded hyperslabs (about 512 KiB at a time), so
 * max_rows costs only the rows asked for and no whole-dataset temporary is
 * ever made.
 *
 * libhdf5 prints its error stack to stderr by default; the library never
 * prints, so every call runs inside H5E_BEGIN_TRY/H5E_END_TRY (the
 * caller's own error-printing setting is restored afterwards) and failures
 * become tq statuses with tq's own messages. libhdf5 (the default serial
 * build) is not thread-safe: callers must not read HDF5 files from two
 * threads at once.
 */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "hdf5_reader.h"

#ifdef TQ_HAVE_HDF5

#include <hdf5.h>

#define STR2(x) #x
#define STR(x) STR2(x)

const char *tq_hdf5_support(void) {
    return "hdf5 " STR(H5_VERS_MAJOR) "." STR(H5_VERS_MINOR) "." STR(H5_VERS_RELEASE);
}

/* Elements read per hyperslab: 64 Ki values of 8 bytes. */
#define H5_CHUNK_VALUES 65536u

typedef struct names_ctx {
    char text[240];
    size_t len;
    int more;
} names_ctx;

static herr_t add_name(hid_t group, const char *name, const H5L_info_t *info, void *op_data) {
    (void)group;
    (void)info;
    names_ctx *c = op_data;
    size_t need = strlen(name) + (c->len ? 2 : 0);
    if (c->len + need + 1 > sizeof c->text) {
        c->more = 1;
        return 1; /* stop: enough to guide the user */
    }
    c->len += (size_t)snprintf(c->text + c->len, sizeof c->text - c->len, "%s%s", c->len ? ", " : "", name);
    return 0;
}

typedef struct h5_handles {
    hid_t fapl, file, dset, space, type, mspace;
} h5_handles;

/* The body of tq_hdf5_read, run with libhdf5's error printing off; h holds what to close. */
static tq_status read_body(h5_handles *h, const char *file, const char *ds, int to_float, size_t max_rows,
                           void **data, size_t *n_out, size_t *cols_out) {
    h->fapl = H5Pcreate(H5P_FILE_ACCESS);
    TQ_RETURN_IF(h->fapl < 0, TQ_ERR_NOMEM, "%s: libhdf5 could not create a file access list", file);
#if (H5_VERSION_GE(1, 10, 7) && !H5_VERSION_GE(1, 12, 0)) || H5_VERSION_GE(1, 12, 1)
    /* Lock as libhdf5 does by default, but do not fail on file systems without locks. */
    (void)H5Pset_file_locking(h->fapl, 1, 1);
#endif
    h->file = H5Fopen(file, H5F_ACC_RDONLY, h->fapl);
    TQ_RETURN_IF(h->file < 0, TQ_ERR_FORMAT, "%s: libhdf5 cannot open it (a damaged or truncated HDF5 file?)",
                 file);

    h->dset = H5Dopen2(h->file, ds, H5P_DEFAULT);
    if (h->dset < 0) {
        if (H5Lexists(h->file, ds, H5P_DEFAULT) > 0)
            return tq_fail(TQ_ERR_FORMAT, "%s: '%s' is not a dataset (a group?)", file, ds);
        names_ctx c = {{0}, 0, 0};
        hsize_t idx = 0;
        (void)H5Literate(h->file, H5_INDEX_NAME, H5_ITER_INC, &idx, add_name, &c);
        return tq_fail(TQ_ERR_FORMAT, "%s: no dataset '%s' (the file has: %s%s); name one as %s:DATASET", file, ds,
                       c.len ? c.text : "nothing", c.more ? ", ..." : "", file);
    }
    h->space = H5Dget_space(h->dset);
    TQ_RETURN_IF(h->space < 0, TQ_ERR_FORMAT, "%s:%s: cannot read the dataset's shape", file, ds);
    int nd = H5Sget_simple_extent_ndims(h->space);
    TQ_RETURN_IF(nd < 0, TQ_ERR_FORMAT, "%s:%s: the dataset's shape is not a simple array", file, ds);
    TQ_RETURN_IF(nd != 2, TQ_ERR_FORMAT, "%s:%s is %d-D; need 2-D (rows, %s)", file, ds, nd,
                 to_float ? "dim" : "cols");
    hsize_t dims[2];
    TQ_RETURN_IF(H5Sget_simple_extent_dims(h->space, dims, NULL) != 2, TQ_ERR_FORMAT,
                 "%s:%s: cannot read the dataset's shape", file, ds);
    TQ_RETURN_IF(dims[1] == 0 || dims[1] > TQ_MAX_DIM, TQ_ERR_DIM, "%s:%s has %llu columns, must be 1..%u", file, ds,
                 (unsigned long long)dims[1], TQ_MAX_DIM);

    h->type = H5Dget_type(h->dset);
    TQ_RETURN_IF(h->type < 0, TQ_ERR_FORMAT, "%s:%s: cannot read the dataset's type", file, ds);
    H5T_class_t cls = H5Tget_class(h->type);
    int is_float = cls == H5T_FLOAT;
    int is_unsigned = cls == H5T_INTEGER && H5Tget_sign(h->type) == H5T_SGN_NONE;
    if (to_float) {
        TQ_RETURN_IF(cls != H5T_FLOAT && cls != H5T_INTEGER, TQ_ERR_FORMAT,
                     "%s:%s: the dataset's type is not a number (HDF5 type class %d); need float or integer", file,
                     ds, (int)cls);
    } else {
        TQ_RETURN_IF(cls == H5T_FLOAT, TQ_ERR_FORMAT,
                     "%s:%s holds floating-point values; ids need an integer dataset", file, ds);
        TQ_RETURN_IF(cls != H5T_INTEGER, TQ_ERR_FORMAT,
                     "%s:%s: the dataset's type is not an integer (HDF5 type class %d)", file, ds, (int)cls);
    }
    hid_t mem_type = is_float ? H5T_NATIVE_DOUBLE : is_unsigned ? H5T_NATIVE_ULLONG : H5T_NATIVE_LLONG;

    uint64_t rows = dims[0], cols = dims[1];
    uint64_t want = rows;
    if (max_rows && max_rows < want) want = max_rows;
    *cols_out = (size_t)cols;
    if (want == 0) {
        *data = NULL;
        *n_out = 0;
        return TQ_OK;
    }
    size_t out_size = to_float ? sizeof(float) : sizeof(int64_t), count, bytes;
    TQ_RETURN_IF(want > SIZE_MAX || !tq_mul_size((size_t)want, (size_t)cols, &count) ||
                     !tq_mul_size(count, out_size, &bytes),
                 TQ_ERR_SIZE, "%s:%s: %llu rows of %llu values do not fit in memory", file, ds,
                 (unsigned long long)want, (unsigned long long)cols);
    uint64_t step = H5_CHUNK_VALUES / cols ? H5_CHUNK_VALUES / cols : 1;
    if (step > want) step = want;
    uint8_t *out = malloc(bytes);
    uint8_t *buf = malloc((size_t)(step * cols) * 8u);
    if (!out || !buf) {
        free(out);
        free(buf);
        return tq_fail(TQ_ERR_NOMEM, "%s:%s: out of memory for %llu x %llu values", file, ds,
                       (unsigned long long)want, (unsigned long long)cols);
    }
    tq_status s = TQ_OK;
    for (uint64_t r0 = 0; r0 < want && s == TQ_OK; r0 += step) {
        uint64_t take = want - r0 < step ? want - r0 : step;
        hsize_t start[2] = {r0, 0}, cnt[2] = {take, cols};
        if (H5Sselect_hyperslab(h->space, H5S_SELECT_SET, start, NULL, cnt, NULL) < 0 ||
            (h->mspace = H5Screate_simple(2, cnt, NULL)) < 0 ||
            H5Dread(h->dset, mem_type, h->mspace, h->space, H5P_DEFAULT, buf) < 0) {
            s = tq_fail(TQ_ERR_FORMAT, "%s:%s: libhdf5 failed to read rows %llu..%llu (a damaged file, or a "
                        "compression filter this libhdf5 lacks?)",
                        file, ds, (unsigned long long)r0, (unsigned long long)(r0 + take - 1));
            break;
        }
        H5Sclose(h->mspace);
        h->mspace = -1;
        size_t m = (size_t)(take * cols), base = (size_t)(r0 * cols);
        for (size_t i = 0; i < m && s == TQ_OK; i++) {
            size_t at = base + i;
            if (is_float) {
                double v;
                memcpy(&v, buf + 8 * i, 8);
                if (!isfinite(v) || fabs(v) > FLT_MAX)
                    s = tq_fail(TQ_ERR_NONFINITE, "%s:%s: row %zu, column %zu is %s", file, ds, at / (size_t)cols,
                                at % (size_t)cols,
                                isnan(v) ? "NaN" : isinf(v) ? "Inf" : "beyond the float32 range");
                else
                    ((float *)out)[at] = (float)v;
            } else if (is_unsigned) {
                unsigned long long v;
                memcpy(&v, buf + 8 * i, 8);
                if (to_float) {
                    ((float *)out)[at] = (float)v;
                } else if (v > (unsigned long long)INT64_MAX) {
                    s = tq_fail(TQ_ERR_SIZE, "%s:%s: row %zu, column %zu is %llu, beyond int64", file, ds,
                                at / (size_t)cols, at % (size_t)cols, v);
                } else {
                    ((int64_t *)out)[at] = (int64_t)v;
                }
            } else {
                long long v;
                memcpy(&v, buf + 8 * i, 8);
                if (to_float) ((float *)out)[at] = (float)v;
                else ((int64_t *)out)[at] = (int64_t)v;
            }
        }
    }
    free(buf);
    if (s != TQ_OK) {
        free(out);
        return s;
    }
    *data = out;
    *n_out = (size_t)want;
    return TQ_OK;
}

tq_status tq_hdf5_read(const char *file, const char *dataset, int to_float, size_t max_rows, void **data,
                       size_t *n, size_t *cols) {
    h5_handles h = {-1, -1, -1, -1, -1, -1};
    tq_status s = TQ_OK;
    void *out = NULL;
    size_t rows = 0, c = 0;
    H5E_BEGIN_TRY {
        s = read_body(&h, file, dataset, to_float, max_rows, &out, &rows, &c);
        if (h.mspace >= 0) H5Sclose(h.mspace);
        if (h.type >= 0) H5Tclose(h.type);
        if (h.space >= 0) H5Sclose(h.space);
        if (h.dset >= 0) H5Dclose(h.dset);
        if (h.file >= 0) H5Fclose(h.file);
        if (h.fapl >= 0) H5Pclose(h.fapl);
    } H5E_END_TRY;
    if (s != TQ_OK) return s;
    *data = out;
    *n = rows;
    *cols = c;
    return TQ_OK;
}

#else /* !TQ_HAVE_HDF5 */

const char *tq_hdf5_support(void) { return "no-hdf5"; }

tq_status tq_hdf5_read(const char *file, const char *dataset, int to_float, size_t max_rows, void **data,
                       size_t *n, size_t *cols) {
    (void)dataset;
    (void)to_float;
    (void)max_rows;
    (void)data;
    (void)n;
    (void)cols;
    return tq_fail(TQ_ERR_FORMAT,
                   "%s: is an HDF5 file, but tq was built without HDF5 support (install libhdf5-dev and rebuild)",
                   file);
}

#endif /* TQ_HAVE_HDF5 */
