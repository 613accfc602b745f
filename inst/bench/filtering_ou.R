# jko_filter() defaults off the benchmark they were chosen on: an
# Ornstein-Uhlenbeck process, Phi(x) = (x - 1)^2 / 2, beta = 1, from
# N(-1, 0.5^2), observed at t = 0.5, 1, ..., 2.5 with noise sd 0.5. The
# exact filter is Kalman's (continuous-time transitions); the JKO scheme's
# own filter is exact for Gaussians too (each step maps N(m, s^2) to
# N(m / (1 + h), s'^2), s' the positive root of s'^2 (1/h + 1) - s' s / h - 1
# = 0), which separates the time discretisation from the training error.
# jko_filter()'s step rule (h_tol) chooses the steps of each interval; the
# scheme in those steps is printed beside it.
#   Rscript inst/bench/filtering_ou.R [seed]
suppressPackageStartupMessages(library(jkoflow))
args <- commandArgs(trailingOnly = TRUE)
set.seed(if (length(args)) as.integer(args[1]) else 7)
options(jkoflow.threads = as.integer(Sys.getenv("JKOFLOW_THREADS", "2")))
times <- seq(0.5, 2.5, by = 0.5)
s_obs <- 0.5
X <- rnorm(1, -1, 0.5)
tp <- 0
y <- numeric(length(times))
for (j in seq_along(times)) {
  dt <- times[j] - tp
  X <- 1 + (X - 1) * exp(-dt) + sqrt(1 - exp(-2 * dt)) * rnorm(1)
  y[j] <- X + s_obs * rnorm(1)
  tp <- times[j]
}
# Kalman's filter with the exact transitions, or with the JKO scheme's in
# steps of h, or in steps[j] equal steps over interval j
kalman <- function(h = NULL, steps = NULL) {
  m <- -2   # centred at the stationary mean 1
  s <- 0.5
  ev <- 0
  tp <- 0
  for (j in seq_along(times)) {
    dt <- times[j] - tp
    if (is.null(h) && is.null(steps)) {
      m <- m * exp(-dt)
      s <- sqrt(s^2 * exp(-2 * dt) + 1 - exp(-2 * dt))
    } else {
      n_steps <- if (is.null(steps)) round(dt / h) else steps[j]
      hk <- dt / n_steps
      for (k in seq_len(n_steps)) {
        A <- s^2 * (1 / hk + 1)
        B <- s^2 / hk
        m <- m / (1 + hk)
        s <- s * (B + sqrt(B^2 + 4 * A)) / (2 * A)
      }
    }
    ev <- ev + dnorm(y[j] - 1, m, sqrt(s^2 + s_obs^2), log = TRUE)
    g <- s^2 / (s^2 + s_obs^2)
    m <- m + g * (y[j] - 1 - m)
    s <- sqrt((1 - g) * s^2)
    tp <- times[j]
  }
  c(mean = m + 1, sd = s, log_evidence = ev)
}
symkl_gauss <- function(a, b) {
  0.5 * ((a[2] / b[2])^2 + (b[2] / a[2])^2 - 2) + 0.5 * (a[1] - b[1])^2 * (1 / a[2]^2 + 1 / b[2]^2)
}
exact <- kalman()
for (h in c(0.25, 0.125, 0.0625)) {
  sc <- kalman(h)
  cat(sprintf("JKO scheme, h = %-6g: N(%.4f, %.4f^2), SymKL to Kalman %.4f, log p(y) %.4f\n",
              h, sc[1], sc[2], symkl_gauss(sc, exact), sc[3]))
}
t0 <- proc.time()[["elapsed"]]
f <- jko_filter(potential_quadratic(1, b = 1), y, times, sd = s_obs,
                init = init_gaussian(-1, 0.25), verbose = FALSE)
secs <- proc.time()[["elapsed"]] - t0
x <- seq(exact[1] - 6 * exact[2], exact[1] + 6 * exact[2], length.out = 1201)
p <- dnorm(x, exact[1], exact[2])
q <- as.numeric(jko_density(f$fits[[length(times)]], x))
cat(sprintf("Kalman (exact): N(%.4f, %.4f^2), log p(y) %.4f\n", exact[1], exact[2], exact[3]))
cat(sprintf("jko_filter() defaults: mean %.4f, sd %.4f, SymKL to Kalman %.4f, log p(y) %.4f (%.0f s)\n",
            f$table$mean[length(times)], f$table$sd[length(times)],
            sum((p - q) * (log(p) - log(q))) * (x[2] - x[1]), sum(f$table$log_evidence), secs))
sc <- kalman(steps = f$table$flow_steps)
cat(sprintf("its steps per interval: %s; the JKO scheme in those steps: N(%.4f, %.4f^2), SymKL to Kalman %.4f\n",
            paste(f$table$flow_steps, collapse = ", "), sc[1], sc[2], symkl_gauss(sc, exact)))
