# The weights of a target's modes from draws with their exact densities:
# mode_weights(), the basins of draws (a descent where their nearest mode
# does not settle them), modes that draws find beyond those of the search,
# and the modes of a fit for its verdict.

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
  single_blas()  # (R/threads.R)
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
  if (is.null(s)) {
    s <- with_stream(fit$seed, "modes", find_modes(tempered(fit$potential, fit$beta)), k = 1L)
  }
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
    # each draw in the metric of its nearest mode's Hessian. In the search's
    # one metric (its first point's), the 157 draws that descended on
    # posteriordb's normal_mixture (two modes, the labels swapped) all ran
    # their 100 iterations unconverged, 1.8 s of a 7.7 s fit; in their own
    # modes' metrics all converged, in 0.1 s, to the same basins
    group <- basin[todo]
    group[is.na(group)] <- 1L
    # (the metrics of the modes that some draw is nearest to)
    P <- vector("list", nrow(search$modes))
    for (k in unique(group)) {
      H <- search$hessian[[k]]
      P[[k]] <- if (all(is.finite(H))) abs_inverse(H) else search$precond
    }
    s <- descend(potential, x[todo, , drop = FALSE], P, maxit = 100L, group = group)
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
    if (is.null(p) || !p$pd || !is_stationary(q$gradient[m, ], p$H) ||
        known_mode(p, search$modes, search$hessian) > 0L) next
    share <- sum(wn[mode_distances(xo, matrix(p$par, 1L), list(p$H)) < stats::qchisq(0.99, D)])
    if (!(share >= 0.01)) next
    search$modes <- rbind(search$modes, p$par)
    search$hessian[[length(search$hessian) + 1L]] <- p$H
    search$value <- c(search$value, p$value)
    search$hits <- c(search$hits, 0L)
    search$log_z <- c(search$log_z, laplace_log_z(p$value, p$log_det, D))  # R/modes.R
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

# Whether a point with gradient g and positive definite Hessian H is a
# stationary point of Phi: its Newton decrement g' H^-1 g (twice the
# decrease of Phi that the Newton step promises) below mode_newton_tol.
# The descents judge convergence in the metric of the search's
# preconditioner, the inverse Hessian of its first mode; where that mode
# is a point deep in a funnel's neck (posteriordb's rats model: Hessian
# eigenvalues up to 5e20), every point of the bulk looks converged. There
# the draws' descents ended at 32 points of the bulk with gradients of
# norm 24-49 and Newton decrements of 130-33 000, potentials up to 35
# apart, each taken for a mode: the verdict listed 33 modes and said that
# 98% of the weight had settled at a mode the search missed. A mode
# polished by descend_qn() (tol 1e-8 in that metric) has a decrement many
# orders below the bound.
is_stationary <- function(g, H) isTRUE(newton_decrement(g, H) < mode_newton_tol)
mode_newton_tol <- 1e-2

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
      search <- modes_from_draws(tempered(fit$potential, fit$beta), p$x, p$log_weights, search)
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

# The fit, or where its flow's draws found a mode that the search missed
# (modes_from_draws()) the flow run again (`run`, a function of the start)
# from the mixture of all the modes (without it, it stalled: see NEWS.md),
# the first flow's cost kept in $first_flow. Not where the new mode's
# Laplace weight keeps it out of the start, nor where no mode qualifies
# (mixture_start() gives no mixture); and where that second flow fails,
# the first is kept, with a warning: a completed flow is never lost.
rerun_from_modes <- function(fit, run, verbose, t0) {
  s <- attr(fit$modes, "search")
  if (!isTRUE(fit$stationary) || !isTRUE(s$new_from_draws > 0L)) return(fit)
  start <- tryCatch(with_stream(fit$seed, "start",
                                mixture_start(s, tempered(fit$potential, fit$beta), 1, 7)),
                    error = function(e) NULL)
  if (!is_mixture_start(start)) return(fit)
  if (isTRUE(verbose)) {
    message(sprintf(paste0("The flow's draws found %d mode%s that the search had missed: ",
                           "the flow runs again, from the mixture of the %d modes found."),
                    s$new_from_draws, if (s$new_from_draws == 1L) "" else "s", nrow(s$modes)))
  }
  first <- list(seconds = proc.time()[["elapsed"]] - t0, steps = nrow(fit$history) - 1L,
                iterations = sum(fit$history$iters, na.rm = TRUE))
  second <- tryCatch(run(start), error = function(e) e)
  if (inherits(second, "error")) {
    warning(sprintf(paste0("The flow's draws found %d mode%s that the search had missed, but ",
                           "the flow from the mixture of the modes failed (%s): the first ",
                           "flow is kept."), s$new_from_draws,
                    if (s$new_from_draws == 1L) "" else "s", conditionMessage(second)),
            call. = FALSE)
    return(fit)
  }
  second$first_flow <- first
  second
}
