# The same JKO training iteration with whatever BLAS R loads: run it under
# each BLAS to compare them. On Debian (as root), the reference BLAS:
#   update-alternatives --set libblas.so.3-x86_64-linux-gnu \
#     /usr/lib/x86_64-linux-gnu/blas/libblas.so.3
#   update-alternatives --set liblapack.so.3-x86_64-linux-gnu \
#     /usr/lib/x86_64-linux-gnu/lapack/liblapack.so.3
#   Rscript inst/bench/blas.R
# and back to OpenBLAS with the openblas-pthread paths.
local({
  f <- sub("^--file=", "", grep("^--file=", commandArgs(FALSE), value = TRUE))
  source(file.path(if (length(f)) dirname(f) else "inst/bench", "common.R"))
})
blas <- extSoftVersion()[["BLAS"]]
for (D in c(2L, 12L, 32L)) {
  pb <- bench_problem(D, 64L)
  for (th in 1:2) {
    s <- jk_train_time(pb, th, iters = 10L, reps = 3L)
    cat(sprintf("D = %2d width 64 threads %d: %7.2f ms per iteration  (%s)\n",
                D, th, 1e3 * s, blas))
  }
}
