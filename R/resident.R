# Resident servers for a future plan on this machine. Under a future plan,
# one future a block costs the `future` framework's own overhead, some
# 200 ms a batch on a 2-worker multisession plan, which a fit of hundreds
# of batches cannot afford. When the plan's workers run on this machine
# (multisession, cluster on localhost, multicore), the first batch starts
# instead one long-running future per worker: a server that connects back
# to this session by a local socket and waits there (socketSelect(), which
# wakes at once) for a line naming a block file. It reads the block from a
# directory of files like the cluster transport's (in /dev/shm where there
# is one), evaluates it with the target's functions from its cache
# (R/worker.R), writes the result beside it and answers "done". The
# socket carries only lines of a few dozen bytes (under the 4 KB beyond
# which R before 4.4 waits for a delayed TCP acknowledgement). The servers
# serve every parallel target of the session (one set of servers a plan:
# a second set would wait for workers the first holds); a target's payload
# goes to a server once, through a file, with a "load" line.
#
# The servers hold the plan's workers, so a future the user starts waits
# for them: they are stopped (a "quit" line, then their futures' values are
# collected) when a fit ends (jko_fit(), jko_continue()), after the
# top-level call that started them (a task callback), by target_release(),
# when the session ends (a finalizer), when a batch is interrupted or
# fails on the way (an error, a time limit: the servers may be out of
# step), when the plan is no longer the one they were started under, and
# by themselves after `jkoflow.resident_idle` seconds without work (60 by
# default: a user's future started in the same call as a batch, with no
# fit's end between them to let the workers go, waits at most that long;
# a fit whose batches are a minute apart pays 0.3 s to start the servers
# again, under 1%). A batch then starts them again.
#
# Where the servers cannot run for a target (the plan's workers are on
# other machines, do not see this session's files, do not start within
# `jkoflow.resident_wait` seconds, or cannot set the target up), the target
# marks the plan and its batches go as one future a block
# (future_blocks()), which gives the error a future gives; a batch whose
# server fails during it (its worker died) gives the error a future gives.
# options(jkoflow.resident = FALSE) turns the servers off.

#' Let a parallel target's workers go
#'
#' Under a `future` plan whose workers run on this machine, the targets
#' made by [target_parallel()] keep one server running on each worker while
#' they are in use, so that a batch costs a few milliseconds instead of a
#' future per block; those servers hold the plan's workers. They are let go at the
#' end of [jko_fit()] and [jko_continue()], at the end of the top-level
#' call that used the target, when the plan changes, and after
#' `getOption("jkoflow.resident_idle", 60)` seconds without work. Code that
#' evaluates the target itself (with [potential_value()]) and then starts
#' futures of its own within one call lets them go with `target_release()`,
#' or the futures wait for the workers. The servers start again when a
#' parallel target is used again.
#'
#' @param target A target made by [target_parallel()] (any other target
#'   leaves the servers alone).
#' @return `target`, invisibly.
#' @examples
#' \donttest{
#' if (requireNamespace("future", quietly = TRUE)) {
#'   oplan <- future::plan(future::multisession, workers = 2)
#'   par <- target_parallel(target_logdensity(function(x) -rowSums(x^2) / 2,
#'                                            function(x) -x, dim = 2))
#'   v <- potential_value(par, matrix(rnorm(20), 10))
#'   target_release(par)
#'   future::value(future::future(1))
#'   future::plan(oplan)
#' }
#' }
#' @export
target_release <- function(target) {
  if (inherits(target, "jko_target_parallel")) resident_stop_all()
  invisible(target)
}

# The servers alive (`sv`, at most one set), and whether the task callback
# that stops them is set.
resident_live <- new.env(parent = emptyenv())

# The blocks of a batch on the resident servers: their results, or NULL
# where the servers cannot take the batch (the caller sends it as futures,
# which would wait for the workers that servers hold: none are left).
resident_blocks <- function(state, blocks, grad) {
  res <- resident_try(state, blocks, grad)
  if (is.null(res)) resident_stop_all()
  res
}

resident_try <- function(state, blocks, grad) {
  if (!isTRUE(getOption("jkoflow.resident", TRUE))) return(NULL)
  plan <- future::plan("next")
  if (!inherits(plan, c("cluster", "multicore")) || .Platform$OS.type != "unix") return(NULL)
  if (!is.null(state$resident_no) && identical(state$resident_no, plan)) return(NULL)
  sv <- resident_live$sv
  # servers of another plan, or one that has gone (idle, or its worker
  # stopped with the plan): all are stopped and started again
  if (!is.null(sv) && (!identical(sv$plan, plan) || !resident_ready(sv))) {
    resident_stop(sv)
    sv <- NULL
  }
  if (is.null(sv)) {
    m <- future::nbrOfWorkers()
    sv <- if (is.finite(m) && m >= 2) resident_start(plan, as.integer(m))
    if (is.null(sv)) {
      state$resident_no <- plan
      return(NULL)
    }
    state$launched <- state$launched + length(sv$cons)
  }
  idx <- seq_along(blocks)
  if (length(idx) > length(sv$cons)) return(NULL)
  # (twice: a server whose cache let the target go is given it again)
  for (round in 1:2) {
    if (!resident_load(sv, state, idx)) {
      state$resident_no <- plan
      return(NULL)
    }
    res <- resident_run(sv, state$key, blocks, grad)
    if (!is.null(res) || sv$stopped) return(res)
  }
  NULL
}

# Starts a server on each of the plan's `m` workers: an environment holding
# their sockets and futures, or NULL where they cannot run (then nothing is
# left running).
resident_start <- function(plan, m) {
  dir <- tempfile("jkoflow-res-", tmpdir = if (dir.exists("/dev/shm")) "/dev/shm" else tempdir())
  if (!dir.create(dir, showWarnings = FALSE)) return(NULL)
  listen <- resident_listen()
  if (is.null(listen)) {
    unlink(dir, recursive = TRUE)
    return(NULL)
  }
  sv <- new.env(parent = emptyenv())
  sv$id <- new_key("res")
  sv$pid <- Sys.getpid()
  sv$plan <- plan
  sv$dir <- dir
  sv$batches <- 0L
  sv$cons <- vector("list", m)
  sv$loaded <- rep(list(character()), m)
  sv$futures <- list()
  sv$stopped <- FALSE
  probe <- file.path(dir, "probe")
  writeLines(sv$id, probe)
  resident_live$sv <- sv
  reg.finalizer(sv, resident_stop, onexit = TRUE)
  ok <- FALSE
  on.exit({
    try(close(listen$socket), silent = TRUE)
    if (!ok) resident_stop(sv)
  })
  args <- list(probe = probe, host = Sys.info()[["nodename"]], port = listen$port,
               token = sv$id, idle = as.numeric(getOption("jkoflow.resident_idle", 60)))
  for (i in seq_len(m)) {
    sv$futures[[i]] <- future::future(
      quote(resident_serve(probe, host, port, token, i, idle)), substitute = FALSE,
      globals = c(list(resident_serve = resident_serve, i = i), args), packages = "jkoflow",
      seed = NULL, lazy = FALSE, stdout = FALSE, conditions = NULL)
  }
  # each server connects and says who it is; one whose future has ended
  # instead could not serve (its files not shared, jkoflow missing there)
  deadline <- proc.time()[["elapsed"]] + getOption("jkoflow.resident_wait", 30)
  while (any(vapply(sv$cons, is.null, NA))) {
    if (proc.time()[["elapsed"]] > deadline) return(NULL)
    if (isTRUE(socketSelect(list(listen$socket), timeout = 0.05))) {
      con <- socketAccept(listen$socket, blocking = TRUE, open = "a+b", timeout = 30 * 86400)
      hello <- if (isTRUE(socketSelect(list(con), timeout = 5))) readLines(con, n = 1L)
      who <- strsplit(if (length(hello)) hello else "", " ", fixed = TRUE)[[1L]]
      i <- if (length(who) == 2L && identical(who[1L], sv$id)) suppressWarnings(as.integer(who[2L]))
      if (length(i) == 1L && !is.na(i) && i >= 1L && i <= m && is.null(sv$cons[[i]])) {
        sv$cons[[i]] <- con
      } else {
        close(con)       # not one of ours
      }
    }
    for (i in which(vapply(sv$cons, is.null, NA))) {
      if (resident_resolved(sv$futures[[i]])) return(NULL)
    }
  }
  resident_callback()
  ok <- TRUE
  sv
}

# A server socket on a free local port, found without R's random number
# generator: list(socket, port), or NULL.
resident_listen <- function() {
  start <- (Sys.getpid() * 7919 + floor(as.numeric(Sys.time()) * 1000)) %% 10000
  for (k in 0:39) {
    port <- 20000L + as.integer((start + 211 * k) %% 10000)
    s <- tryCatch(suppressWarnings(serverSocket(port)), error = function(e) NULL)
    if (!is.null(s)) return(list(socket = s, port = port))
  }
  NULL
}

# Are the servers all there and idle? A server that has gone (idle for
# too long, its worker stopped) has closed its socket, which reads as ready.
resident_ready <- function(sv) {
  !sv$stopped && !any(tryCatch(socketSelect(sv$cons, timeout = 0), error = function(e) TRUE))
}

# Lines to servers `idx`, one each, and their answers: "done", "fail", or
# NA for a server that failed (its socket closed: the caller stops the
# servers once it has read what the others wrote). An interrupt or an
# error here (a time limit) stops the servers: they may be working on
# blocks whose answers the next batch must not read.
resident_ask <- function(sv, idx, lines) {
  done <- FALSE
  on.exit(if (!done) resident_stop(sv))
  answer <- rep(NA_character_, length(idx))
  for (j in seq_along(idx)) {
    sent <- tryCatch({
      writeLines(lines[j], sv$cons[[idx[j]]])
      TRUE
    }, error = function(e) FALSE)
    if (sent) answer[j] <- ""
  }
  # (in slices of 0.1 s, so that an interrupt or a time limit is seen)
  waiting <- which(!is.na(answer))
  while (length(waiting)) {
    ready <- socketSelect(sv$cons[idx[waiting]], timeout = 0.1)
    for (j in waiting[ready]) {
      a <- tryCatch(readLines(sv$cons[[idx[j]]], n = 1L), error = function(e) character())
      answer[j] <- if (length(a) == 1L && a %in% c("done", "fail")) a else NA_character_
    }
    waiting <- waiting[!ready]
  }
  done <- TRUE
  answer
}

# The target's payload on servers `idx`, through a file, where they do not
# hold it yet: FALSE where a server cannot set the target up (the futures
# of future_blocks() then give the error they give).
resident_load <- function(sv, state, idx) {
  need <- idx[!vapply(sv$loaded[idx], function(k) state$key %in% k, NA)]
  if (!length(need)) return(TRUE)
  path <- file.path(sv$dir, paste0(state$key, "-payload"))
  if (!file.exists(path)) write_block(state$payload, path)
  a <- resident_ask(sv, need, rep(paste("load", state$key), length(need)))
  if (anyNA(a)) resident_stop(sv)
  if (anyNA(a) || any(a != "done")) return(FALSE)
  for (i in need) sv$loaded[[i]] <- c(sv$loaded[[i]], state$key)
  TRUE
}

# The blocks through the servers, block i on server i: their results, or
# NULL where a server no longer held the target (its cache of 8 let it go:
# future_blocks() sends it again). A server that fails during the batch
# (its worker died: the target quit R, or ran out of memory) gives its
# block the error a future gives.
resident_run <- function(sv, key, blocks, grad) {
  m <- length(blocks)
  sv$batches <- sv$batches + 1L
  names <- sprintf("%s-b%d-%d", key, sv$batches, seq_len(m))
  on.exit(unlink(file.path(sv$dir, c(names, paste0(names, "-out")))))
  for (i in seq_len(m)) write_block(blocks[[i]], file.path(sv$dir, names[i]))
  a <- resident_ask(sv, seq_len(m), sprintf("run %s %s %d", key, names, as.integer(grad)))
  res <- lapply(seq_len(m), function(i) {
    if (is.na(a[i])) resident_failure(sv$futures[[i]])
    else read_block(file.path(sv$dir, paste0(names[i], "-out")))
  })
  if (anyNA(a)) resident_stop(sv)
  missing <- vapply(res, inherits, NA, "jko_worker_missing")
  if (any(missing)) {
    for (i in which(missing)) sv$loaded[[i]] <- setdiff(sv$loaded[[i]], key)
    return(NULL)
  }
  res
}

# The error of a block whose server stopped during the batch: that of its
# future (within a second), as future_value() words it.
resident_failure <- function(f) {
  deadline <- proc.time()[["elapsed"]] + 1
  while (!resident_resolved(f) && proc.time()[["elapsed"]] < deadline) Sys.sleep(0.005)
  why <- if (resident_resolved(f)) {
    tryCatch({
      v <- future::value(f)
      paste("its server stopped:", if (is.character(v)) v[1L] else "no reason given")
    }, error = function(e) conditionMessage(e))
  } else {
    "its server stopped answering"
  }
  structure(list(message = paste("a worker of the future plan failed:", why)),
            class = "jko_worker_error")
}

# Stops the servers: each is told to quit and its socket closed, then their
# futures are collected (within a second or two: a server busy with a block
# quits when the block is done, and future collects it then).
resident_stop <- function(sv) {
  if (is.null(sv) || isTRUE(sv$stopped)) return(invisible())
  sv$stopped <- TRUE
  if (identical(resident_live$sv, sv)) resident_live$sv <- NULL
  # a forked child (a multicore future) drops its copy: the servers are
  # its parent's
  if (!identical(sv$pid, Sys.getpid())) return(invisible())
  for (con in Filter(Negate(is.null), sv$cons)) {
    try(writeLines("quit", con), silent = TRUE)
    try(close(con), silent = TRUE)
  }
  sv$cons <- list()
  deadline <- proc.time()[["elapsed"]] + 2
  for (f in sv$futures) {
    while (!resident_resolved(f) && proc.time()[["elapsed"]] < deadline) Sys.sleep(0.002)
    if (resident_resolved(f)) {
      tryCatch(suppressWarnings(suppressMessages(future::value(f))), error = function(e) NULL)
    }
  }
  sv$futures <- list()
  unlink(sv$dir, recursive = TRUE)
  invisible()
}

resident_resolved <- function(f) {
  tryCatch(future::resolved(f), error = function(e) TRUE)
}

# Stops the servers after the top-level call that started them (the
# callback goes with them).
resident_callback <- function() {
  if (isTRUE(resident_live$callback)) return(invisible())
  resident_live$callback <- TRUE
  addTaskCallback(function(...) {
    resident_stop_all()
    FALSE
  }, name = "jkoflow-resident")
  invisible()
}

resident_stop_all <- function() {
  resident_live$callback <- FALSE
  resident_stop(resident_live$sv)
  invisible()
}

# ---- on the worker ---------------------------------------------------------------

# The server: in the future of a worker, until told to quit, its socket
# closes (this session gone) or `idle` seconds pass without work. Lines:
# "load <key>" (the payload of a target, in the file <key>-payload), "run
# <key> <name> <grad>" (the block in the file <name>, its result or error
# written to <name>-out), "quit". Returns why it stopped.
resident_serve <- function(probe, host, port, token, i, idle) {
  shared <- identical(Sys.info()[["nodename"]], host) &&
    isTRUE(tryCatch(readLines(probe, warn = FALSE) == token, error = function(e) FALSE,
                    warning = function(w) FALSE))
  if (!shared) return("files not shared")
  dir <- dirname(probe)
  con <- socketConnection("localhost", port, blocking = TRUE, open = "a+b", timeout = 30 * 86400)
  on.exit(close(con))
  writeLines(paste(token, i), con)
  served <- 0L
  repeat {
    if (!isTRUE(socketSelect(list(con), timeout = idle))) return("idle")
    cmd <- readLines(con, n = 1L)
    if (!length(cmd) || identical(cmd, "quit")) return(sprintf("quit after %d blocks", served))
    part <- strsplit(cmd, " ", fixed = TRUE)[[1L]]
    if (identical(part[1L], "load")) {
      set <- tryCatch({
        worker_cache_put(part[2L], worker_unpack(read_block(file.path(dir, paste0(part[2L], "-payload")))))
        TRUE
      }, error = function(e) FALSE)
      writeLines(if (set) "done" else "fail", con)
    } else if (identical(part[1L], "run")) {
      out <- worker_file_block(part[2L], part[3L], part[4L] == "1", dir)
      if (!isTRUE(out)) write_block(out, file.path(dir, paste0(part[3L], "-out")))
      served <- served + 1L
      writeLines("done", con)
    } else {
      writeLines("fail", con)
    }
  }
}
