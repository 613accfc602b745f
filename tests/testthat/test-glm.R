# GLM targets from formulas: the C log-density and gradient against R's
# densities and finite differences, the flat-prior posterior mode and
# curvature against glm(), a posterior against its closed form, input
# errors, and predictions against predict.glm().

glm_data <- function(N = 60, seed = 1) {
  set.seed(seed)
  d <- data.frame(x = rnorm(N), f = factor(sample(c("a", "b", "c"), N, TRUE)),
                  t = runif(N, 0.5, 3), n = sample(1:6, N, TRUE), w = sample(1:3, N, TRUE))
  eta <- 0.3 + 0.8 * d$x + c(0, 0.5, -0.5)[as.integer(d$f)]
  d$k <- rbinom(N, d$n, plogis(eta))
  d$y01 <- rbinom(N, 1, pnorm(eta))
  d$cnt <- rpois(N, d$t * exp(eta))
  d$yg <- 2 + eta + rnorm(N, sd = 0.7)
  d
}

# -log p(theta, y), written with R's densities from glm()'s own model matrix,
# response and weights (no code shared with target_glm())
ref_phi <- function(th, X, family, yfun, w, off, prior, sigma_rate = NULL, sy = 1) {
  p <- ncol(X)
  b <- th[seq_len(p)]
  eta <- drop(X %*% b) + off
  used <- w > 0
  ll <- switch(family,
    binomial_logit = sum(yfun(plogis(eta))),
    binomial_probit = sum(yfun(pnorm(eta))),
    poisson = sum(w * dpois(yfun, exp(eta), log = TRUE)),
    gaussian = sum(dnorm(yfun, eta, exp(th[p + 1]) / sqrt(w), log = TRUE)[used]))
  lp <- 0
  if (prior == "normal") {
    Xu <- X[used, , drop = FALSE]
    # autoscaled: sd 2.5 sy / sd(x_j), the intercept at the column means sd 10 sy
    # (mean: the weighted mean of y for the gaussian family)
    z0 <- b[1] + sum(colMeans(Xu[, -1, drop = FALSE]) * b[-1])
    loc0 <- if (family == "gaussian") attr(sy, "mean") else 0
    lp <- dnorm(z0, loc0, 10 * sy, log = TRUE) +
      sum(dnorm(b[-1], 0, 2.5 * sy / apply(Xu[, -1, drop = FALSE], 2, sd), log = TRUE))
  } else if (prior == "hierarchical") {
    tau <- th[length(th)]
    lp <- sum(dnorm(b, 0, exp(-tau / 2), log = TRUE)) +
      dgamma(exp(tau), shape = 1, rate = 100, log = TRUE) + tau
  }
  if (!is.null(sigma_rate)) lp <- lp + dexp(exp(th[p + 1]), sigma_rate, log = TRUE) + th[p + 1]
  -(ll + lp)
}

fd_grad <- function(f, th, eps = 1e-5) {
  vapply(seq_along(th), function(k) {
    e <- eps * (seq_along(th) == k)
    (f(th + e) - f(th - e)) / (2 * eps)
  }, numeric(1))
}

test_that("target_glm's potential and gradient match R's densities and finite differences", {
  d <- glm_data()
  d$w[3] <- 0  # a row that does not enter the likelihood
  cases <- list(
    list(formula = cbind(k, n - k) ~ x + f, family = binomial(), prior = "normal",
         weights = NULL, fam = "binomial_logit",
         yfun = function(mu) dbinom(d$k, d$n, mu, log = TRUE)),
    list(formula = y01 ~ x * f, family = binomial("probit"), prior = "hierarchical",
         weights = d$w, fam = "binomial_probit",
         yfun = function(mu) d$w * dbinom(d$y01, 1, mu, log = TRUE)),
    list(formula = cnt ~ x + f + offset(log(t)), family = poisson(), prior = "normal",
         weights = d$w, fam = "poisson", yfun = d$cnt),
    list(formula = yg ~ x + f, family = gaussian(), prior = "normal", weights = d$w,
         fam = "gaussian", yfun = d$yg, offset = d$t),
    list(formula = yg ~ x + f, family = gaussian(), prior = "hierarchical", weights = NULL,
         fam = "gaussian", yfun = d$yg, offset = NULL)
  )
  for (cs in cases) {
    d$.w <- if (is.null(cs$weights)) rep(1, nrow(d)) else cs$weights
    d$.off <- if (is.null(cs$offset)) rep(0, nrow(d)) else cs$offset
    pr <- switch(cs$prior, normal = prior_normal(), hierarchical = prior_hierarchical())
    tg <- target_glm(cs$formula, d, cs$family, prior = pr, weights = .w, offset = .off)
    g <- suppressWarnings(glm(cs$formula, cs$family, d, weights = .w, offset = .off))
    X <- model.matrix(g)
    expect_identical(tg$variables[seq_len(ncol(X))], colnames(X))
    gauss <- cs$fam == "gaussian"
    D <- ncol(X) + gauss + (cs$prior == "hierarchical")
    expect_equal(tg$dim, D)
    # the offset as glm() sees it: formula offsets plus the argument
    off <- g$offset
    if (is.null(off)) off <- rep(0, nrow(d))
    w <- if (is.null(cs$weights)) rep(1, nrow(d)) else cs$weights
    used <- w > 0
    sy <- 1
    if (gauss) {
      sy <- sd(d$yg[used])
      attr(sy, "mean") <- sum(w * d$yg) / sum(w)
    }
    f <- function(th) ref_phi(th, X, cs$fam, cs$yfun, w, off, cs$prior,
                              sigma_rate = if (gauss) 1 / sd(d$yg[used]), sy = sy)
    set.seed(3)
    th <- matrix(rnorm(4 * D, sd = 0.5), 4)
    if (cs$prior == "hierarchical") th[, D] <- log(c(0.01, 0.3, 1, 4))
    v <- potential_value(tg, th, grad = TRUE)
    ref <- apply(th, 1L, f)
    expect_lt(max(abs(v$value - ref)), 1e-10 * max(abs(ref)))
    fd <- t(apply(th, 1L, fd_grad, f = f))
    # central differences: error O(eps^2 Phi''') plus rounding O(1e-16 |Phi| / eps)
    expect_lt(max(abs(v$gradient - fd)), 1e-5 * max(1, abs(fd)))
  }
  # glm()'s equivalent binomial responses give the same potential
  a <- target_glm(cbind(k, n - k) ~ x, d, binomial())
  b <- target_glm(k / n ~ x, d, binomial(), weights = n)
  th <- matrix(c(0.2, 0.7, -1, 2), 2)
  expect_equal(potential_value(b, th, grad = TRUE), potential_value(a, th, grad = TRUE),
               tolerance = 1e-12)
  # a factor response: the first level is the failure, as in glm()
  d$yf <- factor(ifelse(d$y01 == 1, "yes", "no"))
  expect_equal(potential_value(target_glm(yf ~ x, d), th),
               potential_value(target_glm(y01 ~ x, d), th), tolerance = 1e-12)
  # draws carry the coefficient names
  expect_identical(target_glm(yg ~ f, d, gaussian)$variables,
                   c("(Intercept)", "fb", "fc", "log_sigma"))
})

test_that("a minibatch is the scaled log-likelihood of the rows drawn, unbiased for the full one", {
  d <- glm_data()
  d$w[c(3, 9)] <- 0   # rows outside the likelihood: never drawn
  used <- which(d$w > 0)
  np <- length(used)
  b <- 7L
  X <- model.matrix(~ x + f, d)
  p <- ncol(X)
  # each case: the per-row log-likelihood l(th) (N values), the part of it
  # that the minibatch estimates (the rest, theta-free constants and
  # -log sigma, is summed exactly over `used`) and the log prior
  cases <- list(
    gaussian = list(
      tg = target_glm(yg ~ x + f, d, gaussian(), prior = prior_hierarchical(),
                      prior_sigma = prior_flat(), weights = w),
      ll = function(th) dnorm(d$yg, drop(X %*% th[1:p]), exp(th[p + 1]) / sqrt(d$w), log = TRUE),
      exact = function(th) 0.5 * log(d$w) - 0.5 * log(2 * pi) - th[p + 1],
      lp = function(th) sum(dnorm(th[1:p], 0, exp(-th[p + 2] / 2), log = TRUE)) +
        dgamma(exp(th[p + 2]), 1, rate = 100, log = TRUE) + th[p + 2]),
    poisson = list(
      tg = target_glm(cnt ~ x + f, d, poisson(), prior = prior_normal(autoscale = FALSE),
                      weights = w, offset = log(t)),
      ll = function(th) d$w * dpois(d$cnt, exp(drop(X %*% th) + log(d$t)), log = TRUE),
      exact = function(th) -d$w * lgamma(d$cnt + 1),
      lp = function(th) {
        z0 <- th[1] + sum(colMeans(X[used, -1]) * th[-1])
        dnorm(z0, 0, 10, log = TRUE) + sum(dnorm(th[-1], 0, 2.5, log = TRUE))
      }))
  for (cs in cases) {
    D <- cs$tg$dim
    full <- function(th) -(sum(cs$ll(th)[used]) + cs$lp(th))
    part <- function(th, rows) {
      -(np / b * sum((cs$ll(th) - cs$exact(th))[rows]) + sum(cs$exact(th)[used]) + cs$lp(th))
    }
    mb <- cs$tg
    mb$batch <- b
    set.seed(2)
    th <- matrix(rnorm(3 * D, sd = 0.3), 3)
    # every row a minibatch can take gives the full potential: NA, or b >= n_+
    v0 <- potential_value(cs$tg, th, grad = TRUE)
    expect_lt(max(abs(v0$value - apply(th, 1L, full))), 1e-10 * max(abs(v0$value)))
    mb_all <- cs$tg
    mb_all$batch <- np
    expect_identical(potential_value(mb_all, th, grad = TRUE), v0)
    # one evaluation, one draw for all its points: the closed form on the
    # rows drawn, and its gradient by central differences
    for (seed in 1:3) {
      set.seed(seed)
      v <- potential_value(mb, th, grad = TRUE)
      set.seed(seed)
      rows <- minibatch_rows(used, b)
      ref <- apply(th, 1L, part, rows = rows)
      expect_lt(max(abs(v$value - ref)), 1e-10 * max(abs(ref)))
      fd <- t(apply(th, 1L, function(t) fd_grad(function(u) part(u, rows), t)))
      expect_lt(max(abs(v$gradient - fd)), 1e-5 * max(1, abs(fd)))
    }
    # unbiased: the mean of 2000 minibatch estimates within 4 standard errors
    # of the full value and gradient
    R <- 2000
    set.seed(7)
    est <- t(vapply(seq_len(R), function(i) {
      v <- potential_value(mb, th[1, , drop = FALSE], grad = TRUE)
      c(v$value, v$gradient)
    }, numeric(D + 1)))
    exact <- c(v0$value[1], v0$gradient[1, ])
    se <- apply(est, 2L, sd) / sqrt(R)
    noisy <- se > 1e-12 * max(1, abs(exact))
    expect_lt(max(abs(colMeans(est) - exact)[noisy] / se[noisy]), 4)
    # the prior's components (log alpha) do not depend on the rows drawn
    expect_equal(colMeans(est)[!noisy], exact[!noisy], tolerance = 1e-12)
  }
})

test_that("C's log prior density of a glm target is its closed form", {
  d <- glm_data()
  X <- model.matrix(~ x + f, d)
  p <- ncol(X)
  sy <- sd(d$yg)
  set.seed(4)
  # autoscaled normal prior of beta (intercept at the column means) and
  # sigma ~ Exponential(1 / sd(y)), as a density of log sigma
  tg <- target_glm(yg ~ x + f, d, gaussian())
  th <- matrix(rnorm(5 * (p + 1)), 5)
  ref <- apply(th, 1L, function(t) {
    z0 <- t[1] + sum(colMeans(X[, -1]) * t[2:p])
    dnorm(z0, mean(d$yg), 10 * sy, log = TRUE) +
      sum(dnorm(t[2:p], 0, 2.5 * sy / apply(X[, -1], 2L, sd), log = TRUE)) +
      dexp(exp(t[p + 1]), 1 / sy, log = TRUE) + t[p + 1]
  })
  lp <- .Call(jkoflow:::C_glm_log_prior, jkoflow:::glm_prior_part(tg), t(th))
  expect_equal(lp, ref, tolerance = 1e-12)
  # the hierarchical prior, and the flat one (0)
  tg <- target_glm(y01 ~ x + f, d, binomial(), prior = prior_hierarchical(2, 5))
  th <- cbind(matrix(rnorm(5 * p), 5), log(c(0.1, 1, 3, 0.5, 8)))
  ref <- apply(th, 1L, function(t) sum(dnorm(t[1:p], 0, exp(-t[p + 1] / 2), log = TRUE)) +
                 dgamma(exp(t[p + 1]), 2, rate = 5, log = TRUE) + t[p + 1])
  lp <- .Call(jkoflow:::C_glm_log_prior, jkoflow:::glm_prior_part(tg), t(th))
  expect_equal(lp, ref, tolerance = 1e-12)
  tg <- target_glm(y01 ~ x + f, d, binomial(), prior = prior_flat())
  expect_identical(.Call(jkoflow:::C_glm_log_prior, jkoflow:::glm_prior_part(tg),
                         t(th[, 1:p])), rep(0, 5))
  expect_error(.Call(jkoflow:::C_glm_log_prior, jkoflow:::glm_prior_part(tg), t(th)),
               "invalid prior of a glm target: the prior has 4 parameters but the points have dimension 5")
})

test_that("the potential stays defined far from the mode", {
  # probit: log Phi and its derivative in the far tail; one observation y = 1
  d1 <- data.frame(y = 1)
  tg <- target_glm(y ~ 1, d1, binomial("probit"), prior = prior_flat())
  for (b in c(-5, -30, -200)) {
    v <- potential_value(tg, matrix(b, 1), grad = TRUE)
    expect_equal(v$value, -pnorm(b, log.p = TRUE), tolerance = 1e-12)
    expect_equal(v$gradient[1, 1], -exp(dnorm(b, log = TRUE) - pnorm(b, log.p = TRUE)),
                 tolerance = 1e-12)
  }
  # beyond -100 the asymptotic series: phi/Phi = -b (1 + u - 2u^2 + 10u^3 + O(u^4)),
  # u = 1/b^2, whose next term is below 1e-16 relative here
  for (b in c(-150, -1e4, -1e8)) {
    v <- potential_value(tg, matrix(b, 1), grad = TRUE)
    u <- 1 / b^2
    expect_equal(v$gradient[1, 1], b * (1 + u - 2 * u^2 + 10 * u^3), tolerance = 1e-13)
    expect_equal(v$value, -pnorm(b, log.p = TRUE), tolerance = 1e-12)
  }
  d <- glm_data()
  # logit: finite far out
  v <- potential_value(target_glm(y01 ~ x, d), matrix(c(1e6, -1e6), 1), grad = TRUE)
  expect_true(is.finite(v$value) && all(is.finite(v$gradient)))
  # a Poisson mean beyond the largest double: Phi = +Inf, not NaN
  v <- potential_value(target_glm(cnt ~ x, d, poisson), matrix(c(800, 0), 1))
  expect_identical(v, Inf)
  v <- potential_value(target_glm(yg ~ x, d, gaussian), matrix(c(0, 0, -800), 1))
  expect_identical(v, Inf)
})

# glm() to the optimiser's precision
tight <- glm.control(epsilon = 1e-14, maxit = 100)

test_that("under a flat prior the posterior mode is glm()'s MLE and the Laplace covariance vcov()", {
  d <- glm_data(N = 80)
  cases <- list(
    list(cbind(k, n - k) ~ x + f, binomial(), NULL, NULL),
    list(y01 ~ x + f, binomial("probit"), "w", NULL),
    list(cnt ~ x + f + offset(log(t)), poisson(), "w", NULL),
    # a predictor in other units: a Hessian with condition number ~1e9
    list(yg ~ I(1e4 * x) + f, gaussian(), "w", "t"))
  for (cs in cases) {
    d$.w <- if (is.null(cs[[3]])) rep(1, nrow(d)) else d[[cs[[3]]]]
    d$.off <- if (is.null(cs[[4]])) rep(0, nrow(d)) else d[[cs[[4]]]]
    tg <- if (cs[[2]]$family == "gaussian") {
      target_glm(cs[[1]], d, cs[[2]], prior = prior_flat(), prior_sigma = prior_flat(),
                 weights = .w, offset = .off)
    } else {
      target_glm(cs[[1]], d, cs[[2]], prior = prior_flat(), weights = .w, offset = .off)
    }
    g <- glm(cs[[1]], cs[[2]], d, weights = .w, offset = .off, control = tight)
    la <- expect_silent(init_laplace(tg, inflate = 1))
    p <- length(coef(g))
    V <- vcov(g)
    if (cs[[2]]$family == "gaussian") {
      # the posterior mode of (beta, log sigma) under priors flat in beta and
      # log sigma: sigma^2 = RSS / n, where glm's dispersion is RSS / (n - p);
      # the covariance of beta is sigma^2 (X'WX)^-1, that of log sigma 1 / (2n)
      n <- nrow(d)
      V <- V * (n - p) / n
      rss <- deviance(g)  # sum w (y - mu)^2
      expect_equal(la$mode[p + 1], 0.5 * log(rss / n), tolerance = 1e-6)
      expect_equal(la$cov[p + 1, p + 1], 1 / (2 * n), tolerance = 1e-4)
      expect_lt(max(abs(la$cov[p + 1, seq_len(p)])), 1e-4 * sqrt(V[1, 1] / (2 * n)))
    }
    if (cs[[2]]$link == "probit") {
      # glm()'s vcov() is the inverse of the expected information (Fisher
      # scoring); the Laplace covariance is the inverse of the observed one,
      # which only the canonical links (logit, log, identity) share with it.
      # The observed information of the probit likelihood at the MLE, with
      # m(e) = phi(e) / Phi(e), m'(e) = -m(e) (e + m(e)):
      eta <- g$linear.predictors
      m <- function(e) exp(dnorm(e, log = TRUE) - pnorm(e, log.p = TRUE))
      dm <- function(e) -m(e) * (e + m(e))
      y <- d$y01
      h <- d$.w * (y * dm(eta) + (1 - y) * dm(-eta))
      X <- model.matrix(g)
      V <- solve(crossprod(X, -h * X))
      dimnames(V) <- dimnames(vcov(g))
    }
    se <- sqrt(diag(V))
    # BFGS stops at f - f* <= 1e-14 |f|, so |mode - MLE| is of order 1e-6 se
    expect_lt(max(abs(la$mode[seq_len(p)] - coef(g)) / se), 1e-4)
    # central differences of the gradient (step 1e-5): relative error ~1e-6
    expect_lt(max(abs(la$cov[seq_len(p), seq_len(p)] - V) / outer(se, se)), 1e-4)
  }
})

test_that("jko_fit(target_glm()) with defaults matches the closed-form posterior of a linear model", {
  # y ~ N(X beta, sigma^2), flat in beta and log sigma: beta | y is Student t
  # with n - p df about the least squares fit, with scale s^2 (X'X)^-1;
  # sigma^2 = (n - p) s^2 / chi^2_{n - p}
  set.seed(4)
  n <- 30
  d <- data.frame(x = rnorm(n))
  d$y <- 1 + 0.5 * d$x + rnorm(n)
  tg <- target_glm(y ~ x, d, gaussian(), prior = prior_flat(), prior_sigma = prior_flat())
  g <- lm(y ~ x, d)
  nu <- n - 2
  s2 <- sum(residuals(g)^2) / nu
  m_ref <- c(coef(g), 0.5 * log(nu * s2) - 0.5 * (digamma(nu / 2) + log(2)))
  s_ref <- c(sqrt(diag(vcov(g)) * nu / (nu - 2)), 0.5 * sqrt(trigamma(nu / 2)))
  set.seed(3)
  fit <- jko_fit(tg, verbose = FALSE)
  expect_true(fit$verdict$reached)
  s <- jko_sample(fit, 20000)
  expect_identical(colnames(s$x), c("(Intercept)", "x", "log_sigma"))
  # 20000 draws: Monte Carlo error 0.007 sd on a mean, 0.5% on an sd
  expect_lt(max(abs(colMeans(s$x) - m_ref) / s_ref), 0.1)
  expect_lt(max(abs(apply(s$x, 2L, sd) / s_ref - 1)), 0.1)
})

test_that("target_glm rejects bad input, naming the argument", {
  d <- glm_data()
  expect_error(target_glm(y01 ~ x, d, family = "nofamily"), "`family` = \"nofamily\" is not a family")
  expect_error(target_glm(y01 ~ x, d, family = 3), "`family` must be binomial\\(\\), poisson\\(\\) or gaussian\\(\\)")
  expect_error(target_glm(y01 ~ x, d, family = Gamma()), "`family` must be binomial, poisson or gaussian, not Gamma")
  expect_error(target_glm(y01 ~ x, d, family = binomial("cloglog")),
               "`family`'s link must be \"logit\" or \"probit\" for the binomial family, not \"cloglog\"")
  expect_error(target_glm(cnt ~ x, d, family = poisson("sqrt")), "`family`'s link must be \"log\"")
  expect_error(target_glm(yg ~ x, d, family = gaussian("log")), "`family`'s link must be \"identity\"")
  expect_error(target_glm(yg ~ x, d), "the response of `formula` must lie in \\[0, 1\\]")
  expect_error(target_glm(cbind(k, n - k, n) ~ x, d), "must be a two-column matrix")
  expect_error(target_glm(cbind(-k, n) ~ x, d), "has negative counts")
  expect_error(target_glm(yg ~ x, d, poisson), "must be counts \\(whole numbers >= 0\\)")
  expect_error(target_glm(f ~ x, d, gaussian), "must be numeric for the gaussian family")
  expect_error(target_glm(cbind(k, n) ~ x, d, poisson), "must be a vector for the poisson family")
  d2 <- d; d2$yg[2] <- Inf
  expect_error(target_glm(yg ~ x, d2, gaussian), "has 1 non-finite values")
  d2 <- d; d2$x[5] <- -Inf
  expect_error(target_glm(yg ~ x, d2, gaussian), "model matrix of `formula` has non-finite values in column `x`")
  expect_error(target_glm(yg ~ x, d, gaussian, weights = -w), "`weights` must be non-negative")
  expect_error(target_glm(yg ~ x, d, gaussian, weights = 0 * w), "`weights` are all zero")
  expect_error(target_glm(yg ~ x, d, gaussian, offset = x / 0), "`offset` .* must be finite")
  expect_error(target_glm(yg ~ x, d, gaussian, prior = "normal"), "`prior` must be prior_normal\\(\\)")
  expect_error(target_glm(yg ~ x, d, gaussian, prior_sigma = prior_normal()),
               "`prior_sigma` must be prior_exponential\\(\\) or prior_flat\\(\\)")
  expect_error(target_glm(y01 ~ x, d, prior_sigma = prior_flat()), "`prior_sigma` is for the gaussian family only")
  expect_error(prior_normal(scale = -1), "`scale` must be a single positive")
  expect_error(prior_normal(autoscale = NA), "`autoscale` must be TRUE or FALSE")
  expect_error(prior_hierarchical(rate = 0), "`rate` must be a single positive")
  expect_error(prior_exponential(rate = "a"), "`rate` must be a single positive")
  d$x2 <- 2 * d$x
  expect_error(target_glm(yg ~ x + x2, d, gaussian, prior = prior_flat()),
               "has rank 2 < 3 columns \\(`x2` aliased\\)")
  expect_error(target_glm(y ~ x), "`formula` and `data`|not found")
  expect_error(target_glm("y01 ~ x", d), "`formula` must be a model formula")
  expect_error(target_glm(y01 ~ 0, d), "`formula` must have at least one coefficient")
})

test_that("predict() of a target_glm fit is predict.glm() at the same coefficients", {
  d <- glm_data(N = 80)
  d$x[7] <- NA
  tg <- target_glm(cnt ~ x + f, d, poisson, offset = log(t), na.action = na.exclude)
  g <- glm(cnt ~ x + f, poisson, d, offset = log(t), na.action = na.exclude)
  set.seed(5)
  fit <- jko_fit(tg, init_laplace(tg), h = 0.1, steps = 1, hidden = c(4, 4), batch = 64,
                 iters = 5, verbose = FALSE, stationary = FALSE)
  # every draw at the MLE: the posterior predictive is predict.glm()'s
  at_mle <- structure(list(x = matrix(coef(g), 3, 4, byrow = TRUE), dim = 4L),
                      class = "jko_sample")
  nd <- data.frame(x = c(-1, 0, 2), f = factor(c("c", "a", "c")), t = c(1, 2, 0.5))
  for (type in c("link", "response")) {
    expect_equal(predict(fit, nd, type = type, samples = at_mle),
                 predict(g, nd, type = type), tolerance = 1e-12)
    # the fitted rows, the NA row padded by na.exclude
    expect_equal(predict(fit, type = type, samples = at_mle), predict(g, type = type),
                 tolerance = 1e-12)
  }
  # averages over draws: the mean of exp(eta) per row; per-draw matrices
  s <- jko_sample(fit, 200)
  X <- cbind(1, nd$x, nd$f == "b", nd$f == "c")
  eta <- s$x %*% t(X) + rep(log(nd$t), each = 200)
  expect_equal(unname(predict(fit, nd, samples = s)), colMeans(exp(eta)), tolerance = 1e-12)
  expect_equal(unname(predict(fit, nd, type = "link", samples = s)), colMeans(eta),
               tolerance = 1e-12)
  expect_equal(unname(predict(fit, nd, samples = s, summary = FALSE)), exp(eta),
               tolerance = 1e-12)
  expect_length(predict(fit, nd, n = 50), 3)
  expect_error(predict(fit, data.frame(x = 1, f = "z", t = 1), samples = s), "new level")
  expect_error(predict(fit, nd, type = "prob", samples = s),
               "`type` must be one of \"response\", \"link\", not \"prob\"", fixed = TRUE)
  expect_error(predict(fit, 1:3, samples = s), "`newdata` must be a data frame")

  # offsets in the formula, and the gaussian family's identity link
  tg2 <- target_glm(yg ~ x + f + offset(t), d, gaussian)
  g2 <- glm(yg ~ x + f + offset(t), gaussian, d)
  fit2 <- jko_fit(tg2, init_laplace(tg2), h = 0.1, steps = 1, hidden = c(4, 4), batch = 64,
                  iters = 5, verbose = FALSE, stationary = FALSE)
  at_mle2 <- structure(list(x = cbind(matrix(coef(g2), 2, 4, byrow = TRUE), 0), dim = 5L),
                       class = "jko_sample")
  expect_equal(predict(fit2, nd, samples = at_mle2), predict(g2, nd), tolerance = 1e-12)
  expect_identical(colnames(jko_sample(fit2, 3)$x), c(colnames(model.matrix(g2)), "log_sigma"))
})

test_that("a glm potential over many rows is the same sum on any number of threads", {
  # 40 000 rows: three pieces of 16 384 rows (glm.c's GLM_ROWS), shared among threads
  set.seed(11)
  n <- 40000
  x <- cbind(1, rnorm(n), rbinom(n, 1, 0.3))
  eta <- drop(x %*% c(-0.3, 0.8, 0.5))
  th <- matrix(c(-0.3, 0.8, 0.5, log(2)) + rnorm(12, sd = 0.05), 3, byrow = TRUE)
  fams <- list(list(y = rbinom(n, 1, plogis(eta)), family = binomial()),
               list(y = rbinom(n, 1, pnorm(eta)), family = binomial("probit")),
               list(y = rpois(n, exp(eta)), family = poisson()))
  for (f in fams) {
    d <- data.frame(y = f$y, a = x[, 2], b = x[, 3])
    tg <- target_glm(y ~ a + b, d, f$family, prior = prior_hierarchical())
    one <- jkoflow:::c_pot_eval(tg, th, TRUE, threads = 1L)
    two <- jkoflow:::c_pot_eval(tg, th, TRUE, threads = 2L)
    expect_identical(two$value, one$value)
    expect_identical(two$gradient, one$gradient)
    # against R's log-likelihood (the prior's part is tested above)
    mu <- f$family$linkinv(x %*% t(th[, 1:3]))
    ll <- if (f$family$family == "poisson") colSums(dpois(f$y, mu, log = TRUE)) else
      colSums(dbinom(f$y, 1, mu, log = TRUE))
    lp <- -one$value - ll
    lp0 <- -jkoflow:::c_pot_eval(target_glm(y ~ a + b, d[1, ], f$family,
                                            prior = prior_hierarchical()), th)$value -
      (if (f$family$family == "poisson") dpois(f$y[1], mu[1, ], log = TRUE) else
        dbinom(f$y[1], 1, mu[1, ], log = TRUE))
    # the two differ by the same prior: the sums over 40 000 rows agree to rounding
    expect_lt(max(abs(lp - lp0)), 1e-9 * max(abs(ll)))
  }
})

test_that("the vectorised logistic and Poisson rows are libm's to 1e-15 relative, row by row", {
  # one row per linear predictor, through an intercept-only model with a
  # flat prior: Phi is the row's negative log-likelihood term; t spans the
  # reduced range of e^-|t|, the clamp at 708 and beyond (where the terms
  # below e^-708 ~ 3e-308 are e^-708: an absolute error under 1e-307, so
  # the relative one is taken against at least 1e-290)
  t <- c(0, 1e-300, -1e-12, 1e-8, -0.3465, 0.3466, 0.5, -1, 2.5, -7, 17, -36.7, 40,
         -100, 300, -707.9, 708.2, -745, 800, -1e5)
  for (y in c(0, 1)) {
    d1 <- data.frame(y = y)
    tg <- target_glm(y ~ 1, d1, binomial(), prior = prior_flat())
    v <- potential_value(tg, matrix(t, ncol = 1), grad = TRUE)
    ref <- -(y * t - ifelse(t > 0, t + log1p(exp(-t)), log1p(exp(t))))
    expect_lt(max(abs(v$value - ref) / pmax(abs(ref), 1e-290)), 1e-15)
    dref <- -(y - plogis(t))
    expect_lt(max(abs(v$gradient[, 1] - dref) / pmax(abs(dref), 1e-290)), 1e-15)
  }
  tp <- c(-800, -708.5, -50, -3, -0.2, 0, 1e-9, 0.34, 2, 20, 300, 709.7)
  for (y in c(0, 3)) {
    d1 <- data.frame(y = y)
    tg <- target_glm(y ~ 1, d1, poisson(), prior = prior_flat())
    v <- potential_value(tg, matrix(tp, ncol = 1), grad = TRUE)
    mu <- exp(tp)
    ref <- -(y * tp - mu - lgamma(y + 1))
    # below e^-708 the mean is e^-708, an absolute error under 1e-307
    expect_lt(max(abs(v$value - ref) / pmax(abs(ref), 1e-290)), 1e-15)
    expect_lt(max(abs(v$gradient[, 1] + (y - mu)) / pmax(abs(y - mu), 1e-290)), 1e-15)
  }
})
