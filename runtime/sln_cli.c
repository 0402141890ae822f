/* sln_cli.c -- run an int8 SLN classifier (.sln) on IDX images and print predictions/accuracy.
 *
 *   sln_cli MODEL.sln --check                    validate only; exit status = sln_status
 *   sln_cli MODEL.sln IMAGES.idx [LABELS.idx] [--limit N] [--dump]
 *
 * Output: one line "<index> <prediction>" per image; with --dump also
 * "logits <i> l_0 ... l_{C-1}" and "winners <i> w..." (layer-major, step, rank), and a final
 * "accuracy <correct>/<n> <percent>" line when labels are given. IDX files must be
 * uncompressed (gunzip -k the MNIST .gz files). Buffers are allocated once before the loop,
 * and freed on every exit.
 *
 * Exit status: 0; with --check, or a failing image, the sln_status (1..11); 64 a bad command
 * line (--limit N: a decimal 0 <= N <= 4294967295); 65 an IDX file that is malformed, does not
 * match the model, or is over the size cap (model 64 MiB, IDX files 1 GiB); 66 a file that
 * cannot be opened or read; 70 internal error; 71 out of memory (sln_cli_util.h).
 */
#define _POSIX_C_SOURCE 200809L /* fileno, fstat */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sln.h"
#include "sln_cli_util.h"

#define PROG "sln_cli"

static unsigned long be32(const unsigned char *p)
{
  return ((unsigned long)p[0] << 24) | ((unsigned long)p[1] << 16) | ((unsigned long)p[2] << 8) | p[3];
}

/* Validate an uncompressed IDX file of uint8 with `ndim` dims; returns item count and item size. */
static const unsigned char *idx_body(const unsigned char *b, size_t len, unsigned ndim, unsigned long *count,
                                     unsigned long *item)
{
  unsigned long long total = 1;
  unsigned d;
  if (len < 4u + 4u * ndim || b[0] != 0 || b[1] != 0 || b[2] != 0x08 || b[3] != ndim) return NULL;
  for (d = 0; d < ndim; d++) { /* stop before the product can wrap (3 dims of 2^32 would) */
    total *= be32(b + 4 + 4 * d);
    if (total > (unsigned long long)len) return NULL;
  }
  if (total != (unsigned long long)(len - 4u - 4u * ndim)) return NULL;
  *count = be32(b + 4);
  *item = ndim > 1 ? (unsigned long)(total / (*count ? *count : 1)) : 1ul;
  return b + 4 + 4 * ndim;
}

static int usage(void)
{
  fprintf(stderr, "usage: sln_cli MODEL.sln --check | sln_cli MODEL.sln IMAGES.idx [LABELS.idx] "
                  "[--limit N] [--dump]\n");
  return CLI_EX_USAGE;
}

int main(int argc, char **argv)
{
  const char *model_path = NULL, *img_path = NULL, *lab_path = NULL;
  unsigned char *model_buf = NULL, *img_buf = NULL, *lab_buf = NULL;
  const unsigned char *imgs, *labs = NULL;
  size_t model_len = 0, img_len = 0, lab_len = 0, ws_len = 0, in_len;
  unsigned long n_img = 0, item = 0, n_lab = 0, lab_item = 0, limit = 0xFFFFFFFFul, i, correct = 0;
  int check = 0, dump = 0, a, st, rc = 0;
  sln_model m;
  void *ws = NULL;
  int32_t *logits = NULL;
  uint16_t *winners = NULL;
  clock_t t0;

  for (a = 1; a < argc; a++) {
    if (strcmp(argv[a], "--check") == 0) check = 1;
    else if (strcmp(argv[a], "--dump") == 0) dump = 1;
    else if (strcmp(argv[a], "--limit") == 0) {
      long long v;
      if (a + 1 >= argc) {
        fprintf(stderr, PROG ": --limit needs a value (a number of images)\n");
        return usage();
      }
      if (!cli_parse_int(PROG, "--limit", argv[++a], 0, 0xFFFFFFFFll, &v)) return usage();
      limit = (unsigned long)v;
    } else if (argv[a][0] == '-' && argv[a][1] != '\0') {
      fprintf(stderr, PROG ": unknown option %s\n", argv[a]);
      return usage();
    } else if (model_path == NULL) model_path = argv[a];
    else if (img_path == NULL) img_path = argv[a];
    else if (lab_path == NULL) lab_path = argv[a];
    else {
      fprintf(stderr, PROG ": unexpected argument %s\n", argv[a]);
      return usage();
    }
  }
  if (model_path == NULL || (!check && img_path == NULL)) return usage();
  rc = cli_read_file(PROG, "model", model_path, CLI_MAX_MODEL_BYTES, CLI_MAX_MODEL_TEXT, &model_buf, &model_len);
  if (rc != 0) goto out;
  st = sln_load(&m, model_buf, model_len, SLN_KIND_CLASSIFIER);
  if (check || st != SLN_OK) {
    printf("%s %d %s\n", st == SLN_OK ? "ok" : "error", st, sln_status_name(st));
    rc = st;
    goto out;
  }
  rc = cli_read_file(PROG, "images", img_path, CLI_MAX_IDX_BYTES, CLI_MAX_IDX_TEXT, &img_buf, &img_len);
  if (rc != 0) goto out;
  imgs = idx_body(img_buf, img_len, 3, &n_img, &item);
  in_len = (size_t)m.n_steps * m.input_size;
  if (imgs == NULL || item != in_len) {
    fprintf(stderr, PROG ": %s is not an uncompressed uint8 IDX image file of %lu-pixel images\n", img_path,
            (unsigned long)in_len);
    rc = CLI_EX_DATAERR;
    goto out;
  }
  if (lab_path != NULL) {
    rc = cli_read_file(PROG, "labels", lab_path, CLI_MAX_IDX_BYTES, CLI_MAX_IDX_TEXT, &lab_buf, &lab_len);
    if (rc != 0) goto out;
    labs = idx_body(lab_buf, lab_len, 1, &n_lab, &lab_item);
    if (labs == NULL || n_lab < n_img) {
      fprintf(stderr, PROG ": %s is not a label IDX file matching the images\n", lab_path);
      rc = CLI_EX_DATAERR;
      goto out;
    }
  }
  if (limit < n_img) n_img = limit;
  if (sln_workspace_size(&m, &ws_len) != SLN_OK) {
    rc = CLI_EX_SOFTWARE;
    goto out;
  }
  ws = malloc(ws_len);
  logits = (int32_t *)malloc(m.n_classes * sizeof *logits);
  winners = (uint16_t *)malloc((size_t)m.n_layers * m.n_steps * m.k * sizeof *winners);
  if (ws == NULL || logits == NULL || winners == NULL) {
    fprintf(stderr, PROG ": out of memory\n");
    rc = CLI_EX_OSERR;
    goto out;
  }
  t0 = clock();
  for (i = 0; i < n_img; i++) {
    uint32_t p = 0, c;
    size_t w;
    st = sln_run(&m, imgs + i * in_len, in_len, NULL, ws, ws_len, logits, dump ? winners : NULL, NULL);
    if (st == SLN_OK) st = sln_argmax(logits, m.n_classes, &p);
    if (st != SLN_OK) {
      fprintf(stderr, PROG ": image %lu: %s\n", i, sln_status_name(st));
      rc = st;
      goto out;
    }
    printf("%lu %u\n", i, (unsigned)p);
    if (dump) {
      printf("logits %lu", i);
      for (c = 0; c < m.n_classes; c++) printf(" %ld", (long)logits[c]);
      printf("\nwinners %lu", i);
      for (w = 0; w < (size_t)m.n_layers * m.n_steps * m.k; w++) printf(" %u", (unsigned)winners[w]);
      printf("\n");
    }
    if (labs != NULL && labs[i] == p) correct++;
  }
  fprintf(stderr, PROG ": %lu images, %.1f us/image (host), workspace %lu bytes\n", n_img,
          n_img ? 1e6 * (double)(clock() - t0) / CLOCKS_PER_SEC / (double)n_img : 0.0, (unsigned long)ws_len);
  if (labs != NULL)
    printf("accuracy %lu/%lu %.2f\n", correct, n_img, n_img ? 100.0 * (double)correct / (double)n_img : 0.0);
out:
  free(ws);
  free(logits);
  free(winners);
  free(img_buf);
  free(lab_buf);
  free(model_buf);
  return rc;
}
