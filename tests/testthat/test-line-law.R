# The law of a target of one coordinate: its own density on a grid
# (conditional_line(), line_law(), R/line_law.R).

# posteriordb's Survey model on the logit of its rate: a binomial's count
# summed out up to 500 gives a flat top that ends at a wall
survey_logp <- function(x) {
  k <- c(16, 18, 22, 25, 27)
  ns <- 27:500
  cn <- vapply(ns, function(n) sum(lchoose(n, k)), 0)
  lt <- plogis(x, log.p = TRUE)
  l1 <- plogis(x, lower.tail = FALSE, log.p = TRUE)
  v <- outer(lt, rep(sum(k), length(ns))) + outer(l1, 5 * ns - sum(k)) + rep(cn, each = length(x))
  m <- apply(v, 1L, max)
  m + log(rowSums(exp(v - m))) + lt + l1
}

quadrature <- function(logp, lo, hi, n = 40001L) {
  g <- seq(lo, hi, length.out = n)
  lp <- logp(g)
  w <- exp(lp - max(lp))
  list(log_z = max(lp) + log(sum(w) * (g[2L] - g[1L])), mean = sum(w * g) / sum(w),
       sd = sqrt(sum(w * g^2) / sum(w) - (sum(w * g) / sum(w))^2))
}

test_that("the law on the line is a density, within its tolerance of the target", {
  # log of a Gamma(3, 1) variable: log density 3 x - e^x - log 2, mean
  # digamma(3), variance trigamma(3)
  tg <- new_target(function(x) 3 * x[, 1] - exp(x[, 1]), dim = 1)
  q <- jkoflow:::conditional_line(jkoflow:::full_data(tg), 1, 0, 0.5)
  expect_s3_class(q, "jko_init")
  expect_match(q$label, "own density on a grid")
  g <- seq(-25, 5, length.out = 300001)
  expect_equal(sum(exp(q$log_density(matrix(g)))) * (g[2L] - g[1L]), 1, tolerance = 1e-3)
  # the log-density is within tol = 0.05 of the target's line in every
  # cell, so KL(q || pi) is of order tol^2 / 2
  set.seed(1)
  x <- q$sample(1e5)
  expect_equal(dim(x), c(1e5, 1L))
  kl <- log(2) - mean(3 * x[, 1] - exp(x[, 1]) - q$log_density(x))
  expect_lt(kl, 0.05^2 / 2)
  expect_gt(kl, -0.05^2 / 2)  # (its Monte Carlo error is far smaller)
  expect_equal(q$mean, digamma(3), tolerance = 0.01 * sqrt(trigamma(3)))
  expect_equal(q$cov[1, 1], trigamma(3), tolerance = 0.01)
  # beyond its grid, nothing
  expect_identical(q$log_density(matrix(c(-1000, 1000))), c(-Inf, -Inf))
})

test_that("a wall, and the support's edge, end the grid", {
  # Survey's wall: the log-density falls by more than 20 within 1.5 of its top
  tg <- new_target(function(x) survey_logp(x[, 1]), dim = 1)
  q <- jkoflow:::conditional_line(jkoflow:::full_data(tg), 1, 0, 0.5)
  ref <- quadrature(survey_logp, -8, 6)
  expect_equal(q$mean, ref$mean, tolerance = 0.01 * ref$sd)
  expect_equal(sqrt(q$cov[1, 1]), ref$sd, tolerance = 0.01)
  # a half-line: exp(-x) on x > 0 (the potential infinite below 0)
  half <- new_target(function(x) ifelse(x[, 1] > 0, -x[, 1], -Inf), dim = 1)
  qh <- jkoflow:::conditional_line(jkoflow:::full_data(half), 1, 1, 0.5)
  expect_true(all(qh$sample(1000) > 0))
  expect_equal(qh$mean, 1, tolerance = 0.05)
  # no law from outside the support
  expect_null(jkoflow:::conditional_line(jkoflow:::full_data(half), 1, -1, 0.5))
  expect_null(jkoflow:::conditional_line(jkoflow:::full_data(half), 1, NaN, 0.5))
})

test_that("a fit of one coordinate whose start fails takes the law on the line", {
  # Survey's moved Student t fails as a proposal (its weights grow outwards
  # along its level sets), and the flow trained 3 steps; the law on the
  # line passes at step 0
  tg <- new_target(function(x) survey_logp(x[, 1]), dim = 1)
  set.seed(1)
  fit <- jko_fit(tg, verbose = FALSE)
  expect_match(fit$init$label, "own density on a grid")
  expect_equal(nrow(fit$history), 1L)
  expect_true(fit$verdict$reached)
  d <- as.matrix(fit)[, 1]
  ref <- quadrature(survey_logp, -8, 6)
  # exact draws: their mean within 4 se (a bulk ESS of 1000 at least)
  expect_lt(abs(mean(d) - ref$mean), 4 * ref$sd / sqrt(1000))
  expect_equal(sd(d), ref$sd, tolerance = 4 / sqrt(2 * 1000))
})
