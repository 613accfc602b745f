/* Potentials Phi evaluated on a batch (the protocol is in potentials.h):
 * the built-in kinds with the checks of their data, their table, and the
 * path through R for the rest. */
#include <R.h>
#include <Rinternals.h>
#include <Rmath.h>
#include <R_ext/Utils.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include "jko.h"
#include "potentials.h"

/* Phi = 0: pure diffusion. */
static int zero_eval(jko_pot *pot, const double *Y, int n, double *phi,
                     double *gphi)
{
    (void) Y;
    for (int i = 0; i < n; i++) phi[i] = 0;
    if (gphi) memset(gphi, 0, (size_t) pot->D * n * sizeof(double));
    return JKO_OK;
}

/* Phi = (y - b)'A(y - b) / 2; par = A (D x D), b (D). */
static int quadratic_setup(jko_pot *pot, SEXP obj, int nmax, char *err)
{
    (void) obj; (void) nmax;
    const double D = pot->D;
    if ((double) pot->npar != D * D + D) {
        snprintf(err, JKO_ERRLEN, "`par` has %.0f numbers; dimension %d needs %.0f (A, %d x %d, "
                 "then b)", (double) pot->npar, pot->D, D * D + D, pot->D, pot->D);
        return JKO_ERR_DATA;
    }
    return JKO_OK;
}

static int quadratic_eval(jko_pot *pot, const double *Y, int n, double *phi,
                          double *gphi)
{
    const int D = pot->D;
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
    return JKO_OK;
}

/* Phi = -log sum_k w_k N(y; m_k, sd^2 I); par = K, sd, log w (K), means
 * (D x K). */
static int gmm_setup(jko_pot *pot, SEXP obj, int nmax, char *err)
{
    (void) obj; (void) nmax;
    const double D = pot->D, K = pot->npar >= 2 ? pot->par[0] : NAN;
    if (!(K >= 1) || K != floor(K) || K > INT_MAX) {
        snprintf(err, JKO_ERRLEN, "`par` must start with the number of components K >= 1");
        return JKO_ERR_DATA;
    }
    if ((double) pot->npar != 2 + K + K * D) {
        snprintf(err, JKO_ERRLEN, "`par` has %.0f numbers; %.0f components in dimension %d "
                 "need %.0f (K, sd, K log-weights, then K means)", (double) pot->npar, K,
                 pot->D, 2 + K + K * D);
        return JKO_ERR_DATA;
    }
    if (!(pot->par[1] > 0) || !R_FINITE(pot->par[1])) {
        snprintf(err, JKO_ERRLEN, "the components' sd (`par[2]`) must be positive and finite");
        return JKO_ERR_DATA;
    }
    return JKO_OK;
}

static int gmm_eval(jko_pot *pot, const double *Y, int n, double *phi,
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
    return JKO_OK;
}

/* Phi = height ((y_1 / c)^2 - 1)^2 + sum_{d > 1} y_d^2 / 2; par = c, height. */
static int double_well_setup(jko_pot *pot, SEXP obj, int nmax, char *err)
{
    (void) obj; (void) nmax;
    if (pot->npar != 2) {
        snprintf(err, JKO_ERRLEN, "`par` has %.0f numbers; it needs 2 (center, height)",
                 (double) pot->npar);
        return JKO_ERR_DATA;
    }
    if (!(pot->par[0] > 0) || !R_FINITE(pot->par[0]) || !R_FINITE(pot->par[1])) {
        snprintf(err, JKO_ERRLEN, "`par` must hold a positive finite center and a finite height");
        return JKO_ERR_DATA;
    }
    return JKO_OK;
}

static int double_well_eval(jko_pot *pot, const double *Y, int n, double *phi,
                            double *gphi)
{
    const int D = pot->D;
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
    return JKO_OK;
}

static const pot_kind pot_kinds[] = {
    {"zero", NULL, NULL, zero_eval},
    {"quadratic", quadratic_setup, NULL, quadratic_eval},
    {"gmm", gmm_setup, NULL, gmm_eval},
    {"double_well", double_well_setup, NULL, double_well_eval},
    {"glm", glm_setup, glm_draw, glm_eval},
    {NULL, NULL, NULL, NULL}
};

/* A potential evaluated in R: potential_eval_r(obj, x, iter, grad) with x
 * the n x D batch returns list(value = n numbers, gradient = n x D or
 * NULL), checked there. */
static int r_eval(jko_pot *pot, const double *Y, int n, double *phi,
                  double *gphi)
{
    const int D = pot->D;
    SEXP x = PROTECT(Rf_allocMatrix(REALSXP, n, D));
    double *px = REAL(x);
    for (int i = 0; i < n; i++)
        for (int d = 0; d < D; d++) px[i + (size_t) n * d] = Y[d + (size_t) D * i];
    SEXP it = PROTECT(Rf_ScalarInteger(pot->iter));
    SEXP wg = PROTECT(Rf_ScalarLogical(gphi != NULL));
    SEXP call = PROTECT(Rf_lang5(pot->rfun, pot->obj, x, it, wg));
    SEXP res = PROTECT(Rf_eval(call, R_GlobalEnv));
    memcpy(phi, REAL(VECTOR_ELT(res, 0)), (size_t) n * sizeof(double));
    if (gphi) {
        const double *g = REAL(VECTOR_ELT(res, 1));
        for (int i = 0; i < n; i++)
            for (int d = 0; d < D; d++) gphi[d + (size_t) D * i] = g[i + (size_t) n * d];
    }
    UNPROTECT(5);
    return JKO_OK;
}

int pot_setup(jko_pot *pot, SEXP obj, int D, int nmax, char *err)
{
    memset(pot, 0, sizeof(*pot));
    pot->D = D;
    pot->threads = 1;
    pot->obj = obj;
    if (TYPEOF(obj) != VECSXP) {
        snprintf(err, JKO_ERRLEN, "a potential must be a list");
        return JKO_ERR_DATA;
    }
    /* its dimension, where it has one, is that of the points */
    SEXP dim = jko_list_elt(obj, "dim");
    if ((TYPEOF(dim) == INTSXP || TYPEOF(dim) == REALSXP) && XLENGTH(dim) == 1) {
        double dd = Rf_asReal(dim);
        if (!ISNAN(dd) && dd != D) {
            snprintf(err, JKO_ERRLEN, "the potential has dimension %.0f but the points have "
                     "dimension %d", dd, D);
            return JKO_ERR_DATA;
        }
    }
    SEXP bt = jko_list_elt(obj, "builtin");
    if (!Rf_isNull(bt)) {
        if (TYPEOF(bt) != STRSXP || XLENGTH(bt) != 1 || STRING_ELT(bt, 0) == NA_STRING) {
            snprintf(err, JKO_ERRLEN, "a potential's `builtin` must be the name of a built-in kind");
            return JKO_ERR_DATA;
        }
        const char *name = CHAR(STRING_ELT(bt, 0));
        for (const pot_kind *k = pot_kinds; k->name; k++)
            if (strcmp(name, k->name) == 0) { pot->kind = k; break; }
        if (!pot->kind) {
            snprintf(err, JKO_ERRLEN, "unknown built-in potential \"%.100s\"", name);
            return JKO_ERR_DATA;
        }
        SEXP par = jko_list_elt(obj, "par");
        if (!Rf_isNull(par) && TYPEOF(par) != REALSXP) {
            snprintf(err, JKO_ERRLEN, "invalid built-in potential \"%s\": `par` must be a "
                     "double vector", name);
            return JKO_ERR_DATA;
        }
        if (!Rf_isNull(par)) {
            pot->par = REAL(par);
            pot->npar = XLENGTH(par);
        }
        pot->work = (double *) R_alloc(D > pot->npar ? D : pot->npar, sizeof(double));
        char why[JKO_ERRLEN];
        if (pot->kind->setup && pot->kind->setup(pot, obj, nmax, why)) {
            snprintf(err, JKO_ERRLEN, "invalid built-in potential \"%s\": %.400s", name, why);
            return JKO_ERR_DATA;
        }
        return JKO_OK;
    }
    if (!Rf_isFunction(jko_list_elt(obj, "value"))) {
        snprintf(err, JKO_ERRLEN, "a potential must be a built-in kind or have a `value` function");
        return JKO_ERR_DATA;
    }
    SEXP ns = PROTECT(R_FindNamespace(Rf_mkString("jkoflow")));
    pot->rfun = Rf_findFun(Rf_install("potential_eval_r"), ns);
    UNPROTECT(1);
    return JKO_OK;
}

int pot_eval(jko_pot *pot, const double *Y, int n, double *phi, double *gphi)
{
    const int D = pot->D;
    int st = JKO_OK;
    if (!pot->kind) {
        st = r_eval(pot, Y, n, phi, gphi);   /* R's own loops are interruptible */
    } else {
        /* one draw of a minibatch serves the whole batch */
        if (pot->kind->draw) pot->kind->draw(pot);
        for (int s = 0; s < n && !st; s += JKO_CHUNK) {
            if (s) R_CheckUserInterrupt();
            int c = n - s < JKO_CHUNK ? n - s : JKO_CHUNK;
            st = pot->kind->eval(pot, Y + (size_t) D * s, c, phi + s,
                                 gphi ? gphi + (size_t) D * s : NULL);
        }
    }
    if (st) return st;
    for (int i = 0; i < n; i++) if (!R_FINITE(phi[i])) return JKO_ERR_NONFINITE;
    if (gphi)
        for (size_t m = 0; m < (size_t) pot->D * n; m++)
            if (!R_FINITE(gphi[m])) return JKO_ERR_NONFINITE;
    return JKO_OK;
}
