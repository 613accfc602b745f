# A covtype-shaped logistic regression (issue 29, part 3): 581 012 rows x 54
# features, as the covertype data of the seed paper's largest experiment
# (Mokrov et al. 2021: 7.3 hours on the authors' GPU; 104 s for a
# sliced-Wasserstein peer on a GPU), simulated from a known model, or the
# real data when given.
#
#   Rscript inst/bench/covtype.R [--n=581012] [--batch=4096] [--mala=3000] [--is=0]
#       [--chains=2] [--seed=1] [--threads=2] [--max_time=300] [--data=covtype.rds]
#
# The design: an intercept, 9 continuous columns (correlated normals, as
# covtype's standardised elevation, slopes, distances) and 44 binary ones
# (as its 4 wilderness and 40 soil-type indicators: two one-hot groups),
# weights drawn once from N(0, 0.3^2), y ~ Bernoulli(logistic(x w)). The
# target: target_logistic(x, y, batch = batch), the reference model
# (Gamma(1, 100)-normal prior, 55 parameters), each training evaluation on
# `batch` rows drawn afresh, scaled by n / batch (unbiased); the verdict and
# the evidence on all rows. `--data` reads a list(x, y) (the real covtype,
# standardised, with y the class 2 indicator as in the paper) instead.
#
# Timed: jko_fit(target) with all defaults. The reference: `chains` MALA
# chains on all rows, preconditioned by the Laplace approximation's
# covariance at the mode (exact gradients, step size tuned during the
# first third for an acceptance near 0.57, then fixed), `mala` kept
# iterations each. Printed: the fit's time, the largest |mean difference|
# in posterior sds and the largest relative sd difference against the
# reference (aims: 0.1 sd, 10%), the reference's own Monte Carlo error,
# the verdict, the fit's time by phase, and the peak resident memory of the
# process (VmHWM) against the data's size.

suppressPackageStartupMessages(library(jkoflow))
args <- commandArgs(TRUE)
arg <- function(name, default) {
  a <- grep(paste0("^--", name, "="), args, value = TRUE)
  if (length(a)) sub(".*=", "", a[1]) else default
}
n <- as.integer(arg("n", 581012))
batch <- as.integer(arg("batch", 4096))
n_mala <- as.integer(arg("mala", 3000))
n_is <- as.integer(arg("is", 0))      # draws of the importance-sampling reference (0: none)
chains <- as.integer(arg("chains", 2))
seed <- as.integer(arg("seed", 1))
threads <- as.integer(arg("threads", 2))
data_file <- arg("data", "")
max_time <- as.numeric(arg("max_time", 300))    # jko_control()'s default
options(jkoflow.threads = threads)

load_now <- function() {
  l <- readLines("/proc/loadavg", n = 1L)
  paste("load", paste(strsplit(l, " ")[[1]][1:3], collapse = " "))
}
peak_mb <- function() {
  s <- readLines("/proc/self/status")
  as.numeric(gsub("[^0-9]", "", grep("^VmHWM", s, value = TRUE))) / 1024
}
say <- function(...) cat(sprintf(...), sep = "")

set.seed(seed)
if (nzchar(data_file)) {
  d <- readRDS(data_file)
  x <- as.matrix(d$x)
  y <- d$y
  w_true <- NULL
  n <- nrow(x)
} else {
  p_cont <- 9L
  L <- chol(0.5 * diag(p_cont) + 0.5 * 0.3^abs(outer(1:p_cont, 1:p_cont, "-")))
  x <- matrix(0, n, 54L)
  x[, 1] <- 1
  x[, 2:10] <- matrix(rnorm(n * p_cont), n) %*% L
  wild <- sample.int(4L, n, TRUE, prob = c(0.45, 0.05, 0.44, 0.06))
  soil <- sample.int(40L, n, TRUE, prob = rev(seq_len(40))^1.5)
  x[cbind(seq_len(n), 10L + wild)] <- 1
  x[cbind(seq_len(n), 14L + soil)] <- 1
  w_true <- rnorm(54L, 0, 0.3)
  y <- rbinom(n, 1L, plogis(drop(x %*% w_true)))
}
say("covtype-shaped data: %d x %d, %.0f MB, %.3f of y = 1; minibatches of %d rows; %d threads   [%s]\n",
    nrow(x), ncol(x), object.size(x) / 2^20, mean(y), batch, threads, load_now())
tg <- target_logistic(x, y, batch = batch)
full <- jkoflow:::full_data(tg)   # the same data, every row at every evaluation

# ---- jkoflow with the defaults ------------------------------------------------
# The fit's time by phase: timers around the package's own functions (they
# change nothing in the fit): the first mode (init_laplace()), the search of
# further modes, the rest of the start (the ELBO choice and adapt_start()),
# the monitor's evaluation (new_flow() less the start), the exact draws and
# their diagnostics.
ns <- asNamespace("jkoflow")
phase_time <- new.env()
time_phase <- function(fname) {
  f <- get(fname, ns)
  g <- function(...) {
    t0 <- proc.time()[["elapsed"]]
    on.exit(phase_time[[fname]] <- (phase_time[[fname]] %||% 0) + proc.time()[["elapsed"]] - t0)
    f(...)
  }
  `%||%` <- function(a, b) if (is.null(a)) b else a
  environment(g) <- list2env(list(f = f, fname = fname, `%||%` = `%||%`), parent = environment(f))
  unlockBinding(fname, ns)
  assign(fname, g, ns)
}
phases <- c("init_laplace", "find_modes_from", "elbo_choice", "adapt_start", "stationary_start",
            "new_flow", "jko_run", "make_posterior_draws", "fit_modes")
for (f in phases) time_phase(f)
gc(reset = TRUE)
t_fit <- system.time(fit <- jko_fit(tg, verbose = TRUE, max_time = max_time))[["elapsed"]]
say("jko_fit(target_logistic(x, y, batch = %d)): %.1f s, %d steps   [%s]; peak memory so far %.0f MB\n",
    batch, t_fit, length(fit$theta), load_now(), peak_mb())
pt <- vapply(phases, function(f) if (is.null(phase_time[[f]])) 0 else phase_time[[f]], 0)
say(paste0("  phases: first mode (init_laplace) %.1f s, search of further modes %.1f s, ",
           "choice and adaptation of the start %.1f s (ELBO %.1f, adapt_start %.1f), ",
           "monitor %.1f s, flow steps %.1f s, exact draws with their diagnostics %.1f s ",
           "(%d proposals, thin %d), mode weights %.1f s, the rest %.1f s\n"),
    pt[["init_laplace"]], pt[["find_modes_from"]],
    pt[["stationary_start"]] - pt[["init_laplace"]] - pt[["find_modes_from"]],
    pt[["elbo_choice"]], pt[["adapt_start"]], pt[["new_flow"]] - pt[["stationary_start"]],
    pt[["jko_run"]], pt[["make_posterior_draws"]], length(fit$draws$log_weights),
    as.integer(fit$draws$thin), pt[["fit_modes"]],
    t_fit - pt[["new_flow"]] - pt[["jko_run"]] - pt[["make_posterior_draws"]] - pt[["fit_modes"]])
cat(strwrap(jkoflow:::verdict_text(fit$verdict), indent = 2, exdent = 2), sep = "\n")
draws <- jkoflow:::posterior_draws(fit, "unconstrained")$x

# ---- the reference: MALA on all rows ------------------------------------------
lap <- init_laplace(full, inflate = 1)
C <- lap$cov
R <- chol(C)
D <- length(lap$mode)
phi_grad <- function(t) potential_value(full, matrix(t, 1L), grad = TRUE)
mala <- function(start, iters, eps) {
  cur <- start
  pg <- phi_grad(cur)
  out <- matrix(NA_real_, iters, D)
  acc <- logical(iters)
  tune <- iters %/% 3L
  for (i in seq_len(iters)) {
    mu <- cur - eps^2 / 2 * drop(C %*% drop(pg$gradient))
    prop <- mu + eps * drop(crossprod(R, rnorm(D)))
    pq <- phi_grad(prop)
    if (is.finite(pq$value)) {
      mu_back <- prop - eps^2 / 2 * drop(C %*% drop(pq$gradient))
      # log q(cur | prop) - log q(prop | cur), in the metric C
      lq <- function(a, m) { z <- backsolve(R, a - m, transpose = TRUE); -sum(z^2) / (2 * eps^2) }
      la <- -pq$value + pg$value + lq(cur, mu_back) - lq(prop, mu)
      if (log(runif(1)) < la) { cur <- prop; pg <- pq; acc[i] <- TRUE }
    }
    if (i <= tune && i %% 50L == 0L) {
      r <- mean(acc[(i - 49L):i])
      eps <- eps * exp(r - 0.57)
    }
    out[i, ] <- cur
  }
  list(draws = out[-seq_len(tune), , drop = FALSE], acc = mean(acc[-seq_len(tune)]), eps = eps)
}
t_ref <- system.time({
  runs <- lapply(seq_len(chains), function(k) {
    start <- lap$mode + drop(crossprod(R, rnorm(D)))
    mala(start, n_mala + n_mala %/% 2L, 1.6 / D^(1/3))
  })
})[["elapsed"]]
ref <- do.call(rbind, lapply(runs, `[[`, "draws"))
say("reference: %d MALA chains x %d kept iterations on all rows: %.0f s, acceptance %s   [%s]\n",
    chains, nrow(runs[[1]]$draws), t_ref,
    paste(sprintf("%.2f", vapply(runs, `[[`, 0, "acc")), collapse = ", "), load_now())

ref_mean <- colMeans(ref)
ref_sd <- apply(ref, 2, sd)
ess <- if (requireNamespace("posterior", quietly = TRUE)) {
  vapply(seq_len(D), function(j) posterior::ess_bulk(sapply(runs, function(r) r$draws[, j])), 0)
} else rep(NA_real_, D)
mc_mean <- ref_sd / sqrt(ess)
dm <- abs(colMeans(draws) - ref_mean) / ref_sd
ds <- apply(draws, 2, sd) / ref_sd - 1
say("jkoflow against the reference (55 parameters, unconstrained scale):\n")
say("  largest |mean difference| %.3f sd (aim 0.1); median %.3f; reference's MC error of the means at most %.3f sd (ESS %.0f to %.0f)\n",
    max(dm), median(dm), max(mc_mean / ref_sd), min(ess), max(ess))
say("  largest |sd ratio - 1| %.3f (aim 0.10); median %.3f\n", max(abs(ds)), median(abs(ds)))
if (!is.null(w_true)) {
  say("  the true weights: |posterior mean - w| / sd at most %.2f (reference), %.2f (jkoflow)\n",
      max(abs(ref_mean[1:54] - w_true) / ref_sd[1:54]),
      max(abs(colMeans(draws)[1:54] - w_true) / ref_sd[1:54]))
}
# ---- a second reference: importance sampling on all rows -------------------
# (--is=N) N draws of the Laplace approximation with Student t tails (7 df,
# sds 1.2 times the Laplace ones: heavier than the posterior everywhere),
# self-normalised weights on all rows, in blocks of 4096. Its Monte Carlo
# error is sd / sqrt(ESS) for the means, and its Pareto k-hat says whether
# the weights have a variance; it checks the MALA reference, whose ESS of
# a few hundred leaves the means 0.045 sd uncertain.
if (n_is > 0) {
  qi <- jkoflow:::init_mvt(lap$mode, 1.2^2 * C * 5 / 7, 7)
  t_is <- system.time({
    lw <- numeric(0)
    xi <- matrix(0, 0, D)
    for (b in seq_len(ceiling(n_is / 4096))) {
      xb <- qi$sample(min(4096L, n_is - nrow(xi)))
      lw <- c(lw, -jkoflow:::potential_values(full, xb) - qi$log_density(xb))
      xi <- rbind(xi, xb)
    }
  })[["elapsed"]]
  wi <- exp(lw - max(lw))
  wi <- wi / sum(wi)
  is_mean <- colSums(wi * xi)
  is_sd <- sqrt(colSums(wi * sweep(xi, 2L, is_mean)^2))
  is_ess <- 1 / sum(wi^2)
  say("reference 2: importance sampling, %d draws of a Laplace t on all rows: %.0f s, ESS %.0f (%.0f%%), Pareto k-hat %.2f; MC error of the means about %.3f sd   [%s]\n",
      n_is, t_is, is_ess, 100 * is_ess / n_is, jkoflow:::pareto_khat(lw), 1 / sqrt(is_ess), load_now())
  dm2 <- abs(colMeans(draws) - is_mean) / is_sd
  ds2 <- apply(draws, 2, sd) / is_sd - 1
  say("jkoflow against reference 2: largest |mean difference| %.3f sd (aim 0.1), median %.3f; largest |sd ratio - 1| %.3f (aim 0.10), median %.3f\n",
      max(dm2), median(dm2), max(abs(ds2)), median(abs(ds2)))
  say("MALA against reference 2: largest |mean difference| %.3f sd, largest |sd ratio - 1| %.3f\n",
      max(abs(ref_mean - is_mean) / is_sd), max(abs(ref_sd / is_sd - 1)))
}
say("time: jkoflow %.1f s from the defaults (aim 104 s on 2 cores); peak resident memory %.0f MB, the data %.0f MB   [%s]\n",
    t_fit, peak_mb(), object.size(x) / 2^20, load_now())
