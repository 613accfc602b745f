# A Laplace approximation given the shape of the target's slices: with
# H = R'R the Cholesky factors of its precision (R upper triangular, the
# coordinates in the order `ord`), its draws are x = m + R^-1 u, u ~ N(0, I),
# and the slice law's are
#
#   x = m + R^-1 T(z),   z ~ N(0, I),   T(z)_j = T_j(z_j),
#
# T_j monotone and piecewise linear, mapping the standard normal's
# quantiles to those of the target's slice through the mode along u_j
# (the direction of R^-1's column j), tabulated on a grid of `grid` points
# `span` units either side (2 and 4 times as far, as finely, where the
# slice's log-density at its ends is within 12 of its top), its
# log-density linear between the points (slice_quantiles()). Its density
# is exact:
# log q(x) = sum_j log phi(z_j) - log T_j'(z_j) + log det R.
# Where the target is a product of independent laws in u (a posterior of
# independent parameters, one of conditionally independent effects given
# its hyperparameters, each skewed in its own way), it is that product.
#
# Where it serves: posteriordb's GLMM1 (a Poisson GLMM, 235 site effects
# and their mean and sd, D = 237). Most sites' counts are large, but a few
# dozen are small, and each such effect is skewed (the log of a Poisson
# rate near zero counts, with an exponential left tail); in 237
# dimensions the small KLs add up. Its Gaussian Laplace approximation is
# 1.6-2.3 from the target in KL(q || pi) (ESS 0.06-7% on 8192 draws, 3
# seeds), and its Student t, whose radius in 237 dimensions is far more
# spread than the target's, 22 (7 df); the flow trained two steps, 512 s
# against NUTS's 26 s. Its slice law with the coordinates reversed (the
# sd, the mean, then the effects) is 0.059-0.064 from it (k-hat
# 0.23-0.40, ESS 83-88%), and passes as a proposal; in the program's own
# order, 0.27-0.28 (ESS 55-56%).
#
# NULL where the precision has no Cholesky factor. A slice that gives no
# shape (mass at the widest grid's ends, quantiles not increasing) leaves
# its coordinate Gaussian.
slice_law <- function(mean, S, potential, beta, ord, span = 8, grid = slice_grid) {
  D <- length(mean)
  P <- tryCatch(chol2inv(chol(S)), error = function(e) NULL)
  if (is.null(P)) return(NULL)
  P <- P[ord, ord, drop = FALSE]
  R <- tryCatch(chol((P + t(P)) / 2), error = function(e) NULL)
  if (is.null(R)) return(NULL)
  Ri <- backsolve(R, diag(D))  # x[ord] = m[ord] + Ri u
  m <- as.double(mean)
  mo <- m[ord]
  uk <- seq(-4, 4, by = 0.05)
  V <- slice_shapes(mo, Ri, ord, potential, beta, uk, span, grid)
  slope <- diff(V) / diff(uk)  # a row a piece, a column a coordinate
  ldR <- sum(log(diag(R)))
  sample <- function(n) {
    U <- matrix(stats::rnorm(n * D), n, D)
    for (j in seq_len(D)) U[, j] <- piecewise_linear(U[, j], uk, V[, j], slope[, j])$value
    X <- sweep(U %*% t(Ri), 2L, mo, "+")
    X[, order(ord), drop = FALSE]
  }
  log_density <- function(x) {
    x <- as.matrix(x)
    U <- sweep(x[, ord, drop = FALSE], 2L, mo) %*% t(R)
    out <- numeric(nrow(U)) + ldR
    for (j in seq_len(D)) {
      z <- piecewise_linear(U[, j], V[, j], uk, 1 / slope[, j])
      out <- out + stats::dnorm(z$value, log = TRUE) + log(z$slope)
    }
    out
  }
  q <- list(dim = D, sample = sample, log_density = log_density, slices = ord)
  # its centre and covariance, from 4096 draws
  z <- sample(4096L)
  q$mean <- colMeans(z)
  q$cov <- stats::cov(z)
  structure(q, class = "jko_init")
}

# The maps T_j of slice_law() at the knots uk, a column each: the
# quantiles at pnorm(uk) of the target's slices through mo (the centre, in
# the order ord) along the columns of Ri, in units of those columns.
slice_shapes <- function(mo, Ri, ord, potential, beta, uk, span, grid) {
  D <- length(mo)
  nk <- length(uk)
  V <- matrix(uk, nk, D)  # the identity where no slice gives a shape
  todo <- seq_len(D)
  # the slices, in blocks of at most 2^14 points; a slice with mass at its
  # grid's ends (a log-density there within 12 of its top: an exponential
  # tail, as a Poisson rate's log near zero counts has) again with the span
  # doubled, up to 4 times
  for (w in c(1, 2, 4)) {
    tt <- seq(-w * span, w * span, length.out = w * (grid - 1L) + 1L)  # (the same spacing)
    lp <- matrix(0, length(tt), length(todo))
    per <- max(1L, floor(2^14 / length(tt)))
    for (b in split(seq_along(todo), ceiling(seq_along(todo) / per))) {
      X <- do.call(rbind, lapply(todo[b], function(j) {
        Xo <- matrix(mo, length(tt), D, byrow = TRUE) + outer(tt, Ri[, j])
        Xo[, order(ord), drop = FALSE]
      }))
      lp[, b] <- -beta * potential_values(potential, X)
    }
    lp[!is.finite(lp)] <- -Inf
    ends <- apply(lp, 2L, function(l) max(l[c(1L, length(l))]) < max(l) - 12 && is.finite(max(l)))
    for (i in which(ends)) {
      v <- slice_quantiles(tt, lp[, i], stats::pnorm(uk))
      if (!is.null(v)) V[, todo[i]] <- v
    }
    todo <- todo[!ends]
    if (!length(todo)) break
  }
  V
}

# The quantiles at probabilities p of a density tabulated on the grid tt
# (equally spaced) by its log l (-Inf where it is zero), its log taken
# linear between the grid's points: exact for an exponential tail, and
# with a density continuous where a trapezoid rule's quantiles, linear
# between the points, make it a histogram's (0.2 units apart, an error of
# 0.2 in log q two units out). NULL where the quantiles do not increase.
slice_quantiles <- function(tt, l, p) {
  h <- tt[2L] - tt[1L]
  n <- length(tt)
  d <- exp(l - max(l))
  a <- diff(l) / h  # the log-density's slope on each piece
  a[!is.finite(a)] <- 0
  ah <- a * h
  # each piece's mass, d_i h (e^(a h) - 1) / (a h); none where an end is zero
  e1 <- ifelse(abs(ah) < 1e-8, 1 + ah / 2, expm1(ah) / ah)
  mass <- ifelse(d[-n] > 0 & d[-1L] > 0, d[-n] * h * e1, 0)
  cdf <- c(0, cumsum(mass)) / sum(mass)
  i <- pmin(pmax(findInterval(p, cdf, left.open = TRUE), 1L), n - 1L)
  f <- (p - cdf[i]) * sum(mass) / d[i]  # (e^(a s) - 1) / a
  s <- ifelse(abs(a[i] * f) < 1e-8, f, log1p(a[i] * f) / a[i])
  v <- tt[i] + s
  if (anyNA(v) || any(diff(v) <= 0)) NULL else v
}

# The points on a grid of the slices of slice_law() (81: 0.2 units apart
# over 8 either side).
slice_grid <- 81L

# The piecewise-linear map through the knots (from, to), of slopes sl on
# its pieces and continued beyond its ends by the end pieces' slopes, at
# u: list(value, slope).
piecewise_linear <- function(u, from, to, sl) {
  k <- pmin(pmax(findInterval(u, from), 1L), length(from) - 1L)
  list(value = to[k] + (u - from[k]) * sl[k], slope = sl[k])
}
