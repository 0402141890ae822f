/* sln_ids.c -- host fast path of `sln detect-net` (driven by sln/security/fastpath.py).
 *
 * pcap records -> IPv4/TCP/UDP/ICMP headers (sln/security/packets.py `parse_frame`) -> the 58 features
 * of packets.py's `Featurizer` -> the model step (sln_step of runtime/sln.c, float32) and the per-step
 * readout -> one score per packet. The featurizer does the same float64 operations in the same order
 * as the Python one (libm exp/log1p/sqrt, compiled with -ffp-contract=off), so its float32 features are
 * the same values (tests/test_security_fastpath.py checks it on the shipped capture), and its tables
 * have the same bounded semantics as packets.py's `BoundedTable`: LRU order, a hard cap, idle expiry
 * checked on every lookup, and a sweep of idle entries from the front every ttl/16 of stream time.
 *
 * Host only: the tables are malloc'd once at ids_fz_new (bounded by the caps); not in the MCU build.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sln.h"

#define IDS_NF 58
#define IDS_LINE_MAX 320u /* bytes of one JSON record, bound (ids_format) */
enum { ST_RECORDS, ST_EVENTS, ST_TRUNC_REC, ST_BAD_REC, ST_BAD_LINK, ST_NON_IPV4, ST_BAD_IP, ST_TRUNC_L4 };
#define MAX_SNAP (1u << 18)

/* ------------------------------------------------------------------ bounded LRU table */
typedef struct tab {
  uint32_t cap, mask, len, vw;
  int32_t head, tail, free_head;
  double ttl, swept;
  uint64_t *k0, *k1;
  int32_t *bucket, *hnext, *prev, *next;
  double *val;
  uint64_t evicted, expired;
} tab;

static uint32_t hash2(uint64_t a, uint64_t b)
{
  uint64_t h = a * 0x9E3779B97F4A7C15ull ^ (b + 0x632BE59BD9B4E019ull) * 0xC2B2AE3D27D4EB4Full;
  h ^= h >> 29;
  h *= 0xBF58476D1CE4E5B9ull;
  return (uint32_t)(h ^ (h >> 32));
}

static int tab_init(tab *t, uint32_t cap, double ttl, uint32_t vw)
{
  uint32_t n = cap + 1u, nb = 16u, i;
  memset(t, 0, sizeof *t);
  if (cap > (1u << 26) || vw > 32u) return -1; /* bounds the bucket-count loop below */
  while (nb < 2u * n) nb <<= 1;
  t->cap = cap, t->mask = nb - 1u, t->vw = vw, t->ttl = ttl, t->swept = -INFINITY;
  t->head = t->tail = -1;
  t->k0 = malloc(n * sizeof(uint64_t)), t->k1 = malloc(n * sizeof(uint64_t));
  t->bucket = malloc(nb * sizeof(int32_t)), t->hnext = malloc(n * sizeof(int32_t));
  t->prev = malloc(n * sizeof(int32_t)), t->next = malloc(n * sizeof(int32_t));
  t->val = calloc((size_t)n * vw, sizeof(double));
  if (!t->k0 || !t->k1 || !t->bucket || !t->hnext || !t->prev || !t->next || !t->val) return -1;
  for (i = 0; i < nb; i++) t->bucket[i] = -1;
  for (i = 0; i < n; i++) t->next[i] = (int32_t)i + 1 < (int32_t)n ? (int32_t)i + 1 : -1; /* free list */
  t->free_head = 0;
  return 0;
}

static void tab_free(tab *t)
{
  free(t->k0), free(t->k1), free(t->bucket), free(t->hnext), free(t->prev), free(t->next), free(t->val);
}

static int32_t tab_find(const tab *t, uint64_t a, uint64_t b)
{
  int32_t i = t->bucket[hash2(a, b) & t->mask];
  while (i >= 0 && (t->k0[i] != a || t->k1[i] != b)) i = t->hnext[i];
  return i;
}

static void lru_unlink(tab *t, int32_t i)
{
  if (t->prev[i] >= 0) t->next[t->prev[i]] = t->next[i]; else t->head = t->next[i];
  if (t->next[i] >= 0) t->prev[t->next[i]] = t->prev[i]; else t->tail = t->prev[i];
}

static void lru_append(tab *t, int32_t i)
{
  t->prev[i] = t->tail, t->next[i] = -1;
  if (t->tail >= 0) t->next[t->tail] = i; else t->head = i;
  t->tail = i;
}

static void tab_remove(tab *t, int32_t i)
{
  int32_t *p = &t->bucket[hash2(t->k0[i], t->k1[i]) & t->mask];
  while (*p != i) p = &t->hnext[*p];
  *p = t->hnext[i];
  lru_unlink(t, i);
  t->next[i] = t->free_head, t->free_head = i; /* value memory stays intact until reused by a put */
  t->len--;
}

/* BoundedTable.get: sweep, lookup, expire-on-lookup, move to the back. -1: absent or expired. */
static int32_t tab_get(tab *t, uint64_t a, uint64_t b, double now)
{
  int32_t i;
  if (now - t->swept > t->ttl * 0.0625) {
    t->swept = now;
    while (t->head >= 0) {
      int32_t h = t->head;
      if (now - t->val[(size_t)h * t->vw] <= t->ttl) break;
      tab_remove(t, h);
      t->expired++;
    }
  }
  i = tab_find(t, a, b);
  if (i >= 0) {
    if (now - t->val[(size_t)i * t->vw] > t->ttl) {
      tab_remove(t, i);
      t->expired++;
      return -1;
    }
    lru_unlink(t, i);
    lru_append(t, i);
  }
  return i;
}

/* BoundedTable.put of a new key (values zeroed), then LRU eviction past the cap. */
static int32_t tab_put(tab *t, uint64_t a, uint64_t b)
{
  int32_t i = t->free_head, *bk;
  t->free_head = t->next[i];
  t->k0[i] = a, t->k1[i] = b;
  bk = &t->bucket[hash2(a, b) & t->mask];
  t->hnext[i] = *bk, *bk = i;
  lru_append(t, i);
  memset(&t->val[(size_t)i * t->vw], 0, t->vw * sizeof(double));
  t->len++;
  while (t->len > t->cap) {
    tab_remove(t, t->head); /* cap 0 evicts the new entry: its values stay readable until the next put */
    t->evicted++;
  }
  return i;
}

/* ------------------------------------------------------------------ featurizer */
typedef struct ids_fz {
  tab hosts, chans, flows;
  double last_ts, log_len;
  int has_last;
  int64_t next_flow_id, records;
} ids_fz;

/* value layouts (doubles): host [last, stats 9, new-flow weights 3]; chan [last, size stats 9, gap
 * stats 9]; flow [last, first, n, initiator addr, initiator port, flow id, stats 9] */
#define HOST_VW 13u
#define CHAN_VW 19u
#define FLOW_VW 15u

ids_fz *ids_fz_new(uint32_t host_cap, uint32_t chan_cap, uint32_t flow_cap, double host_ttl, double flow_ttl);
void ids_fz_free(ids_fz *fz);
void ids_fz_sizes(const ids_fz *fz, uint64_t *out);
int ids_process(ids_fz *fz, const uint8_t *buf, size_t len, int big_endian, double frac, uint32_t link,
                int do_feat, uint32_t max_ev, float *x, double *tsdt, int64_t *meta, uint64_t *stats,
                size_t *consumed, uint32_t *n_out);
int ids_score(const sln_model *m, void *state, size_t state_len, const float *x, const double *dt, uint32_t n,
              const float *inv_scale, float clip, double dt_scale, const float *w_out, const float *b_out,
              const double *weight, int recon, double *scores, uint64_t *counters);

ids_fz *ids_fz_new(uint32_t host_cap, uint32_t chan_cap, uint32_t flow_cap, double host_ttl, double flow_ttl)
{
  ids_fz *fz = calloc(1, sizeof *fz);
  if (!fz) return NULL;
  if (tab_init(&fz->hosts, host_cap, host_ttl, HOST_VW) || tab_init(&fz->chans, chan_cap, host_ttl, CHAN_VW) ||
      tab_init(&fz->flows, flow_cap, flow_ttl, FLOW_VW)) {
    ids_fz_free(fz);
    return NULL;
  }
  fz->log_len = 1.0 / log1p(65535.0);
  return fz;
}

void ids_fz_free(ids_fz *fz)
{
  if (!fz) return;
  tab_free(&fz->hosts), tab_free(&fz->chans), tab_free(&fz->flows);
  free(fz);
}

/* lengths, evicted, expired of hosts, chans, flows; next flow id; records seen */
void ids_fz_sizes(const ids_fz *fz, uint64_t *out)
{
  const tab *t[3] = {&fz->hosts, &fz->chans, &fz->flows};
  int i;
  for (i = 0; i < 3; i++) out[3 * i] = t[i]->len, out[3 * i + 1] = t[i]->evicted, out[3 * i + 2] = t[i]->expired;
  out[9] = (uint64_t)fz->next_flow_id, out[10] = (uint64_t)fz->records;
}

static const double LAM[3] = {5.0, 0.5, 0.05};

static void stat3(double *st, double gap, double v, double ll, double *out)
{
  double vv = v * v;
  int j;
  for (j = 0; j < 3; j++) {
    double d = exp(-LAM[j] * gap), w = st[3 * j] * d + 1.0, ls = st[3 * j + 1] * d + v,
           ss = st[3 * j + 2] * d + vv, mean, var;
    st[3 * j] = w, st[3 * j + 1] = ls, st[3 * j + 2] = ss;
    mean = ls / w;
    var = ss / w - mean * mean;
    out[3 * j] = log1p(w);
    out[3 * j + 1] = log1p(mean) * ll;
    out[3 * j + 2] = var > 0.0 ? log1p(sqrt(var)) * ll : 0.0;
  }
}

typedef struct pkt {
  double ts;
  uint32_t src, dst, proto, sport, dport, flags, ttl, ip_len, payload;
} pkt;

/* packets.py parse_frame: 0 = a packet, else the ReaderStats slot that counts why not */
static int parse(uint32_t link, const uint8_t *f, uint32_t n, pkt *p)
{
  uint32_t off, vihl, ihl, total, frag, l4, lim, hdr = 0;
  int64_t avail;
  if (link == 1u) {
    uint32_t et;
    if (n < 14u) return ST_BAD_LINK;
    et = ((uint32_t)f[12] << 8) | f[13], off = 14u;
    while ((et == 0x8100u || et == 0x88A8u) && n >= off + 4u) et = ((uint32_t)f[off + 2] << 8) | f[off + 3], off += 4u;
    if (et != 0x0800u) return ST_NON_IPV4;
  } else if (link == 101u || link == 12u || link == 14u) {
    off = 0u;
  } else if (link == 0u) {
    uint32_t fam;
    if (n < 4u) return ST_BAD_LINK;
    fam = f[0] ? (f[0] | ((uint32_t)f[1] << 8)) : (f[3] | ((uint32_t)f[2] << 8));
    if (fam != 2u) return ST_NON_IPV4;
    off = 4u;
  } else if (link == 113u) {
    if (n < 16u) return ST_BAD_LINK;
    if ((((uint32_t)f[14] << 8) | f[15]) != 0x0800u) return ST_NON_IPV4;
    off = 16u;
  } else if (link == 276u) {
    if (n < 20u) return ST_BAD_LINK;
    if ((((uint32_t)f[0] << 8) | f[1]) != 0x0800u) return ST_NON_IPV4;
    off = 20u;
  } else {
    return ST_NON_IPV4;
  }
  if (n - off < 20u) return ST_BAD_IP;
  vihl = f[off], ihl = (vihl & 0x0Fu) * 4u, total = ((uint32_t)f[off + 2] << 8) | f[off + 3];
  if (vihl >> 4 != 4u) return ST_NON_IPV4;
  if (ihl < 20u || total < ihl || n - off < ihl) return ST_BAD_IP;
  p->ttl = f[off + 8], p->proto = f[off + 9];
  p->src = ((uint32_t)f[off + 12] << 24) | ((uint32_t)f[off + 13] << 16) | ((uint32_t)f[off + 14] << 8) | f[off + 15];
  p->dst = ((uint32_t)f[off + 16] << 24) | ((uint32_t)f[off + 17] << 16) | ((uint32_t)f[off + 18] << 8) | f[off + 19];
  frag = (((uint32_t)f[off + 6] & 0x1Fu) << 8) | f[off + 7];
  l4 = off + ihl;
  lim = n < off + total ? n : off + total;
  avail = (int64_t)lim - (int64_t)l4;
  p->sport = p->dport = p->flags = 0u;
  if (frag == 0u) {
    if (p->proto == 6u) {
      if (avail < 20) return ST_TRUNC_L4;
      p->sport = ((uint32_t)f[l4] << 8) | f[l4 + 1], p->dport = ((uint32_t)f[l4 + 2] << 8) | f[l4 + 3];
      hdr = (uint32_t)(f[l4 + 12] >> 4) * 4u, p->flags = f[l4 + 13];
      if (hdr < 20u) return ST_TRUNC_L4;
    } else if (p->proto == 17u) {
      if (avail < 8) return ST_TRUNC_L4;
      p->sport = ((uint32_t)f[l4] << 8) | f[l4 + 1], p->dport = ((uint32_t)f[l4 + 2] << 8) | f[l4 + 3];
      hdr = 8u;
    } else if (p->proto == 1u) {
      if (avail < 4) return ST_TRUNC_L4;
      p->sport = f[l4], p->dport = f[l4 + 1], hdr = 8u;
    }
  }
  p->ip_len = total;
  p->payload = total > ihl + hdr ? total - ihl - hdr : 0u;
  return 0;
}

/* packets.py Featurizer.step: features into x (58 float32), dt out; meta: flow id */
static void featurize(ids_fz *fz, const pkt *p, float *xo, double *dt_out, int64_t *flow_id)
{
  double x[IDS_NF], now = p->ts, dt, size = (double)p->ip_len, ll = fz->log_len, *h, *c, *fl, g[9];
  double hgap, cgap, fgap, inc;
  uint32_t proto = p->proto, fb = p->flags, i;
  uint64_t fa = ((uint64_t)p->src << 16) | p->sport, fbk = ((uint64_t)p->dst << 16) | p->dport, lo, hi;
  int32_t fi, hi_, ci;
  int first;
  if (!fz->has_last || now >= fz->last_ts) {
    dt = fz->has_last ? now - fz->last_ts : 0.0;
    fz->last_ts = now, fz->has_last = 1;
  } else {
    dt = 0.0;
  }
  memset(x, 0, sizeof x);
  x[proto == 6u ? 0 : proto == 17u ? 1 : proto == 1u ? 2 : 3] = 1.0;
  if (proto == 6u)
    for (i = 0; i < 6u; i++) x[4 + i] = (double)((fb >> i) & 1u);
  if (proto == 6u || proto == 17u) {
    x[p->sport < 1024u ? 10 : p->sport < 49152u ? 11 : 12] = 1.0;
    x[p->dport < 1024u ? 13 : p->dport < 49152u ? 14 : 15] = 1.0;
  }
  x[16] = (double)p->ttl / 255.0;
  x[17] = log1p((double)p->ip_len) * ll;
  x[18] = log1p((double)p->payload) * ll;
  /* flow key: (proto, smaller endpoint, larger endpoint); endpoint = (addr, port), compared as a tuple */
  lo = fa <= fbk ? fa : fbk, hi = fa <= fbk ? fbk : fa;
  {
    uint64_t k0 = ((lo >> 16) << 32) | (hi >> 16), k1 = ((uint64_t)proto << 32) | ((lo & 0xFFFFu) << 16) | (hi & 0xFFFFu);
    fi = tab_get(&fz->flows, k0, k1, now);
    first = fi < 0;
    if (first) {
      fi = tab_put(&fz->flows, k0, k1);
      fl = &fz->flows.val[(size_t)fi * FLOW_VW];
      fl[0] = now, fl[1] = now, fl[2] = 0.0, fl[3] = (double)p->src, fl[4] = (double)p->sport;
      fl[5] = (double)fz->next_flow_id++;
    }
    fl = &fz->flows.val[(size_t)fi * FLOW_VW];
  }
  x[19] = (fl[3] == (double)p->src && fl[4] == (double)p->sport) ? 1.0 : 0.0;
  x[20] = first ? 1.0 : 0.0;
  hi_ = tab_get(&fz->hosts, p->src, 0u, now);
  if (hi_ < 0) {
    hi_ = tab_put(&fz->hosts, p->src, 0u);
    fz->hosts.val[(size_t)hi_ * HOST_VW] = now;
  }
  h = &fz->hosts.val[(size_t)hi_ * HOST_VW];
  hgap = now > h[0] ? now - h[0] : 0.0;
  stat3(h + 1, hgap, size, ll, x + 21);
  inc = first ? 1.0 : 0.0;
  h[10] = h[10] * exp(-LAM[0] * hgap) + inc;
  h[11] = h[11] * exp(-LAM[1] * hgap) + inc;
  h[12] = h[12] * exp(-LAM[2] * hgap) + inc;
  x[30] = log1p(h[10]), x[31] = log1p(h[11]), x[32] = log1p(h[12]);
  h[0] = now;
  ci = tab_get(&fz->chans, ((uint64_t)p->src << 32) | p->dst, 0u, now);
  if (ci < 0) {
    ci = tab_put(&fz->chans, ((uint64_t)p->src << 32) | p->dst, 0u);
    fz->chans.val[(size_t)ci * CHAN_VW] = now;
  }
  c = &fz->chans.val[(size_t)ci * CHAN_VW];
  cgap = now > c[0] ? now - c[0] : 0.0;
  stat3(c + 1, cgap, size, ll, x + 33);
  stat3(c + 10, cgap, cgap, ll, g);
  x[42] = g[1] / ll, x[43] = g[4] / ll, x[44] = g[7] / ll;
  c[0] = now;
  fgap = now > fl[0] ? now - fl[0] : 0.0;
  stat3(fl + 6, fgap, size, ll, x + 45);
  fl[0] = now, fl[2] += 1.0;
  x[54] = log1p(fl[2]), x[55] = log1p(now - fl[1]), x[56] = log1p(fgap), x[57] = log1p(dt);
  for (i = 0; i < IDS_NF; i++) xo[i] = (float)x[i];
  *dt_out = dt;
  *flow_id = (int64_t)fl[5];
}

static uint32_t rd32(const uint8_t *b, int big)
{
  return big ? ((uint32_t)b[0] << 24) | ((uint32_t)b[1] << 16) | ((uint32_t)b[2] << 8) | b[3]
             : ((uint32_t)b[3] << 24) | ((uint32_t)b[2] << 16) | ((uint32_t)b[1] << 8) | b[0];
}

/* Frame and process the complete pcap records at the start of buf (after the global header), up to
 * max_ev events. Per event: x (58 float32; untouched when featurize == 0), tsdt (ts, dt), meta (index,
 * flow id, src, dst, sport, dport, proto, ip length). stats: the 8 ReaderStats counters (records,
 * events, truncated_record, bad_record, bad_link, non_ipv4, bad_ip, truncated_l4), incremented.
 * *consumed: bytes of whole records used. Returns 1 when a record header is corrupt (stop reading), else 0. */
int ids_process(ids_fz *fz, const uint8_t *buf, size_t len, int big_endian, double frac, uint32_t link,
                int do_feat, uint32_t max_ev, float *x, double *tsdt, int64_t *meta, uint64_t *stats,
                size_t *consumed, uint32_t *n_out)
{
  size_t pos = 0;
  uint32_t n = 0;
  int rc = 0;
  while (n < max_ev && len - pos >= 16u) {
    uint32_t sec = rd32(buf + pos, big_endian), usec = rd32(buf + pos + 4, big_endian);
    uint32_t caplen = rd32(buf + pos + 8, big_endian);
    pkt p;
    int why;
    if (caplen > MAX_SNAP) {
      stats[ST_RECORDS]++, stats[ST_BAD_REC]++;
      pos = len, rc = 1;
      break;
    }
    if (len - pos < 16u + (size_t)caplen) break;
    stats[ST_RECORDS]++;
    why = parse(link, buf + pos + 16, caplen, &p);
    pos += 16u + caplen;
    if (why) {
      stats[why]++;
      fz->records++;
      continue;
    }
    p.ts = (double)sec + (double)usec * frac;
    stats[ST_EVENTS]++;
    {
      int64_t *mt = meta + 8u * n, fid = -1;
      double dt = 0.0;
      if (do_feat) featurize(fz, &p, x + (size_t)IDS_NF * n, &dt, &fid);
      tsdt[2u * n] = p.ts, tsdt[2u * n + 1] = dt;
      mt[0] = fz->records, mt[1] = fid, mt[2] = p.src, mt[3] = p.dst, mt[4] = p.sport, mt[5] = p.dport;
      mt[6] = p.proto, mt[7] = p.ip_len;
    }
    fz->records++;
    n++;
  }
  *consumed = pos;
  *n_out = n;
  return rc;
}

/* ------------------------------------------------------------------ scoring */
#define A4S(v) (((v) + 3u) & ~(size_t)3u)

/* One packet: raw features xt (input_size), dt (s) -> its score, the model state in `state` advanced.
 * xs = clip(x * inv_scale, +-clip) (float32), sln_step with dt * dt_scale, readout out = W_out y + b over
 * the top layer's winners; score = sqrt(mean(((out - xs) w)^2)) (recon, w = weight or 1) or out[1] - out[0].
 * The state layout is runtime/sln.c's state_layout (float32). */
static int score_one(const sln_model *m, void *state, size_t state_len, const float *xt, double dt,
                     const float *inv_scale, float clip, double dt_scale, const float *w_out, const float *b_out,
                     const double *weight, int recon, double *score, uint64_t *counters)
{
  uint32_t D = m->input_size, C = m->n_classes, N = m->n_neurons, k = m->k, L = m->n_layers, i, j;
  size_t off_wi = (size_t)L * A4S(4u * (size_t)N), off_wv = off_wi + (size_t)L * A4S(2u * (size_t)k);
  size_t off_nw = off_wv + (size_t)L * A4S(4u * (size_t)k);
  const uint16_t *wi = (const uint16_t *)(const void *)((const uint8_t *)state + off_wi + (L - 1u) * A4S(2u * (size_t)k));
  const float *wv = (const float *)(const void *)((const uint8_t *)state + off_wv + (L - 1u) * A4S(4u * (size_t)k));
  const int32_t *nw = (const int32_t *)(const void *)((const uint8_t *)state + off_nw + 4u * (L - 1u));
  float xs[256], out[256];
  int rc;
  for (i = 0; i < D; i++) {
    float v = xt[i] * inv_scale[i];
    xs[i] = v < -clip ? -clip : (v > clip ? clip : v);
  }
  rc = sln_step(m, state, state_len, xs, NULL, D, (float)(dt * dt_scale), counters);
  if (rc) return rc;
  for (i = 0; i < C; i++) out[i] = 0.0f;
  for (j = 0; j < (uint32_t)*nw; j++) {
    uint32_t col = wi[j];
    float v = wv[j];
    for (i = 0; i < C; i++) out[i] += w_out[(size_t)i * N + col] * v;
  }
  for (i = 0; i < C; i++) out[i] += b_out[i];
  if (recon) {
    double s = 0.0;
    for (i = 0; i < D; i++) {
      double d = (double)out[i] - (double)xs[i];
      if (weight) d *= weight[i];
      s += d * d;
    }
    *score = sqrt(s / (double)D);
  } else {
    *score = (double)(out[1] - out[0]);
  }
  return 0;
}

static int score_args_ok(const sln_model *m, int recon)
{
  uint32_t D = m->input_size, C = m->n_classes;
  return !(m->numeric != SLN_NUMERIC_FLOAT32 || D > 256u || C > 256u || (recon && C != D) || (!recon && C < 2u));
}

/* n packets: raw features x (n x input_size), dt (s) -> scores (score_one), one model state carried through
 * all of them in `state` (sln_reset'd by the caller): the link-wide state. */
int ids_score(const sln_model *m, void *state, size_t state_len, const float *x, const double *dt, uint32_t n,
              const float *inv_scale, float clip, double dt_scale, const float *w_out, const float *b_out,
              const double *weight, int recon, double *scores, uint64_t *counters)
{
  uint32_t t;
  if (!score_args_ok(m, recon)) return SLN_ERR_ARG;
  for (t = 0; t < n; t++) {
    int rc = score_one(m, state, state_len, x + (size_t)t * m->input_size, dt[t], inv_scale, clip, dt_scale, w_out,
                       b_out, weight, recon, &scores[t], counters);
    if (rc) return rc;
  }
  return 0;
}

/* ------------------------------------------------------------------ keyed states (sln/security/keyed.py) */
/* One model state per unordered host pair {src, dst}, in a bounded table with the featurizer tables' semantics
 * (LRU, hard cap, idle expiry on lookup and the ttl/16 sweep): a pair's packets are scored in the context of
 * that pair's own packets only, with dt = the time since the pair's previous packet (a new or expired pair:
 * a zeroed state stepped with dt = ttl, as for a pair last seen that long ago; with dt = 0 the zero state
 * scores every first packet high). States live in a pool of cap + 1 slots (the table's slots), allocated once. */
typedef struct ids_ks {
  tab t;
  size_t slen;
  uint8_t *pool;
  uint64_t created;
} ids_ks;

ids_ks *ids_ks_new(uint32_t cap, double ttl, size_t state_len);
void ids_ks_free(ids_ks *ks);
void ids_ks_sizes(const ids_ks *ks, uint64_t *out);
int ids_score_keyed(const sln_model *m, ids_ks *ks, int by_src, const float *x, const double *ts, const int64_t *meta,
                    uint32_t n, const float *inv_scale, float clip, double dt_scale, const float *w_out,
                    const float *b_out, const double *weight, int recon, double *scores, uint64_t *counters);

ids_ks *ids_ks_new(uint32_t cap, double ttl, size_t state_len)
{
  ids_ks *ks;
  if (cap < 1u || cap > (1u << 22) || state_len == 0u || state_len % 4u) return NULL;
  ks = calloc(1, sizeof *ks);
  if (!ks) return NULL;
  ks->slen = state_len;
  if (tab_init(&ks->t, cap, ttl, 1u) || !(ks->pool = malloc(((size_t)cap + 1u) * state_len))) {
    ids_ks_free(ks);
    return NULL;
  }
  return ks;
}

void ids_ks_free(ids_ks *ks)
{
  if (!ks) return;
  tab_free(&ks->t);
  free(ks->pool);
  free(ks);
}

/* len, evicted, expired, states created */
void ids_ks_sizes(const ids_ks *ks, uint64_t *out)
{
  out[0] = ks->t.len, out[1] = ks->t.evicted, out[2] = ks->t.expired, out[3] = ks->created;
}

/* n packets: raw features x, ts (s), meta (n x 8 int64, columns 2 and 3 = src and dst addresses, as
 * ids_process writes them) -> scores, each with its key's state and its key's dt. Key: the unordered pair
 * {src, dst}, or (by_src) the source address alone. */
int ids_score_keyed(const sln_model *m, ids_ks *ks, int by_src, const float *x, const double *ts, const int64_t *meta,
                    uint32_t n, const float *inv_scale, float clip, double dt_scale, const float *w_out,
                    const float *b_out, const double *weight, int recon, double *scores, uint64_t *counters)
{
  uint32_t t;
  if (!score_args_ok(m, recon)) return SLN_ERR_ARG;
  for (t = 0; t < n; t++) {
    uint64_t a = (uint64_t)(uint32_t)meta[8u * t + 2], b = (uint64_t)(uint32_t)meta[8u * t + 3];
    uint64_t lo = by_src ? a : (a < b ? a : b), hi = by_src ? 0u : (a < b ? b : a);
    double now = ts[t], dt;
    int32_t i = tab_get(&ks->t, lo, hi, now);
    void *st;
    int rc;
    if (i < 0) {
      i = tab_put(&ks->t, lo, hi);
      memset(ks->pool + (size_t)i * ks->slen, 0, ks->slen);
      ks->created++;
      dt = ks->t.ttl; /* no recent history = a long gap: the state settles on this packet's input */
    } else {
      double last = ks->t.val[i];
      dt = now > last ? now - last : 0.0;
    }
    ks->t.val[i] = now; /* last seen (the featurizer's rule: even an out-of-order timestamp) */
    st = ks->pool + (size_t)i * ks->slen;
    rc = score_one(m, st, ks->slen, x + (size_t)t * m->input_size, dt, inv_scale, clip, dt_scale, w_out, b_out,
                   weight, recon, &scores[t], counters);
    if (rc) return rc;
  }
  return 0;
}

/* ------------------------------------------------------------------ JSON Lines records */
static int put_num(char *o, double v)
{
  if (v != v) return sprintf(o, "NaN");
  if (v == INFINITY) return sprintf(o, "Infinity");
  if (v == -INFINITY) return sprintf(o, "-Infinity");
  if (fabs(v) >= 1e15) return sprintf(o, "%.17g", v);
  return sprintf(o, "%.6f", v); /* = round(v, 6) as a value: correctly rounded both ways */
}

static int put_ip(char *o, uint32_t a)
{
  return sprintf(o, "%u.%u.%u.%u", a >> 24, (a >> 16) & 255u, (a >> 8) & 255u, a & 255u);
}

int ids_format(const double *ts, const double *score, const int64_t *meta, uint32_t n, double thr, const char *thr_s,
               int alerts_only, char *out, size_t cap, size_t *written);

/* The detect-net record of each packet (only score > thr ones when alerts_only), as sln/security/
 * detect_net_cli.py's json.dumps writes it up to the number format: ts and score with 6 decimals.
 * out: IDS_LINE_MAX bytes per packet (a line is at most ~260). Returns the records written. */
int ids_format(const double *ts, const double *score, const int64_t *meta, uint32_t n, double thr, const char *thr_s,
               int alerts_only, char *out, size_t cap, size_t *written)
{
  size_t pos = 0;
  uint32_t t;
  int rec = 0;
  for (t = 0; t < n && cap - pos >= IDS_LINE_MAX; t++) {
    const int64_t *m = meta + 8u * t;
    int alert = score[t] > thr;
    char *o = out + pos;
    if (alerts_only && !alert) continue;
    o += sprintf(o, "{\"ts\": ");
    o += put_num(o, ts[t]);
    o += sprintf(o, ", \"src\": \"");
    o += put_ip(o, (uint32_t)m[2]);
    o += sprintf(o, "\", \"dst\": \"");
    o += put_ip(o, (uint32_t)m[3]);
    o += sprintf(o, "\", \"sport\": %d, \"dport\": %d, \"proto\": %d, \"score\": ", (int)m[4], (int)m[5], (int)m[6]);
    o += put_num(o, score[t]);
    o += sprintf(o, ", \"alert\": %s, \"threshold\": %.40s}\n", alert ? "true" : "false", thr_s);
    pos = (size_t)(o - out);
    rec++;
  }
  *written = pos;
  return rec;
}
