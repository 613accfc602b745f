# The Gaussian-mixture benchmark's floor in 2-D: how far the *exact*
# Fokker-Planck flow itself is from the stationary mixture at t = 4.
#
# gmm.R measures SymKL(rho_4, mixture) as the paper does. At t = 4 the flow
# has not reached the mixture (the weights of the modes are still those the
# wide start N(0, 16 I) left), so no solver of the t = 4 flow can go below
# the exact rho_4's own SymKL. In 2-D that floor can be computed: the
# Fokker-Planck equation on a grid of [-16, 16]^2 (step dx; Scharfetter-
# Gummel fluxes between neighbours, exact at equilibrium, reflecting ends),
# symmetrised by pi^{1/2} so that sparse Cholesky factors apply, from
# N(0, 16 I) to t = 4 by
#   * Crank-Nicolson with dt = 0.01: the exact flow (to O(dt^2 + dx^2));
#   * 40 implicit Euler steps of h = 0.1: the JKO scheme with h = 0.1, to
#     O(h^2) per step (what jkoflow approximates);
# then SymKL = sum over the grid of (rho - pi)(log rho - log pi) dx^2, with
# pi the mixture on the grid. Mixtures as in gmm.R at D = 2 (K = 5 unit
# components, centres uniform in [-5, 5]^2): by default the authors' own
# five ("published", inst/bench/gmm-mixtures.R), each set beside its
# published SymKL; "seeded" draws them with set.seed(1000 * 2 + seed).
#
#   Rscript inst/bench/gmm_exact2d.R [seeds] [dx] [published|seeded]
#   Rscript inst/bench/gmm_exact2d.R 5 0.1
suppressPackageStartupMessages(library(Matrix))
args <- commandArgs(trailingOnly = TRUE)
n_seeds <- as.integer(if (length(args) >= 1) args[[1]] else "5")
dx <- as.numeric(if (length(args) >= 2) args[[2]] else "0.1")
which_mix <- if (length(args) >= 3) args[[3]] else "published"
local({
  f <- sub("^--file=", "", grep("^--file=", commandArgs(FALSE), value = TRUE))
  source(file.path(if (length(f)) dirname(f) else "inst/bench", "gmm-mixtures.R"), local = globalenv())
})

g <- seq(-16, 16, by = dx)
n <- length(g)
N <- n * n
X <- matrix(g, n, n)
Y <- matrix(g, n, n, byrow = TRUE)
idx <- matrix(seq_len(N), n, n)
# neighbours in x (rows of the grid) and in y (columns)
ex <- cbind(c(idx[-n, ]), c(idx[-1L, ]))
ey <- cbind(c(idx[, -n]), c(idx[, -1L]))
bern <- function(z) ifelse(abs(z) < 1e-8, 1 - z / 2, z / expm1(z))
sym_off <- function(z) ifelse(abs(z) < 1e-8, 1, (z / 2) / sinh(z / 2))

rows <- list()
for (s in seq_len(n_seeds)) {
  t0 <- proc.time()[["elapsed"]]
  centres <- gmm_centres(2L, s, which_mix)
  K <- nrow(centres)
  dens <- 0
  for (k in seq_len(K)) {
    dens <- dens + exp(-((X - centres[k, 1])^2 + (Y - centres[k, 2])^2) / 2) / (2 * pi * K)
  }
  phi <- -log(dens)
  w <- c(phi[ex[, 2]] - phi[ex[, 1]], phi[ey[, 2]] - phi[ey[, 1]])
  e <- rbind(ex, ey)
  # rates i -> j along each edge: B(w) / dx^2 forward, B(-w) / dx^2 back;
  # pi^{-1/2} L pi^{1/2} is symmetric with off-diagonal (w/2)/sinh(w/2)/dx^2
  # (the diagonal: minus the total rate out of each node)
  out <- numeric(N)
  fwd <- rowsum(bern(w) / dx^2, e[, 1])
  bwd <- rowsum(bern(-w) / dx^2, e[, 2])
  out[as.integer(rownames(fwd))] <- out[as.integer(rownames(fwd))] + fwd[, 1]
  out[as.integer(rownames(bwd))] <- out[as.integer(rownames(bwd))] + bwd[, 1]
  S <- sparseMatrix(i = c(e[, 1], seq_len(N)), j = c(e[, 2], seq_len(N)),
                    x = c(sym_off(w) / dx^2, -out), dims = c(N, N), symmetric = TRUE)
  p <- exp(-(phi - min(phi)))
  p <- c(p / sum(p * dx^2))
  half <- sqrt(p)
  rho0 <- c(exp(-(X^2 + Y^2) / 32))
  rho0 <- rho0 / sum(rho0 * dx^2)
  symkl <- function(r) {
    r <- pmax(r / sum(r * dx^2), 1e-300)
    ok <- p > 1e-12 | r > 1e-12
    sum(((r - p) * (log(r) - log(p)))[ok]) * dx^2
  }
  I <- Diagonal(N)
  ch <- Cholesky(I - 0.1 * S)
  u <- rho0 / half
  for (k in 1:40) u <- as.numeric(solve(ch, u))
  scheme <- symkl(u * half)
  dt <- 0.01
  ch2 <- Cholesky(I - dt / 2 * S)
  B <- I + dt / 2 * S
  u <- rho0 / half
  for (k in 1:400) u <- as.numeric(solve(ch2, as.numeric(B %*% u)))
  flow <- symkl(u * half)
  rows[[s]] <- data.frame(seed = s, symkl_exact_flow = flow, symkl_jko_scheme = scheme,
                          published = if (which_mix == "published") gmm_published$symkl[["2"]][[s]]
                                      else NA_real_,
                          seconds = proc.time()[["elapsed"]] - t0)
  print(rows[[s]], row.names = FALSE, digits = 4)
}
tab <- do.call(rbind, rows)
cat(sprintf(paste0("\n2-D, dx = %g: SymKL(rho_4, mixture) of the exact flow, median %.3f ",
                   "(range %.3f-%.3f); of the JKO scheme with h = 0.1, median %.3f\n",
                   "published median of the ICNN method: %.3f\n"),
            dx, median(tab$symkl_exact_flow), min(tab$symkl_exact_flow),
            max(tab$symkl_exact_flow), median(tab$symkl_jko_scheme),
            median(gmm_published$symkl[["2"]])))
