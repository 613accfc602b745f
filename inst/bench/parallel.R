# Batch-parallel targets and flows side by side (issue 29):
#
#   Rscript inst/bench/parallel.R [--reps=3] [--cost=1] [--kind=cpu] [--parts=overhead,fit,flows,model,ode,ode-fit]
#     ode-fit: [--methods=nuts,jko2,jko1] [--nuts-seeds=1] [--cores=2] [--out=dir] [--pdb=gitdir]
#
# overhead  the dispatch overhead per batch: seconds per evaluation (value
#           and gradient) of a batch of 512 points in 4-D of a target that
#           costs nothing, by the target itself, through a parallel cluster
#           of 1 and 2 nodes (points through shared files), and through
#           plan(multisession, workers = 2): a future per block (future's
#           own transport, options(jkoflow.resident = FALSE)) and the
#           resident servers (R/resident.R: one future per worker for all
#           batches, the points through shared files).
# fit       seconds per fit of a target of known cost per point with 1 and
#           2 workers (a 2-node parallel cluster, and the resident servers
#           of plan(multisession, workers = 2), started by each fit): the
#           same seeded fit (identical maps, checked), run in alternation,
#           medians of `reps`. --kind=cpu: `cost` ms of
#           arithmetic per point, calibrated here on one idle core (on a
#           shared machine it takes what the other jobs leave); --kind=sleep:
#           `cost` ms of waiting per point (a target whose cost is latency:
#           a remote simulator, a licence server), which shows what the
#           dispatch gives when the cores are not the bottleneck.
# flows     4 flows of one target on 2 workers (future.apply, multisession)
#           against the same 4 in sequence, and what the check across flows
#           prints on a posterior the flows reach and one they do not.
# model     from the rest of a fit (the same fit of a target that costs
#           nothing: the networks' training), the cost per point c (the
#           1-worker fit's time beyond the rest, per point evaluated) and
#           the overhead per batch o(w) = o0 + o1 w (fitted on 1 and 2
#           nodes: a batch visits its nodes in turn), the time of the same
#           fit on 8, 64 and 512 workers:
#           T(w) = rest + sum over batches of (c * ceiling(n_b / w) + o(w)).
# ode       the Lotka-Volterra posterior of posteriordb (Hudson's Bay lynx and
#           hare pelts 1900-1920, the Stan case study's model: 4 rates,
#           2 initial populations, 2 noise scales, on the log scale) with
#           deSolve's lsoda: the cost per point of the log-density, and the
#           seconds per batch of 64 points (value and gradient by central
#           differences, 17 solves a point) with 1 and 2 workers.
# ode-fit   the issue's comparison on that posterior: jko_fit() from its
#           defaults with 1 worker and with 2 (target_parallel() on a
#           2-node cluster; the same seeded fit), against rstan's NUTS
#           (defaults, 4 chains, --cores, compile time not counted, seeds
#           --nuts-seeds) on posteriordb's own program (integrate_ode_rk45),
#           all scored against posteriordb's 10,000 reference draws on the
#           constrained scale (worst |mean error| in reference sds and worst
#           relative sd error over the 8 parameters); the R log-density is
#           checked against the program's log_prob (equal up to a
#           constant). Needs rstan, posterior, jsonlite and a posteriordb
#           git directory (--pdb, default /work/.mirror/stan-dev+posteriordb/repo);
#           --methods=nuts,jko2,jko1 picks the runs, whose rows are kept
#           under --out and printed together in one table.
#
# The machine's load (uptime) is printed beside each timing: on a shared
# 2-core machine the figures of 2 workers are only as good as the cores
# other jobs leave free.

suppressPackageStartupMessages({
  library(jkoflow)
  library(parallel)
})
args <- commandArgs(TRUE)
arg <- function(name, default) {
  a <- grep(paste0("^--", name, "="), args, value = TRUE)
  if (length(a)) sub(".*=", "", a[1]) else default
}
reps <- as.integer(arg("reps", 3))
cost_ms <- as.numeric(arg("cost", 1))
kind <- arg("kind", "cpu")
parts <- strsplit(arg("parts", "overhead,fit,flows,model"), ",")[[1]]

load_now <- function() {
  l <- tryCatch(readLines("/proc/loadavg", n = 1L), error = function(e) NA_character_)
  sprintf("load %s", paste(strsplit(l, " ")[[1]][1:3], collapse = " "))
}
say <- function(...) cat(sprintf(...), sep = "")
timed <- function(expr) {
  t0 <- proc.time()[["elapsed"]]
  force(expr)
  proc.time()[["elapsed"]] - t0
}

# A point's cost: `k` square roots and a sum, k calibrated so that one call
# takes cost_ms on one core (the fastest of 20 calls: the least disturbed).
calibrate <- function(ms) {
  k <- 1e5
  repeat {
    t <- min(replicate(20, timed(sum(sqrt(seq_len(k))))))
    if (t > 2e-4) break
    k <- k * 2
  }
  round(k * ms / 1000 / t)
}

make_costly <- function(k, D = 4, sleep = 0) {
  # a Gaussian N(1, I) whose every point costs the burn of k square roots,
  # or `sleep` seconds of waiting
  force(k)
  force(sleep)
  lp <- function(x) {
    if (sleep > 0) Sys.sleep(sleep * nrow(x))
    else for (i in seq_len(nrow(x))) sum(sqrt(seq_len(k)))
    -0.5 * rowSums((x - 1)^2)
  }
  target_logdensity(lp, function(x) -(x - 1), dim = D)
}

cheap <- target_logdensity(function(x) -0.5 * rowSums(x^2), function(x) -x, dim = 4)
res <- list()

if (any(parts %in% c("overhead", "model"))) {
  say("== dispatch overhead per batch (512 points, D = 4, value and gradient) ==\n")
  x <- matrix(rnorm(512 * 4), 512)
  per_call <- function(tg, calls = 50L) {
    potential_value(tg, x, grad = TRUE)
    timed(for (i in seq_len(calls)) potential_value(tg, x, grad = TRUE)) / calls
  }
  cl1 <- makeCluster(1)
  cl2 <- makeCluster(2)
  p1 <- target_parallel(cheap, cl1)
  p2 <- target_parallel(cheap, cl2)
  future::plan(future::multisession, workers = 2)
  pf <- target_parallel(cheap)
  # a future per block: the resident servers let go and turned off
  per_future <- function(tg, calls) {
    target_release(tg)
    old <- options(jkoflow.resident = FALSE)
    on.exit(options(old))
    per_call(tg, calls)
  }
  # the resident servers: the futures it launched, batches it ran
  launched <- 0L
  per_resident <- function(tg) {
    n0 <- tg$parallel$launched
    t <- per_call(tg)
    launched <<- launched + tg$parallel$launched - n0
    t
  }
  rows <- list()
  for (r in seq_len(reps)) {
    rows[[r]] <- c(seq = per_call(cheap), cl1 = per_call(p1), cl2 = per_call(p2),
                   fut2 = per_future(pf, 10L), res2 = per_resident(pf))
  }
  target_release(pf)
  tab <- do.call(rbind, rows)
  med <- apply(tab, 2, median)
  say("  ms per batch (median of %d): target itself %.2f; cluster of 1 node %.2f; of 2 nodes %.2f; future multisession x2 %.1f; future x2 resident %.2f   [%s]\n",
      reps, 1e3 * med["seq"], 1e3 * med["cl1"], 1e3 * med["cl2"], 1e3 * med["fut2"],
      1e3 * med["res2"], load_now())
  o <- med[c("cl1", "cl2")] - med["seq"]
  say("  overhead per batch: 1 node %.2f ms, 2 nodes %.2f ms, future x2 %.1f ms, future x2 resident %.2f ms (aim: at most 5 ms)\n",
      1e3 * o[1], 1e3 * o[2], 1e3 * (med["fut2"] - med["seq"]), 1e3 * (med["res2"] - med["seq"]))
  say("  futures launched by the resident path: %d for %d batches\n", launched, reps * 51L)
  # a batch visits its nodes in turn: o(w) = o0 + o1 w, o1 from 1 and 2
  # nodes (not below 0: on a loaded machine the difference is noise)
  res$o1 <- max(0, unname(o[2] - o[1]))
  res$o0 <- unname(o[2]) - 2 * res$o1
  future::plan(future::sequential)
  stopCluster(cl1)
  stopCluster(cl2)
}

# What the machine gives this session: a CPU-bound loop alone, then two
# copies at once in two processes; 2 x alone / together is the number of
# cores the other jobs leave (2 on an idle 2-core machine).
machine_cores <- function() {
  loop <- function(i) { t0 <- proc.time()[["elapsed"]]; s <- 0
    for (j in 1:2e7) s <- s + j * 0.5
    proc.time()[["elapsed"]] - t0 }
  alone <- loop(1)
  together <- max(unlist(parallel::mclapply(1:2, loop, mc.cores = 2)))
  say("  the machine: a loop alone %.2f s, two at once %.2f s: %.2f cores free for this session   [%s]\n",
      alone, together, 2 * alone / together, load_now())
}

k <- if (kind == "cpu") calibrate(cost_ms) else 0
costly <- make_costly(k, sleep = if (kind == "sleep") cost_ms / 1000 else 0)
free <- make_costly(0)
ctl <- jko_control(hidden = c(16, 16), batch = 128, iters = 25, pool = 1024, monitor = 512)
run_fit <- function(tg, seed = 1) {
  set.seed(seed)
  jko_fit(tg, init_gaussian(rep(0, 4), 2), h = 0.5, steps = 2, control = ctl,
          stationary = FALSE, verbose = FALSE)
}

if (any(parts %in% c("fit", "model"))) {
  say("== a fit of a target of %.3g ms %s per point%s, 2 steps x 25 iterations of batch 128 ==\n",
      cost_ms, if (kind == "cpu") "of arithmetic" else "of waiting",
      if (kind == "cpu") sprintf(" (k = %d)", k) else "")
  x <- matrix(rnorm(128 * 4), 128)
  c_point <- median(replicate(5, timed(potential_value(costly, x, grad = TRUE)))) / 128
  say("  measured cost per point: %.3f ms   [%s]\n", 1e3 * c_point, load_now())
  cl2 <- makeCluster(2)
  p2 <- target_parallel(costly, cl2)
  future::plan(future::multisession, workers = 2)
  pf2 <- target_parallel(costly)
  t1 <- t2 <- t3 <- numeric(reps)
  # the batches of one fit: the size of every call of the log-density
  sizes <- integer()
  counting <- costly
  counting$value <- function(x) { sizes <<- c(sizes, nrow(x)); costly$value(x) }
  counting$value_gradient <- NULL
  f0 <- run_fit(counting)
  t_rest <- median(replicate(reps, timed(run_fit(free))))
  say("  the same fit of a target that costs nothing: %.2f s (the networks' training)   [%s]\n",
      t_rest, load_now())
  for (r in seq_len(reps)) {
    machine_cores()
    t1[r] <- timed(f1 <- run_fit(costly))
    l1 <- load_now()
    t2[r] <- timed(f2 <- run_fit(p2))
    l2 <- load_now()
    t3[r] <- timed(f3 <- run_fit(pf2))
    say("  run %d: 1 worker %.1f s [%s]; 2 workers: cluster %.1f s [%s], multisession %.1f s [%s]; same fit: %s\n",
        r, t1[r], l1, t2[r], l2, t3[r], load_now(),
        identical(f1$theta, f2$theta) && identical(f1$theta, f3$theta))
  }
  say("  median: 1 worker %.1f s, 2 workers: cluster %.1f s (%.2f times faster), multisession %.1f s (%.2f times faster; aim: at least 1.7)\n",
      median(t1), median(t2), median(t1) / median(t2), median(t3), median(t1) / median(t3))
  say("  futures launched by the multisession fits: %d (%d fits)\n", pf2$parallel$launched, reps)
  future::plan(future::sequential)
  res$T1 <- median(t1)
  res$sizes <- sizes
  res$rest <- t_rest
  res$c <- max(0, res$T1 - t_rest) / sum(sizes)
  stopCluster(cl2)
}

if ("model" %in% parts && !is.null(res$c) && !is.null(res$o0)) {
  say("== a model of the time on w workers from the measured costs ==\n")
  # every batch of the fit costs c per point of its largest block and the
  # overhead o(w); the rest (training the networks in C, bookkeeping) is
  # what the sequential fit took beyond its target's points
  rest <- res$rest
  model <- function(w) {
    rest + sum(res$c * ceiling(res$sizes / w) + (w > 1) * (res$o0 + res$o1 * w))
  }
  say("  the fit: %d batches of %s points (%d points), rest %.2f s, c = %.3f ms per point\n",
      length(res$sizes), paste(sort(unique(res$sizes)), collapse = "/"), sum(res$sizes), rest,
      1e3 * res$c)
  for (w in c(1, 2, 8, 64, 512)) {
    say("  %4d workers: %7.2f s per fit (speed-up %.1f)\n", w, model(w), model(1) / model(w))
  }
  say("  (c = %.3f ms/point, o(w) = %.2f + %.3f w ms; a batch of n points cannot use more than n workers, and o(w) grows with the nodes a batch visits in turn)\n",
      1e3 * res$c, 1e3 * res$o0, 1e3 * res$o1)
}

if ("flows" %in% parts) {
  say("== 4 flows of one target: on 2 workers against in sequence ==\n")
  S <- matrix(c(1, 0.5, 0.5, 2), 2)
  P <- solve(S)
  m <- c(1, -1)
  gtg <- target_logdensity(function(x) { d <- sweep(x, 2, m); -0.5 * rowSums((d %*% P) * d) },
                           function(x) -sweep(x, 2, m) %*% P, dim = 2)
  fctl <- jko_control(hidden = c(16, 16), batch = 256, iters = 100, pool = 2048, monitor = 2048)
  ts <- tp <- numeric(reps)
  for (r in seq_len(reps)) {
    future::plan(future::sequential)
    ts[r] <- timed(fs <- jko_flows(gtg, seeds = 1:4, control = fctl, n = 4000))
    l1 <- load_now()
    future::plan(future::multisession, workers = 2)
    tp[r] <- timed(fp <- jko_flows(gtg, seeds = 1:4, control = fctl, n = 4000))
    say("  run %d: in sequence %.1f s [%s]; on 2 workers %.1f s [%s]\n", r, ts[r], l1, tp[r], load_now())
  }
  say("  median: in sequence %.1f s, on 2 workers %.1f s: %.2f times faster\n",
      median(ts), median(tp), median(ts) / median(tp))
  say("  true log Z = %.4f\n", log(2 * pi * sqrt(det(S))))
  print(fp)
  say("-- a posterior they do not reach (one short step from far away) --\n")
  print(jko_flows(gtg, seeds = 1:4, init = init_gaussian(c(4, 4), 0.3), h = 0.05, steps = 1,
                  control = fctl, n = 4000))
  future::plan(future::sequential)
}

if (any(parts %in% c("ode", "ode-fit"))) {
  # the Lotka-Volterra posterior of posteriordb (hudson_lynx_hare-lotka_volterra):
  # lognormal errors on both populations, the 1900 counts the observed
  # initial state (y_init ~ lognormal(log z_init, sigma)), on the log scale
  lynx <- c(4.0, 6.1, 9.8, 35.2, 59.4, 41.7, 19.0, 13.0, 8.3, 9.1, 7.4, 8.0, 12.3, 19.5,
            45.7, 51.1, 29.7, 15.8, 9.7, 10.1, 8.6)
  hare <- c(30.0, 47.2, 70.2, 77.4, 36.3, 20.6, 18.1, 21.4, 22.0, 25.4, 27.1, 40.3, 57.0,
            76.6, 52.3, 19.5, 11.2, 7.6, 14.6, 16.2, 24.7)
  lv_logd <- local({
    times <- 0:20
    ly <- log(cbind(hare, lynx))
    rhs <- function(t, z, th) {
      list(c(z[1] * (th[1] - th[2] * z[2]), z[2] * (-th[3] + th[4] * z[1])))
    }
    one <- function(u) {
      p <- exp(u)            # theta (4), z_init (2), sigma (2)
      # where exp() overflows, or lsoda stops on its input, the point is
      # rejected (-Inf), as Stan rejects a point its ODE solver fails at: a
      # fit's search for modes starts far out (lsoda's error there would
      # end the fit)
      if (any(!is.finite(p))) return(-Inf)
      sol <- tryCatch(deSolve::ode(p[5:6], times, rhs, p[1:4], method = "lsoda",
                                   rtol = 1e-6, atol = 1e-6),
                      error = function(e) NULL)
      if (is.null(sol) || nrow(sol) < length(times) || any(!is.finite(sol[, 2:3])) || any(sol[, 2:3] <= 0))
        return(-Inf)
      sum(dnorm(ly, log(sol[, 2:3]), rep(p[7:8], each = length(times)), log = TRUE)) +
        sum(dnorm(p[c(1, 3)], 1, 0.5, log = TRUE)) + sum(dnorm(p[c(2, 4)], 0.05, 0.05, log = TRUE)) +
        sum(dlnorm(p[5:6], log(10), 1, log = TRUE)) + sum(dlnorm(p[7:8], -1, 1, log = TRUE)) +
        sum(u)               # the Jacobian of the log scale
    }
    function(x) apply(x, 1L, one)
  })
  lv <- suppressMessages(target_logdensity(lv_logd, dim = 8))
}

if ("ode" %in% parts) {
  say("== Lotka-Volterra by deSolve: seconds per batch with 1 and 2 workers ==\n")
  u0 <- log(c(0.55, 0.028, 0.80, 0.024, 33, 6, 0.25, 0.25))
  x <- sweep(matrix(rnorm(64 * 8, sd = 0.02), 64), 2, u0, "+")
  c_v <- median(replicate(reps, timed(potential_value(lv, x)))) / 64
  say("  log-density at the posterior's centre: %.2f; cost %.2f ms per point (one solve)   [%s]\n",
      lv_logd(matrix(u0, 1)), 1e3 * c_v, load_now())
  cl2 <- makeCluster(2)
  lv2 <- target_parallel(lv, cl2)
  b1 <- b2 <- numeric(reps)
  for (r in seq_len(reps)) {
    b1[r] <- timed(v1 <- potential_value(lv, x, grad = TRUE))
    l1 <- load_now()
    b2[r] <- timed(v2 <- potential_value(lv2, x, grad = TRUE))
    say("  run %d: batch of 64 with gradient: 1 worker %.2f s [%s]; 2 workers %.2f s [%s]; identical: %s\n",
        r, b1[r], l1, b2[r], load_now(), identical(v1, v2))
  }
  say("  median: 1 worker %.2f s, 2 workers %.2f s per batch of 64: %.2f times faster\n",
      median(b1), median(b2), median(b1) / median(b2))
  per_point <- median(b1) / 64
  for (w in c(1, 2, 8, 64, 512)) {
    say("  model, %4d workers: %.2f s per training iteration of batch 512 (%.0f s for 500 iterations)\n",
        w, per_point * ceiling(512 / w) + (w > 1) * 0.005, 500 * (per_point * ceiling(512 / w) + (w > 1) * 0.005))
  }
  say("  (5 ms of overhead per batch assumed beyond one worker; the network's own training, about 10 ms an iteration in 8-D, comes on top)\n")
  stopCluster(cl2)
}

if ("ode-fit" %in% parts) {
  # jko_fit() from its defaults on the LV target with 1 worker and with 2
  # (target_parallel() on a 2-node cluster: the same seeded fit), against
  # rstan's NUTS on posteriordb's own program (integrate_ode_rk45), both
  # scored against posteriordb's reference draws on the constrained scale.
  # Each method's row is saved under --out (an .rds per method), so the
  # methods can be run in separate calls (--methods=nuts,jko2,jko1) and the
  # table printed from all the rows there.
  say("== Lotka-Volterra: jko_fit() with 1 and 2 workers against rstan NUTS, scored on posteriordb's reference ==\n")
  methods <- strsplit(arg("methods", "nuts,jko2,jko1"), ",")[[1]]
  out_dir <- arg("out", file.path(tempdir(), "lv-fit"))
  dir.create(out_dir, recursive = TRUE, showWarnings = FALSE)
  pdb <- arg("pdb", "/work/.mirror/stan-dev+posteriordb/repo")
  pdb_path <- function(p) file.path("posterior_database", p)
  git_show <- function(p, rev = "HEAD", file = "") {
    r <- system2("git", c("--git-dir", shQuote(pdb), "show", shQuote(paste0(rev, ":", pdb_path(p)))),
                 stdout = if (nzchar(file)) file else TRUE)
    if (nzchar(file)) invisible(file) else r
  }
  unzip_json <- function(p) {
    dir <- tempfile("pdb")
    dir.create(dir)
    z <- git_show(p, file = file.path(dir, "f.zip"))
    utils::unzip(z, exdir = dir)
    jsonlite::read_json(setdiff(list.files(dir, full.names = TRUE), z)[1])
  }
  vars <- c(sprintf("theta[%d]", 1:4), sprintf("z_init[%d]", 1:2), sprintf("sigma[%d]", 1:2))
  # the reference: 10 chains of 1000 draws (rstan 2.19, adapt_delta 0.99, thinned by 10)
  refj <- unzip_json("reference_posteriors/draws/draws/hudson_lynx_hare-lotka_volterra.json.zip")
  ref_x <- do.call(rbind, lapply(refj, function(ch) sapply(vars, function(v) unlist(ch[[v]]))))
  ref_chain <- rep(seq_along(refj), each = nrow(ref_x) / length(refj))
  ref_mean <- colMeans(ref_x)
  ref_sd <- apply(ref_x, 2, sd)
  accuracy <- function(x) {
    c(mean = max(abs(colMeans(x) - ref_mean) / ref_sd),
      sd = 100 * max(abs(apply(x, 2, sd) / ref_sd - 1)))
  }
  say("  reference: %d draws of %s; means %s; sds %s\n", nrow(ref_x), paste(vars, collapse = " "),
      paste(signif(ref_mean, 3), collapse = " "), paste(signif(ref_sd, 3), collapse = " "))
  # the data: posteriordb's against the R log-density's (y_init the first row)
  dat <- unzip_json("data/data/hudson_lynx_hare.json.zip")
  dat <- list(N = dat$N, ts = unlist(dat$ts), y_init = unlist(dat$y_init),
              y = do.call(rbind, lapply(dat$y, unlist)))
  say("  posteriordb's data are the R log-density's (hare, lynx; 1900 the initial state): %s\n",
      isTRUE(all.equal(rbind(dat$y_init, dat$y), unname(cbind(hare, lynx)))) && isTRUE(all.equal(as.numeric(dat$ts), as.numeric(1:20))))
  save_row <- function(row) saveRDS(row, file.path(out_dir, paste0(row$method_id, ".rds")))
  row_of <- function(id, method, workers, seconds, x, ess, accept, verdict, extra = "") {
    a <- accuracy(x)
    list(method_id = id, method = method, workers = workers, seconds = seconds,
         mean_err = a[["mean"]], sd_err = a[["sd"]], ess = ess, accept = accept,
         verdict = verdict, extra = extra, load = load_now())
  }
  # the noise floor: half the reference (chains 1-5) scored against the
  # whole (5000 near-independent draws)
  save_row(row_of("ref_half", "reference, chains 1-5 of 10", NA, NA, ref_x[ref_chain <= 5, ], 5000,
                  NA, "(noise floor)"))

  if ("nuts" %in% methods) {
    # posteriordb's program: HEAD's (array syntax of Stan 2.26+) where this
    # rstan parses it, else the program's first version (the same model in
    # the older syntax, the one its reference draws were made with)
    prog <- "models/stan/lotka_volterra.stan"
    code <- paste(git_show(prog), collapse = "\n")
    parsed <- tryCatch({
      utils::capture.output(utils::capture.output(rstan::stanc(model_code = code), type = "message"))
      TRUE
    }, error = function(e) FALSE)
    rev <- "HEAD"
    if (!parsed) {
      rev <- system2("git", c("--git-dir", shQuote(pdb), "log", "--format=%H", "--reverse", "--",
                              shQuote(pdb_path(prog))), stdout = TRUE)[1]
      code <- paste(git_show(prog, rev), collapse = "\n")
      say("  rstan %s (Stan %s) does not parse HEAD's program (array syntax of Stan 2.26+): its first version, %s (the same model in the older syntax), is used\n",
          utils::packageVersion("rstan"), rstan::stan_version(), substr(rev, 1, 10))
    }
    tc <- timed(sm <- suppressMessages(rstan::stan_model(model_code = code, model_name = "lotka_volterra")))
    say("  compiled in %.0f s (not counted)   [%s]\n", tc, load_now())
    cores <- as.integer(arg("cores", 2))
    # rstan's warnings (divergences, and the generated quantities' NaN of a
    # chain far off) are counted here and summed up in a line
    run_nuts <- function(cores, seed) {
      warned <- character()
      t <- timed(sf <- withCallingHandlers(
        rstan::sampling(sm, data = dat, chains = 4, cores = cores, seed = seed, refresh = 0),
        warning = function(w) {
          warned <<- c(warned, substr(gsub("\\s+", " ", conditionMessage(w)), 1, 90))
          invokeRestart("muffleWarning")
        }))
      list(sf = sf, t = t, warned = warned)
    }
    checked <- FALSE
    for (seed in as.integer(strsplit(arg("nuts-seeds", "1"), ",")[[1]])) {
      machine_cores()
      r <- tryCatch(run_nuts(cores, seed), error = function(e) e)
      if (inherits(r, "error") && cores > 1) {
        say("  NUTS with cores = %d failed (%s): cores = 1\n", cores, conditionMessage(r))
        cores <- 1L
        r <- run_nuts(cores, seed)
      }
      sf <- r$sf
      arr <- rstan::extract(sf, pars = c(vars, "lp__"), permuted = FALSE)
      lp <- arr[, , "lp__"]
      arr <- arr[, , vars, drop = FALSE]
      nx <- matrix(arr, ncol = length(vars), dimnames = list(NULL, vars))
      sp <- rstan::get_sampler_params(sf, inc_warmup = TRUE)
      warm <- sf@stan_args[[1]]$warmup
      leap <- sum(vapply(sp, function(p) sum(p[, "n_leapfrog__"]), 0))
      divc <- vapply(sp, function(p) sum(p[-seq_len(warm), "divergent__"]), 0)
      div <- sum(divc)
      ess <- min(apply(arr, 3, posterior::ess_bulk))
      rhat <- max(apply(arr, 3, posterior::rhat))
      el <- rstan::get_elapsed_time(sf)
      say("  NUTS (seed %d), 4 chains, cores = %d, rstan defaults: %.1f s wall; each chain's warm-up + sampling %s s; %d divergent; min bulk ESS %.0f, max R-hat %.3f; %s leapfrog steps (gradients) in all   [%s]\n",
          seed, cores, r$t, paste(sprintf("%.1f", rowSums(el)), collapse = ", "), div, ess, rhat,
          format(leap, big.mark = ","), load_now())
      if (length(r$warned)) {
        tw <- table(sub("^(.{60}).*", "\\1", r$warned))
        say("    rstan's warnings: %s\n", paste(sprintf("%s [x%d]", names(tw), tw), collapse = "; "))
      }
      # a chain left in a far mode of the ODE's likelihood (a wrong period)
      # shows in its mean lp__ (posteriordb's reference is at lp__ near
      # its chains' own)
      lpm <- colMeans(lp)
      good <- lpm > max(lpm) - 10
      say("    per chain: mean lp__ %s; divergent %s; %d of 4 in the main mode\n",
          paste(sprintf("%.1f", lpm), collapse = ", "), paste(divc, collapse = ", "), sum(good))
      if (!all(good)) {
        a <- accuracy(matrix(arr[, good, , drop = FALSE], ncol = length(vars)))
        say("    the %d chains in the main mode alone: worst mean error %.3f sd, worst sd error %.1f%% (for reading the table; the row is all 4 chains)\n",
            sum(good), a[["mean"]], a[["sd"]])
      }
      if (!checked) {
        # the R log-density against the program's log_prob (with the Jacobian
        # of its lower = 0 transform, the log) at reference draws: equal up to a
        # constant (the normalising constants that `~` drops), and to the two ODE
        # solvers' errors (rk45 rtol 1e-5 atol 1e-3; lsoda 1e-6)
        idx <- seq(1, nrow(ref_x), length.out = 200)
        u <- log(ref_x[idx, ])
        lp_stan <- apply(u, 1, function(v) rstan::log_prob(sf, v, adjust_transform = TRUE))
        d <- lv_logd(u) - lp_stan
        say("  R log-density - Stan log_prob at 200 reference draws: median %.4f, spread (max - min) %.2g: %s\n",
            median(d), diff(range(d)),
            if (diff(range(d)) < 0.01) "the same model up to a constant" else "THEY DIFFER")
        checked <- TRUE
      }
      save_row(row_of(sprintf("nuts_s%d", seed), sprintf("rstan NUTS (rk45), seed %d", seed), cores,
                      r$t, nx, ess, NA,
                      sprintf("%d divergent, R-hat %.2f, %d/4 chains in mode", div, rhat, sum(good)),
                      sprintf("%s gradients", format(leap, big.mark = ","))))
    }
  }

  # the ODE solves of a fit: every point the log-density is called at (17 a
  # point with its gradient by central differences), counted in each
  # process that evaluates it (this session, the cluster's nodes)
  # and the seconds spent in them (in each process: the balance of the
  # nodes' blocks)
  lv_counted <- local({
    f <- lv_logd
    function(x) {
      t0 <- proc.time()[["elapsed"]]
      on.exit(assign(".lv_seconds", get0(".lv_seconds", envir = globalenv(), inherits = FALSE,
                                         ifnotfound = 0) + proc.time()[["elapsed"]] - t0,
                     envir = globalenv()))
      assign(".lv_solves", get0(".lv_solves", envir = globalenv(), inherits = FALSE,
                                ifnotfound = 0) + nrow(x), envir = globalenv())
      f(x)
    }
  })
  lvc <- suppressMessages(target_logdensity(lv_counted, dim = 8, variables = paste0("log ", vars)))
  run_jko <- function(tg, workers, cl = NULL) {
    # per process (this session, then each node): solves, seconds in the
    # log-density, CPU seconds
    tally <- function() {
      one <- quote(c(solves = get0(".lv_solves", envir = globalenv(), ifnotfound = 0),
                     seconds = get0(".lv_seconds", envir = globalenv(), ifnotfound = 0),
                     cpu = sum(proc.time()[1:2])))
      own <- eval(one)
      if (is.null(cl)) return(rbind(own))
      rbind(own, do.call(rbind, clusterCall(cl, function(e) eval(e), one)))
    }
    solves <- function() sum(tally()[, "solves"])
    machine_cores()
    k0 <- tally()
    s0 <- solves()
    say("-- jko_fit(), %d worker%s, from the defaults (seed 1), verbose   [%s]\n", workers,
        if (workers > 1) "s" else "", load_now())
    set.seed(1)
    t <- timed(fit <- jko_fit(tg, verbose = TRUE))
    ns <- solves() - s0
    k <- tally() - k0
    rownames(k) <- c("session", if (!is.null(cl)) paste("node", seq_along(cl)))
    say("  per process: %s (wall %.1f s)\n",
        paste(sprintf("%s %s solves, %.1f s in the log-density, %.1f s CPU", rownames(k),
                      format(k[, "solves"], big.mark = ","), k[, "seconds"], k[, "cpu"]),
              collapse = "; "), t)
    print(fit)
    cc <- jkoflow:::fit_cost(fit)
    pd <- jkoflow:::posterior_draws(fit, "unconstrained")
    x <- exp(pd$x)                       # the constrained scale
    colnames(x) <- vars
    # the solves by phase: the training's batches (17 a point), the
    # monitor samples, the exact draws' proposals, and the rest: the start
    # (Laplace approximation, the search for modes, adaptive importance
    # sampling, the choice by ELBO)
    n_train <- 17 * cc$gradient_evals
    n_start <- ns - n_train - cc$value_evals - cc$proposals
    say("  %d worker%s: %.1f s wall (%.1f s by the fit); %s ODE solves in all (%.2f ms of wall per solve): the start %s, training %s, monitor %s, the exact draws' proposals %s; %d steps, %s Adam iterations of batch %d; exact draws: %d (%s), acceptance %.2f, min ESS %.0f   [%s]\n",
        workers, if (workers > 1) "s" else "", t, fit$elapsed, format(ns, big.mark = ","),
        1e3 * t / ns, format(n_start, big.mark = ","), format(n_train, big.mark = ","),
        format(cc$value_evals, big.mark = ","), format(cc$proposals, big.mark = ","),
        cc$steps, format(cc$iterations, big.mark = ","), cc$batch, pd$n, pd$method,
        mean(pd$acceptance, na.rm = TRUE), min(pd$ess), load_now())
    if (!is.null(fit$init$label)) say("  the start: %s\n", fit$init$label)
    v <- fit$verdict
    save_row(row_of(paste0("jko", workers), "jko_fit()", workers, t, x, min(pd$ess),
                    mean(pd$acceptance, na.rm = TRUE),
                    paste0(if (isTRUE(v$reached)) "reached" else "NOT reached", " (", v$reason, ")"),
                    sprintf("%s solves", format(ns, big.mark = ","))))
    saveRDS(fit$theta, file.path(out_dir, paste0("theta", workers, ".rds")))
    fit
  }
  if ("jko2" %in% methods) {
    cl2 <- makeCluster(2)
    run_jko(target_parallel(lvc, cl2), 2, cl2)
    stopCluster(cl2)
  }
  if ("jko1" %in% methods) {
    run_jko(lvc, 1)
  }
  th <- file.path(out_dir, paste0("theta", 1:2, ".rds"))
  if (all(file.exists(th))) {
    say("  the fits of 1 and 2 workers are the same fit (identical maps): %s\n",
        identical(readRDS(th[1]), readRDS(th[2])))
  }
  rows <- lapply(list.files(out_dir, "^(nuts|jko|ref).*\\.rds$", full.names = TRUE), readRDS)
  rows <- rows[!vapply(rows, function(r) is.null(r$method_id), TRUE)]
  rows <- rows[order(match(vapply(rows, `[[`, "", "method_id"), c("jko1", "jko2", sort(grep("^nuts", vapply(rows, `[[`, "", "method_id"), value = TRUE)), "ref_half")))]
  tab <- data.frame(
    method = vapply(rows, `[[`, "", "method"),
    workers = vapply(rows, function(r) if (is.na(r$workers)) "" else as.character(r$workers), ""),
    seconds = vapply(rows, function(r) if (is.na(r$seconds)) "" else sprintf("%.1f", r$seconds), ""),
    `mean err (sd)` = vapply(rows, function(r) sprintf("%.3f", r$mean_err), ""),
    `sd err (%)` = vapply(rows, function(r) sprintf("%.1f", r$sd_err), ""),
    `min ESS` = vapply(rows, function(r) sprintf("%.0f", r$ess), ""),
    accept = vapply(rows, function(r) if (is.na(r$accept)) "" else sprintf("%.2f", r$accept), ""),
    verdict = vapply(rows, `[[`, "", "verdict"),
    cost = vapply(rows, `[[`, "", "extra"),
    load = vapply(rows, function(r) sub("load ", "", r$load), ""),
    check.names = FALSE)
  say("== the table (the rows kept under %s, from this call and earlier ones; errors: worst over the 8 parameters on the constrained scale, against posteriordb's 10,000 reference draws; mean error in reference sds, sd error in %% of the reference sd; min ESS: bulk, over the 8; the load at the end of each run) ==\n",
      out_dir)
  op <- options(width = 250)
  print(tab, row.names = FALSE, right = FALSE)
  options(op)
}
