# Where the seconds of a posterior fit go: every posterior of
# posteriors.R's battery (R log-densities with their analytic gradients)
# and of stan.R's Stan programs (target_stan(), one rstan call per point),
# fitted by jko_fit(target) with its defaults (2 threads), each cut into
# phases, with counts.
#
#   Rscript inst/bench/profile.R [names | all | battery | stan] [seed] [--out=file.rds]
#                                [--threads=2] [--no-steps]
#
# Names are the battery's (conjugate_normal, ..., garch11) and, for the
# Stan programs, "stan:" and the program's name (stan:kidiq_momiq,
# stan:eight_schools_nc, stan:arK, stan:pima_logistic); comma-separated.
# Model i (in that order) is fitted after set.seed(seed + i). Stan programs
# are compiled once and cached (stan-programs.R: JKOFLOW_STAN_CACHE).
#
# Phases (shares of the fit's seconds, wall and CPU; the measurement is in
# profile-hooks.R, which wraps the package's functions in timers in this
# process only -- nothing in R/ or src/ is changed):
#   a net_train   the network's forward pass, Hessian, backward pass and
#                 Adam over the training iterations (C, 2 threads), target
#                 evaluations excluded: each C_jko_step's time up to the end
#                 of its last training batch's target call, less the target
#                 calls, plus the last iteration's backward (half the median
#                 gap between two target calls). Includes the step's set-up
#                 (moments, standardising the pool) and C's copies of the
#                 batch into R.
#   b target_train  the target at the training batches: every call of
#                 potential_eval_r with iter > 0 (the package's checks plus
#                 the target's own functions). Split into "closure" (the
#                 target's value/gradient/value_gradient) and "checks" (the
#                 rest of potential_eval_r). For Stan targets the closure is
#                 split again into "rstan" = gradient points x the seconds of
#                 one grad_log_prob() call of the model instance timed in a
#                 tight R loop at the fit's monitor points, and "R per point"
#                 = the rest (the package's per-row loop, vapply, c(), the
#                 tryCatch); "Rcpp floor" is the cost of an empty call into
#                 the same Rcpp module (num_pars_unconstrained()), the part
#                 of the rstan figure that is not the model's gradient. The
#                 per-point costs are medians of 3 loops of >= 0.2 s over up
#                 to 2000 monitor points, in wall seconds for the wall table
#                 and CPU seconds for the CPU table (on a loaded machine the
#                 CPU split is the reliable one).
#   c pool_push   pushing the pool (2^17 points, forward only) through the
#   d mon_push    new map, and the monitor (2^14 points, forward + Hessian +
#                 exact log-determinant): together, each step's time between
#                 its last training target call (plus the backward, as in a)
#                 and the monitor's target call; split between c and d by
#                 the shares of a replay of the last step's map on pool- and
#                 monitor-sized sets (C_flow_push, median of 3) after the fit.
#   e target_mon  the target at the monitor samples: potential_eval_r with
#                 iter = -1 after each step, and the target at the monitor
#                 samples of rho_0 in jko_fit() (step 0).
#   f verdict     target_divergence() (KL, its se, ESS, moment gap) with
#                 pareto_khat() (loo::psis) inside, stop_reason(),
#                 target_reached(), target_verdict(), next_h(): the sum of
#                 their exclusive times.
#   g start       stationary_start(): init_laplace() (BFGS and a
#                 finite-difference Hessian of the gradient) and the ELBO
#                 comparison of the Laplace start and N(0, I) on 4096 draws
#                 each (target evaluations included, counted apart).
#   h else        the fit's seconds less a-g: R bookkeeping of each step
#                 (jko_step()'s own time: history rows, copies), the
#                 draws of the pool and the monitor from rho_0, C's return
#                 after the monitor, argument checks.
# Counts: steps, training iterations (batches sent to the target) per step,
# the batch size, and target points (rows sent to the target's functions)
# with a gradient in training, value-only at the monitor samples, and in the
# start (value / gradient); and in all, the rows given to the target's
# gradient (or value_gradient) and to its value function (an R log-density
# is called twice per training batch, value and gradient; a Stan target
# once, value_gradient).
#
# OpenMP's waiting threads spin (libgomp's default OMP_WAIT_POLICY): on a
# machine busy with other work, the spinning competes with the threads that
# work, and phase a (the only parallel one) then takes up to 3-4 times its
# quiet-machine seconds. The wait policy is printed in the header; run also
# with OMP_WAIT_POLICY=passive to see the split without that effect.
#
# The instrumentation costs two proc.time() reads per timed call (a few
# microseconds, a few calls per training iteration): well under 1% of a fit.
# Printed: per model the shares (wall, then CPU), the seconds, the counts,
# the splits of b, e, g and h, the per-step table (unless --no-steps), and
# the medians of the shares across models; with --out the whole result
# (per-key tables, per-step cuts, calibrations) is saved with saveRDS().

local({
  f <- sub("^--file=", "", grep("^--file=", commandArgs(FALSE), value = TRUE))
  source(file.path(if (length(f)) dirname(f) else "inst/bench", "common.R"))
})
bench_source("posteriors-targets.R", "stan-programs.R", "profile-hooks.R")

args <- bench_args()
opt <- function(name, default) bench_opt(name, default, args)
pos <- grep("^--", args, value = TRUE, invert = TRUE)
threads <- as.integer(opt("threads", "2"))
out_file <- opt("out", NA)
show_steps <- !"--no-steps" %in% args
seed <- if (length(pos) >= 2L) as.integer(pos[2L]) else 1L
options(width = 220, jkoflow.threads = threads, warn = 1)

battery <- posterior_battery("quadrature")
stan_names <- c("kidiq_momiq", "eight_schools_nc", "arK", "pima_logistic")   # stan.R's
all_names <- c(names(battery), paste0("stan:", stan_names))
sel <- if (length(pos) >= 1L && nzchar(pos[1L])) pos[1L] else "all"
sel <- switch(sel, all = all_names, battery = names(battery),
              stan = paste0("stan:", stan_names), strsplit(sel, ",")[[1L]])
bad <- setdiff(sel, all_names)
if (length(bad)) stop("unknown model(s): ", paste(bad, collapse = ", "),
                      "; known: ", paste(all_names, collapse = ", "))
if (any(startsWith(sel, "stan:"))) suppressPackageStartupMessages(library(rstan))

ph_install()
loadavg <- function() {
  as.numeric(strsplit(readLines("/proc/loadavg", warn = FALSE), " ")[[1L]][1:3])
}

# The target of model `name`, and the seconds to make it.
make_target <- function(name) {
  t0 <- .ph_now()
  if (startsWith(name, "stan:")) {
    b <- sub("^stan:", "", name)
    prog <- stan_programs(battery[b])[[b]]
    sm <- stan_model_cached(prog$code, b)
    t0 <- .ph_now()            # compile (or cache read) excluded
    tg <- suppressMessages(target_stan(sm, data = prog$data(battery[[b]])))
  } else {
    b <- battery[[name]]
    tg <- suppressMessages(target_logdensity(b$logd, b$grad, dim = b$dim))
  }
  list(target = tg, setup = .ph_now() - t0, ref = battery[[sub("^stan:", "", name)]])
}

# Seconds per point (wall and CPU; medians of 3 loops over the points x)
# of rstan's own calls in tight loops, of an empty call into the same Rcpp
# module, and of the package's wrappers on the whole of x.
stan_costs <- function(target, x) {
  tryCatch({
    inst <- target$fit@.MISC$stan_fit_instance
    glp <- inst$grad_log_prob
    lp <- inst$log_prob
    np <- inst$num_pars_unconstrained
    n <- nrow(x)
    per <- list(
      glp = ph_per_call(function(i) glp(x[i, ], TRUE), n),
      lp = ph_per_call(function(i) lp(x[i, ], TRUE, FALSE), n),
      rcpp_floor = ph_per_call(function(i) np(), n),
      wrapper_vg = ph_per_call(function(i) target$value_gradient(x), 1L) / n,
      wrapper_v = ph_per_call(function(i) target$value(x), 1L) / n)
    c(vapply(per, `[[`, 0, "wall"), stats::setNames(vapply(per, `[[`, 0, "cpu"),
                                                   paste0(names(per), "_cpu")))
  }, error = function(e) {
    message("rstan costs: ", conditionMessage(e))
    NULL
  })
}

phase_names <- c("a_net_train", "b_target_train", "c_pool_push", "d_mon_push",
                 "e_target_mon", "f_verdict", "g_start", "h_else")
verdict_keys <- c("target_divergence", "pareto_khat", "stop_reason", "target_reached",
                  "target_verdict", "next_h")

# Phase seconds (u = "w" wall or "c" CPU) from the key table, the per-step
# cuts and the push split.
phase_seconds <- function(tab, st, split, total, u) {
  g <- function(key, what) {
    v <- tab[tab$key == key, paste0(what, "_", u)]
    if (length(v)) v else 0
  }
  col <- function(nm) if (is.null(st)) NA_real_ else sum(st[[paste0(u, "_", nm)]])
  push <- col("push")
  sh <- if (is.null(split)) NA_real_ else
    split[[paste0("pool_", u)]] / (split[[paste0("pool_", u)]] + split[[paste0("mon_", u)]])
  p <- c(a_net_train = col("net"),
         b_target_train = g("eval:train", "incl"),
         c_pool_push = push * sh,
         d_mon_push = push * (1 - sh),
         e_target_mon = g("eval:monitor", "incl") + g("target:jko_fit", "incl"),
         f_verdict = sum(vapply(verdict_keys, function(k) g(k, "excl"), 0)),
         g_start = g("stationary_start", "incl"))
  if (is.na(sh)) p[c("c_pool_push", "d_mon_push")] <- c(push, 0)
  c(p, h_else = total - sum(p, na.rm = TRUE))
  # sub-splits
}

sub_splits <- function(tab, st, total, u, costs, counts) {
  g <- function(key, what) {
    v <- tab[tab$key == key, paste0(what, "_", u)]
    if (length(v)) v else 0
  }
  out <- c(b_closure = g("target:eval:train", "incl"), b_checks = g("eval:train", "excl"),
           e_closure = g("target:eval:monitor", "incl") + g("target:jko_fit", "incl"),
           e_checks = g("eval:monitor", "excl"),
           g_laplace = g("init_laplace", "incl"),
           g_target = g("target:init_laplace", "incl") + g("target:stationary_start", "incl"),
           h_step_R = g("jko_step", "excl"),
           h_C_post = if (is.null(st)) NA_real_ else sum(st[[paste0(u, "_post")]]),
           h_other_C = sum(tab[startsWith(tab$key, "C:") & tab$key != "C:C_jko_step",
                               paste0("incl_", u)]))
  if (!is.null(costs)) {
    sfx <- if (u == "w") "" else "_cpu"
    out["b_rstan"] <- counts[["train_points"]] * costs[[paste0("glp", sfx)]]
    out["b_rcpp_floor"] <- counts[["train_points"]] * costs[[paste0("rcpp_floor", sfx)]]
    out["b_R_per_point"] <- out[["b_closure"]] - out[["b_rstan"]]
    out["e_rstan"] <- counts[["monitor_points"]] * costs[[paste0("lp", sfx)]]
  }
  out
}

point_counts <- function(tab, st) {
  r <- function(key, what = c("value_rows", "grad_rows")) {
    v <- tab[tab$key == key, what, drop = FALSE]
    if (nrow(v)) sum(v) else 0
  }
  tk <- tab$key[startsWith(tab$key, "target:")]
  c(steps = if (is.null(st)) NA else nrow(st),
    iters = if (is.null(st)) NA else sum(st$batches),
    iters_median = if (is.null(st)) NA else stats::median(st$batches),
    train_points = r("eval:train"),
    monitor_points = r("eval:monitor") + r("target:jko_fit"),
    start_value_points = r("target:init_laplace", "value_rows") +
      r("target:stationary_start", "value_rows"),
    start_grad_points = r("target:init_laplace", "grad_rows") +
      r("target:stationary_start", "grad_rows"),
    grad_points = sum(vapply(tk, function(k) r(k, "grad_rows"), 0)),
    value_points = sum(vapply(tk, function(k) r(k, "value_rows"), 0)))
}

run_one <- function(name, seed) {
  set.seed(seed)
  mk <- make_target(name)
  tg <- ph_wrap_target(mk$target)
  ph_reset()
  load0 <- loadavg()
  t0 <- .ph_now()
  fit <- tryCatch(withCallingHandlers(jko_fit(tg, verbose = FALSE),
                                      warning = function(w) invokeRestart("muffleWarning")),
                  error = function(e) e)
  total <- .ph_now() - t0
  load1 <- loadavg()
  if (inherits(fit, "error")) {
    message(name, ": ", conditionMessage(fit))
    return(NULL)
  }
  tab <- ph_table()
  st <- ph_steps()
  split <- ph_push_split(fit, threads)
  counts <- point_counts(tab, st)
  costs <- NULL
  if (startsWith(name, "stan:")) {
    x <- t(fit$monitor$points)
    x <- x[seq_len(min(2000L, nrow(x))), , drop = FALSE]
    costs <- stan_costs(mk$target, x)
  }
  sec_w <- phase_seconds(tab, st, split, total[1L], "w")
  sec_c <- phase_seconds(tab, st, split, total[2L], "c")
  v <- tryCatch(fit$verdict, error = function(e) NULL)
  hist <- tryCatch(fit$history, error = function(e) NULL)
  steps_tab <- NULL
  if (!is.null(st) && !is.null(hist) && nrow(hist) == nrow(st) + 1L) {
    steps_tab <- data.frame(model = name, step = seq_len(nrow(st)), h = hist$h[-1L],
                            iters = st$batches, kl_before = hist$kl[-nrow(hist)],
                            kl = hist$kl[-1L], khat = hist$pareto_k[-1L],
                            secs = hist$seconds[-1L], net = st$w_net, push = st$w_push,
                            target_train = st$w_train_eval, target_mon = st$w_mon_eval)
  }
  list(model = name, D = mk$target$dim, setup = mk$setup, total = total,
       load = c(before = load0[1L], after = load1[1L]), wall = sec_w, cpu = sec_c,
       sub_w = sub_splits(tab, st, total[1L], "w", costs, counts),
       sub_c = sub_splits(tab, st, total[2L], "c", costs, counts),
       counts = counts, batch = tryCatch(fit$settings$batch, error = function(e) NA),
       pool = tryCatch(fit$settings$pool, error = function(e) NA),
       monitor = tryCatch(ncol(fit$monitor$points), error = function(e) NA),
       verdict = if (is.null(v)) NA else v$reason, kl = if (is.null(v)) NA else v$kl,
       costs = costs, split = split, keys = tab, steps = st, steps_tab = steps_tab)
}

cat(sprintf("profile of jko_fit(target) defaults; jkoflow %s, %s, %d threads (OMP_WAIT_POLICY=%s), seed %d; %s; load %s\n",
            utils::packageVersion("jkoflow"), R.version.string, threads,
            Sys.getenv("OMP_WAIT_POLICY", "unset"), seed,
            format(Sys.time(), "%Y-%m-%d %H:%M"), paste(loadavg(), collapse = " ")))
res <- list()
for (i in seq_along(sel)) {
  r <- run_one(sel[i], seed + i)
  if (is.null(r)) next
  res[[sel[i]]] <- r
  cat(sprintf("%-24s D %2d  fit %6.1f s (CPU %6.1f)  steps %d  iters %d  load %.2f -> %.2f  %s\n",
              r$model, r$D, r$total[1L], r$total[2L], r$counts[["steps"]],
              r$counts[["iters"]], r$load[1L], r$load[2L], r$verdict))
}
if (!length(res)) stop("no fit succeeded")

pct <- function(m) round(100 * m, 1)
share_tab <- function(which) {
  m <- t(vapply(res, function(r) r[[which]] / sum(r[[which]]), numeric(8)))
  colnames(m) <- phase_names
  m
}
sw <- share_tab("wall")
sc <- share_tab("cpu")
secs <- t(vapply(res, function(r) c(setup = r$setup[1L], fit = r$total[1L],
                                     cpu = r$total[2L], r$wall), numeric(11)))
cnt <- t(vapply(res, function(r) c(D = r$D, r$counts, batch = r$batch, pool = r$pool,
                                   monitor = r$monitor), numeric(13)))

cat("\nShares of the fit's wall seconds (%), per phase; medians across models last\n")
print(rbind(pct(sw), median = pct(apply(sw, 2L, stats::median))))
cat("\nShares of the fit's CPU seconds (%)\n")
print(rbind(pct(sc), median = pct(apply(sc, 2L, stats::median))))
cat("\nSeconds (wall): target set-up, fit, the fit's CPU seconds, and each phase\n")
print(round(rbind(secs, total = colSums(secs)), 2))
cat("\nCounts: training iterations (batches) in all and per step (median); target points\n")
print(cnt)
split_tab <- function(which) {
  m <- do.call(rbind, lapply(res, function(r) {
    s <- r[[which]]
    full <- c(b_closure = NA, b_checks = NA, b_rstan = NA, b_rcpp_floor = NA,
              b_R_per_point = NA, e_closure = NA, e_checks = NA, e_rstan = NA,
              g_laplace = NA, g_target = NA, h_step_R = NA, h_C_post = NA, h_other_C = NA)
    full[names(s)] <- s
    full
  }))
  rownames(m) <- names(res)
  m
}
subs <- split_tab("sub_w")
subs_c <- split_tab("sub_c")
cat("\nSplits (wall seconds): b = closure + checks (Stan: closure = rstan + R per point; the",
    "Rcpp floor is part of rstan), e = closure + checks, g's Laplace and target parts,",
    "h's step bookkeeping in R, C after the monitor, other .Calls\n")
print(round(subs, 2))
cat("\nThe same splits in CPU seconds\n")
print(round(subs_c, 2))
stan_rows <- Filter(function(r) !is.null(r$costs), res)
if (length(stan_rows)) {
  cat("\nrstan per point (microseconds, wall | CPU): the package's wrapper in training (closure /",
      "gradient points), the wrappers timed apart (value_gradient, value), grad_log_prob and",
      "log_prob in tight loops, an empty Rcpp module call\n")
  print(round(t(vapply(stan_rows, function(r) {
    1e6 * c(train_wrapper = r$sub_w[["b_closure"]] / r$counts[["train_points"]],
            r$costs[c("wrapper_vg", "wrapper_v", "glp", "lp", "rcpp_floor")],
            train_wrapper_cpu = r$sub_c[["b_closure"]] / r$counts[["train_points"]],
            r$costs[c("wrapper_vg_cpu", "wrapper_v_cpu", "glp_cpu", "lp_cpu",
                      "rcpp_floor_cpu")])
  }, numeric(12))), 1))
}
cat("\nPer training iteration (milliseconds, wall | CPU): the network, the target; and per",
    "step (seconds): the pushes, the monitor's target and the verdict; iterations in step 1",
    "and after, and the share of the training (network + target) spent in step 1\n")
per_it <- t(vapply(res, function(r) {
  it <- r$counts[["iters"]]
  K <- r$counts[["steps"]]
  st <- r$steps_tab
  first <- if (is.null(st)) NA else (st$net[1L] + st$target_train[1L]) /
    sum(st$net + st$target_train)
  c(net_ms = 1e3 * r$wall[["a_net_train"]] / it, target_ms = 1e3 * r$wall[["b_target_train"]] / it,
    net_ms_cpu = 1e3 * r$cpu[["a_net_train"]] / it,
    target_ms_cpu = 1e3 * r$cpu[["b_target_train"]] / it,
    push_s = (r$wall[["c_pool_push"]] + r$wall[["d_mon_push"]]) / K,
    mon_target_s = r$wall[["e_target_mon"]] / K, verdict_s = r$wall[["f_verdict"]] / K,
    iters_step1 = if (is.null(st)) NA else st$iters[1L],
    iters_after = if (is.null(st)) NA else sum(st$iters[-1L]),
    step1_share = first)
}, numeric(10)))
print(round(per_it, 3))
cat("\nPushes: the replay of the last map (seconds, wall and CPU; pool forward only, monitor",
    "with log-determinants) against the pushes measured in the last step\n")
print(round(t(vapply(res, function(r) {
  last <- if (is.null(r$steps)) c(NA, NA) else
    unlist(r$steps[nrow(r$steps), c("w_push", "c_push")])
  c(if (is.null(r$split)) rep(NA, 4) else r$split, last_step_w = last[[1L]],
    last_step_c = last[[2L]])
}, numeric(6))), 3))
if (show_steps) {
  st_all <- do.call(rbind, lapply(res, `[[`, "steps_tab"))
  if (!is.null(st_all)) {
    cat("\nPer step: h, training iterations, KL before and after, k-hat, seconds (history) and",
        "its wall cut (network, pushes, target in training, target at the monitor)\n")
    print(format(st_all, digits = 3), row.names = FALSE)
  }
}
cat(sprintf("\nfits: %.1f s wall, %.1f s CPU in all; load at the end %s\n",
            sum(secs[, "fit"]), sum(secs[, "cpu"]), paste(loadavg(), collapse = " ")))
if (!is.na(out_file)) {
  saveRDS(list(results = res, shares_wall = sw, shares_cpu = sc, seconds = secs, counts = cnt,
               splits = subs, splits_cpu = subs_c, per_iteration = per_it, seed = seed, threads = threads,
               version = as.character(utils::packageVersion("jkoflow")), date = Sys.time()),
          out_file)
  cat("saved to", out_file, "\n")
}
