/* semihost.h -- ARM semihosting calls (bkpt 0xAB) used by the QEMU firmware. */
#ifndef SLN_SEMIHOST_H
#define SLN_SEMIHOST_H

#include <stddef.h>
#include <stdint.h>

void semi_puts(const char *s);                 /* SYS_WRITE0 to the host's stdout */
void semi_put_u32(uint32_t v);                 /* decimal */
int semi_open_read(const char *path);          /* SYS_OPEN "rb"; -1 on error */
int semi_read(int fd, void *buf, size_t len);  /* SYS_READ; returns bytes read */
int semi_cmdline(char *buf, size_t len);       /* SYS_GET_CMDLINE; 0 on success */
void semi_exit(int ok);                        /* SYS_EXIT: QEMU exits with 0 if ok, else 1 */

#endif
