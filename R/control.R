# The training settings of a flow: jko_control(), as glm.control() gathers
# those of glm(), and the defaults of a flow run to its stationary law.

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
#' Speed rests on the BLAS, through which most of the work goes. Some
#' OpenBLAS releases do not recognise the newest CPUs and run generic kernels
#' several times slower; `library(jkoflow)` then says so and names the value
#' of the environment variable `OPENBLAS_CORETYPE` to set in the shell that
#' starts R (not in `~/.Renviron`, which R reads after its BLAS has loaded).
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
#' @param draws,ess_min,kl_tol,moment_tol,max_steps,max_time For a flow
#'   run to its stationary law \eqn{\pi \propto e^{-\beta\Phi}}
#'   (`jko_fit(stationary = TRUE)`, the default for targets) without a given
#'   number of `steps`. Its draws are made exact by the flow's own
#'   densities (see "Exact draws" in [jko_fit()]): `draws` of them are kept
#'   in the fit. So the training only has to make the flow a good proposal:
#'   it stops when the importance weights \eqn{\pi / \rho_k} of the monitor
#'   samples have a Pareto \eqn{\hat k} below 1/2 (finite variance of the
#'   weights; below the importance sampling threshold
#'   \eqn{\min(1 - 1/\log_{10} S, 0.7)} of their number \eqn{S} too),
#'   an effective sample size
#'   of at least `ess_min` of the samples, each coordinate's spread (its
#'   root mean squared distance to the mean, the \eqn{\sqrt S}{sqrt(S)}
#'   farthest samples winsorised) at least 0.95 of its importance-weighted
#'   value or short of it by less than 1.645 standard errors of their
#'   ratio (a flow too narrow is the one
#'   error the correction cannot undo in a few thousand draws), log-weights
#'   that grow with the flow's surprise \eqn{-\log\rho_k} (between its
#'   central 50% and its next 40%) by less than \eqn{1 - 0.95^2} (the
#'   growth of a Gaussian flow 0.95 times as wide as its target; along the
#'   flow's own level sets, it sees a curved target's arms that the flow
#'   covers too thinly), and (where given) the estimated
#'   \eqn{KL(\rho_k \| \pi)} below `kl_tol` and the samples' means and sds
#'   within `moment_tol` of their importance-weighted values (in target sds,
#'   and relative); samples outside the support of \eqn{\pi} count as
#'   weights of zero in the ESS (the exact correction rejects them); the
#'   start itself is checked first, and a start that passes is not trained
#'   at all. Samples that fail by their k-hat alone, below the importance
#'   sampling bound, are judged again with as many more (a k-hat near 1/2
#'   is noisy on a few thousand weights, and a second look costs far less
#'   than a step). It also stops when the KL estimate stops decreasing, after
#'   `max_steps` steps, or after `max_time` seconds (`Inf` by default: a
#'   cap of the user's, since a seeded fit stopped by the clock depends on
#'   the machine's load).
#' @param hmc Where a flow run to its stationary law stops short of its
#'   target (it did not pass as a proposal) and the target has one known
#'   mode, are its `draws` Hamiltonian Monte Carlo chains started at
#'   the flow's draws (`TRUE`, the default), or the flow's independence
#'   chains (`FALSE`)? Many short chains move together, one call of the
#'   potential for all of them per leapfrog step, with the metric and step
#'   size adapted across the chains; the verdict gives their acceptance,
#'   ESS and drift. Their draws have no density of their own (the flow's is
#'   not the target's): `fit$draws$log_density` is `NA`. (R-hat, made for a
#'   few long chains, reads high on many chains of 16 draws whose draws are
#'   correlated, as the posterior package computes it from
#'   `as_draws_df(fit)`; the verdict tests the chains' drift instead.)
#' @param adaptive Adaptive iterations: hold the learning rate at `lr`
#'   until a step's loss has stopped falling within its batch noise (the
#'   mean of its last 50 values within two standard errors of the 50
#'   before), then anneal it to `lr_end` over `max(50, iters / 5)`
#'   iterations, which ends the step; `iters` is then the most a step may
#'   use. `NULL` (the default) means `TRUE` for a flow to the stationary law
#'   and `FALSE` for the time-accurate flow, whose steps then all run
#'   `iters` iterations. `fit$history$iters` records what each step used.
#' @param init_scale The steepness of the hidden units of the first network
#'   (later steps start from the previous step's network), relative to the
#'   spread of \eqn{\rho_{k-1}}: each unit's transition is placed at a
#'   random point of the standardised samples, with a steepness drawn
#'   log-uniformly in `[1, init_scale]` (see [icnn()]). The default 1 suits
#'   potentials that vary on the scale of the law, as most targets do. A
#'   potential with features much narrower than the law (the ripples of
#'   \eqn{\sin(2\pi x)} on a law of sd 1) needs sharper units: units of
#'   unit scale are nearly linear over the samples, the loss's gradient
#'   cannot see such features through them, and they are never learned
#'   ([jko_filter()] uses 8 for its flows).
#' @return An object of class `"jko_control"`, a list of the settings.
#' @examples
#' jko_control(hidden = c(32, 32), iters = 200)
#' @export
jko_control <- function(hidden = c(64, 64), rank = 5, batch = 1024, iters = 500,
                        lr = 5e-3, lr_end = lr / 100, pool = NULL, monitor = 2048,
                        activation = "softplus", alpha_min = 1e-4, draws = 4000,
                        ess_min = 0.1, kl_tol = NULL, moment_tol = NULL, max_steps = 50,
                        max_time = Inf, hmc = TRUE, adaptive = NULL, init_scale = 1) {
  args <- as.list(match.call())[-1L]
  args <- lapply(args, eval, envir = parent.frame())
  hidden <- check_hidden(hidden)
  rank <- check_count(rank, "rank")
  batch <- check_count(batch, "batch")
  iters <- check_count(iters, "iters")
  lr <- check_positive(lr, "lr")
  lr_end <- check_positive(lr_end, "lr_end")
  pool <- if (is.null(pool)) as.integer(min(as.double(iters) * batch, 2^18))
          else check_count(pool, "pool")
  monitor <- check_count(monitor, "monitor")
  check_activation(activation)
  alpha_min <- check_positive(alpha_min, "alpha_min")
  draws <- check_count(draws, "draws", min = 4)
  if (!is.numeric(ess_min) || length(ess_min) != 1L || is.na(ess_min) || ess_min <= 0 ||
      ess_min > 1) {
    abort("`ess_min` must be a single number in (0, 1], not %s.", describe(ess_min))
  }
  if (!is.null(kl_tol)) kl_tol <- check_positive(kl_tol, "kl_tol")
  if (!is.null(moment_tol)) moment_tol <- check_positive(moment_tol, "moment_tol")
  max_steps <- check_count(max_steps, "max_steps")
  if (!is.numeric(max_time) || length(max_time) != 1L || is.na(max_time) || max_time <= 0) {
    abort("`max_time` must be a positive number of seconds (Inf for no limit), not %s.",
          describe(max_time))
  }
  hmc <- check_flag(hmc, "hmc")
  if (!is.null(adaptive)) adaptive <- check_flag(adaptive, "adaptive")
  init_scale <- check_init_scale(init_scale)
  if (pool < batch) {
    abort(paste0("`pool` (%d) must be at least `batch` (%d): each step draws its batches from ",
                 "the pool%s."), pool, batch,
          if (is.null(args$pool)) " (by default min(iters * batch, 2^18) samples)" else "")
  }
  structure(list(hidden = hidden, rank = rank, batch = batch, iters = iters, lr = lr,
                 lr_end = lr_end, pool = pool, monitor = monitor,
                 activation = activation, alpha_min = alpha_min, draws = draws,
                 ess_min = as.double(ess_min), kl_tol = kl_tol,
                 moment_tol = moment_tol, max_steps = max_steps, max_time = as.double(max_time),
                 hmc = hmc, adaptive = adaptive, init_scale = init_scale),
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
  check_dots(...)
  cat(sprintf("JKO training settings: network %s, rank %d, %s; Adam: %d iterations of batch %d per step, lr %g -> %g; pool %d, monitor %d\n",
              paste(x$hidden, collapse = " x "), x$rank, x$activation, x$iters, x$batch,
              x$lr, x$lr_end, x$pool, x$monitor))
  invisible(x)
}

# The training settings of a stationary flow where the user gave none: a
# narrower network and smaller batches than the time-accurate flow's (each
# whitened step is a near-Gaussian correction, and the steps end when their
# loss stops falling), a smaller pool (steps end after a few hundred
# iterations), and a monitor of 4096 samples: enough for the Pareto k-hat
# (its threshold is 1/2, khat_reached()) and the importance ESS that
# decide when the flow is a good enough proposal for the exact correction.
stationary_defaults <- function(control) {
  given <- names(attr(control, "args"))
  args <- attr(control, "args")
  if (!"hidden" %in% given) args$hidden <- c(32, 32)
  if (!"batch" %in% given) args$batch <- 512
  if (!"pool" %in% given) args$pool <- 2^16
  if (!"monitor" %in% given) args$monitor <- 2^12
  out <- do.call(jko_control, args)
  attr(out, "args") <- attr(control, "args")
  out
}
