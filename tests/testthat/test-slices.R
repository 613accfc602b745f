# A Laplace approximation given the shape of the target's slices along the
# columns of its precision's Cholesky factor (R/slices.R): exact where the
# target is a product of independent laws in those coordinates.

# x2 the log of a Gamma(k2, 1) variable and x1 = b x2 + e, e the log of a
# Gamma(k1, 1) variable: the log-density, normalised, and its gradient.
# Its mode is (log k1 + b log k2, log k2), its Hessian there
# [[k1, -b k1], [-b k1, b^2 k1 + k2]].
slice_target <- function(k1 = 2, k2 = 3, b = 0.8) {
  new_target(function(x) {
    e <- x[, 1] - b * x[, 2]
    k1 * e - exp(e) - lgamma(k1) + k2 * x[, 2] - exp(x[, 2]) - lgamma(k2)
  }, function(x) {
    g1 <- k1 - exp(x[, 1] - b * x[, 2])
    cbind(g1, -b * g1 + k2 - exp(x[, 2]))
  }, dim = 2)
}

# KL(q || pi) of a normalised target by n draws of q, and its standard error
slice_kl <- function(tg, q, n = 20000) {
  x <- q$sample(n)
  lr <- q$log_density(x) + jkoflow:::potential_values(tg, x)
  c(kl = mean(lr), se = stats::sd(lr) / sqrt(n))
}

# KL(N(log k, 1 / k) || the law of log G), G ~ Gamma(k, 1): the Laplace
# approximation's, in closed form (E x = log k, E e^x = k e^(1 / (2 k)))
gauss_kl <- function(k) -0.5 * log(2 * pi * exp(1) / k) - k * log(k) + k * exp(1 / (2 * k)) + lgamma(k)

test_that("in the order that makes the target a product, the slice law is the target", {
  k1 <- 2; k2 <- 3; b <- 0.8
  tg <- slice_target(k1, k2, b)
  m <- c(log(k1) + b * log(k2), log(k2))
  H <- matrix(c(k1, -b * k1, -b * k1, b^2 * k1 + k2), 2)
  lap <- init_gaussian(m, solve(H))
  set.seed(1)
  before <- slice_kl(tg, lap)
  # (the importance-sampling estimate against the closed form: a check of
  # slice_kl() itself)
  expect_lt(abs(before[["kl"]] - (gauss_kl(k1) + gauss_kl(k2))), 4 * before[["se"]])
  q <- jkoflow:::slice_law(m, solve(H), tg, 1, 1:2)
  expect_s3_class(q, "jko_init")
  set.seed(2)
  after <- slice_kl(tg, q)
  # u2 moves x2 with x1 on its line (slope b) and u1 moves x1 alone: the
  # slices are the two log-gamma laws, and T their quantile maps, up to
  # the log-density taken linear over 0.2 units and T's linear pieces
  # (0.05 units of z); the Laplace approximation's KL is 0.18
  expect_lt(after[["kl"]], 0.002)
  set.seed(3)
  x <- q$sample(1e5)
  # E log G = digamma(k), var log G = trigamma(k): 5 standard errors
  mu <- c(digamma(k1) + b * digamma(k2), digamma(k2))
  sds <- sqrt(c(trigamma(k1) + b^2 * trigamma(k2), trigamma(k2)))
  expect_lt(max(abs(colMeans(x) - mu) / (sds / sqrt(1e5))), 5)
  expect_equal(apply(x, 2, stats::sd), sds, tolerance = 0.01)
  # the left tail of log G is exponential: its slice reaches past 8 units
  # only on the widened grid, without which x1 would stay Gaussian
  v <- environment(q$sample)$V
  uk <- environment(q$sample)$uk
  # (u1 moves x1 alone, by u1 / sqrt(k1))
  expect_equal(v[1, 1], (log(stats::qgamma(stats::pnorm(uk[1]), k1)) - log(k1)) * sqrt(k1),
               tolerance = 0.01)
})

test_that("slice_choice() picks the order by ELBO, and the reversed law is exact in its density", {
  k1 <- 2; k2 <- 3; b <- 0.8
  tg <- slice_target(k1, k2, b)
  m <- c(log(k1) + b * log(k2), log(k2))
  S <- solve(matrix(c(k1, -b * k1, -b * k1, b^2 * k1 + k2), 2))
  set.seed(4)
  q <- jkoflow:::slice_choice(init_gaussian(m, S), tg, 1, 4096)
  expect_identical(q$slices, 1:2)
  expect_match(q$label, "shaped along its slices \\(the coordinates' order\\)")
  # the reversed order is a product only approximately (KL about 0.065),
  # but its density is still that of its draws: it integrates to 1 over a
  # grid, and gives the mass of a box that its draws give
  qr <- jkoflow:::slice_law(m, S, tg, 1, 2:1)
  set.seed(5)
  expect_gt(slice_kl(tg, qr)[["kl"]], 0.03)
  g1 <- seq(-6, 5, length.out = 401)
  g2 <- seq(-4, 4, length.out = 401)
  G <- as.matrix(expand.grid(g1, g2))
  dens <- exp(qr$log_density(G))
  cell <- diff(g1[1:2]) * diff(g2[1:2])
  # (the grid's rule: the density is continuous and its mass outside the
  # box under 1e-5)
  expect_equal(sum(dens) * cell, 1, tolerance = 2e-3)
  inbox <- G[, 1] < 0.5 & G[, 2] < 0.8
  p <- sum(dens[inbox]) * cell
  set.seed(6)
  x <- qr$sample(40000)
  ph <- mean(x[, 1] < 0.5 & x[, 2] < 0.8)
  expect_lt(abs(ph - p), 4 * sqrt(p * (1 - p) / 40000) + 2e-3)
})

test_that("on a Gaussian target the slice law is its Laplace approximation", {
  tg <- new_target(function(x) -rowSums(x^2) / 2, function(x) -x, dim = 3)
  q <- jkoflow:::slice_law(rep(0, 3), diag(3), tg, 1, 3:1)
  set.seed(7)
  x <- q$sample(200)
  # quadrature and the pieces' errors: log q within 0.01 of N(0, I)'s out
  # to 4 sds
  inside <- apply(abs(x), 1, max) < 4
  expect_lt(max(abs(q$log_density(x) - rowSums(stats::dnorm(x, log = TRUE)))[inside]), 0.01)
})

test_that("the quantiles of a tabulated density are exact for an exponential tail", {
  # log-density -x on [0, 10]: the exponential law truncated at 10
  tt <- seq(0, 10, by = 0.5)
  p <- c(0.01, 0.3, 0.9)
  v <- jkoflow:::slice_quantiles(tt, -tt, p)
  expect_equal(v, -log(1 - p * (1 - exp(-10))), tolerance = 1e-10)
  # a density that is zero below 2: its quantiles above 2
  l <- ifelse(tt < 2, -Inf, -tt)
  v2 <- jkoflow:::slice_quantiles(tt, l, p)
  expect_equal(v2, 2 - log(1 - p * (1 - exp(-8))), tolerance = 1e-10)
})

test_that("a start far from a product of skewed laws is their slice law", {
  # D independent log-gamma(2) coordinates at different scales: the
  # Laplace approximation's KL is D x 0.109 (the t's larger). At D = 40
  # the slices are tried after the conditional laws (which do not pass);
  # at D = 120, where none are built, before the variational start
  for (D in c(40L, 120L)) {
    s <- exp(seq(-1, 1, length.out = D))
    tg <- new_target(function(x) {
      y <- sweep(x, 2L, s, "/")
      rowSums(2 * y - exp(y)) - D * lgamma(2) - sum(log(s))
    }, function(x) {
      y <- sweep(x, 2L, s, "/")
      sweep(2 - exp(y), 2L, s, "/")
    }, dim = D)
    expect_gt(D * gauss_kl(2), 4)
    set.seed(8)
    q <- suppressWarnings(jkoflow:::stationary_start(tg, NULL, 1))
    expect_match(q$label, "shaped along its slices")
    set.seed(9)
    r <- slice_kl(tg, q, 8192)
    expect_lt(r[["kl"]], 0.01 * D / 40)
  }
})

test_that("a slice law that does not pass leaves the random stream as it was", {
  # a banana: x1 ~ N(0, 1), x2 | x1 ~ N(x1^2, 0.1^2); its slices through
  # the mode cannot bend
  tg <- new_target(function(x) dnorm(x[, 1], log = TRUE) + dnorm(x[, 2], x[, 1]^2, 0.1, log = TRUE),
                   function(x) {
                     r <- (x[, 2] - x[, 1]^2) / 0.01
                     cbind(-x[, 1] + 2 * x[, 1] * r, -r)
                   }, dim = 2)
  lap <- init_gaussian(c(0, 0), diag(c(1, 0.01)))
  set.seed(10)
  before <- .Random.seed
  expect_null(jkoflow:::slice_start(lap, tg, 1, 4096))
  expect_identical(.Random.seed, before)
})
