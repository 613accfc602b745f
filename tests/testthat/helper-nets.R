# Random networks with "trained-looking" parameters: perturbed away from the
# identity initialisation, with large non-negative hidden and output weights.
random_net <- function(dim, hidden, rank, activation = "softplus", scale = 0.3) {
  net <- icnn(dim, hidden, rank, activation = activation)
  blocks <- icnn_blocks(net)
  net$theta <- net$theta + scale * rnorm(length(net$theta))
  for (nm in grep("^(W|v)", names(blocks), value = TRUE)) {
    net$theta[blocks[[nm]]] <- abs(net$theta[blocks[[nm]]]) + 0.1
  }
  net
}

# Central differences of f (vector-valued) along each coordinate of x.
fd_jacobian <- function(f, x, eps = 1e-5) {
  sapply(seq_along(x), function(j) {
    xp <- x; xm <- x
    xp[j] <- xp[j] + eps; xm[j] <- xm[j] - eps
    (f(xp) - f(xm)) / (2 * eps)
  })
}

rel_err <- function(a, b) max(abs(a - b)) / max(abs(b), 1e-300)

# Reference posterior moments of a target: self-normalised importance
# sampling from a widened Laplace approximation with n draws. Returns the
# means, sds and the importance ESS.
is_reference <- function(tg, n = 2e5, seed = 11) {
  set.seed(seed)
  la <- init_laplace(tg, inflate = 1.5)
  th <- la$sample(n)
  lw <- -potential_value(tg, th) - la$log_density(th)
  wt <- exp(lw - max(lw))
  wt <- wt / sum(wt)
  m <- colSums(th * wt)
  list(mean = m, sd = sqrt(colSums(sweep(th, 2L, m)^2 * wt)), ess = 1 / sum(wt^2))
}

# Named parameter blocks (A_l, B_l, c_l, W_l, v, a, v1) of a network, as
# index vectors into its theta (the layout of src/icnn.h).
icnn_blocks <- function(net) {
  starts <- .Call(jkoflow:::C_icnn_layout, jkoflow:::arch(net), net$alpha_min)
  L <- length(net$hidden)
  nms <- c(paste0(rep(c("A", "B", "c", "W"), L), rep(seq_len(L), each = 4L)),
           "v", "a", "v1")
  keep <- starts >= 0
  starts <- starts[keep]
  nms <- nms[keep][order(starts)]
  starts <- sort(starts)
  ends <- c(starts[-1L], length(net$theta))
  stats::setNames(Map(function(s, e) seq.int(s + 1L, e), starts, ends), nms)
}
