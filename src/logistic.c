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
#include "icnn.h"
#include "potentials.h"

static double log1p_exp(double t)
{
    return t > 0 ? t + log1p(exp(-t)) : log1p(exp(t));
}

int logistic_eval(pot_t *pot, const double *Y, int n, double *phi, double *gphi)
{
    const int N = pot->N, p = pot->p, D = pot->D;
    const int gam = pot->prior == 1;
    int rows = N;
    const double *X = pot->X;
    double scale = 1.0;
    double *eta = pot->eta;
    double *Xb = pot->eta + (size_t) (pot->batch ? pot->batch : N) * n;
    if (pot->batch) {
        /* partial Fisher-Yates with R's RNG: rows idx[0..b-1] */
        rows = pot->batch;
        for (int i = 0; i < N; i++) pot->idx[i] = i;
        for (int i = 0; i < rows; i++) {
            int j = i + (int) floor(unif_rand() * (N - i));
            if (j >= N) j = N - 1;
            int t = pot->idx[i]; pot->idx[i] = pot->idx[j]; pot->idx[j] = t;
        }
        for (int c = 0; c < p; c++)
            for (int i = 0; i < rows; i++)
                Xb[i + (size_t) rows * c] = pot->X[pot->idx[i] + (size_t) N * c];
        X = Xb;
        scale = (double) N / rows;
    }
    /* eta = X w for every sample: rows x n; w is the first p of each column */
    const double one = 1.0, zero = 0.0;
    F77_CALL(dgemm)("N", "N", &rows, &n, &p, &one, X, &rows, Y, &D, &zero, eta,
                    &rows FCONE FCONE);
    for (int s = 0; s < n; s++) {
        double ll = 0;
        double *es = eta + (size_t) rows * s;
        for (int i = 0; i < rows; i++) {
            double yi = pot->y[pot->batch ? pot->idx[i] : i];
            double t = es[i];
            ll += yi * t - log1p_exp(t);
            /* residual y - sigmoid(eta), for the gradient */
            es[i] = yi - (t >= 0 ? 1.0 / (1.0 + exp(-t)) : exp(t) / (1.0 + exp(t)));
        }
        const double *th = Y + (size_t) D * s;
        double ww = 0;
        for (int c = 0; c < p; c++) ww += th[c] * th[c];
        double lp;
        if (gam) {
            double tau = th[p], al = exp(tau);
            lp = 0.5 * p * (tau - log(2.0 * M_PI)) - 0.5 * al * ww +
                 pot->shape * log(pot->rate) - lgammafn(pot->shape) +
                 pot->shape * tau - pot->rate * al;
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
                g[p] = -(0.5 * p - 0.5 * al * ww + pot->shape - pot->rate * al);
            } else {
                for (int c = 0; c < p; c++) g[c] += th[c];
            }
        }
    }
    return 0;
}
