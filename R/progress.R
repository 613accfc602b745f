# The progress of a flow, step by step: a line per finished step (verbose)
# and a progress bar through the progressr package, both with the steps
# done of at most how many and an estimate of the time left.

#' Progress of a fit
#'
#' [jko_fit()], [jko_continue()] and [jko_update()] report their progress
#' after each JKO step in two ways:
#'
#' * with `verbose = TRUE` (the default in an interactive session), a line
#'   per step: the step, of how many (for a flow to the stationary law, of
#'   at most `max_steps`: it may stop earlier, when it has reached the
#'   target), its loss, free energy and KL estimate, its iterations and
#'   seconds, and an estimate of the time left (for a flow to the
#'   stationary law, at most: by `max_steps` at the pace so far, and by
#'   `max_time`). In a script (`Rscript`), ask for it with `verbose = TRUE`.
#' * through the progressr package, when it is installed: a progress update
#'   per step with the same figures, which progressr's handlers show as a
#'   progress bar (or in any other form they choose) when the user asks for
#'   them, e.g. `progressr::handlers(global = TRUE)` once, or a fit wrapped
#'   in `progressr::with_progress()`; `progressr::handlers("cli")` picks the
#'   cli package's bars. Nothing is shown unless asked. progressr is off
#'   outside interactive sessions unless `verbose = TRUE` or
#'   `options(progressr.enable = TRUE)`: in a script, ask with either and
#'   a handler.
#'
#' `max_time` (see [jko_control()]) bounds the time of a flow to the
#' stationary law, within a step too: a step whose training reaches it
#' ends there, keeping its map, and the flow stops with the verdict saying
#' that the time budget ran out.
#'
#' @examplesIf requireNamespace("progressr", quietly = TRUE)
#' set.seed(1)
#' tg <- target_logdensity(function(x) -rowSums(x^2) / 2, function(x) -x, dim = 2)
#' progressr::with_progress(
#'   fit <- suppressWarnings(jko_fit(tg, hidden = c(8, 8), iters = 100, pool = 2^12,
#'                                   monitor = 2^11, max_steps = 2, verbose = TRUE)))
#' @name progress
NULL

# A function of (fit, k) to call after step k of a run of at most `budget`
# steps from step K0 (`fixed`: exactly budget, else at most, within
# max_time): it reports the step as asked. The progressor belongs to the
# caller's frame (progressr closes it when the caller returns).
step_progress <- function(K0, budget, fixed, max_time, verbose, envir = parent.frame()) {
  t0 <- proc.time()[["elapsed"]]
  bar <- if (requireNamespace("progressr", quietly = TRUE)) {
    progressr::progressor(steps = budget, envir = envir,
                          enable = verbose || isTRUE(getOption("progressr.enable",
                                                               interactive())))
  }
  function(fit, k) {
    done <- k - K0
    elapsed <- proc.time()[["elapsed"]] - t0
    left <- elapsed / done * (budget - done)
    if (!fixed) left <- min(left, max(0, max_time - elapsed))
    of <- sprintf("%s%d", if (fixed) "" else "at most ", K0 + budget)
    eta <- if (done >= budget) "" else
      sprintf(", %s%s left", if (fixed) "about " else "at most ", seconds_text(left))
    if (verbose) step_message(fit, k, of, eta)
    if (!is.null(bar)) bar(message = sprintf("step %d of %s%s", k, of, eta))
  }
}

# The line of a finished step: k of K (of at most max_steps where the flow
# chooses), its time, loss and free energy, the KL estimate of a
# stationary flow, its iterations and seconds, and the time left.
step_message <- function(fit, k, of, eta) {
  last <- fit$history[nrow(fit$history), ]
  message(sprintf("step %d of %s: t = %-6g loss %10.4f  free energy %10.4f%s  (%d it., %.1f s%s)",
                  k, of, last$time, last$loss, last$free_energy,
                  if (isTRUE(fit$stationary) && is.finite(last$kl))
                    sprintf("  KL %.3g", last$kl) else "",
                  last$iters, last$seconds, eta))
}

seconds_text <- function(s) {
  if (s < 90) sprintf("%.0f s", s) else if (s < 5400) sprintf("%.1f min", s / 60)
  else sprintf("%.1f h", s / 3600)
}
