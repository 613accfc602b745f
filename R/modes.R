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
      # where no mode is known (the first point's Hessian is not positive
      # definite) and the first polish_give_up BFGS polishes all failed,
      # the rest of the batch is not polished: they fail as those did
      tried <- 0L
      found <- 0L
      for (m in seq_along(cand)) {
        r <- match(cand[m], rows)
        if (q$converged[m]) {
          pol[[r]] <- mode_point(q$x[m, ], q$value[m], modes_hessian(potential, q$x[m, ]))
        } else if (!nrow(modes) && !found && tried >= polish_give_up) {
          next
        } else {
          pol[[r]] <- polish_mode(potential, s$x[cand[m], ])
          tried <- tried + 1L
        }
        if (is_polished_mode(pol[[r]])) found <- found + 1L
      }
    }
    for (r in seq_along(rows)) {
      i <- rows[r]
      k <- k0[r]
      if (!k) {
        p <- pol[[r]]
        if (!is_polished_mode(p)) {
          failed <- failed + 1L
          next
        }
        if (nrow(modes)) k <- known_mode(p, modes, hess)
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
  # Whether the first point, which stands in the list as init_laplace()
  # has it, is a mode: not where its Hessian is not positive definite, nor
  # where its gradient is not zero to Newton's measure (the squared
  # decrement g' H^-1 g above first_mode_tol). At a hierarchical model's
  # neck, where the density grows without bound, BFGS stops at a point
  # that is no mode: on posteriordb's rats (centred, D = 65), pilots, the
  # centred eight schools and GLMM_Poisson every start failed, and the
  # verdict said "1 mode found" of a point whose Hessian is not positive
  # definite (on rats an eigenvalue of -0.51 in units of its diagonal).
  # Where the density has a spike (|x1|^-1/2 exp(-|x|^2 / 2)) BFGS stops
  # at a positive definite point with a gradient of norm 6e15. It stays
  # (the start's centre); the words no longer call it a mode.
  first_not_mode <- if (!nrow(modes)) "its Hessian is not positive definite" else
    if (p1$pd) first_gradient_text(potential, p1)
  if (!nrow(modes)) {
    # no point with a positive definite Hessian: the first point stands,
    # as init_laplace() has it
    modes <- matrix(first$mode, 1L)
    hess <- list(p1$H)
    vals <- p1$value
    ldet <- NA_real_
    hits <- 1L
  }
  log_z <- laplace_log_z(vals, ldet, D)
  w <- if (all(is.finite(log_z))) exp(log_z - max(log_z)) else rep(1, length(log_z))
  w <- w / sum(w)
  o <- order(-w)
  if (timed_out) region <- sprintf("%s (stopped after %g s)", region, max_seconds)
  structure(list(
    dim = D, modes = modes[o, , drop = FALSE], value = vals[o], hessian = hess[o],
    log_z = log_z[o], weights = w[o], hits = hits[o], starts = n_starts, failed = failed,
    region = region, missing = sum(hits == 1L) / n_starts,
    precond = P, first_not_mode = first_not_mode, seconds = proc.time()[["elapsed"]] - t0
  ), class = "jko_modes")
}

# Whether a polished end (mode_point()'s result, NULL where it failed) is
# a mode: a positive definite Hessian, and a BFGS that converged (a BFGS
# end that Newton's method could not finish is no mode: a crawl along a
# badly scaled ridge, see newton_polish()).
is_polished_mode <- function(p) !is.null(p) && p$pd && !isTRUE(p$convergence != 0L)

# The BFGS polishes (polish_mode()) of a batch's unconverged descents
# after which, where all failed and no mode is known, the search stops
# polishing that batch. In a centred hierarchical model every start
# crawls into the neck, where the density has no maximum: each polish
# ran BFGS to its limit and Newton's method from there, and none found a
# mode. On posteriordb's GLMM_Poisson (D = 45) the 32 polishes were 2.4
# s of a 3.3 s search, and the fit took 7.6 s against NUTS's 3.9 s. The
# starts' random draws are the same, so is the search's result where the
# skipped polishes would have failed too.
polish_give_up <- 4L

# Why the first point of a search, p1 (a mode_point() with a positive
# definite Hessian), is not a mode: a phrase, or NULL where it is one (its
# squared Newton decrement under its own Hessian at most first_mode_tol,
# or a gradient that cannot be had).
first_gradient_text <- function(potential, p1) {
  g <- modes_vg(potential, matrix(p1$par, 1L))$gradient[1L, ]
  dec <- newton_decrement(g, p1$H)  # R/descent.R
  if (!isTRUE(dec > first_mode_tol)) return(NULL)
  sprintf("its gradient is not zero (norm %.3g, squared Newton decrement %.3g)",
          sqrt(sum(g^2)), dec)
}

# The squared Newton decrement above which the search's first point is not
# called a mode: a Newton step from it would lower the potential by half
# that (0.5 here, a posterior density 1.6 times higher). Above
# mode_newton_tol (R/mode_weights.R), which judges points polished to
# Newton's precision: init_laplace()'s BFGS stops on the potential's
# relative change, short of that.
first_mode_tol <- 1

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

# K modes in words: "no mode", "1 mode", "K modes".
modes_phrase <- function(K) {
  if (K == 0L) "no mode" else sprintf("%d mode%s", K, if (K == 1L) "" else "s")
}

# What the search did, in words.
modes_search_text <- function(s) {
  K <- nrow(s$modes) - (if (isTRUE(s$from_draws > 0L)) s$from_draws else 0L)
  not <- s$first_not_mode
  if (!is.null(not)) K <- K - 1L
  out <- sprintf(paste0("%d start%s over %s found %s (a further start would find a new mode ",
                 "with a chance of about %.2g, by Good-Turing%s)"),
          s$starts, if (s$starts == 1L) "" else "s", s$region,
          modes_phrase(K),
          s$missing, if (s$failed > 0L) sprintf("; %d starts failed or ended at no mode",
                                                s$failed) else "")
  if (!is.null(not)) {
    out <- sprintf(paste0("%s; its first point, init_laplace()'s, is listed but is no mode: %s ",
                          "(as at a hierarchical model's neck, where the density has no maximum)"),
                   out, not)
  }
  if (isTRUE(s$from_draws > 0L)) {
    out <- sprintf("%s; descents from %d draws (of the start or the flow) found %d more",
                   out, s$descents, s$from_draws)
  }
  out
}

# The log of a mode's Laplace evidence: Phi = value at the mode, log_det
# the log-determinant of its Hessian there, in D dimensions.
laplace_log_z <- function(value, log_det, D) -value + D / 2 * log(2 * pi) - log_det / 2

# Which of the modes (rows, with their Hessians) the polished point p is,
# seen from either side (its squared Mahalanobis distance below 1 under
# the mode's Hessian or its own), else 0.
known_mode <- function(p, modes, hessians) {
  d2 <- mode_distances(matrix(p$par, 1L), modes, hessians)
  d2b <- vapply(seq_len(nrow(modes)), function(j) {
    d <- modes[j, ] - p$par
    sum(d * (p$H %*% d))
  }, 0)
  d <- pmin(d2, d2b)
  if (min(d) < 1) which.min(d) else 0L
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
  # (none qualifies where every weight is below the floor or not a number:
  # no mixture to start from)
  if (!length(main)) return(NULL)
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
  # Gaussian components, moved towards the target by importance sampling
  # (adapt_mixture(), R/pmc.R), where they pass as a proposal (as
  # adapt_start() judges one: k-hat of the weights of 4096 draws, no
  # coordinate narrower than 95% of the target's, none outside the
  # support); else Student t components of `df` degrees of freedom with
  # the same centres and scales, whose tails are the safer proposal where
  # a mode's are heavier than a Gaussian's. (On Gaussian mixtures, t
  # components with 7 df left SymKL 0.11-1.2 to the target at D = 2..12
  # where the Gaussian ones left at most 0.025.)
  out <- init_mixture(search$modes, covs, w)
  out$label <- sprintf("mixture of the Laplace approximations (sd x %g) at %d modes, dimension %d",
                       inflate, K, search$dim)
  moved <- adapt_mixture(out, potential)
  if (!is.null(moved)) out <- moved$q
  if (is.finite(df) && !isTRUE(moved$pass)) {
    t_out <- init_mixture(out$means, out$covs, out$weights, df = df)
    t_out$label <- sprintf("%s, Student t with %g df", out$label, df)
    out <- t_out
  }
  out$modes <- full
  out
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

# The start q with the search of modes_start()'s result `laplace` (a
# condition where it failed: no search).
with_search <- function(q, laplace) {
  if (!inherits(laplace, "condition")) q$modes <- laplace$modes
  q
}
