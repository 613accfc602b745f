# Diagnostics of a law against its target pi = exp(-beta Phi): importance
# weights, KL(rho || pi), the evidence's summaries and the Pareto k-hat.

# F(rho) = E Phi + E log rho / beta, from samples' potentials and log-densities.
free_energy <- function(phi, log_density, beta) mean(phi) + mean(log_density) / beta

# The free energy of a fit from its monitor samples: for a jko_energy() the
# mean of its per-sample values (`phi`), else the Fokker-Planck one.
step_free_energy <- function(potential, phi, log_density, beta) {
  if (inherits(potential, "jko_energy")) mean(phi) else free_energy(phi, log_density, beta)
}

# KL(q || pi) estimated on draws of q with finite log-weights lw: the log
# of the mean weight less the mean log-weight (Inf without draws).
kl_estimate <- function(lw) {
  if (length(lw)) max(lw) + log(mean(exp(lw - max(lw)))) - mean(lw) else Inf
}

# KL(rho || pi) for pi proportional to exp(-beta Phi), from samples of rho
# with their potentials phi and log-densities log_q: with log w = -beta phi
# - log q, KL = log E w - E log w (log Z - ELBO), its delta-method standard
# error, the Pareto k-hat of the weights and their relative ESS. With the
# samples x (n x D), also `moment_gap`: the largest difference, over the
# coordinates, between the samples' means and sds and their importance-
# weighted ones (which are pi's), in units of pi's sd (for the means) and
# relative (for the sds), `spread`: the smallest ratio of the samples'
# spread to the importance-weighted one (spread_ratios(): below 1 where rho
# is narrower than pi in some coordinate, the one way a proposal cannot be
# corrected), `spread_upper`: the smallest over the coordinates of that
# ratio plus spread_z of its standard errors, and `growth`
# (weight_growth()). The reverse KL barely sees a flow's light
# tails; the weights do.
target_divergence <- function(phi, log_q, beta, x = NULL) {
  lw <- -beta * phi - log_q
  out <- data.frame(kl = NA_real_, kl_se = NA_real_, pareto_k = NA_real_, ess = NA_real_,
                    moment_gap = NA_real_, spread = NA_real_, spread_upper = NA_real_,
                    outside = NA_real_, growth = NA_real_)
  if (anyNA(lw) || any(lw == Inf)) return(out)
  # A flow's law has a positive density everywhere: outside the support of
  # pi (phi = Inf), which the monitor samples may reach, KL is infinite.
  # The figures are then those of rho restricted to the support, with the
  # share of samples outside beside them.
  inside <- is.finite(lw)
  out$outside <- mean(!inside)
  if (sum(inside) < 10L) return(out)
  # (the moments are taken with one sample per column, as the BLAS reads
  # them fastest)
  if (!is.null(x)) x <- t(x)[, inside, drop = FALSE]
  lw <- lw[inside]
  n <- length(lw)
  mx <- max(lw)
  w <- exp(lw - mx)
  mw <- mean(w)
  out$kl <- mx + log(mw) - mean(lw)
  # influence of each sample on log mean(w) - mean(log w)
  out$kl_se <- stats::sd(w / mw - lw) / sqrt(n)
  out$pareto_k <- pareto_khat(lw)
  out$ess <- sum(w)^2 / sum(w^2) / n
  out$growth <- weight_growth(lw, log_q[inside])
  if (!is.null(x)) {
    wn <- w / sum(w)
    m <- rowMeans(x)
    m_is <- drop(x %*% wn)
    y0 <- (x - m)^2
    y1 <- (x - m_is)^2
    sd_x <- sqrt(rowSums(y0) / (n - 1))
    sd_is <- sqrt(drop(y1 %*% wn))
    out$moment_gap <- max(abs(m - m_is) / sd_is, abs(sd_x / sd_is - 1))
    sp <- spread_ratios(y0, y1, w / mw)
    out$spread <- min(sp$r)
    out$spread_upper <- min(sp$r + spread_z * sp$se)
  }
  out
}

# Each coordinate's spread against its importance-weighted one, for the
# spread test (covers_target()): the ratio r of the root mean squared
# distances of the draws to their mean and, under the weights w (over
# their mean), to the weighted mean (y0 and y1: the squared distances, a
# coordinate a row, a draw a column), both
# winsorised at the same value, the M-th largest of the draws' own squared
# distances (M = sqrt(n), as Ionides truncates weights), with r's standard
# error by the delta method: each draw's influence on log r^2 is
# (y0 - S0) / S0 - w (y1 - S1) / S1, with y0, y1 its winsorised squared
# distances and S0, S1 their means. Both are taken on the same draws, so
# where the weights are nearly equal r is precise however heavy the tails.
# Without the winsorising, one far draw decides an sd of heavy tails, and
# its weight the ratio: a funnel's near-exact conditional Laplace law (KL
# 0.01, ESS 98%, k-hat 0.18) read sd ratios 0.83-0.96 in its x's, one draw
# at x = -766 with weight 1.6 making 0.83 (the x's sd is 9.5, their
# kurtosis 3e9), and failed the test; winsorised, they read 0.988-0.995.
# For a Gaussian flow s times as wide as its target in a coordinate, the
# winsorised ratio is s + 0.005 at s = 0.95 and s + 0.011 at 0.9 (4096
# draws), its scatter a third smaller than the plain ratio's.
spread_ratios <- function(y0, y1, w) {
  n <- ncol(y0)
  D <- nrow(y0)
  k <- n - ceiling(sqrt(n))
  if (k >= 1L) {
    cap <- vapply(seq_len(D), function(j) sort.int(y0[j, ], partial = k)[k], 0)
    y0 <- pmin(y0, cap)
    y1 <- pmin(y1, cap)
  }
  S0 <- rowMeans(y0)
  S1 <- rowMeans(y1 * rep(w, each = D))
  r <- sqrt(S0 * n / (n - 1) / S1)
  a <- (y0 - S0) / S0 - rep(w, each = D) * (y1 - S1) / S1
  list(r = r, se = r * sqrt(rowSums((a - rowMeans(a))^2) / (n - 1) / n) / 2)
}

# How fast the log-weights lw = log pi - log q of draws of a flow grow with
# the flow's own surprise s = -log q: the difference of their mean between
# the draws of the flow's middle 50% to 90% in s and its central 50%,
# over the difference of s. Where pi and q are Gaussians with sds 1 and
# sigma in every direction, lw = (1 - sigma^2) s + const: a flow narrower
# than its target has weights that grow outwards, by 1 - sigma^2. Unlike
# the spread of each coordinate against its importance-weighted sd (which
# the weights give only where the flow has draws), this follows the flow's
# own level sets, curved ones included, and is measured where the flow has
# most of its draws: a banana's flow that never reached the ends of its
# arms, with sds 30-40% short, had growth 0.19-0.21 where every coordinate's
# spread was at least 0.95 and k-hat below 0.45; flows of the same targets
# that reached them, and all the over-dispersed starts, have growth at most
# 0.04. NA where the draws do not spread in s.
weight_growth <- function(lw, log_q) {
  s <- -log_q
  q <- stats::quantile(s, c(0.5, 0.9), names = FALSE)
  mid <- s <= q[1L]
  out <- s > q[1L] & s <= q[2L]
  ds <- mean(s[out]) - mean(s[mid])   # NaN where a band is empty
  if (!is.finite(ds) || ds <= 0) return(NA_real_)
  (mean(lw[out]) - mean(lw[mid])) / ds
}

# The most a flow's weights may grow with its surprise (weight_growth())
# for it to pass as its target's proposal: 1 - spread_min^2, the growth of
# a Gaussian flow whose sd is spread_min times its target's in every
# direction.
growth_max <- function() 1 - spread_min^2

# Of log-weights lw (not all -Inf): the log of their mean weight, its
# relative standard error (the standard error of log mean(w)), and the
# effective sample size sum(w)^2 / sum(w^2).
log_weights_summary <- function(lw) {
  w <- exp(lw - max(lw))
  mw <- mean(w)
  list(log_mean = max(lw) + log(mw), rel_se = stats::sd(w) / (sqrt(length(w)) * mw),
       ess = sum(w)^2 / sum(w^2))
}

# log w = -beta Phi(x) - log q(x) at the rows of x, Phi on the full data.
# Phi = +Inf gives -Inf, a negative infinite Phi an error, NA/NaN an NA.
importance_log_weights <- function(potential, beta, x, log_q) {
  check_not_energy(potential)
  phi <- potential_values(potential, x)
  if (any(phi == -Inf, na.rm = TRUE)) {
    abort("the potential is -Inf at %d samples: the target cannot be normalised.",
          sum(phi == -Inf, na.rm = TRUE))
  }
  lw <- -beta * phi - log_q
  lw[phi == Inf] <- -Inf
  lw
}

# Importance weights and the evidence need pi = exp(-beta Phi): a potential
# alone.
check_not_energy <- function(potential) {
  if (inherits(potential, "jko_energy")) {
    abort(paste0("importance weights and the evidence need the stationary law exp(-beta Phi) ",
                 "of a potential; a free energy from jko_energy() has none in closed form."),
          call = NULL)
  }
  invisible(potential)
}

# The threshold of the Pareto k-hat of S importance weights (Vehtari et
# al., 2024): below it the importance sampling estimates are reliable.
khat_threshold <- function(S) min(1 - 1 / log10(max(S, 10)), 0.7)

# The tests of a proposal's coverage, on a row of target_divergence()'s
# figures: nowhere narrower than the target, per coordinate (spread_min)
# or along its own level sets (growth_max()). (target_reached() adds the
# weights' k-hat and ESS.) Samples outside the target's support are
# weights of zero: they only lower the ESS (ess_with_outside()).
covers_target <- function(h) {
  spread <- h[["spread_upper"]] %||% h$spread
  isTRUE(spread >= spread_min) && !isTRUE(h$growth >= growth_max())
}

# The relative ESS of all of a law's samples, those outside the target's
# support counted as weights of zero: target_divergence()'s ESS is that of
# the samples inside, a share 1 - outside of them. (A proposal's draws
# outside the support are rejected by the exact correction and weigh
# nothing in importance sampling; until 2026-12-07 any share above 0.1%
# failed a proposal, and posteriordb's dogs_log, whose two coefficients
# are bounded by uniform priors on half-lines with the posterior near one
# edge, had a start of ESS 97% with 1.9% of its samples outside, trained
# 5 steps (134 s) that kept 1.3% outside, and stalled, its draws exact.)
ess_with_outside <- function(h) {
  out <- h[["outside"]]
  h$ess * (1 - if (is.null(out) || is.na(out)) 0 else out)
}

# The threshold a flow's k-hat must pass to be called the target's
# proposal: below 1/2 the weights have a finite variance (Vehtari et al.),
# and an independence Metropolis-Hastings chain with that proposal mixes
# at the rate its weights allow. Between 1/2 and the importance sampling
# threshold the estimates of means are still usable, but a part of the
# target the flow reaches too rarely (a banana's arms at k-hat 0.6 on
# 10^5 proposals, its sds 45% short) is missed by every chain as well.
khat_reached <- function(S) min(khat_threshold(S), 0.5)

# The least ratio of a proposal's sd to the target's importance-weighted sd,
# in every coordinate, for the proposal to pass: a flow narrower than its
# target is the one error the exact correction cannot undo in a few
# thousand draws, and the importance weights see it only in part (a banana
# whose flow had sds 61% of the truth showed a ratio of 0.915 and k-hat
# 0.49: 0.9 let it pass as reached).
spread_min <- 0.95

# A coordinate fails the spread test only where its ratio
# (spread_ratios()) is below spread_min by more than spread_z standard
# errors (one-sided, 5%): read on the plain sds, a funnel's near-exact
# conditional Laplace law (KL 0.01, ESS 98%) read 0.941 +- 0.023 on 4096
# draws, failed, and its flow trained for 6 steps and stalled at the same
# KL (4.8 s against 0.5 s for the seeds whose ratio read above 0.95).
spread_z <- stats::qnorm(0.95)

# Pareto k-hat of importance weights given on the log scale (PSIS, Vehtari
# et al.): a generalized Pareto fitted to the M = min(0.2 S, 3 sqrt(S))
# largest weights over the next largest. From loo::psis() when loo is
# installed; otherwise our own fit by the method of Zhang & Stephens, which
# gives the same number (the tests check it).
pareto_khat <- function(lw, use_loo = requireNamespace("loo", quietly = TRUE)) {
  lw <- sort(lw[is.finite(lw)])
  S <- length(lw)
  M <- ceiling(min(0.2 * S, 3 * sqrt(S)))
  if (M < 5L || S <= M + 1L) return(NA_real_)
  tail <- lw[(S - M + 1L):S]
  cutoff <- lw[S - M]
  mx <- max(tail)
  x <- exp(tail - mx) - exp(cutoff - mx)
  if (all(x <= 0)) return(NA_real_)  # the largest weights are all equal
  k <- gpd_fit_zs(x)$k
  # loo's fit is the same; it stops with an error where the fit is undefined
  # (k NaN), so it is asked only where ours is defined. (No tryCatch here: it
  # would swallow an interrupt or a time limit reached inside a fit.)
  if (use_loo && !is.na(k)) k <- suppressWarnings(loo::psis(lw, r_eff = 1))$diagnostics$pareto_k
  # weights all within 1.2 times their mean are bounded (k < 0), with an
  # ESS above 83%, and the fit to their exceedances, piled up against the
  # bound, is noise: a conditional Laplace law of a banana, its
  # log-weights within 0.0015 of each other, got k-hat 2.2 to 3.1, and
  # its exact draws' proposals (the defensive mixture, weights at most
  # 1 / 0.9 of their mean) 3.8
  if (!is.na(k) && -log(mean(exp(lw - mx))) < log(1.2)) k <- min(k, 0)
  k
}

# Zhang & Stephens (2009): the shape k and scale sigma of a generalized
# Pareto for exceedances x >= 0 (sorted increasingly), as a posterior mean of
# theta = -k / sigma over a grid of M quantile-based values, weighted by the
# profile likelihood; k then shrunk towards 0.5 by a weakly informative prior
# worth 10 observations, as in PSIS.
gpd_fit_zs <- function(x) {
  x <- sort(x)
  N <- length(x)
  prior <- 3
  M <- 30L + floor(sqrt(N))
  j <- seq_len(M)
  xstar <- x[floor(N / 4 + 0.5)]
  theta <- 1 / x[N] + (1 - sqrt(M / (j - 0.5))) / prior / xstar
  kk <- vapply(theta, function(t) mean(log1p(-t * x)), numeric(1))
  ll <- N * (log(-theta / kk) - kk - 1)
  wt <- exp(ll - max(ll))
  wt <- wt / sum(wt)
  theta_hat <- sum(theta * wt)
  k <- mean(log1p(-theta_hat * x))
  sigma <- -k / theta_hat
  k <- (k * N + 10 * 0.5) / (N + 10)
  list(k = k, sigma = sigma)
}

# A law is a good proposal for its target when the importance weights of
# its monitor samples have a Pareto k-hat below khat_reached() and an effective sample
# size of at least ess_min of the samples, the law is nowhere narrower than
# the target (no coordinate's spread below spread_min = 0.95 of its
# importance-weighted one by more than spread_z standard errors,
# spread_ratios(): a proposal too narrow in its tails is the one error the exact
# correction cannot undo in a few thousand draws, and the importance
# weights see it only there), its weights do not grow outwards along its
# own level sets by more than growth_max() (the same error where the
# target is curved: weight_growth()), its samples outside the target's
# support counted as weights of zero in that ESS (ess_with_outside()); a
# KL and the moments are asked for only where the settings give their
# tolerances.
target_reached <- function(h, settings) {
  ok <- isTRUE(h$pareto_k < khat_reached(settings$monitor) &&
                 ess_with_outside(h) >= settings$ess_min) &&
    covers_target(h)
  if (!is.null(settings$kl_tol)) ok <- ok && isTRUE(h$kl < settings$kl_tol)
  if (!is.null(settings$moment_tol)) ok <- ok && isTRUE(h$moment_gap < settings$moment_tol)
  ok
}
