# The groups of a centred hierarchy's neck (R/neck.R), named in the
# verdict of a flow that did not reach its target.

# The centred eight schools: x = (log tau, mu, theta[1..8]), theta_j ~
# N(mu, tau), y_j ~ N(theta_j, s_j), mu ~ N(0, 5), tau half-Cauchy(0, 5).
# In theta_j the potential's curvature is 1 / s_j^2 + exp(-2 log tau), the
# second term the prior's: its share of it is
# a_j = e^(-2 v) / (e^(-2 v) + s_j^-2).
eight_schools_centred <- function() {
  y <- c(28, 8, -3, 7, -1, 1, 18, 12)
  s <- c(15, 10, 16, 11, 9, 11, 10, 18)
  logd <- function(x) {
    v <- x[, 1]
    mu <- x[, 2]
    th <- x[, -(1:2), drop = FALSE]
    -rowSums(sweep(sweep(th, 2L, y), 2L, s, "/")^2) / 2 - rowSums((th - mu)^2) * exp(-2 * v) / 2 -
      8 * v - mu^2 / 50 - log1p(exp(2 * v) / 25) + v
  }
  grad <- function(x) {
    v <- x[, 1]
    mu <- x[, 2]
    th <- x[, -(1:2), drop = FALSE]
    r <- th - mu
    cbind(rowSums(r^2) * exp(-2 * v) - 8 - 2 * exp(2 * v) / 25 / (1 + exp(2 * v) / 25) + 1,
          rowSums(r) * exp(-2 * v) - mu / 25,
          -sweep(sweep(th, 2L, y), 2L, s^2, "/") - r * exp(-2 * v))
  }
  list(s = s, target = target_logdensity(logd, grad, variables = c("log_tau", "mu",
                                                                   sprintf("theta[%d]", 1:8))))
}

test_that("neck_groups() finds a centred group's scale and members, and leaves its mean out", {
  es <- eight_schools_centred()
  tg <- es$target
  # near the neck: tau = e^-4, the thetas within a few tau of mu
  set.seed(1)
  x <- c(-4, 4, 4 + exp(-4) * rnorm(8))
  g <- jkoflow:::neck_groups(tg, x)
  expect_length(g, 1L)
  expect_equal(g[[1]]$scale, 1L)
  # mu's curvature also scales so (8 e^(-2 v) of it), but it is coupled
  # through log tau to all eight: a hub, not a member
  expect_equal(sort(g[[1]]$members), 3:10)
  a <- exp(8) / (exp(8) + es$s^-2)
  expect_lt(abs(g[[1]]$share - stats::median(a)), 1e-3)
  # the words name the scale and the members
  txt <- jkoflow:::neck_text(g, tg$variables)
  expect_match(txt, paste0("the precision of 8 coordinates (theta[1], theta[2], theta[3], ...) ",
                           "scales as exp(-2 x) in x = log_tau: a centred hierarchy on that scale"),
               fixed = TRUE)
  expect_match(jkoflow:::neck_text(g), "in x = x[1]", fixed = TRUE)
})

test_that("neck_groups() finds none where the data hold the group or nothing scales", {
  tg <- eight_schools_centred()$target
  # tau = e^5: the prior's share of each theta's curvature under 0.12
  # (e^-10 against 1 / 18^2 at most)
  expect_null(jkoflow:::neck_groups(tg, c(5, 4, rep(4, 8))))
  # a correlated Gaussian: no third derivative at all
  P <- 0.5^abs(outer(1:8, 1:8, "-"))
  gs <- target_logdensity(function(x) -rowSums((x %*% P) * x) / 2, function(x) -x %*% P,
                          dim = 8)
  expect_null(jkoflow:::neck_groups(gs, rep(0.3, 8)))
})

test_that("a verdict not reached names the neck's groups before the mode search", {
  tg <- eight_schools_centred()$target
  g <- jkoflow:::neck_groups(tg, c(-6, 4, rep(4, 8)))
  v <- list(reached = FALSE, reason = "stalled", step = 3L, monitor = 4096L, pareto_k = 0.9,
            ess = 0.05, kl = 1.2, kl_se = 0.1, outside = 0, growth = 0.1,
            neck = list(groups = g, text = jkoflow:::neck_text(g, tg$variables)))
  txt <- jkoflow:::verdict_text(v)
  expect_match(txt, paste0("reparameterise it .* At the search's first point, a neck, the ",
                           "precision of 8 coordinates .* in x = log_tau: .* has no such neck\\. ",
                           "No search for further modes"))
})

# The normal-normal model of J groups, centred: x = (log tau, mu,
# theta[1..J]), y_j ~ N(theta_j, 1), theta_j ~ N(mu, tau), mu ~ N(0, 5),
# tau half-Cauchy(0, 1). Given log tau the rest is Gaussian, and log tau's
# marginal is known in closed form: mu integrated out of
# prod_j N(y_j | mu, 1 + tau^2) N(mu | 0, 25).
normal_normal_centred <- function(y) {
  J <- length(y)
  logd <- function(x) {
    v <- x[, 1]
    mu <- x[, 2]
    th <- x[, -(1:2), drop = FALSE]
    -rowSums(sweep(th, 2L, y)^2) / 2 - rowSums((th - mu)^2) * exp(-2 * v) / 2 - J * v -
      mu^2 / 50 - log1p(exp(2 * v)) + v
  }
  grad <- function(x) {
    v <- x[, 1]
    mu <- x[, 2]
    th <- x[, -(1:2), drop = FALSE]
    r <- th - mu
    cbind(rowSums(r^2) * exp(-2 * v) - J - 2 * exp(2 * v) / (1 + exp(2 * v)) + 1,
          rowSums(r) * exp(-2 * v) - mu / 25,
          -sweep(th, 2L, y) - r * exp(-2 * v))
  }
  # log tau's marginal log-density, up to a constant
  marginal <- function(v) vapply(v, function(vi) {
    s2 <- 1 + exp(2 * vi)
    # mu ~ N(0, 25) against J observations of variance s2
    prec <- 1 / 25 + J / s2
    m <- sum(y) / s2 / prec
    -J / 2 * log(s2) - sum(y^2) / (2 * s2) + prec * m^2 / 2 - log(prec) / 2 -
      log1p(exp(2 * vi)) + vi
  }, 0)
  list(target = target_logdensity(logd, grad, dim = J + 2L), marginal = marginal)
}

test_that("neck_steps() reaches down the neck where the start's sds are narrow", {
  set.seed(3)
  nn <- normal_normal_centred(rnorm(20, 0.5, 1.1))
  tg <- nn$target
  # the span within neck_drop of the marginal's top, in quarter units: a
  # sixteenth of it, against the start's sd of 0.05 along log tau
  st <- jkoflow:::neck_steps(tg, 1, c(-0.5, 0.5, rep(0.5, 20)), 1L, 0.025)
  v <- seq(-12, 4, by = 1 / 4)
  lm <- nn$marginal(v)
  span <- diff(range(v[lm > max(lm) - jkoflow:::neck_drop]))
  expect_lt(abs(st - span / 16), 1 / 16 + 1e-9)
  expect_gt(st, 0.2)
})

test_that("stationary_start() builds the law along a neck's scale above conditional_max_dim", {
  # 120 groups (D = 122): no mode (the search ends at the neck), no
  # conditional laws (D > 100), no slice law (no mode); the neck names
  # log tau, and the law along it is the target's up to its lattice
  set.seed(5)
  nn <- normal_normal_centred(rnorm(120, 0.3, 1.15))
  tg <- nn$target
  set.seed(1)
  q <- suppressWarnings(jkoflow:::stationary_start(tg, NULL, 1))
  expect_identical(q$conditional, 1L)
  x <- q$sample(8192)
  lw <- -jkoflow:::potential_values(tg, x) - q$log_density(x)
  w <- exp(lw - max(lw))
  # KL(q || pi): the law is exact given log tau; what is left is its
  # lattice's, cells a sixteenth of the marginal's span (0.07 here), and
  # it passes as a proposal
  expect_lt(log(mean(w)) + max(lw) - mean(lw), 0.1)
  expect_lt(attr(q, "pmc_score"), -10)
  # log tau's mean against the closed-form marginal's (quadrature), within
  # 4 standard errors of the importance-weighted mean
  v <- seq(-15, 5, by = 1 / 64)
  pm <- exp(nn$marginal(v) - max(nn$marginal(v)))
  truth <- sum(v * pm) / sum(pm)
  w <- w / sum(w)
  est <- sum(w * x[, 1])
  se <- sqrt(sum(w^2 * (x[, 1] - est)^2))
  expect_lt(abs(est - truth), 4 * se)
})
