/*
 * book.c - L3 (order-by-order) and L2 (price-level) order book, matching engine,
 * batch apply and depth series.
 *
 * Design:
 * - Orders, levels and ladder blocks live in index-addressed pools (growable
 *   arrays with a free list), so nothing is malloc'ed per order on the hot
 *   path and handing out indices never hands out pointers.
 * - Each side is a "ladder": its levels sorted by key (price for bids, -price
 *   for asks, so both ascend and the best level is always the last entry),
 *   stored as a two-level B-tree: blocks of up to BLOCK_KEYS sorted keys, and
 *   an array of the blocks in order with each block's first key. Finding a
 *   level is a binary search over the block heads, then within one block;
 *   inserting or removing moves at most one block's entries (a block splits
 *   when full and merges with a neighbour when it runs low), so the cost does
 *   not grow with the depth of the book, nor with where the level is (near
 *   the touch, deep inside, below the worst level). The best level is O(1).
 *   Memory is proportional to live levels, never to the price range.
 * - A level is a FIFO doubly linked list of orders (price-time priority) with
 *   its total qty and order count. Each order carries a priority stamp (a
 *   book-wide sequence number taken when it joins a FIFO): within a level,
 *   an order is ahead of another exactly when its stamp is smaller.
 * - An open-addressing hash map (linear probing, backward-shift deletion)
 *   maps order id -> order index for O(1) cancel/execute/modify. The hash is
 *   a strong 64-bit mix of the id XOR a per-book random seed, so no fixed set
 *   of ids (e.g. multiples of a public multiplier's inverse) can pile into one
 *   probe chain. The seed never affects results: nothing iterates the map
 *   except the invariant checker.
 * - Memory comes back: when live orders, levels or blocks fall below 1/8 of
 *   their pool (or ids below 1/16 of the map), the book is compacted into
 *   right-sized arrays in one O(live) pass (amortized O(1) per removal);
 *   clear() drops everything and returns to the initial sizes, O(1) in the
 *   peak size. Compaction is optional: if its allocation fails, nothing
 *   changes.
 * - Every mutation reserves what it can need first (id map room, an order
 *   slot, a level slot, a block, ladder room), so a failing call changes
 *   nothing.
 * - Conservation counters (added / executed / cancelled) use unsigned
 *   wrapping arithmetic so long replays cannot overflow into UB; the
 *   invariant checker compares them modulo 2^64.
 * An L2 book uses the same ladders and levels with no orders attached.
 */
#include "internal.h"

#include <stdatomic.h>
#include <stdio.h>
#ifdef __GLIBC__
#include <malloc.h> /* malloc_trim */
#endif
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define NIL (-1)
#define BLOCK_KEYS 64          /* levels per ladder block: a power of two (ladder_find) */
#define BLOCK_LOW (BLOCK_KEYS / 4)      /* a block this small tries to merge */
#define BLOCK_MERGED (BLOCK_KEYS * 3 / 4) /* ... if the merged block stays this small */
#define BLOCK_PACK (BLOCK_KEYS * 3 / 4) /* levels per block after a compaction */
#define MIN_ORDERS 64
#define MIN_LEVELS 64
#define MIN_BLOCKS 4
#define MIN_MAP 128            /* power of two */
#define MIN_LADDER 4
#define TRIM_BYTES (1u << 20)  /* compacting away more than this returns free pages to the OS */
#define LEVEL_CACHE 4096       /* entries of the level lookup cache, a power of two */

typedef struct {
    uint64_t id;
    uint64_t stamp; /* priority: smaller = earlier in its level's FIFO */
    int64_t price;
    int64_t qty;
    int32_t level; /* level pool index; NIL while the slot is free */
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
    int64_t key[BLOCK_KEYS]; /* ascending; slots from n on hold INT64_MAX (see ladder_find) */
    int32_t lv[BLOCK_KEYS];  /* level pool index of each key */
    int32_t n;               /* keys in use, >= 1 while the block is in a ladder */
    int32_t next_free;
} block_t;

typedef struct {
    int32_t *blk;   /* block pool indices, in key order */
    int64_t *first; /* first key of each block, for the binary search */
    size_t nblk, cap;
    size_t n;       /* levels on this side */
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
    block_t *blocks;
    size_t blocks_cap;
    int32_t block_free;
    size_t n_blocks;
    ladder_t bids, asks;
    slot_t *map;
    size_t map_cap; /* power of two */
    int map_shift;  /* 64 - log2(map_cap): map_home takes the high product bits */
    uint64_t seed;  /* per-book random odd hash multiplier */
    int32_t level_cache[LEVEL_CACHE]; /* (side, price) hash -> level index; a hint, validated on use */
    uint64_t next_stamp;
    uint64_t added, executed, cancelled, resting;
};

/* Where a key is (or would go) in a ladder: block position and index in it. */
typedef struct {
    size_t bi;
    int32_t pos;
    int found;
} place_t;

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
static size_t level_total(const lob_book *b) { return b->bids.n + b->asks.n; }

/* ------------------------------------------------------------- id hash map */

/* Multiply-shift hashing with a per-book random odd multiplier: the high
 * bits of seed * id (one multiplication) spread ids, and ids cannot be chosen
 * to collide without knowing the multiplier. */
static size_t map_home(const lob_book *b, uint64_t id) {
    return (size_t)((id * b->seed) >> b->map_shift);
}

/* Slot holding id, or the empty slot where it would go. */
static size_t map_probe(const lob_book *b, uint64_t id) {
    size_t mask = b->map_cap - 1;
    size_t i = map_home(b, id);
    while (b->map[i].val != NIL && b->map[i].key != id) i = (i + 1) & mask;
    return i;
}

static int32_t map_get(const lob_book *b, uint64_t id) { return b->map[map_probe(b, id)].val; }

static void map_put(lob_book *b, uint64_t id, int32_t oi) {
    size_t slot = map_probe(b, id);
    b->map[slot].key = id;
    b->map[slot].val = oi;
}

static int map_shift_for(size_t cap) {
    int shift = 64;
    for (size_t c = cap; c > 1; c >>= 1) shift--;
    return shift;
}

/* Allocate an empty map of cap slots. */
static slot_t *map_alloc(size_t cap) {
    slot_t *m = malloc(cap * sizeof(slot_t));
    if (m)
        for (size_t i = 0; i < cap; i++) m[i].val = NIL;
    return m;
}

/* Rehash into cap slots (a power of two); LOB_ERR_NOMEM changes nothing. */
static int map_resize(lob_book *b, size_t cap) {
    slot_t *m = map_alloc(cap);
    if (!m) return LOB_ERR_NOMEM;
    slot_t *old = b->map;
    size_t old_cap = b->map_cap;
    b->map = m;
    b->map_cap = cap;
    b->map_shift = map_shift_for(cap);
    for (size_t i = 0; i < old_cap; i++)
        if (old[i].val != NIL) b->map[map_probe(b, old[i].key)] = old[i];
    free(old);
    return LOB_OK;
}

/* Make room for one more id (load factor <= 1/2). */
static int map_reserve(lob_book *b) {
    if ((b->n_orders + 1) * 2 <= b->map_cap) return LOB_OK;
    if (b->map_cap > SIZE_MAX / 2 / sizeof(slot_t)) return LOB_ERR_NOMEM;
    return map_resize(b, b->map_cap * 2);
}

/* Empty slot i (which holds an id). */
static void map_remove_slot(lob_book *b, size_t i) {
    size_t mask = b->map_cap - 1;
    /* Backward-shift deletion keeps probe chains intact without tombstones. */
    size_t j = i;
    for (;;) {
        j = (j + 1) & mask;
        if (b->map[j].val == NIL) break;
        size_t home = map_home(b, b->map[j].key);
        /* Move j into the hole i if its home is not in (i, j] cyclically. */
        if (((j - home) & mask) >= ((j - i) & mask)) {
            b->map[i] = b->map[j];
            i = j;
        }
    }
    b->map[i].val = NIL;
}

/* ------------------------------------------------------------------ pools */

/* Pool growth: double the array and thread the new slots onto the free list.
 * Slots are int32 indices, so a pool stops short of INT32_MAX entries. */
#define POOL_RESERVE(arr, cap, free_head, link)                                 \
    do {                                                                        \
        if ((free_head) != NIL) return LOB_OK;                                  \
        size_t old_ = (cap);                                                    \
        if (old_ >= (size_t)INT32_MAX / 2) return LOB_ERR_NOMEM;                \
        int rc_ = LOB_GROW(arr, cap, old_ + 1);                                 \
        if (rc_) return rc_;                                                    \
        for (size_t i_ = (cap); i_-- > old_;) {                                 \
            (arr)[i_].link = (free_head);                                       \
            (free_head) = (int32_t)i_;                                          \
        }                                                                       \
        return LOB_OK;                                                          \
    } while (0)

static int order_reserve(lob_book *b) { POOL_RESERVE(b->orders, b->orders_cap, b->order_free, next); }
static int level_reserve(lob_book *b) { POOL_RESERVE(b->levels, b->levels_cap, b->level_free, next_free); }
static int block_reserve(lob_book *b) { POOL_RESERVE(b->blocks, b->blocks_cap, b->block_free, next_free); }

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

/* Fill the unused slots of a block from `from` on with the INT64_MAX sentinel. */
static void block_seal(block_t *k, int32_t from) {
    for (int32_t i = from; i < BLOCK_KEYS; i++) k->key[i] = INT64_MAX;
}

static int32_t block_take(lob_book *b) {
    int32_t i = b->block_free;
    b->block_free = b->blocks[i].next_free;
    b->blocks[i].n = 0;
    block_seal(&b->blocks[i], 0);
    b->n_blocks++;
    return i;
}

static void block_release(lob_book *b, int32_t i) {
    b->blocks[i].next_free = b->block_free;
    b->block_free = i;
    b->n_blocks--;
}

/* ---------------------------------------------------------------- ladders */

static const block_t *cblock_at(const lob_book *b, const ladder_t *l, size_t bi) {
    return &b->blocks[l->blk[bi]];
}

/* Locate key: the block that holds it or would take it, and the index of the
 * key in it (found) or of the first larger key (not found). Checks the last
 * block first: most activity is near the best. O(log levels). */
static place_t ladder_find(const lob_book *b, const ladder_t *l, int64_t key) {
    place_t p = {0, 0, 0};
    if (l->nblk == 0) return p;
    size_t bi = l->nblk - 1;
    if (key < l->first[bi]) { /* last block with first <= key, or block 0: branch-free halving */
        const int64_t *f = l->first;
        size_t base = 0, len = bi;
        while (len > 1) {
            size_t half = len / 2;
            base = f[base + half] <= key ? base + half : base;
            len -= half;
        }
        bi = base;
    }
    /* Within the block: how many keys are <= key, by a branch-free binary
     * search over all BLOCK_KEYS slots (a power of two). Unused slots hold
     * INT64_MAX, which only counts for key == INT64_MAX: hence the clamp. */
    const block_t *k = cblock_at(b, l, bi);
    int32_t lo = 0;
    for (int32_t step = BLOCK_KEYS / 2; step > 0; step /= 2) lo = k->key[lo + step - 1] <= key ? lo + step : lo;
    lo += k->key[lo] <= key; /* the halvings decide among BLOCK_KEYS answers; this the last one */
    if (lo > k->n) lo = k->n;
    p.bi = bi;
    if (lo > 0 && k->key[lo - 1] == key) {
        p.pos = lo - 1;
        p.found = 1;
    } else {
        p.pos = lo;
    }
    return p;
}

/* Room in the block index arrays for one more block. */
static int ladder_reserve(ladder_t *l) {
    if (l->nblk < l->cap) return LOB_OK;
    size_t bcap = l->cap, fcap = l->cap;
    if (LOB_GROW(l->blk, bcap, l->nblk + 1) != LOB_OK || LOB_GROW(l->first, fcap, l->nblk + 1) != LOB_OK)
        return LOB_ERR_NOMEM; /* a grown first array alone is harmless */
    l->cap = bcap < fcap ? bcap : fcap;
    return LOB_OK;
}

/* Put block pool index k at block position bi. Needs ladder room. */
static void ladder_insert_block(lob_book *b, ladder_t *l, size_t bi, int32_t k) {
    memmove(l->blk + bi + 1, l->blk + bi, (l->nblk - bi) * sizeof *l->blk);
    memmove(l->first + bi + 1, l->first + bi, (l->nblk - bi) * sizeof *l->first);
    l->blk[bi] = k;
    l->first[bi] = b->blocks[k].key[0];
    l->nblk++;
}

static void ladder_drop_block(lob_book *b, ladder_t *l, size_t bi) {
    block_release(b, l->blk[bi]);
    memmove(l->blk + bi, l->blk + bi + 1, (l->nblk - bi - 1) * sizeof *l->blk);
    memmove(l->first + bi, l->first + bi + 1, (l->nblk - bi - 1) * sizeof *l->first);
    l->nblk--;
}

/* Insert (key, li) at place p (from ladder_find, not found). Needs a reserved
 * free block and ladder room (reserve_level), so it cannot fail. */
static void ladder_insert(lob_book *b, ladder_t *l, place_t p, int64_t key, int32_t li) {
    if (l->nblk == 0) {
        int32_t k = block_take(b);
        b->blocks[k].key[0] = key;
        b->blocks[k].lv[0] = li;
        b->blocks[k].n = 1;
        ladder_insert_block(b, l, 0, k);
        l->n++;
        return;
    }
    block_t *k = &b->blocks[l->blk[p.bi]];
    if (k->n == BLOCK_KEYS) { /* split: the upper half moves to a new block after it */
        int32_t ni = block_take(b);
        k = &b->blocks[l->blk[p.bi]];
        block_t *nk = &b->blocks[ni];
        int32_t half = BLOCK_KEYS / 2;
        memcpy(nk->key, k->key + half, (size_t)(BLOCK_KEYS - half) * sizeof *k->key);
        memcpy(nk->lv, k->lv + half, (size_t)(BLOCK_KEYS - half) * sizeof *k->lv);
        nk->n = BLOCK_KEYS - half;
        k->n = half;
        block_seal(k, half);
        ladder_insert_block(b, l, p.bi + 1, ni);
        if (p.pos > half) {
            p.bi++;
            p.pos -= half;
            k = nk;
        }
    }
    memmove(k->key + p.pos + 1, k->key + p.pos, (size_t)(k->n - p.pos) * sizeof *k->key);
    memmove(k->lv + p.pos + 1, k->lv + p.pos, (size_t)(k->n - p.pos) * sizeof *k->lv);
    k->key[p.pos] = key;
    k->lv[p.pos] = li;
    k->n++;
    if (p.pos == 0) l->first[p.bi] = key;
    l->n++;
}

/* Merge block bi + 1 into block bi if the result holds at most BLOCK_MERGED
 * keys; returns 1 if merged. */
static int ladder_merge(lob_book *b, ladder_t *l, size_t bi) {
    block_t *a = &b->blocks[l->blk[bi]];
    const block_t *c = &b->blocks[l->blk[bi + 1]];
    if (a->n + c->n > BLOCK_MERGED) return 0;
    memcpy(a->key + a->n, c->key, (size_t)c->n * sizeof *c->key);
    memcpy(a->lv + a->n, c->lv, (size_t)c->n * sizeof *c->lv);
    a->n += c->n;
    ladder_drop_block(b, l, bi + 1);
    return 1;
}

/* Remove the entry at place p (found). Frees an emptied block; a block that
 * ran low merges into its left neighbour and then takes in its right one,
 * each when the result stays at most 3/4 full. This keeps every pair of
 * adjacent blocks above BLOCK_LOW keys, so blocks <= 2 * levels / BLOCK_LOW + 1
 * (the checker verifies it). */
static void ladder_remove(lob_book *b, ladder_t *l, place_t p) {
    block_t *k = &b->blocks[l->blk[p.bi]];
    memmove(k->key + p.pos, k->key + p.pos + 1, (size_t)(k->n - p.pos - 1) * sizeof *k->key);
    memmove(k->lv + p.pos, k->lv + p.pos + 1, (size_t)(k->n - p.pos - 1) * sizeof *k->lv);
    k->key[k->n - 1] = INT64_MAX;
    k->n--;
    l->n--;
    if (k->n == 0) {
        ladder_drop_block(b, l, p.bi);
        return;
    }
    if (p.pos == 0) l->first[p.bi] = k->key[0];
    if (k->n >= BLOCK_LOW) return;
    size_t bi = p.bi;
    if (bi > 0 && ladder_merge(b, l, bi - 1)) bi--;
    if (bi + 1 < l->nblk) ladder_merge(b, l, bi);
}

/* The best level of a ladder (NIL if empty). O(1). */
static int32_t ladder_best(const lob_book *b, const ladder_t *l) {
    if (l->nblk == 0) return NIL;
    const block_t *k = cblock_at(b, l, l->nblk - 1);
    return k->lv[k->n - 1];
}

/* Levels from the best outwards: a cursor over (block, index). */
typedef struct {
    const ladder_t *l;
    size_t bi; /* block position + 1; 0 = done */
    int32_t pos;
} walk_t;

static walk_t walk_start(const lob_book *b, const ladder_t *l) {
    walk_t w = {l, l->nblk, 0};
    if (l->nblk) w.pos = cblock_at(b, l, l->nblk - 1)->n - 1;
    return w;
}

/* Next level index from the best outwards, NIL at the end. */
static int32_t walk_next(const lob_book *b, walk_t *w) {
    if (w->bi == 0) return NIL;
    const block_t *k = cblock_at(b, w->l, w->bi - 1);
    int32_t li = k->lv[w->pos];
    if (--w->pos < 0 && --w->bi > 0) w->pos = cblock_at(b, w->l, w->bi - 1)->n - 1;
    return li;
}

/* Reserve what creating one level on `side` can need, so creation cannot fail. */
static int reserve_level(lob_book *b, int side) {
    int rc = level_reserve(b);
    if (!rc) rc = block_reserve(b);
    return rc ? rc : ladder_reserve(ladder_of(b, side));
}

/* Reserve what inserting one order on `side` can need (id map room, an order
 * slot, a level), so that a change never fails halfway. */
static int reserve_insert(lob_book *b, int side) {
    int rc = map_reserve(b);
    if (!rc) rc = order_reserve(b);
    return rc ? rc : reserve_level(b, side);
}

/* The cache slot of (side, price). The cache maps hot levels to their index
 * so that updates of existing levels skip the ladder search; an entry is
 * only a hint: it is used when the level it names has that side and price
 * (a freed level has side 0), so collisions and stale entries cost a search,
 * never a wrong answer. */
static size_t cache_slot(int side, int64_t price) {
    return (size_t)(lob_mix64((uint64_t)price ^ (side > 0 ? 0 : 0x8000000000000000ULL)) & (LEVEL_CACHE - 1));
}

static void cache_flush(lob_book *b) {
    for (size_t i = 0; i < LEVEL_CACHE; i++) b->level_cache[i] = NIL;
}

/* Existing level at (side, price) or NIL; ladder place in *p when searched
 * (p->found == 0 and p->bi == SIZE_MAX when the cache answered). */
static int32_t level_lookup(lob_book *b, int side, int64_t price, place_t *p) {
    size_t c = cache_slot(side, price);
    int32_t li = b->level_cache[c];
    if (li != NIL && b->levels[li].side == side && b->levels[li].price == price) {
        p->bi = SIZE_MAX;
        p->found = 0;
        return li;
    }
    const ladder_t *l = cladder_of(b, side);
    *p = ladder_find(b, l, side_key(side, price));
    if (!p->found) return NIL;
    li = cblock_at(b, l, p->bi)->lv[p->pos];
    b->level_cache[c] = li;
    return li;
}

/* Level index at (side, price), creating an empty level if needed.
 * Needs a prior reserve_level(b, side). */
static int32_t level_find_or_create(lob_book *b, int side, int64_t price) {
    place_t p;
    int32_t li = level_lookup(b, side, price, &p);
    if (li != NIL) return li;
    li = b->level_free;
    b->level_free = b->levels[li].next_free;
    level_t *lv = &b->levels[li];
    lv->price = price;
    lv->qty = 0;
    lv->count = 0;
    lv->head = lv->tail = NIL;
    lv->side = (int8_t)side;
    ladder_insert(b, ladder_of(b, side), p, side_key(side, price), li);
    b->level_cache[cache_slot(side, price)] = li;
    return li;
}

/* Existing level at (side, price) or NIL. */
static int32_t level_find(lob_book *b, int side, int64_t price) {
    place_t p;
    return level_lookup(b, side, price, &p);
}

static void level_remove(lob_book *b, int32_t li) {
    level_t *lv = &b->levels[li];
    ladder_t *l = ladder_of(b, lv->side);
    place_t p = ladder_find(b, l, side_key(lv->side, lv->price));
    if (p.found) ladder_remove(b, l, p);
    lv->side = 0; /* dead: the level cache no longer matches it */
    lv->next_free = b->level_free;
    b->level_free = li;
}

/* ----------------------------------------------------------- order lists */

static void fifo_append(lob_book *b, int32_t li, int32_t oi) {
    level_t *lv = &b->levels[li];
    order_t *o = &b->orders[oi];
    o->level = li;
    o->stamp = ++b->next_stamp;
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

/* Remove an order completely (list, map, pool); `slot` is its id map slot. */
static void order_remove(lob_book *b, int32_t oi, size_t slot) {
    b->resting -= (uint64_t)b->orders[oi].qty;
    fifo_unlink(b, oi);
    map_remove_slot(b, slot);
    order_release(b, oi);
    b->n_orders--;
}

/* Would `extra` more lots push the book's resting total past INT64_MAX? The
 * book-wide cap also keeps every level total and every counter read as int64
 * exact. */
static int total_overflows(const lob_book *b, int64_t extra) {
    return extra > 0 && (uint64_t)extra > (uint64_t)INT64_MAX - b->resting;
}

/* ------------------------------------------------------------ compaction */

/* Smallest power of two >= need, at least lo (a power of two). */
static size_t pow2_at_least(size_t need, size_t lo) {
    size_t c = lo;
    while (c < need && c <= SIZE_MAX / 2) c *= 2;
    return c;
}

/* New storage for a compaction, all-or-nothing. */
typedef struct {
    order_t *orders;
    level_t *levels;
    block_t *blocks;
    slot_t *map;
    int32_t *blk[2];
    int64_t *first[2];
    size_t orders_cap, levels_cap, blocks_cap, map_cap, ladder_cap[2];
} storage_t;

static void storage_free(storage_t *s) {
    free(s->orders);
    free(s->levels);
    free(s->blocks);
    free(s->map);
    for (int i = 0; i < 2; i++) {
        free(s->blk[i]);
        free(s->first[i]);
    }
}

/* Rebuild the book into right-sized arrays in one O(live) pass, keeping every
 * FIFO order, priority stamp and counter. LOB_ERR_NOMEM changes nothing. */
static int book_compact(lob_book *b) {
    size_t old_bytes = lob_book_memory(b);
    const ladder_t *lad[2] = {&b->bids, &b->asks};
    size_t nlev = level_total(b);
    storage_t s;
    memset(&s, 0, sizeof s);
    s.orders_cap = pow2_at_least(2 * b->n_orders, MIN_ORDERS);
    s.levels_cap = pow2_at_least(2 * nlev, MIN_LEVELS);
    size_t need_blocks = 0;
    for (int i = 0; i < 2; i++) {
        size_t nb = (lad[i]->n + BLOCK_PACK - 1) / BLOCK_PACK;
        s.ladder_cap[i] = pow2_at_least(2 * nb, MIN_LADDER);
        need_blocks += nb;
    }
    s.blocks_cap = pow2_at_least(2 * need_blocks, MIN_BLOCKS);
    s.map_cap = pow2_at_least(4 * b->n_orders, MIN_MAP);
    if (b->type == LOB_BOOK_L2) s.orders_cap = 0; /* an L2 book has no orders */
    s.orders = s.orders_cap ? malloc(s.orders_cap * sizeof *s.orders) : NULL;
    s.levels = malloc(s.levels_cap * sizeof *s.levels);
    s.blocks = malloc(s.blocks_cap * sizeof *s.blocks);
    s.map = map_alloc(s.map_cap);
    int ok = (s.orders || !s.orders_cap) && s.levels && s.blocks && s.map;
    for (int i = 0; i < 2; i++) {
        s.blk[i] = malloc(s.ladder_cap[i] * sizeof *s.blk[i]);
        s.first[i] = malloc(s.ladder_cap[i] * sizeof *s.first[i]);
        ok = ok && s.blk[i] && s.first[i];
    }
    if (!ok) {
        storage_free(&s);
        return LOB_ERR_NOMEM;
    }
    /* Copy levels in key order and their orders in FIFO order; pack blocks. */
    int32_t no = 0, nl = 0, nbk = 0;
    size_t nblk[2] = {0, 0};
    uint64_t seed = b->seed;
    for (int i = 0; i < 2; i++) {
        const ladder_t *l = lad[i];
        for (size_t bi = 0; bi < l->nblk; bi++) {
            const block_t *k = cblock_at(b, l, bi);
            for (int32_t j = 0; j < k->n; j++) {
                block_t *dst;
                if (nblk[i] == 0 || s.blocks[s.blk[i][nblk[i] - 1]].n == BLOCK_PACK) {
                    s.blk[i][nblk[i]] = nbk;
                    s.first[i][nblk[i]] = k->key[j];
                    s.blocks[nbk].n = 0;
                    block_seal(&s.blocks[nbk], 0);
                    nblk[i]++;
                    nbk++;
                }
                dst = &s.blocks[s.blk[i][nblk[i] - 1]];
                const level_t *old = &b->levels[k->lv[j]];
                level_t *lv = &s.levels[nl];
                *lv = *old;
                lv->head = lv->tail = NIL;
                for (int32_t oi = old->head; oi != NIL; oi = b->orders[oi].next) {
                    order_t *o = &s.orders[no];
                    *o = b->orders[oi];
                    o->level = nl;
                    o->prev = lv->tail;
                    o->next = NIL;
                    if (lv->tail != NIL) s.orders[lv->tail].next = no;
                    else lv->head = no;
                    lv->tail = no;
                    size_t slot = (size_t)((o->id * seed) >> map_shift_for(s.map_cap));
                    while (s.map[slot].val != NIL) slot = (slot + 1) & (s.map_cap - 1);
                    s.map[slot].key = o->id;
                    s.map[slot].val = no;
                    no++;
                }
                dst->key[dst->n] = k->key[j];
                dst->lv[dst->n] = nl;
                dst->n++;
                nl++;
            }
        }
    }
    /* Free lists over the rest of each pool, lowest index first. */
    int32_t of = NIL, lf = NIL, bf = NIL;
    for (size_t i = s.orders_cap; i-- > (size_t)no;) {
        s.orders[i].next = of;
        s.orders[i].level = NIL;
        of = (int32_t)i;
    }
    for (size_t i = s.levels_cap; i-- > (size_t)nl;) {
        s.levels[i].next_free = lf;
        lf = (int32_t)i;
    }
    for (size_t i = s.blocks_cap; i-- > (size_t)nbk;) {
        s.blocks[i].next_free = bf;
        bf = (int32_t)i;
    }
    free(b->orders);
    free(b->levels);
    free(b->blocks);
    free(b->map);
    ladder_t *dl[2] = {&b->bids, &b->asks};
    for (int i = 0; i < 2; i++) {
        free(dl[i]->blk);
        free(dl[i]->first);
        dl[i]->blk = s.blk[i];
        dl[i]->first = s.first[i];
        dl[i]->cap = s.ladder_cap[i];
        dl[i]->nblk = nblk[i];
    }
    b->orders = s.orders;
    b->orders_cap = s.orders_cap;
    b->order_free = of;
    b->levels = s.levels;
    b->levels_cap = s.levels_cap;
    b->level_free = lf;
    b->blocks = s.blocks;
    b->blocks_cap = s.blocks_cap;
    b->block_free = bf;
    b->n_blocks = (size_t)nbk;
    b->map = s.map;
    b->map_cap = s.map_cap;
    b->map_shift = map_shift_for(s.map_cap);
    cache_flush(b); /* level indices changed */
#ifdef __GLIBC__
    /* glibc raises its mmap threshold after big blocks are freed, so grown
     * pools may come from the heap, and freeing them can leave the pages
     * resident: after freeing a big book's arrays, hand free pages back. */
    if (old_bytes > TRIM_BYTES) malloc_trim(0);
#endif
    return LOB_OK;
}

/* After a public call that removed something: compact when a pool is
 * mostly empty. The thresholds (1/8, 1/16) sit well below what a compaction
 * leaves (1/2, 1/4), so the book never oscillates between the two. */
static void maybe_shrink(lob_book *b) {
    if ((b->orders_cap > MIN_ORDERS && b->n_orders * 8 < b->orders_cap) ||
        (b->levels_cap > MIN_LEVELS && level_total(b) * 8 < b->levels_cap) ||
        (b->blocks_cap > MIN_BLOCKS && b->n_blocks * 8 < b->blocks_cap) ||
        (b->map_cap > MIN_MAP && b->n_orders * 16 < b->map_cap))
        (void)book_compact(b); /* optional: on failure the big arrays stay */
}

/* ------------------------------------------------------------- lifecycle */

/* A random odd hash multiplier: a process-wide counter mixed with an address
 * of the caller's and the time, so maps differ and no id set is known to collide. */
uint64_t lob_hash_seed(const void *addr) {
    static atomic_uint_fast64_t counter;
    uint64_t c = (uint64_t)atomic_fetch_add(&counter, 1);
    return lob_mix64(lob_mix64(c) ^ (uint64_t)(uintptr_t)addr ^ ((uint64_t)time(NULL) << 24)) | 1; /* odd */
}

int lob_book_new(int book_type, lob_book **out) {
    if (!out || (book_type != LOB_BOOK_L2 && book_type != LOB_BOOK_L3)) return LOB_ERR_INVALID_ARG;
    *out = NULL;
    lob_book *b = calloc(1, sizeof(*b));
    if (!b) return LOB_ERR_NOMEM;
    b->type = book_type;
    b->order_free = b->level_free = b->block_free = NIL;
    b->seed = lob_hash_seed(b);
    if (book_compact(b) != LOB_OK) { /* allocates the initial sizes */
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
    free(b->blocks);
    free(b->bids.blk);
    free(b->bids.first);
    free(b->asks.blk);
    free(b->asks.first);
    free(b->map);
    free(b);
}

size_t lob_book_memory(const lob_book *b) {
    if (!b) return 0;
    return sizeof *b + b->orders_cap * sizeof(order_t) + b->levels_cap * sizeof(level_t) +
           b->blocks_cap * sizeof(block_t) + b->map_cap * sizeof(slot_t) +
           (b->bids.cap + b->asks.cap) * (sizeof(int32_t) + sizeof(int64_t));
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
    map_put(b, id, oi);
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
    if (b->type != LOB_BOOK_L3) return LOB_ERR_BAD_KIND;
    size_t slot = map_probe(b, id);
    int32_t oi = b->map[slot].val;
    if (oi == NIL) return LOB_ERR_UNKNOWN_ORDER;
    order_t *o = &b->orders[oi];
    if (qty <= 0 || qty > o->qty) return LOB_ERR_BAD_QTY;
    *counter += (uint64_t)qty;
    if (qty == o->qty) {
        order_remove(b, oi, slot);
        maybe_shrink(b);
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
    size_t slot = map_probe(b, id);
    int32_t oi = b->map[slot].val;
    if (oi == NIL) return LOB_ERR_UNKNOWN_ORDER;
    b->cancelled += (uint64_t)b->orders[oi].qty;
    order_remove(b, oi, slot);
    maybe_shrink(b);
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
    maybe_shrink(b);
    return LOB_OK;
}

/* ---------------------------------------------------------- L2 operation */

int lob_book_set_level(lob_book *b, int side, int64_t price, int64_t qty) {
    if (!b) return LOB_ERR_INVALID_ARG;
    if (b->type != LOB_BOOK_L2) return LOB_ERR_BAD_KIND;
    if (!valid_side(side)) return LOB_ERR_BAD_SIDE;
    if (qty < 0) return LOB_ERR_BAD_QTY;
    if (!valid_price(price)) return LOB_ERR_BAD_PRICE;
    int32_t li = level_find(b, side, price);
    if (qty == 0) {
        if (li != NIL) {
            b->resting -= (uint64_t)b->levels[li].qty;
            level_remove(b, li);
            maybe_shrink(b);
        }
        return LOB_OK;
    }
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

/* Thread every slot of the pools onto their free lists (clear's fallback
 * when the small arrays cannot be allocated). O(capacity). */
static void reset_in_place(lob_book *b) {
    b->order_free = b->level_free = b->block_free = NIL;
    for (size_t i = b->orders_cap; i-- > 0;) {
        b->orders[i].next = b->order_free;
        b->orders[i].level = NIL;
        b->order_free = (int32_t)i;
    }
    for (size_t i = b->levels_cap; i-- > 0;) {
        b->levels[i].next_free = b->level_free;
        b->level_free = (int32_t)i;
    }
    for (size_t i = b->blocks_cap; i-- > 0;) {
        b->blocks[i].next_free = b->block_free;
        b->block_free = (int32_t)i;
    }
    for (size_t i = 0; i < b->map_cap; i++) b->map[i].val = NIL;
    cache_flush(b);
}

int lob_book_clear(lob_book *b) {
    if (!b) return LOB_ERR_INVALID_ARG;
    b->cancelled += b->type == LOB_BOOK_L3 ? b->resting : 0;
    b->resting = 0;
    b->bids.n = b->asks.n = b->bids.nblk = b->asks.nblk = 0;
    b->n_orders = b->n_blocks = 0;
    /* Empty ladders compact into the initial sizes: O(1), memory returned. */
    if (book_compact(b) != LOB_OK) reset_in_place(b);
    return LOB_OK;
}

/* --------------------------------------------------------------- matching */

static int crosses(int taker_side, int tif, int64_t limit, int64_t resting_price) {
    if (tif == LOB_TIF_MARKET) return 1;
    return taker_side == LOB_SIDE_BID ? resting_price <= limit : resting_price >= limit;
}

int lob_book_submit(lob_book *b, uint64_t id, int side, int64_t price, int64_t qty, int tif,
                    lob_fill *fills, size_t cap, lob_submit_result *out) {
    if (!b || !out || (cap && !fills)) return LOB_ERR_INVALID_ARG;
    memset(out, 0, sizeof *out);
    if (b->type != LOB_BOOK_L3) return LOB_ERR_BAD_KIND;
    if (tif < LOB_TIF_GTC || tif > LOB_TIF_MARKET) return LOB_ERR_BAD_TIF;
    if (!valid_side(side)) return LOB_ERR_BAD_SIDE;
    if (qty <= 0) return LOB_ERR_BAD_QTY;
    if (tif != LOB_TIF_MARKET && !valid_price(price)) return LOB_ERR_BAD_PRICE;
    if (map_get(b, id) != NIL) return LOB_ERR_DUPLICATE_ORDER;

    /* Dry run: how much would match, and how many fills would it take? */
    const ladder_t *opp = cladder_of(b, -side);
    int64_t avail = 0;
    size_t needed = 0;
    walk_t w = walk_start(b, opp);
    for (int32_t li; avail < qty && (li = walk_next(b, &w)) != NIL;) {
        const level_t *lv = &b->levels[li];
        if (!crosses(side, tif, price, lv->price)) break;
        for (int32_t oi = lv->head; oi != NIL && avail < qty; oi = b->orders[oi].next) {
            avail += b->orders[oi].qty < qty - avail ? b->orders[oi].qty : qty - avail;
            needed++;
        }
    }
    if (tif == LOB_TIF_POST_ONLY && needed > 0) {
        out->outcome = LOB_SUBMIT_REJECTED;
        out->reject_code = LOB_ERR_WOULD_CROSS;
        return LOB_OK;
    }
    if (tif == LOB_TIF_FOK && avail < qty) { /* killed, nothing happens */
        out->outcome = LOB_SUBMIT_KILLED;
        out->killed_qty = qty;
        return LOB_OK;
    }
    if (needed > cap) {
        out->n_fills = needed;
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
        level_t *lv = &b->levels[ladder_best(b, opl)];
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
            order_remove(b, oi, map_probe(b, o->id));
        } else {
            o->qty -= q;
            lv->qty -= q;
            b->resting -= (uint64_t)q;
        }
    }
    out->n_fills = nf;
    out->filled_qty = avail;
    if (rests) {
        insert_order(b, id, side, price, rest); /* reserved and checked above: cannot fail */
        out->rested_qty = rest;
        out->outcome = LOB_SUBMIT_RESTED;
    } else if (rest > 0) {
        out->killed_qty = rest;
        out->outcome = LOB_SUBMIT_KILLED;
    } else {
        out->outcome = LOB_SUBMIT_FILLED;
    }
    maybe_shrink(b);
    return LOB_OK;
}

/* ------------------------------------------------------------ batch apply */

int lob_book_apply_one(lob_book *b, const lob_event *e) {
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
        int rc = lob_book_apply_one(b, &ev[i]);
        if (rc != LOB_OK && result_note(r, i, rc, strict)) return rc;
        if (rc == LOB_OK) r->applied++;
    }
    return LOB_OK;
}

/* ---------------------------------------------------------------- views */

int lob_book_best(const lob_book *b, int side, int64_t *price, int64_t *qty) {
    if (!b || !price || !qty || !valid_side(side)) return LOB_ERR_INVALID_ARG;
    int32_t li = ladder_best(b, cladder_of(b, side));
    if (li == NIL) {
        *price = 0;
        *qty = 0;
        return 0;
    }
    *price = b->levels[li].price;
    *qty = b->levels[li].qty;
    return 1;
}

static size_t write_side(const lob_book *b, int side, size_t levels, int64_t *px, int64_t *qty) {
    walk_t w = walk_start(b, cladder_of(b, side));
    size_t k = 0;
    for (int32_t li; k < levels && (li = walk_next(b, &w)) != NIL; k++) {
        px[k] = b->levels[li].price;
        qty[k] = b->levels[li].qty;
    }
    for (size_t j = k; j < levels; j++) px[j] = qty[j] = 0;
    return k;
}

int lob_book_depth(const lob_book *b, size_t levels, int64_t *bid_px, int64_t *bid_qty,
                   int64_t *ask_px, int64_t *ask_qty, size_t *n_bid, size_t *n_ask) {
    if (!b || !n_bid || !n_ask || (levels && (!bid_px || !bid_qty || !ask_px || !ask_qty)))
        return LOB_ERR_INVALID_ARG;
    *n_bid = write_side(b, LOB_SIDE_BID, levels, bid_px, bid_qty);
    *n_ask = write_side(b, LOB_SIDE_ASK, levels, ask_px, ask_qty);
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
        int rc = lob_book_apply_one(b, &ev[i]);
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
                      size_t *blocks_seen, char *msg, size_t msg_len) {
    const ladder_t *l = cladder_of(b, side);
    const char *name = side == LOB_SIDE_BID ? "bid" : "ask";
    size_t levels = 0;
    int have_prev = 0;
    int64_t prev_key = 0;
    if (l->nblk > l->cap) FAIL("%s ladder: %zu blocks > capacity %zu", name, l->nblk, l->cap);
    for (size_t bi = 0; bi < l->nblk; bi++) {
        int32_t ki = l->blk[bi];
        if (ki < 0 || (size_t)ki >= b->blocks_cap) FAIL("%s ladder block %zu: bad block index %d", name, bi, ki);
        const block_t *k = &b->blocks[ki];
        if (k->n < 1 || k->n > BLOCK_KEYS) FAIL("%s block %zu holds %d keys", name, bi, k->n);
        for (int32_t j = k->n; j < BLOCK_KEYS; j++)
            if (k->key[j] != INT64_MAX) FAIL("%s block %zu: unused slot %d is not the sentinel", name, bi, j);
        if (l->first[bi] != k->key[0]) FAIL("%s block %zu: stale first key", name, bi);
        if (bi > 0 && k->n + cblock_at(b, l, bi - 1)->n <= BLOCK_LOW)
            FAIL("%s blocks %zu and %zu both nearly empty (not merged)", name, bi - 1, bi);
        (*blocks_seen)++;
        for (int32_t j = 0; j < k->n; j++, levels++) {
            if (have_prev && prev_key >= k->key[j]) FAIL("%s ladder not strictly sorted at block %zu index %d", name, bi, j);
            have_prev = 1;
            prev_key = k->key[j];
            int32_t li = k->lv[j];
            if (li < 0 || (size_t)li >= b->levels_cap) FAIL("%s ladder: bad level index %d", name, li);
            const level_t *lv = &b->levels[li];
            if (k->key[j] != side_key(side, lv->price) || lv->side != side)
                FAIL("%s level %lld: key/side mismatch", name, (long long)lv->price);
            if (lv->qty <= 0) FAIL("%s level %lld: qty %lld not positive", name, (long long)lv->price, (long long)lv->qty);
            *qty_seen += (uint64_t)lv->qty;
            if (b->type == LOB_BOOK_L2) {
                if (lv->count != 0) FAIL("L2 %s level %lld has orders", name, (long long)lv->price);
                continue;
            }
            int64_t sum = 0;
            int32_t cnt = 0, prev = NIL;
            uint64_t stamp = 0;
            for (int32_t oi = lv->head; oi != NIL; oi = b->orders[oi].next) {
                if (oi < 0 || (size_t)oi >= b->orders_cap) FAIL("%s level %lld: bad order index", name, (long long)lv->price);
                const order_t *o = &b->orders[oi];
                if (o->prev != prev) FAIL("order %llu: broken prev link", (unsigned long long)o->id);
                if (o->level != li) FAIL("order %llu: wrong level", (unsigned long long)o->id);
                if (o->price != lv->price || o->side != side) FAIL("order %llu: price/side differ from its level", (unsigned long long)o->id);
                if (o->qty <= 0) FAIL("order %llu: qty %lld not positive", (unsigned long long)o->id, (long long)o->qty);
                if (o->stamp <= stamp || o->stamp > b->next_stamp) FAIL("order %llu: priority stamp out of FIFO order", (unsigned long long)o->id);
                stamp = o->stamp;
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
    }
    if (levels != l->n) FAIL("%s ladder: %zu levels counted, %zu recorded", name, levels, l->n);
    return LOB_OK;
}

/* Length of a free list, or SIZE_MAX if it runs past cap or out of range. */
#define FREE_LEN(arr, cap, head, link, out)                                   \
    do {                                                                      \
        size_t n_ = 0;                                                        \
        int32_t i_ = (head);                                                  \
        while (i_ != NIL && n_ <= (cap)) {                                    \
            if (i_ < 0 || (size_t)i_ >= (cap)) { n_ = SIZE_MAX; break; }      \
            n_++;                                                             \
            i_ = (arr)[i_].link;                                              \
        }                                                                     \
        (out) = n_;                                                           \
    } while (0)

int lob_book_check(const lob_book *b, char *msg, size_t msg_len) {
    if (!b) return LOB_ERR_INVALID_ARG;
    if (msg && msg_len) msg[0] = '\0';
    size_t orders = 0, blocks = 0;
    uint64_t qty = 0;
    int rc = check_side(b, LOB_SIDE_BID, &orders, &qty, &blocks, msg, msg_len);
    if (rc) return rc;
    rc = check_side(b, LOB_SIDE_ASK, &orders, &qty, &blocks, msg, msg_len);
    if (rc) return rc;
    if (orders != b->n_orders) FAIL("order count %zu != orders in levels %zu", b->n_orders, orders);
    if (blocks != b->n_blocks) FAIL("block count %zu != blocks in ladders %zu", b->n_blocks, blocks);
    size_t free_o, free_l, free_b;
    FREE_LEN(b->orders, b->orders_cap, b->order_free, next, free_o);
    FREE_LEN(b->levels, b->levels_cap, b->level_free, next_free, free_l);
    FREE_LEN(b->blocks, b->blocks_cap, b->block_free, next_free, free_b);
    if (free_o + orders != b->orders_cap) FAIL("order pool: %zu free + %zu live != capacity %zu", free_o, orders, b->orders_cap);
    if (free_l + level_total(b) != b->levels_cap) FAIL("level pool: %zu free + %zu live != capacity %zu", free_l, level_total(b), b->levels_cap);
    if (free_b + blocks != b->blocks_cap) FAIL("block pool: %zu free + %zu live != capacity %zu", free_b, blocks, b->blocks_cap);
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

/* ------------------------------------------------ internal (internal.h) */

int lob_book_peek(const lob_book *b, uint64_t id, int *side, int64_t *price, int64_t *qty, uint64_t *stamp) {
    if (b->type != LOB_BOOK_L3) return 0;
    int32_t oi = map_get(b, id);
    if (oi == NIL) return 0;
    const order_t *o = &b->orders[oi];
    *side = o->side;
    *price = o->price;
    *qty = o->qty;
    *stamp = o->stamp;
    return 1;
}

uint64_t lob_book_stamp_now(const lob_book *b) { return b->next_stamp; }

int64_t lob_book_level_qty(lob_book *b, int side, int64_t price) {
    int32_t li = level_find(b, side, price);
    return li == NIL ? 0 : b->levels[li].qty;
}

size_t lob_book_level_fifo(const lob_book *b, int side, int64_t price, uint64_t *ids, int64_t *qtys, size_t cap) {
    if (b->type != LOB_BOOK_L3) return 0;
    const ladder_t *l = cladder_of(b, side);
    place_t p = ladder_find(b, l, side_key(side, price));
    if (!p.found) return 0;
    size_t n = 0;
    for (int32_t oi = b->levels[cblock_at(b, l, p.bi)->lv[p.pos]].head; oi != NIL; oi = b->orders[oi].next, n++) {
        if (n < cap) {
            ids[n] = b->orders[oi].id;
            qtys[n] = b->orders[oi].qty;
        }
    }
    return n;
}
