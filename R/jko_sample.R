#' Samples of the flow with their densities
#'
#' Draws \eqn{x_0 \sim \rho_0} and pushes it through the maps
#' \eqn{\nabla\psi_1, \dots, \nabla\psi_k}; the log-density of each sample is
#' exact for the fitted flow:
#' \eqn{\log\rho_k(x_k) = \log\rho_0(x_0) - \sum_{j \le k}\log\det\nabla^2\psi_j(x_{j-1})}.
#'
#' For a fit run to its stationary law (a target's, by default), the draws
#' at its last step are by default the target's own: the flow's draws
#' corrected exactly by independence Metropolis-Hastings, 4 chains with the
#' flow as proposal (see "Exact draws" in [jko_fit()]), or, for a fit whose
#' own draws are HMC's (a flow that stopped short of its target), HMC
#' chains started at the flow's draws, whose `log_density` is `NA`;
#' `correct = FALSE` gives the flow's draws themselves.
#'
#' @param fit A `"jko_fit"`.
#' @param n Number of samples.
#' @param step The JKO step \eqn{k} (0 is \eqn{\rho_0}); default the last.
#' @param time Alternatively the time \eqn{t}, mapped to the nearest step
#'   \eqn{k = t/h} (an error outside the fitted range).
#' @param threads Number of threads (default the option `jkoflow.threads`,
#'   see [jko_control()]).
#' @param resample Sampling-importance-resampling: draw `n` samples of the
#'   flow, weight them by \eqn{e^{-\beta\Phi(x)} / \rho_k(x)} with the flow's
#'   own densities, and return `n` draws from them with replacement, which
#'   corrects the fit's bias towards the target \eqn{e^{-\beta\Phi}}. The
#'   draws keep the flow's `log_density`; the result also carries the
#'   effective sample size `ess` and Pareto `pareto_k` of the weights (see
#'   [jko_evidence()]).
#' @param correct Exact draws of the stationary law (see above)? `NULL`:
#'   for a fit run to its stationary law, at its last step and without
#'   `resample`.
#' @param scale For a target with constrained parameters ([target_stan()]):
#'   draws and log-densities on the model's own `"constrained"` scale (the
#'   default: parameters, transformed parameters and generated quantities
#'   under the program's names; the log-density is that of the parameters,
#'   Jacobian included), or on the `"unconstrained"` scale the flow runs
#'   on. The same for other targets.
#' @param ... Unused: a name given here is an error.
#' @return An object of class `"jko_sample"`: `x` (n x D, columns named by
#'   the target's variables where it has names), `log_density`
#'   (`NA` when \eqn{\rho_0} has no log-density), `step` and `time`; on the
#'   constrained scale also `unconstrained`, the draws on the flow's scale;
#'   exact draws also carry `chain` (the chain of each draw), `acceptance`
#'   and `method = "imh"`. A map
#'   whose Hessian is not positive definite at a sample (possible only when
#'   its parameters overflow) gives that sample an `NA` log-density, with a
#'   warning. `summary()` describes the distribution (means, sds,
#'   quantiles), `as.data.frame()` gives the draws with their
#'   log-densities.
#' @examples
#' set.seed(1)
#' fit <- jko_fit(potential_double_well(), init_gaussian(0, 0.25), h = 0.1,
#'                steps = 2, hidden = c(8, 8), batch = 128, iters = 40)
#' s <- jko_sample(fit, 500)
#' s
#' head(as.matrix(s))
#' @export
jko_sample <- function(fit, n = 1000, step = NULL, time = NULL, threads = NULL,
                       resample = FALSE, scale = c("constrained", "unconstrained"),
                       correct = NULL, ...) {
  single_blas()  # (R/threads.R)
  check_fit(fit)
  check_dots(...)
  n <- check_count(n, "n")
  scale <- choose_arg(scale, c("constrained", "unconstrained"), "scale")
  k <- resolve_step(fit, step, time)
  threads <- resolve_threads(threads)
  resample <- check_flag(resample, "resample")
  exact_ok <- isTRUE(fit$stationary) && k == length(fit$theta) &&
    !inherits(fit$potential, "jko_energy")
  correct <- if (is.null(correct)) exact_ok && !resample else check_flag(correct, "correct")
  if (correct && !exact_ok) {
    abort(paste0("`correct = TRUE` needs the last step of a fit run to its stationary law ",
                 "exp(-beta Phi) (jko_fit(stationary = TRUE)), not step %d of this fit."), k)
  }
  if (correct && resample) abort("give `correct` or `resample`, not both.")
  law <- fit_law(fit, k)
  has_ld <- law_has_density(law)
  extra <- list()
  # (a fit whose own draws are HMC's gives HMC's: R/posterior.R)
  hmc <- correct && identical(fit$draws$method, "hmc") && n >= 4L
  d <- if (hmc) hmc_law_draws(law, fit$potential, fit$beta, n, threads)
  if (!is.null(d)) {
    extra <- list(chain = d$chain, acceptance = d$acceptance, method = "hmc")
  } else if (correct) {
    if (!has_ld) init_log_density(law$base, matrix(0, 1L, fit$dim))
    r <- fit$history$ess[k + 1L]
    d <- correct_draws(law, fit$potential, fit$beta, n, min(4L, n), thinning(r), threads,
                       most = tail_most(fit, draws_thinning(r, n, fit$phi_cost)))
    extra <- list(chain = d$chain, acceptance = d$acceptance, method = "imh")
  } else {
    d <- law_draw(law, n, threads = threads)
  }
  x <- d$x
  ld <- if (has_ld) d$log_density else rep(NA_real_, n)
  if (resample) {
    if (!has_ld) init_log_density(law$base, x[1L, , drop = FALSE])
    lw <- importance_log_weights(fit$potential, fit$beta, x, ld)
    lw[is.na(lw)] <- -Inf
    if (all(lw == -Inf)) abort("resampling failed: every importance weight is zero or undefined.")
    w <- exp(lw - max(lw))
    idx <- sample.int(n, n, replace = TRUE, prob = w)
    x <- x[idx, , drop = FALSE]
    ld <- ld[idx]
    extra <- list(ess = sum(w)^2 / sum(w^2), pareto_k = pareto_khat(lw))
  }
  colnames(x) <- fit$potential$variables
  extra$fit_id <- fit_id(fit, k)
  tr <- fit$potential$transform
  if (scale == "constrained" && !is.null(tr)) {
    extra$unconstrained <- x
    ld <- ld - tr$log_jacobian(x)
    x <- tr$constrain(x)
  }
  structure(c(list(x = x, log_density = ld, step = k, time = step_time(fit, k),
                   dim = ncol(x), resampled = resample,
                   scale = if (is.null(tr)) "unconstrained" else scale), extra),
            class = "jko_sample")
}

#' @export
as.matrix.jko_sample <- function(x, ...) {
  check_dots(...)
  x$x
}

#' @export
print.jko_sample <- function(x, ...) {
  check_dots(...)
  cat(sprintf("%d samples of the flow at step %d (t = %g), dimension %d%s\n",
              nrow(x$x), x$step, x$time, x$dim,
              if (identical(x$scale, "constrained")) ", constrained scale" else ""))
  m <- colMeans(x$x)
  s <- apply(x$x, 2L, stats::sd)
  shown <- seq_len(min(6L, x$dim))
  tab <- rbind(mean = m[shown], sd = s[shown])
  colnames(tab) <- sample_names(x)[shown]
  print(signif(tab, 4))
  if (x$dim > 6L) cat(sprintf("... and %d more coordinates\n", x$dim - 6L))
  if (all(is.na(x$log_density))) {
    cat("No log-densities: the initial distribution has none.\n")
  } else {
    cat(sprintf("log-density: median %.4g, range [%.4g, %.4g]\n",
                stats::median(x$log_density), min(x$log_density), max(x$log_density)))
  }
  invisible(x)
}

#' Summaries and conversions of samples of a flow
#'
#' `summary()` describes the distribution the samples come from: for each
#' coordinate the mean with its Monte Carlo standard error, the standard
#' deviation and quantiles; with the posterior package installed it is made
#' by [posterior::summarise_draws()], and further summaries can be asked
#' for by name in `...` (e.g. `"mad"`). Samples of a flow are independent draws, so the
#' effective sample size is their number n, and the standard error of a
#' mean is sd / sqrt(n); after `jko_sample(resample = TRUE)` the draws repeat,
#' and the effective sample size is the importance ESS of the weights,
#' which the standard errors then use. `as.data.frame()` gives the draws,
#' one per row, with the log-density of each in the column `log_density`.
#'
#' @param object,x A `"jko_sample"`.
#' @param probs Probabilities of the quantiles.
#' @param row.names,optional Passed on to [as.data.frame()].
#' @param ... For `summary()`, further summaries passed to
#'   [posterior::summarise_draws()]; unused otherwise.
#' @return `summary()`: an object of class `"summary.jko_sample"` holding the
#'   table `statistics` (one row per coordinate; columns `mean`,
#'   `se_mean`, `sd` and the quantiles `q2.5`, ...), `n`, `ess`, `step` and
#'   `time`. `as.data.frame()`: a data frame with columns `x1`, ..., `xD`
#'   and `log_density`.
#' @seealso [jko_sample()], [simulate.jko_fit()].
#' @examples
#' set.seed(1)
#' fit <- jko_fit(potential_quadratic(diag(2), b = c(1, 0)), init_gaussian(c(0, 0), 1),
#'                h = 0.5, steps = 2, hidden = c(8, 8), batch = 128, iters = 60)
#' s <- jko_sample(fit, 2000)
#' summary(s)
#' head(as.data.frame(s))
#' @export
summary.jko_sample <- function(object, ..., probs = c(0.025, 0.25, 0.5, 0.75, 0.975)) {
  if (!is.numeric(probs) || anyNA(probs) || any(probs < 0 | probs > 1)) {
    abort("`probs` must be numbers in [0, 1], not %s.", describe(probs))
  }
  x <- object$x
  colnames(x) <- sample_names(object)
  n <- nrow(x)
  # the effective sample size of each coordinate: the draws' number for
  # independent draws, the importance ESS after resampling, the chains'
  # bulk ESS (posterior's) for exact draws
  ess <- if (isTRUE(object$resampled)) rep(object$ess, ncol(x))
         else if (!is.null(object$chain)) draws_ess(x, object$chain)
         else rep(n, ncol(x))
  ess[!is.finite(ess)] <- NA_real_
  quant <- function(v) {
    stats::setNames(stats::quantile(v, probs, names = FALSE),
                    paste0("q", 100 * probs))
  }
  tab <- if (requireNamespace("posterior", quietly = TRUE)) {
    st <- posterior::summarise_draws(posterior::as_draws_matrix(x), mean = mean,
                                     se_mean = function(v) NA_real_, sd = stats::sd, quant, ...)
    data.frame(lapply(st[-1L], function(v) as.double(unclass(v))), row.names = st$variable,
               check.names = FALSE)
  } else {
    if (...length()) abort("extra summaries in `...` need the posterior package.")
    data.frame(mean = colMeans(x), se_mean = NA_real_, sd = apply(x, 2L, stats::sd),
               do.call(rbind, lapply(seq_len(ncol(x)), function(j) quant(x[, j]))),
               check.names = FALSE, row.names = colnames(x))
  }
  tab$se_mean <- tab$sd / sqrt(ess)
  tab$ess <- ess
  structure(list(statistics = tab, n = n, ess = min(ess), step = object$step,
                 time = object$time, resampled = isTRUE(object$resampled),
                 method = object$method, acceptance = object$acceptance,
                 chains = length(unique(object$chain))),
            class = "summary.jko_sample")
}

#' @export
print.summary.jko_sample <- function(x, digits = 4, ...) {
  check_dots(...)
  what <- if (identical(x$method, "imh")) {
    sprintf("exact draws (%d chains of independence Metropolis-Hastings, acceptance %.0f%%)",
            x$chains, 100 * x$acceptance)
  } else if (x$resampled) "resampled draws" else "independent draws"
  cat(sprintf("%d %s of the flow at step %d (t = %g); smallest effective sample size %.0f\n",
              x$n, what, x$step, x$time, x$ess))
  print(signif(x$statistics, digits))
  invisible(x)
}

#' @rdname summary.jko_sample
#' @export
as.data.frame.jko_sample <- function(x, row.names = NULL, optional = FALSE, ...) {
  check_dots(...)
  df <- as.data.frame(x$x, row.names = row.names, optional = optional)
  names(df) <- sample_names(x)
  df$log_density <- x$log_density
  df
}

sample_names <- function(s) {
  if (!is.null(colnames(s$x))) colnames(s$x) else paste0("x", seq_len(ncol(s$x)))
}

#' Simulate from a fitted flow or model
#'
#' For a fit of a [target_glm()] posterior, as [stats::simulate()] of a `glm()` fit: `nsim`
#' vectors of responses at the fitted rows, each from its own draw of the
#' parameters (chosen at random among the fit's posterior draws), on the
#' scale of [glm()]'s response (0/1, or the proportion of successes of the
#' row's trials, for the binomial; counts for the Poisson; the gaussian of
#' \eqn{\sigma_s^2 / w_i}), as a data frame with a column per simulation.
#'
#' For a flow (not a target), as [stats::simulate()] does for fitted
#' models: `nsim` draws from \eqn{\rho_t}, those of [jko_sample()], as a data
#' frame. Other targets have no responses to simulate: their posterior
#' draws are `as.matrix(fit)`, new draws of the flow [jko_sample()].
#'
#' @param object A `"jko_fit"`.
#' @param nsim Number of response vectors (for a GLM) or of draws.
#' @param seed `NULL`, or a seed for [set.seed()] (R's random number
#'   generator state is restored afterwards, as in [stats::simulate()]).
#' @param ... For a flow, passed to [jko_sample()]: `step` or `time`,
#'   `threads`, `resample`, `scale`. Any other name is an error.
#' @return A data frame (for a GLM: a row per fitted observation, columns
#'   `sim_1`, ...; for a flow: `nsim` rows, see
#'   [as.data.frame.jko_sample()]), with the attribute `"seed"` as in
#'   [stats::simulate()].
#' @examples
#' set.seed(1)
#' fit <- jko_fit(potential_double_well(), init_gaussian(0, 0.25), h = 0.1,
#'                steps = 2, hidden = c(8, 8), batch = 128, iters = 40)
#' head(simulate(fit, 5, seed = 42))
#' @importFrom stats simulate coef confint family fitted formula nobs predict residuals sigma update vcov
#' @export
simulate.jko_fit <- function(object, nsim = 1, seed = NULL, ...) {
  check_fit(object, "object")
  nsim <- check_count(nsim, "nsim")
  if (is_target(object$potential) && has_posterior(object)) {
    check_dots(...)
    if (!is_formula_glm(object$potential)) {
      abort(paste0("simulate() simulates the responses of a target_glm() model; this fit's ",
                   "target is %s. Its posterior draws are as.matrix(fit); new draws of the ",
                   "flow, jko_sample(fit, n)."), object$potential$label)
    }
    return(simulate_glm(object, nsim, seed))
  }
  check_dots(..., allowed = c("step", "time", "threads", "resample", "scale"))
  with_seed(seed, as.data.frame(jko_sample(object, nsim, ...)))
}
