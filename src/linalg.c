/* Small dense Cholesky routines used per sample (linalg.h). */
#include <math.h>
#include <stddef.h>
#include "jko.h"
#include "linalg.h"

/* In-place lower Cholesky of the D x D matrix A (column-major); the upper
 * triangle is left alone. Right-looking, so the updates run down columns
 * (contiguous memory). */
JKO_CLONES int chol_logdet(double *A, int D, double *logdet)
{
    double ld = 0;
    for (int j = 0; j < D; j++) {
        double *Aj = A + (size_t) D * j;
        double s = Aj[j];
        if (!(s > 0) || !isfinite(s)) return JKO_ERR_NOTPD;
        double ljj = sqrt(s), inv = 1.0 / ljj;
        Aj[j] = ljj;
        ld += log(ljj);
        for (int i = j + 1; i < D; i++) Aj[i] *= inv;
        for (int k = j + 1; k < D; k++) {
            double *Ak = A + (size_t) D * k, lkj = Aj[k];
            JKO_SIMD
            for (int i = k; i < D; i++) Ak[i] -= Aj[i] * lkj;
        }
    }
    if (logdet) *logdet = 2.0 * ld;
    return JKO_OK;
}

/* Solve L L' x = b in place. */
void chol_solve(const double *Lc, int D, double *b)
{
    for (int i = 0; i < D; i++) {
        double t = b[i];
        for (int k = 0; k < i; k++) t -= Lc[i + (size_t) D * k] * b[k];
        b[i] = t / Lc[i + (size_t) D * i];
    }
    for (int i = D - 1; i >= 0; i--) {
        double t = b[i];
        for (int k = i + 1; k < D; k++) t -= Lc[k + (size_t) D * i] * b[k];
        b[i] = t / Lc[i + (size_t) D * i];
    }
}

/* A^{-1} = L^{-T} L^{-1} from the Cholesky factor; work holds D*D doubles.
 * Column-oriented: X = L^{-1} by forward substitution on each unit
 * vector (updates down columns of L), then A^{-1}_ij = X_.i' X_.j over
 * rows k >= max(i, j) (columns of X are contiguous). */
JKO_CLONES void chol_inverse(const double *Lc, int D, double *Ainv, double *work)
{
    for (int j = 0; j < D; j++) {
        double *x = work + (size_t) D * j;
        for (int i = 0; i < D; i++) x[i] = 0.0;
        x[j] = 1.0;
        for (int k = j; k < D; k++) {
            const double *Lk = Lc + (size_t) D * k;
            double xk = x[k] / Lk[k];
            x[k] = xk;
            JKO_SIMD
            for (int i = k + 1; i < D; i++) x[i] -= Lk[i] * xk;
        }
    }
    for (int j = 0; j < D; j++) {
        const double *xj = work + (size_t) D * j;
        for (int i = j; i < D; i++) {
            const double *xi = work + (size_t) D * i;
            double t = jko_dot(xi + i, xj + i, D - i);
            Ainv[i + (size_t) D * j] = t;
            Ainv[j + (size_t) D * i] = t;
        }
    }
}
