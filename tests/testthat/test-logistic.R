# Bayesian logistic regression: the C log-density and gradient against an R
# reference and finite differences, the minibatch estimate, inputs, the prior
# and the posterior predictive.

logistic_data <- function(N = 60, p = 3, seed = 1) {
  set.seed(seed)
  x <- cbind(1, matrix(rnorm(N * (p - 1)), N))
  list(x = x, y = rbinom(N, 1, plogis(drop(x %*% c(-0.5, 1, -1, 0.5)[seq_len(p)]))))
}

# -log p(theta, y), written independently with R's densities
ref_phi <- function(th, x, y, prior) {
  p <- ncol(x)
  w <- th[seq_len(p)]
  eta <- drop(x %*% w)
  ll <- sum(dbinom(y, 1, plogis(eta), log = TRUE))
  lp <- if (prior == "gamma") {
    tau <- th[p + 1]
    sum(dnorm(w, 0, exp(-tau / 2), log = TRUE)) +
      dgamma(exp(tau), shape = 1, rate = 100, log = TRUE) + tau
  } else {
    sum(dnorm(w, log = TRUE))
  }
  -(ll + lp)
}

test_that("target_logistic's potential and gradient match R and finite differences", {
  d <- logistic_data()
  for (prior in c("gamma", "normal")) {
    tg <- target_logistic(d$x, d$y, prior)
    D <- tg$dim
    expect_equal(D, ncol(d$x) + (prior == "gamma"))
    th <- matrix(rnorm(5 * D), 5)
    if (prior == "gamma") th[, D] <- log(c(0.01, 0.1, 1, 3, 0.5))
    v <- potential_value(tg, th, grad = TRUE)
    ref <- apply(th, 1L, ref_phi, x = d$x, y = d$y, prior = prior)
    expect_lt(max(abs(v$value - ref)), 1e-10 * max(1, abs(ref)))
    eps <- 1e-5
    fd <- t(apply(th, 1L, function(t) vapply(seq_len(D), function(k) {
      e <- eps * (seq_len(D) == k)
      (ref_phi(t + e, d$x, d$y, prior) - ref_phi(t - e, d$x, d$y, prior)) / (2 * eps)
    }, numeric(1))))
    # central differences: error O(eps^2 |Phi'''|) plus rounding
    expect_lt(max(abs(v$gradient - fd)), 1e-5 * max(1, abs(fd)))
  }
})

test_that("the minibatch estimate of the potential and its gradient is unbiased", {
  d <- logistic_data(N = 80)
  full <- target_logistic(d$x, d$y)
  mb <- target_logistic(d$x, d$y, batch = 10)
  th <- matrix(c(0.3, -0.2, 0.4, log(0.5)), 1)
  exact <- potential_value(full, th, grad = TRUE)
  set.seed(7)
  R <- 3000
  est <- t(vapply(seq_len(R), function(i) {
    v <- potential_value(mb, th, grad = TRUE)
    c(v$value, v$gradient)
  }, numeric(5)))
  z <- (colMeans(est) - c(exact$value, exact$gradient)) / (apply(est, 2L, sd) / sqrt(R))
  # the log alpha component has no data term: exact at every batch
  expect_lt(max(abs(z[1:4])), 3)
  expect_equal(est[, 5], rep(exact$gradient[4], R), tolerance = 1e-10)
  # and a minibatch changes with the RNG, reproducibly
  set.seed(1); a <- potential_value(mb, th)
  set.seed(1); b <- potential_value(mb, th)
  expect_identical(a, b)
  # each estimate is N / b times the log-likelihood of the rows drawn
  # without replacement, plus the exact prior
  set.seed(3)
  v <- potential_value(mb, th)
  set.seed(3)
  rows <- minibatch_rows(seq_len(80), 10)
  eta <- drop(d$x[rows, ] %*% th[1, 1:3])
  ref <- -(80 / 10 * sum(dbinom(d$y[rows], 1, plogis(eta), log = TRUE)) +
             sum(dnorm(th[1, 1:3], 0, exp(-th[1, 4] / 2), log = TRUE)) +
             dgamma(exp(th[1, 4]), 1, rate = 100, log = TRUE) + th[1, 4])
  expect_equal(v, ref, tolerance = 1e-12)
})

test_that("target_logistic is a preset of the glm target", {
  d <- logistic_data()
  tg <- target_logistic(d$x, d$y, batch = 20)
  expect_s3_class(tg, "jko_target_glm")
  expect_identical(class(tg), c("jko_target_glm", "jko_target_logistic", "jko_target", "jko_potential"))
  expect_identical(tg$batch, 20L)
  # the same target from a formula without an intercept
  df <- data.frame(y = d$y, x1 = d$x[, 1], x2 = d$x[, 2], x3 = d$x[, 3])
  tgl <- target_glm(y ~ 0 + x1 + x2 + x3, df, binomial(), prior = prior_hierarchical(1, 100))
  th <- cbind(matrix(rnorm(12), 4), log(c(0.01, 0.3, 1, 4)))
  expect_equal(potential_value(target_logistic(d$x, d$y), th, grad = TRUE),
               potential_value(tgl, th, grad = TRUE), tolerance = 1e-13)
})

test_that("target_logistic rejects bad input, naming the argument", {
  d <- logistic_data()
  expect_error(target_logistic(d$x, d$y + 1), "`y` must have two classes")
  expect_error(target_logistic(d$x, c(0, 1, 2)[1 + (seq_len(60) %% 3)]), "`y` must have two classes")
  expect_error(target_logistic(d$x, factor(rep(c("a", "b", "c"), 20))),
               "`y` must have two classes, but the factor has 3 levels")
  expect_error(target_logistic(d$x, as.character(d$y)), "`y` must be 0/1 numbers")
  x <- d$x; x[3, 2] <- NA
  expect_error(target_logistic(x, d$y), "`x` must not contain NA")
  expect_error(target_logistic(d$x, d$y[-1]), "`y` has length 59 but `x` has 60 rows")
  expect_error(target_logistic(matrix(letters[1:6], 3), c(0, 1, 1)), "`x` must be a numeric matrix")
  expect_error(target_logistic(data.frame(a = 1:3, b = c("u", "v", "w")), c(0, 1, 1)),
               "`x` must be numeric; column `b` is not")
  expect_error(target_logistic(d$x, d$y, batch = 0), "`batch` must be a whole number")
  expect_error(target_logistic(d$x, d$y, prior = "cauchy"),
               "`prior` must be one of \"gamma\", \"normal\", not \"cauchy\"", fixed = TRUE)
  # a factor's second level is the event
  f <- factor(ifelse(d$y == 1, "yes", "no"))
  expect_identical(target_logistic(d$x, f)$y, as.double(d$y))
})

test_that("init_prior(log_alpha_min = -Inf) has the exact prior log-density and samples from it", {
  d <- logistic_data()
  tg <- target_logistic(d$x, d$y)
  pr <- init_prior(tg, log_alpha_min = -Inf)
  th <- cbind(matrix(rnorm(12), 4), log(c(0.01, 0.2, 1, 5)))
  ref <- apply(th, 1L, function(t) sum(dnorm(t[1:3], 0, exp(-t[4] / 2), log = TRUE)) +
                 dgamma(exp(t[4]), 1, rate = 100, log = TRUE) + t[4])
  expect_equal(pr$log_density(th), ref, tolerance = 1e-12)
  set.seed(8)
  n <- 20000
  s <- pr$sample(n)
  # log alpha, alpha ~ Exp(100): mean digamma(1) - log(100), variance pi^2 / 6
  expect_lt(abs(mean(s[, 4]) - (digamma(1) - log(100))) / sqrt(pi^2 / 6 / n), 4)
  # w * sqrt(alpha) ~ N(0, 1)
  z <- s[, 1:3] * sqrt(exp(s[, 4]))
  expect_lt(max(abs(colMeans(z))) / sqrt(1 / n), 4)
  expect_lt(max(abs(apply(z, 2L, var) - 1)) / sqrt(2 / n), 4)
  expect_equal(init_prior(target_logistic(d$x, d$y, "normal"))$dim, 3L)
  expect_error(init_prior(potential_quadratic(1)), "`potential` must be a target_logistic")
})

test_that("the default prior start is the prior cut at log alpha >= -8, renormalised", {
  d <- logistic_data()
  tg <- target_logistic(d$x, d$y)
  full <- init_prior(tg, log_alpha_min = -Inf)
  cut <- tg$init
  expect_equal(full$mass, 1)
  # alpha ~ Exp(100): P(alpha >= e^-8) = exp(-100 e^-8)
  expect_equal(cut$mass, exp(-100 * exp(-8)), tolerance = 1e-12)
  expect_match(cut$label, "truncated to log alpha >= -8")
  th <- cbind(matrix(rnorm(12), 4), c(-9, -8.5, -7.9, -2))
  ld <- cut$log_density(th)
  expect_identical(ld[1:2], c(-Inf, -Inf))
  expect_equal(ld[3:4], full$log_density(th[3:4, ]) - log(cut$mass), tolerance = 1e-12)
  set.seed(10)
  n <- 20000
  s <- cut$sample(n)
  expect_gte(min(s[, 4]), -8)
  # by memorylessness alpha - e^-8 ~ Exp(100): mean e^-8 + 1/100, sd 1/100
  expect_lt(abs(mean(exp(s[, 4])) - (exp(-8) + 0.01)) / (0.01 / sqrt(n)), 4)
  z <- s[, 1:3] * sqrt(exp(s[, 4]))
  expect_lt(max(abs(apply(z, 2L, var) - 1)) / sqrt(2 / n), 4)
  for (bad in list(NA, "a", Inf, c(-8, -7))) {
    expect_error(init_prior(tg, bad), "`log_alpha_min` must be a single number or -Inf")
  }
  expect_error(init_prior(tg, 0), "it must keep at least half")
})

test_that("from the default prior start the flow reaches the posterior", {
  d <- logistic_data(N = 100)
  tg <- target_logistic(d$x, d$y)
  # reference moments: self-normalised importance sampling from a widened
  # Laplace approximation, 2e5 draws (their Monte Carlo error is below 1% of a
  # posterior sd)
  ref <- is_reference(tg)
  expect_gt(ref$ess, 5e4)
  m_ref <- ref$mean
  s_ref <- ref$sd
  fit <- jko_fit(tg, h = 0.5, steps = 8, hidden = c(16, 16), batch = 256, iters = 150,
                 verbose = FALSE, stationary = FALSE)
  expect_match(fit$init$label, "truncated to log alpha >= -8")
  s <- jko_sample(fit, 4000)$x
  # 4000 draws give a mean to 0.016 sd; the flow's own error is of order 0.1 sd
  expect_lt(max(abs(colMeans(s) - m_ref) / s_ref), 0.25)
  expect_lt(max(abs(apply(s, 2L, sd) / s_ref - 1)), 0.25)
})

test_that("jko_fit starts a target_logistic from its prior; predict gives the posterior predictive", {
  d <- logistic_data(N = 100)
  tg <- target_logistic(d$x, d$y, "normal")
  set.seed(9)
  fit <- jko_fit(tg, h = 0.5, steps = 2, hidden = c(8, 8), batch = 128, iters = 60,
                 verbose = FALSE, stationary = FALSE)
  expect_match(fit$init$label, "N\\(0, I\\) prior")
  s <- jko_sample(fit, 500)
  newx <- d$x[1:7, ]
  p <- predict(fit, newx, samples = s)
  expect_equal(p, rowMeans(plogis(newx %*% t(s$x))), tolerance = 1e-12)
  expect_equal(predict(fit, newx, type = "link", samples = s), qlogis(p), tolerance = 1e-10)
  expect_length(predict(fit, n = 100), 100)
  expect_error(predict(fit, d$x[, 1:2]), "`newdata` must have 3 columns")
  expect_error(predict(fit, newx, samples = 1), "`samples` must be a jko_sample")

  ou <- jko_fit(potential_quadratic(1), init_gaussian(0, 1), h = 0.5, steps = 1,
                hidden = c(4, 4), batch = 64, iters = 5, verbose = FALSE)
  expect_error(predict(ou, matrix(0, 1, 1)), "needs a fit of a target_logistic")
})

test_that("init_laplace finds the mode and curvature of a Gaussian target exactly", {
  A <- matrix(c(2, 0.5, 0.5, 1), 2)
  b <- c(1, -2)
  la <- init_laplace(potential_quadratic(A, b), inflate = 2)
  expect_equal(la$mode, b, tolerance = 1e-6)
  expect_equal(la$cov, 4 * solve(A), tolerance = 1e-6)
  expect_error(init_laplace(potential_quadratic(A, b), inflate = 0.5), "`inflate` must be at least 1")
})
