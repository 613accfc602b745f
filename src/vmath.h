/* e^x and log(1 + e) in operations a compiler vectorises (no call, no
 * branch), for the loops over rows of glm.c and over units of icnn.c.
 *
 * The loops that use them are vectorised by OpenMP's simd only where GCC
 * may assume that floating point comparisons do not trap
 * (-fno-trapping-math: the selections of a clamp or a sign are then made
 * branch-free); this changes no result, only what the compiler may assume
 * of the FP exception flags, which R does not read. The functions here and
 * the loops that call them are compiled under that option, between
 * JKO_VMATH_BEGIN and JKO_VMATH_END (a function compiled under other
 * options is not inlined into them), and cloned by JKO_CLONES (jko.h):
 * its x86-64-v3 clone (AVX2 and FMA) is chosen before "fma"
 * (FMA with AVX but not AVX2, whose 128-bit integers halve the vectors of
 * jko_vexp()'s exponent bits: the logistic rows of glm.c took about 40%
 * less time a row with AVX2 and FMA than with FMA). */
#ifndef JKOFLOW_VMATH_H
#define JKOFLOW_VMATH_H

#include <stdint.h>
#include "jko.h"

#if defined(__GNUC__) && !defined(__clang__)
# define JKO_VMATH_BEGIN _Pragma("GCC push_options") \
                         _Pragma("GCC optimize (\"no-trapping-math\")")
# define JKO_VMATH_END _Pragma("GCC pop_options")
#else
# define JKO_VMATH_BEGIN
# define JKO_VMATH_END
#endif

JKO_VMATH_BEGIN

/* e^x for x in [-708, 709.78] (NaN stays NaN): x = k ln 2 + r,
 * |r| <= ln 2 / 2, k from the round-to-nearest of adding 1.5 * 2^52 (whose
 * low bits are then k), ln 2 in two parts (the first with trailing zeros,
 * so k ln2_hi is exact), the bits read through a union (memcpy would make
 * the loop's locals addressable, which keeps OpenMP's simd from vectorising
 * it), e^r by its Taylor polynomial of degree 13 (remainder below 5e-18
 * relative) and 2^k built in the exponent bits, as 2^(k-1) * 2 so that
 * k = 1024 does not overflow the exponent field. Within 2 ulp of libm's
 * exp. */
static inline double jko_vexp(double x)
{
    const double shift = 0x1.8p52;
    union { double d; uint64_t u; } k, sc;
    k.d = x * 0x1.71547652b82fep0 + shift;
    const uint64_t ki = k.u;
    const double kd = k.d - shift;
    double r = (x - kd * 0x1.62e42fefa3800p-1) - kd * 0x1.ef35793c7673p-45;
    double q = 1.0 / 6227020800.0;               /* 1/13! */
    q = q * r + 1.0 / 479001600.0;
    q = q * r + 1.0 / 39916800.0;
    q = q * r + 1.0 / 3628800.0;
    q = q * r + 1.0 / 362880.0;
    q = q * r + 1.0 / 40320.0;
    q = q * r + 1.0 / 5040.0;
    q = q * r + 1.0 / 720.0;
    q = q * r + 1.0 / 120.0;
    q = q * r + 1.0 / 24.0;
    q = q * r + 1.0 / 6.0;
    q = q * r + 0.5;
    q = q * r + 1.0;
    q = q * r + 1.0;
    sc.u = (ki + 1022) << 52;
    return q * sc.d * 2.0;
}

/* log(1 + e) for e in [0, 1]: 2 atanh(u), u = e / (2 + e) in [0, 1/3], by
 * its series 2u (1 + u^2/3 + u^4/5 + ...) to u^34 (the rest below 2e-18
 * relative, u^2 <= 1/9): relative error a few ulp, small e kept exactly
 * (no 1 + e is formed). */
static inline double jko_vlog1p01(double e)
{
    const double u = e / (2.0 + e), v = u * u;
    double q = 2.0 / 35;
    q = q * v + 2.0 / 33; q = q * v + 2.0 / 31; q = q * v + 2.0 / 29;
    q = q * v + 2.0 / 27; q = q * v + 2.0 / 25; q = q * v + 2.0 / 23;
    q = q * v + 2.0 / 21; q = q * v + 2.0 / 19; q = q * v + 2.0 / 17;
    q = q * v + 2.0 / 15; q = q * v + 2.0 / 13; q = q * v + 2.0 / 11;
    q = q * v + 2.0 / 9;  q = q * v + 2.0 / 7;  q = q * v + 2.0 / 5;
    q = q * v + 2.0 / 3;  q = q * v + 2.0;
    return u * q;
}

JKO_VMATH_END

#endif
