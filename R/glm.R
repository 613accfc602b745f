# Bayesian generalised linear models from formulas: the target (log-density
# and gradient in C, src/glm.c), its priors, and the posterior predictive of
# a fit.

#' Bayesian generalised linear model posterior from a formula
#'
#' The posterior of a generalised linear model, written as for [glm()], as a
#' potential \eqn{\Phi(\theta) = -\log p(\theta, y)} for [jko_fit()]:
#' `jko_fit(target_glm(y ~ x, data, family))` runs the flow to the posterior
#' and returns draws named after the coefficients of the model matrix
#' (`"(Intercept)"`, `"x"`, `"groupB"`, ..., then `"log_sigma"` and
#' `"log_alpha"` where the model has them).
#'
#' The model frame is built as [glm()] builds it ([model.frame()],
#' [model.matrix()], [model.response()], [model.weights()],
#' [model.offset()]): factors and interactions through `contrasts`, rows
#' with missing values dropped by `na.action`, `subset`, offsets given in
#' the formula (`offset(log(t))`) and through `offset`, which add up.
#' The families and links:
#'
#' * `binomial()`, link `"logit"` or `"probit"`: the response is 0/1 (numbers,
#'   logical, or a factor whose first level is the failure, as in [glm()]),
#'   a proportion with the numbers of trials as `weights`, or a two-column
#'   matrix `cbind(successes, failures)`. The likelihood is
#'   \eqn{\prod_i \binom{m_i}{m_i y_i}\mu_i^{m_i y_i}(1-\mu_i)^{m_i(1-y_i)}}
#'   with \eqn{m_i} the trials (the weights).
#' * `poisson()`, link `"log"`: counts, with weights as powers of each row's
#'   likelihood (as the deviance of [glm()] weighs them).
#' * `gaussian()`, link `"identity"`: \eqn{y_i \sim N(\mu_i, \sigma^2 / w_i)};
#'   \eqn{\sigma} is a parameter, sampled as \eqn{\log\sigma} (the Jacobian
#'   of the logarithm included), with the prior `prior_sigma`.
#'
#' Rows with weight zero do not enter the likelihood (they are predicted by
#' [predict()][predict.jko_fit()] as the others). The constants of the
#' likelihood and of proper priors are kept, so the normalising constant of
#' \eqn{e^{-\Phi}} is the marginal likelihood \eqn{p(y)}, which
#' [jko_evidence()] estimates; under [prior_flat()] it is not a
#' probability (the prior is improper), and a model whose maximum likelihood
#' estimate does not exist (separated classes, aliased columns) has no
#' posterior under it: the flat prior rejects a rank-deficient model matrix.
#'
#' The log-density and its gradient are computed in C, a batch of points at
#' a time through BLAS. Far from the mode the terms are evaluated on the
#' log scale (\eqn{\log(1 + e^\eta)}, \eqn{\log\Phi(\eta)} and its
#' derivative by an asymptotic series in the far tail); where the density
#' truly underflows (a Poisson mean \eqn{e^\eta} beyond the largest double,
#' a Gaussian \eqn{\sigma} that vanishes) the potential is `Inf`, never
#' `NaN`, and a fit skips batches that reach there.
#'
#' [init_laplace()] starts its search at the maximum likelihood estimate of
#' [glm.fit()] (where it converges), with \eqn{\log\sigma} at the residual
#' scale and \eqn{\log\alpha} at its conditional mode.
#'
#' @param formula A model formula, as for [glm()].
#' @param data A data frame (or list or environment) holding the variables
#'   of `formula`; by default the environment of `formula`.
#' @param family `binomial()` (link `"logit"` or `"probit"`), `poisson()`
#'   (link `"log"`) or `gaussian()` (link `"identity"`): a family object, the
#'   family function, or its name.
#' @param prior The prior of the coefficients: [prior_normal()] (default),
#'   [prior_flat()] or [prior_hierarchical()].
#' @param prior_sigma For `gaussian()` only, the prior of \eqn{\sigma}:
#'   [prior_exponential()] (default) or [prior_flat()] (flat in
#'   \eqn{\log\sigma}, that is \eqn{p(\sigma) \propto 1/\sigma}).
#' @param weights,subset,na.action,offset,contrasts As for [glm()]:
#'   prior weights (non-negative; the numbers of trials for a binomial
#'   proportion), the rows to use, what to do with missing values, a
#'   known part of the linear predictor, and the contrasts of factors.
#' @return A target (see [targets]), of class
#'   `c("jko_target_glm", "jko_target", "jko_potential")`: its
#'   `dim`, `label`, `start` (the maximum likelihood fit where glm.fit()
#'   converges), parameter names `variables`, the model's `terms`,
#'   `family`, model matrix `x`, response `y`, `weights` and `offset`, and `batch`:
#'   `NA` (every row at every evaluation) or a number b of rows, when each
#'   evaluation of the potential draws b of the rows with positive weight
#'   without replacement (R's RNG) and scales the sum of their log-likelihood
#'   terms by the number of such rows over b, an unbiased estimate.
#' @seealso [predict.jko_fit()] for predictions, [glm()] for the maximum
#'   likelihood fit of the same model, [target_logistic()] for the
#'   logistic regression of the reference experiment from a matrix.
#' @examples
#' tg <- target_glm(mpg ~ wt + factor(cyl), data = mtcars, family = gaussian())
#' tg
#' tg$variables
#' set.seed(1)
#' # jko_fit(tg) alone runs to the posterior; smaller settings for speed here
#' fit <- jko_fit(tg, max_steps = 3, hidden = c(16, 16), pool = 2^12,
#'                monitor = 2^12, iters = 150, verbose = FALSE)
#' s <- jko_sample(fit, 2000)
#' summary(s)
#' coef(glm(mpg ~ wt + factor(cyl), gaussian, mtcars))  # the MLE, for comparison
#' predict(fit, data.frame(wt = c(2.5, 3.5), cyl = c(4, 8)), samples = s)
#'
#' # a binomial response as cbind(successes, failures), a probit link
#' target_glm(cbind(ncases, ncontrols) ~ agegp + alcgp, data = esoph,
#'            family = binomial("probit"))
#' @export
target_glm <- function(formula, data, family = stats::binomial(), prior = prior_normal(),
                       prior_sigma = prior_exponential(), weights, subset, na.action,
                       offset, contrasts = NULL) {
  call <- match.call()
  if (missing(formula) || !inherits(formula, "formula")) {
    abort("`formula` must be a model formula such as y ~ x, not %s.",
          if (missing(formula)) "missing" else describe(formula))
  }
  family <- glm_family(family, parent.frame())
  if (!inherits(prior, "jko_prior") || !prior$kind %in% c("normal", "flat", "hierarchical")) {
    abort(paste0("`prior` must be prior_normal(), prior_flat() or prior_hierarchical(), ",
                 "not %s."), describe(prior))
  }
  gauss <- family$family == "gaussian"
  if (!gauss && !missing(prior_sigma)) {
    abort("`prior_sigma` is for the gaussian family only; the %s family has no scale parameter.",
          family$family)
  }
  if (!inherits(prior_sigma, "jko_prior") || !prior_sigma$kind %in% c("exponential", "flat")) {
    abort("`prior_sigma` must be prior_exponential() or prior_flat(), not %s.",
          describe(prior_sigma))
  }
  # the model frame, as glm() makes it
  mf <- call[c(1L, match(c("formula", "data", "subset", "weights", "na.action", "offset"),
                         names(call), 0L))]
  mf$drop.unused.levels <- TRUE
  mf[[1L]] <- quote(stats::model.frame)
  env <- parent.frame()
  frame_failed <- function(e) {
    abort("`formula` and `data` (with `subset`, `weights`, `offset`, `contrasts`) give no model frame: %s",
          conditionMessage(e), call = call)
  }
  mf <- tryCatch(eval(mf, env), error = frame_failed)
  mt <- attr(mf, "terms")
  X <- tryCatch(stats::model.matrix(mt, mf, contrasts), error = frame_failed)
  N <- nrow(X)
  p <- ncol(X)
  if (N < 1L) abort("`formula` and `data` give no rows (after `subset` and `na.action`).")
  if (p < 1L) abort("`formula` must have at least one coefficient (an intercept or a term).")
  bad <- colSums(!is.finite(X)) > 0
  if (any(bad)) {
    abort("the model matrix of `formula` has non-finite values in column%s %s.",
          if (sum(bad) > 1L) "s" else "", paste0("`", colnames(X)[bad], "`", collapse = ", "))
  }
  w <- stats::model.weights(mf)
  if (is.null(w)) w <- rep(1, N)
  if (!is.numeric(w) || length(w) != N || any(!is.finite(w)) || any(w < 0)) {
    abort("`weights` must be non-negative finite numbers, one per row, not %s.", describe(w))
  }
  off <- stats::model.offset(mf)
  if (is.null(off)) off <- rep(0, N)
  if (!is.numeric(off) || length(off) != N || any(!is.finite(off))) {
    abort("`offset` (and offset() terms of `formula`) must be finite numbers, one per row; found %s.",
          if (length(off) != N) sprintf("%d values for %d rows", length(off), N)
          else sprintf("%d non-finite", sum(!is.finite(off))))
  }
  r <- glm_response(stats::model.response(mf, "any"), family$family, as.double(w))
  y <- r$y
  w <- r$w
  used <- w > 0
  if (!any(used)) abort("`weights` are all zero: no row enters the likelihood.")
  if (prior$kind == "flat") {
    q <- qr(X[used, , drop = FALSE])
    if (q$rank < p) {
      aliased <- colnames(X)[q$pivot[(q$rank + 1L):p]]
      abort(paste0("`prior` is flat but the model matrix has rank %d < %d columns (%s aliased): ",
                   "the posterior is improper. Drop the column%s or use a proper prior."),
            q$rank, p, paste0("`", aliased, "`", collapse = ", "),
            if (length(aliased) > 1L) "s" else "")
    }
  }
  pr <- glm_prior_terms(prior, X, y, w, mt, gauss)
  sig <- glm_sigma_prior(prior_sigma, y, w, gauss)
  nm <- c(colnames(X), if (gauss) "log_sigma", if (prior$kind == "hierarchical") "log_alpha")
  label <- sprintf("Bayesian GLM posterior (%s, %s link), %d observations, %d coefficient%s, %s%s",
                   family$family, family$link, sum(used), p, if (p == 1L) "" else "s",
                   prior$label, if (gauss) paste0("; sigma: ", sig$label) else "")
  pot <- glm_target(X, y, w, off, family, pr, sig, label, variables = nm,
    prior = prior, prior_sigma = if (gauss) prior_sigma,
    terms = mt, xlevels = stats::.getXlevels(mt, mf), contrasts = attr(X, "contrasts"),
    offset_expr = call$offset, na_action = attr(mf, "na.action"),
    row_names = rownames(mf), colnames = colnames(X), call = call)
  pot$family <- family  # not through glm_target(): `family` is its argument
  as_target(pot, start = glm_start(pot))
}

# A glm target from a model matrix X (N x p), the response y, prior weights
# w and offsets off (checked; NULL for unit weights and no offsets), the
# family, the prior's terms pr (glm_prior_terms()) and sigma's sig
# (glm_sigma_prior()): the potential that src/glm.c evaluates, with the
# constant of the likelihood. `batch`: NA (every row at every evaluation) or
# the rows of a minibatch; `...` more elements of the object; `class` its
# classes before "jko_potential".
glm_target <- function(X, y, w, off, family, pr, sig, label, ..., batch = NA_integer_,
                       class = "jko_target_glm") {
  N <- nrow(X)
  p <- ncol(X)
  w1 <- if (is.null(w)) rep(1, N) else w
  used <- w1 > 0
  const <- switch(family$family,
    binomial = {
      k <- w1 * y
      sum((lgamma(w1 + 1) - lgamma(k + 1) - lgamma(w1 - k + 1))[used])
    },
    poisson = -sum((w1 * lgamma(y + 1))[used]),
    gaussian = sum(0.5 * log(w1[used]) - 0.5 * log(2 * pi)))
  D <- p + (family$family == "gaussian") + (pr$code == 2L)
  codes <- c(binomial = 0L, poisson = 1L, gaussian = 2L)
  links <- c(logit = 0L, probit = 1L, log = 2L, identity = 3L)
  pot <- builtin_potential(
    "glm", NULL, D, label,
    x = unname(matrix(as.double(X), N, p)), y = as.double(y),
    weights = if (!is.null(w)) as.double(w), offset = if (!is.null(off)) as.double(off),
    family_code = codes[[family$family]],
    link_code = links[[family$link]], prior_code = pr$code, prior_loc = pr$loc,
    prior_prec = pr$prec, prior_const = pr$const, shape = pr$shape, rate = pr$rate,
    sigma_code = sig$code, sigma_rate = sig$rate, const = const, batch = batch,
    ..., class = class)
  pot$p <- p  # not through builtin_potential(): `p` would match its `par`
  pot
}

# The prior's part of a glm target (what C_glm_log_prior reads), without
# its data.
glm_prior_part <- function(target) {
  target[c("p", "family_code", "prior_code", "prior_loc", "prior_prec", "prior_const",
           "shape", "rate", "sigma_code", "sigma_rate")]
}

# The potential without minibatches.
#' @export
full_data.jko_target_glm <- function(potential) {
  potential$batch <- NA_integer_
  potential
}

# A family object from what glm() accepts (object, function or name),
# checked against the families and links that src/glm.c knows.
glm_family <- function(family, env) {
  call <- sys.call(-1L)
  if (is.character(family) && length(family) == 1L) {
    f <- get0(family, envir = env, mode = "function")
    if (is.null(f)) abort("`family` = \"%s\" is not a family function.", family, call = call)
    family <- f
  }
  if (is.function(family)) family <- family()
  if (!inherits(family, "family")) {
    abort("`family` must be binomial(), poisson() or gaussian() (a family object), not %s.",
          describe(family), call = call)
  }
  links <- list(binomial = c("logit", "probit"), poisson = "log", gaussian = "identity")
  if (!family$family %in% names(links)) {
    abort("`family` must be binomial, poisson or gaussian, not %s.", family$family, call = call)
  }
  if (!family$link %in% links[[family$family]]) {
    abort("`family`'s link must be %s for the %s family, not \"%s\".",
          paste0("\"", links[[family$family]], "\"", collapse = " or "), family$family,
          family$link, call = call)
  }
  family
}

# The response as glm() reads it: y (a proportion for the binomial) and the
# weights (times the trials of a two-column binomial response).
glm_response <- function(y, family, w) {
  call <- sys.call(-1L)
  fail <- function(fmt, ...) abort(paste("the response of `formula`", fmt), ..., call = call)
  if (is.null(y)) fail("is missing: `formula` must have a left-hand side.")
  if (is.matrix(y) && family != "binomial") {
    fail("must be a vector for the %s family, not a %d-column matrix.", family, ncol(y))
  }
  if (family == "binomial") {
    if (is.factor(y)) {
      # as glm(): the first level is the failure, all others success
      y <- as.double(y != levels(y)[1L])
    } else if (is.logical(y)) {
      y <- as.double(y)
    } else if (is.matrix(y)) {
      if (ncol(y) != 2L || !is.numeric(y)) {
        fail("must be a two-column matrix cbind(successes, failures), not %d columns.", ncol(y))
      }
      if (any(!is.finite(y))) fail("has %d non-finite counts.", sum(!is.finite(y)))
      if (any(y < 0)) fail("has negative counts: cbind(successes, failures) must be >= 0.")
      m <- y[, 1L] + y[, 2L]
      y <- ifelse(m > 0, y[, 1L] / m, 0)
      w <- w * m
    } else if (!is.numeric(y)) {
      fail(paste0("must be 0/1, TRUE/FALSE, a factor, a proportion with `weights`, or ",
                  "cbind(successes, failures) for the binomial family, not %s."), describe(y))
    }
    if (any(!is.finite(y))) fail("has %d non-finite values.", sum(!is.finite(y)))
    if (any(y < 0 | y > 1)) {
      fail(paste0("must lie in [0, 1] for the binomial family (0/1, or proportions with ",
                  "the trials as `weights`); it ranges over [%g, %g]."), min(y), max(y))
    }
  } else {
    if (!is.numeric(y) || is.factor(y)) {
      fail("must be numeric for the %s family, not %s.", family, describe(y))
    }
    y <- as.double(y)
    if (any(!is.finite(y))) {
      fail("has %d non-finite values (NA rows are removed by `na.action`; Inf is not).",
           sum(!is.finite(y)))
    }
    if (family == "poisson" && any(y < 0 | y != round(y))) {
      fail("must be counts (whole numbers >= 0) for the poisson family.")
    }
  }
  list(y = as.double(y), w = w)
}

# The normal prior of the coefficients as mean, precision and constant.
glm_prior_terms <- function(prior, X, y, w, mt, gauss) {
  p <- ncol(X)
  none <- list(code = 0L, loc = numeric(0), prec = numeric(0), const = 0, shape = 1, rate = 1)
  if (prior$kind == "flat") return(none)
  if (prior$kind == "hierarchical") {
    return(utils::modifyList(none, list(code = 2L, shape = prior$shape, rate = prior$rate)))
  }
  used <- w > 0
  Xu <- X[used, , drop = FALSE]
  icpt <- attr(mt, "intercept") == 1L && colnames(X)[1L] == "(Intercept)"
  sy <- 1
  if (prior$autoscale && gauss) {
    sy <- stats::sd(y[used])
    if (!is.finite(sy) || sy <= 0) sy <- 1
  }
  sx <- apply(Xu, 2L, stats::sd)
  sx[!is.finite(sx) | sx <= 0] <- 1
  s <- if (prior$autoscale) prior$scale * sy / sx else rep(prior$scale, p)
  loc <- numeric(p)
  # T maps beta to the independent quantities of the prior: with an
  # intercept, its first row is the intercept at the means of the other
  # columns (the linear predictor at the average row, less the offset)
  T <- diag(p)
  if (icpt) {
    s[1L] <- prior$intercept_scale * sy
    if (p > 1L) T[1L, -1L] <- colMeans(Xu[, -1L, drop = FALSE])
    if (prior$autoscale && gauss) loc[1L] <- sum(w[used] * y[used]) / sum(w[used])
  }
  # z = T beta ~ N(loc, diag(s^2)), det T = 1
  prec <- crossprod(T / s)
  list(code = 1L, loc = as.double(backsolve(T, loc)), prec = as.double(prec),
       const = -sum(log(s)) - 0.5 * p * log(2 * pi), shape = 1, rate = 1,
       scale = s, T = T, z_loc = loc)
}

glm_sigma_prior <- function(prior_sigma, y, w, gauss) {
  if (!gauss) return(list(code = 0L, rate = 1, label = ""))
  if (prior_sigma$kind == "flat") return(list(code = 0L, rate = 1, label = "flat in log sigma"))
  used <- w > 0
  sy <- 1
  if (prior_sigma$autoscale) {
    sy <- stats::sd(y[used])
    if (!is.finite(sy) || sy <= 0) sy <- 1
  }
  rate <- prior_sigma$rate / sy
  list(code = 1L, rate = rate, label = sprintf("Exponential(rate %.3g)", rate))
}

# Where init_laplace() starts: the maximum likelihood estimate when glm.fit()
# finds one, log sigma at the residual scale, log alpha at its conditional
# mode given the coefficients.
glm_start <- function(pot) {
  fam <- pot$family
  b <- tryCatch(suppressWarnings(stats::glm.fit(pot$x, pot$y, weights = pot$weights,
                                                offset = pot$offset, family = fam)),
                error = function(e) NULL)
  beta <- if (!is.null(b) && isTRUE(b$converged)) unname(b$coefficients) else rep(0, pot$p)
  beta[!is.finite(beta)] <- 0
  out <- beta
  if (fam$family == "gaussian") {
    used <- pot$weights > 0
    r <- (pot$y - drop(pot$x %*% beta) - pot$offset)[used]
    s <- sqrt(sum(pot$weights[used] * r^2) / sum(used))
    out <- c(out, if (is.finite(s) && s > 0) log(s) else 0)
  }
  if (pot$prior_code == 2L) {
    out <- c(out, log((pot$p / 2 + pot$shape) / (sum(beta^2) / 2 + pot$rate)))
  }
  out
}

#' Priors for [target_glm()]
#'
#' Priors that say what they are:
#'
#' * `prior_normal(scale, intercept_scale, autoscale)`: independent normal
#'   priors with mean zero. With `autoscale = TRUE` (the default) they are
#'   scaled to the data, as weakly informative defaults are: the
#'   coefficient of column \eqn{x_j} of the model matrix has sd
#'   `scale` \eqn{/ \mathrm{sd}(x_j)} (times \eqn{\mathrm{sd}(y)} for the
#'   gaussian family), so that a change of one sd in a predictor moves the
#'   linear predictor by about `scale`; with an intercept, the prior of the
#'   intercept is on the linear predictor at the means of the columns (the
#'   intercept of the centred predictors): sd `intercept_scale` (times
#'   \eqn{\mathrm{sd}(y)}, and mean the mean of \eqn{y}, for the gaussian
#'   family). With `autoscale = FALSE` every coefficient has sd `scale`
#'   and the intercept (still at the means of the columns) sd
#'   `intercept_scale`.
#' * `prior_flat()`: the improper flat prior; its posterior mode is the
#'   maximum likelihood estimate of [glm()]. As `prior_sigma` of a
#'   gaussian model, flat in \eqn{\log\sigma} (\eqn{p(\sigma) \propto
#'   1/\sigma}).
#' * `prior_hierarchical(shape, rate)`: the prior of the Bayesian logistic
#'   regression of the reference experiment (see [target_logistic()]):
#'   \eqn{\beta \mid \alpha \sim N(0, \alpha^{-1} I)} for all coefficients
#'   (intercept included), \eqn{\alpha \sim \mathrm{Gamma}(\mathrm{shape},
#'   \mathrm{rate})}, with \eqn{\log\alpha} an extra parameter named
#'   `"log_alpha"` (its Jacobian included).
#' * `prior_exponential(rate, autoscale)`: for \eqn{\sigma} of a gaussian
#'   model, \eqn{\sigma \sim \mathrm{Exponential}(}`rate`\eqn{)}, the rate
#'   divided by \eqn{\mathrm{sd}(y)} with `autoscale` (prior mean
#'   \eqn{\mathrm{sd}(y)}); \eqn{\sigma} is sampled as `"log_sigma"`.
#'
#' @param scale Prior sd of the coefficients (before autoscaling).
#' @param intercept_scale Prior sd of the intercept at the means of the
#'   columns (before autoscaling).
#' @param autoscale Scale the prior to the data (see above)?
#' @param shape,rate Shape and rate of the Gamma prior of \eqn{\alpha}, or
#'   rate of the exponential prior of \eqn{\sigma}.
#' @return An object of class `"jko_prior"`.
#' @examples
#' prior_normal(scale = 1)
#' prior_hierarchical()
#' tg <- target_glm(mpg ~ wt, data = mtcars, family = gaussian(),
#'                  prior = prior_flat(), prior_sigma = prior_exponential(rate = 2))
#' tg
#' @name glm_priors
NULL

#' @rdname glm_priors
#' @export
prior_normal <- function(scale = 2.5, intercept_scale = 10, autoscale = TRUE) {
  scale <- check_positive(scale, "scale")
  intercept_scale <- check_positive(intercept_scale, "intercept_scale")
  autoscale <- check_flag(autoscale, "autoscale")
  structure(list(kind = "normal", scale = scale, intercept_scale = intercept_scale,
                 autoscale = autoscale,
                 label = sprintf("normal prior (sd %g, intercept %g%s)", scale, intercept_scale,
                                 if (autoscale) ", autoscaled" else "")),
            class = "jko_prior")
}

#' @rdname glm_priors
#' @export
prior_flat <- function() {
  structure(list(kind = "flat", label = "flat prior"), class = "jko_prior")
}

#' @rdname glm_priors
#' @export
prior_hierarchical <- function(shape = 1, rate = 100) {
  shape <- check_positive(shape, "shape")
  rate <- check_positive(rate, "rate")
  structure(list(kind = "hierarchical", shape = shape, rate = rate,
                 label = sprintf("prior N(0, I / alpha), alpha ~ Gamma(%g, rate %g)", shape, rate)),
            class = "jko_prior")
}

#' @rdname glm_priors
#' @export
prior_exponential <- function(rate = 1, autoscale = TRUE) {
  rate <- check_positive(rate, "rate")
  autoscale <- check_flag(autoscale, "autoscale")
  structure(list(kind = "exponential", rate = rate, autoscale = autoscale,
                 label = sprintf("sigma ~ Exponential(rate %g%s)", rate,
                                 if (autoscale) " / sd(y)" else "")),
            class = "jko_prior")
}

#' @export
print.jko_prior <- function(x, ...) {
  check_dots(...)
  cat("Prior:", x$label, "\n")
  invisible(x)
}
