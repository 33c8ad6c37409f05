/*
 * check.h — the tests' tiny harness. CHECK records a failure with file and
 * line and goes on, so one run reports every broken assertion; a test program
 * returns CHECK_DONE(), which prints "N passed, N failed" and is non-zero when
 * anything failed.
 */
#ifndef TQ_CHECK_H
#define TQ_CHECK_H

#include <math.h>
#include <stdio.h>

static int check_passed_, check_failed_;

#define CHECK(cond, ...)                                                  \
    do {                                                                  \
        if (cond) {                                                       \
            check_passed_++;                                              \
        } else {                                                          \
            check_failed_++;                                              \
            fprintf(stderr, "%s:%d: CHECK(%s) failed: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                 \
            fputc('\n', stderr);                                          \
        }                                                                 \
    } while (0)

#define CHECK_OK(call)                                                    \
    do {                                                                  \
        tq_status check_s_ = (call);                                      \
        CHECK(check_s_ == TQ_OK, "%s -> %s (%s)", #call, tq_status_str(check_s_), tq_last_error()); \
    } while (0)

#define CHECK_STATUS(call, want)                                          \
    do {                                                                  \
        tq_status check_s_ = (call);                                      \
        CHECK(check_s_ == (want), "%s -> %s, want %s (%s)", #call, tq_status_str(check_s_), \
              tq_status_str(want), tq_last_error());                      \
    } while (0)

#define CHECK_NEAR(a, b, tol)                                             \
    do {                                                                  \
        double check_a_ = (double)(a), check_b_ = (double)(b);            \
        CHECK(fabs(check_a_ - check_b_) <= (tol), "%s = %.9g, %s = %.9g, tol %.3g", #a, check_a_, #b, \
              check_b_, (double)(tol));                                   \
    } while (0)

#define CHECK_DONE()                                                      \
    (printf("%d passed, %d failed\n", check_passed_, check_failed_), check_failed_ != 0)

#endif /* TQ_CHECK_H */
