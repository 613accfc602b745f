# A hierarchical model's neck, named: where a flow to a target did not reach
# it and the mode search's first point is no mode (as at a centred
# hierarchy's neck, where the density grows without bound as a group's
# scale shrinks), the groups of coordinates whose precision there scales as
# exp(-2 x_s) in another coordinate x_s (the log of their scale): under
# theta_j ~ N(mu, e^s), the potential holds (theta_j - mu)^2 e^(-2 s) / 2,
# whose second derivative in theta_j, e^(-2 s), falls by e^(-2 d) when s
# rises by d. The verdict then says which scale and which coordinates to
# write in non-centred form (theta = mu + e^s z), in place of advice that
# only names the possibility.
#
# Out of sample (posteriordb, 2026-12-07, at the search's first point), it
# names sigma_alpha's 85 alpha and sigma_beta's 85 beta of the radon model
# with varying intercepts and slopes (D = 175), sigma_uv[1]'s 50 uv1 and
# sigma_uv[2]'s 50 uv2 of the butterfly occupancy model (D = 106), and
# sigma_theta's 100 theta of the two-parameter IRT model (D = 144; with 4
# b on sigma_b and 3 a on sigma_a, whose priors dominate there); the group
# means (the radon model's mu_alpha and mu_beta, irt_2pl's mu_b) are left
# out, as hubs.
#
# How: the second differences of the gradient along each coordinate j
# (steps of half its curvature's scale, 2 D + 1 gradients in one call)
# give d H_jj / d x_k for every k at once; a candidate scale k is one where
# at least neck_size coordinates have a share -d H_jj / d x_k / (2 H_jj)
# between 1/2 and 3/2 (1 where the prior's term is all of H_jj). Each
# candidate is then checked by the Hessians at x_k -+ 1/4: for a prior's
# term H_jj moves by 1 + a (e^(-+2 d) - 1), so the share a from their
# difference and from their sum agree (within a fifth). Coordinates coupled
# through the scale to three or more members (a group's mean, whose
# precision also scales so) are hubs, not members. At most neck_max
# candidates, the most populous first; NULL where none holds, or where the
# target fails.
neck_groups <- function(potential, x, size_min = neck_size, delta = 0.25) {
  D <- length(x)
  H <- modes_hessian(potential, x)  # R/descent.R
  h <- 0.5 / sqrt(pmax(abs(diag(H)), 1e-8))
  sd2 <- gradient_second_differences(potential, x, seq_len(D), h)  # R/descent.R
  A <- -sd2$dH / (2 * sd2$Hd)  # row j: d H_jj / d x_k
  A[!is.finite(A)] <- 0
  diag(A) <- 0
  hits <- colSums(A > 0.5 & A < 1.5)
  cand <- utils::head(which(hits >= size_min)[order(-hits[hits >= size_min])], neck_max)
  out <- list()
  used <- integer(0)
  for (s in cand) {
    if (s %in% used) next
    Hp <- modes_hessian(potential, replace(x, s, x[s] + delta))
    Hm <- modes_hessian(potential, replace(x, s, x[s] - delta))
    rp <- diag(Hp) / diag(H)
    rm <- diag(Hm) / diag(H)
    a1 <- (rm - rp) / (exp(2 * delta) - exp(-2 * delta))
    a2 <- (rp + rm - 2) / (exp(2 * delta) + exp(-2 * delta) - 2)
    ok <- is.finite(a1) & is.finite(a2) & a1 > 0.5 & a1 < 1.2 & abs(a1 - a2) < 0.2 * a1
    ok[c(s, used)] <- FALSE
    j <- which(ok)
    if (length(j) >= 2L) {
      Hs <- Hp - Hm
      C <- abs(Hs[j, j, drop = FALSE]) / sqrt(abs(outer(diag(Hs)[j], diag(Hs)[j])))
      diag(C) <- 0
      j <- j[rowSums(C > 0.05) < 3L]
    }
    if (length(j) < size_min) next
    out[[length(out) + 1L]] <- list(scale = s, members = j, share = stats::median(a1[j]))
    used <- c(used, s, j)
  }
  if (length(out)) out
}
neck_size <- 3L
neck_max <- 4L

# The groups of neck_groups() in words, the coordinates by name where the
# target has names.
neck_text <- function(groups, variables = NULL) {
  if (!length(groups)) return(NULL)
  nm <- function(k) if (length(variables) >= max(k)) variables[k] else sprintf("x[%d]", k)
  each <- vapply(groups, function(g) {
    mem <- nm(g$members)
    sprintf("%d coordinates (%s%s)", length(mem), paste(utils::head(mem, 3L), collapse = ", "),
            if (length(mem) > 3L) ", ..." else "")
  }, "")
  sc <- vapply(groups, function(g) nm(g$scale), "")
  one <- length(groups) == 1L
  sprintf(paste0("At the search's first point, a neck, the precision of %s scales as exp(-2 x) ",
                 "in x = %s%s: %s. %s non-centred form (theta = mu + exp(x) z, with z the new ",
                 "parameters) has no such neck."),
          each[1L], sc[1L],
          if (one) "" else paste0(", and that of ", paste(sprintf("%s in x = %s", each[-1L], sc[-1L]),
                                                       collapse = ", and that of ")),
          if (one) "a centred hierarchy on that scale" else "centred hierarchies on those scales",
          if (one) "Its" else "Their")
}

# The lattice spacing along each neck scale j (log-scales): a sixteenth of
# the span over which the target's conditional Laplace law along j (the
# other scales held at the centre) stays within neck_drop of its top,
# walked in quarter units from the centre; at least `least` (half the
# start's sds). A variational start's sds along a neck are far too narrow:
# on the radon model's log sigma_beta, 0.09 against the posterior's 0.9,
# whose log-density falls by one a unit down the neck to 9 below its mode.
neck_steps <- function(potential, beta, centre, j, least) {
  D <- length(centre)
  at <- grid_point(j, D)  # R/conditional.R
  # the conditional mode at the centre, where every walk begins
  fp <- planned_first(potential, beta, j, centre, at)  # R/conditional.R
  if (is.null(fp)) return(least)
  l0 <- fp$first
  plan <- fp$plan
  vapply(seq_along(j), function(k) {
    span <- 0
    for (dir in c(-1, 1)) {
      p <- l0
      top <- l0$l
      for (i in seq_len(60L)) {
        t <- centre[j]
        t[k] <- t[k] + dir * i / 4
        p <- conditional_mode(potential, beta, j, t, p$y, at, p$sd, plan)
        if (is.null(p)) break
        top <- max(top, p$l)
        if (p$l < top - neck_drop) break
        span <- span + 1 / 4
      }
    }
    max(least[k], span / 16)
  }, 0)
}
neck_drop <- 8
