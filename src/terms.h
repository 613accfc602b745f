/* Free energies made of terms, beyond Fokker-Planck.
 *
 * The JKO step minimises F(rho) + W2^2(rho_{k-1}, rho) / (2h) over
 * rho = grad psi # rho_{k-1}. F is a sum of terms, each estimated at the
 * pushed points y_i = grad psi(x_i) of a batch x_1..x_n ~ rho_{k-1}:
 *
 *   potential      int Phi drho                 (potentials.h)
 *   interaction    1/2 int int W(x - y) drho drho, over pairs in blocks
 *   entropy        beta^{-1} int rho log rho
 *   porous medium  int rho^m / (m - 1)
 *
 * The internal energies need the density of the pushed point,
 * rho_k(y_i) = rho_{k-1}(x_i) / det Hess psi(x_i): its log is the point's
 * log rho_{k-1} less the log-determinant of the map there.
 *
 * A term is an R object of class c(<kind>, ..., "jko_term"); its kind is a
 * row of the table `term_kinds` in terms.c, chosen by the object's element
 * `builtin` (the name its R constructor records; never by a class): the
 * name, an optional setup (reads the object's data, checks them, allocates
 * scratch with R_alloc; on bad data writes the reason into its `err`, at
 * most JKO_ERRLEN characters, and returns JKO_ERR_DATA) and an eval.
 * eval estimates the term on a batch as a mean of per-sample values and,
 * in training, gives the cotangents that flow back through the network:
 *
 *   val[i] += v_i                 the term is mean_i v_i
 *   g[, i] += n dE/dy_i           (D x n, x's coordinates; g may be NULL)
 *   lam[i] += n dE/d logdet_i     (lam may be NULL)
 *
 * The network's cotangents are then g / n on its output and lam / n on its
 * log-determinants (train.c). A new term is one eval function, one row of
 * the table and one R constructor that makes the object (R/energy.R).
 */
#ifndef JKOFLOW_TERMS_H
#define JKOFLOW_TERMS_H

#include <Rinternals.h>
#include "potentials.h"

typedef struct {
    int D, n;
    const double *Y;      /* D x n points, x's coordinates                  */
    const double *ld;     /* n log det Hess psi at the batch; NULL outside
                             training (the points are then samples of a
                             fitted step, with their log-densities)        */
    const double *lrho;   /* n log-densities of the points Y, or NULL where
                             unknown (then only terms that do not need them
                             may be present)                               */
    double beta;          /* the inverse temperature of jko_fit()          */
    int nth;              /* threads                                        */
    int iter;             /* training iteration, for R errors' messages     */
} term_batch;

typedef struct jko_term jko_term;

typedef int (*term_setup_fn)(jko_term *t, SEXP obj, int D, int nmax, char *err);
typedef int (*term_eval_fn)(jko_term *t, const term_batch *b, double *val,
                            double *g, double *lam);

typedef struct {
    const char *name;     /* the object's `builtin`                         */
    term_setup_fn setup;  /* NULL: the kind has no data                     */
    term_eval_fn eval;
    int density;          /* needs the log-densities of the points          */
} term_kind;

struct jko_term {
    const term_kind *kind;
    int D;
    const double *par;    /* the object's `par`                             */
    R_xlen_t npar;
    int block;            /* pairs are taken within blocks of this size     */
    double *work;         /* scratch set up by the kind                     */
    SEXP obj;
    SEXP rfun;            /* the R evaluator of an R-closure kind           */
};

typedef struct {
    jko_pot pot;          /* the potential term, if has_pot                 */
    int has_pot;
    double *phi, *gphi;   /* nmax, D x nmax scratch for it                  */
    int nterm;
    jko_term *terms;
    int density;          /* some term needs log-densities                  */
} jko_energy;

/* Reads an R object of class "jko_energy", list(potential (or NULL),
 * terms = list of "jko_term"), for batches of up to nmax points of
 * dimension D. Returns JKO_OK, or JKO_ERR_DATA with the reason in err
 * (JKO_ERRLEN characters) if the potential or a term is not one C can
 * evaluate there. */
int energy_setup(jko_energy *e, SEXP obj, int D, int nmax, char *err);

/* Adds every term's values and (unless NULL) cotangents, as above; returns
 * JKO_OK or a JKO_ERR_* status (non-finite values are still written). */
int energy_eval(jko_energy *e, const term_batch *b, double *val, double *g,
                double *lam);

#endif
