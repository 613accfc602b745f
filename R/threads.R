# The one thread policy of the package: every function that does per-sample
# work takes `threads`, resolved here.

check_threads <- function(threads) {
  threads <- check_count(threads, "threads")
  max(1L, min(threads, parallel_cores()))
}

# The one thread policy: an explicit `threads`, else the option
# jkoflow.threads, else 2 (the most CRAN allows), never more than the
# machine's cores or OMP_THREAD_LIMIT (src/threads.c adds: one thread in a
# forked child).
resolve_threads <- function(threads) {
  if (is.null(threads)) {
    opt <- getOption("jkoflow.threads", 2L)
    if (!is.numeric(opt) || length(opt) != 1L || is.na(opt) || opt < 1 || opt != round(opt)) {
      abort("the option `jkoflow.threads` must be a whole number >= 1, not %s.",
            describe(opt), call = sys.call(-1L))
    }
    threads <- opt
  }
  check_threads(threads)
}

# The machine's cores, asked once a session: parallel::detectCores() runs
# a shell command on Linux (3 ms), and every evaluation of a potential
# resolves its threads (hundreds of single points in a BFGS).
cores_cache <- new.env(parent = emptyenv())

parallel_cores <- function() {
  n <- suppressWarnings(as.integer(Sys.getenv("OMP_THREAD_LIMIT", "")))
  cores <- cores_cache$cores
  if (is.null(cores)) {
    cores <- tryCatch(parallel::detectCores(logical = TRUE), error = function(e) NA)
    cores_cache$cores <- cores
  }
  if (is.na(cores)) cores <- 1L
  if (!is.na(n) && n > 0) cores <- min(cores, n)
  cores
}

# The lanes of the compiled kernels' widest loops: 8 where they were built
# for AVX-512 and the CPU has it, else 4 (src/blas_threads.c). `wide` TRUE
# or FALSE sets them (TRUE only where supported), for tests and benchmarks.
kernel_lanes <- function(wide = NA) .Call(C_kernel_lanes, as.logical(wide))

# OpenBLAS's thread count before, set to n where n >= 1 (n = 0 only asks);
# 0 where the BLAS is another, and nothing is set (src/blas_threads.c).
blas_threads <- function(n = 0L) .Call(C_blas_threads, as.integer(n))

# A fit's own linear algebra is on small matrices (a start's Gaussians and
# Hessians, D up to a few hundred), where a second OpenBLAS thread gains
# nothing on a quiet machine and costs much where another job holds a
# core: a 65 x 65 solve() took 6.9 ms on 2 threads with one other process
# running, against 0.15 ms on one, and posteriordb's rats fit 17.1 s
# against 6.3 s (6.4-7.7 s either way on the quiet machine). So a flow
# (run_flow(), R/jko_fit.R: a fit and its continuation), and jko_sample(),
# jko_density(), jko_evidence() and mode_weights() called on their own,
# run OpenBLAS on one thread from their first line: single_blas() sets
# it, keeps the count before in the$blas_user, and puts it back when the
# function that called it exits (returns, fails or is interrupted), by
# that function's own on.exit, so that its errors still name it. A
# target's own R functions run on the count the user had (users_blas(),
# R/potentials.R: a log-density of large matrix products keeps its
# threads).
single_blas <- function(envir = parent.frame()) {
  old <- blas_threads(1L)
  if (old > 1L) {
    the$blas_user <- old
    do.call(on.exit, list(bquote({
      blas_threads(.(old))
      the$blas_user <- NULL
    }), add = TRUE), envir = envir)
  }
  invisible(old)
}
