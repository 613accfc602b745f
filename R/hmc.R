# Draws of a target that its flow did not reach: Hamiltonian Monte Carlo,
# many short chains at once, started from the flow's draws.
#
# Where a flow stops short of its target (it stalls, or its training is
# projected to cost more than these chains: handover_due(),
# R/stationary.R), its draws are near the target but not its: on
# posteriordb's non-hierarchical dogs model (D = 65, a bivariate
# non-centred hierarchy) the flow stalled at KL 0.53 after 5 steps, its
# exact draws 0.108 sd off in a correlation and 9.7% in an sd. The flow's
# draws are still a good start for local moves: each HMC chain starts at
# one of them (resampled by its importance weight), and all chains move
# together, one call of the potential for the whole ensemble per leapfrog
# step. The ensemble adapts its own metric and step size: its covariance
# whitens the coordinates (an exact change of variables), and the step
# size follows the ensemble's mean acceptance, which averages out the
# noise of any one chain. Warmup ends when the ensemble's means stop
# moving: the chains' means over a block of iterations agree with those
# of the block half the warmup ago within their standard errors (across
# chains, so that each chain's autocorrelation is counted). On the dogs
# model, 250 chains from its start (KL 0.96-1.3) warm up in 20 iterations
# of 4-6 leapfrog steps: 27-36 s a fit against NUTS's 12-14 s, with
# NUTS's errors. These draws have no density of their own: they are the
# target's as far as their ESS, drift and divergent transitions can
# tell, which is not far in a funnel's neck (R/verdict.R,
# draws_failures()).

# HMC draws serve a fit whose law has a density and a single mode (chains
# in one metric would not cross between modes, and their share in each
# would be the flow's), unless jko_control(hmc = FALSE).
hmc_applies <- function(fit) {
  # (the law's density is its start's: the maps keep it)
  !isFALSE(fit$settings$hmc) && law_has_density(as_law(fit$init)) &&
    NROW(fit$init$base$modes$modes) <= 1L && !is_mixture_start(fit$init$base)
}

# The chains an ensemble of n draws runs: about 256 (at least 4 D, so
# that the ensemble's covariance has every direction), each giving
# ceiling(n / chains) draws after its warmup.
hmc_chains <- function(n, D) {
  per <- max(1L, as.integer(ceiling(n / max(256L, 4L * D))))
  as.integer(ceiling(n / per))
}

# The ensemble's metric: centre and the Cholesky factor L of its
# covariance, shrunk towards its diagonal as Stan's windowed adaptation
# does ((m C + 5e-3 diag(C)) / (m + 5)); NULL where not positive definite.
hmc_metric <- function(x) {
  m <- nrow(x)
  C <- stats::cov(x)
  C <- (m * C + 5e-3 * diag(diag(C), ncol(x))) / (m + 5)
  L <- tryCatch(t(chol(C)), error = function(e) NULL)
  if (is.null(L) || !all(is.finite(L))) return(NULL)
  list(centre = colMeans(x), L = L)
}

# The leapfrog steps of a transition of step size eps integrating for
# about `span`: at least 1, at most steps_max.
hmc_leapfrogs <- function(eps, span, steps_max) min(steps_max, max(1L, ceiling(span / eps)))

# Whitened coordinates y of points x (rows), and back.
hmc_y <- function(x, met) t(forwardsolve(met$L, t(x) - met$centre))
hmc_x <- function(y, met) sweep(y %*% t(met$L), 2L, met$centre, "+")

# The potential beta Phi and its gradient in whitened coordinates y
# (x = centre + L y), rows of y; a point where either is undefined has
# potential Inf (a move there is rejected).
hmc_energy <- function(potential, beta, met, y) {
  r <- modes_vg(potential, hmc_x(y, met))  # R/descent.R
  list(value = beta * r$value, gradient = beta * (r$gradient %*% met$L))
}

# One HMC transition of every chain: momenta drawn afresh, `steps`
# leapfrog steps of size eps, each chain's move accepted with probability
# min(1, exp(-dH)). state: list(y, value, gradient) (whitened). list(state,
# accept (each chain's probability), divergent (the chains whose energy
# error was over 1000 or undefined: a trajectory that left the target's
# scale, as in a funnel's neck that the step size cannot resolve)).
hmc_transition <- function(potential, beta, met, state, eps, steps) {
  m <- nrow(state$y)
  p <- matrix(stats::rnorm(length(state$y)), m)
  h0 <- state$value + rowSums(p^2) / 2
  y <- state$y
  p <- p - eps / 2 * state$gradient
  for (l in seq_len(steps)) {
    y <- y + eps * p
    new <- hmc_energy(potential, beta, met, y)
    p <- p - (if (l < steps) eps else eps / 2) * new$gradient
  }
  err <- new$value + rowSums(p^2) / 2 - h0
  a <- exp(pmin(0, -err))
  a[!is.finite(a)] <- 0
  take <- stats::runif(m) < a
  state$y[take, ] <- y[take, ]
  state$value[take] <- new$value[take]
  state$gradient[take, ] <- new$gradient[take, , drop = FALSE]
  # divergent: an energy error over 1000, as Stan counts them
  list(state = state, accept = a, divergent = sum(!is.finite(err) | err > 1000))
}

# Draws of pi = exp(-beta Phi) by HMC chains started at the rows of x0
# (one chain a row), in the first metric `metric` (by default the starts'
# own: hmc_metric()): warmup in blocks of `block` iterations, after each
# the metric taken again from the chains' positions, until the chains'
# means over the last block agree with those over the block half the
# warmup ago (at least `warmup_min`, at most `warmup_max` iterations);
# then ceiling(n / nrow(x0)) iterations of every chain, its positions
# kept, the first n (each the last of `thin` iterations, raised up to
# thin_max where the draws' smallest bulk ESS is short of ess_min, half
# the draws: on the dogs model 975-1261 at thin 1, its worst quantile 0.21
# sd off where NUTS's 4000 draws were 0.12). Each transition integrates
# for a time of about `span` (in whitened units: a quarter period of a
# unit Gaussian is pi / 2), its step size eps jittered by 20% and adapted
# to a mean acceptance of `delta`. list(x (draws, chain by chain), chain,
# acceptance (the mean over the kept transitions), method "hmc", eps,
# steps, thin, warmup, converged (FALSE where warmup_max ran out first),
# drift (hmc_drift()), divergent (the kept transitions that diverged:
# hmc_transition()), gradients), or NULL where no start has a finite
# potential.
hmc_draws <- function(potential, beta, x0, n, delta = 0.8, span = 1.5, block = 5L,
                      warmup_min = 20L, warmup_max = 150L, steps_max = 100L, ess_min = n / 2,
                      thin_max = 8L, metric = hmc_metric(x0)) {
  potential <- full_data(potential)  # (a minibatch target's gradients are noisy)
  m <- nrow(x0)
  D <- ncol(x0)
  met <- metric
  if (is.null(met)) return(NULL)
  start <- function(x, met) {
    y <- hmc_y(x, met)
    c(list(y = y), hmc_energy(potential, beta, met, y))
  }
  state <- start(x0, met)
  if (!any(is.finite(state$value))) return(NULL)
  evals <- m
  divergent <- 0L
  eps <- min(1, 1.5 / D^0.25)
  move <- function(eps) {
    e <- eps * stats::runif(1L, 0.8, 1.2)
    steps <- hmc_leapfrogs(e, span, steps_max)
    r <- hmc_transition(potential, beta, met, state, e, steps)
    evals <<- evals + steps * m
    state <<- r$state
    divergent <<- divergent + r$divergent
    r$accept
  }
  # warmup: the chains' block means, and the test that they stopped moving
  # (against the block half the warmup ago, over which a slow drift adds up)
  crit <- hmc_drift_max(D)
  blocks <- list()
  it <- 0L
  converged <- FALSE
  while (it < warmup_max) {
    sums <- matrix(0, m, D)
    for (b in seq_len(block)) {
      a <- move(eps)
      eps <- eps * exp(2 * (mean(a) - delta))
      sums <- sums + hmc_x(state$y, met)
    }
    it <- it + block
    cm <- sums / block
    blocks[[length(blocks) + 1L]] <- now <- list(mean = colMeans(cm),
                                                 var = apply(cm, 2L, stats::var) / m)
    if (it >= warmup_min) {
      before <- blocks[[ceiling(length(blocks) / 2)]]
      z <- (now$mean - before$mean) / sqrt(now$var + before$var)
      if (all(is.finite(z)) && max(abs(z)) < crit) {
        converged <- TRUE
        break
      }
    }
    new <- hmc_metric(hmc_x(state$y, met))
    if (!is.null(new)) {
      state <- start(hmc_x(state$y, met), new)
      met <- new
      evals <- evals + m
    }
  }
  # the kept iterations, each the last of `thin`, thin raised (the chains
  # going on) while the draws' bulk ESS is short of ess_min
  per <- as.integer(ceiling(n / m))
  chain <- rep(seq_len(m), each = per)[seq_len(n)]
  thin <- 1L
  repeat {
    divergent <- 0L
    keep <- array(NA_real_, c(per, m, D))
    acc <- numeric(per * thin)
    for (k in seq_len(per)) {
      for (j in seq_len(thin)) acc[(k - 1L) * thin + j] <- mean(move(eps))
      keep[k, , ] <- hmc_x(state$y, met)
    }
    # chain by chain, the first n
    x <- matrix(keep, per * m, D)[seq_len(n), , drop = FALSE]
    ess <- min(draws_stat(x, chain, "ess_bulk"))  # R/correct.R
    if (!is.finite(ess) || ess >= ess_min || thin >= thin_max) break
    thin <- as.integer(min(thin_max, max(thin + 1L, ceiling(1.15 * thin * ess_min / ess))))
  }
  list(x = x, chain = chain, acceptance = mean(acc), method = "hmc", eps = eps,
       steps = hmc_leapfrogs(eps, span, steps_max), thin = thin, warmup = it,
       converged = converged, drift = hmc_drift(keep), divergent = divergent,
       gradients = evals)
}

# Whether an ensemble's kept iterations (per x chains x D) drift: each
# chain's mean over the second half of its iterations less that over the
# first, averaged over the chains, in standard errors of that average
# (from the spread of the chains' own differences, so that each chain's
# autocorrelation counts); the largest |z| over the coordinates, compared
# with hmc_drift_max(D). (R-hat, made for a few long chains, is not: with
# 16 draws a chain, split into halves of 8, chains at their stationary law
# whose draws are correlated have an R-hat near sqrt(1 + (tau - 1) / 8),
# 1.03 for an autocorrelation time tau of 1.25.) NA with fewer than 2
# iterations a chain.
hmc_drift <- function(keep) {
  per <- dim(keep)[1L]
  if (per < 2L) return(NA_real_)
  h <- per %/% 2L
  half <- function(i) apply(keep[i, , , drop = FALSE], c(2L, 3L), mean)
  dif <- half(seq.int(per - h + 1L, per)) - half(seq_len(h))
  z <- colMeans(dif) / (apply(dif, 2L, stats::sd) / sqrt(nrow(dif)))
  max(abs(z[is.finite(z)]), 0)
}

# The largest drift (hmc_drift()) of an ensemble at its stationary law, D
# coordinates: a two-sided Bonferroni bound at 5%.
hmc_drift_max <- function(D) stats::qnorm(1 - 0.025 / D)
