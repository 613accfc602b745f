# Exact draws from an approximate flow. Every draw of a flow comes with its
# exact density q(x), so the flow is an independence proposal for its
# target pi = exp(-beta Phi): a Metropolis-Hastings chain that proposes a
# fresh draw x' of the flow at every iteration and accepts it with
# probability min(1, w(x') / w(x)), w = pi / q, leaves pi invariant, whatever
# the flow's error. Its draws are then the target's, not the flow's; how
# far the flow is from the target shows only in the acceptance rate and the
# effective sample size of the chains.

# The log-weights log w = -beta Phi - log q of proposals x (rows) with
# their flow log-densities log_q; NA (the potential undefined there) is
# -Inf, a weight of zero.
proposal_log_weights <- function(potential, beta, x, log_q) {
  lw <- importance_log_weights(potential, beta, x, log_q)
  lw[is.na(lw)] <- -Inf
  lw
}

# Independence Metropolis-Hastings on proposals with log-weights lw (in
# their order), in `chains` chains of equal length, each started at a point
# drawn from all the proposals by their weights (sampling-importance
# resampling: close to the target from the start, so no draw is thrown
# away). Returns list(index (n, the proposal kept at each iteration), chain
# (n), accepted (the share of moves accepted), start (the chains' starting
# proposals)).
imh_chains <- function(lw, chains) {
  n <- length(lw)
  if (!any(is.finite(lw))) {
    abort("every draw of the flow has a weight of zero: the target is zero (or undefined) at all of them.",
          call = NULL)
  }
  w <- exp(lw - max(lw))
  start <- sample.int(n, chains, replace = TRUE, prob = w)
  len <- rep(n %/% chains, chains) + (seq_len(chains) <= n %% chains)
  chain <- rep(seq_len(chains), len)
  u <- log(stats::runif(n))
  index <- integer(n)
  acc <- 0L
  i <- 0L
  for (j in seq_len(chains)) {
    cur <- start[j]
    for (t in seq_len(len[j])) {
      i <- i + 1L
      # a proposal of weight zero is never taken; the start has weight > 0
      if (u[i] < lw[i] - lw[cur]) {
        cur <- i
        acc <- acc + 1L
      }
      index[i] <- cur
    }
  }
  list(index = index, chain = chain, accepted = acc / n, start = start)
}

# The proposals each kept draw costs: an independence chain whose
# proposal has importance weights of relative ESS r keeps about 0.55 r of a
# draw's worth per proposal (measured on the posteriors of
# inst/bench/posteriors.R), so ceiling(1 / (0.4 r)) proposals a draw, at
# most 25, give draws worth at least as many independent ones.
thinning <- function(r) {
  if (!is.finite(r) || r <= 0) return(25L)
  as.integer(min(25, max(1, ceiling(1 / (0.4 * r)))))
}

# Exact draws of the target pi = exp(-beta Phi) from the law `law`: n * thin
# proposals (draws of the law with their exact log-densities), their
# log-weights against pi, and `chains` independence Metropolis-Hastings
# chains through them, each kept draw the last of `thin` proposals. Returns
# list(x (n x D, the flow's scale), log_density (the flow's, at each
# draw), chain, method = "imh", acceptance, log_weights (of all the
# proposals, for the evidence), thin).
correct_draws <- function(law, potential, beta, n, chains = 4L, thin = 1L, threads = 1L) {
  M <- n * thin
  d <- law_draw(law, M, threads = threads)
  lw <- proposal_log_weights(potential, beta, d$x, d$log_density)
  ch <- imh_chains(lw, chains)
  # the chains are in blocks of equal length, multiples of thin: keep the
  # last of every thin
  keep <- ch$index[seq(thin, M, by = thin)]
  list(x = d$x[keep, , drop = FALSE], log_density = d$log_density[keep],
       chain = ch$chain[seq(thin, M, by = thin)], method = "imh", acceptance = ch$accepted,
       log_weights = lw, thin = thin)
}

# The diagnostics of exact draws: their number, chains, acceptance, the
# smallest bulk and tail ESS and the largest R-hat over the coordinates
# (posterior's estimates, on the flow's scale), the proposals' number and
# the Pareto k-hat of their weights.
draws_diagnostics <- function(d) {
  x <- d$x
  if (is.null(colnames(x))) colnames(x) <- paste0("x", seq_len(ncol(x)))
  list(n = nrow(x), chains = length(unique(d$chain)), acceptance = d$acceptance,
       ess_bulk = min(draws_stat(x, d$chain, "ess_bulk")),
       ess_tail = min(draws_stat(x, d$chain, "ess_tail")),
       rhat = max(draws_stat(x, d$chain, "rhat")), proposals = length(d$log_weights),
       pareto_k = pareto_khat(d$log_weights))
}

# Draws in chains as an iterations x chains x variables array (the chains
# cut to the shortest).
draws_array <- function(x, chain) {
  ids <- sort(unique(chain))
  m <- min(tabulate(match(chain, ids)))
  arr <- array(NA_real_, c(m, length(ids), ncol(x)), dimnames = list(NULL, NULL, colnames(x)))
  for (j in seq_along(ids)) arr[, j, ] <- x[chain == ids[j], , drop = FALSE][seq_len(m), ]
  arr
}

# One of posterior's convergence statistics per variable, of draws in
# chains (NA without the posterior package).
draws_stat <- function(x, chain, stat) {
  if (!requireNamespace("posterior", quietly = TRUE)) {
    return(stats::setNames(rep(NA_real_, ncol(x)), colnames(x)))
  }
  f <- getExportedValue("posterior", stat)
  arr <- draws_array(x, chain)
  stats::setNames(vapply(seq_len(ncol(x)), function(j) f(arr[, , j]), 0), colnames(x))
}
