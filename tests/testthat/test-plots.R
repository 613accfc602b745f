# Plot methods: each draws to a png device without error, returns its input
# invisibly, writes a non-empty file and leaves par() as it found it.

# Draws `expr` into a temporary png; returns the value, its visibility, the
# file size and par("mfrow") after the plot (before the device is closed).
render_png <- function(expr, width = 700, height = 450) {
  file <- tempfile(fileext = ".png")
  grDevices::png(file, width = width, height = height)
  dev <- grDevices::dev.cur()
  on.exit(if (dev %in% grDevices::dev.list()) grDevices::dev.off(dev), add = TRUE)
  res <- withVisible(expr)
  mfrow <- graphics::par("mfrow")
  mar <- graphics::par("mar")
  grDevices::dev.off(dev)
  list(value = res$value, visible = res$visible, size = file.size(file),
       mfrow = mfrow, mar = mar)
}

fit1 <- local({
  set.seed(11)
  jko_fit(potential_double_well(), init_gaussian(0, 0.25), h = 0.1, steps = 3,
          hidden = c(8, 8), batch = 128, iters = 30)
})
fit2 <- local({
  set.seed(12)
  jko_fit(potential_gmm(rbind(c(-2, 0), c(2, 0)), sd = 0.7), init_gaussian(c(0, 0), 4),
          h = 0.1, steps = 2, hidden = c(8, 8), batch = 128, iters = 30)
})
fit3 <- local({
  set.seed(13)
  jko_fit(potential_quadratic(diag(3)), init_gaussian(rep(0, 3), 2), h = 0.1, steps = 1,
          hidden = c(8, 8), batch = 128, iters = 20)
})

test_that("plot.jko_fit draws every panel, returns the fit invisibly, restores par", {
  for (what in list(NULL, "loss", "free_energy", "density", "samples",
                    c("loss", "free_energy", "density"))) {
    for (fit in list(fit1, fit2)) {
      r <- render_png(if (is.null(what)) plot(fit) else plot(fit, what, n = 300))
      expect_identical(r$value, fit)
      expect_false(r$visible)
      expect_gt(r$size, 2000)
      expect_identical(r$mfrow, c(1L, 1L))
    }
  }
  r <- render_png(plot(fit1, "samples", step = 1, n = 300, main = "my title"))
  expect_identical(r$value, fit1)
  expect_identical(render_png(plot(fit3, "samples", n = 200))$value, fit3)
})

test_that("plot.jko_fit rejects what it cannot draw", {
  expect_error(plot(fit1, "histogram"),
               "`what` must be among \"pairs\", \"marginals\", \"loss\", \"free_energy\", \"density\", \"samples\", not \"histogram\"", fixed = TRUE)
  expect_error(render_png(plot(fit3, "density")), "dimension 1 or 2")
  expect_error(plot(fit1, "samples", step = 9), "`step` must be a whole number in 0..3")
})

test_that("plot.jko_sample draws D = 1, 2 and > 2 and returns the samples invisibly", {
  for (s in list(jko_sample(fit1, 300), jko_sample(fit2, 300, step = 0),
                 jko_sample(fit3, 200))) {
    r <- render_png(plot(s))
    expect_identical(r$value, s)
    expect_false(r$visible)
    expect_gt(r$size, 2000)
  }
  s3 <- jko_sample(fit3, 100)
  expect_identical(render_png(plot(s3, dims = c(3, 1)))$value, s3)
  expect_error(plot(s3, dims = 5), "`dims` must be at least two coordinates in 1..3")
  # user graphical parameters override the defaults instead of clashing
  expect_identical(render_png(plot(jko_sample(fit1, 100), main = "x", breaks = 10))$size > 0,
                   TRUE)
})

test_that("plot.jko_density draws curves, contours and points, and adds to a plot", {
  g1 <- seq(-2, 2, by = 0.1)
  g2 <- as.matrix(expand.grid(seq(-4, 4, length.out = 15), seq(-3, 3, length.out = 12)))
  d1 <- jko_density(fit1, g1)
  d2 <- jko_density(fit2, g2, log = TRUE)
  d2s <- jko_density(fit2, matrix(rnorm(40), 20, 2))
  for (d in list(d1, d2, d2s)) {
    r <- render_png(plot(d))
    expect_identical(r$value, d)
    expect_false(r$visible)
    expect_gt(r$size, 2000)
  }
  r <- render_png({
    hist(rnorm(200, sd = 0.8), freq = FALSE, xlim = c(-2, 2))
    plot(d1, add = TRUE, col = "red")
  })
  expect_identical(r$value, d1)
  r <- render_png({
    plot(jko_sample(fit2, 200))
    plot(jko_density(fit2, g2), add = TRUE)
  })
  expect_false(r$visible)
  expect_error(render_png(plot(d2s, add = TRUE)), "needs D = 1, or D = 2 with points on a grid")
})

test_that("the free-energy minimum drawn is that of the stationary law", {
  sfe <- jkoflow:::stationary_free_energy
  # quadratic: -log((2 pi / beta)^(D/2) det(A)^(-1/2)) / beta
  A <- matrix(c(2, 0.5, 0.5, 1), 2)
  expect_equal(sfe(potential_quadratic(A), beta = 2, D = 2),
               -(log(2 * pi / 2) - 0.5 * log(det(A))) / 2, tolerance = 1e-12)
  expect_equal(sfe(potential_gmm(rbind(0, 3)), beta = 1, D = 1), 0)
  expect_true(is.na(sfe(potential_gmm(rbind(0, 3)), beta = 2, D = 1)))
  z1 <- integrate(function(u) exp(-(u^2 - 1)^2), -Inf, Inf)$value
  expect_equal(sfe(potential_double_well(), beta = 1, D = 3),
               -(log(z1) + log(2 * pi)), tolerance = 1e-6)
  # and the fitted flow's free energy approaches it from above
  fe <- fit1$history$free_energy
  expect_lt(fe[length(fe)], fe[1L])
  expect_gt(fe[length(fe)], sfe(potential_double_well(), 1, 1) - 0.05)
})

test_that("plot() of a target's fit draws its posterior under the names, the training on request", {
  set.seed(14)
  tg <- target_logdensity(function(x) -rowSums(x^2) / 2, function(x) -x,
                          variables = c("mu", "tau", "theta"))
  # from a start it must train from (a good start passes at step 0, with no
  # training to plot)
  post <- suppressWarnings(jko_fit(tg, init_gaussian(c(1, 1, 1), 0.25), hidden = c(4, 4),
                                   iters = 20, pool = 2^10, monitor = 2^10, max_steps = 1,
                                   verbose = FALSE))
  for (what in list(NULL, "pairs", "marginals", "loss", c("loss", "free_energy"))) {
    r <- render_png(if (is.null(what)) plot(post) else plot(post, what))
    expect_identical(r$value, post)
    expect_false(r$visible)
    expect_gt(r$size, 3000)
    expect_identical(r$mfrow, c(1L, 1L))
    expect_identical(r$mar, c(5.1, 4.1, 4.1, 2.1))
  }
  expect_identical(render_png(plot(post, "marginals", pars = c("theta", "mu")))$value, post)
  expect_identical(render_png(plot(post, pars = 2:3, n = 100))$value, post)
  expect_error(plot(post, "pairs", pars = "sigma"), "`pars` names no variable of the fit: `sigma`")
  expect_error(plot(post, c("pairs", "loss")), "takes the whole page: draw it alone")
  expect_error(plot(fit1, "marginals"), "needs the posterior draws")
})
