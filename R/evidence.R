# The normalising constant of exp(-beta Phi) by importance sampling with the
# fitted flow as proposal, and the Pareto k-hat diagnostic of the weights.

#' Evidence (normalising constant) by importance sampling
#'
#' Every sample of a fitted flow comes with its exact density
#' \eqn{q(x)}, so the flow is an importance-sampling proposal for the target
#' \eqn{e^{-\beta\Phi}}: with \eqn{x_i \sim q},
#' \deqn{\log w_i = -\beta\Phi(x_i) - \log q(x_i), \qquad
#'   \hat Z = \frac1n \sum_i w_i \approx \int e^{-\beta\Phi(x)}\,dx.}{log w_i = -beta Phi(x_i) - log q(x_i),  Z = mean(w_i).}
#' For a Bayesian target ([target_logistic()], or [target_logdensity()] with
#' the normalising constants of prior and likelihood kept) \eqn{Z} is the
#' marginal likelihood \eqn{p(y)}. Minibatch targets are evaluated on the
#' full data.
#'
#' The standard error is the delta-method one,
#' \eqn{\mathrm{sd}(w) / (\sqrt{n}\,\bar w)}; it is only meaningful when the
#' weights have a finite variance. The Pareto \eqn{\hat k} of the largest
#' weights (Vehtari et al., PSIS) tells whether it is: below the threshold
#' \eqn{\min(1 - 1/\log_{10} S, 0.7)} for S weights the estimate is reliable
#' and its standard error meaningful; above it, the flow's tails are too
#' light for the target and the estimate cannot be trusted.
#' The effective sample size is \eqn{(\sum w)^2 / \sum w^2}. \eqn{\hat k}
#' comes from [loo::psis()] when the loo package is installed, and from
#' jkoflow's own implementation of the same estimate otherwise.
#'
#' For a fit run to its stationary law, `jko_evidence(fit)` uses the
#' proposals the fit's exact draws were made from (see "Exact draws" in
#' [jko_fit()]), so that its \eqn{\hat k} and the verdict's are one
#' estimate on the same draws; give `n` for new ones.
#'
#' Samples where \eqn{\Phi = +\infty} (outside the target's support) get
#' weight zero; samples where \eqn{\Phi} is `NA`/`NaN` are dropped with a
#' warning, and counted in `n_nonfinite`.
#'
#' @param fit A `"jko_fit"` whose initial distribution has a log-density.
#' @param n Number of importance samples: by default those of the fit's
#'   exact draws where it has them, else 10000 new ones.
#' @param step The step whose flow is the proposal (default the last).
#' @param threads Number of threads.
#' @return An object of class `"jko_evidence"`: `log_z`, `se`, `ess`,
#'   `pareto_k`, `n`, `n_nonfinite`, `step` and the `log_weights`.
#' @references Vehtari, A., Simpson, D., Gelman, A., Yao, Y. and Gabry, J.
#'   (2024). Pareto smoothed importance sampling. *Journal of Machine Learning
#'   Research* 25(72).
#'
#'   Zhang, J. and Stephens, M. A. (2009). A new and efficient estimation
#'   method for the generalized Pareto distribution. *Technometrics* 51(3).
#' @examples
#' set.seed(1)
#' # N(1, 0.5^2 I) in 2-D, unnormalised: Z = 2 pi 0.25
#' fit <- jko_fit(potential_quadratic(4 * diag(2), b = c(1, 1)),
#'                init_gaussian(c(0, 0), 1), h = 0.5, steps = 3,
#'                hidden = c(16, 16), batch = 256, iters = 100)
#' ev <- jko_evidence(fit, 4000)
#' ev
#' log(2 * pi * 0.25)
#' @export
jko_evidence <- function(fit, n = NULL, step = NULL, threads = NULL) {
  single_blas()  # (R/threads.R)
  check_fit(fit)
  check_not_energy(fit$potential)
  K <- length(fit$theta)
  k <- resolve_step(fit, step)
  stored <- is.null(n) && k == K && !is.null(fit$draws$log_weights)
  if (stored) {
    lw <- fit$draws$log_weights
    n <- length(lw)
  } else {
    n <- check_count(if (is.null(n)) 10000 else n, "n", min = 10)
    s <- jko_sample(fit, n, step = k, threads = threads, scale = "unconstrained",
                    correct = FALSE)
    law <- as_law(fit$init)
    if (!law_has_density(law)) init_log_density(law$base, s$x[1L, , drop = FALSE])
    lw <- importance_log_weights(fit$potential, fit$beta, s$x, s$log_density)
  }
  bad <- is.na(lw)
  if (any(bad)) {
    warning(sprintf("the potential is NA or NaN at %d of %d samples; they are left out.",
                    sum(bad), n), call. = FALSE)
  }
  lw_ok <- lw[!bad]
  m <- length(lw_ok)
  if (m < 2L || all(lw_ok == -Inf)) {
    abort("the potential is infinite or undefined at all the samples: no estimate.")
  }
  ws <- log_weights_summary(lw_ok)
  structure(list(
    log_z = ws$log_mean,
    se = ws$rel_se,
    ess = ws$ess,
    pareto_k = pareto_khat(lw_ok),
    n = m, n_nonfinite = sum(bad) + sum(lw_ok == -Inf),
    step = k, log_weights = lw
  ), class = "jko_evidence")
}

#' @export
print.jko_evidence <- function(x, digits = 4, ...) {
  check_dots(...)
  cat("Evidence by importance sampling, the flow at step", x$step, "as proposal\n")
  cat(sprintf("  log Z = %s (se %s) from %d samples; ESS %.0f (%.1f%%)\n",
              format(x$log_z, digits = digits + 3), format(x$se, digits = 2), x$n,
              x$ess, 100 * x$ess / x$n))
  if (x$n_nonfinite > 0L) {
    cat(sprintf("  %d samples with an infinite or undefined potential got weight 0\n",
                x$n_nonfinite))
  }
  k <- x$pareto_k
  thr <- khat_threshold(x$n)
  verdict <- if (is.na(k)) {
    "too few distinct weights to estimate the tail; no diagnostic."
  } else if (k >= thr) {
    sprintf(paste("do NOT trust the estimate: the weights are too heavy-tailed for %d samples",
                  "(k-hat >= %.2f); the flow misses part of the target."), x$n, thr)
  } else {
    sprintf("the estimate is reliable (k-hat < %.2f, the threshold for %d samples).", thr, x$n)
  }
  cat(sprintf("  Pareto k-hat %s: %s\n", if (is.na(k)) "NA" else format(round(k, 2), nsmall = 2),
              verdict))
  invisible(x)
}
