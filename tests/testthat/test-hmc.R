# HMC draws from a flow that did not reach its target (R/hmc.R); the
# correlated Gaussian target is helper-targets.R's.

# Means within 5 of their Monte Carlo standard errors (sd / sqrt(ESS), ESS
# the draws' bulk ESS), sds within 5 of theirs (sd / sqrt(2 ESS2) for a
# Gaussian, ESS2 that of the squared deviations: HMC's draws can be
# antithetic, a mean's ESS above the draws' number where a variance's is
# not).
expect_moments <- function(d, mu, sd) {
  ess <- jkoflow:::draws_stat(d$x, d$chain, "ess_bulk")
  ess2 <- jkoflow:::draws_stat(sweep(d$x, 2L, mu)^2, d$chain, "ess_mean")
  expect_true(all(ess > 200))
  expect_true(all(abs(colMeans(d$x) - mu) < 5 * sd / sqrt(ess)))
  expect_true(all(abs(apply(d$x, 2L, stats::sd) / sd - 1) < 5 / sqrt(2 * ess2)))
}

test_that("HMC chains from a biased, narrow start reach a correlated Gaussian", {
  skip_if_not_installed("posterior")
  g <- correlated_conjugate()
  sd <- sqrt(diag(g$V))
  set.seed(1)
  # 256 starts 2 sds off in every coordinate, half as wide as the target
  L <- t(chol(g$V))
  x0 <- sweep(matrix(rnorm(256 * g$D), 256) %*% t(L) / 2, 2L, g$mu + 2 * sd, "+")
  d <- jkoflow:::hmc_draws(g$target, 1, x0, 4000)
  expect_identical(dim(d$x), c(4000L, as.integer(g$D)))
  expect_identical(d$chain, rep(seq_len(250L), each = 16L))
  expect_true(d$converged)
  expect_gt(d$acceptance, 0.6)
  expect_moments(d, g$mu, sd)
  # the starts themselves are far off: the test can fail
  expect_gt(max(abs(colMeans(x0) - g$mu) / sd), 1.5)
})

test_that("HMC draws never enter where the potential is undefined", {
  skip_if_not_installed("posterior")
  # a half-normal on x > 0: mean sqrt(2 / pi), sd sqrt(1 - 2 / pi)
  tg <- target_logdensity(function(x) ifelse(x[, 1L] > 0, -x[, 1L]^2 / 2, -Inf),
                          function(x) -x, dim = 1)
  set.seed(2)
  d <- jkoflow:::hmc_draws(tg, 1, matrix(abs(rnorm(256)) + 1, ncol = 1L), 4000)
  expect_true(all(d$x > 0))
  expect_moments(d, sqrt(2 / pi), sqrt(1 - 2 / pi))
})

test_that("HMC gives up where no start has a finite potential", {
  tg <- target_logdensity(function(x) ifelse(x[, 1L] > 0, -x[, 1L]^2 / 2, -Inf),
                          function(x) -x, dim = 1)
  set.seed(3)
  expect_null(jkoflow:::hmc_draws(tg, 1, matrix(-abs(rnorm(256)) - 1, ncol = 1L), 100))
})

test_that("a fit stopped short of its target says so, with a warning, and gives HMC draws", {
  g <- correlated_conjugate()
  set.seed(3)
  # a start far too narrow and off the mode, one short step: the flow is
  # no proposal the independence chains can use (their draws were 1 to 3
  # sds off here), but a start for HMC chains
  expect_warning(fit <- jko_fit(g$target, init_gaussian(g$mu + 3 * sqrt(diag(g$V)), 0.01),
                                steps = 1, verbose = FALSE,
                                control = jko_control(iters = 100)),
                 paste0("The flow did NOT reach the target.*the given number of steps ran out ",
                        "at step 1.*chains of Hamiltonian Monte Carlo.*as far as their"))
  expect_false(fit$verdict$reached)
  expect_output(print(fit), "did NOT reach the target")
  expect_identical(fit$draws$method, "hmc")
  # continued, the flow gets nearer
  fit2 <- suppressWarnings(jko_continue(fit, 4, verbose = FALSE))
  expect_lt(fit2$history$kl[6], fit$history$kl[2])
  skip_if_not_installed("posterior")
  expect_moments(fit$draws, g$mu, sqrt(diag(g$V)))
  expect_output(print(fit), "chains of Hamiltonian Monte Carlo started at the flow's draws")
  expect_output(print(fit), "HMC draws")
  # the cost counts the chains' gradients
  expect_match(paste(capture.output(print(fit)), collapse = " "),
               sprintf("%s with gradients in their moves",
                       format(fit$draws$diagnostics$gradients, big.mark = ",")))
  # more draws of the fit are HMC's too, without a density
  s <- jko_sample(fit, 2000)
  expect_identical(s$method, "hmc")
  expect_true(all(is.na(s$log_density)))
  expect_moments(list(x = s$x, chain = s$chain), g$mu, sqrt(diag(g$V)))
  # and the independence chains' on request
  f2 <- suppressWarnings(jko_fit(g$target, init_gaussian(g$mu + 3 * sqrt(diag(g$V)), 0.01),
                                 steps = 1, verbose = FALSE,
                                 control = jko_control(iters = 100, hmc = FALSE)))
  expect_identical(f2$draws$method, "imh")
  expect_error(jko_control(hmc = NA), "`hmc` must be TRUE or FALSE")
})

test_that("HMC takes over from a flow whose training would cost more than its chains", {
  skip_if_not_installed("posterior")
  g <- correlated_conjugate()
  set.seed(4)
  # the same far, narrow start, the steps left to the fit: at a KL of about
  # 48, halving it a step takes 8 steps to 0.2, of 250 iterations of 512
  # evaluations, where 250 chains of 500 cost 125 000
  expect_warning(fit <- jko_fit(g$target, init_gaussian(g$mu + 3 * sqrt(diag(g$V)), 0.01),
                                verbose = FALSE),
                 "projected to cost more evaluations than HMC chains from its draws at step 0")
  h <- fit$history
  expect_identical(fit$verdict$reason, "handover")
  expect_identical(nrow(h), 1L)
  expect_gt(h$kl[1], 0.2 * 2^(125000 / (250 * 512)))
  expect_identical(fit$draws$method, "hmc")
  expect_moments(fit$draws, g$mu, sqrt(diag(g$V)))
  # after a step, the KL's own rate: a step from 1 to 0.5 with 190 iterations
  # of 512 projects 1.32 steps of 97 280 evaluations (128 000, more than
  # 125 000); with 180, 122 000 (less)
  expect_identical(fit$settings$batch, 512L)
  due <- function(kl, iters) {
    f <- fit
    f$history <- rbind(h, h)
    f$history$kl <- kl
    f$history$iters[2] <- iters
    jkoflow:::handover_due(f)
  }
  expect_true(due(c(1, 0.5), 190))
  expect_false(due(c(1, 0.5), 180))
  expect_true(due(c(0.5, 0.6), 1))     # a KL that rose: no step will do
  expect_false(due(c(1, 0.19), 500))   # below 0.2: the flow is nearly there
  f <- fit
  f$settings$hmc <- FALSE
  expect_false(jkoflow:::handover_due(f))
  # a flow that reaches its start is not handed over
  f0 <- jko_fit(g$target, verbose = FALSE)
  expect_identical(f0$verdict$reason, "reached")
  expect_identical(f0$draws$method, "imh")
})

test_that("HMC moves a minibatch target on its full data", {
  set.seed(5)
  d <- data.frame(x = rnorm(60))
  d$y <- rbinom(60, 1, plogis(0.3 + 0.8 * d$x))
  tg <- target_glm(y ~ x, data = d, family = binomial())
  mb <- tg
  mb$batch <- 7L   # gradients of 7 rows of 60, scaled: noisy
  x0 <- cbind(rnorm(256, 0.3, 0.2), rnorm(256, 0.8, 0.2))
  set.seed(6)
  a <- jkoflow:::hmc_draws(mb, 1, x0, 500)
  set.seed(6)
  b <- jkoflow:::hmc_draws(tg, 1, x0, 500)
  expect_identical(a$x, b$x)
})

test_that("HMC chains all started at one point spread out in a given metric", {
  skip_if_not_installed("posterior")
  g <- correlated_conjugate()
  set.seed(8)
  # weights far from even resample one point 256 times: no covariance
  x0 <- matrix(g$mu + sqrt(diag(g$V)), 256, g$D, byrow = TRUE)
  expect_null(jkoflow:::hmc_draws(g$target, 1, x0, 4000))
  wide <- matrix(rnorm(1000 * g$D), 1000) %*% diag(2 * sqrt(diag(g$V)))
  d <- jkoflow:::hmc_draws(g$target, 1, x0, 4000, metric = jkoflow:::hmc_metric(wide))
  expect_true(d$converged)
  expect_moments(d, g$mu, sqrt(diag(g$V)))
})

test_that("HMC counts divergent transitions, and a draw's verdict fails on them", {
  # Neal's funnel: v ~ N(0, 3^2), x_i | v ~ N(0, e^v); in one metric the
  # step size that suits the mouth overshoots the neck
  D <- 10
  logd <- function(x) {
    v <- x[, 1]
    dnorm(v, 0, 3, log = TRUE) + rowSums(dnorm(x[, -1, drop = FALSE], 0, exp(v / 2), log = TRUE))
  }
  grad <- function(x) {
    v <- x[, 1]
    r <- x[, -1, drop = FALSE]
    cbind(-v / 9 - (D - 1) / 2 + rowSums(r^2) / (2 * exp(v)), -r / exp(v))
  }
  tg <- target_logdensity(logd, grad, dim = D)
  set.seed(9)
  x0 <- cbind(rnorm(256, 0, 3), matrix(rnorm(256 * (D - 1)), 256) * exp(rnorm(256, 0, 3) / 2))
  d <- jkoflow:::hmc_draws(tg, 1, x0, 1000)
  expect_gt(d$divergent, 0)
  diag <- list(method = "hmc", converged = TRUE, drift = 0, dim = D, divergent = d$divergent,
               ess_bulk = 1000)
  expect_match(jkoflow:::draws_failures(diag), sprintf("^%d divergent HMC transitions",
                                                       d$divergent))
  diag$divergent <- 0L
  expect_identical(jkoflow:::draws_failures(diag), character())
  # nor do HMC draws pass where the search's first point was a neck
  diag$neck <- TRUE
  expect_match(jkoflow:::draws_failures(diag), "^a neck at the search's first point")
  # a Gaussian's chains do not diverge
  g <- correlated_conjugate()
  L <- t(chol(g$V))
  x1 <- sweep(matrix(rnorm(256 * g$D), 256) %*% t(L), 2L, g$mu, "+")
  expect_identical(jkoflow:::hmc_draws(g$target, 1, x1, 1000)$divergent, 0L)
})
