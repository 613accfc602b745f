# Random streams of a flow. A fit draws one number from R's random number
# generator when it starts, its seed; every random choice of the flow then
# comes from a stream of its own, set from that seed and the name of what it
# is for (the start, the monitor samples, the pool, the first network, the
# training of step k), whatever the order in which the code reaches them.
# So a seeded fit does not change when a line of the package moves, a fit
# continued after an interrupt (jko_continue()) is the fit that would have
# run straight through, and R's own stream advances by one draw per fit.

# A new seed, from R's generator.
new_seed <- function() sample.int(.Machine$integer.max - 1L, 1L)

# The seed of the stream `key` (a string and, for a step, its number) of a
# flow with seed `seed`: set.seed() scrambles its argument, so neighbouring
# seeds give unrelated streams.
stream_seed <- function(seed, key, k = 0L) {
  # modes: the stream "modes" for R/modes.R
  # second_look: the second monitor sample of step k (R/stationary.R)
  code <- match(key, c("start", "monitor", "pool", "net", "step", "draws", "modes",
                       "second_look"))
  if (is.na(code)) stop("internal: unknown stream ", key)
  as.integer((seed + 7919 * (code + 8 * k)) %% (.Machine$integer.max - 1L)) + 1L
}

# Evaluates expr with R's generator set to the stream `key` of `seed`,
# restoring the caller's state of the generator afterwards (also on error).
with_stream <- function(seed, key, expr, k = 0L) {
  genv <- globalenv()
  had <- exists(".Random.seed", envir = genv, inherits = FALSE)
  old <- if (had) get(".Random.seed", envir = genv, inherits = FALSE)
  on.exit(if (had) assign(".Random.seed", old, envir = genv)
          else if (exists(".Random.seed", envir = genv, inherits = FALSE))
            rm(".Random.seed", envir = genv))
  set.seed(stream_seed(seed, key, k))
  expr
}

# The state of R's generator (NULL before its first use), and putting it
# back: a start tried and not taken (R/stationary.R) leaves the stream as if
# it had not run.
random_state <- function() get0(".Random.seed", envir = globalenv(), inherits = FALSE)
restore_random_state <- function(rs) {
  if (!is.null(rs)) assign(".Random.seed", rs, envir = globalenv())
}
