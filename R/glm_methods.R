# The methods of a regression model for fits of target_glm(): its formula,
# family and observations; the posterior's linear predictor, mean and
# predictive draws (the rstantools generics that rstanarm and brms use);
# pointwise log-likelihoods and loo; fitted values, residuals, simulated
# responses; the prior. All from the fit's posterior draws
# (posterior_draws(), through fit_posterior()).

#' Regression methods for fits of GLM targets
#'
#' A fit of a [target_glm()] posterior answers the methods a [glm()] or an
#' rstanarm fit answers, from its posterior draws
#' \eqn{\theta_s = (\beta_s, \sigma_s)}, \eqn{s = 1, \dots, S}:
#'
#' * `formula()`, `family()`, `nobs()` (the observations with non-zero
#'   weight, as for [glm()]);
#' * `posterior_linpred()`: the S x N matrix of linear predictors
#'   \eqn{\eta_{si} = x_i^\top\beta_s + \mathrm{offset}_i} (with
#'   `transform = TRUE`, the means \eqn{\mu_{si} = g^{-1}(\eta_{si})});
#'   `posterior_epred()`: the means \eqn{\mu_{si}};
#'   `posterior_predict()`: a response drawn for each draw and row
#'   (binomial: the number of successes out of the trials, 0/1 for one
#'   trial; poisson: counts; gaussian: \eqn{N(\mu_{si}, \sigma_s^2/w_i)});
#' * `log_lik()`: the S x N matrix of pointwise log-likelihoods
#'   \eqn{\log p(y_i \mid \theta_s)}, those whose sum is the model's
#'   log-likelihood (rows of weight zero, which do not enter it, left out);
#'   `loo()` (the loo package): PSIS leave-one-out cross-validation from it,
#'   with the relative efficiency `r_eff` of the draws (1 for independent
#'   draws of the flow, from the chains otherwise);
#' * `fitted()`: the posterior mean of \eqn{\mu_i} at the fitted rows;
#'   `residuals()`: as [residuals.glm()] at those means (`"deviance"`,
#'   `"pearson"`, `"working"` or `"response"`);
#' * `simulate()`: as `simulate()` of a `glm()` fit, `nsim` response vectors, each from
#'   its own posterior draw (a draw chosen at random for each), on the scale
#'   of [glm()]'s response (the proportion of successes for a binomial
#'   with trials);
#' * `prior_summary()`: the prior of the coefficients (and of
#'   \eqn{\sigma}) with the scales the data gave them.
#'
#' `newdata` (a data frame with the model's variables) replaces the fitted
#' rows where a method takes it; `log_lik()` then needs the response in
#' it too, and new rows have one trial and unit weight. `ndraws` takes that
#' many draws, evenly spaced, of the fit's draws (default all).
#'
#' The rstantools generics are those that rstanarm and brms use: call them
#' as `rstantools::posterior_predict(fit)`, or after `library(rstanarm)`
#' or `library(brms)`; `loo()` is the loo package's.
#'
#' @param object,x A `"jko_fit"` of a [target_glm()] (for `log_lik()`,
#'   `loo()`, `nobs()`, `formula()`, `family()` and `prior_summary()` also of a
#'   [target_brms()] model; `log_lik()` and `loo()` of a [target_stan()]
#'   program with a generated quantity `log_lik`).
#' @param newdata `NULL` (the fitted rows) or a data frame.
#' @param transform For `posterior_linpred()`: the means rather than the
#'   linear predictors?
#' @param ndraws `NULL` (all draws) or how many of them to use.
#' @param seed For `posterior_predict()` and `simulate()`: `NULL` or a seed
#'   for [set.seed()], R's generator restored afterwards.
#' @param type The type of residuals.
#' @param r_eff,cores For `loo()`: the relative efficiencies of the draws
#'   (default: from the draws, see above) and the cores of [loo::loo()].
#' @param ... Unused: a name given here is an error.
#' @return `posterior_linpred()`, `posterior_epred()`, `posterior_predict()`
#'   and `log_lik()`: a draws x rows matrix. `loo()`: a `"loo"` object.
#'   `fitted()`, `residuals()`: a vector per fitted row. `simulate()`: a
#'   data frame with a column per simulation, with the attribute `"seed"`.
#'   `prior_summary()`: an object of class `"jko_prior_summary"`.
#' @seealso [predict.jko_fit()], [posterior-methods], [target_glm()].
#' @examplesIf requireNamespace("loo", quietly = TRUE) && requireNamespace("rstantools", quietly = TRUE)
#' set.seed(1)
#' tg <- target_glm(am ~ wt, data = mtcars, family = binomial())
#' fit <- suppressWarnings(jko_fit(tg, hidden = c(8, 8), iters = 100, pool = 2^12,
#'                                 monitor = 2^11, max_steps = 3, verbose = FALSE))
#' nobs(fit)
#' head(fitted(fit))
#' head(residuals(fit, "pearson"))
#' dim(rstantools::posterior_predict(fit))   # (rstantools' generics, as rstanarm's)
#' dim(rstantools::log_lik(fit))
#' loo::loo(fit)
#' head(simulate(fit, 3, seed = 1))
#' rstantools::prior_summary(fit)
#' @name glm-methods
NULL

is_formula_glm <- function(tg) inherits(tg, "jko_target_glm") && !is.null(tg$terms)

# The target of a fit of target_glm(), or an error naming the method.
fit_glm <- function(object, what, call = sys.call(-1L)) {
  check_fit(object, "object", call)
  tg <- object$potential
  if (!is_formula_glm(tg)) {
    abort("%s is for fits of target_glm() models; this fit's target is %s.", what,
          tg$label, call = call)
  }
  tg
}

# The model matrix and offset of new data, through the terms, factor levels
# and contrasts of the fitted model frame (as predict.lm() makes them).
glm_newdata <- function(tg, newdata, call = sys.call(-1L)) {
  if (!is.data.frame(newdata) && !is.list(newdata) && !is.environment(newdata)) {
    abort("`newdata` must be a data frame with the variables of the model, not %s.",
          describe(newdata), call = call)
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

glm_weights <- function(tg) tg$weights %||% rep(1, nrow(tg$x))
glm_offset <- function(tg) tg$offset %||% rep(0, nrow(tg$x))

# The rows of a GLM: the fitted ones (newdata NULL) or new data, as the
# model matrix x, offset, names and, with `response`, the response y (a
# proportion for the binomial) and weights w (the trials); new rows have
# unit weight, one trial unless the response says how many.
glm_rows <- function(tg, newdata, response = FALSE, call = sys.call(-1L)) {
  if (is.null(newdata)) {
    return(list(x = tg$x, offset = glm_offset(tg), y = tg$y, w = glm_weights(tg),
                names = tg$row_names, fitted = TRUE))
  }
  nd <- glm_newdata(tg, newdata, call)
  out <- list(x = nd$x, offset = nd$offset, y = NULL, w = rep(1, nrow(nd$x)),
              names = rownames(nd$x), fitted = FALSE)
  if (response) {
    mf <- tryCatch(stats::model.frame(tg$terms, newdata, na.action = stats::na.pass,
                                      xlev = tg$xlevels),
                   error = function(e) {
                     abort("`newdata` must hold the response of the model too: %s",
                           conditionMessage(e), call = call)
                   })
    r <- glm_response(stats::model.response(mf, "any"), tg$family$family, out$w)
    out$y <- r$y
    out$w <- r$w
  }
  out
}

# The draws of a GLM's parameters: B (S x p), sigma (S, gaussian; else
# NULL), the chain of each, and `ndraws` of them evenly spaced.
glm_draws <- function(object, tg, what, ndraws = NULL, call = sys.call(-1L)) {
  pd <- fit_posterior(object, what, call = call)
  idx <- draw_subset(pd$n, ndraws, call)
  sigma <- if (tg$family$family == "gaussian") exp(pd$x[idx, tg$p + 1L])
  list(B = pd$x[idx, seq_len(tg$p), drop = FALSE], sigma = sigma, chain = pd$chain[idx],
       method = pd$method, n = length(idx))
}

draw_subset <- function(n, ndraws, call = sys.call(-1L)) {
  if (is.null(ndraws)) return(seq_len(n))
  ndraws <- check_count(ndraws, "ndraws", call = call, max = n)
  unique(round(seq(1, n, length.out = ndraws)))
}

# eta = B x_i + offset_i for each draw (rows) and data row (columns).
glm_eta <- function(B, rows) {
  eta <- tcrossprod(B, rows$x) + rep(rows$offset, each = nrow(B))
  dimnames(eta) <- list(NULL, rows$names)
  eta
}

#' @rdname glm-methods
#' @exportS3Method rstantools::posterior_linpred
posterior_linpred.jko_fit <- function(object, transform = FALSE, newdata = NULL,
                                      ndraws = NULL, ...) {
  check_dots(...)
  transform <- check_flag(transform, "transform")
  if (inherits(object$potential, "jko_target_brms")) {
    return(brms_method("posterior_linpred", object, newdata, ndraws, transform = transform))
  }
  tg <- fit_glm(object, "posterior_linpred()")
  d <- glm_draws(object, tg, "posterior_linpred()", ndraws)
  eta <- glm_eta(d$B, glm_rows(tg, newdata))
  if (transform) eta[] <- tg$family$linkinv(eta)
  eta
}

#' @rdname glm-methods
#' @exportS3Method rstantools::posterior_epred
posterior_epred.jko_fit <- function(object, newdata = NULL, ndraws = NULL, ...) {
  check_dots(...)
  if (inherits(object$potential, "jko_target_brms")) {
    return(brms_method("posterior_epred", object, newdata, ndraws))
  }
  tg <- fit_glm(object, "posterior_epred()")
  d <- glm_draws(object, tg, "posterior_epred()", ndraws)
  eta <- glm_eta(d$B, glm_rows(tg, newdata))
  eta[] <- tg$family$linkinv(eta)
  eta
}

#' @rdname glm-methods
#' @exportS3Method rstantools::posterior_predict
posterior_predict.jko_fit <- function(object, newdata = NULL, ndraws = NULL, seed = NULL,
                                      ...) {
  check_dots(...)
  if (inherits(object$potential, "jko_target_brms")) {
    y <- with_seed(seed, brms_method("posterior_predict", object, newdata, ndraws))
    attr(y, "seed") <- NULL
    return(y)
  }
  tg <- fit_glm(object, "posterior_predict()")
  d <- glm_draws(object, tg, "posterior_predict()", ndraws)
  rows <- glm_rows(tg, newdata)
  mu <- glm_eta(d$B, rows)
  mu[] <- tg$family$linkinv(mu)
  y <- with_seed(seed, glm_draw_response(tg$family$family, mu, d$sigma, rows$w, counts = TRUE))
  attr(y, "seed") <- NULL
  y
}

# Responses for means mu (draws x rows), per-draw sigma (gaussian) and
# weights w (the trials of a binomial): counts of successes (`counts`) or
# proportions for the binomial, as glm()'s response.
glm_draw_response <- function(family, mu, sigma, w, counts = FALSE,
                              call = sys.call(-1L)) {
  S <- nrow(mu)
  y <- mu
  if (family == "binomial") {
    if (any(w != round(w))) {
      abort("responses of a binomial model need whole numbers of trials; the weights are not.",
            call = call)
    }
    m <- rep(w, each = S)
    y[] <- stats::rbinom(length(mu), m, mu)
    if (!counts) y[] <- ifelse(m > 0, y / m, 0)
  } else if (family == "poisson") {
    y[] <- stats::rpois(length(mu), mu)
  } else {
    y[] <- stats::rnorm(length(mu), mu, outer(sigma, sqrt(w), "/"))
  }
  y
}

#' @rdname glm-methods
#' @exportS3Method rstantools::log_lik
log_lik.jko_fit <- function(object, newdata = NULL, ...) {
  check_dots(...)
  check_fit(object, "object")
  target_log_lik(object$potential, object, newdata)
}

# The pointwise log-likelihoods of a fit (draws x observations), by the
# kind of its target.
target_log_lik <- function(potential, object, newdata) UseMethod("target_log_lik")

#' @export
target_log_lik.default <- function(potential, object, newdata) {
  abort(paste0("log_lik() needs a model with observations: a fit of target_glm(), ",
               "target_brms(), or target_stan() of a program with a generated quantity ",
               "`log_lik`; this fit's target is %s."), potential$label, call = NULL)
}

#' @export
target_log_lik.jko_target_glm <- function(potential, object, newdata) {
  tg <- fit_glm(object, "log_lik()", call = NULL)
  d <- glm_draws(object, tg, "log_lik()", call = NULL)
  rows <- glm_rows(tg, newdata, response = TRUE, call = NULL)
  used <- rows$w > 0
  rows$x <- rows$x[used, , drop = FALSE]
  rows$offset <- rows$offset[used]
  rows$names <- rows$names[used]
  glm_log_lik(tg$family, glm_eta(d$B, rows), d$sigma, rows$y[used], rows$w[used])
}

# log p(y_i | theta_s) as the target's likelihood has it (src/glm.c): the
# binomial of w_i trials with w_i y_i successes (w_i not necessarily
# whole), the Poisson to the power w_i, N(mu, sigma^2 / w_i).
glm_log_lik <- function(family, eta, sigma, y, w) {
  S <- nrow(eta)
  yy <- rep(y, each = S)
  ww <- rep(w, each = S)
  out <- eta
  out[] <- switch(family$family,
    binomial = {
      k <- ww * yy
      lp <- if (family$link == "logit") stats::plogis(eta, log.p = TRUE)
            else stats::pnorm(eta, log.p = TRUE)
      lq <- if (family$link == "logit") stats::plogis(-eta, log.p = TRUE)
            else stats::pnorm(-eta, log.p = TRUE)
      lgamma(ww + 1) - lgamma(k + 1) - lgamma(ww - k + 1) +
        ifelse(k > 0, k * lp, 0) + ifelse(ww - k > 0, (ww - k) * lq, 0)
    },
    poisson = ww * (yy * eta - exp(eta) - lgamma(yy + 1)),
    gaussian = {
      s <- rep(sigma, times = length(y))
      0.5 * log(ww) - 0.5 * log(2 * pi) - log(s) - 0.5 * ww * (yy - eta)^2 / s^2
    })
  out
}

#' @export
target_log_lik.jko_target_stan <- function(potential, object, newdata) {
  if (!is.null(newdata)) {
    abort("log_lik() of a Stan program reads its generated quantity `log_lik`: `newdata` cannot be given.",
          call = NULL)
  }
  pd <- fit_posterior(object, "log_lik()", call = NULL)
  cols <- grep("^log_lik(\\[|$)", colnames(pd$x))
  if (!length(cols)) {
    abort(paste0("log_lik() of a Stan program needs a generated quantity `log_lik` ",
                 "(the log-likelihood of each observation, as loo expects); this program ",
                 "has none."), call = NULL)
  }
  pd$x[, cols, drop = FALSE]
}

#' @rdname glm-methods
#' @exportS3Method loo::loo
loo.jko_fit <- function(x, ..., r_eff = NULL, cores = getOption("mc.cores", 1)) {
  check_dots(...)
  if (!requireNamespace("loo", quietly = TRUE)) {
    abort("loo() needs the loo package: install.packages(\"loo\").")
  }
  ll <- log_lik.jko_fit(x)
  if (is.null(r_eff)) {
    pd <- fit_posterior(x, "loo()", "x")
    r_eff <- if (identical(pd$method, "flow")) rep(1, ncol(ll))
             else loo::relative_eff(exp(ll), chain_id = pd$chain, cores = cores)
  }
  loo::loo(ll, r_eff = r_eff, cores = cores)
}

#' @rdname glm-methods
#' @export
nobs.jko_fit <- function(object, ...) {
  check_dots(...)
  check_fit(object, "object")
  tg <- object$potential
  if (inherits(tg, "jko_target_brms")) return(stats::nobs(tg$brmsfit))
  tg <- fit_glm(object, "nobs()")
  sum(glm_weights(tg) > 0)
}

#' @rdname glm-methods
#' @export
formula.jko_fit <- function(x, ...) {
  check_dots(...)
  check_fit(x, "x")
  if (inherits(x$potential, "jko_target_brms")) return(stats::formula(x$potential$brmsfit))
  stats::formula(fit_glm(x, "formula()")$terms)
}

#' @rdname glm-methods
#' @export
family.jko_fit <- function(object, ...) {
  check_dots(...)
  check_fit(object, "object")
  if (inherits(object$potential, "jko_target_brms")) {
    return(stats::family(object$potential$brmsfit))
  }
  fit_glm(object, "family()")$family
}

#' @rdname glm-methods
#' @export
fitted.jko_fit <- function(object, ...) {
  check_dots(...)
  tg <- fit_glm(object, "fitted()")
  mu <- colMeans(posterior_epred.jko_fit(object))
  names(mu) <- tg$row_names
  stats::napredict(tg$na_action, mu)
}

#' @rdname glm-methods
#' @export
residuals.jko_fit <- function(object, type = c("deviance", "pearson", "working", "response"),
                              ...) {
  check_dots(...)
  type <- match.arg(type)
  tg <- fit_glm(object, "residuals()")
  fam <- tg$family
  mu <- colMeans(posterior_epred.jko_fit(object))
  y <- tg$y
  w <- glm_weights(tg)
  r <- switch(type,
    deviance = sign(y - mu) * sqrt(pmax(fam$dev.resids(y, mu, w), 0)),
    pearson = (y - mu) * sqrt(w) / sqrt(fam$variance(mu)),
    working = (y - mu) / fam$mu.eta(fam$linkfun(mu)),
    response = y - mu)
  names(r) <- tg$row_names
  stats::naresid(tg$na_action, r)
}

# sigma() of a gaussian GLM: the posterior mean of sigma.
#' @rdname glm-methods
#' @export
sigma.jko_fit <- function(object, ...) {
  check_dots(...)
  tg <- fit_glm(object, "sigma()")
  if (tg$family$family != "gaussian") return(1)
  mean(glm_draws(object, tg, "sigma()")$sigma)
}

# simulate() of a GLM's responses: see simulate.jko_fit() (R/jko_sample.R).
simulate_glm <- function(object, nsim, seed) {
  tg <- fit_glm(object, "simulate()", call = NULL)
  d <- glm_draws(object, tg, "simulate()", call = NULL)
  rows <- glm_rows(tg, NULL)
  sim <- with_seed(seed, {
    idx <- sample.int(d$n, nsim, replace = nsim > d$n)
    mu <- glm_eta(d$B[idx, , drop = FALSE], rows)
    mu[] <- tg$family$linkinv(mu)
    glm_draw_response(tg$family$family, mu, d$sigma[idx], rows$w, call = NULL)
  })
  out <- as.data.frame(t(sim), row.names = tg$row_names)
  names(out) <- paste0("sim_", seq_len(nsim))
  attr(out, "seed") <- attr(sim, "seed")
  out
}

# expr evaluated with R's generator seeded by `seed` (then restored), as
# stats::simulate() does; the result carries the attribute "seed".
with_seed <- function(seed, expr) {
  if (!exists(".Random.seed", envir = .GlobalEnv, inherits = FALSE)) stats::runif(1)
  if (is.null(seed)) {
    rng <- get(".Random.seed", envir = .GlobalEnv)
  } else {
    old <- get(".Random.seed", envir = .GlobalEnv)
    on.exit(assign(".Random.seed", old, envir = .GlobalEnv), add = TRUE)
    set.seed(seed)
    rng <- structure(seed, kind = as.list(RNGkind()))
  }
  out <- expr
  attr(out, "seed") <- rng
  out
}

#' @rdname glm-methods
#' @exportS3Method rstantools::prior_summary
prior_summary.jko_fit <- function(object, ...) {
  check_dots(...)
  check_fit(object, "object")
  tg <- object$potential
  if (inherits(tg, "jko_target_brms")) return(brms::prior_summary(tg$brmsfit))
  tg <- fit_glm(object, "prior_summary()")
  gauss <- tg$family$family == "gaussian"
  w <- glm_weights(tg)
  colnames(tg$x) <- tg$variables[seq_len(tg$p)]
  pr <- glm_prior_terms(tg$prior, tg$x, tg$y, w, tg$terms, gauss)
  sig <- if (gauss) glm_sigma_prior(tg$prior_sigma, tg$y, w, gauss)
  icpt <- attr(tg$terms, "intercept") == 1L && colnames(tg$x)[1L] == "(Intercept)"
  structure(list(prior = tg$prior, prior_sigma = if (gauss) tg$prior_sigma,
                 variables = colnames(tg$x), intercept = icpt, scale = pr$scale,
                 location = pr$z_loc, sigma_rate = if (!is.null(sig)) sig$rate),
            class = "jko_prior_summary")
}

#' @export
print.jko_prior_summary <- function(x, digits = 3, ...) {
  check_dots(...)
  cat("Priors of the model:", x$prior$label, "\n")
  f <- function(v) paste(formatC(v, digits = digits, format = "fg"), collapse = ", ")
  kind <- x$prior$kind
  if (kind == "normal") {
    coef <- x$variables
    if (x$intercept) {
      cat(sprintf(" Intercept (at the means of the other columns) ~ normal(location = %s, scale = %s)\n",
                  f(x$location[1L]), f(x$scale[1L])))
      coef <- coef[-1L]
    }
    if (length(coef)) {
      at <- if (x$intercept) -1L else seq_along(x$scale)
      cat(sprintf(" Coefficients ~ normal(location = 0, scale = %s)\n   (%s)\n",
                  f(x$scale[at]), paste(coef, collapse = ", ")))
    }
  } else if (kind == "flat") {
    cat(" Coefficients: flat (improper), the posterior mode is glm()'s estimate\n")
  } else {
    cat(sprintf(" Coefficients ~ normal(0, 1 / alpha), alpha ~ Gamma(shape = %g, rate = %g) (log_alpha sampled)\n",
                x$prior$shape, x$prior$rate))
  }
  if (!is.null(x$prior_sigma)) {
    cat(if (x$prior_sigma$kind == "flat") " sigma: flat in log(sigma)\n"
        else sprintf(" sigma ~ exponential(rate = %s)\n", f(x$sigma_rate)))
  }
  invisible(x)
}

#' @export
target_info.jko_target_glm <- function(potential) {
  if (!is_formula_glm(potential)) return(c(target = potential$label))
  fam <- potential$family
  c(target = "target_glm()",
    formula = paste(deparse(stats::formula(potential$terms), width.cutoff = 500L),
                    collapse = " "),
    family = sprintf("%s [%s]", fam$family, fam$link),
    priors = sprintf("%s%s (prior_summary(fit))", potential$prior$label,
                     if (!is.null(potential$prior_sigma))
                       paste0("; sigma: ", potential$prior_sigma$label) else ""),
    observations = format(sum(glm_weights(potential) > 0)),
    coefficients = format(potential$p))
}
