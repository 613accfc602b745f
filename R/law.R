# The law of a flow: a base distribution (a "jko_init": samples and, where
# known, a log-density) and a flat list of nodes, each acting on the law
# before it:
#
#   map    the gradient map of one JKO step with its change of variables
#          (src/map.h): points move, log-densities lose the log-determinant
#          of its Jacobian; list(type = "map", arch, alpha_min, theta,
#          center, scale or L);
#   bayes  Bayes' rule on the density: the law times a likelihood L, over
#          its integral Z; points do not move, log-densities gain
#          log L - log Z; list(type = "bayes", loglik, log_z, log_z_se, ess,
#          moves, grid, values (dimension 1: the prior's tabulated
#          log-density)).
#
# A fit's law at step k is its start's law with the maps of steps 1..k
# appended (fit_law(), R/fit.R); a fit started from another fit's law
# (init_fit()) carries that law, so chains of any depth are one flat list,
# drawn forwards and pulled back in one loop, runs of consecutive maps in one
# call into C (c_push(), c_pull()).

new_law <- function(base, nodes = list()) {
  law <- structure(list(dim = base$dim, base = base, nodes = nodes), class = "jko_law")
  law$label <- law_label(law)
  law
}

# An initial distribution as a law (a law is returned as it is).
as_law <- function(init) {
  if (inherits(init, "jko_law")) return(init)
  check_init(init, call = sys.call(-1L))
  new_law(init)
}

law_has_density <- function(law) !is.null(law$base$log_density)

law_types <- function(law) vapply(law$nodes, `[[`, "", "type")

law_truncate <- function(law, k) new_law(law$base, law$nodes[seq_len(k)])

law_append <- function(law, nodes) new_law(law$base, c(law$nodes, nodes))

# The node of a map: a network's parameters `theta` and the change of
# variables `std` (list(center, scale) or list(center, L)) of its step.
map_node <- function(net, theta, std) {
  c(list(type = "map", arch = arch(net), alpha_min = net$alpha_min, theta = theta), std)
}

# Runs of consecutive nodes of one type: list(from, to, type) each.
law_runs <- function(law, from = 1L) {
  types <- law_types(law)
  idx <- seq_along(types)
  idx <- idx[idx >= from]
  if (!length(idx)) return(list())
  brk <- c(TRUE, types[idx][-1L] == "bayes" | types[idx][-1L] != types[idx][-length(idx)])
  lapply(split(idx, cumsum(brk)), function(i) list(from = i[1L], to = i[length(i)],
                                                    type = types[i[1L]]))
}

# n draws of the law, an n x D matrix `x`, with their log-densities (NULL
# when the base has none, or when not asked for). Draws of the base go
# forwards through the nodes: a run of maps pushes them (carrying the
# log-densities), a Bayes node resamples them by the likelihood and moves
# them by Metropolis steps that leave its law invariant. `start`: draws
# (rows) of the law before its last Bayes node, made already (a flow's
# pushed pool); the draws then begin there, from these, each used once
# (n draws are resampled from them).
law_draw <- function(law, n, log_density = TRUE, threads = 1L, start = NULL) {
  want_ld <- log_density && law_has_density(law)
  # log-densities are carried from the last Bayes node on (one exact
  # pull-back there), from the base where there is none
  last_bayes <- max(0L, which(law_types(law) == "bayes"))
  if (is.null(start)) {
    from <- 1L
    x <- law$base$sample(n)
    ld <- if (want_ld && last_bayes == 0L) init_log_density(law$base, x)
  } else {
    from <- last_bayes
    x <- start
    ld <- NULL
  }
  for (run in law_runs(law, from)) {
    if (run$type == "map") {
      out <- push_maps(law$nodes[run$from:run$to], x, ld, threads, run$from - 1L)
      x <- out$x
      ld <- out$log_density
    } else {
      x <- bayes_draw(law, run$from, x, n, threads)
      ld <- if (want_ld && run$from == last_bayes) {
        law_log_density(law_truncate(law, run$from), x, threads = threads)$log_density
      }
    }
  }
  list(x = x, log_density = ld)
}

# The rows of x pushed through the maps `maps` (steps offset + 1, ...),
# carrying their log-densities ld (or none, NULL): list(x, log_density),
# the points lost to a Hessian that is not positive definite warned of and
# NA.
push_maps <- function(maps, x, ld, threads, offset = 0L) {
  out <- c_push(maps, x, ld, threads)
  list(x = out$x, log_density = if (out$status != "ok")
    push_status_warning(out, offset, "log-densities") else out$log_density)
}

# A push or pull that met a Hessian that is not positive definite (possible
# only when a map's parameters overflow): a warning naming the step (maps
# counted from `offset`), and NA for the points lost.
push_status_warning <- function(out, offset, what) {
  ld <- if (!is.null(out$log_density)) out$log_density else out$log_det
  bad <- is.nan(ld)
  warning(sprintf("%s in the map of step %d at %d of %d points: their %s are NA.",
                  jko_status_message(out$status), out$step + offset, sum(bad), length(bad),
                  what), call. = FALSE)
  ld[bad] <- NA_real_
  ld
}

# log rho at the rows of x for the law rho: the points pulled back through
# the nodes, last first (Newton inversions of the maps, to the tolerance
# `tol` on the residual, at most `maxit` iterations each), then the base's
# log-density. list(log_density, x (the points in the base's space),
# residual (the largest), status). A residual above `tol` and points lost
# to a map whose Hessian is not positive definite (NA) are warned of.
law_log_density <- function(law, x, tol = 1e-10, maxit = 100L, threads = 1L) {
  if (!law_has_density(law)) init_log_density(law$base, x)
  ld <- numeric(nrow(x))
  resid <- 0
  status <- "ok"
  for (run in rev(law_runs(law))) {
    if (run$type == "map") {
      out <- c_pull(law$nodes[run$from:run$to], x, tol, maxit, threads)
      x <- out$x
      ld <- ld + out$log_det
      resid <- max(resid, out$residual)
      if (out$status != "ok" && status == "ok") {
        status <- out$status
        warning(sprintf("%s in the map of step %d at %d of %d points: their densities are NA.",
                        jko_status_message(out$status), out$step + run$from - 1L,
                        sum(is.nan(out$log_det)), nrow(x)), call. = FALSE)
      }
    } else {
      node <- law$nodes[[run$from]]
      ld <- ld + (loglik_values(node$loglik, x) - node$log_z)
    }
  }
  if (resid > tol) {
    warning(sprintf(paste0("the inversion of the maps reached a residual of %.3g ",
                           "(tolerance %.3g); increase `maxit`."), resid, tol), call. = FALSE)
  }
  ld <- ld + init_log_density(law$base, x)
  ld[is.nan(ld)] <- NA_real_
  list(log_density = ld, x = x, residual = resid, status = status)
}

#' @export
print.jko_law <- function(x, ...) {
  check_dots(...)
  cat("Initial distribution:", x$label, "\n")
  invisible(x)
}

law_label <- function(law) {
  types <- law_types(law)
  if (!length(types)) return(law$base$label)
  nm <- sum(types == "map")
  nb <- sum(types == "bayes")
  sprintf("%s, then %s", law$base$label,
          paste(c(if (nm) sprintf("%d map%s", nm, if (nm == 1L) "" else "s"),
                  if (nb) sprintf("%d Bayes update%s", nb, if (nb == 1L) "" else "s")),
                collapse = " and "))
}

# ---- Bayes nodes ------------------------------------------------------------

# Bayes' rule applied to the density of `law`: the node that makes it
#   pi(x) = rho(x) L(x) / Z,  Z = int rho L,
# with an exact log-density (log rho + log L - log Z: one pull-back of
# rho, no map of its own) and samples that are draws of rho resampled by
# their likelihoods (systematic resampling), then moved by `moves`
# random-walk Metropolis steps that leave pi invariant (bayes_draw()), so
# that the duplicates of the resampling part. `draws`: iid draws of rho
# already made (a flow's pushed pool), used instead of new ones. Z: in
# dimension 1 the integral of rho L with log rho the spline of
# tabulated_log_density() (whose error, O(delta^4), is far below any
# other), which also gives log rho in the Metropolis ratios (proposals
# beyond its grid, in the far tails, are refused); in higher dimensions the
# mean of L over n_z draws of rho, with its relative standard error, and
# the exact log rho in the ratios. `ess`: the effective sample size of the
# likelihood's weights on the draws, as a fraction of them.
bayes_node <- function(law, loglik, threads = 1L, moves = NULL, draws = NULL, n_z = 2^16) {
  force(loglik)
  D <- law$dim
  if (is.null(moves)) moves <- if (D == 1L) 10L else 3L
  node <- list(type = "bayes", loglik = loglik, moves = moves)
  if (D == 1L) {
    d <- if (!is.null(draws)) draws else law_draw(law, 2^14, log_density = FALSE, threads)$x
    tab <- tabulated_log_density(law, threads, draws = d)
    ess <- log_weights_summary(loglik_values(loglik, d))$ess / nrow(d)
    q <- bayes_quadrature(tab, loglik)
    node$log_z <- q$log_z
    node$log_z_se <- 0
    if (q$refined) {
      node$grid <- seq(q$lo, q$hi, length.out = length(tab$grid))
      node$values <- tab$value(matrix(node$grid, ncol = 1L))
      if (anyNA(node$values) || any(!is.finite(node$values))) {
        abort("the log-density of the prior is not finite where the posterior lies ([%.6g, %.6g]).",
              q$lo, q$hi)
      }
    } else {
      node$grid <- tab$grid
      node$values <- tab$values
    }
    # few effective draws of the prior: the posterior's draws come from the
    # quadrature's own grid (bayes_draw()), not from resampled prior draws
    if (ess < bayes_grid_ess) {
      node$sampler <- "grid"
      node$post_x <- q$x
      node$post_w <- q$w
      node$post_sd <- q$sd
    }
  } else {
    d <- if (!is.null(draws) && nrow(draws) >= n_z) draws[seq_len(n_z), , drop = FALSE]
         else law_draw(law, n_z, log_density = FALSE, threads)$x
    lw <- loglik_values(loglik, d)
    if (!any(is.finite(lw))) {
      abort("the likelihood is zero at every one of %d draws of the prior.", n_z)
    }
    ws <- log_weights_summary(lw)
    node$log_z <- ws$log_mean
    node$log_z_se <- ws$rel_se
    ess <- ws$ess / n_z
  }
  node$ess <- ess
  node
}

# Below this effective sample size of the likelihood's weights on draws of
# the prior (a fraction of them), a 1-D Bayes node draws from its grid.
bayes_grid_ess <- 0.02

# The integral Z of rho L in dimension 1 by the trapezoid rule, on a grid
# that the posterior's mass is made to lie well inside and to cover by many
# points. It starts on the span of the prior's tabulation `tab`; where the
# posterior's density at an end of the grid is not negligible (an
# observation beyond the prior's draws) the grid is extended on that side,
# and where few points carry the posterior (a likelihood far sharper than
# the prior) it is narrowed to where the posterior is not negligible; log rho
# is the tabulation's spline on its span, exact pull-backs beyond.
# list(log_z, lo, hi (the final span), refined (whether it moved), x, w
# (the final grid and the posterior's unnormalised weights there), mean, sd).
bayes_quadrature <- function(tab, loglik, min_points = 64, negligible = 1e-10,
                             max_rounds = 40L) {
  lo <- tab$grid[1L]
  hi <- tab$grid[length(tab$grid)]
  n <- 8L * (length(tab$grid) - 1L) + 1L
  refined <- FALSE
  for (round in seq_len(max_rounds)) {
    x <- seq(lo, hi, length.out = n)
    v <- tab$value(matrix(x, ncol = 1L)) + loglik_values(loglik, matrix(x, ncol = 1L))
    v[is.na(v)] <- -Inf
    m <- max(v)
    if (!is.finite(m)) {
      abort("the likelihood times the prior is zero over the whole span [%.6g, %.6g].", lo, hi,
            class = "jkoflow_error_degenerate")
    }
    w <- exp(v - m)
    step <- x[2L] - x[1L]
    points <- sum(w)^2 / sum(w^2)
    left <- w[1L] > negligible
    right <- w[n] > negligible
    if (!left && !right && points >= min_points) {
      mu <- sum(w * x) / sum(w)
      return(list(log_z = m + log((sum(w) - (w[1L] + w[n]) / 2) * step), lo = lo, hi = hi,
                  refined = refined, x = x, w = w, mean = mu,
                  sd = sqrt(sum(w * (x - mu)^2) / sum(w))))
    }
    width <- hi - lo
    if (left || right) {
      # the posterior reaches beyond an end: extend there, and drop the
      # other side's negligible part
      keep <- which(w > negligible^2)
      if (left) lo <- lo - 2 * width else lo <- x[max(1L, keep[1L] - 1L)]
      if (right) hi <- hi + 2 * width else hi <- x[min(n, keep[length(keep)] + 1L)]
    } else {
      # too few points carry it: narrow the grid to where it is not negligible
      keep <- which(w > negligible^2)
      lo <- x[max(1L, keep[1L] - 2L)]
      hi <- x[min(n, keep[length(keep)] + 2L)]
    }
    if (!is.finite(lo) || !is.finite(hi) || hi - lo <= 64 * .Machine$double.eps * max(1, abs(lo), abs(hi))) {
      break
    }
    refined <- TRUE
    n <- 4097L
  }
  abort(paste0("the posterior could not be resolved on a grid: it is too narrow or too far ",
               "from the prior (last span [%.6g, %.6g])."), lo, hi,
        class = "jkoflow_error_degenerate")
}

# n draws of the law after its Bayes node b, from x, draws (rows) of the law
# before it: resampled by the likelihood, then moved.
bayes_draw <- function(law, b, x, n, threads) {
  node <- law$nodes[[b]]
  prior <- law_truncate(law, b - 1L)
  D <- law$dim
  lw <- loglik_values(node$loglik, x)
  if (!any(is.finite(lw))) {
    abort("the likelihood is zero at every one of %d draws of the prior.", nrow(x))
  }
  w <- exp(lw - max(lw))
  if (identical(node$sampler, "grid")) {
    # from the quadrature's grid: a cell by its trapezoid weight, uniform in it
    px <- node$post_x
    pw <- node$post_w
    cell <- (pw[-1L] + pw[-length(pw)]) / 2
    i <- systematic_resample(cell, n)
    i <- i[sample.int(n)]
    z <- matrix(px[i] + stats::runif(n) * (px[2L] - px[1L]), ncol = 1L)
  } else {
    z <- x[systematic_resample(w, n), , drop = FALSE]
  }
  if (node$moves > 0L) {
    # log pi up to log Z at the rows of y; with inside_only, -Inf beyond the
    # grid of a tabulated prior
    target <- if (!is.null(node$grid)) {
      tab <- tabulated_from(prior, node$grid, node$values, threads)
      lo <- node$grid[1L]
      hi <- node$grid[length(node$grid)]
      function(y, inside_only = FALSE) {
        if (!inside_only) return(tab$value(y) + loglik_values(node$loglik, y))
        out <- rep(-Inf, nrow(y))
        ins <- y[, 1L] >= lo & y[, 1L] <= hi
        yi <- y[ins, , drop = FALSE]
        out[ins] <- tab$value(yi) + loglik_values(node$loglik, yi)
        out
      }
    } else {
      function(y, inside_only = FALSE) {
        law_log_density(prior, y, threads = threads)$log_density +
          loglik_values(node$loglik, y)
      }
    }
    # the random walk's covariance: 2.38^2 / D times the law's
    S <- if (identical(node$sampler, "grid")) matrix(node$post_sd^2, 1L, 1L)
         else stats::cov.wt(x, w / sum(w))$cov
    S <- S * (2.38^2 / D)
    R <- tryCatch(chol(S), error = function(e) NULL)
    if (is.null(R) || any(!is.finite(R))) {
      # weights on one draw, or nearly: the spread of the draws themselves
      sx <- apply(x, 2L, stats::sd)
      sx[!is.finite(sx) | sx <= 0] <- 1e-6
      R <- diag(2.38 / sqrt(D) * sx, D)
    }
    cur <- target(z)
    for (k in seq_len(node$moves)) {
      prop <- z + matrix(stats::rnorm(n * D), n, D) %*% R
      lp <- target(prop, inside_only = TRUE)
      ok <- log(stats::runif(n)) < lp - cur
      ok[is.na(ok)] <- FALSE
      z[ok, ] <- prop[ok, ]
      cur[ok] <- lp[ok]
    }
  }
  z
}

# log rho(x) of a 1-D law with an exact log-density: a cubic spline through
# its exact values on a grid of n points spanning its draws (`draws`, or
# 2^14 new ones) and their spread beyond; exact pull-backs outside the grid.
# list(grid, values (the exact values there), value(x), gradient(x)).
tabulated_log_density <- function(law, threads, n = 2049L, draws = NULL) {
  d <- if (!is.null(draws)) draws[, 1L]
       else law_draw(law, 2^14, log_density = FALSE, threads)$x[, 1L]
  r <- range(d)
  s <- stats::sd(d)
  g <- seq(r[1L] - s, r[2L] + s, length.out = n)
  ld <- law_log_density(law, matrix(g, ncol = 1L), threads = threads)$log_density
  if (anyNA(ld) || any(!is.finite(ld))) {
    abort("the log-density of the prior is not finite on the span of its draws.")
  }
  tabulated_from(law, g, ld, threads)
}

# The spline of a tabulated log-density from its grid and values.
tabulated_from <- function(law, g, ld, threads) {
  sp <- stats::splinefun(g, ld, method = "fmm")
  lo <- g[1L]
  hi <- g[length(g)]
  exact <- function(x) law_log_density(law, x, threads = threads)$log_density
  list(
    grid = g, values = ld,
    value = function(x) {
      z <- x[, 1L]
      inside <- z >= lo & z <= hi
      out <- numeric(length(z))
      out[inside] <- sp(z[inside])
      if (any(!inside)) out[!inside] <- exact(x[!inside, , drop = FALSE])
      out
    },
    gradient = function(x) {
      z <- x[, 1L]
      inside <- z >= lo & z <= hi
      out <- numeric(length(z))
      out[inside] <- sp(z[inside], deriv = 1L)
      if (any(!inside)) out[!inside] <- fd_gradient(exact, x[!inside, , drop = FALSE])
      matrix(out, ncol = 1L)
    })
}

# A likelihood's values at the rows of x, checked: n numbers, -Inf allowed
# (zero likelihood), never NaN, NA or +Inf.
loglik_values <- function(loglik, x) {
  v <- tryCatch(loglik(x), error = function(e) {
    abort("`loglik` failed on %d points: %s", nrow(x), conditionMessage(e), call = NULL)
  })
  if (!is.numeric(v) || length(v) != nrow(x)) {
    abort("`loglik` must return %d log-likelihoods (numbers, -Inf allowed), not %s.",
          nrow(x), describe(v))
  }
  bad <- is.na(v) | v == Inf
  if (any(bad)) {
    abort("`loglik` returned NaN, NA or Inf at %d of %d points (the first at x = (%s)).",
          sum(bad), nrow(x), paste(signif(x[which(bad)[1L], ], 4), collapse = ", "))
  }
  as.double(v)
}

# Indices of n draws with probabilities proportional to w: systematic
# resampling (one uniform; each index drawn floor or ceiling of n w_i times).
systematic_resample <- function(w, n) {
  cw <- cumsum(w)
  cw <- cw / cw[length(cw)]
  u <- (stats::runif(1) + seq.int(0, n - 1L)) / n
  pmin(findInterval(u, cw) + 1L, length(w))
}
