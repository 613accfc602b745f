# The rewriting of Stan 2.26's array declarations for an older rstan
# (R/stan_syntax.R), checked on every Stan program of posteriordb: each
# program as posteriordb has it now (Stan 2.26+ syntax) is rewritten and
# parsed by this rstan's stanc; and where posteriordb's history has the same
# program in the older syntax (before commit ac10055, "Updated all models",
# which reformatted them all in the new syntax), the C++ that stanc makes of
# the two is compared, less line numbers and the model's name.
#
#   Rscript inst/bench/stan-syntax.R [path of a posteriordb git clone]
#
# Only parsing: nothing is compiled (about half a minute in all).
#
# Measured (rstan 2.21.7, posteriordb 28f8d3d): 120 programs, 86 with 317
# declarations rewritten; all 120 parse; 73 of the rewritten have an
# old-syntax version, and 69 give the same C++ as it. The other four were
# changed by that commit beyond the syntax: gp_pois_regr, gp_regr and
# hierarchical_gp call gp_exp_quad_cov() where they called cov_exp_quad(),
# and grsm_latent_reg_irt lost a generated quantity.

suppressPackageStartupMessages(library(jkoflow))
args <- commandArgs(TRUE)
repo <- if (length(args) >= 1L) args[1] else "posteriordb"
git <- function(...) suppressWarnings(system2("git", c("-C", shQuote(repo), ...),
                                              stdout = TRUE, stderr = FALSE))
files <- git("ls-tree", "-r", "--name-only", "HEAD", "posterior_database/models/stan/")
if (!length(files)) stop("no posteriordb clone at '", repo, "'")
show <- function(rev, f) paste(git("show", paste0(rev, ":", f)), collapse = "\n")

cpp <- function(code) {
  out <- tryCatch({
    utils::capture.output(r <- suppressMessages(
      rstan::stanc(model_code = code, model_name = "m", verbose = FALSE)))
    r$cppcode
  }, error = function(e) NA_character_)
  if (is.na(out)) return(NULL)
  l <- gsub("\\s+", " ", strsplit(out, "\n")[[1L]])
  l <- gsub("model[0-9a-f]+_m", "MODEL", l)
  l[!grepl("current_statement_begin__ = [0-9]+;|^ ?//|add_event|^ ?$", l)]
}

rows <- lapply(files, function(f) {
  new <- show("HEAD", f)
  tr <- jkoflow:::stan_rewrite_arrays(new)
  c_new <- cpp(tr$code)
  old <- show("ac10055^", f)
  c_old <- if (nzchar(old) && !grepl("(?<![A-Za-z0-9_.])array\\s*\\[", old, perl = TRUE)) cpp(old)
  data.frame(program = sub("\\.stan$", "", basename(f)), rewritten = length(tr$rewritten),
             parses = !is.null(c_new),
             same_cpp_as_old = if (is.null(c_new) || is.null(c_old)) NA else identical(c_new, c_old),
             left = paste(jkoflow:::stan_modern_constructs(tr$code), collapse = "; "))
})
res <- do.call(rbind, rows)
cat(sprintf("rstan %s (Stan %s), posteriordb at %s\n", utils::packageVersion("rstan"),
            rstan::stan_version(), git("rev-parse", "--short", "HEAD")))
cat(sprintf("%d programs, %d with array declarations of Stan 2.26 (%d declarations in all)\n",
            nrow(res), sum(res$rewritten > 0), sum(res$rewritten)))
cat(sprintf("parsed by this rstan after the rewriting: %d of %d\n", sum(res$parses), nrow(res)))
cmp <- res[!is.na(res$same_cpp_as_old), ]
cmp <- cmp[cmp$rewritten > 0, ]
cat(sprintf(paste0("rewritten, with an old-syntax version in posteriordb's history: %d; ",
                   "the same C++ as that version: %d\n"), nrow(cmp), sum(cmp$same_cpp_as_old)))
if (any(!res$parses) || any(!cmp$same_cpp_as_old)) {
  print(res[!res$parses | res$same_cpp_as_old %in% FALSE, ], row.names = FALSE)
}
