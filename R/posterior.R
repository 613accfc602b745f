# The posterior draws of a fit run to its target: made once at the end of
# the fit, kept in it (fit$draws), with their diagnostics; what print(),
# summary(), coef(), vcov(), confint() and the draws' conversions read.

# Draws of a stationary fit's last law for its posterior: n draws of the
# flow (from the fit's own stream), on the flow's scale, with their exact
# log-densities. list(x, log_density, chain, method, acceptance).
make_posterior_draws <- function(fit, n = 4000L, threads = 1L) {
  d <- with_stream(fit$seed, "draws", law_draw(fit_law(fit), n, threads = threads))
  list(x = d$x, log_density = d$log_density, chain = rep(1L, n), method = "flow",
       acceptance = NA_real_)
}

# The posterior draws of a fit: x (n x D, on the model's constrained scale
# by default, columns under the target's names), log_density (of the flow's
# scale), chain (the chain of each draw), method ("flow": independent draws
# of the flow; more later), acceptance, and per variable `ess` (the
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
draws_array <- function(x, chain) {
  ids <- sort(unique(chain))
  m <- min(tabulate(match(chain, ids)))
  arr <- array(NA_real_, c(m, length(ids), ncol(x)), dimnames = list(NULL, NULL, colnames(x)))
  for (j in seq_along(ids)) arr[, j, ] <- x[chain == ids[j], , drop = FALSE][seq_len(m), ]
  arr
}

draws_ess <- function(x, chain) {
  if (!requireNamespace("posterior", quietly = TRUE)) {
    return(stats::setNames(rep(NA_real_, ncol(x)), colnames(x)))
  }
  arr <- draws_array(x, chain)
  vapply(seq_len(ncol(x)), function(j) posterior::ess_bulk(arr[, , j]), 0)
}

draws_rhat <- function(x, chain) {
  if (!requireNamespace("posterior", quietly = TRUE)) {
    return(stats::setNames(rep(NA_real_, ncol(x)), colnames(x)))
  }
  arr <- draws_array(x, chain)
  vapply(seq_len(ncol(x)), function(j) posterior::rhat(arr[, , j]), 0)
}
