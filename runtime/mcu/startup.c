/* startup.c -- Cortex-M4 vector table and reset handler for QEMU mps2-an386.
 * Copies .data from flash, zeroes .bss, paints the stack (to measure its high-water mark)
 * and calls main. No FPU set-up: the firmware uses no floating point. */
#include <stdint.h>

#include "semihost.h"

extern uint32_t _sidata, _sdata, _edata, _sbss, _ebss, _sstack, _estack;
int main(void);
void Reset_Handler(void);
void Fault_Handler(void);

#define STACK_PAINT 0xC0FFEE11u

typedef union {
  void (*fn)(void);
  uint32_t *sp;
} vector_t;

/* 16 system exceptions; the firmware enables no peripheral interrupts */
__attribute__((section(".isr_vector"), used)) const vector_t sln_vectors[16] = {
  {.sp = &_estack}, {.fn = Reset_Handler}, {.fn = Fault_Handler}, {.fn = Fault_Handler},
  {.fn = Fault_Handler}, {.fn = Fault_Handler}, {.fn = Fault_Handler}, {.fn = 0},
  {.fn = 0}, {.fn = 0}, {.fn = 0}, {.fn = Fault_Handler},
  {.fn = Fault_Handler}, {.fn = 0}, {.fn = Fault_Handler}, {.fn = Fault_Handler},
};

void Fault_Handler(void)
{
  semi_puts("FAULT\n");
  semi_exit(0);
}

/* bytes of the stack region ever written (stack region painted at reset) */
uint32_t sln_stack_used(void)
{
  const uint32_t *p = &_sstack;
  while (p < &_estack && *p == STACK_PAINT) p++;
  return (uint32_t)((uintptr_t)&_estack - (uintptr_t)p);
}

void Reset_Handler(void)
{
  uint32_t *src = &_sidata, *dst = &_sdata, *sp;
  while (dst < &_edata) *dst++ = *src++;
  for (dst = &_sbss; dst < &_ebss; dst++) *dst = 0u;
  __asm__ volatile("mov %0, sp" : "=r"(sp));
  for (dst = &_sstack; dst < sp - 16; dst++) *dst = STACK_PAINT;
  semi_exit(main() == 0);
}
