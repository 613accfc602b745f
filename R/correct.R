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

# The draws' worth an independence chain keeps per proposal, from the
# relative ESS r of its proposal's importance weights: about 0.4 r
# (0.55 r was measured on the posteriors of inst/bench/posteriors.R; on a
# 55-D logistic posterior at r = 0.39 the smallest bulk ESS of the 55
# coordinates was only 0.06 to 0.08 a proposal), and 1 for a proposal
# that is its target (r = 1: the chain's draws are independent), on the
# line from 0 at r = 0.6 to 1 at r = 1 where that is more.
imh_efficiency <- function(r) {
  if (!is.finite(r) || r <= 0) return(0)
  r <- min(r, 1)
  max(0.4 * r, 1 - 2.5 * (1 - r))
}

# The proposals each kept draw costs: ceiling(1 / imh_efficiency(r)), at
# least 1, at most 25 (ceiling(1 / (0.4 r)) up to r = 0.6; fewer above,
# and 1 at r = 1, where that rule thinned a proposal that is its target by
# 3).
thinning <- function(r) {
  e <- imh_efficiency(r)
  if (e <= 0) return(25L)
  as.integer(min(25, max(1, ceiling(1 / e - 1e-9))))
}

# The seconds the evaluation of `potential` took since proc.time() was t0,
# as the thinning of exact draws heeds them: the smaller of the wall and
# the CPU seconds (user and system, all threads, of this process and of
# the child processes it waited for, such as a system() call). On a busy
# machine the wall seconds grow and the CPU seconds do not; with threads it
# is the other way round. The wall seconds for a parallel target, whose
# work is in its workers. (A target that waits without computing, on a
# remote service say, counts as cheap: its draws take the full thinning.)
cost_seconds <- function(t0, potential) {
  t <- proc.time() - t0
  if (inherits(potential, "jko_target_parallel")) return(t[["elapsed"]])
  cpu <- sum(t[c("user.self", "sys.self", "user.child", "sys.child")], na.rm = TRUE)
  min(t[["elapsed"]], cpu)
}

# The cost a point of `seconds` over n points, rounded to a power of 2: a
# seeded fit of a costly target then takes the same number of proposals
# (draws_thinning()) whatever the machine's load, unless its cost lies
# within the timing noise of a rounding boundary (2^(k + 1/2)). NULL where
# unknown.
point_cost <- function(seconds, n) {
  if (is.null(seconds) || !is.finite(seconds) || seconds <= 0 || n < 1) return(NULL)
  2^round(log2(seconds / n))
}

# The thinning of exact draws whose target is costly: n draws, each the
# last of thinning(r) proposals, unless their evaluations would take more
# than `seconds` at `cost` seconds a point (the target's cost, measured on
# the evaluations the fit made already); then the fewest proposals that
# fit in `seconds` or are expected to keep the draws' bulk ESS at `ess_min`
# (1000: means to 0.03 sd, sds to about 2%), whichever is more, with
# thinning(r) as the most that correct_draws() may extend them to where
# the chains' own ESS or R-hat falls short. list(thin, full (thinning(r)),
# limited (TRUE where the start is below it), most (the most proposals a
# draw that fit in `seconds`, at most tail_thin_max: how far
# correct_draws() may go for the proposals' functional ESS)).
draws_thinning <- function(r, n, cost = NULL, seconds = 10, ess_min = 1000) {
  full <- thinning(r)
  known <- !is.null(cost) && is.finite(cost) && cost > 0
  most <- if (known) as.integer(min(tail_thin_max, max(1, floor(seconds / (n * cost))))) else
    tail_thin_max
  # (cheap: most >= full, as full <= 25)
  if (!known || n * full * cost <= seconds) {
    return(list(thin = full, full = full, limited = FALSE, most = most))
  }
  e <- imh_efficiency(r)
  floor_thin <- if (e > 0) ceiling(ess_min / (e * n) - 1e-9) else full
  thin <- as.integer(min(full, max(1, floor_thin, floor(seconds / (n * cost)))))
  list(thin = thin, full = full, limited = thin < full, most = max(thin, most))
}

# The relative effective sample size of self-normalised importance sampling
# for each coordinate's mean and for its second central moment (its sd):
# Var(f) / (N sum_i wn_i^2 (f_i - E f)^2), wn the normalised weights, the
# smallest over the coordinates and both (Owen, Monte Carlo theory, 9.3).
# The relative ESS of the weights themselves (what thinning() reads) is
# that of a function the weights do not correlate with; a sd is a mean of
# (x - m)^2, and where the proposal is thin in a tail its ESS is a fraction
# of that: 0.017 to 0.17 a proposal, against a relative ESS of the weights
# of 0.49 to 0.56, in three fits of a hierarchical model (eight schools).
functional_ess <- function(x, lw) {
  ok <- is.finite(lw)
  if (!any(ok)) return(0)
  w <- numeric(length(lw))
  w[ok] <- exp(lw[ok] - max(lw[ok]))
  w <- w / mean(w)
  x[!ok, ] <- 0
  e <- functional_ess_under(moment_functions(x, w), w^2)
  e[!is.finite(e)] <- 1  # a constant coordinate: nothing to estimate
  min(e)
}

# What functional_ess() reads of draws x under weights w (normalised to a
# mean of 1): each coordinate centred (xc), its variance v, and its
# centred square f2 = xc^2 - v with that one's variance v2.
moment_functions <- function(x, w) {
  xc <- sweep(x, 2L, colMeans(w * x))
  v <- colMeans(w * xc^2)
  f2 <- sweep(xc^2, 2L, v)
  list(xc = xc, v = v, f2 = f2, v2 = colMeans(w * f2^2))
}

# The relative functional ESS of each coordinate's mean (row 1) and sd
# (row 2), from moment_functions() and the squared weights w2 of the
# proposal they are judged for: for the draws' own proposal w^2, for
# another q1 (choose_tails(), R/pmc.R) w^2 q / q1.
functional_ess_under <- function(mf, w2) {
  rbind(mf$v / colMeans(w2 * mf$xc^2), mf$v2 / colMeans(w2 * mf$f2^2))
}

# The proposals each of n exact draws needs for its chains' draws to hold
# the sampling error of every coordinate's mean and sd near that of n
# independent draws. A kept draw's estimate has a variance of about
# Var f (1 / n + 1 / ESS_f - 1 / N) for N proposals that carry ESS_f = e N
# effective draws of f (the draws' own, and what the weights lose; for a
# proposal that is its target, e = 1, it is n's): within a factor
# 1 + 1 / tail_ess_factor of n's for N / n >= tail_ess_factor (1 / e - 1),
# e the smallest over the coordinates' means and sds (functional_ess()).
tail_thin <- function(e) {
  if (!is.finite(e) || e <= 0) return(Inf)
  max(1, ceiling(tail_ess_factor * (1 / e - 1) - 1e-9))
}

# Measured on the battery of inst/bench/posteriors.R (12 seeds each): with
# the weights' thinning alone the draws' sds scattered 3.0% and 2.4% from
# run to run on the Poisson-gamma and GARCH posteriors, and with this rule
# 2.2% and 1.5% (4000 independent draws: 1.7% and 1.6%, 400 repeats of
# inst/bench/iid_ceiling.R).
tail_ess_factor <- 2

# The most proposals a draw that rule may take (a proposal whose tail is so
# thin that it asks for more is left to the chains' own diagnostics).
tail_thin_max <- 32L

# Exact draws of the target pi = exp(-beta Phi) from the law `law`: n * thin
# proposals (draws of the law, a tenth of them from its start widened:
# proposal_draw()), their log-weights against pi, and `chains` independence
# Metropolis-Hastings chains through them, each kept draw the last of
# `thin` proposals. Where the first proposals carry fewer than
# tail_ess_factor * n effective draws for some coordinate's mean or sd
# (functional_ess()), more are drawn first, up to `most` a draw. With
# thin_max > thin (a costly target, draws_thinning()): while the draws'
# smallest bulk ESS is below ess_min or their largest R-hat is 1.01 or
# more, the thinning is raised to what the measured ESS asks for (at most
# thin_max), each chain continued through fresh proposals from where it
# stood. Returns list(x
# (n x D, the flow's scale), log_density (the flow's, at each draw), chain,
# method = "imh", acceptance, log_weights (of all the proposals, against
# their own density: for the evidence), thin, tail_ess (the first
# proposals' functional ESS, a proposal)); with keep_proposals > 0, also
# proposals: list(x, log_density (their own), log_weights) of the first
# min(keep_proposals, n thin) proposals (for the modes' weights of a fit,
# fit_modes(), without evaluating the target again).
correct_draws <- function(law, potential, beta, n, chains = 4L, thin = 1L, threads = 1L,
                          thin_max = thin, ess_min = 1000, most = tail_thin_max,
                          keep_proposals = 0L) {
  chains <- max(1L, min(as.integer(chains), n))
  len <- rep(n %/% chains, chains) + (seq_len(chains) <= n %% chains)
  d <- proposal_draw(law, n * thin, threads)
  x <- d$x
  ld <- d$flow_log_density
  lw <- proposal_log_weights(potential, beta, x, d$log_density)
  kept <- if (keep_proposals > 0L) {
    i <- seq_len(min(keep_proposals, length(lw)))
    list(x = x[i, , drop = FALSE], log_density = d$log_density[i], log_weights = lw[i])
  }
  start <- imh_starts(lw, chains)
  u <- log(stats::runif(length(lw)))
  # chain j's proposals, in its order: block j of the first round
  ends <- cumsum(len * thin)
  order <- lapply(seq_len(chains), function(j) seq.int(ends[j] - len[j] * thin + 1L, ends[j]))
  # more proposals, so that each chain's kept draw is the last of new_thin
  extend <- function(new_thin) {
    more <- n * (new_thin - thin)
    d2 <- proposal_draw(law, more, threads)
    lw2 <- proposal_log_weights(potential, beta, d2$x, d2$log_density)
    base <- length(lw)
    x <<- rbind(x, d2$x)
    ld <<- c(ld, d2$flow_log_density)
    lw <<- c(lw, lw2)
    u <<- c(u, log(stats::runif(more)))
    ends <- base + cumsum(len * (new_thin - thin))
    for (j in seq_len(chains)) {
      order[[j]] <<- c(order[[j]], seq.int(ends[j] - len[j] * (new_thin - thin) + 1L, ends[j]))
    }
    thin <<- new_thin
  }
  tail_ess <- functional_ess(x, lw)
  want <- tail_thin(tail_ess)
  if (want > thin && most > thin) extend(as.integer(min(want, most)))
  thin_max <- max(thin_max, thin)
  repeat {
    paths <- lapply(seq_len(chains), function(j) imh_path(lw, order[[j]], start[j], u))
    keep <- unlist(lapply(paths, function(p) p$index[seq(thin, length(p$index), by = thin)]))
    chain <- rep(seq_len(chains), len)
    if (thin >= thin_max) break
    dg <- draws_diagnostics(list(x = x[keep, , drop = FALSE], chain = chain, acceptance = NA,
                                 log_weights = numeric(0)), pareto = FALSE)
    if (isTRUE(dg$ess_bulk >= ess_min && dg$rhat < 1.01)) break
    # the thinning the measured ESS asks for (15% to spare), at least half
    # as much again where only R-hat fell short
    need <- if (isTRUE(dg$ess_bulk > 0)) ceiling(1.15 * thin * ess_min / dg$ess_bulk) else thin_max
    if (isTRUE(dg$ess_bulk >= ess_min)) need <- ceiling(1.5 * thin)
    extend(as.integer(min(max(thin + 1L, need), thin_max)))
  }
  acc <- sum(vapply(paths, function(p) p$accepted, 0)) / length(lw)
  list(x = x[keep, , drop = FALSE], log_density = ld[keep], chain = chain, method = "imh",
       acceptance = acc, log_weights = lw, thin = thin, tail_ess = tail_ess, proposals = kept)
}

# The law of the exact draws' proposals: the flow's law with its start rho_0
# replaced by the defensive mixture (1 - eps) rho_0 + eps rho_0^w, rho_0^w
# the start widened `widen` times about its centre (x -> c + widen (x - c)).
# A flow pushes a mixture of starts to the mixture of their pushes, so the
# proposals' densities stay exact (the start's mixture density over the
# maps' Jacobians), and the chains stay exact for pi whatever eps.
#
# Why: where the posterior's tail is longer than the proposal's (a skewed
# posterior whose start passed as a proposal, a Poisson rate's log near
# zero counts, a GARCH persistence near 1), a proposal lands there rarely
# and with a weight 90 to 200 times the median, and a chain that takes it
# stays there for hundreds of proposals: in 12 seeds, 2 of garch11's fits
# called "reached" had a sd 16% and 19% too wide (one draw 6 sds out,
# repeated 40 times) and one of the Poisson-gamma posterior's 11.5%. With
# 10% of the proposals from the start widened twice, the spread over 40
# repeats of importance-sampling sds on 20 000 proposals fell from 2.3% to
# 1.5% (garch11, its worst coordinate) and from 4.3% to 2.9% (Poisson-gamma),
# the largest normalised weight by 2 to 3 times, the relative ESS the same
# (0.60 and 0.59; 0.47 and 0.53). Near a Gaussian target the widened
# draws cost at most about eps of the ESS (the draws' bulk ESS on the
# battery's near-Gaussian posteriors moved by -9% to +2% in one run each).
# Left as it is: a law whose start has
# no centre or density, a mixture of modes (widened about the centre of all
# of them, its components would land between the modes), or a law with
# other nodes than maps.
defensive_law <- function(law, eps = 0.1, widen = 2) {
  b <- law$base
  if (!law_has_density(law) || !is.numeric(b$mean) || length(b$mean) != law$dim ||
      is_mixture_start(b) || any(law_types(law) != "map")) {
    return(law)
  }
  law$base <- defensive_start(b, eps, widen)
  law
}

# The start b as that mixture: its draws, a Binomial(n, eps) share of
# them (at random places) moved out about its centre, its log-density, and
# log_density_parts(x): list(start (b's own), mixture), from one evaluation
# of b's density at x and one at x pulled in about the centre.
defensive_start <- function(b, eps, widen) {
  c0 <- b$mean
  D <- length(c0)
  parts <- function(x) {
    l0 <- init_log_density(b, x)
    a <- log1p(-eps) + l0
    w <- log(eps) - D * log(widen) +
      init_log_density(b, sweep(sweep(x, 2L, c0) / widen, 2L, c0, "+"))
    m <- pmax(a, w)
    list(start = l0, mixture = ifelse(is.finite(m), m + log1p(exp(-abs(a - w))), m))
  }
  out <- b
  out$sample <- function(n) {
    x <- b$sample(n)
    k <- stats::rbinom(1L, n, eps)
    if (k > 0L) {
      i <- sort(sample.int(n, k))
      x[i, ] <- sweep(widen * sweep(x[i, , drop = FALSE], 2L, c0), 2L, c0, "+")
    }
    x
  }
  out$log_density <- function(x) parts(x)$mixture
  out$log_density_parts <- parts
  out
}

# m proposals for the exact draws from `law`: x, log_density (the density
# they were drawn from: the flow of defensive_law()'s mixture start, for
# their weights) and flow_log_density (the law's own density at x, what
# jko_density() gives: the mixture's over the same Jacobians, less log of
# the mixture's density over the start's at the point the maps pushed).
proposal_draw <- function(law, m, threads = 1L) {
  mix <- defensive_law(law)$base
  if (is.null(mix$log_density_parts)) {
    d <- law_draw(law, m, threads = threads)
    return(list(x = d$x, log_density = d$log_density, flow_log_density = d$log_density))
  }
  z <- mix$sample(m)
  lp <- mix$log_density_parts(z)
  l_mix <- lp$mixture
  shift <- lp$start - l_mix
  x <- z
  ld <- l_mix
  if (length(law$nodes)) {
    out <- push_maps(law$nodes, z, l_mix, threads)
    x <- out$x
    ld <- out$log_density
  }
  list(x = x, log_density = ld, flow_log_density = ld + shift)
}

# The starting proposals of `chains` chains, drawn from all the proposals
# by their weights (sampling-importance resampling: close to the target
# from the start, so no draw is thrown away).
imh_starts <- function(lw, chains) {
  if (!any(is.finite(lw))) {
    abort("every draw of the flow has a weight of zero: the target is zero (or undefined) at all of them.",
          call = NULL)
  }
  sample.int(length(lw), chains, replace = TRUE, prob = exp(lw - max(lw)))
}

# One independence Metropolis-Hastings chain from proposal `start` through
# the proposals `order` (indices into lw, with their log-uniforms u): the
# proposal kept at each step, and the moves accepted.
imh_path <- function(lw, order, start, u) {
  index <- integer(length(order))
  cur <- start
  acc <- 0L
  for (t in seq_along(order)) {
    i <- order[t]
    # a proposal of weight zero is never taken; the start has weight > 0
    if (u[i] < lw[i] - lw[cur]) {
      cur <- i
      acc <- acc + 1L
    }
    index[t] <- cur
  }
  list(index = index, accepted = acc)
}

# The diagnostics of exact draws: their number, chains, acceptance, the
# smallest bulk and tail ESS and the largest R-hat over the coordinates
# (posterior's estimates, on the flow's scale), the proposals' number and
# the Pareto k-hat of their weights.
draws_diagnostics <- function(d, pareto = TRUE) {
  x <- d$x
  if (is.null(colnames(x))) colnames(x) <- paste0("x", seq_len(ncol(x)))
  list(n = nrow(x), chains = length(unique(d$chain)), acceptance = d$acceptance,
       thin = d$thin %||% 1L,
       ess_bulk = min(draws_stat(x, d$chain, "ess_bulk")),
       ess_tail = if (pareto) min(draws_stat(x, d$chain, "ess_tail")) else NA_real_,
       rhat = max(draws_stat(x, d$chain, "rhat")), proposals = length(d$log_weights),
       pareto_k = if (pareto) pareto_khat(d$log_weights) else NA_real_)
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
  # (HMC's chains can be antithetic, their ESS above their number: posterior caps it, and
  # says so)
  capped <- function(w) {
    if (grepl("ESS has been capped", conditionMessage(w))) invokeRestart("muffleWarning")
  }
  withCallingHandlers(
    stats::setNames(vapply(seq_len(ncol(x)), function(j) f(arr[, , j]), 0), colnames(x)),
    warning = capped)
}
