/*
 * test_crash_safety.c — an index file survives a process killed mid-save.
 *
 * Requirement: kill the process with SIGKILL at random moments during index
 * save and append, 100 times; after each, the index on disk loads and holds
 * exactly the old or the new contents.
 *
 * How: the parent builds an index (random vectors from a seeded generator,
 * 4-bit MSE with float rerank, so the file is a few MB and a save takes real
 * time) and saves it: the "old" file. For each of four operations it then
 * computes the exact bytes the operation must produce from the old file
 * (running it twice and checking both runs give the same bytes, so "new" is
 * well defined):
 *   append      load, add a batch, save
 *   append-mmap open_mmap, add the same batch, save over the mapped file
 *   remove      load, remove some ids, save
 *   resave      load, save (new == old)
 * A few unkilled children per operation measure how long a run (from fork)
 * and its save take. Each trial then forks a child that runs one operation on
 * the target file in place, sleeps a random time and SIGKILLs it: in half the
 * trials anywhere in the child's whole run, in the other half anywhere in its
 * save (timed from a byte the child writes to a pipe just before it calls
 * tq_index_save; the save itself runs untouched). Afterwards the target's
 * bytes must equal the old or that operation's new bytes exactly (and the new
 * ones exactly when the rename happened, seen as a new inode), and
 * tq_index_load and tq_index_open_mmap must both accept it and answer fixed
 * queries exactly as the reference does, with the killed save's temp file
 * still lying next to it. Every trial is classified by what the kill left: no
 * temp file (killed before the save created it), an empty temp file (killed
 * in the checksum pass, before the first write), a partly written one, a
 * complete one (killed around fsync, before the rename), or the new file
 * (killed after the rename, or the child finished). Counts are printed; the
 * test requires old and new outcomes and kills inside the save, so it proves
 * the kill lands at varied moments. Leftover temp files are counted and
 * removed.
 *
 * Separately: a temp file left by a crashed process whose pid is reused (a
 * restarted container's process often gets the same pid) must not make later
 * saves fail.
 *
 * TQ_CRASH_TRIALS (default 100) and TQ_CRASH_SEED change the trial count and
 * the seed of the kill times. The parent stays single-threaded (tq_set_threads(1))
 * so fork() copies no running thread pool; the children use all cores.
 */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "tq.h"

enum { DIM = 128, N0 = 6000, NADD = 1500, NRM = 700, NQ = 8, K = 10 };

enum { OP_APPEND, OP_APPEND_MMAP, OP_REMOVE, OP_RESAVE, NOPS };
static const char *op_name[NOPS] = {"append", "append-mmap", "remove", "resave"};

/* what a kill left behind */
enum { R_BEFORE, R_EMPTY_TMP, R_PARTIAL_TMP, R_FULL_TMP, R_NEW_KILLED, R_NEW_EXITED, R_BAD, NRES };
static const char *res_name[NRES] = {"old, no temp file",      "old, empty temp file", "old, partial temp file",
                                     "old, complete temp file", "new, killed after rename", "new, child finished",
                                     "neither old nor new"};

static float *batch;       /* NADD rows, appended by the append operations */
static int64_t rm_ids[NRM]; /* removed by OP_REMOVE */
static float queries[NQ * DIM];

static char dir[400];

static const char *path_in(const char *name) {
    static char buf[4][512];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", dir, name);
    return buf[k];
}

/* ------------------------------------------------------------ helpers */

static uint64_t rng_state;

static uint64_t rng_next(void) { /* splitmix64 */
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static double rng_unit(void) { return (double)(rng_next() >> 11) * (1.0 / 9007199254740992.0); }

static void fill_random(float *x, size_t n) {
    for (size_t i = 0; i < n; i++) x[i] = (float)(2.0 * rng_unit() - 1.0);
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void sleep_until(double t) {
    for (;;) {
        double d = t - now();
        if (d <= 0) return;
        struct timespec ts;
        ts.tv_sec = (time_t)d;
        ts.tv_nsec = (long)((d - (double)ts.tv_sec) * 1e9);
        if (nanosleep(&ts, NULL) == 0) return;
    }
}

static uint8_t *slurp(const char *p, size_t *len) {
    *len = 0;
    FILE *f = fopen(p, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc(n > 0 ? (size_t)n : 1);
    if (b && n > 0 && fread(b, 1, (size_t)n, f) != (size_t)n) {
        free(b);
        b = NULL;
    }
    fclose(f);
    if (b) *len = (size_t)n;
    return b;
}

/* Replace p by len bytes of b: written next to it, then renamed over it. */
static int put_file(const char *p, const uint8_t *b, size_t len) {
    char tmp[600];
    snprintf(tmp, sizeof tmp, "%s.reset", p);
    FILE *f = fopen(tmp, "wb");
    if (!f) return 0;
    int ok = fwrite(b, 1, len, f) == len;
    ok &= fclose(f) == 0;
    return ok && rename(tmp, p) == 0;
}

static int same_bytes(const uint8_t *a, size_t la, const uint8_t *b, size_t lb) {
    return a && b && la == lb && memcmp(a, b, la) == 0;
}

/* ------------------------------------------------------ the operations */

/* Run operation op on the index file src and save the result to dst (src == dst in a child).
 * t_save0/t_save1 receive the monotonic times around the save; when notify_fd >= 0 one byte
 * is written to it just before the save starts. */
static tq_status run_op(int op, const char *src, const char *dst, double *t_save0, double *t_save1, int notify_fd) {
    tq_index *ix = NULL;
    tq_status s = op == OP_APPEND_MMAP ? tq_index_open_mmap(src, &ix) : tq_index_load(src, &ix);
    if (s != TQ_OK) return s;
    if (op == OP_APPEND || op == OP_APPEND_MMAP) s = tq_index_add(ix, batch, NADD, NULL, NULL);
    if (op == OP_REMOVE) {
        size_t removed = 0;
        s = tq_index_remove(ix, rm_ids, NRM, &removed);
        if (s == TQ_OK && removed != NRM) s = TQ_ERR_STATE;
    }
    if (notify_fd >= 0 && write(notify_fd, "s", 1) != 1) s = TQ_ERR_IO;
    if (t_save0) *t_save0 = now();
    if (s == TQ_OK) s = tq_index_save(ix, dst);
    if (t_save1) *t_save1 = now();
    tq_index_free(ix);
    return s;
}

/* The expected contents of one state: file bytes, size and exact answers to the fixed queries. */
typedef struct state {
    uint8_t *bytes;
    size_t len;
    size_t n;
    int64_t ids[NQ * K];
    float scores[NQ * K];
} state;

static int fingerprint(tq_index *ix, state *st) {
    st->n = tq_index_size(ix);
    return tq_index_search(ix, queries, NQ, K, NULL, st->ids, st->scores) == TQ_OK;
}

/* Does the index at p, opened both ways, hold exactly the contents of st? */
static int loads_as(const char *p, const state *st) {
    int ok = 1;
    for (int how = 0; how < 2; how++) {
        tq_index *ix = NULL;
        tq_status s = how ? tq_index_open_mmap(p, &ix) : tq_index_load(p, &ix);
        if (s != TQ_OK) {
            fprintf(stderr, "%s of %s: %s (%s)\n", how ? "open_mmap" : "load", p, tq_status_str(s), tq_last_error());
            ok = 0;
            continue;
        }
        state got;
        ok &= fingerprint(ix, &got) && got.n == st->n && !memcmp(got.ids, st->ids, sizeof got.ids) &&
              !memcmp(got.scores, st->scores, sizeof got.scores);
        tq_index_free(ix);
    }
    return ok;
}

/* ------------------------------------------------------ temp files */

/* Remove "<name>.tmp.<pid>.*" in dir (pid < 0: any pid); return how many, and the largest one's size. */
static int take_temps(const char *name, long pid, size_t *max_size) {
    char prefix[300];
    if (pid >= 0)
        snprintf(prefix, sizeof prefix, "%s.tmp.%ld.", name, pid);
    else
        snprintf(prefix, sizeof prefix, "%s.tmp.", name);
    size_t pl = strlen(prefix);
    int count = 0;
    if (max_size) *max_size = 0;
    DIR *d = opendir(dir);
    if (!d) return 0;
    char (*names)[256] = NULL;
    size_t nn = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strncmp(e->d_name, prefix, pl) != 0) continue;
        void *grown = realloc(names, (nn + 1) * sizeof *names);
        if (!grown) break;
        names = grown;
        snprintf(names[nn++], sizeof names[0], "%s", e->d_name);
    }
    closedir(d);
    for (size_t i = 0; i < nn; i++) {
        const char *p = path_in(names[i]);
        struct stat sb;
        if (stat(p, &sb) == 0 && max_size && (size_t)sb.st_size > *max_size) *max_size = (size_t)sb.st_size;
        if (remove(p) == 0) count++;
    }
    free(names);
    return count;
}

/* ------------------------------------------------------ the child */

/* Runs op on target in place and exits: 0 on success, 3 on failure. When times_fd >= 0
 * it writes its save times there at the end; when notify_fd >= 0 a byte just before
 * the save. Never returns. */
static void child(int op, const char *target, int times_fd, int notify_fd) {
    (void)tq_set_threads(0); /* a fresh process: its own pool, all cores */
    double t[2] = {0, 0};
    tq_status s = run_op(op, target, target, &t[0], &t[1], notify_fd);
    if (s != TQ_OK) fprintf(stderr, "child %s: %s (%s)\n", op_name[op], tq_status_str(s), tq_last_error());
    if (times_fd >= 0 && write(times_fd, t, sizeof t) != (ssize_t)sizeof t) s = TQ_ERR_IO;
    _exit(s == TQ_OK ? 0 : 3);
}

/* ------------------------------------------------------ the test */

static void test_kills(void) {
    const char *env = getenv("TQ_CRASH_TRIALS");
    int trials = env && atoi(env) > 0 ? atoi(env) : 100;
    env = getenv("TQ_CRASH_SEED");
    uint64_t seed = env ? strtoull(env, NULL, 0) : 20250504u;

    /* data */
    rng_state = 12345;
    float *base = malloc((size_t)N0 * DIM * sizeof(float));
    batch = malloc((size_t)NADD * DIM * sizeof(float));
    if (!base || !batch) {
        CHECK(0, "out of memory");
        return;
    }
    fill_random(base, (size_t)N0 * DIM);
    fill_random(batch, (size_t)NADD * DIM);
    fill_random(queries, NQ * DIM);
    for (int i = 0; i < NRM; i++) rm_ids[i] = (int64_t)i * 8 + 3; /* spread over the first 5600 ids */

    /* the old state */
    tq_index_config cfg;
    tq_index_config_init(&cfg, DIM, 4);
    cfg.rerank = TQ_RERANK_FLOAT;
    tq_index *ix = NULL;
    CHECK_OK(tq_index_create(&cfg, &ix));
    if (!ix) return;
    CHECK_OK(tq_index_add(ix, base, N0, NULL, NULL));
    char old_path[520], target[520];
    snprintf(old_path, sizeof old_path, "%s", path_in("old.tqi"));
    snprintf(target, sizeof target, "%s", path_in("crash.tqi"));
    CHECK_OK(tq_index_save(ix, old_path));
    CHECK_OK(tq_index_save(ix, path_in("old2.tqi")));
    state old;
    memset(&old, 0, sizeof old);
    old.bytes = slurp(old_path, &old.len);
    size_t l2 = 0;
    uint8_t *b2 = slurp(path_in("old2.tqi"), &l2);
    CHECK(same_bytes(old.bytes, old.len, b2, l2), "saving twice gives the same bytes");
    free(b2);
    CHECK(fingerprint(ix, &old), "search the old index");
    tq_index_free(ix);
    free(base);
    CHECK(old.bytes && old.len > 1000000, "old file is %zu bytes", old.len);
    if (!old.bytes) return;

    /* the new state of every operation, run twice from the old file */
    state nw[NOPS];
    memset(nw, 0, sizeof nw);
    for (int op = 0; op < NOPS; op++) {
        const char *ra = path_in("ref_a.tqi"), *rb = path_in("ref_b.tqi");
        CHECK_OK(run_op(op, old_path, ra, NULL, NULL, -1));
        CHECK_OK(run_op(op, old_path, rb, NULL, NULL, -1));
        nw[op].bytes = slurp(ra, &nw[op].len);
        size_t lb = 0;
        uint8_t *bb = slurp(rb, &lb);
        CHECK(nw[op].bytes && same_bytes(nw[op].bytes, nw[op].len, bb, lb), "%s: deterministic bytes", op_name[op]);
        free(bb);
        tq_index *r = NULL;
        CHECK_OK(tq_index_load(ra, &r));
        if (r) CHECK(fingerprint(r, &nw[op]), "search %s reference", op_name[op]);
        tq_index_free(r);
        remove(ra);
        remove(rb);
        if (!nw[op].bytes) return;
    }
    CHECK(nw[OP_APPEND].n == N0 + NADD && nw[OP_REMOVE].n == N0 - NRM && nw[OP_RESAVE].n == N0, "sizes %zu %zu %zu",
          nw[OP_APPEND].n, nw[OP_REMOVE].n, nw[OP_RESAVE].n);
    CHECK(same_bytes(nw[OP_APPEND].bytes, nw[OP_APPEND].len, nw[OP_APPEND_MMAP].bytes, nw[OP_APPEND_MMAP].len),
          "append after load == append after mmap");
    CHECK(same_bytes(nw[OP_RESAVE].bytes, nw[OP_RESAVE].len, old.bytes, old.len), "save(load(old)) == old");
    CHECK(!same_bytes(nw[OP_APPEND].bytes, nw[OP_APPEND].len, old.bytes, old.len) &&
              !same_bytes(nw[OP_REMOVE].bytes, nw[OP_REMOVE].len, old.bytes, old.len),
          "append and remove change the file");

    const char *tname = "crash.tqi";

    /* measure with unkilled children: how long a whole run (from fork) and a save take, at most */
    double run_len[NOPS], save_len[NOPS];
    for (int op = 0; op < NOPS; op++) {
        run_len[op] = save_len[op] = 0;
        for (int rep = 0; rep < 3; rep++) {
            CHECK(put_file(target, old.bytes, old.len), "reset target");
            int fds[2];
            if (pipe(fds) != 0) {
                CHECK(0, "pipe: %s", strerror(errno));
                return;
            }
            fflush(NULL);
            double t0 = now();
            pid_t pid = fork();
            if (pid == 0) {
                close(fds[0]);
                child(op, target, fds[1], -1);
            }
            close(fds[1]);
            CHECK(pid > 0, "fork: %s", strerror(errno));
            if (pid < 0) return;
            double t[2] = {0, 0};
            ssize_t got = read(fds[0], t, sizeof t);
            close(fds[0]);
            int status = 0;
            waitpid(pid, &status, 0);
            CHECK(got == (ssize_t)sizeof t && WIFEXITED(status) && WEXITSTATUS(status) == 0, "%s child failed",
                  op_name[op]);
            size_t len = 0;
            uint8_t *b = slurp(target, &len);
            CHECK(same_bytes(b, len, nw[op].bytes, nw[op].len), "%s child wrote the reference bytes", op_name[op]);
            free(b);
            if (t[1] - t0 > run_len[op]) run_len[op] = t[1] - t0;
            if (t[1] - t[0] > save_len[op]) save_len[op] = t[1] - t[0];
        }
        printf("%-12s a run takes %6.1f ms from fork, its save %6.1f ms\n", op_name[op], run_len[op] * 1e3,
               save_len[op] * 1e3);
    }

    /* the trials */
    rng_state = seed;
    int res[NOPS][NRES];
    memset(res, 0, sizeof res);
    int temps_left = 0, intact = 0;
    double t_start = now();
    for (int trial = 0; trial < trials; trial++) {
        int op = (int)(rng_next() % NOPS);
        /* Half the kills land anywhere from fork to 30% past the measured end of a run; half at
         * a random moment of the save, timed from the child's word that it starts saving (fork
         * and scheduling delays vary too much, under ASan above all, to aim from the fork). */
        int in_save = (int)(rng_next() & 1);
        double delay = in_save ? rng_unit() * save_len[op] * 1.2 : rng_unit() * run_len[op] * 1.3;
        if (!put_file(target, old.bytes, old.len)) {
            CHECK(0, "reset target: %s", strerror(errno));
            break;
        }
        struct stat sb;
        ino_t ino_before = stat(target, &sb) == 0 ? sb.st_ino : 0;
        int fds[2] = {-1, -1};
        if (in_save && pipe(fds) != 0) {
            CHECK(0, "pipe: %s", strerror(errno));
            break;
        }
        fflush(NULL);
        double t0 = now();
        pid_t pid = fork();
        if (pid == 0) {
            if (in_save) close(fds[0]);
            child(op, target, -1, fds[1]);
        }
        CHECK(pid > 0, "fork: %s", strerror(errno));
        if (pid < 0) break;
        if (in_save) {
            close(fds[1]);
            char c;
            ssize_t got = read(fds[0], &c, 1); /* returns at the child's byte, or at its end */
            (void)got;
            close(fds[0]);
            t0 = now();
        }
        sleep_until(t0 + delay);
        kill(pid, SIGKILL);
        int status = 0;
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
        }
        int killed = WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;
        CHECK(killed || (WIFEXITED(status) && WEXITSTATUS(status) == 0), "trial %d: child status %d", trial,
              status);

        size_t len = 0;
        uint8_t *b = slurp(target, &len);
        int is_old = same_bytes(b, len, old.bytes, old.len);
        int is_new = same_bytes(b, len, nw[op].bytes, nw[op].len);
        free(b);
        /* the loader reads the target, not the temp file lying next to it */
        int loads = loads_as(target, is_old ? &old : &nw[op]);
        size_t tmp_size = 0;
        int ntmp = take_temps(tname, (long)pid, &tmp_size);
        temps_left += ntmp;
        CHECK(ntmp <= 1, "trial %d: %d temp files", trial, ntmp);

        /* the rename gives the target the temp file's inode: that tells old from new even for resave */
        int renamed = stat(target, &sb) == 0 && sb.st_ino != ino_before;
        int r;
        if (!is_old && !is_new)
            r = R_BAD;
        else if (renamed)
            r = killed ? R_NEW_KILLED : R_NEW_EXITED;
        else if (ntmp == 0)
            r = R_BEFORE;
        else
            r = tmp_size == 0 ? R_EMPTY_TMP : tmp_size < nw[op].len ? R_PARTIAL_TMP : R_FULL_TMP;
        CHECK(renamed ? is_new : is_old, "trial %d (%s): renamed %d but the bytes are %s", trial, op_name[op],
              renamed, is_old ? "old" : "new");
        CHECK(killed || renamed, "trial %d (%s): the child finished but the file was not replaced", trial,
              op_name[op]);
        res[op][r]++;
        CHECK(r != R_BAD, "trial %d (%s, kill %.1f ms after %s): the file (%zu bytes) is neither old nor new",
              trial, op_name[op], delay * 1e3, in_save ? "save start" : "fork", len);
        CHECK(loads, "trial %d (%s, kill %.1f ms after %s): the file does not load as %s", trial, op_name[op],
              delay * 1e3, in_save ? "save start" : "fork", is_old ? "old" : "new");
        intact += r != R_BAD && loads;
    }
    double elapsed = now() - t_start;

    /* report */
    int tot[NRES];
    memset(tot, 0, sizeof tot);
    printf("%d trials in %.1f s, outcomes per operation:\n", trials, elapsed);
    for (int op = 0; op < NOPS; op++) {
        printf("  %-12s", op_name[op]);
        for (int r = 0; r < NRES; r++) {
            printf(" %3d", res[op][r]);
            tot[r] += res[op][r];
        }
        printf("\n");
    }
    for (int r = 0; r < NRES; r++) printf("  %3d  %s\n", tot[r], res_name[r]);
    int n_old = tot[R_BEFORE] + tot[R_EMPTY_TMP] + tot[R_PARTIAL_TMP] + tot[R_FULL_TMP];
    int n_new = tot[R_NEW_KILLED] + tot[R_NEW_EXITED];
    int n_mid = tot[R_EMPTY_TMP] + tot[R_PARTIAL_TMP] + tot[R_FULL_TMP];
    printf("%d of %d intact: %d old (%d killed inside the save), %d new; %d temp files left by killed saves "
           "(removed)\n",
           intact, trials, n_old, n_mid, n_new, temps_left);
    CHECK(intact == trials, "%d of %d trials intact", intact, trials);
    if (trials >= 40) {
        CHECK(n_old >= 3 && n_new >= 3, "the kills landed at varied moments: %d old, %d new", n_old, n_new);
        CHECK(n_mid >= 3, "the kills landed inside the save: %d", n_mid);
    }
    CHECK(take_temps(tname, -1, NULL) == 0, "no temp files left over");

    remove(target);
    remove(old_path);
    remove(path_in("old2.tqi"));
    free(old.bytes);
    for (int op = 0; op < NOPS; op++) free(nw[op].bytes);
    free(batch);
    batch = NULL;
}

/* A temp file left by a crashed process whose pid a later process reuses must not block that process's saves. */
static void test_stale_temp_same_pid(void) {
    tq_index_config cfg;
    tq_index_config_init(&cfg, 32, 4);
    tq_index *ix = NULL;
    CHECK_OK(tq_index_create(&cfg, &ix));
    if (!ix) return;
    float x[10 * 32];
    rng_state = 7;
    fill_random(x, 10 * 32);
    CHECK_OK(tq_index_add(ix, x, 10, NULL, NULL));
    char p[520];
    snprintf(p, sizeof p, "%s", path_in("stale.tqi"));
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        /* Temp files as dead processes with this pid left them: a process that crashes in its k-th save
         * leaves "<path>.tmp.<pid>.<k>", and each restart that reuses the pid and crashes again in its
         * next save leaves the next k. The counter after the pid is inherited from the parent, which has
         * not saved yet, so this process's first save picks .0, the first taken name. */
        for (int n = 0; n < 64; n++) {
            char tp[600];
            snprintf(tp, sizeof tp, "%s.tmp.%ld.%d", p, (long)getpid(), n);
            FILE *f = fopen(tp, "wb");
            if (f) fclose(f);
        }
        tq_status s = tq_index_save(ix, p);
        if (s != TQ_OK) fprintf(stderr, "save with stale temp files: %s (%s)\n", tq_status_str(s), tq_last_error());
        _exit(s == TQ_OK ? 0 : 3);
    }
    CHECK(pid > 0, "fork: %s", strerror(errno));
    int status = 0;
    if (pid > 0) waitpid(pid, &status, 0);
    CHECK(pid > 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0, "save next to stale temp files of the same pid");
    tq_index *ld = NULL;
    CHECK_OK(tq_index_load(p, &ld));
    CHECK(ld && tq_index_size(ld) == 10, "saved index loads");
    tq_index_free(ld);
    CHECK(take_temps("stale.tqi", pid, NULL) == 64, "the stale files are still there (not ours to remove)");
    remove(p);
    tq_index_free(ix);
}

int main(void) {
    (void)tq_set_threads(1); /* no pool threads in the parent: fork copies only the calling thread */
    mkdir(TQ_TEST_TMP_DIR, 0777);
    snprintf(dir, sizeof dir, "%s/crash-%ld", TQ_TEST_TMP_DIR, (long)getpid());
    mkdir(dir, 0777);
    test_stale_temp_same_pid();
    test_kills();
    rmdir(dir);
    return CHECK_DONE();
}
