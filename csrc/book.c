/*
 * book.c - L3 (order-by-order) and L2 (price-level) order book, matching engine,
 * batch apply and depth series.
 *
 * Design:
 * - Orders and levels live in index-addressed pools (growable arrays with a
 *   free list), so nothing is malloc'ed per order on the hot path and handing
 *   out indices never hands out pointers.
 * - Each side is a "ladder": a sorted array of level keys with a parallel
 *   array of level indices. The key is the price for bids and -price for
 *   asks, so both ladders are ascending and the best level is always the last
 *   entry: best bid/ask is O(1), and inserting or removing near the top (where
 *   almost all activity is) moves only a few entries. Memory is proportional
 *   to live levels, not to the price range.
 * - A level is a FIFO doubly linked list of orders (price-time priority) with
 *   its total qty and order count.
 * - An open-addressing hash map (linear probing, backward-shift deletion)
 *   maps order id -> order index for O(1) cancel/execute/modify.
 * - Conservation counters (added / executed / cancelled) use unsigned
 *   wrapping arithmetic so long replays cannot overflow into UB; the
 *   invariant checker compares them modulo 2^64.
 * An L2 book uses the same ladders and levels with no orders attached.
 */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NIL (-1)

typedef struct {
    uint64_t id;
    int64_t price;
    int64_t qty;
    int32_t level; /* level pool index */
    int32_t prev;  /* order pool indices within the level FIFO; NIL at ends */
    int32_t next;  /* also the free-list link while the slot is free */
    int8_t side;
} order_t;

typedef struct {
    int64_t price;
    int64_t qty; /* total displayed qty */
    int32_t count;
    int32_t head, tail;
    int32_t next_free;
    int8_t side;
} level_t;

typedef struct {
    int64_t *key; /* ascending; best at the end */
    int32_t *lv;
    size_t n, cap;
} ladder_t;

typedef struct {
    uint64_t key;
    int32_t val; /* order index, NIL = empty slot */
} slot_t;

struct lob_book {
    int type;
    order_t *orders;
    size_t orders_cap;
    int32_t order_free;
    size_t n_orders;
    level_t *levels;
    size_t levels_cap;
    int32_t level_free;
    ladder_t bids, asks;
    slot_t *map;
    size_t map_cap; /* power of two */
    int map_shift;  /* 64 - log2(map_cap): the hash uses the high product bits */
    uint64_t added, executed, cancelled, resting;
};

/* ------------------------------------------------------------------ errors */

const char *lob_strerror(int code) {
    switch (code) {
    case LOB_OK: return "ok";
    case LOB_ERR_NOMEM: return "out of memory";
    case LOB_ERR_INVALID_ARG: return "invalid argument";
    case LOB_ERR_UNKNOWN_ORDER: return "unknown order id";
    case LOB_ERR_DUPLICATE_ORDER: return "duplicate order id";
    case LOB_ERR_BAD_QTY: return "invalid quantity";
    case LOB_ERR_BAD_PRICE: return "invalid price";
    case LOB_ERR_BAD_SIDE: return "invalid side";
    case LOB_ERR_BAD_KIND: return "invalid event kind for this book";
    case LOB_ERR_BAD_TIF: return "invalid time in force";
    case LOB_ERR_WOULD_CROSS: return "post-only order would cross";
    case LOB_ERR_CAPACITY: return "output buffer too small";
    case LOB_ERR_CORRUPT: return "book invariant violated";
    default: return "unknown error";
    }
}

/* ----------------------------------------------------------------- helpers */

static int valid_side(int side) { return side == LOB_SIDE_BID || side == LOB_SIDE_ASK; }
/* INT64_MIN is refused so that -price (the ask key) never overflows. */
static int valid_price(int64_t price) { return price != INT64_MIN; }
static int64_t side_key(int side, int64_t price) { return side == LOB_SIDE_BID ? price : -price; }
static ladder_t *ladder_of(lob_book *b, int side) { return side == LOB_SIDE_BID ? &b->bids : &b->asks; }
static const ladder_t *cladder_of(const lob_book *b, int side) {
    return side == LOB_SIDE_BID ? &b->bids : &b->asks;
}

/* ------------------------------------------------------------- id hash map */

static size_t map_hash(const lob_book *b, uint64_t id) {
    return (size_t)(lob_fib_mix(id) >> b->map_shift);
}

/* Slot holding id, or the empty slot where it would go. */
static size_t map_probe(const lob_book *b, uint64_t id) {
    size_t mask = b->map_cap - 1;
    size_t i = map_hash(b, id);
    while (b->map[i].val != NIL && b->map[i].key != id) i = (i + 1) & mask;
    return i;
}

static int32_t map_get(const lob_book *b, uint64_t id) { return b->map[map_probe(b, id)].val; }

static int map_resize(lob_book *b, size_t cap) {
    slot_t *m = malloc(cap * sizeof(slot_t));
    if (!m) return LOB_ERR_NOMEM;
    for (size_t i = 0; i < cap; i++) m[i].val = NIL;
    slot_t *old = b->map;
    size_t old_cap = b->map_cap;
    b->map = m;
    b->map_cap = cap;
    b->map_shift = 64;
    for (size_t c = cap; c > 1; c >>= 1) b->map_shift--;
    for (size_t i = 0; i < old_cap; i++)
        if (old[i].val != NIL) b->map[map_probe(b, old[i].key)] = old[i];
    free(old);
    return LOB_OK;
}

/* Make room for one more id (load factor <= 1/2). */
static int map_reserve(lob_book *b) {
    if ((b->n_orders + 1) * 2 <= b->map_cap) return LOB_OK;
    return map_resize(b, b->map_cap * 2);
}

static void map_remove(lob_book *b, uint64_t id) {
    size_t mask = b->map_cap - 1;
    size_t i = map_probe(b, id);
    if (b->map[i].val == NIL) return;
    /* Backward-shift deletion keeps probe chains intact without tombstones. */
    size_t j = i;
    for (;;) {
        j = (j + 1) & mask;
        if (b->map[j].val == NIL) break;
        size_t home = map_hash(b, b->map[j].key);
        /* Move j into the hole i if its home is not in (i, j] cyclically. */
        if (((j - home) & mask) >= ((j - i) & mask)) {
            b->map[i] = b->map[j];
            i = j;
        }
    }
    b->map[i].val = NIL;
}

/* ------------------------------------------------------------------ pools */

/* Make sure one free order slot exists. */
static int order_reserve(lob_book *b) {
    if (b->order_free == NIL) {
        size_t old = b->orders_cap;
        if (old >= (size_t)INT32_MAX / 2) return LOB_ERR_NOMEM;
        int rc = LOB_GROW(b->orders, b->orders_cap, old + 1);
        if (rc) return rc;
        for (size_t i = b->orders_cap; i-- > old;) {
            b->orders[i].next = b->order_free;
            b->order_free = (int32_t)i;
        }
    }
    return LOB_OK;
}

static int32_t order_take(lob_book *b) {
    int32_t i = b->order_free;
    b->order_free = b->orders[i].next;
    return i;
}

static void order_release(lob_book *b, int32_t i) {
    b->orders[i].next = b->order_free;
    b->orders[i].level = NIL;
    b->order_free = i;
}

/* Make sure one free level slot exists. */
static int level_reserve(lob_book *b) {
    if (b->level_free == NIL) {
        size_t old = b->levels_cap;
        if (old >= (size_t)INT32_MAX / 2) return LOB_ERR_NOMEM;
        int rc = LOB_GROW(b->levels, b->levels_cap, old + 1);
        if (rc) return rc;
        for (size_t i = b->levels_cap; i-- > old;) {
            b->levels[i].next_free = b->level_free;
            b->level_free = (int32_t)i;
        }
    }
    return LOB_OK;
}

/* ---------------------------------------------------------------- ladders */

/* Position of key in the ladder if present (*found = 1), else the insertion
 * point. Scans the top few entries first: most activity is near the best. */
static size_t ladder_find(const ladder_t *l, int64_t key, int *found) {
    size_t n = l->n;
    size_t stop = n > 8 ? n - 8 : 0;
    size_t i = n;
    while (i > stop && l->key[i - 1] > key) i--;
    if (i == stop && stop > 0 && l->key[i - 1] > key) {
        size_t lo = 0, hi = stop; /* answer in [lo, hi] */
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            if (l->key[mid] > key) hi = mid;
            else lo = mid + 1;
        }
        i = lo;
    }
    /* now every key before i is <= key, every key from i on is > key */
    if (i > 0 && l->key[i - 1] == key) {
        *found = 1;
        return i - 1;
    }
    *found = 0;
    return i;
}

static int ladder_reserve(ladder_t *l) {
    if (l->n < l->cap) return LOB_OK;
    size_t kcap = l->cap, vcap = l->cap;
    if (LOB_GROW(l->key, kcap, l->n + 1) != LOB_OK || LOB_GROW(l->lv, vcap, l->n + 1) != LOB_OK)
        return LOB_ERR_NOMEM; /* a grown key array alone is harmless */
    l->cap = kcap < vcap ? kcap : vcap;
    return LOB_OK;
}

/* Reserve what creating one level on `side` can need, so creation cannot fail. */
static int reserve_level(lob_book *b, int side) {
    int rc = level_reserve(b);
    return rc ? rc : ladder_reserve(ladder_of(b, side));
}

/* Reserve what inserting one order on `side` can need (id map room, an order
 * slot, a level), so that a change never fails halfway. */
static int reserve_insert(lob_book *b, int side) {
    int rc = map_reserve(b);
    if (!rc) rc = order_reserve(b);
    return rc ? rc : reserve_level(b, side);
}

/* Level index at (side, price), creating an empty level if needed.
 * Needs a prior reserve_level(b, side). */
static int32_t level_find_or_create(lob_book *b, int side, int64_t price) {
    ladder_t *l = ladder_of(b, side);
    int64_t key = side_key(side, price);
    int found;
    size_t pos = ladder_find(l, key, &found);
    if (found) return l->lv[pos];
    int32_t li = b->level_free;
    b->level_free = b->levels[li].next_free;
    level_t *lv = &b->levels[li];
    lv->price = price;
    lv->qty = 0;
    lv->count = 0;
    lv->head = lv->tail = NIL;
    lv->side = (int8_t)side;
    memmove(l->key + pos + 1, l->key + pos, (l->n - pos) * sizeof(int64_t));
    memmove(l->lv + pos + 1, l->lv + pos, (l->n - pos) * sizeof(int32_t));
    l->key[pos] = key;
    l->lv[pos] = li;
    l->n++;
    return li;
}

/* Existing level at (side, price) or NIL. */
static int32_t level_find(const lob_book *b, int side, int64_t price) {
    const ladder_t *l = cladder_of(b, side);
    int found;
    size_t pos = ladder_find(l, side_key(side, price), &found);
    return found ? l->lv[pos] : NIL;
}

static void level_remove(lob_book *b, int32_t li) {
    level_t *lv = &b->levels[li];
    ladder_t *l = ladder_of(b, lv->side);
    int found;
    size_t pos = ladder_find(l, side_key(lv->side, lv->price), &found);
    if (found) {
        memmove(l->key + pos, l->key + pos + 1, (l->n - pos - 1) * sizeof(int64_t));
        memmove(l->lv + pos, l->lv + pos + 1, (l->n - pos - 1) * sizeof(int32_t));
        l->n--;
    }
    lv->next_free = b->level_free;
    b->level_free = li;
}

/* ----------------------------------------------------------- order lists */

static void fifo_append(lob_book *b, int32_t li, int32_t oi) {
    level_t *lv = &b->levels[li];
    order_t *o = &b->orders[oi];
    o->level = li;
    o->prev = lv->tail;
    o->next = NIL;
    if (lv->tail != NIL) b->orders[lv->tail].next = oi;
    else lv->head = oi;
    lv->tail = oi;
    lv->count++;
    lv->qty += o->qty;
}

/* Take an order out of its level's FIFO, keeping the level even if empty. */
static void fifo_detach(lob_book *b, int32_t oi) {
    order_t *o = &b->orders[oi];
    level_t *lv = &b->levels[o->level];
    if (o->prev != NIL) b->orders[o->prev].next = o->next;
    else lv->head = o->next;
    if (o->next != NIL) b->orders[o->next].prev = o->prev;
    else lv->tail = o->prev;
    lv->count--;
    lv->qty -= o->qty;
    o->level = NIL;
}

/* Unlink an order from its level; removes the level when it empties. */
static void fifo_unlink(lob_book *b, int32_t oi) {
    int32_t li = b->orders[oi].level;
    fifo_detach(b, oi);
    if (b->levels[li].count == 0) level_remove(b, li);
}

/* Remove an order completely (list, map, pool). */
static void order_remove(lob_book *b, int32_t oi) {
    b->resting -= (uint64_t)b->orders[oi].qty;
    fifo_unlink(b, oi);
    map_remove(b, b->orders[oi].id);
    order_release(b, oi);
    b->n_orders--;
}

/* Would `extra` more lots push the book's resting total past INT64_MAX? The
 * book-wide cap also keeps every level total and every counter read as int64
 * exact. */
static int total_overflows(const lob_book *b, int64_t extra) {
    return extra > 0 && (uint64_t)extra > (uint64_t)INT64_MAX - b->resting;
}

/* ------------------------------------------------------------- lifecycle */

int lob_book_new(int book_type, lob_book **out) {
    if (!out || (book_type != LOB_BOOK_L2 && book_type != LOB_BOOK_L3)) return LOB_ERR_INVALID_ARG;
    *out = NULL;
    lob_book *b = calloc(1, sizeof(*b));
    if (!b) return LOB_ERR_NOMEM;
    b->type = book_type;
    b->order_free = NIL;
    b->level_free = NIL;
    if (map_resize(b, 1024)) {
        free(b);
        return LOB_ERR_NOMEM;
    }
    *out = b;
    return LOB_OK;
}

void lob_book_free(lob_book *b) {
    if (!b) return;
    free(b->orders);
    free(b->levels);
    free(b->bids.key);
    free(b->bids.lv);
    free(b->asks.key);
    free(b->asks.lv);
    free(b->map);
    free(b);
}

/* ---------------------------------------------------------- L3 operations */

/* Insert a new resting order; caller has validated id absence and fields.
 * Either fully succeeds or changes nothing. */
static int insert_order(lob_book *b, uint64_t id, int side, int64_t price, int64_t qty) {
    if (total_overflows(b, qty)) return LOB_ERR_BAD_QTY;
    int rc = reserve_insert(b, side);
    if (rc) return rc;
    int32_t li = level_find_or_create(b, side, price);
    int32_t oi = order_take(b);
    order_t *o = &b->orders[oi];
    o->id = id;
    o->price = price;
    o->qty = qty;
    o->side = (int8_t)side;
    fifo_append(b, li, oi);
    size_t slot = map_probe(b, id);
    b->map[slot].key = id;
    b->map[slot].val = oi;
    b->n_orders++;
    b->resting += (uint64_t)qty;
    b->added += (uint64_t)qty;
    return LOB_OK;
}

int lob_book_add(lob_book *b, uint64_t id, int side, int64_t price, int64_t qty) {
    if (!b) return LOB_ERR_INVALID_ARG;
    if (b->type != LOB_BOOK_L3) return LOB_ERR_BAD_KIND;
    if (!valid_side(side)) return LOB_ERR_BAD_SIDE;
    if (qty <= 0) return LOB_ERR_BAD_QTY;
    if (!valid_price(price)) return LOB_ERR_BAD_PRICE;
    if (map_get(b, id) != NIL) return LOB_ERR_DUPLICATE_ORDER;
    return insert_order(b, id, side, price, qty);
}

/* Take qty off an order (cancel or execution); removes it at zero. */
static int take_qty(lob_book *b, uint64_t id, int64_t qty, uint64_t *counter) {
    if (!b) return LOB_ERR_INVALID_ARG;
    if (b->type != LOB_BOOK_L3) return LOB_ERR_BAD_KIND;
    int32_t oi = map_get(b, id);
    if (oi == NIL) return LOB_ERR_UNKNOWN_ORDER;
    order_t *o = &b->orders[oi];
    if (qty <= 0 || qty > o->qty) return LOB_ERR_BAD_QTY;
    *counter += (uint64_t)qty;
    if (qty == o->qty) {
        order_remove(b, oi);
    } else {
        o->qty -= qty;
        b->levels[o->level].qty -= qty;
        b->resting -= (uint64_t)qty;
    }
    return LOB_OK;
}

int lob_book_reduce(lob_book *b, uint64_t id, int64_t qty) {
    return b ? take_qty(b, id, qty, &b->cancelled) : LOB_ERR_INVALID_ARG;
}

int lob_book_execute(lob_book *b, uint64_t id, int64_t qty) {
    return b ? take_qty(b, id, qty, &b->executed) : LOB_ERR_INVALID_ARG;
}

int lob_book_delete(lob_book *b, uint64_t id) {
    if (!b) return LOB_ERR_INVALID_ARG;
    if (b->type != LOB_BOOK_L3) return LOB_ERR_BAD_KIND;
    int32_t oi = map_get(b, id);
    if (oi == NIL) return LOB_ERR_UNKNOWN_ORDER;
    b->cancelled += (uint64_t)b->orders[oi].qty;
    order_remove(b, oi);
    return LOB_OK;
}

int lob_book_modify(lob_book *b, uint64_t id, int64_t price, int64_t qty) {
    if (!b) return LOB_ERR_INVALID_ARG;
    if (b->type != LOB_BOOK_L3) return LOB_ERR_BAD_KIND;
    int32_t oi = map_get(b, id);
    if (oi == NIL) return LOB_ERR_UNKNOWN_ORDER;
    if (qty <= 0) return LOB_ERR_BAD_QTY;
    if (!valid_price(price)) return LOB_ERR_BAD_PRICE;
    order_t *o = &b->orders[oi];
    int64_t old = o->qty;
    if (price == o->price && qty <= old) { /* size decrease keeps priority */
        o->qty = qty;
        b->levels[o->level].qty -= old - qty;
        b->resting -= (uint64_t)(old - qty);
        b->cancelled += (uint64_t)(old - qty);
        return LOB_OK;
    }
    /* Loses priority: re-queue at the tail of the (new) level. Check and
     * reserve first so the move cannot fail halfway. */
    if (total_overflows(b, qty - old)) return LOB_ERR_BAD_QTY;
    if (price == o->price) { /* size increase at the same level: no allocation */
        int32_t li = o->level;
        fifo_detach(b, oi);
        o->qty = qty;
        fifo_append(b, li, oi);
    } else {
        int rc = reserve_level(b, o->side);
        if (rc) return rc;
        o = &b->orders[oi];
        int32_t li = level_find_or_create(b, o->side, price);
        fifo_unlink(b, oi); /* may remove the old level; li is another level */
        o->price = price;
        o->qty = qty;
        fifo_append(b, li, oi);
    }
    if (qty > old) {
        b->added += (uint64_t)(qty - old);
        b->resting += (uint64_t)(qty - old);
    } else {
        b->cancelled += (uint64_t)(old - qty);
        b->resting -= (uint64_t)(old - qty);
    }
    return LOB_OK;
}

/* ---------------------------------------------------------- L2 operation */

int lob_book_set_level(lob_book *b, int side, int64_t price, int64_t qty) {
    if (!b) return LOB_ERR_INVALID_ARG;
    if (b->type != LOB_BOOK_L2) return LOB_ERR_BAD_KIND;
    if (!valid_side(side)) return LOB_ERR_BAD_SIDE;
    if (qty < 0) return LOB_ERR_BAD_QTY;
    if (!valid_price(price)) return LOB_ERR_BAD_PRICE;
    if (qty == 0) {
        int32_t li = level_find(b, side, price);
        if (li != NIL) {
            b->resting -= (uint64_t)b->levels[li].qty;
            level_remove(b, li);
        }
        return LOB_OK;
    }
    int32_t li = level_find(b, side, price);
    if (total_overflows(b, qty - (li == NIL ? 0 : b->levels[li].qty))) return LOB_ERR_BAD_QTY;
    if (li == NIL) {
        int rc = reserve_level(b, side);
        if (rc) return rc;
        li = level_find_or_create(b, side, price);
    }
    b->resting += (uint64_t)qty - (uint64_t)b->levels[li].qty;
    b->levels[li].qty = qty;
    return LOB_OK;
}

int lob_book_clear(lob_book *b) {
    if (!b) return LOB_ERR_INVALID_ARG;
    b->cancelled += b->type == LOB_BOOK_L3 ? b->resting : 0;
    b->resting = 0;
    b->bids.n = b->asks.n = 0;
    /* Rebuild the free lists over the whole pools. */
    b->order_free = NIL;
    for (size_t i = b->orders_cap; i-- > 0;) {
        b->orders[i].next = b->order_free;
        b->orders[i].level = NIL;
        b->order_free = (int32_t)i;
    }
    b->level_free = NIL;
    for (size_t i = b->levels_cap; i-- > 0;) {
        b->levels[i].next_free = b->level_free;
        b->level_free = (int32_t)i;
    }
    for (size_t i = 0; i < b->map_cap; i++) b->map[i].val = NIL;
    b->n_orders = 0;
    return LOB_OK;
}

/* --------------------------------------------------------------- matching */

static int crosses(int taker_side, int tif, int64_t limit, int64_t resting_price) {
    if (tif == LOB_TIF_MARKET) return 1;
    return taker_side == LOB_SIDE_BID ? resting_price <= limit : resting_price >= limit;
}

int lob_book_submit(lob_book *b, uint64_t id, int side, int64_t price, int64_t qty, int tif,
                    lob_fill *fills, size_t cap, size_t *n_fills, int64_t *rested_qty) {
    if (!b || !n_fills || !rested_qty || (cap && !fills)) return LOB_ERR_INVALID_ARG;
    *n_fills = 0;
    *rested_qty = 0;
    if (b->type != LOB_BOOK_L3) return LOB_ERR_BAD_KIND;
    if (tif < LOB_TIF_GTC || tif > LOB_TIF_MARKET) return LOB_ERR_BAD_TIF;
    if (!valid_side(side)) return LOB_ERR_BAD_SIDE;
    if (qty <= 0) return LOB_ERR_BAD_QTY;
    if (tif != LOB_TIF_MARKET && !valid_price(price)) return LOB_ERR_BAD_PRICE;
    if (map_get(b, id) != NIL) return LOB_ERR_DUPLICATE_ORDER;

    /* Dry run: how much would match, and how many fills would it take? */
    const ladder_t *opp = cladder_of(b, -side);
    int64_t want = qty, avail = 0;
    size_t needed = 0;
    for (size_t k = opp->n; k-- > 0 && avail < want;) {
        const level_t *lv = &b->levels[opp->lv[k]];
        if (!crosses(side, tif, price, lv->price)) break;
        for (int32_t oi = lv->head; oi != NIL && avail < want; oi = b->orders[oi].next) {
            avail += b->orders[oi].qty < want - avail ? b->orders[oi].qty : want - avail;
            needed++;
        }
    }
    if (tif == LOB_TIF_POST_ONLY && needed > 0) return LOB_ERR_WOULD_CROSS;
    if (tif == LOB_TIF_FOK && avail < qty) return LOB_OK; /* killed, nothing happens */
    if (needed > cap) {
        *n_fills = needed;
        return LOB_ERR_CAPACITY;
    }
    int64_t rest = qty - avail;
    int rests = (tif == LOB_TIF_GTC || tif == LOB_TIF_POST_ONLY) && rest > 0;
    if (rests) {
        /* Everything the resting remainder needs is reserved and checked
         * before any fill, so a failure cannot leave a half-matched order.
         * Matching only frees memory on the other side. */
        if (rest > INT64_MAX - ((int64_t)b->resting - avail)) return LOB_ERR_BAD_QTY; /* total after fills */
        int rc = reserve_insert(b, side);
        if (rc) return rc;
    }

    /* Execute: best level first, FIFO within a level, at the resting price. */
    ladder_t *opl = ladder_of(b, -side);
    int64_t left = avail;
    size_t nf = 0;
    while (left > 0) {
        level_t *lv = &b->levels[opl->lv[opl->n - 1]];
        int32_t oi = lv->head;
        order_t *o = &b->orders[oi];
        int64_t q = o->qty < left ? o->qty : left;
        lob_fill *f = &fills[nf++];
        memset(f, 0, sizeof(*f));
        f->maker_id = o->id;
        f->taker_id = id;
        f->price = o->price;
        f->qty = q;
        f->maker_remaining = o->qty - q;
        f->taker_side = (int8_t)side;
        b->executed += (uint64_t)q;
        left -= q;
        if (q == o->qty) {
            order_remove(b, oi);
        } else {
            o->qty -= q;
            lv->qty -= q;
            b->resting -= (uint64_t)q;
        }
    }
    *n_fills = nf;
    if (rests) {
        int rc = insert_order(b, id, side, price, rest);
        if (rc) return rc;
        *rested_qty = rest;
    }
    return LOB_OK;
}

/* ------------------------------------------------------------ batch apply */

static int apply_one(lob_book *b, const lob_event *e) {
    switch (e->kind) {
    case LOB_EV_ADD: return lob_book_add(b, e->order_id, e->side, e->price, e->qty);
    case LOB_EV_REDUCE: return lob_book_reduce(b, e->order_id, e->qty);
    case LOB_EV_DELETE: return lob_book_delete(b, e->order_id);
    case LOB_EV_EXECUTE: return lob_book_execute(b, e->order_id, e->qty);
    case LOB_EV_MODIFY: return lob_book_modify(b, e->order_id, e->price, e->qty);
    case LOB_EV_SET_LEVEL: return lob_book_set_level(b, e->side, e->price, e->qty);
    case LOB_EV_TRADE:
        if (e->side < -1 || e->side > 1) return LOB_ERR_BAD_SIDE;
        return e->qty > 0 ? LOB_OK : LOB_ERR_BAD_QTY;
    case LOB_EV_CLEAR: return lob_book_clear(b);
    case LOB_EV_STATUS:
        return e->qty >= LOB_STATUS_HALT && e->qty <= LOB_STATUS_TRADING ? LOB_OK : LOB_ERR_BAD_QTY;
    default: return LOB_ERR_BAD_KIND;
    }
}

static void result_reset(lob_apply_result *r) {
    memset(r, 0, sizeof(*r));
    r->first_error_index = -1;
}

/* Record a rejected event i; returns nonzero when the run must stop. */
static int result_note(lob_apply_result *r, size_t i, int rc, int strict) {
    if (r->first_error_index < 0 || strict || rc == LOB_ERR_NOMEM) {
        /* the first rejected event, or the one that stops the run */
        r->first_error_index = (int64_t)i;
        r->first_error = rc;
    }
    if (strict || rc == LOB_ERR_NOMEM) return 1;
    r->rejected++;
    if (-rc > 0 && -rc < LOB_N_ERRORS) r->by_error[-rc]++;
    return 0;
}

int lob_book_apply(lob_book *b, const lob_event *ev, size_t n, int strict, lob_apply_result *r) {
    if (!b || !r || (n && !ev)) return LOB_ERR_INVALID_ARG;
    result_reset(r);
    for (size_t i = 0; i < n; i++) {
        int rc = apply_one(b, &ev[i]);
        if (rc != LOB_OK && result_note(r, i, rc, strict)) return rc;
        if (rc == LOB_OK) r->applied++;
    }
    return LOB_OK;
}

/* ---------------------------------------------------------------- views */

int lob_book_best(const lob_book *b, int side, int64_t *price, int64_t *qty) {
    if (!b || !price || !qty || !valid_side(side)) return LOB_ERR_INVALID_ARG;
    const ladder_t *l = cladder_of(b, side);
    if (l->n == 0) {
        *price = 0;
        *qty = 0;
        return 0;
    }
    const level_t *lv = &b->levels[l->lv[l->n - 1]];
    *price = lv->price;
    *qty = lv->qty;
    return 1;
}

static size_t write_side(const lob_book *b, int side, size_t levels, int64_t *px, int64_t *qty) {
    const ladder_t *l = cladder_of(b, side);
    size_t k = 0;
    for (; k < levels && k < l->n; k++) {
        const level_t *lv = &b->levels[l->lv[l->n - 1 - k]];
        px[k] = lv->price;
        qty[k] = lv->qty;
    }
    for (size_t j = k; j < levels; j++) px[j] = qty[j] = 0;
    return k;
}

int lob_book_depth(const lob_book *b, int side, size_t levels, int64_t *px, int64_t *qty,
                   size_t *n_out) {
    if (!b || !valid_side(side) || !n_out || (levels && (!px || !qty))) return LOB_ERR_INVALID_ARG;
    *n_out = write_side(b, side, levels, px, qty);
    return LOB_OK;
}

int lob_depth_series(lob_book *b, const lob_event *ev, size_t n, size_t levels, int batch_end_only,
                     int strict, int64_t *bid_px, int64_t *bid_qty, int64_t *ask_px,
                     int64_t *ask_qty, int64_t *row_index, size_t rows_cap, size_t *rows_out,
                     lob_apply_result *r) {
    if (!b || !r || !rows_out || (n && !ev)) return LOB_ERR_INVALID_ARG;
    result_reset(r);
    *rows_out = 0;
    size_t rows = 0;
    for (size_t i = 0; i < n; i++)
        rows += !batch_end_only || (ev[i].flags & LOB_FLAG_BATCH_END);
    if (rows > rows_cap) {
        *rows_out = rows;
        return LOB_ERR_CAPACITY;
    }
    if (rows && levels && (!bid_px || !bid_qty || !ask_px || !ask_qty)) return LOB_ERR_INVALID_ARG;
    size_t row = 0;
    for (size_t i = 0; i < n; i++) {
        int rc = apply_one(b, &ev[i]);
        if (rc != LOB_OK && result_note(r, i, rc, strict)) {
            *rows_out = row;
            return rc;
        }
        if (rc == LOB_OK) r->applied++;
        if (batch_end_only && !(ev[i].flags & LOB_FLAG_BATCH_END)) continue;
        size_t off = row * levels;
        write_side(b, LOB_SIDE_BID, levels, bid_px + off, bid_qty + off);
        write_side(b, LOB_SIDE_ASK, levels, ask_px + off, ask_qty + off);
        if (row_index) row_index[row] = (int64_t)i;
        row++;
    }
    *rows_out = row;
    return LOB_OK;
}

size_t lob_book_order_count(const lob_book *b) { return b ? b->n_orders : 0; }

size_t lob_book_level_count(const lob_book *b, int side) {
    return b && valid_side(side) ? cladder_of(b, side)->n : 0;
}

int lob_book_order(const lob_book *b, uint64_t id, lob_order_info *out) {
    if (!b || !out) return LOB_ERR_INVALID_ARG;
    if (b->type != LOB_BOOK_L3) return LOB_ERR_BAD_KIND;
    int32_t oi = map_get(b, id);
    if (oi == NIL) return LOB_ERR_UNKNOWN_ORDER;
    const order_t *o = &b->orders[oi];
    int64_t ahead = 0, n_ahead = 0;
    for (int32_t j = b->levels[o->level].head; j != oi; j = b->orders[j].next) {
        ahead += b->orders[j].qty;
        n_ahead++;
    }
    memset(out, 0, sizeof(*out));
    out->order_id = o->id;
    out->price = o->price;
    out->qty = o->qty;
    out->qty_ahead = ahead;
    out->orders_ahead = n_ahead;
    out->side = o->side;
    return LOB_OK;
}

int lob_book_totals_get(const lob_book *b, lob_book_totals *out) {
    if (!b || !out) return LOB_ERR_INVALID_ARG;
    out->added = b->added;
    out->executed = b->executed;
    out->cancelled = b->cancelled;
    out->resting = b->resting;
    return LOB_OK;
}

/* -------------------------------------------------------------- checker */

#define FAIL(...)                                         \
    do {                                                  \
        if (msg && msg_len) snprintf(msg, msg_len, __VA_ARGS__); \
        return LOB_ERR_CORRUPT;                           \
    } while (0)

static int check_side(const lob_book *b, int side, size_t *orders_seen, uint64_t *qty_seen,
                      char *msg, size_t msg_len) {
    const ladder_t *l = cladder_of(b, side);
    const char *name = side == LOB_SIDE_BID ? "bid" : "ask";
    for (size_t k = 0; k < l->n; k++) {
        int32_t li = l->lv[k];
        if (li < 0 || (size_t)li >= b->levels_cap) FAIL("%s ladder[%zu]: bad level index %d", name, k, li);
        const level_t *lv = &b->levels[li];
        if (k > 0 && l->key[k - 1] >= l->key[k]) FAIL("%s ladder not strictly sorted at %zu", name, k);
        if (l->key[k] != side_key(side, lv->price) || lv->side != side)
            FAIL("%s level %lld: key/side mismatch", name, (long long)lv->price);
        if (lv->qty <= 0) FAIL("%s level %lld: qty %lld not positive", name, (long long)lv->price, (long long)lv->qty);
        *qty_seen += (uint64_t)lv->qty;
        if (b->type == LOB_BOOK_L2) {
            if (lv->count != 0) FAIL("L2 %s level %lld has orders", name, (long long)lv->price);
            continue;
        }
        int64_t sum = 0;
        int32_t cnt = 0, prev = NIL;
        for (int32_t oi = lv->head; oi != NIL; oi = b->orders[oi].next) {
            if (oi < 0 || (size_t)oi >= b->orders_cap) FAIL("%s level %lld: bad order index", name, (long long)lv->price);
            const order_t *o = &b->orders[oi];
            if (o->prev != prev) FAIL("order %llu: broken prev link", (unsigned long long)o->id);
            if (o->level != li) FAIL("order %llu: wrong level", (unsigned long long)o->id);
            if (o->price != lv->price || o->side != side) FAIL("order %llu: price/side differ from its level", (unsigned long long)o->id);
            if (o->qty <= 0) FAIL("order %llu: qty %lld not positive", (unsigned long long)o->id, (long long)o->qty);
            if (map_get(b, o->id) != oi) FAIL("order %llu: id map does not point to it", (unsigned long long)o->id);
            sum += o->qty;
            prev = oi;
            if (++cnt > lv->count) FAIL("%s level %lld: more orders than its count", name, (long long)lv->price);
        }
        if (prev != lv->tail) FAIL("%s level %lld: tail is not the last order", name, (long long)lv->price);
        if (cnt != lv->count || cnt == 0) FAIL("%s level %lld: count %d, found %d", name, (long long)lv->price, lv->count, cnt);
        if (sum != lv->qty) FAIL("%s level %lld: total %lld != sum of orders %lld", name, (long long)lv->price, (long long)lv->qty, (long long)sum);
        *orders_seen += (size_t)cnt;
    }
    return LOB_OK;
}

int lob_book_check(const lob_book *b, char *msg, size_t msg_len) {
    if (!b) return LOB_ERR_INVALID_ARG;
    if (msg && msg_len) msg[0] = '\0';
    size_t orders = 0;
    uint64_t qty = 0;
    int rc = check_side(b, LOB_SIDE_BID, &orders, &qty, msg, msg_len);
    if (rc) return rc;
    rc = check_side(b, LOB_SIDE_ASK, &orders, &qty, msg, msg_len);
    if (rc) return rc;
    if (orders != b->n_orders) FAIL("order count %zu != orders in levels %zu", b->n_orders, orders);
    size_t mapped = 0;
    for (size_t i = 0; i < b->map_cap; i++) {
        if (b->map[i].val == NIL) continue;
        mapped++;
        int32_t oi = b->map[i].val;
        if (oi < 0 || (size_t)oi >= b->orders_cap || b->orders[oi].level == NIL || b->orders[oi].id != b->map[i].key)
            FAIL("id map entry %llu points to a dead or different order", (unsigned long long)b->map[i].key);
    }
    if (mapped != b->n_orders) FAIL("id map holds %zu ids, book has %zu orders", mapped, b->n_orders);
    if (qty != b->resting) FAIL("resting counter %llu != level totals %llu", (unsigned long long)b->resting, (unsigned long long)qty);
    if (b->type == LOB_BOOK_L3 && b->added != b->resting + b->executed + b->cancelled)
        FAIL("conservation: added %llu != resting %llu + executed %llu + cancelled %llu",
             (unsigned long long)b->added, (unsigned long long)b->resting,
             (unsigned long long)b->executed, (unsigned long long)b->cancelled);
    return LOB_OK;
}
