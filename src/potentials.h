/* Built-in potentials Phi and the bridge to potentials written in R. */
#ifndef JKOFLOW_POTENTIALS_H
#define JKOFLOW_POTENTIALS_H

#include <Rinternals.h>

enum {
    POT_ZERO = 0,        /* pure diffusion                                  */
    POT_QUADRATIC = 1,   /* (y-b)'A(y-b)/2; par = A (D x D), b (D)           */
    POT_GMM = 2,         /* -log sum_k w_k N(y; m_k, sd^2 I);
                            par = K, sd, log w (K), means (D x K)            */
    POT_DOUBLE_WELL = 3, /* height ((y_1/c)^2 - 1)^2 + sum_{d>1} y_d^2 / 2;
                            par = c, height                                 */
    POT_R = 4,           /* an R function of the n x D batch                */
    POT_LOGISTIC = 5     /* Bayesian logistic regression, -log posterior    */
};

typedef struct {
    int code, D;
    const double *par;
    int npar;
    SEXP fun;            /* POT_R: function(x, iter) -> list(value, grad)   */
    SEXP rho;            /* environment to evaluate it in                   */
    /* POT_LOGISTIC */
    const double *X, *y; /* data, N x p and N                               */
    int N, p, batch;
    double shape, rate; int prior;
    double *eta;         /* scratch N x n (or batch x n)                   */
    int *idx;            /* minibatch rows                                 */
    double *work;        /* scratch, max(D, K) doubles                     */
    /* Standardised coordinates: Phi is evaluated at center + scale * y and
     * its gradient scaled by `scale` (the chain rule); center NULL: none.  */
    const double *center;
    double scale;
    double *Ys;          /* scratch D x nmax                                */
} pot_t;

/* phi (n) and gphi (D x n, may be NULL) at the columns of Y (D x n).
 * iter is passed on to R functions for their error messages. Returns 0, or
 * JKO_ERR_NONFINITE. R functions may signal R errors (longjmp). */
int pot_eval(pot_t *pot, const double *Y, int n, double *phi, double *gphi,
             int iter);
void pot_from_sexp(pot_t *pot, SEXP s, int D, int nmax);
/* logistic.c */
int logistic_eval(pot_t *pot, const double *Y, int n, double *phi, double *gphi);

#endif
