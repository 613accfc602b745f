# Ornstein-Uhlenbeck accuracy benchmark (Mokrov et al. 2021, section 5.1, whose
# published figures the README quotes): target N(m, Sigma) with m ~ N(0, I)
# and Sigma a random SPD matrix with eigenvalues in [1, 2]; rho_0 = N(0, I);
# dX = -Sigma^{-1}(X - m) dt + sqrt(2) dW; h = 0.05, 20 steps to t = 1.
# Symmetric KL to the closed-form marginal at t = 0.9, both directions
# estimated with the fit's own exact densities on 8192 samples; wall time of
# the whole fit (t = 1).
#
#   Rscript inst/bench/ou.R [dims] [seeds] [iters] [batch] [threads] [pool]
#   Rscript inst/bench/ou.R 1,2,4,6,8,10,12 3 500 1024 2
# pool: samples of rho_{k-1} per step (default min(iters * batch, 2^18));
# pool = iters * batch means every iteration sees fresh samples, as the
# reference implementation's push of new samples through all earlier maps.
suppressPackageStartupMessages(library(jkoflow))
args <- commandArgs(trailingOnly = TRUE)
arg <- function(i, default) if (length(args) >= i) args[[i]] else default
dims <- as.integer(strsplit(arg(1, "1,2,4,6,8,10,12"), ",")[[1]])
seeds <- seq_len(as.integer(arg(2, "3")))
iters <- as.integer(arg(3, "500"))
batch <- as.integer(arg(4, "1024"))
threads <- as.integer(arg(5, "2"))
pool <- if (length(args) >= 6) as.integer(args[[6]]) else NULL
h <- 0.05; steps <- 20; t_eval <- 0.9; n_kl <- 8192

paper <- c(`1` = 6.8e-4, `2` = 3.8e-3, `4` = 7.5e-3, `6` = 1.3e-2, `8` = 1.4e-2,
           `10` = 1.4e-2, `12` = 1.8e-2)

expm_sym <- function(A, t) {
  e <- eigen(A, symmetric = TRUE)
  e$vectors %*% diag(exp(-t * e$values), nrow(A)) %*% t(e$vectors)
}

# The law at time t of dX = -A (X - m) dt + sqrt(2) dW from N(0, I).
ou_marginal <- function(A, m, t) {
  E <- expm_sym(A, t)
  list(mean = drop(m - E %*% m),
       cov = E %*% E + solve(A) %*% (diag(nrow(A)) - E %*% E))
}

dmvn_log <- function(x, mean, cov) {
  R <- chol(cov)
  z <- backsolve(R, t(x) - mean, transpose = TRUE)
  -0.5 * colSums(z^2) - sum(log(diag(R))) - ncol(x) / 2 * log(2 * pi)
}

rmvn <- function(n, mean, cov) {
  sweep(matrix(rnorm(n * length(mean)), n) %*% chol(cov), 2L, mean, "+")
}

random_target <- function(D) {
  Q <- qr.Q(qr(matrix(rnorm(D * D), D)))
  Sigma <- Q %*% diag(runif(D, 1, 2), D) %*% t(Q)
  list(m = rnorm(D), Sigma = (Sigma + t(Sigma)) / 2)
}

rows <- list()
for (D in dims) {
  for (s in seeds) {
    set.seed(1000 * D + s)
    tg <- random_target(D)
    A <- solve(tg$Sigma); A <- (A + t(A)) / 2
    t0 <- proc.time()[["elapsed"]]
    fit <- jko_fit(potential_quadratic(A, tg$m), init_gaussian(rep(0, D)), h = h,
                   steps = steps, hidden = c(64, 64), rank = 5, batch = batch,
                   iters = iters, threads = threads, pool = pool, verbose = FALSE)
    secs <- proc.time()[["elapsed"]] - t0
    truth <- ou_marginal(A, tg$m, t_eval)
    k <- round(t_eval / h)
    q <- jko_sample(fit, n_kl, step = k)
    kl_qp <- mean(q$log_density - dmvn_log(q$x, truth$mean, truth$cov))
    xp <- rmvn(n_kl, truth$mean, truth$cov)
    dq <- jko_density(fit, xp, step = k, log = TRUE)
    kl_pq <- mean(dmvn_log(xp, truth$mean, truth$cov) - dq$log_density)
    rows[[length(rows) + 1L]] <- data.frame(D = D, seed = s, kl_qp = kl_qp,
                                            kl_pq = kl_pq, symkl = kl_qp + kl_pq,
                                            seconds = secs)
    cat(sprintf("D = %2d seed %d: SymKL %.2e (model||true %.2e, true||model %.2e), %.0f s\n",
                D, s, kl_qp + kl_pq, kl_qp, kl_pq, secs))
  }
}
res <- do.call(rbind, rows)
agg <- do.call(rbind, lapply(split(res, res$D), function(r) data.frame(
  D = r$D[1], runs = nrow(r), symkl_mean = mean(r$symkl),
  median_log10 = stats::median(log10(pmax(r$symkl, 1e-12))),
  paper_mean = unname(paper[as.character(r$D[1])]),
  seconds_t1 = stats::median(r$seconds))))
cat(sprintf("\nOU benchmark: h = %g, %d steps, %d iterations x batch %d per step, pool %s, %d threads (BLAS: %s)\n",
            h, steps, iters, batch, if (is.null(pool)) "default" else pool, threads,
            extSoftVersion()[["BLAS"]]))
print(format(agg, digits = 3), row.names = FALSE)
