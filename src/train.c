/* The JKO step: loss, gradient and the Adam loop over a pool of samples of
 * rho_{k-1}. The pool is pushed through each new map once per step by the
 * caller, so the cost of a step does not grow with the number of earlier
 * steps. */
#include <R.h>
#include <R_ext/Utils.h>
#include <math.h>
#include <string.h>
#include "train.h"
#include "adam.h"

void jko_buf_alloc(const icnn_t *net, jko_buf *b, int n)
{
    size_t Dn = (size_t) net->D * n;
    b->Y = (double *) R_alloc(Dn, sizeof(double));
    b->gphi = (double *) R_alloc(Dn, sizeof(double));
    b->Ybar = (double *) R_alloc(Dn, sizeof(double));
    b->Xb = (double *) R_alloc(Dn, sizeof(double));
    b->phi = (double *) R_alloc(n, sizeof(double));
    b->ld = (double *) R_alloc(n, sizeof(double));
    b->lam = (double *) R_alloc(n, sizeof(double));
    b->grad = (double *) R_alloc(net->npar, sizeof(double));
}

int jko_loss_grad(const icnn_t *net, const double *th, const double *X, int n,
                  icnn_ws *ws, pot_t *pot, double h, double beta, int iter,
                  jko_buf *b, double *loss)
{
    const int D = net->D;
    icnn_forward(net, th, X, n, ws, NULL, b->Y);
    int st = icnn_hessian(net, th, X, n, ws, b->ld);
    if (st) return st;
    st = pot_eval(pot, b->Y, n, b->phi, b->gphi, iter);
    if (st) return st;
    double tot = 0;
    for (int i = 0; i < n; i++) {
        const double *x = X + (size_t) D * i, *y = b->Y + (size_t) D * i;
        double *yb = b->Ybar + (size_t) D * i, *g = b->gphi + (size_t) D * i;
        double dd = 0;
        for (int d = 0; d < D; d++) {
            double t = y[d] - x[d];
            dd += t * t;
            yb[d] = (t / h + g[d]) / n;
        }
        tot += 0.5 * dd / h + b->phi[i] - b->ld[i] / beta;
        b->lam[i] = -1.0 / (beta * n);
    }
    *loss = tot / n;
    if (!isfinite(*loss)) return JKO_ERR_NONFINITE;
    icnn_backward(net, th, X, n, ws, b->Ybar, b->lam, b->grad);
    for (size_t m = 0; m < net->npar; m++)
        if (!isfinite(b->grad[m])) return JKO_ERR_NONFINITE;
    return JKO_OK;
}

int jko_train(const icnn_t *net, double *th, const double *pool, int npool,
              pot_t *pot, double h, double beta, int iters, int batch,
              double lr, double lr_end, int nth, int progress, double *loss,
              int *fail_iter)
{
    const int D = net->D;
    icnn_ws ws;
    jko_buf b;
    adam_t opt;
    icnn_ws_alloc(net, &ws, batch, 2, nth);
    jko_buf_alloc(net, &b, batch);
    adam_init(&opt, net->npar, lr);
    const int tick = iters >= 20 ? iters / 20 : 1;
    /* Outlying batches. A heavy-tailed rho_{k-1} (a diffuse prior) now and
     * then puts in a batch a sample that the current map sends far out, with
     * a loss and a gradient orders of magnitude above the others. Taken as
     * is, one such gradient fills Adam's second moments, which decay as
     * 0.999^t, and stalls the training for thousands of iterations. So a
     * batch whose loss passes the divergence bound is skipped, and a
     * gradient norm above JKO_CLIP times a running reference (an average of
     * the clipped norms) is scaled down to that bound. Neither happens in a
     * well-behaved step. */
    double gref = 0;
    int outliers = 0;
    for (int t = 0; t < iters; t++) {
        R_CheckUserInterrupt();
        size_t start = ((size_t) t * batch) % (size_t) npool;
        const double *X = pool + (size_t) D * start;
        if (start + batch > (size_t) npool) {
            for (int i = 0; i < batch; i++)
                memcpy(b.Xb + (size_t) D * i,
                       pool + (size_t) D * ((start + i) % npool), D * sizeof(double));
            X = b.Xb;
        }
        int st = jko_loss_grad(net, th, X, batch, &ws, pot, h, beta, t + 1, &b,
                               loss + t);
        /* a non-finite loss after the first iteration is an outlier too */
        if (st && !(st == JKO_ERR_NONFINITE && t > 0)) { *fail_iter = t + 1; return st; }
        if (st || loss[t] - loss[0] > JKO_DIVERGE_FACTOR * (1.0 + fabs(loss[0]))) {
            if (++outliers >= JKO_DIVERGE_RUN) {
                *fail_iter = t + 1;
                return st ? st : JKO_ERR_DIVERGED;
            }
            continue;
        }
        outliers = 0;
        double gn = 0;
        for (size_t m = 0; m < net->npar; m++) gn += b.grad[m] * b.grad[m];
        gn = sqrt(gn);
        if (gref <= 0) gref = gn;   /* the first (nonzero) norm */
        if (gn > JKO_CLIP * gref) {
            const double f = JKO_CLIP * gref / gn;
            for (size_t m = 0; m < net->npar; m++) b.grad[m] *= f;
            gn = JKO_CLIP * gref;
        }
        gref = 0.9 * gref + 0.1 * gn;
        /* annealing: the last iterations average out the batch noise */
        opt.lr = lr_end + 0.5 * (lr - lr_end) *
                 (1.0 + cos(M_PI * t / (iters > 1 ? iters - 1 : 1)));
        adam_step(&opt, th, b.grad);
        icnn_project(net, th);
        for (size_t m = 0; m < net->npar; m++)
            if (!isfinite(th[m])) { *fail_iter = t + 1; return JKO_ERR_NONFINITE; }
        if (progress > 0 && ((t + 1) % tick == 0 || t + 1 == iters)) {
            REprintf("\rstep %3d: iteration %d/%d, loss %.5g   ", progress, t + 1,
                     iters, loss[t]);
            R_FlushConsole();
        }
    }
    if (progress > 0) REprintf("\r%60s\r", "");
    return JKO_OK;
}
