# The fit object: its checks, the step of a time, and its law at a step.

check_fit <- function(fit, arg = "fit", call = sys.call(-1L)) {
  if (!inherits(fit, "jko_fit")) {
    abort("`%s` must be a fit from jko_fit(), not %s.", arg, describe(fit), call = call)
  }
  validate_fit(fit, arg, call)
}

# Everything of a fit that reaches C, checked against the fit itself: the
# network's architecture, each step's parameters and change of variables,
# the start's and the potential's dimensions, the history's rows. A fit
# whose parts were removed or replaced is refused with what is wrong,
# before any work.
validate_fit <- function(fit, arg = "fit", call = sys.call(-1L)) {
  bad <- function(what) {
    abort("`%s` is not a valid fit: %s (was it modified?).", arg, what, call = call)
  }
  net <- fit$net
  if (!is.list(net) || !is.numeric(net$dim) || length(net$dim) != 1L ||
      !is.numeric(net$hidden) || !length(net$hidden) || !is.numeric(net$rank) ||
      !isTRUE(net$activation %in% activations) || !is.numeric(net$alpha_min)) {
    bad("its network `net` is missing or incomplete")
  }
  D <- net$dim
  if (!identical(as.integer(fit$dim), as.integer(D))) bad("`dim` differs from its network's")
  if (!inherits(fit$init, c("jko_law", "jko_init")) || !identical(as.integer(fit$init$dim), as.integer(D))) {
    bad(sprintf("its start `init` is not a law of dimension %d", D))
  }
  pot <- fit$potential
  if (!inherits(pot, c("jko_potential", "jko_energy")) ||
      !(is.na(pot$dim) || pot$dim == D)) {
    bad(sprintf("its `potential` is not a potential of dimension %d", D))
  }
  if (!is.list(fit$theta)) bad("its maps' parameters `theta` are missing (or not a list)")
  K <- length(fit$theta)
  npar <- icnn_npar(net)
  ok_theta <- vapply(fit$theta, function(th) is.double(th) && length(th) == npar, NA)
  if (!is.list(fit$theta) || !all(ok_theta)) {
    bad(sprintf("its maps' parameters `theta` must be %d vectors of %d numbers", K, npar))
  }
  ok_std <- vapply(fit$std, function(s) {
    is.double(s$center) && length(s$center) == D &&
      ((is.double(s$scale) && length(s$scale) == 1L && is.finite(s$scale) && s$scale > 0) ||
         (is.matrix(s$L) && is.double(s$L) && identical(dim(s$L), c(D, D))))
  }, NA)
  if (!is.list(fit$std) || length(fit$std) != K || !all(ok_std)) {
    bad(sprintf("its changes of variables `std` must be %d, each a centre of length %d and a scale or a %d x %d factor", K, D, D, D))
  }
  if (!is.data.frame(fit$history) || nrow(fit$history) != K + 1L) {
    bad(sprintf("its `history` must have %d rows (steps 0 to %d)", K + 1L, K))
  }
  invisible(fit)
}

# The identity of a fit's law at step k, carried by its draws (jko_sample())
# so that predict() can tell them from another fit's: the fit's seed, the
# step, the potential's and the start's labels and a checksum of the
# step's map.
fit_id <- function(fit, k) {
  th <- if (k > 0L) fit$theta[[k]] else numeric(0)
  sprintf("%s|%d|%.15g|%s|%s", format(fit$seed %||% NA), k, sum(th * cos(seq_along(th))),
          fit$potential$label %||% "", as_law(fit$init)$label %||% "")
}

# The number of parameters of a network (the layout of src/icnn.h: per
# layer l, A_l (w_l r x D), B_l (w_l x D), c_l (w_l), W_l (w_l x w_{l-1},
# l >= 2); then v (w_L), a (1) and, with two layers or more, v_1 (w_1)).
icnn_npar <- function(net) {
  w <- net$hidden
  L <- length(w)
  D <- net$dim
  sum(w * (net$rank * D + D + 1)) + sum(w[-1L] * w[-L]) + w[L] + 1 + if (L > 1L) w[1L] else 0
}

# The step k of a fit from `step` or `time` (the nearest step).
resolve_step <- function(fit, step = NULL, time = NULL) {
  K <- length(fit$theta)
  if (!is.null(step) && !is.null(time)) abort("give `step` or `time`, not both.")
  if (!is.null(time)) {
    if (!is.numeric(time) || length(time) != 1L || !is.finite(time) || time < 0) {
      abort("`time` must be a single non-negative number, not %s.", describe(time))
    }
    times <- fit$history$time[seq_len(K + 1L)]
    k <- which.min(abs(times - time)) - 1L
    h_k <- if (k > 0L) times[k + 1L] - times[k] else if (K > 0L) times[2L] else fit$h
    if (abs(time - times[k + 1L]) > h_k / 2 + 1e-12) {
      abort("`time` must be within the fitted range [0, %g] (%d steps of h = %g), not %g.",
            times[K + 1L], K, fit$h, time)
    }
    return(as.integer(k))
  }
  if (is.null(step)) return(K)
  if (!is.numeric(step) || length(step) != 1L || !is.finite(step) ||
      step != round(step) || step < 0 || step > K) {
    abort("`step` must be a whole number in 0..%d (the fitted steps), not %s.", K,
          describe(step))
  }
  as.integer(step)
}

# The time of step k (for a stationary flow, of its whitened flow).
step_time <- function(fit, k) fit$history$time[k + 1L]

# The map nodes (R/law.R) of steps 1..k of a fit.
fit_map_nodes <- function(fit, k = length(fit$theta)) {
  lapply(seq_len(k), function(j) map_node(fit$net, fit$theta[[j]], fit$std[[j]]))
}

# The law of a fit at step k: its start's law with the maps of steps 1..k.
fit_law <- function(fit, k = length(fit$theta)) {
  law_append(as_law(fit$init), fit_map_nodes(fit, k))
}

#' A fitted flow as the start of a new one
#'
#' `init_fit()` makes the law \eqn{\rho_t} of a fit, at one of its steps,
#' the initial distribution \eqn{\rho_0} of a new flow: its samples are
#' those of [jko_sample()] and its log-density that of [jko_density()], both
#' exact for the fitted flow. A flow started from it has exact densities end
#' to end: a point of the new flow is pulled back through the new maps, then
#' through those of `fit`, down to the first \eqn{\rho_0}. Fits chain to
#' any depth (a fit of a fit of a fit): the law of a fit is a flat list
#' of maps (and of Bayes updates, see [jko_filter()]) on a base
#' distribution, so a chained fit saves and loads with [saveRDS()] and
#' [readRDS()] like any other, holding every map below it, and its samples
#' and densities go through all its maps in one pass.
#'
#' Samples of a chained flow cost a push through all the maps below it,
#' densities a pull-back (one Newton inversion per map and point): both grow
#' with the depth of the chain.
#'
#' @param fit A `"jko_fit"`.
#' @param step,time The step of `fit`, or its time (the nearest step), whose
#'   law is the new start; default the last step.
#' @return The law of `fit` at that step, an initial distribution for
#'   [jko_fit()]: an object of class `"jko_law"`, with the dimension `dim`,
#'   the `base` distribution of the first flow and the `nodes` above it.
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
  fit_law(fit, resolve_step(fit, step, time))
}
