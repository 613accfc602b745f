# The posterior draws of a fit run to its target: made once at the end of
# the fit, kept in it (fit$draws), with their diagnostics; what print(),
# summary(), coef(), vcov(), confint() and the draws' conversions read.

# The exact draws of a stationary fit: its last law corrected by independence
# Metropolis-Hastings (R/correct.R), `draws` of them (jko_control()) in 4
# chains from the fit's own stream, on the flow's scale, each the last of
# as many proposals as the importance ESS of the last monitor samples asks
# for (and more where the proposals' tails ask for them, for a flow that
# passed as a proposal: functional_ess(), tail_most()), with their
# diagnostics; for a flow that stopped short of its target, HMC chains
# started at its draws instead (hmc_posterior_draws()).
#
# Where the target is costly (its cost a point, `fit$phi_cost`, measured on
# the monitor's evaluations), the proposals start from what fits in 10 s or
# is expected to keep the draws' ESS at 1000, and are raised while the
# chains' bulk ESS is below 1000 or their R-hat 1.01 or more, up to the
# usual thinning (draws_thinning(), correct_draws(): R/correct.R); the
# draws' diagnostics say so.
make_posterior_draws <- function(fit, threads = 1L) {
  # a flow that stopped short of its target: HMC chains from its draws
  # (R/hmc.R), where the target has one known mode
  if (!identical(stop_reason(fit), "reached") && hmc_applies(fit)) {
    d <- hmc_posterior_draws(fit, threads)
    if (!is.null(d)) return(d)
  }
  last <- fit$history[nrow(fit$history), ]
  th <- draws_thinning(last$ess, fit$settings$draws, fit$phi_cost)
  # the first proposals serve the weights of several modes (fit_modes())
  # (and, with one, show modes that the search missed: modes_from_draws())
  s <- fit$init$base$modes
  keep <- if (!is.null(s)) modes_draws else 0L
  d <- with_stream(fit$seed, "draws",
                   correct_draws(fit_law(fit), fit$potential, fit$beta, fit$settings$draws,
                                 4L, th$thin, threads, thin_max = th$full,
                                 most = tail_most(fit, th), keep_proposals = keep))
  d$diagnostics <- draws_diagnostics(d)
  if (d$thin < th$full) {
    d$diagnostics$thin_full <- th$full
    d$diagnostics$phi_cost <- fit$phi_cost
  }
  d
}

# The posterior draws of a fit by HMC: hmc_chains() chains, each started at
# one of 4 times as many draws of the fit's law (the defensive proposals of
# correct_draws()), resampled by their importance weights, from the fit's
# "draws" stream; NULL where no weight is positive or HMC could not start.
# The proposals' weights stay with the draws (the mode table and the
# k-hat of the diagnostics read them).
hmc_posterior_draws <- function(fit, threads = 1L) {
  with_stream(fit$seed, "draws",
              hmc_law_draws(fit_law(fit), fit$potential, fit$beta, fit$settings$draws, threads))
}

# n draws of exp(-beta Phi) by HMC chains started at draws of `law`
# resampled by their weights, their first metric the draws' covariance
# (hmc_posterior_draws()), with their diagnostics; NULL where none can
# start.
hmc_law_draws <- function(law, potential, beta, n, threads = 1L) {
  m <- hmc_chains(n, law$dim)
  p <- proposal_draw(law, 4L * m, threads)
  lw <- proposal_log_weights(potential, beta, p$x, p$log_density)
  if (!any(is.finite(lw))) return(NULL)
  i <- sample.int(length(lw), m, replace = TRUE, prob = truncated_weights(lw))
  # (the first metric the law's: weights far from even resample few points)
  d <- hmc_draws(potential, beta, p$x[i, , drop = FALSE], n, metric = hmc_metric(p$x))
  if (is.null(d)) return(NULL)
  d$log_density <- rep(NA_real_, n)
  d$log_weights <- lw
  d$proposals <- list(x = p$x, log_density = p$log_density, log_weights = lw)
  d$diagnostics <- draws_diagnostics(d)
  d$diagnostics$method <- "hmc"
  d$diagnostics$dim <- law$dim
  keys <- c("eps", "steps", "warmup", "converged", "drift", "divergent", "gradients")
  d$diagnostics[keys] <- d[keys]
  d
}

# How many proposals a draw the proposals' tails may ask for (functional_ess(),
# R/correct.R): as many as the time allows for a flow that passed as a
# proposal, none beyond the usual for one that did not. A flow that stalled
# misses parts of its target rather than covering them thinly, and more
# proposals do not bring them: on the banana and the funnel they took the
# draws' bulk ESS from 480 to 1700 and from 730 to 3300, and the time from
# 5.1 to 6.0 s and from 9.8 to 13.4 s, with the sds as far off (the
# banana's worst 6% and 9%, the funnel's 59% and 59%, in one run each).
tail_most <- function(fit, th) {
  if (identical(stop_reason(fit), "reached")) th$most else 0L
}

# The posterior draws of a fit: x (n x D, on the model's constrained scale
# by default, columns under the target's names), log_density (of the flow's
# scale), chain (the chain of each draw), method ("flow": independent draws
# of the flow; "imh": chains of independence Metropolis-Hastings with the
# flow as proposal), acceptance, and per variable `ess` (the
# effective sample size) and `rhat` (NA for independent draws). NULL for a
# fit that is not of a target.
posterior_draws <- function(fit, scale = c("constrained", "unconstrained")) {
  scale <- match.arg(scale)
  d <- fit$draws
  if (is.null(d)) return(NULL)
  x <- d$x
  colnames(x) <- fit$potential$variables
  tr <- fit$potential$transform
  if (scale == "constrained" && !is.null(tr)) x <- tr$constrain(x)
  if (is.null(colnames(x))) colnames(x) <- paste0("x", seq_len(ncol(x)))
  n <- nrow(x)
  independent <- d$method == "flow"
  # (HMC's many short chains: no R-hat, which needs long ones: hmc_drift())
  ess <- if (independent) stats::setNames(rep(n, ncol(x)), colnames(x))
         else draws_ess(x, d$chain)
  rhat <- if (independent || d$method == "hmc") {
    stats::setNames(rep(NA_real_, ncol(x)), colnames(x))
  } else draws_rhat(x, d$chain)
  list(x = x, log_density = d$log_density, chain = d$chain, method = d$method,
       acceptance = d$acceptance, ess = ess, rhat = rhat, n = n)
}

# Bulk ESS and R-hat of draws in chains, by the posterior package.
draws_ess <- function(x, chain) draws_stat(x, chain, "ess_bulk")

draws_rhat <- function(x, chain) draws_stat(x, chain, "rhat")

