/*
 * tq.c — the tq command-line tool. It uses only the public API (include/tq.h)
 * and, unlike the library, it prints and exits.
 *
 *   tq bench distortion   measure D_mse, D_prod and inner-product bias against
 *                         the paper's bounds (random unit vectors or real rows)
 *   tq bench recall       recall of the true top-1 when a base set is scored
 *                         straight from its codes
 *   tq encode             vectors -> a code file (TQCA), creating the quantizer
 *                         file (TQQZ) if it does not exist
 *   tq decode             a code file -> float32 vectors
 *   tq inspect            describe a TQQZ or TQCA file
 *   tq index build|add|info   a compressed vector index (TQIX) from vectors
 *   tq search             top-k search of an index, ids to .ivecs/.npy
 *   tq eval recall        recall@1@k and recall@10@10 against ground truth
 *   tq plan               memory of a model's KV cache, fp16 against tq (tq_kv)
 *   tq info               how the library was built
 *
 * Outside checks parse `tq bench distortion --json`, `tq plan --json`, the JSON
 * lines of `tq index build|add`, `tq search` and `tq eval recall`, and the arguments
 * of those commands: their keys and their meaning are a stable interface. Add fields; never rename or remove them.
 *
 * Random test vectors come from the tool's own small generator (splitmix64 +
 * Box-Muller), seeded by --seed: the library's seed (rotation, QJL matrix) and
 * the data's seed are the same number but feed unrelated streams. The data are
 * only for checking the theory; libm's log/cos may differ in the last bit
 * between platforms, so bit-identical *inputs* are not promised here (the
 * library's codes for identical inputs are).
 *
 * Exit status: 0 success, 1 a run-time failure (I/O, the library refused),
 * 2 a usage error. Every error is one line on stderr starting with "tq: ".
 */
#if !defined(_WIN32) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L /* clock_gettime, isatty, fileno */
#endif

#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#if !defined(_WIN32)
#include <unistd.h>
#endif

#include "tq.h"

#define EXIT_USAGE 2
#define MAX_BITS_LIST 16
#define DEFAULT_N 10000u
#define DEFAULT_NQ 1000u
#define DEFAULT_K 10u

#ifndef M_PI
#define M_PI 3.14159265358979323846
#endif

/* ------------------------------------------------------------------------ */
/* Messages                                                                  */

static void msg_error(const char *fmt, ...) {
    va_list ap;
    fputs("tq: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

/* A library call failed: say what we were doing and what the library said. */
static int lib_error(tq_status s, const char *what) {
    const char *detail = tq_last_error();
    msg_error("%s: %s%s%s", what, tq_status_str(s), (detail && *detail) ? ": " : "", detail ? detail : "");
    return 1;
}

static double now_s(void) {
#if defined(CLOCK_MONOTONIC)
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
#else
    struct timespec ts;
    timespec_get(&ts, TIME_UTC);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
#endif
}

static int stderr_is_tty(void) {
#if !defined(_WIN32)
    return isatty(fileno(stderr));
#else
    return 0;
#endif
}

/* ------------------------------------------------------------------------ */
/* The tool's random numbers: splitmix64, Gaussian by Box-Muller.            */

typedef struct cli_rng {
    uint64_t s;
    int have_spare;
    double spare;
} cli_rng;

static void rng_init(cli_rng *r, uint64_t seed, uint64_t stream) {
    r->s = seed ^ (stream * 0xD1B54A32D192ED03ull);
    r->have_spare = 0;
    r->spare = 0.0;
}

static uint64_t rng_next(cli_rng *r) {
    uint64_t z = (r->s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static double rng_gauss(cli_rng *r) {
    if (r->have_spare) {
        r->have_spare = 0;
        return r->spare;
    }
    double u1 = ((double)(rng_next(r) >> 11) + 1.0) * 0x1.0p-53; /* (0, 1] */
    double u2 = (double)(rng_next(r) >> 11) * 0x1.0p-53;         /* [0, 1) */
    double rad = sqrt(-2.0 * log(u1));
    r->spare = rad * sin(2.0 * M_PI * u2);
    r->have_spare = 1;
    return rad * cos(2.0 * M_PI * u2);
}

/* n rows of dim floats, each uniform on the unit sphere. */
static void fill_unit_rows(float *x, size_t n, size_t dim, uint64_t seed, uint64_t stream) {
    cli_rng r;
    rng_init(&r, seed, stream);
    double *g = malloc(dim * sizeof *g);
    if (!g) return; /* caller checked the big allocation; this one is tiny */
    for (size_t i = 0; i < n; i++) {
        double ss;
        do {
            ss = 0.0;
            for (size_t j = 0; j < dim; j++) {
                g[j] = rng_gauss(&r);
                ss += g[j] * g[j];
            }
        } while (ss == 0.0);
        double inv = 1.0 / sqrt(ss);
        for (size_t j = 0; j < dim; j++) x[i * dim + j] = (float)(g[j] * inv);
    }
    free(g);
}

/* ------------------------------------------------------------------------ */
/* Small vector helpers                                                      */

static double norm_of(const float *x, size_t dim) {
    double s = 0.0;
    for (size_t j = 0; j < dim; j++) s += (double)x[j] * (double)x[j];
    return sqrt(s);
}

static double dot_d(const float *a, const float *b, size_t dim) {
    double s = 0.0;
    for (size_t j = 0; j < dim; j++) s += (double)a[j] * (double)b[j];
    return s;
}

/*
 * Float scores for the exact search. Eight explicit lanes let the compiler use
 * SIMD without reassociating a reduction; the result is still deterministic
 * (same function, same order, every time), which the recall check relies on.
 */
static float dot_f(const float *a, const float *b, size_t dim) {
    float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    size_t j = 0;
    for (; j + 8 <= dim; j += 8)
        for (int l = 0; l < 8; l++) acc[l] += a[j + l] * b[j + l];
    float s = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
    for (; j < dim; j++) s += a[j] * b[j];
    return s;
}

static float l2_f(const float *a, const float *b, size_t dim) {
    float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    size_t j = 0;
    for (; j + 8 <= dim; j += 8)
        for (int l = 0; l < 8; l++) {
            float t = a[j + l] - b[j + l];
            acc[l] += t * t;
        }
    float s = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
    for (; j < dim; j++) {
        float t = a[j] - b[j];
        s += t * t;
    }
    return s;
}

/* ------------------------------------------------------------------------ */
/* Names                                                                     */

typedef struct name_value {
    const char *name;
    int value;
} name_value;

static const name_value VARIANTS[] = {{"mse", TQ_VARIANT_MSE}, {"prod", TQ_VARIANT_PROD},
                                      {"qjl", TQ_VARIANT_QJL}, {"uniform", TQ_VARIANT_UNIFORM}, {NULL, 0}};
static const name_value ROTATIONS[] = {
    {"none", TQ_ROTATION_NONE}, {"dense", TQ_ROTATION_DENSE}, {"hadamard", TQ_ROTATION_HADAMARD}, {NULL, 0}};
static const name_value QJLS[] = {{"dense", TQ_QJL_DENSE}, {"structured", TQ_QJL_STRUCTURED}, {NULL, 0}};
static const name_value NORMS[] = {
    {"plain", TQ_NORM_PLAIN}, {"unit", TQ_NORM_UNIT}, {"unbiased", TQ_NORM_UNBIASED}, {NULL, 0}};
static const name_value METRICS[] = {{"ip", TQ_METRIC_IP}, {"l2", TQ_METRIC_L2}, {NULL, 0}};
static const name_value UNIFORM_MODES[] = {
    {"symmetric", TQ_UNIFORM_SYMMETRIC}, {"asymmetric", TQ_UNIFORM_ASYMMETRIC}, {NULL, 0}};
static const name_value UNIFORM_SCOPES[] = {{"vector", TQ_UNIFORM_PER_VECTOR},
                                            {"channel", TQ_UNIFORM_PER_CHANNEL},
                                            {"group", TQ_UNIFORM_GROUP},
                                            {NULL, 0}};

static const char *name_of(const name_value *t, int v) {
    for (; t->name; t++)
        if (t->value == v) return t->name;
    return "?";
}

static int parse_name(const name_value *t, const char *opt, const char *s, int *out) {
    for (const name_value *p = t; p->name; p++)
        if (strcmp(p->name, s) == 0) {
            *out = p->value;
            return 0;
        }
    char choices[256] = "";
    for (const name_value *p = t; p->name; p++) {
        if (p != t) strncat(choices, "|", sizeof choices - strlen(choices) - 1);
        strncat(choices, p->name, sizeof choices - strlen(choices) - 1);
    }
    msg_error("%s: unknown value '%s' (expected %s)", opt, s, choices);
    return -1;
}

static int parse_u64(const char *opt, const char *s, uint64_t lo, uint64_t hi, uint64_t *out) {
    char *end = NULL;
    if (!s || !*s || *s == '-' || *s == '+' || *s == ' ') goto bad;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < lo || v > hi) goto bad;
    *out = (uint64_t)v;
    return 0;
bad:
    msg_error("%s: expected an integer in %llu..%llu, got '%s'", opt, (unsigned long long)lo,
              (unsigned long long)hi, s ? s : "");
    return -1;
}

/* "1,2,3,4" -> bits[], each 1..TQ_MAX_BITS, no repeats. */
static int parse_bits_list(const char *s, uint32_t *bits, size_t *nbits) {
    size_t n = 0;
    const char *p = s;
    if (!*s) goto bad;
    while (1) {
        char tok[32];
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        if (len == 0 || len >= sizeof tok) goto bad;
        memcpy(tok, p, len);
        tok[len] = '\0';
        uint64_t v;
        if (parse_u64("--bits", tok, 1, TQ_MAX_BITS, &v) != 0) return -1;
        for (size_t i = 0; i < n; i++)
            if (bits[i] == v) {
                msg_error("--bits: %u is listed twice", (unsigned)v);
                return -1;
            }
        if (n == MAX_BITS_LIST) goto bad;
        bits[n++] = (uint32_t)v;
        if (!comma) break;
        p = comma + 1;
    }
    *nbits = n;
    return 0;
bad:
    msg_error("--bits: expected a comma-separated list of integers in 1..%u such as 1,2,3,4, got '%s'",
              (unsigned)TQ_MAX_BITS, s);
    return -1;
}

/* ------------------------------------------------------------------------ */
/* Options shared by the bench commands                                      */

typedef struct options {
    int help;
    int json;
    int quiet;
    uint32_t dim;
    int dim_set;
    uint32_t bits[MAX_BITS_LIST];
    size_t nbits;
    int variant, rotation, qjl, norm, metric;
    int qjl_set;
    int uniform_mode, uniform_scope;
    uint32_t group_size;
    uint32_t rounds;
    uint32_t outliers, outlier_bits;
    uint64_t seed;
    uint64_t n;
    int n_set;
    const char *data;
    /* recall */
    const char *base, *queries;
    uint64_t nq, k;
    int normalize;
    /* encode, decode, inspect */
    const char *quantizer, *codes, *out, *file;
    char qopt[64]; /* the first quantizer option given ("" if none) */
    uint32_t threads; /* --threads: 0 = all cores */
} options;

static void options_init(options *o, const uint32_t *bits, size_t nbits) {
    memset(o, 0, sizeof *o);
    memcpy(o->bits, bits, nbits * sizeof *bits);
    o->nbits = nbits;
    o->variant = TQ_VARIANT_MSE;
    o->rotation = TQ_ROTATION_HADAMARD;
    o->qjl = TQ_QJL_DENSE;
    o->norm = TQ_NORM_PLAIN;
    o->metric = TQ_METRIC_IP;
    o->uniform_mode = TQ_UNIFORM_SYMMETRIC;
    o->uniform_scope = TQ_UNIFORM_PER_VECTOR;
    o->n = DEFAULT_N;
    o->nq = DEFAULT_NQ;
    o->k = DEFAULT_K;
}

enum { CMD_DISTORTION = 1, CMD_RECALL = 2, CMD_ENCODE = 3, CMD_DECODE = 4, CMD_INSPECT = 5 };

/* Commands that take the quantizer options (--bits, --variant, ...). */
static int takes_quantizer_options(int cmd) {
    return cmd == CMD_DISTORTION || cmd == CMD_RECALL || cmd == CMD_ENCODE;
}

/* Parse argv[first..argc) for the given command; 0 on success. The thread
 * count is applied here: benchmarks default to 1 thread (single-thread
 * figures are the headline), encode and decode to all cores. */
static int parse_options(int cmd, int argc, char **argv, int first, options *o) {
    o->threads = (cmd == CMD_DISTORTION || cmd == CMD_RECALL) ? 1u : 0u;
    for (int i = first; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            o->help = 1;
            return 0;
        }
        if (strcmp(a, "--json") == 0 && cmd != CMD_ENCODE && cmd != CMD_DECODE) {
            o->json = 1;
            continue;
        }
        if (strcmp(a, "--quiet") == 0 || strcmp(a, "-q") == 0) {
            o->quiet = 1;
            continue;
        }
        if (cmd == CMD_RECALL && strcmp(a, "--normalize") == 0) {
            o->normalize = 1;
            continue;
        }
        if (cmd == CMD_INSPECT && strncmp(a, "--", 2) != 0 && !o->file) {
            o->file = a;
            continue;
        }
        if (strncmp(a, "--", 2) != 0) {
            msg_error("unexpected argument '%s'", a);
            return -1;
        }
        /* Every other option takes a value: "--opt value" or "--opt=value". */
        char name[64];
        const char *val = NULL;
        const char *eq = strchr(a, '=');
        size_t len = eq ? (size_t)(eq - a) : strlen(a);
        if (len >= sizeof name) {
            msg_error("unknown option '%s'", a);
            return -1;
        }
        memcpy(name, a, len);
        name[len] = '\0';
        if (eq) {
            val = eq + 1;
        } else if (i + 1 < argc) {
            val = argv[++i];
        }
        int known = 1, rc = 0;
        uint64_t v = 0;
        int qcmd = takes_quantizer_options(cmd);
#define NEED_VAL()                                                   \
    do {                                                             \
        if (!val) {                                                  \
            msg_error("%s needs a value", name);                     \
            return -1;                                               \
        }                                                            \
    } while (0)
        if (qcmd && strcmp(name, "--bits") == 0) {
            NEED_VAL();
            rc = parse_bits_list(val, o->bits, &o->nbits);
        } else if (qcmd && strcmp(name, "--variant") == 0) {
            NEED_VAL();
            rc = parse_name(VARIANTS, name, val, &o->variant);
        } else if (qcmd && strcmp(name, "--rotation") == 0) {
            NEED_VAL();
            rc = parse_name(ROTATIONS, name, val, &o->rotation);
        } else if (qcmd && strcmp(name, "--qjl") == 0) {
            NEED_VAL();
            rc = parse_name(QJLS, name, val, &o->qjl);
            o->qjl_set = 1;
        } else if (qcmd && strcmp(name, "--norm") == 0) {
            NEED_VAL();
            rc = parse_name(NORMS, name, val, &o->norm);
        } else if (qcmd && strcmp(name, "--uniform") == 0) {
            NEED_VAL();
            rc = parse_name(UNIFORM_MODES, name, val, &o->uniform_mode);
        } else if (qcmd && strcmp(name, "--scope") == 0) {
            NEED_VAL();
            rc = parse_name(UNIFORM_SCOPES, name, val, &o->uniform_scope);
        } else if (qcmd && strcmp(name, "--group") == 0) {
            NEED_VAL();
            rc = parse_u64(name, val, 1, TQ_MAX_DIM, &v);
            o->group_size = (uint32_t)v;
        } else if (qcmd && strcmp(name, "--rounds") == 0) {
            NEED_VAL();
            rc = parse_u64(name, val, 1, TQ_MAX_ROUNDS, &v);
            o->rounds = (uint32_t)v;
        } else if (qcmd && strcmp(name, "--outliers") == 0) {
            NEED_VAL();
            rc = parse_u64(name, val, 0, TQ_MAX_DIM, &v);
            o->outliers = (uint32_t)v;
        } else if (qcmd && strcmp(name, "--outlier-bits") == 0) {
            NEED_VAL();
            rc = parse_u64(name, val, 1, TQ_MAX_BITS, &v);
            o->outlier_bits = (uint32_t)v;
        } else if (qcmd && strcmp(name, "--seed") == 0) {
            NEED_VAL();
            rc = parse_u64(name, val, 0, UINT64_MAX, &o->seed);
        } else if (cmd != CMD_INSPECT && strcmp(name, "--threads") == 0) {
            NEED_VAL();
            rc = parse_u64(name, val, 0, 256, &v);
            o->threads = (uint32_t)v;
        } else if (cmd == CMD_DISTORTION && strcmp(name, "--dim") == 0) {
            NEED_VAL();
            rc = parse_u64(name, val, 1, TQ_MAX_DIM, &v);
            o->dim = (uint32_t)v;
            o->dim_set = 1;
        } else if (cmd == CMD_DISTORTION && strcmp(name, "--n") == 0) {
            NEED_VAL();
            rc = parse_u64(name, val, 2, 100000000u, &o->n);
            o->n_set = 1;
        } else if (cmd == CMD_DISTORTION && strcmp(name, "--data") == 0) {
            NEED_VAL();
            o->data = val;
        } else if (cmd == CMD_RECALL && strcmp(name, "--base") == 0) {
            NEED_VAL();
            o->base = val;
        } else if (cmd == CMD_RECALL && strcmp(name, "--queries") == 0) {
            NEED_VAL();
            o->queries = val;
        } else if (cmd == CMD_RECALL && strcmp(name, "--nq") == 0) {
            NEED_VAL();
            rc = parse_u64(name, val, 1, 100000000u, &o->nq);
        } else if (cmd == CMD_RECALL && strcmp(name, "--k") == 0) {
            NEED_VAL();
            rc = parse_u64(name, val, 1, 1000, &o->k);
        } else if (cmd == CMD_RECALL && strcmp(name, "--metric") == 0) {
            NEED_VAL();
            rc = parse_name(METRICS, name, val, &o->metric);
        } else if (cmd == CMD_ENCODE && strcmp(name, "--data") == 0) {
            NEED_VAL();
            o->data = val;
        } else if (cmd == CMD_ENCODE && strcmp(name, "--n") == 0) {
            NEED_VAL();
            rc = parse_u64(name, val, 1, UINT64_MAX, &o->n);
            o->n_set = 1;
        } else if ((cmd == CMD_ENCODE || cmd == CMD_DECODE) && strcmp(name, "--quantizer") == 0) {
            NEED_VAL();
            o->quantizer = val;
        } else if ((cmd == CMD_ENCODE || cmd == CMD_DECODE) && strcmp(name, "--codes") == 0) {
            NEED_VAL();
            o->codes = val;
        } else if (cmd == CMD_DECODE && strcmp(name, "--out") == 0) {
            NEED_VAL();
            o->out = val;
        } else {
            known = 0;
        }
#undef NEED_VAL
        if (!known) {
            msg_error("unknown option '%s'", name);
            return -1;
        }
        if (cmd == CMD_ENCODE && !o->qopt[0] && strcmp(name, "--dim") != 0 && strcmp(name, "--n") != 0 &&
            strcmp(name, "--data") != 0 && strcmp(name, "--quantizer") != 0 && strcmp(name, "--codes") != 0 &&
            strcmp(name, "--threads") != 0)
            snprintf(o->qopt, sizeof o->qopt, "%s", name);
        if (rc != 0) return -1;
    }
    if (cmd != CMD_INSPECT && tq_set_threads(o->threads) != TQ_OK) {
        msg_error("--threads: %s", tq_last_error());
        return -1;
    }
    return 0;
}

/* Cross-option checks shared by both bench commands. */
static int check_common(const options *o) {
    if (o->variant == TQ_VARIANT_QJL)
        for (size_t i = 0; i < o->nbits; i++)
            if (o->bits[i] != 1) {
                msg_error("--variant qjl stores one sign bit per coordinate: use --bits 1 (got %u)",
                          (unsigned)o->bits[i]);
                return -1;
            }
    if (o->norm != TQ_NORM_PLAIN && o->variant != TQ_VARIANT_MSE) {
        msg_error("--norm %s applies to --variant mse only (prod and qjl store plain norms)",
                  name_of(NORMS, o->norm));
        return -1;
    }
    if (o->qjl_set && o->variant != TQ_VARIANT_PROD && o->variant != TQ_VARIANT_QJL) {
        msg_error("--qjl applies to --variant prod and qjl only");
        return -1;
    }
    if (o->rounds != 0 && o->rotation != TQ_ROTATION_HADAMARD) {
        msg_error("--rounds applies to --rotation hadamard only");
        return -1;
    }
    if (o->outlier_bits != 0 && o->outliers == 0) {
        msg_error("--outlier-bits needs --outliers K (the number of outlier channels)");
        return -1;
    }
    if (o->variant != TQ_VARIANT_UNIFORM &&
        (o->uniform_mode != TQ_UNIFORM_SYMMETRIC || o->uniform_scope != TQ_UNIFORM_PER_VECTOR || o->group_size)) {
        msg_error("--uniform, --scope and --group apply to --variant uniform only");
        return -1;
    }
    if (o->uniform_scope == TQ_UNIFORM_GROUP && o->group_size == 0) {
        msg_error("--scope group needs --group N (channels per group)");
        return -1;
    }
    if (o->group_size != 0 && o->uniform_scope != TQ_UNIFORM_GROUP) {
        msg_error("--group applies to --scope group only");
        return -1;
    }
    return 0;
}

static void config_from(const options *o, uint32_t dim, uint32_t bits, const uint32_t *outlier_channels,
                        tq_config *cfg) {
    tq_config_init(cfg, dim, bits);
    cfg->variant = (tq_variant)o->variant;
    cfg->rotation = (tq_rotation_kind)o->rotation;
    cfg->rounds = o->rounds;
    cfg->qjl = (tq_qjl_kind)o->qjl;
    cfg->norm = (tq_norm_mode)o->norm;
    cfg->seed = o->seed;
    cfg->uniform_mode = (tq_uniform_mode)o->uniform_mode;
    cfg->uniform_scope = (tq_uniform_scope)o->uniform_scope;
    cfg->group_size = o->group_size;
    if (o->outliers) {
        cfg->outlier_count = o->outliers;
        cfg->outlier_bits = o->outlier_bits ? o->outlier_bits : bits + 1;
        cfg->outlier_channels = outlier_channels;
    }
}

static int create_quantizer(const options *o, uint32_t dim, uint32_t bits, const uint32_t *outlier_channels,
                            tq_quantizer **q) {
    tq_config cfg;
    config_from(o, dim, bits, outlier_channels, &cfg);
    tq_status s = tq_quantizer_create(&cfg, q);
    if (s != TQ_OK) {
        char what[160];
        snprintf(what, sizeof what, "cannot create a %s quantizer (dim %u, bits %u, rotation %s)",
                 name_of(VARIANTS, o->variant), (unsigned)dim, (unsigned)bits, name_of(ROTATIONS, o->rotation));
        return lib_error(s, what);
    }
    return 0;
}

/* The per-channel uniform baseline learns its channel ranges from the rows it
 * is about to encode; every other quantizer needs nothing. 0 on success. */
static int calibrate_if_needed(const options *o, tq_quantizer *q, const float *x, size_t n) {
    if (o->variant != TQ_VARIANT_UNIFORM || o->uniform_scope != TQ_UNIFORM_PER_CHANNEL) return 0;
    tq_status s = tq_quantizer_calibrate(q, x, n);
    return s == TQ_OK ? 0 : lib_error(s, "calibration failed");
}

/* ------------------------------------------------------------------------ */
/* JSON output                                                               */

static void json_str(FILE *f, const char *s) {
    if (!s) {
        fputs("null", f);
        return;
    }
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(f, "\\%c", *p);
        else if (*p < 0x20)
            fprintf(f, "\\u%04x", *p);
        else
            fputc(*p, f);
    }
    fputc('"', f);
}

static void json_num(FILE *f, double v) {
    if (isfinite(v))
        fprintf(f, "%.9g", v);
    else
        fputs("null", f);
}

/* ------------------------------------------------------------------------ */
/* Data                                                                      */

/*
 * Read float vectors through the library. On success *x holds *n rows of *dim
 * floats (free with tq_free).
 */
static int load_vectors(const char *path, size_t max_rows, float **x, size_t *n, size_t *dim) {
    tq_status s = tq_read_vectors(path, max_rows, x, n, dim);
    if (s != TQ_OK) {
        char what[1100];
        snprintf(what, sizeof what, "cannot read vectors from '%s'", path);
        return lib_error(s, what);
    }
    if (*n == 0 || *dim == 0) {
        msg_error("'%s' holds no vectors", path);
        tq_free(*x);
        *x = NULL;
        return 1;
    }
    return 0;
}

/* Normalize rows in place; rows of zero norm stay zero. @return rows that were zero. */
static size_t normalize_rows(float *x, size_t n, size_t dim) {
    size_t zeros = 0;
    for (size_t i = 0; i < n; i++) {
        double nr = norm_of(x + i * dim, dim);
        if (nr == 0.0) {
            zeros++;
            continue;
        }
        for (size_t j = 0; j < dim; j++) x[i * dim + j] = (float)((double)x[i * dim + j] / nr);
    }
    return zeros;
}

static float *alloc_floats(size_t n, size_t dim, const char *what) {
    if (dim != 0 && n > SIZE_MAX / sizeof(float) / dim) {
        msg_error("%s: %zu x %zu floats is too large", what, n, dim);
        return NULL;
    }
    float *p = malloc(n * dim * sizeof(float) + 1);
    if (!p) msg_error("%s: out of memory (%zu x %zu floats)", what, n, dim);
    return p;
}

static uint8_t *alloc_codes(size_t n, size_t code_size, const char *what) {
    if (code_size != 0 && n > SIZE_MAX / code_size) {
        msg_error("%s: %zu records of %zu bytes is too large", what, n, code_size);
        return NULL;
    }
    uint8_t *p = malloc(n * code_size + 1);
    if (!p) msg_error("%s: out of memory (%zu records of %zu bytes)", what, n, code_size);
    return p;
}

/* ------------------------------------------------------------------------ */
/* tq bench distortion                                                       */

static const char DISTORTION_HELP[] =
    "usage: tq bench distortion --dim D --bits 1,2,3,4 [options]\n"
    "\n"
    "Measure the distortion of a quantizer on N unit vectors x against the bounds of\n"
    "the TurboQuant paper (arXiv 2504.19874, Theorems 1-3):\n"
    "  d_mse          mean ||x - decode(encode(x))||^2\n"
    "  d_prod         mean (<y,x> - est)^2, est = tq_score(inner product) of a prepared\n"
    "                 query y against the code of x; y are N independent uniform unit vectors\n"
    "  ip_bias        mean (est - <y,x>), with ip_bias_stderr = sd/sqrt(N)\n"
    "  bits_per_value stored bits per coordinate, every per-vector factor included\n"
    "  bounds         mse: 4^-b <= d_mse <= (sqrt(3)*pi/2)*4^-b (Theorems 1, 3)\n"
    "                 prod, qjl: (1/d)*4^-b <= d_prod <= (sqrt(3)*pi^2/d)*4^-b (Theorems 2, 3)\n"
    "                 uniform: none\n"
    "  d_mse_predicted  the Lloyd-Max prediction of the MSE stage alone (bits b, or b-1 for prod;\n"
    "                 prod's decode adds the QJL stage's variance, so its d_mse is larger)\n"
    "  d_prod_predicted (pi/2 - 1/d) * D_mse(b-1) / d for a dense QJL projection (D_mse(0) = 1);\n"
    "                 (1/(d E|u_1|^2) - 1) * D_mse(b-1) / d (about pi/2 - 1) for the structured one\n"
    "\n"
    "options:\n"
    "  --dim D              dimension (taken from the file with --data; an error if they disagree)\n"
    "  --bits LIST          comma-separated bits per coordinate, 1..8 (default 1,2,3,4)\n"
    "  --variant V          mse | prod | qjl | uniform (default mse); qjl takes --bits 1 only\n"
    "  --rotation R         none | dense | hadamard (default hadamard)\n"
    "  --rounds R           Hadamard rounds, 1..8 (default: the library's, 2)\n"
    "  --qjl K              dense | structured: the QJL projection of prod/qjl (default dense)\n"
    "  --norm M             plain | unit | unbiased: the scale mse stores (default plain)\n"
    "  --uniform M          symmetric | asymmetric (uniform only; default symmetric)\n"
    "  --scope S            vector | channel | group (uniform only; default vector;\n"
    "                       channel is calibrated on the same rows it then encodes)\n"
    "  --group N            channels per group for --scope group\n"
    "  --outliers K         split off K outlier channels (fractional bits); with --data the K\n"
    "                       channels of largest mean square, otherwise channels 0..K-1\n"
    "  --outlier-bits B     bits of the outlier channels (default: bits + 1)\n"
    "  --n N                number of vectors (default 10000; with --data, the first N usable rows)\n"
    "  --seed S             seed of the quantizer and of the random vectors (default 0)\n"
    "  --threads T          threads for encode and scoring (default 1; 0 = all cores)\n"
    "  --data FILE          use the rows of FILE (.fvecs or .npy float32), normalized;\n"
    "                       rows of zero norm are skipped. The queries y stay random.\n"
    "  --json               print one JSON object on stdout instead of a table\n"
    "\n"
    "JSON: {\"dim\",\"n\",\"variant\",\"rotation\",\"rounds\",\"qjl\",\"norm\",\"seed\",\"data\",\"results\":[{\"bits\",\n"
    "\"d_mse\",\"d_prod\",\"ip_bias\",\"ip_bias_stderr\",\"bits_per_value\",\"upper_bound\",\"lower_bound\",\n"
    "\"bound_metric\",\"within_bounds\",\"d_mse_predicted\",\"d_prod_predicted\",\"code_size\"}, ...]}.\n"
    "Values that do not apply are null.\n";

typedef struct dist_result {
    uint32_t bits;
    double d_mse, d_prod, ip_bias, ip_bias_stderr, bpv;
    double upper, lower;         /* NAN when none */
    double d_mse_pred, d_prod_pred; /* NAN when none */
    const char *bound_metric;    /* NULL for uniform */
    int within;                  /* -1: no bounds */
    size_t code_size;
} dist_result;

static int run_one_distortion(const options *o, const float *x, const float *y, size_t n, uint32_t dim,
                              uint32_t bits, const uint32_t *outlier_channels, dist_result *r) {
    tq_quantizer *q = NULL;
    tq_query *pq = NULL;
    uint8_t *codes = NULL;
    float *dec = NULL;
    int rc = 1;
    tq_status s;

    if (create_quantizer(o, dim, bits, outlier_channels, &q) != 0) return 1;
    size_t cs = tq_quantizer_code_size(q);
    codes = alloc_codes(n, cs, "codes");
    dec = alloc_floats(n, dim, "decoded vectors");
    if (!codes || !dec) goto done;
    if (calibrate_if_needed(o, q, x, n) != 0) goto done;
    s = tq_encode(q, x, n, codes);
    if (s != TQ_OK) {
        lib_error(s, "encode failed");
        goto done;
    }
    s = tq_decode(q, codes, n, dec);
    if (s != TQ_OK) {
        lib_error(s, "decode failed");
        goto done;
    }
    s = tq_query_create(q, &pq);
    if (s != TQ_OK) {
        lib_error(s, "cannot prepare a query");
        goto done;
    }

    double sum_mse = 0.0, sum_err = 0.0, sum_err2 = 0.0;
    for (size_t i = 0; i < n; i++) {
        const float *xi = x + i * dim, *di = dec + i * dim, *yi = y + i * dim;
        double e = 0.0;
        for (size_t j = 0; j < dim; j++) {
            double t = (double)xi[j] - (double)di[j];
            e += t * t;
        }
        sum_mse += e;
        s = tq_query_set(pq, yi);
        if (s != TQ_OK) {
            lib_error(s, "cannot set a query");
            goto done;
        }
        float est;
        s = tq_score(q, pq, TQ_METRIC_IP, codes + i * cs, 1, &est);
        if (s != TQ_OK) {
            lib_error(s, "scoring failed");
            goto done;
        }
        double err = (double)est - dot_d(yi, xi, dim);
        sum_err += err;
        sum_err2 += err * err;
    }
    r->bits = bits;
    r->code_size = cs;
    r->bpv = tq_quantizer_bits_per_value(q);
    r->d_mse = sum_mse / (double)n;
    r->d_prod = sum_err2 / (double)n;
    r->ip_bias = sum_err / (double)n;
    double var = (sum_err2 - (double)n * r->ip_bias * r->ip_bias) / (double)(n - 1);
    r->ip_bias_stderr = sqrt(var > 0 ? var : 0) / sqrt((double)n);

    double p4 = pow(4.0, -(double)bits);
    r->upper = r->lower = NAN;
    r->bound_metric = NULL;
    if (o->variant == TQ_VARIANT_MSE) {
        r->upper = sqrt(3.0) * M_PI / 2.0 * p4;
        r->lower = p4;
        r->bound_metric = "d_mse";
    } else if (o->variant == TQ_VARIANT_PROD || o->variant == TQ_VARIANT_QJL) {
        r->upper = sqrt(3.0) * M_PI * M_PI / (double)dim * p4;
        r->lower = p4 / (double)dim;
        r->bound_metric = "d_prod";
    }
    r->within = -1;
    if (r->bound_metric) {
        double m = (o->variant == TQ_VARIANT_MSE) ? r->d_mse : r->d_prod;
        r->within = (m >= r->lower && m <= r->upper);
    }

    /* Predictions: only for the paper's setting (no outlier split). */
    r->d_mse_pred = r->d_prod_pred = NAN;
    if (o->outliers == 0) {
        uint32_t mb = 0;
        if (o->variant == TQ_VARIANT_MSE) mb = bits;
        if (o->variant == TQ_VARIANT_PROD) mb = bits - 1;
        double mse_unit = 1.0; /* no MSE stage: the residual is x itself */
        if (mb >= 1) {
            float cents[256];
            s = tq_codebook_get(dim, mb, cents, &mse_unit);
            if (s != TQ_OK) mse_unit = NAN;
            if (o->variant == TQ_VARIANT_MSE || o->variant == TQ_VARIANT_PROD) r->d_mse_pred = mse_unit;
        }
        if (o->variant == TQ_VARIANT_PROD || o->variant == TQ_VARIANT_QJL) {
            if (o->qjl == TQ_QJL_DENSE) {
                r->d_prod_pred = (M_PI / 2.0 - 1.0 / (double)dim) * mse_unit / (double)dim;
            } else {
                /* orthogonal sketch rows: (1/(d E|u_1|^2) - 1) D_mse(b-1) / d, E|u_1| for u uniform on S^{d-1} */
                double abs_mean = exp(lgamma(dim / 2.0) - lgamma((dim + 1) / 2.0)) / sqrt(M_PI);
                r->d_prod_pred = (1.0 / (dim * abs_mean * abs_mean) - 1.0) * mse_unit / (double)dim;
            }
        }
    }
    rc = 0;
done:
    tq_query_free(pq);
    tq_quantizer_free(q);
    free(codes);
    free(dec);
    return rc;
}

static void print_distortion_json(const options *o, uint32_t dim, size_t n, const dist_result *res,
                                  size_t nres) {
    FILE *f = stdout;
    fprintf(f, "{\"dim\":%u,\"n\":%zu,\"variant\":", (unsigned)dim, n);
    json_str(f, name_of(VARIANTS, o->variant));
    fputs(",\"rotation\":", f);
    json_str(f, name_of(ROTATIONS, o->rotation));
    fputs(",\"rounds\":", f);
    if (o->rotation == TQ_ROTATION_HADAMARD)
        fprintf(f, "%u", (unsigned)(o->rounds ? o->rounds : 2));
    else
        fputs("null", f);
    fputs(",\"qjl\":", f);
    if (o->variant == TQ_VARIANT_PROD || o->variant == TQ_VARIANT_QJL)
        json_str(f, name_of(QJLS, o->qjl));
    else
        fputs("null", f);
    fputs(",\"norm\":", f);
    json_str(f, name_of(NORMS, o->norm));
    fprintf(f, ",\"seed\":%llu,\"data\":", (unsigned long long)o->seed);
    json_str(f, o->data);
    if (o->variant == TQ_VARIANT_UNIFORM) {
        fputs(",\"uniform\":", f);
        json_str(f, name_of(UNIFORM_MODES, o->uniform_mode));
        fputs(",\"scope\":", f);
        json_str(f, name_of(UNIFORM_SCOPES, o->uniform_scope));
        if (o->uniform_scope == TQ_UNIFORM_GROUP) fprintf(f, ",\"group\":%u", (unsigned)o->group_size);
    }
    if (o->outliers) fprintf(f, ",\"outliers\":%u", (unsigned)o->outliers);
    fputs(",\"results\":[", f);
    for (size_t i = 0; i < nres; i++) {
        const dist_result *r = &res[i];
        fprintf(f, "%s{\"bits\":%u,\"d_mse\":", i ? "," : "", (unsigned)r->bits);
        json_num(f, r->d_mse);
        fputs(",\"d_prod\":", f);
        json_num(f, r->d_prod);
        fputs(",\"ip_bias\":", f);
        json_num(f, r->ip_bias);
        fputs(",\"ip_bias_stderr\":", f);
        json_num(f, r->ip_bias_stderr);
        fputs(",\"bits_per_value\":", f);
        json_num(f, r->bpv);
        fputs(",\"upper_bound\":", f);
        json_num(f, r->upper);
        fputs(",\"lower_bound\":", f);
        json_num(f, r->lower);
        fputs(",\"bound_metric\":", f);
        json_str(f, r->bound_metric);
        fputs(",\"within_bounds\":", f);
        fputs(r->within < 0 ? "null" : r->within ? "true" : "false", f);
        fputs(",\"d_mse_predicted\":", f);
        json_num(f, r->d_mse_pred);
        fputs(",\"d_prod_predicted\":", f);
        json_num(f, r->d_prod_pred);
        if (o->outliers) fprintf(f, ",\"outlier_bits\":%u", (unsigned)(o->outlier_bits ? o->outlier_bits : r->bits + 1));
        fprintf(f, ",\"code_size\":%zu}", r->code_size);
    }
    fputs("]}\n", f);
}

static void fmt_num(char *buf, size_t cap, double v) {
    if (isfinite(v))
        snprintf(buf, cap, "%.4g", v);
    else
        snprintf(buf, cap, "-");
}

static void print_distortion_table(const options *o, uint32_t dim, size_t n, const dist_result *res,
                                   size_t nres) {
    printf("tq bench distortion: dim %u, n %zu, variant %s, rotation %s", (unsigned)dim, n,
           name_of(VARIANTS, o->variant), name_of(ROTATIONS, o->rotation));
    if (o->rotation == TQ_ROTATION_HADAMARD) printf(" (%u rounds)", (unsigned)(o->rounds ? o->rounds : 2));
    if (o->variant == TQ_VARIANT_PROD || o->variant == TQ_VARIANT_QJL) printf(", qjl %s", name_of(QJLS, o->qjl));
    if (o->variant == TQ_VARIANT_MSE) printf(", norm %s", name_of(NORMS, o->norm));
    if (o->variant == TQ_VARIANT_UNIFORM)
        printf(", uniform %s per %s", name_of(UNIFORM_MODES, o->uniform_mode), name_of(UNIFORM_SCOPES, o->uniform_scope));
    if (o->outliers) printf(", %u outlier channels", (unsigned)o->outliers);
    printf(", seed %llu\n  vectors: %s\n", (unsigned long long)o->seed,
           o->data ? o->data : "random unit vectors (uniform on the sphere)");
    printf("%4s %9s %10s %10s %10s %10s %10s %10s %10s %10s %7s\n", "bits", "bits/val", "d_mse", "mse_pred",
           "d_prod", "prod_pred", "ip_bias", "bias_se", "lower", "upper", "within");
    for (size_t i = 0; i < nres; i++) {
        const dist_result *r = &res[i];
        char c[9][32];
        fmt_num(c[0], 32, r->d_mse);
        fmt_num(c[1], 32, r->d_mse_pred);
        fmt_num(c[2], 32, r->d_prod);
        fmt_num(c[3], 32, r->d_prod_pred);
        snprintf(c[4], 32, "%+.2e", r->ip_bias);
        snprintf(c[5], 32, "%.2e", r->ip_bias_stderr);
        fmt_num(c[6], 32, r->lower);
        fmt_num(c[7], 32, r->upper);
        snprintf(c[8], 32, "%s", r->within < 0 ? "-" : r->within ? "yes" : "NO");
        printf("%4u %9.4f %10s %10s %10s %10s %10s %10s %10s %10s %7s\n", (unsigned)r->bits, r->bpv, c[0], c[1],
               c[2], c[3], c[4], c[5], c[6], c[7], c[8]);
    }
    printf("  d_mse: mean ||x - x~||^2; mse_pred: the Lloyd-Max prediction for the MSE stage%s\n"
           "  d_prod: mean (<y,x> - est)^2 over random unit queries y; prod_pred: theory for the QJL projection\n"
           "  ip_bias: mean (est - <y,x>), bias_se its standard error; bits/val counts every stored factor\n"
           "  lower, upper: the paper's bounds on %s; within: inside them\n",
           o->variant == TQ_VARIANT_PROD ? " alone (b-1 bits)" : "",
           o->variant == TQ_VARIANT_MSE ? "d_mse" : (o->variant == TQ_VARIANT_UNIFORM ? "nothing (uniform has none)" : "d_prod"));
}

static int cmd_distortion(int argc, char **argv, int first) {
    static const uint32_t default_bits[] = {1, 2, 3, 4};
    options o;
    options_init(&o, default_bits, 4);
    if (parse_options(CMD_DISTORTION, argc, argv, first, &o) != 0) goto usage;
    if (o.help) {
        fputs(DISTORTION_HELP, stdout);
        return 0;
    }
    if (!o.dim_set && !o.data) {
        msg_error("--dim D is required (or --data FILE)");
        goto usage;
    }
    if (check_common(&o) != 0) goto usage;

    float *x = NULL, *y = NULL;
    uint32_t *outlier_channels = NULL;
    dist_result res[MAX_BITS_LIST];
    int rc = 1;
    size_t n = (size_t)o.n;
    uint32_t dim = o.dim;

    if (o.data) {
        size_t rows = 0, fdim = 0;
        float *raw = NULL;
        /* Read only the rows needed; read everything if zero rows leave too few. */
        if (load_vectors(o.data, n, &raw, &rows, &fdim) != 0) return 1;
        if (rows == n) {
            size_t zero = 0;
            for (size_t i = 0; i < rows; i++) zero += norm_of(raw + i * fdim, fdim) == 0.0;
            if (zero) {
                tq_free(raw);
                raw = NULL;
                if (load_vectors(o.data, 0, &raw, &rows, &fdim) != 0) return 1;
            }
        }
        if (fdim > TQ_MAX_DIM) {
            msg_error("'%s' has dimension %zu, more than tq's maximum %u", o.data, fdim, (unsigned)TQ_MAX_DIM);
            tq_free(raw);
            return 1;
        }
        if (o.dim_set && fdim != o.dim) {
            msg_error("--dim %u disagrees with '%s', whose rows have dimension %zu", (unsigned)o.dim, o.data, fdim);
            tq_free(raw);
            return EXIT_USAGE;
        }
        dim = (uint32_t)fdim;
        size_t want = rows < n ? rows : n;
        x = alloc_floats(want, dim, "data rows");
        if (!x) {
            tq_free(raw);
            return 1;
        }
        size_t used = 0, skipped = 0;
        for (size_t i = 0; i < rows && used < want; i++) {
            const float *ri = raw + i * fdim;
            double nr = norm_of(ri, fdim);
            if (nr == 0.0) {
                skipped++;
                continue;
            }
            if (!isfinite(nr)) {
                msg_error("'%s' row %zu holds a NaN or Inf", o.data, i);
                tq_free(raw);
                free(x);
                return 1;
            }
            for (size_t j = 0; j < fdim; j++) x[used * dim + j] = (float)((double)ri[j] / nr);
            used++;
        }
        tq_free(raw);
        if (used < 2) {
            msg_error("'%s' has fewer than 2 rows of non-zero norm", o.data);
            free(x);
            return 1;
        }
        if (!o.quiet && (skipped || used < want))
            fprintf(stderr, "tq: using %zu rows of '%s' (%zu zero rows skipped)\n", used, o.data, skipped);
        n = used;
    } else {
        x = alloc_floats(n, dim, "random vectors");
        if (!x) return 1;
        fill_unit_rows(x, n, dim, o.seed, 1);
    }
    y = alloc_floats(n, dim, "random queries");
    if (!y) goto done;
    fill_unit_rows(y, n, dim, o.seed, 2);

    if (o.outliers) {
        if (o.outliers >= dim) {
            msg_error("--outliers %u must be less than the dimension %u", (unsigned)o.outliers, (unsigned)dim);
            rc = EXIT_USAGE;
            goto done;
        }
        if (o.data) {
            outlier_channels = malloc(o.outliers * sizeof *outlier_channels);
            if (!outlier_channels) {
                msg_error("out of memory");
                goto done;
            }
            tq_status s = tq_select_outliers(x, n, dim, o.outliers, outlier_channels);
            if (s != TQ_OK) {
                lib_error(s, "cannot select outlier channels");
                goto done;
            }
        }
    }

    for (size_t i = 0; i < o.nbits; i++)
        if (run_one_distortion(&o, x, y, n, dim, o.bits[i], outlier_channels, &res[i]) != 0) goto done;

    if (o.json)
        print_distortion_json(&o, dim, n, res, o.nbits);
    else
        print_distortion_table(&o, dim, n, res, o.nbits);
    rc = fflush(stdout) == 0 ? 0 : 1;
done:
    free(x);
    free(y);
    free(outlier_channels);
    return rc;
usage:
    if (!o.help) fputs("tq: see 'tq bench distortion --help'\n", stderr);
    return EXIT_USAGE;
}

/* ------------------------------------------------------------------------ */
/* tq bench recall                                                           */

static const char RECALL_HELP[] =
    "usage: tq bench recall --base FILE --queries FILE [options]\n"
    "\n"
    "Search a base set scored straight from its codes and compare with exact search.\n"
    "The exact top-1 of each query is found by brute force in float; the base is then\n"
    "encoded, and every query is prepared once (tq_query_set) and scored against all\n"
    "codes (tq_score). Reported per bit width:\n"
    "  recall_at_1     fraction of queries whose top-1 from codes is the true top-1\n"
    "  recall_1_at_k   fraction whose true top-1 is among the top-k from codes\n"
    "  (a candidate whose exact score equals the true best score counts as the true\n"
    "  top-1, so exact duplicates in the base do not count as misses)\n"
    "  encode_s, score_s  wall time to encode the base, and to prepare and score all queries\n"
    "  bits_per_value  stored bits per coordinate, every per-vector factor included\n"
    "\n"
    "options:\n"
    "  --base FILE      base vectors (.fvecs or .npy float32)\n"
    "  --queries FILE   query vectors (.fvecs or .npy float32), same dimension\n"
    "  --nq N           use the first N queries (default 1000)\n"
    "  --bits LIST      comma-separated bits per coordinate (default 2,4)\n"
    "  --variant V      mse | prod | qjl | uniform (default mse)\n"
    "  --rotation R     none | dense | hadamard (default hadamard)\n"
    "  --rounds R       Hadamard rounds (default: the library's, 2)\n"
    "  --qjl K          dense | structured (prod/qjl; default dense)\n"
    "  --norm M         plain | unit | unbiased (mse; default plain)\n"
    "  --uniform M, --scope S, --group N   uniform baseline settings (see distortion --help)\n"
    "  --outliers K, --outlier-bits B      outlier split; channels picked from the base\n"
    "  --metric M       ip | l2 (default ip)\n"
    "  --normalize      scale base and query rows to unit norm first (zero rows stay zero)\n"
    "  --k K            the k of recall 1@k (default 10)\n"
    "  --seed S         seed of the quantizer (default 0)\n"
    "  --threads T      threads for encode and scoring (default 1: single-thread timings; 0 = all cores)\n"
    "  --quiet          no progress on stderr\n"
    "  --json           print one JSON object on stdout instead of a table\n"
    "\n"
    "JSON: {\"base\",\"queries\",\"n_base\",\"nq\",\"dim\",\"metric\",\"normalize\",\"k\",\"variant\",\"rotation\",\n"
    "\"rounds\",\"qjl\",\"norm\",\"seed\",\"threads\",\"kernels\",\"exact_s\",\"results\":[{\"bits\",\"bits_per_value\",\"code_size\",\n"
    "\"recall_at_1\",\"recall_1_at_k\",\"encode_s\",\"score_s\"}, ...]}\n";

typedef struct recall_result {
    uint32_t bits;
    double bpv, r1, r1k, encode_s, score_s;
    size_t code_size;
} recall_result;

typedef struct progress {
    int on, tty;
    const char *what;
    size_t total, last;
} progress;

static void progress_start(progress *p, int on, const char *what, size_t total) {
    p->on = on;
    p->tty = stderr_is_tty();
    p->what = what;
    p->total = total;
    p->last = 0;
    if (p->on && !p->tty) fprintf(stderr, "tq: %s (%zu)...\n", what, total);
}

static void progress_step(progress *p, size_t done) {
    if (!p->on || !p->tty) return;
    size_t step = p->total / 100 ? p->total / 100 : 1;
    if (done == p->total || done - p->last >= step) {
        fprintf(stderr, "\rtq: %s: %zu/%zu", p->what, done, p->total);
        p->last = done;
    }
}

static void progress_end(progress *p) {
    if (p->on && p->tty) fputc('\n', stderr);
}

/* Is a better than b under the metric? */
static int better(int metric, float a, float b) { return metric == TQ_METRIC_IP ? a > b : a < b; }

static float exact_score(int metric, const float *q, const float *x, size_t dim) {
    return metric == TQ_METRIC_IP ? dot_f(q, x, dim) : l2_f(q, x, dim);
}

static int run_one_recall(const options *o, const float *base, size_t nb, const float *qs, size_t nq, uint32_t dim,
                          uint32_t bits, const uint32_t *outlier_channels, const size_t *true_idx,
                          const float *true_score, recall_result *r) {
    tq_quantizer *q = NULL;
    tq_query *pq = NULL;
    uint8_t *codes = NULL;
    float *scores = NULL;
    size_t k = (size_t)o->k < nb ? (size_t)o->k : nb;
    size_t *top = NULL;
    int rc = 1;
    tq_status s;

    if (create_quantizer(o, dim, bits, outlier_channels, &q) != 0) return 1;
    size_t cs = tq_quantizer_code_size(q);
    codes = alloc_codes(nb, cs, "codes");
    scores = alloc_floats(nb, 1, "scores");
    top = malloc(k * sizeof *top);
    if (!codes || !scores || !top) goto done;

    double t0 = now_s();
    if (calibrate_if_needed(o, q, base, nb) != 0) goto done;
    s = tq_encode(q, base, nb, codes);
    if (s != TQ_OK) {
        lib_error(s, "encode failed");
        goto done;
    }
    double t1 = now_s();
    s = tq_query_create(q, &pq);
    if (s != TQ_OK) {
        lib_error(s, "cannot prepare a query");
        goto done;
    }

    char what[64];
    snprintf(what, sizeof what, "%u bits: scoring queries", (unsigned)bits);
    progress pr;
    progress_start(&pr, !o->quiet, what, nq);
    size_t hit1 = 0, hitk = 0;
    double score_time = 0.0;
    for (size_t i = 0; i < nq; i++) {
        const float *qi = qs + i * dim;
        double ts = now_s();
        s = tq_query_set(pq, qi);
        if (s == TQ_OK) s = tq_score(q, pq, (tq_metric)o->metric, codes, nb, scores);
        score_time += now_s() - ts;
        if (s != TQ_OK) {
            progress_end(&pr);
            lib_error(s, "scoring failed");
            goto done;
        }
        /* top-k by insertion into a sorted list (k is small) */
        size_t have = 0;
        for (size_t j = 0; j < nb; j++) {
            float v = scores[j];
            if (have == k && !better(o->metric, v, scores[top[k - 1]])) continue;
            size_t pos = have < k ? have++ : k - 1;
            while (pos > 0 && better(o->metric, v, scores[top[pos - 1]])) {
                top[pos] = top[pos - 1];
                pos--;
            }
            top[pos] = j;
        }
        for (size_t t = 0; t < have; t++) {
            size_t j = top[t];
            int same = (j == true_idx[i]) || exact_score(o->metric, qi, base + j * dim, dim) == true_score[i];
            if (same) {
                if (t == 0) hit1++;
                hitk++;
                break;
            }
        }
        progress_step(&pr, i + 1);
    }
    progress_end(&pr);

    r->bits = bits;
    r->code_size = cs;
    r->bpv = tq_quantizer_bits_per_value(q);
    r->r1 = (double)hit1 / (double)nq;
    r->r1k = (double)hitk / (double)nq;
    r->encode_s = t1 - t0;
    r->score_s = score_time;
    rc = 0;
done:
    tq_query_free(pq);
    tq_quantizer_free(q);
    free(codes);
    free(scores);
    free(top);
    return rc;
}

static int cmd_recall(int argc, char **argv, int first) {
    static const uint32_t default_bits[] = {2, 4};
    options o;
    options_init(&o, default_bits, 2);
    if (parse_options(CMD_RECALL, argc, argv, first, &o) != 0) goto usage;
    if (o.help) {
        fputs(RECALL_HELP, stdout);
        return 0;
    }
    if (!o.base || !o.queries) {
        msg_error("--base FILE and --queries FILE are required");
        goto usage;
    }
    if (check_common(&o) != 0) goto usage;

    float *base = NULL, *qs = NULL, *true_score = NULL;
    size_t *true_idx = NULL;
    uint32_t *outlier_channels = NULL;
    size_t nb = 0, bdim = 0, nq = 0, qdim = 0;
    recall_result res[MAX_BITS_LIST];
    int rc = 1;

    if (load_vectors(o.base, 0, &base, &nb, &bdim) != 0) return 1;
    if (load_vectors(o.queries, (size_t)o.nq, &qs, &nq, &qdim) != 0) goto done;
    if (bdim != qdim) {
        msg_error("base '%s' has dimension %zu but queries '%s' have %zu", o.base, bdim, o.queries, qdim);
        goto done;
    }
    if (bdim > TQ_MAX_DIM) {
        msg_error("dimension %zu is more than tq's maximum %u", bdim, (unsigned)TQ_MAX_DIM);
        goto done;
    }
    uint32_t dim = (uint32_t)bdim;
    if (o.normalize) {
        normalize_rows(base, nb, bdim);
        normalize_rows(qs, nq, bdim);
    }
    if (o.outliers) {
        if (o.outliers >= dim) {
            msg_error("--outliers %u must be less than the dimension %u", (unsigned)o.outliers, (unsigned)dim);
            rc = EXIT_USAGE;
            goto done;
        }
        outlier_channels = malloc(o.outliers * sizeof *outlier_channels);
        if (!outlier_channels) {
            msg_error("out of memory");
            goto done;
        }
        tq_status s = tq_select_outliers(base, nb, dim, o.outliers, outlier_channels);
        if (s != TQ_OK) {
            lib_error(s, "cannot select outlier channels");
            goto done;
        }
    }

    /* Exact top-1 by brute force. */
    true_idx = malloc(nq * sizeof *true_idx);
    true_score = alloc_floats(nq, 1, "exact scores");
    if (!true_idx || !true_score) {
        msg_error("out of memory");
        goto done;
    }
    progress pr;
    progress_start(&pr, !o.quiet, "exact search", nq);
    double t0 = now_s();
    for (size_t i = 0; i < nq; i++) {
        const float *qi = qs + i * bdim;
        size_t best = 0;
        float bs = exact_score(o.metric, qi, base, bdim);
        for (size_t j = 1; j < nb; j++) {
            float v = exact_score(o.metric, qi, base + j * bdim, bdim);
            if (better(o.metric, v, bs)) {
                bs = v;
                best = j;
            }
        }
        true_idx[i] = best;
        true_score[i] = bs;
        progress_step(&pr, i + 1);
    }
    progress_end(&pr);
    double exact_s = now_s() - t0;

    for (size_t b = 0; b < o.nbits; b++)
        if (run_one_recall(&o, base, nb, qs, nq, dim, o.bits[b], outlier_channels, true_idx, true_score, &res[b]) !=
            0)
            goto done;

    if (o.json) {
        FILE *f = stdout;
        fputs("{\"base\":", f);
        json_str(f, o.base);
        fputs(",\"queries\":", f);
        json_str(f, o.queries);
        fprintf(f, ",\"n_base\":%zu,\"nq\":%zu,\"dim\":%u,\"metric\":", nb, nq, (unsigned)dim);
        json_str(f, name_of(METRICS, o.metric));
        fprintf(f, ",\"normalize\":%s,\"k\":%zu,\"variant\":", o.normalize ? "true" : "false",
                (size_t)(o.k < nb ? o.k : nb));
        json_str(f, name_of(VARIANTS, o.variant));
        fputs(",\"rotation\":", f);
        json_str(f, name_of(ROTATIONS, o.rotation));
        fputs(",\"rounds\":", f);
        if (o.rotation == TQ_ROTATION_HADAMARD)
            fprintf(f, "%u", (unsigned)(o.rounds ? o.rounds : 2));
        else
            fputs("null", f);
        fputs(",\"qjl\":", f);
        if (o.variant == TQ_VARIANT_PROD || o.variant == TQ_VARIANT_QJL)
            json_str(f, name_of(QJLS, o.qjl));
        else
            fputs("null", f);
        fputs(",\"norm\":", f);
        json_str(f, name_of(NORMS, o.norm));
        fprintf(f, ",\"seed\":%llu,\"threads\":%u,\"kernels\":", (unsigned long long)o.seed, (unsigned)tq_get_threads());
        json_str(f, tq_kernel_name());
        fputs(",\"exact_s\":", f);
        json_num(f, exact_s);
        if (o.outliers) fprintf(f, ",\"outliers\":%u", (unsigned)o.outliers);
        fputs(",\"results\":[", f);
        for (size_t b = 0; b < o.nbits; b++) {
            const recall_result *r = &res[b];
            fprintf(f, "%s{\"bits\":%u,\"bits_per_value\":", b ? "," : "", (unsigned)r->bits);
            json_num(f, r->bpv);
            fprintf(f, ",\"code_size\":%zu,\"recall_at_1\":", r->code_size);
            json_num(f, r->r1);
            fputs(",\"recall_1_at_k\":", f);
            json_num(f, r->r1k);
            fputs(",\"encode_s\":", f);
            json_num(f, r->encode_s);
            fputs(",\"score_s\":", f);
            json_num(f, r->score_s);
            fputc('}', f);
        }
        fputs("]}\n", f);
    } else {
        size_t k = (size_t)(o.k < nb ? o.k : nb);
        printf("tq bench recall: %zu base x %zu queries, dim %u, metric %s%s, variant %s, rotation %s", nb, nq,
               (unsigned)dim, name_of(METRICS, o.metric), o.normalize ? " (rows normalized)" : "",
               name_of(VARIANTS, o.variant), name_of(ROTATIONS, o.rotation));
        if (o.variant == TQ_VARIANT_MSE) printf(", norm %s", name_of(NORMS, o.norm));
        if (o.variant == TQ_VARIANT_PROD || o.variant == TQ_VARIANT_QJL) printf(", qjl %s", name_of(QJLS, o.qjl));
        printf(", seed %llu; %u thread(s), %s kernels\n", (unsigned long long)o.seed, (unsigned)tq_get_threads(),
               tq_kernel_name());
        char r1k_name[32];
        snprintf(r1k_name, sizeof r1k_name, "R1@%zu", k);
        printf("%4s %9s %6s %8s %8s %10s %12s\n", "bits", "bits/val", "bytes", "R@1", r1k_name, "encode_s",
               "ms/query");
        for (size_t b = 0; b < o.nbits; b++) {
            const recall_result *r = &res[b];
            printf("%4u %9.4f %6zu %8.4f %8.4f %10.3f %12.3f\n", (unsigned)r->bits, r->bpv, r->code_size, r->r1,
                   r->r1k, r->encode_s, 1e3 * r->score_s / (double)nq);
        }
        printf("  R@1: share of queries whose top-1 from codes is the true top-1; %s: share whose true top-1 is\n"
               "  in the top-%zu from codes; bytes: code size per vector; ms/query: prepare + score all %zu codes\n"
               "  (the exact float search took %.2f s)\n",
               r1k_name, k, nb, exact_s);
    }
    rc = fflush(stdout) == 0 ? 0 : 1;
done:
    tq_free(base);
    tq_free(qs);
    free(true_idx);
    free(true_score);
    free(outlier_channels);
    return rc;
usage:
    fputs("tq: see 'tq bench recall --help'\n", stderr);
    return EXIT_USAGE;
}

/* ------------------------------------------------------------------------ */
/* Files: little-endian fields                                               */

static uint32_t get_u16le(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8; }
static void put_u32le(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static int file_exists(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return errno != ENOENT;
    fclose(f);
    return 1;
}

/* The fingerprint a code file stores for q (docs/format.md §3). 0 on success. */
static int quantizer_fingerprint(const tq_quantizer *q, uint32_t *fp) {
    tq_status s = tq_quantizer_fingerprint(q, fp);
    return s == TQ_OK ? 0 : lib_error(s, "cannot fingerprint the quantizer");
}

/* ------------------------------------------------------------------------ */
/* tq encode                                                                 */

static const char ENCODE_HELP[] =
    "usage: tq encode --data FILE --quantizer Q.tqqz --codes C.tqca [quantizer options] [--n N]\n"
    "\n"
    "Encode the rows of FILE (.fvecs or .npy float32) and save the codes (a TQCA file,\n"
    "docs/format.md). If Q.tqqz does not exist, a quantizer is created from the options below\n"
    "(its dimension taken from the data) and saved there; if it exists, it is loaded and used\n"
    "as is, and any quantizer option is refused (choose a new path to make a new quantizer).\n"
    "Rows are encoded as they are (not normalized). A one-line summary goes to stderr.\n"
    "\n"
    "options:\n"
    "  --data FILE          the vectors to encode\n"
    "  --quantizer FILE     the quantizer (.tqqz): loaded if it exists, else created and saved\n"
    "  --codes FILE         where the codes (.tqca) are written (atomically)\n"
    "  --n N                encode only the first N rows (default: all)\n"
    "  --quiet              no summary on stderr\n"
    "quantizer options (only when the quantizer is created):\n"
    "  --bits B             bits per coordinate, 1..8 (required)\n"
    "  --variant V          mse | prod | qjl | uniform (default mse); qjl takes --bits 1 only\n"
    "  --rotation R         none | dense | hadamard (default hadamard)\n"
    "  --rounds R           Hadamard rounds, 1..8 (default 2)\n"
    "  --qjl K              dense | structured (prod/qjl; default dense)\n"
    "  --norm M             plain | unit | unbiased (mse; default plain)\n"
    "  --uniform M          symmetric | asymmetric (uniform; default symmetric)\n"
    "  --scope S            vector | channel | group (uniform; default vector); channel is\n"
    "                       calibrated on the rows being encoded\n"
    "  --group N            channels per group for --scope group\n"
    "  --outliers K         split off the K channels of largest mean square over the rows\n"
    "  --outlier-bits B     bits of the outlier channels (default: bits + 1)\n"
    "  --seed S             seed of the rotation and QJL projection (default 0)\n"
    "  --threads T          threads (default 0 = all cores)\n";

static int cmd_encode(int argc, char **argv, int first) {
    static const uint32_t no_bits[] = {0};
    options o;
    options_init(&o, no_bits, 0);
    if (parse_options(CMD_ENCODE, argc, argv, first, &o) != 0) goto usage;
    if (o.help) {
        fputs(ENCODE_HELP, stdout);
        return 0;
    }
    if (!o.data || !o.quantizer || !o.codes) {
        msg_error("--data FILE, --quantizer FILE and --codes FILE are required");
        goto usage;
    }
    int exists = file_exists(o.quantizer);
    if (exists && o.qopt[0]) {
        msg_error("%s: quantizer '%s' exists and is used as it is; quantizer options apply only when "
                  "creating one (remove the option, or give a new --quantizer path)",
                  o.qopt, o.quantizer);
        goto usage;
    }
    if (!exists) {
        if (o.nbits != 1) {
            msg_error("--bits B (one value, 1..%u) is required to create quantizer '%s'", (unsigned)TQ_MAX_BITS,
                      o.quantizer);
            goto usage;
        }
        if (check_common(&o) != 0) goto usage;
    }

    float *x = NULL;
    uint8_t *codes = NULL;
    uint32_t *outlier_channels = NULL;
    tq_quantizer *q = NULL;
    size_t n = 0, dim = 0;
    int rc = 1;
    tq_status s;

    if (load_vectors(o.data, o.n_set ? (size_t)o.n : 0, &x, &n, &dim) != 0) return 1;
    if (exists) {
        s = tq_quantizer_load(o.quantizer, &q);
        if (s != TQ_OK) {
            char what[1100];
            snprintf(what, sizeof what, "cannot load quantizer '%s'", o.quantizer);
            lib_error(s, what);
            goto done;
        }
        if (tq_quantizer_dim(q) != dim) {
            msg_error("quantizer '%s' has dimension %zu but the rows of '%s' have %zu", o.quantizer,
                      tq_quantizer_dim(q), o.data, dim);
            goto done;
        }
    } else {
        if (o.outliers) {
            if (o.outliers >= dim) {
                msg_error("--outliers %u must be less than the dimension %zu", (unsigned)o.outliers, dim);
                rc = EXIT_USAGE;
                goto done;
            }
            outlier_channels = malloc(o.outliers * sizeof *outlier_channels);
            if (!outlier_channels) {
                msg_error("out of memory");
                goto done;
            }
            s = tq_select_outliers(x, n, (uint32_t)dim, o.outliers, outlier_channels);
            if (s != TQ_OK) {
                lib_error(s, "cannot select outlier channels");
                goto done;
            }
        }
        if (create_quantizer(&o, (uint32_t)dim, o.bits[0], outlier_channels, &q) != 0) goto done;
        if (calibrate_if_needed(&o, q, x, n) != 0) goto done;
    }
    size_t cs = tq_quantizer_code_size(q);
    codes = alloc_codes(n, cs, "codes");
    if (!codes) goto done;
    s = tq_encode(q, x, n, codes);
    if (s != TQ_OK) {
        lib_error(s, "encode failed");
        goto done;
    }
    if (!exists) {
        s = tq_quantizer_save(q, o.quantizer);
        if (s != TQ_OK) {
            char what[1100];
            snprintf(what, sizeof what, "cannot save quantizer '%s'", o.quantizer);
            lib_error(s, what);
            goto done;
        }
    }
    s = tq_codes_save(q, codes, n, o.codes);
    if (s != TQ_OK) {
        char what[1100];
        snprintf(what, sizeof what, "cannot save codes '%s'", o.codes);
        lib_error(s, what);
        goto done;
    }
    if (!o.quiet)
        fprintf(stderr, "tq: encoded %zu rows of dim %zu into '%s': %zu bytes per vector, %.4f bits per value (%s quantizer '%s')\n",
                n, dim, o.codes, cs, tq_quantizer_bits_per_value(q), exists ? "loaded" : "new", o.quantizer);
    rc = 0;
done:
    tq_free(x);
    free(codes);
    free(outlier_channels);
    tq_quantizer_free(q);
    return rc;
usage:
    fputs("tq: see 'tq encode --help'\n", stderr);
    return EXIT_USAGE;
}

/* ------------------------------------------------------------------------ */
/* tq decode                                                                 */

static const char DECODE_HELP[] =
    "usage: tq decode --quantizer Q.tqqz --codes C.tqca --out FILE\n"
    "\n"
    "Decode the records of C.tqca (which must have been made by Q.tqqz: the code file's\n"
    "fingerprint is checked) and write the vectors as float32: .npy when FILE ends in .npy,\n"
    ".fvecs otherwise. FILE is written to a temporary file and renamed, so a failure never\n"
    "leaves a partial file.\n"
    "\n"
    "options:\n"
    "  --quantizer FILE     the quantizer (.tqqz) that made the codes\n"
    "  --codes FILE         the codes (.tqca)\n"
    "  --out FILE           the decoded vectors (.fvecs, or .npy)\n"
    "  --threads T          threads (default 0 = all cores)\n"
    "  --quiet              no summary on stderr\n";

static int ends_with(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

/* Write n rows of dim floats, little-endian, as .npy (v1.0) or .fvecs. 0 on success. */
static int write_rows(FILE *f, const float *x, size_t n, size_t dim, int npy) {
    uint8_t buf[4];
    if (npy) {
        char dict[128];
        int len = snprintf(dict, sizeof dict, "{'descr': '<f4', 'fortran_order': False, 'shape': (%zu, %zu), }",
                           n, dim);
        size_t total = 10 + (size_t)len + 1; /* magic, version, u16 length, dict, '\n' */
        size_t pad = (64 - total % 64) % 64;
        size_t hlen = (size_t)len + pad + 1;
        uint8_t pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (uint8_t)hlen, (uint8_t)(hlen >> 8)};
        if (fwrite(pre, 1, sizeof pre, f) != sizeof pre || fwrite(dict, 1, (size_t)len, f) != (size_t)len) return -1;
        for (size_t i = 0; i < pad; i++)
            if (fputc(' ', f) == EOF) return -1;
        if (fputc('\n', f) == EOF) return -1;
    }
    for (size_t i = 0; i < n; i++) {
        if (!npy) {
            put_u32le(buf, (uint32_t)dim);
            if (fwrite(buf, 1, 4, f) != 4) return -1;
        }
        for (size_t j = 0; j < dim; j++) {
            uint32_t u;
            memcpy(&u, &x[i * dim + j], 4);
            put_u32le(buf, u);
            if (fwrite(buf, 1, 4, f) != 4) return -1;
        }
    }
    return 0;
}

static int cmd_decode(int argc, char **argv, int first) {
    static const uint32_t no_bits[] = {0};
    options o;
    options_init(&o, no_bits, 0);
    if (parse_options(CMD_DECODE, argc, argv, first, &o) != 0) goto usage;
    if (o.help) {
        fputs(DECODE_HELP, stdout);
        return 0;
    }
    if (!o.quantizer || !o.codes || !o.out) {
        msg_error("--quantizer FILE, --codes FILE and --out FILE are required");
        goto usage;
    }

    tq_quantizer *q = NULL;
    uint8_t *codes = NULL;
    float *x = NULL;
    size_t n = 0;
    char *tmp = NULL;
    FILE *f = NULL;
    int rc = 1;
    char what[2200];
    tq_status s = tq_quantizer_load(o.quantizer, &q);
    if (s != TQ_OK) {
        snprintf(what, sizeof what, "cannot load quantizer '%s'", o.quantizer);
        lib_error(s, what);
        goto done;
    }
    s = tq_codes_load(q, o.codes, &codes, &n);
    if (s != TQ_OK) {
        snprintf(what, sizeof what, "cannot load codes '%s' for quantizer '%s'", o.codes, o.quantizer);
        lib_error(s, what);
        goto done;
    }
    size_t dim = tq_quantizer_dim(q);
    x = alloc_floats(n, dim, "decoded vectors");
    if (!x) goto done;
    s = tq_decode(q, codes, n, x);
    if (s != TQ_OK) {
        lib_error(s, "decode failed");
        goto done;
    }
    size_t tlen = strlen(o.out) + 32;
    tmp = malloc(tlen);
    if (!tmp) {
        msg_error("out of memory");
        goto done;
    }
    /* a temp name left by a killed run with the same pid is skipped, not fatal (as the library's saves do) */
    for (unsigned k = 0; k < 10000 && !f; k++) {
#if !defined(_WIN32)
        snprintf(tmp, tlen, "%s.tmp.%ld.%u", o.out, (long)getpid(), k);
#else
        snprintf(tmp, tlen, "%s.tmp.%u", o.out, k);
#endif
        f = fopen(tmp, "wbx");
        if (!f && errno != EEXIST) break;
    }
    if (!f) {
        msg_error("cannot create '%s': %s", tmp, strerror(errno));
        goto done;
    }
    int werr = write_rows(f, x, n, dim, ends_with(o.out, ".npy"));
#if !defined(_WIN32)
    if (werr == 0 && (fflush(f) != 0 || fsync(fileno(f)) != 0)) werr = -1; /* on disk before the rename */
#endif
    int cerr = fclose(f);
    f = NULL;
    if (werr != 0 || cerr != 0) {
        msg_error("cannot write '%s': %s", tmp, strerror(errno));
        remove(tmp);
        goto done;
    }
    if (rename(tmp, o.out) != 0) {
        msg_error("cannot rename '%s' to '%s': %s", tmp, o.out, strerror(errno));
        remove(tmp);
        goto done;
    }
    if (!o.quiet)
        fprintf(stderr, "tq: decoded %zu rows of dim %zu into '%s'\n", n, dim, o.out);
    rc = 0;
done:
    tq_quantizer_free(q);
    tq_free(codes);
    free(x);
    free(tmp);
    return rc;
usage:
    fputs("tq: see 'tq decode --help'\n", stderr);
    return EXIT_USAGE;
}

/* ------------------------------------------------------------------------ */
/* tq inspect                                                                */

static const char INSPECT_HELP[] =
    "usage: tq inspect FILE [--json]\n"
    "\n"
    "Describe a tq file (docs/format.md):\n"
    "  a quantizer (TQQZ): loaded and checked like any load, then its configuration: dim, bits,\n"
    "    variant, rotation, rounds, qjl, norm, seed, outlier split, uniform settings, code size,\n"
    "    bits per value, and the fingerprint that its code files carry\n"
    "  a code array (TQCA): its header (format, n, code size, fingerprint), after checking the\n"
    "    header CRC, the file's length and the records CRC\n"
    "\n"
    "options:\n"
    "  --json               print one JSON object on stdout instead of text\n"
    "\n"
    "JSON: {\"file\",\"kind\":\"quantizer\",\"format\",\"dim\",\"bits\",\"variant\",\"rotation\",\"rounds\",\"qjl\",\n"
    "\"norm\",\"seed\",\"outliers\",\"outlier_bits\",\"outlier_channels\",\"uniform\",\"scope\",\"group\",\"code_size\",\n"
    "\"bits_per_value\",\"fingerprint\"} or {\"file\",\"kind\":\"codes\",\"format\",\"n\",\"code_size\",\"fingerprint\"}.\n"
    "Values that do not apply are null.\n";

static int inspect_quantizer(const options *o, unsigned major, unsigned minor) {
    tq_quantizer *q = NULL;
    tq_status s = tq_quantizer_load(o->file, &q);
    if (s != TQ_OK) {
        char what[1100];
        snprintf(what, sizeof what, "cannot load quantizer '%s'", o->file);
        return lib_error(s, what);
    }
    tq_config c;
    uint32_t fp = 0;
    if (tq_quantizer_get_config(q, &c) != TQ_OK || quantizer_fingerprint(q, &fp) != 0) {
        tq_quantizer_free(q);
        msg_error("cannot describe quantizer '%s'", o->file);
        return 1;
    }
    int has_qjl = c.variant == TQ_VARIANT_PROD || c.variant == TQ_VARIANT_QJL;
    int uses_rounds = c.rotation == TQ_ROTATION_HADAMARD || (has_qjl && c.qjl == TQ_QJL_STRUCTURED);
    int uni = c.variant == TQ_VARIANT_UNIFORM;
    size_t cs = tq_quantizer_code_size(q);
    double bpv = tq_quantizer_bits_per_value(q);
    if (o->json) {
        FILE *f = stdout;
        fputs("{\"file\":", f);
        json_str(f, o->file);
        fprintf(f, ",\"kind\":\"quantizer\",\"format\":\"%u.%u\",\"dim\":%u,\"bits\":%u,\"variant\":", major, minor,
                (unsigned)c.dim, (unsigned)c.bits);
        json_str(f, name_of(VARIANTS, c.variant));
        fputs(",\"rotation\":", f);
        json_str(f, name_of(ROTATIONS, c.rotation));
        fputs(",\"rounds\":", f);
        if (uses_rounds)
            fprintf(f, "%u", (unsigned)c.rounds);
        else
            fputs("null", f);
        fputs(",\"qjl\":", f);
        json_str(f, has_qjl ? name_of(QJLS, c.qjl) : NULL);
        fputs(",\"norm\":", f);
        json_str(f, c.variant == TQ_VARIANT_MSE ? name_of(NORMS, c.norm) : NULL);
        fprintf(f, ",\"seed\":%llu,\"outliers\":%u,\"outlier_bits\":", (unsigned long long)c.seed,
                (unsigned)c.outlier_count);
        if (c.outlier_count) {
            fprintf(f, "%u,\"outlier_channels\":[", (unsigned)c.outlier_bits);
            for (uint32_t i = 0; i < c.outlier_count; i++)
                fprintf(f, "%s%u", i ? "," : "", (unsigned)c.outlier_channels[i]);
            fputc(']', f);
        } else {
            fputs("null,\"outlier_channels\":null", f);
        }
        fputs(",\"uniform\":", f);
        json_str(f, uni ? name_of(UNIFORM_MODES, c.uniform_mode) : NULL);
        fputs(",\"scope\":", f);
        json_str(f, uni ? name_of(UNIFORM_SCOPES, c.uniform_scope) : NULL);
        fputs(",\"group\":", f);
        if (uni && c.uniform_scope == TQ_UNIFORM_GROUP)
            fprintf(f, "%u", (unsigned)c.group_size);
        else
            fputs("null", f);
        fprintf(f, ",\"code_size\":%zu,\"bits_per_value\":", cs);
        json_num(f, bpv);
        fprintf(f, ",\"fingerprint\":\"0x%08x\"}\n", (unsigned)fp);
    } else {
        printf("%s: tq quantizer (TQQZ %u.%u)\n", o->file, major, minor);
        printf("  dim             %u\n", (unsigned)c.dim);
        printf("  bits            %u\n", (unsigned)c.bits);
        printf("  variant         %s\n", name_of(VARIANTS, c.variant));
        printf("  rotation        %s\n", name_of(ROTATIONS, c.rotation));
        if (uses_rounds) printf("  rounds          %u\n", (unsigned)c.rounds);
        if (has_qjl) printf("  qjl             %s\n", name_of(QJLS, c.qjl));
        if (c.variant == TQ_VARIANT_MSE) printf("  norm            %s\n", name_of(NORMS, c.norm));
        printf("  seed            %llu\n", (unsigned long long)c.seed);
        if (uni) {
            printf("  uniform         %s per %s", name_of(UNIFORM_MODES, c.uniform_mode),
                   name_of(UNIFORM_SCOPES, c.uniform_scope));
            if (c.uniform_scope == TQ_UNIFORM_GROUP) printf(" (groups of %u)", (unsigned)c.group_size);
            putchar('\n');
        }
        if (c.outlier_count) {
            printf("  outliers        %u channels at %u bits:", (unsigned)c.outlier_count, (unsigned)c.outlier_bits);
            for (uint32_t i = 0; i < c.outlier_count && i < 16; i++) printf(" %u", (unsigned)c.outlier_channels[i]);
            printf("%s\n", c.outlier_count > 16 ? " ..." : "");
        } else {
            printf("  outliers        none\n");
        }
        printf("  code size       %zu bytes per vector\n", cs);
        printf("  bits per value  %.4f\n", bpv);
        printf("  fingerprint     0x%08x\n", (unsigned)fp);
    }
    tq_quantizer_free(q);
    return fflush(stdout) == 0 ? 0 : 1;
}

/* A code array: every check that needs no quantizer (tq_codes_inspect), then its header. */
static int inspect_codes(const options *o) {
    tq_codes_info ci;
    tq_status s = tq_codes_inspect(o->file, &ci);
    if (s != TQ_OK) return lib_error(s, "cannot read the code array");
    if (o->json) {
        printf("{\"file\":");
        json_str(stdout, o->file);
        printf(",\"kind\":\"codes\",\"format\":\"%u.%u\",\"n\":%llu,\"code_size\":%u,\"fingerprint\":\"0x%08x\"}\n",
               (unsigned)ci.format_major, (unsigned)ci.format_minor, (unsigned long long)ci.n,
               (unsigned)ci.code_size, (unsigned)ci.fingerprint);
    } else {
        printf("%s: tq code array (TQCA %u.%u)\n", o->file, (unsigned)ci.format_major, (unsigned)ci.format_minor);
        printf("  n               %llu records\n", (unsigned long long)ci.n);
        printf("  code size       %u bytes per vector\n", (unsigned)ci.code_size);
        printf("  fingerprint     0x%08x (of the quantizer that made them)\n", (unsigned)ci.fingerprint);
        printf("  checksums       header and records ok\n");
    }
    return fflush(stdout) == 0 ? 0 : 1;
}

static int cmd_inspect(int argc, char **argv, int first) {
    static const uint32_t no_bits[] = {0};
    options o;
    options_init(&o, no_bits, 0);
    if (parse_options(CMD_INSPECT, argc, argv, first, &o) != 0) goto usage;
    if (o.help) {
        fputs(INSPECT_HELP, stdout);
        return 0;
    }
    if (!o.file) {
        msg_error("a FILE to inspect is required");
        goto usage;
    }
    FILE *f = fopen(o.file, "rb");
    if (!f) {
        msg_error("cannot open '%s': %s", o.file, strerror(errno));
        return 1;
    }
    uint8_t head[8];
    int rc = 1;
    if (fread(head, 1, sizeof head, f) != sizeof head) {
        msg_error("'%s' is not a tq file (shorter than 8 bytes)", o.file);
    } else if (memcmp(head, "TQQZ", 4) == 0) {
        rc = inspect_quantizer(&o, get_u16le(head + 4), get_u16le(head + 6));
    } else if (memcmp(head, "TQCA", 4) == 0) {
        rc = inspect_codes(&o);
    } else {
        msg_error("'%s' is neither a tq quantizer (TQQZ) nor a tq code array (TQCA)", o.file);
    }
    fclose(f);
    return rc;
usage:
    fputs("tq: see 'tq inspect --help'\n", stderr);
    return EXIT_USAGE;
}

/* ------------------------------------------------------------------------ */
/* tq index build | add | info, tq search, tq eval recall                    */

static const char INDEX_HELP[] =
    "usage: tq index build --bits B [options] INPUT OUT.tqi\n"
    "       tq index add INDEX.tqi MORE_INPUT [--threads T]\n"
    "       tq index info INDEX.tqi\n"
    "\n"
    "Build a compressed, training-free vector index from INPUT (.fvecs, .bvecs, .npy\n"
    "float32, or an ann-benchmarks .hdf5: its 'train' set unless FILE.hdf5:DATASET),\n"
    "or add more vectors to a saved one (ids continue from the largest). Files are\n"
    "written atomically: a failed or interrupted run leaves the old file as it was.\n"
    "Prints one JSON line: n, dim, seconds, bytes_per_vector, memory_bytes.\n"
    "\n"
    "build options:\n"
    "  --bits B          bits per coordinate: 1..8, or fractional like 2.5 (an outlier\n"
    "                    split: that fraction of the channels, the ones with the largest\n"
    "                    mean square in the input, gets one bit more)\n"
    "  --variant V       mse | prod (default mse)\n"
    "  --norm M          mse: plain | unit | unbiased (default unbiased: norm correction)\n"
    "  --metric M        ip | l2 | cosine (default ip)\n"
    "  --center C        first | none (default first): encode x - c, c the mean of the\n"
    "                    first rows added (fixed for good, no training); recall rises\n"
    "                    sharply on data whose vectors share a direction\n"
    "  --rerank R        none | float | code (default none): keep float32 vectors, or a\n"
    "                    second code of --rerank-bits (default 8), to rescore the best\n"
    "                    candidates of each search\n"
    "  --rotation R      hadamard | dense | none (default hadamard)\n"
    "  --qjl K           prod: structured | dense (default structured)\n"
    "  --seed S          rotation seed (default 0)\n"
    "  --max-rows N      use only the first N rows of INPUT\n"
    "  --threads T       threads (default: all cores)\n"
    "  --quiet           no progress on stderr\n";

static const char SEARCH_HELP[] =
    "usage: tq search --k K INDEX.tqi QUERIES --out RESULT.ivecs|RESULT.npy [options]\n"
    "\n"
    "Top-K search of every query row (same input kinds as 'tq index build'; an .hdf5\n"
    "without :DATASET reads 'test'). RESULT gets int32 ids, one row per query, best\n"
    "first (-1 where the index holds fewer than K vectors). Prints one JSON line:\n"
    "queries, k, seconds (search only), qps, load_seconds.\n"
    "\n"
    "options:\n"
    "  --shortlist N     candidates of the lookup-table scan rescored exactly\n"
    "                    (default max(2K, K+32))\n"
    "  --rerank-depth N  candidates rescored by the rerank data (default max(4K, 64))\n"
    "  --scores FILE     also write the scores (.fvecs or .npy float32)\n"
    "  --max-queries N   use only the first N query rows\n"
    "  --load            read the index into memory (default: memory-map it)\n"
    "  --threads T       threads (default: all cores)\n";

static const char EVAL_HELP[] =
    "usage: tq eval recall --gt GROUNDTRUTH RESULT\n"
    "\n"
    "Compare search results (int ids, one row per query, best first: .ivecs, .npy)\n"
    "with exact ground truth (.ivecs, .npy, or an ann-benchmarks .hdf5: 'neighbors').\n"
    "Prints JSON: recall_1_at_k for k = 1, 2, 4, ... up to RESULT's width (the\n"
    "fraction of queries whose true nearest neighbour is among the first k results)\n"
    "and recall_10_at_10 (mean overlap of the first 10 results with the true 10).\n";

static const name_value INDEX_METRICS[] = {
    {"ip", TQ_INDEX_IP}, {"l2", TQ_INDEX_L2}, {"cosine", TQ_INDEX_COSINE}, {NULL, 0}};
static const name_value CENTERS[] = {{"none", TQ_CENTER_NONE}, {"first", TQ_CENTER_FIRST}, {NULL, 0}};
static const name_value RERANKS[] = {
    {"none", TQ_RERANK_NONE}, {"float", TQ_RERANK_FLOAT}, {"code", TQ_RERANK_CODE}, {NULL, 0}};

/* "--opt value" or "--opt=value" at argv[*i]; returns the value or NULL (message given). */
static const char *opt_value(int argc, char **argv, int *i, const char *name) {
    const char *a = argv[*i];
    size_t len = strlen(name);
    if (strncmp(a, name, len) == 0 && a[len] == '=') return a + len + 1;
    if (*i + 1 < argc) return argv[++*i];
    msg_error("%s needs a value", name);
    return NULL;
}

static int opt_is(const char *a, const char *name) {
    size_t len = strlen(name);
    return strncmp(a, name, len) == 0 && (a[len] == '\0' || a[len] == '=');
}

static int is_hdf5_without_dataset(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    unsigned char sig[8] = {0};
    size_t got = fread(sig, 1, 8, f);
    fclose(f);
    return got == 8 && memcmp(sig, "\x89HDF\r\n\x1a\n", 8) == 0;
}

static void index_json(const tq_index *ix, double seconds, size_t added) {
    tq_index_memory mem;
    memset(&mem, 0, sizeof mem);
    if (tq_index_memory_usage(ix, &mem) != TQ_OK) memset(&mem, 0, sizeof mem);
    size_t n = tq_index_size(ix);
    printf("{\"n\": %zu, \"dim\": %zu, \"added\": %zu, \"seconds\": ", n, tq_index_dim(ix), added);
    json_num(stdout, seconds);
    printf(", \"bytes_per_vector\": ");
    json_num(stdout, n ? (double)(mem.codes + mem.rerank) / (double)n : 0.0);
    printf(", \"bits_per_value\": ");
    json_num(stdout, tq_quantizer_bits_per_value(tq_index_quantizer(ix)));
    printf(", \"memory_bytes\": %llu, \"kernel\": ", (unsigned long long)mem.total);
    json_str(stdout, tq_kernel_name());
    printf("}\n");
}

/* Add rows in slices with a progress bar; 0 on success. */
static int add_with_progress(tq_index *ix, const float *x, size_t n, int quiet, const char *what) {
    progress pr;
    progress_start(&pr, !quiet && n >= 20000 && stderr_is_tty(), what, n); /* silent unless a terminal */
    const size_t slice = 16384; /* a multiple of 32: slices fill whole blocks of the scan layout */
    size_t dim = tq_index_dim(ix);
    for (size_t i = 0; i < n; i += slice) {
        size_t m = n - i < slice ? n - i : slice;
        tq_status s = tq_index_add(ix, x + i * dim, m, NULL, NULL);
        if (s != TQ_OK) {
            progress_end(&pr);
            char w[128];
            snprintf(w, sizeof w, "cannot add rows %zu..%zu", i, i + m - 1);
            return lib_error(s, w);
        }
        progress_step(&pr, i + m);
    }
    progress_end(&pr);
    return 0;
}

static int set_threads_opt(const char *val) {
    uint64_t v;
    if (parse_u64("--threads", val, 0, 256, &v) != 0) return -1;
    if (tq_set_threads((uint32_t)v) != TQ_OK) {
        msg_error("--threads: %s", tq_last_error());
        return -1;
    }
    return 0;
}

static int cmd_index_build(int argc, char **argv, int first) {
    const char *pos[2] = {NULL, NULL};
    int npos = 0, quiet = 0, variant = TQ_VARIANT_MSE, norm = TQ_NORM_UNBIASED, norm_set = 0, metric = TQ_INDEX_IP;
    int rerank = TQ_RERANK_NONE, rotation = TQ_ROTATION_HADAMARD, qjl = TQ_QJL_STRUCTURED, center = TQ_CENTER_FIRST;
    double bits = 0.0;
    uint64_t seed = 0, max_rows = 0, rbits = 8;
    for (int i = first; i < argc; i++) {
        const char *a = argv[i], *v = NULL;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            fputs(INDEX_HELP, stdout);
            return 0;
        }
        if (strcmp(a, "--quiet") == 0 || strcmp(a, "-q") == 0) {
            quiet = 1;
        } else if (opt_is(a, "--bits")) {
            if (!(v = opt_value(argc, argv, &i, "--bits"))) return EXIT_USAGE;
            char *end = NULL;
            bits = strtod(v, &end);
            if (!end || *end || !(bits >= 1.0 && bits <= TQ_MAX_BITS)) {
                msg_error("--bits: expected a number in 1..%u (fractional allowed), got '%s'", TQ_MAX_BITS, v);
                return EXIT_USAGE;
            }
        } else if (opt_is(a, "--variant")) {
            if (!(v = opt_value(argc, argv, &i, "--variant")) || parse_name(VARIANTS, "--variant", v, &variant))
                return EXIT_USAGE;
            if (variant != TQ_VARIANT_MSE && variant != TQ_VARIANT_PROD) {
                msg_error("--variant: an index uses mse or prod");
                return EXIT_USAGE;
            }
        } else if (opt_is(a, "--norm")) {
            if (!(v = opt_value(argc, argv, &i, "--norm")) || parse_name(NORMS, "--norm", v, &norm)) return EXIT_USAGE;
            norm_set = 1;
        } else if (opt_is(a, "--metric")) {
            if (!(v = opt_value(argc, argv, &i, "--metric")) || parse_name(INDEX_METRICS, "--metric", v, &metric))
                return EXIT_USAGE;
        } else if (opt_is(a, "--center")) {
            if (!(v = opt_value(argc, argv, &i, "--center")) || parse_name(CENTERS, "--center", v, &center))
                return EXIT_USAGE;
        } else if (opt_is(a, "--rerank")) {
            if (!(v = opt_value(argc, argv, &i, "--rerank")) || parse_name(RERANKS, "--rerank", v, &rerank))
                return EXIT_USAGE;
        } else if (opt_is(a, "--rerank-bits")) {
            if (!(v = opt_value(argc, argv, &i, "--rerank-bits")) || parse_u64("--rerank-bits", v, 1, 8, &rbits))
                return EXIT_USAGE;
        } else if (opt_is(a, "--rotation")) {
            if (!(v = opt_value(argc, argv, &i, "--rotation")) || parse_name(ROTATIONS, "--rotation", v, &rotation))
                return EXIT_USAGE;
        } else if (opt_is(a, "--qjl")) {
            if (!(v = opt_value(argc, argv, &i, "--qjl")) || parse_name(QJLS, "--qjl", v, &qjl)) return EXIT_USAGE;
        } else if (opt_is(a, "--seed")) {
            if (!(v = opt_value(argc, argv, &i, "--seed")) || parse_u64("--seed", v, 0, UINT64_MAX, &seed))
                return EXIT_USAGE;
        } else if (opt_is(a, "--max-rows")) {
            if (!(v = opt_value(argc, argv, &i, "--max-rows")) ||
                parse_u64("--max-rows", v, 1, UINT64_MAX, &max_rows))
                return EXIT_USAGE;
        } else if (opt_is(a, "--threads")) {
            if (!(v = opt_value(argc, argv, &i, "--threads")) || set_threads_opt(v)) return EXIT_USAGE;
        } else if (strncmp(a, "--", 2) == 0) {
            msg_error("unknown option '%s' (see 'tq index --help')", a);
            return EXIT_USAGE;
        } else if (npos < 2) {
            pos[npos++] = a;
        } else {
            msg_error("unexpected argument '%s'", a);
            return EXIT_USAGE;
        }
    }
    if (bits == 0.0 || npos != 2) {
        msg_error(bits == 0.0 ? "--bits B is required" : "need INPUT and OUT.tqi");
        fputs("tq: see 'tq index --help'\n", stderr);
        return EXIT_USAGE;
    }
    if (norm_set && variant != TQ_VARIANT_MSE && norm != TQ_NORM_PLAIN) {
        msg_error("--norm %s applies to --variant mse only", name_of(NORMS, norm));
        return EXIT_USAGE;
    }
    if (variant == TQ_VARIANT_PROD) norm = TQ_NORM_PLAIN;
    float *x = NULL;
    size_t n = 0, dim = 0;
    if (load_vectors(pos[0], (size_t)max_rows, &x, &n, &dim) != 0) return 1;
    uint32_t *outl = NULL;
    int rc = 1;
    tq_index *ix = NULL;
    tq_index_config cfg;
    tq_index_config_init(&cfg, (uint32_t)dim, 1);
    cfg.quant.variant = (tq_variant)variant;
    cfg.quant.norm = (tq_norm_mode)norm;
    cfg.quant.rotation = (tq_rotation_kind)rotation;
    cfg.quant.qjl = (tq_qjl_kind)qjl;
    cfg.quant.seed = seed;
    cfg.metric = (tq_index_metric)metric;
    cfg.rerank = (tq_rerank_kind)rerank;
    cfg.rerank_bits = (uint32_t)rbits;
    cfg.center = (tq_center_mode)center;
    /* fractional bits: the library's split (round(frac * dim) channels at one bit more), those channels picked
     * from the data */
    tq_status bs = tq_config_set_bits(&cfg.quant, bits);
    if (bs != TQ_OK) {
        lib_error(bs, "--bits");
        goto done;
    }
    if (cfg.quant.outlier_count) {
        uint32_t k = cfg.quant.outlier_count;
        outl = malloc(k * sizeof *outl);
        if (!outl) {
            msg_error("out of memory");
            goto done;
        }
        tq_status s = tq_select_outliers(x, n, (uint32_t)dim, k, outl);
        if (s != TQ_OK) {
            lib_error(s, "cannot pick outlier channels");
            goto done;
        }
        cfg.quant.outlier_channels = outl;
    }
    double t0 = now_s();
    tq_status s = tq_index_create(&cfg, &ix);
    if (s != TQ_OK) {
        lib_error(s, "cannot create the index");
        goto done;
    }
    if (add_with_progress(ix, x, n, quiet, "indexing") != 0) goto done;
    double secs = now_s() - t0;
    s = tq_index_save(ix, pos[1]);
    if (s != TQ_OK) {
        char w[1100];
        snprintf(w, sizeof w, "cannot save '%s'", pos[1]);
        lib_error(s, w);
        goto done;
    }
    index_json(ix, secs, n);
    rc = 0;
done:
    tq_index_free(ix);
    free(outl);
    tq_free(x);
    return rc;
}

static int open_index(const char *path, int mmap_it, tq_index **ix) {
    tq_status s = mmap_it ? tq_index_open_mmap(path, ix) : tq_index_load(path, ix);
    if (s != TQ_OK) {
        char w[1100];
        snprintf(w, sizeof w, "cannot open index '%s'", path);
        return lib_error(s, w);
    }
    return 0;
}

static int cmd_index_add(int argc, char **argv, int first) {
    const char *pos[2] = {NULL, NULL};
    int npos = 0, quiet = 0;
    for (int i = first; i < argc; i++) {
        const char *a = argv[i], *v;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            fputs(INDEX_HELP, stdout);
            return 0;
        }
        if (strcmp(a, "--quiet") == 0 || strcmp(a, "-q") == 0) {
            quiet = 1;
        } else if (opt_is(a, "--threads")) {
            if (!(v = opt_value(argc, argv, &i, "--threads")) || set_threads_opt(v)) return EXIT_USAGE;
        } else if (strncmp(a, "--", 2) == 0 || npos == 2) {
            msg_error("unexpected argument '%s' (see 'tq index --help')", a);
            return EXIT_USAGE;
        } else {
            pos[npos++] = a;
        }
    }
    if (npos != 2) {
        msg_error("need INDEX.tqi and MORE_INPUT");
        return EXIT_USAGE;
    }
    tq_index *ix = NULL;
    if (open_index(pos[0], 0, &ix) != 0) return 1;
    float *x = NULL;
    size_t n = 0, dim = 0;
    int rc = 1;
    if (load_vectors(pos[1], 0, &x, &n, &dim) != 0) goto done;
    if (dim != tq_index_dim(ix)) {
        msg_error("'%s' has %zu-dimensional rows but the index holds %zu", pos[1], dim, tq_index_dim(ix));
        goto done;
    }
    double t0 = now_s();
    if (add_with_progress(ix, x, n, quiet, "adding") != 0) goto done;
    double secs = now_s() - t0;
    tq_status s = tq_index_save(ix, pos[0]);
    if (s != TQ_OK) {
        char w[1100];
        snprintf(w, sizeof w, "cannot save '%s' (the old file is unchanged)", pos[0]);
        lib_error(s, w);
        goto done;
    }
    index_json(ix, secs, n);
    rc = 0;
done:
    tq_free(x);
    tq_index_free(ix);
    return rc;
}

static int cmd_index_info(int argc, char **argv, int first) {
    if (argc - first != 1 || strncmp(argv[first], "--", 2) == 0) {
        if (argc - first == 1 && (strcmp(argv[first], "--help") == 0 || strcmp(argv[first], "-h") == 0)) {
            fputs(INDEX_HELP, stdout);
            return 0;
        }
        msg_error("usage: tq index info INDEX.tqi");
        return EXIT_USAGE;
    }
    tq_index *ix = NULL;
    if (open_index(argv[first], 1, &ix) != 0) return 1;
    tq_index_config c;
    if (tq_index_get_config(ix, &c) != TQ_OK) {
        tq_index_free(ix);
        return lib_error(TQ_ERR_STATE, "cannot read the config");
    }
    tq_index_memory mem;
    memset(&mem, 0, sizeof mem);
    if (tq_index_memory_usage(ix, &mem) != TQ_OK) memset(&mem, 0, sizeof mem);
    printf("{\"n\": %zu, \"dim\": %u, \"bits\": %u, \"variant\": ", tq_index_size(ix), c.quant.dim, c.quant.bits);
    json_str(stdout, name_of(VARIANTS, c.quant.variant));
    printf(", \"norm\": ");
    json_str(stdout, name_of(NORMS, c.quant.norm));
    printf(", \"rotation\": ");
    json_str(stdout, name_of(ROTATIONS, c.quant.rotation));
    printf(", \"outlier_channels\": %u, \"outlier_bits\": %u, \"metric\": ", c.quant.outlier_count,
           c.quant.outlier_bits);
    json_str(stdout, name_of(INDEX_METRICS, c.metric));
    printf(", \"center\": ");
    json_str(stdout, c.center == TQ_CENTER_GIVEN ? "given" : name_of(CENTERS, c.center));
    printf(", \"rerank\": ");
    json_str(stdout, name_of(RERANKS, c.rerank));
    printf(", \"rerank_bits\": %u, \"bits_per_value\": ", c.rerank_bits);
    json_num(stdout, tq_quantizer_bits_per_value(tq_index_quantizer(ix)));
    printf(", \"memory\": {\"codes\": %llu, \"rerank\": %llu, \"ids\": %llu, \"total\": %llu}}\n",
           (unsigned long long)mem.codes, (unsigned long long)mem.rerank, (unsigned long long)mem.ids,
           (unsigned long long)mem.total);
    tq_index_free(ix);
    return 0;
}

static int cmd_index(int argc, char **argv, int first) {
    if (argc <= first || strcmp(argv[first], "--help") == 0 || strcmp(argv[first], "-h") == 0) {
        fputs(INDEX_HELP, argc <= first ? stderr : stdout);
        return argc <= first ? EXIT_USAGE : 0;
    }
    if (strcmp(argv[first], "build") == 0) return cmd_index_build(argc, argv, first + 1);
    if (strcmp(argv[first], "add") == 0) return cmd_index_add(argc, argv, first + 1);
    if (strcmp(argv[first], "info") == 0) return cmd_index_info(argc, argv, first + 1);
    msg_error("unknown index command '%s' (expected build, add or info)", argv[first]);
    return EXIT_USAGE;
}

static int write_scores(const char *path, const float *s, size_t n, size_t k) {
    FILE *f = fopen(path, "wb");
    if (!f) {
        msg_error("cannot write '%s'", path);
        return 1;
    }
    int rc = write_rows(f, s, n, k, ends_with(path, ".npy"));
    if (fclose(f) != 0) rc = 1;
    if (rc) msg_error("cannot write '%s'", path);
    return rc;
}

static int cmd_search(int argc, char **argv, int first) {
    const char *pos[2] = {NULL, NULL}, *out = NULL, *scores_path = NULL;
    int npos = 0, mmap_it = 1;
    uint64_t k = 0, shortlist = 0, depth = 0, maxq = 0;
    for (int i = first; i < argc; i++) {
        const char *a = argv[i], *v;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            fputs(SEARCH_HELP, stdout);
            return 0;
        }
        if (strcmp(a, "--load") == 0) {
            mmap_it = 0;
        } else if (opt_is(a, "--k")) {
            if (!(v = opt_value(argc, argv, &i, "--k")) || parse_u64("--k", v, 1, 100000, &k)) return EXIT_USAGE;
        } else if (opt_is(a, "--out")) {
            if (!(out = opt_value(argc, argv, &i, "--out"))) return EXIT_USAGE;
        } else if (opt_is(a, "--scores")) {
            if (!(scores_path = opt_value(argc, argv, &i, "--scores"))) return EXIT_USAGE;
        } else if (opt_is(a, "--shortlist")) {
            if (!(v = opt_value(argc, argv, &i, "--shortlist")) ||
                parse_u64("--shortlist", v, 1, UINT32_MAX, &shortlist))
                return EXIT_USAGE;
        } else if (opt_is(a, "--rerank-depth")) {
            if (!(v = opt_value(argc, argv, &i, "--rerank-depth")) ||
                parse_u64("--rerank-depth", v, 1, UINT32_MAX, &depth))
                return EXIT_USAGE;
        } else if (opt_is(a, "--max-queries")) {
            if (!(v = opt_value(argc, argv, &i, "--max-queries")) ||
                parse_u64("--max-queries", v, 1, UINT64_MAX, &maxq))
                return EXIT_USAGE;
        } else if (opt_is(a, "--threads")) {
            if (!(v = opt_value(argc, argv, &i, "--threads")) || set_threads_opt(v)) return EXIT_USAGE;
        } else if (strncmp(a, "--", 2) == 0 || npos == 2) {
            msg_error("unexpected argument '%s' (see 'tq search --help')", a);
            return EXIT_USAGE;
        } else {
            pos[npos++] = a;
        }
    }
    if (!k || !out || npos != 2) {
        msg_error("need --k K, INDEX.tqi, QUERIES and --out RESULT");
        fputs("tq: see 'tq search --help'\n", stderr);
        return EXIT_USAGE;
    }
    char qpath[4200];
    snprintf(qpath, sizeof qpath, "%s%s", pos[1], is_hdf5_without_dataset(pos[1]) ? ":test" : "");
    double t0 = now_s();
    tq_index *ix = NULL;
    if (open_index(pos[0], mmap_it, &ix) != 0) return 1;
    double load_s = now_s() - t0;
    float *qs = NULL, *sc = NULL;
    int64_t *ids = NULL;
    size_t nq = 0, dim = 0;
    int rc = 1;
    if (load_vectors(qpath, (size_t)maxq, &qs, &nq, &dim) != 0) goto done;
    if (dim != tq_index_dim(ix)) {
        msg_error("queries are %zu-dimensional but the index holds %zu", dim, tq_index_dim(ix));
        goto done;
    }
    if (nq > SIZE_MAX / sizeof(int64_t) / k) {
        msg_error("%zu queries x k %llu is too large", nq, (unsigned long long)k);
        goto done;
    }
    ids = malloc(nq * k * sizeof *ids + 1);
    sc = malloc(nq * k * sizeof *sc + 1);
    if (!ids || !sc) {
        msg_error("out of memory for %zu x %llu results", nq, (unsigned long long)k);
        goto done;
    }
    tq_search_params p = {(uint32_t)shortlist, (uint32_t)depth};
    double t1 = now_s();
    tq_status s = tq_index_search(ix, qs, nq, (size_t)k, &p, ids, sc);
    double secs = now_s() - t1;
    if (s != TQ_OK) {
        lib_error(s, "search failed");
        goto done;
    }
    s = tq_write_ids(out, ids, nq, (size_t)k);
    if (s != TQ_OK) {
        char w[1100];
        snprintf(w, sizeof w, "cannot write '%s'", out);
        lib_error(s, w);
        goto done;
    }
    if (scores_path && write_scores(scores_path, sc, nq, (size_t)k) != 0) goto done;
    printf("{\"queries\": %zu, \"k\": %llu, \"seconds\": ", nq, (unsigned long long)k);
    json_num(stdout, secs);
    printf(", \"qps\": ");
    json_num(stdout, secs > 0 ? (double)nq / secs : 0.0);
    printf(", \"load_seconds\": ");
    json_num(stdout, load_s);
    printf(", \"threads\": %u, \"kernel\": ", tq_get_threads());
    json_str(stdout, tq_kernel_name());
    printf("}\n");
    rc = 0;
done:
    tq_free(qs);
    free(ids);
    free(sc);
    tq_index_free(ix);
    return rc;
}

static int read_ids_file(const char *path, int64_t **d, size_t *n, size_t *cols) {
    tq_status s = tq_read_ids(path, 0, d, n, cols);
    if (s != TQ_OK) {
        char w[1100];
        snprintf(w, sizeof w, "cannot read ids from '%s'", path);
        return lib_error(s, w);
    }
    return 0;
}

static int cmd_eval(int argc, char **argv, int first) {
    if (argc <= first || strcmp(argv[first], "--help") == 0 || strcmp(argv[first], "-h") == 0 ||
        strcmp(argv[first], "recall") != 0) {
        if (argc > first && (strcmp(argv[first], "--help") == 0 || strcmp(argv[first], "-h") == 0)) {
            fputs(EVAL_HELP, stdout);
            return 0;
        }
        msg_error("usage: tq eval recall --gt GROUNDTRUTH RESULT");
        return EXIT_USAGE;
    }
    const char *gt_path = NULL, *res_path = NULL;
    for (int i = first + 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            fputs(EVAL_HELP, stdout);
            return 0;
        }
        if (opt_is(a, "--gt")) {
            if (!(gt_path = opt_value(argc, argv, &i, "--gt"))) return EXIT_USAGE;
        } else if (strncmp(a, "--", 2) == 0 || res_path) {
            msg_error("unexpected argument '%s' (see 'tq eval recall --help')", a);
            return EXIT_USAGE;
        } else {
            res_path = a;
        }
    }
    if (!gt_path || !res_path) {
        msg_error("need --gt GROUNDTRUTH and RESULT");
        return EXIT_USAGE;
    }
    int64_t *gt = NULL, *res = NULL;
    size_t ng = 0, kg = 0, nr = 0, kr = 0;
    int rc = 1;
    if (read_ids_file(gt_path, &gt, &ng, &kg) != 0) goto done;
    if (read_ids_file(res_path, &res, &nr, &kr) != 0) goto done;
    if (nr == 0 || kr == 0 || kg == 0) {
        msg_error("empty ground truth or result");
        goto done;
    }
    if (ng < nr) {
        msg_error("the ground truth has %zu rows but the result has %zu (one row per query)", ng, nr);
        goto done;
    }
    printf("{\"queries\": %zu, \"k\": %zu, \"recall_1_at_k\": {", nr, kr);
    for (size_t k = 1, first_k = 1; k <= kr; k *= 2, first_k = 0) {
        size_t hit = 0;
        for (size_t i = 0; i < nr; i++)
            for (size_t r = 0; r < k; r++)
                if (res[i * kr + r] == gt[i * kg]) {
                    hit++;
                    break;
                }
        printf("%s\"%zu\": ", first_k ? "" : ", ", k);
        json_num(stdout, (double)hit / (double)nr);
    }
    printf("}, \"recall_10_at_10\": ");
    if (kr >= 10 && kg >= 10) {
        size_t hit = 0;
        for (size_t i = 0; i < nr; i++)
            for (size_t r = 0; r < 10; r++)
                for (size_t t = 0; t < 10; t++)
                    if (res[i * kr + r] == gt[i * kg + t] && res[i * kr + r] >= 0) {
                        hit++;
                        break;
                    }
        json_num(stdout, (double)hit / (double)(10 * nr));
    } else {
        printf("null");
    }
    printf("}\n");
    rc = 0;
done:
    tq_free(gt);
    tq_free(res);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* tq plan                                                                   */

static const char PLAN_HELP[] =
    "usage: tq plan --layers L --kv-heads H --head-dim D --context T --k-bits KB --v-bits VB [options]\n"
    "\n"
    "The memory of a model's KV cache at fp16 and in tq's compressed cache (tq_kv),\n"
    "every byte of metadata counted; nothing is allocated but one empty cache.\n"
    "  fp16    2*L*H*D*T*B*2 bytes: K and V, 2 bytes a value\n"
    "  tq      codes: tq_kv_token_bytes (packed indices, signs and per-token factors of\n"
    "          all H heads, K and V) for each of the T - min(S+W,T) compressed tokens,\n"
    "          per layer and sequence; plus the exact sink and window tokens:\n"
    "          min(S+W,T)*H*D*4*2 bytes per layer and sequence (float32); plus the\n"
    "          key centers (H*D*4 bytes per layer) and the quantizers (rotations,\n"
    "          codebooks, QJL matrices, outlier channel lists) of every layer. With an outlier\n"
    "          split (fractional bits) the cache picks each head's outlier channels from\n"
    "          the prompt and builds quantizers per head: counted H times per layer (an\n"
    "          upper bound: a side without a split shares one). Without a split one set\n"
    "          per layer is shared by the heads and counted once.\n"
    "Also printed: bytes per token per layer and bits per value (factors included:\n"
    "bytes per head * 8 / D) for K and V, the compression ratio fp16/tq, and the\n"
    "context (tokens per sequence) tq fits in the memory of the fp16 cache.\n"
    "\n"
    "required:\n"
    "  --layers L        attention layers\n"
    "  --kv-heads H      KV heads per layer, 1..4096 (with GQA the KV heads, not the query heads)\n"
    "  --head-dim D      channels per head\n"
    "  --context T       tokens per sequence\n"
    "  --k-bits KB       bits per key value: 1..8, or fractional like 2.5 or 3.5 (an outlier\n"
    "                    split: round(0.5*D) channels at 3 bits and the rest at 2 for 2.5)\n"
    "  --v-bits VB       bits per value entry, as --k-bits\n"
    "options:\n"
    "  --batch B         sequences (default 1)\n"
    "  --k-variant V     mse | prod | qjl (default mse; qjl stores 1 bit: --k-bits 1)\n"
    "  --v-variant V     mse | prod | qjl (default mse)\n"
    "  --factors F       f16 | f32: precision of the per-token factors (default f16)\n"
    "  --window W        the W most recent tokens stay exact, float32 (default 0)\n"
    "  --sinks S         the first S tokens stay exact, float32: attention sinks (default 4, as tq_kv)\n"
    "  --json            one JSON object: every figure, bytes as integers\n"
    "\n"
    "example (SmolLM2-135M):\n"
    "  tq plan --layers 30 --kv-heads 3 --head-dim 64 --context 8192 --k-bits 3.5 --v-bits 3\n";

static const name_value KV_VARIANTS[] = {
    {"mse", TQ_VARIANT_MSE}, {"prod", TQ_VARIANT_PROD}, {"qjl", TQ_VARIANT_QJL}, {NULL, 0}};
static const name_value KV_FACTORS[] = {{"f16", TQ_KV_FACTOR_F16}, {"f32", TQ_KV_FACTOR_F32}, {NULL, 0}};

/* Byte counts stay below 2^63 (they are printed as JSON integers and signed differences). */
#define PLAN_MAX_BYTES ((uint64_t)INT64_MAX)

/* *acc = *acc * b; -1 (and *acc untouched) when the product passes PLAN_MAX_BYTES. */
static int plan_mul(uint64_t *acc, uint64_t b) {
    if (b != 0 && *acc > PLAN_MAX_BYTES / b) return -1;
    *acc *= b;
    return 0;
}

static int plan_add(uint64_t *acc, uint64_t b) {
    if (b > PLAN_MAX_BYTES - *acc) return -1;
    *acc += b;
    return 0;
}

/* "1.50 MiB": binary units, 3 significant-ish digits; plain bytes below 1 KiB. */
static void fmt_bytes(char *buf, size_t cap, uint64_t v) {
    static const char *units[] = {"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
    if (v < 1024) {
        snprintf(buf, cap, "%llu B", (unsigned long long)v);
        return;
    }
    double x = (double)v / 1024.0;
    int u = 0;
    while (x >= 1024.0 && u < 5) {
        x /= 1024.0;
        u++;
    }
    snprintf(buf, cap, "%.2f %s", x, units[u]);
}

static int parse_kv_bits(const char *opt, const char *v, double *out) {
    char *end = NULL;
    double b = strtod(v, &end);
    if (!*v || !end || *end || !(b >= 1.0 && b <= TQ_MAX_BITS)) {
        msg_error("%s: expected a number in 1..%u (fractional allowed, like 2.5), got '%s'", opt, TQ_MAX_BITS, v);
        return -1;
    }
    *out = b;
    return 0;
}

/* The key or value side of the plan's config; -1 (message given) when the bits and variant do not fit D. */
static int plan_side(const char *opt, const char *vopt, double bits, int variant, tq_config *c) {
    if (tq_config_set_bits(c, bits) != TQ_OK) {
        msg_error("%s: %s", opt, tq_last_error());
        return -1;
    }
    if (variant == TQ_VARIANT_QJL && bits != 1.0) {
        msg_error("%s qjl stores one sign bit per coordinate: use %s 1 (got %g)", vopt, opt, bits);
        return -1;
    }
    c->variant = (tq_variant)variant;
    if (variant != TQ_VARIANT_MSE) c->norm = TQ_NORM_PLAIN; /* prod and qjl store plain norms */
    return 0;
}

static int cmd_plan(int argc, char **argv, int first) {
    uint64_t layers = 0, heads = 0, dim = 0, context = 0, batch = 1, window = 0, sinks = 4;
    double kbits = 0.0, vbits = 0.0;
    int kvar = TQ_VARIANT_MSE, vvar = TQ_VARIANT_MSE, factors = TQ_KV_FACTOR_F16, json = 0;
    for (int i = first; i < argc; i++) {
        const char *a = argv[i], *v = NULL;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            fputs(PLAN_HELP, stdout);
            return 0;
        }
        if (strcmp(a, "--json") == 0) {
            json = 1;
        } else if (opt_is(a, "--layers")) {
            if (!(v = opt_value(argc, argv, &i, "--layers")) || parse_u64("--layers", v, 1, UINT32_MAX, &layers))
                return EXIT_USAGE;
        } else if (opt_is(a, "--kv-heads")) {
            if (!(v = opt_value(argc, argv, &i, "--kv-heads")) || parse_u64("--kv-heads", v, 1, 4096, &heads))
                return EXIT_USAGE;
        } else if (opt_is(a, "--head-dim")) {
            if (!(v = opt_value(argc, argv, &i, "--head-dim")) || parse_u64("--head-dim", v, 1, TQ_MAX_DIM, &dim))
                return EXIT_USAGE;
        } else if (opt_is(a, "--context")) {
            if (!(v = opt_value(argc, argv, &i, "--context")) ||
                parse_u64("--context", v, 1, PLAN_MAX_BYTES, &context))
                return EXIT_USAGE;
        } else if (opt_is(a, "--batch")) {
            if (!(v = opt_value(argc, argv, &i, "--batch")) || parse_u64("--batch", v, 1, UINT32_MAX, &batch))
                return EXIT_USAGE;
        } else if (opt_is(a, "--sinks")) {
            if (!(v = opt_value(argc, argv, &i, "--sinks")) || parse_u64("--sinks", v, 0, UINT32_MAX, &sinks))
                return EXIT_USAGE;
        } else if (opt_is(a, "--window")) {
            if (!(v = opt_value(argc, argv, &i, "--window")) || parse_u64("--window", v, 0, UINT32_MAX, &window))
                return EXIT_USAGE;
        } else if (opt_is(a, "--k-bits")) {
            if (!(v = opt_value(argc, argv, &i, "--k-bits")) || parse_kv_bits("--k-bits", v, &kbits))
                return EXIT_USAGE;
        } else if (opt_is(a, "--v-bits")) {
            if (!(v = opt_value(argc, argv, &i, "--v-bits")) || parse_kv_bits("--v-bits", v, &vbits))
                return EXIT_USAGE;
        } else if (opt_is(a, "--k-variant")) {
            if (!(v = opt_value(argc, argv, &i, "--k-variant")) || parse_name(KV_VARIANTS, "--k-variant", v, &kvar))
                return EXIT_USAGE;
        } else if (opt_is(a, "--v-variant")) {
            if (!(v = opt_value(argc, argv, &i, "--v-variant")) || parse_name(KV_VARIANTS, "--v-variant", v, &vvar))
                return EXIT_USAGE;
        } else if (opt_is(a, "--factors")) {
            if (!(v = opt_value(argc, argv, &i, "--factors")) || parse_name(KV_FACTORS, "--factors", v, &factors))
                return EXIT_USAGE;
        } else if (strncmp(a, "--", 2) == 0) {
            msg_error("unknown option '%s' (see 'tq plan --help')", a);
            return EXIT_USAGE;
        } else {
            msg_error("unexpected argument '%s' (see 'tq plan --help')", a);
            return EXIT_USAGE;
        }
    }
    const char *missing = !layers ? "--layers L" : !heads ? "--kv-heads H" : !dim ? "--head-dim D"
                        : !context ? "--context T" : kbits == 0.0 ? "--k-bits KB" : vbits == 0.0 ? "--v-bits VB" : NULL;
    if (missing) {
        msg_error("%s is required (see 'tq plan --help')", missing);
        return EXIT_USAGE;
    }

    tq_kv_config cfg;
    tq_kv_config_init(&cfg, (uint32_t)heads, (uint32_t)dim, kbits, vbits);
    if (plan_side("--k-bits", "--k-variant", kbits, kvar, &cfg.key) ||
        plan_side("--v-bits", "--v-variant", vbits, vvar, &cfg.value))
        return EXIT_USAGE;
    cfg.factors = (tq_kv_factor)factors;
    cfg.window = (uint32_t)window;
    cfg.sinks = (uint32_t)sinks;
    size_t tok_bytes = 0, kb = 0, vb = 0;
    tq_status s = tq_kv_token_bytes(&cfg, &tok_bytes, &kb, &vb);
    if (s != TQ_OK) { /* a config the arguments made: a usage error, unless memory ran out */
        lib_error(s, "the KV cache refuses this config");
        return s == TQ_ERR_NOMEM ? 1 : EXIT_USAGE;
    }
    /* The quantizers' bytes for one layer: an empty cache with fixed outlier channels builds them at create
     * (the default, first-append channels, would build them only at the first append); no window, one token of
     * capacity, so nothing large is allocated. */
    int per_head = cfg.key.outlier_count != 0 || cfg.value.outlier_count != 0;
    tq_kv_config probe = cfg;
    probe.outliers = TQ_KV_OUTLIERS_FIXED;
    probe.window = 0;
    probe.sinks = 0;
    probe.capacity = 1;
    tq_kv *kv = NULL;
    tq_kv_memory mem;
    s = tq_kv_create(&probe, &kv);
    if (s == TQ_OK) s = tq_kv_memory_usage(kv, &mem);
    tq_kv_free(kv);
    if (s != TQ_OK) return lib_error(s, "cannot build the quantizers");
    uint64_t q_layer = mem.quantizers, centers = mem.centers;

    /* exact tokens: the sinks (first tokens) and the window (last tokens), float32 */
    const uint64_t L = layers, H = heads, D = dim, T = context, B = batch, exact = window + sinks;
    const uint64_t W = exact < T ? exact : T, Tc = T - W;
    uint64_t fp16_tok = H * D * 2 * 2; /* one token, one layer, K and V: below 2^31 */
    uint64_t fp16 = fp16_tok, codes = tok_bytes, kcodes = (uint64_t)kb * H, vcodes = (uint64_t)vb * H;
    uint64_t win_tok = H * D * 4 * 2, quant = q_layer, tqb = 0, comp_tok = tok_bytes;
    int over = plan_mul(&fp16, L) || plan_mul(&fp16, B) || plan_mul(&fp16, T) || plan_mul(&comp_tok, L) ||
               plan_mul(&comp_tok, B) || plan_mul(&win_tok, L) || plan_mul(&win_tok, B);
    uint64_t window_bytes = win_tok;
    over = over || plan_mul(&codes, L) || plan_mul(&codes, B) || plan_mul(&codes, Tc) || plan_mul(&kcodes, L) ||
           plan_mul(&kcodes, B) || plan_mul(&kcodes, Tc) || plan_mul(&vcodes, L) || plan_mul(&vcodes, B) ||
           plan_mul(&vcodes, Tc) || plan_mul(&window_bytes, W) || plan_mul(&quant, per_head ? H * L : L) ||
           plan_mul(&centers, L) || plan_add(&quant, centers) || plan_add(&tqb, codes) ||
           plan_add(&tqb, window_bytes) || plan_add(&tqb, quant);
    if (over) {
        msg_error("a cache of %llu layers x %llu heads x %llu dims x %llu tokens x batch %llu is beyond 2^63 bytes",
                  (unsigned long long)L, (unsigned long long)H, (unsigned long long)D, (unsigned long long)T,
                  (unsigned long long)B);
        return EXIT_USAGE;
    }
    /* The context tq fits in fp16's bytes: window tokens first (float32), then compressed ones. */
    uint64_t fit = 0;
    if (fp16 > quant) {
        uint64_t budget = fp16 - quant, w = budget / win_tok;
        if (w < exact)
            fit = w;
        else
            fit = exact + (budget - exact * win_tok) / comp_tok;
    }
    int64_t more = (int64_t)fit - (int64_t)T;
    double ratio = tqb ? (double)fp16 / (double)tqb : 0.0;
    double kbpv = (double)kb * 8.0 / (double)D, vbpv = (double)vb * 8.0 / (double)D;

    if (json) {
        printf("{\"layers\": %llu, \"kv_heads\": %llu, \"head_dim\": %llu, \"context\": %llu, \"batch\": %llu, "
               "\"window\": %llu, \"sinks\": %llu, \"k_bits\": ",
               (unsigned long long)L, (unsigned long long)H, (unsigned long long)D, (unsigned long long)T,
               (unsigned long long)B, (unsigned long long)window, (unsigned long long)sinks);
        json_num(stdout, kbits);
        printf(", \"v_bits\": ");
        json_num(stdout, vbits);
        printf(", \"k_variant\": ");
        json_str(stdout, name_of(KV_VARIANTS, kvar));
        printf(", \"v_variant\": ");
        json_str(stdout, name_of(KV_VARIANTS, vvar));
        printf(", \"factors\": ");
        json_str(stdout, name_of(KV_FACTORS, factors));
        printf(", \"k_outlier_channels\": %u, \"v_outlier_channels\": %u", cfg.key.outlier_count,
               cfg.value.outlier_count);
        printf(", \"fp16_bytes\": %llu, \"tq_bytes\": %llu, \"codes_bytes\": %llu, \"k_codes_bytes\": %llu, "
               "\"v_codes_bytes\": %llu, \"window_bytes\": %llu, \"quantizer_bytes\": %llu, "
               "\"quantizer_bytes_per_set\": %llu, \"center_bytes\": %llu, \"quantizers_per_head\": %s",
               (unsigned long long)fp16, (unsigned long long)tqb, (unsigned long long)codes,
               (unsigned long long)kcodes, (unsigned long long)vcodes, (unsigned long long)window_bytes,
               (unsigned long long)quant, (unsigned long long)q_layer, (unsigned long long)centers,
               per_head ? "true" : "false");
        printf(", \"compressed_tokens\": %llu, \"window_tokens\": %llu", (unsigned long long)Tc,
               (unsigned long long)W);
        printf(", \"fp16_bytes_per_token_layer\": %llu, \"tq_bytes_per_token_layer\": %zu, "
               "\"k_bytes_per_token_layer\": %llu, \"v_bytes_per_token_layer\": %llu, \"k_bytes_per_head\": %zu, "
               "\"v_bytes_per_head\": %zu, \"k_bits_per_value\": ",
               (unsigned long long)fp16_tok, tok_bytes, (unsigned long long)(kb * H), (unsigned long long)(vb * H),
               kb, vb);
        json_num(stdout, kbpv);
        printf(", \"v_bits_per_value\": ");
        json_num(stdout, vbpv);
        printf(", \"compression_ratio\": ");
        json_num(stdout, ratio);
        printf(", \"fit_context\": %llu, \"more_tokens\": %lld}\n", (unsigned long long)fit, (long long)more);
        return 0;
    }

    char f1[32], f2[32], f3[32];
    printf("tq plan: %llu layers x %llu KV heads x %llu dims, context %llu, batch %llu\n", (unsigned long long)L,
           (unsigned long long)H, (unsigned long long)D, (unsigned long long)T, (unsigned long long)B);
    for (int sd = 0; sd < 2; sd++) {
        const tq_config *c = sd ? &cfg.value : &cfg.key;
        printf("%s%s: %s at %g bits", sd ? "; " : "  ", sd ? "V" : "K", name_of(KV_VARIANTS, sd ? vvar : kvar),
               sd ? vbits : kbits);
        if (c->outlier_count)
            printf(" (%u channels at %u bits, %u at %u)", c->outlier_count, c->outlier_bits,
                   (unsigned)D - c->outlier_count, c->bits);
    }
    printf("; %s factors; %llu sink tokens; window %llu\n\n", name_of(KV_FACTORS, factors),
           (unsigned long long)sinks, (unsigned long long)window);
    printf("  %-30s %14s %14s\n", "", "fp16", "tq");
    printf("  %-30s %14llu %14llu  (%zu per head)\n", "K bytes per token per layer",
           (unsigned long long)(fp16_tok / 2), (unsigned long long)(kb * H), kb);
    printf("  %-30s %14llu %14llu  (%zu per head)\n", "V bytes per token per layer",
           (unsigned long long)(fp16_tok / 2), (unsigned long long)(vb * H), vb);
    printf("  %-30s %14s %14.4g\n", "K bits per value", "16", kbpv);
    printf("  %-30s %14s %14.4g\n", "V bits per value", "16", vbpv);
    fmt_bytes(f1, sizeof f1, codes);
    fmt_bytes(f2, sizeof f2, fp16);
    printf("  %-30s %14s %14s  (%llu compressed tokens)\n", "K and V codes", f2, f1, (unsigned long long)Tc);
    fmt_bytes(f1, sizeof f1, window_bytes);
    printf("  %-30s %14s %14s  (%llu tokens)\n", "exact sinks + window (float32)", "-", f1, (unsigned long long)W);
    fmt_bytes(f1, sizeof f1, quant);
    fmt_bytes(f3, sizeof f3, q_layer);
    if (per_head)
        printf("  %-30s %14s %14s  (a K+V set of %s x %llu heads x %llu layers, an upper bound, + centers)\n",
               "quantizers and centers", "-", f1, f3, (unsigned long long)H, (unsigned long long)L);
    else
        printf("  %-30s %14s %14s  (a K+V set of %s per layer, shared by the heads, + centers)\n",
               "quantizers and centers", "-", f1, f3);
    fmt_bytes(f1, sizeof f1, tqb);
    printf("  %-30s %14s %14s\n", "total", f2, f1);
    printf("  %-30s %14llu %14llu\n", "total bytes", (unsigned long long)fp16, (unsigned long long)tqb);
    printf("  %-30s %14s %13.2fx\n", "compression (fp16 / tq)", "", ratio);
    printf("  %-30s %14llu %14llu  (%+lld tokens, %.2fx the context)\n", "context in the fp16 bytes",
           (unsigned long long)T, (unsigned long long)fit, (long long)more, (double)fit / (double)T);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* tq kv eval                                                                */

static const char KV_EVAL_HELP[] =
    "usage: tq kv eval --keys K.npy --values V.npy --queries Q.npy --kv-heads H [options]\n"
    "\n"
    "Attention from a compressed KV cache (tq_kv) against exact attention, on keys, values and\n"
    "queries you dumped from a model: rows are tokens, heads concatenated (keys and values\n"
    "T x H*D, queries T x QH*D; query head i uses KV head i / (QH/H)). The first --prompt tokens\n"
    "are appended as one chunk (the cache takes its centers and outlier channels from it), then\n"
    "the rest; --positions decode positions evenly spaced over [prompt, T-1] attend causally.\n"
    "Reported per bit width: bits per value of K and V (every factor counted), top-1 agreement\n"
    "(argmax of the attention), KL(p || p^) in nats, and the cosine of the attention outputs;\n"
    "means over positions and query heads.\n"
    "\n"
    "options:\n"
    "  --bits B,B,...    bits for keys and values alike (default 4,3.5,3,2.5); fractional by the\n"
    "                    outlier split\n"
    "  --k-bits B --v-bits B   one setting with K and V bits apart (instead of --bits)\n"
    "  --positions N     decode positions (default 32)\n"
    "  --prompt P        tokens in the first append (default T/4)\n"
    "  --sinks S         exact first tokens (default 4)   --window W  exact last tokens (default 0)\n"
    "  --center none|keys|values|both   (default keys)\n"
    "  --scale S         attention scale (default 1/sqrt(D))\n"
    "  --json            one JSON object per bit width\n";

static const name_value KV_CENTERS[] = {
    {"none", TQ_KV_CENTER_NONE}, {"keys", TQ_KV_CENTER_KEYS}, {"values", TQ_KV_CENTER_VALUES},
    {"both", TQ_KV_CENTER_BOTH}, {NULL, 0}};

typedef struct kv_eval_opts {
    uint32_t H, D, QH;
    size_t T, prompt, npos;
    uint32_t sinks, window;
    int center, json;
    float scale;
} kv_eval_opts;

/* One setting: build the cache, attend at the positions, compare with exact attention. */
static int kv_eval_one(const kv_eval_opts *o, const float *k, const float *v, const float *q, double kb, double vb) {
    tq_kv_config cfg;
    tq_kv_config_init(&cfg, o->H, o->D, kb, vb);
    cfg.sinks = o->sinks;
    cfg.window = o->window;
    cfg.center = (tq_kv_center)o->center;
    tq_kv *kv = NULL;
    size_t kbytes = 0, vbytes = 0;
    tq_status s = tq_kv_create(&cfg, &kv);
    if (s == TQ_OK) s = tq_kv_token_bytes(&cfg, NULL, &kbytes, &vbytes);
    if (s == TQ_OK) s = tq_kv_append(kv, k, v, o->prompt);
    if (s == TQ_OK) s = tq_kv_append(kv, k + o->prompt * o->H * o->D, v + o->prompt * o->H * o->D, o->T - o->prompt);
    if (s != TQ_OK) {
        tq_kv_free(kv);
        return lib_error(s, "the KV cache failed");
    }
    const size_t T = o->T, QH = o->QH, D = o->D, G = o->QH / o->H, np = o->npos;
    int64_t *pos = malloc(np * sizeof *pos);
    float *qs = malloc(np * QH * D * sizeof(float)), *out = malloc(np * QH * D * sizeof(float));
    float *ref = malloc(np * QH * D * sizeof(float)), *lg = malloc(QH * T * sizeof(float));
    double *ex = malloc(T * sizeof(double));
    int rc = 0;
    if (!pos || !qs || !out || !ref || !lg || !ex) {
        msg_error("out of memory");
        rc = 1;
        goto done;
    }
    for (size_t i = 0; i < np; i++) {
        pos[i] = (int64_t)(o->prompt + (np > 1 ? (T - 1 - o->prompt) * i / (np - 1) : T - 1 - o->prompt));
        memcpy(qs + i * QH * D, q + (size_t)pos[i] * QH * D, QH * D * sizeof(float));
    }
    s = tq_kv_attend(kv, qs, np, (uint32_t)QH, pos, o->scale, out);
    if (s == TQ_OK) s = tq_attention_f32(k, v, T, o->H, o->D, qs, np, (uint32_t)QH, pos, o->scale, ref);
    double top1 = 0.0, kl = 0.0, cosine = 0.0;
    const double sc = o->scale > 0.0f ? o->scale : 1.0 / sqrt((double)D);
    for (size_t i = 0; i < np && s == TQ_OK; i++) {
        size_t nt = (size_t)pos[i] + 1;
        s = tq_kv_logits(kv, qs + i * QH * D, (uint32_t)QH, nt, o->scale, lg);
        for (size_t h = 0; h < QH && s == TQ_OK; h++) {
            const float *qq = qs + (i * QH + h) * D, *est = lg + h * nt;
            size_t best = 0, best_est = 0;
            double m = -INFINITY, me = -INFINITY;
            for (size_t t = 0; t < nt; t++) {
                const float *kt = k + (t * o->H + h / G) * D;
                double d = 0.0;
                for (size_t j = 0; j < D; j++) d += (double)qq[j] * kt[j];
                ex[t] = d * sc;
                if (ex[t] > m) m = ex[t], best = t;
                if (est[t] > me) me = est[t], best_est = t;
            }
            double z = 0.0, ze = 0.0;
            for (size_t t = 0; t < nt; t++) {
                z += exp(ex[t] - m);
                ze += exp((double)est[t] - me);
            }
            for (size_t t = 0; t < nt; t++) {
                double p = exp(ex[t] - m) / z, pe = exp((double)est[t] - me) / ze;
                if (p > 0.0) kl += p * log(p / (pe > 1e-30 ? pe : 1e-30));
            }
            top1 += best == best_est;
            const float *a = out + (i * QH + h) * D, *b = ref + (i * QH + h) * D;
            double ab = 0.0, aa = 0.0, bb = 0.0;
            for (size_t j = 0; j < D; j++) {
                ab += (double)a[j] * b[j];
                aa += (double)a[j] * a[j];
                bb += (double)b[j] * b[j];
            }
            cosine += aa > 0.0 && bb > 0.0 ? ab / sqrt(aa * bb) : (aa == bb ? 1.0 : 0.0);
        }
    }
    if (s != TQ_OK) {
        rc = lib_error(s, "attention failed");
        goto done;
    }
    double cnt = (double)(np * QH), kbpv = (double)kbytes * 8.0 / (double)D, vbpv = (double)vbytes * 8.0 / (double)D;
    if (o->json) {
        printf("{\"k_bits\": ");
        json_num(stdout, kb);
        printf(", \"v_bits\": ");
        json_num(stdout, vb);
        printf(", \"k_bits_per_value\": ");
        json_num(stdout, kbpv);
        printf(", \"v_bits_per_value\": ");
        json_num(stdout, vbpv);
        printf(", \"positions\": %zu, \"query_heads\": %zu, \"top1\": ", np, QH);
        json_num(stdout, top1 / cnt);
        printf(", \"kl\": ");
        json_num(stdout, kl / cnt);
        printf(", \"cosine\": ");
        json_num(stdout, cosine / cnt);
        printf("}\n");
    } else {
        printf("  K %4g bits  V %4g bits   %5.2f / %5.2f bits per value   top-1 %.3f   KL %.4f   cosine %.5f\n", kb, vb,
               kbpv, vbpv, top1 / cnt, kl / cnt, cosine / cnt);
    }
done:
    tq_kv_free(kv);
    free(pos);
    free(qs);
    free(out);
    free(ref);
    free(lg);
    free(ex);
    return rc;
}

static int cmd_kv_eval(int argc, char **argv, int first) {
    const char *kpath = NULL, *vpath = NULL, *qpath = NULL;
    uint64_t heads = 0, npos = 32, prompt = 0, sinks = 4, window = 0;
    double bits[16] = {4, 3.5, 3, 2.5}, kb = 0.0, vb = 0.0, scale = 0.0;
    size_t nbits = 4;
    kv_eval_opts o;
    memset(&o, 0, sizeof o);
    o.center = TQ_KV_CENTER_KEYS;
    for (int i = first; i < argc; i++) {
        const char *a = argv[i], *v = NULL;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            fputs(KV_EVAL_HELP, stdout);
            return 0;
        }
        if (strcmp(a, "--json") == 0) {
            o.json = 1;
        } else if (opt_is(a, "--keys")) {
            if (!(kpath = opt_value(argc, argv, &i, "--keys"))) return EXIT_USAGE;
        } else if (opt_is(a, "--values")) {
            if (!(vpath = opt_value(argc, argv, &i, "--values"))) return EXIT_USAGE;
        } else if (opt_is(a, "--queries")) {
            if (!(qpath = opt_value(argc, argv, &i, "--queries"))) return EXIT_USAGE;
        } else if (opt_is(a, "--kv-heads")) {
            if (!(v = opt_value(argc, argv, &i, "--kv-heads")) || parse_u64("--kv-heads", v, 1, 4096, &heads))
                return EXIT_USAGE;
        } else if (opt_is(a, "--bits")) {
            if (!(v = opt_value(argc, argv, &i, "--bits"))) return EXIT_USAGE;
            nbits = 0;
            for (const char *p = v; *p && nbits < 16;) {
                char *end = NULL;
                double b = strtod(p, &end);
                if (end == p || !(b >= 1.0 && b <= TQ_MAX_BITS) || (*end && *end != ',')) {
                    msg_error("--bits: expected numbers in 1..%u separated by commas, got '%s'", TQ_MAX_BITS, v);
                    return EXIT_USAGE;
                }
                bits[nbits++] = b;
                p = *end ? end + 1 : end;
            }
        } else if (opt_is(a, "--k-bits")) {
            if (!(v = opt_value(argc, argv, &i, "--k-bits")) || parse_kv_bits("--k-bits", v, &kb)) return EXIT_USAGE;
        } else if (opt_is(a, "--v-bits")) {
            if (!(v = opt_value(argc, argv, &i, "--v-bits")) || parse_kv_bits("--v-bits", v, &vb)) return EXIT_USAGE;
        } else if (opt_is(a, "--positions")) {
            if (!(v = opt_value(argc, argv, &i, "--positions")) || parse_u64("--positions", v, 1, 1u << 20, &npos))
                return EXIT_USAGE;
        } else if (opt_is(a, "--prompt")) {
            if (!(v = opt_value(argc, argv, &i, "--prompt")) || parse_u64("--prompt", v, 1, UINT64_MAX, &prompt))
                return EXIT_USAGE;
        } else if (opt_is(a, "--sinks")) {
            if (!(v = opt_value(argc, argv, &i, "--sinks")) || parse_u64("--sinks", v, 0, UINT32_MAX, &sinks))
                return EXIT_USAGE;
        } else if (opt_is(a, "--window")) {
            if (!(v = opt_value(argc, argv, &i, "--window")) || parse_u64("--window", v, 0, UINT32_MAX, &window))
                return EXIT_USAGE;
        } else if (opt_is(a, "--center")) {
            if (!(v = opt_value(argc, argv, &i, "--center")) || parse_name(KV_CENTERS, "--center", v, &o.center))
                return EXIT_USAGE;
        } else if (opt_is(a, "--scale")) {
            if (!(v = opt_value(argc, argv, &i, "--scale"))) return EXIT_USAGE;
            char *end = NULL;
            scale = strtod(v, &end);
            if (!end || *end || !(scale > 0.0 && scale < 1e6)) {
                msg_error("--scale: expected a positive number, got '%s'", v);
                return EXIT_USAGE;
            }
        } else {
            msg_error("unknown argument '%s' (see 'tq kv eval --help')", a);
            return EXIT_USAGE;
        }
    }
    if (!kpath || !vpath || !qpath || !heads) {
        msg_error("--keys, --values, --queries and --kv-heads are required (see 'tq kv eval --help')");
        return EXIT_USAGE;
    }
    if ((kb == 0.0) != (vb == 0.0)) {
        msg_error("--k-bits and --v-bits go together");
        return EXIT_USAGE;
    }
    float *k = NULL, *v = NULL, *q = NULL;
    size_t nk = 0, nv = 0, nq = 0, dk = 0, dv = 0, dq = 0;
    int rc = 1;
    if (load_vectors(kpath, 0, &k, &nk, &dk) || load_vectors(vpath, 0, &v, &nv, &dv) ||
        load_vectors(qpath, 0, &q, &nq, &dq))
        goto done;
    if (nk != nv || nk != nq || dk != dv || dk % heads != 0 || dq % (dk / heads) != 0 || (dq / (dk / heads)) % heads) {
        msg_error("shapes do not fit: keys %zu x %zu, values %zu x %zu, queries %zu x %zu with %llu KV heads "
                  "(need the same tokens, keys and values alike, head_dim = key columns / kv-heads, query "
                  "heads a multiple of kv-heads)",
                  nk, dk, nv, dv, nq, dq, (unsigned long long)heads);
        rc = EXIT_USAGE;
        goto done;
    }
    o.H = (uint32_t)heads;
    o.D = (uint32_t)(dk / heads);
    o.QH = (uint32_t)(dq / o.D);
    o.T = nk;
    o.prompt = prompt ? (size_t)prompt : (nk / 4 ? nk / 4 : 1);
    if (o.prompt >= nk) {
        msg_error("--prompt %zu must leave tokens after it (%zu tokens)", o.prompt, nk);
        rc = EXIT_USAGE;
        goto done;
    }
    o.npos = (size_t)npos < nk - o.prompt ? (size_t)npos : nk - o.prompt;
    o.sinks = (uint32_t)sinks;
    o.window = (uint32_t)window;
    o.scale = (float)scale;
    if (!o.json)
        printf("tq kv eval: %zu tokens, %u KV heads x %u, %u query heads; prompt %zu, %zu positions; sinks %u, window "
               "%u, center %s\n",
               o.T, o.H, o.D, o.QH, o.prompt, o.npos, o.sinks, o.window, name_of(KV_CENTERS, o.center));
    rc = 0;
    if (kb != 0.0) {
        rc = kv_eval_one(&o, k, v, q, kb, vb);
    } else {
        for (size_t b = 0; b < nbits && rc == 0; b++) rc = kv_eval_one(&o, k, v, q, bits[b], bits[b]);
    }
done:
    tq_free(k);
    tq_free(v);
    tq_free(q);
    return rc;
}

static int cmd_kv(int argc, char **argv, int first) {
    if (first >= argc || strcmp(argv[first], "--help") == 0 || strcmp(argv[first], "-h") == 0) {
        fputs(KV_EVAL_HELP, first >= argc ? stderr : stdout);
        return first >= argc ? EXIT_USAGE : 0;
    }
    if (strcmp(argv[first], "eval") == 0) return cmd_kv_eval(argc, argv, first + 1);
    msg_error("unknown 'tq kv' command '%s' (try 'tq kv eval --help')", argv[first]);
    return EXIT_USAGE;
}

/* ------------------------------------------------------------------------ */
/* main                                                                      */

static const char MAIN_HELP[] =
    "usage: tq <command> [options]\n"
    "\n"
    "tq: TurboQuant vector quantization (arXiv 2504.19874).\n"
    "\n"
    "commands:\n"
    "  bench distortion   distortion of a quantizer against the paper's bounds\n"
    "  bench recall       top-1 recall of search scored straight from codes\n"
    "  index build|add|info  a compressed vector index: build from vectors, add more, describe\n"
    "  search             top-k search of an index\n"
    "  eval recall        recall of search results against ground truth\n"
    "  encode             encode vectors into a code file (creating the quantizer if needed)\n"
    "  decode             decode a code file back to float32 vectors\n"
    "  inspect            describe a quantizer (.tqqz) or code (.tqca) file\n"
    "  plan               memory of a model's KV cache: fp16 against tq at K/V bits\n"
    "  info               version and how the library was built\n"
    "\n"
    "Run 'tq bench distortion --help' or 'tq bench recall --help' for their options.\n"
    "Run 'tq encode --help', 'tq decode --help' or 'tq inspect --help' for theirs.\n"
    "Run 'tq index --help', 'tq search --help' or 'tq eval recall --help' for the index.\n"
    "Run 'tq plan --help' for the KV cache planner.\n";

int main(int argc, char **argv) {
    if (argc < 2) {
        msg_error("no command given");
        fputs(MAIN_HELP, stderr);
        return EXIT_USAGE;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
        fputs(MAIN_HELP, stdout);
        return 0;
    }
    if (strcmp(cmd, "--version") == 0) {
        printf("%s\n", tq_version_string());
        return 0;
    }
    if (strcmp(cmd, "info") == 0) {
        if (argc > 2) {
            msg_error("'tq info' takes no arguments");
            return EXIT_USAGE;
        }
        printf("%s\n%s\n", tq_version_string(), tq_build_info());
        return 0;
    }
    if (strcmp(cmd, "plan") == 0) return cmd_plan(argc, argv, 2);
    if (strcmp(cmd, "kv") == 0) return cmd_kv(argc, argv, 2);
    if (strcmp(cmd, "index") == 0) return cmd_index(argc, argv, 2);
    if (strcmp(cmd, "search") == 0) return cmd_search(argc, argv, 2);
    if (strcmp(cmd, "eval") == 0) return cmd_eval(argc, argv, 2);
    if (strcmp(cmd, "encode") == 0) return cmd_encode(argc, argv, 2);
    if (strcmp(cmd, "decode") == 0) return cmd_decode(argc, argv, 2);
    if (strcmp(cmd, "inspect") == 0) return cmd_inspect(argc, argv, 2);
    if (strcmp(cmd, "bench") == 0) {
        if (argc < 3 || strcmp(argv[2], "--help") == 0 || strcmp(argv[2], "-h") == 0) {
            fputs("usage: tq bench distortion|recall [options]   (--help after either for its options)\n",
                  argc < 3 ? stderr : stdout);
            return argc < 3 ? EXIT_USAGE : 0;
        }
        if (strcmp(argv[2], "distortion") == 0) return cmd_distortion(argc, argv, 3);
        if (strcmp(argv[2], "recall") == 0) return cmd_recall(argc, argv, 3);
        msg_error("unknown bench '%s' (expected distortion or recall)", argv[2]);
        return EXIT_USAGE;
    }
    msg_error("unknown command '%s' (try 'tq --help')", cmd);
    return EXIT_USAGE;
}
