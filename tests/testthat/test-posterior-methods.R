# A fit of a target as a posterior: its print and summary (the parameter
# table, the verdict, the cost, the training on request), and the methods
# that read its draws, each against the draws themselves.

post_fit <- local({
  set.seed(21)
  tg <- target_logdensity(function(x) -0.5 * rowSums(sweep(x, 2L, c(1, -2))^2 /
                                                      rep(c(1, 4), each = nrow(x))),
                          function(x) -sweep(x, 2L, c(1, -2)) / rep(c(1, 4), each = nrow(x)),
                          variables = c("alpha", "beta"))
  # from a start the exact correction cannot use as it is (too narrow, off
  # centre), so that the fit trains its 2 steps; its draws the independence
  # chains' even where the flow stops short (HMC's: test-hmc.R)
  suppressWarnings(jko_fit(tg, init_gaussian(c(0, 0), 0.25), hidden = c(8, 8), iters = 50,
                           pool = 2^11, monitor = 2^10, max_steps = 2, hmc = FALSE,
                           verbose = FALSE))
})

test_that("coef, vcov, confint and the draws are the posterior draws' own figures", {
  pd <- jkoflow:::posterior_draws(post_fit)
  x <- as.matrix(post_fit)
  expect_identical(x, pd$x)
  expect_identical(colnames(x), c("alpha", "beta"))
  expect_identical(dim(x), c(4000L, 2L))
  expect_identical(coef(post_fit), colMeans(x))
  expect_identical(coef(post_fit, estimate = "median"), apply(x, 2, median))
  expect_identical(vcov(post_fit), cov(x))
  ci <- confint(post_fit)
  expect_identical(dimnames(ci), list(c("alpha", "beta"), c("2.5 %", "97.5 %")))
  expect_equal(ci["beta", ], quantile(x[, "beta"], c(0.025, 0.975)), ignore_attr = TRUE)
  ci90 <- confint(post_fit, "alpha", level = 0.9)
  expect_identical(dimnames(ci90), list("alpha", c("5 %", "95 %")))
  expect_equal(ci90[1, ], quantile(x[, "alpha"], c(0.05, 0.95)), ignore_attr = TRUE)
  expect_identical(rownames(confint(post_fit, 2)), "beta")
  df <- as.data.frame(post_fit)
  expect_identical(names(df), c("alpha", "beta"))
  expect_identical(df$beta, unname(x[, "beta"]))
  skip_if_not_installed("posterior")
  expect_identical(posterior::ndraws(post_fit), 4000L)
  expect_identical(posterior::variables(post_fit), c("alpha", "beta"))
  expect_identical(posterior::nvariables(post_fit), 2L)
  d <- posterior::as_draws_df(post_fit)
  expect_identical(posterior::ndraws(d), 4000L)
  # the exact draws' 4 chains
  expect_identical(posterior::nchains(d), 4L)
  expect_equal(d$alpha, unname(x[, "alpha"]))
  expect_equal(d$.log_density, pd$log_density)
  expect_error(posterior::as_draws_df(post_fit, n = 10), "gives its own posterior draws: `n`")
  expect_error(posterior::as_draws_matrix(post_fit, step = 1), "`step` cannot be given")
})

test_that("print() of a target's fit is a parameter table, a verdict and a cost", {
  pd <- jkoflow:::posterior_draws(post_fit)
  out <- capture.output(print(post_fit))
  expect_match(out[2], "4000 exact draws in 4 chains of independence Metropolis-Hastings")
  row <- strsplit(trimws(grep("^alpha", out, value = TRUE)), " +")[[1]]
  expect_identical(row[1], "alpha")
  expect_equal(as.numeric(row[2:6]),
               signif(c(mean(pd$x[, 1]), sd(pd$x[, 1]),
                        quantile(pd$x[, 1], c(0.025, 0.5, 0.975), names = FALSE)), 3),
               tolerance = 1e-12)
  # the bulk ESS and R-hat of the chains, posterior's
  expect_equal(as.numeric(row[7]), round(pd$ess[[1]]), tolerance = 1e-3)
  expect_equal(as.numeric(row[8]), round(pd$rhat[[1]], 3), tolerance = 1e-3)
  expect_true(any(grepl("rhat", out)))
  expect_true(any(grepl("^Verdict: (the draws are the target's|the flow did NOT reach the target)", out)))
  iters <- sum(post_fit$history$iters, na.rm = TRUE)
  expect_match(paste(out, collapse = " "),
               sprintf("2 JKO steps, %d Adam iterations of batch 512 \\(%s evaluations",
                       iters, format(iters * 512, big.mark = ",")))
  capture.output(vis <- withVisible(print(post_fit)))
  expect_false(vis$visible)
  # the training on request, with the h and iterations each step used
  tr <- capture.output(print(post_fit, training = TRUE))
  expect_match(tr[1], "JKO flow")
  expect_true(any(grepl(sprintf("h %s", jkoflow:::range_text(post_fit$history$h[-1])), tr)))
  expect_true(any(grepl("adaptive, at most 50", tr)))
  expect_error(print(post_fit, digts = 2), "unknown argument `digts` \\(did you mean `digits`\\?\\) in print\\(\\)")
  # the points a target rejected (a Stan program's exceptions) are a line
  # of the posterior's print and summary too, as of the training's
  rej <- post_fit
  rej$verdict$rejections <- list(points = 2000, rejected = 50, share = 0.025,
                                 first = "Exception: scale is 0")
  line <- "The target rejected 2.5% of the 2000 points evaluated (first: Exception: scale is 0)."
  for (out in list(capture.output(print(rej)), capture.output(print(summary(rej))),
                   capture.output(print(rej, training = TRUE)))) {
    expect_identical(paste(trimws(out[grep("^ *The target rejected", out) + 0:1]), collapse = " "),
                     line)
  }
  expect_false(any(grepl("rejected", out <- capture.output(print(post_fit)))))
})

test_that("summary() of a target's fit has se_mean = sd / sqrt(ESS) and the training", {
  pd <- jkoflow:::posterior_draws(post_fit)
  s <- summary(post_fit, probs = c(0.1, 0.9))
  expect_s3_class(s, "summary.jko_posterior")
  st <- s$statistics
  expect_identical(names(st), c("mean", "se_mean", "sd", "q10", "q90", "ess", "rhat"))
  expect_equal(st$mean, unname(colMeans(pd$x)))
  expect_equal(st$se_mean, unname(apply(pd$x, 2, sd) / sqrt(pd$ess)))
  expect_equal(st$q90, unname(apply(pd$x, 2, quantile, 0.9)))
  expect_equal(st$ess, unname(as.double(pd$ess)))
  expect_s3_class(s$training, "summary.jko_fit")
  expect_identical(s$training$history, post_fit$history)
  expect_identical(s$cost$iterations, sum(post_fit$history$iters, na.rm = TRUE))
  out <- capture.output(print(s))
  expect_true(any(grepl("^Estimates:", out)))
  expect_true(any(grepl("draws: +4000 exact draws in 4 chains", out)))
  tr <- capture.output(print(s$training))
  expect_true(any(grepl("h chosen step by step", tr)))
  expect_error(summary(post_fit, prbs = 0.5), "unknown argument `prbs`")
})

test_that("methods of the draws refuse a fit without posterior draws, naming the way out", {
  set.seed(3)
  flow <- jko_fit(potential_quadratic(1), init_gaussian(0, 1), h = 0.1, steps = 1,
                  hidden = c(4, 4), batch = 64, iters = 10, verbose = FALSE)
  expect_error(coef(flow), "coef\\(\\) needs the posterior draws .* draw from it with jko_sample\\(\\)")
  expect_error(as.matrix(flow), "as.matrix\\(\\) needs the posterior draws")
  expect_error(confint(post_fit, level = 1.5), "`level` must be a single probability in \\(0, 1\\)")
  expect_error(confint(post_fit, "gamma"), "`parm` names no variable of the fit: `gamma`")
  expect_error(coef(post_fit, estimate = "mode"), "should be one of")
  expect_error(vcov(post_fit, complete = TRUE), "unknown argument `complete` in vcov\\(\\)")
  # a flow prints its training as before
  expect_match(capture.output(print(flow))[1], "JKO flow")
  expect_s3_class(summary(flow), "summary.jko_fit")
})
