/* The exact Hessian of psi and its log-determinant (design.md, section 3):
 *
 *   H = sum_l G_l' diag(c_l) G_l + sum_l sum_k 2 u_{l,k} A_{l,k}' A_{l,k} + alpha I
 *   G_1 = grad Q_1,  G_l = W_l J_{l-1} + grad Q_l,  J_l = diag(sigma'(s_l)) G_l
 *
 * and small dense Cholesky routines used per sample. */
#define USE_FC_LEN_T
#include <R.h>
#include <R_ext/BLAS.h>
#ifndef FCONE
# define FCONE
#endif
#include <math.h>
#include <string.h>
#include "icnn.h"

/* In-place lower Cholesky of the D x D matrix A (column-major); the upper
 * triangle is left alone. */
int chol_logdet(double *A, int D, double *logdet)
{
    double ld = 0;
    for (int j = 0; j < D; j++) {
        double *Aj = A + (size_t) D * j;
        double s = Aj[j];
        for (int k = 0; k < j; k++) s -= A[j + (size_t) D * k] * A[j + (size_t) D * k];
        if (!(s > 0) || !isfinite(s)) return JKO_ERR_NOTPD;
        double ljj = sqrt(s);
        Aj[j] = ljj;
        ld += log(ljj);
        for (int i = j + 1; i < D; i++) {
            double t = Aj[i];
            for (int k = 0; k < j; k++)
                t -= A[i + (size_t) D * k] * A[j + (size_t) D * k];
            Aj[i] = t / ljj;
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

/* A^{-1} = L^{-T} L^{-1} from the Cholesky factor; work holds D*D doubles. */
void chol_inverse(const double *Lc, int D, double *Ainv, double *work)
{
    /* work = L^{-1}, lower triangular */
    memset(work, 0, (size_t) D * D * sizeof(double));
    for (int j = 0; j < D; j++) {
        work[j + (size_t) D * j] = 1.0 / Lc[j + (size_t) D * j];
        for (int i = j + 1; i < D; i++) {
            double t = 0;
            for (int k = j; k < i; k++)
                t -= Lc[i + (size_t) D * k] * work[k + (size_t) D * j];
            work[i + (size_t) D * j] = t / Lc[i + (size_t) D * i];
        }
    }
    for (int j = 0; j < D; j++)
        for (int i = j; i < D; i++) {
            double t = 0;
            for (int k = i; k < D; k++)
                t += work[k + (size_t) D * i] * work[k + (size_t) D * j];
            Ainv[i + (size_t) D * j] = t;
            Ainv[j + (size_t) D * i] = t;
        }
}

/* Needs icnn_forward on the same X first. Fills ws->M, ws->G, ws->J, ws->H
 * and the Cholesky factors ws->Lc; logdet (length n) may be NULL. */
int icnn_hessian(const icnn_t *net, const double *th, const double *X, int n,
                 icnn_ws *ws, double *logdet)
{
    const int D = net->D, r = net->r, L = net->L, nth = ws->nth, act = net->act;
    const int D2 = D * D;
    const double one = 1.0, two = 2.0;
    const double alpha = icnn_alpha(net, th);
    (void) X;

    /* M_{l,k} = sum_j a_kj a_kj', stored as D^2 x w */
    for (int l = 0; l < L; l++) {
        int w = net->w[l], wr = w * r;
        const double *A = th + net->offA[l];
        double *M = ws->M[l];
        for (int k = 0; k < w; k++) {
            double *Mk = M + (size_t) D2 * k;
            for (int e = 0; e < D; e++)
                for (int d = e; d < D; d++) {
                    double s = 0;
                    for (int j = 0; j < r; j++)
                        s += A[k * r + j + (size_t) wr * d] * A[k * r + j + (size_t) wr * e];
                    Mk[d + D * e] = s;
                    Mk[e + D * d] = s;
                }
        }
    }

    /* Jacobian recursion: G_l = grad Q_l (+ W_l J_{l-1}) */
    for (int l = 0; l < L; l++) {
        if (!ws->G[l]) continue;
        int w = net->w[l], wr = w * r;
        const double *A = th + net->offA[l], *B = th + net->offB[l];
        const double *P = ws->P[l];
        double *G = ws->G[l];
#ifdef _OPENMP
#pragma omp parallel for num_threads(nth) schedule(static)
#endif
        for (int i = 0; i < n; i++) {
            const double *Pi = P + (size_t) wr * i;
            double *Gi = G + (size_t) w * D * i;
            for (int d = 0; d < D; d++) {
                const double *Ad = A + (size_t) wr * d;
                double *Gd = Gi + (size_t) w * d;
                for (int k = 0; k < w; k++) {
                    double s = 0;
                    for (int j = 0; j < r; j++) s += Pi[k * r + j] * Ad[k * r + j];
                    Gd[k] = 2.0 * s + B[k + (size_t) w * d];
                }
            }
        }
        if (l > 0) {
            int wp = net->w[l - 1], Dn = D * n;
            F77_CALL(dgemm)("N", "N", &w, &Dn, &wp, &one, th + net->offW[l], &w,
                            ws->J[l - 1], &wp, &one, G, &w FCONE FCONE);
            if (ws->J[l]) {
                double *Jl = ws->J[l];
                const double *S = ws->S[l];
#ifdef _OPENMP
#pragma omp parallel for num_threads(nth) schedule(static)
#endif
                for (int i = 0; i < n; i++) {
                    for (int k = 0; k < w; k++) {
                        double f1;
                        act_eval(act, S[(size_t) w * i + k], NULL, &f1, NULL, NULL);
                        for (int d = 0; d < D; d++) {
                            size_t m = k + (size_t) w * (d + (size_t) D * i);
                            Jl[m] = f1 * G[m];
                        }
                    }
                }
            }
        }
    }

    /* H = alpha I + sum_l M_l (2 u_l) + sum_l G_l' diag(c_l) G_l */
    double *H = ws->H;
    memset(H, 0, (size_t) D2 * n * sizeof(double));
    for (int i = 0; i < n; i++)
        for (int d = 0; d < D; d++) H[(size_t) D2 * i + d * (D + 1)] = alpha;
    for (int l = 0; l < L; l++) {
        int w = net->w[l];
        F77_CALL(dgemm)("N", "N", &D2, &n, &w, &two, ws->M[l], &D2, ws->U[l], &w,
                        &one, H, &D2 FCONE FCONE);
    }
    int status = JKO_OK;
#ifdef _OPENMP
#pragma omp parallel for num_threads(nth) schedule(static) reduction(max:status)
#endif
    for (int i = 0; i < n; i++) {
#ifdef _OPENMP
        int tid = omp_get_thread_num();
#else
        int tid = 0;
#endif
        double *cg = ws->tmp + (size_t) tid * (net->wmax * (size_t) D + 2 * (size_t) D2);
        double *Hi = H + (size_t) D2 * i;
        for (int l = 1; l < L; l++) {
            int w = net->w[l];
            const double *Gi = ws->G[l] + (size_t) w * D * i;
            const double *ci = ws->C[l] + (size_t) w * i;
            for (int a = 0; a < D; a++) {
                const double *Ga = Gi + (size_t) w * a;
                for (int k = 0; k < w; k++) cg[k] = ci[k] * Ga[k];
                for (int b = 0; b <= a; b++) {
                    const double *Gb = Gi + (size_t) w * b;
                    double s = 0;
                    for (int k = 0; k < w; k++) s += cg[k] * Gb[k];
                    Hi[a + D * b] += s;
                }
            }
        }
        for (int a = 0; a < D; a++)
            for (int b = 0; b < a; b++) Hi[b + D * a] = Hi[a + D * b];
        double *Li = ws->Lc + (size_t) D2 * i;
        memcpy(Li, Hi, (size_t) D2 * sizeof(double));
        double ld;
        int st = chol_logdet(Li, D, &ld);
        if (st != JKO_OK) { status = st; ld = NAN; }
        if (logdet) logdet[i] = ld;
    }
    return status;
}
