/* Uses the library examples/aot builds: Newton's method on V'(x) = 0 with the exported first
   and second derivatives, then V' on a grid through the array function. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "deriv.h"

int main(void) {
    double x = 1.5;
    int it = 0;
    for (; it < 50; it++) {
        double step = dV(x) / d2V(x);
        x -= step;
        if (fabs(step) < 1e-14) break;
    }
    printf("minimum x = %.15f after %d Newton steps, V(x) = %.15f, V'(x) = %.3e\n",
           x, it, V(x), dV(x));

    enum { N = 1000001 };
    double *grid = malloc(N * sizeof(double)), *out = malloc(N * sizeof(double));
    for (int i = 0; i < N; i++) grid[i] = -2.0 + 4.0 * i / (N - 1);
    int status = vdV(grid, N, out);
    double worst = 0.0;
    for (int i = 0; i < N; i++) {
        double exact = 4.0 * pow(grid[i], 3) - 4.0 * grid[i] + 0.3;
        worst = fmax(worst, fabs(out[i] - exact));
    }
    printf("vdV on %d points: status %d, max |error| = %.3e\n", N, status, worst);
    printf("vdV with a length of 1: status %d (ADJIT_ERROR_SHAPE = %d)\n",
           vdV(grid, 1, out), ADJIT_ERROR_SHAPE);
    free(grid);
    free(out);
    return status;
}
