# The house rules of the R side, checked on the sources (skipped where the
# tests run without them, as in R CMD check).

src <- file.path("..", "..", "R")
script <- file.path("..", "..", "inst", "scripts", "callgraph.R")

test_that("the R files call each other without circles", {
  skip_if_not(dir.exists(src) && file.exists(script), "the package's sources are not here")
  skip_if_not_installed("codetools")
  env <- new.env()
  sys.source(script, envir = env)
  g <- env$r_callgraph(src)
  lay <- env$r_layers(g)
  expect_identical(lay$circles, character())
  expect_setequal(lay$order, g$files)
})

test_that("no R file is over 600 lines, and jko_fit.R is under 400", {
  skip_if_not(dir.exists(src), "the package's sources are not here")
  n <- vapply(list.files(src, full.names = TRUE), function(f) length(readLines(f)), 0L)
  expect_lte(max(n), 600L)
  expect_lt(n[[file.path(src, "jko_fit.R")]], 400L)
})
