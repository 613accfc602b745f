# The seam between R and C: a potential added through the documented
# protocol (new_potential()), named results, the status of a Hessian that is
# not positive definite, the training settings and the thread policy.

# Phi(x) = |x - m|^2 / (2 s^2) in D = 2 through the R protocol, with its own
# class: its normalising constant is Z = 2 pi s^2.
gauss_protocol <- function(m = c(1, -1), s = 0.7) {
  new_potential(function(x) rowSums(sweep(x, 2L, m)^2) / (2 * s^2),
                function(x) sweep(x, 2L, m) / s^2, dim = 2, label = "test Gaussian",
                class = "test_gaussian")
}

test_that("a potential made by new_potential() is the same function as the built-in", {
  pot <- gauss_protocol()
  expect_s3_class(pot, c("test_gaussian", "jko_potential"))
  expect_output(print(pot), "test Gaussian")
  quad <- potential_quadratic(diag(1 / 0.49, 2), b = c(1, -1))
  set.seed(1)
  x <- matrix(rnorm(40), 20, 2)
  a <- potential_value(pot, x, grad = TRUE)
  b <- potential_value(quad, x, grad = TRUE)
  expect_equal(a$value, b$value, tolerance = 1e-13)
  expect_equal(a$gradient, b$gradient, tolerance = 1e-13)
  expect_error(new_potential(1), "`value` must be a function of an n x D matrix")
  expect_error(new_potential(sum, gradient = 2), "`gradient` must be NULL or a function")
  expect_error(new_potential(sum, class = 3), "`class` must be NULL or a character vector")
})

test_that("a potential added through the protocol fits, samples, has densities and evidence", {
  set.seed(2)
  pot <- gauss_protocol()
  fit <- jko_fit(pot, init_gaussian(c(0, 0), 1), h = 0.5, steps = 4, verbose = FALSE,
                 control = jko_control(hidden = c(16, 16), batch = 256, iters = 150))
  expect_length(fit$theta, 4L)
  # the JKO scheme for this OU process: mean m (1 - (1 + h / s^2)^-k)
  s <- jko_sample(fit, 4000)
  jko_mean <- c(1, -1) * (1 - (1 + 0.5 / 0.49)^-4)
  expect_lt(max(abs(colMeans(s$x) - jko_mean)), 4 * 0.7 / sqrt(4000) + 0.02)
  # the density pulled back through the maps is the one carried forward
  d <- jko_density(fit, s$x[1:200, ], log = TRUE)
  expect_equal(as.numeric(d), s$log_density[1:200], tolerance = 1e-8)
  # the evidence: log Z = log(2 pi s^2), within the estimate's error
  ev <- jko_evidence(fit, 4000)
  expect_lt(abs(ev$log_z - log(2 * pi * 0.49)), max(4 * ev$se, 0.02))
  expect_lt(ev$pareto_k, 0.7)
})

test_that("the protocol's checks name the function that failed", {
  pot <- new_potential(function(x) rep(NA_real_, nrow(x)), function(x) x,
                       names = c(value = "U", gradient = "dU"))
  expect_error(potential_value(pot, matrix(0, 2, 2)),
               "the potential's `U` returned 2 non-finite values")
  bad <- new_potential(function(x) rowSums(x^2), function(x) x[, 1])
  expect_error(potential_value(bad, matrix(0, 3, 2), grad = TRUE),
               "the potential's `gradient` returned .*; expected a 3 x 2 matrix")
})

test_that("results from C are named lists", {
  net <- icnn(2, hidden = c(4, 4), rank = 1)
  arch <- jkoflow:::arch(net)
  ev <- .Call(jkoflow:::C_icnn_eval, arch, net$alpha_min, net$theta, matrix(0, 2, 3), 2L, 1L)
  expect_named(ev, c("potential", "gradient", "log_det", "hessian", "status"))
  expect_identical(ev$status, "ok")
  pv <- .Call(jkoflow:::C_pot_eval, potential_quadratic(diag(2)), matrix(1, 2, 3), TRUE, 1L)
  expect_named(pv, c("value", "gradient", "status"))
  expect_equal(pv$value, rep(1, 3))
  set.seed(3)
  pool <- matrix(rnorm(2 * 64), 2)
  st <- .Call(jkoflow:::C_jko_step, arch, net$alpha_min, net$theta, pool, pool[, 1:8],
              rep(0, 8), potential_quadratic(diag(2)),
              list(h = 0.1, beta = 1, iters = 3L, batch = 16L, lr = 1e-3, lr_end = 1e-3),
              NULL, 1L, 0L)
  expect_named(st, c("theta", "loss", "iters", "status", "iter", "center", "scale", "L",
                     "pool", "monitor", "monitor_log_density", "monitor_potential"))
  expect_identical(st$iters, 3L)
  expect_null(st$L)
  # with no `std` given, the step takes the pool's moments
  expect_equal(st$center, rowMeans(pool), tolerance = 1e-15)
  expect_equal(st$scale, sqrt(mean(rowSums((pool - rowMeans(pool))^2)) / 63), tolerance = 1e-15)
  expect_equal(st$monitor_potential, rowSums(t(st$monitor)^2) / 2, tolerance = 1e-12)
  fp <- .Call(jkoflow:::C_flow_push, arch, net$alpha_min,
              list(list(theta = st$theta, center = st$center, scale = st$scale)),
              pool[, 1:8], rep(0, 8), 1L)
  expect_named(fp, c("x", "log_density", "status", "step"))
  expect_equal(fp$x, st$monitor, tolerance = 1e-14)
  expect_equal(fp$log_density, st$monitor_log_density, tolerance = 1e-14)
})

# A fit whose first map has rank factors so large that A'A overflows: its
# Hessian is not positive definite (not finite) anywhere.
overflowed_fit <- function() {
  set.seed(4)
  fit <- jko_fit(potential_quadratic(diag(2)), init_gaussian(c(0, 0), 1), h = 0.1,
                 steps = 1, hidden = c(4, 4), rank = 1, batch = 16, iters = 5, pool = 64,
                 monitor = 32, verbose = FALSE)
  A <- icnn_blocks(icnn(2, c(4, 4), 1))$A1
  fit$theta[[1]][A] <- 1e200
  fit
}

test_that("a Hessian that is not positive definite gives NA with a warning, never NaN", {
  fit <- overflowed_fit()
  expect_warning(s <- jko_sample(fit, 20),
                 "a Hessian lost positive definiteness in the map of step 1 at 20 of 20 points: their log-densities are NA")
  expect_true(all(is.na(s$log_density)) && !any(is.nan(s$log_density)))
  expect_warning(d <- jko_density(fit, matrix(0, 3, 2), log = TRUE),
                 "a Hessian lost positive definiteness in the map of step 1 at 3 of 3 points: their densities are NA")
  expect_true(all(is.na(as.numeric(d))) && !any(is.nan(as.numeric(d))))
  net <- icnn(2, c(4, 4), 1)
  net$theta[icnn_blocks(net)$A1] <- 1e200
  expect_warning(ld <- predict(net, matrix(0, 2, 2), type = "logdet"),
                 "a Hessian lost positive definiteness at 2 of 2 points")
  expect_true(all(is.na(ld)) && !any(is.nan(ld)))
})

test_that("jko_control() and the settings given directly make the same fit", {
  set.seed(5)
  a <- jko_fit(potential_double_well(), init_gaussian(0, 0.25), h = 0.1, steps = 2,
               control = jko_control(hidden = c(8, 8), batch = 64, iters = 20, lr = 1e-2),
               verbose = FALSE)
  set.seed(5)
  b <- jko_fit(potential_double_well(), init_gaussian(0, 0.25), h = 0.1, steps = 2,
               hidden = c(8, 8), batch = 64, iters = 20, lr = 1e-2, verbose = FALSE)
  expect_identical(a$theta, b$theta)
  # lr_end follows lr unless given: lr / 100
  expect_equal(b$settings$lr_end, 1e-4)
  expect_equal(jko_control(iters = 10, batch = 100)$pool, 1000L)
  # settings given directly override the control's
  set.seed(5)
  c2 <- jko_fit(potential_double_well(), init_gaussian(0, 0.25), h = 0.1, steps = 1,
                control = jko_control(hidden = c(8, 8), batch = 64, iters = 20),
                iters = 7, verbose = FALSE)
  expect_length(c2$loss_trace[[1]], 7L)
  expect_equal(c2$settings$hidden, c(8L, 8L))
  expect_error(jko_fit(potential_double_well(), init_gaussian(0, 1), foo = 1),
               "unknown argument `foo`: settings are those of jko_control\\(\\)")
  expect_error(jko_fit(potential_double_well(), init_gaussian(0, 1), control = list()),
               "`control` must be a jko_control\\(\\)")
  expect_error(jko_control(iters = 0), "`iters` must be a whole number >= 1")
  expect_error(jko_control(activation = "relu"), "`activation` must be one of")
  expect_output(print(jko_control()), "network 64 x 64, rank 5")
})

test_that("one thread policy: the option jkoflow.threads, checked", {
  old <- options(jkoflow.threads = 1)
  on.exit(options(old), add = TRUE)
  expect_identical(jkoflow:::resolve_threads(NULL), 1L)
  set.seed(6)
  a <- jko_fit(potential_quadratic(diag(2)), init_gaussian(c(0, 0), 1), h = 0.1, steps = 1,
               hidden = c(8, 8), batch = 64, iters = 10, verbose = FALSE)
  set.seed(6)
  b <- jko_fit(potential_quadratic(diag(2)), init_gaussian(c(0, 0), 1), h = 0.1, steps = 1,
               hidden = c(8, 8), batch = 64, iters = 10, threads = 1, verbose = FALSE)
  expect_identical(a$theta, b$theta)
  options(jkoflow.threads = 0)
  expect_error(jkoflow:::resolve_threads(NULL),
               "the option `jkoflow.threads` must be a whole number >= 1")
  options(jkoflow.threads = NULL)
  expect_identical(jkoflow:::resolve_threads(NULL), min(2L, jkoflow:::parallel_cores()))
})

test_that("fits sample in forked children (parallel::mclapply) as in the parent", {
  skip_on_os("windows")
  set.seed(7)
  fit <- jko_fit(potential_quadratic(diag(2)), init_gaussian(c(0, 0), 1), h = 0.1,
                 steps = 2, hidden = c(8, 8), batch = 64, iters = 10, verbose = FALSE,
                 threads = 2)
  draw <- function(i) {
    set.seed(i)
    jko_sample(fit, 3000, threads = 2)$log_density
  }
  # the parent has used its OpenMP threads; each child then runs one
  parent <- lapply(1:2, draw)
  kids <- parallel::mclapply(1:2, draw, mc.cores = 2)
  expect_equal(kids, parent, tolerance = 1e-12)
})

test_that("samples convert and summarise as distributions", {
  set.seed(8)
  fit <- jko_fit(potential_quadratic(diag(2), b = c(1, 0)), init_gaussian(c(0, 0), 1),
                 h = 0.5, steps = 1, hidden = c(8, 8), batch = 64, iters = 20,
                 verbose = FALSE)
  s <- jko_sample(fit, 500)
  df <- as.data.frame(s)
  expect_named(df, c("x1", "x2", "log_density"))
  expect_equal(as.matrix(df[, 1:2]), s$x, ignore_attr = TRUE)
  expect_equal(df$log_density, s$log_density)
  sm <- summary(s)
  expect_equal(sm$statistics$mean, unname(colMeans(s$x)))
  expect_equal(sm$statistics$sd, unname(apply(s$x, 2, sd)))
  expect_equal(sm$statistics$se_mean, sm$statistics$sd / sqrt(500))
  expect_equal(sm$statistics[["q97.5"]], unname(apply(s$x, 2, quantile, 0.975)))
  expect_output(print(sm), "500 independent draws of the flow at step 1 .*effective sample size 500")
  # simulate(): draws as a data frame, reproducible by `seed`, RNG restored
  set.seed(9)
  before <- .Random.seed
  a <- simulate(fit, 50, seed = 11)
  expect_identical(.Random.seed, before)
  b <- simulate(fit, 50, seed = 11)
  expect_identical(a, b)
  expect_equal(attr(a, "seed"), 11, ignore_attr = TRUE)
  set.seed(11)
  expect_equal(as.matrix(a[, 1:2]), jko_sample(fit, 50)$x, ignore_attr = TRUE)
  expect_error(simulate(fit, 0), "`nsim` must be a whole number >= 1")
})

test_that("initial samples take their log-density under either spelling", {
  x <- matrix(rnorm(200), 100, 2)
  ld <- function(x) -rowSums(x^2) / 2 - log(2 * pi)
  a <- init_samples(x, log_density = ld)
  b <- init_samples(x, logdensity = ld)
  expect_identical(a$log_density, b$log_density)
  expect_error(init_samples(x, log_density = 1), "`log_density` must be NULL or a function")
})

test_that("a target's closures keep only what they use", {
  set.seed(10)
  x <- matrix(rnorm(2000 * 10), 2000, 10)
  tg <- target_logistic(x, rbinom(2000, 1, 0.5))
  data_bytes <- length(serialize(tg$x, NULL))
  # the target is about its data, once (it was twice: the prior's closures
  # held another copy)
  expect_lt(length(serialize(tg, NULL)), 1.2 * data_bytes)
  expect_false(exists("potential", envir = environment(tg$init$sample), inherits = FALSE))
})

test_that("a fit reports the rejections of its own evaluations, not the target's lifetime", {
  before <- list(points = 40, rejected = 4, share = 0.1, first = "a", last = "c")
  now <- list(points = 100, rejected = 10, share = 0.1, first = "a", last = "b")
  r <- jkoflow:::rejections_since(now, before)
  expect_equal(r[c("points", "rejected", "share")], list(points = 60, rejected = 6, share = 0.1))
  expect_identical(r$first, "b")
  # nothing rejected before the fit: the target's first message is the fit's first
  r <- jkoflow:::rejections_since(now, list(points = 40, rejected = 0, share = 0, first = NA, last = NA))
  expect_identical(r$first, "a")
  expect_identical(r$rejected, 10)
  expect_null(jkoflow:::rejections_since(NULL, NULL))
})
