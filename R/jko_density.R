#' Density of the flow at given points
#'
#' Evaluates \eqn{\rho_k} at points \eqn{y} of its space by pulling each point
#' back through the maps: \eqn{x_{j-1} = (\nabla\psi_j)^{-1}(x_j)}, the
#' minimiser of the strongly convex \eqn{\psi_j(z) - z^\top x_j}, found by
#' Newton's method with a line search; then
#' \eqn{\log\rho_k(y) = \log\rho_0(x_0) - \sum_j\log\det\nabla^2\psi_j(x_{j-1})}.
#'
#' @param fit A `"jko_fit"`.
#' @param x Points, an n x D matrix (a vector is one point, or n points when D = 1).
#' @param step,time The step or time (see [jko_sample()]).
#' @param log Return log-densities?
#' @param tol Tolerance on the residual \eqn{\max|\nabla\psi(z) - y|} of each inversion.
#' @param maxit Maximum Newton iterations per inversion.
#' @param threads Number of threads (default the option `jkoflow.threads`,
#'   see [jko_control()]).
#' @param scale For a target with constrained parameters ([target_stan()]):
#'   `x` holds the model's parameters on their `"constrained"` scale (the
#'   default; columns in the order, or under the names, of the program's
#'   parameters), and the density is theirs, Jacobian included; or `x` is
#'   on the `"unconstrained"` scale of the flow. The same for other targets.
#' @return An object of class `"jko_density"`: the points `x`, `log_density`,
#'   `log`, `step`, `time` and `residual` (the largest inversion residual);
#'   [as.numeric()] gives the densities (log-densities if `log = TRUE`).
#'   Where a map's Hessian is not positive definite at a pulled-back point
#'   or on the way to it (possible only when its parameters overflow) the
#'   density is `NA`, with a warning.
#' @examples
#' set.seed(1)
#' fit <- jko_fit(potential_double_well(), init_gaussian(0, 0.25), h = 0.1,
#'                steps = 2, hidden = c(8, 8), batch = 128, iters = 40)
#' d <- jko_density(fit, seq(-2, 2, by = 0.05))
#' sum(as.numeric(d)) * 0.05   # about 1
#' @export
jko_density <- function(fit, x, step = NULL, time = NULL, log = FALSE,
                        tol = 1e-10, maxit = 100, threads = NULL,
                        scale = c("constrained", "unconstrained")) {
  single_blas()  # (R/threads.R)
  check_fit(fit)
  scale <- choose_arg(scale, c("constrained", "unconstrained"), "scale")
  tr <- fit$potential$transform
  if (scale == "constrained" && !is.null(tr)) {
    theta <- constrained_points(x, tr$parameters)
    x <- tr$unconstrain(theta)
  }
  x <- check_points(x, fit$dim, "x")
  k <- resolve_step(fit, step, time)
  log <- check_flag(log, "log")
  tol <- check_positive(tol, "tol")
  maxit <- check_count(maxit, "maxit")
  threads <- resolve_threads(threads)
  out <- law_log_density(fit_law(fit, k), x, tol, maxit, threads)
  ld <- out$log_density
  resid <- out$residual
  if (scale == "constrained" && !is.null(tr)) {
    ld <- ld - tr$log_jacobian(x)
    x <- theta
  }
  structure(list(x = x, log_density = ld, log = log, step = k, time = step_time(fit, k),
                 residual = resid, dim = fit$dim), class = "jko_density")
}

#' @export
as.double.jko_density <- function(x, ...) {
  check_dots(...)
  if (x$log) x$log_density else exp(x$log_density)
}

#' @export
print.jko_density <- function(x, ...) {
  check_dots(...)
  v <- as.numeric(x)
  cat(sprintf("%s of the flow at step %d (t = %g) at %d point%s, dimension %d\n",
              if (x$log) "Log-density" else "Density", x$step, x$time, length(v),
              if (length(v) == 1L) "" else "s", x$dim))
  print(utils::head(signif(v, 5), 10L))
  if (length(v) > 10L) cat(sprintf("... (%d more)\n", length(v) - 10L))
  cat(sprintf("largest inversion residual: %.2g\n", x$residual))
  invisible(x)
}

# Points on a target's constrained scale: a matrix or data frame whose
# columns are the parameters, in order or by name (draws may carry more
# columns: transformed parameters, generated quantities).
constrained_points <- function(x, parameters) {
  if (is.data.frame(x)) x <- as.matrix(x)
  if (is.null(dim(x))) x <- matrix(x, ncol = length(parameters))
  if (!is.null(colnames(x)) && all(parameters %in% colnames(x))) {
    x <- x[, parameters, drop = FALSE]
  }
  if (!is.numeric(x) || ncol(x) != length(parameters) || any(!is.finite(x))) {
    abort("`x` must be finite values of the %d parameters (%s), one point per row, not %s.",
          length(parameters), paste(utils::head(parameters, 4L), collapse = ", "),
          describe(x))
  }
  x
}
