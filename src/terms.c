/* The terms of a free energy (the protocol is in terms.h): interaction
 * kernels, the entropy and the porous-medium energy, their table, and the
 * sum over the terms of an energy. */
#include <R.h>
#include <Rinternals.h>
#include <R_ext/Utils.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include "jko.h"
#include "terms.h"

/* ---- interaction: 1/2 E W(Y - Y'), Y, Y' independent ----
 *
 * Estimated on pairs within blocks: the batch is cut into nb = n / block
 * consecutive blocks (sizes block..2 block - 1; one block of n when
 * n < 2 block), the batch's points being independent draws. Point i in a
 * block of m points gets
 *
 *   v_i = sum_{j != i} W(y_i - y_j) / (2 (m - 1)),
 *   g_i = sum_{j != i} grad W(y_i - y_j) / (m - 1)
 *
 * (W even, grad W odd: the pair (i, j) enters E through both points), an
 * unbiased estimate of the energy at O(n block) cost instead of O(n^2). */

/* A kernel: W(z) and, unless gz is NULL, grad W(z) into gz. */
typedef double (*kern_fn)(const double *par, const double *z, int D, double *gz);

/* W(z) = |z|^2 / 2 */
static double kern_quadratic(const double *par, const double *z, int D, double *gz)
{
    (void) par;
    double s = 0;
    for (int d = 0; d < D; d++) s += z[d] * z[d];
    if (gz) for (int d = 0; d < D; d++) gz[d] = z[d];
    return 0.5 * s;
}

/* W(z) = |z|^a / a - |z|^b / b (b = 0: - log |z|); par = a, b. grad W(z) =
 * (|z|^a - |z|^b) z / |z|^2 (|z|^0 = 1 for b = 0), taken as 0 at z = 0.
 * The powers most used (1, 2) without pow(). */
static double r_pow(double r, double s, double a)
{
    return a == 2 ? s : a == 1 ? r : a == 0 ? 1 : pow(r, a);
}

static double kern_power(const double *par, const double *z, int D, double *gz)
{
    const double a = par[0], b = par[1];
    double s = 0;
    for (int d = 0; d < D; d++) s += z[d] * z[d];
    const double r = sqrt(s), ra = r_pow(r, s, a), rb = r_pow(r, s, b);
    if (gz) {
        const double c = s > 0 ? (ra - rb) / s : 0;
        for (int d = 0; d < D; d++) gz[d] = c * z[d];
    }
    return ra / a - (b == 0 ? log(r) : rb / b);
}

static int n_blocks(int n, int block)
{
    int nb = n / block;
    return nb < 1 ? 1 : nb;
}

static int pairs_eval(jko_term *t, const term_batch *b, kern_fn k, double *val,
                      double *g)
{
    const int D = b->D, n = b->n, nb = n_blocks(n, t->block);
    if (n < 2) return JKO_ERR_NONFINITE;
    const double *par = t->par;
    /* groups of blocks of about JKO_CHUNK points, an interrupt checked
     * between groups (each block's sums are the same whatever the group) */
    const int G = JKO_CHUNK / t->block > 1 ? JKO_CHUNK / t->block : 1;
    for (int q0 = 0; q0 < nb; q0 += G) {
        const int q1 = nb - q0 < G ? nb : q0 + G;
        if (q0) R_CheckUserInterrupt();
#ifdef _OPENMP
#pragma omp parallel for num_threads(b->nth) schedule(dynamic)
#endif
        for (int q = q0; q < q1; q++) {
            const int s = (int) ((long long) q * n / nb), e = (int) ((long long) (q + 1) * n / nb);
            const double cv = 0.5 / (e - s - 1), cg = 1.0 / (e - s - 1);
            double *z = t->work + (size_t) 2 * D * q, *gz = z + D;
            for (int i = s; i < e; i++) {
                const double *yi = b->Y + (size_t) D * i;
                for (int j = i + 1; j < e; j++) {
                    const double *yj = b->Y + (size_t) D * j;
                    for (int d = 0; d < D; d++) z[d] = yi[d] - yj[d];
                    double w = k(par, z, D, g ? gz : NULL);
                    val[i] += cv * w;
                    val[j] += cv * w;
                    if (g) {
                        double *gi = g + (size_t) D * i, *gj = g + (size_t) D * j;
                        for (int d = 0; d < D; d++) {
                            gi[d] += cg * gz[d];
                            gj[d] -= cg * gz[d];
                        }
                    }
                }
            }
        }
    }
    return JKO_OK;
}

#define FAIL(...) do { snprintf(err, JKO_ERRLEN, __VA_ARGS__); return JKO_ERR_DATA; } while (0)

static int interaction_setup(jko_term *t, SEXP obj, int D, int nmax, char *err)
{
    (void) obj;
    if (t->block < 2) FAIL("`block` must be a whole number >= 2");
    int nb = n_blocks(nmax, t->block);
    t->work = (double *) R_alloc((size_t) 2 * D * nb, sizeof(double));
    return JKO_OK;
}

/* par = a, b with a > 0 and b < a (kern_power) */
static int power_setup(jko_term *t, SEXP obj, int D, int nmax, char *err)
{
    if (t->npar != 2 || !R_FINITE(t->par[0]) || !R_FINITE(t->par[1]) || !(t->par[0] > 0) ||
        !(t->par[1] < t->par[0]))
        FAIL("`par` must hold the exponents a > 0 and b < a");
    return interaction_setup(t, obj, D, nmax, err);
}

static int quadratic_eval(jko_term *t, const term_batch *b, double *val, double *g,
                          double *lam)
{
    (void) lam;
    return pairs_eval(t, b, kern_quadratic, val, g);
}

static int power_eval(jko_term *t, const term_batch *b, double *val, double *g,
                      double *lam)
{
    (void) lam;
    return pairs_eval(t, b, kern_power, val, g);
}

/* A kernel evaluated in R: interaction_eval_r(obj, z, iter, grad) with z
 * the P x D matrix of the pairs' differences y_i - y_j (i < j, block by
 * block) returns list(value = P numbers, gradient = P x D or NULL),
 * checked there. */
static int r_kernel_setup(jko_term *t, SEXP obj, int D, int nmax, char *err)
{
    (void) D; (void) nmax;
    if (t->block < 2) FAIL("`block` must be a whole number >= 2");
    if (!Rf_isFunction(jko_list_elt(obj, "W"))) FAIL("`W` must be a function");
    /* the pairs' differences go to R as the rows of a matrix: at most
     * n (m - 1) / 2 of them for blocks of at most m = min(n, 2 block) points */
    double m = (double) nmax < 2.0 * t->block ? nmax : 2.0 * t->block;
    if ((double) nmax * (m - 1) / 2 > INT_MAX)
        FAIL("batches of %d points in blocks of %d give up to %.0f pairs, more than the "
             "%d rows of an R matrix", nmax, t->block, (double) nmax * (m - 1) / 2, INT_MAX);
    SEXP ns = PROTECT(R_FindNamespace(Rf_mkString("jkoflow")));
    t->rfun = Rf_findFun(Rf_install("interaction_eval_r"), ns);
    UNPROTECT(1);
    return JKO_OK;
}

static int r_kernel_eval(jko_term *t, const term_batch *b, double *val, double *g,
                         double *lam)
{
    (void) lam;
    const int D = b->D, n = b->n, nb = n_blocks(n, t->block);
    if (n < 2) return JKO_ERR_NONFINITE;
    R_xlen_t P = 0;
    for (int q = 0; q < nb; q++) {
        R_xlen_t m = (R_xlen_t) ((long long) (q + 1) * n / nb - (long long) q * n / nb);
        P += m * (m - 1) / 2;
    }
    SEXP z = PROTECT(Rf_allocMatrix(REALSXP, (int) P, D));
    double *pz = REAL(z);
    R_xlen_t p = 0;
    for (int q = 0; q < nb; q++) {
        const int s = (int) ((long long) q * n / nb), e = (int) ((long long) (q + 1) * n / nb);
        for (int i = s; i < e; i++)
            for (int j = i + 1; j < e; j++, p++)
                for (int d = 0; d < D; d++)
                    pz[p + P * d] = b->Y[d + (size_t) D * i] - b->Y[d + (size_t) D * j];
    }
    SEXP it = PROTECT(Rf_ScalarInteger(b->iter));
    SEXP wg = PROTECT(Rf_ScalarLogical(g != NULL));
    SEXP call = PROTECT(Rf_lang5(t->rfun, t->obj, z, it, wg));
    SEXP res = PROTECT(Rf_eval(call, R_GlobalEnv));
    const double *w = REAL(VECTOR_ELT(res, 0));
    const double *gw = g ? REAL(VECTOR_ELT(res, 1)) : NULL;
    p = 0;
    for (int q = 0; q < nb; q++) {
        const int s = (int) ((long long) q * n / nb), e = (int) ((long long) (q + 1) * n / nb);
        const double cv = 0.5 / (e - s - 1), cg = 1.0 / (e - s - 1);
        for (int i = s; i < e; i++)
            for (int j = i + 1; j < e; j++, p++) {
                val[i] += cv * w[p];
                val[j] += cv * w[p];
                if (g)
                    for (int d = 0; d < D; d++) {
                        g[d + (size_t) D * i] += cg * gw[p + P * d];
                        g[d + (size_t) D * j] -= cg * gw[p + P * d];
                    }
            }
    }
    UNPROTECT(5);
    return JKO_OK;
}

/* ---- internal energies, from the log-densities of the points ---- */

/* beta^{-1} int rho log rho = E log rho(Y) / beta. In training only its
 * change matters: -logdet / beta where the points' densities are unknown;
 * outside training, without densities, NA. */
static int entropy_eval(jko_term *t, const term_batch *b, double *val, double *g,
                        double *lam)
{
    (void) t; (void) g;
    const double ib = 1.0 / b->beta;
    for (int i = 0; i < b->n; i++) {
        /* no densities and no map: unknown */
        val[i] += b->lrho ? b->lrho[i] * ib : b->ld ? -b->ld[i] * ib : NA_REAL;
        if (lam && b->ld) lam[i] -= ib;
    }
    return JKO_OK;
}

/* par = m > 1 */
static int porous_setup(jko_term *t, SEXP obj, int D, int nmax, char *err)
{
    (void) obj; (void) D; (void) nmax;
    if (t->npar != 1 || !R_FINITE(t->par[0]) || !(t->par[0] > 1))
        FAIL("`par` must hold the exponent m > 1");
    return JKO_OK;
}

/* int rho^m / (m - 1) = E rho(Y)^(m-1) / (m - 1); par = m. With
 * rho(Y) = rho_{k-1}(x) / det Hess psi(x), d/d logdet = -rho(Y)^(m-1). */
static int porous_eval(jko_term *t, const term_batch *b, double *val, double *g,
                       double *lam)
{
    (void) g;
    const double m1 = t->par[0] - 1.0;
    if (!b->lrho) return JKO_ERR_NONFINITE;
    for (int i = 0; i < b->n; i++) {
        const double r = exp(m1 * b->lrho[i]);
        val[i] += r / m1;
        if (lam && b->ld) lam[i] -= r;
    }
    return JKO_OK;
}

static const term_kind term_kinds[] = {
    {"interaction_quadratic", interaction_setup, quadratic_eval, 0},
    {"interaction_power", power_setup, power_eval, 0},
    {"interaction_fn", r_kernel_setup, r_kernel_eval, 0},
    {"diffusion_entropy", NULL, entropy_eval, 0},
    {"diffusion_porous", porous_setup, porous_eval, 1},
    {NULL, NULL, NULL, 0}
};

static int term_setup(jko_term *t, SEXP obj, int D, int nmax, char *err)
{
    memset(t, 0, sizeof(*t));
    t->D = D;
    t->obj = obj;
    SEXP bt = jko_list_elt(obj, "builtin");
    if (TYPEOF(obj) != VECSXP || TYPEOF(bt) != STRSXP || XLENGTH(bt) != 1 ||
        STRING_ELT(bt, 0) == NA_STRING)
        FAIL("a term of a free energy must be one that its constructor made (a list with "
             "the name of a built-in kind in `builtin`)");
    const char *name = CHAR(STRING_ELT(bt, 0));
    for (const term_kind *k = term_kinds; k->name; k++)
        if (strcmp(name, k->name) == 0) { t->kind = k; break; }
    if (!t->kind) FAIL("unknown built-in term \"%.100s\"", name);
    SEXP par = jko_list_elt(obj, "par");
    if (!Rf_isNull(par) && TYPEOF(par) != REALSXP)
        FAIL("invalid term \"%s\": `par` must be a double vector", name);
    if (!Rf_isNull(par)) {
        t->par = REAL(par);
        t->npar = XLENGTH(par);
    }
    SEXP bl = jko_list_elt(obj, "block");
    t->block = 0;
    if ((TYPEOF(bl) == INTSXP || TYPEOF(bl) == REALSXP) && XLENGTH(bl) == 1) {
        double b = Rf_asReal(bl);
        if (R_FINITE(b) && b == floor(b) && b >= 2 && b <= INT_MAX) t->block = (int) b;
    }
    char why[JKO_ERRLEN];
    if (t->kind->setup && t->kind->setup(t, obj, D, nmax, why))
        FAIL("invalid term \"%s\": %.400s", name, why);
    return JKO_OK;
}

int energy_setup(jko_energy *e, SEXP obj, int D, int nmax, char *err)
{
    memset(e, 0, sizeof(*e));
    if (TYPEOF(obj) != VECSXP) FAIL("a free energy must be a list");
    SEXP pot = jko_list_elt(obj, "potential"), terms = jko_list_elt(obj, "terms");
    if (!Rf_isNull(pot)) {
        if (pot_setup(&e->pot, pot, D, nmax, err)) return JKO_ERR_DATA;
        e->has_pot = 1;
        e->phi = (double *) R_alloc(nmax, sizeof(double));
        e->gphi = (double *) R_alloc((size_t) D * nmax, sizeof(double));
    }
    if (TYPEOF(terms) != VECSXP) FAIL("a free energy's `terms` must be a list");
    e->nterm = LENGTH(terms);
    e->terms = (jko_term *) R_alloc(e->nterm > 0 ? e->nterm : 1, sizeof(jko_term));
    for (int k = 0; k < e->nterm; k++) {
        if (term_setup(e->terms + k, VECTOR_ELT(terms, k), D, nmax, err)) return JKO_ERR_DATA;
        if (e->terms[k].kind->density) e->density = 1;
    }
    return JKO_OK;
}

int energy_eval(jko_energy *e, const term_batch *b, double *val, double *g,
                double *lam)
{
    const int n = b->n;
    const size_t Dn = (size_t) b->D * n;
    int st = JKO_OK;
    if (e->has_pot) {
        e->pot.iter = b->iter;
        st = pot_eval(&e->pot, b->Y, n, e->phi, g ? e->gphi : NULL);
        for (int i = 0; i < n; i++) val[i] += e->phi[i];
        if (g) for (size_t q = 0; q < Dn; q++) g[q] += e->gphi[q];
    }
    for (int k = 0; k < e->nterm; k++) {
        jko_term *t = e->terms + k;
        int s = t->kind->eval(t, b, val, g, lam);
        if (s && !st) st = s;
    }
    if (st) return st;
    for (int i = 0; i < n; i++) if (!R_FINITE(val[i])) return JKO_ERR_NONFINITE;
    if (g) for (size_t q = 0; q < Dn; q++) if (!R_FINITE(g[q])) return JKO_ERR_NONFINITE;
    return JKO_OK;
}
