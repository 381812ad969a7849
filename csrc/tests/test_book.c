/*
 * test_book.c - C unit tests of the book, run under AddressSanitizer and
 * UBSan by `make -C csrc test` (see csrc/Makefile and .ci/run).
 *
 * Hand-checked scenarios for every operation and error path, then a seeded
 * random stress that runs the invariant checker after every operation and
 * cross-checks order counts and totals against a tiny shadow model.
 */
#include "lobsim.h"
#include "expect.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>


static void expect_valid(lob_book *b) {
    char msg[256];
    int rc = lob_book_check(b, msg, sizeof msg);
    if (rc != LOB_OK) fprintf(stderr, "invariant: %s\n", msg);
    EXPECT_EQ(rc, LOB_OK);
}

static void test_add_cancel_execute(void) {
    lob_book *b;
    EXPECT_EQ(lob_book_new(LOB_BOOK_L3, &b), LOB_OK);
    int64_t px, q;
    EXPECT_EQ(lob_book_best(b, LOB_SIDE_BID, &px, &q), 0);
    EXPECT_EQ(lob_book_add(b, 1, LOB_SIDE_BID, 100, 10), LOB_OK);
    EXPECT_EQ(lob_book_add(b, 2, LOB_SIDE_BID, 100, 5), LOB_OK);
    EXPECT_EQ(lob_book_add(b, 3, LOB_SIDE_BID, 99, 7), LOB_OK);
    EXPECT_EQ(lob_book_add(b, 4, LOB_SIDE_ASK, 101, 4), LOB_OK);
    EXPECT_EQ(lob_book_add(b, 1, LOB_SIDE_ASK, 105, 1), LOB_ERR_DUPLICATE_ORDER);
    EXPECT_EQ(lob_book_add(b, 9, 0, 105, 1), LOB_ERR_BAD_SIDE);
    EXPECT_EQ(lob_book_add(b, 9, LOB_SIDE_ASK, 105, 0), LOB_ERR_BAD_QTY);
    EXPECT_EQ(lob_book_add(b, 9, LOB_SIDE_ASK, INT64_MIN, 1), LOB_ERR_BAD_PRICE);
    EXPECT_EQ(lob_book_set_level(b, LOB_SIDE_ASK, 1, 1), LOB_ERR_BAD_KIND);
    EXPECT_EQ(lob_book_best(b, LOB_SIDE_BID, &px, &q), 1);
    EXPECT_EQ(px, 100);
    EXPECT_EQ(q, 15);
    lob_order_info info;
    EXPECT_EQ(lob_book_order(b, 2, &info), LOB_OK);
    EXPECT_EQ(info.qty_ahead, 10);
    EXPECT_EQ(info.orders_ahead, 1);
    EXPECT_EQ(lob_book_reduce(b, 1, 4), LOB_OK);
    EXPECT_EQ(lob_book_order(b, 2, &info), LOB_OK);
    EXPECT_EQ(info.qty_ahead, 6); /* a partial cancel keeps priority */
    EXPECT_EQ(lob_book_reduce(b, 1, 7), LOB_ERR_BAD_QTY);
    EXPECT_EQ(lob_book_execute(b, 1, 6), LOB_OK); /* all of it: removed */
    EXPECT_EQ(lob_book_order(b, 1, &info), LOB_ERR_UNKNOWN_ORDER);
    EXPECT_EQ(lob_book_order(b, 2, &info), LOB_OK);
    EXPECT_EQ(info.qty_ahead, 0);
    EXPECT_EQ(lob_book_delete(b, 2), LOB_OK);
    EXPECT_EQ(lob_book_delete(b, 2), LOB_ERR_UNKNOWN_ORDER);
    EXPECT_EQ(lob_book_best(b, LOB_SIDE_BID, &px, &q), 1);
    EXPECT_EQ(px, 99); /* level 100 emptied and went away */
    EXPECT_EQ(lob_book_level_count(b, LOB_SIDE_BID), 1);
    expect_valid(b);
    lob_book_totals t;
    lob_book_totals_get(b, &t);
    EXPECT_EQ(t.added, 26);
    EXPECT_EQ(t.executed, 6);
    EXPECT_EQ(t.cancelled, 9);
    EXPECT_EQ(t.resting, 11);
    lob_book_free(b);
}

static void test_modify_priority(void) {
    lob_book *b;
    lob_book_new(LOB_BOOK_L3, &b);
    lob_book_add(b, 1, LOB_SIDE_ASK, 50, 10);
    lob_book_add(b, 2, LOB_SIDE_ASK, 50, 10);
    lob_order_info info;
    EXPECT_EQ(lob_book_modify(b, 1, 50, 8), LOB_OK); /* decrease keeps the front */
    lob_book_order(b, 1, &info);
    EXPECT_EQ(info.orders_ahead, 0);
    EXPECT_EQ(lob_book_modify(b, 1, 50, 9), LOB_OK); /* increase goes to the back */
    lob_book_order(b, 1, &info);
    EXPECT_EQ(info.orders_ahead, 1);
    EXPECT_EQ(info.qty_ahead, 10);
    EXPECT_EQ(lob_book_modify(b, 2, 49, 10), LOB_OK); /* price change: new level */
    int64_t px, q;
    lob_book_best(b, LOB_SIDE_ASK, &px, &q);
    EXPECT_EQ(px, 49);
    EXPECT_EQ(lob_book_modify(b, 1, 50, 0), LOB_ERR_BAD_QTY);
    EXPECT_EQ(lob_book_modify(b, 77, 50, 1), LOB_ERR_UNKNOWN_ORDER);
    /* a lone order growing at its own level must keep the level alive */
    EXPECT_EQ(lob_book_modify(b, 1, 50, 20), LOB_OK);
    lob_book_best(b, LOB_SIDE_ASK, &px, &q);
    EXPECT_EQ(px, 49);
    EXPECT_EQ(lob_book_level_count(b, LOB_SIDE_ASK), 2);
    expect_valid(b);
    lob_book_free(b);
}

static void test_submit(void) {
    lob_book *b;
    lob_book_new(LOB_BOOK_L3, &b);
    lob_book_add(b, 1, LOB_SIDE_ASK, 101, 5);
    lob_book_add(b, 2, LOB_SIDE_ASK, 101, 5);
    lob_book_add(b, 3, LOB_SIDE_ASK, 102, 5);
    lob_fill f[8];
    lob_submit_result r;
    /* post-only that would cross: rejected (a status, not an error), nothing changes */
    EXPECT_EQ(lob_book_submit(b, 10, LOB_SIDE_BID, 101, 1, LOB_TIF_POST_ONLY, f, 8, &r), LOB_OK);
    EXPECT_EQ(r.outcome, LOB_SUBMIT_REJECTED);
    EXPECT_EQ(r.reject_code, LOB_ERR_WOULD_CROSS);
    EXPECT_EQ(r.n_fills + r.filled_qty + r.rested_qty + r.killed_qty, 0);
    EXPECT_EQ(lob_book_order_count(b), 3);
    /* FOK for more than is available up to the limit: killed */
    EXPECT_EQ(lob_book_submit(b, 10, LOB_SIDE_BID, 101, 11, LOB_TIF_FOK, f, 8, &r), LOB_OK);
    EXPECT_EQ(r.n_fills, 0);
    EXPECT_EQ(r.outcome, LOB_SUBMIT_KILLED);
    EXPECT_EQ(r.killed_qty, 11);
    /* IOC that finds nothing: killed in full */
    EXPECT_EQ(lob_book_submit(b, 10, LOB_SIDE_BID, 100, 4, LOB_TIF_IOC, f, 8, &r), LOB_OK);
    EXPECT_EQ(r.outcome, LOB_SUBMIT_KILLED);
    EXPECT_EQ(r.killed_qty, 4);
    /* too small a buffer: asks for the count, changes nothing */
    EXPECT_EQ(lob_book_submit(b, 10, LOB_SIDE_BID, 102, 12, LOB_TIF_GTC, f, 2, &r), LOB_ERR_CAPACITY);
    EXPECT_EQ(r.n_fills, 3);
    EXPECT_EQ(lob_book_order_count(b), 3);
    /* GTC sweeping two levels, remainder rests at its limit */
    EXPECT_EQ(lob_book_submit(b, 10, LOB_SIDE_BID, 102, 17, LOB_TIF_GTC, f, 8, &r), LOB_OK);
    EXPECT_EQ(r.n_fills, 3);
    EXPECT_EQ(f[0].maker_id, 1);
    EXPECT_EQ(f[0].price, 101);
    EXPECT_EQ(f[1].maker_id, 2);
    EXPECT_EQ(f[2].maker_id, 3);
    EXPECT_EQ(f[2].price, 102);
    EXPECT_EQ(f[2].maker_remaining, 0);
    EXPECT_EQ(r.outcome, LOB_SUBMIT_RESTED);
    EXPECT_EQ(r.filled_qty, 15);
    EXPECT_EQ(r.rested_qty, 2);
    EXPECT_EQ(r.killed_qty, 0);
    int64_t px, q;
    EXPECT_EQ(lob_book_best(b, LOB_SIDE_BID, &px, &q), 1);
    EXPECT_EQ(px, 102);
    EXPECT_EQ(q, 2);
    EXPECT_EQ(lob_book_best(b, LOB_SIDE_ASK, &px, &q), 0);
    /* market sell takes the bid; the remainder never rests */
    EXPECT_EQ(lob_book_submit(b, 11, LOB_SIDE_ASK, 0, 5, LOB_TIF_MARKET, f, 8, &r), LOB_OK);
    EXPECT_EQ(r.n_fills, 1);
    EXPECT_EQ(f[0].qty, 2);
    EXPECT_EQ(r.outcome, LOB_SUBMIT_KILLED);
    EXPECT_EQ(r.filled_qty, 2);
    EXPECT_EQ(r.killed_qty, 3);
    EXPECT_EQ(r.rested_qty, 0);
    EXPECT_EQ(lob_book_order_count(b), 0);
    /* a GTC that rests in full, then one filled in full */
    EXPECT_EQ(lob_book_submit(b, 12, LOB_SIDE_ASK, 105, 5, LOB_TIF_GTC, f, 8, &r), LOB_OK);
    EXPECT_EQ(r.outcome, LOB_SUBMIT_RESTED);
    EXPECT_EQ(r.rested_qty, 5);
    EXPECT_EQ(lob_book_submit(b, 13, LOB_SIDE_BID, 105, 5, LOB_TIF_GTC, f, 8, &r), LOB_OK);
    EXPECT_EQ(r.outcome, LOB_SUBMIT_FILLED);
    EXPECT_EQ(r.filled_qty, 5);
    EXPECT_EQ(lob_book_submit(b, 14, LOB_SIDE_ASK, 100, 5, 9, f, 8, &r), LOB_ERR_BAD_TIF);
    expect_valid(b);
    lob_book_free(b);
}

static void test_l2_and_events(void) {
    lob_book *b;
    lob_book_new(LOB_BOOK_L2, &b);
    lob_event ev[6];
    memset(ev, 0, sizeof ev);
    ev[0] = (lob_event){.price = 100, .qty = 5, .side = 1, .kind = LOB_EV_SET_LEVEL};
    ev[1] = (lob_event){.price = 101, .qty = 7, .side = -1, .kind = LOB_EV_SET_LEVEL, .flags = LOB_FLAG_BATCH_END};
    ev[2] = (lob_event){.price = 100, .qty = 0, .side = 1, .kind = LOB_EV_SET_LEVEL};
    ev[3] = (lob_event){.price = 99, .qty = 3, .side = 1, .kind = LOB_EV_SET_LEVEL, .flags = LOB_FLAG_BATCH_END};
    ev[4] = (lob_event){.price = 99, .qty = 3, .side = 1, .kind = LOB_EV_ADD};
    ev[5] = (lob_event){.price = 99, .qty = 3, .side = 1, .kind = 200};
    int64_t bp[4], bq[4], ap[4], aq[4], idx[2];
    size_t rows;
    lob_apply_result r;
    EXPECT_EQ(lob_depth_series(b, ev, 4, 2, 1, 1, bp, bq, ap, aq, idx, 1, &rows, &r), LOB_ERR_CAPACITY);
    EXPECT_EQ(rows, 2);
    EXPECT_EQ(lob_depth_series(b, ev, 4, 2, 1, 1, bp, bq, ap, aq, idx, 2, &rows, &r), LOB_OK);
    EXPECT_EQ(rows, 2);
    EXPECT_EQ(bp[0], 100);
    EXPECT_EQ(bq[0], 5);
    EXPECT_EQ(bp[1], 0);
    EXPECT_EQ(ap[0], 101);
    EXPECT_EQ(bp[2], 99);
    EXPECT_EQ(bq[2], 3);
    EXPECT_EQ(idx[1], 3);
    /* strict apply stops at the L3 add; non-strict counts it and the bad kind */
    EXPECT_EQ(lob_book_apply(b, ev + 4, 2, 1, &r), LOB_ERR_BAD_KIND);
    EXPECT_EQ(r.first_error_index, 0);
    EXPECT_EQ(lob_book_apply(b, ev + 4, 2, 0, &r), LOB_OK);
    EXPECT_EQ(r.rejected, 2);
    EXPECT_EQ(r.by_error[-LOB_ERR_BAD_KIND], 2);
    expect_valid(b);
    EXPECT_EQ(lob_book_clear(b), LOB_OK);
    EXPECT_EQ(lob_book_level_count(b, LOB_SIDE_BID), 0);
    expect_valid(b);
    lob_book_free(b);
}

/* Seeded stress: random ops over a narrow price band so levels collide,
 * checked against a shadow of live ids and quantities after every step. */
static uint64_t rng_state = 0x2545F4914F6CDD1DULL;
static uint64_t rnd(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static void test_random_stress(void) {
    enum { N_IDS = 512, STEPS = 60000 };
    static int64_t shadow[N_IDS]; /* qty resting per id, 0 = absent */
    memset(shadow, 0, sizeof shadow);
    lob_book *b;
    lob_book_new(LOB_BOOK_L3, &b);
    lob_fill fills[N_IDS];
    uint64_t next_taker = 1000000;
    for (int step = 0; step < STEPS; step++) {
        uint64_t id = rnd() % N_IDS;
        int side = (rnd() & 1) ? LOB_SIDE_BID : LOB_SIDE_ASK;
        int64_t price = 1000 + (int64_t)(rnd() % 12) * side; /* bids 1000.., asks ..1000 overlap */
        int64_t qty = 1 + (int64_t)(rnd() % 9);
        int op = (int)(rnd() % 6);
        int rc;
        switch (op) {
        case 0:
            rc = lob_book_add(b, id, side, price, qty);
            EXPECT_EQ(rc, shadow[id] ? LOB_ERR_DUPLICATE_ORDER : LOB_OK);
            if (rc == LOB_OK) shadow[id] = qty;
            break;
        case 1:
            rc = lob_book_reduce(b, id, qty);
            if (!shadow[id]) EXPECT_EQ(rc, LOB_ERR_UNKNOWN_ORDER);
            else if (qty > shadow[id]) EXPECT_EQ(rc, LOB_ERR_BAD_QTY);
            else { EXPECT_EQ(rc, LOB_OK); shadow[id] -= qty; }
            break;
        case 2:
            rc = lob_book_delete(b, id);
            EXPECT_EQ(rc, shadow[id] ? LOB_OK : LOB_ERR_UNKNOWN_ORDER);
            shadow[id] = 0;
            break;
        case 3:
            rc = lob_book_modify(b, id, price, qty);
            EXPECT_EQ(rc, shadow[id] ? LOB_OK : LOB_ERR_UNKNOWN_ORDER);
            if (rc == LOB_OK) shadow[id] = qty;
            break;
        case 4: {
            lob_submit_result r;
            int tif = (int)(rnd() % 5);
            rc = lob_book_submit(b, next_taker, side, price, qty, tif, fills, N_IDS, &r);
            EXPECT_EQ(rc, LOB_OK);
            int64_t filled = 0;
            for (size_t k = 0; k < r.n_fills; k++) {
                EXPECT(fills[k].maker_id < N_IDS);
                shadow[fills[k].maker_id] -= fills[k].qty;
                EXPECT_EQ(shadow[fills[k].maker_id], fills[k].maker_remaining);
                if (tif != LOB_TIF_MARKET)
                    EXPECT(side == LOB_SIDE_BID ? fills[k].price <= price : fills[k].price >= price);
                filled += fills[k].qty;
            }
            EXPECT_EQ(filled, r.filled_qty);
            if (r.outcome == LOB_SUBMIT_REJECTED) EXPECT_EQ(tif, LOB_TIF_POST_ONLY);
            else EXPECT_EQ(r.filled_qty + r.rested_qty + r.killed_qty, qty);
            if (tif == LOB_TIF_FOK) EXPECT(filled == 0 || filled == qty);
            if (tif == LOB_TIF_IOC || tif == LOB_TIF_FOK || tif == LOB_TIF_MARKET) EXPECT_EQ(r.rested_qty, 0);
            if (r.rested_qty > 0) {
                lob_book_delete(b, next_taker); /* keep the id space small */
            }
            next_taker++;
            break;
        }
        default: {
            int64_t px, q;
            if (lob_book_best(b, side, &px, &q)) {
                lob_order_info info;
                /* execute part of some live order on that side */
                for (int k = 0; k < N_IDS; k++) {
                    uint64_t j = (id + (uint64_t)k) % N_IDS;
                    if (shadow[j] && lob_book_order(b, j, &info) == LOB_OK && info.side == side) {
                        int64_t x = 1 + (int64_t)(rnd() % (uint64_t)shadow[j]);
                        EXPECT_EQ(lob_book_execute(b, j, x), LOB_OK);
                        shadow[j] -= x;
                        break;
                    }
                }
            }
        }
        }
        if (step % 7 == 0 || step < 2000) expect_valid(b);
        if (step % 20000 == 19999) {
            lob_book_clear(b);
            memset(shadow, 0, sizeof shadow);
        }
    }
    size_t live = 0;
    for (int i = 0; i < N_IDS; i++) live += shadow[i] > 0;
    EXPECT_EQ(lob_book_order_count(b), live);
    expect_valid(b);
    lob_book_free(b);
}

static void test_wide_prices(void) {
    /* Far-apart prices must not allocate a ladder between them. */
    lob_book *b;
    lob_book_new(LOB_BOOK_L3, &b);
    EXPECT_EQ(lob_book_add(b, 1, LOB_SIDE_BID, 1, 1), LOB_OK);
    EXPECT_EQ(lob_book_add(b, 2, LOB_SIDE_BID, 1000000000000LL, 1), LOB_OK);
    EXPECT_EQ(lob_book_add(b, 3, LOB_SIDE_ASK, INT64_MAX, 1), LOB_OK);
    EXPECT_EQ(lob_book_add(b, 4, LOB_SIDE_ASK, INT64_MIN + 1, 1), LOB_OK);
    EXPECT_EQ(lob_book_add(b, 5, LOB_SIDE_ASK, INT64_MIN + 1, INT64_MAX), LOB_ERR_BAD_QTY); /* level overflow */
    EXPECT_EQ(lob_book_level_count(b, LOB_SIDE_ASK), 2);
    expect_valid(b);
    lob_book_free(b);
}

/* Arbitrary event bytes through apply and depth_series (non-strict) must
 * never crash, and must leave a book that passes the checker. */
static void test_garbage_events(void) {
    enum { N = 20000 };
    static lob_event ev[N];
    static int64_t px[N * 2], q[N * 2], apx[N * 2], aq[N * 2];
    for (int type = LOB_BOOK_L2; type <= LOB_BOOK_L3; type++) {
        for (int i = 0; i < N; i++) {
            uint64_t r = rnd();
            ev[i].order_id = r % 64;
            ev[i].kind = (uint8_t)(rnd() % 11);
            ev[i].side = (int8_t)((int)(rnd() % 5) - 2);
            ev[i].price = (r & 0x100) ? (int64_t)rnd() : 100 + (int64_t)(rnd() % 8);
            ev[i].qty = (r & 0x200) ? (int64_t)rnd() : (int64_t)(rnd() % 6) - 1;
            ev[i].flags = (uint16_t)rnd();
        }
        lob_book *b;
        lob_book_new(type, &b);
        lob_apply_result r;
        EXPECT_EQ(lob_book_apply(b, ev, N, 0, &r), LOB_OK);
        EXPECT_EQ(r.applied + r.rejected, N);
        expect_valid(b);
        size_t rows;
        EXPECT_EQ(lob_depth_series(b, ev, N, 2, 0, 0, px, q, apx, aq, NULL, N, &rows, &r), LOB_OK);
        EXPECT_EQ(rows, N);
        expect_valid(b);
        lob_book_free(b);
    }
}

/* Deterministic shuffle of a[0..n). */
static void shuffle(int64_t *a, size_t n) {
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)(rnd() % i);
        int64_t t = a[i - 1];
        a[i - 1] = a[j];
        a[j] = t;
    }
}

/* Top `levels` of one side must be the `levels` best of the given prices. */
static void expect_side_sorted(lob_book *b, int side, size_t expect_n) {
    static int64_t bpx[200000], bq[200000], apx[200000], aq[200000];
    size_t nb, na;
    EXPECT_EQ(lob_book_depth(b, expect_n + 1, bpx, bq, apx, aq, &nb, &na), LOB_OK);
    const int64_t *px = side > 0 ? bpx : apx;
    size_t n = side > 0 ? nb : na;
    EXPECT_EQ(n, expect_n);
    int sorted = 1;
    for (size_t i = 1; i < n; i++) sorted &= side > 0 ? px[i - 1] > px[i] : px[i - 1] < px[i];
    EXPECT(sorted);
}

/* The block ladder at its edges: splits at the front, middle and back of a
 * block, a new best and a new worst on a full block, merges on the way down,
 * for both sides, with the checker after every change. */
static void test_ladder_blocks(void) {
    for (int side = -1; side <= 1; side += 2) {
        for (int order = 0; order < 4; order++) {
            lob_book *b;
            lob_book_new(LOB_BOOK_L2, &b);
            enum { N = 300 };
            int64_t px[N];
            for (int i = 0; i < N; i++) px[i] = 1000 + 3 * i;
            if (order == 1) for (int i = 0; i < N / 2; i++) { int64_t t = px[i]; px[i] = px[N - 1 - i]; px[N - 1 - i] = t; }
            if (order == 2) shuffle(px, N);
            if (order == 3) for (int i = 0; i < N; i++) px[i] = 1000 + 3 * ((i % 2) ? N - 1 - i / 2 : i / 2); /* both ends */
            for (int i = 0; i < N; i++) {
                EXPECT_EQ(lob_book_set_level(b, side, px[i], 1 + i), LOB_OK);
                expect_valid(b);
            }
            EXPECT_EQ(lob_book_level_count(b, side), N);
            expect_side_sorted(b, side, N);
            /* levels in between existing ones land in the right blocks */
            for (int i = 0; i < N; i += 7) EXPECT_EQ(lob_book_set_level(b, side, 1001 + 3 * i, 5), LOB_OK);
            expect_valid(b);
            expect_side_sorted(b, side, N + (N + 6) / 7);
            for (int i = 0; i < N; i += 7) EXPECT_EQ(lob_book_set_level(b, side, 1001 + 3 * i, 0), LOB_OK);
            shuffle(px, N);
            for (int i = 0; i < N; i++) {
                EXPECT_EQ(lob_book_set_level(b, side, px[i], 0), LOB_OK);
                expect_valid(b);
                if (i % 37 == 0) expect_side_sorted(b, side, (size_t)(N - 1 - i));
            }
            EXPECT_EQ(lob_book_level_count(b, side), 0);
            int64_t p, q;
            EXPECT_EQ(lob_book_best(b, side, &p, &q), 0);
            lob_book_free(b);
        }
    }
}

/* 100k levels a side in random order, then removal in random order: every
 * level is found, the order holds, the checker passes at intervals, and
 * the memory comes back to where a fresh book starts. */
static void test_deep_book(void) {
    enum { N = 100000 };
    static int64_t px[N];
    lob_book *fresh;
    lob_book_new(LOB_BOOK_L3, &fresh);
    size_t fresh_mem = lob_book_memory(fresh);
    lob_book_free(fresh);
    lob_book *b;
    lob_book_new(LOB_BOOK_L3, &b);
    for (int i = 0; i < N; i++) px[i] = 10 * (int64_t)i + 1;
    shuffle(px, N);
    for (int i = 0; i < N; i++) {
        EXPECT_EQ(lob_book_add(b, (uint64_t)(2 * i), LOB_SIDE_BID, px[i], 3), LOB_OK);
        EXPECT_EQ(lob_book_add(b, (uint64_t)(2 * i + 1), LOB_SIDE_ASK, 2000000 + px[i], 4), LOB_OK);
        if (i % 20011 == 0) expect_valid(b);
    }
    /* an outlier far below the worst bid and one far above the worst ask */
    EXPECT_EQ(lob_book_add(b, 1ULL << 40, LOB_SIDE_BID, -4000000000000LL, 1), LOB_OK);
    EXPECT_EQ(lob_book_add(b, (1ULL << 40) + 1, LOB_SIDE_ASK, 4000000000000LL, 1), LOB_OK);
    expect_valid(b);
    EXPECT_EQ(lob_book_level_count(b, LOB_SIDE_BID), N + 1);
    expect_side_sorted(b, LOB_SIDE_BID, N + 1);
    expect_side_sorted(b, LOB_SIDE_ASK, N + 1);
    int64_t p, q;
    lob_book_best(b, LOB_SIDE_BID, &p, &q);
    EXPECT_EQ(p, 10 * (int64_t)(N - 1) + 1);
    lob_order_info info;
    EXPECT_EQ(lob_book_order(b, 1ULL << 40, &info), LOB_OK);
    EXPECT_EQ(info.price, -4000000000000LL);
    size_t peak = lob_book_memory(b);
    EXPECT(peak > 10 * fresh_mem);
    shuffle(px, N);
    for (int i = 0; i < N; i++) {
        uint64_t id = (uint64_t)((px[i] - 1) / 10) * 2;
        EXPECT_EQ(lob_book_delete(b, id), LOB_OK);
        EXPECT_EQ(lob_book_delete(b, id + 1), LOB_OK);
        if (i % 9973 == 0) expect_valid(b);
    }
    expect_valid(b);
    EXPECT_EQ(lob_book_order_count(b), 2);
    EXPECT(lob_book_memory(b) <= 2 * fresh_mem); /* pools shrank on the way down */
    EXPECT_EQ(lob_book_clear(b), LOB_OK);
    EXPECT_EQ(lob_book_memory(b), fresh_mem);
    expect_valid(b);
    lob_book_free(b);
}

/* clear() on a big book returns to the initial size at once and the book is
 * fully usable afterwards; pools shrink as live counts fall (L2 too). */
static void test_shrink_and_clear(void) {
    for (int type = LOB_BOOK_L2; type <= LOB_BOOK_L3; type++) {
        lob_book *b;
        lob_book_new(type, &b);
        size_t fresh_mem = lob_book_memory(b);
        for (int round = 0; round < 3; round++) {
            for (int i = 0; i < 50000; i++) {
                int side = i % 2 ? LOB_SIDE_ASK : LOB_SIDE_BID;
                int64_t price = side > 0 ? 100000 - i / 2 : 100001 + i / 2;
                if (type == LOB_BOOK_L3) EXPECT_EQ(lob_book_add(b, (uint64_t)i, side, price - (i % 3) * 0, 2), LOB_OK);
                else EXPECT_EQ(lob_book_set_level(b, side, price, 2), LOB_OK);
            }
            expect_valid(b);
            EXPECT(lob_book_memory(b) > 20 * fresh_mem);
            if (round == 1) { /* remove all but a few one by one */
                for (int i = 0; i < 49990; i++) {
                    int side = i % 2 ? LOB_SIDE_ASK : LOB_SIDE_BID;
                    int64_t price = side > 0 ? 100000 - i / 2 : 100001 + i / 2;
                    if (type == LOB_BOOK_L3) EXPECT_EQ(lob_book_delete(b, (uint64_t)i), LOB_OK);
                    else EXPECT_EQ(lob_book_set_level(b, side, price, 0), LOB_OK);
                    if (i % 4999 == 0) expect_valid(b);
                }
                expect_valid(b);
                EXPECT(lob_book_memory(b) <= 2 * fresh_mem);
            }
            EXPECT_EQ(lob_book_clear(b), LOB_OK);
            EXPECT_EQ(lob_book_memory(b), fresh_mem);
            EXPECT_EQ(lob_book_level_count(b, LOB_SIDE_BID) + lob_book_level_count(b, LOB_SIDE_ASK), 0);
            expect_valid(b);
        }
        lob_book_totals t;
        lob_book_totals_get(b, &t);
        if (type == LOB_BOOK_L3) EXPECT_EQ(t.added, t.cancelled);
        lob_book_free(b);
    }
}

/* Id sets that defeat a fixed multiplicative hash: multiples of the inverse
 * of the old public multiplier (they all had the same product high bits),
 * multiples of 2^32, large strides. All must work (speed: benches/). */
static void test_adversarial_ids(void) {
    const uint64_t inv = 0xF1DE83E19937733DULL; /* 0x9E3779B97F4A7C15^-1 mod 2^64 */
    EXPECT_EQ(inv * 0x9E3779B97F4A7C15ULL, 1);
    const uint64_t strides[] = {inv, 1ULL << 32, 1ULL << 48, 1000003ULL << 20};
    for (size_t s = 0; s < sizeof strides / sizeof *strides; s++) {
        lob_book *b;
        lob_book_new(LOB_BOOK_L3, &b);
        enum { N = 20000 };
        for (uint64_t k = 1; k <= N; k++)
            EXPECT_EQ(lob_book_add(b, k * strides[s], (k & 1) ? LOB_SIDE_BID : LOB_SIDE_ASK,
                                   (k & 1) ? 1000 - (int64_t)(k % 50) : 1001 + (int64_t)(k % 50), 1), LOB_OK);
        expect_valid(b);
        EXPECT_EQ(lob_book_order_count(b), N);
        for (uint64_t k = 1; k <= N; k += 2) EXPECT_EQ(lob_book_delete(b, k * strides[s]), LOB_OK);
        for (uint64_t k = 2; k <= N; k += 2) EXPECT_EQ(lob_book_execute(b, k * strides[s], 1), LOB_OK);
        EXPECT_EQ(lob_book_order_count(b), 0);
        expect_valid(b);
        lob_book_free(b);
    }
}

int main(void) {
    test_garbage_events();
    test_add_cancel_execute();
    test_modify_priority();
    test_submit();
    test_l2_and_events();
    test_wide_prices();
    test_ladder_blocks();
    test_deep_book();
    test_shrink_and_clear();
    test_adversarial_ids();
    test_random_stress();
    return report();
}
