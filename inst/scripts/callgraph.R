# The call graph of the package's R files: file A calls file B when a
# function defined in A calls (codetools::findGlobals) a function defined in
# B. The graph must have no circles: each file calls only files below it.
#
#   Rscript inst/scripts/callgraph.R [R directory]
#
# prints the files in an order where each calls only earlier ones (or the
# circles that prevent one), and the lines of each file.

r_callgraph <- function(dir = "R") {
  files <- sort(list.files(dir, pattern = "[.]R$", full.names = TRUE))
  defs <- list()
  for (f in files) {
    env <- new.env()
    sys.source(f, envir = env, keep.source = FALSE)
    for (nm in ls(env, all.names = TRUE)) {
      if (is.function(env[[nm]])) defs[[nm]] <- list(file = basename(f), fun = env[[nm]])
    }
  }
  where <- vapply(defs, `[[`, "", "file")
  edges <- list()
  for (nm in names(defs)) {
    called <- codetools::findGlobals(defs[[nm]]$fun, merge = FALSE)$functions
    called <- intersect(called, names(where))
    to <- unique(where[called])
    to <- setdiff(to, defs[[nm]]$file)
    if (length(to)) edges[[length(edges) + 1L]] <- data.frame(from = defs[[nm]]$file, to = to,
                                                              via = nm)
  }
  edges <- do.call(rbind, edges)
  list(files = basename(files), edges = edges)
}

# A topological order of the files (callees first), or the files left in
# circles.
r_layers <- function(g) {
  left <- g$files
  order <- character()
  e <- unique(g$edges[c("from", "to")])
  repeat {
    # files that call nothing still left
    free <- setdiff(left, e$from[e$to %in% left & e$from %in% left])
    if (!length(free)) break
    order <- c(order, sort(free))
    left <- setdiff(left, free)
  }
  list(order = order, circles = left)
}

if (sys.nframe() == 0L) {
  args <- commandArgs(TRUE)
  dir <- if (length(args)) args[1] else "R"
  g <- r_callgraph(dir)
  lay <- r_layers(g)
  lines <- vapply(file.path(dir, lay$order), function(f) length(readLines(f)), 0L)
  cat("Files, each calling only files above it:\n")
  print(data.frame(file = lay$order, lines = lines, row.names = NULL))
  if (length(lay$circles)) {
    cat("\nFiles in circles:", paste(lay$circles, collapse = ", "), "\n")
    e <- g$edges[g$edges$from %in% lay$circles & g$edges$to %in% lay$circles, ]
    print(e, row.names = FALSE)
  } else {
    cat("\nNo circles.\n")
  }
}
