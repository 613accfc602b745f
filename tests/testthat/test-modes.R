# Targets with several modes: the search for modes, the mixture start, the
# modes' weights from the exact densities, and a verdict that says what was
# searched.

# Two equal unit Gaussians at -3 and 3 in 1-D, unnormalised: Z = 2 sqrt(2 pi).
two_modes <- function(start = 3) {
  new_target(function(x) log(exp(-(x[, 1] - 3)^2 / 2) + exp(-(x[, 1] + 3)^2 / 2)),
             function(x) {
               a <- exp(-(x[, 1] - 3)^2 / 2); b <- exp(-(x[, 1] + 3)^2 / 2)
               matrix((-(x[, 1] - 3) * a - (x[, 1] + 3) * b) / (a + b))
             }, dim = 1, start = start)
}

test_that("the search finds both modes of two equal ones, with equal Laplace weights", {
  set.seed(1)
  s <- find_modes(two_modes())
  expect_s3_class(s, "jko_modes")
  expect_equal(nrow(s$modes), 2L)
  expect_equal(sort(s$modes[, 1]), c(-3, 3), tolerance = 1e-5)
  # each mode's Laplace evidence is that of a unit Gaussian: weights 1/2
  expect_equal(s$weights, c(0.5, 0.5), tolerance = 1e-6)
  expect_equal(s$log_z, rep(0.5 * log(2 * pi), 2), tolerance = 1e-6)
  expect_output(print(s), "found 2 modes")
})

test_that("a start at a point that is not a mode (a trough between two) is not a mode", {
  set.seed(2)
  # the target's start is the local minimum of the density at 0, where the
  # gradient vanishes and the Hessian of Phi is negative
  s <- find_modes(two_modes(start = 0))
  expect_equal(nrow(s$modes), 2L)
  expect_equal(sort(s$modes[, 1]), c(-3, 3), tolerance = 1e-5)
  expect_gte(s$failed, 1L)
  st <- jkoflow:::modes_start(two_modes(start = 0))
  expect_match(st$label, "mixture of the Laplace approximations")
})

test_that("a unimodal target costs one batch of starts and keeps the Laplace start", {
  set.seed(3)
  A <- crossprod(matrix(rnorm(100), 10)) + diag(10)
  g10 <- new_target(function(x) -0.5 * rowSums((x %*% A) * x), function(x) -x %*% A, dim = 10)
  s <- find_modes(g10)
  expect_equal(nrow(s$modes), 1L)
  expect_equal(s$starts, 33L)
  expect_equal(s$missing, 0)
  expect_equal(drop(s$modes), rep(0, 10), tolerance = 1e-6)
  st <- jkoflow:::modes_start(g10)
  expect_match(st$label, "^Laplace approximation")
  expect_equal(st$modes$starts, 33L)
})

test_that("init_mixture() draws and evaluates the mixture exactly", {
  set.seed(4)
  q <- init_mixture(c(-2, 1), list(0.25, 4), c(0.3, 0.7))
  x <- matrix(c(-3, 0, 2.5))
  expect_equal(q$log_density(x),
               log(0.3 * dnorm(x, -2, 0.5) + 0.7 * dnorm(x, 1, 2))[, 1], tolerance = 1e-12)
  y <- q$sample(40000)
  # the share of draws from the first component, near -2: binomial
  # (0.3 of 40000, sd 0.0023) plus the second's small mass there
  p_near <- 0.3 * (pnorm(-1, -2, 0.5) - pnorm(-3, -2, 0.5)) + 0.7 * (pnorm(-1, 1, 2) - pnorm(-3, 1, 2))
  expect_lt(abs(mean(y > -3 & y < -1) - p_near), 4 * sqrt(p_near * (1 - p_near) / 40000))
  expect_equal(q$mean, 0.3 * -2 + 0.7 * 1)
  expect_equal(drop(q$cov), 0.3 * 0.25 + 0.7 * 4 + 0.3 * 0.7 * 3^2)
  expect_error(init_mixture(c(-2, 1), list(1, 1, 1)), "one matrix or a list of 2")
  expect_error(init_mixture(c(-2, 1), 1, c(1, -1)), "non-negative")
  expect_error(init_mixture(c(-2, 1), matrix(c(1, 2, 2, 1), 2)), "must be a finite 1 x 1")
  expect_error(init_mixture(rbind(0, 0), list(-1, 1)), "positive definite")
})

test_that("mode weights from exact draws are the basins' masses, within their se", {
  set.seed(5)
  tg <- two_modes()
  s <- find_modes(tg)
  # exact draws of 0.5 N(-3, 1) + 0.5 N(3, 1) with their log-densities:
  # equal importance weights, so each mode's weight is a binomial share
  n <- 20000
  x <- matrix(rnorm(n) + sample(c(-3, 3), n, replace = TRUE))
  log_q <- log(0.5 * dnorm(x[, 1], -3) + 0.5 * dnorm(x[, 1], 3))
  m <- jkoflow:::weigh_modes(tg, x, log_q, s)
  expect_equal(sum(m$weight), 1)
  tol <- 4 * sqrt(0.25 / n)
  expect_lt(max(abs(m$weight - 0.5)), tol)
  expect_equal(m$se, rep(sqrt(0.25 / n), 2), tolerance = 0.02)
  expect_equal(attr(m, "log_z"), log(2 * sqrt(2 * pi)), tolerance = 1e-10)
  expect_equal(attr(m, "elsewhere"), 0)
  # log-weights known in part (the exact draws' proposals) give the same
  lw <- -potential_value(tg, x) - log_q
  part <- ifelse(seq_len(n) %% 3L == 0L, NA, lw)
  expect_equal(jkoflow:::weigh_modes(tg, x, log_q, s, lw = part), m)
  # the draws near 0 descend (responsibility near 1/2), the others are in
  # the basin of their nearest mode, as a descent of every draw has them
  expect_lt(attr(m, "settled"), 0.05 * n)
  d <- jkoflow:::descend(tg, x, s$precond, maxit = 100L)
  full <- max.col(-jkoflow:::mode_distances(d$x, s$modes, s$hessian), ties.method = "first")
  expect_identical(m$draws, tabulate(full, 2L))
  # the draws of a mode the search did not know are counted apart
  s1 <- s
  keep <- which(s$modes[, 1] > 0)
  s1$modes <- s$modes[keep, , drop = FALSE]
  s1$hessian <- s$hessian[keep]
  s1$weights <- 1
  m1 <- jkoflow:::weigh_modes(tg, x, log_q, s1)
  expect_lt(abs(attr(m1, "elsewhere") - 0.5), tol)
  expect_match(jkoflow:::modes_text(m1), "a mode was missed")
})

test_that("a fit of two equal modes started at one weighs both and does not claim the target", {
  set.seed(6)
  tg <- two_modes()
  fit <- jko_fit(tg, verbose = FALSE)
  expect_match(fit$init$label, "mixture of the Laplace approximations .* 2 modes")
  m <- fit$modes
  expect_equal(nrow(m), 2L)
  # weighed on 16384 draws, the exact draws' first proposals among them
  # (their weights known), which the fit does not keep
  expect_equal(attr(m, "n"), 16384)
  expect_null(fit$draws$proposals)
  # binomial tolerance on the importance ESS of the weights' draws
  tol <- 4 * sqrt(0.25 / attr(m, "ess"))
  expect_lt(max(abs(m$weight - 0.5)), tol)
  expect_lt(max(m$se), 1.5 * sqrt(0.25 / attr(m, "ess")))
  # log Z = log(2 sqrt(2 pi)) within 4 se (not off by log 2)
  expect_lt(abs(attr(m, "log_z") - log(2 * sqrt(2 * pi))), 4 * attr(m, "log_z_se"))
  txt <- jkoflow:::verdict_text(fit$verdict)
  expect_false(grepl("reached the target", txt))
  expect_match(txt, "[0-9]+ starts over .* found 2 modes")
  expect_match(txt, "weights from the flow's importance weights")
  expect_identical(mode_weights(fit, n = 1000)$mode, 1:2)
  # a continued fit weighs the modes of the same search again
  fit2 <- suppressWarnings(jko_continue(fit, 1, verbose = FALSE))
  for (f in c("modes", "weights", "hessian")) {
    expect_identical(attr(fit2$modes, "search")[[f]], attr(m, "search")[[f]])
  }
  expect_lt(max(abs(fit2$modes$weight - 0.5)), 4 * sqrt(0.25 / attr(fit2$modes, "ess")))
  expect_error(mode_weights(fit, modes = "a"), "must be NULL or a result of find_modes")
})

test_that("draws well inside one mode's ellipsoid skip the descent and land in its basin", {
  set.seed(11)
  # 0.5 N((0, 0), 0.1^2 I) + 0.5 N((1.5, 0), I): a narrow and a wide mode,
  # where the Mahalanobis distance alone puts draws of the narrow one's
  # basin in the wide one's
  logd <- function(x) {
    log(0.5 * exp(-rowSums(x^2) / 0.02) / (2 * pi * 0.01) +
          0.5 * exp(-((x[, 1] - 1.5)^2 + x[, 2]^2) / 2) / (2 * pi))
  }
  tg <- new_target(logd, dim = 2, start = c(0, 0))
  s <- find_modes(tg)
  expect_equal(nrow(s$modes), 2L)
  n <- 4000
  narrow <- stats::runif(n) < 0.5
  x <- matrix(stats::rnorm(2 * n), n) * ifelse(narrow, 0.1, 1)
  x[!narrow, 1] <- x[!narrow, 1] + 1.5
  log_q <- logd(x)
  m <- jkoflow:::weigh_modes(tg, x, log_q, s)
  # the draws that descended: those outside their mode's 99% ellipsoid
  # (1% of each mode's) and those of responsibility at most 0.99 (the
  # narrow mode's beyond 0.15 of its centre, 32% of it; the wide mode's
  # near the narrow one's centre)
  expect_gt(attr(m, "settled"), 0.1 * n)
  expect_lt(attr(m, "settled"), 0.25 * n)
  # the others are their own component's: of responsibility above 0.99,
  # at most 1% of them are not
  b <- jkoflow:::settle_basins(tg, x, is.finite(logd(x)), s)
  expect_identical(length(b$settled), as.integer(attr(m, "settled")))
  skip <- setdiff(seq_len(n), b$settled)
  comp <- ifelse(narrow, which.min(abs(s$modes[, 1])), which.max(s$modes[, 1]))
  expect_lte(sum(b$basin[skip] != comp[skip]), 0.01 * length(skip))
  # where a descent of every draw (their own basins' definition) agrees
  # with them, except behind the narrow mode: a descent from there crosses
  # its basin and stays
  d <- jkoflow:::descend(tg, x, s$precond, maxit = 100L)
  full <- max.col(-jkoflow:::mode_distances(d$x, s$modes, s$hessian), ties.method = "first")
  differ <- skip[full[skip] != b$basin[skip]]
  expect_true(all(x[differ, 1] < 0))
  # a mode whose Laplace weight underflows to 0: the draws nearest it
  # descend rather than go unassigned
  s0 <- s
  s0$weights <- c(1, 0)[rank(-s$weights)]
  b0 <- jkoflow:::settle_basins(tg, x, is.finite(logd(x)), s0)
  light <- which.min(s0$weights)
  expect_true(all(which(b$basin == light & !seq_len(n) %in% b$settled) %in% b0$settled))
  expect_false(anyNA(b0$basin))
  # equal weights, within the binomial error of the exact draws
  expect_lt(max(abs(m$weight - 0.5)), 4 * sqrt(0.25 / n))
  expect_equal(attr(m, "elsewhere"), 0)
})

test_that("unequal modes get their weights from the exact densities", {
  set.seed(7)
  # 0.25 N(-4, 0.5^2) + 0.75 N(3, 1): normalised, log Z = 0
  logd <- function(x) log(0.25 * dnorm(x[, 1], -4, 0.5) + 0.75 * dnorm(x[, 1], 3, 1))
  tg <- new_target(logd, dim = 1, start = 3)
  # the start (the mixture of the modes' Laplace approximations) is a law
  # with exact draws and densities: its importance weights correct the
  # Laplace weights, whatever they are
  st <- jkoflow:::modes_start(tg)
  expect_match(st$label, "2 modes")
  x <- st$sample(20000)
  m <- jkoflow:::weigh_modes(tg, x, st$log_density(x), st$modes)
  expect_equal(nrow(m), 2L)
  w <- m$weight[order(attr(m, "search")$modes[, 1])]
  tol <- 4 * sqrt(0.25 * 0.75 / attr(m, "ess"))
  expect_lt(abs(w[1] - 0.25), tol)
  expect_lt(abs(attr(m, "log_z")), 4 * attr(m, "log_z_se"))
})

test_that("the search needs a dimension and valid settings", {
  p <- potential_fn(function(x) rowSums(x^2) / 2, function(x) x)
  expect_error(find_modes(p), "must know its dimension")
  expect_error(find_modes(two_modes(), batch = 0), "batch")
  expect_error(find_modes(two_modes(), scale = -1), "scale")
})

test_that("init_mixture() with Student t components has their exact density", {
  set.seed(8)
  q <- init_mixture(c(-2, 1), list(0.25, 4), c(0.3, 0.7), df = 5)
  x <- matrix(c(-3, 0, 2.5))
  expect_equal(q$log_density(x),
               log(0.3 * dt((x + 2) / 0.5, 5) / 0.5 + 0.7 * dt((x - 1) / 2, 5) / 2)[, 1],
               tolerance = 1e-12)
  # draws: the mass below -1, a t's cdf (binomial tolerance)
  y <- q$sample(40000)
  p <- 0.3 * pt(2, 5) + 0.7 * pt(-1, 5)
  expect_lt(abs(mean(y < -1) - p), 4 * sqrt(p * (1 - p) / 40000))
  expect_equal(drop(q$cov), 0.3 * 0.25 * 5 / 3 + 0.7 * 4 * 5 / 3 + 0.3 * 0.7 * 9)
  expect_null(init_mixture(0, 1, df = 2)$cov)
  expect_error(init_mixture(0, 1, df = 0), "`df` must be a positive number")
})

test_that("the search's time limit is checked", {
  expect_error(find_modes(two_modes(), max_seconds = 0), "max_seconds")
})

test_that("init_mixture() refuses covariances that are not numbers or matrices, naming them", {
  # (found by the fuzz test: base R's errors from diag())
  expect_error(init_mixture(1e300, character(0)), "`covs\\[\\[1\\]\\]` must be a finite 1 x 1 matrix")
  expect_error(init_mixture(-1, function(...) 1), "`covs\\[\\[1\\]\\]` must be a finite 1 x 1 matrix")
  expect_error(init_mixture(rbind(c(0, 0)), c(1, 2, 3)), "or 2 variances\\), not")
})

test_that("the search reuses init_laplace()'s mode and Hessian and takes Hessians in one call", {
  set.seed(4)
  A <- crossprod(matrix(rnorm(36), 6)) + diag(6)
  calls <- 0L
  g6 <- new_target(function(x) -0.5 * rowSums((x %*% A) * x) - rowSums(x^4) / 50,
                   function(x) { calls <<- calls + 1L; -x %*% A - 4 * x^3 / 50 }, dim = 6,
                   start = rep(1, 6))
  first <- suppressWarnings(init_laplace(g6, inflate = 1))
  expect_true(is.matrix(first$hessian) && is.finite(first$value))
  # the batched central differences are the column-by-column ones
  H1 <- matrix(0, 6, 6)
  grad <- jkoflow:::point_objective(g6)$gradient
  for (d in 1:6) {
    e <- 1e-5 * max(1, abs(first$mode[d])) * (seq_len(6) == d)
    H1[, d] <- (grad(first$mode + e) - grad(first$mode - e)) / (2 * e[d])
  }
  expect_equal(first$hessian, (H1 + t(H1)) / 2, tolerance = 1e-12)
  calls <- 0L
  H <- jkoflow:::modes_hessian(g6, first$mode)
  expect_identical(calls, 1L)
  s <- jkoflow:::find_modes_from(g6, first)
  expect_equal(nrow(s$modes), 1L)
  expect_identical(s$modes[1, ], first$mode)
  expect_identical(s$hessian[[1]], first$hessian)
})

test_that("the quasi-Newton descent settles far starts that the fixed metric does not", {
  # a narrow curved valley (Rosenbrock's, scaled), its metric taken at the minimum
  f <- function(x) 100 * (x[, 2] - x[, 1]^2)^2 + (1 - x[, 1])^2
  gr <- function(x) cbind(-400 * x[, 1] * (x[, 2] - x[, 1]^2) - 2 * (1 - x[, 1]),
                          200 * (x[, 2] - x[, 1]^2))
  rb <- new_target(function(x) -f(x), function(x) -gr(x), dim = 2)
  P <- jkoflow:::abs_inverse(matrix(c(802, -400, -400, 200), 2))
  set.seed(6)
  x0 <- matrix(runif(32, -30, 30), 16)
  a <- jkoflow:::descend(rb, x0, P)
  b <- jkoflow:::descend_qn(rb, x0, P)
  expect_true(all(b$converged))
  expect_lt(sum(a$converged), 16)
  expect_equal(b$x, matrix(1, 16, 2), tolerance = 1e-2)
})

# 0.8 N(0, I) + 0.2 N((4, 0, 0), 0.3^2 I) in 3-D, normalised (log Z = 0): the
# narrow mode's basin is about 1/5000 of the search's box, and its 33 starts
# miss it
narrow_mixture <- function() {
  comp <- function(x, m, s) rowSums(dnorm(x, rep(m, each = nrow(x)), s, log = TRUE))
  logd <- function(x) {
    a <- log(0.8) + comp(x, c(0, 0, 0), 1)
    b <- log(0.2) + comp(x, c(4, 0, 0), 0.3)
    pmax(a, b) + log1p(exp(-abs(a - b)))
  }
  new_target(logd, dim = 3)
}

test_that("draws of the target show a mode that the search missed; a unimodal one's do not", {
  set.seed(3)
  tg <- narrow_mixture()
  s <- jkoflow:::find_modes(tg)
  expect_equal(nrow(s$modes), 1L)  # the search alone misses it
  # exact draws of the mixture, weight 1 each
  n <- 4000
  narrow <- stats::runif(n) < 0.2
  x <- matrix(stats::rnorm(3 * n), n) * ifelse(narrow, 0.3, 1)
  x[narrow, 1] <- x[narrow, 1] + 4
  s2 <- jkoflow:::modes_from_draws(tg, x, rep(0, n), s)
  expect_equal(s2$from_draws, 1L)
  expect_equal(s2$new_from_draws, 1L)
  expect_equal(nrow(s2$modes), 2L)
  # the mode, and the Laplace weights of the two (each component's own
  # mass, to within the other's density at the mode: 1e-4)
  far <- which.max(s2$modes[, 1])
  expect_lt(max(abs(s2$modes[far, ] - c(4, 0, 0))), 1e-3)
  expect_lt(abs(s2$weights[far] - 0.2), 1e-3)
  expect_match(jkoflow:::modes_search_text(s2), "1 mode .*; descents from \\d+ draws .* found 1 more")
  # draws of a unimodal target with heavy tails (Student t, 3 df): the far
  # ones descend back to the one mode, and nothing is added
  t3 <- new_target(function(x) -2 * log1p(rowSums(x^2) / 3), dim = 2)
  st <- jkoflow:::find_modes(t3)
  y <- matrix(stats::rt(2 * n, 3), n)
  st2 <- jkoflow:::modes_from_draws(t3, y, rep(0, n), st)
  expect_gt(st2$descents, 0L)
  expect_equal(st2$from_draws, 0L)
  expect_equal(nrow(st2$modes), 1L)
})

test_that("draws whose descents stop short of a mode add no mode", {
  # A search whose one "mode" is a needle (Hessian 1e20 I, as at a point
  # deep in a funnel's neck): its preconditioner makes the descents from
  # draws of N(0, I) look converged where they start. Only a stationary
  # point (Newton decrement g' H^-1 g below mode_newton_tol) is a mode:
  # N(0, I)'s own mode, where a descent gets there, and nothing else.
  set.seed(5)
  tg <- new_target(function(x) -rowSums(x^2) / 2, function(x) -x, dim = 2)
  s <- jkoflow:::find_modes(tg)
  s$modes <- matrix(c(50, 50), 1L)
  s$hessian <- list(diag(1e20, 2))
  s$precond <- diag(1e-20, 2)
  s$value <- 2500
  s$log_z <- jkoflow:::laplace_log_z(2500, log(1e40), 2L)
  x <- matrix(stats::rnorm(8000), 4000)
  s2 <- jkoflow:::modes_from_draws(tg, x, rep(0, 4000), s)
  expect_gt(s2$descents, 0L)
  added <- s2$modes[rowSums(abs(s2$modes - 50)) > 0, , drop = FALSE]
  expect_lte(nrow(added), 1L)
  if (nrow(added)) expect_lt(sqrt(sum(added^2)), 0.1)
  # the rule itself
  expect_true(jkoflow:::is_stationary(c(1e-3, 0), diag(2)))
  expect_false(jkoflow:::is_stationary(c(1, 0), diag(2)))
  expect_false(jkoflow:::is_stationary(c(1, 0), diag(0, 2)))  # singular: no Newton step
})

test_that("a fit finds the missed mode from its start's draws and weighs both", {
  set.seed(4)
  fit <- suppressWarnings(jko_fit(narrow_mixture(), verbose = FALSE))
  m <- fit$modes
  expect_equal(nrow(m), 2L)
  far <- which.max(attr(m, "search")$modes[, 1])
  expect_lt(abs(m$weight[far] - 0.2), 4 * m$se[far])
  expect_lt(abs(attr(m, "log_z")), 4 * attr(m, "log_z_se") + 0.01)
  expect_true(fit$verdict$reached)
  expect_match(jkoflow:::verdict_short(fit$verdict), "2 modes found \\(1 by \\d+ starts, 1 from draws\\)")
  x <- jko_sample(fit, 4000)$x
  # the narrow component's share of the draws: 0.2, binomial error
  expect_lt(abs(mean(x[, 1] > 2.5) - 0.2), 4 * sqrt(0.2 * 0.8 / 1000))
})

test_that("where only the flow's draws find it, the flow runs again from both modes", {
  # the start's check switched off: the flow's own draws find the mode
  ns <- asNamespace("jkoflow")
  orig <- get("start_modes", ns)
  utils::assignInNamespace("start_modes", function(q, potential, beta) {
    q$seen <- NULL
    q
  }, "jkoflow")
  on.exit(utils::assignInNamespace("start_modes", orig, "jkoflow"), add = TRUE)
  set.seed(4)
  fit <- suppressWarnings(jko_fit(narrow_mixture(), verbose = FALSE))
  expect_false(is.null(fit$first_flow))
  expect_gt(fit$first_flow$steps, 0L)
  expect_equal(nrow(fit$modes), 2L)
  expect_true(jkoflow:::is_mixture_start(fit$init$base))
  far <- which.max(attr(fit$modes, "search")$modes[, 1])
  expect_lt(abs(fit$modes$weight[far] - 0.2), 4 * fit$modes$se[far])
  expect_match(jkoflow:::cost_text(fit), "include [0-9.]+ s of a first flow \\(\\d+ steps?, [0-9,]+ iterations\\)")
})

test_that("a badly scaled regression has one mode, found to Newton's precision", {
  # earnings in dollars on height in inches (as posteriordb's earn_height):
  # intercept and slope correlated at about -0.999, scales 1e4 apart;
  # flat priors on (beta, log sigma), so the mode is the least-squares fit
  # with sigma^2 = RSS / (N - 1)
  set.seed(11)
  N <- 400
  h <- stats::rnorm(N, 66, 4)
  y <- -60000 + 1260 * h + stats::rnorm(N, 0, 19000)
  logd <- function(x) {
    r <- outer(rep(1, nrow(x)), y) - x[, 1] - outer(x[, 2], h)
    -N * x[, 3] - rowSums(r^2) / (2 * exp(2 * x[, 3])) + x[, 3]
  }
  grad <- function(x) {
    r <- outer(rep(1, nrow(x)), y) - x[, 1] - outer(x[, 2], h)
    s2 <- exp(2 * x[, 3])
    cbind(rowSums(r) / s2, drop(r %*% h) / s2, -N + rowSums(r^2) / s2 + 1)
  }
  tg <- new_target(logd, grad, dim = 3)
  ols <- stats::lm.fit(cbind(1, h), y)
  truth <- c(ols$coefficients, log(sqrt(sum(ols$residuals^2) / (N - 1))))
  # errors in posterior sds (from the Hessian at the mode): a Newton
  # decrement below 1e-6 leaves at most about 1e-3 of an sd
  sds <- sqrt(diag(solve(jkoflow:::modes_hessian(tg, truth))))
  la <- suppressWarnings(init_laplace(tg, inflate = 1))
  expect_identical(la$convergence, 0L)
  expect_lt(max(abs(la$mode - truth) / sds), 0.01)
  s <- find_modes(tg)
  expect_equal(nrow(s$modes), 1L)
  # Newton's method from BFGS's crawl: the same point
  nt <- jkoflow:::newton_polish(tg, c(0, 300, 9))
  expect_true(nt$converged)
  expect_lt(max(abs(nt$par - truth) / sds), 0.01)
})

test_that("no mode of weight enough to start from gives no mixture, not an error", {
  set.seed(4)
  s <- find_modes(two_modes())
  s$weights <- c(1e-6, NaN)
  expect_null(jkoflow:::mixture_start(s, two_modes()))
})

test_that("a second flow from the modes that fails keeps the first flow, with a warning", {
  set.seed(5)
  s <- find_modes(two_modes())
  s$new_from_draws <- 1L
  fit <- structure(list(stationary = TRUE, seed = 1L, potential = two_modes(),
                        history = data.frame(step = 0:2, iters = c(NA, 300, 200))),
                   class = "jko_fit")
  fit$modes <- structure(data.frame(weight = c(0.5, 0.5)), search = s)
  ran <- FALSE
  out <- NULL
  expect_warning(
    out <- jkoflow:::rerun_from_modes(fit, function(q) {
      ran <<- TRUE
      # the second flow is started from the mixture of the two modes
      expect_match(q$label, "mixture of the Laplace approximations")
      stop("the target failed")
    }, verbose = FALSE, t0 = proc.time()[["elapsed"]]),
    "the flow from the mixture of the modes failed \\(the target failed\\): the first flow is kept")
  expect_true(ran)
  expect_identical(out, fit)
  # where it runs, its fit comes back with the first flow's cost
  out <- jkoflow:::rerun_from_modes(fit, function(q) list(second = TRUE), verbose = FALSE,
                                    t0 = proc.time()[["elapsed"]])
  expect_true(out$second)
  expect_equal(out$first_flow$steps, 2L)
  expect_equal(out$first_flow$iterations, 500)
})

test_that("a flat-topped mode's too wide Laplace component is moved to the mode's own spread", {
  # equal unit Gaussians at (-0.93, 0), (0.93, 0) and (0, 8): the first two
  # (1.86 apart, under 2) make one flat-topped mode at the origin, whose
  # Laplace variance along x is 1 / (1 - 0.93^2) = 7.4 against the pair's
  # 1 + 0.93^2 = 1.86
  cen <- rbind(c(-0.93, 0), c(0.93, 0), c(0, 8))
  lp <- function(x) {
    L <- sapply(1:3, function(k) -0.5 * ((x[, 1] - cen[k, 1])^2 + (x[, 2] - cen[k, 2])^2))
    L <- matrix(L, nrow(x))
    m <- apply(L, 1L, max)
    m + log(rowSums(exp(L - m))) - log(3 * 2 * pi)
  }
  gr <- function(x) {
    L <- matrix(sapply(1:3, function(k) -0.5 * ((x[, 1] - cen[k, 1])^2 + (x[, 2] - cen[k, 2])^2)),
                nrow(x))
    r <- exp(L - apply(L, 1L, max))
    r <- r / rowSums(r)
    cbind(r %*% cen[, 1] - x[, 1], r %*% cen[, 2] - x[, 2])
  }
  tg <- new_target(lp, gr, dim = 2)
  set.seed(3)
  xp <- cen[sample.int(3, 8192, TRUE), ] + matrix(rnorm(2 * 8192), ncol = 2)
  symkl <- function(q) {
    x <- q$sample(8192)
    mean(q$log_density(x) - lp(x)) + mean(lp(xp) - q$log_density(xp))
  }
  s <- find_modes(tg)
  expect_equal(nrow(s$modes), 2L)
  laplace <- init_mixture(s$modes, lapply(s$hessian, solve), s$weights)
  q <- jkoflow:::mixture_start(s, tg, 1, 7)
  expect_match(q$label, "moved by importance sampling")
  # the flat mode's component has the pair's spread along x (1.86; the
  # components' scales, where q is a t, times df / (df - 2))
  k <- which.min(abs(q$means[, 2]))
  vf <- if (is.finite(q$df)) q$df / (q$df - 2) else 1
  expect_lt(abs(vf * q$covs[[k]][1, 1] - 1.86), 0.25)
  # the mixture of the Laplace approximations is far from the target, the
  # moved start near it: a Gaussian of the pair's moments is 0.014 from
  # it in SymKL, two thirds of the mass
  expect_gt(symkl(laplace), 0.3)
  expect_lt(symkl(q), 0.05)
  # and a fit from the defaults starts there and reaches its target
  fit <- jko_fit(tg, verbose = FALSE)
  expect_match(fit$init$label, "moved by importance sampling")
  expect_lt(symkl(list(sample = function(n) as.matrix(jko_sample(fit, n, correct = FALSE)$x),
                       log_density = function(x) jko_density(fit, x, log = TRUE)$log_density)),
            0.05)
})

test_that("a flow at beta != 1 starts from the modes of exp(-beta Phi), and weighs them", {
  # an asymmetric double well in x1 (modes near -1.56 and 1.43), N(0, 1 / beta) in x2. At
  # beta = 3 the start of the modes of exp(-Phi) took a variational start whose mode
  # partial-matched the mixture's `$modes`, and stopped with an error
  phi <- function(x) (x[, 1]^2 - 2.25)^2 / 2 + 0.6 * x[, 1] + x[, 2]^2 / 2
  grad <- function(x) cbind(2 * x[, 1] * (x[, 1]^2 - 2.25) + 0.6, x[, 2])
  beta <- 3
  set.seed(1)
  fit <- suppressWarnings(jko_fit(potential_fn(phi, grad, dim = 2), beta = beta,
                                  stationary = TRUE, verbose = FALSE))
  q <- fit$init$base
  m <- q$modes$modes
  expect_equal(nrow(m), 2L)
  # the Laplace approximation of exp(-beta Phi) at a mode m: covariance
  # diag(1 / (beta Phi''(m1)), 1 / beta), weight proportional to
  # exp(-beta Phi(m)) / sqrt(det(beta Hessian))
  d2 <- 2 * (3 * m[, 1]^2 - 2.25)
  expect_equal(q$modes$weights, {
    w <- exp(-beta * phi(m)) / sqrt(beta^2 * d2)
    w / sum(w)
  }, tolerance = 1e-6)
  expect_equal(vapply(q$covs, function(S) S[1, 1], 0), 1 / (beta * d2), tolerance = 1e-6)
  expect_equal(vapply(q$covs, function(S) S[2, 2], 0), rep(1 / beta, 2), tolerance = 1e-6)
  # the weight of x1 > 0 under exp(-beta Phi) (0.0053), from the exact draws, within 4 se
  f <- function(x1) exp(-beta * ((x1^2 - 2.25)^2 / 2 + 0.6 * x1))
  truth <- stats::integrate(f, 0, Inf)$value / stats::integrate(f, -Inf, Inf)$value
  w <- mode_weights(fit)
  right <- which(m[w$mode, 1] > 0)
  expect_lt(abs(w$weight[right] - truth), 4 * w$se[right])
  # the print and summary say which law the draws are of
  expect_output(print(fit), "R function \\(draws of exp\\(-3 Phi\\), beta = 3\\)")
  expect_output(print(summary(fit)), "law: +\\(draws of exp\\(-3 Phi\\), beta = 3\\)")
})

test_that("the search's first point is not called a mode where its gradient is not zero", {
  # N(0, I) in 2-D, the first point given at (3, 3) with the exact Hessian
  # I: the gradient there is (3, 3), of norm sqrt(18), and g' H^-1 g = 18,
  # far above first_mode_tol; the starts find the mode at the origin
  tg <- new_target(function(x) -rowSums(x^2) / 2, function(x) -x, dim = 2)
  first <- list(mode = c(3, 3), value = 9, hessian = diag(2), convergence = 0L)
  set.seed(4)
  s <- jkoflow:::find_modes_from(tg, first)
  expect_equal(nrow(s$modes), 2L)
  expect_lt(max(abs(s$modes[1, ])), 1e-4)  # the origin first (Laplace weight ~ 1)
  txt <- jkoflow:::modes_search_text(s)
  expect_match(txt, "found 1 mode \\(")
  expect_match(txt, paste0("its first point, init_laplace\\(\\)'s, is listed but is no mode: ",
                           "its gradient is not zero \\(norm 4\\.24, squared Newton decrement 18\\)"))
  v <- list(reached = TRUE, step = 0L, pareto_k = 0.1, draws = NULL,
            modes = structure(data.frame(weight = c(1, 0)), search = s))
  expect_match(jkoflow:::verdict_short(v), "; 1 mode found by \\d+ starts\\)\\.$")
  # a first point within a Newton step's half-unit of the mode (g' H^-1 g
  # = 0.5) is the mode
  first$mode <- c(0.5, 0.5)
  first$value <- 0.25
  s <- jkoflow:::find_modes_from(tg, first)
  expect_null(s$first_not_mode)
  expect_equal(nrow(s$modes), 1L)
  expect_match(jkoflow:::modes_search_text(s), "found 1 mode \\(")
})

test_that("a search that knows no mode stops polishing a batch whose polishes all fail", {
  # Phi = -sqrt(1 + x1^2) + x2^2 / 2 falls without bound along x1: no
  # mode. The first point, the origin, has the Hessian diag(-1, 1); every
  # start's descent runs off along x1 unconverged, and BFGS from there
  # finds no mode. After polish_give_up such polishes the rest of the
  # batch is counted failed unpolished (32 BFGS runs before).
  tg <- new_target(function(x) sqrt(1 + x[, 1]^2) - x[, 2]^2 / 2,
                   function(x) cbind(x[, 1] / sqrt(1 + x[, 1]^2), -x[, 2]), dim = 2)
  first <- list(mode = c(0, 0), value = -1, hessian = diag(c(-1, 1)), convergence = 0L)
  polishes <- 0L
  suppressMessages(trace("polish_mode", tracer = function() polishes <<- polishes + 1L,
                         print = FALSE, where = asNamespace("jkoflow")))
  on.exit(suppressMessages(untrace("polish_mode", where = asNamespace("jkoflow"))), add = TRUE)
  set.seed(2)
  s <- suppressWarnings(jkoflow:::find_modes_from(tg, first))
  expect_equal(polishes, jkoflow:::polish_give_up)
  expect_equal(s$failed, s$starts)
  expect_match(jkoflow:::modes_search_text(s),
               "found no mode .* is listed but is no mode: its Hessian is not positive definite")
})

test_that("init_laplace() does not stop where the value is finite and the gradient is not", {
  # as a Stan program whose spectral density underflows under a square
  # root: the log-density is finite everywhere, its gradient (from the
  # joint value and gradient) NaN where x1 > -0.5; the mode at (-1, 0).
  # From 0, BFGS would read a zero gradient and stop there.
  m <- c(-1, 0)
  logd <- function(x) -rowSums(sweep(x, 2L, m)^2) / 2
  grad <- function(x) {
    g <- -sweep(x, 2L, m)
    g[x[, 1] > -0.5, ] <- NaN
    g
  }
  tg <- new_target(logd, grad, logd_grad = function(x) list(value = logd(x), gradient = grad(x)),
                   dim = 2)
  set.seed(1)
  q <- init_laplace(tg)
  expect_equal(q$mode, m, tolerance = 1e-6)
  expect_equal(q$cov, diag(1.5^2, 2), tolerance = 1e-4)
})

test_that("polish_mode() stops BFGS after its budget and finishes by Newton from its best point", {
  # a correlated Gaussian from far: BFGS alone takes 55 evaluations of the
  # log-density. Stopped after `budget`, Newton's method goes on from the
  # best point seen (on a quadratic, one evaluation an iteration, at most
  # 3 iterations) and finds the mode.
  A <- matrix(c(4, 1.9, 0, 1.9, 1, 0.3, 0, 0.3, 2), 3)
  m <- c(1, -2, 3)
  calls <- 0L
  tg <- new_target(function(x) {
    calls <<- calls + nrow(x)
    -rowSums((sweep(x, 2L, m) %*% A) * sweep(x, 2L, m)) / 2
  }, function(x) -sweep(x, 2L, m) %*% A, dim = 3)
  p <- jkoflow:::polish_mode(tg, c(30, 40, -50))
  expect_gt(calls, 20L)
  for (budget in c(3L, 6L)) {
    calls <- 0L
    p <- jkoflow:::polish_mode(tg, c(30, 40, -50), budget = budget)
    # the start's own check, the budget, Newton's line searches
    expect_lte(calls, 1L + budget + 3L)
    expect_true(jkoflow:::is_polished_mode(p))
    # Newton's decrement below 1e-6: within 1e-3 of an sd of the mode
    expect_lt(max(abs(p$par - m) / sqrt(diag(solve(A)))), 1e-3)
  }
})

test_that("draws descend in the metric of their nearest mode", {
  # two modes whose correlations have opposite signs (as a mixture's with
  # its labels swapped): in the first mode's metric, draws 4 sds from the
  # second do not converge in 100 iterations; each in its own mode's
  # metric, all reach their mode in one Newton step
  S1 <- matrix(c(1, 0.995, 0.995, 1), 2)
  S2 <- matrix(c(1, -0.995, -0.995, 1), 2)
  m1 <- c(-20, 0)
  m2 <- c(20, 0)
  q <- function(x, m, S) rowSums((sweep(x, 2L, m) %*% solve(S)) * sweep(x, 2L, m))
  logd <- function(x) {
    a <- -q(x, m1, S1) / 2
    b <- -q(x, m2, S2) / 2
    pmax(a, b) + log1p(exp(-abs(a - b)))
  }
  grad <- function(x) {
    w <- 1 / (1 + exp(q(x, m1, S1) / 2 - q(x, m2, S2) / 2))
    -(w * sweep(x, 2L, m1) %*% solve(S1) + (1 - w) * sweep(x, 2L, m2) %*% solve(S2))
  }
  tg <- new_target(logd, grad, dim = 2)
  u <- 4 * rbind(diag(2), -diag(2))
  x <- rbind(sweep(u %*% chol(S1), 2L, m1, "+"), sweep(u %*% chol(S2), 2L, m2, "+"))
  group <- rep(1:2, each = 4L)
  one <- jkoflow:::descend(tg, x, S1, maxit = 100L)
  expect_true(all(one$converged[group == 1L]))
  expect_false(any(one$converged[group == 2L]))
  own <- jkoflow:::descend(tg, x, list(S1, S2), maxit = 100L, group = group)
  expect_true(all(own$converged))
  # at a mode: the squared Newton decrement below tol = 1e-4
  expect_lt(max(abs(own$x - rbind(m1, m2)[group, ])), 0.02)
})
