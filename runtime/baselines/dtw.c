/* dtw.c -- full-window dynamic time warping for the 1-NN DTW baseline (sln/ts_baselines.py).
 *
 * Not part of the SLN runtime: a baseline that numpy computes too slowly (n_test * n_train * T^2
 * cell updates: 5e11 for PLAID). Dependent multivariate DTW: the cost of a cell is the squared
 * Euclidean distance between the channel vectors of the two steps; the distance is the sum of the
 * costs along the cheapest monotone path from (0, 0) to (la-1, lb-1).
 *
 * Series are stored step-major: x[t * d + c]. Caller-owned buffers, status return, no VLAs:
 * `row` holds 2 * (lb_max + 1) doubles.
 */
#include <math.h>
#include <stddef.h>
#include <stdint.h>

int sln_dtw(const double *a, uint32_t la, const double *b, uint32_t lb, uint32_t d, double *row, double *out)
{
  double *prev = row, *cur = row + lb + 1, *tmp;
  uint32_t i, j, c;
  if (a == NULL || b == NULL || row == NULL || out == NULL || la == 0 || lb == 0 || d == 0) return 1;
  for (j = 0; j <= lb; j++) prev[j] = INFINITY;
  prev[0] = 0.0;
  for (i = 1; i <= la; i++) {
    const double *ai = a + (size_t)(i - 1) * d;
    cur[0] = INFINITY;
    for (j = 1; j <= lb; j++) {
      const double *bj = b + (size_t)(j - 1) * d;
      double cost = 0.0, m = prev[j - 1];
      for (c = 0; c < d; c++) {
        double t = ai[c] - bj[c];
        cost += t * t;
      }
      if (prev[j] < m) m = prev[j];
      if (cur[j - 1] < m) m = cur[j - 1];
      cur[j] = cost + m;
    }
    tmp = prev;
    prev = cur;
    cur = tmp;
  }
  *out = prev[lb];
  return 0;
}

/* all pairs: queries q (nq series), references r (nr); offsets/lengths per series into the step-major
 * arrays; out (nq * nr) row-major. row: 2 * (max reference length + 1) doubles. */
int sln_dtw_all(const double *q, const uint64_t *qoff, const uint32_t *qlen, uint32_t nq, const double *r,
                const uint64_t *roff, const uint32_t *rlen, uint32_t nr, uint32_t d, double *row, double *out)
{
  uint32_t i, j;
  for (i = 0; i < nq; i++)
    for (j = 0; j < nr; j++) {
      int st = sln_dtw(q + qoff[i] * d, qlen[i], r + roff[j] * d, rlen[j], d, row, out + (size_t)i * nr + j);
      if (st != 0) return st;
    }
  return 0;
}
