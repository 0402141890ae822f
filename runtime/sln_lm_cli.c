/* sln_lm_cli.c -- generate text ids with an int8 SLN character LM (.sln, model_kind 1).
 *
 *   sln_lm_cli MODEL.sln N_TOKENS SEED TEMP_Q8 TOP_K PROMPT_ID...
 *
 * Feeds the prompt ids, then samples N_TOKENS ids (sln_sample; temperature TEMP_Q8/256,
 * 0 = greedy; TOP_K 0 = all), each fed back. Prints "tokens id id ..." and, on stderr, the
 * state size and host time per token.
 *
 * Arguments: decimal integers, checked in full (every character a digit, no overflow):
 *   N_TOKENS 0..10000000, SEED 0..4294967295, TEMP_Q8 0..65536 (temperature <= 256),
 *   TOP_K 0..vocab, PROMPT_ID 0..vocab-1 (vocab = the model's n_classes), at least one.
 * Exit status: 0; the sln_status (1..11) of a failing load, step or sample; 64 a bad command
 * line (the message names the argument and its range); 65 a model file over the 64 MiB cap;
 * 66 a model file that cannot be opened or read; 70 internal; 71 out of memory
 * (sln_cli_util.h). Every buffer is freed on every exit. */
#define _POSIX_C_SOURCE 200809L /* fileno, fstat */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sln.h"
#include "sln_cli_util.h"

#define PROG "sln_lm_cli"
#define MAX_TOKENS 10000000ll
#define MAX_TEMP_Q8 65536ll

static int usage(void)
{
  fprintf(stderr, "usage: " PROG " MODEL.sln N_TOKENS SEED TEMP_Q8 TOP_K PROMPT_ID...\n"
                  "  N_TOKENS 0..%lld, SEED 0..4294967295, TEMP_Q8 0..%lld (256 = temperature 1, 0 = greedy),\n"
                  "  TOP_K 0..vocab (0 = all), PROMPT_ID 0..vocab-1\n",
          MAX_TOKENS, MAX_TEMP_Q8);
  return CLI_EX_USAGE;
}

int main(int argc, char **argv)
{
  sln_model m;
  sln_rng rng;
  size_t len = 0, ss = 0;
  unsigned char *data = NULL;
  uint32_t *state = NULL;
  int32_t *logits = NULL;
  uint16_t *cand = NULL;
  long long n_tok, seed, temp, top_k, v;
  unsigned long i;
  int a, st, rc = 0;
  clock_t t0;
  if (argc < 7) return usage();
  /* syntax first (before any file is read), the ranges that depend on the model after loading */
  if (!cli_parse_int(PROG, "N_TOKENS", argv[2], 0, MAX_TOKENS, &n_tok) ||
      !cli_parse_int(PROG, "SEED", argv[3], 0, 0xFFFFFFFFll, &seed) ||
      !cli_parse_int(PROG, "TEMP_Q8", argv[4], 0, MAX_TEMP_Q8, &temp) ||
      !cli_parse_int(PROG, "TOP_K", argv[5], 0, 65535, &top_k))
    return usage();
  for (a = 6; a < argc; a++)
    if (!cli_parse_int(PROG, "PROMPT_ID", argv[a], 0, 65535, &v)) return usage();
  rc = cli_read_file(PROG, "model", argv[1], CLI_MAX_MODEL_BYTES, CLI_MAX_MODEL_TEXT, &data, &len);
  if (rc != 0) goto out;
  st = sln_load(&m, data, len, SLN_KIND_CHAR_LM);
  if (st != SLN_OK) {
    fprintf(stderr, "load: %s\n", sln_status_name(st));
    rc = st;
    goto out;
  }
  if (top_k > (long long)m.n_classes) {
    fprintf(stderr, PROG ": TOP_K: %lld is above the vocabulary size %lu (0..%lu)\n", top_k,
            (unsigned long)m.n_classes, (unsigned long)m.n_classes);
    rc = usage();
    goto out;
  }
  for (a = 6; a < argc; a++) {
    (void)cli_parse_int(PROG, "PROMPT_ID", argv[a], 0, 65535, &v); /* checked above */
    if (v >= (long long)m.input_size) { /* the input vocabulary (= n_classes in a valid LM) */
      fprintf(stderr, PROG ": PROMPT_ID: %lld is not below the vocabulary size %lu (0..%lu)\n", v,
              (unsigned long)m.input_size, (unsigned long)m.input_size - 1ul);
      rc = usage();
      goto out;
    }
  }
  if (sln_state_size(&m, &ss) != SLN_OK) {
    rc = CLI_EX_SOFTWARE;
    goto out;
  }
  state = (uint32_t *)malloc(ss + 4u);
  logits = (int32_t *)malloc(m.n_classes * sizeof *logits);
  cand = (uint16_t *)malloc(m.n_classes * sizeof *cand);
  if (state == NULL || logits == NULL || cand == NULL) {
    fprintf(stderr, PROG ": out of memory\n");
    rc = CLI_EX_OSERR;
    goto out;
  }
  sln_reset(&m, state, ss);
  sln_rng_seed(&rng, (uint32_t)seed);
  for (a = 6; a < argc; a++) {
    (void)cli_parse_int(PROG, "PROMPT_ID", argv[a], 0, 65535, &v);
    st = sln_lm_step(&m, state, ss, (uint32_t)v, logits);
    if (st != SLN_OK) {
      fprintf(stderr, "step: %s\n", sln_status_name(st));
      rc = st;
      goto out;
    }
  }
  t0 = clock();
  printf("tokens");
  for (i = 0; i < (unsigned long)n_tok; i++) {
    uint32_t nxt = 0;
    if ((st = sln_sample(logits, m.n_classes, (int32_t)temp, (uint32_t)top_k, &rng, cand, &nxt)) != SLN_OK) {
      fprintf(stderr, "sample: %s\n", sln_status_name(st));
      rc = st;
      goto out;
    }
    printf(" %u", (unsigned)nxt);
    if (i + 1u < (unsigned long)n_tok && (st = sln_lm_step(&m, state, ss, nxt, logits)) != SLN_OK) {
      fprintf(stderr, "step: %s\n", sln_status_name(st));
      rc = st;
      goto out;
    }
  }
  printf("\n");
  fprintf(stderr, "state %lu bytes, %.2f us/token on the host\n", (unsigned long)ss,
          n_tok ? 1e6 * (double)(clock() - t0) / CLOCKS_PER_SEC / (double)n_tok : 0.0);
out:
  free(state);
  free(logits);
  free(cand);
  free(data);
  return rc;
}
