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
#' @section Time accuracy:
#' A time-accurate flow on a potential checks each step against the closed
#' form of a JKO step on the problem's Gaussian linearisation around
#' \eqn{\rho_{k-1}} (per coordinate: the mean and variance of the pool's
#' draws, the mean of \eqn{\partial\Phi/\partial x_i} and its
#' regression slope on \eqn{x_i}; exact for a Gaussian under a quadratic
#' potential, first-order exact for the mean and variance of any law). A
#' step that moves the law by a quarter of an sd or more (its mean in sds
#' plus the log of the factor on its sd) and whose trained map's law is
#' more than 0.02 in symmetric KL from that closed form (an sd 10\% off, a
#' mean 0.2 sd off) is named in a
#' warning; one that moves it by a sd or more is first trained again from
#' its own map, at most twice (the closest kept). Such steps are those
#' that move mass by many sds (a start far from the potential's minimum, a
#' stiff potential) or that `iters` iterations did not train: a smaller `h`
#' or more `iters` is the remedy. `fit$accuracy` has every checked step's
#' figures (with a pool of at least 500 draws; at most \eqn{2^{15}} of them are used).
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
#' * `steps`: until the flow is a good proposal for its target (see
#'   "Exact draws" and `ess_min` in [jko_control()]; a start that already
#'   is one is not trained at all), the KL estimate stops decreasing, or
#'   `max_steps` run out (or the user's own `max_time`);
#' * `init`: of a Laplace approximation with Student t tails, 7 degrees of
#'   freedom ([init_laplace()]), and \eqn{N(0, I)}, the one with the smaller \eqn{KL(\rho_0 \| \pi)}, that is the
#'   larger ELBO on 4096 draws (the Laplace approximation where the
#'   posterior is near-Gaussian; \eqn{N(0, I)} where the mode is degenerate,
#'   as a funnel's is); where that start, moved by importance sampling
#'   (below), does not pass as a proposal, conditional Laplace
#'   approximations along the coordinates where the target is least
#'   Gaussian (a scale parameter, a banana's bend) are built, and the one
#'   of largest ELBO is taken if it does better: along a grid of the
#'   coordinate, the Gaussian of the others given it (their mode and
#'   Hessian), weighted by the Laplace estimate of its marginal, exact
#'   where the others are Gaussian given it (Neal's funnel, a centred
#'   hierarchical model given its scale); where the start is still far
#'   from the target, the same along a lattice of two coordinates (the one
#'   that best explains the importance weights of the best such law, and
#'   the one that best explains those of the law along it), exact where the others
#'   are Gaussian given both (a Gaussian process's latent values given its
#'   length scale and amplitude); where none passes, the Laplace approximation shaped
#'   along the target's slices through the mode, if it passes (first above 100 dimensions);
#'   above 2.5, the Gaussian of largest ELBO from natural-gradient variational inference,
#'   where the Laplace mode lies outside its mass; where a search from over-dispersed starts
#'   ([find_modes()]) finds several modes, the Laplace candidate is the
#'   mixture of their Laplace approximations ([init_mixture()]), and the
#'   verdict gives the modes' weights ([mode_weights()]) and says what was
#'   searched; for one mode, the start is then moved by rounds of adaptive
#'   importance sampling on 4096 draws each (a Student t whose centre,
#'   covariance and tails, 7 to 100 degrees of freedom, follow the
#'   importance weights), and the last round's draws are the monitor
#'   samples of step 0; where no round passes as a proposal, the flow
#'   trains from the Gaussian of the kept t's mean and covariance (a t's
#'   far draws would dominate the training's first steps); the draws of
#'   those rounds, and at the end the trained flow's own, that lie beyond
#'   every known mode's 99% ellipsoid descend (the 16 of largest weight), and a
#'   mode they find that the search missed joins the others: the start
#'   becomes the mixture of all, and a flow that trained without the mode
#'   is run again from it (its seconds counted in the fit's);
#' * the network: 32 x 32, batches of 512, a pool of \eqn{2^{16}} and 4096 monitor samples.
#'
#' After every step `history` records `h`, the iterations used and, from
#' the exact densities of the monitor samples, \eqn{KL(\rho_k \| \pi)}
#' estimated as \eqn{\log\hat Z - \mathrm{ELBO}} with its standard
#' error, the Pareto \eqn{\hat k} and the relative ESS of the importance
#' weights, and `moment_gap` (how far the samples' means and sds are from
#' their importance-weighted values). `fit$verdict` and `print(fit)` say in
#' words whether the flow reached the target; a fit that did not warns.
#'
#' @section Exact draws:
#' Every draw of a flow comes with its exact density \eqn{\rho_k(x)}, so
#' the flow corrects itself: an independence Metropolis-Hastings chain that
#' proposes a fresh draw \eqn{x'} of the flow at every iteration and accepts
#' it with probability \eqn{\min(1, w(x')/w(x))}, \eqn{w = e^{-\beta\Phi} /
#' \rho_k}, leaves the target invariant whatever the flow's error; how far
#' the flow is from the target shows only in the acceptance rate and the
#' effective sample size. The proposals are the flow's draws with a tenth
#' of its start widened twice about its centre (the flow of the mixture
#' \eqn{0.9\rho_0 + 0.1\rho_0^{w}}, whose density stays exact): where the
#' target's tail is longer than the flow's, those proposals bound the
#' weights that would otherwise hold a chain in place for hundreds of proposals. A fit run to its
#' stationary law keeps `draws` (4000, see [jko_control()]) such draws in 4 chains, each started by
#' importance resampling and each kept draw the last of as many proposals as the monitor's
#' importance ESS asks for (one per draw for a flow at the target, up to 25; where those proposals'
#' evaluations would take over 10 s, as the target's cost a point measured on the monitor tells, as
#' many as fit in 10 s or give a bulk ESS of 1000, more only while the chains' bulk ESS is below
#' 1000 or their R-hat 1.01 or more, and the verdict says so). That cost is the smaller of the wall
#' and the CPU seconds, rounded to a power of 2, so that a seeded fit gives the same draws on a busy
#' machine (unless the cost lies within its timing noise of a rounding boundary; a parallel target's
#' cost is its wall seconds, and a target that waits without computing, on a remote service say,
#' counts as
#' cheap). Where a flow that passed as a proposal is thin in a tail, the weights'
#' ESS overstates what they carry for a sd: the first proposals' effective
#' sample size for every coordinate's mean and sd (that of self-normalised
#' importance sampling, a fraction \eqn{e} a proposal) then asks for
#' \eqn{2(1/e - 1)} proposals a draw, up to 32 and within the same 10 s,
#' which keeps the draws' means and sds about as accurate as those of as
#' many independent draws. The draws come with their diagnostics (`fit$draws`: acceptance, the
#' smallest bulk and tail ESS and the largest R-hat of the posterior
#' package, the Pareto \eqn{\hat k} of the proposals' weights). They are
#' what [jko_sample()] returns by default at the last step, and their
#' proposals' weights give [jko_evidence()]. The flow is therefore trained
#' only until it is a good proposal, not until it is the target: the
#' verdict says the draws are the target's when the flow passed as a
#' proposal and the chains mixed (R-hat below 1.01, bulk ESS at least 400,
#' \eqn{\hat k} of the proposals below 1/2). Where the flow stops short of its target (not a
#' proposal), a target of one mode gets HMC chains started at the flow's draws instead (`hmc` in
#' [jko_control()]). A flow that misses a part of the target altogether (a mode it never saw) cannot
#' be corrected there, and no diagnostic of its draws can see it.
#'
#' An error in a user's potential, a divergence or an interrupt stops the fit
#' with an error of class `"jkoflow_error_fit"` whose `fit` element holds the
#' steps already completed; [jko_last_fit()] returns them too and
#' [jko_continue()] resumes from them.
#'
#' @param potential A potential: see [potentials] and [new_potential()]; a
#'   target: see [targets]; or
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
#'   time, loss, free energy, seconds), the loss of every iteration
#'   (`loss_trace`) and, for a time-accurate flow on a potential,
#'   `accuracy`: per step the closed-form step's move of the mean (`shift`,
#'   in sds) and its ratio of sds (`sd_ratio`), the symmetric KL `gap` of
#'   the trained map's law from it, the rounds of training again
#'   (`retrained`) and whether the step is `flagged` (see "Time accuracy").
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
  # a fit that fails before its first step leaves no fit behind
  the$last_fit <- NULL
  # the resident servers of a parallel target let the plan's workers go
  on.exit(resident_stop_all(), add = TRUE)
  t0 <- proc.time()[["elapsed"]]
  dots <- list(...)
  call <- match.call()
  chosen <- c(h = missing(h), steps = missing(steps))
  flow_from <- function(init) {
    new_flow(potential, init, h, steps, beta, control, dots, stationary, threads, verbose,
             call = call, chosen = chosen)
  }
  fit <- run_flow(flow_from(if (!missing(init)) init), warn = FALSE)$fit
  # a mode that the flow's draws found and the search missed: the flow
  # runs again from the mixture of all the modes (R/mode_weights.R)
  if (missing(init)) {
    fit <- rerun_from_modes(fit, function(q) run_flow(flow_from(q), warn = FALSE)$fit, verbose, t0)
  }
  if (isTRUE(fit$stationary) && !fit$verdict$reached) warn_whole(verdict_text(fit$verdict))
  # the whole call's wall time: the start, the steps, the draws and verdict
  fit$elapsed <- proc.time()[["elapsed"]] - t0
  fit
}

# A flow ready to run: the arguments of jko_fit() checked, the start chosen
# where it is not given (init = NULL), the monitor samples drawn (or taken
# from `monitor`, list(x, log_density): draws of the start made already),
# the fit of no step built. Returns list(fit, schedule, threads, verbose):
# the schedule is list(h, steps), NULL where a flow to the stationary law
# chooses (`chosen` says which of h and steps the user left unset).
new_flow <- function(potential, init, h, steps, beta, control, dots, stationary, threads,
                     verbose, call, chosen = c(h = FALSE, steps = FALSE), monitor = NULL) {
  # a free energy of terms (R/energy.R) in place of a potential
  energy <- inherits(potential, "jko_energy")
  if (!energy) check_potential(potential)
  # the target's rejections so far (a Stan program counts them per target,
  # across fits): the verdict reports this fit's own
  rejections0 <- if (!energy) potential_rejections(potential)
  control <- update_control(control, dots, call = call)
  if (is.null(stationary)) stationary <- is_target(potential)
  stationary <- check_flag(stationary, "stationary")
  if (!is.null(init)) check_init(init, call = call)
  if (!energy) probe_target(potential, init, stationary, call = call)
  if (energy && stationary) {
    abort(paste0("`stationary = TRUE` needs a potential or target alone (its stationary ",
                 "law is exp(-beta Phi)), not a free energy from jko_energy()."), call = call)
  }
  if (stationary) control <- stationary_defaults(control)
  h <- check_positive(h, "h", call = call)
  steps <- check_count(steps, "steps", min = if (stationary) 1 else 0, call = call)
  beta <- check_positive(beta, "beta", call = call)
  threads <- resolve_threads(threads)
  verbose <- check_flag(verbose, "verbose")
  # every random choice of the flow comes from a stream of this seed (R/streams.R)
  seed <- new_seed()
  # A flow to the stationary law starts from a Laplace approximation (or,
  # failing that, the target's prior); the time-accurate flow of a
  # target that carries a prior (target_logistic()) from the prior.
  chose_start <- is.null(init) && stationary
  if (is.null(init)) {
    init <- if (stationary) with_stream(seed, "start", stationary_start(potential, potential$init, beta))
            else if (!is.null(potential$init)) potential$init
            else abort("`init` is needed: the initial distribution of the flow.", call = call)
  }
  # draws of a chosen start with their potentials, made already by its
  # importance sampling (adapt_start(), R/pmc.R): the monitor samples
  reuse <- NULL
  if (chose_start && !is.null(init$draws)) {
    reuse <- init$draws
    init$draws <- NULL
  }
  if (is.null(monitor) && !is.null(reuse) && nrow(reuse$x) == control$monitor) {
    monitor <- list(x = reuse$x, log_density = reuse$log_density)
  } else reuse <- NULL
  law <- as_law(init)
  if (energy) check_energy_fit(potential, law_has_density(law), control)
  D <- law$dim
  if (!is.na(potential$dim) && potential$dim != D) {
    abort("`potential` has dimension %d but `init` has dimension %d.", potential$dim, D,
          call = call)
  }
  net <- icnn_spec(D, control$hidden, control$rank, control$activation, control$alpha_min)

  if (is.null(monitor)) {
    monitor <- with_stream(seed, "monitor", law_draw(law, control$monitor, threads = threads))
  }
  mon <- monitor$x
  mon_ld <- if (is.null(monitor$log_density)) rep(NA_real_, nrow(mon)) else monitor$log_density
  # Phi at the monitor samples: checked, except where a target's support
  # may leave it infinite
  t_phi <- proc.time()
  phi <- if (!is.null(reuse)) reuse$phi
         else if (energy) c_energy_eval(potential, mon, mon_ld, beta, threads)
         else if (isTRUE(potential$support)) potential_values(potential, mon)
         else c_pot_eval(potential, mon)$value
  # the potential's cost a point (seconds), which the exact draws' number
  # of proposals heeds (make_posterior_draws(), R/posterior.R)
  phi_cost <- point_cost(if (!is.null(reuse)) reuse$seconds else cost_seconds(t_phi, potential),
                         nrow(mon))
  fit <- structure(list(
    call = call, potential = potential, init = law, dim = D, h = h, beta = beta,
    phi_cost = if (!energy) phi_cost,
    net = net, settings = control, seed = seed, rejections0 = rejections0,
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
    start_std = standardisation(law, mon, whiten = stationary),
    history = cbind(data.frame(step = 0L, time = 0, h = NA_real_, iters = NA_integer_,
                               loss = NA_real_,
                               free_energy = step_free_energy(potential, phi, mon_ld, beta),
                               seconds = 0),
                    target_divergence(if (energy) NA_real_ else phi, mon_ld, beta, mon)),
    loss_trace = list(),
    # the monitor samples of the last step (one per row) and their
    # log-densities
    monitor = list(points = mon, log_density = mon_ld, phi = phi)
  ), class = "jko_fit")
  # For the stationary law: h and steps chosen as the flow goes unless given
  schedule <- if (!stationary) list(h = h, steps = steps) else
    list(h = if (chosen[["h"]]) NULL else h, steps = if (chosen[["steps"]]) NULL else steps)
  list(fit = fit, schedule = schedule, threads = threads, verbose = verbose)
}

# Runs a flow from new_flow() (from `pool`, draws of its start, if given), OpenBLAS on one
# thread (single_blas(), R/threads.R): list(fit, pool, pool_ld), the fit with its verdict where
# it was run for its stationary law (and a warning where it did not reach it, unless warn FALSE).
run_flow <- function(flow, pool = NULL, warn = TRUE) {
  single_blas()
  out <- jko_run(flow$fit, flow$schedule, flow$threads, flow$verbose, pool = pool)
  out$fit <- with_verdict(out$fit, flow$schedule, flow$threads, warn)
  out
}

# A flow to the stationary law keeps exact draws of it (R/posterior.R) and
# says whether it reached the target, with a warning when it did not.
with_verdict <- function(fit, schedule, threads, warn = TRUE) {
  if (!isTRUE(fit$stationary)) return(fit)
  fit$draws <- make_posterior_draws(fit, threads = threads)
  fit$modes <- fit_modes(fit, threads)  # modes: the modes' weights (R/mode_weights.R)
  if (!is.null(fit$draws)) fit$draws$proposals <- NULL  # (kept for fit_modes() alone)
  fit$verdict <- target_verdict(fit, schedule)
  if (warn && !fit$verdict$reached) warn_whole(verdict_text(fit$verdict))
  fit
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
  # a stationary flow goes on with its own choice of h
  schedule <- list(h = if (!isTRUE(fit$stationary)) fit$h, steps = steps)
  t0 <- proc.time()[["elapsed"]]
  on.exit(resident_stop_all(), add = TRUE)
  out <- run_flow(list(fit = fit, schedule = schedule, threads = threads, verbose = verbose))$fit
  if (!is.null(fit$elapsed)) out$elapsed <- fit$elapsed + proc.time()[["elapsed"]] - t0
  out
}
