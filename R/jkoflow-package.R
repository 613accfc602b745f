#' jkoflow: Wasserstein gradient flows with input-convex neural networks
#'
#' Fokker-Planck flows by the JKO scheme, each step the gradient of an
#' input-convex neural network trained from samples; samples and exact
#' densities of the flow at every step. Start with [jko_fit()].
#'
#' @keywords internal
#' @useDynLib jkoflow, .registration = TRUE, .fixes = "C_"
"_PACKAGE"

# OpenBLAS picks its kernels when it loads, from a table of the CPUs it
# knows. Some releases (0.3.21, Debian 12's) do not know the newest Intel
# Xeons and fall back to their generic "Prescott" kernels (SSE3), which run
# dgemm 3 to 4 times slower there; every fit goes through that dgemm. The
# environment variable OPENBLAS_CORETYPE, read when OpenBLAS loads, chooses
# the kernels instead. `info` is list(core, avx2, avx512f) as C_blas_info
# gives it; the advice, or NULL where there is none to give.
blas_advice <- function(info = .Call(C_blas_info)) {
  generic <- c("prescott", "core2", "penryn", "dunnington", "nehalem", "atom",
               "katmai", "coppermine", "northwood", "banias", "opteron",
               "opteron_sse3", "barcelona", "bobcat")
  core <- info$core
  if (!is.character(core) || length(core) != 1L || is.na(core) ||
      !tolower(core) %in% generic || !isTRUE(info$avx2)) {
    return(NULL)
  }
  avx512 <- isTRUE(info$avx512f)
  sprintf(paste0("OpenBLAS is running its generic %s kernels on a CPU with %s, ",
                 "so matrix products run several times slower than they could, and ",
                 "jkoflow's fits slower with them. Set the environment variable ",
                 "OPENBLAS_CORETYPE=%s before R starts (for instance in ~/.Renviron)."),
          core, if (avx512) "AVX-512" else "AVX2", if (avx512) "SkylakeX" else "Haswell")
}

.onAttach <- function(libname, pkgname) {
  advice <- tryCatch(blas_advice(), error = function(e) NULL)
  if (!is.null(advice)) packageStartupMessage(advice)
}
