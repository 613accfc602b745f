# Where the seconds of a posterior fit go now that a fit corrects its own
# draws (issue 26's "after"): every posterior of posteriors.R's battery and
# the Stan programs of stan-programs.R, fitted by jko_fit(target) with its
# defaults, cut into the phases of the new path by timers wrapped around
# the package's internal functions in this process only (nothing in R/ or
# src/ changes):
#   start     stationary_start(): the Laplace t, the mode search, the
#             adaptive importance sampling, the ELBO choice
#   steps     jko_run(): the JKO steps (training, pool and monitor pushes,
#             the monitor's target values), 0 where the start passed
#   proposals law_draw() inside the exact correction: the proposals pushed
#             through the maps with their log-determinants
#   target    proposal_log_weights(): the target at the proposals
#   modes     fit_modes(): the modes' weights for the verdict
#   other     the rest of jko_fit() (checks, the first monitor's target
#             values, chains, diagnostics, the verdict)
#
#   Rscript inst/bench/profile-after.R [names | all | battery | stan] [--reps=3]
#                                      [--out=file.rds]
#
# The printed table holds medians over the repetitions (repetition r of
# model i after set.seed(100 r + i)), seconds and shares of the fit's wall
# time; the load is printed beside each model.

local({
  f <- sub("^--file=", "", grep("^--file=", commandArgs(FALSE), value = TRUE))
  source(file.path(if (length(f)) dirname(f) else "inst/bench", "common.R"))
})
bench_source("posteriors-targets.R", "stan-programs.R")

args <- bench_args()
opt <- function(name, default) bench_opt(name, default, args)
reps <- as.integer(opt("reps", "3"))
out_file <- opt("out", NA)
sel <- setdiff(args, grep("^--", args, value = TRUE))
sel <- if (length(sel)) sel[1L] else "all"

battery <- posterior_battery("quadrature")
stan_names <- c("kidiq_momiq", "eight_schools_nc", "arK", "pima_logistic")
all_names <- c(names(battery), paste0("stan:", stan_names))
sel <- switch(sel, all = all_names, battery = names(battery),
              stan = paste0("stan:", stan_names), strsplit(sel, ",")[[1L]])

# timers around internal functions: seconds accumulate in `clock`
clock <- new.env()
ns <- asNamespace("jkoflow")
timed <- function(name, phase) {
  f <- get(name, envir = ns)
  g <- function(...) {
    t0 <- proc.time()[["elapsed"]]
    on.exit(clock[[phase]] <- (clock[[phase]] %||% 0) + proc.time()[["elapsed"]] - t0)
    f(...)
  }
  utils::assignInNamespace(name, g, ns)
}
`%||%` <- function(a, b) if (is.null(a)) b else a
timed("stationary_start", "start")
timed("jko_run", "steps")
timed("proposal_log_weights", "target")
timed("fit_modes", "modes")
# law_draw is called by the steps and the start too: counted as proposals
# only inside make_posterior_draws()
in_draws <- FALSE
ld <- get("law_draw", envir = ns)
utils::assignInNamespace("law_draw", function(...) {
  if (!in_draws) return(ld(...))
  t0 <- proc.time()[["elapsed"]]
  on.exit(clock$proposals <- (clock$proposals %||% 0) + proc.time()[["elapsed"]] - t0)
  ld(...)
}, ns)
mpd <- get("make_posterior_draws", envir = ns)
utils::assignInNamespace("make_posterior_draws", function(...) {
  in_draws <<- TRUE
  on.exit(in_draws <<- FALSE)
  mpd(...)
}, ns)

programs <- NULL
target_of <- function(name) {
  if (startsWith(name, "stan:")) {
    if (is.null(programs)) programs <<- stan_programs(battery)
    b <- sub("^stan:", "", name)
    sm <- stan_model_cached(programs[[b]]$code, b)
    suppressMessages(target_stan(sm, data = programs[[b]]$data(battery[[b]])))
  } else {
    b <- battery[[name]]
    suppressMessages(target_logdensity(b$logd, b$grad, dim = b$dim))
  }
}

# one untimed fit first: the packages the fit loads on first use (posterior,
# loo) are not a phase of any model
invisible(suppressWarnings(jko_fit(target_of(sel[1L]), verbose = FALSE)))
rows <- list()
for (r in seq_len(reps)) for (i in seq_along(sel)) {
  name <- sel[i]
  tg <- target_of(name)
  rm(list = ls(clock), envir = clock)
  set.seed(100 * r + i)
  t0 <- proc.time()[["elapsed"]]
  fit <- suppressWarnings(jko_fit(tg, verbose = FALSE))
  total <- proc.time()[["elapsed"]] - t0
  ph <- vapply(c("start", "steps", "proposals", "target", "modes"),
               function(p) clock[[p]] %||% 0, 0)
  rows[[length(rows) + 1L]] <- data.frame(
    model = name, rep = r, total = total, t(ph), other = total - sum(ph),
    steps_n = length(fit$theta), verdict = fit$verdict$reason,
    proposals_n = fit$draws$diagnostics$proposals %||% NA,
    load = as.numeric(strsplit(readLines("/proc/loadavg"), " ")[[1L]][1L]))
  message(sprintf("%-22s rep %d: %.2f s (%s)", name, r, total, fit$verdict$reason))
}
tab <- do.call(rbind, rows)
med <- do.call(rbind, lapply(split(tab, factor(tab$model, levels = sel)), function(d) {
  num <- c("total", "start", "steps", "proposals", "target", "modes", "other", "steps_n",
           "proposals_n", "load")
  out <- as.data.frame(lapply(d[num], stats::median))
  cbind(model = d$model[1L], out,
        verdict = paste(names(table(d$verdict)), table(d$verdict), collapse = ", "))
}))
share <- med
phases <- c("start", "steps", "proposals", "target", "modes", "other")
share[phases] <- round(100 * med[phases] / med$total, 1)
options(width = 200)
cat(sprintf("\nSeconds (medians of %d), jkoflow %s:\n", reps, utils::packageVersion("jkoflow")))
print(format(med, digits = 3), row.names = FALSE)
cat("\nShares of the fit's wall time, per cent:\n")
print(share[c("model", phases)], row.names = FALSE)
cat(sprintf("\nOver all models, share of the summed seconds: %s\n",
            paste(sprintf("%s %.0f%%", phases, 100 * colSums(med[phases]) / sum(med$total)),
                  collapse = ", ")))
if (!is.na(out_file)) saveRDS(list(runs = tab, medians = med), out_file)
