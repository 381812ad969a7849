/*
 * dbn.c - the Databento DBN MBO order tracker and record scanner (see dbn.h
 * and the mapping in lobsim/data/dbn.py, whose Python loop this replaces
 * step for step).
 *
 * Orders live in an open-addressing hash table (linear probing, backward
 * shift deletion, keys mixed with a per-table seed). Each entry keeps
 * Databento's remaining size and ours (lower by the fills executed since),
 * and the number of executed fills not yet reconciled by the order's C/M.
 */
#include "dbn.h"
#include "internal.h"

#include <stdlib.h>
#include <string.h>

#define F_LAST 128
#define F_SNAPSHOT 32
#define UNDEF_PRICE INT64_MAX

typedef struct ord {
    uint64_t id;
    int64_t price;
    int64_t db;       /* Databento's remaining size */
    int64_t ours;     /* ours: lower by the executed fills */
    int64_t pending;  /* executed fills not yet reconciled by a C/M */
    int8_t side;
    uint8_t used;
} ord;

struct lob_dbn_mbo {
    ord *slots;
    size_t cap, n;      /* slots (a power of two), live orders */
    unsigned bits;
    uint64_t seed;
    uint64_t *pend;     /* ids with pending fills (may repeat ids whose fills were reconciled) */
    size_t pend_n, pend_cap;
    int64_t pending_total;
    int execute;
    int batch_ended;    /* the previous record carried F_LAST */
    int open_run;       /* the previous record was a snapshot record without F_LAST */
    int any_event;      /* some event was written by an earlier call */
};

static size_t slot_of(const lob_dbn_mbo *t, uint64_t id) {
    return (size_t)(lob_mix64(id ^ t->seed) >> (64 - t->bits));
}

static ord *find(lob_dbn_mbo *t, uint64_t id) {
    size_t mask = t->cap - 1, i = slot_of(t, id);
    while (t->slots[i].used) {
        if (t->slots[i].id == id) return &t->slots[i];
        i = (i + 1) & mask;
    }
    return NULL;
}

static int rehash(lob_dbn_mbo *t, unsigned bits) {
    size_t cap = (size_t)1 << bits;
    ord *slots = calloc(cap, sizeof *slots);
    if (!slots) return LOB_ERR_NOMEM;
    ord *old = t->slots;
    size_t old_cap = t->cap;
    t->slots = slots;
    t->cap = cap;
    t->bits = bits;
    for (size_t k = 0; k < old_cap; k++) {
        if (!old[k].used) continue;
        size_t i = slot_of(t, old[k].id);
        while (slots[i].used) i = (i + 1) & (cap - 1);
        slots[i] = old[k];
    }
    free(old);
    return LOB_OK;
}

/* The entry for a new id (not present); NULL when out of memory. */
static ord *insert(lob_dbn_mbo *t, uint64_t id) {
    if (2 * (t->n + 1) > t->cap && rehash(t, t->bits + 1) != LOB_OK) return NULL;
    size_t mask = t->cap - 1, i = slot_of(t, id);
    while (t->slots[i].used) i = (i + 1) & mask;
    ord *o = &t->slots[i];
    memset(o, 0, sizeof *o);
    o->id = id;
    o->used = 1;
    t->n++;
    return o;
}

static void erase(lob_dbn_mbo *t, ord *o) {
    size_t mask = t->cap - 1, i = (size_t)(o - t->slots), j = i;
    t->slots[i].used = 0;
    t->n--;
    for (;;) {  /* backward shift: move later entries of the probe run into the hole */
        j = (j + 1) & mask;
        if (!t->slots[j].used) return;
        size_t home = slot_of(t, t->slots[j].id);
        /* entry j may move to i if its home is not in the cyclic range (i, j] */
        if ((j > i && (home <= i || home > j)) || (j < i && (home <= i && home > j))) {
            t->slots[i] = t->slots[j];
            t->slots[j].used = 0;
            i = j;
        }
    }
}

static void clear_orders(lob_dbn_mbo *t) {
    memset(t->slots, 0, t->cap * sizeof *t->slots);
    t->n = 0;
    t->pend_n = 0;
    t->pending_total = 0;
}

int lob_dbn_mbo_new(lob_dbn_mbo **out, int execute) {
    if (!out) return LOB_ERR_INVALID_ARG;
    *out = NULL;
    lob_dbn_mbo *t = calloc(1, sizeof *t);
    if (!t) return LOB_ERR_NOMEM;
    t->seed = lob_mix64((uint64_t)(uintptr_t)t ^ 0x5DEECE66DULL);
    if (rehash(t, 10) != LOB_OK) {
        free(t);
        return LOB_ERR_NOMEM;
    }
    t->execute = execute != 0;
    *out = t;
    return LOB_OK;
}

void lob_dbn_mbo_free(lob_dbn_mbo *t) {
    if (!t) return;
    free(t->slots);
    free(t->pend);
    free(t);
}

/* Fills whose C/M did not come in their batch (or before a clear / the end). */
static void settle_pending(lob_dbn_mbo *t, lob_dbn_mbo_result *res) {
    res->counts[LOB_DBN_FILLS_UNRECONCILED] += t->pending_total;
    for (size_t k = 0; k < t->pend_n; k++) {
        ord *o = find(t, t->pend[k]);
        if (o) o->pending = 0;
    }
    t->pend_n = 0;
    t->pending_total = 0;
}

static void pop_pending(lob_dbn_mbo *t, ord *o) {
    t->pending_total -= o->pending;
    o->pending = 0;
}

static void note(lob_dbn_mbo_result *res, int code, int64_t rec, uint64_t a, int64_t b, int64_t c) {
    int64_t k = res->note_n[code];
    res->note_count[code]++;
    if (k < LOB_DBN_MAX_NOTES) {
        lob_dbn_note *x = &res->notes[code][k];
        x->record = rec;
        x->a = a;
        x->b = b;
        x->c = c;
        res->note_n[code] = k + 1;
    }
}

static inline uint64_t rd64(const uint8_t *p) {
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

static inline uint32_t rd32(const uint8_t *p) {
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

static inline int8_t side_code(uint8_t c) { return c == 'B' ? 1 : (c == 'A' ? -1 : 0); }

typedef struct emitter {
    lob_event *out;
    int64_t *ev_rec;
    size_t n;
    int64_t rec;
    int64_t ts_event, ts_recv;
    uint64_t oid;
    uint16_t flags;
} emitter;

static inline void emit(emitter *e, uint8_t kind, int64_t qty, int64_t price, int8_t side) {
    lob_event *x = &e->out[e->n];
    x->ts_exch = e->ts_event;
    x->ts_local = e->ts_recv;
    x->order_id = e->oid;
    x->price = price;
    x->qty = qty;
    x->side = side;
    x->kind = kind;
    x->flags = e->flags;
    x->reserved = 0;
    e->ev_rec[e->n] = e->rec;
    e->n++;
}

/* BATCH_END on the last event written so far (this call's, or an earlier call's). */
static void mark_batch_end(lob_dbn_mbo *t, emitter *e, lob_dbn_mbo_result *res) {
    if (e->n) e->out[e->n - 1].flags |= LOB_FLAG_BATCH_END;
    else if (t->any_event) res->mark_prev = 1;
}

int lob_dbn_mbo_run(lob_dbn_mbo *t, const uint8_t *records, size_t n, size_t stride, lob_event *out,
                    int64_t *ev_rec, size_t cap, lob_dbn_mbo_result *res) {
    if (!t || !res || (n && (!records || !out || !ev_rec)) || stride < 56) return LOB_ERR_INVALID_ARG;
    memset(res, 0, sizeof *res);
    if (n > cap / 2) return LOB_ERR_CAPACITY;
    emitter e = {out, ev_rec, 0, 0, 0, 0, 0, 0};
    for (size_t i = 0; i < n; i++) {
        const uint8_t *r = records + i * stride;
        uint64_t oid = rd64(r + 16);
        int64_t p = (int64_t)rd64(r + 24);
        int64_t sz = rd32(r + 32);
        uint8_t fl = r[36], a = r[38], sc = r[39];
        int8_t s = side_code(sc);
        int snap = (fl & F_SNAPSHOT) != 0, last = (fl & F_LAST) != 0;
        if (t->open_run && !snap) {  /* the snapshot run ended without F_LAST */
            mark_batch_end(t, &e, res);
            res->counts[LOB_DBN_SNAPSHOT_RUNS_WITHOUT_LAST]++;
        }
        t->open_run = snap && !last;
        if (t->batch_ended && t->pending_total) settle_pending(t, res);
        t->batch_ended = last;
        e.rec = (int64_t)i;
        e.ts_event = (int64_t)rd64(r + 8);
        e.ts_recv = (int64_t)rd64(r + 40);
        e.oid = oid;
        e.flags = snap ? LOB_FLAG_SNAPSHOT : 0;
        ord *o;
        switch (a) {
        case 'C': {
            o = find(t, oid);
            if (!o) {
                note(res, LOB_DBN_UNKNOWN_CANCEL, (int64_t)i, oid, 0, 0);
                break;
            }
            int64_t left = o->db - sz;
            pop_pending(t, o);
            if (left <= 0) {
                if (left < 0) note(res, LOB_DBN_CANCEL_EXCEEDS, (int64_t)i, oid, sz, o->db);
                if (o->ours > 0) emit(&e, LOB_EV_DELETE, o->ours, o->price, o->side);
                else res->counts[LOB_DBN_CANCEL_ABSORBED]++;
                erase(t, o);
                break;
            }
            o->db = left;
            if (o->ours == 0) {
                emit(&e, LOB_EV_ADD, left, o->price, o->side);
                res->counts[LOB_DBN_READDED]++;
            } else if (o->ours > left) {
                emit(&e, LOB_EV_REDUCE, o->ours - left, o->price, o->side);
            } else if (o->ours < left) {
                emit(&e, LOB_EV_MODIFY, left, o->price, o->side);
                res->counts[LOB_DBN_CANCEL_BELOW_EXECUTED]++;
            } else {
                res->counts[LOB_DBN_CANCEL_ABSORBED]++;
            }
            o->ours = left;
            break;
        }
        case 'A':
            if (s == 0 || sz == 0) {
                note(res, LOB_DBN_ADD_NO_SIDE_SIZE, (int64_t)i, oid, sc, sz);
                break;
            }
            o = find(t, oid);
            if (o) {
                note(res, LOB_DBN_DUPLICATE_ADD, (int64_t)i, oid, 0, 0);
                if (o->ours > 0) emit(&e, LOB_EV_DELETE, o->ours, o->price, o->side);
                pop_pending(t, o);
            } else if (!(o = insert(t, oid))) {
                return LOB_ERR_NOMEM;
            }
            o->side = s;
            o->price = p;
            o->db = o->ours = sz;
            emit(&e, LOB_EV_ADD, sz, p, s);
            break;
        case 'M':
            o = find(t, oid);
            if (!o) {
                note(res, LOB_DBN_UNKNOWN_MODIFY, (int64_t)i, oid, 0, 0);
                if (s != 0 && sz > 0) {
                    if (!(o = insert(t, oid))) return LOB_ERR_NOMEM;
                    o->side = s;
                    o->price = p;
                    o->db = o->ours = sz;
                    emit(&e, LOB_EV_ADD, sz, p, s);
                }
                break;
            }
            pop_pending(t, o);
            if (s != o->side || sz == 0) {  /* a side change or a size of 0 cannot be a MODIFY */
                res->counts[sz ? LOB_DBN_MODIFY_SIDE_CHANGE : LOB_DBN_MODIFY_TO_ZERO]++;
                if (o->ours > 0) emit(&e, LOB_EV_DELETE, o->ours, o->price, o->side);
                if (sz == 0 || s == 0) {
                    erase(t, o);
                    break;
                }
                o->side = s;
                o->ours = 0;
            }
            o->price = p;
            o->db = sz;
            if (o->ours == 0) {  /* executed away in ours (e.g. iceberg refill): a new queue place */
                emit(&e, LOB_EV_ADD, sz, p, s);
                res->counts[LOB_DBN_READDED]++;
            } else {
                emit(&e, LOB_EV_MODIFY, sz, p, s);
            }
            o->ours = sz;
            break;
        case 'F':
            o = find(t, oid);
            if (!t->execute) {
                res->counts[LOB_DBN_FILL_NOT_EMITTED]++;
            } else if (!o) {
                res->counts[LOB_DBN_FILL_UNKNOWN_ORDER]++;
            } else if (s != o->side || p != o->price) {
                res->counts[LOB_DBN_FILL_NOT_AT_RESTING]++;  /* aggressor's fill, auction price */
            } else if (!(sz > 0 && sz <= o->ours)) {
                res->counts[LOB_DBN_FILL_EXCEEDS_ORDER]++;  /* e.g. hidden iceberg quantity */
            } else {
                emit(&e, LOB_EV_EXECUTE, sz, p, s);
                o->ours -= sz;
                if (o->pending++ == 0) {
                    if (LOB_GROW(t->pend, t->pend_cap, t->pend_n + 1) != LOB_OK) return LOB_ERR_NOMEM;
                    t->pend[t->pend_n++] = oid;
                }
                t->pending_total++;
                res->counts[LOB_DBN_FILL_EXECUTED]++;
            }
            break;
        case 'T':
            if (p == UNDEF_PRICE) note(res, LOB_DBN_TRADE_NO_PRICE, (int64_t)i, oid, sz, 0);
            else emit(&e, LOB_EV_TRADE, sz, p, s);
            break;
        case 'R':
            settle_pending(t, res);
            clear_orders(t);
            emit(&e, LOB_EV_CLEAR, 0, 0, 0);
            break;
        case 'N':
            res->counts[LOB_DBN_NONE_ACTION]++;
            break;
        default:
            note(res, LOB_DBN_UNKNOWN_ACTION, (int64_t)i, oid, a, 0);
        }
        if (last) mark_batch_end(t, &e, res);
    }
    res->n_events = (int64_t)e.n;
    res->resting = (int64_t)t->n;
    if (e.n) t->any_event = 1;
    return LOB_OK;
}

int lob_dbn_mbo_finish(lob_dbn_mbo *t, lob_dbn_mbo_result *res) {
    if (!t || !res) return LOB_ERR_INVALID_ARG;
    memset(res, 0, sizeof *res);
    if (t->open_run) {
        if (t->any_event) res->mark_prev = 1;
        res->counts[LOB_DBN_SNAPSHOT_RUNS_WITHOUT_LAST]++;
        t->open_run = 0;
    }
    settle_pending(t, res);
    res->resting = (int64_t)t->n;
    return LOB_OK;
}

int lob_dbn_scan(const uint8_t *buf, size_t len, int64_t *offsets, size_t cap, size_t *n_out, size_t *consumed) {
    if (!n_out || !consumed || (len && !buf) || (cap && !offsets)) return LOB_ERR_INVALID_ARG;
    size_t pos = 0, n = 0;
    while (n < cap && pos < len) {
        size_t size = (size_t)buf[pos] * 4;
        if (size < 16) {
            *n_out = n;
            *consumed = pos;
            return LOB_ERR_CORRUPT;
        }
        if (size > len - pos) break;
        offsets[n++] = (int64_t)pos;
        pos += size;
    }
    *n_out = n;
    *consumed = pos;
    return LOB_OK;
}
