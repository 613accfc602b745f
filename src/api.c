/* The .Call entry points: thin wrappers that check and convert R objects,
 * call the cores (plain C types, status codes) and return named lists.
 * Batches arrive as D x n matrices (one sample per column), already checked
 * in R. Every status a core returns goes back by name (status_name); the R
 * side turns it into a message in one place (jko_status_message()). */
#include <R.h>
#include <Rinternals.h>
#include <R_ext/Utils.h>
#include <limits.h>
#include <math.h>
#include <string.h>
#include "jko.h"
#include "icnn.h"
#include "map.h"
#include "potentials.h"
#include "terms.h"
#include "train.h"

static const char *status_name(int st)
{
    switch (st) {
    case JKO_OK: return "ok";
    case JKO_ERR_NONFINITE: return "nonfinite";
    case JKO_ERR_NOTPD: return "not_pd";
    case JKO_ERR_DIVERGED: return "diverged";
    default: return "failure";
    }
}

/* list(name_1 = value_1, ...) from n pairs */
static SEXP named_list(int n, const char **names, SEXP *values)
{
    SEXP ans = PROTECT(Rf_allocVector(VECSXP, n));
    SEXP nms = PROTECT(Rf_allocVector(STRSXP, n));
    for (int i = 0; i < n; i++) {
        SET_VECTOR_ELT(ans, i, values[i]);
        SET_STRING_ELT(nms, i, Rf_mkChar(names[i]));
    }
    Rf_setAttrib(ans, R_NamesSymbol, nms);
    UNPROTECT(2);
    return ans;
}

/* the first n values of the double vector x, as a new vector */
static SEXP head_real(SEXP x, int n)
{
    SEXP y = Rf_allocVector(REALSXP, n);
    memcpy(REAL(y), REAL(x), (size_t) n * sizeof(double));
    return y;
}

/* arch = c(D, L, r, activation, w_1, ..., w_L) */
static void net_from_sexp(icnn_t *net, SEXP arch, SEXP alpha_min)
{
    if (TYPEOF(arch) != INTSXP || XLENGTH(arch) < 5)
        Rf_error("'arch' must be an integer vector of length at least 5");
    const int *a = INTEGER(arch);
    double am = Rf_asReal(alpha_min);
    if (!(am > 0) || !R_FINITE(am)) Rf_error("'alpha_min' must be a positive number");
    if (XLENGTH(arch) != 4 + (R_xlen_t) a[1]) Rf_error("invalid network architecture");
    int st = icnn_setup(net, a[0], a[1], a + 4, a[2], a[3], am);
    if (st == JKO_ERR_SIZE)
        Rf_error("the network is too large: its parameters, or width x rank x dimension of "
                 "a layer, or the dimension squared, exceed %d", INT_MAX);
    if (st) Rf_error("invalid network architecture");
}

/* A workspace of the network for batches of nmax points (icnn.h), or an R
 * error naming the sizes. */
static void check_ws(const icnn_t *net, int nmax, int hess, int nth)
{
    double need;
    if (icnn_ws_check(net, nmax, hess, nth, &need))
        Rf_error("batches of %d points of dimension %d are too large for this network "
                 "(widest layer %d, rank %d): %.4g doubles of workspace, and dimension x "
                 "points must stay below %d", nmax, net->D, net->wmax, net->r, need, INT_MAX);
}

/* A count from R: a whole number in [lo, INT_MAX], not NA, as an int (a
 * double beyond the int range is an error, not NA). */
static int count_arg(SEXP x, const char *name, int lo)
{
    double v = (TYPEOF(x) == INTSXP || TYPEOF(x) == REALSXP || TYPEOF(x) == LGLSXP) &&
               XLENGTH(x) == 1 ? Rf_asReal(x) : NA_REAL;
    if (!R_FINITE(v) || v != floor(v) || v < lo || v > INT_MAX)
        Rf_error("'%s' must be a whole number between %d and %d", name, lo, INT_MAX);
    return (int) v;
}

/* A positive finite number from R. */
static double positive_arg(SEXP x, const char *name)
{
    double v = (TYPEOF(x) == INTSXP || TYPEOF(x) == REALSXP) && XLENGTH(x) == 1 ?
               Rf_asReal(x) : NA_REAL;
    if (!(v > 0) || !R_FINITE(v)) Rf_error("'%s' must be a positive finite number", name);
    return v;
}

static const double *theta_ptr(const icnn_t *net, SEXP theta)
{
    if (TYPEOF(theta) != REALSXP || (size_t) XLENGTH(theta) != net->npar)
        Rf_error("'theta' must be a double vector of length %d", (int) net->npar);
    return REAL(theta);
}

static const double *batch_ptr(int D, SEXP x, int *n)
{
    if (TYPEOF(x) != REALSXP || !Rf_isMatrix(x) || Rf_nrows(x) != D)
        Rf_error("'x' must be a double matrix with %d rows", D);
    *n = Rf_ncols(x);
    return REAL(x);
}

/* The threads a call may use. Also starts afresh the record of parallel
 * regions that the address space left too little room for (blas_threads.c),
 * which blas_room_warning() reports at the end of the call. */
static int nthreads(SEXP threads)
{
    int asked;
    jko_blas_room_cut(&asked);
    return jko_threads(Rf_asInteger(threads));
}

static void blas_room_warning(void)
{
    int asked, k = jko_blas_room_cut(&asked);
    if (k)
        Rf_warning("the address-space limit (ulimit -v or -d) leaves room for the BLAS work "
                   "buffers of %d of the %d threads asked for (OpenBLAS maps 128 MiB for "
                   "each): parts of this call ran on %d thread%s", k, asked, k,
                   k == 1 ? "" : "s");
}

/* The potential `obj` (potentials.h) for batches of up to nmax points of
 * dimension D, or an R error saying what is wrong with it. */
static void potential_setup(jko_pot *p, SEXP obj, int D, int nmax)
{
    char err[JKO_ERRLEN];
    if (pot_setup(p, obj, D, nmax, err)) Rf_error("%s", err);
}

/* The same for a free energy (terms.h). */
static void free_energy_setup(jko_energy *e, SEXP obj, int D, int nmax)
{
    char err[JKO_ERRLEN];
    if (energy_setup(e, obj, D, nmax, err)) Rf_error("%s", err);
}

/* The change of variables of a step from std = list(center, scale) or
 * list(center, L) (D x D lower triangular), pointing into std. */
static void std_from_sexp(jko_map *m, int D, SEXP std)
{
    SEXP c = jko_list_elt(std, "center"), L = jko_list_elt(std, "L");
    if (TYPEOF(c) != REALSXP || LENGTH(c) != D)
        Rf_error("a map's 'center' must be a double vector of length %d", D);
    m->center = REAL(c);
    if (!Rf_isNull(L)) {
        if (TYPEOF(L) != REALSXP || !Rf_isMatrix(L) || Rf_nrows(L) != D || Rf_ncols(L) != D)
            Rf_error("a map's 'L' must be a %d x %d double matrix", D, D);
        m->L = REAL(L);
        for (int d = 0; d < D; d++)
            if (!(m->L[d + (size_t) D * d] > 0)) Rf_error("a map's 'L' must have a positive diagonal");
        m->scale = map_L_norm(m->L, D);
    } else {
        m->L = NULL;
        m->scale = Rf_asReal(jko_list_elt(std, "scale"));
    }
    if (!(m->scale > 0) || !R_FINITE(m->scale)) Rf_error("a map's 'scale' must be positive");
}

/* The maps of a flow for points of dimension D: each element of `maps` is
 * list(theta, center, scale or L) with, optionally, its own network (arch
 * and alpha_min); where it has none, the call's arch and alpha_min (arch
 * may be NULL when every map has its own). All are read and checked before
 * any is used. Returns an R_alloc'ed array of the maps. */
static jko_map *maps_from_sexp(SEXP maps, SEXP arch, SEXP alpha_min, int D)
{
    if (TYPEOF(maps) != VECSXP) Rf_error("'maps' must be a list");
    if (!Rf_isNull(arch)) {
        icnn_t net;
        net_from_sexp(&net, arch, alpha_min);
        if (net.D != D) Rf_error("'x' must be a double matrix with %d rows", net.D);
    }
    R_xlen_t K = XLENGTH(maps);
    jko_map *m = (jko_map *) R_alloc(K > 0 ? K : 1, sizeof(jko_map));
    for (R_xlen_t j = 0; j < K; j++) {
        SEXP map = VECTOR_ELT(maps, j);
        SEXP a = jko_list_elt(map, "arch"), am = jko_list_elt(map, "alpha_min");
        if (Rf_isNull(a)) a = arch;
        if (Rf_isNull(am)) am = alpha_min;
        if (Rf_isNull(a)) Rf_error("map %d has no 'arch', and the call gives none", (int) j + 1);
        net_from_sexp(&m[j].net, a, am);
        if (m[j].net.D != D)
            Rf_error("map %d is of dimension %d, the points of dimension %d", (int) j + 1,
                     m[j].net.D, D);
        m[j].theta = theta_ptr(&m[j].net, jko_list_elt(map, "theta"));
        std_from_sexp(&m[j], D, map);
    }
    return m;
}

/* The offsets (0-based) of each block: an integer vector with A, B, c, W
 * for each layer, then v, a and the layer-1 skip v_1 (-1 where absent). */
SEXP C_icnn_layout(SEXP arch, SEXP alpha_min)
{
    icnn_t net;
    net_from_sexp(&net, arch, alpha_min);
    SEXP ans = PROTECT(Rf_allocVector(INTSXP, 4 * net.L + 3));
    int *p = INTEGER(ans);
    for (int l = 0; l < net.L; l++) {
        p[4 * l] = (int) net.offA[l];
        p[4 * l + 1] = (int) net.offB[l];
        p[4 * l + 2] = (int) net.offc[l];
        p[4 * l + 3] = l > 0 ? (int) net.offW[l] : -1;
    }
    p[4 * net.L] = (int) net.offv;
    p[4 * net.L + 1] = (int) net.offa;
    p[4 * net.L + 2] = net.L > 1 ? (int) net.offs : -1;
    UNPROTECT(1);
    return ans;
}

SEXP C_icnn_init(SEXP arch, SEXP alpha_min, SEXP scale)
{
    icnn_t net;
    net_from_sexp(&net, arch, alpha_min);
    double sc = Rf_asReal(scale);
    if (!R_FINITE(sc) || sc < 1) Rf_error("the initial scale must be a finite number >= 1");
    check_ws(&net, 64, 0, 1);   /* icnn_init_params' forward passes */
    SEXP th = PROTECT(Rf_allocVector(REALSXP, net.npar));
    GetRNGstate();
    icnn_init_params(&net, REAL(th), sc);
    PutRNGstate();
    UNPROTECT(1);
    return th;
}

/* The network alone, in its own coordinates. what: 0 potential and map,
 * 1 also log det, 2 also the Hessians. list(potential, gradient, log_det,
 * hessian, status); log_det is NaN where the Hessian is not positive
 * definite. */
SEXP C_icnn_eval(SEXP arch, SEXP alpha_min, SEXP theta, SEXP x, SEXP what,
                 SEXP threads)
{
    icnn_t net;
    net_from_sexp(&net, arch, alpha_min);
    const double *th = theta_ptr(&net, theta);
    int n, D = net.D, lev = count_arg(what, "what", 0), nth = nthreads(threads);
    if (lev > 2) Rf_error("'what' must be 0, 1 or 2");
    const double *X = batch_ptr(D, x, &n);
    const int chunk = 2048;
    check_ws(&net, n < chunk ? n : chunk, lev >= 1, nth);
    SEXP v[5];
    v[0] = PROTECT(Rf_allocVector(REALSXP, n));
    v[1] = PROTECT(Rf_allocMatrix(REALSXP, D, n));
    v[2] = PROTECT(Rf_allocVector(REALSXP, lev >= 1 ? n : 0));
    v[3] = PROTECT(Rf_allocVector(REALSXP, lev >= 2 ? (R_xlen_t) D * D * n : 0));
    icnn_ws ws;
    icnn_ws_alloc(&net, &ws, n < chunk ? (n > 0 ? n : 1) : chunk, lev >= 1, nth);
    if (lev >= 2) ws.H = (double *) R_alloc((size_t) D * D * ws.nmax, sizeof(double));
    icnn_prepare(&net, th, &ws);
    int status = JKO_OK;
    for (int s = 0; s < n; s += chunk) {
        if (s) R_CheckUserInterrupt();
        int m = n - s < chunk ? n - s : chunk;
        const double *Xs = X + (size_t) D * s;
        icnn_forward(&net, th, Xs, m, &ws, REAL(v[0]) + s, REAL(v[1]) + (size_t) D * s);
        if (lev >= 1) {
            int st = icnn_hessian(&net, th, Xs, m, &ws, REAL(v[2]) + s);
            if (st) status = st;
            if (lev >= 2)
                memcpy(REAL(v[3]) + (size_t) D * D * s, ws.H, (size_t) D * D * m * sizeof(double));
        }
    }
    v[4] = PROTECT(Rf_mkString(status_name(status)));
    blas_room_warning();
    const char *nm[] = {"potential", "gradient", "log_det", "hessian", "status"};
    SEXP ans = named_list(5, nm, v);
    UNPROTECT(5);
    return ans;
}

/* Phi at the columns of x: list(value, gradient (D x n, or 0 columns),
 * status). Non-finite values are returned as they are, with their status. */
SEXP C_pot_eval(SEXP pot, SEXP x, SEXP grad, SEXP threads)
{
    int n, D = Rf_nrows(x), g = Rf_asLogical(grad) == TRUE;
    const double *X = batch_ptr(D, x, &n);
    jko_pot p;
    potential_setup(&p, pot, D, n);
    p.threads = nthreads(threads);
    SEXP v[3];
    v[0] = PROTECT(Rf_allocVector(REALSXP, n));
    v[1] = PROTECT(Rf_allocMatrix(REALSXP, D, g ? n : 0));
    GetRNGstate();
    int st = pot_eval(&p, X, n, REAL(v[0]), g ? REAL(v[1]) : NULL);
    PutRNGstate();
    v[2] = PROTECT(Rf_mkString(status_name(st)));
    const char *nm[] = {"value", "gradient", "status"};
    SEXP ans = named_list(3, nm, v);
    UNPROTECT(3);
    return ans;
}

/* The log-density of a glm target's prior (glm.c) at the columns of x
 * (D x n, D the target's dimension): n numbers, normalising constants
 * included. Only the target's prior part is read. */
SEXP C_glm_log_prior(SEXP target, SEXP x)
{
    if (TYPEOF(x) != REALSXP || !Rf_isMatrix(x))
        Rf_error("'x' must be a double matrix, one point per column");
    int D = Rf_nrows(x), n = Rf_ncols(x);
    SEXP ans = PROTECT(Rf_allocVector(REALSXP, n));
    char err[JKO_ERRLEN];
    if (glm_log_prior(target, D, REAL(x), n, REAL(ans), err))
        Rf_error("invalid prior of a glm target: %s", err);
    UNPROTECT(1);
    return ans;
}

/* The loss on one batch and its gradient with respect to theta, in the
 * network's own coordinates: list(loss, gradient). With `energy` NULL the
 * Fokker-Planck loss of the potential `pot`; otherwise that of the free
 * energy (terms.h), with log rho_{k-1} at the batch's points in
 * `log_density` (NULL where no term needs it). */
static SEXP loss_and_gradient(SEXP arch, SEXP alpha_min, SEXP theta, SEXP x, SEXP pot,
                              SEXP energy, SEXP log_density, SEXP h, SEXP beta,
                              SEXP threads)
{
    jko_map m;
    net_from_sexp(&m.net, arch, alpha_min);
    m.theta = theta_ptr(&m.net, theta);
    m.center = NULL;
    m.L = NULL;
    m.scale = 1;
    int n;
    const double *X = batch_ptr(m.net.D, x, &n);
    if (!Rf_isNull(log_density) && (TYPEOF(log_density) != REALSXP || LENGTH(log_density) != n))
        Rf_error("'log_density' must be a double vector of length %d", n);
    icnn_ws ws;
    jko_buf b;
    jko_pot p;
    jko_energy e;
    jko_pot *pp = &p;
    jko_energy *ep = NULL;
    double hh = positive_arg(h, "h"), bb = positive_arg(beta, "beta");
    int nth = nthreads(threads);
    check_ws(&m.net, n, 2, nth);
    icnn_ws_alloc(&m.net, &ws, n, 2, nth);
    jko_buf_alloc(&m.net, &b, n);
    if (Rf_isNull(energy)) {
        potential_setup(&p, pot, m.net.D, n);
        p.threads = nth;
    } else {
        free_energy_setup(&e, energy, m.net.D, n);
        e.pot.threads = nth;
        if (e.density && Rf_isNull(log_density))
            Rf_error("'log_density' is needed by a term of the free energy");
        e.pot.iter = 0;
        pp = &e.pot;
        ep = &e;
    }
    double loss;
    GetRNGstate();
    int st = jko_loss_grad(&m, X, n, &ws, pp, ep,
                           Rf_isNull(log_density) ? NULL : REAL(log_density),
                           hh, bb, &b, &loss);
    PutRNGstate();
    blas_room_warning();
    if (st) Rf_error("the loss could not be evaluated: %s", status_name(st));
    SEXP v[2];
    v[0] = PROTECT(Rf_ScalarReal(loss));
    v[1] = PROTECT(Rf_allocVector(REALSXP, m.net.npar));
    memcpy(REAL(v[1]), b.grad, m.net.npar * sizeof(double));
    const char *nm[] = {"loss", "gradient"};
    SEXP ans = named_list(2, nm, v);
    UNPROTECT(2);
    return ans;
}

/* The Fokker-Planck loss of a potential on one batch, and its gradient. */
SEXP C_jko_loss(SEXP arch, SEXP alpha_min, SEXP theta, SEXP x, SEXP pot,
                SEXP h, SEXP beta, SEXP threads)
{
    return loss_and_gradient(arch, alpha_min, theta, x, pot, R_NilValue, R_NilValue,
                             h, beta, threads);
}

/* The loss of a free energy on one batch, and its gradient. */
SEXP C_energy_loss(SEXP arch, SEXP alpha_min, SEXP theta, SEXP x, SEXP energy,
                   SEXP log_density, SEXP h, SEXP beta, SEXP threads)
{
    return loss_and_gradient(arch, alpha_min, theta, x, R_NilValue, energy, log_density,
                             h, beta, threads);
}

/* A free energy's per-sample values at the columns of x, samples of a law
 * with the log-densities log_density (NULL where no term needs them): their
 * mean estimates the free energy. list(value, status). */
SEXP C_energy_eval(SEXP energy, SEXP x, SEXP log_density, SEXP beta, SEXP threads)
{
    int n, D = Rf_nrows(x);
    const double *X = batch_ptr(D, x, &n);
    if (!Rf_isNull(log_density) && (TYPEOF(log_density) != REALSXP || LENGTH(log_density) != n))
        Rf_error("'log_density' must be a double vector of length %d", n);
    jko_energy e;
    free_energy_setup(&e, energy, D, n);
    if (e.density && Rf_isNull(log_density))
        Rf_error("'log_density' is needed by a term of the free energy");
    SEXP v[2];
    v[0] = PROTECT(Rf_allocVector(REALSXP, n));
    for (int i = 0; i < n; i++) REAL(v[0])[i] = 0;
    term_batch tb = {D, n, X, NULL, Rf_isNull(log_density) ? NULL : REAL(log_density),
                     positive_arg(beta, "beta"), nthreads(threads), -1};
    GetRNGstate();
    int st = energy_eval(&e, &tb, REAL(v[0]), NULL, NULL);
    PutRNGstate();
    v[1] = PROTECT(Rf_mkString(status_name(st)));
    const char *nm[] = {"value", "status"};
    SEXP ans = named_list(2, nm, v);
    UNPROTECT(2);
    return ans;
}

/* The moments of the columns of X (D x n) as a step's change of variables
 * (map.h): the centre into center (D), and a new D x D matrix L (whiten)
 * or the scale into *scale (then R_NilValue, unprotected, is returned). */
static SEXP moments(const double *X, int D, int n, int whiten, double *center,
                    double *scale)
{
    if (!whiten) {
        map_moments(X, D, n, center, scale);
        return R_NilValue;
    }
    SEXP L = PROTECT(Rf_allocMatrix(REALSXP, D, D));
    *scale = map_moments_full(X, D, n, center, REAL(L));
    UNPROTECT(1);
    return L;
}

/* Centre and scale of the columns of x: list(center, scale), or with
 * `whiten` list(center, L). */
SEXP C_moments(SEXP x, SEXP whiten)
{
    int n, D = Rf_nrows(x), wh = Rf_asLogical(whiten) == TRUE;
    const double *X = batch_ptr(D, x, &n);
    SEXP v[2];
    v[0] = PROTECT(Rf_allocVector(REALSXP, D));
    double sc;
    SEXP L = moments(X, D, n, wh, REAL(v[0]), &sc);
    v[1] = PROTECT(wh ? L : Rf_ScalarReal(sc));
    const char *nm[] = {"center", wh ? "L" : "scale"};
    SEXP ans = named_list(2, nm, v);
    UNPROTECT(2);
    return ans;
}

/* One JKO step (train.h): from the map theta of step k-1, the pool and the
 * monitor samples of rho_{k-1} (D x n, x's coordinates) with the monitor's
 * log-densities, train the map of step k and push both. `std` is the step's
 * change of variables, list(center, scale) or list(center, L), or NULL for
 * the moments of the pool (a full L with settings$whiten). settings =
 * list(h, beta, iters, batch, lr, lr_end, adaptive, whiten, time_limit)
 * (time_limit optional: the seconds the training may take). `pot` may
 * be a free energy (class "jko_energy", terms.h): then monitor_potential
 * holds the energy's per-sample values, and where a term needs the
 * densities of the pool, settings$pool_log_density (the pool's
 * log-densities) is carried along and returned, pushed, as a 13th element
 * pool_log_density. Returns
 * list(theta, loss, iters, status, iter, center, scale, L, pool, monitor,
 * monitor_log_density, monitor_potential): iters the iterations run (loss
 * has that many values), L NULL for an isotropic step; after a failure
 * (status not "ok", iter the 1-based iteration, 0 after training) the
 * pushed parts are NULL. R errors from a potential evaluated in R, and
 * interrupts, unwind through here leaving only R_alloc'ed memory behind. */
SEXP C_jko_step(SEXP arch, SEXP alpha_min, SEXP theta, SEXP pool, SEXP monitor,
                SEXP monitor_ld, SEXP pot, SEXP settings, SEXP std, SEXP threads,
                SEXP progress)
{
    int nprot = 0;
    jko_map m;
    net_from_sexp(&m.net, arch, alpha_min);
    theta_ptr(&m.net, theta);
    const int D = m.net.D;
    int npool, nmon;
    const double *Xp = batch_ptr(D, pool, &npool);
    const double *Xm = batch_ptr(D, monitor, &nmon);
    if (TYPEOF(monitor_ld) != REALSXP || LENGTH(monitor_ld) != nmon)
        Rf_error("'monitor_ld' must be a double vector of length %d", nmon);
    jko_settings s;
    s.h = positive_arg(jko_list_elt(settings, "h"), "h");
    s.beta = positive_arg(jko_list_elt(settings, "beta"), "beta");
    s.iters = count_arg(jko_list_elt(settings, "iters"), "iters", 1);
    s.batch = count_arg(jko_list_elt(settings, "batch"), "batch", 1);
    s.lr = positive_arg(jko_list_elt(settings, "lr"), "lr");
    s.lr_end = positive_arg(jko_list_elt(settings, "lr_end"), "lr_end");
    SEXP ad = jko_list_elt(settings, "adaptive"), wh = jko_list_elt(settings, "whiten");
    s.adaptive = !Rf_isNull(ad) && Rf_asLogical(ad) == TRUE;
    int whiten = !Rf_isNull(wh) && Rf_asLogical(wh) == TRUE;
    s.nth = nthreads(threads);
    s.progress = Rf_asInteger(progress);
    if (s.progress == NA_INTEGER) s.progress = 0;
    /* seconds the training may take: none where absent, not finite or <= 0 */
    SEXP tl = jko_list_elt(settings, "time_limit");
    s.time_limit = Rf_isNull(tl) ? 0 : Rf_asReal(tl);
    if (npool < 1 || nmon < 1) Rf_error("the pool and the monitor must have points");
    /* the training's workspace and the pushes' (with log-determinants) */
    check_ws(&m.net, s.batch, 2, s.nth);
    int pm = npool > nmon ? npool : nmon;
    check_ws(&m.net, pm < MAP_CHUNK ? pm : MAP_CHUNK, 1, s.nth);
    SEXP ctr = PROTECT(Rf_allocVector(REALSXP, D)); nprot++;
    SEXP Ls = R_NilValue;
    if (Rf_isNull(std)) {
        Ls = PROTECT(moments(Xp, D, npool, whiten, REAL(ctr), &m.scale)); nprot++;
    } else {
        std_from_sexp(&m, D, std);
        memcpy(REAL(ctr), m.center, D * sizeof(double));
        if (m.L) {
            Ls = PROTECT(Rf_allocMatrix(REALSXP, D, D)); nprot++;
            memcpy(REAL(Ls), m.L, (size_t) D * D * sizeof(double));
        }
    }
    m.center = REAL(ctr);
    m.L = Rf_isNull(Ls) ? NULL : REAL(Ls);
    SEXP th = PROTECT(Rf_duplicate(theta)); nprot++;
    m.theta = REAL(th);
    SEXP loss = PROTECT(Rf_allocVector(REALSXP, s.iters)); nprot++;
    for (int t = 0; t < s.iters; t++) REAL(loss)[t] = NA_REAL;
    SEXP pool_out = PROTECT(Rf_allocMatrix(REALSXP, D, npool)); nprot++;
    SEXP mon_out = PROTECT(Rf_allocMatrix(REALSXP, D, nmon)); nprot++;
    SEXP mon_ld = PROTECT(Rf_duplicate(monitor_ld)); nprot++;
    SEXP mon_phi = PROTECT(Rf_allocVector(REALSXP, nmon)); nprot++;
    jko_pot p;
    jko_energy e;
    jko_pot *pp = &p;
    jko_energy *pe = NULL;
    SEXP pld = R_NilValue;
    if (Rf_inherits(pot, "jko_energy")) {
        free_energy_setup(&e, pot, D, s.batch > nmon ? s.batch : nmon);
        e.pot.threads = s.nth;
        pe = &e;
        pp = &e.pot;
        if (e.density) {
            SEXP pool_ld = jko_list_elt(settings, "pool_log_density");
            if (TYPEOF(pool_ld) != REALSXP || LENGTH(pool_ld) != npool)
                Rf_error("'pool_log_density' must be a double vector of length %d", npool);
            pld = PROTECT(Rf_duplicate(pool_ld)); nprot++;
        }
    } else {
        potential_setup(&p, pot, D, s.batch > nmon ? s.batch : nmon);
        p.threads = s.nth;
    }
    int fail = 0, used = 0;
    GetRNGstate();
    int st = jko_step(&m, REAL(th), Xp, npool, Rf_isNull(pld) ? NULL : REAL(pld),
                      REAL(pool_out), Xm, nmon, REAL(mon_out), REAL(mon_ld),
                      REAL(mon_phi), pp, pe, &s, REAL(loss), &fail, &used);
    PutRNGstate();
    blas_room_warning();
    if (used > 0 && used < s.iters) { loss = PROTECT(head_real(loss, used)); nprot++; }
    SEXP v[13];
    v[0] = th; v[1] = loss;
    v[2] = PROTECT(Rf_ScalarInteger(used)); nprot++;
    v[3] = PROTECT(Rf_mkString(status_name(st))); nprot++;
    v[4] = PROTECT(Rf_ScalarInteger(fail)); nprot++;
    v[5] = ctr;
    v[6] = PROTECT(Rf_ScalarReal(m.L ? NA_REAL : m.scale)); nprot++;
    v[7] = Ls;
    v[8] = st ? R_NilValue : pool_out;
    v[9] = st ? R_NilValue : mon_out;
    v[10] = st ? R_NilValue : mon_ld;
    v[11] = st ? R_NilValue : mon_phi;
    v[12] = st ? R_NilValue : pld;
    const char *nm[] = {"theta", "loss", "iters", "status", "iter", "center", "scale", "L",
                        "pool", "monitor", "monitor_log_density", "monitor_potential",
                        "pool_log_density"};
    SEXP ans = named_list(Rf_isNull(pld) ? 12 : 13, nm, v);
    UNPROTECT(nprot);
    return ans;
}

/* Push the columns of x through the maps (a list of list(theta, center,
 * scale or L), each with its own arch and alpha_min or the call's, see
 * maps_from_sexp) in turn; with log_density (a double vector, or NULL for
 * none) subtract each map's log-determinant from it. Returns list(x,
 * log_density, status, step): step the first map whose Hessian was not
 * positive definite somewhere (those points' log-densities are NaN), or 0. */
SEXP C_flow_push(SEXP arch, SEXP alpha_min, SEXP maps, SEXP x, SEXP log_density,
                 SEXP threads)
{
    int n, D = Rf_nrows(x), nth = nthreads(threads), status = JKO_OK, bad = 0;
    batch_ptr(D, x, &n);
    int ld = !Rf_isNull(log_density);
    if (ld && (TYPEOF(log_density) != REALSXP || XLENGTH(log_density) != n))
        Rf_error("'log_density' must be a double vector of length %d", n);
    jko_map *m = maps_from_sexp(maps, arch, alpha_min, D);
    for (R_xlen_t j = 0; j < XLENGTH(maps); j++)
        check_ws(&m[j].net, n < MAP_CHUNK ? n : MAP_CHUNK, ld, nth);
    SEXP v[4];
    v[0] = PROTECT(Rf_duplicate(x));
    v[1] = PROTECT(ld ? Rf_duplicate(log_density) : R_NilValue);
    for (R_xlen_t j = 0; j < XLENGTH(maps); j++) {
        R_CheckUserInterrupt();   /* (and between chunks of points) */
        int st = map_push(m + j, REAL(v[0]), n, nth, REAL(v[0]), ld ? REAL(v[1]) : NULL);
        if (st && !status) { status = st; bad = (int) j + 1; }
    }
    v[2] = PROTECT(Rf_mkString(status_name(status)));
    v[3] = PROTECT(Rf_ScalarInteger(bad));
    blas_room_warning();
    const char *nm[] = {"x", "log_density", "status", "step"};
    SEXP ans = named_list(4, nm, v);
    UNPROTECT(4);
    return ans;
}

/* Pull the columns of y back through the maps (as for C_flow_push), last
 * first: list(x (the points in rho_0's space), log_det (minus the sum of the
 * maps' log-determinants at the pulled points), residual (the largest
 * inversion residual), status, step (as for C_flow_push; points lost there
 * have NaN log_det)). */
SEXP C_flow_pull(SEXP arch, SEXP alpha_min, SEXP maps, SEXP y, SEXP tol,
                 SEXP maxit, SEXP threads)
{
    int n, D = Rf_nrows(y), nth = nthreads(threads), status = JKO_OK, bad = 0;
    batch_ptr(D, y, &n);
    double tl = positive_arg(tol, "tol"), rmax = 0;
    int mi = count_arg(maxit, "maxit", 1);
    jko_map *m = maps_from_sexp(maps, arch, alpha_min, D);
    for (R_xlen_t j = 0; j < XLENGTH(maps); j++)
        check_ws(&m[j].net, n < MAP_CHUNK ? n : MAP_CHUNK, 1, nth);
    SEXP v[5];
    v[0] = PROTECT(Rf_duplicate(y));
    v[1] = PROTECT(Rf_allocVector(REALSXP, n));
    memset(REAL(v[1]), 0, (size_t) n * sizeof(double));
    double *resid = (double *) R_alloc(n > 0 ? n : 1, sizeof(double));
    double *X = (double *) R_alloc((size_t) D * (n > 0 ? n : 1), sizeof(double));
    for (R_xlen_t j = XLENGTH(maps) - 1; j >= 0; j--) {
        R_CheckUserInterrupt();   /* (and between chunks, and Newton steps) */
        int st = map_pull(m + j, REAL(v[0]), n, tl, mi, nth, X, resid, REAL(v[1]));
        if (st && !status) { status = st; bad = (int) j + 1; }
        memcpy(REAL(v[0]), X, (size_t) D * n * sizeof(double));
        for (int i = 0; i < n; i++) if (resid[i] > rmax) rmax = resid[i];
    }
    v[2] = PROTECT(Rf_ScalarReal(rmax));
    v[3] = PROTECT(Rf_mkString(status_name(status)));
    v[4] = PROTECT(Rf_ScalarInteger(bad));
    blas_room_warning();
    const char *nm[] = {"x", "log_det", "residual", "status", "step"};
    SEXP ans = named_list(5, nm, v);
    UNPROTECT(5);
    return ans;
}

/* What the BLAS says of itself and what the CPU can do, for R's
 * blas_advice(): list(core = OpenBLAS's kernel set (NA for another BLAS),
 * avx2, avx512f (NA where the compiler cannot ask the CPU)). */
SEXP C_blas_info(void)
{
    const char *core = jko_blas_core();
    int avx2, avx512f;
    jko_cpu_features(&avx2, &avx512f);
    SEXP v[3];
    v[0] = PROTECT(core ? Rf_mkString(core) : Rf_ScalarString(NA_STRING));
    v[1] = PROTECT(Rf_ScalarLogical(avx2));
    v[2] = PROTECT(Rf_ScalarLogical(avx512f));
    const char *nm[] = {"core", "avx2", "avx512f"};
    SEXP ans = named_list(3, nm, v);
    UNPROTECT(3);
    return ans;
}

/* jkoflow:::blas_threads(n): OpenBLAS's thread count before, set to n
 * where n >= 1 (n < 1 only asks); 0 for another BLAS, where nothing is
 * set. */
SEXP C_blas_threads(SEXP n)
{
    int k = Rf_asInteger(n);
    int old = (k != NA_INTEGER && k >= 1) ? jko_blas_set_threads(k) : jko_blas_get_threads();
    return Rf_ScalarInteger(old);
}

/* jkoflow:::kernel_lanes(wide): the lanes of the kernels' widest loops
 * (JKO_CHUNKS, icnn.h: 8 or 4), after setting them where `wide` is TRUE or
 * FALSE (TRUE only where supported; NA leaves them), so that tests can
 * compare the two. */
SEXP C_kernel_lanes(SEXP wide)
{
    int w = Rf_asLogical(wide);
    if (w != NA_LOGICAL) jko_wide = w && jko_wide_supported();
    return Rf_ScalarInteger(jko_wide ? JKO_WL : JKO_VL);
}
