/* The BLAS's own thread count. The kernels split a batch over OpenMP
 * threads and call BLAS on each part, so a multi-threaded BLAS must run
 * single-threaded inside them (or the two thread pools fight over the
 * cores). OpenBLAS is asked at run time through its exported
 * openblas_set_num_threads / openblas_get_num_threads, looked up with dlsym
 * so the package links to any BLAS; elsewhere this is a no-op. */
#ifndef _GNU_SOURCE
# define _GNU_SOURCE       /* RTLD_DEFAULT in glibc's dlfcn.h */
#endif
#include <Rinternals.h>
#include "icnn.h"

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

/* What the BLAS says of itself and what the CPU can do, for the advice of
 * R's blas_advice(): list(core = OpenBLAS's kernel set, from its exported
 * openblas_get_corename (NA for another BLAS), avx2, avx512f (NA where
 * the compiler cannot ask the CPU)). */
SEXP C_blas_info(void)
{
    const char *core = NULL;
#ifdef JKO_HAVE_DLSYM
    typedef char *(*name_fn)(void);
    union { void *p; name_fn f; } un;
    un.p = dlsym(RTLD_DEFAULT, "openblas_get_corename");
    if (un.p) core = un.f();
#endif
    int avx2 = NA_LOGICAL, avx512 = NA_LOGICAL;
#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
    __builtin_cpu_init();
    avx2 = __builtin_cpu_supports("avx2") != 0;
    avx512 = __builtin_cpu_supports("avx512f") != 0;
#endif
    SEXP ans = PROTECT(Rf_allocVector(VECSXP, 3)), nm = PROTECT(Rf_allocVector(STRSXP, 3));
    SET_VECTOR_ELT(ans, 0, core ? Rf_mkString(core) : Rf_ScalarString(NA_STRING));
    SET_VECTOR_ELT(ans, 1, Rf_ScalarLogical(avx2));
    SET_VECTOR_ELT(ans, 2, Rf_ScalarLogical(avx512));
    SET_STRING_ELT(nm, 0, Rf_mkChar("core"));
    SET_STRING_ELT(nm, 1, Rf_mkChar("avx2"));
    SET_STRING_ELT(nm, 2, Rf_mkChar("avx512f"));
    Rf_setAttrib(ans, R_NamesSymbol, nm);
    UNPROTECT(2);
    return ans;
}
