# Measurement hooks for inst/bench/profile.R: where the seconds of a fit go,
# measured from outside the package, in the benchmark process only. Nothing
# here changes what the package computes; it only wraps functions in timers.
#
#   source("inst/bench/profile-hooks.R")
#   ph_install()                 # wraps jkoflow's internals (once per process)
#   tg <- ph_wrap_target(tg)     # times and counts the target's own functions
#   ph_reset(); fit <- ph_fit(tg); ph_summary()
#
# How. Every timer reads proc.time() on entry and exit: wall (elapsed) and
# CPU seconds (user + system of the whole process, all threads), so a phase
# has both. Timed regions nest; each has an inclusive and an exclusive time
# (the inclusive minus its timed children), accumulated by key:
#
#   * R functions of the namespace (jko_fit, stationary_start, init_laplace,
#     jko_step, target_divergence, pareto_khat, target_verdict, stop_reason,
#     target_reached, next_h, potential_eval_r): a timer is put at the top of
#     the function's body (its formals, environment and frames unchanged) and
#     the function replaced in the namespace (assignInNamespace).
#     potential_eval_r, which C calls for each batch of an R target, is keyed
#     by its `iter` argument: "eval:train" (iter > 0, a training batch),
#     "eval:monitor" (iter = -1, the monitor samples after training),
#     "eval:other".
#   * .Call entry points: in every function of the namespace, each
#     .Call(C_name, ...) is rewritten as timer("C_name", .Call(C_name, ...)).
#   * The target's own functions (value, gradient, value_gradient of the
#     potential protocol): wrapped on the target object, keyed by the
#     innermost timed region that called them ("target:eval:train",
#     "target:stationary_start", "target:jko_fit" for the monitor at step 0,
#     ...), with the rows (points) they were given, split into points with a
#     gradient and points with a value only.
#
# One C_jko_step call holds, in order: the training loop (per iteration: the
# network's forward pass and Hessian, the target via potential_eval_r, the
# backward pass, Adam), the push of the pool (forward only), the push of the
# monitor samples (forward, Hessian, exact log-determinant), and the target
# at the pushed monitor samples (one potential_eval_r with iter = -1). From
# the start and end times of each potential_eval_r inside it, the step is cut
# into: network in training = from the C entry to the end of the last
# training batch's target call, less the target calls, plus the last
# iteration's backward pass and Adam step (estimated as half the median gap
# between two target calls); the pushes = from there to the monitor's
# target call; the target at the monitor = that call; the rest (returning
# the results) is small and goes to "else". The pushes are split into pool
# and monitor by replaying, after the fit, the last step's map on as many
# points as the pool (no log-determinant) and as the monitor (with it)
# through C_flow_push (ph_push_split()): the shares of that replay cut each
# step's measured pushes.

.ph <- new.env(parent = emptyenv())

ph_reset <- function() {
  .ph$stack <- vector("list", 64L)
  .ph$depth <- 0L
  .ph$acc <- new.env(parent = emptyenv())
  .ph$ev <- list()
  .ph$steps <- list()
  invisible()
}
ph_reset()

.ph_now <- function() {
  t <- proc.time()
  c(t[[3L]], t[[1L]] + t[[2L]])
}

ph_enter <- function(key, rows = 0, grad_rows = 0) {
  force(key); force(rows); force(grad_rows)   # before the stack moves
  t <- proc.time()
  d <- .ph$depth + 1L
  .ph$depth <- d
  .ph$stack[[d]] <- list(key = key, w0 = t[[3L]], c0 = t[[1L]] + t[[2L]], cw = 0, cc = 0,
                         rows = rows, grad = grad_rows)
  invisible()
}

# Accumulates c(calls, incl wall, incl cpu, excl wall, excl cpu, value rows,
# gradient rows) under the frame's key; returns the frame with its end times.
ph_exit <- function() {
  t <- proc.time()
  d <- .ph$depth
  f <- .ph$stack[[d]]
  f$w1 <- t[[3L]]
  f$c1 <- t[[1L]] + t[[2L]]
  w <- f$w1 - f$w0
  cpu <- f$c1 - f$c0
  .ph$depth <- d - 1L
  if (d > 1L) {
    p <- .ph$stack[[d - 1L]]
    p$cw <- p$cw + w
    p$cc <- p$cc + cpu
    .ph$stack[[d - 1L]] <- p
  }
  a <- .ph$acc[[f$key]]
  if (is.null(a)) a <- numeric(7L)
  .ph$acc[[f$key]] <- a + c(1, w, cpu, w - f$cw, cpu - f$cc, f$rows, f$grad)
  invisible(f)
}

.ph_parent <- function() if (.ph$depth > 0L) .ph$stack[[.ph$depth]]$key else "top"

# potential_eval_r: keyed by iter; inside a C_jko_step its times are kept as
# events for the step's decomposition.
ph_enter_eval <- function(iter, x, grad) {
  key <- if (iter > 0L) "eval:train" else if (iter < 0L) "eval:monitor" else "eval:other"
  n <- NROW(x)
  ph_enter(key, if (isTRUE(grad)) 0 else n, if (isTRUE(grad)) n else 0)
  .ph$stack[[.ph$depth]]$iter <- iter
  invisible()
}
ph_exit_eval <- function() {
  f <- ph_exit()
  if (.ph$depth > 0L && identical(.ph$stack[[.ph$depth]]$key, "C:C_jko_step")) {
    .ph$ev[[length(.ph$ev) + 1L]] <- c(f$iter, f$w0, f$w1, f$c0, f$c1, f$rows + f$grad)
  }
  invisible()
}

# The timer around a .Call; for C_jko_step, the decomposition of the step.
ph_call <- function(name, expr) {
  if (name == "C_jko_step") .ph$ev <- list()
  ph_enter(paste0("C:", name))
  on.exit({
    f <- ph_exit()
    if (name == "C_jko_step") {
      ev <- if (length(.ph$ev)) do.call(rbind, .ph$ev) else matrix(NA_real_, 0L, 6L)
      .ph$steps[[length(.ph$steps) + 1L]] <- ph_decompose(f, ev)
    }
  })
  expr
}

# One C_jko_step cut into phases (see the header), for wall and CPU seconds.
ph_decompose <- function(f, ev) {
  tr <- ev[ev[, 1L] > 0, , drop = FALSE]
  mo <- ev[ev[, 1L] < 0, , drop = FALSE]
  one <- function(f0, f1, j0, j1) {
    total <- f1 - f0
    if (!nrow(tr) || !nrow(mo)) {
      return(c(total = total, net = NA, push = NA, train_eval = NA, mon_eval = NA, post = NA))
    }
    dur <- sum(tr[, j1] - tr[, j0])
    last <- tr[nrow(tr), j1]
    gaps <- if (nrow(tr) > 1L) tr[-1L, j0] - tr[-nrow(tr), j1] else 0
    delta <- stats::median(gaps) / 2
    c(total = total, net = (last - f0) - dur + delta, push = (mo[1L, j0] - last) - delta,
      train_eval = dur, mon_eval = sum(mo[, j1] - mo[, j0]), post = f1 - mo[nrow(mo), j1])
  }
  w <- one(f$w0, f$w1, 2L, 3L)
  cpu <- one(f$c0, f$c1, 4L, 5L)
  c(batches = nrow(tr), train_points = sum(tr[, 6L]), monitor_points = sum(mo[, 6L]),
    stats::setNames(w, paste0("w_", names(w))), stats::setNames(cpu, paste0("c_", names(cpu))))
}

# Rewrites each .Call(C_name, ...) in an expression as ph_call("C_name", .Call(...)).
.ph_rewrite <- function(e) {
  if (!is.call(e)) return(e)
  if (identical(e[[1L]], as.name(".Call")) && length(e) >= 2L && is.name(e[[2L]]) &&
      startsWith(as.character(e[[2L]]), "C_")) {
    for (i in seq_along(e)[-1L]) {
      el <- e[[i]]
      if (!missing(el) && is.call(el)) e[[i]] <- .ph_rewrite(el)
    }
    return(as.call(list(ph_call, as.character(e[[2L]]), e)))
  }
  for (i in seq_along(e)) {
    el <- e[[i]]
    if (!missing(el) && is.call(el)) e[[i]] <- .ph_rewrite(el)
  }
  e
}

.ph_assign <- function(name, f, ns) {
  utils::assignInNamespace(name, f, ns)
  # an exported function is also bound in the attached package
  pkg <- paste0("package:", getNamespaceName(ns))
  if (pkg %in% search()) {
    env <- as.environment(pkg)
    if (exists(name, envir = env, inherits = FALSE)) {
      locked <- bindingIsLocked(name, env)
      if (locked) unlockBinding(name, env)
      assign(name, f, envir = env)
      if (locked) lockBinding(name, env)
    }
  }
}

# A timer at the top of a namespace function's body (on.exit(add = TRUE): a
# body that sets its own on.exit without add would drop it, so such
# functions are refused).
.ph_calls_on_exit <- function(e) {
  if (!is.call(e)) return(FALSE)
  if (identical(e[[1L]], as.name("on.exit"))) return(TRUE)
  for (i in seq_along(e)) {
    el <- e[[i]]
    if (!missing(el) && is.call(el) && .ph_calls_on_exit(el)) return(TRUE)
  }
  FALSE
}

.ph_wrap_body <- function(f, enter, exit) {
  if (.ph_calls_on_exit(body(f))) return(NULL)
  body(f) <- call("{", enter, call("on.exit", exit, add = TRUE), body(f))
  f
}

ph_installed <- function() isTRUE(.ph$installed)

# Installs the timers in the namespace (once). Returns, invisibly, what was
# wrapped; a function that no longer exists is reported, and its phase is
# then missing from the profile (NA), not wrong.
ph_install <- function(pkg = "jkoflow",
                       fns = c("jko_fit", "stationary_start", "init_laplace", "jko_step",
                               "target_divergence", "pareto_khat", "target_verdict",
                               "stop_reason", "target_reached", "next_h")) {
  if (ph_installed()) return(invisible(.ph$wrapped))
  ns <- asNamespace(pkg)
  done <- character()
  s3 <- getNamespaceInfo(ns, "S3methods")[, 3L]
  # 1. .Call entry points, everywhere in the namespace (S3 methods aside)
  for (nm in setdiff(ls(ns, all.names = TRUE), s3)) {
    f <- get(nm, envir = ns, inherits = FALSE)
    if (!is.function(f) || is.primitive(f)) next
    if (!any(grepl(".Call(C_", deparse(body(f)), fixed = TRUE))) next
    body(f) <- .ph_rewrite(body(f))
    .ph_assign(nm, f, ns)
    done <- c(done, paste0(nm, " (.Call)"))
  }
  # 2. R functions: a timer keyed by the function's name
  for (nm in fns) {
    if (!exists(nm, envir = ns, inherits = FALSE)) {
      message("profile hooks: ", nm, "() not found in ", pkg, "; its phase will be NA")
      next
    }
    f <- get(nm, envir = ns, inherits = FALSE)
    g <- .ph_wrap_body(f, call("ph_enter", nm), call("ph_exit"))
    if (is.null(g)) { message("profile hooks: ", nm, "() sets on.exit; not timed"); next }
    body(g)[[2L]][[1L]] <- ph_enter
    body(g)[[3L]][[2L]][[1L]] <- ph_exit
    .ph_assign(nm, g, ns)
    done <- c(done, nm)
  }
  # 3. potential_eval_r, called from C for each batch of an R target
  nm <- "potential_eval_r"
  if (exists(nm, envir = ns, inherits = FALSE)) {
    f <- get(nm, envir = ns, inherits = FALSE)
    if (all(c("iter", "x", "grad") %in% names(formals(f)))) {
      g <- .ph_wrap_body(f, as.call(list(ph_enter_eval, quote(iter), quote(x), quote(grad))),
                         as.call(list(ph_exit_eval)))
      if (!is.null(g)) { .ph_assign(nm, g, ns); done <- c(done, nm) }
    } else {
      message("profile hooks: potential_eval_r() has new arguments; targets in training ",
              "are not separated from the monitor")
    }
  } else {
    message("profile hooks: potential_eval_r() not found; target phases will be NA")
  }
  .ph$installed <- TRUE
  .ph$wrapped <- done
  invisible(done)
}

# The target's own functions timed and counted (keyed by their caller).
ph_wrap_target <- function(tg) {
  D <- tg$dim
  for (fn in c("value", "gradient", "value_gradient")) {
    if (!is.function(tg[[fn]])) next
    tg[[fn]] <- local({
      g <- tg[[fn]]
      with_grad <- fn != "value"
      function(x) {
        n <- if (is.null(dim(x))) length(x) %/% D else nrow(x)
        ph_enter(paste0("target:", .ph_parent()), if (with_grad) 0 else n,
                 if (with_grad) n else 0)
        on.exit(ph_exit())
        g(x)
      }
    })
  }
  tg
}

# The accumulated table: one row per key.
ph_table <- function() {
  keys <- ls(.ph$acc)
  if (!length(keys)) return(NULL)
  m <- do.call(rbind, mget(keys, envir = .ph$acc))
  colnames(m) <- c("calls", "incl_w", "incl_c", "excl_w", "excl_c", "value_rows", "grad_rows")
  data.frame(key = keys, m, row.names = NULL, stringsAsFactors = FALSE)
}

ph_steps <- function() {
  if (!length(.ph$steps)) return(NULL)
  as.data.frame(do.call(rbind, .ph$steps))
}

# The shares of a step's pushes that go to the pool and to the monitor:
# the last step's map replayed on pool-sized (no log-determinant) and
# monitor-sized (with it) sets of the monitor's points, median of `reps`.
# Internals used: fit_maps(), arch(), C_flow_push; NULL if any is missing.
ph_push_split <- function(fit, threads, reps = 3L, pkg = "jkoflow") {
  ns <- asNamespace(pkg)
  tryCatch({
    K <- length(fit$theta)
    maps <- ns$fit_maps(fit, K)[K]
    mon <- fit$monitor$points
    ld <- fit$monitor$log_density
    ld[!is.finite(ld)] <- 0
    npool <- fit$settings$pool
    pool <- mon[, rep_len(seq_len(ncol(mon)), npool), drop = FALSE]
    a <- ns$arch(fit$net)
    time_it <- function(x, l) {
      r <- vapply(seq_len(reps), function(i) {
        t0 <- .ph_now()
        .Call(ns$C_flow_push, a, fit$net$alpha_min, maps, x, l, as.integer(threads))
        .ph_now() - t0
      }, numeric(2))
      apply(r, 1L, stats::median)
    }
    p <- time_it(pool, NULL)
    m <- time_it(mon, ld)
    c(pool_w = p[1L], mon_w = m[1L], pool_c = p[2L], mon_c = m[2L])
  }, error = function(e) {
    message("push split: ", conditionMessage(e))
    NULL
  })
}

# Seconds per call of f(i), i = 1..n (cycled), in a tight loop: c(wall,
# CPU), each the median of `reps` loops of at least `min_time` seconds
# (CPU seconds are the robust figure on a loaded machine: a single-threaded
# loop's CPU time is its own work).
ph_per_call <- function(f, n, reps = 3L, min_time = 0.2) {
  r <- vapply(seq_len(reps), function(k) {
    calls <- 0
    t0 <- .ph_now()
    repeat {
      for (i in seq_len(n)) f(i)
      calls <- calls + n
      dt <- .ph_now() - t0
      if (dt[1L] >= min_time) break
    }
    dt / calls
  }, numeric(2))
  c(wall = stats::median(r[1L, ]), cpu = stats::median(r[2L, ]))
}
