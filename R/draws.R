# Draws of a fit for the packages Bayesian analysts read results with:
# posterior (draws_matrix / draws_df) and coda (mcmc). The methods are
# registered when those packages are loaded (NAMESPACE S3method(pkg::gen)).

#' Draws of a fit for the posterior and coda packages
#'
#' Converts the samples of a fitted flow, or a [jko_sample()], to the draws
#' formats of the posterior package (`draws_matrix`, `draws_df`) and of
#' coda (`mcmc`), with the target's parameter names (for [target_stan()],
#' the program's parameters on their constrained scale) and, for
#' posterior, the log-density of each draw in the column `.log_density`.
#'
#' The draws are independent (one chain, no autocorrelation): the
#' effective sample size of a mean is their number. Convergence diagnostics
#' written for MCMC (R-hat, ESS from autocorrelations) have nothing to
#' diagnose here; how close the flow is to the target is measured by the
#' fit's verdict, and by the Pareto \eqn{\hat k} and importance ESS of
#' [jko_evidence()]. With `resample = TRUE` (passed to [jko_sample()]) the
#' draws are resampled by importance weights, and repeat.
#'
#' @param x A `"jko_fit"` or a `"jko_sample"`.
#' @param n Number of draws from a fit.
#' @param ... For a fit, passed to [jko_sample()] (`step`, `resample`,
#'   `scale`, `threads`).
#' @return A `draws_matrix`, a `draws_df` or an `mcmc` object.
#' @examplesIf requireNamespace("posterior", quietly = TRUE)
#' set.seed(1)
#' tg <- target_logdensity(function(x) -rowSums(x^2) / 2, function(x) -x)
#' fit <- jko_fit(tg, init_gaussian(c(1, 1), 1), h = 0.5, steps = 2,
#'                hidden = c(8, 8), batch = 128, iters = 60, stationary = FALSE)
#' d <- posterior::as_draws_df(fit, n = 1000)
#' posterior::summarise_draws(d, "mean", "sd")
#' @name draws
NULL

draws_columns <- function(s) {
  x <- s$x
  colnames(x) <- sample_names(s)
  cbind(x, .log_density = s$log_density)
}

as_sample <- function(x, n, ...) {
  if (inherits(x, "jko_sample")) return(x)
  check_fit(x, "x")
  jko_sample(x, check_count(n, "n"), ...)
}

#' @rdname draws
#' @exportS3Method posterior::as_draws_matrix
as_draws_matrix.jko_sample <- function(x, ...) {
  posterior::as_draws_matrix(draws_columns(x))
}

#' @rdname draws
#' @exportS3Method posterior::as_draws_matrix
as_draws_matrix.jko_fit <- function(x, n = 4000, ...) {
  posterior::as_draws_matrix(draws_columns(as_sample(x, n, ...)))
}

#' @rdname draws
#' @exportS3Method posterior::as_draws_df
as_draws_df.jko_sample <- function(x, ...) {
  posterior::as_draws_df(draws_columns(x))
}

#' @rdname draws
#' @exportS3Method posterior::as_draws_df
as_draws_df.jko_fit <- function(x, n = 4000, ...) {
  posterior::as_draws_df(draws_columns(as_sample(x, n, ...)))
}

#' @rdname draws
#' @exportS3Method posterior::as_draws
as_draws.jko_sample <- function(x, ...) as_draws_matrix.jko_sample(x, ...)

#' @rdname draws
#' @exportS3Method posterior::as_draws
as_draws.jko_fit <- function(x, n = 4000, ...) as_draws_matrix.jko_fit(x, n, ...)

#' @rdname draws
#' @exportS3Method coda::as.mcmc
as.mcmc.jko_sample <- function(x, ...) {
  m <- x$x
  colnames(m) <- sample_names(x)
  coda::mcmc(m)
}

#' @rdname draws
#' @exportS3Method coda::as.mcmc
as.mcmc.jko_fit <- function(x, n = 4000, ...) as.mcmc.jko_sample(as_sample(x, n, ...))
