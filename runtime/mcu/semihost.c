/* semihost.c -- ARM semihosting for the Cortex-M4 firmware: r0 = operation, r1 = argument
 * block, "bkpt 0xAB"; QEMU (-semihosting-config enable=on) services it on the host. */
#include "semihost.h"

#define SYS_OPEN 0x01
#define SYS_WRITE0 0x04
#define SYS_READ 0x06
#define SYS_GET_CMDLINE 0x15
#define SYS_EXIT 0x18
#define ADP_STOPPED_APPLICATION_EXIT 0x20026
#define ADP_STOPPED_RUNTIME_ERROR 0x20023

static int semi_call(int op, const void *arg)
{
  register int r0 __asm__("r0") = op;
  register const void *r1 __asm__("r1") = arg;
  __asm__ volatile("bkpt 0xAB" : "+r"(r0) : "r"(r1) : "memory");
  return r0;
}

void semi_puts(const char *s) { (void)semi_call(SYS_WRITE0, s); }

void semi_put_u32(uint32_t v)
{
  char buf[12];
  int i = 11;
  buf[i] = '\0';
  do {
    buf[--i] = (char)('0' + v % 10u);
    v /= 10u;
  } while (v != 0u && i > 0);
  semi_puts(buf + i);
}

int semi_open_read(const char *path)
{
  size_t n = 0;
  uint32_t block[3];
  while (path[n] != '\0') n++;
  block[0] = (uint32_t)(uintptr_t)path;
  block[1] = 1u; /* "rb" */
  block[2] = (uint32_t)n;
  return semi_call(SYS_OPEN, block);
}

int semi_read(int fd, void *buf, size_t len)
{
  uint32_t block[3];
  block[0] = (uint32_t)fd;
  block[1] = (uint32_t)(uintptr_t)buf;
  block[2] = (uint32_t)len;
  return (int)len - semi_call(SYS_READ, block); /* the call returns the bytes NOT read */
}

int semi_cmdline(char *buf, size_t len)
{
  uint32_t block[2];
  block[0] = (uint32_t)(uintptr_t)buf;
  block[1] = (uint32_t)len;
  return semi_call(SYS_GET_CMDLINE, block);
}

void semi_exit(int ok)
{
  /* AArch32: the argument is the reason code itself; QEMU exits 0 only for ApplicationExit */
  (void)semi_call(SYS_EXIT, (const void *)(uintptr_t)(ok ? ADP_STOPPED_APPLICATION_EXIT : ADP_STOPPED_RUNTIME_ERROR));
  for (;;) {
  }
}
