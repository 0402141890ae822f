/* firmware_lm.c -- generate text with the int8 SLN character LM on a Cortex-M4 (QEMU
 * mps2-an386). The model and its vocabulary are compiled in (sln_model_data.c, written by
 * sln.export.export_lm) and parsed by the runtime's bounds-checked loader.
 * Command line (qemu -semihosting-config ...,arg=...):
 *     firmware_lm N_TOKENS SEED TEMP_Q8 TOP_K PROMPT_ID...
 * Prints "tokens id id ..." (the host sln_lm_cli's line), "text <characters>", then
 * "insn_ticks <T> tokens <N>" (SysTick ticks spent in sample + step over the N generated
 * tokens; 40 guest instructions per tick under -icount shift=0), "insn_ticks_max",
 * "calib", "stack_used" and "state" lines. */
#include <stdint.h>
#include <string.h>

#include "board.h"
#include "sln.h"
#include "sln_model_data.h"


#define MAX_ARGS 64

static uint32_t state[(SLN_MODEL_WORKSPACE_BYTES + 3u) / 4u];
static int32_t logits[SLN_MODEL_N_CLASSES];
static uint16_t cand[SLN_MODEL_N_CLASSES];
static sln_model model;
static char cmdline[512];

int main(void)
{
  char *args[MAX_ARGS];
  char ch[2] = {0, 0};
  static char text[1024];
  uint32_t nargs = 0, n_tok, i, a, total = 0, worst = 0, nt = 0, top_k, seed, temp;
  int32_t temp_q8;
  size_t need = 0;
  sln_rng rng;
  int st;

  if (read_args(cmdline, sizeof cmdline, args, MAX_ARGS, &nargs) != 0) return fail("no command line");
  if (nargs < 6) return fail("usage: firmware_lm N_TOKENS SEED TEMP_Q8 TOP_K PROMPT_ID...");
  st = sln_load(&model, sln_model_data, sln_model_data_len, SLN_KIND_CHAR_LM);
  if (st != SLN_OK) return fail(sln_status_name(st));
  if (sln_state_size(&model, &need) != SLN_OK || need > sizeof state || model.n_classes > SLN_MODEL_N_CLASSES)
    return fail("model does not match the generated sizes");
  /* the host CLI's ranges: N_TOKENS 0..10^7, SEED 0..2^32-1, TEMP_Q8 0..65536, TOP_K 0..vocab */
  if (parse_u32(args[1], 10000000u, &n_tok)) return fail("N_TOKENS must be a whole number in 0..10000000");
  if (parse_u32(args[2], 0xFFFFFFFFu, &seed)) return fail("SEED must be a whole number in 0..4294967295");
  if (parse_u32(args[3], 65536u, &temp)) return fail("TEMP_Q8 must be a whole number in 0..65536");
  if (parse_u32(args[4], model.n_classes, &top_k)) return fail("TOP_K must be a whole number in 0..vocab size");
  for (a = 5; a < nargs; a++) {
    uint32_t id;
    if (parse_u32(args[a], model.n_classes - 1u, &id)) return fail("PROMPT_ID must be a token id in 0..vocab-1");
  }
  temp_q8 = (int32_t)temp;
  sln_rng_seed(&rng, seed);
  sln_reset(&model, state, sizeof state);
  semi_puts("prompt ");
  for (a = 5; a < nargs; a++) {
    uint32_t id = 0;
    (void)parse_u32(args[a], model.n_classes - 1u, &id); /* checked above */
    st = sln_lm_step(&model, state, sizeof state, id, logits);
    if (st != SLN_OK) return fail(sln_status_name(st));
    ch[0] = sln_lm_vocab[id];
    semi_puts(ch);
  }
  semi_puts("\n");
  systick_start();
  semi_puts("tokens");
  for (i = 0; i < n_tok; i++) {
    uint32_t t0 = SYST_CVR, dt, nxt = 0;
    st = sln_sample(logits, model.n_classes, temp_q8, top_k, &rng, cand, &nxt);
    if (st != SLN_OK) return fail(sln_status_name(st));
    if (i + 1u < n_tok) {
      st = sln_lm_step(&model, state, sizeof state, nxt, logits);
      if (st != SLN_OK) return fail(sln_status_name(st));
      dt = ticks_since(t0); /* one generated token = sample + step (the last one: sample only) */
      total += dt;
      nt++;
      if (dt > worst) worst = dt;
    }
    semi_puts(" ");
    semi_put_u32(nxt);
    if (i < sizeof text - 1u) text[i] = sln_lm_vocab[nxt];
  }
  semi_puts("\ntext ");
  semi_puts(text);
  semi_puts("\ninsn_ticks ");
  semi_put_u32(total);
  semi_puts(" tokens ");
  semi_put_u32(nt);
  put_trailer(worst, "state", (uint32_t)need);
  return 0;
}
