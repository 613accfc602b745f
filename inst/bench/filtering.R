# Nonlinear filtering benchmark (Mokrov et al. 2021, the continuous-discrete
# filtering experiment, whose published figures the README quotes):
#   dX = -Phi'(X) dt + sqrt(2) dW,  Phi(x) = sin(2 pi x) / pi + x^2 / 4,
#   X_0 ~ N(0, 1),  y_j = X_{t_j} + N(0, 1) at t_j = 0.5, 1, ..., 4.5,
# target: the filtering density of X_5 given y_1..y_9 (the last filtering
# law carried by the flow from 4.5 to 5).
#
# Ground truth: the tests' fine-grid solver (fp_grid() in
# tests/testthat/helper-references.R, run from the repository: Chang-
# Cooper fluxes, exact time integration; 1601 nodes on [-8, 8]) with
# multiplication by the likelihood at the observation times. Compared in the
# same run: jko_filter() with its defaults, and a bootstrap particle filter
# with 50 000 particles (Euler-Maruyama, dt = 0.002; multinomial resampling
# at each observation) whose density is a Gaussian KDE (stats::density, the
# default bandwidth nrd0, and Sheather-Jones "SJ"). SymKL =
# KL(p || q) + KL(q || p) = sum over the grid of (p - q)(log p - log q) dx,
# where the true density p exceeds 1e-10 (truth's mass elsewhere < 1e-9).
#
#   Rscript inst/bench/filtering.R [paths] [seed] [save] [first]
#   Rscript inst/bench/filtering.R 10 1 inst/extdata/filtering.rds
# `first`: run paths first..paths only (two processes can then share the
# paths of one seed, each saving its own file; path k uses the same draws
# whichever process runs it).
# `save`: write the per-path table and the curves of the first path (for
# the vignette's figure) to this .rds file.
suppressPackageStartupMessages(library(jkoflow))
args <- commandArgs(trailingOnly = TRUE)
arg <- function(i, default) if (length(args) >= i) args[[i]] else default
n_paths <- as.integer(arg(1, "10"))
seed <- as.integer(arg(2, "1"))
save_to <- arg(3, "")
first <- as.integer(arg(4, "1"))
threads <- as.integer(Sys.getenv("JKOFLOW_THREADS", "2"))
options(jkoflow.threads = threads)

phi <- function(x) sin(2 * pi * x) / pi + x^2 / 4
dphi <- function(x) 2 * cos(2 * pi * x) + x / 2
pot <- potential_fn(function(x) phi(x[, 1]), function(x) matrix(dphi(x[, 1]), ncol = 1L),
                    dim = 1)
times <- seq(0.5, 4.5, by = 0.5)
t_end <- 5
sd_obs <- 1

source(file.path("tests", "testthat", "helper-references.R"))  # fp_grid()
t0 <- proc.time()[["elapsed"]]
grid <- fp_grid(phi, -8, 8, 1601)
cat(sprintf("grid solver: %d nodes, dx = %g, set up in %.1f s\n", length(grid$x), grid$dx,
            proc.time()[["elapsed"]] - t0))
x <- grid$x
dx <- grid$dx

# A path of the diffusion (Euler-Maruyama, fine step) observed with noise.
simulate_path <- function(dt = 1e-3) {
  X <- rnorm(1)
  t <- 0
  y <- numeric(length(times))
  for (j in seq_along(times)) {
    n <- round((times[j] - t) / dt)
    for (i in seq_len(n)) X <- X - dphi(X) * dt + sqrt(2 * dt) * rnorm(1)
    t <- times[j]
    y[j] <- X + sd_obs * rnorm(1)
  }
  y
}

# The filtering density at t_end, and log p(y_1, ..., y_J) (the sum of the
# log-normalisers of the updates) as attribute "log_evidence".
truth_density <- function(y) {
  p <- dnorm(x)
  t <- 0
  ev <- 0
  for (j in seq_along(times)) {
    p <- grid$evolve(p, times[j] - t)
    p <- p / (sum(p) * dx)
    p <- p * dnorm(y[j], x, sd_obs)
    ev <- ev + log(sum(p) * dx)
    p <- p / (sum(p) * dx)
    t <- times[j]
  }
  p <- grid$evolve(p, t_end - t)
  structure(p / (sum(p) * dx), log_evidence = ev)
}

particle_filter <- function(y, N = 50000, dt = 0.002) {
  X <- rnorm(N)
  t <- 0
  ev <- 0
  for (tj in c(times, t_end)) {
    n <- round((tj - t) / dt)
    for (i in seq_len(n)) X <- X - dphi(X) * dt + sqrt(2 * dt) * rnorm(N)
    t <- tj
    j <- match(tj, times)
    if (!is.na(j)) {
      w <- dnorm(y[j], X, sd_obs)
      ev <- ev + log(mean(w))
      X <- X[sample.int(N, N, replace = TRUE, prob = w)]
    }
  }
  structure(X, log_evidence = ev)
}

kde_on_grid <- function(X, bw) {
  d <- stats::density(X, bw = bw, n = 4096, from = -8, to = 8)
  stats::approx(d$x, d$y, x)$y
}

symkl <- function(p, q) {
  r <- p > 1e-10
  q <- pmax(q[r], 1e-300)
  sum((p[r] - q) * (log(p[r]) - log(q))) * dx
}

rows <- list()
curves <- NULL
for (path in seq(first, n_paths)) {
  set.seed(seed * 1000 + path)
  y <- simulate_path()
  p <- truth_density(y)

  t0 <- proc.time()[["elapsed"]]
  Xp <- particle_filter(y)
  q_nrd0 <- kde_on_grid(Xp, "nrd0")
  q_sj <- kde_on_grid(Xp, "SJ")
  pf_secs <- proc.time()[["elapsed"]] - t0

  t0 <- proc.time()[["elapsed"]]
  c0 <- proc.time()[["user.self"]]
  f <- jko_filter(pot, y, times, sd = sd_obs, t_end = t_end, verbose = TRUE)
  jko_secs <- proc.time()[["elapsed"]] - t0
  jko_cpu <- proc.time()[["user.self"]] - c0
  r <- p > 1e-10
  q_jko <- numeric(length(x))
  q_jko[r] <- as.numeric(jko_density(f$final, x[r]))

  rows[[length(rows) + 1L]] <- data.frame(
    path = path, symkl_jko = symkl(p, q_jko), symkl_pf_nrd0 = symkl(p, q_nrd0),
    symkl_pf_sj = symkl(p, q_sj), seconds_jko = jko_secs, cpu_jko = jko_cpu,
    seconds_pf = pf_secs,
    flow_steps = sum(f$table$flow_steps) + length(f$final$theta),
    update_steps = sum(f$table$update_steps), worst_update_kl = max(f$table$update_kl),
    log_evidence_error_jko = sum(f$table$log_evidence) - attr(p, "log_evidence"),
    log_evidence_error_pf = attr(Xp, "log_evidence") - attr(p, "log_evidence"))
  print(rows[[length(rows)]], row.names = FALSE, digits = 3)
  if (is.null(curves)) {
    curves <- data.frame(x = x, truth = as.numeric(p), jkoflow = q_jko, pf_kde = q_nrd0)
    curves <- curves[r, ]
    curves_y <- y
  }
  tab <- do.call(rbind, rows)
  # saved after every path, so that an interrupted run keeps what it did
  if (nzchar(save_to)) {
    saveRDS(list(table = tab, curves = curves, y = curves_y, times = times, t_end = t_end,
                 seed = seed, threads = threads,
                 made_by = "inst/bench/filtering.R (precomputed; not recomputed by the vignette)"),
            save_to)
  }
}
cat(sprintf("\npaths %d to %d (seed %d), %d threads; load average at the end: %s\n", first, n_paths, seed,
            threads, paste(readLines("/proc/loadavg", warn = FALSE), collapse = " ")))
summ <- function(v) sprintf("median %.4f, mean %.4f", median(v), mean(v))
cat("SymKL at t = 5 to the grid solution\n")
cat("  jkoflow (jko_filter defaults):   ", summ(tab$symkl_jko), "\n")
cat("  particle filter 50 000 + KDE nrd0:", summ(tab$symkl_pf_nrd0), "\n")
cat("  particle filter 50 000 + KDE SJ:  ", summ(tab$symkl_pf_sj), "\n")
cat(sprintf("log p(y_1..y_9), error against the grid: jkoflow median |error| %.4f (max %.4f); particle filter %.4f (max %.4f)\n",
            median(abs(tab$log_evidence_error_jko)), max(abs(tab$log_evidence_error_jko)),
            median(abs(tab$log_evidence_error_pf)), max(abs(tab$log_evidence_error_pf))))
cat(sprintf("Wall time per path: jkoflow median %.0f s (max %.0f s; CPU median %.0f s); particle filter median %.1f s\n",
            median(tab$seconds_jko), max(tab$seconds_jko), median(tab$cpu_jko),
            median(tab$seconds_pf)))
if (nzchar(save_to)) cat("saved to", save_to, "\n")
