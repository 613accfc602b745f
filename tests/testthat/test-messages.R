# No silent arguments, and messages that say what is wrong: unknown names
# in `...`, a log-density written for one parameter vector, a missing
# dimension, counts said right; max_time within a step, and the progress
# of a fit.

test_that("unknown names in `...` are errors naming them, with the closest argument", {
  set.seed(1)
  fit <- jko_fit(potential_quadratic(1), init_gaussian(0, 1), h = 0.1, steps = 1,
                 hidden = c(4, 4), batch = 64, iters = 10, verbose = FALSE)
  expect_error(jko_sample(fit, 10, resmple = TRUE),
               "unknown argument `resmple` \\(did you mean `resample`\\?\\) in jko_sample\\(\\)")
  expect_error(jko_sample(fit, 10, stpe = 0), "unknown argument `stpe` \\(did you mean `step`\\?\\)")
  expect_error(jko_sample(fit, 10, 0, 0.1, 1, FALSE, "constrained", NULL, 3),
               "1 unexpected unnamed argument in jko_sample\\(\\)")
  s <- jko_sample(fit, 10)
  expect_error(print(s, digits = 2), "unknown argument `digits` in print\\(\\)")
  expect_error(as.data.frame(s, foo = 1), "unknown argument `foo` in as.data.frame\\(\\)")
  expect_error(simulate(fit, 2, stepp = 1), "unknown argument `stepp` \\(did you mean `step`\\?\\) in simulate\\(\\)")
  expect_identical(nrow(simulate(fit, 3, step = 0)), 3L)
  expect_error(print(fit, foo = 1), "unknown argument `foo` in print\\(\\)")
  expect_error(summary(fit, foo = 1), "unknown argument `foo` in summary\\(\\)")
  expect_error(print(summary(fit), foo = 1), "unknown argument `foo` in print\\(\\)")
  expect_error(print(jko_control(), verbose = TRUE), "unknown argument `verbose`")
  expect_error(print(init_gaussian(0, 1), 2), "1 unexpected unnamed argument")
  expect_error(predict(icnn(1, 4, 1), 0, tpye = "gradient"),
               "unknown argument `tpye` \\(did you mean `type`\\?\\)")
  expect_error(jko_fit(potential_quadratic(1), init_gaussian(0, 1), steps = 1, itres = 10),
               "unknown argument `itres`")
  skip_if_not_installed("posterior")
  expect_error(posterior::as_draws_df(fit, n = 5, resampel = TRUE),
               "unknown argument `resampel` \\(did you mean `resample`\\?\\) in jko_sample\\(\\)")
})

test_that("a log-density for one parameter vector is found before the fit, with the fix", {
  vec <- function(theta) sum(dnorm(theta, 0, 1, log = TRUE))
  expect_error(suppressMessages(jko_fit(target_logdensity(vec, dim = 2), verbose = FALSE)),
               paste0("`logd` returned 1 value \\(-3.676\\) for a matrix of 2 points \\(one per row, ",
                      "2 columns\\); it must return one value per row.*",
                      "`function\\(x\\) apply\\(x, 1, f\\)`"))
  named <- function(theta) dnorm(theta[["mu"]], log = TRUE)
  expect_error(suppressMessages(jko_fit(target_logdensity(named, dim = 1), verbose = FALSE)),
               "`logd` failed on a matrix of 2 points \\(one per row, 1 column\\): subscript out of bounds")
  # the right number of values, but each row's is not its own: the data
  # recycled against the points and summed over both
  y <- c(1.2, 0.8, 2.1)
  mixes <- function(x) dnorm(x[, 1], 0, 2, log = TRUE) + sum(dnorm(y, x[, 1], 1, log = TRUE))
  expect_error(suppressMessages(jko_fit(target_logdensity(mixes, dim = 1), verbose = FALSE)),
               paste0("`logd` gives a row of a matrix of 2 points \\(one per row, 1 column\\) ",
                      "another value than that point alone \\(1 value \\(",
                      format(mixes(matrix(c(0, 0.01)))[1], digits = 4), "\\) against 1 value \\(",
                      format(mixes(matrix(0)), digits = 4), "\\)\\): it must treat each row"))
  mean_grad <- target_logdensity(function(x) -rowSums(x^2) / 2,
                                 function(x) -x + mean(x), dim = 2)
  expect_error(jko_fit(mean_grad, verbose = FALSE),
               "`grad` gives a row of a matrix of 2 points .* another gradient than that point alone")
  one_row <- target_logdensity(function(x) -rowSums(x[1:2, ]^2), dim = 2)
  expect_error(jko_fit(one_row, verbose = FALSE),
               "`logd` failed on a matrix of 1 point \\(one row, 2 columns\\): subscript out of bounds")
  # vectorised as the message says, it runs
  tg <- suppressMessages(target_logdensity(function(x) apply(x, 1, vec), dim = 2))
  set.seed(1)
  expect_s3_class(suppressWarnings(jko_fit(tg, hidden = c(4, 4), iters = 10, pool = 2^10,
                                           monitor = 2^10, max_steps = 1, verbose = FALSE)),
                  "jko_fit")
  bad_grad <- target_logdensity(function(x) -rowSums(x^2) / 2, function(x) -x[1, ], dim = 2)
  expect_error(jko_fit(bad_grad, verbose = FALSE),
               "`grad` returned 2 values .* it must return a 2 x 2 matrix, a gradient per row")
  expect_error(suppressMessages(jko_fit(target_logdensity(function(x) -rowSums(x^2)),
                                        verbose = FALSE)),
               "target_logdensity\\(\\) needs `dim` \\(or `variables`\\): the dimension")
  # a time-accurate flow takes its dimension from `init`, and is probed too
  expect_error(suppressMessages(jko_fit(target_logdensity(vec), init_gaussian(c(0, 0), 1),
                                        stationary = FALSE, steps = 1, verbose = FALSE)),
               "`logd` returned 1 value")
  # counts said right during a fit: 1 value for 5 points, the log-density's own
  tg1 <- new_target(function(x) -1, function(x) -x, dim = 2)
  expect_error(jkoflow:::potential_eval_r(tg1, matrix(0, 5, 2)),
               "`logd` returned 1 value \\(-1\\) for 5 points; expected 5 numbers")
  expect_error(jkoflow:::potential_values(tg1, matrix(0, 5, 2)),
               "`logd` returned 1 value \\(-1\\) for 5 points; expected one value per row")
})

test_that("max_time stops a step's training where it is reached", {
  slow <- target_logdensity(function(x) {
    Sys.sleep(0.003)
    -rowSums(x^2) / 2
  }, function(x) -x, dim = 2)
  set.seed(4)
  t0 <- proc.time()[["elapsed"]]
  fit <- suppressWarnings(jko_fit(slow, hidden = c(4, 4), iters = 5000, max_time = 1,
                                  kl_tol = 1e-12, pool = 2^11, monitor = 2^10,
                                  verbose = FALSE))
  took <- proc.time()[["elapsed"]] - t0
  # one step, stopped well before its 5000 iterations (each >= 3 ms)
  expect_identical(nrow(fit$history), 2L)
  expect_lt(fit$history$iters[2], 1000)
  expect_identical(fit$verdict$reason, "max_time")
  expect_match(verdict_text <- jkoflow:::verdict_text(fit$verdict), "time budget")
  expect_lt(took, 8)
  expect_length(fit$loss_trace[[1]], fit$history$iters[2])
})

test_that("a fit reports step k of at most K with the time left", {
  set.seed(5)
  tg <- target_logdensity(function(x) -rowSums(x^2) / 2, function(x) -x, dim = 2)
  msgs <- character()
  fit <- withCallingHandlers(
    suppressWarnings(jko_fit(tg, hidden = c(4, 4), iters = 20, pool = 2^10, monitor = 2^10,
                             max_steps = 2, kl_tol = 1e-12, verbose = TRUE)),
    message = function(m) {
      msgs <<- c(msgs, conditionMessage(m))
      invokeRestart("muffleMessage")
    })
  expect_match(msgs[1], "^step 1 of at most 2: .*, at most [0-9.]+ (s|min) left\\)")
  expect_match(msgs[2], "^step 2 of at most 2: .*s\\)\n$")
  set.seed(6)
  msgs <- character()
  withCallingHandlers(
    jko_fit(potential_quadratic(1), init_gaussian(0, 1), h = 0.1, steps = 2,
            hidden = c(4, 4), batch = 64, iters = 10, verbose = TRUE),
    message = function(m) {
      msgs <<- c(msgs, conditionMessage(m))
      invokeRestart("muffleMessage")
    })
  expect_match(msgs[1], "^step 1 of 2: .*about [0-9.]+ (s|min) left\\)")
  skip_if_not_installed("progressr")
  got <- list()
  withCallingHandlers(
    jko_fit(potential_quadratic(1), init_gaussian(0, 1), h = 0.1, steps = 3,
            hidden = c(4, 4), batch = 64, iters = 10, verbose = TRUE),
    progression = function(p) got[[length(got) + 1L]] <<- p,
    message = function(m) invokeRestart("muffleMessage"))
  steps <- Filter(function(p) identical(p$type, "update"), got)
  expect_length(steps, 3L)
  expect_match(steps[[1]]$message, "step 1 of 3, about")
})

test_that("a long warning (a verdict) is shown whole, and warning.length is left as it was", {
  # R's default handler cuts a warning at the option warning.length, read
  # when the warning is signalled: warn_whole() raises it for that moment
  msg <- paste0("start ", strrep("x", 1500), " end")
  old <- options(warning.length = 1000)
  on.exit(options(old))
  seen <- NULL
  withCallingHandlers(jkoflow:::warn_whole(msg), warning = function(w) {
    seen <<- list(length = getOption("warning.length"), message = conditionMessage(w))
    invokeRestart("muffleWarning")
  })
  expect_gte(seen$length, nchar(msg, "bytes"))
  expect_identical(seen$message, msg)
  expect_equal(getOption("warning.length"), 1000)
  # a short one leaves the option alone
  withCallingHandlers(jkoflow:::warn_whole("short"), warning = function(w) {
    seen <<- list(length = getOption("warning.length"))
    invokeRestart("muffleWarning")
  })
  expect_equal(seen$length, 1000)
})
