# How often one run meets the accuracy aims of issue 26 (means within 0.05
# reference sds, sds within 3%), and how much of a run's error is bias: each
# posterior of posteriors.R's battery fitted by jko_fit(target) with its
# defaults under several seeds, beside rstan's NUTS (4 chains, defaults) on
# the same Stan program under the same seeds.
#
#   Rscript inst/bench/accuracy_seeds.R [--names=a,b,... | battery] [--seeds=12]
#                                       [--no-nuts] [--out=file.rds] [--threads=2]
#
# Run s of a model runs after set.seed(s) (jkoflow) and with seed = s
# (NUTS). Errors are on Stan's unconstrained scale, against the battery's
# references (posterior_battery("quadrature"), as vs_nuts.R): for each run
# and coordinate the signed mean error (mean - ref) / ref sd and the signed
# sd error sd / ref sd - 1, of the run's 4000 draws.
#
# Per model and method, printed:
#   runs, reached (jkoflow's verdict "reached"),
#   within: the share of runs (jkoflow: of the reached runs) whose worst
#     coordinate is within both aims,
#   mean_max / sd_max: the median over runs of the worst coordinate's
#     |error| (the figure vs_nuts.R prints for one run), and its largest;
#   sd_spread: the largest over coordinates of the sd across runs of the
#     signed sd error (the run-to-run noise of the worst coordinate);
#   sd_bias, mean_bias: the coordinate whose mean signed error over runs is
#     largest, that mean, and its standard error (spread / sqrt(runs)): a
#     bias is an error that more draws would not remove.

local({
  f <- sub("^--file=", "", grep("^--file=", commandArgs(FALSE), value = TRUE))
  source(file.path(if (length(f)) dirname(f) else "inst/bench", "common.R"))
})
bench_source("posteriors-targets.R", "stan-programs.R")

args <- bench_args()
opt <- function(name, default) bench_opt(name, default, args)
seeds <- seq_len(as.integer(opt("seeds", "12")))
threads <- as.integer(opt("threads", "2"))
nuts <- !("--no-nuts" %in% args)
out_file <- opt("out", NA)
options(width = 200, jkoflow.threads = threads, warn = 1)
`%||%` <- function(a, b) if (is.null(a)) b else a

battery <- posterior_battery("quadrature")
sel <- opt("names", "battery")
sel <- if (sel == "battery") names(battery) else strsplit(sel, ",")[[1L]]
bad <- setdiff(sel, names(battery))
if (length(bad)) stop("unknown model(s): ", paste(bad, collapse = ", "))
if (nuts) {
  suppressPackageStartupMessages(library(rstan))
  programs <- stan_programs(battery)
}

quiet <- bench_quiet
meets_aims <- function(e) max(abs(e$mean)) <= 0.05 && max(abs(e$sd)) <= 0.03

runs <- list()
for (nm in sel) {
  ref <- battery[[nm]]
  if (nuts) {
    sm <- stan_model_cached(programs[[nm]]$code, nm)
    data <- programs[[nm]]$data(ref)
  }
  for (s in seeds) {
    set.seed(s)
    t0 <- proc.time()[["elapsed"]]
    tg <- target_logdensity(ref$logd, ref$grad, dim = ref$dim)
    fit <- quiet(jko_fit(tg, verbose = FALSE))
    secs <- proc.time()[["elapsed"]] - t0
    e <- bench_errors(jkoflow:::posterior_draws(fit, "unconstrained")$x, ref)
    runs[[length(runs) + 1L]] <- list(model = nm, method = "jkoflow", seed = s, seconds = secs,
                                      verdict = fit$verdict$reason, err = e)
    if (nuts) {
      t0 <- proc.time()[["elapsed"]]
      sf <- quiet(rstan::sampling(sm, data = data, chains = 4, cores = min(threads, 4L),
                                  seed = s, refresh = 0))
      secs <- proc.time()[["elapsed"]] - t0
      e <- bench_errors(stan_unconstrained_draws(sf), ref)
      runs[[length(runs) + 1L]] <- list(model = nm, method = "NUTS", seed = s, seconds = secs,
                                        verdict = NA_character_, err = e)
    }
  }
  cat(sprintf("%s done (load %.2f)\n", nm, as.numeric(strsplit(readLines("/proc/loadavg"), " ")[[1L]][1L])))
}

summarise <- function(rs) {
  M <- do.call(rbind, lapply(rs, function(r) r$err$mean))
  S <- do.call(rbind, lapply(rs, function(r) r$err$sd))
  counted <- if (rs[[1L]]$method == "jkoflow") vapply(rs, function(r) identical(r$verdict, "reached"), NA)
             else rep(TRUE, length(rs))
  ok <- vapply(rs, function(r) meets_aims(r$err), NA)
  n <- nrow(S)
  sb <- colMeans(S)
  mb <- colMeans(M)
  js <- which.max(abs(sb))
  jm <- which.max(abs(mb))
  data.frame(model = rs[[1L]]$model, method = rs[[1L]]$method, runs = n,
             reached = if (rs[[1L]]$method == "jkoflow") sum(counted) else NA_integer_,
             within = if (any(counted)) mean(ok[counted]) else NA_real_,
             seconds = stats::median(vapply(rs, `[[`, 0, "seconds")),
             mean_max = stats::median(apply(abs(M), 1L, max)), mean_max_hi = max(abs(M)),
             sd_max = stats::median(apply(abs(S), 1L, max)), sd_max_hi = max(abs(S)),
             sd_spread = max(apply(S, 2L, stats::sd)),
             sd_bias_at = names(sb)[js] %||% as.character(js), sd_bias = sb[[js]],
             sd_bias_se = stats::sd(S[, js]) / sqrt(n),
             mean_bias_at = names(mb)[jm] %||% as.character(jm), mean_bias = mb[[jm]],
             mean_bias_se = stats::sd(M[, jm]) / sqrt(n), row.names = NULL)
}
key <- vapply(runs, function(r) paste(r$model, r$method), "")
tab <- do.call(rbind, lapply(split(runs, factor(key, unique(key))), summarise))
num <- vapply(tab, is.numeric, NA)
shown <- tab
shown[num] <- lapply(shown[num], signif, 3)
print(shown, row.names = FALSE)
if (!is.na(out_file)) {
  saveRDS(list(table = tab, runs = runs, seeds = seeds, threads = threads,
               version = as.character(utils::packageVersion("jkoflow")), date = Sys.time()),
          out_file)
}
