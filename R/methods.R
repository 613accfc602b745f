# print, summary and plot methods for fits, samples and densities.

#' @export
print.jko_fit <- function(x, ...) {
  K <- length(x$theta)
  cat("JKO flow (Fokker-Planck, Wasserstein gradient flow)\n")
  cat(sprintf("  potential: %s\n  initial:   %s\n", x$potential$label, x$init$label))
  cat(sprintf("  %d step%s of h = %g (t = %g), beta = %g\n", K, if (K == 1L) "" else "s",
              x$h, K * x$h, x$beta))
  cat(sprintf("  network: %s, rank %d, %s; %d iterations of batch %d per step\n",
              paste(x$net$hidden, collapse = " x "), x$net$rank, x$net$activation,
              x$settings$iters, x$settings$batch))
  last <- x$steps[nrow(x$steps), ]
  cat(sprintf("  last step: loss %.5g, free energy %.5g; %.1f s in all\n",
              last$loss, last$free_energy, sum(x$steps$seconds)))
  invisible(x)
}

#' Summarise a JKO fit
#'
#' @param object A `"jko_fit"`.
#' @param ... Unused.
#' @return An object of class `"summary.jko_fit"` with the per-step table
#'   `steps` (step, time, loss, free energy, seconds) and the settings.
#' @examples
#' set.seed(1)
#' fit <- jko_fit(potential_double_well(), init_gaussian(0, 0.25), h = 0.1,
#'                steps = 2, hidden = c(8, 8), batch = 128, iters = 40)
#' summary(fit)
#' @export
summary.jko_fit <- function(object, ...) {
  structure(list(call = object$call, steps = object$steps,
                 potential = object$potential$label, init = object$init$label,
                 h = object$h, beta = object$beta, dim = object$dim,
                 nparams = length(object$theta[[1L]] %||% numeric()),
                 settings = object$settings, net = object$net),
            class = "summary.jko_fit")
}

`%||%` <- function(a, b) if (is.null(a)) b else a

#' @export
print.summary.jko_fit <- function(x, ...) {
  cat("Call:\n")
  print(x$call)
  cat(sprintf("\nPotential: %s\nInitial:   %s\n", x$potential, x$init))
  cat(sprintf("Dimension %d, h = %g, beta = %g; network %s (rank %d), %d parameters per step\n",
              x$dim, x$h, x$beta, paste(x$net$hidden, collapse = " x "), x$net$rank,
              x$nparams))
  cat(sprintf("Adam: %d iterations of batch %d per step, lr = %g; pool %d\n\n",
              x$settings$iters, x$settings$batch, x$settings$lr, x$settings$pool))
  tab <- x$steps
  tab$loss <- signif(tab$loss, 6)
  tab$free_energy <- signif(tab$free_energy, 6)
  tab$seconds <- round(tab$seconds, 2)
  print(tab, row.names = FALSE)
  invisible(x)
}

#' Plot a JKO fit
#'
#' @param x A `"jko_fit"`.
#' @param what `"loss"`: the training loss of every iteration, steps
#'   separated; `"free_energy"`: the free-energy estimate over time;
#'   `"density"`: the density at the last step (D = 1: a curve; D = 2:
#'   contours); `"samples"`: samples of the last step (see [plot.jko_sample()]).
#' @param n Number of samples for `"samples"` and `"density"`.
#' @param ... Passed to the plotting functions.
#' @return `x`, invisibly.
#' @examples
#' set.seed(1)
#' fit <- jko_fit(potential_double_well(), init_gaussian(0, 0.25), h = 0.1,
#'                steps = 2, hidden = c(8, 8), batch = 128, iters = 40)
#' plot(fit, "loss")
#' plot(fit, "density")
#' @export
plot.jko_fit <- function(x, what = c("loss", "free_energy", "density", "samples"),
                         n = 2000, ...) {
  what <- match.arg(what)
  switch(what,
    loss = {
      tr <- x$loss_trace
      if (!length(tr)) abort("the fit has no steps to plot.")
      y <- unlist(tr)
      it <- seq_along(y)
      graphics::plot(it, y, type = "l", xlab = "iteration (all steps)",
                     ylab = "JKO loss", main = "Training loss per JKO step", ...)
      graphics::abline(v = cumsum(lengths(tr))[-length(tr)] + 0.5, col = "grey80", lty = 3)
    },
    free_energy = {
      s <- x$steps
      graphics::plot(s$time, s$free_energy, type = "b", pch = 19, xlab = "time t",
                     ylab = "free energy", main = "Free energy along the flow", ...)
    },
    density = {
      smp <- jko_sample(x, n)
      if (x$dim == 1L) {
        r <- range(smp$x)
        grid <- seq(r[1L] - 0.1 * diff(r), r[2L] + 0.1 * diff(r), length.out = 200)
        plot(jko_density(x, grid), ...)
      } else {
        r1 <- range(smp$x[, 1L]); r2 <- range(smp$x[, 2L])
        if (x$dim > 2L) abort("`what = \"density\"` needs dimension 1 or 2; use \"samples\".")
        g <- as.matrix(expand.grid(seq(r1[1L], r1[2L], length.out = 60),
                                   seq(r2[1L], r2[2L], length.out = 60)))
        plot(jko_density(x, g), ...)
      }
    },
    samples = plot(jko_sample(x, n), ...))
  invisible(x)
}

#' Plot samples of a flow
#'
#' D = 1: a histogram with the exact density of the samples drawn over it;
#' D = 2: a scatter coloured by density; D > 2: pairs of the first four
#' coordinates.
#'
#' @param x A `"jko_sample"`.
#' @param ... Passed to the plotting functions.
#' @return `x`, invisibly.
#' @examples
#' set.seed(1)
#' fit <- jko_fit(potential_double_well(), init_gaussian(0, 0.25), h = 0.1,
#'                steps = 2, hidden = c(8, 8), batch = 128, iters = 40)
#' plot(jko_sample(fit, 1000))
#' @export
plot.jko_sample <- function(x, ...) {
  main <- sprintf("Samples at step %d (t = %g)", x$step, x$time)
  has_d <- !all(is.na(x$log_density))
  if (x$dim == 1L) {
    graphics::hist(x$x[, 1L], breaks = "FD", freq = FALSE, col = "grey90",
                   border = "grey60", main = main, xlab = "x", ...)
    if (has_d) {
      o <- order(x$x[, 1L])
      graphics::lines(x$x[o, 1L], exp(x$log_density[o]), col = "firebrick", lwd = 2)
    }
  } else if (x$dim == 2L) {
    col <- if (has_d) density_colours(x$log_density) else "grey30"
    graphics::plot(x$x[, 1L], x$x[, 2L], pch = 16, cex = 0.5, col = col,
                   xlab = "x1", ylab = "x2", main = main, asp = 1, ...)
  } else {
    m <- min(4L, x$dim)
    graphics::pairs(x$x[, seq_len(m)], labels = paste0("x", seq_len(m)), pch = ".",
                    col = if (has_d) density_colours(x$log_density) else "grey30",
                    main = main, ...)
  }
  invisible(x)
}

density_colours <- function(ld) {
  pal <- grDevices::hcl.colors(64, "viridis")
  r <- rank(ld, ties.method = "first") / length(ld)
  pal[pmax(1L, ceiling(r * 64))]
}

#' Plot densities of a flow
#'
#' For D = 1, a curve over the points; for D = 2 and points on a grid (as
#' from [expand.grid()]), filled contours; otherwise points coloured by
#' density.
#'
#' @param x A `"jko_density"`.
#' @param ... Passed to the plotting functions.
#' @return `x`, invisibly.
#' @examples
#' set.seed(1)
#' fit <- jko_fit(potential_double_well(), init_gaussian(0, 0.25), h = 0.1,
#'                steps = 2, hidden = c(8, 8), batch = 128, iters = 40)
#' plot(jko_density(fit, seq(-2, 2, by = 0.05)))
#' @export
plot.jko_density <- function(x, ...) {
  v <- as.numeric(x)
  main <- sprintf("%s at step %d (t = %g)", if (x$log) "Log-density" else "Density",
                  x$step, x$time)
  lab <- if (x$log) "log-density" else "density"
  if (x$dim == 1L) {
    o <- order(x$x[, 1L])
    graphics::plot(x$x[o, 1L], v[o], type = "l", lwd = 2, xlab = "x", ylab = lab,
                   main = main, ...)
    return(invisible(x))
  }
  u1 <- sort(unique(x$x[, 1L]))
  u2 <- if (x$dim == 2L) sort(unique(x$x[, 2L])) else numeric()
  if (x$dim == 2L && length(u1) * length(u2) == nrow(x$x) && length(u1) > 1L &&
      length(u2) > 1L) {
    z <- matrix(NA_real_, length(u1), length(u2))
    z[cbind(match(x$x[, 1L], u1), match(x$x[, 2L], u2))] <- v
    graphics::filled.contour(u1, u2, z, color.palette = function(n)
      grDevices::hcl.colors(n, "viridis"), xlab = "x1", ylab = "x2",
      main = main, ...)
  } else {
    graphics::plot(x$x[, 1L], x$x[, 2L], pch = 16, cex = 0.6,
                   col = density_colours(v), xlab = "x1", ylab = "x2", main = main, ...)
  }
  invisible(x)
}
