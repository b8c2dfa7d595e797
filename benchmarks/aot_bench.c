/* Row 7: time the derivative library adjit.aot.build exported (bench.h: df, vdf) on the
 * points in a file, from C. Usage: aot_bench X.bin N BUDGET_S OUT.bin
 * Prints "vdf <s>" (one call of vdf on the N points) and "loop <s>" (a C loop calling the
 * scalar df on each point), each the minimum over batches collected for BUDGET_S seconds,
 * and writes vdf's output then the loop's to OUT.bin for the caller to check. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "bench.h"

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

static volatile double sink;

static void run_vdf(const double *x, int64_t n, double *out) {
    if (vdf(x, n, out) != ADJIT_OK) { fprintf(stderr, "vdf failed\n"); exit(1); }
}

static void run_loop(const double *x, int64_t n, double *out) {
    for (int64_t i = 0; i < n; i++) out[i] = df(x[i]);
}

static double best(void (*fn)(const double *, int64_t, double *), const double *x, int64_t n,
                   double *out, double budget) {
    double min = 1e30, deadline = now() + budget;
    int batches = 0;
    while (now() < deadline || batches < 3) {
        double t0 = now();
        fn(x, n, out);
        double dt = now() - t0;
        if (dt < min) min = dt;
        batches++;
    }
    sink = out[0];
    return min;
}

int main(int argc, char **argv) {
    if (argc != 5) { fprintf(stderr, "usage: aot_bench X.bin N BUDGET_S OUT.bin\n"); return 2; }
    int64_t n = atoll(argv[2]);
    double budget = atof(argv[3]);
    double *x = malloc(n * sizeof(double)), *out = malloc(n * sizeof(double));
    double *out2 = malloc(n * sizeof(double));
    FILE *fh = fopen(argv[1], "rb");
    if (!fh || fread(x, sizeof(double), n, fh) != (size_t)n) { perror(argv[1]); return 1; }
    fclose(fh);
    run_vdf(x, n, out);  /* warm the pages */
    printf("vdf %.9e\n", best(run_vdf, x, n, out, budget));
    printf("loop %.9e\n", best(run_loop, x, n, out2, budget));
    fh = fopen(argv[4], "wb");
    fwrite(out, sizeof(double), n, fh);
    fwrite(out2, sizeof(double), n, fh);
    fclose(fh);
    return 0;
}
