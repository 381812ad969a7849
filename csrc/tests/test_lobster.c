/*
 * test_lobster.c - C unit tests of the LOBSTER replay (lobster.c), run under
 * AddressSanitizer and UBSan by `make -C csrc test`.
 *
 * Hand-made message sequences with hand-derived events and counters; each
 * consistent sequence is also applied to an L3 lob_book to check that the
 * book after every message's batch equals the vendor's row. Then edge and
 * garbage inputs (empty, one row, prices at the range limit, unknown ids
 * everywhere, random bytes) that must return a status, never crash.
 */
#include "lobsim.h"
#include "expect.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>


#define SYN ((uint64_t)1 << 63)
#define MAXN 64
#define MAXL 4

/* A small hand-made file: messages plus the vendor's book after each, and the stream's parameters. */
typedef struct file {
    size_t n, levels;
    int64_t msg[MAXN][LOB_LOBSTER_MSG_COLS];
    int64_t book[MAXN][4 * MAXL]; /* ask px, ask sz, bid px, bid sz per level */
    int64_t raw_tick, price_mul, price_div, size_mul, size_div;
} file;

static void file_init(file *f, size_t levels) {
    memset(f, 0, sizeof *f);
    f->levels = levels;
    f->raw_tick = f->price_mul = f->price_div = f->size_mul = f->size_div = 1;
}

/* Append message (type, id, raw price, qty, direction); the vendor's book
 * after it is given as `levels` (bid px, bid sz) then `levels` (ask px, ask sz). */
static void msg(file *f, int64_t type, int64_t id, int64_t px, int64_t qty, int64_t dir, const int64_t *bids,
                const int64_t *asks) {
    size_t k = f->n++;
    int64_t *m = f->msg[k];
    m[LOB_LOBSTER_TIME] = 1000 + (int64_t)k;
    m[LOB_LOBSTER_TYPE] = type;
    m[LOB_LOBSTER_ID] = id;
    m[LOB_LOBSTER_SIZE] = qty;
    m[LOB_LOBSTER_PRICE] = px;
    m[LOB_LOBSTER_DIR] = dir;
    for (size_t j = 0; j < f->levels; j++) {
        f->book[k][4 * j + LOB_LOBSTER_BID_PX] = bids[2 * j];
        f->book[k][4 * j + LOB_LOBSTER_BID_SZ] = bids[2 * j + 1];
        f->book[k][4 * j + LOB_LOBSTER_ASK_PX] = asks[2 * j];
        f->book[k][4 * j + LOB_LOBSTER_ASK_SZ] = asks[2 * j + 1];
    }
}

static lob_lobster_stream *open_stream(const file *f, int strict) {
    return lob_lobster_stream_new(f->levels, f->raw_tick, f->price_mul, f->price_div, f->size_mul, f->size_div,
                                  strict);
}

/* Feed rows [a, b) of f (copied: the feed converts in place) into ev[0..cap); the spill is fetched into
 * ev[cap..) when room allows. Returns the feed's status; res->n_events counts its events. */
static int feed(lob_lobster_stream *st, const file *f, size_t a, size_t b, lob_event *ev, size_t cap,
                size_t room, lob_lobster_result *res) {
    static int64_t m[MAXN][LOB_LOBSTER_MSG_COLS], bk[MAXN][4 * MAXL];
    size_t w = 4 * f->levels;
    for (size_t k = a; k < b; k++) {
        memcpy(m[k - a], f->msg[k], sizeof m[0]);
        memcpy(&bk[0][0] + (k - a) * w, f->book[k], w * sizeof(int64_t));
    }
    int rc = lob_lobster_stream_feed(st, b - a, &m[0][0], &bk[0][0], 0, ev, cap, res);
    if (res->n_events > cap && res->n_events <= room)
        EXPECT_EQ(lob_lobster_stream_take(st, ev + cap, res->n_events - cap), LOB_OK);
    return rc;
}

static void expect_event(const lob_event *e, int kind, uint64_t id, int side, int64_t price, int64_t qty,
                         int flags) {
    EXPECT_EQ(e->kind, kind);
    EXPECT(e->order_id == id);
    EXPECT_EQ(e->side, side);
    EXPECT_EQ(e->price, price);
    EXPECT_EQ(e->qty, qty);
    EXPECT_EQ(e->flags, flags);
    EXPECT_EQ(e->ts_exch, e->ts_local);
    EXPECT_EQ(e->reserved, 0);
}

/* Apply the events batch by batch to an L3 book; after batch r (r >= 1) the
 * visible top `levels` must equal the vendor's row r - 1. */
static void expect_matches_vendor(const file *f, const lob_event *ev, size_t m) {
    lob_book *b;
    EXPECT_EQ(lob_book_new(LOB_BOOK_L3, &b), LOB_OK);
    size_t start = 0, batch = 0;
    for (size_t i = 0; i < m; i++) {
        if (!(ev[i].flags & LOB_FLAG_BATCH_END)) continue;
        lob_apply_result r;
        EXPECT_EQ(lob_book_apply(b, ev + start, i + 1 - start, 1, &r), LOB_OK);
        start = i + 1;
        if (batch > 0) {
            size_t k = batch - 1, nb, na;
            int64_t bpx[MAXL], bq[MAXL], apx[MAXL], aq[MAXL];
            EXPECT_EQ(lob_book_depth(b, f->levels, bpx, bq, apx, aq, &nb, &na), LOB_OK);
            for (int side = -1; side <= 1; side += 2) {
                int cp = side > 0 ? LOB_LOBSTER_BID_PX : LOB_LOBSTER_ASK_PX;
                const int64_t *px = side > 0 ? bpx : apx, *q = side > 0 ? bq : aq;
                size_t got = side > 0 ? nb : na;
                for (size_t j = 0; j < f->levels; j++) {
                    int64_t vs = f->book[k][4 * j + cp + 1];
                    EXPECT_EQ(j < got ? q[j] : 0, vs);
                    if (vs > 0 && j < got) EXPECT_EQ(px[j], f->book[k][4 * j + cp]);
                }
            }
        }
        batch++;
    }
    EXPECT_EQ(start, m);          /* the last event ends a batch */
    EXPECT_EQ(batch, f->n + 1);   /* seed + one per message (nothing skipped here) */
    lob_book_free(b);
}

static void expect_same_in_blocks(const file *f, int strict, const lob_event *want, size_t m,
                                  const lob_lobster_result *whole);

/* The whole file in one feed -> events in ev (at most cap of them, the rest fetched if they fit in room);
 * a file read to its end is also replayed cut into random blocks, which must give the same. */
static size_t run_cap(const file *f, int strict, lob_event *ev, size_t cap, size_t room, lob_lobster_result *res,
                      int expect_rc) {
    lob_lobster_stream *st = open_stream(f, strict);
    EXPECT(st != NULL);
    int rc = feed(st, f, 0, f->n, ev, cap, room, res);
    EXPECT_EQ(rc, expect_rc);
    lob_lobster_stream_free(st);
    if (rc == LOB_OK && res->stop_reason == LOB_LOBSTER_STOP_NONE && res->n_events <= room) {
        lob_lobster_result again = *res;
        for (int i = 0; i < 5; i++) expect_same_in_blocks(f, strict, ev, res->n_events, &again);
        *res = again;
    }
    return res->n_events;
}

static size_t run(const file *f, int strict, lob_event *ev, size_t cap, lob_lobster_result *res, int expect_rc) {
    return run_cap(f, strict, ev, cap, cap, res, expect_rc);
}

/* ------------------------------------------------------------------ tests */
static void test_empty_and_one_row(void) {
    file f;
    lob_event ev[8];
    lob_lobster_result res;
    file_init(&f, 1);
    EXPECT_EQ(run(&f, 0, ev, 8, &res, LOB_OK), 0); /* n == 0: nothing yet, not even the seed */
    lob_lobster_stream *st = open_stream(&f, 0);
    int64_t row[4] = {0};
    EXPECT_EQ(lob_lobster_stream_feed(NULL, 0, row, row, 0, ev, 8, &res), LOB_ERR_INVALID_ARG);
    EXPECT_EQ(lob_lobster_stream_feed(st, 0, row, row, 0, ev, 8, NULL), LOB_ERR_INVALID_ARG);
    EXPECT_EQ(lob_lobster_stream_feed(st, 1, NULL, row, 0, ev, 8, &res), LOB_ERR_INVALID_ARG);
    EXPECT_EQ(lob_lobster_stream_feed(st, 1, row, NULL, 0, ev, 8, &res), LOB_ERR_INVALID_ARG);
    EXPECT_EQ(lob_lobster_stream_feed(st, 0, NULL, NULL, 0, NULL, 0, &res), LOB_OK);
    EXPECT_EQ(lob_lobster_stream_take(st, ev, 1), LOB_ERR_INVALID_ARG); /* nothing spilled */
    EXPECT(lob_lobster_stream_memory(st) > 0);
    lob_lobster_stream_free(st);
    lob_lobster_stream_free(NULL);
    EXPECT(lob_lobster_stream_new(0, 1, 1, 1, 1, 1, 0) == NULL);   /* no levels */
    EXPECT(lob_lobster_stream_new(1, 0, 1, 1, 1, 1, 0) == NULL);   /* tick < 1 */
    EXPECT(lob_lobster_stream_new(1, 10, 10, 10, 1, 1, 0) == NULL); /* mul and div */
    EXPECT(lob_lobster_stream_new(1, 1, 1, 1, 4, 4, 0) == NULL);
    EXPECT(lob_lobster_stream_new(1, (int64_t)1 << 61, 1, 1, 1, 1, 0) == NULL);

    /* one add that the vendor's row shows: message 1 undone leaves an empty seed */
    const int64_t bid[] = {1000000, 5}, ask[] = {0, 0};
    msg(&f, 1, 42, 1000000, 5, 1, bid, ask);
    EXPECT_EQ(run(&f, 0, ev, 8, &res, LOB_OK), 2);
    expect_event(&ev[0], LOB_EV_CLEAR, 0, 0, 0, 0, LOB_FLAG_SNAPSHOT | LOB_FLAG_BATCH_END);
    expect_event(&ev[1], LOB_EV_ADD, 42, 1, 1000000, 5, LOB_FLAG_BATCH_END);
    EXPECT_EQ(ev[0].ts_exch, 1000);
    EXPECT_EQ(ev[1].ts_exch, 1000);
    EXPECT_EQ(res.seed_mismatch, 0);
    EXPECT_EQ(res.stop_reason, LOB_LOBSTER_STOP_NONE);
    expect_matches_vendor(&f, ev, 2);

    /* the same with prices in ticks of 100 raw units */
    f.price_div = 100;
    f.raw_tick = 100;
    EXPECT_EQ(run(&f, 0, ev, 8, &res, LOB_OK), 2);
    EXPECT_EQ(ev[1].price, 10000);
    EXPECT(lob_lobster_stream_new(1, 150, 1, 100, 1, 1, 0) == NULL); /* price_div must divide the tick */
    f.price_div = f.raw_tick = 1;
    f.size_div = 5; /* sizes in lots of 5 */
    EXPECT_EQ(run(&f, 0, ev, 8, &res, LOB_OK), 2);
    EXPECT_EQ(ev[1].qty, 1);
    f.size_div = 2; /* 5 is not a multiple: the vendor's size, checked in file order after the messages */
    EXPECT_EQ(run(&f, 0, ev, 8, &res, LOB_ERR_BAD_QTY), 0);
    EXPECT_EQ(res.error, LOB_LOBSTER_ERR_LOT);
    EXPECT_EQ(res.error_row, 0);
    f.size_div = 1;
    f.size_mul = 4;
    EXPECT_EQ(run(&f, 0, ev, 8, &res, LOB_OK), 2);
    EXPECT_EQ(ev[1].qty, 20);
    f.size_mul = 1;

    /* message 1 adds more than the vendor shows: counted, seed empty */
    file_init(&f, 1);
    const int64_t bid3[] = {1000000, 3};
    msg(&f, 1, 42, 1000000, 5, 1, bid3, ask);
    EXPECT_EQ(run(&f, 0, ev, 8, &res, LOB_OK), 2);
    EXPECT_EQ(res.seed_mismatch, 1);
}

/* Seed, unknown ids from synthetic liquidity, executions with prints. */
static void test_seed_and_unknown(void) {
    file f;
    lob_event ev[32];
    lob_lobster_result res;
    file_init(&f, 1);
    const int64_t b10[] = {100, 10}, b6[] = {100, 6}, b9[] = {100, 9}, a5[] = {101, 5}, a3[] = {101, 3};
    msg(&f, 6, 0, 100, 1, 1, b10, a5);    /* hidden-side cross print: no book change */
    msg(&f, 3, 77, 100, 4, 1, b6, a5);    /* cancel of an id never added: from the seed */
    msg(&f, 1, 5, 100, 3, 1, b9, a5);     /* add */
    msg(&f, 4, 88, 101, 2, -1, b9, a3);   /* execution of an unknown ask */
    msg(&f, 2, 5, 100, 1, 1, (const int64_t[]){100, 8}, a3); /* partial cancel of a known order */
    size_t m = run(&f, 0, ev, 32, &res, LOB_OK);
    EXPECT_EQ(m, 8);
    expect_event(&ev[0], LOB_EV_ADD, SYN + 0, 1, 100, 10, LOB_FLAG_SNAPSHOT);
    expect_event(&ev[1], LOB_EV_ADD, SYN + 1, -1, 101, 5, LOB_FLAG_SNAPSHOT | LOB_FLAG_BATCH_END);
    expect_event(&ev[2], LOB_EV_TRADE, 0, 0, 100, 1, LOB_FLAG_BATCH_END);
    expect_event(&ev[3], LOB_EV_REDUCE, SYN + 0, 1, 100, 4, LOB_FLAG_BATCH_END);
    expect_event(&ev[4], LOB_EV_ADD, 5, 1, 100, 3, LOB_FLAG_BATCH_END);
    expect_event(&ev[5], LOB_EV_EXECUTE, SYN + 1, -1, 101, 2, 0);
    expect_event(&ev[6], LOB_EV_TRADE, 88, 1, 101, 2, LOB_FLAG_BATCH_END); /* aggressor = -direction */
    expect_event(&ev[7], LOB_EV_REDUCE, 5, 1, 100, 1, LOB_FLAG_BATCH_END);
    EXPECT_EQ(res.unknown_from_synthetic, 2);
    EXPECT_EQ(res.unknown_row, 1);
    EXPECT_EQ(res.unknown_id, 77);
    EXPECT_EQ(res.unknown_type, 3);
    EXPECT_EQ(res.removed, 0);
    EXPECT_EQ(res.size_mismatch, 0);
    expect_matches_vendor(&f, ev, m);

    /* capacity: events past the buffer wait in the stream, then the same events */
    lob_event small[8];
    EXPECT_EQ(run_cap(&f, 0, small, 3, 8, &res, LOB_OK), 8);
    EXPECT_EQ(memcmp(small, ev, sizeof small), 0);
    EXPECT_EQ(run_cap(&f, 0, small, 0, 8, &res, LOB_OK), 8);
    EXPECT_EQ(memcmp(small, ev, sizeof small), 0);

    /* strict: the first unknown id stops the run */
    EXPECT_EQ(run(&f, 1, ev, 32, &res, LOB_OK), 4);
    EXPECT_EQ(res.stop_reason, LOB_LOBSTER_STOP_UNKNOWN);
    EXPECT_EQ(res.stop_row, 1);
}

/* Known orders: size mismatch, removed ids, another side/price, forgetting stale orders. */
static void test_known_orders(void) {
    file f;
    lob_event ev[32];
    lob_lobster_result res;
    file_init(&f, 1);
    const int64_t e[] = {0, 0}, b10[] = {100, 10}, b0[] = {0, 0}, b4[] = {100, 4};
    msg(&f, 1, 5, 100, 10, 1, b10, e);    /* seed empty */
    msg(&f, 4, 5, 100, 12, 1, b0, e);     /* executes 12 of a 10-lot order: hidden depth covers 2 */
    msg(&f, 1, 6, 100, 4, 1, b4, e);
    msg(&f, 3, 6, 100, 4, 1, b0, e);      /* full delete */
    msg(&f, 3, 6, 100, 4, 1, b0, e);      /* again: removed by its own messages; from hidden depth */
    size_t m = run(&f, 0, ev, 32, &res, LOB_OK);
    EXPECT_EQ(m, 10);
    expect_event(&ev[1], LOB_EV_ADD, 5, 1, 100, 10, LOB_FLAG_BATCH_END);
    expect_event(&ev[2], LOB_EV_EXECUTE, 5, 1, 100, 10, 0);
    expect_event(&ev[3], LOB_EV_ADD, SYN + 0, 1, 100, 2, LOB_FLAG_SNAPSHOT);
    expect_event(&ev[4], LOB_EV_EXECUTE, SYN + 0, 1, 100, 2, 0);
    expect_event(&ev[5], LOB_EV_TRADE, 5, -1, 100, 12, LOB_FLAG_BATCH_END);
    expect_event(&ev[7], LOB_EV_DELETE, 6, 1, 100, 4, LOB_FLAG_BATCH_END);
    expect_event(&ev[8], LOB_EV_ADD, SYN + 1, 1, 100, 4, LOB_FLAG_SNAPSHOT);
    expect_event(&ev[9], LOB_EV_REDUCE, SYN + 1, 1, 100, 4, LOB_FLAG_BATCH_END);
    EXPECT_EQ(res.size_mismatch, 1);
    EXPECT_EQ(res.size_mismatch_row, 1);
    EXPECT_EQ(res.size_mismatch_qty, 12);
    EXPECT_EQ(res.size_mismatch_remaining, 10);
    EXPECT_EQ(res.removed, 1);
    EXPECT_EQ(res.removed_row, 4);
    EXPECT_EQ(res.removed_type, 3);
    EXPECT_EQ(res.unknown_row, -1);
    EXPECT_EQ(res.unknown_from_hidden_depth, 0); /* removed ids are not counted as unknown */
    expect_matches_vendor(&f, ev, m);
    EXPECT_EQ(run(&f, 1, ev, 32, &res, LOB_OK), 2);
    EXPECT_EQ(res.stop_reason, LOB_LOBSTER_STOP_SIZE_MISMATCH);
    EXPECT_EQ(res.stop_row, 1);

    /* delete with less than tracked: the rest stays as synthetic liquidity */
    file_init(&f, 1);
    const int64_t b2[] = {100, 2};
    msg(&f, 1, 5, 100, 10, 1, b10, e);
    msg(&f, 3, 5, 100, 8, 1, b2, e);
    m = run(&f, 0, ev, 32, &res, LOB_OK);
    EXPECT_EQ(m, 4);
    expect_event(&ev[2], LOB_EV_DELETE, 5, 1, 100, 10, 0);
    expect_event(&ev[3], LOB_EV_ADD, SYN + 0, 1, 100, 2, LOB_FLAG_SNAPSHOT | LOB_FLAG_BATCH_END);
    expect_matches_vendor(&f, ev, m);

    /* a known id at another price: order_mismatch, treated as unknown (no strict stop) */
    file_init(&f, 1);
    const int64_t b7[] = {100, 7}, b7b[] = {100, 7};
    msg(&f, 1, 9, 100, 7, 1, b7, e);
    msg(&f, 3, 9, 101, 1, 1, b7b, e);
    msg(&f, 3, 9, 102, 1, -1, b7b, e);
    run(&f, 1, ev, 32, &res, LOB_OK);
    EXPECT_EQ(res.order_mismatch, 2);
    EXPECT_EQ(res.order_mismatch_row, 1);
    EXPECT_EQ(res.order_mismatch_id, 9);
    EXPECT_EQ(res.stop_reason, LOB_LOBSTER_STOP_NONE);
    EXPECT_EQ(res.unknown_row, -1);

    /* unknown id bigger than the synthetic pool: stale known orders are forgotten first */
    file_init(&f, 1);
    const int64_t b3[] = {100, 3}, b8[] = {100, 8}, bz[] = {100, 1};
    msg(&f, 1, 1, 100, 3, 1, b3, e);
    msg(&f, 1, 2, 100, 5, 1, b8, e);
    msg(&f, 2, 50, 100, 7, 1, bz, e); /* unknown id takes 7 of the level's 8 */
    msg(&f, 3, 2, 100, 5, 1, (const int64_t[]){0, 0}, e); /* a forgotten order: expected */
    m = run(&f, 0, ev, 32, &res, LOB_OK);
    EXPECT_EQ(res.unknown_after_forgetting_stale, 1);
    EXPECT_EQ(res.stale_orders_forgotten, 2);
    EXPECT_EQ(res.messages_on_forgotten_orders, 1);
    expect_event(&ev[3], LOB_EV_DELETE, 1, 1, 100, 3, LOB_FLAG_SNAPSHOT);
    expect_event(&ev[4], LOB_EV_DELETE, 2, 1, 100, 5, LOB_FLAG_SNAPSHOT);
    expect_event(&ev[5], LOB_EV_ADD, SYN + 0, 1, 100, 8, LOB_FLAG_SNAPSHOT);
    expect_event(&ev[6], LOB_EV_REDUCE, SYN + 0, 1, 100, 7, LOB_FLAG_BATCH_END);

    /* duplicate adds: the first second add in file order, also after its order is gone */
    file_init(&f, 1);
    msg(&f, 1, 9, 100, 1, 1, b10, e);
    msg(&f, 1, 4, 100, 1, 1, b10, e);
    msg(&f, 3, 9, 100, 1, 1, b10, e);
    msg(&f, 1, 9, 100, 1, 1, b10, e);
    msg(&f, 1, 4, 100, 1, 1, b10, e);
    run(&f, 0, ev, 32, &res, LOB_ERR_DUPLICATE_ORDER);
    EXPECT_EQ(res.error, LOB_LOBSTER_ERR_DUPLICATE);
    EXPECT_EQ(res.error_value, 9);
    EXPECT_EQ(res.error_row, 3);
}

/* The vendor's window reaches deeper when a visible level empties. */
static void test_revealed_depth(void) {
    file f;
    lob_event ev[32];
    lob_lobster_result res;
    file_init(&f, 1);
    const int64_t b10[] = {100, 10}, b97[] = {97, 7}, b10x[] = {10, 3}, none[] = {0, 0}, a5[] = {101, 5};
    msg(&f, 7, 0, 1, 0, 1, b10, a5);       /* status: trading */
    msg(&f, 3, 77, 100, 10, 1, b97, a5);   /* level 100 empties: 97 x 7 shows (simple, 3 ticks) */
    msg(&f, 3, 78, 97, 7, 1, b10x, a5);    /* 97 empties: 10 x 3 shows, 87 ticks away (general path) */
    msg(&f, 3, 79, 10, 3, 1, none, a5);    /* the bid side empties: the window shrinks */
    msg(&f, 3, 80, 101, 5, -1, none, none);
    size_t m = run(&f, 0, ev, 32, &res, LOB_OK);
    expect_event(&ev[2], LOB_EV_STATUS, 0, 0, 0, LOB_STATUS_TRADING, LOB_FLAG_BATCH_END);
    expect_event(&ev[3], LOB_EV_REDUCE, SYN + 0, 1, 100, 10, 0);
    expect_event(&ev[4], LOB_EV_ADD, SYN + 2, 1, 97, 7, LOB_FLAG_SNAPSHOT | LOB_FLAG_BATCH_END);
    expect_event(&ev[6], LOB_EV_ADD, SYN + 3, 1, 10, 3, LOB_FLAG_SNAPSHOT | LOB_FLAG_BATCH_END);
    EXPECT_EQ(res.depth_revealed, 2);
    EXPECT_EQ(res.unknown_from_synthetic, 4);
    EXPECT_EQ(m, 9);
    expect_matches_vendor(&f, ev, m);

    /* a level we hold inside the exposed range that the vendor does not show is reset */
    file_init(&f, 2);
    const int64_t s0[] = {100, 4, 97, 2}, s1[] = {97, 2, 95, 3}, a[] = {101, 1, 102, 1};
    msg(&f, 1, 1, 96, 5, 1, s0, a);   /* an add below the window (inconsistent, but possible input) */
    msg(&f, 3, 70, 100, 4, 1, s1, a); /* 100 empties: 95 x 3 shows, and 96 is not there */
    m = run(&f, 0, ev, 32, &res, LOB_OK);
    EXPECT_EQ(res.seed_mismatch, 1);
    EXPECT_EQ(res.depth_revealed, 1);
    EXPECT_EQ(res.stale_levels_reset, 1);
    EXPECT_EQ(res.stale_orders_forgotten, 1);
    EXPECT_EQ(m, 8); /* 4 seed ADDs (96 is not in it), the add, then: */
    expect_event(&ev[4], LOB_EV_ADD, 1, 1, 96, 5, LOB_FLAG_BATCH_END);
    expect_event(&ev[5], LOB_EV_REDUCE, SYN + 0, 1, 100, 4, 0);
    expect_event(&ev[6], LOB_EV_ADD, SYN + 4, 1, 95, 3, LOB_FLAG_SNAPSHOT);
    expect_event(&ev[7], LOB_EV_DELETE, 1, 1, 96, 5, LOB_FLAG_SNAPSHOT | LOB_FLAG_BATCH_END);
    expect_matches_vendor(&f, ev, m);
}

/* Prices at the edge of the accepted range, and rejected inputs. */
static void test_limits_and_rejects(void) {
    file f;
    lob_event ev[32];
    lob_lobster_result res;
    const int64_t top = ((int64_t)1 << 61) - 1;
    file_init(&f, 1);
    const int64_t bt[] = {top, 9}, at[] = {top - 1, 0}, e[] = {0, 0};
    msg(&f, 1, 1, top, 9, 1, bt, at);
    msg(&f, 4, 2, top, 9, 1, e, e);
    msg(&f, 5, 0, top, 1, -1, e, e);
    size_t m = run(&f, 0, ev, 32, &res, LOB_OK);
    EXPECT_EQ(m, 7);
    expect_event(&ev[2], LOB_EV_DELETE, 1, 1, top, 9, LOB_FLAG_SNAPSHOT); /* stale: forgotten */
    expect_event(&ev[3], LOB_EV_ADD, SYN + 0, 1, top, 9, LOB_FLAG_SNAPSHOT);
    expect_event(&ev[4], LOB_EV_EXECUTE, SYN + 0, 1, top, 9, 0);
    expect_event(&ev[5], LOB_EV_TRADE, 2, -1, top, 9, LOB_FLAG_BATCH_END);
    expect_event(&ev[6], LOB_EV_TRADE, 0, 1, top, 1, LOB_FLAG_HIDDEN | LOB_FLAG_BATCH_END);
    f.price_mul = 1000; /* top * 1000 does not fit int64: an error, never a wrap */
    EXPECT_EQ(run(&f, 0, ev, 32, &res, LOB_ERR_BAD_PRICE), 0);
    EXPECT_EQ(res.error, LOB_LOBSTER_ERR_PRICE_SCALE);
    EXPECT_EQ(res.error_row, 0);
    f.price_mul = 1;
    f.raw_tick = top; /* a huge tick is accepted */
    EXPECT_EQ(run(&f, 0, ev, 32, &res, LOB_OK), m);
    f.raw_tick = 1;

    struct { int64_t *field; int64_t value; int rc, err; } cases[] = {
        {&f.msg[1][LOB_LOBSTER_PRICE], top + 1, LOB_ERR_BAD_PRICE, LOB_LOBSTER_ERR_PRICE_RANGE},
        {&f.msg[1][LOB_LOBSTER_PRICE], 0, LOB_ERR_BAD_PRICE, LOB_LOBSTER_ERR_PRICE},
        {&f.msg[1][LOB_LOBSTER_PRICE], INT64_MIN, LOB_ERR_BAD_PRICE, LOB_LOBSTER_ERR_PRICE},
        {&f.msg[1][LOB_LOBSTER_SIZE], 0, LOB_ERR_BAD_QTY, LOB_LOBSTER_ERR_SIZE},
        {&f.msg[1][LOB_LOBSTER_TYPE], 0, LOB_ERR_INVALID_ARG, LOB_LOBSTER_ERR_TYPE},
        {&f.msg[1][LOB_LOBSTER_TYPE], 8, LOB_ERR_INVALID_ARG, LOB_LOBSTER_ERR_TYPE},
        {&f.msg[1][LOB_LOBSTER_DIR], 0, LOB_ERR_INVALID_ARG, LOB_LOBSTER_ERR_DIRECTION},
        {&f.msg[1][LOB_LOBSTER_ID], 0, LOB_ERR_INVALID_ARG, LOB_LOBSTER_ERR_ID},
        {&f.msg[2][LOB_LOBSTER_ID], -1, LOB_ERR_INVALID_ARG, LOB_LOBSTER_ERR_ID_NEGATIVE},
        {&f.book[1][LOB_LOBSTER_BID_SZ], -1, LOB_ERR_BAD_PRICE, LOB_LOBSTER_ERR_BOOK},
        {&f.book[1][LOB_LOBSTER_BID_SZ], 1, LOB_ERR_BAD_PRICE, LOB_LOBSTER_ERR_BOOK}, /* occupied at price 0 */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int64_t old = *cases[i].field;
        *cases[i].field = cases[i].value;
        run(&f, 0, ev, 32, &res, cases[i].rc);
        EXPECT_EQ(res.error, cases[i].err);
        EXPECT_EQ(res.error_row, cases[i].field == &f.msg[2][LOB_LOBSTER_ID] ? 2 : 1);
        *cases[i].field = old;
    }
    f.msg[2][LOB_LOBSTER_TYPE] = 7; /* status needs -1, 0 or 1 */
    run(&f, 0, ev, 32, &res, LOB_ERR_BAD_PRICE);
    EXPECT_EQ(res.error, LOB_LOBSTER_ERR_STATUS);
    f.msg[2][LOB_LOBSTER_PRICE] = -1;
    m = run(&f, 0, ev, 32, &res, LOB_OK);
    EXPECT_EQ(ev[m - 1].qty, LOB_STATUS_HALT);
    EXPECT_EQ(res.halts, 1);
    EXPECT_EQ(res.halt_row, 2);

    /* after an error the stream refuses more */
    lob_lobster_stream *st = open_stream(&f, 0);
    f.msg[1][LOB_LOBSTER_TYPE] = 9;
    EXPECT_EQ(feed(st, &f, 0, 3, ev, 32, 32, &res), LOB_ERR_INVALID_ARG);
    f.msg[1][LOB_LOBSTER_TYPE] = 4;
    EXPECT_EQ(feed(st, &f, 0, 3, ev, 32, 32, &res), LOB_ERR_INVALID_ARG);
    EXPECT_EQ(res.error, LOB_LOBSTER_ERR_NONE);
    lob_lobster_stream_free(st);
}

/* Times back, subtick prints skipped, tick checks. */
static void test_counts_and_ticks(void) {
    file f;
    lob_event ev[32];
    lob_lobster_result res;
    file_init(&f, 1);
    f.raw_tick = f.price_div = 100;
    const int64_t b[] = {1000, 5}, a[] = {1100, 5};
    msg(&f, 1, 1, 1000, 1, 1, (const int64_t[]){1000, 6}, a);
    msg(&f, 5, 0, 1050, 2, 1, (const int64_t[]){1000, 6}, a); /* between ticks: skipped */
    msg(&f, 6, 0, 1000, 2, 1, (const int64_t[]){1000, 6}, a);
    msg(&f, 3, 1, 1000, 1, 1, b, a);
    f.msg[1][LOB_LOBSTER_TIME] = 900; /* earlier than row 0 */
    f.msg[2][LOB_LOBSTER_TIME] = 950; /* still earlier than the latest */
    size_t m = run(&f, 0, ev, 32, &res, LOB_OK);
    EXPECT_EQ(m, 2 + 1 + 1 + 1); /* seed (2), add, the cross print, the delete */
    EXPECT_EQ(res.skipped, 1);
    EXPECT_EQ(res.skipped_row, 1);
    EXPECT_EQ(res.skipped_price, 1050);
    EXPECT_EQ(res.out_of_order, 2);
    EXPECT_EQ(res.out_of_order_row, 1);
    EXPECT_EQ(res.out_of_order_ts, 900);
    EXPECT_EQ(res.out_of_order_max, 1000);
    expect_event(&ev[3], LOB_EV_TRADE, 0, 0, 10, 2, LOB_FLAG_BATCH_END);
    /* the running max carries over from feed to feed */
    lob_lobster_stream *st = open_stream(&f, 0);
    EXPECT_EQ(feed(st, &f, 0, 1, ev, 32, 32, &res), LOB_OK);
    EXPECT_EQ(feed(st, &f, 1, 4, ev, 32, 32, &res), LOB_OK);
    EXPECT_EQ(res.out_of_order, 2);
    EXPECT_EQ(res.out_of_order_row, 1);
    lob_lobster_stream_free(st);
    f.msg[0][LOB_LOBSTER_PRICE] = 1010; /* a book message off the tick */
    run(&f, 0, ev, 32, &res, LOB_ERR_BAD_PRICE);
    EXPECT_EQ(res.error, LOB_LOBSTER_ERR_OFF_TICK);
    EXPECT_EQ(res.error_value, 1010);
    f.msg[0][LOB_LOBSTER_PRICE] = 1000;
    f.book[2][LOB_LOBSTER_ASK_PX] = 1150; /* the vendor's row off the tick */
    run(&f, 0, ev, 32, &res, LOB_ERR_BAD_PRICE);
    EXPECT_EQ(res.error, LOB_LOBSTER_ERR_BOOK);
    EXPECT_EQ(res.error_row, 2);
    EXPECT_EQ(res.error_col, LOB_SIDE_ASK);
}

static void test_check_rows(void) {
    file f;
    int64_t row;
    int side;
    file_init(&f, 2);
    const int64_t b[] = {100, 1, 99, 2}, a[] = {101, 1, 103, 2};
    for (int i = 0; i < 4; i++) msg(&f, 6, 0, 100, 1, 1, b, a);
    int64_t *bk = &f.book[0][0];
    size_t w = 4 * MAXL; /* rows of the file struct are MAXL levels wide: check them as MAXL levels */
    EXPECT_EQ(MAXL, 4);
    for (size_t k = 0; k < 4; k++)
        for (size_t c = 8; c < w; c++) f.book[k][c] = 0; /* levels 3 and 4 empty */
    EXPECT_EQ(lob_lobster_check_rows(bk, 4, MAXL, 1, &row, &side), LOB_OK);
    EXPECT_EQ(row, -1);
    EXPECT_EQ(lob_lobster_check_rows(bk, 4, MAXL, 3, &row, &side), LOB_ERR_BAD_PRICE); /* 100 off tick 3 */
    EXPECT_EQ(side, LOB_SIDE_ASK); /* 101 is off it too, and asks come first */
    EXPECT_EQ(row, 0);
    f.book[3][4 + LOB_LOBSTER_BID_PX] = 100; /* bid level 2 not below level 1 */
    EXPECT_EQ(lob_lobster_check_rows(bk, 4, MAXL, 1, &row, &side), LOB_ERR_BAD_PRICE);
    EXPECT_EQ(side, LOB_SIDE_BID);
    EXPECT_EQ(row, 3);
    f.book[2][LOB_LOBSTER_ASK_SZ] = 0; /* a gap before an occupied ask level */
    EXPECT_EQ(lob_lobster_check_rows(bk, 4, MAXL, 1, &row, &side), LOB_ERR_BAD_PRICE);
    EXPECT_EQ(side, LOB_SIDE_ASK);
    EXPECT_EQ(row, 2);
    f.book[2][LOB_LOBSTER_ASK_SZ] = 1;
    f.book[1][4 + LOB_LOBSTER_ASK_PX] = (int64_t)1 << 61; /* out of range */
    EXPECT_EQ(lob_lobster_check_rows(bk, 4, MAXL, 1, &row, &side), LOB_ERR_BAD_PRICE);
    EXPECT_EQ(row, 1);
    EXPECT_EQ(lob_lobster_check_rows(bk + w, 3, MAXL, 1, &row, &side), LOB_ERR_BAD_PRICE); /* rows from the start */
    EXPECT_EQ(row, 0);
    f.book[1][4 + LOB_LOBSTER_ASK_PX] = 103;
    f.book[0][LOB_LOBSTER_BID_SZ] = -1; /* a negative size, even on an empty-priced level */
    EXPECT_EQ(lob_lobster_check_rows(bk, 4, MAXL, 1, &row, &side), LOB_ERR_BAD_PRICE);
    EXPECT_EQ(row, 0);
    EXPECT_EQ(side, LOB_SIDE_BID);
    EXPECT_EQ(lob_lobster_check_rows(bk, 4, MAXL, 0, &row, &side), LOB_ERR_INVALID_ARG);
    EXPECT_EQ(lob_lobster_check_rows(NULL, 1, MAXL, 1, &row, &side), LOB_ERR_INVALID_ARG);
    EXPECT_EQ(lob_lobster_check_rows(bk, 4, 0, 1, &row, &side), LOB_ERR_INVALID_ARG);
    EXPECT_EQ(lob_lobster_check_rows(NULL, 0, MAXL, 1, &row, &side), LOB_OK);
}

/* The CSV parser: fields, line ends, errors with their line, blocks. */
static void test_parse(void) {
    int64_t out[4 * 6];
    lob_lobster_parsed p;
    const char *ok = "34200.000000001,1,7,10,1000000,1\r\n1.5,7,0,0,-1,-1\n86399.1234567891,2,7,3,1000000,1";
    EXPECT_EQ(lob_lobster_parse(ok, strlen(ok), 1, 6, 1, out, 4, &p), LOB_OK);
    EXPECT_EQ(p.rows, 3);
    EXPECT_EQ(p.consumed, strlen(ok));
    EXPECT_EQ(p.truncated, 1);
    EXPECT_EQ(out[0], 34200 * 1000000000LL + 1);
    EXPECT_EQ(out[6], 1500000000LL);
    EXPECT_EQ(out[10], -1);
    EXPECT_EQ(out[12], 86399 * 1000000000LL + 123456789);
    EXPECT_EQ(lob_lobster_parse(ok, strlen(ok), 0, 6, 1, out, 4, &p), LOB_OK); /* not final: the last line waits */
    EXPECT_EQ(p.rows, 2);
    EXPECT_EQ(p.consumed, (size_t)(strchr(strchr(ok, '\n') + 1, '\n') + 1 - ok));
    EXPECT_EQ(lob_lobster_parse(ok, strlen(ok), 1, 6, 1, out, 1, &p), LOB_OK); /* cap: stops after 1 row */
    EXPECT_EQ(p.rows, 1);
    EXPECT_EQ(p.consumed, (size_t)(strchr(ok, '\n') + 1 - ok));
    const char *big = "9223372036854775807,-9223372036854775808\n";
    EXPECT_EQ(lob_lobster_parse(big, strlen(big), 1, 2, 0, out, 4, &p), LOB_OK);
    EXPECT_EQ(out[0], INT64_MAX);
    EXPECT_EQ(out[1], INT64_MIN);
    const char *bad[] = {
        "1,2\n3\n", "1,2\n3,4,5\n", "1,2\n\n", "1,2\n3,x\n", "1,2\n3,\n", "1,2\n9223372036854775808,1\n",
        "1,2\n-9223372036854775809,1\n", "1,2\n-,1\n", "1,2\n1 ,2\n", "1,2\n1,2\r3\n", "1,2\n+1,2\n",
        "1,2\n00000000000000000000000000000000001,99999999999999999999\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        EXPECT_EQ(lob_lobster_parse(bad[i], strlen(bad[i]), 1, 2, 0, out, 4, &p), LOB_ERR_CORRUPT);
        EXPECT_EQ(p.error_line, 1);
        EXPECT_EQ(p.rows, 1);
        EXPECT_EQ(p.consumed, 4);
    }
    const char *lead = "00000000000000000000000000000000001,2\n";
    EXPECT_EQ(lob_lobster_parse(lead, strlen(lead), 1, 2, 0, out, 4, &p), LOB_OK);
    EXPECT_EQ(out[0], 1);
    const char *times[] = {"1234567.5,1\n", "1.,1\n", ".5,1\n", "-1.5,1\n", "1.5x,1\n", "1.5.5,1\n"};
    for (size_t i = 0; i < sizeof times / sizeof times[0]; i++) {
        EXPECT_EQ(lob_lobster_parse(times[i], strlen(times[i]), 1, 2, 1, out, 4, &p), LOB_ERR_CORRUPT);
        EXPECT_EQ(p.error_line, 0);
    }
    const char *partial = "1,2\n3,4"; /* not final, no newline: waits; a bad partial line waits too */
    EXPECT_EQ(lob_lobster_parse(partial, strlen(partial), 0, 2, 0, out, 4, &p), LOB_OK);
    EXPECT_EQ(p.rows, 1);
    EXPECT_EQ(p.consumed, 4);
    EXPECT_EQ(lob_lobster_parse("", 0, 1, 2, 0, out, 4, &p), LOB_OK);
    EXPECT_EQ(p.rows, 0);
    EXPECT_EQ(lob_lobster_parse(NULL, 0, 1, 2, 0, NULL, 0, &p), LOB_OK);
    EXPECT_EQ(lob_lobster_parse(ok, 3, 1, 0, 0, out, 4, &p), LOB_ERR_INVALID_ARG);
    EXPECT_EQ(lob_lobster_parse(ok, 3, 1, 2, 0, out, 4, NULL), LOB_ERR_INVALID_ARG);
}


/* The same file fed in random blocks (some empty), with random buffer sizes, must give the same events
 * and, summed over the feeds, the same counts. */
static void expect_same_in_blocks(const file *f, int strict, const lob_event *want, size_t m,
                                  const lob_lobster_result *whole) {
    lob_lobster_stream *st = open_stream(f, strict);
    lob_event *got = malloc((m ? m : 1) * sizeof *got);
    size_t have = 0, a = 0;
    int64_t unknown = 0, revealed = 0, late = 0;
    while (a < f->n || a == 0) {
        size_t b = a + (test_rand() % 3 == 0 ? 0 : test_rand() % (f->n - a + 1));
        lob_lobster_result res;
        size_t cap = test_rand() % 4;
        static lob_event buf[4 * MAXN + 64];
        EXPECT_EQ(feed(st, f, a, b, buf, cap, 4 * MAXN + 64, &res), LOB_OK);
        EXPECT(have + res.n_events <= m);
        if (have + res.n_events <= m) memcpy(got + have, buf, res.n_events * sizeof *got);
        have += res.n_events;
        unknown += res.unknown_from_synthetic + res.unknown_after_forgetting_stale + res.unknown_from_hidden_depth;
        revealed += res.depth_revealed;
        late += res.out_of_order;
        a = b;
        if (f->n == 0) break;
    }
    EXPECT_EQ(have, m);
    EXPECT(m == 0 || memcmp(got, want, m * sizeof *got) == 0);
    EXPECT_EQ(unknown, whole->unknown_from_synthetic + whole->unknown_after_forgetting_stale +
                           whole->unknown_from_hidden_depth);
    EXPECT_EQ(revealed, whole->depth_revealed);
    EXPECT_EQ(late, whole->out_of_order);
    free(got);
    lob_lobster_stream_free(st);
}

/* Random files: unknown ids everywhere, inconsistent books, random price
 * ranges, random bytes for the parser. Must return a status and write only
 * inside the buffers. */
static void test_garbage(void) {
    enum { N = 3000, L = 3 };
    static int64_t msgs[N][LOB_LOBSTER_MSG_COLS], book[N][4 * L];
    static lob_event ev[4 * N];
    for (int round = 0; round < 60; round++) {
        int mode = round % 4;
        for (int k = 0; k < N; k++) {
            int64_t *m = msgs[k];
            int64_t t = mode == 3 ? (int64_t)(test_rand() % 9) : 1 + (int64_t)(test_rand() % 7);
            m[LOB_LOBSTER_TYPE] = t;
            m[LOB_LOBSTER_ID] = t == 1 ? (int64_t)(k + 1) : (int64_t)(test_rand() % (mode ? 64 : 1u << 30));
            int64_t base = mode == 2 ? ((int64_t)1 << 61) - 200 : 1000;
            m[LOB_LOBSTER_PRICE] = t == 7 ? (int64_t)(test_rand() % 3) - 1 : base + (int64_t)(test_rand() % (mode == 1 ? 200 : 8));
            m[LOB_LOBSTER_SIZE] = 1 + (int64_t)(test_rand() % 20);
            m[LOB_LOBSTER_DIR] = (test_rand() & 1) ? 1 : -1;
            m[LOB_LOBSTER_TIME] = k - (int64_t)(test_rand() % 3);
            for (int j = 0; j < L; j++) {
                int occupied = test_rand() % 5 != 0;
                book[k][4 * j + LOB_LOBSTER_BID_PX] = occupied ? base + 7 - j - (int64_t)(test_rand() % 3) : -9999;
                book[k][4 * j + LOB_LOBSTER_BID_SZ] = occupied ? 1 + (int64_t)(test_rand() % 30) : 0;
                book[k][4 * j + LOB_LOBSTER_ASK_PX] = occupied ? base + 8 + j + (int64_t)(test_rand() % 3) : 9999;
                book[k][4 * j + LOB_LOBSTER_ASK_SZ] = occupied ? 1 + (int64_t)(test_rand() % 30) : 0;
            }
        }
        size_t n = 1 + test_rand() % N;
        int64_t tick = 1 + (int64_t)(test_rand() % 3);
        lob_lobster_stream *st = lob_lobster_stream_new(L, tick, 1, 1, 1, 1, (int)(test_rand() & 1));
        lob_lobster_result res;
        memset(&res, 0, sizeof res);
        size_t done = 0;
        int rc = LOB_OK;
        while (done < n && rc == LOB_OK && res.stop_reason == LOB_LOBSTER_STOP_NONE) {
            size_t b = done + 1 + test_rand() % (n - done);
            size_t cap = test_rand() % (4 * N);
            int64_t bad_row;
            int bad_side; /* the caller may vouch for rows that pass the check */
            int checked = lob_lobster_check_rows(book[done], b - done, L, tick, &bad_row, &bad_side) == LOB_OK &&
                          (test_rand() & 1);
            rc = lob_lobster_stream_feed(st, b - done, msgs[done], book[done], checked, ev, cap, &res);
            EXPECT(rc == LOB_OK || rc == LOB_ERR_BAD_PRICE || rc == LOB_ERR_BAD_QTY || rc == LOB_ERR_INVALID_ARG ||
                   rc == LOB_ERR_DUPLICATE_ORDER);
            if (res.n_events > cap && res.n_events <= 4 * N) {
                EXPECT_EQ(lob_lobster_stream_take(st, ev + cap, res.n_events - cap), LOB_OK);
                EXPECT(ev[res.n_events - 1].flags & LOB_FLAG_BATCH_END);
            }
            done = b;
        }
        lob_lobster_stream_free(st);
        int64_t row;
        int side;
        EXPECT(lob_lobster_check_rows(&book[0][0], n, L, tick, &row, &side) <= LOB_OK);
    }
    static char text[1 << 12];
    static int64_t rows[1 << 12];
    for (int round = 0; round < 2000; round++) {
        size_t len = test_rand() % sizeof text;
        const char alphabet[] = "0123456789,.-\n\r 9";
        for (size_t i = 0; i < len; i++)
            text[i] = (round & 1) ? (char)test_rand() : alphabet[test_rand() % (sizeof alphabet - 1)];
        lob_lobster_parsed p;
        size_t ncols = 1 + test_rand() % 6;
        size_t cap = test_rand() % (sizeof rows / sizeof rows[0] / ncols);
        int rc = lob_lobster_parse(text, len, (int)(test_rand() & 1), ncols, (int)(test_rand() & 1), rows, cap, &p);
        EXPECT(rc == LOB_OK || rc == LOB_ERR_CORRUPT);
        EXPECT(p.rows <= cap && p.consumed <= len);
    }
}

int main(void) {
    test_empty_and_one_row();
    test_seed_and_unknown();
    test_known_orders();
    test_revealed_depth();
    test_limits_and_rejects();
    test_counts_and_ticks();
    test_check_rows();
    test_parse();
    test_garbage();
    return report();
}
