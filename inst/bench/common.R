# Shared pieces of the benchmarks in inst/bench (sourced by most of them).
#
# Times are wall-clock seconds, medians of several repetitions. The PyTorch
# peer (../shared/peers/torch_jko.py next to the repository) runs in the same
# session, float64, with the same number of threads; it prints its own median
# seconds per training iteration.

suppressPackageStartupMessages(library(jkoflow))

# The repository root: two levels above this file (inst/bench/...).
bench_repo <- function() {
  args <- commandArgs(FALSE)
  f <- sub("^--file=", "", grep("^--file=", args, value = TRUE))
  if (length(f) == 1L) return(normalizePath(file.path(dirname(f), "..", ".."), mustWork = FALSE))
  normalizePath(".", mustWork = FALSE)
}

bench_args <- function() commandArgs(TRUE)

# The folder of the running script (its --file=), where this file and the
# other pieces are; inst/bench when there is none (source() at a console).
bench_dir <- function() {
  f <- sub("^--file=", "", grep("^--file=", commandArgs(FALSE), value = TRUE))
  if (length(f)) dirname(f) else "inst/bench"
}

# Sources pieces of inst/bench (posteriors-targets.R, stan-programs.R, ...)
# into the global environment.
bench_source <- function(...) {
  for (p in c(...)) source(file.path(bench_dir(), p), local = globalenv())
  invisible()
}

# The value of expr, its printed output, messages and warnings silenced (a
# fit's progress and verdict, rstan's chatter).
bench_quiet <- function(expr) {
  out <- NULL
  utils::capture.output(out <- suppressMessages(withCallingHandlers(
    expr, warning = function(w) invokeRestart("muffleWarning"))))
  out
}

# The errors of draws u (one per row) against a reference (its mean and sd
# per coordinate): the signed mean error in reference sds and the signed
# relative sd error, each coordinate under the reference's names.
bench_errors <- function(u, ref) {
  u <- unname(as.matrix(u))
  nm <- names(ref$sd)
  list(mean = stats::setNames((colMeans(u) - ref$mean) / ref$sd, nm),
       sd = stats::setNames(apply(u, 2L, stats::sd) / ref$sd - 1, nm))
}

# The value of the option --name=value among a script's arguments (the
# first, as a string), else `default`.
bench_opt <- function(name, default, args = bench_args()) {
  a <- grep(paste0("^--", name, "="), args, value = TRUE)
  if (length(a)) sub(paste0("^--", name, "="), "", a[1L]) else default
}

# The peer: a python with torch and the script, or NULL with a message why not.
torch_peer <- function(repo = bench_repo()) {
  py <- Sys.getenv("JKOFLOW_PYTHON", "/usr/bin/python3")
  script <- Sys.getenv("JKOFLOW_PEER",
                       file.path(repo, "..", "shared", "peers", "torch_jko.py"))
  if (!file.exists(script)) {
    message("PyTorch peer not found at ", script,
            " (set JKOFLOW_PEER to its path); the torch columns are NA.")
    return(NULL)
  }
  ok <- suppressWarnings(system2(py, c("-c", shQuote("import torch")),
                                 stdout = FALSE, stderr = FALSE))
  if (!identical(ok, 0L)) {
    message("`", py, "` cannot import torch (Debian: apt-get install python3-torch;",
            " or set JKOFLOW_PYTHON); the torch columns are NA.")
    return(NULL)
  }
  list(python = py, script = normalizePath(script))
}

# Seconds per training iteration of the peer (its own median of `iters`).
torch_time <- function(peer, D, width, threads, iters, batch = 1024L) {
  if (is.null(peer)) return(NA_real_)
  out <- suppressWarnings(system2(peer$python,
                                  c(shQuote(peer$script), D, width, batch, iters, threads),
                                  stdout = TRUE, stderr = TRUE))
  m <- regmatches(out, regexpr("sec/iter=[0-9.eE+-]+", out))
  if (length(m) != 1L) {
    message("the PyTorch peer failed: ", paste(out, collapse = "\n"))
    return(NA_real_)
  }
  as.numeric(sub("sec/iter=", "", m))
}

# A network, a quadratic (Ornstein-Uhlenbeck) potential and a pool of points,
# as the JKO steps of jko_fit() see them (the pool already standardised).
bench_problem <- function(D, width, rank = 5L, npool = 1024L, seed = 1L) {
  set.seed(seed)
  net <- icnn(D, hidden = c(width, width), rank = rank)
  list(net = net, pot = potential_quadratic(diag(D)),
       pool = matrix(rnorm(D * npool), D, npool))
}

# One JKO step of `iters` iterations in one call, as jko_fit() makes it: the
# training, then the push of the pool (one batch of points here, so that the
# push costs about a fifth of an iteration) and of one monitor point.
jk_step_call <- function(pb, threads, iters, batch = 1024L, h = 0.05) {
  D <- nrow(pb$pool)
  .Call(jkoflow:::C_jko_step, jkoflow:::arch(pb$net), pb$net$alpha_min, pb$net$theta,
        pb$pool, pb$pool[, 1L, drop = FALSE], 0, pb$pot,
        list(h = h, beta = 1, iters = as.integer(iters), batch = as.integer(batch),
             lr = 5e-3, lr_end = 5e-5),
        list(center = rep(0, D), scale = 1), as.integer(threads), 0L)
}

# Seconds per training iteration (loss, gradient, Adam) of jkoflow: `iters`
# iterations in one call, as in a JKO step (scratch allocated once per call),
# median over `reps` calls.
jk_train_time <- function(pb, threads, iters, reps, batch = 1024L, h = 0.05) {
  invisible(jk_step_call(pb, threads, 2L, batch, h))   # warm-up
  t <- vapply(seq_len(reps), function(i) {
    system.time(jk_step_call(pb, threads, iters, batch, h))[["elapsed"]] / iters
  }, 0)
  stats::median(t)
}

# Seconds per loss-and-gradient evaluation (one .Call, scratch included).
jk_loss_time <- function(pb, threads, reps, batch = 1024L, h = 0.05) {
  x <- pb$pool[, seq_len(batch), drop = FALSE]
  run <- function() .Call(jkoflow:::C_jko_loss, jkoflow:::arch(pb$net), pb$net$alpha_min,
                          pb$net$theta, x, pb$pot, h, 1, as.integer(threads))
  invisible(run())
  stats::median(vapply(seq_len(reps), function(i) system.time(run())[["elapsed"]], 0))
}

# Seconds per JKO step of a whole fit (training, pushing the pool of `pool`
# points and the monitor, the free energy; the per-step figures of
# fit$history), median over `steps` steps of `reps` fits.
jk_fit_step_time <- function(D, width, threads, iters, reps, steps = 3L, pool = 2^18) {
  sec <- unlist(lapply(seq_len(reps), function(r) {
    set.seed(r)
    fit <- jko_fit(potential_quadratic(diag(D)), init_gaussian(rep(0, D), 4), h = 0.05,
                   steps = steps, threads = threads, verbose = FALSE,
                   control = jko_control(hidden = c(width, width), iters = iters,
                                         pool = pool))
    fit$history$seconds[-1L]
  }))
  stats::median(sec)
}

# Multiply-adds per sample of one training iteration (loss and gradient; the
# O(D) and O(w) element-wise work and Adam are left out), from the kernels in
# src/ for L layers of equal width w, rank r, dimension D, Dp = D (D + 1) / 2:
#   forward (icnn.c)       per layer  P = A x, S = B x, y += 2 A'(p u) + B'u:
#                                     2 w r D + 2 w D + w r;
#                          l >= 2     W z, delta = W'u:            2 w^2
#   Hessian (hessian.c)    per layer  grad Q_l (G's quadratic part): w r D,
#                                     rank terms Mp u:             w Dp
#                          l >= 2     G = W J:                     w^2 D
#                                     G' diag(c) G (full gemm):    w D^2
#                          Cholesky                                D^3 / 6
#   backward (backward.c)  inverse from the Cholesky factor        D^3 / 3
#                          per layer  ubar = Mp'Hbar, S = Hbar u': 2 w Dp
#                                     A ybar, (2 p u) ybar', Pbar x':  3 w r D
#                                     B ybar, u ybar', Sbar x':        3 w D
#                                     grad Q reverse (Abar, Pbar):     2 w r D
#                          l >= 2     T = G Hbar:                  w D^2
#                                     Wbar += Gbar J', Jbar = W'Gbar: 2 w^2 D
#                                     delta and primal reverse:    4 w^2
# Where the rank terms go by the matrices M_k = A_k'A_k (icnn_mform() in
# src/icnn.h: D < 8 and D + 1 < 2 r), the per-layer rank work is instead
#   forward   S = M'xx + B x, y's sum_k u_k M_k and B'u:   2 w Dp + 2 w D
#   Hessian   grad Q = 2 M x + b, Mp u:                   w D^2 + w Dp
#   backward  ubar = Mp'(Hbar + x ybar'), Mbar = u (..)': 2 w Dp
#             B ybar, u ybar', Sbar x':                   3 w D
#             grad Q reverse (Y = Gbar x'):                w D^2
#             Mbar += sbar xx':                            w Dp
# (Abar = 2 A Mbar once a block of 128 samples: w r D^2 / 128, left out).
jk_madds <- function(D, w, r = 5L, L = 2L) {
  Dp <- D * (D + 1) / 2
  per_layer <- if (D < 8 && D + 1 < 2 * r) {
    (2 * w * Dp + 2 * w * D) + (w * D^2 + w * Dp) + (3 * w * Dp + 3 * w * D + w * D^2)
  } else {
    (2 * w * r * D + 2 * w * D + w * r) +                     # forward
      (w * r * D + w * Dp) +                                  # Hessian
      (2 * w * Dp + 3 * w * r * D + 3 * w * D + 2 * w * r * D) # backward
  }
  upper <- 2 * w^2 + (w^2 * D + w * D^2) + (w * D^2 + 2 * w^2 * D + 4 * w^2)
  L * per_layer + (L - 1) * upper + D^3 / 6 + D^3 / 3
}

# dgemm rate (GFLOP/s) of R's BLAS with `threads` threads: a child R with
# OPENBLAS_NUM_THREADS (and OMP_NUM_THREADS) set, best of `best` products
# of n x n matrices (after one unmeasured).
dgemm_rate <- function(threads, n = 2000L, best = 3L) {
  code <- sprintf(paste("set.seed(1); a <- matrix(rnorm(%d^2), %d); b <- a;",
                        "invisible(a %%*%% b);",
                        "t <- min(replicate(%d, system.time(a %%*%% b)[[\"elapsed\"]]));",
                        "cat(2 * %d^3 / t / 1e9)"), n, n, best, n)
  out <- system2(file.path(R.home("bin"), "Rscript"), c("-e", shQuote(code)),
                 env = c(paste0("OPENBLAS_NUM_THREADS=", threads),
                         paste0("OMP_NUM_THREADS=", threads)),
                 stdout = TRUE)
  as.numeric(utils::tail(out, 1))
}

fmt <- function(x, digits = 3) ifelse(is.na(x), "NA", formatC(x, digits = digits, format = "g"))
