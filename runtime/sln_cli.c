/* sln_cli.c -- run an int8 SLN classifier (.sln) on IDX images and print predictions/accuracy.
 *
 *   sln_cli MODEL.sln --check                    validate only; exit status = sln_status
 *   sln_cli MODEL.sln IMAGES.idx [LABELS.idx] [--limit N] [--dump]
 *
 * Output: one line "<index> <prediction>" per image; with --dump also
 * "logits <i> l_0 ... l_{C-1}" and "winners <i> w..." (layer-major, step, rank), and a final
 * "accuracy <correct>/<n> <percent>" line when labels are given. IDX files must be
 * uncompressed (gunzip -k the MNIST .gz files). Buffers are allocated once before the loop.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sln.h"

static unsigned char *read_file(const char *path, size_t *len)
{
  FILE *f = fopen(path, "rb");
  unsigned char *buf = NULL;
  size_t cap = 0, n = 0;
  if (f == NULL) return NULL;
  for (;;) {
    size_t got;
    if (n == cap) {
      unsigned char *nb;
      cap = cap ? 2 * cap : 65536;
      nb = (unsigned char *)realloc(buf, cap);
      if (nb == NULL) {
        free(buf);
        fclose(f);
        return NULL;
      }
      buf = nb;
    }
    got = fread(buf + n, 1, cap - n, f);
    n += got;
    if (got == 0) break;
  }
  fclose(f);
  *len = n;
  return buf;
}

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
  for (d = 0; d < ndim; d++) total *= be32(b + 4 + 4 * d);
  if (total != (unsigned long long)(len - 4u - 4u * ndim)) return NULL;
  *count = be32(b + 4);
  *item = ndim > 1 ? (unsigned long)(total / (*count ? *count : 1)) : 1ul;
  return b + 4 + 4 * ndim;
}

int main(int argc, char **argv)
{
  const char *model_path = NULL, *img_path = NULL, *lab_path = NULL;
  unsigned char *model_buf, *img_buf = NULL, *lab_buf = NULL;
  const unsigned char *imgs, *labs = NULL;
  size_t model_len = 0, img_len = 0, lab_len = 0, ws_len, in_len;
  unsigned long n_img, item, n_lab = 0, lab_item, limit = (unsigned long)-1, i, correct = 0;
  int check = 0, dump = 0, a, st;
  sln_model m;
  void *ws;
  int32_t *logits;
  uint16_t *winners;
  clock_t t0;

  for (a = 1; a < argc; a++) {
    if (strcmp(argv[a], "--check") == 0) check = 1;
    else if (strcmp(argv[a], "--dump") == 0) dump = 1;
    else if (strcmp(argv[a], "--limit") == 0 && a + 1 < argc) limit = strtoul(argv[++a], NULL, 10);
    else if (model_path == NULL) model_path = argv[a];
    else if (img_path == NULL) img_path = argv[a];
    else if (lab_path == NULL) lab_path = argv[a];
    else {
      fprintf(stderr, "sln_cli: unexpected argument %s\n", argv[a]);
      return 64;
    }
  }
  if (model_path == NULL || (!check && img_path == NULL)) {
    fprintf(stderr, "usage: sln_cli MODEL.sln --check | sln_cli MODEL.sln IMAGES.idx [LABELS.idx] "
                    "[--limit N] [--dump]\n");
    return 64;
  }
  model_buf = read_file(model_path, &model_len);
  if (model_buf == NULL) {
    fprintf(stderr, "sln_cli: cannot read %s\n", model_path);
    return 66;
  }
  st = sln_load(&m, model_buf, model_len, SLN_KIND_CLASSIFIER);
  if (check || st != SLN_OK) {
    printf("%s %d %s\n", st == SLN_OK ? "ok" : "error", st, sln_status_name(st));
    free(model_buf);
    return st;
  }
  img_buf = read_file(img_path, &img_len);
  imgs = img_buf ? idx_body(img_buf, img_len, 3, &n_img, &item) : NULL;
  in_len = (size_t)m.n_steps * m.input_size;
  if (imgs == NULL || item != in_len) {
    fprintf(stderr, "sln_cli: %s is not an uncompressed uint8 IDX image file of %lu-pixel images\n", img_path,
            (unsigned long)in_len);
    return 65;
  }
  if (lab_path != NULL) {
    lab_buf = read_file(lab_path, &lab_len);
    labs = lab_buf ? idx_body(lab_buf, lab_len, 1, &n_lab, &lab_item) : NULL;
    if (labs == NULL || n_lab < n_img) {
      fprintf(stderr, "sln_cli: %s is not a label IDX file matching the images\n", lab_path);
      return 65;
    }
  }
  if (limit < n_img) n_img = limit;
  if (sln_workspace_size(&m, &ws_len) != SLN_OK) return 70;
  ws = malloc(ws_len);
  logits = (int32_t *)malloc(m.n_classes * sizeof *logits);
  winners = (uint16_t *)malloc((size_t)m.n_layers * m.n_steps * m.k * sizeof *winners);
  if (ws == NULL || logits == NULL || winners == NULL) return 71;
  t0 = clock();
  for (i = 0; i < n_img; i++) {
    uint32_t p = 0, c;
    size_t w;
    st = sln_run(&m, imgs + i * in_len, in_len, NULL, ws, ws_len, logits, dump ? winners : NULL, NULL);
    if (st == SLN_OK) st = sln_argmax(logits, m.n_classes, &p);
    if (st != SLN_OK) {
      fprintf(stderr, "sln_cli: image %lu: %s\n", i, sln_status_name(st));
      return st;
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
  fprintf(stderr, "sln_cli: %lu images, %.1f us/image (host), workspace %lu bytes\n", n_img,
          n_img ? 1e6 * (double)(clock() - t0) / CLOCKS_PER_SEC / (double)n_img : 0.0, (unsigned long)ws_len);
  if (labs != NULL)
    printf("accuracy %lu/%lu %.2f\n", correct, n_img, n_img ? 100.0 * (double)correct / (double)n_img : 0.0);
  free(ws);
  free(logits);
  free(winners);
  free(img_buf);
  free(lab_buf);
  free(model_buf);
  return 0;
}
