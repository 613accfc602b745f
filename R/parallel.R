# Batch-parallel targets: a target evaluated in R whose batches are split
# across worker processes. This file is the one place that splits a batch:
# target_parallel() replaces the target's value and gradient functions by
# ones that cut the batch into contiguous row blocks, evaluate each block on
# a worker with the target's own functions and put the results back in
# order, so that everything downstream (potential_eval_r()'s checks, the
# support barrier, evidence, draws) is unchanged.
#
# What travels. The target's functions, with what they refer to in the
# global environment (its data), are the "payload": sent to each worker
# once and kept there under a key, in a cache of jkoflow's namespace on the
# worker. A batch then sends only its points and the key, and brings back
# values and gradients. Two transports:
#
# * the current `future` plan (workers = NULL, the default): one future per
#   block. Futures carry only the key; a worker that does not hold the
#   payload yet answers so, and that block is sent again with it. Workers of
#   multisession and cluster plans persist, so each receives the payload
#   once; forked (multicore) and sequential evaluation find it in this
#   session's cache; a backend whose every future is a new process
#   (batchtools) misses every time, and after a few misses the payload goes
#   with every future.
# * a `parallel` cluster (workers = cl): the payload is stored on each node
#   when the target is made. Points and results then travel through files
#   in a directory that the nodes share with this session (when they run on
#   this machine), the messages over the sockets staying under 4 KB: on R
#   before 4.4 a socket message of more than 4 KB waits about 40 ms for a
#   delayed TCP acknowledgement (Nagle's algorithm, no TCP_NODELAY), which
#   would be most of a batch's time. Nodes on other machines use the sockets.
#
# A block that fails on its worker comes back as the error's message, and
# is raised here, so the error a fit reports is the one the sequential
# target gives ("the potential's `logd` failed at iteration k: ...").

#' Evaluate a target's batches in parallel
#'
#' Every training iteration of a flow evaluates the target at a batch of
#' independent points (512 by default), and every step at its monitor
#' samples: `target_parallel()` splits each batch into as many blocks of
#' rows as there are workers and evaluates them side by side, which pays
#' when a point costs a millisecond or more (an ODE solve, a simulator, a
#' large data set). Values and gradients are those of the target itself, bit
#' for bit, so a fit with the same seed is the same fit; only the time
#' changes.
#'
#' Which workers: by default those of the current `future` plan, set by the
#' user with [future::plan()] (sequential unless set, so nothing is run in
#' parallel until a plan says so); `plan(multisession, workers = 2)` on one
#' machine, `plan(cluster, workers = hosts)` over machines, or a scheduler
#' backend. Or a cluster of the `parallel` package ([parallel::makeCluster()]),
#' given as `workers`, which is used as it is and not stopped.
#'
#' What is sent: the target's functions, and what they use from the global
#' environment (their data) together with the packages that provide the
#' other functions they call, go to each worker once and are kept there;
#' each batch then sends only its points and brings back the values and
#' gradients. Under a `future` plan whose workers persist (`multisession`,
#' `cluster`) each worker receives them once; `multicore` workers share them
#' with this session; a backend that starts a new process for every future
#' receives them with every batch. With a `parallel` cluster on this machine
#' the points go through files in a directory shared with the workers
#' (socket messages over 4 KB wait about 40 ms on R before 4.4), so the
#' cost per batch is a few milliseconds.
#'
#' Under a plan whose workers run on this machine (`multisession`,
#' `cluster` on `"localhost"`, `multicore`), the first batch starts one
#' long-running future on each worker, a server that evaluates the blocks
#' of the following batches (their points through the same files): a batch
#' then costs a few milliseconds, where a future per block costs the
#' `future` framework's own overhead (some 200 ms a batch, see
#' `inst/bench/parallel.R`). The servers hold the plan's workers until the
#' fit ends, the top-level call that used the target ends, the plan changes
#' or they have had no work for `getOption("jkoflow.resident_idle", 60)`
#' seconds; [target_release()] lets them go sooner. Workers on other
#' machines, or plans whose servers cannot start, get a future per block;
#' so do all plans under `options(jkoflow.resident = FALSE)`.
#'
#' jkoflow must be installed where the workers can load it. A target made by
#' [target_stan()] is made again on each worker from its program and data
#' (a model instance per worker; the compiled model is sent, not compiled
#' again), and the points each worker rejects are counted in the target's
#' rejections. A block that fails on its worker gives the error the target
#' gives without workers (of class `"jkoflow_error_potential"` during a fit,
#' which keeps the steps done: see [jko_fit()]); a worker that dies gives an
#' error that says so. The target's functions should not draw random
#' numbers (the workers' streams are not the session's).
#'
#' @param target A target evaluated in R: made by [target_logdensity()],
#'   [new_target()] or [target_stan()] (or a potential made by
#'   [potential_fn()] or [new_potential()]). Built-in kinds evaluated in C
#'   ([target_glm()], [target_logistic()]) are already multithreaded (see
#'   `threads` in [jko_fit()]).
#' @param workers `NULL` (the workers of the current `future` plan) or a
#'   cluster made by the `parallel` package.
#' @return The target, of class `c("jko_target_parallel", <its classes>)`,
#'   whose batches are evaluated by the workers.
#' @seealso [jko_flows()] for several flows side by side; [target_release()].
#' @examples
#' \donttest{
#' if (requireNamespace("future", quietly = TRUE)) {
#'   slow <- target_logdensity(function(x) { Sys.sleep(0.001 * nrow(x)); -rowSums(x^2) / 2 },
#'                             function(x) -x, dim = 2)
#'   oplan <- future::plan(future::multisession, workers = 2)
#'   par <- target_parallel(slow)
#'   x <- matrix(rnorm(20), 10)
#'   identical(potential_value(par, x), potential_value(slow, x))
#'   future::plan(oplan)
#' }
#' }
#' @export
target_parallel <- function(target, workers = NULL) {
  if (!inherits(target, "jko_potential")) {
    abort("`target` must be a jkoflow target (target_logdensity(), target_stan(), new_target(), ...), not %s.",
          describe(target))
  }
  if (inherits(target, "jko_target_parallel")) {
    abort("`target` is already parallel: give target_parallel() the target it was made from.")
  }
  if (!is.function(target$value)) {
    abort(paste0("`target` is evaluated in C (%s), not in R: it is multithreaded already ",
                 "(see `threads` in jko_fit()), and target_parallel() has nothing to split."),
          class(target)[1L])
  }
  if (inherits(target, "jko_target_stan") && !is.function(target$worker_setup)) {
    abort(paste0("`target` was made from a stanfit, which carries no data to make its model ",
                 "on the workers: make it with target_stan(program, data)."))
  }
  if (!is.null(workers) && !inherits(workers, "cluster")) {
    abort("`workers` must be NULL (the current future plan) or a cluster of the parallel package, not %s.",
          describe(workers))
  }
  if (is.null(workers) && !requireNamespace("future", quietly = TRUE)) {
    abort("target_parallel() without `workers` needs the future package: install.packages(\"future\").")
  }
  state <- new.env(parent = emptyenv())
  state$key <- new_key("jko")
  state$payload <- parallel_payload(target)
  state$fns <- target[c("value", "gradient", "value_gradient", "rejections")]
  state$workers <- workers
  state$misses <- 0L
  state$always <- FALSE
  state$busy <- FALSE
  state$batches <- 0L
  state$launched <- 0L   # futures it started: one a block, or resident servers (R/resident.R)
  state$tally <- list(points = 0, rejected = 0, first = NA_character_)
  # this session holds the payload too: sequential and forked evaluation
  # find it here
  worker_cache_put(state$key, state$fns)
  if (!is.null(workers)) cluster_setup(state)
  run <- function(x, grad) parallel_batch(state, x, grad)
  out <- target
  out$value <- function(x) run(x, FALSE)$value
  out$value_gradient <- function(x) run(x, TRUE)
  out$gradient <- function(x) run(x, TRUE)$gradient
  if (is.function(target$rejections)) {
    own <- target$rejections
    out$rejections <- function() {
      a <- own()
      b <- state$tally
      pts <- a$points + b$points
      rej <- a$rejected + b$rejected
      list(points = pts, rejected = rej, share = if (pts > 0) rej / pts else 0,
           first = if (!is.na(a$first)) a$first else b$first)
    }
  }
  out$parallel <- state
  out$label <- paste0(target$label, ", batches in parallel")
  class(out) <- c("jko_target_parallel", class(target))
  out
}

#' @export
print.jko_target_parallel <- function(x, ...) {
  NextMethod()
  st <- x$parallel
  cat("  Batches split across", if (is.null(st$workers))
        sprintf("the workers of the current future plan (%d now)", future::nbrOfWorkers())
      else sprintf("the %d nodes of a parallel cluster%s", length(st$workers),
                   if (!is.null(st$dir)) " (points through shared files)" else ""), "\n")
  invisible(x)
}

# What a worker needs to evaluate the target: its functions with the
# global variables they use and the packages of the other functions they
# call, or, for a target that must be made again on the worker (a Stan
# model instance is not sent: it lives in this session's memory), the
# function that makes it there (`worker_setup`).
parallel_payload <- function(target) {
  if (is.function(target$worker_setup)) return(list(setup = target$worker_setup))
  fns <- target[c("value", "gradient", "value_gradient")]
  found <- closure_globals(Filter(is.function, fns))
  c(fns, found)
}

# The variables that functions take from the global environment, and the
# attached packages whose functions they call: what a worker, whose global
# environment is its own, must be given. Functions are followed into the
# functions they use, in the global environment or in their own frames.
closure_globals <- function(funs) {
  globals <- list()
  packages <- character()
  todo <- funs
  seen <- list()
  while (length(todo)) {
    f <- todo[[1L]]
    todo <- todo[-1L]
    if (is.primitive(f) || any(vapply(seen, identical, NA, f))) next
    seen <- c(seen, list(f))
    env <- environment(f)
    for (nm in codetools::findGlobals(f)) {
      where <- binding_env(nm, env)
      if (is.null(where) || isNamespace(where) || identical(where, baseenv())) next
      if (identical(where, globalenv())) {
        if (!is.null(globals[[nm]])) next
        val <- get(nm, envir = where)
        globals[nm] <- list(val)
        if (is.function(val)) todo <- c(todo, list(val))
      } else if (startsWith(environmentName(where), "package:")) {
        packages <- union(packages, sub("^package:", "", environmentName(where)))
      } else {
        val <- get(nm, envir = where)
        if (is.function(val)) todo <- c(todo, list(val))
      }
    }
  }
  list(globals = globals, packages = setdiff(packages, "base"))
}

binding_env <- function(name, env) {
  while (!identical(env, emptyenv())) {
    if (exists(name, envir = env, inherits = FALSE)) return(env)
    env <- parent.env(env)
  }
  NULL
}

# ---- a target sent to another process (the worker's side: R/worker.R) ------

# A target with what its functions use from the global environment, to be
# sent to another R process (jko_flows()), and the target made whole there.
target_functions <- function(tg) {
  Filter(is.function, c(tg[c("value", "gradient", "value_gradient")],
                        if (is.list(tg$transform)) tg$transform))
}

ship_target <- function(tg) c(list(target = tg), closure_globals(target_functions(tg)))

unship_target <- function(sh) {
  tg <- sh$target
  rebase <- rebaser(sh$globals, sh$packages)
  for (nm in c("value", "gradient", "value_gradient")) {
    if (is.function(tg[[nm]])) tg[[nm]] <- rebase(tg[[nm]])
  }
  if (is.list(tg$transform)) tg$transform <- lapply(tg$transform, rebase)
  tg
}

# ---- in this session ----------------------------------------------------------

# The batch x, split into blocks evaluated by the workers: list(value,
# gradient) in the order of the rows.
parallel_batch <- function(state, x, grad) {
  n <- nrow(x)
  m <- if (is.null(state$workers)) future::nbrOfWorkers() else length(state$workers)
  m <- max(1L, min(m, n))
  if (m == 1L && (is.null(state$workers) || n == 1L)) {
    # one worker (sequential plan): this session, its own functions
    res <- tryCatch(block_eval(state$fns, x, grad), error = function(e) {
      structure(list(message = conditionMessage(e)), class = "jko_worker_error")
    })
    return(worker_result(list(res), state, grad, count = FALSE))
  }
  rows <- split(seq_len(n), rep(seq_len(m), diff(round(seq(0, n, length.out = m + 1L)))))
  blocks <- lapply(rows, function(r) x[r, , drop = FALSE])
  res <- if (!is.null(state$workers)) cluster_blocks(state, blocks, grad)
         else resident_blocks(state, blocks, grad) %||% future_blocks(state, blocks, grad)
  worker_result(res, state, grad)
}

# The blocks' results put together; a failed block raised as the error it
# was, and the rejections of a Stan target added up.
# `count`: are the rejections a worker's (not those this session's target
# has counted itself)?
worker_result <- function(res, state, grad, count = TRUE) {
  for (r in res) {
    if (inherits(r, "jko_worker_error")) stop(r$message, call. = FALSE)
  }
  for (r in res) {
    if (count && !is.null(r$rejections)) {
      t <- state$tally
      t$points <- t$points + r$rejections$points
      t$rejected <- t$rejected + r$rejections$rejected
      if (is.na(t$first) && !is.na(r$rejections$first)) t$first <- r$rejections$first
      state$tally <- t
    }
  }
  value <- unlist(lapply(res, function(r) r$value), use.names = FALSE)
  if (length(res) == 1L) value <- res[[1L]]$value
  if (!grad) return(list(value = value))
  g <- lapply(res, function(r) r$gradient)
  gradient <- if (length(g) == 1L) g[[1L]]
              else if (all(vapply(g, function(a) is.numeric(a) && is.matrix(a), NA))) do.call(rbind, g)
              else g[[which(!vapply(g, is.matrix, NA))[1L]]]   # its shape is reported
  list(value = value, gradient = gradient)
}

# Blocks as futures of the current plan. A worker without the payload gets
# its block again with it; after more misses than twice the workers (a
# backend that starts afresh for each future) the payload goes every time.
future_blocks <- function(state, blocks, grad) {
  launch <- function(b, payload) {
    future::future(quote(worker_block(key, x, grad, payload)), substitute = FALSE,
                   globals = list(worker_block = worker_block, key = state$key, x = b,
                                  grad = grad, payload = payload),
                   packages = "jkoflow", seed = NULL, lazy = FALSE)
  }
  pay <- if (state$always) state$payload
  fs <- lapply(blocks, launch, payload = pay)
  state$launched <- state$launched + length(fs)
  res <- lapply(fs, function(f) future_value(f))
  miss <- which(vapply(res, inherits, NA, "jko_worker_missing"))
  if (length(miss)) {
    state$misses <- state$misses + length(miss)
    if (state$misses > 2L * future::nbrOfWorkers()) state$always <- TRUE
    fs <- lapply(blocks[miss], launch, payload = state$payload)
    state$launched <- state$launched + length(fs)
    res[miss] <- lapply(fs, future_value)
  }
  res
}

future_value <- function(f) {
  tryCatch(future::value(f), FutureError = function(e) {
    structure(list(message = paste("a worker of the future plan failed:", conditionMessage(e))),
              class = "jko_worker_error")
  })
}

# ---- a parallel cluster --------------------------------------------------------

# The nodes load jkoflow (from this session's libraries too) and store the
# payload; a file written here and read there tells whether they share this
# machine's temporary directory, through which the points then travel.
cluster_setup <- function(state) {
  cl <- state$workers
  load <- function(libs) {
    .libPaths(unique(c(.libPaths(), libs)))
    requireNamespace("jkoflow", quietly = TRUE)
  }
  environment(load) <- globalenv()
  ok <- tryCatch(unlist(parallel::clusterCall(cl, load, .libPaths())),
                 error = function(e) abort("`workers`: the cluster does not answer (%s).",
                                           conditionMessage(e), call = sys.call(-3L)))
  if (!all(ok)) {
    abort("`workers`: jkoflow cannot be loaded on node%s %s of the cluster: install it there.",
          if (sum(!ok) > 1L) "s" else "", paste(which(!ok), collapse = ", "),
          call = sys.call(-3L))
  }
  dir <- tempfile("jkoflow-par-", tmpdir = if (dir.exists("/dev/shm")) "/dev/shm" else tempdir())
  dir.create(dir)
  probe <- file.path(dir, "probe")
  writeLines(state$key, probe)
  res <- parallel::clusterCall(cl, worker_store_shared, state$key, state$payload, probe)
  err <- Filter(function(r) inherits(r, "jko_worker_error"), res)
  if (length(err)) {
    abort("`workers`: the target could not be set up on the cluster: %s", err[[1L]]$message,
          call = sys.call(-3L))
  }
  if (all(unlist(res))) {
    state$dir <- dir
    reg.finalizer(state, function(s) unlink(s$dir, recursive = TRUE), onexit = TRUE)
  } else {
    unlink(dir, recursive = TRUE)
  }
  invisible(state)
}

# Blocks on the nodes of a parallel cluster, one node each. A batch that
# was interrupted (or stopped by a time limit) while the nodes worked left
# their answers in the sockets: they are read off before the next batch.
cluster_blocks <- function(state, blocks, grad) {
  cl <- state$workers
  if (state$busy) cluster_resync(state)
  m <- length(blocks)
  state$batches <- state$batches + 1L
  dir <- state$dir
  state$busy <- TRUE
  res <- if (!is.null(dir)) {
    names <- sprintf("%s-b%d-%d", state$key, state$batches, seq_len(m))
    for (i in seq_len(m)) write_block(blocks[[i]], file.path(dir, names[i]))
    on.exit(unlink(file.path(dir, c(names, paste0(names, "-out")))), add = TRUE)
    ok <- cluster_apply(cl[seq_len(m)], names, worker_file_entry, key = state$key,
                        grad = grad, dir = dir)
    lapply(seq_len(m), function(i) {
      if (inherits(ok[[i]], "jko_worker_error")) return(ok[[i]])
      read_block(file.path(dir, paste0(names[i], "-out")))
    })
  } else {
    cluster_apply(cl[seq_len(m)], blocks, worker_block, key = state$key, grad = grad)
  }
  state$busy <- FALSE
  miss <- which(vapply(res, inherits, NA, "jko_worker_missing"))
  if (length(miss)) {
    # a node's cache let the payload go (more than 8 parallel targets on it)
    parallel::clusterCall(cl[miss], worker_store_shared, state$key, state$payload, "")
    state$busy <- TRUE
    res[miss] <- cluster_apply(cl[miss], blocks[miss], worker_block, key = state$key, grad = grad)
    state$busy <- FALSE
  }
  res
}

# A failure of the cluster itself (a node gone) is every block's failure; a
# time limit reached while waiting is this session's error, kept as it is.
cluster_apply <- function(cl, xs, fun, ...) {
  tryCatch(parallel::clusterApply(cl, xs, fun, ...), error = function(e) {
    if (grepl("time limit", conditionMessage(e))) stop(e)
    rep(list(structure(list(message = paste("a node of the cluster failed:", conditionMessage(e))),
                       class = "jko_worker_error")), length(xs))
  })
}

# Each node answers a token; an answer that is not the token is the stale
# answer of an interrupted batch, and the token's follows it.
cluster_resync <- function(state) {
  cl <- state$workers
  for (i in seq_along(cl)) {
    token <- new_key("sync")
    r <- parallel::clusterCall(cl[i], identity, token)[[1L]]
    if (!identical(r, token)) {
      con <- cl[[i]]$con
      if (!inherits(con, "connection")) {
        abort("a node of the cluster is out of step after an interrupted batch: make a new cluster.",
              call = NULL)
      }
      r <- unserialize(con)$value
      if (!identical(r, token)) {
        abort("a node of the cluster is out of step after an interrupted batch: make a new cluster.",
              call = NULL)
      }
    }
  }
  state$busy <- FALSE
}
