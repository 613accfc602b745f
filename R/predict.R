# Posterior predictions of fits of regression targets (target_glm(),
# target_logistic()), from the fit's posterior draws: means, standard
# errors, credible and prediction intervals.

#' Posterior predictive of a Bayesian regression fit
#'
#' For a fit of a [target_glm()] posterior, as [predict.glm()] but over the
#' posterior draws \eqn{\beta_s}: `type = "response"` (the default) gives
#' the posterior mean of the mean response \eqn{\mu = g^{-1}(x^\top\beta +
#' \mathrm{offset})}, `type = "link"` the posterior mean of the linear
#' predictor \eqn{x^\top\beta + \mathrm{offset}}. `newdata` is a data frame
#' with the model's variables (offsets included), turned into a model matrix
#' through the fitted model's terms, factor levels and contrasts; by default
#' the rows of the fitted model frame (padded by `na.exclude`).
#'
#' * `se.fit = TRUE`: as [predict.glm()], a list of `fit`, `se.fit` (the
#'   posterior sd of the prediction, on the scale of `type`) and
#'   `residual.scale` (the posterior mean of \eqn{\sigma} for the gaussian
#'   family, 1 otherwise).
#' * `interval = "credible"`: as [predict.lm()], a matrix of columns `fit`,
#'   `lwr` and `upr`: the equal-tailed credible interval of probability
#'   `level` of the predicted mean (or linear predictor).
#' * `interval = "prediction"` (`type = "response"` only): the interval of
#'   a new response \eqn{y}, the quantiles \eqn{(1 \mp \mathrm{level})/2} of
#'   the posterior predictive distribution \eqn{\frac1S\sum_s p(y \mid
#'   \theta_s)}, computed exactly from the draws (no simulation): a
#'   gaussian response of unit weight, a Poisson count, or a binomial
#'   proportion of the row's trials (one trial for new data). For discrete
#'   responses the interval covers at least `level`.
#' * `summary = FALSE`: the draws x rows matrix of per-draw predictions
#'   (see also [posterior_epred()][glm-methods] and
#'   [posterior_linpred()][glm-methods]).
#'
#' For a fit of a [target_logistic()] posterior, the posterior predictive
#' probability \eqn{P(y = 1 \mid x, \mathrm{data}) \approx \frac1S\sum_s
#' \sigma(x^\top w_s)} (`type = "prob"`) or its log-odds (`"link"`).
#'
#' The draws are the fit's posterior draws (a fit of a target run to its
#' stationary law keeps them); a time-accurate flow of a regression target
#' has none, and `n` new draws of its last law are made; `samples` gives
#' draws of one's own (a [jko_sample()] of the fit).
#'
#' Fits of other potentials have no predictive distribution: use
#' [jko_sample()] or [jko_density()].
#'
#' @param object A `"jko_fit"` of a [target_glm()] or a [target_logistic()].
#' @param newdata For [target_glm()] a data frame; for [target_logistic()],
#'   a matrix (or data frame) with the columns of the fitted `x`. Default
#'   the fitted data.
#' @param type For [target_glm()], `"response"` (the default) or `"link"`;
#'   for [target_logistic()], `"prob"` (the default): the predictive
#'   probability of the second class (`y = 1`), or `"link"`: its log-odds
#'   (so that `plogis(link) = prob`).
#' @param se.fit Also return the posterior sd of each prediction?
#' @param interval `"none"`, `"credible"` or `"prediction"` (see above).
#' @param level The probability of the intervals.
#' @param n For a fit with no posterior draws (a time-accurate flow), the
#'   number of draws to make (default 4096).
#' @param samples Optionally a [jko_sample()] of the fit to use instead of
#'   the fit's draws. The draws carry the identity of their fit and step;
#'   draws of another fit are refused (a `"jko_sample"` made by hand, with
#'   no identity, is taken as it is).
#' @param summary `FALSE`: the per-draw predictions (see above).
#' @param ... Unused: a name given here is an error.
#' @return A numeric vector, one value per row of `newdata`; with
#'   `interval` a matrix of columns `fit`, `lwr`, `upr`; with `se.fit` a
#'   list of `fit`, `se.fit` and `residual.scale`; with `summary = FALSE` a
#'   draws x rows matrix.
#' @examples
#' set.seed(1)
#' tg <- target_glm(am ~ wt, data = mtcars, family = binomial())
#' fit <- suppressWarnings(jko_fit(tg, hidden = c(8, 8), iters = 100, pool = 2^12,
#'                                 monitor = 2^11, max_steps = 3, verbose = FALSE))
#' nd <- data.frame(wt = c(2, 3, 4))
#' predict(fit, nd)                          # posterior mean of P(am = 1)
#' predict(fit, nd, interval = "credible")   # with a 95% credible interval
#' predict(fit, nd, type = "link", se.fit = TRUE)
#' @export
predict.jko_fit <- function(object, newdata = NULL, type = NULL, se.fit = FALSE,
                            interval = c("none", "credible", "prediction"), level = 0.95,
                            n = NULL, samples = NULL, summary = TRUE, ...) {
  check_dots(...)
  check_fit(object, "object")
  tg <- object$potential
  se.fit <- check_flag(se.fit, "se.fit")
  interval <- choose_arg(interval, c("none", "credible", "prediction"), "interval")
  level <- check_level(level)
  summary <- check_flag(summary, "summary")
  if (inherits(tg, "jko_target_logistic")) {
    if (se.fit || interval != "none" || !summary) {
      abort("`se.fit`, `interval` and `summary` are for fits of target_glm(); a target_logistic() fit predicts probabilities.")
    }
    return(predict_logistic(object, newdata,
                            choose_arg(type %||% "prob", c("prob", "link"), "type"),
                            predict_draws(object, n, samples, tg$p)))
  }
  if (!is_formula_glm(tg)) {
    abort(paste0("predict() needs a fit of a target_logistic() or target_glm() posterior; this fit's ",
                 "potential is a %s, which has no predictive distribution. ",
                 "Use jko_sample() or jko_density()."), tg$label)
  }
  type <- choose_arg(type %||% "response", c("response", "link"), "type")
  if (interval == "prediction" && type != "response") {
    abort("`interval = \"prediction\"` is an interval of new responses: it needs `type = \"response\"`.")
  }
  draws <- predict_draws(object, n, samples, object$dim)
  predict_glm(tg, newdata, type, se.fit, interval, level, summary, draws)
}

# The draws (rows) that a prediction averages over: `samples`, the fit's
# posterior draws, or n new draws of a fit that keeps none.
predict_draws <- function(object, n, samples, D, call = sys.call(-1L)) {
  if (!is.null(samples)) {
    check_samples_of(samples, object, call = call)
    if (!is.null(n)) abort("give `n` or `samples`, not both.", call = call)
    return(samples$x)
  }
  if (has_posterior(object)) {
    if (!is.null(n)) {
      abort(paste0("`n` is for fits without posterior draws: this fit keeps its %d draws, ",
                   "and predictions average over them (give `samples` to use others)."),
            posterior_draws(object)$n, call = call)
    }
    return(fit_posterior(object, "predict()", call = call)$x)
  }
  n <- check_count(n %||% 4096, "n", call = call)
  jko_sample(object, n)$x
}

predict_logistic <- function(object, newdata, type, W) {
  tg <- object$potential
  newdata <- if (is.null(newdata)) tg$x else check_points(newdata, tg$p, "newdata")
  W <- W[, seq_len(tg$p), drop = FALSE]
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

# predict() of a fit of a target_glm() from the draws (rows of `draws`):
# see predict.jko_fit().
predict_glm <- function(tg, newdata, type, se.fit, interval, level, summary, draws) {
  rows <- glm_rows(tg, newdata, call = sys.call(-1L))
  B <- draws[, seq_len(tg$p), drop = FALSE]
  gauss <- tg$family$family == "gaussian"
  sigma <- if (gauss) exp(draws[, tg$p + 1L])
  inv <- if (type == "response") tg$family$linkinv else identity
  if (!summary) return(inv(glm_eta(B, rows)))
  N <- nrow(rows$x)
  fit <- se <- lwr <- upr <- numeric(N)
  probs <- (1 + c(-1, 1) * level) / 2
  # for prediction intervals: new responses of unit weight (gaussian), of
  # the row's trials (binomial)
  w <- if (gauss || !rows$fitted) rep(1, N) else rows$w
  # chunks of rows keep the draws x rows matrices small
  size <- max(1L, floor(4e6 / nrow(B)))
  for (st in seq(1L, N, by = size)) {
    at <- st:min(N, st + size - 1L)
    part <- list(x = rows$x[at, , drop = FALSE], offset = rows$offset[at], names = NULL)
    v <- inv(glm_eta(B, part))
    fit[at] <- colMeans(v)
    if (se.fit) se[at] <- apply(v, 2L, stats::sd)
    if (interval == "credible") {
      q <- apply(v, 2L, stats::quantile, probs, names = FALSE)
      lwr[at] <- q[1L, ]
      upr[at] <- q[2L, ]
    } else if (interval == "prediction") {
      lwr[at] <- mixture_quantile(tg$family$family, v, sigma, w[at], probs[1L])
      upr[at] <- mixture_quantile(tg$family$family, v, sigma, w[at], probs[2L])
    }
  }
  pad <- function(v) {
    names(v) <- rows$names
    if (rows$fitted) stats::napredict(tg$na_action, v) else v
  }
  out <- pad(fit)
  if (interval != "none") {
    out <- cbind(fit = out, lwr = pad(lwr), upr = pad(upr))
  }
  if (!se.fit) return(out)
  list(fit = out, se.fit = pad(se), residual.scale = if (gauss) mean(sigma) else 1)
}

# The p-quantile of a new response under the posterior predictive mixture
# (1/S) sum_s p(y | mu_s) of each column of mu (draws x rows): the root of
# F(q) = p for the gaussian (sd sigma_s / sqrt(w)), the smallest count with
# F(q) >= p for Poisson and binomial (w trials; returned as a proportion).
# The quantile lies between the smallest and largest of the components'
# quantiles, where bisection starts.
mixture_quantile <- function(family, mu, sigma, w, p) {
  S <- nrow(mu)
  if (family == "gaussian") {
    sd <- outer(sigma, sqrt(w), "/")
    comp <- stats::qnorm(p, mu, sd)
    lo <- apply(comp, 2L, min)
    hi <- apply(comp, 2L, max)
    for (it in seq_len(100L)) {
      mid <- (lo + hi) / 2
      below <- colMeans(matrix(stats::pnorm(rep(mid, each = S), mu, sd), S)) < p
      lo <- ifelse(below, mid, lo)
      hi <- ifelse(below, hi, mid)
      if (all(hi - lo <= 1e-10 * pmax(1, abs(mid)))) break
    }
    return((lo + hi) / 2)
  }
  cdf <- if (family == "poisson") function(q) stats::ppois(q, mu)
         else function(q) stats::pbinom(q, rep(w, each = S), mu)
  comp <- if (family == "poisson") stats::qpois(p, mu)
          else stats::qbinom(p, rep(w, each = S), mu)
  dim(comp) <- dim(mu)
  lo <- apply(comp, 2L, min) - 1
  hi <- apply(comp, 2L, max)
  while (any(hi - lo > 1)) {
    mid <- floor((lo + hi) / 2)
    below <- colMeans(matrix(cdf(rep(mid, each = S)), S)) < p
    lo <- ifelse(below, mid, lo)
    hi <- ifelse(below, hi, mid)
  }
  if (family == "binomial") hi / w else hi
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
