# jkoflow against rstan's NUTS, side by side in one run, on every posterior
# of posteriors.R's battery (R log-densities with their analytic gradients)
# and of stan.R's Stan programs (target_stan()), with the aims of issue 26.
#
#   Rscript inst/bench/vs_nuts.R [--names=a,b,... | all | battery | stan] [--seed=1]
#                                [--reps=1] [--out=file.rds] [--threads=2] [--cores=2]
#
# Names are the battery's (conjugate_normal, poisson_gamma_log,
# gaussian_illcond, funnel, banana, pima_logistic, eight_schools_nc,
# kidiq_momiq, arK, garch11) and "stan:" with a program of stan.R
# (stan:kidiq_momiq, stan:eight_schools_nc, stan:arK, stan:pima_logistic).
# Repetition r of model i runs after set.seed(seed + 100 (r - 1) + i); the
# printed table holds the medians over the repetitions (verdicts counted).
#
# jkoflow: jko_fit(target) with its defaults (--threads threads), whose fit
# keeps 4000 exact draws (jko_sample(fit, 4000) for a version without
# them), then jko_evidence(fit). Its seconds to 4000 draws
# are the target's set-up (target_logdensity(), or target_stan() on the
# compiled model) + the fit + the 4000 draws; jko_evidence() is timed apart
# (ev_s). Gradient evaluations are the points (rows) given to the target's
# gradient: for an R target, to the `grad` function handed to
# target_logdensity() (wrapped in a counter here); for a Stan target, to the
# target's value_gradient()/gradient() functions (the potential protocol;
# NA if a later version has none). Value-only points are counted beside
# (an R target's value is called at the training points too). Both are
# counted up to the 4000 draws (jko_evidence()'s own calls left out).
# Only jko_fit(target), jko_sample(fit, n), jko_evidence(fit) and
# fit$verdict are relied on; every other field read is guarded.
#
# NUTS: rstan::sampling() with its defaults (4 chains of 1000 warm-up + 1000
# draws, --cores cores, refresh off) on a Stan program computing the same
# log-density on the same unconstrained scale (stan-programs.R; each program
# is checked against the R log-density at 20 points first, and must agree
# to 1e-6 constants included). Compiling is excluded for both (models are
# compiled once and cached: JKOFLOW_STAN_CACHE). Its seconds are those of
# sampling() (wall; CPU includes the chains' child processes); its gradient
# evaluations the sum of n_leapfrog__ over warm-up and sampling
# (get_sampler_params()). For stan:NAME and NAME the program is the same,
# and one NUTS run per repetition serves both rows.
#
# Accuracy, on Stan's unconstrained scale (for a Stan target, jkoflow's
# draws as jko_sample() returns them unconstrained; NUTS's draws
# unconstrained by rstan::unconstrain_pars()), against the battery's
# references (posterior_battery("quadrature")): mean_err = the worst
# |mean - ref| / ref sd and sd_err = the worst |sd / ref sd - 1| over the
# coordinates, of the 4000 draws of each.
#
# log Z: the reference is the closed form where the battery has one
# (ref = "closed"), else bridgesampling::bridge_sampler() on the NUTS fit
# (ref = "bridge"); bridge_sampler() runs on every model (bridge_s, its
# seconds; bridge_err, its error against a closed form). logZ_err =
# jko_evidence()'s log Z - the reference.
#
# Columns: D; jko_s and jko_cpu (seconds to 4000 draws), nuts_s and
# nuts_cpu, ratio = jko_s / nuts_s; jko_grad and jko_value (points), nuts_grad
# (leapfrogs); mean and sd errors of each; the verdict (reason; with reps,
# the count of each), KL, k-hat and importance ESS (relative) of
# fit$verdict; the draws' own ESS or acceptance where jko_sample() reports
# one; NUTS's divergences (after warm-up) and smallest bulk ESS; the log Z
# columns. The load (/proc/loadavg) is printed with every model, and the
# OpenMP wait policy in the header (on a busy machine libgomp's spinning
# threads slow jkoflow's training several-fold; see profile.R).

local({
  f <- sub("^--file=", "", grep("^--file=", commandArgs(FALSE), value = TRUE))
  source(file.path(if (length(f)) dirname(f) else "inst/bench", "common.R"))
})
bench_source("posteriors-targets.R", "stan-programs.R")
suppressPackageStartupMessages({
  library(rstan)
  library(bridgesampling)
})

args <- bench_args()
opt <- function(name, default) bench_opt(name, default, args)
seed <- as.integer(opt("seed", "1"))
reps <- as.integer(opt("reps", "1"))
threads <- as.integer(opt("threads", "2"))
cores <- as.integer(opt("cores", "2"))
out_file <- opt("out", NA)
options(width = 250, jkoflow.threads = threads, warn = 1)
`%||%` <- function(a, b) if (is.null(a)) b else a

battery <- posterior_battery("quadrature")
programs <- stan_programs(battery)
stan_names <- c("kidiq_momiq", "eight_schools_nc", "arK", "pima_logistic")   # stan.R's
all_names <- c(names(battery), paste0("stan:", stan_names))
sel <- opt("names", "all")
sel <- switch(sel, all = all_names, battery = names(battery),
              stan = paste0("stan:", stan_names), strsplit(sel, ",")[[1L]])
bad <- setdiff(sel, all_names)
if (length(bad)) stop("unknown model(s): ", paste(bad, collapse = ", "))

loadavg <- function() as.numeric(strsplit(readLines("/proc/loadavg"), " ")[[1L]][1L])
# wall, own CPU, children's CPU
clock <- function() {
  t <- proc.time()
  c(wall = t[[3L]], cpu = t[[1L]] + t[[2L]], child = sum(t[4:5], na.rm = TRUE))
}
quiet <- bench_quiet
accuracy <- function(u, ref) {
  u <- as.matrix(u)
  if (!is.numeric(u) || ncol(u) != ref$dim) return(c(mean = NA, sd = NA))
  e <- bench_errors(u, ref)
  c(mean = max(abs(e$mean)), sd = max(abs(e$sd)))
}

# The compiled programs (cache), each checked against the R log-density.
progs_needed <- unique(sub("^stan:", "", sel))
models <- list()
for (b in progs_needed) {
  sm <- stan_model_cached(programs[[b]]$code, b)
  chk <- stan_program_check(sm, programs[[b]], battery[[b]])
  if (!(chk[["max_rel"]] < 1e-10)) {
    stop(b, ": the Stan program's log_prob differs from the R log-density by up to ",
         signif(chk[["max_abs"]], 3), " (relative ", signif(chk[["max_rel"]], 3), "; spread ", signif(chk[["spread"]], 3), ")")
  }
  models[[b]] <- list(sm = sm, data = programs[[b]]$data(battery[[b]]),
                      compile_s = attr(sm, "compile_seconds"), check = chk)
}

# jkoflow from nothing to 4000 draws, then the evidence.
run_jko <- function(name, seed) {
  b <- sub("^stan:", "", name)
  ref <- battery[[b]]
  cnt <- new.env()
  cnt$grad <- 0
  cnt$value <- 0
  counted <- function(f, slot) {
    force(f)
    force(slot)
    function(x) {
      cnt[[slot]] <- cnt[[slot]] + (if (is.null(dim(x))) length(x) %/% ref$dim else nrow(x))
      f(x)
    }
  }
  set.seed(seed)
  t0 <- clock()
  tg <- if (startsWith(name, "stan:")) {
    tg <- quiet(target_stan(models[[b]]$sm, data = models[[b]]$data))
    # count at the target's own functions (the potential protocol), if any
    has <- FALSE
    for (fn in c("value_gradient", "gradient", "value")) {
      if (is.function(tryCatch(tg[[fn]], error = function(e) NULL))) {
        tg[[fn]] <- counted(tg[[fn]], if (fn == "value") "value" else "grad")
        has <- TRUE
      }
    }
    if (!has) cnt$grad <- cnt$value <- NA
    tg
  } else {
    quiet(target_logdensity(counted(ref$logd, "value"), counted(ref$grad, "grad"),
                            dim = ref$dim))
  }
  fit <- tryCatch(quiet(jko_fit(tg, verbose = FALSE)), error = function(e) e)
  if (inherits(fit, "error")) {
    message(name, ": jko_fit failed: ", conditionMessage(fit))
    return(list(error = conditionMessage(fit), seconds = (clock() - t0)[["wall"]]))
  }
  # a stationary fit keeps its 4000 exact draws (posterior_draws()); an
  # older version's fit is sampled
  pd <- tryCatch(jkoflow:::posterior_draws(fit, "unconstrained"), error = function(e) NULL)
  s <- if (!is.null(pd) && pd$n >= 4000) list(x = pd$x, ess = min(pd$ess), acceptance = pd$acceptance)
       else quiet(jko_sample(fit, 4000))
  t1 <- clock()
  points <- c(grad = cnt$grad, value = cnt$value)   # before the evidence
  # the draws on the unconstrained scale
  u <- tryCatch(s$unconstrained %||% s$x %||% as.matrix(s), error = function(e) NULL)
  ev <- tryCatch({
    e0 <- clock()
    ev <- quiet(jko_evidence(fit))
    list(log_z = ev$log_z %||% NA_real_, seconds = (clock() - e0)[["wall"]])
  }, error = function(e) list(log_z = NA_real_, seconds = NA_real_))
  v <- tryCatch(fit$verdict, error = function(e) NULL) %||% list()
  acc <- if (is.null(u)) c(mean = NA, sd = NA) else accuracy(u, ref)
  num <- function(x) if (is.numeric(x) && length(x) == 1L) x else NA_real_
  list(seconds = (t1 - t0)[["wall"]], cpu = (t1 - t0)[["cpu"]],
       grad = points[["grad"]], value = points[["value"]], mean_err = acc[["mean"]], sd_err = acc[["sd"]],
       verdict = as.character(v$reason %||% NA), kl = num(v$kl), khat = num(v$pareto_k),
       ess = num(v$ess), draws_ess = num(tryCatch(s$ess, error = function(e) NULL)),
       accept = num(tryCatch(s$acceptance %||% s$accept_rate, error = function(e) NULL)),
       log_z = ev$log_z, ev_s = ev$seconds)
}

# NUTS on the program, and bridge sampling on its fit.
run_nuts <- function(b, seed) {
  ref <- battery[[b]]
  m <- models[[b]]
  t0 <- clock()
  sf <- quiet(rstan::sampling(m$sm, data = m$data, chains = 4, cores = cores, seed = seed,
                              refresh = 0))
  t1 <- clock()
  sp <- rstan::get_sampler_params(sf, inc_warmup = TRUE)
  warm <- sf@stan_args[[1L]]$warmup
  leap <- sum(vapply(sp, function(p) sum(p[, "n_leapfrog__"]), 0))
  div <- sum(vapply(sp, function(p) sum(p[-seq_len(warm), "divergent__"]), 0))
  u <- stan_unconstrained_draws(sf)
  acc <- accuracy(u, ref)
  arr <- rstan::extract(sf, permuted = FALSE)
  arr <- arr[, , dimnames(arr)[[3L]] != "lp__", drop = FALSE]
  ess <- min(apply(arr, 3L, posterior::ess_bulk))
  b0 <- clock()
  bs <- tryCatch(quiet(bridgesampling::bridge_sampler(sf, silent = TRUE)),
                 error = function(e) NULL)
  b1 <- clock()
  list(seconds = (t1 - t0)[["wall"]], cpu = (t1 - t0)[["cpu"]] + (t1 - t0)[["child"]],
       grad = leap, divergent = div, ess_bulk_min = ess, mean_err = acc[["mean"]],
       sd_err = acc[["sd"]], bridge = if (is.null(bs)) NA_real_ else bs$logml,
       bridge_s = (b1 - b0)[["wall"]])
}

one_row <- function(name, j, n) {
  b <- sub("^stan:", "", name)
  ref <- battery[[b]]
  closed <- is.finite(ref$log_z)
  lz_ref <- if (closed) ref$log_z else n$bridge
  data.frame(
    model = name, D = ref$dim, jko_s = j$seconds, jko_cpu = j$cpu %||% NA,
    nuts_s = n$seconds, nuts_cpu = n$cpu, ratio = j$seconds / n$seconds,
    jko_grad = j$grad %||% NA, jko_value = j$value %||% NA, nuts_grad = n$grad,
    jko_mean = j$mean_err %||% NA, jko_sd = j$sd_err %||% NA,
    nuts_mean = n$mean_err, nuts_sd = n$sd_err,
    verdict = j$verdict %||% "error", KL = j$kl %||% NA, khat = j$khat %||% NA,
    ESS = j$ess %||% NA, draws_ess = j$draws_ess %||% NA, accept = j$accept %||% NA,
    nuts_div = n$divergent, nuts_ess = n$ess_bulk_min,
    ref = if (closed) "closed" else "bridge", logZ_ref = lz_ref,
    logZ_err = (j$log_z %||% NA) - lz_ref,
    bridge_err = if (closed) n$bridge - ref$log_z else NA_real_,
    ev_s = j$ev_s %||% NA, bridge_s = n$bridge_s, nuts_bridge_s = n$seconds + n$bridge_s,
    stringsAsFactors = FALSE)
}

cat(sprintf("jkoflow %s, rstan %s, bridgesampling %s; %d threads (jkoflow; OMP_WAIT_POLICY=%s), %d cores (NUTS); seed %d, %d rep(s); %s; load %s\n",
            utils::packageVersion("jkoflow"), utils::packageVersion("rstan"),
            utils::packageVersion("bridgesampling"), threads, Sys.getenv("OMP_WAIT_POLICY", "unset"),
            cores, seed, reps,
            format(Sys.time(), "%Y-%m-%d %H:%M"), paste(readLines("/proc/loadavg"), collapse = "")))
rows <- list()
for (r in seq_len(reps)) {
  nuts_done <- list()
  for (i in seq_along(sel)) {
    name <- sel[i]
    b <- sub("^stan:", "", name)
    s <- seed + 100L * (r - 1L) + i
    l0 <- loadavg()
    j <- run_jko(name, s)
    if (is.null(nuts_done[[b]])) nuts_done[[b]] <- run_nuts(b, s)
    row <- one_row(name, j, nuts_done[[b]])
    row$rep <- r
    row$load <- mean(c(l0, loadavg()))
    rows[[length(rows) + 1L]] <- row
    print(format(row, digits = 3), row.names = FALSE)
  }
}
all_rows <- do.call(rbind, rows)

# medians over the repetitions (verdicts counted)
num_cols <- setdiff(names(all_rows)[vapply(all_rows, is.numeric, TRUE)], c("rep", "D"))
tab <- do.call(rbind, lapply(split(all_rows, factor(all_rows$model, levels = sel)), function(d) {
  out <- d[1L, c("model", "D", "ref")]
  for (cn in num_cols) out[[cn]] <- stats::median(d[[cn]], na.rm = TRUE)
  vt <- table(d$verdict)
  out$verdict <- if (nrow(d) == 1L) d$verdict
                 else if (length(vt) == 1L) sprintf("%s x%d", names(vt), nrow(d))
                 else paste(sprintf("%s %d", names(vt), vt), collapse = ", ")
  out
}))
tab <- tab[, c("model", "D", "jko_s", "jko_cpu", "nuts_s", "nuts_cpu", "ratio", "jko_grad",
               "jko_value", "nuts_grad", "jko_mean", "jko_sd", "nuts_mean", "nuts_sd",
               "verdict", "KL", "khat", "ESS", "draws_ess", "accept", "nuts_div", "nuts_ess",
               "ref", "logZ_ref", "logZ_err", "bridge_err", "ev_s", "bridge_s",
               "nuts_bridge_s", "load")]
cat(sprintf("\n%s; %d threads / %d cores; seed %d; %s over %d rep(s); load at the end %s\n",
            format(Sys.time(), "%Y-%m-%d %H:%M"), threads, cores, seed,
            if (reps > 1L) "medians" else "one run", reps,
            paste(readLines("/proc/loadavg"), collapse = "")))
print(format(tab, digits = 3), row.names = FALSE)
reached <- grepl("^reached", tab$verdict)
cat(sprintf(paste0("\nmedian seconds to 4000 draws: jkoflow %.1f, NUTS %.1f (median ratio %.2f); ",
                   "models over 3x NUTS: %d of %d\n"),
            stats::median(tab$jko_s), stats::median(tab$nuts_s), stats::median(tab$ratio),
            sum(tab$ratio > 3, na.rm = TRUE), nrow(tab)))
cat(sprintf("gradient evaluations, median: jkoflow %.3g, NUTS %.3g\n",
            stats::median(tab$jko_grad, na.rm = TRUE), stats::median(tab$nuts_grad)))
cat(sprintf("reached: %d of %d; of these within 0.05 sd (means) and 3%% (sds): %d\n",
            sum(reached), nrow(tab),
            sum(reached & tab$jko_mean <= 0.05 & tab$jko_sd <= 0.03, na.rm = TRUE)))
cat(sprintf("|log Z error| <= 0.05: %d of %d; jkoflow (draws + evidence) faster than NUTS + bridge_sampler(): %d of %d\n",
            sum(abs(tab$logZ_err) <= 0.05, na.rm = TRUE), sum(is.finite(tab$logZ_err)),
            sum(tab$jko_s + tab$ev_s < tab$nuts_bridge_s, na.rm = TRUE), nrow(tab)))
if (!is.na(out_file)) {
  saveRDS(list(table = tab, runs = all_rows, seed = seed, reps = reps, threads = threads,
               cores = cores, checks = lapply(models, `[[`, "check"),
               version = as.character(utils::packageVersion("jkoflow")), date = Sys.time()),
          out_file)
  cat("saved to", out_file, "\n")
}
