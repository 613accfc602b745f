# The README figure: the density rho_t of a 2-D Fokker-Planck flow at several
# times, from N(0, 4 I) towards a three-component Gaussian mixture (beta = 1,
# so the stationary law is the mixture itself). About 10 s on one core.
#
#   Rscript inst/scripts/readme-figure.R [output.png]
#
# writes man/figures/README-flow.png (run from the package root) with the
# installed jkoflow.
library(jkoflow)
out <- commandArgs(trailingOnly = TRUE)[1L]
if (is.na(out)) out <- file.path("man", "figures", "README-flow.png")

set.seed(1)
means <- rbind(c(-2, -1), c(2, -1), c(0, 2))
pot <- potential_gmm(means, sd = 0.7)
fit <- jko_fit(pot, init_gaussian(c(0, 0), 4), h = 0.1, steps = 10,
               hidden = c(32, 32), batch = 512, iters = 200)

u <- seq(-4.5, 4.5, length.out = 90)
grid <- as.matrix(expand.grid(u, u))
steps <- c(0, 2, 5, 10)
dens <- lapply(steps, function(k) matrix(as.numeric(jko_density(fit, grid, step = k)), 90))
target <- matrix(exp(-potential_value(pot, grid)), 90)
zmax <- max(unlist(dens), target)
pal <- hcl.colors(64, "viridis")

png(out, width = 1500, height = 360, res = 110)
op <- par(mfrow = c(1, 5), pty = "s", mar = c(2.2, 2.2, 2.2, 0.5), mgp = c(1.2, 0.4, 0), tcl = -0.3)
for (i in seq_along(steps)) {
  image(u, u, dens[[i]], col = pal, zlim = c(0, zmax), xlab = "", ylab = "",
        main = bquote(rho[t] ~ "at t =" ~ .(steps[i] * fit$h)), useRaster = TRUE)
  contour(u, u, dens[[i]], add = TRUE, drawlabels = FALSE, nlevels = 6,
          col = adjustcolor("white", 0.5))
}
image(u, u, target, col = pal, zlim = c(0, zmax), xlab = "", ylab = "",
      main = expression("stationary" ~ e^{-Phi}), useRaster = TRUE)
contour(u, u, target, add = TRUE, drawlabels = FALSE, nlevels = 6,
        col = adjustcolor("white", 0.5))
par(op)
invisible(dev.off())
cat("wrote", out, "\n")
