# GLM posteriors from formulas: jko_fit(target_glm(...)) with all defaults
# against long random-walk Metropolis runs of the same posterior, on five
# models from R's data sets:
#
#   birthwt  logistic regression with a factor (MASS::birthwt, race)
#   infert   probit regression with a factor (datasets::infert, education)
#   insure   Poisson counts with an offset (MASS::Insurance, log(Holders))
#   mtcars   Gaussian linear model with a factor and sigma (datasets::mtcars)
#   pima_h   logistic regression under the hierarchical Gamma(1, 100) prior
#            (MASS::Pima.tr, with log alpha)
#
#   Rscript inst/bench/glm.R [--chains=500] [--iters=4000] [--draws=20000] [--seed=1]
#
# The reference: `chains` random-walk Metropolis chains run side by side
# (one batch evaluation of the potential per iteration), started from
# draws of a widened Laplace approximation, proposal N(0, 2.38^2 / D *
# Laplace covariance), `iters` kept iterations after as many again of
# burn-in. The Monte Carlo error of its means is estimated from the spread
# of the per-chain means (chains are independent), and printed in posterior
# sds. Aims (issue 13): jkoflow's posterior means within 0.1 sd of the
# reference, sds within 10%.

suppressPackageStartupMessages(library(jkoflow))

args <- commandArgs(TRUE)
arg <- function(name, default) {
  a <- grep(paste0("^--", name, "="), args, value = TRUE)
  if (length(a)) as.numeric(sub(".*=", "", a[1])) else default
}
chains <- arg("chains", 500)
iters <- arg("iters", 4000)
draws <- arg("draws", 20000)
seed <- arg("seed", 1)

models <- list(
  birthwt = function() {
    bw <- MASS::birthwt
    bw$race <- factor(bw$race, labels = c("white", "black", "other"))
    target_glm(low ~ age + lwt + race + smoke + ptl + ht + ui, bw, binomial())
  },
  infert = function() {
    target_glm(case ~ spontaneous + induced + education, infert, binomial("probit"))
  },
  insure = function() {
    target_glm(Claims ~ District + Group + Age + offset(log(Holders)), MASS::Insurance,
               poisson())
  },
  mtcars = function() {
    target_glm(mpg ~ wt + hp + factor(cyl), mtcars, gaussian())
  },
  pima_h = function() {
    target_glm(type ~ npreg + glu + bp + skin + bmi + ped + age,
               data.frame(scale(MASS::Pima.tr[, 1:7]), type = MASS::Pima.tr$type),
               binomial(), prior = prior_hierarchical())
  }
)

# random-walk Metropolis, K chains in parallel
rwm <- function(tg, K, T, seed) {
  set.seed(seed)
  la <- init_laplace(tg, inflate = 1.5)
  D <- tg$dim
  L <- t(chol(la$cov / 1.5^2)) * 2.38 / sqrt(D)
  x <- la$sample(K)
  phi <- potential_value(tg, x)
  keep <- array(NA_real_, c(K, D, T))
  acc <- 0
  for (t in seq_len(2 * T)) {
    prop <- x + matrix(rnorm(K * D), K) %*% t(L)
    pp <- potential_value(tg, prop)
    ok <- log(runif(K)) < phi - pp
    ok[is.na(ok)] <- FALSE
    x[ok, ] <- prop[ok, ]
    phi[ok] <- pp[ok]
    if (t > T) {
      keep[, , t - T] <- x
      acc <- acc + mean(ok)
    }
  }
  cm <- apply(keep, c(1, 2), mean)                    # chain means, K x D
  all <- matrix(aperm(keep, c(1, 3, 2)), ncol = D)    # K * T x D
  list(mean = colMeans(all), sd = apply(all, 2, sd),
       se = apply(cm, 2, sd) / sqrt(K), accept = acc / T)
}

cat(sprintf("%s; load: %s\n", format(Sys.time(), tz = "UTC", usetz = TRUE),
            sub(".*load average: ", "", system("uptime", intern = TRUE))))
cat(sprintf("reference: %d RWM chains x %d kept iterations; jkoflow: jko_fit() defaults, %d draws\n\n",
            chains, iters, draws))
rows <- list()
for (nm in names(models)) {
  tg <- models[[nm]]()
  t0 <- proc.time()[["elapsed"]]
  ref <- rwm(tg, chains, iters, seed)
  t_ref <- proc.time()[["elapsed"]] - t0
  set.seed(seed)
  t0 <- proc.time()[["elapsed"]]
  fit <- suppressWarnings(jko_fit(tg, verbose = FALSE))
  t_fit <- proc.time()[["elapsed"]] - t0
  s <- jko_sample(fit, draws)$x
  dm <- abs(colMeans(s) - ref$mean) / ref$sd
  ds <- apply(s, 2, sd) / ref$sd - 1
  if (nm == names(models)[1]) {
    cat("per-parameter detail of", nm, "\n")
    print(round(data.frame(ref_mean = ref$mean, jko_mean = colMeans(s), ref_sd = ref$sd,
                           jko_sd = apply(s, 2, sd), dmean_sd = dm, sd_ratio = 1 + ds), 4))
    cat("\n")
  }
  rows[[nm]] <- data.frame(
    model = nm, family = sprintf("%s/%s", tg$family$family, tg$family$link), N = nrow(tg$x),
    D = tg$dim, jko_s = round(t_fit, 1), steps = nrow(fit$history) - 1L,
    reached = fit$verdict$reached, max_dmean_sd = round(max(dm), 3),
    max_dsd = round(max(abs(ds)), 3), ref_se_sd = round(max(ref$se / ref$sd), 4),
    ref_accept = round(ref$accept, 2), ref_s = round(t_ref, 1),
    aims = max(dm) <= 0.1 && max(abs(ds)) <= 0.1)
}
tab <- do.call(rbind, rows)
rownames(tab) <- NULL
print(tab)
cat("\nmax_dmean_sd: max over parameters of |mean(jko) - mean(ref)| / sd(ref) (aim <= 0.1);\n",
    "max_dsd: max |sd(jko) / sd(ref) - 1| (aim <= 0.1); ref_se_sd: the reference's own\n",
    "Monte Carlo error of a mean, in sds; jko_s / ref_s: wall seconds.\n", sep = "")
