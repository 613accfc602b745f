/* Adam: m <- b1 m + (1-b1) g, v <- b2 v + (1-b2) g^2,
 * x <- x - lr mhat / (sqrt(vhat) + eps) with bias-corrected mhat, vhat. */
#include <R.h>
#include <math.h>
#include <string.h>
#include "adam.h"

void adam_init(adam_t *opt, size_t n, double lr)
{
    opt->n = n; opt->t = 0; opt->lr = lr;
    opt->b1 = 0.9; opt->b2 = 0.999; opt->eps = 1e-8;
    opt->m = (double *) R_alloc(n, sizeof(double));
    opt->v = (double *) R_alloc(n, sizeof(double));
    memset(opt->m, 0, n * sizeof(double));
    memset(opt->v, 0, n * sizeof(double));
}

void adam_step(adam_t *opt, double *x, const double *g)
{
    opt->t++;
    const double c1 = 1.0 - pow(opt->b1, opt->t), c2 = 1.0 - pow(opt->b2, opt->t);
    const double step = opt->lr / c1, b1 = opt->b1, b2 = opt->b2;
    const double sc2 = 1.0 / sqrt(c2);
    for (size_t i = 0; i < opt->n; i++) {
        opt->m[i] = b1 * opt->m[i] + (1.0 - b1) * g[i];
        opt->v[i] = b2 * opt->v[i] + (1.0 - b2) * g[i] * g[i];
        x[i] -= step * opt->m[i] / (sqrt(opt->v[i]) * sc2 + opt->eps);
    }
}
