# Potentials Phi for jko_fit(). A potential is a list of class
# c(<kind>, "jko_potential") with its `dim` (NA if any) and a `label`. Built-in
# kinds carry the name of their row of src/potentials.c's table in `builtin`
# (by which C knows them: never by a class, which new_potential() lets the
# user choose) and their parameters in `par`, and are evaluated in C; any
# other potential carries `value` and `gradient` functions and is evaluated
# in R (new_potential()).

# A potential of a kind evaluated in C: `kind` names it in the C table;
# `class` its classes before "jko_potential".
builtin_potential <- function(kind, par, dim, label, ...,
                              class = paste0("jko_potential_", kind)) {
  structure(list(dim = as.integer(dim), label = label, par = as.double(par),
                 builtin = kind, ...),
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
#'
#' A target (an unnormalised log-density whose flow is run to it) is a
#' potential too: see [targets].
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
#' @param f An R function of an n x D matrix returning n numbers.
#' @param grad `NULL` or an R function of an n x D matrix returning the n x D
#'   matrix of gradients of \eqn{\Phi}.
#' @param dim Optional dimension, checked against `init` in [jko_fit()].
#' @param variables Optional names of the coordinates (the model's
#'   parameters), which samples, summaries and draws then carry; they also
#'   set the dimension.
#' @return An object of class `"jko_potential"`.
#' @examples
#' potential_quadratic(diag(2), b = c(1, -1))
#' potential_gmm(rbind(c(-2, 0), c(2, 0)), sd = 0.7)
#' potential_double_well()
#' quartic <- potential_fn(function(x) rowSums(x^4) / 4, function(x) x^3)
#' potential_value(quartic, matrix(1, 1, 2), grad = TRUE)
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
  builtin_potential("quadratic", c(A, b), D,
                    sprintf("quadratic (Ornstein-Uhlenbeck), dimension %d", D),
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
  if (length(dim(means)) != 2L) {
    abort("`means` must be a matrix (components in rows) or a vector, not an array of %d dimensions.",
          length(dim(means)))
  }
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
  builtin_potential("gmm", c(K, sd, log(weights), t(means)), ncol(means),
                    sprintf("Gaussian mixture, %d components, dimension %d", K, ncol(means)),
                    means = unname(means), sd = sd, weights = weights)
}

#' @rdname potentials
#' @export
potential_double_well <- function(center = 1, height = 1) {
  center <- check_positive(center, "center")
  height <- check_positive(height, "height")
  builtin_potential("double_well", c(center, height), NA_integer_,
                    sprintf("double well (wells at x1 = +/-%g, barrier %g)", center, height),
                    center = center, height = height)
}

#' @rdname potentials
#' @export
potential_fn <- function(f, grad = NULL, dim = NULL, variables = NULL) {
  dim <- check_user_fns(f, "f", grad, dim, "potential_fn")
  new_potential(f, grad, dim, "R function", names = c(value = "f", gradient = "grad"),
                class = "jko_potential_fn", variables = variables)
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

#' A potential from R functions: the protocol
#'
#' Every potential of jkoflow is a list of class `c(<kind>, "jko_potential")`
#' with its dimension `dim` (`NA` when it works in any dimension) and a
#' `label`. The built-in kinds ([potential_quadratic()], [potential_gmm()],
#' [potential_double_well()], [target_logistic()], [target_glm()]) are evaluated in C, a
#' batch at a time. `new_potential()` makes any other potential from two R
#' functions of an n x D matrix of points (one point per row):
#'
#' * `value(x)` returns the n values of \eqn{\Phi};
#' * `gradient(x)` returns the n x D matrix of gradients, or is `NULL`:
#'   then gradients are central finite differences on the whole batch, 2 D
#'   extra calls of `value`;
#' * optionally `value_gradient(x)` returns both at once, as
#'   `list(value = , gradient = )`: training calls it instead of the two
#'   when value and gradient come out of one computation (as Stan's
#'   `grad_log_prob()` gives both).
#'
#' The package checks what they return on every call during a fit (the
#' number of values, the shape of the gradient, finiteness) and stops with
#' an error that names the function and the iteration. [jko_evidence()]
#' and `jko_sample(resample = TRUE)` call `value` directly, so there it may
#' return `Inf` outside the support of \eqn{e^{-\Phi}}. The class
#' `class` is put before `"jko_potential"`, so that methods can be written
#' for it; whatever it is, the potential is evaluated by its functions (a
#' class never makes it a built-in kind). [potential_fn()] and
#' [target_logdensity()] are made this way.
#'
#' @param value A function of an n x D matrix returning n numbers.
#' @param gradient `NULL` or a function of an n x D matrix returning the
#'   n x D gradients of `value`.
#' @param dim `NULL` (any dimension: taken from `init` in [jko_fit()]) or
#'   the dimension.
#' @param label A short description, shown by `print()`.
#' @param value_gradient `NULL` or a function of an n x D matrix returning
#'   `list(value = , gradient = )`, the two above at once.
#' @param names How error messages name `value` and `gradient`.
#' @param variables `NULL` or the D names of the coordinates, which samples
#'   and draws of a fit then carry.
#' @param class Class(es) of the new potential, before `"jko_potential"`.
#' @return An object of class `c(class, "jko_potential")`.
#' @seealso [potentials] for the built-in potentials.
#' @examples
#' # Phi(x) = sum(cosh(x)): a potential with a gradient, in any dimension
#' pot <- new_potential(function(x) rowSums(cosh(x)), function(x) sinh(x),
#'                      label = "sum of cosh", class = "cosh_potential")
#' pot
#' potential_value(pot, rbind(c(0, 0), c(1, -1)), grad = TRUE)
#' @export
new_potential <- function(value, gradient = NULL, dim = NULL, label = "R function",
                          names = c(value = "value", gradient = "gradient"),
                          class = NULL, value_gradient = NULL, variables = NULL) {
  if (!is.function(value)) {
    abort("`value` must be a function of an n x D matrix, not %s.", describe(value))
  }
  if (!is.null(gradient) && !is.function(gradient)) {
    abort("`gradient` must be NULL or a function of an n x D matrix, not %s.",
          describe(gradient))
  }
  if (!is.null(value_gradient) && !is.function(value_gradient)) {
    abort("`value_gradient` must be NULL or a function of an n x D matrix, not %s.",
          describe(value_gradient))
  }
  if (!is.null(dim)) dim <- check_count(dim, "dim")
  else if (is.character(variables)) dim <- length(variables)
  if (!is.null(variables) && (!is.character(variables) || anyNA(variables) ||
                              (!is.null(dim) && length(variables) != dim))) {
    abort("`variables` must be NULL or %s names, not %s.",
          if (is.null(dim)) "character" else sprintf("%d", dim), describe(variables))
  }
  if (!is.null(variables) && anyDuplicated(variables)) {
    dup <- unique(variables[duplicated(variables)])
    abort("`variables` must be distinct names: %s appear%s more than once.",
          paste0("\"", dup, "\"", collapse = ", "), if (length(dup) == 1L) "s" else "")
  }
  if (!is.character(label) || length(label) != 1L) {
    abort("`label` must be a single string, not %s.", describe(label))
  }
  if (!is.null(class) && (!is.character(class) || anyNA(class))) {
    abort("`class` must be NULL or a character vector, not %s.", describe(class))
  }
  structure(list(dim = if (is.null(dim)) NA_integer_ else dim, label = label,
                 value = users_blas(value), gradient = users_blas(gradient),
                 value_gradient = users_blas(value_gradient),
                 names = names, variables = variables),
            class = c(class, "jko_potential"))
}

# A potential's function f run on the user's own BLAS threads where a fit
# runs OpenBLAS on one (single_blas(), R/threads.R): a log-density of
# large matrix products keeps its threads. NULL for NULL.
users_blas <- function(f) {
  if (is.null(f)) return(NULL)
  force(f)
  function(x) {
    u <- the$blas_user
    if (!is.null(u)) {
      blas_threads(u)
      on.exit(blas_threads(1L), add = TRUE)
    }
    f(x)
  }
}

# Called from C (src/potentials.c) for a potential evaluated in R, on the
# n x D batch x at training iteration `iter` (0 outside training, -1 for the
# free energy): list(value = n doubles, gradient = n x D doubles or NULL),
# checked; anything wrong is an error of class "jkoflow_error_potential"
# that carries `iter`.
potential_eval_r <- function(potential, x, iter = 0L, grad = TRUE) {
  nm <- potential$names
  fail <- function(fmt, ...) {
    abort(fmt, ..., class = "jkoflow_error_potential", data = list(iter = iter),
          call = NULL)
  }
  call_user <- function(fun, name) {
    tryCatch(fun(x), error = function(e) {
      fail("the potential's `%s` failed%s: %s", name, at_iter(iter), conditionMessage(e))
    })
  }
  n <- nrow(x)
  both <- if (grad && !is.null(potential$value_gradient)) {
    call_user(potential$value_gradient, nm[["value"]])
  }
  v <- if (is.null(both)) call_user(potential$value, nm[["value"]]) else both$value
  if (!is.numeric(v) || length(v) != n) {
    # (a target's value is -log pi: its log-density's values are shown)
    fail("the potential's `%s` returned %s for %d points%s; expected %d numbers (one per row).",
         nm[["value"]], values_text(if (inherits(potential, "jko_target") && is.numeric(v)) -v
                                    else v), n, at_iter(iter), n)
  }
  # A target's log-density may be -Inf outside its support (Stan's
  # convention): Phi = +Inf there is allowed in a fit (see outside_support())
  # and at the monitor samples (the verdict then says the flow has mass
  # outside the support), never NA or NaN, nor -Inf.
  out <- if (isTRUE(potential$support) && iter != 0L) !is.na(v) & v == Inf else logical(n)
  if (any(!is.finite(v) & !out)) {
    fail("the potential's `%s` returned %d non-finite value%s (NA, NaN or Inf)%s.",
         nm[["value"]], sum(!is.finite(v)), if (sum(!is.finite(v)) == 1L) "" else "s",
         at_iter(iter))
  }
  if (all(out) && grad) {
    rej <- potential_rejections(potential)
    fail("the potential's `%s` is infinite at all %d points of a batch%s: the flow has left the support of the target%s.",
         nm[["value"]], n, at_iter(iter),
         if (is.null(rej) || is.na(rej$first)) "" else
           sprintf(" (the target's first rejection: %s)", rej$first))
  }
  g <- NULL
  if (grad) {
    g <- if (!is.null(both)) both$gradient
         else if (is.null(potential$gradient)) fd_gradient(potential$value, x)
         else call_user(potential$gradient, nm[["gradient"]])
    if (!is.numeric(g) || !identical(dim(g), dim(x))) {
      fail("the potential's `%s` returned %s%s; expected a %d x %d matrix.",
           nm[["gradient"]], if (is.null(dim(g))) describe(g) else
             sprintf("a %s matrix", paste(dim(g), collapse = " x ")),
           at_iter(iter), nrow(x), ncol(x))
    }
    if (any(out)) {
      # finite differences across the boundary are not finite either
      near <- out | rowSums(!is.finite(g)) > 0
      sv <- outside_support(x, v, g, near)
      v <- sv$value
      g <- sv$gradient
    }
    if (any(!is.finite(g))) {
      fail("the potential's `%s` returned non-finite values (NA, NaN or Inf)%s.",
           nm[["gradient"]], at_iter(iter))
    }
    storage.mode(g) <- "double"
  }
  list(value = as.double(v), gradient = g)
}

# What a target that counts its rejected points (target_stan()'s, through
# its `rejections()`) says of them: list(points, rejected, share, first),
# or NULL.
potential_rejections <- function(potential) {
  if (is.function(potential$rejections)) potential$rejections()
}

# The rejections counted since `before` (an earlier potential_rejections()
# of the same target, or NULL): one fit's own, where the target counts
# across fits. The message is the first since the target was made when
# none came before, else the latest (one of this fit's).
rejections_since <- function(now, before) {
  if (is.null(now) || is.null(before)) return(now)
  points <- now$points - before$points
  rejected <- now$rejected - before$rejected
  list(points = points, rejected = rejected,
       share = if (points > 0) rejected / points else 0,
       first = if (before$rejected == 0) now$first
               else if (rejected > 0) now$last %||% NA_character_ else NA_character_)
}

at_iter <- function(iter) if (iter > 0L) sprintf(" at iteration %d", iter) else ""

# Points of a training batch outside the target's support (or so close to
# its boundary that the gradient is not finite), `bad`: Phi there becomes
# the largest finite value of the batch plus a quadratic in the distance to
# the mean of the other points, whose gradient pulls them back towards the
# mass, scaled by the spread of the other points. A barrier of the right
# sign; where it acts the flow has not reached the target, and the verdict
# (infinite KL at monitor samples outside the support) says so.
outside_support <- function(x, v, g, bad) {
  ok <- !bad & is.finite(v)
  m <- colMeans(x[ok, , drop = FALSE])
  s2 <- mean(apply(x[ok, , drop = FALSE], 2L, stats::var))
  if (!is.finite(s2) || s2 <= 0) s2 <- 1
  d <- sweep(x[bad, , drop = FALSE], 2L, m)
  v[bad] <- max(v[ok]) + 0.5 * rowSums(d^2) / s2
  g[bad, ] <- d / s2
  list(value = v, gradient = g)
}

# Central differences on the whole batch, one coordinate at a time.
fd_gradient <- function(f, x) {
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
#'   `value` and `gradient` (n x D). A built-in potential that overflows
#'   gives `Inf` (or `NaN`) there, as it is; a potential made by
#'   [new_potential()] is checked, and a non-finite value is an error.
#' @examples
#' potential_value(potential_quadratic(diag(2)), rbind(c(1, 1), c(0, 2)))
#' @export
potential_value <- function(potential, x, grad = FALSE) {
  check_potential(potential)
  x <- check_points(x, if (is.na(potential$dim)) NULL else potential$dim, "x")
  grad <- check_flag(grad, "grad")
  out <- c_pot_eval(potential, x, grad)
  if (!grad) return(out$value)
  out[c("value", "gradient")]
}

check_potential <- function(potential, arg = "potential") {
  if (!inherits(potential, "jko_potential")) {
    abort(paste0("`%s` must be a jkoflow potential (potential_quadratic(), ",
                 "potential_gmm(), potential_double_well(), potential_fn(), ",
                 "target_logdensity(), target_logistic(), target_glm(), new_potential()), not %s."),
          arg, describe(potential))
  }
  invisible(potential)
}

# Phi at the rows of x as the potential's own functions give it: values
# outside the support (Inf) or undefined (NA) come back as they are, for
# importance weights. Minibatch targets are evaluated on the full data.
potential_values <- function(potential, x) {
  potential <- full_data(potential)
  out <- numeric(nrow(x))
  for (st in seq(1L, nrow(x), by = 1e5)) {
    rows <- st:min(nrow(x), st + 1e5 - 1L)
    xc <- x[rows, , drop = FALSE]
    v <- if (is.function(potential$value)) as.double(potential$value(xc))
         else c_pot_eval(potential, xc)$value
    if (length(v) != length(rows)) {
      abort("the potential's `%s` returned %s for %d points; expected one value per row.",
            potential$names[["value"]] %||% "value",
            values_text(if (inherits(potential, "jko_target")) -v else v), length(rows),
            call = NULL)
    }
    out[rows] <- v
  }
  out
}

# The gradient of Phi at the rows of x as the potential gives it (no checks).
raw_gradient <- function(potential, x) {
  if (is.function(potential$value)) {
    g <- if (is.null(potential$gradient)) fd_gradient(potential$value, x)
         else potential$gradient(x)
    return(matrix(as.double(g), nrow(x), ncol(x)))
  }
  c_pot_eval(potential, x, TRUE)$gradient
}

# The potential beta Phi: its modes' Laplace approximations and weights are
# those of the stationary law exp(-beta Phi), which the start of a flow to
# that law (its mode search, mixture start and the start's importance
# sampling, R/modes.R and R/pmc.R) must see; the potential itself at
# beta = 1. Evaluated on the full data (a minibatch target's start does).
tempered <- function(potential, beta) {
  if (beta == 1) return(potential)
  base <- full_data(potential)
  vg <- function(x) {
    o <- c_pot_eval(base, x, TRUE)
    list(value = beta * o$value, gradient = beta * o$gradient)
  }
  new_potential(function(x) beta * potential_values(base, x), function(x) vg(x)$gradient,
                dim = if (!is.na(base$dim)) base$dim,
                label = sprintf("%g x (%s)", beta, base$label), value_gradient = vg,
                variables = base$variables)
}

# The potential without minibatches (target_logistic(batch = )).
full_data <- function(potential) UseMethod("full_data")
#' @export
full_data.default <- function(potential) potential

#' @export
print.jko_potential <- function(x, ...) {
  check_dots(...)
  cat("Potential:", x$label, "\n")
  invisible(x)
}
