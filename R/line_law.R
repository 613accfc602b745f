# The law of a target of one coordinate (R/stationary.R's line_choice()),
# on a grid of its own density, with the cells of conditional_law()'s
# marginal (line_cells(), R/conditional.R).

# A target of one coordinate has no "others" to be Gaussian given it: its
# law is its own density on a grid. From `centre` outwards at spacing
# `step` (doubled every 30 points, 30 points to a call of the potential),
# each side until the log-density falls `drop` below the largest so far (a
# density falling as x^-2 falls 20 at 2 10^4 sds, which 10 doublings
# reach) or leaves the support (its edge then found by bisection); then,
# for at most `passes` rounds, each cell's midpoint (all in one call) is
# added where the log-density there is more than `tol` from the straight
# line between the cell's ends, up to `most` points. The law holds the
# log-density linear within each cell (conditional_law()'s marginal, there
# with the others' Gaussians): its draws and densities are exact, and its
# weights vary across a cell by about tol. posteriordb's Survey model (a
# binomial's rate, its count summed out up to 500) has a flat top that
# ends at a wall on the logit scale: its moved Student t failed as a
# proposal (the weights grew outwards along its level sets), and the flow
# trained 3 steps of 45 s each. NULL where the centre is outside the
# support or fewer than 5 points are found.
conditional_line <- function(potential, beta, centre, step, drop = 20, kmax = 600L, tol = 0.05,
                             passes = 8L, most = 1000L) {
  if (length(centre) != 1L || !is.finite(centre) || !is.finite(step) || step <= 0) return(NULL)
  lv <- function(t) -beta * potential_values(potential, matrix(t, ncol = 1L))
  tt <- centre
  l <- lv(centre)
  if (!is.finite(l)) return(NULL)
  for (dir in c(-1, 1)) {
    cur <- centre
    s <- step
    k <- 0L
    while (k < kmax) {
      nt <- cur + dir * s * seq_len(30L)
      nl <- lv(nt)
      k <- k + 30L
      # up to the first point outside the support, or the first beyond the drop
      out <- which(!is.finite(nl))
      last <- if (length(out)) out[1L] - 1L else 30L
      low <- which(nl[seq_len(last)] < cummax(c(max(l), nl[seq_len(last)]))[-1L] - drop)
      if (length(low)) last <- low[1L]
      tt <- c(tt, nt[seq_len(last)])
      l <- c(l, nl[seq_len(last)])
      if (!length(low) && length(out)) {
        # the support's edge, between the last point inside and the first
        # outside: found by bisection, the points inside kept
        a <- if (last > 0L) nt[last] else cur
        b <- nt[last + 1L]
        for (i in seq_len(30L)) {
          m <- (a + b) / 2
          lm <- lv(m)
          if (is.finite(lm)) {
            tt <- c(tt, m)
            l <- c(l, lm)
            a <- m
          } else {
            b <- m
          }
        }
      }
      if (last < 30L) break
      cur <- nt[30L]
      s <- 2 * s
    }
  }
  o <- order(tt)
  tt <- tt[o]
  l <- l[o]
  if (length(tt) < 5L) return(NULL)
  for (pass in seq_len(passes)) {
    K <- length(tt)
    mid <- (tt[-1L] + tt[-K]) / 2
    lm <- lv(mid)
    add <- which(is.finite(lm) & abs(lm - (l[-1L] + l[-K]) / 2) > tol)
    if (!length(add) || K + length(add) > most) break
    tt <- c(tt, mid[add])
    l <- c(l, lm[add])
    o <- order(tt)
    tt <- tt[o]
    l <- l[o]
  }
  line_law(tt, l)
}

# The law on the line of the log-density l at the sorted points tt (as
# conditional_law()'s marginal): cell k, between the midpoints to its
# neighbours, holds exp(l_k + a_k (x - t_k)), a_k the slope of l between
# the neighbours, and the mass of its integral.
line_law <- function(tt, l) {
  K <- length(tt)
  cl <- line_cells(tt, l)
  lo <- cl$lo
  hi <- cl$hi
  a <- cl$a
  u0 <- cl$u0
  u1 <- cl$u1
  lint <- cl$lint
  p <- cl$p
  log_density <- function(x) {
    x <- as.matrix(x)[, 1L]
    k <- findInterval(x, c(lo, hi[K]), rightmost.closed = TRUE)
    out <- rep(-Inf, length(x))
    i <- k >= 1L & k <= K
    u <- x[i] - tt[k[i]]
    out[i] <- log(p[k[i]]) + a[k[i]] * u - lint[k[i]]
    out
  }
  sample <- function(n) {
    k <- sample.int(K, n, replace = TRUE, prob = p)
    matrix(tt[k] + cell_sample(a[k], u0[k], u1[k], stats::runif(n)), n, 1L)
  }
  # the moments by 8-point Gauss-Legendre quadrature in each cell
  gl <- gauss_legendre(8L)
  m <- vapply(seq_len(K), function(k) {
    nd <- cell_nodes(gl, a[k], u0[k], u1[k])  # R/conditional.R
    x <- tt[k] + nd$u
    c(sum(nd$w * x), sum(nd$w * x^2))
  }, numeric(2))
  mean <- sum(p * m[1L, ])
  structure(list(dim = 1L, mean = mean, cov = matrix(max(sum(p * m[2L, ]) - mean^2, 0), 1L, 1L),
                 sample = sample, log_density = log_density, conditional = 1L,
                 label = sprintf(paste0("the target's own density on a grid of %d points ",
                                        "(log-linear within each cell), dimension 1"), K)),
            class = "jko_init")
}
