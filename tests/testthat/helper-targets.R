# Targets with closed-form posteriors, shared by the test files.

# theta ~ N(0, I), y_j | theta ~ N(theta, I), j = 1..m, in D = 6, with a
# correlated design made by a linear change of variables: the posterior is
# N(mu, V) with V far from isotropic.
correlated_conjugate <- function(D = 6, seed = 5) {
  set.seed(seed)
  A <- matrix(rnorm(D * D), D) %*% diag(10^seq(-1, 1, length.out = D))
  # y = A theta + e, e ~ N(0, I): posterior precision I + A'A
  theta0 <- rnorm(D)
  y <- drop(A %*% theta0 + rnorm(D))
  P <- diag(D) + crossprod(A)
  V <- solve(P)
  mu <- drop(V %*% crossprod(A, y))
  logd <- function(x) {
    r <- sweep(x %*% t(A), 2L, y)
    -0.5 * rowSums(r^2) - 0.5 * rowSums(x^2) - D * log(2 * pi)
  }
  grad <- function(x) -sweep(x %*% crossprod(A), 2L, drop(crossprod(A, y))) - x
  logz <- logd(matrix(mu, 1L)) + D / 2 * log(2 * pi) + 0.5 * determinant(V)$modulus
  list(target = target_logdensity(logd, grad, dim = D), mu = mu, V = V,
       logz = as.numeric(logz), D = D)
}
