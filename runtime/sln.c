/* sln.c -- int8 Sparse Liquid Network runtime. The integer operations mirror
 * sln/quant.py:reference_forward one to one; the comments name the spec's steps. */
#include "sln.h"

#include <string.h>

/* ---- small integer helpers (identical semantics to the Python spec) ------------------ */

/* little-endian int32 element i of a tensor (memcpy: any alignment, no aliasing issue;
 * the loader has verified the host is little-endian) */
static int32_t ld32(const uint8_t *p, uint32_t i)
{
  int32_t v;
  memcpy(&v, p + 4u * i, 4u);
  return v;
}

static uint32_t rd_u32(const uint8_t *p) /* header fields: explicit little-endian decode */
{
  return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

/* floor(x / 2^s). C99 leaves >> of a negative value implementation-defined: where it is an
 * arithmetic shift (gcc, clang, armcc; the condition is a compile-time constant) use it,
 * otherwise compute the floor explicitly. */
static int64_t shr_floor(int64_t x, int s)
{
  if (((int64_t)-1 >> 1) == -1) return x >> s;
  return x >= 0 ? (x >> s) : -(((-x) - 1) >> s) - 1;
}

/* rsr: rounding right shift floor((x + 2^(s-1)) / 2^s), s >= 1 */
static int64_t shr_round(int64_t x, int s)
{
  return shr_floor(x + ((int64_t)1 << (s - 1)), s);
}

/* floor division by a positive divisor */
static int64_t floor_div(int64_t a, int64_t b)
{
  int64_t q = a / b;
  if ((a % b) != 0 && a < 0) q -= 1;
  return q;
}

static uint64_t isqrt64(uint64_t x) /* floor(sqrt(x)), bit by bit */
{
  uint64_t r = 0, bit = (uint64_t)1 << 62;
  while (bit > x) bit >>= 2;
  while (bit != 0) {
    if (x >= r + bit) {
      x -= r + bit;
      r = (r >> 1) + bit;
    } else {
      r >>= 1;
    }
    bit >>= 2;
  }
  return r;
}

static int32_t sat(int64_t x, int64_t lo, int64_t hi)
{
  return (int32_t)(x < lo ? lo : (x > hi ? hi : x));
}

/* ---- loader ------------------------------------------------------------------------- */

static int host_is_little_endian(void)
{
  const uint32_t one = 1u;
  uint8_t b[4];
  memcpy(b, &one, 4u);
  return b[0] == 1u;
}

static const uint8_t **layer_slot(sln_layer *L, uint32_t kind)
{
  switch (kind) {
  case SLN_T_IN_MULT: return &L->in_mult;
  case SLN_T_IN_SHIFT: return &L->in_shift;
  case SLN_T_REC_MULT: return &L->rec_mult;
  case SLN_T_REC_SHIFT: return &L->rec_shift;
  case SLN_T_BIAS: return &L->bias;
  case SLN_T_LN_GAMMA: return &L->ln_gamma;
  case SLN_T_LN_BETA: return &L->ln_beta;
  case SLN_T_BOOST: return &L->boost;
  case SLN_T_ALPHA_LUT: return &L->alpha_lut;
  default: return NULL;
  }
}

static int check_range(const uint8_t *p, uint32_t n, int32_t lo, int32_t hi)
{
  uint32_t i;
  for (i = 0; i < n; i++) {
    int32_t v = ld32(p, i);
    if (v < lo || v > hi) return 0;
  }
  return 1;
}

static int check_requant(const uint8_t *mult, const uint8_t *shift, uint32_t n)
{
  return check_range(mult, n, 0, (1 << SLN_MULT_BITS) - 1) && check_range(shift, n, 1, 62);
}

sln_status sln_load(sln_model *m, const void *data, size_t len)
{
  return sln_load_kind(m, data, len, SLN_KIND_CLASSIFIER);
}

sln_status sln_load_kind(sln_model *m, const void *data, size_t len, uint32_t model_kind)
{
  const uint8_t *b = (const uint8_t *)data;
  uint32_t file_size, n_tensors, table_off, i, l;
  uint32_t seen[SLN_MAX_LAYERS + 1];
  const uint8_t *params[SLN_MAX_LAYERS];

  if (m == NULL || data == NULL) return SLN_ERR_ARG;
  memset(m, 0, sizeof *m);
  if (len < SLN_HEADER_SIZE) return SLN_ERR_TRUNCATED;
  if (rd_u32(b + SLN_HDR_MAGIC) != SLN_MAGIC) return SLN_ERR_MAGIC;
  if (rd_u32(b + SLN_HDR_VERSION) != SLN_VERSION) return SLN_ERR_VERSION;
  if (rd_u32(b + SLN_HDR_HEADER_SIZE) != SLN_HEADER_SIZE) return SLN_ERR_HEADER;
  if (rd_u32(b + SLN_HDR_MODEL_KIND) != model_kind) return SLN_ERR_UNSUPPORTED; /* e.g. an LM given to sln_load */
  file_size = rd_u32(b + SLN_HDR_FILE_SIZE);
  if (file_size < SLN_HEADER_SIZE) return SLN_ERR_HEADER;
  if ((uint64_t)file_size > (uint64_t)len) return SLN_ERR_TRUNCATED;

  m->input_size = rd_u32(b + SLN_HDR_INPUT_SIZE);
  m->n_classes = rd_u32(b + SLN_HDR_N_CLASSES);
  m->n_neurons = rd_u32(b + SLN_HDR_N_NEURONS);
  m->n_layers = rd_u32(b + SLN_HDR_N_LAYERS);
  m->k = rd_u32(b + SLN_HDR_K);
  m->n_steps = rd_u32(b + SLN_HDR_N_STEPS);
  if (m->input_size < 1u || m->input_size > SLN_MAX_INPUT || m->n_classes < 1u || m->n_classes > SLN_MAX_CLASSES ||
      m->n_neurons < 1u || m->n_neurons > SLN_MAX_NEURONS || m->n_layers < 1u || m->n_layers > SLN_MAX_LAYERS ||
      m->k < 1u || m->k > SLN_MAX_K || m->k > m->n_neurons || m->n_steps < 1u || m->n_steps > SLN_MAX_STEPS ||
      !host_is_little_endian())
    return SLN_ERR_UNSUPPORTED;

  n_tensors = rd_u32(b + SLN_HDR_N_TENSORS);
  table_off = rd_u32(b + SLN_HDR_TABLE_OFFSET);
  if (n_tensors > SLN_MAX_TENSORS || table_off < SLN_HEADER_SIZE || (table_off & 3u) != 0u ||
      (uint64_t)table_off + (uint64_t)n_tensors * SLN_TABLE_ENTRY_SIZE > (uint64_t)file_size)
    return SLN_ERR_HEADER;

  memset(seen, 0, sizeof seen);
  memset(params, 0, sizeof params);
  for (i = 0; i < n_tensors; i++) {
    const uint8_t *e = b + table_off + (size_t)i * SLN_TABLE_ENTRY_SIZE;
    uint32_t id = rd_u32(e), dtype = rd_u32(e + 4), off = rd_u32(e + 8), count = rd_u32(e + 12);
    uint32_t layer = id >> 8, kind = id & 255u, want_dtype = 0u, elem;
    uint32_t want;
    const uint8_t *p;
    int readout;
    if (layer > m->n_layers || kind < 1u || kind > 31u) return SLN_ERR_TENSOR_MISSING;
    readout = layer == m->n_layers;
    want = sln_expected_count(readout ? 1u : 0u, kind, layer == 0u ? m->input_size : m->n_neurons,
                              m->n_neurons, m->n_classes, &want_dtype);
    if (want_dtype == 0u) return SLN_ERR_TENSOR_MISSING;        /* unknown kind */
    if (seen[layer] & (1u << kind)) return SLN_ERR_TENSOR_MISSING; /* duplicate */
    seen[layer] |= 1u << kind;
    if (dtype != want_dtype || count != want) return SLN_ERR_TENSOR_TYPE;
    elem = dtype == SLN_DTYPE_INT8 ? 1u : 4u;
    /* 64-bit arithmetic: offset + size can never wrap */
    if ((off & 3u) != 0u || off < SLN_HEADER_SIZE ||
        (uint64_t)off + (uint64_t)count * elem > (uint64_t)file_size)
      return SLN_ERR_TENSOR_BOUNDS;
    p = b + off;
    if (readout) {
      switch (kind) {
      case SLN_T_W_OUT: m->w_out = (const int8_t *)p; break;
      case SLN_T_OUT_MULT: m->out_mult = p; break;
      case SLN_T_OUT_SHIFT: m->out_shift = p; break;
      default: m->out_bias = p; break;
      }
    } else if (kind == SLN_T_W_IN) {
      m->layers[layer].w_in = (const int8_t *)p;
    } else if (kind == SLN_T_W_REC) {
      m->layers[layer].w_rec = (const int8_t *)p;
    } else if (kind == SLN_T_PARAMS) {
      params[layer] = p;
    } else {
      *layer_slot(&m->layers[layer], kind) = p;
    }
  }
  /* every tensor present exactly once */
  for (l = 0; l <= m->n_layers; l++) {
    uint32_t n = l < m->n_layers ? SLN_N_LAYER_TENSORS : SLN_N_READOUT_TENSORS;
    if (seen[l] != (((1u << n) - 1u) << 1)) return SLN_ERR_TENSOR_MISSING;
  }
  /* value ranges that the arithmetic relies on */
  for (l = 0; l < m->n_layers; l++) {
    sln_layer *L = &m->layers[l];
    uint32_t N = m->n_neurons;
    L->d_in = l == 0u ? m->input_size : N;
    L->a_frac = ld32(params[l], 0);
    L->h_frac = ld32(params[l], 1);
    L->eps_q = ld32(params[l], 2);
    if (L->a_frac < 3 || L->a_frac > 20 || L->h_frac < 0 || L->h_frac > 15 || L->eps_q < 1 ||
        !check_requant(L->in_mult, L->in_shift, 2u * N) || !check_requant(L->rec_mult, L->rec_shift, 2u * N) ||
        !check_range(L->boost, N, 0, SLN_BOOST_MAX) || !check_range(L->alpha_lut, SLN_LUT_SIZE + 1u, 0, SLN_ALPHA_ONE - 1))
      return SLN_ERR_VALUE;
  }
  if (!check_requant(m->out_mult, m->out_shift, m->n_classes)) return SLN_ERR_VALUE;
  return SLN_OK;
}

/* ---- workspace layout (mirror of sln.export.workspace_bytes) ------------------------ */

#define A4(x) (((x) + 3u) & ~(size_t)3u)

typedef struct ws_layout {
  int16_t *h[SLN_MAX_LAYERS];        /* (N) liquid state, Q h_frac */
  uint16_t *win_idx[SLN_MAX_LAYERS]; /* (k) winners of the last step */
  int16_t *win_val[SLN_MAX_LAYERS];  /* (k) their outputs y */
  int32_t *n_win[SLN_MAX_LAYERS];
  uint16_t *ev_idx;                  /* (input_size) nonzero pixels of this step */
  int16_t *ev_val;
  int32_t *acc_in, *acc_rec;         /* (2N) int32 accumulators */
  int32_t *racc;                     /* (N) readout accumulator: sum over steps of y */
} ws_layout;

static size_t layout(const sln_model *m, uint8_t *base, ws_layout *w)
{
  size_t off = 0, N = m->n_neurons, k = m->k;
  uint32_t l;
  for (l = 0; l < m->n_layers; l++) {
    if (w) w->h[l] = (int16_t *)(void *)(base + off);
    off += A4(2 * N);
    if (w) w->win_idx[l] = (uint16_t *)(void *)(base + off);
    off += A4(2 * k);
    if (w) w->win_val[l] = (int16_t *)(void *)(base + off);
    off += A4(2 * k);
    if (w) w->n_win[l] = (int32_t *)(void *)(base + off);
    off += 4;
  }
  if (w) w->ev_idx = (uint16_t *)(void *)(base + off);
  off += A4(2 * (size_t)m->input_size);
  if (w) w->ev_val = (int16_t *)(void *)(base + off);
  off += A4(2 * (size_t)m->input_size);
  if (w) w->acc_in = (int32_t *)(void *)(base + off);
  off += 8 * N;
  if (w) w->acc_rec = (int32_t *)(void *)(base + off);
  off += 8 * N;
  if (w) w->racc = (int32_t *)(void *)(base + off);
  off += 4 * N;
  return off;
}

size_t sln_workspace_size(const sln_model *m)
{
  return m == NULL ? 0u : layout(m, NULL, NULL);
}

/* ---- inference ---------------------------------------------------------------------- */

/* Event-driven accumulation: acc[0..2N) += sum_e W[idx_e, :] * val_e, reading only the
 * weight columns (contiguous rows of the input-major matrix) of the events. */
static void accumulate(int32_t *acc, const int8_t *w, uint32_t n2, const uint16_t *idx, const int16_t *val,
                       int32_t n_ev)
{
  int32_t e;
  uint32_t i;
  memset(acc, 0, (size_t)n2 * sizeof *acc);
  for (e = 0; e < n_ev; e++) {
    const int8_t *col = w + (size_t)idx[e] * n2;
    int32_t x = val[e];
    if (x == 0) continue;
    for (i = 0; i + 4u <= n2; i += 4u) { /* unrolled: the hot loop of the runtime */
      acc[i] += (int32_t)col[i] * x;
      acc[i + 1u] += (int32_t)col[i + 1u] * x;
      acc[i + 2u] += (int32_t)col[i + 2u] * x;
      acc[i + 3u] += (int32_t)col[i + 3u] * x;
    }
    for (; i < n2; i++) acc[i] += (int32_t)col[i] * x;
  }
}

/* gate: alpha(v) in Q15 by linear interpolation in the table, v in Q F */
static int32_t gate(const uint8_t *lut, int32_t v, int32_t F)
{
  int s = (int)F - SLN_LUT_STEP_LOG2;
  int32_t lo = -(int32_t)((int32_t)-SLN_LUT_LO << F), off, i, fr, l0, l1;
  if (v < lo) v = lo;
  if (v > -lo - 1) v = -lo - 1;
  off = v - lo;
  i = off >> s;
  fr = off & ((1 << s) - 1);
  l0 = ld32(lut, (uint32_t)i);
  l1 = ld32(lut, (uint32_t)i + 1u);
  return l0 + (int32_t)shr_floor((int64_t)(l1 - l0) * fr, s);
}

void sln_layer_step(const sln_model *m, uint32_t l, int16_t *h, uint16_t *wi, int16_t *wv, int32_t *n_win,
                    int32_t *acc_in, int32_t *acc_rec, const uint16_t *ev_idx, const int16_t *ev_val, int32_t n_ev)
{
  const sln_layer *L = &m->layers[l];
  const uint32_t N = m->n_neurons, n2 = 2u * N, k = m->k;
  int32_t *a = acc_in, *best = acc_rec;
  int64_t sum = 0, mean, inv;
  uint64_t sumsq = 0, stdv;
  uint32_t i, n;
  int sh_c = SLN_NORM_FRAC + SLN_GAMMA_FRAC - (int)L->h_frac;

  /* a = rq(W_in x) + rq(W_rec y_prev) + b, saturated (Q F) */
  accumulate(acc_in, L->w_in, n2, ev_idx, ev_val, n_ev);
  accumulate(acc_rec, L->w_rec, n2, wi, wv, *n_win);
  for (i = 0; i < n2; i++) {
    /* rq(0) = 0 exactly, so zero accumulators skip their requantisation */
    int64_t t = ld32(L->bias, i);
    if (acc_in[i] != 0)
      t += shr_round((int64_t)acc_in[i] * ld32(L->in_mult, i), (int)ld32(L->in_shift, i));
    if (acc_rec[i] != 0)
      t += shr_round((int64_t)acc_rec[i] * ld32(L->rec_mult, i), (int)ld32(L->rec_shift, i));
    a[i] = sat(t, -SLN_A_SAT, SLN_A_SAT);
  }
  /* LayerNorm statistics over u = a[0..N) */
  for (i = 0; i < N; i++) sum += a[i];
  mean = floor_div(2 * sum + (int64_t)N, 2 * (int64_t)N);
  for (i = 0; i < N; i++) {
    int64_t d = a[i] - mean;
    sumsq += (uint64_t)(d * d);
  }
  stdv = isqrt64(sumsq / N + (uint64_t)L->eps_q);
  if (stdv == 0u) stdv = 1u;
  inv = (int64_t)(((uint64_t)1 << SLN_INV_BITS) / stdv);
  /* candidate c, gate alpha, state update h (Q H) */
  for (i = 0; i < N; i++) {
    int64_t nq = shr_round((a[i] - mean) * inv, SLN_INV_BITS - SLN_NORM_FRAC);
    int32_t c = sat(shr_round((int64_t)ld32(L->ln_gamma, i) * nq + ld32(L->ln_beta, i), sh_c), 0, SLN_H_MAX);
    int32_t alpha = gate(L->alpha_lut, a[N + i], L->a_frac);
    h[i] = (int16_t)((alpha * (int32_t)h[i] + (SLN_ALPHA_ONE - alpha) * c + (SLN_ALPHA_ONE >> 1)) >> 15);
  }
  /* k-WTA on boost * h: insertion into a sorted list; strict comparisons keep the lower
   * index first on ties, exactly like the stable descending sort of the spec */
  n = 0;
  for (i = 0; i < N; i++) {
    int32_t s = ld32(L->boost, i) * (int32_t)h[i];
    uint32_t pos;
    if (n < k) {
      pos = n++;
    } else if (s > best[k - 1]) {
      pos = k - 1;
    } else {
      continue;
    }
    while (pos > 0 && best[pos - 1] < s) {
      best[pos] = best[pos - 1];
      wi[pos] = wi[pos - 1];
      pos--;
    }
    best[pos] = s;
    wi[pos] = (uint16_t)i;
  }
  for (i = 0; i < k; i++) wv[i] = h[wi[i]];   /* y = h on the winners */
  *n_win = (int32_t)k;
}

static void cell_step(const sln_model *m, ws_layout *w, uint32_t l, const uint16_t *ev_idx, const int16_t *ev_val,
                      int32_t n_ev)
{
  sln_layer_step(m, l, w->h[l], w->win_idx[l], w->win_val[l], w->n_win[l], w->acc_in, w->acc_rec, ev_idx, ev_val,
                 n_ev);
}

sln_status sln_run(const sln_model *m, const uint8_t *input, size_t input_len, void *ws, size_t ws_len,
                   int32_t *logits, uint16_t *winners)
{
  ws_layout w;
  uint32_t t, l, i, c, D, N, nf;
  if (m == NULL || input == NULL || ws == NULL || logits == NULL) return SLN_ERR_ARG;
  if (m->n_layers < 1u || m->n_layers > SLN_MAX_LAYERS || m->w_out == NULL) return SLN_ERR_ARG;
  if (input_len != (size_t)m->n_steps * m->input_size) return SLN_ERR_ARG;
  if (((uintptr_t)ws & 3u) != 0u) return SLN_ERR_ARG; /* int32/int16 views of it */
  if (ws_len < layout(m, NULL, NULL)) return SLN_ERR_WORKSPACE;
  layout(m, (uint8_t *)ws, &w);
  D = m->input_size;
  N = m->n_neurons;
  for (l = 0; l < m->n_layers; l++) {
    memset(w.h[l], 0, N * sizeof(int16_t));
    *w.n_win[l] = 0;
  }
  memset(w.racc, 0, N * sizeof(int32_t));
  for (t = 0; t < m->n_steps; t++) {
    /* input events of this step: the nonzero pixels */
    int32_t ne = 0;
    const uint8_t *px = input + (size_t)t * D;
    for (i = 0; i < D; i++) {
      if (px[i] != 0u) {
        w.ev_idx[ne] = (uint16_t)i;
        w.ev_val[ne] = (int16_t)px[i];
        ne++;
      }
    }
    for (l = 0; l < m->n_layers; l++) {
      if (l == 0u)
        cell_step(m, &w, 0, w.ev_idx, w.ev_val, ne);
      else /* layer l reads layer l-1's winners of this step */
        cell_step(m, &w, l, w.win_idx[l - 1], w.win_val[l - 1], *w.n_win[l - 1]);
      if (winners != NULL)
        memcpy(winners + ((size_t)l * m->n_steps + t) * m->k, w.win_idx[l], m->k * sizeof(uint16_t));
    }
    l = m->n_layers - 1u;
    for (i = 0; i < m->k; i++) w.racc[w.win_idx[l][i]] += w.win_val[l][i];
  }
  /* readout over the neurons that fired at least once (their indices into acc_in) */
  nf = 0;
  for (i = 0; i < N; i++)
    if (w.racc[i] != 0) w.acc_in[nf++] = (int32_t)i;
  for (c = 0; c < m->n_classes; c++) {
    int64_t dot = 0;
    for (i = 0; i < nf; i++) {
      uint32_t j = (uint32_t)w.acc_in[i];
      dot += (int64_t)m->w_out[(size_t)j * m->n_classes + c] * w.racc[j];
    }
    logits[c] = sat(shr_round(dot * ld32(m->out_mult, c), (int)ld32(m->out_shift, c)) + ld32(m->out_bias, c),
                    INT32_MIN, INT32_MAX);
  }
  return SLN_OK;
}

uint32_t sln_argmax(const int32_t *logits, uint32_t n)
{
  uint32_t i, best = 0;
  if (logits == NULL) return 0;
  for (i = 1; i < n; i++)
    if (logits[i] > logits[best]) best = i;
  return best;
}

const char *sln_status_name(int status)
{
  static const char *const names[] = SLN_STATUS_NAMES;
  if (status < 0 || status >= SLN_N_STATUS) return "SLN_ERR_?";
  return names[status];
}
