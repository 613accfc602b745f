#' Input-convex neural network
#'
#' Creates a dense input-convex neural network (ICNN) with quadratic skip
#' connections,
#' \deqn{\psi(x) = v^\top z_L + v_1^\top z_1 + \frac{\alpha}{2}|x|^2,}{psi(x) = v'z_L + v_1'z_1 + alpha |x|^2 / 2,}
#' where \eqn{z_1 = Q_1(x)}, \eqn{z_l = \sigma(W_l z_{l-1} + Q_l(x))} with
#' non-negative \eqn{W_l}, \eqn{v} and \eqn{v_1} (the skip from the first
#' layer, present with two layers or more, makes linear maps exact), a convex
#' non-decreasing activation
#' \eqn{\sigma}, and convex quadratics \eqn{Q_{l,k}(x) = \sum_j (a_{l,k,j}^\top x)^2
#' + b_{l,k}^\top x + c_{l,k}} of rank `rank`. The strong-convexity weight
#' \eqn{\alpha} is kept above `alpha_min`, so the Hessian is always positive
#' definite and the map \eqn{\nabla\psi} is invertible.
#'
#' The new network's map is the identity up to about `1e-5`: the quadratic
#' and hidden weights are random, the output weights tiny and \eqn{\alpha = 1}.
#' Parameters are held in one plain numeric vector (`$theta`), so a network
#' survives [saveRDS()] and [readRDS()].
#'
#' @param dim Dimension of the input, a whole number >= 1.
#' @param hidden Widths of the layers, whole numbers >= 1 (at most 32 layers).
#' @param rank Rank of the quadratic skip terms, a whole number >= 1.
#' @param activation `"softplus"` (the default) or `"squared_softplus"`
#'   (\eqn{\mathrm{softplus}^2/2}{softplus^2 / 2}).
#' @param alpha_min Lower bound of the strong-convexity weight \eqn{\alpha}.
#' @param init_scale A number >= 1. Above 1, the hidden units of the
#'   activated layers are made sharper and moved: the linear part of the
#'   pre-activation of unit k (\eqn{b_{l,k}^\top x + (W_l z_{l-1})_k}) is
#'   multiplied by \eqn{c_k}, log-uniform in `[1, init_scale]`, its
#'   quadratic part kept, and its offset set so that it vanishes at
#'   \eqn{m_k}, a random point of \eqn{N(0, I)}: the unit's transition
#'   lies among standardised samples, over a width of about \eqn{1/c_k} of
#'   their spread. The output weights are divided by `init_scale`, so the
#'   map is still the identity at the start.
#' @return An object of class `"icnn"`.
#' @seealso [predict.icnn()], [jko_fit()].
#' @examples
#' set.seed(1)
#' net <- icnn(2, hidden = c(16, 16), rank = 2)
#' net
#' x <- matrix(rnorm(6), 3, 2)
#' predict(net, x, type = "gradient") - x   # the identity map, nearly
#' @export
icnn <- function(dim, hidden = c(64, 64), rank = 5, activation = "softplus",
                 alpha_min = 1e-4, init_scale = 1) {
  dim <- check_count(dim, "dim")
  hidden <- check_hidden(hidden)
  rank <- check_count(rank, "rank")
  check_activation(activation)
  alpha_min <- check_positive(alpha_min, "alpha_min")
  init_scale <- check_init_scale(init_scale)
  net <- icnn_spec(dim, hidden, rank, activation, alpha_min)
  net$theta <- c_icnn_init(net, init_scale)
  net
}

# A network's architecture without parameters (checked by the caller).
icnn_spec <- function(dim, hidden, rank, activation, alpha_min) {
  structure(list(dim = dim, hidden = hidden, rank = rank, activation = activation,
                 alpha_min = alpha_min, theta = NULL), class = "icnn")
}

check_hidden <- function(hidden, call = sys.call(-1L)) {
  hidden <- check_counts(hidden, "hidden", call = call)
  if (length(hidden) > 32L) {
    abort("`hidden` must have at most 32 layers, not %d.", length(hidden), call = call)
  }
  hidden
}

check_init_scale <- function(init_scale, call = sys.call(-1L)) {
  if (!is.numeric(init_scale) || length(init_scale) != 1L || is.na(init_scale) ||
      !is.finite(init_scale) || init_scale < 1) {
    abort("`init_scale` must be a number >= 1, not %s.", describe(init_scale), call = call)
  }
  as.double(init_scale)
}

check_activation <- function(activation, call = sys.call(-1L)) {
  if (!is.character(activation) || length(activation) != 1L ||
      !activation %in% activations) {
    abort("`activation` must be one of %s, not %s.",
          paste0("\"", activations, "\"", collapse = " or "), describe(activation),
          call = call)
  }
}

#' Evaluate an input-convex neural network
#'
#' @param object An `"icnn"` network.
#' @param x Points, an n x dim numeric matrix (a vector is one point, or n
#'   points when dim = 1).
#' @param type What to compute: the potential \eqn{\psi(x)} (a length-n
#'   vector), its gradient, the map \eqn{\nabla\psi(x)} (an n x dim matrix),
#'   the Hessian (a dim x dim x n array), or \eqn{\log\det\nabla^2\psi(x)}
#'   (a length-n vector, by Cholesky factorisation in double precision; `NA`
#'   with a warning where the Hessian is not positive definite, which only
#'   happens when the parameters are corrupt or overflow).
#' @param threads Number of OpenMP threads for the per-sample work (default
#'   the option `jkoflow.threads`, see [jko_control()]).
#' @param ... Unused: a name given here is an error.
#' @return See `type`.
#' @examples
#' set.seed(1)
#' net <- icnn(2, hidden = c(8, 8), rank = 2)
#' predict(net, c(0.5, -1), type = "logdet")
#' @export
predict.icnn <- function(object, x,
                         type = c("potential", "gradient", "hessian", "logdet"),
                         threads = NULL, ...) {
  check_dots(...)
  type <- choose_arg(type, c("potential", "gradient", "hessian", "logdet"), "type")
  x <- check_points(x, object$dim, "x")
  threads <- resolve_threads(threads)
  what <- switch(type, potential = 0L, gradient = 0L, logdet = 1L, hessian = 2L)
  out <- c_icnn_eval(object, object$theta, x, what, threads)
  if (type == "logdet" && out$status != "ok") {
    bad <- is.nan(out$log_det)
    warning(sprintf("%s at %d of %d points: their log-determinants are NA.",
                    jko_status_message(out$status), sum(bad), length(bad)), call. = FALSE)
    out$log_det[bad] <- NA_real_
  }
  switch(type,
    potential = out$potential,
    gradient = {
      g <- out$gradient
      dimnames(g) <- dimnames(x)
      g
    },
    logdet = out$log_det,
    hessian = array(out$hessian, c(object$dim, object$dim, nrow(x))))
}

#' @export
print.icnn <- function(x, ...) {
  check_dots(...)
  cat(sprintf("Input-convex neural network: dimension %d, %d layer%s (%s), rank %d, %s\n",
              x$dim, length(x$hidden), if (length(x$hidden) == 1L) "" else "s",
              paste(x$hidden, collapse = " x "), x$rank, x$activation))
  cat(sprintf("%d parameters\n", length(x$theta)))
  invisible(x)
}
