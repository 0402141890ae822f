/* sln.c -- the Sparse Liquid Network runtime: loader, step, readouts, sampler (see sln.h).
 *
 * int8 models: the integer operations mirror sln/intspec.py (q_step, readout, Sampler) one to
 * one; the comments name the spec's steps. float32 models (-DSLN_FLOAT): the equations of
 * sln/cell.py in float, event-driven, with the host engine's operation counters
 * (-DSLN_COUNTERS). Both numerics share the loader, the state layout, the event handling and
 * the model-kind readouts; only the per-layer arithmetic is switched on m->numeric.
 *
 * Why one file of ~1,070 lines (above the project's ~500): it is the whole runtime, as llama2.c
 * keeps its forward in one C file, so the firmware, the host CLIs and the host engine compile the
 * same unit and nothing is mirrored between files. Sections: integer helpers, loader (Prepare),
 * state layout, int8 layer step, float layer step, sln_step (Eval), readouts, sampler.
 * W_in / W_rec may be stored dense or column-sparse (format version 2): the loader validates
 * every sparse index once, the step then walks only the stored entries of the active columns. */
#include "sln.h"

#include <string.h>

#ifdef SLN_FLOAT
#include <math.h>
#endif

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

/* ---- loader ("Prepare": everything the step relies on is checked here) ---------------- */

static int host_is_little_endian(void)
{
  const uint32_t one = 1u;
  uint8_t b[4];
  memcpy(b, &one, 4u);
  return b[0] == 1u;
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

static sln_status check_values_q(sln_model *m)
{
  uint32_t l, N = m->n_neurons;
  for (l = 0; l < m->n_layers; l++) {
    sln_layer *L = &m->layers[l];
    const uint8_t *const *t = L->t;
    L->a_frac = ld32(t[SLN_T_PARAMS], 0);
    L->h_frac = ld32(t[SLN_T_PARAMS], 1);
    L->eps_q = ld32(t[SLN_T_PARAMS], 2);
    if (L->a_frac < 3 || L->a_frac > 20 || L->h_frac < 0 || L->h_frac > 15 || L->eps_q < 1 ||
        !check_requant(t[SLN_T_IN_MULT], t[SLN_T_IN_SHIFT], 2u * N) ||
        !check_requant(t[SLN_T_REC_MULT], t[SLN_T_REC_SHIFT], 2u * N) ||
        !check_range(t[SLN_T_BOOST], N, 0, SLN_BOOST_MAX) ||
        !check_range(t[SLN_T_ALPHA_LUT], SLN_LUT_SIZE + 1u, 0, SLN_ALPHA_ONE - 1))
      return SLN_ERR_VALUE;
  }
  if (!check_requant(m->ro[SLN_T_OUT_MULT], m->ro[SLN_T_OUT_SHIFT], m->n_classes)) return SLN_ERR_VALUE;
  if (m->model_kind == SLN_KIND_EVENT_MODEL) { /* bucket tables, ascending edges >= 1, residual requant, Q formats */
    uint32_t b;
    for (l = 0; l < m->n_layers; l++)
      if (!check_range(m->layers[l].t[SLN_T_GATE_LUTS], SLN_EVENT_BUCKETS * (SLN_LUT_SIZE + 1u), 0, SLN_ALPHA_ONE - 1))
        return SLN_ERR_VALUE;
    for (b = 0; b + 1u < SLN_EVENT_BUCKETS; b++)
      if (b == 0u ? ld32(m->ro[SLN_T_DT_EDGES], 0) < 1
                  : ld32(m->ro[SLN_T_DT_EDGES], b) <= ld32(m->ro[SLN_T_DT_EDGES], b - 1u)) /* no +1: no overflow */
        return SLN_ERR_VALUE;
    if (!check_requant(m->ro[SLN_T_RESID_MULT], m->ro[SLN_T_RESID_SHIFT], m->n_classes) ||
        !check_range(m->ro[SLN_T_EVENT_PARAMS], 2u, 0, 16) || !check_range(m->ro[SLN_T_EVENT_PARAMS] + 8, 2u, 0, 0))
      return SLN_ERR_VALUE;
  }
  return SLN_OK;
}

#ifdef SLN_FLOAT
static sln_status check_values_f(const sln_model *m)
{
  uint32_t l;
  for (l = 0; l < m->n_layers; l++) {
    const float *p = (const float *)(const void *)m->layers[l].t[SLN_T_PARAMS];
    /* lambda_min >= 0, ln_eps > 0 (both finite), has_boost 0 or 1 */
    if (!(p[0] >= 0.0f && p[0] < 1e30f) || !(p[1] > 0.0f && p[1] < 1e30f) || !(p[2] == 0.0f || p[2] == 1.0f))
      return SLN_ERR_VALUE;
  }
  return SLN_OK;
}
#endif

/* header config against the limits of the numeric and model kind */
static int config_ok(const sln_model *m)
{
  if (m->input_size < 1u || m->input_size > SLN_MAX_INPUT || m->n_classes < 1u || m->n_classes > SLN_MAX_CLASSES ||
      m->n_neurons < 1u || m->n_neurons > SLN_MAX_NEURONS || m->n_layers < 1u || m->n_layers > SLN_MAX_LAYERS ||
      m->k < 1u || m->k > m->n_neurons || !host_is_little_endian())
    return 0;
  if (m->numeric == SLN_NUMERIC_INT8) { /* int32 accumulators: the spec's limits */
    if (m->k > SLN_MAX_K || m->n_steps < 1u || m->n_steps > SLN_MAX_STEPS) return 0;
  } else if (m->numeric == SLN_NUMERIC_FLOAT32) {
#ifdef SLN_FLOAT
    if (m->n_steps != 0u || m->model_kind != SLN_KIND_CLASSIFIER) return 0;
#else
    return 0; /* this build has no float code */
#endif
  } else {
    return 0;
  }
  if (m->model_kind == SLN_KIND_CHAR_LM && (m->n_steps != 1u || m->input_size != m->n_classes)) return 0;
  if (m->model_kind == SLN_KIND_TOKEN_CLASSIFIER && m->numeric != SLN_NUMERIC_INT8) return 0;
  if (m->model_kind == SLN_KIND_EVENT_MODEL && (m->numeric != SLN_NUMERIC_INT8 || m->n_steps != 1u ||
                                                m->input_size > SLN_EVENT_MAX_INPUT || m->n_classes != m->input_size))
    return 0; /* event model: int8 reconstruction of its own <= 128 features, one step at a time */
  return 1;
}

/* Column-sparse matrix of d columns x r rows (intspec.sparse_encode): ptr[0] = 0, nondecreasing,
 * ptr[d] = n entries; within a column every row step after the first >= 1 and every row < r.
 * Once checked here, the step's column walks need no bounds check. */
static int check_sparse(const uint8_t *ptr, const uint8_t *delta, uint32_t n, uint32_t d, uint32_t r)
{
  uint32_t j, e = 0;
  if (ld32(ptr, 0) != 0) return 0;
  for (j = 0; j < d; j++) {
    const int32_t end = ld32(ptr, j + 1u);
    uint32_t row = 0, first = e;
    if (end < 0 || (uint32_t)end < e || (uint32_t)end > n) return 0;
    for (; e < (uint32_t)end; e++) {
      if (delta[e] == 0u && e != first) return 0;
      row += delta[e];
      if (row >= r) return 0; /* row < r <= 8192 before the add: no overflow */
    }
  }
  return e == n;
}

/* every tensor of the numeric present exactly once, each matrix dense or column-sparse; the sparse
 * entry counts (delta, val) equal to the last column pointer and every index inside its matrix */
static sln_status check_kinds(sln_model *m, const uint32_t *seen, uint32_t (*nnz)[2][2])
{
  static const uint32_t dense_kind[2] = {SLN_T_W_IN, SLN_T_W_REC};
  static const uint32_t sparse_mask[2] = {SLN_KINDS_W_IN_SPARSE, SLN_KINDS_W_REC_SPARSE};
  static const uint32_t ptr_kind[2] = {SLN_T_W_IN_PTR, SLN_T_W_REC_PTR};
  uint32_t l, x;
  for (l = 0; l <= m->n_layers; l++) {
    uint32_t want = m->numeric == SLN_NUMERIC_INT8
                        ? (l < m->n_layers ? SLN_KINDS_LAYER_INT8 : SLN_KINDS_READOUT_INT8)
                        : (l < m->n_layers ? SLN_KINDS_LAYER_FLOAT32 : SLN_KINDS_READOUT_FLOAT32);
    if (l < m->n_layers)
      for (x = 0; x < 2u; x++)
        if (seen[l] & sparse_mask[x]) want = (want & ~(1u << dense_kind[x])) | sparse_mask[x];
    if (m->model_kind == SLN_KIND_EVENT_MODEL) want |= l < m->n_layers ? SLN_KINDS_LAYER_EVENTS : SLN_KINDS_READOUT_EVENTS;
    if (seen[l] != want) return SLN_ERR_TENSOR_MISSING;
  }
  for (l = 0; l < m->n_layers; l++) {
    const sln_layer *L = &m->layers[l];
    for (x = 0; x < 2u; x++) {
      const uint8_t *ptr = L->t[ptr_kind[x]];
      uint32_t d = x == 0u ? L->d_in : m->n_neurons;
      if (ptr == NULL) continue;
      if (nnz[l][x][0] != nnz[l][x][1] || (uint32_t)ld32(ptr, d) != nnz[l][x][0]) return SLN_ERR_TENSOR_TYPE;
      if (!check_sparse(ptr, L->t[ptr_kind[x] + 1u], nnz[l][x][0], d, 2u * m->n_neurons)) return SLN_ERR_VALUE;
    }
  }
  return SLN_OK;
}

sln_status sln_load(sln_model *m, const void *data, size_t len, uint32_t model_kind)
{
  const uint8_t *b = (const uint8_t *)data;
  uint32_t file_size, n_tensors, table_off, i, l, version;
  uint32_t seen[SLN_MAX_LAYERS + 1];
  uint32_t nnz[SLN_MAX_LAYERS][2][2]; /* [layer][w_in, w_rec][delta, val] element counts */
  sln_status st;

  if (m == NULL || data == NULL) return SLN_ERR_ARG;
  memset(m, 0, sizeof *m);
  if (len < SLN_HEADER_SIZE) return SLN_ERR_TRUNCATED;
  if (rd_u32(b + SLN_HDR_MAGIC) != SLN_MAGIC) return SLN_ERR_MAGIC;
  version = rd_u32(b + SLN_HDR_VERSION);
  if (version < SLN_VERSION_MIN || version > SLN_VERSION) return SLN_ERR_VERSION;
  if (rd_u32(b + SLN_HDR_HEADER_SIZE) != SLN_HEADER_SIZE) return SLN_ERR_HEADER;
  m->model_kind = rd_u32(b + SLN_HDR_MODEL_KIND);
  if (m->model_kind != model_kind) return SLN_ERR_UNSUPPORTED; /* e.g. an LM given to a classifier */
  file_size = rd_u32(b + SLN_HDR_FILE_SIZE);
  if (file_size < SLN_HEADER_SIZE) return SLN_ERR_HEADER;
  if ((uint64_t)file_size > (uint64_t)len) return SLN_ERR_TRUNCATED;

  m->numeric = rd_u32(b + SLN_HDR_NUMERIC);
  m->input_size = rd_u32(b + SLN_HDR_INPUT_SIZE);
  m->n_classes = rd_u32(b + SLN_HDR_N_CLASSES);
  m->n_neurons = rd_u32(b + SLN_HDR_N_NEURONS);
  m->n_layers = rd_u32(b + SLN_HDR_N_LAYERS);
  m->k = rd_u32(b + SLN_HDR_K);
  m->n_steps = rd_u32(b + SLN_HDR_N_STEPS);
  if (!config_ok(m)) return SLN_ERR_UNSUPPORTED;
  if (m->numeric == SLN_NUMERIC_FLOAT32 && ((uintptr_t)b & 3u) != 0u) return SLN_ERR_ARG; /* float views */

  n_tensors = rd_u32(b + SLN_HDR_N_TENSORS);
  table_off = rd_u32(b + SLN_HDR_TABLE_OFFSET);
  if (n_tensors > SLN_MAX_TENSORS || table_off < SLN_HEADER_SIZE || (table_off & 3u) != 0u ||
      (uint64_t)table_off + (uint64_t)n_tensors * SLN_TABLE_ENTRY_SIZE > (uint64_t)file_size)
    return SLN_ERR_HEADER;

  memset(seen, 0, sizeof seen);
  for (i = 0; i < n_tensors; i++) {
    const uint8_t *e = b + table_off + (size_t)i * SLN_TABLE_ENTRY_SIZE;
    uint32_t id = rd_u32(e), dtype = rd_u32(e + 4), off = rd_u32(e + 8), count = rd_u32(e + 12);
    uint32_t layer = id >> 8, kind = id & 255u, want_dtype = 0u, elem, want;
    int readout;
    if (layer > m->n_layers || kind < 1u || kind > 31u) return SLN_ERR_TENSOR_MISSING;
    readout = layer == m->n_layers;
    want = sln_expected_count(m->numeric, readout ? 1u : 0u, kind, layer == 0u ? m->input_size : m->n_neurons,
                              m->n_neurons, m->n_classes, &want_dtype);
    if (want_dtype == 0u) return SLN_ERR_TENSOR_MISSING;        /* unknown kind for this numeric */
    if (!readout && version < SLN_VERSION_SPARSE &&
        ((SLN_KINDS_W_IN_SPARSE | SLN_KINDS_W_REC_SPARSE) & (1u << kind)) != 0u)
      return SLN_ERR_TENSOR_MISSING; /* unknown kind in a version-1 file */
    if (seen[layer] & (1u << kind)) return SLN_ERR_TENSOR_MISSING; /* duplicate */
    seen[layer] |= 1u << kind;
    if (dtype != want_dtype || (want != SLN_COUNT_FROM_PTR && count != want)) return SLN_ERR_TENSOR_TYPE;
    if (want == SLN_COUNT_FROM_PTR) /* delta / val of w_in (14, 15) or w_rec (17, 18): checked below */
      nnz[layer][kind >= SLN_T_W_REC_PTR ? 1 : 0][kind == SLN_T_W_IN_VAL || kind == SLN_T_W_REC_VAL ? 1 : 0] = count;
    elem = dtype == SLN_DTYPE_INT8 || dtype == SLN_DTYPE_UINT8 ? 1u : 4u;
    /* 64-bit arithmetic: offset + size can never wrap */
    if ((off & 3u) != 0u || off < SLN_HEADER_SIZE || (uint64_t)off + (uint64_t)count * elem > (uint64_t)file_size)
      return SLN_ERR_TENSOR_BOUNDS;
    if (readout)
      m->ro[kind] = b + off;
    else
      m->layers[layer].t[kind] = b + off;
  }
  for (l = 0; l < m->n_layers; l++) m->layers[l].d_in = l == 0u ? m->input_size : m->n_neurons;
  if ((st = check_kinds(m, seen, nnz)) != SLN_OK) return st;
  /* value ranges that the arithmetic relies on */
#ifdef SLN_FLOAT
  if (m->numeric == SLN_NUMERIC_FLOAT32) return check_values_f(m);
#endif
  return check_values_q(m);
}

/* ---- state layout (mirror of sln.fmt.state_bytes / workspace_bytes) ------------------- */

#define A4(x) (((x) + 3u) & ~(size_t)3u)

/* Per layer: h (N), winner ids (k, u16), winner values (k), their count; then two 2N rows of
 * 32-bit scratch. Element e = 2 bytes (int8: int16 h and values) or 4 (float32). */
typedef struct st_view {
  void *h[SLN_MAX_LAYERS];
  uint16_t *wi[SLN_MAX_LAYERS];
  void *wv[SLN_MAX_LAYERS];
  int32_t *nw[SLN_MAX_LAYERS];
  void *acc_in, *acc_rec; /* (2N) int32 / float each */
} st_view;

static size_t state_layout(const sln_model *m, uint8_t *base, st_view *w)
{
  size_t off = 0, N = m->n_neurons, k = m->k, e = m->numeric == SLN_NUMERIC_INT8 ? 2u : 4u;
  uint32_t l;
  for (l = 0; l < m->n_layers; l++) {
    if (w) w->h[l] = base + off;
    off += A4(e * N);
  }
  for (l = 0; l < m->n_layers; l++) {
    if (w) w->wi[l] = (uint16_t *)(void *)(base + off);
    off += A4(2 * k);
  }
  for (l = 0; l < m->n_layers; l++) {
    if (w) w->wv[l] = base + off;
    off += A4(e * k);
  }
  for (l = 0; l < m->n_layers; l++) {
    if (w) w->nw[l] = (int32_t *)(void *)(base + off);
    off += 4;
  }
  if (w) w->acc_in = base + off;
  off += 8 * N;
  if (w) w->acc_rec = base + off;
  off += 8 * N;
  return off;
}

/* sln_run's workspace after the state: readout accumulator (N int32 / float) [+ fired flags] */
static size_t workspace_layout(const sln_model *m, size_t *acc_off)
{
  size_t off = state_layout(m, NULL, NULL);
  *acc_off = off;
  return off + 4u * m->n_neurons + (m->numeric == SLN_NUMERIC_FLOAT32 ? A4((size_t)m->n_neurons) : 0u);
}

static int model_ok(const sln_model *m)
{
  return m != NULL && m->n_layers >= 1u && m->n_layers <= SLN_MAX_LAYERS && m->ro[SLN_T_W_OUT] != NULL;
}

sln_status sln_state_size(const sln_model *m, size_t *bytes)
{
  if (!model_ok(m) || bytes == NULL) return SLN_ERR_ARG;
  *bytes = state_layout(m, NULL, NULL);
  return SLN_OK;
}

sln_status sln_workspace_size(const sln_model *m, size_t *bytes)
{
  size_t acc;
  if (!model_ok(m) || bytes == NULL) return SLN_ERR_ARG;
  *bytes = workspace_layout(m, &acc);
  return SLN_OK;
}

static sln_status check_buf(const sln_model *m, const void *buf, size_t len, size_t need)
{
  if (!model_ok(m) || buf == NULL || ((uintptr_t)buf & 3u) != 0u) return SLN_ERR_ARG; /* 32-bit views */
  return len < need ? SLN_ERR_WORKSPACE : SLN_OK;
}

sln_status sln_reset(const sln_model *m, void *state, size_t state_len)
{
  sln_status st = check_buf(m, state, state_len, model_ok(m) ? state_layout(m, NULL, NULL) : 0u);
  if (st != SLN_OK) return st;
  memset(state, 0, state_layout(m, NULL, NULL));
  return SLN_OK;
}

/* Input of one layer for one step: n events (idx[e], val[e]), or, idx == NULL, a dense row of
 * n values scanned for nonzeros (int8: uint8 pixels / int16 events; float32: float both). */
typedef struct ev_in {
  const uint16_t *idx;
  const void *val;
  uint32_t n;
} ev_in;

/* ---- int8 step (sln/intspec.py q_step) ------------------------------------------------ */

/* acc[0..n2) += col * x: the hot loop of the runtime (unrolled by 4) */
static void axpy_q(int32_t *acc, const int8_t *col, int32_t x, uint32_t n2)
{
  uint32_t i;
  for (i = 0; i + 4u <= n2; i += 4u) {
    acc[i] += (int32_t)col[i] * x;
    acc[i + 1u] += (int32_t)col[i + 1u] * x;
    acc[i + 2u] += (int32_t)col[i + 2u] * x;
    acc[i + 3u] += (int32_t)col[i + 3u] * x;
  }
  for (; i < n2; i++) acc[i] += (int32_t)col[i] * x;
}

/* A weight matrix as the step reads it: dense (D, 2N) input-major, or column-sparse (ptr != NULL:
 * the (delta, val) entries of intspec.sparse_encode, validated by the loader). */
typedef struct sln_mat {
  const uint8_t *dense, *ptr, *delta, *val;
} sln_mat;

static sln_mat matrix_of(const sln_layer *L, int rec)
{
  sln_mat mx;
  mx.dense = L->t[rec ? SLN_T_W_REC : SLN_T_W_IN];
  mx.ptr = L->t[rec ? SLN_T_W_REC_PTR : SLN_T_W_IN_PTR];
  mx.delta = L->t[rec ? SLN_T_W_REC_DELTA : SLN_T_W_IN_DELTA];
  mx.val = L->t[rec ? SLN_T_W_REC_VAL : SLN_T_W_IN_VAL];
  return mx;
}

/* acc += x * column j: 2N int8 weights, or only the column's stored entries (row r advances by
 * each delta; rows are < 2N by the loader's check) */
static void column_q(int32_t *acc, const sln_mat *mx, uint32_t j, int32_t x, uint32_t n2)
{
  if (mx->ptr == NULL) {
    axpy_q(acc, (const int8_t *)mx->dense + (size_t)j * n2, x, n2);
  } else {
    const int8_t *v = (const int8_t *)mx->val;
    uint32_t e = (uint32_t)ld32(mx->ptr, j), end = (uint32_t)ld32(mx->ptr, j + 1u), r = 0;
    for (; e < end; e++) {
      r += mx->delta[e];
      acc[r] += (int32_t)v[e] * x;
    }
  }
}

/* Event-driven accumulation: acc = sum_e W[idx_e, :] * val_e, reading only the weight columns
 * (contiguous rows of the input-major matrix, or their nonzeros) of the nonzero inputs, in
 * ascending order. */
static void accumulate_q(int32_t *acc, const sln_mat *mx, uint32_t n2, const ev_in *in)
{
  const uint8_t *px = (const uint8_t *)in->val;
  const int16_t *val = (const int16_t *)in->val;
  uint32_t e;
  memset(acc, 0, (size_t)n2 * sizeof *acc);
  for (e = 0; e < in->n; e++) { /* one call site: the column walk is inlined once (firmware flash) */
    const int32_t x = in->idx == NULL ? (int32_t)px[e] : (int32_t)val[e];
    if (x != 0) column_q(acc, mx, in->idx == NULL ? e : in->idx[e], x, n2);
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

/* lut: the gate table of this step (the layer's alpha_lut, or an event model's dt-bucket table) */
static void layer_step_q(const sln_model *m, uint32_t l, const st_view *w, const ev_in *in, const uint8_t *lut)
{
  const sln_layer *L = &m->layers[l];
  const uint8_t *const *t = L->t;
  const uint32_t N = m->n_neurons, n2 = 2u * N, k = m->k;
  int16_t *h = (int16_t *)w->h[l], *wv = (int16_t *)w->wv[l];
  uint16_t *wi = w->wi[l];
  int32_t *acc_in = (int32_t *)w->acc_in, *acc_rec = (int32_t *)w->acc_rec;
  int32_t *a = acc_in, *best = acc_rec;
  int64_t sum = 0, mean, inv;
  uint64_t sumsq = 0, stdv;
  uint32_t i, n;
  int sh_c = SLN_NORM_FRAC + SLN_GAMMA_FRAC - (int)L->h_frac;
  ev_in rec;
  const sln_mat mx_in = matrix_of(L, 0), mx_rec = matrix_of(L, 1);

  /* a = rq(W_in x) + rq(W_rec y_prev) + b, saturated (Q F) */
  rec.idx = wi;
  rec.val = wv;
  rec.n = (uint32_t)*w->nw[l];
  accumulate_q(acc_in, &mx_in, n2, in);
  accumulate_q(acc_rec, &mx_rec, n2, &rec);
  for (i = 0; i < n2; i++) {
    /* rq(0) = 0 exactly, so zero accumulators skip their requantisation */
    int64_t v = ld32(t[SLN_T_BIAS], i);
    if (acc_in[i] != 0) v += shr_round((int64_t)acc_in[i] * ld32(t[SLN_T_IN_MULT], i), (int)ld32(t[SLN_T_IN_SHIFT], i));
    if (acc_rec[i] != 0)
      v += shr_round((int64_t)acc_rec[i] * ld32(t[SLN_T_REC_MULT], i), (int)ld32(t[SLN_T_REC_SHIFT], i));
    a[i] = sat(v, -SLN_A_SAT, SLN_A_SAT);
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
    int32_t c = sat(shr_round((int64_t)ld32(t[SLN_T_LN_GAMMA], i) * nq + ld32(t[SLN_T_LN_BETA], i), sh_c), 0,
                    SLN_H_MAX);
    int32_t alpha = gate(lut, a[N + i], L->a_frac);
    h[i] = (int16_t)((alpha * (int32_t)h[i] + (SLN_ALPHA_ONE - alpha) * c + (SLN_ALPHA_ONE >> 1)) >> 15);
  }
  /* k-WTA on boost * h: insertion into a sorted list; strict comparisons keep the lower
   * index first on ties, exactly like the stable descending sort of the spec */
  n = 0;
  for (i = 0; i < N; i++) {
    int32_t s = ld32(t[SLN_T_BOOST], i) * (int32_t)h[i];
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
  for (i = 0; i < k; i++) wv[i] = h[wi[i]]; /* y = h on the winners */
  *w->nw[l] = (int32_t)k;
}

/* ---- float32 step (sln/cell.py; the host engine's kernel and counters) ----------------- */
#ifdef SLN_FLOAT

/* Every operation is counted where it executes, into per-term rows (SLN_C_* columns). A
 * multiply by an input that is exactly 1.0 (a binary event) is executed and counted as an
 * accumulate (AC); any other nonzero input costs a multiply-accumulate (MAC). */
#ifdef SLN_COUNTERS
#define CNT(row, col, v)                                                                                  \
  do {                                                                                                    \
    if ((row) != NULL) (row)[col] += (uint64_t)(v);                                                       \
  } while (0)
#else
#define CNT(row, col, v) ((void)(row), (void)(v))
#endif

/* acc += v * w (n floats); one MAC or AC per element */
static void axpy_f(float *acc, const float *w, float v, uint32_t n, uint64_t *cnt)
{
  uint32_t j;
  if (v == 1.0f) {
    for (j = 0; j < n; ++j) acc[j] += w[j];
    CNT(cnt, SLN_C_AC, n);
  } else {
    for (j = 0; j < n; ++j) acc[j] += v * w[j];
    CNT(cnt, SLN_C_MAC, n);
  }
  CNT(cnt, SLN_C_WEIGHT_BYTES, (uint64_t)n * 4u);
}

/* a += v * column j of a float matrix: N2 weights, or the column's stored entries (+ their index
 * bytes: 1 per entry and the two int32 column pointers) */
static void column_f(float *a, const sln_mat *mx, uint32_t j, float v, uint32_t N2, uint64_t *cnt)
{
  if (mx->ptr == NULL) {
    axpy_f(a, (const float *)(const void *)mx->dense + (size_t)j * N2, v, N2, cnt);
  } else {
    const float *w = (const float *)(const void *)mx->val;
    uint32_t e = (uint32_t)ld32(mx->ptr, j), end = (uint32_t)ld32(mx->ptr, j + 1u), r = 0, n = end - e;
    if (v == 1.0f) {
      for (; e < end; e++) {
        r += mx->delta[e];
        a[r] += w[e];
      }
      CNT(cnt, SLN_C_AC, n);
    } else {
      for (; e < end; e++) {
        r += mx->delta[e];
        a[r] += v * w[e];
      }
      CNT(cnt, SLN_C_MAC, n);
    }
    CNT(cnt, SLN_C_WEIGHT_BYTES, (uint64_t)n * 4u);
    CNT(cnt, SLN_C_INDEX_BYTES, (uint64_t)n + 8u);
  }
}

/* Top-k of score (n) into idx (k), sorted by score descending; equal scores keep the lower
 * index first (a stable descending sort). ts: k floats of scratch. Counts the compares. */
static void topk_f(const float *score, uint32_t n, uint32_t k, uint16_t *idx, float *ts, uint64_t *ce)
{
  uint32_t m = 0, i, p;
  for (i = 0; i < n; ++i) {
    float s = score[i];
    if (m == k) {
      CNT(ce, SLN_C_CMP, 1u);
      if (!(s > ts[k - 1])) continue;
      p = k - 1;
    } else {
      p = m++;
    }
    while (p > 0) {
      CNT(ce, SLN_C_CMP, 1u);
      if (ts[p - 1] >= s) break;
      ts[p] = ts[p - 1];
      idx[p] = idx[p - 1];
      --p;
    }
    ts[p] = s;
    idx[p] = (uint16_t)i;
  }
}

/* One step of layer l: a = b + W_in x + W_rec y_prev (only event rows); c = ReLU(LN(a[:N]));
 * lambda = softplus(a[N:]) + lambda_min; alpha = exp(-lambda dt); h = alpha h + (1-alpha) c;
 * winners = top-k of boost*h; only nonzero winners become events. cnt: the layer's 3 rows. */
static void layer_step_f(const sln_model *m, uint32_t l, const st_view *w, const ev_in *in, float dt,
                         uint64_t *cnt)
{
  const sln_layer *L = &m->layers[l];
  const uint32_t N = m->n_neurons, N2 = 2u * N, D = L->d_in, k = m->k;
  const sln_mat mx_in = matrix_of(L, 0), mx_rec = matrix_of(L, 1);
  const float *ln_w = (const float *)(const void *)L->t[SLN_T_LN_GAMMA];
  const float *ln_b = (const float *)(const void *)L->t[SLN_T_LN_BETA];
  const float *boost = (const float *)(const void *)L->t[SLN_T_BOOST];
  const float *prm = (const float *)(const void *)L->t[SLN_T_PARAMS];
  const float lambda_min = prm[0], ln_eps = prm[1];
  uint64_t *ci = cnt, *cr = cnt ? cnt + SLN_NCOUNT : NULL, *ce = cnt ? cnt + 2u * SLN_NCOUNT : NULL;
  float *h = (float *)w->h[l], *wval = (float *)w->wv[l];
  float *a = (float *)w->acc_in, *score = (float *)w->acc_rec, *ts = score + N; /* k <= N */
  uint16_t *widx = w->wi[l];
  int32_t *wn = w->nw[l];
  uint32_t j, i;

  /* input projection: bias, then one weight row per nonzero input */
  memcpy(a, L->t[SLN_T_BIAS], sizeof(float) * (size_t)N2);
  CNT(ci, SLN_C_PARAM_BYTES, (uint64_t)N2 * 4u); /* bias: a parameter vector */
  CNT(ci, SLN_C_DENSE_MAC, (uint64_t)D * N2);
  if (in->idx == NULL) {
    const float *x = (const float *)in->val;
    CNT(ci, SLN_C_ACT_BYTES_READ, (uint64_t)in->n * 4u); /* scan of the input vector */
    for (j = 0; j < in->n; ++j) {
      if (x[j] != 0.0f) {
        column_f(a, &mx_in, j, x[j], N2, ci);
        CNT(ci, SLN_C_EVENTS, 1u);
      }
    }
  } else {
    const float *v = (const float *)in->val;
    CNT(ci, SLN_C_ACT_BYTES_READ, (uint64_t)in->n * 8u); /* (index, value) events */
    for (j = 0; j < in->n; ++j) column_f(a, &mx_in, in->idx[j], v[j], N2, ci);
    CNT(ci, SLN_C_EVENTS, in->n);
  }
  /* recurrent projection: one row per previous nonzero winner */
  CNT(cr, SLN_C_DENSE_MAC, (uint64_t)N * N2);
  CNT(cr, SLN_C_ACT_BYTES_READ, (uint64_t)*wn * 8u);
  for (j = 0; j < (uint32_t)*wn; ++j) column_f(a, &mx_rec, widx[j], wval[j], N2, cr);
  CNT(cr, SLN_C_EVENTS, *wn);
  CNT(ce, SLN_C_ACT_BYTES_WRITTEN, (uint64_t)N2 * 4u); /* pre-activation written ... */
  CNT(ce, SLN_C_ACT_BYTES_READ, (uint64_t)N2 * 4u);    /* ... and read back */
  {
    /* LayerNorm statistics over u = a[:N] (double accumulators for stability) */
    double s = 0.0, s2 = 0.0;
    float mean, rstd;
    uint64_t nsp = 0;
    for (i = 0; i < N; ++i) s += a[i];
    mean = (float)(s / N);
    for (i = 0; i < N; ++i) {
      double d = (double)a[i] - mean;
      s2 += d * d;
    }
    rstd = 1.0f / sqrtf((float)(s2 / N) + ln_eps);
    CNT(ce, SLN_C_ADD, (uint64_t)N + 2u * (uint64_t)N + 1u); /* sum; sub+add; +eps */
    CNT(ce, SLN_C_MUL, (uint64_t)N + 2u);                     /* squares; two /N */
    CNT(ce, SLN_C_NONLIN, 1u);                                /* 1/sqrt */
    CNT(ce, SLN_C_PARAM_BYTES, (uint64_t)N * 8u);             /* ln_w, ln_b */
    CNT(ce, SLN_C_ACT_BYTES_READ, (uint64_t)N * 4u);          /* h read */
    CNT(ce, SLN_C_ACT_BYTES_WRITTEN, (uint64_t)N * 4u);       /* h written */
    /* candidate, decay rate, liquid update */
    for (i = 0; i < N; ++i) {
      float c = (a[i] - mean) * rstd * ln_w[i] + ln_b[i];
      float v = a[N + i], sp, lam, alpha;
      c = c > 0.0f ? c : 0.0f;
      if (v > 20.0f) {
        sp = v; /* softplus threshold, as torch.nn.functional.softplus */
      } else {
        sp = log1pf(expf(v));
        ++nsp;
      }
      lam = sp + lambda_min;
      alpha = expf(-lam * dt);
      h[i] = alpha * h[i] + (1.0f - alpha) * c;
    }
    /* per neuron: LN sub, +b, +lambda_min, (1-alpha), final add = 5 adds; *rstd, *w, lam*dt,
     * alpha*h, (1-alpha)*c = 5 muls; exp(alpha) = 1 nonlin; ReLU and softplus threshold =
     * 2 compares; exp+log1p where not thresholded */
    CNT(ce, SLN_C_ADD, 5u * (uint64_t)N);
    CNT(ce, SLN_C_MUL, 5u * (uint64_t)N);
    CNT(ce, SLN_C_NONLIN, (uint64_t)N + 2u * nsp);
    CNT(ce, SLN_C_CMP, 2u * (uint64_t)N);
  }
  /* k-winners-take-all; only nonzero winners become events */
  *wn = 0;
  if (k >= N) {
    for (i = 0; i < N; ++i) {
      if (h[i] != 0.0f) {
        widx[*wn] = (uint16_t)i;
        wval[*wn] = h[i];
        ++*wn;
      }
    }
    CNT(ce, SLN_C_CMP, N);
  } else {
    const float *sc = h;
    if (prm[2] != 0.0f) { /* has_boost */
      for (i = 0; i < N; ++i) score[i] = h[i] * boost[i];
      CNT(ce, SLN_C_MUL, N);
      CNT(ce, SLN_C_PARAM_BYTES, (uint64_t)N * 4u); /* boost */
      sc = score;
    }
    topk_f(sc, N, k, widx, ts, ce);
    for (j = 0; j < k; ++j) { /* compaction in place: *wn <= j */
      float v = h[widx[j]];
      if (v != 0.0f) {
        widx[*wn] = widx[j];
        wval[*wn] = v;
        ++*wn;
      }
    }
    CNT(ce, SLN_C_CMP, k);
  }
  CNT(ce, SLN_C_NZ_OUT, *wn);
  CNT(ce, SLN_C_ACT_BYTES_WRITTEN, (uint64_t)*wn * 8u); /* (index, value) events out */
}
#endif /* SLN_FLOAT */

/* ---- the step: one for every numeric and model kind ("Eval": no checks) --------------- */

/* Layer 0 reads `in`; layer l > 0 reads the events layer l-1 produced at this step. */
static void step_all(const sln_model *m, const st_view *w, const ev_in *in, float dt, uint64_t *counters)
{
  uint32_t l;
  for (l = 0; l < m->n_layers; l++) {
    ev_in below;
    const ev_in *src = in;
    if (l > 0u) {
      below.idx = w->wi[l - 1u];
      below.val = w->wv[l - 1u];
      below.n = (uint32_t)*w->nw[l - 1u];
      src = &below;
    }
#ifdef SLN_FLOAT
    if (m->numeric == SLN_NUMERIC_FLOAT32) {
      layer_step_f(m, l, w, src, dt, counters ? counters + (size_t)l * 3u * SLN_NCOUNT : NULL);
      continue;
    }
#endif
    layer_step_q(m, l, w, src, m->layers[l].t[SLN_T_ALPHA_LUT]);
  }
  (void)dt;
  (void)counters;
}

static int dt_is_one(float dt) /* bit test: no floating-point operation in int8 builds */
{
  uint32_t bits;
  memcpy(&bits, &dt, sizeof bits);
  return bits == 0x3F800000u;
}

sln_status sln_step(const sln_model *m, void *state, size_t state_len, const void *x, const uint16_t *idx,
                    uint32_t n, float dt, uint64_t *counters)
{
  st_view w;
  ev_in in;
  uint32_t i;
  sln_status st = check_buf(m, state, state_len, model_ok(m) ? state_layout(m, NULL, NULL) : 0u);
  if (st != SLN_OK) return st;
  if (x == NULL && n > 0u) return SLN_ERR_ARG;
  if (idx == NULL && n != m->input_size) return SLN_ERR_ARG;
  if (idx != NULL) {
    if (n > m->input_size) return SLN_ERR_ARG;
    for (i = 0; i < n; i++)
      if (idx[i] >= m->input_size) return SLN_ERR_ARG;
  }
  if (m->numeric == SLN_NUMERIC_INT8) {
    if (!dt_is_one(dt)) return SLN_ERR_ARG;
  }
#ifdef SLN_FLOAT
  else if (!(dt >= 0.0f)) {
    return SLN_ERR_ARG;
  }
#endif
  state_layout(m, (uint8_t *)state, &w);
  in.idx = idx;
  in.val = x;
  in.n = n;
  step_all(m, &w, &in, dt, counters);
  return SLN_OK;
}

/* ---- readouts: one per model kind ------------------------------------------------------- */

/* int8 logit_c = rq(dot_c, M_out_c) + b_c, saturated to int32 (intspec.readout) */
static int32_t logit_q(const sln_model *m, uint32_t c, int64_t dot)
{
  int sh = (int)ld32(m->ro[SLN_T_OUT_SHIFT], c);
  return sat(shr_round(dot * ld32(m->ro[SLN_T_OUT_MULT], c), sh) + ld32(m->ro[SLN_T_OUT_BIAS], c), INT32_MIN,
             INT32_MAX);
}

/* classifier: logits = W_o (sum_t y^L_t) [/ T] + b_o over only the neurons that fired.
 * acc: (N) int32 / float accumulator; scratch: N int32 (int8: ids of fired neurons). */
static void readout_mean(const sln_model *m, const void *acc, uint8_t *fired, int32_t *scratch, uint32_t T,
                         void *logits, uint64_t *cro)
{
  const uint32_t N = m->n_neurons, C = m->n_classes;
  uint32_t i, c, nf = 0;
#ifdef SLN_FLOAT
  if (m->numeric == SLN_NUMERIC_FLOAT32) {
    const float *a = (const float *)acc, *w_out = (const float *)(const void *)m->ro[SLN_T_W_OUT];
    const float *b_out = (const float *)(const void *)m->ro[SLN_T_OUT_BIAS];
    const float inv_t = 1.0f / (float)T;
    float *out = (float *)logits;
    for (c = 0; c < C; ++c) out[c] = 0.0f;
    for (i = 0; i < N; ++i) {
      if (fired[i] && a[i] != 0.0f) {
        const float v = a[i] * inv_t;
        const float *row = w_out + (size_t)i * C;
        for (c = 0; c < C; ++c) out[c] += v * row[c];
        ++nf;
      }
    }
    for (c = 0; c < C; ++c) out[c] += b_out[c];
    CNT(cro, SLN_C_MAC, (uint64_t)nf * C);
    CNT(cro, SLN_C_MUL, (uint64_t)nf + 1u); /* acc/T, and 1/T */
    CNT(cro, SLN_C_NONLIN, 1u);
    CNT(cro, SLN_C_ADD, C); /* bias */
    CNT(cro, SLN_C_WEIGHT_BYTES, (uint64_t)nf * C * 4u); /* rows of the neurons that fired */
    CNT(cro, SLN_C_PARAM_BYTES, (uint64_t)C * 4u);       /* readout bias */
    CNT(cro, SLN_C_ACT_BYTES_READ, (uint64_t)N + (uint64_t)nf * 4u); /* fired flags, acc values */
    CNT(cro, SLN_C_ACT_BYTES_WRITTEN, (uint64_t)C * 4u);
    CNT(cro, SLN_C_DENSE_MAC, (uint64_t)N * C);
    CNT(cro, SLN_C_NZ_OUT, nf);
    return;
  }
#endif
  {
    const int32_t *racc = (const int32_t *)acc;
    const int8_t *w_out = (const int8_t *)m->ro[SLN_T_W_OUT];
    int32_t *out = (int32_t *)logits;
    for (i = 0; i < N; i++)
      if (racc[i] != 0) scratch[nf++] = (int32_t)i;
    for (c = 0; c < C; c++) {
      int64_t dot = 0;
      for (i = 0; i < nf; i++) {
        uint32_t j = (uint32_t)scratch[i];
        dot += (int64_t)w_out[(size_t)j * C + c] * racc[j];
      }
      out[c] = logit_q(m, c, dot); /* 1/T is folded into M_out */
    }
  }
  (void)fired;
  (void)T;
  (void)cro;
}

/* character LM: logits = rq(W_o y^L_t) + b_o from the k winners of the top layer only */
static void readout_winners(const sln_model *m, const st_view *w, int32_t *logits)
{
  const uint32_t l = m->n_layers - 1u, C = m->n_classes;
  const int8_t *w_out = (const int8_t *)m->ro[SLN_T_W_OUT];
  const uint16_t *wi = w->wi[l];
  const int16_t *wv = (const int16_t *)w->wv[l];
  uint32_t c, i;
  for (c = 0; c < C; c++) {
    int64_t dot = 0;
    for (i = 0; i < (uint32_t)*w->nw[l]; i++) dot += (int64_t)w_out[(size_t)wi[i] * C + c] * wv[i];
    logits[c] = logit_q(m, c, dot);
  }
}

sln_status sln_run(const sln_model *m, const void *input, size_t input_len, const float *dt, void *ws,
                   size_t ws_len, void *logits, uint16_t *winners, uint64_t *counters)
{
  st_view w;
  size_t acc_off, need;
  uint32_t t, l, i, T, D, top;
  uint8_t *acc, *fired = NULL;
  uint64_t *cro = NULL;
  sln_status st;
  if (!model_ok(m) || input == NULL || logits == NULL || m->model_kind != SLN_KIND_CLASSIFIER) return SLN_ERR_ARG;
  need = workspace_layout(m, &acc_off);
  if ((st = check_buf(m, ws, ws_len, need)) != SLN_OK) return st;
  D = m->input_size;
  if (input_len == 0u || input_len % D != 0u || input_len / D > 0xFFFFFFFFu) return SLN_ERR_ARG;
  T = (uint32_t)(input_len / D);
  if (m->numeric == SLN_NUMERIC_INT8 && (T != m->n_steps || dt != NULL)) return SLN_ERR_ARG;
  memset(ws, 0, need);
  state_layout(m, (uint8_t *)ws, &w);
  acc = (uint8_t *)ws + acc_off;
  top = m->n_layers - 1u;
#ifdef SLN_FLOAT
  fired = acc + 4u * (size_t)m->n_neurons;
  if (counters != NULL) cro = counters + (size_t)3u * m->n_layers * SLN_NCOUNT;
  if (dt != NULL)
    for (t = 0; t < T; t++)
      if (!(dt[t] >= 0.0f)) return SLN_ERR_ARG;
#endif
  for (t = 0; t < T; t++) {
    ev_in in;
    uint32_t nw;
    in.idx = NULL;
    in.n = D;
    in.val = m->numeric == SLN_NUMERIC_INT8 ? (const void *)((const uint8_t *)input + (size_t)t * D)
                                            : (const void *)((const uint8_t *)input + (size_t)t * D * 4u);
#ifdef SLN_FLOAT
    step_all(m, &w, &in, dt != NULL ? dt[t] : 1.0f, counters);
#else
    step_all(m, &w, &in, 1.0f, counters);
#endif
    nw = (uint32_t)*w.nw[top];
    if (winners != NULL)
      for (l = 0; l < m->n_layers; l++) {
        uint16_t *dst = winners + ((size_t)l * T + t) * m->k;
        for (i = 0; i < m->k; i++) dst[i] = i < (uint32_t)*w.nw[l] ? w.wi[l][i] : 0xFFFFu;
      }
    /* readout accumulator: one add per event of the top layer */
#ifdef SLN_FLOAT
    if (m->numeric == SLN_NUMERIC_FLOAT32) {
      float *fa = (float *)(void *)acc;
      const float *tv = (const float *)w.wv[top];
      for (i = 0; i < nw; i++) {
        fa[w.wi[top][i]] += tv[i];
        fired[w.wi[top][i]] = 1u;
      }
      CNT(cro, SLN_C_ADD, nw);
      CNT(cro, SLN_C_ACT_BYTES_READ, (uint64_t)nw * 12u); /* event (8) + acc value (4) */
      CNT(cro, SLN_C_ACT_BYTES_WRITTEN, (uint64_t)nw * 4u);
      CNT(cro, SLN_C_EVENTS, nw);
      continue;
    }
#endif
    {
      int32_t *racc = (int32_t *)(void *)acc;
      const int16_t *tv = (const int16_t *)w.wv[top];
      for (i = 0; i < nw; i++) racc[w.wi[top][i]] += tv[i];
    }
  }
  readout_mean(m, acc, fired, (int32_t *)w.acc_in, T, logits, cro);
  (void)cro;
  return SLN_OK;
}

sln_status sln_lm_step(const sln_model *m, void *state, size_t state_len, uint32_t token, int32_t *logits)
{
  st_view w;
  ev_in in;
  const uint16_t ev_idx = (uint16_t)token;
  const int16_t ev_val = 1; /* one-hot input: one event of value 1 */
  sln_status st = check_buf(m, state, state_len, model_ok(m) ? state_layout(m, NULL, NULL) : 0u);
  if (st != SLN_OK) return st;
  if (logits == NULL || m->model_kind != SLN_KIND_CHAR_LM || m->numeric != SLN_NUMERIC_INT8 ||
      token >= m->input_size)
    return SLN_ERR_ARG;
  state_layout(m, (uint8_t *)state, &w);
  in.idx = &ev_idx;
  in.val = &ev_val;
  in.n = 1u;
  step_all(m, &w, &in, 1.0f, NULL);
  readout_winners(m, &w, logits);
  return SLN_OK;
}

/* token classifier (intspec_seq.token_forward): one token event per step, readout of the mean of the top
 * layer over the n steps: logit_c = sat(round_div(rq(W_o acc, M_out_c), n) + b_c) */
sln_status sln_classify_tokens(const sln_model *m, const uint16_t *tokens, uint32_t n, void *ws, size_t ws_len,
                               int32_t *logits)
{
  st_view w;
  size_t acc_off, need;
  uint32_t t, i, c, nf = 0, top;
  int32_t *racc, *fired;
  const int16_t one = 1; /* one-hot input: one event of value 1 */
  const int8_t *w_out;
  sln_status st;
  if (!model_ok(m) || tokens == NULL || logits == NULL || m->model_kind != SLN_KIND_TOKEN_CLASSIFIER ||
      m->numeric != SLN_NUMERIC_INT8)
    return SLN_ERR_ARG;
  need = workspace_layout(m, &acc_off);
  if ((st = check_buf(m, ws, ws_len, need)) != SLN_OK) return st;
  if (n < 1u || n > m->n_steps) return SLN_ERR_ARG;
  for (t = 0; t < n; t++)
    if (tokens[t] >= m->input_size) return SLN_ERR_ARG;
  memset(ws, 0, need);
  state_layout(m, (uint8_t *)ws, &w);
  racc = (int32_t *)(void *)((uint8_t *)ws + acc_off);
  fired = (int32_t *)w.acc_in; /* scratch: ids of the neurons with a nonzero sum */
  top = m->n_layers - 1u;
  for (t = 0; t < n; t++) {
    ev_in in;
    const int16_t *tv = (const int16_t *)w.wv[top];
    in.idx = tokens + t;
    in.val = &one;
    in.n = 1u;
    step_all(m, &w, &in, 1.0f, NULL);
    for (i = 0; i < (uint32_t)*w.nw[top]; i++) racc[w.wi[top][i]] += tv[i];
  }
  w_out = (const int8_t *)m->ro[SLN_T_W_OUT];
  for (i = 0; i < m->n_neurons; i++)
    if (racc[i] != 0) fired[nf++] = (int32_t)i;
  for (c = 0; c < m->n_classes; c++) {
    int64_t dot = 0, q;
    for (i = 0; i < nf; i++) dot += (int64_t)w_out[(size_t)fired[i] * m->n_classes + c] * racc[fired[i]];
    q = shr_round(dot * ld32(m->ro[SLN_T_OUT_MULT], c), (int)ld32(m->ro[SLN_T_OUT_SHIFT], c));
    logits[c] = sat(floor_div(2 * q + (int64_t)n, 2 * (int64_t)n) + ld32(m->ro[SLN_T_OUT_BIAS], c), INT32_MIN,
                    INT32_MAX);
  }
  return SLN_OK;
}

/* event model (intspec_events.events_step): int16 feature events, the dt bucket's gate table, the per-step
 * readout from the winners, the weighted residual's sum of squares */
sln_status sln_events_step(const sln_model *m, void *state, size_t state_len, const int16_t *x, uint32_t dt_us,
                           int32_t *out, uint64_t *sq, uint32_t *bucket)
{
  st_view w;
  ev_in in;
  uint16_t idx[SLN_EVENT_MAX_INPUT];
  int16_t val[SLN_EVENT_MAX_INPUT];
  uint32_t i, l, b = 0, n = 0;
  int32_t xf;
  uint64_t acc = 0;
  const int32_t e_max = (1 << 20) - 1;
  sln_status st = check_buf(m, state, state_len, model_ok(m) ? state_layout(m, NULL, NULL) : 0u);
  if (st != SLN_OK) return st;
  if (x == NULL || out == NULL || sq == NULL || m->model_kind != SLN_KIND_EVENT_MODEL ||
      m->numeric != SLN_NUMERIC_INT8)
    return SLN_ERR_ARG;
  for (i = 0; i < m->input_size; i++) {
    if (x[i] == INT16_MIN) return SLN_ERR_ARG; /* |x| < 2^15: the accumulator bound */
    if (x[i] != 0) {
      idx[n] = (uint16_t)i;
      val[n++] = x[i];
    }
  }
  while (b + 1u < SLN_EVENT_BUCKETS && (int64_t)dt_us >= (int64_t)ld32(m->ro[SLN_T_DT_EDGES], b)) b++;
  state_layout(m, (uint8_t *)state, &w);
  in.idx = idx;
  in.val = val;
  in.n = n;
  for (l = 0; l < m->n_layers; l++) {
    ev_in below;
    const ev_in *src = &in;
    if (l > 0u) {
      below.idx = w.wi[l - 1u];
      below.val = w.wv[l - 1u];
      below.n = (uint32_t)*w.nw[l - 1u];
      src = &below;
    }
    layer_step_q(m, l, &w, src, m->layers[l].t[SLN_T_GATE_LUTS] + (size_t)b * 4u * (SLN_LUT_SIZE + 1u));
  }
  readout_winners(m, &w, out);
  xf = ld32(m->ro[SLN_T_EVENT_PARAMS], 0);
  for (i = 0; i < m->n_classes; i++) {
    int64_t r = (int64_t)out[i] - (int64_t)x[i] * ((int64_t)1 << (16 - xf));
    int32_t e = sat(shr_round(r * ld32(m->ro[SLN_T_RESID_MULT], i), (int)ld32(m->ro[SLN_T_RESID_SHIFT], i)), -e_max,
                    e_max);
    acc += (uint64_t)((int64_t)e * e);
  }
  *sq = acc;
  if (bucket != NULL) *bucket = b;
  return SLN_OK;
}

sln_status sln_argmax(const int32_t *logits, uint32_t n, uint32_t *best)
{
  uint32_t i, b = 0;
  if (logits == NULL || best == NULL || n == 0u) return SLN_ERR_ARG;
  for (i = 1; i < n; i++)
    if (logits[i] > logits[b]) b = i;
  *best = b;
  return SLN_OK;
}

/* ---- the integer sampler (sln/intspec.py Sampler) -------------------------------------- */

static const int32_t exp2_lut[17] = SLN_EXP2_LUT;

sln_status sln_rng_seed(sln_rng *r, uint32_t seed)
{
  if (r == NULL) return SLN_ERR_ARG;
  r->s = seed != 0u ? seed : SLN_SEED_ZERO;
  return SLN_OK;
}

static uint32_t rng_next(sln_rng *r) /* xorshift32 (13, 17, 5) */
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
  int64_t u = -shr_floor(z * SLN_LOG2E_Q16, 16);
  int64_t n = u >> 16;
  int32_t f = (int32_t)(u & 0xFFFF), i, r, p;
  if (n >= 31) return 0u;
  i = f >> 12;
  r = f & 0xFFF;
  p = exp2_lut[i] - (((exp2_lut[i] - exp2_lut[i + 1]) * r) >> 12);
  return (uint32_t)p >> (uint32_t)n;
}

sln_status sln_sample(const int32_t *logits, uint32_t n, int32_t temp_q8, uint32_t top_k, sln_rng *r,
                      uint16_t *cand, uint32_t *token)
{
  uint32_t K = (top_k > 0u && top_k < n) ? top_k : n, cnt = 0, j, i;
  uint64_t sum = 0, run = 0, R;
  int32_t mx;
  if (logits == NULL || n == 0u || n > 65535u || r == NULL || cand == NULL || token == NULL) return SLN_ERR_ARG;
  if (temp_q8 <= 0) return sln_argmax(logits, n, token); /* greedy: the RNG is not advanced */
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
  R = ((uint64_t)rng_next(r) * sum) >> 32;
  *token = cand[K - 1u]; /* reached only if the running sum never exceeds R: it ends at sum > R */
  for (i = 0; i < K; i++) {
    run += exp_weight(floor_div(((int64_t)logits[cand[i]] - mx) * 256, temp_q8));
    if (run > R) {
      *token = cand[i];
      break;
    }
  }
  return SLN_OK;
}

sln_status sln_build_info(uint32_t *flags, size_t *model_struct_bytes)
{
  uint32_t f = 0u;
#ifdef SLN_FLOAT
  f |= SLN_BUILD_FLOAT;
#endif
#ifdef SLN_COUNTERS
  f |= SLN_BUILD_COUNTERS;
#endif
  if (flags == NULL || model_struct_bytes == NULL) return SLN_ERR_ARG;
  *flags = f;
  *model_struct_bytes = sizeof(sln_model);
  return SLN_OK;
}

const char *sln_status_name(int status)
{
  static const char *const names[] = SLN_STATUS_NAMES;
  if (status < 0 || status >= SLN_N_STATUS) return "SLN_ERR_?";
  return names[status];
}
