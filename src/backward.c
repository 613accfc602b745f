/* Reverse mode through the network: given per-sample cotangents ybar on the
 * map y = grad psi(x) and lambda on log det H, the gradient with respect to
 * every parameter. With the Hessian of hessian.c,
 *   H = sum_l G_l' diag(c_l) G_l + sum_{l,k} 2 u_{l,k} A_{l,k}'A_{l,k} + alpha I,
 * and Hbar = lambda H^{-1} (the adjoint of lambda log det H):
 *
 *   Gbar_l = 2 diag(c_l) G_l Hbar     cbar_{l,k} = g_{l,k}' Hbar g_{l,k}
 *   ubar_{l,k} += 2 tr(Hbar A_{l,k}'A_{l,k})   Abar_{l,k} += 4 u_{l,k} A_{l,k} Hbar
 *   alphabar += tr(Hbar) + x' ybar
 *
 * then one reverse sweep through the Jacobian recursion, the delta recursion
 * and the primal. Needs icnn_prepare on th, then icnn_forward and
 * icnn_hessian on the same X first (icnn_hessian may be skipped when lambda
 * is NULL). */
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
#include "numerics.h"

#if JKO_GROUP != 4
# error "grad_q_reverse's grouped loops are written for groups of 4 samples"
#endif

/* A group's outer product into a row of a parameter's adjoint, by
 * JKO_GROUPED and JKO_CHUNKS (icnn.h): gdst_k += sum_q gv_{q k} gc_q, the
 * group's w-vectors gv w apart and its numbers gc D apart (a coordinate of
 * consecutive samples). */
#define GROUP_OUTER_S(VT, LD, ST, gvs, gcs) {                                  \
        VT t = LD(gv + k) * gc[0];                                              \
        for (int q = 1; q < G_; q++) t += LD(gv + (size_t) (gvs) * q + k) * gc[(size_t) (gcs) * q]; \
        ST(gdst + k, LD(gdst + k) + t);                                         \
    }
#define GROUP_OUTER(VT, LD, ST) GROUP_OUTER_S(VT, LD, ST, w, D)

/* Bbar += a group's (g samples) sums of Ebar (w x D a sample, Eg the
 * group's first), in registers: each entry of Bbar loaded and stored once
 * a group. */
JKO_CLONES static void group_bbar(double *Bb, const double *Eg, int g, int w, int D)
{
    const size_t wD = (size_t) w * D;
    for (int d = 0; d < D; d++) {
        double *Bbd = Bb + (size_t) w * d;
        const double *Ed = Eg + (size_t) w * d;
#define GROUP_SUM(VT, LD, ST) {                                                 \
            VT t = LD(Ed + k);                                                  \
            for (int q = 1; q < G_; q++) t += LD(Ed + wD * q + k);              \
            ST(Bbd + k, LD(Bbd + k) + t);                                       \
        }
        JKO_GROUPED(g, JKO_CHUNKS(k, w, GROUP_SUM););
#undef GROUP_SUM
    }
}

/* Gbar = grad Q_l's adjoint Ebar (w x D x n, samples of this part) into
 * Bbar, Pbar and Abar (Abar in the row order j w + k of ws->Ap):
 *   E_{k,d} = 2 sum_j p_kj a_kjd + b_kd. */
JKO_CLONES static void grad_q_reverse(const icnn_t *net, int l, const double *th,
                           const double *Eb, int i0, int n, icnn_ws *ws,
                           double *grad, const double *X, double *tmp)
{
    const int D = net->D, r = net->r, w = net->w[l], wr = w * r;
    const double *A = ws->Ap[l], *P = ws->P[l] + (size_t) wr * i0;
    double *Ab = grad + net->offA[l], *Bb = grad + net->offB[l],
           *Pb = ws->Pb[l] + (size_t) wr * i0;
    (void) th;
    /* Samples go in groups of JKO_GROUP, whose terms are summed in
     * registers before each entry of Abar and Bbar is loaded and stored
     * once a group, not once a sample; a sample's pbar_j = sum_d 2 E_d a_jd
     * sums over d in registers. Below D = 8 pbar is not stored: its share
     * pbar_j x' of Abar is added here (X: this part's samples; tmp:
     * JKO_GROUP w doubles). From D = 8 it is added to Pbar, whose share
     * Pbar x' of Abar is one BLAS call later. (There the loop over d
     * outermost, one sample at a time, loading and storing each entry of
     * Pbar D times, was 13% of a training iteration at D = 32, width 64, on
     * an AVX-512 Xeon.) */
    const int small = D < JKO_SMALL_D;
    const size_t wD = (size_t) w * D;
    for (int ib = 0; ib < n; ib += JKO_GROUP) {
        const int g = n - ib < JKO_GROUP ? n - ib : JKO_GROUP;
        const double *Eg = Eb + wD * ib, *xg = X + (size_t) D * ib,
                     *Pg = P + (size_t) wr * ib;
        group_bbar(Bb, Eg, g, w, D);
        for (int j = 0; j < r; j++) {
            const double *Aj = A + (size_t) w * j, *Pj = Pg + (size_t) w * j;
            /* the group's pbar_j: one chain of D FMAs a sample, the
             * group's four chains side by side in registers (one at a
             * time, each waited on its FMAs' latency: at D = 32 most of
             * this function's time) */
#define PBAR_GROUP(VT, LD, ST, DST, ACC) {                                      \
                const VT a0 = LD(Aj + k);                                       \
                VT t0 = LD(Eg + k) * a0, t1 = t0, t2 = t0, t3 = t0;             \
                if (G_ > 1) t1 = LD(Eg + wD + k) * a0;                          \
                if (G_ > 2) t2 = LD(Eg + wD * 2 + k) * a0;                      \
                if (G_ > 3) t3 = LD(Eg + wD * 3 + k) * a0;                      \
                for (int d = 1; d < D; d++) {                                   \
                    const size_t o = (size_t) w * d + k;                        \
                    const VT a = LD(Aj + (size_t) wr * d + k);                  \
                    t0 += LD(Eg + o) * a;                                       \
                    if (G_ > 1) t1 += LD(Eg + wD + o) * a;                      \
                    if (G_ > 2) t2 += LD(Eg + wD * 2 + o) * a;                  \
                    if (G_ > 3) t3 += LD(Eg + wD * 3 + o) * a;                  \
                }                                                               \
                ST(DST(0) + k, ACC(LD, DST(0), t0));                            \
                if (G_ > 1) ST(DST(1) + k, ACC(LD, DST(1), t1));                \
                if (G_ > 2) ST(DST(2) + k, ACC(LD, DST(2), t2));                \
                if (G_ > 3) ST(DST(3) + k, ACC(LD, DST(3), t3));                \
            }
/* pbar's destination for sample q of the group, and its store: below D = 8
 * into tmp, from D = 8 added to Pbar */
#define PB_TMP(q) (tmp + (size_t) w * (q))
#define PB_PB(q) (Pb + (size_t) wr * (ib + (q)) + (size_t) w * j)
#define PB_SET(LD, p, t) (2.0 * (t))
#define PB_ADD(LD, p, t) (LD((p) + k) + 2.0 * (t))
#define GQ_P(VT, LD, ST) PBAR_GROUP(VT, LD, ST, PB_TMP, PB_SET)
#define GQ_PB(VT, LD, ST) PBAR_GROUP(VT, LD, ST, PB_PB, PB_ADD)
            if (small) JKO_GROUPED(g, JKO_CHUNKS(k, w, GQ_P););
            else JKO_GROUPED(g, JKO_CHUNKS(k, w, GQ_PB););
#undef GQ_PB
#undef GQ_P
#undef PB_ADD
#undef PB_SET
#undef PB_PB
#undef PB_TMP
#undef PBAR_GROUP
            if (!small) continue;
            const double *pb = tmp;
            for (int d = 0; d < D; d++) {
                double *Abjd = Ab + (size_t) wr * d + (size_t) w * j;
                const double *Ed = Eg + (size_t) w * d, *xd = xg + d;
#define GQ_A(VT, LD, ST) {                                                      \
                    VT t = 2.0 * LD(Ed + k) * LD(Pj + k) + LD(pb + k) * xd[0];  \
                    for (int q = 1; q < G_; q++)                                \
                        t += 2.0 * LD(Ed + wD * q + k) * LD(Pj + (size_t) wr * q + k) + \
                             LD(pb + (size_t) w * q + k) * xd[(size_t) D * q];  \
                    ST(Abjd + k, LD(Abjd + k) + t);                             \
                }
                JKO_GROUPED(g, JKO_CHUNKS(k, w, GQ_A););
#undef GQ_A
            }
        }
        if (small) continue;
        /* Abar_j += 2 sum_q Ebar_q p_qj: the group's Ebar entries loaded
         * once for all j */
        for (int d = 0; d < D; d++) {
            const double *Ed = Eg + (size_t) w * d;
            double *Abd = Ab + (size_t) wr * d;
#define GQ_AD(VT, LD, ST) {                                                     \
                VT e0 = LD(Ed + k), e1 = e0, e2 = e0, e3 = e0;                  \
                if (G_ > 1) e1 = LD(Ed + wD + k);                               \
                if (G_ > 2) e2 = LD(Ed + 2 * wD + k);                           \
                if (G_ > 3) e3 = LD(Ed + 3 * wD + k);                           \
                for (int j = 0; j < r; j++) {                                   \
                    const double *Pj = Pg + (size_t) w * j;                     \
                    double *Abjd = Abd + (size_t) w * j;                        \
                    VT t = e0 * LD(Pj + k);                                     \
                    if (G_ > 1) t += e1 * LD(Pj + (size_t) wr + k);             \
                    if (G_ > 2) t += e2 * LD(Pj + (size_t) wr * 2 + k);         \
                    if (G_ > 3) t += e3 * LD(Pj + (size_t) wr * 3 + k);         \
                    ST(Abjd + k, LD(Abjd + k) + 2.0 * t);                       \
                }                                                               \
            }
            JKO_GROUPED(g, JKO_CHUNKS(k, w, GQ_AD););
#undef GQ_AD
        }
    }
}

/* With ws->mform: Gbar = grad Q_l's adjoint Ebar (w x D x n) into Bbar and
 * Mbar (Mb, w x Dp): grad Q_k = 2 M_k x + b_k, so Bbar_k += Ebar_k and the
 * packed Mbar_k += 2 (Y_k + Y_k') for Y_k = sum_i Ebar_ik x_i' (Y: w D^2
 * doubles of scratch, the groups' outer products summed in registers). */
JKO_CLONES static void grad_q_reverse_m(const icnn_t *net, int l, const double *Eb,
                                        int n, double *Mb, double *grad,
                                        const double *X, double *Y)
{
    const int D = net->D, w = net->w[l];
    const size_t wD = (size_t) w * D;
    double *Bb = grad + net->offB[l];
    memset(Y, 0, wD * D * sizeof(double));
    for (int ib = 0; ib < n; ib += JKO_GROUP) {
        const int g = n - ib < JKO_GROUP ? n - ib : JKO_GROUP;
        const double *Eg = Eb + wD * ib, *xg = X + (size_t) D * ib;
        group_bbar(Bb, Eg, g, w, D);
        for (int d = 0; d < D; d++)
            for (int e = 0; e < D; e++) {
                double *gdst = Y + (size_t) w * (d * D + e);
                const double *gv = Eg + (size_t) w * d, *gc = xg + e;
#define GQ_M(VT, LD, ST) GROUP_OUTER_S(VT, LD, ST, wD, D)
                JKO_GROUPED(g, JKO_CHUNKS(k, w, GQ_M););
#undef GQ_M
            }
    }
    for (int e = 0, q = 0; e < D; e++)
        for (int d = e; d < D; d++, q++) {
            double *Mq = Mb + (size_t) w * q;
            const double *Yde = Y + (size_t) w * (d * D + e), *Yed = Y + (size_t) w * (e * D + d);
            if (d == e) {
                JKO_SIMD
                for (int k = 0; k < w; k++) Mq[k] += 2.0 * Yde[k];
            } else {
                JKO_SIMD
                for (int k = 0; k < w; k++) Mq[k] += 2.0 * (Yde[k] + Yed[k]);
            }
        }
}

/* Abar_k += 2 A_k S_k for the units k of layer l, S_k the symmetric matrix
 * whose packed lower entries (off-diagonals doubled, the adjoint of Mp's)
 * are M[q qs + k ks]; A_k is r x D (rows k r .. k r + r - 1 of theta's A),
 * Abar in the order j w + k. tmp: D^2 + r D doubles. */
static void rank_abar(const icnn_t *net, int l, const double *th, const double *M,
                      size_t qs, size_t ks, double *grad, double *tmp)
{
    const int D = net->D, r = net->r, w = net->w[l], wr = w * r;
    const double two = 2.0, zero = 0.0;
    const double *A = th + net->offA[l];
    double *Ab = grad + net->offA[l];
    for (int k = 0; k < w; k++) {
        const double *sk = M + ks * k;
        double *Sk = tmp, *AS = tmp + (size_t) D * D;
        for (int e = 0, q = 0; e < D; e++)
            for (int d = e; d < D; d++, q++) {
                double v = d == e ? sk[qs * q] : 0.5 * sk[qs * q];
                Sk[d + D * e] = v;
                Sk[e + D * d] = v;
            }
        if (D >= JKO_SMALL_D) {
            F77_CALL(dgemm)("N", "N", &r, &D, &D, &two, A + k * r, &wr,
                            Sk, &D, &zero, AS, &r FCONE FCONE);
        } else {
            for (int d = 0; d < D; d++)
                for (int j = 0; j < r; j++) {
                    double s = 0;
                    for (int e = 0; e < D; e++)
                        s += Sk[e + D * d] * A[k * r + j + (size_t) wr * e];
                    AS[j + r * d] = 2.0 * s;
                }
        }
        for (int d = 0; d < D; d++)
            for (int j = 0; j < r; j++)
                Ab[j * w + k + (size_t) wr * d] += AS[j + r * d];
    }
}

/* The reverse sweep on samples [i0, i0 + n): parameter adjoints are summed
 * into grad (this thread's own copy, zero on entry), the alpha adjoint into
 * *abar. Sp (Dp x wmax; with ws->mform w_l x Dp for each layer l) and tmp
 * (jko_tmp_len doubles) are this thread's scratch.
 * Shared scratch sized for the widest layer (PU, GB, JB, Zb, Db) is placed
 * by wmax, so the parts never overlap whatever layer each thread is at. */
JKO_CLONES static void backward_part(const icnn_t *net, const double *th, const double *X0,
                          int i0, int n, icnn_ws *ws, const double *Ybar0,
                          const double *lambda, double *grad, double *Sp,
                          double *tmp, double *abar_out)
{
    const int D = net->D, r = net->r, L = net->L, wm = net->wmax;
    const int D2 = D * D, Dn = D * n, Dp = ws->Dp;
    const double one = 1.0, zero = 0.0, two = 2.0;
    const int hess = lambda != NULL, mform = ws->mform;
    const double *X = X0 + (size_t) D * i0, *Ybar = Ybar0 + (size_t) D * i0;
    double abar = 0;
    *abar_out = 0;
    if (n < 1) return;
    /* with mform, each layer's Mbar (w x Dp) in Sp */
    double *Mbl[ICNN_MAX_LAYERS];
    for (int l = 0, o = 0; l < L; o += net->w[l], l++) Mbl[l] = Sp + (size_t) Dp * o;

    /* Hbar = lambda H^{-1} (ws->Hbar holds H^{-1}, left by icnn_hessian;
     * lambda is applied where it is read), packed with doubled
     * off-diagonals so that tr(Hbar M) = HbP' Mp */
    double *HbP = hess || mform ? ws->HbP + (size_t) Dp * i0 : NULL;
    if (hess) {
        for (int i = 0; i < n; i++) {
            size_t ii = (size_t) i0 + i;
            const double *Hi = ws->Hbar + (size_t) D2 * ii;
            double *hp = HbP + (size_t) Dp * i;
            const double li = lambda[ii], l2 = 2.0 * li;
            for (int e = 0, q = 0; e < D; e++) {
                const double *He = Hi + (size_t) D * e;
                abar += li * He[e];
                hp[q++] = li * He[e];
                for (int d = e + 1; d < D; d++, q++) hp[q] = l2 * He[d];
            }
        }
    }
    for (size_t m = 0; m < (size_t) Dn; m++) abar += X[m] * Ybar[m];
    *abar_out = abar;
    if (mform) {
        /* the map's rank part 2 u_k M_k x has ybar' 2 u_k M_k x = 2 u_k
         * tr(M_k x ybar'): it joins Hbar's, HbP += x ybar' packed (the
         * off-diagonals summed over both triangles) */
        for (int i = 0; i < n; i++) {
            const double *xi = X + (size_t) D * i, *yi = Ybar + (size_t) D * i;
            double *hp = HbP + (size_t) Dp * i;
            for (int e = 0, q = 0; e < D; e++)
                for (int d = e; d < D; d++, q++) {
                    double v = d == e ? xi[d] * yi[d] : xi[d] * yi[e] + xi[e] * yi[d];
                    hp[q] = hess ? hp[q] + v : v;
                }
        }
    }

    /* (a) rank terms of the Hessian and (b) the map's direct dependence on
     * p and u: y = sum_l A_l' (2 p_l u_l) + B_l' u_l + alpha x */
    for (int l = 0; l < L; l++) {
        int w = net->w[l], wr = w * r;
        const double *P = ws->P[l] + (size_t) wr * i0, *U = ws->U[l] + (size_t) w * i0;
        double *Ub = ws->Ub[l] + (size_t) w * i0, *Pb = ws->Pb[l] + (size_t) wr * i0,
               *PU = ws->PU + (size_t) wm * r * i0;
        double *Ab = grad + net->offA[l];
        if (HbP) {
            /* ubar_k = 2 tr(Hbar M_k) (+ 2 ybar'M_k x with mform); the
             * adjoint of M_k, sum_i 2 u_ik HbP_i: with mform kept in Mbar
             * (w x Dp) for the terms to come, else (Dp x w) into Abar now */
            F77_CALL(dgemm)("T", "N", &w, &n, &Dp, &two, ws->Mp[l], &Dp, HbP,
                            &Dp, &zero, Ub, &w FCONE FCONE);
            if (mform) {
                F77_CALL(dgemm)("N", "T", &w, &Dp, &n, &two, U, &w, HbP, &Dp,
                                &zero, Mbl[l], &w FCONE FCONE);
            } else {
                F77_CALL(dgemm)("N", "T", &Dp, &w, &n, &two, HbP, &Dp, U, &w,
                                &zero, Sp, &Dp FCONE FCONE);
                rank_abar(net, l, th, Sp, 1, (size_t) Dp, grad, tmp);
            }
        } else {
            memset(Ub, 0, (size_t) w * n * sizeof(double));
        }
        if (D < JKO_SMALL_D) {
            /* the products below with an inner or outer dimension of D, by
             * hand: each sample's columns once, Abar and Bbar in cache.
             * Samples go in groups of JKO_GROUP: their terms are summed in
             * registers before each entry of Abar and Bbar is loaded and
             * stored, once a group (tmp: JKO_GROUP w doubles) */
            const double *Ap = ws->Ap[l], *B = th + net->offB[l];
            double *Bb = grad + net->offB[l], *Q = tmp;
            /* (with mform the rank terms went by Mbar above) */
            const int rj = mform ? 0 : r;
            for (int ib = 0; ib < n; ib += JKO_GROUP) {
                const int g = n - ib < JKO_GROUP ? n - ib : JKO_GROUP;
                const double *Ug = U + (size_t) w * ib, *Pg = P + (size_t) wr * ib,
                             *yg = Ybar + (size_t) D * ib, *xg = X + (size_t) D * ib;
                double *Ubg = Ub + (size_t) w * ib;
                for (int j = 0; j < rj; j++) {
                    const double *Aj = Ap + (size_t) w * j, *Pj = Pg + (size_t) w * j;
                    double *Abj = Ab + (size_t) w * j;
                    /* Q_q = A_j ybar_q; ubar_q += 2 p_qj (A_j ybar_q) */
                    for (int q = 0; q < g; q++) {
                        const double *yq = yg + (size_t) D * q, *Pq = Pj + (size_t) wr * q;
                        double *Qq = Q + (size_t) w * q, *Ubq = Ubg + (size_t) w * q;
#define BW_Q(VT, LD, ST) {                                                      \
                        JKO_COLS(VT, LD, t, Aj + k, wr, yq, D);                 \
                        ST(Qq + k, t);                                          \
                        ST(Ubq + k, LD(Ubq + k) + 2.0 * LD(Pq + k) * t);        \
                    }
                        JKO_CHUNKS(k, w, BW_Q);
#undef BW_Q
                    }
                    /* Abar += (2 p u) ybar' and, for pbar = 2 u (A ybar),
                     * pbar x' (pbar is not stored) */
                    for (int d = 0; d < D; d++) {
                        double *Abjd = Abj + (size_t) wr * d;
                        const double *yd = yg + d, *xd = xg + d;
#define BW_A(VT, LD, ST) {                                                      \
                        VT t = LD(Ug + k) * (LD(Pj + k) * yd[0] + LD(Q + k) * xd[0]); \
                        for (int q = 1; q < G_; q++)                             \
                            t += LD(Ug + (size_t) w * q + k) *                  \
                                 (LD(Pj + (size_t) wr * q + k) * yd[(size_t) D * q] + \
                                  LD(Q + (size_t) w * q + k) * xd[(size_t) D * q]); \
                        ST(Abjd + k, LD(Abjd + k) + 2.0 * t);                   \
                    }
                        JKO_GROUPED(g, JKO_CHUNKS(k, w, BW_A););
#undef BW_A
                    }
                }
                /* ubar += B ybar, Bbar += u ybar' */
                for (int q = 0; q < g; q++) {
                    const double *yq = yg + (size_t) D * q;
                    double *Ubq = Ubg + (size_t) w * q;
#define BW_UB(VT, LD, ST) {                                                     \
                    JKO_COLS(VT, LD, t, B + k, w, yq, D);                       \
                    ST(Ubq + k, LD(Ubq + k) + t);                               \
                }
                    JKO_CHUNKS(k, w, BW_UB);
#undef BW_UB
                }
                for (int d = 0; d < D; d++) {
                    double *gdst = Bb + (size_t) w * d;
                    const double *gv = Ug, *gc = yg + d;
                    JKO_GROUPED(g, JKO_CHUNKS(k, w, GROUP_OUTER););
                }
            }
        } else {
            /* Abar += (2 p u) ybar' */
            icnn_rank_times_u(P, U, n, w, r, PU);
            F77_CALL(dgemm)("N", "T", &wr, &D, &n, &two, PU, &wr, Ybar, &D, &one,
                            Ab, &wr FCONE FCONE);
            /* PU = A ybar; ubar += 2 p . (A ybar), pbar = 2 u (A ybar) */
            F77_CALL(dgemm)("N", "N", &wr, &n, &D, &one, ws->Ap[l], &wr, Ybar, &D,
                            &zero, PU, &wr FCONE FCONE);
            for (int i = 0; i < n; i++) {
                const double *Ui = U + (size_t) w * i;
                double *Ubi = Ub + (size_t) w * i;
                for (int j = 0; j < r; j++) {
                    size_t o = (size_t) wr * i + (size_t) w * j;
                    JKO_SIMD
                    for (int k = 0; k < w; k++) {
                        Ubi[k] += 2.0 * P[o + k] * PU[o + k];
                        Pb[o + k] = 2.0 * Ui[k] * PU[o + k];
                    }
                }
            }
            F77_CALL(dgemm)("N", "N", &w, &n, &D, &one, th + net->offB[l], &w, Ybar,
                            &D, &one, Ub, &w FCONE FCONE);
            F77_CALL(dgemm)("N", "T", &w, &D, &n, &one, U, &w, Ybar, &D, &one,
                            grad + net->offB[l], &w FCONE FCONE);
        }
        memset(ws->Sb[l] + (size_t) w * i0, 0, (size_t) w * n * sizeof(double));
        memset(ws->Cb[l] + (size_t) w * i0, 0, (size_t) w * n * sizeof(double));
    }

    /* (c) the Jacobian recursion in reverse, top layer down. Gb holds
     * Jbar_l on entry (zero at the top, where it is not read) and Gbar_l
     * after the update. */
    if (hess && L > 1) {
        size_t po = (size_t) wm * D * i0;
        double *Gb = ws->GB + po, *Jb = ws->JB + po;
        for (int l = L - 1; l >= 0; l--) {
            int w = net->w[l], wD = w * D;
            if (l > 0) {
                const double *G = ws->G[l] + (size_t) wD * i0,
                             *Cc = ws->C[l] + (size_t) w * i0,
                             *F1 = ws->F1[l] + (size_t) w * i0,
                             *F2 = ws->F2[l] + (size_t) w * i0;
                double *Cb = ws->Cb[l] + (size_t) w * i0,
                       *Sb = ws->Sb[l] + (size_t) w * i0;
                int top = (l == L - 1);
                double *T = tmp;
                for (int i = 0; i < n; i++) {
                    const double *Gi = G + (size_t) wD * i;
                    const double *Hb = ws->Hbar + (size_t) D2 * (i0 + i);
                    const double li = lambda[i0 + i];
                    double *gb = Gb + (size_t) wD * i;
                    /* T = G_i Hbar_i = lambda_i G_i H_i^{-1} */
                    if (D >= JKO_SMALL_D) {
                        F77_CALL(dgemm)("N", "N", &w, &D, &D, &li, Gi, &w, Hb, &D,
                                        &zero, T, &w FCONE FCONE);
                    } else {
                        for (int e = 0; e < D; e++) {
                            const double *He = Hb + (size_t) D * e;
                            double *Te = T + (size_t) w * e;
#define C_T(VT, LD, ST) {                                                       \
                            JKO_COLS(VT, LD, t, Gi + k, w, He, D);              \
                            ST(Te + k, li * t);                                 \
                        }
                            JKO_CHUNKS(k, w, C_T);
#undef C_T
                        }
                    }
                    const double *f1 = F1 + (size_t) w * i, *f2 = F2 + (size_t) w * i,
                                 *ci = Cc + (size_t) w * i;
                    double *cbi = Cb + (size_t) w * i, *sbi = Sb + (size_t) w * i;
                    /* at the top Gbar_l = 2 c_l T (Jbar_l = 0); below it,
                     * gb holds Jbar_l: Gbar_l = sigma'(s_l) Jbar_l + 2 c_l T,
                     * and jg_k = sum_d Jbar_{l,kd} G_{l,kd} feeds sbar
                     * through sigma''(s_l). The sums over d go in memory,
                     * cbar in Cb (zero here) and jg in scratch after T, d
                     * outermost: the rows of T, G_i and gb are read in
                     * order, and the units' sums are independent (in
                     * registers, d innermost, each unit's chain of D FMAs
                     * waited on their latency, and G_i's rows came 512
                     * bytes apart at width 64) */
                    double *jg = T + (size_t) w * D;
                    if (!top) memset(jg, 0, (size_t) w * sizeof(double));
                    for (int d = 0; d < D; d++) {
                        const double *Td = T + (size_t) w * d, *Gd = Gi + (size_t) w * d;
                        double *gd = gb + (size_t) w * d;
                        if (top) {
#define C_TOP(VT, LD, ST) {                                                     \
                            const VT td = LD(Td + k), c2 = 2.0 * LD(ci + k);    \
                            ST(cbi + k, LD(cbi + k) + td * LD(Gd + k));         \
                            ST(gd + k, c2 * td);                                \
                        }
                            JKO_CHUNKS(k, w, C_TOP);
#undef C_TOP
                        } else {
#define C_IN(VT, LD, ST) {                                                      \
                            const VT td = LD(Td + k), g_ = LD(Gd + k), go = LD(gd + k); \
                            const VT c2 = 2.0 * LD(ci + k);                     \
                            ST(cbi + k, LD(cbi + k) + td * g_);                 \
                            ST(jg + k, LD(jg + k) + go * g_);                   \
                            ST(gd + k, go * LD(f1 + k) + c2 * td);              \
                        }
                            JKO_CHUNKS(k, w, C_IN);
#undef C_IN
                        }
                    }
                    if (!top) {
                        JKO_SIMD
                        for (int k = 0; k < w; k++) sbi[k] += f2[k] * jg[k];
                    }
                }
                int wp = net->w[l - 1];
                icnn_gemm_nt(w, wp, Dn, 1.0, Gb, w, ws->J[l - 1] + (size_t) wp * D * i0,
                             wp, 1.0, grad + net->offW[l], w);
                if (mform) grad_q_reverse_m(net, l, Gb, n, Mbl[l], grad, X, tmp);
                else grad_q_reverse(net, l, th, Gb, i0, n, ws, grad, X, tmp);
                icnn_gemm_nn(wp, Dn, w, 1.0, ws->Wt[l], wp, Gb, w, 0.0, Jb, wp);
                double *t = Gb; Gb = Jb; Jb = t;
            } else {
                /* layer 1 has no activation: Gbar_1 = Jbar_1 */
                if (mform) grad_q_reverse_m(net, 0, Gb, n, Mbl[0], grad, X, tmp);
                else grad_q_reverse(net, 0, th, Gb, i0, n, ws, grad, X, tmp);
            }
        }
    }

    /* (d) the delta recursion in reverse, bottom layer up */
    double *Db = ws->Db + (size_t) wm * i0, *Zb = ws->Zb + (size_t) wm * i0;
    for (int l = 0; l < L; l++) {
        int w = net->w[l];
        size_t o = (size_t) w * i0, m = (size_t) w * n;
        const double *Dd = ws->Dl[l] + o, *Ub = ws->Ub[l] + o, *Cb = ws->Cb[l] + o;
        double *Sb = ws->Sb[l] + o;
        if (l == 0) {
            memcpy(Db, Ub, m * sizeof(double));
            if (L > 1) {   /* delta_1 = W_2' u_2 + v_1 */
                double *sb = grad + net->offs;
                for (int i = 0; i < n; i++)
                    JKO_SIMD
                    for (int k = 0; k < w; k++) sb[k] += Db[(size_t) w * i + k];
            }
        } else {
            const double *F1 = ws->F1[l] + o, *F2 = ws->F2[l] + o, *F3 = ws->F3[l] + o;
            for (size_t q = 0; q < m; q++) {
                Db[q] = F1[q] * Ub[q] + F2[q] * Cb[q];
                Sb[q] += Dd[q] * (F2[q] * Ub[q] + F3[q] * Cb[q]);
            }
        }
        if (l < L - 1) {
            int wn = net->w[l + 1];
            icnn_gemm_nn(wn, n, w, 1.0, th + net->offW[l + 1], wn, Db, w, 1.0,
                         ws->Ub[l + 1] + (size_t) wn * i0, wn);
            icnn_gemm_nt(wn, w, n, 1.0, ws->U[l + 1] + (size_t) wn * i0, wn, Db, w, 1.0,
                         grad + net->offW[l + 1], wn);
        } else {
            double *vb = grad + net->offv;
            for (int i = 0; i < n; i++)
                JKO_SIMD
                for (int k = 0; k < w; k++) vb[k] += Db[(size_t) w * i + k];
        }
    }

    /* (e) the primal in reverse, top layer down (no cotangent on psi) */
    for (int l = L - 1; l >= 0; l--) {
        int w = net->w[l], wr = w * r;
        size_t o = (size_t) w * i0, m = (size_t) w * n;
        double *Sb = ws->Sb[l] + o, *Pb = ws->Pb[l] + (size_t) wr * i0;
        const double *P = ws->P[l] + (size_t) wr * i0;
        if (l < L - 1) {
            if (l == 0) {
                for (size_t q = 0; q < m; q++) Sb[q] += Zb[q];
            } else {
                const double *F1 = ws->F1[l] + o;
                for (size_t q = 0; q < m; q++) Sb[q] += F1[q] * Zb[q];
            }
        }
        if (l > 0) {
            int wp = net->w[l - 1];
            icnn_gemm_nt(w, wp, n, 1.0, Sb, w, ws->Z[l - 1] + (size_t) wp * i0, wp, 1.0,
                         grad + net->offW[l], w);
            icnn_gemm_nn(wp, n, w, 1.0, ws->Wt[l], wp, Sb, w, 0.0, Zb, wp);
        }
        double *cb = grad + net->offc[l];
        if (D < JKO_SMALL_D) {
            /* with Bbar += sbar x' and Abar's share of pbar x' by hand, in
             * groups of samples (JKO_GROUP) */
            double *Bb = grad + net->offB[l], *Ab = grad + net->offA[l];
            for (int ib = 0; ib < n; ib += JKO_GROUP) {
                const int g = n - ib < JKO_GROUP ? n - ib : JKO_GROUP;
                const double *Sg = Sb + (size_t) w * ib, *xg = X + (size_t) D * ib,
                             *Pg = P + (size_t) wr * ib;
#define E_C(VT, LD, ST) {                                                       \
                VT t = LD(Sg + k);                                              \
                for (int q = 1; q < G_; q++) t += LD(Sg + (size_t) w * q + k);  \
                ST(cb + k, LD(cb + k) + t);                                     \
            }
                JKO_GROUPED(g, JKO_CHUNKS(k, w, E_C););
#undef E_C
                for (int d = 0; d < D; d++) {
                    double *gdst = Bb + (size_t) w * d;
                    const double *gv = Sg, *gc = xg + d;
                    JKO_GROUPED(g, JKO_CHUNKS(k, w, GROUP_OUTER););
                }
                if (mform) {
                    /* Mbar_k += sum_i sbar_ik xx_i, xx_i = x_i x_i' packed
                     * with the off-diagonals doubled */
                    double xx[JKO_GROUP * JKO_SMALL_D * (JKO_SMALL_D + 1) / 2];
                    for (int q = 0; q < g; q++) {
                        const double *xq = xg + (size_t) D * q;
                        for (int e = 0, m = 0; e < D; e++)
                            for (int d = e; d < D; d++, m++)
                                xx[Dp * q + m] = (d == e ? 1.0 : 2.0) * xq[d] * xq[e];
                    }
                    for (int m = 0; m < Dp; m++) {
                        double *gdst = Mbl[l] + (size_t) w * m;
                        const double *gv = Sg, *gc = xx + m;
#define E_M(VT, LD, ST) GROUP_OUTER_S(VT, LD, ST, w, Dp)
                        JKO_GROUPED(g, JKO_CHUNKS(k, w, E_M););
#undef E_M
                    }
                    continue;
                }
                for (int j = 0; j < r; j++) {
                    const double *Pj = Pg + (size_t) w * j;
                    for (int d = 0; d < D; d++) {
                        double *Abjd = Ab + (size_t) w * j + (size_t) wr * d;
                        const double *xd = xg + d;
#define E_A(VT, LD, ST) {                                                       \
                        VT t = LD(Pj + k) * LD(Sg + k) * xd[0];                 \
                        for (int q = 1; q < G_; q++)                            \
                            t += LD(Pj + (size_t) wr * q + k) * LD(Sg + (size_t) w * q + k) * \
                                 xd[(size_t) D * q];                            \
                        ST(Abjd + k, LD(Abjd + k) + 2.0 * t);                   \
                    }
                        JKO_GROUPED(g, JKO_CHUNKS(k, w, E_A););
#undef E_A
                    }
                }
            }
            if (mform) rank_abar(net, l, th, Mbl[l], (size_t) w, 1, grad, tmp);
            continue;
        }
        for (int i = 0; i < n; i++) {
            const double *sb = Sb + (size_t) w * i;
            JKO_SIMD
            for (int k = 0; k < w; k++) cb[k] += sb[k];
            for (int j = 0; j < r; j++) {
                size_t o = (size_t) wr * i + (size_t) w * j;
                JKO_SIMD
                for (int k = 0; k < w; k++) Pb[o + k] += 2.0 * P[o + k] * sb[k];
            }
        }
        F77_CALL(dgemm)("N", "T", &w, &D, &n, &one, Sb, &w, X, &D, &one,
                        grad + net->offB[l], &w FCONE FCONE);
        F77_CALL(dgemm)("N", "T", &wr, &D, &n, &one, Pb, &wr, X, &D, &one,
                        grad + net->offA[l], &wr FCONE FCONE);
    }
}

void icnn_backward(const icnn_t *net, const double *th, const double *X, int n,
                   icnn_ws *ws, const double *Ybar, const double *lambda,
                   double *grad)
{
    const int nt = jko_blas_room(jko_nthreads(ws->nth, n)), D = net->D;
    const size_t np = net->npar;
    size_t wsum = 0;   /* ws->Mbar: Dp x wsum a thread */
    for (int l = 0; l < net->L; l++) wsum += net->w[l];
    memset(grad, 0, np * sizeof(double));
    if (n < 1) return;
    int old = jko_blas_set_threads(1);
#ifdef _OPENMP
#pragma omp parallel num_threads(nt)
#endif
    {
        int t = jko_thread_num(), i0, i1;
        jko_chunk(n, t, nt, &i0, &i1);
        double *g = t == 0 ? grad : ws->gradT + (size_t) (t - 1) * np;
        if (t > 0) memset(g, 0, np * sizeof(double));
        double *Sp = ws->Mbar + (size_t) t * ws->Dp * wsum;
        double *tmp = ws->tmp + (size_t) t * jko_tmp_len(net);
        const int nb = icnn_block(net);
        double ab = 0;
        for (int b = i0, m; b < i1; b += m) {
            double a1;
            m = icnn_block_len(b, i1, nb);
            backward_part(net, th, X, b, m, ws, Ybar, lambda, g, Sp, tmp, &a1);
            ab += a1;
        }
        ws->abarT[t] = ab;
    }
    if (old > 1) jko_blas_set_threads(old);
    /* the parts' sums, in thread order: the same result for a given
     * thread count */
    for (int t = 1; t < nt; t++) {
        const double *g = ws->gradT + (size_t) (t - 1) * np;
        for (size_t m = 0; m < np; m++) grad[m] += g[m];
    }
    /* the A blocks back from the order j w + k to theta's k r + j */
    for (int l = 0; l < net->L; l++) {
        int w = net->w[l], r = net->r, wr = w * r;
        double *Ab = grad + net->offA[l], *T = ws->Atmp;
        memcpy(T, Ab, (size_t) wr * D * sizeof(double));
        for (int d = 0; d < D; d++)
            for (int k = 0; k < w; k++)
                for (int j = 0; j < r; j++)
                    Ab[k * r + j + (size_t) wr * d] = T[j * w + k + (size_t) wr * d];
    }
    double abar = 0;
    for (int t = 0; t < nt; t++) abar += ws->abarT[t];
    double a = th[net->offa];
    grad[net->offa] = abar * jko_sigmoid(a);   /* alpha = alpha_min + softplus(a) */
}
