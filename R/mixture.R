# A mixture of Gaussians or Student t laws as an initial distribution:
# exact draws and log-density (the start of a target with several modes).

#' A mixture of Gaussians as an initial distribution
#'
#' The law \eqn{\sum_k w_k N(\mu_k, \Sigma_k)} (or with Student t
#' components): exact draws (a component by its weight, then its law) and the exact log-density (a
#' log-sum-exp over the components). [jko_fit()] starts a target with
#' several modes from the mixture of the modes' Laplace
#' approximations ([find_modes()]).
#'
#' @param means A K x D matrix of the components' means (a vector: K
#'   one-dimensional components).
#' @param covs The components' covariances: a list of K symmetric positive
#'   definite D x D matrices, or one for all.
#' @param weights K positive numbers (normalised); equal by default.
#' @param df `Inf` for Gaussian components; a positive number for
#'   multivariate Student t components with these centres and scale
#'   matrices (heavier tails, a safer proposal).
#' @return A `"jko_init"` (see [init_gaussian()]) with its `means`, `covs`,
#'   `weights`, `df`, the mixture's `mean` and `cov` (`NULL` where
#'   infinite), and `component_log_density(x)`: the matrix of
#'   \eqn{\log w_k + \log q_k(x)}, a row per point and a column per
#'   component.
#' @examples
#' q <- init_mixture(rbind(c(-3, 0), c(3, 0)), diag(2), c(0.3, 0.7))
#' x <- q$sample(5)
#' q$log_density(x)
#' @export
init_mixture <- function(means, covs, weights = NULL, df = Inf) {
  if (!is.numeric(means) || anyNA(means) || any(!is.finite(means))) {
    abort("`means` must be a finite numeric matrix (components in rows), not %s.",
          describe(means))
  }
  if (is.null(dim(means))) means <- matrix(means, ncol = 1L)
  K <- nrow(means)
  D <- ncol(means)
  if (K < 1L) abort("`means` must have at least one row.")
  if (!is.list(covs)) covs <- rep(list(covs), K)
  if (length(covs) != K) {
    abort("`covs` must be one matrix or a list of %d (the rows of `means`), not %d.", K,
          length(covs))
  }
  if (is.null(weights)) weights <- rep(1, K)
  if (!is.numeric(weights) || length(weights) != K || any(!is.finite(weights)) ||
      any(weights < 0) || sum(weights) <= 0) {
    abort("`weights` must be %d non-negative numbers, not all zero; not %s.", K,
          describe(weights))
  }
  weights <- weights / sum(weights)
  if (!is.numeric(df) || length(df) != 1L || is.na(df) || df <= 0) {
    abort("`df` must be a positive number (Inf for Gaussians), not %s.", describe(df))
  }
  comps <- lapply(seq_len(K), function(k) {
    S <- covs[[k]]
    if (!is.numeric(S) || any(!is.finite(S)) ||
        (is.null(dim(S)) && !length(S) %in% c(1L, D))) {
      abort("`covs[[%d]]` must be a finite %d x %d matrix (or a number or %d variances), not %s.",
            k, D, D, D, describe(S))
    }
    if (is.null(dim(S))) S <- diag(S, D)
    if (!identical(dim(S), c(D, D))) {
      abort("`covs[[%d]]` must be a finite %d x %d matrix.", k, D, D)
    }
    R <- tryCatch(chol((S + t(S)) / 2), error = function(e) NULL)
    if (is.null(R)) abort("`covs[[%d]]` must be positive definite.", k)
    list(mean = as.double(means[k, ]), cov = (S + t(S)) / 2, R = R,
         ldet = 2 * sum(log(diag(R))))
  })
  lw <- log(weights)
  # a component's log-density at z, its whitened points (a column each)
  t_const <- if (is.finite(df)) lgamma((df + D) / 2) - lgamma(df / 2) - D / 2 * log(df * pi)
  comp_ld <- function(z2, ldet) {
    if (is.finite(df)) t_const - ldet / 2 - (df + D) / 2 * log1p(z2 / df)
    else -0.5 * (z2 + ldet + D * log(2 * pi))
  }
  joint <- function(x) {
    L <- vapply(seq_len(K), function(j) {
      z <- backsolve(comps[[j]]$R, t(x) - comps[[j]]$mean, transpose = TRUE)
      lw[j] + comp_ld(colSums(z^2), comps[[j]]$ldet)
    }, numeric(nrow(x)))
    if (is.null(dim(L))) L <- matrix(L, 1L)
    L
  }
  m <- colSums(means * weights)
  # the moments (a Student t's covariance is its scale matrix times
  # df / (df - 2), infinite for df <= 2)
  vf <- if (is.finite(df)) (if (df > 2) df / (df - 2) else Inf) else 1
  V <- Reduce(`+`, lapply(seq_len(K), function(k)
    weights[k] * (vf * comps[[k]]$cov + tcrossprod(comps[[k]]$mean - m))))
  structure(list(
    dim = D, mean = m, cov = if (all(is.finite(V))) (V + t(V)) / 2, means = unname(means),
    covs = lapply(comps, `[[`, "cov"), weights = weights, df = df,
    sample = function(n) {
      k <- sample.int(K, n, replace = TRUE, prob = weights)
      x <- matrix(stats::rnorm(n * D), n, D)
      if (is.finite(df)) x <- x / sqrt(stats::rchisq(n, df) / df)
      for (j in unique(k)) {
        i <- which(k == j)
        x[i, ] <- sweep(x[i, , drop = FALSE] %*% comps[[j]]$R, 2L, comps[[j]]$mean, "+")
      }
      x
    },
    log_density = function(x) row_log_sum_exp(joint(x)),
    # log(w_k q_k(x)): a row per point, a column per component
    component_log_density = joint,
    label = sprintf("mixture of %d %s, dimension %d", K,
                    if (is.finite(df)) sprintf("Student t (%g df)", df) else "Gaussians", D)
  ), class = "jko_init")
}

# log(sum(exp(L))) of each row of the matrix L, without overflow.
row_log_sum_exp <- function(L) {
  mx <- apply(L, 1L, max)
  mx + log(rowSums(exp(L - mx)))
}

# A start with several modes (an init_mixture() of more than one
# component), which the one-t moment matching of adapt_start() would merge.
is_mixture_start <- function(q) is.matrix(q$means) && nrow(q$means) > 1L
