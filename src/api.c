/* The .Call entry points: thin wrappers that check and convert R objects,
 * call the cores (plain C types, status codes) and return named lists.
 * Batches arrive as D x n matrices (one sample per column), already checked
 * in R. Every status a core returns goes back by name (status_name); the R
 * side turns it into a message in one place (jko_status_message()). */
#include <R.h>
#include <Rinternals.h>
#include <string.h>
#include "icnn.h"
#include "map.h"
#include "potentials.h"
#include "train.h"
#include "terms.h"

int jko_threads(int requested);   /* threads.c */

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
    if (TYPEOF(arch) != INTSXP || LENGTH(arch) < 5)
        Rf_error("'arch' must be an integer vector of length at least 5");
    const int *a = INTEGER(arch);
    if (LENGTH(arch) != 4 + a[1] ||
        icnn_setup(net, a[0], a[1], a + 4, a[2], a[3], Rf_asReal(alpha_min)))
        Rf_error("invalid network architecture");
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

static int nthreads(SEXP threads)
{
    return jko_threads(Rf_asInteger(threads));
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

/* map = list(theta, center, scale or L): step j's map of the network `net` */
static void map_from_sexp(jko_map *m, const icnn_t *net, SEXP map)
{
    m->net = *net;
    m->theta = theta_ptr(net, jko_list_elt(map, "theta"));
    std_from_sexp(m, net->D, map);
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
    int n, D = net.D, lev = Rf_asInteger(what), nth = nthreads(threads);
    const double *X = batch_ptr(D, x, &n);
    const int chunk = 2048;
    SEXP v[5];
    v[0] = PROTECT(Rf_allocVector(REALSXP, n));
    v[1] = PROTECT(Rf_allocMatrix(REALSXP, D, n));
    v[2] = PROTECT(Rf_allocVector(REALSXP, lev >= 1 ? n : 0));
    v[3] = PROTECT(Rf_allocVector(REALSXP, lev >= 2 ? (R_xlen_t) D * D * n : 0));
    icnn_ws ws;
    icnn_ws_alloc(&net, &ws, n < chunk ? (n > 0 ? n : 1) : chunk, lev >= 1, nth);
    icnn_prepare(&net, th, &ws);
    int status = JKO_OK;
    for (int s = 0; s < n; s += chunk) {
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
    const char *nm[] = {"potential", "gradient", "log_det", "hessian", "status"};
    SEXP ans = named_list(5, nm, v);
    UNPROTECT(5);
    return ans;
}

/* Phi at the columns of x: list(value, gradient (D x n, or 0 columns),
 * status). Non-finite values are returned as they are, with their status. */
SEXP C_pot_eval(SEXP pot, SEXP x, SEXP grad)
{
    int D = Rf_nrows(x), n = Rf_ncols(x), g = Rf_asLogical(grad);
    jko_pot p;
    pot_setup(&p, pot, D, n);
    SEXP v[3];
    v[0] = PROTECT(Rf_allocVector(REALSXP, n));
    v[1] = PROTECT(Rf_allocMatrix(REALSXP, D, g ? n : 0));
    GetRNGstate();
    int st = pot_eval(&p, REAL(x), n, REAL(v[0]), g ? REAL(v[1]) : NULL);
    PutRNGstate();
    v[2] = PROTECT(Rf_mkString(status_name(st)));
    const char *nm[] = {"value", "gradient", "status"};
    SEXP ans = named_list(3, nm, v);
    UNPROTECT(3);
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
    icnn_ws_alloc(&m.net, &ws, n, 2, nthreads(threads));
    jko_buf_alloc(&m.net, &b, n);
    if (Rf_isNull(energy)) {
        pot_setup(&p, pot, m.net.D, n);
    } else {
        energy_setup(&e, energy, m.net.D, n);
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
                           Rf_asReal(h), Rf_asReal(beta), &b, &loss);
    PutRNGstate();
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
    energy_setup(&e, energy, D, n);
    if (e.density && Rf_isNull(log_density))
        Rf_error("'log_density' is needed by a term of the free energy");
    SEXP v[2];
    v[0] = PROTECT(Rf_allocVector(REALSXP, n));
    for (int i = 0; i < n; i++) REAL(v[0])[i] = 0;
    term_batch tb = {D, n, X, NULL, Rf_isNull(log_density) ? NULL : REAL(log_density),
                     Rf_asReal(beta), nthreads(threads), -1};
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
    s.h = Rf_asReal(jko_list_elt(settings, "h"));
    s.beta = Rf_asReal(jko_list_elt(settings, "beta"));
    s.iters = Rf_asInteger(jko_list_elt(settings, "iters"));
    s.batch = Rf_asInteger(jko_list_elt(settings, "batch"));
    s.lr = Rf_asReal(jko_list_elt(settings, "lr"));
    s.lr_end = Rf_asReal(jko_list_elt(settings, "lr_end"));
    SEXP ad = jko_list_elt(settings, "adaptive"), wh = jko_list_elt(settings, "whiten");
    s.adaptive = !Rf_isNull(ad) && Rf_asLogical(ad) == TRUE;
    int whiten = !Rf_isNull(wh) && Rf_asLogical(wh) == TRUE;
    s.nth = nthreads(threads);
    s.progress = Rf_asInteger(progress);
    SEXP tl = jko_list_elt(settings, "time_limit");
    s.time_limit = Rf_isNull(tl) ? 0 : Rf_asReal(tl);
    if (npool < 1 || nmon < 1 || s.iters == NA_INTEGER || s.iters < 1 ||
        s.batch == NA_INTEGER || s.batch < 1 || !(s.h > 0) || !(s.beta > 0) ||
        !(s.lr > 0) || !(s.lr_end > 0))
        Rf_error("invalid settings of a JKO step");
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
        energy_setup(&e, pot, D, s.batch > nmon ? s.batch : nmon);
        pe = &e;
        pp = &e.pot;
        if (e.density) {
            SEXP pool_ld = jko_list_elt(settings, "pool_log_density");
            if (TYPEOF(pool_ld) != REALSXP || LENGTH(pool_ld) != npool)
                Rf_error("'pool_log_density' must be a double vector of length %d", npool);
            pld = PROTECT(Rf_duplicate(pool_ld)); nprot++;
        }
    } else {
        pot_setup(&p, pot, D, s.batch > nmon ? s.batch : nmon);
    }
    int fail = 0, used = 0;
    GetRNGstate();
    int st = jko_step(&m, REAL(th), Xp, npool, Rf_isNull(pld) ? NULL : REAL(pld),
                      REAL(pool_out), Xm, nmon, REAL(mon_out), REAL(mon_ld),
                      REAL(mon_phi), pp, pe, &s, REAL(loss), &fail, &used);
    PutRNGstate();
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
 * scale)) in turn; with log_density (a double vector, or NULL for none)
 * subtract each map's log-determinant from it. Returns list(x,
 * log_density, status, step): step the first map whose Hessian was not
 * positive definite somewhere (those points' log-densities are NaN), or 0. */
SEXP C_flow_push(SEXP arch, SEXP alpha_min, SEXP maps, SEXP x, SEXP log_density,
                 SEXP threads)
{
    icnn_t net;
    net_from_sexp(&net, arch, alpha_min);
    int n, nth = nthreads(threads), status = JKO_OK, bad = 0;
    batch_ptr(net.D, x, &n);
    int ld = !Rf_isNull(log_density);
    if (ld && (TYPEOF(log_density) != REALSXP || LENGTH(log_density) != n))
        Rf_error("'log_density' must be a double vector of length %d", n);
    SEXP v[4];
    v[0] = PROTECT(Rf_duplicate(x));
    v[1] = PROTECT(ld ? Rf_duplicate(log_density) : R_NilValue);
    for (R_xlen_t j = 0; j < XLENGTH(maps); j++) {
        jko_map m;
        map_from_sexp(&m, &net, VECTOR_ELT(maps, j));
        int st = map_push(&m, REAL(v[0]), n, nth, REAL(v[0]), ld ? REAL(v[1]) : NULL);
        if (st && !status) { status = st; bad = (int) j + 1; }
    }
    v[2] = PROTECT(Rf_mkString(status_name(status)));
    v[3] = PROTECT(Rf_ScalarInteger(bad));
    const char *nm[] = {"x", "log_density", "status", "step"};
    SEXP ans = named_list(4, nm, v);
    UNPROTECT(4);
    return ans;
}

/* Pull the columns of y back through the maps, last first: list(x (the
 * points in rho_0's space), log_det (minus the sum of the maps'
 * log-determinants at the pulled points), residual (the largest inversion
 * residual), status, step (as for C_flow_push; points lost there have NaN
 * log_det)). */
SEXP C_flow_pull(SEXP arch, SEXP alpha_min, SEXP maps, SEXP y, SEXP tol,
                 SEXP maxit, SEXP threads)
{
    icnn_t net;
    net_from_sexp(&net, arch, alpha_min);
    int n, nth = nthreads(threads), status = JKO_OK, bad = 0;
    batch_ptr(net.D, y, &n);
    double tl = Rf_asReal(tol), rmax = 0;
    int mi = Rf_asInteger(maxit);
    SEXP v[5];
    v[0] = PROTECT(Rf_duplicate(y));
    v[1] = PROTECT(Rf_allocVector(REALSXP, n));
    memset(REAL(v[1]), 0, (size_t) n * sizeof(double));
    double *resid = (double *) R_alloc(n > 0 ? n : 1, sizeof(double));
    double *X = (double *) R_alloc((size_t) net.D * (n > 0 ? n : 1), sizeof(double));
    for (R_xlen_t j = XLENGTH(maps) - 1; j >= 0; j--) {
        jko_map m;
        map_from_sexp(&m, &net, VECTOR_ELT(maps, j));
        int st = map_pull(&m, REAL(v[0]), n, tl, mi, nth, X, resid, REAL(v[1]));
        if (st && !status) { status = st; bad = (int) j + 1; }
        memcpy(REAL(v[0]), X, (size_t) net.D * n * sizeof(double));
        for (int i = 0; i < n; i++) if (resid[i] > rmax) rmax = resid[i];
    }
    v[2] = PROTECT(Rf_ScalarReal(rmax));
    v[3] = PROTECT(Rf_mkString(status_name(status)));
    v[4] = PROTECT(Rf_ScalarInteger(bad));
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
