/* gpt_step.c -- batch-1 decode step of the GPT baseline (sln/gpt.py GPTLM) in plain C, float32, KV cache.
 *
 * Not part of the SLN runtime: the streams benchmark (sln/bench/lm_streams.py) times it so that the
 * SLN's C runtime is compared with a GPT in C too, not only with PyTorch eager mode. The same
 * arithmetic as GPTLM.forward on one position: token embedding + POS_SCALE * sinusoidal position,
 * per block pre-LayerNorm (no bias, eps 1e-5), causal multi-head attention over the cached
 * positions, 4x GELU (erf) MLP, residuals; final LayerNorm; tied output embedding.
 *
 * Weights: one float array, row-major as PyTorch stores them: tok (V, d); per layer ln1 (d),
 * qkv (3d, d), proj (d, d), ln2 (d), fc (4d, d), out (d, 4d); ln_f (d).
 * KV cache: k, v each (L, max_ctx, d). scratch: 10 d + max_ctx floats. Status: 0, 1 bad argument.
 */
#include <math.h>
#include <stddef.h>
#include <stdint.h>

#define POS_SCALE 0.02f

static void layer_norm(const float *x, const float *g, uint32_t d, float *y)
{
  float mean = 0.0f, var = 0.0f, r;
  uint32_t i;
  for (i = 0; i < d; i++) mean += x[i];
  mean /= (float)d;
  for (i = 0; i < d; i++) var += (x[i] - mean) * (x[i] - mean);
  r = 1.0f / sqrtf(var / (float)d + 1e-5f);
  for (i = 0; i < d; i++) y[i] = (x[i] - mean) * r * g[i];
}

/* y (rows) = W (rows, cols) x (cols) */
static void matvec(const float *w, const float *x, uint32_t rows, uint32_t cols, float *y)
{
  uint32_t r, c;
  for (r = 0; r < rows; r++) {
    const float *wr = w + (size_t)r * cols;
    float s = 0.0f;
    for (c = 0; c < cols; c++) s += wr[c] * x[c];
    y[r] = s;
  }
}

int sln_gpt_step(const float *w, uint32_t V, uint32_t d, uint32_t L, uint32_t H, uint32_t max_ctx, float *kc,
                 float *vc, uint32_t pos, uint32_t token, float *scratch, float *logits)
{
  float *x = scratch, *h = x + d, *qkv = h + d, *o = qkv + 3 * d, *f = o + d, *att = f + 4 * d;
  const float *p;
  uint32_t i, l, hh, t, dh;
  if (w == NULL || kc == NULL || vc == NULL || scratch == NULL || logits == NULL || d == 0 || H == 0 ||
      d % H != 0 || d % 2 != 0 || pos >= max_ctx || token >= V)
    return 1;
  dh = d / H;
  for (i = 0; i < d; i += 2) { /* embedding + scaled sinusoidal position */
    float fr = expf(-logf(10000.0f) * (float)i / (float)d), a = (float)pos * fr;
    x[i] = w[(size_t)token * d + i] + POS_SCALE * sinf(a);
    x[i + 1] = w[(size_t)token * d + i + 1] + POS_SCALE * cosf(a);
  }
  p = w + (size_t)V * d;
  for (l = 0; l < L; l++) {
    const float *ln1 = p, *wqkv = ln1 + d, *wproj = wqkv + (size_t)3 * d * d, *ln2 = wproj + (size_t)d * d;
    const float *wfc = ln2 + d, *wout = wfc + (size_t)4 * d * d;
    float *kl = kc + (size_t)l * max_ctx * d, *vl = vc + (size_t)l * max_ctx * d;
    p = wout + (size_t)4 * d * d;
    layer_norm(x, ln1, d, h);
    matvec(wqkv, h, 3 * d, d, qkv);
    for (i = 0; i < d; i++) {
      kl[(size_t)pos * d + i] = qkv[d + i];
      vl[(size_t)pos * d + i] = qkv[2 * d + i];
    }
    for (hh = 0; hh < H; hh++) {
      const float *q = qkv + hh * dh;
      float mx = -INFINITY, sum = 0.0f, sc = 1.0f / sqrtf((float)dh);
      for (t = 0; t <= pos; t++) {
        const float *k = kl + (size_t)t * d + hh * dh;
        float s = 0.0f;
        for (i = 0; i < dh; i++) s += q[i] * k[i];
        att[t] = s * sc;
        if (att[t] > mx) mx = att[t];
      }
      for (t = 0; t <= pos; t++) {
        att[t] = expf(att[t] - mx);
        sum += att[t];
      }
      for (i = 0; i < dh; i++) o[hh * dh + i] = 0.0f;
      for (t = 0; t <= pos; t++) {
        const float *v = vl + (size_t)t * d + hh * dh;
        float a = att[t] / sum;
        for (i = 0; i < dh; i++) o[hh * dh + i] += a * v[i];
      }
    }
    matvec(wproj, o, d, d, h);
    for (i = 0; i < d; i++) x[i] += h[i];
    layer_norm(x, ln2, d, h);
    matvec(wfc, h, 4 * d, d, f);
    for (i = 0; i < 4 * d; i++) f[i] = 0.5f * f[i] * (1.0f + erff(f[i] * 0.70710678f));
    matvec(wout, f, d, 4 * d, h);
    for (i = 0; i < d; i++) x[i] += h[i];
  }
  layer_norm(x, p, d, h);
  matvec(w, h, V, d, logits);
  return 0;
}

/* Greedy decode of n tokens from `token` at position pos (each argmax fed back); out[i] the tokens. */
int sln_gpt_decode(const float *w, uint32_t V, uint32_t d, uint32_t L, uint32_t H, uint32_t max_ctx, float *kc,
                   float *vc, uint32_t pos, uint32_t token, uint32_t n, float *scratch, float *logits, uint32_t *out)
{
  uint32_t i, j;
  for (i = 0; i < n; i++) {
    uint32_t best = 0;
    int st = sln_gpt_step(w, V, d, L, H, max_ctx, kc, vc, pos + i, token, scratch, logits);
    if (st != 0) return st;
    for (j = 1; j < V; j++)
      if (logits[j] > logits[best]) best = j;
    out[i] = best;
    token = best;
  }
  return 0;
}
