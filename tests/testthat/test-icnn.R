archs <- list(
  list(dim = 1, hidden = 1, rank = 1),
  list(dim = 2, hidden = c(8, 8), rank = 2),
  list(dim = 5, hidden = c(16, 7, 3), rank = 5),
  list(dim = 17, hidden = c(64, 64), rank = 3),
  list(dim = 32, hidden = c(12, 20), rank = 1)
)

test_that("the new network is the identity map on N(0, I)", {
  set.seed(1)
  for (d in c(1, 2, 12, 32)) {
    net <- icnn(d)
    x <- matrix(rnorm(2000 * d), ncol = d)
    expect_lte(max(abs(predict(net, x, type = "gradient") - x)), 1e-3)
  }
})

test_that("a network with sharper units at the start is still the identity map", {
  set.seed(11)
  for (d in c(1, 3, 12)) {
    net <- icnn(d, hidden = c(32, 32, 16), init_scale = 8)
    x <- matrix(rnorm(2000 * d), ncol = d)
    expect_lte(max(abs(predict(net, x, type = "gradient") - x)), 1e-3)
  }
  # scale 1 draws nothing more: the same network as before the option existed
  set.seed(3)
  a <- icnn(2, hidden = c(8, 8))$theta
  set.seed(3)
  expect_identical(icnn(2, hidden = c(8, 8), init_scale = 1)$theta, a)
  expect_error(icnn(1, init_scale = 0.5), "`init_scale` must be a number >= 1")
  expect_error(jko_control(init_scale = NA), "`init_scale` must be a number >= 1")
})

test_that("gradient, Hessian and log-det agree with finite differences", {
  set.seed(2)
  for (a in archs) {
    for (act in c("softplus", "squared_softplus")) {
      net <- random_net(a$dim, a$hidden, a$rank, act)
      x <- matrix(rnorm(3 * a$dim), 3, a$dim)
      g <- predict(net, x, type = "gradient")
      H <- predict(net, x, type = "hessian")
      ld <- predict(net, x, type = "logdet")
      for (i in 1:3) {
        gfd <- fd_jacobian(function(z) predict(net, z), x[i, ])
        expect_lte(rel_err(g[i, ], gfd), 1e-6)
        Hfd <- fd_jacobian(function(z) predict(net, z, type = "gradient")[1, ],
                           x[i, ])
        expect_lte(rel_err(H[, , i], Hfd), 1e-6)
        ref <- as.numeric(determinant(matrix(H[, , i], a$dim), log = TRUE)$modulus)
        expect_lte(abs(ld[i] - ref) / max(1, abs(ref)), 1e-6)
      }
    }
  }
})

test_that("the Hessian is symmetric positive definite and psi is convex", {
  set.seed(3)
  for (a in archs) {
    net <- random_net(a$dim, a$hidden, a$rank, scale = 2)
    x <- matrix(3 * rnorm(20 * a$dim), 20, a$dim)
    H <- predict(net, x, type = "hessian")
    for (i in 1:20) {
      Hi <- matrix(H[, , i], a$dim)
      expect_lte(max(abs(Hi - t(Hi))), 1e-12 * max(abs(Hi)))
      expect_gt(min(eigen(Hi, symmetric = TRUE, only.values = TRUE)$values), 0)
    }
    y <- matrix(3 * rnorm(20 * a$dim), 20, a$dim)
    px <- predict(net, x); py <- predict(net, y)
    gx <- predict(net, x, type = "gradient")
    gap <- py - px - rowSums(gx * (y - x))
    expect_true(all(gap >= -1e-10 * pmax(1, abs(py))))
  }
})

test_that("predict returns the documented shapes", {
  set.seed(4)
  net <- icnn(3, c(4, 4), 2)
  x <- matrix(rnorm(15), 5, 3)
  expect_length(predict(net, x), 5)
  expect_equal(dim(predict(net, x, type = "gradient")), c(5, 3))
  expect_equal(dim(predict(net, x, type = "hessian")), c(3, 3, 5))
  expect_length(predict(net, x, type = "logdet"), 5)
  expect_length(predict(net, c(1, 2, 3)), 1)
  net1 <- icnn(1, 4, 1)
  expect_length(predict(net1, c(0.1, 0.2, 0.3)), 3)
})

test_that("networks round-trip through saveRDS", {
  set.seed(5)
  net <- random_net(4, c(6, 5), 2)
  f <- tempfile(fileext = ".rds")
  saveRDS(net, f)
  net2 <- readRDS(f)
  x <- matrix(rnorm(8), 2, 4)
  expect_identical(predict(net2, x, type = "logdet"), predict(net, x, type = "logdet"))
  expect_output(print(net2), "dimension 4, 2 layers")
})

test_that("bad input gives errors that name the argument", {
  net <- icnn(2, 4, 1)
  expect_error(predict(net, matrix(1, 3, 3)), "`x` must have 2 columns")
  expect_error(predict(net, matrix(NA_real_, 3, 2)), "`x` must not contain NA")
  expect_error(predict(net, matrix(NaN, 3, 2)), "`x` must not contain NA")
  expect_error(predict(net, matrix(Inf, 3, 2)), "`x` must not contain infinite")
  expect_error(predict(net, matrix("a", 3, 2)), "`x` must be a numeric matrix")
  expect_error(predict(net, matrix(0, 0, 2)), "`x` must have at least one row")
  expect_error(icnn(0), "`dim` must be a whole number >= 1")
  expect_error(icnn(2.5), "`dim` must be a whole number >= 1")
  expect_error(icnn("a"), "`dim` must be a whole number >= 1")
  expect_error(icnn(2, hidden = c(4, 0)), "`hidden` must be a vector of whole numbers >= 1")
  expect_error(icnn(2, hidden = 3.5), "`hidden` must be a vector of whole numbers >= 1")
  expect_error(icnn(2, rank = -1), "`rank` must be a whole number >= 1")
  expect_error(icnn(2, rank = NA), "`rank` must be a whole number >= 1")
  expect_error(icnn(2, activation = "relu"), "`activation` must be one of")
  expect_error(predict(net, matrix(0, 2, 2), type = "foo"),
               "`type` must be one of \"potential\", \"gradient\", \"hessian\", \"logdet\", not \"foo\"", fixed = TRUE)
})
