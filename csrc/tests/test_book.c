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
    size_t n;
    int64_t rest;
    /* post-only that would cross: rejected, nothing changes */
    EXPECT_EQ(lob_book_submit(b, 10, LOB_SIDE_BID, 101, 1, LOB_TIF_POST_ONLY, f, 8, &n, &rest), LOB_ERR_WOULD_CROSS);
    /* FOK for more than is available up to the limit: killed */
    EXPECT_EQ(lob_book_submit(b, 10, LOB_SIDE_BID, 101, 11, LOB_TIF_FOK, f, 8, &n, &rest), LOB_OK);
    EXPECT_EQ(n, 0);
    /* too small a buffer: asks for the count, changes nothing */
    EXPECT_EQ(lob_book_submit(b, 10, LOB_SIDE_BID, 102, 12, LOB_TIF_GTC, f, 2, &n, &rest), LOB_ERR_CAPACITY);
    EXPECT_EQ(n, 3);
    EXPECT_EQ(lob_book_order_count(b), 3);
    /* GTC sweeping two levels, remainder rests at its limit */
    EXPECT_EQ(lob_book_submit(b, 10, LOB_SIDE_BID, 102, 17, LOB_TIF_GTC, f, 8, &n, &rest), LOB_OK);
    EXPECT_EQ(n, 3);
    EXPECT_EQ(f[0].maker_id, 1);
    EXPECT_EQ(f[0].price, 101);
    EXPECT_EQ(f[1].maker_id, 2);
    EXPECT_EQ(f[2].maker_id, 3);
    EXPECT_EQ(f[2].price, 102);
    EXPECT_EQ(f[2].maker_remaining, 0);
    EXPECT_EQ(rest, 2);
    int64_t px, q;
    EXPECT_EQ(lob_book_best(b, LOB_SIDE_BID, &px, &q), 1);
    EXPECT_EQ(px, 102);
    EXPECT_EQ(q, 2);
    EXPECT_EQ(lob_book_best(b, LOB_SIDE_ASK, &px, &q), 0);
    /* market sell takes the bid; IOC remainder never rests */
    EXPECT_EQ(lob_book_submit(b, 11, LOB_SIDE_ASK, 0, 5, LOB_TIF_MARKET, f, 8, &n, &rest), LOB_OK);
    EXPECT_EQ(n, 1);
    EXPECT_EQ(f[0].qty, 2);
    EXPECT_EQ(rest, 0);
    EXPECT_EQ(lob_book_order_count(b), 0);
    EXPECT_EQ(lob_book_submit(b, 12, LOB_SIDE_ASK, 100, 5, 9, f, 8, &n, &rest), LOB_ERR_BAD_TIF);
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
            size_t n;
            int64_t rest;
            int tif = (int)(rnd() % 5);
            rc = lob_book_submit(b, next_taker, side, price, qty, tif, fills, N_IDS, &n, &rest);
            EXPECT(rc == LOB_OK || rc == LOB_ERR_WOULD_CROSS);
            int64_t filled = 0;
            for (size_t k = 0; k < n; k++) {
                EXPECT(fills[k].maker_id < N_IDS);
                shadow[fills[k].maker_id] -= fills[k].qty;
                EXPECT_EQ(shadow[fills[k].maker_id], fills[k].maker_remaining);
                if (tif != LOB_TIF_MARKET)
                    EXPECT(side == LOB_SIDE_BID ? fills[k].price <= price : fills[k].price >= price);
                filled += fills[k].qty;
            }
            EXPECT(filled + rest <= qty);
            if (tif == LOB_TIF_FOK) EXPECT(filled == 0 || filled == qty);
            if (tif == LOB_TIF_IOC || tif == LOB_TIF_FOK || tif == LOB_TIF_MARKET) EXPECT_EQ(rest, 0);
            if (rest > 0) {
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

int main(void) {
    test_garbage_events();
    test_add_cancel_execute();
    test_modify_priority();
    test_submit();
    test_l2_and_events();
    test_wide_prices();
    test_random_stress();
    return report();
}
