/*
 * lobster.c - the C part of the LOBSTER reader: parse the CSV blocks, check
 * the vendor's rows, and replay the messages against the vendor's top-N book
 * as a stream, laying out the normalized L3 events.
 *
 * Design (the semantics are documented in lobsim/data/lobster.py):
 * - A level is keyed raw_price * 2 + (1 if bid) and lives in a growable array
 *   found through an open-addressing hash map (linear probing, no deletion).
 *   It holds our total, its synthetic orders (a FIFO linked through a
 *   growable pool indexed by synthetic serial, id = 2^63 + serial) with their
 *   sum, and the list of orders added at the level (in row order) that a
 *   "forget stale orders" step has not scanned yet.
 * - Known orders are the file's adds, kept for the whole stream: id (hash
 *   map), level key, remaining size (REM_REMOVED / REM_FORGOTTEN once gone;
 *   the id stays known so later messages on it and second adds are told
 *   apart from ids never added).
 * - The stream carries everything a message needs from before its block:
 *   those maps, the vendor's previous row (a copy of the last row fed), the
 *   running max of times and the row count. Events go straight into the
 *   caller's buffer; past its end into a spill buffer the caller fetches.
 * - Nothing is allocated per message except amortized growth. Inputs are
 *   checked before each block is replayed (types, directions, price and size
 *   ranges) so that level keys, price steps and sums cannot overflow; level
 *   totals use checked adds.
 */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

#define NIL (-1)
#define PRICE_LIMIT ((int64_t)1 << 61) /* prices are < 2^61 so key = price * 2 + 1 fits */
#define SYN_BASE ((uint64_t)1 << 63)
#define REM_REMOVED (-1)   /* removed by its own messages */
#define REM_FORGOTTEN (-2) /* dropped as stale */
#define MC LOB_LOBSTER_MSG_COLS

/* ------------------------------------------------------------ hash maps */
/* Open addressing (linear probing, no deletion) over an array of records
 * whose first field is their 64-bit key: slots hold record index + 1. */
typedef struct slot_map {
    int64_t *slots;
    size_t mask;
    int bits;
    uint64_t seed; /* random odd multiplier (lob_hash_seed): ids from the file cannot be chosen to collide */
} slot_map;

typedef struct level {
    int64_t key;
    int64_t tot;       /* our size at the level: live known orders + synthetic */
    int64_t syn_sum;   /* size of its synthetic orders */
    int64_t syn_head;  /* oldest synthetic order (pool index), NIL if none */
    int64_t syn_tail;  /* newest */
    int64_t add_head;  /* orders added here not yet scanned by forget_known (linked by ord_next) */
    int64_t add_tail;
} level;

typedef struct syn_order {
    int64_t qty;
    int64_t prev, next;
} syn_order;

typedef struct order {
    uint64_t id;
    int64_t key;  /* level key of its add */
    int64_t rem;  /* remaining size, or REM_REMOVED / REM_FORGOTTEN */
    int64_t next; /* next order added at the same level, NIL */
} order;

struct lob_lobster_stream {
    size_t N;
    int64_t raw_tick, price_mul, price_div, size_mul, size_div;
    int strict;
    int dead;          /* an error or a strict stop: no more feeds */
    int64_t rows_done; /* message rows replayed by earlier feeds */
    int have_prev;     /* prev_row holds the vendor's last row fed */
    int64_t *prev_copy;
    int64_t ts_max;

    /* the current feed */
    lob_lobster_result *res;
    lob_event *out;
    size_t cap, pos;   /* events emitted so far (may exceed cap: the rest are spilled) */
    lob_event *spill;
    size_t spill_cap;
    int64_t ts;        /* clock of the events being emitted */
    int overflow;      /* sticky: a level total overflowed int64 */
    int64_t row;       /* message row being replayed (global), for error_row */
    int nomem;         /* sticky: a growth failed */
    const int64_t *cur, *prev; /* the vendor's row after this message, and before it */

    level *lv;
    size_t nlv, lv_cap;
    slot_map lv_map; /* key -> level */

    syn_order *syn;
    size_t nsyn, syn_cap;

    order *ord;
    size_t nord, ord_cap;
    slot_map id_map; /* id -> order */

    int64_t *scratch;  /* candidate prices / seed keys and sizes */
    size_t scratch_cap;
};

typedef struct lob_lobster_stream state;

enum { REF_ELSEWHERE = -2 };
enum { HOW_SYNTHETIC = 0, HOW_STALE = 1, HOW_HIDDEN = 2 };

/* ---------------------------------------------------------------- helpers */
static int64_t qadd(state *st, int64_t a, int64_t b) {
    int64_t r;
    if (__builtin_add_overflow(a, b, &r)) {
        if (!st->overflow) st->res->error_row = st->row;
        st->overflow = 1;
        return a;
    }
    return r;
}

static int64_t qsub(state *st, int64_t a, int64_t b) {
    int64_t r;
    if (__builtin_sub_overflow(a, b, &r)) {
        if (!st->overflow) st->res->error_row = st->row;
        st->overflow = 1;
        return a;
    }
    return r;
}

/* Column c (4 * level + LOB_LOBSTER_*) of the vendor's current row (prev = 0) or the row before. */
static inline int64_t cell(const state *st, int prev, size_t c) { return (prev ? st->prev : st->cur)[c]; }

static int64_t to_ticks(const state *st, int64_t raw) {
    if (st->price_mul != 1) return (int64_t)((uint64_t)raw * (uint64_t)st->price_mul); /* checked: no wrap */
    return raw / st->price_div;
}

static lob_event *event_at(state *st, size_t i) { return i < st->cap ? &st->out[i] : &st->spill[i - st->cap]; }

static void emit(state *st, int kind, uint64_t id, int side, int64_t raw_price, int64_t qty, int flags) {
    if (st->pos >= st->cap && LOB_GROW(st->spill, st->spill_cap, st->pos - st->cap + 1) != LOB_OK) {
        st->nomem = 1;
        return;
    }
    lob_event *e = event_at(st, st->pos);
    e->ts_exch = st->ts;
    e->ts_local = st->ts;
    e->order_id = id;
    e->price = raw_price ? to_ticks(st, raw_price) : 0;
    e->qty = qty;
    e->side = (int8_t)side;
    e->kind = (uint8_t)kind;
    e->flags = (uint16_t)flags;
    e->reserved = 0;
    st->pos++;
}

/* Close the batch that started at event `start` (if it has events). */
static void end_batch(state *st, size_t start) {
    if (st->pos > start) event_at(st, st->pos - 1)->flags |= LOB_FLAG_BATCH_END;
}

static inline uint64_t key_at(const void *recs, size_t stride, int64_t i) {
    uint64_t k;
    memcpy(&k, (const char *)recs + (size_t)i * stride, sizeof k);
    return k;
}

static inline size_t home(const slot_map *m, uint64_t key) { return (size_t)((key * m->seed) >> (64 - m->bits)); }

/* (Re)build m with 2^bits slots over records [0, n); 0 when out of memory (m unchanged). */
static int map_build(slot_map *m, int bits, const void *recs, size_t stride, size_t n) {
    slot_map t = {calloc((size_t)1 << bits, sizeof(int64_t)), ((size_t)1 << bits) - 1, bits,
                  m->seed ? m->seed : lob_hash_seed(m)};
    if (!t.slots) return 0;
    for (size_t i = 0; i < n; i++) {
        size_t h = home(&t, key_at(recs, stride, (int64_t)i));
        while (t.slots[h]) h = (h + 1) & t.mask;
        t.slots[h] = (int64_t)i + 1;
    }
    free(m->slots);
    *m = t;
    return 1;
}

/* The slot of `key`: it holds its record index + 1, or 0 (free: where it goes). */
static inline size_t map_slot(const slot_map *m, const void *recs, size_t stride, uint64_t key) {
    size_t h = home(m, key);
    for (int64_t s; (s = m->slots[h]) && key_at(recs, stride, s - 1) != key;) h = (h + 1) & m->mask;
    return h;
}

/* Index of the level `key`, or NIL. */
static int64_t lv_find(const state *st, int64_t key) {
    return st->lv_map.slots[map_slot(&st->lv_map, st->lv, sizeof *st->lv, (uint64_t)key)] - 1;
}

/* Index of the level `key`, created empty if absent; NIL when out of memory. */
static int64_t lv_get(state *st, int64_t key) {
    size_t h = map_slot(&st->lv_map, st->lv, sizeof *st->lv, (uint64_t)key);
    if (st->lv_map.slots[h]) return st->lv_map.slots[h] - 1;
    if (LOB_GROW(st->lv, st->lv_cap, st->nlv + 1) != LOB_OK) {
        st->nomem = 1;
        return NIL;
    }
    level *l = &st->lv[st->nlv];
    l->key = key;
    l->tot = l->syn_sum = 0;
    l->syn_head = l->syn_tail = l->add_head = l->add_tail = NIL;
    st->lv_map.slots[h] = (int64_t)st->nlv + 1;
    st->nlv++;
    if (st->nlv * 2 > st->lv_map.mask + 1 && !map_build(&st->lv_map, st->lv_map.bits + 1, st->lv, sizeof *st->lv,
                                                        st->nlv))
        st->nomem = 1;
    return (int64_t)st->nlv - 1;
}

static int64_t tot_of(const state *st, int64_t key) {
    int64_t i = lv_find(st, key);
    return i == NIL ? 0 : st->lv[i].tot;
}

/* Index of the known order `id`, or NIL. */
static int64_t ord_find(const state *st, uint64_t id) {
    return st->id_map.slots[map_slot(&st->id_map, st->ord, sizeof *st->ord, id)] - 1;
}

/* ------------------------------------------------------- book operations */
/* New synthetic order of q lots at the tail of level li (SNAPSHOT ADD). */
static void add_syn(state *st, int64_t li, int side, int64_t p, int64_t q) {
    if (LOB_GROW(st->syn, st->syn_cap, st->nsyn + 1) != LOB_OK) {
        st->nomem = 1;
        return;
    }
    level *l = &st->lv[li];
    int64_t s = (int64_t)st->nsyn++;
    st->syn[s].qty = q;
    st->syn[s].prev = l->syn_tail;
    st->syn[s].next = NIL;
    if (l->syn_tail != NIL) st->syn[l->syn_tail].next = s;
    else l->syn_head = s;
    l->syn_tail = s;
    l->syn_sum = qadd(st, l->syn_sum, q);
    l->tot = qadd(st, l->tot, q);
    emit(st, LOB_EV_ADD, SYN_BASE + (uint64_t)s, side, p, q, LOB_FLAG_SNAPSHOT);
}

static void syn_unlink(state *st, level *l, int64_t s) {
    int64_t pr = st->syn[s].prev, nx = st->syn[s].next;
    if (pr != NIL) st->syn[pr].next = nx;
    else l->syn_head = nx;
    if (nx != NIL) st->syn[nx].prev = pr;
    else l->syn_tail = pr;
}

/* DELETE (SNAPSHOT) every live known order added at level li (all were
 * added up to the current row) and not scanned before; returns their total. */
static int64_t forget_known(state *st, int64_t li, int side, int64_t p) {
    level *l = &st->lv[li];
    int64_t total = 0, count = 0;
    for (int64_t a = l->add_head; a != NIL; a = st->ord[a].next) {
        int64_t q = st->ord[a].rem;
        if (q < 0) continue;
        st->ord[a].rem = REM_FORGOTTEN;
        total = qadd(st, total, q);
        count++;
        emit(st, LOB_EV_DELETE, st->ord[a].id, side, p, q, LOB_FLAG_SNAPSHOT);
    }
    l->add_head = l->add_tail = NIL;
    st->res->stale_orders_forgotten += count;
    l->tot = qsub(st, l->tot, total);
    return total;
}

/* Take `need` lots from level li's synthetic orders (oldest first) with
 * `kind` events, topping the pool up first if it is short; -> HOW_*. */
static int consume(state *st, int64_t li, int side, int64_t p, int64_t need, int kind) {
    int how = HOW_SYNTHETIC;
    int64_t pool = st->lv[li].syn_sum;
    if (pool < need) {
        int64_t total = forget_known(st, li, side, p);
        if (total) {
            add_syn(st, li, side, p, total);
            pool = qadd(st, pool, total);
            how = HOW_STALE;
        }
        if (pool < need) {
            add_syn(st, li, side, p, qsub(st, need, pool));
            how = HOW_HIDDEN;
        }
    }
    level *l = &st->lv[li];
    l->tot = qsub(st, l->tot, need);
    while (need > 0 && l->syn_head != NIL) {
        int64_t s = l->syn_head;
        int64_t q = st->syn[s].qty;
        if (q <= need) {
            emit(st, kind, SYN_BASE + (uint64_t)s, side, p, q, 0);
            need -= q;
            l->syn_sum -= q;
            syn_unlink(st, l, s);
        } else {
            emit(st, kind, SYN_BASE + (uint64_t)s, side, p, need, 0);
            st->syn[s].qty = q - need;
            l->syn_sum -= need;
            need = 0;
        }
    }
    return how;
}

/* Make our level `key` hold `target` lots (the vendor's revealed size). */
static void set_level(state *st, int64_t key, int side, int64_t p, int64_t target) {
    int64_t li = lv_get(st, key);
    if (li == NIL) return;
    int64_t ours = st->lv[li].tot;
    if (target == ours) return;
    if (target > ours) {
        add_syn(st, li, side, p, qsub(st, target, ours));
        st->res->depth_revealed++;
        return;
    }
    st->res->stale_levels_reset++;
    if (st->lv[li].syn_sum < qsub(st, ours, target)) forget_known(st, li, side, p);
    level *l = &st->lv[li];
    int64_t excess = qsub(st, l->tot, target);
    while (excess > 0 && l->syn_tail != NIL) { /* newest synthetic first */
        int64_t s = l->syn_tail;
        int64_t q = st->syn[s].qty;
        int64_t take = q < excess ? q : excess;
        emit(st, LOB_EV_REDUCE, SYN_BASE + (uint64_t)s, side, p, take, LOB_FLAG_SNAPSHOT);
        st->syn[s].qty = q - take;
        l->syn_sum -= take;
        excess -= take;
        l->tot -= take;
        if (q == take) syn_unlink(st, l, s);
    }
    if (excess < 0) add_syn(st, li, side, p, -excess); /* forgot more than the vendor lost */
}

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* 64 * tick >= d (d >= 0), without overflow. */
static int within_64_ticks(uint64_t d, int64_t tick) {
    return (uint64_t)tick > UINT64_MAX / 64 || d <= 64 * (uint64_t)tick;
}

/* Prices in [lo, hi] on `side` just came into the vendor's view (the current row):
 * each of our levels there, and each vendor level there, := vendor size. */
static void reveal(state *st, int side, int64_t lo, int64_t hi) {
    size_t N = st->N;
    int cp = side > 0 ? LOB_LOBSTER_BID_PX : LOB_LOBSTER_ASK_PX;
    int bit = side > 0;
    size_t nc = 0;
    for (size_t j = 0; j < N; j++) {
        int64_t vp = cell(st, 0, 4 * j + cp), vs = cell(st, 0, 4 * j + cp + 1);
        if (vs > 0 && vp >= lo && vp <= hi) {
            if (LOB_GROW(st->scratch, st->scratch_cap, nc + 1) != LOB_OK) goto oom;
            st->scratch[nc++] = vp;
        }
    }
    uint64_t width = (uint64_t)hi - (uint64_t)lo; /* b - a - 1 */
    int64_t tick = st->raw_tick;
    if ((uint64_t)tick > UINT64_MAX / 64 || width < 64 * (uint64_t)tick) {
        int64_t r = lo % tick;
        if (r < 0) r += tick;
        uint64_t off = r ? (uint64_t)(tick - r) : 0; /* first multiple of tick >= lo */
        if (off <= width) {
            int64_t p = (int64_t)((uint64_t)lo + off);
            for (;;) {
                if (p > 0 && p < PRICE_LIMIT && tot_of(st, p * 2 + bit)) {
                    if (LOB_GROW(st->scratch, st->scratch_cap, nc + 1) != LOB_OK) goto oom;
                    st->scratch[nc++] = p;
                }
                if ((uint64_t)hi - (uint64_t)p < (uint64_t)tick) break;
                p += tick;
            }
        }
    } else {
        for (size_t i = 0; i < st->nlv; i++) {
            const level *l = &st->lv[i];
            int64_t p = l->key >> 1;
            if (l->tot && (l->key & 1) == bit && p >= lo && p <= hi) {
                if (LOB_GROW(st->scratch, st->scratch_cap, nc + 1) != LOB_OK) goto oom;
                st->scratch[nc++] = p;
            }
        }
    }
    qsort(st->scratch, nc, sizeof *st->scratch, cmp_i64);
    size_t m = 0; /* dedupe */
    for (size_t i = 0; i < nc; i++)
        if (m == 0 || st->scratch[m - 1] != st->scratch[i]) st->scratch[m++] = st->scratch[i];
    for (size_t t = 0; t < m; t++) {
        int64_t p = st->scratch[side > 0 ? m - 1 - t : t]; /* bids best (highest) first */
        int64_t target = 0;
        for (size_t j = N; j-- > 0;) { /* the vendor's size there (last entry wins) */
            int64_t vp = cell(st, 0, 4 * j + cp), vs = cell(st, 0, 4 * j + cp + 1);
            if (vs > 0 && vp == p) {
                target = vs;
                break;
            }
        }
        set_level(st, p * 2 + bit, side, p, target);
    }
    return;
oom:
    st->nomem = 1;
}

/* The vendor's window reaches deeper than in the row before on some side:
 * set the newly exposed levels to the vendor's sizes. */
static void recon(state *st) {
    size_t N = st->N, e = 4 * (N - 1); /* the window's edge: level N */
    int64_t bs = cell(st, 0, e + LOB_LOBSTER_BID_SZ), as = cell(st, 0, e + LOB_LOBSTER_ASK_SZ);
    int64_t lo_k = bs > 0 ? cell(st, 0, e + LOB_LOBSTER_BID_PX) : INT64_MIN;
    int64_t hi_k = as > 0 ? cell(st, 0, e + LOB_LOBSTER_ASK_PX) : INT64_MAX;
    int64_t lo_p = cell(st, 1, e + LOB_LOBSTER_BID_SZ) > 0 ? cell(st, 1, e + LOB_LOBSTER_BID_PX) : INT64_MIN;
    int64_t hi_p = cell(st, 1, e + LOB_LOBSTER_ASK_SZ) > 0 ? cell(st, 1, e + LOB_LOBSTER_ASK_PX) : INT64_MAX;
    int64_t tick = st->raw_tick;
    if (lo_k < lo_p) {
        /* simple: full window before and after, only the new level N lies below
         * the old edge, and the exposed range is short */
        int simple = lo_k != INT64_MIN && within_64_ticks((uint64_t)(lo_p - lo_k), tick) &&
                     (N < 2 || cell(st, 0, e - 4 + LOB_LOBSTER_BID_PX) >= lo_p);
        if (simple) {
            if (tot_of(st, lo_k * 2 + 1) != bs) set_level(st, lo_k * 2 + 1, 1, lo_k, bs);
            for (int64_t p = lo_k + tick; p < lo_p; p += tick) /* levels the vendor no longer shows */
                if (tot_of(st, p * 2 + 1)) set_level(st, p * 2 + 1, 1, p, 0);
        } else {
            reveal(st, 1, lo_k, lo_p - 1);
        }
    }
    if (hi_k > hi_p) {
        int simple = hi_k != INT64_MAX && within_64_ticks((uint64_t)(hi_k - hi_p), tick) &&
                     (N < 2 || cell(st, 0, e - 4 + LOB_LOBSTER_ASK_PX) <= hi_p);
        if (simple) {
            if (tot_of(st, hi_k * 2) != as) set_level(st, hi_k * 2, -1, hi_k, as);
            for (int64_t p = hi_k - tick; p > hi_p; p -= tick)
                if (tot_of(st, p * 2)) set_level(st, p * 2, -1, p, 0);
        } else {
            reveal(st, -1, hi_p + 1, hi_k);
        }
    }
}

/* ------------------------------------------------------------- parsing */
static const int64_t POW10[10] = {1, 10, 100, 1000, 10000, 100000, 1000000, 10000000, 100000000, 1000000000};

/* A decimal int64 at *pp (before end); advances *pp. 0 if malformed or out of range. */
static inline int parse_int(const char **pp, const char *end, int64_t *v) {
    const char *p = *pp;
    int neg = p < end && *p == '-';
    p += neg;
    const char *s = p;
    uint64_t x = 0;
    while (p < end && (unsigned)(*p - '0') <= 9 && p - s < 18) x = x * 10 + (unsigned)(*p++ - '0');
    if (p == s) return 0;
    while (p < end && (unsigned)(*p - '0') <= 9) /* 19 digits or more: check for overflow */
        if (__builtin_mul_overflow(x, 10, &x) || __builtin_add_overflow(x, (unsigned)(*p++ - '0'), &x)) return 0;
    if (x > (uint64_t)INT64_MAX + (uint64_t)neg) return 0;
    *v = neg ? (int64_t)(0 - x) : (int64_t)x;
    *pp = p;
    return 1;
}

/* 'seconds[.fraction]' (1-6 integer digits, >= 1 decimal after a dot) -> ns; *trunc = more than 9 decimals. */
static inline int parse_time(const char **pp, const char *end, int64_t *v, int *trunc) {
    const char *p = *pp;
    int64_t s = 0, f = 0;
    int nd = 0;
    while (p < end && (unsigned)(*p - '0') <= 9 && nd < 7) s = s * 10 + (*p++ - '0'), nd++;
    if (nd == 0 || nd > 6) return 0;
    int nf = 0;
    if (p < end && *p == '.') {
        p++;
        while (p < end && (unsigned)(*p - '0') <= 9) {
            if (nf < 9) f = f * 10 + (*p - '0');
            nf++;
            p++;
        }
        if (nf == 0) return 0;
    }
    *trunc = nf > 9;
    *v = s * 1000000000 + f * POW10[9 - (nf < 9 ? nf : 9)];
    *pp = p;
    return 1;
}

int lob_lobster_parse(const char *buf, size_t len, int final, size_t ncols, int time_first,
                      int64_t *out, size_t cap_rows, lob_lobster_parsed *res) {
    if (!res) return LOB_ERR_INVALID_ARG;
    memset(res, 0, sizeof *res);
    res->error_line = -1;
    if ((!buf && len) || !ncols || (cap_rows && !out)) return LOB_ERR_INVALID_ARG;
    const char *p = buf, *end = buf + len;
    size_t rows = 0;
    int64_t line = 0, truncated = 0, lo = INT64_MAX, hi = INT64_MIN;
    while (p < end && rows < cap_rows) {
        const char *start = p;
        int64_t *o = out + rows * ncols;
        size_t c = 0;
        int ok = 1;
        for (; c < ncols; c++) {
            if (c && (p >= end || *p++ != ',')) {
                ok = 0;
                break;
            }
            int tr = 0;
            if (!(c == 0 && time_first ? parse_time(&p, end, &o[c], &tr) : parse_int(&p, end, &o[c]))) {
                ok = 0;
                break;
            }
            truncated += tr;
        }
        if (ok) {
            if (p < end && *p == '\r') p++;
            if (p < end && *p == '\n') p++;
            else if (p < end || !final) ok = 0;
        }
        if (!ok) {
            const char *nl = memchr(start, '\n', (size_t)(end - start));
            if (!nl && !final) { /* an incomplete last line: the next block completes it */
                p = start;
                break;
            }
            res->error_line = line;
            p = start;
            break;
        }
        lo = o[0] < lo ? o[0] : lo;
        hi = o[0] > hi ? o[0] : hi;
        rows++;
        line++;
    }
    res->rows = rows;
    res->consumed = (size_t)(p - buf);
    res->truncated = truncated;
    res->min0 = rows ? lo : 0;
    res->max0 = rows ? hi : 0;
    return res->error_line < 0 ? LOB_OK : LOB_ERR_CORRUPT;
}

/* ------------------------------------------------------------ row checks */
/* x (> 0) is a multiple of d (>= 1): d = 2^s * o (o odd); x = 2^s * y with y * o^-1 mod 2^64 <= max / o. */
typedef struct divisor {
    uint64_t low_mask, inv, limit;
    int shift;
} divisor;

static divisor divisor_of(uint64_t d) {
    divisor v;
    v.shift = __builtin_ctzll(d);
    v.low_mask = ((uint64_t)1 << v.shift) - 1;
    uint64_t o = d >> v.shift, inv = o; /* Newton: each step doubles the correct low bits */
    for (int i = 0; i < 5; i++) inv *= 2 - o * inv;
    v.inv = inv;
    v.limit = UINT64_MAX / o;
    return v;
}

/* One side of one vendor row is malformed (see lob_lobster_check_rows); branch-free. */
static inline int side_bad(const int64_t *r, size_t levels, int cp, int ask, const divisor *dv) {
    int bad = 0, prev_empty = 0;
    int64_t pp = 0;
    for (size_t j = 0; j < levels; j++) {
        int64_t p = r[4 * j + cp], s = r[4 * j + cp + 1];
        int occupied = s > 0;
        int price_bad = (p <= 0) | (p >= PRICE_LIMIT) |
                        (((uint64_t)p & dv->low_mask) != 0) | ((((uint64_t)p >> dv->shift) * dv->inv) > dv->limit);
        int order_bad = j ? (prev_empty | (ask ? p <= pp : p >= pp)) : 0;
        bad |= (s < 0) | (occupied & (price_bad | order_bad));
        prev_empty = !occupied;
        pp = p;
    }
    return bad;
}

int lob_lobster_check_rows(const int64_t *rows, size_t n, size_t levels, int64_t raw_tick, int64_t *bad_row,
                           int *bad_side) {
    if ((!rows && n) || !bad_row || !bad_side || raw_tick < 1 || levels == 0 || levels > SIZE_MAX / 64)
        return LOB_ERR_INVALID_ARG;
    *bad_row = -1;
    *bad_side = LOB_SIDE_NONE;
    divisor dv = divisor_of((uint64_t)raw_tick);
    size_t w = 4 * levels;
    for (size_t k = 0; k < n; k++) {
        const int64_t *r = rows + k * w;
        int ask_bad = side_bad(r, levels, LOB_LOBSTER_ASK_PX, 1, &dv);
        if (!(ask_bad | side_bad(r, levels, LOB_LOBSTER_BID_PX, 0, &dv))) continue;
        *bad_row = (int64_t)k;
        *bad_side = ask_bad ? LOB_SIDE_ASK : LOB_SIDE_BID;
        return LOB_ERR_BAD_PRICE;
    }
    return LOB_OK;
}

/* ------------------------------------------------------------ the stream */
lob_lobster_stream *lob_lobster_stream_new(size_t levels, int64_t raw_tick, int64_t price_mul, int64_t price_div,
                                           int64_t size_mul, int64_t size_div, int strict) {
    if (levels == 0 || levels > SIZE_MAX / 64 / sizeof(int64_t) || raw_tick < 1 || raw_tick >= PRICE_LIMIT ||
        price_mul < 1 || price_div < 1 || (price_mul != 1 && price_div != 1) || raw_tick % price_div ||
        size_mul < 1 || size_div < 1 || (size_mul != 1 && size_div != 1))
        return NULL;
    state *st = calloc(1, sizeof *st);
    if (!st) return NULL;
    st->N = levels;
    st->raw_tick = raw_tick;
    st->price_mul = price_mul;
    st->price_div = price_div;
    st->size_mul = size_mul;
    st->size_div = size_div;
    st->strict = strict != 0;
    st->ts_max = INT64_MIN;
    st->prev_copy = malloc(4 * levels * sizeof(int64_t));
    if (!st->prev_copy || !map_build(&st->lv_map, 6, NULL, 0, 0) || !map_build(&st->id_map, 6, NULL, 0, 0)) {
        lob_lobster_stream_free(st);
        return NULL;
    }
    return st;
}

void lob_lobster_stream_free(lob_lobster_stream *st) {
    if (!st) return;
    free(st->prev_copy);
    free(st->spill);
    free(st->lv);
    free(st->lv_map.slots);
    free(st->syn);
    free(st->ord);
    free(st->id_map.slots);
    free(st->scratch);
    free(st);
}

size_t lob_lobster_stream_memory(const lob_lobster_stream *st) {
    if (!st) return 0;
    return sizeof *st + 4 * st->N * sizeof(int64_t) + st->spill_cap * sizeof *st->spill +
           st->lv_cap * sizeof *st->lv + (st->lv_map.mask + 1) * sizeof(int64_t) +
           st->syn_cap * sizeof *st->syn + st->ord_cap * sizeof *st->ord +
           (st->id_map.mask + 1) * sizeof(int64_t) + st->scratch_cap * sizeof *st->scratch;
}

int lob_lobster_stream_take(lob_lobster_stream *st, lob_event *dst, size_t n) {
    if (!st || (n && !dst) || st->pos < st->cap || n != st->pos - st->cap) return LOB_ERR_INVALID_ARG;
    if (n) memcpy(dst, st->spill, n * sizeof *dst);
    return LOB_OK;
}

static int fail(state *st, lob_lobster_result *res, int rc, int err, size_t k, int64_t col, int64_t value) {
    res->error = err;
    res->error_row = st->rows_done + (int64_t)k;
    res->error_col = col;
    res->error_value = value;
    st->dead = 1;
    return rc;
}

/* x * mul or x / div exactly (x >= 0): 0 if not a whole number or out of range. */
static inline int scale_size(int64_t *x, int64_t mul, int64_t div) {
    if (mul != 1) return !__builtin_mul_overflow(*x, mul, x);
    if (*x % div) return 0;
    *x /= div;
    return 1;
}

/* Range and type checks that keep every key, step and index in bounds; sizes
 * to lots; the counts found without the replay (times, halts, skipped prints). */
static int check_block(state *st, size_t n, int64_t *msgs, int64_t *book, int book_checked, lob_lobster_result *res) {
    int64_t tick = st->raw_tick, pmax = INT64_MAX / st->price_mul;
    int lots = st->size_mul != 1 || st->size_div != 1;
    for (size_t k = 0; k < n; k++) {
        int64_t *m = msgs + k * MC;
        int64_t t = m[LOB_LOBSTER_TYPE], p = m[LOB_LOBSTER_PRICE], d = m[LOB_LOBSTER_DIR], id = m[LOB_LOBSTER_ID];
        if (t < 1 || t > 7) return fail(st, res, LOB_ERR_INVALID_ARG, LOB_LOBSTER_ERR_TYPE, k, 1, t);
        if (d != 1 && d != -1) return fail(st, res, LOB_ERR_INVALID_ARG, LOB_LOBSTER_ERR_DIRECTION, k, 5, d);
        if (t <= 6) {
            int64_t q = m[LOB_LOBSTER_SIZE];
            if (q <= 0) return fail(st, res, LOB_ERR_BAD_QTY, LOB_LOBSTER_ERR_SIZE, k, 3, q);
            if (p <= 0) return fail(st, res, LOB_ERR_BAD_PRICE, LOB_LOBSTER_ERR_PRICE, k, 4, p);
            if (p >= PRICE_LIMIT) return fail(st, res, LOB_ERR_BAD_PRICE, LOB_LOBSTER_ERR_PRICE_RANGE, k, 4, p);
        }
        if (t <= 4 && id <= 0) return fail(st, res, LOB_ERR_INVALID_ARG, LOB_LOBSTER_ERR_ID, k, 2, id);
        if (id < 0) return fail(st, res, LOB_ERR_INVALID_ARG, LOB_LOBSTER_ERR_ID_NEGATIVE, k, 2, id);
        if (t == 7 && (p < -1 || p > 1)) return fail(st, res, LOB_ERR_BAD_PRICE, LOB_LOBSTER_ERR_STATUS, k, 4, p);
    }
    for (size_t k = 0; k < n; k++) { /* exactness: the errors above come first wherever they are */
        int64_t *m = msgs + k * MC;
        int64_t t = m[LOB_LOBSTER_TYPE], p = m[LOB_LOBSTER_PRICE];
        if (t > 6) continue;
        int off = tick > 1 && p % tick;
        if (off && t <= 4) return fail(st, res, LOB_ERR_BAD_PRICE, LOB_LOBSTER_ERR_OFF_TICK, k, 4, p);
        if (!off && p > pmax) return fail(st, res, LOB_ERR_BAD_PRICE, LOB_LOBSTER_ERR_PRICE_SCALE, k, 4, p);
        if (lots && !scale_size(&m[LOB_LOBSTER_SIZE], st->size_mul, st->size_div))
            return fail(st, res, LOB_ERR_BAD_QTY, LOB_LOBSTER_ERR_LOT, k, 3, m[LOB_LOBSTER_SIZE]);
    }
    size_t w = 4 * st->N;
    int64_t bad_row;
    int bad_side;
    if (!book_checked && lob_lobster_check_rows(book, n, st->N, tick, &bad_row, &bad_side) != LOB_OK)
        return fail(st, res, LOB_ERR_BAD_PRICE, LOB_LOBSTER_ERR_BOOK, (size_t)bad_row, bad_side, 0);
    if (st->price_mul != 1)
        for (size_t i = 0; i < n * w; i += 2)
            if (book[i + 1] > 0 && book[i] > pmax)
                return fail(st, res, LOB_ERR_BAD_PRICE, LOB_LOBSTER_ERR_BOOK_SCALE, i / w, (int64_t)(i % w), book[i]);
    if (lots)
        for (size_t i = 1; i < n * w; i += 2) /* columns by row; the caller names the first bad one */
            if (!scale_size(&book[i], st->size_mul, st->size_div))
                return fail(st, res, LOB_ERR_BAD_QTY, LOB_LOBSTER_ERR_BOOK_LOT, i / w, (int64_t)(i % w), book[i]);
    /* anomalies found without the replay */
    int64_t mx = st->ts_max;
    for (size_t k = 0; k < n; k++) {
        const int64_t *m = msgs + k * MC;
        int64_t ts = m[LOB_LOBSTER_TIME], t = m[LOB_LOBSTER_TYPE], p = m[LOB_LOBSTER_PRICE];
        int64_t row = st->rows_done + (int64_t)k;
        if (ts < mx) {
            if (!res->out_of_order++) {
                res->out_of_order_row = row;
                res->out_of_order_ts = ts;
                res->out_of_order_max = mx;
            }
        } else {
            mx = ts;
        }
        if (t == 7 && p == -1 && !res->halts++) res->halt_row = row;
        if ((t == 5 || t == 6) && tick > 1 && p % tick && !res->skipped++) {
            res->skipped_row = row;
            res->skipped_price = p;
        }
    }
    st->ts_max = mx;
    return LOB_OK;
}

/* The book before message 1: orderbook row 1 with message 1 undone. */
static int seed(state *st, const int64_t *m0) {
    size_t N = st->N, nk = 0;
    if (LOB_GROW(st->scratch, st->scratch_cap, 4 * N + 2) != LOB_OK) return LOB_ERR_NOMEM;
    int64_t *kv = st->scratch; /* (key, size) pairs */
    for (size_t j = 0; j < N; j++) {
        const int64_t px[2] = {cell(st, 0, 4 * j + LOB_LOBSTER_BID_PX), cell(st, 0, 4 * j + LOB_LOBSTER_ASK_PX)};
        const int64_t sz[2] = {cell(st, 0, 4 * j + LOB_LOBSTER_BID_SZ), cell(st, 0, 4 * j + LOB_LOBSTER_ASK_SZ)};
        for (int s = 0; s < 2; s++) {
            if (sz[s] <= 0) continue; /* occupied levels have validated prices */
            int64_t key = px[s] * 2 + (s == 0);
            size_t i = 0;
            while (i < nk && kv[2 * i] != key) i++;
            if (i == nk) nk++;
            kv[2 * i] = key;
            kv[2 * i + 1] = sz[s];
        }
    }
    int64_t t0 = m0[LOB_LOBSTER_TYPE];
    if (t0 >= 1 && t0 <= 4) {
        int64_t key = m0[LOB_LOBSTER_PRICE] * 2 + (m0[LOB_LOBSTER_DIR] > 0);
        size_t i = 0;
        while (i < nk && kv[2 * i] != key) i++;
        int64_t have = i < nk ? kv[2 * i + 1] : 0;
        have = t0 == 1 ? qsub(st, have, m0[LOB_LOBSTER_SIZE]) : qadd(st, have, m0[LOB_LOBSTER_SIZE]);
        if (have < 0) {
            st->res->seed_mismatch = 1;
            have = 0;
        }
        if (have) {
            if (i == nk) nk++;
            kv[2 * i] = key;
            kv[2 * i + 1] = have;
        } else if (i < nk) {
            kv[2 * i] = kv[2 * (nk - 1)];
            kv[2 * i + 1] = kv[2 * (nk - 1) + 1];
            nk--;
        }
    }
    /* bids (odd keys) best first, then asks best first: insertion sort, nk <= 2N + 1 */
    for (size_t i = 1; i < nk; i++) {
        int64_t k = kv[2 * i], v = kv[2 * i + 1];
        size_t j = i;
        for (; j > 0; j--) {
            int64_t o = kv[2 * (j - 1)];
            int before = (k & 1) != (o & 1) ? (k & 1) : ((k & 1) ? k > o : k < o);
            if (!before) break;
            kv[2 * j] = o;
            kv[2 * j + 1] = kv[2 * (j - 1) + 1];
        }
        kv[2 * j] = k;
        kv[2 * j + 1] = v;
    }
    for (size_t i = 0; i < nk; i++) {
        int64_t li = lv_get(st, kv[2 * i]);
        if (li == NIL) return LOB_ERR_NOMEM;
        add_syn(st, li, (kv[2 * i] & 1) ? 1 : -1, kv[2 * i] >> 1, kv[2 * i + 1]);
        kv = st->scratch;
    }
    if (st->pos == 0) emit(st, LOB_EV_CLEAR, 0, 0, 0, 0, LOB_FLAG_SNAPSHOT); /* an empty seed clears */
    end_batch(st, 0);
    return st->nomem ? LOB_ERR_NOMEM : LOB_OK;
}

/* A new known order (message row m, an add); LOB_ERR_DUPLICATE_ORDER if its id is known. */
static int on_add(state *st, const int64_t *m, int64_t li) {
    uint64_t id = (uint64_t)m[LOB_LOBSTER_ID];
    size_t h = map_slot(&st->id_map, st->ord, sizeof *st->ord, id);
    if (st->id_map.slots[h]) return LOB_ERR_DUPLICATE_ORDER;
    if (LOB_GROW(st->ord, st->ord_cap, st->nord + 1) != LOB_OK) return LOB_ERR_NOMEM;
    int64_t a = (int64_t)st->nord++;
    st->id_map.slots[h] = a + 1;
    order *o = &st->ord[a];
    o->id = id;
    o->key = st->lv[li].key;
    o->rem = m[LOB_LOBSTER_SIZE];
    o->next = NIL;
    level *l = &st->lv[li];
    if (l->add_tail != NIL) st->ord[l->add_tail].next = a;
    else l->add_head = a;
    l->add_tail = a;
    if (st->nord * 2 > st->id_map.mask + 1 &&
        !map_build(&st->id_map, st->id_map.bits + 1, st->ord, sizeof *st->ord, st->nord))
        return LOB_ERR_NOMEM;
    return LOB_OK;
}

static void note_stop(state *st, int reason) {
    st->res->stop_reason = reason;
    st->res->stop_row = st->row;
}

/* Message m's cancel/execute (t = 2..4); returns 1 if strict mode stops here. */
static int on_reference(state *st, const int64_t *m, int64_t t, int64_t li) {
    lob_lobster_result *res = st->res;
    int64_t q = m[LOB_LOBSTER_SIZE], p = m[LOB_LOBSTER_PRICE], key = st->lv[li].key;
    int side = m[LOB_LOBSTER_DIR] > 0 ? 1 : -1;
    int kind = t == 4 ? LOB_EV_EXECUTE : LOB_EV_REDUCE;
    uint64_t id = (uint64_t)m[LOB_LOBSTER_ID];
    int64_t ref = ord_find(st, id);
    if (ref != NIL && st->ord[ref].key != key) { /* a known order, named at another side/price */
        if (!res->order_mismatch++) {
            res->order_mismatch_row = st->row;
            res->order_mismatch_id = (int64_t)id;
        }
        ref = REF_ELSEWHERE;
    }
    int64_t rem = ref >= 0 ? st->ord[ref].rem : -1;
    if (rem >= 0) { /* a live known order */
        level *l = &st->lv[li];
        if (q < rem && t != 3) {
            st->ord[ref].rem = rem - q;
            l->tot = qsub(st, l->tot, q);
            emit(st, (int)(t == 2 ? LOB_EV_REDUCE : LOB_EV_EXECUTE), id, side, p, q, 0);
        } else if (q == rem) {
            st->ord[ref].rem = REM_REMOVED;
            l->tot = qsub(st, l->tot, q);
            emit(st, (int)(t == 2 ? LOB_EV_REDUCE : t == 3 ? LOB_EV_DELETE : LOB_EV_EXECUTE), id, side, p, q, 0);
        } else { /* the order changed out of view; move the level by the message's size */
            if (!res->size_mismatch++) {
                res->size_mismatch_row = st->row;
                res->size_mismatch_id = (int64_t)id;
                res->size_mismatch_qty = q;
                res->size_mismatch_remaining = rem;
                if (st->strict) {
                    note_stop(st, LOB_LOBSTER_STOP_SIZE_MISMATCH);
                    return 1;
                }
            }
            st->ord[ref].rem = REM_REMOVED;
            l->tot = qsub(st, l->tot, rem);
            emit(st, (int)(t == 3 ? LOB_EV_DELETE : kind), id, side, p, rem, 0);
            if (q > rem) consume(st, li, side, p, q - rem, kind);
            else add_syn(st, li, side, p, rem - q); /* deleted with less than tracked: the rest stays */
        }
        return 0;
    }
    int how = consume(st, li, side, p, q, kind);
    if (ref >= 0 && rem == REM_FORGOTTEN) { /* dropped as stale earlier: expected */
        res->messages_on_forgotten_orders++;
    } else if (ref == REF_ELSEWHERE) { /* counted as order_mismatch */
    } else if (ref >= 0) {
        if (!res->removed++) {
            res->removed_row = st->row;
            res->removed_id = (int64_t)id;
            res->removed_type = t;
            if (st->strict) {
                note_stop(st, LOB_LOBSTER_STOP_REMOVED);
                return 1;
            }
        }
    } else {
        int64_t *c = how == HOW_SYNTHETIC ? &res->unknown_from_synthetic
                   : how == HOW_STALE   ? &res->unknown_after_forgetting_stale
                                        : &res->unknown_from_hidden_depth;
        ++*c;
        if (res->unknown_row < 0) {
            res->unknown_row = st->row;
            res->unknown_id = (int64_t)id;
            res->unknown_type = t;
            if (st->strict) {
                note_stop(st, LOB_LOBSTER_STOP_UNKNOWN);
                return 1;
            }
        }
    }
    return 0;
}

static int run(state *st, size_t n, const int64_t *msgs, const int64_t *book) {
    size_t w = 4 * st->N, e = w - 4; /* e: the window's edge, level N */
    for (size_t k = 0; k < n; k++) {
        const int64_t *m = msgs + k * MC;
        st->row = st->rows_done + (int64_t)k;
        st->cur = book + k * w;
        st->prev = k ? st->cur - w : st->have_prev ? st->prev_copy : NULL;
        st->ts = m[LOB_LOBSTER_TIME];
        if (!st->prev) { /* the stream's first message */
            int rc = seed(st, m);
            if (rc != LOB_OK) return rc;
        }
        int64_t t = m[LOB_LOBSTER_TYPE];
        size_t start = st->pos;
        int side = m[LOB_LOBSTER_DIR] > 0 ? 1 : -1;
        int64_t p = m[LOB_LOBSTER_PRICE], q = m[LOB_LOBSTER_SIZE];
        uint64_t id = (uint64_t)m[LOB_LOBSTER_ID];
        if (t <= 4) {
            int64_t li = lv_get(st, p * 2 + (side > 0));
            if (li == NIL) return LOB_ERR_NOMEM;
            if (t == 1) {
                int rc = on_add(st, m, li);
                if (rc == LOB_ERR_DUPLICATE_ORDER) {
                    fail(st, st->res, rc, LOB_LOBSTER_ERR_DUPLICATE, k, 2, (int64_t)id);
                    return rc;
                }
                if (rc != LOB_OK) return rc;
                st->lv[li].tot = qadd(st, st->lv[li].tot, q);
                emit(st, LOB_EV_ADD, id, side, p, q, 0);
            } else {
                if (on_reference(st, m, t, li)) return LOB_OK;
                if (t == 4) emit(st, LOB_EV_TRADE, id, -side, p, q, 0);
            }
        } else if (t == 7) {
            emit(st, LOB_EV_STATUS, 0, 0, 0,
                 p == -1 ? LOB_STATUS_HALT : p == 0 ? LOB_STATUS_QUOTING : LOB_STATUS_TRADING, 0);
        } else if (!(st->raw_tick > 1 && p % st->raw_tick)) { /* prints between ticks get no event */
            if (t == 5) emit(st, LOB_EV_TRADE, id, -side, p, q, LOB_FLAG_HIDDEN);
            else emit(st, LOB_EV_TRADE, id, 0, p, q, 0);
        }
        if (st->prev) { /* the window reaches deeper on a side: its last level moved outwards */
            int64_t lo_k = cell(st, 0, e + LOB_LOBSTER_BID_SZ) > 0 ? cell(st, 0, e + LOB_LOBSTER_BID_PX) : INT64_MIN;
            int64_t lo_p = cell(st, 1, e + LOB_LOBSTER_BID_SZ) > 0 ? cell(st, 1, e + LOB_LOBSTER_BID_PX) : INT64_MIN;
            int64_t hi_k = cell(st, 0, e + LOB_LOBSTER_ASK_SZ) > 0 ? cell(st, 0, e + LOB_LOBSTER_ASK_PX) : INT64_MAX;
            int64_t hi_p = cell(st, 1, e + LOB_LOBSTER_ASK_SZ) > 0 ? cell(st, 1, e + LOB_LOBSTER_ASK_PX) : INT64_MAX;
            if (lo_k < lo_p || hi_k > hi_p) recon(st);
        }
        end_batch(st, start);
        if (st->nomem) return LOB_ERR_NOMEM;
        if (st->overflow) return LOB_ERR_BAD_QTY;
    }
    return LOB_OK;
}

int lob_lobster_stream_feed(lob_lobster_stream *st, size_t n, int64_t *msgs, int64_t *book, int book_checked,
                            lob_event *events, size_t cap, lob_lobster_result *res) {
    if (!res) return LOB_ERR_INVALID_ARG;
    memset(res, 0, sizeof *res);
    res->error_row = res->stop_row = -1;
    res->out_of_order_row = res->halt_row = res->skipped_row = -1;
    res->order_mismatch_row = res->size_mismatch_row = res->removed_row = res->unknown_row = -1;
    if (!st || st->dead || (n && (!msgs || !book)) || (cap && !events)) return LOB_ERR_INVALID_ARG;
    if (n > SIZE_MAX / MC / sizeof(int64_t) || n > SIZE_MAX / (4 * st->N) / sizeof(int64_t))
        return LOB_ERR_INVALID_ARG;
    st->res = res;
    st->out = events;
    st->cap = cap;
    st->pos = 0;
    st->overflow = st->nomem = 0;
    int rc = check_block(st, n, msgs, book, book_checked, res);
    if (rc != LOB_OK) return rc;
    rc = run(st, n, msgs, book);
    res->n_events = st->pos;
    if (rc == LOB_OK && (st->nomem || st->overflow)) rc = st->nomem ? LOB_ERR_NOMEM : LOB_ERR_BAD_QTY;
    if (rc == LOB_ERR_BAD_QTY && !res->error) {
        res->error = LOB_LOBSTER_ERR_OVERFLOW; /* error_row set where it overflowed */
        res->error_col = 3;
    }
    if (rc != LOB_OK || res->stop_reason != LOB_LOBSTER_STOP_NONE) {
        st->dead = 1;
        return rc;
    }
    if (n) {
        memcpy(st->prev_copy, book + (n - 1) * 4 * st->N, 4 * st->N * sizeof(int64_t));
        st->have_prev = 1;
    }
    st->rows_done += (int64_t)n;
    return LOB_OK;
}
