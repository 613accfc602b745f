# Posterior predictions of fits of regression targets (target_glm(),
# target_logistic()), from draws of the fit.

#' Posterior predictive of a Bayesian regression fit
#'
#' For a fit of a [target_logistic()] posterior, the posterior predictive
#' probability \eqn{P(y = 1 \mid x, \mathrm{data}) \approx \frac1n\sum_s
#' \sigma(x^\top w_s)} averaged over `n` samples \eqn{w_s} of the fitted flow.
#'
#' For a fit of a [target_glm()] posterior, as [predict.glm()] but averaged
#' over the posterior: `type = "response"` (the default) gives the
#' posterior mean of the mean response \eqn{\mu = g^{-1}(x^\top\beta +
#' \mathrm{offset})}, `type = "link"` the posterior mean of the linear
#' predictor \eqn{x^\top\beta + \mathrm{offset}}. `newdata` is a data frame
#' with the model's variables (offsets included), turned into a model matrix
#' through the fitted model's terms, factor levels and contrasts; by default
#' the rows of the fitted model frame (padded by `na.exclude`). With
#' `summary = FALSE` (passed in `...`) the result is the matrix of
#' per-draw predictions, one row per posterior draw, one column per row of
#' `newdata`.
#'
#' Fits of other potentials have no predictive distribution: use
#' [jko_sample()] or [jko_density()].
#'
#' @param object A `"jko_fit"` of a [target_logistic()] or a [target_glm()].
#' @param newdata For [target_logistic()], a matrix (or data frame) with the
#'   columns of the fitted `x`; for [target_glm()] a data frame. Default the
#'   fitted data.
#' @param type For [target_logistic()], `"prob"`: the predictive probability
#'   of the second class (`y = 1`); `"link"`: its log-odds (so that
#'   `plogis(link) = prob`). For [target_glm()], `"response"` or `"link"`.
#' @param n Number of posterior samples.
#' @param samples Optionally a [jko_sample()] of the fit to use instead of
#'   drawing `n` new ones (e.g. `jko_sample(fit, n, resample = TRUE)`).
#'   The draws carry the identity of their fit and step; draws of another
#'   fit are refused (a `"jko_sample"` made by hand, with no identity, is
#'   taken as it is).
#' @param ... Passed to [jko_sample()] (`step`, `resample`); for a
#'   [target_glm()] also `summary` (see above).
#' @return A numeric vector, one value per row of `newdata` (for a
#'   [target_glm()] with `summary = FALSE`, a draws x rows matrix).
#' @examples
#' set.seed(1)
#' x <- cbind(1, scale(MASS::Pima.tr[, c("glu", "bmi")]))
#' tg <- target_logistic(x, MASS::Pima.tr$type)
#' fit <- jko_fit(tg, init_laplace(tg), h = 0.1, steps = 2,
#'                hidden = c(8, 8), batch = 128, iters = 60)
#' p <- predict(fit, n = 1000)
#' mean((p > 0.5) == (MASS::Pima.tr$type == "Yes"))
#' @export
predict.jko_fit <- function(object, newdata = NULL, type = c("prob", "link"),
                            n = 4096, samples = NULL, ...) {
  check_fit(object, "object")
  tg <- object$potential
  if (inherits(tg, "jko_target_glm")) {
    return(predict_glm(object, newdata, if (missing(type)) "response" else type, n, samples,
                       ...))
  }
  if (!inherits(tg, "jko_target_logistic")) {
    abort(paste0("predict() needs a fit of a target_logistic() or target_glm() posterior; this fit's ",
                 "potential is a %s, which has no predictive distribution. ",
                 "Use jko_sample() or jko_density()."), tg$label)
  }
  type <- choose_arg(type, c("prob", "link"), "type")
  newdata <- if (is.null(newdata)) tg$x else check_points(newdata, tg$p, "newdata")
  if (is.null(samples)) {
    n <- check_count(n, "n")
    samples <- jko_sample(object, n, ...)
  } else {
    check_samples_of(samples, object)
  }
  W <- samples$x[, seq_len(tg$p), drop = FALSE]
  n <- nrow(W)
  out <- numeric(nrow(newdata))
  # chunks of rows keep the rows x n matrix of linear predictors small
  size <- max(1L, floor(4e6 / n))
  for (st in seq(1L, nrow(newdata), by = size)) {
    rows <- st:min(nrow(newdata), st + size - 1L)
    eta <- newdata[rows, , drop = FALSE] %*% t(W)
    # log of the mean of sigma(eta) and of 1 - sigma(eta), stably
    l1 <- row_logmeanexp(stats::plogis(eta, log.p = TRUE))
    l0 <- row_logmeanexp(stats::plogis(-eta, log.p = TRUE))
    out[rows] <- if (type == "prob") exp(l1) else l1 - l0
  }
  names(out) <- rownames(newdata)
  out
}

row_logmeanexp <- function(a) {
  m <- apply(a, 1L, max)
  m + log(rowMeans(exp(a - m)))
}

# predict() of a fit of a target_glm(): see predict.jko_fit().
predict_glm <- function(object, newdata, type, n, samples, summary = TRUE, ...) {
  tg <- object$potential
  type <- choose_arg(type, c("response", "link"), "type")
  summary <- check_flag(summary, "summary")
  if (is.null(newdata)) {
    X <- tg$x
    off <- tg$offset
    rn <- tg$row_names
  } else {
    nd <- glm_newdata(tg, newdata)
    X <- nd$x
    off <- nd$offset
    rn <- rownames(X)
  }
  if (is.null(samples)) {
    n <- check_count(n, "n")
    samples <- jko_sample(object, n, ...)
  } else {
    check_samples_of(samples, object)
  }
  B <- samples$x[, seq_len(tg$p), drop = FALSE]
  inv <- if (type == "response") tg$family$linkinv else identity
  if (!summary) {
    out <- inv(tcrossprod(B, X) + rep(off, each = nrow(B)))
    dimnames(out) <- list(NULL, rn)
    return(out)
  }
  out <- numeric(nrow(X))
  # chunks of rows keep the draws x rows matrix small
  size <- max(1L, floor(4e6 / nrow(B)))
  for (st in seq(1L, nrow(X), by = size)) {
    rows <- st:min(nrow(X), st + size - 1L)
    eta <- tcrossprod(B, X[rows, , drop = FALSE]) + rep(off[rows], each = nrow(B))
    out[rows] <- colMeans(inv(eta))
  }
  names(out) <- rn
  if (is.null(newdata)) out <- stats::napredict(tg$na_action, out)
  out
}

# The model matrix and offset of new data, through the terms, factor levels
# and contrasts of the fitted model frame (as predict.lm() makes them).
glm_newdata <- function(tg, newdata) {
  if (!is.data.frame(newdata) && !is.list(newdata) && !is.environment(newdata)) {
    abort("`newdata` must be a data frame with the variables of the model, not %s.",
          describe(newdata), call = sys.call(-2L))
  }
  tt <- stats::delete.response(tg$terms)
  m <- stats::model.frame(tt, newdata, na.action = stats::na.pass, xlev = tg$xlevels)
  if (!is.null(cl <- attr(tt, "dataClasses"))) stats::.checkMFClasses(cl, m)
  X <- stats::model.matrix(tt, m, contrasts.arg = tg$contrasts)
  off <- stats::model.offset(m)
  if (is.null(off)) off <- rep(0, nrow(X))
  if (!is.null(tg$offset_expr)) {
    off <- off + eval(tg$offset_expr, newdata, environment(tg$terms))
  }
  list(x = X, offset = as.double(off))
}

# Draws given to predict(): a jko_sample() of this very fit (at any of its
# steps), told by the identity its draws carry (fit_id()); draws of another
# fit of the same dimension are refused. Draws without an identity (made by
# hand at chosen points, or by an older jkoflow) are taken as they are.
check_samples_of <- function(samples, fit, call = sys.call(-1L)) {
  if (!inherits(samples, "jko_sample")) {
    abort("`samples` must be a jko_sample() of this fit, not %s.", describe(samples),
          call = call)
  }
  k <- samples$step
  ok_step <- is.numeric(k) && length(k) == 1L && !is.na(k) && k >= 0 && k <= length(fit$theta)
  why <- if (!is.null(samples$fit_id) &&
              (!ok_step || !identical(samples$fit_id, fit_id(fit, as.integer(k)))))
           "they are draws of another fit"
         else if (!is.matrix(samples$x) || !is.numeric(samples$x) || ncol(samples$x) != fit$dim)
           sprintf("their `x` is not a numeric matrix of %d columns", fit$dim)
  if (!is.null(why)) {
    abort("`samples` must be draws of this fit (from jko_sample(fit)): %s.", why, call = call)
  }
  invisible(samples)
}
