/* The maps of the flow (map.h): push, pull and the moments that set a
 * step's change of variables. */
#include <R.h>
#include <R_ext/Utils.h>
#include <math.h>
#include <string.h>
#include "jko.h"
#include "map.h"

void map_standardise(const jko_map *m, const double *X, int n, double *Z)
{
    const int D = m->net.D;
    const double s = m->scale, *L = m->L;
    for (int i = 0; i < n; i++) {
        const double *x = X + (size_t) D * i;
        double *z = Z + (size_t) D * i;
        if (!L) {
            for (int d = 0; d < D; d++) z[d] = (x[d] - m->center[d]) / s;
            continue;
        }
        /* forward substitution; z may be x */
        for (int d = 0; d < D; d++) {
            double t = x[d] - m->center[d];
            for (int e = 0; e < d; e++) t -= L[d + (size_t) D * e] * z[e];
            z[d] = t / L[d + (size_t) D * d];
        }
    }
}

void map_unstandardise(const jko_map *m, const double *Z, int n, double *X)
{
    const int D = m->net.D;
    const double s = m->scale, *L = m->L;
    for (int i = 0; i < n; i++) {
        const double *z = Z + (size_t) D * i;
        double *x = X + (size_t) D * i;
        if (!L) {
            for (int d = 0; d < D; d++) x[d] = z[d] * s + m->center[d];
            continue;
        }
        /* from the last row up, so that x may be z */
        for (int d = D - 1; d >= 0; d--) {
            double t = m->center[d];
            for (int e = 0; e <= d; e++) t += L[d + (size_t) D * e] * z[e];
            x[d] = t;
        }
    }
}

double map_L_norm(const double *L, int D)
{
    double mx = 0;
    for (int d = 0; d < D; d++) {
        double s = 0;
        for (int e = 0; e <= d; e++) s += fabs(L[d + (size_t) D * e]);
        if (s > mx) mx = s;
    }
    return mx;
}

/* push with X in x's coordinates, or already standardised (std = 1) */
static int push_chunks(const jko_map *m, const double *X, int std, int n, int nth,
                       double *Y, double *logdet)
{
    const int D = m->net.D, nmax = n < MAP_CHUNK ? (n > 0 ? n : 1) : MAP_CHUNK;
    const void *vmax = vmaxget();
    icnn_ws ws;
    icnn_ws_alloc(&m->net, &ws, nmax, logdet != NULL, nth);
    icnn_prepare(&m->net, m->theta, &ws);
    double *Z = (double *) R_alloc((size_t) D * nmax, sizeof(double));
    double *G = (double *) R_alloc((size_t) D * nmax, sizeof(double));
    double *ld = (double *) R_alloc(nmax, sizeof(double));
    int status = JKO_OK;
    for (int s = 0; s < n; s += MAP_CHUNK) {
        if (s) R_CheckUserInterrupt();
        int c = n - s < MAP_CHUNK ? n - s : MAP_CHUNK;
        const double *Zc = X + (size_t) D * s;
        if (!std) {
            map_standardise(m, Zc, c, Z);
            Zc = Z;
        }
        icnn_forward(&m->net, m->theta, Zc, c, &ws, NULL, G);
        if (logdet) {
            int st = icnn_hessian(&m->net, m->theta, Zc, c, &ws, ld);
            if (st) status = st;
            for (int i = 0; i < c; i++) logdet[s + i] -= ld[i];
        }
        map_unstandardise(m, G, c, Y + (size_t) D * s);
    }
    vmaxset(vmax);
    return status;
}

int map_push(const jko_map *m, const double *X, int n, int nth, double *Y,
             double *logdet)
{
    return push_chunks(m, X, 0, n, nth, Y, logdet);
}

void map_push_standardised(const jko_map *m, const double *Z, int n, int nth,
                           double *Y)
{
    push_chunks(m, Z, 1, n, nth, Y, NULL);
}

int map_pull(const jko_map *m, const double *Y, int n, double tol, int maxit,
             int nth, double *X, double *resid, double *logdet)
{
    const int D = m->net.D, nmax = n < MAP_CHUNK ? (n > 0 ? n : 1) : MAP_CHUNK;
    double *Z = (double *) R_alloc((size_t) D * nmax, sizeof(double));
    double *Zx = (double *) R_alloc((size_t) D * nmax, sizeof(double));
    int *its = (int *) R_alloc(nmax, sizeof(int));
    int status = JKO_OK;
    for (int s = 0; s < n; s += MAP_CHUNK) {
        if (s) R_CheckUserInterrupt();   /* (and per Newton iteration) */
        int c = n - s < MAP_CHUNK ? n - s : MAP_CHUNK;
        const void *vmax = vmaxget();
        map_standardise(m, Y + (size_t) D * s, c, Z);
        int bad = icnn_invert(&m->net, m->theta, Z, c, tol / m->scale, maxit, nth,
                              Zx, resid + s, its);
        vmaxset(vmax);
        if (bad < 0) {
            /* a Hessian met on the way is not positive definite: the chunk's
             * points are lost (NaN, and so are their log-determinants) */
            status = JKO_ERR_NOTPD;
            for (size_t q = 0; q < (size_t) D * c; q++) Zx[q] = NAN;
            for (int i = 0; i < c; i++) resid[s + i] = NAN;
        }
        for (int i = 0; i < c; i++) resid[s + i] *= m->scale;
        map_unstandardise(m, Zx, c, X + (size_t) D * s);
    }
    /* the log-determinants at the points found, as push computes them */
    double *Yx = (double *) R_alloc((size_t) D * (n > 0 ? n : 1), sizeof(double));
    int st = map_push(m, X, n, nth, Yx, logdet);
    return status ? status : st;
}

void map_moments(const double *X, int D, int n, double *center, double *scale)
{
    /* R's rowMeans: long double sums over the columns, divided by n */
    for (int d = 0; d < D; d++) {
        long double s = 0;
        for (int i = 0; i < n; i++) s += X[d + (size_t) D * i];
        s /= n;
        center[d] = (double) s;
    }
    /* rowSums((X - center)^2), then mean() of the D sums (two passes) */
    double *ss = (double *) R_alloc(D, sizeof(double));
    for (int d = 0; d < D; d++) {
        long double s = 0;
        for (int i = 0; i < n; i++) {
            double t = X[d + (size_t) D * i] - center[d];
            s += t * t;
        }
        ss[d] = (double) s;
    }
    long double mu = 0;
    for (int d = 0; d < D; d++) mu += ss[d];
    mu /= D;
    if (isfinite((double) mu)) {
        long double t = 0;
        for (int d = 0; d < D; d++) t += ss[d] - mu;
        mu += t / D;
    }
    double sc = sqrt((double) mu / (n - 1));
    *scale = (isfinite(sc) && sc > 0) ? sc : 1.0;
}

double map_moments_full(const double *X, int D, int n, double *center, double *L)
{
    double iso;
    map_moments(X, D, n, center, &iso);
    for (int e = 0; e < D; e++) {
        R_CheckUserInterrupt();   /* D^2 n / 2 products in all */
        for (int d = 0; d < D; d++) {
            long double s = 0;
            if (d >= e)
                for (int i = 0; i < n; i++)
                    s += (X[d + (size_t) D * i] - center[d]) *
                         (X[e + (size_t) D * i] - center[e]);
            L[d + (size_t) D * e] = d >= e ? (double) (s / (n - 1)) : 0.0;
        }
    }
    /* in-place lower Cholesky; on failure the diagonal */
    int ok = n > D;
    double *diag = (double *) R_alloc(D, sizeof(double));
    for (int d = 0; d < D; d++) diag[d] = L[d + (size_t) D * d];
    for (int j = 0; j < D && ok; j++) {
        double *Lj = L + (size_t) D * j;
        for (int k = 0; k < j; k++) {
            const double *Lk = L + (size_t) D * k;
            for (int i = j; i < D; i++) Lj[i] -= Lk[i] * Lk[j];
        }
        if (!(Lj[j] > 1e-300) || !isfinite(Lj[j])) { ok = 0; break; }
        double r = sqrt(Lj[j]);
        for (int i = j; i < D; i++) Lj[i] /= r;
    }
    if (!ok) {
        for (size_t q = 0; q < (size_t) D * D; q++) L[q] = 0;
        for (int d = 0; d < D; d++) {
            double v = diag[d];
            L[d + (size_t) D * d] = (v > 0 && isfinite(v)) ? sqrt(v) : iso;
        }
    }
    return map_L_norm(L, D);
}
