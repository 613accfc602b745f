/* The network: parameter layout, identity initialisation, workspace and the
 * forward pass (potential, the delta recursion and the map grad psi). */
#define USE_FC_LEN_T
#include <R.h>
#include <Rinternals.h>   /* R_XLEN_T_MAX */
#include <Rmath.h>
#include <R_ext/BLAS.h>
#ifndef FCONE
# define FCONE
#endif
#include <limits.h>
#include <stdint.h>
#include <string.h>
#include "jko.h"
#include "icnn.h"
#include "vmath.h"
#include "numerics.h"

/* The activation and its first three derivatives on m pre-activations
 * (f3 may be NULL), in one loop the compiler vectorises: one e = exp(-|s|)
 * serves both the logistic g and softplus(s) = max(s, 0) + log1p(e), by
 * vmath.h's jko_vexp() and jko_vlog1p01() (a few ulp from libm's). */
JKO_VMATH_BEGIN
#define ACT_LOOP(BODY)                                                          \
    JKO_SIMD                                                                    \
    for (size_t q = 0; q < m; q++) {                                            \
        const double s = S[q], a = fabs(s);                                     \
        const double e = jko_vexp(-(a > 708.0 ? 708.0 : a)), i1e = 1.0 / (1.0 + e); \
        const double g = s >= 0 ? i1e : e * i1e;                                \
        const double g1 = g * (1.0 - g);                                        \
        const double sp = (s > 0 ? s : 0.0) + jko_vlog1p01(e);                  \
        BODY                                                                    \
    }
JKO_CLONES static void act_batch(int act, const double *S, size_t m, double *f,
                              double *f1, double *f2, double *f3)
{
    if (act == ACT_SQSOFTPLUS) {      /* sigma = softplus^2 / 2 */
        if (f3) {
            ACT_LOOP(f[q] = 0.5 * sp * sp; f1[q] = sp * g; f2[q] = g * g + sp * g1;
                     f3[q] = 3.0 * g * g1 + sp * (g1 * (1.0 - 2.0 * g));)
        } else {
            ACT_LOOP(f[q] = 0.5 * sp * sp; f1[q] = sp * g; f2[q] = g * g + sp * g1;)
        }
    } else {                          /* sigma = softplus */
        if (f3) {
            ACT_LOOP(f[q] = sp; f1[q] = g; f2[q] = g1; f3[q] = g1 * (1.0 - 2.0 * g);)
        } else {
            ACT_LOOP(f[q] = sp; f1[q] = g; f2[q] = g1;)
        }
    }
}
#undef ACT_LOOP
JKO_VMATH_END

int icnn_setup(icnn_t *net, int D, int L, const int *w, int r, int act,
               double alpha_min)
{
    if (D < 1 || L < 1 || L > ICNN_MAX_LAYERS || r < 1 ||
        (act != ACT_SOFTPLUS && act != ACT_SQSOFTPLUS)) return JKO_ERR_DATA;
    for (int l = 0; l < L; l++) if (w[l] < 1) return JKO_ERR_DATA;
    /* the kernels index and call BLAS with int products of the sizes:
     * w r D (a rank block), D^2 (a Hessian); and the layout is int */
    double np = 0;
    for (int l = 0; l < L; l++) {
        double wl = w[l];
        if (wl * r * D > INT_MAX) return JKO_ERR_SIZE;
        np += wl * r * D + wl * D + wl + (l > 0 ? wl * w[l - 1] : 0);
    }
    np += w[L - 1] + 1 + (L > 1 ? w[0] : 0);
    if ((double) D * D > INT_MAX || np > INT_MAX) return JKO_ERR_SIZE;
    net->D = D; net->L = L; net->r = r; net->act = act;
    net->alpha_min = alpha_min;
    net->wmax = 0;
    size_t off = 0;
    for (int l = 0; l < L; l++) {
        net->w[l] = w[l];
        if (w[l] > net->wmax) net->wmax = w[l];
        net->offA[l] = off; off += (size_t) w[l] * r * D;
        net->offB[l] = off; off += (size_t) w[l] * D;
        net->offc[l] = off; off += (size_t) w[l];
        net->offW[l] = off; if (l > 0) off += (size_t) w[l] * w[l - 1];
    }
    net->offv = off; off += (size_t) w[L - 1];
    net->offa = off; off += 1;
    net->offs = off; if (L > 1) off += (size_t) w[0];
    net->npar = off;
    return JKO_OK;
}

/* The doubles of icnn_ws_alloc(net, ws, nmax, hess, nth), counted as it
 * allocates them (in double precision, so that no product overflows). */
static double ws_doubles(const icnn_t *net, int nmax, int hess, int nth)
{
    const double D = net->D, r = net->r, wm = net->wmax, n = nmax > 0 ? nmax : 1;
    const double Dp = D * (D + 1) / 2, D2 = D * D, th = nth < 1 ? 1 : nth;
    const int mf = icnn_mform(net);
    const double tmp = wm * (D + JKO_GROUP) + 2 * D2 + r * D +
                       (mf ? wm * D2 : 0);                  /* jko_tmp_len() */
    double s = 0, ws = 0;
    for (int l = 0; l < net->L; l++) {
        double w = net->w[l];
        ws += w;
        s += w * r * D + w * r * n + 7 * w * n;
        if (hess || mf) s += Dp * w;
        if (mf) s += D2 * w;
        if (l > 0) s += w * net->w[l - 1];
        if (hess) s += 2 * w * D * n;
        if (hess > 1) s += 4 * w * n + w * r * n;
    }
    s += wm * r * n;
    if (mf && !hess) s += Dp * n;   /* Hp */
    if (hess) s += D2 * n + Dp * n + th * tmp;
    if (hess > 1)
        s += D2 * n + Dp * n + wm * r * D + 2 * wm * D * n + th * Dp * ws + 2 * wm * n +
             (th - 1) * (double) net->npar + th;
    return s;
}

int icnn_ws_check(const icnn_t *net, int nmax, int hess, int nth, double *need)
{
    *need = ws_doubles(net, nmax, hess, nth);
    /* D n is an int in the kernels (a BLAS dimension); the workspace must be
     * a size R_alloc can count in bytes */
    if ((double) net->D * (nmax > 0 ? nmax : 1) > INT_MAX) return JKO_ERR_SIZE;
    double lim = (double) SIZE_MAX;                /* bytes, as R_alloc counts */
    if (lim > (double) R_XLEN_T_MAX) lim = (double) R_XLEN_T_MAX;
    return *need > lim / sizeof(double) ? JKO_ERR_SIZE : JKO_OK;
}

double icnn_alpha(const icnn_t *net, const double *th)
{
    return net->alpha_min + jko_softplus(th[net->offa]);
}

/* Random quadratic and hidden weights of unit scale, and output weights so
 * small that grad psi(x) = x to about 1e-5 on N(0, I): the identity map at
 * the start of training, without pretraining.
 *
 * With scale > 1, every unit of the activated layers (l >= 1) is then made
 * sharper and moved: the linear part of its pre-activation (B x + W z) is
 * multiplied by c_k, log-uniform in [1, scale], its quadratic part kept,
 * and its offset set so that the pre-activation vanishes at m_k, a random
 * point of N(0, I) (one of 64 drawn per layer). Its transition then
 * lies among the samples, over a width of about 1/c_k of their spread.
 * A unit of unit scale is nearly linear over the samples, and the gradient
 * of the loss cannot see a feature of the potential narrower than that
 * (its Fourier coefficients against smooth functions vanish): such units
 * never learn a rippled potential. Sharper units can. */
void icnn_init_params(const icnn_t *net, double *th, double scale)
{
    int D = net->D, r = net->r;
    for (int l = 0; l < net->L; l++) {
        int w = net->w[l];
        double sa = 1.0 / sqrt((double) r * D), sb = 1.0 / sqrt((double) D);
        for (size_t i = 0; i < (size_t) w * r * D; i++)
            th[net->offA[l] + i] = sa * norm_rand();
        for (size_t i = 0; i < (size_t) w * D; i++)
            th[net->offB[l] + i] = sb * norm_rand();
        for (int k = 0; k < w; k++) th[net->offc[l] + k] = 0.0;
        if (l > 0) {
            int wp = net->w[l - 1];
            for (size_t i = 0; i < (size_t) w * wp; i++)
                th[net->offW[l] + i] = 2.0 * unif_rand() / wp;
        }
    }
    int wL = net->w[net->L - 1];
    /* (sharper units have larger gradients: their output weights are
     * smaller by the same factor, so that the map stays the identity) */
    double v0 = 1e-5 / wL / (scale > 1.0 ? scale : 1.0);
    for (int k = 0; k < wL; k++) th[net->offv + k] = v0;
    if (net->L > 1) for (int k = 0; k < net->w[0]; k++) th[net->offs + k] = 0.0;
    /* alpha = 1: softplus(a) = 1 - alpha_min */
    double t = 1.0 - net->alpha_min;
    th[net->offa] = t + log(-expm1(-t));
    if (scale > 1.0 && net->L > 1) {
        /* layer by layer, since a layer's pre-activations depend on the
         * layers below: the forward pass keeps them in ws.S */
        const int np = 64;
        icnn_ws ws;
        icnn_ws_alloc(net, &ws, np, 0, 1);
        double *X = (double *) R_alloc((size_t) D * np, sizeof(double));
        double ls = log(scale);
        for (int l = 1; l < net->L; l++) {
            int w = net->w[l], wr = w * r, wp = net->w[l - 1];
            for (size_t i = 0; i < (size_t) D * np; i++) X[i] = norm_rand();
            icnn_prepare(net, th, &ws);
            icnn_forward(net, th, X, np, &ws, NULL, NULL);
            const double *S = ws.S[l];
            const double *A = th + net->offA[l];
            double *B = th + net->offB[l], *c = th + net->offc[l], *W = th + net->offW[l];
            for (int k = 0; k < w; k++) {
                int i = (int) (unif_rand() * np);
                if (i >= np) i = np - 1;
                /* the linear part and the offset scaled by c_k, the
                 * quadratic part left as it is: q(x) + c_k (lin(x) - lin(m))
                 * - q(m), zero at m, the point of the unit's transition */
                double ck = exp(unif_rand() * ls), q = 0;
                const double *x = X + (size_t) D * i;
                for (int j = 0; j < r; j++) {
                    double p = 0;
                    for (int d = 0; d < D; d++) p += A[k * r + j + (size_t) wr * d] * x[d];
                    q += p * p;
                }
                for (int d = 0; d < D; d++) B[k + (size_t) w * d] *= ck;
                for (int u = 0; u < wp; u++) W[k + (size_t) w * u] *= ck;
                c[k] = -q - ck * (S[k + (size_t) w * i] - q - c[k]);
            }
        }
    }
}

/* Non-negativity of the hidden-to-hidden and output weights (projection
 * after each optimiser step). */
void icnn_project(const icnn_t *net, double *th)
{
    for (int l = 1; l < net->L; l++) {
        double *W = th + net->offW[l];
        size_t m = (size_t) net->w[l] * net->w[l - 1];
        for (size_t i = 0; i < m; i++) if (W[i] < 0) W[i] = 0;
    }
    for (int k = 0; k < net->w[net->L - 1]; k++)
        if (th[net->offv + k] < 0) th[net->offv + k] = 0;
    if (net->L > 1)
        for (int k = 0; k < net->w[0]; k++)
            if (th[net->offs + k] < 0) th[net->offs + k] = 0;
}

static double *ralloc(size_t n)
{
    return (double *) R_alloc(n > 0 ? n : 1, sizeof(double));
}

/* hess = 0: potential and map only; 1: also Hessians; 2: also the
 * parameter gradients. Memory is R_alloc'ed, so an error or an interrupt
 * cannot leak it. */
void icnn_ws_alloc(const icnn_t *net, icnn_ws *ws, int nmax, int hess, int nth)
{
    int D = net->D, r = net->r, wm = net->wmax;
    size_t n = (size_t) (nmax > 0 ? nmax : 1), D2 = (size_t) D * D;
    size_t Dp = (size_t) D * (D + 1) / 2;
    memset(ws, 0, sizeof(*ws));
    ws->nmax = nmax; ws->hess = hess; ws->nth = nth < 1 ? 1 : nth;
    ws->Dp = (int) Dp;
    ws->mform = icnn_mform(net);
    size_t wsum = 0;
    for (int l = 0; l < net->L; l++) {
        wsum += net->w[l];
        size_t w = net->w[l];
        ws->Ap[l] = ralloc(w * r * D);
        ws->P[l] = ralloc(w * r * n);
        ws->S[l] = ralloc(w * n);
        ws->Z[l] = l == 0 ? ws->S[0] : ralloc(w * n);
        ws->U[l] = ralloc(w * n);
        ws->Dl[l] = ralloc(w * n);
        ws->C[l] = ralloc(w * n);
        if (l > 0) {
            ws->F1[l] = ralloc(w * n);
            ws->F2[l] = ralloc(w * n);
            if (hess > 1) ws->F3[l] = ralloc(w * n);
        }
        if (hess || ws->mform) ws->Mp[l] = ralloc(Dp * w);
        if (ws->mform) ws->Mf[l] = ralloc(D2 * w);
        if (l > 0) ws->Wt[l] = ralloc(w * net->w[l - 1]);
        if (hess) {
            /* G_1 is needed only to start the Jacobian recursion */
            ws->G[l] = (l == 0 && net->L == 1) ? NULL : ralloc(w * D * n);
            /* J_L is never used; J_1 = G_1 (no activation on layer 1) */
            ws->J[l] = (l == 0) ? ws->G[0] :
                       (l == net->L - 1 ? NULL : ralloc(w * D * n));
        }
        if (hess > 1) {
            ws->Ub[l] = ralloc(w * n);
            ws->Sb[l] = ralloc(w * n);
            ws->Cb[l] = ralloc(w * n);
            ws->Pb[l] = ralloc(w * r * n);
        }
    }
    ws->PU = ralloc((size_t) wm * r * n);
    if (hess || ws->mform) ws->Hp = ralloc(Dp * n);
    if (hess) {
        ws->Lc = ralloc(D2 * n);
        ws->tmp = ralloc((size_t) ws->nth * jko_tmp_len(net));
    }
    if (hess > 1) {
        ws->Hbar = ralloc(D2 * n);
        ws->HbP = ralloc(Dp * n);
        ws->Atmp = ralloc((size_t) wm * r * D);
        if (net->L > 1) {
            ws->GB = ralloc((size_t) wm * D * n);
            ws->JB = ralloc((size_t) wm * D * n);
        }
        ws->Mbar = ralloc((size_t) ws->nth * Dp * wsum);
        ws->Zb = ralloc((size_t) wm * n);
        ws->Db = ralloc((size_t) wm * n);
        ws->gradT = ralloc((size_t) (ws->nth - 1) * net->npar);
        ws->abarT = ralloc((size_t) ws->nth);
    }
}

/* A_l with its rows in the order j w + k (see icnn.h). */
static void permute_A(const icnn_t *net, const double *th, icnn_ws *ws)
{
    const int D = net->D, r = net->r;
    for (int l = 0; l < net->L; l++) {
        int w = net->w[l], wr = w * r;
        const double *A = th + net->offA[l];
        double *Ap = ws->Ap[l];
        for (int d = 0; d < D; d++)
            for (int k = 0; k < w; k++)
                for (int j = 0; j < r; j++)
                    Ap[j * w + k + (size_t) wr * d] = A[k * r + j + (size_t) wr * d];
    }
}

/* M_{l,k} = sum_j a_kj a_kj', packed lower (Dp x w); with ws->mform also
 * whole, unit-minor (ws->Mf). */
static void rank_matrices(const icnn_t *net, const double *th, icnn_ws *ws)
{
    const int D = net->D, r = net->r, Dp = ws->Dp;
    for (int l = 0; l < net->L; l++) {
        int w = net->w[l], wr = w * r;
        const double *A = th + net->offA[l];
        double *Mf = ws->Mf[l];
        for (int k = 0; k < w; k++) {
            double *Mpk = ws->Mp[l] + (size_t) Dp * k;
            int q = 0;
            for (int e = 0; e < D; e++)
                for (int d = e; d < D; d++, q++) {
                    double s = 0;
                    for (int j = 0; j < r; j++)
                        s += A[k * r + j + (size_t) wr * d] * A[k * r + j + (size_t) wr * e];
                    Mpk[q] = s;
                    if (Mf) {
                        Mf[(size_t) w * (d * D + e) + k] = s;
                        Mf[(size_t) w * (e * D + d) + k] = s;
                    }
                }
        }
    }
}

void icnn_prepare(const icnn_t *net, const double *th, icnn_ws *ws)
{
    permute_A(net, th, ws);
    /* W_l' for the products W_l' v: BLAS's "N" "N" products ran at 70-79
     * GFLOP/s where its "T" "N" ones ran at 45-60 (OpenBLAS 0.3.21,
     * SkylakeX kernels, one thread: widths 32 to 256 over 128 samples) */
    for (int l = 1; l < net->L; l++) {
        const int w = net->w[l], wp = net->w[l - 1];
        const double *W = th + net->offW[l];
        double *Wt = ws->Wt[l];
        for (int k = 0; k < w; k++)
            for (int u = 0; u < wp; u++) Wt[u + (size_t) wp * k] = W[k + (size_t) w * u];
    }
    if (ws->hess || ws->mform) rank_matrices(net, th, ws);
}

/* The forward pass on samples [i0, i1): every array is column-per-sample,
 * so a part of the batch is a contiguous block and the BLAS calls below
 * simply see fewer columns. */
JKO_CLONES static void forward_part(const icnn_t *net, const double *th, const double *X0,
                         int i0, int n, icnn_ws *ws, double *psi, double *Y0)
{
    const int D = net->D, r = net->r, L = net->L, act = net->act;
    const double one = 1.0, zero = 0.0, two = 2.0;
    const double alpha = icnn_alpha(net, th);
    const double *X = X0 + (size_t) D * i0;
    if (n < 1) return;

    for (int l = 0; l < L; l++) {
        int w = net->w[l], wr = w * r;
        const double *A = ws->Ap[l], *B = th + net->offB[l],
                     *c = th + net->offc[l];
        double *P = ws->P[l] + (size_t) wr * i0, *S = ws->S[l] + (size_t) w * i0;
        if (ws->mform) {
            /* s_k = c_k + b_k'x + x'M_k x, the last as sum_{d >= e} M_k,de
             * xx_de with xx_de = x_d x_e, doubled off the diagonal */
            const double *Mf = ws->Mf[l];
            double xx[JKO_SMALL_D * (JKO_SMALL_D + 1) / 2];
            for (int i = 0; i < n; i++) {
                const double *xi = X + (size_t) D * i;
                double *Si = S + (size_t) w * i;
                for (int d = 0, q = 0; d < D; d++)
                    for (int e = 0; e <= d; e++, q++)
                        xx[q] = (d == e ? 1.0 : 2.0) * xi[d] * xi[e];
#define FWD_SM(VT, LD, ST) {                                                    \
                    VT s = LD(c + k);                                           \
                    for (int d = 0; d < D; d++) s += LD(B + (size_t) w * d + k) * xi[d]; \
                    for (int d = 0, q = 0; d < D; d++)                          \
                        for (int e = 0; e <= d; e++, q++)                       \
                            s += LD(Mf + (size_t) w * (d * D + e) + k) * xx[q]; \
                    ST(Si + k, s);                                              \
                }
                JKO_CHUNKS(k, w, FWD_SM);
#undef FWD_SM
            }
        } else if (D < JKO_SMALL_D) {
            /* products with an inner dimension of D: by hand, each sample's
             * columns once (a BLAS call would pack and zero them first) */
            for (int i = 0; i < n; i++) {
                const double *xi = X + (size_t) D * i;
                double *Pi = P + (size_t) wr * i, *Si = S + (size_t) w * i;
                /* the sums over d in registers: one store per entry */
#define FWD_SP(VT, LD, ST) {                                                    \
                    VT s = LD(c + k);                                           \
                    for (int d = 0; d < D; d++) s += LD(B + (size_t) w * d + k) * xi[d]; \
                    for (int j = 0; j < r; j++) {                               \
                        JKO_COLS(VT, LD, p, A + (size_t) w * j + k, wr, xi, D); \
                        ST(Pi + (size_t) w * j + k, p);                         \
                        s += p * p;                                             \
                    }                                                           \
                    ST(Si + k, s);                                              \
                }
                JKO_CHUNKS(k, w, FWD_SP);
#undef FWD_SP
            }
        } else {
            F77_CALL(dgemm)("N", "N", &wr, &n, &D, &one, A, &wr, X, &D, &zero,
                            P, &wr FCONE FCONE);
            F77_CALL(dgemm)("N", "N", &w, &n, &D, &one, B, &w, X, &D, &zero,
                            S, &w FCONE FCONE);
            for (int i = 0; i < n; i++) {
                const double *Pi = P + (size_t) wr * i;
                double *Si = S + (size_t) w * i;
                JKO_SIMD
                for (int k = 0; k < w; k++) Si[k] += c[k];
                for (int j = 0; j < r; j++) {
                    const double *Pj = Pi + (size_t) w * j;
                    JKO_SIMD
                    for (int k = 0; k < w; k++) Si[k] += Pj[k] * Pj[k];
                }
            }
        }
        if (l > 0) {
            int wp = net->w[l - 1];
            icnn_gemm_nn(w, n, wp, 1.0, th + net->offW[l], w,
                         ws->Z[l - 1] + (size_t) wp * i0, wp, 1.0, S, w);
        }
        if (l > 0) {
            /* sigma and its derivatives once per pass: the Hessian and the
             * backward sweep reuse them instead of calling exp/log1p again */
            size_t o = (size_t) w * i0, m = (size_t) w * n;
            double *Z = ws->Z[l] + o, *F1 = ws->F1[l] + o, *F2 = ws->F2[l] + o;
            double *F3 = ws->F3[l] ? ws->F3[l] + o : NULL;
            act_batch(act, S, m, Z, F1, F2, F3);
        }
    }

    const double *v = th + net->offv;
    const int wL = net->w[L - 1];
    if (psi) {
        for (int i = 0; i < n; i++) {
            const double *Zi = ws->Z[L - 1] + (size_t) wL * (i0 + i),
                         *xi = X + (size_t) D * i;
            double s = 0, xx = 0;
            for (int k = 0; k < wL; k++) s += v[k] * Zi[k];
            if (L > 1) {
                const double *vs = th + net->offs,
                             *Z1 = ws->S[0] + (size_t) net->w[0] * (i0 + i);
                for (int k = 0; k < net->w[0]; k++) s += vs[k] * Z1[k];
            }
            for (int d = 0; d < D; d++) xx += xi[d] * xi[d];
            psi[i0 + i] = s + 0.5 * alpha * xx;
        }
    }

    /* delta recursion, top layer down */
    for (int i = 0; i < n; i++)
        memcpy(ws->Dl[L - 1] + (size_t) wL * (i0 + i), v, wL * sizeof(double));
    for (int l = L - 1; l >= 0; l--) {
        int w = net->w[l];
        size_t o = (size_t) w * i0, m = (size_t) w * n;
        double *Dd = ws->Dl[l] + o, *U = ws->U[l] + o, *Cc = ws->C[l] + o;
        if (l == 0) {
            if (L > 1) {   /* the layer-1 output skip: delta_1 += v_1 */
                const double *vs = th + net->offs;
                for (int i = 0; i < n; i++)
                    JKO_SIMD
                    for (int k = 0; k < w; k++) Dd[(size_t) w * i + k] += vs[k];
            }
            memcpy(U, Dd, m * sizeof(double));
            memset(Cc, 0, m * sizeof(double));
        } else {
            const double *F1 = ws->F1[l] + o, *F2 = ws->F2[l] + o;
            for (size_t q = 0; q < m; q++) {
                U[q] = F1[q] * Dd[q];
                Cc[q] = F2[q] * Dd[q];
            }
            int wp = net->w[l - 1];
            icnn_gemm_nn(wp, n, w, 1.0, ws->Wt[l], wp, U, w, 0.0,
                         ws->Dl[l - 1] + (size_t) wp * i0, wp);
        }
    }

    /* with mform the rank terms sum_l sum_k u_lk M_lk serve the map and the
     * Hessian: computed once, here */
    if (ws->mform && (Y0 || ws->hess)) icnn_rank_terms(net, ws, i0, n);
    if (Y0 && ws->mform) {
        /* y = alpha x + Hp x + sum_l B_l'u_l (Hp = 2 sum_l sum_k u_lk M_lk) */
        const int Dp = ws->Dp;
        double *Y = Y0 + (size_t) D * i0;
        const double *Mx = ws->Hp + (size_t) Dp * i0;
        for (int i = 0; i < n; i++) {
            const double *xi = X + (size_t) D * i, *mi = Mx + (size_t) Dp * i;
            double *yi = Y + (size_t) D * i;
            for (int d = 0; d < D; d++) yi[d] = alpha * xi[d];
            for (int e = 0, q = 0; e < D; e++)
                for (int d = e; d < D; d++, q++) {
                    yi[d] += mi[q] * xi[e];
                    if (d != e) yi[e] += mi[q] * xi[d];
                }
            for (int l = 0; l < L; l++) {
                int w = net->w[l];
                const double *B = th + net->offB[l],
                             *Ui = ws->U[l] + (size_t) w * (i0 + i);
                for (int d = 0; d < D; d++) yi[d] += jko_dot(B + (size_t) w * d, Ui, w);
            }
        }
    } else if (Y0) {
        double *Y = Y0 + (size_t) D * i0;
        for (size_t m = 0; m < (size_t) D * n; m++) Y[m] = alpha * X[m];
        for (int l = 0; l < L; l++) {
            int w = net->w[l], wr = w * r;
            const double *P = ws->P[l] + (size_t) wr * i0,
                         *U = ws->U[l] + (size_t) w * i0;
            /* PU is shared scratch sized for the widest layer: parts are
             * placed by wmax so they never overlap across layers */
            double *PU = ws->PU + (size_t) net->wmax * r * i0;
            if (D < JKO_SMALL_D) {
                /* y_d += sum_k (2 sum_j a_kjd p_kj + b_kd) u_k, by hand */
                const double *Ap = ws->Ap[l], *B = th + net->offB[l];
                for (int i = 0; i < n; i++) {
                    const double *Ui = U + (size_t) w * i, *Pi = P + (size_t) wr * i;
                    double *yi = Y + (size_t) D * i;
                    for (int d = 0; d < D; d++) {
                        const double *Ad = Ap + (size_t) wr * d, *Bd = B + (size_t) w * d;
                        double s = 0;
                        for (int j = 0; j < r; j++) {
                            const double *Adj = Ad + (size_t) w * j, *Pj = Pi + (size_t) w * j;
                            JKO_SIMD_SUM(s)
                            for (int k = 0; k < w; k++) s += Adj[k] * Pj[k] * Ui[k];
                        }
                        yi[d] += 2.0 * s + jko_dot(Bd, Ui, w);
                    }
                }
                continue;
            }
            icnn_rank_times_u(P, U, n, w, r, PU);
            F77_CALL(dgemm)("T", "N", &D, &n, &wr, &two, ws->Ap[l], &wr,
                            PU, &wr, &one, Y, &D FCONE FCONE);
            F77_CALL(dgemm)("T", "N", &D, &n, &w, &one, th + net->offB[l], &w,
                            U, &w, &one, Y, &D FCONE FCONE);
        }
    }
}

void icnn_rank_terms(const icnn_t *net, icnn_ws *ws, int i0, int n)
{
    const int Dp = ws->Dp;
    const double one = 1.0, zero = 0.0, two = 2.0;
    double *Hp = ws->Hp + (size_t) Dp * i0;
    for (int l = 0; l < net->L; l++) {
        int w = net->w[l];
        F77_CALL(dgemm)("N", "N", &Dp, &n, &w, &two, ws->Mp[l], &Dp,
                        ws->U[l] + (size_t) w * i0, &w, l ? &one : &zero, Hp, &Dp
                        FCONE FCONE);
    }
}

/* OpenBLAS (0.3.21 on an AVX-512 Xeon) multiplies small products by
 * kernels that do not pack their operands: 64 x 240 x 64 ran at 80
 * GFLOP/s, 64 x 256 x 64 through its packing path at 60. At width 64 (one thread, SkylakeX kernels) a product over
 * 256 to 4096 columns ran at 62-69 GFLOP/s in one call and at 76-92 in
 * pieces of 128 columns; A B' over 256 to 4096 samples at 45-56 in one
 * call and at 61-86 in pieces of 64. Pieces are cut only where A (or C,
 * for A B') has at most 8192 entries: at width 256 they gained nothing or
 * lost (73 against 76 GFLOP/s), and the wider networks keep one call. */
#define JKO_GEMM_PIECE 524288.0
void icnn_gemm_nn(int m, int n, int k, double alpha, const double *A, int lda,
                  const double *B, int ldb, double beta, double *C, int ldc)
{
    const double mk = (double) m * k;
    int c = n;
    if (mk <= 8192 && mk * n > JKO_GEMM_PIECE) c = (int) (JKO_GEMM_PIECE / mk);
    for (int j = 0; j < n; j += c) {
        int nj = n - j < c ? n - j : c;
        F77_CALL(dgemm)("N", "N", &m, &nj, &k, &alpha, A, &lda, B + (size_t) ldb * j,
                        &ldb, &beta, C + (size_t) ldc * j, &ldc FCONE FCONE);
    }
}

void icnn_gemm_nt(int m, int n, int K, double alpha, const double *A, int lda,
                  const double *B, int ldb, double beta, double *C, int ldc)
{
    const double mn = (double) m * n, one = 1.0;
    int c = K;
    if (mn <= 8192 && mn * K > JKO_GEMM_PIECE / 2) c = (int) (JKO_GEMM_PIECE / 2 / mn);
    for (int j = 0; j < K; j += c) {
        int kj = K - j < c ? K - j : c;
        F77_CALL(dgemm)("N", "T", &m, &n, &kj, &alpha, A + (size_t) lda * j, &lda,
                        B + (size_t) ldb * j, &ldb, j ? &one : &beta, C, &ldc
                        FCONE FCONE);
    }
}

/* Blocks of 128 samples for networks up to width 512: the per-layer
 * arrays of a block (w x 128, w r x 128) stay in cache between the
 * element-wise passes and the products over them (5-9% less time an
 * iteration at widths 64 and 256, D = 2 to 32, 2 threads; measured with
 * inst/bench/run.R's harness). Wider networks keep a thread's whole part,
 * whose products with W (w x w) then run at the BLAS's full speed
 * (blocks of 128 cost 3% at width 1024, 32 cost 20%). */
int icnn_block(const icnn_t *net)
{
    return net->wmax <= 512 ? 128 : INT_MAX;
}

/* Forward pass over n samples (X is D x n):
 *   s_l, z_l as above; delta_L = v, u_l = sigma'(s_l) delta_l,
 *   delta_{l-1} = W_l' u_l, c_l = sigma''(s_l) delta_l;
 *   grad psi = sum_l A_l' (2 p_l * u_l) + B_l' u_l + alpha x.
 * psi and Y (D x n) may be NULL. Needs icnn_prepare on th first. The
 * batch is split into one contiguous part per thread; each part runs the
 * whole pass with a single-threaded BLAS, so there is one parallel region
 * and no synchronisation. */
void icnn_forward(const icnn_t *net, const double *th, const double *X, int n,
                  icnn_ws *ws, double *psi, double *Y)
{
    const int nt = jko_blas_room(jko_nthreads(ws->nth, n));
    if (n < 1) return;
    int old = jko_blas_set_threads(1);
#ifdef _OPENMP
#pragma omp parallel num_threads(nt)
#endif
    {
        int i0, i1;
        const int nb = icnn_block(net);
        jko_chunk(n, jko_thread_num(), nt, &i0, &i1);
        for (int b = i0, m; b < i1; b += m) {
            m = icnn_block_len(b, i1, nb);
            forward_part(net, th, X, b, m, ws, psi, Y);
        }
    }
    if (old > 1) jko_blas_set_threads(old);
}
