# Draws for the posterior, coda and loo packages.

draws_fit <- function() {
  set.seed(11)
  tg <- target_logdensity(function(x) -0.5 * rowSums((x - 1)^2), function(x) -(x - 1),
                          variables = c("alpha", "beta"))
  expect_equal(tg$dim, 2L)
  jko_fit(tg, init_gaussian(c(0, 0), 1), h = 0.5, steps = 2, hidden = c(8, 8),
          batch = 128, iters = 60, stationary = FALSE, verbose = FALSE)
}

test_that("draws carry the target's names and log-densities into posterior and coda", {
  fit <- draws_fit()
  s <- jko_sample(fit, 300)
  expect_equal(colnames(s$x), c("alpha", "beta"))
  skip_if_not_installed("posterior")
  dm <- posterior::as_draws_matrix(s)
  expect_equal(posterior::variables(dm), c("alpha", "beta", ".log_density"))
  expect_equal(unclass(dm)[, "alpha"], s$x[, "alpha"], ignore_attr = TRUE)
  expect_equal(unclass(dm)[, ".log_density"], s$log_density, ignore_attr = TRUE)
  df <- posterior::as_draws_df(fit, n = 250)
  expect_equal(posterior::ndraws(df), 250)
  expect_true(all(c("alpha", "beta", ".log_density") %in% names(df)))
  # the same seed gives the same draws through the fit or the sample
  set.seed(2); a <- posterior::as_draws_matrix(fit, n = 40)
  set.seed(2); b <- posterior::as_draws_matrix(jko_sample(fit, 40))
  expect_equal(a, b)
  # summary() through summarise_draws(): the same numbers as base R, ESS = n
  sm <- summary(s, "mad")
  expect_equal(sm$statistics$mean, unname(colMeans(s$x)))
  expect_equal(sm$statistics$se_mean, unname(apply(s$x, 2, sd)) / sqrt(300))
  expect_equal(sm$statistics$mad, unname(apply(s$x, 2, mad)))
  expect_equal(rownames(sm$statistics), c("alpha", "beta"))
  skip_if_not_installed("coda")
  mc <- coda::as.mcmc(s)
  expect_equal(coda::varnames(mc), c("alpha", "beta"))
  expect_equal(unclass(mc)[, "beta"], s$x[, "beta"], ignore_attr = TRUE)
})

test_that("resampled draws report the importance ESS", {
  fit <- draws_fit()
  set.seed(5)
  s <- jko_sample(fit, 2000, resample = TRUE)
  sm <- summary(s)
  expect_equal(sm$ess, s$ess)
  expect_equal(sm$statistics$se_mean, sm$statistics$sd / sqrt(s$ess))
  expect_output(print(sm), "2000 resampled draws")
})

test_that("Pareto k-hat: jkoflow's estimate is loo's on the same weights", {
  skip_if_not_installed("loo")
  set.seed(7)
  for (lw in list(rnorm(2000), rnorm(16384, sd = 2), log(abs(rt(5000, df = 2))),
                  log(rexp(300)))) {
    expect_equal(jkoflow:::pareto_khat(lw, use_loo = FALSE),
                 jkoflow:::pareto_khat(lw, use_loo = TRUE), tolerance = 1e-8)
  }
  lw <- c(rnorm(1000), -Inf, NA)
  expect_equal(jkoflow:::pareto_khat(lw, use_loo = FALSE),
               suppressWarnings(loo::psis(lw[is.finite(lw)], r_eff = 1))$diagnostics$pareto_k,
               tolerance = 1e-8)
})

test_that("variables name a potential's coordinates, and are checked", {
  pot <- new_potential(function(x) rowSums(x^2), function(x) 2 * x, variables = c("a", "b"))
  expect_equal(pot$dim, 2L)
  expect_error(new_potential(function(x) rowSums(x^2), dim = 3, variables = c("a", "b")),
               "`variables` must be NULL or 3 names")
  expect_error(target_logdensity(function(x) -rowSums(x^2), function(x) -2 * x,
                                 variables = 1:2),
               "`variables` must be NULL or character names")
})
