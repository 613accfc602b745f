# Potentials Phi for jko_fit(). Each is a "jko_potential": a code and
# parameters for the C core, or an R function called on the whole n x D batch.

new_potential <- function(code, par = NULL, dim = NA_integer_, label,
                          fun = NULL, ..., class = NULL) {
  structure(list(code = as.integer(code), par = as.double(par),
                 dim = as.integer(dim), label = label, fun = fun,
                 env = if (is.null(fun)) NULL else baseenv(), ...),
            class = c(class, "jko_potential"))
}

#' Potentials for Fokker-Planck flows
#'
#' The drift of the diffusion \eqn{dX = -\nabla\Phi(X)\,dt + \sqrt{2/\beta}\,dW}{dX = -grad Phi(X) dt + sqrt(2/beta) dW}
#' is given by a potential \eqn{\Phi}:
#'
#' * `potential_quadratic(A, b)`: \eqn{\Phi(x) = \frac12 (x-b)^\top A (x-b)},
#'   the Ornstein-Uhlenbeck process; its stationary law is
#'   \eqn{N(b, (\beta A)^{-1})} when `A` is positive definite.
#' * `potential_gmm(means, sd, weights)`: \eqn{\Phi = -\log} of the Gaussian
#'   mixture density \eqn{\sum_k w_k N(\mu_k, sd^2 I)}; with \eqn{\beta = 1}
#'   the flow converges to the mixture itself.
#' * `potential_double_well(center, height)`:
#'   \eqn{\Phi(x) = h\,((x_1/c)^2 - 1)^2 + \frac12\sum_{d > 1} x_d^2}, a double
#'   well along the first coordinate (wells at \eqn{x_1 = \pm c}), quadratic in
#'   the others; usable in any dimension.
#' * `potential_fn(f, grad)`: an R function `f` of an n x D matrix returning
#'   the n values of \eqn{\Phi}, and optionally `grad` returning the n x D
#'   matrix of gradients. Without `grad`, gradients are central finite
#'   differences on the whole batch (2 D extra calls of `f` per batch). The
#'   functions' results are checked on every call.
#' * `target_logdensity(logd, grad)`: \eqn{\Phi = -\log\pi} for an
#'   unnormalized log-density `logd` (and its gradient `grad`), so that with
#'   \eqn{\beta = 1} the flow ends at \eqn{\pi}: a sampler for \eqn{\pi} with
#'   a density for every sample.
#'
#' @param A A symmetric D x D matrix (a single number or a vector means a
#'   diagonal matrix).
#' @param b The centre, a length-D vector (default zero).
#' @param means Component means, a K x D matrix (a vector gives K
#'   one-dimensional components).
#' @param sd Common standard deviation of the components, a positive number.
#' @param weights Mixture weights, K positive numbers (normalised); equal by
#'   default.
#' @param center Position \eqn{c} of the wells.
#' @param height Height \eqn{h} of the barrier between the wells.
#' @param f,logd An R function of an n x D matrix returning n numbers.
#' @param grad `NULL` or an R function of an n x D matrix returning the n x D
#'   matrix of gradients (of \eqn{\Phi} for `potential_fn()`, of the
#'   log-density for `target_logdensity()`).
#' @param dim Optional dimension, checked against `init` in [jko_fit()].
#' @return An object of class `"jko_potential"`.
#' @examples
#' potential_quadratic(diag(2), b = c(1, -1))
#' potential_gmm(rbind(c(-2, 0), c(2, 0)), sd = 0.7)
#' potential_double_well()
#' banana <- target_logdensity(function(x) -(x[, 1]^2 / 2 + (x[, 2] - x[, 1]^2)^2))
#' potential_value(banana, matrix(0, 1, 2))
#' @name potentials
NULL

#' @rdname potentials
#' @export
potential_quadratic <- function(A = 1, b = NULL) {
  if (!is.numeric(A) || anyNA(A) || any(!is.finite(A))) {
    abort("`A` must be a finite numeric matrix, not %s.", describe(A))
  }
  if (is.null(dim(A))) {
    A <- if (length(A) == 1L && !is.null(b)) diag(A, length(b)) else diag(A, length(A))
  }
  if (length(dim(A)) != 2L || nrow(A) != ncol(A)) {
    abort("`A` must be a square matrix, not %d x %d.", nrow(A), ncol(A))
  }
  if (max(abs(A - t(A))) > 1e-10 * max(1, abs(A))) abort("`A` must be symmetric.")
  D <- nrow(A)
  if (is.null(b)) b <- rep(0, D)
  if (!is.numeric(b) || length(b) != D || any(!is.finite(b))) {
    abort("`b` must be a finite numeric vector of length %d (the size of `A`), not %s.",
          D, describe(b))
  }
  A <- (A + t(A)) / 2
  new_potential(1L, c(A, b), D, sprintf("quadratic (Ornstein-Uhlenbeck), dimension %d", D),
                A = unname(A), b = as.double(b))
}

#' @rdname potentials
#' @export
potential_gmm <- function(means, sd = 1, weights = NULL) {
  if (!is.numeric(means) || anyNA(means) || any(!is.finite(means))) {
    abort("`means` must be a finite numeric matrix (components in rows), not %s.",
          describe(means))
  }
  if (is.null(dim(means))) means <- matrix(means, ncol = 1L)
  K <- nrow(means)
  if (K < 1L) abort("`means` must have at least one row.")
  sd <- check_positive(sd, "sd")
  if (is.null(weights)) weights <- rep(1, K)
  if (!is.numeric(weights) || length(weights) != K || anyNA(weights) ||
      any(!is.finite(weights)) || any(weights <= 0)) {
    abort("`weights` must be %d positive numbers (one per row of `means`), not %s.",
          K, describe(weights))
  }
  weights <- weights / sum(weights)
  new_potential(2L, c(K, sd, log(weights), t(means)), ncol(means),
                sprintf("Gaussian mixture, %d components, dimension %d", K, ncol(means)),
                means = unname(means), sd = sd, weights = weights)
}

#' @rdname potentials
#' @export
potential_double_well <- function(center = 1, height = 1) {
  center <- check_positive(center, "center")
  height <- check_positive(height, "height")
  new_potential(3L, c(center, height), NA_integer_,
                sprintf("double well (wells at x1 = +/-%g, barrier %g)", center, height))
}

#' @rdname potentials
#' @export
potential_fn <- function(f, grad = NULL, dim = NULL) {
  dim <- check_user_fns(f, "f", grad, dim, "potential_fn")
  fn_potential(f, grad, dim, "R function")
}

#' @rdname potentials
#' @export
target_logdensity <- function(logd, grad = NULL, dim = NULL) {
  dim <- check_user_fns(logd, "logd", grad, dim, "target_logdensity")
  f <- function(x) -logd(x)
  g <- if (is.null(grad)) NULL else function(x) -grad(x)
  fn_potential(f, g, dim, "target log-density", what = "logd")
}

# Checks of the user's functions for potential_fn() and target_logdensity();
# returns the checked `dim`.
check_user_fns <- function(fun, arg, grad, dim, caller) {
  call <- sys.call(-1L)
  if (!is.function(fun)) {
    abort("`%s` must be a function of an n x D matrix, not %s.", arg, describe(fun),
          call = call)
  }
  if (!is.null(grad) && !is.function(grad)) {
    abort("`grad` must be NULL or a function of an n x D matrix, not %s.",
          describe(grad), call = call)
  }
  if (!is.null(dim)) dim <- check_count(dim, "dim", call = call)
  if (is.null(grad)) {
    message(caller, "(): no `grad` given, so gradients are central finite ",
            "differences: each batch costs 2 x D extra calls of `", arg, "`.")
  }
  dim
}

# The R side of POT_R: called from C as fun(x, iter, want_grad) on the n x D
# batch; checks what the user's functions return.
fn_potential <- function(f, grad, dim, label, what = "f") {
  gname <- "grad"
  call_user <- function(fun, name, x, iter) {
    tryCatch(fun(x), error = function(e) {
      abort("the potential's `%s` failed%s: %s", name, at_iter(iter),
            conditionMessage(e), class = "jkoflow_error_potential")
    })
  }
  fun <- function(x, iter = 0L, want_grad = TRUE) {
    n <- nrow(x)
    v <- call_user(f, what, x, iter)
    if (!is.numeric(v) || length(v) != n) {
      abort("the potential's `%s` returned %s%s; expected %d numbers (one per row).",
            what, describe(v), at_iter(iter), n, class = "jkoflow_error_potential")
    }
    if (any(!is.finite(v))) {
      abort("the potential's `%s` returned %d non-finite value%s (NA, NaN or Inf)%s.",
            what, sum(!is.finite(v)), if (sum(!is.finite(v)) == 1L) "" else "s",
            at_iter(iter), class = "jkoflow_error_potential")
    }
    g <- NULL
    if (want_grad) {
      g <- if (is.null(grad)) fd_gradient(f, x, v) else call_user(grad, gname, x, iter)
      if (!is.numeric(g) || !identical(dim(g), dim(x))) {
        abort("the potential's `%s` returned %s%s; expected a %d x %d matrix.",
              gname, if (is.null(dim(g))) describe(g) else
                sprintf("a %s matrix", paste(dim(g), collapse = " x ")),
              at_iter(iter), nrow(x), ncol(x), class = "jkoflow_error_potential")
      }
      if (any(!is.finite(g))) {
        abort("the potential's `%s` returned non-finite values (NA, NaN or Inf)%s.",
              gname, at_iter(iter), class = "jkoflow_error_potential")
      }
      storage.mode(g) <- "double"
    }
    list(as.double(v), g)
  }
  new_potential(4L, NULL, if (is.null(dim)) NA_integer_ else dim, label, fun = fun)
}

at_iter <- function(iter) if (iter > 0L) sprintf(" at iteration %d", iter) else ""

# Central differences on the whole batch, one coordinate at a time.
fd_gradient <- function(f, x, v = NULL) {
  g <- x
  for (d in seq_len(ncol(x))) {
    e <- 6e-6 * pmax(1, abs(x[, d]))
    xp <- x; xm <- x
    xp[, d] <- x[, d] + e
    xm[, d] <- x[, d] - e
    g[, d] <- (f(xp) - f(xm)) / (xp[, d] - xm[, d])
  }
  g
}

#' Evaluate a potential
#'
#' @param potential A `"jko_potential"`.
#' @param x Points, an n x D matrix.
#' @param grad Also return the gradient?
#' @return The n values of \eqn{\Phi}; with `grad = TRUE` a list with
#'   `value` and `gradient` (n x D).
#' @examples
#' potential_value(potential_quadratic(diag(2)), rbind(c(1, 1), c(0, 2)))
#' @export
potential_value <- function(potential, x, grad = FALSE) {
  check_potential(potential)
  x <- check_points(x, if (is.na(potential$dim)) NULL else potential$dim, "x")
  grad <- check_flag(grad, "grad")
  out <- .Call(C_pot_eval, potential_spec(potential), to_cols(x), grad)
  if (!grad) return(out[[1L]])
  list(value = out[[1L]], gradient = t(out[[2L]]))
}

check_potential <- function(potential, arg = "potential") {
  if (!inherits(potential, "jko_potential")) {
    abort(paste0("`%s` must be a jkoflow potential (potential_quadratic(), ",
                 "potential_gmm(), potential_double_well(), potential_fn(), ",
                 "target_logdensity(), target_logistic()), not %s."),
          arg, describe(potential))
  }
  invisible(potential)
}

# What the C core reads (potentials.c: pot_from_sexp).
potential_spec <- function(potential) {
  spec <- list(code = potential$code, par = potential$par, fun = potential$fun,
               env = potential$env)
  if (identical(potential$code, 5L)) {
    spec <- c(spec, potential[c("x", "y", "prior", "shape", "rate", "batch")])
  }
  spec
}

#' @export
print.jko_potential <- function(x, ...) {
  cat("Potential:", x$label, "\n")
  invisible(x)
}
