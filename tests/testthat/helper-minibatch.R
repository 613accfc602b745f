# The rows a minibatch of b takes from the rows `used`, as src/glm.c draws
# them: a partial Fisher-Yates shuffle with R's uniform stream (C's
# j = i + floor(u (n - i)) for i = 0..b-1, here 1-based).
minibatch_rows <- function(used, b) {
  n <- length(used)
  idx <- used
  for (i in seq_len(b)) {
    j <- min(n, i + floor(runif(1) * (n - i + 1)))
    idx[c(i, j)] <- idx[c(j, i)]
  }
  idx[seq_len(b)]
}
