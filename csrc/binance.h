/*
 * binance.h - fast path of the Binance capture reader (lobsim/data/binance.py).
 *
 * bn_parse() scans decompressed capture text, one message a line
 * ("<local ns> <JSON>"), and turns the lines it fully understands into
 * message records (bn_msg) plus normalized events (lob_event) with prices
 * and sizes converted exactly from their decimal strings to ticks / lots.
 * Any line it does not accept exactly as the Python reader would (odd JSON,
 * a bad field, a value that is not a whole number of ticks, an unknown
 * stream, a new symbol) stops it with BN_SLOW: the caller handles that one
 * line in Python, which accepts it or raises the error naming its line, and
 * calls again. It never reads outside [buf, buf + len) and never allocates.
 *
 * cdef-compatible declarations only below the includes (csrc/build_ffi.py).
 */
#ifndef LOBSIM_BINANCE_H
#define LOBSIM_BINANCE_H

#include <stddef.h>
#include <stdint.h>
#include "lobsim.h"

/* bn_msg.kind */
enum { BN_DEPTH = 1, BN_TRADE = 2, BN_SNAPSHOT = 3 };

/* bn_parse() results */
enum {
    BN_END = 0,   /* every line of the buffer consumed */
    BN_SLOW = 1,  /* the line at pos (line number line + 1) is for the Python path */
    BN_FULL = 2   /* an output buffer is full; the line at pos was not consumed */
};

/* One message kept by the fast path, in file order. Mirrored by _MSG_DTYPE in binance.py. */
typedef struct bn_msg {
    int64_t line;      /* line number in its file, 1-based */
    int64_t ts_local;  /* ns, the line prefix */
    int64_t ts;        /* ns: depth E, trade T (E if no T), snapshot E (-1 if none) */
    int64_t U;         /* depth: first update id */
    int64_t u;         /* depth: last update id; snapshot: lastUpdateId */
    int64_t pu;        /* depth (futures): previous u, else -1 */
    int64_t ev_start;  /* index of its first event in the event buffer */
    int32_t n_ev;      /* its events (snapshot: CLEAR + non-zero levels) */
    int32_t n_zero;    /* snapshot: zero-size levels left out */
    int8_t kind;       /* BN_* */
    int8_t has_pu;     /* depth: the message carries pu (futures) */
    int8_t pad[6];
} bn_msg;

/* Parser configuration, counters and position; the caller owns it. */
typedef struct bn_parser {
    /* configuration */
    int64_t px_mant;      /* tick = px_mant * 10^px_exp (px_mant >= 1) */
    int32_t px_exp;
    int32_t qty_exp;      /* lot = qty_mant * 10^qty_exp */
    int64_t qty_mant;
    int32_t scan;         /* 1: only collect decimal statistics (no output written) */
    int32_t symbol_filter;/* 1: another symbol's message is skipped (counted); 0: BN_SLOW */
    int32_t symbol_len;   /* 0: none known yet, a message naming one gives BN_SLOW */
    char symbol[64];      /* upper case */
    /* counters, accumulated across calls */
    int64_t line;         /* line number of the last line consumed */
    int64_t blank;        /* blank lines */
    int64_t ticker;       /* bookTicker lines */
    int64_t other_symbol; /* lines of another symbol skipped */
    int32_t px_wire;      /* scan: most fractional digits of a price as written */
    int32_t px_sig;       /* scan: most fractional digits of a price without trailing zeros */
    int32_t qty_wire;
    int32_t qty_sig;
    /* position and output fill, updated by each call */
    int64_t pos;          /* bytes of buf consumed */
    int64_t n_msgs;       /* records in msgs (the call appends from here) */
    int64_t n_ev;         /* events in ev (the call appends from here) */
} bn_parser;

/* Parse whole lines of buf[pos, len) (the last line may lack its newline).
 * Appends to msgs / ev; returns BN_END, BN_SLOW or BN_FULL (see above). */
int bn_parse(bn_parser *p, const char *buf, size_t len, bn_msg *msgs, size_t max_msgs,
             lob_event *ev, size_t max_ev);

/* A message's events waiting in the reader's time merge. Mirrored by _REC_DTYPE in binance.py. */
typedef struct bn_rec {
    int64_t ts;      /* ts_exch of its events (written when set_ts) */
    int64_t key;     /* merge key: ties in file order */
    int64_t tl;      /* ts_local as parsed */
    int64_t tl_new;  /* ts_local to write, if >= 0 */
    int64_t g;       /* global line number */
    int64_t uid;     /* update id (depth u, snapshot lastUpdateId, -1 trades) */
    int64_t blk;     /* its event buffer: bufs[blk - blk0] */
    int64_t ev0;     /* first event in that buffer */
    int64_t n;       /* events */
    uint16_t fl;     /* flags to set on its events */
    uint8_t set_ts;
    uint8_t pad[5];
} bn_rec;

/* Copy the events of recs[0..n_recs) in order into out (applying ts / tl_new / fl), and each
 * one's uid into uid_out unless NULL. -> events written, or -1 if a record lies outside its
 * buffer (buf_len[i] events in bufs[i]) or out is too small (nothing is then trusted). */
int64_t bn_gather(const bn_rec *recs, size_t n_recs, int64_t blk0, lob_event *const *bufs,
                  const int64_t *buf_len, size_t n_bufs, lob_event *out, size_t max_out, int64_t *uid_out);

#endif
