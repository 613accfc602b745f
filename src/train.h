/* One JKO step: the loss over a batch and its gradient, the training loop,
 * and the step itself (train, then push the pool and the monitor).
 *
 * In the standardised coordinates z = (x - center) / scale of the step's
 * map (map.h) the JKO loss of psi is
 *
 *   L = mean_i |y_i - z_i|^2 / (2 h / scale^2) + Phi(center + scale y_i)
 *       - log det Hess psi(z_i) / beta,     y_i = grad psi(z_i),
 *
 * term by term the loss in x's coordinates, as |T(x) - x| = scale |y - z|.
 * Its cotangents on the map output are
 * ((y_i - z_i) scale^2 / h + scale grad Phi(center + scale y_i)) / n, and
 * -1 / (beta n) on each log-determinant. */
#ifndef JKOFLOW_TRAIN_H
#define JKOFLOW_TRAIN_H
#include "map.h"
#include "potentials.h"
#include "terms.h"

/* The loss of an iteration exceeds the first iteration's loss L_1 by more
 * than JKO_DIVERGE_FACTOR * (1 + |L_1|): that batch is an outlier, and its
 * update is skipped. When JKO_DIVERGE_RUN batches in a row are such
 * outliers the training has run away, JKO_ERR_DIVERGED (the first iterate
 * is the previous map, so the loss can only fall in expectation; batch
 * noise is orders of magnitude below this). */
#define JKO_DIVERGE_FACTOR 1e6
#define JKO_DIVERGE_RUN 5
/* A gradient whose norm exceeds JKO_CLIP times a running reference norm is
 * scaled down to that bound (see jko_train). */
#define JKO_CLIP 10.0
/* Adaptive steps: the window of iterations whose mean loss tells whether
 * the training still makes progress (see jko_train). */
#define JKO_WINDOW 50

typedef struct {
    double h, beta;        /* the JKO step and the inverse temperature      */
    int iters, batch;      /* Adam iterations and samples per iteration     */
    double lr, lr_end;     /* learning rate, annealed along a half cosine   */
    int adaptive;          /* stop when the loss stops falling (jko_train)  */
    int nth;               /* threads                                       */
    int progress;          /* > 0: show "step <progress>: iteration t/T"    */
    double time_limit;     /* seconds the training may take (<= 0 or not
                              finite: no limit); reached, it ends there   */
} jko_settings;

typedef struct {
    double *Y, *Yx, *phi, *gphi, *ld, *Ybar, *lam, *grad, *Xb;
    double *lr, *Lb;   /* log-densities of the pushed points; a batch's
                          log rho_{k-1} where it wraps round the pool   */
} jko_buf;

void jko_buf_alloc(const icnn_t *net, jko_buf *b, int n);

/* The loss above at the standardised batch Z (D x n) for the parameters
 * m->theta; center NULL in m means no change of variables. Fills b->grad;
 * returns a JKO_* status. With a free energy e (terms.h; NULL: the
 * Fokker-Planck one of pot and beta) the loss is instead
 *
 *   mean_i |y_i - z_i|^2 / (2 h / scale^2) + v_i
 *
 * with the terms' per-sample values v_i and their cotangents; lrho (n, or
 * NULL where no term needs it) holds log rho_{k-1} at the batch. */
int jko_loss_grad(const jko_map *m, const double *Z, int n, icnn_ws *ws,
                  jko_pot *pot, jko_energy *e, const double *lrho, double h,
                  double beta, jko_buf *b, double *loss);

/* s->iters Adam steps (with s->adaptive, as many as the loss needs, at
 * most s->iters; within s->time_limit seconds where it is set:
 * *iters_used) from th (updated in place; m->theta must be
 * th) on batches taken in turn from the standardised pool Zp (D x npool).
 * loss (iters) records each iteration's loss; lpool (npool, or NULL) the
 * log-densities of the pool, for a free energy e that needs them. On failure returns the
 * status and sets *fail_iter (1-based). */
int jko_train(const jko_map *m, double *th, const double *Zp, int npool,
              const double *lpool, jko_pot *pot, jko_energy *e,
              const jko_settings *s, double *loss, int *fail_iter, int *iters_used);

/* A whole JKO step: trains th (m->theta must be th) on the pool (D x npool,
 * in x's coordinates), then pushes the pool into pool_out, the monitor
 * samples (D x nmon) into mon_out with their log-densities mon_ld updated
 * in place, and evaluates Phi at them into mon_phi (non-finite values kept;
 * pot->iter is -1 meanwhile). With a free energy e, mon_phi gets instead
 * the terms' per-sample values (their mean is the free energy), and
 * pool_ld (npool log-densities of the pool, or NULL where no term needs
 * them) is carried through the map in place. Returns a JKO_* status; on a
 * training failure nothing is pushed. */
int jko_step(const jko_map *m, double *th, const double *pool, int npool,
             double *pool_ld, double *pool_out, const double *mon, int nmon,
             double *mon_out, double *mon_ld, double *mon_phi, jko_pot *pot,
             jko_energy *e, const jko_settings *s, double *loss, int *fail_iter,
             int *iters_used);

#endif
