/*
 * test_dbn.c - C unit tests of the DBN MBO tracker and record scanner
 * (dbn.c), run under AddressSanitizer and UBSan by `make -C csrc test`.
 *
 * Hand-made MBO record sequences with hand-derived events and counters
 * (unknown ids, cancels larger than the order, modify of an unknown order,
 * clear, fills, batch ends across calls), every consistent sequence also
 * applied to an L3 lob_book; then random bytes fed as records and to the
 * scanner, which must return a status, never crash or read out of bounds.
 */
#include "dbn.h"
#include "expect.h"

#include <stdlib.h>
#include <string.h>

#define MAXR 64

typedef struct mbo {
    uint8_t b[56];
} mbo;

static mbo recs[MAXR];
static size_t nrec;

static void put(char action, char side, uint64_t oid, int64_t price, uint32_t size, uint8_t flags) {
    uint8_t *r = recs[nrec].b;
    memset(r, 0, 56);
    r[0] = 14;
    r[1] = 0xA0;
    uint64_t ts = 1000 + nrec;
    memcpy(r + 8, &ts, 8);
    memcpy(r + 16, &oid, 8);
    memcpy(r + 24, &price, 8);
    memcpy(r + 32, &size, 4);
    r[36] = flags;
    r[38] = (uint8_t)action;
    r[39] = (uint8_t)side;
    uint64_t tr = ts + 5;
    memcpy(r + 40, &tr, 8);
    nrec++;
}

static lob_event out[2 * MAXR];
static int64_t ev_rec[2 * MAXR];
static lob_dbn_mbo_result res;

static int64_t run(lob_dbn_mbo *t, size_t from, size_t to) {
    int rc = lob_dbn_mbo_run(t, (const uint8_t *)&recs[from], to - from, 56, out, ev_rec, 2 * MAXR, &res);
    EXPECT_EQ(rc, LOB_OK);
    return res.n_events;
}

#define L 128
#define UNDEF INT64_MAX


static void test_actions_exact(void) {
    lob_dbn_mbo *t;
    EXPECT_EQ(lob_dbn_mbo_new(&t, 1), LOB_OK);
    nrec = 0;
    put('A', 'B', 1, 100, 5, L);
    put('C', 'B', 9, 100, 1, L);
    put('C', 'B', 1, 100, 2, L);
    put('C', 'B', 1, 100, 7, L);
    put('M', 'A', 4, 101, 2, L);
    put('A', 'A', 4, 102, 3, L);
    put('T', 'N', 0, UNDEF, 1, L);
    put('X', 'N', 0, 0, 0, L);
    put('R', 'N', 0, UNDEF, 0, L);
    put('C', 'A', 4, 102, 3, L);
    int64_t n = run(t, 0, nrec);
    uint8_t kinds[] = {LOB_EV_ADD, LOB_EV_REDUCE, LOB_EV_DELETE, LOB_EV_ADD, LOB_EV_DELETE, LOB_EV_ADD, LOB_EV_CLEAR};
    int64_t qtys[] = {5, 2, 3, 2, 2, 3, 0};
    int64_t prices[] = {100, 100, 100, 101, 101, 102, 0};
    int64_t recs_of[] = {0, 2, 3, 4, 5, 5, 8};
    EXPECT_EQ(n, 7);
    for (int k = 0; k < 7 && k < n; k++) {
        EXPECT_EQ(out[k].kind, kinds[k]);
        EXPECT_EQ(out[k].qty, qtys[k]);
        EXPECT_EQ(out[k].price, prices[k]);
        EXPECT_EQ(ev_rec[k], recs_of[k]);
        EXPECT(out[k].flags & LOB_FLAG_BATCH_END || k == 4);  /* record 5's first event is mid-batch */
    }
    EXPECT_EQ(res.note_count[LOB_DBN_UNKNOWN_CANCEL], 2);
    EXPECT_EQ(res.notes[LOB_DBN_UNKNOWN_CANCEL][0].record, 1);
    EXPECT_EQ(res.notes[LOB_DBN_UNKNOWN_CANCEL][1].record, 9);
    EXPECT_EQ(res.note_count[LOB_DBN_CANCEL_EXCEEDS], 1);
    EXPECT_EQ(res.notes[LOB_DBN_CANCEL_EXCEEDS][0].b, 7);
    EXPECT_EQ(res.notes[LOB_DBN_CANCEL_EXCEEDS][0].c, 3);
    EXPECT_EQ(res.note_count[LOB_DBN_UNKNOWN_MODIFY], 1);
    EXPECT_EQ(res.note_count[LOB_DBN_DUPLICATE_ADD], 1);
    EXPECT_EQ(res.note_count[LOB_DBN_TRADE_NO_PRICE], 1);
    EXPECT_EQ(res.note_count[LOB_DBN_UNKNOWN_ACTION], 1);
    EXPECT_EQ(res.notes[LOB_DBN_UNKNOWN_ACTION][0].b, 'X');
    EXPECT_EQ(res.resting, 0);
    lob_dbn_mbo_free(t);
}

/* fills: EXECUTE, the C absorbed, the M of a fully executed order re-adds; batch end moved back
 * across a call boundary; an order book accepts every event. */
static void test_fills_and_calls(void) {
    lob_dbn_mbo *t;
    EXPECT_EQ(lob_dbn_mbo_new(&t, 1), LOB_OK);
    lob_book *book = NULL;
    EXPECT_EQ(lob_book_new(LOB_BOOK_L3, &book), LOB_OK);
    nrec = 0;
    put('A', 'A', 1, 100, 2, L);
    put('A', 'A', 2, 100, 4, L);
    put('T', 'B', 9, 100, 3, 0);
    put('F', 'A', 1, 100, 2, 0);
    put('F', 'A', 2, 100, 1, 0);
    put('M', 'A', 2, 100, 3, 0);
    put('C', 'A', 1, 100, 2, L); /* emits nothing: its batch end goes to the previous call's event */
    int64_t n = run(t, 0, 6);
    EXPECT_EQ(n, 6);
    EXPECT_EQ(out[3].kind, LOB_EV_EXECUTE);
    EXPECT_EQ(out[4].kind, LOB_EV_EXECUTE);
    EXPECT_EQ(out[5].kind, LOB_EV_MODIFY);
    EXPECT_EQ(out[5].flags & LOB_FLAG_BATCH_END, 0);
    lob_apply_result ar;
    EXPECT_EQ(lob_book_apply(book, out, (size_t)n, 1, &ar), LOB_OK);
    n = run(t, 6, 7);
    EXPECT_EQ(n, 0);
    EXPECT_EQ(res.mark_prev, 1);
    EXPECT_EQ(res.counts[LOB_DBN_CANCEL_ABSORBED], 1);
    EXPECT_EQ(res.resting, 1);
    EXPECT_EQ(lob_dbn_mbo_finish(t, &res), LOB_OK);
    EXPECT_EQ(res.counts[LOB_DBN_FILLS_UNRECONCILED], 0);
    lob_book_free(book);
    lob_dbn_mbo_free(t);

    /* fills = ignore; an unreconciled fill at the batch end; a snapshot run without LAST */
    EXPECT_EQ(lob_dbn_mbo_new(&t, 1), LOB_OK);
    nrec = 0;
    put('A', 'B', 1, 100, 2, 32);
    put('A', 'B', 2, 100, 2, 32);
    put('F', 'B', 1, 100, 1, L);
    put('A', 'B', 3, 99, 1, L);
    n = run(t, 0, 2);
    EXPECT_EQ(n, 2);
    EXPECT_EQ(out[1].flags, LOB_FLAG_SNAPSHOT);
    n = run(t, 2, 4);
    EXPECT_EQ(res.mark_prev, 1); /* the snapshot run ended at the previous call's last event */
    EXPECT_EQ(res.counts[LOB_DBN_SNAPSHOT_RUNS_WITHOUT_LAST], 1);
    EXPECT_EQ(res.counts[LOB_DBN_FILLS_UNRECONCILED], 1);
    lob_dbn_mbo_free(t);

    EXPECT_EQ(lob_dbn_mbo_new(&t, 0), LOB_OK);
    nrec = 0;
    put('A', 'B', 1, 100, 2, L);
    put('F', 'B', 1, 100, 1, L);
    n = run(t, 0, 2);
    EXPECT_EQ(n, 1);
    EXPECT_EQ(res.counts[LOB_DBN_FILL_NOT_EMITTED], 1);
    lob_dbn_mbo_free(t);
}

/* many orders: the table grows and deletes with backward shifts keep every id findable */
static void test_many_orders(void) {
    lob_dbn_mbo *t;
    EXPECT_EQ(lob_dbn_mbo_new(&t, 1), LOB_OK);
    int bad = 0;
    for (uint64_t k = 0; k < 5000; k++) {
        nrec = 0;
        put('A', k & 1 ? 'B' : 'A', k * 7919, 100 + (int64_t)(k % 13), 1 + (uint32_t)(k % 5), L);
        if (k >= 3) put('C', 'B', (k - 3) * 7919, 0, 100, L); /* cancel exceeds: always removes */
        run(t, 0, nrec);
        if (res.note_count[LOB_DBN_UNKNOWN_CANCEL]) bad++;
    }
    EXPECT_EQ(bad, 0);
    EXPECT_EQ(res.resting, 3);
    lob_dbn_mbo_free(t);
}

/* random bytes as MBO records and as a stream for the scanner */
static void test_garbage(void) {
    lob_dbn_mbo *t;
    EXPECT_EQ(lob_dbn_mbo_new(&t, 1), LOB_OK);
    for (int round = 0; round < 200; round++) {
        for (size_t i = 0; i < MAXR; i++)
            for (int j = 0; j < 56; j++) recs[i].b[j] = (uint8_t)test_rand();
        /* a few repeated ids so that known-order paths run too */
        for (size_t i = 0; i < MAXR; i++) {
            uint64_t id = test_rand() % 8;
            memcpy(recs[i].b + 16, &id, 8);
            recs[i].b[38] = (uint8_t)"ACMRTFNX"[test_rand() % 8];
            recs[i].b[39] = (uint8_t)"BAN"[test_rand() % 3];
        }
        int rc = lob_dbn_mbo_run(t, (const uint8_t *)recs, MAXR, 56, out, ev_rec, 2 * MAXR, &res);
        EXPECT_EQ(rc, LOB_OK);
        EXPECT(res.n_events <= 2 * MAXR);
    }
    EXPECT_EQ(lob_dbn_mbo_finish(t, &res), LOB_OK);
    EXPECT_EQ(lob_dbn_mbo_run(t, (const uint8_t *)recs, MAXR, 56, out, ev_rec, 2 * MAXR - 1, &res), LOB_ERR_CAPACITY);
    EXPECT_EQ(lob_dbn_mbo_run(t, (const uint8_t *)recs, 1, 40, out, ev_rec, 2, &res), LOB_ERR_INVALID_ARG);
    EXPECT_EQ(lob_dbn_mbo_run(NULL, (const uint8_t *)recs, 1, 56, out, ev_rec, 2, &res), LOB_ERR_INVALID_ARG);
    EXPECT_EQ(lob_dbn_mbo_new(NULL, 1), LOB_ERR_INVALID_ARG);
    lob_dbn_mbo_free(t);
    lob_dbn_mbo_free(NULL);

    int64_t offs[600];
    size_t n, used;
    for (int round = 0; round < 2000; round++) {
        size_t len = (size_t)(test_rand() % 600);
        uint8_t *buf = malloc(len ? len : 1);
        for (size_t i = 0; i < len; i++) buf[i] = (uint8_t)test_rand();
        int rc = lob_dbn_scan(buf, len, offs, 600, &n, &used);
        EXPECT(rc == LOB_OK || rc == LOB_ERR_CORRUPT);
        EXPECT(used <= len);
        for (size_t k = 0; k < n; k++) EXPECT((size_t)offs[k] + (size_t)buf[offs[k]] * 4 <= len);
        free(buf);
    }
    uint8_t ok[] = {4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5, 1};
    EXPECT_EQ(lob_dbn_scan(ok, sizeof ok, offs, 10, &n, &used), LOB_OK);
    EXPECT_EQ(n, 1);
    EXPECT_EQ(used, 16); /* the second record (20 bytes) is incomplete */
    uint8_t bad[] = {4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3, 1, 0, 0};
    EXPECT_EQ(lob_dbn_scan(bad, sizeof bad, offs, 10, &n, &used), LOB_ERR_CORRUPT);
    EXPECT_EQ(n, 1);
    EXPECT_EQ(used, 16);
    EXPECT_EQ(lob_dbn_scan(NULL, 0, offs, 10, &n, &used), LOB_OK);
    EXPECT_EQ(n, 0);
}

int main(void) {
    test_actions_exact();
    test_fills_and_calls();
    test_many_orders();
    test_garbage();
    return report();
}
