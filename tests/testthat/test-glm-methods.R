# The regression methods of fits of target_glm(), each from the posterior
# draws against the formula it implements: predictions and their intervals,
# pointwise log-likelihoods against R's densities, loo, simulated
# responses, residuals against residuals.glm(), the prior, update().

glm_fit <- function(formula, data, family, seed, ...) {
  set.seed(seed)
  tg <- target_glm(formula, data, family, ...)
  suppressWarnings(jko_fit(tg, hidden = c(8, 8), iters = 50, pool = 2^11, monitor = 2^10,
                           max_steps = 2, verbose = FALSE))
}

gd <- local({
  set.seed(31)
  N <- 40
  d <- data.frame(x = rnorm(N), f = factor(sample(c("a", "b"), N, TRUE)),
                  n = sample(2:5, N, TRUE), t = runif(N, 0.5, 2))
  d$k <- rbinom(N, d$n, plogis(0.2 + 0.7 * d$x))
  d$y01 <- rbinom(N, 1, plogis(0.2 + 0.7 * d$x))
  d$cnt <- rpois(N, d$t * exp(0.3 + 0.5 * d$x))
  d$yg <- 1 + 2 * d$x + rnorm(N, sd = 0.5)
  d
})
fit_bin <- glm_fit(cbind(k, n - k) ~ x + f, gd, binomial(), 32, prior = prior_flat())
fit_pois <- glm_fit(cnt ~ x + offset(log(t)), gd, poisson(), 33, prior = prior_flat())
fit_gauss <- glm_fit(yg ~ x, gd, gaussian(), 34, prior = prior_flat(),
                     prior_sigma = prior_flat())

test_that("formula, family, nobs and coef are those of the model", {
  g <- glm(cbind(k, n - k) ~ x + f, binomial(), gd)
  expect_equal(formula(fit_bin), cbind(k, n - k) ~ x + f, ignore_attr = TRUE)
  expect_identical(family(fit_bin)$family, "binomial")
  expect_identical(family(fit_bin)$link, "logit")
  expect_identical(nobs(fit_bin), nobs(g))
  expect_identical(names(coef(fit_bin)), names(coef(g)))
  expect_identical(dim(vcov(fit_gauss)), c(2L, 2L))   # the coefficients, not log_sigma
  expect_identical(colnames(as.matrix(fit_gauss)), c("(Intercept)", "x", "log_sigma"))
  expect_equal(sigma(fit_gauss), mean(exp(as.matrix(fit_gauss)[, "log_sigma"])))
})

test_that("posterior_linpred/epred and predict() are the draws' linear predictors and means", {
  skip_if_not_installed("rstantools")
  B <- as.matrix(fit_pois)
  X <- cbind(1, gd$x)
  eta <- tcrossprod(B, X) + rep(log(gd$t), each = nrow(B))
  expect_equal(rstantools::posterior_linpred(fit_pois), eta, ignore_attr = TRUE)
  expect_equal(rstantools::posterior_epred(fit_pois), exp(eta), ignore_attr = TRUE)
  expect_equal(rstantools::posterior_linpred(fit_pois, transform = TRUE), exp(eta),
               ignore_attr = TRUE)
  expect_equal(unname(fitted(fit_pois)), colMeans(exp(eta)))
  expect_equal(unname(predict(fit_pois)), colMeans(exp(eta)))
  expect_identical(dim(rstantools::posterior_epred(fit_pois, ndraws = 100)), c(100L, 40L))
  nd <- data.frame(x = c(-1, 0.5), t = c(1, 3))
  Xn <- cbind(1, nd$x)
  en <- tcrossprod(B, Xn) + rep(log(nd$t), each = nrow(B))
  p <- predict(fit_pois, nd, type = "link", se.fit = TRUE)
  expect_equal(unname(p$fit), colMeans(en))
  expect_equal(unname(p$se.fit), apply(en, 2, sd))
  expect_identical(p$residual.scale, 1)
  ci <- predict(fit_pois, nd, interval = "credible", level = 0.8)
  expect_identical(colnames(ci), c("fit", "lwr", "upr"))
  expect_equal(unname(ci[, "lwr"]), apply(exp(en), 2, quantile, 0.1, names = FALSE))
  expect_equal(unname(ci[, "upr"]), apply(exp(en), 2, quantile, 0.9, names = FALSE))
  # a count's prediction interval: the smallest counts where the predictive
  # mixture's CDF reaches (1 -/+ level) / 2
  pi <- predict(fit_pois, nd, interval = "prediction")
  mu <- exp(en)
  for (i in 1:2) {
    cdf <- function(q) mean(ppois(q, mu[, i]))
    expect_gte(cdf(pi[i, "lwr"]), 0.025)
    expect_lt(cdf(pi[i, "lwr"] - 1), 0.025)
    expect_gte(cdf(pi[i, "upr"]), 0.975)
    expect_lt(cdf(pi[i, "upr"] - 1), 0.975)
  }
  # a gaussian response's: the roots of the mixture's CDF
  Bg <- as.matrix(fit_gauss)
  ndg <- data.frame(x = c(0, 2))
  mug <- tcrossprod(Bg[, 1:2], cbind(1, ndg$x))
  pg <- predict(fit_gauss, ndg, interval = "prediction", level = 0.9)
  for (i in 1:2) {
    expect_equal(mean(pnorm(pg[i, "lwr"], mug[, i], exp(Bg[, 3]))), 0.05, tolerance = 1e-8)
    expect_equal(mean(pnorm(pg[i, "upr"], mug[, i], exp(Bg[, 3]))), 0.95, tolerance = 1e-8)
  }
  expect_error(predict(fit_pois, nd, type = "link", interval = "prediction"),
               "needs `type = \"response\"`")
  expect_error(predict(fit_pois, nd, n = 100), "`n` is for fits without posterior draws")
  expect_error(predict(fit_pois, nd, intervl = "credible"),
               "unknown argument `intervl` \\(did you mean `interval`\\?\\) in predict\\(\\)")
})

test_that("log_lik() is R's densities at the draws, and sums to the likelihood", {
  skip_if_not_installed("rstantools")
  B <- as.matrix(fit_bin)
  X <- model.matrix(~ x + f, gd)
  mu <- plogis(tcrossprod(B, X))
  ref <- matrix(dbinom(rep(gd$k, each = nrow(B)), rep(gd$n, each = nrow(B)), mu, log = TRUE),
                nrow(B))
  ll <- rstantools::log_lik(fit_bin)
  expect_equal(ll, ref, ignore_attr = TRUE, tolerance = 1e-10)
  # under the flat prior the log-density of the target is the log-likelihood
  expect_equal(rowSums(ll), -potential_value(fit_bin$potential, B), tolerance = 1e-9)
  Bp <- as.matrix(fit_pois)
  mup <- exp(tcrossprod(Bp, cbind(1, gd$x)) + rep(log(gd$t), each = nrow(Bp)))
  expect_equal(rstantools::log_lik(fit_pois),
               matrix(dpois(rep(gd$cnt, each = nrow(Bp)), mup, log = TRUE), nrow(Bp)),
               ignore_attr = TRUE, tolerance = 1e-10)
  Bg <- as.matrix(fit_gauss)
  mug <- tcrossprod(Bg[, 1:2], cbind(1, gd$x))
  llg <- rstantools::log_lik(fit_gauss)
  expect_equal(llg, matrix(dnorm(rep(gd$yg, each = nrow(Bg)), mug, exp(Bg[, 3]), log = TRUE),
                           nrow(Bg)), ignore_attr = TRUE, tolerance = 1e-10)
  expect_equal(rowSums(llg), -potential_value(fit_gauss$potential, Bg), tolerance = 1e-9)
  # new data with its response
  nd <- gd[1:3, ]
  expect_equal(rstantools::log_lik(fit_bin, newdata = nd), ll[, 1:3], ignore_attr = TRUE)
  expect_error(rstantools::log_lik(fit_bin, newdata = nd[, c("x", "f")]),
               "`newdata` must hold the response")
  skip_if_not_installed("loo")
  lo <- loo::loo(fit_bin)
  expect_s3_class(lo, "loo")
  expect_equal(lo$estimates["elpd_loo", "Estimate"], sum(lo$pointwise[, "elpd_loo"]))
  expect_equal(lo$estimates, suppressWarnings(loo::loo(ll, r_eff = rep(1, ncol(ll))))$estimates)
})

test_that("simulate() draws responses whose means are the fitted means", {
  skip_if_not_installed("rstantools")
  nsim <- 2000
  sim <- simulate(fit_gauss, nsim, seed = 5)
  expect_identical(dim(sim), c(40L, 2000L))
  expect_identical(names(sim)[1:2], c("sim_1", "sim_2"))
  expect_identical(attr(sim, "seed"), structure(5, kind = as.list(RNGkind())))
  expect_identical(simulate(fit_gauss, 3, seed = 9), simulate(fit_gauss, 3, seed = 9))
  # Var(y) = E sigma^2 + Var(mu): the mean of nsim responses is within 5 se
  Bg <- as.matrix(fit_gauss)
  mug <- tcrossprod(Bg[, 1:2], cbind(1, gd$x))
  se <- sqrt((mean(exp(2 * Bg[, 3])) + apply(mug, 2, var)) / nsim)
  expect_lt(max(abs(rowMeans(sim) - fitted(fit_gauss)) / se), 5)
  # binomial: the proportions of the rows' trials
  sb <- simulate(fit_bin, 500, seed = 6)
  expect_true(all(abs(as.matrix(sb) * gd$n - round(as.matrix(sb) * gd$n)) < 1e-12))
  se_b <- sqrt(0.25 / gd$n / 500)
  expect_lt(max(abs(rowMeans(sb) - fitted(fit_bin)) / se_b), 5)
  pp <- rstantools::posterior_predict(fit_bin, seed = 1)
  expect_identical(dim(pp), c(4000L, 40L))
  expect_true(all(pp >= 0 & pp <= rep(gd$n, each = 4000)))  # counts of successes
  set.seed(1)
  tg <- target_logdensity(function(x) -rowSums(x^2) / 2, function(x) -x, dim = 2)
  expect_error(simulate(post <- suppressWarnings(jko_fit(tg, hidden = c(4, 4), iters = 20,
                                                        pool = 2^10, monitor = 2^10,
                                                        max_steps = 1, verbose = FALSE))),
               "simulate\\(\\) simulates the responses of a target_glm\\(\\) model")
  expect_error(simulate(fit_bin, 2, sed = 1), "unknown argument `sed`")
})

test_that("residuals() are residuals.glm() at the posterior mean of mu", {
  g <- glm(cbind(k, n - k) ~ x + f, binomial(), gd)
  g$fitted.values <- fitted(fit_bin)
  for (type in c("deviance", "pearson", "response")) {
    expect_equal(residuals(fit_bin, type), residuals(g, type), tolerance = 1e-12,
                 label = type)
  }
  mu <- fitted(fit_bin)
  expect_equal(residuals(fit_bin, "working"), (g$y - mu) / (mu * (1 - mu)), tolerance = 1e-12)
})

test_that("prior_summary() gives the prior with the scales the data gave it", {
  skip_if_not_installed("rstantools")
  set.seed(2)
  tg <- target_glm(y01 ~ x, gd, binomial())
  fit <- suppressWarnings(jko_fit(tg, hidden = c(4, 4), iters = 20, pool = 2^10,
                                  monitor = 2^10, max_steps = 1, verbose = FALSE))
  ps <- rstantools::prior_summary(fit)
  expect_s3_class(ps, "jko_prior_summary")
  expect_equal(ps$scale, c(10, 2.5 / sd(gd$x)), ignore_attr = TRUE)
  expect_output(print(ps), "Coefficients ~ normal\\(location = 0, scale = ")
  expect_output(print(rstantools::prior_summary(fit_gauss)), "sigma: flat in log\\(sigma\\)")
})

test_that("update() re-fits from the fit alone: a new formula, new settings", {
  set.seed(7)
  d <- gd
  tg <- target_glm(yg ~ x, d, gaussian())
  fit <- suppressWarnings(jko_fit(tg, hidden = c(4, 4), iters = 20, pool = 2^10,
                                  monitor = 2^10, max_steps = 1, verbose = FALSE))
  rm(tg)
  fit2 <- suppressWarnings(update(fit, . ~ . + f, iters = 30))
  expect_identical(colnames(as.matrix(fit2)), c("(Intercept)", "x", "fb", "log_sigma"))
  expect_identical(fit2$settings$iters, 30L)
  expect_identical(fit2$settings$hidden, c(4L, 4L))
  expect_identical(fit2$potential$prior, fit$potential$prior)
  fit3 <- suppressWarnings(update(fit2, data = d[1:20, ]))
  expect_identical(nobs(fit3), 20L)
  fit4 <- suppressWarnings(update(fit, prior = prior_flat(), max_steps = 2))
  expect_identical(fit4$potential$prior$kind, "flat")
  expect_identical(fit4$settings$max_steps, 2L)
  expect_error(update(fit, iter = 10), "unknown argument `iter` \\(did you mean `iters`\\?\\)")
})
