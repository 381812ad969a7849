/*
 * test_binance.c - C unit tests of the Binance line parser (binance.c), run under
 * AddressSanitizer and UBSan by `make -C csrc test`.
 *
 * Good lines of every kind with hand-derived records and events; then lines the
 * fast path must hand to Python (BN_SLOW): garbage, every truncation of a good
 * line, huge numbers, too many decimals, values off the tick grid, escapes,
 * duplicate keys, deep nesting; random bytes and byte flips must never crash or
 * read outside the buffer (each input lives in a heap block of its exact size).
 */
#include "binance.h"
#include "expect.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAXM 16
#define MAXE 64

static bn_msg msgs[MAXM];
static lob_event evs[MAXE];

/* tick 0.1, lot 0.001, symbol BTCUSDT */
static void setup(bn_parser *p) {
    memset(p, 0, sizeof *p);
    p->px_mant = 1;
    p->px_exp = -1;
    p->qty_mant = 1;
    p->qty_exp = -3;
    strcpy(p->symbol, "BTCUSDT");
    p->symbol_len = 7;
}

/* Parse text held in a heap block of exactly its length; -> result code. */
static int parse_n(bn_parser *p, const char *text, size_t n, size_t max_ev) {
    char *buf = malloc(n ? n : 1);
    memcpy(buf, text, n);
    p->pos = 0;
    int rc = bn_parse(p, buf, n, msgs, MAXM, evs, max_ev);
    free(buf);
    return rc;
}

static int parse(bn_parser *p, const char *text) { return parse_n(p, text, strlen(text), MAXE); }

/* A single line: BN_END with one message, or BN_SLOW. */
static int one(const char *text) {
    bn_parser p;
    setup(&p);
    int rc = parse(&p, text);
    if (rc == BN_END) EXPECT_EQ(p.n_msgs, 1);
    return rc;
}

static const char *DEPTH =
    "1723161255030314667 {\"stream\":\"btcusdt@depth@0ms\",\"data\":{\"e\":\"depthUpdate\",\"E\":1723161256299,"
    "\"T\":1723161256298,\"s\":\"BTCUSDT\",\"U\":5123107832006,\"u\":5123107837557,\"pu\":5123107831937,"
    "\"b\":[[\"58710.20\",\"0.014\"],[\"61496.50\",\"0.000\"]],\"a\":[[\"61800.30\",\"1.5\"]]}}";

static void test_depth(void) {
    bn_parser p;
    setup(&p);
    EXPECT_EQ(parse(&p, DEPTH), BN_END);
    EXPECT_EQ(p.n_msgs, 1);
    EXPECT_EQ(p.n_ev, 3);
    EXPECT_EQ(p.line, 1);
    bn_msg *m = &msgs[0];
    EXPECT_EQ(m->kind, BN_DEPTH);
    EXPECT_EQ(m->line, 1);
    EXPECT(m->ts_local == 1723161255030314667LL);
    EXPECT(m->ts == 1723161256299LL * 1000000);
    EXPECT(m->U == 5123107832006LL && m->u == 5123107837557LL && m->pu == 5123107831937LL);
    EXPECT_EQ(m->has_pu, 1);
    EXPECT_EQ(m->ev_start, 0);
    EXPECT_EQ(m->n_ev, 3);
    EXPECT_EQ(evs[0].price, 587102);
    EXPECT_EQ(evs[0].qty, 14);
    EXPECT_EQ(evs[0].side, 1);
    EXPECT_EQ(evs[1].price, 614965);
    EXPECT_EQ(evs[1].qty, 0);
    EXPECT_EQ(evs[2].price, 618003);
    EXPECT_EQ(evs[2].qty, 1500);
    EXPECT_EQ(evs[2].side, -1);
    for (int i = 0; i < 3; i++) {
        EXPECT_EQ(evs[i].kind, LOB_EV_SET_LEVEL);
        EXPECT(evs[i].ts_exch == m->ts && evs[i].ts_local == m->ts_local);
        EXPECT_EQ(evs[i].order_id, 0);
        EXPECT_EQ(evs[i].flags, i == 2 ? LOB_FLAG_BATCH_END : 0);
    }
}

static void test_asks_before_bids_and_spaces(void) {
    bn_parser p;
    setup(&p);
    const char *s = "5 { \"e\" : \"depthUpdate\", \"E\":1, \"U\":1, \"u\":2, \"a\":[[\"2.0\",\"1\"],[\"2.1\",\"2\"]], "
                    "\"b\" : [ [ \"1.0\" , \"3\" ] ] }  \r\n";
    EXPECT_EQ(parse(&p, s), BN_END);
    EXPECT_EQ(p.n_ev, 3);
    EXPECT_EQ(msgs[0].has_pu, 0);
    EXPECT_EQ(msgs[0].pu, -1);
    EXPECT(evs[0].side == 1 && evs[0].price == 10 && evs[0].qty == 3000);  /* bids first */
    EXPECT(evs[1].side == -1 && evs[1].price == 20);
    EXPECT(evs[2].side == -1 && evs[2].price == 21 && evs[2].flags == LOB_FLAG_BATCH_END);
}

static void test_snapshot_trade_ticker_blank(void) {
    bn_parser p;
    setup(&p);
    const char *s =
        "10 {\"lastUpdateId\":100,\"E\":1003,\"bids\":[[\"100.0\",\"2.000\"],[\"99.5\",\"0.000\"]],"
        "\"asks\":[[\"101.0\",\"3.000\"]]}\n"
        "   \t\n"
        "11 {\"stream\":\"btcusdt@bookTicker\",\"data\":{this is not even read}}\n"
        "12 {\"stream\":\"btcusdt@trade\",\"data\":{\"e\":\"trade\",\"E\":1005,\"T\":1004,\"s\":\"btcusdt\","
        "\"p\":\"101.5\",\"q\":\"0.100\",\"m\":true}}\n"
        "13 {\"stream\":\"btcusdt@aggTrade\",\"data\":{\"E\":1006,\"p\":\"101.5\",\"q\":\"0.1\",\"m\":false}}";
    EXPECT_EQ(parse(&p, s), BN_END);
    EXPECT_EQ(p.line, 5);
    EXPECT_EQ(p.blank, 1);
    EXPECT_EQ(p.ticker, 1);
    EXPECT_EQ(p.n_msgs, 3);
    EXPECT_EQ(msgs[0].kind, BN_SNAPSHOT);
    EXPECT_EQ(msgs[0].u, 100);
    EXPECT(msgs[0].ts == 1003LL * 1000000);
    EXPECT_EQ(msgs[0].n_ev, 3); /* CLEAR + 2 levels, the zero one left out */
    EXPECT_EQ(msgs[0].n_zero, 1);
    EXPECT_EQ(evs[0].kind, LOB_EV_CLEAR);
    EXPECT_EQ(evs[0].flags, LOB_FLAG_SNAPSHOT);
    EXPECT(evs[1].price == 1000 && evs[1].side == 1 && evs[1].flags == LOB_FLAG_SNAPSHOT);
    EXPECT(evs[2].price == 1010 && evs[2].side == -1 && evs[2].flags == (LOB_FLAG_SNAPSHOT | LOB_FLAG_BATCH_END));
    EXPECT_EQ(msgs[1].kind, BN_TRADE);
    EXPECT_EQ(msgs[1].line, 4);
    EXPECT(msgs[1].ts == 1004LL * 1000000); /* T, not E */
    EXPECT(evs[3].kind == LOB_EV_TRADE && evs[3].side == -1 && evs[3].price == 1015 && evs[3].qty == 100);
    EXPECT(evs[3].flags == 0);
    EXPECT(msgs[2].ts == 1006LL * 1000000); /* no T: E */
    EXPECT(evs[4].side == 1);
}

static void test_symbols(void) {
    bn_parser p;
    setup(&p);
    const char *eth = "1 {\"e\":\"trade\",\"E\":1,\"s\":\"ETHUSDT\",\"p\":\"1.0\",\"q\":\"1\",\"m\":true}";
    EXPECT_EQ(parse(&p, eth), BN_SLOW); /* symbol inferred: another one is Python's error */
    p.symbol_filter = 1;
    EXPECT_EQ(parse(&p, eth), BN_END);
    EXPECT_EQ(p.other_symbol, 1);
    EXPECT_EQ(p.n_msgs, 0);
    p.symbol_len = 0; /* none known yet: Python learns it */
    EXPECT_EQ(parse(&p, eth), BN_SLOW);
    EXPECT_EQ(one("1 {\"e\":\"trade\",\"E\":1,\"s\":null,\"p\":\"1.0\",\"q\":\"1\",\"m\":true}"), BN_END);
}

static void test_slow_lines(void) {
    static const char *slow[] = {
        "", /* placeholder: blank handled separately */
        "1723161255030314667{\"e\":\"trade\"}",                      /* no space */
        " {\"e\":\"trade\",\"E\":1,\"p\":\"1.0\",\"q\":\"1\",\"m\":true}", /* empty timestamp */
        "17x {\"e\":\"trade\",\"E\":1,\"p\":\"1.0\",\"q\":\"1\",\"m\":true}",
        "9223372036854775808 {\"e\":\"trade\",\"E\":1,\"p\":\"1.0\",\"q\":\"1\",\"m\":true}", /* > int64 */
        "12345678901234567890 {\"e\":\"trade\",\"E\":1,\"p\":\"1.0\",\"q\":\"1\",\"m\":true}",
        "1 [1,2]",
        "1 {\"e\":\"trade\",\"E\":1,\"p\":\"1.0\",\"q\":\"1\",\"m\":true} x",       /* extra data */
        "1 {\"e\":\"trade\",\"E\":1,\"p\":\"1.0\",\"q\":\"1\",\"m\":\"yes\"}",      /* m not bool */
        "1 {\"e\":\"trade\",\"E\":1.0,\"p\":\"1.0\",\"q\":\"1\",\"m\":true}",       /* float time */
        "1 {\"e\":\"trade\",\"E\":1e3,\"p\":\"1.0\",\"q\":\"1\",\"m\":true}",
        "1 {\"e\":\"trade\",\"E\":01,\"p\":\"1.0\",\"q\":\"1\",\"m\":true}",        /* leading zero */
        "1 {\"e\":\"trade\",\"E\":-1,\"p\":\"1.0\",\"q\":\"1\",\"m\":true}",
        "1 {\"e\":\"trade\",\"E\":9223372036855,\"p\":\"1.0\",\"q\":\"1\",\"m\":true}", /* ns beyond int64 */
        "1 {\"e\":\"trade\",\"E\":99999999999999999999,\"p\":\"1.0\",\"q\":\"1\",\"m\":true}",
        "1 {\"e\":\"trade\",\"E\":1,\"p\":1.0,\"q\":\"1\",\"m\":true}",             /* number price */
        "1 {\"e\":\"trade\",\"E\":1,\"p\":\"1.05\",\"q\":\"1\",\"m\":true}",        /* off the tick */
        "1 {\"e\":\"trade\",\"E\":1,\"p\":\"1.0\",\"q\":\"0.0001\",\"m\":true}",    /* off the lot */
        "1 {\"e\":\"trade\",\"E\":1,\"p\":\"0.0\",\"q\":\"1\",\"m\":true}",         /* zero price */
        "1 {\"e\":\"trade\",\"E\":1,\"p\":\"1.0\",\"q\":\"0\",\"m\":true}",         /* zero trade size */
        "1 {\"e\":\"trade\",\"E\":1,\"p\":\"-1.0\",\"q\":\"1\",\"m\":true}",
        "1 {\"e\":\"trade\",\"E\":1,\"p\":\"1.\",\"q\":\"1\",\"m\":true}",
        "1 {\"e\":\"trade\",\"E\":1,\"p\":\".5\",\"q\":\"1\",\"m\":true}",
        "1 {\"e\":\"trade\",\"E\":1,\"p\":\"1e2\",\"q\":\"1\",\"m\":true}",
        "1 {\"e\":\"trade\",\"E\":1,\"p\":\"1234567890123456789\",\"q\":\"1\",\"m\":true}", /* 19 digits */
        "1 {\"e\":\"trade\",\"E\":1,\"p\":\"1.0000000000000000000\",\"q\":\"1\",\"m\":true}", /* 19 decimals */
        "1 {\"e\":\"trade\",\"E\":1,\"p\":\"999999999999999999\",\"q\":\"1\",\"m\":true}", /* ticks > int64 */
        "1 {\"e\":\"trade\",\"E\":1,\"p\":\"1.0\",\"p\":\"2.0\",\"q\":\"1\",\"m\":true}", /* duplicate key */
        "1 {\"e\":\"trade\",\"E\":1,\"E\":2,\"p\":\"1.0\",\"q\":\"1\",\"m\":true}",
        "1 {\"e\":\"trade\",\"E\":1,\"p\":\"1\\u002e0\",\"q\":\"1\",\"m\":true}",  /* escape */
        "1 {\"e\":\"trade\",\"E\":1,\"x\":\"\xc3\xa9\",\"p\":\"1.0\",\"q\":\"1\",\"m\":true}", /* non-ASCII */
        "1 {\"e\":\"trade\",\"E\":1,\"p\":\"1.0\",\"q\":\"1\",\"m\":true,}",        /* trailing comma */
        "1 {\"e\":\"trade\",\"E\":1,\"p\":\"1.0\",\"q\":\"1\",\"m\":true,\"x\":NaN}",
        "1 {\"e\":\"kline\",\"E\":1}",                                              /* unknown */
        "1 {\"stream\":\"btcusdt@kline_1m\",\"data\":{\"E\":1}}",
        "1 {\"stream\":\"btcusdt@depth\",\"data\":[1]}",
        "1 {\"stream\":\"btcusdt@depth\"}",
        "1 {\"data\":{},\"stream\":\"btcusdt@depth\"}",
        "1 {\"stream\":\"btcusdt@depth\",\"data\":{\"E\":1,\"U\":1,\"u\":2,\"b\":[],\"a\":[]},\"stream\":\"x\"}",
        "1 {\"stream\":\"btcusdt@depth\",\"data\":{\"E\":1,\"U\":1,\"u\":2,\"b\":[]}}",   /* no a */
        "1 {\"stream\":\"btcusdt@depth\",\"data\":{\"E\":1,\"U\":1,\"u\":2,\"b\":[[\"1.0\"]],\"a\":[]}}",
        "1 {\"stream\":\"btcusdt@depth\",\"data\":{\"E\":1,\"U\":1,\"u\":2,\"b\":[[\"1.0\",\"1\",\"2\"]],\"a\":[]}}",
        "1 {\"stream\":\"btcusdt@depth\",\"data\":{\"E\":1,\"U\":1,\"u\":2,\"b\":7,\"a\":[]}}",
        "1 {\"stream\":\"btcusdt@depth\",\"data\":{\"E\":1,\"U\":1,\"u\":2,\"pu\":-2,\"b\":[],\"a\":[]}}",
        "1 {\"stream\":\"btcusdt@depth\",\"data\":{\"E\":1,\"U\":1,\"u\":9223372036854775807,\"b\":[],\"a\":[]}}",
        "1 {\"stream\":\"btcusdt@depth\",\"data\":{\"E\":1,\"U\":1,\"u\":2,\"b\":[],\"a\":[],\"bids\":[]}}",
        "1 {\"lastUpdateId\":1,\"bids\":[]}",
        "1 {\"lastUpdateId\":\"1\",\"bids\":[],\"asks\":[]}",
        "1 {\"lastUpdateId\":1,\"E\":\"x\",\"bids\":[],\"asks\":[]}",
        "1 {\"lastUpdateId\":1,\"bids\":[[\"0.0\",\"0\"]],\"asks\":[]}",             /* zero price, zero size */
        "1 {\"lastUpdateId\":1,\"bids\":[[\"1.05\",\"0\"]],\"asks\":[]}",            /* off-tick, zero size */
        "1 {\"lastUpdateId\":1,\"stream\":\"x\",\"bids\":[],\"asks\":[]}",
        "1 {\"e\":\"trade\",\"E\":1,\"p\":\"1.0\",\"q\":\"1\",\"m\":true",         /* unterminated */
        "1 {\"e\":\"trade\",\"E\":1,\"p\":\"1.0\",\"q\":\"1\",\"m\":tru}",
        "1 {\"e\":\"trade\",\"E\":1,\"p\":\"1.0\",\"q\":\"1\",\"m\":true,\"x\":\"a}",
        "1 {\"e\":\"trade\",\"E\":1,\"p\":\"1.0\",\"q\":\"1\",\"m\":true,\"x\":-}",
        "1 {\"e\":\"trade\",\"E\":1,\"p\":\"1.0\",\"q\":\"1\",\"m\":true,\"x\":1.}",
        "1 {\"e\":\"trade\",\"E\":1,\"p\":\"1.0\",\"q\":\"1\",\"m\":true,\"x\":1e}",
        "1 {\"e\":\"trade\",\"E\":1,\"p\":\"1.0\",\"q\":\"1\",\"m\":true,\"x\":{\"a\":1,}}",
        "1 {\"e\":\"trade\",\"E\":1,\"p\":\"1.0\",\"q\":\"1\",\"m\":true,\"x\":[1 2]}",
        "1 {\"e\":\"trade\",\"E\":1,\"p\":\"1.0\",\"q\":\"1\",\"m\":true,\"x\":{1:2}}",
        "1 {\"e\":\"trade\",\"E\":1,\"b\":[],\"p\":\"1.0\",\"q\":\"1\",\"m\":true}", /* odd trade */
    };
    for (size_t i = 1; i < sizeof slow / sizeof *slow; i++) {
        int rc = one(slow[i]);
        if (rc != BN_SLOW) fprintf(stderr, "expected BN_SLOW: %s\n", slow[i]);
        EXPECT_EQ(rc, BN_SLOW);
    }
    /* accepted oddities: nested unknown values, huge skipped numbers, literals */
    EXPECT_EQ(one("1 {\"e\":\"trade\",\"E\":1,\"x\":{\"y\":[1,-2.5e-3,true,false,null,\"z\",{},[]]},"
                  "\"t\":123456789012345678901234567890,\"p\":\"1.0\",\"q\":\"1\",\"m\":true}"), BN_END);
    EXPECT_EQ(one("1 {\"e\":\"trade\",\"E\":1,\"T\":2,\"p\":\"0001.0\",\"q\":\"1\",\"m\":false}"), BN_END);
    EXPECT_EQ(one("1 {\"lastUpdateId\":1,\"E\":null,\"bids\":[],\"asks\":[]}"), BN_END);
}

static void test_nesting(void) {
    char line[512];
    for (int depth = 1; depth <= 100; depth += 9) {
        int n = snprintf(line, sizeof line, "1 {\"e\":\"trade\",\"E\":1,\"x\":");
        for (int i = 0; i < depth; i++) line[n++] = '[';
        for (int i = 0; i < depth; i++) line[n++] = ']';
        n += snprintf(line + n, sizeof line - (size_t)n, ",\"p\":\"1.0\",\"q\":\"1\",\"m\":true}");
        int rc = one(line);
        EXPECT_EQ(rc, depth <= 64 ? BN_END : BN_SLOW);
    }
}

static void test_full_and_counts(void) {
    bn_parser p;
    setup(&p);
    /* 3 events do not fit in 2: nothing consumed */
    EXPECT_EQ(parse_n(&p, DEPTH, strlen(DEPTH), 2), BN_FULL);
    EXPECT_EQ(p.pos, 0);
    EXPECT_EQ(p.n_msgs, 0);
    EXPECT_EQ(p.n_ev, 0);
    EXPECT_EQ(p.line, 0);
    EXPECT_EQ(parse_n(&p, DEPTH, strlen(DEPTH), 3), BN_END);
    EXPECT_EQ(p.n_ev, 3);
    /* the message buffer full */
    setup(&p);
    char *many = malloc(20 * 80);
    size_t n = 0;
    for (int i = 0; i < 20; i++)
        n += (size_t)sprintf(many + n, "%d {\"e\":\"trade\",\"E\":%d,\"p\":\"1.0\",\"q\":\"1\",\"m\":true}\n", i + 1, i);
    p.pos = 0;
    EXPECT_EQ(bn_parse(&p, many, n, msgs, MAXM, evs, MAXE), BN_FULL);
    EXPECT_EQ(p.n_msgs, MAXM);
    EXPECT_EQ(p.line, MAXM);
    p.n_msgs = p.n_ev = 0;
    EXPECT_EQ(bn_parse(&p, many, n, msgs, MAXM, evs, MAXE), BN_END);
    EXPECT_EQ(p.n_msgs, 4);
    EXPECT_EQ(msgs[3].line, 20);
    free(many);
}

static void test_scan(void) {
    bn_parser p;
    setup(&p);
    p.scan = 1;
    const char *s = "1 {\"lastUpdateId\":1,\"bids\":[[\"61837.63000000\",\"0.00001000\"]],\"asks\":[]}\n"
                    "2 {\"e\":\"trade\",\"E\":1,\"p\":\"5.123\",\"q\":\"7\",\"m\":true}\n";
    EXPECT_EQ(parse_n(&p, s, strlen(s), 0), BN_END);
    EXPECT_EQ(p.n_ev, 0);
    EXPECT_EQ(p.n_msgs, 2);
    EXPECT_EQ(p.px_wire, 8);
    EXPECT_EQ(p.px_sig, 3);
    EXPECT_EQ(p.qty_wire, 8);
    EXPECT_EQ(p.qty_sig, 5);
}

static void test_units(void) {
    bn_parser p;
    setup(&p);
    p.px_mant = 5; /* tick 0.5 */
    p.qty_mant = 1;
    p.qty_exp = 1; /* lot 10 */
    EXPECT_EQ(parse(&p, "1 {\"e\":\"trade\",\"E\":1,\"p\":\"100.50\",\"q\":\"120\",\"m\":true}"), BN_END);
    EXPECT_EQ(evs[0].price, 201);
    EXPECT_EQ(evs[0].qty, 12);
    EXPECT_EQ(parse(&p, "1 {\"e\":\"trade\",\"E\":1,\"p\":\"100.2\",\"q\":\"120\",\"m\":true}"), BN_SLOW);
    EXPECT_EQ(parse(&p, "1 {\"e\":\"trade\",\"E\":1,\"p\":\"100.5\",\"q\":\"125\",\"m\":true}"), BN_SLOW);
}

static void test_garbage(void) {
    bn_parser p;
    size_t len = strlen(DEPTH);
    /* every truncation of a good line */
    for (size_t n = 0; n < len; n++) {
        setup(&p);
        int rc = parse_n(&p, DEPTH, n, MAXE);
        EXPECT(rc == BN_SLOW || (rc == BN_END && (p.blank == 1 || n == 0)));
    }
    /* byte flips and random bytes: any result, no crash, never past the buffer */
    char *buf = malloc(len);
    for (int it = 0; it < 20000; it++) {
        memcpy(buf, DEPTH, len);
        int flips = 1 + (int)(test_rand() % 4);
        for (int k = 0; k < flips; k++) buf[test_rand() % len] = (char)(test_rand() & 0xff);
        setup(&p);
        int rc = parse_n(&p, buf, len, MAXE);
        EXPECT(rc == BN_SLOW || rc == BN_END);
        EXPECT(p.n_ev <= MAXE && p.n_msgs <= 1);
    }
    free(buf);
    for (int it = 0; it < 2000; it++) {
        size_t n = test_rand() % 300;
        char *r = malloc(n ? n : 1);
        for (size_t i = 0; i < n; i++) r[i] = (char)(test_rand() % 4 ? " {}[]\",:0123456789.-etrufalsn\n"[test_rand() % 31]
                                                                  : (char)(test_rand() & 0xff));
        setup(&p);
        p.pos = 0;
        int guard = 0, rc;
        /* step over slow lines the way the Python side does */
        while ((rc = bn_parse(&p, r, n, msgs, MAXM, evs, MAXE)) != BN_END && guard++ < 1000) {
            if (rc == BN_FULL) {
                p.n_msgs = p.n_ev = 0;
                continue;
            }
            const char *nl = memchr(r + p.pos, '\n', n - (size_t)p.pos);
            p.pos = nl ? nl - r + 1 : (int64_t)n;
            p.line++;
        }
        EXPECT(guard < 1000);
        free(r);
    }
}

static void test_gather(void) {
    lob_event a[3], b[2], out[5];
    memset(a, 0, sizeof a);
    memset(b, 0, sizeof b);
    for (int i = 0; i < 3; i++) a[i].price = 10 + i;
    for (int i = 0; i < 2; i++) b[i].price = 20 + i;
    bn_rec r[2];
    memset(r, 0, sizeof r);
    r[0].blk = 8; r[0].ev0 = 0; r[0].n = 2; r[0].uid = 5; r[0].tl_new = -1; r[0].fl = 8;
    r[1].blk = 7; r[1].ev0 = 1; r[1].n = 2; r[1].uid = 6; r[1].tl_new = 77; r[1].set_ts = 1; r[1].ts = 99;
    lob_event *bufs[2] = {a, b};
    int64_t lens[2] = {3, 2};
    int64_t uid[5];
    EXPECT_EQ(bn_gather(r, 2, 7, bufs, lens, 2, out, 5, uid), 4);
    EXPECT(out[0].price == 20 && out[1].price == 21 && out[2].price == 11 && out[3].price == 12);
    EXPECT(out[0].flags == 8 && out[2].flags == 0);
    EXPECT(out[2].ts_local == 77 && out[3].ts_exch == 99 && out[0].ts_exch == 0);
    EXPECT(uid[0] == 5 && uid[3] == 6);
    r[1].n = 3; /* past its buffer */
    EXPECT_EQ(bn_gather(r, 2, 7, bufs, lens, 2, out, 5, NULL), -1);
    r[1].n = 2;
    EXPECT_EQ(bn_gather(r, 2, 7, bufs, lens, 2, out, 3, NULL), -1); /* out too small */
    r[0].blk = 9;
    EXPECT_EQ(bn_gather(r, 2, 7, bufs, lens, 2, out, 5, NULL), -1);
}

int main(void) {
    test_depth();
    test_asks_before_bids_and_spaces();
    test_snapshot_trade_ticker_blank();
    test_symbols();
    test_slow_lines();
    test_nesting();
    test_full_and_counts();
    test_scan();
    test_units();
    test_garbage();
    test_gather();
    return report();
}
