# Targets with several modes: a search for the modes from over-dispersed
# starts, a start for the flow from the mixture of the modes' Laplace
# approximations, and the modes' weights from the flow's exact densities.
#
# What no diagnostic of a flow's draws can see is a mode that none of them
# reached: importance weights, the KL estimate and the exact correction all
# weigh the draws that exist. So a fit reports what was searched (how many
# starts, over what region, how many modes they found) rather than claiming
# the target was reached.

#' Find the modes of a target
#'
#' A search for the local maxima of a target's density (the minima of its
#' potential) from over-dispersed starts. The first mode is the one
#' [init_laplace()] finds from the target's own start. Further starts are
#' drawn, in batches, from the target's prior where it has one (an `init`,
#' see [targets]), otherwise uniformly from the box that spans the modes
#' found so far, widened on each side by `scale` standard deviations of
#' the first mode's Laplace approximation (the box grows as modes are
#' found). Each batch descends at once (a preconditioned gradient descent,
#' one call of the potential per iteration for the whole batch); an end
#' point within one standard deviation of a known mode (the squared
#' Mahalanobis distance under the mode's Hessian below 1) is that mode,
#' any other is refined by BFGS and kept as a new mode where the Hessian
#' there is positive definite (a saddle or a ridge is not a mode).
#'
#' The search stops when as many starts have been made since the last new
#' mode as before it (at least `batch`) and the Good-Turing estimate of the
#' chance that a further start finds a new mode (the share of starts whose
#' mode was found by that start alone; a start that failed found none) is
#' at most `missing`, or after `max_starts` or `max_seconds`. A unimodal
#' target so costs one batch of descents; once several modes are found,
#' batches are of 64. Modes whose basins the starts do not reach, or reach
#' too rarely, stay unfound: the estimate is about the starts' law, not
#' the target's mass, and a fit's verdict says what was searched.
#'
#' Each mode's Laplace evidence is \eqn{\log Z_k = -\Phi(m_k) + \frac D2
#' \log 2\pi - \frac12\log\det H_k}, and the Laplace weights are the
#' \eqn{Z_k} normalised.
#'
#' @param potential A target or potential with a known dimension.
#' @param max_starts Most starts, besides the target's own.
#' @param batch Starts in the first batch, and the fewest starts after
#'   the last new mode.
#' @param scale How far the box reaches beyond the modes found, in the
#'   first mode's standard deviations.
#' @param missing Stop when the estimated chance that a further start finds
#'   a new mode is at most this.
#' @param prior Draw the starts from the target's prior, where it has one?
#' @param max_seconds Stop after the batch that passes this time (the
#'   region in words then says so). `Inf` by default, so that the search a
#'   fit makes does not depend on the machine's load (as a seeded fit must
#'   not): its budget is `max_starts`.
#' @return An object of class `"jko_modes"`: `modes` (a K x D matrix, by
#'   decreasing Laplace weight), `value` (\eqn{\Phi} there), `hessian` (a
#'   list of K matrices), `log_z` and `weights` (the Laplace evidence and
#'   weights), `hits` (the starts that ended at each mode), `starts`,
#'   `failed` (starts where the potential was not finite, or that ended at
#'   no mode), `region` (in words), `missing` (the Good-Turing estimate)
#'   and `seconds`.
#' @seealso [init_mixture()], [mode_weights()], [jko_fit()].
#' @examples
#' set.seed(1)
#' two <- new_target(function(x) log(exp(-(x[, 1] - 3)^2 / 2) + exp(-(x[, 1] + 3)^2 / 2)),
#'                   dim = 1, start = 3)
#' find_modes(two)
#' @export
find_modes <- function(potential, max_starts = 1000, batch = 32, scale = 10, missing = 0.02,
                       prior = TRUE, max_seconds = Inf) {
  check_potential(potential)
  max_starts <- check_count(max_starts, "max_starts")
  batch <- check_count(batch, "batch", min = 1)
  scale <- check_positive(scale, "scale")
  missing <- check_positive(missing, "missing")
  prior <- check_flag(prior, "prior")
  if (!is.numeric(max_seconds) || length(max_seconds) != 1L || is.na(max_seconds) ||
      max_seconds <= 0) {
    abort("`max_seconds` must be a positive number of seconds (Inf for no limit), not %s.",
          describe(max_seconds))
  }
  find_modes_from(potential, NULL, max_starts, batch, scale, missing, prior, max_seconds)
}

# find_modes() from a first mode already found (`first`, an init_laplace()
# result, or NULL).
find_modes_from <- function(potential, first, max_starts = 1000, batch = 32, scale = 10,
                            missing = 0.02, prior = TRUE, max_seconds = Inf) {
  t0 <- proc.time()[["elapsed"]]
  D <- potential$dim
  if (is.na(D)) abort("`potential` must know its dimension for a search of its modes.")
  potential <- full_data(potential)
  if (is.null(first)) first <- suppressWarnings(init_laplace(potential, inflate = 1))
  # init_laplace()'s optimum and Hessian where it converged (its BFGS and
  # differences are polish_mode()'s: redoing them cost ~230 evaluations of
  # single points)
  p1 <- if (isTRUE(first$convergence == 0L) && is.matrix(first$hessian) &&
            isTRUE(is.finite(first$value))) {
    mode_point(first$mode, first$value, first$hessian)
  }
  if (is.null(p1)) p1 <- polish_mode(potential, first$mode)
  if (is.null(p1)) abort("the potential is not finite at the first mode found.")
  P <- abs_inverse(p1$H)
  modes <- matrix(numeric(0), 0L, D)
  hess <- list()
  vals <- numeric(0)
  ldet <- numeric(0)
  hits <- integer(0)
  add <- function(p) {
    modes <<- rbind(modes, p$par)
    hess[[length(hess) + 1L]] <<- p$H
    vals <<- c(vals, p$value)
    ldet <<- c(ldet, p$log_det)
    hits <<- c(hits, 1L)
  }
  # the first point counts as a start; not a mode where its Hessian is not
  # positive definite (a start at a saddle or a trough)
  failed <- 0L
  if (p1$pd) add(p1) else failed <- 1L
  use_prior <- prior && !is.null(potential$init) &&
    (inherits(potential$init, "jko_law") || is.function(potential$init$sample))
  sd1 <- sqrt(diag(P))
  draw <- if (use_prior) {
    function(n) {
      if (inherits(potential$init, "jko_law")) law_draw(potential$init, n, log_density = FALSE)$x
      else potential$init$sample(n)
    }
  } else {
    # the box spanning the modes found so far (the first point where
    # none is), widened by `scale` sds on each side: it grows with each
    # mode found, so that starts are not all on the side of the first
    function(n) {
      span <- if (nrow(modes)) modes else matrix(p1$par, 1L)
      lo <- apply(span, 2L, min) - scale * sd1
      hi <- apply(span, 2L, max) + scale * sd1
      u <- matrix(stats::runif(n * D), n, D)
      sweep(sweep(u, 2L, hi - lo, "*"), 2L, lo, "+")
    }
  }
  region <- if (use_prior) "the target's prior" else
    sprintf(paste0("a box spanning the modes found, widened by %g standard deviations ",
                   "(of the first mode's Laplace approximation) on each side"), scale)
  n_starts <- 1L
  last_new <- 1L
  timed_out <- FALSE
  size <- batch
  repeat {
    size <- min(size, max_starts + 1L - n_starts)
    if (size < 1L) break
    s <- descend_qn(potential, draw(size), P)
    n_starts <- n_starts + size
    failed <- failed + sum(!is.finite(s$value0))
    rows <- which(is.finite(s$value0))
    # an end point within one sd of a known mode is that mode; the others
    # are polished together (a tighter quasi-Newton descent, one call of
    # the potential per iteration for all of them, then their Hessians in
    # one call each), by BFGS one by one only where that did not converge
    k0 <- integer(length(rows))
    if (nrow(modes) && length(rows)) {
      d2 <- matrix(mode_distances(s$x[rows, , drop = FALSE], modes, hess), length(rows))
      near <- apply(d2, 1L, min) < 1
      k0[near] <- max.col(-d2, ties.method = "first")[near]
    }
    cand <- rows[k0 == 0L]
    pol <- vector("list", length(rows))
    if (length(cand)) {
      q <- descend_qn(potential, s$x[cand, , drop = FALSE], P, maxit = 200L, tol = 1e-8)
      for (m in seq_along(cand)) {
        r <- match(cand[m], rows)
        pol[[r]] <- if (q$converged[m]) {
          mode_point(q$x[m, ], q$value[m], modes_hessian(potential, q$x[m, ]))
        } else polish_mode(potential, s$x[cand[m], ])
      }
    }
    for (r in seq_along(rows)) {
      i <- rows[r]
      k <- k0[r]
      if (!k) {
        p <- pol[[r]]
        # (a BFGS end that Newton's method could not finish is no mode: a
        # crawl along a badly scaled ridge, see newton_polish())
        if (is.null(p) || !p$pd || isTRUE(p$convergence != 0L)) {
          failed <- failed + 1L
          next
        }
        if (nrow(modes)) {
          d2 <- mode_distances(matrix(p$par, 1L), modes, hess)
          # the same mode, seen from either side
          d2b <- vapply(seq_len(nrow(modes)), function(j) {
            d <- modes[j, ] - p$par
            sum(d * (p$H %*% d))
          }, 0)
          if (min(pmin(d2, d2b)) < 1) k <- which.min(pmin(d2, d2b))
        }
        if (!k) {
          add(p)
          last_new <- n_starts - size + i
          next
        }
      }
      hits[k] <- hits[k] + 1L
    }
    # as many starts since the last new mode as before it, and few modes
    # seen once (a start that failed found no new mode)
    gt <- sum(hits == 1L) / n_starts
    if (n_starts - last_new >= max(batch, last_new) && gt <= missing) break
    if (n_starts > max_starts) break
    if (proc.time()[["elapsed"]] - t0 > max_seconds) {
      timed_out <- TRUE
      break
    }
    if (nrow(modes) > 1L) size <- 64L
  }
  if (!nrow(modes)) {
    # no point with a positive definite Hessian: the first point stands,
    # as init_laplace() has it
    modes <- matrix(first$mode, 1L)
    hess <- list(p1$H)
    vals <- p1$value
    ldet <- NA_real_
    hits <- 1L
  }
  log_z <- -vals + D / 2 * log(2 * pi) - ldet / 2
  w <- if (all(is.finite(log_z))) exp(log_z - max(log_z)) else rep(1, length(log_z))
  w <- w / sum(w)
  o <- order(-w)
  if (timed_out) region <- sprintf("%s (stopped after %g s)", region, max_seconds)
  structure(list(
    dim = D, modes = modes[o, , drop = FALSE], value = vals[o], hessian = hess[o],
    log_z = log_z[o], weights = w[o], hits = hits[o], starts = n_starts, failed = failed,
    region = region, missing = sum(hits == 1L) / n_starts,
    precond = P, seconds = proc.time()[["elapsed"]] - t0
  ), class = "jko_modes")
}

#' @export
print.jko_modes <- function(x, ...) {
  cat(modes_search_text(x), "\n", sep = "")
  K <- nrow(x$modes)
  show <- min(K, 10L)
  tab <- data.frame(mode = seq_len(show), phi = x$value[seq_len(show)],
                    laplace_weight = x$weights[seq_len(show)], hits = x$hits[seq_len(show)])
  tab$at <- apply(x$modes[seq_len(show), , drop = FALSE], 1L, function(m) {
    s <- paste(format(utils::head(m, 4L), digits = 3), collapse = ", ")
    if (length(m) > 4L) paste0(s, ", ...") else s
  })
  print(tab, row.names = FALSE, digits = 3)
  if (K > show) cat(sprintf("(%d more modes)\n", K - show))
  invisible(x)
}

# What the search did, in words.
modes_search_text <- function(s) {
  K <- nrow(s$modes) - (if (isTRUE(s$from_draws > 0L)) s$from_draws else 0L)
  out <- sprintf(paste0("%d start%s over %s found %d mode%s (a further start would find a new mode ",
                 "with a chance of about %.2g, by Good-Turing%s)"),
          s$starts, if (s$starts == 1L) "" else "s", s$region, K, if (K == 1L) "" else "s",
          s$missing, if (s$failed > 0L) sprintf("; %d starts failed or ended at no mode",
                                                s$failed) else "")
  if (isTRUE(s$from_draws > 0L)) {
    out <- sprintf("%s; descents from %d draws (of the start or the flow) found %d more",
                   out, s$descents, s$from_draws)
  }
  out
}

# The start of a flow to a target: init_laplace() (its arguments in ...)
# and a search for further modes from it; with one mode, the Laplace
# approximation (at the best mode found, where the target's start led to a
# point that is not one), with several, the mixture of their Laplace
# approximations, sds times `mixture_inflate`, weighted by their Laplace
# evidence (with 5% of the mass shared equally among the modes, so that no
# mode the evidence underrates is left without draws). The search is kept
# in `$modes`.
#
# Why not widened like the one-mode start (sd x 1.5): a flow whitened by
# the covariance of a law spread over several modes contracts each mode
# slowly (on the 6-mode mixture of inst/bench/multimodal.R at D = 4: from
# sds x 1.5, SymKL 0.125 to the mixture after 10 steps; from x 1.2, KL
# still 0.024 after 8; from x 1, SymKL 0.0016 after one step), and it
# cannot move mass between modes at all: the exact densities (importance
# weights, the exact correction) do both, and a start too narrow for them
# shows in its Pareto k-hat.
modes_start <- function(potential, ..., mixture_inflate = 1) {
  dots <- list(...)
  inflate <- mixture_inflate
  warned <- list()
  first <- withCallingHandlers(init_laplace(potential, ...), warning = function(w) {
    warned[[length(warned) + 1L]] <<- w
    invokeRestart("muffleWarning")
  })
  search <- if (!is.na(potential$dim)) {
    tryCatch(find_modes_from(potential, first), error = function(e) NULL)
  }
  # the modes that the start draws from: those of Laplace weight 1e-4 or
  # more (see mixture_start())
  main <- if (is.null(search)) integer(0) else which(search$weights >= start_weight_min)
  K <- length(main)
  # the search's one mode is init_laplace()'s (to a hundredth of a variance)
  same <- K == 1L &&
    mode_distances(matrix(first$mode, 1L), search$modes[main, , drop = FALSE],
                   search$hessian[main])[1L] < 1e-2
  if (K <= 1L && (K == 0L || same)) {
    for (w in warned) warning(w)
    first$modes <- search
    return(first)
  }
  if (K == 1L) {
    out <- init_laplace(potential, start = search$modes[main, ], ...)
    out$modes <- search
    return(out)
  }
  mixture_start(search, potential, inflate, if (is.null(dots$df)) Inf else dots$df)
}

# The least Laplace weight of a mode that a start draws from. A search in a
# badly scaled posterior can stop at a point that is no mode: on
# posteriordb's earn_height (earnings in dollars on height, 1192 rows; the
# intercept and slope correlated at -0.999), one start of 97 ended at a
# "mode" of Laplace weight 1.6e-9, and the mixture start that took it (5%
# of the mass shared among the modes) trained 9 steps and stalled, 130 s
# against NUTS's 25; the Lotka-Volterra program's search has two of 1e-15
# and 6e-19. Such modes stay in the search and the verdict (their weights
# from the draws), not in the start.
start_weight_min <- 1e-4

# The start of a flow from a search of several modes (modes_start()): the
# mixture of the Laplace approximations of those of Laplace weight at least
# start_weight_min (the search kept whole in `$modes`).
mixture_start <- function(search, potential, inflate = 1, df = Inf) {
  full <- search
  main <- which(search$weights >= start_weight_min)
  if (length(main) == 1L) {
    out <- init_laplace(potential, start = search$modes[main, ], inflate = inflate, df = df)
    out$modes <- full
    return(out)
  }
  search$modes <- search$modes[main, , drop = FALSE]
  search$hessian <- search$hessian[main]
  search$weights <- search$weights[main] / sum(search$weights[main])
  K <- length(main)
  w <- 0.95 * search$weights + 0.05 / K
  covs <- lapply(search$hessian, function(H) inflate^2 * abs_inverse(H))
  # Gaussian components where they pass as a proposal (as adapt_start()
  # judges one: k-hat of the weights of 4096 draws, no coordinate narrower
  # than 95% of the target's, none outside the support); else Student t
  # components of `df` degrees of freedom, whose tails are the safer
  # proposal where a mode's are heavier than a Gaussian's. (On Gaussian
  # mixtures, t components with 7 df left SymKL 0.11-1.2 to the target at
  # D = 2..12 where the Gaussian ones left at most 0.025.)
  out <- init_mixture(search$modes, covs, w)
  if (is.finite(df) && !passes_as_proposal(out, potential)) {
    out <- init_mixture(search$modes, covs, w, df = df)
  }
  out$label <- sprintf(paste0("mixture of the Laplace approximations (sd x %g%s) at %d modes, ",
                              "dimension %d"), inflate,
                       if (is.finite(out$df)) sprintf(", Student t with %g df", out$df) else "",
                       K, search$dim)
  out$modes <- full
  out
}

#' Weights of a target's modes from a fit
#'
#' Draws of the fit's last law, each with its exact density \eqn{q(x)},
#' weighted by importance, \eqn{w = e^{-\beta\Phi(x)} / q(x)}, and each
#' assigned to the basin of the mode it descends to (the same batched
#' descent as [find_modes()]; a draw that has not settled after 100
#' iterations goes to the mode nearest in the Mahalanobis distance under
#' each mode's Hessian). A draw within the 99% ellipsoid of its nearest
#' mode's Laplace approximation, and whose responsibility in the mixture of
#' the modes' Laplace approximations is that mode's above 0.99, is in that
#' mode's basin without a descent (attribute `settled`: the draws that
#' descended). A mode's weight is the self-normalised share of
#' the weights in its basin, with the delta-method standard error
#' \eqn{\sqrt{\sum_i \tilde w_i^2 (1_{i \in k} - p_k)^2}}. Draws that settle
#' at a stationary point the search had not found are counted apart
#' (`elsewhere`): a sign that the search missed a mode.
#'
#' A fit's verdict carries the same weights (`fit$modes`). Where several
#' modes are known, they come from 16384 draws: the first proposals of its
#' exact draws, whose weights are known already, and fresh draws of its
#' law where there are fewer proposals; with one, from all those
#' proposals, not descended (all in its basin; 4096 fresh draws for a fit
#' without exact draws).
#'
#' These weights are exact in the limit of many draws for the modes that
#' the flow's law covers; a mode with no draw near it gets no weight, which
#' is why the fit's verdict says how the modes were searched. A fit also
#' descends the 16 of its draws of largest weight beyond every known mode's
#' 99% ellipsoid (of its start's importance sampling, and of the flow where
#' it trained), and adds a mode they find to its search (the search's
#' `from_draws`), which `mode_weights(fit)` then uses.
#'
#' @param fit A `"jko_fit"` of a target (its last step is used).
#' @param n Number of draws.
#' @param modes A [find_modes()] result; by default the fit's own search.
#' @param threads Number of threads.
#' @return A data frame, one row per mode: `weight`, `se`, the Laplace
#'   weight `laplace`, and `draws` (the draws in its basin); with the
#'   attributes `log_z` and `log_z_se` (the evidence from the same weights),
#'   `elsewhere` (the weight of draws settled at no known mode), `ess` and
#'   the `search`.
#' @examples
#' \donttest{
#' set.seed(1)
#' two <- new_target(function(x) log(exp(-(x[, 1] - 3)^2 / 2) + exp(-(x[, 1] + 3)^2 / 2)),
#'                   dim = 1, start = 3)
#' fit <- jko_fit(two, verbose = FALSE)
#' mode_weights(fit)
#' }
#' @export
mode_weights <- function(fit, n = 16384, modes = NULL, threads = NULL) {
  check_fit(fit)
  check_not_energy(fit$potential)
  n <- check_count(n, "n", min = 10)
  threads <- resolve_threads(threads)
  if (is.null(modes)) modes <- fit_search(fit)
  if (!inherits(modes, "jko_modes")) {
    abort("`modes` must be NULL or a result of find_modes(), not %s.", describe(modes))
  }
  law <- fit_law(fit)
  if (!law_has_density(law)) init_log_density(law$base, matrix(0, 1L, fit$dim))
  d <- with_stream(fit$seed, "modes", law_draw(law, n, threads = threads))
  weigh_modes(fit$potential, d$x, d$log_density, modes, fit$beta)
}

# The search of a fit: that of its last verdict (the start's search with
# any modes that the fit's draws found: modes_from_draws()), else its
# start's, else a new one (from the fit's own stream).
fit_search <- function(fit) {
  s <- if (!is.null(fit$modes)) attr(fit$modes, "search")
  if (is.null(s)) s <- fit$init$base$modes
  if (is.null(s)) s <- with_stream(fit$seed, "modes", find_modes(fit$potential), k = 1L)
  s
}

# Mode weights from draws x of q with log-densities log_q, and their
# log-weights lw where known (NA: not known; the target is evaluated only
# there). settle = FALSE: no descent, every draw in the basin of the one
# mode.
weigh_modes <- function(potential, x, log_q, search, beta = 1, settle = TRUE,
                        lw = rep(NA_real_, nrow(x))) {
  potential <- full_data(potential)
  n <- nrow(x)
  if (!settle && nrow(search$modes) == 1L) {
    lw <- -beta * potential_values(potential, x) - log_q
    return(modes_table(lw, rep(1L, n), rep(FALSE, n), search))
  }
  todo <- which(is.na(lw))
  if (length(todo)) {
    ph <- tryCatch(potential_values(potential, x[todo, , drop = FALSE]),
                   error = function(e) rep(Inf, length(todo)))
    ph[!is.finite(ph)] <- Inf
    lw[todo] <- -beta * ph - log_q[todo]
  }
  b <- settle_basins(potential, x, is.finite(lw), search)
  basin <- b$basin
  attr(basin, "settled") <- length(b$settled)
  modes_table(lw, basin, b$away, search)
}

# The basin of each draw (rows of x; ok: where the target is finite, the
# draws that may descend) among the modes of `search`, whether it settled
# at no known mode (away), and which draws descended (settled).
#
# Which draws descend. A draw within the 99% ellipsoid of the nearest
# mode's Laplace approximation (its squared Mahalanobis distance under the
# mode's Hessian below the chi-square quantile), whose responsibility in the
# mixture of the modes' Laplace approximations (in their Laplace weights)
# is above 0.99, is that mode's without a descent; the others (between
# modes, or out where a mode the search missed would be) descend. A
# descent costs about ten gradients a draw: on the Lotka-Volterra
# posterior, whose search finds two further modes of Laplace weight 1e-15,
# the 16384 settled draws took 23 s of a 31 s fit.
#
# Where a narrow mode lies within a wide one, the two differ: a descent
# from beyond the narrow mode, on the far side from the wide one's centre,
# passes through the narrow mode's basin and stays there, so that the
# narrow mode's "basin" takes a shadow of the wide one's mass. Of 4000
# draws of 0.5 N(0, 0.1^2 I) + 0.5 N((1.5, 0), I), 1956 from the narrow
# component, 2043 descended to its mode, and 2017 are its by this rule
# (668 descended).
settle_basins <- function(potential, x, ok, search) {
  n <- nrow(x)
  d2 <- matrix(mode_distances(x, search$modes, search$hessian), n)
  basin <- max.col(-d2, ties.method = "first")
  away <- rep(FALSE, n)
  # the mixture of the modes' Laplace approximations in their Laplace
  # weights: the responsibility of the nearest mode
  ld <- vapply(search$hessian, function(H) as.double(determinant(H)$modulus), 0)
  lp <- sweep(-d2 / 2, 2L, ld / 2 + log(search$weights), "+")
  lp <- lp - lp[cbind(seq_len(n), basin)]
  resp <- 1 / rowSums(exp(lp))
  inside <- d2[cbind(seq_len(n), basin)] < stats::qchisq(0.99, ncol(x)) & resp > 0.99
  inside[is.na(inside)] <- FALSE  # (nearest to a mode of Laplace weight 0: it descends)
  todo <- which(!inside & ok)
  if (length(todo)) {
    s <- descend(potential, x[todo, , drop = FALSE], search$precond, maxit = 100L)
    d2s <- matrix(mode_distances(s$x, search$modes, search$hessian), length(todo))
    b <- max.col(-d2s, ties.method = "first")
    basin[todo] <- b
    away[todo] <- s$converged & d2s[cbind(seq_along(b), b)] > 9
  }
  list(basin = basin, away = away, settled = todo)
}

# The search with the modes that draws x of a fit (log-weights lw) reveal
# beyond its own. A search from starts over a box finds a narrow mode only
# where a start falls in its basin (a mode of sd 0.3 and weight 0.2, 4 sds
# from a wide one in 3-D: a basin of about 1/5000 of the box, missed by 33
# starts), but a flow pulled towards the target puts its weight's share of
# draws there (20% of them, in that case). The draws outside the 99%
# ellipsoid of every known mode's Laplace approximation, the `max` of
# largest weight, descend (as the search's starts do: one call of the
# target per iteration for all of them); an end that is no known mode is
# polished and added, its Laplace weight with the others', where the draws
# within its 99% ellipsoid carry at least 1% of their weight. `from_draws`
# counts the modes added (`new_from_draws` those of this call), `descents`
# the draws that descended.
modes_from_draws <- function(potential, x, lw, search, max = 16L) {
  D <- ncol(x)
  search$descents <- search$descents %||% 0L
  search$from_draws <- search$from_draws %||% 0L
  search$new_from_draws <- 0L
  if (is.null(x) || !nrow(x) || length(lw) != nrow(x)) return(search)
  d2 <- matrix(mode_distances(x, search$modes, search$hessian), nrow(x))
  far <- which(apply(d2, 1L, min) > stats::qchisq(0.99, D) & is.finite(lw))
  if (!length(far)) return(search)
  far <- far[order(-lw[far])][seq_len(min(max, length(far)))]
  potential <- full_data(potential)
  s <- descend_qn(potential, x[far, , drop = FALSE], search$precond, maxit = 100L)
  search$descents <- search$descents + length(far)
  known <- function(p) {
    d2 <- mode_distances(matrix(p$par, 1L), search$modes, search$hessian)
    d2b <- vapply(seq_len(nrow(search$modes)), function(j) {
      d <- search$modes[j, ] - p$par
      sum(d * (p$H %*% d))
    }, 0)
    min(pmin(d2, d2b)) < 1
  }
  ends <- which(s$converged & is.finite(s$value))
  if (length(ends)) {
    e2 <- matrix(mode_distances(s$x[ends, , drop = FALSE], search$modes, search$hessian),
                 length(ends))
    ends <- ends[apply(e2, 1L, min) >= 1]
  }
  if (!length(ends)) return(search)
  # the ends polished together (a tighter quasi-Newton descent, as the
  # search's), each then with its Hessian in one call. A new mode is taken
  # where the draws within its 99% ellipsoid carry at least 1% of their
  # weight: a stationary point deep in a funnel's neck, where descents from
  # its draws end (Neal's funnel: at v = -32, its ellipsoid a needle that
  # holds no draw, its Laplace weight above the search's mode's at
  # v = -40.5), is no mode worth a start's share (the mixture start with it
  # cost 47 s where the flow alone took 11)
  q <- descend_qn(potential, s$x[ends, , drop = FALSE], search$precond, maxit = 200L,
                  tol = 1e-8)
  ok <- is.finite(lw)
  wn <- exp(lw[ok] - max(lw[ok]))
  wn <- wn / sum(wn)
  xo <- x[ok, , drop = FALSE]
  added <- 0L
  for (m in which(q$converged & is.finite(q$value))) {
    if (added && min(mode_distances(q$x[m, , drop = FALSE], search$modes,
                                     search$hessian)) < 1) next
    p <- mode_point(q$x[m, ], q$value[m], modes_hessian(potential, q$x[m, ]))
    if (is.null(p) || !p$pd || known(p)) next
    share <- sum(wn[mode_distances(xo, matrix(p$par, 1L), list(p$H)) < stats::qchisq(0.99, D)])
    if (!(share >= 0.01)) next
    search$modes <- rbind(search$modes, p$par)
    search$hessian[[length(search$hessian) + 1L]] <- p$H
    search$value <- c(search$value, p$value)
    search$hits <- c(search$hits, 0L)
    search$log_z <- c(search$log_z, -p$value + D / 2 * log(2 * pi) - p$log_det / 2)
    added <- added + 1L
  }
  if (!added) return(search)
  w <- exp(search$log_z - max(search$log_z))
  w <- w / sum(w)
  o <- order(-w)
  search$weights <- w
  for (f in c("modes", "hessian", "value", "hits", "log_z", "weights")) {
    search[[f]] <- if (is.matrix(search[[f]])) search[[f]][o, , drop = FALSE] else search[[f]][o]
  }
  search$from_draws <- search$from_draws + added
  search$new_from_draws <- added
  search
}

# The mode weights (weigh_modes()'s result) from log-weights lw of draws,
# the basin of each (1..K) and whether it settled away from every mode.
modes_table <- function(lw, basin, away, search) {
  K <- nrow(search$modes)
  lw[is.na(lw)] <- -Inf
  mx <- max(lw)
  w <- exp(lw - mx)
  wn <- w / sum(w)
  p <- vapply(seq_len(K), function(k) sum(wn[basin == k & !away]), 0)
  se <- vapply(seq_len(K), function(k) sqrt(sum(wn^2 * ((basin == k & !away) - p[k])^2)), 0)
  n <- length(w)
  out <- data.frame(mode = seq_len(K), weight = p, se = se, laplace = search$weights,
                    draws = tabulate(basin[!away], K))
  attr(out, "log_z") <- mx + log(mean(w))
  attr(out, "log_z_se") <- stats::sd(w) / (sqrt(n) * mean(w))
  attr(out, "elsewhere") <- sum(wn[away])
  attr(out, "elsewhere_se") <- sqrt(sum(wn^2 * (away - sum(wn[away]))^2))
  attr(out, "ess") <- 1 / sum(wn^2)
  attr(out, "n") <- n
  attr(out, "settled") <- attr(basin, "settled") %||% 0L  # the draws that descended
  attr(out, "search") <- search
  out
}

# How many draws weigh a fit's several modes.
modes_draws <- 16384L

# The modes of a stationary fit for its verdict: the search and the mode
# weights (NULL where the potential's dimension is unknown or the law has
# no density).
fit_modes <- function(fit, threads = 1L) {
  if (is.na(fit$potential$dim) || !law_has_density(fit$init)) return(NULL)
  # with one mode known, 4096 draws and no descent (whose cost, a
  # hundred gradients a draw, would buy only the chance that a draw
  # settles at a mode the search missed); with several, modes_draws
  # settled (settle_basins())
  tryCatch({
    search <- fit_search(fit)
    p <- fit$draws$proposals
    search$new_from_draws <- 0L  # (those of the start's draws are in its mixture)
    # the flow's draws, where it trained (an untrained flow's are its
    # start's law, whose draws start_modes() has seen)
    if (!is.null(p) && nrow(fit$history) > 1L) {
      search <- modes_from_draws(fit$potential, p$x, p$log_weights, search)
    }
    several <- nrow(search$modes) > 1L
    if (!several) {
      # with one mode, the weights of the exact draws' proposals serve:
      # draws of the same law with their exact densities, evaluated already
      # (for a costly target, 4096 evaluations saved)
      lw <- fit$draws$log_weights
      n <- length(lw)
      if (n) return(modes_table(lw, rep(1L, n), rep(FALSE, n), search))
      d <- with_stream(fit$seed, "modes", law_draw(fit_law(fit), 4096L, threads = threads))
      return(weigh_modes(fit$potential, d$x, d$log_density, search, fit$beta, settle = FALSE))
    }
    # with several, the first proposals of the exact draws where they were
    # kept (correct_draws(): their weights known), and fresh draws of the
    # law up to modes_draws in all (each draw weighted by its own density)
    x <- p$x
    lq <- p$log_density
    lw <- p$log_weights
    more <- modes_draws - length(lw)
    if (more > 0L) {
      d <- with_stream(fit$seed, "modes", law_draw(fit_law(fit), more, threads = threads))
      x <- rbind(x, d$x)
      lq <- c(lq, d$log_density)
      lw <- c(lw, rep(NA_real_, more))
    }
    weigh_modes(fit$potential, x, lq, search, fit$beta, lw = lw)
  }, error = function(e) NULL)
}

# The sentence of the verdict on the modes (v$modes: a mode_weights()
# result, or NULL).
modes_text <- function(m) {
  if (is.null(m)) {
    return("No search for further modes was made: a mode that none of the flow's draws came near would not show in these figures.")
  }
  s <- attr(m, "search")
  K <- nrow(m)
  head <- paste0("Mode search: ", modes_search_text(s))
  show <- min(K, 10L)
  ws <- paste(sprintf("%.3f (se %.3f)", m$weight[seq_len(show)], m$se[seq_len(show)]),
              collapse = ", ")
  body <- if (K == 1L) {
    "; a mode that no start found would not show in these figures."
  } else {
    sprintf("; their weights from the flow's importance weights: %s%s.", ws,
            if (K > show) sprintf(", and %d more", K - show) else "")
  }
  tail <- if (attr(m, "elsewhere") > 0.01) {
    sprintf(paste0(" %.1f%% of the weight settled at a point the search had not found: ",
                   "a mode was missed."), 100 * attr(m, "elsewhere"))
  } else ""
  paste0(head, body, tail)
}

# A start with several modes (an init_mixture() of more than one
# component), which the one-t moment matching of adapt_start() would merge.
is_mixture_start <- function(q) is.matrix(q$means) && nrow(q$means) > 1L

# The start q with the search of modes_start()'s result `laplace` (a
# condition where it failed: no search).
with_search <- function(q, laplace) {
  if (!inherits(laplace, "condition")) q$modes <- laplace$modes
  q
}

# Does the law q pass as a proposal for the target exp(-Phi) on n of its
# draws (the tests of target_reached() that need no settings)?
#
# Weights that are bounded on the draws close above their mean (the
# largest at most 1.1 times the mean: a proposal that covers the target
# everywhere it was drawn) pass whatever their k-hat: a generalized Pareto
# fitted to such a compressed tail is noise (Gaussian mixtures that were
# their targets to within a KL of 3e-4 had k-hat 0.2 to 5 on 4096 draws).
passes_as_proposal <- function(q, potential, n = 4096L) {
  x <- q$sample(n)
  phi <- tryCatch(potential_values(potential, x), error = function(e) NULL)
  if (is.null(phi)) return(FALSE)
  lq <- q$log_density(x)
  d <- target_divergence(phi, lq, 1, x)
  lw <- -phi - lq
  bounded <- all(is.finite(lw)) && max(exp(lw - max(lw))) / mean(exp(lw - max(lw))) <= 1.1
  isTRUE(d$pareto_k < khat_reached(n) || bounded) && covers_target(d)
}
