/* sln_stream_time.c -- batch-1 latency per event of the int8 SLN runtime (runtime/sln.c) on a series.
 *
 * Not part of the runtime: the time-series streams benchmark (sln/bench/ts_streams.py) links it with
 * runtime/sln.c into one shared library and calls sln_stream_time once, so no Python runs inside the
 * timed loop. Per event: sln_step with the event's nonzero int16 input values (idx events; the
 * int8 classifier's streaming step), then the readout accumulator acc += y of the top layer's
 * winners (what the mean readout sums; the readout itself runs once per series and is not timed).
 *
 * data/len: an int8 classifier model file (sln.fmt.to_bytes); x: T * input_size int16 values;
 * repeats: timed passes over the series (each from a zero state), the best CPU time kept.
 * Out: acc (N int32, after one pass), h0 (N int16: layer 0's state after the series), *us_per_event.
 * Status: 0 ok, otherwise the sln_status of the failing call (or 100 out of memory).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sln.h"

#define A4(x) (((x) + 3u) & ~(size_t)3u)

int sln_stream_time(const void *data, size_t len, const int16_t *x, uint32_t T, uint32_t repeats, int32_t *acc,
                    int16_t *h0, double *us_per_event)
{
  sln_model m;
  size_t ss = 0, wi_off, wv_off, nw_off;
  uint8_t *state;
  uint16_t *idx;
  int16_t *val;
  uint32_t r, t, i, N, D, k, top;
  double best = -1.0;
  int st = sln_load(&m, data, len, SLN_KIND_CLASSIFIER);
  if (st != SLN_OK) return st;
  st = sln_state_size(&m, &ss);
  if (st != SLN_OK) return st;
  N = m.n_neurons, D = m.input_size, k = m.k, top = m.n_layers - 1;
  /* the top layer's winner ids / values / count (sln.c state_layout: h, ids, values, counts per layer) */
  wi_off = (size_t)m.n_layers * A4(2u * N) + (size_t)top * A4(2u * k);
  wv_off = (size_t)m.n_layers * (A4(2u * N) + A4(2u * k)) + (size_t)top * A4(2u * k);
  nw_off = (size_t)m.n_layers * (A4(2u * N) + 2u * A4(2u * k)) + (size_t)top * 4u;
  state = (uint8_t *)malloc(ss);
  idx = (uint16_t *)malloc(sizeof(uint16_t) * D);
  val = (int16_t *)malloc(sizeof(int16_t) * D);
  if (state == NULL || idx == NULL || val == NULL) {
    free(state), free(idx), free(val);
    return 100;
  }
  for (r = 0; r < (repeats ? repeats : 1u); r++) {
    clock_t t0;
    double el;
    memset(acc, 0, sizeof(int32_t) * N);
    st = sln_reset(&m, state, ss);
    if (st != SLN_OK) break;
    t0 = clock();
    for (t = 0; t < T && st == SLN_OK; t++) {
      const int16_t *xt = x + (size_t)t * D;
      const uint16_t *wi = (const uint16_t *)(const void *)(state + wi_off);
      const int16_t *wv = (const int16_t *)(const void *)(state + wv_off);
      int32_t nw;
      uint32_t n = 0;
      for (i = 0; i < D; i++)
        if (xt[i] != 0) idx[n] = (uint16_t)i, val[n++] = xt[i];
      st = sln_step(&m, state, ss, val, idx, n, 1.0f, NULL);
      memcpy(&nw, state + nw_off, sizeof nw);
      for (i = 0; i < (uint32_t)nw; i++) acc[wi[i]] += wv[i];
    }
    el = (double)(clock() - t0) / CLOCKS_PER_SEC;
    if (best < 0.0 || el < best) best = el;
  }
  if (st == SLN_OK) memcpy(h0, state, sizeof(int16_t) * N);
  *us_per_event = T ? 1e6 * best / (double)T : 0.0;
  free(state), free(idx), free(val);
  return st;
}
