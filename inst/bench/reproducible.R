# Is a seeded fit the same on a busy machine? (issue 31: "the same seeded
# fit run twice, once on a busy machine: identical results".)
#
#   Rscript inst/bench/reproducible.R [name] [seed] [burners] [out.rds]
#
# name: a posterior of posteriors-targets.R's battery (banana by default,
# the twisted Gaussian, D = 4: with seed 6, the seed vs_nuts.R gives its
# first repetition, the fit trains for 9 steps before its draws; garch11
# with seed 11 needs no step on jkoflow 0.1.0: its start and the exact
# correction suffice, so only the start and the draws are compared);
# burners: how many busy processes run beside the second fit (2 by default,
# one per core of a 2-core machine). name may also be stan:<program> for a
# program of inst/bench/stan.R whose data are in stan-references.R
# (lotka_volterra, one_comp_mm_elim_abs), compiled and cached by stan.R
# under JKOFLOW_STAN_CACHE: costly targets, whose exact draws take as
# many proposals as their cost a point allows (draws_thinning()); that
# cost is the smaller of the wall and the CPU seconds, rounded to a power
# of 2, so that it reads the same on a busy machine.
#
# The fit, jko_fit(target_logdensity(logd, grad)) with the defaults (its
# stopping rule counts steps and iterations; max_time is Inf unless the user
# sets it), runs twice after set.seed(seed): once with the machine as it is,
# once while `burners` processes (Rscript -e 'repeat{}') spin on the CPUs.
# The burners are started by this script, their process ids kept, and
# killed by those ids when the second fit returns (or fails). Compared with
# identical(): the flow's parameters (fit$theta), the fit's exact draws
# (fit$draws$x), the verdict (fit$verdict; also without the seconds the
# mode search took, which it records) and the number of steps
# (length(fit$theta)). The seconds of each run and the load average before
# and after are printed. The mode search at the start has its own clock
# (find_modes()'s max_seconds, 10 s): a search cut short by it on a very
# busy machine would change the start, which this comparison would show.

local({
  f <- sub("^--file=", "", grep("^--file=", commandArgs(FALSE), value = TRUE))
  source(file.path(if (length(f)) dirname(f) else "inst/bench", "common.R"))
})
bench_source("posteriors-targets.R", "stan-references.R")
args <- bench_args()
name <- if (length(args) >= 1L) args[1] else "banana"
seed <- if (length(args) >= 2L) as.integer(args[2]) else 6L
burners <- if (length(args) >= 3L) as.integer(args[3]) else 2L
out_file <- if (length(args) >= 4L) args[4] else NA

if (startsWith(name, "stan:")) {
  # a costly program of stan.R, as that benchmark compiled and cached it
  prog <- sub("^stan:", "", name)
  cache <- Sys.getenv("JKOFLOW_STAN_CACHE")
  f <- if (nzchar(cache)) list.files(cache, paste0("^bench-", prog, "-.*[.]rds$"), full.names = TRUE)
  if (!length(f) || is.null(.sr_data[[prog]])) {
    stop("stan:", prog, " needs the program compiled by inst/bench/stan.R with ",
         "JKOFLOW_STAN_CACHE set, and its data in stan-references.R")
  }
  suppressPackageStartupMessages(library(rstan))
  comp <- readRDS(f[1L])
  make_target <- function() target_stan(comp$model, data = .sr_data[[prog]])
  dim_text <- "a Stan program"
} else {
  ref <- posterior_battery()[[name]]
  if (is.null(ref)) stop("no posterior named ", name, " in posteriors-targets.R")
  make_target <- function() target_logdensity(ref$logd, ref$grad, dim = ref$dim)
  dim_text <- sprintf("D = %d", ref$dim)
}

loadavg <- function() paste(readLines("/proc/loadavg", warn = FALSE), collapse = "")

one_fit <- function(label) {
  load0 <- loadavg()
  set.seed(seed)
  t0 <- proc.time()
  fit <- jko_fit(make_target(), verbose = FALSE)
  t <- proc.time() - t0
  cat(sprintf("%-6s %6.1f s elapsed, %6.1f s CPU; steps %d; load before: %s; after: %s\n",
              label, t[["elapsed"]], t[["user.self"]] + t[["sys.self"]],
              length(fit$theta), load0, loadavg()))
  list(fit = fit, elapsed = t[["elapsed"]], load_before = load0, load_after = loadavg())
}

start_burner <- function() {
  # the shell prints the id of the process it put in the background
  pid <- system("Rscript -e 'repeat{}' > /dev/null 2>&1 & echo $!", intern = TRUE)
  as.integer(pid)
}

cat(sprintf("jkoflow %s; %s, seed %d, %s; %d burner(s) beside the second run; %d cores; threads %s\n",
            as.character(utils::packageVersion("jkoflow")), name, seed, dim_text, burners,
            parallel::detectCores(), format(getOption("jkoflow.threads", 2))))

quiet <- one_fit("quiet")
pids <- integer(0)
busy <- tryCatch({
  pids <- vapply(seq_len(burners), function(i) start_burner(), 1L)
  Sys.sleep(2)
  cat("burners:", pids, "\n")
  one_fit("busy")
}, finally = for (p in pids) tools::pskill(p))

# The verdict keeps the mode search (attr(verdict$modes, "search")), with
# the seconds that search took: a clock reading, compared apart.
search_seconds <- function(v) {
  s <- attr(v$modes, "search")
  if (is.null(s)) NA_real_ else s$seconds
}
without_seconds <- function(v) {
  s <- attr(v$modes, "search")
  if (!is.null(s)) {
    s$seconds <- NULL
    attr(v$modes, "search") <- s
  }
  v
}
same <- c(theta = identical(quiet$fit$theta, busy$fit$theta),
          draws = identical(quiet$fit$draws$x, busy$fit$draws$x),
          verdict = identical(quiet$fit$verdict, busy$fit$verdict),
          verdict_but_seconds = identical(without_seconds(quiet$fit$verdict),
                                          without_seconds(busy$fit$verdict)),
          steps = identical(length(quiet$fit$theta), length(busy$fit$theta)))
print(same)
cat(sprintf("mode search seconds (in the verdict): quiet %.2f, busy %.2f\n",
            search_seconds(quiet$fit$verdict), search_seconds(busy$fit$verdict)))
if (!same[["verdict_but_seconds"]]) {
  print(all.equal(without_seconds(quiet$fit$verdict), without_seconds(busy$fit$verdict)))
}
v <- quiet$fit$verdict
cat(sprintf("verdict of the quiet run: %s\n",
            if (is.list(v)) paste0(v$reason, ", step ", v$step) else format(v)[1]))
cat(sprintf("draws: %d x %d\n", NROW(quiet$fit$draws$x), NCOL(quiet$fit$draws$x)))
key <- same[c("theta", "draws", "verdict_but_seconds", "steps")]
cat(if (all(key)) "identical (theta, draws, verdict but its clock reading, steps): yes\n" else
    "identical (theta, draws, verdict but its clock reading, steps): NO\n")

if (!is.na(out_file)) {
  saveRDS(list(name = name, seed = seed, burners = burners, same = same,
               seconds = c(quiet = quiet$elapsed, busy = busy$elapsed),
               load = rbind(quiet = c(quiet$load_before, quiet$load_after),
                            busy = c(busy$load_before, busy$load_after))),
          out_file)
  cat("saved to", out_file, "\n")
}
