# Every posterior method of a fit, on four kinds of target: a GLM from a
# formula (target_glm()), a Stan program (target_stan()), a brms model
# (target_brms()) and an R log-density (target_logdensity()), with the
# output each gives. Two checks with figures:
#
# * coef() of a GLM under prior_flat() against glm()'s maximum likelihood
#   estimate, in posterior sds: a gaussian linear model (whose posterior
#   mean is the estimate itself, under p(sigma) ~ 1/sigma) and a logistic
#   regression (whose posterior mean is not: the posterior is skewed, and
#   NUTS's means are as far from the estimate; the flow's are compared with
#   NUTS's too);
# * loo() of the flow's draws against loo() of rstan's NUTS draws of the
#   same model (the logistic regression, as a Stan program with a
#   generated quantity log_lik): the elpd within one standard error.
#
#   Rscript inst/scripts/posterior-methods.R [cache directory] [figure directory]
#
# The Stan and brms programs are compiled once and kept in the cache
# directory (default: tempdir()). Takes some minutes on 2 cores.

suppressPackageStartupMessages(library(jkoflow))
args <- commandArgs(trailingOnly = TRUE)
cache <- if (length(args) >= 1L) args[[1L]] else tempdir()
figs <- if (length(args) >= 2L) args[[2L]] else tempdir()
dir.create(cache, showWarnings = FALSE, recursive = TRUE)
dir.create(figs, showWarnings = FALSE, recursive = TRUE)
for (p in c("rstan", "brms", "loo", "posterior", "rstantools", "MASS")) {
  if (!requireNamespace(p, quietly = TRUE)) stop("this script needs the package ", p)
}
options(width = 100)
show <- function(title, expr) {
  cat("\n----", title, "----\n")
  print(expr)
  invisible(expr)
}
timed <- function(expr) {
  t0 <- proc.time()[["elapsed"]]
  out <- expr
  attr(out, "seconds") <- proc.time()[["elapsed"]] - t0
  out
}
figures <- list()

# ---- 1. target_glm(): a logistic regression under a flat prior ----------
bw <- MASS::birthwt
bw$race <- factor(bw$race, labels = c("white", "black", "other"))
form <- low ~ age + lwt + race + smoke + ptl + ht + ui
set.seed(1)
tg <- target_glm(form, data = bw, family = binomial(), prior = prior_flat())
fit_glm <- timed(jko_fit(tg, verbose = FALSE))
rm(tg)   # the fit carries its target: update() works without it
show("print(fit)", fit_glm)
show("summary(fit)", summary(fit_glm))
show("summary(fit)$training", summary(fit_glm)$training)
ml <- glm(form, binomial(), bw)
sds <- sqrt(diag(vcov(fit_glm)))
glm_cmp <- rbind(MLE = coef(ml), posterior_mean = coef(fit_glm),
                 posterior_median = coef(fit_glm, estimate = "median"), posterior_sd = sds,
                 "(mean - MLE) / sd" = (coef(fit_glm) - coef(ml)) / sds,
                 "(median - MLE) / sd" = (coef(fit_glm, estimate = "median") - coef(ml)) / sds)
show("coef() against glm()'s MLE (logistic: the posterior is skewed)", round(glm_cmp, 3))
show("vcov(fit)", signif(vcov(fit_glm), 3))
show("confint(fit, level = 0.9)", confint(fit_glm, level = 0.9))
show("head(as.matrix(fit), 3)", head(as.matrix(fit_glm), 3))
show("head(as.data.frame(fit), 3)", head(as.data.frame(fit_glm), 3))
show("nobs, formula, family", list(nobs = nobs(fit_glm), formula = formula(fit_glm),
                                   family = family(fit_glm)))
show("ndraws, variables, nvariables", list(posterior::ndraws(fit_glm),
                                           posterior::variables(fit_glm),
                                           posterior::nvariables(fit_glm)))
show("head(fitted(fit))", head(fitted(fit_glm)))
show("head(residuals(fit, 'deviance')), pearson", rbind(
  deviance = head(residuals(fit_glm)), pearson = head(residuals(fit_glm, "pearson"))))
nd <- bw[c(1, 50, 100), ]
show("predict(fit, nd)", predict(fit_glm, nd))
show("predict(fit, nd, type = 'link', se.fit = TRUE)",
     predict(fit_glm, nd, type = "link", se.fit = TRUE))
show("predict(fit, nd, interval = 'credible')", predict(fit_glm, nd, interval = "credible"))
show("predict(fit, nd, interval = 'prediction')", predict(fit_glm, nd, interval = "prediction"))
show("dim(posterior_predict / posterior_linpred / posterior_epred / log_lik)", rbind(
  posterior_predict = dim(rstantools::posterior_predict(fit_glm, seed = 1)),
  posterior_linpred = dim(rstantools::posterior_linpred(fit_glm)),
  posterior_epred = dim(rstantools::posterior_epred(fit_glm, newdata = nd)),
  log_lik = dim(rstantools::log_lik(fit_glm))))
loo_glm <- show("loo(fit)", loo::loo(fit_glm))
show("head(simulate(fit, 3, seed = 1))", head(simulate(fit_glm, 3, seed = 1)))
show("prior_summary(fit)", rstantools::prior_summary(fit_glm))
fit_glm2 <- update(fit_glm, . ~ . - ptl, verbose = FALSE)
show("update(fit, . ~ . - ptl): coef", coef(fit_glm2))
png(file.path(figs, "posterior-methods-glm.png"), 900, 700)
plot(fit_glm)
dev.off()
figures$glm <- file.path(figs, "posterior-methods-glm.png")

# the gaussian linear model: posterior mean = MLE under the flat priors
set.seed(2)
fit_lm <- jko_fit(target_glm(mpg ~ wt + hp + qsec, data = mtcars, family = gaussian(),
                             prior = prior_flat(), prior_sigma = prior_flat()),
                  verbose = FALSE)
lm_fit <- glm(mpg ~ wt + hp + qsec, gaussian(), mtcars)
lm_sd <- sqrt(diag(vcov(fit_lm)))
lm_cmp <- rbind(MLE = coef(lm_fit), posterior_mean = coef(fit_lm), posterior_sd = lm_sd,
                "(mean - MLE) / sd" = (coef(fit_lm) - coef(lm_fit)) / lm_sd)
show("gaussian GLM: coef() against glm()'s MLE", round(lm_cmp, 4))
show("gaussian GLM: sigma(fit) and glm's residual sd",
     c(posterior_mean_sigma = sigma(fit_lm), glm = sigma(lm_fit)))

# ---- 2. target_stan(): the same logistic regression as a Stan program ---
code <- "
data { int N; int K; matrix[N, K] X; int<lower=0, upper=1> y[N]; }
parameters { vector[K] beta; }
model { target += bernoulli_logit_lpmf(y | X * beta); }
generated quantities {
  vector[N] log_lik;
  for (n in 1:N) log_lik[n] = bernoulli_logit_lpmf(y[n] | X[n] * beta);
}"
stan_file <- file.path(cache, "posterior-methods-logistic.rds")
sm <- if (file.exists(stan_file)) readRDS(stan_file) else {
  m <- rstan::stan_model(model_code = code, model_name = "logistic")
  saveRDS(m, stan_file)
  m
}
X <- model.matrix(ml)
sdata <- list(N = nrow(X), K = ncol(X), X = X, y = bw$low)
set.seed(3)
tg_stan <- target_stan(sm, data = sdata)
fit_stan <- timed(jko_fit(tg_stan, verbose = FALSE))
show("print(fit) of a target_stan()", fit_stan)
show("coef(fit) (the program's parameters)", coef(fit_stan))
show("confint(fit, c('beta[1]', 'beta[2]'))", confint(fit_stan, c("beta[1]", "beta[2]")))
show("dim(as.matrix(fit)) (parameters and generated quantities)", dim(as.matrix(fit_stan)))
loo_stan <- show("loo(fit): the program's log_lik", loo::loo(fit_stan))
# NUTS on the same program
nuts <- timed(rstan::sampling(sm, data = sdata, chains = 4, iter = 2000, refresh = 0,
                              seed = 4))
beta_nuts <- as.matrix(nuts, pars = "beta")
nuts_cmp <- (colMeans(beta_nuts) - coef(ml)) / apply(beta_nuts, 2, sd)
show("NUTS's posterior means against glm()'s MLE, in posterior sds (the skewness)",
     round(rbind("(NUTS mean - MLE) / sd" = nuts_cmp,
                 "(jkoflow mean - NUTS mean) / sd" = (coef(fit_glm) - colMeans(beta_nuts)) /
                   apply(beta_nuts, 2, sd)), 3))
ll_nuts <- loo::extract_log_lik(nuts, merge_chains = FALSE)
loo_nuts <- show("loo of rstan's NUTS draws (4 chains x 1000)",
                 loo::loo(ll_nuts, r_eff = loo::relative_eff(exp(ll_nuts))))
elpd <- function(l) l$estimates["elpd_loo", ]
loo_cmp <- rbind(nuts = elpd(loo_nuts), jkoflow_glm = elpd(loo_glm),
                 jkoflow_stan = elpd(loo_stan))
loo_cmp <- cbind(loo_cmp, "diff from NUTS" = loo_cmp[, "Estimate"] - elpd(loo_nuts)[["Estimate"]],
                 "|diff| / SE" = abs(loo_cmp[, "Estimate"] - elpd(loo_nuts)[["Estimate"]]) /
                   elpd(loo_nuts)[["SE"]])
show("elpd_loo: jkoflow against NUTS", round(loo_cmp, 3))
show("loo_compare(NUTS, jkoflow)", loo::loo_compare(list(nuts = loo_nuts, jkoflow = loo_glm)))

# ---- 3. target_brms(): a brms model --------------------------------------
set.seed(5)
epilepsy <- brms::epilepsy
tg_brms <- target_brms(count ~ zAge + zBase * Trt, data = epilepsy, family = poisson(),
                       cache = cache)
fit_brms <- timed(jko_fit(tg_brms, verbose = FALSE))
show("print(fit) of a target_brms()", fit_brms)
show("coef(fit) (population-level effects)", coef(fit_brms))
b <- as_brmsfit(fit_brms)
show("summary(as_brmsfit(fit)): brms's own", summary(b))
show("brms::fixef(b)", brms::fixef(b))
show("dim(posterior_predict(fit))", dim(rstantools::posterior_predict(fit_brms)))
show("loo(fit) (brms's log_lik)", loo::loo(fit_brms))
show("nobs, formula, family", list(nobs(fit_brms), formula(fit_brms), family(fit_brms)))
show("prior_summary(fit)", rstantools::prior_summary(fit_brms))
png(file.path(figs, "posterior-methods-pp_check.png"), 700, 450)
print(brms::pp_check(b, ndraws = 50))
dev.off()
png(file.path(figs, "posterior-methods-conditional_effects.png"), 700, 450)
print(plot(brms::conditional_effects(b, "zBase:Trt"), plot = FALSE)[[1]])
dev.off()
figures$brms <- file.path(figs, c("posterior-methods-pp_check.png",
                                  "posterior-methods-conditional_effects.png"))

# ---- 4. target_logdensity(): an R function -------------------------------
# a correlated 3-D normal with a skewed margin, written as R users write a
# log-density of one parameter vector, then vectorised over rows
logd1 <- function(th) {
  sum(dnorm(th[1:2], c(1, -1), c(1, 0.5), log = TRUE)) +
    dgamma(exp(th[3]), shape = 3, rate = 2, log = TRUE) + th[3]
}
tg_r <- target_logdensity(function(x) apply(x, 1, logd1), dim = 3,
                          variables = c("a", "b", "log_s"))
set.seed(6)
fit_r <- timed(suppressMessages(jko_fit(tg_r, verbose = FALSE)))
show("print(fit) of a target_logdensity()", fit_r)
show("summary(fit)", summary(fit_r))
show("coef, confint", list(coef = coef(fit_r), confint = confint(fit_r)))
show("as_draws_df(fit) summarised by posterior",
     posterior::summarise_draws(posterior::as_draws_df(fit_r)))
png(file.path(figs, "posterior-methods-logdensity.png"), 700, 700)
plot(fit_r)
dev.off()
figures$logdensity <- file.path(figs, "posterior-methods-logdensity.png")
show("a log-density for one parameter vector is refused, with the fix",
     tryCatch(jko_fit(target_logdensity(logd1, dim = 3), verbose = FALSE),
              error = conditionMessage))

# ---- the figures of the note ------------------------------------------------
cat("\n==== figures ====\n")
cat(sprintf("gaussian GLM, flat priors: max |coef - MLE| / sd = %.4f\n",
            max(abs(lm_cmp["(mean - MLE) / sd", ]))))
cat(sprintf(paste0("logistic GLM, flat prior: max |mean - MLE| / sd = %.3f (NUTS's: %.3f), ",
                   "max |median - MLE| / sd = %.3f; max |mean - NUTS mean| / sd = %.3f\n"),
            max(abs(glm_cmp["(mean - MLE) / sd", ])), max(abs(nuts_cmp)),
            max(abs(glm_cmp["(median - MLE) / sd", ])),
            max(abs((coef(fit_glm) - colMeans(beta_nuts)) / apply(beta_nuts, 2, sd)))))
cat(sprintf("elpd_loo: NUTS %.2f (SE %.2f); jkoflow target_glm %.2f, target_stan %.2f: |diff| / SE = %.3f, %.3f\n",
            loo_cmp["nuts", "Estimate"], loo_cmp["nuts", "SE"], loo_cmp["jkoflow_glm", "Estimate"],
            loo_cmp["jkoflow_stan", "Estimate"], loo_cmp["jkoflow_glm", "|diff| / SE"],
            loo_cmp["jkoflow_stan", "|diff| / SE"]))
cat(sprintf("seconds: target_glm %.0f, target_stan %.0f, NUTS %.0f, brms %.0f, logdensity %.0f\n",
            attr(fit_glm, "seconds"), attr(fit_stan, "seconds"), attr(nuts, "seconds"),
            attr(fit_brms, "seconds"), attr(fit_r, "seconds")))
cat(sprintf("verdicts: %s\n", paste(vapply(list(glm = fit_glm, lm = fit_lm, stan = fit_stan,
                                                brms = fit_brms, r = fit_r),
                                           function(f) f$verdict$reason, ""), collapse = ", ")))
cat("figures:", unlist(figures), sep = "\n  ")
