# A start for posteriors that are Gaussian given one coordinate: Neal's
# funnel (x given v), a twisted "banana" (x2 given x1), a centred
# hierarchical model (the group effects given the log scale). Their
# geometry is what a flow of convex-gradient maps learns slowly (the
# banana and the funnel stalled at KL 0.2 and 0.1 after 6-9 s), and what
# the Laplace approximation of one mode cannot hold. Along a grid of the
# coordinate j, the Gaussian of the others given x_j (Newton's mode and
# Hessian at each grid point), weighted by the Laplace estimate of x_j's
# marginal, as nested Laplace approximations do for a hyperparameter
# (Rue, Martino and Chopin, 2009). Its density is exact, so it is a
# proposal for the exact correction and a start for the flow like any
# other.

# The conditional-Laplace law along coordinate j: grid points t_k from the
# centre c outwards, spacing `step` (doubled where a side has taken 30
# points without its marginal falling `drop` below the largest), at each
# the mode y_k of the other coordinates with x_j = t_k and their Hessian
# H_k (finite differences of the gradient; after the first point's, in
# few gradients where that Hessian is sparse: hessian_plan()), and the log marginal
# l_k = -beta Phi(t_k, y_k) - log det(beta H_k) / 2; the law of those
# points is conditional_law()'s, the grid refined where the conditional
# changes shape (refine_grid(); with refine = FALSE, later by
# conditional_refined()). NULL where it fails (no conditional mode at the
# centre, fewer than 5 points).
conditional_laplace <- function(potential, beta, centre, step, j, drop = 12, kmax = 60L,
                                refine = TRUE) {
  D <- length(centre)
  if (D < 2L || !is.finite(step) || step <= 0) return(NULL)
  at <- grid_point(j, D)
  pts <- list()
  fp <- planned_first(potential, beta, j, centre, at)
  if (is.null(fp)) return(NULL)
  first <- fp$first
  plan <- fp$plan
  pts[[1L]] <- first
  top <- first$l
  for (dir in c(-1, 1)) {
    cur <- first
    s <- step
    for (k in seq_len(kmax)) {
      if (k %% 30L == 0L) s <- 2 * s
      nx <- conditional_mode(potential, beta, j, cur$t + dir * s, cur$y, at, cur$sd, plan)
      if (is.null(nx)) break
      pts[[length(pts) + 1L]] <- nx
      cur <- nx
      top <- max(top, nx$l)
      if (nx$l < top - drop) break
    }
  }
  if (length(pts) < 5L) return(NULL)
  pts <- pts[order(vapply(pts, `[[`, 0, "t"))]
  q <- conditional_law(pts, j, D, beta)
  q$plan <- plan
  if (refine) conditional_refined(q, potential, beta) else q
}

# The point of R^D with x_j = t and the other coordinates y.
grid_point <- function(j, D) {
  oth <- seq_len(D)[-j]
  function(t, y) {
    x <- numeric(D)
    x[j] <- t
    x[oth] <- y
    x
  }
}

# A conditional law, its grid refined (refine_grid()); q itself where no
# point is added. The laws compete by ELBO unrefined (conditional_laplace(
# refine = FALSE)), and only the one taken is refined (a law along an axis where the target is not Gaussian
# given it, never taken, refined to 145 points in a funnel's x's).
conditional_refined <- function(q, potential, beta) {
  pts <- refine_grid(q$pts, potential, beta, q$conditional, grid_point(q$conditional, q$dim),
                     plan = q$plan)
  if (length(pts) == length(q$pts)) return(q)
  out <- conditional_law(pts, q$conditional, q$dim, beta)
  out$plan <- q$plan
  out
}

# The grid pts refined where neighbouring points' Gaussians differ in
# more than scale: a point halfway (Newton from the neighbours' mean mode)
# in each cell whose ends' conditional covariances, one scaled to the
# other at best, have a symmetric KL above `kl_max` (neighbour_kl()), for
# at most `passes` rounds and `most` points. A cell holds its point's
# Gaussian across its width, scaled (conditional_law()), and where the
# conditional's shape changes along x_j the weights vary across the cell:
# the centred eight schools' law along log tau, at a spacing of 0.5 (half
# the sd of the N(0, I) candidate its axis came from), had an ESS of
# 70-73% (k-hat 0.44-0.56, passing or not with the draws).
refine_grid <- function(pts, potential, beta, j, at, kl_max = 0.1, passes = 3L, most = 250L,
                        plan = NULL) {
  for (pass in seq_len(passes)) {
    bad <- which(neighbour_kl(pts) > kl_max)
    if (!length(bad) || length(pts) + length(bad) > most) break
    new <- lapply(bad, function(k) {
      conditional_mode(potential, beta, j, (pts[[k]]$t + pts[[k + 1L]]$t) / 2,
                       (pts[[k]]$y + pts[[k + 1L]]$y) / 2, at, pmax(pts[[k]]$sd, pts[[k + 1L]]$sd),
                       plan)
    })
    new <- new[!vapply(new, is.null, NA)]
    if (!length(new)) break
    pts <- c(pts, new)
    pts <- pts[order(vapply(pts, `[[`, 0, "t"))]
  }
  pts
}

# The symmetric KL between the Gaussians N(0, (R_k' R_k)^-1) of each pair
# of neighbouring grid points, one of them scaled by the factor that
# makes it least (the law scales the precision across a cell:
# conditional_law()): (tr(P_b S_a) / c + c tr(P_a S_b)) / 2 - m at its least,
# sqrt(tr(P_b S_a) tr(P_a S_b)) - m, with tr(P_b S_a) = |R_b R_a^-1|_F^2.
neighbour_kl <- function(pts) {
  K <- length(pts)
  if (K < 2L) return(numeric(0))
  m <- nrow(pts[[1L]]$R)
  inv <- lapply(pts, function(q) backsolve(q$R, diag(m)))
  vapply(seq_len(K - 1L), function(k) {
    sqrt(sum((pts[[k + 1L]]$R %*% inv[[k]])^2) * sum((pts[[k]]$R %*% inv[[k + 1L]])^2)) - m
  }, 0)
}

# Newton's method in the coordinates other than j with x_j = t, from y
# (j one coordinate, or several with t as long: conditional_pair(),
# R/conditional_pair.R)
# (backtracking on the value; Hessian by forward differences of the
# gradient, steps scaled by `scale`, the neighbouring point's conditional
# sds (forward_hessian()), its eigenvalues taken in absolute value and floored, so that
# a step from a point of negative curvature still descends): list(t, y
# (the mode), R (the Cholesky factor of beta H), l (the log marginal)), or
# NULL where no mode was reached: the last Hessian not positive definite,
# or the Newton decrement (the distance to the quadratic's minimum in the
# conditional's own sds) above 1e-3 where the iterations ended. Such a
# point, kept with its eigenvalues floored, gave a Poisson GP regression's
# law along log rho (posteriordb's gp_pois_regr) a conditional sd of 100
# in one direction and log-weights down to -2800 (its gradient 122, its
# least eigenvalue -16). `plan`: the Hessians' sparsity (hessian_plan(),
# from the grid's first point); keep = TRUE: the last Hessian in $H too.
conditional_mode <- function(potential, beta, j, t, y, at, scale = 1, plan = NULL, keep = FALSE) {
  oth <- seq_len(length(y) + length(j))[-j]
  done <- FALSE
  for (it in seq_len(30L)) {
    r <- forward_hessian(potential, at(t, y), oth, scale, plan)
    if (is.null(r) || !is.finite(r$value)) return(NULL)
    nt <- newton_metric(r$H)
    dy <- -nt$solve(r$gradient)
    # backtracking: f is the value at y, as the loop leaves it
    f <- r$value
    a <- 1
    repeat {
      fn <- modes_vg(potential, matrix(at(t, y + a * dy), 1L))$value  # R/descent.R
      if (is.finite(fn) && fn <= f + 1e-12 * abs(f)) break
      a <- a / 4
      if (a < 1e-6) break
    }
    # no descent left: a mode if the Newton decrement at y is small
    if (a < 1e-6) {
      done <- sqrt(sum(nt$whiten(r$gradient)^2)) < 1e-3
      break
    }
    y <- y + a * dy
    f <- fn
    # the Newton decrement: the step in the conditional's own sds. A whole
    # step of less than newton_last ends it too: what is left is of the
    # order of its square, and the Hessian it was taken with is the mode's
    # to that step
    step <- a * sqrt(sum(nt$whiten_step(dy)^2))
    if (step < 1e-6 || (a == 1 && step < newton_last)) {
      done <- TRUE
      break
    }
  }
  if (!done || !nt$positive) return(NULL)
  R <- nt$factor(beta)
  if (is.null(R)) return(NULL)
  out <- list(t = t, y = y, R = R, l = -beta * f - sum(log(diag(R))), sd = sqrt(diag(chol2inv(R))))
  if (keep) out$H <- r$H
  out
}

# The first point of a grid or lattice of conditional modes, the mode of
# the others given x_j = centre[j] from centre[-j] (conditional_mode()),
# and the plan of the Hessians of the points after it (hessian_plan():
# NULL where the Hessian is not sparse), from its Hessian and one at a
# point near it (plan_point()): list(first, plan), or NULL where there is
# no mode.
planned_first <- function(potential, beta, j, centre, at) {
  first <- conditional_mode(potential, beta, j, centre[j], centre[-j], at, keep = TRUE)
  if (is.null(first)) return(NULL)
  oth <- seq_along(centre)[-j]
  H2 <- forward_hessian(potential, at(first$t, plan_point(first$y, first$sd)), oth)$H
  plan <- hessian_plan(first$H, H2)
  first$H <- NULL
  list(first = first, plan = plan)
}

# A point near x (sds sd) where no coordinate is where it was: x moved by
# sd sin(1.618 i) in coordinate i, a fixed pattern (no random draw). An
# interaction that vanishes where a Hessian's pattern is learnt, as x_i x_k
# at x = 0 does, shows at one of two such points.
plan_point <- function(x, sd = 1) x + sd * sin(1.618 * seq_along(x))

# The largest whole Newton step in conditional_mode() after which no other
# is taken. On rats' lattice of 470 points (D = 65), the first step from
# the line through the two points behind was under 0.01 sds at 73% of the
# points (median 0.0065), and the next then under 2e-6; each step costs a
# Hessian, 64 gradients (8 with the plan of its sparsity: hessian_plan()).
newton_last <- 0.01

# The metric of a Newton step by the Hessian H: its Cholesky factor where
# H is positive definite with pivots within 1e8 of each other (an
# eigendecomposition costs some 25 times a factorisation: at D = 65 it
# was 29% of a start that built a lattice of 470 points), else its
# eigenvalues in absolute value, floored at 1e-8 of the largest, so that
# a step from a point of negative curvature still descends. whiten(g):
# a vector whose squared norm is g' M^-1 g; solve(g): M^-1 g;
# whiten_step(d): one whose squared norm is d' M d; positive: H positive
# definite; factor(beta): the Cholesky factor of beta M (NULL where it
# fails).
newton_metric <- function(H) {
  U <- tryCatch(chol(H), error = function(e) NULL)
  piv <- if (!is.null(U)) diag(U)^2
  if (!is.null(U) && all(is.finite(piv)) && min(piv) > 1e-8 * max(piv)) {
    return(list(whiten = function(g) forwardsolve(t(U), g),
                solve = function(g) as.vector(backsolve(U, forwardsolve(t(U), g))),
                whiten_step = function(d) as.vector(U %*% d), positive = TRUE,
                factor = function(beta) sqrt(beta) * U))
  }
  e <- eigen(H, symmetric = TRUE)
  lam <- pmax(abs(e$values), 1e-8 * max(abs(e$values)), 1e-12)
  list(whiten = function(g) as.vector(crossprod(e$vectors, g)) / sqrt(lam),
       solve = function(g) as.vector(e$vectors %*% (crossprod(e$vectors, g) / lam)),
       whiten_step = function(d) sqrt(lam) * as.vector(crossprod(e$vectors, d)),
       positive = min(e$values) > 0,
       factor = function(beta) {
         P <- beta * (e$vectors %*% (lam * t(e$vectors)))
         tryCatch(chol((P + t(P)) / 2), error = function(e) NULL)
       })
}

# The law of conditional_laplace()'s grid points pts (sorted by t): cell k
# (between the midpoints to its neighbours) holds the mass of x_j's
# marginal exp(l_k + a_k (x_j - t_k)), a_k the slope of the log marginal
# between the neighbours (log-linear within a cell: a constant one left
# importance weights varying by a factor e^0.75 across a cell three sds
# out), and the others N(y_k + u s_k + u^2 c_k, (e^(2 g_k u) beta H_k)^-1),
# u = x_j - t_k, s_k and c_k the slope and bend of the parabola through the
# modes at t_k and its neighbours, g_k the rate at which the conditional's
# precision scales between the neighbours (the change of log det(beta H)
# / (2 (D - 1)) per unit of x_j). A funnel's x's given v have precision
# e^-v exactly: held fixed across a cell of width 0.25, it left their
# log-weights varying by +-1 (ESS 99%, k-hat 0.52 in 4096 draws); scaled,
# they are exact.
conditional_law <- function(pts, j, D, beta, rates = FALSE, moments = TRUE) {
  oth <- seq_len(D)[-j]
  tt <- vapply(pts, `[[`, 0, "t")
  K <- length(tt)
  Y <- matrix(unlist(lapply(pts, `[[`, "y")), K, D - 1L, byrow = TRUE)
  l <- vapply(pts, `[[`, 0, "l")
  cl <- line_cells(tt, l)
  lo <- cl$lo
  hi <- cl$hi
  nb <- cl$nb
  dt <- cl$dt
  a <- cl$a
  # a point's slope of v along x_j, from its neighbours
  nb_slope <- function(v) (v[nb[, 2L]] - v[nb[, 1L]]) / dt
  # the modes' line through each point, bent by the parabola through it
  # and its neighbours (a banana's x2 given x1 is a parabola; the straight
  # line's error at a cell's edge, b (w / 2)^2, was 0.6 sd at w = 5)
  h1 <- tt - tt[nb[, 1L]]
  h2 <- tt[nb[, 2L]] - tt
  d1 <- (Y - Y[nb[, 1L], , drop = FALSE]) / pmax(h1, 1e-300)
  d2 <- (Y[nb[, 2L], , drop = FALSE] - Y) / pmax(h2, 1e-300)
  inner <- matrix(h1 > 0 & h2 > 0, K, D - 1L)
  slope <- ifelse(inner, (d1 * h2 + d2 * h1) / (h1 + h2), ifelse(matrix(h1 > 0, K, D - 1L), d1, d2))
  bend <- ifelse(inner, (d2 - d1) / (h1 + h2), 0)
  line <- function(kk, u) sweep(outer(u, slope[kk, ]) + outer(u^2, bend[kk, ]), 2L, Y[kk, ], "+")
  u0 <- cl$u0
  u1 <- cl$u1
  lint <- cl$lint
  p <- cl$p
  ldet <- vapply(pts, function(q) sum(log(diag(q$R))), 0)
  # the rates at which the others' precision scales along x_j: one for all
  # (the log determinant's slope over D - 1) or each its own (the slope of
  # log H_ii / 2: conditional_variants())
  g <- nb_slope(ldet) / (D - 1)
  G <- if (rates) {
    lhd <- half_log_precisions(pts)
    (lhd[nb[, 2L], , drop = FALSE] - lhd[nb[, 1L], , drop = FALSE]) / dt
  }
  # the factors of the others' deviations from their line, at u from t_k
  # (one rate: a vector, applied as before)
  rate <- function(kk, u) if (rates) exp(outer(u, G[kk, ])) else exp(g[kk] * u)
  gs <- if (rates) rowSums(G) else (D - 1) * g
  log_density <- function(x) {
    k <- findInterval(x[, j], c(lo, hi[K]), rightmost.closed = TRUE)
    out <- rep(-Inf, nrow(x))
    for (kk in unique(k[k >= 1L & k <= K])) {
      i <- which(k == kk)
      u <- x[i, j] - tt[kk]
      z <- if (rates) (rate(kk, u) * (x[i, oth, drop = FALSE] - line(kk, u))) %*% t(pts[[kk]]$R)
           else rate(kk, u) * ((x[i, oth, drop = FALSE] - line(kk, u)) %*% t(pts[[kk]]$R))
      out[i] <- log(p[kk]) + a[kk] * u - lint[kk] + ldet[kk] + gs[kk] * u -
        0.5 * rowSums(z^2) - (D - 1) / 2 * log(2 * pi)
    }
    out
  }
  sample <- function(n) {
    k <- sample.int(K, n, replace = TRUE, prob = p)
    u <- cell_sample(a[k], u0[k], u1[k], stats::runif(n))
    x <- matrix(0, n, D)
    x[, j] <- tt[k] + u
    z <- matrix(stats::rnorm(n * (D - 1L)), n, D - 1L)
    for (kk in unique(k)) {
      i <- which(k == kk)
      e <- if (rates) t(backsolve(pts[[kk]]$R, t(z[i, , drop = FALSE]))) / rate(kk, u[i])
           else exp(-g[kk] * u[i]) * t(backsolve(pts[[kk]]$R, t(z[i, , drop = FALSE])))
      x[i, oth] <- e + line(kk, u[i])
    }
    x
  }
  # its centre and covariance: a mixture over the cells of (x_j, the
  # others' line at x_j) plus the others' Gaussian noise, the moments over
  # x_j in a cell by 8-point Gauss-Legendre quadrature against its
  # truncated exponential (exact for the line's polynomial part to the
  # rule's degree)
  gl <- gauss_legendre(8L)
  mo <- if (moments) {
    rows <- lapply(seq_len(K), function(kk) {
      nd <- cell_nodes(gl, a[kk], u0[kk], u1[kk])
      u <- nd$u
      w <- nd$w
      list(z = cbind(tt[kk] + u, line(kk, u)), w = w,
           scale = if (rates) 1 / rate(kk, u) else sum(w * exp(-2 * g[kk] * u)))
    })
    cell_moments(rows, p, pts, j, D)
  }
  structure(list(dim = D, mean = mo$mean, cov = mo$cov, sample = sample,
                 log_density = log_density, conditional = j, pts = pts,
                 label = sprintf(paste0("conditional Laplace approximation along coordinate %d ",
                                        "(%d grid points; Gaussian given it%s), dimension %d"),
                                 j, K, corrections_text(rates, pts), D)),
            class = "jko_init")
}

# log H_ii / 2 of the others' precision at each point of pts (a row a
# point): its slopes are their own rates (conditional_law(), pair_law()).
half_log_precisions <- function(pts) {
  log(t(vapply(pts, function(q) colSums(q$R^2), numeric(nrow(pts[[1L]]$R))))) / 2
}

# The label's words for a law's corrections: own rates, and the means of
# pair_shift() (R/conditional_pair.R).
corrections_text <- function(rates, pts) {
  paste0("", if (rates) ", each coordinate's precision at its own rate",
         if (isTRUE(attr(pts, "shifted"))) ", about their corrected means")
}

# The centre and covariance of a law of cells (conditional_law(), and
# pair_law() in R/conditional_pair.R), from each cell's quadrature
# rows[[k]] (z: the conditioned coordinates j and the others' line at its
# nodes; w: the nodes' weights; scale: the mean factor of the others'
# covariance over the cell, or a matrix of the factors of their sds at
# each node, a row a node), the cells' masses p and their points pts
# (R: the Cholesky factor of the others' precision): list(mean, cov) in
# the target's order of coordinates.
cell_moments <- function(rows, p, pts, j, D) {
  K <- length(rows)
  mean <- colSums(do.call(rbind, lapply(seq_len(K), function(kk) p[kk] * colSums(rows[[kk]]$w * rows[[kk]]$z))))
  S <- matrix(0, D, D)
  inner <- -seq_along(j)
  for (kk in seq_len(K)) {
    zc <- sweep(rows[[kk]]$z, 2L, mean)
    ck <- crossprod(zc * sqrt(rows[[kk]]$w))
    sc <- rows[[kk]]$scale
    if (is.matrix(sc)) sc <- crossprod(sc * sqrt(rows[[kk]]$w))
    ck[inner, inner] <- ck[inner, inner] + sc * chol2inv(pts[[kk]]$R)
    S <- S + p[kk] * ck
  }
  perm <- order(c(j, seq_len(D)[-j]))
  S <- S[perm, perm]
  list(mean = mean[perm], cov = (S + t(S)) / 2)
}

# The cells of a law along one coordinate at the sorted points tt, of log
# marginal l (conditional_law(), line_law()): cell k between the midpoints
# to its neighbours (lo, hi; u0 and u1 from t_k), nb the neighbours and dt
# their distance, a the slope of l between them, lint the log of the
# cell's integral of exp(a u) ((e^{a u1} - e^{a u0}) / a), p the cells'
# masses.
line_cells <- function(tt, l) {
  K <- length(tt)
  mid <- (tt[-1L] + tt[-K]) / 2
  lo <- c(tt[1L] - (tt[2L] - tt[1L]) / 2, mid)
  hi <- c(mid, tt[K] + (tt[K] - tt[K - 1L]) / 2)
  nb <- cbind(pmax(1L, seq_len(K) - 1L), pmin(K, seq_len(K) + 1L))
  dt <- tt[nb[, 2L]] - tt[nb[, 1L]]
  a <- (l[nb[, 2L]] - l[nb[, 1L]]) / dt
  u0 <- lo - tt
  u1 <- hi - tt
  lint <- cell_lint(a, u0, u1)
  lm <- l + lint
  p <- exp(lm - max(lm))
  list(lo = lo, hi = hi, nb = nb, dt = dt, a = a, u0 = u0, u1 = u1, lint = lint, p = p / sum(p))
}

# The nodes u of the n-point Gauss-Legendre rule gl (gauss_legendre()) on
# a cell's interval [u0, u1], and their weights w against its law exp(a u),
# normalised (one cell: conditional_law()'s moments, line_law()'s).
cell_nodes <- function(gl, a, u0, u1) {
  u <- u0 + (gl$x + 1) / 2 * (u1 - u0)
  w <- gl$w * exp(a * u - max(a * u))
  list(u = u, w = w / sum(w))
}

# A cell's law along one coordinate, exp(a u) on [u0, u1] (vectors, one
# entry a cell): cell_lint() the log of its integral, (e^{a u1} - e^{a u0})
# / a; cell_sample() draws u from it by the inverse of its distribution
# function at the uniforms v.
cell_lint <- function(a, u0, u1) {
  ifelse(abs(a * (u1 - u0)) < 1e-8, log(u1 - u0),
         pmax(a * u0, a * u1) + log1p(-exp(-abs(a) * (u1 - u0))) - log(abs(a)))
}
cell_sample <- function(a, u0, u1, v) {
  flat <- abs(a * (u1 - u0)) < 1e-8
  u <- ifelse(flat, u0 + v * (u1 - u0),
              ifelse(a > 0, u1 + log(v + (1 - v) * exp(-a * (u1 - u0))) / a,
                     u0 + log(1 - v + v * exp(a * (u1 - u0))) / a))
  pmin(pmax(u, u0), u1)
}

# The coordinates along which the target is furthest from Gaussian, for
# conditional_laplace(): the Hessian of Phi (finite differences of the
# gradient) at the centre c moved 2 sds (of cov) either way along each
# coordinate, their difference whitened by cov's Cholesky factor (a
# Gaussian's Hessian is the same everywhere: 0); the `top` coordinates of
# largest difference with one above `min_score`, or none. (The 2 D
# Hessians in few gradients where the one at the centre is sparse:
# hessian_plan(); rats' 65 coordinates, 8 gradients a Hessian for 66.)
conditional_axes <- function(potential, centre, cov, top = 2L, min_score = 1) {
  D <- length(centre)
  L <- tryCatch(t(chol(cov)), error = function(e) NULL)
  if (is.null(L) || D < 2L) return(integer(0))
  sd <- sqrt(diag(cov))
  plan <- if (D >= 8L) {
    hessian_plan(forward_hessian(potential, centre, seq_len(D))$H,
                 forward_hessian(potential, plan_point(centre, sd), seq_len(D))$H)
  }
  score <- vapply(seq_len(D), function(j) {
    e <- 2 * sd[j] * (seq_len(D) == j)
    hp <- forward_hessian(potential, centre + e, seq_len(D), plan = plan)
    hm <- forward_hessian(potential, centre - e, seq_len(D), plan = plan)
    if (is.null(hp) || is.null(hm)) return(NA_real_)
    sqrt(sum((crossprod(L, hp$H - hm$H) %*% L)^2))
  }, 0)
  ok <- which(is.finite(score) & score > min_score)
  ok[order(score[ok], decreasing = TRUE)][seq_len(min(top, length(ok)))]
}

# Phi's value and gradient at x, and the Hessian of its block idx by
# forward differences of the gradient: length(idx) + 1 points in one call
# of the potential, the gradient at x serving both (modes_hessian(),
# R/descent.R, takes central differences at 2 D points). list(value,
# gradient (of the block), H), or NULL where a gradient is not finite.
# The steps are 1e-5 of the larger of 1, |x| and `scale` (the block's sds
# where known: a conditional law's neighbouring grid point's). Where the
# curvature is slight, a step of 1e-5 moves a gradient by less than the
# error of a gradient by differences: a 5-D funnel's x's given v = 10
# (precision e^-10) had a Hessian 35% short, and none past v = 10.5, so
# its law along v ended there and missed the tail (k-hat 2.2). `plan`: a
# sparse Hessian's (hessian_plan()), taken in fewer gradients
# (planned_hessian()).
forward_hessian <- function(potential, x, idx, scale = 1, plan = NULL) {
  if (!is.null(plan)) return(planned_hessian(potential, x, idx, scale, plan))
  m <- length(idx)
  eps <- 1e-5 * pmax(1, abs(x[idx]), scale)
  X <- matrix(x, m + 1L, length(x), byrow = TRUE)
  X[cbind(seq_len(m) + 1L, idx)] <- X[cbind(seq_len(m) + 1L, idx)] + eps
  r <- modes_vg(potential, X)  # R/descent.R
  if (any(!is.finite(r$gradient))) return(NULL)
  g <- r$gradient[1L, idx]
  H <- (r$gradient[-1L, idx, drop = FALSE] - matrix(g, m, m, byrow = TRUE)) / eps
  list(value = r$value[1L], gradient = g, H = (H + t(H)) / 2)
}

# A sparse Hessian's finite differences in few gradients (Powell and
# Toint's substitution for symmetric matrices, 1979). Given the pattern
# of H's non-zeros, learnt from one whole Hessian (hessian_plan()), the
# "dense" coordinates (those that touch many others: a hierarchy's group
# means, the data's scale) are each moved alone, giving their columns and,
# by symmetry, their rows; the others are moved together in groups of
# coordinates that share no non-zero row outside the dense ones, so that
# each row of a group's gradient difference holds one unknown entry. On a
# centred hierarchy the effects of different groups share no row: radon's
# 173 coordinates given its two scales need 3 dense moves and 2 groups,
# 6 gradients a Hessian where forward_hessian() takes 174.
planned_hessian <- function(potential, x, idx, scale, plan) {
  m <- length(idx)
  eps <- 1e-5 * pmax(1, abs(x[idx]), scale)
  dense <- plan$dense
  nd <- plan$other
  nc <- if (length(nd)) max(plan$colour) else 0L
  X <- matrix(x, 1L + length(dense) + nc, length(x), byrow = TRUE)
  k <- seq_along(dense)
  X[cbind(1L + k, idx[dense])] <- X[cbind(1L + k, idx[dense])] + eps[dense]
  rc <- 1L + length(dense) + plan$colour
  X[cbind(rc, idx[nd])] <- X[cbind(rc, idx[nd])] + eps[nd]
  r <- modes_vg(potential, X)  # R/descent.R
  if (any(!is.finite(r$gradient))) return(NULL)
  g <- r$gradient[1L, idx]
  dg <- r$gradient[-1L, idx, drop = FALSE] - matrix(g, nrow(X) - 1L, m, byrow = TRUE)
  H <- matrix(0, m, m)
  H[, dense] <- t(dg[k, , drop = FALSE]) / rep(eps[dense], each = m)
  if (length(nd)) {
    # column i of the others: its group's difference on the rows of its
    # pattern outside the dense coordinates
    V <- t(dg[length(dense) + plan$colour, nd, drop = FALSE]) / rep(eps[nd], each = length(nd))
    V[!plan$pattern] <- 0
    H[nd, nd] <- V
    H[dense, nd] <- t(H[nd, dense])
  }
  list(value = r$value[1L], gradient = g, H = (H + t(H)) / 2)
}

# The plan of planned_hessian() from a whole Hessian H (forward_hessian()),
# and H2, one at another point, where given: entries within hessian_zero
# of zero (relative to the geometric mean of their diagonal entries) in
# both are zeros; the dense coordinates are those with
# at least some number of non-zeros, the number that makes the fewest
# gradients (tried from the most down), the others coloured greedily (most neighbours first) so that
# no two of a colour share a non-zero row outside the dense. NULL where
# that saves less than half the gradients: the whole Hessian then. (A
# zero of the pattern that is not one elsewhere, as where an interaction
# vanishes at both points the plan is learnt at, would be missed.)
hessian_plan <- function(H, H2 = NULL) {
  if (is.null(H) || nrow(H) < 8L || any(!is.finite(H))) return(NULL)
  if (!is.null(H2) && (!identical(dim(H2), dim(H)) || any(!is.finite(H2)))) return(NULL)
  m <- nrow(H)
  zero <- function(H) {
    d <- sqrt(abs(diag(H)))
    abs(H) <= hessian_zero * outer(d, d)
  }
  S <- !zero(H)
  if (!is.null(H2)) S <- S | !zero(H2)
  diag(S) <- TRUE
  nnz <- colSums(S)
  best <- NULL
  for (cut in sort(unique(c(nnz, m + 1L)), decreasing = TRUE)) {
    dense <- which(nnz >= cut)
    # (a cut lower down makes more dense coordinates, each a gradient)
    if (!is.null(best) && length(dense) >= best$cost) break
    nd <- which(nnz < cut)
    colour <- greedy_colours(S[nd, nd, drop = FALSE])
    cost <- length(dense) + if (length(nd)) max(colour) else 0L
    if (is.null(best) || cost < best$cost) {
      best <- list(cost = cost, dense = dense, other = nd, colour = colour,
                   pattern = S[nd, nd, drop = FALSE])
    }
  }
  if (best$cost + 1L > m / 2) return(NULL)
  best
}
hessian_zero <- 1e-10

# Greedy colours of the columns of the logical pattern S: two columns that
# share a TRUE row get different colours; the columns with most such
# neighbours first, each the least colour its neighbours leave.
greedy_colours <- function(S) {
  n <- ncol(S)
  if (!n) return(integer(0))
  A <- crossprod(S + 0) > 0
  diag(A) <- FALSE
  colour <- integer(n)
  for (i in order(-colSums(A))) {
    used <- colour[A[, i]]
    colour[i] <- min(setdiff(seq_len(n), used))
  }
  colour
}

# Nodes and weights of the n-point Gauss-Legendre rule on [-1, 1] (Golub
# and Welsch: the eigenvalues of the Jacobi matrix, the weights twice the
# squared first components of its eigenvectors).
gauss_legendre <- function(n) {
  k <- seq_len(n - 1L)
  b <- k / sqrt(4 * k^2 - 1)
  J <- matrix(0, n, n)
  J[cbind(k, k + 1L)] <- b
  J[cbind(k + 1L, k)] <- b
  e <- eigen(J, symmetric = TRUE)
  o <- order(e$values)
  list(x = e$values[o], w = 2 * e$vectors[1L, o]^2)
}
