/* sln_lm.c -- character-LM step and integer sampler; mirrors sln/quant_lm.py one to one.
 * The liquid layers are sln.c's sln_layer_step (the shared spec of sln/quant.py). */
#include "sln_lm.h"

#include <string.h>

#define A4(x) (((x) + 3u) & ~(size_t)3u)
#define LOG2E_Q16 94548
#define SEED_ZERO 2463534242u

/* 2^(-i/16) in Q16, i = 0..16 (sln/quant_lm.py EXP2_LUT) */
static const int32_t exp2_lut[17] = {65536, 62757, 60097, 57549, 55109, 52773, 50535, 48393, 46341,
                                     44376, 42495, 40693, 38968, 37316, 35734, 34219, 32768};

static int32_t ld32(const uint8_t *p, uint32_t i)
{
  int32_t v;
  memcpy(&v, p + 4u * i, 4u);
  return v;
}

static int64_t shr_floor(int64_t x, int s) /* floor(x / 2^s), as in sln.c */
{
  if (((int64_t)-1 >> 1) == -1) return x >> s;
  return x >= 0 ? (x >> s) : -(((-x) - 1) >> s) - 1;
}

static int64_t floor_div(int64_t a, int64_t b) /* b > 0 */
{
  int64_t q = a / b;
  if ((a % b) != 0 && a < 0) q -= 1;
  return q;
}

sln_status sln_lm_load(sln_model *m, const void *data, size_t len)
{
  sln_status st = sln_load_kind(m, data, len, SLN_KIND_CHAR_LM);
  if (st != SLN_OK) return st;
  if (m->n_steps != 1u || m->input_size != m->n_classes || m->n_classes > 65535u) {
    memset(m, 0, sizeof *m);
    return SLN_ERR_UNSUPPORTED;
  }
  return SLN_OK;
}

typedef struct lm_layout {
  int16_t *h[SLN_MAX_LAYERS];
  uint16_t *wi[SLN_MAX_LAYERS];
  int16_t *wv[SLN_MAX_LAYERS];
  int32_t *n_win[SLN_MAX_LAYERS];
  int32_t *acc_in, *acc_rec;
} lm_layout;

static size_t lm_layout_of(const sln_model *m, uint8_t *base, lm_layout *w) /* sln.quant_lm.lm_state_bytes */
{
  size_t off = 0, N = m->n_neurons, k = m->k;
  uint32_t l;
  for (l = 0; l < m->n_layers; l++) {
    if (w) w->h[l] = (int16_t *)(void *)(base + off);
    off += A4(2 * N);
    if (w) w->wi[l] = (uint16_t *)(void *)(base + off);
    off += A4(2 * k);
    if (w) w->wv[l] = (int16_t *)(void *)(base + off);
    off += A4(2 * k);
    if (w) w->n_win[l] = (int32_t *)(void *)(base + off);
    off += 4;
  }
  if (w) w->acc_in = (int32_t *)(void *)(base + off);
  off += 8 * N;
  if (w) w->acc_rec = (int32_t *)(void *)(base + off);
  off += 8 * N;
  return off;
}

size_t sln_lm_state_size(const sln_model *m)
{
  return m == NULL ? 0u : lm_layout_of(m, NULL, NULL);
}

static sln_status check(const sln_model *m, void *state, size_t state_len)
{
  if (m == NULL || state == NULL || m->w_out == NULL || m->n_layers < 1u || m->n_layers > SLN_MAX_LAYERS)
    return SLN_ERR_ARG;
  if (((uintptr_t)state & 3u) != 0u) return SLN_ERR_ARG;
  if (state_len < lm_layout_of(m, NULL, NULL)) return SLN_ERR_WORKSPACE;
  return SLN_OK;
}

sln_status sln_lm_reset(const sln_model *m, void *state, size_t state_len)
{
  sln_status st = check(m, state, state_len);
  if (st != SLN_OK) return st;
  memset(state, 0, lm_layout_of(m, NULL, NULL));
  return SLN_OK;
}

sln_status sln_lm_step(const sln_model *m, void *state, size_t state_len, uint32_t token, int32_t *logits)
{
  lm_layout w;
  uint32_t l, c, i, C;
  const uint16_t ev_idx = (uint16_t)token;
  const int16_t ev_val = 1; /* one-hot input: one event of value 1 */
  sln_status st = check(m, state, state_len);
  if (st != SLN_OK) return st;
  if (logits == NULL || token >= m->input_size) return SLN_ERR_ARG;
  lm_layout_of(m, (uint8_t *)state, &w);
  for (l = 0; l < m->n_layers; l++) {
    if (l == 0u)
      sln_layer_step(m, 0, w.h[0], w.wi[0], w.wv[0], w.n_win[0], w.acc_in, w.acc_rec, &ev_idx, &ev_val, 1);
    else
      sln_layer_step(m, l, w.h[l], w.wi[l], w.wv[l], w.n_win[l], w.acc_in, w.acc_rec, w.wi[l - 1], w.wv[l - 1],
                     *w.n_win[l - 1]);
  }
  /* readout from the k winners of the top layer only */
  l = m->n_layers - 1u;
  C = m->n_classes;
  for (c = 0; c < C; c++) {
    int64_t dot = 0, t;
    for (i = 0; i < m->k; i++) dot += (int64_t)m->w_out[(size_t)w.wi[l][i] * C + c] * w.wv[l][i];
    t = shr_floor(dot * ld32(m->out_mult, c) + ((int64_t)1 << (ld32(m->out_shift, c) - 1)), (int)ld32(m->out_shift, c));
    t += ld32(m->out_bias, c);
    logits[c] = (int32_t)(t < INT32_MIN ? INT32_MIN : (t > INT32_MAX ? INT32_MAX : t));
  }
  return SLN_OK;
}

void sln_rng_seed(sln_rng *r, uint32_t seed)
{
  r->s = seed != 0u ? seed : SEED_ZERO;
}

uint32_t sln_rng_next(sln_rng *r)
{
  uint32_t x = r->s;
  x ^= x << 13;
  x ^= x >> 17;
  x ^= x << 5;
  r->s = x;
  return x;
}

static uint32_t exp_weight(int64_t z) /* z Q16 <= 0 -> ~2^16 exp(z / 2^16) */
{
  int64_t u = -shr_floor(z * LOG2E_Q16, 16);
  int64_t n = u >> 16;
  int32_t f = (int32_t)(u & 0xFFFF), i, r, p;
  if (n >= 31) return 0u;
  i = f >> 12;
  r = f & 0xFFF;
  p = exp2_lut[i] - (((exp2_lut[i] - exp2_lut[i + 1]) * r) >> 12);
  return (uint32_t)p >> (uint32_t)n;
}

uint32_t sln_lm_sample(const int32_t *logits, uint32_t n, int32_t temp_q8, uint32_t top_k, sln_rng *r,
                       uint16_t *cand)
{
  uint32_t K = (top_k > 0u && top_k < n) ? top_k : n, cnt = 0, j, i;
  uint64_t sum = 0, run = 0, R;
  int32_t mx;
  if (logits == NULL || n == 0u || r == NULL || cand == NULL) return 0u;
  if (temp_q8 <= 0) { /* greedy: argmax, ties to the lowest id */
    uint32_t best = 0;
    for (j = 1; j < n; j++)
      if (logits[j] > logits[best]) best = j;
    return best;
  }
  /* the K largest, highest first, ties to the lowest id (insertion keeps equal ones in id order) */
  for (j = 0; j < n; j++) {
    uint32_t pos;
    if (cnt < K) {
      pos = cnt++;
    } else if (logits[j] > logits[cand[K - 1u]]) {
      pos = K - 1u;
    } else {
      continue;
    }
    while (pos > 0u && logits[cand[pos - 1u]] < logits[j]) {
      cand[pos] = cand[pos - 1u];
      pos--;
    }
    cand[pos] = (uint16_t)j;
  }
  mx = logits[cand[0]];
  for (i = 0; i < K; i++) sum += exp_weight(floor_div(((int64_t)logits[cand[i]] - mx) * 256, temp_q8));
  R = ((uint64_t)sln_rng_next(r) * sum) >> 32;
  for (i = 0; i < K; i++) {
    run += exp_weight(floor_div(((int64_t)logits[cand[i]] - mx) * 256, temp_q8));
    if (run > R) return cand[i];
  }
  return cand[K - 1u]; /* unreachable: run ends at sum > R */
}
