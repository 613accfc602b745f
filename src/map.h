/* A map of the flow: the network psi of one JKO step and the affine change
 * of variables z = (x - center) / scale it acts in,
 *
 *   T(x) = center + scale * grad psi((x - center) / scale),
 *
 * the gradient of the convex scale^2 psi((x - center) / scale) + center'x.
 * Its Jacobian is the Hessian of psi at the standardised point, so
 * log det grad T(x) = log det Hess psi(z). The same object serves push
 * (samples and their log-densities), pull (densities at given points) and
 * training (the loss in standardised coordinates, see train.h). */
#ifndef JKOFLOW_MAP_H
#define JKOFLOW_MAP_H

#include "icnn.h"

typedef struct {
    icnn_t net;
    const double *theta;
    const double *center;   /* D */
    double scale;           /* > 0 */
} jko_map;

/* Z = (X - center) / scale and back, for n points (D x n). */
void map_standardise(const jko_map *m, const double *X, int n, double *Z);
void map_unstandardise(const jko_map *m, const double *Z, int n, double *X);

/* Y = T(X) (D x n; Y may be X) and, unless logdet is NULL, subtracts
 * log det grad T(x_i) from logdet[i] (a log-density carried along). Points
 * where the Hessian is not positive definite get NaN there. Returns JKO_OK
 * or JKO_ERR_NOTPD. */
int map_push(const jko_map *m, const double *X, int n, int nth, double *Y,
             double *logdet);

/* Y = T(x) for points given standardised, Z = (x - center) / scale. */
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

#endif
