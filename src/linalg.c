/* Small dense Cholesky routines used per sample (linalg.h). */
#include <math.h>
#include <stddef.h>
#include "jko.h"
#include "icnn.h"
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

/* A^{-1} = L^{-T} L^{-1} from the Cholesky factor Lc (its lower triangle);
 * work holds D * D doubles. X = L^{-1} by rows (row-major in work, zero
 * right of the diagonal): X_i = (e_i - sum_{k < i} L_ik X_k) / L_ii, then
 * the lower triangle of A^{-1} by columns, A^{-1}_ba = sum_{i >= b} X_ia
 * X_ib for b >= a, mirrored. Both sums run over a unit's entries a vector
 * at a time (JKO_CHUNKS), with the sum over k or i in registers: about
 * D^3 / 3 FMAs in vectors. At D = 32 on an AVX-512 Xeon LAPACK's dpotri
 * (unblocked level-2 at this size) took 5.8 us. */
JKO_CLONES void chol_inverse(const double *Lc, int D, double *Ainv, double *work)
{
    double *X = work;
    for (int i = 0; i < D; i++) {
        double *Xi = X + (size_t) D * i;
        const double lii = Lc[i + (size_t) D * i];
        for (int c = 0; c < D; c++) Xi[c] = 0.0;
        Xi[i] = 1.0;
        /* entries k.. of X_kk are zero for kk < k: the sum starts at k */
#define INV_ROW(VT, LD, ST) {                                                   \
            VT t = LD(Xi + k);                                                  \
            for (int kk = k; kk < i; kk++)                                      \
                t -= Lc[i + (size_t) D * kk] * LD(X + (size_t) D * kk + k);     \
            ST(Xi + k, t / lii);                                                \
        }
        JKO_CHUNKS(k, i + 1, INV_ROW);
#undef INV_ROW
    }
    for (int a = 0; a < D; a++) {
        double *Aa = Ainv + (size_t) D * a + a;
        const double *Xa = X + a;
        /* rows b = a + k..: X_ib = 0 for i < b */
#define INV_COL(VT, LD, ST) {                                                   \
            VT t = Xa[(size_t) D * (a + k)] * LD(Xa + (size_t) D * (a + k) + k); \
            for (int i = a + k + 1; i < D; i++)                                 \
                t += Xa[(size_t) D * i] * LD(Xa + (size_t) D * i + k);          \
            ST(Aa + k, t);                                                      \
        }
        JKO_CHUNKS(k, D - a, INV_COL);
#undef INV_COL
    }
    for (int a = 0; a < D; a++)
        for (int b = a + 1; b < D; b++) Ainv[a + (size_t) D * b] = Ainv[b + (size_t) D * a];
}
