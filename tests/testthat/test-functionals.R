# Free energies beyond Fokker-Planck (R/energy.R, src/terms.c): the loss of
# each term and its parameter gradient against finite differences, the
# Barenblatt profile against the porous-medium equation, and flows against
# closed forms of the JKO scheme.

energy_loss <- function(net, theta, x, energy, lrho = NULL, h = 0.2, beta = 0.7) {
  .Call(jkoflow:::C_energy_loss, jkoflow:::arch(net), net$alpha_min, theta, t(x), energy,
        lrho, h, beta, 1L)
}

check_energy_gradient <- function(net, x, energy, lrho = NULL, eps = 1e-6, per_block = 8) {
  g <- energy_loss(net, net$theta, x, energy, lrho)$gradient
  blocks <- icnn_blocks(net)
  for (nm in names(blocks)) {
    idx <- blocks[[nm]]
    idx <- idx[unique(round(seq(1, length(idx), length.out = min(per_block, length(idx)))))]
    fd <- vapply(idx, function(j) {
      tp <- net$theta; tm <- net$theta
      tp[j] <- tp[j] + eps; tm[j] <- tm[j] - eps
      (energy_loss(net, tp, x, energy, lrho)$loss -
         energy_loss(net, tm, x, energy, lrho)$loss) / (2 * eps)
    }, 0)
    scale <- max(abs(g[blocks[[nm]]]), 1e-6)
    expect_lte(max(abs(fd - g[idx])) / scale, 1e-5, label = paste(energy$label, "block", nm))
  }
}

# The interaction estimate of src/terms.c: blocks of n %/% block
# consecutive points, the U-statistic of W / 2 within each.
pair_energy <- function(y, W, block) {
  n <- nrow(y)
  nb <- max(1L, n %/% block)
  v <- numeric(n)
  for (q in seq_len(nb) - 1L) {
    ids <- (floor(q * n / nb) + 1):floor((q + 1) * n / nb)
    for (i in ids) {
      z <- sweep(y[setdiff(ids, i), , drop = FALSE], 2L, y[i, ], function(a, b) b - a)
      v[i] <- sum(W(z)) / (2 * (length(ids) - 1))
    }
  }
  mean(v)
}

test_that("the loss of each term is its documented estimate", {
  set.seed(21)
  net <- random_net(2, c(5, 5), 2)
  x <- matrix(rnorm(22), 11, 2)
  lrho <- rnorm(11, -1, 0.3)
  h <- 0.2; beta <- 0.7
  y <- predict(net, x, type = "gradient")
  ld <- predict(net, x, type = "logdet")
  transport <- mean(rowSums((y - x)^2)) / (2 * h)
  pot <- potential_quadratic(diag(c(1, 2)), c(0.5, -1))
  w_pow <- function(z) { r <- sqrt(rowSums(z^2)); r^3 / 3 - r^1.5 / 1.5 }
  cases <- list(
    list(jko_energy(pot, interaction_quadratic(block = 4), NULL),
         mean(potential_value(pot, y)) + pair_energy(y, function(z) rowSums(z^2) / 2, 4)),
    list(jko_energy(NULL, interaction_power(3, 1.5, block = 2), diffusion_entropy()),
         pair_energy(y, w_pow, 2) - mean(ld) / beta + mean(lrho) / beta),
    list(jko_energy(NULL, interaction_power(2, 0, block = 20), NULL),
         pair_energy(y, function(z) rowSums(z^2) / 2 - log(sqrt(rowSums(z^2))), 20)),
    list(jko_energy(diffusion = diffusion_porous(1.7)),
         mean(exp(0.7 * (lrho - ld))) / 0.7))
  for (cs in cases) {
    expect_equal(energy_loss(net, net$theta, x, cs[[1L]], lrho, h, beta)$loss,
                 transport + cs[[2L]], tolerance = 1e-12, label = cs[[1L]]$label)
  }
})

test_that("the Fokker-Planck energy as terms has the loss and gradient of the potential", {
  set.seed(22)
  net <- random_net(3, c(6, 4), 2)
  x <- matrix(rnorm(18), 6, 3)
  pot <- potential_gmm(matrix(rnorm(6), 2, 3), sd = 0.8)
  a <- .Call(jkoflow:::C_jko_loss, jkoflow:::arch(net), net$alpha_min, net$theta, t(x), pot,
             0.2, 0.7, 1L)
  b <- energy_loss(net, net$theta, x, jko_energy(pot))
  expect_equal(b$loss, a$loss, tolerance = 1e-13)
  expect_equal(b$gradient, a$gradient, tolerance = 1e-12)
})

test_that("the loss gradient of every term matches finite differences", {
  set.seed(23)
  for (a in list(list(d = 1, w = 4, r = 1), list(d = 2, w = c(6, 5), r = 2),
                 list(d = 3, w = c(5, 4, 3), r = 3))) {
    net <- random_net(a$d, a$w, a$r)
    x <- matrix(rnorm(9 * a$d), 9, a$d)
    lrho <- rnorm(9, -1, 0.5)
    pot <- potential_quadratic(diag(a$d), rnorm(a$d))
    for (en in list(jko_energy(pot, interaction_quadratic(block = 3), NULL),
                    jko_energy(NULL, interaction_power(2, 1, block = 4), NULL),
                    jko_energy(NULL, interaction_power(1.5, 0, block = 9)),
                    jko_energy(diffusion = diffusion_porous(2)),
                    jko_energy(pot, interaction_quadratic(), diffusion_porous(1.5)))) {
      check_energy_gradient(net, x, en, lrho)
    }
  }
  # an R-closure kernel, with and without its gradient
  net <- random_net(2, c(5, 4), 2)
  x <- matrix(rnorm(16), 8, 2)
  W <- function(z) rowSums(z^2)^2 / 4 - exp(-rowSums(z^2))
  gW <- function(z) z * (rowSums(z^2) + 2 * exp(-rowSums(z^2)))
  en <- jko_energy(NULL, interaction_fn(W, gW, block = 3), NULL)
  check_energy_gradient(net, x, en)
  e1 <- energy_loss(net, net$theta, x, en)
  e2 <- energy_loss(net, net$theta, x, jko_energy(NULL, interaction_fn(W, block = 3), NULL))
  expect_equal(e2$loss, e1$loss, tolerance = 1e-14)
  expect_equal(e2$gradient, e1$gradient, tolerance = 1e-7)
})

# ---- the Barenblatt profile ----

test_that("the Barenblatt profile has unit mass and solves d rho / dt = Laplacian(rho^m)", {
  for (D in 1:3) for (m in c(2, 3)) {
    t0 <- 0.7
    b <- init_barenblatt(D, m, t0)
    # mass: the radial integral of the density
    f <- function(r) exp(b$log_density(cbind(r, matrix(0, length(r), D - 1)))) *
      D * pi^(D / 2) / gamma(D / 2 + 1) * r^(D - 1)
    expect_equal(stats::integrate(f, 0, b$radius, rel.tol = 1e-10)$value, 1, tolerance = 1e-6)
    # the PDE at interior points, by central differences in t and x
    rho <- function(x, t) exp(init_barenblatt(D, m, t)$log_density(x))
    x0 <- matrix(b$radius * c(0.2, 0.45, 0.6)[seq_len(D)], 1)
    e <- 1e-4
    dt <- (rho(x0, t0 + e) - rho(x0, t0 - e)) / (2 * e)
    lap <- sum(vapply(seq_len(D), function(d) {
      u <- replace(numeric(D), d, e)
      (rho(x0 + u, t0)^m - 2 * rho(x0, t0)^m + rho(x0 - u, t0)^m) / e^2
    }, 0))
    expect_equal(dt, lap, tolerance = 1e-5, label = sprintf("D = %d, m = %g", D, m))
    # the sampler: E |X|^2 = trace of the covariance
    set.seed(D)
    xs <- b$sample(20000)
    r2 <- rowSums(xs^2)
    expect_lte(abs(mean(r2) - sum(diag(b$cov))), 4 * stats::sd(r2) / sqrt(20000))
    expect_true(all(r2 < b$radius^2))
  }
})


test_that("the JKO scheme's Barenblatt radius tends to the profile's", {
  for (D in 1:3) {
    b0 <- init_barenblatt(D, 2, 1)
    r <- barenblatt_jko_radius(D, 2, b0$radius, 1e-3, 1000)
    expect_equal(r, init_barenblatt(D, 2, 2)$radius, tolerance = 1e-3)
  }
})

test_that("the porous-medium flow keeps a Barenblatt profile with the JKO radius", {
  h <- 0.25
  for (D in 1:3) {
    set.seed(30 + D)
    b0 <- init_barenblatt(D, 2, 1)
    fit <- jko_fit(jko_energy(diffusion = diffusion_porous(2)), b0, h = h, steps = 2,
                   hidden = c(16, 16), batch = 256, iters = 150, monitor = 4096,
                   verbose = FALSE)
    R <- barenblatt_jko_radius(D, 2, b0$radius, h, 2)
    ref <- init_barenblatt(D, 2, (R / b0$radius)^(D + 2))   # that radius, R ~ t^(1/(D+2))
    expect_equal(ref$radius, R, tolerance = 1e-12)
    s <- jko_sample(fit, 40000)
    # relative L1 distance to the profile, E_fit |1 - rho_ref / rho_fit|
    l1 <- mean(abs(1 - exp(ref$log_density(s$x) - s$log_density)))
    expect_lt(l1, 0.03, label = sprintf("L1 error in D = %d", D))
    # second moment: the profile's within 2% (Monte Carlo sd below 0.3%)
    expect_equal(mean(rowSums(s$x^2)), sum(diag(ref$cov)), tolerance = 0.02)
    # the free energy at step 0 is int rho^2 of the profile
    A <- exp(lgamma(2 + D / 2) - D / 2 * log(pi) - lgamma(2))
    f0 <- A^2 * pi^(D / 2) * exp(lgamma(3) - lgamma(3 + D / 2)) * b0$radius^(-D)
    expect_equal(fit$history$free_energy[1], f0, tolerance = 0.03)
    expect_lt(fit$history$free_energy[3], fit$history$free_energy[1])
  }
})

# ---- interaction ----

test_that("the quadratic interaction contracts a Gaussian by 1 / (1 + h) per step", {
  set.seed(41)
  S0 <- matrix(c(2, 0.6, 0.6, 1), 2)
  h <- 0.25
  fit <- jko_fit(jko_energy(interaction = interaction_quadratic(), diffusion = NULL),
                 init_gaussian(c(1, -1), S0), h = h, steps = 2,
                 hidden = c(16, 16), batch = 256, iters = 400, lr = 0.01, verbose = FALSE)
  s <- jko_sample(fit, 20000)
  ref <- S0 / (1 + h)^4
  expect_lt(max(abs(stats::cov(s$x) - ref)) / max(ref), 0.04)
  expect_lt(max(abs(colMeans(s$x) - c(1, -1))), 0.03)
  # the free energy tr(Cov) / 2 at the monitor samples
  expect_equal(fit$history$free_energy[1], sum(diag(S0)) / 2, tolerance = 0.06)
  expect_equal(fit$history$free_energy[3], sum(diag(ref)) / 2, tolerance = 0.06)
})

test_that("aggregation-diffusion reaches its Gaussian steady state as the JKO recursion says", {
  # quadratic interaction + entropy / beta + potential a |x - b|^2 / 2:
  # Gaussians stay Gaussian; with s2 the variance, one step dilates by the
  # positive root lambda of (a + 1 + 1/h) s2 lambda^2 - s2 lambda / h - 1/beta,
  # and moves the mean to (mu + h a b) / (1 + h a); the steady state is
  # N(b, I / (beta (1 + a))).
  set.seed(42)
  a <- 1; b <- c(0.5, -0.5); beta <- 2; h <- 1
  en <- jko_energy(potential_quadratic(diag(a, 2), b), interaction_quadratic())
  fit <- jko_fit(en, init_gaussian(c(0, 0), 1.5), h = h, steps = 3, beta = beta,
                 hidden = c(16, 16), batch = 256, iters = 400, lr = 0.01, verbose = FALSE)
  s2 <- 1.5; mu <- c(0, 0)
  for (k in 1:3) {
    q <- (a + 1 + 1 / h) * s2
    lam <- (s2 / h + sqrt((s2 / h)^2 + 4 * q / beta)) / (2 * q)
    s2 <- lam^2 * s2
    mu <- (mu + h * a * b) / (1 + h * a)
  }
  expect_equal(s2, 1 / (beta * (1 + a)), tolerance = 0.05)   # near the steady state
  x <- jko_sample(fit, 20000)$x
  expect_equal(diag(stats::cov(x)), rep(s2, 2), tolerance = 0.04)
  expect_lt(abs(stats::cov(x)[1, 2]), 0.02)
  expect_equal(colMeans(x), mu, tolerance = 0.03)
  # the free energy falls to that of the steady state
  fe <- fit$history$free_energy
  expect_true(all(diff(fe) < 0))
  F_inf <- a * s2 + s2 - (1 + log(2 * pi * s2)) / beta   # at N(mu, s2 I), mu ~ b
  expect_equal(fe[4], F_inf + a * sum((mu - b)^2) / 2, tolerance = 0.05)
})

test_that("attraction-repulsion and R kernels run a flow; plot shows its free energy", {
  set.seed(43)
  en <- jko_energy(interaction = interaction_power(2, 1), diffusion = NULL)
  fit <- jko_fit(en, init_gaussian(c(0, 0), 1), h = 0.2, steps = 2,
                 hidden = c(8, 8), batch = 256, iters = 60, verbose = FALSE)
  expect_equal(nrow(fit$history), 3L)
  expect_true(all(diff(fit$history$free_energy) < 0))
  pdf(NULL)
  on.exit(grDevices::dev.off())
  expect_silent(plot(fit, what = "free_energy"))
  expect_error(jko_evidence(fit), "need the stationary law exp\\(-beta Phi\\)")
  expect_error(jko_sample(fit, 10, resample = TRUE), "need the stationary law")
  out <- capture.output(print(fit))
  expect_match(paste(out, collapse = "\n"), "interaction W\\(z\\) = \\|z\\|\\^2/2 - \\|z\\|\\^1/1")
  # an R kernel that errors: a classed error naming the kernel
  bad <- jko_energy(interaction = interaction_fn(function(z) stop("no")), diffusion = NULL)
  expect_error(jko_fit(bad, init_gaussian(c(0, 0), 1), h = 0.2, steps = 1, hidden = c(4, 4),
                       batch = 16, iters = 2, verbose = FALSE),
               "interaction kernel's `W` failed: no")
})

test_that("free energies check their arguments", {
  expect_error(jko_energy(interaction = 3), "`interaction` must be NULL or a kernel")
  expect_error(jko_energy(diffusion = "porous"), "`diffusion` must be NULL or diffusion_entropy")
  expect_error(jko_energy(NULL, NULL, NULL), "needs at least one of")
  expect_error(interaction_power(1, 2), "`b` must be a single number below `a`")
  expect_error(interaction_power(-1, -2), "`a` must be a single positive number")
  expect_error(interaction_quadratic(block = 1), "`block` must be a whole number >= 2")
  expect_error(interaction_fn(3), "`W` must be a function")
  expect_error(diffusion_porous(1), "`m` must be a single number above 1")
  expect_error(init_barenblatt(2, m = 0.5), "`m` must be a single number above 1")
  en <- jko_energy(diffusion = diffusion_porous(2))
  expect_error(jko_fit(en, init_samples(matrix(rnorm(40), 20)), steps = 1),
               "`init` must have a log-density")
  expect_error(jko_fit(en, init_gaussian(0, 1), stationary = TRUE),
               "`stationary = TRUE` needs a potential or target alone")
})
