# print, summary and plot methods for fits, samples and densities.

#' Print a JKO fit
#'
#' A fit of a target run to its stationary law (`jko_fit(target)`) prints
#' as a posterior: a table of its variables under the target's names (mean,
#' sd, quantiles, the effective sample size of the draws and, for draws in
#' chains, \eqn{\hat R}), the fit's verdict on whether it reached the
#' target, and what it cost. Any other fit, or `training = TRUE`, prints the
#' flow: its potential, start, steps, network and the training's last loss.
#'
#' @param x A `"jko_fit"`.
#' @param training Print the flow's training rather than the posterior?
#' @param digits Significant digits of the posterior table.
#' @param ... Unused: a name given here is an error.
#' @return `x`, invisibly.
#' @seealso [summary.jko_fit()], [posterior-methods].
#' @examples
#' set.seed(1)
#' tg <- target_logdensity(function(x) -rowSums(x^2) / 2, function(x) -x,
#'                         variables = c("a", "b"))
#' fit <- suppressWarnings(jko_fit(tg, hidden = c(8, 8), iters = 100, pool = 2^12,
#'                                 monitor = 2^11, max_steps = 2, verbose = FALSE))
#' fit
#' print(fit, training = TRUE)
#' @export
print.jko_fit <- function(x, training = FALSE, digits = 3, ...) {
  check_dots(...)
  check_fit(x, "x")
  training <- check_flag(training, "training")
  digits <- check_count(digits, "digits")
  if (!training && has_posterior(x)) return(print_posterior(x, digits))
  K <- length(x$theta)
  energy <- inherits(x$potential, "jko_energy")
  cat(if (energy) "JKO flow (Wasserstein gradient flow of a free energy)\n"
      else "JKO flow (Fokker-Planck, Wasserstein gradient flow)\n")
  cat(sprintf("  %s %s\n  initial:   %s\n", if (energy) "energy:   " else "potential:",
              x$potential$label, as_law(x$init)$label))
  if (isTRUE(x$stationary)) {
    cat(sprintf("  %d step%s to the stationary law (whitened flow, t = %.3g), beta = %g%s\n",
                K, if (K == 1L) "" else "s", step_time(x, K), x$beta,
                if (K) paste0("; h ", range_text(x$history$h[-1L])) else ""))
  } else {
    cat(sprintf("  %d step%s of h = %g (t = %g), beta = %g\n", K, if (K == 1L) "" else "s",
                x$h, step_time(x, K), x$beta))
  }
  cat(sprintf("  network: %s, rank %d, %s; %s of batch %d per step\n",
              paste(x$net$hidden, collapse = " x "), x$net$rank, x$net$activation,
              iters_text(x), x$settings$batch))
  last <- x$history[nrow(x$history), ]
  cat(sprintf("  last step: loss %.5g, free energy %.5g; %.1f s in all\n",
              last$loss, last$free_energy, sum(x$history$seconds)))
  if (!is.null(x$verdict)) cat(strwrap(verdict_text(x$verdict), indent = 2, exdent = 2), sep = "\n")
  rej <- if (is.null(x$verdict)) potential_rejections(x$potential) else x$verdict$rejections
  if (isTRUE(rej$rejected > 0)) cat(strwrap(rejections_text(rej), indent = 2, exdent = 4), sep = "\n")
  invisible(x)
}

# The Adam iterations the steps used ("200 iterations", "150-400 iterations
# (adaptive, at most 500)").
iters_text <- function(x) {
  used <- x$history$iters[-1L]
  adaptive <- if (is.null(x$settings$adaptive)) isTRUE(x$stationary) else x$settings$adaptive
  if (!length(used) || all(is.na(used))) {
    return(sprintf("%s%d iterations", if (adaptive) "at most " else "", x$settings$iters))
  }
  sprintf("%s iterations%s", range_text(used),
          if (adaptive) sprintf(" (adaptive, at most %d)", x$settings$iters) else "")
}

# "0.5" or "0.5-2" of a vector of numbers.
range_text <- function(v) {
  v <- v[!is.na(v)]
  if (!length(v)) return("NA")
  r <- range(v)
  if (r[1L] == r[2L]) format(r[1L]) else paste0(format(r[1L]), "-", format(r[2L]))
}

#' Summarise a JKO fit
#'
#' For a fit of a target run to its stationary law, a summary of the
#' posterior as rstanarm gives one: the model, the table of its variables
#' (mean, the Monte Carlo standard error of the mean `se_mean` = sd /
#' \eqn{\sqrt{\mathrm{ESS}}}, sd, quantiles, effective sample size and,
#' for draws in chains, \eqn{\hat R}), the verdict and the cost, with the
#' training in `$training`. For any other fit, the training itself.
#'
#' @param object A `"jko_fit"`.
#' @param probs For a fit of a target, the probabilities of the quantiles
#'   in the table.
#' @param ... Unused: a name given here is an error.
#' @return For a fit of a target, an object of class
#'   `"summary.jko_posterior"`: `info` (the model), `statistics` (the
#'   table, a data frame with a row per variable), `draws`, `n`, `method`,
#'   `verdict`, `cost` (seconds, steps, iterations, evaluations) and
#'   `training`. The training is an object of class `"summary.jko_fit"` with
#'   the per-step table `history` (step, time, the h and iterations each
#'   step used, loss, free energy, seconds, and the estimates of the
#'   distance to the stationary law: see [jko_fit()]), the settings, and for
#'   a flow to the stationary law its `verdict`.
#' @examples
#' set.seed(1)
#' fit <- jko_fit(potential_double_well(), init_gaussian(0, 0.25), h = 0.1,
#'                steps = 2, hidden = c(8, 8), batch = 128, iters = 40)
#' summary(fit)
#' @export
summary.jko_fit <- function(object, probs = c(0.025, 0.25, 0.5, 0.75, 0.975), ...) {
  check_fit(object, "object")
  check_dots(...)
  if (!is.numeric(probs) || !length(probs) || anyNA(probs) || any(probs < 0 | probs > 1)) {
    abort("`probs` must be numbers in [0, 1], not %s.", describe(probs))
  }
  training <- structure(list(call = object$call, history = object$history,
                 potential = object$potential$label, init = as_law(object$init)$label,
                 h = object$h, beta = object$beta, dim = object$dim,
                 nparams = if (length(object$theta)) length(object$theta[[1L]]) else 0L,
                 stationary = isTRUE(object$stationary), iters = iters_text(object),
                 settings = object$settings, net = object$net, verdict = object$verdict),
            class = "summary.jko_fit")
  if (has_posterior(object)) return(summarise_posterior(object, probs, training))
  training
}

#' @export
print.summary.jko_fit <- function(x, ...) {
  check_dots(...)
  cat("Call:\n")
  print(x$call)
  cat(sprintf("\nPotential: %s\nInitial:   %s\n", x$potential, x$init))
  steps <- x$history$h[-1L]
  h <- if (isTRUE(x$stationary)) {
    sprintf("h chosen step by step (%s)", range_text(steps))
  } else sprintf("h = %g", x$h)
  cat(sprintf("Dimension %d, %s, beta = %g; network %s (rank %d), %d parameters per step\n",
              x$dim, h, x$beta, paste(x$net$hidden, collapse = " x "), x$net$rank,
              x$nparams))
  cat(sprintf("Adam: %s of batch %d per step, lr = %g; pool %d\n\n",
              x$iters %||% sprintf("%d iterations", x$settings$iters), x$settings$batch,
              x$settings$lr, x$settings$pool))
  tab <- x$history
  tab$loss <- signif(tab$loss, 6)
  tab$free_energy <- signif(tab$free_energy, 6)
  tab$seconds <- round(tab$seconds, 2)
  print(tab, row.names = FALSE)
  if (!is.null(x$verdict)) cat("", strwrap(verdict_text(x$verdict)), sep = "\n")
  invisible(x)
}

#' Plot a JKO fit
#'
#' For a fit of a target run to its stationary law, `plot(fit)` draws the
#' posterior: a [pairs()] plot of its draws under the target's names, each
#' variable's marginal density on the diagonal (one variable: its density
#' alone). The training, and any other fit, is drawn on request:
#' what a reader wants to see of a flow is how each JKO step's training
#' went, and how the free energy decreased along the flow (for a flow that
#' is not of a target, both are drawn by default, side by side).
#'
#' * `"pairs"`: the posterior draws of the variables `pars` (by default
#'   the first six), at most `n` of them (evenly spaced among the fit's
#'   draws), coloured by their density, with the marginal densities on the
#'   diagonal;
#' * `"marginals"`: the marginal posterior density of each variable of
#'   `pars` (by default the first 16), with its mean (solid line) and its
#'   central 95% interval (dashed);
#' * `"loss"`: the training loss of every Adam iteration, step after step
#'   (alternating colours; the step numbers on the top axis), with the loss
#'   each step ended at (the mean of its last tenth of iterations) marked by
#'   a black bar. Each step's curve should flatten out before the next step
#'   starts; if it still falls steeply, increase `iters`.
#' * `"free_energy"`: the estimate of
#'   \eqn{F(\rho_t) = \int\Phi\,d\rho_t + \beta^{-1}\int\rho_t\log\rho_t}
#'   at every step, from the fit's own samples and exact log-densities. It
#'   should decrease; when the stationary law \eqn{\propto e^{-\beta\Phi}} has a
#'   known normalising constant (quadratic and double-well potentials, a
#'   Gaussian mixture with \eqn{\beta = 1}) its free energy
#'   \eqn{-\beta^{-1}\log\int e^{-\beta\Phi}}, the minimum, is drawn as a
#'   dashed line.
#' * `"density"`: the density at `step` on a grid covering its samples
#'   (D = 1: a curve; D = 2: an image with contours; see
#'   [plot.jko_density()]).
#' * `"samples"`: `n` new samples at `step` (see [plot.jko_sample()]).
#'
#' Several of the training's panels are laid out side by side; `"pairs"`
#' and `"marginals"` take the page and are drawn alone. `par()` is restored
#' afterwards.
#'
#' @param x A `"jko_fit"`.
#' @param what One or more of `"pairs"`, `"marginals"`, `"loss"`,
#'   `"free_energy"`, `"density"` and `"samples"`; default `"pairs"` for a
#'   fit of a target, `c("loss", "free_energy")` otherwise.
#' @param n Number of draws for `"pairs"`, of samples for `"samples"` and
#'   `"density"`.
#' @param step The JKO step for `"density"` and `"samples"` (default the last).
#' @param pars For `"pairs"` and `"marginals"`, the variables to draw, by
#'   name or position.
#' @param ... Graphical parameters passed to the plotting functions (for
#'   example `main`, `col`, `xlim`).
#' @return `x`, invisibly.
#' @seealso [plot.jko_sample()], [plot.jko_density()], [summary.jko_fit()].
#' @examples
#' set.seed(1)
#' fit <- jko_fit(potential_double_well(), init_gaussian(0, 0.25), h = 0.1,
#'                steps = 4, hidden = c(8, 8), batch = 128, iters = 40)
#' plot(fit)                       # loss per step and free energy over time
#' plot(fit, "density")
#' plot(fit, "samples", n = 1000, step = 2)
#' tg <- target_logdensity(function(x) -rowSums(x^2) / 2, function(x) -x,
#'                         variables = c("a", "b", "c"))
#' # (from a start it must train from: a good start needs no training)
#' post <- suppressWarnings(jko_fit(tg, init_gaussian(c(1, 1, 1), 0.25), hidden = c(8, 8),
#'                                  iters = 100, pool = 2^12,
#'                                  monitor = 2^11, max_steps = 2, verbose = FALSE))
#' plot(post)                      # pairs of the posterior draws
#' plot(post, "marginals")
#' plot(post, "loss")              # the training
#' @export
plot.jko_fit <- function(x, what = c("pairs", "marginals", "loss", "free_energy", "density",
                                     "samples"),
                         n = 2000, step = NULL, pars = NULL, ...) {
  check_fit(x, "x")
  what <- if (!missing(what))
            choose_arg(what, c("pairs", "marginals", "loss", "free_energy", "density", "samples"),
                       "what", several = TRUE)
          else if (has_posterior(x)) "pairs" else c("loss", "free_energy")
  n <- check_count(n, "n")
  k <- resolve_step(x, step)
  posterior <- intersect(what, c("pairs", "marginals"))
  if (length(posterior)) {
    if (length(what) > 1L) {
      abort("`what = \"%s\"` takes the whole page: draw it alone.", posterior[1L])
    }
    pd <- fit_posterior(x, sprintf("plot(what = \"%s\")", what), "x")
    vars <- colnames(pd$x)
    vars <- if (is.null(pars)) utils::head(vars, if (what == "pairs") 6L else 16L)
            else resolve_variables(pars, vars, vars, "pars")
    if (what == "pairs" && length(vars) > 1L) plot_pairs(pd, vars, n, ...)
    else plot_marginals(pd, vars, ...)
    return(invisible(x))
  }
  if (length(what) > 1L) {
    op <- graphics::par(mfrow = c(1L, length(what)))
    on.exit(graphics::par(op), add = TRUE)
  }
  for (w in what) {
    switch(w,
      loss = plot_loss(x, ...),
      free_energy = plot_free_energy(x, ...),
      density = {
        if (x$dim > 2L) {
          abort("`what = \"density\"` needs dimension 1 or 2, not %d; use \"samples\".",
                x$dim)
        }
        u <- jko_sample(x, n, step = k, scale = "unconstrained")$x
        plot(jko_density(x, density_grid(u), step = k, scale = "unconstrained"), ...)
      },
      samples = plot(jko_sample(x, n, step = k), ...))
  }
  invisible(x)
}

# Pairs of posterior draws (at most n, evenly spaced), coloured by their
# density, with each variable's marginal density and name on the diagonal.
plot_pairs <- function(pd, vars, n, ...) {
  rows <- unique(round(seq(1, pd$n, length.out = min(n, pd$n))))
  d <- pd$x[rows, vars, drop = FALSE]
  ld <- pd$log_density[rows]
  o <- if (all(is.finite(ld))) order(ld) else seq_along(rows)
  col <- if (all(is.finite(ld))) density_colours(ld)[o] else "grey30"
  panel <- new.env()
  panel$at <- 0L
  diag <- function(v, ...) {
    panel$at <- panel$at + 1L
    usr <- graphics::par("usr")
    on.exit(graphics::par(usr = usr))
    dens <- stats::density(v)
    graphics::par(usr = c(usr[1:2], 0, max(dens$y) * 1.25))
    graphics::polygon(dens$x, dens$y, col = "grey90", border = "grey40")
    graphics::text(mean(usr[1:2]), max(dens$y) * 1.13, vars[panel$at], cex = 0.9)
  }
  args <- plot_args(list(x = d[o, , drop = FALSE], labels = vars, pch = 16, cex = 0.3,
                         col = col, diag.panel = diag, text.panel = function(...) NULL,
                         main = "Posterior draws"), ...)
  do.call(graphics::pairs, args)
}

# The marginal density of each variable, with its mean and central 95%
# interval.
plot_marginals <- function(pd, vars, ...) {
  m <- length(vars)
  nc <- ceiling(sqrt(m))
  op <- graphics::par(mfrow = c(ceiling(m / nc), nc), mar = c(3, 1, 2, 1))
  on.exit(graphics::par(op), add = TRUE)
  for (v in vars) {
    draws <- pd$x[, v]
    dens <- stats::density(draws)
    args <- plot_args(list(x = dens$x, y = dens$y, type = "l", main = v, xlab = "", ylab = "",
                           yaxt = "n", lwd = 2), ...)
    do.call(graphics::plot, args)
    graphics::abline(v = mean(draws))
    graphics::abline(v = stats::quantile(draws, c(0.025, 0.975), names = FALSE), lty = 2)
  }
}

# Training loss of every iteration, steps in alternating colours.
plot_loss <- function(x, ...) {
  tr <- x$loss_trace
  if (!length(tr)) abort("the fit has no steps to plot.")
  len <- lengths(tr)
  end <- cumsum(len)
  start <- end - len + 1L
  y <- unlist(tr)
  # The first iterations of step 1 start from the identity map and can be far
  # above the rest: keep them from flattening the picture.
  rest <- y[-seq_len(min(length(y), max(1L, len[1L] %/% 10L)))]
  ylim <- range(if (length(rest)) rest else y, finite = TRUE)
  ylim <- ylim + c(-0.04, 0.1) * diff(ylim)
  args <- plot_args(list(x = NA, type = "n", xlim = c(1, length(y)), ylim = ylim,
                         xlab = "Adam iteration (all steps)", ylab = "JKO loss",
                         main = "Training loss, step by step"), ...)
  do.call(graphics::plot, args)
  cols <- c("steelblue", "darkorange")
  for (k in seq_along(tr)) {
    graphics::lines(start[k]:end[k], tr[[k]], col = cols[(k - 1L) %% 2L + 1L])
    fin <- x$history$loss[match(k, x$history$step)]
    graphics::segments(end[k] - max(1L, len[k] %/% 10L), fin, end[k], fin, lwd = 3)
  }
  shown <- unique(round(seq(1, length(tr), length.out = min(length(tr), 10L))))
  graphics::axis(3, at = (start[shown] + end[shown]) / 2, labels = shown, tick = FALSE,
                 line = -0.8, cex.axis = 0.8)
  graphics::mtext("step ", side = 3, line = 0.2, at = graphics::par("usr")[1L], adj = 1,
                  cex = 0.8)
}

# Free energy over time, with the stationary minimum when it is known.
plot_free_energy <- function(x, ...) {
  s <- x$history
  fmin <- stationary_free_energy(x$potential, x$beta, x$dim)
  ylim <- range(c(s$free_energy, fmin), finite = TRUE)
  args <- plot_args(list(x = s$time, y = s$free_energy, type = "b", pch = 19,
                         ylim = ylim, xlab = "time t",
                         ylab = expression("free energy " * F(rho[t])),
                         main = "Free energy along the flow"), ...)
  do.call(graphics::plot, args)
  if (is.finite(fmin)) {
    graphics::abline(h = fmin, lty = 2, col = "firebrick")
    graphics::legend("topright", c("estimate (fit's samples)", "minimum (stationary law)"),
                     lty = c(1, 2), pch = c(19, NA), col = c("black", "firebrick"),
                     bty = "n", cex = 0.8)
  }
}

# -log(Z) / beta for Z = int exp(-beta Phi), where it has a closed form (or a
# one-dimensional integral); NA otherwise.
stationary_free_energy <- function(potential, beta, D) {
  # only a built-in kind is known (by `builtin`, never by a class, which
  # new_potential() lets the user choose)
  if (!is.character(potential$builtin)) return(NA_real_)
  out <- tryCatch(stationary_fe(potential, beta, D), error = function(e) NA_real_)
  if (length(out) != 1L || !is.numeric(out)) NA_real_ else out
}

stationary_fe <- function(potential, beta, D) UseMethod("stationary_fe")

#' @export
stationary_fe.default <- function(potential, beta, D) NA_real_

#' @export
stationary_fe.jko_potential_quadratic <- function(potential, beta, D) {
  ev <- eigen(potential$A, symmetric = TRUE, only.values = TRUE)$values
  if (min(ev) <= 0) return(NA_real_)
  -(length(ev) / 2 * log(2 * pi / beta) - sum(log(ev)) / 2) / beta
}

#' @export
stationary_fe.jko_potential_gmm <- function(potential, beta, D) {
  if (beta == 1) 0 else NA_real_
}

#' @export
stationary_fe.jko_potential_double_well <- function(potential, beta, D) {
  cc <- potential$center
  hh <- potential$height
  z1 <- stats::integrate(function(u) exp(-beta * hh * ((u / cc)^2 - 1)^2),
                         -Inf, Inf)$value
  -(log(z1) + (D - 1) / 2 * log(2 * pi / beta)) / beta
}

# A grid covering samples (a vector for D = 1, a 60 x 60 expand.grid for D = 2).
density_grid <- function(x, m = if (ncol(x) == 1L) 200L else 60L) {
  ax <- lapply(seq_len(ncol(x)), function(d) {
    r <- range(x[, d])
    seq(r[1L] - 0.1 * diff(r), r[2L] + 0.1 * diff(r), length.out = m)
  })
  if (ncol(x) == 1L) ax[[1L]] else as.matrix(expand.grid(ax))
}

# Defaults overridden by the user's graphical parameters.
plot_args <- function(defaults, ...) {
  user <- list(...)
  defaults[names(user)] <- NULL
  c(defaults, user)
}

#' Plot samples of a flow
#'
#' D = 1: a histogram of the samples with their exact density drawn over it
#' (the density of the fitted flow at each sample, from [jko_sample()]; the
#' two agree when the log-determinants are right). D = 2: a scatter plot
#' coloured by the density, the densest points on top. D > 2: a [pairs()]
#' plot of the first coordinates, coloured the same way.
#'
#' @param x A `"jko_sample"`.
#' @param dims For D > 2, the coordinates to pair (default the first four).
#' @param ... Graphical parameters passed to the plotting function
#'   ([hist()], [plot()] or [pairs()]), such as `main`, `xlim` or `breaks`.
#' @return `x`, invisibly.
#' @seealso [plot.jko_fit()], [plot.jko_density()].
#' @examples
#' set.seed(1)
#' fit <- jko_fit(potential_double_well(), init_gaussian(0, 0.25), h = 0.1,
#'                steps = 2, hidden = c(8, 8), batch = 128, iters = 40)
#' plot(jko_sample(fit, 1000))
#' @export
plot.jko_sample <- function(x, dims = seq_len(min(4L, x$dim)), ...) {
  main <- sprintf("Samples at step %d (t = %g)", x$step, x$time)
  has_d <- !all(is.na(x$log_density))
  if (x$dim == 1L) {
    v <- x$x[, 1L]
    d <- if (has_d) exp(x$log_density) else numeric()
    hmax <- max(graphics::hist(v, breaks = "FD", plot = FALSE)$density)
    args <- plot_args(list(x = v, breaks = "FD", freq = FALSE, col = "grey90",
                           border = "grey60", main = main, xlab = "x",
                           ylim = c(0, max(hmax, d) * 1.05)), ...)
    do.call(graphics::hist, args)
    if (has_d) {
      o <- order(v)
      graphics::lines(v[o], d[o], col = "firebrick", lwd = 2)
      graphics::legend("topright", c("samples", "exact density"), bty = "n",
                       fill = c("grey90", NA), border = c("grey60", NA),
                       lty = c(NA, 1), lwd = c(NA, 2), col = c(NA, "firebrick"),
                       cex = 0.8)
    }
  } else if (x$dim == 2L) {
    o <- if (has_d) order(x$log_density) else seq_len(nrow(x$x))
    col <- if (has_d) density_colours(x$log_density)[o] else "grey30"
    args <- plot_args(list(x = x$x[o, 1L], y = x$x[o, 2L], pch = 16, cex = 0.5,
                           col = col, xlab = "x1", ylab = "x2", main = main,
                           asp = 1), ...)
    do.call(graphics::plot, args)
    if (has_d) density_key()
  } else {
    if (!is.numeric(dims) || length(dims) < 2L || any(!dims %in% seq_len(x$dim))) {
      abort("`dims` must be at least two coordinates in 1..%d, not %s.", x$dim,
            describe(dims))
    }
    o <- if (has_d) order(x$log_density) else seq_len(nrow(x$x))
    args <- plot_args(list(x = x$x[o, dims, drop = FALSE], labels = paste0("x", dims),
                           pch = 16, cex = 0.3,
                           col = if (has_d) density_colours(x$log_density)[o] else "grey30",
                           main = main), ...)
    do.call(graphics::pairs, args)
  }
  invisible(x)
}

# Colours by rank of the density: viridis, dark = low, yellow = high.
density_colours <- function(ld) {
  pal <- grDevices::hcl.colors(64, "viridis")
  r <- rank(ld, ties.method = "first") / length(ld)
  pal[pmax(1L, ceiling(r * 64))]
}

density_key <- function() {
  pal <- grDevices::hcl.colors(64, "viridis")
  graphics::legend("topright", c("high density", "", "low density"), pch = 16,
                   col = pal[c(64, 32, 1)], bty = "n", cex = 0.75, y.intersp = 0.8)
}

#' Plot densities of a flow
#'
#' For D = 1, a curve of the density over the points. For D = 2 and points
#' on a grid (as from [expand.grid()]), an image of the density with contour
#' lines; for other points, the points coloured by density. With
#' `add = TRUE` the curve (D = 1) or the contours (D = 2) are drawn on the
#' current plot, for example over a histogram of simulated particles or to
#' compare several times.
#'
#' @param x A `"jko_density"`.
#' @param add Draw on the current plot?
#' @param ... Graphical parameters passed to the plotting functions, such as
#'   `col`, `lwd`, `main` or `nlevels` (contours).
#' @return `x`, invisibly.
#' @seealso [jko_density()], [plot.jko_sample()].
#' @examples
#' set.seed(1)
#' fit <- jko_fit(potential_double_well(), init_gaussian(0, 0.25), h = 0.1,
#'                steps = 3, hidden = c(8, 8), batch = 128, iters = 40)
#' grid <- seq(-2, 2, by = 0.05)
#' plot(jko_density(fit, grid, step = 0), col = "grey50", ylim = c(0, 0.9))
#' plot(jko_density(fit, grid), add = TRUE, col = "firebrick")
#' @export
plot.jko_density <- function(x, add = FALSE, ...) {
  add <- check_flag(add, "add")
  v <- as.numeric(x)
  main <- sprintf("%s at step %d (t = %g)", if (x$log) "Log-density" else "Density",
                  x$step, x$time)
  lab <- if (x$log) "log-density" else "density"
  if (x$dim == 1L) {
    o <- order(x$x[, 1L])
    args <- plot_args(list(x = x$x[o, 1L], y = v[o], type = "l", lwd = 2), ...)
    if (add) {
      do.call(graphics::lines, args)
    } else {
      do.call(graphics::plot, plot_args(c(args, list(xlab = "x", ylab = lab,
                                                     main = main)), ...))
    }
    return(invisible(x))
  }
  u1 <- sort(unique(x$x[, 1L]))
  u2 <- if (x$dim == 2L) sort(unique(x$x[, 2L])) else numeric()
  on_grid <- x$dim == 2L && length(u1) * length(u2) == nrow(x$x) &&
    length(u1) > 1L && length(u2) > 1L
  if (on_grid) {
    z <- matrix(NA_real_, length(u1), length(u2))
    z[cbind(match(x$x[, 1L], u1), match(x$x[, 2L], u2))] <- v
    if (add) {
      do.call(graphics::contour, plot_args(list(x = u1, y = u2, z = z, add = TRUE,
                                                drawlabels = FALSE), ...))
    } else {
      do.call(graphics::image, plot_args(list(x = u1, y = u2, z = z,
        col = grDevices::hcl.colors(64, "viridis"), xlab = "x1", ylab = "x2",
        main = main, asp = 1), ...))
      graphics::contour(u1, u2, z, add = TRUE, drawlabels = FALSE,
                        col = grDevices::adjustcolor("white", 0.6), nlevels = 8)
    }
  } else {
    if (add) abort("`add = TRUE` needs D = 1, or D = 2 with points on a grid.")
    o <- order(v)
    do.call(graphics::plot, plot_args(list(x = x$x[o, 1L], y = x$x[o, 2L], pch = 16,
      cex = 0.6, col = density_colours(v)[o], xlab = "x1", ylab = "x2",
      main = main), ...))
  }
  invisible(x)
}
