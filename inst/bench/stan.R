# jkoflow against rstan's NUTS on the same Stan programs, side by side in
# one run: a regression (kidiq_momiq), a hierarchical model (eight schools,
# non-centred), a time series (AR(5)), and a GLM (logistic regression on
# Pima). Reference answers are long runs from posteriors-targets.R (grid
# quadrature for the first three, a 4e5-draw HMC run for Pima), all on
# Stan's unconstrained scale, where both samplers are compared.
#
#   Rscript inst/bench/stan.R [names, comma-separated | all] [seed] [out.rds]
#
# Columns: compile seconds (once per program, needed by both), NUTS seconds
# (4 chains, rstan's defaults: 1000 warm-up + 1000 draws each, 2 cores),
# jkoflow seconds (target_stan() set-up + jko_fit() from its defaults +
# 4000 draws); accuracy of each against the reference, as the worst
# |mean - ref| / ref sd and the worst |sd / ref sd - 1| over the
# coordinates, for NUTS's 4000 draws, jkoflow's 4000 draws, and jkoflow's
# 4000 draws resampled by importance weights (SIR); log Z from
# jko_evidence() (20000 draws) and from bridgesampling::bridge_sampler() on
# the NUTS fit, with their standard errors; and what one batch of 512
# grad_log_prob() calls costs. The programs keep every constant (target +=),
# so log Z is the marginal likelihood, and their log_prob is checked
# against the battery's R log-densities before anything runs.

local({
  f <- sub("^--file=", "", grep("^--file=", commandArgs(FALSE), value = TRUE))
  dir <- if (length(f)) dirname(f) else "inst/bench"
  source(file.path(dir, "common.R"))
  source(file.path(dir, "posteriors-targets.R"), local = globalenv())
})
suppressPackageStartupMessages({
  library(rstan)
  library(bridgesampling)
})
options(width = 200, jkoflow.threads = 2)
args <- bench_args()
seed <- if (length(args) >= 2L) as.integer(args[2]) else 1L
out_file <- if (length(args) >= 3L) args[3] else NA

programs <- list(
  kidiq_momiq = list(
    battery = "kidiq_momiq",
    code = "
data { int N; vector[N] kid_score; vector[N] mom_iq; }
parameters { vector[2] beta; real<lower=0> sigma; }
model {
  target += cauchy_lpdf(sigma | 0, 2.5) + log(2);
  target += normal_lpdf(kid_score | beta[1] + beta[2] * mom_iq, sigma);
}",
    data = function() list(N = length(.pb_data$kid_score), kid_score = .pb_data$kid_score,
                           mom_iq = .pb_data$mom_iq)),
  eight_schools_nc = list(
    battery = "eight_schools_nc",
    code = "
data { int J; vector[J] y; vector<lower=0>[J] sigma; }
parameters { vector[J] theta_trans; real mu; real<lower=0> tau; }
model {
  target += normal_lpdf(theta_trans | 0, 1) + normal_lpdf(mu | 0, 5);
  target += cauchy_lpdf(tau | 0, 5) + log(2);
  target += normal_lpdf(y | mu + tau * theta_trans, sigma);
}",
    data = function() list(J = 8L, y = c(28, 8, -3, 7, -1, 1, 18, 12),
                           sigma = c(15, 10, 16, 11, 9, 11, 10, 18))),
  arK = list(
    battery = "arK",
    code = "
data { int K; int T; vector[T] y; }
parameters { real alpha; vector[K] beta; real<lower=0> sigma; }
model {
  target += normal_lpdf(alpha | 0, 10) + normal_lpdf(beta | 0, 10);
  target += cauchy_lpdf(sigma | 0, 2.5) + log(2);
  for (t in (K + 1):T) {
    real mu = alpha;
    for (k in 1:K) mu += beta[k] * y[t - k];
    target += normal_lpdf(y[t] | mu, sigma);
  }
}",
    data = function() list(K = 5L, T = length(.pb_data$arK_y), y = .pb_data$arK_y)),
  pima_logistic = list(
    battery = "pima_logistic",
    code = "
data { int N; int K; matrix[N, K] X; int<lower=0, upper=1> y[N]; }
parameters { vector[K] beta; }
model {
  target += normal_lpdf(beta | 0, 5);
  target += bernoulli_logit_lpmf(y | X * beta);
}",
    data = function() {
      d <- .pb_pima_data()
      list(N = nrow(d$X), K = ncol(d$X), X = unname(d$X), y = as.integer(d$y))
    })
)
if (length(args) >= 1L && nzchar(args[1]) && args[1] != "all") {
  programs <- programs[strsplit(args[1], ",")[[1]]]
}
battery <- posterior_battery("quadrature")

elapsed <- function(expr) {
  t0 <- proc.time()[["elapsed"]]
  value <- force(expr)
  list(value = value, seconds = proc.time()[["elapsed"]] - t0)
}

accuracy <- function(u, ref) {
  c(mean = max(abs(colMeans(u) - ref$mean) / ref$sd),
    sd = max(abs(apply(u, 2L, stats::sd) / ref$sd - 1)))
}

run_program <- function(name, p, seed) {
  ref <- battery[[p$battery]]
  data <- p$data()
  comp <- elapsed(suppressMessages(stan_model(model_code = p$code, model_name = name)))
  set.seed(seed)
  tg <- elapsed(target_stan(comp$value, data = data))
  # the program is the battery's model: the same log-density, constants included
  u <- matrix(stats::rnorm(20 * ref$dim, ref$mean, ref$sd), 20, byrow = TRUE)
  gap <- max(abs(-potential_value(tg$value, u) - ref$logd(u)))
  if (gap > 1e-6) stop(name, ": the Stan program differs from the battery's model by ", gap)
  u512 <- matrix(stats::rnorm(512 * ref$dim, ref$mean, ref$sd), 512, byrow = TRUE)
  batch <- stats::median(vapply(1:5, function(i) {
    elapsed(potential_value(tg$value, u512, grad = TRUE))$seconds
  }, 0))
  fit <- elapsed(jko_fit(tg$value, verbose = FALSE))
  draws <- elapsed(jko_sample(fit$value, 4000, scale = "unconstrained"))
  jko_secs <- tg$seconds + fit$seconds + draws$seconds
  sir <- jko_sample(fit$value, 4000, scale = "unconstrained", resample = TRUE)
  ev <- jko_evidence(fit$value, 20000)
  nuts <- elapsed(suppressWarnings(sampling(comp$value, data = data, chains = 4, cores = 2,
                                            seed = seed, refresh = 0)))
  sf <- nuts$value
  # NUTS's draws on the unconstrained scale
  pars <- rstan::extract(sf, permuted = FALSE)
  dims <- sf@par_dims[setdiff(names(sf@par_dims), "lp__")]
  flat <- do.call(rbind, lapply(seq_len(dim(pars)[2]), function(ch) pars[, ch, ]))
  flat <- flat[, colnames(flat) != "lp__", drop = FALSE]
  u_nuts <- t(apply(flat, 1L, function(v) {
    rstan::unconstrain_pars(sf, jkoflow:::relist_stan(v, dims))
  }))
  bs <- bridge_sampler(sf, silent = TRUE)
  a_nuts <- accuracy(u_nuts, ref)
  a_jko <- accuracy(draws$value$x, ref)
  a_sir <- accuracy(sir$x, ref)
  v <- fit$value$verdict
  data.frame(
    model = name, D = ref$dim, compile_s = comp$seconds, nuts_s = nuts$seconds,
    jko_s = jko_secs, steps = length(fit$value$theta), verdict = v$reason,
    nuts_mean = a_nuts[["mean"]], nuts_sd = a_nuts[["sd"]],
    jko_mean = a_jko[["mean"]], jko_sd = a_jko[["sd"]],
    sir_mean = a_sir[["mean"]], sir_sd = a_sir[["sd"]],
    logZ_jko = ev$log_z, se_jko = ev$se, khat = ev$pareto_k,
    logZ_bridge = bs$logml, se_bridge = error_measures(bs)$cv,
    batch512_ms = 1000 * batch, stringsAsFactors = FALSE)
}

rows <- lapply(seq_along(programs), function(i) {
  r <- run_program(names(programs)[i], programs[[i]], seed + i)
  print(format(r, digits = 3), row.names = FALSE)
  r
})
res <- do.call(rbind, rows)
cat(sprintf("\njkoflow %s, rstan %s, bridgesampling %s; %s; load: %s\n",
            utils::packageVersion("jkoflow"), utils::packageVersion("rstan"),
            utils::packageVersion("bridgesampling"), format(Sys.time(), "%Y-%m-%d %H:%M"),
            paste(readLines("/proc/loadavg", warn = FALSE), collapse = "")))
print(format(res, digits = 3), row.names = FALSE)
cat(sprintf("\nwall time from nothing to draws: rstan compile + NUTS %s s; compile + jkoflow %s s\n",
            paste(round(res$compile_s + res$nuts_s), collapse = ", "),
            paste(round(res$compile_s + res$jko_s), collapse = ", ")))
cat(sprintf("|log Z (jkoflow) - log Z (bridge)|: %s\n",
            paste(signif(abs(res$logZ_jko - res$logZ_bridge), 2), collapse = ", ")))
if (!is.na(out_file)) saveRDS(res, out_file)
