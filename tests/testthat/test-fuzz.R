# Fuzzing: seeded random calls of every exported function (and of the
# methods for fits and samples) with arguments drawn from good values,
# extreme ones and malformed ones, each call in a forked child process with
# a time limit. Every call must end in a value of the expected kind or in
# an error of the package's own class ("jkoflow_error"), never in a crash
# (the child dying before it reports), a hang (no report within the limit)
# or an error R raised on the package's behalf (a subscript out of bounds,
# a missing value where TRUE/FALSE needed: an input the package let
# through).

# (JKOFLOW_FUZZ_CALLS and JKOFLOW_FUZZ_SEED set another number of calls and
# another seed, for longer runs)
fuzz_calls <- as.integer(Sys.getenv("JKOFLOW_FUZZ_CALLS", "300"))
fuzz_limit <- 20   # seconds a call may take

skip_on_cran()
skip_on_os("windows")   # no fork()

fuzz_fixtures <- function() {
  tiny <- jko_control(hidden = 4, rank = 1, batch = 16, iters = 5, pool = 64, monitor = 32)
  fit1 <- jko_fit(potential_quadratic(1), init_gaussian(0, 1), h = 0.1, steps = 2,
                  control = tiny, verbose = FALSE, threads = 1)
  fit2 <- jko_fit(potential_double_well(), init_gaussian(c(0, 0), 1), h = 0.1, steps = 1,
                  control = tiny, verbose = FALSE, threads = 1)
  xl <- matrix(c(-1, 0.5, 1, -0.3, 2, 1, -2, 0.1), 4, 2)
  lt <- target_logistic(xl, c(0, 1, 1, 0))
  fitl <- suppressWarnings(jko_fit(lt, h = 0.1, steps = 1, control = tiny, verbose = FALSE,
                                   threads = 1))
  set_part <- function(f, name, value) {
    f[name] <- list(value)
    if (is.null(value)) f[[name]] <- NULL
    f
  }
  th <- fit1$theta
  th[[1]] <- th[[1]][-1]
  tampered <- list(
    set_part(fit1, "theta", NULL), set_part(fit1, "dim", 3L), set_part(fit1, "history", NULL),
    set_part(fit1, "theta", th), set_part(fit2, "potential", potential_quadratic(1)),
    set_part(fit1, "std", NULL), structure(list(), class = "jko_fit"))
  s1 <- jko_sample(fit1, 20)
  sl <- jko_sample(fitl, 20)
  list(tiny = tiny, fits = list(fit1, fit2, fitl), tampered = tampered,
       samples = list(s1, sl, jko_sample(fit2, 10)),
       potentials = list(potential_quadratic(1), potential_double_well(),
                         potential_fn(function(x) rowSums(x^2) / 2, function(x) x),
                         potential_gmm(c(-1, 1), 0.5)),
       inits = list(init_gaussian(0, 1), init_gaussian(c(0, 0), 1), init_fit(fit1)),
       targets = list(lt, target_logdensity(function(x) -rowSums(x^2) / 2, dim = 2)),
       xl = xl)
}

# Values of no particular argument: extreme, malformed or of a wrong kind.
fuzz_bad_values <- function(fx) {
  c(list(NULL, NA, NA_real_, NaN, Inf, -Inf, -1, 0, 0.5, 1, 2, 1e-300, 1e300, -1e300, 3e9,
         1e155, .Machine$integer.max + 1, -3e9, "a", "", character(0), numeric(0),
         integer(0), c(1, NA), c(Inf, 1), c(1, 2, 3), TRUE, FALSE, list(), list(a = 1),
         function(x) stop("boom"), function(x) x, function(x, y) NA, function(...) NULL,
         matrix(NA_real_, 2, 2), matrix(1e200, 3, 1), matrix(0, 0, 2), matrix("a", 2, 2),
         array(1, c(2, 2, 2)), data.frame(a = 1:3, b = 3:1), new.env(), quote(x), 1i,
         factor("a"), as.Date("2020-01-01"), 1:1000, rnorm(5)),
    fx$fits[1:2], fx$tampered[1:3], fx$samples[1:2], fx$potentials[1:2], fx$inits[1:2],
    list(fx$tiny, jko_last_fit))
}

# Good values by argument name (where there are some).
fuzz_good_values <- function(fx) {
  list(
    potential = c(fx$potentials, fx$targets), fit = c(fx$fits, fx$tampered),
    object = c(fx$fits, fx$tampered, fx$samples), x = list(0.5, c(0, 1), matrix(rnorm(10), 5, 2), fx$xl,
                                               fx$fits[[1]]),
    init = fx$inits, n = list(1, 5, 50), step = list(0, 1, 2), time = list(0, 0.1, 0.2),
    h = list(0.1, 0.05), steps = list(1, 2), beta = list(1, 2), threads = list(1, 2),
    control = list(fx$tiny), control_update = list(fx$tiny), dim = list(1, 2),
    y = list(c(0.5, 1), c(0, 1, 1, 0), 1), times = list(c(0.1, 0.2), 0.1), sd = list(1, 0.5),
    mean = list(0, c(0, 0)), sd_ = list(1), cov = list(1, diag(2)), hidden = list(4, c(4, 4)),
    rank = list(1), batch = list(16), iters = list(5), pool = list(64), monitor = list(32),
    samples = fx$samples, newdata = list(fx$xl, matrix(0, 1, 2)),
    loglik = list(function(x) -rowSums(x^2), function(x, y) -rowSums((x - y)^2)),
    logd = list(function(x) -rowSums(x^2) / 2), value = list(function(x) rowSums(x^2) / 2),
    f = list(function(x) rowSums(x^2) / 2), grad = list(NULL, function(x) x),
    gradient = list(NULL, function(x) x), W = list(function(z) rowSums(z^2) / 2),
    m = list(2, 3), a = list(2, 4), b = list(1, 0), block = list(16, 256),
    resample = list(TRUE, FALSE), log = list(TRUE, FALSE), verbose = list(FALSE),
    update = list("reweight", "flow"), scale = list("constrained", "unconstrained"),
    type = list("prob", "link"), what = list("loss", "density"), file = list(tempfile()),
    prior = list(prior_normal(), "normal", "gamma"), family = list(stats::binomial()),
    formula = list(y ~ a), data = list(data.frame(y = c(0, 1, 1, 0), a = c(1, 2, 3, 4))))
}

# The functions to call: every export, and the methods of fits and samples
# through their generics.
fuzz_functions <- function() {
  ns <- asNamespace("jkoflow")
  # target_brms() with a valid formula and data compiles a Stan program
  # (about a minute): past any time limit fit for hundreds of calls, not a
  # hang; its own refusals are tested in test-brms.R
  ex <- setdiff(sort(getNamespaceExports("jkoflow")), "target_brms")
  fns <- stats::setNames(lapply(ex, get, envir = ns), ex)
  c(fns, list(print = function(x) print(x), summary = function(object) summary(object),
              plot = function(x, what = "loss") plot(x, what = what),
              predict = function(object, newdata = NULL, samples = NULL, n = 100)
                stats::predict(object, newdata = newdata, samples = samples, n = n),
              simulate = function(object, nsim = 1) stats::simulate(object, nsim = nsim),
              as.matrix = function(x) as.matrix(x)))
}

fuzz_generics <- c("print", "summary", "plot", "predict", "simulate", "as.matrix")

# The kind of value each function must return (those not named: anything).
fuzz_expected <- list(
  jko_fit = "jko_fit", jko_continue = "jko_fit", jko_update = "jko_fit", jko_sample = "jko_sample",
  jko_density = "jko_density", jko_evidence = "jko_evidence", jko_filter = "jko_filter",
  jko_control = "jko_control", jko_energy = "jko_energy", init_fit = "jko_law",
  init_gaussian = "jko_init", init_samples = "jko_init", icnn = "icnn")

# One random call: the function's name and its arguments (a named list).
fuzz_call <- function(fns, good, bad, tiny) {
  nm <- sample(names(fns), 1L)
  fm <- formals(fns[[nm]])
  args <- list()
  # a generic's first argument is an object of the package (its method is
  # what is fuzzed)
  if (nm %in% fuzz_generics) {
    objs <- if (nm %in% c("predict", "simulate")) good$fit else good$object
    args[names(fm)[1L]] <- list(objs[[sample.int(length(objs), 1L)]])
  }
  for (a in setdiff(names(fm), c("...", names(args)))) {
    required <- identical(fm[[a]], quote(expr = ))
    if (!required && stats::runif(1) > 0.4) next
    pool <- if (!is.null(good[[a]]) && stats::runif(1) < 0.6) good[[a]] else bad
    v <- pool[[sample.int(length(pool), 1L)]]
    args[a] <- list(v)
  }
  # training in a few iterations: flows get the tiny settings unless their
  # `control` is being fuzzed
  if ("control" %in% names(fm) && is.null(args$control)) args$control <- tiny
  if ("control_update" %in% names(fm) && is.null(args$control_update)) {
    args$control_update <- tiny
  }
  if ("verbose" %in% names(fm) && is.null(args$verbose)) args$verbose <- FALSE
  list(name = nm, args = args)
}

# Runs one call in a child: "value" (of the expected kind or not),
# "classed" (an error of the package's class), "unclassed" (any other
# error), "crash" or "hang".
fuzz_run <- function(fn, call, limit) {
  job <- parallel::mcparallel(quote({
    options(jkoflow.threads = 1L, warn = -1)
    grDevices::pdf(NULL)
    where <- NULL
    out <- tryCatch({
      v <- withCallingHandlers(
        suppressMessages(utils::capture.output(r <- do.call(fn, call$args, quote = TRUE))),
        error = function(e) {
          # where an error that is not the package's arose: the innermost calls
          cl <- vapply(sys.calls(), function(c) deparse(c[[1L]])[1L], "")
          where <<- paste(utils::tail(cl[!cl %in% c("h", ".handleSimpleError", "stop")], 4L),
                          collapse = " > ")
        })
      want <- fuzz_expected[[call$name]]
      ok <- if (is.null(want)) TRUE else if (!inherits(r, want)) FALSE
            else if (want == "jko_fit") {
              tryCatch({
                getFromNamespace("validate_fit", "jkoflow")(r)
                TRUE
              }, error = function(e) FALSE)
            } else TRUE
      list(kind = if (ok) "value" else "invalid", what = class(r)[1L])
    }, error = function(e) {
      list(kind = if (inherits(e, "jkoflow_error")) "classed" else "unclassed",
           what = paste0(conditionMessage(e), " [in ", where, "]"))
    })
    out
  }), silent = TRUE, mc.set.seed = FALSE)
  res <- suppressWarnings(parallel::mccollect(job, wait = FALSE, timeout = limit))
  if (is.null(res)) {
    tools::pskill(job$pid, 9L)
    suppressWarnings(parallel::mccollect(job, wait = TRUE))
    return(list(kind = "hang", what = sprintf("no result in %g s", limit)))
  }
  r <- res[[1L]]
  if (is.null(r)) return(list(kind = "crash", what = "the child died"))
  if (inherits(r, "try-error")) return(list(kind = "unclassed", what = as.character(r)))
  r
}

describe_call <- function(call) {
  a <- vapply(call$args, function(v) {
    s <- tryCatch(paste(utils::capture.output(utils::str(v, max.level = 1L, give.attr = FALSE,
                                                          list.len = 3L)), collapse = " "),
                  error = function(e) class(v)[1L])
    substr(gsub("\\s+", " ", s), 1L, 60L)
  }, "")
  sprintf("%s(%s)", call$name, paste(names(a), "=", a, collapse = ", "))
}

test_that("random calls of every exported function end in a value or a classed error", {
  set.seed(as.integer(Sys.getenv("JKOFLOW_FUZZ_SEED", "20261205")))
  fx <- fuzz_fixtures()
  fns <- fuzz_functions()
  good <- fuzz_good_values(fx)
  bad <- fuzz_bad_values(fx)
  t0 <- proc.time()[["elapsed"]]
  kinds <- character(fuzz_calls)
  notes <- character(0)
  for (i in seq_len(fuzz_calls)) {
    call <- fuzz_call(fns, good, bad, fx$tiny)
    r <- fuzz_run(fns[[call$name]], call, fuzz_limit)
    kinds[i] <- r$kind
    if (!r$kind %in% c("value", "classed")) {
      notes <- c(notes, sprintf("%s: %s -> %s", r$kind, describe_call(call), r$what))
    }
  }
  secs <- proc.time()[["elapsed"]] - t0
  counts <- table(factor(kinds, c("value", "classed", "unclassed", "invalid", "crash", "hang")))
  message(sprintf("fuzz: %d calls of %d functions in %.1f s: %s", fuzz_calls, length(fns), secs,
                  paste(names(counts), counts, sep = " ", collapse = ", ")))
  if (length(notes)) message(paste(notes, collapse = "\n"))
  expect_identical(counts[["crash"]], 0L)
  expect_identical(counts[["hang"]], 0L)
  expect_identical(counts[["unclassed"]], 0L)
  expect_identical(counts[["invalid"]], 0L)
  # the calls reach the functions: both values and refusals occur
  expect_gt(counts[["value"]], fuzz_calls / 10)
  expect_gt(counts[["classed"]], fuzz_calls / 3)
})

test_that("the fuzzer tells a crash, a hang and an error apart", {
  # (its own check: a child killed by a signal, one past the time limit)
  # (SIGKILL: as a segfault ends, without the traceback R prints for one)
  crash <- fuzz_run(function() tools::pskill(Sys.getpid(), 9L), list(name = "crash", args = list()),
                    5)
  expect_identical(crash$kind, "crash")
  hang <- fuzz_run(function() Sys.sleep(30), list(name = "hang", args = list()), 1)
  expect_identical(hang$kind, "hang")
  expect_identical(fuzz_run(function() stop("plain"), list(name = "e", args = list()), 5)$kind,
                   "unclassed")
  expect_identical(fuzz_run(function() jko_sample(1), list(name = "e", args = list()), 5)$kind,
                   "classed")
  expect_identical(fuzz_run(function() jko_control(), list(name = "jko_control", args = list()),
                            5)$kind, "value")
  expect_identical(fuzz_run(function() 1, list(name = "jko_control", args = list()), 5)$kind,
                   "invalid")
})
