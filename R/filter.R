# Chained flows: Bayesian updates of a fit's law by a likelihood
# (jko_update()), continuous-discrete filtering (jko_filter()), and the
# fine-grid 1-D Fokker-Planck solver that serves as their reference.

#' Update a fitted law by a likelihood
#'
#' Bayes' rule for the law of a fit: the target
#' \eqn{\pi(x) \propto \rho_t(x)\,L(y \mid x)}, whose log-density is
#' \eqn{\log\rho_t(x) + \log L(y \mid x)}, with \eqn{\rho_t} the fit's own
#' exact density ([jko_density()]), sampled as every target is: by a flow
#' run to its stationary law (see "Flows to the stationary law" in
#' [jko_fit()]), here started from \eqn{\rho_t} itself ([init_fit()]). The
#' result is again a fit, with samples and exact densities of the posterior
#' law (pulled back through its own maps, then through those of `fit`); it
#' can be the start of a new flow or updated again.
#' [jko_evidence()] of the result estimates
#' \eqn{\log\int\rho_t(x)L(y \mid x)\,dx}, the marginal likelihood of the
#' data under \eqn{\rho_t}.
#'
#' A pull-back through a long chain of maps costs a Newton inversion per map
#' and point, and the training evaluates \eqn{\log\rho_t} at every batch.
#' In dimension 1 (with `tabulate = TRUE`, the default there),
#' \eqn{\log\rho_t} is therefore evaluated exactly on a grid of 2049 points
#' spanning the draws of \eqn{\rho_t} and interpolated by a cubic spline
#' (with its derivative for the gradient); points outside the grid are
#' pulled back exactly. The spline's error (\eqn{O(\delta^4)} for a grid
#' step \eqn{\delta}) is orders of magnitude below the training's, and the
#' densities of the result are exact for its maps whatever target they were
#' trained on. In higher dimensions every value is an exact pull-back and
#' gradients are central differences of it.
#'
#' @param fit A `"jko_fit"`: its law at `step` (or `time`) is the prior.
#' @param loglik The log-likelihood: a function of an n x D matrix of points
#'   returning the n values of \eqn{\log L(y \mid x)} (up to a constant).
#' @param grad `NULL` (central differences of `loglik`) or a function of an
#'   n x D matrix returning the n x D matrix of gradients of `loglik`.
#' @param step,time The step or time of `fit` whose law is updated (default
#'   the last).
#' @param tabulate In dimension 1, interpolate \eqn{\log\rho_t} on a fine
#'   grid rather than pull back every point (see Details).
#' @param control,threads,verbose,... As in [jko_fit()]: the settings of the
#'   stationary flow (its defaults need no tuning).
#' @return A `"jko_fit"` (a flow to the stationary law \eqn{\pi}, with its
#'   verdict) whose `init` is [init_fit()] of `fit`.
#' @seealso [jko_filter()] (alternating flows and updates), [init_fit()].
#' @examples
#' \donttest{
#' set.seed(1)
#' # a Gaussian fit (the flow of N(0, 1) under Phi = x^2 / 2 is N(0, 1)
#' # at every time), updated by an observation y = 1 with noise sd 1:
#' # the posterior is N(0.5, 0.5)
#' fit <- jko_fit(potential_quadratic(1), init_gaussian(0, 1), h = 0.5,
#'                steps = 1, hidden = c(8, 8), batch = 256, iters = 50)
#' # (the law at step 0 is N(0, 1) exactly; small settings for speed)
#' post <- jko_update(fit, function(x) dnorm(1, x[, 1], 1, log = TRUE), step = 0,
#'                    control = jko_control(hidden = c(8, 8), batch = 256, iters = 100,
#'                                          pool = 2^14, monitor = 2^13))
#' s <- jko_sample(post, 4000)
#' c(mean(s$x), var(s$x))
#' }
#' @export
jko_update <- function(fit, loglik, grad = NULL, step = NULL, time = NULL,
                       tabulate = NULL, control = jko_control(), threads = NULL,
                       verbose = interactive(), ...) {
  check_fit(fit)
  if (!is.function(loglik)) {
    abort("`loglik` must be a function of an n x D matrix returning n log-likelihoods, not %s.",
          describe(loglik))
  }
  if (!is.null(grad) && !is.function(grad)) {
    abort("`grad` must be NULL or a function of an n x D matrix, not %s.", describe(grad))
  }
  if (is.null(fit$init$log_density)) {
    abort(paste0("`fit` must have densities to be updated: its initial distribution ",
                 "has no log-density (give `log_density` to init_samples())."))
  }
  prior <- init_fit(fit, step, time)
  update_law(prior, loglik, grad, tabulate, control, threads, verbose, ...)
}

# The update of any start with a log-density (a fit's law, or a given
# rho_0 in jko_filter()).
update_law <- function(prior, loglik, grad = NULL, tabulate = NULL, control = jko_control(),
                       threads = NULL, verbose = FALSE, ...) {
  D <- prior$dim
  if (is.null(tabulate)) tabulate <- D == 1L
  tabulate <- check_flag(tabulate, "tabulate")
  if (tabulate && D != 1L) abort("`tabulate` works in dimension 1 only, not %d.", D)
  threads <- resolve_threads(threads)
  # the likelihood, checked once on draws of the prior before any training
  x_try <- init_draw(prior, 16L, log_density = FALSE, threads = threads)$x
  v <- loglik(x_try)
  if (!is.numeric(v) || length(v) != nrow(x_try) || anyNA(v) || any(v == Inf)) {
    abort("`loglik` must return %d log-likelihoods (numbers, -Inf allowed) for %d points, not %s.",
          nrow(x_try), nrow(x_try), describe(v))
  }
  pot <- update_potential(prior, loglik, grad, tabulate, threads)
  jko_fit(pot, init = prior, control = control, threads = threads, verbose = verbose,
          stationary = TRUE, ...)
}

# The target of jko_update(): -log rho_t(x) - log L(y | x) as a potential
# evaluated in R. (Made in its own function so that its closures hold the
# prior and the likelihood, nothing else of the caller's.)
update_potential <- function(prior, loglik, grad, tabulate, threads) {
  log_prior <- if (tabulate) tabulated_log_density(prior, threads)
               else list(value = prior$log_density,
                         gradient = function(x) fd_gradient(prior$log_density, x))
  ll_grad <- if (is.null(grad)) function(x) fd_gradient(loglik, x) else grad
  pot <- new_potential(
    function(x) -(log_prior$value(x) + loglik(x)),
    function(x) -(log_prior$gradient(x) + ll_grad(x)),
    dim = prior$dim, label = "a fitted law times a likelihood",
    names = c(value = "loglik", gradient = "grad"),
    class = c("jko_target_update", "jko_target_logdensity"))
  pot$support <- TRUE
  pot
}

# log rho(x) of a 1-D law with exact log-density: a cubic spline through
# its exact values on a grid of n points spanning 2^14 of its draws and
# their spread beyond, exact pull-backs outside the grid.
tabulated_log_density <- function(init, threads, n = 2049L) {
  d <- init_draw(init, 2^14, log_density = FALSE, threads = threads)$x[, 1L]
  r <- range(d)
  s <- stats::sd(d)
  g <- seq(r[1L] - s, r[2L] + s, length.out = n)
  ld <- init$log_density(matrix(g, ncol = 1L))
  if (anyNA(ld) || any(!is.finite(ld))) {
    abort("the log-density of the prior is not finite on the span of its draws.")
  }
  sp <- stats::splinefun(g, ld, method = "fmm")
  lo <- g[1L]
  hi <- g[n]
  exact <- init$log_density
  list(
    value = function(x) {
      z <- x[, 1L]
      inside <- z >= lo & z <= hi
      out <- numeric(length(z))
      out[inside] <- sp(z[inside])
      if (any(!inside)) out[!inside] <- exact(x[!inside, , drop = FALSE])
      out
    },
    gradient = function(x) {
      z <- x[, 1L]
      inside <- z >= lo & z <= hi
      out <- numeric(length(z))
      out[inside] <- sp(z[inside], deriv = 1L)
      if (any(!inside)) out[!inside] <- fd_gradient(exact, x[!inside, , drop = FALSE])
      matrix(out, ncol = 1L)
    })
}

#' Continuous-discrete filtering with chained JKO flows
#'
#' The filtering laws \eqn{p(X_{t_j} \mid y_1, \dots, y_j)} of the diffusion
#' \eqn{dX = -\nabla\Phi(X)\,dt + \sqrt{2/\beta}\,dW}{dX = -grad Phi(X) dt + sqrt(2/beta) dW},
#' \eqn{X_0 \sim \rho_0}, observed at times \eqn{t_1 < t_2 < \dots} through
#' \eqn{y_j = X_{t_j} + \varepsilon_j}, \eqn{\varepsilon_j \sim N(0, sd^2 I)}
#' (or any likelihood). Between observations the law is carried by the
#' time-accurate Fokker-Planck flow ([jko_fit()] with
#' `stationary = FALSE`), started from the last filtering law
#' ([init_fit()]); at each observation it is updated by Bayes' rule
#' ([jko_update()]). Every filtering law is a fit with samples and exact
#' densities, through the whole chain of maps down to \eqn{\rho_0}.
#'
#' The defaults were chosen on the one-dimensional benchmark of Mokrov et
#' al. (2021) (`inst/bench/filtering.R`, whose figures the README
#' reports): a JKO step of at most `h = 0.125` (each interval is cut into
#' equal steps; the time discretisation then costs about 1e-4 in
#' symmetric KL there), networks of width 32 x 32 trained 300 iterations
#' of batch 512 per step for the flows, and the self-tuning stationary flow
#' of [jko_update()] with networks of width 32 x 32 and `kl_tol = 0.002`
#' for the updates; both draw their batches from pools of \eqn{2^{15}}
#' samples, since every sample of a chained flow is pushed through all the
#' maps below it. Both start their networks with sharper units
#' (`init_scale = 8`, see [jko_control()]): the potential there,
#' \eqn{\sin(2\pi x)/\pi + x^2/4}, puts ripples of period 1 on laws of
#' sd about 0.7, which networks of unit scale never learn (their flows'
#' densities stay smooth, about 0.05 from the truth in symmetric KL, the
#' whole error of the earlier defaults). The README gives the accuracy
#' reached there against a fine-grid solution and a particle filter.
#' For a potential that varies on the scale of the laws, `init_scale = 1`
#' in both controls is the safer choice.
#'
#' @param potential The potential \eqn{\Phi} of the drift (see
#'   [potentials]).
#' @param y The observations: a vector (one per time, in dimension 1) or a
#'   matrix with one row per time.
#' @param times The observation times, increasing, \eqn{\ge 0}.
#' @param sd The standard deviation of the Gaussian observation noise, a
#'   positive number (or one per coordinate); ignored when `loglik` is
#'   given.
#' @param loglik `NULL` (Gaussian noise), or a function `loglik(x, y)` of
#'   an n x D matrix of states and one observation `y` (a row of `y`),
#'   returning the n log-likelihoods \eqn{\log p(y \mid x)}.
#' @param init The law of \eqn{X_0}, with a log-density (default
#'   \eqn{N(0, I)}).
#' @param t_end `NULL`, or a time after the last observation to which the
#'   last filtering law is carried (the predictive law of \eqn{X_{t_{end}}}
#'   given all the observations).
#' @param beta Inverse temperature \eqn{\beta}.
#' @param h The largest JKO step of the flows between observations.
#' @param control The training settings of the flows between observations
#'   ([jko_control()]).
#' @param control_update The settings of the updates' stationary flows.
#' @param threads,verbose As in [jko_fit()].
#' @return An object of class `"jko_filter"`: `fits`, the filtering laws
#'   at the observation times (each a `"jko_fit"`, for [jko_sample()] and
#'   [jko_density()]); `predictions`, the flows between observations (a
#'   fit, or `NULL` where two times coincide); `final`, the flow to `t_end`
#'   (or `NULL`); `table`, one row per observation time with the filtering
#'   mean and sd (of the first coordinate), the steps of the flow and of the
#'   update, the update's estimated \eqn{KL(\rho \| \pi)} and the seconds
#'   taken; and `times`, `y`, `t_end`.
#' @references Mokrov, P., Korotin, A., Li, L., Genevay, A., Solomon, J. and
#'   Burnaev, E. (2021). Large-scale Wasserstein gradient flows. *Advances in
#'   Neural Information Processing Systems* 34.
#' @seealso [jko_update()], [init_fit()].
#' @examples
#' \donttest{
#' set.seed(1)
#' # an Ornstein-Uhlenbeck process observed twice, small settings for speed
#' small <- jko_control(hidden = c(8, 8), batch = 256, iters = 60, pool = 2^14,
#'                      monitor = 2^13)
#' f <- jko_filter(potential_quadratic(1), y = c(0.8, 1.2), times = c(0.5, 1),
#'                 control = small, control_update = small)
#' f
#' jko_density(f$fits[[2]], c(0, 0.5, 1))
#' plot(f)
#' }
#' @export
jko_filter <- function(potential, y, times, sd = 1, loglik = NULL, init = NULL,
                       t_end = NULL, beta = 1, h = 0.125,
                       control = jko_control(hidden = c(32, 32), batch = 512, iters = 300,
                                             pool = 2^15, init_scale = 8),
                       control_update = jko_control(hidden = c(32, 32), kl_tol = 0.002,
                                                    pool = 2^15, init_scale = 8),
                       threads = NULL, verbose = interactive()) {
  call <- match.call()
  check_potential(potential)
  if (is.data.frame(y)) y <- as.matrix(y)
  if (!is.numeric(y) || length(y) < 1L) {
    abort("`y` must be a numeric vector or matrix of observations, not %s.", describe(y))
  }
  if (is.null(dim(y))) {
    D <- if (!is.na(potential$dim)) potential$dim else if (!is.null(init)) init$dim else 1L
    y <- if (D == 1L) matrix(y, ncol = 1L) else matrix(y, nrow = 1L)
  }
  if (is.null(init)) {
    init <- init_gaussian(rep(0, if (!is.na(potential$dim)) potential$dim else ncol(y)), 1)
  }
  check_init(init)
  D <- init$dim
  if (!is.na(potential$dim) && potential$dim != D) {
    abort("`potential` has dimension %d but `init` has dimension %d.", potential$dim, D)
  }
  if (is.null(init$log_density)) {
    abort("`init` must have a log-density: the filtering laws' densities start from it.")
  }
  if (!is.numeric(times) || length(times) != nrow(y) || anyNA(times) ||
      any(!is.finite(times)) || any(times < 0) || any(diff(times) < 0)) {
    abort("`times` must be %d non-decreasing finite times >= 0 (one per observation), not %s.",
          nrow(y), describe(times))
  }
  if (is.null(loglik)) {
    if (ncol(y) != D) {
      abort("`y` must have %d column%s (the dimension of the state), not %d.", D,
            if (D == 1L) "" else "s", ncol(y))
    }
    if (!is.numeric(sd) || !length(sd) %in% c(1L, D) || anyNA(sd) || any(!is.finite(sd)) ||
        any(sd <= 0)) {
      abort("`sd` must be a positive number (or %d of them), not %s.", D, describe(sd))
    }
    if (anyNA(y) || any(!is.finite(y))) abort("`y` must be finite numbers.")
  } else if (!is.function(loglik)) {
    abort("`loglik` must be NULL or a function(x, y) returning n log-likelihoods, not %s.",
          describe(loglik))
  }
  if (!is.null(t_end) && (!is.numeric(t_end) || length(t_end) != 1L || !is.finite(t_end) ||
                          t_end < times[length(times)])) {
    abort("`t_end` must be NULL or a time >= the last observation time (%g), not %s.",
          times[length(times)], describe(t_end))
  }
  beta <- check_positive(beta, "beta")
  h <- check_positive(h, "h")
  if (!inherits(control, "jko_control")) {
    abort("`control` must be a jko_control(), not %s.", describe(control))
  }
  if (!inherits(control_update, "jko_control")) {
    abort("`control_update` must be a jko_control(), not %s.", describe(control_update))
  }
  threads <- resolve_threads(threads)
  verbose <- check_flag(verbose, "verbose")

  J <- nrow(y)
  fits <- vector("list", J)
  preds <- vector("list", J)
  rows <- vector("list", J)
  cur <- init
  t_cur <- 0
  for (j in seq_len(J)) {
    t0 <- proc.time()[["elapsed"]]
    preds[j] <- list(filter_flow(potential, cur, times[j] - t_cur, h, beta, control,
                                 threads))
    if (!is.null(preds[[j]])) cur <- init_fit(preds[[j]])
    lik <- if (is.null(loglik)) gaussian_loglik(y[j, ], sd) else user_loglik(loglik, y[j, ])
    post <- update_law(cur, lik$value, lik$gradient, control = control_update,
                       threads = threads, verbose = FALSE)
    fits[[j]] <- post
    cur <- init_fit(post)
    t_cur <- times[j]
    mon <- post$monitor$points
    rows[[j]] <- data.frame(
      time = times[j], y = y[j, 1L], mean = mean(mon[1L, ]), sd = stats::sd(mon[1L, ]),
      flow_steps = if (is.null(preds[[j]])) 0L else length(preds[[j]]$theta),
      update_steps = length(post$theta), update_kl = post$verdict$kl,
      seconds = proc.time()[["elapsed"]] - t0)
    if (verbose) {
      message(sprintf("t = %-6g y = %-8.4g filtering mean %.4g, sd %.4g (%d + %d steps, update KL %.2g, %.1f s)",
                      times[j], y[j, 1L], rows[[j]]$mean, rows[[j]]$sd, rows[[j]]$flow_steps,
                      rows[[j]]$update_steps, rows[[j]]$update_kl, rows[[j]]$seconds))
    }
  }
  final <- NULL
  if (!is.null(t_end) && t_end > t_cur) {
    final <- filter_flow(potential, cur, t_end - t_cur, h, beta, control, threads)
  }
  structure(list(call = call, potential = potential, times = as.double(times), y = y,
                 t_end = t_end, fits = fits, predictions = preds, final = final,
                 table = do.call(rbind, rows), dim = D),
            class = "jko_filter")
}

# The time-accurate flow from `start` over a time dt, in equal steps of at
# most h (NULL for dt = 0).
filter_flow <- function(potential, start, dt, h, beta, control, threads) {
  if (dt <= 0) return(NULL)
  steps <- max(1L, as.integer(ceiling(dt / h - 1e-9)))
  jko_fit(potential, start, h = dt / steps, steps = steps, beta = beta, control = control,
          threads = threads, verbose = FALSE, stationary = FALSE)
}

# log N(y; x, sd^2 I) up to a constant, and its gradient in x. (Closures
# over y and sd only, so that a saved fit does not carry the caller.)
gaussian_loglik <- function(y, sd) {
  force(y)
  s2 <- rep_len(sd, length(y))^2
  list(value = function(x) -0.5 * colSums((t(x) - y)^2 / s2),
       gradient = function(x) t(-(t(x) - y) / s2))
}

user_loglik <- function(loglik, y) {
  force(loglik)
  force(y)
  list(value = function(x) loglik(x, y), gradient = NULL)
}

#' @export
print.jko_filter <- function(x, ...) {
  J <- length(x$fits)
  cat(sprintf("JKO filter: %d observation%s in [%g, %g]%s, dimension %d\n", J,
              if (J == 1L) "" else "s", x$times[1L], x$times[J],
              if (is.null(x$final)) "" else sprintf(", predicted to t = %g", x$t_end), x$dim))
  cat(sprintf("  potential: %s\n", x$potential$label))
  tab <- x$table
  tab[c("y", "mean", "sd")] <- lapply(tab[c("y", "mean", "sd")], signif, 4)
  tab$update_kl <- signif(tab$update_kl, 2)
  tab$seconds <- round(tab$seconds, 1)
  print(tab, row.names = FALSE)
  cat(sprintf("  %.1f s in all; the filtering laws are fits: $fits[[j]]%s\n",
              sum(x$table$seconds) + if (is.null(x$final)) 0 else sum(x$final$history$seconds),
              if (is.null(x$final)) "" else sprintf(", the law at t = %g: $final", x$t_end)))
  invisible(x)
}

#' Plot a filter
#'
#' `"density"` (dimension 1): the filtering densities at the observation
#' times (and the predictive density at `t_end`), each with its
#' observation marked on the axis; `"path"`: the filtering mean of the
#' first coordinate with a band of two sds, and the observations.
#'
#' @param x A `"jko_filter"`.
#' @param what `"density"` or `"path"`.
#' @param which For `"density"`: the indices of the observation times to
#'   draw (default all).
#' @param n Number of points of each density curve.
#' @param ... Passed to [plot.default()].
#' @return `x`, invisibly.
#' @export
plot.jko_filter <- function(x, what = c("density", "path"), which = NULL, n = 200, ...) {
  what <- match.arg(what)
  n <- check_count(n, "n", min = 2)
  tab <- x$table
  if (what == "path" || x$dim > 1L) {
    lo <- tab$mean - 2 * tab$sd
    hi <- tab$mean + 2 * tab$sd
    graphics::plot(tab$time, tab$mean, type = "b", pch = 19, ylim = range(lo, hi, x$y[, 1L]),
                   xlab = "time", ylab = "state (first coordinate)", ...)
    graphics::polygon(c(tab$time, rev(tab$time)), c(lo, rev(hi)),
                      col = grDevices::adjustcolor("steelblue", 0.25), border = NA)
    graphics::points(x$times, x$y[, 1L], pch = 4, col = "firebrick")
    graphics::legend("topright", c("filtering mean", "+/- 2 sd", "observations"),
                     pch = c(19, 15, 4), col = c("black", grDevices::adjustcolor("steelblue", 0.4),
                                                  "firebrick"), bty = "n")
    return(invisible(x))
  }
  J <- length(x$fits)
  if (is.null(which)) which <- seq_len(J)
  if (!is.numeric(which) || anyNA(which) || any(!which %in% seq_len(J))) {
    abort("`which` must be indices of observation times in 1..%d, not %s.", J, describe(which))
  }
  laws <- lapply(which, function(j) list(fit = x$fits[[j]], time = x$times[j], y = x$y[j, 1L]))
  if (!is.null(x$final)) laws <- c(laws, list(list(fit = x$final, time = x$t_end, y = NA)))
  r <- range(unlist(lapply(laws, function(l) {
    m <- l$fit$monitor$points[1L, ]
    stats::quantile(m, c(0.001, 0.999))
  })))
  grid <- seq(r[1L] - 0.1 * diff(r), r[2L] + 0.1 * diff(r), length.out = n)
  dens <- vapply(laws, function(l) as.numeric(jko_density(l$fit, grid)), numeric(n))
  cols <- grDevices::hcl.colors(length(laws), "viridis")
  graphics::matplot(grid, dens, type = "l", lty = 1, col = cols, xlab = "x",
                    ylab = "filtering density", ...)
  ys <- vapply(laws, function(l) l$y, numeric(1))
  graphics::rug(ys[!is.na(ys)], col = cols[!is.na(ys)], lwd = 2)
  graphics::legend("topright", sprintf("t = %g", vapply(laws, function(l) l$time, numeric(1))),
                   col = cols, lty = 1, bty = "n", cex = 0.8)
  invisible(x)
}

# A fine-grid solution of the 1-D Fokker-Planck equation
#   d rho / dt = d/dx (Phi'(x) rho + beta^-1 d rho / dx)
# on [lower, upper] with no flux through the ends: the reference for the
# filter's tests and benchmark. Space: n nodes, the Chang-Cooper
# (Scharfetter-Gummel) flux between neighbours,
#   F_{i+1/2} = (B(w_i) rho_i - B(-w_i) rho_{i+1}) / (beta dx),
#   w_i = beta (Phi(x_{i+1}) - Phi(x_i)),  B(w) = w / (e^w - 1),
# positive, second order, and exact at equilibrium (no flux when
# rho_{i+1} / rho_i = e^{-w_i}). Time: exact, by the eigendecomposition of
# the generator, which pi^{-1/2} L pi^{1/2} (pi_i = e^{-beta Phi(x_i)})
# makes symmetric tridiagonal with off-diagonal (w/2) / sinh(w/2) / (beta
# dx^2). Returns the grid `x`, its step `dx`, and `evolve(rho, t)`
# carrying densities at the nodes over a time t.
fp_grid <- function(phi, lower, upper, n, beta = 1) {
  x <- seq(lower, upper, length.out = n)
  dx <- x[2L] - x[1L]
  p <- beta * phi(x)
  w <- diff(p)
  bern <- function(z) ifelse(abs(z) < 1e-8, 1 - z / 2, z / expm1(z))
  right <- bern(w) / (beta * dx^2)     # rate from node i to i + 1
  left <- bern(-w) / (beta * dx^2)     # rate from node i + 1 to i
  off <- ifelse(abs(w) < 1e-8, 1, (w / 2) / sinh(w / 2)) / (beta * dx^2)
  diag_ <- -(c(right, 0) + c(0, left))
  S <- matrix(0, n, n)
  S[cbind(1:n, 1:n)] <- diag_
  S[cbind(1:(n - 1L), 2:n)] <- off
  S[cbind(2:n, 1:(n - 1L))] <- off
  e <- eigen(S, symmetric = TRUE)
  half <- exp(-(p - min(p)) / 2)     # pi^{1/2}, scaled
  V <- e$vectors
  lambda <- pmin(e$values, 0)
  list(x = x, dx = dx,
       evolve = function(rho, t) {
         q <- crossprod(V, rho / half)
         out <- half * drop(V %*% (exp(lambda * t) * q))
         pmax(out, 0)
       })
}
