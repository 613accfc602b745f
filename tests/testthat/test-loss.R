# The parameter gradient of the JKO step loss (mean |y - x|^2 / (2h) + Phi(y)
# - log det Hess psi(x) / beta, y = grad psi(x)) against
# central finite differences over every parameter block.

jko_loss <- function(net, theta, x, potential, h, beta) {
  .Call(jkoflow:::C_jko_loss, jkoflow:::arch(net), net$alpha_min, theta, t(x),
        potential, h, beta, 1L)
}

check_loss_gradient <- function(net, x, potential, h = 0.1, beta = 1.3,
                                eps = 1e-6, per_block = 12) {
  g <- jko_loss(net, net$theta, x, potential, h, beta)[[2L]]
  for (nm in names(icnn_blocks(net))) {
    idx <- icnn_blocks(net)[[nm]]
    idx <- idx[unique(round(seq(1, length(idx), length.out = min(per_block, length(idx)))))]
    fd <- vapply(idx, function(j) {
      tp <- net$theta; tm <- net$theta
      tp[j] <- tp[j] + eps; tm[j] <- tm[j] - eps
      (jko_loss(net, tp, x, potential, h, beta)[[1L]] -
         jko_loss(net, tm, x, potential, h, beta)[[1L]]) / (2 * eps)
    }, 0)
    # c_1 of a one-layer network only shifts psi: its gradient is exactly 0
    scale <- max(abs(g[icnn_blocks(net)[[nm]]]), 1e-6)
    expect_lte(max(abs(fd - g[idx])) / scale, 1e-5, label = paste("block", nm))
  }
}

test_that("the loss gradient matches finite differences (quadratic potential)", {
  set.seed(11)
  for (a in list(list(d = 1, w = 3, r = 1), list(d = 2, w = c(6, 5), r = 2),
                 list(d = 3, w = c(5, 4, 3), r = 3), list(d = 5, w = c(8, 8), r = 5),
                 list(d = 9, w = c(7, 6, 5), r = 2))) {
    net <- random_net(a$d, a$w, a$r)
    A <- crossprod(matrix(rnorm(a$d^2), a$d)) + diag(a$d)
    pot <- potential_quadratic(A, rnorm(a$d))
    x <- matrix(rnorm(6 * a$d), 6, a$d)
    check_loss_gradient(net, x, pot)
  }
})

test_that("the loss gradient matches finite differences (R function of the batch)", {
  set.seed(12)
  net <- random_net(3, c(6, 4), 2, activation = "squared_softplus")
  calls <- 0
  f <- function(x) { calls <<- calls + 1; rowSums(x^4) / 4 + sin(x[, 1]) }
  g <- function(x) { gr <- x^3; gr[, 1] <- gr[, 1] + cos(x[, 1]); gr }
  pot <- potential_fn(f, g)
  x <- matrix(rnorm(15), 5, 3)
  check_loss_gradient(net, x, pot)
  expect_gt(calls, 0)
  # the built-in Gaussian mixture, too
  pot2 <- potential_gmm(matrix(rnorm(6), 2, 3), sd = 0.8, weights = c(1, 2))
  check_loss_gradient(net, x, pot2)
})

test_that("the loss value is the JKO objective", {
  set.seed(13)
  net <- random_net(2, c(5, 5), 2)
  pot <- potential_quadratic(diag(c(1, 2)), c(0.5, -1))
  x <- matrix(rnorm(8), 4, 2)
  h <- 0.2; beta <- 0.7
  y <- predict(net, x, type = "gradient")
  ref <- mean(rowSums((y - x)^2) / (2 * h) + potential_value(pot, y) -
                predict(net, x, type = "logdet") / beta)
  expect_equal(jko_loss(net, net$theta, x, pot, h, beta)[[1L]], ref, tolerance = 1e-12)
})

test_that("a batch split in blocks and over threads gives the mean of its halves", {
  # the kernels pass a thread's part of the batch in blocks of 128 samples,
  # by hand below D = 8 (by the rank matrices M_k where D + 1 < 2 r, else by
  # the projections) and through BLAS from D = 8: the loss and gradient of
  # 300 samples (blocks of 128, 128, 44 on one thread; 150 a thread on two)
  # are the means of those of the halves, computed in one block each
  set.seed(15)
  for (a in list(list(d = 2, w = c(16, 12), r = 3), list(d = 4, w = c(9, 12), r = 2),
                 list(d = 9, w = c(10, 8), r = 2))) {
    net <- random_net(a$d, a$w, a$r)
    pot <- potential_quadratic(diag(a$d) + 0.3, rnorm(a$d))
    x <- matrix(rnorm(300 * a$d), 300, a$d)
    half <- function(i) jko_loss(net, net$theta, x[i, , drop = FALSE], pot, 0.1, 1.3)
    h1 <- half(1:150); h2 <- half(151:300)
    for (th in 1:2) {
      all <- .Call(jkoflow:::C_jko_loss, jkoflow:::arch(net), net$alpha_min, net$theta,
                   t(x), pot, 0.1, 1.3, as.integer(th))
      expect_equal(all[[1L]], (h1[[1L]] + h2[[1L]]) / 2, tolerance = 1e-12)
      expect_equal(all[[2L]], (h1[[2L]] + h2[[2L]]) / 2, tolerance = 1e-10)
    }
  }
})

test_that("built-in potentials have the documented values and gradients", {
  set.seed(14)
  x <- matrix(rnorm(12), 4, 3)
  means <- matrix(rnorm(6), 2, 3); w <- c(0.3, 0.7); sd <- 0.9
  dens <- sapply(1:4, function(i) sum(w * sapply(1:2, function(k)
    prod(dnorm(x[i, ], means[k, ], sd)))))
  pot <- potential_gmm(means, sd, w)
  expect_equal(potential_value(pot, x), -log(dens), tolerance = 1e-12)
  dw <- potential_double_well(center = 1.5, height = 2)
  expect_equal(potential_value(dw, x),
               2 * ((x[, 1] / 1.5)^2 - 1)^2 + rowSums(x[, -1]^2) / 2, tolerance = 1e-12)
  for (p in list(pot, dw, potential_quadratic(diag(3) + 0.5, 1:3))) {
    gr <- potential_value(p, x, grad = TRUE)$gradient
    fd <- t(sapply(1:4, function(i) fd_jacobian(function(z) potential_value(p, z), x[i, ])))
    expect_lte(rel_err(gr, fd), 1e-7)
  }
})

test_that("the kernels' 8-wide loops give the 4-wide loops' loss, gradient and step to the bit", {
  # where the CPU has AVX-512 the loops over units take 8 at a time, each
  # lane doing what a 4-wide lane does in the same order: the results are
  # identical, at widths with 8-, 4- and 1-unit remainders, by hand (D < 8)
  # and through BLAS (D >= 8)
  skip_if(jkoflow:::kernel_lanes(TRUE) != 8L, "the CPU runs no 8-wide loops")
  on.exit(jkoflow:::kernel_lanes(TRUE), add = TRUE)
  set.seed(16)
  for (a in list(list(d = 2, w = c(21, 16), r = 3), list(d = 5, w = c(8, 13), r = 2),
                 list(d = 9, w = c(19, 24), r = 2))) {
    net <- random_net(a$d, a$w, a$r)
    pot <- potential_quadratic(diag(a$d) + 0.3, rnorm(a$d))
    x <- matrix(rnorm(200 * a$d), 200, a$d)
    run <- function(lanes) {
      expect_equal(jkoflow:::kernel_lanes(lanes == 8L), lanes)
      loss <- .Call(jkoflow:::C_jko_loss, jkoflow:::arch(net), net$alpha_min, net$theta,
                    t(x), pot, 0.1, 1.3, 2L)
      step <- .Call(jkoflow:::C_jko_step, jkoflow:::arch(net), net$alpha_min, net$theta,
                    t(x), t(x[1:3, , drop = FALSE]), rep(0, 3), pot,
                    list(h = 0.1, beta = 1.3, iters = 5L, batch = 64L, lr = 5e-3, lr_end = 5e-4),
                    list(center = rep(0, a$d), scale = 1), 2L, 0L)
      list(loss = loss, step = step)
    }
    wide <- run(8L)
    narrow <- run(4L)
    expect_identical(wide, narrow)
    expect_false(identical(wide$step$theta, net$theta))  # (the step trained)
  }
})
