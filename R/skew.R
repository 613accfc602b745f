# A law moved closer to the target along one coordinate s that it holds
# Gaussian (given its lattice's coordinates K, where it is a conditional
# Laplace law, R/conditional.R and R/conditional_pair.R), by an exact change
# of variables y = F(x) of its draws x:
#
#   y_s = m_s + sd_s T((x_s - m_s) / sd_s),
#   y_o = l(y) + exp((y_s - m_s) G) (x_o - l(x)),
#
# m and sd_s the law's centre and s's sd, o the other coordinates, l(x)
# their line on x_s and x_K (from the law's centre and covariance); the
# lattice's coordinates do not move. T is monotone and piecewise linear: it
# maps the standard normal's quantiles to those of the target's slice
# along s (and the line) through m, standardized at its mode (its mode at
# 0, its curvature there 1), so that y_s takes the slice's shape (a skew,
# a heavier tail) at the law's scale, the slice's mode at m_s. G lets the
# others' covariance follow y_s as the target's does (from its Hessian
# half a sd either side of m along the line). The density is exact:
# log q_F(y) = log q(x) - log T'(u) - (y_s - m_s) tr G.
#
# Where it serves: posteriordb's rats, whose law along log sigma_beta and
# log sigma_y holds log sigma_alpha Gaussian. The target's log sigma_alpha
# has an exponential right tail (its conditional is that of the log of a
# scale given 30 effects), and mu_alpha's sd grows with sigma_alpha. The
# largest weights of the law's draws all sat at log sigma_alpha 2-4.5 sds
# up (a cubic in it explained 78% of the log-weights' variance), and the
# start's k-hat was 0.40-0.55 on 8192 draws (4 seeds), its KL 0.11-0.12;
# moved along log sigma_alpha, 0.12-0.31 and 0.044-0.046, its ESS 91%
# for 69-77% (16 384 draws, 2 seeds).
# (The skew alone took the KL to 0.066 and left the k-hat as it was; the
# rate of mu_alpha alone took the KL to 0.09.) G is a matrix, not a rate
# for each coordinate: on pilots, whose mu_b is the mean of the b's over
# 10, mu_b's residual scaled alone (its precision's diagonal scales as
# 1 / sigma_b^2) left the b's behind, and the KL went from 0.56 to 200;
# with G, to 0.36.
#
# NULL where the slice does not give a shape (its mode at the end of the
# grid, its curvature there not negative, or mass beyond the grid) or the
# law's covariance of the others given s and K is singular.
skew_layer <- function(q, potential, beta, s, span = 8, grid = 161L) {
  D <- q$dim
  m <- q$mean
  sd <- sqrt(q$cov[s, s])
  if (!is.finite(sd) || !(sd > 0)) return(NULL)
  # the line of the others on s and the lattice's coordinates (from q's
  # centre and covariance), B their slopes; the slice through m is taken
  # along it, the lattice's coordinates held
  K <- c(s, q$conditional)
  oth <- seq_len(D)[-K]
  B <- q$cov[oth, K, drop = FALSE] %*% solve(q$cov[K, K, drop = FALSE])
  dir <- numeric(D)
  dir[oth] <- B[, 1L]
  dir[s] <- 1
  tt <- seq(-span, span, length.out = grid) * sd
  X <- matrix(m, grid, D, byrow = TRUE) + outer(tt, dir)
  lp <- -beta * potential_values(potential, X)
  lp[!is.finite(lp)] <- -Inf
  i0 <- which.max(lp)
  if (i0 < 3L || i0 > grid - 2L || !(max(lp[c(1L, grid)]) < lp[i0] - 12)) return(NULL)
  hh <- tt[2L] - tt[1L]
  c2 <- (lp[i0 + 1L] - 2 * lp[i0] + lp[i0 - 1L]) / hh^2
  if (!is.finite(c2) || !(c2 < 0)) return(NULL)
  mode <- tt[i0] - hh * (lp[i0 + 1L] - lp[i0 - 1L]) / (2 * hh^2 * c2)
  v <- (tt - mode) * sqrt(-c2)  # the slice standardized at its mode
  # its distribution function by the trapezoid rule
  p <- exp(lp - lp[i0])
  cdf <- c(0, cumsum((p[-1L] + p[-grid]) / 2))
  cdf <- cdf / cdf[grid]
  keep <- c(TRUE, diff(cdf) > 0)
  uk <- seq(-4, 4, by = 0.05)
  vk <- stats::approx(cdf[keep], v[keep], stats::pnorm(uk))$y
  if (anyNA(vk) || any(diff(vk) <= 0)) return(NULL)
  slope <- diff(vk) / diff(uk)
  # (T is piecewise linear through (uk, vk), continued beyond -4 and 4 by
  # its end slopes: piecewise_linear(), R/slices.R)
  # how the others' covariance given s follows it: the derivative H1 of
  # the target's Hessian along that line (differences half a sd either
  # way), whitened by q's covariance of the others given s and K, C = L L'.
  # Moved by dl along s, their residuals from the line are multiplied by
  # exp(dl G), G = -C H1 / 2 = L V diag(lambda) V' L^-1: their covariance
  # is C - dl C H1 C to first order in dl, and e^(2 r dl) C where the
  # precision scales as e^(-2 r dl) (the differences read the rate r as
  # r sinh(r sd / 2) / (r sd / 2))
  hp <- forward_hessian(potential, m + sd / 2 * dir, seq_len(D))  # R/conditional.R
  hm <- forward_hessian(potential, m - sd / 2 * dir, seq_len(D))
  if (is.null(hp) || is.null(hm)) return(NULL)
  C <- q$cov[oth, oth, drop = FALSE] - B %*% q$cov[K, oth, drop = FALSE]
  L <- tryCatch(t(chol((C + t(C)) / 2)), error = function(e) NULL)
  if (is.null(L)) return(NULL)
  H1 <- beta * (hp$H - hm$H)[oth, oth, drop = FALSE] / sd
  e <- eigen(-crossprod(L, H1 %*% L) / 2, symmetric = TRUE)
  lambda <- pmin(pmax(e$values, -1 / sd), 1 / sd)  # at most e^1 a sd
  P <- L %*% e$vectors
  Pinv <- t(e$vectors) %*% forwardsolve(L, diag(length(oth)))
  # the others' line at the points x (their coordinates K)
  line <- function(x) {
    rep(m[oth], each = nrow(x)) + sweep(x[, K, drop = FALSE], 2L, m[K]) %*% t(B)
  }
  stretch <- function(r, dl) ((r %*% t(Pinv)) * exp(outer(dl, lambda))) %*% t(P)
  forward <- function(x) {
    u <- (x[, s] - m[s]) / sd
    y <- x
    y[, s] <- m[s] + sd * piecewise_linear(u, uk, vk, slope)$value
    y[, oth] <- line(y) + stretch(x[, oth, drop = FALSE] - line(x), y[, s] - m[s])
    y
  }
  log_density <- function(y) {
    y <- as.matrix(y)
    back <- piecewise_linear((y[, s] - m[s]) / sd, vk, uk, 1 / slope)
    x <- y
    x[, s] <- m[s] + sd * back$value
    dl <- y[, s] - m[s]
    x[, oth] <- line(x) + stretch(y[, oth, drop = FALSE] - line(y), -dl)
    q$log_density(x) + log(back$slope) - dl * sum(lambda)
  }
  sample <- function(n) forward(q$sample(n))
  # its centre and covariance, from 4096 draws
  z <- sample(4096L)
  structure(list(dim = D, mean = colMeans(z), cov = stats::cov(z), sample = sample,
                 log_density = log_density, conditional = q$conditional, skew = s,
                 label = sprintf("%s, skewed along coordinate %d", q$label, s)),
            class = "jko_init")
}
