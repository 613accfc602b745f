test_that("jko_control(adaptive) is checked", {
  expect_error(jko_control(adaptive = "yes"), "`adaptive` must be TRUE or FALSE")
  expect_error(jko_control(adaptive = NA), "`adaptive` must be TRUE or FALSE")
  expect_null(jko_control()$adaptive)
  expect_true(jko_control(adaptive = TRUE)$adaptive)
})

test_that("adaptive iterations in the time-accurate flow stop early and keep its law", {
  set.seed(31)
  fit <- jko_fit(potential_quadratic(1, 2), init_gaussian(0, 1), h = 0.2, steps = 4,
                 hidden = c(8, 8), rank = 2, batch = 128, iters = 600, adaptive = TRUE,
                 verbose = FALSE)
  it <- fit$history$iters[-1]
  # the plateau test needs two windows of 50 iterations, then the anneal of
  # max(50, 600 / 5) = 120: at least 220 iterations, at most 600
  expect_true(all(it >= 220 & it <= 600))
  expect_true(any(it < 600))
  expect_identical(lengths(fit$loss_trace), as.integer(it))
  # OU in 1-D from N(0, 1) towards N(2, 1): the JKO scheme's mean after 4
  # steps of h = 0.2 is 2 (1 - 1.2^-4) and its variance stays 1 (the
  # stationary one); Monte Carlo sd of the estimates about 0.007
  x <- jko_sample(fit, 20000)$x
  expect_lt(abs(mean(x) - 2 * (1 - 1.2^-4)), 0.03)
  expect_lt(abs(sd(x) - 1), 0.03)
})
