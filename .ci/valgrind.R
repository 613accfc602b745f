# Run by .ci/run under valgrind (R -d valgrind): a small fit, samples and
# densities, and the unwinding paths (an error in a user's potential, a time
# limit firing inside the C training loop), so that any invalid read or
# write, or memory jkoflow's C code fails to release, is reported. Tiny
# network and few iterations: valgrind is ~50x slower.
library(jkoflow)
set.seed(1)
fit <- jko_fit(potential_gmm(rbind(c(-2, 0), c(2, 0)), sd = 0.7),
               init_gaussian(c(0, 0), 4), h = 0.1, steps = 2, hidden = c(6, 6),
               rank = 2, batch = 32, iters = 10, monitor = 64, verbose = FALSE)
s <- jko_sample(fit, 50)
d <- jko_density(fit, s$x, log = TRUE)
stopifnot(max(abs(as.numeric(d) - s$log_density)) < 1e-6)
fit <- jko_continue(fit, 1, verbose = FALSE)
# the kernels from D = 8 (BLAS a block) and the rank terms by
# projections below it (rank 1): a step of a few iterations each
for (a in list(list(d = 9, r = 2), list(d = 3, r = 1)))
  invisible(jko_fit(potential_quadratic(diag(a$d)), init_gaussian(rep(0, a$d), 1), h = 0.1,
                    steps = 1, hidden = c(5, 4), rank = a$r, batch = 16, iters = 3, pool = 32,
                    monitor = 16, verbose = FALSE))
net <- icnn(3, hidden = c(4, 4), rank = 1)
invisible(predict(net, matrix(rnorm(12), 4, 3), type = "hessian"))

# a user's potential failing in step 2: the R error longjmps through C
calls <- 0
pot <- potential_fn(function(x) {
  if (nrow(x) == 16L && (calls <<- calls + 1) > 7) stop("boom")
  rowSums(x^2) / 2
}, grad = function(x) x)
e <- tryCatch(jko_fit(pot, init_gaussian(c(0, 0), 1), h = 0.1, steps = 3, hidden = 4,
                      rank = 1, batch = 16, iters = 5, pool = 64, monitor = 32,
                      verbose = FALSE), error = identity)
stopifnot(inherits(e, "jkoflow_error_fit"), length(e$fit$theta) == 1L)

# a time limit firing at R_CheckUserInterrupt() inside the training loop
setTimeLimit(elapsed = 2)
e <- tryCatch(jko_fit(potential_quadratic(diag(2)), init_gaussian(c(0, 0), 1), h = 0.1,
                      steps = 1e6, hidden = 4, rank = 1, batch = 16, iters = 5,
                      pool = 64, monitor = 32, verbose = FALSE), error = identity)
setTimeLimit()
stopifnot(inherits(e, "jkoflow_error_fit"))
invisible(jko_sample(e$fit, 10))
# a potential through the R protocol, and a map whose Hessian overflows
# (NA log-densities with a warning) when sampling and pulling back
pot <- new_potential(function(x) rowSums(x^2) / 2, function(x) x)
fit <- jko_fit(pot, init_gaussian(c(0, 0), 1), h = 0.1, steps = 1, hidden = c(4, 4),
               rank = 1, batch = 16, iters = 5, pool = 64, monitor = 32, verbose = FALSE)
fit$theta[[1]][1:4] <- 1e200
s <- suppressWarnings(jko_sample(fit, 20))
d <- suppressWarnings(jko_density(fit, matrix(0, 3, 2)))
stopifnot(all(is.na(s$log_density)), all(is.na(d$log_density)))
# a flow to the stationary law: whitened maps (full L), adaptive steps,
# the verdict, sampling and densities through them
tg <- target_logdensity(function(x) -rowSums(x^2) / 2 - (x[, 2] - x[, 1]^2)^2,
                        function(x) cbind(-x[, 1] + 4 * x[, 1] * (x[, 2] - x[, 1]^2),
                                          -x[, 2] - 2 * (x[, 2] - x[, 1]^2)), dim = 2)
fit <- suppressWarnings(jko_fit(tg, init_gaussian(c(0, 0), 1), steps = 2, hidden = c(4, 4),
                                rank = 1, batch = 16, iters = 60, pool = 64, monitor = 64,
                                verbose = FALSE))
stopifnot(is.matrix(fit$std[[2]]$L))
# (the flow's own draws: the fit stopped short of its target, and its
# draws by default are HMC's, which have no density)
s <- jko_sample(fit, 20, correct = FALSE)
d <- jko_density(fit, s$x, log = TRUE)
stopifnot(max(abs(as.numeric(d) - s$log_density)) < 1e-6)
# GLM targets (src/glm.c): every family and link, with weights (a zero
# among them), an offset, the three priors, values and gradients of a batch
# (with points far out), and a tiny flow through them
set.seed(2)
gd <- data.frame(x = rnorm(12), f = factor(rep(c("a", "b", "c"), 4)), w = c(0, rep(1:2, 5), 3))
gd$k <- rbinom(12, 3, 0.5); gd$c <- rpois(12, 2); gd$y <- rnorm(12)
gtg <- list(target_glm(cbind(k, 3 - k) ~ x + f, gd, binomial(), weights = w),
            target_glm(k > 1 ~ x, gd, binomial("probit"), prior = prior_hierarchical()),
            target_glm(c ~ x + offset(x / 2), gd, poisson(), prior = prior_flat()),
            target_glm(y ~ x * f, gd, gaussian(), weights = w, prior = prior_hierarchical()))
for (g in gtg) {
  th <- matrix(rnorm(7 * g$dim), 7)
  th[7, ] <- 900
  v <- potential_value(g, th, grad = TRUE)
  stopifnot(all(is.finite(v$value[1:6])), !anyNA(v$value))
}
fit <- suppressWarnings(jko_fit(gtg[[4]], steps = 1, hidden = c(4, 4), rank = 1, batch = 16,
                                iters = 10, pool = 64, monitor = 64, verbose = FALSE))
invisible(predict(fit, gd[1:3, ]))

# free energies of terms: interaction (C and R kernels), porous medium with
# the pool's log-densities, entropy; the monitor's energy
en <- jko_energy(potential_quadratic(diag(2)), interaction_power(2, 1, block = 4),
                 diffusion_porous(2))
fit <- jko_fit(en, init_gaussian(c(0, 0), 1), h = 0.1, steps = 2, hidden = c(4, 4),
               rank = 1, batch = 16, iters = 5, pool = 64, monitor = 32, verbose = FALSE)
fit <- jko_continue(fit, 1, verbose = FALSE)
en <- jko_energy(NULL, interaction_fn(function(z) rowSums(z^2) / 2, block = 5))
fit <- jko_fit(en, init_gaussian(c(0, 0), 1), h = 0.1, steps = 1, hidden = c(4, 4),
               rank = 1, batch = 16, iters = 5, pool = 64, monitor = 32, verbose = FALSE)
stopifnot(all(is.finite(fit$history$free_energy)))
cat("valgrind script done\n")
