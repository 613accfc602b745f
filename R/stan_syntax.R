# Stan programs in the syntax of Stan 2.26 and later, for an rstan that
# parses the syntax of an older Stan (Debian's rstan 2.21): the array
# declarations of Stan 2.26 (`array[N] int y;`) rewritten as 2.21 writes
# them (`int y[N];`), and the constructs that cannot be rewritten named.

# The Stan version whose syntax this rstan parses.
stan_parser_version <- function() {
  v <- tryCatch(rstan::stan_version(), error = function(e) NA_character_)
  numeric_version(if (is.na(v)) "0" else v)
}

# `code` with its comments and string literals blanked (spaces, newlines
# kept), so that patterns found in it are code; the same length as `code`,
# character for character.
stan_blank_comments <- function(code) {
  ch <- strsplit(code, "")[[1L]]
  n <- length(ch)
  keep <- rep(TRUE, n)
  i <- 1L
  while (i <= n) {
    c1 <- ch[i]
    c2 <- if (i < n) ch[i + 1L] else ""
    if (c1 == "/" && c2 == "/" || c1 == "#") {
      j <- i
      while (j <= n && ch[j] != "\n") j <- j + 1L
      keep[i:(j - 1L)] <- FALSE
      i <- j
    } else if (c1 == "/" && c2 == "*") {
      j <- i + 2L
      while (j < n && !(ch[j] == "*" && ch[j + 1L] == "/")) j <- j + 1L
      j <- min(j + 1L, n)
      keep[i:j] <- FALSE
      i <- j + 1L
    } else if (c1 == "\"") {
      j <- i + 1L
      while (j <= n && ch[j] != "\"") j <- j + if (ch[j] == "\\") 2L else 1L
      j <- min(j, n)
      keep[i:j] <- FALSE
      i <- j + 1L
    } else {
      i <- i + 1L
    }
  }
  ch[!keep & ch != "\n"] <- " "
  paste(ch, collapse = "")
}

# The position of the bracket that closes the one at `open` (`[`, `(` or
# `<`) in the blanked code's characters `ch`, counting brackets of every
# kind inside; NA if there is none.
stan_close_bracket <- function(ch, open) {
  close <- c("[" = "]", "(" = ")", "<" = ">", "{" = "}")[[ch[open]]]
  depth <- 0L
  for (j in seq.int(open + 1L, length.out = max(0L, length(ch) - open))) {
    if (depth == 0L && ch[j] == close) return(j)
    if (ch[j] %in% c("[", "(", "{")) depth <- depth + 1L
    else if (ch[j] %in% c("]", ")", "}")) {
      if (depth == 0L) return(NA_integer_)
      depth <- depth - 1L
    }
  }
  NA_integer_
}

stan_skip_space <- function(ch, i) {
  while (i <= length(ch) && grepl("\\s", ch[i])) i <- i + 1L
  i
}

# The identifier starting at i (or "") and the position after it.
stan_identifier <- function(ch, i) {
  j <- i
  while (j <= length(ch) && grepl("[A-Za-z0-9_]", ch[j])) j <- j + 1L
  list(name = if (j > i && grepl("[A-Za-z]", ch[i])) paste(ch[i:(j - 1L)], collapse = "") else "",
       end = j)
}

stan_types_2_21 <- c("int", "real", "vector", "row_vector", "matrix", "simplex",
                     "unit_vector", "ordered", "positive_ordered", "cholesky_factor_corr",
                     "cholesky_factor_cov", "corr_matrix", "cov_matrix")

# `code` with every `array[dims] type name` of Stan 2.26 written as Stan
# 2.21 writes it: a declaration `array[N, M] real<lower=0> y` as
# `real<lower=0> y[N, M]` (with or without `= value`), a function's argument
# or return type `array[,] real` as `real[,]`. Returns the new code and the
# declarations rewritten (their text); an `array[` that does not have one of
# these forms is left as it is (and the parser will stop at it).
stan_rewrite_arrays <- function(code) {
  blank <- stan_blank_comments(code)
  ch <- strsplit(blank, "")[[1L]]
  orig <- strsplit(code, "")[[1L]]
  # text of the code without comments, in one line
  text <- function(a, b) {
    gsub("\\s+", " ", trimws(paste(ch[seq.int(a, length.out = max(0L, b - a + 1L))], collapse = "")))
  }
  starts <- gregexpr("(?<![A-Za-z0-9_.])array\\s*\\[", blank, perl = TRUE)[[1L]]
  starts <- starts[starts > 0L]
  edits <- list()
  for (p in starts) {
    open <- p + 5L
    open <- stan_skip_space(ch, open)
    close <- stan_close_bracket(ch, open)
    if (is.na(close)) next
    dims <- text(open + 1L, close - 1L)
    sized <- !grepl("^[\\s,]*$", dims, perl = TRUE)
    tp <- stan_skip_space(ch, close + 1L)
    type <- stan_identifier(ch, tp)
    if (!type$name %in% stan_types_2_21) next
    after <- type$end
    k <- stan_skip_space(ch, after)
    if (k <= length(ch) && ch[k] == "<") {
      e <- stan_close_bracket(ch, k)
      if (is.na(e)) next
      after <- e + 1L
      k <- stan_skip_space(ch, after)
    }
    if (k <= length(ch) && ch[k] == "[") {
      e <- stan_close_bracket(ch, k)
      if (is.na(e)) next
      after <- e + 1L
      k <- stan_skip_space(ch, after)
    }
    var <- stan_identifier(ch, k)
    if (!nzchar(var$name)) next
    nxt <- stan_skip_space(ch, var$end)
    follow <- if (nxt <= length(ch)) ch[nxt] else ""
    decl <- text(tp, after - 1L)
    if (sized) {
      # a declaration: `name;` or `name = value;`
      if (!follow %in% c(";", "=")) next
      new <- sprintf("%s %s[%s]", decl, var$name, dims)
    } else {
      # an argument (`name,` `name)`) or a return type (`name(`)
      if (!follow %in% c(",", ")", "(")) next
      new <- sprintf("%s[%s] %s", decl, gsub("\\s", "", dims), var$name)
    }
    # the lines stay where they were, so that Stan's messages name the user's lines
    new <- paste0(new, strrep("\n", sum(orig[p:(var$end - 1L)] == "\n")))
    edits[[length(edits) + 1L]] <- list(from = p, to = var$end - 1L, new = new,
                                        old = text(p, var$end - 1L))
  }
  for (e in rev(edits)) {
    orig <- c(orig[seq_len(e$from - 1L)], e$new, orig[seq.int(e$to + 1L, length.out = length(orig) - e$to)])
  }
  list(code = paste(orig, collapse = ""),
       rewritten = vapply(edits, `[[`, "", "old"))
}

# Constructs of Stan newer than 2.21 in `code`, with the version that
# brought them and the line where each first appears (a character vector
# of descriptions; empty if none is found). Cheap patterns on the code
# without its comments: what they name is certain, what they miss is left
# to the parser's own message.
stan_modern_constructs <- function(code) {
  blank <- stan_blank_comments(code)
  found <- list(
    c("(?<![A-Za-z0-9_.])array\\s*\\[", "`array[...]` declarations", "2.26"),
    c("\\bode_(rk45|bdf|adams|ckrk|adjoint)(_tol|_tol_ctl)?\\s*\\(",
      "the variadic ODE solvers (ode_rk45(), ode_bdf(), ...)", "2.24"),
    c("\\breduce_sum(_static)?\\s*\\(", "reduce_sum()", "2.23"),
    c("_lup[dm]f\\s*\\(", "`_lupdf`/`_lupmf` functions", "2.25"),
    c("\\bprofile\\s*\\(", "profile blocks", "2.26"),
    c("%/%", "the integer division operator `%/%`", "2.24"),
    c("\\bcomplex(_vector|_row_vector|_matrix)?\\b", "complex numbers", "2.28"),
    c("\\btuple\\s*\\(", "tuples", "2.33"),
    c("\\bjacobian\\s*\\+=", "`jacobian +=`", "2.36"),
    c("\\b(sum_to_zero_vector|column_stochastic_matrix|row_stochastic_matrix)\\b",
      "the types of Stan 2.36 (sum_to_zero_vector, stochastic matrices)", "2.36"),
    c("\\bfatal_error\\s*\\(", "fatal_error()", "2.35")
  )
  out <- character()
  for (f in found) {
    at <- regexpr(f[[1L]], blank, perl = TRUE)
    if (at > 0L) {
      line <- sum(strsplit(substr(blank, 1L, at), "")[[1L]] == "\n") + 1L
      out <- c(out, sprintf("%s (Stan %s; line %d)", f[[2L]], f[[3L]], line))
    }
  }
  out
}

# A stanmodel from Stan code (read from `file` when given). Where this
# rstan parses an older Stan than 2.26, array declarations in today's
# syntax are rewritten first (with a message saying so); a program that
# still does not parse, and has constructs of a newer Stan, gets an error
# that names them and the remedy.
stan_compile <- function(code, file = NULL, ...) {
  args <- list(...)
  old_parser <- stan_parser_version() < "2.26"
  rewritten <- character()
  if (old_parser) {
    tr <- stan_rewrite_arrays(code)
    if (length(tr$rewritten)) {
      n <- length(tr$rewritten)
      message(sprintf(paste0("target_stan(): rstan %s parses the syntax of Stan %s: the ",
                             "program's %d array declaration%s in Stan 2.26's syntax %s ",
                             "rewritten in the older one (`array[N] real x` as `real x[N]`)."),
                      utils::packageVersion("rstan"), stan_parser_version(), n,
                      if (n == 1L) "" else "s", if (n == 1L) "is" else "are"))
      code <- tr$code
      rewritten <- tr$rewritten
      if (!is.null(file) && is.null(args$model_name)) {
        args$model_name <- sub("\\.stan$", "", basename(file))
      }
      file <- NULL
    }
  }
  args <- c(if (is.null(file)) list(model_code = code) else list(file = file), args)
  # the parser's own messages (rstan gives them as messages before its error)
  said <- new.env(parent = emptyenv())
  said$parser <- character()
  keep_parser <- function(m) {
    if (length(said$parser) || grepl("SYNTAX ERROR", conditionMessage(m), fixed = TRUE)) {
      said$parser <- c(said$parser, conditionMessage(m))
      invokeRestart("muffleMessage")
    }
  }
  tryCatch(withCallingHandlers(do.call(rstan::stan_model, args), message = keep_parser),
           error = function(e) {
    found <- if (old_parser) stan_modern_constructs(code)
    if (!length(found)) {
      # the parser's reason, then rstan's, in the condition itself
      abort("the Stan program does not compile: %s%s",
            if (length(said$parser)) paste0(trimws(paste(said$parser, collapse = "")), "\n")
            else "", conditionMessage(e), class = "jkoflow_error_stan", call = NULL)
    }
    abort(paste0("the Stan program is written for a newer Stan than this rstan's: rstan %s ",
                 "parses the syntax of Stan %s, and the program has %s%s. Install a newer ",
                 "rstan: install.packages(\"rstan\", repos = c(\"https://stan-dev.r-universe.dev\", ",
                 "getOption(\"repos\"))) (or from CRAN), or write the program in the syntax ",
                 "of Stan %s.\n%s"),
          utils::packageVersion("rstan"), stan_parser_version(), paste(found, collapse = ", "),
          if (length(rewritten)) sprintf(" (its %d array declarations in the new syntax were rewritten)",
                                         length(rewritten)) else "",
          stan_parser_version(),
          if (length(said$parser)) trimws(paste(said$parser, collapse = ""))
          else conditionMessage(e), call = NULL)
  })
}
