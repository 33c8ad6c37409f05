/*
 * dispatch.c — choose the kernel table once per process.
 *
 * On x86-64 the CPU is asked once (CPUID for the instruction set, XGETBV for
 * the OS saving the wide registers — a CPU with AVX2 under an OS that does
 * not save YMM state must not run AVX2 code). On AArch64 the NEON table is
 * taken without asking: Advanced SIMD is part of every AArch64 CPU. Then
 * TQ_FORCE_ISA may narrow the choice. The pointer is published through
 * pthread_once, so any thread may call tq_kernels() first. Never
 * -march=native: one binary runs on any x86-64 (or any AArch64).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../io/hdf5_reader.h"
#include "kernels.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>

/* XCR0 (the register state the OS saves) when OSXSAVE and AVX are there, else 0; leaf-7 EBX in *b7. */
static unsigned cpu_xcr0(unsigned *b7, unsigned *c1) {
    unsigned a, b, c, d;
    *b7 = 0;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    *c1 = c;
    int osxsave = (c >> 27) & 1, avx = (c >> 28) & 1;
    if (!osxsave || !avx) return 0;
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    if (__get_cpuid_max(0, NULL) >= 7) {
        __cpuid_count(7, 0, a, b, c, d);
        *b7 = b;
    }
    return lo;
}

int tq_cpu_has_avx2(void) {
    unsigned b7 = 0, c1 = 0, xcr0 = cpu_xcr0(&b7, &c1);
    int fma = (c1 >> 12) & 1, f16c = (c1 >> 29) & 1;
    /* XMM and YMM state saved by the OS; AVX2, with the FMA and F16C every AVX2 CPU has */
    return (xcr0 & 6u) == 6u && ((b7 >> 5) & 1) && fma && f16c;
}

int tq_cpu_has_avx512(void) {
    unsigned b7 = 0, c1 = 0, xcr0 = cpu_xcr0(&b7, &c1);
    /* opmask, upper ZMM0-15 and ZMM16-31 state saved too; AVX512F (16), BW (30), VL (31) */
    return tq_cpu_has_avx2() && (xcr0 & 0xE6u) == 0xE6u && ((b7 >> 16) & 1) && ((b7 >> 30) & 1) &&
           ((b7 >> 31) & 1);
}
#else
int tq_cpu_has_avx2(void) { return 0; }
int tq_cpu_has_avx512(void) { return 0; }
#endif

static const tq_kernel_table *tq_selected;
static pthread_once_t tq_select_once = PTHREAD_ONCE_INIT;

static void tq_select(void) {
    const tq_kernel_table *ref = tq_kernels_ref(), *best = ref;
    const tq_kernel_table *avx2 = tq_kernels_avx2() && tq_cpu_has_avx2() ? tq_kernels_avx2() : NULL;
    const tq_kernel_table *avx512 = tq_kernels_avx512() && tq_cpu_has_avx512() ? tq_kernels_avx512() : NULL;
    const tq_kernel_table *neon = tq_kernels_neon(); /* compiled in only where every CPU runs it */
    if (neon) best = neon;
    if (avx2) best = avx2;
    if (avx512) best = avx512;
    const char *force = getenv("TQ_FORCE_ISA");
    if (force && *force) {
        /* a table the CPU cannot run falls back to the best one below it; an unknown name keeps the best
         * table; tq_kernel_name() shows what runs */
        if (strcmp(force, "ref") == 0) best = ref;
        else if (strcmp(force, "avx2") == 0) best = avx2 ? avx2 : ref;
        else if (strcmp(force, "neon") == 0) best = neon ? neon : ref;
    }
    tq_selected = best;
}

static const tq_kernel_table *tq_override;

const tq_kernel_table *tq_kernels(void) {
    pthread_once(&tq_select_once, tq_select);
    return tq_override ? tq_override : tq_selected;
}

void tq_kernels_override(const tq_kernel_table *t) { tq_override = t; }

const char *tq_kernel_name(void) { return tq_kernels()->name; }

#define TQ_STR2(x) #x
#define TQ_STR(x) TQ_STR2(x)

static char tq_info[320];
static pthread_once_t tq_info_once = PTHREAD_ONCE_INIT;

static void tq_info_make(void) {
    const char *force = getenv("TQ_FORCE_ISA");
    snprintf(tq_info, sizeof tq_info,
             "tq %d.%d.%d; kernels compiled: ref%s%s%s; running: %s%s%s%s; compiler: %s; arch: %s; input: %s",
             TQ_VERSION_MAJOR, TQ_VERSION_MINOR, TQ_VERSION_PATCH, tq_kernels_avx2() ? " avx2" : "",
             tq_kernels_avx512() ? " avx512" : "", tq_kernels_neon() ? " neon" : "",
             tq_kernels()->name, force && *force ? " (TQ_FORCE_ISA=" : "", force && *force ? force : "",
             force && *force ? ")" : "",
#if defined(__clang__)
             "clang " __clang_version__,
#elif defined(__GNUC__)
             "gcc " __VERSION__,
#else
             "unknown",
#endif
#if defined(__x86_64__)
             "x86_64",
#elif defined(__aarch64__)
             "aarch64",
#else
             "other",
#endif
             tq_hdf5_support());
}

const char *tq_build_info(void) {
    pthread_once(&tq_info_once, tq_info_make);
    return tq_info;
}
