/* Potentials Phi evaluated on a batch: built-ins in C, and the bridge that
 * calls a user's R function on the whole n x D batch at once. */
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


static SEXP list_elt(SEXP s, const char *name)
{
    SEXP nms = Rf_getAttrib(s, R_NamesSymbol);
    for (R_xlen_t i = 0; i < XLENGTH(s); i++)
        if (strcmp(CHAR(STRING_ELT(nms, i)), name) == 0) return VECTOR_ELT(s, i);
    return R_NilValue;
}

/* s: list(code = integer, par = double, fun = function or NULL, ...) as built
 * by potential_spec() on the R side, which has checked it. */
void pot_from_sexp(pot_t *pot, SEXP s, int D, int nmax)
{
    memset(pot, 0, sizeof(*pot));
    pot->code = Rf_asInteger(list_elt(s, "code"));
    pot->D = D;
    SEXP par = list_elt(s, "par");
    pot->par = Rf_isNull(par) ? NULL : REAL(par);
    pot->npar = Rf_isNull(par) ? 0 : LENGTH(par);
    pot->fun = list_elt(s, "fun");
    pot->rho = list_elt(s, "env");
    int nw = D;
    if (pot->code == POT_GMM && (int) pot->par[0] > nw) nw = (int) pot->par[0];
    pot->work = (double *) R_alloc(nw, sizeof(double));
    SEXP ctr = list_elt(s, "center");
    if (!Rf_isNull(ctr)) {
        if (TYPEOF(ctr) != REALSXP || LENGTH(ctr) != D)
            Rf_error("'center' must be a double vector of length %d", D);
        pot->center = REAL(ctr);
        pot->scale = Rf_asReal(list_elt(s, "scale"));
        pot->Ys = (double *) R_alloc((size_t) D * (nmax > 0 ? nmax : 1), sizeof(double));
    }
    if (pot->code == POT_LOGISTIC) {
        SEXP X = list_elt(s, "x");
        pot->X = REAL(X);
        pot->N = Rf_nrows(X);
        pot->p = Rf_ncols(X);
        pot->y = REAL(list_elt(s, "y"));
        pot->prior = Rf_asInteger(list_elt(s, "prior"));
        pot->shape = Rf_asReal(list_elt(s, "shape"));
        pot->rate = Rf_asReal(list_elt(s, "rate"));
        int b = Rf_asInteger(list_elt(s, "batch"));
        pot->batch = (b == NA_INTEGER || b >= pot->N) ? 0 : b;
        int rows = pot->batch ? pot->batch : pot->N;
        pot->eta = (double *) R_alloc((size_t) rows * (nmax > 0 ? nmax : 1) +
                                      (size_t) rows * pot->p, sizeof(double));
        pot->idx = (int *) R_alloc(pot->N, sizeof(int));
    }
}

static int gmm_eval(const pot_t *pot, const double *Y, int n, double *phi,
                    double *gphi)
{
    const int D = pot->D, K = (int) pot->par[0];
    const double sd = pot->par[1], *logw = pot->par + 2, *mu = pot->par + 2 + K;
    const double inv2 = 1.0 / (sd * sd);
    const double lnorm = -0.5 * D * log(2.0 * M_PI * sd * sd);
    double *lp = pot->work;
    for (int i = 0; i < n; i++) {
        const double *y = Y + (size_t) D * i;
        double mx = -INFINITY;
        for (int k = 0; k < K; k++) {
            const double *m = mu + (size_t) D * k;
            double ss = 0;
            for (int d = 0; d < D; d++) ss += (y[d] - m[d]) * (y[d] - m[d]);
            lp[k] = logw[k] + lnorm - 0.5 * ss * inv2;
            if (lp[k] > mx) mx = lp[k];
        }
        double tot = 0;
        for (int k = 0; k < K; k++) { lp[k] = exp(lp[k] - mx); tot += lp[k]; }
        phi[i] = -(mx + log(tot));
        if (gphi) {
            double *g = gphi + (size_t) D * i;
            for (int d = 0; d < D; d++) g[d] = 0;
            for (int k = 0; k < K; k++) {
                const double *m = mu + (size_t) D * k;
                double rk = lp[k] / tot;
                for (int d = 0; d < D; d++) g[d] += rk * (y[d] - m[d]) * inv2;
            }
        }
    }
    return 0;
}

/* R function: call fun(x, iter) with x the n x D batch; the R side checks
 * what it returns (a list of value n and grad n x D, all finite). */
static int r_eval(const pot_t *pot, const double *Y, int n, double *phi,
                  double *gphi, int iter)
{
    const int D = pot->D;
    SEXP x = PROTECT(Rf_allocMatrix(REALSXP, n, D));
    double *px = REAL(x);
    for (int i = 0; i < n; i++)
        for (int d = 0; d < D; d++) px[i + (size_t) n * d] = Y[d + (size_t) D * i];
    SEXP it = PROTECT(Rf_ScalarInteger(iter));
    SEXP call = PROTECT(Rf_lang4(pot->fun, x, it, Rf_ScalarLogical(gphi != NULL)));
    SEXP res = PROTECT(Rf_eval(call, pot->rho));
    const double *v = REAL(VECTOR_ELT(res, 0));
    memcpy(phi, v, (size_t) n * sizeof(double));
    if (gphi) {
        const double *g = REAL(VECTOR_ELT(res, 1));
        for (int i = 0; i < n; i++)
            for (int d = 0; d < D; d++) gphi[d + (size_t) D * i] = g[i + (size_t) n * d];
    }
    UNPROTECT(4);
    return 0;
}

int pot_eval(pot_t *pot, const double *Y, int n, double *phi, double *gphi,
             int iter)
{
    const int D = pot->D;
    int st = 0;
    if (pot->center) {
        for (int i = 0; i < n; i++)
            for (int d = 0; d < D; d++)
                pot->Ys[d + (size_t) D * i] = pot->center[d] +
                    pot->scale * Y[d + (size_t) D * i];
        Y = pot->Ys;
    }
    switch (pot->code) {
    case POT_ZERO:
        for (int i = 0; i < n; i++) phi[i] = 0;
        if (gphi) memset(gphi, 0, (size_t) D * n * sizeof(double));
        break;
    case POT_QUADRATIC: {
        const double *A = pot->par, *b = pot->par + (size_t) D * D;
        double *dy = pot->work;
        for (int i = 0; i < n; i++) {
            const double *y = Y + (size_t) D * i;
            for (int d = 0; d < D; d++) dy[d] = y[d] - b[d];
            double s = 0;
            for (int d = 0; d < D; d++) {
                double g = 0;
                for (int e = 0; e < D; e++) g += A[d + (size_t) D * e] * dy[e];
                s += g * dy[d];
                if (gphi) gphi[d + (size_t) D * i] = g;
            }
            phi[i] = 0.5 * s;
        }
        break;
    }
    case POT_GMM:
        st = gmm_eval(pot, Y, n, phi, gphi);
        break;
    case POT_DOUBLE_WELL: {
        const double c = pot->par[0], ht = pot->par[1];
        for (int i = 0; i < n; i++) {
            const double *y = Y + (size_t) D * i;
            double t = y[0] * y[0] / (c * c) - 1.0, s = ht * t * t;
            for (int d = 1; d < D; d++) s += 0.5 * y[d] * y[d];
            phi[i] = s;
            if (gphi) {
                double *g = gphi + (size_t) D * i;
                g[0] = 4.0 * ht * t * y[0] / (c * c);
                for (int d = 1; d < D; d++) g[d] = y[d];
            }
        }
        break;
    }
    case POT_R:
        st = r_eval(pot, Y, n, phi, gphi, iter);
        break;
    case POT_LOGISTIC:
        st = logistic_eval(pot, Y, n, phi, gphi);
        break;
    default:
        Rf_error("unknown potential code %d", pot->code);
    }
    if (st) return st;
    if (pot->center && gphi)
        for (size_t m = 0; m < (size_t) D * n; m++) gphi[m] *= pot->scale;
    for (int i = 0; i < n; i++) if (!R_FINITE(phi[i])) return JKO_ERR_NONFINITE;
    if (gphi)
        for (size_t m = 0; m < (size_t) D * n; m++)
            if (!R_FINITE(gphi[m])) return JKO_ERR_NONFINITE;
    return 0;
}
