#' Samples of the flow with their densities
#'
#' Draws \eqn{x_0 \sim \rho_0} and pushes it through the maps
#' \eqn{\nabla\psi_1, \dots, \nabla\psi_k}; the log-density of each sample is
#' exact for the fitted flow:
#' \eqn{\log\rho_k(x_k) = \log\rho_0(x_0) - \sum_{j \le k}\log\det\nabla^2\psi_j(x_{j-1})}.
#'
#' @param fit A `"jko_fit"`.
#' @param n Number of samples.
#' @param step The JKO step \eqn{k} (0 is \eqn{\rho_0}); default the last.
#' @param time Alternatively the time \eqn{t}, mapped to the nearest step
#'   \eqn{k = t/h} (an error outside the fitted range).
#' @param threads Number of threads.
#' @param resample Sampling-importance-resampling: draw `n` samples of the
#'   flow, weight them by \eqn{e^{-\beta\Phi(x)} / \rho_k(x)} with the flow's
#'   own densities, and return `n` draws from them with replacement, which
#'   corrects the fit's bias towards the target \eqn{e^{-\beta\Phi}}. The
#'   draws keep the flow's `log_density`; the result also carries the
#'   effective sample size `ess` and Pareto `pareto_k` of the weights (see
#'   [jko_evidence()]).
#' @param ... Unused.
#' @return An object of class `"jko_sample"`: `x` (n x D), `log_density`
#'   (`NA` when \eqn{\rho_0} has no log-density), `step` and `time`.
#' @examples
#' set.seed(1)
#' fit <- jko_fit(potential_double_well(), init_gaussian(0, 0.25), h = 0.1,
#'                steps = 2, hidden = c(8, 8), batch = 128, iters = 40)
#' s <- jko_sample(fit, 500)
#' s
#' head(as.matrix(s))
#' @export
jko_sample <- function(fit, n = 1000, step = NULL, time = NULL, threads = NULL,
                       resample = FALSE, ...) {
  check_fit(fit)
  n <- check_count(n, "n")
  k <- resolve_step(fit, step, time)
  threads <- if (is.null(threads)) fit$settings$threads else check_threads(threads)
  resample <- check_flag(resample, "resample")
  x0 <- fit$init$sample(n)
  ld <- if (is.null(fit$init$logdensity)) rep(NA_real_, n) else init_logdensity(fit$init, x0)
  x <- to_cols(x0)
  for (j in seq_len(k)) {
    out <- push(step_net(fit, j), fit$theta[[j]], x, threads, logdet = TRUE)
    x <- out$y
    ld <- ld - out$logdet
  }
  x <- t(x)
  extra <- list()
  if (resample) {
    if (anyNA(ld)) init_logdensity(fit$init, x[1L, , drop = FALSE])
    lw <- importance_log_weights(fit, x, ld)
    lw[is.na(lw)] <- -Inf
    if (all(lw == -Inf)) abort("resampling failed: every importance weight is zero or undefined.")
    w <- exp(lw - max(lw))
    idx <- sample.int(n, n, replace = TRUE, prob = w)
    x <- x[idx, , drop = FALSE]
    ld <- ld[idx]
    extra <- list(ess = sum(w)^2 / sum(w^2), pareto_k = pareto_khat(lw))
  }
  structure(c(list(x = x, log_density = ld, step = k, time = k * fit$h,
                   dim = fit$dim, resampled = resample), extra), class = "jko_sample")
}

#' @export
as.matrix.jko_sample <- function(x, ...) x$x

#' @export
print.jko_sample <- function(x, ...) {
  cat(sprintf("%d samples of the flow at step %d (t = %g), dimension %d\n",
              nrow(x$x), x$step, x$time, x$dim))
  m <- colMeans(x$x)
  s <- apply(x$x, 2L, stats::sd)
  shown <- seq_len(min(6L, x$dim))
  tab <- rbind(mean = m[shown], sd = s[shown])
  colnames(tab) <- paste0("x", shown)
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
