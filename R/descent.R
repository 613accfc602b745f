# Descents to the minima of a potential and the curvature there, for the
# Laplace approximation (R/init.R) and the search of modes (R/modes.R):
# batched descents (one call of the potential per iteration for all
# points), BFGS from one point, and Hessians by differences of gradients
# taken in one call.

# Phi and its gradient at one point as the potential gives them, for
# optim(): a non-finite value is +Inf (BFGS then shortens its step), a
# non-finite gradient component 0. For a compiled potential, and for one
# with a value_gradient() (a Stan program's), the value comes with its
# gradient from the same call and the gradient is kept: optim() asks for
# the gradient at the point whose value it has just taken, and for a
# target whose cost is a pass over its data the two together cost about
# what one does. There, a point where the gradient is not finite has the
# value +Inf: posteriordb's mcycle_gp (a brms GP of basis functions) has a
# finite log_prob at 0 and a NaN gradient (a spectral density that
# underflows, under a square root), so BFGS from 0 read a zero gradient
# and stopped there, and the Laplace approximation was a sd of 1e9 about
# 0 (it now starts from a point drawn about 0, init_laplace()).
point_objective <- function(potential) {
  both <- !is.function(potential$value) && identical(full_data(potential), potential)
  paired <- !both && is.function(potential$value_gradient)
  last <- NULL
  list(value = function(t) {
         if (both || paired) {
           out <- if (both) c_pot_eval(potential, matrix(t, 1L), TRUE)
                  else tryCatch(potential$value_gradient(matrix(t, 1L)), error = function(e) NULL)
           g <- as.double(out$gradient)
           if (length(g) != length(t)) g <- rep(NaN, length(t))
           v <- as.double(out$value)[1L]
           # (a gradient that is not finite makes the value +Inf: no
           # descent moves to, or stops at, a point it cannot descend from)
           if (paired && !all(is.finite(g))) v <- Inf
           g[!is.finite(g)] <- 0
           last <<- list(t = t, g = g)
         } else {
           v <- potential_values(potential, matrix(t, 1L))
         }
         if (is.finite(v)) v else Inf
       },
       gradient = function(t) {
         if (!is.null(last) && identical(last$t, t)) return(last$g)
         g <- raw_gradient(potential, matrix(t, 1L))[1L, ]
         g[!is.finite(g)] <- 0
         g
       })
}

# Phi and its gradient at the rows of x as the potential gives them, with
# any non-finite or undefined value made +Inf (a point no descent moves to)
# and non-finite gradient entries 0; a potential that fails on the batch
# gives +Inf everywhere.
modes_vg <- function(potential, x) {
  out <- tryCatch({
    if (is.function(potential$value)) {
      if (!is.null(potential$value_gradient)) {
        r <- potential$value_gradient(x)
        list(value = as.double(r$value), gradient = r$gradient)
      } else {
        list(value = as.double(potential$value(x)), gradient = raw_gradient(potential, x))
      }
    } else c_pot_eval(potential, x, TRUE)
  }, error = function(e) NULL)
  n <- nrow(x)
  if (is.null(out) || length(out$value) != n) {
    return(list(value = rep(Inf, n), gradient = matrix(0, n, ncol(x))))
  }
  v <- out$value
  v[!is.finite(v)] <- Inf
  g <- matrix(as.double(out$gradient), n, ncol(x))
  g[!is.finite(g)] <- 0
  list(value = v, gradient = g)
}

# Preconditioned gradient descent of all the rows of x at once (one call of
# the potential per iteration for the whole batch): x - eta P grad, eta
# per point, doubled after a step that satisfies Armijo's condition and
# quartered (the step undone) after one that does not. A point has
# converged when its squared Newton decrement in the metric P, g' P g, is
# below tol. P is one metric, or a list of them with `group` saying which
# each row takes. list(x, value (Phi at the start: `value0`, at the end:
# `value`), converged).
descend <- function(potential, x, P, maxit = 200L, tol = 1e-4, group = NULL) {
  vg <- modes_vg(potential, x)
  f <- vg$value
  f0 <- f
  g <- vg$gradient
  n <- nrow(x)
  eta <- rep(1, n)
  live <- is.finite(f)
  conv <- rep(FALSE, n)
  rows <- if (!is.null(group)) split(seq_len(n), group)
  metric <- if (is.null(group)) function(g) g %*% P else function(g) {
    for (k in names(rows)) g[rows[[k]], ] <- g[rows[[k]], , drop = FALSE] %*% P[[as.integer(k)]]
    g
  }
  for (it in seq_len(maxit)) {
    pg <- metric(g)
    dec <- rowSums(g * pg)
    conv <- live & dec < tol
    act <- which(live & !conv)
    if (!length(act)) break
    y <- x[act, , drop = FALSE] - eta[act] * pg[act, , drop = FALSE]
    out <- modes_vg(potential, y)
    ok <- out$value <= f[act] - 1e-4 * eta[act] * dec[act]
    i <- act[ok]
    x[i, ] <- y[ok, ]
    f[i] <- out$value[ok]
    g[i, ] <- out$gradient[ok, , drop = FALSE]
    eta[i] <- pmin(2 * eta[i], 1e6)
    j <- act[!ok]
    eta[j] <- eta[j] / 4
    live[j[eta[j] < 1e-12]] <- FALSE
  }
  list(x = x, value0 = f0, value = f, converged = conv)
}

# The Hessian of Phi at t by central differences of its gradient, all 2 D
# perturbed points in one call of the potential (for a target whose cost
# is in its data, one pass over the data instead of 2 D: a 581 012-row
# logistic regression's 110 gradients took 5 s one by one). Non-finite
# gradient entries are 0, as point_objective() has them.
modes_hessian <- function(potential, t) {
  D <- length(t)
  e <- 1e-5 * pmax(1, abs(t))
  X <- matrix(t, 2L * D, D, byrow = TRUE)
  i <- seq_len(D)
  X[cbind(i, i)] <- t + e
  X[cbind(D + i, i)] <- t - e
  G <- raw_gradient(full_data(potential), X)
  G[!is.finite(G)] <- 0
  # column d: (grad(t + e_d) - grad(t - e_d)) / (2 e_d)
  H <- t((G[i, , drop = FALSE] - G[D + i, , drop = FALSE]) / (2 * e))
  (H + t(H)) / 2
}

# The second differences of Phi's gradient along each coordinate idx of x
# (steps h, one each), all 2 m + 1 points in one call: dH, row i the
# derivative of H_ii (i = idx[i]) along every coordinate (a third
# derivative), and Hd, the central-difference H_ii (neck_groups(),
# R/neck.R; pair_shift(), R/conditional_pair.R).
gradient_second_differences <- function(potential, x, idx, h) {
  m <- length(idx)
  i <- seq_len(m)
  X <- matrix(x, 2L * m + 1L, length(x), byrow = TRUE)
  X[cbind(i + 1L, idx)] <- x[idx] + h
  X[cbind(i + m + 1L, idx)] <- x[idx] - h
  G <- modes_vg(potential, X)$gradient
  list(dH = (G[i + 1L, , drop = FALSE] - 2 * matrix(G[1L, ], m, length(x), byrow = TRUE) +
               G[i + m + 1L, , drop = FALSE]) / h^2,
       Hd = (G[cbind(i + 1L, idx)] - G[cbind(i + m + 1L, idx)]) / (2 * h))
}

# The evaluations of Phi after which polish_mode()'s BFGS stops: 100 (D +
# 5). On posteriordb's normal_mixture (D = 3, two labels' modes at mu =
# +-10) descents from the box of starts ended where the mixture's weight
# underflows to a denormal (logit theta = -745), and BFGS crawled there,
# some 30 line-search steps an iteration for its 2000 iterations: 7 to 11 s
# for each of 5 such starts, 47 of a 49 s search. The polishes of the 39
# held-out posteriors that converged by BFGS took at most 391 evaluations
# (D = 13); mesquite's one crawl (D = 8, 2409 evaluations in 2000
# iterations), stopped at 1300, ends at the same mode by Newton's method,
# and the fit's draws are the same.
polish_evals <- function(D) 100L * (D + 5L)
polish_spent <- structure(class = c("polish_spent", "condition"),
                          list(message = "polish_mode(): evaluations spent", call = NULL))

# A minimum par of Phi with its value and Hessian H as polish_mode()
# returns it: list(par, value, H, convergence, pd (is H positive definite),
# log_det); NULL where H is not finite.
mode_point <- function(par, value, H, convergence = 0L) {
  if (any(!is.finite(H))) return(NULL)
  ev <- eigen(H, symmetric = TRUE, only.values = TRUE)$values
  # positive definite, judged in units of the diagonal (parameters on
  # different scales make a well-determined H ill-conditioned)
  sc <- if (all(diag(H) > 0)) 1 / sqrt(diag(H)) else rep(1, nrow(H))
  evs <- eigen(H * outer(sc, sc), symmetric = TRUE, only.values = TRUE)$values
  pd <- min(ev) > 0 && min(evs) > 1e-8 * max(abs(evs), 1e-300)
  list(par = par, value = value, H = H, convergence = convergence, pd = pd,
       log_det = if (pd) sum(log(ev)) else NA_real_)
}

# BFGS from x0 to a minimum of Phi, and the Hessian there: list(par, value,
# H, convergence, pd (is H positive definite), log_det). Where BFGS does
# not converge, or spends `budget` evaluations of Phi, Newton's method
# finishes (newton_polish()) from the best point it saw.
polish_mode <- function(potential, x0, budget = polish_evals(length(x0))) {
  vg <- point_objective(potential)
  if (!is.finite(vg$value(x0))) return(NULL)
  n <- 0L
  best <- list(par = x0, value = Inf)
  value <- function(t) {
    if (n >= budget) stop(polish_spent)
    n <<- n + 1L
    v <- vg$value(t)
    if (v < best$value) best <<- list(par = t, value = v)
    v
  }
  opt <- tryCatch(stats::optim(x0, value, vg$gradient, method = "BFGS",
                               control = list(maxit = 2000L, reltol = 1e-14)),
                  polish_spent = function(e) c(best, convergence = 1L),
                  error = function(e) NULL)
  if (is.null(opt) || !is.finite(opt$value)) return(NULL)
  opt <- newton_finish(potential, opt)
  mode_point(opt$par, opt$value, modes_hessian(potential, opt$par), opt$convergence)
}

# An optim() result that did not converge, finished by newton_polish() from
# its end where that converges (else as it was).
newton_finish <- function(potential, opt) {
  if (identical(opt$convergence, 0L)) return(opt)
  nt <- tryCatch(newton_polish(potential, opt$par), error = function(e) NULL)
  if (isTRUE(nt$converged) && nt$value <= opt$value + 1e-8 * (1 + abs(opt$value))) {
    opt$par <- nt$par
    opt$value <- nt$value
    opt$convergence <- 0L
  }
  opt
}

# The squared Newton decrement g' H^-1 g of a point with gradient g and
# Hessian H (NA where H cannot be solved).
newton_decrement <- function(g, H) tryCatch(sum(g * solve(H, g)), error = function(e) NA_real_)

# Newton's method for a minimum of Phi from x, with the Hessian of central
# differences of the gradient (modes_hessian(): one call of the potential
# for its 2 D points) and a backtracking line search: converged where the
# Newton decrement g' H^-1 g falls below tol. BFGS on the raw scale crawls
# along a badly scaled ridge (posteriordb's earn_height, earnings in dollars
# on height: 2000 iterations from zero did not converge, and init_laplace()
# then tried 9 more starts, 7 s of a 10.5 s fit); Newton's steps do not
# depend on the scale. list(par, value, converged).
newton_polish <- function(potential, x, maxit = 20L, tol = 1e-6) {
  vg <- point_objective(potential)
  f <- vg$value(x)
  for (it in seq_len(maxit)) {
    g <- vg$gradient(x)
    H <- modes_hessian(potential, x)
    R <- if (all(is.finite(g)) && all(is.finite(H))) tryCatch(chol(H), error = function(e) NULL)
    if (is.null(R) || !is.finite(f)) break
    step <- -backsolve(R, forwardsolve(t(R), g))
    dec <- -sum(g * step)
    if (dec < tol) return(list(par = x, value = f, converged = TRUE))
    a <- 1
    repeat {
      y <- x + a * step
      fy <- vg$value(y)
      if (is.finite(fy) && fy <= f - 1e-4 * a * dec) break
      a <- a / 2
      if (a < 1e-10) return(list(par = x, value = f, converged = FALSE))
    }
    x <- y
    f <- fy
  }
  list(par = x, value = f, converged = FALSE)
}

# Quasi-Newton descent of all the rows of x at once (one call of the
# potential per iteration for the batch, as descend()): each point keeps
# its own BFGS approximation of the inverse Hessian, started at P (so its
# first step is descend()'s), steps along -H g by Armijo's rule (the
# step's factor doubled after a success up to 1 once H has learnt a
# curvature, up to 1e6 before; quartered, the step undone, after a
# failure; H back to P where the factor falls below 1e-10, and the point
# given up where it falls so again from P). Where Phi is nearly linear, as
# a logistic regression's far from its mode, or curved along a valley,
# the fixed metric P of descend() takes hundreds of steps that BFGS does
# not. Converged, and tol, as descend(). list(x, value0, value, converged).
descend_qn <- function(potential, x, P, maxit = 500L, tol = 1e-4, vg = NULL) {
  if (is.null(vg)) vg <- modes_vg(potential, x)
  f <- vg$value
  f0 <- f
  g <- vg$gradient
  n <- nrow(x)
  D <- ncol(x)
  H <- rep(list(P), n)
  fresh <- rep(TRUE, n)   # H is P
  eta <- rep(1, n)
  live <- is.finite(f)
  conv <- rep(FALSE, n)
  for (it in seq_len(maxit)) {
    dec <- rowSums(g * (g %*% P))
    conv <- live & dec < tol
    act <- which(live & !conv)
    if (!length(act)) break
    dir <- matrix(0, length(act), D)
    for (k in seq_along(act)) {
      i <- act[k]
      dk <- -drop(H[[i]] %*% g[i, ])
      if (!(sum(dk * g[i, ]) < 0)) {
        # not a descent direction: back to P
        H[[i]] <- P
        fresh[i] <- TRUE
        dk <- -drop(P %*% g[i, ])
      }
      dir[k, ] <- dk
    }
    slope <- rowSums(dir * g[act, , drop = FALSE])
    y <- x[act, , drop = FALSE] + eta[act] * dir
    out <- modes_vg(potential, y)
    ok <- out$value <= f[act] + 1e-4 * eta[act] * slope
    for (k in which(ok)) {
      i <- act[k]
      sv <- y[k, ] - x[i, ]
      yv <- out$gradient[k, ] - g[i, ]
      sy <- sum(sv * yv)
      if (is.finite(sy) && sy > 1e-12 * sqrt(sum(sv^2) * sum(yv^2))) {
        Hy <- drop(H[[i]] %*% yv)
        rho <- 1 / sy
        Hn <- H[[i]] - rho * (outer(sv, Hy) + outer(Hy, sv)) +
          (rho^2 * sum(yv * Hy) + rho) * outer(sv, sv)
        if (all(is.finite(Hn))) {
          H[[i]] <- (Hn + t(Hn)) / 2
          fresh[i] <- FALSE
        }
      }
      x[i, ] <- y[k, ]
      f[i] <- out$value[k]
      g[i, ] <- out$gradient[k, ]
      eta[i] <- if (fresh[i]) min(2 * eta[i], 1e6) else min(2 * eta[i], 1)
    }
    j <- act[!ok]
    eta[j] <- eta[j] / 4
    for (i in j[eta[j] < 1e-10]) {
      if (fresh[i]) {
        live[i] <- FALSE
      } else {
        H[[i]] <- P
        fresh[i] <- TRUE
        eta[i] <- 1
      }
    }
  }
  list(x = x, value0 = f0, value = f, gradient = g, converged = conv)
}

# The inverse of a symmetric H through its eigenvalues, their absolute
# values floored at 1e-6 of the largest (a metric for the descent and the
# box even where H is not positive definite).
abs_inverse <- function(H) {
  eg <- eigen(H, symmetric = TRUE)
  a <- pmax(abs(eg$values), 1e-6 * max(abs(eg$values), 1e-300))
  out <- eg$vectors %*% (t(eg$vectors) / a)
  (out + t(out)) / 2
}

# Squared Mahalanobis distances of the rows of x to each mode under its own
# Hessian: an n x K matrix.
mode_distances <- function(x, modes, hessians) {
  vapply(seq_len(nrow(modes)), function(k) {
    d <- sweep(x, 2L, modes[k, ])
    rowSums((d %*% hessians[[k]]) * d)
  }, numeric(nrow(x)))
}
