test_that("the BLAS check reports OpenBLAS's core and the CPU's features", {
  info <- .Call(jkoflow:::C_blas_info)
  expect_named(info, c("core", "avx2", "avx512f"))
  expect_type(info$core, "character")
  expect_length(info$core, 1L)
  expect_type(info$avx2, "logical")
  expect_type(info$avx512f, "logical")
  # AVX-512 foundation implies AVX2 on every CPU that has it
  if (isTRUE(info$avx512f)) expect_true(info$avx2)
})

test_that("generic OpenBLAS kernels on a modern CPU get advice naming the variable", {
  adv <- jkoflow:::blas_advice(list(core = "Prescott", avx2 = TRUE, avx512f = TRUE))
  expect_match(adv, "OPENBLAS_CORETYPE=SkylakeX", fixed = TRUE)
  expect_match(adv, "generic Prescott kernels", fixed = TRUE)
  adv <- jkoflow:::blas_advice(list(core = "Nehalem", avx2 = TRUE, avx512f = FALSE))
  expect_match(adv, "OPENBLAS_CORETYPE=Haswell", fixed = TRUE)
  expect_match(adv, "AVX2", fixed = TRUE)
})

test_that("the advice names the shell, and says when the variable came too late", {
  adv <- jkoflow:::blas_advice(list(core = "Prescott", avx2 = TRUE, avx512f = TRUE),
                               coretype = "")
  expect_match(adv, "export OPENBLAS_CORETYPE=SkylakeX in ~/.profile", fixed = TRUE)
  expect_no_match(adv, "too late", fixed = TRUE)
  # set in ~/.Renviron (read after R's BLAS has loaded): seen by R, not by OpenBLAS
  adv <- jkoflow:::blas_advice(list(core = "Prescott", avx2 = TRUE, avx512f = TRUE),
                               coretype = "SkylakeX")
  expect_match(adv, "OPENBLAS_CORETYPE is set (to SkylakeX), but after OpenBLAS loaded",
               fixed = TRUE)
})

test_that("the variable in the environment R starts from is what OpenBLAS obeys", {
  # the advice's claim, checked on this machine where it applies: OpenBLAS
  # running generic kernels on a CPU with AVX-512
  info <- .Call(jkoflow:::C_blas_info)
  skip_if(is.null(jkoflow:::blas_advice(info, coretype = "")), "no generic kernels here")
  skip_if_not(isTRUE(info$avx512f))
  core_of <- function(env, renviron) {
    out <- system2(file.path(R.home("bin"), "Rscript"),
                   c("-e", shQuote("cat(.Call(jkoflow:::C_blas_info)$core)")),
                   env = c(env, paste0("R_ENVIRON_USER=", renviron)), stdout = TRUE)
    out[length(out)]
  }
  renv <- tempfile()
  writeLines("OPENBLAS_CORETYPE=SkylakeX", renv)
  none <- tempfile()
  file.create(none)
  libs <- paste0("R_LIBS=", paste(.libPaths(), collapse = .Platform$path.sep))
  expect_equal(tolower(core_of(c(libs, "OPENBLAS_CORETYPE=SkylakeX"), none)), "skylakex")
  expect_equal(tolower(core_of(libs, renv)), tolower(info$core))
})

test_that("no advice where the kernels suit the CPU, or nothing is known", {
  expect_null(jkoflow:::blas_advice(list(core = "Haswell", avx2 = TRUE, avx512f = FALSE),
                                    coretype = "Haswell"))
  expect_null(jkoflow:::blas_advice(list(core = "SkylakeX", avx2 = TRUE, avx512f = TRUE)))
  # an old CPU: Prescott is the right choice there
  expect_null(jkoflow:::blas_advice(list(core = "Prescott", avx2 = FALSE, avx512f = FALSE)))
  # another BLAS, or a compiler that cannot ask the CPU
  expect_null(jkoflow:::blas_advice(list(core = NA_character_, avx2 = TRUE, avx512f = TRUE)))
  expect_null(jkoflow:::blas_advice(list(core = "Prescott", avx2 = NA, avx512f = NA)))
})

# OpenBLAS on two threads for the calling test, the count before put back
# when it ends; skipped where the BLAS is not OpenBLAS or keeps one thread
two_blas_threads <- function(envir = parent.frame()) {
  old <- jkoflow:::blas_threads()
  skip_if(old < 1L, "the BLAS is not OpenBLAS")
  jkoflow:::blas_threads(2L)
  do.call(on.exit, list(bquote(jkoflow:::blas_threads(.(old))), add = TRUE), envir = envir)
  skip_if(jkoflow:::blas_threads() != 2L, "OpenBLAS has one thread here")
}

test_that("a fit runs OpenBLAS on one thread, the target's functions on the user's count", {
  two_blas_threads()
  seen <- integer(0)
  saved <- integer(0)
  tg <- new_target(function(x) {
    seen <<- c(seen, jkoflow:::blas_threads())
    u <- jkoflow:::the$blas_user
    saved <<- c(saved, if (is.null(u)) NA_integer_ else u)
    -rowSums(x^2) / 2
  }, function(x) -x, dim = 2)
  set.seed(1)
  fit <- jko_fit(tg, verbose = FALSE)
  # the user's count inside the target, the fit's one thread saved as 2
  # beside it, and the count the user had after
  expect_true(all(seen == 2L))
  expect_true(all(saved == 2L))
  expect_identical(jkoflow:::blas_threads(), 2L)
  expect_null(jkoflow:::the$blas_user)
  # and after an error in the target
  calls <- 0L
  bad <- new_target(function(x) {
    calls <<- calls + 1L
    if (calls > 5L) stop("no more")
    -rowSums(x^2) / 2
  }, function(x) -x, dim = 2)
  expect_error(jko_fit(bad, verbose = FALSE), "no more")
  expect_identical(jkoflow:::blas_threads(), 2L)
  expect_null(jkoflow:::the$blas_user)
})

test_that("draws, densities and the evidence of a fit run OpenBLAS on one thread too", {
  two_blas_threads()
  seen <- integer(0)
  tg <- new_target(function(x) {
    seen <<- c(seen, jkoflow:::blas_threads())
    -rowSums(x^2) / 2
  }, function(x) -x, dim = 2)
  set.seed(1)
  fit <- jko_fit(tg, verbose = FALSE)
  # the count inside the package's own code, read where a law draws
  rec <- new.env()
  rec$inside <- integer(0)
  suppressMessages(trace(
    jkoflow:::law_draw,
    bquote(assign("inside", c(.(rec)$inside, jkoflow:::blas_threads()), envir = .(rec))),
    print = FALSE, where = asNamespace("jkoflow")))
  on.exit(suppressMessages(untrace(jkoflow:::law_draw, where = asNamespace("jkoflow"))),
          add = TRUE)
  seen <- integer(0)
  s <- jko_sample(fit, 200)  # exact draws
  expect_identical(jkoflow:::blas_threads(), 2L)
  s <- jko_sample(fit, 200, correct = FALSE)  # the flow's own
  expect_identical(jkoflow:::blas_threads(), 2L)
  d <- jko_density(fit, matrix(0, 1, 2))
  expect_identical(jkoflow:::blas_threads(), 2L)
  e <- jko_evidence(fit, n = 500)
  expect_identical(jkoflow:::blas_threads(), 2L)
  expect_null(jkoflow:::the$blas_user)
  expect_true(length(rec$inside) >= 2L)
  expect_true(all(rec$inside == 1L))
  # the target on the user's count, within all of them
  expect_true(length(seen) > 0L)
  expect_true(all(seen == 2L))
  # N(0, I): the evidence of exp(-|x|^2 / 2) is 2 pi, and the density at 0 is 1 / (2 pi)
  expect_equal(e$log_z, log(2 * pi), tolerance = 0.05)
  expect_equal(d$log_density, -log(2 * pi), tolerance = 0.05)
  # and after an error, the count the user had; the error names the
  # function called, not the one that set the threads
  e <- tryCatch(jko_sample(fit, -1), error = identity)
  expect_match(conditionMessage(e), "`n`")
  expect_identical(conditionCall(e)[[1L]], quote(jko_sample))
  expect_identical(jkoflow:::blas_threads(), 2L)
  e <- tryCatch(jko_evidence(fit, n = 1), error = identity)
  expect_identical(conditionCall(e)[[1L]], quote(jko_evidence))
  expect_identical(jkoflow:::blas_threads(), 2L)
})
