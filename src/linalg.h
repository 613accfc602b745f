/* Small dense Cholesky routines for the per-sample D x D work (linalg.c):
 * column-major, lower factors, no BLAS (the sizes are small and the calls
 * run inside the threads' parts of a batch). */
#ifndef JKOFLOW_LINALG_H
#define JKOFLOW_LINALG_H

/* In-place lower Cholesky factor of the D x D matrix A, the upper triangle
 * left alone, and (unless NULL) *logdet = log det A. Returns JKO_OK or
 * JKO_ERR_NOTPD. */
int chol_logdet(double *A, int D, double *logdet);

/* A^{-1} (D x D, full) from the factor Lc; work holds D * D doubles. */
void chol_inverse(const double *Lc, int D, double *Ainv, double *work);

/* Solves L L' x = b in place. */
void chol_solve(const double *Lc, int D, double *b);

#endif
