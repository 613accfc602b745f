# brms models as targets: the Stan program and data brms writes, through
# target_stan(), under brms's names; and the fit's draws given back as a
# brmsfit (a stanfit made from them), for brms's own methods.

#' A brms model as a target
#'
#' `target_brms()` makes the posterior of a brms model a target for
#' [jko_fit()]: brms writes the Stan program and its data (as
#' [brms::make_stancode()] and [brms::make_standata()] do), the program is
#' compiled by rstan and the flow runs on its unconstrained scale, as for
#' any [target_stan()]. The fit's draws and tables are under brms's names
#' (`b_Intercept`, `b_x`, `sigma`, `sd_group__Intercept`, ...), and
#' `as_brmsfit()` gives them back as a `brmsfit`, so that brms's own methods
#' work on them: `summary()`, `posterior_predict()`, `posterior_epred()`,
#' `log_lik()`, `loo()`, `pp_check()`, `conditional_effects()`, ... The
#' methods of jkoflow's fits that need the model (`posterior_predict()`,
#' `posterior_epred()`, `posterior_linpred()`, `log_lik()`, `loo()`,
#' `nobs()`, `formula()`, `family()`, `prior_summary()`) go through it.
#'
#' How the `brmsfit` is made: the draws (on the model's scale, under the
#' program's own names) are written as Stan CSV files, one per chain, and
#' read back by [rstan::read_stan_csv()] into a `stanfit`, which takes the
#' place of the empty fit of the model (`brm(..., empty = TRUE)`), then
#' brms renames the parameters as after sampling. The stanfit's `lp__` is
#' the program's log-density at each draw; its sampler columns
#' (`divergent__`, `treedepth__`, ...) are placeholders (zero), since the
#' draws come from no Hamiltonian trajectory, and rstan's summary calls the
#' sampler "jkoflow".
#'
#' brms keeps the constants of its likelihoods and priors (its
#' `normalize = TRUE`), so [jko_evidence()] of such a fit estimates the
#' marginal likelihood.
#'
#' @param formula A brms model formula ([brms::brmsformula()] or a
#'   formula), or a `brmsfit` (e.g. made by `brm(..., empty = TRUE)`, with
#'   no sampling), whose program and data are used.
#' @param data,family,prior As for [brms::brm()] (`data` must be `NULL` for
#'   a `brmsfit`).
#' @param ... Further arguments of [brms::brm()] that shape the model
#'   (`data2`, `sample_prior`, `stanvars`, `knots`, `save_pars`,
#'   `normalize`, ...); sampling settings (`chains`, `iter`, ...) are an
#'   error.
#' @param seed Seed of Stan's generator (see [target_stan()]).
#' @param cache `NULL` or a directory where the compiled program is kept
#'   (under a name made from its code), so that the next `target_brms()` of
#'   the same model need not compile it again.
#' @return `target_brms()`: a target of class `c("jko_target_brms",
#'   "jko_target_stan", ...)`, carrying the `brmsfit` (`brmsfit`, with no
#'   draws) and the program's names (`stan_variables`). `as_brmsfit()`: a
#'   `brmsfit`.
#' @seealso [target_stan()], [jko_fit()].
#' @examplesIf interactive() && requireNamespace("brms", quietly = TRUE)
#' tg <- target_brms(count ~ zAge + zBase * Trt, data = brms::epilepsy,
#'                   family = poisson())                  # compiles the program
#' fit <- jko_fit(tg)
#' fit                                  # the posterior under brms's names
#' b <- as_brmsfit(fit)
#' summary(b)
#' brms::pp_check(b)
#' brms::conditional_effects(b)
#' @export
target_brms <- function(formula, data = NULL, family = stats::gaussian(), prior = NULL, ...,
                        seed = NULL, cache = NULL) {
  if (!requireNamespace("brms", quietly = TRUE) || !requireNamespace("rstan", quietly = TRUE)) {
    abort("target_brms() needs the brms and rstan packages: install.packages(\"brms\").")
  }
  model_args <- c("data2", "autocor", "cov_ranef", "sample_prior", "sparse", "knots",
                  "stanvars", "stan_funs", "save_pars", "drop_unused_levels", "normalize")
  if (inherits(formula, "brmsfit")) {
    if (!is.null(data) || ...length()) {
      abort("a brmsfit carries its own data and model: `data` and further arguments cannot be given.")
    }
    template <- formula
  } else {
    check_dots(..., allowed = model_args, known = c("formula", "data", "family", "prior",
                                                     "seed", "cache"))
    if (is.null(data)) abort("`data` is needed: the data of the brms model.")
    # brms's refusals of a formula, family, prior or data, as the package's
    template <- tryCatch(
      brms::brm(formula, data = data, family = family, prior = prior, ...,
                empty = TRUE, backend = "rstan"),
      error = function(e) {
        abort("brms could not make the model of `formula`, `data`, `family` and `prior`: %s",
              conditionMessage(e), call = NULL)
      })
    template$data.name <- paste(deparse(substitute(data)), collapse = " ")
  }
  if (!is.null(cache) && (!is.character(cache) || length(cache) != 1L || !dir.exists(cache))) {
    abort("`cache` must be NULL or an existing directory, not %s.", describe(cache))
  }
  code <- as.character(brms::stancode(template))
  sdata <- brms::standata(template)
  tg <- target_stan(brms_stanmodel(code, cache), data = unclass(sdata), seed = seed)
  stan_vars <- tg$transform$variables
  rename <- brms_names(template, stan_vars)
  tr <- tg$transform
  constrain <- tr$constrain
  tr$constrain <- function(u) {
    out <- constrain(u)
    colnames(out) <- unname(rename[colnames(out)])
    out
  }
  tr$variables <- unname(rename[tr$variables])
  tr$parameters <- unname(rename[tr$parameters])
  tg$transform <- tr
  # the unconstrained coordinates are named by their parameters
  known <- tg$variables %in% names(rename)
  tg$variables[known] <- unname(rename[tg$variables[known]])
  tg$stan_variables <- stan_vars
  tg$brmsfit <- template
  fam <- stats::family(template)
  tg$label <- sprintf("brms model %s (%s, %s link), %d observations; Stan program, %d unconstrained parameters",
                      paste(deparse(stats::formula(template)$formula, width.cutoff = 500L),
                            collapse = " "),
                      fam$family, fam$link, stats::nobs(template), tg$dim)
  class(tg) <- c("jko_target_brms", class(tg))
  tg
}

# The compiled program of `code`: from the cache directory where it was
# kept, else compiled (and kept there).
brms_stanmodel <- function(code, cache) {
  file <- NULL
  if (!is.null(cache)) {
    tmp <- tempfile(fileext = ".stan")
    on.exit(unlink(tmp), add = TRUE)
    writeLines(code, tmp)
    file <- file.path(cache, sprintf("brms-%s.rds", unname(tools::md5sum(tmp))))
    if (file.exists(file)) return(readRDS(file))
  }
  sm <- rstan::stan_model(model_code = code, model_name = "brms_model")
  if (!is.null(file)) saveRDS(sm, file)
  sm
}

# brms's names of the program's variables (a named vector: Stan name ->
# brms name). A stanfit of two draws whose columns hold their own positions
# is renamed by brms as after sampling; each renamed column's value says
# which of the program's variables it is.
brms_names <- function(template, stan_vars) {
  V <- length(stan_vars)
  x <- matrix(seq_len(V), 2L, V, byrow = TRUE, dimnames = list(NULL, stan_vars))
  b <- template
  b$fit <- stanfit_from_draws(x, lp = c(0, 0), chain = c(1L, 1L))
  b <- brms::rename_pars(b)
  m <- as.matrix(b$fit)
  m <- m[, setdiff(colnames(m), "lp__"), drop = FALSE]
  out <- stats::setNames(stan_vars, stan_vars)
  at <- m[1L, ]
  ok <- at == round(at) & at >= 1 & at <= V
  out[at[ok]] <- colnames(m)[ok]
  out
}

# A stanfit holding the draws x (draws x variables, under Stan's names
# "b[1]", "Sigma[1,2]") in their chains, with lp__ = lp: written as Stan CSV
# files, one per chain, and read back by rstan::read_stan_csv() (which
# draws a permutation from R's generator: its state is restored).
stanfit_from_draws <- function(x, lp, chain, stanmodel = NULL, sampler = "jkoflow") {
  ids <- sort(unique(chain))
  m <- min(tabulate(match(chain, ids)))
  flat <- gsub("\\]", "", gsub("[\\[,]", ".", colnames(x)))
  dir <- tempfile("jkoflow-csv")
  dir.create(dir)
  on.exit(unlink(dir, recursive = TRUE), add = TRUE)
  files <- vapply(seq_along(ids), function(j) {
    rows <- which(chain == ids[j])[seq_len(m)]
    f <- file.path(dir, sprintf("jkoflow_%d.csv", j))
    writeLines(c("# model = jkoflow", "# method = sample (Default)", "#   sample",
                 sprintf("#     num_samples = %d", m), "#     num_warmup = 0",
                 "#     save_warmup = 0", "#     thin = 1", sprintf("# id = %d", j),
                 "# Adaptation terminated", "#  Elapsed Time: 0 seconds (Warm-up)",
                 "#                0 seconds (Sampling)", "#                0 seconds (Total)"),
               f)
    d <- data.frame(lp__ = lp[rows], accept_stat__ = 1, stepsize__ = 0, treedepth__ = 0,
                    n_leapfrog__ = 0, divergent__ = 0, energy__ = -lp[rows],
                    x[rows, , drop = FALSE], check.names = FALSE)
    names(d) <- c(names(d)[1:7], flat)
    suppressWarnings(utils::write.table(d, f, sep = ",", quote = FALSE, row.names = FALSE,
                                        append = TRUE, col.names = TRUE))
    f
  }, "")
  sf <- keep_rng(rstan::read_stan_csv(files))
  for (j in seq_along(sf@sim$samples)) {
    attr(sf@sim$samples[[j]], "args")$sampler_t <- sampler
  }
  if (!is.null(stanmodel)) sf@stanmodel <- stanmodel
  sf@model_name <- if (!is.null(stanmodel)) stanmodel@model_name else "jkoflow"
  sf
}

keep_rng <- function(expr) {
  if (exists(".Random.seed", envir = .GlobalEnv, inherits = FALSE)) {
    old <- get(".Random.seed", envir = .GlobalEnv)
    on.exit(assign(".Random.seed", old, envir = .GlobalEnv), add = TRUE)
  } else {
    on.exit(if (exists(".Random.seed", envir = .GlobalEnv, inherits = FALSE))
              rm(".Random.seed", envir = .GlobalEnv), add = TRUE)
  }
  expr
}

#' @rdname target_brms
#' @param fit A `"jko_fit"` of a `target_brms()`.
#' @export
as_brmsfit <- function(fit, ...) {
  check_fit(fit)
  check_dots(...)
  tg <- fit$potential
  if (!inherits(tg, "jko_target_brms")) {
    abort("as_brmsfit() needs a fit of a target_brms() model; this fit's target is %s.",
          tg$label)
  }
  pd <- fit_posterior(fit, "as_brmsfit()", "fit")
  u <- posterior_draws(fit, "unconstrained")$x
  lp <- -potential_values(tg, u)
  x <- pd$x
  colnames(x) <- tg$stan_variables
  b <- tg$brmsfit
  b$fit <- stanfit_from_draws(x, lp, pd$chain, tg$fit@stanmodel,
                              sampler = sprintf("jkoflow (%s)", pd$method))
  brms::rename_pars(b)
}

# A brms method (the rstantools generic `name`) on the fit as a brmsfit.
brms_method <- function(name, object, newdata, ndraws, ...) {
  b <- as_brmsfit(object)
  getExportedValue("rstantools", name)(b, newdata = newdata, ndraws = ndraws, ...)
}

#' @export
target_log_lik.jko_target_brms <- function(potential, object, newdata) {
  rstantools::log_lik(as_brmsfit(object), newdata = newdata)
}

#' @export
coef_variables.jko_target_brms <- function(potential, variables) {
  b <- grep("^b_", variables, value = TRUE)
  if (!length(b)) return(coef_variables.default(potential, variables))
  c(intersect("b_Intercept", b), setdiff(b, "b_Intercept"))
}

#' @export
target_info.jko_target_brms <- function(potential) {
  fam <- stats::family(potential$brmsfit)
  c(target = "target_brms()",
    formula = paste(deparse(stats::formula(potential$brmsfit)$formula, width.cutoff = 500L),
                    collapse = " "),
    family = sprintf("%s [%s]", fam$family, fam$link),
    priors = "see prior_summary(fit)",
    observations = format(stats::nobs(potential$brmsfit)))
}
