/* The exact Hessian of psi and its log-determinant:
 *
 *   H = sum_l G_l' diag(c_l) G_l + sum_l sum_k 2 u_{l,k} A_{l,k}' A_{l,k} + alpha I
 *   G_1 = grad Q_1,  G_l = W_l J_{l-1} + grad Q_l,  J_l = diag(sigma'(s_l)) G_l
 *
 * with G_l = ds_l / dx, u_l = sigma'(s_l) delta_l and c_l = sigma''(s_l)
 * delta_l from the forward pass (u_1 = delta_1, c_1 = 0: no activation on
 * layer 1) and A_{l,k} the r x D rank factor of unit k, so that
 * grad Q_{l,k}(x) = 2 A_{l,k}' A_{l,k} x + b_{l,k} (by the projections
 * A_{l,k} x, or with ws->mform by M_{l,k} = A_{l,k}' A_{l,k}). */
#define USE_FC_LEN_T
#include <R.h>
#include <R_ext/BLAS.h>
#ifndef FCONE
# define FCONE
#endif
#include <math.h>
#include <string.h>
#include "jko.h"
#include "icnn.h"
#include "linalg.h"

#if JKO_GROUP != 4
# error "hessian_part's grouped loop is written for groups of 4 samples"
#endif

/* The Hessians of samples [i0, i0 + n); tmp is this thread's scratch. */
JKO_CLONES static int hessian_part(const icnn_t *net, const double *th, const double *X0,
                        int i0, int n, icnn_ws *ws, double *logdet, double *tmp)
{
    const int D = net->D, r = net->r, L = net->L, D2 = D * D, Dp = ws->Dp;
    const double one = 1.0;
    const double alpha = icnn_alpha(net, th);
    if (n < 1) return JKO_OK;

    /* Jacobian recursion: G_l = grad Q_l (+ W_l J_{l-1}), J_l = sigma'(s_l) G_l */
    for (int l = 0; l < L; l++) {
        if (!ws->G[l]) continue;
        int w = net->w[l], wr = w * r, wD = w * D;
        const double *A = ws->Ap[l], *B = th + net->offB[l];
        const double *P = ws->P[l] + (size_t) wr * i0;
        double *G = ws->G[l] + (size_t) wD * i0;
        if (ws->mform) {
            /* grad Q_k = 2 M_k x + b_k: the sum over e in registers */
            const double *Mf = ws->Mf[l], *X = X0 + (size_t) D * i0;
            for (int i = 0; i < n; i++) {
                const double *xi = X + (size_t) D * i;
                double *Gi = G + (size_t) wD * i;
                for (int d = 0; d < D; d++) {
                    const double *Md = Mf + (size_t) w * D * d, *Bd = B + (size_t) w * d;
                    double *Gd = Gi + (size_t) w * d;
#define HESS_GM(VT, LD, ST) {                                                   \
                        JKO_COLS(VT, LD, g, Md + k, w, xi, D);                  \
                        ST(Gd + k, LD(Bd + k) + 2.0 * g);                       \
                    }
                    JKO_CHUNKS(k, w, HESS_GM);
#undef HESS_GM
                }
            }
        } else for (int ib = 0; ib < n; ib += JKO_GROUP) {
            /* samples in groups of JKO_GROUP: each entry of A loaded once a
             * group, and the group's sums over j independent chains (one
             * sample's chain of r FMAs a unit left the core waiting on
             * each FMA's latency) */
            const int g = n - ib < JKO_GROUP ? n - ib : JKO_GROUP;
            const double *Pg = P + (size_t) wr * ib;
            double *Gg = G + (size_t) wD * ib;
            for (int d = 0; d < D; d++) {
                const double *Ad = A + (size_t) wr * d, *Bd = B + (size_t) w * d;
                double *Gd = Gg + (size_t) w * d;
#define HESS_G(VT, LD, ST) {                                                    \
                    const VT a0 = LD(Ad + k), bd = LD(Bd + k);                  \
                    const double *P0 = Pg, *P1 = Pg + (size_t) wr,              \
                                 *P2 = Pg + (size_t) wr * 2, *P3 = Pg + (size_t) wr * 3; \
                    VT g0 = LD(P0 + k) * a0;                                    \
                    VT g1 = g0, g2 = g0, g3 = g0;                               \
                    if (G_ > 1) g1 = LD(P1 + k) * a0;                           \
                    if (G_ > 2) g2 = LD(P2 + k) * a0;                           \
                    if (G_ > 3) g3 = LD(P3 + k) * a0;                           \
                    for (int j = 1; j < r; j++) {                               \
                        const size_t o = (size_t) w * j + k;                    \
                        const VT a = LD(Ad + o);                                \
                        g0 += LD(P0 + o) * a;                                   \
                        if (G_ > 1) g1 += LD(P1 + o) * a;                       \
                        if (G_ > 2) g2 += LD(P2 + o) * a;                       \
                        if (G_ > 3) g3 += LD(P3 + o) * a;                       \
                    }                                                           \
                    ST(Gd + k, bd + 2.0 * g0);                                  \
                    if (G_ > 1) ST(Gd + wD + k, bd + 2.0 * g1);                 \
                    if (G_ > 2) ST(Gd + (size_t) wD * 2 + k, bd + 2.0 * g2);    \
                    if (G_ > 3) ST(Gd + (size_t) wD * 3 + k, bd + 2.0 * g3);    \
                }
                JKO_GROUPED(g, JKO_CHUNKS(k, w, HESS_G););
#undef HESS_G
            }
        }
        if (l > 0) {
            int wp = net->w[l - 1], Dn = D * n;
            icnn_gemm_nn(w, Dn, wp, 1.0, th + net->offW[l], w,
                         ws->J[l - 1] + (size_t) wp * D * i0, wp, 1.0, G, w);
            if (ws->J[l]) {
                double *Jl = ws->J[l] + (size_t) wD * i0;
                const double *F1 = ws->F1[l] + (size_t) w * i0;
                for (int i = 0; i < n; i++)
                    for (int d = 0; d < D; d++) {
                        const double *f = F1 + (size_t) w * i;
                        const double *Gd = G + (size_t) wD * i + (size_t) w * d;
                        double *Jd = Jl + (size_t) wD * i + (size_t) w * d;
                        JKO_SIMD
                        for (int k = 0; k < w; k++) Jd[k] = f[k] * Gd[k];
                    }
            }
        }
    }

    /* rank terms for the whole part at once: Hp = sum_l Mp_l (2 u_l)
     * (with mform the forward pass has made them) */
    if (!ws->mform) icnn_rank_terms(net, ws, i0, n);
    const double *Hp = ws->Hp + (size_t) Dp * i0;

    /* per sample: H = alpha I + unpack(Hp) + sum_{l >= 2} G_l' diag(c_l) G_l
     * (c_1 = 0: layer 1 has no activation), then its Cholesky factor */
    int status = JKO_OK;
    for (int i = 0; i < n; i++) {
        size_t ii = (size_t) i0 + i;
        /* built in place of its factor, lower triangle only: the
         * factorisation and everything after it read no other entry */
        double *Li = ws->Lc + (size_t) D2 * ii;
        const double *Hpi = Hp + (size_t) Dp * i;
        for (int e = 0, q = 0; e < D; q += D - e, e++) {
            memset(Li + (size_t) D * e, 0, (size_t) e * sizeof(double));
            memcpy(Li + (size_t) D * e + e, Hpi + q, (size_t) (D - e) * sizeof(double));
        }
        for (int d = 0; d < D; d++) Li[d * (D + 1)] += alpha;
        for (int l = 1; l < L; l++) {
            int w = net->w[l];
            const double *Gi = ws->G[l] + (size_t) w * D * ii;
            const double *ci = ws->C[l] + (size_t) w * ii;
            if (D >= JKO_SMALL_D) {
                for (int a = 0; a < D; a++) {
                    const double *Ga = Gi + (size_t) w * a;
                    double *cg = tmp + (size_t) w * a;
                    JKO_SIMD
                    for (int k = 0; k < w; k++) cg[k] = ci[k] * Ga[k];
                }
                F77_CALL(dgemm)("T", "N", &D, &D, &w, &one, tmp, &w, Gi, &w,
                                &one, Li, &D FCONE FCONE);
            } else {
                for (int a = 0; a < D; a++) {
                    const double *Ga = Gi + (size_t) w * a;
                    JKO_SIMD
                    for (int k = 0; k < w; k++) tmp[k] = ci[k] * Ga[k];
                    for (int b = 0; b <= a; b++)
                        Li[a + D * b] += jko_dot(tmp, Gi + (size_t) w * b, w);
                }
            }
        }
        if (ws->H) {   /* the whole Hessian, where a caller asked for it */
            double *Hi = ws->H + (size_t) D2 * ii;
            for (int e = 0; e < D; e++)
                for (int d = e; d < D; d++)
                    Hi[d + D * e] = Hi[e + D * d] = Li[d + D * e];
        }
        double ld;
        int st = chol_logdet(Li, D, &ld);
        if (st != JKO_OK) { status = st; ld = NAN; }
        else if (ws->hess > 1)
            /* H^{-1} for the backward sweep (icnn_backward), while the
             * factor is in cache */
            chol_inverse(Li, D, ws->Hbar + (size_t) D2 * ii, tmp);
        if (logdet) logdet[ii] = ld;
    }
    return status;
}

/* Needs icnn_prepare on th and icnn_forward on the same X first (the rank
 * matrices ws->Mp come from icnn_prepare). Fills ws->G, ws->J, ws->Hp and
 * the Cholesky factors ws->Lc (lower triangles; the whole Hessians into
 * ws->H where the caller set it) and, with a workspace for the backward
 * sweep, H^{-1} into ws->Hbar; logdet (length n) may be NULL.
 * One contiguous part of the batch per thread, BLAS single-threaded
 * inside. */
int icnn_hessian(const icnn_t *net, const double *th, const double *X, int n,
                 icnn_ws *ws, double *logdet)
{
    const int nt = jko_blas_room(jko_nthreads(ws->nth, n));
    if (n < 1) return JKO_OK;
    int old = jko_blas_set_threads(1), status = JKO_OK;
#ifdef _OPENMP
#pragma omp parallel num_threads(nt) reduction(max:status)
#endif
    {
        int t = jko_thread_num(), i0, i1;
        jko_chunk(n, t, nt, &i0, &i1);
        double *tmp = ws->tmp + (size_t) t * jko_tmp_len(net);
        const int nb = icnn_block(net);
        for (int b = i0, m; b < i1; b += m) {
            m = icnn_block_len(b, i1, nb);
            int st = hessian_part(net, th, X, b, m, ws, logdet, tmp);
            if (st > status) status = st;
        }
    }
    if (old > 1) jko_blas_set_threads(old);
    return status;
}
