# One JKO training iteration (loss and gradient at a batch of 1024) against
# the PyTorch peer, side by side in one run: width 64, rank 5, two layers,
# D = 2, 12, 32, float64, the same number of threads.
#
#   Rscript inst/bench/step.R [threads = 2] [reps = 7]
#
# Columns: `loss+grad` one .Call of the loss and its gradient (scratch
# allocated in the call); `iter` one iteration of a JKO step's training loop
# (loss, gradient, Adam; scratch allocated once per step), median over `reps`
# runs of 20 iterations; `torch` the peer's median seconds per iteration;
# `ratio` torch / iter. Then the wall time of whole JKO steps of jko_fit()
# at D = 12 (100 iterations, the pool of 2^18 points pushed once, the
# monitor and the free energy), median over 3 steps of 3 fits.

local({
  f <- sub("^--file=", "", grep("^--file=", commandArgs(FALSE), value = TRUE))
  source(file.path(if (length(f)) dirname(f) else "inst/bench", "common.R"))
})

options(width = 200)
args <- bench_args()
threads <- if (length(args) >= 1L) as.integer(args[1]) else 2L
reps <- if (length(args) >= 2L) as.integer(args[2]) else 7L
peer <- torch_peer()

rows <- lapply(c(2L, 12L, 32L), function(D) {
  pb <- bench_problem(D, 64L)
  lg <- jk_loss_time(pb, threads, reps)
  it <- jk_train_time(pb, threads, iters = 20L, reps = reps)
  tt <- torch_time(peer, D, 64L, threads, iters = c(`2` = 20L, `12` = 10L, `32` = 5L)[[as.character(D)]])
  data.frame(D = D, width = 64L, threads = threads,
             `loss+grad ms` = 1e3 * lg, `iter ms` = 1e3 * it,
             `torch ms` = 1e3 * tt, ratio = tt / it, check.names = FALSE)
})
tab <- do.call(rbind, rows)
cat(sprintf("jkoflow %s, %s, batch 1024, rank 5, two layers, medians of %d runs\n",
            utils::packageVersion("jkoflow"), extSoftVersion()[["BLAS"]], reps))
print(format(tab, digits = 3), row.names = FALSE)
whole <- jk_fit_step_time(12L, 64L, threads, iters = 100L, reps = 3L)
cat(sprintf("\nwhole JKO step, D = 12, width 64, 100 iterations, pool 2^18, %d threads: %.3f s\n",
            threads, whole))
invisible(tab)
