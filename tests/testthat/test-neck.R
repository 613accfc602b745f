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
