# A start for posteriors that are Gaussian given two coordinates where no
# one coordinate does: a Gaussian process's latent values given its
# length scale and amplitude, or a latent value (posteriordb's
# gp_pois_regr: along log rho alone the conditional Laplace law had a KL
# of 9.5, along log rho and the first latent value 0.10-0.12), a
# hierarchical model's effects given two of its variances (posteriordb's
# rats: 1.6 along one, 0.11 along two). The nested Laplace approximation
# of conditional_laplace() (R/conditional.R) on a lattice of the two
# coordinates: at each lattice point t_k the mode y_k of the others given
# t_k and their Hessian H_k, and the log marginal l_k; each point owns the
# rectangle about it (half a spacing each way), where the two coordinates
# follow exp(l_k + a_k'u), u = t - t_k, a_k the slopes of the log marginal
# between the lattice neighbours, and the others
# N(y_k + B_k u, (S(u) beta H_k S(u))^-1), B_k the slopes of the modes and
# S(u) = diag(e^(G_k u)), G_k the rates at which each coordinate's
# precision scales along the two (the slopes of log H_ii / 2: in a centred
# hierarchy the effects' precision scales with their own group's scale
# alone, e^(-2 x_s) where their prior dominates, and that of the data's
# scale or the group means not at all). y_k is the conditional mode moved
# to the conditional mean by Laplace's first-order correction
# (pair_shift()). Its density is exact, so it is a proposal and a start
# like any other; outside the rectangles the lattice reached it is zero,
# as the one-coordinate law is outside its grid.
#
# On posteriordb's radon model with varying intercepts and slopes, centred
# (D = 175; along sigma_alpha and sigma_beta, 318 lattice points), the law
# with one rate for all the others, the mean of their rates, had a KL of
# 1.84 (the log-weights' variance 4.8, 15% of it explained by the draws'
# place in their rectangle, 39% by log sigma_y); with each coordinate's
# own rate, 1.06 (80% of what is left by log sigma_y, whose draws lay 1.3
# sd below the posterior's: the joint mode's sigma_y is the data's
# residual sd without the degrees of freedom the effects take); with
# log sigma_y's mean corrected too, 0.14.

# The law along coordinates j (two of them) from the lattice of spacing
# `step` (two entries) about `centre`: points reached from the centre by
# steps to the four neighbours, from every point whose log marginal is
# within `drop` of the largest so far, each point's Newton started on the
# line through the modes of the point it was reached from and the one
# behind that (conditional_mode(), R/conditional.R),
# at most `most` points (pair_lattice()). NULL where fewer than 9 points
# are reached. The law is the best of those of pair_law() and
# pair_shift() on n draws each.
conditional_pair <- function(potential, beta, centre, step, j, drop = 12, most = 500L, n = 4096L) {
  pts <- pair_lattice(potential, beta, centre, step, j, drop, most)
  if (is.null(pts)) return(NULL)
  D <- length(centre)
  # the laws with one rate for all the others or each its own, about the
  # modes or the shifted modes, each judged on n draws, the best taken
  # (best_variant()). Own rates alone, on posteriordb's pilots
  # model (whose effects are known only through sums a_j + b_k: a ridge of
  # sd 7 in the sum a + b and a narrow one across it), put the narrow
  # direction's sd up to 7 |e^(G_a u) - e^(G_b u)|: a KL of 448 (one rate:
  # 0.54). On rats the shift took the KL from 0.11 to 0.03 and the k-hat
  # from 0.37 to 0.63 (log sigma_alpha, shifted, is skewed given the pair:
  # its Gaussian moved off the longer tail), and a start that passed no
  # longer did. A k-hat near 1/2 on n draws is noise (rats' shifted law
  # passed on one draw of 4096 and trained 4 steps, 41 s): best_variant().
  build <- function(p, rates, moments = FALSE) pair_law(p, j, D, step, beta, rates, moments)
  v <- best_variant(build(pts, FALSE), pts, build,
                    function() pair_shift(pts, potential, beta, j, grid_point(j, D)),
                    potential, beta, n)
  # (their centres and covariances, by quadrature, for the one taken only)
  build(v$pts, v$rates, moments = TRUE)
}

# A law along one coordinate q (conditional_laplace(), R/conditional.R),
# or one with its others' precision scaled at their own rates, or either
# about their corrected means (pair_shift(), centred on the grid point of
# largest log marginal), the best on n draws each (best_variant()): the
# corrections of the law along two coordinates, for the neck start along
# one scale (neck_start(), R/stationary.R).
conditional_variants <- function(q, potential, beta, n = 4096L) {
  pts <- q$pts
  j <- q$conditional
  D <- q$dim
  if (is.null(pts) || length(j) != 1L) return(q)
  # (conditional_law(), R/conditional.R)
  build <- function(p, rates, moments = FALSE) conditional_law(p, j, D, beta, rates, moments)
  shift <- function() {
    l <- vapply(pts, `[[`, 0, "l")
    pair_shift(pts, potential, beta, j, grid_point(j, D), p0 = pts[[which.max(l)]], plan = q$plan)
  }
  v <- best_variant(q, pts, build, shift, potential, beta, n)
  if (v$b == 1L) return(q)
  build(v$pts, v$rates, moments = TRUE)
}

# The law to take of the four that build(pts, rates, moments) makes from
# the points pts and from shift()'s (pair_shift()): first (built with
# rates = FALSE, about the modes: the law before the corrections,
# conditional_pair(), conditional_variants()), own rates, and either
# about the shifted modes (where shift() moves them): list(b, its index;
# pts and rates, to build it with). First alone where it passes here with an
# ESS above 0.95 (no other can beat it by the margin below, and the
# others' building, the mean shift's Hessians included, is spared). Each judged
# on n draws of its own as adapt_start() judges a start (pmc_round(),
# R/pmc.R), passing here only with a k-hat under pair_khat (or weights
# bounded near their mean, passes_on_draws()), else ranked by its k-hat;
# the first unless another is better by more than noise: passing where it
# does not, an ESS larger by 0.05 where both pass, a k-hat smaller by 0.1
# where neither does (on rats' draws the four k-hats were 0.47, 0.46,
# 0.67, 0.82). The random stream is put back after, so that what follows
# draws as it would from the first law alone.
best_variant <- function(first, pts, build, shift, potential, beta, n) {
  rs <- random_state()  # R/streams.R
  judge <- function(q) {
    r <- tryCatch(pmc_round(q, potential, beta, n, 0.1), error = function(e) NULL)  # R/pmc.R
    if (is.null(r)) return(Inf)
    k <- r$d$pareto_k
    bounded <- 1 / mean(exp(r$lw - max(r$lw))) <= 1.1
    if (r$pass && (isTRUE(k < pair_khat) || bounded)) r$score else if (is.finite(k)) k else Inf
  }
  score <- judge(first)
  if (score < -10.95) {
    restore_random_state(rs)
    return(list(b = 1L, pts = pts, rates = FALSE))
  }
  shifted <- pts
  others <- tryCatch({
    shifted <- shift()
    c(list(build(pts, TRUE)),
      if (!identical(shifted, pts)) list(build(shifted, FALSE), build(shifted, TRUE)))
  }, error = function(e) list())
  score <- c(score, vapply(others, judge, 0))
  restore_random_state(rs)
  b <- which.min(score)
  margin <- if (score[b] < -10 && score[1L] < -10) 0.05 else 0.1
  if (!(score[b] < -10 && !(score[1L] < -10)) && !(score[1L] - score[b] > margin)) b <- 1L
  list(b = b, pts = if (b > 2L) shifted else pts, rates = b %% 2L == 0L)
}
pair_khat <- 0.4

# conditional_pair()'s lattice points: each the list of conditional_mode()
# and its lattice indices ab, named "a,b"; NULL where fewer than 9.
pair_lattice <- function(potential, beta, centre, step, j, drop = 12, most = 500L) {
  D <- length(centre)
  if (D < 3L || length(j) != 2L || any(!is.finite(step) | step <= 0)) return(NULL)
  at <- grid_point(j, D)  # R/conditional.R
  fp <- planned_first(potential, beta, j, centre, at)  # R/conditional.R
  if (is.null(fp)) return(NULL)
  first <- fp$first
  plan <- fp$plan
  pts <- list(`0,0` = c(first, list(ab = c(0L, 0L))))
  top <- first$l
  queue <- list(c(0L, 0L))
  tried <- new.env(hash = TRUE)
  tried[["0,0"]] <- TRUE
  moves <- list(c(1L, 0L), c(-1L, 0L), c(0L, 1L), c(0L, -1L))
  while (length(queue) && length(pts) < most) {
    from <- pts[[paste(queue[[1L]], collapse = ",")]]
    queue <- queue[-1L]
    if (from$l < top - drop) next
    for (mv in moves) {
      ab <- from$ab + mv
      key <- paste(ab, collapse = ",")
      if (!is.null(tried[[key]])) next
      tried[[key]] <- TRUE
      # Newton from the line through the point it is reached from and the
      # one behind that, where there is one
      back <- pts[[paste(from$ab - mv, collapse = ",")]]
      y0 <- if (is.null(back)) from$y else 2 * from$y - back$y
      p <- conditional_mode(potential, beta, j, centre[j] + ab * step, y0, at, from$sd, plan)
      if (is.null(p)) next
      pts[[key]] <- c(p, list(ab = ab))
      top <- max(top, p$l)
      queue[[length(queue) + 1L]] <- ab
      if (length(pts) >= most) break
    }
  }
  if (length(pts) < 9L) return(NULL)
  structure(pts, plan = plan)
}

# The lattice points pts with their modes y moved to the conditional
# means, to first order (Laplace's correction for a skewed law: the mean
# of exp(-f) is the mode - V grad log det(f'') / 2 + ..., V = f''^-1),
# along the directions s among the others where log det of the
# conditional Hessian moves: those where the correction would move some
# coordinate by over `least` of its sd, screened at the centre point
# pts[["0,0"]] by the diagonal of the Hessian's derivative (2 m + 1
# gradients: d H_ii / d x_s from second differences of the gradient along
# each i, d log det ~ sum_i V_ii d H_ii / d x_s; p0, for a law along one
# coordinate the grid point of largest log marginal), at most `most` of them,
# then at each point from the Hessian at y_s + its sd against the mode's
# (one a direction). (Tried at a quarter of the points, the rest taking
# their neighbours' mean: radon's fits were no faster, and one of three
# was not reached.)
# The log marginal l gains what the shift does: along such a direction
# the others' log det adds a slope v to the potential, and the integral of
# exp(-f) then exceeds Laplace's by exp(v' V v / 8) = exp(|R d|^2 / 2), d
# the shift (which varies with the lattice's coordinates, and moves the
# law's mass along them: on radon, left out, the scales' draws lay low,
# sigma_beta's median 0.232 against 0.256, the weights rising by 0.9
# across sigma_alpha's range).
# Where no direction passes the screen, pts as they were. In a model
# with the data's scale sigma among the others that is log sigma, whose
# conditional mode given the hierarchy's scales is the residual sd
# without the degrees of freedom its effects take (radon: 1.3 sd low).
pair_shift <- function(pts, potential, beta, j, at, least = 0.1, most = 4L, p0 = pts[["0,0"]],
                       plan = attr(pts, "plan")) {
  if (is.null(p0)) return(pts)
  m <- length(p0$y)
  oth <- seq_len(m + length(j))[-j]
  dH <- tryCatch(gradient_second_differences(potential, at(p0$t, p0$y), oth,  # R/descent.R
                                             p0$sd / 2)$dH[, oth, drop = FALSE],
                 error = function(e) NULL)  # row i: d H_ii / d x_s
  if (is.null(dH) || any(!is.finite(dH))) return(pts)
  v <- beta * colSums(p0$sd^2 * dH)
  score <- abs(v) * p0$sd / 2
  s <- utils::head(order(-score)[score[order(-score)] > least], most)
  if (!length(s)) return(pts)
  out <- lapply(pts, function(p) {
    V <- chol2inv(p$R)
    d <- numeric(m)
    # log det of the potential's Hessian at the mode, from its factor
    ld0 <- 2 * sum(log(diag(p$R))) - m * log(beta)
    for (k in s) {
      e <- p$sd[k]
      y <- p$y
      y[k] <- y[k] + e
      r <- forward_hessian(potential, at(p$t, y), oth, p$sd, plan)  # R/conditional.R
      U <- if (!is.null(r)) tryCatch(chol(r$H), error = function(e) NULL)
      if (!is.null(U)) d <- d - (2 * sum(log(diag(U))) - ld0) / (2 * e) * V[, k]
    }
    p$y <- p$y + d
    p$l <- p$l + sum((p$R %*% d)^2) / 2
    p
  })
  structure(out, shifted = TRUE)
}

# The law of conditional_pair()'s lattice points pts (named "a,b" by their
# lattice indices ab): the others' precision scaled across a rectangle at
# each one's own rate (rates = TRUE) or at their mean rate, the slope of
# the log determinant over m, for all; with moments = FALSE, no centre and
# covariance (a law to be judged by its draws only).
pair_law <- function(pts, j, D, step, beta, rates = TRUE, moments = TRUE) {
  oth <- seq_len(D)[-j]
  m <- D - 2L
  K <- length(pts)
  AB <- matrix(unlist(lapply(pts, `[[`, "ab")), K, 2L, byrow = TRUE)
  tt <- matrix(unlist(lapply(pts, `[[`, "t")), K, 2L, byrow = TRUE)
  Y <- matrix(unlist(lapply(pts, `[[`, "y")), K, m, byrow = TRUE)
  l <- vapply(pts, `[[`, 0, "l")
  ldet <- vapply(pts, function(q) sum(log(diag(q$R))), 0)
  keys <- names(pts)
  nb <- function(e) match(paste(AB[, 1L] + e[1L], AB[, 2L] + e[2L], sep = ","), keys)
  # the slope of v (a column, or a matrix of them) along lattice axis e:
  # central differences where both neighbours were reached, one-sided
  # where one was, 0 where none
  slope <- function(v, e, s) {
    v <- as.matrix(v)
    up <- nb(e)
    dn <- nb(-e)
    vu <- v[ifelse(is.na(up), seq_len(K), up), , drop = FALSE]
    vd <- v[ifelse(is.na(dn), seq_len(K), dn), , drop = FALSE]
    span <- s * ((!is.na(up)) + (!is.na(dn)))
    (vu - vd) / ifelse(span > 0, span, Inf)
  }
  e1 <- c(1L, 0L)
  e2 <- c(0L, 1L)
  a <- cbind(slope(l, e1, step[1L]), slope(l, e2, step[2L]))
  # each coordinate's rate along each axis, and their sums (the log
  # determinant's)
  lhd <- half_log_precisions(pts)  # R/conditional.R
  G1 <- slope(lhd, e1, step[1L])
  G2 <- slope(lhd, e2, step[2L])
  if (!rates) {
    G1[] <- slope(ldet, e1, step[1L]) / m
    G2[] <- slope(ldet, e2, step[2L]) / m
  }
  gs <- cbind(rowSums(G1), rowSums(G2))
  rate <- function(k, u) exp(outer(u[, 1L], G1[k, ]) + outer(u[, 2L], G2[k, ]))
  B1 <- slope(Y, e1, step[1L])
  B2 <- slope(Y, e2, step[2L])
  # each rectangle's integral along each axis, and its mass
  h <- step / 2
  lint <- cbind(cell_lint(a[, 1L], -h[1L], h[1L]), cell_lint(a[, 2L], -h[2L], h[2L]))  # R/conditional.R
  lm <- l + rowSums(lint)
  p <- exp(lm - max(lm))
  p <- p / sum(p)
  # (the sums sweep() would make, without its checks)
  line <- function(k, u) {
    outer(u[, 1L], B1[k, ]) + outer(u[, 2L], B2[k, ]) + rep(Y[k, ], each = nrow(u))
  }
  log_density <- function(x) {
    x <- as.matrix(x)
    ab <- round(sweep(x[, j, drop = FALSE], 2L, tt[1L, ] - AB[1L, ] * step) /
                  rep(step, each = nrow(x)))
    k <- match(paste(ab[, 1L], ab[, 2L], sep = ","), keys)
    out <- rep(-Inf, nrow(x))
    # (the rows of each rectangle, found in one pass)
    by_cell <- split(seq_along(k), k)
    for (key in names(by_cell)) {
      kk <- as.integer(key)
      i <- by_cell[[key]]
      u <- x[i, j, drop = FALSE] - rep(tt[kk, ], each = length(i))
      z <- (rate(kk, u) * (x[i, oth, drop = FALSE] - line(kk, u))) %*% t(pts[[kk]]$R)
      out[i] <- log(p[kk]) + as.vector(u %*% a[kk, ]) - sum(lint[kk, ]) + ldet[kk] +
        as.vector(u %*% gs[kk, ]) - 0.5 * rowSums(z^2) - m / 2 * log(2 * pi)
    }
    out
  }
  sample <- function(n) {
    k <- sample.int(K, n, replace = TRUE, prob = p)
    u <- cbind(cell_sample(a[k, 1L], -h[1L], h[1L], stats::runif(n)),
               cell_sample(a[k, 2L], -h[2L], h[2L], stats::runif(n)))
    x <- matrix(0, n, D)
    x[, j] <- tt[k, , drop = FALSE] + u
    z <- matrix(stats::rnorm(n * m), n, m)
    by_cell <- split(seq_len(n), k)
    for (key in names(by_cell)) {
      kk <- as.integer(key)
      i <- by_cell[[key]]
      ui <- u[i, , drop = FALSE]
      e <- t(backsolve(pts[[kk]]$R, t(z[i, , drop = FALSE]))) / rate(kk, ui)
      x[i, oth] <- e + line(kk, ui)
    }
    x
  }
  mo <- if (moments) pair_moments(K, h, a, tt, line, rate, p, pts, j, D)
  structure(list(dim = D, mean = mo$mean, cov = mo$cov,
                 sample = sample, log_density = log_density, conditional = j,
                 label = sprintf(paste0("conditional Laplace approximation along coordinates %d ",
                                        "and %d (%d lattice points; Gaussian given them%s), ",
                                        "dimension %d"), j[1L], j[2L], K,
                                 corrections_text(rates, pts), D)),  # R/conditional.R
            class = "jko_init")
}

# The second coordinate for a law along two, given the law q along one
# (its coordinate q$conditional): the coordinate whose cubic in it
# explains the largest share of the variance of the log-weights of n
# draws of q, that share, and q's KL estimated on them (list(j, r2, kl));
# NULL where no weight is finite. On gp_pois_regr, given log alpha: log
# rho, 0.38 (the next 0.09); on rats, given log sigma_y^2: log
# sigma_beta^2, 0.81 (the next 0.23).
pair_axis <- function(q, potential, beta, n = 1024L) {
  x <- q$sample(n)
  lw <- -beta * potential_values(potential, x) - q$log_density(x)
  ok <- is.finite(lw)
  if (sum(ok) < 20L) return(NULL)
  x <- x[ok, , drop = FALSE]
  y <- lw[ok] - mean(lw[ok])
  tss <- sum(y^2)
  if (!(tss > 0)) return(NULL)
  r2 <- vapply(seq_len(ncol(x)), function(i) {
    s <- stats::sd(x[, i])
    if (i %in% q$conditional || !(s > 0)) return(0)
    z <- (x[, i] - mean(x[, i])) / s
    1 - sum(stats::lm.fit(cbind(1, z, z^2, z^3), y)$residuals^2) / tss
  }, 0)
  list(j = which.max(r2), r2 = max(r2), kl = kl_estimate(lw[ok]))  # R/diagnostics.R
}

# pair_law()'s centre and covariance: over each of its K rectangles (half
# sides h) by 8 x 8 Gauss-Legendre quadrature against its law along the
# two coordinates (the others' line is linear in u, their sds scaled by
# e^(-G u))
pair_moments <- function(K, h, a, tt, line, rate, p, pts, j, D) {
  gl <- gauss_legendre(8L)  # R/conditional.R
  rows <- lapply(seq_len(K), function(k) {
    u <- as.matrix(expand.grid(gl$x * h[1L], gl$x * h[2L]))
    w <- as.vector(outer(gl$w, gl$w)) * exp(as.vector(u %*% a[k, ]) - max(u %*% a[k, ]))
    w <- w / sum(w)
    list(z = cbind(sweep(u, 2L, tt[k, ], "+"), line(k, u)), w = w,
         scale = 1 / rate(k, u))
  })
  cell_moments(rows, p, pts, j, D)  # R/conditional.R
}
