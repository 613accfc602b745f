# Stan programs for the posteriors of posteriors-targets.R, for
# inst/bench/vs_nuts.R and inst/bench/profile.R.
#
#   source("inst/bench/posteriors-targets.R"); source("inst/bench/stan-programs.R")
#   progs <- stan_programs(posterior_battery())   # named like the battery
#   sm <- stan_model_cached(progs$funnel$code, "funnel")   # compiled once, cached
#   stan_program_check(sm, progs$funnel, battery$funnel)   # same log-density?
#
# Each program computes the battery's unnormalised log-density on the same
# unconstrained scale: its parameters are declared so that Stan's
# unconstrained coordinates are the battery's x (a constrained parameter
# such as real<lower=0> sigma is x = log sigma, with the Jacobian that Stan
# adds), and every term is a `target +=` with its constants, so that Stan's
# log_prob (Jacobian included) equals the battery's logd exactly, and log Z
# of the program (bridgesampling) is the battery's log Z. The
# programs of kidiq_momiq, eight_schools_nc, arK and pima_logistic are those
# of inst/bench/stan.R (posteriordb's models with `target +=`); garch11 is
# posteriordb's garch11 with `target +=`; the other five are written here
# from the battery's closed forms. stan_program_check() compares Stan's
# log_prob with the R logd at random points around the reference.
#
# Compiled models are saved (saveRDS of the stanmodel, which keeps its
# shared object) under the directory `cache` (default: the environment
# variable JKOFLOW_STAN_CACHE, else R_user_dir("jkoflow", "cache")/stan),
# named by the program's name and the md5 of its code and rstan's version,
# so a program is compiled once per machine.

# The battery closure's data (the battery keeps them in the closure's
# environment; the programs are checked against logd, so a change there is
# caught).
.sp_env <- function(tg) environment(tg$logd)

stan_programs <- function(battery) {
  progs <- list(
    conjugate_normal = list(
      code = "
data { int N; int K; matrix[N, K] X; vector[N] y; real s; real t0; }
parameters { vector[K] b; }
model {
  target += normal_lpdf(b | 0, t0);
  target += normal_lpdf(y | X * b, s);
}",
      data = function(tg) {
        e <- .sp_env(tg)
        list(N = nrow(e$X), K = ncol(e$X), X = unname(e$X), y = e$y, s = e$s, t0 = e$t0)
      }),
    poisson_gamma_log = list(
      # lambda > 0: Stan's unconstrained coordinate is log lambda, Jacobian added
      code = "
data { int D; int y[D]; vector[D] e; real a; real b; }
parameters { vector<lower=0>[D] lambda; }
model {
  target += gamma_lpdf(lambda | a, b);
  target += poisson_lpmf(y | e .* lambda);
}",
      data = function(tg) {
        e <- .sp_env(tg)
        list(D = length(e$y), y = as.integer(e$y), e = e$e, a = e$a, b = e$b)
      }),
    gaussian_illcond = list(
      code = "
data { int D; vector[D] mu; matrix[D, D] P; }
parameters { vector[D] x; }
model {
  target += -0.5 * quad_form(P, x - mu);
}",
      data = function(tg) {
        e <- .sp_env(tg)
        list(D = length(e$mu), mu = e$mu, P = unname(e$P))
      }),
    funnel = list(
      code = "
data { int K; }
parameters { real v; vector[K] x; }
model {
  target += normal_lpdf(v | 0, 3);
  target += normal_lpdf(x | 0, exp(v / 2));
}",
      data = function(tg) list(K = tg$dim - 1L)),
    banana = list(
      code = "
data { int D; real b; }
parameters { vector[D] x; }
model {
  target += normal_lpdf(x[1] | 0, 10);
  target += normal_lpdf(x[2] + b * square(x[1]) - 100 * b | 0, 1);
  target += normal_lpdf(x[3:D] | 0, 1);
}",
      data = function(tg) list(D = tg$dim, b = .sp_env(tg)$b)),
    pima_logistic = list(
      code = "
data { int N; int K; matrix[N, K] X; int<lower=0, upper=1> y[N]; }
parameters { vector[K] beta; }
model {
  target += normal_lpdf(beta | 0, 5);
  target += bernoulli_logit_lpmf(y | X * beta);
}",
      data = function(tg) {
        d <- .pb_pima_data()
        list(N = nrow(d$X), K = ncol(d$X), X = unname(d$X), y = as.integer(d$y))
      }),
    eight_schools_nc = list(
      code = "
data { int J; vector[J] y; vector<lower=0>[J] sigma; }
parameters { vector[J] theta_trans; real mu; real<lower=0> tau; }
model {
  target += normal_lpdf(theta_trans | 0, 1) + normal_lpdf(mu | 0, 5);
  target += cauchy_lpdf(tau | 0, 5) + log(2);
  target += normal_lpdf(y | mu + tau * theta_trans, sigma);
}",
      data = function(tg) list(J = 8L, y = c(28, 8, -3, 7, -1, 1, 18, 12),
                               sigma = c(15, 10, 16, 11, 9, 11, 10, 18))),
    kidiq_momiq = list(
      code = "
data { int N; vector[N] kid_score; vector[N] mom_iq; }
parameters { vector[2] beta; real<lower=0> sigma; }
model {
  target += cauchy_lpdf(sigma | 0, 2.5) + log(2);
  target += normal_lpdf(kid_score | beta[1] + beta[2] * mom_iq, sigma);
}",
      data = function(tg) list(N = length(.pb_data$kid_score), kid_score = .pb_data$kid_score,
                               mom_iq = .pb_data$mom_iq)),
    arK = list(
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
      data = function(tg) list(K = 5L, T = length(.pb_data$arK_y), y = .pb_data$arK_y)),
    garch11 = list(
      # posteriordb garch-garch11 (no priors: flat on the constrained scale)
      code = "
data { int<lower=0> T; real y[T]; real<lower=0> sigma1; }
parameters {
  real mu;
  real<lower=0> alpha0;
  real<lower=0, upper=1> alpha1;
  real<lower=0, upper=(1 - alpha1)> beta1;
}
model {
  real sigma[T];
  sigma[1] = sigma1;
  for (t in 2:T)
    sigma[t] = sqrt(alpha0 + alpha1 * square(y[t - 1] - mu) + beta1 * square(sigma[t - 1]));
  target += normal_lpdf(y | mu, sigma);
}",
      data = function(tg) list(T = length(.pb_data$garch_y), y = .pb_data$garch_y,
                               sigma1 = 0.5))
  )
  progs <- progs[intersect(names(battery), names(progs))]
  for (nm in names(progs)) progs[[nm]]$name <- nm
  progs
}

stan_cache_dir <- function() {
  Sys.getenv("JKOFLOW_STAN_CACHE", file.path(tools::R_user_dir("jkoflow", "cache"), "stan"))
}

# The compiled program: read from the cache, else compiled (messages
# silenced) and saved there. Returns the stanmodel with attribute
# "compile_seconds" (0 when read from the cache).
stan_model_cached <- function(code, name, cache = stan_cache_dir()) {
  dir.create(cache, recursive = TRUE, showWarnings = FALSE)
  key <- local({
    f <- tempfile(); on.exit(unlink(f))
    writeLines(c(code, as.character(utils::packageVersion("rstan"))), f)
    unname(tools::md5sum(f))
  })
  file <- file.path(cache, sprintf("%s-%s.rds", name, substr(key, 1, 12)))
  if (file.exists(file)) {
    sm <- tryCatch(readRDS(file), error = function(e) NULL)
    if (inherits(sm, "stanmodel")) return(structure(sm, compile_seconds = 0))
  }
  t0 <- proc.time()[["elapsed"]]
  sm <- suppressMessages(rstan::stan_model(model_code = code, model_name = name,
                                           save_dso = TRUE))
  secs <- proc.time()[["elapsed"]] - t0
  saveRDS(sm, file)
  structure(sm, compile_seconds = secs)
}

# A stanfit holding the model instance for the program's data (no draws).
stan_instance <- function(sm, data) {
  out <- NULL
  utils::capture.output(out <- suppressMessages(
    rstan::sampling(sm, data = data, chains = 0L)))
  out
}

# Largest |Stan log_prob - R logd| at n points drawn around the reference
# (mean +- 2 sd per coordinate, independent), and the largest deviation of
# the difference from its mean (a constant offset would leave log Z off by
# it, but the posterior the same).
stan_program_check <- function(sm, prog, tg, n = 20L, data = prog$data(tg)) {
  sf <- stan_instance(sm, data)
  u <- matrix(stats::rnorm(n * tg$dim, tg$mean, 2 * tg$sd), n, byrow = TRUE)
  lp <- vapply(seq_len(n), function(i) {
    rstan::log_prob(sf, u[i, ], adjust_transform = TRUE, gradient = FALSE)
  }, 0)
  r <- tg$logd(u)
  ok <- is.finite(lp) & is.finite(r)
  d <- lp[ok] - r[ok]
  # (relative: a funnel's log-density at points 2 sds out is of order 1e7,
  # where rounding alone differs by 1e-4)
  c(max_abs = max(abs(d)), max_rel = max(abs(d) / pmax(1, abs(r[ok]))),
    spread = max(abs(d - mean(d))), points = sum(ok))
}

# NUTS's draws (all chains, after warm-up) on Stan's unconstrained scale,
# rows in the order of the battery's coordinates.
stan_unconstrained_draws <- function(sf) {
  pars <- rstan::extract(sf, permuted = FALSE)
  dims <- sf@par_dims[setdiff(names(sf@par_dims), "lp__")]
  flat <- do.call(rbind, lapply(seq_len(dim(pars)[2]), function(ch) pars[, ch, ]))
  flat <- flat[, colnames(flat) != "lp__", drop = FALSE]
  relist <- function(p) {
    out <- vector("list", length(dims)); names(out) <- names(dims); at <- 0L
    for (j in seq_along(dims)) {
      d <- dims[[j]]; k <- as.integer(prod(d))
      out[[j]] <- if (length(d)) array(p[at + seq_len(k)], dim = d) else p[at + seq_len(k)]
      at <- at + k
    }
    out
  }
  u <- t(apply(flat, 1L, function(v) rstan::unconstrain_pars(sf, relist(v))))
  if (nrow(u) != nrow(flat)) u <- t(u)
  u
}
