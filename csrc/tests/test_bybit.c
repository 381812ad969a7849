/* C tests of the Bybit line parser and book (csrc/bybit.c) under ASan/UBSan: messages applied to the
 * book (snapshot, delta, deletes, depth, gaps, the snapshot check), lines left to Python (garbage,
 * truncations, huge numbers, too many decimals, random bytes), full buffers, the scan, bb_apply. */
#include <stdlib.h>
#include <string.h>

#include "../bybit.h"
#include "expect.h"

#define MAXE 4096
#define MAXM 256
static bb_msg msgs[MAXM];
static lob_event evs[MAXE];
static bb_note notes[16];

static void setup(bb_parser *p, int depth) {
    memset(p, 0, sizeof *p);
    EXPECT_EQ(bb_init(p), 0);
    p->px_mant = 1, p->px_exp = -1, p->qty_mant = 1, p->qty_exp = 0; /* tick 0.1, lot 1 */
    p->local = 0;
    snprintf(p->topic, sizeof p->topic, "orderbook.%d.BTCUSDT", depth);
    p->topic_len = (int32_t)strlen(p->topic);
    p->sym_off = p->topic_len - 7;
    p->depth = depth;
}

static int parse(bb_parser *p, const char *t, size_t max_ev) {
    p->pos = 0;
    return bb_parse(p, t, strlen(t), msgs, MAXM, evs, max_ev, notes, 16);
}

#define SNAP(u, b, a) "{\"topic\":\"orderbook.2.BTCUSDT\",\"type\":\"snapshot\",\"ts\":1700000000000,\"data\":{\"s\":\"BTCUSDT\",\"b\":" b ",\"a\":" a ",\"u\":" #u ",\"seq\":7},\"cts\":1699999999999}\n"
#define DELTA(u, b, a) "{\"topic\":\"orderbook.2.BTCUSDT\",\"type\":\"delta\",\"ts\":1700000000100,\"data\":{\"s\":\"BTCUSDT\",\"b\":" b ",\"a\":" a ",\"u\":" #u ",\"seq\":8}}\n"

static void test_book(void) {
    bb_parser p;
    setup(&p, 2);
    const char *t = SNAP(10, "[[\"100.0\",\"1\"],[\"99.5\",\"2\"]]", "[[\"100.5\",\"3\"]]")
        DELTA(11, "[[\"100.0\",\"0\"],[\"98\",\"1\"],[\"99.9\",\"4\"]]", "[]")
        DELTA(13, "[]", "[[\"101\",\"0\"]]")
        SNAP(13, "[[\"99.9\",\"4\"],[\"99.5\",\"2\"]]", "[[\"100.5\",\"3\"]]")
        SNAP(13, "[[\"99.9\",\"5\"]]", "[[\"100.5\",\"3\"]]");
    EXPECT_EQ(parse(&p, t, MAXE), BB_END);
    EXPECT_EQ(p.line, 5);
    EXPECT_EQ(p.n_msgs, 5);
    /* snapshot: CLEAR + 3 */
    EXPECT_EQ(msgs[0].n_ev, 4);
    EXPECT_EQ(msgs[0].tx, 1699999999999LL * 1000000);
    EXPECT_EQ(msgs[0].tl, -1);
    EXPECT_EQ(evs[0].kind, LOB_EV_CLEAR);
    EXPECT_EQ(evs[1].price, 1000);
    EXPECT_EQ(evs[3].flags, LOB_FLAG_SNAPSHOT | LOB_FLAG_BATCH_END);
    /* delta: 3 levels + 1 truncated (98 is the worst of 3 bids at depth 2) */
    EXPECT_EQ(msgs[1].n_ev, 4);
    EXPECT_EQ(msgs[1].tx, 1700000000100LL * 1000000);
    EXPECT_EQ(evs[7].price, 980);
    EXPECT_EQ(evs[7].qty, 0);
    EXPECT_EQ(evs[7].flags, LOB_FLAG_BATCH_END);
    EXPECT_EQ(p.levels_truncated, 1);
    EXPECT_EQ(p.deletes_of_absent_levels, 1);
    /* the gap 11 -> 13, then a matching and a differing snapshot at 13 */
    EXPECT_EQ(p.n_notes, 2);
    EXPECT_EQ(notes[0].kind, BB_NOTE_GAP);
    EXPECT_EQ(notes[0].a, 13);
    EXPECT_EQ(notes[0].b, 11);
    EXPECT_EQ(notes[1].kind, BB_NOTE_MISMATCH);
    EXPECT_EQ(notes[1].a, 1);
    EXPECT_EQ(notes[1].c, 2);
    EXPECT_EQ(notes[1].line, 5);
    EXPECT_EQ(p.snapshots_checked, 2);
    EXPECT_EQ(p.messages, 5);
    bb_free(&p);
    bb_free(&p);
}

static void test_full_and_apply(void) {
    bb_parser p;
    setup(&p, 2);
    const char *t = SNAP(1, "[[\"100.0\",\"1\"],[\"99.5\",\"2\"]]", "[[\"100.5\",\"3\"]]");
    EXPECT_EQ(parse(&p, t, 3), BB_FULL);
    EXPECT_EQ(p.n_ev, 0);
    EXPECT_EQ(p.messages, 0);
    EXPECT_EQ(parse(&p, t, MAXE), BB_END);
    bb_level lv[2] = {{990, 5, 1}, {1010, 0, -1}};
    EXPECT_EQ(bb_apply(&p, 0, 2, 5, 6, 2, lv, 2, msgs, MAXM, evs, MAXE, notes, 16), BB_END);
    EXPECT_EQ(p.n_msgs, 2);
    EXPECT_EQ(msgs[1].tl, 6);
    EXPECT_EQ(p.deletes_of_absent_levels, 1);
    EXPECT_EQ(bb_apply(&p, 0, 3, 5, 6, 3, lv, 2, msgs, MAXM, evs, p.n_ev + 2, notes, 16), BB_FULL);
    bb_free(&p);
}

static void test_slow(void) {
    static const char *slow[] = {
        "{not json\n", "[1, 2]\n", "garbage line\n",
        DELTA(-1, "[]", "[]"), DELTA("1", "[]", "[]"),
        DELTA(1, "[[\"1e2\",\"1\"]]", "[]"), DELTA(1, "[[\"-1\",\"1\"]]", "[]"), DELTA(1, "[[\"0\",\"1\"]]", "[]"),
        DELTA(1, "[[\"100.05\",\"1\"]]", "[]"), DELTA(1, "[[\"100\",\"1.5\"]]", "[]"),
        DELTA(1, "[[\"100\",\"1\",\"2\"]]", "[]"), DELTA(1, "[[\"100.00000000000000000001\",\"1\"]]", "[]"),
        DELTA(1, "[[\"1234567890123456789\",\"1\"]]", "[]"), DELTA(1, "[[\"100\",\"99999999999999999999\"]]", "[]"),
        DELTA(99999999999999999999, "[]", "[]"), DELTA(1, "[[\"1\\u0030\",\"1\"]]", "[]"),
        "{\"topic\":\"orderbook.2.ETHUSDT\",\"type\":\"delta\",\"ts\":1,\"data\":{\"u\":1}}\n",
        "{\"topic\":\"orderbook.2.BTCUSDT\",\"type\":\"update\",\"ts\":1,\"data\":{\"u\":1}}\n",
        "{\"topic\":\"orderbook.2.BTCUSDT\",\"type\":\"delta\",\"ts\":1,\"data\":{\"u\":1,\"u\":2}}\n",
        "{\"topic\":\"orderbook.2.BTCUSDT\",\"type\":\"delta\",\"ts\":1.5,\"data\":{\"u\":1}}\n",
        "{\"topic\":\"orderbook.2.BTCUSDT\",\"type\":\"delta\",\"ts\":1,\"data\":{\"s\":\"X\",\"u\":1}}\n",
        "{\"topic\":\"orderbook.2.BTCUSDT\",\"type\":\"delta\",\"ts\":1,\"data\":{\"a\":[],\"b\":[],\"u\":1}}\n",
        "{\"success\":true}\n", "1700000000.5: {}\n",
    };
    for (size_t i = 0; i < sizeof slow / sizeof *slow; i++) {
        bb_parser p;
        setup(&p, 2);
        int r = parse(&p, slow[i], MAXE);
        if (r != BB_SLOW) fprintf(stderr, "not slow: %s", slow[i]);
        EXPECT_EQ(r, BB_SLOW);
        EXPECT_EQ(p.pos, 0);
        EXPECT_EQ(p.n_ev, 0);
        EXPECT_EQ(p.messages, 0);
        bb_free(&p);
    }
    /* local receive times: taken when the parser knows the lines carry them */
    bb_parser p;
    setup(&p, 2);
    p.local = 1;
    const char *t = "1700000000123456789 {\"topic\":\"orderbook.2.BTCUSDT\",\"type\":\"delta\",\"ts\":1,\"data\":{\"u\":1,\"b\":[[\"1\",\"1\"]]}}\n"
                    "1700000000.25: {\"topic\":\"orderbook.2.BTCUSDT\",\"type\":\"delta\",\"ts\":1,\"data\":{\"u\":2,\"b\":[[\"1\",\"2\"]]}}\n"
                    "  \r\n";
    EXPECT_EQ(parse(&p, t, MAXE), BB_END);
    EXPECT_EQ(msgs[0].tl, 1700000000123456789LL);
    EXPECT_EQ(msgs[1].tl, 1700000000250000000LL);
    EXPECT_EQ(p.n_pre, 2);
    EXPECT_EQ(p.first_pre, 1);
    EXPECT_EQ(evs[0].flags, LOB_FLAG_PRE_SNAPSHOT | LOB_FLAG_BATCH_END);
    EXPECT_EQ(p.blank_lines, 1);
    EXPECT_EQ(parse(&p, DELTA(3, "[]", "[]"), MAXE), BB_SLOW); /* no local time now */
    bb_free(&p);
}

static void test_scan(void) {
    bb_parser p;
    setup(&p, 2);
    p.scan = 1;
    p.block_msgs = 2;
    const char *t = DELTA(1, "[[\"1.250\",\"3\"]]", "[]") SNAP(2, "[[\"1.5\",\"0.001\"]]", "[]") DELTA(3, "[]", "[]")
        SNAP(4, "[]", "[]");
    EXPECT_EQ(parse(&p, t, 0), BB_BLOCK);
    EXPECT_EQ(p.line, 2);
    EXPECT_EQ(p.px_wire, 3);
    EXPECT_EQ(p.px_sig, 2);
    EXPECT_EQ(p.qty_wire, 3);
    EXPECT_EQ(p.qty_sig, 3);
    EXPECT_EQ(p.n_ev, 0);
    bb_free(&p);
}

static void test_garbage(void) {
    const char *t = SNAP(10, "[[\"100.0\",\"1\"],[\"99.5\",\"2\"]]", "[[\"100.5\",\"3\"]]")
        DELTA(11, "[[\"100.0\",\"0\"],[\"98\",\"1\"]]", "[[\"101\",\"4\"]]");
    size_t n = strlen(t);
    char *buf = malloc(n);
    for (size_t cut = 0; cut <= n; cut++) { /* every truncation, in an exactly sized heap buffer */
        bb_parser p;
        setup(&p, 2);
        memcpy(buf, t, cut);
        p.pos = 0;
        int r = bb_parse(&p, buf, cut, msgs, MAXM, evs, MAXE, notes, 16);
        EXPECT(r == BB_END || r == BB_SLOW);
        EXPECT(p.pos <= (int64_t)cut);
        bb_free(&p);
    }
    for (int k = 0; k < 20000; k++) { /* random bytes and random mutations of a good capture */
        bb_parser p;
        setup(&p, 2);
        size_t len = test_rand() % n;
        if (k % 2) {
            for (size_t i = 0; i < len; i++) buf[i] = (char)test_rand();
        } else {
            memcpy(buf, t, len);
            for (int j = 0; j < 3; j++) buf[test_rand() % (len + 1 > 1 ? len : 1)] = (char)test_rand();
        }
        p.pos = 0;
        for (int guard = 0; guard < 100; guard++) {
            int r = bb_parse(&p, buf, len, msgs, MAXM, evs, MAXE, notes, 16);
            EXPECT(r == BB_END || r == BB_SLOW);
            if (r != BB_SLOW) break;
            const char *nl = memchr(buf + p.pos, '\n', len - (size_t)p.pos);
            p.pos = nl ? nl - buf + 1 : (int64_t)len;
            p.line++;
        }
        EXPECT(p.n_ev <= MAXE);
        bb_free(&p);
    }
    free(buf);
}

int main(void) {
    test_book();
    test_full_and_apply();
    test_slow();
    test_scan();
    test_garbage();
    return report();
}
