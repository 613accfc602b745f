# Failures during a fit (a user's potential, divergence, interrupts) keep
# the completed steps; extreme but valid inputs work; fits survive
# saveRDS()/readRDS() in a fresh R session.

tiny_fit <- function(potential, init = init_gaussian(c(0, 0), 1), steps = 2, ...) {
  jko_fit(potential, init, h = 0.1, steps = steps, hidden = 4, rank = 1,
          batch = 16, iters = 5, pool = 64, monitor = 32, verbose = FALSE, ...)
}

# Phi(x) = |x|^2 / 2 as an R function that misbehaves (`how`) from its
# `at`-th training call on: calls on a batch of 16 rows are training
# iterations (5 per step), those on the 32 monitor rows are free energies.
flaky <- function(how, at) {
  state <- new.env()
  state$calls <- 0
  state$at <- at
  f <- function(x) {
    v <- rowSums(x^2) / 2
    if (nrow(x) != 16L) return(if (how == "fe" && state$calls >= state$at) v * NA else v)
    state$calls <- state$calls + 1
    if (state$calls < state$at) return(v)
    switch(how, error = stop("boom in the user's code"), na = replace(v, 3, NaN),
           length = v[-1], inf = replace(v, 1, Inf), v)
  }
  g <- function(x) if (how == "grad" && nrow(x) == 16L && state$calls >= state$at) x[, 1] else x
  list(pot = potential_fn(f, grad = g), state = state)
}

test_that("a failing potential names the step, the iteration and the problem", {
  cases <- list(
    error = "the potential's `f` failed at iteration 2: boom in the user's code",
    na = "the potential's `f` returned 1 non-finite value \\(NA, NaN or Inf\\) at iteration 2",
    inf = "the potential's `f` returned 1 non-finite value .* at iteration 2",
    length = "the potential's `f` returned 15 values for 16 points at iteration 2; expected 16 numbers",
    grad = "the potential's `grad` returned .* at iteration 2; expected a 16 x 2 matrix",
    fe = "estimating the free energy after training: the potential's `f` returned 32 non-finite")
  for (how in names(cases)) {
    set.seed(3)
    fl <- flaky(how, at = 7)   # the 7th training call: step 2, iteration 2
    e <- tryCatch(tiny_fit(fl$pot, steps = 3), error = identity)
    expect_s3_class(e, "jkoflow_error_fit")
    expect_match(conditionMessage(e), paste0("^JKO step 2 failed: ", cases[[how]]))
    expect_match(conditionMessage(e), "The 1 completed step is kept")
    expect_identical(e$step, 2L)
    expect_length(e$fit$theta, 1L)
    expect_equal(nrow(e$fit$history), 2L)
    if (how != "fe") expect_s3_class(e$parent, "jkoflow_error_potential")
    expect_identical(jko_last_fit(), e$fit)
  }
})

test_that("the partial fit samples, has densities and resumes", {
  set.seed(4)
  fl <- flaky("error", at = 7)
  e <- tryCatch(tiny_fit(fl$pot, steps = 3), error = identity)
  part <- e$fit
  s <- jko_sample(part, 50)
  expect_identical(s$step, 1L)
  # the density pulled back through the map equals the pushed-forward one
  d <- jko_density(part, s$x, log = TRUE)
  expect_equal(as.numeric(d), s$log_density, tolerance = 1e-8)
  # the user mends the function; jko_continue() resumes from step 1
  fl$state$at <- Inf
  full <- jko_continue(part, 2, verbose = FALSE)
  expect_length(full$theta, 3L)
  expect_identical(full$theta[[1L]], part$theta[[1L]])
  expect_equal(full$history$time, c(0, 0.1, 0.2, 0.3), tolerance = 1e-12)
  expect_true(all(is.finite(full$history$free_energy)))
})

test_that("a failure in the first step leaves an empty fit that resumes", {
  set.seed(5)
  fl <- flaky("error", at = 1)
  e <- tryCatch(tiny_fit(fl$pot), error = identity)
  expect_match(conditionMessage(e), "^JKO step 1 failed: .* at iteration 1: boom")
  expect_match(conditionMessage(e), "No step was completed")
  expect_length(e$fit$theta, 0L)
  expect_output(print(summary(e$fit)), "0 parameters per step|parameters per step")
  fl$state$at <- Inf
  expect_length(jko_continue(e$fit, 1, verbose = FALSE)$theta, 1L)
})

# Phi(x) = |x|^2 / 2 whose training calls number `at` (a set) put one sample
# 1e10 away in value: a batch with a rare far-out sample.
outlying <- function(at) {
  calls <- 0
  f <- function(x) {
    v <- rowSums(x^2) / 2
    if (nrow(x) != 16L) return(v)
    calls <<- calls + 1
    if (calls %in% at) v[1] <- 1e10
    v
  }
  potential_fn(f, grad = function(x) x)
}

test_that("a batch with an outlying loss is skipped; five in a row are a divergence", {
  fit_with <- function(at, iters = 30L) {
    set.seed(12)
    jko_fit(outlying(at), init_gaussian(c(0, 0), 4), h = 0.5, steps = 1, hidden = 4,
            rank = 1, batch = 16, iters = iters, pool = 64, monitor = 32, verbose = FALSE)
  }
  clean <- fit_with(integer(0))
  one <- fit_with(5L)
  # the outlier is recorded in the trace, the fit goes on without its update
  expect_gt(one$loss_trace[[1]][5], 1e8)
  expect_lt(max(one$loss_trace[[1]][-5]), 10)
  expect_equal(one$loss_trace[[1]][1:4], clean$loss_trace[[1]][1:4])
  # one update in 30 fewer: the free energy moves by far less than the step's gain
  gain <- clean$history$free_energy[1] - clean$history$free_energy[2]
  expect_lt(abs(one$history$free_energy[2] - clean$history$free_energy[2]), 0.1 * abs(gain))
  e <- tryCatch(fit_with(5:9), error = identity)
  expect_s3_class(e, "jkoflow_error_fit")
  expect_match(conditionMessage(e), "the loss diverged \\(from .* at iteration 1 to .*\\) at iteration 9;")
})

test_that("divergence is caught in the iteration, with a hint, keeping the steps", {
  set.seed(6)
  fit <- tiny_fit(potential_quadratic(diag(2)), steps = 1)
  fit$settings$lr <- 1e3
  fit$settings$iters <- 20L
  e <- tryCatch(jko_continue(fit, 2, verbose = FALSE), error = identity)
  expect_s3_class(e, "jkoflow_error_fit")
  expect_match(conditionMessage(e),
               "^JKO step 2 failed: the loss diverged \\(from .* at iteration 1 to .*\\) at iteration [0-9]+; try a smaller `lr` or `h`")
  it <- as.integer(sub(".*\\) at iteration ([0-9]+);.*", "\\1", conditionMessage(e)))
  expect_lte(it, 20L)
  expect_length(e$fit$theta, 1L)
  expect_identical(e$fit$theta[[1L]], fit$theta[[1L]])
  # an overflowing potential: a non-finite loss at the first iteration
  e2 <- tryCatch(tiny_fit(potential_quadratic(diag(1e308, 2))), error = identity)
  expect_match(conditionMessage(e2), "^JKO step 1 failed: the loss or the parameters became non-finite .* at iteration 1; try a smaller")
})

test_that("setTimeLimit() during a fit gives the partial fit", {
  set.seed(7)
  on.exit(setTimeLimit(), add = TRUE)
  setTimeLimit(elapsed = 0.5)
  e <- tryCatch(tiny_fit(potential_quadratic(diag(2)), steps = 1e6), error = identity)
  setTimeLimit()
  expect_s3_class(e, "jkoflow_error_fit")
  expect_match(conditionMessage(e), "^JKO step [0-9]+ failed: .*time limit")
  expect_length(e$fit$theta, e$step - 1L)
  expect_identical(jko_last_fit(), e$fit)
  if (e$step > 1L) {
    s <- jko_sample(e$fit, 20)
    expect_equal(as.numeric(jko_density(e$fit, s$x, log = TRUE)), s$log_density,
                 tolerance = 1e-8)
  }
})

rscript <- function(code, env = character()) {
  file <- tempfile(fileext = ".R")
  writeLines(code, file)
  lib <- paste(.libPaths(), collapse = .Platform$path.sep)
  list(file = file, env = c(paste0("R_LIBS=", lib), env))
}

test_that("a real SIGINT in a child R process keeps the completed steps", {
  skip_on_os("windows")
  out <- tempfile(fileext = ".rds")
  job <- rscript(c(
    "library(jkoflow); set.seed(1); args <- commandArgs(TRUE)",
    "res <- tryCatch({",
    "  writeLines(as.character(Sys.getpid()), args[2])",
    "  jko_fit(potential_quadratic(diag(2)), init_gaussian(c(0, 0), 1), h = 0.1,",
    "          steps = 1e6, hidden = 4, rank = 1, batch = 16, iters = 5,",
    "          pool = 64, monitor = 32, verbose = FALSE)",
    "}, error = function(e) list(class = class(e), message = conditionMessage(e),",
    "                            fit = e$fit, last = jko_last_fit()),",
    "   interrupt = function(e) 'a bare interrupt')",
    "saveRDS(res, args[1])"))
  pidfile <- tempfile()
  system2(file.path(R.home("bin"), "Rscript"), c(job$file, out, pidfile),
          env = job$env, wait = FALSE, stdout = FALSE, stderr = FALSE)
  deadline <- Sys.time() + 30
  while (!file.exists(pidfile) && Sys.time() < deadline) Sys.sleep(0.05)
  expect_true(file.exists(pidfile))
  Sys.sleep(1)
  pid <- as.integer(readLines(pidfile))
  expect_true(tools::pskill(pid, tools::SIGINT))
  while (!file.exists(out) && Sys.time() < deadline) Sys.sleep(0.05)
  if (!file.exists(out)) tools::pskill(pid, tools::SIGKILL)
  Sys.sleep(0.2)
  res <- readRDS(out)
  expect_type(res, "list")
  expect_true("jkoflow_error_fit" %in% res$class)
  expect_match(res$message, "^JKO step [0-9]+ failed: interrupted by the user")
  k <- as.integer(sub("^JKO step ([0-9]+) failed.*", "\\1", res$message))
  expect_length(res$fit$theta, k - 1L)
  expect_identical(res$last$theta, res$fit$theta)
  if (k > 1L) {
    s <- jko_sample(res$fit, 20)
    expect_equal(as.numeric(jko_density(res$fit, s$x, log = TRUE)), s$log_density,
                 tolerance = 1e-8)
  }
})

test_that("no scratch memory comes from malloc in the C code", {
  src <- test_path("..", "..", "src")
  skip_if_not(dir.exists(src))
  code <- unlist(lapply(list.files(src, "\\.[ch]$", full.names = TRUE), readLines))
  code <- sub("//.*$", "", code)
  expect_false(any(grepl("\\b(malloc|calloc|realloc|R_Calloc|R_Realloc|Calloc)\\s*\\(", code)))
})

test_that("D = 1: the density integrates to 1", {
  set.seed(8)
  fit <- jko_fit(potential_double_well(), init_gaussian(0, 0.5), h = 0.1, steps = 2,
                 hidden = 8, rank = 1, batch = 64, iters = 30, verbose = FALSE)
  grid <- seq(-6, 6, by = 0.01)
  mass <- sum(as.numeric(jko_density(fit, grid))) * 0.01
  # tails beyond |x| > 6 of a law near N(0, 0.5) and the Riemann error: < 1e-4
  expect_equal(mass, 1, tolerance = 1e-4)
  s <- jko_sample(fit, 100)
  expect_equal(as.numeric(jko_density(fit, s$x, log = TRUE)), s$log_density, tolerance = 1e-8)
})

test_that("D = 64, batch 1 and a single step run and stay consistent", {
  set.seed(9)
  D <- 64
  fit <- jko_fit(potential_quadratic(diag(D)), init_gaussian(rep(0, D), 4), h = 0.1,
                 steps = 1, hidden = 4, rank = 1, batch = 8, iters = 5, monitor = 64,
                 verbose = FALSE)
  expect_length(fit$theta, 1L)
  s <- jko_sample(fit, 5)
  expect_equal(dim(s$x), c(5L, D))
  expect_equal(as.numeric(jko_density(fit, s$x, log = TRUE)), s$log_density, tolerance = 1e-8)
  fb <- jko_fit(potential_quadratic(diag(2)), init_gaussian(c(0, 0), 4), h = 0.1, steps = 2,
                hidden = 4, rank = 1, batch = 1, iters = 10, verbose = FALSE)
  expect_true(all(is.finite(unlist(fb$loss_trace))))
  expect_equal(fb$settings$pool, 10)
})

test_that("init samples far from the origin (1e6) are flowed correctly", {
  set.seed(10)
  X <- matrix(rnorm(400, mean = 1e6, sd = 1), 200, 2)
  fit <- jko_fit(potential_quadratic(diag(2), b = c(1e6, 1e6)), init_samples(X), h = 0.1,
                 steps = 2, hidden = 8, rank = 1, batch = 64, iters = 50, verbose = FALSE)
  s <- jko_sample(fit, 4000)
  # Ornstein-Uhlenbeck: the mean relaxes as b + (m0 - b) exp(-t), the
  # variance towards 1; Monte Carlo sd of the mean 0.016, of the variance
  # 0.022; the fit's own error is of the order of 0.1.
  m_exact <- 1e6 + (colMeans(X) - 1e6) * exp(-0.2)
  expect_lt(max(abs(colMeans(s$x) - m_exact)), 0.15)
  expect_lt(max(abs(apply(s$x, 2, var) - 1)), 0.35)
})

test_that("identical init samples are a clear error, not a degenerate flow", {
  expect_error(init_samples(matrix(1, 50, 2)),
               "`x` must spread in all 2 dimensions.*dimension 0 \\(all rows identical\\)")
  expect_error(init_samples(cbind(1:20, 1:20)),
               "`x` must spread in all 2 dimensions.*affine subspace of dimension 1")
})

test_that("a fit survives saveRDS()/readRDS() in a fresh R session", {
  set.seed(11)
  fit <- tiny_fit(potential_gmm(rbind(c(-1, 0), c(1, 0)), sd = 0.7))
  rds <- tempfile(fileext = ".rds")
  out <- tempfile(fileext = ".rds")
  saveRDS(fit, rds)
  pts <- rbind(c(0, 0), c(0.5, -0.3), c(-1, 1))
  job <- rscript(c(
    "library(jkoflow); args <- commandArgs(TRUE)",
    "fit <- readRDS(args[1])",
    "pts <- rbind(c(0, 0), c(0.5, -0.3), c(-1, 1))",
    "set.seed(12); s <- jko_sample(fit, 10)",
    "d <- jko_density(fit, pts, log = TRUE)",
    "set.seed(13); more <- jko_continue(fit, 1, verbose = FALSE)",
    "saveRDS(list(s = s, d = as.numeric(d), more = more), args[2])"))
  status <- system2(file.path(R.home("bin"), "Rscript"), c(job$file, rds, out),
                    env = job$env, stdout = FALSE, stderr = FALSE)
  expect_equal(status, 0L)
  res <- readRDS(out)
  set.seed(12)
  s <- jko_sample(fit, 10)
  expect_equal(res$s$x, s$x, tolerance = 1e-12)
  expect_equal(res$s$log_density, s$log_density, tolerance = 1e-12)
  expect_equal(res$d, as.numeric(jko_density(fit, pts, log = TRUE)), tolerance = 1e-12)
  expect_length(res$more$theta, 3L)
  set.seed(13)
  more <- jko_continue(fit, 1, verbose = FALSE)
  expect_equal(res$more$theta[[3L]], more$theta[[3L]], tolerance = 1e-12)
})

test_that("a class never makes a user's potential a built-in kind", {
  x <- rbind(c(1, 2), c(-1, 0.5))
  for (cls in c("jko_potential_quadratic", "jko_potential_gmm", "jko_potential_double_well",
                "jko_target_glm", "jko_target_logistic")) {
    p <- new_potential(function(x) rowSums(x^2) / 2, function(x) x, class = cls)
    v <- potential_value(p, x, grad = TRUE)
    expect_equal(v$value, c(2.5, 0.625))
    expect_equal(v$gradient, x)
    expect_equal(potential_value(p, matrix(1, 2, 1)), c(0.5, 0.5))
    # nor gives it a built-in kind's stationary free energy
    expect_identical(jkoflow:::stationary_free_energy(p, 1, 2L), NA_real_)
  }
  # the built-in kinds' own: -log Z of N(0, I) in 2-D, and a normalised mixture's 0
  expect_equal(jkoflow:::stationary_free_energy(potential_quadratic(diag(2)), 1, 2L),
               -log(2 * pi), tolerance = 1e-14)
  expect_identical(jkoflow:::stationary_free_energy(potential_gmm(rbind(c(0, 0))), 1, 2L), 0)
})

test_that("forged or tampered built-in data are R errors that say what is wrong", {
  x1 <- matrix(1, 2, 1)
  x2 <- matrix(1, 2, 2)
  forged <- function(...) structure(list(dim = NA_integer_, ...), class = "jko_potential")
  tamper <- function(p, ...) utils::modifyList(p, list(...))
  q <- potential_quadratic(diag(2))
  g <- potential_gmm(rbind(c(-1, 0), c(1, 0)), sd = 0.5)
  cases <- list(
    list(forged(builtin = "quadratic", par = 1), x1,
         "invalid built-in potential \"quadratic\": `par` has 1 numbers; dimension 1 needs 2"),
    list(forged(builtin = "quadratic"), x2,
         "`par` has 0 numbers; dimension 2 needs 6"),
    list(tamper(q, par = q$par[-1]), x2, "`par` has 5 numbers; dimension 2 needs 6"),
    list(forged(builtin = "quadratic", par = "a"), x1, "`par` must be a double vector"),
    list(forged(builtin = "cubic", par = 1), x1, "unknown built-in potential \"cubic\""),
    list(forged(builtin = NA_character_), x1, "`builtin` must be the name of a built-in kind"),
    list(tamper(g, par = replace(g$par, 1, 0)), x2, "the number of components K >= 1"),
    list(tamper(g, par = replace(g$par, 1, 1.5)), x2, "the number of components K >= 1"),
    list(tamper(g, par = replace(g$par, 1, 3)), x2,
         "`par` has 8 numbers; 3 components in dimension 2 need 11"),
    list(tamper(g, par = replace(g$par, 2, 0)), x2, "sd \\(`par\\[2\\]`\\) must be positive"),
    list(forged(builtin = "gmm", par = numeric(0)), x1, "the number of components K >= 1"),
    list(forged(builtin = "double_well", par = c(1, 1, 1)), x1,
         "`par` has 3 numbers; it needs 2 \\(center, height\\)"),
    list(forged(builtin = "double_well", par = c(0, 1)), x1, "a positive finite center"),
    list(structure(list(dim = NA_integer_), class = "jko_potential"), x1,
         "a potential must be a built-in kind or have a `value` function"))
  for (cs in cases) {
    expect_error(potential_value(cs[[1]], cs[[2]]), cs[[3]])
  }
})

test_that("a glm target's data are checked against the points and the kind", {
  set.seed(1)
  d <- data.frame(x = rnorm(20), y = rbinom(20, 1, 0.5))
  tg <- target_glm(y ~ x, d, binomial())
  th <- matrix(0, 2, 2)
  tamper <- function(...) utils::modifyList(tg, list(...))
  cases <- list(
    list(tamper(x = tg$x[-1, ]), "`y`, `weights` and `offset` must be double vectors of length 19"),
    list(tamper(x = "a"), "`x` must be a double matrix"),
    list(tamper(p = 3L), "`p` must be the number of columns of `x` \\(2\\)"),
    list(tamper(y = tg$y[-1]), "`y`, `weights` and `offset` must be double vectors of length 20"),
    list(tamper(weights = -tg$weights), "`weights` must be finite and non-negative"),
    list(tamper(family_code = 7L), "`family_code` and `link_code` must name"),
    list(tamper(link_code = 2L), "`family_code` and `link_code` must name"),
    list(tamper(prior_code = 5L), "`prior_code` must be 0 \\(flat\\), 1 \\(normal\\) or 2"),
    list(tamper(prior_prec = 1), "a normal prior needs `prior_loc` and `prior_prec` of 2 and 4"),
    list(tamper(batch = 0L), "`batch` must be NA or a whole number >= 1"),
    list(tamper(batch = 2.5), "`batch` must be NA or a whole number >= 1"),
    list(tamper(const = NA_real_), "`const` must be a finite number"),
    list(tamper(prior_code = 2L), "the target has 3 parameters \\(2 coefficients, log alpha\\) but the points have dimension 2"))
  for (cs in cases) {
    expect_error(potential_value(cs[[1]], th), paste0("invalid built-in potential \"glm\": ", cs[[2]]))
  }
  # a declared dimension that differs from the data's
  tg$dim <- NA_integer_
  expect_error(potential_value(tg, matrix(0, 2, 3)),
               "the target has 2 parameters \\(2 coefficients\\) but the points have dimension 3")
  tl <- target_logistic(cbind(1, d$x), d$y)
  tl$shape <- -1
  expect_error(potential_value(tl, matrix(0, 1, 3)),
               "the hierarchical prior's `shape` and `rate` must be positive finite numbers")
})

test_that("forged or tampered terms of a free energy are R errors", {
  x <- matrix(rnorm(8), 2)
  ev <- function(en) jkoflow:::c_energy_eval(en, t(x), rep(0, 4), 1, 1L)
  en <- function(...) jko_energy(potential_quadratic(diag(2)), ...)
  tamper_term <- function(e, ...) {
    e$terms[[1]] <- utils::modifyList(e$terms[[1]], list(...))
    e
  }
  pw <- en(interaction_power(2, 1))
  expect_equal(length(ev(pw)), 4L)
  forged <- en(interaction_quadratic())
  forged$terms[[1]] <- structure(list(par = numeric(0)),
                                 class = c("jko_interaction_power", "jko_interaction", "jko_term"))
  expect_error(ev(forged), "a term of a free energy must be one that its constructor made")
  expect_error(ev(tamper_term(pw, par = 1)),
               "invalid term \"interaction_power\": `par` must hold the exponents a > 0 and b < a")
  expect_error(ev(tamper_term(pw, par = c(1, 2))), "`par` must hold the exponents a > 0 and b < a")
  expect_error(ev(tamper_term(pw, block = 1L)), "invalid term \"interaction_power\": `block` must be")
  expect_error(ev(tamper_term(en(interaction_quadratic()), block = NA)), "`block` must be a whole number >= 2")
  expect_error(ev(tamper_term(en(interaction_fn(function(z) rowSums(z^2))), W = NULL)),
               "invalid term \"interaction_fn\": `W` must be a function")
  expect_error(ev(tamper_term(en(interaction_quadratic()), builtin = "interaction_cubic")),
               "unknown built-in term \"interaction_cubic\"")
  pm <- jko_energy(diffusion = diffusion_porous(2))
  expect_error(ev(tamper_term(pm, par = 0.5)), "invalid term \"diffusion_porous\": `par` must hold the exponent m > 1")
  # the energy's potential is checked as any potential
  bad <- en(interaction_quadratic())
  bad$potential$par <- 1
  expect_error(ev(bad), "invalid built-in potential \"quadratic\": `par` has 1 numbers")
})

test_that("a fit whose potential was replaced by one of another dimension stops with an R error", {
  set.seed(13)
  fit <- tiny_fit(potential_quadratic(diag(2)), steps = 1)
  fit$potential <- potential_quadratic(diag(3))
  # the fit's own check in R (R/fit.R) stops it first; under it, C's setup
  expect_error(jko_continue(fit, 1, verbose = FALSE),
               "its `potential` is not a potential of dimension 2")
  expect_error(jkoflow:::c_pot_eval(fit$potential, matrix(0, 1, 2)),
               "the potential has dimension 3 but the points have dimension 2")
  fit$potential$dim <- NA_integer_
  expect_error(jko_continue(fit, 1, verbose = FALSE), "`par` has 12 numbers; dimension 2 needs 6")
})

test_that("a 2-thread fit under an address-space limit finishes (it hung in OpenBLAS)", {
  skip_on_os(c("windows", "mac", "solaris"))
  # only OpenBLAS retries a failed mapping of a thread's work buffer for ever
  skip_if(is.na(.Call(jkoflow:::C_blas_info)$core), "the BLAS is not OpenBLAS")
  skip_if(Sys.which("bash") == "", "no bash for ulimit")
  # the child's address space once the package is loaded and BLAS has run
  # (the main thread's work buffer mapped: a product large enough to need
  # it, as SkylakeX's kernels multiply a 2 x 2 product without one and the
  # limit then left no room for the main thread), then a limit that leaves room
  # for one thread's buffer and stack, not a second's: before the fix this
  # fit (64 x 64, batches of 1024) never returned there
  probe <- rscript(c(
    "suppressMessages(library(jkoflow)); x <- matrix(1, 200, 200) %*% matrix(1, 200, 200)",
    "cat(sub('[^0-9]*([0-9]+).*', '\\\\1', grep('VmSize', readLines('/proc/self/status'), value = TRUE)))"))
  vm <- as.numeric(system2(file.path(R.home("bin"), "Rscript"), probe$file, env = probe$env,
                           stdout = TRUE, stderr = FALSE))
  skip_if(length(vm) != 1L || is.na(vm), "no VmSize in /proc")
  out <- tempfile(fileext = ".rds")
  job <- rscript(c(
    "suppressMessages(library(jkoflow)); set.seed(1); args <- commandArgs(TRUE)",
    "x <- matrix(1, 200, 200) %*% matrix(1, 200, 200)",
    "w <- NULL",
    "fit <- withCallingHandlers(",
    "  jko_fit(potential_quadratic(diag(2)), init_gaussian(c(0, 0), 1), h = 0.1, steps = 1,",
    "          hidden = c(64, 64), batch = 1024, iters = 5, pool = 4096, monitor = 1024,",
    "          threads = 2, verbose = FALSE),",
    "  warning = function(cnd) { w <<- c(w, conditionMessage(cnd)); invokeRestart('muffleWarning') })",
    "saveRDS(list(steps = length(fit$theta), warnings = w), args[1])"))
  limit <- vm + 150 * 1024
  cmd <- sprintf("ulimit -v %.0f; exec '%s' '%s' '%s'", limit, file.path(R.home("bin"), "Rscript"),
                 job$file, out)
  status <- system2("bash", c("-c", shQuote(cmd)), env = job$env, stdout = FALSE, stderr = FALSE,
                    timeout = 120)
  expect_equal(status, 0L)
  res <- readRDS(out)
  expect_equal(res$steps, 1L)
  expect_match(res$warnings, "leaves room for the BLAS work buffers of 1 of the 2 threads", all = FALSE)
})

test_that("counts beyond the integer range and sizes beyond what C can index are R errors", {
  set.seed(14)
  fit <- tiny_fit(potential_quadratic(diag(2)), steps = 1)
  pull <- function(maxit, tol = 1e-10) {
    .Call(jkoflow:::C_flow_pull, jkoflow:::arch(fit$net), fit$net$alpha_min,
          jkoflow:::fit_map_nodes(fit, 1L), matrix(0, 2, 3), tol, maxit, 1L)
  }
  expect_equal(pull(100)$residual, 0, tolerance = 1e-10)
  # 3e9 ran no Newton iteration and returned a wrong density (NA as an int)
  for (bad in list(3e9, NA, 0, 1.5, -1)) {
    expect_error(pull(bad), "'maxit' must be a whole number between 1 and 2147483647")
  }
  expect_error(pull(10, tol = NA), "'tol' must be a positive finite number")
  for (nm in c("iters", "batch")) {
    f <- fit
    f$settings[[nm]] <- 3e9
    expect_error(jko_continue(f, 1, verbose = FALSE),
                 sprintf("'%s' must be a whole number between 1 and 2147483647", nm))
  }
  # a network whose rank block (width x rank x dimension) an int cannot count
  expect_error(icnn(2, hidden = 1e5, rank = 2e4), "the network is too large")
  # a batch whose dimension x points passes the int range: refused before
  # any workspace is allocated (the pool itself is two points)
  expect_error(.Call(jkoflow:::C_icnn_init, c(65536L, 1L, 1L, 1L, 1L), 1e-4, 1),
               "the network is too large")   # D^2, a Hessian's entries
  D <- 46340L
  arch <- c(D, 1L, 1L, 1L, 1L)
  theta <- .Call(jkoflow:::C_icnn_init, arch, 1e-4, 1)
  pool <- matrix(0, D, 2)
  pot <- new_potential(function(x) rowSums(x^2) / 2, function(x) x)
  settings <- list(h = 0.1, beta = 1, iters = 1L, batch = 50000L, lr = 1e-3, lr_end = 1e-4)
  expect_error(.Call(jkoflow:::C_jko_step, arch, 1e-4, theta, pool, pool, c(0, 0), pot, settings,
                     list(center = rep(0, D), scale = 1), 1L, 0L),
               "batches of 50000 points of dimension 46340 are too large for this network")
  # an interaction kernel in R: the pairs' differences are the rows of one matrix
  en <- jko_energy(interaction = interaction_fn(function(z) rowSums(z^2), block = 35000),
                   diffusion = NULL)
  expect_error(jkoflow:::c_energy_eval(en, matrix(0, 70000, 1), rep(0, 70000), 1, 1L),
               "batches of 70000 points in blocks of 35000 give up to 2449965000 pairs")
  expect_error(.Call(jkoflow:::C_icnn_eval, jkoflow:::arch(fit$net), fit$net$alpha_min,
                     fit$theta[[1]], matrix(0, 2, 1), 3L, 1L), "'what' must be 0, 1 or 2")
})

test_that("predict() takes draws of its own fit only", {
  set.seed(61)
  x <- matrix(c(-1, 0.5, 1, -0.3, 2, 1, -2, 0.1), 4, 2)
  tiny <- jko_control(hidden = 4, rank = 1, batch = 16, iters = 5, pool = 64, monitor = 32)
  fa <- suppressWarnings(jko_fit(target_logistic(x, c(0, 1, 1, 0)), h = 0.1, steps = 1,
                                 control = tiny, verbose = FALSE))
  fb <- suppressWarnings(jko_fit(target_logistic(x, c(1, 1, 0, 0)), h = 0.1, steps = 1,
                                 control = tiny, verbose = FALSE))
  sa <- jko_sample(fa, 50)
  # the same draws give the same predictions as predict()'s own mean
  p <- predict(fa, samples = sa)
  tg <- fa$potential
  expect_equal(unname(p), rowMeans(plogis(tg$x %*% t(sa$x[, seq_len(tg$p)]))),
               tolerance = 1e-12)
  # any step of the same fit is its own
  expect_length(predict(fa, samples = jko_sample(fa, 50, step = 0)), 4L)
  # the same dimension, another fit: refused (before: accepted)
  expect_error(predict(fa, samples = jko_sample(fb, 50)),
               "`samples` must be draws of this fit \\(from jko_sample\\(fit\\)\\): they are draws of another fit")
  # draws made by hand at chosen points (no identity) are taken as they are
  # (the fit's coordinates: the 2 coefficients, then the prior's scale)
  bare <- structure(list(x = matrix(c(1, -1, 0), 3, 3, byrow = TRUE), dim = 3L),
                    class = "jko_sample")
  expect_equal(unname(predict(fa, samples = bare)), plogis(drop(tg$x %*% c(1, -1))),
               tolerance = 1e-12)
  narrow <- bare
  narrow$x <- narrow$x[, 1L, drop = FALSE]
  expect_error(predict(fa, samples = narrow), "their `x` is not a numeric matrix of 3 columns")
  moved <- sa
  moved$step <- 5
  expect_error(predict(fa, samples = moved), "draws of another fit")
})

test_that("a tampered or partial fit is refused by every function that takes a fit", {
  set.seed(62)
  tiny <- jko_control(hidden = 4, rank = 1, batch = 16, iters = 5, pool = 64, monitor = 32)
  fit <- jko_fit(potential_quadratic(1), init_gaussian(0, 1), h = 0.1, steps = 2,
                 control = tiny, verbose = FALSE)
  set_part <- function(f, name, value) {
    f[name] <- list(value)
    if (is.null(value)) f[[name]] <- NULL
    f
  }
  th <- fit$theta
  th[[2]] <- th[[2]][-1]
  broken <- list(
    "its maps' parameters `theta`" = set_part(fit, "theta", th),
    "`dim` differs" = set_part(fit, "dim", 2L),
    "its `history` must have 3 rows" = set_part(fit, "history", fit$history[1:2, ]),
    "its changes of variables `std`" = set_part(fit, "std", NULL),
    "its `potential` is not a potential of dimension 1" =
      set_part(fit, "potential", potential_quadratic(diag(2))),
    "its maps' parameters `theta` are missing" = set_part(fit, "theta", NULL))
  calls <- list(
    sample = function(f) jko_sample(f, 10), density = function(f) jko_density(f, 0),
    init_fit = function(f) init_fit(f), continue = function(f) jko_continue(f, 1, verbose = FALSE),
    update = function(f) jko_update(f, function(x) -x[, 1]^2, control = tiny, verbose = FALSE),
    evidence = function(f) jko_evidence(f, 100), print = function(f) print(f),
    summary = function(f) summary(f), plot = function(f) plot(f),
    simulate = function(f) simulate(f, 2), predict = function(f) predict(f))
  for (what in names(broken)) {
    for (cl in names(calls)) {
      e <- tryCatch(calls[[cl]](broken[[what]]), error = identity)
      expect_s3_class(e, "jkoflow_error")
      expect_match(conditionMessage(e), paste("is not a valid fit:", what), fixed = TRUE,
                   label = paste(cl, "of a fit whose", what))
    }
  }
  # the partial fit of a failure is a valid fit: it is not refused
  part <- set_part(set_part(set_part(fit, "theta", fit$theta[1]), "std", fit$std[1]),
                   "history", fit$history[1:2, ])
  expect_silent(jko_sample(part, 5))
})

test_that("messages say what is wrong: NA and Inf, overflow, duplicates, pool, odd kernels", {
  set.seed(63)
  tiny <- jko_control(hidden = 4, rank = 1, batch = 16, iters = 5, pool = 64, monitor = 32)
  fit <- jko_fit(potential_quadratic(1), init_gaussian(0, 1), h = 0.1, steps = 1,
                 control = tiny, verbose = FALSE)
  # before: "an object of class "numeric" and length 2"
  expect_error(jko_sample(fit, c(1, NA)),
               "`n` must be a whole number >= 1, not a numeric vector of length 2 containing NA.",
               fixed = TRUE)
  expect_error(jko_fit(potential_quadratic(1), init_gaussian(0, 1), h = c(0.1, Inf)),
               "not a numeric vector of length 2 containing Inf.", fixed = TRUE)
  expect_error(init_gaussian(c(0, NaN), 1), "containing NaN", fixed = TRUE)
  expect_error(jko_sample(fit, matrix(c(1, NA, -Inf, 2), 2)),
               "not a 2 x 2 numeric matrix containing NA, -Inf.", fixed = TRUE)
  # before: a residual warning and a density of 0 at 1e155, "a Hessian that
  # is not positive definite" in a push
  e <- tryCatch(jko_density(fit, c(1, 1e155)), error = identity)
  expect_s3_class(e, "jkoflow_error_overflow")
  expect_match(conditionMessage(e), "`x` has values beyond 1e154 in magnitude \\(the largest 1e\\+155\\)")
  expect_error(init_samples(matrix(c(0, -2e154), 2)), "`x` has values beyond 1e154")
  # (before: "the loss or the parameters became non-finite" in the first step)
  expect_error(init_gaussian(1e155, 1), "put draws beyond 1e154 in magnitude",
               class = "jkoflow_error_overflow")
  expect_s3_class(init_gaussian(1e150, 1), "jko_init")
  # 1e150 is far, not an overflow: the density is 0 there
  expect_equal(as.numeric(jko_density(fit, 1e150)), 0)
  # before: all accepted silently
  expect_error(potential_fn(function(x) rowSums(x^2), function(x) 2 * x,
                            variables = c("a", "b", "a")),
               "`variables` must be distinct names: \"a\" appears more than once.", fixed = TRUE)
  expect_error(jko_control(batch = 256, pool = 100),
               "`pool` (100) must be at least `batch` (256)", fixed = TRUE)
  expect_error(jko_fit(potential_quadratic(1), init_gaussian(0, 1), control = tiny, batch = 128),
               "`pool` (64) must be at least `batch` (128)", fixed = TRUE)
  expect_error(interaction_fn(function(z) z[, 1]), "`W` must be an even kernel, W\\(-z\\) = W\\(z\\)")
  expect_error(interaction_fn(function(z) rowSums(z^2) / 2, function(z) abs(z)),
               "`gradient` must be odd")
  expect_error(interaction_fn(function(z) z[, 2]^2 + z[, 1]), "in dimension 2, W\\(z\\)")
  expect_s3_class(interaction_fn(function(z) sqrt(rowSums(z^2)), function(z) z / sqrt(rowSums(z^2))),
                  "jko_interaction")
  # found by the fuzzer: base R's errors on the package's behalf
  e <- tryCatch(jko_sample(fit, 10, scale = function(x) x), error = identity)
  expect_s3_class(e, "jkoflow_error")
  expect_match(conditionMessage(e),
               "`scale` must be one of \"constrained\", \"unconstrained\", not a function.",
               fixed = TRUE)
  expect_identical(jko_sample(fit, 3, scale = "unc")$scale, "unconstrained")
  expect_error(plot(fit, what = c("loss", "nonsense")), "`what` must be among \"pairs\", \"marginals\", \"loss\"")
  e <- tryCatch(jko_update(fit, function(x, y) -rowSums((x - y)^2), control = tiny,
                           verbose = FALSE), error = identity)
  expect_s3_class(e, "jkoflow_error")
  expect_match(conditionMessage(e), "`loglik` failed on 16 points: .*\"y\" is missing")
  e <- tryCatch(target_glm(y ~ a, data = 3), error = identity)
  expect_s3_class(e, "jkoflow_error")
  expect_match(conditionMessage(e), "`formula` and `data` .* give no model frame: 'data' must be")
})
