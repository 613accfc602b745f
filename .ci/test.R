# The test command of README.md: installs the package from this source tree
# into a private library, runs the testthat suite, and ends with the line
# "N passed, N failed". Exits non-zero when a test fails or errors.
lib <- file.path(tempdir(), "jkoflow-lib")
dir.create(lib, showWarnings = FALSE)
status <- system2(file.path(R.home("bin"), "R"),
                  c("CMD", "INSTALL", "--no-test-load", paste0("--library=", shQuote(lib)), "."),
                  stdout = FALSE, stderr = FALSE)
if (status != 0L) {
  system2(file.path(R.home("bin"), "R"),
          c("CMD", "INSTALL", paste0("--library=", shQuote(lib)), "."))
  cat("0 passed, 1 failed\n")
  quit(status = 1L)
}
.libPaths(c(lib, .libPaths()))
# the whole suite, as a developer runs it (devtools::test() sets the same)
Sys.setenv(NOT_CRAN = "true")
library(testthat)
library(jkoflow)
res <- as.data.frame(testthat::test_dir("tests/testthat", package = "jkoflow",
                                        load_package = "installed",
                                        reporter = "summary", stop_on_failure = FALSE))
failed <- sum(res$failed) + sum(res$error)
passed <- sum(res$passed)
cat(sprintf("%d passed, %d failed\n", passed, failed))
quit(status = if (failed > 0L) 1L else 0L)
