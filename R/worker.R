# The worker's side of batch-parallel targets (R/parallel.R, R/resident.R):
# the cache of the targets' functions on a worker process, a block of points
# evaluated there, and the files through which blocks and results travel
# when the workers share this machine. Nothing here knows how the block
# reached the worker (a future, a parallel cluster's socket, a resident
# server), so both transports and the resident servers call it.

# A name no other target or call of this session has, without touching
# the random number generator (a seeded fit is the same with or without
# workers).
new_key <- function(prefix) {
  worker_cache$count <- (worker_cache$count %||% 0) + 1
  sprintf("%s%d-%s-%.0f", prefix, Sys.getpid(),
          format(as.numeric(Sys.time()) * 1e6, scientific = FALSE), worker_cache$count)
}

# A cache of the targets' functions on this process, by key; the oldest goes
# beyond 8.
worker_cache <- new.env(parent = emptyenv())

worker_cache_put <- function(key, fns) {
  keys <- setdiff(worker_cache$keys, key)
  if (length(keys) >= 8L) {
    rm(list = keys[1L], envir = worker_cache)
    keys <- keys[-1L]
  }
  assign(key, fns, envir = worker_cache)
  worker_cache$keys <- c(keys, key)
}

# The functions of a payload, ready to call in this process: a setup is run;
# functions from another session's global environment are given their
# variables (an environment of their own, whose parent is this global
# environment) and their packages are attached.
worker_unpack <- function(payload) {
  if (is.function(payload$setup)) {
    tg <- payload$setup()
    return(tg[c("value", "gradient", "value_gradient", "rejections")])
  }
  rebase <- rebaser(payload$globals, payload$packages)
  lapply(payload[c("value", "gradient", "value_gradient")], rebase)
}

# A function that gives closures sent from another session their global
# variables here: an environment of their own (genv, whose parent is this
# global environment) holding `globals`, after attaching `packages`.
rebaser <- function(globals, packages) {
  for (p in packages) {
    if (!suppressPackageStartupMessages(require(p, character.only = TRUE, quietly = TRUE))) {
      stop(sprintf("the package %s is not installed on the worker", p), call. = FALSE)
    }
  }
  genv <- new.env(parent = globalenv())
  seen <- list()
  # a closure of the other session's global environment gets genv; the
  # frames a closure was made in travel with it, and the closures they hold
  # are treated alike (the jkoflow wrappers of a target hold the user's
  # functions this way)
  rebase <- function(f) {
    if (!is.function(f) || is.primitive(f)) return(f)
    env <- environment(f)
    if (identical(env, globalenv())) {
      environment(f) <- genv
      return(f)
    }
    while (!identical(env, emptyenv()) && !identical(env, globalenv()) &&
           !identical(env, genv) && !isNamespace(env) && !identical(env, baseenv()) &&
           !startsWith(environmentName(env), "package:")) {
      if (any(vapply(seen, identical, NA, env))) break
      seen[[length(seen) + 1L]] <<- env
      for (nm in ls(env, all.names = TRUE)) {
        if (bindingIsActive(nm, env) || bindingIsLocked(nm, env)) next
        val <- get(nm, envir = env, inherits = FALSE)
        if (is.function(val) && !is.primitive(val)) assign(nm, rebase(val), envir = env)
      }
      if (identical(parent.env(env), globalenv())) {
        parent.env(env) <- genv
        break
      }
      env <- parent.env(env)
    }
    f
  }
  for (nm in names(globals)) assign(nm, rebase(globals[[nm]]), envir = genv)
  rebase
}

# A block of points on a worker: the target's value (and gradient) there,
# as potential_eval_r() would call its functions; the points a Stan target
# rejected in `rejections`. A worker without the payload of `key` says so;
# an error comes back as its message.
worker_block <- function(key, x, grad, payload = NULL) {
  tryCatch({
    if (!is.null(payload)) worker_cache_put(key, worker_unpack(payload))
    fns <- worker_cache[[key]]
    if (is.null(fns)) return(structure(list(), class = "jko_worker_missing"))
    block_eval(fns, x, grad)
  }, error = function(e) {
    structure(list(message = conditionMessage(e)), class = "jko_worker_error")
  })
}

# The target's functions `fns` at the block x: list(value, gradient,
# rejections) (the last for a target that counts them: those of this call).
block_eval <- function(fns, x, grad) {
  before <- if (is.function(fns$rejections)) fns$rejections()
  out <- if (!grad) list(value = fns$value(x))
         else if (is.function(fns$value_gradient)) fns$value_gradient(x)
         else list(value = fns$value(x),
                   gradient = if (is.function(fns$gradient)) fns$gradient(x)
                              else fd_gradient(fns$value, x))
  out <- list(value = out$value, gradient = out$gradient)
  if (!is.null(before)) {
    after <- fns$rejections()
    out$rejections <- list(points = after$points - before$points,
                           rejected = after$rejected - before$rejected,
                           first = if (is.na(before$first)) after$first else NA_character_)
  }
  out
}

# ---- blocks through files ------------------------------------------------------

# On a node: store the payload; can this node read the file `probe`?
worker_store_shared <- function(key, payload, probe) {
  tryCatch({
    worker_cache_put(key, worker_unpack(payload))
    isTRUE(tryCatch(readLines(probe, warn = FALSE) == key, error = function(e) FALSE,
                    warning = function(w) FALSE))
  }, error = function(e) structure(list(message = conditionMessage(e)), class = "jko_worker_error"))
}

# On a node: a block read from its file, its result written beside it; the
# answer over the socket is TRUE or a failure, a few bytes.
worker_file_block <- function(key, name, grad, dir) {
  x <- tryCatch(read_block(file.path(dir, name)), error = function(e) {
    structure(list(message = conditionMessage(e)), class = "jko_worker_error")
  })
  if (inherits(x, "jko_worker_error")) return(x)
  out <- worker_block(key, x, grad)
  if (inherits(out, c("jko_worker_error", "jko_worker_missing"))) return(out)
  write_block(out, file.path(dir, paste0(name, "-out")))
  TRUE
}

# What goes over the socket for a block: a function of one call, whose
# body is resolved in jkoflow's namespace there (a call stays near 300 bytes,
# under the 4 KB beyond which it would wait for a TCP acknowledgement).
worker_file_entry <- function(...) worker_file_block(...)

read_block <- function(path) {
  con <- file(path, "rb")
  on.exit(close(con))
  unserialize(readBin(con, "raw", file.size(path)))
}

write_block <- function(obj, path) {
  tmp <- paste0(path, ".part")
  writeBin(serialize(obj, NULL, xdr = FALSE), tmp)
  file.rename(tmp, path)
}

