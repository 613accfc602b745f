suppressMessages(library(jkoflow))
source("inst/bench/common.R"); bench_source("posteriors-targets.R")
options(jkoflow.threads=2)
b <- posterior_battery()
H0 <- as.numeric(Sys.getenv("H0", "0.5"))
nh <- function(fit) {
  hist <- fit$history; K <- nrow(hist) - 1L
  if (K == 0L) return(H0)
  h <- hist$h[K + 1L]; kl <- hist$kl
  if (is.na(kl[K + 1L]) || is.na(kl[K])) return(min(2 * h, 8))
  if (kl[K + 1L] < kl[K]) min(2 * h, 8) else max(h / 2, 0.05)
}
if (H0 != 0.5) assignInNamespace("next_h", nh, "jkoflow")
nms <- strsplit(Sys.getenv("NMS", "banana,funnel"), ",")[[1]]
ref <- posterior_battery("quadrature")
for (nm in nms) for (s in 1:3) {
  tg <- b[[nm]]; set.seed(s)
  target <- suppressMessages(target_logdensity(tg$logd, tg$grad, dim = tg$dim))
  t0 <- proc.time()[[3]]
  fit <- suppressWarnings(jko_fit(target, verbose = FALSE))
  secs <- proc.time()[[3]]-t0
  x <- jko_sample(fit, 4000)$x
  me <- max(abs(colMeans(x) - tg$mean)/tg$sd); se <- max(abs(apply(x,2,sd)/tg$sd - 1))
  cat(sprintf("%s H0=%g seed %d: %.2f s, steps %d, %s, KL %.3f, mean %.3f sd %.3f\n", nm, H0, s, secs,
      nrow(fit$history)-1, fit$verdict$reason, fit$verdict$kl, me, se))
}
