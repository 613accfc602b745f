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
#' @section Flows to the stationary law:
#' For a target the time of the flow is not the point, its stationary law
#' is, and `jko_fit(target)` with nothing else runs until the flow has
#' reached it. The package then chooses what the user leaves unset:
#' * the metric: each step's network acts on \eqn{L^{-1}(x - c)}, with
#'   \eqn{c} and \eqn{L L^\top} the mean and covariance of
#'   \eqn{\rho_{k-1}} (preconditioning: an exact change of variables whose
#'   JKO step is that of the whitened flow; its time is not the physical
#'   one, its stationary law is \eqn{\pi}, and densities stay exact);
#' * `h`: 0.5 for the first step, doubled while the estimated
#'   \eqn{KL(\rho_k \| \pi)} falls (up to 8), halved when it rises;
#' * the iterations: a step's training ends when its loss has stopped
#'   falling within its noise, then anneals (at most `iters`);
#' * `steps`: until the flow has reached the target (see `kl_tol` in
#'   [jko_control()]), the KL estimate stops decreasing, or `max_steps` or
#'   `max_time` run out;
#' * `init`: of a widened Laplace approximation ([init_laplace()]) and
#'   \eqn{N(0, I)}, the one with the smaller \eqn{KL(\rho_0 \| \pi)}, that is the
#'   larger ELBO on 4096 draws (the Laplace approximation where the
#'   posterior is near-Gaussian; \eqn{N(0, I)} where the mode is degenerate,
#'   as a funnel's is);
#' * the network: 32 x 32, batches of 512, a pool of \eqn{2^{17}} and
#'   \eqn{2^{14}} monitor samples.
#'
#' After every step `history` records `h`, the iterations used and, from
#' the exact densities of the monitor samples, \eqn{KL(\rho_k \| \pi)}
#' estimated as \eqn{\log\hat Z - \mathrm{ELBO}} with its standard
#' error, the Pareto \eqn{\hat k} and the relative ESS of the importance
#' weights, and `moment_gap` (how far the samples' means and sds are from
#' their importance-weighted values). `fit$verdict` and `print(fit)` say in
#' words whether the flow reached the target; a fit that did not warns.
#'
#' An error in a user's potential, a divergence or an interrupt stops the fit
#' with an error of class `"jkoflow_error_fit"` whose `fit` element holds the
#' steps already completed; [jko_last_fit()] returns them too and
#' [jko_continue()] resumes from them.
#'
#' @param potential A potential: see [potentials] and [new_potential()]; or
#'   a free energy made of terms (a potential, an interaction energy, the
#'   entropy or a porous-medium energy): see [jko_energy()].
#' @param init The initial distribution: see [init_gaussian()]. For a flow
#'   to the stationary law (the default for targets) it defaults to a
#'   widened Laplace approximation ([init_laplace()]); for the time-accurate
#'   flow of a [target_logistic()], to the prior, cut at
#'   \eqn{\log\alpha \ge -8} ([init_prior()]).
#' @param h JKO time step, a positive number.
#' @param steps Number of JKO steps. `0` (a time-accurate flow only) makes
#'   a fit of no step: the law of `init` itself, with its samples and
#'   log-density, for [jko_sample()], [jko_density()] and [init_fit()].
#' @param beta Inverse temperature \eqn{\beta}.
#' @param control Training settings that rarely need changing: see
#'   [jko_control()].
#' @param threads Number of threads for the per-sample work; default the
#'   option `jkoflow.threads` (see [jko_control()]).
#' @param verbose Print a line per step (and, in an interactive session, the
#'   progress of the iterations within each step)?
#' @param stationary Is the flow run for its stationary law
#'   \eqn{\pi \propto e^{-\beta\Phi}} rather than for \eqn{\rho_t}? The
#'   default is `TRUE` for targets ([target_logdensity()],
#'   [target_logistic()], [target_glm()]) and `FALSE` otherwise. See "Flows to the
#'   stationary law".
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
                    verbose = interactive(), ..., stationary = NULL) {
  call <- match.call()
  # what the package chooses for a stationary flow unless given
  chosen <- c(h = missing(h), steps = missing(steps), init = missing(init))
  # a free energy of terms (R/energy.R) in place of a potential
  energy <- inherits(potential, "jko_energy")
  if (!energy) check_potential(potential)
  control <- update_control(control, list(...))
  if (is.null(stationary)) stationary <- is_target(potential)
  stationary <- check_flag(stationary, "stationary")
  if (energy && stationary) {
    abort(paste0("`stationary = TRUE` needs a potential or target alone (its stationary ",
                 "law is exp(-beta Phi)), not a free energy from jko_energy()."))
  }
  if (stationary) control <- stationary_defaults(control)
  # A flow to the stationary law starts from a widened Laplace approximation
  # (or, failing that, the target's prior); the time-accurate flow of a
  # target that carries a prior (target_logistic()) from the prior.
  if (chosen[["init"]]) {
    prior <- potential[["init"]]
    if (stationary) {
      init <- stationary_start(potential, prior, beta)
    } else if (!is.null(prior)) {
      init <- prior
    }
  }
  check_init(init)
  if (energy) check_energy_fit(potential, init, control)
  D <- init$dim
  if (!is.na(potential$dim) && potential$dim != D) {
    abort("`potential` has dimension %d but `init` has dimension %d.", potential$dim, D)
  }
  h <- check_positive(h, "h")
  steps <- check_count(steps, "steps", min = if (stationary) 1 else 0)
  beta <- check_positive(beta, "beta")
  threads <- resolve_threads(threads)
  verbose <- check_flag(verbose, "verbose")
  net <- icnn(D, control$hidden, control$rank, control$activation, control$alpha_min)
  net$theta <- NULL
  if (is.null(control$kl_tol)) control$kl_tol <- max(0.01, 0.005 * D)

  mon <- init_draw(init, control$monitor, threads = threads)
  mon_ld <- if (is.null(mon$log_density)) rep(NA_real_, control$monitor) else mon$log_density
  mon <- mon$x
  # Phi at the monitor samples: checked, except where a target's support
  # may leave it infinite
  phi <- if (energy) energy_values(potential, to_cols(mon), mon_ld, beta, threads)
         else if (isTRUE(potential$support)) potential_values(potential, mon)
         else .Call(C_pot_eval, potential, to_cols(mon), FALSE)$value
  fit <- structure(list(
    call = call, potential = potential, init = init, dim = D, h = h, beta = beta,
    net = net, settings = control,
    # stationary: a flow run for its stationary law, in whitened coordinates
    # (each step's network acts on L^{-1} (x - center), L the Cholesky factor
    # of the covariance of rho_{k-1}), with adaptive steps and iterations
    stationary = stationary,
    theta = list(),
    std = list(),
    # The network of step k acts on (x - center_k) / scale_k, the centre and
    # scale of rho_{k-1} (whitened: on L_k^{-1} (x - center_k), L_k the
    # Cholesky factor of its covariance), exact for rho_0 = init_gaussian(),
    # estimated from samples otherwise: rho_0 far from the origin (1e6) or
    # widely spread, and a flow that contracts by orders of magnitude (a
    # diffuse prior to a posterior), meet each network as N(0, I) would.
    start_std = standardisation(init, mon, whiten = stationary),
    history = cbind(data.frame(step = 0L, time = 0, h = NA_real_, iters = NA_integer_,
                               loss = NA_real_,
                               free_energy = step_free_energy(potential, phi, mon_ld, beta),
                               seconds = 0),
                    target_divergence(if (energy) NA_real_ else phi, mon_ld, beta,
                                      to_cols(mon))),
    loss_trace = list(),
    # the monitor samples of the last step, one per column, and their
    # log-densities
    monitor = list(points = to_cols(mon), log_density = mon_ld)
  ), class = "jko_fit")
  # For the stationary law: h and steps chosen as the flow goes unless given
  schedule <- if (!stationary) list(h = h, steps = steps) else
    list(h = if (chosen[["h"]]) NULL else h, steps = if (chosen[["steps"]]) NULL else steps)
  # (theta0 is a promise: the first network is drawn after the pool, as
  # jkoflow has always drawn them, so that set.seed() reproduces old fits)
  fit <- jko_run(fit, schedule, theta0 = .Call(C_icnn_init, arch(net), net$alpha_min,
                                                 control$init_scale),
                 threads = threads, verbose = verbose)
  if (!stationary) return(fit)
  fit$verdict <- target_verdict(fit, schedule)
  if (!fit$verdict$reached) warning(verdict_text(fit$verdict), call. = FALSE)
  fit
}

# The start of a flow to the stationary law: of a widened Laplace
# approximation and N(0, I) (the scale of parameters on an unconstrained
# scale), the one closer to the target in KL(start || pi), compared by
# their ELBO on 4096 draws (the prior of the target, where it has one, stands in for a
# Laplace approximation that failed). The
# Laplace approximation wins where the posterior is near-Gaussian; N(0, I)
# where its mode is degenerate (a funnel's, where the mass is not).
stationary_start <- function(potential, prior, beta, n = 4096L) {
  laplace <- tryCatch(init_laplace(potential), error = function(e) e)
  D <- if (!is.na(potential$dim)) potential$dim else if (!inherits(laplace, "error")) laplace$dim
  cands <- list()
  if (!inherits(laplace, "error")) cands$laplace <- laplace
  if (!is.null(D)) {
    cands$standard <- init_gaussian(rep(0, D), 1)
    cands$standard$label <- sprintf("N(0, I), dimension %d (a better start than %s)", D,
                                    if (is.null(cands$laplace)) "none found"
                                    else "the Laplace approximation, by ELBO")
  }
  if (is.null(cands$laplace) && !is.null(prior)) cands$prior <- prior
  if (!length(cands)) {
    abort(paste0("`init` is needed: no start was given, and the Laplace ",
                 "approximation failed: %s"), conditionMessage(laplace), call = NULL)
  }
  if (length(cands) == 1L) return(cands[[1L]])
  # KL(q || pi) = log Z - ELBO(q): the candidate with the larger ELBO. (Not
  # the importance-sampling estimate of KL, whose log Z is biased low for
  # a q that misses mass, as a degenerate mode's does.)
  kl <- vapply(cands, function(q) {
    x <- q$sample(n)
    lw <- -beta * potential_values(potential, x) - q$log_density(x)
    inside <- is.finite(lw)
    if (!any(inside)) return(Inf)
    # mass outside the support counts as the log of the mass inside
    -mean(lw[inside]) - log(mean(inside))
  }, numeric(1))
  kl[!is.finite(kl)] <- Inf
  cands[[which.min(kl)]]
}

# The training settings of a stationary flow where the user gave none: a
# narrower network and smaller batches than the time-accurate flow's (each
# whitened step is a near-Gaussian correction, and the steps end when their
# loss stops falling), and a larger monitor for the verdict.
stationary_defaults <- function(control) {
  given <- names(attr(control, "args"))
  args <- attr(control, "args")
  if (!"hidden" %in% given) args$hidden <- c(32, 32)
  if (!"batch" %in% given) args$batch <- 512
  if (!"pool" %in% given) args$pool <- 2^17
  # the verdict's estimates need the tails: more monitor samples
  if (!"monitor" %in% given) args$monitor <- 2^14
  out <- do.call(jko_control, args)
  attr(out, "args") <- attr(control, "args")
  out
}

# Potentials whose stationary law is the point: targets.
is_target <- function(potential) {
  inherits(potential, c("jko_target_logdensity", "jko_target_logistic")) ||
    isTRUE(potential$target)
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
#' Speed rests on the BLAS, through which most of the work goes. Some
#' OpenBLAS releases do not recognise the newest CPUs and run generic kernels
#' several times slower; `library(jkoflow)` then says so and names the value
#' of the environment variable `OPENBLAS_CORETYPE` to set before R starts.
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
#' @param kl_tol,moment_tol,max_steps,max_time For a flow run to its
#'   stationary law (`jko_fit(stationary = TRUE)`, the default for targets)
#'   without a given number of `steps`: it stops when it has reached the
#'   target, that is when the estimated \eqn{KL(\rho_k \| \pi)} is below
#'   `kl_tol` (by default \eqn{\max(0.01, 0.005 D)} in dimension D: KL adds
#'   up over independent coordinates, and an sd 5\% off costs 0.0025 in
#'   each), the Pareto \eqn{\hat k} of the importance weights below 0.7
#'   and the means and sds of the flow's samples within `moment_tol` of
#'   their importance-weighted values (in target sds, and relative); or when
#'   the KL estimate stops decreasing; or after `max_steps` steps or
#'   `max_time` seconds, whichever comes first.
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
                        activation = "softplus", alpha_min = 1e-4, kl_tol = NULL,
                        moment_tol = 0.05, max_steps = 50, max_time = 300,
                        adaptive = NULL, init_scale = 1) {
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
  if (!is.null(kl_tol)) kl_tol <- check_positive(kl_tol, "kl_tol")
  moment_tol <- check_positive(moment_tol, "moment_tol")
  max_steps <- check_count(max_steps, "max_steps")
  max_time <- check_positive(max_time, "max_time")
  if (!is.null(adaptive)) adaptive <- check_flag(adaptive, "adaptive")
  init_scale <- check_init_scale(init_scale)
  structure(list(hidden = hidden, rank = rank, batch = batch, iters = iters, lr = lr,
                 lr_end = lr_end, pool = pool, monitor = monitor,
                 activation = activation, alpha_min = alpha_min, kl_tol = kl_tol,
                 moment_tol = moment_tol, max_steps = max_steps, max_time = max_time,
                 adaptive = adaptive, init_scale = init_scale),
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
#' [jko_last_fit()]). A flow to the stationary law goes on choosing its own
#' `h`, and says again whether it has reached the target.
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
  theta0 <- if (K > 0) fit$theta[[K]] else
    .Call(C_icnn_init, arch(fit$net), fit$net$alpha_min, fit$settings$init_scale %||% 1)
  if (!isTRUE(fit$stationary)) {
    return(jko_run(fit, list(h = fit$h, steps = steps), theta0, threads, verbose))
  }
  # a stationary flow goes on with its own choice of h
  schedule <- list(h = NULL, steps = steps)
  fit <- jko_run(fit, schedule, theta0, threads, verbose)
  fit$verdict <- target_verdict(fit, schedule)
  if (!fit$verdict$reached) warning(verdict_text(fit$verdict), call. = FALSE)
  fit
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

# Runs steps K+1.. as the schedule says: list(h, steps), either NULL where
# a stationary flow chooses (see next_h() and stop_reason()). The pool of
# rho_K samples is drawn from rho_0 and pushed through the K existing maps
# once, then through each new map.
jko_run <- function(fit, schedule, theta0, threads, verbose) {
  K0 <- length(fit$theta)
  budget <- if (is.null(schedule$steps)) fit$settings$max_steps else schedule$steps
  if (budget == 0L) return(fit)
  pool <- to_cols(fit$init$sample(fit$settings$pool))
  # a porous-medium energy needs the densities of the pool: carried along
  pool_ld <- if (energy_needs_density(fit$potential)) init_log_density(fit$init, t(pool))
  if (K0 > 0L) {
    pushed <- flow_push(fit, K0, pool, pool_ld, threads)
    pool <- pushed$x
    pool_ld <- pushed$log_density
  }
  theta <- theta0
  the$last_fit <- fit
  t_start <- proc.time()[["elapsed"]]
  for (k in K0 + seq_len(budget)) {
    # Anything that stops step k, in C or in R (an interrupt between two
    # calls into C, setTimeLimit()), becomes the same classed error; all the
    # work of a step is inside, only the bookkeeping of its result outside.
    st <- tryCatch({
        h <- if (!is.null(schedule$h)) schedule$h else next_h(fit)
        res <- jko_step(fit, k, theta, pool, h, threads, verbose, pool_ld)
        last <- res$fit$history[nrow(res$fit$history), ]
        if (verbose) {
          message(sprintf("step %3d/%s  t = %-6g loss %10.4f  free energy %10.4f%s  (%d it., %.1f s)",
                          k, if (is.null(schedule$steps)) "?" else K0 + budget, last$time,
                          last$loss, last$free_energy,
                          if (isTRUE(res$fit$stationary) && is.finite(last$kl))
                            sprintf("  KL %.3g", last$kl) else "",
                          last$iters, last$seconds))
        }
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
    if (st$stop) break
  }
  # the pool of the last law, for a caller that asked for it (jko_filter():
  # draws of the prediction, to be updated)
  if (isTRUE(the$keep_pool)) the$last_pool <- pool
  fit
}

# Step k from the map theta (that of step k-1) and the pool of rho_{k-1}
# samples, in one call into C (src/train.c: jko_step): the new fit, map and
# pool. The network of step k is standardised by the centre and scale (or,
# for a stationary flow, the covariance) of the pool (of rho_0 for the first
# step).
jko_step <- function(fit, k, theta, pool, h, threads, verbose = FALSE, pool_ld = NULL) {
  s <- fit$settings
  t0 <- proc.time()[["elapsed"]]
  stationary <- isTRUE(fit$stationary)
  res <- .Call(C_jko_step, arch(fit$net), fit$net$alpha_min, theta, pool,
               fit$monitor$points, fit$monitor$log_density, fit$potential,
               list(h = h, beta = fit$beta, iters = s$iters, batch = s$batch,
                    lr = s$lr, lr_end = s$lr_end,
                    adaptive = if (is.null(s$adaptive)) stationary else s$adaptive,
                    whiten = stationary, pool_log_density = pool_ld),
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
  fit$std[[k]] <- if (is.null(res$L)) list(center = res$center, scale = res$scale)
                  else list(center = res$center, L = res$L)
  fit$theta[[k]] <- res$theta
  fit$loss_trace[[k]] <- res$loss
  fit$monitor <- list(points = res$monitor, log_density = res$monitor_log_density)
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
  list(fit = fit, theta = res$theta, pool = res$pool, pool_ld = res$pool_log_density)
}

# F(rho) = E Phi + E log rho / beta, from samples' potentials and log-densities.
free_energy <- function(phi, log_density, beta) mean(phi) + mean(log_density) / beta

# The free energy of a fit from its monitor samples: for a jko_energy() the
# mean of its per-sample values (`phi`), else the Fokker-Planck one.
step_free_energy <- function(potential, phi, log_density, beta) {
  if (inherits(potential, "jko_energy")) mean(phi) else free_energy(phi, log_density, beta)
}

# KL(rho || pi) for pi proportional to exp(-beta Phi), from samples of rho
# with their potentials phi and log-densities log_q: with log w = -beta phi
# - log q, KL = log E w - E log w (log Z - ELBO), its delta-method standard
# error, the Pareto k-hat of the weights and their relative ESS. With the
# samples x (D x n), also `moment_gap`: the largest difference, over the
# coordinates, between the samples' means and sds and their importance-
# weighted ones (which are pi's), in units of pi's sd (for the means) and
# relative (for the sds). The reverse KL barely sees a flow's light tails;
# the weights do.
target_divergence <- function(phi, log_q, beta, x = NULL) {
  lw <- -beta * phi - log_q
  out <- data.frame(kl = NA_real_, kl_se = NA_real_, pareto_k = NA_real_, ess = NA_real_,
                    moment_gap = NA_real_, outside = NA_real_)
  if (anyNA(lw) || any(lw == Inf)) return(out)
  # A flow's law has a positive density everywhere: outside the support of
  # pi (phi = Inf), which the monitor samples may reach, KL is infinite.
  # The figures are then those of rho restricted to the support, with the
  # share of samples outside beside them.
  inside <- is.finite(lw)
  out$outside <- mean(!inside)
  if (sum(inside) < 10L) return(out)
  if (!is.null(x)) x <- x[, inside, drop = FALSE]
  lw <- lw[inside]
  n <- length(lw)
  mx <- max(lw)
  w <- exp(lw - mx)
  mw <- mean(w)
  out$kl <- mx + log(mw) - mean(lw)
  # influence of each sample on log mean(w) - mean(log w)
  out$kl_se <- stats::sd(w / mw - lw) / sqrt(n)
  out$pareto_k <- pareto_khat(lw)
  out$ess <- sum(w)^2 / sum(w^2) / n
  if (!is.null(x)) {
    wn <- w / sum(w)
    m <- rowMeans(x)
    m_is <- drop(x %*% wn)
    sd_x <- sqrt(rowSums((x - m)^2) / (n - 1))
    sd_is <- sqrt(drop((x - m_is)^2 %*% wn))
    out$moment_gap <- max(abs(m - m_is) / sd_is, abs(sd_x / sd_is - 1))
  }
  out
}

# The step of a stationary flow: h of the last step doubled while the KL
# estimate falls (to at most 8), halved when it rises (to at least 0.05);
# 0.5 for the first step.
next_h <- function(fit) {
  hist <- fit$history
  K <- nrow(hist) - 1L
  if (K == 0L) return(0.5)
  h <- hist$h[K + 1L]
  kl <- hist$kl
  if (is.na(kl[K + 1L]) || is.na(kl[K])) return(min(2 * h, 8))
  if (kl[K + 1L] < kl[K]) min(2 * h, 8) else max(h / 2, 0.05)
}

# Why a stationary flow stops after its last step: "reached" (KL below
# kl_tol, k-hat below 0.7, and the samples' means and sds within
# moment_tol of their importance-weighted values), "stalled" (no decrease
# of KL beyond twice its standard error over the last three steps), or NA
# (go on).
stop_reason <- function(fit) {
  hist <- fit$history[-1L, , drop = FALSE]
  K <- nrow(hist)
  if (!K) return(NA_character_)
  if (target_reached(hist[K, ], fit$settings)) return("reached")
  if (K >= 4L && all(is.finite(hist$kl[(K - 3L):K]))) {
    best_before <- min(hist$kl[seq_len(K - 3L)])
    recent <- hist[(K - 2L):K, ]
    if (all(recent$kl > best_before - 2 * recent$kl_se)) return("stalled")
  }
  NA_character_
}

target_reached <- function(h, settings) {
  isTRUE(h$kl < settings$kl_tol && h$pareto_k < 0.7 && h$moment_gap < settings$moment_tol &&
         h$outside < 1e-3)
}

# The verdict of a stationary flow at its last step.
target_verdict <- function(fit, schedule) {
  hist <- fit$history
  last <- hist[nrow(hist), ]
  why <- stop_reason(fit)
  reached <- identical(why, "reached")
  if (!reached && is.na(why)) {
    why <- if (!is.null(schedule$steps)) "steps" else
           if (nrow(hist) - 1L >= fit$settings$max_steps) "max_steps" else "max_time"
  }
  list(reached = reached, reason = why, step = last$step, kl = last$kl,
       kl_se = last$kl_se, pareto_k = last$pareto_k, ess = last$ess,
       moment_gap = last$moment_gap, outside = last$outside, kl_tol = fit$settings$kl_tol,
       moment_tol = fit$settings$moment_tol, rejections = potential_rejections(fit$potential))
}

# The verdict in words.
verdict_text <- function(v) {
  figs <- sprintf(paste0("KL(rho || pi) = %.3g (se %.2g), Pareto k-hat %.2f, importance ESS %.0f%%, ",
                         "moments within %.3g of their importance-weighted values%s"),
                  v$kl, v$kl_se, v$pareto_k, 100 * v$ess, v$moment_gap,
                  if (isTRUE(v$outside > 0))
                    sprintf("; %.2g%% of the samples outside the support of pi (KL over the rest)",
                            100 * v$outside) else "")
  if (v$reached) {
    return(sprintf("The flow reached the target at step %d: %s.", v$step, figs))
  }
  why <- switch(v$reason,
    stalled = "the KL estimate stopped decreasing",
    steps = "the given number of steps ran out",
    max_steps = "the step budget (`max_steps`) ran out",
    max_time = "the time budget (`max_time`) ran out",
    "it was stopped")
  sprintf(paste0("The flow did NOT reach the target (KL below %g, k-hat < 0.7, moments within %g): %s at step %d; %s. ",
                 "Its draws and densities are not yet those of the target: continue it ",
                 "(jko_continue()), or widen the network or the iterations (jko_control())."),
          v$kl_tol, v$moment_tol, why, v$step, figs)
}

# What a status from C (src/api.c: status_name) means, in words; `loss` and
# `iter` give the figures of a divergence.
jko_status_message <- function(status, loss = NULL, iter = NULL) {
  switch(status,
    nonfinite = "the loss or the parameters became non-finite (NaN or Inf)",
    not_pd = "a Hessian lost positive definiteness",
    diverged = sprintf("the loss diverged (from %.4g at iteration 1 to %.4g)",
                       loss[1L], loss[iter]),
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

# Centre and scale (one number, so that |y - x|^2 keeps its form) of rho_0,
# or with `whiten` centre and L, the Cholesky factor of the covariance:
# exact for a Gaussian, else those of its samples x (n x D).
standardisation <- function(init, x, whiten = FALSE) {
  if (whiten) {
    if (!is.null(init$mean) && !is.null(init$cov)) {
      return(list(center = as.double(init$mean), L = t(chol(init$cov))))
    }
    return(.Call(C_moments, to_cols(x), TRUE))
  }
  if (is.null(init$mean) || is.null(init$cov)) return(.Call(C_moments, to_cols(x), FALSE))
  scale <- sqrt(mean(diag(init$cov)))
  if (!is.finite(scale) || scale <= 0) scale <- 1
  list(center = as.double(init$mean), scale = as.double(scale))
}

check_fit <- function(fit, arg = "fit") {
  if (!inherits(fit, "jko_fit")) {
    abort("`%s` must be a fit from jko_fit(), not %s.", arg, describe(fit))
  }
  invisible(fit)
}

# The step k of a fit from `step` or `time` (the nearest step).
resolve_step <- function(fit, step = NULL, time = NULL) {
  K <- length(fit$theta)
  if (!is.null(step) && !is.null(time)) abort("give `step` or `time`, not both.")
  if (!is.null(time)) {
    if (!is.numeric(time) || length(time) != 1L || !is.finite(time) || time < 0) {
      abort("`time` must be a single non-negative number, not %s.", describe(time))
    }
    times <- fit$history$time[seq_len(K + 1L)]
    k <- which.min(abs(times - time)) - 1L
    h_k <- if (k > 0L) times[k + 1L] - times[k] else if (K > 0L) times[2L] else fit$h
    if (abs(time - times[k + 1L]) > h_k / 2 + 1e-12) {
      abort("`time` must be within the fitted range [0, %g] (%d steps of h = %g), not %g.",
            times[K + 1L], K, fit$h, time)
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

# The time of step k (for a stationary flow, of its whitened flow).
step_time <- function(fit, k) fit$history$time[k + 1L]
