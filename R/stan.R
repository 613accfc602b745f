# Targets from Stan programs, through rstan's model instance: log_prob and
# grad_log_prob on the unconstrained scale (Jacobian included), and the
# change of variables to the model's own (constrained) parameters.

#' A target from a Stan program
#'
#' Makes the posterior of a Stan program a target for [jko_fit()]: the flow
#' runs on Stan's unconstrained scale, where the log-density (with the
#' Jacobian of the change of variables) and its gradient come from rstan's
#' `log_prob()` and `grad_log_prob()`. Draws ([jko_sample()],
#' [as_draws_matrix][as_draws_matrix.jko_fit]) come back on the
#' constrained scale under the program's own names (`mu`, `tau`,
#' `theta[1]`, ...; transformed parameters and generated quantities
#' included), and densities ([jko_density()]) on the scale asked for.
#'
#' Stan drops the constant terms of `~` statements; write the model with
#' `target += normal_lpdf(...)` (and so on) where the evidence
#' ([jko_evidence()]) should be the marginal likelihood \eqn{p(y)} itself.
#' A point where the program rejects counts as outside the posterior's
#' support, as in Stan's samplers: any exception from its log-density or
#' gradient (`reject()`, an argument out of its domain, an ODE solver that
#' runs out of steps...), or a log-density of `-Inf` or `NaN`. The target
#' counts them: `tg$rejections()` gives the points evaluated, the points
#' rejected, their share and the first rejection's message, and `print()`
#' of a fit shows them. A fit stops only where every point of a batch is
#' rejected, with that message. A target read back from a file has lost
#' its compiled model: using it is an error that says to make it again.
#'
#' An rstan older than 2.26 parses the syntax of its own Stan: a program in
#' today's syntax has its array declarations (`array[N] real x`,
#' `array[] int` arguments) rewritten in the older syntax (`real x[N]`,
#' `int[]`), with a message; constructs that have no such rewriting (the
#' variadic ODE solvers `ode_rk45()`... of Stan 2.24, `reduce_sum()`,
#' complex numbers...) are named in the error, with the remedy: a newer
#' rstan.
#'
#' Each batch costs one `grad_log_prob()` call per point (about 10-50
#' microseconds for small models: a 512-point batch of a 5-parameter
#' regression on 100 observations takes about 10 ms); the whole fit
#' typically makes 10^5 to 10^6 such calls.
#'
#' @param model A Stan program: a `stanfit` (its data are used, and `data`
#'   must be empty), a `stanmodel` from [rstan::stan_model()], the path of
#'   a `.stan` file, or the program's code as a string.
#' @param data The data, a named list as for [rstan::sampling()].
#' @param seed Seed of Stan's own random number generator (used by random
#'   generated quantities); by default drawn from R's, so [set.seed()]
#'   reproduces the draws.
#' @param ... Passed to [rstan::stan_model()] when the program is compiled
#'   here.
#' @return A target (a `"jko_potential"` of class `"jko_target_stan"`) of
#'   dimension the number of unconstrained parameters, carrying the
#'   `stanfit` in `fit`, and in `rejections()` a function that returns the
#'   rejections so far: `list(points, rejected, share, first)`.
#' @seealso [jko_fit()], [target_logdensity()],
#'   [as_draws_matrix.jko_fit()] for the posterior package.
#' @examplesIf interactive() && requireNamespace("rstan", quietly = TRUE)
#' code <- "
#' data { int N; vector[N] y; }
#' parameters { real mu; real<lower=0> sigma; }
#' model {
#'   target += normal_lpdf(mu | 0, 10) + exponential_lpdf(sigma | 1);
#'   target += normal_lpdf(y | mu, sigma);
#' }"
#' tg <- target_stan(code, data = list(N = 20, y = rnorm(20, 3, 2)))
#' fit <- jko_fit(tg)
#' summary(jko_sample(fit, 4000))      # mu and sigma, on their own scale
#' jko_evidence(fit)                   # log p(y)
#' @export
target_stan <- function(model, data = list(), seed = NULL, ...) {
  if (!requireNamespace("rstan", quietly = TRUE)) {
    abort("target_stan() needs the rstan package: install.packages(\"rstan\").")
  }
  if (!is.list(data) && !is.environment(data)) {
    abort("`data` must be a named list (as for rstan::sampling()), not %s.", describe(data))
  }
  if (!is.null(seed)) seed <- check_count(seed, "seed")
  else seed <- sample.int(.Machine$integer.max, 1L)
  sf <- stan_fit_for(model, data, seed, ...)
  inst <- sf@.MISC$stan_fit_instance
  D <- rstan::get_num_upars(sf)
  if (D < 1L) abort("the Stan program has no parameters: there is nothing to sample.")
  lp <- inst$log_prob
  glp <- inst$grad_log_prob
  # One row at a time: rstan has no batch interface. A point the program
  # rejects is -Inf, outside the support, as in Stan's samplers; the
  # rejections are counted in `tally`, which only these two functions write.
  tally <- stan_tally()
  value <- function(x) {
    x <- matrix(x, ncol = D)
    -stan_rows(x, function(u) lp(u, TRUE, FALSE), 1L, inst, tally)
  }
  value_gradient <- function(x) {
    x <- matrix(x, ncol = D)
    out <- stan_rows(x, function(u) {
      g <- glp(u, TRUE)
      c(attr(g, "log_prob"), g)
    }, D + 1L, inst, tally)
    list(value = -out[, 1L], gradient = -out[, -1L, drop = FALSE])
  }
  gradient <- function(x) value_gradient(x)$gradient
  vars <- stan_names(inst$constrained_param_names(TRUE, TRUE))
  n_par <- length(inst$constrained_param_names(FALSE, FALSE))
  dims <- inst$param_dims()
  dims <- dims[setdiff(names(dims), "lp__")]
  par_dims <- stan_parameter_dims(dims, n_par)
  transform <- list(
    variables = vars,
    parameters = vars[seq_len(n_par)],
    constrain = function(u) {
      out <- t(apply(matrix(u, ncol = D), 1L, inst$constrain_pars))
      if (length(vars) == 1L) out <- t(out)
      colnames(out) <- vars
      out
    },
    unconstrain = function(theta) {
      theta <- matrix(theta, ncol = n_par)
      out <- t(apply(theta, 1L, function(p) inst$unconstrain_pars(relist_stan(p, par_dims))))
      if (D == 1L) out <- t(out)
      out
    },
    # log |d theta / d u|: Stan's log-density with and without its Jacobian
    log_jacobian = function(u) {
      u <- matrix(u, ncol = D)
      stan_rows(u, function(v) lp(v, TRUE, FALSE) - lp(v, FALSE, FALSE), 1L, inst)
    }
  )
  name <- sf@model_name
  pot <- new_potential(value, gradient, D,
                       sprintf("Stan program '%s', %d unconstrained parameters", name, D),
                       names = c(value = "log_prob", gradient = "grad_log_prob"),
                       class = "jko_target_stan", value_gradient = value_gradient,
                       variables = stan_unconstrained_names(inst, D))
  pot$fit <- sf
  pot$rejections <- function() stan_rejections(tally)
  as_target(pot, transform = transform)
}

# A stanfit holding the model instance for `data`.
stan_fit_for <- function(model, data, seed, ...) {
  if (inherits(model, "stanfit")) {
    if (length(data) > 0L) {
      abort("`data` must be empty when `model` is a stanfit: it carries its own data.")
    }
    if (!rstan_instance_ok(model)) {
      abort("the stanfit's model instance is not valid (a fit read back from a file?): call target_stan() with its program and data.")
    }
    return(model)
  }
  if (is.character(model) && length(model) == 1L && !is.na(model)) {
    model <- if (grepl("\\.stan$", model) || (file.exists(model) && !grepl("\\{", model))) {
      if (!file.exists(model)) abort("`model`: the file '%s' does not exist.", model)
      stan_compile(paste(readLines(model, warn = FALSE), collapse = "\n"), file = model, ...)
    } else {
      stan_compile(model, ...)
    }
  }
  if (!inherits(model, "stanmodel")) {
    abort("`model` must be a stanfit, a stanmodel, a .stan file or Stan code, not %s.",
          describe(model))
  }
  sf <- tryCatch(
    suppress_stan_output(suppressMessages(
      rstan::sampling(model, data = data, chains = 0L, seed = seed))),
    error = function(e) abort("the Stan program could not be set up with `data`: %s",
                              conditionMessage(e)))
  if (!rstan_instance_ok(sf)) {
    abort("the Stan program could not be set up with `data` (no model instance).")
  }
  sf
}

rstan_instance_ok <- function(sf) {
  stan_instance_alive(tryCatch(sf@.MISC$stan_fit_instance, error = function(e) NULL))
}

stan_instance_alive <- function(inst) {
  !is.null(inst) && isTRUE(tryCatch({ inst$param_dims(); TRUE }, error = function(e) FALSE))
}

suppress_stan_output <- function(expr) {
  out <- NULL
  utils::capture.output(out <- expr)
  out
}

# f(u) for each row u of x, each giving m numbers (the log-density first),
# as an n x m matrix (a vector when m = 1). A point where the program gives
# no finite log-density is a rejection, as in Stan's samplers: an exception
# of any kind (std::domain_error from reject() or an argument out of its
# domain, std::runtime_error from an ODE solver that runs out of steps, ...),
# or a log-density of -Inf or NaN, or a gradient that is not finite. Its
# row is -Inf, then NaN: a point outside the support. An error that does not
# come from the program, because its model instance is gone (a target read
# back from a file), is an error. Rejections are added to `tally` when given.
#
# One tryCatch() per batch, and one more per rejection: the loop resumes
# after the point that threw.
stan_rows <- function(x, f, m, inst, tally = NULL) {
  n <- nrow(x)
  out <- matrix(NA_real_, m, n)
  thrown <- logical(n)
  first <- NULL
  i <- 1L
  while (i <= n) {
    err <- tryCatch({
      for (j in i:n) out[, j] <- f(x[j, ])
      NULL
    }, error = function(e) e)
    if (is.null(err)) break
    if (!inherits(err, "C++Error")) stan_instance_check(inst, err)
    thrown[j] <- TRUE
    if (is.null(first)) first <- stan_message(err)
    i <- j + 1L
  }
  lp <- out[1L, ]
  rejected <- thrown | is.nan(lp) | lp == -Inf
  if (m > 1L) rejected <- rejected | colSums(!is.finite(out[-1L, , drop = FALSE])) > 0L
  if (any(rejected)) {
    out[1L, rejected] <- -Inf
    if (m > 1L) out[-1L, rejected] <- NaN
    if (is.null(first)) {
      k <- which(rejected)[1L]
      first <- if (is.nan(lp[k])) "the log-density is NaN"
               else if (lp[k] == -Inf) "the log-density is -Inf"
               else "the gradient of the log-density is not finite"
    }
  }
  if (!is.null(tally)) {
    tally$points <- tally$points + n
    if (any(rejected)) {
      tally$rejected <- tally$rejected + sum(rejected)
      if (is.na(tally$first)) tally$first <- first
      tally$last <- first
    }
  }
  if (m == 1L) as.double(out) else t(out)
}

# The rejections of a target: points evaluated, points rejected, and the
# first rejection's message. An environment of the target's own.
stan_tally <- function() {
  tally <- new.env(parent = emptyenv())
  tally$points <- 0
  tally$rejected <- 0
  tally$first <- NA_character_
  tally$last <- NA_character_
  tally
}

stan_rejections <- function(tally) {
  list(points = tally$points, rejected = tally$rejected,
       share = if (tally$points > 0) tally$rejected / tally$points else 0,
       first = tally$first, last = tally$last)
}

# An error that is not the program's own (not a C++ exception): an error if
# the model instance is gone, else a rejection like any other.
stan_instance_check <- function(inst, err) {
  if (!stan_instance_alive(inst)) {
    abort(paste0("the Stan program's model instance is gone (a target read back from a ",
                 "file?): make the target again with target_stan() (%s)."),
          conditionMessage(err), call = NULL)
  }
}

# Stan's message in one line: "Exception: ... (in 'model' at line 16)".
stan_message <- function(e) {
  gsub("\\s+", " ", trimws(conditionMessage(e)))
}

# rstan's flat names ("beta.1", "Sigma.1.2") in Stan's own way ("beta[1]",
# "Sigma[1,2]").
stan_names <- function(nm) {
  s <- sub(".", "[", nm, fixed = TRUE)
  has <- grepl("[", s, fixed = TRUE)
  s[has] <- paste0(gsub(".", ",", s[has], fixed = TRUE), "]")
  s
}

# The dims of the parameters proper (the first n_par values of constrain_pars).
stan_parameter_dims <- function(dims, n_par) {
  sizes <- vapply(dims, function(d) as.integer(prod(d)), 1L)
  keep <- which(cumsum(sizes) <= n_par)
  dims[keep]
}

relist_stan <- function(p, dims) {
  out <- vector("list", length(dims))
  names(out) <- names(dims)
  at <- 0L
  for (j in seq_along(dims)) {
    d <- dims[[j]]
    k <- as.integer(prod(d))
    v <- p[at + seq_len(k)]
    out[[j]] <- if (length(d)) array(v, dim = d) else v
    at <- at + k
  }
  out
}

# Stan's own names of the unconstrained coordinates (a coordinate is named
# by its parameter: "sigma" for log sigma, "w[1]", "w[2]" for a 3-simplex).
stan_unconstrained_names <- function(inst, D) {
  nm <- tryCatch(stan_names(inst$unconstrained_param_names(FALSE, FALSE)),
                 error = function(e) NULL)
  if (length(nm) != D) nm <- paste0("u", seq_len(D))
  nm
}
