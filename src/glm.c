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
 * Minibatches (`batch` b, NA for all rows): each evaluation draws b of the
 * n_+ rows with w_i > 0 without replacement (R's RNG, a partial
 * Fisher-Yates shuffle, on the main thread) and estimates the sum of their
 * log-likelihood terms by n_+ / b times the sum over the b rows drawn, an
 * unbiased estimate; the constants above, and the -n_+ log sigma of the
 * Gaussian, are exact. The same draw serves every point of the evaluation.
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
#include <R_ext/Utils.h>
#ifndef FCONE
# define FCONE
#endif
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include "jko.h"
#include "vmath.h"
#include "numerics.h"
#include "potentials.h"

enum { FAM_BINOMIAL = 0, FAM_POISSON = 1, FAM_GAUSSIAN = 2 };
enum { LINK_LOGIT = 0, LINK_PROBIT = 1, LINK_LOG = 2, LINK_IDENTITY = 3 };
enum { PRIOR_FLAT = 0, PRIOR_NORMAL = 1, PRIOR_GAMMA = 2 };

/* The prior of theta: of beta (PRIOR_*) and, for the gaussian family, of
 * log sigma. */
typedef struct {
    int p, sig;              /* sig = 1: theta[p] is log sigma (gaussian)  */
    int code;                /* PRIOR_*                                   */
    const double *loc, *prec;    /* normal prior: mean (p), precision (p x p) */
    double pcst;             /* its log det(P) / 2 - p log(2 pi) / 2       */
    double shape, rate;      /* Gamma prior of alpha                      */
    int scode;               /* prior of sigma: 0 flat in log sigma, 1 exp */
    double srate;
    double *dz;              /* p doubles of scratch                      */
} glm_prior;

/* Rows a piece of one point's log-likelihood covers: a point's sum over
 * its rows is the sum, in order, of its pieces' sums, each summed in row
 * order, so the result is the same whatever the number of threads (and,
 * below GLM_ROWS rows, the plain sum in row order). */
#define GLM_ROWS 16384

typedef struct {
    const double *X, *y, *w, *off; /* N x p design, N responses, weights
                                      (NULL: all 1), offsets (NULL: 0)     */
    int N, p, family, link;
    int sig;                 /* 1: theta[p] is log sigma (gaussian)       */
    glm_prior pr;
    double cst;              /* the theta-free part of the log-likelihood */
    double npos;             /* number of rows with w > 0                 */
    int batch;               /* rows of a minibatch; 0: every row         */
    int *used, *idx;         /* the npos rows with w > 0; shuffle scratch  */
    double *Xb, *yb, *wb, *ob;   /* the minibatch drawn: batch x p, batch  */
    /* the rows of the current evaluation: the data, or the minibatch
     * whose log-likelihood terms are scaled by `scale` */
    const double *cX, *cy, *cw, *co;    /* cw, co NULL as w, off */
    int rows;
    double scale;
    int nmax;
    double *eta;             /* rows x nmax linear predictors, then
                                d loglik / d eta                          */
    double *sw2;             /* nmax sums of w r^2 / sigma^2 (gaussian)    */
    double *part;            /* 2 per piece of GLM_ROWS rows of nmax points:
                                their log-likelihood and w r^2 sums        */
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
    if ((TYPEOF(v) != INTSXP && TYPEOF(v) != REALSXP) || XLENGTH(v) != 1) return 1;
    *out = Rf_asInteger(v);
    return *out == NA_INTEGER;
}

static const double *get_dbl(SEXP obj, const char *name, R_xlen_t len)
{
    SEXP v = jko_list_elt(obj, name);
    if (TYPEOF(v) != REALSXP || XLENGTH(v) != len) return NULL;
    return REAL(v);
}

/* a single finite number above lo (or any finite number for lo = -Inf) */
static int get_num(SEXP obj, const char *name, double lo, double *out)
{
    SEXP v = jko_list_elt(obj, name);
    if ((TYPEOF(v) != INTSXP && TYPEOF(v) != REALSXP) || XLENGTH(v) != 1) return 1;
    *out = Rf_asReal(v);
    return !R_FINITE(*out) || !(*out > lo);
}

#define FAIL(...) do { snprintf(err, JKO_ERRLEN, __VA_ARGS__); return JKO_ERR_DATA; } while (0)

/* The prior's part of the object: prior_code (with prior_loc, prior_prec,
 * prior_const or shape, rate) and sigma_code (with sigma_rate), for p
 * coefficients. */
static int prior_setup(glm_prior *pr, SEXP obj, int p, int sig, char *err)
{
    pr->p = p;
    pr->sig = sig;
    pr->loc = pr->prec = NULL;
    pr->pcst = 0;
    pr->shape = pr->rate = pr->srate = 1;
    if (get_int(obj, "prior_code", &pr->code) || pr->code < PRIOR_FLAT || pr->code > PRIOR_GAMMA)
        FAIL("`prior_code` must be 0 (flat), 1 (normal) or 2 (hierarchical)");
    if (pr->code == PRIOR_NORMAL) {
        if (!(pr->loc = get_dbl(obj, "prior_loc", p)) ||
            !(pr->prec = get_dbl(obj, "prior_prec", (R_xlen_t) p * p)))
            FAIL("a normal prior needs `prior_loc` and `prior_prec` of %d and %.0f numbers", p,
                 (double) p * p);
        if (get_num(obj, "prior_const", R_NegInf, &pr->pcst))
            FAIL("`prior_const` must be a finite number");
    }
    if (pr->code == PRIOR_GAMMA &&
        (get_num(obj, "shape", 0, &pr->shape) || get_num(obj, "rate", 0, &pr->rate)))
        FAIL("the hierarchical prior's `shape` and `rate` must be positive finite numbers");
    pr->scode = 0;
    if (sig) {
        if (get_int(obj, "sigma_code", &pr->scode) || pr->scode < 0 || pr->scode > 1)
            FAIL("`sigma_code` must be 0 (flat) or 1 (exponential)");
        if (pr->scode == 1 && get_num(obj, "sigma_rate", 0, &pr->srate))
            FAIL("`sigma_rate` must be a positive finite number");
    }
    pr->dz = (double *) R_alloc(p, sizeof(double));
    return JKO_OK;
}

/* The dimension of theta under the prior pr */
static int prior_dim(const glm_prior *pr)
{
    return pr->p + pr->sig + (pr->code == PRIOR_GAMMA);
}

/* log p(theta), the prior of beta (and alpha) and of log sigma, with their
 * normalising constants (0 for a flat prior). */
static double prior_logd(const glm_prior *pr, const double *th)
{
    const int p = pr->p;
    double lp = 0;
    if (pr->code == PRIOR_NORMAL) {
        double q = 0;
        for (int c = 0; c < p; c++) pr->dz[c] = th[c] - pr->loc[c];
        for (int c = 0; c < p; c++) {
            double pc = 0;
            for (int e = 0; e < p; e++) pc += pr->prec[c + (size_t) p * e] * pr->dz[e];
            q += pc * pr->dz[c];
        }
        lp = pr->pcst - 0.5 * q;
    } else if (pr->code == PRIOR_GAMMA) {
        /* beta | alpha ~ N(0, I / alpha), alpha ~ Gamma(shape, rate), and the
         * Jacobian alpha of tau = log alpha */
        double tau = th[p + pr->sig], al = exp(tau), ww = 0;
        for (int c = 0; c < p; c++) ww += th[c] * th[c];
        lp = 0.5 * p * (tau - log(2.0 * M_PI)) - 0.5 * al * ww +
             pr->shape * log(pr->rate) - lgammafn(pr->shape) +
             pr->shape * tau - pr->rate * al;
    }
    if (pr->sig && pr->scode == 1) {
        double ls = th[p];
        lp += log(pr->srate) - pr->srate * exp(ls) + ls;
    }
    return lp;
}

/* gr += -grad log p(beta [, alpha]): the prior of the coefficients' part
 * of grad Phi (log sigma's prior is added with its likelihood term). */
static void prior_grad(const glm_prior *pr, const double *th, double *gr)
{
    const int p = pr->p;
    if (pr->code == PRIOR_NORMAL) {
        /* + P (beta - loc) */
        for (int c = 0; c < p; c++) pr->dz[c] = th[c] - pr->loc[c];
        for (int c = 0; c < p; c++) {
            double pc = 0;
            for (int e = 0; e < p; e++) pc += pr->prec[c + (size_t) p * e] * pr->dz[e];
            gr[c] += pc;
        }
    } else if (pr->code == PRIOR_GAMMA) {
        double al = exp(th[p + pr->sig]), ww = 0;
        for (int c = 0; c < p; c++) { gr[c] += al * th[c]; ww += th[c] * th[c]; }
        gr[p + pr->sig] = -(0.5 * p - 0.5 * al * ww + pr->shape - pr->rate * al);
    }
}

/* Reads the object's x (N x p), p, y, weights, offset (N each; weights
 * and offset may be NULL),
 * family_code, link_code, the prior (prior_setup), const and batch (NA or
 * absent: every row), made by glm_target() in R, and checks them against
 * the dimension of the points. */
int glm_setup(jko_pot *pot, SEXP obj, int nmax, char *err)
{
    glm_t *g = (glm_t *) R_alloc(1, sizeof(glm_t));
    SEXP X = jko_list_elt(obj, "x");
    if (TYPEOF(X) != REALSXP || !Rf_isMatrix(X) || Rf_nrows(X) < 1 || Rf_ncols(X) < 1)
        FAIL("`x` must be a double matrix with at least one row and one column");
    g->X = REAL(X);
    g->N = Rf_nrows(X);
    g->p = Rf_ncols(X);
    int pp;
    if (get_int(obj, "p", &pp) || pp != g->p)
        FAIL("`p` must be the number of columns of `x` (%d)", g->p);
    /* weights and offsets may be absent (NULL): unit weights, no offsets */
    SEXP wt = jko_list_elt(obj, "weights"), of = jko_list_elt(obj, "offset");
    g->w = Rf_isNull(wt) ? NULL : get_dbl(obj, "weights", g->N);
    g->off = Rf_isNull(of) ? NULL : get_dbl(obj, "offset", g->N);
    if (!(g->y = get_dbl(obj, "y", g->N)) || (!Rf_isNull(wt) && !g->w) ||
        (!Rf_isNull(of) && !g->off))
        FAIL("`y`, `weights` and `offset` must be double vectors of length %d (the rows of `x`)",
             g->N);
    if (get_int(obj, "family_code", &g->family) || get_int(obj, "link_code", &g->link) ||
        !((g->family == FAM_BINOMIAL && (g->link == LINK_LOGIT || g->link == LINK_PROBIT)) ||
          (g->family == FAM_POISSON && g->link == LINK_LOG) ||
          (g->family == FAM_GAUSSIAN && g->link == LINK_IDENTITY)))
        FAIL("`family_code` and `link_code` must name binomial (logit, probit), poisson (log) "
             "or gaussian (identity)");
    g->sig = g->family == FAM_GAUSSIAN;
    if (prior_setup(&g->pr, obj, g->p, g->sig, err)) return JKO_ERR_DATA;
    if (pot->D != prior_dim(&g->pr))
        FAIL("the target has %d parameters (%d coefficients%s%s) but the points have dimension %d",
             prior_dim(&g->pr), g->p, g->sig ? ", log sigma" : "",
             g->pr.code == PRIOR_GAMMA ? ", log alpha" : "", pot->D);
    if (get_num(obj, "const", R_NegInf, &g->cst)) FAIL("`const` must be a finite number");
    g->npos = g->N;
    if (g->w) {
        g->npos = 0;
        for (int i = 0; i < g->N; i++) {
            if (!(g->w[i] >= 0) || !R_FINITE(g->w[i]))
                FAIL("`weights` must be finite and non-negative");
            g->npos += g->w[i] > 0;
        }
    }
    /* batch: NA or absent for every row */
    SEXP bt = jko_list_elt(obj, "batch");
    int b = 0;
    if (!Rf_isNull(bt)) {
        double bd = (TYPEOF(bt) == LGLSXP || TYPEOF(bt) == INTSXP || TYPEOF(bt) == REALSXP) &&
                    XLENGTH(bt) == 1 ? Rf_asReal(bt) : 0;
        if (!ISNAN(bd) && (!(bd >= 1) || bd != floor(bd) || bd > INT_MAX))
            FAIL("`batch` must be NA or a whole number >= 1");
        if (!ISNAN(bd)) b = (int) bd;
    }
    g->batch = (b == 0 || b >= g->npos) ? 0 : b;
    g->cX = g->X; g->cy = g->y; g->cw = g->w; g->co = g->off;
    g->rows = g->N;
    g->scale = 1.0;
    if (g->batch) {
        const int nb = g->batch, np = (int) g->npos;
        g->used = (int *) R_alloc(np, sizeof(int));
        g->idx = (int *) R_alloc(np, sizeof(int));
        for (int i = 0, k = 0; i < g->N; i++) if (!g->w || g->w[i] > 0) g->used[k++] = i;
        g->Xb = (double *) R_alloc((size_t) nb * g->p, sizeof(double));
        g->yb = (double *) R_alloc(nb, sizeof(double));
        g->wb = g->w ? (double *) R_alloc(nb, sizeof(double)) : NULL;
        g->ob = g->off ? (double *) R_alloc(nb, sizeof(double)) : NULL;
        g->cX = g->Xb; g->cy = g->yb; g->cw = g->wb; g->co = g->ob;
        g->rows = nb;
        g->scale = g->npos / nb;
    }
    /* the linear predictors of at most 2e7 / rows points at a time */
    int cap = (int) (2e7 / g->rows);
    g->nmax = nmax < 1 ? 1 : nmax;
    if (cap >= 1 && g->nmax > cap) g->nmax = cap;
    g->eta = (double *) R_alloc((size_t) g->rows * g->nmax, sizeof(double));
    g->sw2 = (double *) R_alloc(g->nmax, sizeof(double));
    g->part = (double *) R_alloc(2 * (size_t) g->nmax * ((g->rows + GLM_ROWS - 1) / GLM_ROWS),
                                 sizeof(double));
    pot->state = g;
    return JKO_OK;
}

/* A fresh minibatch: `batch` of the rows with w > 0, without replacement
 * (a partial Fisher-Yates shuffle with R's RNG). */
void glm_draw(jko_pot *pot)
{
    glm_t *g = (glm_t *) pot->state;
    if (!g->batch) return;
    const int N = g->N, np = (int) g->npos, nb = g->batch;
    memcpy(g->idx, g->used, (size_t) np * sizeof(int));
    for (int i = 0; i < nb; i++) {
        int j = i + (int) floor(unif_rand() * (np - i));
        if (j >= np) j = np - 1;
        int t = g->idx[i]; g->idx[i] = g->idx[j]; g->idx[j] = t;
    }
    for (int c = 0; c < g->p; c++)
        for (int i = 0; i < nb; i++)
            g->Xb[i + (size_t) nb * c] = g->X[g->idx[i] + (size_t) N * c];
    for (int i = 0; i < nb; i++) {
        int r = g->idx[i];
        g->yb[i] = g->y[r];
        if (g->wb) g->wb[i] = g->w[r];
        if (g->ob) g->ob[i] = g->off[r];
    }
}

/* The row loops are compiled without trapping math (vmath.h explains) */
JKO_VMATH_BEGIN

/* A row loop specialised on whether the rows have weights and offsets and
 * whether the derivatives are wanted (each a loop the compiler vectorises
 * without tests inside), into ll */
#define GLM_ROWS_DISPATCH(LOOP)                                                   \
    if (grad) {                                                                   \
        if (w && off) { LOOP(w[i], off[i], 1) }                                   \
        else if (w) { LOOP(w[i], 0.0, 1) }                                        \
        else if (off) { LOOP(1.0, off[i], 1) }                                    \
        else { LOOP(1.0, 0.0, 1) }                                                \
    } else {                                                                      \
        if (w && off) { LOOP(w[i], off[i], 0) }                                   \
        else if (w) { LOOP(w[i], 0.0, 0) }                                        \
        else if (off) { LOOP(1.0, off[i], 0) }                                    \
        else { LOOP(1.0, 0.0, 0) }                                                \
    }

/* The logistic rows (binomial, logit link) of glm_rows(), as one loop
 * without calls or branches that the compiler vectorises (cloned by
 * JKO_CLONES): the same terms,
 * log(1 + e^t) = max(t, 0) + log(1 + e^{-|t|}) and the logistic of t from
 * the one e^{-|t|}, by jko_vexp() and jko_vlog1p01() in place of libm's exp
 * and log1p (a row's term within a few ulp of theirs; e^{-|t|} floored at
 * e^{-708}, whose log(1 + e) is below 1e-307). A row of weight 0 adds 0
 * and has derivative 0. */
#define GLM_LOGIT_LOOP(WI, OI, GRAD)                                              \
    JKO_SIMD_SUM(ll)                                                              \
    for (int i = i0; i < i1; i++) {                                               \
        const double wi = (WI), yi = y[i], t = es[i] + (OI);                      \
        const double a = fabs(t), e = jko_vexp(-(a > 708.0 ? 708.0 : a));          \
        const double term = yi * t - ((t > 0 ? t : 0) + jko_vlog1p01(e));         \
        ll += wi == 0 ? 0.0 : wi * term;                                          \
        if (GRAD) {                                                               \
            const double inv = 1.0 / (1.0 + e);                                   \
            es[i] = wi == 0 ? 0.0 : wi * (yi - (t >= 0 ? inv : e * inv));         \
        }                                                                         \
    }

JKO_CLONES static double glm_rows_logit(const double *w, const double *y, const double *off,
                                        double *es, int i0, int i1, int grad)
{
    double ll = 0;
    GLM_ROWS_DISPATCH(GLM_LOGIT_LOOP)
    return ll;
}

/* The Poisson rows (log link) likewise: mu = e^t by jko_vexp() (t above
 * log of the largest double: +Inf, as libm's; below -708, e^{-708}, an
 * error below 1e-307 in a term). */
#define GLM_POIS_LOOP(WI, OI, GRAD)                                               \
    JKO_SIMD_SUM(ll)                                                              \
    for (int i = i0; i < i1; i++) {                                               \
        const double wi = (WI), yi = y[i], t = es[i] + (OI);                      \
        const double mu = t > 0x1.62e42fefa39efp+9 ? R_PosInf                     \
                          : jko_vexp(t < -708.0 ? -708.0 : t);                     \
        ll += wi == 0 ? 0.0 : wi * ((yi > 0 ? yi * t : 0) - mu);                  \
        if (GRAD) es[i] = wi == 0 ? 0.0 : wi * (yi - mu);                         \
    }

JKO_CLONES static double glm_rows_pois(const double *w, const double *y, const double *off,
                                       double *es, int i0, int i1, int grad)
{
    double ll = 0;
    GLM_ROWS_DISPATCH(GLM_POIS_LOOP)
    return ll;
}

JKO_VMATH_END

/* The log-likelihood terms of rows [i0, i1) of one point from their linear
 * predictors es (one per row of the evaluation, offsets not yet added),
 * which are overwritten by d loglik / d eta (before the minibatch's scale)
 * when `grad`; their sum into *ll and the sum of w r^2 / sigma^2
 * (gaussian) into *s2. isig = 1 / sigma (gaussian). */
static void glm_rows(const glm_t *g, double *es, double isig, int i0, int i1, int grad,
                     double *ll_out, double *s2_out)
{
    const double *w = g->cw, *y = g->cy, *off = g->co;
    if (g->family == FAM_BINOMIAL && g->link == LINK_LOGIT) {
        *ll_out = glm_rows_logit(w, y, off, es, i0, i1, grad);
        *s2_out = 0;
        return;
    }
    if (g->family == FAM_POISSON) {
        *ll_out = glm_rows_pois(w, y, off, es, i0, i1, grad);
        *s2_out = 0;
        return;
    }
    double ll = 0, s2 = 0;
    for (int i = i0; i < i1; i++) {
        const double wi = w ? w[i] : 1.0, yi = y[i];
        if (wi == 0) { es[i] = 0; continue; }
        const double t = off ? es[i] + off[i] : es[i];
        double d = 0;
        switch (g->family * 4 + g->link) {
        case FAM_BINOMIAL * 4 + LINK_LOGIT: {
            /* log(1 + e^t) and the logistic of t from one exp of -|t|
             * (jko_log1p_exp() and jko_sigmoid(), the same numbers) */
            const double e = exp(-fabs(t));
            ll += wi * (yi * t - ((t > 0 ? t : 0) + log1p(e)));
            if (grad) d = wi * (yi - (t >= 0 ? 1.0 / (1.0 + e) : e / (1.0 + e)));
            break;
        }
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
        if (grad) es[i] = d;
    }
    *ll_out = ll;
    *s2_out = s2;
}

/* Phi and its gradient at n <= g->nmax points, the pieces of rows of all
 * points (GLM_ROWS each) shared among nt OpenMP threads. */
static void glm_part(const glm_t *g, int D, const double *Y, int n, double *phi,
                     double *gphi, int nt)
{
    const int rows = g->rows, p = g->p, nb = (rows + GLM_ROWS - 1) / GLM_ROWS;
    double *eta = g->eta, *part = g->part;
    const double one = 1.0, zero = 0.0;
    /* eta = X beta for every point: rows x n; beta is the first p of each column */
    /* one point: a matrix-vector product (dgemm of one column packs all of
     * X first, which took most of a single point's time on 58 101 rows) */
    const int inc = 1;
    if (n == 1)
        F77_CALL(dgemv)("N", &rows, &p, &one, g->cX, &rows, Y, &inc, &zero, eta, &inc FCONE);
    else
        F77_CALL(dgemm)("N", "N", &rows, &n, &p, &one, g->cX, &rows, Y, &D, &zero, eta, &rows
                        FCONE FCONE);
    const int items = n * nb, grad = gphi != NULL;
    int nth = jko_nthreads(nt, items);
#ifdef _OPENMP
#pragma omp parallel for num_threads(nth) schedule(static) if (nth > 1)
#endif
    for (int it = 0; it < items; it++) {
        const int s = it / nb, b = it % nb;
        const double *th = Y + (size_t) D * s;
        const int i0 = b * GLM_ROWS, i1 = rows - i0 < GLM_ROWS ? rows : i0 + GLM_ROWS;
        glm_rows(g, eta + (size_t) rows * s, g->sig ? exp(-th[p]) : 1.0, i0, i1, grad,
                 part + 2 * (size_t) it, part + 2 * (size_t) it + 1);
    }
    (void) nth;
    double *sw2 = g->sw2;
    for (int s = 0; s < n; s++) {
        const double *th = Y + (size_t) D * s;
        double ll = 0, s2 = 0;
        for (int b = 0; b < nb; b++) {
            ll += part[2 * ((size_t) s * nb + b)];
            s2 += part[2 * ((size_t) s * nb + b) + 1];
        }
        /* (the scale is 1 without minibatches: then these products are exact) */
        ll *= g->scale;
        if (g->sig) ll -= g->npos * th[p];
        sw2[s] = s2 * g->scale;
        double lp = prior_logd(&g->pr, th);
        double v = -((ll + g->cst) + lp);
        /* an overflow far out is a zero density: Phi = +Inf, not NaN */
        phi[s] = ISNAN(v) ? R_PosInf : v;
    }
    if (!gphi) return;
    /* grad_beta Phi = -scale X' dloglik/deta, then the prior's terms */
    const double msc = -g->scale;
    if (n == 1)
        F77_CALL(dgemv)("T", &rows, &p, &msc, g->cX, &rows, eta, &inc, &zero, gphi, &inc FCONE);
    else
        F77_CALL(dgemm)("T", "N", &p, &n, &rows, &msc, g->cX, &rows, eta, &rows, &zero, gphi, &D
                        FCONE FCONE);
    for (int s = 0; s < n; s++) {
        const double *th = Y + (size_t) D * s;
        double *gr = gphi + (size_t) D * s;
        prior_grad(&g->pr, th, gr);
        if (g->sig) {
            /* d loglik / d log sigma = -n + sum w r^2 / sigma^2 */
            double gl = -(-g->npos + sw2[s]);
            if (g->pr.scode == 1) gl -= 1.0 - g->pr.srate * exp(th[p]);
            gr[p] = gl;
        }
    }
}

int glm_eval(jko_pot *pot, const double *Y, int n, double *phi, double *gphi)
{
    glm_t *g = (glm_t *) pot->state;
    const int D = pot->D;
    for (int s = 0; s < n; s += g->nmax) {
        if (s) R_CheckUserInterrupt();   /* rows x nmax terms a part */
        int c = n - s < g->nmax ? n - s : g->nmax;
        glm_part(g, D, Y + (size_t) D * s, c, phi + s, gphi ? gphi + (size_t) D * s : NULL,
                 pot->threads);
    }
    return JKO_OK;
}

/* The prior's log-density at the columns of Y (D x n) into lp, from the
 * prior's part of a glm target (see prior_setup; `p` the number of
 * coefficients, family_code for log sigma). */
int glm_log_prior(SEXP obj, int D, const double *Y, int n, double *lp, char *err)
{
    glm_prior pr;
    int p, family;
    if (TYPEOF(obj) != VECSXP) FAIL("the prior must be a list");
    if (get_int(obj, "p", &p) || p < 1) FAIL("`p` must be a whole number >= 1");
    if (get_int(obj, "family_code", &family) || family < FAM_BINOMIAL || family > FAM_GAUSSIAN)
        FAIL("`family_code` must be 0, 1 or 2");
    if (prior_setup(&pr, obj, p, family == FAM_GAUSSIAN, err)) return JKO_ERR_DATA;
    if (prior_dim(&pr) != D)
        FAIL("the prior has %d parameters but the points have dimension %d", prior_dim(&pr), D);
    for (int s = 0; s < n; s++) lp[s] = prior_logd(&pr, Y + (size_t) D * s);
    return JKO_OK;
}
