# Draws of a fit for the packages Bayesian analysts read results with:
# posterior (draws_matrix / draws_df) and coda (mcmc). The methods are
# registered when those packages are loaded (NAMESPACE S3method(pkg::gen)).

#' Draws of a fit for the posterior and coda packages
#'
#' Converts the draws of a fit, or a [jko_sample()], to the draws
#' formats of the posterior package (`draws_matrix`, `draws_df`) and of
#' coda (`mcmc`), with the target's parameter names (for [target_stan()],
#' the program's parameters on their constrained scale) and, for
#' posterior, the log-density of each draw in the column `.log_density`.
#'
#' A fit of a target run to its stationary law (`jko_fit(target)`) gives
#' its posterior draws, those of `as.matrix(fit)`, in their chains (one
#' chain for the independent draws of the flow). A time-accurate flow gives
#' `n` new draws of [jko_sample()].
#'
#' Independent draws have no autocorrelation: the effective sample size of
#' a mean is their number, and convergence diagnostics written for MCMC
#' (R-hat, ESS from autocorrelations) have nothing to diagnose; how close the
#' flow is to the target is measured by the fit's verdict, and by the
#' Pareto \eqn{\hat k} and importance ESS of [jko_evidence()]. With
#' `resample = TRUE` (passed to [jko_sample()]) the draws are resampled by
#' importance weights, and repeat.
#'
#' @param x A `"jko_fit"` or a `"jko_sample"`.
#' @param n For a fit without posterior draws (a time-accurate flow), the
#'   number of draws (default 4000).
#' @param ... For a fit without posterior draws, passed to [jko_sample()]
#'   (`step`, `resample`, `scale`, `threads`); any other name is an error.
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
  jko_sample(x, check_count(n %||% 4000, "n"), ...)
}

# The draws of a fit as a draws_df: its posterior draws in their chains,
# with their log-densities, or n draws of jko_sample() for a fit without.
fit_draws_df <- function(x, n, ...) {
  if (!has_posterior(x)) return(posterior::as_draws_df(draws_columns(as_sample(x, n, ...))))
  if (!is.null(n) || ...length()) {
    abort(paste0("a fit of a target gives its own posterior draws: `n`%s cannot be given ",
                 "(jko_sample() makes new draws of the flow)."),
          if (...length()) paste0(", ", paste0("`", ...names(), "`", collapse = ", ")) else "",
          call = sys.call(-1L))
  }
  pd <- fit_posterior(x, "as_draws()", "x", call = sys.call(-1L))
  iter <- stats::ave(seq_along(pd$chain), pd$chain, FUN = seq_along)
  df <- data.frame(pd$x, .log_density = pd$log_density, check.names = FALSE)
  df$.chain <- pd$chain
  df$.iteration <- iter
  posterior::as_draws_df(df)
}

#' @rdname draws
#' @exportS3Method posterior::as_draws_matrix
as_draws_matrix.jko_sample <- function(x, ...) {
  check_dots(...)
  posterior::as_draws_matrix(draws_columns(x))
}

#' @rdname draws
#' @exportS3Method posterior::as_draws_matrix
as_draws_matrix.jko_fit <- function(x, n = NULL, ...) {
  if (!has_posterior(x)) return(posterior::as_draws_matrix(draws_columns(as_sample(x, n, ...))))
  posterior::as_draws_matrix(fit_draws_df(x, n, ...))
}

#' @rdname draws
#' @exportS3Method posterior::as_draws_df
as_draws_df.jko_sample <- function(x, ...) {
  check_dots(...)
  posterior::as_draws_df(draws_columns(x))
}

#' @rdname draws
#' @exportS3Method posterior::as_draws_df
as_draws_df.jko_fit <- function(x, n = NULL, ...) fit_draws_df(x, n, ...)

#' @rdname draws
#' @exportS3Method posterior::as_draws
as_draws.jko_sample <- function(x, ...) as_draws_matrix.jko_sample(x, ...)

#' @rdname draws
#' @exportS3Method posterior::as_draws
as_draws.jko_fit <- function(x, n = NULL, ...) as_draws_matrix.jko_fit(x, n, ...)

#' @rdname draws
#' @exportS3Method coda::as.mcmc
as.mcmc.jko_sample <- function(x, ...) {
  check_dots(...)
  m <- x$x
  colnames(m) <- sample_names(x)
  coda::mcmc(m)
}

#' @rdname draws
#' @exportS3Method coda::as.mcmc
as.mcmc.jko_fit <- function(x, n = NULL, ...) {
  if (!has_posterior(x)) return(as.mcmc.jko_sample(as_sample(x, n, ...)))
  d <- fit_draws_df(x, n, ...)
  chains <- lapply(split(seq_len(nrow(d)), d$.chain), function(rows) {
    coda::mcmc(as.matrix(x)[rows, , drop = FALSE])
  })
  if (length(chains) == 1L) chains[[1L]] else coda::mcmc.list(chains)
}
