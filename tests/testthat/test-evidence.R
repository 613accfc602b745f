# Conjugate Gaussian model in D = 10: theta ~ N(0, I), y_j | theta ~ N(theta, I),
# j = 1..m. Posterior N(S / (m + 1), I / (m + 1)) with S = sum_j y_j; the
# marginal likelihood from Bayes' rule at any theta:
# log p(y) = log p(y | theta) + log p(theta) - log p(theta | y).
conjugate <- function(D = 10, m = 5, seed = 11) {
  set.seed(seed)
  theta0 <- rnorm(D)
  y <- matrix(rnorm(m * D, theta0), m, D, byrow = TRUE)
  S <- colSums(y)
  v <- 1 / (m + 1)
  logd <- function(x) {
    ll <- 0
    for (j in seq_len(m)) ll <- ll - 0.5 * rowSums(sweep(x, 2L, y[j, ])^2)
    ll - 0.5 * rowSums(x^2) - (m + 1) * D / 2 * log(2 * pi)
  }
  grad <- function(x) sweep(-(m + 1) * x, 2L, S, "+")
  mu <- S * v
  logz <- logd(matrix(mu, 1L)) + D / 2 * log(2 * pi * v)
  list(target = target_logdensity(logd, grad, dim = D), mu = mu, v = v, logz = logz,
       D = D)
}

test_that("jko_evidence recovers the marginal likelihood of a conjugate model (D = 10)", {
  cj <- conjugate()
  set.seed(3)
  # the time-accurate flow at fixed steps (the default for a target, the
  # whitened flow run to its stationary law, is tested in test-stationary.R)
  fit <- jko_fit(cj$target, init_gaussian(rep(0, cj$D), 1), h = 0.5, steps = 5,
                 hidden = c(16, 16), batch = 256, iters = 200, verbose = FALSE,
                 stationary = FALSE)
  ev <- jko_evidence(fit, 10000)
  expect_s3_class(ev, "jko_evidence")
  expect_lt(abs(ev$log_z - cj$logz), 0.05)
  expect_gt(ev$ess, 1000)
  # the delta-method standard error agrees with the spread over replicates
  expect_lt(abs(ev$log_z - cj$logz), 0.01 + 5 * ev$se)

  # sample moments within sampling error of the exact posterior N(mu, v I):
  # a mean's se is sqrt(v / n); a variance's se about v sqrt(2 / n)
  n <- 8000
  s <- jko_sample(fit, n)
  z_mean <- (colMeans(s$x) - cj$mu) / sqrt(cj$v / n)
  expect_lt(max(abs(z_mean)), 4.5)
  C <- stats::cov(s$x)
  expect_lt(max(abs(diag(C) - cj$v)) / (cj$v * sqrt(2 / n)), 4.5)
  offd <- C[upper.tri(C)] / (cj$v / sqrt(n))
  expect_lt(max(abs(offd)), 5)

  # sampling-importance-resampling draws are from the posterior too
  r <- jko_sample(fit, n, resample = TRUE)
  expect_true(r$resampled)
  expect_gt(r$ess, 1000)
  z_r <- (colMeans(r$x) - cj$mu) / sqrt(cj$v / r$ess)
  expect_lt(max(abs(z_r)), 4.5)
})

test_that("jko_evidence gives zero weight where the potential is +Inf", {
  set.seed(4)
  fit <- jko_fit(potential_quadratic(diag(2)), init_gaussian(c(0, 0), 1), h = 0.5,
                 steps = 1, hidden = c(8, 8), batch = 128, iters = 30, verbose = FALSE)
  # the same Gaussian, truncated to x1 > 0: Z = 2 pi / 2
  fit$potential <- target_logdensity(function(x) ifelse(x[, 1] > 0, -rowSums(x^2) / 2, -Inf),
                                     grad = function(x) -x, dim = 2)
  ev <- jko_evidence(fit, 20000)
  expect_equal(ev$n_nonfinite / ev$n, 0.5, tolerance = 4 * 0.5 / sqrt(ev$n) / 0.5)
  expect_lt(abs(ev$log_z - log(pi)), 5 * ev$se + 0.02)
  expect_output(print(ev), "weight 0")
})

test_that("pareto_khat estimates the tail index of Pareto weights", {
  set.seed(5)
  S <- 40000
  M <- ceiling(min(0.2 * S, 3 * sqrt(S)))
  for (k in c(0.2, 0.8)) {
    # w = U^(-k) has a Pareto tail of index k; asymptotic sd of k-hat (1 + k) / sqrt(M)
    khat <- jkoflow:::pareto_khat(-k * log(runif(S)))
    expect_lt(abs(khat - k), 3.5 * (1 + k) / sqrt(M))
  }
  # light (Gaussian log-weight) tails: k-hat well below 0.5
  expect_lt(jkoflow:::pareto_khat(0.1 * rnorm(S)), 0.3)
})

test_that("print.jko_evidence says in words whether to trust the estimate", {
  ev <- structure(list(log_z = -1, se = 0.01, ess = 100, pareto_k = 0.9, n = 1000,
                       n_nonfinite = 0L, step = 3L), class = "jko_evidence")
  expect_output(print(ev), "do NOT trust")
  # the threshold min(1 - 1/log10(S), 0.7): 2/3 for 1000 weights, 0.41 for 50
  ev$pareto_k <- 0.6
  expect_output(print(ev), "reliable \\(k-hat < 0.67")
  ev$n <- 50
  expect_output(print(ev), "do NOT trust.*k-hat >= 0.41")
  ev$pareto_k <- 0.2
  expect_output(print(ev), "the estimate is reliable")
})

test_that("jko_evidence and resampling check their arguments", {
  set.seed(6)
  fit <- jko_fit(potential_quadratic(1), init_gaussian(0, 1), h = 0.5, steps = 1,
                 hidden = c(4, 4), batch = 64, iters = 5, verbose = FALSE)
  expect_error(jko_evidence(list()), "`fit` must be a fit")
  expect_error(jko_evidence(fit, n = 2), "`n` must be a whole number >= 10")
  expect_error(jko_sample(fit, 10, resample = NA), "`resample` must be TRUE or FALSE")
})
