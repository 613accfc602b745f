# Posterior sampling from the defaults: every target of the battery
# (posteriors-targets.R: conjugate models, an ill-conditioned Gaussian,
# Neal's funnel, a banana, logistic regression on Pima, and posteriordb
# models with reference draws) run with jko_fit(target) and nothing else,
# a fresh seed each, R-closure log-densities (finite-difference gradients
# where the battery gives none), 2 threads.
#
#   Rscript inst/bench/posteriors.R [names, comma-separated | all] [seed] [fd]
#
# With `fd`, the battery's analytic gradients are dropped: every gradient is
# a central finite difference of the R log-density (2 D extra calls).
#
# Columns: D, seconds (the fit), steps, the verdict (reached or why not),
# KL(rho || pi) estimate and its se, Pareto k-hat, importance ESS, the
# worst |mean - reference| in reference sds and the worst |sd / reference
# - 1| over the coordinates (from 20000 draws), and log Z against the
# closed form where there is one.

local({
  f <- sub("^--file=", "", grep("^--file=", commandArgs(FALSE), value = TRUE))
  source(file.path(if (length(f)) dirname(f) else "inst/bench", "common.R"))
})
bench_source("posteriors-targets.R")

options(width = 200, jkoflow.threads = 2)
args <- bench_args()
battery <- posterior_battery()
if (length(args) >= 1L && nzchar(args[1]) && args[1] != "all") {
  battery <- battery[strsplit(args[1], ",")[[1]]]
}
seed <- if (length(args) >= 2L) as.integer(args[2]) else 1L
fd <- length(args) >= 3L && args[3] == "fd"

run_one <- function(tg, seed) {
  set.seed(seed)
  target <- suppressMessages(target_logdensity(tg$logd, if (fd) NULL else tg$grad,
                                               dim = tg$dim))
  t0 <- proc.time()[["elapsed"]]
  fit <- tryCatch(withCallingHandlers(jko_fit(target, verbose = FALSE),
                                      warning = function(w) invokeRestart("muffleWarning")),
                  error = function(e) e)
  secs <- proc.time()[["elapsed"]] - t0
  if (inherits(fit, "error")) {
    message(tg$name, ": ", conditionMessage(fit))
    return(data.frame(model = tg$name, D = tg$dim, seconds = secs, steps = NA,
                      verdict = "error", KL = NA, KL_se = NA, khat = NA, ESS = NA,
                      mean_err = NA, sd_err = NA, logZ_err = NA))
  }
  s <- jko_sample(fit, 20000)$x
  v <- fit$verdict
  lz <- if (is.finite(tg$log_z)) jko_evidence(fit, 20000)$log_z - tg$log_z else NA
  data.frame(model = tg$name, D = tg$dim, seconds = secs, steps = length(fit$theta),
             verdict = v$reason, KL = v$kl, KL_se = v$kl_se, khat = v$pareto_k,
             ESS = v$ess, mean_err = max(abs(colMeans(s) - tg$mean) / tg$sd),
             sd_err = max(abs(apply(s, 2L, stats::sd) / tg$sd - 1)), logZ_err = lz)
}

rows <- lapply(seq_along(battery), function(i) {
  r <- run_one(battery[[i]], seed + i)
  print(format(r, digits = 3), row.names = FALSE)
  r
})
tab <- do.call(rbind, rows)
cat(sprintf("\njkoflow %s; %s; 2 threads; seed %d; %s gradients\n",
            utils::packageVersion("jkoflow"), extSoftVersion()[["BLAS"]], seed,
            if (fd) "finite-difference" else "the battery's"))
print(format(tab, digits = 3), row.names = FALSE)
cat(sprintf("median seconds %.1f, max %.1f; aims met (means 0.1 sd, sds 10%%, k-hat < 0.7, ESS >= 30%%): %d of %d\n",
            stats::median(tab$seconds), max(tab$seconds),
            sum(tab$mean_err <= 0.1 & tab$sd_err <= 0.1 & tab$khat < 0.7 & tab$ESS >= 0.3,
                na.rm = TRUE), nrow(tab)))
invisible(tab)
