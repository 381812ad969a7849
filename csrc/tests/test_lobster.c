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

/* A small hand-made file: messages plus the vendor's book after each. */
typedef struct file {
    size_t n, levels;
    int64_t type[MAXN], id[MAXN], px[MAXN], qty[MAXN], dir[MAXN], ts[MAXN];
    uint8_t skip[MAXN];
    int64_t col[4 * MAXL][MAXN]; /* ask px, ask sz, bid px, bid sz per level */
    const int64_t *cols[4 * MAXL];
    size_t rows; /* one block of all n rows */
    lob_lobster_input in;
} file;

static void file_init(file *f, size_t levels) {
    memset(f, 0, sizeof *f);
    f->levels = levels;
}

/* Append message (type, id, raw price, qty, direction); the vendor's book
 * after it is given as `levels` (bid px, bid sz) then `levels` (ask px, ask sz). */
static void msg(file *f, int64_t type, int64_t id, int64_t px, int64_t qty, int64_t dir, const int64_t *bids,
                const int64_t *asks) {
    size_t k = f->n++;
    f->type[k] = type;
    f->id[k] = id;
    f->px[k] = px;
    f->qty[k] = qty;
    f->dir[k] = dir;
    f->ts[k] = 1000 + (int64_t)k;
    for (size_t j = 0; j < f->levels; j++) {
        f->col[4 * j + LOB_LOBSTER_BID_PX][k] = bids[2 * j];
        f->col[4 * j + LOB_LOBSTER_BID_SZ][k] = bids[2 * j + 1];
        f->col[4 * j + LOB_LOBSTER_ASK_PX][k] = asks[2 * j];
        f->col[4 * j + LOB_LOBSTER_ASK_SZ][k] = asks[2 * j + 1];
    }
}

static const lob_lobster_input *input(file *f, int strict) {
    for (size_t c = 0; c < 4 * f->levels; c++) f->cols[c] = f->col[c];
    f->rows = f->n;
    lob_lobster_book book = {f->levels, 1, &f->rows, f->cols};
    lob_lobster_input in = {f->n, f->type, f->id, f->px, f->qty, f->dir, f->ts, f->skip, book, 1, 1, 1, strict};
    f->in = in;
    return &f->in;
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
                    int64_t vs = f->col[4 * j + cp + 1][k];
                    EXPECT_EQ(j < got ? q[j] : 0, vs);
                    if (vs > 0 && j < got) EXPECT_EQ(px[j], f->col[4 * j + cp][k]);
                }
            }
        }
        batch++;
    }
    EXPECT_EQ(start, m);          /* the last event ends a batch */
    EXPECT_EQ(batch, f->n + 1);   /* seed + one per message (nothing skipped here) */
    lob_book_free(b);
}

static void expect_same_in_blocks(const lob_lobster_input *in, const lob_event *want, size_t m);

static size_t run(file *f, int strict, lob_event *ev, size_t cap, lob_lobster_result *res, int expect_rc) {
    int rc = lob_lobster_replay(input(f, strict), ev, cap, res);
    EXPECT_EQ(rc, expect_rc);
    if (rc == LOB_OK && res->stop_reason == LOB_LOBSTER_STOP_NONE) {
        lob_lobster_result again = *res;
        for (int i = 0; i < 5; i++) expect_same_in_blocks(&f->in, ev, res->n_events);
        *res = again;
    }
    return res->n_events;
}

/* ------------------------------------------------------------------ tests */
static void test_empty_and_one_row(void) {
    file f;
    lob_event ev[8];
    lob_lobster_result res;
    file_init(&f, 1);
    EXPECT_EQ(run(&f, 0, ev, 8, &res, LOB_OK), 1); /* n == 0: the seed is one CLEAR */
    expect_event(&ev[0], LOB_EV_CLEAR, 0, 0, 0, 0, LOB_FLAG_SNAPSHOT | LOB_FLAG_BATCH_END);
    EXPECT_EQ(lob_lobster_replay(NULL, ev, 8, &res), LOB_ERR_INVALID_ARG);
    EXPECT_EQ(lob_lobster_replay(input(&f, 0), ev, 8, NULL), LOB_ERR_INVALID_ARG);

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
    f.in.price_div = 100;
    f.in.raw_tick = 100;
    EXPECT_EQ(lob_lobster_replay(&f.in, ev, 8, &res), LOB_OK);
    EXPECT_EQ(ev[1].price, 10000);
    f.in.raw_tick = 150; /* price_div must divide the tick */
    EXPECT_EQ(lob_lobster_replay(&f.in, ev, 8, &res), LOB_ERR_INVALID_ARG);

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

    /* capacity: too small -> the exact size, then the same events */
    lob_event small[3];
    EXPECT_EQ(lob_lobster_replay(&f.in, small, 3, &res), LOB_ERR_CAPACITY);
    EXPECT_EQ(res.n_events, 8);
    EXPECT_EQ(memcmp(small, ev, sizeof small), 0);
    EXPECT_EQ(lob_lobster_replay(&f.in, NULL, 0, &res), LOB_ERR_CAPACITY);
    EXPECT_EQ(res.n_events, 8);

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

    /* a known id at another price: order_mismatch, treated as unknown, counted over all rows in strict too */
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

    /* duplicate adds: the smallest such id, at its second add */
    file_init(&f, 1);
    msg(&f, 1, 9, 100, 1, 1, b10, e);
    msg(&f, 1, 4, 100, 1, 1, b10, e);
    msg(&f, 1, 9, 100, 1, 1, b10, e);
    msg(&f, 1, 4, 100, 1, 1, b10, e);
    run(&f, 0, ev, 32, &res, LOB_ERR_DUPLICATE_ORDER);
    EXPECT_EQ(res.dup_id, 4);
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
    f.in.price_mul = 1000; /* wraps like numpy, without UB */
    EXPECT_EQ(lob_lobster_replay(&f.in, ev, 32, &res), LOB_OK);
    f.in.price_mul = 1;
    f.in.raw_tick = top; /* a huge tick is accepted */
    EXPECT_EQ(lob_lobster_replay(&f.in, ev, 32, &res), LOB_OK);
    f.in.raw_tick = 1;

    struct { int64_t *field; int64_t value; int rc; } cases[] = {
        {&f.px[1], top + 1, LOB_ERR_BAD_PRICE}, {&f.px[1], 0, LOB_ERR_BAD_PRICE},
        {&f.px[1], INT64_MIN, LOB_ERR_BAD_PRICE}, {&f.qty[1], 0, LOB_ERR_BAD_QTY},
        {&f.type[1], 0, LOB_ERR_INVALID_ARG}, {&f.type[1], 8, LOB_ERR_INVALID_ARG},
        {&f.dir[1], 0, LOB_ERR_INVALID_ARG}, {&f.col[LOB_LOBSTER_BID_SZ][1], -1, LOB_ERR_BAD_QTY},
        {&f.col[LOB_LOBSTER_BID_SZ][1], 1, LOB_ERR_BAD_PRICE}, /* occupied at price 0 */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int64_t old = *cases[i].field;
        *cases[i].field = cases[i].value;
        EXPECT_EQ(lob_lobster_replay(&f.in, ev, 32, &res), cases[i].rc);
        EXPECT_EQ(res.error_row, 1);
        *cases[i].field = old;
    }
    f.type[2] = 7; /* status needs -1, 0 or 1 */
    EXPECT_EQ(lob_lobster_replay(&f.in, ev, 32, &res), LOB_ERR_BAD_PRICE);
    f.px[2] = -1;
    EXPECT_EQ(lob_lobster_replay(&f.in, ev, 32, &res), LOB_OK);
    EXPECT_EQ(ev[m - 1].qty, LOB_STATUS_HALT);
    f.in.book.levels = 0;
    EXPECT_EQ(lob_lobster_replay(&f.in, ev, 32, &res), LOB_ERR_INVALID_ARG);
    f.in.book.levels = 1;
    f.in.book.columns = NULL;
    EXPECT_EQ(lob_lobster_replay(&f.in, ev, 32, &res), LOB_ERR_INVALID_ARG);
    f.in.book.columns = f.cols;
    f.rows = 2; /* the blocks must hold exactly n rows */
    EXPECT_EQ(lob_lobster_replay(&f.in, ev, 32, &res), LOB_ERR_INVALID_ARG);
    f.rows = 4;
    EXPECT_EQ(lob_lobster_replay(&f.in, ev, 32, &res), LOB_ERR_INVALID_ARG);
    f.rows = 3;
    f.cols[2] = NULL;
    EXPECT_EQ(lob_lobster_replay(&f.in, ev, 32, &res), LOB_ERR_INVALID_ARG);
    f.cols[2] = f.col[2];
    f.in.price_mul = 10;
    f.in.price_div = 10;
    EXPECT_EQ(lob_lobster_replay(&f.in, ev, 32, &res), LOB_ERR_INVALID_ARG);
}

static void test_check_book(void) {
    file f;
    int64_t row;
    int side;
    file_init(&f, 2);
    const int64_t b[] = {100, 1, 99, 2}, a[] = {101, 1, 103, 2};
    for (int i = 0; i < 4; i++) msg(&f, 6, 0, 100, 1, 1, b, a);
    const lob_lobster_book *bk = &input(&f, 0)->book;
    EXPECT_EQ(lob_lobster_check_book(bk, 1, &row, &side), LOB_OK);
    EXPECT_EQ(row, -1);
    EXPECT_EQ(lob_lobster_check_book(bk, 3, &row, &side), LOB_ERR_BAD_PRICE); /* 100 off tick 3 */
    EXPECT_EQ(side, LOB_SIDE_ASK); /* 101 is off it too, and asks come first */
    EXPECT_EQ(row, 0);
    f.col[4 + LOB_LOBSTER_BID_PX][3] = 100; /* bid level 2 not below level 1 */
    EXPECT_EQ(lob_lobster_check_book(bk, 1, &row, &side), LOB_ERR_BAD_PRICE);
    EXPECT_EQ(side, LOB_SIDE_BID);
    EXPECT_EQ(row, 3);
    f.col[LOB_LOBSTER_ASK_SZ][2] = 0; /* a gap before an occupied ask level */
    EXPECT_EQ(lob_lobster_check_book(bk, 1, &row, &side), LOB_ERR_BAD_PRICE);
    EXPECT_EQ(side, LOB_SIDE_ASK);
    EXPECT_EQ(row, 2);
    f.col[LOB_LOBSTER_ASK_SZ][2] = 1;
    f.col[4 + LOB_LOBSTER_ASK_PX][1] = (int64_t)1 << 61; /* out of range */
    EXPECT_EQ(lob_lobster_check_book(bk, 1, &row, &side), LOB_ERR_BAD_PRICE);
    EXPECT_EQ(row, 1);

    /* the same rows as blocks of 0, 1, 0, 3 rows: rows count across blocks */
    size_t rows[4] = {0, 1, 0, 3};
    const int64_t *cols[4 * 8];
    for (size_t blk = 0, start = 0; blk < 4; start += rows[blk++])
        for (size_t c = 0; c < 8; c++) cols[blk * 8 + c] = rows[blk] ? f.col[c] + start : NULL;
    lob_lobster_book blocked = {2, 4, rows, cols};
    EXPECT_EQ(lob_lobster_check_book(&blocked, 1, &row, &side), LOB_ERR_BAD_PRICE);
    EXPECT_EQ(row, 1);
    EXPECT_EQ(side, LOB_SIDE_ASK);
    f.col[4 + LOB_LOBSTER_ASK_PX][1] = 103;
    EXPECT_EQ(lob_lobster_check_book(&blocked, 1, &row, &side), LOB_ERR_BAD_PRICE);
    EXPECT_EQ(row, 3);
    EXPECT_EQ(side, LOB_SIDE_BID);

    EXPECT_EQ(lob_lobster_check_book(bk, 0, &row, &side), LOB_ERR_INVALID_ARG);
    EXPECT_EQ(lob_lobster_check_book(NULL, 1, &row, &side), LOB_ERR_INVALID_ARG);
    lob_lobster_book empty = {2, 0, NULL, NULL};
    EXPECT_EQ(lob_lobster_check_book(&empty, 1, &row, &side), LOB_OK);
    cols[8] = NULL; /* a block with rows needs all its columns */
    rows[1] = 1;
    EXPECT_EQ(lob_lobster_check_book(&blocked, 1, &row, &side), LOB_ERR_INVALID_ARG);
}

static uint64_t rng = 88172645463325252ULL;
static uint64_t rnd(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

/* The same input with its book cut into random blocks (some empty) must give the same events. */
static void expect_same_in_blocks(const lob_lobster_input *in, const lob_event *want, size_t m) {
    enum { MAXB = 8, MAXC = 4 * 8 };
    size_t rows[MAXB], L = in->book.levels, left = in->n;
    const int64_t *cols[MAXB * MAXC];
    if (4 * L > MAXC || in->book.blocks != 1) return;
    for (size_t b = 0; b < MAXB; b++) {
        rows[b] = b == MAXB - 1 ? left : (rnd() % 3 == 0 ? 0 : rnd() % (left + 1));
        left -= rows[b];
    }
    for (size_t b = 0, start = 0; b < MAXB; start += rows[b++])
        for (size_t c = 0; c < 4 * L; c++) cols[b * 4 * L + c] = in->book.columns[c] + start;
    lob_lobster_input cut = *in;
    lob_lobster_book book = {L, MAXB, rows, cols};
    cut.book = book;
    lob_event *got = malloc((m ? m : 1) * sizeof *got);
    lob_lobster_result res;
    EXPECT_EQ(lob_lobster_replay(&cut, got, m, &res), LOB_OK);
    EXPECT_EQ(res.n_events, m);
    EXPECT(m == 0 || memcmp(got, want, m * sizeof *got) == 0);
    free(got);
}

/* Random files: unknown ids everywhere, inconsistent books, random price
 * ranges. Must return a status and write only inside the buffer. */
static void test_garbage(void) {
    enum { N = 3000, L = 3 };
    static int64_t type[N], id[N], px[N], qty[N], dir[N], ts[N], col[4 * L][N];
    static uint8_t skip[N];
    static lob_event ev[4 * N];
    const int64_t *cols[4 * L];
    for (int round = 0; round < 60; round++) {
        int mode = round % 4;
        for (int k = 0; k < N; k++) {
            type[k] = mode == 3 ? (int64_t)(rnd() % 9) : 1 + (int64_t)(rnd() % 7);
            id[k] = type[k] == 1 ? (int64_t)(k + 1) : (int64_t)(rnd() % (mode ? 64 : 1u << 30));
            int64_t base = mode == 2 ? ((int64_t)1 << 61) - 200 : 1000;
            px[k] = type[k] == 7 ? (int64_t)(rnd() % 3) - 1 : base + (int64_t)(rnd() % (mode == 1 ? 200 : 8));
            qty[k] = 1 + (int64_t)(rnd() % 20);
            dir[k] = (rnd() & 1) ? 1 : -1;
            ts[k] = k;
            skip[k] = (uint8_t)(type[k] >= 5 && (rnd() % 4 == 0));
            for (int j = 0; j < L; j++) {
                int occupied = rnd() % 5 != 0;
                col[4 * j + LOB_LOBSTER_BID_PX][k] = occupied ? base + 7 - j - (int64_t)(rnd() % 3) : -9999;
                col[4 * j + LOB_LOBSTER_BID_SZ][k] = occupied ? 1 + (int64_t)(rnd() % 30) : 0;
                col[4 * j + LOB_LOBSTER_ASK_PX][k] = occupied ? base + 8 + j + (int64_t)(rnd() % 3) : 9999;
                col[4 * j + LOB_LOBSTER_ASK_SZ][k] = occupied ? 1 + (int64_t)(rnd() % 30) : 0;
            }
        }
        for (int c = 0; c < 4 * L; c++) cols[c] = col[c];
        size_t n = 1 + rnd() % N;
        lob_lobster_book book = {L, 1, &n, cols};
        lob_lobster_input in = {n, type, id, px, qty, dir, ts, skip, book, 1 + (int64_t)(rnd() % 3), 1, 1,
                                (int)(rnd() & 1)};
        lob_lobster_result res;
        size_t cap = rnd() % (4 * N);
        int rc = lob_lobster_replay(&in, ev, cap, &res);
        EXPECT(rc == LOB_OK || rc == LOB_ERR_CAPACITY || (mode == 3 && rc == LOB_ERR_INVALID_ARG));
        if (rc == LOB_ERR_CAPACITY && res.n_events <= 4 * N) {
            EXPECT_EQ(lob_lobster_replay(&in, ev, res.n_events, &res), LOB_OK);
            EXPECT(ev[res.n_events - 1].flags & LOB_FLAG_BATCH_END);
        }
        int64_t row;
        int side;
        EXPECT(lob_lobster_check_book(&in.book, in.raw_tick, &row, &side) <= LOB_OK);
        if (rc == LOB_OK && res.stop_reason == LOB_LOBSTER_STOP_NONE) expect_same_in_blocks(&in, ev, res.n_events);
    }
}

int main(void) {
    test_empty_and_one_row();
    test_seed_and_unknown();
    test_known_orders();
    test_revealed_depth();
    test_limits_and_rejects();
    test_check_book();
    test_garbage();
    return report();
}
