/* sln.h -- the Sparse Liquid Network runtime (C99, no malloc, no VLAs, caller-owned buffers).
 *
 * One loader, one step, one readout per model kind, one integer sampler, for every file of
 * the `.sln` format (sln/fmt.py, from which sln_format.h is generated):
 *
 *   numeric int8     the integer model of sln/intspec.py, bit for bit (host CLIs, Cortex-M4);
 *   numeric float32  the float event-driven engine of sln/engine.py (host only: compiled in
 *                    with -DSLN_FLOAT; -DSLN_COUNTERS adds its operation counters).
 *
 * The numeric is switched per call the way TensorFlow Lite Micro's reference kernels switch
 * per dtype: sln_load ("Prepare") validates everything once, the step and readouts ("Eval")
 * only compute. A build without SLN_FLOAT contains no floating-point arithmetic and refuses
 * float32 files (SLN_ERR_UNSUPPORTED). Usage (int8 classifier):
 *
 *   sln_model m;
 *   if (sln_load(&m, file_bytes, file_len, SLN_KIND_CLASSIFIER) != SLN_OK) ...  // untrusted, zero-copy
 *   static uint32_t ws[...];  // >= sln_workspace_size bytes, 4-byte aligned
 *   sln_run(&m, pixels, m.n_steps * m.input_size, NULL, ws, sizeof ws, logits, NULL, NULL);
 *
 * character LM: sln_load(..., SLN_KIND_CHAR_LM); sln_reset(state); sln_lm_step(token) per
 * character; sln_sample(logits) for the next one. token classifier (the domain detector):
 * sln_load(..., SLN_KIND_TOKEN_CLASSIFIER); sln_classify_tokens(ids, n) per sequence.
 * The model keeps pointers into `file_bytes`,
 * which must outlive it. Every call returns an sln_status (sln_status_name excepted); none
 * allocates memory, none reads outside the buffers it was given.
 */
#ifndef SLN_H
#define SLN_H

#include <stddef.h>
#include <stdint.h>

#include "sln_format.h"

#define SLN_KIND_SLOTS (SLN_N_LAYER_KINDS + 1u) /* tensor kinds 1..19 (index 0 unused; 19: event models) */

typedef struct sln_layer {
  uint32_t d_in;          /* inputs of this layer: input_size (layer 0) or n_neurons */
  int32_t a_frac, h_frac; /* int8: Q formats of the pre-activation and of the state */
  int32_t eps_q;          /* int8: LayerNorm eps in Q(2 a_frac) */
  /* tensors by kind (SLN_T_*), pointers into the file: int8 weights, int32 little-endian
   * arrays (read with memcpy: no alignment or aliasing assumption) or float32 arrays; a matrix
   * stored column-sparse (format version 2) has its ptr/delta/val kinds set and its dense kind NULL */
  const uint8_t *t[SLN_KIND_SLOTS];
} sln_layer;

typedef struct sln_model {
  uint32_t model_kind, numeric; /* SLN_KIND_*, SLN_NUMERIC_* */
  /* config, named as SLNConfig's fields; n_steps 0 for float32 (the caller gives T) */
  uint32_t input_size, n_classes, n_neurons, n_layers, k, n_steps;
  sln_layer layers[SLN_MAX_LAYERS];
  const uint8_t *ro[SLN_N_READOUT_KINDS + 1u]; /* readout tensors by kind (5..8: event models) */
} sln_model;

/* Parse and validate a model file held in memory (`data`, `len` bytes) whose header
 * model_kind must be `model_kind` (else SLN_ERR_UNSUPPORTED). Every size and offset is checked
 * against `len`; on error *m is unusable and the status says why. float32 files need `data`
 * 4-byte aligned (SLN_ERR_ARG otherwise) and a build with SLN_FLOAT. */
sln_status sln_load(sln_model *m, const void *data, size_t len, uint32_t model_kind);

/* Bytes of streaming state (sln_reset / sln_step / sln_lm_step) and of sln_run's workspace. */
sln_status sln_state_size(const sln_model *m, size_t *bytes);
sln_status sln_workspace_size(const sln_model *m, size_t *bytes);

/* Zero a state (start of a sequence / text). state: 4-byte aligned, >= sln_state_size bytes. */
sln_status sln_reset(const sln_model *m, void *state, size_t state_len);

/* One step of every layer (the spec's step), on a caller-owned state. Layer 0 reads
 *   idx == NULL: x = the dense input row, n = input_size values (int8: uint8 pixels, 0 = no
 *                event; float32: float), scanned for its nonzero entries;
 *   idx != NULL: n events (idx[i] < input_size, value x[i]: int16 for int8, float for float32).
 * dt: elapsed time (float32); int8 models require dt == 1 (baked into the gate table).
 * counters: NULL or (3 n_layers + 1) x SLN_NCOUNT uint64 rows, incremented (float32 models,
 * builds with SLN_COUNTERS; rows 3l+0 input, 3l+1 recurrent, 3l+2 elementwise, last readout). */
sln_status sln_step(const sln_model *m, void *state, size_t state_len, const void *x, const uint16_t *idx,
                    uint32_t n, float dt, uint64_t *counters);

/* Classify one sequence from a zero state (model_kind classifier): input = T rows of
 * input_size values (int8: uint8 pixels, T must be n_steps; float32: float, any T >= 1);
 * input_len = T * input_size (values). dt: NULL (all 1) or T floats (float32 only).
 * ws: >= sln_workspace_size bytes, 4-byte aligned. logits: n_classes values (int8: int32 Q16;
 * float32: float) = readout of the mean of the top layer's output over the steps.
 * winners: NULL, or n_layers * T * k uint16 receiving the winners of every layer and step in
 * selection order (highest score first), layer-major; float32 lists only nonzero winners,
 * the rest of each k is 0xFFFF. counters: as sln_step (+ the readout row). */
sln_status sln_run(const sln_model *m, const void *input, size_t input_len, const float *dt, void *ws,
                   size_t ws_len, void *logits, uint16_t *winners, uint64_t *counters);

/* Character LM (int8): feed one character id (< n_classes); logits: n_classes int32 (Q16) for
 * the next one, read from the k winners of the top layer of this step. */
sln_status sln_lm_step(const sln_model *m, void *state, size_t state_len, uint32_t token, int32_t *logits);

/* Token classifier (int8, model_kind SLN_KIND_TOKEN_CLASSIFIER, e.g. the domain detector): classify
 * one sequence of n token ids (1 <= n <= n_steps, each < input_size; else SLN_ERR_ARG) from a zero
 * state, one input event of value 1 per step (as sln_lm_step). ws: >= sln_workspace_size bytes,
 * 4-byte aligned. logits: n_classes int32 (Q16) = readout of the mean of the top layer over the n
 * steps (sln/intspec.py token_forward, bit for bit). */
sln_status sln_classify_tokens(const sln_model *m, const uint16_t *tokens, uint32_t n, void *ws, size_t ws_len,
                               int32_t *logits);

/* Index of the largest logit (ties: lowest index) into *best. */
/* Event model (model_kind 3, sln/intspec_events.py): one step per event (a network packet) with its
 * input_size int16 features x (Q x_frac; -32768 refused) and the elapsed time dt_us (microseconds),
 * which selects one of SLN_EVENT_BUCKETS gate tables; then the per-step readout out (n_classes int32,
 * Q16) and the reconstruction score *sq = sum_c e_c^2 of the weighted residuals
 * e_c = sat(rq(out_c - x_c 2^(16 - x_frac)), +-(2^20 - 1)) (Q e_frac); the bucket used in *bucket
 * (may be NULL). state: sln_state_size bytes, zeroed by sln_reset. */
#define SLN_EVENT_MAX_INPUT 128u
sln_status sln_events_step(const sln_model *m, void *state, size_t state_len, const int16_t *x, uint32_t dt_us,
                           int32_t *out, uint64_t *sq, uint32_t *bucket);

sln_status sln_argmax(const int32_t *logits, uint32_t n, uint32_t *best);

/* Deterministic integer sampler (sln/intspec.py `Sampler`): xorshift32 RNG, temperature
 * temp_q8 / 256 (0 = greedy), top_k candidates (0 = all). cand: caller scratch of n uint16. */
typedef struct sln_rng {
  uint32_t s;
} sln_rng;
sln_status sln_rng_seed(sln_rng *r, uint32_t seed);
sln_status sln_sample(const int32_t *logits, uint32_t n, int32_t temp_q8, uint32_t top_k, sln_rng *r,
                      uint16_t *cand, uint32_t *token);

/* What this build holds (bit 0: SLN_FLOAT, bit 1: SLN_COUNTERS) and sizeof(sln_model): for
 * hosts that load the runtime as a shared library (sln/engine.py). */
#define SLN_BUILD_FLOAT 1u
#define SLN_BUILD_COUNTERS 2u
sln_status sln_build_info(uint32_t *flags, size_t *model_struct_bytes);

/* "SLN_OK", "SLN_ERR_MAGIC", ... ; "SLN_ERR_?" for unknown values. */
const char *sln_status_name(int status);

#endif /* SLN_H */
