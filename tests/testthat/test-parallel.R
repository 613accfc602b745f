# target_parallel(): a batch split across workers gives the values and
# gradients of the target itself, bit for bit (each row is computed by the
# same function on the same numbers; only where changes), so a fit with
# workers is the same fit as without, seed for seed. Two workers: the
# machine this runs on may have two cores.

# N(m, S) in 2-D: log Z = log(2 pi sqrt(det S)) for the kernel below.
gauss_S <- matrix(c(1, 0.5, 0.5, 2), 2)
gauss_m <- c(1, -1)
gauss_target <- function(grad = TRUE) {
  P <- solve(gauss_S); m <- gauss_m
  lp <- function(x) { d <- sweep(x, 2, m); -0.5 * rowSums((d %*% P) * d) }
  gr <- function(x) -sweep(x, 2, m) %*% P
  if (grad) target_logdensity(lp, gr, dim = 2)
  else suppressMessages(target_logdensity(lp, dim = 2))
}
small_control <- function() {
  jko_control(hidden = c(16, 16), batch = 256, iters = 150, pool = 4096, monitor = 2048,
              max_steps = 3)
}
par_env <- new.env()
get_cluster <- function() {
  if (is.null(par_env$cl)) par_env$cl <- parallel::makeCluster(2)
  par_env$cl
}

test_that("target_parallel() checks its arguments", {
  expect_error(target_parallel(3), "`target` must be a jkoflow target")
  expect_error(target_parallel(gauss_target(), workers = 2),
               "`workers` must be NULL .* or a cluster")
  expect_error(target_parallel(potential_quadratic(diag(2))), "evaluated in C")
  skip_if_not_installed("future")
  p <- target_parallel(gauss_target())
  expect_error(target_parallel(p), "already parallel")
})

test_that("blocks on a cluster give the target's values and gradients bit for bit", {
  cl <- get_cluster()
  set.seed(1)
  x <- matrix(rnorm(2 * 1001), 1001)
  for (grad in c(TRUE, FALSE)) {       # with its gradient, and finite differences
    tg <- gauss_target(grad)
    seed <- .Random.seed
    pt <- target_parallel(tg, cl)
    expect_identical(.Random.seed, seed)   # R's generator is left alone
    expect_s3_class(pt, "jko_target_parallel")
    expect_identical(potential_value(pt, x, grad = TRUE), potential_value(tg, x, grad = TRUE))
    expect_identical(potential_value(pt, x), potential_value(tg, x))
    expect_identical(potential_value(pt, x[1, , drop = FALSE]), potential_value(tg, x[1, , drop = FALSE]))
  }
  # a function of the global environment, its data there: both reach the
  # workers once, with the packages it uses (stats here)
  assign(".jko_par_mu", c(0.5, 2), envir = globalenv())
  on.exit(rm(".jko_par_mu", envir = globalenv()))
  f <- function(x) rowSums(dnorm(sweep(x, 2, .jko_par_mu), log = TRUE))
  environment(f) <- globalenv()
  tg <- suppressMessages(target_logdensity(f, dim = 2))
  pt <- target_parallel(tg, cl)
  expect_identical(potential_value(pt, x, grad = TRUE), potential_value(tg, x, grad = TRUE))
})

test_that("a future plan's workers give the same values; sequential by default", {
  skip_if_not_installed("future")
  tg <- gauss_target()
  set.seed(2)
  x <- matrix(rnorm(2 * 300), 300)
  old <- future::plan(future::sequential)
  on.exit(future::plan(old))
  pt <- target_parallel(tg)
  expect_identical(potential_value(pt, x, grad = TRUE), potential_value(tg, x, grad = TRUE))
  future::plan(future::multisession, workers = 2)
  expect_identical(potential_value(pt, x, grad = TRUE), potential_value(tg, x, grad = TRUE))
  expect_identical(potential_value(pt, x), potential_value(tg, x))
  # the payload went once to each of the 2 workers, not with every batch
  expect_lte(pt$parallel$misses, 2L)
  expect_false(pt$parallel$always)
})

test_that("under a multisession plan, resident servers take the batches", {
  skip_if_not_installed("future")
  skip_on_os("windows")
  old <- future::plan(future::multisession, workers = 2)
  on.exit(future::plan(old))
  # (servers left running by mistake would stop within a minute, not ten)
  oo <- options(jkoflow.resident_idle = 60)
  on.exit(options(oo), add = TRUE)
  tg <- gauss_target()
  pt <- target_parallel(tg)
  set.seed(3)
  xs <- lapply(1:20, function(i) matrix(rnorm(2 * (50 + i)), 50 + i))
  seed <- .Random.seed
  # 20 batches, values and gradients of the target bit for bit, on 2
  # servers started once: 2 futures, not one a block
  for (i in 1:20) {
    expect_identical(potential_value(pt, xs[[i]], grad = i %% 2 == 0),
                     potential_value(tg, xs[[i]], grad = i %% 2 == 0))
  }
  expect_identical(pt$parallel$launched, 2L)
  expect_identical(.Random.seed, seed)   # R's generator is left alone
  # another parallel target shares the servers (a second set would wait
  # for the workers the first holds)
  tg2 <- gauss_target(grad = FALSE)
  pt2 <- target_parallel(tg2)
  for (i in 1:4) {
    p <- if (i %% 2) pt else pt2
    t <- if (i %% 2) tg else tg2
    expect_identical(potential_value(p, xs[[i]], grad = TRUE), potential_value(t, xs[[i]], grad = TRUE))
  }
  expect_identical(c(pt$parallel$launched, pt2$parallel$launched), c(2L, 0L))
  # the servers hold the workers until let go; then a future of the user's
  # runs at once, and the next batch starts new servers
  target_release(pt)
  expect_identical(future::value(future::future(1L)), 1L)
  # they start again when needed; after a fit they are let go
  ctl <- jko_control(hidden = c(8, 8), batch = 64, iters = 20, pool = 512, monitor = 256)
  set.seed(8)
  f1 <- jko_fit(pt, init_gaussian(c(0, 0), 2), h = 0.5, steps = 1, control = ctl,
                stationary = FALSE, verbose = FALSE)
  set.seed(8)
  f0 <- jko_fit(tg, init_gaussian(c(0, 0), 2), h = 0.5, steps = 1, control = ctl,
                stationary = FALSE, verbose = FALSE)
  expect_identical(f1$theta, f0$theta)
  expect_identical(pt$parallel$launched, 4L)
  expect_identical(future::value(future::future(2L)), 2L)
  # the fit let its servers go: the next batch starts new ones
  expect_identical(potential_value(pt, xs[[1]]), potential_value(tg, xs[[1]]))
  expect_identical(pt$parallel$launched, 6L)
  # a plan changed under the servers: they are started again on the new one
  future::plan(future::multisession, workers = 2)
  expect_identical(potential_value(pt, xs[[2]]), potential_value(tg, xs[[2]]))
  expect_identical(pt$parallel$launched, 8L)
  target_release(pt)
  # turned off, a future per block
  withr_opt <- options(jkoflow.resident = FALSE)
  on.exit(options(withr_opt), add = TRUE)
  expect_identical(potential_value(pt, xs[[3]]), potential_value(tg, xs[[3]]))
  expect_identical(pt$parallel$launched, 10L)
})

test_that("a block that fails on a resident server gives the target's own error", {
  skip_if_not_installed("future")
  skip_on_os("windows")
  old <- future::plan(future::multisession, workers = 2)
  on.exit(future::plan(old))
  far <- function(x) {
    if (any(x[, 1] > 2.5)) stop("the first coordinate is beyond 2.5")
    -rowSums(x^2) / 2
  }
  tg <- target_logdensity(far, function(x) -x, dim = 2)
  pt <- target_parallel(tg)
  x <- rbind(matrix(0, 10, 2), c(3, 0))
  e_seq <- tryCatch(potential_value(tg, x), error = identity)
  e_par <- tryCatch(potential_value(pt, x), error = identity)
  expect_identical(conditionMessage(e_par), conditionMessage(e_seq))
  expect_identical(class(e_par), class(e_seq))
  expect_s3_class(e_par, "jkoflow_error_potential")
  # the servers go on: the next batch is theirs
  expect_identical(potential_value(pt, x[1:10, ]), potential_value(tg, x[1:10, ]))
  expect_identical(pt$parallel$launched, 2L)
  # in a fit: the same classed error, at the same point
  bad_init <- init_gaussian(c(0, 0), 4)
  set.seed(5)
  f_seq <- tryCatch(jko_fit(tg, bad_init, control = small_control(), verbose = FALSE),
                    error = identity)
  set.seed(5)
  f_par <- tryCatch(jko_fit(pt, bad_init, control = small_control(), verbose = FALSE),
                    error = identity)
  expect_identical(class(f_par), class(f_seq))
  expect_identical(conditionMessage(f_par), conditionMessage(f_seq))
  # the failed fit let the workers go
  expect_identical(future::value(future::future(3L)), 3L)
  # a target the servers cannot set up (a package missing there) goes as
  # futures, which give the error they gave
  bad <- target_parallel(tg)
  bad$parallel$payload$packages <- "jkoflowNoSuchPackage"
  e_bad <- tryCatch(potential_value(bad, x[1:10, ]), error = identity)
  expect_s3_class(e_bad, "jkoflow_error_potential")
  expect_match(conditionMessage(e_bad), "jkoflowNoSuchPackage is not installed on the worker")
  expect_identical(potential_value(pt, x[1:10, ]), potential_value(tg, x[1:10, ]))
  target_release(pt)
})

test_that("a resident server idle too long stops, and the next batch starts another", {
  skip_if_not_installed("future")
  skip_on_os("windows")
  old <- future::plan(future::multisession, workers = 2)
  on.exit(future::plan(old))
  oo <- options(jkoflow.resident_idle = 0.5)
  on.exit(options(oo), add = TRUE)
  tg <- gauss_target()
  pt <- target_parallel(tg)
  x <- matrix(seq(-2, 2, length.out = 40), 20)
  expect_identical(potential_value(pt, x), potential_value(tg, x))
  Sys.sleep(1.5)
  expect_identical(potential_value(pt, x, grad = TRUE), potential_value(tg, x, grad = TRUE))
  expect_identical(pt$parallel$launched, 4L)
  target_release(pt)
})

test_that("a fit with 2 workers is the sequential fit with the same seed", {
  cl <- get_cluster()
  tg <- gauss_target()
  pt <- target_parallel(tg, cl)
  ctl <- jko_control(hidden = c(8, 8), batch = 256, iters = 40, pool = 2048, monitor = 2048)
  # a stationary flow of 2 steps from a start near the target
  init <- init_gaussian(gauss_m, 1.2 * diag(sqrt(diag(gauss_S))))
  set.seed(11)
  f1 <- suppressWarnings(jko_fit(tg, init, h = 0.5, steps = 2, control = ctl, verbose = FALSE))
  set.seed(11)
  f2 <- suppressWarnings(jko_fit(pt, init, h = 0.5, steps = 2, control = ctl, verbose = FALSE))
  expect_identical(f2$theta, f1$theta)
  expect_identical(f2$history$kl, f1$history$kl)
  set.seed(12)
  ev <- jko_evidence(f2, 4000)
  # the flow's log Z against the closed form, within 4 standard errors
  # (and 0.05: a poor flow's se understates its error)
  expect_lt(abs(ev$log_z - log(2 * pi * sqrt(det(gauss_S)))), max(4 * ev$se, 0.05))
})

test_that("a block that fails on a worker gives the target's own error, classed", {
  cl <- get_cluster()
  far <- function(x) {
    if (any(x[, 1] > 2.5)) stop("the first coordinate is beyond 2.5")
    -rowSums(x^2) / 2
  }
  tg <- target_logdensity(far, function(x) -x, dim = 2)
  pt <- target_parallel(tg, cl)
  x <- rbind(matrix(0, 10, 2), c(3, 0))
  e_seq <- tryCatch(potential_value(tg, x), error = identity)
  e_par <- tryCatch(potential_value(pt, x), error = identity)
  expect_identical(conditionMessage(e_par), conditionMessage(e_seq))
  expect_identical(class(e_par), class(e_seq))
  expect_s3_class(e_par, "jkoflow_error_potential")
  # in a fit: the same classed error, at the same point
  bad_init <- init_gaussian(c(0, 0), 4)
  set.seed(5)
  f_seq <- tryCatch(jko_fit(tg, bad_init, control = small_control(), verbose = FALSE),
                    error = identity)
  set.seed(5)
  f_par <- tryCatch(jko_fit(pt, bad_init, control = small_control(), verbose = FALSE),
                    error = identity)
  expect_identical(class(f_par), class(f_seq))
  expect_identical(conditionMessage(f_par), conditionMessage(f_seq))
})

test_that("a worker that dies is an error that says so", {
  cl1 <- parallel::makeCluster(1)
  on.exit(try(parallel::stopCluster(cl1), silent = TRUE))
  die <- function(x) {
    if (any(x[, 1] > 2.5)) quit(save = "no")
    -rowSums(x^2) / 2
  }
  pt <- target_parallel(target_logdensity(die, function(x) -x, dim = 2), cl1)
  e <- tryCatch(potential_value(pt, rbind(c(0, 0), c(3, 0))), error = identity)
  expect_s3_class(e, "jkoflow_error_potential")
  expect_match(conditionMessage(e), "failed: a node of the cluster failed")
})

test_that("a fit stopped during a batch keeps its steps, and the cluster stays in step", {
  cl <- get_cluster()
  # the target turns slow (0.5 s a block) when the file `flag` exists: the
  # workers see it, being on this machine
  flag <- tempfile()
  slow <- function(x) { if (file.exists(flag)) Sys.sleep(0.5); -rowSums(x^2) / 2 }
  tg <- target_logdensity(slow, function(x) -x, dim = 2)
  pt <- target_parallel(tg, cl)
  ctl <- jko_control(hidden = c(8, 8), batch = 64, iters = 20, pool = 512, monitor = 256)
  set.seed(7)
  f1 <- jko_fit(pt, init_gaussian(c(0, 0), 2), h = 0.5, steps = 1, control = ctl,
                stationary = FALSE, verbose = FALSE)
  file.create(flag)
  # a time limit strikes while the nodes work on a batch (it is checked
  # between the reads of their answers, so some may be left in the sockets;
  # an interrupt waits for the read in progress)
  e <- tryCatch({
    setTimeLimit(elapsed = 0.2, transient = TRUE)
    jko_continue(f1, steps = 3, verbose = FALSE)
  }, error = identity)
  setTimeLimit(elapsed = Inf)
  unlink(flag)
  expect_s3_class(e, "jkoflow_error_fit")
  expect_match(conditionMessage(e), "time limit")
  expect_identical(e$fit$theta, f1$theta)     # the step done is kept
  # the next batches read the right answers, not stale ones
  x <- matrix(rnorm(40), 20)
  expect_identical(potential_value(pt, x, grad = TRUE), potential_value(tg, x, grad = TRUE))
  x2 <- matrix(rnorm(40), 20)
  expect_identical(potential_value(pt, x2), potential_value(tg, x2))
})

test_that("the cluster is stopped at the end", {
  if (!is.null(par_env$cl)) parallel::stopCluster(par_env$cl)
  par_env$cl <- NULL
  succeed()
})

test_that("flows side by side are the flows in sequence, and check each other", {
  skip_if_not_installed("future.apply")
  tg <- gauss_target()
  ctl <- jko_control(hidden = c(8, 8), batch = 256, iters = 30, pool = 1024, monitor = 1024)
  init <- init_gaussian(gauss_m, 1.2 * diag(sqrt(diag(gauss_S))))
  old <- future::plan(future::multisession, workers = 2)
  on.exit(future::plan(old))
  fl <- jko_flows(tg, seeds = 1:2, init = init, h = 0.5, steps = 2, control = ctl, n = 4000)
  future::plan(future::sequential)
  fs <- jko_flows(tg, seeds = 1:2, init = init, h = 0.5, steps = 2, control = ctl, n = 4000)
  expect_s3_class(fl, "jko_flows")
  expect_identical(fl$workers, 2L)
  # a flow's seed decides it, wherever it runs
  for (i in 1:2) expect_identical(fl$fits[[i]]$theta, fs$fits[[i]]$theta)
  expect_identical(fl$table$log_z, fs$table$log_z)
  # each log Z against the closed form, within 4 se (and 0.05); the
  # weighted mean's se is that of independent estimates
  truth <- log(2 * pi * sqrt(det(gauss_S)))
  expect_true(all(abs(fl$table$log_z - truth) < pmax(4 * fl$table$se, 0.05)))
  expect_equal(fl$check$se, 1 / sqrt(sum(1 / fl$table$se^2)))
  expect_equal(fl$check$df, 1L)
  expect_true(all(fl$check$rhat < 1.01))
  expect_identical(names(fl$check$rhat), c("x1", "x2"))
  out <- capture.output(print(fl))
  expect_match(out[1], "2 independent flows of target log-density, side by side on 2 workers")
  expect_true(any(grepl("R-hat of the flows' draws: largest 1\\.0", out)))
  # a flow that cannot reach the target in one short step says so
  far <- jko_flows(tg, seeds = 3:4, init = init_gaussian(c(4, 4), 0.3), h = 0.05, steps = 1,
                   control = ctl, n = 500)
  expect_false(any(far$table$reached))
  out <- capture.output(print(far))
  expect_true(any(grepl("0 of 2 flows reached the target; do NOT trust", out)))
  # many targets: one flow each, no check across them; a failed flow is reported
  bad <- target_logdensity(function(x) stop("no data"), function(x) -x, dim = 2)
  many <- jko_flows(list(tg, bad), init = init, h = 0.5, steps = 1, control = ctl, n = 500)
  expect_null(many$check)
  expect_match(many$table$verdict[2], "^failed: .*no data")
  expect_error(jko_flows(tg, seeds = 1), "`seeds` must give at least 2 flows")
  future::plan(future::multisession, workers = 2)
  expect_error(jko_flows(target_parallel(tg)), "splits its batches across workers already")
  expect_error(jko_flows(list(tg, 3)), "`target` must be a target")
})
