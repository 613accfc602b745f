/* The BLAS's own thread count. The kernels split a batch over OpenMP
 * threads and call BLAS on each part, so a multi-threaded BLAS must run
 * single-threaded inside them (or the two thread pools fight over the
 * cores). OpenBLAS is asked at run time through its exported
 * openblas_set_num_threads / openblas_get_num_threads, looked up with dlsym
 * so the package links to any BLAS; elsewhere this is a no-op. The same
 * lookup gives OpenBLAS's kernel set, for the start-up advice. */
#ifndef _GNU_SOURCE
# define _GNU_SOURCE       /* RTLD_DEFAULT in glibc's dlfcn.h */
#endif
#include <stddef.h>
#include <R_ext/Arith.h>   /* NA_LOGICAL */
#include "jko.h"

#if !defined(_WIN32) && defined(__has_include)
# if __has_include(<dlfcn.h>)
#  include <dlfcn.h>
#  ifdef RTLD_DEFAULT
#   define JKO_HAVE_DLSYM 1
#  endif
# endif
#endif

typedef void (*set_fn)(int);
typedef int (*get_fn)(void);

int jko_blas_set_threads(int n)
{
#ifdef JKO_HAVE_DLSYM
    static int looked = 0;
    static set_fn set = NULL;
    static get_fn get = NULL;
    if (!looked) {
        /* object pointers from dlsym converted through a union: ISO C has
         * no direct conversion to a function pointer */
        union { void *p; set_fn f; } us;
        union { void *p; get_fn f; } ug;
        us.p = dlsym(RTLD_DEFAULT, "openblas_set_num_threads");
        ug.p = dlsym(RTLD_DEFAULT, "openblas_get_num_threads");
        set = us.f; get = ug.f;
        looked = 1;
    }
    if (!set || !get || n < 1) return 0;
    int old = get();
    if (old != n) set(n);
    return old;
#else
    (void) n;
    return 0;
#endif
}

/* OpenBLAS's name for the kernels it runs ("Prescott", "SkylakeX", ...),
 * from its exported openblas_get_corename; NULL for another BLAS. */
const char *jko_blas_core(void)
{
#ifdef JKO_HAVE_DLSYM
    typedef char *(*name_fn)(void);
    union { void *p; name_fn f; } un;
    un.p = dlsym(RTLD_DEFAULT, "openblas_get_corename");
    if (un.p) return un.f();
#endif
    return NULL;
}

/* Whether the CPU has AVX2 and AVX-512F (NA_LOGICAL each where the
 * compiler cannot ask it). */
void jko_cpu_features(int *avx2, int *avx512f)
{
    *avx2 = *avx512f = NA_LOGICAL;
#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
    __builtin_cpu_init();
    *avx2 = __builtin_cpu_supports("avx2") != 0;
    *avx512f = __builtin_cpu_supports("avx512f") != 0;
#endif
}
