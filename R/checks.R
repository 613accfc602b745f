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

# A warning that R's console shows whole: R cuts a message longer than the
# option warning.length (1000 bytes by default) with "[... truncated]", and
# the verdict of a flow that did not reach its target, with what its draws
# and its search for modes found, runs to 1200 bytes. The option is raised
# for this call only.
warn_whole <- function(msg) {
  n <- nchar(msg, "bytes") + 100L
  if (n > getOption("warning.length", 1000L)) {
    op <- options(warning.length = min(8170L, n))
    on.exit(options(op))
  }
  warning(msg, call. = FALSE)
}

# Counts are checked as doubles, before any conversion: whole numbers from
# `min` to `max`, max at most the largest integer (2147483647), so that no
# count overflows on its way to C.
check_count <- function(x, arg, min = 1, call = sys.call(-1L), max = .Machine$integer.max) {
  if (!is.numeric(x) || length(x) != 1L || is.na(x) || !is.finite(x) ||
      x != round(x) || x < min || x > max) {
    abort("`%s` must be a whole number >= %s%s, not %s.", arg, format(min),
          count_max_text(max, x), describe(x), call = call)
  }
  as.integer(x)
}

check_counts <- function(x, arg, min = 1, call = sys.call(-1L), max = .Machine$integer.max) {
  if (!is.numeric(x) || length(x) < 1L || anyNA(x) || any(!is.finite(x)) ||
      any(x != round(x)) || any(x < min) || any(x > max)) {
    abort("`%s` must be a vector of whole numbers >= %s%s, not %s.", arg,
          format(min), count_max_text(max, x), describe(x), call = call)
  }
  as.integer(x)
}

# The upper bound of a count, said where it matters: when it is not the
# largest integer, or when x is above it.
count_max_text <- function(max, x) {
  big <- is.numeric(x) && any(is.finite(x) & x > max)
  if (max >= .Machine$integer.max && !big) return("")
  sprintf(" and <= %s%s", format(max, scientific = FALSE, big.mark = ""),
          if (max >= .Machine$integer.max) " (the largest integer)" else "")
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
  big <- max(abs(x))
  if (big > sqrt(.Machine$double.xmax)) {
    abort(paste0("`%s` has values beyond 1e154 in magnitude (the largest %.3g): their squares ",
                 "overflow double precision, so no map, density or potential can be computed ",
                 "there."), arg, big, class = "jkoflow_error_overflow")
  }
  storage.mode(x) <- "double"
  x
}

# One of `choices` (several with `several`), as match.arg() chooses (the
# first when `x` is the whole vector of choices, partial matching), with a
# classed error naming the argument otherwise.
choose_arg <- function(x, choices, arg, several = FALSE, call = sys.call(-1L)) {
  if (identical(x, choices)) return(if (several) choices else choices[1L])
  i <- if (is.character(x) && length(x) >= 1L && (several || length(x) == 1L) && !anyNA(x))
         pmatch(x, choices, duplicates.ok = TRUE)
  if (is.null(i) || anyNA(i)) {
    abort("`%s` must be %s%s, not %s.", arg, if (several) "among " else "one of ",
          paste0("\"", choices, "\"", collapse = ", "), describe(x), call = call)
  }
  choices[unique(i)]
}

# What a function returned, in words: "1 value (-1)", "a 3 x 2 matrix".
values_text <- function(v) {
  if (is.numeric(v) && !is.null(dim(v))) {
    return(sprintf("a %s matrix", paste(dim(v), collapse = " x ")))
  }
  if (!is.numeric(v)) return(describe(v))
  sprintf("%d value%s%s", length(v), if (length(v) == 1L) "" else "s",
          if (length(v) && length(v) <= 3L)
            sprintf(" (%s)", paste(format(v, digits = 4), collapse = ", ")) else "")
}

`%||%` <- function(a, b) if (is.null(a)) b else a

describe <- function(x) {
  if (is.null(x)) return("NULL")
  if (is.function(x)) return("a function")
  if (length(x) == 1L && is.atomic(x)) {
    return(if (is.character(x)) sprintf("\"%s\"", x) else format(x))
  }
  if (is.atomic(x) && !is.object(x) && (is.numeric(x) || is.logical(x) || is.character(x))) {
    what <- if (is.matrix(x)) sprintf("a %d x %d %s matrix", nrow(x), ncol(x), typeof_word(x))
            else if (!length(x)) sprintf("an empty %s vector", typeof_word(x))
            else sprintf("a %s vector of length %d", typeof_word(x), length(x))
    # what in it is not a number: NA, NaN and infinite values, named
    odd <- if (is.numeric(x)) {
      c(if (any(is.na(x) & !is.nan(x))) "NA", if (any(is.nan(x))) "NaN",
        if (any(x == Inf, na.rm = TRUE)) "Inf", if (any(x == -Inf, na.rm = TRUE)) "-Inf")
    } else if (anyNA(x)) "NA"
    if (length(odd)) {
      what <- paste0(what, " containing ", paste(odd, collapse = ", "))
    }
    return(what)
  }
  sprintf("an object of class %s and length %d",
          paste0("\"", class(x)[1L], "\""), length(x))
}

typeof_word <- function(x) {
  if (is.integer(x)) "integer" else if (is.double(x)) "numeric"
  else if (is.logical(x)) "logical" else "character"
}

# No silent arguments: names in a function's `...` that it does not use are
# an error naming them (with the closest known name), as are unnamed
# extras. `allowed` are names the function passes on; `known` the
# arguments it has (by default those of the caller), offered as
# suggestions. Call as check_dots(...).
check_dots <- function(..., allowed = character(),
                       known = setdiff(names(formals(sys.function(-1L))), "..."),
                       call = sys.call(-1L)) {
  n <- ...length()
  if (!n) return(invisible())
  nm <- ...names()
  if (is.null(nm)) nm <- rep("", n)
  nm[is.na(nm)] <- ""
  bad <- nm[!nm %in% allowed | nm == ""]
  if (!length(bad)) return(invisible())
  fn <- if (is.call(call)) deparse(call[[1L]], nlines = 1L) else "this function"
  # a method is named by its generic
  fn <- sub("[.](summary[.])?(jko_[a-z_]+|icnn)$", "", fn)
  unnamed <- sum(bad == "")
  named <- unique(bad[bad != ""])
  parts <- character()
  if (length(named)) {
    cand <- unique(c(known, allowed))
    hint <- vapply(named, function(b) {
      if (!length(cand)) return("")
      d <- utils::adist(b, cand, ignore.case = TRUE)[1L, ]
      if (min(d) <= max(2, nchar(b) %/% 3)) sprintf(" (did you mean `%s`?)", cand[which.min(d)])
      else ""
    }, "")
    parts <- sprintf("unknown argument%s %s", if (length(named) == 1L) "" else "s",
                     paste0("`", named, "`", hint, collapse = ", "))
  }
  if (unnamed) {
    parts <- c(parts, sprintf("%d unexpected unnamed argument%s", unnamed,
                              if (unnamed == 1L) "" else "s"))
  }
  abort("%s in %s()%s.", paste(parts, collapse = " and "), fn,
        if (length(known) || length(allowed))
          sprintf("; its arguments are %s", paste0("`", unique(c(known, allowed)), "`",
                                                    collapse = ", "))
        else "; it takes no further arguments",
        call = call)
}
