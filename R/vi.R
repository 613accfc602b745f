# A start for posteriors whose mode misleads. A centred hierarchical model's
# density grows without bound down its funnel's neck (every group effect at
# the mean, the scale to zero), so the optimiser ends there and the Laplace
# approximation is a needle far from the mass; N(0, I) may be far from it
# too. Variational inference needs no mode: the Gaussian of largest ELBO,
# found from N(0, I) by natural-gradient steps, sits in the bulk.
#
# Measured (posteriordb, held-out run 4, inst/bench/heldout.R --long-nuts):
# see NEWS.md. The surgical model (BUGS's hierarchical binomial, centred,
# D = 14) went from 13.1 s, stalled, a mean 0.62 sd off, to a start that
# passed as a proposal at step 0.

# The Gaussian of largest ELBO by natural-gradient variational inference
# (the Bayesian learning rule of Khan and Rue, 2023, with the positive
# definite precision update of Lin, Schmidt and Khan, 2020): for q =
# N(mu, P^-1), each iteration estimates E_q[grad Phi] and E_q[Hessian
# Phi] from m draws by Stein's identity (E_q[grad Phi (x - mu)'] P), only
# gradients, and moves by rho:
#   P <- P + rho G + rho^2 / 2 G P^-1 G, G = E_q[Hessian] - P,
#   mu <- mu - rho P^-1 E_q[grad Phi].
# A Newton method on the ELBO: its fixed point is the reverse-KL optimum,
# reached in tens of iterations where a plain stochastic gradient took
# thousands. Run from q0 (its mean and covariance); returned as the Student
# t (`df`) of that centre and covariance, with its smoothed ELBO in $elbo;
# NULL where it fails in its first 40 iterations (a precision that became
# singular, a target not finite at half the draws); after those,
# such a failure ends it, the best iterate kept. It ends when its smoothed
# ELBO has not risen for 30 iterations; `iters` only bounds the cost. (A
# cap of 200 cut posteriordb's Poisson GP regression off at an ELBO of 858
# where it ends at 950, 540 iterations from N(0, I), and the flow from the
# cut-off start stalled 0.59 sd off in a mean; the battery's runs end in
# 29-138 iterations.)
vi_start <- function(q0, potential, beta, m = 128L, iters = 1000L, rho = 0.1, df = 7) {
  pot <- full_data(potential)
  D <- q0$dim
  mu <- q0$mean
  P <- solve(q0$cov)
  sm <- NULL
  best <- list(elbo = -Inf, mu = mu, P = P, it = 0L)
  for (it in seq_len(iters)) {
    C <- tryCatch(chol(P), error = function(e) NULL)
    if (is.null(C)) {
      if (it < 40L) return(NULL)
      break
    }
    z <- matrix(stats::rnorm(m * D), m, D)
    # antithetic pairs halve the noise of the mean gradient
    z <- rbind(z[seq_len(m %/% 2L), , drop = FALSE], -z[seq_len(m %/% 2L), , drop = FALSE])
    e <- t(backsolve(C, t(z)))  # x - mu ~ N(0, P^-1)
    x <- sweep(e, 2L, mu, "+")
    # value and gradient in one call of the target (R/descent.R; Inf
    # where the target is not finite)
    vg <- modes_vg(pot, x)
    ok <- is.finite(vg$value)
    if (sum(ok) < nrow(x) / 2) {
      if (it < 40L) return(NULL)
      break
    }
    g <- beta * vg$gradient[ok, , drop = FALSE]
    e <- e[ok, , drop = FALSE]
    elbo <- -beta * mean(vg$value[ok]) - sum(log(diag(C)))
    mu_old <- mu
    P_old <- P
    gbar <- colMeans(g)
    H <- crossprod(g, e) %*% P / nrow(g)
    H <- (H + t(H)) / 2
    G <- H - P
    # a step that would change the precision by much more than P itself is
    # shortened (vi_step_max)
    Mg <- backsolve(C, t(backsolve(C, G, transpose = TRUE)), transpose = TRUE)
    r <- min(rho, vi_step_max / sqrt(sum(Mg^2)))
    if (!is.finite(r)) r <- rho
    nx <- tryCatch({
      Pn <- P + r * G + r^2 / 2 * G %*% solve(P, G)
      Pn <- (Pn + t(Pn)) / 2
      list(P = Pn, mu = mu - r * solve(Pn, gbar))
    }, error = function(e) NULL)
    # (a precision that became singular in floating point ends the run,
    # the best iterate so far kept)
    if (is.null(nx) || any(!is.finite(nx$P)) || any(!is.finite(nx$mu))) {
      if (it < 40L) return(NULL)  # too early to trust
      break
    }
    P <- nx$P
    mu <- nx$mu
    # the iterate of the best ELBO (smoothed over iterations) is kept: in a
    # funnel, the noise of the Hessian's estimate can let the iterates
    # slide down the neck after they reached the bulk
    if (is.finite(elbo)) sm <- if (is.null(sm)) elbo else 0.8 * sm + 0.2 * elbo
    if (!is.null(sm) && sm > best$elbo) best <- list(elbo = sm, mu = mu_old, P = P_old, it = it)
    if (it - best$it >= 30L) break
  }
  if (best$it == 0L) return(NULL)
  mu <- best$mu
  P <- best$P
  S <- solve(P)
  S <- (S + t(S)) / 2
  if (any(!is.finite(S)) || any(!is.finite(mu))) return(NULL)
  q <- tryCatch(init_mvt(mu, S * (df - 2) / df, df), error = function(e) NULL)  # R/init.R
  if (is.null(q)) return(NULL)
  q$elbo <- best$elbo
  q$label <- sprintf(paste0("Student t (%g df) of the Gaussian of largest ELBO (%d iterations ",
                            "of natural-gradient variational inference from %s), dimension %d"),
                     df, best$it, q0$from %||% "the Laplace approximation", D)
  q
}

# The most a step of vi_start() may change the precision, relative to
# itself: rho ||C^-T G C^-1||_F <= vi_step_max (P = C'C), rho shortened
# where it would be more. A badly scaled target far from N(0, I) (posteriordb's
# rats model, D = 65, weights in grams) has first Hessian estimates 10^8 to
# 10^9 times N(0, I)'s precision: P + rho G + rho^2 / 2 G P^-1 G, positive
# definite in exact arithmetic, lost P to rounding, was singular, and the
# run gave up in its first iterations; with its first five steps
# shortened, it reaches the bulk (mu_alpha 242.5, sigma_alpha 14.7,
# sigma_y 6.2, where posteriordb's reference has 242.5, 14.6 and 6.1).
# Where the rats run settles, rho ||...|| is 0.8-0.9 (the estimates' noise
# at D = 65): the cap does not act there. In vs_nuts.R's 42 runs it acted
# in the first iterations of three runs whose start was then chosen
# without them: the same draws to the bit.
vi_step_max <- 10

# Whether the mode of the Laplace approximation `laplace` lies outside the
# 99.9% ellipsoid of the variational Gaussian q (its centre and
# covariance): the mode misleads, as in a funnel's neck, where the density
# grows without bound away from the mass. Where it does not (a banana's
# mode, inside its mass), the Laplace and N(0, I) starts are kept: from the
# narrower variational start the banana's flow stalled with sds 31-69% off
# where from N(0, I) it stalled with 10-34% (3 seeds).
mode_misleads <- function(laplace, q) {
  if (is.null(laplace[["mode"]]) || is_mixture_start(laplace)) return(FALSE)
  d <- laplace$mode - q$mean
  d2 <- tryCatch(sum(d * solve(q$cov, d)), error = function(e) NA_real_)
  isTRUE(d2 > stats::qchisq(0.999, length(d)))
}

# vi_start() from N(0, I) (the scale of parameters on an unconstrained
# scale) and, where there is a Laplace approximation, from N(its mode, I)
# (a badly scaled posterior may defeat one and not the other): the one of
# larger ELBO (their smoothed estimates), or NULL. The second run is left
# out where the first found a Gaussian outside whose mass the mode lies:
# on rats (D = 65, its mode in the neck at log sigma_alpha = -22) it
# started at an ELBO of -10^21, took 581 iterations (3 of a fit's 12 s)
# to climb out, and ended 0.05 below the first.
vi_best <- function(cands, potential, beta) {
  q0s <- list(cands$standard)
  q0s[[1L]]$from <- "N(0, I)"
  if (!is.null(cands$laplace[["mode"]])) {  # (a mixture start has none)
    q <- init_gaussian(cands$laplace[["mode"]], 1)
    q$from <- "N(the mode, I)"
    q0s[[2L]] <- q
  }
  best <- NULL
  for (q0 in q0s) {
    # the run from the mode is left out where the run from N(0, I) found
    # the bulk and the mode lies outside it (mode_misleads()): it starts in
    # the funnel's neck, and climbs out slowly to the same place
    if (!is.null(best) && mode_misleads(cands$laplace, best)) break
    v <- tryCatch(vi_start(q0, potential, beta), error = function(e) NULL)
    if (!is.null(v) && (is.null(best) || isTRUE(v$elbo > best$elbo))) best <- v
  }
  best
}
