/* A map of the flow: the network psi of one JKO step and the affine change
 * of variables z = L^{-1} (x - center) it acts in,
 *
 *   T(x) = center + L grad psi(L^{-1} (x - center)),
 *
 * with L = scale I (isotropic: T is the gradient of the convex
 * scale^2 psi((x - center) / scale) + center'x, an optimal transport map, as
 * the time-accurate Fokker-Planck flow needs) or L a lower-triangular
 * Cholesky factor of a covariance (whitened: each step of a flow that only
 * has to reach its stationary law sees that law with unit scales and no
 * correlations). Either way the Jacobian L Hess psi(z) L^{-1} has the
 * log-determinant of Hess psi(z), so densities are carried exactly. The
 * same object serves push (samples and their log-densities), pull
 * (densities at given points) and training (the loss in the standardised
 * coordinates, see train.h). */
#ifndef JKOFLOW_MAP_H
#define JKOFLOW_MAP_H

#include "icnn.h"

/* Points per pass of push and pull: bounds the workspace, whose Jacobian
 * blocks grow as width x D x n; an interrupt is checked for between
 * passes. */
#define MAP_CHUNK 2048

typedef struct {
    icnn_t net;
    const double *theta;
    const double *center;   /* D */
    const double *L;        /* D x D lower triangular, or NULL: scale I    */
    double scale;           /* > 0; with L, max_i sum_j |L_ij| (the bound
                               on |L v| for |v| <= 1 in the max norm)      */
} jko_map;

/* Z = L^{-1} (X - center) and back, for n points (D x n). */
void map_standardise(const jko_map *m, const double *X, int n, double *Z);
void map_unstandardise(const jko_map *m, const double *Z, int n, double *X);

/* Y = T(X) (D x n; Y may be X) and, unless logdet is NULL, subtracts
 * log det grad T(x_i) from logdet[i] (a log-density carried along). Points
 * where the Hessian is not positive definite get NaN there. Returns JKO_OK
 * or JKO_ERR_NOTPD. */
int map_push(const jko_map *m, const double *X, int n, int nth, double *Y,
             double *logdet);

/* Y = T(x) for points given standardised, Z = L^{-1} (x - center). */
void map_push_standardised(const jko_map *m, const double *Z, int n, int nth,
                           double *Y);

/* X = T^{-1}(Y) by Newton's method (tol on max |T(x) - y|, in the units of
 * y), resid (n) the residuals; then subtracts log det grad T(x_i) from
 * logdet[i]. Points where a Hessian is not positive definite (on the way,
 * for a whole chunk of MAP_CHUNK points, or at the point found) get NaN
 * there. Returns JKO_OK or JKO_ERR_NOTPD. */
int map_pull(const jko_map *m, const double *Y, int n, double tol, int maxit,
             int nth, double *X, double *resid, double *logdet);

/* Centre (the mean) and scale (one number: sqrt of the mean over
 * coordinates of the variances) of n points X (D x n), the affine map of a
 * step that takes them as its input. Long double sums in R's own order, so
 * that the result equals R's rowMeans() and mean(rowSums((x - c)^2)) / (n - 1).
 * A scale that is not positive and finite is 1. */
void map_moments(const double *X, int D, int n, double *center, double *scale);

/* The same centre and L (D x D, lower) the Cholesky factor of the sample
 * covariance; where that is not positive definite (degenerate points), the
 * square roots of the variances on the diagonal, and where those vanish,
 * the isotropic scale. Returns the max-norm bound of L (see jko_map). */
double map_moments_full(const double *X, int D, int n, double *center, double *L);

/* max_i sum_j |L_ij| */
double map_L_norm(const double *L, int D);

#endif
