/* sln_cli_util.h -- shared by the host command-line programs sln_cli.c and sln_lm_cli.c (not by
 * the runtime or the firmware: these helpers allocate and use POSIX stat). Header-only.
 *
 * Exit statuses of the programs (besides 0 and the sln_status values 1..11 of the runtime):
 *   64 EX_USAGE    a bad command line: unknown option, missing value, malformed or
 *                  out-of-range number (the message names the argument and its range)
 *   65 EX_DATAERR  an input file with a bad format, or larger than its stated cap
 *   66 EX_NOINPUT  an input file that cannot be opened or read ("cannot open PATH: strerror")
 *   70 EX_SOFTWARE an internal inconsistency
 *   71 EX_OSERR    out of memory
 * (the values of BSD's sysexits.h). */
#ifndef SLN_CLI_UTIL_H
#define SLN_CLI_UTIL_H

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define CLI_EX_USAGE 64
#define CLI_EX_DATAERR 65
#define CLI_EX_NOINPUT 66
#define CLI_EX_SOFTWARE 70
#define CLI_EX_OSERR 71

/* caps on what is read into memory: no valid int8 model comes near 64 MiB (the MNIST models
 * are ~50 KB), 1 GiB is 17x the 60,000 MNIST training images */
#define CLI_MAX_MODEL_BYTES ((size_t)64u << 20)
#define CLI_MAX_MODEL_TEXT "64 MiB"
#define CLI_MAX_IDX_BYTES ((size_t)1u << 30)
#define CLI_MAX_IDX_TEXT "1 GiB"

/* Read the whole file `path` (a regular file, or a pipe / device read until EOF) into a new
 * buffer *out (the caller frees it; *out is NULL on error) of *out_len bytes, at most `limit`.
 * A regular file larger than `limit` is refused by its size before anything is allocated; any
 * other file stops being read at limit + 1 bytes. On error prints one line
 * "PROG: ..." and returns the exit status (CLI_EX_*); 0 on success. */
static int cli_read_file(const char *prog, const char *what, const char *path, size_t limit,
                         const char *limit_text, unsigned char **out, size_t *out_len)
{
  FILE *f;
  struct stat sb;
  unsigned char *buf = NULL;
  size_t cap, n = 0;
  int rc = 0;
  *out = NULL;
  *out_len = 0;
  errno = 0;
  f = fopen(path, "rb");
  if (f == NULL) {
    fprintf(stderr, "%s: cannot open %s %s: %s\n", prog, what, path, strerror(errno));
    return CLI_EX_NOINPUT;
  }
  if (fstat(fileno(f), &sb) != 0) {
    fprintf(stderr, "%s: cannot read %s %s: %s\n", prog, what, path, strerror(errno));
    rc = CLI_EX_NOINPUT;
    goto done;
  }
  if (S_ISDIR(sb.st_mode)) {
    fprintf(stderr, "%s: cannot read %s %s: %s\n", prog, what, path, strerror(EISDIR));
    rc = CLI_EX_NOINPUT;
    goto done;
  }
  if (S_ISREG(sb.st_mode) && (sb.st_size < 0 || (unsigned long long)sb.st_size > (unsigned long long)limit)) {
    fprintf(stderr, "%s: %s %s is %lld bytes, over the %s limit\n", prog, what, path, (long long)sb.st_size,
            limit_text);
    rc = CLI_EX_DATAERR;
    goto done;
  }
  /* a regular file: its size + 1 (the extra byte sees EOF, or a file that grew); else grow */
  cap = S_ISREG(sb.st_mode) ? (size_t)sb.st_size + 1u : (limit < 65536u ? limit + 1u : 65536u);
  buf = (unsigned char *)malloc(cap);
  if (buf == NULL) goto oom;
  for (;;) {
    size_t got;
    if (n == cap) {
      size_t ncap = cap > (limit + 1u) / 2u ? limit + 1u : 2u * cap;
      unsigned char *nb = (unsigned char *)realloc(buf, ncap);
      if (nb == NULL) goto oom;
      buf = nb;
      cap = ncap;
    }
    errno = 0;
    got = fread(buf + n, 1, cap - n, f);
    n += got;
    if (n > limit) {
      fprintf(stderr, "%s: %s %s is over the %s limit (reading stopped there)\n", prog, what, path, limit_text);
      rc = CLI_EX_DATAERR;
      goto done;
    }
    if (got == 0) {
      if (ferror(f)) {
        fprintf(stderr, "%s: cannot read %s %s: %s\n", prog, what, path, strerror(errno ? errno : EIO));
        rc = CLI_EX_NOINPUT;
        goto done;
      }
      break;
    }
  }
  goto done;
oom:
  fprintf(stderr, "%s: out of memory reading %s %s\n", prog, what, path);
  rc = CLI_EX_OSERR;
done:
  fclose(f);
  if (rc != 0) {
    free(buf);
    return rc;
  }
  *out = buf;
  *out_len = n;
  return 0;
}

/* Parse the decimal integer `s` into *v: optional '-' (only if lo < 0), then digits only, all of
 * the string, no overflow, lo <= value <= hi. Prints "PROG: NAME: ..." and returns 0 on error. */
static int cli_parse_int(const char *prog, const char *name, const char *s, long long lo, long long hi,
                         long long *v)
{
  const char *d = (s[0] == '-' && lo < 0) ? s + 1 : s;
  char *end = NULL;
  long long x;
  if (*d >= '0' && *d <= '9') {
    errno = 0;
    x = strtoll(s, &end, 10);
    if (errno == 0 && end != NULL && *end == '\0' && x >= lo && x <= hi) {
      *v = x;
      return 1;
    }
  }
  fprintf(stderr, "%s: %s: \"%s\" is not a whole number in %lld..%lld\n", prog, name, s, lo, hi);
  return 0;
}

#endif
