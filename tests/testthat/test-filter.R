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

test_that("Bayes' rule on the density is the conjugate posterior, exactly", {
  set.seed(35)
  lik <- jkoflow:::gaussian_loglik(1, 1)
  # N(0, 1) times N(1; x, 1): N(0.5, 0.5), evidence N(1; 0, 2)
  law0 <- jkoflow:::as_law(init_gaussian(0, 1))
  node <- jkoflow:::bayes_node(law0, lik$value)
  law <- jkoflow:::law_append(law0, list(node))
  law_ld <- function(law, x) jkoflow:::law_log_density(law, x)$log_density
  law_sample <- function(law, n) jkoflow:::law_draw(law, n, log_density = FALSE)$x
  sd_post <- sqrt(0.5)
  # the evidence by quadrature on the tabulated grid (step about 0.005):
  # the trapezoid rule's error on this smooth integrand, and the mass
  # beyond the grid (draws' range plus one sd), are far below 1e-6
  expect_lt(abs(node$log_z - dnorm(1, 0, sqrt(2), log = TRUE)), 1e-6)
  x <- matrix(c(-2, 0, 0.5, 1, 3), ncol = 1L)
  expect_lt(max(abs(law_ld(law, x) - dnorm(x[, 1], 0.5, sd_post, log = TRUE))), 1e-6)
  # the samples: resampled, then moved by Metropolis steps that keep the
  # posterior; after 10 moves (acceptance about 0.45) the duplicates of the
  # resampling are gone but for about 0.55^10 of them, so the draws count
  # nearly as independent: 5 standard errors, allowing half of them
  n <- 20000
  z <- law_sample(law, n)[, 1]
  expect_gt(length(unique(z)), 0.95 * n)
  expect_lt(abs(mean(z) - 0.5), 5 * sd_post / sqrt(n / 2))
  expect_lt(abs(stats::sd(z) / sd_post - 1), 5 / sqrt(n))
  # and their distribution: the empirical cdf at five quantiles
  pr <- c(0.05, 0.25, 0.5, 0.75, 0.95)
  Fn <- vapply(stats::qnorm(pr, 0.5, sd_post), function(q) mean(z <= q), numeric(1))
  expect_lt(max(abs(Fn - pr) / sqrt(pr * (1 - pr) / (n / 2))), 5)
  # in dimension 2 (exact pull-backs, Monte Carlo evidence): y = (1, -1)
  # with noise sds (1, 2) on N(0, I): means (0.5, -0.2), variances (0.5, 0.8)
  lik2 <- jkoflow:::gaussian_loglik(c(1, -1), c(1, 2))
  law20 <- jkoflow:::as_law(init_gaussian(c(0, 0), 1))
  node2 <- jkoflow:::bayes_node(law20, lik2$value)
  law2 <- jkoflow:::law_append(law20, list(node2))
  ev2 <- dnorm(1, 0, sqrt(2), log = TRUE) + dnorm(-1, 0, sqrt(5), log = TRUE)
  expect_lt(abs(node2$log_z - ev2), 4 * node2$log_z_se + 1e-9)
  x2 <- rbind(c(0, 0), c(1, -1), c(-1, 2))
  exact2 <- dnorm(x2[, 1], 0.5, sqrt(0.5), log = TRUE) + dnorm(x2[, 2], -0.2, sqrt(0.8), log = TRUE)
  expect_lt(max(abs(law_ld(law2, x2) - exact2)), 4 * node2$log_z_se + 1e-9)
  z2 <- law_sample(law2, n)
  expect_lt(max(abs(colMeans(z2) - c(0.5, -0.2)) / sqrt(c(0.5, 0.8))), 5 / sqrt(n / 4))
  expect_lt(max(abs(apply(z2, 2, stats::var) / c(0.5, 0.8) - 1)), 5 * sqrt(2 / (n / 4)))
  # a likelihood that fails is named, before any work
  expect_error(jkoflow:::bayes_node(law0, function(x) ifelse(x[, 1] > 3, NaN, 0)),
               "`loglik` returned NaN, NA or Inf at [0-9]+ of [0-9]+ points")
  expect_error(jkoflow:::bayes_node(law0, function(x) 0),
               "`loglik` must return [0-9]+ log-likelihoods")
})

test_that("a fit of no step is the law of its start", {
  set.seed(36)
  init <- init_gaussian(1, 4)
  fit <- jko_fit(potential_quadratic(1), init, steps = 0, control = small, verbose = FALSE)
  expect_length(fit$theta, 0L)
  x <- c(-1, 1, 4)
  expect_equal(jko_density(fit, x, log = TRUE)$log_density, dnorm(x, 1, 2, log = TRUE),
               tolerance = 1e-12)
  s <- jko_sample(fit, 10000)$x[, 1]
  expect_lt(abs(mean(s) - 1), 4 * 2 / sqrt(10000))
  expect_output(print(fit), "0 steps")
  expect_error(jko_fit(potential_quadratic(1), init, steps = 0, stationary = TRUE, verbose = FALSE),
               "`steps` must be a whole number >= 1")
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
                  verbose = FALSE)
  # N(0, 1) is the stationary law of Phi = x^2 / 2: the first prediction is N(0, 1)
  law <- conjugate(0, 1, y[1], 1)
  expected1 <- law
  # the updates are exact (Bayes' rule on the density); the flows add their
  # training error: means within 0.1 sd, sds within 10%, with the 2^13
  # monitor draws' Monte Carlo error far below
  # N(0, 1) does not move: the linearised scheme's error is 0 and the flow
  # takes steps of h; the second interval has as many as the step rule chose
  expect_equal(f$table$flow_steps[1], 2L)
  expect_gte(f$table$flow_steps[2], 2L)
  expect_equal(f$table$update_steps, c(0L, 0L))
  law <- expected1
  k2 <- f$table$flow_steps[2]
  for (k in seq_len(k2)) law <- jko_ou_step(law[["mean"]], law[["sd"]], 1, 0.5 / k2)
  expected2 <- conjugate(law[["mean"]], law[["sd"]], y[2], 1)
  expect_lt(abs(f$table$mean[1] - expected1[["mean"]]), 0.1 * expected1[["sd"]])
  expect_lt(abs(f$table$sd[1] / expected1[["sd"]] - 1), 0.1)
  expect_lt(abs(f$table$mean[2] - expected2[["mean"]]), 0.1 * expected2[["sd"]])
  expect_lt(abs(f$table$sd[2] / expected2[["sd"]] - 1), 0.1)
  # the evidence of each observation, log p(y_j | y_1..y_{j-1}): the
  # predictive law (the prior before the first, exact here; the JKO
  # scheme's after) convolved with the noise. Its derivative in the
  # predictive mean is (y - m) / (s^2 + 1), below 1.5 here: a mean within
  # 0.1 sd and an sd within 10% move it by less than 0.15 + 0.1
  expect_lt(abs(f$table$log_evidence[1] - dnorm(y[1], 0, sqrt(2), log = TRUE)), 0.25)
  expect_lt(abs(f$table$log_evidence[2] -
                dnorm(y[2], law[["mean"]], sqrt(law[["sd"]]^2 + 1), log = TRUE)), 0.25)
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

test_that("a likelihood far sharper than the prior still gives the exact posterior", {
  # observations at t = 0 (no flow) on N(0, 1): the posterior of y with noise
  # sd s is conjugate(0, 1, y, s), the evidence N(y; 0, 1 + s^2). An
  # observation 30 sds out, one of noise sd 1e-4 and one of 1e-8 leave the
  # prior's draws few effective ones (ESS 7e-5 of them, the same for the
  # other two): the grid of the quadrature follows the posterior, and the
  # draws come from it. (Before: -335 and mean 4.4 with sd 0.2 for the
  # first, evidence -2.1 for the second, an internal error for the third.)
  cases <- list(c(y = 30, sd = 1), c(y = 0.5, sd = 1e-4), c(y = 0.5, sd = 1e-8),
                c(y = -12, sd = 0.01))
  for (cs in cases) {
    set.seed(38)
    expect_no_warning(
      f <- jko_filter(potential_quadratic(1), cs[["y"]], times = 0, sd = cs[["sd"]],
                      control = small, verbose = FALSE))
    expect_lt(f$table$update_ess, 0.01)
    # the trapezoid rule on a Gaussian over >= 64 points per effective span:
    # exact far below 1e-6
    expect_lt(abs(f$table$log_evidence -
                    dnorm(cs[["y"]], 0, sqrt(1 + cs[["sd"]]^2), log = TRUE)), 1e-6)
    ex <- conjugate(0, 1, cs[["y"]], cs[["sd"]])
    s <- jko_sample(f$fits[[1L]], 4000)$x
    # 4000 draws (the grid's, moved 10 times): the mean's standard error is
    # sd / 63, the sd's relative one 1.1%; 5 of them allowed
    expect_lt(abs(mean(s) - ex[["mean"]]), 5 * ex[["sd"]] / sqrt(4000))
    expect_lt(abs(sd(s) / ex[["sd"]] - 1), 0.06)
    # the density: prior times likelihood over Z, exact
    pts <- ex[["mean"]] + c(-1, 0, 2) * ex[["sd"]]
    expect_equal(as.numeric(jko_density(f$fits[[1L]], pts, log = TRUE)),
                 dnorm(pts, ex[["mean"]], ex[["sd"]], log = TRUE), tolerance = 1e-6)
  }
})

test_that("in dimension 2 a degenerate reweighting stops, naming the observation", {
  set.seed(39)
  e <- tryCatch(jko_filter(potential_quadratic(c(1, 1)), matrix(c(1, 30, 0, 0), 2, byrow = TRUE),
                           times = c(0, 0), init = init_gaussian(c(0, 0), 1), control = small,
                           verbose = FALSE),
                error = identity)
  expect_s3_class(e, "jkoflow_error_degenerate")
  expect_match(conditionMessage(e), paste0(
    "the reweighting of observation 1 \\(t = 0\\) degenerates: .*effective sample size .*",
    "in coordinate 2 the observation is [23][0-9]\\.[0-9] sds of the law from its mean.*update = \"flow\""))
})

test_that("the filter's update can be a flow to the posterior", {
  set.seed(38)
  f <- jko_filter(potential_quadratic(1), 1, times = 0.5, h = 0.25, update = "flow",
                  control = small, control_update = update_control(small, list(kl_tol = 0.002)),
                  verbose = FALSE)
  # the prediction is N(0, 1) (stationary); the update's KL < 0.002 allows a
  # mean within 0.063 sd and an sd within 4.5%, the flow's training 0.1 sd
  # and 10% more
  expected <- conjugate(0, 1, 1, 1)
  expect_gt(f$table$update_steps, 0L)
  expect_lt(f$table$update_kl, 0.002)
  expect_lt(abs(f$table$mean - expected[["mean"]]), 0.17 * expected[["sd"]])
  expect_lt(abs(f$table$sd / expected[["sd"]] - 1), 0.15)
})

test_that("the step rule's Gaussian error is the JKO scheme's, minimised directly", {
  gauss_error <- getFromNamespace("jko_gauss_error", "jkoflow")
  # Phi = a (x - c)^2 / 2 at inverse temperature beta: a JKO step from
  # N(m, s^2) over Gaussians N(m', s'^2) minimises
  # ((m - m')^2 + (s - s')^2) / (2 h) + a ((m' - c)^2 + s'^2) / 2 - log(s') / beta
  # (W2^2 between 1-D Gaussians, E Phi, and the entropy up to a constant);
  # the exact law at t is N(c + (m - c) e^{-a t}, 1 / (beta a) + (s^2 - 1 / (beta a)) e^{-2 a t}).
  scheme <- function(m, s, a, c, beta, dt, k) {
    h <- dt / k
    # the objective is a sum of a function of m' and one of s'
    for (i in seq_len(k)) {
      m <- stats::optimize(function(u) (m - u)^2 / (2 * h) + a * (u - c)^2 / 2,
                           m + c(-5, 5), tol = 1e-13)$minimum
      s <- stats::optimize(function(u) (s - u)^2 / (2 * h) + a * u^2 / 2 - log(u) / beta,
                           c(1e-3, 10), tol = 1e-13)$minimum
    }
    c(m, s)
  }
  symkl <- function(p, q) {
    0.5 * ((p[2] / q[2])^2 + (q[2] / p[2])^2 - 2) + 0.5 * (p[1] - q[1])^2 * (1 / p[2]^2 + 1 / q[2]^2)
  }
  for (case in list(c(m = -1, s = 0.5, a = 1, c = 1, beta = 1, dt = 0.5, k = 2),
                    c(m = 2, s = 0.3, a = 2.5, c = 0, beta = 4, dt = 0.5, k = 3),
                    c(m = 0.5, s = 1, a = -0.4, c = 0, beta = 0.5, dt = 0.3, k = 2))) {
    p <- as.list(case)
    sc <- scheme(p$m, p$s, p$a, p$c, p$beta, p$dt, p$k)
    ex <- c(p$c + (p$m - p$c) * exp(-p$a * p$dt),
            sqrt(1 / (p$beta * p$a) + (p$s^2 - 1 / (p$beta * p$a)) * exp(-2 * p$a * p$dt)))
    # the gradient of the potential at the mean is a (m - c)
    got <- gauss_error(p$m, p$s^2, p$a * (p$m - p$c), p$a, p$dt, p$k, p$beta)
    # optimize() finds each minimum to about 1e-8 (the objective is flat to
    # second order there), which moves the KL by a relative 1e-6 or less
    expect_equal(got, symkl(sc, ex), tolerance = 1e-5)
    expect_gt(got, 1e-5)
  }
  # pure diffusion (a = 0): exact N(m, s^2 + 2 t / beta)
  sc <- scheme(0, 0.5, 0, 0, 2, 0.5, 2)
  expect_equal(gauss_error(0, 0.25, 0, 0, 0.5, 2, 2), symkl(sc, c(0, sqrt(0.25 + 0.5))),
               tolerance = 1e-5)
  # a step beyond the convexity of Phi (1 + h a <= 0) has no error bound
  expect_equal(gauss_error(0, 1, 0, -3, 0.5, 1, 1), Inf)
})

test_that("the filter's steps are the fewest whose linearised error is within h_tol", {
  steps <- getFromNamespace("filter_steps", "jkoflow")
  gauss_error <- getFromNamespace("jko_gauss_error", "jkoflow")
  set.seed(34)
  pot <- potential_quadratic(1, b = 1)
  x <- matrix(rnorm(4096, -1, 0.5))
  k <- steps(pot, x, 0.5, 0.25, 1, 0.005)
  # the draws' moments and drift give the linearisation; a quadratic Phi is
  # its own: the error at k steps is within h_tol, at k - 1 beyond
  m <- mean(x)
  v <- mean((x - m)^2)
  expect_lte(gauss_error(m, v, m - 1, 1, 0.5, k, 1), 0.005)
  expect_gt(gauss_error(m, v, m - 1, 1, 0.5, k - 1L, 1), 0.005)
  expect_gt(k, 2L)
  # h_tol = Inf: steps of at most h; a law at rest needs no more
  expect_equal(steps(pot, x, 0.5, 0.25, 1, Inf), 2L)
  expect_equal(steps(potential_quadratic(1), matrix(rnorm(4096)), 0.5, 0.2, 1, 0.005), 3L)
  # at most 16 times the steps of h; a failing gradient gives steps of h
  expect_equal(steps(pot, x * 0.01 - 5, 2, 0.5, 1, 1e-12), 64L)
  bad <- potential_fn(function(x) x[, 1]^2, function(x) stop("no gradient"), dim = 1)
  expect_equal(steps(bad, x, 0.5, 0.25, 1, 0.005), 2L)
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
  expect_error(jko_filter(pot, 1, 1, h_tol = 0), "`h_tol` must be a positive number")
  expect_error(jko_filter(pot, 1, 1, h_tol = "a"), "`h_tol` must be a positive number")
  expect_error(jko_filter(pot, 1, 1, update = "exact"), "`update` must be \"reweight\" or \"flow\"")
  expect_error(jko_filter(pot, 1, 1, control = list()), "`control` must be a jko_control()")
  expect_error(jko_filter(pot, 1, 1, control_update = 1), "`control_update` must be a jko_control()")
  expect_error(jko_filter(pot, 1, 1, init = init_samples(matrix(rnorm(20), ncol = 1L))),
               "`init` must have a log-density")
  expect_error(jko_filter(pot, matrix(1, 1, 2), 1, init = init_gaussian(0)),
               "`y` must have 1 column")
})

test_that("the grid solver matches the Ornstein-Uhlenbeck closed form, to second order", {
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
  # see them and stay there (0.0495-0.0508 over seeds 1-6), sharper ones
  # learn them (0.012-0.033 over seeds 1-6, twice, before and after the
  # flows had streams of their own)
  expect_lt(symkl(sharp), 0.04)
  expect_gt(symkl(flat), 0.045)
})
