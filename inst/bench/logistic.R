# Bayesian logistic regression benchmark (issue 4): the reference experiment
# of Mokrov et al. (2021) on Pima (mlbench::PimaIndiansDiabetes, 768 x 8),
# twonorm and ringnorm (mlbench generators, 7400 x 20).
#
# Model: target_logistic(prior = "gamma"), no intercept, as the reference.
# Features are standardised with the training split's means and sds (the
# reference's data, the IDA benchmark files, come standardised; mlbench's Pima
# is raw). Random 80/20 splits. The flow starts from a widened Laplace
# approximation (init_laplace(inflate = 1.5)): from the Gamma(1, 100) prior
# itself the trainer diverges in the first steps (measured on Pima.tr).
# Reported: test accuracy and mean test log-likelihood of the posterior
# predictive (4096 samples), wall time, evidence diagnostics, and on the
# first split the posterior mean and sd of each weight against a long
# random-walk Metropolis run (proposal: 2.38^2 / D times the Laplace
# covariance).
#
# Run: Rscript inst/bench/logistic.R [splits]   (env JKO_LIB: library path)
lib <- Sys.getenv("JKO_LIB")
if (nzchar(lib)) library(jkoflow, lib.loc = lib) else library(jkoflow)
library(mlbench)
args <- commandArgs(TRUE)
splits <- if (length(args)) as.integer(args[1]) else 5L
settings <- list(h = 0.1, steps = 3, hidden = c(16, 16), batch = 256, iters = 150, lr = 5e-3)
mcmc_iter <- 100000L

set.seed(2024)
data_sets <- list(
  diabetis = {
    data(PimaIndiansDiabetes, package = "mlbench", envir = environment())
    list(x = as.matrix(PimaIndiansDiabetes[, 1:8]), y = PimaIndiansDiabetes$diabetes)
  },
  twonorm = { d <- mlbench.twonorm(7400, d = 20); list(x = d$x, y = d$classes) },
  ringnorm = { d <- mlbench.ringnorm(7400, d = 20); list(x = d$x, y = d$classes) }
)
published <- data.frame(data = c("diabetis", "twonorm", "ringnorm"),
                        acc = c(0.773, 0.982, 0.740), loglik = c(-0.451, -0.058, -0.499))

rwm <- function(tg, init, n_iter) {
  D <- tg$dim
  L <- t(chol(2.38^2 / D * init$cov))
  phi <- function(t) potential_value(tg, matrix(t, 1L))
  cur <- init$mode
  fcur <- phi(cur)
  out <- matrix(NA_real_, n_iter, D)
  acc <- 0
  for (i in seq_len(n_iter)) {
    prop <- cur + drop(L %*% stats::rnorm(D))
    fp <- phi(prop)
    if (log(stats::runif(1)) < fcur - fp) { cur <- prop; fcur <- fp; acc <- acc + 1 }
    out[i, ] <- cur
  }
  list(draws = out[-seq_len(n_iter %/% 10), , drop = FALSE], accept = acc / n_iter)
}

ess_1d <- function(z) {  # Geyer's initial positive sequence, autocorrelations by FFT
  n <- length(z); z <- z - mean(z)
  f <- fft(c(z, rep(0, n)))
  ac <- Re(fft(Mod(f)^2, inverse = TRUE))[seq_len(n)] / (2 * n) / n
  ac <- ac / ac[1]
  s <- 0
  for (k in seq(2, n - 1, by = 2)) {
    g <- ac[k] + ac[k + 1]
    if (g < 0) break
    s <- s + g
  }
  n / (1 + 2 * s)  # s = rho_1 + rho_2 + ... up to the first negative pair sum
}

rows <- list()
for (nm in names(data_sets)) {
  ds <- data_sets[[nm]]
  N <- nrow(ds$x)
  for (sp in seq_len(splits)) {
    set.seed(1000 * sp + nchar(nm))
    tr <- sample.int(N, round(0.8 * N))
    mu <- colMeans(ds$x[tr, ]); sdv <- apply(ds$x[tr, ], 2, sd)
    xtr <- scale(ds$x[tr, ], mu, sdv); xte <- scale(ds$x[-tr, ], mu, sdv)
    ytr <- ds$y[tr]; yte <- as.integer(ds$y[-tr]) - 1L
    t0 <- proc.time()[["elapsed"]]
    tg <- target_logistic(xtr, ytr)
    init <- init_laplace(tg, inflate = 1.5)
    fit <- do.call(jko_fit, c(list(tg, init, verbose = FALSE), settings))
    pr <- predict(fit, xte, n = 4096)
    secs <- proc.time()[["elapsed"]] - t0
    ev <- jko_evidence(fit, 10000)
    rows[[length(rows) + 1L]] <- data.frame(
      data = nm, split = sp, acc = mean((pr > 0.5) == yte),
      loglik = mean(ifelse(yte == 1L, log(pr), log1p(-pr))), seconds = secs,
      log_z = ev$log_z, ess_frac = ev$ess / ev$n, pareto_k = ev$pareto_k)
    print(rows[[length(rows)]], row.names = FALSE)
    if (sp == 1L) {
      t1 <- proc.time()[["elapsed"]]
      mc <- rwm(tg, init, mcmc_iter)
      ess <- min(apply(mc$draws, 2L, ess_1d))
      s <- jko_sample(fit, 10000)$x
      m_mc <- colMeans(mc$draws); s_mc <- apply(mc$draws, 2L, sd)
      dm <- abs(colMeans(s) - m_mc) / s_mc
      ds_ <- abs(apply(s, 2L, sd) - s_mc) / s_mc
      cat(sprintf(paste0("  %s: RWM %d iterations (%.0f s, acceptance %.2f, min ESS %.0f):",
                         " flow vs MCMC over the %d weights and log alpha:\n",
                         "    |mean diff| / sd: max %.3f (weights only: %.3f), median %.3f;",
                         " |sd ratio - 1|: max %.3f (weights only: %.3f)\n"),
                  nm, mcmc_iter, proc.time()[["elapsed"]] - t1, mc$accept, ess, tg$p,
                  max(dm), max(dm[seq_len(tg$p)]), median(dm), max(ds_),
                  max(ds_[seq_len(tg$p)])))
    }
  }
}
res <- do.call(rbind, rows)
cat("\nPer split:\n"); print(res, row.names = FALSE, digits = 4)
agg <- aggregate(cbind(acc, loglik, seconds, pareto_k) ~ data, res, mean)
agg <- merge(agg, setNames(published, c("data", "acc_published", "loglik_published")))
cat(sprintf("\nMeans over %d split%s (settings: %s):\n", splits, if (splits == 1) "" else "s",
            paste(names(settings), sapply(settings, paste, collapse = "x"), sep = " = ",
                  collapse = ", ")))
print(agg, row.names = FALSE, digits = 4)
