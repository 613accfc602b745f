# Continuous-discrete filtering with chained flows and Bayes updates
# (jko_filter()), and the time steps of its flows.

#' Continuous-discrete filtering with chained JKO flows
#'
#' The filtering laws \eqn{p(X_{t_j} \mid y_1, \dots, y_j)} of the diffusion
#' \eqn{dX = -\nabla\Phi(X)\,dt + \sqrt{2/\beta}\,dW}{dX = -grad Phi(X) dt + sqrt(2/beta) dW},
#' \eqn{X_0 \sim \rho_0}, observed at times \eqn{t_1 < t_2 < \dots} through
#' \eqn{y_j = X_{t_j} + \varepsilon_j}, \eqn{\varepsilon_j \sim N(0, sd^2 I)}
#' (or any likelihood). Between observations the law is carried by the
#' time-accurate Fokker-Planck flow ([jko_fit()] with
#' `stationary = FALSE`), started from the last filtering law; at each
#' observation it is updated by Bayes' rule. Every filtering law has
#' samples and exact densities, through the whole chain of maps down to
#' \eqn{\rho_0}.
#'
#' The update (`update = "reweight"`, the default) is Bayes' rule applied
#' to the density itself: the filtering law is
#' \eqn{\pi_j(x) = \rho(x)\,L(y_j \mid x) / Z_j}, with \eqn{\rho} the
#' predicted law, so its log-density is exact with no map of its own, and
#' \eqn{Z_j = p(y_j \mid y_1, \dots, y_{j-1})} is the evidence of the
#' observation (the `log_evidence` of the table; their sum is the log
#' marginal likelihood of the observations, for estimating parameters of
#' the diffusion or the noise). \eqn{Z_j} is an integral on a fine grid in
#' dimension 1 and a Monte Carlo mean of the likelihood over \eqn{2^{16}}
#' draws of \eqn{\rho} otherwise. Its samples are draws of \eqn{\rho}
#' resampled by their likelihoods (systematic resampling), then moved by
#' random-walk Metropolis steps that leave \eqn{\pi_j} invariant (10 in
#' dimension 1, where \eqn{\log\rho} is tabulated as in [jko_update()]; 3
#' otherwise, each an exact pull-back of every draw), so that the
#' duplicates of the resampling part before they train the next flow. The
#' flows' own error is then the only one: `update = "flow"` learns each
#' update as a flow to the posterior instead ([jko_update()], with
#' `control_update`), which adds the training error of that flow (its
#' `update_kl`) at every observation, and its maps to the chain.
#'
#' A likelihood sharp against the predicted law (an observation many of its
#' sds away, or far more precise than it) leaves few of the law's draws
#' with any weight. In dimension 1 the quadrature's grid then follows the
#' posterior (extended beyond the law's draws, or narrowed to the
#' posterior, until its ends carry no mass and at least 64 points carry it)
#' and, below an effective sample size of 2%, the draws of the filtering
#' law come from that grid (a cell by its weight, then the Metropolis
#' steps) instead of resampled draws of the law: evidence, density and
#' samples stay those of the exact posterior. In higher dimensions an
#' effective sample size below 1% stops the filter with an error of class
#' `"jkoflow_error_degenerate"` that names the observation: neither the
#' resampled draws nor the Monte Carlo evidence could be trusted there, and
#' `update = "flow"` is the way on.
#'
#' Each interval between observations is cut into equal JKO steps: the
#' fewest, of at most `h` each, for which the scheme's own error on the
#' problem's Gaussian linearisation around the current law is at most
#' `h_tol` in symmetric KL (summed over the coordinates), and at most 16
#' times as many as steps of `h`. The linearisation takes, for each
#' coordinate, the law's mean and variance (from 2048 draws) and the mean
#' of \eqn{\partial\Phi/\partial x_i} and its regression slope on
#' \eqn{x_i} (for a Gaussian law, the mean of the second derivative); a JKO
#' step on a linear drift maps a Gaussian to a Gaussian in closed form, and
#' the exact law is the Ornstein-Uhlenbeck one. The scheme is first order
#' in time: where the drift moves the law by much of its sd in a step, or
#' the law is narrow against a step's diffusion, steps of `h` leave an
#' error of their own, which the rule measures and refines. On an
#' Ornstein-Uhlenbeck filter, \eqn{\Phi = (x - 1)^2/2} from
#' \eqn{N(-1, 0.5^2)} observed at t = 0.5, ..., 2.5 with noise sd 0.5,
#' steps of 0.25 put the scheme's own filtering law at t = 2.5 0.025 from
#' Kalman's in symmetric KL and steps of 0.125 0.007; the rule took 8 to
#' 10 steps per interval of 0.5 there, and `jko_filter()` with its
#' defaults was 0.0021 from Kalman's (the scheme in those steps 0.0018;
#' `inst/bench/filtering_ou.R`, 190 s on 2 threads), where steps of 0.25
#' had left it 0.022 from it. `h_tol = Inf` gives steps of `h`.
#'
#' The defaults were chosen on the one-dimensional benchmark of Mokrov et
#' al. (2021) (`inst/bench/filtering.R`, whose figures the README
#' reports): steps of at most `h = 0.125`, networks of width 64 x 64
#' trained 1800 iterations of batch 256 at `lr = 0.01` per step, drawn from
#' a pool of \eqn{2^{17}} samples, and `h_tol = 0.001`. There the time step
#' matters as much as the training. Carried over half a unit of time from
#' the exact filtering laws of three paths, the exact one-dimensional JKO
#' scheme (`inst/bench/filtering_scheme.R`) is 0.0021 from the exact flow
#' in symmetric KL (median of 27 laws) in steps of 0.25 and 0.0006 in
#' steps of 0.125 (the linearisation says 0.0028 and 0.0008); on the
#' benchmark (10 paths), steps of 0.125 with 1800 iterations each put
#' the density of \eqn{X_5} 0.0034 from the truth (median and mean),
#' against 0.0057 (median; mean 0.0059) for steps of 0.25 with 3600
#' iterations, at the same training cost. The
#' rule keeps steps of 0.125 there. Training is the other error: over half
#' a unit of time from an exact filtering law (two seeds), 600 iterations
#' of batch 512 at `lr = 0.005` were 0.008-0.009 from the truth, batches of
#' 1024 no better, 1200 iterations of batch 256 at `lr = 0.01`
#' 0.003-0.006, and 2400 of them 0.002-0.005. The networks start with
#' sharper units (`init_scale = 8`, see [jko_control()]): the potential
#' there, \eqn{\sin(2\pi x)/\pi + x^2/4}, puts ripples of period 1 on laws
#' of sd about 0.7, which networks of unit scale never learn (their flows'
#' densities stay smooth, about 0.05 from the truth). For a potential that
#' varies on the scale of the laws, `init_scale = 1` is the safer choice.
#'
#' @param potential The potential \eqn{\Phi} of the drift (see
#'   [potentials]).
#' @param y The observations: a vector (one per time, in dimension 1) or a
#'   matrix with one row per time.
#' @param times The observation times, increasing, \eqn{\ge 0}.
#' @param sd The standard deviation of the Gaussian observation noise, a
#'   positive number (or one per coordinate); ignored when `loglik` is
#'   given.
#' @param loglik `NULL` (Gaussian noise), or a function `loglik(x, y)` of
#'   an n x D matrix of states and one observation `y` (a row of `y`),
#'   returning the n log-likelihoods \eqn{\log p(y \mid x)}.
#' @param init The law of \eqn{X_0}, with a log-density (default
#'   \eqn{N(0, I)}).
#' @param t_end `NULL`, or a time after the last observation to which the
#'   last filtering law is carried (the predictive law of \eqn{X_{t_{end}}}
#'   given all the observations).
#' @param beta Inverse temperature \eqn{\beta}.
#' @param h The largest JKO step of the flows between observations.
#' @param h_tol The time discretisation's allowed error per interval
#'   (symmetric KL on the problem's Gaussian linearisation, see Details):
#'   the steps are the fewest of at most `h` within it. `Inf` gives equal
#'   steps of at most `h`.
#' @param update `"reweight"` (Bayes' rule on the density, exact; see
#'   Details) or `"flow"` (a flow to each posterior, [jko_update()]).
#' @param control The training settings of the flows between observations
#'   ([jko_control()]).
#' @param control_update With `update = "flow"`, the settings of the
#'   updates' stationary flows.
#' @param threads,verbose As in [jko_fit()].
#' @return An object of class `"jko_filter"`: `fits`, the filtering laws
#'   at the observation times (each a `"jko_fit"`, for [jko_sample()],
#'   [jko_density()] and [init_fit()]; with `update = "reweight"` a fit of
#'   no step whose initial distribution is the updated law); `predictions`,
#'   the flows between observations (a fit, or `NULL` where two times
#'   coincide); `final`, the flow to `t_end` (or `NULL`); `table`, one row
#'   per observation time with the filtering mean and sd (of the first
#'   coordinate, from 2048 draws), the steps of the flow and of the update,
#'   the update's estimated \eqn{KL(\rho \| \pi)} (0 for the exact
#'   update), `update_ess` (the effective sample size of the likelihood's
#'   weights on draws of the predicted law, as a fraction of the draws; see
#'   Details for what is done when it is small), `log_evidence`
#'   (\eqn{\log p(y_j \mid y_1, \dots, y_{j-1})}; both `NA` with
#'   `update = "flow"`) and the seconds taken; and `times`, `y`, `t_end`.
#' @references Mokrov, P., Korotin, A., Li, L., Genevay, A., Solomon, J. and
#'   Burnaev, E. (2021). Large-scale Wasserstein gradient flows. *Advances in
#'   Neural Information Processing Systems* 34.
#' @seealso [jko_update()], [init_fit()].
#' @examples
#' \donttest{
#' set.seed(1)
#' # an Ornstein-Uhlenbeck process observed twice, small settings for speed
#' small <- jko_control(hidden = c(8, 8), batch = 256, iters = 60, pool = 2^14,
#'                      monitor = 2^13)
#' f <- jko_filter(potential_quadratic(1), y = c(0.8, 1.2), times = c(0.5, 1),
#'                 control = small, control_update = small)
#' f
#' jko_density(f$fits[[2]], c(0, 0.5, 1))
#' plot(f)
#' }
#' @export
jko_filter <- function(potential, y, times, sd = 1, loglik = NULL, init = NULL,
                       t_end = NULL, beta = 1, h = 0.125, h_tol = 0.001,
                       update = c("reweight", "flow"),
                       control = jko_control(hidden = c(64, 64), batch = 256, iters = 1800,
                                             lr = 0.01, pool = 2^17, init_scale = 8),
                       control_update = jko_control(hidden = c(32, 32), kl_tol = 0.002,
                                                    pool = 2^15, init_scale = 8),
                       threads = NULL, verbose = interactive()) {
  call <- match.call()
  check_potential(potential)
  if (!is.null(init)) check_init(init)
  if (is.data.frame(y)) y <- as.matrix(y)
  if (!is.numeric(y) || length(y) < 1L) {
    abort("`y` must be a numeric vector or matrix of observations, not %s.", describe(y))
  }
  if (is.null(dim(y))) {
    D <- if (!is.na(potential$dim)) potential$dim else if (!is.null(init)) init$dim else 1L
    y <- if (D == 1L) matrix(y, ncol = 1L) else matrix(y, nrow = 1L)
  }
  if (is.null(init)) {
    init <- init_gaussian(rep(0, if (!is.na(potential$dim)) potential$dim else ncol(y)), 1)
  }
  check_init(init)
  D <- init$dim
  if (!is.na(potential$dim) && potential$dim != D) {
    abort("`potential` has dimension %d but `init` has dimension %d.", potential$dim, D)
  }
  if (!law_has_density(as_law(init))) {
    abort("`init` must have a log-density: the filtering laws' densities start from it.")
  }
  if (!is.numeric(times) || length(times) != nrow(y) || anyNA(times) ||
      any(!is.finite(times)) || any(times < 0) || any(diff(times) < 0)) {
    abort("`times` must be %d non-decreasing finite times >= 0 (one per observation), not %s.",
          nrow(y), describe(times))
  }
  if (is.null(loglik)) {
    if (ncol(y) != D) {
      abort("`y` must have %d column%s (the dimension of the state), not %d.", D,
            if (D == 1L) "" else "s", ncol(y))
    }
    if (!is.numeric(sd) || !length(sd) %in% c(1L, D) || anyNA(sd) || any(!is.finite(sd)) ||
        any(sd <= 0)) {
      abort("`sd` must be a positive number (or %d of them), not %s.", D, describe(sd))
    }
    if (anyNA(y) || any(!is.finite(y))) abort("`y` must be finite numbers.")
  } else if (!is.function(loglik)) {
    abort("`loglik` must be NULL or a function(x, y) returning n log-likelihoods, not %s.",
          describe(loglik))
  }
  if (!is.null(t_end) && (!is.numeric(t_end) || length(t_end) != 1L || !is.finite(t_end) ||
                          t_end < times[length(times)])) {
    abort("`t_end` must be NULL or a time >= the last observation time (%g), not %s.",
          times[length(times)], describe(t_end))
  }
  beta <- check_positive(beta, "beta")
  h <- check_positive(h, "h")
  if (!is.numeric(h_tol) || length(h_tol) != 1L || is.na(h_tol) || h_tol <= 0) {
    abort("`h_tol` must be a positive number (Inf for steps of `h`), not %s.", describe(h_tol))
  }
  if (!inherits(control, "jko_control")) {
    abort("`control` must be a jko_control(), not %s.", describe(control))
  }
  if (!inherits(control_update, "jko_control")) {
    abort("`control_update` must be a jko_control(), not %s.", describe(control_update))
  }
  if (!is.character(update) || !length(update) || anyNA(update) ||
      !update[1L] %in% c("reweight", "flow")) {
    abort("`update` must be \"reweight\" or \"flow\", not %s.", describe(update))
  }
  update <- update[1L]
  threads <- resolve_threads(threads)
  verbose <- check_flag(verbose, "verbose")

  J <- nrow(y)
  fits <- vector("list", J)
  preds <- vector("list", J)
  rows <- vector("list", J)
  cur <- as_law(init)
  t_cur <- 0
  law_draws <- NULL
  # `spare`: draws (rows) of the law before cur's last Bayes node that no
  # law has used yet (the pool of the last prediction, pushed through its
  # maps), taken in disjoint chunks by the laws drawn from cur; `used`: the
  # rows taken so far
  spare <- NULL
  used <- 0L
  for (j in seq_len(J)) {
    t0 <- proc.time()[["elapsed"]]
    if (is.null(law_draws) && is.finite(h_tol)) {
      law_draws <- law_draw(cur, 2048L, log_density = FALSE, threads = threads)$x
    }
    dt <- times[j] - t_cur
    steps <- filter_steps(potential, law_draws, dt, h, beta, h_tol)
    pool <- NULL
    if (dt > 0) {
      pred <- filter_flow(potential, cur, dt, steps, beta, control, threads, spare, used)
      preds[[j]] <- pred$fit
      cur <- fit_law(pred$fit)
      pool <- pred$pool
    }
    lik <- if (is.null(loglik)) gaussian_loglik(y[j, ], sd) else user_loglik(loglik, y[j, ])
    if (update == "reweight") {
      node <- bayes_node(cur, lik$value, threads, draws = pool)
      if (D > 1L && node$ess < 0.01) {
        # resampled draws of the prior (a few of them, moved 3 times) and a
        # Monte Carlo evidence on few effective draws: neither can be trusted
        abort(paste0(
          "the reweighting of observation %d (t = %g) degenerates: the likelihood is sharp ",
          "against the predicted law (the effective sample size of its weights is %.2g%% of ",
          "%d draws%s), so neither the filtering law's samples nor its evidence can be ",
          "trusted. Use update = \"flow\"."), j, times[j], 100 * node$ess, 2^16,
          lik_scale_text(lik, cur_draws = if (!is.null(pool)) pool else law_draws, y = y[j, ], sd = sd, gaussian = is.null(loglik)),
          class = "jkoflow_error_degenerate", call = call)
      }
      cur <- law_append(cur, list(node))
      spare <- pool
      used <- 0L
      mon <- filter_draw(cur, control$monitor, TRUE, threads, spare, used)
      used <- used + control$monitor
      post <- law_fit(potential, cur, h, beta, control, threads, mon)
      evidence <- node$log_z
    } else {
      post <- update_law(cur, lik$value, lik$gradient, control = control_update,
                         threads = threads, verbose = FALSE)
      cur <- fit_law(post)
      spare <- NULL
      evidence <- NA_real_
    }
    fits[[j]] <- post
    t_cur <- times[j]
    mon <- post$monitor$points
    law_draws <- mon
    rows[[j]] <- data.frame(
      time = times[j], y = y[j, 1L], mean = mean(mon[, 1L]), sd = stats::sd(mon[, 1L]),
      flow_steps = if (is.null(preds[[j]])) 0L else length(preds[[j]]$theta),
      update_steps = length(post$theta),
      update_kl = if (update == "reweight") 0 else post$verdict$kl,
      update_ess = if (update == "reweight") node$ess else NA_real_,
      log_evidence = evidence, seconds = proc.time()[["elapsed"]] - t0)
    if (verbose) {
      message(sprintf("t = %-6g y = %-8.4g filtering mean %.4g, sd %.4g (%d flow steps, %s, %.1f s)",
                      times[j], y[j, 1L], rows[[j]]$mean, rows[[j]]$sd, rows[[j]]$flow_steps,
                      if (update == "reweight") sprintf("log p(y | past) %.4g", evidence)
                      else sprintf("%d update steps, update KL %.2g", rows[[j]]$update_steps,
                                   rows[[j]]$update_kl),
                      rows[[j]]$seconds))
    }
  }
  final <- NULL
  if (!is.null(t_end) && t_end > t_cur) {
    steps <- filter_steps(potential, law_draws, t_end - t_cur, h, beta, h_tol)
    final <- filter_flow(potential, cur, t_end - t_cur, steps, beta, control, threads,
                         spare, used)$fit
  }
  structure(list(call = call, potential = potential, times = as.double(times), y = y,
                 t_end = t_end, fits = fits, predictions = preds, final = final,
                 table = do.call(rbind, rows), dim = D),
            class = "jko_filter")
}

# n draws of the filtering law `law` (with their log-densities if asked):
# from the rows of `spare` after the first `used` (draws of the law before
# its last Bayes node, see jko_filter()) when at least n / 2 are left,
# else new draws through the whole chain.
filter_draw <- function(law, n, log_density, threads, spare, used) {
  left <- if (is.null(spare)) 0L else nrow(spare) - used
  start <- if (left >= n / 2) spare[used + seq_len(min(n, left)), , drop = FALSE]
  law_draw(law, n, log_density = log_density, threads = threads, start = start)
}

# The law `law` as a fit of no step (its samples and densities, as the
# filtering law at an observation time), with its monitor samples `mon`.
law_fit <- function(potential, law, h, beta, control, threads, mon) {
  flow <- new_flow(potential, law, h, 0L, beta, control, list(), FALSE, threads, FALSE,
                   call = quote(jko_filter()), monitor = mon)
  flow$fit
}

# The time-accurate flow from the law `law` over a time dt, in `steps` equal
# steps: list(fit, pool), the pool pushed through all its maps (draws of its
# last law, one per row). Its monitor samples and pool are drawn from
# `spare` after its first `used` rows where there are enough (see
# filter_draw()).
filter_flow <- function(potential, law, dt, steps, beta, control, threads, spare, used) {
  mon <- filter_draw(law, control$monitor, TRUE, threads, spare, used)
  pool <- filter_draw(law, control$pool, FALSE, threads, spare, used + control$monitor)$x
  flow <- new_flow(potential, law, dt / steps, steps, beta, control, list(), FALSE, threads,
                   FALSE, call = quote(jko_filter()), monitor = mon)
  run_flow(flow, pool = pool)
}

# The number of equal JKO steps for a flow over dt from the law of the rows
# of x: the fewest of at most h each for which the scheme's own error on the
# problem's Gaussian linearisation is at most tol (symmetric KL, summed over
# the coordinates), and at most 16 times the steps of h. The linearisation,
# per coordinate i: the mean and variance of x_i, the mean g of dPhi/dx_i
# and its regression slope a on x_i (for a Gaussian law the mean of
# d2Phi/dx_i2, by Stein's identity). Where the gradient fails or the
# problem is degenerate, steps of h.
filter_steps <- function(potential, x, dt, h, beta, tol) {
  k0 <- max(1L, as.integer(ceiling(dt / h - 1e-9)))
  if (dt <= 0 || !is.finite(tol) || is.null(x) || nrow(x) < 16L) return(k0)
  g <- tryCatch(raw_gradient(potential, x), error = function(e) NULL)
  if (is.null(g)) return(k0)
  ok <- is.finite(rowSums(g)) & is.finite(rowSums(x))
  x <- x[ok, , drop = FALSE]
  g <- g[ok, , drop = FALSE]
  if (nrow(x) < 16L) return(k0)
  m <- colMeans(x)
  xc <- sweep(x, 2L, m)
  v <- colMeans(xc^2)
  gm <- colMeans(g)
  a <- colMeans(sweep(g, 2L, gm) * xc) / v
  if (any(!is.finite(a))) return(k0)   # v = 0 too
  err <- function(k) sum(jko_gauss_error(m, v, gm, a, dt, k, beta))
  k <- k0
  while (k < 16L * k0 && err(k) > tol) k <- k + 1L
  k
}

# The JKO scheme on a linear drift, coordinate by coordinate (vectors m, v,
# g, a): for grad Phi(y) = g + a (y - m) near N(m, v), a step of length h
# maps N(m, v) to N(m', M^2 v), where m' = m - h g / (1 + h a) and M > 0
# solves (1 + h a) M^2 - M - h / (beta v) = 0 (the optimality condition of
# the step, T(x) = x - h grad Phi(T(x)) - (h / beta) grad log rho'(T(x)),
# for an affine T(x) = m' + M (x - m)). The exact law at dt is the
# Ornstein-Uhlenbeck one: mean m - g (1 - exp(-a dt)) / a, variance
# 1 / (beta a) + (v - 1 / (beta a)) exp(-2 a dt) (m - g dt, v + 2 dt / beta
# for a = 0). Returns the symmetric KL between the two laws after k steps
# of dt / k (Inf where 1 + h a <= 0: the step is not convex there).
jko_gauss_error <- function(m, v, g, a, dt, k, beta) {
  h <- dt / k
  if (any(1 + h * a <= 0)) return(Inf)
  ms <- m
  vs <- v
  gs <- g
  for (i in seq_len(k)) {
    d <- -h * gs / (1 + h * a)
    ms <- ms + d
    gs <- gs + a * d
    M <- (1 + sqrt(1 + 4 * (1 + h * a) * h / (beta * vs))) / (2 * (1 + h * a))
    vs <- M^2 * vs
  }
  small <- abs(a * dt) < 1e-8
  as <- ifelse(small, 1, a)
  me <- ifelse(small, m - g * dt, m - g * (1 - exp(-as * dt)) / as)
  ve <- ifelse(small, v + 2 * dt / beta,
               1 / (beta * as) + (v - 1 / (beta * as)) * exp(-2 * as * dt))
  0.5 * (vs / ve + ve / vs - 2) + 0.5 * (ms - me)^2 * (1 / vs + 1 / ve)
}

# For a Gaussian likelihood, where the observation lies against the
# predicted law (draws `cur_draws`): ", the observation is z sds of the law
# away, its noise sd r times the law's" for the coordinate of largest z.
lik_scale_text <- function(lik, cur_draws, y, sd, gaussian) {
  if (!gaussian || is.null(cur_draws) || nrow(cur_draws) < 2L) return("")
  m <- colMeans(cur_draws)
  s <- apply(cur_draws, 2L, stats::sd)
  z <- abs(y - m) / s
  r <- rep_len(sd, length(y)) / s
  i <- which.max(pmax(z, 1 / r))
  sprintf("; in coordinate %d the observation is %.3g sds of the law from its mean and the noise sd %.3g times the law's",
          i, z[i], r[i])
}

# log N(y; x, sd^2 I), normalised (so that the evidence of an update is
# the density of y), and its gradient in x. (Closures
# over y and sd only, so that a saved fit does not carry the caller.)
gaussian_loglik <- function(y, sd) {
  force(y)
  s2 <- rep_len(sd, length(y))^2
  const <- -0.5 * sum(log(2 * pi * s2))
  list(value = function(x) const - 0.5 * colSums((t(x) - y)^2 / s2),
       gradient = function(x) t(-(t(x) - y) / s2))
}

user_loglik <- function(loglik, y) {
  force(loglik)
  force(y)
  list(value = function(x) loglik(x, y), gradient = NULL)
}

#' @export
print.jko_filter <- function(x, ...) {
  check_dots(...)
  J <- length(x$fits)
  cat(sprintf("JKO filter: %d observation%s in [%g, %g]%s, dimension %d\n", J,
              if (J == 1L) "" else "s", x$times[1L], x$times[J],
              if (is.null(x$final)) "" else sprintf(", predicted to t = %g", x$t_end), x$dim))
  cat(sprintf("  potential: %s\n", x$potential$label))
  tab <- x$table
  tab[c("y", "mean", "sd")] <- lapply(tab[c("y", "mean", "sd")], signif, 4)
  tab$update_kl <- signif(tab$update_kl, 2)
  tab$log_evidence <- signif(tab$log_evidence, 4)
  tab$update_ess <- signif(tab$update_ess, 2)
  tab$seconds <- round(tab$seconds, 1)
  print(tab, row.names = FALSE)
  cat(sprintf("  %.1f s in all; the filtering laws are fits: $fits[[j]]%s\n",
              sum(x$table$seconds) + if (is.null(x$final)) 0 else sum(x$final$history$seconds),
              if (is.null(x$final)) "" else sprintf(", the law at t = %g: $final", x$t_end)))
  invisible(x)
}

#' Plot a filter
#'
#' `"density"` (dimension 1): the filtering densities at the observation
#' times (and the predictive density at `t_end`), each with its
#' observation marked on the axis; `"path"`: the filtering mean of the
#' first coordinate with a band of two sds, and the observations.
#'
#' @param x A `"jko_filter"`.
#' @param what `"density"` or `"path"`.
#' @param which For `"density"`: the indices of the observation times to
#'   draw (default all).
#' @param n Number of points of each density curve.
#' @param ... Passed to [plot.default()].
#' @return `x`, invisibly.
#' @export
plot.jko_filter <- function(x, what = c("density", "path"), which = NULL, n = 200, ...) {
  what <- choose_arg(what, c("density", "path"), "what")
  n <- check_count(n, "n", min = 2)
  tab <- x$table
  if (what == "path" || x$dim > 1L) {
    lo <- tab$mean - 2 * tab$sd
    hi <- tab$mean + 2 * tab$sd
    graphics::plot(tab$time, tab$mean, type = "b", pch = 19, ylim = range(lo, hi, x$y[, 1L]),
                   xlab = "time", ylab = "state (first coordinate)", ...)
    graphics::polygon(c(tab$time, rev(tab$time)), c(lo, rev(hi)),
                      col = grDevices::adjustcolor("steelblue", 0.25), border = NA)
    graphics::points(x$times, x$y[, 1L], pch = 4, col = "firebrick")
    graphics::legend("topright", c("filtering mean", "+/- 2 sd", "observations"),
                     pch = c(19, 15, 4), col = c("black", grDevices::adjustcolor("steelblue", 0.4),
                                                  "firebrick"), bty = "n")
    return(invisible(x))
  }
  J <- length(x$fits)
  if (is.null(which)) which <- seq_len(J)
  if (!is.numeric(which) || anyNA(which) || any(!which %in% seq_len(J))) {
    abort("`which` must be indices of observation times in 1..%d, not %s.", J, describe(which))
  }
  laws <- lapply(which, function(j) list(fit = x$fits[[j]], time = x$times[j], y = x$y[j, 1L]))
  if (!is.null(x$final)) laws <- c(laws, list(list(fit = x$final, time = x$t_end, y = NA)))
  ys <- vapply(laws, function(l) l$y, numeric(1))
  r <- range(unlist(lapply(laws, function(l) {
    stats::quantile(l$fit$monitor$points[, 1L], c(0.001, 0.999))
  })), ys, na.rm = TRUE)
  grid <- seq(r[1L] - 0.1 * diff(r), r[2L] + 0.1 * diff(r), length.out = n)
  dens <- vapply(laws, function(l) as.numeric(jko_density(l$fit, grid)), numeric(n))
  cols <- grDevices::hcl.colors(length(laws), "viridis")
  graphics::matplot(grid, dens, type = "l", lty = 1, col = cols, xlab = "x",
                    ylab = "filtering density", ...)
  graphics::rug(ys[!is.na(ys)], col = cols[!is.na(ys)], lwd = 2)
  graphics::legend("topright", sprintf("t = %g", vapply(laws, function(l) l$time, numeric(1))),
                   col = cols, lty = 1, bty = "n", cex = 0.8)
  invisible(x)
}
