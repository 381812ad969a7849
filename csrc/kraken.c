/*
 * kraken.c - fast path of the Kraken book capture reader; see kraken.h.
 *
 * A line of the pair is taken only when it is plain JSON (no escapes, no non-ASCII bytes, no
 * duplicate keys in a dict) of the usual shape with decimal strings that are whole numbers of ticks
 * / lots; every other line is KR_SLOW and Python, the reference, decides. The book semantics
 * (snapshot, updates, depth, checksum) live in apply(), used by both paths.
 */
#include "kraken.h"

#include <stdlib.h>
#include <string.h>

#include "jsonlines.h"

typedef unsigned __int128 u128;

typedef struct book {
    jl_side bid, ask;
    kr_level *tmp;
    size_t tmp_cap;
    uint32_t crc; /* the checksum of the top 10 when neither side's top changed since */
    int crc_ok;
} book;

static uint32_t CRC[256];

static void crc_table(void) {
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        CRC[i] = c;
    }
}

int kr_init(kr_parser *p) {
    if (!CRC[1]) crc_table();
    book *b = calloc(1, sizeof *b);
    if (!b) return -1;
    jl_side_init(&b->bid, 1);
    jl_side_init(&b->ask, -1);
    p->book = b;
    return 0;
}

void kr_free(kr_parser *p) {
    book *b = p->book;
    if (!b) return;
    jl_side_free(&b->bid);
    jl_side_free(&b->ask);
    free(b->tmp);
    free(b);
    p->book = NULL;
}

/* ---- the checksum -------------------------------------------------------- */

static size_t render(char *out, uint64_t hi, uint64_t lo) {
    char t[48];
    size_t n = 0;
    if (hi) {
        for (int k = 0; k < 19; k++, lo /= 10) t[n++] = (char)('0' + lo % 10);
        while (hi) t[n++] = (char)('0' + hi % 10), hi /= 10;
    } else {
        while (lo) t[n++] = (char)('0' + lo % 10), lo /= 10;
    }
    for (size_t i = 0; i < n; i++) out[i] = t[n - 1 - i];
    return n;
}

static uint32_t checksum(book *b) {
    if (b->crc_ok && !b->bid.top_dirty && !b->ask.top_dirty) return b->crc;
    char s[20 * 2 * 40];
    size_t n = 0;
    for (int side = 0; side < 2; side++) {
        jl_side *sd = side ? &b->bid : &b->ask;
        for (int64_t r = 0; r < 10 && r < sd->n; r++) {
            jl_level *l = jl_side_rank(sd, r);
            n += render(s + n, l->pd_hi, l->pd_lo);
            n += render(s + n, l->qd_hi, l->qd_lo);
        }
    }
    uint32_t c = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++) c = CRC[(c ^ (unsigned char)s[i]) & 0xFF] ^ (c >> 8);
    b->crc = c ^ 0xFFFFFFFFu;
    b->crc_ok = 1;
    b->bid.top_dirty = b->ask.top_dirty = 0;
    return b->crc;
}

uint32_t kr_checksum(kr_parser *p) { return p->book ? checksum(p->book) : 0; }

/* ---- one message applied to the book ------------------------------------- */

static void truncate(kr_parser *p, jl_side *s, int64_t depth, lob_event *ev, int64_t *k, uint16_t fl) {
    int64_t extra = s->n - depth;
    if (extra <= 0) return;
    for (int64_t i = extra - 1; i >= 0; i--) /* best first, as Kraken's book drops them */
        jl_put(&ev[(*k)++], (int8_t)s->sign, LOB_EV_SET_LEVEL, s->v[s->lo + i].px, 0, fl);
    jl_side_truncate(s, depth);
    p->levels_truncated += extra;
}

static int apply(kr_parser *p, int snap, int64_t depth, int64_t cs, int64_t tx, int64_t tl, int64_t line,
                 const kr_level *lv, size_t n, kr_msg *msgs, size_t max_msgs, lob_event *ev, size_t max_ev,
                 kr_note *notes, size_t max_notes) {
    book *b = p->book;
    /* events: CLEAR, n levels, and the levels dropped beyond depth: n at most, plus those already beyond a depth
     * smaller than the book's (Python applies lines at another depth only through here) */
    size_t over = snap ? 0 : (size_t)(b->bid.n > depth ? b->bid.n - depth : 0) + (size_t)(b->ask.n > depth ? b->ask.n - depth : 0);
    if ((size_t)p->n_msgs >= max_msgs || (size_t)p->n_notes >= max_notes || (size_t)p->n_ev > max_ev ||
        max_ev - (size_t)p->n_ev < 2 * n + 1 || max_ev - (size_t)p->n_ev - (2 * n + 1) < over)
        return KR_FULL;
    if (jl_side_reserve(&b->bid, (int64_t)n) || jl_side_reserve(&b->ask, (int64_t)n)) return KR_NOMEM;
    if (!p->depth0) p->depth0 = depth;
    lob_event *out = ev + p->n_ev;
    int64_t k = 0;
    uint16_t fl = 0;
    if (snap) {
        p->synced = 1;
        jl_side_clear(&b->bid);
        jl_side_clear(&b->ask);
        fl = LOB_FLAG_SNAPSHOT;
        jl_put(&out[k++], 0, LOB_EV_CLEAR, 0, 0, fl);
    } else if (!p->synced) {
        p->n_no_snap++;
        if (!p->first_no_snap) p->first_no_snap = line;
    }
    for (size_t i = 0; i < n; i++) {
        jl_side *s = lv[i].side > 0 ? &b->bid : &b->ask;
        if (lv[i].qty) {
            jl_level l = {lv[i].px, lv[i].qty, lv[i].pd_lo, lv[i].pd_hi, lv[i].qd_lo, lv[i].qd_hi};
            jl_side_set(s, &l); /* room made above */
        } else if (!jl_side_del(s, lv[i].px)) {
            p->deletes_of_absent_levels++;
        }
        jl_put(&out[k++], (int8_t)lv[i].side, LOB_EV_SET_LEVEL, lv[i].px, lv[i].qty, fl);
    }
    p->block_levels += (int64_t)n;
    truncate(p, &b->ask, depth, out, &k, fl);
    truncate(p, &b->bid, depth, out, &k, fl);
    if (cs >= 0 && p->synced) {
        p->checksums_checked++;
        uint32_t ours = checksum(b);
        if ((int64_t)ours != cs) {
            kr_note *no = &notes[p->n_notes++];
            no->line = line, no->ours = ours, no->theirs = cs;
        }
    }
    if (k) {
        out[k - 1].flags |= LOB_FLAG_BATCH_END;
        kr_msg *m = &msgs[p->n_msgs++];
        m->line = line, m->tx = tx, m->tl = tl, m->n_ev = k;
        p->n_ev += k;
        p->book_messages++;
    }
    return KR_END;
}

int kr_apply(kr_parser *p, int snapshot, int64_t depth, int64_t checksum_, int64_t tx, int64_t tl, int64_t line,
             const kr_level *lv, size_t n, kr_msg *msgs, size_t max_msgs, lob_event *ev, size_t max_ev,
             kr_note *notes, size_t max_notes) {
    if (!p->book) return KR_NOMEM;
    return apply(p, snapshot, depth, checksum_, tx, tl, line, lv, n, msgs, max_msgs, ev, max_ev, notes, max_notes);
}

/* ---- one line ------------------------------------------------------------ */

enum { L_SKIP = 0, L_MSG = 1, L_SLOW = 2, L_FULL = 3, L_NOMEM = 4 };

/* An entry timestamp "seconds[.fraction]" (<= 11 whole, <= 18 fractional digits): exact key and ns. */
static int stamp(const char *s, const char *e, u128 *key, int64_t *ns) {
    const char *q = s;
    uint64_t w = 0;
    while (q < e && *q >= '0' && *q <= '9') w = w * 10 + (uint64_t)(*q++ - '0');
    if (q == s || q - s > 11) return 0;
    uint64_t f = 0;
    int nf = 0;
    if (q < e && *q == '.') {
        q++;
        while (q < e && *q >= '0' && *q <= '9' && nf < 19) f = f * 10 + (uint64_t)(*q++ - '0'), nf++;
        if (nf == 0 || nf > 18) return 0;
    }
    if (q != e) return 0;
    if (w > 9223372035ULL) return 0; /* past int64 ns */
    uint64_t f18 = f * JL_POW10[18 - nf];
    *key = (u128)w * JL_POW10[18] + f18;
    *ns = (int64_t)(w * 1000000000ULL + f18 / 1000000000ULL);
    return 1;
}

/* [[price, volume, time(, "r")], ...] of one side appended to b->tmp. */
static int entries(jl_cur *c, kr_parser *p, book *b, size_t *n, int64_t side, int32_t *st, u128 *best,
                   int64_t *best_ns, u128 *rbest, int64_t *rbest_ns, int *n_stamps, int *n_r) {
    if (!jl_eat(c, '[')) return c->bad = 1, 0;
    if (jl_eat(c, ']')) return 1;
    for (;;) {
        jl_dec px, qty;
        const char *ts, *te, *rs, *re;
        if (!jl_eat(c, '[') || !jl_decimal(c, &px) || !jl_eat(c, ',') || !jl_decimal(c, &qty) || !jl_eat(c, ',') ||
            !jl_str(c, &ts, &te))
            return c->bad = 1, 0;
        int r = 0;
        if (jl_eat(c, ',')) {
            if (!jl_str(c, &rs, &re) || !jl_key_is(rs, re, "r")) return c->bad = 1, 0;
            r = 1;
        }
        if (!jl_eat(c, ']')) return c->bad = 1, 0;
        if (px.digits == 0) return c->bad = 1, 0;
        u128 key;
        int64_t ns;
        if (!stamp(ts, te, &key, &ns)) return c->bad = 1, 0;
        if (r) {
            if (!*n_r || key > *rbest) *rbest = key, *rbest_ns = ns;
            (*n_r)++;
        } else {
            if (!*n_stamps || key > *best) *best = key, *best_ns = ns;
            (*n_stamps)++;
        }
        jl_stat(&st[0], &st[1], &px);
        jl_stat(&st[2], &st[3], &qty);
        if (*n >= b->tmp_cap) {
            size_t cap = b->tmp_cap ? 2 * b->tmp_cap : 256;
            kr_level *v = realloc(b->tmp, cap * sizeof *v);
            if (!v) return c->bad = 1, 0;
            b->tmp = v;
            b->tmp_cap = cap;
        }
        kr_level *l = &b->tmp[(*n)++];
        l->side = side;
        l->px = l->qty = 0;
        l->pd_lo = px.digits, l->pd_hi = 0, l->qd_lo = qty.digits, l->qd_hi = 0;
        if (!p->scan && (!jl_to_units(&px, p->px_mant, p->px_exp, &l->px) ||
                         !jl_to_units(&qty, p->qty_mant, p->qty_exp, &l->qty)))
            return c->bad = 1, 0;
        if (jl_eat(c, ',')) continue;
        if (jl_eat(c, ']')) return 1;
        return c->bad = 1, 0;
    }
}

static int line(kr_parser *p, const char *s, const char *e, kr_msg *msgs, size_t max_msgs, lob_event *ev,
                size_t max_ev, kr_note *notes, size_t max_notes) {
    book *b = p->book;
    while (e > s && (e[-1] == '\r' || e[-1] == '\n')) e--;
    const char *q = s;
    while (q < e && jl_is_space((unsigned char)*q)) q++;
    if (q == e) {
        p->blank_lines++;
        return L_SKIP;
    }
    if (jl_startswith(s, e, "wss://") || jl_startswith(s, e, "ws://")) {
        p->capture_metadata_lines++;
        return L_SKIP;
    }
    /* "<seconds>[.<fraction>]: " */
    q = s;
    uint64_t w = 0;
    while (q < e && *q >= '0' && *q <= '9') w = w * 10 + (uint64_t)(*q++ - '0');
    if (q == s || q - s > 11 || w > 9223372035ULL) return L_SLOW;
    int64_t tl = (int64_t)w * 1000000000LL;
    if (q < e && *q == '.') {
        const char *f = ++q;
        int64_t fr = 0;
        int k = 0;
        while (q < e && *q >= '0' && *q <= '9') {
            if (k < 9) fr = fr * 10 + (*q - '0'), k++;
            q++;
        }
        if (q == f) return L_SLOW;
        for (; k < 9; k++) fr *= 10;
        tl += fr;
    }
    if (e - q < 2 || q[0] != ':' || q[1] != ' ') return L_SLOW;
    const char *body = q + 2;
    size_t bn = (size_t)(e - body);
    if (bn >= 2 && body[0] == '[' && e[-2] == '"' && e[-1] == ']') {
        if (bn < (size_t)p->tail_len || memcmp(e - p->tail_len, p->tail, (size_t)p->tail_len)) {
            p->other_lines_skipped++;
            return L_SKIP;
        }
    } else {
        static const char HB[] = "{\"event\":\"heartbeat\"}";
        if (bn == sizeof HB - 1 && !memcmp(body, HB, bn)) {
            p->event_messages++;
            return L_SKIP;
        }
        return L_SLOW;
    }
    if (!p->tail_len) return L_SLOW;
    jl_cur c = {body, e, 0};
    int64_t chan;
    int is_int;
    if (!jl_eat(&c, '[') || !jl_number(&c, &chan, &is_int) || !jl_eat(&c, ',')) return L_SLOW;
    size_t n = 0;
    int snap = 0, upd = 0, n_stamps = 0, n_r = 0;
    int64_t cs = -1, best_ns = 0, rbest_ns = 0;
    u128 best = 0, rbest = 0;
    int32_t st[4] = {0, 0, 0, 0};
    int dicts = 0;
    while (jl_peek(&c) == '{') {
        if (++dicts > 2) return L_SLOW;
        c.p++;
        int seen = 0; /* bits: c a as b bs */
        if (!jl_eat(&c, '}')) {
            for (;;) {
                const char *ks, *ke, *vs, *ve;
                if (!jl_str(&c, &ks, &ke) || !jl_eat(&c, ':')) return L_SLOW;
                int bit, side = 0;
                if (jl_key_is(ks, ke, "c")) bit = 1;
                else if (jl_key_is(ks, ke, "a")) bit = 2, side = -1, upd = 1;
                else if (jl_key_is(ks, ke, "as")) bit = 4, side = -1, snap = 1;
                else if (jl_key_is(ks, ke, "b")) bit = 8, side = 1, upd = 1;
                else if (jl_key_is(ks, ke, "bs")) bit = 16, side = 1, snap = 1;
                else return L_SLOW;
                if (seen & bit) return L_SLOW;
                seen |= bit;
                if (bit == 1) {
                    if (!jl_str(&c, &vs, &ve) || ve == vs || ve - vs > 18) return L_SLOW;
                    int64_t v = 0;
                    for (const char *r = vs; r < ve; r++) {
                        if (*r < '0' || *r > '9') return L_SLOW;
                        v = v * 10 + (*r - '0');
                    }
                    cs = v;
                } else if (!entries(&c, p, b, &n, side, st, &best, &best_ns, &rbest, &rbest_ns, &n_stamps, &n_r)) {
                    return L_SLOW;
                }
                if (jl_eat(&c, ',')) continue;
                if (jl_eat(&c, '}')) break;
                return L_SLOW;
            }
        }
        if (!jl_eat(&c, ',')) return L_SLOW;
    }
    if (!dicts || (snap && upd)) return L_SLOW;
    const char *ns_, *ne, *ps, *pe;
    if (!jl_str(&c, &ns_, &ne) || !jl_eat(&c, ',') || !jl_str(&c, &ps, &pe) || !jl_eat(&c, ']')) return L_SLOW;
    jl_ws(&c);
    if (c.p != c.e || c.bad) return L_SLOW;
    if ((size_t)(pe - ps) != (size_t)p->tail_len - 3 || memcmp(ps, p->tail + 1, (size_t)(pe - ps))) return L_SLOW;
    int64_t depth = 0;
    if (jl_key_is(ns_, ne, "book")) {
        depth = 10;
    } else {
        if (!jl_startswith(ns_, ne, "book-") || ne - ns_ > 14 || ne - ns_ == 5) return L_SLOW;
        for (const char *r = ns_ + 5; r < ne; r++) {
            if (*r < '0' || *r > '9') return L_SLOW;
            depth = depth * 10 + (*r - '0');
        }
        if (depth <= 0) return L_SLOW;
    }
    if (p->depth0 && depth != p->depth0) return L_SLOW; /* another subscription of the pair: Python skips it */
    if (p->px_wire < st[0]) p->px_wire = st[0];
    if (p->px_sig < st[1]) p->px_sig = st[1];
    if (p->qty_wire < st[2]) p->qty_wire = st[2];
    if (p->qty_sig < st[3]) p->qty_sig = st[3];
    if (p->scan) {
        if (snap) p->synced = 1;
        p->block_levels += (int64_t)n;
        return L_MSG;
    }
    int64_t tx = n_stamps ? best_ns : n_r ? rbest_ns : tl;
    int64_t nr = n_r;
    int r = apply(p, snap, depth, cs, tx, tl, p->line + 1, b->tmp, n, msgs, max_msgs, ev, max_ev, notes, max_notes);
    if (r == KR_END) p->republished_entries += nr;
    return r == KR_END ? L_MSG : r == KR_FULL ? L_FULL : L_NOMEM;
}

int kr_parse(kr_parser *p, const char *buf, size_t len, kr_msg *msgs, size_t max_msgs, lob_event *ev,
             size_t max_ev, kr_note *notes, size_t max_notes) {
    if (p->pos < 0) p->pos = 0;
    if (!p->book) return KR_NOMEM;
    while ((size_t)p->pos < len) {
        const char *s = buf + p->pos;
        const char *nl = memchr(s, '\n', len - (size_t)p->pos);
        const char *e = nl ? nl : buf + len;
        const char *next = nl ? nl + 1 : buf + len;
        int r = line(p, s, e, msgs, max_msgs, ev, max_ev, notes, max_notes);
        if (r == L_SLOW) return KR_SLOW;
        if (r == L_FULL) return KR_FULL;
        if (r == L_NOMEM) return KR_NOMEM;
        p->line++;
        p->pos = next - buf;
        if (p->block_lines > 0 && p->line >= p->block_lines && p->synced && p->block_levels > 0) return KR_BLOCK;
    }
    return KR_END;
}
