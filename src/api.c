/* The .Call entry points: thin wrappers that check and convert R objects and
 * call the cores, which take plain C types and return status codes. Batches
 * arrive as D x n matrices (one sample per column), already checked in R. */
#include <R.h>
#include <Rinternals.h>
#include <string.h>
#include "icnn.h"
#include "potentials.h"
#include "train.h"

#define CHUNK 2048

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

static const double *batch_ptr(const icnn_t *net, SEXP x, int *n)
{
    if (TYPEOF(x) != REALSXP || !Rf_isMatrix(x) || Rf_nrows(x) != net->D)
        Rf_error("'x' must be a double matrix with %d rows", net->D);
    *n = Rf_ncols(x);
    return REAL(x);
}

static int nthreads(SEXP threads)
{
    int t = Rf_asInteger(threads);
    return (t == NA_INTEGER || t < 1) ? 1 : t;
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

SEXP C_icnn_init(SEXP arch, SEXP alpha_min)
{
    icnn_t net;
    net_from_sexp(&net, arch, alpha_min);
    SEXP th = PROTECT(Rf_allocVector(REALSXP, net.npar));
    GetRNGstate();
    icnn_init_params(&net, REAL(th));
    PutRNGstate();
    UNPROTECT(1);
    return th;
}

/* what: 0 potential and map, 1 also log det, 2 also the Hessians */
SEXP C_icnn_eval(SEXP arch, SEXP alpha_min, SEXP theta, SEXP x, SEXP what,
                 SEXP threads)
{
    icnn_t net;
    net_from_sexp(&net, arch, alpha_min);
    const double *th = theta_ptr(&net, theta);
    int n, D = net.D, lev = Rf_asInteger(what), nth = nthreads(threads);
    const double *X = batch_ptr(&net, x, &n);
    int nprot = 0;
    SEXP psi = PROTECT(Rf_allocVector(REALSXP, n)); nprot++;
    SEXP y = PROTECT(Rf_allocMatrix(REALSXP, D, n)); nprot++;
    SEXP ld = PROTECT(Rf_allocVector(REALSXP, lev >= 1 ? n : 0)); nprot++;
    SEXP hs = PROTECT(Rf_allocVector(REALSXP, lev >= 2 ? (R_xlen_t) D * D * n : 0)); nprot++;
    icnn_ws ws;
    int nmax = n < CHUNK ? (n > 0 ? n : 1) : CHUNK;
    icnn_ws_alloc(&net, &ws, nmax, lev >= 1, nth);
    int status = JKO_OK;
    for (int s = 0; s < n; s += CHUNK) {
        int m = n - s < CHUNK ? n - s : CHUNK;
        const double *Xs = X + (size_t) D * s;
        icnn_forward(&net, th, Xs, m, &ws, REAL(psi) + s, REAL(y) + (size_t) D * s);
        if (lev >= 1) {
            int st = icnn_hessian(&net, th, Xs, m, &ws, REAL(ld) + s);
            if (st) status = st;
            if (lev >= 2)
                memcpy(REAL(hs) + (size_t) D * D * s, ws.H, (size_t) D * D * m * sizeof(double));
        }
    }
    SEXP ans = PROTECT(Rf_allocVector(VECSXP, 5)); nprot++;
    SET_VECTOR_ELT(ans, 0, psi);
    SET_VECTOR_ELT(ans, 1, y);
    SET_VECTOR_ELT(ans, 2, ld);
    SET_VECTOR_ELT(ans, 3, hs);
    SET_VECTOR_ELT(ans, 4, Rf_ScalarInteger(status));
    UNPROTECT(nprot);
    return ans;
}

static const char *status_msg(int st)
{
    switch (st) {
    case JKO_ERR_NONFINITE: return "non-finite value";
    case JKO_ERR_NOTPD: return "Hessian not positive definite";
    default: return "failure";
    }
}

SEXP C_pot_eval(SEXP pot, SEXP x, SEXP grad)
{
    int D = Rf_nrows(x), n = Rf_ncols(x);
    pot_t p;
    pot_from_sexp(&p, pot, D, n);
    SEXP v = PROTECT(Rf_allocVector(REALSXP, n));
    SEXP g = PROTECT(Rf_allocMatrix(REALSXP, D, Rf_asLogical(grad) ? n : 0));
    GetRNGstate();
    int st = pot_eval(&p, REAL(x), n, REAL(v), Rf_asLogical(grad) ? REAL(g) : NULL, 0);
    PutRNGstate();
    (void) st; /* non-finite values are returned as they are */
    SEXP ans = PROTECT(Rf_allocVector(VECSXP, 2));
    SET_VECTOR_ELT(ans, 0, v);
    SET_VECTOR_ELT(ans, 1, g);
    UNPROTECT(3);
    return ans;
}

/* The JKO loss on one batch and its gradient with respect to theta. */
SEXP C_jko_loss(SEXP arch, SEXP alpha_min, SEXP theta, SEXP x, SEXP pot,
                SEXP h, SEXP beta, SEXP threads)
{
    icnn_t net;
    net_from_sexp(&net, arch, alpha_min);
    const double *th = theta_ptr(&net, theta);
    int n;
    const double *X = batch_ptr(&net, x, &n);
    icnn_ws ws;
    jko_buf b;
    pot_t p;
    icnn_ws_alloc(&net, &ws, n, 2, nthreads(threads));
    jko_buf_alloc(&net, &b, n);
    pot_from_sexp(&p, pot, net.D, n);
    double loss;
    GetRNGstate();
    int st = jko_loss_grad(&net, th, X, n, &ws, &p, Rf_asReal(h), Rf_asReal(beta),
                           0, &b, &loss);
    PutRNGstate();
    if (st) Rf_error("the loss could not be evaluated: %s", status_msg(st));
    SEXP g = PROTECT(Rf_allocVector(REALSXP, net.npar));
    memcpy(REAL(g), b.grad, net.npar * sizeof(double));
    SEXP ans = PROTECT(Rf_allocVector(VECSXP, 2));
    SET_VECTOR_ELT(ans, 0, Rf_ScalarReal(loss));
    SET_VECTOR_ELT(ans, 1, g);
    UNPROTECT(2);
    return ans;
}

/* One JKO step: returns list(theta, loss, status, iter). A failure is
 * reported in status and iter (the R side turns it into a classed error
 * that keeps the completed steps); R errors from a user's potential and
 * interrupts unwind through here, leaving only R_alloc'ed memory behind. */
SEXP C_jko_train(SEXP arch, SEXP alpha_min, SEXP theta, SEXP pool, SEXP pot,
                 SEXP h, SEXP beta, SEXP iters, SEXP batch, SEXP lr, SEXP threads,
                 SEXP progress)
{
    icnn_t net;
    net_from_sexp(&net, arch, alpha_min);
    theta_ptr(&net, theta);
    int npool;
    const double *Xp = batch_ptr(&net, pool, &npool);
    int it = Rf_asInteger(iters), bs = Rf_asInteger(batch);
    if (npool < 1 || it < 1 || bs < 1) Rf_error("empty pool, iters or batch");
    SEXP th = PROTECT(Rf_duplicate(theta));
    SEXP loss = PROTECT(Rf_allocVector(REALSXP, it));
    for (int t = 0; t < it; t++) REAL(loss)[t] = NA_REAL;
    pot_t p;
    pot_from_sexp(&p, pot, net.D, bs);
    int fail = 0;
    GetRNGstate();
    /* lr = c(start, end) of the annealing */
    if (TYPEOF(lr) != REALSXP || LENGTH(lr) < 1) Rf_error("'lr' must be a double vector");
    double lr0 = REAL(lr)[0], lr1 = LENGTH(lr) > 1 ? REAL(lr)[1] : lr0;
    int st = jko_train(&net, REAL(th), Xp, npool, &p, Rf_asReal(h), Rf_asReal(beta),
                       it, bs, lr0, lr1, nthreads(threads), Rf_asInteger(progress),
                       REAL(loss), &fail);
    PutRNGstate();
    SEXP ans = PROTECT(Rf_allocVector(VECSXP, 4));
    SET_VECTOR_ELT(ans, 0, th);
    SET_VECTOR_ELT(ans, 1, loss);
    SET_VECTOR_ELT(ans, 2, Rf_ScalarInteger(st));
    SET_VECTOR_ELT(ans, 3, Rf_ScalarInteger(fail));
    UNPROTECT(3);
    return ans;
}

/* Inverse map, in chunks: list(x, resid, iter). */
SEXP C_icnn_invert(SEXP arch, SEXP alpha_min, SEXP theta, SEXP y, SEXP tol,
                   SEXP maxit, SEXP threads)
{
    icnn_t net;
    net_from_sexp(&net, arch, alpha_min);
    const double *th = theta_ptr(&net, theta);
    int n, D = net.D;
    const double *Y = batch_ptr(&net, y, &n);
    SEXP x = PROTECT(Rf_allocMatrix(REALSXP, D, n));
    SEXP res = PROTECT(Rf_allocVector(REALSXP, n));
    SEXP its = PROTECT(Rf_allocVector(INTSXP, n));
    const void *vmax = vmaxget();
    for (int s = 0; s < n; s += CHUNK) {
        int m = n - s < CHUNK ? n - s : CHUNK;
        int bad = icnn_invert(&net, th, Y + (size_t) D * s, m, Rf_asReal(tol),
                              Rf_asInteger(maxit), nthreads(threads),
                              REAL(x) + (size_t) D * s, REAL(res) + s,
                              INTEGER(its) + s);
        if (bad < 0) Rf_error("the Hessian is not positive definite");
        vmaxset(vmax);
    }
    SEXP ans = PROTECT(Rf_allocVector(VECSXP, 3));
    SET_VECTOR_ELT(ans, 0, x);
    SET_VECTOR_ELT(ans, 1, res);
    SET_VECTOR_ELT(ans, 2, its);
    UNPROTECT(4);
    return ans;
}
