# Argument validation of every exported function: each bad argument stops
# before any work, with a message that names the argument and what was
# expected.

small_fit <- function(steps = 2, ...) {
  jko_fit(potential_quadratic(diag(2)), init_gaussian(c(0, 0), 1), h = 0.1,
          steps = steps, hidden = 4, rank = 1, batch = 16, iters = 5,
          pool = 64, monitor = 32, verbose = FALSE, ...)
}

test_that("jko_fit() rejects bad numbers, naming the argument", {
  pot <- potential_quadratic(diag(2))
  ini <- init_gaussian(c(0, 0), 1)
  fit1 <- function(...) {
    args <- utils::modifyList(list(potential = pot, init = ini, h = 0.1, steps = 1,
                                   hidden = 4, rank = 1, batch = 8, iters = 2,
                                   verbose = FALSE), list(...))
    do.call(jko_fit, args)
  }
  for (bad in list(0, -1, NA, Inf, "1", c(0.1, 0.2))) {
    expect_error(fit1(h = bad), "`h` must be a single positive finite number",
                 class = "jkoflow_error")
    expect_error(fit1(beta = bad), "`beta` must be a single positive finite number")
    expect_error(fit1(lr = bad), "`lr` must be a single positive finite number")
  }
  for (arg in c("iters", "batch", "threads", "pool", "monitor")) {
    for (bad in list(0, -2, 1.5, NA, Inf, "3", 1:2)) {
      expect_error(do.call(fit1, stats::setNames(list(bad), arg)),
                   sprintf("`%s` must be a whole number >= 1", arg))
    }
  }
  # a time-accurate flow may have no step (the law of its start)
  for (bad in list(-2, 1.5, NA, Inf, "3", 1:2)) {
    expect_error(fit1(steps = bad), "`steps` must be a whole number >= 0")
  }
  expect_error(fit1(hidden = c(4, 0)), "`hidden` must be a vector of whole numbers >= 1")
  expect_error(fit1(hidden = c(4, 2.5)), "`hidden` must be a vector of whole numbers")
  expect_error(fit1(rank = 0), "`rank` must be a whole number >= 1")
  expect_error(fit1(verbose = NA), "`verbose` must be TRUE or FALSE")
  expect_error(fit1(activation = "relu"), "`activation` must be one of")
  expect_error(fit1(alpha_min = -1), "`alpha_min` must be a single positive")
})

test_that("jko_fit() rejects what is not a potential or an initial distribution", {
  ini <- init_gaussian(c(0, 0), 1)
  expect_error(jko_fit(function(x) rowSums(x^2), ini),
               "`potential` must be a jkoflow potential .* not a function")
  expect_error(jko_fit(list(code = 1), ini), "`potential` must be a jkoflow potential")
  expect_error(jko_fit(potential_quadratic(diag(2)), matrix(0, 10, 2)),
               "`init` must be an initial distribution from init_gaussian\\(\\)")
  expect_error(jko_fit(potential_quadratic(diag(3)), ini),
               "`potential` has dimension 3 but `init` has dimension 2")
  expect_error(jko_fit(potential_gmm(rbind(c(0, 0, 0), c(1, 1, 1))), ini),
               "`potential` has dimension 3 but `init` has dimension 2")
  expect_error(jko_fit(potential_fn(function(x) rowSums(x^2), dim = 3), ini),
               "`potential` has dimension 3 but `init` has dimension 2") |>
    suppressMessages()
})

test_that("potential constructors check their arguments", {
  expect_error(potential_quadratic(matrix(c(1, NA, 0, 1), 2)), "`A` must be a finite numeric matrix")
  expect_error(potential_quadratic("a"), "`A` must be a finite numeric matrix")
  expect_error(potential_quadratic(matrix(1:6, 2)), "`A` must be a square matrix, not 2 x 3")
  expect_error(potential_quadratic(matrix(c(1, 2, 0, 1), 2)), "`A` must be symmetric")
  expect_error(potential_quadratic(diag(2), b = 1:3), "`b` must be a finite numeric vector of length 2")
  expect_error(potential_quadratic(diag(2), b = c(0, Inf)), "`b` must be a finite numeric vector")
  expect_error(potential_gmm(c(0, NaN)), "`means` must be a finite numeric matrix")
  expect_error(potential_gmm(matrix(0, 0, 2)), "`means` must have at least one row")
  expect_error(potential_gmm(array(1, c(2, 2, 2))), "`means` must be a matrix \\(components in rows\\) or a vector, not an array of 3 dimensions")
  expect_error(potential_gmm(c(-1, 1), sd = 0), "`sd` must be a single positive finite number")
  expect_error(potential_gmm(c(-1, 1), weights = c(1, -1)), "`weights` must be 2 positive numbers")
  expect_error(potential_gmm(c(-1, 1), weights = 1), "`weights` must be 2 positive numbers")
  expect_error(potential_double_well(center = 0), "`center` must be a single positive finite number")
  expect_error(potential_double_well(height = NA), "`height` must be a single positive finite number")
  expect_error(potential_fn("f"), "`f` must be a function of an n x D matrix, not \"f\"")
  expect_error(potential_fn(sum, grad = 1), "`grad` must be NULL or a function")
  expect_error(potential_fn(sum, grad = sum, dim = 0), "`dim` must be a whole number >= 1")
  expect_error(target_logdensity(NULL), "`logd` must be a function of an n x D matrix, not NULL")
  expect_error(target_logdensity(sum, grad = "g"), "`grad` must be NULL or a function")
  expect_error(target_logdensity(sum, grad = sum, dim = 1.5), "`dim` must be a whole number >= 1")
})

test_that("potential_value() checks the potential, the points and grad", {
  pot <- potential_quadratic(diag(2))
  expect_error(potential_value(diag(2), matrix(0, 1, 2)), "`potential` must be a jkoflow potential")
  expect_error(potential_value(pot, matrix(0, 1, 3)), "`x` must have 2 columns \\(the dimension\\), not 3")
  expect_error(potential_value(pot, matrix(c(0, NA), 1)), "`x` must not contain NA or NaN")
  expect_error(potential_value(pot, matrix(c(0, Inf), 1)), "`x` must not contain infinite values")
  expect_error(potential_value(pot, matrix("a", 1, 2)), "`x` must be a numeric matrix")
  expect_error(potential_value(pot, matrix(0, 0, 2)), "`x` must have at least one row")
  expect_error(potential_value(pot, array(0, c(1, 2, 2))), "`x` must be a numeric matrix, not an array with 3")
  expect_error(potential_value(pot, c(0, 0), grad = "yes"), "`grad` must be TRUE or FALSE")
})

test_that("initial distributions check their arguments", {
  expect_error(init_gaussian("0"), "`mean` must be a finite numeric vector")
  expect_error(init_gaussian(c(0, NA)), "`mean` must be a finite numeric vector")
  expect_error(init_gaussian(numeric()), "`mean` must be a finite numeric vector")
  expect_error(init_gaussian(c(0, 0), cov = c(1, 1, 1)), "`cov` must be a number, a vector of length 2")
  expect_error(init_gaussian(c(0, 0), cov = diag(3)), "`cov` must be a 2 x 2 matrix")
  expect_error(init_gaussian(c(0, 0), cov = -1), "`cov` must be positive definite")
  expect_error(init_gaussian(c(0, 0), cov = matrix(c(1, 0.5, 0, 1), 2)), "`cov` must be symmetric")
  expect_error(init_gaussian(0, cov = NaN), "`cov` must be a finite number, vector or matrix")
  expect_error(init_samples(list(1, 2)), "`x` must be a numeric matrix")
  expect_error(init_samples(matrix(c(1, NA, 3, 4), 2)), "`x` must not contain NA or NaN")
  expect_error(init_samples(matrix(c(1, -Inf, 3, 4), 2)), "`x` must not contain infinite values")
  expect_error(init_samples(matrix(rnorm(20), 10), logdensity = 1), "`logdensity` must be NULL or a function")
})

test_that("the fit's verbs check fit, n, points, step and time", {
  set.seed(1)
  fit <- small_fit(steps = 2)
  for (f in list(jko_sample, jko_continue, summary.jko_fit)) {
    expect_error(f(list(theta = list())), "must be a fit from jko_fit\\(\\)")
  }
  expect_error(jko_density(NULL, 0), "`fit` must be a fit from jko_fit\\(\\), not NULL")
  expect_error(jko_sample(fit, 0), "`n` must be a whole number >= 1")
  expect_error(jko_sample(fit, 10.5), "`n` must be a whole number >= 1")
  expect_error(jko_sample(fit, 10, step = 3), "`step` must be a whole number in 0..2 \\(the fitted steps\\), not 3")
  expect_error(jko_sample(fit, 10, step = -1), "`step` must be a whole number in 0..2")
  expect_error(jko_sample(fit, 10, step = 1.5), "`step` must be a whole number in 0..2")
  expect_error(jko_sample(fit, 10, time = 0.5), "`time` must be within the fitted range \\[0, 0.2\\]")
  expect_error(jko_sample(fit, 10, time = -0.1), "`time` must be a single non-negative number")
  expect_error(jko_sample(fit, 10, step = 1, time = 0.1), "give `step` or `time`, not both")
  expect_error(jko_sample(fit, 10, threads = 0), "`threads` must be a whole number >= 1")
  expect_error(jko_density(fit, matrix(0, 2, 3)), "`x` must have 2 columns \\(the dimension\\), not 3")
  expect_error(jko_density(fit, c(0, NaN)), "`x` must not contain NA or NaN")
  expect_error(jko_density(fit, c(0, Inf)), "`x` must not contain infinite values")
  expect_error(jko_density(fit, "a"), "`x` must be a numeric matrix")
  expect_error(jko_density(fit, c(0, 0), time = 1), "`time` must be within the fitted range")
  expect_error(jko_density(fit, c(0, 0), step = 5), "`step` must be a whole number in 0..2")
  expect_error(jko_density(fit, c(0, 0), log = NA), "`log` must be TRUE or FALSE")
  expect_error(jko_density(fit, c(0, 0), tol = 0), "`tol` must be a single positive finite number")
  expect_error(jko_density(fit, c(0, 0), maxit = 0), "`maxit` must be a whole number >= 1")
  expect_error(jko_continue(fit, steps = 0), "`steps` must be a whole number >= 1")
  expect_error(jko_continue(fit, verbose = "no"), "`verbose` must be TRUE or FALSE")
  expect_error(jko_continue(fit, threads = -1), "`threads` must be a whole number >= 1")
  expect_error(plot(fit, what = "nothing"),
               "`what` must be among \"pairs\", \"marginals\", \"loss\"", fixed = TRUE)
})

test_that("icnn() and predict() check their arguments", {
  expect_error(icnn(0), "`dim` must be a whole number >= 1")
  expect_error(icnn(2, hidden = numeric()), "`hidden` must be a vector of whole numbers >= 1")
  expect_error(icnn(2, hidden = rep(2, 33)), "`hidden` must have at most 32 layers, not 33")
  expect_error(icnn(2, rank = 1.5), "`rank` must be a whole number >= 1")
  expect_error(icnn(2, alpha_min = 0), "`alpha_min` must be a single positive")
  net <- icnn(2, hidden = 4, rank = 1)
  expect_error(predict(net, matrix(0, 1, 3)), "`x` must have 2 columns")
  expect_error(predict(net, c(NA, 0)), "`x` must not contain NA")
  expect_error(predict(net, c(0, 0), type = "jacobian"), "`type` must be one of \"potential\"", fixed = TRUE)
  expect_error(predict(net, c(0, 0), threads = "2"), "`threads` must be a whole number >= 1")
})

test_that("threads beyond the machine's cores are clamped", {
  expect_equal(jkoflow:::check_threads(1e6), jkoflow:::parallel_cores())
  set.seed(2)
  fit <- small_fit(steps = 1, threads = 10000)
  expect_equal(jkoflow:::resolve_threads(10000), jkoflow:::parallel_cores())
  # the clamped fit computes what a single thread computes
  x <- matrix(c(0.3, -0.2, 1, 2), 2)
  expect_equal(as.numeric(jko_density(fit, x, threads = 1e4, log = TRUE)),
               as.numeric(jko_density(fit, x, threads = 1, log = TRUE)), tolerance = 1e-12)
})

test_that("a start that is not a law is refused before the target is probed", {
  # (found by the fuzz test: a probe of a target of unknown dimension read
  # `init$dim` of a character vector; the filter read it of a function)
  pot <- potential_fn(function(x) rowSums(x^2) / 2, grad = function(x) x)
  expect_error(jko_fit(pot, init = character(0), steps = 1, verbose = FALSE),
               "`init` must be an initial distribution from init_gaussian\\(\\), init_samples\\(\\) or init_fit\\(\\), not")
  expect_error(jko_filter(pot, 1, 0.1, init = function(x, y) x, verbose = FALSE),
               "`init` must be an initial distribution from init_gaussian\\(\\)")
})
