# Sparse Hessians by grouped finite differences (hessian_plan(),
# planned_hessian(), R/conditional.R): the conditional laws' Hessians in a
# few gradients where the target's Hessian is sparse.

# A hierarchy of n pairs: mu ~ N(0, 1), a_i ~ N(mu, 1), b_i ~ N(a_i, 1/2),
# and a quartic a_i^4 / 12 on each a_i (a third derivative 2 a_i). Its
# potential f's Hessian: f_mu,mu = n + 1, f_mu,a_i = -1, f_a_i,a_i =
# 3 + a_i^2, f_a_i,b_i = -2, f_b_i,b_i = 2, the rest 0.
sparse_target <- function(n = 20) {
  A <- 1 + seq_len(n)
  B <- 1 + n + seq_len(n)
  new_target(function(x) {
    a <- x[, A, drop = FALSE]
    b <- x[, B, drop = FALSE]
    -(x[, 1]^2 / 2 + rowSums((a - x[, 1])^2 / 2 + (b - a)^2 + a^4 / 12))
  }, function(x) {
    a <- x[, A, drop = FALSE]
    b <- x[, B, drop = FALSE]
    -cbind(x[, 1] + rowSums(x[, 1] - a), (a - x[, 1]) - 2 * (b - a) + a^3 / 3, 2 * (b - a))
  }, dim = 1 + 2 * n)
}
sparse_hessian <- function(x, n = 20) {
  D <- 1 + 2 * n
  A <- 1 + seq_len(n)
  B <- 1 + n + seq_len(n)
  H <- matrix(0, D, D)
  H[1, 1] <- n + 1
  H[1, A] <- H[A, 1] <- -1
  H[cbind(A, A)] <- 3 + x[A]^2
  H[cbind(A, B)] <- H[cbind(B, A)] <- -2
  H[cbind(B, B)] <- 2
  H
}

test_that("a sparse Hessian's plan moves its dense coordinate alone and colours the rest in two", {
  tg <- sparse_target()
  set.seed(1)
  x <- stats::runif(41, -2, 2)
  full <- jkoflow:::forward_hessian(tg, x, seq_len(41))
  plan <- jkoflow:::hessian_plan(full$H)
  # mu touches all; a_i touches mu and b_i; b_i touches a_i: mu dense, and
  # the a's (sharing only mu's row) one colour, the b's another
  expect_identical(plan$dense, 1L)
  expect_identical(plan$cost, 3L)
  expect_identical(sort(unique(plan$colour)), 1:2)
  expect_true(all(plan$colour[1:20] != plan$colour[21:40]))
  # no two coordinates of a colour share a non-zero row outside the dense
  for (k in 1:2) {
    cols <- which(plan$colour == k)
    expect_true(all(rowSums(plan$pattern[, cols, drop = FALSE]) <= 1))
  }
  # at another point, 4 gradients give the analytic Hessian to forward
  # differences' error: steps of 1e-5 max(1, |x|) against third
  # derivatives 2 |a_i| <= 6, an error under 1e-4
  y <- stats::runif(41, -2, 2)
  ph <- jkoflow:::forward_hessian(tg, y, seq_len(41), plan = plan)
  expect_lt(max(abs(ph$H - sparse_hessian(y))), 1e-4)
  expect_lt(max(abs(ph$H - jkoflow:::forward_hessian(tg, y, seq_len(41))$H)), 1e-4)
  # a block: the coordinates other than mu (no dense one left: the a's
  # and b's share rows pairwise, two colours)
  p2 <- jkoflow:::hessian_plan(jkoflow:::forward_hessian(tg, x, 2:41)$H)
  expect_identical(p2$cost, 2L)
  h2 <- jkoflow:::forward_hessian(tg, y, 2:41, plan = p2)
  expect_lt(max(abs(h2$H - sparse_hessian(y)[2:41, 2:41])), 1e-4)
})

test_that("a dense or small Hessian has no plan", {
  set.seed(2)
  M <- matrix(stats::rnorm(400), 20)
  expect_null(jkoflow:::hessian_plan(crossprod(M) + diag(20)))
  expect_null(jkoflow:::hessian_plan(diag(5)))
  expect_null(jkoflow:::hessian_plan(matrix(NaN, 10, 10)))
})

test_that("conditional modes with a plan are those without, and the laws carry it", {
  tg <- sparse_target()
  at <- jkoflow:::grid_point(1L, 41)
  set.seed(3)
  y0 <- stats::rnorm(40, 0, 0.5)
  fp <- jkoflow:::planned_first(tg, 1, 1L, c(0.3, y0), at)
  first <- fp$first
  plan <- fp$plan
  expect_null(first$H)
  expect_identical(plan$cost, 2L)
  full <- jkoflow:::conditional_mode(tg, 1, 1L, 0.8, first$y, at, first$sd)
  sparse <- jkoflow:::conditional_mode(tg, 1, 1L, 0.8, first$y, at, first$sd, plan)
  # Newton's mode to its tolerance (1e-6 in its sds, 0.5-0.7 here), and
  # the Hessian's factor to forward differences' error
  expect_lt(max(abs(sparse$y - full$y)), 1e-5)
  expect_lt(max(abs(sparse$R - full$R)), 1e-4)
  expect_lt(abs(sparse$l - full$l), 1e-4)
  q <- jkoflow:::conditional_laplace(tg, 1, rep(0, 41), 0.25, 1L, refine = FALSE)
  expect_identical(q$plan$cost, 2L)
  pts <- jkoflow:::pair_lattice(tg, 1, rep(0, 41), c(0.3, 0.3), 1:2, most = 40L)
  expect_identical(attr(pts, "plan")$dense, integer(0))
})

# Eight pairs, each x_a^2 / 2 + x_b^2 / 2 + x_a^2 x_b^2 / 2: its Hessian's
# off-diagonal entry in a pair, 2 x_a x_b, vanishes at 0.
vanishing_target <- function() {
  a <- 2 * (1:8) - 1
  b <- 2 * (1:8)
  new_target(function(x) {
    -(rowSums(x^2) / 2 + rowSums(x[, a, drop = FALSE]^2 * x[, b, drop = FALSE]^2) / 2)
  }, function(x) {
    g <- x
    g[, a] <- x[, a] + x[, a] * x[, b]^2
    g[, b] <- x[, b] + x[, a]^2 * x[, b]
    -g
  }, dim = 16)
}

test_that("an interaction that vanishes where the pattern is learnt is found at a second point", {
  tg <- vanishing_target()
  H0 <- jkoflow:::forward_hessian(tg, rep(0, 16), 1:16)$H
  H1 <- jkoflow:::forward_hessian(tg, jkoflow:::plan_point(rep(0, 16)), 1:16)$H
  # at 0 alone the Hessian looks diagonal (one group of all 16)
  expect_identical(jkoflow:::hessian_plan(H0)$cost, 1L)
  plan <- jkoflow:::hessian_plan(H0, H1)
  expect_identical(plan$cost, 2L)
  expect_true(all(plan$pattern[cbind(2 * (1:8) - 1, 2 * (1:8))]))
  set.seed(4)
  y <- stats::rnorm(16)
  H <- diag(1 + y[c(rbind(2 * (1:8), 2 * (1:8) - 1))]^2)
  H[cbind(2 * (1:8) - 1, 2 * (1:8))] <- H[cbind(2 * (1:8), 2 * (1:8) - 1)] <- 2 * y[2 * (1:8) - 1] * y[2 * (1:8)]
  # forward differences' error: steps 1e-5 max(1, |y|), third derivatives
  # 2 |y| <= 6
  expect_lt(max(abs(jkoflow:::forward_hessian(tg, y, 1:16, plan = plan)$H - H)), 1e-4)
  # the plan from 0 alone would have missed the pairs' entries
  expect_gt(max(abs(jkoflow:::forward_hessian(tg, y, 1:16,
                                              plan = jkoflow:::hessian_plan(H0))$H - H)), 0.1)
})
