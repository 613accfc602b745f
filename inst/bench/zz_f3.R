suppressMessages(library(jkoflow))
source("inst/bench/common.R"); bench_source("posteriors-targets.R")
options(jkoflow.threads=2, width=200)
b <- posterior_battery(); tg <- b[[Sys.getenv("NM","funnel")]]; set.seed(3)
target <- suppressMessages(target_logdensity(tg$logd, tg$grad, dim = tg$dim))
t0 <- proc.time()[[3]]
fit <- suppressWarnings(jko_fit(target, verbose = FALSE))
cat("secs", proc.time()[[3]]-t0, "\n")
