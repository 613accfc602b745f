# Data and reference answers of the Stan programs of inst/bench/stan.R, on
# the programs' own (constrained) scale: for each program, a row per
# variable with the posterior mean, sd and 5, 25, 50, 75 and 95% quantiles.
#
#   source("inst/bench/stan-references.R")
#   refs <- stan_references()     # named list: data (or NULL), ref, source
#
# Sources:
#   kidiq_momiq, eight_schools_nc, arK, lotka_volterra, one_comp_mm_elim_abs,
#   hmm_example: summaries computed by us from posteriordb's reference draws
#     (posterior_database/reference_posteriors/draws/draws/*.json.zip, 10
#     chains x 1000 draws of Stan's NUTS, thinned by 10; Monte Carlo error of
#     the means, from the spread of the chain means, at most 0.018 posterior
#     sd); .sr_posteriordb_summary() recomputes them from a clone. The data
#     of the three programs new to the benchmark are posteriordb's
#     (hudson_lynx_hare, one_comp_mm_elim_abs, hmm_example); the others' are in
#     posteriors-targets.R.
#   pima_logistic: the 4e5 HMC draws of posteriors-targets.R's
#     .pb_pima_reference_run() (same seed), summarised here with quantiles by
#     .sr_pima_reference().
#   dirichlet_multinomial: exact (the posterior is Dirichlet(alpha + y)).
#
# posteriordb (https://github.com/stan-dev/posteriordb, snapshot of commit
# 28f8d3d6e975) is released under the BSD 3-Clause licence ("Copyright (c)
# 2011-2024, Stan Developers and their Assignees"); we keep its data and
# summary numbers, not its programs (those of inst/bench/stan.R are our own).

.sr_probs <- c(0.05, 0.25, 0.5, 0.75, 0.95)
.sr_cols <- c("mean", "sd", "q05", "q25", "q50", "q75", "q95")

.sr_data <- list(
  # posteriordb hudson_lynx_hare: pelts (thousands) of hares and lynxes
  # bought by the Hudson's Bay Company, 1900 (y_init) and 1901-1920 (y)
  lotka_volterra = list(
    N = 20L, ts = 1:20, y_init = c(30, 4),
    y = cbind(
      c(47.2, 70.2, 77.4, 36.3, 20.6, 18.1, 21.4, 22.0, 25.4, 27.1,
        40.3, 57.0, 76.6, 52.3, 19.5, 11.2, 7.6, 14.6, 16.2, 24.7),
      c(6.1, 9.8, 35.2, 59.4, 41.7, 19.0, 13.0, 8.3, 9.1, 7.4,
        8.0, 12.3, 19.5, 45.7, 51.1, 29.7, 15.8, 9.7, 10.1, 8.6))),
  # posteriordb one_comp_mm_elim_abs: concentrations (mg/L) after a dose
  # D = 30 mg into a volume V = 2 L (synthetic)
  one_comp_mm_elim_abs = list(
    t0 = 0, D = 30, V = 2, N_t = 20L,
    times = c(0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5.0,
      5.5, 6.0, 6.5, 7.0, 7.5, 8.0, 8.5, 9.0, 9.5, 10.0),
    C_hat = c(5.70812264865215, 7.10126075072086, 8.38520678426651,
      9.79008249883381, 13.43904092392450, 11.44789875977020,
      11.21242826968370, 11.42692176825770, 12.24328594384010,
      13.82018041089380, 13.84086707460420, 11.42229174425100,
      10.50319430818430, 11.91214522429650, 14.08499807813120,
      10.55051455239170, 10.19055393518770, 12.22322725908210,
      11.72906530478210, 12.27193965359960)),
  # posteriordb hmm_example: 100 draws of a two-state hidden Markov chain
  hmm_example = list(
    N = 100L, K = 2L,
    y = c(3.80243860781729, 8.23171251257037, 9.38968606678926, 7.15007526996264,
      8.05259295310005, 8.35299725934312, 9.93528194725218, 8.83709568584264,
      10.80344175961940, 7.96539420436862, 3.96202858463837, 3.98768015273356,
      3.12193526066983, 8.92767684051081, 8.86176959483729, 7.94336794135265,
      7.74041515529173, 9.53023201591449, 8.49962537700680, 8.55247318957826,
      1.34936312600009, 3.60275518002102, 4.41494380951644, 1.65355067400174,
      2.24910935304437, 2.19403774925662, 8.17425778045396, 9.04580247944741,
      10.84753548449260, 8.56100800476240, 2.65666514361278, 2.92716300625152,
      4.43683136163691, 7.25195489353772, 9.41689161641245, 7.87891318530130,
      8.51788238504067, 10.31038243328020, 8.78568252383045, 7.84549078920844,
      8.62998509947047, 9.56864052641054, 3.44511705134115, 9.61546596572572,
      8.97748012802273, 8.96917502117200, 9.17095288382957, 9.12906681011650,
      8.03721626068803, 8.65881783585576, 9.56357150231007, 8.88794881206943,
      7.35243245946842, 9.06003093656358, 8.96672501942626, 8.75640471108888,
      6.56274235350523, 8.84587374667829, 7.69647355530988, 9.10932197245880,
      2.29157525311394, 2.88700252820860, 3.09260327624150, 2.35612551387480,
      3.03901538491436, 9.92335232119353, 9.52350073673060, 9.01375508740495,
      7.73934374541708, 9.69311182173609, 7.17721944021149, 9.15991474459831,
      9.38802476899260, 10.14102971166030, 8.32544429594712, 7.80609039888422,
      9.60341189493316, 8.91135517043675, 8.46517335366137, 8.74402069650252,
      7.95504120330691, 10.43027396623410, 10.69627196987060, 10.02516596771530,
      9.12834482963362, 8.65506843072042, 8.26288704192228, 8.76653312709294,
      9.25500206410883, 8.61730744278892, 10.27559826925510, 8.05684930053199,
      9.27038599132892, 10.18741348382940, 7.43315622753450, 9.72345731108348,
      7.24183082277811, 7.33979487360853, 9.94556155712670, 7.89390236647281)),
  # counts of five categories, a flat Dirichlet prior: the posterior
  # Dirichlet(15, 7, 4, 2, 1) has two shares piled against zero
  dirichlet_multinomial = list(K = 5L, y = c(14L, 6L, 3L, 1L, 0L), alpha = rep(1, 5))
)

# Summaries of reference draws (posteriordb's, unless said otherwise).
.sr_ref <- list(
  kidiq_momiq = rbind(
    "beta[1]" = c(25.916530, 5.968603, 16.008320, 21.905880, 25.930610, 29.940380, 35.648240),
    "beta[2]" = c(0.60862840, 0.05898191, 0.51218790, 0.56879250, 0.60895430, 0.64822580, 0.70521140),
    "sigma" = c(18.2758500, 0.6240155, 17.2833100, 17.8465000, 18.2587200, 18.6899000, 19.3453900)),
  eight_schools_nc = rbind(
    "theta[1]" = c(6.150502, 5.615863, -1.680687, 2.657464, 5.589011, 8.844179, 16.329360),
    "theta[2]" = c(4.939581, 4.645578, -2.218035, 2.042394, 4.772916, 7.632079, 12.816780),
    "theta[3]" = c(3.905906, 5.280712, -4.914318, 1.075470, 4.105384, 7.112780, 11.844480),
    "theta[4]" = c(4.796017, 4.770938, -2.670282, 1.925907, 4.695256, 7.612812, 12.639050),
    "theta[5]" = c(3.6144360, 4.6147210, -4.2646540, 0.9585872, 3.8204300, 6.5479350, 10.6026800),
    "theta[6]" = c(4.051148, 4.796248, -3.865221, 1.247763, 4.161817, 7.077320, 11.516080),
    "theta[7]" = c(6.3171700, 5.0028550, -0.8546679, 2.9985180, 5.7950030, 8.9943510, 15.3053600),
    "theta[8]" = c(4.883997, 5.317692, -3.317235, 1.820610, 4.785269, 7.857821, 13.549590),
    "mu" = c(4.4105180, 3.3092960, -0.9361765, 2.1831370, 4.3638950, 6.6400630, 9.8320730),
    "tau" = c(3.6020600, 3.1984780, 0.2566638, 1.2783350, 2.7470210, 4.9663290, 9.7322090)),
  arK = rbind(
    "alpha" = c(-0.0007186503, 0.0107082200, -0.0182123000, -0.0079571630, -0.0007933729, 0.0064992610, 0.0169495800),
    "beta[1]" = c(0.69216330, 0.07055092, 0.57601200, 0.64530410, 0.69161980, 0.73962600, 0.80717880),
    "beta[2]" = c(0.43904310, 0.08730976, 0.29484100, 0.37964670, 0.43881890, 0.49800600, 0.58070270),
    "beta[3]" = c(0.10581600, 0.09308256, -0.04433795, 0.04386583, 0.10395430, 0.16779540, 0.26281060),
    "beta[4]" = c(-0.03543504, 0.08604181, -0.17565160, -0.09376471, -0.03523582, 0.02248022, 0.10810200),
    "beta[5]" = c(-0.30151210, 0.06988314, -0.41658280, -0.34913190, -0.30056480, -0.25431870, -0.18596920),
    "sigma" = c(0.150566700, 0.007774716, 0.138309400, 0.145163000, 0.150246900, 0.155559500, 0.164092700)),
  lotka_volterra = rbind(
    "theta[1]" = c(0.54686450, 0.06305479, 0.44821570, 0.50362060, 0.54364820, 0.58706420, 0.65504160),
    "theta[2]" = c(0.027747290, 0.004154718, 0.021377920, 0.024850470, 0.027501680, 0.030318890, 0.035021200),
    "theta[3]" = c(0.80009540, 0.08937018, 0.66422080, 0.73813430, 0.79405680, 0.85490790, 0.95767640),
    "theta[4]" = c(0.02408592, 0.00352809, 0.01885655, 0.02164770, 0.02382521, 0.02615646, 0.03030697),
    "z_init[1]" = c(34.035220, 2.916899, 29.344190, 32.076620, 33.944080, 35.908220, 39.037650),
    "z_init[2]" = c(5.935897, 0.530552, 5.114905, 5.578611, 5.911344, 6.259822, 6.833915),
    "sigma[1]" = c(0.24805690, 0.04326268, 0.18780990, 0.21735930, 0.24248930, 0.27242290, 0.32779680),
    "sigma[2]" = c(0.25101690, 0.04359034, 0.19107490, 0.22008210, 0.24483580, 0.27570720, 0.33129470)),
  one_comp_mm_elim_abs = rbind(
    "k_a" = c(0.7610134, 0.0779038, 0.6460024, 0.7088025, 0.7550259, 0.8058307, 0.8964176),
    "K_m" = c(2.53728100, 7.27581200, 0.08590627, 0.40833860, 0.97953900, 2.25388200, 8.68519800),
    "V_m" = c(0.9818208, 0.5633165, 0.6489745, 0.7924684, 0.8972977, 1.0256410, 1.4750560),
    "sigma" = c(0.12883480, 0.02340232, 0.09668109, 0.11236160, 0.12545310, 0.14209080, 0.17158320)),
  hmm_example = rbind(
    "theta1[1]" = c(0.6666452, 0.1012306, 0.4903875, 0.5988938, 0.6734554, 0.7387714, 0.8225886),
    "theta1[2]" = c(0.3333548, 0.1012306, 0.1774114, 0.2612286, 0.3265446, 0.4011062, 0.5096125),
    "theta2[1]" = c(0.07313259, 0.02844250, 0.03293318, 0.05219181, 0.06968050, 0.09042852, 0.12514000),
    "theta2[2]" = c(0.9268674, 0.0284425, 0.8748600, 0.9095715, 0.9303195, 0.9478082, 0.9670668),
    "mu[1]" = c(3.0215170, 0.2244529, 2.6549620, 2.8702110, 3.0210370, 3.1744620, 3.3931680),
    "mu[2]" = c(8.8272820, 0.1105783, 8.6461450, 8.7531270, 8.8277960, 8.9000450, 9.0099520)),
  pima_logistic = rbind(
    "beta[1]" = c(-1.0046420, 0.1243708, -1.2122890, -1.0876080, -1.0028910, -0.9199196, -0.8024146),
    "beta[2]" = c(0.4124490, 0.1463294, 0.1737877, 0.3134899, 0.4111851, 0.5104853, 0.6548891),
    "beta[3]" = c(1.1198780, 0.1330081, 0.9046907, 1.0292840, 1.1178530, 1.2082070, 1.3421970),
    "beta[4]" = c(-0.09703261, 0.12832500, -0.30798680, -0.18334600, -0.09709666, -0.01093975, 0.11389590),
    "beta[5]" = c(0.07503357, 0.15621370, -0.18101710, -0.03017321, 0.07436658, 0.17979550, 0.33331040),
    "beta[6]" = c(0.5801508, 0.1623707, 0.3156855, 0.4700996, 0.5789126, 0.6888114, 0.8494309),
    "beta[7]" = c(0.4605909, 0.1265711, 0.2544034, 0.3748735, 0.4597722, 0.5450031, 0.6704110),
    "beta[8]" = c(0.28983110, 0.15296360, 0.03997151, 0.18632600, 0.28900810, 0.39217210, 0.54289220))
)

# The exact reference of dirichlet_multinomial: the marginals of
# Dirichlet(a) are Beta(a_k, sum(a) - a_k).
.sr_dirichlet_reference <- function(d = .sr_data$dirichlet_multinomial) {
  a <- d$alpha + d$y; A <- sum(a)
  out <- cbind(mean = a / A, sd = sqrt(a * (A - a) / (A^2 * (A + 1))),
               t(vapply(a, function(ak) stats::qbeta(.sr_probs, ak, A - ak), numeric(5))))
  dimnames(out) <- list(sprintf("p[%d]", seq_along(a)), .sr_cols)
  out
}

# log p(y) of dirichlet_multinomial, exact (the Dirichlet-multinomial pmf).
.sr_dirichlet_log_z <- function(d = .sr_data$dirichlet_multinomial) {
  n <- sum(d$y); A <- sum(d$alpha)
  lgamma(n + 1) - sum(lgamma(d$y + 1)) + lgamma(A) - lgamma(n + A) +
    sum(lgamma(d$alpha + d$y) - lgamma(d$alpha))
}

# Every program's data (NULL where inst/bench/stan.R takes it from
# posteriors-targets.R), its reference table (rows: variables; columns
# .sr_cols), and where the reference comes from.
stan_references <- function() {
  refs <- lapply(.sr_ref, function(r) { colnames(r) <- .sr_cols; r })
  refs$dirichlet_multinomial <- .sr_dirichlet_reference()
  src <- ifelse(names(refs) == "pima_logistic", "4e5 HMC draws (posteriors-targets.R)",
                ifelse(names(refs) == "dirichlet_multinomial", "exact",
                       "posteriordb reference draws (10 x 1000 NUTS)"))
  out <- Map(function(r, s, nm) list(data = .sr_data[[nm]], ref = r, source = s),
             refs, src, names(refs))
  out$dirichlet_multinomial$log_z <- .sr_dirichlet_log_z()
  out
}

# ===========================================================================
# How the numbers were made (not used by the benchmark itself).
# ===========================================================================

# The summary table of a posteriordb reference posterior, from a clone:
#   .sr_posteriordb_summary("posteriordb", "hudson_lynx_hare-lotka_volterra")
.sr_posteriordb_summary <- function(repo, name) {
  zip <- file.path(repo, "posterior_database", "reference_posteriors", "draws", "draws",
                   paste0(name, ".json.zip"))
  con <- unz(zip, paste0(name, ".json"))
  on.exit(close(con))
  d <- jsonlite::fromJSON(paste(readLines(con, warn = FALSE), collapse = ""),
                          simplifyVector = FALSE)
  vars <- names(d[[1L]])
  x <- vapply(vars, function(v) unlist(lapply(d, function(ch) unlist(ch[[v]]))),
              numeric(length(d) * length(d[[1L]][[1L]])))
  out <- cbind(colMeans(x), apply(x, 2L, stats::sd),
               t(apply(x, 2L, stats::quantile, probs = .sr_probs)))
  dimnames(out) <- list(vars, .sr_cols)
  signif(out, 7)
}

# The pima_logistic table: the draws of .pb_pima_reference_run() (same
# seed, same sampler), with their quantiles. Needs posteriors-targets.R
# sourced; about 2.5 minutes.
.sr_pima_reference <- function(n_iter = 200000L, seed = 20240611L) {
  tg <- .pb_pima_logistic()
  x <- .pb_with_seed(seed, {
    x0 <- matrix(stats::rnorm(2 * tg$dim, 0, 0.1), 2, tg$dim)
    do.call(rbind, .pb_hmc(tg, x0, n_iter, n_warm = 4000L, L = 2L)$chains)
  })
  out <- cbind(colMeans(x), apply(x, 2L, stats::sd),
               t(apply(x, 2L, stats::quantile, probs = .sr_probs)))
  dimnames(out) <- list(sprintf("beta[%d]", seq_len(tg$dim)), .sr_cols)
  signif(out, 7)
}
