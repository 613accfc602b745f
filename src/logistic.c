/* Bayesian logistic regression as a potential: Phi(theta) = -log p(theta, y),
 * theta = (w_1..w_p, log alpha) with w | alpha ~ N(0, I / alpha) and
 * alpha ~ Gamma(shape, rate) ("gamma" prior), or theta = w ~ N(0, I)
 * ("normal" prior). Prior constants are kept, so the normalising constant of
 * exp(-Phi) is the marginal likelihood p(y). With a minibatch of b rows the
 * log-likelihood sum is estimated without bias by (N / b) times the sum over
 * rows drawn without replacement, a fresh draw per call. */
#define USE_FC_LEN_T
#include <R.h>
#include <Rinternals.h>
#include <Rmath.h>
#include <R_ext/BLAS.h>
#ifndef FCONE
# define FCONE
#endif
#include <string.h>
#include "jko.h"
#include "numerics.h"
#include "potentials.h"

typedef struct {
    const double *X, *y;  /* data, N x p and N                             */
    int N, p, batch;      /* batch 0: the full data at every evaluation     */
    int gamma;            /* the hierarchical Gamma prior (else N(0, I))    */
    double shape, rate;
    int nmax;
    double *eta;          /* rows x nmax linear predictors, then rows x p  */
    int *idx;             /* minibatch rows                                 */
} logistic_t;

/* The object's x (N x p double matrix), y (N doubles), prior ("gamma" or
 * "normal"), shape, rate and batch (NA: full data), checked in R. */
int logistic_setup(jko_pot *pot, SEXP obj, int nmax)
{
    logistic_t *lg = (logistic_t *) R_alloc(1, sizeof(logistic_t));
    SEXP X = jko_list_elt(obj, "x"), y = jko_list_elt(obj, "y"),
         prior = jko_list_elt(obj, "prior");
    if (TYPEOF(X) != REALSXP || !Rf_isMatrix(X) || TYPEOF(y) != REALSXP ||
        LENGTH(y) != Rf_nrows(X) || TYPEOF(prior) != STRSXP) return 1;
    lg->X = REAL(X);
    lg->N = Rf_nrows(X);
    lg->p = Rf_ncols(X);
    lg->y = REAL(y);
    lg->gamma = strcmp(CHAR(STRING_ELT(prior, 0)), "gamma") == 0;
    lg->shape = Rf_asReal(jko_list_elt(obj, "shape"));
    lg->rate = Rf_asReal(jko_list_elt(obj, "rate"));
    int b = Rf_asInteger(jko_list_elt(obj, "batch"));
    lg->batch = (b == NA_INTEGER || b >= lg->N) ? 0 : b;
    if (pot->D != lg->p + lg->gamma) return 1;
    int rows = lg->batch ? lg->batch : lg->N;
    /* the linear predictors of at most 2e7 / rows points at a time */
    int cap = (int) (2e7 / rows);
    lg->nmax = nmax < 1 ? 1 : nmax;
    if (cap >= 1 && lg->nmax > cap) lg->nmax = cap;
    lg->eta = (double *) R_alloc((size_t) rows * lg->nmax + (size_t) rows * lg->p,
                                 sizeof(double));
    lg->idx = (int *) R_alloc(lg->N, sizeof(int));
    pot->state = lg;
    return 0;
}

/* Phi and its gradient at n <= lg->nmax points, from the rows x p design X
 * (the data, or a minibatch whose log-likelihood is scaled by `scale`). */
static void logistic_part(const logistic_t *lg, int D, const double *X, int rows,
                          double scale, const double *Y, int n, double *phi,
                          double *gphi)
{
    const int p = lg->p, gam = lg->gamma;
    double *eta = lg->eta;
    /* eta = X w for every sample: rows x n; w is the first p of each column */
    const double one = 1.0, zero = 0.0;
    F77_CALL(dgemm)("N", "N", &rows, &n, &p, &one, X, &rows, Y, &D, &zero, eta,
                    &rows FCONE FCONE);
    for (int s = 0; s < n; s++) {
        double ll = 0;
        double *es = eta + (size_t) rows * s;
        for (int i = 0; i < rows; i++) {
            double yi = lg->y[lg->batch ? lg->idx[i] : i];
            double t = es[i];
            ll += yi * t - jko_log1p_exp(t);
            /* residual y - sigmoid(eta), for the gradient */
            es[i] = yi - jko_sigmoid(t);
        }
        const double *th = Y + (size_t) D * s;
        double ww = 0;
        for (int c = 0; c < p; c++) ww += th[c] * th[c];
        double lp;
        if (gam) {
            double tau = th[p], al = exp(tau);
            lp = 0.5 * p * (tau - log(2.0 * M_PI)) - 0.5 * al * ww +
                 lg->shape * log(lg->rate) - lgammafn(lg->shape) +
                 lg->shape * tau - lg->rate * al;
        } else {
            lp = -0.5 * p * log(2.0 * M_PI) - 0.5 * ww;
        }
        phi[s] = -(scale * ll + lp);
    }
    if (gphi) {
        /* grad_w log p = scale X' (y - sigmoid(eta)) - alpha w */
        double msc = -scale;
        F77_CALL(dgemm)("T", "N", &p, &n, &rows, &msc, X, &rows, eta, &rows,
                        &zero, gphi, &D FCONE FCONE);
        for (int s = 0; s < n; s++) {
            const double *th = Y + (size_t) D * s;
            double *g = gphi + (size_t) D * s;
            if (gam) {
                double al = exp(th[p]), ww = 0;
                for (int c = 0; c < p; c++) { g[c] += al * th[c]; ww += th[c] * th[c]; }
                g[p] = -(0.5 * p - 0.5 * al * ww + lg->shape - lg->rate * al);
            } else {
                for (int c = 0; c < p; c++) g[c] += th[c];
            }
        }
    }
}

int logistic_eval(jko_pot *pot, const double *Y, int n, double *phi, double *gphi)
{
    logistic_t *lg = (logistic_t *) pot->state;
    const int N = lg->N, p = lg->p, D = pot->D;
    int rows = N;
    const double *X = lg->X;
    double scale = 1.0;
    double *Xb = lg->eta + (size_t) (lg->batch ? lg->batch : N) * lg->nmax;
    if (lg->batch) {
        /* partial Fisher-Yates with R's RNG: rows idx[0..b-1] */
        rows = lg->batch;
        for (int i = 0; i < N; i++) lg->idx[i] = i;
        for (int i = 0; i < rows; i++) {
            int j = i + (int) floor(unif_rand() * (N - i));
            if (j >= N) j = N - 1;
            int t = lg->idx[i]; lg->idx[i] = lg->idx[j]; lg->idx[j] = t;
        }
        for (int c = 0; c < p; c++)
            for (int i = 0; i < rows; i++)
                Xb[i + (size_t) rows * c] = lg->X[lg->idx[i] + (size_t) N * c];
        X = Xb;
        scale = (double) N / rows;
    }
    for (int s = 0; s < n; s += lg->nmax) {
        int c = n - s < lg->nmax ? n - s : lg->nmax;
        logistic_part(lg, D, X, rows, scale, Y + (size_t) D * s, c, phi + s,
                      gphi ? gphi + (size_t) D * s : NULL);
    }
    return 0;
}
