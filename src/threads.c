/* The number of OpenMP threads a call may use. After fork() (parallel's
 * mclapply) the child inherits an OpenMP runtime whose threads were not
 * copied, and a parallel region there can hang: a child of a process that
 * has loaded the package runs single-threaded. */
#include <R.h>
#include "jko.h"
#if !defined(_WIN32) && defined(__has_include)
# if __has_include(<pthread.h>)
#  include <pthread.h>
#  define JKO_HAVE_ATFORK 1
# endif
#endif

static int forked = 0;

#ifdef JKO_HAVE_ATFORK
static void in_child(void) { forked = 1; }
#endif

void jko_threads_init(void)
{
#ifdef JKO_HAVE_ATFORK
    pthread_atfork(NULL, NULL, in_child);
#endif
}

int jko_threads(int requested)
{
    if (forked || requested == NA_INTEGER || requested < 1) return 1;
#ifdef _OPENMP
    int lim = omp_get_thread_limit();
    if (lim > 0 && requested > lim) requested = lim;
#endif
    return requested;
}
