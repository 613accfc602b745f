# Targets: the protocol of a potential Phi = -log pi whose stationary law pi
# is the point, and its R-function instance, target_logdensity().

#' Targets: unnormalised densities as the end of a flow
#'
#' A target is a potential \eqn{\Phi = -\log\pi} for an unnormalised
#' density \eqn{\pi}: with \eqn{\beta = 1} the flow ends at \eqn{\pi}, and
#' [jko_fit()] runs it there by default (see "Flows to the stationary law"
#' in [jko_fit()]), which makes the fit a sampler of \eqn{\pi} with an exact
#' density for every draw, and the evidence \eqn{\int\pi} ([jko_evidence()]).
#'
#' What a target provides (the protocol; `new_target()` makes one from R
#' functions, and [target_logdensity()], [target_glm()], [target_stan()]
#' and [target_logistic()] are its instances):
#'
#' * its log-density on a batch: `logd(x)` of an n x D matrix (one point
#'   per row) returns the n values of \eqn{\log\pi} up to a constant; it may
#'   be `-Inf` outside the support of \eqn{\pi} (Stan's convention: during a
#'   fit, batch points there are pulled back towards the others by a
#'   quadratic barrier, and the verdict counts the flow as not at the target
#'   while any of its monitor samples lies outside);
#' * its gradient on a batch, `grad(x)`, the n x D matrix of
#'   \eqn{\nabla\log\pi}, or `NULL` (central finite differences, 2 D extra
#'   calls of `logd` per batch), or both at once, `logd_grad(x)` returning
#'   `list(value = , gradient = )` (as Stan's `grad_log_prob()` gives both);
#' * its dimension `dim` and the names of the coordinates, `variables`;
#' * optionally a `start`: a point where `logd` is finite, near the mode,
#'   where [init_laplace()] begins its search;
#' * optionally an `init`: the initial distribution of its time-accurate
#'   flow (`jko_fit(stationary = FALSE)`), such as its prior;
#' * optionally a `transform`: the change of variables from the scale the
#'   flow runs on (an unconstrained scale) to the model's own, a list of
#'   `variables` (the names on the model's scale), `parameters` (those of
#'   them that are parameters), `constrain(u)` and `unconstrain(theta)`
#'   (matrices of points, one per row) and `log_jacobian(u)`
#'   (\eqn{\log|d\theta/du|} at each row): draws and densities are then
#'   given on the model's scale by default (see [jko_sample()]).
#'
#' Every function's result is checked on every call during a fit (the
#' number of values, the shape of the gradient, non-finite values) and an
#' error names the function and the iteration. Before the fit, [jko_fit()]
#' also calls each function on two points, together and one by one: a
#' function that fails on a single row, or gives a row another value than
#' its point alone (a sum over data recycled against several points), is
#' refused with the fix. The class of a target is
#' `c(class, "jko_target", "jko_potential")`, so methods can be written for
#' it.
#'
#' @param logd A function of an n x D matrix returning n log-densities.
#' @param grad `NULL` or a function of an n x D matrix returning the n x D
#'   gradients of `logd`.
#' @param logd_grad `NULL` or a function of an n x D matrix returning
#'   `list(value = , gradient = )`, `logd` and `grad` at once.
#' @param dim `NULL` (taken from `init` in [jko_fit()]) or the dimension.
#' @param variables `NULL` or the D names of the coordinates.
#' @param start `NULL` or a point (length D) where `logd` is finite.
#' @param init `NULL` or an initial distribution (see [init_gaussian()])
#'   for the time-accurate flow.
#' @param transform `NULL` or the change of variables described above.
#' @param label A short description, shown by `print()`.
#' @param names How error messages name `logd` and `grad`.
#' @param class Class(es) of the new target, before `"jko_target"`.
#' @return A target: an object of class `c(class, "jko_target",
#'   "jko_potential")`.
#' @seealso [jko_fit()], [new_potential()] (the protocol of potentials).
#' @examples
#' # a banana-shaped density, with its gradient
#' banana <- target_logdensity(
#'   function(x) -(x[, 1]^2 / 2 + (x[, 2] - x[, 1]^2)^2),
#'   function(x) cbind(-x[, 1] + 4 * x[, 1] * (x[, 2] - x[, 1]^2), -2 * (x[, 2] - x[, 1]^2)),
#'   variables = c("a", "b"))
#' banana
#' potential_value(banana, matrix(0, 1, 2))   # Phi = -log pi
#' # the same through the protocol, with a start for the mode search
#' tg <- new_target(function(x) -rowSums(x^2) / 2, function(x) -x, dim = 3,
#'                  start = c(1, 1, 1), label = "standard normal")
#' tg$start
#' @name targets
NULL

#' @rdname targets
#' @export
new_target <- function(logd, grad = NULL, logd_grad = NULL, dim = NULL, variables = NULL,
                       start = NULL, init = NULL, transform = NULL,
                       label = "target log-density",
                       names = c(value = "logd", gradient = "grad"), class = NULL) {
  if (!is.function(logd)) {
    abort("`logd` must be a function of an n x D matrix, not %s.", describe(logd))
  }
  if (!is.null(grad) && !is.function(grad)) {
    abort("`grad` must be NULL or a function of an n x D matrix, not %s.", describe(grad))
  }
  if (!is.null(logd_grad) && !is.function(logd_grad)) {
    abort("`logd_grad` must be NULL or a function of an n x D matrix, not %s.",
          describe(logd_grad))
  }
  force(logd)
  force(grad)
  force(logd_grad)
  pot <- new_potential(
    function(x) -logd(x),
    if (!is.null(grad)) function(x) -grad(x),
    dim = dim, label = label, names = names, class = class,
    value_gradient = if (!is.null(logd_grad)) function(x) {
      out <- logd_grad(x)
      list(value = -out$value, gradient = -out$gradient)
    },
    variables = variables)
  as_target(pot, start = start, init = init, transform = transform)
}

# Any potential (one evaluated in R, or a built-in kind evaluated in C) made
# a target: the class, the support convention and what the protocol adds.
as_target <- function(pot, start = NULL, init = NULL, transform = NULL) {
  D <- pot$dim
  if (!is.null(start)) {
    if (!is.numeric(start) || !length(start) || any(!is.finite(start)) ||
        (!is.na(D) && length(start) != D)) {
      abort("`start` must be NULL or %s finite numbers, not %s.",
            if (is.na(D)) "a point of" else sprintf("%d", D), describe(start),
            call = sys.call(-1L))
    }
    start <- as.double(start)
  }
  if (!is.null(init) && !inherits(init, c("jko_init", "jko_law"))) {
    abort("`init` must be NULL or an initial distribution (init_gaussian(), ...), not %s.",
          describe(init), call = sys.call(-1L))
  }
  if (!is.null(transform)) check_transform(transform, call = sys.call(-1L))
  pot$support <- TRUE
  pot$start <- start
  pot$init <- init
  pot$transform <- transform
  cls <- class(pot)
  class(pot) <- c(setdiff(cls, c("jko_target", "jko_potential")), "jko_target", "jko_potential")
  pot
}

check_transform <- function(tr, call) {
  fns <- c("constrain", "unconstrain", "log_jacobian")
  ok <- is.list(tr) && all(vapply(tr[fns], is.function, NA)) &&
    is.character(tr$variables) && is.character(tr$parameters)
  if (!ok) {
    abort(paste0("`transform` must be NULL or a list of `variables`, `parameters` ",
                 "(character) and the functions `constrain`, `unconstrain` and ",
                 "`log_jacobian`, not %s."), describe(tr), call = call)
  }
}

# Is the stationary law of the potential the point?
is_target <- function(potential) inherits(potential, "jko_target")

# Where init_laplace() starts: the target's own start, else the origin.
target_start <- function(potential, D = potential$dim) {
  if (!is.null(potential$start)) potential$start else rep(0, D)
}

#' @rdname targets
#' @export
target_logdensity <- function(logd, grad = NULL, dim = NULL, variables = NULL) {
  dim <- check_user_fns(logd, "logd", grad, dim, "target_logdensity")
  new_target(logd, grad, dim = dim, variables = variables,
             class = "jko_target_logdensity")
}

#' @export
print.jko_target <- function(x, ...) {
  check_dots(...)
  cat("Target:", x$label, "\n")
  if (!is.null(x$variables)) {
    v <- x$variables
    cat(sprintf("  %d variable%s: %s%s\n", length(v), if (length(v) == 1L) "" else "s",
                paste(utils::head(v, 8L), collapse = ", "),
                if (length(v) > 8L) sprintf(", ... (%d more)", length(v) - 8L) else ""))
  }
  invisible(x)
}

# Before a flow starts: a potential of R functions given a 2-row matrix of
# points must return 2 values (and a 2 x D gradient). A log-density written
# for one parameter vector, as R's optim() takes it, returns one number for
# the whole matrix; it is found here, with the fix, rather than at the
# first training batch. A target of unknown dimension with nothing to take
# it from is named as such.
probe_target <- function(potential, init, stationary, call = sys.call(-1L)) {
  if (!inherits(potential, "jko_potential") || !is.function(potential$value)) {
    return(invisible())
  }
  D <- potential$dim
  if (is.na(D)) {
    D <- if (!is.null(init)) init$dim else length(potential$start)
  }
  if (!length(D) || is.na(D) || D < 1L) {
    if (!stationary) return(invisible())  # jko_fit() says `init` is needed
    abort(paste0("%s needs `dim` (or `variables`): the dimension of its points, which ",
                 "nothing else gives when jko_fit() has no `init` (e.g. ",
                 "target_logdensity(logd, dim = 2))."), target_name(potential), call = call)
  }
  p0 <- if (length(potential$start) == D) potential$start else rep(0, D)
  x <- rbind(p0, p0 + 0.01, deparse.level = 0L)
  nm <- potential$names
  fix <- paste0(" A function written for one parameter vector, f(theta), is vectorised ",
                "over the rows by `function(x) apply(x, 1, f)`%s.")
  probe <- function(fun, name, what, grad = FALSE) {
    out <- tryCatch(fun(x), error = function(e) {
      abort(paste0("the potential's `%s` failed on a matrix of 2 points (one per row, %s): ",
                   "%s.", fix), name, columns_text(D), conditionMessage(e),
            if (grad) " (a gradient by `function(x) t(apply(x, 1, g))`)" else "",
            call = call)
    })
    if (grad && is.list(out)) out <- out$gradient
    # a target's value is -log pi: its log-density's values are shown
    if (!grad && is_target(potential) && is.numeric(out)) out <- -out
    ok <- if (grad) is.numeric(out) && identical(dim(out), c(2L, as.integer(D)))
          else is.numeric(out) && length(out) == 2L
    if (!ok) {
      abort(paste0("the potential's `%s` returned %s for a matrix of 2 points (one per ",
                   "row, %s); it must return %s.", fix), name, values_text(out), columns_text(D),
            what, if (grad) " (a gradient by `function(x) t(apply(x, 1, g))`)" else "",
            call = call)
    }
    # The right number of values is not enough: a function that mixes the
    # rows (sum(dnorm(y, x, 1, log = TRUE)) over data y recycled against the
    # points, a sum or mean over x) gives each row a value that is not its
    # own, silently. Each point alone must give the batch's row.
    one <- function(i) {
      o <- tryCatch(fun(x[i, , drop = FALSE]), error = function(e) e)
      if (inherits(o, "error")) {
        abort(paste0("the potential's `%s` failed on a matrix of 1 point (one row, %s): %s; ",
                     "it is called on batches of any number of rows, one or more. (For one ",
                     "row, sapply() and vapply() return a vector where they return a matrix ",
                     "for several, and x[, j] drops to a number: keep the shape with ",
                     "matrix(..., nrow = nrow(x)) or x[, j, drop = FALSE].)"),
              name, columns_text(D), conditionMessage(o), call = call)
      }
      if (grad && is.list(o)) o <- o$gradient
      if (!grad && is_target(potential) && is.numeric(o)) o <- -o
      o
    }
    alone <- lapply(1:2, one)
    both <- if (grad) out else matrix(out, 2L)
    same <- vapply(1:2, function(i) {
      a <- as.numeric(alone[[i]])
      b <- as.numeric(both[i, ])
      length(a) == length(b) &&
        all((is.na(a) & is.na(b)) | a == b |
              (is.finite(a) & is.finite(b) & abs(a - b) <= 1e-6 * (1 + abs(b))))
    }, TRUE)
    if (!all(same)) {
      abort(paste0("the potential's `%s` gives a row of a matrix of 2 points (one per row, %s) ",
                   "another %s than that point alone (%s against %s): it must treat each ",
                   "row as one point. A sum over data, such as sum(dnorm(y, x, 1, log = TRUE)), ",
                   "also sums over the rows, recycled against the data, when x has several.",
                   fix), name, columns_text(D), if (grad) "gradient" else "value",
            values_text(as.numeric(both[which(!same)[1L], ])),
            values_text(as.numeric(alone[[which(!same)[1L]]])),
            if (grad) " (a gradient by `function(x) t(apply(x, 1, g))`)" else "",
            call = call)
    }
  }
  probe(potential$value, nm[["value"]], "one value per row")
  if (is.function(potential$gradient)) {
    probe(potential$gradient, nm[["gradient"]], sprintf("a 2 x %d matrix, a gradient per row", D),
          grad = TRUE)
  }
  invisible()
}

columns_text <- function(D) sprintf("%d column%s", D, if (D == 1L) "" else "s")

target_name <- function(potential) {
  if (inherits(potential, "jko_target_logdensity")) "target_logdensity()"
  else if (inherits(potential, "jko_potential_fn")) "potential_fn()"
  else if (is_target(potential)) "the target" else "the potential"
}
