# Gaussian mixtures as targets, from the defaults: the mixtures of
# inst/bench/gmm.R (K = 5, 6, ..., 10 unit Gaussians, equal weights, centres
# uniform in [-5, 5]^D: the authors' own, or --centres=seeded) given to
# jko_fit(target_logdensity(<log mixture>, <its gradient>)) with nothing
# else. Per (D, seed):
#
#   found     modes found by the fit's search / modes of the mixture (the
#             distinct end points of 4096 exact mixture draws descended);
#   starts    starts of the search, and its seconds;
#   tv_modes  total variation between mode_weights(fit) (importance
#             weights of the flow's draws, each in the basin of the mode it
#             descends to) and the same basins' masses under the mixture
#             (its exact draws, descended the same way); mass in basins of
#             modes the search missed counts in full;
#   max_z     the largest |weight - truth| / se over the modes (calibration
#             of the standard errors);
#   tv_cells  gmm.R's measure: the total variation between the mixture's
#             nearest-centre cell probabilities and the flow's draws'
#             importance-weighted ones (tv_flow: unweighted, the flow alone;
#             tv_exact: the fit's 4000 exact draws, fit$draws);
#   symkl     KL(flow || mix) + KL(mix || flow) of the flow's last law
#             (exact densities both ways, `n` draws a direction), with se;
#   log_z     the log evidence from the mode weights' draws (truth 0: the
#             mixture is normalised) and its se;
#   seconds   the whole jko_fit() (search, flow, verdict), and the load.
#
# With --stan=1, rstan's NUTS (4 chains, 1000 + 1000 iterations, its
# default inits) on the same mixtures: its draws' cell and basin weights
# against the truth the same way, and seconds (the model compiled once,
# outside the timing).
#
#   Rscript inst/bench/multimodal.R --dims=2,4,6,8,10,12 --seeds=1 [--n=8192]
#     [--centres=published|seeded] [--stan=1] [--jko=0] [--threads=1]
#     [--out=multimodal.rds] [--lib=PATH]
#
# --jko=0 skips the fits (rstan alone: the basins are then those of
# find_modes() on the target, the search a fit makes).
args <- commandArgs(trailingOnly = TRUE)
opt <- function(name, default) {
  v <- sub(paste0("^--", name, "="), "", grep(paste0("^--", name, "="), args, value = TRUE))
  if (length(v)) v[[length(v)]] else default
}
num <- function(name, default) as.numeric(strsplit(opt(name, default), ",")[[1]])
if (nzchar(opt("lib", ""))) .libPaths(c(opt("lib", ""), .libPaths()))
suppressPackageStartupMessages(library(jkoflow))
dims <- as.integer(num("dims", "2,4,6,8,10,12"))
seeds <- as.integer(num("seeds", "1"))
n_kl <- as.integer(num("n", "8192"))
threads <- as.integer(num("threads", "1"))
use_stan <- as.logical(as.integer(num("stan", "0")))
use_jko <- as.logical(as.integer(num("jko", "1")))
out_file <- opt("out", "")
# --centres=published (the default): the authors' own mixtures, those of
# gmm.R; --centres=seeded: drawn with set.seed(1000 D + seed), as before
# 2026-12-06 (inst/bench/gmm-mixtures.R)
centres_opt <- opt("centres", "published")
local({
  f <- sub("^--file=", "", grep("^--file=", commandArgs(FALSE), value = TRUE))
  source(file.path(if (length(f)) dirname(f) else "inst/bench", "gmm-mixtures.R"), local = globalenv())
})
load1 <- function() as.numeric(strsplit(readLines("/proc/loadavg"), " ")[[1]][1])

nearest <- function(x, centres) {
  d2 <- outer(rowSums(x^2), rowSums(centres^2), "+") - 2 * x %*% t(centres)
  max.col(-d2, ties.method = "first")
}
mix_draw <- function(centres, n) {
  k <- sample.int(nrow(centres), n, replace = TRUE)
  centres[k, , drop = FALSE] + matrix(rnorm(n * ncol(centres)), n)
}
# the mixture's modes: distinct end points of descended exact draws
true_modes <- function(pot, centres, n = 4096) {
  x <- mix_draw(centres, n)
  s <- jkoflow:::descend(pot, x, diag(ncol(x)), maxit = 500L, tol = 1e-10)
  e <- s$x[s$converged, , drop = FALSE]
  keep <- e[1L, , drop = FALSE]
  for (i in seq_len(nrow(e))) {
    if (min(sqrt(rowSums(sweep(keep, 2L, e[i, ])^2))) > 1e-3) keep <- rbind(keep, e[i, ])
  }
  keep
}

if (use_stan) {
  suppressPackageStartupMessages(library(rstan))
  stan_code <- "
data { int<lower=1> K; int<lower=1> D; matrix[K, D] mu; }
parameters { vector[D] x; }
model {
  vector[K] lp;
  for (k in 1:K) lp[k] = normal_lpdf(x | mu[k]', 1);
  target += log_sum_exp(lp);
}"
  t_compile <- system.time(sm <- stan_model(model_code = stan_code, verbose = FALSE))[["elapsed"]]
  cat(sprintf("Stan model compiled in %.0f s\n", t_compile))
}

rows <- list()
for (D in dims) {
  for (s in seeds) {
    centres <- gmm_centres(D, s, centres_opt)
    K <- nrow(centres)
    pot <- potential_gmm(centres, sd = 1)
    tg <- target_logdensity(function(x) -potential_value(pot, x),
                            function(x) -potential_value(pot, x, grad = TRUE)$gradient, dim = D)
    tm <- true_modes(pot, centres)
    p_x <- mix_draw(centres, 65536)
    cp <- tabulate(nearest(p_x, centres), K) / nrow(p_x)
    row <- data.frame(D = D, seed = s, K = K, modes_true = nrow(tm))
    if (use_jko) {
    l0 <- load1()
    t0 <- proc.time()[["elapsed"]]
    fit <- suppressWarnings(jko_fit(tg, verbose = FALSE, threads = threads))
    secs <- proc.time()[["elapsed"]] - t0
    l1 <- load1()
    mw <- fit$modes
    if (is.null(mw)) mw <- mode_weights(fit, threads = threads)
    search <- attr(mw, "search")
    # the truth on the same basins: exact draws, uniform weights
    truth <- jkoflow:::weigh_modes(pot, p_x, -potential_value(pot, p_x), search)
    tv_modes <- 0.5 * (sum(abs(mw$weight - truth$weight)) +
                         abs(attr(mw, "elsewhere") - attr(truth, "elsewhere")))
    max_z <- max(abs(mw$weight - truth$weight) / pmax(mw$se, 1e-12))
    # gmm.R's cells, by the flow's draws with importance weights
    # the flow's own draws (not the exact correction's), with their densities
    q <- jko_sample(fit, n_kl, threads = threads, correct = FALSE)
    qx <- as.matrix(q$x)
    lp_q <- -potential_value(pot, qx)
    lw <- lp_q - q$log_density
    w <- exp(lw - max(lw)); w <- w / sum(w)
    cq_w <- vapply(seq_len(K), function(k) sum(w[nearest(qx, centres) == k]), 0)
    cq <- tabulate(nearest(qx, centres), K) / nrow(qx)
    tv_cells <- 0.5 * sum(abs(cq_w - cp))
    tv_flow <- 0.5 * sum(abs(cq - cp))
    # the fit's exact draws (independence Metropolis-Hastings, 4000)
    ex <- fit$draws$x
    tv_exact <- if (is.null(ex)) NA_real_ else
      0.5 * sum(abs(tabulate(nearest(ex, centres), K) / nrow(ex) - cp))
    # SymKL of the flow's law to the mixture
    a <- q$log_density - lp_q
    px <- p_x[seq_len(n_kl), , drop = FALSE]
    b <- -potential_value(pot, px) - jko_density(fit, px, log = TRUE, threads = threads)$log_density
    symkl <- mean(a) + mean(b)
    symkl_se <- sqrt(var(a) / length(a) + var(b) / length(b))
    row <- data.frame(row, found = nrow(search$modes),
                      starts = search$starts, search_s = search$seconds,
                      tv_modes = tv_modes, max_z = max_z, elsewhere = attr(mw, "elsewhere"),
                      tv_cells = tv_cells, tv_flow = tv_flow, tv_exact = tv_exact,
                      symkl = symkl, symkl_se = symkl_se,
                      log_z = attr(mw, "log_z"), log_z_se = attr(mw, "log_z_se"),
                      steps = nrow(fit$history) - 1L, seconds = secs,
                      load = (l0 + l1) / 2)
    cat(sprintf(paste0("D = %2d K = %2d seed %d: %d/%d modes found (%d starts, %.2f s); ",
                       "mode weights TV %.4f (max |z| %.1f), cells TV %.4f (flow alone %.4f, exact draws %.4f); ",
                       "SymKL %.4f (se %.4f); log Z %.4f (se %.4f); %d steps, %.0f s, load %.1f\n"),
                D, K, s, row$found, row$modes_true, row$starts, row$search_s, tv_modes, max_z,
                tv_cells, tv_flow, tv_exact, symkl, symkl_se, row$log_z, row$log_z_se, row$steps, secs,
                row$load))
    }
    if (use_stan) {
      if (!use_jko) {
        # the search a fit would make, for the basins
        search <- find_modes(tg)
        truth <- jkoflow:::weigh_modes(pot, p_x, -potential_value(pot, p_x), search)
      }
      t1 <- proc.time()[["elapsed"]]
      sf <- suppressWarnings(sampling(sm, data = list(K = K, D = D, mu = centres), chains = 4,
                                      iter = 2000, refresh = 0, seed = 1000 * D + s,
                                      cores = 1))
      st <- proc.time()[["elapsed"]] - t1
      sx <- as.matrix(sf, pars = "x")
      cs <- tabulate(nearest(sx, centres), K) / nrow(sx)
      sm_w <- jkoflow:::weigh_modes(pot, sx, -potential_value(pot, sx), search)
      row$stan_tv_cells <- 0.5 * sum(abs(cs - cp))
      row$stan_tv_modes <- 0.5 * (sum(abs(sm_w$weight - truth$weight)) +
                                    abs(attr(sm_w, "elsewhere") - attr(truth, "elsewhere")))
      row$stan_cells_visited <- sum(cs > 0)
      row$stan_seconds <- st
      row$stan_load <- load1()
      cat(sprintf(paste0("D = %2d K = %2d seed %d: rstan NUTS, 4 chains: cells TV %.4f, mode weights TV %.4f, ",
                         "%d of %d cells visited, %.0f s, load %.1f\n"),
                  D, K, s, row$stan_tv_cells, row$stan_tv_modes, row$stan_cells_visited, K, st,
                  row$stan_load))
    }
    rows[[length(rows) + 1L]] <- row
    if (nzchar(out_file)) saveRDS(do.call(rbind, rows), out_file)
  }
}
res <- do.call(rbind, rows)
options(width = 220)
print(format(res, digits = 3), row.names = FALSE)
