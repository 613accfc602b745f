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
#' @param potential A potential: see [potentials] and [new_potential()].
#' @param init The initial distribution: see [init_gaussian()]. For a
#'   [target_logistic()] it defaults to the prior, cut at
#'   \eqn{\log\alpha \ge -8} ([init_prior()]).
#' @param h JKO time step, a positive number.
#' @param steps Number of JKO steps.
#' @param beta Inverse temperature \eqn{\beta}.
#' @param control Training settings that rarely need changing: see
#'   [jko_control()].
#' @param threads Number of threads for the per-sample work; default the
#'   option `jkoflow.threads` (see [jko_control()]).
#' @param verbose Print a line per step (and, in an interactive session, the
#'   progress of the iterations within each step)?
#' @param ... Settings of [jko_control()] given directly (`hidden`, `rank`,
#'   `batch`, `iters`, `lr`, `lr_end`, `pool`, `monitor`, `activation`,
#'   `alpha_min`), as in earlier versions; they override `control`.
#' @return An object of class `"jko_fit"`: a list with the `call`, the
#'   `potential`, `init`, `h`, `beta`, the network's architecture `net`, the
#'   training `settings` (a [jko_control()]), the parameter vectors of the
#'   networks (`theta`, one per step) and the change of variables of each
#'   step (`std`: `center` and `scale`), the per-step table `history` (step,
#'   time, loss, free energy, seconds) and the loss of every iteration
#'   (`loss_trace`).
#' @references Mokrov, P., Korotin, A., Li, L., Genevay, A., Solomon, J. and
#'   Burnaev, E. (2021). Large-scale Wasserstein gradient flows. *Advances in
#'   Neural Information Processing Systems* 34.
#' @seealso [jko_sample()], [jko_density()], [jko_continue()],
#'   [jko_control()].
#' @examples
#' set.seed(1)
#' # Ornstein-Uhlenbeck in 2-D from N(0, 4 I): small settings for speed
#' fit <- jko_fit(potential_quadratic(diag(2), b = c(1, 0)),
#'                init_gaussian(c(0, 0), 4), h = 0.2, steps = 3,
#'                control = jko_control(hidden = c(16, 16), batch = 256, iters = 200))
#' fit
#' # the JKO scheme's mean after 3 steps: (1 - 1.2^-3, 0) = (0.42, 0)
#' colMeans(as.matrix(jko_sample(fit, 4000)))
#' @export
jko_fit <- function(potential, init, h = 0.1, steps = 10, beta = 1,
                    control = jko_control(), threads = NULL,
                    verbose = interactive(), ...) {
  call <- match.call()
  check_potential(potential)
  control <- update_control(control, list(...))
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
  threads <- resolve_threads(threads)
  verbose <- check_flag(verbose, "verbose")
  net <- icnn(D, control$hidden, control$rank, control$activation, control$alpha_min)
  net$theta <- NULL

  mon <- init$sample(control$monitor)
  mon_ld <- if (is.null(init$log_density)) rep(NA_real_, control$monitor)
            else init_log_density(init, mon)
  fit <- structure(list(
    call = call, potential = potential, init = init, dim = D, h = h, beta = beta,
    net = net, settings = control,
    theta = list(),
    std = list(),
    # The network of step k acts on (x - center_k) / scale_k, the centre and
    # scale of rho_{k-1} (exact for rho_0 = init_gaussian(), estimated from
    # samples otherwise): rho_0 far from the origin (1e6) or widely spread,
    # and a flow that contracts by orders of magnitude (a diffuse prior to a
    # posterior), meet each network as N(0, I) would.
    start_std = standardisation(init, mon),
    history = data.frame(step = 0L, time = 0, loss = NA_real_,
                         free_energy = free_energy(potential, mon, mon_ld, beta),
                         seconds = 0),
    loss_trace = list(),
    # the monitor samples of the last step, one per column, and their
    # log-densities
    monitor = list(points = to_cols(mon), log_density = mon_ld)
  ), class = "jko_fit")
  jko_run(fit, steps, theta0 = .Call(C_icnn_init, arch(net), net$alpha_min),
          threads = threads, verbose = verbose)
}

#' Training settings of a JKO flow
#'
#' The settings of [jko_fit()] that shape each step's network and its
#' training, gathered as [glm.control()] gathers those of [glm()]. The
#' defaults are those of the reference experiments (Mokrov et al., 2021):
#' two layers of width 64, rank 5, 500 Adam iterations of batch 1024.
#'
#' Threads: every function of the package that does per-sample work takes
#' a `threads` argument whose default is the option `jkoflow.threads`
#' (`options(jkoflow.threads = 4)`), itself defaulting to 2, the most that
#' CRAN allows, and never more than the machine's cores or
#' `OMP_THREAD_LIMIT`. In a child process made by `fork()` (as by
#' [parallel::mclapply()]) the compiled code runs single-threaded, since
#' the OpenMP runtime cannot be used safely there.
#'
#' @param hidden,rank Widths of the network's layers and rank of its
#'   quadratic terms (see [icnn()]).
#' @param batch Samples per training iteration.
#' @param iters Adam iterations per JKO step.
#' @param lr Adam learning rate at the start of each step.
#' @param lr_end Learning rate at the end of each step: the rate is annealed
#'   from `lr` to `lr_end` along a half cosine, which averages out the batch
#'   noise of the last iterations (`lr_end = lr` keeps it constant).
#' @param pool Number of samples of \eqn{\rho_{k-1}} that step \eqn{k}
#'   trains on, drawn from \eqn{\rho_0} and pushed once through each new
#'   map (default `min(iters * batch, 2^18)`).
#' @param monitor Number of samples used to estimate the free energy.
#' @param activation,alpha_min The network's activation and lower bound of
#'   its strong convexity (see [icnn()]).
#' @return An object of class `"jko_control"`, a list of the settings.
#' @examples
#' jko_control(hidden = c(32, 32), iters = 200)
#' @export
jko_control <- function(hidden = c(64, 64), rank = 5, batch = 1024, iters = 500,
                        lr = 5e-3, lr_end = lr / 100, pool = NULL, monitor = 2048,
                        activation = "softplus", alpha_min = 1e-4) {
  args <- as.list(match.call())[-1L]
  args <- lapply(args, eval, envir = parent.frame())
  hidden <- check_hidden(hidden)
  rank <- check_count(rank, "rank")
  batch <- check_count(batch, "batch")
  iters <- check_count(iters, "iters")
  lr <- check_positive(lr, "lr")
  lr_end <- check_positive(lr_end, "lr_end")
  pool <- if (is.null(pool)) as.integer(min(iters * batch, 2^18)) else check_count(pool, "pool")
  monitor <- check_count(monitor, "monitor")
  check_activation(activation)
  alpha_min <- check_positive(alpha_min, "alpha_min")
  structure(list(hidden = hidden, rank = rank, batch = batch, iters = iters, lr = lr,
                 lr_end = lr_end, pool = pool, monitor = monitor,
                 activation = activation, alpha_min = alpha_min),
            args = args, class = "jko_control")
}

# The control with settings given directly to jko_fit() (its `...`) on top.
update_control <- function(control, dots, call = sys.call(-1L)) {
  if (!inherits(control, "jko_control")) {
    abort("`control` must be a jko_control(), not %s.", describe(control), call = call)
  }
  if (!length(dots)) return(control)
  known <- names(formals(jko_control))
  bad <- setdiff(names(dots), known)
  if (is.null(names(dots)) || any(names(dots) == "") || length(bad)) {
    abort("unknown argument%s %s: settings are those of jko_control() (%s).",
          if (length(bad) == 1L) "" else "s",
          if (length(bad)) paste0("`", bad, "`", collapse = ", ") else "without a name",
          paste(known, collapse = ", "), call = call)
  }
  args <- attr(control, "args")
  args[names(dots)] <- dots
  do.call(jko_control, args)
}

#' @export
print.jko_control <- function(x, ...) {
  cat(sprintf("JKO training settings: network %s, rank %d, %s; Adam: %d iterations of batch %d per step, lr %g -> %g; pool %d, monitor %d\n",
              paste(x$hidden, collapse = " x "), x$rank, x$activation, x$iters, x$batch,
              x$lr, x$lr_end, x$pool, x$monitor))
  invisible(x)
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
#' @param threads Number of threads (default: the option `jkoflow.threads`,
#'   see [jko_control()]).
#' @return The extended `"jko_fit"`.
#' @examples
#' set.seed(1)
#' fit <- jko_fit(potential_double_well(), init_gaussian(0, 0.25), h = 0.1,
#'                steps = 2, hidden = c(8, 8), batch = 128, iters = 40)
#' fit <- jko_continue(fit, 1)
#' nrow(summary(fit)$history)
#' @export
jko_continue <- function(fit, steps = 1, verbose = interactive(), threads = NULL) {
  check_fit(fit)
  steps <- check_count(steps, "steps")
  verbose <- check_flag(verbose, "verbose")
  threads <- resolve_threads(threads)
  K <- length(fit$theta)
  theta0 <- if (K > 0) fit$theta[[K]] else .Call(C_icnn_init, arch(fit$net), fit$net$alpha_min)
  jko_run(fit, steps, theta0 = theta0, threads = threads, verbose = verbose)
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
jko_run <- function(fit, steps, theta0, threads, verbose) {
  K0 <- length(fit$theta)
  pool <- to_cols(fit$init$sample(fit$settings$pool))
  if (K0 > 0L) pool <- flow_push(fit, K0, pool, NULL, threads)$x
  theta <- theta0
  the$last_fit <- fit
  for (k in K0 + seq_len(steps)) {
    # Anything that stops step k, in C or in R (an interrupt between two
    # calls into C, setTimeLimit()), becomes the same classed error.
    st <- tryCatch(jko_step(fit, k, theta, pool, threads, verbose),
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
    the$last_fit <- fit
    if (verbose) {
      last <- fit$history[nrow(fit$history), ]
      message(sprintf("step %3d/%d  t = %-6g loss %10.4f  free energy %10.4f  (%.1f s)",
                      k, K0 + steps, k * fit$h, last$loss, last$free_energy,
                      last$seconds))
    }
  }
  fit
}

# Step k from the map theta (that of step k-1) and the pool of rho_{k-1}
# samples, in one call into C (src/train.c: jko_step): the new fit, map and
# pool. The network of step k is standardised by the centre and scale of
# the pool (of rho_0 for the first step).
jko_step <- function(fit, k, theta, pool, threads, verbose = FALSE) {
  s <- fit$settings
  t0 <- proc.time()[["elapsed"]]
  res <- .Call(C_jko_step, arch(fit$net), fit$net$alpha_min, theta, pool,
               fit$monitor$points, fit$monitor$log_density, fit$potential,
               list(h = fit$h, beta = fit$beta, iters = s$iters, batch = s$batch,
                    lr = s$lr, lr_end = s$lr_end),
               if (k == 1L) fit$start_std else NULL, threads,
               if (verbose && interactive()) k else 0L)
  if (res$status != "ok") {
    hint <- "try a smaller `lr` or `h`"
    if (inherits(fit$potential, "jko_target_logistic")) {
      # a start far from the posterior (the prior's Student-t tails, or the
      # uncut prior of init_prior(log_alpha_min = -Inf)) strains the maps
      hint <- paste0(hint, ", or start near the posterior: ",
                     "`init = init_laplace(potential)`")
    }
    where <- if (res$iter > 0L) sprintf(" at iteration %d", res$iter)
             else " at the monitor samples, after training"
    step_failed(k, sprintf("%s%s; %s.", jko_status_message(res$status, res$loss, res$iter),
                           where, hint))
  }
  fit$std[[k]] <- list(center = res$center, scale = res$scale)
  fit$theta[[k]] <- res$theta
  fit$loss_trace[[k]] <- res$loss
  fit$monitor <- list(points = res$monitor, log_density = res$monitor_log_density)
  fe <- mean(res$monitor_potential) + mean(res$monitor_log_density) / fit$beta
  loss <- res$loss
  tail_loss <- mean(utils::tail(loss, max(1L, length(loss) %/% 10L)))
  secs <- proc.time()[["elapsed"]] - t0
  fit$history <- rbind(fit$history, data.frame(step = k, time = k * fit$h,
                                               loss = tail_loss, free_energy = fe,
                                               seconds = secs))
  list(fit = fit, theta = res$theta, pool = res$pool)
}

# What a status from C (src/api.c: status_name) means, in words; `loss` and
# `iter` give the figures of a divergence.
jko_status_message <- function(status, loss = NULL, iter = NULL) {
  switch(status,
    nonfinite = "the loss or the parameters became non-finite (NaN or Inf)",
    not_pd = "a Hessian lost positive definiteness",
    diverged = sprintf("the loss diverged (from %.4g at iteration 1 to %.4g)",
                       loss[1L], loss[iter]),
    no_convergence = "the inversion of a map did not converge",
    "the training failed")
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

# The maps of steps 1..k as C reads them: list(theta, center, scale) each.
fit_maps <- function(fit, k) {
  lapply(seq_len(k), function(j) c(list(theta = fit$theta[[j]]), fit$std[[j]]))
}

# Push the columns of x (D x n) through the maps of steps 1..k; with
# log_density (n numbers), carry it along. A Hessian that is not positive
# definite at some points gives NA log-densities there, with a warning.
flow_push <- function(fit, k, x, log_density, threads) {
  out <- .Call(C_flow_push, arch(fit$net), fit$net$alpha_min, fit_maps(fit, k), x,
               log_density, threads)
  if (out$status != "ok") {
    bad <- is.nan(out$log_density)
    warning(sprintf("%s in the map of step %d at %d of %d points: their log-densities are NA.",
                    jko_status_message(out$status), out$step, sum(bad), length(bad)),
            call. = FALSE)
    out$log_density[bad] <- NA_real_
  }
  out
}

# Centre and scale (one number, so that |y - x|^2 keeps its form) of rho_0:
# exact for a Gaussian, else those of its samples x (n x D).
standardisation <- function(init, x) {
  if (is.null(init$mean) || is.null(init$cov)) return(.Call(C_moments, to_cols(x)))
  scale <- sqrt(mean(diag(init$cov)))
  if (!is.finite(scale) || scale <= 0) scale <- 1
  list(center = as.double(init$mean), scale = as.double(scale))
}

# F(rho) = E Phi + E log rho / beta, on samples (n x D) with their log-densities.
free_energy <- function(potential, x, log_density, beta) {
  phi <- .Call(C_pot_eval, potential, to_cols(x), FALSE)$value
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
