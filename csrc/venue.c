/*
 * venue.c - the simulated venue: the user's orders in the replayed queues,
 * latency on both clocks, and the replay loop.
 *
 * Design:
 * - Two books over one event stream: the venue book applies events at
 *   ts_exch (the venue's clock), the local book at their visibility time,
 *   the running maximum of ts_local (a feed is FIFO). The user's orders are
 *   never inserted into either book: the replayed market does not react to
 *   them (no impact). They live in a small array beside the venue book with
 *   their queue position.
 * - Two channels, each a FIFO stamped with arrival times: requests (local ->
 *   venue, arrival = max(send + entry latency, previous arrival)) and
 *   responses (venue -> local, delivery = max(venue time + response
 *   latency, previous delivery)), so nothing overtakes on one connection.
 * - lob_sim_run() is one merge over five sources, by (time, rank): venue
 *   data event (0), request arrival (1), local data event (2), response
 *   delivery (3), timer (4). So data at the venue time of an order's
 *   arrival is applied before it, and a wake-up at t sees every local event
 *   and response up to t. It returns at the strategy's wake-ups only.
 * - Queue position. L3 data: the order takes the book's next priority stamp
 *   on arrival; a data order is ahead of it exactly when it is at the same
 *   price with a smaller stamp, so cancels and executions ahead reduce the
 *   qty ahead, and an execution of a data order behind it (larger stamp, or
 *   a worse price) fills it first. L2 data: ahead starts at the displayed
 *   size; trades at the price reduce it (their excess fills the order); a
 *   decrease of the level not explained by the trades printed there since
 *   its previous update is a cancel, split by the queue model. Prints
 *   through the price, and the opposite best reaching it, fill in full.
 * - The user's marketable orders take the venue book's displayed liquidity;
 *   what they took is remembered as consumed until the data changes that
 *   order (L3) or level (L2), so it is never taken twice.
 * - Cost: a data event costs two book updates; when the user has resting
 *   orders, events at their side add O(resting user orders).
 */
#include "internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MAX_CHUNKS 8

typedef struct {
    const lob_event *ev;
    size_t n;
} chunk_t;

/* A user order at the venue. */
typedef struct {
    uint64_t id;
    int64_t price;
    int64_t qty;      /* original */
    int64_t leaves;   /* open qty */
    double ahead;     /* data qty ahead in the queue (exact for L3) */
    uint64_t stamp;   /* L3 priority */
    uint64_t seq;     /* arrival order at the venue: priority among the user's own orders */
    double trade_credit;  /* L2: qty printed at the price since the level's last update */
    double dec_credit;    /* L2: what decreases taken as cancels took off `ahead`; a later print may explain it */
    int64_t dec_time;     /* L2: venue time of the last such decrease */
    int64_t stop;         /* stop price while armed */
    int64_t expire;       /* venue time it expires (0 = never) */
    int8_t side;
    uint8_t tif;
    uint8_t state;
    uint8_t armed;        /* a stop order waiting for its trigger: not in the queue, never matched */
} uorder_t;

typedef struct {
    int64_t send;     /* local time sent */
    int64_t arrive;   /* venue time it arrives */
    int64_t reject_at; /* >= 0: rejected by the venue (empirical record), learnt at this local time */
    uint64_t id;
    int64_t price;
    int64_t qty;
    int64_t stop;     /* stop price if has_stop */
    int64_t expire;   /* GTD expiry (0 = none) */
    int32_t kind;     /* LOB_REQ_* */
    int32_t side;
    int32_t tif;
    int32_t has_stop;
} request_t;

/* Liquidity the user took: per data order (L3) or per level (L2). */
typedef struct {
    uint64_t id;   /* L3 order id; L2: 0 */
    int64_t price;
    int64_t qty;
    int8_t side;
} consumed_t;

/* What the simulator knows of every id it has seen (duplicates, too late). */
typedef struct {
    uint64_t key;
    int32_t val; /* index into live orders, DEAD for a final order, FREE for an empty slot */
} idslot_t;

#define FREE_SLOT (-2)
#define DEAD (-1)

/* Sort key of a resting user order: price priority (better first), then the
 * book's priority stamp, then its arrival among the user's own orders. */
typedef struct {
    int64_t key; /* -price for bids, price for asks: ascending = better first */
    uint64_t stamp, seq;
    size_t idx;
} prio_t;

struct lob_sim {
    lob_sim_config cfg;
    lob_book *venue, *local;
    int l3;
    /* data */
    chunk_t chunks[MAX_CHUNKS];
    size_t first_chunk;       /* number of chunks released before chunks[0] */
    size_t n_chunks;          /* pending chunks in chunks[] */
    int data_end;
    size_t v_c, v_i;          /* venue cursor: chunk slot, index */
    size_t l_c, l_i;          /* local cursor */
    int64_t l_vis;            /* running max of ts_local applied locally */
    int64_t first_local;      /* ts_local of the first event, or INT64_MIN before it */
    int64_t events_venue, events_local;
    /* channels */
    request_t *req;
    size_t req_head, req_n, req_cap;
    int64_t last_arrive;
    size_t *resp;             /* msg indices in delivery order */
    size_t resp_head, resp_n, resp_cap;
    int64_t last_deliver;
    /* user orders */
    uorder_t *uo;
    size_t n_uo, cap_uo;
    idslot_t *ids;
    size_t ids_cap, n_ids;
    consumed_t *cons;
    size_t n_cons, cap_cons;
    /* outputs */
    lob_sim_msg *msgs;
    size_t n_msgs, cap_msgs;
    lob_sim_pos *pos;
    size_t n_pos, cap_pos;
    lob_sim_markout *mk;      /* one per fill */
    size_t n_mk, cap_mk;
    size_t mk_next[4];        /* per horizon: the first markout not yet resolved */
    int64_t next_sample;      /* venue time of the next sample row; INT64_MIN before the first event */
    int64_t last_venue_ts;    /* ts_exch of the last event the venue applied */
    int clock_closed;         /* the data is over: markouts and samples up to its end are resolved */
    int in_event;             /* a venue data event is being applied: fills take the mid before it */
    int halted;               /* a STATUS halt (or quoting-only) event in the data: no matching */
    int64_t last_trade;       /* price of the data's last trade print (stop triggers) */
    int have_trade;
    size_t n_armed;           /* armed stop orders */
    size_t n_expiring;        /* live orders with an expiry */
    int64_t event_mid2;
    /* account (venue side) */
    int64_t position;
    double cash, fees;
    uint64_t next_seq;        /* user orders seated so far */
    /* clocks and wake-ups */
    int64_t now;
    int64_t next_timer;
    int stop_pending;
    int64_t stop_time;
    int stop_timer, stop_feed;
    int book_changed;
    int64_t top[4];
    prio_t *prio_keys;        /* scratch of by_priority */
    size_t *prio;
    size_t cap_keys, cap_prio;
    size_t *dlv;              /* msg indices in the order they reached the strategy */
    size_t n_dlv, cap_dlv;
    size_t dlv_mark;          /* deliveries reported up to here (NEED_DATA reports none) */
    lob_rng rng;
    /* scratch for level walks */
    int64_t *scr_px, *scr_qty;
    uint64_t *scr_ids;
    size_t scr_cap;
    int err;                  /* sticky allocation failure */
};

/* a + b for times and durations (b >= 0), saturating at INT64_MAX instead of wrapping. */
static int64_t sat_add(int64_t a, int64_t b) { return b > 0 && a > INT64_MAX - b ? INT64_MAX : a + b; }

/* ------------------------------------------------------------- latency */

static double normal(lob_rng *r) {
    /* Box-Muller, one value per call: deterministic for a seed. */
    double u1 = lob_rng_unit(r), u2 = lob_rng_unit(r);
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

static int64_t lognormal(const lob_latency *m, lob_rng *r) {
    double x = m->median_ns * exp(m->sigma * normal(r));
    if (!(x < 9.0e18)) x = 9.0e18;
    int64_t v = (int64_t)llround(x);
    if (v < m->min_ns) v = m->min_ns;
    if (v > m->max_ns) v = m->max_ns;
    return v;
}

/* Index of the last record with send_ts <= t, or -1. */
static ptrdiff_t record_at(const lob_latency *m, int64_t t) {
    size_t lo = 0, hi = m->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (m->send_ts[mid] <= t) lo = mid + 1;
        else hi = mid;
    }
    return (ptrdiff_t)lo - 1;
}

/* Linear interpolation of a recorded latency (a[i] - b[i]) at t. */
static int64_t interp(const lob_latency *m, const int64_t *a, const int64_t *b, int64_t t) {
    ptrdiff_t i = record_at(m, t);
    if (i < 0) i = 0;
    size_t j = (size_t)i;
    /* skip rejection records when interpolating */
    while (j < m->n && m->venue_ts[j] < 0) j++;
    if (j >= m->n) {
        j = (size_t)i;
        while (j > 0 && m->venue_ts[j] < 0) j--;
        return a[j] - b[j];
    }
    int64_t v0 = a[j] - b[j];
    if (m->send_ts[j] >= t) return v0;
    size_t k = j + 1;
    while (k < m->n && m->venue_ts[k] < 0) k++;
    if (k >= m->n || m->send_ts[k] == m->send_ts[j]) return v0;
    int64_t v1 = a[k] - b[k];
    double f = (double)(t - m->send_ts[j]) / (double)(m->send_ts[k] - m->send_ts[j]);
    if (f > 1) f = 1;
    return v0 + (int64_t)llround(f * (double)(v1 - v0));
}

static int64_t entry_latency(const lob_latency *m, lob_rng *r, int64_t t) {
    switch (m->kind) {
    case LOB_LAT_LOGNORMAL: return lognormal(m, r);
    case LOB_LAT_EMPIRICAL: return interp(m, m->venue_ts, m->send_ts, t);
    default: return m->entry_ns;
    }
}

static int64_t response_latency(const lob_latency *m, lob_rng *r, int64_t t) {
    switch (m->kind) {
    case LOB_LAT_LOGNORMAL: return lognormal(m, r);
    case LOB_LAT_EMPIRICAL: return interp(m, m->response_ts, m->venue_ts, t);
    default: return m->response_ns;
    }
}

/* A request sent at t is rejected per the empirical record: the local time
 * the rejection is learnt, else -1. */
static int64_t venue_rejects(const lob_latency *m, int64_t t) {
    if (m->kind != LOB_LAT_EMPIRICAL) return -1;
    ptrdiff_t i = record_at(m, t);
    if (i < 0 || m->venue_ts[i] >= 0) return -1;
    int64_t d = m->response_ts[i] - m->send_ts[i];
    return sat_add(t, d > 0 ? d : 0);
}

static int latency_valid(const lob_latency *m) {
    switch (m->kind) {
    case LOB_LAT_CONSTANT: return m->entry_ns >= 0 && m->response_ns >= 0;
    case LOB_LAT_LOGNORMAL:
        return m->median_ns > 0 && isfinite(m->median_ns) && m->sigma >= 0 && isfinite(m->sigma) &&
               m->min_ns >= 0 && m->max_ns >= m->min_ns;
    case LOB_LAT_EMPIRICAL: {
        if (m->n == 0 || !m->send_ts || !m->venue_ts || !m->response_ts) return 0;
        int accepted = 0;
        for (size_t i = 0; i < m->n; i++) {
            accepted |= m->venue_ts[i] >= 0;
            if (i && m->send_ts[i] < m->send_ts[i - 1]) return 0;
            if (m->venue_ts[i] >= 0 && (m->venue_ts[i] < m->send_ts[i] || m->response_ts[i] < m->venue_ts[i]))
                return 0;
        }
        return accepted; /* only rejections: no latency to interpolate */
    }
    default: return 0;
    }
}

int lob_latency_sample(const lob_latency *m, uint64_t seed, const int64_t *at, size_t n, int64_t *entry,
                       int64_t *response) {
    if (!m || (n && !at) || !latency_valid(m)) return LOB_ERR_INVALID_ARG;
    lob_rng r;
    lob_rng_seed(&r, seed);
    for (size_t i = 0; i < n; i++) {
        int64_t e = entry_latency(m, &r, at[i]);
        int64_t s = response_latency(m, &r, at[i]);
        if (entry) entry[i] = e;
        if (response) response[i] = s;
    }
    return LOB_OK;
}

/* ------------------------------------------------------------ lifecycle */

int lob_sim_new(const lob_sim_config *cfg, lob_sim **out) {
    if (!out) return LOB_ERR_INVALID_ARG;
    *out = NULL;
    if (!cfg || (cfg->book_type != LOB_BOOK_L2 && cfg->book_type != LOB_BOOK_L3)) return LOB_ERR_INVALID_ARG;
    if (cfg->queue_model < LOB_QUEUE_RISK_AVERSE || cfg->queue_model > LOB_QUEUE_CUSTOM) return LOB_ERR_INVALID_ARG;
    if (cfg->queue_model == LOB_QUEUE_CUSTOM && !cfg->queue_fn) return LOB_ERR_INVALID_ARG;
    if (cfg->queue_model == LOB_QUEUE_POWER && !(cfg->queue_power > 0 && isfinite(cfg->queue_power)))
        return LOB_ERR_INVALID_ARG;
    for (int k = 0; k < 3; k++)
        if (!latency_valid(&cfg->latency[k])) return LOB_ERR_INVALID_ARG;
    if (!isfinite(cfg->maker_fee) || !isfinite(cfg->taker_fee) || !isfinite(cfg->value_per_tick_lot) ||
        cfg->timer_ns < 0 || cfg->sample_ns < 0)
        return LOB_ERR_INVALID_ARG;
    for (int h = 0; h < 4; h++)
        if (cfg->markout_ns[h] < 0) return LOB_ERR_INVALID_ARG;
    lob_sim *s = calloc(1, sizeof *s);
    if (!s) return LOB_ERR_NOMEM;
    s->cfg = *cfg;
    s->l3 = cfg->book_type == LOB_BOOK_L3;
    if (lob_book_new(cfg->book_type, &s->venue) || lob_book_new(cfg->book_type, &s->local)) {
        lob_book_free(s->venue);
        free(s);
        return LOB_ERR_NOMEM;
    }
    s->first_local = INT64_MIN;
    s->next_sample = INT64_MIN;
    s->last_arrive = s->last_deliver = INT64_MIN;
    s->now = INT64_MIN;
    lob_rng_seed(&s->rng, cfg->seed);
    *out = s;
    return LOB_OK;
}

void lob_sim_free(lob_sim *s) {
    if (!s) return;
    lob_book_free(s->venue);
    lob_book_free(s->local);
    free(s->req);
    free(s->resp);
    free(s->uo);
    free(s->ids);
    free(s->cons);
    free(s->msgs);
    free(s->pos);
    free(s->dlv);
    free(s->mk);
    free(s->prio_keys);
    free(s->prio);
    free(s->scr_px);
    free(s->scr_qty);
    free(s->scr_ids);
    free(s);
}

/* ------------------------------------------------------------- id table */

static size_t id_home(const lob_sim *s, uint64_t id) {
    return (size_t)(lob_mix64(id) & (s->ids_cap - 1));
}

static size_t id_probe(const lob_sim *s, uint64_t id) {
    size_t i = id_home(s, id);
    while (s->ids[i].val != FREE_SLOT && s->ids[i].key != id) i = (i + 1) & (s->ids_cap - 1);
    return i;
}

/* The slot of id, or SIZE_MAX if never seen. */
static size_t id_find(const lob_sim *s, uint64_t id) {
    if (!s->ids_cap) return SIZE_MAX;
    size_t i = id_probe(s, id);
    return s->ids[i].val == FREE_SLOT ? SIZE_MAX : i;
}

static int id_insert(lob_sim *s, uint64_t id, int32_t val) {
    if ((s->n_ids + 1) * 2 > s->ids_cap) {
        size_t cap = s->ids_cap ? s->ids_cap * 2 : 256;
        idslot_t *n = malloc(cap * sizeof *n), *old = s->ids;
        if (!n) return LOB_ERR_NOMEM;
        for (size_t i = 0; i < cap; i++) n[i].val = FREE_SLOT;
        size_t oc = s->ids_cap;
        s->ids = n;
        s->ids_cap = cap;
        for (size_t i = 0; i < oc; i++)
            if (old[i].val != FREE_SLOT) s->ids[id_probe(s, old[i].key)] = old[i];
        free(old);
    }
    size_t i = id_probe(s, id);
    s->ids[i].key = id;
    s->ids[i].val = val;
    s->n_ids++;
    return LOB_OK;
}

/* Live user order index of id, or -1. */
static ptrdiff_t live_index(const lob_sim *s, uint64_t id) {
    size_t slot = id_find(s, id);
    return slot == SIZE_MAX ? -1 : s->ids[slot].val;
}

/* ------------------------------------------------------------- outputs */

static lob_sim_msg *new_msg(lob_sim *s) {
    if (LOB_GROW(s->msgs, s->cap_msgs, s->n_msgs + 1)) {
        s->err = LOB_ERR_NOMEM;
        return NULL;
    }
    lob_sim_msg *m = &s->msgs[s->n_msgs++];
    memset(m, 0, sizeof *m);
    return m;
}

/* Queue message index k for delivery at venue time t + the response latency
 * of the request kind it answers (fills: the new order's). */
static void respond(lob_sim *s, size_t k, int64_t t, int kind) {
    int64_t d = sat_add(t, response_latency(&s->cfg.latency[kind], &s->rng, t));
    if (d < s->last_deliver) d = s->last_deliver;
    s->last_deliver = d;
    s->msgs[k].ts_local = d;
    if (s->resp_head + s->resp_n == s->resp_cap && s->resp_head) {
        memmove(s->resp, s->resp + s->resp_head, s->resp_n * sizeof *s->resp);
        s->resp_head = 0;
    }
    if (LOB_GROW(s->resp, s->resp_cap, s->resp_head + s->resp_n + 1)) {
        s->err = LOB_ERR_NOMEM;
        return;
    }
    s->resp[s->resp_head + s->resp_n++] = k;
}

/* Record an order update of order o (or of a bare id when o is NULL) at venue time t. */
static void order_msg(lob_sim *s, const uorder_t *o, uint64_t id, int state, int reason, int request, int64_t t,
                      int64_t price, int side) {
    lob_sim_msg *m = new_msg(s);
    if (!m) return;
    m->ts_exch = t;
    m->order_id = o ? o->id : id;
    m->price = o ? o->price : price;
    m->qty = o ? o->qty : 0;
    m->leaves_qty = o ? o->leaves : 0;
    m->position = s->position;
    m->cash = s->cash;
    m->side = (int8_t)(o ? o->side : side);
    m->kind = LOB_MSG_ORDER;
    m->state = (uint8_t)state;
    m->reason = (uint8_t)reason;
    m->tif = o ? o->tif : 0;
    m->request = (uint8_t)request;
    respond(s, s->n_msgs - 1, t, request);
}

static void pos_row(lob_sim *s, int64_t t, int kind, const lob_book *book) {
    if (LOB_GROW(s->pos, s->cap_pos, s->n_pos + 1)) {
        s->err = LOB_ERR_NOMEM;
        return;
    }
    lob_sim_pos *p = &s->pos[s->n_pos++];
    memset(p, 0, sizeof *p);
    int64_t q;
    p->ts = t;
    p->position = s->position;
    p->cash = s->cash;
    p->fees = s->fees;
    lob_book_best(book, LOB_SIDE_BID, &p->bid, &q);
    lob_book_best(book, LOB_SIDE_ASK, &p->ask, &q);
    p->kind = kind;
}

/* bid + ask of the venue book, 0 if a side is empty. */
static int64_t venue_mid2(const lob_sim *s) {
    int64_t b, a, q;
    if (!lob_book_best(s->venue, LOB_SIDE_BID, &b, &q) || !lob_book_best(s->venue, LOB_SIDE_ASK, &a, &q)) return 0;
    return b + a;
}

/* Venue time is about to pass `t` (the next venue event is later): record
 * what is due strictly before it, from the venue book as it stands. */
static void order_msg(lob_sim *s, const uorder_t *o, uint64_t id, int state, int reason, int request, int64_t t,
                      int64_t price, int side);
static void retire(lob_sim *s, size_t i);

/* Expire the open orders whose expiry is at or before t, earliest first, each at
 * its own expiry time. */
static void expire_due(lob_sim *s, int64_t t) {
    while (s->n_expiring) {
        size_t best = SIZE_MAX;
        for (size_t i = 0; i < s->n_uo; i++) {
            const uorder_t *o = &s->uo[i];
            if (o->expire && o->expire <= t && o->state != LOB_ORD_NEW &&
                (best == SIZE_MAX || o->expire < s->uo[best].expire ||
                 (o->expire == s->uo[best].expire && o->id < s->uo[best].id)))
                best = i;
        }
        if (best == SIZE_MAX) return;
        uorder_t *o = &s->uo[best];
        o->state = LOB_ORD_EXPIRED;
        order_msg(s, o, 0, LOB_ORD_EXPIRED, LOB_REJ_NONE, LOB_REQ_NEW, o->expire, 0, 0);
        retire(s, best);
    }
}

static void venue_clock(lob_sim *s, int64_t t) {
    if (s->n_expiring) expire_due(s, t);
    for (int h = 0; h < 4; h++) {
        int64_t d = s->cfg.markout_ns[h];
        if (d <= 0) continue;
        while (s->mk_next[h] < s->n_mk && sat_add(s->mk[s->mk_next[h]].ts, d) < t)
            s->mk[s->mk_next[h]++].after2[h] = venue_mid2(s);
    }
    if (s->cfg.sample_ns > 0 && s->next_sample != INT64_MIN) {
        while (s->next_sample < t && !s->err) {
            pos_row(s, s->next_sample, LOB_POS_SAMPLE, s->venue);
            s->next_sample = sat_add(s->next_sample, s->cfg.sample_ns); /* INT64_MAX: no more */
        }
    }
}

/* ----------------------------------------------------------- user orders */

static int final_state(int st) {
    return st == LOB_ORD_FILLED || st == LOB_ORD_CANCELLED || st == LOB_ORD_REJECTED || st == LOB_ORD_EXPIRED;
}

/* Drop live order i (now final) from the live array. */
static void retire(lob_sim *s, size_t i) {
    if (s->uo[i].armed) s->n_armed--;
    if (s->uo[i].expire) s->n_expiring--;
    size_t slot = id_find(s, s->uo[i].id);
    if (slot != SIZE_MAX) s->ids[slot].val = DEAD;
    s->n_uo--;
    if (i != s->n_uo) {
        s->uo[i] = s->uo[s->n_uo];
        size_t moved = id_find(s, s->uo[i].id);
        if (moved != SIZE_MAX) s->ids[moved].val = (int32_t)i;
    }
}

/* Fill qty of user order o at price (maker or taker) at venue time t. */
static void fill(lob_sim *s, uorder_t *o, int64_t price, int64_t qty, int maker, int64_t t) {
    double value = (double)price * (double)qty * s->cfg.value_per_tick_lot;
    double fee = value * (maker ? s->cfg.maker_fee : s->cfg.taker_fee);
    if (o->side > 0 ? s->position > INT64_MAX - qty : s->position < INT64_MIN + qty) {
        s->err = LOB_ERR_BAD_QTY; /* the position would leave int64: the run stops, never wraps */
        return;
    }
    s->position += o->side * qty;
    s->cash -= o->side * value + fee;
    s->fees += fee;
    o->leaves -= qty;
    lob_sim_msg *m = new_msg(s);
    if (!m) return;
    m->ts_exch = t;
    m->order_id = o->id;
    m->price = price;
    m->qty = qty;
    m->leaves_qty = o->leaves;
    m->position = s->position;
    m->fee = fee;
    m->cash = s->cash;
    m->side = o->side;
    m->kind = LOB_MSG_FILL;
    m->state = (uint8_t)(o->leaves ? LOB_ORD_PARTIALLY_FILLED : LOB_ORD_FILLED);
    m->maker = (uint8_t)(maker != 0);
    m->tif = o->tif;
    respond(s, s->n_msgs - 1, t, LOB_REQ_NEW);
    size_t fill_msg = s->n_msgs - 1;
    o->state = (uint8_t)(o->leaves ? LOB_ORD_PARTIALLY_FILLED : LOB_ORD_FILLED);
    order_msg(s, o, 0, o->state, LOB_REJ_NONE, LOB_REQ_NEW, t, 0, 0);
    pos_row(s, t, LOB_POS_FILL, s->venue);
    if (LOB_GROW(s->mk, s->cap_mk, s->n_mk + 1)) {
        s->err = LOB_ERR_NOMEM;
        return;
    }
    lob_sim_markout *k = &s->mk[s->n_mk++];
    memset(k, 0, sizeof *k);
    k->msg = fill_msg;
    k->ts = t;
    k->mid2 = s->in_event ? s->event_mid2 : venue_mid2(s); /* the market the fill met */
}

/* In the queue and matchable: answered by the venue and not an armed stop. */
static int resting(const uorder_t *o) { return o->state != LOB_ORD_NEW && !o->armed; }

/* Is price a better than price b for side? */
static int better(int side, int64_t a, int64_t b) { return side == LOB_SIDE_BID ? a > b : a < b; }

static int prio_cmp(const void *pa, const void *pb) {
    const prio_t *a = pa, *b = pb;
    if (a->key != b->key) return a->key < b->key ? -1 : 1;
    if (a->stamp != b->stamp) return a->stamp < b->stamp ? -1 : 1;
    return a->seq < b->seq ? -1 : a->seq > b->seq;
}

/* The resting user orders on `side` in priority order: indices into s->uo in
 * s->prio (valid until the next call); *n of them. O(r log r) for r resting
 * orders on that side. */
static const size_t *by_priority(lob_sim *s, int side, size_t *n) {
    *n = 0;
    if (LOB_GROW(s->prio_keys, s->cap_keys, s->n_uo) || LOB_GROW(s->prio, s->cap_prio, s->n_uo)) {
        s->err = LOB_ERR_NOMEM;
        return s->prio;
    }
    size_t m = 0;
    for (size_t i = 0; i < s->n_uo; i++) {
        const uorder_t *o = &s->uo[i];
        if (o->side != side || !resting(o)) continue;
        prio_t *k = &s->prio_keys[m++];
        k->key = side == LOB_SIDE_BID ? -o->price : o->price; /* resting prices are never INT64_MIN */
        k->stamp = o->stamp;
        k->seq = o->seq;
        k->idx = i;
    }
    if (m > 1) qsort(s->prio_keys, m, sizeof *s->prio_keys, prio_cmp);
    for (size_t i = 0; i < m; i++) s->prio[i] = s->prio_keys[i].idx;
    *n = m;
    return s->prio;
}

/* Share `budget` lots among the resting orders of `side` that `eligible`
 * accepts, in priority order, each at its own price (maker fills). Final
 * orders are retired afterwards. */
typedef int (*eligible_fn)(const uorder_t *o, const void *arg, int64_t *cap);

static void allocate(lob_sim *s, int side, int64_t budget, eligible_fn ok, const void *arg, int64_t t) {
    if (s->halted) return; /* no matching while trading is halted */
    size_t n;
    const size_t *idx = by_priority(s, side, &n);
    int any = 0;
    for (size_t k = 0; k < n && budget > 0; k++) {
        uorder_t *o = &s->uo[idx[k]];
        int64_t cap = o->leaves;
        if (!ok(o, arg, &cap)) continue;
        int64_t q = cap < budget ? cap : budget;
        if (q > o->leaves) q = o->leaves;
        if (q <= 0) continue;
        budget -= q;
        fill(s, o, o->price, q, 1, t);
        any = 1;
    }
    if (any)
        for (size_t i = s->n_uo; i-- > 0;)
            if (final_state(s->uo[i].state)) retire(s, i);
}

/* -------------------------------------------------------- L3 queue rules */

typedef struct {
    int64_t price;
    uint64_t stamp;
} l3_exec_t;

/* An execution of a data order (price, stamp) reaches user orders ahead of it. */
static int ahead_of_exec(const uorder_t *o, const void *arg, int64_t *cap) {
    const l3_exec_t *x = arg;
    (void)cap;
    return better(o->side, o->price, x->price) || (o->price == x->price && o->stamp < x->stamp);
}

/* Data qty `q` ahead of user orders at (side, price) with a larger stamp than `stamp` leaves the queue. */
static void l3_ahead_drop(lob_sim *s, int side, int64_t price, uint64_t stamp, int64_t q) {
    for (size_t i = 0; i < s->n_uo; i++) {
        uorder_t *o = &s->uo[i];
        if (o->side == side && o->price == price && resting(o) && o->stamp > stamp) {
            o->ahead -= (double)q;
            if (o->ahead < 0) o->ahead = 0;
        }
    }
}

typedef struct {
    int64_t price;
} hidden_t;

/* A hidden print at price reaches user orders priced through it, or at it
 * with nothing displayed ahead. */
static int reached_by_hidden(const uorder_t *o, const void *arg, int64_t *cap) {
    const hidden_t *h = arg;
    (void)cap;
    return better(o->side, o->price, h->price) || (o->price == h->price && o->ahead <= 0);
}

/* ----------------------------------------------------------- consumed */

static void consumed_drop(lob_sim *s, int side, int64_t price, uint64_t id) {
    for (size_t i = 0; i < s->n_cons;) {
        consumed_t *c = &s->cons[i];
        if (c->side == side && c->price == price && (!s->l3 || c->id == id)) s->cons[i] = s->cons[--s->n_cons];
        else i++;
    }
}

static int64_t consumed_get(const lob_sim *s, int side, int64_t price, uint64_t id) {
    for (size_t i = 0; i < s->n_cons; i++) {
        const consumed_t *c = &s->cons[i];
        if (c->side == side && c->price == price && c->id == id) return c->qty;
    }
    return 0;
}

static void consumed_add(lob_sim *s, int side, int64_t price, uint64_t id, int64_t q) {
    for (size_t i = 0; i < s->n_cons; i++) {
        consumed_t *c = &s->cons[i];
        if (c->side == side && c->price == price && c->id == id) {
            c->qty += q;
            return;
        }
    }
    if (LOB_GROW(s->cons, s->cap_cons, s->n_cons + 1)) {
        s->err = LOB_ERR_NOMEM;
        return;
    }
    consumed_t *c = &s->cons[s->n_cons++];
    c->id = id;
    c->side = (int8_t)side;
    c->price = price;
    c->qty = q;
}

/* -------------------------------------------------------- L2 queue rules */

static double model_share(const lob_sim *s, double front, double back) {
    double ff, fb;
    if (s->cfg.queue_model == LOB_QUEUE_LOG) {
        ff = log1p(front);
        fb = log1p(back);
    } else {
        ff = pow(front, s->cfg.queue_power);
        fb = pow(back, s->cfg.queue_power);
    }
    return ff + fb > 0 ? ff / (ff + fb) : 0.0;
}

/* A decrease of the level where order o rests, from `before` to `after`, at
 * venue time t. The trades printed there since the level's previous update
 * explain that much of it; the rest is a cancel for the queue model. What
 * the cancel took off the qty ahead is remembered (dec_credit, dec_time):
 * when the feed publishes a decrease before the trade that caused it
 * (separate streams, as on Binance), that trade, stamped at or before the
 * decrease, must not move the queue a second time. */
static void l2_decrease(lob_sim *s, uorder_t *o, int64_t before, int64_t after, int64_t t) {
    double d = (double)(before - after);
    double explained = d < o->trade_credit ? d : o->trade_credit;
    int64_t cancel = (int64_t)(d - explained);
    double old = o->ahead, a = o->ahead;
    o->trade_credit = 0;
    if (cancel > 0) {
        switch (s->cfg.queue_model) {
        case LOB_QUEUE_RISK_AVERSE: break; /* from behind: only the clamp below */
        case LOB_QUEUE_CUSTOM:
            a = s->cfg.queue_fn(s->cfg.queue_user, a, before, after, cancel);
            if (isnan(a)) a = old;
            break;
        default: { /* probabilistic: the front's share p = f(front) / (f(front) + f(back)) */
            double back = (double)before - a;
            if (back < 0) back = 0;
            double p = model_share(s, a, back);
            double from_back = (1 - p) * (double)cancel;
            double excess = from_back > back ? from_back - back : 0;
            a -= p * (double)cancel + excess;
        }
        }
    }
    if (a > (double)after) a = (double)after;
    if (a < 0) a = 0;
    o->ahead = a;
    if (cancel > 0 && old > a) {
        o->dec_credit += old - a < (double)cancel ? old - a : (double)cancel;
        o->dec_time = t;
    }
}

typedef struct {
    int64_t price;
    int64_t qty;
} print_t;

/* A print at the order's price: its excess beyond what stands ahead fills
 * (whole lots), shared in time priority (the cap already counts the orders
 * of the user ahead, see l2_print). */
static int reached_at_price(const uorder_t *o, const void *arg, int64_t *cap) {
    const print_t *p = arg;
    if (o->price != p->price) return 0;
    double excess = (double)p->qty - o->ahead;
    if (excess < 1) return 0;
    double c = floor(excess);
    *cap = c < (double)o->leaves ? (int64_t)c : o->leaves;
    return 1;
}

static int through_price(const uorder_t *o, const void *arg, int64_t *cap) {
    const print_t *p = arg;
    (void)cap;
    return better(o->side, o->price, p->price);
}

/* ------------------------------------------------------------- fills */

/* A print of qty at price by aggressor side `aggr` (0 unknown) on L2 data. */
static void l2_print(lob_sim *s, int aggr, int64_t price, int64_t qty, int64_t t) {
    if (s->halted) return;
    for (int side = -1; side <= 1; side += 2) {
        if (aggr == side) continue; /* a buy print hits asks, a sell print bids */
        /* through the price: fill in full */
        print_t p = {price, qty};
        allocate(s, side, INT64_MAX, through_price, &p, t);
        /* at the price: the excess beyond the qty ahead, in time priority;
         * each order's own excess is reduced by the user's orders ahead of it */
        size_t n;
        const size_t *idx = by_priority(s, side, &n);
        int64_t users_ahead = 0;
        int any = 0;
        for (size_t k = 0; k < n; k++) {
            uorder_t *o = &s->uo[idx[k]];
            if (o->price != price) continue;
            int64_t leaves = o->leaves;
            print_t q = {price, qty - users_ahead};
            int64_t cap = 0;
            if (q.qty > 0 && reached_at_price(o, &q, &cap) && cap > 0) {
                fill(s, o, o->price, cap, 1, t);
                any = 1;
            }
            users_ahead += leaves;
            /* the queue moves by the part of the print the level had not already dropped */
            if (t > o->dec_time) o->dec_credit = 0; /* a later print is a new trade */
            double m = (double)qty < o->dec_credit ? (double)qty : o->dec_credit;
            o->dec_credit -= m;
            o->ahead -= (double)qty - m;
            if (o->ahead < 0) o->ahead = 0;
            o->trade_credit += (double)qty - m;
        }
        if (any)
            for (size_t i = s->n_uo; i-- > 0;)
                if (final_state(s->uo[i].state)) retire(s, i);
    }
}

/* Before the venue applies event e: what it does to the user's orders. */
static void venue_pre(lob_sim *s, const lob_event *e) {
    int64_t t = e->ts_exch;
    if (e->kind == LOB_EV_STATUS) { /* quoting-only (pre-open) matches nothing either */
        if (e->qty >= LOB_STATUS_HALT && e->qty <= LOB_STATUS_TRADING) s->halted = e->qty != LOB_STATUS_TRADING;
        return;
    }
    if (e->kind == LOB_EV_TRADE && e->qty > 0) {
        s->last_trade = e->price;
        s->have_trade = 1;
    }
    if (s->l3) {
        int side;
        int64_t px, qty;
        uint64_t stamp;
        switch (e->kind) {
        case LOB_EV_EXECUTE:
        case LOB_EV_REDUCE:
        case LOB_EV_DELETE:
        case LOB_EV_MODIFY:
            if (!lob_book_peek(s->venue, e->order_id, &side, &px, &qty, &stamp)) return;
            if (s->n_cons) consumed_drop(s, side, px, e->order_id);
            if (!s->n_uo) return;
            if (e->kind == LOB_EV_EXECUTE) {
                if (e->qty <= 0 || e->qty > qty) return; /* the book refuses it */
                l3_exec_t x = {px, stamp};
                allocate(s, side, e->qty, ahead_of_exec, &x, t);
                l3_ahead_drop(s, side, px, stamp, e->qty);
            } else if (e->kind == LOB_EV_REDUCE) {
                if (e->qty > 0 && e->qty <= qty) l3_ahead_drop(s, side, px, stamp, e->qty);
            } else if (e->kind == LOB_EV_DELETE) {
                l3_ahead_drop(s, side, px, stamp, qty);
            } else if (e->qty > 0 && e->price != INT64_MIN) { /* MODIFY */
                if (e->price == px && e->qty <= qty) l3_ahead_drop(s, side, px, stamp, qty - e->qty);
                else l3_ahead_drop(s, side, px, stamp, qty); /* it goes to the back */
            }
            return;
        case LOB_EV_TRADE:
            if ((e->flags & LOB_FLAG_HIDDEN) && s->n_uo && e->qty > 0) {
                hidden_t h = {e->price};
                for (int side2 = -1; side2 <= 1; side2 += 2)
                    if (e->side != side2) allocate(s, side2, e->qty, reached_by_hidden, &h, t);
            }
            return;
        case LOB_EV_CLEAR:
            for (size_t i = 0; i < s->n_uo; i++) s->uo[i].ahead = 0;
            s->n_cons = 0;
            return;
        default: return;
        }
    }
    switch (e->kind) {
    case LOB_EV_SET_LEVEL:
        if (e->side != LOB_SIDE_BID && e->side != LOB_SIDE_ASK) return;
        if (s->n_cons) consumed_drop(s, e->side, e->price, 0);
        if (!s->n_uo || e->qty < 0) return;
        {
            int64_t before = lob_book_level_qty(s->venue, e->side, e->price);
            for (size_t i = 0; i < s->n_uo; i++) {
                uorder_t *o = &s->uo[i];
                if (o->side != e->side || o->price != e->price || !resting(o)) continue;
                if (e->qty < before) l2_decrease(s, o, before, e->qty, e->ts_exch);
                else o->trade_credit = 0;
            }
        }
        return;
    case LOB_EV_TRADE:
        if (s->n_uo && e->qty > 0 && e->side >= -1 && e->side <= 1) l2_print(s, e->side, e->price, e->qty, t);
        return;
    case LOB_EV_CLEAR:
        s->n_cons = 0;
        return;
    default: return;
    }
}

/* ------------------------------------------------------- request arrival */

/* Grow the scratch buffers to hold n entries. */
static int scratch(lob_sim *s, size_t n) {
    if (n <= s->scr_cap) return LOB_OK;
    size_t c1 = s->scr_cap, c2 = s->scr_cap, c3 = s->scr_cap;
    if (LOB_GROW(s->scr_px, c1, n) || LOB_GROW(s->scr_qty, c2, n) || LOB_GROW(s->scr_ids, c3, n)) return LOB_ERR_NOMEM;
    s->scr_cap = c1 < c2 ? (c1 < c3 ? c1 : c3) : (c2 < c3 ? c2 : c3);
    return LOB_OK;
}

static int crosses(int side, int tif, int64_t limit, int64_t px) {
    return tif == LOB_TIF_MARKET || (side == LOB_SIDE_BID ? px <= limit : px >= limit);
}

/* Walk the displayed liquidity of the venue book that order `o` crosses (best
 * first), net of what the user already consumed, up to `want`; when `take`,
 * fill it: as a taker at each level's price, or (maker) at the order's own
 * price, and remember it as consumed. Returns the qty available or taken. */
static int64_t walk_liquidity(lob_sim *s, uorder_t *o, int64_t want, int take, int maker, int64_t t) {
    int opp = -o->side;
    size_t levels = 16;
    int64_t total = 0; /* taken on earlier passes */
    for (;;) {
        if (scratch(s, 2 * levels)) {
            s->err = LOB_ERR_NOMEM;
            return 0;
        }
        int64_t *px = s->scr_px, *lq = s->scr_qty, *junk = s->scr_px + levels; /* the other side's output */
        size_t nb, na;
        if (opp == LOB_SIDE_BID) lob_book_depth(s->venue, levels, px, lq, junk, junk, &nb, &na);
        else lob_book_depth(s->venue, levels, junk, junk, px, lq, &nb, &na);
        size_t nlev = opp == LOB_SIDE_BID ? nb : na;
        int64_t got = 0;
        size_t k = 0;
        for (; k < nlev && got < want; k++) {
            if (!crosses(o->side, o->tif, o->price, px[k])) break;
            if (!s->l3) {
                int64_t avail = lq[k] - consumed_get(s, opp, px[k], 0);
                int64_t q = avail < want - got ? avail : want - got;
                if (q <= 0) continue;
                got += q;
                if (take) {
                    consumed_add(s, opp, px[k], 0, q);
                    fill(s, o, maker ? o->price : px[k], q, maker, t);
                }
                continue;
            }
            size_t norders = lob_book_level_fifo(s->venue, opp, px[k], NULL, NULL, 0);
            uint64_t *ids = malloc(norders * sizeof *ids);
            int64_t *qs = malloc(norders * sizeof *qs);
            if (!ids || !qs) {
                free(ids);
                free(qs);
                s->err = LOB_ERR_NOMEM;
                return got;
            }
            lob_book_level_fifo(s->venue, opp, px[k], ids, qs, norders);
            for (size_t j = 0; j < norders && got < want; j++) {
                int64_t avail = qs[j] - consumed_get(s, opp, px[k], ids[j]);
                int64_t q = avail < want - got ? avail : want - got;
                if (q <= 0) continue;
                got += q;
                if (take) {
                    consumed_add(s, opp, px[k], ids[j], q);
                    fill(s, o, maker ? o->price : px[k], q, maker, t);
                }
            }
            free(ids);
            free(qs);
        }
        /* done unless every fetched level crossed and more may lie deeper */
        if (got >= want || k < nlev || nlev < levels) return total + got;
        if (take) { /* fills were made on the levels fetched (now consumed); look deeper */
            total += got;
            want -= got;
        }
        levels *= 4;
    }
}

/* After a venue event: displayed liquidity of the data at or through a
 * resting user order's price would have traded with it (it was there
 * first): it fills, as the maker at its own price, up to that liquidity net
 * of what the user already consumed, which it then consumes. */
static void cross_check(lob_sim *s, int64_t t) {
    if (s->halted) return;
    for (int side = -1; side <= 1; side += 2) {
        int64_t opp_px, opp_q;
        if (!lob_book_best(s->venue, -side, &opp_px, &opp_q)) continue;
        int crossing = 0; /* cheap test first: any resting order at or through opp_px? */
        for (size_t i = 0; i < s->n_uo && !crossing; i++)
            crossing = s->uo[i].side == side && resting(&s->uo[i]) &&
                       crosses(side, LOB_TIF_GTC, s->uo[i].price, opp_px);
        if (!crossing) continue;
        size_t n;
        const size_t *idx = by_priority(s, side, &n);
        if (!n || !crosses(side, LOB_TIF_GTC, s->uo[idx[0]].price, opp_px)) continue;
        int any = 0;
        for (size_t k = 0; k < n; k++) {
            uorder_t *o = &s->uo[idx[k]];
            if (!crosses(side, LOB_TIF_GTC, o->price, opp_px)) break;
            any |= walk_liquidity(s, o, o->leaves, 1, 1, t) > 0;
        }
        if (any)
            for (size_t i = s->n_uo; i-- > 0;)
                if (final_state(s->uo[i].state)) retire(s, i);
    }
}

static int valid_new(const lob_sim *s, const request_t *r) {
    if (r->tif == LOB_TIF_DAY && s->cfg.session_end_ns <= 0) return 0;  /* no session end to expire at */
    if (r->tif == LOB_TIF_GTD && r->expire <= 0) return 0;
    if (r->has_stop && (r->stop == INT64_MIN || r->tif == LOB_TIF_POST_ONLY)) return 0;
    return (r->side == LOB_SIDE_BID || r->side == LOB_SIDE_ASK) && r->qty > 0 && r->tif >= LOB_TIF_GTC &&
           r->tif <= LOB_TIF_GTD && (r->tif == LOB_TIF_MARKET || r->price != INT64_MIN);
}

/* Orders that rest after matching: GTC, POST_ONLY, DAY, GTD. */
static int rests(int tif) {
    return tif == LOB_TIF_GTC || tif == LOB_TIF_POST_ONLY || tif == LOB_TIF_DAY || tif == LOB_TIF_GTD;
}

/* The order rests at the venue: seat it at the back of its price's queue. */
static void seat(lob_sim *s, uorder_t *o) {
    o->ahead = (double)lob_book_level_qty(s->venue, o->side, o->price);
    o->stamp = lob_book_stamp_now(s->venue);
    o->seq = ++s->next_seq;
    o->trade_credit = o->dec_credit = 0;
}

/* End order li with a final state and its message at venue time t. */
static void finish(lob_sim *s, ptrdiff_t li, int state, int reason, int64_t t) {
    s->uo[li].state = (uint8_t)state;
    order_msg(s, &s->uo[li], 0, state, reason, LOB_REQ_NEW, t, 0, 0);
    retire(s, (size_t)li);
}

/* Work order li at the venue at time t (its arrival, or its stop's trigger):
 * take what it crosses, rest the remainder or cancel it. `announce`: send
 * ACCEPTED first (a triggered stop was accepted on arrival). */
static void work_order(lob_sim *s, ptrdiff_t li, int64_t t, int announce) {
    uorder_t *o = &s->uo[li];
    int64_t avail = walk_liquidity(s, o, o->leaves, 0, 0, t);
    if (s->halted && (avail > 0 || !rests(o->tif))) { /* nothing trades during a halt */
        finish(s, li, LOB_ORD_REJECTED, LOB_REJ_HALTED, t);
        return;
    }
    if (o->tif == LOB_TIF_POST_ONLY && avail > 0) {
        finish(s, li, LOB_ORD_REJECTED, LOB_REJ_WOULD_CROSS, t);
        return;
    }
    if (o->tif == LOB_TIF_MARKET && avail == 0) {
        finish(s, li, LOB_ORD_REJECTED, LOB_REJ_NO_LIQUIDITY, t);
        return;
    }
    if (announce) {
        o->state = LOB_ORD_ACCEPTED;
        order_msg(s, o, 0, LOB_ORD_ACCEPTED, LOB_REJ_NONE, LOB_REQ_NEW, t, 0, 0);
    }
    if (o->tif == LOB_TIF_FOK && avail < o->leaves) {
        finish(s, li, LOB_ORD_CANCELLED, LOB_REJ_NONE, t);
        return;
    }
    if (avail > 0) walk_liquidity(s, o, o->leaves, 1, 0, t);
    o = &s->uo[li];
    if (o->leaves == 0) {
        retire(s, (size_t)li);
        return;
    }
    if (rests(o->tif)) {
        seat(s, o);
        return;
    }
    finish(s, li, LOB_ORD_CANCELLED, LOB_REJ_NONE, t); /* IOC / FOK / MARKET leftover */
}

static void arrive_new(lob_sim *s, const request_t *r) {
    int64_t t = r->arrive;
    size_t slot = id_find(s, r->id);
    int known = slot != SIZE_MAX && s->ids[slot].val != FREE_SLOT;
    /* the NEW message was recorded at send time; the live entry exists */
    ptrdiff_t li = known ? s->ids[slot].val : -1;
    if (li < 0) return; /* cannot happen: submit created it */
    uorder_t *o = &s->uo[li];
    if (o->state != LOB_ORD_NEW) return; /* a duplicate id: rejected at send */
    if (!valid_new(s, r)) {
        finish(s, li, LOB_ORD_REJECTED, LOB_REJ_INVALID, t);
        return;
    }
    if (o->expire && o->expire <= t) { /* it expired on the way */
        finish(s, li, LOB_ORD_EXPIRED, LOB_REJ_NONE, t);
        return;
    }
    if (r->has_stop) { /* armed until its trigger: accepted, not in the queue */
        o->armed = 1;
        o->stop = r->stop;
        s->n_armed++;
        o->state = LOB_ORD_ACCEPTED;
        order_msg(s, o, 0, LOB_ORD_ACCEPTED, LOB_REJ_NONE, LOB_REQ_NEW, t, 0, 0);
        return;
    }
    work_order(s, li, t, 1);
}

/* After a venue event at time t: fire the armed stops whose trigger price
 * (the last trade, or the venue mid) is at or through their stop price, in
 * the user's order of submission, each then worked like an order arriving at t. */
static void fire_stops(lob_sim *s, int64_t t) {
    if (s->halted) return;
    double px;
    if (s->cfg.trigger_on_mid) {
        int64_t m2 = venue_mid2(s);
        if (!m2) return;
        px = (double)m2 / 2.0;
    } else {
        if (!s->have_trade) return;
        px = (double)s->last_trade;
    }
    for (;;) {
        ptrdiff_t fire = -1;
        for (size_t i = 0; i < s->n_uo; i++) {
            const uorder_t *o = &s->uo[i];
            if (!o->armed) continue;
            int hit = o->side == LOB_SIDE_BID ? px >= (double)o->stop : px <= (double)o->stop;
            if (hit && (fire < 0 || o->id < s->uo[fire].id)) fire = (ptrdiff_t)i;
        }
        if (fire < 0) return;
        uorder_t *o = &s->uo[fire];
        o->armed = 0;
        s->n_armed--;
        o->state = LOB_ORD_TRIGGERED;
        order_msg(s, o, 0, LOB_ORD_TRIGGERED, LOB_REJ_NONE, LOB_REQ_NEW, t, 0, 0);
        work_order(s, fire, t, 0);
    }
}

static void arrive_cancel_modify(lob_sim *s, const request_t *r) {
    int64_t t = r->arrive;
    size_t slot = id_find(s, r->id);
    if (slot == SIZE_MAX) {
        order_msg(s, NULL, r->id, LOB_ORD_REJECTED, LOB_REJ_UNKNOWN_ORDER, r->kind, t, r->price, 0);
        return;
    }
    ptrdiff_t li = s->ids[slot].val;
    if (li < 0) {
        order_msg(s, NULL, r->id, LOB_ORD_REJECTED, LOB_REJ_TOO_LATE, r->kind, t, r->price, 0);
        return;
    }
    uorder_t *o = &s->uo[li];
    if (o->state == LOB_ORD_NEW) { /* the order itself has not arrived: one connection, cannot happen */
        order_msg(s, o, 0, LOB_ORD_REJECTED, LOB_REJ_UNKNOWN_ORDER, r->kind, t, 0, 0);
        return;
    }
    if (r->kind == LOB_REQ_CANCEL) {
        o->state = LOB_ORD_CANCELLED;
        order_msg(s, o, 0, LOB_ORD_CANCELLED, LOB_REJ_NONE, LOB_REQ_CANCEL, t, 0, 0);
        retire(s, (size_t)li);
        return;
    }
    /* modify: new price and open qty */
    if (r->qty <= 0 || r->price == INT64_MIN) {
        order_msg(s, o, 0, LOB_ORD_REJECTED, LOB_REJ_INVALID, LOB_REQ_MODIFY, t, 0, 0);
        return;
    }
    int64_t opp_px, opp_q;
    if (r->price != o->price && lob_book_best(s->venue, -o->side, &opp_px, &opp_q) &&
        crosses(o->side, LOB_TIF_GTC, r->price, opp_px)) {
        order_msg(s, o, 0, LOB_ORD_REJECTED, LOB_REJ_WOULD_CROSS, LOB_REQ_MODIFY, t, 0, 0);
        return;
    }
    if (r->qty > INT64_MAX - (o->qty - o->leaves)) { /* filled + new open qty must stay an int64 */
        order_msg(s, o, 0, LOB_ORD_REJECTED, LOB_REJ_INVALID, LOB_REQ_MODIFY, t, 0, 0);
        return;
    }
    int keeps = r->price == o->price && r->qty <= o->leaves;
    o->qty += r->qty - o->leaves; /* the original qty follows the open qty */
    o->leaves = r->qty;
    o->price = r->price;
    if (!keeps) seat(s, o);
    order_msg(s, o, 0, o->state, LOB_REJ_NONE, LOB_REQ_MODIFY, t, 0, 0);
}

/* ------------------------------------------------------------- requests */

static int push_request(lob_sim *s, request_t *r) {
    const lob_latency *m = &s->cfg.latency[r->kind];
    r->send = s->now;
    r->reject_at = venue_rejects(m, s->now);
    int64_t a = r->reject_at >= 0 ? s->now : sat_add(s->now, entry_latency(m, &s->rng, s->now));
    if (a < s->last_arrive) a = s->last_arrive;
    s->last_arrive = a;
    r->arrive = a;
    if (s->req_head + s->req_n == s->req_cap && s->req_head) {
        memmove(s->req, s->req + s->req_head, s->req_n * sizeof *s->req);
        s->req_head = 0;
    }
    if (LOB_GROW(s->req, s->req_cap, s->req_head + s->req_n + 1)) return LOB_ERR_NOMEM;
    s->req[s->req_head + s->req_n++] = *r;
    return LOB_OK;
}

int lob_sim_submit(lob_sim *s, uint64_t id, int side, int64_t price, int64_t qty, int tif) {
    return lob_sim_submit_ex(s, id, side, price, qty, tif, 0, 0, 0);
}

int lob_sim_submit_ex(lob_sim *s, uint64_t id, int side, int64_t price, int64_t qty, int tif, int has_stop,
                      int64_t stop_price, int64_t expire_ns) {
    if (!s) return LOB_ERR_INVALID_ARG;
    if (s->err) return s->err;
    request_t r = {0};
    r.kind = LOB_REQ_NEW;
    r.id = id;
    r.side = side;
    r.price = tif == LOB_TIF_MARKET ? 0 : price;
    r.qty = qty;
    r.tif = tif;
    r.has_stop = has_stop != 0;
    r.stop = stop_price;
    r.expire = tif == LOB_TIF_DAY ? s->cfg.session_end_ns : tif == LOB_TIF_GTD ? expire_ns : 0;
    if (id_find(s, id) != SIZE_MAX) { /* duplicate: refused by the venue */
        int rc = push_request(s, &r);
        if (rc) return rc;
        lob_sim_msg *m = new_msg(s);
        if (!m) return LOB_ERR_NOMEM;
        m->ts_exch = r.arrive;
        m->order_id = id;
        m->price = r.price;
        m->qty = qty;
        m->side = (int8_t)side;
        m->kind = LOB_MSG_ORDER;
        m->state = LOB_ORD_REJECTED;
        m->reason = LOB_REJ_DUPLICATE;
        m->request = LOB_REQ_NEW;
        m->position = s->position;
        m->cash = s->cash;
        respond(s, s->n_msgs - 1, r.arrive, LOB_REQ_NEW);
        s->req_n--; /* nothing for the venue to do */
        return s->err;
    }
    if (LOB_GROW(s->uo, s->cap_uo, s->n_uo + 1)) return LOB_ERR_NOMEM;
    int rc = id_insert(s, id, (int32_t)s->n_uo);
    if (rc) return rc;
    rc = push_request(s, &r);
    if (rc) return rc;
    uorder_t *o = &s->uo[s->n_uo++];
    memset(o, 0, sizeof *o);
    o->id = id;
    o->side = (int8_t)(side == 1 || side == -1 ? side : 0);
    o->price = r.price;
    o->qty = o->leaves = qty;
    o->tif = (uint8_t)(tif >= 0 && tif <= LOB_TIF_GTD ? tif : 0);
    o->state = LOB_ORD_NEW;
    if (r.expire > 0) {
        o->expire = r.expire;
        s->n_expiring++;
    }
    lob_sim_msg *m = new_msg(s); /* NEW: sent now, reaches the venue at arrive */
    if (!m) return LOB_ERR_NOMEM;
    m->ts_exch = r.arrive;
    m->ts_local = s->now;
    m->order_id = id;
    m->price = r.price;
    m->qty = qty;
    m->leaves_qty = qty;
    m->position = s->position;
    m->cash = s->cash;
    m->side = (int8_t)side;
    m->kind = LOB_MSG_ORDER;
    m->state = LOB_ORD_NEW;
    m->tif = (uint8_t)o->tif;
    m->request = LOB_REQ_NEW;
    return s->err;
}

int lob_sim_reject(lob_sim *s, uint64_t id, int side, int64_t price, int64_t qty, int tif, int reason) {
    if (!s || reason <= LOB_REJ_NONE || reason > LOB_REJ_HALTED) return LOB_ERR_INVALID_ARG;
    if (s->err) return s->err;
    if (id_find(s, id) == SIZE_MAX && id_insert(s, id, DEAD)) return LOB_ERR_NOMEM;
    for (int k = 0; k < 2; k++) { /* NEW (sent as far as the strategy is concerned), then REJECTED */
        lob_sim_msg *m = new_msg(s);
        if (!m) return LOB_ERR_NOMEM;
        m->ts_exch = m->ts_local = s->now;
        m->order_id = id;
        m->price = price;
        m->qty = qty;
        m->leaves_qty = k ? 0 : qty;
        m->position = s->position;
        m->cash = s->cash;
        m->side = (int8_t)side;
        m->kind = LOB_MSG_ORDER;
        m->state = (uint8_t)(k ? LOB_ORD_REJECTED : LOB_ORD_NEW);
        m->reason = (uint8_t)(k ? reason : LOB_REJ_NONE);
        m->tif = (uint8_t)(tif >= 0 && tif <= LOB_TIF_GTD ? tif : 0);
        m->request = LOB_REQ_NEW;
    }
    if (LOB_GROW(s->dlv, s->cap_dlv, s->n_dlv + 1)) return LOB_ERR_NOMEM;
    s->dlv[s->n_dlv++] = s->n_msgs - 1; /* delivered now: it never left the user's side */
    return LOB_OK;
}

int lob_sim_reject_request(lob_sim *s, uint64_t id, int request, int side, int64_t price, int64_t qty, int reason) {
    if (!s || (request != LOB_REQ_CANCEL && request != LOB_REQ_MODIFY) || reason <= LOB_REJ_NONE ||
        reason > LOB_REJ_HALTED)
        return LOB_ERR_INVALID_ARG;
    if (s->err) return s->err;
    ptrdiff_t li = live_index(s, id);
    lob_sim_msg *m = new_msg(s);
    if (!m) return LOB_ERR_NOMEM;
    const uorder_t *o = li >= 0 ? &s->uo[li] : NULL; /* the order as it stands, unchanged */
    m->ts_exch = m->ts_local = s->now;
    m->order_id = id;
    m->price = o ? o->price : price;
    m->qty = o ? o->qty : qty;
    m->leaves_qty = o ? o->leaves : 0;
    m->position = s->position;
    m->cash = s->cash;
    m->side = (int8_t)(o ? o->side : side);
    m->kind = LOB_MSG_ORDER;
    m->state = LOB_ORD_REJECTED;
    m->reason = (uint8_t)reason;
    m->tif = o ? o->tif : 0;
    m->request = (uint8_t)request;
    if (LOB_GROW(s->dlv, s->cap_dlv, s->n_dlv + 1)) return LOB_ERR_NOMEM;
    s->dlv[s->n_dlv++] = s->n_msgs - 1;
    return LOB_OK;
}

int lob_sim_cancel(lob_sim *s, uint64_t id) {
    if (!s) return LOB_ERR_INVALID_ARG;
    request_t r = {0};
    r.kind = LOB_REQ_CANCEL;
    r.id = id;
    return push_request(s, &r);
}

int lob_sim_modify(lob_sim *s, uint64_t id, int64_t price, int64_t qty) {
    if (!s) return LOB_ERR_INVALID_ARG;
    request_t r = {0};
    r.kind = LOB_REQ_MODIFY;
    r.id = id;
    r.price = price;
    r.qty = qty;
    return push_request(s, &r);
}

static void arrive(lob_sim *s, const request_t *r) {
    if (r->reject_at >= 0) { /* the venue refused it (empirical record) */
        ptrdiff_t li = r->kind == LOB_REQ_NEW ? live_index(s, r->id) : -1;
        lob_sim_msg *m = new_msg(s);
        if (!m) return;
        m->ts_exch = r->arrive;
        m->order_id = r->id;
        m->price = r->price;
        m->qty = r->qty;
        m->side = (int8_t)r->side;
        m->kind = LOB_MSG_ORDER;
        m->state = LOB_ORD_REJECTED;
        m->reason = LOB_REJ_VENUE;
        m->request = (uint8_t)r->kind;
        m->position = s->position;
        m->cash = s->cash;
        int64_t d = r->reject_at < s->last_deliver ? s->last_deliver : r->reject_at;
        s->last_deliver = d;
        size_t k = s->n_msgs - 1;
        if (LOB_GROW(s->resp, s->resp_cap, s->resp_head + s->resp_n + 1)) {
            s->err = LOB_ERR_NOMEM;
            return;
        }
        s->msgs[k].ts_local = d;
        s->resp[s->resp_head + s->resp_n++] = k;
        if (li >= 0 && s->uo[li].state == LOB_ORD_NEW) {
            s->uo[li].state = LOB_ORD_REJECTED;
            retire(s, (size_t)li);
        }
        return;
    }
    if (r->kind == LOB_REQ_NEW) arrive_new(s, r);
    else arrive_cancel_modify(s, r);
}

/* ---------------------------------------------------------------- data */

int lob_sim_feed(lob_sim *s, const lob_event *ev, size_t n) {
    if (!s || (n && !ev)) return LOB_ERR_INVALID_ARG;
    if (s->data_end) return LOB_ERR_INVALID_ARG;
    if (s->n_chunks == MAX_CHUNKS) return LOB_ERR_CAPACITY;
    s->chunks[s->n_chunks].ev = ev;
    s->chunks[s->n_chunks].n = n;
    s->n_chunks++;
    return LOB_OK;
}

int lob_sim_end_data(lob_sim *s) {
    if (!s) return LOB_ERR_INVALID_ARG;
    s->data_end = 1;
    return LOB_OK;
}

size_t lob_sim_released(const lob_sim *s) { return s ? s->first_chunk : 0; }

/* Drop chunks both cursors have passed. */
static void release(lob_sim *s) {
    size_t drop = s->l_c < s->v_c ? s->l_c : s->v_c;
    if (!drop) return;
    memmove(s->chunks, s->chunks + drop, (s->n_chunks - drop) * sizeof *s->chunks);
    s->n_chunks -= drop;
    s->first_chunk += drop;
    s->v_c -= drop;
    s->l_c -= drop;
}

/* Move a cursor past empty or finished chunks; the event at it, or NULL. */
static const lob_event *at_cursor(lob_sim *s, size_t *c, size_t *i) {
    while (*c < s->n_chunks && *i >= s->chunks[*c].n) {
        (*c)++;
        *i = 0;
    }
    return *c < s->n_chunks ? &s->chunks[*c].ev[*i] : NULL;
}

static void read_top(const lob_book *b, int64_t top[4]) {
    lob_book_best(b, LOB_SIDE_BID, &top[0], &top[1]);
    lob_book_best(b, LOB_SIDE_ASK, &top[2], &top[3]);
}

/* ------------------------------------------------------------------ run */

const lob_sim_msg *lob_sim_msgs(const lob_sim *s, size_t *n) {
    if (n) *n = s ? s->n_msgs : 0;
    return s ? s->msgs : NULL;
}

const lob_sim_pos *lob_sim_positions(const lob_sim *s, size_t *n) {
    if (n) *n = s ? s->n_pos : 0;
    return s ? s->pos : NULL;
}

const size_t *lob_sim_delivered(const lob_sim *s, size_t *n) {
    if (n) *n = s ? s->n_dlv : 0;
    return s ? s->dlv : NULL;
}

const lob_sim_markout *lob_sim_markouts(const lob_sim *s, size_t *n) {
    if (n) *n = s ? s->n_mk : 0;
    return s ? s->mk : NULL;
}

const lob_book *lob_sim_local_book(const lob_sim *s) { return s ? s->local : NULL; }
const lob_book *lob_sim_venue_book(const lob_sim *s) { return s ? s->venue : NULL; }

static void fill_state(lob_sim *s, lob_sim_state *st, size_t begin, int reason) {
    /* the deliveries of a NEED_DATA return are reported again with the next one */
    if (reason != LOB_RUN_NEED_DATA) s->dlv_mark = s->n_dlv;
    st->now = s->now;
    st->timer = s->stop_timer;
    st->book_changed = s->book_changed;
    st->delivered_begin = begin;
    st->delivered_end = s->n_dlv;
    st->n_msgs = s->n_msgs;
    st->n_pos = s->n_pos;
    st->events_venue = s->events_venue;
    st->events_local = s->events_local;
}

/* Note a stop (wake-up or feed) at local time t. */
static void stop_at(lob_sim *s, int64_t t) {
    s->stop_pending = 1;
    s->stop_time = t;
}

int lob_sim_run(lob_sim *s, int64_t until, int stop_on_feed, int *reason, lob_sim_state *st, int64_t *bad_chunk,
                int64_t *bad_event) {
    if (!s || !reason || !st || !bad_chunk || !bad_event) return LOB_ERR_INVALID_ARG;
    *bad_chunk = *bad_event = -1;
    if (s->err) return s->err;
    size_t begin = s->dlv_mark;
    s->stop_timer = 0;
    s->book_changed = 0;
    s->stop_pending = 0;
    if (s->n_dlv > begin && s->cfg.wake_on_msgs) stop_at(s, s->now); /* local rejections: at once */
    for (;;) {
        release(s);
        const lob_event *ve = at_cursor(s, &s->v_c, &s->v_i);
        const lob_event *le = at_cursor(s, &s->l_c, &s->l_i);
        int venue_done = !ve && s->data_end;
        if (venue_done && !s->clock_closed && s->next_sample != INT64_MIN) {
            s->clock_closed = 1; /* the venue stands as it is up to the last event's time */
            venue_clock(s, sat_add(s->last_venue_ts, 1));
        }
        if (!ve && !s->data_end) {
            if (s->stop_pending) break;
            *reason = LOB_RUN_NEED_DATA;
            fill_state(s, st, begin, *reason);
            return LOB_OK;
        }
        if (s->first_local == INT64_MIN && ve) {
            s->first_local = ve->ts_local;
            if (s->now == INT64_MIN) s->now = ve->ts_local;
            if (s->cfg.timer_ns > 0) s->next_timer = sat_add(ve->ts_local, s->cfg.timer_ns);
        }
        /* candidates: (time, rank) */
        int64_t best_t = INT64_MAX;
        int best = -1;
        if (ve) {
            best_t = ve->ts_exch;
            best = 0;
        }
        if (s->req_n) {
            int64_t t = s->req[s->req_head].arrive;
            if (t < best_t) {
                best_t = t;
                best = 1;
            }
        }
        /* the local view never runs ahead of the venue's application */
        int local_ready = le && (s->l_c < s->v_c || (s->l_c == s->v_c && s->l_i < s->v_i) || venue_done);
        if (local_ready) {
            int64_t t = le->ts_local > s->l_vis ? le->ts_local : s->l_vis;
            if (t < best_t) {
                best_t = t;
                best = 2;
            }
        }
        if (s->resp_n) {
            int64_t t = s->msgs[s->resp[s->resp_head]].ts_local;
            if (t < best_t) {
                best_t = t;
                best = 3;
            }
        }
        int data_left = le != NULL || !s->data_end;
        if (s->cfg.timer_ns > 0 && s->first_local != INT64_MIN && data_left && s->next_timer < best_t) {
            best_t = s->next_timer;
            best = 4;
        }
        if (best < 0) break; /* nothing left at all */
        /* a local-clock item after a pending stop, or past `until`: return first */
        if (s->stop_pending && best_t > s->stop_time) break;
        if (best_t > until && best != 0 && best != 1) {
            if (s->stop_pending) break;
            s->now = until > s->now ? until : s->now;
            *reason = LOB_RUN_UNTIL;
            fill_state(s, st, begin, *reason);
            return LOB_OK;
        }
        if ((best == 0 || best == 1) && best_t > until && s->stop_pending) break;
        if ((best == 0 || best == 1) && best_t > until) {
            /* venue items past `until` do not matter to the local view yet */
            s->now = until > s->now ? until : s->now;
            *reason = LOB_RUN_UNTIL;
            fill_state(s, st, begin, *reason);
            return LOB_OK;
        }
        switch (best) {
        case 0: {
            if (s->next_sample == INT64_MIN) s->next_sample = ve->ts_exch; /* first row at the first event */
            venue_clock(s, ve->ts_exch);
            if (s->n_uo) {
                s->in_event = 1;
                s->event_mid2 = venue_mid2(s);
            }
            venue_pre(s, ve);
            int rc = lob_book_apply_one(s->venue, ve);
            if (rc != LOB_OK) {
                s->in_event = 0;
                *bad_chunk = (int64_t)(s->first_chunk + s->v_c);
                *bad_event = (int64_t)s->v_i;
                return rc;
            }
            if (s->n_uo) cross_check(s, ve->ts_exch);
            if (s->n_armed) fire_stops(s, ve->ts_exch);
            s->in_event = 0;
            s->last_venue_ts = ve->ts_exch;
            s->v_i++;
            s->events_venue++;
            break;
        }
        case 1: {
            request_t r = s->req[s->req_head];
            s->req_head++;
            s->req_n--;
            if (!s->req_n) s->req_head = 0;
            arrive(s, &r);
            break;
        }
        case 2: {
            int rc = lob_book_apply_one(s->local, le);
            if (rc != LOB_OK) {
                *bad_chunk = (int64_t)(s->first_chunk + s->l_c);
                *bad_event = (int64_t)s->l_i;
                return rc;
            }
            s->l_vis = best_t;
            s->l_i++;
            s->events_local++;
            if (s->cfg.wake_on_book) {
                int64_t top[4];
                read_top(s->local, top);
                if (memcmp(top, s->top, sizeof top)) {
                    memcpy(s->top, top, sizeof top);
                    s->book_changed = 1;
                    stop_at(s, best_t);
                }
            }
            if (stop_on_feed) {
                s->stop_feed = 1;
                stop_at(s, best_t);
            }
            if (best_t > s->now) s->now = best_t;
            break;
        }
        case 3:
            if (LOB_GROW(s->dlv, s->cap_dlv, s->n_dlv + 1)) return LOB_ERR_NOMEM;
            s->dlv[s->n_dlv++] = s->resp[s->resp_head];
            s->resp_head++;
            s->resp_n--;
            if (!s->resp_n) s->resp_head = 0;
            if (s->cfg.wake_on_msgs) stop_at(s, best_t);
            if (best_t > s->now) s->now = best_t;
            break;
        case 4:
            s->stop_timer = 1;
            if (best_t > s->now) s->now = best_t;
            pos_row(s, best_t, LOB_POS_TIMER, s->local);
            s->next_timer = sat_add(s->next_timer, s->cfg.timer_ns);
            stop_at(s, best_t);
            break;
        }
        if (s->err) return s->err;
    }
    if (s->stop_pending) {
        s->now = s->stop_time > s->now ? s->stop_time : s->now;
        *reason = s->stop_feed && !s->stop_timer && !s->book_changed && s->n_dlv == begin ? LOB_RUN_FEED
                                                                                                  : LOB_RUN_WAKE;
        s->stop_feed = 0;
        fill_state(s, st, begin, *reason);
        return LOB_OK;
    }
    *reason = LOB_RUN_END;
    fill_state(s, st, begin, *reason);
    return LOB_OK;
}
