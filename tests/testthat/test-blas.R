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

test_that("no advice where the kernels suit the CPU, or nothing is known", {
  expect_null(jkoflow:::blas_advice(list(core = "Haswell", avx2 = TRUE, avx512f = FALSE)))
  expect_null(jkoflow:::blas_advice(list(core = "SkylakeX", avx2 = TRUE, avx512f = TRUE)))
  # an old CPU: Prescott is the right choice there
  expect_null(jkoflow:::blas_advice(list(core = "Prescott", avx2 = FALSE, avx512f = FALSE)))
  # another BLAS, or a compiler that cannot ask the CPU
  expect_null(jkoflow:::blas_advice(list(core = NA_character_, avx2 = TRUE, avx512f = TRUE)))
  expect_null(jkoflow:::blas_advice(list(core = "Prescott", avx2 = NA, avx512f = NA)))
})
