# jkoflow's defaults on held-out posteriors: posteriordb posteriors that
# were never used to tune the package (none is named in inst/bench,
# README.md or tests/), against rstan's NUTS and posteriordb's reference
# draws. Each posterior's program, data and reference draws are read at run
# time from a posteriordb checkout; nothing of posteriordb is copied into
# this repository (posteriordb is BSD-3-Clause, and the house rule is to
# read its programs and data, not to keep them).
#
#   Rscript inst/bench/heldout.R [--posteriordb=DIR] [--names=a,b,c] [--seed=1]
#                                [--out=file.rds] [--no-nuts]
#                                [--long-nuts] [--references=earlier.rds]
#
# --posteriordb: the folder posterior_database of a posteriordb checkout
# (posteriors/<name>.json, models/stan/<model>.stan,
# data/data/<data>.json.zip, reference_posteriors/draws/draws/<name>.json.zip);
# the checkout's root is accepted too. Default: the environment variable
# POSTERIORDB. --names: posteriordb posterior names, comma-separated
# (default: the ten below). --no-nuts: jkoflow only (the NUTS columns NA).
#
# Each program is parsed by this rstan after the rewriting of Stan 2.26's
# array syntax that target_stan() applies (jkoflow:::stan_rewrite_arrays());
# one that still does not parse is reported and skipped. Programs are
# compiled once and cached (stan_model_cached(); JKOFLOW_STAN_CACHE=<folder>),
# and the compile seconds are kept out of both timings. Every posterior
# runs in a tryCatch: a failure (of the data, of NUTS, of jkoflow) leaves
# a row with the message, verbatim, in `note` (printed in full at the end);
# the run goes on.
#
# NUTS: rstan::sampling(sm, data, chains = 4, cores = 2, seed = --seed) with
# rstan's defaults (1000 warm-up + 1000 draws per chain). jkoflow:
# set.seed(--seed); jko_fit(target_stan(sm, data = data)) with no other
# argument (options(jkoflow.threads = 2)); its 4000 draws on the program's
# constrained scale as stan.R takes them (the fit's own exact draws,
# jkoflow:::posterior_draws(fit), constrained by the target's transform;
# jko_sample(fit, 4000) for a fit without them).
#
# Reference: posteriordb's reference draws (10 chains x 1000 NUTS draws,
# pooled), over the reference's variables (parameters and transformed
# parameters, as the reference has them).
# A posterior that posteriordb gives no reference draws for (most of its
# posteriors) is run only with --long-nuts: its reference is then a long
# NUTS run of its own, rstan::sampling(chains = 4, warmup = 2000,
# iter = 7000, seed = 10000 + --seed, adapt_delta = 0.95) (20 000 draws),
# over the program's parameters (its parameters block, constrained), and
# the row's ref_div, ref_ess and ref_rhat say how far it can be trusted
# (divergent transitions, the smallest bulk ESS, the largest R-hat): a
# reference with divergences or a bulk ESS under 2000 is marked "(suspect)"
# in the list of errors at the end. --references: the --out file of an
# earlier run, whose long NUTS references (its `references`, by posterior)
# stand in for a new long run where posteriordb has none (the same seed's
# run: the same draws), so that fits compared before and after a change
# are judged against one reference. The ten posteriors below all have
# posteriordb's reference draws.
#
# Columns: posterior; D (unconstrained parameters); compile_s (seconds to
# compile, 0 when cached); nuts_s (wall seconds of sampling() alone),
# nuts_div (divergent transitions after warm-up) and nuts_maxdepth (draws
# that hit the maximum tree depth, 10); jko_s (wall seconds of
# target_stan() + jko_fit(), + jko_sample() where the fit keeps no draws),
# ratio = jko_s / nuts_s; steps (the fit's JKO steps), verdict
# (fit$verdict$reason; "error" when jkoflow failed), rejected (the share of
# points the program rejected during the fit); accuracy of each against the
# reference: *_mean the worst |mean - ref mean| / ref sd, *_sd the worst
# |sd / ref sd - 1|, *_q the worst |quantile - ref quantile| / ref sd over
# the 5, 25, 50, 75 and 95% quantiles; jko_mean_var, jko_sd_var, the
# variables where jkoflow's worst mean and sd errors are; note (a skip or an
# error message). The end lists every posterior where jkoflow's mean error
# exceeds 0.1 sd or its sd error 10%, variable by variable.
#
# --out saves a list: table (the table), errors (per posterior, the
# variable-by-variable errors of NUTS and jkoflow: mean, sd, quantiles),
# references (the reference summaries), and the run's settings.

local({
  f <- sub("^--file=", "", grep("^--file=", commandArgs(FALSE), value = TRUE))
  source(file.path(if (length(f)) dirname(f) else "inst/bench", "common.R"))
})
bench_source("stan-programs.R")
suppressPackageStartupMessages(library(rstan))

args <- bench_args()
opt <- function(name, default) bench_opt(name, default, args)
seed <- as.integer(opt("seed", "1"))
out_file <- opt("out", NA)
no_nuts <- "--no-nuts" %in% args
long_nuts <- "--long-nuts" %in% args
refs_from <- opt("references", NA)
earlier_refs <- if (!is.na(refs_from)) readRDS(refs_from)$references else list()
options(width = 250, jkoflow.threads = 2, warn = 1)
`%||%` <- function(a, b) if (is.null(a)) b else a

# (the snapshot of posteriordb we hold lacks the data of mesquite, nes and
# sblri: earn_height, gp_regr and kidscore_mom_work stand in for them)
default_names <- c(
  "arma-arma11", "earnings-logearn_interaction_z", "earnings-earn_height",
  "gp_pois_regr-gp_regr", "kidiq_with_mom_work-kidscore_mom_work",
  "kilpisjarvi_mod-kilpisjarvi", "gp_pois_regr-gp_pois_regr",
  "low_dim_gauss_mix-low_dim_gauss_mix", "kidiq_with_mom_work-kidscore_interaction_z",
  "bball_drive_event_0-hmm_drive_0")
sel <- strsplit(opt("names", paste(default_names, collapse = ",")), ",")[[1L]]

pdb <- opt("posteriordb", Sys.getenv("POSTERIORDB"))
if (!nzchar(pdb)) {
  stop("no posteriordb: give --posteriordb=DIR (the folder posterior_database of a ",
       "posteriordb checkout) or set the environment variable POSTERIORDB", call. = FALSE)
}
if (!dir.exists(file.path(pdb, "posteriors")) &&
    dir.exists(file.path(pdb, "posterior_database", "posteriors"))) {
  pdb <- file.path(pdb, "posterior_database")
}
if (!dir.exists(file.path(pdb, "posteriors"))) {
  stop("'", pdb, "' is not a posteriordb database: it has no posteriors/ folder ",
       "(give the folder posterior_database of a posteriordb checkout)", call. = FALSE)
}
pdb <- normalizePath(pdb)

probs <- c(0.05, 0.25, 0.5, 0.75, 0.95)
qcols <- c("q05", "q25", "q50", "q75", "q95")

# ---------------------------------------------------------------------------
# posteriordb, read at run time

pdb_file <- function(...) {
  f <- file.path(pdb, ...)
  if (!file.exists(f)) stop("not in this posteriordb checkout: ", f, call. = FALSE)
  f
}
read_json_zip <- function(zip, simplify = TRUE) {
  inner <- sub("\\.zip$", "", basename(zip))
  con <- unz(zip, inner)
  on.exit(close(con))
  jsonlite::fromJSON(paste(readLines(con, warn = FALSE), collapse = ""),
                     simplifyVector = simplify)
}
pdb_posterior <- function(name) {
  info <- jsonlite::fromJSON(pdb_file("posteriors", paste0(name, ".json")))
  code <- paste(readLines(pdb_file("models", "stan", paste0(info$model_name, ".stan")),
                          warn = FALSE), collapse = "\n")
  data <- read_json_zip(pdb_file("data", "data", paste0(info$data_name, ".json.zip")))
  ref_name <- info$reference_posterior_name %||% name
  ref_file <- file.path(pdb, "reference_posteriors", "draws", "draws",
                        paste0(ref_name, ".json.zip"))
  if (!file.exists(ref_file)) {
    if (!long_nuts && is.null(earlier_refs[[name]])) stop("posteriordb has no reference draws for ", name,
                         " (give --long-nuts for a long NUTS run as its reference)", call. = FALSE)
    return(list(info = info, code = code, data = data, ref = NULL))
  }
  draws <- read_json_zip(ref_file, simplify = FALSE)
  list(info = info, code = code, data = data, ref = ref_summary(draws),
       ref_chains = length(draws), ref_draws = length(draws[[1L]][[1L]]))
}

# The reference's chains pooled: per variable mean, sd and quantiles.
ref_summary <- function(draws) {
  vars <- names(draws[[1L]])
  x <- vapply(vars, function(v) as.numeric(unlist(lapply(draws, `[[`, v))),
              numeric(sum(vapply(draws, function(ch) length(ch[[1L]]), 0L))))
  summary_of(x)
}
summary_of <- function(x) {
  vars <- colnames(x)
  out <- cbind(mean = colMeans(x), sd = apply(x, 2L, stats::sd),
               t(apply(x, 2L, stats::quantile, probs = probs, names = FALSE)))
  colnames(out)[-(1:2)] <- qcols
  rownames(out) <- vars
  out
}

# ---------------------------------------------------------------------------
# compiling, timing, errors

# The program as target_stan() would give it to this rstan (array syntax of
# Stan 2.26 rewritten where the parser is older), parsed, then compiled and
# cached. A program that does not parse is an error of class "no_parse".
compile_pdb <- function(name, code) {
  if (jkoflow:::stan_parser_version() < "2.26") code <- jkoflow:::stan_rewrite_arrays(code)$code
  parsed <- tryCatch({
    utils::capture.output(suppressMessages(
      rstan::stanc(model_code = code, model_name = gsub("[^A-Za-z0-9_]", "_", name),
                   verbose = FALSE)))
    NULL
  }, error = function(e) conditionMessage(e))
  if (!is.null(parsed)) {
    modern <- jkoflow:::stan_modern_constructs(code)
    stop(structure(class = c("no_parse", "error", "condition"), list(
      message = paste0("does not parse under rstan ", utils::packageVersion("rstan"),
                       " (after the array rewriting)",
                       if (length(modern)) paste0("; constructs of a newer Stan: ",
                                                  paste(modern, collapse = ", ")),
                       ": ", trimws(parsed)), call = NULL)))
  }
  stan_model_cached(code, paste0("pdb-", gsub("[^A-Za-z0-9_]", "_", name)))
}

elapsed <- function(expr) {
  t0 <- proc.time()[["elapsed"]]
  value <- force(expr)
  list(value = value, seconds = proc.time()[["elapsed"]] - t0)
}

# expr's value, its printed output and messages silenced, its warnings kept
# (attribute "warnings").
quietly <- function(expr) {
  w <- character()
  out <- NULL
  utils::capture.output(out <- suppressMessages(withCallingHandlers(expr, warning = function(c) {
    w <<- c(w, conditionMessage(c))
    invokeRestart("muffleWarning")
  })))
  if (length(w)) attr(out, "warnings") <- unique(w)
  out
}

# Errors of draws x (named columns) against the reference, variable by
# variable: mean and quantiles in reference sds, the sd relative.
errors <- function(x, ref) {
  miss <- setdiff(rownames(ref), colnames(x))
  if (length(miss)) stop("the draws lack the reference's variable(s) ", paste(miss, collapse = ", "))
  x <- x[, rownames(ref), drop = FALSE]
  e <- bench_errors(x, list(mean = ref[, "mean"], sd = ref[, "sd"]))
  # (apply() gives a 5 x ncol matrix, one column too)
  q <- t(apply(x, 2L, stats::quantile, probs = probs, names = FALSE))
  q <- (q - unname(ref[, qcols, drop = FALSE])) / ref[, "sd"]
  colnames(q) <- qcols
  out <- cbind(mean = e$mean, sd = e$sd, q)
  rownames(out) <- rownames(ref)
  out
}
accuracy <- function(e) {
  if (is.null(e)) return(list(mean = NA_real_, sd = NA_real_, q = NA_real_,
                              mean_var = NA_character_, sd_var = NA_character_))
  list(mean = max(abs(e[, "mean"])), sd = max(abs(e[, "sd"])), q = max(abs(e[, qcols])),
       mean_var = rownames(e)[which.max(abs(e[, "mean"]))],
       sd_var = rownames(e)[which.max(abs(e[, "sd"]))])
}

# The row's <prefix>_mean, _sd and _q from the errors e (and the variables
# of the worst mean and sd, where the row has columns for them).
with_accuracy <- function(row, prefix, e) {
  a <- accuracy(e)
  row[paste0(prefix, c("_mean", "_sd", "_q"))] <- list(a$mean, a$sd, a$q)
  vars <- paste0(prefix, c("_mean_var", "_sd_var"))
  if (all(vars %in% names(row))) row[vars] <- list(a$mean_var, a$sd_var)
  row
}

# ---------------------------------------------------------------------------
# one posterior

# A long NUTS run as the reference (see the header), with its own
# diagnostics.
long_nuts_reference <- function(sm, data) {
  sf <- quietly(rstan::sampling(sm, data = data, chains = 4, cores = 2, warmup = 2000,
                                iter = 7000, seed = 10000 + seed, refresh = 0,
                                control = list(adapt_delta = 0.95)))
  # the program's parameters proper, as target_stan() names them
  pars <- unique(sub("\\[.*", "", quietly(target_stan(sm, data = data))$transform$parameters))
  arr <- as.array(sf, pars = pars)
  # a constant (a fixed element of a parameter) has nothing to compare
  arr <- arr[, , apply(arr, 3L, stats::sd) > 0, drop = FALSE]
  x <- matrix(arr, ncol = dim(arr)[3L], dimnames = list(NULL, dimnames(arr)[[3L]]))
  ess <- apply(arr, 3L, posterior::ess_bulk)
  rhat <- apply(arr, 3L, posterior::rhat)
  structure(summary_of(x), divergent = rstan::get_num_divergent(sf),
            ess = min(ess), rhat = max(rhat))
}

run_nuts <- function(sm, data, ref) {
  s <- elapsed(quietly(rstan::sampling(sm, data = data, chains = 4, cores = 2, seed = seed,
                                       refresh = 0)))
  sf <- s$value
  x <- as.matrix(sf, pars = unique(sub("\\[.*", "", rownames(ref))))
  list(seconds = s$seconds, divergent = rstan::get_num_divergent(sf),
       treedepth = rstan::get_num_max_treedepth(sf), errors = errors(x, ref))
}

run_jko <- function(sm, data, ref) {
  set.seed(seed)
  t0 <- proc.time()[["elapsed"]]
  tg <- quietly(target_stan(sm, data = data))
  fit <- quietly(jko_fit(tg))
  secs <- proc.time()[["elapsed"]] - t0
  # the fit's own exact draws, constrained (outside the timing, as in
  # stan.R); a fit without them is sampled, and that is timed
  pd <- jkoflow:::posterior_draws(fit)
  draws <- if (!is.null(pd) && pd$n >= 4000) pd$x else {
    s <- elapsed(quietly(jko_sample(fit, 4000)))
    secs <- secs + s$seconds
    s$value$x
  }
  v <- fit$verdict
  list(seconds = secs, D = tg$dim, steps = length(fit$theta), verdict = v$reason %||% NA,
       rejected = v$rejections$share %||% NA_real_, n = nrow(draws),
       errors = errors(draws, ref), warnings = c(attr(tg, "warnings"), attr(fit, "warnings")))
}

empty_row <- function(name) {
  data.frame(posterior = name, D = NA_integer_, compile_s = NA_real_, nuts_s = NA_real_,
             nuts_div = NA_integer_, nuts_maxdepth = NA_integer_, jko_s = NA_real_, ratio = NA_real_, steps = NA_integer_,
             verdict = NA_character_, rejected = NA_real_,
             nuts_mean = NA_real_, nuts_sd = NA_real_, nuts_q = NA_real_,
             jko_mean = NA_real_, jko_sd = NA_real_, jko_q = NA_real_,
             jko_mean_var = NA_character_, jko_sd_var = NA_character_,
             ref_div = NA_integer_, ref_ess = NA_real_, ref_rhat = NA_real_, note = "",
             stringsAsFactors = FALSE)
}

run_posterior <- function(name) {
  row <- empty_row(name)
  errs <- list()
  p <- tryCatch(pdb_posterior(name), error = function(e) e)
  if (inherits(p, "error")) {
    row$note <- paste("skipped:", conditionMessage(p))
    return(list(row = row))
  }
  sm <- tryCatch(compile_pdb(name, p$code), error = function(e) e)
  if (inherits(sm, "error")) {
    row$note <- paste(if (inherits(sm, "no_parse")) "skipped: the program" else
                        "skipped: the program does not compile:", conditionMessage(sm))
    return(list(row = row, ref = p$ref))
  }
  row$compile_s <- attr(sm, "compile_seconds")
  notes <- character()
  if (is.null(p$ref) && !is.null(earlier_refs[[name]])) {
    p$ref <- earlier_refs[[name]]
    row[c("ref_div", "ref_ess", "ref_rhat")] <- list(attr(p$ref, "divergent"),
                                                     attr(p$ref, "ess"), attr(p$ref, "rhat"))
  }
  if (is.null(p$ref)) {
    r <- tryCatch(long_nuts_reference(sm, p$data), error = function(e) e)
    if (inherits(r, "error")) {
      row$note <- paste("skipped: the long NUTS reference failed:", conditionMessage(r))
      return(list(row = row))
    }
    p$ref <- r
    row[c("ref_div", "ref_ess", "ref_rhat")] <- list(attr(r, "divergent"), attr(r, "ess"),
                                                     attr(r, "rhat"))
  }
  if (!no_nuts) {
    n <- tryCatch(run_nuts(sm, p$data, p$ref), error = function(e) e)
    if (inherits(n, "error")) {
      notes <- c(notes, paste("NUTS error:", conditionMessage(n)))
    } else {
      row[c("nuts_s", "nuts_div", "nuts_maxdepth")] <- list(n$seconds, n$divergent, n$treedepth)
      row <- with_accuracy(row, "nuts", n$errors)
      errs$nuts <- n$errors
    }
  }
  j <- tryCatch(run_jko(sm, p$data, p$ref), error = function(e) e)
  if (inherits(j, "error")) {
    row$verdict <- "error"
    notes <- c(notes, paste("jkoflow error:", conditionMessage(j)))
  } else {
    row[c("D", "jko_s", "steps", "verdict", "rejected")] <-
      list(j$D, j$seconds, j$steps, j$verdict, j$rejected)
    row <- with_accuracy(row, "jko", j$errors)
    if (length(j$warnings)) notes <- c(notes, paste("jkoflow warning:", j$warnings))
    errs$jko <- j$errors
  }
  row$ratio <- row$jko_s / row$nuts_s
  row$note <- paste(notes, collapse = " | ")
  list(row = row, errors = errs, ref = p$ref)
}

# ---------------------------------------------------------------------------

cat(sprintf("jkoflow %s, rstan %s (Stan %s); posteriordb at %s; seed %d; 2 threads (jkoflow), 2 cores (NUTS)%s; %s; load %s\n",
            utils::packageVersion("jkoflow"), utils::packageVersion("rstan"), rstan::stan_version(),
            pdb, seed, if (no_nuts) "; no NUTS" else "", format(Sys.time(), "%Y-%m-%d %H:%M"),
            paste(readLines("/proc/loadavg", warn = FALSE), collapse = "")))
show_cols <- setdiff(names(empty_row("")), "note")
res <- list()
for (name in sel) {
  r <- tryCatch(run_posterior(name), error = function(e) {
    row <- empty_row(name)
    row$note <- paste("error:", conditionMessage(e))
    list(row = row)
  })
  res[[name]] <- r
  print(format(r$row[show_cols], digits = 3), row.names = FALSE)
  if (nzchar(r$row$note)) cat("  note:", r$row$note, "\n")
}
tab <- do.call(rbind, lapply(res, `[[`, "row"))
rownames(tab) <- NULL

cat(sprintf("\njkoflow %s, rstan %s; seed %d; %s; load at the end %s\n",
            utils::packageVersion("jkoflow"), utils::packageVersion("rstan"), seed,
            format(Sys.time(), "%Y-%m-%d %H:%M"),
            paste(readLines("/proc/loadavg", warn = FALSE), collapse = "")))
print(format(tab[show_cols], digits = 3), row.names = FALSE)
if (any(nzchar(tab$note))) {
  cat("\nnotes (verbatim):\n")
  for (i in which(nzchar(tab$note))) cat(sprintf("  %s: %s\n", tab$posterior[i], tab$note[i]))
}
ran <- is.finite(tab$jko_s) & is.finite(tab$nuts_s)
if (any(ran)) {
  cat(sprintf("\nmedian seconds: jkoflow %.1f, NUTS %.1f; median ratio %.2f (%d posteriors)\n",
              stats::median(tab$jko_s[ran]), stats::median(tab$nuts_s[ran]),
              stats::median(tab$ratio[ran]), sum(ran)))
}
cat("\njkoflow beyond 0.1 sd in a mean or 10% in an sd:\n")
flagged <- 0L
for (nm in names(res)) {
  e <- res[[nm]]$errors$jko
  if (is.null(e)) next
  bad <- abs(e[, "mean"]) > 0.1 | abs(e[, "sd"]) > 0.1
  bad[is.na(bad)] <- TRUE  # an error that could not be computed is shown
  if (!any(bad)) next
  flagged <- flagged + 1L
  en <- res[[nm]]$errors$nuts
  rr <- tab[tab$posterior == nm, ]
  suspect <- isTRUE(rr$ref_div > 0 | rr$ref_ess < 2000)
  for (v in rownames(e)[bad]) {
    cat(sprintf("  %s%s %s: mean %+.3f sd, sd %+.1f%% (NUTS: mean %s, sd %s)\n", nm,
                if (suspect) " (suspect reference)" else "", v,
                e[v, "mean"], 100 * e[v, "sd"],
                if (is.null(en)) "NA" else sprintf("%+.3f", en[v, "mean"]),
                if (is.null(en)) "NA" else sprintf("%+.1f%%", 100 * en[v, "sd"])))
  }
}
if (!flagged) cat("  none\n")
if (!is.na(out_file)) {
  saveRDS(list(table = tab, errors = lapply(res, `[[`, "errors"),
               references = lapply(res, `[[`, "ref"), seed = seed, nuts = !no_nuts,
               posteriordb = pdb, version = as.character(utils::packageVersion("jkoflow")),
               rstan = as.character(utils::packageVersion("rstan")), date = Sys.time()),
          out_file)
  cat("saved to", out_file, "\n")
}
