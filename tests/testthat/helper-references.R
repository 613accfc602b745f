# Reference solutions shared by the tests and the benchmarks (inst/bench/
# sources this file from the repository): exact or fine-grid solutions the
# package's flows are checked against. They are not part of the package.

# A fine-grid solution of the 1-D Fokker-Planck equation
#   d rho / dt = d/dx (Phi'(x) rho + beta^-1 d rho / dx)
# on [lower, upper] with no flux through the ends: the reference for the
# filter's tests and benchmark. Space: n nodes, the Chang-Cooper
# (Scharfetter-Gummel) flux between neighbours,
#   F_{i+1/2} = (B(w_i) rho_i - B(-w_i) rho_{i+1}) / (beta dx),
#   w_i = beta (Phi(x_{i+1}) - Phi(x_i)),  B(w) = w / (e^w - 1),
# positive, second order, and exact at equilibrium (no flux when
# rho_{i+1} / rho_i = e^{-w_i}). Time: exact, by the eigendecomposition of
# the generator, which pi^{-1/2} L pi^{1/2} (pi_i = e^{-beta Phi(x_i)})
# makes symmetric tridiagonal with off-diagonal (w/2) / sinh(w/2) / (beta
# dx^2). Returns the grid `x`, its step `dx`, and `evolve(rho, t)`
# carrying densities at the nodes over a time t.
fp_grid <- function(phi, lower, upper, n, beta = 1) {
  x <- seq(lower, upper, length.out = n)
  dx <- x[2L] - x[1L]
  p <- beta * phi(x)
  w <- diff(p)
  bern <- function(z) ifelse(abs(z) < 1e-8, 1 - z / 2, z / expm1(z))
  right <- bern(w) / (beta * dx^2)     # rate from node i to i + 1
  left <- bern(-w) / (beta * dx^2)     # rate from node i + 1 to i
  off <- ifelse(abs(w) < 1e-8, 1, (w / 2) / sinh(w / 2)) / (beta * dx^2)
  diag_ <- -(c(right, 0) + c(0, left))
  S <- matrix(0, n, n)
  S[cbind(1:n, 1:n)] <- diag_
  S[cbind(1:(n - 1L), 2:n)] <- off
  S[cbind(2:n, 1:(n - 1L))] <- off
  e <- eigen(S, symmetric = TRUE)
  half <- exp(-(p - min(p)) / 2)     # pi^{1/2}, scaled
  V <- e$vectors
  lambda <- pmin(e$values, 0)
  list(x = x, dx = dx,
       evolve = function(rho, t) {
         q <- crossprod(V, rho / half)
         out <- half * drop(V %*% (exp(lambda * t) * q))
         pmax(out, 0)
       })
}

# The reference for the porous-medium tests and benchmark: the JKO scheme
# (m > 1, dimension D) from a Barenblatt profile of radius R: each step is the
# dilation to the radius R' minimising c R'^(-D(m-1)) + (R' - R)^2 s2 / (2h)
# (the internal energy of the dilated profile and the W2 distance of two
# dilations), with s2 = E|X|^2 and c the energy of the profile of radius 1.
barenblatt_jko_radius <- function(D, m, R, h, steps) {
  p <- 1 / (m - 1)
  A <- exp(lgamma(p + 1 + D / 2) - D / 2 * log(pi) - lgamma(p + 1))
  c1 <- A^m * pi^(D / 2) * exp(lgamma(p * m + 1) - lgamma(p * m + 1 + D / 2)) / (m - 1)
  s2 <- D / (D + 2 * p + 2)
  for (k in seq_len(steps)) {
    R <- stats::uniroot(function(r) (r - R) * s2 / h - D * (m - 1) * c1 * r^(-D * (m - 1) - 1),
                        c(R, 10 * R), tol = 1e-13)$root
  }
  R
}
