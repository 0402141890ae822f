/* fuzz_load.c -- libFuzzer harness for the untrusted-file path of the runtime: sln_load of both
 * model kinds, then (on a file that loads) one inference through every entry point a program
 * uses: sln_run (dense rows), sln_step (an event list), sln_lm_step + sln_sample, sln_classify_tokens, sln_events_step.
 *
 *   make -C runtime fuzz                      clang -fsanitize=fuzzer,address,undefined, -DSLN_FLOAT
 *   build/fuzz_load -max_total_time=60 CORPUS_DIR
 *
 * Built with SLN_FLOAT, so float32 files reach the float engine as well as int8 files the
 * integer one; seeded with column-sparse files too (tests/test_fuzz.py), whose pointers and row
 * steps the loader must refuse before the step's unchecked column walks could leave a matrix. The input is copied into a buffer of exactly its size (ASan sees any read past
 * the end), once 4-byte aligned (float32 needs it) and once misaligned by one byte (int8 files
 * must load at any alignment; float32 ones must be refused with SLN_ERR_ARG, not misread).
 * Any sanitizer report, crash, or a documented-status violation aborts: libFuzzer saves the
 * input as crash-*. The harness may allocate (the runtime never does). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sln.h"

#define MAX_BUF ((size_t)64u << 20) /* workspace/state caps: larger configs are skipped */
#define T_FLOAT 3u                  /* steps given to a float32 classifier (its n_steps is 0) */

static void must(int ok, const char *what)
{
  if (!ok) {
    fprintf(stderr, "fuzz_load: violated: %s\n", what);
    abort();
  }
}

static void check_status(sln_status st, const char *what)
{
  must((int)st >= 0 && (int)st < SLN_N_STATUS, what);
}

/* deterministic pixels/values, about half of them zero (events on the others) */
static uint32_t mix(uint32_t i) { return (i * 2654435761u) >> 24; }

static void run_classifier(const sln_model *m)
{
  size_t ws_len = 0, ss = 0, n_in, i;
  uint32_t T = m->numeric == SLN_NUMERIC_INT8 ? m->n_steps : T_FLOAT, D = m->input_size, best = 0;
  void *ws = NULL, *input = NULL, *state = NULL;
  uint16_t *winners = NULL;
  float dt[T_FLOAT] = {1.0f, 0.5f, 2.0f};
  int32_t logits[SLN_MAX_CLASSES]; /* int32 or float: both 4 bytes */
  uint16_t ev_idx[2];
  int16_t ev_q[2] = {1, 255};
  float ev_f[2] = {0.5f, 1.0f};
  sln_status st;
  check_status(sln_workspace_size(m, &ws_len), "workspace_size");
  check_status(sln_state_size(m, &ss), "state_size");
  if (ws_len == 0u || ws_len > MAX_BUF || ss == 0u || ss > MAX_BUF || m->n_classes > SLN_MAX_CLASSES) return;
  n_in = (size_t)T * D;
  ws = malloc(ws_len);
  state = malloc(ss);
  input = malloc(n_in * (m->numeric == SLN_NUMERIC_INT8 ? 1u : 4u));
  winners = (uint16_t *)malloc((size_t)m->n_layers * T * m->k * sizeof *winners);
  if (ws == NULL || state == NULL || input == NULL || winners == NULL) goto out;
  for (i = 0; i < n_in; i++) {
    uint32_t v = mix((uint32_t)i);
    if (m->numeric == SLN_NUMERIC_INT8) ((uint8_t *)input)[i] = (uint8_t)(v < 128u ? 0u : v);
    else ((float *)input)[i] = v < 128u ? 0.0f : (float)v / 255.0f;
  }
  st = sln_run(m, input, n_in, NULL, ws, ws_len, logits, winners, NULL);
  must(st == SLN_OK, "sln_run of a loaded classifier");
  for (i = 0; i < (size_t)m->n_layers * T * m->k; i++)
    must(winners[i] < m->n_neurons || winners[i] == 0xFFFFu, "winner index < n_neurons");
  if (m->numeric == SLN_NUMERIC_FLOAT32) /* with elapsed times: int8 refuses dt (baked into its table) */
    must(sln_run(m, input, n_in, dt, ws, ws_len, logits, NULL, NULL) == SLN_OK, "float sln_run with dt");
  else
    must(sln_run(m, input, n_in, dt, ws, ws_len, logits, NULL, NULL) == SLN_ERR_ARG, "int8 refuses dt");
  if (m->numeric == SLN_NUMERIC_INT8) must(sln_argmax(logits, m->n_classes, &best) == SLN_OK && best < m->n_classes,
                                           "argmax");
  /* too small a workspace must be refused, not overrun */
  must(sln_run(m, input, n_in, NULL, ws, ws_len - 1u, logits, NULL, NULL) == SLN_ERR_WORKSPACE, "short ws");
  /* one streaming step on an event list (first and last input), then a bad index */
  ev_idx[0] = 0;
  ev_idx[1] = (uint16_t)(D - 1u);
  must(sln_reset(m, state, ss) == SLN_OK, "reset");
  st = sln_step(m, state, ss, m->numeric == SLN_NUMERIC_INT8 ? (const void *)ev_q : (const void *)ev_f, ev_idx, 2u,
                1.0f, NULL);
  must(st == SLN_OK, "sln_step events");
  ev_idx[1] = (uint16_t)D;
  if (D < 65536u)
    must(sln_step(m, state, ss, m->numeric == SLN_NUMERIC_INT8 ? (const void *)ev_q : (const void *)ev_f, ev_idx, 2u,
                  1.0f, NULL) != SLN_OK,
         "event index >= input_size refused");
out:
  free(ws);
  free(state);
  free(input);
  free(winners);
}

static void run_lm(const sln_model *m)
{
  size_t ss = 0;
  void *state;
  int32_t logits[SLN_MAX_CLASSES];
  uint16_t cand[SLN_MAX_CLASSES];
  uint32_t tok = 0;
  sln_rng rng;
  sln_status st;
  check_status(sln_state_size(m, &ss), "state_size");
  if (ss == 0u || ss > MAX_BUF || m->n_classes > SLN_MAX_CLASSES) return;
  state = malloc(ss);
  if (state == NULL) return;
  must(sln_reset(m, state, ss) == SLN_OK, "lm reset");
  st = sln_lm_step(m, state, ss, 0u, logits);
  must(st == SLN_OK, "lm step");
  st = sln_lm_step(m, state, ss, m->input_size - 1u, logits);
  must(st == SLN_OK, "lm step (last id)");
  must(sln_lm_step(m, state, ss, m->input_size, logits) == SLN_ERR_ARG, "lm token >= input_size refused");
  sln_rng_seed(&rng, 1u);
  must(sln_sample(logits, m->n_classes, 205, 10u, &rng, cand, &tok) == SLN_OK && tok < m->n_classes, "sample");
  must(sln_sample(logits, m->n_classes, 0, 0u, &rng, cand, &tok) == SLN_OK && tok < m->n_classes, "greedy");
  free(state);
}

static void run_events(const sln_model *m) /* event model (kind 3): steps at both dt ends, a refused input */
{
  size_t ss = 0;
  void *state;
  int16_t x[SLN_EVENT_MAX_INPUT];
  int32_t out[SLN_MAX_CLASSES];
  uint64_t sq = 0;
  uint32_t i, b = 99u;
  check_status(sln_state_size(m, &ss), "state_size");
  if (ss == 0u || ss > MAX_BUF) return;
  state = malloc(ss);
  if (state == NULL) return;
  must(sln_reset(m, state, ss) == SLN_OK, "events reset");
  for (i = 0; i < m->input_size; i++) x[i] = (int16_t)((int32_t)(i * 2909u % 65535u) - 32767);
  must(sln_events_step(m, state, ss, x, 0u, out, &sq, &b) == SLN_OK && b == 0u, "events step dt 0: bucket 0");
  must(sln_events_step(m, state, ss, x, 0xFFFFFFFFu, out, &sq, &b) == SLN_OK && b == SLN_EVENT_BUCKETS - 1u,
       "events step dt max: last bucket");
  x[0] = INT16_MIN;
  must(sln_events_step(m, state, ss, x, 5u, out, &sq, &b) == SLN_ERR_ARG, "events x = -32768 refused");
  free(state);
}

static void run_tokens(const sln_model *m) /* token classifier (kind 2): lengths 1 and n_steps, refused inputs */
{
  size_t ws_len = 0;
  void *ws;
  uint16_t tok[SLN_MAX_STEPS + 1u];
  int32_t logits[SLN_MAX_CLASSES];
  uint32_t i;
  check_status(sln_workspace_size(m, &ws_len), "workspace_size");
  if (ws_len == 0u || ws_len > MAX_BUF || m->n_classes > SLN_MAX_CLASSES) return;
  ws = malloc(ws_len);
  if (ws == NULL) return;
  for (i = 0; i <= m->n_steps; i++) tok[i] = (uint16_t)(mix(i) % m->input_size);
  must(sln_classify_tokens(m, tok, 1u, ws, ws_len, logits) == SLN_OK, "tokens: length 1");
  must(sln_classify_tokens(m, tok, m->n_steps, ws, ws_len, logits) == SLN_OK, "tokens: length n_steps");
  must(sln_classify_tokens(m, tok, 0u, ws, ws_len, logits) == SLN_ERR_ARG, "tokens: length 0 refused");
  must(sln_classify_tokens(m, tok, m->n_steps + 1u, ws, ws_len, logits) == SLN_ERR_ARG, "tokens: too long refused");
  tok[0] = (uint16_t)m->input_size;
  must(sln_classify_tokens(m, tok, 1u, ws, ws_len, logits) == SLN_ERR_ARG, "tokens: id >= input_size refused");
  free(ws);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  sln_model m;
  uint8_t *aligned = (uint8_t *)malloc(size ? size : 1u); /* malloc: aligned for any type */
  uint8_t *raw = (uint8_t *)malloc(size + 1u);
  uint8_t *odd;
  sln_status st;
  if (aligned == NULL || raw == NULL) {
    free(aligned);
    free(raw);
    return 0;
  }
  odd = raw + 1;
  if (size) {
    memcpy(aligned, data, size);
    memcpy(odd, data, size);
  }
  st = sln_load(&m, aligned, size, SLN_KIND_CLASSIFIER);
  check_status(st, "load classifier");
  if (st == SLN_OK) run_classifier(&m);
  st = sln_load(&m, aligned, size, SLN_KIND_CHAR_LM);
  check_status(st, "load lm");
  if (st == SLN_OK) {
    must(m.numeric == SLN_NUMERIC_INT8, "a loaded LM is int8");
    run_lm(&m);
  }
  st = sln_load(&m, aligned, size, SLN_KIND_TOKEN_CLASSIFIER);
  check_status(st, "load token classifier");
  if (st == SLN_OK) {
    must(m.numeric == SLN_NUMERIC_INT8, "a loaded token classifier is int8");
    run_tokens(&m);
  }
  st = sln_load(&m, aligned, size, SLN_KIND_EVENT_MODEL);
  check_status(st, "load event model");
  if (st == SLN_OK) {
    must(m.numeric == SLN_NUMERIC_INT8 && m.input_size <= SLN_EVENT_MAX_INPUT, "a loaded event model is int8");
    run_events(&m);
  }
  /* misaligned: int8 files load (and run) the same, float32 ones are refused */
  st = sln_load(&m, odd, size, SLN_KIND_CLASSIFIER);
  check_status(st, "load classifier (misaligned)");
  if (st == SLN_OK) {
    must(m.numeric == SLN_NUMERIC_INT8, "a misaligned float32 file refused");
    run_classifier(&m);
  }
  free(aligned);
  free(raw);
  return 0;
}
