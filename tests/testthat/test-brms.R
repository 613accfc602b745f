# brms models as targets: the program and data brms writes, under brms's
# names; the draws given back as a brmsfit for brms's own methods. The
# program is compiled once (kept in JKOFLOW_TEST_CACHE where that is set).

test_that("a brms model is a target under brms's names, and its fit a brmsfit", {
  skip_on_cran()
  skip_if_not_installed("brms")
  skip_if_not_installed("rstan")
  cache <- Sys.getenv("JKOFLOW_TEST_CACHE", tempdir())
  set.seed(8)
  d <- data.frame(x = rnorm(30))
  d$y <- 1 + 0.5 * d$x + rnorm(30, sd = 0.4)
  tg <- target_brms(y ~ x, data = d, cache = cache)
  expect_s3_class(tg, c("jko_target_brms", "jko_target_stan", "jko_target"))
  expect_identical(tg$transform$variables, c("b_x", "Intercept", "sigma", "lprior", "b_Intercept"))
  expect_identical(tg$stan_variables, c("b[1]", "Intercept", "sigma", "lprior", "b_Intercept"))
  fit <- suppressWarnings(jko_fit(tg, hidden = c(8, 8), iters = 60, pool = 2^11,
                                  monitor = 2^10, max_steps = 2, verbose = FALSE))
  x <- as.matrix(fit)
  expect_identical(colnames(x), tg$transform$variables)
  expect_identical(names(coef(fit)), c("b_Intercept", "b_x"))
  # the generated quantity is brms's own: the intercept at x = 0
  expect_equal(x[, "b_Intercept"], x[, "Intercept"] - mean(d$x) * x[, "b_x"], tolerance = 1e-10,
               ignore_attr = TRUE)
  expect_identical(nobs(fit), 30L)
  expect_identical(family(fit)$family, "gaussian")
  b <- as_brmsfit(fit)
  expect_s3_class(b, "brmsfit")
  bd <- posterior::as_draws_matrix(b)
  expect_equal(unclass(bd)[, "b_x"], x[, "b_x"], ignore_attr = TRUE, tolerance = 1e-12)
  expect_equal(unclass(bd)[, "sigma"], x[, "sigma"], ignore_attr = TRUE, tolerance = 1e-12)
  # lp__ is the program's log-density at each draw
  u <- jkoflow:::posterior_draws(fit, "unconstrained")$x
  expect_equal(unclass(bd)[, "lp__"], -potential_value(tg, u), ignore_attr = TRUE,
               tolerance = 1e-8)
  # brms's methods on the draws: log-likelihoods of the gaussian model
  ll <- rstantools::log_lik(fit)
  mu <- tcrossprod(x[, c("b_Intercept", "b_x")], cbind(1, d$x))
  expect_equal(ll, matrix(dnorm(rep(d$y, each = 4000), mu, x[, "sigma"], log = TRUE), 4000),
               ignore_attr = TRUE, tolerance = 1e-8)
  expect_identical(dim(rstantools::posterior_predict(fit, ndraws = 50)), c(50L, 30L))
  expect_equal(rstantools::posterior_epred(fit, newdata = data.frame(x = c(0, 1))),
               mu[, 1:2] * 0 + cbind(x[, "b_Intercept"], x[, "b_Intercept"] + x[, "b_x"]),
               ignore_attr = TRUE, tolerance = 1e-10)
  lo <- suppressWarnings(loo::loo(fit))
  expect_equal(lo$estimates["elpd_loo", "Estimate"], sum(lo$pointwise[, "elpd_loo"]))
  expect_s3_class(brms::conditional_effects(b), "brms_conditional_effects")
  expect_error(target_brms(y ~ x, data = d, chains = 2), "unknown argument `chains`")
})
