# The flow: closed-form Gaussian steps, normalised densities, inversion,
# reproducibility and persistence.

# One JKO step of the OU potential (x-b)'A(x-b)/2 from N(0, I) is linear:
# x -> M x + m with M = f(A), f(a) the positive root of
# (1/h + a) m^2 - m/h - 1/beta = 0, and m = (I + hA)^{-1} h A b.
ou_step <- function(A, b, h, beta = 1) {
  e <- eigen(A, symmetric = TRUE)
  a <- e$values
  f <- (1 / h + sqrt(1 / h^2 + 4 * (1 / h + a) / beta)) / (2 * (1 / h + a))
  M <- e$vectors %*% diag(f, length(f)) %*% t(e$vectors)
  list(mean = drop(solve(diag(length(b)) + h * A, h * A %*% b)), cov = M %*% M)
}

dmvnorm_log <- function(x, mean, cov) {
  R <- chol(cov)
  z <- backsolve(R, t(x) - mean, transpose = TRUE)
  -0.5 * colSums(z^2) - sum(log(diag(R))) - ncol(x) / 2 * log(2 * pi)
}

test_that("one OU step matches the closed-form Gaussian", {
  set.seed(21)
  A <- matrix(c(2, 0.5, 0.5, 1), 2); b <- c(1, -1); h <- 0.25
  fit <- jko_fit(potential_quadratic(A, b), init_gaussian(c(0, 0)), h = h,
                 steps = 1, hidden = c(16, 16), rank = 2, batch = 512,
                 iters = 1000, verbose = FALSE)
  ref <- ou_step(A, b, h)
  n <- 20000
  s <- jko_sample(fit, n)
  # sampling error of the mean: sd / sqrt(n); allow 4 standard errors plus
  # a small training bias
  se <- sqrt(diag(ref$cov) / n)
  expect_true(all(abs(colMeans(s$x) - ref$mean) < 4 * se + 0.01))
  # covariance entries: se of S_ij is about sqrt((S_ii S_jj + S_ij^2) / n)
  se_cov <- sqrt((outer(diag(ref$cov), diag(ref$cov)) + ref$cov^2) / n)
  expect_true(all(abs(cov(s$x) - ref$cov) < 4 * se_cov + 0.01))
  # densities within 2 sd of the mean
  pts <- sweep(matrix(rnorm(600), 300) %*% chol(ref$cov), 2, ref$mean, "+")
  z <- backsolve(chol(ref$cov), t(pts) - ref$mean, transpose = TRUE)
  pts <- pts[sqrt(colSums(z^2)) <= 2, ]
  d <- jko_density(fit, pts)
  rel <- abs(as.numeric(d) / exp(dmvnorm_log(pts, ref$mean, ref$cov)) - 1)
  expect_lte(max(rel), 0.02)
  expect_lte(d$residual, 1e-8)
})

test_that("each step's network is standardised by the moments of its input", {
  set.seed(23)
  A <- diag(c(4, 2)); b <- c(3, -2); h <- 0.25
  fit <- jko_fit(potential_quadratic(A, b), init_gaussian(c(1, 1), 4), h = h,
                 steps = 2, hidden = c(16, 16), rank = 2, batch = 256, iters = 200,
                 verbose = FALSE)
  expect_length(fit$std, 2L)
  # step 1: rho_0's exact centre and scale (sqrt of the mean variance)
  expect_identical(fit$std[[1]], list(center = c(1, 1), scale = 2))
  # step 2: those of rho_1, estimated on the pool of 200 x 256 draws; against
  # 1e5 fresh draws of rho_1, to 4 standard errors of the pool's estimates
  s1 <- jko_sample(fit, 1e5, step = 1)$x
  sd1 <- apply(s1, 2, sd)
  n <- 200 * 256
  expect_true(all(abs(fit$std[[2]]$center - colMeans(s1)) < 4 * sd1 / sqrt(n)))
  # se of a variance: var * sqrt(2 / n) (rho_1 is Gaussian)
  expect_lt(abs(fit$std[[2]]$scale^2 - mean(sd1^2)), 4 * mean(sd1^2) * sqrt(2 / n))
})

test_that("densities integrate to one and invert the samples exactly", {
  set.seed(22)
  pot <- potential_gmm(rbind(c(-1.5, 0), c(1.5, 0.5)), sd = 0.6)
  fit <- jko_fit(pot, init_gaussian(c(0, 0), 2), h = 0.1, steps = 3,
                 hidden = c(16, 16), rank = 3, batch = 256, iters = 150,
                 verbose = FALSE)
  s <- jko_sample(fit, 4000)
  lim <- apply(s$x, 2, range) + c(-2, 2)
  g1 <- seq(lim[1, 1], lim[2, 1], length.out = 90)
  g2 <- seq(lim[1, 2], lim[2, 2], length.out = 90)
  d <- jko_density(fit, as.matrix(expand.grid(g1, g2)))
  mass <- sum(as.numeric(d)) * diff(g1[1:2]) * diff(g2[1:2])
  expect_lt(abs(mass - 1), 0.01)
  # the round trip: density at the pushed samples = their log-density
  back <- jko_density(fit, s$x[1:200, ], log = TRUE)
  expect_lte(max(abs(back$log_density - s$log_density[1:200])), 1e-6)
  expect_lte(back$residual, 1e-8)
  # step 0 is rho_0 itself
  d0 <- jko_density(fit, s$x[1:5, ], step = 0, log = TRUE)
  expect_equal(as.numeric(d0), dmvnorm_log(s$x[1:5, ], c(0, 0), diag(2, 2)),
               tolerance = 1e-12)
})

test_that("an R function and the equivalent built-in give the same fit", {
  A <- matrix(c(1.5, 0.3, 0.3, 0.8), 2); b <- c(0.5, 0)
  quad <- potential_quadratic(A, b)
  rfun <- potential_fn(function(x) 0.5 * rowSums(((x - rep(b, each = nrow(x))) %*% A) *
                                                   (x - rep(b, each = nrow(x)))),
                       function(x) (x - rep(b, each = nrow(x))) %*% A)
  run <- function(pot) {
    set.seed(23)
    jko_fit(pot, init_gaussian(c(1, 1)), h = 0.1, steps = 2, hidden = c(8, 8),
            rank = 2, batch = 64, iters = 40, verbose = FALSE)
  }
  f1 <- run(quad); f2 <- run(rfun)
  expect_lte(max(abs(f1$theta[[2]] - f2$theta[[2]])), 1e-8)
  set.seed(1); s1 <- jko_sample(f1, 100)
  set.seed(1); s2 <- jko_sample(f2, 100)
  expect_lte(max(abs(s1$x - s2$x)), 1e-8)
})

test_that("set.seed() reproduces a fit exactly", {
  run <- function() {
    set.seed(24)
    jko_fit(potential_double_well(), init_gaussian(0, 0.5), h = 0.1, steps = 2,
            hidden = c(8, 8), rank = 2, batch = 64, iters = 30, verbose = FALSE)
  }
  f1 <- run(); f2 <- run()
  expect_identical(f1$theta, f2$theta)
  expect_identical(f1$history$loss, f2$history$loss)
})

test_that("fits round-trip through saveRDS with identical samples and densities", {
  set.seed(25)
  fit <- jko_fit(potential_double_well(), init_gaussian(0, 0.5), h = 0.1, steps = 2,
                 hidden = c(8, 8), rank = 2, batch = 64, iters = 30, verbose = FALSE)
  f <- tempfile(fileext = ".rds")
  saveRDS(fit, f)
  fit2 <- readRDS(f)
  set.seed(2); a <- jko_sample(fit, 50)
  set.seed(2); b <- jko_sample(fit2, 50)
  expect_identical(a$x, b$x)
  expect_identical(a$log_density, b$log_density)
  pts <- seq(-2, 2, by = 0.5)
  expect_identical(as.numeric(jko_density(fit, pts)), as.numeric(jko_density(fit2, pts)))
})

test_that("time maps to the nearest step and the free energy decreases", {
  set.seed(26)
  fit <- jko_fit(potential_quadratic(1, 2), init_gaussian(0, 1), h = 0.2, steps = 4,
                 hidden = c(8, 8), rank = 2, batch = 128, iters = 80, verbose = FALSE)
  expect_equal(jko_sample(fit, 10, time = 0.41)$step, 2L)
  expect_equal(jko_sample(fit, 10, time = 0.8)$step, 4L)
  expect_error(jko_sample(fit, 10, time = 1.3), "`time` must be within the fitted range")
  expect_error(jko_sample(fit, 10, step = 5), "`step` must be a whole number in 0..4")
  expect_error(jko_density(fit, 0, step = -1), "`step` must be a whole number in 0..4")
  # the JKO scheme decreases the free energy step by step (up to Monte Carlo
  # error of the estimate, about 0.02 here)
  fe <- fit$history$free_energy
  expect_true(all(diff(fe) < 0.02))
  # OU in 1-D from N(0, 1) towards N(2, 1): the mean after t = 0.8
  # is 2 (1 - exp(-0.8)) in continuous time; JKO's is 2 (1 - (1 + h)^-4)
  m <- mean(jko_sample(fit, 20000)$x)
  expect_lt(abs(m - 2 * (1 - 1.2^-4)), 0.03)
})

test_that("init_samples without a log-density gives samples but no densities", {
  set.seed(27)
  fit <- jko_fit(potential_double_well(), init_samples(matrix(rnorm(500), ncol = 1)),
                 h = 0.1, steps = 1, hidden = c(8, 8), batch = 64, iters = 20,
                 verbose = FALSE)
  s <- jko_sample(fit, 100)
  expect_true(all(is.na(s$log_density)))
  expect_error(jko_density(fit, 0.5), "densities need the log-density of the initial distribution")
})

# Maps as C_flow_push / C_flow_pull read them: each with its own network
# (arch, alpha_min) where `own`, and a change of variables.
flow_maps <- function(nets, std, own = TRUE) {
  lapply(seq_along(nets), function(j) {
    c(list(theta = nets[[j]]$theta),
      if (own) list(arch = jkoflow:::arch(nets[[j]]), alpha_min = nets[[j]]$alpha_min),
      std[[j]])
  })
}
flow_push <- function(arch, alpha_min, maps, x, ld, threads = 2L) {
  .Call(jkoflow:::C_flow_push, arch, alpha_min, maps, x, ld, threads)
}
flow_pull <- function(arch, alpha_min, maps, y, threads = 2L) {
  .Call(jkoflow:::C_flow_pull, arch, alpha_min, maps, y, 1e-10, 100L, threads)
}

test_that("maps of different architectures push and pull in one call as one by one", {
  set.seed(31)
  # near-identity maps (parameters moved by 0.05 from the start), so that
  # their chain stays invertible to 1e-10
  tame <- function(...) {
    net <- icnn(...)
    net$theta <- net$theta + 0.05 * rnorm(length(net$theta))
    blocks <- icnn_blocks(net)
    for (nm in grep("^(W|v)", names(blocks), value = TRUE)) {
      net$theta[blocks[[nm]]] <- abs(net$theta[blocks[[nm]]])
    }
    net
  }
  nets <- list(tame(2, c(8, 8), 2), tame(2, c(16, 4, 6), 3, alpha_min = 0.01),
               tame(2, 5, 1, "squared_softplus"))
  std <- list(list(center = c(0.1, -0.2), scale = 1.5),
              list(center = c(0, 0.5), L = matrix(c(1, 0.3, 0, 0.8), 2)),
              list(center = c(1, 1), scale = 0.7))
  x <- matrix(rnorm(2 * 500), 2)
  ld <- rnorm(500)
  one <- flow_push(NULL, NULL, flow_maps(nets, std), x, ld)
  expect_identical(one$status, "ok")
  y <- x
  l <- ld
  for (j in 1:3) {
    r <- flow_push(jkoflow:::arch(nets[[j]]), nets[[j]]$alpha_min,
                   flow_maps(nets[j], std[j], own = FALSE), y, l)
    y <- r$x
    l <- r$log_density
  }
  expect_identical(one$x, y)
  expect_identical(one$log_density, l)
  # a map without its own network takes the call's
  mixed <- flow_maps(nets, std)
  mixed[[1]]$arch <- NULL
  mixed[[1]]$alpha_min <- NULL
  expect_identical(flow_push(jkoflow:::arch(nets[[1]]), nets[[1]]$alpha_min, mixed, x, ld), one)

  back <- flow_pull(NULL, NULL, flow_maps(nets, std), one$x)
  z <- one$x
  ldet <- 0
  res <- 0
  for (j in 3:1) {
    r <- flow_pull(jkoflow:::arch(nets[[j]]), nets[[j]]$alpha_min,
                   flow_maps(nets[j], std[j], own = FALSE), z)
    z <- r$x
    ldet <- ldet + r$log_det
    res <- max(res, r$residual)
  }
  expect_identical(back$x, z)
  expect_identical(back$log_det, ldet)
  expect_identical(back$residual, res)
  # and the pull inverts the push: Newton to 1e-10 in the maps' units
  expect_lt(max(abs(back$x - x)), 1e-8)
  expect_lt(max(abs(back$log_det - (one$log_density - ld))), 1e-8)

  wrong <- flow_maps(list(nets[[1]], icnn(3, 4, 1)),
                     list(std[[1]], list(center = c(0, 0, 0), scale = 1)))
  expect_error(flow_push(NULL, NULL, wrong, x, ld), "map 2 is of dimension 3, the points of dimension 2")
  expect_error(flow_pull(NULL, NULL, flow_maps(nets, std, own = FALSE), x),
               "map 1 has no 'arch', and the call gives none")
})

test_that("pushes, pulls, potentials and energies in chunks are those of one call, bit for bit", {
  set.seed(41)
  net <- icnn(2, c(8, 8), 2)
  net$theta <- net$theta + 0.05 * rnorm(length(net$theta))
  blocks <- icnn_blocks(net)
  for (nm in grep("^(W|v)", names(blocks), value = TRUE)) {
    net$theta[blocks[[nm]]] <- abs(net$theta[blocks[[nm]]])
  }
  maps <- flow_maps(list(net, net), list(list(center = c(0.3, 0), scale = 1.2),
                                         list(center = c(0, -1), scale = 0.8)))
  # n crosses the maps' chunks of 2048 points (between which an interrupt
  # is checked for); the parts are calls of one or two chunks. (Parts not
  # aligned with the chunks split the threads' shares of a batch elsewhere,
  # and a BLAS product may round a point differently with its place in a
  # share; Newton's method compacts the points still moving likewise.)
  n <- 3 * 2048 + 5
  x <- matrix(rnorm(2 * n), 2)
  ld <- rnorm(n)
  parts <- list(1:2048, 2049:6144, 6145:n)
  for (th in 1:2) {
    whole <- flow_push(NULL, NULL, maps, x, ld, th)
    pieces <- lapply(parts, function(i) flow_push(NULL, NULL, maps, x[, i], ld[i], th))
    expect_identical(whole$x, do.call(cbind, lapply(pieces, `[[`, "x")))
    expect_identical(whole$log_density, unlist(lapply(pieces, `[[`, "log_density")))
    back <- flow_pull(NULL, NULL, maps, whole$x, th)
    pieces <- lapply(parts, function(i) flow_pull(NULL, NULL, maps, whole$x[, i], th))
    expect_identical(back$x, do.call(cbind, lapply(pieces, `[[`, "x")))
    expect_identical(back$log_det, unlist(lapply(pieces, `[[`, "log_det")))
  }
  # potentials: a glm target over more than 2^14 points (C's chunks) and
  # 2000 rows (its own parts of 2e7 / 2000 = 1e4 points)
  N <- 2000
  d <- data.frame(a = rnorm(N), b = rnorm(N))
  d$y <- rbinom(N, 1, plogis(d$a - d$b))
  tg <- target_glm(y ~ a + b, d, binomial())
  m <- 2^14 + 500
  th <- matrix(rnorm(3 * m, sd = 0.3), m)
  whole <- potential_value(tg, th, grad = TRUE)
  rows <- list(1:10000, 10001:2^14, (2^14 + 1):m)
  pieces <- lapply(rows, function(i) potential_value(tg, th[i, ], grad = TRUE))
  expect_identical(whole$value, unlist(lapply(pieces, `[[`, "value")))
  expect_identical(whole$gradient, do.call(rbind, lapply(pieces, `[[`, "gradient")))
  # an interaction energy over 20000 points in blocks of 4 (groups of blocks
  # between interrupt checks): the pairs' sums as R computes them
  y <- matrix(rnorm(2 * 20000), 2)
  en <- jko_energy(interaction = interaction_quadratic(block = 4), diffusion = NULL)
  v <- jkoflow:::c_energy_eval(en, t(y), rep(0, 20000), 1, 2L)
  blk <- array(y, c(2, 4, 5000))
  ref <- numeric(20000)
  for (i in 1:4) for (j in setdiff(1:4, i)) {
    ref[seq(i, 20000, by = 4)] <- ref[seq(i, 20000, by = 4)] +
      colSums((blk[, i, ] - blk[, j, ])^2) / 2 / (2 * 3)
  }
  expect_equal(v, ref, tolerance = 1e-13)
})

# The JKO scheme on Phi = a x^2 / 2 from N(m, s^2), k steps of h (1-D,
# beta = 1): mean m / (1 + a h)^k, sd by ou_step()'s root, step by step.
jko_chain <- function(m, s, a, h, k) {
  out <- matrix(NA_real_, k, 2L, dimnames = list(NULL, c("mean", "sd")))
  for (j in seq_len(k)) {
    m <- m / (1 + a * h)
    s <- s * (1 / h + sqrt(1 / h^2 + 4 * (1 / h + a) / s^2)) / (2 * (1 / h + a))
    out[j, ] <- c(m, s)
  }
  out
}

test_that("a time-accurate step far from its closed form is trained again, then warned of", {
  ctl <- jko_control(hidden = c(16, 16), batch = 256, iters = 300, pool = 2^14, monitor = 2^12)
  fits <- list()
  # a stiff quadratic: one step of h = 0.1 under 100 x^2 / 2 takes N(0, 1)
  # to sd 0.151, a step of 300 iterations to 0.65 (before: silently); from
  # N(1000, 1) under x^2 / 2 each step moves the mean by 76-91 sds, and 300
  # iterations left sds of 32, 92 and 83 where the scheme keeps 1
  cases <- list(stiff = list(a = 100, m = 0, k = 2L, warn = "at step 1: "),
                far = list(a = 1, m = 1000, k = 3L, warn = "at steps? [0-9, ]+: "),
                mild = list(a = 1, m = 1, k = 2L, warn = NULL))
  for (nm in names(cases)) {
    cs <- cases[[nm]]
    set.seed(24)
    run <- function() jko_fit(potential_quadratic(cs$a), init_gaussian(cs$m, 1), h = 0.1,
                              steps = cs$k, control = ctl, verbose = FALSE)
    if (is.null(cs$warn)) {
      expect_no_warning(fit <- run())
    } else {
      expect_warning(fit <- run(), paste0("the flow is not time-accurate ", cs$warn,
                                          ".*closed-form JKO step.*smaller `h`"))
    }
    ref <- jko_chain(cs$m, 1, cs$a, 0.1, cs$k)
    acc <- fit$accuracy
    expect_identical(acc$step, seq_len(cs$k))
    # the closed form of step 1, from the pool's 2^14 draws of N(m, 1): its
    # sd ratio is the scheme's to the sampling error of their variance
    # (1.1%, as the root depends on s^2 below linearly), its shift
    # m a h / (1 + a h) over their sd
    expect_lt(abs(acc$sd_ratio[1L] / ref[1L, "sd"] - 1), 0.03)
    # (a h / (1 + a h) times 8 standard errors of the mean, the sd's 5%)
    e <- cs$a * 0.1 * abs(cs$m) / (1 + cs$a * 0.1)
    expect_lt(abs(acc$shift[1L] - e), cs$a * 0.1 / (1 + cs$a * 0.1) * 4 / 64 + 0.05 * e)
    # no silent wrong answer: every step's sd (20000 draws, 1.5% se for a
    # Gaussian, more for the heavy tails a map can make) within 20% of the
    # scheme's (the tolerance on the pool is 10%), or that step or an
    # earlier one flagged
    for (j in seq_len(cs$k)) {
      sdj <- sd(jko_sample(fit, 20000, step = j)$x)
      expect_true(abs(sdj / ref[j, "sd"] - 1) < 0.2 || any(acc$flagged[seq_len(j)]),
                  label = sprintf("%s, step %d: sd %.3g against %.3g", nm, j, sdj, ref[j, "sd"]))
    }
    # flagged steps (all of them moving the law by a sd or more) were trained twice more
    expect_true(all(acc$retrained[acc$flagged & acc$shift + abs(log(acc$sd_ratio)) >= 1] == 2L))
    fits[[nm]] <- fit
  }
  # the stiff step: flagged, and closer for the training again (0.65 after
  # 300 iterations; 0.25 after 900)
  expect_true(fits$stiff$accuracy$flagged[1L])
  expect_lt(sd(jko_sample(fits$stiff, 20000, step = 1)$x), 0.45)
  expect_false(any(fits$mild$accuracy$flagged))
  expect_lt(max(fits$mild$accuracy$gap), 0.01)
})
