/* Scalar numerics shared by the kernels and the potentials, each in one
 * place so that every caller does the same floating point operations. */
#ifndef JKOFLOW_NUMERICS_H
#define JKOFLOW_NUMERICS_H

#include <math.h>

/* log(1 + e^s), without overflow for large s and without losing small
 * values for very negative s. */
static inline double jko_log1p_exp(double s)
{
    return s > 0 ? s + log1p(exp(-s)) : log1p(exp(s));
}

/* softplus(s) = log(1 + e^s): the same function under its activation name */
static inline double jko_softplus(double s)
{
    return jko_log1p_exp(s);
}

/* The logistic 1 / (1 + e^{-s}) = softplus'(s), with exp of a non-positive
 * argument only. */
static inline double jko_sigmoid(double s)
{
    return s >= 0 ? 1.0 / (1.0 + exp(-s)) : exp(s) / (1.0 + exp(s));
}

#endif
