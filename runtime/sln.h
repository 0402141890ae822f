/* sln.h -- int8 Sparse Liquid Network runtime (C99, no malloc, caller-owned buffers).
 *
 * The integer model is specified by sln/quant.py (`reference_forward`); the binary format
 * by sln/export.py, from which sln_format.h is generated. Usage:
 *
 *   sln_model m;
 *   if (sln_load(&m, file_bytes, file_len) != SLN_OK) ...          // untrusted bytes, zero-copy
 *   static uint32_t ws[...];  // >= sln_workspace_size(&m) bytes, 4-byte aligned
 *   sln_run(&m, pixels, m.n_steps * m.input_size, ws, sizeof ws, logits, NULL);
 *
 * The model keeps pointers into `file_bytes`, which must outlive it. All functions return an
 * sln_status; none allocates memory, none reads outside the buffers it was given.
 */
#ifndef SLN_H
#define SLN_H

#include <stddef.h>
#include <stdint.h>

#include "sln_format.h"

typedef struct sln_layer {
  uint32_t d_in;              /* inputs of this layer: input_size (layer 0) or n_neurons */
  int32_t a_frac, h_frac;     /* Q formats of the pre-activation and of the state */
  int32_t eps_q;              /* LayerNorm eps in Q(2 a_frac) */
  const int8_t *w_in;         /* (d_in, 2N): column j = weights fed by input j */
  const int8_t *w_rec;        /* (N, 2N): column j = weights fed by neuron j */
  /* int32 little-endian arrays (read with memcpy: no alignment or aliasing assumptions) */
  const uint8_t *in_mult, *in_shift, *rec_mult, *rec_shift, *bias;   /* (2N) */
  const uint8_t *ln_gamma, *ln_beta, *boost;                        /* (N) */
  const uint8_t *alpha_lut;                                         /* (SLN_LUT_SIZE + 1) */
} sln_layer;

typedef struct sln_model {
  /* config, named as SLNConfig's fields */
  uint32_t input_size, n_classes, n_neurons, n_layers, k, n_steps;
  sln_layer layers[SLN_MAX_LAYERS];
  const int8_t *w_out;                                  /* (N, C) */
  const uint8_t *out_mult, *out_shift, *out_bias;       /* int32 (C) */
} sln_model;

/* Parse and validate a model file held in memory (`data`, `len` bytes). Every size and
 * offset is checked against `len`; on error *m is unusable and the status says why. */
sln_status sln_load(sln_model *m, const void *data, size_t len);

/* sln_load for a given header model_kind (SLN_KIND_*); sln_load(m, d, n) is
 * sln_load_kind(m, d, n, SLN_KIND_CLASSIFIER). A file of another kind gives SLN_ERR_UNSUPPORTED. */
sln_status sln_load_kind(sln_model *m, const void *data, size_t len, uint32_t model_kind);

/* One step of liquid layer l (the spec's per-layer step), on caller-owned state: h (N) int16,
 * the layer's last winners wi/wv (k) and their count *n_win (updated in place to this step's
 * winners), scratch acc_in/acc_rec (2N int32 each), input events (ev_idx, ev_val, n_ev).
 * No argument checks: used by sln_run and by the character-LM runtime (sln_lm.c). */
void sln_layer_step(const sln_model *m, uint32_t l, int16_t *h, uint16_t *wi, int16_t *wv, int32_t *n_win,
                    int32_t *acc_in, int32_t *acc_rec, const uint16_t *ev_idx, const int16_t *ev_val, int32_t n_ev);

/* Bytes of workspace sln_run needs for this model. */
size_t sln_workspace_size(const sln_model *m);

/* Classify one sample. input: n_steps * input_size uint8 values (pixels; 0 = no event),
 * input_len must equal that. ws: >= sln_workspace_size bytes, 4-byte aligned, caller-owned.
 * logits: n_classes int32 (Q16). winners: NULL, or n_layers * n_steps * k uint16 receiving
 * the winners of every layer and step in selection order (highest score first). */
sln_status sln_run(const sln_model *m, const uint8_t *input, size_t input_len, void *ws, size_t ws_len,
                   int32_t *logits, uint16_t *winners);

/* Index of the largest logit (ties: lowest index). */
uint32_t sln_argmax(const int32_t *logits, uint32_t n);

/* "SLN_OK", "SLN_ERR_MAGIC", ... ; "SLN_ERR_?" for unknown values. */
const char *sln_status_name(int status);

#endif /* SLN_H */
