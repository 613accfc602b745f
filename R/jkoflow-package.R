#' jkoflow: Wasserstein gradient flows with input-convex neural networks
#'
#' Fokker-Planck flows by the JKO scheme, each step the gradient of an
#' input-convex neural network trained from samples; samples and exact
#' densities of the flow at every step. Start with [jko_fit()].
#'
#' @keywords internal
#' @useDynLib jkoflow, .registration = TRUE, .fixes = "C_"
"_PACKAGE"
