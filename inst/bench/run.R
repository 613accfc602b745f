# The performance harness: seconds per JKO training iteration (batch 1024,
# two layers, rank 5) for D = 2, 12, 32 and widths 64, 256, with 1 and 2
# threads; the effective rate (multiply-adds of the kernels, counted in
# common.R: jk_madds) as a share of the dgemm rate of the same BLAS,
# measured beside each run of the kernels; the ratio to the PyTorch peer (same threads, float64); peak
# memory; and the time of JKO step 1 against step 40 of a long fit.
#
#   Rscript inst/bench/run.R [--no-torch] [--no-fit] [--reps=5]
#                            [--dims=2,12,32] [--widths=64,256]
#
# Each configuration (D, width) runs in a child R process, so its peak
# resident memory (VmHWM from /proc/self/status, Linux; it includes R
# itself, about 60 MB) is its own, that of its one- and two-thread runs
# together. Times are medians of `reps` runs, each the slope between calls
# of k and 2k iterations (see the child mode below),
# wall clock, with the one- and two-thread runs in alternation: the speed
# of a shared virtual machine drifts over minutes, and runs made minutes
# apart put that drift into the ratio of two threads to one (1.07 against
# 1.85 at D = 32, width 256, on the same machine in the same hour). On a
# busy machine they are noisy, run it on a quiet one.

local({
  f <- sub("^--file=", "", grep("^--file=", commandArgs(FALSE), value = TRUE))
  source(file.path(if (length(f)) dirname(f) else "inst/bench", "common.R"))
})

args <- bench_args()
vmhwm_mb <- function() {
  s <- tryCatch(readLines("/proc/self/status"), error = function(e) character())
  v <- grep("^VmHWM:", s, value = TRUE)
  if (length(v)) as.numeric(gsub("[^0-9]", "", v)) / 1024 else NA_real_
}

## child mode: --child D width reps -> "s_per_iter_1 s_per_iter_2 peak_MB
## fixed_1 fixed_2 min_2 max_2 dgemm_1 dgemm_2 share_1 share_2 share_min_2
## share_max_2", one and two threads measured in alternation, so that a
## machine whose speed drifts over minutes (a shared virtual machine) moves
## both alike. A call of k iterations also allocates its scratch (the
## kernel's first touch of every page) and pushes the pool: a cost per JKO
## step, not per iteration, which a call of a few iterations would spread
## over them (at D = 12, width 256, ~0.15 s a call against ~0.12 s an
## iteration). So each run times k and 2k iterations, alternated: the
## seconds per iteration are the median of (t_2k - t_k) / k, and the fixed
## cost the median of 2 t_k - t_2k. Each run's dgemm rates (one and two
## threads, dgemm_rate()) are measured right after its iterations, and the
## shares of dgemm are the medians of the runs' own ratios: a dgemm rate
## measured once, minutes away from the kernels, put the drift of the
## machine's speed into the share (one run's dgemm at 195 GFLOP/s against
## 150-155 in the runs before and after it).
if (length(args) && args[1] == "--child") {
  a <- as.integer(args[-1])
  pb <- bench_problem(a[1], a[2])
  # enough iterations per run for about 1.5 seconds on one thread (shorter
  # runs left the slope to the noise of a shared machine: two threads came
  # out 2.5 to 3.3 times faster than one in a run of 0.5 s)
  est <- system.time(jk_step_call(pb, 1L, 2L))[["elapsed"]] / 2
  iters <- as.integer(min(300, max(3, round(1.5 / max(est, 1e-4)))))
  for (th in 1:2) invisible(jk_step_call(pb, th, 2L))   # warm-up
  peak <- vmhwm_mb()   # the kernels' scratch is all allocated by now
  gf <- 2 * jk_madds(a[1], a[2]) * 1024 / 1e9   # GFLOP an iteration
  t <- vapply(seq_len(a[3]), function(i) vapply(1:2, function(th) {
    t1 <- system.time(jk_step_call(pb, th, iters))[["elapsed"]]
    t2 <- system.time(jk_step_call(pb, th, 2L * iters))[["elapsed"]]
    c((t2 - t1) / iters, 2 * t1 - t2, dgemm_rate(th))
  }, numeric(3)), matrix(0, 3, 2))
  share <- 100 * gf / t[1, , ] / t[3, , ]   # 2 x reps
  cat(sprintf("%.6g %.6g %.1f %.6g %.6g %.6g %.6g %.6g %.6g %.6g %.6g %.6g %.6g\n",
              stats::median(t[1, 1, ]), stats::median(t[1, 2, ]), peak,
              stats::median(t[2, 1, ]), stats::median(t[2, 2, ]), min(t[1, 2, ]),
              max(t[1, 2, ]), stats::median(t[3, 1, ]), stats::median(t[3, 2, ]),
              stats::median(share[1, ]), stats::median(share[2, ]), min(share[2, ]),
              max(share[2, ])))
  quit(save = "no")
}

flag <- function(name) any(args == paste0("--", name))
opt <- function(name, default) {
  v <- sub(paste0("^--", name, "="), "", grep(paste0("^--", name, "="), args, value = TRUE))
  if (length(v)) v else default
}
options(width = 200)
reps <- as.integer(opt("reps", 5L))
peer <- if (flag("no-torch")) NULL else torch_peer()
self <- sub("^--file=", "", grep("^--file=", commandArgs(FALSE), value = TRUE))

child <- function(D, width) {
  out <- system2(file.path(R.home("bin"), "Rscript"),
                 c(shQuote(self), "--child", D, width, reps),
                 stdout = TRUE)
  as.numeric(strsplit(utils::tail(out, 1), " ")[[1]])
}
torch_iters <- function(D, width) if (D * width <= 2048) 10L else if (D * width <= 8192) 5L else 3L

rows <- list()
dims <- as.integer(strsplit(opt("dims", "2,12,32"), ",")[[1]])
widths <- as.integer(strsplit(opt("widths", "64,256"), ",")[[1]])
for (D in dims) for (width in widths) {
  r <- child(D, width)
  for (threads in 1:2) {
    tt <- torch_time(peer, D, width, threads, torch_iters(D, width))
    gf <- 2 * jk_madds(D, width) * 1024 / r[threads] / 1e9
    rows[[length(rows) + 1L]] <- data.frame(
      D = D, width = width, threads = threads,
      `s/iter` = r[threads], `GFLOP/s` = gf, `dgemm GFLOP/s` = r[7L + threads],
      `% dgemm` = r[9L + threads],
      `torch s/iter` = tt, `x torch` = tt / r[threads], `peak MB` = r[3],
      `fixed s/call` = r[3L + threads],
      # the spread of the runs (two threads): their lowest and highest
      # shares of dgemm, in %
      `% dgemm range` = if (threads == 2L) sprintf("%.0f-%.0f", r[12], r[13]) else "",
      check.names = FALSE)
  }
}
tab <- do.call(rbind, rows)
# speed-up of 2 threads over 1, on the rows with 2 threads
one <- tab$`s/iter`[tab$threads == 1L]
tab$`2 vs 1` <- NA_real_
tab$`2 vs 1`[tab$threads == 2L] <- one / tab$`s/iter`[tab$threads == 2L]

cat(sprintf("jkoflow %s; BLAS %s; %d cores; batch 1024, rank 5, two layers; medians of %d runs\n",
            utils::packageVersion("jkoflow"), extSoftVersion()[["BLAS"]],
            parallel::detectCores(), reps))
print(format(tab, digits = 3), row.names = FALSE)

## a long fit: does the cost of a step grow with the number of earlier steps?
if (!flag("no-fit")) {
  set.seed(1)
  nsteps <- 40L
  fit <- jko_fit(potential_quadratic(diag(2)), init_gaussian(c(3, -3), diag(2)),
                 h = 0.1, steps = nsteps, hidden = c(64, 64), rank = 5,
                 batch = 1024, iters = 50, threads = 2, verbose = FALSE)
  st <- fit$history[fit$history$step >= 1, ]
  sec <- st$seconds
  cat(sprintf(paste0("\nJKO fit, D = 2, width 64, 50 iterations a step, 2 threads: ",
                     "step 1 %.3f s, step %d %.3f s (ratio %.2f); ",
                     "median of steps 1-5 %.3f s, of steps %d-%d %.3f s (ratio %.2f)\n"),
              sec[1], nsteps, sec[nsteps], sec[nsteps] / sec[1],
              stats::median(sec[1:5]), nsteps - 4L, nsteps,
              stats::median(sec[(nsteps - 4L):nsteps]),
              stats::median(sec[(nsteps - 4L):nsteps]) / stats::median(sec[1:5])))
}
invisible(tab)
