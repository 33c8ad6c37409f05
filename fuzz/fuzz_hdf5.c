/*
 * fuzz_hdf5.c — the HDF5 entry points of tq_read_vectors / tq_read_ids
 * (ann-benchmarks files, docs/format.md §5), fuzzed by structure: the input
 * decides a file that libhdf5 writes (datasets with fuzzed names, ranks,
 * shapes, element types, chunking and values, including NaN, Inf, float64
 * beyond float32 and integers beyond int64) and the path the reader is given
 * ("f.hdf5", "f.hdf5:NAME", an empty or missing name, a group). What is
 * fuzzed is tq's side: dataset lookup, the path's ':' rule, shape and type
 * checks, conversion and the row limit. Fuzzing libhdf5's own parser with
 * random bytes is out of scope (it is libhdf5's code, with its own fuzzing).
 *
 * Properties: every failure has a message and returns no buffer; what is read
 * matches what was written, converted as §5 says (float values exact when
 * float32 holds them; ids exact).
 */
#include <hdf5.h>
#include <math.h>

#include "fuzz_common.h"

enum { MAXV = 1 << 16 };

static const char *pick_name(fuzz_in *in, char *buf, size_t cap) {
    static const char *names[] = {"train", "test", "neighbors", "distances", "g/x", "a:b", "", "x y"};
    uint8_t c = fz_u8(in);
    if (c < 8 * 28) return names[c % 8];
    size_t len = fz_range(in, 1, 12);
    for (size_t i = 0; i < len && i + 1 < cap; i++) buf[i] = (char)('a' + fz_u8(in) % 26);
    buf[len < cap ? len : cap - 1] = '\0';
    return buf;
}

/* the element types: float, double, int32, int64, uint8, uint64, int16, int8 */
static hid_t h5type(int ti) {
    switch (ti) {
    case 0: return H5T_NATIVE_FLOAT;
    case 1: return H5T_NATIVE_DOUBLE;
    case 2: return H5T_NATIVE_INT;
    case 3: return H5T_NATIVE_LLONG;
    case 4: return H5T_NATIVE_UCHAR;
    case 5: return H5T_NATIVE_ULLONG;
    case 6: return H5T_NATIVE_SHORT;
    default: return H5T_NATIVE_SCHAR;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > 4096) return 0;
    fuzz_in in = {data, size, 0};
    const char *file = fuzz_path(".hdf5");
    hid_t f = H5Fcreate(file, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (f < 0) abort();
    hid_t grp = H5Gcreate2(f, "g", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (grp >= 0) H5Gclose(grp);

    /* one dataset written from the input (recorded for the comparison), maybe a second one */
    char nbuf[16], nbuf2[16];
    const char *name = pick_name(&in, nbuf, sizeof nbuf);
    int rank = (int)fz_range(&in, 1, 3);
    hsize_t dims[3] = {fz_range(&in, 0, 40), fz_range(&in, 0, 40), fz_range(&in, 1, 3)};
    if (fz_u8(&in) == 255) dims[1] = TQ_MAX_DIM + (fz_u8(&in) & 1); /* at and beyond the column limit */
    if (rank == 1) dims[0] = dims[0] ? dims[0] : 1;
    size_t count = 1;
    for (int r = 0; r < rank; r++) count *= (size_t)dims[r];
    if (count > MAXV) count = 0, dims[0] = 0;
    int ti = fz_u8(&in) % 8;
    hid_t type = h5type(ti);
    size_t esz = H5Tget_size(type);
    uint8_t *vals = calloc(count ? count : 1, esz);
    double *want = calloc(count ? count : 1, sizeof *want);
    long long *want_i = calloc(count ? count : 1, sizeof *want_i);
    unsigned long long *want_u = calloc(count ? count : 1, sizeof *want_u);
    if (!vals || !want || !want_i || !want_u) abort();
    for (size_t i = 0; i < count; i++) {
        uint8_t kind = fz_u8(&in);
        double v = (double)(int8_t)fz_u8(&in) * 0.5;
        if (kind == 250) v = NAN;
        if (kind == 251) v = INFINITY;
        if (kind == 252) v = 1e300;
        if (kind == 253) v = -4e38;
        switch (ti) {
        case 0: { float x = (float)v; memcpy(vals + 4 * i, &x, 4); want[i] = x; break; }
        case 1: memcpy(vals + 8 * i, &v, 8); want[i] = v; break;
        default: {
            long long x = (long long)(int8_t)fz_u8(&in);
            if (kind == 254) x = ti == 5 ? -1 : (ti == 3 ? INT64_MIN : x);
            if (ti == 4) x &= 0xff;
            if (ti == 6) x = (short)(x * 300);
            unsigned long long ux = (unsigned long long)x;
            switch (ti) {
            case 2: { int y = (int)x; memcpy(vals + 4 * i, &y, 4); break; }
            case 3: memcpy(vals + 8 * i, &x, 8); break;
            case 4: { unsigned char y = (unsigned char)x; memcpy(vals + i, &y, 1); break; }
            case 5: memcpy(vals + 8 * i, &ux, 8); break;
            case 6: { short y = (short)x; memcpy(vals + 2 * i, &y, 2); break; }
            default: { signed char y = (signed char)x; memcpy(vals + i, &y, 1); break; }
            }
            want_i[i] = x;
            want_u[i] = ux;
        }
        }
    }
    int chunked = fz_u8(&in) & 1;
    hid_t space = H5Screate_simple(rank, dims, NULL);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    if (chunked && count) {
        hsize_t ch[3] = {dims[0] ? (dims[0] + 2) / 3 : 1, dims[1] ? dims[1] : 1, dims[2]};
        H5Pset_chunk(dcpl, rank, ch);
    }
    int written = 0;
    H5E_BEGIN_TRY {
        hid_t ds = H5Dcreate2(f, name, type, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
        if (ds >= 0) {
            written = (count == 0 || H5Dwrite(ds, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, vals) >= 0);
            H5Dclose(ds);
        }
        if (fz_u8(&in) & 1) { /* a second, small dataset so a lookup can miss among several names */
            hsize_t d2[2] = {2, 3};
            hid_t sp2 = H5Screate_simple(2, d2, NULL);
            float z[6] = {0};
            hid_t ds2 = H5Dcreate2(f, pick_name(&in, nbuf2, sizeof nbuf2), H5T_NATIVE_FLOAT, sp2, H5P_DEFAULT,
                                   H5P_DEFAULT, H5P_DEFAULT);
            if (ds2 >= 0) {
                H5Dwrite(ds2, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, z);
                H5Dclose(ds2);
            }
            H5Sclose(sp2);
        }
    } H5E_END_TRY;
    H5Pclose(dcpl);
    H5Sclose(space);
    H5Fclose(f);

    /* the path the reader gets */
    char path[400];
    uint8_t how = fz_u8(&in) % 5;
    const char *asked = NULL;
    if (how == 0) snprintf(path, sizeof path, "%s", file);
    else if (how == 1 || how == 2) snprintf(path, sizeof path, "%s:%s", file, asked = name);
    else if (how == 3) snprintf(path, sizeof path, "%s:", file);
    else snprintf(path, sizeof path, "%s:%s", file, asked = pick_name(&in, nbuf2, sizeof nbuf2));
    size_t max_rows = fz_u8(&in) % 8;
    int ids = fz_u8(&in) & 1;

    size_t n = 0, cols = 0;
    void *out = NULL;
    tq_status s = ids ? tq_read_ids(path, max_rows, (int64_t **)&out, &n, &cols)
                      : tq_read_vectors(path, max_rows, (float **)&out, &n, &cols);
    FUZZ_CHECK_FAIL_MSG(s);
    if (s != TQ_OK) FUZZ_ASSERT(out == NULL, "failed read handed back a buffer");
    /* the written dataset, read whole and exactly as asked: compare values */
    const char *dflt = ids ? "neighbors" : "train";
    int same = written && s == TQ_OK && rank == 2 && ((asked && strcmp(asked, name) == 0) ||
                                                      (!asked && how == 0 && strcmp(name, dflt) == 0));
    if (same) {
        size_t rows = max_rows && max_rows < dims[0] ? max_rows : (size_t)dims[0];
        FUZZ_ASSERT(n == rows && (n == 0 || cols == dims[1]), "read %zu x %zu of %llu x %llu", n, cols,
                    (unsigned long long)dims[0], (unsigned long long)dims[1]);
        for (size_t i = 0; i < n * cols; i++) {
            if (ids) {
                int64_t got = ((int64_t *)out)[i];
                FUZZ_ASSERT(ti >= 2, "ids read from a float dataset");
                if (ti == 5) FUZZ_ASSERT((unsigned long long)got == want_u[i], "id %zu", i);
                else FUZZ_ASSERT(got == want_i[i], "id %zu: %lld, wrote %lld", i, (long long)got, want_i[i]);
            } else {
                float got = ((float *)out)[i];
                FUZZ_ASSERT(isfinite(got), "value %zu is %g", i, got);
                float w = ti < 2 ? (float)want[i] : ti == 5 ? (float)want_u[i] : (float)want_i[i];
                FUZZ_ASSERT(got == w, "value %zu: %g, wrote %g", i, got, w);
            }
        }
    }
    tq_free(out);
    free(vals);
    free(want);
    free(want_i);
    free(want_u);
    unlink(file);
    return 0;
}
