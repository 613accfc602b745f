/* Reverse mode through the network: given per-sample cotangents ybar on the
 * map y = grad psi(x) and lambda on log det H, the gradient with respect to
 * every parameter (design.md, section 3). With Hbar = lambda H^{-1}:
 *
 *   Gbar_l = 2 diag(c_l) G_l Hbar     cbar_{l,k} = g_{l,k}' Hbar g_{l,k}
 *   ubar_{l,k} += 2 tr(Hbar A_{l,k}'A_{l,k})   Abar_{l,k} += 4 u_{l,k} A_{l,k} Hbar
 *   alphabar += tr(Hbar) + x' ybar
 *
 * then one reverse sweep through the Jacobian recursion, the delta recursion
 * and the primal. Needs icnn_forward and icnn_hessian on the same X first
 * (icnn_hessian may be skipped when lambda is NULL). */
#define USE_FC_LEN_T
#include <R.h>
#include <R_ext/BLAS.h>
#ifndef FCONE
# define FCONE
#endif
#include <math.h>
#include <string.h>
#include "icnn.h"

/* Gbar = grad Q_l's adjoint Ebar (w x D x n) into Bbar, Pbar and Abar:
 *   E_{k,d} = 2 sum_j p_kj a_kjd + b_kd. */
static void grad_q_reverse(const icnn_t *net, int l, const double *th,
                           const double *Eb, int n, icnn_ws *ws, double *grad)
{
    const int D = net->D, r = net->r, w = net->w[l], wr = w * r, nth = ws->nth;
    const double *A = th + net->offA[l], *P = ws->P[l];
    double *Ab = grad + net->offA[l], *Bb = grad + net->offB[l], *Pb = ws->Pb[l];

#ifdef _OPENMP
#pragma omp parallel for num_threads(nth) schedule(static)
#endif
    for (int k = 0; k < w; k++) {
        for (int i = 0; i < n; i++) {
            const double *Ei = Eb + (size_t) w * D * i;
            const double *Pi = P + (size_t) wr * i;
            for (int d = 0; d < D; d++) {
                double e = Ei[k + (size_t) w * d];
                Bb[k + (size_t) w * d] += e;
                for (int j = 0; j < r; j++)
                    Ab[k * r + j + (size_t) wr * d] += 2.0 * Pi[k * r + j] * e;
            }
        }
    }
#ifdef _OPENMP
#pragma omp parallel for num_threads(nth) schedule(static)
#endif
    for (int i = 0; i < n; i++) {
        const double *Ei = Eb + (size_t) w * D * i;
        double *Pbi = Pb + (size_t) wr * i;
        for (int d = 0; d < D; d++) {
            const double *Ad = A + (size_t) wr * d, *Ed = Ei + (size_t) w * d;
            for (int k = 0; k < w; k++)
                for (int j = 0; j < r; j++)
                    Pbi[k * r + j] += 2.0 * Ad[k * r + j] * Ed[k];
        }
    }
}

void icnn_backward(const icnn_t *net, const double *th, const double *X, int n,
                   icnn_ws *ws, const double *Ybar, const double *lambda,
                   double *grad)
{
    const int D = net->D, r = net->r, L = net->L, nth = ws->nth, act = net->act;
    const int D2 = D * D, Dn = D * n;
    const double one = 1.0, zero = 0.0, two = 2.0;
    const int hess = lambda != NULL;
    memset(grad, 0, net->npar * sizeof(double));

    /* Hbar = lambda H^{-1} and the alpha adjoint */
    double abar = 0;
    if (hess) {
#ifdef _OPENMP
#pragma omp parallel for num_threads(nth) schedule(static)
#endif
        for (int i = 0; i < n; i++) {
#ifdef _OPENMP
            int tid = omp_get_thread_num();
#else
            int tid = 0;
#endif
            double *work = ws->tmp + (size_t) tid * (net->wmax * (size_t) D + 2 * (size_t) D2);
            double *Hb = ws->Hbar + (size_t) D2 * i;
            chol_inverse(ws->Lc + (size_t) D2 * i, D, Hb, work);
            for (int m = 0; m < D2; m++) Hb[m] *= lambda[i];
        }
        for (int i = 0; i < n; i++)
            for (int d = 0; d < D; d++) abar += ws->Hbar[(size_t) D2 * i + d * (D + 1)];
    }
    for (size_t m = 0; m < (size_t) Dn; m++) abar += X[m] * Ybar[m];
    {
        double a = th[net->offa];
        double sig = a >= 0 ? 1.0 / (1.0 + exp(-a)) : exp(a) / (1.0 + exp(a));
        grad[net->offa] = abar * sig;
    }

    /* (a) rank terms of the Hessian and (b) the map's direct dependence on
     * p and u: y = sum_l A_l' (2 p_l u_l) + B_l' u_l + alpha x */
    for (int l = 0; l < L; l++) {
        int w = net->w[l], wr = w * r;
        const double *A = th + net->offA[l], *P = ws->P[l], *U = ws->U[l];
        double *Ub = ws->Ub[l], *Pb = ws->Pb[l], *PU = ws->PU;
        double *Ab = grad + net->offA[l];
        if (hess) {
            F77_CALL(dgemm)("T", "N", &w, &n, &D2, &two, ws->M[l], &D2, ws->Hbar,
                            &D2, &zero, Ub, &w FCONE FCONE);
            F77_CALL(dgemm)("N", "T", &D2, &w, &n, &two, ws->Hbar, &D2, U, &w,
                            &zero, ws->Mbar, &D2 FCONE FCONE);
            /* Abar_{kj} += 2 Mbar_k a_kj */
            for (int k = 0; k < w; k++) {
                const double *Mk = ws->Mbar + (size_t) D2 * k;
                for (int j = 0; j < r; j++)
                    for (int d = 0; d < D; d++) {
                        double s = 0;
                        for (int e = 0; e < D; e++)
                            s += Mk[d + D * e] * A[k * r + j + (size_t) wr * e];
                        Ab[k * r + j + (size_t) wr * d] += 2.0 * s;
                    }
            }
        } else {
            memset(Ub, 0, (size_t) w * n * sizeof(double));
        }
        /* Abar += (2 p u) ybar' */
        for (int i = 0; i < n; i++)
            for (int k = 0; k < w; k++) {
                double uk = U[(size_t) w * i + k];
                for (int j = 0; j < r; j++)
                    PU[(size_t) wr * i + k * r + j] = 2.0 * P[(size_t) wr * i + k * r + j] * uk;
            }
        F77_CALL(dgemm)("N", "T", &wr, &D, &n, &one, PU, &wr, Ybar, &D, &one,
                        Ab, &wr FCONE FCONE);
        /* PU = A ybar; ubar += 2 p . (A ybar), pbar = 2 u (A ybar) */
        F77_CALL(dgemm)("N", "N", &wr, &n, &D, &one, A, &wr, Ybar, &D, &zero,
                        PU, &wr FCONE FCONE);
        for (int i = 0; i < n; i++)
            for (int k = 0; k < w; k++) {
                size_t m = (size_t) w * i + k;
                double s = 0;
                for (int j = 0; j < r; j++) {
                    size_t q = (size_t) wr * i + k * r + j;
                    s += P[q] * PU[q];
                    Pb[q] = 2.0 * U[m] * PU[q];
                }
                Ub[m] += 2.0 * s;
            }
        F77_CALL(dgemm)("N", "N", &w, &n, &D, &one, th + net->offB[l], &w, Ybar,
                        &D, &one, Ub, &w FCONE FCONE);
        F77_CALL(dgemm)("N", "T", &w, &D, &n, &one, U, &w, Ybar, &D, &one,
                        grad + net->offB[l], &w FCONE FCONE);
        memset(ws->Sb[l], 0, (size_t) w * n * sizeof(double));
        memset(ws->Cb[l], 0, (size_t) w * n * sizeof(double));
    }

    /* (c) the Jacobian recursion in reverse, top layer down. Gb holds
     * Jbar_l on entry (zero at the top) and Gbar_l after the update. */
    if (hess && L > 1) {
        double *Gb = ws->GB, *Jb = ws->JB;
        memset(Gb, 0, (size_t) net->w[L - 1] * Dn * sizeof(double));
        for (int l = L - 1; l >= 0; l--) {
            int w = net->w[l];
            if (l > 0) {
                const double *G = ws->G[l], *S = ws->S[l], *Cc = ws->C[l];
                double *Cb = ws->Cb[l], *Sb = ws->Sb[l];
                int top = (l == L - 1);
#ifdef _OPENMP
#pragma omp parallel for num_threads(nth) schedule(static)
#endif
                for (int i = 0; i < n; i++) {
#ifdef _OPENMP
                    int tid = omp_get_thread_num();
#else
                    int tid = 0;
#endif
                    double *T = ws->tmp + (size_t) tid * (net->wmax * (size_t) D + 2 * (size_t) D2);
                    const double *Gi = G + (size_t) w * D * i;
                    const double *Hb = ws->Hbar + (size_t) D2 * i;
                    double *gb = Gb + (size_t) w * D * i;
                    /* T = G_i Hbar_i */
                    memset(T, 0, (size_t) w * D * sizeof(double));
                    for (int e = 0; e < D; e++)
                        for (int d = 0; d < D; d++) {
                            double h = Hb[d + D * e];
                            const double *Gd = Gi + (size_t) w * d;
                            double *Te = T + (size_t) w * e;
                            for (int k = 0; k < w; k++) Te[k] += Gd[k] * h;
                        }
                    for (int k = 0; k < w; k++) {
                        size_t m = (size_t) w * i + k;
                        double cb = 0, jg = 0, f1 = 1, f2 = 0;
                        if (!top) act_eval(act, S[m], NULL, &f1, &f2, NULL);
                        for (int d = 0; d < D; d++) {
                            size_t q = k + (size_t) w * d;
                            cb += T[q] * Gi[q];
                            if (!top) { jg += gb[q] * Gi[q]; gb[q] *= f1; }
                            gb[q] += 2.0 * Cc[m] * T[q];
                        }
                        Cb[m] = cb;
                        if (!top) Sb[m] += f2 * jg;
                    }
                }
                int wp = net->w[l - 1];
                F77_CALL(dgemm)("N", "T", &w, &wp, &Dn, &one, Gb, &w, ws->J[l - 1],
                                &wp, &one, grad + net->offW[l], &w FCONE FCONE);
                grad_q_reverse(net, l, th, Gb, n, ws, grad);
                F77_CALL(dgemm)("T", "N", &wp, &Dn, &w, &one, th + net->offW[l], &w,
                                Gb, &w, &zero, Jb, &wp FCONE FCONE);
                double *t = Gb; Gb = Jb; Jb = t;
            } else {
                /* layer 1 has no activation: Gbar_1 = Jbar_1 */
                grad_q_reverse(net, 0, th, Gb, n, ws, grad);
            }
        }
    }

    /* (d) the delta recursion in reverse, bottom layer up */
    for (int l = 0; l < L; l++) {
        int w = net->w[l];
        const double *S = ws->S[l], *Dd = ws->Dl[l], *Ub = ws->Ub[l], *Cb = ws->Cb[l];
        double *Sb = ws->Sb[l], *Db = ws->Db;
        if (l == 0) {
            memcpy(Db, Ub, (size_t) w * n * sizeof(double));
            if (L > 1) {   /* delta_1 = W_2' u_2 + v_1 */
                double *sb = grad + net->offs;
                for (int i = 0; i < n; i++)
                    for (int k = 0; k < w; k++) sb[k] += Db[(size_t) w * i + k];
            }
        } else {
#ifdef _OPENMP
#pragma omp parallel for num_threads(nth) schedule(static)
#endif
            for (size_t m = 0; m < (size_t) w * n; m++) {
                double f1, f2, f3;
                act_eval(act, S[m], NULL, &f1, &f2, &f3);
                Db[m] = f1 * Ub[m] + f2 * Cb[m];
                Sb[m] += Dd[m] * (f2 * Ub[m] + f3 * Cb[m]);
            }
        }
        if (l < L - 1) {
            int wn = net->w[l + 1];
            F77_CALL(dgemm)("N", "N", &wn, &n, &w, &one, th + net->offW[l + 1], &wn,
                            Db, &w, &one, ws->Ub[l + 1], &wn FCONE FCONE);
            F77_CALL(dgemm)("N", "T", &wn, &w, &n, &one, ws->U[l + 1], &wn, Db, &w,
                            &one, grad + net->offW[l + 1], &wn FCONE FCONE);
        } else {
            double *vb = grad + net->offv;
            for (int i = 0; i < n; i++)
                for (int k = 0; k < w; k++) vb[k] += Db[(size_t) w * i + k];
        }
    }

    /* (e) the primal in reverse, top layer down (no cotangent on psi) */
    for (int l = L - 1; l >= 0; l--) {
        int w = net->w[l], wr = w * r;
        double *Sb = ws->Sb[l], *Pb = ws->Pb[l];
        const double *P = ws->P[l];
        if (l < L - 1) {
            const double *S = ws->S[l], *Zb = ws->Zb;
            if (l == 0) {
                for (size_t m = 0; m < (size_t) w * n; m++) Sb[m] += Zb[m];
            } else {
                for (size_t m = 0; m < (size_t) w * n; m++) {
                    double f1;
                    act_eval(act, S[m], NULL, &f1, NULL, NULL);
                    Sb[m] += f1 * Zb[m];
                }
            }
        }
        if (l > 0) {
            int wp = net->w[l - 1];
            F77_CALL(dgemm)("N", "T", &w, &wp, &n, &one, Sb, &w, ws->Z[l - 1], &wp,
                            &one, grad + net->offW[l], &w FCONE FCONE);
            F77_CALL(dgemm)("T", "N", &wp, &n, &w, &one, th + net->offW[l], &w, Sb,
                            &w, &zero, ws->Zb, &wp FCONE FCONE);
        }
        double *cb = grad + net->offc[l];
        for (int i = 0; i < n; i++)
            for (int k = 0; k < w; k++) {
                double sb = Sb[(size_t) w * i + k];
                cb[k] += sb;
                for (int j = 0; j < r; j++) {
                    size_t q = (size_t) wr * i + k * r + j;
                    Pb[q] += 2.0 * P[q] * sb;
                }
            }
        F77_CALL(dgemm)("N", "T", &w, &D, &n, &one, Sb, &w, X, &D, &one,
                        grad + net->offB[l], &w FCONE FCONE);
        F77_CALL(dgemm)("N", "T", &wr, &D, &n, &one, Pb, &wr, X, &D, &one,
                        grad + net->offA[l], &wr FCONE FCONE);
    }
}
