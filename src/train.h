/* One JKO step: the loss over a batch and its gradient, and the training
 * loop (design.md, section 1). */
#ifndef JKOFLOW_TRAIN_H
#define JKOFLOW_TRAIN_H
#include "icnn.h"
#include "potentials.h"

/* The loss of an iteration exceeds the first iteration's loss L_1 by more
 * than JKO_DIVERGE_FACTOR * (1 + |L_1|): that batch is an outlier, and its
 * update is skipped. When JKO_DIVERGE_RUN batches in a row are such
 * outliers the training has run away (the first iterate is the previous map,
 * so the loss can only fall in expectation; batch noise is orders of
 * magnitude below this). */
#define JKO_ERR_DIVERGED 4
#define JKO_DIVERGE_FACTOR 1e6
#define JKO_DIVERGE_RUN 5
/* A gradient whose norm exceeds JKO_CLIP times a running reference norm is
 * scaled down to that bound (see jko_train). */
#define JKO_CLIP 10.0

typedef struct {
    double *Y, *phi, *gphi, *ld, *Ybar, *lam, *grad, *Xb;
} jko_buf;

void jko_buf_alloc(const icnn_t *net, jko_buf *b, int n);

/* L = mean_i |y_i - x_i|^2 / (2h) + Phi(y_i) - log det H_i / beta,
 * y = grad psi(x). Fills b->grad; returns a JKO_* status. */
int jko_loss_grad(const icnn_t *net, const double *th, const double *X, int n,
                  icnn_ws *ws, pot_t *pot, double h, double beta, int iter,
                  jko_buf *b, double *loss);

/* iters Adam steps from th (updated in place) on batches taken in turn
 * from the pool (D x npool), the learning rate annealed from lr to lr_end
 * along a half cosine. progress > 0: show "step <progress>: iteration t/T"
 * on the console as the loop goes (overwritten in place). loss (iters) records each iteration's loss.
 * On failure returns the status and sets *fail_iter (1-based). */
int jko_train(const icnn_t *net, double *th, const double *pool, int npool,
              pot_t *pot, double h, double beta, int iters, int batch,
              double lr, double lr_end, int nth, int progress, double *loss,
              int *fail_iter);

#endif
