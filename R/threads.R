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
