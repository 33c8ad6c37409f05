/*
 * kernels_avx2.c — the AVX2 kernel table (x86-64 only). Until its kernels
 * are written it is not compiled in: tq_kernels_avx2() returns NULL and the
 * reference table runs.
 */
#include "kernels.h"

const tq_kernel_table *tq_kernels_avx2(void) { return NULL; }
