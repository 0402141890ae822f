/* sln_lm.h -- int8 SLN character language model on the SLN runtime (C99, no malloc).
 *
 * Specified by sln/quant_lm.py (`reference_step`, `Sampler`): a `.sln` file with header
 * model_kind = SLN_KIND_CHAR_LM, n_steps 1, input_size = n_classes = vocabulary size.
 *
 *   sln_model m;  sln_lm_load(&m, bytes, len);
 *   static uint32_t st[...];   // >= sln_lm_state_size(&m) bytes, 4-byte aligned
 *   sln_lm_reset(&m, st, sizeof st);
 *   for each prompt char: sln_lm_step(&m, st, sizeof st, id, logits);
 *   sln_rng r; sln_rng_seed(&r, seed);
 *   next = sln_lm_sample(logits, m.n_classes, temp_q8, top_k, &r, cand);  // cand: n_classes uint16
 */
#ifndef SLN_LM_H
#define SLN_LM_H

#include "sln.h"

/* Load a character-LM file (untrusted bytes, the same checks as sln_load). */
sln_status sln_lm_load(sln_model *m, const void *data, size_t len);

/* Bytes of state (liquid states, last winners, scratch) one generation stream needs. */
size_t sln_lm_state_size(const sln_model *m);

/* Zero the state (start of a text). */
sln_status sln_lm_reset(const sln_model *m, void *state, size_t state_len);

/* Feed one character id (< n_classes); logits: n_classes int32 (Q16) for the next one. */
sln_status sln_lm_step(const sln_model *m, void *state, size_t state_len, uint32_t token, int32_t *logits);

/* Deterministic integer sampler: xorshift32 RNG, temperature temp_q8 / 256 (0 = greedy),
 * top_k candidates (0 = all). cand: caller scratch of n uint16. Returns the sampled id. */
typedef struct sln_rng {
  uint32_t s;
} sln_rng;
void sln_rng_seed(sln_rng *r, uint32_t seed);
uint32_t sln_rng_next(sln_rng *r);
uint32_t sln_lm_sample(const int32_t *logits, uint32_t n, int32_t temp_q8, uint32_t top_k, sln_rng *r,
                       uint16_t *cand);

#endif /* SLN_LM_H */
