# Free energies beyond Fokker-Planck (jko_energy()): accuracy against closed
# forms and the cost of each term.
#
#   Rscript inst/bench/functionals.R [part = all|barenblatt|interaction|interaction_fine|aggregation|cost]
#                                    [threads = 1] [out = inst/extdata/functionals.rds]
#
# 1. Porous medium, U(rho) = rho^2 (m = 2: d rho/dt = Laplacian(rho^2)), D = 1, 2, 3,
#    from the Barenblatt profile at time 1 to flow time t = 1 (profile time 2), h = 0.1,
#    10 steps, network 32 x 32, batch 1024, 300 iterations per step. Relative L1 error
#    of the density, E_fit |1 - rho_exact / rho_fit| over 20000 samples of the fit with
#    their exact log-densities; the error of the support's radius: the boundary sphere
#    of rho_0 (2000 points) pushed through the maps, |T(x)| against R(t) (mean and max
#    relative error). Beside them the same errors of the JKO scheme itself (its exact
#    Barenblatt solution with h = 0.1) against the PDE: the time-discretisation part.
# 2. Quadratic interaction W(z) = |z|^2/2 alone, D = 2, rho_0 = N((1, -1), S0), h = 0.1,
#    10 steps: the covariance at t = 1 against the JKO scheme's closed form
#    S0 / (1 + h)^(2K) (each step contracts about the mean by 1/(1 + h)) and against the
#    flow's, S0 exp(-2t). The same 50000 draws of rho_0 are pushed by the fit and by the
#    exact maps, so the comparison has no Monte Carlo error of its own.
# 3. Aggregation: W(z) = |z|^2/2 - log|z| in 2-D, whose steady state is the uniform
#    law on the unit disk (Delta W = 2 - 2 pi delta: W * rho is constant on the support
#    only where rho = 1/pi), from N(0, 0.1 I), h = 0.5, 8 steps: E|X|^2 against 1/2,
#    the share of samples beyond radius 1.02, and the fit's exact density inside
#    |x| < 0.8 against 1/pi.
# 4. Cost of one training iteration (loss and gradient at a batch of 1024, width 64,
#    rank 5, two layers) of each term against the Fokker-Planck loss at D = 2, 12, 32:
#    medians of `reps` interleaved repetitions of 5 calls. The interaction is summed over
#    pairs within blocks of 256 points (1024 x 256 kernel evaluations, unbiased);
#    `block = 1024` (all pairs) beside it. The porous medium also pushes the pool's
#    log-densities through each map (its Hessians): the extra seconds per step for a
#    pool of 2^18, in units of training iterations.
#
# Results (figures' data for the vignette "Beyond Fokker-Planck") are saved to `out`.

suppressPackageStartupMessages(library(jkoflow))
options(width = 160)
args <- commandArgs(TRUE)
part <- if (length(args) >= 1L) args[1] else "all"
threads <- if (length(args) >= 2L) as.integer(args[2]) else 1L
out_file <- if (length(args) >= 3L) args[3] else file.path("inst", "extdata", "functionals.rds")
res <- if (file.exists(out_file)) readRDS(out_file) else list()
cat(sprintf("load: %s\n", paste(readLines("/proc/loadavg", warn = FALSE), collapse = "")))
res$info <- list(date = format(Sys.time(), tz = "UTC"), R = R.version.string,
                 threads = threads, load = tryCatch(readLines("/proc/loadavg"), error = function(e) NA))
run <- function(p) part %in% c("all", p)

source(file.path("tests", "testthat", "helper-references.R"))  # barenblatt_jko_radius()

push <- function(fit, x, k = length(fit$theta)) {
  jkoflow:::c_push(jkoflow:::fit_map_nodes(fit, k), x, NULL, threads)$x
}

if (run("barenblatt")) {
  m <- 2; t0 <- 1; h <- 0.1; K <- 10L
  rows <- list(); curves <- list()
  for (D in 1:3) {
    set.seed(100 + D)
    b0 <- init_barenblatt(D, m, t0)
    el <- system.time(
      fit <- jko_fit(jko_energy(diffusion = diffusion_porous(m)), b0, h = h, steps = K,
                     hidden = c(32, 32), batch = 1024, iters = 300, threads = threads,
                     verbose = FALSE))[["elapsed"]]
    ex <- init_barenblatt(D, m, t0 + K * h)
    s <- jko_sample(fit, 20000, threads = threads)
    l1 <- mean(abs(1 - exp(ex$log_density(s$x) - s$log_density)))
    z <- matrix(rnorm(2000 * D), ncol = D)
    z <- z / sqrt(rowSums(z^2)) * b0$radius * (1 - 1e-9)
    r <- sqrt(rowSums(push(fit, z)^2)) / ex$radius - 1
    # the JKO scheme's own solution (a Barenblatt profile) against the PDE's
    Rj <- barenblatt_jko_radius(D, m, b0$radius, h, K)
    bj <- init_barenblatt(D, m, (Rj / b0$radius)^(D + 2))
    xj <- bj$sample(1e5)
    rows[[D]] <- data.frame(D = D, L1 = l1, radius_mean = mean(r), radius_max = max(abs(r)),
                            jko_L1 = mean(abs(1 - exp(ex$log_density(xj) - bj$log_density(xj)))),
                            jko_radius = Rj / ex$radius - 1, seconds = el)
    print(rows[[D]])
    if (D == 2L) {
      # the density along a ray at t = 0, 0.3, 0.6, 1: fit (pulled back) and profile
      rr <- seq(0, 1.1 * ex$radius, length.out = 120)
      curves <- lapply(c(0L, 3L, 6L, 10L), function(k) {
        pts <- cbind(rr, 0)
        list(step = k, time = k * h, r = rr,
             fit = exp(jko_density(fit, pts, step = k, threads = threads)$log_density),
             exact = exp(init_barenblatt(D, m, t0 + k * h)$log_density(pts)))
      })
      res$barenblatt_samples <- list(x0 = b0$sample(3000), x = jko_sample(fit, 3000)$x,
                                     R0 = b0$radius, R = ex$radius)
    }
  }
  res$barenblatt <- do.call(rbind, rows)
  res$barenblatt_curves <- curves
  cat("\nPorous medium, m = 2, t = 1 (from the Barenblatt profile at time 1), h = 0.1:\n")
  print(res$barenblatt, digits = 3)
}

# The quadratic interaction alone from N(mu, S0) to t = 1 in K steps of h: the
# covariance of the fit's push of 50000 draws of rho_0, against the JKO scheme's
# closed form S0 / (1 + h)^(2K) and the flow's S0 exp(-2t).
interaction_covariance <- function(h, K, ...) {
  set.seed(200)
  S0 <- matrix(c(2, 0.6, 0.6, 1), 2); mu <- c(1, -1)
  el <- system.time(
    fit <- jko_fit(jko_energy(interaction = interaction_quadratic(), diffusion = NULL),
                   init_gaussian(mu, S0), h = h, steps = K, threads = threads,
                   verbose = FALSE, ...))[["elapsed"]]
  x0 <- fit$init$base$sample(50000)
  C0 <- stats::cov(x0)
  list(fit = fit, seconds = el, Cf = stats::cov(push(fit, x0)),
       Cj = C0 / (1 + h)^(2 * K), Cc = C0 * exp(-2 * K * h))
}
rel <- function(A, B) sqrt(sum((A - B)^2)) / sqrt(sum(B^2))

if (run("interaction")) {
  r <- interaction_covariance(0.1, 10L, hidden = c(32, 32), batch = 1024, iters = 500)
  res$interaction <- with(r, data.frame(
    rel_err_jko = rel(Cf, Cj), max_err_jko = max(abs(Cf - Cj)) / max(abs(Cj)),
    var_ratio_1 = Cf[1, 1] / Cj[1, 1], var_ratio_2 = Cf[2, 2] / Cj[2, 2],
    rel_err_flow = rel(Cf, Cc), jko_vs_flow = rel(Cj, Cc), seconds = seconds))
  res$interaction_fe <- r$fit$history[, c("time", "free_energy")]
  cat("\nQuadratic interaction, covariance at t = 1 (h = 0.1):\n")
  print(res$interaction, digits = 3)
}

# 2b. The same flow with h = 0.005 (200 steps, network 16 x 16, batch 512, 150
#     iterations, pool 2^14): the scheme's first-order time error, 9.8% at h = 0.1,
#     falls to 0.5%, so the covariance can be held to the flow's own closed form
#     S0 exp(-2t). Part "interaction_fine" (not in "all": about 3 to 10 minutes).
if (part == "interaction_fine") {
  r <- interaction_covariance(0.005, 200L, hidden = c(16, 16), batch = 512, iters = 150,
                              pool = 2^14, monitor = 2^12)
  res$interaction_fine <- with(r, data.frame(
    h = 0.005, steps = 200L, rel_err_jko = rel(Cf, Cj), rel_err_flow = rel(Cf, Cc),
    jko_vs_flow = rel(Cj, Cc), seconds = seconds))
  cat("\nQuadratic interaction, covariance at t = 1 (h = 0.005):\n")
  print(res$interaction_fine, digits = 3)
}

if (run("aggregation")) {
  set.seed(300)
  h <- 0.5; K <- 8L
  el <- system.time(
    fit <- jko_fit(jko_energy(interaction = interaction_power(2, 0), diffusion = NULL),
                   init_gaussian(c(0, 0), 0.1), h = h, steps = K, hidden = c(32, 32),
                   batch = 1024, iters = 300, threads = threads, verbose = FALSE))[["elapsed"]]
  snaps <- lapply(c(0L, 1L, 2L, 4L, K), function(k)
    list(step = k, time = k * h, x = jko_sample(fit, 3000, step = k)$x))
  s <- jko_sample(fit, 20000, threads = threads)
  r <- sqrt(rowSums(s$x^2))
  inside <- r < 0.8
  res$aggregation <- data.frame(
    second_moment = mean(r^2), outside_1.02 = mean(r > 1.02),
    density_inside = stats::median(exp(s$log_density[inside])) * pi,
    density_iqr = unname(diff(stats::quantile(exp(s$log_density[inside]) * pi, c(0.25, 0.75)))),
    seconds = el)
  res$aggregation_snaps <- snaps
  res$aggregation_fe <- fit$history[, c("time", "free_energy")]
  cat("\nAggregation W = |z|^2/2 - log|z| (steady state: uniform on the unit disk; E|X|^2 = 1/2, density 1/pi), t = 4:\n")
  print(res$aggregation, digits = 3)
}

if (run("cost")) {
  reps <- 7L
  rows <- list()
  for (D in c(2L, 12L, 32L)) {
    set.seed(400 + D)
    x <- t(matrix(rnorm(1024 * D), ncol = D))
    net <- icnn(D, c(64, 64), 5)
    ar <- jkoflow:::arch(net)
    pot <- potential_quadratic(diag(D))
    lr <- rnorm(1024)
    fp <- function() .Call(jkoflow:::C_jko_loss, ar, net$alpha_min, net$theta, x, pot, 0.1, 1, threads)
    en <- function(e) function() .Call(jkoflow:::C_energy_loss, ar, net$alpha_min, net$theta, x, e,
                                       lr, 0.1, 1, threads)
    variants <- list(
      fokker_planck = fp,
      fp_as_terms = en(jko_energy(pot)),
      quadratic = en(jko_energy(pot, interaction_quadratic())),
      power_2_1 = en(jko_energy(pot, interaction_power(2, 1))),
      power_3_1.5 = en(jko_energy(pot, interaction_power(3, 1.5))),
      quadratic_allpairs = en(jko_energy(pot, interaction_quadratic(block = 1024))),
      porous = en(jko_energy(pot, diffusion = diffusion_porous(2))))
    for (f in variants) f()
    tm <- matrix(NA, reps, length(variants), dimnames = list(NULL, names(variants)))
    for (r in seq_len(reps)) for (v in names(variants)) {
      f <- variants[[v]]
      tm[r, v] <- system.time(for (i in 1:5) f())[["elapsed"]] / 5
    }
    med <- apply(tm, 2, stats::median)
    # the pool's push with and without log-densities (Hessians), 2^18 points
    maps <- list(jkoflow:::map_node(net, net$theta, list(center = rep(0, D), scale = 1)))
    pool <- matrix(rnorm(2^18 * D), ncol = D)
    pl <- function(ld) system.time(jkoflow:::c_push(maps, pool, ld, threads))[["elapsed"]]
    p0 <- stats::median(replicate(3, pl(NULL)))
    p1 <- stats::median(replicate(3, pl(rnorm(2^18))))
    rows[[length(rows) + 1L]] <- data.frame(D = D, fp_ms = 1000 * med[["fokker_planck"]],
      t(round(med[-1] / med[["fokker_planck"]], 3)),
      pool_density_extra_iters = round((p1 - p0) / med[["fokker_planck"]], 1))
    print(rows[[length(rows)]])
  }
  res$cost <- do.call(rbind, rows)
  cat("\nCost per iteration relative to the Fokker-Planck loss (batch 1024, width 64):\n")
  print(res$cost, digits = 3)
}

dir.create(dirname(out_file), showWarnings = FALSE, recursive = TRUE)
saveRDS(res, out_file)
cat(sprintf("\nsaved to %s\n", out_file))
