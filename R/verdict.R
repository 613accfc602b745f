# A stationary flow's verdict (target_verdict(), R/stationary.R) in words:
# the fit's print and summary, and the warning of a fit not reached.

# The verdict in words.
verdict_text <- function(v) {
  flow <- sprintf(paste0("importance weights of the flow's %d monitor samples: Pareto k-hat %.2f, ",
                         "ESS %.0f%%; KL(rho || pi) = %.3g (se %.2g)%s"),
                  as.integer(v$monitor %||% NA), v$pareto_k, 100 * v$ess, v$kl, v$kl_se,
                  paste0(if (isTRUE(v$outside > 0))
                           sprintf("; %.2g%% of them outside the support of pi (KL over the rest)",
                                   100 * v$outside) else "",
                         if (isTRUE(v$growth >= growth_max()))
                           sprintf(paste0("; their log-weights grow outwards along the flow's ",
                                          "level sets at %.2f (at most %.2f passes): the flow is ",
                                          "narrower than the target"),
                                   v$growth, growth_max()) else ""))
  d <- v$draws
  hmc <- identical(d$method, "hmc")
  draws <- if (hmc) {
    sprintf(paste0("%d draws in %d chains of Hamiltonian Monte Carlo started at the flow's ",
                   "draws (%d warmup iterations%s, %d leapfrog steps of %.2g each): ",
                   "acceptance %.0f%%, bulk ESS >= %.0f, tail ESS >= %.0f, the chains' means ",
                   "over their last draws %.1f standard errors at most from those over their ",
                   "first (%.1f allowed), %d divergent transitions"),
            d$n, d$chains, as.integer(d$warmup),
            if (isTRUE(d$converged)) "" else ", the chains' means still moving",
            as.integer(d$steps), d$eps, 100 * d$acceptance, d$ess_bulk, d$ess_tail, d$drift,
            hmc_drift_max(d$dim), as.integer(d$divergent %||% 0L))
  } else if (!is.null(d)) {
    sprintf(paste0("%d exact draws in %d chains of independence Metropolis-Hastings with the ",
                   "flow as proposal: acceptance %.0f%%, bulk ESS >= %.0f, tail ESS >= %.0f, ",
                   "R-hat <= %.3f; Pareto k-hat %.2f of %d proposals"),
            d$n, d$chains, 100 * d$acceptance, d$ess_bulk, d$ess_tail, d$rhat, d$pareto_k,
            as.integer(d$proposals))
  }
  if (!is.null(d$thin_full)) {
    # a costly target: fewer proposals than for draws worth as many
    # independent ones (draws_thinning(), R/correct.R)
    draws <- paste0(draws, sprintf(paste0(
      " (each draw the last of %d proposals, not %d: the target costs about %s ms a point, so ",
      "the proposals were as many as fit in 10 s or give a bulk ESS of 1000 and an R-hat ",
      "below 1.01)"),
      as.integer(d$thin), as.integer(d$thin_full), format(signif(1000 * d$phi_cost, 1))))
  }
  if (v$reached) {
    # modes: no figure of the draws can see a mode they never came near:
    # what was searched is said instead (R/modes.R)
    return(sprintf(paste0("The draws are the target's as far as their diagnostics and the ",
                          "search for modes can tell: %s. The flow became a good proposal at ",
                          "step %d (%s). %s"), draws, v$step, flow, modes_text(v$modes)))
  }
  why <- switch(v$reason,
    draws = "the flow passed as a proposal, but its exact draws did not mix (see below)",
    stalled = "the KL estimate stopped decreasing",
    handover = paste0("its training (the KL falling at its last step's rate, or halving a ",
                      "step before any) was projected to cost more evaluations than HMC chains ",
                      "from its draws"),
    steps = "the given number of steps ran out",
    max_steps = "the step budget (`max_steps`) ran out",
    max_time = "the time budget (`max_time`) ran out",
    "it was stopped")
  advice <- if (hmc_vouched(d)) {
    paste0("Its draws are the target's as far as their chains' ESS and drift can tell; the ",
           "flow's density (jko_density(), jko_evidence()) is not the target's.")
  } else verdict_advice(v$reason)
  paste(sprintf("The flow did NOT reach the target: %s at step %d (%s)%s. %s",
                why, v$step, flow, if (is.null(draws)) "" else paste0("; ", draws), advice),
        if (!is.null(v$neck)) v$neck$text,  # R/neck.R
        modes_text(v$modes))  # modes: R/modes.R
}

# What to do about a flow that did not reach its target, by the reason it
# stopped. A stalled flow is not sent back to more steps or a wider network:
# on the banana and Neal's funnel of inst/bench/posteriors.R (2026-12-05,
# seed 1 or 2), six more steps (jko_continue()) left the banana at KL
# 0.22 and took the funnel from 0.185 to 0.204; width 64 stalled at 0.21
# and 0.11-0.12 (width 32: 0.22, 0.12-0.19), and batches of 128 to 2048,
# a cap of 32 on h, the squared softplus and a tempered first flow
# (beta = 0.5) stalled at 0.17-0.28 or worse.
verdict_advice <- function(reason) {
  switch(reason,
    stalled = paste0(
      "Its draws may not be the target's, and more steps or a wider network are unlikely to ",
      "help once the KL has stopped decreasing (they did not on a banana or Neal's funnel): ",
      "where the target has a thin curved ridge or a funnel's neck, reparameterise it (a ",
      "hierarchical model in its non-centred form) or check the draws against another ",
      "sampler's."),
    draws = paste0(
      "Its draws may not be the target's: continue it (jko_continue()) to make it a better ",
      "proposal, or draw more with jko_sample(fit, n)."),
    handover = paste0(
      "Its draws may not be the target's (see above): check them against another sampler's, ",
      "or continue the flow (jko_continue())."),
    steps = , max_steps = , max_time = paste0(
      "Its draws may not be the target's: continue it (jko_continue()), or give it more steps ",
      "or time (`max_steps`, `max_time`)."),
    paste0("Its draws may not be the target's: continue it (jko_continue()), or widen the ",
           "network or the iterations (jko_control())."))
}

# The verdict in a line or two, for the posterior's print (the whole of it
# in summary() and print(fit, training = TRUE)).
verdict_short <- function(v) {
  d <- v$draws
  chains <- if (identical(d$method, "hmc")) {
    sprintf("HMC draws, acceptance %.0f%%, bulk ESS >= %.0f, tail ESS >= %.0f",
            100 * d$acceptance, d$ess_bulk, d$ess_tail)
  } else if (!is.null(d)) {
    sprintf("acceptance %.0f%%, R-hat <= %.3f, tail ESS >= %.0f", 100 * d$acceptance, d$rhat,
            d$ess_tail)
  } else "no exact draws"
  m <- v$modes
  modes <- if (is.null(m)) "no mode search" else {
    s <- attr(m, "search")
    by <- if (!is.null(s$starts)) sprintf("%d starts", as.integer(s$starts))
    # (the search's first point is listed where it is no mode: not counted)
    K <- nrow(m) - !is.null(s$first_not_mode)
    if (isTRUE(s$from_draws > 0L)) {
      by <- sprintf("%d by %s, %d from draws", K - s$from_draws,
                    by %||% "the search", s$from_draws)
    }
    sprintf("%s found%s", modes_phrase(K),
            if (is.null(by)) "" else if (isTRUE(s$from_draws > 0L)) sprintf(" (%s)", by)
            else sprintf(" by %s", by))
  }
  if (v$reached) {
    return(sprintf(paste0("Verdict: the draws are the target's (the flow a good proposal at ",
                          "step %d, k-hat %.2f; %s; %s)."), v$step, v$pareto_k, chains, modes))
  }
  why <- switch(v$reason, draws = "its exact draws did not mix", stalled = "it stalled",
                handover = "HMC took over",
                steps = "its steps ran out", max_steps = "max_steps ran out",
                max_time = "max_time ran out", "it was stopped")
  # (the monitor's k-hat passed where the draws failed: their own figure)
  what <- if (identical(v$reason, "draws") && !is.null(d)) {
    paste(draws_failures(d), collapse = ", ")
  } else sprintf("k-hat %.2f", v$pareto_k)
  sprintf(paste0("Verdict: the flow did NOT reach the target (%s at step %d, %s; %s; ",
                 "%s): %s. See summary(fit)."),
          why, v$step, what, chains, modes,
          if (hmc_vouched(d)) {
            "its draws are the target's as far as their HMC chains can tell, its density is not"
          } else "its draws may not be the target's")
}

# Are draws HMC's (R/hmc.R), and do they pass every check of theirs?
hmc_vouched <- function(d) identical(d$method, "hmc") && !length(draws_failures(d))

# The exact draws' checks that failed (none where the draws pass: the
# verdict's test), each as a phrase: the Pareto k-hat of their proposals'
# weights and R-hat (for HMC draws, whether their warmup settled, their
# kept draws drift (hmc_drift(), R/hmc.R) or diverged), bulk ESS.
draws_failures <- function(d) {
  out <- character()
  # (HMC draws: their proposals only chose the chains' starts)
  if (identical(d$method, "hmc")) {
    if (!isTRUE(d$converged)) out <- c(out, "the HMC chains' means still moving after warmup")
    if (!isTRUE(d$drift < hmc_drift_max(d$dim))) {
      out <- c(out, sprintf(
        "the HMC chains' means drifting (%.1f standard errors, under %.1f asked)",
        d$drift, hmc_drift_max(d$dim)))
    }
    if (isTRUE(d$neck)) {
      out <- c(out, paste0("a neck at the search's first point (below), which the HMC chains ",
                           "may not enter"))
    }
    if (isTRUE(d$divergent > 0)) {
      out <- c(out, sprintf(paste0(
        "%d divergent HMC transitions (a funnel's neck or a region too stiff for the step ",
        "size, which the chains may not enter)"), as.integer(d$divergent)))
    }
  } else {
    if (!isTRUE(d$pareto_k < khat_reached(d$proposals))) {
      out <- c(out, sprintf("k-hat of its %d proposals %.4g (under %g asked)",
                            as.integer(d$proposals), d$pareto_k, khat_reached(d$proposals)))
    }
    if (!isTRUE(d$rhat < 1.01)) out <- c(out, sprintf("R-hat %.3f (under 1.01 asked)", d$rhat))
  }
  if (!isTRUE(d$ess_bulk >= 400)) {
    out <- c(out, sprintf("bulk ESS %.0f (400 asked)", d$ess_bulk))
  }
  out
}

# The points a target rejected (potential_rejections(), kept in the
# verdict), in a line.
rejections_text <- function(rej) {
  sprintf("The target rejected %.2g%% of the %.0f points evaluated (first: %s).",
          100 * rej$share, rej$points, rej$first)
}
