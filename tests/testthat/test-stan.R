# target_stan(): a Stan program with a closed-form posterior and evidence.
# y_i ~ N(mu, sigma2), mu | sigma2 ~ N(m0, sigma2 / k0), sigma2 ~ IG(a0, b0):
# the normal-inverse-gamma conjugate model, written with target += so that
# Stan keeps every constant and exp(log_prob) integrates to p(y). Two
# switches in the data make the program reject the points where mu is above
# a threshold, by reject() (a std::domain_error) or by an ODE solver that
# runs out of steps (a std::runtime_error); off by default. It is written in
# the syntax of Stan 2.26 (`array[...]`), which target_stan() rewrites for
# an older rstan: one compilation serves the whole file.

nig_code <- "
functions {
  // dy/dt = -theta y, solved further than 5 steps reach
  array[] real decay(real t, array[] real y, array[] real theta,
                     array[] real x_r, array[] int x_i) {
    return {-theta[1] * y[1]};
  }
}
data {
  int N; vector[N] y; real m0; real k0; real a0; real b0;
  real reject_above; real ode_above;
}
parameters { real mu; real<lower=0> sigma2; }
transformed parameters { real sigma = sqrt(sigma2); }
model {
  target += inv_gamma_lpdf(sigma2 | a0, b0);
  target += normal_lpdf(mu | m0, sqrt(sigma2 / k0));
  target += normal_lpdf(y | mu, sigma);
  if (mu > reject_above) reject(\"mu = \", mu, \" is above \", reject_above);
  if (mu > ode_above) {
    array[1, 1] real ode = integrate_ode_rk45(decay, {1.0}, 0.0, {1000.0}, {1.0},
                                              rep_array(0.0, 0), rep_array(0, 0),
                                              1e-8, 1e-8, 5);
    target += ode[1, 1];
  }
}
generated quantities { real z = (mu - m0) / sigma; }
"

nig_data <- function(reject_above = 1e300, ode_above = 1e300) {
  y <- c(2.81, -0.42, 1.37, 3.15, 0.66, 1.94, -1.08, 2.48, 0.23, 1.71,
         3.62, 0.95, -0.31, 1.18, 2.05, 0.47, 1.59, 2.93, -0.76, 1.32)
  list(N = length(y), y = y, m0 = 0, k0 = 0.5, a0 = 3, b0 = 4,
       reject_above = reject_above, ode_above = ode_above)
}

# posterior and evidence in closed form
nig_posterior <- function(d) {
  n <- d$N; yb <- mean(d$y)
  kn <- d$k0 + n; mn <- (d$k0 * d$m0 + n * yb) / kn; an <- d$a0 + n / 2
  bn <- d$b0 + 0.5 * sum((d$y - yb)^2) + d$k0 * n * (yb - d$m0)^2 / (2 * kn)
  list(mean = c(mu = mn, sigma2 = bn / (an - 1)),
       sd = c(mu = sqrt(bn / (kn * (an - 1))), sigma2 = bn / ((an - 1) * sqrt(an - 2))),
       log_z = lgamma(an) - lgamma(d$a0) + d$a0 * log(d$b0) - an * log(bn) +
         0.5 * (log(d$k0) - log(kn)) - n / 2 * log(2 * pi))
}

# log of the posterior kernel on Stan's unconstrained scale (mu, log sigma2),
# Jacobian included
nig_log_kernel <- function(u, d) {
  mu <- u[, 1]; s2 <- exp(u[, 2])
  d$a0 * log(d$b0) - lgamma(d$a0) - (d$a0 + 1) * log(s2) - d$b0 / s2 +
    stats::dnorm(mu, d$m0, sqrt(s2 / d$k0), log = TRUE) +
    vapply(seq_along(mu), function(i) sum(stats::dnorm(d$y, mu[i], sqrt(s2[i]), log = TRUE)), 0) +
    u[, 2]
}

stan_cache <- new.env()
nig_model <- function() {
  if (is.null(stan_cache$model)) {
    stan_cache$model <- suppressMessages(jkoflow:::stan_compile(nig_code, model_name = "nig"))
  }
  stan_cache$model
}

test_that("target_stan() gives Stan's log-density, gradient and names on the unconstrained scale", {
  skip_if_not_installed("rstan")
  d <- nig_data()
  set.seed(1)
  tg <- target_stan(nig_model(), data = d)
  expect_s3_class(tg, "jko_target_stan")
  expect_equal(tg$dim, 2L)
  expect_equal(tg$variables, c("mu", "sigma2"))
  expect_equal(tg$transform$variables, c("mu", "sigma2", "sigma", "z"))
  u <- cbind(rnorm(7, 1, 0.5), rnorm(7, 0.8, 0.4))
  vg <- potential_value(tg, u, grad = TRUE)
  expect_equal(-vg$value, nig_log_kernel(u, d), tolerance = 1e-10)
  e <- 1e-5
  fd <- sapply(1:2, function(j) {
    up <- u; um <- u; up[, j] <- up[, j] + e; um[, j] <- um[, j] - e
    (nig_log_kernel(up, d) - nig_log_kernel(um, d)) / (2 * e)
  })
  expect_equal(-vg$gradient, fd, tolerance = 1e-6)
  # a point where the program rejects (sigma2 underflows to 0): outside the
  # support, Phi = Inf, not an error
  expect_equal(jkoflow:::potential_values(tg, rbind(c(0, -800), c(0, 0)))[1], Inf)
})

test_that("target_stan() from its defaults gives the conjugate posterior, on both scales", {
  skip_if_not_installed("rstan")
  d <- nig_data()
  ref <- nig_posterior(d)
  set.seed(3)
  fit <- jko_fit(target_stan(nig_model(), data = d), verbose = FALSE)
  expect_true(fit$verdict$reached)
  s <- jko_sample(fit, 20000)
  expect_equal(colnames(s$x), c("mu", "sigma2", "sigma", "z"))
  expect_equal(s$x[, "sigma"], sqrt(s$x[, "sigma2"]), tolerance = 1e-12)
  expect_equal(s$x[, "z"], (s$x[, "mu"] - d$m0) / s$x[, "sigma"], tolerance = 1e-12)
  # means within 0.1 posterior sd, sds within 10%
  m <- colMeans(s$x[, 1:2]); sds <- apply(s$x[, 1:2], 2, sd)
  expect_lt(max(abs(m - ref$mean) / ref$sd), 0.1)
  expect_lt(max(abs(sds / ref$sd - 1)), 0.1)
  # the constrained log-density is the unconstrained one less Stan's
  # log-Jacobian log(sigma2), and jko_density() gives it back at the draws
  set.seed(4); su <- jko_sample(fit, 50, scale = "unconstrained")
  set.seed(4); sc <- jko_sample(fit, 50)
  expect_equal(sc$unconstrained, su$x)
  expect_equal(sc$log_density, su$log_density - su$x[, 2], tolerance = 1e-8)
  expect_equal(jko_density(fit, sc$x, log = TRUE)$log_density, sc$log_density,
               tolerance = 1e-6)
  expect_equal(jko_density(fit, su$x, log = TRUE, scale = "unconstrained")$log_density,
               su$log_density, tolerance = 1e-6)
  expect_error(jko_density(fit, cbind(1, 2, 3)), "`x` must be finite values of the 2 parameters")
  # evidence: the closed form, and bridgesampling on a NUTS fit of the same
  # program, within their combined standard errors
  ev <- jko_evidence(fit, 20000)
  expect_lt(abs(ev$log_z - ref$log_z), 4 * ev$se + 0.01)
  skip_if_not_installed("bridgesampling")
  nuts <- suppressWarnings(rstan::sampling(nig_model(), data = d, chains = 2, iter = 3000,
                                           seed = 5, refresh = 0))
  bs <- bridgesampling::bridge_sampler(nuts, silent = TRUE)
  se_bs <- bridgesampling::error_measures(bs)$cv
  expect_lt(abs(ev$log_z - bs$logml), 3 * sqrt(ev$se^2 + se_bs^2) + 0.005)
  expect_lt(abs(bs$logml - ref$log_z), 4 * se_bs + 0.005)
})

test_that("target_stan() checks its arguments", {
  skip_if_not_installed("rstan")
  expect_error(target_stan(3), "`model` must be a stanfit, a stanmodel, a .stan file or Stan code")
  expect_error(target_stan(nig_model(), data = "y"), "`data` must be a named list")
  expect_error(target_stan("no_such_model.stan"), "the file 'no_such_model.stan' does not exist")
  expect_error(target_stan(nig_model(), data = list(N = 2)),
               "the Stan program could not be set up with `data`")
})

test_that("any exception of the program at a point is a rejection, counted", {
  skip_if_not_installed("rstan")
  tg <- target_stan(nig_model(), data = nig_data(reject_above = 1.8, ode_above = 1.5), seed = 1)
  inst <- tg$fit@.MISC$stan_fit_instance
  # what rstan gives R: reject() throws a std::domain_error, the ODE solver
  # that runs out of steps a std::runtime_error
  expect_s3_class(tryCatch(inst$log_prob(c(1.6, 0), TRUE, FALSE), error = identity),
                  "std::runtime_error")
  expect_s3_class(tryCatch(inst$log_prob(c(2, 0), TRUE, FALSE), error = identity),
                  "std::domain_error")
  u <- cbind(c(1, 1.6, 2, 0.5), c(0, 0, 0.5, 1))
  vg <- tg$value_gradient(u)
  expect_equal(-vg$value[c(1, 4)], nig_log_kernel(u[c(1, 4), ], nig_data()), tolerance = 1e-10)
  expect_equal(vg$value[2:3], c(Inf, Inf))
  expect_true(all(is.nan(vg$gradient[2:3, ])) && all(is.finite(vg$gradient[c(1, 4), ])))
  r <- tg$rejections()
  expect_equal(r[c("points", "rejected", "share")], list(points = 4, rejected = 2, share = 0.5))
  expect_match(r$first, "^Exception: Max number of iterations exceeded \\(5\\)\\. \\(in '.*' at line 21\\)$")
  expect_equal(tg$value(u)[2:3], c(Inf, Inf))
  expect_equal(tg$rejections()[c("points", "rejected")], list(points = 8, rejected = 4))
  # a flow goes through the rejections (it stopped at its first batch
  # when only std::domain_error was a rejection), and says how many there were
  set.seed(2)
  before <- tg$rejections()
  fit <- suppressWarnings(jko_fit(tg, init_gaussian(c(1.3, 0.8), 0.25), h = 0.5, steps = 1,
                                  control = jko_control(hidden = c(8, 8), batch = 128, iters = 30),
                                  verbose = FALSE))
  r <- fit$verdict$rejections
  expect_gt(r$share, 0.01)
  expect_lt(r$share, 0.5)
  # the fit's own rejections: the target's since the fit began, not the 4
  # of the calls above; the message one of the fit's own
  expect_equal(r$rejected, tg$rejections()$rejected - before$rejected)
  expect_equal(r$points, tg$rejections()$points - before$points)
  expect_match(r$first, "^Exception: ")
  expect_output(print(fit), sprintf("The target rejected %.2g%% of the %.0f points evaluated \\(first:",
                                    100 * r$share, r$points))
  # a target read back from a file has lost its model: an error, not rejections
  tg2 <- unserialize(serialize(tg, NULL))
  expect_error(tg2$value(u), "the Stan program's model instance is gone .*make the target again with target_stan\\(\\)")
  expect_error(jko_fit(tg2, init_gaussian(c(1.3, 0.8), 0.25), h = 0.5, steps = 1, verbose = FALSE),
               "model instance is gone")
  expect_equal(tg2$rejections()$rejected, tg$rejections()$rejected)
})

test_that("a batch rejected at every point stops the fit with the first rejection's message", {
  skip_if_not_installed("rstan")
  tg <- target_stan(nig_model(), data = nig_data(reject_above = -100))
  expect_error(jko_fit(tg, init_gaussian(c(0, 0), 1), h = 0.5, steps = 1,
                       control = jko_control(hidden = c(8, 8), batch = 128, iters = 30),
                       verbose = FALSE),
               paste0("JKO step 1 failed: the potential's `log_prob` is infinite at all 128 points ",
                      "of a batch at iteration 1: .* \\(the target's first rejection: Exception: ",
                      "mu = [-0-9.e]+ is above -100 \\(in '.*' at line 19\\)\\)"),
               class = "jkoflow_error_fit")
})

# Stan's C++ for a program, without what differs between two parses of one
# program (line numbers, the model's name)
stan_cpp <- function(code) {
  cpp <- rstan::stanc(model_code = code, model_name = "m", verbose = FALSE)$cppcode
  l <- gsub("\\s+", " ", strsplit(cpp, "\n")[[1]])
  l <- gsub("model[0-9a-f]+_m", "MODEL", l)
  l[!grepl("current_statement_begin__ = [0-9]+;|^ ?//|add_event|^ ?$", l)]
}

test_that("today's array declarations are rewritten in rstan 2.21's syntax, exactly", {
  skip_if_not_installed("rstan")
  new <- "
functions {
  // array[N] real f(array[] real x);  (a comment, left as it is)
  array[,] real f(data array[] real x, array[,] int k,
                  array[] vector v) {
    array[2, 1] real out = {{x[1] + k[1, 1]}, {sum(v[1])}};
    print(\"array[2] real, in a string\");
    return out;
  }
}
data {
  int<lower=1> N;
  array[N] int<lower=0, upper=1> y;
  array[N, 2] real<lower=min({0.0, 1.0})> w;
  array[dims(w)[1]]
    vector[2] x;
}
transformed data {
  array[2] real lo = {0.0, 1.0};
  array[0] int none;
}
parameters {
  array[2] simplex[3] theta;
  array[N] real<offset=lo[1], multiplier=2> z;
}
model {
  array[1] real s = f(lo, {{1}}, x)[1];
  target += normal_lpdf(z | 0, 1) + s[1] * 0 + dirichlet_lpdf(theta[1] | rep_vector(1, 3));
}"
  old <- "
functions {
  // array[N] real f(array[] real x);  (a comment, left as it is)
  real[,] f(data real[] x, int[,] k,
                  vector[] v) {
    real out[2, 1] = {{x[1] + k[1, 1]}, {sum(v[1])}};
    print(\"array[2] real, in a string\");
    return out;
  }
}
data {
  int<lower=1> N;
  int<lower=0, upper=1> y[N];
  real<lower=min({0.0, 1.0})> w[N, 2];
  vector[2] x[dims(w)[1]];
}
transformed data {
  real lo[2] = {0.0, 1.0};
  int none[0];
}
parameters {
  simplex[3] theta[2];
  real<offset=lo[1], multiplier=2> z[N];
}
model {
  real s[1] = f(lo, {{1}}, x)[1];
  target += normal_lpdf(z | 0, 1) + s[1] * 0 + dirichlet_lpdf(theta[1] | rep_vector(1, 3));
}"
  tr <- jkoflow:::stan_rewrite_arrays(new)
  expect_equal(length(tr$rewritten), 13L)
  expect_equal(tr$rewritten[1:2], c("array[,] real f", "array[] real x"))
  # the comment, the string and the lines are kept
  expect_match(tr$code, "// array[N] real f(array[] real x);", fixed = TRUE)
  expect_match(tr$code, "print(\"array[2] real, in a string\");", fixed = TRUE)
  expect_equal(lengths(gregexpr("\n", tr$code)), lengths(gregexpr("\n", new)))
  expect_identical(stan_cpp(tr$code), stan_cpp(old))
  # a program without them is left as it is
  expect_identical(jkoflow:::stan_rewrite_arrays(old)$code, old)
})

test_that("syntax of a newer Stan than rstan's is named, with the remedy", {
  skip_if_not_installed("rstan")
  skip_if_not(jkoflow:::stan_parser_version() < "2.26")
  code <- "
functions { vector rhs(real t, vector y, real k) { return -k * y; } }
data { int N; array[N] real ts; }
parameters { real<lower=0> k; }
model {
  array[N] vector[1] y = ode_rk45(rhs, [1.0]', 0.0, ts, k);
  target += normal_lpdf(k | 0, 1) + normal_lpdf(y[1, 1] | 0.5, 0.1);
}"
  expect_error(suppressMessages(target_stan(code, data = list(N = 1, ts = array(1)))),
               paste0("the Stan program is written for a newer Stan than this rstan's: rstan ",
                      "[0-9.]+ parses the syntax of Stan 2\\.[0-9.]+, and the program has the ",
                      "variadic ODE solvers \\(ode_rk45\\(\\), ode_bdf\\(\\), \\.\\.\\.\\) \\(Stan 2\\.24; ",
                      "line 6\\) \\(its 2 array declarations in the new syntax were rewritten\\)\\. ",
                      "Install a newer rstan: install\\.packages\\(\"rstan\", repos = ",
                      "c\\(\"https://stan-dev\\.r-universe\\.dev\", getOption\\(\"repos\"\\)\\)\\)"))
  expect_message(try(target_stan(code, data = list(N = 1, ts = array(1))), silent = TRUE),
                 "the program's 2 array declarations in Stan 2.26's syntax are rewritten")
})

test_that("target_parallel(): a model instance per worker, the same values, rejections counted", {
  skip_if_not_installed("rstan")
  d <- nig_data(reject_above = 1.8, ode_above = 1.5)
  tg <- target_stan(nig_model(), data = d, seed = 1)
  cl <- parallel::makeCluster(2)
  on.exit(parallel::stopCluster(cl))
  pt <- target_parallel(tg, cl)
  u <- cbind(c(1, 1.6, 2, 0.5, 0.2, 1.1), c(0, 0, 0.5, 1, -0.3, 0.4))
  ok <- c(1, 4, 5, 6)
  # the workers' instances give Stan's values and gradients bit for bit
  expect_identical(potential_value(pt, u[ok, ], grad = TRUE), potential_value(tg, u[ok, ], grad = TRUE))
  # rejections (2 of 6 points, one on each worker) reach the target's count
  before <- pt$rejections()
  v <- jkoflow:::potential_values(pt, u)
  expect_equal(v, jkoflow:::potential_values(tg, u))
  expect_equal(v[2:3], c(Inf, Inf))
  after <- pt$rejections()
  expect_equal(after$points - before$points, 6 + 6)     # the workers' and tg's own
  expect_equal(after$rejected - before$rejected, 2 + 2)
  expect_error(target_parallel(target_stan(tg$fit)), "made from a stanfit")
})

test_that("a program that does not parse is an error of the package's class, with the parser's reason", {
  skip_if_not_installed("rstan")
  # (before: rstan's own error, the parser's reason printed apart as messages)
  e <- tryCatch(target_stan("parameters { real x; } model { x ~ normal(0, 1) }}"),
                error = identity)
  expect_s3_class(e, "jkoflow_error_stan")
  expect_match(conditionMessage(e),
               "^the Stan program does not compile: SYNTAX ERROR.*PARSER EXPECTED: \";\".*failed to parse")
})
