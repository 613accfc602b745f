# Independent flows side by side: several seeds of one target, checking
# each other, or one flow for each of many targets, as the elements of a
# future.apply::future_lapply() over the current future plan.

#' Several flows side by side, checked against each other
#'
#' Runs independent flows at once on the workers of the current `future`
#' plan (set by the user with [future::plan()]; one after the other when
#' none is set or future.apply is not installed): several flows of one
#' target from different seeds, which check each other, or one flow for
#' each target of a list (many data sets, many models).
#'
#' For several flows of one target the check across flows, printed with
#' each flow's verdict, is:
#' * the evidence: each flow's \eqn{\log Z} and standard error
#'   ([jko_evidence()]), their precision-weighted mean and the statistic
#'   \eqn{Q = \sum_i (\log Z_i - \overline{\log Z})^2 / se_i^2}, which is
#'   \eqn{\chi^2_{m-1}} when the m flows estimate the same \eqn{\log Z}
#'   within their standard errors (they agree when its p-value is above
#'   0.01);
#' * the draws: \eqn{\hat R} of each variable with each flow's posterior
#'   draws as a chain (the rank-normalised split \eqn{\hat R} of the
#'   posterior package; flows whose laws differ give values above 1.01).
#' Flows that each say they reached the target and agree on both are a
#' stronger check than one flow's own diagnostics: a mode that every flow
#' misses is the one failure they share.
#'
#' A target made by [target_parallel()] is refused under a plan of several
#' workers: its workers are this session's, and the flows are the unit to
#' spread.
#'
#' @param target A target (see [targets]), or a list of targets: one flow
#'   for each, with `seeds` recycled.
#' @param seeds The seeds of the flows (one flow each): whole numbers.
#'   Default `1:4` for one target, one seed per target for a list.
#' @param ... Passed to [jko_fit()] (`init`, `control`, `steps`, ...).
#' @param n Samples for each flow's evidence.
#' @return An object of class `"jko_flows"`: `fits` (the fits, in the order
#'   of `seeds` or of the targets), `table` (per flow: seed, steps, whether
#'   it reached the target, the KL estimate, log Z and its se, seconds),
#'   `check` (for one target: the log Z statistic and p-value, the
#'   \eqn{\hat R} of each variable; `NULL` for a list), `workers` and
#'   `seconds` (the wall time of all flows).
#' @seealso [target_parallel()] to split each batch of one flow instead.
#' @examples
#' \donttest{
#' tg <- target_logdensity(function(x) -rowSums(x^2) / 2, function(x) -x, dim = 2)
#' fl <- jko_flows(tg, seeds = 1:2, control = jko_control(hidden = c(16, 16), iters = 200))
#' fl     # log Z = log(2 pi) = 1.8379
#' }
#' @export
jko_flows <- function(target, seeds = NULL, ..., n = 4000) {
  many <- is.list(target) && !inherits(target, "jko_potential")
  targets <- if (many) target else list(target)
  if (!length(targets) || !all(vapply(targets, is_target, NA))) {
    abort("`target` must be a target (target_logdensity(), target_stan(), ...) or a list of targets, not %s.",
          describe(target))
  }
  if (is.null(seeds)) seeds <- if (many) seq_along(targets) else 1:4
  seeds <- check_counts(seeds, "seeds", min = 0)
  if (!many && length(seeds) < 2L) {
    abort("`seeds` must give at least 2 flows of one target, to check them against each other, not %d.",
          length(seeds))
  }
  n <- check_count(n, "n", min = 10)
  m <- if (many) max(length(targets), length(seeds)) else length(seeds)
  targets <- rep_len(targets, m)
  seeds <- rep_len(seeds, m)
  dots <- list(...)
  if (!is.null(dots$verbose)) abort("`verbose` is not an argument of jko_flows(): its flows run quietly.")
  home <- Sys.getpid()
  # the targets with the global variables their functions use: a worker's
  # global environment is its own
  shipped <- lapply(targets, ship_target)
  one <- function(i) one_flow(shipped[[i]], seeds[i], dots, n, home)
  use_future <- requireNamespace("future.apply", quietly = TRUE)
  if (use_future && future::nbrOfWorkers() > 1L &&
      any(vapply(targets, inherits, NA, "jko_target_parallel"))) {
    abort(paste0("`target` splits its batches across workers already (target_parallel()): ",
                 "give jko_flows() the target it was made from to run the flows side by side, ",
                 "or set future::plan(sequential) to run them in turn with its workers."))
  }
  t0 <- proc.time()[["elapsed"]]
  res <- if (use_future) {
    future.apply::future_lapply(seq_len(m), one, future.seed = TRUE,
                                future.packages = "jkoflow")
  } else lapply(seq_len(m), one)
  seconds <- proc.time()[["elapsed"]] - t0
  failed <- vapply(res, function(r) !is.null(r$error), NA)
  table <- data.frame(
    flow = seq_len(m), seed = seeds,
    steps = vapply(res, function(r) if (is.null(r$fit)) NA_integer_ else length(r$fit$theta), 1L),
    reached = vapply(res, function(r) isTRUE(r$fit$verdict$reached), NA),
    kl = vapply(res, function(r) r$fit$verdict$kl %||% NA_real_, 0),
    log_z = vapply(res, function(r) r$evidence$log_z %||% NA_real_, 0),
    se = vapply(res, function(r) r$evidence$se %||% NA_real_, 0),
    pareto_k = vapply(res, function(r) r$evidence$pareto_k %||% NA_real_, 0),
    seconds = vapply(res, function(r) r$seconds, 0))
  table$verdict <- vapply(res, function(r) {
    if (!is.null(r$error)) paste("failed:", r$error)
    else if (is.null(r$fit$verdict)) "no verdict (not a flow to the stationary law)"
    else verdict_text(r$fit$verdict)
  }, "")
  fits <- lapply(seq_len(m), function(i) {
    f <- res[[i]]$fit
    if (!is.null(f) && is.null(f$potential)) f$potential <- targets[[i]]
    f
  })
  check <- if (!many && sum(!failed) >= 2L) flows_check(fits[!failed], table[!failed, ])
  structure(list(fits = fits, table = table, check = check, many = many,
                 label = if (many) sprintf("%d targets", m) else targets[[1L]]$label,
                 workers = if (use_future) as.integer(future::nbrOfWorkers()) else 1L,
                 seconds = seconds),
            class = "jko_flows")
}

# One flow, on a worker or here: the fit, its evidence, its time; an error
# (a failed fit) as its message. A Stan target's model instance does not
# survive the trip to another process: it is made again there.
one_flow <- function(shipped, seed, dots, n, home) {
  away <- Sys.getpid() != home
  target <- if (away) unship_target(shipped) else shipped$target
  remade <- away && is.function(target$worker_setup)
  if (remade) target <- target$worker_setup()
  t0 <- proc.time()[["elapsed"]]
  set.seed(seed)
  out <- tryCatch(withCallingHandlers({
      fit <- do.call(jko_fit, c(list(target), dots, list(verbose = FALSE)))
      ev <- jko_evidence(fit, n)
      list(fit = fit, evidence = ev[c("log_z", "se", "pareto_k", "ess")])
    },
    # a flow that does not reach the target warns with its verdict, which
    # the table gives
    warning = function(w) invokeRestart("muffleWarning")),
    error = function(e) list(error = conditionMessage(e)))
  # the target made here is not sent back: the session has its own
  if (remade && !is.null(out$fit)) out$fit$potential <- NULL
  out$seconds <- proc.time()[["elapsed"]] - t0
  out
}

# The check across flows of one target: log Z within the standard errors,
# R-hat of the flows' draws.
flows_check <- function(fits, tab) {
  ok <- is.finite(tab$log_z) & is.finite(tab$se) & tab$se > 0
  z <- tab$log_z[ok]
  w <- 1 / tab$se[ok]^2
  zbar <- if (length(z)) sum(w * z) / sum(w) else NA_real_
  q <- if (length(z) >= 2L) sum(w * (z - zbar)^2) else NA_real_
  p <- if (length(z) >= 2L) stats::pchisq(q, length(z) - 1L, lower.tail = FALSE) else NA_real_
  draws <- lapply(fits, function(f) posterior_draws(f)$x)
  rhat <- NULL
  if (all(!vapply(draws, is.null, NA))) {
    k <- min(vapply(draws, nrow, 1L))
    x <- do.call(rbind, lapply(draws, function(d) d[seq_len(k), , drop = FALSE]))
    rhat <- draws_rhat(x, rep(seq_along(draws), each = k))
    names(rhat) <- colnames(x)
  }
  list(log_z = zbar, se = if (length(w)) 1 / sqrt(sum(w)) else NA_real_, q = q,
       df = length(z) - 1L, p = p, spread = if (length(z)) diff(range(z)) else NA_real_,
       rhat = rhat, reached = sum(tab$reached), flows = nrow(tab),
       heavy = any(!is.finite(tab$pareto_k) | tab$pareto_k > 0.7))
}

#' @export
print.jko_flows <- function(x, digits = 4, ...) {
  m <- nrow(x$table)
  cat(sprintf("%d independent flows of %s, side by side on %d worker%s: %.1f s\n", m, x$label,
              x$workers, if (x$workers == 1L) "" else "s", x$seconds))
  tab <- x$table
  show <- data.frame(flow = tab$flow, seed = tab$seed, steps = tab$steps,
                     reached = ifelse(tab$reached, "yes", "no"),
                     KL = signif(tab$kl, 3), log_Z = round(tab$log_z, digits),
                     se = signif(tab$se, 2), k_hat = round(tab$pareto_k, 2),
                     seconds = round(tab$seconds, 1))
  print(show, row.names = FALSE)
  ck <- x$check
  if (!is.null(ck)) {
    cat("Across the flows:\n")
    if (is.finite(ck$q)) {
      cat(strwrap(sprintf(
        "log Z: weighted mean %s (se %s), spread %s; Q = %.3g on %d df, p = %.3g: %s",
        format(ck$log_z, digits = digits + 3), format(ck$se, digits = 2),
        format(ck$spread, digits = 2), ck$q, ck$df, ck$p,
        if (isTRUE(ck$heavy)) paste("some flows' weights are too heavy-tailed (k-hat > 0.7)",
                                    "for their standard errors to mean anything.")
        else if (ck$p > 0.01) "the flows agree within their standard errors."
        else "the flows DISAGREE beyond their standard errors: some miss part of the target."),
        indent = 2, exdent = 4), sep = "\n")
    }
    if (!is.null(ck$rhat)) {
      worst <- which.max(ck$rhat)
      cat(strwrap(sprintf("R-hat of the flows' draws: largest %.4f (%s)%s",
                          ck$rhat[worst], names(ck$rhat)[worst],
                          if (all(ck$rhat < 1.01)) ", all below 1.01: the flows' laws agree."
                          else ": above 1.01, the flows' laws DIFFER."),
                  indent = 2, exdent = 4), sep = "\n")
    }
    agree <- isTRUE(ck$p > 0.01) && !ck$heavy && !is.null(ck$rhat) && all(ck$rhat < 1.01)
    cat(sprintf("  Verdicts: %d of %d flows reached the target%s\n", ck$reached, ck$flows,
                if (ck$reached == ck$flows && agree) "; the flows check each other: trust them."
                else "; do NOT trust a single flow until they all reach it and agree."))
  }
  bad <- which(!tab$reached)
  for (i in bad) cat(strwrap(sprintf("flow %d: %s", i, tab$verdict[i]), indent = 2, exdent = 4),
                     sep = "\n")
  invisible(x)
}
