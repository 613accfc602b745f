# Initial measures rho_0: a sampler and, where known, a log-density.

#' Initial distributions
#'
#' The flow starts from \eqn{\rho_0}, given either as a Gaussian
#' (`init_gaussian()`: samples and exact log-density) or as a matrix of
#' samples (`init_samples()`: rows are resampled with replacement; densities
#' of the flow need the log-density of \eqn{\rho_0}, given as `log_density`).
#'
#' @param mean Mean vector (its length is the dimension).
#' @param cov Covariance: a number (times the identity), a vector (a
#'   diagonal), or a symmetric positive definite matrix.
#' @param x Samples, an n x D numeric matrix.
#' @param log_density `NULL` or a function of an n x D matrix returning the n
#'   log-densities of \eqn{\rho_0}.
#' @param logdensity The same, under its name in jkoflow 0.1.0.
#' @return An object of class `"jko_init"` with the dimension `dim`, a
#'   function `sample(n)` returning an n x D matrix, and a function
#'   `log_density(x)` (or `NULL`).
#' @examples
#' init_gaussian(c(0, 0), cov = 4)
#' init_samples(matrix(rnorm(200), 100, 2))
#' @export
init_gaussian <- function(mean = 0, cov = 1) {
  if (!is.numeric(mean) || length(mean) < 1L || any(!is.finite(mean))) {
    abort("`mean` must be a finite numeric vector, not %s.", describe(mean))
  }
  D <- length(mean)
  if (!is.numeric(cov) || anyNA(cov) || any(!is.finite(cov))) {
    abort("`cov` must be a finite number, vector or matrix, not %s.", describe(cov))
  }
  if (is.null(dim(cov))) {
    if (!length(cov) %in% c(1L, D)) {
      abort("`cov` must be a number, a vector of length %d or a %d x %d matrix.", D, D, D)
    }
    cov <- diag(cov, D)
  }
  if (!identical(dim(cov), c(D, D))) {
    abort("`cov` must be a %d x %d matrix (the length of `mean`), not %s.", D, D,
          paste(dim(cov), collapse = " x "))
  }
  if (max(abs(cov - t(cov))) > 1e-10 * max(abs(cov))) abort("`cov` must be symmetric.")
  R <- tryCatch(chol(cov), error = function(e) NULL)
  if (is.null(R)) abort("`cov` must be positive definite.")
  # draws a few sds out must have squares that do not overflow
  reach <- max(abs(mean)) + 10 * sqrt(max(diag(cov)))
  if (!is.finite(reach) || reach > sqrt(.Machine$double.xmax)) {
    abort(paste0("`mean` and `cov` put draws beyond 1e154 in magnitude (mean up to %.3g, sd up ",
                 "to %.3g): their squares overflow double precision."), max(abs(mean)),
          sqrt(max(diag(cov))), class = "jkoflow_error_overflow")
  }
  mean <- as.double(mean)
  ldet <- 2 * sum(log(diag(R)))
  structure(list(
    dim = D, mean = mean, cov = unname(cov),
    sample = function(n) {
      z <- matrix(stats::rnorm(n * D), n, D)
      sweep(z %*% R, 2L, mean, "+")
    },
    log_density = function(x) {
      z <- backsolve(R, t(x) - mean, transpose = TRUE)
      -0.5 * (colSums(z^2) + ldet + D * log(2 * pi))
    },
    label = sprintf("Gaussian, dimension %d", D)
  ), class = "jko_init")
}

#' @rdname init_gaussian
#' @export
init_samples <- function(x, log_density = NULL, logdensity = NULL) {
  arg <- if (is.null(log_density) && !is.null(logdensity)) "logdensity" else "log_density"
  if (is.null(log_density)) log_density <- logdensity
  x <- check_points(x, NULL, "x")
  if (!is.null(log_density) && !is.function(log_density)) {
    abort("`%s` must be NULL or a function of an n x D matrix, not %s.", arg,
          describe(log_density))
  }
  x <- unname(x)
  # A map pushes a point mass (or a measure on a hyperplane) to another one:
  # rho_0 must spread in every direction for the flow to have a density.
  r <- spread_rank(x)
  if (r < ncol(x)) {
    abort(paste0("`x` must spread in all %d dimensions, but its rows lie in an ",
                 "affine subspace of dimension %d%s: no map of rho_0 can have a ",
                 "density. Give at least %d distinct rows in general position ",
                 "(add noise to repeated samples)."),
          ncol(x), r, if (r == 0L) " (all rows identical)" else "", ncol(x) + 1L)
  }
  structure(list(
    dim = ncol(x),
    sample = function(n) x[sample.int(nrow(x), n, replace = TRUE), , drop = FALSE],
    log_density = log_density,
    label = sprintf("%d samples, dimension %d%s", nrow(x), ncol(x),
                    if (is.null(log_density)) "" else ", with log-density")
  ), class = "jko_init")
}

# Dimension of the affine span of the rows of x (numerically).
spread_rank <- function(x) {
  if (nrow(x) < 2L) return(0L)
  d <- svd(stats::cov(x), 0L, 0L)$d
  sum(d > max(d) * 1e-12)
}

check_init <- function(init, call = sys.call(-1L)) {
  if (!inherits(init, c("jko_init", "jko_law"))) {
    abort("`init` must be an initial distribution from init_gaussian(), init_samples() or init_fit(), not %s.",
          describe(init), call = call)
  }
  invisible(init)
}

# log rho_0 at the rows of x, with a clear error when it is not known.
init_log_density <- function(init, x) {
  if (is.null(init$log_density)) {
    abort(paste0("densities need the log-density of the initial distribution: ",
                 "give `log_density` to init_samples()."),
          class = "jkoflow_error_no_density")
  }
  ld <- init$log_density(x)
  if (!is.numeric(ld) || length(ld) != nrow(x)) {
    abort("the initial distribution's `log_density` returned %s; expected %d numbers.",
          describe(ld), nrow(x))
  }
  as.double(ld)
}

#' @export
print.jko_init <- function(x, ...) {
  check_dots(...)
  cat("Initial distribution:", x$label, "\n")
  invisible(x)
}

#' A widened Laplace approximation as an initial distribution
#'
#' The Gaussian \eqn{N(\hat\theta, s^2 H^{-1})} at the minimum
#' \eqn{\hat\theta} of the potential (found by BFGS with the potential's
#' gradient), \eqn{H} the Hessian of \eqn{\Phi} there (central differences of
#' the gradient) and \eqn{s} = `inflate`. Widened by `inflate` > 1, it is a
#' starting point from which a few JKO steps reach a near-Gaussian posterior,
#' much faster than from a diffuse prior, and its tails stay heavier than the
#' target's, which importance sampling ([jko_evidence()], `jko_sample(resample
#' = TRUE)`) needs. Minibatch targets are optimised on the full data.
#' [jko_fit()] starts a target without a prior here by default.
#'
#' The potential may be infinite or undefined away from its minimum (an
#' overflow in the tails, or a log-density that is `-Inf` outside its
#' support): the optimiser treats such points as infinitely bad and steps
#' back. When `start` gives no converged minimum, up to `tries - 1` more
#' starts are drawn (normal around zero, sd 1, then 3, then 0.1) and the
#' lowest minimum found is kept; where the potential is not finite at any
#' start, the error says so. A Hessian that
#' is not positive definite at the minimum (a flat or degenerate direction)
#' has its eigenvalues raised to a small positive floor, with a warning.
#'
#' @param potential A potential with a known dimension (e.g. a
#'   [target_logistic()]).
#' @param start Starting point of the optimisation (default: the target's
#'   own `start`, see [targets], else zero).
#' @param inflate Factor on the standard deviations, at least 1.
#' @param tries Number of starting points.
#' @param df Degrees of freedom: `Inf` (the default) for the Gaussian, a
#'   number for a multivariate Student t with the same centre and scale
#'   matrix \eqn{s^2 H^{-1}}, whose heavier tails make it a safer proposal
#'   for importance sampling and exact correction.
#' @return A `"jko_init"` (see [init_gaussian()]) with the `mode` and the
#'   optimiser's `convergence` code.
#' @examples
#' x <- cbind(1, scale(MASS::Pima.tr[, 1:7]))
#' init_laplace(target_logistic(x, MASS::Pima.tr$type))
#' @export
init_laplace <- function(potential, start = NULL, inflate = 1.5, tries = 10, df = Inf) {
  check_potential(potential)
  D <- potential$dim
  if (is.na(D) && is.null(start)) {
    abort("`start` is needed: `potential` does not know its dimension.")
  }
  if (is.null(start)) start <- target_start(potential, D)
  start <- check_points(start, if (is.na(D)) NULL else D, "start")[1L, ]
  D <- length(start)
  inflate <- check_positive(inflate, "inflate")
  if (inflate < 1) abort("`inflate` must be at least 1, not %s.", describe(inflate))
  if (!is.numeric(df) || length(df) != 1L || is.na(df) || df <= 0) {
    abort("`df` must be a positive number (Inf for a Gaussian), not %s.", describe(df))
  }
  tries <- check_count(tries, "tries")
  potential <- full_data(potential)
  vg <- point_objective(potential)
  value <- vg$value
  gradient <- vg$gradient
  # `start`, then (only if it gives no finite minimum that converged)
  # points drawn around zero
  best <- NULL
  finite_start <- FALSE
  for (i in seq_len(tries)) {
    s0 <- if (i == 1L) start else stats::rnorm(D, sd = c(1, 3, 0.1)[(i - 2L) %% 3L + 1L])
    if (!is.finite(value(s0))) next
    finite_start <- TRUE
    opt <- tryCatch(stats::optim(s0, value, gradient, method = "BFGS",
                                 control = list(maxit = 2000L, reltol = 1e-14)),
                    error = function(e) NULL)
    # where BFGS did not converge, Newton's method from its end (R/descent.R)
    if (!is.null(opt) && is.finite(opt$value)) opt <- newton_finish(potential, opt)
    if (!is.null(opt) && is.finite(opt$value) && (is.null(best) || opt$value < best$value)) {
      best <- opt
    }
    if (!is.null(best) && best$convergence == 0L) break
  }
  if (!finite_start) {
    abort(paste0("the potential is not finite at any of the %d starting points tried ",
                 "(`start` and %d drawn around zero): give `start`, a point where the ",
                 "log-density is finite."), tries, tries - 1L)
  }
  if (is.null(best)) abort("the optimiser found no point where the potential is finite.")
  opt <- best
  # central differences of the gradient, the 2 D points in one call
  H <- modes_hessian(potential, opt$par)  # R/descent.R
  if (any(!is.finite(H))) {
    abort("the Hessian of the potential at its minimum is not finite.")
  }
  eg <- eigen(H, symmetric = TRUE)
  floor_ev <- 1e-6 * max(abs(eg$values), 1e-12)
  # parameters in different units (a regression coefficient of a predictor
  # in thousands next to an intercept) make a well-determined Hessian
  # ill-conditioned: judge it, and invert it, in units of its diagonal
  sc <- if (min(eg$values) < floor_ev && all(diag(H) > 0)) 1 / sqrt(diag(H))
  if (!is.null(sc)) {
    eg <- eigen(H * outer(sc, sc), symmetric = TRUE)
    floor_ev <- 1e-6 * max(abs(eg$values), 1e-12)
  }
  if (min(eg$values) < floor_ev) {
    warning(sprintf(paste0("init_laplace(): the Hessian at the minimum is not positive definite ",
                           "(smallest eigenvalue %.3g%s); its eigenvalues are raised to %.3g."),
                    min(eg$values), if (is.null(sc)) "" else " in units of its diagonal",
                    floor_ev), call. = FALSE)
  }
  Hinv <- eg$vectors %*% (t(eg$vectors) / pmax(eg$values, floor_ev))
  if (!is.null(sc)) Hinv <- Hinv * outer(sc, sc)
  Hinv <- (Hinv + t(Hinv)) / 2
  out <- if (is.finite(df)) init_mvt(opt$par, inflate^2 * Hinv, df)
         else init_gaussian(opt$par, inflate^2 * Hinv)
  out$mode <- opt$par
  out$convergence <- opt$convergence
  # Phi and its Hessian at the mode, for the search of further modes
  # (find_modes_from(), which would otherwise compute them again)
  out$value <- opt$value
  out$hessian <- H
  out$label <- sprintf("Laplace approximation at the mode%s, sd x %g, dimension %d",
                       if (is.finite(df)) sprintf(" (Student t, %g df)", df) else "",
                       inflate, D)
  out
}

# The multivariate Student t with `df` degrees of freedom, centre `mean` and
# scale matrix S (its covariance is S df / (df - 2) for df > 2): exact
# samples (x = mean + L z / sqrt(g / df), z ~ N(0, I), g ~ chi^2_df) and
# log-density. Its tails, polynomial, are heavier than any target's that
# decays like a Gaussian or an exponential, which a proposal for exact
# correction needs.
init_mvt <- function(mean, S, df) {
  D <- length(mean)
  R <- chol(S)
  ldet <- 2 * sum(log(diag(R)))
  mean <- as.double(mean)
  const <- lgamma((df + D) / 2) - lgamma(df / 2) - D / 2 * log(df * pi) - ldet / 2
  structure(list(
    dim = D, mean = mean, cov = if (df > 2) unname(S) * df / (df - 2), df = df,
    sample = function(n) {
      z <- matrix(stats::rnorm(n * D), n, D) %*% R
      g <- stats::rchisq(n, df)
      sweep(z / sqrt(g / df), 2L, mean, "+")
    },
    log_density = function(x) {
      z <- backsolve(R, t(x) - mean, transpose = TRUE)
      const - (df + D) / 2 * log1p(colSums(z^2) / df)
    },
    label = sprintf("Student t (%g df), dimension %d", df, D)
  ), class = "jko_init")
}
