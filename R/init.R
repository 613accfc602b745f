# Initial measures rho_0: a sampler and, where known, a log-density.

#' Initial distributions
#'
#' The flow starts from \eqn{\rho_0}, given either as a Gaussian
#' (`init_gaussian()`: samples and exact log-density) or as a matrix of
#' samples (`init_samples()`: rows are resampled with replacement; densities
#' of the flow need the log-density of \eqn{\rho_0}, given as `log_density`).
#'
#' @param mean Mean vector (its length is the dimension).
#' @param cov Covariance: a number (times the identity), a vector (a
#'   diagonal), or a symmetric positive definite matrix.
#' @param x Samples, an n x D numeric matrix.
#' @param log_density `NULL` or a function of an n x D matrix returning the n
#'   log-densities of \eqn{\rho_0}.
#' @param logdensity The same, under its name in jkoflow 0.1.0.
#' @return An object of class `"jko_init"` with the dimension `dim`, a
#'   function `sample(n)` returning an n x D matrix, and a function
#'   `log_density(x)` (or `NULL`).
#' @examples
#' init_gaussian(c(0, 0), cov = 4)
#' init_samples(matrix(rnorm(200), 100, 2))
#' @export
init_gaussian <- function(mean = 0, cov = 1) {
  if (!is.numeric(mean) || length(mean) < 1L || any(!is.finite(mean))) {
    abort("`mean` must be a finite numeric vector, not %s.", describe(mean))
  }
  D <- length(mean)
  if (!is.numeric(cov) || anyNA(cov) || any(!is.finite(cov))) {
    abort("`cov` must be a finite number, vector or matrix, not %s.", describe(cov))
  }
  if (is.null(dim(cov))) {
    if (!length(cov) %in% c(1L, D)) {
      abort("`cov` must be a number, a vector of length %d or a %d x %d matrix.", D, D, D)
    }
    cov <- diag(cov, D)
  }
  if (!identical(dim(cov), c(D, D))) {
    abort("`cov` must be a %d x %d matrix (the length of `mean`), not %s.", D, D,
          paste(dim(cov), collapse = " x "))
  }
  if (max(abs(cov - t(cov))) > 1e-10 * max(abs(cov))) abort("`cov` must be symmetric.")
  R <- tryCatch(chol(cov), error = function(e) NULL)
  if (is.null(R)) abort("`cov` must be positive definite.")
  mean <- as.double(mean)
  ldet <- 2 * sum(log(diag(R)))
  structure(list(
    dim = D, mean = mean, cov = unname(cov),
    sample = function(n) {
      z <- matrix(stats::rnorm(n * D), n, D)
      sweep(z %*% R, 2L, mean, "+")
    },
    log_density = function(x) {
      z <- backsolve(R, t(x) - mean, transpose = TRUE)
      -0.5 * (colSums(z^2) + ldet + D * log(2 * pi))
    },
    label = sprintf("Gaussian, dimension %d", D)
  ), class = "jko_init")
}

#' @rdname init_gaussian
#' @export
init_samples <- function(x, log_density = NULL, logdensity = NULL) {
  arg <- if (is.null(log_density) && !is.null(logdensity)) "logdensity" else "log_density"
  if (is.null(log_density)) log_density <- logdensity
  x <- check_points(x, NULL, "x")
  if (!is.null(log_density) && !is.function(log_density)) {
    abort("`%s` must be NULL or a function of an n x D matrix, not %s.", arg,
          describe(log_density))
  }
  x <- unname(x)
  # A map pushes a point mass (or a measure on a hyperplane) to another one:
  # rho_0 must spread in every direction for the flow to have a density.
  r <- spread_rank(x)
  if (r < ncol(x)) {
    abort(paste0("`x` must spread in all %d dimensions, but its rows lie in an ",
                 "affine subspace of dimension %d%s: no map of rho_0 can have a ",
                 "density. Give at least %d distinct rows in general position ",
                 "(add noise to repeated samples)."),
          ncol(x), r, if (r == 0L) " (all rows identical)" else "", ncol(x) + 1L)
  }
  structure(list(
    dim = ncol(x),
    sample = function(n) x[sample.int(nrow(x), n, replace = TRUE), , drop = FALSE],
    log_density = log_density,
    label = sprintf("%d samples, dimension %d%s", nrow(x), ncol(x),
                    if (is.null(log_density)) "" else ", with log-density")
  ), class = "jko_init")
}

# Dimension of the affine span of the rows of x (numerically).
spread_rank <- function(x) {
  if (nrow(x) < 2L) return(0L)
  d <- svd(stats::cov(x), 0L, 0L)$d
  sum(d > max(d) * 1e-12)
}

#' A fitted flow as the start of a new one
#'
#' `init_fit()` makes the law \eqn{\rho_t} of a fit, at one of its steps,
#' the initial distribution \eqn{\rho_0} of a new flow: its samples are
#' those of [jko_sample()] and its log-density that of [jko_density()], both
#' exact for the fitted flow. A flow started from it has exact densities end
#' to end: a point of the new flow is pulled back through the new maps, then
#' through those of `fit`, down to the first \eqn{\rho_0}. Fits chain to
#' any depth (a fit of a fit of a fit), and a chained fit saves and loads
#' with [saveRDS()] and [readRDS()] like any other, since it holds every
#' fit below it.
#'
#' Samples of a chained flow cost a push through all the maps below it,
#' densities a pull-back (one Newton inversion per map and point): both grow
#' with the depth of the chain.
#'
#' @param fit A `"jko_fit"`.
#' @param step,time The step of `fit`, or its time (the nearest step), whose
#'   law is the new start; default the last step.
#' @return An object of class `"jko_init"` (see [init_gaussian()]) whose
#'   element `base` is an environment holding `fit` and `step`.
#' @seealso [jko_update()] (a fit's law times a likelihood),
#'   [jko_filter()].
#' @examples
#' set.seed(1)
#' # an Ornstein-Uhlenbeck flow to t = 0.4, then on to t = 0.8 from there
#' pot <- potential_quadratic(1)
#' fit1 <- jko_fit(pot, init_gaussian(2, 1), h = 0.2, steps = 2,
#'                 hidden = c(8, 8), batch = 256, iters = 60)
#' fit2 <- jko_fit(pot, init_fit(fit1), h = 0.2, steps = 2,
#'                 hidden = c(8, 8), batch = 256, iters = 60)
#' # the exact law at t = 0.8 is N(2 exp(-0.8), 1); the JKO scheme's mean is
#' # 2 / 1.2^4 = 0.96
#' mean(jko_sample(fit2, 4000)$x)
#' jko_density(fit2, 1)
#' @export
init_fit <- function(fit, step = NULL, time = NULL) {
  check_fit(fit)
  step <- resolve_step(fit, step, time)
  rm(time)
  # The closures and `base` share this environment, so that saveRDS()
  # writes the fit below once, however deep the chain.
  base <- environment()
  has_ld <- !is.null(fit$init$log_density)
  structure(list(
    dim = fit$dim,
    base = base,
    sample = function(n) init_draw(list(base = base), n, log_density = FALSE)$x,
    log_density = if (has_ld) function(x) {
      jko_density(fit, x, step = step, log = TRUE)$log_density
    },
    label = sprintf("the flow of a fit at step %d (t = %g), dimension %d%s", step,
                    step_time(fit, step), fit$dim,
                    if (has_ld) "" else ", without log-density")
  ), class = "jko_init")
}

# n draws of rho_0, an n x D matrix `x`, with their log-densities (NULL
# where rho_0 has none, or when not asked for). The law of a fitted flow
# (init_fit()) is drawn by pushing draws of its own rho_0 through its maps,
# carrying the log-densities along, never by pulling the draws back.
init_draw <- function(init, n, log_density = TRUE, threads = NULL) {
  if (!is.null(init$base)) {
    fit <- init$base$fit
    k <- init$base$step
    has_ld <- log_density && !is.null(fit$init$log_density)
    d0 <- init_draw(fit$init, n, has_ld, threads)
    out <- flow_push(fit, k, to_cols(d0$x), d0$log_density, resolve_threads(threads))
    return(list(x = t(out$x), log_density = if (has_ld) out$log_density))
  }
  x <- init$sample(n)
  list(x = x, log_density = if (log_density && !is.null(init$log_density))
                              init_log_density(init, x))
}

check_init <- function(init) {
  if (!inherits(init, "jko_init")) {
    abort("`init` must be an initial distribution from init_gaussian(), init_samples() or init_fit(), not %s.",
          describe(init))
  }
  invisible(init)
}

# log rho_0 at the rows of x, with a clear error when it is not known.
init_log_density <- function(init, x) {
  if (is.null(init$log_density)) {
    abort(paste0("densities need the log-density of the initial distribution: ",
                 "give `log_density` to init_samples()."),
          class = "jkoflow_error_no_density")
  }
  ld <- init$log_density(x)
  if (!is.numeric(ld) || length(ld) != nrow(x)) {
    abort("the initial distribution's `log_density` returned %s; expected %d numbers.",
          describe(ld), nrow(x))
  }
  as.double(ld)
}

#' @export
print.jko_init <- function(x, ...) {
  cat("Initial distribution:", x$label, "\n")
  invisible(x)
}
