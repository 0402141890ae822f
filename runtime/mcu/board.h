/* board.h -- QEMU mps2-an386 (Cortex-M4) helpers shared by the firmware (classifier, LM,
 * token classifier, packet events):
 * the SysTick registers that count instructions under `-icount shift=0`, argument parsing
 * and error reporting over semihosting. Header-only (static inline) so each firmware is
 * compiled as one unit exactly as before. */
#ifndef SLN_BOARD_H
#define SLN_BOARD_H

#include <stddef.h>
#include <stdint.h>

#include "semihost.h"

/* SysTick (ARMv7-M system timer), clocked by the 25 MHz CPU clock of the board model */
#define SYST_CSR (*(volatile uint32_t *)0xE000E010u)
#define SYST_RVR (*(volatile uint32_t *)0xE000E014u)
#define SYST_CVR (*(volatile uint32_t *)0xE000E018u)

/* ticks elapsed since t0 on the 24-bit down-counter */
static inline uint32_t ticks_since(uint32_t t0) { return (t0 - SYST_CVR) & 0xFFFFFFu; }

/* A decimal argument in [0, max] -> *out, 0; anything else (empty, a sign, a non-digit, a value above
 * max, which also catches 32-bit wrap-around: 4294967297 is refused, not read as 1) -> 1, *out untouched.
 * The same ranges as the host CLIs (runtime/sln_cli_util.h), so both refuse the same command lines. */
static inline int parse_u32(const char *s, uint32_t max, uint32_t *out)
{
  uint32_t v = 0;
  if (*s == '\0') return 1;
  for (; *s != '\0'; s++) {
    uint32_t d;
    if (*s < '0' || *s > '9') return 1;
    d = (uint32_t)(*s - '0');
    if (d > max || v > (max - d) / 10u) return 1; /* v * 10 + d > max */
    v = v * 10u + d;
  }
  *out = v;
  return 0;
}

/* The semihosting command line, split in place on spaces into at most `max` words: args[0..*n) -> 0;
 * no command line -> 1. `buf` (len bytes) must outlive args. */
static inline int read_args(char *buf, size_t len, char **args, uint32_t max, uint32_t *n)
{
  char *p;
  *n = 0;
  if (semi_cmdline(buf, len) != 0) return 1;
  for (p = buf; *p != '\0' && *n < max; p++) {
    if (*p == ' ') continue;
    args[(*n)++] = p;
    while (*p != '\0' && *p != ' ') p++;
    if (*p == '\0') break;
    *p = '\0';
  }
  return 0;
}

/* SysTick free-running from its 24-bit top, clocked by the CPU: ticks_since() measures from here on */
static inline void systick_start(void)
{
  SYST_RVR = 0xFFFFFFu;
  SYST_CVR = 0u;
  SYST_CSR = 5u; /* enable, CPU clock, no interrupt */
}

static inline int fail(const char *msg)
{
  semi_puts("error: ");
  semi_puts(msg);
  semi_puts("\n");
  return 1;
}

uint32_t sln_stack_used(void); /* startup.c: bytes of the stack ever written */

/* 2 * n instructions (subs + bne per iteration): calibrates ticks per instruction */
static inline uint32_t calibrate(uint32_t n)
{
  uint32_t t0 = SYST_CVR;
  __asm__ volatile("1: subs %0, %0, #1\n bne 1b" : "+r"(n) : : "cc");
  return ticks_since(t0);
}

/* The lines every firmware ends with, after its records and its "insn_ticks" total: the worst case,
 * the calibration of ticks per instruction, the stack used and the caller-owned memory (`mem_name`:
 * "workspace" or "state", `mem_bytes` bytes). */
static inline void put_trailer(uint32_t worst, const char *mem_name, uint32_t mem_bytes)
{
  semi_puts("\ninsn_ticks_max ");
  semi_put_u32(worst);
  semi_puts("\ncalib 200000 insn ticks ");
  semi_put_u32(calibrate(100000u));
  semi_puts("\nstack_used ");
  semi_put_u32(sln_stack_used());
  semi_puts("\n");
  semi_puts(mem_name);
  semi_puts(" ");
  semi_put_u32(mem_bytes);
  semi_puts("\n");
}

#endif
