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

check_init <- function(init) {
  if (!inherits(init, "jko_init")) {
    abort("`init` must be an initial distribution from init_gaussian() or init_samples(), not %s.",
          describe(init))
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
  cat("Initial distribution:", x$label, "\n")
  invisible(x)
}
