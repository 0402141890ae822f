/* firmware_tokens.c -- classify token sequences (the domain detector: one character id per step)
 * with the int8 SLN token classifier on a Cortex-M4 (QEMU mps2-an386). The model is compiled in
 * (sln_model_data.c, written by `python -m sln.security.detect_int8 export`) and parsed by the
 * runtime's bounds-checked loader; sequences are streamed from a host file over semihosting,
 * each as one length byte L then L token-id bytes (`detect_int8 tokens` writes it).
 * Command line (qemu -semihosting-config ...,arg=...):
 *     firmware_tokens TOKENS.bin N
 * Prints "<index> <logit0> <logit1> ..." per sequence (Q16, intspec_seq.token_forward's values; a
 * refused sequence prints "<index> error <status>"), then "insn_ticks <T> seqs <N> tokens <M>" (SysTick
 * ticks spent in sln_classify_tokens; 40 guest instructions per tick under -icount shift=0),
 * "insn_ticks_max", "calib", "stack_used" and "workspace" lines. */
#include <stdint.h>
#include <string.h>

#include "board.h"
#include "sln.h"
#include "sln_model_data.h"


static uint32_t workspace[(SLN_MODEL_WORKSPACE_BYTES + 3u) / 4u]; /* caller-owned, static */
static uint8_t raw[256];
static uint16_t tokens[256];
static int32_t logits[SLN_MODEL_N_CLASSES];
static sln_model model;
static char cmdline[256];

int main(void)
{
  char *args[3] = {0, 0, 0};
  uint32_t n, i, c, total = 0, worst = 0, nargs = 0, ntok = 0;
  size_t need = 0;
  int fd, st;

  if (read_args(cmdline, sizeof cmdline, args, 3, &nargs) != 0) return fail("no command line");
  if (nargs < 3) return fail("usage: firmware_tokens TOKENS.bin N");
  if (parse_u32(args[2], 100000000u, &n)) return fail("N must be a whole number of sequences in 0..100000000");
  st = sln_load(&model, sln_model_data, sln_model_data_len, SLN_KIND_TOKEN_CLASSIFIER);
  if (st != SLN_OK) return fail(sln_status_name(st));
  if (sln_workspace_size(&model, &need) != SLN_OK || need > sizeof workspace || model.n_classes > SLN_MODEL_N_CLASSES)
    return fail("model does not match the generated sizes");
  fd = semi_open_read(args[1]);
  if (fd < 0) return fail("cannot open the token file");
  systick_start();
  for (i = 0; i < n; i++) {
    uint32_t t0, dt, len, j;
    if (semi_read(fd, raw, 1) != 1) return fail("token file too short");
    len = raw[0];
    if (len > 0u && semi_read(fd, raw, len) != (int)len) return fail("token file too short");
    for (j = 0; j < len; j++) tokens[j] = raw[j];
    t0 = SYST_CVR;
    st = sln_classify_tokens(&model, tokens, len, workspace, sizeof workspace, logits);
    dt = ticks_since(t0);
    semi_put_u32(i);
    if (st != SLN_OK) {
      semi_puts(" error ");
      semi_puts(sln_status_name(st));
      semi_puts("\n");
      continue;
    }
    total += dt;
    ntok += len;
    if (dt > worst) worst = dt;
    for (c = 0; c < model.n_classes; c++) {
      semi_puts(logits[c] < 0 ? " -" : " ");
      semi_put_u32(logits[c] < 0 ? 0u - (uint32_t)logits[c] : (uint32_t)logits[c]);
    }
    semi_puts("\n");
  }
  semi_puts("insn_ticks ");
  semi_put_u32(total);
  semi_puts(" seqs ");
  semi_put_u32(n);
  semi_puts(" tokens ");
  semi_put_u32(ntok);
  put_trailer(worst, "workspace", (uint32_t)need);
  return 0;
}
