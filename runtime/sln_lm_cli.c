/* sln_lm_cli.c -- generate text ids with an int8 SLN character LM (.sln, model_kind 1).
 *
 *   sln_lm_cli MODEL.sln N_TOKENS SEED TEMP_Q8 TOP_K PROMPT_ID...
 *
 * Feeds the prompt ids, then samples N_TOKENS ids (sln_sample; temperature TEMP_Q8/256,
 * 0 = greedy; TOP_K 0 = all), each fed back. Prints "tokens id id ..." and, on stderr, the
 * state size and host time per token. Exit status: the sln_status of a failure, or 0. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sln.h"

static unsigned char *read_file(const char *path, size_t *len)
{
  FILE *f = fopen(path, "rb");
  unsigned char *buf;
  long n;
  if (f == NULL) return NULL;
  if (fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0) {
    fclose(f);
    return NULL;
  }
  buf = (unsigned char *)malloc((size_t)n + 1u);
  if (buf != NULL && fread(buf, 1, (size_t)n, f) != (size_t)n) {
    free(buf);
    buf = NULL;
  }
  fclose(f);
  *len = (size_t)n;
  return buf;
}

int main(int argc, char **argv)
{
  sln_model m;
  sln_rng rng;
  size_t len = 0, ss;
  unsigned char *data;
  uint32_t *state;
  int32_t *logits;
  uint16_t *cand;
  unsigned long n_tok, seed, top_k, i;
  long temp;
  int a, st;
  clock_t t0;
  if (argc < 7) {
    fprintf(stderr, "usage: %s MODEL.sln N_TOKENS SEED TEMP_Q8 TOP_K PROMPT_ID...\n", argv[0]);
    return 1;
  }
  data = read_file(argv[1], &len);
  if (data == NULL) {
    fprintf(stderr, "cannot read %s\n", argv[1]);
    return 1;
  }
  st = sln_load(&m, data, len, SLN_KIND_CHAR_LM);
  if (st != SLN_OK) {
    fprintf(stderr, "load: %s\n", sln_status_name(st));
    return st;
  }
  n_tok = strtoul(argv[2], NULL, 10);
  seed = strtoul(argv[3], NULL, 10);
  temp = strtol(argv[4], NULL, 10);
  top_k = strtoul(argv[5], NULL, 10);
  if (sln_state_size(&m, &ss) != SLN_OK) return 1;
  state = (uint32_t *)malloc(ss + 4u);
  logits = (int32_t *)malloc(m.n_classes * sizeof *logits);
  cand = (uint16_t *)malloc(m.n_classes * sizeof *cand);
  if (state == NULL || logits == NULL || cand == NULL) return 1;
  sln_reset(&m, state, ss);
  sln_rng_seed(&rng, (uint32_t)seed);
  for (a = 6; a < argc; a++) {
    st = sln_lm_step(&m, state, ss, (uint32_t)strtoul(argv[a], NULL, 10), logits);
    if (st != SLN_OK) {
      fprintf(stderr, "step: %s\n", sln_status_name(st));
      return st;
    }
  }
  t0 = clock();
  printf("tokens");
  for (i = 0; i < n_tok; i++) {
    uint32_t nxt = 0;
    if ((st = sln_sample(logits, m.n_classes, (int32_t)temp, (uint32_t)top_k, &rng, cand, &nxt)) != SLN_OK) {
      fprintf(stderr, "sample: %s\n", sln_status_name(st));
      return st;
    }
    printf(" %u", (unsigned)nxt);
    if (i + 1u < n_tok && (st = sln_lm_step(&m, state, ss, nxt, logits)) != SLN_OK) {
      fprintf(stderr, "step: %s\n", sln_status_name(st));
      return st;
    }
  }
  printf("\n");
  fprintf(stderr, "state %lu bytes, %.2f us/token on the host\n", (unsigned long)ss,
          n_tok ? 1e6 * (double)(clock() - t0) / CLOCKS_PER_SEC / (double)n_tok : 0.0);
  free(state);
  free(logits);
  free(cand);
  free(data);
  return 0;
}
