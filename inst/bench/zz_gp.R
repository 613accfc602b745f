local({ source("inst/bench/common.R") })
bench_source("stan-programs.R")
suppressPackageStartupMessages({library(rstan); library(jkoflow)})
options(jkoflow.threads=2, width=200)
pdb <- "/work/pdb/posteriordb/posterior_database"
rz <- function(zip) { con <- unz(zip, sub("\\.zip$", "", basename(zip))); on.exit(close(con)); jsonlite::fromJSON(paste(readLines(con, warn=FALSE), collapse="")) }
nm <- Sys.getenv("PDBNAME", "gp_pois_regr-gp_pois_regr")
info <- jsonlite::fromJSON(file.path(pdb, "posteriors", paste0(nm, ".json")))
code <- paste(readLines(file.path(pdb, "models", "stan", paste0(info$model_name, ".stan"))), collapse="\n")
data <- rz(file.path(pdb, "data", "data", paste0(info$data_name, ".json.zip")))
code <- jkoflow:::stan_rewrite_arrays(code)$code
sm <- stan_model_cached(code, paste0("pdb-", gsub("[^A-Za-z0-9_]", "_", nm)))
set.seed(as.integer(Sys.getenv("SEED", "1")))
t0 <- proc.time()[[3]]
tg <- target_stan(sm, data = data)
fit <- suppressWarnings(jko_fit(tg, verbose = FALSE))
cat("secs", proc.time()[[3]]-t0, "\n")
print(fit$history[, c("step","h","iters","seconds","kl","kl_se","pareto_k","ess","moment_gap","growth")])
print(fit$init$label)
saveRDS(fit, "/tmp/gpfit.rds")
