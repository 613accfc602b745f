# The JKO scheme's own time-discretisation error on the filtering benchmark
# (inst/bench/filtering.R), and the step rule of jko_filter() beside it.
#
# In one dimension a JKO step can be solved exactly: with X(u) the quantile
# function of the new law (u in (0, 1)), W2^2 to the old law is the L2
# distance of the quantile functions and the entropy is -int log X'(u) du,
# so the step minimises
#   sum_i (X_i - X0_i)^2 / (2 h n) + sum_i Phi(X_i) / n - sum_i log(X_{i+1} - X_i) / (beta n)
# over increasing X_1 < ... < X_n at u_i = (i - 1/2) / n: a tridiagonal
# Newton iteration (damped where Phi'' < 0 makes it indefinite, with a line
# search). Checked here against the closed form on an Ornstein-Uhlenbeck
# step. For each observation of a few benchmark paths, the exact filtering
# law (the grid solution) is carried over the next half unit of time by k
# exact JKO steps and compared in symmetric KL with the grid's exact flow;
# beside it, the error jko_filter()'s step rule predicts from the law's
# Gaussian linearisation (internal jko_gauss_error()), and the steps it
# chooses with its defaults (h = 0.125, h_tol = 0.001).
#   Rscript inst/bench/filtering_scheme.R [paths]
suppressPackageStartupMessages(library(jkoflow))
options(width = 200)
args <- commandArgs(trailingOnly = TRUE)
n_paths <- if (length(args)) as.integer(args[1]) else 3L
source(file.path("tests", "testthat", "helper-references.R"))  # fp_grid()
gauss_error <- getFromNamespace("jko_gauss_error", "jkoflow")

tri_solve <- function(sub, diag_, sup, d) {
  n <- length(diag_)
  cp <- numeric(n - 1L)
  dp <- numeric(n)
  cp[1] <- sup[1] / diag_[1]
  dp[1] <- d[1] / diag_[1]
  for (i in 2:n) {
    den <- diag_[i] - sub[i - 1L] * cp[i - 1L]
    if (i < n) cp[i] <- sup[i] / den
    dp[i] <- (d[i] - sub[i - 1L] * dp[i - 1L]) / den
  }
  x <- numeric(n)
  x[n] <- dp[n]
  for (i in (n - 1L):1) x[i] <- dp[i] - cp[i] * x[i + 1L]
  x
}

# One exact JKO step of the quantiles X0 (beta = 1).
jko_quantile_step <- function(X0, h, dphi, d2phi, phi) {
  X <- X0
  energy <- function(X) {
    D <- diff(X)
    if (any(D <= 0)) return(Inf)
    sum((X - X0)^2) / (2 * h) + sum(phi(X)) - sum(log(D))
  }
  for (it in 1:100) {
    D <- diff(X)
    g <- (X - X0) / h + dphi(X) + c(1 / D, 0) - c(0, 1 / D)
    hd <- 1 / h + d2phi(X) + c(1 / D^2, 0) + c(0, 1 / D^2)
    off <- -1 / D^2
    margin <- min(hd - abs(c(off, 0)) - abs(c(0, off)))
    if (margin <= 0) hd <- hd - margin + 1e-3 / h
    step <- tri_solve(off, hd, off, g)
    e0 <- energy(X)
    s <- 1
    while (energy(X - s * step) > e0 - 1e-4 * s * sum(g * step) && s > 1e-10) s <- s / 2
    X <- X - s * step
    if (max(abs(s * step)) < 1e-11) break
  }
  X
}

# The scheme's law after k steps over dt from the grid density p0, and its
# symmetric KL to the exact flow, on the range the quantiles cover.
scheme_symkl <- function(grid, p0, dt, k, dphi, d2phi, phi, n = 4000L) {
  x <- grid$x
  dx <- grid$dx
  cdf <- cumsum(p0) * dx
  X <- stats::approx(cdf / max(cdf), x, (seq_len(n) - 0.5) / n, ties = "ordered")$y
  for (i in seq_len(k)) X <- jko_quantile_step(X, dt / k, dphi, d2phi, phi)
  mid <- (X[-1] + X[-n]) / 2
  q <- rep(NA_real_, length(x))
  inside <- x >= min(mid) & x <= max(mid)
  q[inside] <- exp(stats::approx(mid, log(1 / (n * diff(X))), x[inside])$y)
  p <- grid$evolve(p0, dt)
  r <- inside & p > 1e-10
  p <- p[r] / sum(p[r] * dx)
  q <- q[r] / sum(q[r] * dx)
  sum((p - q) * (log(p) - log(q))) * dx
}

# Check on an OU step: Phi = (x - 1)^2 / 2 from N(-1, 0.5^2) over 0.5.
phi <- function(x) (x - 1)^2 / 2
g_ou <- fp_grid(phi, -8, 8, 3201)
for (k in c(2L, 4L)) {
  cat(sprintf("OU check, %d steps over 0.5: exact 1-D JKO %.5f, closed form %.5f\n", k,
              scheme_symkl(g_ou, dnorm(g_ou$x, -1, 0.5), 0.5, k, function(x) x - 1,
                           function(x) rep(1, length(x)), phi),
              gauss_error(-1, 0.25, -2, 1, 0.5, k, 1)))
}

phi <- function(x) sin(2 * pi * x) / pi + x^2 / 4
dphi <- function(x) 2 * cos(2 * pi * x) + x / 2
d2phi <- function(x) -4 * pi * sin(2 * pi * x) + 0.5
pot <- potential_fn(function(x) phi(x[, 1]), function(x) matrix(dphi(x[, 1]), ncol = 1L),
                    dim = 1)
steps_rule <- getFromNamespace("filter_steps", "jkoflow")
grid <- fp_grid(phi, -8, 8, 3201)
x <- grid$x
dx <- grid$dx
times <- seq(0.5, 4.5, by = 0.5)
rows <- list()
for (path in seq_len(n_paths)) {
  set.seed(1000 + path)   # the paths of inst/bench/filtering.R, seed 1
  X <- rnorm(1)
  y <- numeric(length(times))
  tp <- 0
  for (j in seq_along(times)) {
    for (i in seq_len(round((times[j] - tp) / 1e-3))) {
      X <- X - dphi(X) * 1e-3 + sqrt(2e-3) * rnorm(1)
    }
    tp <- times[j]
    y[j] <- X + rnorm(1)
  }
  p <- dnorm(x)
  tp <- 0
  for (j in seq_along(times)) {
    p <- grid$evolve(p, times[j] - tp)
    p <- p / sum(p * dx)
    p <- p * dnorm(y[j], x, 1)
    p <- p / sum(p * dx)
    tp <- times[j]
    # the filtering law at t_j, carried over the next 0.5
    w <- p * dx / sum(p * dx)
    m <- sum(w * x)
    v <- sum(w * (x - m)^2)
    gm <- sum(w * dphi(x))
    a <- sum(w * (dphi(x) - gm) * (x - m)) / v
    draws <- matrix(sample(x, 4096, replace = TRUE, prob = w) + runif(4096, -dx / 2, dx / 2))
    rows[[length(rows) + 1L]] <- data.frame(
      path = path, t = times[j],
      scheme_h0.5 = scheme_symkl(grid, p, 0.5, 1L, dphi, d2phi, phi),
      scheme_h0.25 = scheme_symkl(grid, p, 0.5, 2L, dphi, d2phi, phi),
      scheme_h0.125 = scheme_symkl(grid, p, 0.5, 4L, dphi, d2phi, phi),
      linear_h0.25 = gauss_error(m, v, gm, a, 0.5, 2L, 1),
      linear_h0.125 = gauss_error(m, v, gm, a, 0.5, 4L, 1),
      rule_steps = steps_rule(pot, draws, 0.5, 0.125, 1, 0.001))
  }
}
tab <- do.call(rbind, rows)
print(tab, digits = 3, row.names = FALSE)
cat("\nmedians over the laws:\n")
print(signif(apply(tab[, -(1:2)], 2, stats::median), 3))
