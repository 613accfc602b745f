/* Adam (Kingma and Ba 2015) on a flat parameter vector. */
#ifndef JKOFLOW_ADAM_H
#define JKOFLOW_ADAM_H
#include <stddef.h>

typedef struct {
    size_t n;
    int t;
    double lr, b1, b2, eps;
    double *m, *v;
} adam_t;

void adam_init(adam_t *opt, size_t n, double lr); /* fresh state, R_alloc'ed */
void adam_step(adam_t *opt, double *x, const double *g);

#endif
