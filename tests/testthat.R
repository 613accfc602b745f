library(testthat)
library(jkoflow)

test_check("jkoflow")
