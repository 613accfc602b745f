# A fit of a target as a posterior: its parameter table (print, summary)
# and the methods that read its draws (coef, vcov, confint, as.matrix,
# as.data.frame, ndraws, variables, nvariables). Everything here reads the
# draws through posterior_draws() (R/posterior.R) and nothing else, so that
# how the draws are made (the flow's own, or corrected by Metropolis or
# importance sampling) can change without a change here; nothing here draws.

#' Posterior summaries and draws of a fit of a target
#'
#' A fit of a target run to its stationary law (`jko_fit(target)`, see
#' [targets]) keeps draws of its posterior, made once at the end of the fit.
#' These methods read them, as for a fit of rstanarm or brms:
#'
#' * `coef()`: posterior means (or medians, `estimate = "median"`) of the
#'   coefficients: for [target_glm()] those of the model matrix, in the
#'   order of [glm()]'s; for a Stan program its parameters; otherwise every
#'   variable.
#' * `vcov()`: the posterior covariance of the same coefficients.
#' * `confint()`: equal-tailed credible intervals (posterior quantiles
#'   \eqn{(1 - \mathrm{level})/2} and \eqn{(1 + \mathrm{level})/2}), as a
#'   matrix laid out as [confint()] lays out confidence intervals.
#' * `as.matrix()`, `as.data.frame()`: the draws, one per row, under the
#'   target's names, on the model's scale (for [target_stan()], every
#'   variable of the program: parameters, transformed parameters and
#'   generated quantities).
#' * `ndraws()`, `variables()`, `nvariables()` (the generics of the
#'   posterior package): the number of draws and the names of the
#'   variables.
#'
#' The effective sample size of each variable, and \eqn{\hat R} where the
#' draws come in chains, are those of the draws (independent draws of the
#' flow have an effective sample size equal to their number); `summary()`
#' gives the Monte Carlo standard error of each mean, `se_mean` = sd /
#' \eqn{\sqrt{\mathrm{ESS}}}.
#'
#' A time-accurate flow (`stationary = FALSE`) has no posterior draws: draw
#' from it with [jko_sample()].
#'
#' @param object,x A `"jko_fit"` of a target.
#' @param estimate `"mean"` (the default) or `"median"`.
#' @param parm The coefficients (names or positions among `coef()`'s, or
#'   any variable by name); default all of `coef()`'s.
#' @param level The probability of each credible interval.
#' @param row.names,optional As for [as.data.frame()].
#' @param ... Unused: a name given here is an error.
#' @return `coef()`: a named vector. `vcov()`: a matrix. `confint()`: a
#'   matrix with a row per coefficient and columns named by the lower and
#'   upper probabilities (`"2.5 %"`, `"97.5 %"`). `as.matrix()`: the draws
#'   x variables matrix. `as.data.frame()`: the same as a data frame.
#'   `ndraws()`, `nvariables()`: a count; `variables()`: the names.
#' @seealso [print.jko_fit()] and [summary.jko_fit()] for the parameter
#'   table, [predict.jko_fit()] and [log_lik.jko_fit()] for GLM targets,
#'   [as_draws_matrix.jko_fit()] for the posterior package.
#' @examples
#' set.seed(1)
#' tg <- target_glm(mpg ~ wt, data = mtcars, family = gaussian())
#' # small settings for speed; jko_fit(tg) alone runs to the posterior
#' fit <- suppressWarnings(jko_fit(tg, hidden = c(8, 8), iters = 100, pool = 2^12,
#'                                 monitor = 2^11, max_steps = 3, verbose = FALSE))
#' coef(fit)
#' coef(fit, estimate = "median")
#' vcov(fit)
#' confint(fit, level = 0.9)
#' head(as.matrix(fit))
#' @name posterior-methods
NULL

# The posterior draws of a fit, or an error naming the method that needs
# them.
fit_posterior <- function(object, what, arg = "object", call = sys.call(-1L)) {
  check_fit(object, arg, call)
  pd <- posterior_draws(object)
  if (is.null(pd)) {
    abort(paste0("%s needs the posterior draws of a fit of a target run to its stationary ",
                 "law (jko_fit(target)); this fit is a %s of %s, which keeps none: draw ",
                 "from it with jko_sample()."), what,
          if (isTRUE(object$stationary)) "flow to the stationary law" else "time-accurate flow",
          object$potential$label, call = call)
  }
  pd
}

# Does the fit keep posterior draws (a fit of a target run to its law)?
has_posterior <- function(fit) !is.null(fit$draws)

# The variables that coef(), vcov() and confint() are about: for a GLM its
# coefficients, for a target with a transform its parameters, else all.
coef_variables <- function(potential, variables) UseMethod("coef_variables")

#' @export
coef_variables.default <- function(potential, variables) {
  tr <- potential$transform
  if (!is.null(tr) && all(tr$parameters %in% variables)) tr$parameters else variables
}

#' @export
coef_variables.jko_target_glm <- function(potential, variables) variables[seq_len(potential$p)]

#' @rdname posterior-methods
#' @export
coef.jko_fit <- function(object, estimate = c("mean", "median"), ...) {
  check_dots(...)
  estimate <- match.arg(estimate)
  pd <- fit_posterior(object, "coef()")
  x <- pd$x[, coef_variables(object$potential, colnames(pd$x)), drop = FALSE]
  if (estimate == "mean") colMeans(x) else apply(x, 2L, stats::median)
}

#' @rdname posterior-methods
#' @export
vcov.jko_fit <- function(object, ...) {
  check_dots(...)
  pd <- fit_posterior(object, "vcov()")
  stats::cov(pd$x[, coef_variables(object$potential, colnames(pd$x)), drop = FALSE])
}

#' @rdname posterior-methods
#' @export
confint.jko_fit <- function(object, parm, level = 0.95, ...) {
  check_dots(...)
  pd <- fit_posterior(object, "confint()")
  level <- check_level(level)
  vars <- coef_variables(object$potential, colnames(pd$x))
  if (!missing(parm)) vars <- resolve_variables(parm, vars, colnames(pd$x), "parm")
  probs <- (1 + c(-1, 1) * level) / 2
  out <- t(apply(pd$x[, vars, drop = FALSE], 2L, stats::quantile, probs, names = FALSE))
  dim(out) <- c(length(vars), 2L)
  dimnames(out) <- list(vars, paste(format(100 * probs, trim = TRUE, scientific = FALSE,
                                           digits = 3), "%"))
  out
}

#' @rdname posterior-methods
#' @export
as.matrix.jko_fit <- function(x, ...) {
  check_dots(...)
  fit_posterior(x, "as.matrix()", "x")$x
}

#' @rdname posterior-methods
#' @export
as.data.frame.jko_fit <- function(x, row.names = NULL, optional = FALSE, ...) {
  check_dots(...)
  m <- fit_posterior(x, "as.data.frame()", "x")$x
  df <- as.data.frame(m, row.names = row.names, optional = optional)
  names(df) <- colnames(m)
  df
}

#' @rdname posterior-methods
#' @exportS3Method posterior::ndraws
ndraws.jko_fit <- function(x) fit_posterior(x, "ndraws()", "x")$n

#' @rdname posterior-methods
#' @exportS3Method posterior::variables
variables.jko_fit <- function(x, ...) {
  check_dots(...)
  colnames(fit_posterior(x, "variables()", "x")$x)
}

#' @rdname posterior-methods
#' @exportS3Method posterior::nvariables
nvariables.jko_fit <- function(x, ...) {
  check_dots(...)
  ncol(fit_posterior(x, "nvariables()", "x")$x)
}

check_level <- function(level, arg = "level", call = sys.call(-1L)) {
  if (!is.numeric(level) || length(level) != 1L || is.na(level) || level <= 0 ||
      level >= 1) {
    abort("`%s` must be a single probability in (0, 1), not %s.", arg, describe(level),
          call = call)
  }
  as.double(level)
}

# Variables chosen by name (any of `all`) or by position (among `default`).
resolve_variables <- function(parm, default, all, arg, call = sys.call(-1L)) {
  if (is.character(parm) && !anyNA(parm)) {
    bad <- setdiff(parm, all)
    if (length(bad)) {
      abort("`%s` names no variable of the fit: %s (its variables: %s).", arg,
            paste0("`", bad, "`", collapse = ", "), paste(utils::head(all, 20L), collapse = ", "),
            call = call)
    }
    return(parm)
  }
  if (is.numeric(parm) && length(parm) && all(parm == round(parm)) &&
      all(parm >= 1 & parm <= length(default))) {
    return(default[parm])
  }
  abort("`%s` must be names of variables or positions in 1..%d, not %s.", arg,
        length(default), describe(parm), call = call)
}

# ---- The parameter table ---------------------------------------------------

# Per variable: mean, se_mean (sd / sqrt(ESS)), sd, quantiles `probs`
# (columns q2.5, ...), ess, and rhat where the draws have one.
posterior_table <- function(pd, probs = c(0.025, 0.5, 0.975), se_mean = FALSE) {
  x <- pd$x
  sds <- apply(x, 2L, stats::sd)
  q <- t(apply(x, 2L, stats::quantile, probs, names = FALSE))
  dim(q) <- c(ncol(x), length(probs))
  colnames(q) <- paste0("q", format(100 * probs, trim = TRUE, drop0trailing = TRUE))
  tab <- data.frame(mean = colMeans(x), row.names = colnames(x), check.names = FALSE)
  if (se_mean) tab$se_mean <- sds / sqrt(as.double(pd$ess))
  tab$sd <- sds
  tab <- cbind(tab, as.data.frame(q, optional = TRUE))
  tab$ess <- as.double(pd$ess)
  if (!all(is.na(pd$rhat))) tab$rhat <- as.double(pd$rhat)
  tab
}

# The draws in words: how many, how made, with acceptance where there is one.
draws_text <- function(pd) {
  nchain <- length(unique(pd$chain))
  how <- if (identical(pd$method, "flow")) {
    sprintf("%d independent draws of the fitted flow", pd$n)
  } else if (identical(pd$method, "hmc")) {
    sprintf("%d draws in %d chains of Hamiltonian Monte Carlo started at the flow's draws",
            pd$n, nchain)
  } else if (identical(pd$method, "imh")) {
    sprintf("%d exact draws in %d chain%s of independence Metropolis-Hastings (the flow as proposal)",
            pd$n, nchain, if (nchain == 1L) "" else "s")
  } else {
    sprintf("%d draws in %d chain%s (method \"%s\")", pd$n, nchain,
            if (nchain == 1L) "" else "s", pd$method)
  }
  if (!is.null(pd$acceptance) && !all(is.na(pd$acceptance))) {
    how <- sprintf("%s, acceptance %.0f%%", how, 100 * mean(pd$acceptance, na.rm = TRUE))
  }
  how
}

# What the fit cost: seconds, steps, Adam iterations and the evaluations
# of the potential they made (batch points per iteration, with gradients;
# monitor samples after each step, values only).
fit_cost <- function(fit) {
  hist <- fit$history[-1L, , drop = FALSE]
  iters <- sum(hist$iters, na.rm = TRUE)
  list(seconds = fit$elapsed %||% sum(fit$history$seconds), steps = nrow(hist),
       iterations = iters,
       batch = fit$settings$batch, gradient_evals = iters * fit$settings$batch,
       value_evals = (nrow(hist) + 1L) * fit$settings$monitor,
       proposals = fit$draws$diagnostics$proposals %||% 0,
       hmc_gradients = fit$draws$diagnostics$gradients %||% 0)
}

cost_text <- function(fit) {
  cc <- fit_cost(fit)
  fd <- is.function(fit$potential$value) && is.null(fit$potential$gradient) &&
    is.null(fit$potential$value_gradient)
  sprintf(paste0("Cost: %.1f s; %d JKO step%s, %s Adam iterations of batch %d ",
                 "(%s evaluations of the log-density with its gradient%s, %s at the ",
                 "monitor samples%s).%s"),
          cc$seconds, cc$steps, if (cc$steps == 1L) "" else "s", big(cc$iterations),
          cc$batch, big(cc$gradient_evals),
          if (fd) sprintf(", each by %d calls for finite differences", 2L * fit$dim + 1L)
          else "", big(cc$value_evals),
          if (cc$hmc_gradients > 0) {
            sprintf(", %s at the HMC chains' candidate starts and %s with gradients in their moves",
                    big(cc$proposals), big(cc$hmc_gradients))
          } else if (cc$proposals > 0) sprintf(", %s at the proposals of the exact draws",
                                               big(cc$proposals)) else "",
          if (is.null(ff <- fit$first_flow)) "" else
            sprintf(paste0(" The seconds include %.1f s of a first flow (%d step%s, %s ",
                           "iterations), run again from all the modes once its draws had ",
                           "found one that the search missed."), ff$seconds, ff$steps,
                    if (ff$steps == 1L) "" else "s", big(ff$iterations)))
}

big <- function(n) formatC(n, format = "d", big.mark = ",")

# A few lines on the model: from the target's own `target_info()` where it
# has one (GLMs, brms models, Stan programs), else its label.
target_info <- function(potential) UseMethod("target_info")

#' @export
target_info.default <- function(potential) c(target = potential$label)

# The table printed with `digits` significant digits, ESS as whole numbers;
# rows beyond `max_rows` left out, with a line saying how many.
print_table <- function(tab, digits, max_rows = 30L) {
  shown <- utils::head(tab, max_rows)
  out <- format_table(shown, digits)
  print(out, quote = FALSE, right = TRUE)
  if (nrow(tab) > max_rows) {
    cat(sprintf("... and %d more variables (summary(fit)$statistics has them all)\n",
                nrow(tab) - max_rows))
  }
}

format_table <- function(tab, digits) {
  out <- vapply(names(tab), function(nm) {
    v <- tab[[nm]]
    if (nm == "ess") ifelse(is.na(v), "NA", formatC(round(v), format = "d"))
    else if (nm == "rhat") ifelse(is.na(v), "NA", formatC(v, format = "f", digits = 3))
    else formatC(v, digits = digits, format = "fg")
  }, character(nrow(tab)))
  out <- matrix(out, nrow(tab), dimnames = list(rownames(tab), names(tab)))
  out
}

# print(fit) of a fit with posterior draws: the posterior, the verdict, the
# cost.
# The line of the points a target rejected during the fit (a Stan
# program's exceptions: rejections_text()), where it rejected any.
print_rejections <- function(rej) {
  if (isTRUE(rej$rejected > 0)) cat(strwrap(rejections_text(rej), exdent = 2), sep = "\n")
}

# What a fit at beta != 1 draws from, for its print and summary.
law_at_beta <- function(beta) sprintf("(draws of exp(-%g Phi), beta = %g)", beta, beta)

print_posterior <- function(x, digits) {
  pd <- posterior_draws(x)
  cat(x$potential$label, if (!isTRUE(x$beta == 1)) law_at_beta(x$beta), "\n")
  cat(sprintf("%s:\n\n", capitalise(draws_text(pd))))
  print_table(posterior_table(pd), digits)
  cat("\n")
  if (!is.null(x$verdict)) cat(strwrap(verdict_short(x$verdict)), sep = "\n")
  print_rejections(x$verdict$rejections)
  cat(strwrap(cost_text(x)), sep = "\n")
  cat("(The training: print(fit, training = TRUE) or summary(fit)$training.)\n")
  invisible(x)
}

capitalise <- function(s) paste0(toupper(substring(s, 1L, 1L)), substring(s, 2L))

# summary(fit) of a fit with posterior draws: the model, the table (with
# se_mean), the verdict, the cost and the training summary.
summarise_posterior <- function(object, probs, training) {
  pd <- posterior_draws(object)
  info <- target_info(object$potential)
  if (!isTRUE(object$beta == 1)) info <- c(info, law = law_at_beta(object$beta))
  structure(list(call = object$call, info = info,
                 draws = draws_text(pd), n = pd$n, method = pd$method,
                 statistics = posterior_table(pd, probs, se_mean = TRUE),
                 verdict = object$verdict, cost = fit_cost(object),
                 cost_text = cost_text(object), training = training),
            class = "summary.jko_posterior")
}

#' @export
print.summary.jko_posterior <- function(x, digits = 3, ...) {
  check_dots(...)
  cat("Model info:\n")
  info <- c(x$info, draws = x$draws)
  lab <- format(paste0(names(info), ":"))
  cat(paste0(" ", lab, " ", info), sep = "\n")
  cat(" call:", paste(deparse(x$call, width.cutoff = 500L), collapse = " "), "\n")
  cat("\nEstimates:\n")
  print_table(x$statistics, digits, max_rows = Inf)
  cat("\n")
  if (!is.null(x$verdict)) cat(strwrap(verdict_text(x$verdict)), sep = "\n")
  print_rejections(x$verdict$rejections)
  cat(strwrap(x$cost_text), sep = "\n")
  cat("(The training, step by step: summary(fit)$training.)\n")
  invisible(x)
}
