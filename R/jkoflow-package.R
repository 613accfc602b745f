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
# the kernels instead. OpenBLAS loads with R itself, before R reads
# ~/.Renviron: set there, the variable is seen by Sys.getenv() but not by
# OpenBLAS (measured 2026-12-05 on a Xeon with AVX-512: Prescott kernels
# with it in ~/.Renviron, SkylakeX with it in the shell's environment; a
# fit of Neal's funnel took 9.8 s and 7.1 s). So the advice names the
# shell, and says so where the variable is set but came too late. `info` is
# list(core, avx2, avx512f) as C_blas_info gives it; `coretype` the
# variable as R sees it; the advice, or NULL where there is none to give.
blas_advice <- function(info = .Call(C_blas_info), coretype = Sys.getenv("OPENBLAS_CORETYPE")) {
  generic <- c("prescott", "core2", "penryn", "dunnington", "nehalem", "atom",
               "katmai", "coppermine", "northwood", "banias", "opteron",
               "opteron_sse3", "barcelona", "bobcat")
  core <- info$core
  if (!is.character(core) || length(core) != 1L || is.na(core) ||
      !tolower(core) %in% generic || !isTRUE(info$avx2)) {
    return(NULL)
  }
  avx512 <- isTRUE(info$avx512f)
  want <- if (avx512) "SkylakeX" else "Haswell"
  late <- if (nzchar(coretype)) {
    sprintf(paste0(" OPENBLAS_CORETYPE is set (to %s), but after OpenBLAS loaded: R reads ",
                   "~/.Renviron and Sys.setenv() acts only after its BLAS is loaded, too late."),
            coretype)
  } else ""
  sprintf(paste0("OpenBLAS is running its generic %s kernels on a CPU with %s, ",
                 "so matrix products run several times slower than they could, and ",
                 "jkoflow's fits slower with them.%s Set the environment variable ",
                 "OPENBLAS_CORETYPE=%s in the shell that starts R (export ",
                 "OPENBLAS_CORETYPE=%s in ~/.profile, or start R as ",
                 "`OPENBLAS_CORETYPE=%s R`), then restart R."),
          core, if (avx512) "AVX-512" else "AVX2", late, want, want, want)
}

.onAttach <- function(libname, pkgname) {
  advice <- tryCatch(blas_advice(), error = function(e) NULL)
  if (!is.null(advice)) packageStartupMessage(advice)
}
