# Bayesian logistic regression as a target: a preset of the glm target
# (R/glm.R, src/glm.c), its prior as an initial distribution, and the
# posterior predictive of a fit.

#' Bayesian logistic regression posterior
#'
#' The posterior of the Bayesian logistic regression of the reference
#' experiment (Mokrov et al., 2021), as a potential
#' \eqn{\Phi(\theta) = -\log p(\theta, y)} for [jko_fit()]: with
#' \eqn{\beta = 1} the flow ends at the posterior \eqn{p(\theta \mid y)}.
#'
#' * `prior = "gamma"`: \eqn{\theta = (w_1, \dots, w_p, \log\alpha)},
#'   \eqn{w \mid \alpha \sim N(0, \alpha^{-1} I)},
#'   \eqn{\alpha \sim \mathrm{Gamma}(\mathrm{shape} = 1, \mathrm{rate} = 100)}
#'   (dimension \eqn{p + 1});
#' * `prior = "normal"`: \eqn{\theta = w \sim N(0, I)} (dimension \eqn{p}).
#'
#' The likelihood is \eqn{\prod_i \sigma(x_i^\top w)^{y_i}(1 - \sigma(x_i^\top w))^{1 - y_i}};
#' there is no implicit intercept (add a column of ones to `x` for one). The
#' prior's normalising constants are kept, so \eqn{\int e^{-\Phi} = p(y)}, the
#' marginal likelihood, which [jko_evidence()] estimates. The log-density and
#' its gradient are computed in C. With `batch`, each evaluation uses a fresh
#' random subset of `batch` rows (drawn without replacement with R's RNG) and
#' scales its log-likelihood by \eqn{N / }`batch`, an unbiased estimate of the
#' full log-likelihood; [jko_evidence()], `jko_sample(resample = TRUE)` and
#' [init_prior()] always use the full data.
#'
#' `jko_fit(target_logistic(x, y))` runs the flow to the posterior from a
#' widened Laplace approximation and says whether it got there (see
#' [jko_fit()], "Flows to the stationary law"). The time-accurate flow
#' (`stationary = FALSE`) starts by default from the prior (cut at
#' \eqn{\log\alpha \ge -8}, see [init_prior()]); from there it needs a time
#' of about 3 to 5 to reach the posterior (the prior's tails are far out):
#' `h = 0.5, steps = 10`. The posterior's samples and moments from that
#' start are accurate, but its density is rougher than from a start near
#' the posterior.
#'
#' @param x The design matrix, N x p, numeric (a data frame of numeric
#'   columns is accepted).
#' @param y The N responses: 0/1 numbers, `TRUE`/`FALSE`, or a factor with two
#'   levels (the second level is 1).
#' @param prior `"gamma"` (hierarchical, the reference model) or `"normal"`.
#' @param batch `NULL` (the full data at every evaluation) or the number of
#'   rows of a minibatch.
#' @return An object of class
#'   `c("jko_target_glm", "jko_target_logistic", "jko_potential")`: a
#'   [target_glm()] of the binomial family with its `x`, `y`, `prior`
#'   (`"gamma"` or `"normal"`), `batch`, the factor `levels` of `y` and the
#'   prior `init` ([init_prior()]).
#' @references Mokrov, P., Korotin, A., Li, L., Genevay, A., Solomon, J. and
#'   Burnaev, E. (2021). Large-scale Wasserstein gradient flows. *Advances in
#'   Neural Information Processing Systems* 34.
#' @seealso [predict.jko_fit()] for the posterior predictive,
#'   [jko_evidence()] for the marginal likelihood.
#' @examples
#' pima <- rbind(MASS::Pima.tr, MASS::Pima.te)
#' x <- cbind(1, scale(pima[, 1:7]))
#' tg <- target_logistic(x, pima$type)
#' tg
#' potential_value(tg, matrix(c(rep(0, 8), log(0.01)), 1))
#' @export
target_logistic <- function(x, y, prior = c("gamma", "normal"), batch = NULL) {
  if (is.data.frame(x)) {
    bad <- !vapply(x, is.numeric, logical(1))
    if (any(bad)) {
      abort("`x` must be numeric; column%s %s %s not.", if (sum(bad) > 1L) "s" else "",
            paste0("`", names(x)[bad], "`", collapse = ", "),
            if (sum(bad) > 1L) "are" else "is")
    }
    x <- as.matrix(x)
  }
  if (!is.numeric(x)) abort("`x` must be a numeric matrix, not %s.", describe(x))
  if (is.null(dim(x))) x <- matrix(x, ncol = 1L)
  if (length(dim(x)) != 2L || nrow(x) < 1L || ncol(x) < 1L) {
    abort("`x` must be a numeric matrix with at least one row and one column.")
  }
  if (anyNA(x)) abort("`x` must not contain NA or NaN values (%d found).", sum(is.na(x)))
  if (any(!is.finite(x))) abort("`x` must not contain infinite values.")
  N <- nrow(x)
  p <- ncol(x)
  levels <- c("0", "1")
  if (is.factor(y)) {
    if (nlevels(y) != 2L) {
      abort("`y` must have two classes, but the factor has %d level%s (%s).", nlevels(y),
            if (nlevels(y) == 1L) "" else "s", paste(levels(y), collapse = ", "))
    }
    levels <- levels(y)
    y <- as.integer(y) - 1L
  } else if (is.logical(y)) {
    y <- as.integer(y)
  } else if (!is.numeric(y)) {
    abort("`y` must be 0/1 numbers, TRUE/FALSE or a factor with two levels, not %s.",
          describe(y))
  }
  if (anyNA(y)) abort("`y` must not contain NA values (%d found).", sum(is.na(y)))
  if (!all(y %in% c(0, 1))) {
    cls <- sort(unique(y))
    abort("`y` must have two classes coded 0 and 1 (or be a factor with two levels), not the values %s%s.",
          paste(format(utils::head(cls, 5L)), collapse = ", "),
          if (length(cls) > 5L) ", ..." else "")
  }
  if (length(y) != N) {
    abort("`y` has length %d but `x` has %d rows; they must match.", length(y), N)
  }
  prior <- match.arg(prior)
  if (!is.null(batch)) {
    batch <- check_count(batch, "batch")
    if (batch >= N) batch <- NULL
  }
  label <- sprintf("Bayesian logistic regression posterior, %d observations, %d weights, %s prior%s",
                   N, p, if (prior == "gamma") "Gamma(1, 100)-normal" else "N(0, I)",
                   if (is.null(batch)) "" else sprintf(", minibatches of %d", batch))
  # a preset of the glm target: binomial, logit link, no intercept added;
  # the hierarchical prior of prior_hierarchical(1, 100), or N(0, I)
  pr <- if (prior == "gamma") {
    list(code = 2L, loc = numeric(0), prec = numeric(0), const = 0, shape = 1, rate = 100)
  } else {
    list(code = 1L, loc = rep(0, p), prec = as.double(diag(p)), const = -0.5 * p * log(2 * pi),
         shape = 1, rate = 100)
  }
  pot <- glm_target(x, as.double(y), NULL, NULL, stats::binomial(), pr,
                    list(code = 0L, rate = 1), label, prior = prior, levels = levels,
                    colnames = colnames(x),
                    batch = if (is.null(batch)) NA_integer_ else batch,
                    class = c("jko_target_glm", "jko_target_logistic"))
  pot$init <- init_prior(pot)
  pot
}

#' The prior of a Bayesian target as an initial distribution
#'
#' For a [target_logistic()] posterior: with the `"gamma"` prior,
#' \eqn{\log\alpha} with \eqn{\alpha \sim \mathrm{Gamma}(1, \mathrm{rate} = 100)}
#' truncated to \eqn{\log\alpha \ge} `log_alpha_min`, and
#' \eqn{w \mid \alpha \sim N(0, \alpha^{-1} I)}; with the `"normal"` prior
#' \eqn{w \sim N(0, I)}. Exact samples and log-density of
#' \eqn{(w, \log\alpha)} (the Jacobian of \eqn{\log} and the truncation's
#' normalising constant included). [jko_fit()] uses it when `init` is not
#' given.
#'
#' Why the truncation: under the Gamma(1, 100) prior each weight is marginally
#' Student t with 2 degrees of freedom and scale 10, and the prior draws with
#' the smallest \eqn{\alpha} have weights in the thousands. The maps of the
#' flow are fitted on samples, and few samples come from that far out:
#' started from the whole prior the flow takes much longer to gather them
#' (on `MASS::Pima.tr`, after ten steps of \eqn{h = 0.5} its free energy is
#' 170, against 118 from the cut prior and 117 at the posterior). Cutting
#' \eqn{\log\alpha} at -8 (the cut of the reference
#' experiment, which clamps \eqn{\alpha} to \eqn{[e^{-8}, e^{8}]}) removes
#' 3.3\% of the prior's mass and bounds the conditional sd of the weights by
#' \eqn{e^4 \approx 55}; the posterior, where \eqn{\log\alpha} is of
#' order -5 to 2 in practice, does not depend on the start. `log_alpha_min =
#' -Inf` gives the untruncated prior.
#'
#' @param potential A [target_logistic()].
#' @param log_alpha_min Lower bound of \eqn{\log\alpha} (`"gamma"` prior
#'   only): a number, or `-Inf` for no truncation.
#' @return A `"jko_init"`, with `mass`, the prior probability of the region
#'   kept (1 without a cut).
#' @examples
#' tg <- target_logistic(cbind(1, MASS::Pima.tr$glu / 100), MASS::Pima.tr$type)
#' pr <- init_prior(tg)
#' pr
#' head(pr$sample(3))
#' @export
init_prior <- function(potential, log_alpha_min = -8) {
  if (!inherits(potential, "jko_target_logistic")) {
    abort("`potential` must be a target_logistic(), not %s.", describe(potential))
  }
  if (!is.numeric(log_alpha_min) || length(log_alpha_min) != 1L || is.na(log_alpha_min) ||
      log_alpha_min == Inf) {
    abort("`log_alpha_min` must be a single number or -Inf, not %s.", describe(log_alpha_min))
  }
  if (potential$prior == "normal") {
    out <- init_gaussian(rep(0, potential$p), 1)
    out$label <- sprintf("the N(0, I) prior, dimension %d", potential$p)
    out$mass <- 1
    return(out)
  }
  gamma_normal_prior(glm_prior_part(potential), log_alpha_min)
}

# The Gamma(shape, rate)-normal prior of (w, log alpha), dimension p + 1, of
# the glm target whose prior part is `prior` (glm_prior_part()), cut at log
# alpha >= log_alpha_min: its closures keep the prior only (not the data of
# the target it came from). The log-density is the target's own prior, in C.
gamma_normal_prior <- function(prior, log_alpha_min) {
  p <- prior$p
  shape <- prior$shape
  rate <- prior$rate
  a_min <- exp(log_alpha_min)
  # prior mass above the cut, and its log, computed in the upper tail
  log_mass <- stats::pgamma(a_min, shape, rate = rate, lower.tail = FALSE, log.p = TRUE)
  if (!is.finite(log_mass) || exp(log_mass) < 0.5) {
    abort("`log_alpha_min` = %s removes %s of the prior's mass; it must keep at least half.",
          format(log_alpha_min), format(-expm1(log_mass), digits = 3), call = sys.call(-1L))
  }
  structure(list(
    dim = p + 1L,
    mass = exp(log_mass),
    sample = function(n) {
      # inversion of the upper tail: alpha >= a_min exactly
      u <- log(stats::runif(n)) + log_mass
      alpha <- stats::qgamma(u, shape, rate = rate, lower.tail = FALSE, log.p = TRUE)
      # alpha is drawn above .Machine$double.xmin in practice; guard log(0)
      alpha <- pmax(alpha, a_min, .Machine$double.xmin)
      w <- matrix(stats::rnorm(n * p), n, p) / sqrt(alpha)
      cbind(w, log(alpha))
    },
    log_density = function(x) {
      ld <- .Call(C_glm_log_prior, prior, to_cols(x)) - log_mass
      ld[x[, p + 1L] < log_alpha_min] <- -Inf
      ld
    },
    label = if (log_alpha_min == -Inf) {
      sprintf("the Gamma(%g, %g)-normal prior of (w, log alpha), dimension %d",
              shape, rate, p + 1L)
    } else {
      sprintf(paste0("the Gamma(%g, %g)-normal prior of (w, log alpha), truncated to ",
                     "log alpha >= %g (%.3g%% of its mass), dimension %d"),
              shape, rate, log_alpha_min, 100 * exp(log_mass), p + 1L)
    }
  ), class = "jko_init")
}

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
  tg <- object$potential
  # a target_logistic() is a glm target too, with its own predictive
  if (inherits(tg, "jko_target_glm") && !inherits(tg, "jko_target_logistic")) {
    return(predict_glm(object, newdata, if (missing(type)) "response" else type, n, samples,
                       ...))
  }
  if (!inherits(tg, "jko_target_logistic")) {
    abort(paste0("predict() needs a fit of a target_logistic() or target_glm() posterior; this fit's ",
                 "potential is a %s, which has no predictive distribution. ",
                 "Use jko_sample() or jko_density()."), tg$label)
  }
  type <- match.arg(type)
  newdata <- if (is.null(newdata)) tg$x else check_points(newdata, tg$p, "newdata")
  if (is.null(samples)) {
    n <- check_count(n, "n")
    samples <- jko_sample(object, n, ...)
  } else if (!inherits(samples, "jko_sample") || samples$dim != object$dim) {
    abort("`samples` must be a jko_sample() of this fit, not %s.", describe(samples))
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

#' A widened Laplace approximation as an initial distribution
#'
#' The Gaussian \eqn{N(\hat\theta, s^2 H^{-1})} at the minimum
#' \eqn{\hat\theta} of the potential (found by BFGS with the potential's
#' gradient), \eqn{H} the Hessian of \eqn{\Phi} there (central differences of
#' the gradient) and \eqn{s} = `inflate`. Widened by `inflate` > 1, it is a
#' starting point from which a few JKO steps reach a near-Gaussian posterior,
#' much faster than from a diffuse prior, and its tails stay heavier than the
#' target's, which importance sampling ([jko_evidence()], `jko_sample(resample
#' = TRUE)`) needs. Minibatch targets are optimised on the full data.
#' [jko_fit()] starts a target without a prior here by default.
#'
#' The potential may be infinite or undefined away from its minimum (an
#' overflow in the tails, or a log-density that is `-Inf` outside its
#' support): the optimiser treats such points as infinitely bad and steps
#' back. When `start` gives no converged minimum, up to `tries - 1` more
#' starts are drawn (normal around zero, sd 1, then 3, then 0.1) and the
#' lowest minimum found is kept; where the potential is not finite at any
#' start, the error says so. A Hessian that
#' is not positive definite at the minimum (a flat or degenerate direction)
#' has its eigenvalues raised to a small positive floor, with a warning.
#'
#' @param potential A potential with a known dimension (e.g. a
#'   [target_logistic()]).
#' @param start Starting point of the optimisation (default: zero, and for
#'   the `"gamma"` prior \eqn{\log\alpha} at its conditional mode given
#'   \eqn{w = 0}).
#' @param inflate Factor on the standard deviations, at least 1.
#' @param tries Number of starting points.
#' @return A `"jko_init"` (see [init_gaussian()]) with the `mode` and the
#'   optimiser's `convergence` code.
#' @examples
#' x <- cbind(1, scale(MASS::Pima.tr[, 1:7]))
#' init_laplace(target_logistic(x, MASS::Pima.tr$type))
#' @export
init_laplace <- function(potential, start = NULL, inflate = 1.5, tries = 10) {
  check_potential(potential)
  D <- potential$dim
  if (is.na(D) && is.null(start)) {
    abort("`start` is needed: `potential` does not know its dimension.")
  }
  if (is.null(start)) {
    start <- if (!is.null(potential$start)) potential$start else rep(0, D)
    if (inherits(potential, "jko_target_logistic") && potential$prior == "gamma") {
      start[D] <- log((potential$p / 2 + potential$shape) / potential$rate)
    }
  }
  start <- check_points(start, if (is.na(D)) NULL else D, "start")[1L, ]
  D <- length(start)
  inflate <- check_positive(inflate, "inflate")
  if (inflate < 1) abort("`inflate` must be at least 1, not %s.", describe(inflate))
  tries <- check_count(tries, "tries")
  potential <- full_data(potential)
  # Phi and its gradient at one point as the potential gives them, a
  # non-finite value being +Inf (BFGS then shortens its step)
  value <- function(t) {
    v <- potential_values(potential, matrix(t, 1L))
    if (is.finite(v)) v else Inf
  }
  gradient <- function(t) {
    g <- raw_gradient(potential, matrix(t, 1L))[1L, ]
    g[!is.finite(g)] <- 0
    g
  }
  # `start`, then (only if it gives no finite minimum that converged)
  # points drawn around zero
  best <- NULL
  finite_start <- FALSE
  for (i in seq_len(tries)) {
    s0 <- if (i == 1L) start else stats::rnorm(D, sd = c(1, 3, 0.1)[(i - 2L) %% 3L + 1L])
    if (!is.finite(value(s0))) next
    finite_start <- TRUE
    opt <- tryCatch(stats::optim(s0, value, gradient, method = "BFGS",
                                 control = list(maxit = 2000L, reltol = 1e-14)),
                    error = function(e) NULL)
    if (!is.null(opt) && is.finite(opt$value) && (is.null(best) || opt$value < best$value)) {
      best <- opt
    }
    if (!is.null(best) && best$convergence == 0L) break
  }
  if (!finite_start) {
    abort(paste0("the potential is not finite at any of the %d starting points tried ",
                 "(`start` and %d drawn around zero): give `start`, a point where the ",
                 "log-density is finite."), tries, tries - 1L)
  }
  if (is.null(best)) abort("the optimiser found no point where the potential is finite.")
  opt <- best
  H <- matrix(0, D, D)
  for (d in seq_len(D)) {
    e <- 1e-5 * max(1, abs(opt$par[d])) * (seq_len(D) == d)
    H[, d] <- (gradient(opt$par + e) - gradient(opt$par - e)) / (2 * e[d])
  }
  H <- (H + t(H)) / 2
  if (any(!is.finite(H))) {
    abort("the Hessian of the potential at its minimum is not finite.")
  }
  eg <- eigen(H, symmetric = TRUE)
  floor_ev <- 1e-6 * max(abs(eg$values), 1e-12)
  # parameters in different units (a regression coefficient of a predictor
  # in thousands next to an intercept) make a well-determined Hessian
  # ill-conditioned: judge it, and invert it, in units of its diagonal
  sc <- if (min(eg$values) < floor_ev && all(diag(H) > 0)) 1 / sqrt(diag(H))
  if (!is.null(sc)) {
    eg <- eigen(H * outer(sc, sc), symmetric = TRUE)
    floor_ev <- 1e-6 * max(abs(eg$values), 1e-12)
  }
  if (min(eg$values) < floor_ev) {
    warning(sprintf(paste0("init_laplace(): the Hessian at the minimum is not positive definite ",
                           "(smallest eigenvalue %.3g%s); its eigenvalues are raised to %.3g."),
                    min(eg$values), if (is.null(sc)) "" else " in units of its diagonal",
                    floor_ev), call. = FALSE)
  }
  Hinv <- eg$vectors %*% (t(eg$vectors) / pmax(eg$values, floor_ev))
  if (!is.null(sc)) Hinv <- Hinv * outer(sc, sc)
  Hinv <- (Hinv + t(Hinv)) / 2
  out <- init_gaussian(opt$par, inflate^2 * Hinv)
  out$mode <- opt$par
  out$convergence <- opt$convergence
  out$label <- sprintf("Laplace approximation at the mode, sd x %g, dimension %d",
                       inflate, D)
  out
}
