# jkoflow against rstan's NUTS on the same Stan programs, side by side in
# one run: a regression (kidiq_momiq), a hierarchical model (eight schools,
# non-centred), a time series (AR(5)), a GLM (logistic regression on Pima),
# two ODE models (Lotka-Volterra predator and prey, solved by rk45; a
# one-compartment pharmacokinetic model with Michaelis-Menten elimination,
# solved by bdf, with half-Cauchy priors), and two models of simplexes (a
# hidden Markov model's transition rows; the shares of a Dirichlet-multinomial).
# Accuracy is judged where users read it, on the programs' own (constrained)
# scale, against reference answers (stan-references.R: posteriordb's
# reference draws, a long HMC run for Pima, the exact Dirichlet posterior).
# The programs are ours; the four new ones are written in the syntax of
# Stan 2.26 and later (`array[N] real y`), as programs are written today:
# target_stan() rewrites it for an rstan that parses an older Stan.
#
#   Rscript inst/bench/stan.R [names, comma-separated | all] [seed] [out.rds]
#
# out.rds: the table, with the errors variable by variable in
# attr(, "errors") (for NUTS, jkoflow and SIR: mean, sd, quantiles).
#
# JKOFLOW_STAN_CACHE=<folder> keeps the compiled programs there between runs
# (the compile seconds are then those of the first compilation).
#
# Columns: compile seconds (once per program, needed by both), NUTS seconds
# (4 chains, rstan's defaults: 1000 warm-up + 1000 draws each, 2 cores) and
# NUTS's divergent transitions, jkoflow seconds (target_stan() set-up +
# jko_fit() from its defaults + 4000 draws), its steps and verdict, and the
# share of the points it evaluated during the fit that the program rejected
# (an exception, e.g. an ODE solver out of steps, or a log-density of -Inf);
# accuracy of each against the reference, over the variables of the
# reference: the worst |mean - ref| / ref sd, the worst |sd / ref sd - 1|,
# and the worst |quantile - ref quantile| / ref sd over the 5, 25, 50, 75
# and 95% quantiles, for NUTS's 4000 draws, jkoflow's 4000 draws, and
# jkoflow's 4000 draws resampled by importance weights (SIR); log Z from
# jko_evidence() (the proposals of the fit's exact draws) and from bridgesampling::bridge_sampler() on
# the NUTS fit, with their standard errors (and the exact value for the
# Dirichlet-multinomial); and what one batch of 512 grad_log_prob() calls
# costs around the posterior. The programs keep every constant (target +=),
# so log Z is the marginal likelihood; the first four are checked against
# the battery's R log-densities (posteriors-targets.R) before anything runs.

local({
  f <- sub("^--file=", "", grep("^--file=", commandArgs(FALSE), value = TRUE))
  source(file.path(if (length(f)) dirname(f) else "inst/bench", "common.R"))
})
bench_source("posteriors-targets.R", "stan-references.R", "stan-programs.R")
suppressPackageStartupMessages({
  library(rstan)
  library(bridgesampling)
})
options(width = 200, jkoflow.threads = 2)
args <- bench_args()
seed <- if (length(args) >= 2L) as.integer(args[2]) else 1L
out_file <- if (length(args) >= 3L) args[3] else NA

# the regression, the time series and the GLM are the programs of
# stan-programs.R (vs_nuts.R's); eight schools adds its transformed theta,
# the reference's variable
vs_nuts_programs <- stan_programs(posterior_battery())
programs <- list(
  kidiq_momiq = list(
    battery = "kidiq_momiq",
    code = vs_nuts_programs$kidiq_momiq$code,
    data = function() list(N = length(.pb_data$kid_score), kid_score = .pb_data$kid_score,
                           mom_iq = .pb_data$mom_iq)),
  eight_schools_nc = list(
    battery = "eight_schools_nc",
    code = "
data { int J; vector[J] y; vector<lower=0>[J] sigma; }
parameters { vector[J] theta_trans; real mu; real<lower=0> tau; }
transformed parameters { vector[J] theta = mu + tau * theta_trans; }
model {
  target += normal_lpdf(theta_trans | 0, 1) + normal_lpdf(mu | 0, 5);
  target += cauchy_lpdf(tau | 0, 5) + log(2);
  target += normal_lpdf(y | mu + tau * theta_trans, sigma);
}",
    data = function() list(J = 8L, y = c(28, 8, -3, 7, -1, 1, 18, 12),
                           sigma = c(15, 10, 16, 11, 9, 11, 10, 18))),
  arK = list(
    battery = "arK",
    code = vs_nuts_programs$arK$code,
    data = function() list(K = 5L, T = length(.pb_data$arK_y), y = .pb_data$arK_y)),
  pima_logistic = list(
    battery = "pima_logistic",
    code = vs_nuts_programs$pima_logistic$code,
    data = function() {
      d <- .pb_pima_data()
      list(N = nrow(d$X), K = ncol(d$X), X = unname(d$X), y = as.integer(d$y))
    }),
  lotka_volterra = list(
    code = "
// Hares u and lynxes v (Lotka-Volterra): du/dt = (a - b v) u,
// dv/dt = (d u - c) v; pelts observed with lognormal errors. rk45 with
// posteriordb's tolerances (1e-5, 1e-3, at most 500 steps), under which
// its reference draws were made: points where the solver runs out of steps
// are rejected.
functions {
  array[] real predation(real t, array[] real pop, array[] real par,
                         array[] real x_r, array[] int x_i) {
    return {(par[1] - par[2] * pop[2]) * pop[1], (par[4] * pop[1] - par[3]) * pop[2]};
  }
}
data {
  int<lower=0> N;
  array[N] real ts;
  array[2] real y_init;
  array[N, 2] real<lower=0> y;
}
parameters {
  array[4] real<lower=0> theta;    // a, b, c, d
  array[2] real<lower=0> z_init;
  array[2] real<lower=0> sigma;
}
transformed parameters {
  array[N, 2] real z = integrate_ode_rk45(predation, z_init, 0, ts, theta,
                                          rep_array(0.0, 0), rep_array(0, 0),
                                          1e-5, 1e-3, 500);
}
model {
  // normal priors cut at zero, normalised
  target += normal_lpdf(theta[{1, 3}] | 1, 0.5) - 2 * normal_lccdf(0 | 1, 0.5);
  target += normal_lpdf(theta[{2, 4}] | 0.05, 0.05) - 2 * normal_lccdf(0 | 0.05, 0.05);
  target += lognormal_lpdf(sigma | -1, 1) + lognormal_lpdf(z_init | log(10), 1);
  for (k in 1:2) {
    target += lognormal_lpdf(y_init[k] | log(z_init[k]), sigma[k]);
    target += lognormal_lpdf(y[, k] | log(z[, k]), sigma[k]);
  }
}",
    data = function() .sr_data$lotka_volterra),
  one_comp_mm_elim_abs = list(
    code = "
// One compartment: a dose D absorbed at rate k_a into a volume V, and
// eliminated at the Michaelis-Menten rate V_m C / (K_m + C); concentrations
// observed with lognormal errors; half-Cauchy priors. bdf at its default
// tolerances.
functions {
  array[] real pk(real t, array[] real conc, array[] real par,
                  array[] real x_r, array[] int x_i) {
    real inflow = 0;   // par: k_a, K_m, V_m; x_r: D, V
    if (t > 0) inflow = par[1] * x_r[1] / x_r[2] * exp(-par[1] * t);
    return {inflow - par[3] / x_r[2] * conc[1] / (par[2] + conc[1])};
  }
}
data {
  real t0;
  real D;
  real V;
  int<lower=1> N_t;
  array[N_t] real times;
  array[N_t] real C_hat;
}
transformed data {
  array[2] real x_r = {D, V};
  array[0] int x_i;
}
parameters {
  real<lower=0> k_a;
  real<lower=0> K_m;
  real<lower=0> V_m;
  real<lower=0> sigma;
}
model {
  array[N_t, 1] real C = integrate_ode_bdf(pk, {0.0}, t0, times, {k_a, K_m, V_m}, x_r, x_i);
  target += cauchy_lpdf(k_a | 0, 1) + cauchy_lpdf(K_m | 0, 1) + cauchy_lpdf(V_m | 0, 1) +
            cauchy_lpdf(sigma | 0, 1) + 4 * log(2);
  target += lognormal_lpdf(C_hat | log(to_array_1d(C)), sigma);
}",
    data = function() .sr_data$one_comp_mm_elim_abs),
  hmm_example = list(
    code = "
// A hidden Markov chain of two states with normal emissions of sd 1: the
// rows of the transition matrix are simplexes, the state means positive
// and ordered; the forward algorithm sums over the paths of the states.
data {
  int<lower=1> N;
  int<lower=2, upper=2> K;
  array[N] real y;
}
parameters {
  simplex[K] theta1;   // transitions from state 1
  simplex[K] theta2;   // transitions from state 2
  positive_ordered[K] mu;
}
model {
  array[K] vector[K] log_p = {log(theta1), log(theta2)};
  vector[K] lf;        // log forward probabilities
  target += normal_lpdf(mu[1] | 3, 1) + normal_lpdf(mu[2] | 10, 1);
  for (k in 1:K) lf[k] = normal_lpdf(y[1] | mu[k], 1);
  for (t in 2:N) {
    vector[K] lf_t;
    for (k in 1:K) {
      vector[K] from;
      for (j in 1:K) from[j] = lf[j] + log_p[j, k];
      lf_t[k] = log_sum_exp(from) + normal_lpdf(y[t] | mu[k], 1);
    }
    lf = lf_t;
  }
  target += log_sum_exp(lf);
}",
    data = function() .sr_data$hmm_example),
  dirichlet_multinomial = list(
    code = "
// Shares of K categories from their counts: a multinomial likelihood and a
// Dirichlet prior, so that the posterior is Dirichlet(alpha + y).
data {
  int<lower=2> K;
  array[K] int<lower=0> y;
  vector<lower=0>[K] alpha;
}
parameters { simplex[K] p; }
model { target += dirichlet_lpdf(p | alpha) + multinomial_lpmf(y | p); }",
    data = function() .sr_data$dirichlet_multinomial)
)
if (length(args) >= 1L && nzchar(args[1]) && args[1] != "all") {
  wanted <- strsplit(args[1], ",")[[1]]
  if (!all(wanted %in% names(programs))) {
    stop("unknown program(s): ", paste(setdiff(wanted, names(programs)), collapse = ", "),
         "; known: ", paste(names(programs), collapse = ", "))
  }
  programs <- programs[wanted]
}
battery <- posterior_battery("quadrature")
references <- stan_references()

elapsed <- function(expr) {
  t0 <- proc.time()[["elapsed"]]
  value <- force(expr)
  list(value = value, seconds = proc.time()[["elapsed"]] - t0)
}

# A program compiled (through jkoflow's rewriting of today's syntax), kept
# in JKOFLOW_STAN_CACHE when set, with the seconds of its compilation.
compile_program <- function(name, code) {
  cache <- Sys.getenv("JKOFLOW_STAN_CACHE")
  file <- if (nzchar(cache)) {
    tmp <- tempfile(); writeLines(code, tmp)
    file.path(cache, sprintf("bench-%s-%s.rds", name, unname(tools::md5sum(tmp))))
  }
  if (!is.null(file) && file.exists(file)) return(readRDS(file))
  comp <- elapsed(suppressMessages(jkoflow:::stan_compile(code, model_name = name)))
  out <- list(model = comp$value, seconds = comp$seconds)
  if (!is.null(file)) saveRDS(out, file)
  out
}

# Errors of draws x (named columns) against a reference table, variable by
# variable (mean and quantiles in reference sds, the sd relative).
errors <- function(x, ref) {
  x <- x[, rownames(ref), drop = FALSE]
  q <- t(apply(x, 2L, stats::quantile, probs = .sr_probs))
  cbind(mean = (colMeans(x) - ref[, "mean"]) / ref[, "sd"],
        sd = apply(x, 2L, stats::sd) / ref[, "sd"] - 1,
        (q - ref[, c("q05", "q25", "q50", "q75", "q95")]) / ref[, "sd"])
}

# The worst of them.
accuracy <- function(e) {
  if (is.null(e)) return(c(mean = NA, sd = NA, q = NA))
  c(mean = max(abs(e[, "mean"])), sd = max(abs(e[, "sd"])), q = max(abs(e[, -(1:2)])))
}

run_program <- function(name, p, seed) {
  ref <- references[[name]]$ref
  data <- p$data()
  comp <- compile_program(name, p$code)
  set.seed(seed)
  tg <- elapsed(target_stan(comp$model, data = data))
  if (!is.null(p$battery)) {
    # the program is the battery's model: the same log-density, constants included
    b <- battery[[p$battery]]
    u <- matrix(stats::rnorm(20 * b$dim, b$mean, b$sd), 20, byrow = TRUE)
    gap <- max(abs(-potential_value(tg$value, u) - b$logd(u)))
    if (gap > 1e-6) stop(name, ": the Stan program differs from the battery's model by ", gap)
  }
  fit <- elapsed(tryCatch(jko_fit(tg$value, verbose = FALSE), error = identity))
  failed <- inherits(fit$value, "error")
  e_jko <- e_sir <- NULL
  ev <- list(log_z = NA, se = NA, pareto_k = NA)
  if (!failed) {
    # the fit's own 4000 exact draws (a stationary fit keeps them); a
    # version without them is sampled
    pd <- jkoflow:::posterior_draws(fit$value)
    draws <- if (!is.null(pd)) list(value = list(x = pd$x), seconds = 0)
             else elapsed(jko_sample(fit$value, 4000))
    sir <- jko_sample(fit$value, 4000, resample = TRUE)
    e_jko <- errors(draws$value$x, ref)
    e_sir <- errors(sir$x, ref)
    ev <- jko_evidence(fit$value)
    u512 <- jko_sample(fit$value, 512, scale = "unconstrained")$x
    v <- fit$value$verdict
  } else {
    draws <- list(seconds = NA)
    u512 <- matrix(stats::rnorm(512 * tg$value$dim), 512)
    v <- list(reason = paste("error:", conditionMessage(fit$value)),
              rejections = tg$value$rejections())
  }
  batch <- stats::median(vapply(1:5, function(i) {
    elapsed(tg$value$value_gradient(u512))$seconds
  }, 0))
  nuts <- elapsed(suppressWarnings(sampling(comp$model, data = data, chains = 4, cores = 2,
                                            seed = seed, refresh = 0)))
  sf <- nuts$value
  e_nuts <- errors(as.matrix(sf, pars = unique(sub("\\[.*", "", rownames(ref)))), ref)
  a_nuts <- accuracy(e_nuts); a_jko <- accuracy(e_jko); a_sir <- accuracy(e_sir)
  bs <- tryCatch(bridge_sampler(sf, silent = TRUE), error = function(e) NULL)
  row <- data.frame(
    model = name, D = tg$value$dim, compile_s = comp$seconds, nuts_s = nuts$seconds,
    nuts_div = rstan::get_num_divergent(sf),
    jko_s = tg$seconds + fit$seconds + draws$seconds,
    steps = if (failed) NA else length(fit$value$theta), verdict = v$reason,
    rejected = v$rejections$share,
    nuts_mean = a_nuts[["mean"]], nuts_sd = a_nuts[["sd"]], nuts_q = a_nuts[["q"]],
    jko_mean = a_jko[["mean"]], jko_sd = a_jko[["sd"]], jko_q = a_jko[["q"]],
    sir_mean = a_sir[["mean"]], sir_sd = a_sir[["sd"]], sir_q = a_sir[["q"]],
    logZ_jko = ev$log_z, se_jko = ev$se, khat = ev$pareto_k,
    logZ_bridge = if (is.null(bs)) NA else bs$logml,
    se_bridge = if (is.null(bs)) NA else error_measures(bs)$cv,
    logZ_exact = references[[name]]$log_z %||% NA_real_,
    batch512_ms = 1000 * batch, stringsAsFactors = FALSE)
  # the errors variable by variable, for a closer look
  attr(row, "errors") <- list(nuts = e_nuts, jko = e_jko, sir = e_sir)
  row
}

`%||%` <- function(a, b) if (is.null(a)) b else a

rows <- lapply(seq_along(programs), function(i) {
  r <- run_program(names(programs)[i], programs[[i]], seed + i)
  print(format(r, digits = 3), row.names = FALSE)
  r
})
res <- do.call(rbind, rows)
attr(res, "errors") <- stats::setNames(lapply(rows, attr, "errors"), names(programs))
cat(sprintf("\njkoflow %s, rstan %s (Stan %s), bridgesampling %s; seed %d; %s; load: %s\n",
            utils::packageVersion("jkoflow"), utils::packageVersion("rstan"),
            rstan::stan_version(), utils::packageVersion("bridgesampling"), seed,
            format(Sys.time(), "%Y-%m-%d %H:%M"),
            paste(readLines("/proc/loadavg", warn = FALSE), collapse = "")))
print(format(res, digits = 3), row.names = FALSE)
cat(sprintf("\nwall time from nothing to draws: rstan compile + NUTS %s s; compile + jkoflow %s s\n",
            paste(round(res$compile_s + res$nuts_s), collapse = ", "),
            paste(round(res$compile_s + res$jko_s), collapse = ", ")))
cat(sprintf("|log Z (jkoflow) - log Z (bridge)|: %s\n",
            paste(signif(abs(res$logZ_jko - res$logZ_bridge), 2), collapse = ", ")))
if (!is.na(out_file)) saveRDS(res, out_file)
