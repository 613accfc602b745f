/* Registration of the .Call routines. */
#include <R.h>
#include <Rinternals.h>
#include <R_ext/Rdynload.h>
#include "jko.h"

SEXP C_icnn_layout(SEXP, SEXP);
SEXP C_icnn_init(SEXP, SEXP, SEXP);
SEXP C_icnn_eval(SEXP, SEXP, SEXP, SEXP, SEXP, SEXP);
SEXP C_pot_eval(SEXP, SEXP, SEXP, SEXP);
SEXP C_glm_log_prior(SEXP, SEXP);
SEXP C_jko_loss(SEXP, SEXP, SEXP, SEXP, SEXP, SEXP, SEXP, SEXP);
SEXP C_moments(SEXP, SEXP);
SEXP C_jko_step(SEXP, SEXP, SEXP, SEXP, SEXP, SEXP, SEXP, SEXP, SEXP, SEXP, SEXP);
SEXP C_energy_loss(SEXP, SEXP, SEXP, SEXP, SEXP, SEXP, SEXP, SEXP, SEXP);
SEXP C_energy_eval(SEXP, SEXP, SEXP, SEXP, SEXP);
SEXP C_flow_push(SEXP, SEXP, SEXP, SEXP, SEXP, SEXP);
SEXP C_flow_pull(SEXP, SEXP, SEXP, SEXP, SEXP, SEXP, SEXP);
SEXP C_blas_info(void);
SEXP C_blas_threads(SEXP n);
SEXP C_kernel_lanes(SEXP);

static const R_CallMethodDef call_methods[] = {
    {"icnn_layout", (DL_FUNC) &C_icnn_layout, 2},
    {"icnn_init", (DL_FUNC) &C_icnn_init, 3},
    {"icnn_eval", (DL_FUNC) &C_icnn_eval, 6},
    {"pot_eval", (DL_FUNC) &C_pot_eval, 4},
    {"glm_log_prior", (DL_FUNC) &C_glm_log_prior, 2},
    {"jko_loss", (DL_FUNC) &C_jko_loss, 8},
    {"moments", (DL_FUNC) &C_moments, 2},
    {"jko_step", (DL_FUNC) &C_jko_step, 11},
    {"energy_loss", (DL_FUNC) &C_energy_loss, 9},
    {"energy_eval", (DL_FUNC) &C_energy_eval, 5},
    {"flow_push", (DL_FUNC) &C_flow_push, 6},
    {"flow_pull", (DL_FUNC) &C_flow_pull, 7},
    {"blas_info", (DL_FUNC) &C_blas_info, 0},
    {"blas_threads", (DL_FUNC) &C_blas_threads, 1},
    {"kernel_lanes", (DL_FUNC) &C_kernel_lanes, 1},
    {NULL, NULL, 0}
};

void R_init_jkoflow(DllInfo *dll)
{
    R_registerRoutines(dll, NULL, call_methods, NULL, NULL);
    R_useDynamicSymbols(dll, FALSE);
    R_forceSymbols(dll, TRUE);
    jko_threads_init();
    jko_kernels_init();
}
