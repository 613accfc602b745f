/* What every file of the core shares: the status codes that the cores
 * return (api.c turns them into words, R into messages), and the one module
 * for threads: how many a call may use (threads.c), the BLAS's own thread
 * count (blas_threads.c), how a batch is split among threads, and the
 * SIMD and multi-versioning hints of the per-sample loops. */
#ifndef JKOFLOW_JKO_H
#define JKOFLOW_JKO_H

#ifdef _OPENMP
#include <omp.h>
#endif

enum {
    JKO_OK = 0,
    JKO_ERR_NONFINITE = 1,   /* a non-finite value where a finite one is needed */
    JKO_ERR_NOTPD = 2,       /* a Hessian that is not positive definite */
    JKO_ERR_DIVERGED = 4,    /* a training run away (train.h) */
    JKO_ERR_DATA = 5,        /* an R object whose data do not fit its kind or
                                the points: the setups say what, in words */
    JKO_ERR_SIZE = 6         /* a size beyond what can be allocated or
                                indexed */
};

/* The length of the messages that setups write for JKO_ERR_DATA; the .Call
 * wrappers turn them into R errors. */
#define JKO_ERRLEN 512

/* Points that a long loop over a batch handles between two checks for a
 * user interrupt (R_CheckUserInterrupt, outside parallel regions; it
 * longjmps, so all scratch is R_alloc'ed or protected). Chunks never
 * change the arithmetic: each point's result is computed alone. */
#define JKO_CHUNK 16384

/* threads.c: the number of OpenMP threads a call may use (1 in a forked
 * child, at most OMP_THREAD_LIMIT), and the fork handler that knows. */
int jko_threads(int requested);
void jko_threads_init(void);

/* blas_threads.c: the BLAS's own thread count (OpenBLAS), so that the
 * kernels, which split the batch over OpenMP threads and call BLAS on each
 * part, run the BLAS single-threaded inside; returns the previous count, or
 * 0 where the BLAS offers no such control. */
int jko_blas_set_threads(int n);
/* OpenBLAS's thread count, 0 for another BLAS. */
int jko_blas_get_threads(void);
/* The threads, of nt about to run BLAS in a parallel region, whose BLAS
 * work buffers (OpenBLAS maps one for each thread that needs one, and
 * retries a failed mapping for ever) fit in the address space left: nt
 * unless a limit is set (ulimit -v or -d, strict overcommit) and the room
 * is short, else fewer, at least 1. jko_blas_room_cut() returns the
 * smallest number granted below what was asked (its count in *asked)
 * since it was last called, or 0 if none was cut, and starts afresh. */
int jko_blas_room(int nt);
int jko_blas_room_cut(int *asked);
const char *jko_blas_core(void);
void jko_cpu_features(int *avx2, int *avx512f);
void jko_kernels_init(void);
int jko_wide_supported(void);

/* Vectorise the loop that follows (the loops over units k run over
 * contiguous memory with no dependence between iterations). */
#ifdef _OPENMP
# define JKO_SIMD _Pragma("omp simd")
# define JKO_PRAGMA(x) _Pragma(#x)
# define JKO_SIMD_SUM(t) JKO_PRAGMA(omp simd reduction(+:t))
#else
# define JKO_SIMD
# define JKO_SIMD_SUM(t)
#endif

/* sum_k a_k b_k over k < n, vectorised (inlined into the callers' clones) */
static inline double jko_dot(const double *a, const double *b, int n)
{
    double t = 0;
    JKO_SIMD_SUM(t)
    for (int k = 0; k < n; k++) t += a[k] * b[k];
    return t;
}

/* The hand-written per-sample loops are compiled several times on x86-64
 * Linux with GCC >= 6 (function multi-versioning, an ifunc choosing at load
 * time by the CPU): with GCC >= 12 "arch=x86-64-v4" (AVX-512 F, VL, BW, DQ
 * and CD with FMA: the 8-wide loops of JKO_CHUNKS (icnn.h) in one zmm
 * register, and every multiply-add fused, as in "arch=x86-64-v3"), before
 * GCC 12 "avx512f" (which with GCC implies AVX2 and AVX but not FMA: its
 * 4-wide vectors were multiplied and added apart), with GCC >= 12
 * "arch=x86-64-v3" (AVX2 and FMA: 256-bit integer lanes besides, for
 * vmath.h's exponent bits), "fma" (FMA and AVX, not AVX2) and "default"
 * (the baseline ISA of R's flags, SSE2). A cloned function calls the clone
 * of its own target of a cloned callee, so every kernel carries the same
 * list. Elsewhere this is empty and the baseline code is used.
 * JKO_CLONES_V4: whether an x86-64-v4 clone exists (jko_kernels_init()). */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && \
    defined(__linux__) && (__GNUC__ >= 12)
# define JKO_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "fma", "default")))
# define JKO_CLONES_V4 1
#elif defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && \
    defined(__linux__) && (__GNUC__ >= 6)
# define JKO_CLONES __attribute__((target_clones("avx512f", "fma", "default")))
#else
# define JKO_CLONES
#endif
#ifndef JKO_CLONES_V4
# define JKO_CLONES_V4 0
#endif

/* The part [*i0, *i1) of samples 0..n-1 that thread t of nt works on. */
static inline void jko_chunk(int n, int t, int nt, int *i0, int *i1)
{
    int q = n / nt, rem = n % nt;
    *i0 = t * q + (t < rem ? t : rem);
    *i1 = *i0 + q + (t < rem);
}

static inline int jko_thread_num(void)
{
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

/* threads actually used for n samples */
static inline int jko_nthreads(int nth, int n)
{
    if (nth > n) nth = n;
    return nth < 1 ? 1 : nth;
}

#endif
