# Mixtures unlike those of multimodal.R (which are gmm.R's: equal weights,
# unit components, centres uniform in a box), as a user might bring them,
# each given to jko_fit(target_logdensity(<log mixture>, dim = D)) with
# nothing else (no gradient: finite differences, no start):
#
#   one_d_equal        1-D, 0.5 N(-3, 1) + 0.5 N(3, 1)
#   two_d_three        2-D, weights 0.5 / 0.3 / 0.2, one component elongated
#                      (sds 0.5 and 2), one narrow (sd 0.7)
#   three_d_narrow     3-D, 0.8 N(0, I) + 0.2 N((4, 0, 0), 0.3^2 I): a narrow
#                      mode 4 sds from a wide one, its basin about 1/5000 of
#                      the search's box
#   eight_d_four       8-D, four unit modes at 8 e_k, weights 0.1 ... 0.4
#   five_d_far         5-D, 0.7 N(-5 1, I) + 0.3 N(5 1, 4 I): the wide mode's
#                      basin covers nearly all of the box around it
#   two_d_very_far     2-D, 0.4 N((-20, 0), I) + 0.6 N((20, 0), I): the
#                      modes 40 sds apart
#
# Per case and seed: the seconds of jko_fit(), its verdict, the modes its
# verdict lists, the mode weights (mode_weights() of the fit: the exact
# draws' proposals, each in the basin of its mode) against the truth, and
# the total variation between the two (a mode not found counts in full);
# the draws' shares by nearest centre as a second view.
#
#   Rscript inst/bench/multimodal_more.R [--seeds=1,2,3] [--cases=a,b] [--out=file.rds]

local({
  f <- sub("^--file=", "", grep("^--file=", commandArgs(FALSE), value = TRUE))
  source(file.path(if (length(f)) dirname(f) else "inst/bench", "common.R"))
})
options(width = 200, jkoflow.threads = 2)
args <- bench_args()
seeds <- as.integer(strsplit(bench_opt("seeds", "1,2,3", args), ",")[[1]])
out_file <- bench_opt("out", NA, args)

# A normalised mixture of Gaussians with diagonal covariances: centres mus
# (a list), sds (a list of numbers or D-vectors), weights w.
mixture <- function(mus, sds, w) {
  D <- length(mus[[1]])
  sds <- lapply(sds, function(s) rep(s, length.out = D))
  logd <- function(x) {
    x <- matrix(x, ncol = D)
    M <- matrix(vapply(seq_along(w), function(k) {
      log(w[k]) + rowSums(dnorm(x, rep(mus[[k]], each = nrow(x)),
                                rep(sds[[k]], each = nrow(x)), log = TRUE))
    }, numeric(nrow(x))), nrow(x))
    m <- apply(M, 1L, max)
    m + log(rowSums(exp(M - m)))
  }
  list(logd = logd, D = D, mus = mus, w = w)
}

cases <- list(
  one_d_equal = mixture(list(-3, 3), list(1, 1), c(0.5, 0.5)),
  two_d_three = mixture(list(c(0, 0), c(6, 0), c(0, 7)), list(1, c(0.5, 2), 0.7),
                        c(0.5, 0.3, 0.2)),
  three_d_narrow = mixture(list(c(0, 0, 0), c(4, 0, 0)), list(1, 0.3), c(0.8, 0.2)),
  eight_d_four = mixture(lapply(1:4, function(k) replace(numeric(8), k, 8)),
                         list(1, 1, 1, 1), c(0.1, 0.2, 0.3, 0.4)),
  five_d_far = mixture(list(rep(-5, 5), rep(5, 5)), list(1, 2), c(0.7, 0.3)),
  two_d_very_far = mixture(list(c(-20, 0), c(20, 0)), list(1, 1), c(0.4, 0.6))
)
sel <- bench_opt("cases", "", args)
if (nzchar(sel)) cases <- cases[strsplit(sel, ",")[[1]]]

run_case <- function(name, cs, seed) {
  set.seed(seed)
  tg <- suppressMessages(target_logdensity(cs$logd, dim = cs$D))
  t0 <- proc.time()[["elapsed"]]
  fit <- tryCatch(suppressWarnings(jko_fit(tg, verbose = FALSE)), error = function(e) e)
  secs <- proc.time()[["elapsed"]] - t0
  if (inherits(fit, "error")) {
    return(data.frame(case = name, seed = seed, D = cs$D, seconds = secs, verdict = "error",
                      modes = NA, found = NA, tv_modes = NA, tv_draws = NA, weights = NA,
                      note = conditionMessage(fit)))
  }
  m <- fit$modes
  s <- attr(m, "search")
  K <- length(cs$w)
  # each true component's weight against the found mode nearest its centre
  # (within 1, in the component's own units); a component with no found
  # mode near it gets 0
  est <- vapply(seq_len(K), function(k) {
    d <- sqrt(rowSums(sweep(s$modes, 2L, cs$mus[[k]])^2))
    if (min(d) < 1) m$weight[which.min(d)] else 0
  }, 0)
  x <- jko_sample(fit, 20000)$x
  near <- max.col(-vapply(cs$mus, function(mu) rowSums(sweep(x, 2L, mu)^2), numeric(nrow(x))))
  share <- tabulate(near, K) / nrow(x)
  data.frame(case = name, seed = seed, D = cs$D, seconds = secs, verdict = fit$verdict$reason,
             modes = nrow(m), found = sprintf("%d (%d from draws)", nrow(m), s$from_draws %||% 0L),
             tv_modes = 0.5 * sum(abs(est - cs$w)), tv_draws = 0.5 * sum(abs(share - cs$w)),
             weights = paste(sprintf("%.3f", est), collapse = "/"), note = "")
}
`%||%` <- function(a, b) if (is.null(a)) b else a

rows <- list()
for (nm in names(cases)) for (sd in seeds) {
  r <- run_case(nm, cases[[nm]], sd)
  print(format(r, digits = 3), row.names = FALSE)
  rows[[length(rows) + 1L]] <- r
}
tab <- do.call(rbind, rows)
cat(sprintf("\njkoflow %s; 2 threads; seeds %s; %s\n", utils::packageVersion("jkoflow"),
            paste(seeds, collapse = ","), format(Sys.time(), "%Y-%m-%d %H:%M")))
print(format(tab[, names(tab) != "note"], digits = 3), row.names = FALSE)
truth <- vapply(cases, function(cs) paste(sprintf("%.3f", cs$w), collapse = "/"), "")
cat("\ntrue weights:\n")
print(truth)
agg <- aggregate(cbind(seconds, tv_modes) ~ case, tab, stats::median)
cat("\nmedians over seeds:\n")
print(format(agg, digits = 3), row.names = FALSE)
if (!is.na(out_file)) saveRDS(list(table = tab, truth = truth, seeds = seeds,
                                   version = as.character(utils::packageVersion("jkoflow")),
                                   date = Sys.time()), out_file)
invisible(tab)
