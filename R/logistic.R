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
#'   `c("jko_target_glm", "jko_target_logistic", "jko_target", "jko_potential")`:
#'   a [target_glm()] of the binomial family with its `x`, `y`, `prior`
#'   (`"gamma"` or `"normal"`), `batch`, the factor `levels` of `y`, the
#'   `start` of the mode search and the prior `init` ([init_prior()]).
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
  prior <- choose_arg(prior, c("gamma", "normal"), "prior")
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
  # the search for the mode starts at w = 0, with log alpha (the "gamma"
  # prior) at its conditional mode there
  D <- pot$dim
  start <- rep(0, D)
  if (prior == "gamma") start[D] <- log((p / 2 + pot$shape) / pot$rate)
  as_target(pot, start = start, init = init_prior(pot))
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
      ld <- c_glm_log_prior(prior, x) - log_mass
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
