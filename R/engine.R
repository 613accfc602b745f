# The engine of a flow: steps run one after another, each in one call into
# C (c_step(): train the step's map on a pool of draws of rho_{k-1}, then
# push the pool and the monitor samples through it), with the bookkeeping
# of each step's result, and the classed error that keeps completed steps.

#' The last fit, complete or not
#'
#' Every call of [jko_fit()] or [jko_continue()] records its fit as it goes,
#' so the steps completed before an error or an interrupt are never lost. A
#' fit that fails before its first step records nothing (and clears what an
#' earlier fit recorded).
#'
#' @return The last `"jko_fit"` (possibly partial), or `NULL`.
#' @examples
#' jko_last_fit()
#' @export
jko_last_fit <- function() the$last_fit

# The package's one piece of state: the last fit, for jko_last_fit().
the <- new.env(parent = emptyenv())

# Runs steps K+1.. as the schedule says: list(h, steps), either NULL where
# a stationary flow chooses (see next_h() and stop_reason()). The pool of
# rho_K samples, `pool` (rows; with the log-densities `pool_ld` where the
# energy needs them), is drawn from rho_0 and pushed through the K existing
# maps once unless given, then pushed through each new map. The map of the
# first new step starts from that of step K, or, for a fit of no step, from
# a new network. The pool, the first network and the training of step k
# each come from their own stream of the fit's seed (R/streams.R), so a
# fit continued from step K is the fit that would have run on from there.
# Returns list(fit, pool, pool_ld): the fit and the pool of its last law.
jko_run <- function(fit, schedule, threads, verbose, pool = NULL, pool_ld = NULL) {
  K0 <- length(fit$theta)
  budget <- if (is.null(schedule$steps)) fit$settings$max_steps else schedule$steps
  # a flow to the stationary law whose start is already a good proposal for
  # its target is not trained, nor one whose training HMC would beat
  if (is.null(schedule$steps) && K0 == 0L) fit <- second_look(fit, threads)  # R/stationary.R
  done <- budget == 0L ||
    (is.null(schedule$steps) && K0 == 0L && stop_reason(fit) %in% c("reached", "handover"))
  if (done) return(list(fit = fit, pool = pool, pool_ld = pool_ld))
  # (a fit made before jkoflow had streams gets its seed now)
  if (is.null(fit$seed)) fit$seed <- new_seed()
  if (is.null(pool)) {
    pool <- with_stream(fit$seed, "pool",
                        law_draw(fit$init, fit$settings$pool, log_density = FALSE,
                                 threads = threads)$x)
    # a porous-medium energy needs the densities of the pool: carried along
    if (energy_needs_density(fit$potential)) {
      pool_ld <- law_log_density(fit$init, pool, threads = threads)$log_density
    }
    if (K0 > 0L) {
      pushed <- c_push(fit_map_nodes(fit, K0), pool, pool_ld, threads)
      pool <- pushed$x
      pool_ld <- pushed$log_density
    }
  }
  theta <- if (K0 > 0L) fit$theta[[K0]]
           else with_stream(fit$seed, "net", c_icnn_init(fit$net, fit$settings$init_scale %||% 1))
  the$last_fit <- fit
  t_start <- proc.time()[["elapsed"]]
  # a flow that chooses its steps stops at max_time, within a step too
  deadline <- if (is.null(schedule$steps)) t_start + fit$settings$max_time else Inf
  progress <- step_progress(K0, budget, !is.null(schedule$steps), fit$settings$max_time,
                            verbose)
  for (k in K0 + seq_len(budget)) {
    # Anything that stops step k, in C or in R (an interrupt between two
    # calls into C, setTimeLimit()), becomes the same classed error; all the
    # work of a step is inside, only the bookkeeping of its result outside.
    st <- tryCatch({
        h <- if (!is.null(schedule$h)) schedule$h else next_h(fit)
        res <- with_stream(fit$seed, "step", k = k,
                           jko_step(fit, k, theta, pool, h, threads, verbose, pool_ld,
                                    max(1e-3, deadline - proc.time()[["elapsed"]])))
        progress(res$fit, k)
        res$stop <- is.null(schedule$steps) &&
          (!is.na(stop_reason(res$fit)) ||
           proc.time()[["elapsed"]] - t_start > fit$settings$max_time)
        res
      },
      error = function(e) {
        if (inherits(e, "jkoflow_error_fit")) stop(e)
        msg <- conditionMessage(e)
        # the potential failed on the monitor samples, after training
        if (identical(e$iter, -1L)) msg <- paste("estimating the free energy after training:", msg)
        step_failed(k, msg, e)
      },
      interrupt = function(e) step_failed(k, "interrupted by the user.", e))
    fit <- st$fit
    theta <- st$theta
    pool <- st$pool
    pool_ld <- st$pool_ld
    the$last_fit <- fit
    if (is.null(schedule$steps) && !st$stop) {
      # (outside the step: an interrupt here keeps step k)
      fit <- tryCatch(second_look(fit, threads), interrupt = function(e) {
        step_failed(k + 1L, "interrupted by the user.", e)
      })
      st$stop <- !is.na(stop_reason(fit))
      the$last_fit <- fit
    }
    if (st$stop) break
  }
  accuracy_warning(fit, K0)
  list(fit = fit, pool = pool, pool_ld = pool_ld)
}

# Step k from the map theta (that of step k-1) and the pool of rho_{k-1}
# samples, in one call into C (src/train.c: jko_step): the new fit, map and
# pool. The network of step k is standardised by the centre and scale (or,
# for a stationary flow, the covariance) of the pool (of rho_0 for the first
# step). Its training ends after `time_limit` seconds.
jko_step <- function(fit, k, theta, pool, h, threads, verbose = FALSE, pool_ld = NULL,
                     time_limit = Inf) {
  s <- fit$settings
  t0 <- proc.time()[["elapsed"]]
  stationary <- isTRUE(fit$stationary)
  res <- c_step(fit$net, theta, pool, fit$monitor$points, fit$monitor$log_density,
                fit$potential,
                list(h = h, beta = fit$beta, iters = s$iters, batch = s$batch,
                     lr = s$lr, lr_end = s$lr_end,
                     adaptive = if (is.null(s$adaptive)) stationary else s$adaptive,
                     whiten = stationary, pool_log_density = pool_ld,
                     time_limit = time_limit),
                if (k == 1L) fit$start_std else NULL, threads,
                if (verbose && interactive()) k else 0L)
  # a time-accurate step that moves the law by a sd or more and whose law
  # is far from the closed-form step of the problem's Gaussian
  # linearisation is trained again from its own map, at most twice,
  # keeping the closest (step_check())
  chk <- if (res$status == "ok") step_check(fit, h, pool, res$pool)
  rounds <- 0L
  iters_all <- res$iters
  while (!is.null(chk) && chk$flag && chk$large && rounds < 2L) {
    rounds <- rounds + 1L
    again <- c_step(fit$net, res$theta, pool, fit$monitor$points, fit$monitor$log_density,
                    fit$potential,
                    list(h = h, beta = fit$beta, iters = s$iters, batch = s$batch,
                         lr = s$lr, lr_end = s$lr_end,
                         adaptive = if (is.null(s$adaptive)) stationary else s$adaptive,
                         whiten = stationary, pool_log_density = pool_ld),
                    if (k == 1L) fit$start_std else NULL, threads,
                    if (verbose && interactive()) k else 0L)
    if (again$status != "ok") break
    iters_all <- iters_all + again$iters
    chk2 <- step_check(fit, h, pool, again$pool)
    if (is.null(chk2)) break
    if (chk2$gap < chk$gap) {
      res <- again
      chk <- chk2
    }
  }
  res$iters <- iters_all
  if (res$status != "ok") {
    hint <- "try a smaller `lr` or `h`"
    if (is_target(fit$potential) && !stationary) {
      # a start far from the posterior (a prior's heavy tails) strains the maps
      hint <- paste0(hint, ", or start near the posterior: ",
                     "`init = init_laplace(potential)`")
    }
    where <- if (res$iter > 0L) sprintf(" at iteration %d", res$iter)
             else " at the monitor samples, after training"
    step_failed(k, sprintf("%s%s; %s.", jko_status_message(res$status, res$loss, res$iter),
                           where, hint))
  }
  fit$std[[k]] <- if (is.null(res$L)) list(center = res$center, scale = res$scale)
                  else list(center = res$center, L = res$L)
  fit$theta[[k]] <- res$theta
  fit$loss_trace[[k]] <- res$loss
  fit$monitor <- list(points = res$monitor, log_density = res$monitor_log_density,
                      phi = res$monitor_potential)
  fe <- step_free_energy(fit$potential, res$monitor_potential, res$monitor_log_density,
                         fit$beta)
  loss <- res$loss
  tail_loss <- mean(utils::tail(loss, max(1L, length(loss) %/% 10L)))
  secs <- proc.time()[["elapsed"]] - t0
  prev <- fit$history[nrow(fit$history), ]
  fit$history <- rbind(fit$history, cbind(
    data.frame(step = k, time = if (stationary) prev$time + h else k * h, h = h,
               iters = res$iters,
               loss = tail_loss, free_energy = fe, seconds = secs),
    target_divergence(if (inherits(fit$potential, "jko_energy")) NA_real_
                      else res$monitor_potential, res$monitor_log_density, fit$beta,
                      res$monitor)))
  if (!is.null(chk)) {
    fit$accuracy <- rbind(fit$accuracy[fit$accuracy$step < k, , drop = FALSE],
                          data.frame(step = k, shift = chk$shift, sd_ratio = chk$sd_ratio,
                                     gap = chk$gap, retrained = rounds, flagged = chk$flag))
  }
  list(fit = fit, theta = res$theta, pool = res$pool, pool_ld = res$pool_log_density)
}

# The time accuracy of a trained step of a time-accurate flow on a
# potential, from the step's own pool: `before` (draws of rho_{k-1}, rows)
# and `after` (their images; the pool, far larger than the monitor, sees
# the rare far points a map can make). For each coordinate the problem is
# linearised around rho_{k-1} as in filter_steps() (the mean and variance
# of x_i, the mean of dPhi/dx_i and its regression slope on x_i), where a
# JKO step has a closed form (jko_gauss_error()); that step is first-order
# exact for the mean and variance of any law, and exact for a Gaussian under
# a quadratic potential. list(shift (the closed form's move of the mean, in
# sds of rho_{k-1}; the largest over coordinates), sd_ratio (its sd over the
# law's, in the coordinate of the largest gap), gap (the symmetric KL
# between N(mean, var) of the images and the closed form's, largest over
# coordinates), flag (a gap above `tol` in a step that moves the law by a
# quarter of an sd or more: its mean in sds plus the log of its sd's
# factor), large (a move of 1 or more: such a step is trained again));
# NULL where there is nothing to compare (a stationary flow, an energy or a
# target, fewer than 500 draws (too few for the regression), a
# gradient that fails or is not finite, a degenerate law, a step that is
# not convex on the linearisation).
step_check <- function(fit, h, before, after, tol = step_gap_tol) {
  pot <- fit$potential
  if (isTRUE(fit$stationary) || !inherits(pot, "jko_potential") || is_target(pot)) return(NULL)
  if (is.null(before) || is.null(after) || nrow(before) < 500L ||
      !identical(dim(before), dim(after))) {
    return(NULL)
  }
  # (at most 2^15 of them: the pool is in random order, and a user's
  # gradient is evaluated on all that are taken)
  if (nrow(before) > 32768L) {
    before <- before[seq_len(32768L), , drop = FALSE]
    after <- after[seq_len(32768L), , drop = FALSE]
  }
  g <- tryCatch(raw_gradient(pot, before), error = function(e) NULL)
  if (is.null(g) || !identical(dim(g), dim(before)) || any(!is.finite(g))) return(NULL)
  m0 <- colMeans(before)
  xc <- sweep(before, 2L, m0)
  v0 <- colMeans(xc^2)
  gm <- colMeans(g)
  a <- colMeans(sweep(g, 2L, gm) * xc) / v0
  if (any(!is.finite(a)) || any(!(v0 > 0)) || any(1 + h * a <= 0)) return(NULL)
  mp <- m0 - h * gm / (1 + h * a)
  M <- (1 + sqrt(1 + 4 * (1 + h * a) * h / (fit$beta * v0))) / (2 * (1 + h * a))
  vp <- M^2 * v0
  m1 <- colMeans(after)
  v1 <- colMeans(sweep(after, 2L, m1)^2)
  if (any(!is.finite(v1)) || any(!(v1 > 0))) return(NULL)
  gap <- 0.5 * (v1 / vp + vp / v1 - 2) + 0.5 * (m1 - mp)^2 * (1 / v1 + 1 / vp)
  shift <- abs(mp - m0) / sqrt(v0)
  move <- max(shift + abs(log(vp / v0)) / 2)
  i <- which.max(gap)
  list(shift = max(shift), sd_ratio = sqrt(vp[i] / v0[i]), got_ratio = sqrt(v1[i] / v0[i]),
       gap = gap[i], coord = i, flag = gap[i] > tol && move >= 0.25, large = move >= 1)
}

# The largest symmetric KL between a step's law and the closed form that
# passes: an sd 10% off, or a mean 0.2 sd off.
step_gap_tol <- 0.02

# The warning of a time-accurate flow with steps that step_check() flagged
# even after training them again: which, by how much, and what to do.
accuracy_warning <- function(fit, from) {
  acc <- fit$accuracy
  if (is.null(acc)) return(invisible())
  bad <- acc[acc$step > from & acc$flagged, , drop = FALSE]
  if (!nrow(bad)) return(invisible())
  w <- bad[which.max(bad$gap), ]
  steps <- if (nrow(bad) <= 6L) paste(bad$step, collapse = ", ")
           else paste(c(bad$step[1:5], "..."), collapse = ", ")
  warning(sprintf(paste0(
    "the flow is not time-accurate at step%s %s: the law of the trained map is %.3g in ",
    "symmetric KL (tolerance %g) from the closed-form JKO step of the problem's Gaussian ",
    "linearisation, which moves the mean by %.3g sds and the sd by a factor %.3g there ",
    "(step %d)%s. Use a smaller `h` (more steps) or more `iters` (fit$accuracy has every ",
    "step's figures)."),
    if (nrow(bad) == 1L) "" else "s", steps, w$gap, step_gap_tol, w$shift, w$sd_ratio, w$step,
    if (w$retrained > 0L) sprintf(", even after training the step %d more time%s",
                                  w$retrained, if (w$retrained == 1L) "" else "s") else ""),
    call. = FALSE)
}

# The error of a failed step k: it carries the fit of steps 1..k-1.
step_failed <- function(k, msg, parent = NULL) {
  done <- k - 1L
  kept <- if (done == 0L) "No step was completed" else
    sprintf("The %d completed step%s %s kept: jko_last_fit() returns %s", done,
            if (done == 1L) "" else "s", if (done == 1L) "is" else "are",
            if (done == 1L) "it" else "them")
  abort("JKO step %d failed: %s\n%s; jko_continue() resumes from %s.", k, msg, kept,
        if (done == 0L) "jko_last_fit()" else "there",
        class = "jkoflow_error_fit", call = NULL,
        data = list(fit = the$last_fit, step = k, parent = parent))
}

# Centre and scale (one number, so that |y - x|^2 keeps its form) of rho_0,
# or with `whiten` centre and L, the Cholesky factor of the covariance:
# exact for a Gaussian base with no node, else those of its samples x
# (rows).
standardisation <- function(law, x, whiten = FALSE) {
  base <- law$base
  exact <- !length(law$nodes) && !is.null(base$mean) && !is.null(base$cov)
  if (whiten) {
    if (exact) return(list(center = as.double(base$mean), L = t(chol(base$cov))))
    return(c_moments(x, TRUE))
  }
  if (!exact) return(c_moments(x, FALSE))
  scale <- sqrt(mean(diag(base$cov)))
  if (!is.finite(scale) || scale <= 0) scale <- 1
  list(center = as.double(base$mean), scale = as.double(scale))
}
