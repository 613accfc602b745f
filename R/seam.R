# The seam between R and C, and the one place that knows both layouts.
#
# In R a batch of points is an n x D matrix, one point per row, as users
# give points and get draws back: init samplers, potentials' functions,
# draws, densities, a fit's monitor samples. In C a batch is D x n, one
# point per column, so that each point's coordinates are contiguous for the
# per-sample kernels and a batch is one BLAS operand. Every .Call that takes
# or returns points goes through a function of this file, which transposes
# on the way in and on the way out; nothing else in R/ calls C with points.
#
# Statuses come back from C by name (src/api.c: status_name) and are put
# into words here (jko_status_message()).

# A network's architecture as C reads it: c(D, L, rank, activation, widths).
activations <- c("softplus", "squared_softplus")

arch <- function(net) {
  as.integer(c(net$dim, length(net$hidden), net$rank,
               match(net$activation, activations), net$hidden))
}

# A new parameter vector for the network `net` (R's RNG).
c_icnn_init <- function(net, init_scale = 1) {
  .Call(C_icnn_init, arch(net), net$alpha_min, init_scale)
}

# The network at the rows of x: what = 0 (potential and map), 1 (and
# log det), 2 (and the Hessians, D x D x n).
c_icnn_eval <- function(net, theta, x, what, threads) {
  out <- .Call(C_icnn_eval, arch(net), net$alpha_min, theta, t(x), what, threads)
  out$gradient <- t(out$gradient)
  out
}

# A potential at the rows of x: list(value, gradient (n x D, with grad),
# status). Non-finite values come back as they are.
c_pot_eval <- function(potential, x, grad = FALSE, threads = resolve_threads(NULL)) {
  out <- .Call(C_pot_eval, potential, t(x), grad, threads)
  out$gradient <- if (grad) t(out$gradient)
  out
}

# The log prior density of a glm target (its prior part, glm_prior_part())
# at the rows of x.
c_glm_log_prior <- function(prior, x) .Call(C_glm_log_prior, prior, t(x))

# A free energy's per-sample values at the rows of x (samples of a law with
# the log-densities log_density): their mean is the free energy.
c_energy_eval <- function(energy, x, log_density, beta, threads) {
  .Call(C_energy_eval, energy, t(x), as.double(log_density), beta, threads)$value
}

# The centre and scale (or, with whiten, the Cholesky factor L of the
# covariance) of the rows of x, as a step's change of variables.
c_moments <- function(x, whiten = FALSE) .Call(C_moments, t(x), whiten)

# Push the rows of x through the maps (map nodes of a law, see R/law.R, in
# the order they apply; each carries its own network, arch and alpha_min,
# which C reads map by map, so maps of different architectures go in one
# call), carrying log_density (n numbers, or NULL) along: list(x,
# log_density, status, step), step the first map (counted in `maps`) whose
# Hessian was not positive definite somewhere (those points' log-densities
# are NaN), or 0.
c_push <- function(maps, x, log_density, threads) {
  out <- .Call(C_flow_push, NULL, NULL, maps, t(x), log_density, threads)
  list(x = t(out$x), log_density = out$log_density, status = out$status,
       step = if (out$status == "ok") 0L else out$step)
}

# Pull the rows of y back through the maps, last first: list(x (in the
# space before the first map), log_det (minus the sum of the maps'
# log-determinants), residual (the largest of the inversions), status,
# step).
c_pull <- function(maps, y, tol, maxit, threads) {
  out <- .Call(C_flow_pull, NULL, NULL, maps, t(y), tol, maxit, threads)
  list(x = t(out$x), log_det = out$log_det, residual = out$residual, status = out$status,
       step = if (out$status == "ok") 0L else out$step)
}

# One JKO step in C (src/train.c): train the map of step k from theta on the
# pool of rho_{k-1} (rows), then push the pool and the monitor samples (with
# their log-densities). The pushed points come back as rows.
c_step <- function(net, theta, pool, monitor, monitor_ld, potential, settings, std,
                   threads, progress) {
  res <- .Call(C_jko_step, arch(net), net$alpha_min, theta, t(pool), t(monitor),
               monitor_ld, potential, settings, std, threads, progress)
  if (!is.null(res$pool)) res$pool <- t(res$pool)
  if (!is.null(res$monitor)) res$monitor <- t(res$monitor)
  res
}

# What a status from C means, in words; `loss` and `iter` give the figures
# of a divergence.
jko_status_message <- function(status, loss = NULL, iter = NULL) {
  switch(status,
    nonfinite = "the loss or the parameters became non-finite (NaN or Inf)",
    not_pd = "a Hessian lost positive definiteness",
    diverged = sprintf("the loss diverged (from %.4g at iteration 1 to %.4g)",
                       loss[1L], loss[iter]),
    "the training failed")
}
