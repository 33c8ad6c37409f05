/*
 * gen_golden_files.c — writes the committed golden files of the tq file
 * formats (docs/format.md), which tests/test_serialize.c must keep loading
 * and decoding to the same values. Regenerate them only for an intended
 * format or encoder change, and say why in the commit.
 *
 * For each of three quantizers (chosen to cover every payload section):
 *   golden_mse       MSE, 24-d, 2 bits + 8 outlier channels at 3 bits (explicit
 *                    list), Hadamard rotation 2 rounds, seed 42, UNBIASED norm:
 *                    outlier list, two codebooks, seeded rotation
 *   golden_prod      PROD, 16-d, 3 bits, dense rotation, dense QJL, seed 7:
 *                    both stored dense matrices
 *   golden_uniform   UNIFORM per-channel asymmetric, 12-d, 4 bits, Hadamard,
 *                    calibrated on the input: channel ranges
 * it writes, into OUTDIR:
 *   golden_<name>.tqqz            the quantizer (tq_quantizer_save)
 *   golden_<name>.tqca            the codes of the input (tq_codes_save)
 *   golden_<name>_input.fvecs     the input vectors (exact small binary fractions)
 *   golden_<name>_decoded.fvecs   tq_decode of those codes
 *
 * Build and run from the repository root (public API only):
 *   cmake -S . -B build && cmake --build build
 *   cc -std=c11 -O2 -ffp-contract=off -Iinclude tests/gen/gen_golden_files.c \
 *      build/libtq.a -lm -lpthread -o build/gen_golden_files
 *   ./build/gen_golden_files tests/data
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tq.h"

enum { N = 6 };

static int fail(const char *what, tq_status s) {
    fprintf(stderr, "gen_golden_files: %s: %s (%s)\n", what, tq_status_str(s), tq_last_error());
    return 1;
}

/* Deterministic inputs: multiples of 1/64 in [-8, 8), from an integer LCG. */
static void make_input(float *x, size_t n, uint32_t dim, uint32_t seed) {
    uint32_t s = seed;
    for (size_t i = 0; i < n * dim; i++) {
        s = s * 1664525u + 1013904223u;
        x[i] = (float)((int32_t)(s >> 22) - 512) / 64.0f;
    }
}

static int write_fvecs(const char *path, const float *x, size_t n, uint32_t dim) {
    FILE *f = fopen(path, "wb");
    if (!f) return 1;
    for (size_t i = 0; i < n; i++) {
        uint8_t b[4];
        for (int k = 0; k < 4; k++) b[k] = (uint8_t)(dim >> (8 * k));
        fwrite(b, 1, 4, f);
        for (uint32_t j = 0; j < dim; j++) {
            uint32_t u;
            memcpy(&u, &x[i * dim + j], 4);
            for (int k = 0; k < 4; k++) b[k] = (uint8_t)(u >> (8 * k));
            fwrite(b, 1, 4, f);
        }
    }
    return fclose(f) != 0;
}

static int emit(const char *dir, const char *name, const tq_config *cfg, int calibrate, uint32_t seed) {
    char path[1024];
    tq_quantizer *q = NULL;
    tq_status s = tq_quantizer_create(cfg, &q);
    if (s != TQ_OK) return fail(name, s);
    uint32_t dim = cfg->dim;
    float *x = malloc(N * dim * sizeof(float)), *y = malloc(N * dim * sizeof(float));
    uint8_t *codes = malloc(N * tq_quantizer_code_size(q));
    if (!x || !y || !codes) return fail("malloc", TQ_ERR_NOMEM);
    make_input(x, N, dim, seed);
    if (calibrate && (s = tq_quantizer_calibrate(q, x, N)) != TQ_OK) return fail(name, s);
    if ((s = tq_encode(q, x, N, codes)) != TQ_OK) return fail(name, s);
    if ((s = tq_decode(q, codes, N, y)) != TQ_OK) return fail(name, s);
    snprintf(path, sizeof path, "%s/golden_%s.tqqz", dir, name);
    if ((s = tq_quantizer_save(q, path)) != TQ_OK) return fail(path, s);
    snprintf(path, sizeof path, "%s/golden_%s.tqca", dir, name);
    if ((s = tq_codes_save(q, codes, N, path)) != TQ_OK) return fail(path, s);
    snprintf(path, sizeof path, "%s/golden_%s_input.fvecs", dir, name);
    if (write_fvecs(path, x, N, dim)) return fail(path, TQ_ERR_IO);
    snprintf(path, sizeof path, "%s/golden_%s_decoded.fvecs", dir, name);
    if (write_fvecs(path, y, N, dim)) return fail(path, TQ_ERR_IO);
    printf("golden_%s: %zu-byte codes, %s\n", name, tq_quantizer_code_size(q), tq_version_string());
    free(x);
    free(y);
    free(codes);
    tq_quantizer_free(q);
    return 0;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s OUTDIR   (normally tests/data)\n", argv[0]);
        return 2;
    }
    const char *dir = argv[1];
    int bad = 0;
    tq_config c;

    static const uint32_t outliers[8] = {21, 1, 3, 8, 13, 5, 17, 22};
    tq_config_init(&c, 24, 2);
    c.variant = TQ_VARIANT_MSE;
    c.rotation = TQ_ROTATION_HADAMARD;
    c.rounds = 2;
    c.seed = 42;
    c.norm = TQ_NORM_UNBIASED;
    c.outlier_count = 8;
    c.outlier_bits = 3;
    c.outlier_channels = outliers;
    bad |= emit(dir, "mse", &c, 0, 1);

    tq_config_init(&c, 16, 3);
    c.variant = TQ_VARIANT_PROD;
    c.rotation = TQ_ROTATION_DENSE;
    c.qjl = TQ_QJL_DENSE;
    c.seed = 7;
    bad |= emit(dir, "prod", &c, 0, 2);

    tq_config_init(&c, 12, 4);
    c.variant = TQ_VARIANT_UNIFORM;
    c.rotation = TQ_ROTATION_HADAMARD;
    c.uniform_mode = TQ_UNIFORM_ASYMMETRIC;
    c.uniform_scope = TQ_UNIFORM_PER_CHANNEL;
    c.seed = 3;
    bad |= emit(dir, "uniform", &c, 1, 3);
    return bad;
}
