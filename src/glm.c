/* Generalised linear models as potentials: Phi(theta) = -log p(theta, y) for
 * theta = (beta_1..beta_p [, log sigma] [, log alpha]), the linear predictor
 * eta = X beta + offset and
 *
 *   binomial (logit or probit link): y_i the proportion of successes out of
 *     w_i trials, log-likelihood w_i (y_i log mu_i + (1 - y_i) log(1 - mu_i))
 *     plus log choose(w_i, w_i y_i);
 *   poisson (log link): w_i (y_i eta_i - e^eta_i - log y_i!);
 *   gaussian (identity link): y_i ~ N(eta_i, sigma^2 / w_i), sigma = e^{log
 *     sigma}, so that the likelihood is that of glm()'s prior weights.
 *
 * Rows with w_i = 0 contribute nothing. The constants of the likelihood
 * that do not depend on theta (the binomial coefficients, log y_i!, the
 * Gaussian 2 pi and w_i) are summed once in R and passed as `const`.
 *
 * Priors on beta: flat (0), a normal N(loc, P^{-1}) given by its mean and
 * precision matrix P, with const_prior = log det(P) / 2 - p log(2 pi) / 2 (1), or
 * the hierarchical beta | alpha ~ N(0, I / alpha), alpha ~ Gamma(shape,
 * rate) with log alpha a parameter, its Jacobian included (2). Prior on
 * sigma (gaussian only), as a density of log sigma: flat (0) or sigma ~
 * Exponential(rate) with the Jacobian of log (1). The normalising constants
 * of proper priors are kept, so that the integral of exp(-Phi) is the
 * marginal likelihood.
 *
 * Far from the mode the terms are evaluated without cancellation where
 * possible (log(1 + e^s) and log Phi(s) on the log scale); where a value
 * truly overflows (a Poisson mean e^eta above the largest double, a
 * Gaussian residual over a vanishing sigma) Phi is +Inf, never NaN. */
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

enum { FAM_BINOMIAL = 0, FAM_POISSON = 1, FAM_GAUSSIAN = 2 };
enum { LINK_LOGIT = 0, LINK_PROBIT = 1, LINK_LOG = 2, LINK_IDENTITY = 3 };
enum { PRIOR_FLAT = 0, PRIOR_NORMAL = 1, PRIOR_GAMMA = 2 };

typedef struct {
    const double *X, *y, *w, *off; /* N x p design, N responses, weights,
                                      offsets                              */
    int N, p, family, link;
    int sig;                 /* 1: theta[p] is log sigma (gaussian)       */
    int prior;               /* PRIOR_*                                   */
    const double *loc, *prec;    /* normal prior: mean (p), precision (p x p) */
    double pcst;             /* its log det(P) / 2 - p log(2 pi) / 2       */
    double *dz;              /* p doubles of scratch                      */
    double shape, rate;      /* Gamma prior of alpha                      */
    int sprior;              /* prior of sigma: 0 flat in log sigma, 1 exp */
    double srate;
    double cst;              /* the theta-free part of the log-likelihood */
    double npos;             /* number of rows with w > 0                 */
    int nmax;
    double *eta;             /* N x nmax linear predictors, then residuals */
    double *sw2;             /* nmax sums of w r^2 / sigma^2 (gaussian)    */
} glm_t;

/* log Phi(x), the standard normal cdf, accurate in both tails (Rmath), and
 * *m = phi(x) / Phi(x) = d log Phi(x) / dx, the inverse Mills ratio, from the
 * same call of pnorm (the costly part of a probit likelihood). Below -100
 * log phi and log Phi are of order -5000 and their difference loses digits,
 * so the asymptotic series -x / (1 - 1/x^2 + 3/x^4 - 15/x^6) is used there
 * (relative error below 1e-14). */
static inline double log_pnorm_mills(double x, double *m)
{
    double lp = pnorm(x, 0.0, 1.0, 1, 1);
    if (x < -100) {
        double z = 1.0 / (x * x);
        *m = -x / (1.0 - z * (1.0 - z * (3.0 - 15.0 * z)));
    } else {
        *m = exp(-0.5 * x * x - M_LN_SQRT_2PI - lp);
    }
    return lp;
}

static int get_int(SEXP obj, const char *name, int *out)
{
    SEXP v = jko_list_elt(obj, name);
    if (Rf_isNull(v) || LENGTH(v) != 1) return 1;
    *out = Rf_asInteger(v);
    return *out == NA_INTEGER;
}

static const double *get_dbl(SEXP obj, const char *name, R_xlen_t len)
{
    SEXP v = jko_list_elt(obj, name);
    if (TYPEOF(v) != REALSXP || XLENGTH(v) != len) return NULL;
    return REAL(v);
}

/* Reads the object's x (N x p), y, weights, offset (N each), family_code,
 * link_code, prior_code (with prior_loc, prior_prec, prior_const or shape,
 * rate),
 * sigma_code (with sigma_rate) and const, made and checked by
 * target_glm(). */
int glm_setup(jko_pot *pot, SEXP obj, int nmax)
{
    glm_t *g = (glm_t *) R_alloc(1, sizeof(glm_t));
    SEXP X = jko_list_elt(obj, "x");
    if (TYPEOF(X) != REALSXP || !Rf_isMatrix(X)) return 1;
    g->X = REAL(X);
    g->N = Rf_nrows(X);
    g->p = Rf_ncols(X);
    if (g->N < 1 || g->p < 1) return 1;
    if (!(g->y = get_dbl(obj, "y", g->N)) || !(g->w = get_dbl(obj, "weights", g->N)) ||
        !(g->off = get_dbl(obj, "offset", g->N))) return 1;
    if (get_int(obj, "family_code", &g->family) || get_int(obj, "link_code", &g->link) ||
        get_int(obj, "prior_code", &g->prior) || get_int(obj, "sigma_code", &g->sprior))
        return 1;
    g->sig = g->family == FAM_GAUSSIAN;
    if (pot->D != g->p + g->sig + (g->prior == PRIOR_GAMMA)) return 1;
    if (g->prior == PRIOR_NORMAL &&
        (!(g->loc = get_dbl(obj, "prior_loc", g->p)) ||
         !(g->prec = get_dbl(obj, "prior_prec", (R_xlen_t) g->p * g->p)))) return 1;
    g->pcst = Rf_asReal(jko_list_elt(obj, "prior_const"));
    g->dz = (double *) R_alloc(g->p, sizeof(double));
    g->shape = Rf_asReal(jko_list_elt(obj, "shape"));
    g->rate = Rf_asReal(jko_list_elt(obj, "rate"));
    g->srate = Rf_asReal(jko_list_elt(obj, "sigma_rate"));
    g->cst = Rf_asReal(jko_list_elt(obj, "const"));
    g->npos = 0;
    for (int i = 0; i < g->N; i++) g->npos += g->w[i] > 0;
    /* the linear predictors of at most 2e7 / N points at a time */
    int cap = (int) (2e7 / g->N);
    g->nmax = nmax < 1 ? 1 : nmax;
    if (cap >= 1 && g->nmax > cap) g->nmax = cap;
    g->eta = (double *) R_alloc((size_t) g->N * g->nmax, sizeof(double));
    g->sw2 = (double *) R_alloc(g->nmax, sizeof(double));
    pot->state = g;
    return 0;
}

/* The log-likelihood of one point from its linear predictors es (N), which
 * are overwritten by d loglik / d eta; *sw2 receives sum w r^2 (gaussian). */
static double glm_loglik(const glm_t *g, double *es, double ls, double *sw2)
{
    const int N = g->N;
    double ll = 0, s2 = 0;
    const double isig = g->sig ? exp(-ls) : 1.0;
    for (int i = 0; i < N; i++) {
        const double wi = g->w[i], yi = g->y[i], t = es[i];
        if (wi == 0) { es[i] = 0; continue; }
        double d = 0;
        switch (g->family * 4 + g->link) {
        case FAM_BINOMIAL * 4 + LINK_LOGIT:
            ll += wi * (yi * t - jko_log1p_exp(t));
            d = wi * (yi - jko_sigmoid(t));
            break;
        case FAM_BINOMIAL * 4 + LINK_PROBIT: {
            /* only the terms with a non-zero factor: log Phi(+-t) may be
             * -Inf far out, and 0 * -Inf must not enter the sum */
            double m;
            if (yi > 0) { ll += wi * yi * log_pnorm_mills(t, &m); d += wi * yi * m; }
            if (yi < 1) { ll += wi * (1 - yi) * log_pnorm_mills(-t, &m); d -= wi * (1 - yi) * m; }
            break;
        }
        case FAM_POISSON * 4 + LINK_LOG: {
            double mu = exp(t);
            ll += wi * ((yi > 0 ? yi * t : 0) - mu);
            d = wi * (yi - mu);
            break;
        }
        case FAM_GAUSSIAN * 4 + LINK_IDENTITY: {
            double r = yi - t;
            /* (r / sigma)^2, with 0 for r = 0 even when 1 / sigma overflows */
            double q = r == 0 ? 0 : r * isig;
            ll -= 0.5 * wi * q * q;
            s2 += wi * q * q;
            d = r == 0 ? 0 : wi * q * isig;
            break;
        }
        }
        es[i] = d;
    }
    if (g->sig) ll -= g->npos * ls;
    *sw2 = s2;
    return ll + g->cst;
}

/* Phi and its gradient at n <= g->nmax points. */
static void glm_part(const glm_t *g, int D, const double *Y, int n, double *phi,
                     double *gphi)
{
    const int N = g->N, p = g->p;
    double *eta = g->eta;
    const double one = 1.0, zero = 0.0;
    /* eta = X beta for every point: N x n; beta is the first p of each column */
    F77_CALL(dgemm)("N", "N", &N, &n, &p, &one, g->X, &N, Y, &D, &zero, eta, &N
                    FCONE FCONE);
    double *sw2 = g->sw2;
    for (int s = 0; s < n; s++) {
        const double *th = Y + (size_t) D * s;
        double *es = eta + (size_t) N * s;
        for (int i = 0; i < N; i++) es[i] += g->off[i];
        double lp = 0;
        if (g->prior == PRIOR_NORMAL) {
            double q = 0;
            for (int c = 0; c < p; c++) g->dz[c] = th[c] - g->loc[c];
            for (int c = 0; c < p; c++) {
                double pc = 0;
                for (int e = 0; e < p; e++) pc += g->prec[c + (size_t) p * e] * g->dz[e];
                q += pc * g->dz[c];
            }
            lp = g->pcst - 0.5 * q;
        } else if (g->prior == PRIOR_GAMMA) {
            double tau = th[p + g->sig], al = exp(tau), ww = 0;
            for (int c = 0; c < p; c++) ww += th[c] * th[c];
            lp = 0.5 * p * (tau - log(2.0 * M_PI)) - 0.5 * al * ww +
                 g->shape * log(g->rate) - lgammafn(g->shape) +
                 g->shape * tau - g->rate * al;
        }
        if (g->sig && g->sprior == 1) {
            double ls = th[p];
            lp += log(g->srate) - g->srate * exp(ls) + ls;
        }
        double v = -(glm_loglik(g, es, g->sig ? th[p] : 0.0, sw2 + s) + lp);
        /* an overflow far out is a zero density: Phi = +Inf, not NaN */
        phi[s] = ISNAN(v) ? R_PosInf : v;
    }
    if (!gphi) return;
    /* grad_beta Phi = -X' dloglik/deta, then the prior's terms */
    const double mone = -1.0;
    F77_CALL(dgemm)("T", "N", &p, &n, &N, &mone, g->X, &N, eta, &N, &zero, gphi, &D
                    FCONE FCONE);
    for (int s = 0; s < n; s++) {
        const double *th = Y + (size_t) D * s;
        double *gr = gphi + (size_t) D * s;
        if (g->prior == PRIOR_NORMAL) {
            /* + P (beta - loc) */
            for (int c = 0; c < p; c++) g->dz[c] = th[c] - g->loc[c];
            for (int c = 0; c < p; c++) {
                double pc = 0;
                for (int e = 0; e < p; e++) pc += g->prec[c + (size_t) p * e] * g->dz[e];
                gr[c] += pc;
            }
        } else if (g->prior == PRIOR_GAMMA) {
            double al = exp(th[p + g->sig]), ww = 0;
            for (int c = 0; c < p; c++) { gr[c] += al * th[c]; ww += th[c] * th[c]; }
            gr[p + g->sig] = -(0.5 * p - 0.5 * al * ww + g->shape - g->rate * al);
        }
        if (g->sig) {
            /* d loglik / d log sigma = -n + sum w r^2 / sigma^2 */
            double gl = -(-g->npos + sw2[s]);
            if (g->sprior == 1) gl -= 1.0 - g->srate * exp(th[p]);
            gr[p] = gl;
        }
    }
}

int glm_eval(jko_pot *pot, const double *Y, int n, double *phi, double *gphi)
{
    glm_t *g = (glm_t *) pot->state;
    const int D = pot->D;
    for (int s = 0; s < n; s += g->nmax) {
        int c = n - s < g->nmax ? n - s : g->nmax;
        glm_part(g, D, Y + (size_t) D * s, c, phi + s, gphi ? gphi + (size_t) D * s : NULL);
    }
    return JKO_OK;
}
