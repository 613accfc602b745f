# The law of a flow (R/law.R): a base distribution and a flat list of
# nodes, drawn forwards and pulled back in one pass; the fit object's checks
# (R/fit.R); the target protocol (R/target.R).

law_draw <- jkoflow:::law_draw
law_log_density <- jkoflow:::law_log_density

small <- jko_control(hidden = c(8, 8), batch = 128, iters = 40, pool = 2^11, monitor = 2^10)
set.seed(51)
pot <- potential_quadratic(diag(2), b = c(1, -1))
f1 <- jko_fit(pot, init_gaussian(c(0, 0), 2), h = 0.2, steps = 2, control = small,
              verbose = FALSE)
# a chain whose maps have two architectures (8 x 8, then 4 x 4 x 4)
f2 <- jko_fit(pot, init_fit(f1), h = 0.2, steps = 2, verbose = FALSE,
              control = jko_control(hidden = c(4, 4, 4), batch = 128, iters = 40,
                                    pool = 2^11, monitor = 2^10))

test_that("a chained fit's law is one flat list of its maps", {
  law <- jkoflow:::fit_law(f2)
  expect_s3_class(law, "jko_law")
  expect_length(law$nodes, 4L)
  expect_identical(vapply(law$nodes, `[[`, "", "type"), rep("map", 4L))
  expect_identical(law$nodes[[1]]$theta, f1$theta[[1]])
  expect_identical(law$nodes[[4]]$theta, f2$theta[[2]])
  expect_match(law$label, "Gaussian, dimension 2, then 4 maps")
  # truncate and append are inverse
  expect_identical(jkoflow:::law_append(jkoflow:::law_truncate(law, 2), law$nodes[3:4]), law)
  expect_identical(jkoflow:::law_truncate(law, 2), init_fit(f1))
})

test_that("draws through a chain equal the push map by map, and their densities its pull-back", {
  law <- jkoflow:::fit_law(f2)
  set.seed(3)
  d <- law_draw(law, 500)
  # the same draws pushed one map at a time, with the log-densities carried
  set.seed(3)
  x <- law$base$sample(500)
  ld <- law$base$log_density(x)
  for (node in law$nodes) {
    out <- jkoflow:::c_push(list(node), x, ld, 1L)
    x <- out$x
    ld <- out$log_density
  }
  expect_identical(d$x, x)
  expect_equal(d$log_density, ld, tolerance = 1e-13)
  # pulled back (Newton to 1e-10 per map): the carried log-densities again
  back <- law_log_density(law, d$x)
  expect_lt(back$residual, 1e-8)
  expect_lt(max(abs(back$log_density - d$log_density)), 1e-7)
  # and jko_sample()/jko_density() say the same
  set.seed(3)
  s <- jko_sample(f2, 500)
  expect_identical(s$x, d$x)
  expect_equal(jko_density(f2, d$x[1:20, ], log = TRUE)$log_density, d$log_density[1:20],
               tolerance = 1e-7)
})

test_that("a Bayes node on a chain is normalised and its draws follow it", {
  set.seed(8)
  f <- jko_fit(potential_quadratic(1), init_gaussian(1, 1), h = 0.5, steps = 1,
               control = small, verbose = FALSE)
  law <- init_fit(f)
  lik <- function(x) dnorm(0.5, x[, 1], 0.7, log = TRUE)
  node <- jkoflow:::bayes_node(law, lik)
  post <- jkoflow:::law_append(law, list(node))
  grid <- seq(-5, 6, by = 0.005)
  ld <- law_log_density(post, matrix(grid, ncol = 1L))$log_density
  # the trapezoid rule on a smooth density whose mass beyond the grid is
  # below 1e-8: the integral is 1 up to the error of log Z's quadrature
  expect_lt(abs(sum(exp(ld)) * 0.005 - 1), 1e-4)
  # the draws' mean against the density's (10000 draws: 5 standard errors,
  # counting each draw as half a draw for the resampling's duplicates)
  z <- law_draw(post, 10000)
  m <- sum(grid * exp(ld)) * 0.005
  s <- sqrt(sum((grid - m)^2 * exp(ld)) * 0.005)
  expect_lt(abs(mean(z$x) - m), 5 * s / sqrt(5000))
  # and the draws carry their exact log-densities
  expect_equal(z$log_density[1:10],
               law_log_density(post, z$x[1:10, , drop = FALSE])$log_density, tolerance = 1e-8)
})

test_that("a fit whose parts were removed or replaced is refused before any work", {
  bad <- f1
  bad$theta[[2]] <- bad$theta[[2]][-1]
  expect_error(jko_sample(bad, 10), "`fit` is not a valid fit: its maps' parameters")
  bad <- f1
  bad$dim <- 3L
  expect_error(jko_density(bad, c(0, 0)), "`fit` is not a valid fit: `dim` differs")
  bad <- f1
  bad$history <- bad$history[1, ]
  expect_error(jko_continue(bad, 1, verbose = FALSE), "its `history` must have 3 rows")
  bad <- f1
  bad$potential <- potential_quadratic(diag(3))
  expect_error(jko_continue(bad, 1, verbose = FALSE),
               "its `potential` is not a potential of dimension 2")
  bad <- f1
  bad$std[[1]]$center <- 1
  expect_error(jko_sample(bad, 10), "its changes of variables `std`")
  bad <- f1
  bad$net$activation <- "relu"
  expect_error(jko_sample(bad, 10), "its network `net` is missing or incomplete")
  # the number of parameters of a network, as C lays them out
  for (h in list(8, c(8, 4), c(3, 5, 7))) {
    net <- icnn(3, h, rank = 2)
    expect_identical(as.integer(jkoflow:::icnn_npar(net)), length(net$theta))
  }
})

test_that("counts beyond the integers are refused as such", {
  expect_error(jko_density(f1, c(0, 0), maxit = 3e9),
               "`maxit` must be a whole number >= 1 and <= 2147483647 \\(the largest integer\\)")
  expect_error(jko_sample(f1, 1e10),
               "`n` must be a whole number >= 1 and <= 2147483647")
  expect_error(jko_fit(pot, init_gaussian(c(0, 0), 1), steps = 2^31, verbose = FALSE),
               "`steps` must be a whole number >= 0 and <= 2147483647")
})

test_that("a fit that fails before its first step leaves no last fit behind", {
  ok <- jko_fit(pot, init_gaussian(c(0, 0), 1), h = 0.2, steps = 1, control = small,
                verbose = FALSE)
  expect_identical(jko_last_fit()$theta, ok$theta)
  bad <- new_potential(function(x) stop("broken"), dim = 2)
  expect_error(jko_fit(bad, init_gaussian(c(0, 0), 1), steps = 1, verbose = FALSE),
               "broken")
  expect_null(jko_last_fit())
})

test_that("targets follow one protocol", {
  tg <- new_target(function(x) -rowSums(x^2) / 2, function(x) -x, dim = 2,
                   start = c(1, 2), variables = c("a", "b"), label = "normal")
  expect_s3_class(tg, c("jko_target", "jko_potential"))
  expect_true(jkoflow:::is_target(tg))
  expect_false(jkoflow:::is_target(pot))
  x <- rbind(c(1, 2), c(0, -1))
  expect_equal(potential_value(tg, x, grad = TRUE),
               list(value = rowSums(x^2) / 2, gradient = x))
  expect_identical(tg$start, c(1, 2))
  expect_output(print(tg), "Target: normal")
  # a target with both at once
  tg2 <- new_target(function(x) stop("not called"), dim = 2,
                    logd_grad = function(x) list(value = -rowSums(x^2) / 2, gradient = -x))
  expect_equal(potential_value(tg2, x, grad = TRUE)$gradient, x)
  expect_error(new_target(function(x) 0, dim = 2, start = c(1, NA)),
               "`start` must be NULL or 2 finite numbers")
  expect_error(new_target(function(x) 0, init = 3), "`init` must be NULL or an initial")
  expect_error(new_target(function(x) 0, transform = list(constrain = identity)),
               "`transform` must be NULL or a list")
  # every instance is a target
  expect_true(jkoflow:::is_target(target_logdensity(function(x) -x[, 1]^2, function(x) -2 * x,
                                                    dim = 1)))
  expect_true(jkoflow:::is_target(target_glm(am ~ wt, data = mtcars, family = binomial())))
  expect_true(jkoflow:::is_target(target_logistic(cbind(1, mtcars$wt), mtcars$am)))
})

test_that("a flow's random choices come from streams of its own seed", {
  set.seed(21)
  a <- jko_fit(pot, init_gaussian(c(0, 0), 2), h = 0.2, steps = 3, control = small,
               verbose = FALSE)
  after <- stats::runif(1)
  # R's own stream advanced by one draw (the seed), whatever the flow drew
  set.seed(21)
  seed <- sample.int(.Machine$integer.max - 1L, 1L)
  expect_identical(a$seed, seed)
  expect_identical(stats::runif(1), after)
  # a fit continued from step 1 is the fit that ran straight through
  set.seed(21)
  b <- jko_fit(pot, init_gaussian(c(0, 0), 2), h = 0.2, steps = 1, control = small,
               verbose = FALSE)
  b <- jko_continue(b, 2, verbose = FALSE)
  expect_identical(b$theta, a$theta)
  expect_identical(b$monitor, a$monitor)
  # and a stationary flow too, its steps chosen as it goes
  tg <- target_logdensity(function(x) -rowSums((x - 1)^2) / 2, function(x) -(x - 1), dim = 2)
  ctl <- jko_control(hidden = c(8, 8), batch = 128, iters = 60, pool = 2^11, monitor = 2^11,
                     max_steps = 3)
  set.seed(22)
  # (from a start the target's own Laplace approximation is not: that one
  # is exact here and passes at step 0)
  s0 <- init_gaussian(c(-1, -1), 0.5)
  s1 <- suppressWarnings(jko_fit(tg, s0, control = ctl, verbose = FALSE))
  expect_gt(length(s1$theta), 1L)
  set.seed(22)
  s2 <- suppressWarnings(jko_fit(tg, s0, steps = 1, control = ctl, verbose = FALSE))
  s2 <- suppressWarnings(jko_continue(s2, length(s1$theta) - 1L, verbose = FALSE))
  expect_identical(s2$theta, s1$theta)
  expect_identical(s2$history$h, s1$history$h)
})
