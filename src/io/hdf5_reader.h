/*
 * hdf5_reader.h — one 2-D dataset of an HDF5 file (the ann-benchmarks layout:
 * train, test, neighbors, distances) as float32 or int64 rows, for
 * tq_read_vectors and tq_read_ids (docs/format.md §5).
 *
 * libhdf5 is optional: without it (TQ_HAVE_HDF5 undefined at build time) the
 * reader is a stub that refuses with a message saying how to get support, so
 * the rest of the library never needs an #ifdef.
 */
#ifndef TQ_HDF5_READER_H
#define TQ_HDF5_READER_H

#include "../core/common.h"

/**
 * Read rows [0, min(rows, max_rows)) of dataset `dataset` of the HDF5 file
 * `file` (max_rows = 0: all). to_float: float32 out (float and integer
 * datasets; NaN, Inf and float64 values beyond float32 are TQ_ERR_NONFINITE);
 * otherwise int64 out (integer datasets only). The dataset must be 2-D with
 * 1..TQ_MAX_DIM columns. 0 rows: *data = NULL. *data is freed with free().
 * libhdf5's own error printing is switched off for the duration of the call.
 */
TQ_INTERNAL tq_status tq_hdf5_read(const char *file, const char *dataset, int to_float, size_t max_rows,
                                   void **data, size_t *n, size_t *cols);

/** "hdf5 X.Y.Z" (the version compiled against) or "no-hdf5": for tq_build_info. */
TQ_INTERNAL const char *tq_hdf5_support(void);

#endif /* TQ_HDF5_READER_H */
