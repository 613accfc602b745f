# The posterior draws of a fit run to its target: made once at the end of
# the fit, kept in it (fit$draws), with their diagnostics; what print(),
# summary(), coef(), vcov(), confint() and the draws' conversions read.

# The exact draws of a stationary fit: its last law corrected by independence
# Metropolis-Hastings (R/correct.R), `draws` of them (jko_control()) in 4
# chains from the fit's own stream, on the flow's scale, each the last of
# as many proposals as the importance ESS of the last monitor samples asks
# for (and more where the proposals' tails ask for them, for a flow that
# passed as a proposal: functional_ess(), tail_most()), with their
# diagnostics.
#
# Where the target is costly (its cost a point, `fit$phi_cost`, measured on
# the monitor's evaluations), the proposals start from what fits in 10 s or
# is expected to keep the draws' ESS at 1000, and are raised while the
# chains' bulk ESS is below 1000 or their R-hat 1.01 or more, up to the
# usual thinning (draws_thinning(), correct_draws(): R/correct.R); the
# draws' diagnostics say so.
make_posterior_draws <- function(fit, threads = 1L) {
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
  ess <- if (independent) stats::setNames(rep(n, ncol(x)), colnames(x))
         else draws_ess(x, d$chain)
  rhat <- if (independent) stats::setNames(rep(NA_real_, ncol(x)), colnames(x))
          else draws_rhat(x, d$chain)
  list(x = x, log_density = d$log_density, chain = d$chain, method = d$method,
       acceptance = d$acceptance, ess = ess, rhat = rhat, n = n)
}

# Bulk ESS and R-hat of draws in chains, by the posterior package.
draws_ess <- function(x, chain) draws_stat(x, chain, "ess_bulk")

draws_rhat <- function(x, chain) draws_stat(x, chain, "rhat")

