/*
 * synthetic.c - seeded synthetic L3 order flow (a zero-intelligence market),
 * generated in C and streamed in chunks of any size.
 *
 * Design (the market model itself is documented in lobsim/data/synthetic.py):
 * - One step draws the latent mid's move, the time gap and the feed latency,
 *   then one action chosen by weight: limit ADD (add_rate), cancel of a
 *   uniformly chosen live order (cancel_rate per live order; DELETE or a
 *   partial REDUCE), market order (execute_rate) or MODIFY (modify_rate).
 * - The resting orders live in a real lob_book (book.c): a market order is a
 *   lob_book_submit of a MARKET order, and its fills, in the book's
 *   price-time priority, become the EXECUTE events (a TRADE print closes each
 *   price level). The generator has no matching logic of its own.
 * - A uniform pick needs random access the book does not offer, and events
 *   need each order's side, price and qty: a dense array of the live orders
 *   (swap-remove) plus an open-addressing map id -> array slot (Fibonacci
 *   hash of sequential ids, linear probing, backward-shift deletion). Every
 *   book change is mirrored there; a fill that disagrees with the mirror is
 *   LOB_ERR_CORRUPT.
 * - Streaming: the state knows the stream's length and writes the next
 *   events into the caller's buffer. Events of a step that do not fit (a
 *   sweep straddling the buffer's end) wait in a pending queue that the next
 *   call emits first, so the bytes never depend on how the stream is chunked.
 *   A market order near the end is limited so that its batch fits in what is
 *   left: the stream always ends with a complete batch.
 * - Bit-identical output for a seed on every platform: xoshiro256** seeded
 *   through splitmix64. Draws are integer arithmetic, except the weighted
 *   choice of the action and the exponential / geometric draws, which use
 *   IEEE-754 doubles with basic operations only (+ - * /, exactly rounded
 *   everywhere): the logarithm is computed here from the bits (a table made
 *   at creation plus a short series), no libm, and FP contraction (fused
 *   multiply-add) is switched off for this file. A target that evaluates
 *   doubles in extended precision (FLT_EVAL_METHOD != 0, e.g. x87-only i386)
 *   needs -msse2 -mfpmath=sse. tests/test_synthetic.c pins a stream's hash.
 * - The latent mid is fixed point (2^-16 tick); its steps are uniform with
 *   standard deviation `volatility` ticks (a random walk: their sum tends to
 *   the Gaussian walk), and it is reflected at tick_levels + 2 ticks so every
 *   price stays positive (bids >= 1, asks >= 2: a bid clamped below the best
 *   ask is still a valid price).
 * - Nothing is allocated per event: the live array, the map, the fill and
 *   pending buffers grow geometrically (and the book uses its pools).
 */
#include "internal.h"

#include <string.h>

#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#define MID_ONE ((int64_t)1 << 16)               /* fixed point of the latent mid */
#define PRICE_MAX ((int64_t)1 << 40)             /* start_price bound; the mid is reflected below it */
#define QTY_MAX ((int64_t)1 << 40)               /* cap of one drawn or modified quantity */
#define TS_MAX (INT64_MAX - ((int64_t)1 << 46))  /* ts_exch saturates here; latency < 2^46 fits above */
#define RATE_MAX 1e6                             /* bound of rates, mean_qty, mean_offset */
#define NS_MAX 1e12                              /* bound of mean_gap_ns, latency_ns, latency_jitter_ns */
#define VOL_MAX 1000.0                           /* bound of volatility, ticks per step */
#define TICK_LEVELS_MAX 1000000
#define FIRST_FILLS 64
#define LN_BITS 8                                /* table of fast_ln(): 2^LN_BITS points */
#define LN_SIZE (1 << LN_BITS)
#define LN2 0.6931471805599453

typedef struct live_order {
    uint64_t id;
    int64_t price;
    int64_t qty;
    int64_t side;
} live_order;

typedef struct map_slot {
    uint64_t id; /* 0 = empty (ids start at >= 1 and never wrap) */
    size_t idx;  /* slot in live[] */
} map_slot;

struct lob_synth {
    /* knobs, converted once */
    int64_t total;                  /* events in the whole stream */
    int64_t tick_levels;
    double add_w, cancel_w, exec_w, modify_w;
    uint64_t reduce_thr;            /* reduce_share in units of 2^-32 */
    double qty_scale, off_scale;    /* 1 / -ln(1 - p) of the geometric draws */
    double gap_mean, jitter_mean;
    int64_t latency;
    int64_t mid_half;               /* half width of a uniform mid step, 2^-16 tick */
    int64_t mid_lo, mid_hi;         /* reflecting bounds of the mid */

    double ln_inv[LN_SIZE], ln_c[LN_SIZE]; /* tables of fast_ln() */

    /* state */
    uint64_t rng[4];
    int64_t mid;                    /* latent mid, 2^-16 tick */
    int64_t t, local;               /* clocks of the current step */
    uint64_t next_id;
    int64_t produced;               /* events generated so far (returned or pending) */
    int status;                     /* sticky error of a failed step */
    lob_book *book;
    live_order *live;
    size_t n_live, live_cap;
    map_slot *map;
    size_t map_cap;                 /* power of two, >= 2 * n_live */
    int map_shift;                  /* 64 - log2(map_cap) */
    lob_fill *fills;
    size_t fills_cap;
    lob_event *pend;                /* events waiting for the next call: pend[pend_pos .. pend_len) */
    size_t pend_len, pend_pos, pend_cap; /* pend_cap >= 2 * fills_cap: a whole sweep fits */

    /* output of the running lob_synth_next */
    lob_event *out;
    size_t out_n, out_cap;
};

/* ------------------------------------------------------------- random draws */

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

/* xoshiro256** (Blackman and Vigna). */
static inline uint64_t rng_next(lob_synth *s) {
    uint64_t *r = s->rng;
    uint64_t out = rotl(r[1] * 5, 7) * 9;
    uint64_t t = r[1] << 17;
    r[2] ^= r[0];
    r[3] ^= r[1];
    r[1] ^= r[2];
    r[0] ^= r[3];
    r[2] ^= t;
    r[3] = rotl(r[3], 45);
    return out;
}

/* Uniform double in [0, 1), 53 bits. */
static inline double unit(uint64_t r) { return (double)(r >> 11) * 0x1p-53; }

/* Uniform integer in [0, n), n >= 1 (multiply-shift; a modulo beyond 2^32). */
static inline uint64_t below(lob_synth *s, uint64_t n) {
    uint64_t r = rng_next(s);
    if (n <= ((uint64_t)1 << 32)) return ((r >> 32) * n) >> 32;
    return r % n;
}

/* Natural logarithm of a positive normal double, from its bits with basic
 * operations only (bit-identical everywhere): x = m * 2^e with m in
 * [sqrt(1/2), sqrt(2)), ln m = 2 atanh(t), t = (m - 1) / (m + 1), |t| < 0.172,
 * summed to t^21 (relative error below 1e-16). Accurate but slow: it fills
 * the tables of fast_ln() and converts the knobs. */
static double ln_pos(double x) {
    uint64_t bits;
    memcpy(&bits, &x, sizeof bits);
    int e = (int)((bits >> 52) & 0x7ff) - 1023;
    bits = (bits & 0x000FFFFFFFFFFFFFULL) | 0x3FF0000000000000ULL;
    double m;
    memcpy(&m, &bits, sizeof m);
    if (m > 1.4142135623730951) {
        m *= 0.5;
        e += 1;
    }
    double t = (m - 1.0) / (m + 1.0), z = t * t;
    double p = 1.0 / 21;
    p = p * z + 1.0 / 19;
    p = p * z + 1.0 / 17;
    p = p * z + 1.0 / 15;
    p = p * z + 1.0 / 13;
    p = p * z + 1.0 / 11;
    p = p * z + 1.0 / 9;
    p = p * z + 1.0 / 7;
    p = p * z + 1.0 / 5;
    p = p * z + 1.0 / 3;
    p = p * z + 1.0;
    return (double)e * LN2 + 2.0 * t * p;
}

/* Fill the tables of fast_ln(): for c = 1 + (i + 1/2) / LN_SIZE, 1 / c and ln c. */
static void ln_tables(lob_synth *s) {
    for (int i = 0; i < LN_SIZE; i++) {
        double c = 1.0 + ((double)i + 0.5) / LN_SIZE;
        s->ln_inv[i] = 1.0 / c;
        s->ln_c[i] = ln_pos(c);
    }
}

/* ln(k * 2^-53) for an integer 1 <= k <= 2^53, the hot path: x = m * 2^e
 * with m in [1, 2) near a table point c (the top LN_BITS bits of m), ln m =
 * ln c + ln(1 + r), r = m / c - 1, |r| < 2^-9, by its series to r^5
 * (absolute error below 2e-17). */
static inline double fast_ln(const lob_synth *s, uint64_t k) {
    double x = (double)k;
    uint64_t bits;
    memcpy(&bits, &x, sizeof bits);
    int e = (int)(bits >> 52) - 1023 - 53; /* x > 0 and normal */
    int i = (int)((bits >> (52 - LN_BITS)) & (LN_SIZE - 1));
    bits = (bits & 0x000FFFFFFFFFFFFFULL) | 0x3FF0000000000000ULL;
    double m;
    memcpy(&m, &bits, sizeof m);
    double r = m * s->ln_inv[i] - 1.0, r2 = r * r;
    double p = r + r2 * ((-0.5 + r * (1.0 / 3)) + r2 * (-0.25 + r * 0.2));
    return ((double)e * LN2 + s->ln_c[i]) + p;
}

/* A standard exponential draw, -ln(u) with u uniform in (0, 1]: in [0, 36.8]. */
static inline double exp1(lob_synth *s) { return -fast_ln(s, (rng_next(s) >> 11) + 1); }

/* floor(mean * Exp(1)): an exponential time in ns, < 2^46 for mean <= NS_MAX. */
static inline int64_t exp_ns(lob_synth *s, double mean) { return (int64_t)(mean * exp1(s)); }

/* Geometric on {1, 2, ...} with success probability p, given scale =
 * 1 / -ln(1 - p) (0 when p = 1): 1 + floor(Exp(1) * scale), capped at QTY_MAX. */
static inline int64_t geometric(lob_synth *s, double scale) {
    if (scale == 0.0) return 1;
    double g = exp1(s) * scale;
    return g < (double)(QTY_MAX - 1) ? 1 + (int64_t)g : QTY_MAX;
}

/* The scale of geometric() for a distribution of the given mean (>= 1). */
static double geometric_scale(double mean) {
    if (mean <= 1.0) return 0.0;
    return 1.0 / -ln_pos(1.0 - 1.0 / mean);
}

/* --------------------------------------------------- live orders and id map */

static size_t map_home(const lob_synth *s, uint64_t id) { return (size_t)(lob_fib_mix(id) >> s->map_shift); }

static int map_rebuild(lob_synth *s, size_t cap) {
    map_slot *m = calloc(cap, sizeof *m);
    if (!m) return LOB_ERR_NOMEM;
    free(s->map);
    s->map = m;
    s->map_cap = cap;
    int bits = 0;
    while (((size_t)1 << bits) < cap) bits++;
    s->map_shift = 64 - bits;
    for (size_t i = 0; i < s->n_live; i++) {
        size_t h = map_home(s, s->live[i].id);
        while (m[h].id) h = (h + 1) & (cap - 1);
        m[h].id = s->live[i].id;
        m[h].idx = i;
    }
    return LOB_OK;
}

/* Room for one more live order (before the book is touched). */
static int live_reserve(lob_synth *s) {
    int rc = LOB_GROW(s->live, s->live_cap, s->n_live + 1);
    if (rc) return rc;
    if (2 * (s->n_live + 1) > s->map_cap) {
        if (s->map_cap > SIZE_MAX / 4) return LOB_ERR_NOMEM;
        return map_rebuild(s, s->map_cap * 2);
    }
    return LOB_OK;
}

static size_t map_find(const lob_synth *s, uint64_t id) {
    size_t mask = s->map_cap - 1;
    for (size_t h = map_home(s, id);; h = (h + 1) & mask) {
        if (s->map[h].id == id) return h;
        if (!s->map[h].id) return SIZE_MAX;
    }
}

/* Append a live order; live_reserve() made room. */
static void live_push(lob_synth *s, uint64_t id, int side, int64_t price, int64_t qty) {
    size_t i = s->n_live++;
    s->live[i] = (live_order){id, price, qty, side};
    size_t mask = s->map_cap - 1, h = map_home(s, id);
    while (s->map[h].id) h = (h + 1) & mask;
    s->map[h].id = id;
    s->map[h].idx = i;
}

/* Remove the live order in map slot h (swap-remove from the array,
 * backward-shift deletion in the map). */
static void live_remove(lob_synth *s, size_t h) {
    size_t mask = s->map_cap - 1;
    size_t i = s->map[h].idx, last = --s->n_live;
    if (i != last) {
        s->live[i] = s->live[last];
        s->map[map_find(s, s->live[i].id)].idx = i;
    }
    size_t hole = h;
    for (size_t j = (h + 1) & mask; s->map[j].id; j = (j + 1) & mask) {
        size_t home = map_home(s, s->map[j].id);
        /* j's entry may move into the hole if its home is not in (hole, j] */
        if (((j - home) & mask) >= ((j - hole) & mask)) {
            s->map[hole] = s->map[j];
            hole = j;
        }
    }
    s->map[hole].id = 0;
}

/* ------------------------------------------------------------------ output */

static inline void emit(lob_synth *s, uint64_t id, int side, int64_t price, int64_t qty, int kind,
                        int flags) {
    lob_event *e = s->out_n < s->out_cap ? &s->out[s->out_n++] : &s->pend[s->pend_len++];
    e->ts_exch = s->t;
    e->ts_local = s->local;
    e->order_id = id;
    e->price = price;
    e->qty = qty;
    e->side = (int8_t)side;
    e->kind = (uint8_t)kind;
    e->flags = (uint16_t)flags;
    e->reserved = 0;
    s->produced++;
}

/* Grow the fill buffer to `need` and the pending queue to twice that. */
static int fills_reserve(lob_synth *s, size_t need) {
    if (need > SIZE_MAX / 4) return LOB_ERR_NOMEM;
    int rc = LOB_GROW(s->pend, s->pend_cap, 2 * need);
    if (rc) return rc;
    return LOB_GROW(s->fills, s->fills_cap, need);
}

/* ----------------------------------------------------------------- actions */

typedef struct top {
    int has_bid, has_ask;
    int64_t bid, ask;
} top;

/* A bid at or below `px`, never crossing the best ask, >= 1. */
static inline int64_t bid_price(const top *tp, int64_t px) {
    if (px < 1) px = 1;
    if (tp->has_ask && px >= tp->ask) px = tp->ask - 1; /* asks are >= 2 */
    return px;
}

/* An ask at or above `px`, never crossing the best bid, >= 2. */
static inline int64_t ask_price(const top *tp, int64_t px) {
    if (px < 2) px = 2;
    if (tp->has_bid && px <= tp->bid) px = tp->bid + 1;
    return px;
}

static int do_add(lob_synth *s, const top *tp) {
    int side = (rng_next(s) >> 63) ? LOB_SIDE_ASK : LOB_SIDE_BID;
    int64_t off = geometric(s, s->off_scale) - 1;
    if (off > s->tick_levels) off = s->tick_levels;
    int64_t qty = geometric(s, s->qty_scale);
    int64_t ref = s->mid / MID_ONE;
    int64_t price = side == LOB_SIDE_BID ? bid_price(tp, ref - off) : ask_price(tp, ref + 1 + off);
    int rc = live_reserve(s);
    if (rc) return rc;
    uint64_t id = s->next_id++;
    rc = lob_book_add(s->book, id, side, price, qty);
    if (rc) return rc;
    live_push(s, id, side, price, qty);
    emit(s, id, side, price, qty, LOB_EV_ADD, LOB_FLAG_BATCH_END);
    return LOB_OK;
}

static int do_cancel(lob_synth *s) {
    live_order *o = &s->live[below(s, s->n_live)];
    uint64_t r = rng_next(s);
    if (o->qty >= 2 && (r >> 32) < s->reduce_thr) {
        int64_t cut = 1 + (int64_t)below(s, (uint64_t)o->qty - 1); /* 1 .. qty-1: a true partial */
        int rc = lob_book_reduce(s->book, o->id, cut);
        if (rc) return rc;
        o->qty -= cut;
        emit(s, o->id, (int)o->side, o->price, cut, LOB_EV_REDUCE, LOB_FLAG_BATCH_END);
        return LOB_OK;
    }
    live_order c = *o;
    int rc = lob_book_delete(s->book, c.id);
    if (rc) return rc;
    live_remove(s, map_find(s, c.id));
    emit(s, c.id, (int)c.side, c.price, c.qty, LOB_EV_DELETE, LOB_FLAG_BATCH_END);
    return LOB_OK;
}

/* A market order: more often a buy when the latent mid is above the book's
 * mid; its fills become EXECUTEs, each price level closed by a TRADE print. */
static int do_sweep(lob_synth *s, const top *tp) {
    uint64_t r = rng_next(s);
    int buy;
    if (tp->has_bid && tp->has_ask) {
        /* P(buy) = clamp(0.5 + 0.2 * (mid - book mid in ticks), 0.1, 0.9), in units of 2^-32 */
        int64_t diff = s->mid - (tp->bid + tp->ask) * (MID_ONE / 2);
        if (diff > 2 * MID_ONE) diff = 2 * MID_ONE;
        if (diff < -2 * MID_ONE) diff = -2 * MID_ONE;
        int64_t p = ((int64_t)1 << 31) + diff * MID_ONE / 5;
        if (p < 429496730) p = 429496730;    /* 0.1 */
        if (p > 3865470566) p = 3865470566;  /* 0.9 */
        buy = (int64_t)(r >> 32) < p;
    } else {
        buy = tp->has_ask;
    }
    int taker = buy ? LOB_SIDE_BID : LOB_SIDE_ASK, rside = -taker;
    int64_t qty = geometric(s, s->qty_scale);
    uint64_t id = s->next_id++;
    /* events = fills + levels <= 2 * fills: keep them within what is left */
    size_t max_fills = (size_t)((s->total - s->produced) / 2);
    lob_submit_result res;
    for (;;) {
        size_t cap = s->fills_cap < max_fills ? s->fills_cap : max_fills;
        int rc = lob_book_submit(s->book, id, taker, 0, qty, LOB_TIF_MARKET, s->fills, cap, &res);
        if (rc == LOB_ERR_CAPACITY) {
            if (res.n_fills > max_fills) {
                qty = 1; /* one fill always fits (max_fills >= 1) */
                continue;
            }
            rc = fills_reserve(s, res.n_fills);
            if (rc) return rc;
            continue;
        }
        if (rc) return rc;
        break;
    }
    if (res.n_fills == 0) return LOB_ERR_CORRUPT; /* the side was not empty */
    int64_t level_px = s->fills[0].price, level_qty = 0;
    for (size_t i = 0; i < res.n_fills; i++) {
        const lob_fill *f = &s->fills[i];
        size_t h = map_find(s, f->maker_id);
        if (h == SIZE_MAX) return LOB_ERR_CORRUPT;
        live_order *o = &s->live[s->map[h].idx];
        if (o->side != rside || o->price != f->price || o->qty - f->qty != f->maker_remaining)
            return LOB_ERR_CORRUPT;
        if (f->price != level_px) {
            emit(s, 0, taker, level_px, level_qty, LOB_EV_TRADE, 0);
            level_px = f->price;
            level_qty = 0;
        }
        level_qty += f->qty;
        emit(s, f->maker_id, rside, f->price, f->qty, LOB_EV_EXECUTE, 0);
        if (f->maker_remaining == 0)
            live_remove(s, h);
        else
            o->qty = f->maker_remaining;
    }
    emit(s, 0, taker, level_px, level_qty, LOB_EV_TRADE, LOB_FLAG_BATCH_END);
    return LOB_OK;
}

/* New qty (half the time smaller if it can be, else larger), and 40% of the
 * time a price 1-3 ticks away, never crossing. */
static int do_modify(lob_synth *s, const top *tp) {
    live_order *o = &s->live[below(s, s->n_live)];
    uint64_t r = rng_next(s);
    int64_t q = o->qty, new_q;
    if (q >= 2 && ((r >> 63) == 0 || q >= QTY_MAX)) {
        new_q = 1 + (int64_t)below(s, (uint64_t)q - 1);
    } else {
        int64_t d = geometric(s, s->qty_scale);
        new_q = d < QTY_MAX - q ? q + d : QTY_MAX;
    }
    int64_t new_px = o->price;
    uint32_t m = (uint32_t)r;
    if (m < 1717986918u) { /* 0.4 */
        int64_t k = 1 + (int64_t)below(s, 3);
        new_px += m < 858993459u ? k : -k; /* 0.2: up */
        new_px = o->side == LOB_SIDE_BID ? bid_price(tp, new_px) : ask_price(tp, new_px);
    }
    int rc = lob_book_modify(s->book, o->id, new_px, new_q);
    if (rc) return rc;
    o->price = new_px;
    o->qty = new_q;
    emit(s, o->id, (int)o->side, new_px, new_q, LOB_EV_MODIFY, LOB_FLAG_BATCH_END);
    return LOB_OK;
}

static int step(lob_synth *s) {
    /* latent mid: uniform step in [-mid_half, mid_half], reflected into [mid_lo, mid_hi] */
    uint64_t r = rng_next(s);
    s->mid += (int64_t)(((r >> 32) * (uint64_t)(2 * s->mid_half + 1)) >> 32) - s->mid_half;
    if (s->mid < s->mid_lo) s->mid = 2 * s->mid_lo - s->mid;
    if (s->mid > s->mid_hi) s->mid = 2 * s->mid_hi - s->mid;

    /* clocks: exponential gap; ts_local = ts_exch + latency, never decreasing */
    if (s->gap_mean > 0) {
        int64_t gap = exp_ns(s, s->gap_mean);
        s->t = s->t < TS_MAX - gap ? s->t + gap : TS_MAX;
    }
    int64_t local = s->t + s->latency + (s->jitter_mean > 0 ? exp_ns(s, s->jitter_mean) : 0);
    if (local > s->local) s->local = local;

    double w_cancel = s->cancel_w * (double)s->n_live;
    double w_exec = s->n_live ? s->exec_w : 0.0;
    double w_mod = s->n_live ? s->modify_w : 0.0;
    double c1 = s->add_w, c2 = c1 + w_cancel, c3 = c2 + w_exec;
    double x = unit(rng_next(s)) * (c3 + w_mod);
    enum { ADD, CANCEL, SWEEP, MODIFY } act;
    if (x < c1 || !s->n_live)
        act = ADD;
    else if (x < c2)
        act = CANCEL;
    else if (x < c3)
        act = SWEEP;
    else
        act = MODIFY;
    /* rounding may land x on the total: fall back to the last action with weight */
    if (act == MODIFY && w_mod == 0.0) act = SWEEP;
    if (act == SWEEP && w_exec == 0.0) act = w_cancel > 0.0 ? CANCEL : ADD;
    if (act == SWEEP && s->total - s->produced < 2) act = ADD; /* no room for a sweep's two events */
    if (act == CANCEL) return do_cancel(s);
    top tp;
    int64_t q;
    tp.has_bid = lob_book_best(s->book, LOB_SIDE_BID, &tp.bid, &q);
    tp.has_ask = lob_book_best(s->book, LOB_SIDE_ASK, &tp.ask, &q);
    switch (act) {
    case SWEEP: return do_sweep(s, &tp);
    case MODIFY: return do_modify(s, &tp);
    default: return do_add(s, &tp);
    }
}

/* -------------------------------------------------------------- public API */

static int params_ok(const lob_synth_params *p) {
    return p->n_events >= 0 && p->tick_levels >= 1 && p->tick_levels <= TICK_LEVELS_MAX &&
           p->start_price > 4 * p->tick_levels && p->start_price <= PRICE_MAX &&
           p->mean_qty >= 1.0 && p->mean_qty <= RATE_MAX &&
           p->add_rate > 0.0 && p->add_rate <= RATE_MAX &&
           p->cancel_rate >= 0.0 && p->cancel_rate <= RATE_MAX &&
           p->execute_rate >= 0.0 && p->execute_rate <= RATE_MAX &&
           p->modify_rate >= 0.0 && p->modify_rate <= RATE_MAX &&
           p->reduce_share >= 0.0 && p->reduce_share <= 1.0 &&
           p->mean_offset >= 0.0 && p->mean_offset <= RATE_MAX &&
           p->volatility >= 0.0 && p->volatility <= VOL_MAX &&
           p->mean_gap_ns >= 0.0 && p->mean_gap_ns <= NS_MAX &&
           p->latency_ns >= 0 && (double)p->latency_ns <= NS_MAX &&
           p->latency_jitter_ns >= 0.0 && p->latency_jitter_ns <= NS_MAX &&
           p->t0_ns >= 0 && p->t0_ns <= ((int64_t)1 << 62) &&
           p->first_order_id >= 1 && p->first_order_id <= ((uint64_t)1 << 63);
}

void lob_synth_free(lob_synth *s) {
    if (!s) return;
    lob_book_free(s->book);
    free(s->live);
    free(s->map);
    free(s->fills);
    free(s->pend);
    free(s);
}

int lob_synth_new(const lob_synth_params *p, uint64_t seed, lob_synth **out) {
    if (!out) return LOB_ERR_INVALID_ARG;
    *out = NULL;
    if (!p || !params_ok(p)) return LOB_ERR_INVALID_ARG;
    lob_synth *s = calloc(1, sizeof *s);
    if (!s) return LOB_ERR_NOMEM;
    int rc = lob_book_new(LOB_BOOK_L3, &s->book);
    if (!rc) rc = map_rebuild(s, 64);
    if (!rc) rc = fills_reserve(s, FIRST_FILLS);
    if (rc) {
        lob_synth_free(s);
        return rc;
    }
    ln_tables(s);
    s->total = p->n_events;
    s->tick_levels = p->tick_levels;
    s->add_w = p->add_rate;
    s->cancel_w = p->cancel_rate;
    s->exec_w = p->execute_rate;
    s->modify_w = p->modify_rate;
    s->reduce_thr = (uint64_t)(p->reduce_share * 4294967296.0);
    s->qty_scale = geometric_scale(p->mean_qty);
    s->off_scale = geometric_scale(p->mean_offset + 1.0);
    s->gap_mean = p->mean_gap_ns;
    s->jitter_mean = p->latency_jitter_ns;
    s->latency = p->latency_ns;
    s->mid_half = (int64_t)(p->volatility * 1.7320508075688772 * (double)MID_ONE); /* sd = half / sqrt 3 */
    s->mid_lo = (p->tick_levels + 2) * MID_ONE;
    s->mid_hi = PRICE_MAX * MID_ONE;
    s->mid = p->start_price * MID_ONE + MID_ONE / 2;
    s->t = s->local = p->t0_ns;
    s->next_id = p->first_order_id;
    uint64_t x = seed;
    for (int i = 0; i < 4; i++) s->rng[i] = splitmix64(&x);
    *out = s;
    return LOB_OK;
}

int lob_synth_next(lob_synth *s, lob_event *events, size_t cap, size_t *n_out) {
    if (n_out) *n_out = 0;
    if (!s || !n_out || (cap && !events)) return LOB_ERR_INVALID_ARG;
    if (s->status) return s->status;
    s->out = events;
    s->out_n = 0;
    s->out_cap = cap;
    int rc = LOB_OK;
    while (s->out_n < cap) {
        if (s->pend_pos < s->pend_len) {
            size_t k = s->pend_len - s->pend_pos;
            if (k > cap - s->out_n) k = cap - s->out_n;
            memcpy(events + s->out_n, s->pend + s->pend_pos, k * sizeof *events);
            s->out_n += k;
            s->pend_pos += k;
            if (s->pend_pos == s->pend_len) s->pend_pos = s->pend_len = 0;
            continue;
        }
        if (s->produced >= s->total) break;
        rc = step(s);
        if (rc) {
            s->status = rc;
            break;
        }
    }
    *n_out = s->out_n;
    s->out = NULL;
    s->out_cap = s->out_n = 0;
    return rc;
}
