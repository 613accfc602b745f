# Bayesian updates of a fitted law (jko_update()), the filter (jko_filter())
# against the Kalman recursion of the JKO scheme, and the fine-grid
# Fokker-Planck reference against the Ornstein-Uhlenbeck closed form.

small <- jko_control(hidden = c(8, 8), batch = 256, iters = 100, pool = 2^14, monitor = 2^13)

# One JKO step of Phi = a x^2 / 2 (1-D, beta = 1) maps N(m, s^2) to
# N(m / (1 + a h), (lambda s)^2), lambda the positive root of
# lambda^2 s^2 (1/h + a) - lambda s^2 / h - 1 = 0.
jko_ou_step <- function(m, s, a, h) {
  A <- s^2 * (1 / h + a)
  B <- s^2 / h
  c(mean = m / (1 + a * h), sd = s * (B + sqrt(B^2 + 4 * A)) / (2 * A))
}

# Conjugate update of N(m, s^2) by y ~ N(x, sd^2).
conjugate <- function(m, s, y, sd) {
  v <- 1 / (1 / s^2 + 1 / sd^2)
  c(mean = v * (m / s^2 + y / sd^2), sd = sqrt(v))
}

base_fit <- local({
  set.seed(31)
  jko_fit(potential_quadratic(1), init_gaussian(0, 1), h = 0.5, steps = 1,
          control = jko_control(hidden = c(8, 8), batch = 128, iters = 20), verbose = FALSE)
})

test_that("an update of a Gaussian law by a Gaussian likelihood is the conjugate posterior", {
  set.seed(32)
  # the law at step 0 is N(0, 1) exactly; with y = 1 and noise sd 1 the
  # posterior is N(0.5, 0.5) and the evidence N(1; 0, 2)
  post <- jko_update(base_fit, function(x) dnorm(1, x[, 1], 1, log = TRUE), step = 0,
                     control = small, verbose = FALSE)
  expect_true(post$verdict$reached)
  n <- 20000
  s <- jko_sample(post, n)
  # The verdict holds KL(q || pi) below kl_tol = 0.01. For Gaussians a mean
  # off by d sds costs d^2 / 2 and an sd ratio r costs (r^2 - 1 - log r^2) / 2,
  # about (r - 1)^2: |d| < 0.14, |r - 1| < 0.1; plus 4 Monte Carlo standard
  # errors (sd / sqrt(n) for the mean, sd / sqrt(2 n) relative for the sd).
  sd_post <- sqrt(0.5)
  expect_lt(abs(mean(s$x) - 0.5), sd_post * (sqrt(2 * 0.01) + 4 / sqrt(n)))
  expect_lt(abs(stats::sd(s$x) / sd_post - 1), 0.1 + 4 / sqrt(2 * n))
  # log-densities: their mean gap to the exact posterior at the fit's own
  # draws is KL(q || pi) >= 0, below the tolerance (plus 4 standard errors)
  gap <- s$log_density - dnorm(s$x[, 1], 0.5, sd_post, log = TRUE)
  expect_lt(abs(mean(gap)), 0.01 + 4 * stats::sd(gap) / sqrt(n))
  # and at fixed points, within what such a KL allows near the mode
  x <- c(0, 0.5, 1)
  expect_lt(max(abs(jko_density(post, x, log = TRUE)$log_density -
                    dnorm(x, 0.5, sd_post, log = TRUE))), 0.1)
  # the evidence is the marginal likelihood of y: log N(1; 0, 2)
  ev <- jko_evidence(post)
  expect_lt(abs(ev$log_z - dnorm(1, 0, sqrt(2), log = TRUE)), 0.01 + 4 * ev$se)
})

test_that("jko_update() checks its arguments before any work", {
  expect_error(jko_update(list(), function(x) x), "`fit` must be a fit from jko_fit()")
  expect_error(jko_update(base_fit, "a"), "`loglik` must be a function")
  expect_error(jko_update(base_fit, function(x) x[, 1], grad = 1), "`grad` must be NULL or a function")
  expect_error(jko_update(base_fit, function(x) 1, verbose = FALSE),
               "`loglik` must return 16 log-likelihoods")
  expect_error(jko_update(base_fit, function(x) x[, 1], tabulate = NA), "`tabulate` must be TRUE or FALSE")
  expect_error(jko_update(base_fit, function(x) x[, 1], step = 4), "`step` must be a whole number")
})

test_that("the filter follows the Kalman recursion of the JKO scheme on an OU process", {
  set.seed(33)
  y <- c(1, 1.5)
  f <- jko_filter(potential_quadratic(1), y, times = c(0.5, 1), h = 0.25, control = small,
                  control_update = update_control(small, list(kl_tol = 0.002)), verbose = FALSE)
  # N(0, 1) is the stationary law of Phi = x^2 / 2: the first prediction is N(0, 1)
  law <- conjugate(0, 1, y[1], 1)
  expected1 <- law
  for (k in 1:2) law <- jko_ou_step(law[["mean"]], law[["sd"]], 1, 0.25)
  expected2 <- conjugate(law[["mean"]], law[["sd"]], y[2], 1)
  # each update reached KL < 0.002 (a mean within 0.063 sd, an sd within
  # 4.5%); the flows add their training error: means within 0.1 sd, sds
  # within 10%, with the 2^13 monitor draws' Monte Carlo error far below
  expect_equal(f$table$flow_steps, c(2L, 2L))
  expect_lt(abs(f$table$mean[1] - expected1[["mean"]]), 0.1 * expected1[["sd"]])
  expect_lt(abs(f$table$sd[1] / expected1[["sd"]] - 1), 0.1)
  expect_lt(abs(f$table$mean[2] - expected2[["mean"]]), 0.1 * expected2[["sd"]])
  expect_lt(abs(f$table$sd[2] / expected2[["sd"]] - 1), 0.1)
  # the filtering law is a fit with densities, normalised
  x <- seq(-3, 4, by = 0.01)
  expect_lt(abs(sum(as.numeric(jko_density(f$fits[[2]], x))) * 0.01 - 1), 2e-3)
  expect_output(print(f), "JKO filter: 2 observations")
  file <- tempfile(fileext = ".png")
  grDevices::png(file)
  op <- graphics::par("mfrow")
  expect_invisible(plot(f))
  expect_invisible(plot(f, what = "path"))
  expect_identical(graphics::par("mfrow"), op)
  grDevices::dev.off()
  expect_gt(file.size(file), 0)
})

test_that("jko_filter() checks its arguments before any work", {
  pot <- potential_quadratic(1)
  expect_error(jko_filter(pot, "a", 1), "`y` must be a numeric vector or matrix")
  expect_error(jko_filter(pot, c(1, 2), c(1, 0.5)), "`times` must be 2 non-decreasing")
  expect_error(jko_filter(pot, c(1, 2), 1), "`times` must be 2 non-decreasing")
  expect_error(jko_filter(pot, c(1, 2), c(-1, 1)), "`times` must be 2 non-decreasing")
  expect_error(jko_filter(pot, 1, 1, sd = -1), "`sd` must be a positive number")
  expect_error(jko_filter(pot, 1, 1, loglik = 3), "`loglik` must be NULL or a function")
  expect_error(jko_filter(pot, 1, 1, t_end = 0.5), "`t_end` must be NULL or a time >= the last")
  expect_error(jko_filter(pot, 1, 1, h = 0), "`h` must be a single positive")
  expect_error(jko_filter(pot, 1, 1, control = list()), "`control` must be a jko_control()")
  expect_error(jko_filter(pot, 1, 1, control_update = 1), "`control_update` must be a jko_control()")
  expect_error(jko_filter(pot, 1, 1, init = init_samples(matrix(rnorm(20), ncol = 1L))),
               "`init` must have a log-density")
  expect_error(jko_filter(pot, matrix(1, 1, 2), 1, init = init_gaussian(0)),
               "`y` must have 1 column")
})

test_that("the grid solver matches the Ornstein-Uhlenbeck closed form, to second order", {
  fp_grid <- jkoflow:::fp_grid
  # dX = -X dt + sqrt(2) dW from N(1.5, 0.5^2): at t = 0.7 the law is
  # N(1.5 e^-0.7, 0.25 e^-1.4 + 1 - e^-1.4)
  err <- vapply(c(201, 401), function(n) {
    g <- fp_grid(function(x) x^2 / 2, -8, 8, n)
    r <- g$evolve(dnorm(g$x, 1.5, 0.5), 0.7)
    expect_equal(sum(r) * g$dx, 1, tolerance = 1e-10)   # no flux through the ends
    max(abs(r - dnorm(g$x, 1.5 * exp(-0.7), sqrt(0.25 * exp(-1.4) + 1 - exp(-1.4)))))
  }, numeric(1))
  # dx = 0.08: the O(dx^2) error is a few 1e-4; halving dx divides it by 4
  expect_lt(err[1], 1e-3)
  expect_gt(err[1] / err[2], 3.5)
  expect_lt(err[1] / err[2], 4.5)
  # the equilibrium e^{-beta Phi} is exact on the grid, for any Phi
  phi <- function(x) sin(2 * pi * x) / pi + x^2 / 4
  g <- fp_grid(phi, -6, 6, 301, beta = 2)
  eq <- exp(-2 * phi(g$x))
  eq <- eq / (sum(eq) * g$dx)
  expect_lt(max(abs(g$evolve(eq, 3) - eq)), 1e-10)
})

test_that("sharper units at the start learn the ripples of the filtering benchmark's potential", {
  fp_grid <- jkoflow:::fp_grid
  phi <- function(x) sin(2 * pi * x) / pi + x^2 / 4
  pot <- potential_fn(function(x) phi(x[, 1]),
                      function(x) matrix(2 * cos(2 * pi * x[, 1]) + x[, 1] / 2, ncol = 1L),
                      dim = 1)
  g <- fp_grid(phi, -7, 7, 701)
  # the exact flow from N(0, 1) at t = 0.25; the JKO scheme with h = 0.125
  # is within about 1e-4 of it in symmetric KL (implicit Euler on the grid)
  p <- g$evolve(dnorm(g$x), 0.25)
  p <- p / (sum(p) * g$dx)
  symkl <- function(fit) {
    q <- as.numeric(jko_density(fit, g$x))
    r <- p > 1e-10
    sum(((p - q) * (log(p) - log(q)))[r]) * g$dx
  }
  ctl <- function(s) jko_control(hidden = c(32, 32), batch = 512, iters = 300, pool = 2^14,
                                 init_scale = s)
  set.seed(4)
  sharp <- jko_fit(pot, init_gaussian(0, 1), h = 0.125, steps = 2, control = ctl(8),
                   verbose = FALSE)
  set.seed(4)
  flat <- jko_fit(pot, init_gaussian(0, 1), h = 0.125, steps = 2, control = ctl(1),
                  verbose = FALSE)
  # the density forms ripples of relative size e^{+-1/pi}: a law without
  # them (the best Gaussian) is about 0.05 away; units of unit scale cannot
  # see them and stay there, sharper ones learn them
  expect_lt(symkl(sharp), 0.02)
  expect_gt(symkl(flat), 0.03)
})
