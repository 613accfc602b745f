/* Inversion of the map y = grad psi(x): x minimises the strongly convex
 * f(z) = psi(z) - z'y, found by Newton's method with a backtracking
 * (Armijo) line search, batched over the points still active. */
#include <R.h>
#include <R_ext/Utils.h>
#include <math.h>
#include <string.h>
#include "icnn.h"
#include "linalg.h"

/* Y, Xout: D x n. resid (n) gets max_d |grad psi(x) - y|, iter (n) the
 * Newton iterations used. Returns the number of points not converged. */
int icnn_invert(const icnn_t *net, const double *th, const double *Y, int n,
                double tol, int maxit, int nth, double *Xout, double *resid,
                int *iter)
{
    const int D = net->D, D2 = D * D;
    icnn_ws ws;
    icnn_ws_alloc(net, &ws, n, 1, nth);
    icnn_prepare(net, th, &ws);   /* th is fixed: once for every pass below */
    int *act = (int *) R_alloc(n, sizeof(int));
    double *Za = (double *) R_alloc((size_t) D * n, sizeof(double));
    double *Zt = (double *) R_alloc((size_t) D * n, sizeof(double));
    double *Ga = (double *) R_alloc((size_t) D * n, sizeof(double));
    double *dir = (double *) R_alloc((size_t) D * n, sizeof(double));
    double *psi = (double *) R_alloc(n, sizeof(double));
    double *f0 = (double *) R_alloc(n, sizeof(double));
    double *slope = (double *) R_alloc(n, sizeof(double));
    double *step = (double *) R_alloc(n, sizeof(double));
    int *ls = (int *) R_alloc(n, sizeof(int));

    memcpy(Xout, Y, (size_t) D * n * sizeof(double));
    for (int i = 0; i < n; i++) { resid[i] = INFINITY; iter[i] = 0; }
    int na = n;
    for (int i = 0; i < n; i++) act[i] = i;

    for (int it = 0; it <= maxit && na > 0; it++) {
        R_CheckUserInterrupt();
        for (int a = 0; a < na; a++)
            memcpy(Za + (size_t) D * a, Xout + (size_t) D * act[a], D * sizeof(double));
        icnn_forward(net, th, Za, na, &ws, psi, Ga);
        int keep = 0;
        for (int a = 0; a < na; a++) {
            int i = act[a];
            const double *y = Y + (size_t) D * i;
            double *g = Ga + (size_t) D * a, r = 0;
            for (int d = 0; d < D; d++) {
                g[d] -= y[d];
                if (fabs(g[d]) > r) r = fabs(g[d]);
            }
            resid[i] = r;
            iter[i] = it;
            if (!(r > tol) || it == maxit) continue;
            /* compact: the kept point takes slot keep */
            if (keep != a) {
                memcpy(Za + (size_t) D * keep, Za + (size_t) D * a, D * sizeof(double));
                memcpy(Ga + (size_t) D * keep, g, D * sizeof(double));
            }
            double zy = 0;
            for (int d = 0; d < D; d++) zy += Za[(size_t) D * keep + d] * y[d];
            f0[keep] = psi[a] - zy;
            act[keep++] = i;
        }
        na = keep;
        if (na == 0 || it == maxit) break;
        icnn_forward(net, th, Za, na, &ws, NULL, NULL);
        int st = icnn_hessian(net, th, Za, na, &ws, NULL);
        if (st) return -1;
        for (int a = 0; a < na; a++) {
            double *dv = dir + (size_t) D * a, *g = Ga + (size_t) D * a, s = 0;
            for (int d = 0; d < D; d++) dv[d] = -g[d];
            chol_solve(ws.Lc + (size_t) D2 * a, D, dv);
            for (int d = 0; d < D; d++) s += g[d] * dv[d];
            slope[a] = s;
            step[a] = 1.0;
            ls[a] = 1;
        }
        /* backtracking, batched over the points whose step is not yet accepted */
        for (int tries = 0; tries < 60; tries++) {
            int m = 0;
            for (int a = 0; a < na; a++) {
                if (!ls[a]) continue;
                for (int d = 0; d < D; d++)
                    Zt[(size_t) D * m + d] = Za[(size_t) D * a + d] + step[a] * dir[(size_t) D * a + d];
                m++;
            }
            if (m == 0) break;
            icnn_forward(net, th, Zt, m, &ws, psi, NULL);
            int b = 0;
            for (int a = 0; a < na; a++) {
                if (!ls[a]) continue;
                const double *y = Y + (size_t) D * act[a], *z = Zt + (size_t) D * b;
                double zy = 0;
                for (int d = 0; d < D; d++) zy += z[d] * y[d];
                double f = psi[b] - zy;
                /* near the solution f changes below rounding: take the step */
                double noise = 1e-13 * (1.0 + fabs(f0[a]));
                if (f <= f0[a] + 1e-4 * step[a] * slope[a] || -step[a] * slope[a] < noise) {
                    ls[a] = 0;
                    memcpy(Xout + (size_t) D * act[a], z, D * sizeof(double));
                } else {
                    step[a] *= 0.5;
                }
                b++;
            }
        }
    }
    int bad = 0;
    for (int i = 0; i < n; i++) if (!(resid[i] <= tol)) bad++;
    return bad;
}
