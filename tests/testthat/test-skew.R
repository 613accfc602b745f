# A law moved along one coordinate it holds Gaussian (R/skew.R): an exact
# change of variables that gives that coordinate the shape of the target's
# slice and lets the others' sds follow it.

# KL(q || pi) and log Z by importance sampling from q, on n draws
skew_is <- function(tg, q, n = 20000) {
  x <- q$sample(n)
  lw <- -jkoflow:::potential_values(tg, x) - q$log_density(x)
  m <- max(lw)
  list(log_z = m + log(mean(exp(lw - m))), kl = m + log(mean(exp(lw - m))) - mean(lw))
}

# x1 the log of a scale (the log-density -k x1 - S/2 e^(-2 x1), normalised
# by 1/2 Gamma(k/2) (2/S)^(k/2): w = e^(-2 x1) is Gamma(k/2, rate S/2)),
# an exponential right tail; x2 ~ N(0, 1) apart
skew_target <- function(k = 10, S = 20) {
  lz <- log(0.5) + lgamma(k / 2) + k / 2 * log(2 / S)
  new_target(function(x) -k * x[, 1] - S / 2 * exp(-2 * x[, 1]) - lz + dnorm(x[, 2], log = TRUE),
             function(x) cbind(-k + S * exp(-2 * x[, 1]), -x[, 2]), dim = 2)
}

test_that("the layer gives a Laplace approximation the shape of a skewed coordinate", {
  tg <- skew_target()
  # the Laplace approximation: mode log(S / k) / 2, curvature 2 k
  q <- init_gaussian(c(log(2) / 2, 0), diag(c(1 / 20, 1)))
  set.seed(1)
  before <- skew_is(tg, q)
  sq <- jkoflow:::skew_layer(q, tg, 1, 1L)
  expect_s3_class(sq, "jko_init")
  expect_match(sq$label, "skewed along coordinate 1$")
  set.seed(2)
  after <- skew_is(tg, sq)
  # the law's centre is the target's mode and its sd the curvature's: the
  # layer's T is the target's own quantile map, up to its linear pieces
  # (0.05 sds long) and the slice's trapezoid rule; the Laplace
  # approximation's KL is 0.043 (10^5 draws)
  expect_gt(before$kl, 0.03)
  expect_lt(after$kl, 0.002)
  expect_lt(abs(after$log_z), 0.005)
  # the target's mean of x1: E log(w) / -2, w ~ Gamma(5, rate 10)
  expect_equal(sq$mean[1], -(digamma(5) - log(10)) / 2, tolerance = 0.01)
})

test_that("its density is its draws' by the change of variables", {
  tg <- skew_target()
  q <- init_gaussian(c(0.3, 0.1), matrix(c(0.06, 0.02, 0.02, 1), 2))
  sq <- jkoflow:::skew_layer(q, tg, 1, 1L)
  fwd <- environment(sq$sample)$forward
  set.seed(3)
  x <- q$sample(20)
  y <- fwd(x)
  # log q_F(F(x)) = log q(x) - log |det dF/dx|, the Jacobian by central
  # differences (error of order 1e-10 off the pieces' knots)
  ljac <- vapply(seq_len(nrow(x)), function(i) {
    J <- vapply(1:2, function(k) {
      e <- 1e-6 * (1:2 == k)
      (fwd(rbind(x[i, ] + e)) - fwd(rbind(x[i, ] - e))) / 2e-6
    }, numeric(2))
    log(abs(det(J)))
  }, 0)
  expect_lt(max(abs(sq$log_density(y) - (q$log_density(x) - ljac))), 1e-5)
  # and x2, correlated with x1 in q (the slope of its line 1/3), moves
  # with x1 along that line
  expect_equal(y[, 2] - x[, 2], (y[, 1] - x[, 1]) / 3, tolerance = 1e-9)
})

# x1 ~ N(0, 1), x2 given x1 ~ N(0, e^(2 g x1)), x3 ~ N(0, 1): normalised;
# KL(N(0, I) || pi) = (e^(2 g^2) - 1) / 2
scale_target <- function(g = 0.5) {
  new_target(function(x) {
    dnorm(x[, 1], log = TRUE) + dnorm(x[, 2], 0, exp(g * x[, 1]), log = TRUE) + dnorm(x[, 3], log = TRUE)
  }, function(x) {
    cbind(-x[, 1] + g * x[, 2]^2 * exp(-2 * g * x[, 1]) - g, -x[, 2] * exp(-2 * g * x[, 1]), -x[, 3])
  }, dim = 3)
}

test_that("the others' sds follow the coordinate as the target's do", {
  tg <- scale_target()
  q <- init_gaussian(rep(0, 3), diag(3))
  set.seed(4)
  before <- skew_is(tg, q)
  expect_equal(before$kl, (exp(0.5) - 1) / 2, tolerance = 0.05)
  sq <- jkoflow:::skew_layer(q, tg, 1, 1L)
  # the rates, from the Hessian at x1 = -1/2 and 1/2: x2's precision
  # e^(-2 g x1) gives sinh(g) (g to first order), x3's none (and the
  # slice along x1 is N(-g, 1): T is the identity)
  expect_equal(environment(sq$sample)$lambda, c(sinh(0.5), 0), tolerance = 1e-4)
  set.seed(5)
  after <- skew_is(tg, sq)
  # x2's sd e^(sinh(g) x1) for e^(g x1): KL (e^(2 (sinh(g) - g)^2) - 1) / 2,
  # 4.5e-4
  expect_lt(after$kl, 0.002)
  expect_lt(abs(after$log_z), 0.005)
})

test_that("skewed_choice() takes the layer where its ELBO is larger, else leaves all as it was", {
  # (g = 0.8: KL(N(0, I) || pi) 1.4)
  tg <- scale_target(0.8)
  q <- init_gaussian(rep(0, 3), diag(3))
  q$conditional <- 3L  # as a law along x3 would be
  set.seed(6)
  sq <- jkoflow:::skewed_choice(q, tg, 1, 4096L)
  expect_identical(sq$skew, 1L)
  # on the target's own law the KL is 0, under skew_kl_min: q as it was,
  # and the random stream too
  tz <- new_target(function(x) rowSums(dnorm(x, log = TRUE)), function(x) -x, dim = 3)
  set.seed(7)
  rs <- .Random.seed
  expect_identical(jkoflow:::skewed_choice(q, tz, 1, 4096L), q)
  expect_identical(.Random.seed, rs)
})
