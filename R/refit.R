# update() of a fit: the same model with changed settings, or for a GLM a
# changed formula, data or prior, run again from what the fit keeps (its
# target, settings and, for a GLM, the pieces of its target_glm() call).

#' Update and re-fit a JKO fit
#'
#' Runs [jko_fit()] again from the fit alone: the target (or potential) is
#' kept in the fit, so `update()` works after the objects the fit was made
#' from are gone. Settings given in `...` replace the fit's: those of
#' [jko_fit()] (`init`, `h`, `steps`, `beta`, `stationary`, `control`,
#' `threads`, `verbose`) and of [jko_control()] (`hidden`, `iters`,
#' `max_steps`, `max_time`, ...); the others stay as they were (`h`,
#' `steps` and `init` where the first fit was given them, the settings of
#' [jko_control()] that it was given).
#'
#' For a fit of a [target_glm()] model, `formula.` (as in [update.formula()],
#' `. ~ . + x2`), `data` and the other arguments of [target_glm()]
#' (`family`, `prior`, `prior_sigma`, `weights`, `subset`, `na.action`,
#' `offset`, `contrasts`) rebuild the target from the pieces of its call:
#' its formula and family, its prior, and its data (the data frame named in
#' the call, looked up where the formula was made; give `data` where it is
#' no longer there). A new model starts from its own Laplace approximation.
#'
#' @param object A `"jko_fit"`.
#' @param formula. For a [target_glm()] fit, changes to the formula.
#' @param data For a [target_glm()] fit, new data.
#' @param ... Settings to change (see above); any other name is an error.
#' @return The new `"jko_fit"`.
#' @seealso [jko_continue()] to run more steps of the same flow.
#' @examples
#' set.seed(1)
#' tg <- target_glm(mpg ~ wt, data = mtcars, family = gaussian())
#' fit <- suppressWarnings(jko_fit(tg, hidden = c(8, 8), iters = 100, pool = 2^12,
#'                                 monitor = 2^11, max_steps = 2, verbose = FALSE))
#' rm(tg)
#' fit2 <- suppressWarnings(update(fit, . ~ . + hp))
#' coef(fit2)
#' @export
update.jko_fit <- function(object, formula., data, ...) {
  check_fit(object, "object")
  fit_args <- c("init", "h", "steps", "beta", "stationary", "control", "threads", "verbose")
  control_args <- names(formals(jko_control))
  glm_args <- c("family", "prior", "prior_sigma", "weights", "subset", "na.action", "offset",
                "contrasts")
  tg <- object$potential
  glm <- is_formula_glm(tg)
  check_dots(..., allowed = c(fit_args, control_args, if (glm) glm_args),
             known = c("object", "formula.", if (glm) "data"))
  exprs <- as.list(substitute(list(...)))[-1L]
  env <- parent.frame()
  given <- names(exprs)
  if (!glm && (!missing(formula.) || !missing(data))) {
    abort("`formula.` and `data` are for fits of target_glm() models; this fit's target is %s.",
          tg$label)
  }
  rebuilt <- glm && (!missing(formula.) || !missing(data) || any(given %in% glm_args))
  if (rebuilt) {
    tg <- rebuild_glm(tg, if (!missing(formula.)) formula., if (!missing(data)) data,
                      !missing(data), exprs[intersect(given, glm_args)], env)
  }
  vals <- lapply(exprs[intersect(given, c(fit_args, control_args))], eval, env)
  old <- object$call
  args <- list(potential = quote(target))
  run <- new.env(parent = environment(update.jko_fit))
  run$target <- tg
  for (a in c("h", "steps")) {
    if (a %in% names(vals)) args[[a]] <- vals[[a]]
    else if (a %in% names(old)) args[[a]] <- if (a == "h") object$h else length(object$theta)
  }
  if ("init" %in% names(vals)) {
    run$init <- vals$init
    args$init <- quote(init)
  } else if ("init" %in% names(old) && !rebuilt) {
    run$init <- object$init
    args$init <- quote(init)
  }
  args$beta <- vals$beta %||% object$beta
  args$stationary <- vals$stationary %||% isTRUE(object$stationary)
  ctrl <- vals$control %||% object$settings
  cargs <- attr(ctrl, "args") %||% list()
  cargs[intersect(names(vals), control_args)] <- vals[intersect(names(vals), control_args)]
  run$control <- do.call(jko_control, cargs)
  args$control <- quote(control)
  for (a in c("threads", "verbose")) if (a %in% names(vals)) args[[a]] <- vals[[a]]
  eval(as.call(c(quote(jko_fit), args)), run)
}

# A target_glm() rebuilt from the pieces of the old one's call: its formula
# (updated by formula.), its data (given, or the call's, looked up where
# the formula was made), family and priors, and the call's weights, subset,
# na.action, offset and contrasts; `exprs` replace any of them.
rebuild_glm <- function(tg, formula., data, data_given, exprs, env, call = sys.call(-1L)) {
  cl <- tg$call
  fenv <- environment(tg$terms)
  f <- stats::formula(tg$terms)
  if (!is.null(formula.)) f <- stats::update.formula(f, formula.)
  if (!data_given && !is.null(cl$data)) {
    data <- tryCatch(eval(cl$data, fenv), error = function(e) {
      abort(paste0("the data of the fit, `%s`, is no longer found where its formula was made: ",
                   "give it as update(fit, data = )."),
            paste(deparse(cl$data), collapse = " "), call = call)
    })
  }
  build <- new.env(parent = fenv)
  build$.data <- data
  args <- list(formula = f, data = quote(.data))
  vals <- list(family = tg$family, prior = tg$prior, prior_sigma = tg$prior_sigma)
  for (a in intersect(names(exprs), names(vals))) vals[[a]] <- eval(exprs[[a]], env)
  vals$family <- glm_family(vals$family, env)
  if (vals$family$family != "gaussian") vals$prior_sigma <- NULL
  for (a in names(vals)) {
    build[[paste0(".", a)]] <- vals[[a]]
    args[[a]] <- as.name(paste0(".", a))
  }
  for (a in c("weights", "subset", "na.action", "offset", "contrasts")) {
    e <- if (a %in% names(exprs)) exprs[[a]] else cl[[a]]
    if (!is.null(e)) args[[a]] <- e
  }
  out <- eval(as.call(c(quote(target_glm), args)), build)
  # the call records what a later update() needs: the formula, and the
  # data's own expression (or, for data given here, the data)
  out$call$formula <- f
  out$call$data <- if (data_given) data else cl$data
  out$call$family <- vals$family
  out$call$prior <- vals$prior
  out
}
