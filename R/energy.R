# Free energies beyond Fokker-Planck: a potential, an interaction energy and
# an internal energy (entropy or porous medium), each a term evaluated in C
# (src/terms.c: a term is a list of class c(<kind>, "jko_term") whose
# element `builtin` names a row of the table `term_kinds`; its data in `par`).

#' Free energies made of terms
#'
#' [jko_fit()] computes the Wasserstein gradient flow of a free energy
#' \deqn{F(\rho) = \int\Phi\,d\rho + \frac12\iint W(x - y)\,d\rho(x)\,d\rho(y)
#'   + \int U(\rho(x))\,dx,}{F(rho) = int Phi drho + 1/2 int int W(x - y) drho(x) drho(y) + int U(rho(x)) dx,}
#' a potential energy, an interaction (aggregation) energy and an internal
#' energy, by the JKO scheme: each step
#' \eqn{\rho_k = \arg\min_\rho F(\rho) + W_2^2(\rho_{k-1}, \rho)/(2h)} is the
#' push-forward of \eqn{\rho_{k-1}} by the gradient of a convex network.
#' Pass `jko_energy(...)` as the first argument of [jko_fit()] in place of a
#' potential; a potential alone means the Fokker-Planck free energy
#' \eqn{\int\Phi\,d\rho + \beta^{-1}\int\rho\log\rho}, the default.
#'
#' The flows these energies give:
#' * entropy, \eqn{U(\rho) = \beta^{-1}\rho\log\rho}
#'   (`diffusion_entropy()`, with \eqn{\beta} the `beta` of [jko_fit()]):
#'   linear diffusion, \eqn{\partial_t\rho = \beta^{-1}\Delta\rho + \dots};
#' * porous medium, \eqn{U(\rho) = \rho^m/(m - 1)}, \eqn{m > 1}
#'   (`diffusion_porous(m)`): \eqn{U'(\rho) = m\rho^{m-1}/(m-1)}, so
#'   \eqn{\nabla\cdot(\rho\nabla U'(\rho)) = \Delta(\rho^m)} and the flow
#'   solves \eqn{\partial_t\rho = \Delta(\rho^m) + \dots}, whose
#'   self-similar solutions are the Barenblatt profiles
#'   ([init_barenblatt()]);
#' * interaction, \eqn{\partial_t\rho = \nabla\cdot(\rho\,\nabla W * \rho) + \dots}:
#'   `interaction_quadratic()`, \eqn{W(z) = |z|^2/2}, pulls every point to
#'   the mean at unit rate (the covariance contracts as \eqn{e^{-2t}});
#'   `interaction_power(a, b)`, \eqn{W(z) = |z|^a/a - |z|^b/b} (with
#'   \eqn{b = 0}: \eqn{-\log|z|}), attraction at long range and repulsion at
#'   short range for \eqn{a > b}; `interaction_fn(W, gradient)`, any even
#'   kernel as an R function.
#'
#' How the terms are estimated in a step, at the points
#' \eqn{y_i = \nabla\psi(x_i)} of a batch \eqn{x_i \sim \rho_{k-1}}: the
#' potential as \eqn{\Phi(y_i)}; the internal energy
#' \eqn{\int U(\rho) = E\,U(\rho_k(Y))/\rho_k(Y)} with the exact density of
#' the pushed point, \eqn{\rho_k(y_i) = \rho_{k-1}(x_i)/\det\nabla^2\psi(x_i)}
#' (the entropy needs only the log-determinant; the porous medium needs
#' \eqn{\rho_{k-1}} at the batch, which the flow carries with its samples,
#' so `init` must have a log-density); the interaction on pairs: the batch
#' is cut into blocks of about `block` points (independent draws) and
#' \eqn{W} is summed over the pairs within each block, an unbiased estimate
#' at a cost of `batch * block` kernel evaluations instead of
#' `batch^2`. The free energy recorded after each step (`fit$history`,
#' [plot.jko_fit()]) is the same sum at the monitor samples with their
#' exact log-densities.
#'
#' @param potential `NULL` (no potential) or a potential: see [potentials].
#' @param interaction `NULL` (none) or an interaction kernel:
#'   `interaction_quadratic()`, `interaction_power()` or `interaction_fn()`.
#' @param diffusion `NULL` (none) or the internal energy:
#'   `diffusion_entropy()` (the default) or `diffusion_porous()`.
#' @param a,b Exponents of the attraction and of the repulsion, `a > b`,
#'   `a > 0`; `b = 0` means \eqn{-\log|z|}.
#' @param W An R function of a P x D matrix of differences \eqn{z = x - y}
#'   returning the P values \eqn{W(z)}; `W` must be even,
#'   \eqn{W(-z) = W(z)}.
#' @param gradient `NULL` (central finite differences) or an R function of
#'   the same matrix returning the P x D gradients \eqn{\nabla W(z)}.
#' @param block Pairs are taken within blocks of this many points of a
#'   batch (at least 2; a batch smaller than two blocks is one block).
#' @param m The exponent of the porous medium, a number above 1.
#' @return `jko_energy()`: an object of class `"jko_energy"` (with `dim`,
#'   `label`, `potential` and `terms`); the others: a term, of class
#'   `"jko_term"`.
#' @seealso [jko_fit()], [init_barenblatt()].
#' @examples
#' # aggregation-diffusion: quadratic interaction, entropy, quadratic
#' # confinement; its steady state is N(0, I / (beta (1 + 1)))
#' en <- jko_energy(potential_quadratic(diag(2)), interaction_quadratic())
#' en
#' set.seed(1)
#' fit <- jko_fit(en, init_gaussian(c(0, 0), 2), h = 0.5, steps = 2,
#'                hidden = c(8, 8), batch = 128, iters = 60)
#' fit$history$free_energy
#' # the porous-medium equation from a Barenblatt profile
#' pm <- jko_energy(diffusion = diffusion_porous(2))
#' fit <- jko_fit(pm, init_barenblatt(2, m = 2, time = 1), h = 0.25, steps = 2,
#'                hidden = c(8, 8), batch = 128, iters = 60)
#' @export
jko_energy <- function(potential = NULL, interaction = NULL,
                       diffusion = diffusion_entropy()) {
  if (!is.null(potential)) check_potential(potential)
  if (!is.null(interaction) && !inherits(interaction, "jko_interaction")) {
    abort(paste0("`interaction` must be NULL or a kernel from interaction_quadratic(), ",
                 "interaction_power() or interaction_fn(), not %s."), describe(interaction))
  }
  if (!is.null(diffusion) && !inherits(diffusion, "jko_diffusion")) {
    abort(paste0("`diffusion` must be NULL or diffusion_entropy() or diffusion_porous(), ",
                 "not %s."), describe(diffusion))
  }
  terms <- Filter(Negate(is.null), list(interaction, diffusion))
  if (is.null(potential) && !length(terms)) {
    abort("a free energy needs at least one of `potential`, `interaction` and `diffusion`.")
  }
  labels <- c(if (!is.null(potential)) paste("potential", potential$label),
              vapply(terms, `[[`, "", "label"))
  structure(list(potential = potential, terms = unname(terms),
                 dim = if (is.null(potential)) NA_integer_ else potential$dim,
                 label = paste(labels, collapse = " + ")),
            class = "jko_energy")
}

# A term evaluated in C: `kind` names its row of src/terms.c's table (by
# which C knows it, never by a class); its class is "jko_<kind>".
new_term <- function(kind, family, label, par = numeric(), ...) {
  structure(list(par = as.double(par), label = label, builtin = kind, ...),
            class = c(paste0("jko_", kind), family, "jko_term"))
}

check_block <- function(block) {
  block <- check_count(block, "block", min = 2, call = sys.call(-2L))
  block
}

#' @rdname jko_energy
#' @export
interaction_quadratic <- function(block = 256L) {
  new_term("interaction_quadratic", "jko_interaction", "interaction W(z) = |z|^2/2",
       block = check_block(block))
}

#' @rdname jko_energy
#' @export
interaction_power <- function(a = 2, b = 1, block = 256L) {
  if (!is.numeric(a) || length(a) != 1L || !is.finite(a) || a <= 0) {
    abort("`a` must be a single positive number, not %s.", describe(a))
  }
  if (!is.numeric(b) || length(b) != 1L || !is.finite(b) || b >= a) {
    abort("`b` must be a single number below `a` (%g), not %s.", a, describe(b))
  }
  new_term("interaction_power", "jko_interaction",
       sprintf("interaction W(z) = %s", if (b == 0) sprintf("|z|^%g/%g - log|z|", a, a)
               else sprintf("|z|^%g/%g - |z|^%g/%g", a, a, b, b)),
       par = c(a, b), block = check_block(block))
}

#' @rdname jko_energy
#' @export
interaction_fn <- function(W, gradient = NULL, block = 256L) {
  if (!is.function(W)) abort("`W` must be a function of a P x D matrix, not %s.", describe(W))
  if (!is.null(gradient) && !is.function(gradient)) {
    abort("`gradient` must be NULL or a function of a P x D matrix, not %s.",
          describe(gradient))
  }
  nm <- substitute(W)
  check_even_kernel(W, gradient)
  new_term("interaction_fn", "jko_interaction",
       sprintf("interaction W = %s", if (is.name(nm)) as.character(nm) else "an R function"),
       W = W, gradient = gradient, block = check_block(block))
}

# An interaction energy sums W over the differences of pairs, both ways:
# only an even kernel, W(-z) = W(z) (and an odd gradient), is one. Tried on
# a few random differences in dimensions 1 to 3 (those the functions
# accept: a kernel may need a given dimension); a kernel that differs under
# the sign of z is refused, with where.
check_even_kernel <- function(W, gradient, call = sys.call(-1L)) {
  seed <- if (exists(".Random.seed", globalenv(), inherits = FALSE))
    get(".Random.seed", globalenv(), inherits = FALSE)
  on.exit(if (!is.null(seed)) assign(".Random.seed", seed, envir = globalenv()))
  for (D in 1:3) {
    z <- matrix(stats::rnorm(8L * D), 8L, D)
    try_fun <- function(f, x) tryCatch(f(x), error = function(e) NULL)
    wp <- try_fun(W, z)
    wm <- try_fun(W, -z)
    if (is.numeric(wp) && is.numeric(wm) && length(wp) == 8L && length(wm) == 8L &&
        all(is.finite(wp)) && all(is.finite(wm))) {
      bad <- abs(wp - wm) > 1e-8 * (1 + abs(wp) + abs(wm))
      if (any(bad)) {
        i <- which(bad)[1L]
        abort(paste0("`W` must be an even kernel, W(-z) = W(z) (an interaction energy sums ",
                     "it over the pairs' differences both ways): in dimension %d, W(z) = %.6g ",
                     "but W(-z) = %.6g at z = (%s)."), D, wp[i], wm[i],
              paste(signif(z[i, ], 4), collapse = ", "), call = call)
      }
    }
    if (!is.null(gradient)) {
      gp <- try_fun(gradient, z)
      gm <- try_fun(gradient, -z)
      if (is.numeric(gp) && is.numeric(gm) && identical(dim(gp), dim(z)) &&
          identical(dim(gm), dim(z)) && all(is.finite(gp)) && all(is.finite(gm))) {
        bad <- abs(gp + gm) > 1e-8 * (1 + abs(gp) + abs(gm))
        if (any(bad)) {
          i <- which(rowSums(bad) > 0)[1L]
          abort(paste0("`gradient` must be odd, the gradient of an even kernel: in dimension %d ",
                       "gradient(-z) is not -gradient(z) at z = (%s)."), D,
                paste(signif(z[i, ], 4), collapse = ", "), call = call)
        }
      }
    }
  }
  invisible()
}

#' @rdname jko_energy
#' @export
diffusion_entropy <- function() {
  new_term("diffusion_entropy", "jko_diffusion", "entropy / beta")
}

#' @rdname jko_energy
#' @export
diffusion_porous <- function(m = 2) {
  if (!is.numeric(m) || length(m) != 1L || !is.finite(m) || m <= 1) {
    abort("`m` must be a single number above 1, not %s.", describe(m))
  }
  new_term("diffusion_porous", "jko_diffusion",
       sprintf("porous medium rho^%g/%g", m, m - 1), par = m)
}

#' @export
print.jko_energy <- function(x, ...) {
  check_dots(...)
  cat("Free energy:", x$label, "\n")
  invisible(x)
}

#' @export
print.jko_term <- function(x, ...) {
  check_dots(...)
  cat("Free-energy term:", x$label, "\n")
  invisible(x)
}

# Does the energy need the log-densities of the flow's samples?
energy_needs_density <- function(energy) {
  inherits(energy, "jko_energy") &&
    any(vapply(energy$terms, inherits, NA, "jko_diffusion_porous"))
}

# The checks of jko_fit() for a free energy, once init and the settings are
# known.
check_energy_fit <- function(energy, has_density, control) {
  if (energy_needs_density(energy) && !has_density) {
    abort(paste0("`init` must have a log-density: the porous-medium energy is estimated ",
                 "from the densities of the samples (give `log_density` to init_samples())."))
  }
  if (any(vapply(energy$terms, inherits, NA, "jko_interaction")) &&
      (control$batch < 2L || control$monitor < 2L)) {
    abort("an interaction energy needs `batch` and `monitor` of at least 2.")
  }
  invisible(energy)
}

# Called from C (src/terms.c) for a kernel given as an R function, on the
# P x D matrix z of the pairs' differences: list(value = P doubles,
# gradient = P x D doubles or NULL), checked; anything wrong is an error of
# class "jkoflow_error_potential" that carries `iter`.
interaction_eval_r <- function(term, z, iter = 0L, grad = TRUE) {
  fail <- function(fmt, ...) {
    abort(fmt, ..., class = "jkoflow_error_potential", data = list(iter = iter),
          call = NULL)
  }
  call_user <- function(fun, name) {
    tryCatch(fun(z), error = function(e) {
      fail("the interaction kernel's `%s` failed%s: %s", name, at_iter(iter),
           conditionMessage(e))
    })
  }
  v <- call_user(term$W, "W")
  if (!is.numeric(v) || length(v) != nrow(z) || any(!is.finite(v))) {
    fail("the interaction kernel's `W` returned %s%s; expected %d finite numbers (one per row).",
         describe(v), at_iter(iter), nrow(z))
  }
  g <- NULL
  if (grad) {
    g <- if (is.null(term$gradient)) fd_gradient(term$W, z) else call_user(term$gradient, "gradient")
    if (!is.numeric(g) || !identical(dim(g), dim(z)) || any(!is.finite(g))) {
      fail("the interaction kernel's `gradient` returned %s%s; expected a finite %d x %d matrix.",
           describe(g), at_iter(iter), nrow(z), ncol(z))
    }
    storage.mode(g) <- "double"
  }
  list(value = as.double(v), gradient = g)
}

#' The Barenblatt profile of the porous-medium equation
#'
#' The self-similar solution of \eqn{\partial_t\rho = \Delta(\rho^m)} in
#' \eqn{D} dimensions with unit mass, the flow of
#' `jko_energy(diffusion = diffusion_porous(m))`:
#' \deqn{\rho(x, t) = t^{-\alpha}\left(C - k|x|^2 t^{-2\alpha/D}\right)_+^{1/(m-1)},
#'   \quad \alpha = \frac{D}{D(m-1)+2},\ k = \frac{\alpha(m-1)}{2mD},}{rho(x, t) = t^-alpha (C - k |x|^2 t^(-2 alpha/D))_+^(1/(m-1)), alpha = D/(D(m-1)+2), k = alpha (m-1)/(2 m D),}
#' with \eqn{C} fixed by the mass. Its support is the ball of radius
#' \eqn{R(t) = \sqrt{C/k}\,t^{\alpha/D}}. As an initial distribution of
#' [jko_fit()] it gives exact samples and log-density (\eqn{-\infty}
#' outside the support), so a flow started at `time` \eqn{t_0} is
#' `init_barenblatt(dim, m, t0 + t)` at time \eqn{t}.
#'
#' @param dim The dimension \eqn{D}.
#' @param m The exponent, above 1.
#' @param time The time \eqn{t > 0} of the profile.
#' @return An initial distribution (class `"jko_init"`) with, besides
#'   `sample()` and `log_density()`, the support's `radius`, the `mean` and
#'   the `cov`.
#' @examples
#' b <- init_barenblatt(2, m = 2, time = 1)
#' b$radius
#' b$log_density(rbind(c(0, 0), c(1, 1)))
#' @export
init_barenblatt <- function(dim, m = 2, time = 1) {
  D <- check_count(dim, "dim")
  if (!is.numeric(m) || length(m) != 1L || !is.finite(m) || m <= 1) {
    abort("`m` must be a single number above 1, not %s.", describe(m))
  }
  time <- check_positive(time, "time")
  alpha <- D / (D * (m - 1) + 2)
  k <- alpha * (m - 1) / (2 * m * D)
  p <- 1 / (m - 1)
  # unit mass: C^(p + D/2) k^(-D/2) pi^(D/2) Gamma(p + 1) / Gamma(p + 1 + D/2) = 1
  logC <- (D / 2 * log(k) + lgamma(p + 1 + D / 2) - D / 2 * log(pi) - lgamma(p + 1)) /
    (p + D / 2)
  C <- exp(logC)
  R <- sqrt(C / k) * time^(alpha / D)
  structure(list(
    dim = D, m = m, time = time, radius = R,
    mean = rep(0, D), cov = diag(R^2 / (D + 2 * p + 2), D),
    sample = function(n) {
      z <- matrix(stats::rnorm(n * D), n, D)
      # |x| / R = s, s^2 ~ Beta(D/2, p + 1)
      s <- sqrt(stats::rbeta(n, D / 2, p + 1))
      z * (R * s / sqrt(rowSums(z^2)))
    },
    log_density = function(x) {
      x <- as.matrix(x)
      inner <- C - k * rowSums(x^2) * time^(-2 * alpha / D)
      ifelse(inner > 0, -alpha * log(time) + p * log(pmax(inner, 0)), -Inf)
    },
    label = sprintf("Barenblatt profile, m = %g, dimension %d, time %g", m, D, time)
  ), class = "jko_init")
}
