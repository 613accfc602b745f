# Argument checks shared by every exported function. Each stops with a
# message that names the argument and says what was expected, before any
# work starts.

abort <- function(msg, ..., class = NULL, data = list(), call = sys.call(-1L)) {
  cond <- structure(
    class = c(class, "jkoflow_error", "error", "condition"),
    c(list(message = sprintf(msg, ...), call = call), data)
  )
  stop(cond)
}

check_count <- function(x, arg, min = 1, call = sys.call(-1L)) {
  if (!is.numeric(x) || length(x) != 1L || is.na(x) || !is.finite(x) ||
      x != round(x) || x < min) {
    abort("`%s` must be a whole number >= %s, not %s.", arg, format(min),
          describe(x), call = call)
  }
  as.integer(x)
}

check_counts <- function(x, arg, min = 1, call = sys.call(-1L)) {
  if (!is.numeric(x) || length(x) < 1L || anyNA(x) || any(!is.finite(x)) ||
      any(x != round(x)) || any(x < min)) {
    abort("`%s` must be a vector of whole numbers >= %s, not %s.", arg,
          format(min), describe(x), call = call)
  }
  as.integer(x)
}

check_positive <- function(x, arg, call = sys.call(-1L)) {
  if (!is.numeric(x) || length(x) != 1L || is.na(x) || !is.finite(x) || x <= 0) {
    abort("`%s` must be a single positive finite number, not %s.", arg,
          describe(x), call = call)
  }
  as.double(x)
}

check_flag <- function(x, arg) {
  if (!is.logical(x) || length(x) != 1L || is.na(x)) {
    abort("`%s` must be TRUE or FALSE, not %s.", arg, describe(x))
  }
  x
}

# Points: an n x dim numeric matrix (a vector is one point, or n points when
# dim = 1), finite, with at least one row. Returns the matrix.
check_points <- function(x, dim, arg = "x") {
  if (is.data.frame(x)) x <- as.matrix(x)
  if (!is.numeric(x)) {
    abort("`%s` must be a numeric matrix, not %s.", arg, describe(x))
  }
  if (is.null(dim(x))) {
    x <- if (!is.null(dim) && dim == 1L) matrix(x, ncol = 1L)
         else matrix(x, nrow = 1L)
  }
  if (length(dim(x)) != 2L) {
    abort("`%s` must be a numeric matrix, not an array with %d dimensions.",
          arg, length(dim(x)))
  }
  if (nrow(x) < 1L) abort("`%s` must have at least one row.", arg)
  if (!is.null(dim) && ncol(x) != dim) {
    abort("`%s` must have %d column%s (the dimension), not %d.", arg, dim,
          if (dim == 1L) "" else "s", ncol(x))
  }
  if (anyNA(x)) abort("`%s` must not contain NA or NaN values.", arg)
  if (any(!is.finite(x))) abort("`%s` must not contain infinite values.", arg)
  storage.mode(x) <- "double"
  x
}

describe <- function(x) {
  if (is.null(x)) return("NULL")
  if (is.function(x)) return("a function")
  if (length(x) == 1L && is.atomic(x)) {
    return(if (is.character(x)) sprintf("\"%s\"", x) else format(x))
  }
  sprintf("an object of class %s and length %d",
          paste0("\"", class(x)[1L], "\""), length(x))
}

# Batches travel to C as dim x n matrices (one sample per column).
to_cols <- function(x) t(x)

check_threads <- function(threads) {
  threads <- check_count(threads, "threads")
  max(1L, min(threads, parallel_cores()))
}

# The one thread policy: an explicit `threads`, else the option
# jkoflow.threads, else 2 (the most CRAN allows), never more than the
# machine's cores or OMP_THREAD_LIMIT (src/threads.c adds: one thread in a
# forked child).
resolve_threads <- function(threads) {
  if (is.null(threads)) {
    opt <- getOption("jkoflow.threads", 2L)
    if (!is.numeric(opt) || length(opt) != 1L || is.na(opt) || opt < 1 || opt != round(opt)) {
      abort("the option `jkoflow.threads` must be a whole number >= 1, not %s.",
            describe(opt), call = sys.call(-1L))
    }
    threads <- opt
  }
  check_threads(threads)
}

parallel_cores <- function() {
  n <- suppressWarnings(as.integer(Sys.getenv("OMP_THREAD_LIMIT", "")))
  cores <- tryCatch(parallel::detectCores(logical = TRUE), error = function(e) NA)
  if (is.na(cores)) cores <- 1L
  if (!is.na(n) && n > 0) cores <- min(cores, n)
  cores
}
