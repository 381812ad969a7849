/*
 * lobster.c - the sequential part of the LOBSTER reader: replay the messages
 * against the vendor's top-N book and lay out the normalized L3 events.
 *
 * Design (the semantics are documented in lobsim/data/lobster.py):
 * - A level is keyed raw_price * 2 + (1 if bid) and lives in a growable array
 *   found through an open-addressing hash map (linear probing, no deletion).
 *   It holds our total, its synthetic orders (a FIFO linked through a
 *   growable pool indexed by synthetic serial, id = 2^63 + serial) with their
 *   sum, and the slice of the adds at this level (grouped by level, in row
 *   order) that a "forget stale orders" step has not scanned yet.
 * - Known orders are the file's adds: a hash map id -> add slot is built once
 *   (this also finds duplicate adds); each add slot holds its row, level,
 *   remaining size (-1 = not live) and a forgotten flag. A pre-pass resolves
 *   every cancel/execute row to its add slot, or marks it as naming a known
 *   order at another side/price (never live, reported as order_mismatch).
 * - The replay emits events straight into the caller's buffer: the seed
 *   batch, then per message its own event (or the inferred events replacing
 *   it), the TRADE print of an execution, and the events setting levels the
 *   vendor's window newly reveals. Past `cap` it keeps counting, so one retry
 *   with the reported size always suffices.
 * - The vendor's book is read in place as row blocks (the parser's chunks):
 *   a cursor follows the current and previous row across blocks. The same
 *   block layout serves lob_lobster_check_book, the orderbook validation.
 * - Nothing is allocated per message except amortized growth of the level
 *   table, the synthetic pool and a scratch price list. Inputs are checked up
 *   front (types, directions, price and size ranges) so that level keys,
 *   price steps and sums cannot overflow; level totals use checked adds.
 */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

#define NIL (-1)
#define PRICE_LIMIT ((int64_t)1 << 61) /* prices are < 2^61 so key = price * 2 + 1 fits */
#define SYN_BASE ((uint64_t)1 << 63)

typedef struct level {
    int64_t key;
    int64_t tot;       /* our size at the level: live known orders + synthetic */
    int64_t syn_sum;   /* size of its synthetic orders */
    int64_t syn_head;  /* oldest synthetic order (pool index), NIL if none */
    int64_t syn_tail;  /* newest */
    int64_t add_lo;    /* adds at this level: grouped[add_lo .. add_hi) in row order */
    int64_t add_hi;
    int64_t scanned;   /* grouped[add_lo .. scanned) already forgotten or skipped */
} level;

typedef struct syn_order {
    int64_t qty;
    int64_t prev, next;
} syn_order;

typedef struct state {
    const lob_lobster_input *in;
    lob_lobster_result *res;
    lob_event *out;
    size_t cap;
    size_t pos;        /* events emitted so far (may exceed cap) */
    int64_t ts;        /* clock of the events being emitted */
    int overflow;      /* sticky: a level total overflowed int64 */
    int64_t row;       /* message row being replayed (0 while seeding), for error_row */
    int nomem;         /* sticky: a growth failed */

    level *lv;
    size_t nlv, lv_cap;
    int64_t *lv_slots; /* hash table of level index + 1 (0 = empty) */
    size_t lv_mask;
    int lv_bits;

    syn_order *syn;
    size_t nsyn, syn_cap;

    size_t nadd;
    int64_t *add_row, *add_level, *add_rem, *grouped;
    uint64_t *add_id;
    uint8_t *add_forgotten;
    int64_t *id_slots; /* hash table of add slot + 1 */
    size_t id_mask;
    int id_bits;
    int64_t *row_ref;  /* per cancel/execute row: add slot, NIL (no add), or -2 (elsewhere) */

    int64_t *scratch;  /* candidate prices / seed keys and sizes */
    size_t scratch_cap;

    size_t cur_b, cur_off;   /* the vendor's row of the message being replayed: block, offset */
    size_t prev_b, prev_off; /* the row before it */
} state;

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
static int64_t cell(const state *st, int prev, size_t c) {
    const lob_lobster_book *bk = &st->in->book;
    size_t b = prev ? st->prev_b : st->cur_b, off = prev ? st->prev_off : st->cur_off;
    return bk->columns[b * 4 * bk->levels + c][off];
}

static int64_t to_ticks(const lob_lobster_input *in, int64_t raw) {
    if (in->price_mul != 1) return (int64_t)((uint64_t)raw * (uint64_t)in->price_mul); /* wraps like numpy */
    return raw / in->price_div;
}

static void emit(state *st, int kind, uint64_t id, int side, int64_t raw_price, int64_t qty, int flags) {
    if (st->pos < st->cap) {
        lob_event *e = &st->out[st->pos];
        e->ts_exch = st->ts;
        e->ts_local = st->ts;
        e->order_id = id;
        e->price = raw_price ? to_ticks(st->in, raw_price) : 0;
        e->qty = qty;
        e->side = (int8_t)side;
        e->kind = (uint8_t)kind;
        e->flags = (uint16_t)flags;
        e->reserved = 0;
    }
    st->pos++;
}

/* Close the batch that started at event `start` (if it has events). */
static void end_batch(state *st, size_t start) {
    if (st->pos > start && st->pos - 1 < st->cap) st->out[st->pos - 1].flags |= LOB_FLAG_BATCH_END;
}

/* ------------------------------------------------------------ level map */
static int lv_rehash(state *st, int bits) {
    size_t size = (size_t)1 << bits;
    int64_t *slots = calloc(size, sizeof *slots);
    if (!slots) return 0;
    for (size_t i = 0; i < st->nlv; i++) {
        size_t h = (size_t)(lob_fib_mix((uint64_t)st->lv[i].key) >> (64 - bits));
        while (slots[h]) h = (h + 1) & (size - 1);
        slots[h] = (int64_t)i + 1;
    }
    free(st->lv_slots);
    st->lv_slots = slots;
    st->lv_mask = size - 1;
    st->lv_bits = bits;
    return 1;
}

/* Index of the level `key`, or NIL. */
static int64_t lv_find(const state *st, int64_t key) {
    size_t h = (size_t)(lob_fib_mix((uint64_t)key) >> (64 - st->lv_bits));
    for (;;) {
        int64_t s = st->lv_slots[h];
        if (!s) return NIL;
        if (st->lv[s - 1].key == key) return s - 1;
        h = (h + 1) & st->lv_mask;
    }
}

/* Index of the level `key`, created empty if absent; NIL when out of memory. */
static int64_t lv_get(state *st, int64_t key) {
    int64_t i = lv_find(st, key);
    if (i != NIL) return i;
    if ((st->nlv + 1) * 2 > st->lv_mask + 1 && !lv_rehash(st, st->lv_bits + 1)) {
        st->nomem = 1;
        return NIL;
    }
    if (LOB_GROW(st->lv, st->lv_cap, st->nlv + 1) != LOB_OK) {
        st->nomem = 1;
        return NIL;
    }
    level *l = &st->lv[st->nlv];
    l->key = key;
    l->tot = l->syn_sum = 0;
    l->syn_head = l->syn_tail = NIL;
    l->add_lo = l->add_hi = l->scanned = 0;
    size_t h = (size_t)(lob_fib_mix((uint64_t)key) >> (64 - st->lv_bits));
    while (st->lv_slots[h]) h = (h + 1) & st->lv_mask;
    st->lv_slots[h] = (int64_t)st->nlv + 1;
    return (int64_t)st->nlv++;
}

static int64_t tot_of(const state *st, int64_t key) {
    int64_t i = lv_find(st, key);
    return i == NIL ? 0 : st->lv[i].tot;
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

/* DELETE (SNAPSHOT) every live known order at level li added up to `row`
 * and not scanned before; returns their total. */
static int64_t forget_known(state *st, int64_t li, int side, int64_t p, int64_t row) {
    level *l = &st->lv[li];
    int64_t lo = l->scanned, hi = l->add_hi;
    while (lo < hi) { /* first add in [scanned, add_hi) after `row` */
        int64_t mid = lo + (hi - lo) / 2;
        if (st->add_row[st->grouped[mid]] <= row) lo = mid + 1;
        else hi = mid;
    }
    int64_t total = 0, count = 0;
    for (int64_t g = l->scanned; g < lo; g++) {
        int64_t a = st->grouped[g];
        int64_t q = st->add_rem[a];
        if (q < 0) continue;
        st->add_rem[a] = -1;
        st->add_forgotten[a] = 1;
        total = qadd(st, total, q);
        count++;
        emit(st, LOB_EV_DELETE, st->add_id[a], side, p, q, LOB_FLAG_SNAPSHOT);
    }
    l->scanned = lo;
    st->res->stale_orders_forgotten += count;
    l->tot = qsub(st, l->tot, total);
    return total;
}

/* Take `need` lots from level li's synthetic orders (oldest first) with
 * `kind` events, topping the pool up first if it is short; -> HOW_*. */
static int consume(state *st, int64_t li, int side, int64_t p, int64_t need, int kind, int64_t row) {
    int how = HOW_SYNTHETIC;
    int64_t pool = st->lv[li].syn_sum;
    if (pool < need) {
        int64_t total = forget_known(st, li, side, p, row);
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
static void set_level(state *st, int64_t key, int side, int64_t p, int64_t target, int64_t row) {
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
    if (st->lv[li].syn_sum < qsub(st, ours, target)) forget_known(st, li, side, p, row);
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

/* Prices in [lo, hi] on `side` just came into the vendor's view at `row`
 * (the current row):
 * each of our levels there, and each vendor level there, := vendor size. */
static void reveal(state *st, int side, int64_t lo, int64_t hi, int64_t row) {
    const lob_lobster_input *in = st->in;
    size_t N = in->book.levels;
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
    int64_t tick = in->raw_tick;
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
        set_level(st, p * 2 + bit, side, p, target, row);
    }
    return;
oom:
    st->nomem = 1;
}

/* Row k's window reaches deeper than row k-1's on some side: set the newly
 * exposed levels to the vendor's sizes. */
static void recon(state *st, size_t k) {
    const lob_lobster_input *in = st->in;
    size_t N = in->book.levels, e = 4 * (N - 1); /* the window's edge: level N */
    int64_t bs = cell(st, 0, e + LOB_LOBSTER_BID_SZ), as = cell(st, 0, e + LOB_LOBSTER_ASK_SZ);
    int64_t lo_k = bs > 0 ? cell(st, 0, e + LOB_LOBSTER_BID_PX) : INT64_MIN;
    int64_t hi_k = as > 0 ? cell(st, 0, e + LOB_LOBSTER_ASK_PX) : INT64_MAX;
    int64_t lo_p = cell(st, 1, e + LOB_LOBSTER_BID_SZ) > 0 ? cell(st, 1, e + LOB_LOBSTER_BID_PX) : INT64_MIN;
    int64_t hi_p = cell(st, 1, e + LOB_LOBSTER_ASK_SZ) > 0 ? cell(st, 1, e + LOB_LOBSTER_ASK_PX) : INT64_MAX;
    int64_t tick = in->raw_tick, row = (int64_t)k;
    if (lo_k < lo_p) {
        /* simple: full window before and after, only the new level N lies below
         * the old edge, and the exposed range is short */
        int simple = lo_k != INT64_MIN && within_64_ticks((uint64_t)(lo_p - lo_k), tick) &&
                     (N < 2 || cell(st, 0, e - 4 + LOB_LOBSTER_BID_PX) >= lo_p);
        if (simple) {
            if (tot_of(st, lo_k * 2 + 1) != bs) set_level(st, lo_k * 2 + 1, 1, lo_k, bs, row);
            for (int64_t p = lo_k + tick; p < lo_p; p += tick) /* levels the vendor no longer shows */
                if (tot_of(st, p * 2 + 1)) set_level(st, p * 2 + 1, 1, p, 0, row);
        } else {
            reveal(st, 1, lo_k, lo_p - 1, row);
        }
    }
    if (hi_k > hi_p) {
        int simple = hi_k != INT64_MAX && within_64_ticks((uint64_t)(hi_k - hi_p), tick) &&
                     (N < 2 || cell(st, 0, e - 4 + LOB_LOBSTER_ASK_PX) <= hi_p);
        if (simple) {
            if (tot_of(st, hi_k * 2) != as) set_level(st, hi_k * 2, -1, hi_k, as, row);
            for (int64_t p = hi_k - tick; p > hi_p; p -= tick)
                if (tot_of(st, p * 2)) set_level(st, p * 2, -1, p, 0, row);
        } else {
            reveal(st, -1, hi_p + 1, hi_k, row);
        }
    }
}

/* ------------------------------------------------------------ the passes */
/* Range and type checks that keep every key, step and index in bounds. */
static int validate(const lob_lobster_input *in, lob_lobster_result *res) {
    if (in->raw_tick < 1 || in->raw_tick >= PRICE_LIMIT || in->price_mul < 1 || in->price_div < 1 ||
        (in->price_mul != 1 && in->price_div != 1) || in->raw_tick % in->price_div)
        return LOB_ERR_INVALID_ARG;
    size_t n = in->n;
    for (size_t k = 0; k < n; k++) {
        int64_t t = in->type[k], p = in->raw_price[k], d = in->direction[k];
        res->error_row = (int64_t)k;
        if (t < 1 || t > 7 || (d != 1 && d != -1)) return LOB_ERR_INVALID_ARG;
        if (t <= 6) {
            if (p <= 0 || p >= PRICE_LIMIT) return LOB_ERR_BAD_PRICE;
            if (in->qty[k] <= 0) return LOB_ERR_BAD_QTY;
        } else if (p < -1 || p > 1) {
            return LOB_ERR_BAD_PRICE;
        }
    }
    const lob_lobster_book *bk = &in->book;
    size_t base = 0, width = 4 * bk->levels;
    for (size_t blk = 0; blk < bk->blocks; base += bk->rows[blk++]) {
        size_t rows = bk->rows[blk];
        for (size_t c = 0; rows && c < width; c += 2) { /* (price, size) column pairs */
            const int64_t *px = bk->columns[blk * width + c], *sz = bk->columns[blk * width + c + 1];
            int bad = 0;
            for (size_t k = 0; k < rows; k++) /* branch-free scan; find the row only on failure */
                bad |= (sz[k] < 0) | ((sz[k] > 0) & ((px[k] <= 0) | (px[k] >= PRICE_LIMIT)));
            if (!bad) continue;
            for (size_t k = 0; k < rows; k++) {
                res->error_row = (int64_t)(base + k);
                if (sz[k] < 0) return LOB_ERR_BAD_QTY;
                if (sz[k] > 0 && (px[k] <= 0 || px[k] >= PRICE_LIMIT)) return LOB_ERR_BAD_PRICE;
            }
        }
    }
    res->error_row = -1;
    return LOB_OK;
}

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

static int divides(const divisor *v, uint64_t x) {
    return !(x & v->low_mask) && (x >> v->shift) * v->inv <= v->limit;
}

/* First bad row of one side, or -1. */
static int64_t first_bad_row(const lob_lobster_book *bk, int64_t raw_tick, int ask) {
    divisor dv = divisor_of((uint64_t)raw_tick);
    int cp = ask ? LOB_LOBSTER_ASK_PX : LOB_LOBSTER_BID_PX;
    size_t width = 4 * bk->levels, base = 0;
    for (size_t blk = 0; blk < bk->blocks; base += bk->rows[blk++]) {
        const int64_t *const *col = bk->columns + blk * width;
        size_t end = bk->rows[blk]; /* shrinks to the first bad row found in this block */
        for (size_t j = 0; j < bk->levels; j++) {
            const int64_t *px = col[4 * j + cp], *sz = col[4 * j + cp + 1];
            const int64_t *ppx = j ? col[4 * (j - 1) + cp] : NULL, *psz = j ? col[4 * (j - 1) + cp + 1] : NULL;
            for (size_t k = 0; k < end; k++) {
                int64_t s = sz[k], p = px[k];
                if (s < 0) goto bad;
                if (s == 0) continue;
                if (p <= 0 || p >= PRICE_LIMIT || (raw_tick > 1 && !divides(&dv, (uint64_t)p))) goto bad;
                if (j && (psz[k] <= 0 || (ask ? p <= ppx[k] : p >= ppx[k]))) goto bad;
                continue;
            bad:
                end = k;
                break;
            }
        }
        if (end < bk->rows[blk]) return (int64_t)(base + end);
    }
    return -1;
}

/* NULL pointers, or block columns missing: LOB_ERR_INVALID_ARG. */
static int check_blocks(const lob_lobster_book *bk) {
    if (bk->blocks && (!bk->rows || !bk->columns)) return LOB_ERR_INVALID_ARG;
    if (bk->levels > SIZE_MAX / 64 || (bk->blocks && bk->levels && bk->blocks > SIZE_MAX / 8 / (4 * bk->levels)))
        return LOB_ERR_INVALID_ARG;
    for (size_t b = 0; b < bk->blocks; b++)
        for (size_t c = 0; bk->rows[b] && c < 4 * bk->levels; c++)
            if (!bk->columns[b * 4 * bk->levels + c]) return LOB_ERR_INVALID_ARG;
    return LOB_OK;
}

int lob_lobster_check_book(const lob_lobster_book *book, int64_t raw_tick, int64_t *bad_row, int *bad_side) {
    if (!book || !bad_row || !bad_side || raw_tick < 1) return LOB_ERR_INVALID_ARG;
    *bad_row = -1;
    *bad_side = LOB_SIDE_NONE;
    int rc = check_blocks(book);
    if (rc != LOB_OK) return rc;
    for (int ask = 1; ask >= 0; ask--) {
        int64_t r = first_bad_row(book, raw_tick, ask);
        if (r >= 0) {
            *bad_row = r;
            *bad_side = ask ? LOB_SIDE_ASK : LOB_SIDE_BID;
            return LOB_ERR_BAD_PRICE;
        }
    }
    return LOB_OK;
}

static int64_t key_of(const lob_lobster_input *in, size_t k) {
    return in->raw_price[k] * 2 + (in->direction[k] > 0);
}

/* Known orders: id map (duplicates), per-row references, adds grouped by level. */
static int index_orders(state *st) {
    const lob_lobster_input *in = st->in;
    size_t n = in->n, na = 0;
    for (size_t k = 0; k < n; k++) na += in->type[k] == 1;
    st->nadd = na;
    size_t m = na ? na : 1;
    st->add_row = malloc(m * sizeof(int64_t));
    st->add_level = malloc(m * sizeof(int64_t));
    st->add_rem = malloc(m * sizeof(int64_t));
    st->grouped = malloc(m * sizeof(int64_t));
    st->add_id = malloc(m * sizeof(uint64_t));
    st->add_forgotten = calloc(m, 1);
    st->row_ref = malloc((n ? n : 1) * sizeof(int64_t));
    int bits = 4;
    while (((size_t)1 << bits) < 2 * m) bits++;
    st->id_bits = bits;
    st->id_mask = ((size_t)1 << bits) - 1;
    st->id_slots = calloc((size_t)1 << bits, sizeof(int64_t));
    if (!st->add_row || !st->add_level || !st->add_rem || !st->grouped || !st->add_id ||
        !st->add_forgotten || !st->row_ref || !st->id_slots)
        return LOB_ERR_NOMEM;
    lob_lobster_result *res = st->res;
    size_t a = 0;
    int dup = 0;
    for (size_t k = 0; k < n; k++) {
        if (in->type[k] != 1) continue;
        uint64_t id = (uint64_t)in->order_id[k];
        size_t h = (size_t)(lob_fib_mix(id) >> (64 - bits));
        int found = 0;
        while (st->id_slots[h]) {
            if (st->add_id[st->id_slots[h] - 1] == id) {
                found = 1;
                break;
            }
            h = (h + 1) & st->id_mask;
        }
        if (found) { /* its second add is the first hit for this id */
            if (!dup || in->order_id[k] < res->dup_id) {
                res->dup_id = in->order_id[k];
                res->error_row = (int64_t)k;
            }
            dup = 1;
            continue;
        }
        st->id_slots[h] = (int64_t)a + 1;
        st->add_id[a] = id;
        st->add_row[a] = (int64_t)k;
        st->add_rem[a] = -1;
        int64_t li = lv_get(st, key_of(in, k));
        if (li == NIL) return LOB_ERR_NOMEM;
        st->add_level[a] = li;
        st->lv[li].add_hi++; /* count for now */
        st->row_ref[k] = (int64_t)a++;
    }
    if (dup) return LOB_ERR_DUPLICATE_ORDER;
    int64_t off = 0; /* counts -> slices; scanned doubles as the fill cursor */
    for (size_t i = 0; i < st->nlv; i++) {
        int64_t c = st->lv[i].add_hi;
        st->lv[i].add_lo = st->lv[i].scanned = off;
        off += c;
        st->lv[i].add_hi = off;
    }
    for (size_t j = 0; j < na; j++) st->grouped[st->lv[st->add_level[j]].scanned++] = (int64_t)j;
    for (size_t i = 0; i < st->nlv; i++) st->lv[i].scanned = st->lv[i].add_lo;
    for (size_t k = 0; k < n; k++) {
        int64_t t = in->type[k];
        if (t < 2 || t > 4) continue;
        uint64_t id = (uint64_t)in->order_id[k];
        size_t h = (size_t)(lob_fib_mix(id) >> (64 - bits));
        int64_t ref = NIL;
        while (st->id_slots[h]) {
            int64_t s = st->id_slots[h] - 1;
            if (st->add_id[s] == id) {
                ref = s;
                break;
            }
            h = (h + 1) & st->id_mask;
        }
        if (ref != NIL && (size_t)st->add_row[ref] < k) {
            size_t ar = (size_t)st->add_row[ref];
            if (in->raw_price[ar] != in->raw_price[k] || in->direction[ar] != in->direction[k]) {
                if (!res->order_mismatch++) {
                    res->order_mismatch_row = (int64_t)k;
                    res->order_mismatch_id = in->order_id[k];
                }
                ref = REF_ELSEWHERE;
            }
        }
        st->row_ref[k] = ref;
    }
    return LOB_OK;
}

/* The book before message 1: orderbook row 1 with message 1 undone. */
static int seed(state *st) {
    const lob_lobster_input *in = st->in;
    size_t N = in->book.levels, nk = 0;
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
    int64_t t0 = in->type[0];
    if (t0 >= 1 && t0 <= 4) {
        int64_t key = key_of(in, 0);
        size_t i = 0;
        while (i < nk && kv[2 * i] != key) i++;
        int64_t have = i < nk ? kv[2 * i + 1] : 0;
        have = t0 == 1 ? qsub(st, have, in->qty[0]) : qadd(st, have, in->qty[0]);
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
    return st->nomem ? LOB_ERR_NOMEM : LOB_OK;
}

static void note_stop(state *st, int reason, size_t k) {
    st->res->stop_reason = reason;
    st->res->stop_row = (int64_t)k;
}

/* Message k's cancel/execute (t = 2..4); returns 1 if strict mode stops here. */
static int on_reference(state *st, size_t k, int64_t t) {
    const lob_lobster_input *in = st->in;
    lob_lobster_result *res = st->res;
    int64_t q = in->qty[k], p = in->raw_price[k], ref = st->row_ref[k];
    int side = in->direction[k] > 0 ? 1 : -1;
    int kind = t == 4 ? LOB_EV_EXECUTE : LOB_EV_REDUCE;
    uint64_t id = (uint64_t)in->order_id[k];
    int64_t li = lv_get(st, key_of(in, k));
    if (li == NIL) return 0;
    int64_t rem = ref >= 0 ? st->add_rem[ref] : -1;
    if (rem >= 0) { /* a live known order */
        if (q < rem && t != 3) {
            st->add_rem[ref] = rem - q;
            st->lv[li].tot = qsub(st, st->lv[li].tot, q);
            emit(st, (int)(t == 2 ? LOB_EV_REDUCE : LOB_EV_EXECUTE), id, side, p, q, 0);
        } else if (q == rem) {
            st->add_rem[ref] = -1;
            st->lv[li].tot = qsub(st, st->lv[li].tot, q);
            emit(st, (int)(t == 2 ? LOB_EV_REDUCE : t == 3 ? LOB_EV_DELETE : LOB_EV_EXECUTE), id, side, p, q, 0);
        } else { /* the order changed out of view; move the level by the message's size */
            if (!res->size_mismatch++) {
                res->size_mismatch_row = (int64_t)k;
                res->size_mismatch_id = in->order_id[k];
                res->size_mismatch_qty = q;
                res->size_mismatch_remaining = rem;
                if (in->strict) {
                    note_stop(st, LOB_LOBSTER_STOP_SIZE_MISMATCH, k);
                    return 1;
                }
            }
            st->add_rem[ref] = -1;
            st->lv[li].tot = qsub(st, st->lv[li].tot, rem);
            emit(st, (int)(t == 3 ? LOB_EV_DELETE : kind), id, side, p, rem, 0);
            if (q > rem) consume(st, li, side, p, q - rem, kind, (int64_t)k);
            else add_syn(st, li, side, p, rem - q); /* deleted with less than tracked: the rest stays */
        }
        return 0;
    }
    int how = consume(st, li, side, p, q, kind, (int64_t)k);
    if (ref >= 0 && st->add_forgotten[ref]) { /* dropped as stale earlier: expected */
        res->messages_on_forgotten_orders++;
    } else if (ref == REF_ELSEWHERE) { /* counted as order_mismatch */
    } else if (ref >= 0 && (size_t)st->add_row[ref] < k) {
        if (!res->removed++) {
            res->removed_row = (int64_t)k;
            res->removed_id = in->order_id[k];
            res->removed_type = t;
            if (in->strict) {
                note_stop(st, LOB_LOBSTER_STOP_REMOVED, k);
                return 1;
            }
        }
    } else {
        int64_t *c = how == HOW_SYNTHETIC ? &res->unknown_from_synthetic
                   : how == HOW_STALE   ? &res->unknown_after_forgetting_stale
                                        : &res->unknown_from_hidden_depth;
        ++*c;
        if (res->unknown_row < 0) {
            res->unknown_row = (int64_t)k;
            res->unknown_id = in->order_id[k];
            res->unknown_type = t;
            if (in->strict) {
                note_stop(st, LOB_LOBSTER_STOP_UNKNOWN, k);
                return 1;
            }
        }
    }
    return 0;
}

static int run(state *st) {
    const lob_lobster_input *in = st->in;
    size_t n = in->n;
    const lob_lobster_book *bk = &in->book;
    st->ts = n ? in->ts[0] : 0;
    while (n && bk->rows[st->cur_b] == 0) st->cur_b++; /* the vendor's row 0 */
    if (n) {
        int rc = seed(st);
        if (rc != LOB_OK) return rc;
    }
    if (st->pos == 0) emit(st, LOB_EV_CLEAR, 0, 0, 0, 0, LOB_FLAG_SNAPSHOT); /* an empty seed clears */
    end_batch(st, 0);
    if (n == 0) return LOB_OK;
    size_t e = 4 * (bk->levels - 1); /* the window's edge: level N */
    for (size_t k = 0; k < n; k++) {
        st->row = (int64_t)k;
        if (k > 0) { /* move the vendor's row along (blocks sum to n rows) */
            st->prev_b = st->cur_b;
            st->prev_off = st->cur_off++;
            while (st->cur_off >= bk->rows[st->cur_b]) {
                st->cur_b++;
                st->cur_off = 0;
            }
        }
        int64_t t = in->type[k];
        size_t start = st->pos;
        st->ts = in->ts[k];
        int side = in->direction[k] > 0 ? 1 : -1;
        int64_t p = in->raw_price[k], q = in->qty[k];
        uint64_t id = (uint64_t)in->order_id[k];
        if (t == 1) {
            int64_t li = lv_get(st, key_of(in, k));
            if (li == NIL) return LOB_ERR_NOMEM;
            st->lv[li].tot = qadd(st, st->lv[li].tot, q);
            st->add_rem[st->row_ref[k]] = q;
            emit(st, LOB_EV_ADD, id, side, p, q, 0);
        } else if (t <= 4) {
            if (on_reference(st, k, t)) return LOB_OK;
            if (t == 4) emit(st, LOB_EV_TRADE, id, -side, p, q, 0);
        } else if (!in->skip[k]) {
            if (t == 5) emit(st, LOB_EV_TRADE, id, -side, p, q, LOB_FLAG_HIDDEN);
            else if (t == 6) emit(st, LOB_EV_TRADE, id, 0, p, q, 0);
            else emit(st, LOB_EV_STATUS, 0, 0, 0,
                      p == -1 ? LOB_STATUS_HALT : p == 0 ? LOB_STATUS_QUOTING : LOB_STATUS_TRADING, 0);
        }
        if (k > 0) { /* the window reaches deeper on a side: its last level moved outwards */
            int64_t lo_k = cell(st, 0, e + LOB_LOBSTER_BID_SZ) > 0 ? cell(st, 0, e + LOB_LOBSTER_BID_PX) : INT64_MIN;
            int64_t lo_p = cell(st, 1, e + LOB_LOBSTER_BID_SZ) > 0 ? cell(st, 1, e + LOB_LOBSTER_BID_PX) : INT64_MIN;
            int64_t hi_k = cell(st, 0, e + LOB_LOBSTER_ASK_SZ) > 0 ? cell(st, 0, e + LOB_LOBSTER_ASK_PX) : INT64_MAX;
            int64_t hi_p = cell(st, 1, e + LOB_LOBSTER_ASK_SZ) > 0 ? cell(st, 1, e + LOB_LOBSTER_ASK_PX) : INT64_MAX;
            if (lo_k < lo_p || hi_k > hi_p) recon(st, k);
        }
        end_batch(st, start);
        if (st->nomem) return LOB_ERR_NOMEM;
    }
    return LOB_OK;
}

int lob_lobster_replay(const lob_lobster_input *in, lob_event *events, size_t cap,
                       lob_lobster_result *result) {
    if (!in || !result || (cap && !events)) return LOB_ERR_INVALID_ARG;
    memset(result, 0, sizeof *result);
    result->error_row = result->stop_row = -1;
    result->order_mismatch_row = result->size_mismatch_row = result->removed_row = result->unknown_row = -1;
    if (in->n && (!in->type || !in->order_id || !in->raw_price || !in->qty || !in->direction || !in->ts ||
                  !in->skip || in->book.levels == 0))
        return LOB_ERR_INVALID_ARG;
    if (check_blocks(&in->book) != LOB_OK) return LOB_ERR_INVALID_ARG;
    size_t rows = 0;
    for (size_t b = 0; b < in->book.blocks; b++) {
        if (in->book.rows[b] > in->n - rows) return LOB_ERR_INVALID_ARG;
        rows += in->book.rows[b];
    }
    if (rows != in->n) return LOB_ERR_INVALID_ARG;
    int rc = validate(in, result);
    if (rc != LOB_OK) return rc;
    state st;
    memset(&st, 0, sizeof st);
    st.in = in;
    st.res = result;
    st.out = events;
    st.cap = cap;
    if (!lv_rehash(&st, 6)) return LOB_ERR_NOMEM;
    rc = index_orders(&st);
    if (rc == LOB_OK) rc = run(&st);
    if (rc == LOB_OK && st.nomem) rc = LOB_ERR_NOMEM;
    if (rc == LOB_OK && st.overflow) rc = LOB_ERR_BAD_QTY;
    result->n_events = st.pos;
    if (rc == LOB_OK && result->stop_reason == LOB_LOBSTER_STOP_NONE && st.pos > cap) rc = LOB_ERR_CAPACITY;
    if (rc == LOB_OK && st.pos > cap) result->n_events = cap; /* strict stop: only what was written */
    free(st.lv);
    free(st.lv_slots);
    free(st.syn);
    free(st.add_row);
    free(st.add_level);
    free(st.add_rem);
    free(st.grouped);
    free(st.add_id);
    free(st.add_forgotten);
    free(st.id_slots);
    free(st.row_ref);
    free(st.scratch);
    return rc;
}
