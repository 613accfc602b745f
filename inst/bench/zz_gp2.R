suppressPackageStartupMessages({library(rstan); library(jkoflow)})
pdb <- "/work/pdb/posteriordb/posterior_database"
con <- unz(file.path(pdb,"reference_posteriors/draws/draws/gp_pois_regr-gp_pois_regr.json.zip"), "gp_pois_regr-gp_pois_regr.json")
r <- jsonlite::fromJSON(paste(readLines(con, warn=FALSE), collapse=""), simplifyVector=FALSE); close(con)
la <- log(unlist(lapply(r, function(ch) unlist(ch[["alpha"]])))); lr <- log(unlist(lapply(r, function(ch) unlist(ch[["rho"]]))))
cat("ref log alpha mean/sd", mean(la), sd(la), " log rho", mean(lr), sd(lr), "\n")
fit <- readRDS("/tmp/gpfit.rds")
x <- NULL

d <- fit$draws; X <- d$x
cat("draws unconstrained col1,2 mean/sd:", colMeans(X)[1:2], apply(X,2,sd)[1:2], "\n")
lw <- d$log_weights; cat("n proposals", length(lw), "\n")
print(str(d, max.level=1))
