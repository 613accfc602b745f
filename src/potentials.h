/* Potentials Phi: what a potential must provide, and how C evaluates one.
 *
 * A potential is an R object (a list) of class c(<kind>, ..., "jko_potential")
 * with its dimension `dim` (NA: any) and a `label`. Two ways to evaluate it:
 *
 *  - Built-in kinds are rows of the table `pot_kinds` in potentials.c: the
 *    kind's name, an optional setup, an optional draw and an eval function.
 *    The R constructor of a built-in records the name in the object's
 *    element `builtin`, and C chooses the kind by that element alone, once
 *    per call into C (pot_setup), never by a class: a class is the user's
 *    to give (new_potential()), and the data of a kind are read only from
 *    an object that its constructor made. setup reads the object's data
 *    (its `par`, a double vector, and any other element it needs), checks
 *    them against the dimension D of the points, and allocates scratch with
 *    R_alloc; on bad data it writes what is wrong into its `err` (at most
 *    JKO_ERRLEN characters) and returns JKO_ERR_DATA. draw, at the start of
 *    each evaluation, takes a fresh random part of the data (a minibatch)
 *    with R's RNG; eval fills phi (n) and, unless gphi is NULL, grad Phi
 *    (D x n) at the columns of Y (D x n), and returns JKO_OK or a JKO_ERR_*
 *    status. A new built-in is one eval function (plus a setup that checks
 *    its data), one row of the table and one R constructor that makes the
 *    object.
 *
 *  - Any other potential (no `builtin`) is evaluated in R: the object's
 *    `value` function of an n x D matrix returns the n values of Phi, and
 *    its `gradient` function (or NULL: central finite differences) the
 *    n x D gradients. C calls the package's R function potential_eval_r(),
 *    which checks what they return and signals a classed R error naming the
 *    function and the iteration; that error unwinds through C (all scratch
 *    is R_alloc'ed).
 *
 * pot_eval() checks the result of either: a non-finite value or gradient is
 * JKO_ERR_NONFINITE (the values are still written, for callers that accept
 * them, such as the free energy). A batch of a built-in is evaluated
 * JKO_CHUNK points at a time, with a check for an interrupt between.
 */
#ifndef JKOFLOW_POTENTIALS_H
#define JKOFLOW_POTENTIALS_H

#include <stddef.h>
#include <string.h>
#include <Rinternals.h>

typedef struct jko_pot jko_pot;

typedef int (*pot_setup_fn)(jko_pot *pot, SEXP obj, int nmax, char *err);
typedef void (*pot_draw_fn)(jko_pot *pot);
typedef int (*pot_eval_fn)(jko_pot *pot, const double *Y, int n, double *phi,
                           double *gphi);

typedef struct {
    const char *name;     /* the object's `builtin`                          */
    pot_setup_fn setup;   /* NULL: the kind has no data                      */
    pot_draw_fn draw;     /* NULL, or a fresh random part of the data (with
                             R's RNG) for each evaluation: a minibatch       */
    pot_eval_fn eval;
} pot_kind;

struct jko_pot {
    const pot_kind *kind; /* NULL: evaluated in R                            */
    int D;
    int iter;             /* the training iteration (0 outside training, -1
                             for the free energy), for R errors' messages    */
    int threads;          /* OpenMP threads a kind's eval may use (1 unless
                             the caller sets more; each point's result is
                             computed alone, whatever their number)          */
    const double *par;    /* the object's `par`                              */
    R_xlen_t npar;
    double *work;         /* max(D, npar) doubles of scratch                 */
    void *state;          /* a kind's own data, set up by its setup          */
    SEXP obj;             /* the R object                                    */
    SEXP rfun;            /* potential_eval_r, for potentials evaluated in R */
};

/* Reads the R potential `obj` for batches of up to nmax points of dimension
 * D. Returns JKO_OK, or JKO_ERR_DATA with the reason in err (JKO_ERRLEN
 * characters) when obj is not a potential C can evaluate at such points. */
int pot_setup(jko_pot *pot, SEXP obj, int D, int nmax, char *err);
int pot_eval(jko_pot *pot, const double *Y, int n, double *phi, double *gphi);

/* An element of an R list by name, or R_NilValue. (Here, inline, for the
 * kinds' setups (glm.c), the terms and the wrappers: glm.c then calls
 * nothing in potentials.c, whose table calls glm.c.) */
static inline SEXP jko_list_elt(SEXP s, const char *name)
{
    SEXP nms = Rf_getAttrib(s, R_NamesSymbol);
    if (TYPEOF(s) != VECSXP || Rf_isNull(nms)) return R_NilValue;
    for (R_xlen_t i = 0; i < XLENGTH(s); i++)
        if (strcmp(CHAR(STRING_ELT(nms, i)), name) == 0) return VECTOR_ELT(s, i);
    return R_NilValue;
}

/* glm.c: generalised linear models (target_glm(), target_logistic()) */
int glm_setup(jko_pot *pot, SEXP obj, int nmax, char *err);
void glm_draw(jko_pot *pot);
int glm_eval(jko_pot *pot, const double *Y, int n, double *phi, double *gphi);
/* The log-density of a glm target's prior at the n columns of Y (D x n),
 * from the object's prior part alone (its data are not read); JKO_ERR_DATA
 * with the reason in err if that part is invalid. */
int glm_log_prior(SEXP obj, int D, const double *Y, int n, double *lp, char *err);

#endif
