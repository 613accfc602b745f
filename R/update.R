# Bayesian updates of a fitted law by a likelihood, learnt as a flow to the
# posterior (jko_update()).

#' Update a fitted law by a likelihood
#'
#' Bayes' rule for the law of a fit: the target
#' \eqn{\pi(x) \propto \rho_t(x)\,L(y \mid x)}, whose log-density is
#' \eqn{\log\rho_t(x) + \log L(y \mid x)}, with \eqn{\rho_t} the fit's own
#' exact density ([jko_density()]), sampled as every target is: by a flow
#' run to its stationary law (see "Flows to the stationary law" in
#' [jko_fit()]), here started from \eqn{\rho_t} itself ([init_fit()]). The
#' result is again a fit, with samples and exact densities of the posterior
#' law (pulled back through its own maps, then through those of `fit`); it
#' can be the start of a new flow or updated again.
#' [jko_evidence()] of the result estimates
#' \eqn{\log\int\rho_t(x)L(y \mid x)\,dx}, the marginal likelihood of the
#' data under \eqn{\rho_t}. ([jko_filter()] updates its laws by Bayes'
#' rule on the density instead, exactly and without training, by default.)
#'
#' A pull-back through a long chain of maps costs a Newton inversion per map
#' and point, and the training evaluates \eqn{\log\rho_t} at every batch.
#' In dimension 1 (with `tabulate = TRUE`, the default there),
#' \eqn{\log\rho_t} is therefore evaluated exactly on a grid of 2049 points
#' spanning the draws of \eqn{\rho_t} and interpolated by a cubic spline
#' (with its derivative for the gradient); points outside the grid are
#' pulled back exactly. The spline's error (\eqn{O(\delta^4)} for a grid
#' step \eqn{\delta}) is orders of magnitude below the training's, and the
#' densities of the result are exact for its maps whatever target they were
#' trained on. In higher dimensions every value is an exact pull-back and
#' gradients are central differences of it.
#'
#' @param fit A `"jko_fit"`: its law at `step` (or `time`) is the prior.
#' @param loglik The log-likelihood: a function of an n x D matrix of points
#'   returning the n values of \eqn{\log L(y \mid x)} (up to a constant).
#' @param grad `NULL` (central differences of `loglik`) or a function of an
#'   n x D matrix returning the n x D matrix of gradients of `loglik`.
#' @param step,time The step or time of `fit` whose law is updated (default
#'   the last).
#' @param tabulate In dimension 1, interpolate \eqn{\log\rho_t} on a fine
#'   grid rather than pull back every point (see Details).
#' @param control,threads,verbose,... As in [jko_fit()]: the settings of the
#'   stationary flow (its defaults need no tuning).
#' @return A `"jko_fit"` (a flow to the stationary law \eqn{\pi}, with its
#'   verdict) whose `init` is [init_fit()] of `fit`.
#' @seealso [jko_filter()] (alternating flows and updates), [init_fit()].
#' @examples
#' \donttest{
#' set.seed(1)
#' # a Gaussian fit (the flow of N(0, 1) under Phi = x^2 / 2 is N(0, 1)
#' # at every time), updated by an observation y = 1 with noise sd 1:
#' # the posterior is N(0.5, 0.5)
#' fit <- jko_fit(potential_quadratic(1), init_gaussian(0, 1), h = 0.5,
#'                steps = 1, hidden = c(8, 8), batch = 256, iters = 50)
#' # (the law at step 0 is N(0, 1) exactly; small settings for speed)
#' post <- jko_update(fit, function(x) dnorm(1, x[, 1], 1, log = TRUE), step = 0,
#'                    control = jko_control(hidden = c(8, 8), batch = 256, iters = 100,
#'                                          pool = 2^14, monitor = 2^13))
#' s <- jko_sample(post, 4000)
#' c(mean(s$x), var(s$x))
#' }
#' @export
jko_update <- function(fit, loglik, grad = NULL, step = NULL, time = NULL,
                       tabulate = NULL, control = jko_control(), threads = NULL,
                       verbose = interactive(), ...) {
  check_fit(fit)
  if (!is.function(loglik)) {
    abort("`loglik` must be a function of an n x D matrix returning n log-likelihoods, not %s.",
          describe(loglik))
  }
  if (!is.null(grad) && !is.function(grad)) {
    abort("`grad` must be NULL or a function of an n x D matrix, not %s.", describe(grad))
  }
  prior <- init_fit(fit, step, time)
  if (!law_has_density(prior)) {
    abort(paste0("`fit` must have densities to be updated: its initial distribution ",
                 "has no log-density (give `log_density` to init_samples())."))
  }
  update_law(prior, loglik, grad, tabulate, control, threads, verbose, ...)
}

# The update of any law with a log-density (a fit's law, or a filtering law
# in jko_filter()).
update_law <- function(prior, loglik, grad = NULL, tabulate = NULL, control = jko_control(),
                       threads = NULL, verbose = FALSE, ...) {
  D <- prior$dim
  if (is.null(tabulate)) tabulate <- D == 1L
  tabulate <- check_flag(tabulate, "tabulate")
  if (tabulate && D != 1L) abort("`tabulate` works in dimension 1 only, not %d.", D)
  threads <- resolve_threads(threads)
  # the likelihood, checked once on draws of the prior before any training
  loglik_values(loglik, law_draw(prior, 16L, log_density = FALSE, threads = threads)$x)
  pot <- update_potential(prior, loglik, grad, tabulate, threads)
  # An updated law is used for its density (the next update, the filter's
  # next prediction), not only for its exact draws: unless the user says
  # otherwise, its flow trains until KL(rho || pi) < max(0.01, 0.005 D) and
  # its moments are within 5% of their importance-weighted values, as a
  # posterior's did before the exact correction
  args <- attr(control, "args")
  if (!is.null(args) && !any(c("kl_tol", "moment_tol") %in% names(args))) {
    args$kl_tol <- max(0.01, 0.005 * D)
    args$moment_tol <- 0.05
    control <- do.call(jko_control, args)
  }
  jko_fit(pot, init = prior, control = control, threads = threads, verbose = verbose,
          stationary = TRUE, ...)
}

# The target of jko_update(): log rho_t(x) + log L(y | x), with log rho_t
# tabulated (dimension 1) or pulled back exactly. (Made in its own function
# so that its closures hold the prior and the likelihood, nothing else of
# the caller's.)
update_potential <- function(prior, loglik, grad, tabulate, threads) {
  exact <- function(x) law_log_density(prior, x, threads = threads)$log_density
  log_prior <- if (tabulate) tabulated_log_density(prior, threads)
               else list(value = exact, gradient = function(x) fd_gradient(exact, x))
  ll_grad <- if (is.null(grad)) function(x) fd_gradient(loglik, x) else grad
  new_target(function(x) log_prior$value(x) + loglik(x),
             function(x) log_prior$gradient(x) + ll_grad(x),
             dim = prior$dim, label = "a fitted law times a likelihood",
             names = c(value = "loglik", gradient = "grad"), class = "jko_target_update")
}
