# A fitted law as the start of a new flow (init_fit()): densities through
# the chain, the closed form of the JKO scheme for the Ornstein-Uhlenbeck
# process, saveRDS() round trips, and input checks.

# The JKO scheme for Phi = a x^2 / 2 (1-D, beta = 1) from N(m, s^2) stays
# Gaussian: each step maps x to m' + lambda (x - m) with m' = m / (1 + a h)
# and lambda the positive root of lambda^2 s^2 (1/h + a) - lambda s^2 / h - 1 = 0
# (the first-order condition of the step's free energy in lambda).
jko_ou_law <- function(m, s, a, h, steps) {
  for (k in seq_len(steps)) {
    A <- s^2 * (1 / h + a)
    B <- s^2 / h
    lambda <- (B + sqrt(B^2 + 4 * A)) / (2 * A)
    m <- m / (1 + a * h)
    s <- lambda * s
  }
  c(mean = m, sd = s)
}

ctl <- jko_control(hidden = c(8, 8), batch = 256, iters = 150)
pot <- potential_quadratic(1)
chain <- local({
  set.seed(21)
  f1 <- jko_fit(pot, init_gaussian(2, 0.25), h = 0.25, steps = 2, control = ctl,
                verbose = FALSE)
  f2 <- jko_fit(pot, init_fit(f1), h = 0.25, steps = 1, control = ctl, verbose = FALSE)
  f3 <- jko_fit(pot, init_fit(f2), h = 0.25, steps = 1, control = ctl, verbose = FALSE)
  list(f1 = f1, f2 = f2, f3 = f3)
})

test_that("a chained flow's law matches the JKO scheme's Gaussian law of one flow", {
  law <- jko_ou_law(2, 0.5, 1, 0.25, 4)
  set.seed(22)
  n <- 4000
  q <- jko_sample(chain$f3, n)
  xp <- matrix(rnorm(n, law[["mean"]], law[["sd"]]), ncol = 1L)
  lq <- jko_density(chain$f3, xp, log = TRUE)$log_density
  # SymKL = E_q[log q - log p] + E_p[log p - log q], each estimated from n
  # draws with the fit's own exact densities. A mean off by 0.1 sd, or an
  # sd off by 7%, costs 0.01: the trained maps must do better than that.
  kl_qp <- mean(q$log_density - dnorm(q$x[, 1], law[["mean"]], law[["sd"]], log = TRUE))
  kl_pq <- mean(dnorm(xp[, 1], law[["mean"]], law[["sd"]], log = TRUE) - lq)
  expect_lt(abs(kl_qp + kl_pq), 0.01)
})

test_that("samples of a chained flow carry the log-density that pulling them back gives", {
  set.seed(23)
  s <- jko_sample(chain$f3, 300)
  d <- jko_density(chain$f3, s$x, log = TRUE)
  # push-forward (log-dets along the way) and pull-back (Newton inversion
  # to 1e-10) of the same maps agree to the inversion's accuracy
  expect_lt(max(abs(d$log_density - s$log_density)), 1e-6)
})

test_that("a chained flow's density integrates to one", {
  x <- seq(-4, 6, by = 0.01)
  d <- as.numeric(jko_density(chain$f3, x))
  # trapezoid rule on a smooth density: error far below 1e-3; the mass
  # beyond [-4, 6] of a law near N(0.7, 0.9^2) is below 1e-5
  expect_lt(abs(sum(d) * 0.01 - 1), 1e-3)
})

test_that("init_fit() at step 0 is the fit's own rho_0", {
  x <- c(-1, 0.5, 2, 3)
  ld <- chain$f1$init$base$log_density(matrix(x, ncol = 1L))
  law0 <- init_fit(chain$f1, step = 0)
  expect_length(law0$nodes, 0L)
  expect_equal(jkoflow:::law_log_density(law0, matrix(x, ncol = 1L))$log_density, ld,
               tolerance = 1e-10)
  # and at a time: t = 0.25 is step 1, the law of rho_0 and one map
  expect_length(init_fit(chain$f1, time = 0.25)$nodes, 1L)
})

test_that("a fit of a fit of a fit survives saveRDS() and readRDS()", {
  f <- tempfile(fileext = ".rds")
  on.exit(unlink(f), add = TRUE)
  saveRDS(chain$f3, f)
  g <- readRDS(f)
  x <- c(-1, 0.3, 1.5)
  expect_identical(jko_density(g, x)$log_density, jko_density(chain$f3, x)$log_density)
  set.seed(5); a <- jko_sample(chain$f3, 50)
  set.seed(5); b <- jko_sample(g, 50)
  expect_identical(a$x, b$x)
  expect_identical(a$log_density, b$log_density)
  # each fit below is written once: three chained fits cost about three
  # times one, not 2^depth times
  f1 <- tempfile(fileext = ".rds")
  on.exit(unlink(f1), add = TRUE)
  saveRDS(chain$f1, f1)
  expect_lt(file.size(f), 4 * file.size(f1))
})

test_that("init_fit() checks its arguments", {
  expect_error(init_fit(list()), "`fit` must be a fit from jko_fit()")
  expect_error(init_fit(chain$f1, step = 3), "`step` must be a whole number in 0..2")
  expect_error(init_fit(chain$f1, time = 2), "`time` must be within the fitted range")
  expect_error(init_fit(chain$f1, step = 1, time = 0.25), "give `step` or `time`, not both")
})

test_that("a chain without a log-density at the bottom samples, and says why it has no density", {
  set.seed(24)
  f0 <- jko_fit(pot, init_samples(matrix(rnorm(500), ncol = 1L)), h = 0.25, steps = 1,
                control = ctl, verbose = FALSE)
  f1 <- jko_fit(pot, init_fit(f0), h = 0.25, steps = 1, control = ctl, verbose = FALSE)
  expect_null(init_fit(f0)$log_density)
  expect_equal(dim(jko_sample(f1, 10)$x), c(10L, 1L))
  expect_error(jko_density(f1, 0), "densities need the log-density of the initial distribution")
})
