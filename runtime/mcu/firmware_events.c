/* firmware_events.c -- score a packet-feature stream with the int8 event model (the unsupervised packet
 * detector: one packet per step, its dt selects a gate table, reconstruction score) on a Cortex-M4
 * (QEMU mps2-an386). The model is compiled in (sln_model_data.c, written by
 * `python -m sln.security.ids_int8 export`) and parsed by the runtime's bounds-checked loader; packets
 * are streamed from a host file over semihosting, each as a u32 dt_us then input_size int16 features,
 * little-endian (`python -m sln.security.ids_int8 stream` writes it). One state runs through the stream.
 * Command line (qemu -semihosting-config ...,arg=...):
 *     firmware_events PACKETS.bin N
 * Prints "<index> <S> <bucket>" per packet (S = the score's sum of squares, intspec_events.events_step;
 * a refused packet prints "<index> error <status>"), then "insn_ticks <T> packets <N>" (SysTick ticks
 * spent in sln_events_step; 40 guest instructions per tick under -icount shift=0), "insn_ticks_max",
 * "calib", "stack_used" and "state" lines. */
#include <stdint.h>
#include <string.h>

#include "board.h"
#include "sln.h"
#include "sln_model_data.h"


static uint32_t state[(SLN_MODEL_WORKSPACE_BYTES + 3u) / 4u]; /* caller-owned, static (the state size) */
static uint8_t raw[4u + 2u * SLN_EVENT_MAX_INPUT];
static int16_t x[SLN_EVENT_MAX_INPUT];
static int32_t out[SLN_MODEL_N_CLASSES];
static sln_model model;
static char cmdline[256];

static void put_u64(uint64_t v) /* decimal */
{
  char buf[21];
  int i = 20;
  buf[i] = '\0';
  do {
    buf[--i] = (char)('0' + (int)(v % 10u));
    v /= 10u;
  } while (v != 0u && i > 0);
  semi_puts(buf + i);
}

int main(void)
{
  char *args[3] = {0, 0, 0};
  uint32_t n, i, total = 0, worst = 0, nargs = 0, rec;
  size_t need = 0;
  int fd, st;

  if (read_args(cmdline, sizeof cmdline, args, 3, &nargs) != 0) return fail("no command line");
  if (nargs < 3) return fail("usage: firmware_events PACKETS.bin N");
  if (parse_u32(args[2], 100000000u, &n)) return fail("N must be a whole number of packets in 0..100000000");
  st = sln_load(&model, sln_model_data, sln_model_data_len, SLN_KIND_EVENT_MODEL);
  if (st != SLN_OK) return fail(sln_status_name(st));
  if (sln_state_size(&model, &need) != SLN_OK || need > sizeof state || model.n_classes > SLN_MODEL_N_CLASSES)
    return fail("model does not match the generated sizes");
  if (sln_reset(&model, state, sizeof state) != SLN_OK) return fail("reset");
  rec = 4u + 2u * model.input_size;
  fd = semi_open_read(args[1]);
  if (fd < 0) return fail("cannot open the packet file");
  systick_start();
  for (i = 0; i < n; i++) {
    uint32_t t0, dt, dt_us, b = 0;
    uint64_t sq = 0;
    if (semi_read(fd, raw, rec) != (int)rec) return fail("packet file too short");
    memcpy(&dt_us, raw, 4); /* little-endian target, as the file */
    memcpy(x, raw + 4, 2u * model.input_size);
    t0 = SYST_CVR;
    st = sln_events_step(&model, state, sizeof state, x, dt_us, out, &sq, &b);
    dt = ticks_since(t0);
    semi_put_u32(i);
    if (st != SLN_OK) {
      semi_puts(" error ");
      semi_puts(sln_status_name(st));
      semi_puts("\n");
      continue;
    }
    total += dt;
    if (dt > worst) worst = dt;
    semi_puts(" ");
    put_u64(sq);
    semi_puts(" ");
    semi_put_u32(b);
    semi_puts("\n");
  }
  semi_puts("insn_ticks ");
  semi_put_u32(total);
  semi_puts(" packets ");
  semi_put_u32(n);
  put_trailer(worst, "state", (uint32_t)need);
  return 0;
}
