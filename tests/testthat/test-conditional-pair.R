# Conditional Laplace approximations along two coordinates
# (R/conditional_pair.R): for targets that are Gaussian given two
# coordinates and given neither alone.

# Normalised (log Z = 0): x1, x2 ~ N(0, 1), x3 given them ~ N(x1 x2, s^2),
# x4 given them ~ N((x1^2 + x2^2) / 2, s^2). Given x1 alone, x4 is not
# Gaussian in x2 (nor given x2 alone in x1).
pair_target <- function(s = 0.5) {
  new_target(function(x) {
    dnorm(x[, 1], log = TRUE) + dnorm(x[, 2], log = TRUE) +
      dnorm(x[, 3], x[, 1] * x[, 2], s, log = TRUE) +
      dnorm(x[, 4], (x[, 1]^2 + x[, 2]^2) / 2, s, log = TRUE)
  }, function(x) {
    r3 <- (x[, 3] - x[, 1] * x[, 2]) / s^2
    r4 <- (x[, 4] - (x[, 1]^2 + x[, 2]^2) / 2) / s^2
    cbind(-x[, 1] + r3 * x[, 2] + r4 * x[, 1], -x[, 2] + r3 * x[, 1] + r4 * x[, 2], -r3, -r4)
  }, dim = 4)
}
# log Z and the relative ESS of importance sampling from q
pair_is <- function(tg, q, n = 20000) {
  x <- q$sample(n)
  lw <- -jkoflow:::potential_values(tg, x) - q$log_density(x)
  m <- max(lw)
  w <- exp(lw - m)
  list(log_z = m + log(mean(w)), ess = sum(w)^2 / sum(w^2) / n, x = x)
}

test_that("the law of the pair target along x1 and x2 is the target", {
  tg <- pair_target()
  q <- jkoflow:::conditional_pair(tg, 1, rep(0, 4), c(0.5, 0.5), 1:2)
  expect_s3_class(q, "jko_init")
  expect_match(q$label, "along coordinates 1 and 2 \\([0-9]+ lattice points")
  set.seed(3)
  r <- pair_is(tg, q)
  # given x1 and x2 the rest is exactly Gaussian, its mean moving linearly
  # across a rectangle of side 0.5 in x1 x2 and quadratically (by at most
  # 0.0625 s^-1 = 0.125 of its sd, a corner 3 sds out) in x4: the law's
  # density sums to 1 (log Z) and its weights are near constant
  expect_lt(abs(r$log_z), 0.01)
  expect_gt(r$ess, 0.97)
  # its centre and covariance, by quadrature, are the target's: E x4 = 1,
  # Var x3 = E x1^2 x2^2 + s^2 = 1.25, Var x4 = Var(x1^2 + x2^2) / 4 + s^2
  # = 1.25, the rest 0 and 1; x4's mean, quadratic in x1 and x2, is held
  # linear across each rectangle, which leaves out E (u1^2 + u2^2) / 2 =
  # 0.5^2 / 12 = 0.021 (u uniform over it)
  expect_lt(max(abs(q$mean - c(0, 0, 0, 1))), 0.025)
  expect_lt(max(abs(q$cov - diag(c(1, 1, 1.25, 1.25)))), 0.03)
  # and so do its draws (sds to 1% over 20000 draws, 3 se: 0.015)
  expect_lt(max(abs(sqrt(diag(cov(r$x))) / sqrt(c(1, 1, 1.25, 1.25)) - 1)), 0.03)
  # outside the lattice its density is zero
  expect_identical(q$log_density(matrix(c(40, 0, 0, 0), 1)), -Inf)
})

# Normalised: x1, x2 ~ N(0, 1); k coordinates given x1 ~ N(0, e^(2 x1))
# (their precision scales as e^(-2 x1)), and k more N(0, 1) (not at all).
rates_target <- function(k = 10) {
  new_target(function(x) {
    dnorm(x[, 1], log = TRUE) + dnorm(x[, 2], log = TRUE) +
      rowSums(dnorm(x[, 2 + seq_len(k)], 0, exp(x[, 1]), log = TRUE)) +
      rowSums(dnorm(x[, 2 + k + seq_len(k)], log = TRUE))
  }, function(x) {
    a <- x[, 2 + seq_len(k), drop = FALSE]
    cbind(-x[, 1] - k + rowSums(a^2) * exp(-2 * x[, 1]), -x[, 2],
          -a * exp(-2 * x[, 1]), -x[, 2 + k + seq_len(k)])
  }, dim = 2 + 2 * k)
}

test_that("each coordinate's precision scales at its own rate across a rectangle", {
  tg <- rates_target()
  pts <- jkoflow:::pair_lattice(tg, 1, rep(0, 22), c(0.5, 0.5), 1:2)
  q <- jkoflow:::pair_law(pts, 1:2, 22, c(0.5, 0.5), 1, rates = TRUE)
  q1 <- jkoflow:::pair_law(pts, 1:2, 22, c(0.5, 0.5), 1, rates = FALSE)
  expect_match(q$label, "each coordinate's precision at its own rate")
  set.seed(7)
  r <- pair_is(tg, q)
  r1 <- pair_is(tg, q1)
  # given x1 and x2 the others are N(0, diag(e^(2 x1) (10), 1 (10))): held
  # at each lattice point's and scaled by one rate for all (the mean of
  # theirs, 1/2), each would be off by e^(+-u) in precision with u up to
  # 0.25, E u^2 = 1/48, a KL of 20 E u^2 / 4 = 0.10 (an ESS near 0.82);
  # each at its own rate, the law is the target but for x1's marginal
  # (exp of a line across a rectangle, not of the parabola)
  expect_lt(abs(r$log_z), 0.01)
  expect_gt(r$ess, 0.97)
  expect_lt(r1$ess, 0.9)
  # and conditional_pair(), judging both on its draws, takes it
  set.seed(7)
  expect_match(jkoflow:::conditional_pair(tg, 1, rep(0, 22), c(0.5, 0.5), 1:2)$label,
               "at its own rate")
  sds <- sqrt(diag(q$cov))
  # the quadrature's sds: e^(2 x1) has mean e^2 under N(0, 1), so the
  # scaled ones' sd is e = 2.718; the others' 1
  expect_lt(max(abs(sds[3:12] / exp(1) - 1)), 0.02)
  expect_lt(max(abs(sds[13:22] - 1)), 0.01)
})

# Normalised: x1, x2 ~ N(0, 1); w = log s with e^(-2 w) ~ Gamma(n / 2,
# rate S / 2) (a scale whose law is skewed); x4 given w ~ N(0, e^(2 w)).
shift_target <- function(n = 20, S = 20) {
  lz <- log(0.5) + lgamma(n / 2) + n / 2 * log(2 / S)
  new_target(function(x) {
    dnorm(x[, 1], log = TRUE) + dnorm(x[, 2], log = TRUE) -
      n * x[, 3] - S * exp(-2 * x[, 3]) / 2 - lz + dnorm(x[, 4], 0, exp(x[, 3]), log = TRUE)
  }, function(x) {
    cbind(-x[, 1], -x[, 2], -n + S * exp(-2 * x[, 3]) - 1 + x[, 4]^2 * exp(-2 * x[, 3]),
          -x[, 4] * exp(-2 * x[, 3]))
  }, dim = 4)
}

test_that("the others' Gaussian is centred at their mean, not their mode", {
  n <- 20
  S <- 20
  tg <- shift_target(n, S)
  pts <- jkoflow:::pair_lattice(tg, 1, rep(0, 4), c(0.5, 0.5), 1:2)
  sh <- jkoflow:::pair_shift(pts, tg, 1, 1:2, jkoflow:::grid_point(1:2, 4))
  q <- jkoflow:::pair_law(sh, 1:2, 4, c(0.5, 0.5), 1)
  expect_match(q$label, "about their corrected means")
  # E w = (log(S / 2) - digamma(n / 2)) / 2 = 0.0254 (w's marginal, x4
  # integrated out); the joint mode of (w, x4) is -log((n + 1) / S) / 2 =
  # -0.0244, 0.32 sd (1 / sqrt(2 (n + 1)) = 0.154) below it; Laplace's
  # first-order correction, -V d log det H / dw / 2 = 1 / (n + 1), leaves
  # 0.0022 (the next order, O(1 / n^2))
  ew <- (log(S / 2) - digamma(n / 2)) / 2
  expect_lt(abs(q$mean[3] - ew), 0.005)
  set.seed(8)
  r <- pair_is(tg, q)
  expect_lt(abs(r$log_z), 0.01)
  expect_lt(abs(mean(r$x[, 3]) - ew), 0.005 + 4 * 0.154 / sqrt(20000))
  # the target's w is skewed, which a Gaussian given x1, x2 cannot hold:
  # an ESS of 0.90 (at the mode, 0.79). (Its right tail is exponential,
  # e^(-n w): on 4096 draws the k-hat of either Gaussian is near 1/2 or
  # above, and conditional_pair() takes whichever passes.)
  expect_gt(r$ess, 0.85)
})

# Normalised: x1, x2 ~ N(0, 1), w as in shift_target(), and k coordinates
# given w and x1 ~ N(0, e^(2 c w)), c = 1 + tanh(x1) / 2: the others'
# skew, and so Laplace's error in x1's marginal, varies with x1.
lmarg_target <- function(n = 200, S = 200, k = 30) {
  lz <- log(0.5) + lgamma(n / 2) + n / 2 * log(2 / S)
  new_target(function(x) {
    c1 <- 1 + tanh(x[, 1]) / 2
    a <- x[, 3 + seq_len(k), drop = FALSE]
    dnorm(x[, 1], log = TRUE) + dnorm(x[, 2], log = TRUE) - n * x[, 3] -
      S * exp(-2 * x[, 3]) / 2 - lz +
      rowSums(-c1 * x[, 3] - log(2 * pi) / 2 - a^2 * exp(-2 * c1 * x[, 3]) / 2)
  }, function(x) {
    c1 <- 1 + tanh(x[, 1]) / 2
    dc <- (1 - tanh(x[, 1])^2) / 2
    a <- x[, 3 + seq_len(k), drop = FALSE]
    e <- exp(-2 * c1 * x[, 3])
    sa <- rowSums(a^2)
    cbind(-x[, 1] + dc * x[, 3] * (sa * e - k), -x[, 2],
          -n + S * exp(-2 * x[, 3]) - k * c1 + sa * e * c1, -a * e)
  }, dim = 3 + k)
}

test_that("the lattice's log marginal gains what the shift to the mean does", {
  tg <- lmarg_target()
  pts <- jkoflow:::pair_lattice(tg, 1, rep(0, 33), c(0.5, 0.5), 1:2)
  q <- jkoflow:::pair_law(jkoflow:::pair_shift(pts, tg, 1, 1:2, jkoflow:::grid_point(1:2, 33)),
                          1:2, 33, c(0.5, 0.5), 1)
  set.seed(9)
  r <- pair_is(tg, q)
  # x1 ~ N(0, 1) exactly. Given x1, the others' log det falls with w at
  # the rate v = 2 (k c + 1), c from 1/2 to 3/2 along x1, w's variance is
  # V = 1 / (2 (n + k c)), and Laplace's log marginal misses v^2 V / 8,
  # from 0.30 to 2.16 across that range: about the joint modes (before this
  # correction) the law's x1 has mean
  # -0.54 and sd 0.89; with it, -0.03 and 1.00 (20000 draws: se 0.007)
  expect_lt(abs(mean(r$x[, 1])), 0.1)
  expect_lt(abs(sd(r$x[, 1]) - 1), 0.03)
  expect_lt(abs(q$mean[1]), 0.1)
  expect_lt(abs(r$log_z), 0.05)
})

test_that("a law along one coordinate takes the same corrections", {
  # rates_target() along x1 alone (x2 among the others, at rate 0): one
  # rate for all, the mean of 10 at -1 and 11 at 0, is off by about 1/2
  # for each across cells of half-width 1/4, a KL near 21 E u^2 / 4 = 0.11
  tg <- rates_target()
  q <- jkoflow:::conditional_laplace(tg, 1, rep(0, 22), 0.5, 1L, refine = FALSE)
  q2 <- jkoflow:::conditional_law(q$pts, 1L, 22, 1, rates = TRUE)
  set.seed(10)
  r <- pair_is(tg, q)
  r2 <- pair_is(tg, q2)
  expect_lt(r$ess, 0.9)
  expect_gt(r2$ess, 0.97)
  expect_lt(abs(r2$log_z), 0.01)
  set.seed(10)
  expect_match(jkoflow:::conditional_variants(q, tg, 1)$label, "at its own rate")
  # the shift along w of shift_target(), x1 the law's coordinate: E w as
  # for the law along two (x2, independent, moves nothing)
  n <- 20
  S <- 20
  tg <- shift_target(n, S)
  q <- jkoflow:::conditional_laplace(tg, 1, rep(0, 4), 0.5, 1L, refine = FALSE)
  l <- vapply(q$pts, `[[`, 0, "l")
  sh <- jkoflow:::pair_shift(q$pts, tg, 1, 1L, jkoflow:::grid_point(1L, 4), p0 = q$pts[[which.max(l)]])
  qs <- jkoflow:::conditional_law(sh, 1L, 4, 1)
  expect_match(qs$label, "about their corrected means")
  ew <- (log(S / 2) - digamma(n / 2)) / 2
  expect_lt(abs(qs$mean[3] - ew), 0.005)
  expect_gt(abs(q$mean[3] - ew), 0.04)
})

test_that("the second coordinate is the one that explains the first law's weights", {
  tg <- pair_target()
  q1 <- jkoflow:::conditional_laplace(tg, 1, rep(0, 4), 0.5, 1L, refine = FALSE)
  set.seed(4)
  ax <- jkoflow:::pair_axis(q1, tg, 1)
  # given x1 the law is Gaussian in x2 where the target has x4's mean
  # quadratic in it: x2's cubic explains most of the log-weights
  expect_identical(ax$j, 2L)
  expect_gt(ax$r2, 0.5)
})

test_that("a fit from the defaults starts from the law along both and draws the target", {
  tg <- pair_target()
  set.seed(5)
  fit <- jko_fit(tg, verbose = FALSE)
  expect_match(fit$init$label, "along coordinates [12] and [12] ")
  expect_true(fit$verdict$reached)
  expect_identical(nrow(fit$history) - 1L, 0L)
  d <- fit$draws$x
  # 4000 exact draws: E x4 = 1 (sd 1.12) to 4 se of 4000 independent ones
  expect_lt(abs(mean(d[, 4]) - 1), 4 * sqrt(1.25 / 4000) * 1.5)
  expect_lt(abs(sd(d[, 4]) / sqrt(1.25) - 1), 0.06)
})

test_that("the Newton metric by Cholesky is the metric by eigenvalues where H is positive definite", {
  set.seed(6)
  A <- matrix(rnorm(25), 5)
  H <- crossprod(A) + diag(5)
  g <- rnorm(5)
  d <- rnorm(5)
  nt <- jkoflow:::newton_metric(H)
  expect_true(nt$positive)
  expect_equal(nt$solve(g), as.vector(solve(H, g)), tolerance = 1e-10)
  expect_equal(sum(nt$whiten(g)^2), sum(g * solve(H, g)), tolerance = 1e-10)
  expect_equal(sum(nt$whiten_step(d)^2), sum(d * (H %*% d)), tolerance = 1e-10)
  expect_equal(crossprod(nt$factor(2)), 2 * H, tolerance = 1e-10)
  # indefinite: the step by |eigenvalues| still descends (g'M^-1 g > 0)
  # and the point is no mode
  e <- eigen(H, symmetric = TRUE)
  Hi <- e$vectors %*% (c(-1, 1, 1, 1, 1) * e$values * t(e$vectors))
  ni <- jkoflow:::newton_metric(Hi)
  expect_false(ni$positive)
  M <- e$vectors %*% (e$values * t(e$vectors))
  expect_equal(ni$solve(g), as.vector(solve(M, g)), tolerance = 1e-8)
  expect_gt(sum(g * ni$solve(g)), 0)
})
