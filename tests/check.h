// The test harness: checks that count, a runner line every test binary ends with, and the
// finite-difference gradient check every backward pass is held to.
//
// Conventions:
//   tests/test_*.c  are built against the float core (what ./train runs);
//   tests/grad_*.c  are built against the double core (-DREAL_DOUBLE) for tight gradient checks.
// Each binary ends with `NAME: N passed, N failed` and exits non-zero on any failure;
// tests/run_tests.sh runs them all and prints the total.
#ifndef CHECK_H
#define CHECK_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int check_tests_passed, check_tests_failed, check_current_failed;
static const char *check_current_name = "";

// A check inside a test; a test passes when none of its checks failed.
#define CHECK(cond, ...)                                                   \
    do {                                                                   \
        if (!(cond)) {                                                     \
            check_current_failed++;                                        \
            fprintf(stderr, "  FAIL %s (%s:%d): ", check_current_name, __FILE__, __LINE__); \
            fprintf(stderr, __VA_ARGS__);                                  \
            fprintf(stderr, "\n");                                         \
        }                                                                  \
    } while (0)

#define RUN(test_fn)                                                       \
    do {                                                                   \
        check_current_name = #test_fn;                                     \
        check_current_failed = 0;                                          \
        test_fn();                                                         \
        if (check_current_failed) {                                        \
            check_tests_failed++;                                          \
            printf("FAIL %s\n", #test_fn);                                 \
        } else {                                                           \
            check_tests_passed++;                                          \
            printf("ok   %s\n", #test_fn);                                 \
        }                                                                  \
        fflush(stdout);                                                    \
    } while (0)

// Ends main(): the runner line and the exit status.
static inline int check_summary(const char *suite) {
    printf("%s: %d passed, %d failed\n", suite, check_tests_passed, check_tests_failed);
    return check_tests_failed ? 1 : 0;
}

// Compares two arrays with a mixed tolerance |a-b| <= atol + rtol*|b| and prints the worst
// element (by the ratio of its error to its allowance) with its index. Returns 1 when all pass.
static inline int check_close(const char *what, const double *got, const double *want, long n, double atol,
                              double rtol) {
    long worst = -1;
    double worst_ratio = 0.0, worst_abs = 0.0;
    for (long i = 0; i < n; i++) {
        double err = fabs(got[i] - want[i]);
        double ratio = err == 0 ? 0.0 : err / (atol + rtol * fabs(want[i]));  // atol = rtol = 0: exact
        if (!(ratio <= worst_ratio) || worst < 0) {  // NaN counts as worst
            worst_ratio = ratio;
            worst_abs = err;
            worst = i;
        }
    }
    int ok = n == 0 || worst_ratio <= 1.0;
    if (n > 0)
        printf("     %-40s worst |err| %.3e at [%ld] (got %.9g, want %.9g), %.2f of tolerance\n", what, worst_abs,
               worst, got[worst], want[worst], worst_ratio);
    CHECK(ok, "%s: worst error %.3e at [%ld] exceeds atol %.1e + rtol %.1e", what, worst_abs, worst, atol, rtol);
    return ok;
}

// Finite-difference gradient check of a scalar function of `param` (n values, perturbed in place).
// `loss` recomputes the scalar from scratch; `analytic` holds the backward's gradient. Central
// differences with step h; in double with h ~ 1e-6 the truncation error is O(h^2 * f''') and the
// rounding error O(eps/h) ~ 1e-10, so a correct backward agrees to ~1e-7 relative and a wrong formula
// misses by O(1).
typedef double (*check_loss_fn)(void *ctx);
static inline int check_gradient(const char *what, check_loss_fn loss, void *ctx, double *param, const double *analytic,
                                 long n, double h, double atol, double rtol) {
    double *numeric = malloc(sizeof(double) * (n > 0 ? n : 1));
    for (long i = 0; i < n; i++) {
        double saved = param[i];
        param[i] = saved + h;
        double up = loss(ctx);
        param[i] = saved - h;
        double down = loss(ctx);
        param[i] = saved;
        numeric[i] = (up - down) / (2 * h);
    }
    int ok = check_close(what, analytic, numeric, n, atol, rtol);
    free(numeric);
    return ok;
}

// Deterministic test inputs.
static inline double check_rand(unsigned long long *state) {
    *state = *state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (double)(*state >> 11) * 0x1.0p-53 * 2.0 - 1.0;  // uniform in [-1, 1)
}
static inline void check_fill(double *x, long n, double scale, unsigned long long *state) {
    for (long i = 0; i < n; i++) x[i] = scale * check_rand(state);
}

#endif
