/* The BLAS's own thread count. The kernels split a batch over OpenMP
 * threads and call BLAS on each part, so a multi-threaded BLAS must run
 * single-threaded inside them (or the two thread pools fight over the
 * cores). OpenBLAS is asked at run time through its exported
 * openblas_set_num_threads / openblas_get_num_threads, looked up with dlsym
 * so the package links to any BLAS; elsewhere this is a no-op. The same
 * lookup gives OpenBLAS's kernel set, for the start-up advice.
 *
 * And the address space its threads need. Each thread that runs an
 * OpenBLAS level-3 routine while another does needs a work buffer of its
 * own, mapped on first use (BUFFER_SIZE, 128 MiB on x86-64), and OpenBLAS
 * retries a mapping that fails for ever (blas_memory_alloc): under an
 * address-space limit (ulimit -v) a parallel region whose threads need new
 * buffers hung, deaf to interrupts (gdb: the main thread in mmap of
 * 134217728 bytes under blas_memory_alloc, from dgemm in backward_part).
 * So before each parallel region that calls BLAS, where a limit is set,
 * the kernels ask jko_blas_room() how many threads' buffers fit; threads
 * that ran such a region before have theirs, and are not asked about. */
#ifndef _GNU_SOURCE
# define _GNU_SOURCE       /* RTLD_DEFAULT in glibc's dlfcn.h */
#endif
#include <stddef.h>
#include <stdio.h>
#include <R_ext/Arith.h>   /* NA_LOGICAL */
#include "jko.h"

#if !defined(_WIN32) && defined(__has_include)
# if __has_include(<dlfcn.h>)
#  include <dlfcn.h>
#  ifdef RTLD_DEFAULT
#   define JKO_HAVE_DLSYM 1
#  endif
# endif
# if __has_include(<sys/mman.h>) && __has_include(<sys/resource.h>)
#  include <sys/mman.h>
#  include <sys/resource.h>
#  ifdef MAP_ANONYMOUS
#   define JKO_HAVE_MMAP 1
#  endif
# endif
#endif

typedef void (*set_fn)(int);
typedef int (*get_fn)(void);

static set_fn blas_set = NULL;
static get_fn blas_get = NULL;

/* OpenBLAS's thread controls, looked up once; 0 for another BLAS */
static int openblas(void)
{
#ifdef JKO_HAVE_DLSYM
    static int looked = 0;
    if (!looked) {
        /* object pointers from dlsym converted through a union: ISO C has
         * no direct conversion to a function pointer */
        union { void *p; set_fn f; } us;
        union { void *p; get_fn f; } ug;
        us.p = dlsym(RTLD_DEFAULT, "openblas_set_num_threads");
        ug.p = dlsym(RTLD_DEFAULT, "openblas_get_num_threads");
        blas_set = us.f; blas_get = ug.f;
        looked = 1;
    }
#endif
    return blas_set && blas_get;
}

int jko_blas_set_threads(int n)
{
    if (!openblas() || n < 1) return 0;
    int old = blas_get();
    if (old != n) blas_set(n);
    return old;
}

int jko_blas_get_threads(void)
{
    return openblas() ? blas_get() : 0;
}

/* The address space a thread takes when it first runs OpenBLAS in a
 * parallel region: its work buffer (BUFFER_SIZE, 32 << 22 bytes on x86-64),
 * and for a new OpenMP thread its stack and malloc arena. Measured: 139 MB
 * more after the first matrix product, 173 MB more after the first 2-thread
 * fit (VmSize). */
#define JKO_THREAD_ROOM ((size_t) 192 << 20)
#define JKO_BLAS_BUFFER ((size_t) 129 << 20)   /* the main thread's: buffer only */

/* threads that have run a parallel region with BLAS in it: their buffers
 * and stacks exist (OpenBLAS and libgomp keep them) */
static int proven = 0;

/* the smallest room granted since jko_blas_room_cut() was last called, and
 * the threads asked for then; 0 if none was cut */
static int room_asked = 0, room_granted = 0;

/* Whether mappings may fail before memory runs out: an address-space or
 * data limit, or (Linux) strict overcommit, under which every writable
 * mapping counts against the commit limit. */
static int mappings_limited(void)
{
#ifdef JKO_HAVE_MMAP
    struct rlimit r;
    if (getrlimit(RLIMIT_AS, &r) == 0 && r.rlim_cur != RLIM_INFINITY) return 1;
    if (getrlimit(RLIMIT_DATA, &r) == 0 && r.rlim_cur != RLIM_INFINITY) return 1;
# ifdef __linux__
    static int strict = -1;
    if (strict < 0) {
        FILE *f = fopen("/proc/sys/vm/overcommit_memory", "r");
        int c = f ? fgetc(f) : EOF;
        if (f) fclose(f);
        strict = c == '2';
    }
    return strict;
# endif
#endif
    return 0;
}

int jko_blas_room(int nt)
{
#ifdef JKO_HAVE_MMAP
    if (nt <= proven || !openblas() || !mappings_limited()) return nt;
    /* as many threads as there is room for the new ones' buffers and stacks
     * now, tried and released at once (a mapping of untouched pages costs
     * no memory); at least one, as for any matrix product in R */
    int k = nt;
    for (; k > 1 && k > proven; k--) {
        size_t len = (size_t) (k - proven) * JKO_THREAD_ROOM -
                     (proven == 0 ? JKO_THREAD_ROOM - JKO_BLAS_BUFFER : 0);
        void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p != MAP_FAILED) {
            munmap(p, len);
            break;
        }
    }
    if (k > proven) proven = k;
    if (k < nt && (!room_granted || k < room_granted)) {
        room_asked = nt;
        room_granted = k;
    }
    return k;
#else
    return nt;
#endif
}

int jko_blas_room_cut(int *asked)
{
    int k = room_granted;
    *asked = room_asked;
    room_asked = room_granted = 0;
    return k;
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

/* The 8-wide loops of JKO_CHUNKS (icnn.h): taken where the kernels were
 * cloned for x86-64-v4 (JKO_CLONES_V4, jko.h) and the CPU runs that clone,
 * so that 8 lanes are one register; elsewhere (and under valgrind, which
 * hides AVX-512) the 4-wide loops. */
int jko_wide = 0;

int jko_wide_supported(void)
{
#if JKO_CLONES_V4
    __builtin_cpu_init();
    return __builtin_cpu_supports("x86-64-v4") != 0;
#else
    return 0;
#endif
}

void jko_kernels_init(void)
{
    jko_wide = jko_wide_supported();
}
