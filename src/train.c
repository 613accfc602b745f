/* The JKO step (train.h): loss, gradient, the Adam loop over a pool of
 * samples of rho_{k-1}, and the step that trains and then pushes the pool
 * once, so that the cost of a step does not grow with the number of
 * earlier steps. */
#include <R.h>
#include <R_ext/Utils.h>
#include <math.h>
#include <string.h>
#include <time.h>
#include "jko.h"
#include "adam.h"
#include "train.h"

void jko_buf_alloc(const icnn_t *net, jko_buf *b, int n)
{
    size_t Dn = (size_t) net->D * n;
    b->Y = (double *) R_alloc(Dn, sizeof(double));
    b->Yx = (double *) R_alloc(Dn, sizeof(double));
    b->gphi = (double *) R_alloc(Dn, sizeof(double));
    b->Ybar = (double *) R_alloc(Dn, sizeof(double));
    b->Xb = (double *) R_alloc(Dn, sizeof(double));
    b->phi = (double *) R_alloc(n, sizeof(double));
    b->ld = (double *) R_alloc(n, sizeof(double));
    b->lam = (double *) R_alloc(n, sizeof(double));
    b->grad = (double *) R_alloc(net->npar, sizeof(double));
    b->lr = (double *) R_alloc(n, sizeof(double));
    b->Lb = (double *) R_alloc(n, sizeof(double));
}

/* The terms of a free energy at the pushed points Yx (x's coordinates):
 * per-sample values into b->phi, gradients (x's coordinates) into b->gphi,
 * log-determinant cotangents (n times the loss's) into b->lam. */
static int energy_terms(jko_energy *e, const double *Yx, const double *lrho, int n,
                        int D, double beta, int nth, int iter, jko_buf *b)
{
    memset(b->gphi, 0, (size_t) D * n * sizeof(double));
    for (int i = 0; i < n; i++) b->phi[i] = b->lam[i] = 0;
    if (lrho) for (int i = 0; i < n; i++) b->lr[i] = lrho[i] - b->ld[i];
    term_batch tb = {D, n, Yx, b->ld, lrho ? b->lr : NULL, beta, nth, iter};
    return energy_eval(e, &tb, b->phi, b->gphi, b->lam);
}

int jko_loss_grad(const jko_map *m, const double *Z, int n, icnn_ws *ws,
                  jko_pot *pot, jko_energy *e, const double *lrho, double h,
                  double beta, jko_buf *b, double *loss)
{
    const icnn_t *net = &m->net;
    const int D = net->D;
    const double *th = m->theta;
    icnn_prepare(net, th, ws);
    icnn_forward(net, th, Z, n, ws, NULL, b->Y);
    int st = icnn_hessian(net, th, Z, n, ws, b->ld);
    if (st) return st;
    /* Phi and its gradient at the pushed points in x's coordinates: x =
     * center + L y, grad_y Phi = L' grad_x Phi. With L = scale I the metric
     * is x's own (h / scale^2 in y); with a full L it is y's (the
     * whitened flow, whose time is not x's but whose stationary law is). */
    const double *Yx = b->Y;
    if (m->center) {
        if (!m->L) h /= m->scale * m->scale;
        map_unstandardise(m, b->Y, n, b->Yx);
        Yx = b->Yx;
    }
    st = e ? energy_terms(e, Yx, lrho, n, D, beta, ws->nth, pot->iter, b)
           : pot_eval(pot, Yx, n, b->phi, b->gphi);
    if (st) return st;
    if (m->center && !m->L) {
        for (size_t q = 0; q < (size_t) D * n; q++) b->gphi[q] *= m->scale;
    } else if (m->L) {
        for (int i = 0; i < n; i++) {
            double *g = b->gphi + (size_t) D * i;
            /* g <- L' g, top row first: row d uses g[d..D-1] */
            for (int d = 0; d < D; d++) {
                double t = 0;
                for (int e = d; e < D; e++) t += m->L[e + (size_t) D * d] * g[e];
                g[d] = t;
            }
        }
    }
    double tot = 0;
    for (int i = 0; i < n; i++) {
        const double *x = Z + (size_t) D * i, *y = b->Y + (size_t) D * i;
        double *yb = b->Ybar + (size_t) D * i, *g = b->gphi + (size_t) D * i;
        double dd = 0;
        for (int d = 0; d < D; d++) {
            double t = y[d] - x[d];
            dd += t * t;
            yb[d] = (t / h + g[d]) / n;
        }
        if (e) {
            tot += 0.5 * dd / h + b->phi[i];
            b->lam[i] /= n;
        } else {
            tot += 0.5 * dd / h + b->phi[i] - b->ld[i] / beta;
            b->lam[i] = -1.0 / (beta * n);
        }
    }
    *loss = tot / n;
    if (!isfinite(*loss)) return JKO_ERR_NONFINITE;
    icnn_backward(net, th, Z, n, ws, b->Ybar, b->lam, b->grad);
    for (size_t q = 0; q < net->npar; q++)
        if (!isfinite(b->grad[q])) return JKO_ERR_NONFINITE;
    return JKO_OK;
}

/* mean and variance of x[0..n-1] */
static void mean_var(const double *x, int n, double *mean, double *var)
{
    double m = 0, v = 0;
    for (int i = 0; i < n; i++) m += x[i];
    m /= n;
    for (int i = 0; i < n; i++) v += (x[i] - m) * (x[i] - m);
    *mean = m;
    *var = n > 1 ? v / (n - 1) : 0;
}

/* Wall-clock seconds from an arbitrary origin (for the time limit). */
static double wall_seconds(void)
{
#ifdef CLOCK_MONOTONIC
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double) ts.tv_sec + 1e-9 * (double) ts.tv_nsec;
#else
    return (double) time(NULL);
#endif
}

int jko_train(const jko_map *m, double *th, const double *Zp, int npool,
              const double *lpool, jko_pot *pot, jko_energy *e,
              const jko_settings *s, double *loss, int *fail_iter, int *iters_used)
{
    const icnn_t *net = &m->net;
    const int D = net->D, iters = s->iters, batch = s->batch;
    icnn_ws ws;
    jko_buf b;
    adam_t opt;
    icnn_ws_alloc(net, &ws, batch, 2, s->nth);
    jko_buf_alloc(net, &b, batch);
    adam_init(&opt, net->npar, s->lr);
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
    /* The learning rate: annealed along a half cosine from lr to lr_end over
     * the iterations; with s->adaptive, held at lr until the loss stops
     * falling (the mean of its last JKO_WINDOW values within two standard
     * errors of the window's before), then annealed over a tail of
     * max(JKO_WINDOW, iters / 5) iterations, which ends the step. */
    const int tail = s->adaptive ? (iters / 5 > JKO_WINDOW ? iters / 5 : JKO_WINDOW) : iters;
    int anneal0 = s->adaptive ? -1 : 0, stop = iters;
    if (s->adaptive && tail >= iters) anneal0 = 0;
    /* The time limit (a flow's max_time, less what its earlier steps took)
     * ends the training where it is reached, with the map of that
     * iteration, as the adaptive rule ends a step at its last iteration. */
    const int timed = s->time_limit > 0 && isfinite(s->time_limit);
    const double t_end = timed ? wall_seconds() + s->time_limit : 0;
    for (int t = 0; t < stop; t++) {
        R_CheckUserInterrupt();
        size_t start = ((size_t) t * batch) % (size_t) npool;
        const double *X = Zp + (size_t) D * start;
        const double *lr = lpool ? lpool + start : NULL;
        if (start + batch > (size_t) npool) {
            for (int i = 0; i < batch; i++)
                memcpy(b.Xb + (size_t) D * i,
                       Zp + (size_t) D * ((start + i) % npool), D * sizeof(double));
            X = b.Xb;
            if (lpool) {
                for (int i = 0; i < batch; i++) b.Lb[i] = lpool[(start + i) % npool];
                lr = b.Lb;
            }
        }
        pot->iter = t + 1;
        int st = jko_loss_grad(m, X, batch, &ws, pot, e, lr, s->h, s->beta, &b, loss + t);
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
        for (size_t q = 0; q < net->npar; q++) gn += b.grad[q] * b.grad[q];
        gn = sqrt(gn);
        if (gref <= 0) gref = gn;   /* the first (nonzero) norm */
        if (gn > JKO_CLIP * gref) {
            const double f = JKO_CLIP * gref / gn;
            for (size_t q = 0; q < net->npar; q++) b.grad[q] *= f;
            gn = JKO_CLIP * gref;
        }
        gref = 0.9 * gref + 0.1 * gn;
        if (anneal0 < 0) {
            int plateau = t + 1 >= iters - tail;
            if (!plateau && (t + 1) % JKO_WINDOW == 0 && t + 1 >= 2 * JKO_WINDOW) {
                double m1, v1, m2, v2;
                mean_var(loss + t + 1 - 2 * JKO_WINDOW, JKO_WINDOW, &m1, &v1);
                mean_var(loss + t + 1 - JKO_WINDOW, JKO_WINDOW, &m2, &v2);
                plateau = m1 - m2 < 2.0 * sqrt((v1 + v2) / JKO_WINDOW);
            }
            if (plateau) {
                anneal0 = t + 1;
                stop = anneal0 + tail < iters ? anneal0 + tail : iters;
            }
        }
        /* annealing: the last iterations average out the batch noise */
        if (anneal0 < 0 || t < anneal0) {
            opt.lr = s->lr;
        } else {
            int len = stop - anneal0;
            opt.lr = s->lr_end + 0.5 * (s->lr - s->lr_end) *
                     (1.0 + cos(M_PI * (t - anneal0) / (len > 1 ? len - 1 : 1)));
        }
        adam_step(&opt, th, b.grad);
        icnn_project(net, th);
        for (size_t q = 0; q < net->npar; q++)
            if (!isfinite(th[q])) { *fail_iter = t + 1; return JKO_ERR_NONFINITE; }
        if (timed && t + 1 < stop && wall_seconds() >= t_end) stop = t + 1;
        if (s->progress > 0 && ((t + 1) % tick == 0 || t + 1 == iters)) {
            REprintf("\rstep %3d: iteration %d/%d, loss %.5g   ", s->progress, t + 1,
                     stop, loss[t]);
            R_FlushConsole();
        }
    }
    if (s->progress > 0) REprintf("\r%60s\r", "");
    *iters_used = stop;
    return JKO_OK;
}

int jko_step(const jko_map *m, double *th, const double *pool, int npool,
             double *pool_ld, double *pool_out, const double *mon, int nmon,
             double *mon_out, double *mon_ld, double *mon_phi, jko_pot *pot,
             jko_energy *e, const jko_settings *s, double *loss, int *fail_iter,
             int *iters_used)
{
    const int D = m->net.D;
    /* the pool in the step's coordinates, once; pushed in place after */
    double *Zp = (double *) R_alloc((size_t) D * npool, sizeof(double));
    map_standardise(m, pool, npool, Zp);
    int st = jko_train(m, th, Zp, npool, pool_ld, pot, e, s, loss, fail_iter, iters_used);
    if (st) return st;
    *fail_iter = 0;
    if (pool_ld) {
        /* the log-densities of the pool go with it: the Hessians too */
        st = map_push(m, pool, npool, s->nth, pool_out, pool_ld);
        if (st) return st;
    } else {
        /* the pool is already in the step's coordinates */
        map_push_standardised(m, Zp, npool, s->nth, pool_out);
    }
    R_CheckUserInterrupt();
    st = map_push(m, mon, nmon, s->nth, mon_out, mon_ld);
    if (st) return st;
    pot->iter = -1;
    if (e) {
        /* the free energy's per-sample values (non-finite values kept) */
        for (int i = 0; i < nmon; i++) mon_phi[i] = 0;
        term_batch tb = {D, nmon, mon_out, NULL, mon_ld, s->beta, s->nth, -1};
        energy_eval(e, &tb, mon_phi, NULL, NULL);
        return JKO_OK;
    }
    pot_eval(pot, mon_out, nmon, mon_phi, NULL);   /* non-finite values kept */
    return JKO_OK;
}
