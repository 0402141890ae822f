/* sln_ids_events.c -- host loop of `sln detect-net` over an int8 event model (driven by sln/security/ids_int8_net.py).
 *
 * A block of n packets, already encoded as the firmware reads them (runtime/mcu/firmware_events.c: input_size
 * int16 features x_q and a uint32 dt in microseconds each; sln/security/ids_int8.py int_inputs), stepped
 * through sln_events_step of runtime/sln.c with one state carried through the block (the link-wide state):
 * per packet the score S = sum e_c^2 and the dt bucket. The same calls the firmware makes, one ctypes call per
 * block instead of one per packet. Host only; not in the MCU build.
 */
#include <stdint.h>

#include "sln.h"

/* -> SLN_OK, or the first refusal of sln_events_step; *done = packets stepped before it. */
int ids_events_run(const sln_model *m, void *state, size_t state_len, const int16_t *x, const uint32_t *dt_us,
                   uint32_t n, uint64_t *sq, uint8_t *bucket, uint32_t *done)
{
  int32_t out[SLN_EVENT_MAX_INPUT];
  uint32_t i, b = 0;
  sln_status st = SLN_OK;
  if (m == NULL || x == NULL || dt_us == NULL || sq == NULL || done == NULL) return (int)SLN_ERR_ARG;
  if (m->model_kind != SLN_KIND_EVENT_MODEL || m->n_classes > SLN_EVENT_MAX_INPUT) return (int)SLN_ERR_ARG;
  for (i = 0; i < n; i++) {
    st = sln_events_step(m, state, state_len, x + (size_t)i * m->input_size, dt_us[i], out, sq + i, &b);
    if (st != SLN_OK) break;
    if (bucket != NULL) bucket[i] = (uint8_t)b;
  }
  *done = i;
  return (int)st;
}
