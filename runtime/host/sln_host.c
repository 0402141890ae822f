/*
 * sln_host.c -- float32 event-driven inference of a Sparse Liquid Network on the host CPU.
 *
 * The whole step loop of sln.engine lives here so that a ~20x cut in arithmetic becomes a
 * cut in wall time (a Python loop per step costs ~60 us of overhead, more than the work).
 * It is called from Python through ctypes (sln/engine.py); the equations are those of
 * sln/cell.py (module docstring), per step t and layer l with N neurons:
 *
 *   a      = b + sum_{j: x_j != 0} x_j W_in[:, j] + sum_{i in winners(t-1)} y_i W_rec[:, i]  (2N)
 *   c      = ReLU(LayerNorm(a[:N]))
 *   lambda = softplus(a[N:]) + lambda_min ;  alpha = exp(-lambda dt)
 *   h      = alpha h + (1 - alpha) c
 *   winners = top-k of boost*h (ties -> lowest index) ;  y = h on winners
 *   logits = W_o (sum_t y^L_t / T) + b_o        (only rows of neurons that fired)
 *
 * Weights are stored transposed (one contiguous row of 2N floats per input j or neuron i),
 * so an event reads exactly one row: the bytes read follow the events.
 *
 * Every operation is counted where it executes, into per-term rows of counters
 * (see SLN_* below and sln/engine.py:COUNTER_NAMES, which must list the same order).
 * A multiply by an input that is exactly 1.0 (a binary event) is executed and counted as
 * an accumulate (AC); any other nonzero input costs a multiply-accumulate (MAC).
 *
 * C99, no allocation: scratch arrays are variable-length arrays on the stack.
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

#define SLN_HOST_ABI 1

/* counter columns (per term row) */
enum {
    SLN_MAC = 0,      /* multiply-accumulates executed                           */
    SLN_AC,           /* accumulates (binary events: multiply by 1 skipped)       */
    SLN_ADD,          /* elementwise adds/subtracts                               */
    SLN_MUL,          /* elementwise multiplies                                   */
    SLN_NONLIN,       /* exp, log1p, sqrt/div                                     */
    SLN_CMP,          /* comparisons (ReLU, softplus threshold, top-k)            */
    SLN_WBYTES,       /* bytes of weights read                                    */
    SLN_ARBYTES,      /* bytes of activations/state read                          */
    SLN_AWBYTES,      /* bytes of activations/state written                       */
    SLN_EVENTS,       /* nonzero inputs consumed (input/recurrent terms)          */
    SLN_DENSE_MAC,    /* MACs a dense execution of the same term would need       */
    SLN_NZ_OUT,       /* nonzero outputs produced (winners with h != 0)           */
    SLN_NCOUNT
};
/* term rows: for layer l, 3l+0 input projection, 3l+1 recurrent, 3l+2 elementwise
 * (LayerNorm, softplus, exp, update, top-k); row 3L is the readout. */

typedef struct {
    int32_t D, N, k, has_boost;
    float lambda_min, ln_eps;
    const float *w_in_t;   /* (D, 2N) */
    const float *w_rec_t;  /* (N, 2N) */
    const float *bias;     /* (2N)    */
    const float *ln_w;     /* (N)     */
    const float *ln_b;     /* (N)     */
    const float *boost;    /* (N), used when has_boost */
} sln_layer_t;

typedef struct {
    int32_t L, N, C, D0;
    const sln_layer_t *layers;
    const float *w_out_t;  /* (N, C) */
    const float *b_out;    /* (C)    */
} sln_model_t;

int sln_host_abi(void) { return SLN_HOST_ABI; }

/* row += v * w (n floats); counts one MAC or AC per element */
static void axpy_event(float *acc, const float *w, float v, int n, uint64_t *cnt) {
    int j;
    if (v == 1.0f) {
        for (j = 0; j < n; ++j) acc[j] += w[j];
        cnt[SLN_AC] += (uint64_t)n;
    } else {
        for (j = 0; j < n; ++j) acc[j] += v * w[j];
        cnt[SLN_MAC] += (uint64_t)n;
    }
    cnt[SLN_WBYTES] += (uint64_t)n * 4u;
}

/* Top-k of score (n) into idx (k), kept sorted by score descending; equal scores keep the
 * lower index first (what a stable descending sort gives). Returns nothing; counts compares. */
static void topk(const float *score, int n, int k, int32_t *idx, float *ts, uint64_t *cmp) {
    int m = 0, i, p;
    for (i = 0; i < n; ++i) {
        float s = score[i];
        if (m == k) {
            ++*cmp;
            if (!(s > ts[k - 1])) continue;
            p = k - 1;
        } else {
            p = m++;
        }
        while (p > 0) {
            ++*cmp;
            if (ts[p - 1] >= s) break;
            ts[p] = ts[p - 1];
            idx[p] = idx[p - 1];
            --p;
        }
        ts[p] = s;
        idx[p] = i;
    }
}

/*
 * One step of one layer.
 *  in_dense != NULL: layer-0 input, a dense vector of D values scanned for nonzeros;
 *  else in_idx/in_val/in_n: sparse events from the layer below.
 *  h (N) state; widx/wval/wn: this layer's previous nonzero winners (in), new ones (out).
 *  cnt: this layer's 3 counter rows.
 */
static void layer_step(const sln_layer_t *ly, const float *in_dense, const int32_t *in_idx,
                       const float *in_val, int32_t in_n, float dt, float *h, int32_t *widx,
                       float *wval, int32_t *wn, uint64_t *cnt) {
    const int N = ly->N, N2 = 2 * ly->N, D = ly->D, k = ly->k;
    uint64_t *ci = cnt, *cr = cnt + SLN_NCOUNT, *ce = cnt + 2 * SLN_NCOUNT;
    float a[2 * N], score[N], ts[k];
    int32_t top[k];
    int j, i;

    /* --- input projection: bias, then one weight row per nonzero input --- */
    memcpy(a, ly->bias, sizeof(float) * (size_t)N2);
    ci[SLN_WBYTES] += (uint64_t)N2 * 4u;
    ci[SLN_DENSE_MAC] += (uint64_t)D * (uint64_t)N2;
    if (in_dense) {
        ci[SLN_ARBYTES] += (uint64_t)D * 4u;          /* scan of the input vector */
        for (j = 0; j < D; ++j) {
            float v = in_dense[j];
            if (v != 0.0f) {
                axpy_event(a, ly->w_in_t + (size_t)j * (size_t)N2, v, N2, ci);
                ci[SLN_EVENTS]++;
            }
        }
    } else {
        ci[SLN_ARBYTES] += (uint64_t)in_n * 8u;       /* (index, value) events */
        for (j = 0; j < in_n; ++j) {
            axpy_event(a, ly->w_in_t + (size_t)in_idx[j] * (size_t)N2, in_val[j], N2, ci);
        }
        ci[SLN_EVENTS] += (uint64_t)in_n;
    }
    /* --- recurrent projection: one row per previous nonzero winner --- */
    cr[SLN_DENSE_MAC] += (uint64_t)N * (uint64_t)N2;
    cr[SLN_ARBYTES] += (uint64_t)*wn * 8u;
    for (j = 0; j < *wn; ++j) {
        axpy_event(a, ly->w_rec_t + (size_t)widx[j] * (size_t)N2, wval[j], N2, cr);
    }
    cr[SLN_EVENTS] += (uint64_t)*wn;
    ce[SLN_AWBYTES] += (uint64_t)N2 * 4u;             /* pre-activation written ... */
    ce[SLN_ARBYTES] += (uint64_t)N2 * 4u;             /* ... and read back           */

    /* --- LayerNorm statistics over u = a[:N] (double accumulators for stability) --- */
    {
        double s = 0.0, s2 = 0.0;
        float mean, rstd;
        for (i = 0; i < N; ++i) s += a[i];
        mean = (float)(s / N);
        for (i = 0; i < N; ++i) {
            double d = (double)a[i] - mean;
            s2 += d * d;
        }
        rstd = 1.0f / sqrtf((float)(s2 / N) + ly->ln_eps);
        ce[SLN_ADD] += (uint64_t)N + 2u * (uint64_t)N + 1u;  /* sum; sub+add; +eps */
        ce[SLN_MUL] += (uint64_t)N + 2u;                      /* squares; two /N    */
        ce[SLN_NONLIN] += 1u;                                 /* 1/sqrt             */
        ce[SLN_WBYTES] += (uint64_t)N * 8u;                   /* ln_w, ln_b         */
        ce[SLN_ARBYTES] += (uint64_t)N * 4u;                  /* h read             */
        ce[SLN_AWBYTES] += (uint64_t)N * 4u;                  /* h written          */

        /* --- candidate, decay rate, liquid update --- */
        {
            uint64_t nsp = 0;
            for (i = 0; i < N; ++i) {
                float c = (a[i] - mean) * rstd * ly->ln_w[i] + ly->ln_b[i];
                float v = a[N + i], sp, lam, alpha;
                c = c > 0.0f ? c : 0.0f;
                if (v > 20.0f) {
                    sp = v;   /* softplus threshold, as torch.nn.functional.softplus */
                } else {
                    sp = log1pf(expf(v));
                    ++nsp;
                }
                lam = sp + ly->lambda_min;
                alpha = expf(-lam * dt);
                h[i] = alpha * h[i] + (1.0f - alpha) * c;
            }
            /* per neuron: LN sub, +b, +lambda_min, (1-alpha), final add = 5 adds;
             * *rstd, *w, lam*dt, alpha*h, (1-alpha)*c = 5 muls; exp(alpha) = 1 nonlin;
             * ReLU and softplus threshold = 2 compares; exp+log1p where not thresholded */
            ce[SLN_ADD] += 5u * (uint64_t)N;
            ce[SLN_MUL] += 5u * (uint64_t)N;
            ce[SLN_NONLIN] += (uint64_t)N + 2u * nsp;
            ce[SLN_CMP] += 2u * (uint64_t)N;
        }
    }

    /* --- k-winners-take-all; only nonzero winners become events --- */
    *wn = 0;
    if (k >= N) {
        for (i = 0; i < N; ++i) {
            if (h[i] != 0.0f) {
                widx[*wn] = i;
                wval[*wn] = h[i];
                ++*wn;
            }
        }
        ce[SLN_CMP] += (uint64_t)N;
    } else {
        const float *sc = h;
        if (ly->has_boost) {
            for (i = 0; i < N; ++i) score[i] = h[i] * ly->boost[i];
            ce[SLN_MUL] += (uint64_t)N;
            ce[SLN_WBYTES] += (uint64_t)N * 4u;
            sc = score;
        }
        topk(sc, N, k, top, ts, &ce[SLN_CMP]);
        for (j = 0; j < k; ++j) {
            float v = h[top[j]];
            if (v != 0.0f) {
                widx[*wn] = top[j];
                wval[*wn] = v;
                ++*wn;
            }
        }
        ce[SLN_CMP] += (uint64_t)k;
    }
    ce[SLN_NZ_OUT] += (uint64_t)*wn;
    ce[SLN_AWBYTES] += (uint64_t)*wn * 8u;            /* (index, value) events out */
}

/*
 * One step of all layers (streaming). x (D0); h (L, N); widx/wval (L, N) (room for N events
 * per layer: a dense k = N layer can emit N); wn (L). Counters cnt ((3L+1), SLN_NCOUNT).
 */
int sln_step(const sln_model_t *m, const float *x, float dt, float *h, int32_t *widx, float *wval,
             int32_t *wn, uint64_t *cnt) {
    int l;
    if (!m || m->L < 1 || !(dt >= 0.0f)) return -1;
    for (l = 0; l < m->L; ++l) {
        const size_t off = (size_t)l * (size_t)m->N;
        if (l == 0) {
            layer_step(&m->layers[0], x, NULL, NULL, 0, dt, h, widx, wval, &wn[0], cnt);
        } else {
            /* layer l reads the events layer l-1 produced at this step */
            layer_step(&m->layers[l], NULL, widx + off - m->N, wval + off - m->N, wn[l - 1], dt,
                       h + off, widx + off, wval + off, &wn[l], cnt + (size_t)l * 3u * SLN_NCOUNT);
        }
    }
    return 0;
}

/*
 * Whole sequence from a zero state: x (T, D0), dt (T) or NULL (all 1.0) -> logits (C).
 * winners_out (T, L, N) int32 or NULL: nonzero winner indices of each step, -1 padded.
 * Returns 0, or -1 on bad arguments.
 */
int sln_run(const sln_model_t *m, const float *x, const float *dt, int32_t T, float *logits,
            uint64_t *cnt, int32_t *winners_out) {
    const int L = m->L, N = m->N, C = m->C;
    float h[L * N], wval[L * N], acc[N];
    int32_t widx[L * N], wn[L];
    unsigned char fired[N];
    uint64_t *cro = cnt + (size_t)3 * (size_t)L * SLN_NCOUNT;
    const int32_t top = L - 1;
    int t, j, c;
    if (T < 1) return -1;
    memset(h, 0, sizeof h);
    memset(acc, 0, sizeof acc);
    memset(fired, 0, sizeof fired);
    memset(wn, 0, sizeof wn);
    for (t = 0; t < T; ++t) {
        const int32_t *ti = widx + (size_t)top * N;
        const float *tv = wval + (size_t)top * N;
        if (sln_step(m, x + (size_t)t * m->D0, dt ? dt[t] : 1.0f, h, widx, wval, wn, cnt)) return -1;
        /* readout accumulator: one add per event of the top layer */
        for (j = 0; j < wn[top]; ++j) {
            acc[ti[j]] += tv[j];
            fired[ti[j]] = 1;
        }
        cro[SLN_ADD] += (uint64_t)wn[top];
        cro[SLN_ARBYTES] += (uint64_t)wn[top] * 12u;   /* event (8) + acc value (4) */
        cro[SLN_AWBYTES] += (uint64_t)wn[top] * 4u;
        cro[SLN_EVENTS] += (uint64_t)wn[top];
        if (winners_out) {
            int l;
            for (l = 0; l < L; ++l) {
                int32_t *wo = winners_out + ((size_t)t * L + l) * (size_t)N;
                for (j = 0; j < N; ++j) wo[j] = j < wn[l] ? widx[(size_t)l * N + j] : -1;
            }
        }
    }
    /* logits = b + W_o (acc / T), reading only rows of neurons that fired */
    for (c = 0; c < C; ++c) logits[c] = 0.0f;
    {
        const float inv_t = 1.0f / (float)T;
        uint64_t nf = 0;
        for (j = 0; j < N; ++j) {
            if (fired[j] && acc[j] != 0.0f) {
                const float v = acc[j] * inv_t;
                const float *w = m->w_out_t + (size_t)j * C;
                for (c = 0; c < C; ++c) logits[c] += v * w[c];
                ++nf;
            }
        }
        for (c = 0; c < C; ++c) logits[c] += m->b_out[c];
        cro[SLN_MAC] += nf * (uint64_t)C;
        cro[SLN_MUL] += nf + 1u;                          /* acc/T, and 1/T */
        cro[SLN_NONLIN] += 1u;
        cro[SLN_ADD] += (uint64_t)C;                      /* bias */
        cro[SLN_WBYTES] += nf * (uint64_t)C * 4u + (uint64_t)C * 4u;
        cro[SLN_ARBYTES] += (uint64_t)N + nf * 4u;        /* fired flags, acc values */
        cro[SLN_AWBYTES] += (uint64_t)C * 4u;
        cro[SLN_DENSE_MAC] += (uint64_t)N * (uint64_t)C;
        cro[SLN_NZ_OUT] += nf;
    }
    return 0;
}

/* B sequences (B, T, D0) -> logits (B, C); counters summed over the batch. */
int sln_run_batch(const sln_model_t *m, const float *x, int32_t B, int32_t T, float *logits,
                  uint64_t *cnt) {
    int32_t b;
    for (b = 0; b < B; ++b) {
        if (sln_run(m, x + (size_t)b * T * m->D0, NULL, T, logits + (size_t)b * m->C, cnt, NULL))
            return -1;
    }
    return 0;
}
