# Flows run to their stationary law: where they start, how their steps are
# chosen, when they stop, and the verdict on whether they reached the target.

# The start of a flow to the stationary law: of a widened Laplace
# approximation and N(0, I) (the scale of parameters on an unconstrained
# scale), the one closer to the target in KL(start || pi), compared by
# their ELBO on 4096 draws (the prior of the target, where it has one, stands in for a
# Laplace approximation that failed). The
# Laplace approximation wins where the posterior is near-Gaussian; N(0, I)
# where its mode is degenerate (a funnel's, where the mass is not).
stationary_start <- function(potential, prior, beta, n = 4096L) {
  laplace <- tryCatch(init_laplace(potential), error = function(e) e)
  D <- if (!is.na(potential$dim)) potential$dim else if (!inherits(laplace, "error")) laplace$dim
  cands <- list()
  if (!inherits(laplace, "error")) cands$laplace <- laplace
  if (!is.null(D)) {
    cands$standard <- init_gaussian(rep(0, D), 1)
    cands$standard$label <- sprintf("N(0, I), dimension %d (a better start than %s)", D,
                                    if (is.null(cands$laplace)) "none found"
                                    else "the Laplace approximation, by ELBO")
  }
  if (is.null(cands$laplace) && !is.null(prior)) cands$prior <- prior
  if (!length(cands)) {
    abort(paste0("`init` is needed: no start was given, and the Laplace ",
                 "approximation failed: %s"), conditionMessage(laplace), call = NULL)
  }
  if (length(cands) == 1L) return(cands[[1L]])
  # KL(q || pi) = log Z - ELBO(q): the candidate with the larger ELBO. (Not
  # the importance-sampling estimate of KL, whose log Z is biased low for
  # a q that misses mass, as a degenerate mode's does.)
  kl <- vapply(cands, function(q) {
    x <- q$sample(n)
    lw <- -beta * potential_values(potential, x) - q$log_density(x)
    inside <- is.finite(lw)
    if (!any(inside)) return(Inf)
    # mass outside the support counts as the log of the mass inside
    -mean(lw[inside]) - log(mean(inside))
  }, numeric(1))
  kl[!is.finite(kl)] <- Inf
  cands[[which.min(kl)]]
}

# The step of a stationary flow: h of the last step doubled while the KL
# estimate falls (to at most 8), halved when it rises (to at least 0.05);
# 0.5 for the first step.
next_h <- function(fit) {
  hist <- fit$history
  K <- nrow(hist) - 1L
  if (K == 0L) return(0.5)
  h <- hist$h[K + 1L]
  kl <- hist$kl
  if (is.na(kl[K + 1L]) || is.na(kl[K])) return(min(2 * h, 8))
  if (kl[K + 1L] < kl[K]) min(2 * h, 8) else max(h / 2, 0.05)
}

# Why a stationary flow stops after its last step: "reached" (KL below
# kl_tol, k-hat below 0.7, and the samples' means and sds within
# moment_tol of their importance-weighted values), "stalled" (no decrease
# of KL beyond twice its standard error over the last three steps), or NA
# (go on).
stop_reason <- function(fit) {
  hist <- fit$history[-1L, , drop = FALSE]
  K <- nrow(hist)
  if (!K) return(NA_character_)
  if (target_reached(hist[K, ], fit$settings)) return("reached")
  if (K >= 4L && all(is.finite(hist$kl[(K - 3L):K]))) {
    best_before <- min(hist$kl[seq_len(K - 3L)])
    recent <- hist[(K - 2L):K, ]
    if (all(recent$kl > best_before - 2 * recent$kl_se)) return("stalled")
  }
  NA_character_
}

target_reached <- function(h, settings) {
  isTRUE(h$kl < settings$kl_tol && h$pareto_k < 0.7 && h$moment_gap < settings$moment_tol &&
         h$outside < 1e-3)
}

# The verdict of a stationary flow at its last step.
target_verdict <- function(fit, schedule) {
  hist <- fit$history
  last <- hist[nrow(hist), ]
  why <- stop_reason(fit)
  reached <- identical(why, "reached")
  if (!reached && is.na(why)) {
    why <- if (!is.null(schedule$steps)) "steps" else
           if (nrow(hist) - 1L >= fit$settings$max_steps) "max_steps" else "max_time"
  }
  list(reached = reached, reason = why, step = last$step, kl = last$kl,
       kl_se = last$kl_se, pareto_k = last$pareto_k, ess = last$ess,
       moment_gap = last$moment_gap, outside = last$outside, kl_tol = fit$settings$kl_tol,
       moment_tol = fit$settings$moment_tol, rejections = potential_rejections(fit$potential))
}

# The verdict in words.
verdict_text <- function(v) {
  figs <- sprintf(paste0("KL(rho || pi) = %.3g (se %.2g), Pareto k-hat %.2f, importance ESS %.0f%%, ",
                         "moments within %.3g of their importance-weighted values%s"),
                  v$kl, v$kl_se, v$pareto_k, 100 * v$ess, v$moment_gap,
                  if (isTRUE(v$outside > 0))
                    sprintf("; %.2g%% of the samples outside the support of pi (KL over the rest)",
                            100 * v$outside) else "")
  if (v$reached) {
    return(sprintf("The flow reached the target at step %d: %s.", v$step, figs))
  }
  why <- switch(v$reason,
    stalled = "the KL estimate stopped decreasing",
    steps = "the given number of steps ran out",
    max_steps = "the step budget (`max_steps`) ran out",
    max_time = "the time budget (`max_time`) ran out",
    "it was stopped")
  sprintf(paste0("The flow did NOT reach the target (KL below %g, k-hat < 0.7, moments within %g): %s at step %d; %s. ",
                 "Its draws and densities are not yet those of the target: continue it ",
                 "(jko_continue()), or widen the network or the iterations (jko_control())."),
          v$kl_tol, v$moment_tol, why, v$step, figs)
}

# The points a target rejected (potential_rejections(), kept in the
# verdict), in a line.
rejections_text <- function(rej) {
  sprintf("The target rejected %.2g%% of the %.0f points evaluated (first: %s).",
          100 * rej$share, rej$points, rej$first)
}
