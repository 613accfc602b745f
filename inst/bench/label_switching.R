# A posterior whose labels switch: posteriordb's normal_2-normal_mixture
# (y_n ~ theta N(mu_1, 1) + (1 - theta) N(mu_2, 1), N = 1000, components
# near -10 and +10; D = 3), by jko_fit() defaults and by rstan's NUTS.
#
#   Rscript inst/bench/label_switching.R [--posteriordb=DIR] [--seeds=1,2,3]
#                                        [--out=file.rds]
#
# Swapping the labels (theta -> 1 - theta, mu_1 <-> mu_2) leaves the
# posterior as it is, so it has two modes of equal mass 20 apart, and a
# draw's labelling says nothing. NUTS's chains each stay in one labelling;
# jkoflow's mode search finds both, and its draws should hold each half the
# time. Both are judged after folding every draw into the labelling with
# mu_1 > mu_2 (where the two modes are this far apart, folding loses
# nothing), against a long NUTS run folded the same way (4 chains x 10 000
# draws after 2000 warm-up, seed 10001). Per seed: seconds (jkoflow:
# target_stan() + jko_fit(), its own 4000 exact draws; NUTS: sampling()
# alone, 4 chains of rstan's defaults, cores = 2; compiling outside both),
# the worst folded mean error in reference sds and sd error, and the share
# of draws with mu_1 > mu_2 (0.5 for the posterior).
#
# posteriordb is read at run time (--posteriordb, or the environment
# variable POSTERIORDB), as in heldout.R.

local({
  f <- sub("^--file=", "", grep("^--file=", commandArgs(FALSE), value = TRUE))
  source(file.path(if (length(f)) dirname(f) else "inst/bench", "common.R"))
})
bench_source("stan-programs.R")
suppressPackageStartupMessages(library(jkoflow))
options(width = 200)
args <- bench_args()
seeds <- as.integer(strsplit(bench_opt("seeds", "1,2,3", args), ",")[[1L]])
out_file <- bench_opt("out", NA, args)
pdb <- bench_opt("posteriordb", Sys.getenv("POSTERIORDB"), args)
if (dir.exists(file.path(pdb, "posterior_database"))) pdb <- file.path(pdb, "posterior_database")
if (!dir.exists(file.path(pdb, "models"))) {
  stop("no posteriordb: give --posteriordb=DIR or set POSTERIORDB", call. = FALSE)
}
code <- paste(readLines(file.path(pdb, "models", "stan", "normal_mixture.stan")), collapse = "\n")
con <- unz(file.path(pdb, "data", "data", "normal_2.json.zip"), "normal_2.json")
data <- jsonlite::fromJSON(paste(readLines(con, warn = FALSE), collapse = ""))
close(con)
if (jkoflow:::stan_parser_version() < "2.26") code <- jkoflow:::stan_rewrite_arrays(code)$code
sm <- stan_model_cached(code, "pdb-normal_2_normal_mixture")

vars <- c("theta", "mu[1]", "mu[2]")
fold <- function(x) {
  s <- x[, 2L] < x[, 3L]
  x[s, ] <- cbind(1 - x[s, 1L], x[s, 3L], x[s, 2L])
  x
}
quiet <- function(expr) {
  utils::capture.output(out <- suppressWarnings(suppressMessages(expr)))
  out
}
load_now <- function() {
  if (!file.exists("/proc/loadavg")) return(NA_real_)
  as.numeric(strsplit(readLines("/proc/loadavg"), " ")[[1L]][1L])
}
seconds <- function(expr) {
  t0 <- proc.time()[["elapsed"]]
  force(expr)
  proc.time()[["elapsed"]] - t0
}

ref <- fold(as.matrix(quiet(rstan::sampling(sm, data = data, chains = 4, cores = 2,
                                            warmup = 2000, iter = 12000, seed = 10001,
                                            refresh = 0)), pars = c("theta", "mu")))
colnames(ref) <- vars
ref_mean <- colMeans(ref)
ref_sd <- apply(ref, 2L, stats::sd)
judge <- function(x) {
  f <- fold(x)
  c(mean = max(abs(colMeans(f) - ref_mean) / ref_sd),
    sd = max(abs(apply(f, 2L, stats::sd) / ref_sd - 1)), share = mean(x[, 2L] > x[, 3L]))
}

rows <- lapply(seeds, function(seed) {
  set.seed(seed)
  fit <- NULL
  js <- seconds(fit <- quiet(jko_fit(quiet(target_stan(sm, data = data)))))
  e <- judge(jkoflow:::posterior_draws(fit)$x[, vars])
  sf <- NULL
  ns <- seconds(sf <- quiet(rstan::sampling(sm, data = data, chains = 4, cores = 2,
                                            seed = seed, refresh = 0)))
  en <- judge(as.matrix(sf, pars = c("theta", "mu")))
  row <- data.frame(seed = seed, jko_s = js, verdict = fit$verdict$reason, modes = nrow(fit$modes),
                    jko_mean = e[["mean"]], jko_sd = e[["sd"]], jko_share = e[["share"]],
                    nuts_s = ns, nuts_mean = en[["mean"]], nuts_sd = en[["sd"]],
                    nuts_share = en[["share"]], ratio = js / ns,
                    load = load_now())
  print(format(row, digits = 3), row.names = FALSE)
  row
})
tab <- do.call(rbind, rows)
cat(sprintf("median seconds: jkoflow %.2f, NUTS %.2f (ratio %.2f)\n", stats::median(tab$jko_s),
            stats::median(tab$nuts_s), stats::median(tab$jko_s) / stats::median(tab$nuts_s)))
if (!is.na(out_file)) {
  saveRDS(list(table = tab, reference = list(mean = ref_mean, sd = ref_sd),
               version = as.character(utils::packageVersion("jkoflow"))), out_file)
  cat("saved to", out_file, "\n")
}
