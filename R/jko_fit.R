#' Fit a Fokker-Planck flow with the JKO scheme
#'
#' Computes the law \eqn{\rho_t} of the diffusion
#' \eqn{dX = -\nabla\Phi(X)\,dt + \sqrt{2/\beta}\,dW}{dX = -grad Phi(X) dt + sqrt(2/beta) dW},
#' \eqn{X_0 \sim \rho_0}, at the times \eqn{t = kh}, \eqn{k = 1, \dots,}
#' `steps`, as the Wasserstein gradient flow of the free energy
#' \eqn{F(\rho) = \int\Phi\,d\rho + \beta^{-1}\int\rho\log\rho}. Each JKO step
#' \eqn{\rho_k = \arg\min_\rho F(\rho) + W_2^2(\rho_{k-1}, \rho)/(2h)} is the
#' push-forward of \eqn{\rho_{k-1}} by the gradient of an input-convex neural
#' network \eqn{\psi_k} (see [icnn()]), trained by Adam on the loss
#' \deqn{\frac{1}{N}\sum_i \frac{|\nabla\psi(x_i) - x_i|^2}{2h} +
#'   \Phi(\nabla\psi(x_i)) - \beta^{-1}\log\det\nabla^2\psi(x_i)}{mean |grad psi(x) - x|^2 / (2h) + Phi(grad psi(x)) - log det Hess psi(x) / beta}
#' over batches \eqn{x_i \sim \rho_{k-1}} (Mokrov et al., 2021).
#'
#' Each network starts from the previous one (the identity for the first),
#' with a fresh optimiser, and acts on coordinates standardised by the centre
#' and scale of \eqn{\rho_{k-1}} (an exact change of variables), so that a
#' flow that contracts by orders of magnitude, from a diffuse prior to a
#' posterior, keeps the network's resolution where the mass is. A batch whose
#' loss is a million times the step's first (a rare far-out sample of a
#' heavy-tailed \eqn{\rho_{k-1}}) is skipped, and outsized gradients are
#' clipped; five such batches in a row stop the fit as diverged. Samples of \eqn{\rho_{k-1}} come from a pool of
#' `pool` draws from \eqn{\rho_0} pushed once through each new map, so a step
#' costs the same whatever its number. The free energy is estimated after each
#' step on `monitor` samples with their exact log-densities.
#'
#' An error in a user's potential, a divergence or an interrupt stops the fit
#' with an error of class `"jkoflow_error_fit"` whose `fit` element holds the
#' steps already completed; [jko_last_fit()] returns them too and
#' [jko_continue()] resumes from them.
#'
#' @param potential A potential: see [potentials].
#' @param init The initial distribution: see [init_gaussian()]. For a
#'   [target_logistic()] it defaults to the prior, cut at
#'   \eqn{\log\alpha \ge -8} ([init_prior()]).
#' @param h JKO time step, a positive number.
#' @param steps Number of JKO steps.
#' @param beta Inverse temperature \eqn{\beta}.
#' @param hidden,rank Widths of the network's layers and rank of its
#'   quadratic terms (see [icnn()]).
#' @param batch Samples per training iteration.
#' @param iters Adam iterations per JKO step.
#' @param lr Adam learning rate at the start of each step.
#' @param lr_end Learning rate at the end of each step: the rate is annealed
#'   from `lr` to `lr_end` along a half cosine, which averages out the batch
#'   noise of the last iterations (`lr_end = lr` keeps it constant).
#' @param threads Number of threads for the per-sample work (clamped to the
#'   machine's cores).
#' @param verbose Print a line per step (and, in an interactive session, the
#'   progress of the iterations within each step)?
#' @param pool Number of samples in the pool (default `min(iters * batch,
#'   2^18)`).
#' @param monitor Number of samples used to estimate the free energy.
#' @param ... Passed to [icnn()]: `activation`, `alpha_min`.
#' @return An object of class `"jko_fit"`: a list with the `call`, the
#'   `potential`, `init`, settings, the parameter vectors of the networks
#'   (`theta`, one per step), the per-step table `steps` (time, loss, free
#'   energy, seconds) and the loss of every iteration (`loss_trace`).
#' @references Mokrov, P., Korotin, A., Li, L., Genevay, A., Solomon, J. and
#'   Burnaev, E. (2021). Large-scale Wasserstein gradient flows. *Advances in
#'   Neural Information Processing Systems* 34.
#' @seealso [jko_sample()], [jko_density()], [jko_continue()].
#' @examples
#' set.seed(1)
#' # Ornstein-Uhlenbeck in 2-D from N(0, 4 I): small settings for speed
#' fit <- jko_fit(potential_quadratic(diag(2), b = c(1, 0)),
#'                init_gaussian(c(0, 0), 4), h = 0.2, steps = 3,
#'                hidden = c(16, 16), batch = 256, iters = 200)
#' fit
#' # the JKO scheme's mean after 3 steps: (1 - 1.2^-3, 0) = (0.42, 0)
#' colMeans(as.matrix(jko_sample(fit, 4000)))
#' @export
jko_fit <- function(potential, init, h = 0.1, steps = 10, beta = 1,
                    hidden = c(64, 64), rank = 5, batch = 1024, iters = 500,
                    lr = 5e-3, lr_end = lr / 100, threads = 1,
                    verbose = interactive(), pool = NULL, monitor = 2048, ...) {
  call <- match.call()
  check_potential(potential)
  # targets that carry a prior (target_logistic()) start from it by default
  if (missing(init) && !is.null(potential[["init"]])) init <- potential[["init"]]
  check_init(init)
  D <- init$dim
  if (!is.na(potential$dim) && potential$dim != D) {
    abort("`potential` has dimension %d but `init` has dimension %d.", potential$dim, D)
  }
  h <- check_positive(h, "h")
  steps <- check_count(steps, "steps")
  beta <- check_positive(beta, "beta")
  batch <- check_count(batch, "batch")
  iters <- check_count(iters, "iters")
  lr <- check_positive(lr, "lr")
  lr_end <- check_positive(lr_end, "lr_end")
  threads <- check_threads(threads)
  verbose <- check_flag(verbose, "verbose")
  pool <- if (is.null(pool)) min(iters * batch, 2^18) else check_count(pool, "pool")
  monitor <- check_count(monitor, "monitor")
  net <- icnn(D, hidden, rank, ...)
  net$theta <- NULL

  mon <- init$sample(monitor)
  mon_ld <- if (is.null(init$logdensity)) rep(NA_real_, monitor)
            else init_logdensity(init, mon)
  # The network of step k acts on (x - center_k) / scale_k, the centre and
  # scale of rho_{k-1} (exact for rho_0 = init_gaussian(), estimated from the
  # pool otherwise): rho_0 far from the origin (1e6) or widely spread, and a
  # flow that contracts by orders of magnitude (a diffuse prior to a
  # posterior), meet each network as N(0, I) would.
  std <- standardisation(init, mon)
  net$center <- std$center
  net$scale <- std$scale
  fit <- structure(list(
    call = call, potential = potential, init = init, dim = D, h = h, beta = beta,
    net = net,
    settings = list(batch = batch, iters = iters, lr = lr, lr_end = lr_end,
                    pool = pool,
                    monitor = monitor, threads = threads),
    theta = list(),
    std = list(),
    steps = data.frame(step = 0L, time = 0, loss = NA_real_,
                       free_energy = free_energy(potential, mon, mon_ld, beta),
                       seconds = 0),
    loss_trace = list(),
    monitor = list(x = mon, log_density = mon_ld)
  ), class = "jko_fit")
  jko_run(fit, steps, theta0 = .Call(C_icnn_init, arch(net), net$alpha_min),
          verbose = verbose)
}

#' Continue a flow
#'
#' Adds JKO steps to a fit, from its last step: after a fit that ran to
#' completion, or one stopped by an error or an interrupt (see
#' [jko_last_fit()]).
#'
#' @param fit A `"jko_fit"`.
#' @param steps Number of further steps.
#' @param verbose Print a line per step?
#' @param threads Number of threads (default: the fit's).
#' @return The extended `"jko_fit"`.
#' @examples
#' set.seed(1)
#' fit <- jko_fit(potential_double_well(), init_gaussian(0, 0.25), h = 0.1,
#'                steps = 2, hidden = c(8, 8), batch = 128, iters = 40)
#' fit <- jko_continue(fit, 1)
#' nrow(summary(fit)$steps)
#' @export
jko_continue <- function(fit, steps = 1, verbose = interactive(), threads = NULL) {
  check_fit(fit)
  steps <- check_count(steps, "steps")
  verbose <- check_flag(verbose, "verbose")
  if (!is.null(threads)) fit$settings$threads <- check_threads(threads)
  K <- length(fit$theta)
  theta0 <- if (K > 0L) fit$theta[[K]] else .Call(C_icnn_init, arch(fit$net), fit$net$alpha_min)
  jko_run(fit, steps, theta0 = theta0, verbose = verbose)
}

#' The last fit, complete or not
#'
#' Every call of [jko_fit()] or [jko_continue()] records its fit as it goes,
#' so the steps completed before an error or an interrupt are never lost.
#'
#' @return The last `"jko_fit"` (possibly partial), or `NULL`.
#' @examples
#' jko_last_fit()
#' @export
jko_last_fit <- function() the$last_fit

the <- new.env(parent = emptyenv())

# Runs steps K+1..K+steps. The pool of rho_K samples is drawn from rho_0 and
# pushed through the K existing maps once, then through each new map.
jko_run <- function(fit, steps, theta0, verbose) {
  s <- fit$settings
  K0 <- length(fit$theta)
  pool <- to_cols(fit$init$sample(s$pool))
  for (j in seq_len(K0)) pool <- push(step_net(fit, j), fit$theta[[j]], pool, s$threads)$y
  theta <- theta0
  the$last_fit <- fit
  for (k in K0 + seq_len(steps)) {
    # Anything that stops step k, in C or in R (an interrupt between two
    # calls into C, setTimeLimit()), becomes the same classed error.
    st <- tryCatch(jko_step(fit, k, theta, pool, verbose),
      error = function(e) {
        if (inherits(e, "jkoflow_error_fit")) stop(e)
        step_failed(k, conditionMessage(e), e)
      },
      interrupt = function(e) step_failed(k, "interrupted by the user.", e))
    fit <- st$fit
    theta <- st$theta
    pool <- st$pool
    the$last_fit <- fit
    if (verbose) {
      last <- fit$steps[nrow(fit$steps), ]
      message(sprintf("step %3d/%d  t = %-6g loss %10.4f  free energy %10.4f  (%.1f s)",
                      k, K0 + steps, k * fit$h, last$loss, last$free_energy,
                      last$seconds))
    }
  }
  fit
}

# Step k from the map theta (that of step k-1) and the pool of rho_{k-1}
# samples: the new fit, map and pool. The network of step k is standardised
# by the centre and scale of the pool (of rho_0's for the first step).
jko_step <- function(fit, k, theta, pool, verbose = FALSE) {
  s <- fit$settings
  t0 <- proc.time()[["elapsed"]]
  fit$std[[k]] <- if (k == 1L) list(center = fit$net$center, scale = fit$net$scale)
                  else pool_standardisation(pool)
  net <- step_net(fit, k)
  z <- standardise(net, pool)
  res <- run_step(fit, net, k, theta, z,
                  progress = if (verbose && interactive()) k else 0L)
  theta <- res[[1L]]
  pool <- unstandardise(net, map_std(net, theta, z, s$threads)$y)
  rm(z)
  # The free energy calls a user's potential again: say so when it fails.
  mon <- push(net, theta, to_cols(fit$monitor$x), s$threads, logdet = TRUE)
  mon_x <- t(mon$y)
  mon_ld <- fit$monitor$log_density - mon$logdet
  fe <- tryCatch(free_energy(fit$potential, mon_x, mon_ld, fit$beta),
    error = function(e) {
      step_failed(k, paste("estimating the free energy after training:",
                           conditionMessage(e)), e)
    })
  fit$monitor$x <- mon_x
  fit$monitor$log_density <- mon_ld
  loss <- res[[2L]]
  fit$theta[[k]] <- theta
  fit$loss_trace[[k]] <- loss
  tail_loss <- mean(utils::tail(loss, max(1L, length(loss) %/% 10L)))
  secs <- proc.time()[["elapsed"]] - t0
  fit$steps <- rbind(fit$steps, data.frame(step = k, time = k * fit$h,
                                           loss = tail_loss, free_energy = fe,
                                           seconds = secs))
  list(fit = fit, theta = theta, pool = pool)
}

# The training of step k in C. R errors (a user's potential) and interrupts
# unwind through it to jko_run(); a failure status becomes the classed error.
run_step <- function(fit, net, k, theta, pool, progress = 0L) {
  # In standardised coordinates z = (x - center) / scale the loss is the
  # same with h / scale^2 and Phi(center + scale * y) (see push()).
  s <- fit$settings
  spec <- c(potential_spec(fit$potential), list(center = net$center, scale = net$scale))
  res <- .Call(C_jko_train, arch(net), net$alpha_min, theta, pool, spec,
               fit$h / net$scale^2, fit$beta, s$iters, s$batch, c(s$lr, s$lr_end),
               s$threads, as.integer(progress))
  if (res[[3L]] != 0L) {
    it <- res[[4L]]
    what <- switch(as.character(res[[3L]]),
      "1" = "the loss or the parameters became non-finite (NaN or Inf)",
      "2" = "a Hessian lost positive definiteness",
      "4" = sprintf("the loss diverged (from %.4g at iteration 1 to %.4g)",
                    res[[2L]][1L], res[[2L]][it]),
      "the training failed")
    hint <- "try a smaller `lr` or `h`"
    if (inherits(fit$potential, "jko_target_logistic")) {
      # a start far from the posterior (the prior's Student-t tails, or the
      # uncut prior of init_prior(log_alpha_min = -Inf)) strains the maps
      hint <- paste0(hint, ", or start near the posterior: ",
                     "`init = init_laplace(potential)`")
    }
    step_failed(k, sprintf("%s at iteration %d; %s.", what, it, hint))
  }
  res
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

# Push a D x n batch through one map; with logdet, also log det of its Jacobian.
# The map is x -> center + scale * grad psi((x - center) / scale), the
# gradient of scale^2 psi((x - center) / scale) + center'x: its Jacobian is
# the Hessian of psi at the standardised point, so log det is unchanged.
push <- function(net, theta, x, threads, logdet = FALSE) {
  out <- map_std(net, theta, standardise(net, x), threads, logdet)
  list(y = unstandardise(net, out$y), logdet = out$logdet)
}

# The same map on standardised points z: z -> grad psi(z).
map_std <- function(net, theta, z, threads, logdet = FALSE) {
  out <- .Call(C_icnn_eval, arch(net), net$alpha_min, theta, z,
               if (logdet) 1L else 0L, threads)
  list(y = out[[2L]], logdet = out[[3L]])
}

# The inverse map at the columns of y: list(x, residual), the residual
# max |map(x) - y| in the units of y.
pull <- function(net, theta, y, tol, maxit, threads) {
  inv <- .Call(C_icnn_invert, arch(net), net$alpha_min, theta, standardise(net, y),
               tol / net$scale, maxit, threads)
  list(x = unstandardise(net, inv[[1L]]), residual = net$scale * inv[[2L]])
}

# The network of step j: fit$net with that step's centre and scale.
step_net <- function(fit, j) {
  std <- fit$std[[j]]
  fit$net$center <- std$center
  fit$net$scale <- std$scale
  fit$net
}

standardise <- function(net, x) (x - net$center) / net$scale
unstandardise <- function(net, z) z * net$scale + net$center

# Centre and scale (one number, so that |y - x|^2 keeps its form) of a
# D x n pool of samples (columns).
pool_standardisation <- function(pool) {
  center <- rowMeans(pool)
  scale <- sqrt(mean(rowSums((pool - center)^2)) / (ncol(pool) - 1))
  if (!is.finite(scale) || scale <= 0) scale <- 1
  list(center = as.double(center), scale = as.double(scale))
}

# Centre and scale of rho_0: exact for a Gaussian, else those of its samples
# x (n x D).
standardisation <- function(init, x) {
  if (is.null(init$mean) || is.null(init$cov)) return(pool_standardisation(to_cols(x)))
  scale <- sqrt(mean(diag(init$cov)))
  if (!is.finite(scale) || scale <= 0) scale <- 1
  list(center = as.double(init$mean), scale = as.double(scale))
}

# F(rho) = E Phi + E log rho / beta, on samples with their log-densities.
free_energy <- function(potential, x, log_density, beta) {
  phi <- .Call(C_pot_eval, potential_spec(potential), to_cols(x), FALSE)[[1L]]
  mean(phi) + mean(log_density) / beta
}

check_fit <- function(fit, arg = "fit") {
  if (!inherits(fit, "jko_fit")) {
    abort("`%s` must be a fit from jko_fit(), not %s.", arg, describe(fit))
  }
  invisible(fit)
}

# The step k of a fit from `step` or `time` (nearest step to time / h).
resolve_step <- function(fit, step = NULL, time = NULL) {
  K <- length(fit$theta)
  if (!is.null(step) && !is.null(time)) abort("give `step` or `time`, not both.")
  if (!is.null(time)) {
    if (!is.numeric(time) || length(time) != 1L || !is.finite(time) || time < 0) {
      abort("`time` must be a single non-negative number, not %s.", describe(time))
    }
    k <- round(time / fit$h)
    if (k > K || abs(time - k * fit$h) > fit$h / 2 + 1e-12) {
      abort("`time` must be within the fitted range [0, %g] (%d steps of h = %g), not %g.",
            K * fit$h, K, fit$h, time)
    }
    return(as.integer(k))
  }
  if (is.null(step)) return(K)
  if (!is.numeric(step) || length(step) != 1L || !is.finite(step) ||
      step != round(step) || step < 0 || step > K) {
    abort("`step` must be a whole number in 0..%d (the fitted steps), not %s.", K,
          describe(step))
  }
  as.integer(step)
}
