/* C tests of the Kraken line parser, book and checksum (csrc/kraken.c) under ASan/UBSan: snapshot,
 * updates, republished entries, depth, the CRC32 of the top 10 (against the standard check value),
 * mismatches, other pairs' lines, lines left to Python (garbage, truncations, huge numbers, too many
 * decimals, random bytes), full buffers, the scan. */
#include <stdlib.h>
#include <string.h>

#include "../kraken.h"
#include "expect.h"

#define MAXE 4096
#define MAXM 256
static kr_msg msgs[MAXM];
static lob_event evs[MAXE];
static kr_note notes[16];

static void setup(kr_parser *p) {
    memset(p, 0, sizeof *p);
    EXPECT_EQ(kr_init(p), 0);
    p->px_mant = 1, p->px_exp = -1, p->qty_mant = 1, p->qty_exp = -1; /* tick 0.1, lot 0.1 */
    strcpy(p->tail, "\"XX/YY\"]");
    p->tail_len = (int32_t)strlen(p->tail);
}

static int parse(kr_parser *p, const char *t, size_t max_ev) {
    p->pos = 0;
    return kr_parse(p, t, strlen(t), msgs, MAXM, evs, max_ev, notes, 16);
}

/* "12" "34" "56" "789": CRC32("123456789") = 0xCBF43926 = 3421780262 */
static const char *CAP =
    "wss://ws.kraken.com <-> 1000.0\n"
    "1000.5: {\"event\":\"heartbeat\"}\n"
    "1001.25: [7,{\"as\":[[\"1.2\",\"3.4\",\"1000.1\"]],\"bs\":[[\"5.6\",\"789\",\"1000.3\"]]},\"book-2\",\"XX/YY\"]\n"
    "1001.5: [7,{\"as\":[[\"9.9\",\"1.0\",\"1001.0\"]]},\"book-2\",\"ZZ/YY\"]\n"
    "1002.000000001: [7,{\"a\":[[\"1.1\",\"0.5\",\"1001.9\"],[\"1.3\",\"1\",\"1002.5\",\"r\"]],\"c\":\"1\"},\"book-2\",\"XX/YY\"]\n"
    "1003.5: [7,{\"a\":[[\"1.1\",\"0.0\",\"1003.1\"],[\"1.3\",\"0\",\"1003.2\"]]},{\"b\":[[\"5.7\",\"0.0\",\"1003.0\"]],\"c\":\"3421780262\"},\"book-2\",\"XX/YY\"]\n"
    "\n";

static void test_capture(void) {
    kr_parser p;
    setup(&p);
    EXPECT_EQ(parse(&p, CAP, MAXE), KR_END);
    EXPECT_EQ(p.line, 7);
    EXPECT_EQ(p.capture_metadata_lines, 1);
    EXPECT_EQ(p.event_messages, 1);
    EXPECT_EQ(p.other_lines_skipped, 1);
    EXPECT_EQ(p.blank_lines, 1);
    EXPECT_EQ(p.n_msgs, 3);
    EXPECT_EQ(p.depth0, 2);
    EXPECT_EQ(msgs[0].n_ev, 3);
    EXPECT_EQ(msgs[0].tl, 1001250000000LL);
    EXPECT_EQ(msgs[0].tx, 1000300000000LL);
    EXPECT_EQ(evs[0].kind, LOB_EV_CLEAR);
    EXPECT_EQ(evs[1].price, 12);
    EXPECT_EQ(evs[1].side, LOB_SIDE_ASK);
    EXPECT_EQ(evs[2].qty, 7890);
    EXPECT_EQ(evs[2].flags, LOB_FLAG_SNAPSHOT | LOB_FLAG_BATCH_END);
    /* asks 1.1, 1.2, 1.3 at depth 2: 1.3 dropped; the republished time is not ts_exch */
    EXPECT_EQ(msgs[1].n_ev, 3);
    EXPECT_EQ(msgs[1].tx, 1001900000000LL);
    EXPECT_EQ(msgs[1].tl, 1002000000001LL);
    EXPECT_EQ(evs[5].price, 13);
    EXPECT_EQ(evs[5].qty, 0);
    EXPECT_EQ(evs[5].flags, LOB_FLAG_BATCH_END);
    EXPECT_EQ(p.levels_truncated, 1);
    EXPECT_EQ(p.republished_entries, 1);
    /* line 5's checksum "1" is wrong; line 6 brings the book back to 12/34 56/789: the check value */
    EXPECT_EQ(p.checksums_checked, 2);
    EXPECT_EQ(p.n_notes, 1);
    EXPECT_EQ(notes[0].line, 5);
    EXPECT_EQ(notes[0].theirs, 1);
    EXPECT_EQ(kr_checksum(&p), 3421780262u);
    EXPECT_EQ(p.deletes_of_absent_levels, 2);
    EXPECT_EQ(msgs[2].n_ev, 3);
    kr_free(&p);
    kr_free(&p);
}

static void test_apply_full_scan(void) {
    kr_parser p;
    setup(&p);
    kr_level lv[2] = {{12, 34, -1, 12, 0, 34, 0}, {56, 7890, 1, 56, 0, 789, 0}};
    EXPECT_EQ(kr_apply(&p, 1, 10, -1, 5, 6, 1, lv, 2, msgs, MAXM, evs, MAXE, notes, 16), KR_END);
    EXPECT_EQ(kr_checksum(&p), 3421780262u);
    EXPECT_EQ(kr_apply(&p, 0, 10, 3421780262LL, 5, 6, 2, lv, 2, msgs, MAXM, evs, p.n_ev + 4, notes, 16), KR_FULL);
    EXPECT_EQ(kr_apply(&p, 0, 10, 3421780262LL, 5, 6, 2, lv, 2, msgs, MAXM, evs, MAXE, notes, 16), KR_END);
    EXPECT_EQ(p.n_notes, 0);
    EXPECT_EQ(p.checksums_checked, 1);
    kr_free(&p);
    setup(&p);
    EXPECT_EQ(parse(&p, CAP, 2), KR_FULL);
    EXPECT_EQ(p.line, 2);
    kr_free(&p);
    setup(&p);
    p.scan = 1;
    p.block_lines = 2;
    EXPECT_EQ(parse(&p, CAP, 0), KR_BLOCK);
    EXPECT_EQ(p.line, 3);
    EXPECT_EQ(p.px_wire, 1);
    EXPECT_EQ(p.qty_wire, 1);
    EXPECT_EQ(p.qty_sig, 1);
    EXPECT_EQ(p.n_ev, 0);
    kr_free(&p);
}

static void test_slow(void) {
    static const char *slow[] = {
        "garbage\n", "12.5 [1]\n", "12.5: [7,{\"a\":[[\"1.0\",\"1.0\",\"1.0\"]]},\"book-10\",\"XX/YY\"\n",
        "12.5: [7,{\"a\":[[\"1.0\",\"1.0\"]]},\"book-10\",\"XX/YY\"]\n",
        "12.5: [7,{\"a\":[[\"1e3\",\"1.0\",\"1.0\"]]},\"book-10\",\"XX/YY\"]\n",
        "12.5: [7,{\"a\":[[1.5,\"1.0\",\"1.0\"]]},\"book-10\",\"XX/YY\"]\n",
        "12.5: [7,{\"a\":[[\"1.5\",\"-1.0\",\"1.0\"]]},\"book-10\",\"XX/YY\"]\n",
        "12.5: [7,{\"a\":[[\"1.5\",\"1.0\",\"x\"]]},\"book-10\",\"XX/YY\"]\n",
        "12.5: [7,{\"a\":[[\"1.5\",\"1.0\",\"1.0\"]],\"c\":123},\"book-10\",\"XX/YY\"]\n",
        "12.5: [7,{\"z\":[]},\"book-10\",\"XX/YY\"]\n", "12.5: [7,{\"a\":[]},\"book-x\",\"XX/YY\"]\n",
        "12.5: [7,\"a\",\"book-10\",\"XX/YY\"]\n", "12.5: [7,{\"a\":[[\"1.55\",\"1.0\",\"1.0\"]]},\"book-10\",\"XX/YY\"]\n",
        "12.5: [7,{\"a\":[[\"1.5\",\"1.0000000000000000001\",\"1.0\"]]},\"book-10\",\"XX/YY\"]\n",
        "12.5: [7,{\"a\":[[\"99999999999999999999\",\"1.0\",\"1.0\"]]},\"book-10\",\"XX/YY\"]\n",
        "12.5: [7,{\"a\":[[\"1.5\",\"1.0\",\"123456789012.0\"]]},\"book-10\",\"XX/YY\"]\n",
        "12.5: [7,{\"a\":[[\"1.5\",\"1.0\",\"1.0\",\"x\"]]},\"book-10\",\"XX/YY\"]\n",
        "12.5: [7,{\"a\":[],\"a\":[]},\"book-10\",\"XX/YY\"]\n",
        "12.5: [7,{\"as\":[]},{\"b\":[]},\"book-10\",\"XX/YY\"]\n",
        "12.5: [7,{\"a\":[[\"1.5\",\"1.0\",\"1.0\"]],\"c\":\"99999999999999999999\"},\"book-10\",\"XX/YY\"]\n",
        "12.5: [7,{\"a\":[[\"0\",\"1.0\",\"1.0\"]]},\"book-10\",\"XX/YY\"]\n",
        "12.5: [7,{\"a\":[]},\"ticker\",\"XX/YY\"]\n", "12.5: {\"event\":\"systemStatus\"}\n",
        "99999999999.5: [7,{\"a\":[]},\"book-10\",\"XX/YY\"]\n",
    };
    for (size_t i = 0; i < sizeof slow / sizeof *slow; i++) {
        kr_parser p;
        setup(&p);
        int r = parse(&p, slow[i], MAXE);
        if (r != KR_SLOW) fprintf(stderr, "not slow: %s", slow[i]);
        EXPECT_EQ(r, KR_SLOW);
        EXPECT_EQ(p.pos, 0);
        EXPECT_EQ(p.n_ev, 0);
        kr_free(&p);
    }
}

static void test_garbage(void) {
    size_t n = strlen(CAP);
    char *buf = malloc(n);
    for (size_t cut = 0; cut <= n; cut++) {
        kr_parser p;
        setup(&p);
        memcpy(buf, CAP, cut);
        int r = kr_parse(&p, buf, cut, msgs, MAXM, evs, MAXE, notes, 16);
        EXPECT(r == KR_END || r == KR_SLOW);
        kr_free(&p);
    }
    for (int k = 0; k < 20000; k++) {
        kr_parser p;
        setup(&p);
        size_t len = test_rand() % n;
        if (k % 2) {
            for (size_t i = 0; i < len; i++) buf[i] = (char)test_rand();
        } else {
            memcpy(buf, CAP, len);
            for (int j = 0; j < 3; j++) buf[test_rand() % (len ? len : 1)] = (char)test_rand();
        }
        for (int guard = 0; guard < 100; guard++) {
            int r = kr_parse(&p, buf, len, msgs, MAXM, evs, MAXE, notes, 16);
            EXPECT(r == KR_END || r == KR_SLOW);
            if (r != KR_SLOW) break;
            const char *nl = memchr(buf + p.pos, '\n', len - (size_t)p.pos);
            p.pos = nl ? nl - buf + 1 : (int64_t)len;
            p.line++;
        }
        kr_free(&p);
    }
    free(buf);
}

/* The pair's lines at another depth (a second subscription, "book-10" after "book-1000"): the C parser leaves
 * them to Python (which skips them), and kr_apply reserves room for the truncation of the levels beyond a
 * smaller depth: it wrote 2 x 40 SET_LEVEL 0 past an output buffer sized for the message's 2n + 1. */
static void test_depth_change(void) {
    char *t = malloc(1 << 16);
    size_t n = 0, n1;
    n += (size_t)sprintf(t + n, "1001.25: [7,{\"as\":[");
    for (int i = 0; i < 50; i++) n += (size_t)sprintf(t + n, "%s[\"%d.0\",\"1.0\",\"1000.1\"]", i ? "," : "", 100 + i);
    n += (size_t)sprintf(t + n, "],\"bs\":[");
    for (int i = 0; i < 50; i++) n += (size_t)sprintf(t + n, "%s[\"%d.0\",\"1.0\",\"1000.1\"]", i ? "," : "", 99 - i);
    n += (size_t)sprintf(t + n, "]},\"book-1000\",\"XX/YY\"]\n");
    n1 = n;
    n += (size_t)sprintf(t + n, "1002.5: [7,{\"a\":[[\"100.0\",\"2.0\",\"1001.0\"]]},\"book-10\",\"XX/YY\"]\n");
    kr_parser p;
    setup(&p);
    EXPECT_EQ(kr_parse(&p, t, n1, msgs, MAXM, evs, MAXE, notes, 16), KR_END);
    EXPECT_EQ(p.n_ev, 101);
    EXPECT_EQ(p.depth0, 1000);
    p.n_ev = p.n_msgs = 0;
    lob_event *ev = malloc(3 * sizeof *ev); /* room for the update's 2n + 1 events, not for a truncation */
    EXPECT_EQ(kr_parse(&p, t, n, msgs, MAXM, ev, 3, notes, 16), KR_SLOW);
    EXPECT_EQ(p.pos, (int64_t)n1);
    kr_level lv = {1000, 20, -1, 1000, 0, 20, 0};
    EXPECT_EQ(kr_apply(&p, 0, 10, -1, 5, 6, 2, &lv, 1, msgs, MAXM, ev, 3, notes, 16), KR_FULL);
    EXPECT_EQ(p.n_ev, 0);
    EXPECT_EQ(kr_apply(&p, 0, 10, -1, 5, 6, 2, &lv, 1, msgs, MAXM, evs, MAXE, notes, 16), KR_END);
    EXPECT_EQ(p.n_ev, 81); /* the update and 40 levels dropped on each side */
    EXPECT_EQ(p.levels_truncated, 80);
    free(ev);
    free(t);
    kr_free(&p);
}

int main(void) {
    test_depth_change();
    test_capture();
    test_apply_full_scan();
    test_slow();
    test_garbage();
    return report();
}
