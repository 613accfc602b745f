/* The dense input-convex network (ICNN) with quadratic skips, its workspace
 * and the kernels that evaluate it.
 *
 *   s_1 = Q_1(x),  z_1 = s_1
 *   s_l = W_l z_{l-1} + Q_l(x),  z_l = sigma(s_l),  l = 2..L,  W_l >= 0
 *   psi(x) = v' z_L + v_1' z_1 + alpha |x|^2 / 2   (no v_1' z_1 term if L = 1)
 *   v >= 0,  v_1 >= 0,  alpha = alpha_min + softplus(a)
 *   Q_{l,k}(x) = sum_r (a_{l,k,r}' x)^2 + b_{l,k}' x + c_{l,k}
 *
 * sigma is softplus or softplus^2 / 2: convex and non-decreasing, so with
 * W_l, v, v_1 >= 0 and convex Q_l, psi is convex, and alpha-strongly convex.
 *
 * All batches are column-major with one sample per column: x is D x n.
 * Parameters live in one flat vector theta; per layer l the blocks are
 *   A_l  (w_l r) x D   row k r + j holds a_{l,k,j}
 *   B_l  w_l x D
 *   c_l  w_l
 *   W_l  w_l x w_{l-1}  (l >= 2 only)
 * followed by v (w_L), the raw strong-convexity parameter a (1) and, when
 * L > 1, the non-negative output weights v_1 (w_1) of the first layer.
 * z_1 = Q_1(x) is a convex quadratic: this skip lets the network represent
 * any linear map exactly (the Ornstein-Uhlenbeck steps), the deeper layers
 * carrying only the non-linear part.
 *
 * Calling sequence. For each parameter vector theta, icnn_prepare(net, th,
 * ws) runs once; then icnn_forward, icnn_hessian and icnn_backward may run
 * on any number of batches with that same theta and ws. They do not prepare
 * themselves: after theta changes (an optimiser step) or with a workspace
 * prepared for another theta, icnn_prepare must run again first.
 */
#ifndef JKOFLOW_ICNN_H
#define JKOFLOW_ICNN_H

#include <stddef.h>
#include "jko.h"

#define ICNN_MAX_LAYERS 32

enum { ACT_SOFTPLUS = 1, ACT_SQSOFTPLUS = 2 };

typedef struct {
    int D, L, r, act;
    int w[ICNN_MAX_LAYERS];
    double alpha_min;
    size_t offA[ICNN_MAX_LAYERS], offB[ICNN_MAX_LAYERS],
           offc[ICNN_MAX_LAYERS], offW[ICNN_MAX_LAYERS];
    size_t offv, offa, offs, npar;   /* offs: layer-1 output skip (L > 1) */
    int wmax;
} icnn_t;

/* Scratch for a batch of up to nmax samples. Pointers per layer; the large
 * w x D x n Jacobian blocks are only allocated when Hessians are wanted. */
typedef struct {
    int nmax, hess, nth;
    int Dp;                        /* D (D + 1) / 2, a packed symmetric matrix */
    double *Ap[ICNN_MAX_LAYERS];   /* (w r) x D   A_l, rows reordered j w + k */
    /* P, PU and Pb hold their rows in the order j w + k (rank index
     * outer), so the loops over units k run over contiguous memory */
    double *P[ICNN_MAX_LAYERS];    /* (w r) x n   projections a'x          */
    double *S[ICNN_MAX_LAYERS];    /* w x n       pre-activations          */
    double *Z[ICNN_MAX_LAYERS];    /* w x n       activations              */
    double *U[ICNN_MAX_LAYERS];    /* w x n       u = sigma'(s) delta      */
    double *Dl[ICNN_MAX_LAYERS];   /* w x n       delta                    */
    double *C[ICNN_MAX_LAYERS];    /* w x n       c = sigma''(s) delta     */
    double *F1[ICNN_MAX_LAYERS];   /* w x n       sigma'(s), l >= 2: the    */
    double *F2[ICNN_MAX_LAYERS];   /* w x n       sigma''(s)   activation's */
    double *F3[ICNN_MAX_LAYERS];   /* w x n       sigma'''(s)  derivatives, */
                                   /* cached by icnn_forward (F3 if hess > 1) */
    double *G[ICNN_MAX_LAYERS];    /* w x D x n   forward Jacobian G_l     */
    double *J[ICNN_MAX_LAYERS];    /* w x D x n   J_l = sigma'(s) G_l      */
    double *Mp[ICNN_MAX_LAYERS];   /* Dp x w      sum_j a_kj a_kj', packed  */
                                   /* lower (Ap, Mp: set by icnn_prepare)    */
    int mform;                     /* icnn_mform(net): the rank terms by M  */
    double *Mf[ICNN_MAX_LAYERS];   /* D^2 x w, unit-minor: M_{l,k} entry    */
                                   /* (d, e) at (d D + e) w + k (mform)     */
    double *Wt[ICNN_MAX_LAYERS];   /* w_{l-1} x w_l  W_l', l >= 2          */
    double *Hp;                    /* Dp x n      packed rank terms of H,  */
                                   /* sum_l Mp_l (2 u_l) (icnn_rank_terms;  */
                                   /* with mform by icnn_forward, where the */
                                   /* map's rank part is Hp x)              */
    double *H;                     /* D^2 x n     Hessians, NULL unless a  */
                                   /*             caller sets it           */
    double *Lc;                    /* D^2 x n     Cholesky factors         */
    double *PU;                    /* (wmax r) x n scratch                 */
    /* backward-only scratch */
    double *Ub[ICNN_MAX_LAYERS];   /* w x n       adjoint of u             */
    double *Sb[ICNN_MAX_LAYERS];   /* w x n       adjoint of s             */
    double *Cb[ICNN_MAX_LAYERS];   /* w x n       adjoint of c             */
    double *Pb[ICNN_MAX_LAYERS];   /* (w r) x n   adjoint of a'x           */
    double *Hbar;                  /* D^2 x n     adjoint of the Hessian   */
    double *Atmp;                  /* (wmax r) x D                         */
    double *GB, *JB;               /* wmax x D x n adjoints of G and J     */
    double *Mbar;                  /* per thread Dp x (sum of the widths):  */
                                   /* Dp x w_l packed for one layer at a    */
                                   /* time, or with mform w_l x Dp for each */
                                   /* layer l                               */
    double *HbP;                   /* Dp x n      packed Hbar, off-diagonal doubled */
    double *gradT;                 /* (nth - 1) x npar per-thread gradients */
    double *abarT;                 /* nth per-thread alpha adjoints         */
    double *Zb, *Db;               /* wmax x n                             */
    double *tmp;                   /* per-thread jko_tmp_len() scratch     */
} icnn_ws;

/* icnn.c. icnn_setup returns JKO_OK, JKO_ERR_DATA (an invalid
 * architecture) or JKO_ERR_SIZE (a network whose parameters or blocks an
 * int cannot count). */
int icnn_setup(icnn_t *net, int D, int L, const int *w, int r, int act,
               double alpha_min);
/* Whether a workspace for batches of nmax points can be allocated and
 * indexed: JKO_OK, or JKO_ERR_SIZE when D nmax exceeds an int or the
 * doubles (*need) exceed what can be allocated. Checked before icnn_ws_alloc
 * by whoever chooses nmax. */
int icnn_ws_check(const icnn_t *net, int nmax, int hess, int nth, double *need);
double icnn_alpha(const icnn_t *net, const double *th);
void icnn_init_params(const icnn_t *net, double *th, double scale); /* R's RNG */
void icnn_ws_alloc(const icnn_t *net, icnn_ws *ws, int nmax, int hess, int nth);
void icnn_forward(const icnn_t *net, const double *th, const double *X, int n,
                  icnn_ws *ws, double *psi, double *Y);
void icnn_project(const icnn_t *net, double *th);
/* Everything in ws that depends on theta alone, once per parameter vector
 * before icnn_forward / icnn_hessian / icnn_backward on it: the rank
 * factors A_l with rows reordered (ws->Ap) and, when ws->hess, the rank
 * matrices M_{l,k} = A_{l,k}' A_{l,k} (ws->Mp, packed). */
void icnn_prepare(const icnn_t *net, const double *th, icnn_ws *ws);

/* PU = p_j * u for each rank slice j of n samples (P and PU: w r x n
 * in the row order j w + k; U: w x n) */
static inline void icnn_rank_times_u(const double *P, const double *U, int n, int w,
                                     int r, double *PU)
{
    const size_t wr = (size_t) w * r;
    for (int i = 0; i < n; i++) {
        const double *Ui = U + (size_t) w * i;
        for (int j = 0; j < r; j++) {
            size_t o = wr * i + (size_t) w * j;
            JKO_SIMD
            for (int k = 0; k < w; k++) PU[o + k] = P[o + k] * Ui[k];
        }
    }
}

/* C = alpha A B + beta C (A m x k, B k x n) and C = alpha A B' + beta C
 * (A m x K, B n x K) by BLAS, the products with the hidden weights W: in
 * pieces of B's columns (or of K) where A is small (icnn.c). */
void icnn_gemm_nn(int m, int n, int k, double alpha, const double *A, int lda,
                  const double *B, int ldb, double beta, double *C, int ldc);
void icnn_gemm_nt(int m, int n, int K, double alpha, const double *A, int lda,
                  const double *B, int ldb, double beta, double *C, int ldc);

/* ws->Hp = sum_l Mp_l (2 u_l) on samples [i0, i0 + n), after the forward
 * pass on them (icnn.c) */
void icnn_rank_terms(const icnn_t *net, icnn_ws *ws, int i0, int n);

/* hessian.c */
int icnn_hessian(const icnn_t *net, const double *th, const double *X, int n,
                 icnn_ws *ws, double *logdet);

/* backward.c */
void icnn_backward(const icnn_t *net, const double *th, const double *X, int n,
                   icnn_ws *ws, const double *Ybar, const double *lambda,
                   double *grad);

/* From this dimension on, the work whose size is set by D goes through
 * BLAS rather than hand-written loops:
 *  - per sample, the products G_l' diag(c_l) G_l (hessian.c), A_k S_k and
 *    G_i Hbar_i (backward.c);
 *  - over a block, the products whose inner or outer dimension is D (A x
 *    and B x, A'(p u) and B'u in the map, A ybar, B ybar and the outer
 *    products into Abar and Bbar in the backward sweep), which below it
 *    are loops over each sample's columns (at D = 2 a BLAS call packed and
 *    zeroed a block for 2 multiply-adds an entry; from D = 8 the loops
 *    were 1.3-1.6 times slower than BLAS).
 * The Cholesky factorisation is always chol_logdet, and H^{-1} from it
 * chol_inverse (linalg.c). */
#define JKO_SMALL_D 8

/* Whether the rank terms go by the matrices M_k = A_k'A_k (D x D) rather
 * than by the projections p_kj = a_kj'x (r of them): where D < JKO_SMALL_D
 * and a symmetric D x D matrix has fewer entries than A_k, D (D + 1) / 2 <
 * r D. Then Q_k(x) = x'M_k x + b_k'x + c_k and grad Q_k = 2 M_k x + b_k cost
 * D (D + 1) / 2 and D^2 multiply-adds a unit instead of r D each, the map's
 * rank part is 2 (sum_k u_k M_k) x, a D x D matrix a sample, and the
 * backward sweep sums every adjoint of the rank terms into Mbar_k, a D x D
 * matrix a unit, turned into Abar_k = 2 A_k Mbar_k once a block. At D = 2,
 * rank 5, a unit's rank work in a training iteration is 17 multiply-adds a
 * layer where the projections took 85 (the terms both forms share left
 * out). */
static inline int icnn_mform(const icnn_t *net)
{
    return net->D < JKO_SMALL_D && net->D + 1 < 2 * net->r;
}

/* Loops over units k whose each entry sums over d (or j, or samples) in
 * a register: JKO_CHUNKS(k, w, BODY) runs BODY(T, LD, ST) over k in steps
 * of 8 units with T a vector of 8 doubles where the CPU has AVX-512
 * (jko_wide, set at load by jko_kernels_init()), then of 4 units with T a
 * vector of 4, then over the last units with T double (GCC's and clang's
 * vector extension: the arithmetic operators act on each of its lanes, a
 * double operand on all of them), LD(p) and ST(p, v) its unaligned load
 * and store. The loop vectorisers leave a loop over k with inner loops
 * scalar, and the form they vectorise, an inner loop over k updated once
 * per d, loads and stores each entry once per d: at D = 2 to 7 and widths
 * 32 to 64 those stores bounded the hand loops. Every lane does the same
 * arithmetic in the same order whatever the vector's width, so the 8-wide
 * loops give the 4-wide ones' results to the bit. In the x86-64-v4 clone
 * (jko.h) the 8 lanes are one zmm register; elsewhere jko_wide is 0. On an
 * AVX-512 Xeon, that clone with these loops took a training iteration at
 * D = 2, width 64, 6% faster on one thread and 16% on two than the
 * "avx512f" clone with 4-wide loops (medians of 5 alternated runs).
 * Without the extension every unit is scalar. */
#if defined(__GNUC__) || defined(__clang__)
typedef double jko_v4 __attribute__((vector_size(4 * sizeof(double)), aligned(8), may_alias));
typedef double jko_v8 __attribute__((vector_size(8 * sizeof(double)), aligned(8), may_alias));
# define JKO_VL 4
# define JKO_WL 8
#else
typedef double jko_v4;
typedef double jko_v8;
# define JKO_VL 1
# define JKO_WL 1
#endif
extern int jko_wide;
#define JKO_V4_LD(p) (*(const jko_v4 *) (p))
#define JKO_V4_ST(p, v) (*(jko_v4 *) (p) = (v))
#define JKO_V8_LD(p) (*(const jko_v8 *) (p))
#define JKO_V8_ST(p, v) (*(jko_v8 *) (p) = (v))
#define JKO_D_LD(p) (*(p))
#define JKO_D_ST(p, v) (*(p) = (v))
/* Inside a BODY: VT t = sum_d M[stride d] v[d] over d < D, for a unit's
 * entries M of the D columns of a matrix (stride apart) and a vector v. */
#define JKO_COLS(VT, LD, t, M, stride, v, D)                                    \
    VT t = LD(M) * (v)[0];                                                      \
    for (int d_ = 1; d_ < (D); d_++) t += LD((M) + (size_t) (stride) * d_) * (v)[d_]
#define JKO_CHUNKS(k, w, BODY)                                                  \
    do {                                                                        \
        int k = 0;                                                              \
        if (jko_wide)                                                           \
            for (; k + JKO_WL <= (w); k += JKO_WL) BODY(jko_v8, JKO_V8_LD, JKO_V8_ST) \
        for (; k + JKO_VL <= (w); k += JKO_VL) BODY(jko_v4, JKO_V4_LD, JKO_V4_ST) \
        for (; k < (w); k++) BODY(double, JKO_D_LD, JKO_D_ST)                   \
    } while (0)

/* Samples per group in the hand loops of the backward sweep (D below
 * JKO_SMALL_D): a group's terms are summed in registers before each entry
 * of a parameter's adjoint is loaded and stored once. JKO_GROUPED(g, STMT)
 * runs STMT with G_ the group's size g, a constant where the group is
 * full (the compiler then unrolls the loops over its samples). */
#define JKO_GROUP 4
#define JKO_GROUPED(g, STMT)                                                    \
    do {                                                                        \
        if ((g) == JKO_GROUP) { enum { G_ = JKO_GROUP }; STMT }                 \
        else { const int G_ = (g); STMT }                                       \
    } while (0)

/* doubles of per-thread scratch (ws->tmp): hessian_part uses wmax D of it,
 * backward_part at most wmax max(D + 1, JKO_GROUP) (G_i Hbar_i and a
 * w-vector, or a group's w-vectors), D^2 + r D (S_k and A_k S_k) or D^2
 * (chol_inverse's work) at a time; wmax (D + JKO_GROUP) + 2 D^2 + r D is
 * allocated. */
static inline size_t jko_tmp_len(const icnn_t *net)
{
    size_t D = net->D;
    return (size_t) net->wmax * (D + JKO_GROUP) + 2 * D * D + (size_t) net->r * D +
           (icnn_mform(net) ? (size_t) net->wmax * D * D : 0);
}

/* invert.c: x with grad psi(x) = y, by Newton's method with line search */
int icnn_invert(const icnn_t *net, const double *th, const double *Y, int n,
                double tol, int maxit, int nth, double *Xout, double *resid,
                int *iter);

/* Samples a thread passes through forward_part, hessian_part or
 * backward_part at a time (icnn.c): blocks small enough that a block's
 * per-layer arrays stay in cache between the passes over them. The part
 * [i0, i1) goes as blocks [b, b + m): m = icnn_block_len(b, i1, nb). */
int icnn_block(const icnn_t *net);
static inline int icnn_block_len(int b, int i1, int nb)
{
    return i1 - b < nb ? i1 - b : nb;
}

#endif
