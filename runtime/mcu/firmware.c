/* firmware.c -- classify MNIST images on a Cortex-M4 (QEMU mps2-an386) with the int8 SLN
 * runtime. The model is compiled in (sln_model_data.c, written by `python export.py`) and
 * parsed by the same loader as on the host; images are streamed one at a time from a host
 * IDX file over semihosting. Command line (qemu -semihosting-config ...,arg=...):
 *     firmware IMAGES.idx N
 * Prints "<index> <prediction>" per image (the host CLI's format), then
 * "insn_ticks" (sum over the images of the SysTick ticks spent in sln_run), "insn_ticks_max",
 * "calib", "stack_used" and "workspace" lines for the measurements. Run under
 * `qemu-system-arm -icount shift=0`, one tick is 40 guest instructions (see docs/MCU.md). */
#include <stdint.h>
#include <string.h>

#include "board.h"
#include "sln.h"
#include "sln_model_data.h"



static uint32_t workspace[(SLN_MODEL_WORKSPACE_BYTES + 3u) / 4u]; /* caller-owned, static */
static uint8_t image[SLN_MODEL_INPUT_BYTES];
static int32_t logits[SLN_MODEL_N_CLASSES];
static sln_model model;
static char cmdline[256];

int main(void)
{
  char *args[3] = {0, 0, 0};
  uint8_t hdr[16];
  uint32_t n, i, total = 0, worst = 0, nargs = 0, pred = 0;
  size_t need = 0;
  int fd, st;

  if (read_args(cmdline, sizeof cmdline, args, 3, &nargs) != 0) return fail("no command line");
  if (nargs < 3) return fail("usage: firmware IMAGES.idx N");
  if (parse_u32(args[2], 100000000u, &n)) return fail("N must be a whole number of images in 0..100000000");
  st = sln_load(&model, sln_model_data, sln_model_data_len, SLN_KIND_CLASSIFIER);
  if (st != SLN_OK) return fail(sln_status_name(st));
  if (sln_workspace_size(&model, &need) != SLN_OK || need > sizeof workspace || model.n_classes > SLN_MODEL_N_CLASSES ||
      (size_t)model.n_steps * model.input_size != sizeof image)
    return fail("model does not match the generated sizes");
  fd = semi_open_read(args[1]);
  if (fd < 0 || semi_read(fd, hdr, 16) != 16) return fail("cannot read the IDX image file");
  if (hdr[0] != 0 || hdr[1] != 0 || hdr[2] != 8 || hdr[3] != 3 ||
      (uint32_t)hdr[8] * 16777216u + hdr[9] * 65536u + hdr[10] * 256u + hdr[11] *
          ((uint32_t)hdr[12] * 16777216u + hdr[13] * 65536u + hdr[14] * 256u + hdr[15]) != sizeof image)
    return fail("not a uint8 IDX image file of the model's input size");
  systick_start();
  for (i = 0; i < n; i++) {
    uint32_t t0, dt;
    if (semi_read(fd, image, sizeof image) != (int)sizeof image) return fail("image file too short");
    t0 = SYST_CVR;
    st = sln_run(&model, image, sizeof image, NULL, workspace, sizeof workspace, logits, NULL, NULL);
    dt = ticks_since(t0);
    if (st == SLN_OK) st = sln_argmax(logits, model.n_classes, &pred);
    if (st != SLN_OK) return fail(sln_status_name(st));
    total += dt;
    if (dt > worst) worst = dt;
    semi_put_u32(i);
    semi_puts(" ");
    semi_put_u32(pred);
    semi_puts("\n");
  }
  semi_puts("insn_ticks ");
  semi_put_u32(total);
  semi_puts(" images ");
  semi_put_u32(n);
  put_trailer(worst, "workspace", (uint32_t)need);
  return 0;
}
