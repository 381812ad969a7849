/*
 * test_venue.c - C unit tests of the simulated venue (csrc/venue.c) under
 * AddressSanitizer and UBSan: hand-computed scenarios (events in, exact
 * fills out) for the L3 and L2 queue rules, latency on both channels, and
 * arbitrary events and requests that must never crash.
 */
#include "lobsim.h"
#include "expect.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static lob_event ev(int64_t t, int kind, uint64_t id, int side, int64_t price, int64_t qty) {
    lob_event e;
    memset(&e, 0, sizeof e);
    e.ts_exch = e.ts_local = t;
    e.kind = (uint8_t)kind;
    e.order_id = id;
    e.side = (int8_t)side;
    e.price = price;
    e.qty = qty;
    e.flags = LOB_FLAG_BATCH_END;
    return e;
}

static lob_sim_config config(int type, int64_t entry, int64_t response) {
    lob_sim_config c;
    memset(&c, 0, sizeof c);
    c.book_type = type;
    c.queue_model = LOB_QUEUE_RISK_AVERSE;
    for (int k = 0; k < 3; k++) {
        c.latency[k].kind = LOB_LAT_CONSTANT;
        c.latency[k].entry_ns = entry;
        c.latency[k].response_ns = response;
    }
    c.value_per_tick_lot = 1.0;
    c.seed = 1;
    return c;
}

/* Run to local time t (or the end); returns the reason. */
static int run_until(lob_sim *s, int64_t t) {
    int reason;
    lob_sim_state st;
    int64_t bc, be;
    do {
        EXPECT_EQ(lob_sim_run(s, t, 0, &reason, &st, &bc, &be), LOB_OK);
        if (reason == LOB_RUN_NEED_DATA) lob_sim_end_data(s);
    } while (reason == LOB_RUN_WAKE || reason == LOB_RUN_NEED_DATA);
    return reason;
}

/* The fills of the run: (ts_exch, qty, price) triples into out; returns the count. */
static size_t fills(lob_sim *s, int64_t out[][3], size_t cap) {
    size_t n, k = 0;
    const lob_sim_msg *m = lob_sim_msgs(s, &n);
    for (size_t i = 0; i < n; i++) {
        if (m[i].kind != LOB_MSG_FILL) continue;
        if (k < cap) {
            out[k][0] = m[i].ts_exch;
            out[k][1] = m[i].qty;
            out[k][2] = m[i].price;
        }
        k++;
    }
    return k;
}

/* L3: the order joins the tail at its price; cancels and executions ahead
 * advance it; executions of orders behind it fill it. */
static void test_l3_queue(void) {
    lob_event e[] = {
        ev(1, LOB_EV_ADD, 1, 1, 100, 5),
        ev(2, LOB_EV_ADD, 2, 1, 100, 3),
        /* user buys 2 @ 100 at t=3: 8 ahead */
        ev(4, LOB_EV_ADD, 3, 1, 100, 4),  /* behind the user */
        ev(5, LOB_EV_DELETE, 1, 0, 0, 0), /* ahead: 3 left */
        ev(6, LOB_EV_EXECUTE, 2, 1, 0, 3), /* the rest ahead trades: no fill */
        ev(7, LOB_EV_EXECUTE, 3, 1, 0, 1), /* behind the user: it would have hit the user first */
        ev(8, LOB_EV_EXECUTE, 3, 1, 0, 3),
    };
    lob_sim_config c = config(LOB_BOOK_L3, 0, 0);
    lob_sim *s;
    EXPECT_EQ(lob_sim_new(&c, &s), LOB_OK);
    EXPECT_EQ(lob_sim_feed(s, e, sizeof e / sizeof *e), LOB_OK);
    EXPECT_EQ(run_until(s, 3), LOB_RUN_UNTIL);
    EXPECT_EQ(lob_sim_submit(s, 42, 1, 100, 2, LOB_TIF_GTC), LOB_OK);
    EXPECT_EQ(run_until(s, 1000), LOB_RUN_END);
    int64_t f[8][3];
    EXPECT_EQ(fills(s, f, 8), 2);
    EXPECT_EQ(f[0][0], 7);
    EXPECT_EQ(f[0][1], 1);
    EXPECT_EQ(f[0][2], 100);
    EXPECT_EQ(f[1][0], 8);
    EXPECT_EQ(f[1][1], 1);
    size_t np;
    const lob_sim_pos *p = lob_sim_positions(s, &np);
    EXPECT_EQ(np, 2);
    EXPECT_EQ(p[1].position, 2);
    EXPECT(p[1].cash == -200.0);
    lob_sim_free(s);
}

/* L2 risk-averse: prints at the price reduce the qty ahead and their excess
 * fills; a decrease explained by prints moves nothing; an unexplained one
 * comes from behind; a print through the price fills the rest. */
static void test_l2_risk_averse(void) {
    lob_event e[] = {
        ev(1, LOB_EV_SET_LEVEL, 0, 1, 100, 10),
        /* user buys 3 @ 100 at t=2: 10 ahead */
        ev(3, LOB_EV_TRADE, 0, -1, 100, 4),     /* ahead 6, no fill */
        ev(4, LOB_EV_SET_LEVEL, 0, 1, 100, 6),  /* explained by the print */
        ev(5, LOB_EV_SET_LEVEL, 0, 1, 100, 2),  /* cancel of 4: ahead = min(6, 2) = 2 */
        ev(6, LOB_EV_TRADE, 0, -1, 100, 4),     /* excess 2 fills 2 */
        ev(7, LOB_EV_TRADE, 0, -1, 99, 1),      /* through the price: the last lot */
    };
    lob_sim_config c = config(LOB_BOOK_L2, 0, 0);
    lob_sim *s;
    EXPECT_EQ(lob_sim_new(&c, &s), LOB_OK);
    lob_sim_feed(s, e, sizeof e / sizeof *e);
    EXPECT_EQ(run_until(s, 2), LOB_RUN_UNTIL);
    lob_sim_submit(s, 1, 1, 100, 3, LOB_TIF_GTC);
    EXPECT_EQ(run_until(s, 1000), LOB_RUN_END);
    int64_t f[8][3];
    EXPECT_EQ(fills(s, f, 8), 2);
    EXPECT_EQ(f[0][0], 6);
    EXPECT_EQ(f[0][1], 2);
    EXPECT_EQ(f[1][0], 7);
    EXPECT_EQ(f[1][1], 1);
    EXPECT_EQ(f[1][2], 100); /* a maker fill at the order's own price */
    lob_sim_free(s);
}

/* A feed that publishes the decrease before the print that caused it: the
 * print must not move the queue a second time. */
static void test_l2_decrease_before_print(void) {
    lob_event e[] = {
        ev(1, LOB_EV_SET_LEVEL, 0, 1, 100, 10),
        /* user buys 2 @ 100 at t=2: 10 ahead, at the back */
        ev(3, LOB_EV_SET_LEVEL, 0, 1, 100, 7), /* a print of 3, published first: ahead 7 */
        ev(3, LOB_EV_TRADE, 0, -1, 100, 3),    /* the same 3 (stamped at the decrease's time): ahead stays 7 */
        ev(5, LOB_EV_TRADE, 0, -1, 100, 8),    /* a new print: excess 1 fills 1 */
    };
    lob_sim_config c = config(LOB_BOOK_L2, 0, 0);
    lob_sim *s;
    lob_sim_new(&c, &s);
    lob_sim_feed(s, e, sizeof e / sizeof *e);
    run_until(s, 2);
    lob_sim_submit(s, 1, 1, 100, 2, LOB_TIF_GTC);
    EXPECT_EQ(run_until(s, 1000), LOB_RUN_END);
    int64_t f[8][3];
    EXPECT_EQ(fills(s, f, 8), 1);
    EXPECT_EQ(f[0][0], 5);
    EXPECT_EQ(f[0][1], 1);
    lob_sim_free(s);
}

/* Latency: the order reaches the venue after the entry latency; events
 * before its arrival cannot fill it; the response arrives after the
 * response latency; a cancel racing a fill is rejected too late. */
static void test_latency_and_race(void) {
    lob_event e[] = {
        ev(10, LOB_EV_SET_LEVEL, 0, -1, 101, 5),
        ev(20, LOB_EV_TRADE, 0, 1, 101, 5),  /* before the order arrives (t=10+15=25): no fill */
        ev(30, LOB_EV_TRADE, 0, 1, 102, 1),  /* through the ask at 101: fills it */
        ev(100, LOB_EV_SET_LEVEL, 0, -1, 101, 0),
    };
    lob_sim_config c = config(LOB_BOOK_L2, 15, 7);
    lob_sim *s;
    lob_sim_new(&c, &s);
    lob_sim_feed(s, e, sizeof e / sizeof *e);
    run_until(s, 10);
    lob_sim_submit(s, 9, -1, 101, 2, LOB_TIF_GTC); /* arrives 25 */
    run_until(s, 31);
    lob_sim_cancel(s, 9);                          /* sent 31, arrives 46: too late */
    lob_sim_cancel(s, 77);                         /* unknown */
    EXPECT_EQ(run_until(s, 1000), LOB_RUN_END);
    size_t n;
    const lob_sim_msg *m = lob_sim_msgs(s, &n);
    int seen_fill = 0, seen_late = 0, seen_unknown = 0;
    for (size_t i = 0; i < n; i++) {
        if (m[i].kind == LOB_MSG_FILL) {
            seen_fill++;
            EXPECT_EQ(m[i].ts_exch, 30);
            EXPECT_EQ(m[i].ts_local, 37);
            EXPECT_EQ(m[i].qty, 2);
        }
        if (m[i].kind == LOB_MSG_ORDER && m[i].state == LOB_ORD_ACCEPTED) EXPECT_EQ(m[i].ts_exch, 25);
        if (m[i].state == LOB_ORD_REJECTED && m[i].reason == LOB_REJ_TOO_LATE) {
            seen_late++;
            EXPECT_EQ(m[i].order_id, 9);
            EXPECT_EQ(m[i].ts_exch, 46);
            EXPECT_EQ(m[i].ts_local, 53);
        }
        if (m[i].state == LOB_ORD_REJECTED && m[i].reason == LOB_REJ_UNKNOWN_ORDER) seen_unknown++;
    }
    EXPECT_EQ(seen_fill, 1);
    EXPECT_EQ(seen_late, 1);
    EXPECT_EQ(seen_unknown, 1);
    lob_sim_free(s);
}

/* A marketable order takes displayed liquidity once: a second one finds it consumed. */
static void test_consumed_liquidity(void) {
    for (int type = LOB_BOOK_L2; type <= LOB_BOOK_L3; type++) {
        lob_event e[] = {
            type == LOB_BOOK_L2 ? ev(1, LOB_EV_SET_LEVEL, 0, -1, 101, 5) : ev(1, LOB_EV_ADD, 5, -1, 101, 5),
            ev(50, LOB_EV_TRADE, 0, 1, 90, 1), /* keeps the data going */
        };
        lob_sim_config c = config(type, 0, 0);
        lob_sim *s;
        lob_sim_new(&c, &s);
        lob_sim_feed(s, e, 2);
        run_until(s, 2);
        lob_sim_submit(s, 1, 1, 101, 4, LOB_TIF_IOC); /* takes 4 of 5 */
        lob_sim_submit(s, 2, 1, 101, 4, LOB_TIF_IOC); /* only 1 left */
        lob_sim_submit(s, 3, 1, 101, 1, LOB_TIF_POST_ONLY); /* nothing left to cross: rests */
        EXPECT_EQ(run_until(s, 1000), LOB_RUN_END);
        int64_t f[8][3];
        EXPECT_EQ(fills(s, f, 8), 2);
        EXPECT_EQ(f[0][1], 4);
        EXPECT_EQ(f[1][1], 1);
        size_t np;
        const lob_sim_pos *p = lob_sim_positions(s, &np);
        EXPECT_EQ(p[np - 1].position, 5);
        lob_sim_free(s);
    }
}

/* Markouts: the venue mid at each fill and after each horizon; samples: the
 * account every sample_ns of venue time. */
static void test_markouts_and_samples(void) {
    lob_event e[] = {
        ev(1, LOB_EV_SET_LEVEL, 0, 1, 100, 10),
        ev(1, LOB_EV_SET_LEVEL, 0, -1, 102, 10),
        ev(1, LOB_EV_SET_LEVEL, 0, -1, 104, 10),
        /* t=2: buy 1 @ 100 */
        ev(5, LOB_EV_TRADE, 0, -1, 99, 1),       /* through: filled at 5, mid2 202 */
        ev(150, LOB_EV_SET_LEVEL, 0, -1, 102, 0), /* best ask 104: mid2 204 from 150 on */
        ev(300, LOB_EV_SET_LEVEL, 0, 1, 99, 5),
    };
    lob_sim_config c = config(LOB_BOOK_L2, 0, 0);
    c.sample_ns = 100;
    c.markout_ns[0] = 100;  /* at 105: 202 */
    c.markout_ns[1] = 200;  /* at 205: 204 */
    c.markout_ns[2] = 1000; /* at 1005: past the data: 0 */
    lob_sim *s;
    lob_sim_new(&c, &s);
    lob_sim_feed(s, e, sizeof e / sizeof *e);
    run_until(s, 2);
    lob_sim_submit(s, 1, 1, 100, 1, LOB_TIF_GTC);
    EXPECT_EQ(run_until(s, 1000), LOB_RUN_END);
    size_t n;
    const lob_sim_markout *m = lob_sim_markouts(s, &n);
    EXPECT_EQ(n, 1);
    EXPECT_EQ(m[0].ts, 5);
    EXPECT_EQ(m[0].mid2, 202);
    EXPECT_EQ(m[0].after2[0], 202);
    EXPECT_EQ(m[0].after2[1], 204);
    EXPECT_EQ(m[0].after2[2], 0);
    EXPECT_EQ(m[0].after2[3], 0);
    const lob_sim_pos *p = lob_sim_positions(s, &n);
    int64_t want_ts[] = {1, 5, 101, 201}, want_pos[] = {0, 1, 1, 1}, want_ask[] = {102, 102, 102, 104};
    EXPECT_EQ(n, 4);
    for (size_t i = 0; i < n && i < 4; i++) {
        EXPECT_EQ(p[i].ts, want_ts[i]);
        EXPECT_EQ(p[i].position, want_pos[i]);
        EXPECT_EQ(p[i].ask, want_ask[i]);
    }
    EXPECT_EQ(p[0].kind, LOB_POS_SAMPLE);
    EXPECT_EQ(p[1].kind, LOB_POS_FILL);
    lob_sim_free(s);
}

/* The state sequence of order id, as a string of state digits. */
static void states_of(lob_sim *s, uint64_t id, char *out, size_t cap) {
    size_t n, k = 0;
    const lob_sim_msg *m = lob_sim_msgs(s, &n);
    for (size_t i = 0; i < n && k + 1 < cap; i++)
        if (m[i].kind == LOB_MSG_ORDER && m[i].order_id == id) out[k++] = (char)('0' + m[i].state);
    out[k] = 0;
}

/* Stops trigger on trades after their arrival only; stop-market takes the
 * book; stop-limit rests after its trigger; DAY and GTD expire at their
 * venue times; a halt refuses what would trade and matches nothing. */
static void test_order_types(void) {
    char st[32];
    {   /* stop-market buy at 102, 20 ns of entry latency: sent at 2, armed at 22 */
        lob_event e[] = {
            ev(1, LOB_EV_SET_LEVEL, 0, -1, 103, 5),
            ev(15, LOB_EV_TRADE, 0, 1, 102, 1),  /* before arrival: no trigger */
            ev(25, LOB_EV_TRADE, 0, 1, 101, 1),  /* below the stop */
            ev(30, LOB_EV_TRADE, 0, 1, 102, 1),  /* triggers: market buy takes 2 @ 103 */
            ev(40, LOB_EV_SET_LEVEL, 0, -1, 103, 4),
        };
        lob_sim_config c = config(LOB_BOOK_L2, 20, 0);
        lob_sim *s;
        lob_sim_new(&c, &s);
        lob_sim_feed(s, e, sizeof e / sizeof *e);
        run_until(s, 2);
        EXPECT_EQ(lob_sim_submit_ex(s, 1, 1, 0, 2, LOB_TIF_MARKET, 1, 102, 0), LOB_OK);
        EXPECT_EQ(run_until(s, 1000), LOB_RUN_END);
        int64_t f[4][3];
        EXPECT_EQ(fills(s, f, 4), 1);
        EXPECT_EQ(f[0][0], 30);
        EXPECT_EQ(f[0][1], 2);
        EXPECT_EQ(f[0][2], 103);
        states_of(s, 1, st, sizeof st);
        EXPECT(strcmp(st, "0173") == 0); /* NEW, ACCEPTED, TRIGGERED, FILLED */
        lob_sim_free(s);
    }
    {   /* stop-limit sell: stop 98, limit 97: rests after the trigger, fills on a print through 97 */
        lob_event e[] = {
            ev(1, LOB_EV_SET_LEVEL, 0, 1, 96, 5),
            ev(10, LOB_EV_TRADE, 0, -1, 98, 1),  /* triggers; 97 does not cross the bid at 96: rests */
            ev(20, LOB_EV_TRADE, 0, 1, 98, 1),   /* a buy print through 97: fills */
        };
        lob_sim_config c = config(LOB_BOOK_L2, 0, 0);
        lob_sim *s;
        lob_sim_new(&c, &s);
        lob_sim_feed(s, e, sizeof e / sizeof *e);
        run_until(s, 2);
        lob_sim_submit_ex(s, 1, -1, 97, 1, LOB_TIF_GTC, 1, 98, 0);
        EXPECT_EQ(run_until(s, 1000), LOB_RUN_END);
        int64_t f[4][3];
        EXPECT_EQ(fills(s, f, 4), 1);
        EXPECT_EQ(f[0][0], 20);
        EXPECT_EQ(f[0][2], 97);
        states_of(s, 1, st, sizeof st);
        EXPECT(strcmp(st, "0173") == 0);
        lob_sim_free(s);
    }
    {   /* DAY expires at the session end, GTD at its own time, each at that venue time */
        lob_event e[] = {ev(1, LOB_EV_SET_LEVEL, 0, 1, 96, 5), ev(100, LOB_EV_SET_LEVEL, 0, 1, 96, 6)};
        lob_sim_config c = config(LOB_BOOK_L2, 0, 3);
        c.session_end_ns = 50;
        lob_sim *s;
        lob_sim_new(&c, &s);
        lob_sim_feed(s, e, 2);
        run_until(s, 2);
        lob_sim_submit_ex(s, 1, 1, 90, 1, LOB_TIF_DAY, 0, 0, 0);
        lob_sim_submit_ex(s, 2, 1, 91, 1, LOB_TIF_GTD, 0, 0, 30);
        lob_sim_submit_ex(s, 3, 1, 92, 1, LOB_TIF_GTD, 0, 0, 0);  /* GTD without expiry: invalid */
        EXPECT_EQ(run_until(s, 1000), LOB_RUN_END);
        size_t n;
        const lob_sim_msg *m = lob_sim_msgs(s, &n);
        int seen = 0;
        for (size_t i = 0; i < n; i++) {
            if (m[i].state != LOB_ORD_EXPIRED) continue;
            seen++;
            EXPECT_EQ(m[i].ts_exch, m[i].order_id == 1 ? 50 : 30);
            EXPECT_EQ(m[i].ts_local, m[i].ts_exch + 3);
        }
        EXPECT_EQ(seen, 2);
        states_of(s, 3, st, sizeof st);
        EXPECT(strcmp(st, "05") == 0);
        lob_sim_free(s);
    }
    {   /* a halt: marketable orders refused, resting ones wait, no fill until trading resumes */
        lob_event e[] = {
            ev(1, LOB_EV_SET_LEVEL, 0, -1, 103, 5),
            ev(5, LOB_EV_STATUS, 0, 0, 0, LOB_STATUS_HALT),
            ev(8, LOB_EV_TRADE, 0, -1, 95, 1),     /* through the bid at 100, but halted */
            ev(10, LOB_EV_STATUS, 0, 0, 0, LOB_STATUS_TRADING),
            ev(12, LOB_EV_TRADE, 0, -1, 95, 1),    /* now it fills */
        };
        lob_sim_config c = config(LOB_BOOK_L2, 0, 0);
        lob_sim *s;
        lob_sim_new(&c, &s);
        lob_sim_feed(s, e, sizeof e / sizeof *e);
        run_until(s, 6);
        lob_sim_submit(s, 1, 1, 103, 1, LOB_TIF_IOC);   /* would trade: refused */
        lob_sim_submit(s, 2, 1, 100, 1, LOB_TIF_GTC);   /* rests */
        EXPECT_EQ(run_until(s, 1000), LOB_RUN_END);
        size_t n;
        const lob_sim_msg *m = lob_sim_msgs(s, &n);
        int halted = 0;
        for (size_t i = 0; i < n; i++) halted += m[i].reason == LOB_REJ_HALTED && m[i].order_id == 1;
        EXPECT_EQ(halted, 1);
        int64_t f[4][3];
        EXPECT_EQ(fills(s, f, 4), 1);
        EXPECT_EQ(f[0][0], 12);
        lob_sim_free(s);
    }
}

static uint64_t rng_state = 0x9E3779B97F4A7C15ULL;
static uint64_t rnd(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

/* Arbitrary (often invalid) events and requests never crash, and the
 * position always equals the signed sum of the fills. */
static void test_garbage(void) {
    enum { N = 3000 };
    static lob_event e[N];
    for (int type = LOB_BOOK_L2; type <= LOB_BOOK_L3; type++) {
        for (int i = 0; i < N; i++) {
            int kind = type == LOB_BOOK_L2 ? (rnd() % 3 ? LOB_EV_SET_LEVEL : LOB_EV_TRADE) : 1 + (int)(rnd() % 5);
            if (rnd() % 50 == 0) kind = LOB_EV_TRADE;
            e[i] = ev(i, kind, 1 + rnd() % 40, (rnd() % 2) ? 1 : -1, 95 + (int64_t)(rnd() % 11),
                      (int64_t)(rnd() % 9));
            if (rnd() % 7 == 0) e[i].flags |= LOB_FLAG_HIDDEN;
        }
        lob_sim_config c = config(type, (int64_t)(rnd() % 5), (int64_t)(rnd() % 5));
        c.queue_model = type == LOB_BOOK_L2 ? (int)(rnd() % 3) : 0;
        c.queue_power = 2;
        lob_sim *s;
        EXPECT_EQ(lob_sim_new(&c, &s), LOB_OK);
        lob_sim_feed(s, e, N);
        lob_sim_end_data(s);
        uint64_t next_id = 1;
        for (int64_t t = 0; t < N; t += 3) {
            int reason;
            lob_sim_state st;
            int64_t bc, be;
            int rc;
            do {
                rc = lob_sim_run(s, t, 0, &reason, &st, &bc, &be);
            } while (rc == LOB_OK && reason == LOB_RUN_WAKE);
            if (rc != LOB_OK) break; /* a refused data event stops the run, cleanly */
            switch (rnd() % 4) {
            case 0: lob_sim_submit(s, next_id++, (int)(rnd() % 3) - 1, 95 + (int64_t)(rnd() % 11), (int64_t)(rnd() % 6) - 1, (int)(rnd() % 6)); break;
            case 1: lob_sim_cancel(s, rnd() % (next_id + 2)); break;
            case 2: lob_sim_modify(s, rnd() % (next_id + 2), 95 + (int64_t)(rnd() % 11), (int64_t)(rnd() % 6)); break;
            default: break;
            }
        }
        size_t n;
        const lob_sim_msg *m = lob_sim_msgs(s, &n);
        int64_t pos = 0;
        for (size_t i = 0; i < n; i++) {
            if (m[i].kind != LOB_MSG_FILL) continue;
            pos += m[i].side * m[i].qty;
            EXPECT_EQ(pos, m[i].position);
            EXPECT(m[i].ts_local >= m[i].ts_exch);
        }
        lob_sim_free(s);
    }
}

int main(void) {
    test_l3_queue();
    test_l2_risk_averse();
    test_l2_decrease_before_print();
    test_latency_and_race();
    test_consumed_liquidity();
    test_markouts_and_samples();
    test_order_types();
    test_garbage();
    return report();
}
