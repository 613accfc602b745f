# Flows run to their stationary law: where they start, how their steps are
# chosen, when they stop, and the verdict on whether they reached the target.

# The start of a flow to the stationary law: of a Laplace approximation
# with Student t tails (7 degrees of freedom: its weights stay bounded where
# the posterior's tails are heavier than a Gaussian's, which a Gaussian
# start, even widened 1.5 times, does not; an exact correction started
# from it gave sds 2.3% short on a Poisson-gamma posterior, against 0.5%
# from the t, over 12 seeds) and N(0, I) (the scale of parameters on an unconstrained
# scale), the one closer to the target in KL(start || pi), compared by
# their ELBO on 4096 draws (the prior of the target, where it has one, stands in for a
# Laplace approximation that failed). The
# Laplace approximation wins where the posterior is near-Gaussian; N(0, I)
# where its mode is degenerate (a funnel's, where the mass is not).
# `cost_max`: the most seconds a point for which conditional laws are built
# where the start passes, and laws along two coordinates at all
# (conditional_cost_max).
stationary_start <- function(potential, prior, beta, n = 4096L, cost_max = conditional_cost_max) {
  laplace <- tryCatch(modes_start(tempered(potential, beta), inflate = 1, df = 7),  # R/modes.R
                      error = function(e) e)
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
  if (length(cands) == 1L) {
    return(start_modes(with_search(adapt_start(cands[[1L]], potential, beta, n), laplace),
                       potential, beta))  # modes
  }
  # KL(q || pi) = log Z - ELBO(q): the candidate with the larger ELBO. (Not
  # the importance-sampling estimate of KL, whose log Z is biased low for
  # a q that misses mass, as a degenerate mode's does.)
  best <- elbo_choice(cands, potential, beta, n)
  # a start far from the target (its KL estimated above vi_kl_min): where
  # the Laplace approximation's mode lies outside the mass of the Gaussian
  # of largest ELBO (a funnel's neck), that Gaussian competes too (R/vi.R)
  sliced <- FALSE
  if (!is.null(cands$standard) && !is_mixture_start(cands$laplace) &&
      isTRUE(attr(best, "kl") > vi_kl_min)) {
    # where no conditional laws are built (D over conditional_max_dim),
    # first the Laplace approximation shaped along its slices (R/slices.R),
    # taken where it passes as a proposal: on GLMM1 (D = 237), whose t's
    # KL is 22, it passes (KL 0.06), and the variational start (9.6 s of
    # a 21-s start) is not needed. (Below that dimension, tried first, it
    # failed on surgical and seeds, whose conditional laws pass, at a cost
    # of 0.3-0.4 s a fit.)
    if (isTRUE(D > conditional_max_dim)) {
      qs <- slice_start(cands$laplace, potential, beta, n)
      if (!is.null(qs)) return(start_modes(with_search(qs, laplace), potential, beta))  # modes
      sliced <- TRUE
    }
    rs <- random_state()  # R/streams.R
    vi <- vi_best(cands, potential, beta)
    if (!is.null(vi) && mode_misleads(cands$laplace, vi)) {
      cands$vi <- vi
      best <- elbo_choice(cands, potential, beta, n)
    } else {
      restore_random_state(rs)  # not taken: as if it had not run
    }
    # with no mode and no conditional laws, those along the neck's
    # scales (R/neck.R)
    nq <- if (sliced) neck_start(laplace, cands[[best]], potential, beta, n)
    if (!is.null(nq)) {
      cands$neck <- nq
      best <- length(cands)
    }
  }
  q <- adapt_start(cands[[best]], potential, beta, n)
  # a start that, moved by importance sampling, does not pass as a
  # proposal, or passes with an ESS under conditional_ess (a cheap target
  # only: conditional_cost_max): the conditional
  # Laplace approximations along the coordinates where the target is least
  # Gaussian compete too (R/conditional.R), and one chosen by ELBO is taken
  # where it does better (passes, with the larger ESS, or has the smaller
  # k-hat); not taken, they leave the random stream as it was. A start
  # that passes well is left alone: tried on every start above a KL of 1,
  # they cost posteriors that passed anyway 0.5-4 s (Stan regressions) and
  # 20 s (an ODE model); chosen by ELBO alone, they took the place of two
  # ODE models' passing t's and trained 42 and 299 s
  passes <- isTRUE(attr(q, "pmc_score") < -10)
  cheap <- isTRUE(attr(q, "point_cost") < cost_max)
  weak <- passes && !isTRUE(attr(q, "pmc_score") < -10 - conditional_ess) && cheap
  if ((!passes || weak) && !is.null(cands$standard) && !is_mixture_start(q)) {
    rs <- random_state()  # R/streams.R
    taken <- FALSE
    # (a law along two coordinates takes some 10^5 evaluations at D = 65:
    # a cheap target only)
    b2 <- conditional_choice(cands, best, potential, beta, n,
                             pair = !passes && cheap)
    more <- attr(b2, "cands")
    if (!is.null(more)) {
      if (cheap) more[[b2]] <- skewed_choice(more[[b2]], potential, beta, n)
      qc <- adapt_start(more[[b2]], potential, beta, n)
      # a law along two coordinates, tried only where q did not pass and
      # chosen by its ELBO, is taken whether it passes or not: where
      # neither passes the score is a k-hat, which on gp_pois_regr ranked
      # the pair's law (ESS 47%, k-hat 0.60) below q (ESS 7%, k-hat 0.59)
      taken <- isTRUE(attr(qc, "pmc_score") < attr(q, "pmc_score")) ||
        length(qc$conditional) == 2L
      if (taken) q <- qc
    }
    if (!taken) restore_random_state(rs)
  }
  # a start that still does not pass: the Laplace approximation shaped
  # along its slices, where not tried above
  if (!sliced && !isTRUE(attr(q, "pmc_score") < -10)) {
    qs <- slice_start(cands$laplace, potential, beta, n)
    if (!is.null(qs)) q <- qs
  }
  start_modes(with_search(q, laplace), potential, beta)  # modes
}

# A start along the scales of a centred hierarchy's neck: where a target of
# D > conditional_max_dim (for which conditional_choice() builds no laws,
# having to find its axes at a cost of 2 D (D + 1) gradients a candidate)
# has no mode, the groups that neck_groups() (R/neck.R) finds at the search's first
# point name the axes instead: the conditional Laplace law along the scale
# of the largest group, or along the scales of the two largest (a law
# along two coordinates, R/conditional_pair.R, its lattice kept to within
# neck_drop of its top), about the centre of the start q chosen so far,
# its spacing from neck_steps(), R/neck.R; along one scale, with the
# corrections of the law along two (conditional_variants()). Taken where
# its ELBO is the larger; else NULL, the random stream as it was.
neck_start <- function(laplace, q, potential, beta, n) {
  if (is.null(laplace) || is.null(laplace$modes$first_not_mode) ||
      !is.numeric(q$mean) || is.null(q$cov)) {
    return(NULL)
  }
  g <- tryCatch(neck_groups(potential, laplace$mean), error = function(e) NULL)
  if (!length(g)) return(NULL)
  rs <- random_state()  # R/streams.R
  j <- vapply(g, `[[`, 1L, "scale")[seq_len(min(2L, length(g)))]
  law <- tryCatch({
    step <- neck_steps(potential, beta, q$mean, j, sqrt(diag(q$cov))[j] / 2)
    if (length(j) == 1L) {
      q1 <- conditional_laplace(potential, beta, q$mean, step, j, refine = FALSE)
      if (!is.null(q1)) conditional_variants(q1, potential, beta, n)  # R/conditional_pair.R
    }
    else conditional_pair(potential, beta, q$mean, step, j, drop = neck_drop)
  }, error = function(e) NULL)
  if (!is.null(law) && elbo_choice(list(q, law), potential, beta, n) == 2L) return(law)
  restore_random_state(rs)
  NULL
}

# The ESS below which a start that passes as a proposal still has the
# conditional Laplace laws compete (stationary_start()). The non-centred
# eight schools (a Stan program, vs_nuts.R seeds 13 and 113) passed with
# t's of ESS 59% and 53% (k-hat 0.48 and 0.32), and the exact draws'
# proposals then had a k-hat of 0.58-0.63: "draws", not reached. Its law
# along log tau, given which the rest is Gaussian, has an ESS of 99.7%.
# The battery's other passing starts have ESSs of 65-95%. Only where the
# target costs less than conditional_cost_max seconds a point: the laws
# take some 10^4 evaluations, and on stan.R's pharmacokinetic model (an
# ODE solve a point, about 1 ms), whose start passed with a low ESS, they
# cost 16 s (36 s a fit against NUTS's 25 s) and were not taken.
# (The cost is rounded to a power of 2, adapt_start(): the bound falls
# between 2^-14 and 2^-13, and a target passes it where it costs under
# 2^-13.5, 8.6e-5 s a point.)
conditional_ess <- 0.6
conditional_cost_max <- 1e-4

# The start q, or the mixture of the modes' Laplace approximations where
# the draws of its importance sampling (adapt_start(): q$seen, all its
# rounds' draws with their log-weights) reveal a mode that
# the search missed (modes_from_draws(), R/mode_weights.R): found before the flow,
# such a mode costs no flow trained without it (jko_fit() runs the flow
# again where the flow's own draws find one). On a 3-D mixture of N(0, I)
# and a mode of sd 0.3 and weight 0.2 at 4 sds, that first flow took 7.5 s
# of 7.7.
start_modes <- function(q, potential, beta) {
  s <- q$modes
  d <- q$seen
  q$seen <- NULL
  if (is.null(s) || is.null(d) || is_mixture_start(q)) return(q)
  potential <- tempered(potential, beta)
  s <- tryCatch(modes_from_draws(potential, d$x, d$lw, s), error = function(e) NULL)
  if (!isTRUE(s$new_from_draws > 0L)) return(q)
  m <- tryCatch(mixture_start(s, potential, 1, 7), error = function(e) NULL)
  # (a new mode whose Laplace weight keeps it out of the start leaves q as
  # it was, the mode in its search)
  if (!is_mixture_start(m)) {
    q$modes <- s
    return(q)
  }
  m
}

# The candidate start with the largest ELBO, estimated on draws of each in
# rounds of 256, 256, 512, ... up to n: the comparison stops once the best
# is ahead of every other by 4 standard errors of the difference (for a
# costly target, a Laplace approximation against N(0, I) is decided on 256
# draws each, not 4096), else after n draws each.
elbo_choice <- function(cands, potential, beta, n) {
  lws <- lapply(cands, function(q) numeric(0))
  m <- min(256L, n)
  repeat {
    for (k in seq_along(cands)) {
      x <- cands[[k]]$sample(m)
      lws[[k]] <- c(lws[[k]], -beta * potential_values(potential, x) - cands[[k]]$log_density(x))
    }
    est <- vapply(lws, function(lw) {
      inside <- is.finite(lw)
      if (!any(inside)) return(c(Inf, 0))
      # mass outside the support counts as the log of the mass inside
      c(-mean(lw[inside]) - log(mean(inside)),
        if (sum(inside) > 1L) stats::sd(lw[inside]) / sqrt(sum(inside)) else Inf)
    }, numeric(2))
    kl <- est[1L, ]
    kl[!is.finite(kl)] <- Inf
    best <- which.min(kl)
    used <- length(lws[[1L]])
    if (used >= n) break
    o <- setdiff(seq_along(kl), best)
    gap <- kl[o] - kl[best]
    if (is.finite(kl[best]) && all(!is.finite(kl[o]) | gap > 4 * sqrt(est[2L, best]^2 + est[2L, o]^2))) {
      break
    }
    m <- min(used, n - used)
  }
  # KL(q || pi) of the best, estimated on its own draws: log of the mean
  # weight less the mean log-weight; each candidate's estimate by its ELBO
  # (kls)
  structure(best, kl = kl_estimate(lws[[best]][is.finite(lws[[best]])]), kls = kl)
}

# The KL of the best start above which variational inference is tried
# (vi_start(), R/vi.R).
vi_kl_min <- 2.5

# The largest dimension for which conditional laws are built: choosing
# the axes takes 2 D (D + 1) evaluations of the gradient a candidate
# (Hessians by differences at 2 D points), and each Newton step on the
# grid D more, so about 10^5 evaluations at D = 90 (posteriordb's radon)
# and millions at D = 1000.
conditional_max_dim <- 100L

# The start chosen among cands (best, by elbo_choice()) or a conditional
# Laplace approximation (conditional_laplace(), R/conditional.R) along one
# of the coordinates where the target is least Gaussian about a
# candidate's centre (conditional_axes(): two for each candidate, the
# best's first, at most four in all, each built once from the centre
# that named it first), if one has the larger ELBO; the candidates then in
# attribute "cands". (The random stream it draws from is the caller's to
# put back where no law is taken: stationary_start().) On the battery's banana and Neal's funnel, whose
# flows stalled at KL 0.2 and 0.1 after 6-9 s, these are their exact
# (banana) and near-exact (funnel: KL 0.05) laws. The centres matter: on
# the centred eight schools the log scale is named about N(0, I)'s centre
# (its conditional law a proposal with ESS 71%), not about the
# variational Gaussian's, which sits in the bulk with sds too narrow to
# see the funnel. With `pair` (the start chosen did not pass as a
# proposal) a law along two coordinates competes too (pair_choice()).
conditional_choice <- function(cands, best, potential, beta, n, pair = FALSE) {
  if (isTRUE(cands[[best]]$dim > conditional_max_dim)) return(best)
  if (isTRUE(cands[[best]]$dim == 1L)) return(line_choice(cands, best, potential, beta, n))
  from <- list()
  for (q in cands[c(best, seq_along(cands)[-best])]) {
    if (!is.numeric(q$mean) || is.null(q$cov) || length(q$mean) < 2L) next
    axes <- tryCatch(conditional_axes(potential, q$mean, q$cov), error = function(e) integer(0))
    for (j in setdiff(axes, as.integer(names(from)))) {
      if (length(from) < 4L) from[[as.character(j)]] <- q
    }
  }
  more <- list()
  for (k in names(from)) {
    j <- as.integer(k)
    q <- from[[k]]
    cq <- tryCatch(conditional_laplace(potential, beta, q$mean, sqrt(q$cov[j, j]) / 2, j,
                                       refine = FALSE), error = function(e) NULL)
    if (!is.null(cq)) more[[paste0("conditional", j)]] <- cq
  }
  if (!length(more)) return(best)
  all <- c(cands, more)
  b2 <- elbo_choice(all, potential, beta, n)
  # (The corrections of the laws along two coordinates were judged here
  # too, conditional_variants(), on three centred radon models of D = 88-90
  # against non-centred NUTS references, seeds 1-3: every fit reached at
  # step 0 either way, the errors at the draws' noise both ways, the seconds
  # from 28% less to 55% more (the varying-intercept model, whose corrected
  # law along one coordinate left it building the law along two as well),
  # and the battery's fits 0.05-0.08 s slower for the judging: not taken.)
  if (b2 > length(cands)) all[[b2]] <- conditional_refined(all[[b2]], potential, beta)
  if (pair) {
    two <- pair_choice(all, b2, potential, beta, n)
    if (!is.null(two)) return(two)
  }
  if (b2 > length(cands)) return(structure(b2, cands = all))
  best
}

# conditional_choice() for a target of one coordinate: its own density on
# a grid about the centre of the best candidate (conditional_line(),
# R/line_law.R), where its ELBO is the larger.
line_choice <- function(cands, best, potential, beta, n) {
  q <- cands[[best]]
  if (!is.numeric(q$mean) || is.null(q$cov)) return(best)
  lq <- tryCatch(conditional_line(potential, beta, q$mean, sqrt(q$cov[1L, 1L]) / 2),
                 error = function(e) NULL)
  if (is.null(lq)) return(best)
  all <- c(cands, list(line = lq))
  b2 <- elbo_choice(all, potential, beta, n)
  if (b2 > length(cands)) return(structure(b2, cands = all))
  best
}

# A law along two coordinates (conditional_pair(), R/conditional_pair.R)
# where the start chosen so far, all[[b2]] (the candidates and the laws
# along one coordinate that conditional_choice() built), is still far
# from the target (its KL estimated above pair_kl_min): along the
# coordinate that best explains the log-weights of the law along one of
# largest ELBO (pair_axis()) and the one that best explains those of the
# law along it, the lattice's spacing half that law's sds along the two.
# Taken where its ELBO is the larger:
# returns the index of the pair law in the candidates, with them in
# attribute "cands"; NULL where it is not taken, with the random stream
# as it was.
pair_choice <- function(all, b2, potential, beta, n) {
  if (!isTRUE(attr(b2, "kl") > pair_kl_min)) return(NULL)
  one <- which(vapply(all, function(q) length(q$conditional) == 1L, NA))
  if (!length(one)) return(NULL)
  rs <- random_state()  # R/streams.R
  q <- all[[one[which.min(attr(b2, "kls")[one])]]]
  two <- tryCatch({
    # the coordinate that best explains the log-weights of that law, then
    # the one that best explains those of the law along it: on
    # gp_pois_regr the best law along one coordinate was along a latent
    # value (coordinate 7, KL 17.6), whose weights log rho explains best
    # (R^2 0.31), and given log rho the first latent value (0.79; log
    # alpha nearly as much): the pair's law has a KL of 0.10-0.12
    j2 <- pair_axis(q, potential, beta)$j
    q2 <- conditional_laplace(potential, beta, q$mean, sqrt(q$cov[j2, j2]) / 2, j2,
                              refine = FALSE)  # R/conditional.R
    if (!is.null(q2)) q <- q2
    j <- c(q$conditional, pair_axis(q, potential, beta)$j)
    if (length(j) == 2L) conditional_pair(potential, beta, q$mean, sqrt(diag(q$cov))[j] / 2, j)
  }, error = function(e) NULL)
  if (!is.null(two) && elbo_choice(list(all[[b2]], two), potential, beta, n) == 2L) {
    all$pair <- two
    return(structure(length(all), cands = all))
  }
  restore_random_state(rs)
  NULL
}

# The KL of the start chosen so far above which a law along two
# coordinates is tried (pair_choice()).
pair_kl_min <- 0.25

# A conditional Laplace law q moved along the coordinate it holds Gaussian
# that best explains its log-weights (pair_axis(), R/conditional_pair.R;
# skew_layer(), R/skew.R), where q's KL is above skew_kl_min; taken where
# its ELBO is the larger, else q with the random stream as it was. (Not
# only where that coordinate explains much of the log-weights' variance:
# where the weights are heavy-tailed, that share is noise, 0.10 on 1024
# draws of a law whose layer took its KL from 1.4 to 0.01.) A cheap target
# only, as the laws along two coordinates (stationary_start()). On rats'
# law along two coordinates (KL 0.11, the cubic in log sigma_alpha
# explaining 78%), it took the start's k-hat from 0.40-0.55 to 0.12-0.31
# (8192 draws, 4 seeds), and made its step-0 pass no longer a coin flip.
skewed_choice <- function(q, potential, beta, n) {
  if (is.null(q$conditional) || isTRUE(q$dim < 2L)) return(q)
  rs <- random_state()  # R/streams.R
  ax <- pair_axis(q, potential, beta)
  if (isTRUE(ax$kl > skew_kl_min)) {
    sq <- tryCatch(skew_layer(q, potential, beta, ax$j), error = function(e) NULL)
    if (!is.null(sq) && elbo_choice(list(q, sq), potential, beta, n) == 2L) return(sq)
  }
  restore_random_state(rs)
  q
}
skew_kl_min <- 0.05

# The slice law of a Laplace approximation `laplace` (a Gaussian or a t,
# its scale matrix then cov (df - 2) / df), the coordinates in their own
# order or reversed, whichever has the larger ELBO (on GLMM1, the reversed
# order: 0.06 from the target in KL against 0.27). NULL where neither is
# built, or where the slices would take more than slice_max_points
# evaluations of the target.
slice_choice <- function(laplace, potential, beta, n) {
  D <- laplace$dim
  if (!is.numeric(laplace$mean) || is.null(laplace$cov) || is_mixture_start(laplace) ||
      D < 2L || 2 * D * slice_grid > slice_max_points) {
    return(NULL)
  }
  S <- if (isTRUE(is.finite(laplace$df))) laplace$cov * (laplace$df - 2) / laplace$df
       else laplace$cov
  laws <- list()
  for (ord in list(seq_len(D), rev(seq_len(D)))) {
    q <- tryCatch(slice_law(laplace$mean, S, potential, beta, ord),
                  error = function(e) NULL)
    if (!is.null(q)) laws[[length(laws) + 1L]] <- q
  }
  if (!length(laws)) return(NULL)
  q <- laws[[if (length(laws) == 2L) elbo_choice(laws, potential, beta, n) else 1L]]
  q$label <- sprintf("Laplace approximation at the mode, shaped along its slices (%s order), dimension %d",
                     if (q$slices[1L] == 1L) "the coordinates'" else "reversed", D)
  q
}

# The most evaluations of the target the slices of slice_choice() take
# (two orders, 81 points each along each coordinate): D up to 404.
slice_max_points <- 2^16

# The slice law of the Laplace approximation `laplace` (slice_choice())
# moved by importance sampling as a start is (adapt_start(), R/pmc.R: it
# keeps its shape), where it passes as a proposal; else NULL, with the
# random stream as it was (R/streams.R); the law from R/slices.R.
slice_start <- function(laplace, potential, beta, n) {
  # (not where the search's first point is no mode, as at a centred
  # hierarchical model's neck: slices through a point that is no mode
  # describe no law near the target, and would only cost evaluations)
  if (is.null(laplace) || !is.null(laplace$modes$first_not_mode)) return(NULL)
  rs <- random_state()
  qs <- slice_choice(laplace, potential, beta, n)
  if (!is.null(qs)) qs <- adapt_start(qs, potential, beta, n)
  if (isTRUE(attr(qs, "pmc_score") < -10)) return(qs)
  restore_random_state(rs)
  NULL
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

# Why a stationary flow stops after its last step (or before its first):
# "reached" (its law is a good proposal for the exact correction: see
# target_reached()), "handover" (HMC chains from its draws are due:
# handover_due()), "stalled" (no decrease of KL beyond twice its standard
# error over the last three steps), or NA (go on).
stop_reason <- function(fit) {
  hist <- fit$history
  K <- nrow(hist) - 1L
  if (target_reached(hist[K + 1L, ], fit$settings)) return("reached")
  if (handover_due(fit)) return("handover")
  hist <- hist[-1L, , drop = FALSE]
  if (K >= 4L && all(is.finite(hist$kl[(K - 3L):K]))) {
    best_before <- min(hist$kl[seq_len(K - 3L)])
    recent <- hist[(K - 2L):K, ]
    if (all(recent$kl > best_before - 2 * recent$kl_se)) return("stalled")
  }
  NA_character_
}

# Is the rest of a flow's training projected to cost more evaluations of
# the target than HMC chains from its draws (R/hmc.R), which then take
# over? After a step K >= 1, the KL's rate r = KL_K / KL_{K-1} projects
# log(kl_pass / KL_K) / log(r) more steps to kl_pass (more than any where r
# >= 1), each of the last step's iterations times the batch (the
# network's own cost left out, which favours training); before the first
# step (a start that did not pass), r = 1/2 and half of `iters`. HMC's
# cost is hmc_chain_evaluations a chain. Counting evaluations rather than seconds,
# a seeded fit decides the same on a busy machine. Only for a fit whose
# draws HMC serves (hmc_applies(), R/hmc.R). (posteriordb's
# dogs_nonhierarchical starts at KL 0.96: 2.3 steps to 0.2 of 128 000
# evaluations each (250 iterations of 512), against 250 chains of 500;
# its flow had trained 5 steps of 17 s and stalled at 0.53.)
handover_due <- function(fit, kl_pass = 0.2) {
  hist <- fit$history
  K <- nrow(hist) - 1L
  if (!is.finite(hist$kl[K + 1L]) || hist$kl[K + 1L] <= kl_pass || !hmc_applies(fit)) {
    return(FALSE)
  }
  kl <- hist$kl[K + 1L]
  # before any step: a rate of 1/2, and half the iterations a step may use
  r <- if (K >= 1L) kl / hist$kl[K] else 0.5
  steps <- if (is.finite(r) && r < 1) log(kl_pass / kl) / log(r) else Inf
  iters <- if (K >= 1L) hist$iters[K + 1L] else fit$settings$iters / 2
  cost <- as.double(iters) * fit$settings$batch
  hmc <- as.double(hmc_chains(fit$settings$draws, fit$dim)) * hmc_chain_evaluations
  is.finite(cost) && steps * cost > hmc
}

# A sampler of many short HMC chains spends a few hundred gradients a
# chain: warmup of 20-60 iterations and 16-64 kept, of about 5 leapfrog
# steps (241 on the dogs model, 250 on a 6-D Gaussian); handover_due()
# counts 500.
hmc_chain_evaluations <- 500

# A second look at a stationary flow's law at its last step (the start
# at step 0), where its monitor samples failed as a proposal by their
# k-hat alone, at or above khat_reached() and below khat_threshold() (the
# weights are still usable for importance sampling): n more draws of the
# law (their own stream, R/streams.R), and the law judged again on all 2n.
# Where it passes, the fit's monitor and last row of history are those of
# the 2n draws; where it fails, both are left as they were, so the flow
# trains on as it would have. The k-hat of n = 4096 weights is noisy near
# the bound: rats' law along two coordinates (KL 0.11, ESS 49-80%) had
# k-hats of 0.33-0.57 on five draws of 4096, and where it missed, the flow
# trained 4 steps of 11 s each, its KL falling only to 0.05-0.07 while it
# waited for a k-hat under the bound. A second look costs n draws of the law
# and n evaluations of the target; a step, some 10^5 of each.
second_look <- function(fit, threads) {
  hist <- fit$history
  K <- nrow(hist) - 1L
  row <- hist[K + 1L, ]
  m <- fit$monitor
  n <- nrow(m$points)
  if (!isTRUE(fit$stationary) || inherits(fit$potential, "jko_energy") || is.null(m$phi) ||
      anyNA(m$log_density) || !isTRUE(row$pareto_k >= khat_reached(n)) ||
      !isTRUE(row$pareto_k < khat_threshold(n))) {
    return(fit)
  }
  # (does the row fail by its k-hat alone?)
  row$pareto_k <- 0
  if (!target_reached(row, fit$settings)) return(fit)
  law <- fit_law(fit, K)  # R/fit.R
  d <- with_stream(fit$seed, "second_look", k = K, law_draw(law, n, threads = threads))
  phi <- tryCatch(potential_values(fit$potential, d$x), error = function(e) NULL)
  if (length(phi) != n) return(fit)
  m2 <- list(points = rbind(m$points, d$x), log_density = c(m$log_density, d$log_density),
             phi = c(m$phi, phi))
  div <- target_divergence(m2$phi, m2$log_density, fit$beta, m2$points)
  if (!target_reached(div, utils::modifyList(fit$settings, list(monitor = 2L * n)))) {
    return(fit)
  }
  hist[K + 1L, names(div)] <- div
  hist$free_energy[K + 1L] <- step_free_energy(fit$potential, m2$phi, m2$log_density, fit$beta)
  fit$history <- hist
  fit$monitor <- m2
  fit
}

# The verdict of a stationary flow at its last step, with the diagnostics of
# its exact draws (fit$draws, R/correct.R) where it has them: reached when
# the flow stopped as a good proposal and the draws' chains mixed (R-hat
# below 1.01, a bulk ESS of at least 400, the Pareto k-hat of the
# proposals' weights below 1/2: khat_reached()).
target_verdict <- function(fit, schedule) {
  hist <- fit$history
  last <- hist[nrow(hist), ]
  why <- stop_reason(fit)
  # (steps the user gave ran out: HMC did not stop them)
  if (identical(why, "handover") && !is.null(schedule$steps)) why <- NA_character_
  if (is.na(why)) {
    why <- if (!is.null(schedule$steps)) "steps" else
           if (nrow(hist) - 1L >= fit$settings$max_steps) "max_steps" else "max_time"
  }
  v <- list(reached = identical(why, "reached"), reason = why, step = last$step,
            kl = last$kl, kl_se = last$kl_se, pareto_k = last$pareto_k, ess = last$ess,
            moment_gap = last$moment_gap, outside = last$outside, growth = last$growth,
            monitor = nrow(fit$monitor$points) %||% fit$settings$monitor,
            ess_min = fit$settings$ess_min,
            kl_tol = fit$settings$kl_tol, moment_tol = fit$settings$moment_tol,
            rejections = rejections_since(potential_rejections(fit$potential), fit$rejections0))
  d <- fit$draws
  if (!is.null(d)) {
    v$draws <- d$diagnostics
    ok <- !length(draws_failures(d$diagnostics))
    if (v$reached && !ok) v$reason <- "draws"
    v$reached <- v$reached && ok
  }
  v$modes <- fit$modes  # modes: mode_weights() of the fit (R/mode_weights.R)
  # not reached, from a search whose only point is no mode: the groups of a
  # centred hierarchy's neck there, named (R/neck.R)
  s <- attr(fit$modes, "search")
  if (!v$reached && !is.null(s$first_not_mode) && NROW(s$modes) == 1L) {
    g <- tryCatch(neck_groups(fit$potential, s$modes[1L, ]), error = function(e) NULL)
    if (length(g)) v$neck <- list(groups = g, text = neck_text(g, fit$potential$variables))
    # (HMC chains in one metric may never enter a neck, and agree while
    # they all miss it: butterfly's sds 11-17% off, no divergence)
    if (length(g) && identical(v$draws$method, "hmc")) v$draws$neck <- TRUE
  }
  v
}
