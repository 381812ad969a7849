/*
 * bybit.h - fast path of the Bybit v5 orderbook.<depth> capture reader (lobsim/data/bybit.py).
 *
 * bb_parse() scans decompressed capture text, one message a line (optionally after the local
 * receive time), converts the lines it fully understands (the known topic, plain JSON, decimal
 * strings that are whole numbers of ticks / lots) and applies them to the book it keeps (per
 * side, for the depth and the snapshot-consistency checks), writing events, one record per
 * message with events and notes of anomalies. Any other line stops it with BB_SLOW: Python
 * handles that line (raising the error naming it, or applying it through bb_apply) and calls
 * again. It never reads outside [buf, buf + len).
 *
 * cdef-compatible declarations only below the includes (csrc/build_ffi.py).
 */
#ifndef LOBSIM_BYBIT_H
#define LOBSIM_BYBIT_H

#include <stddef.h>
#include <stdint.h>
#include "lobsim.h"

/* bb_parse() / bb_apply() results */
enum {
    BB_END = 0,   /* every line of the buffer consumed */
    BB_SLOW = 1,  /* the line at pos (number line + 1) is for the Python path */
    BB_FULL = 2,  /* an output buffer is full; the line at pos was not consumed */
    BB_BLOCK = 3, /* block_msgs messages with events reached (and synced): stop here */
    BB_NOMEM = 4  /* the book could not grow */
};

/* bb_note.kind */
enum { BB_NOTE_GAP = 1, BB_NOTE_MISMATCH = 2 };

/* A message with events. Mirrored by _MSG_DTYPE in bybit.py. */
typedef struct bb_msg {
    int64_t line;     /* line number in the file, 1-based */
    int64_t tx;       /* ns: cts, else ts */
    int64_t tl;       /* ns: local receive time, -1 if none */
    int64_t n_ev;     /* its events (in order in the event buffer) */
} bb_msg;

/* An anomaly: gap (a = u, b = previous u) or snapshot mismatch (a = side, b = u, c = levels). */
typedef struct bb_note {
    int64_t line, kind, a, b, c;
} bb_note;

/* A level of a message given by Python to bb_apply. */
typedef struct bb_level {
    int64_t px, qty;
    int64_t side; /* 1 bid, -1 ask */
} bb_level;

typedef struct bb_parser {
    /* configuration */
    int64_t px_mant;      /* tick = px_mant * 10^px_exp */
    int32_t px_exp;
    int32_t qty_exp;      /* lot = qty_mant * 10^qty_exp */
    int64_t qty_mant;
    int32_t scan;         /* 1: no book, no output: only the decimal statistics and the block count */
    int32_t local;        /* -1 not known yet (BB_SLOW), 0 lines without, 1 lines with a local time */
    int32_t topic_len;    /* 0: none known yet (BB_SLOW) */
    int32_t sym_off;      /* the symbol within the topic */
    char topic[128];      /* "orderbook.<depth>.<SYMBOL>" as on the wire */
    int64_t depth;
    int64_t block_msgs;   /* > 0: BB_BLOCK after the line where ev_msgs reaches it (once synced) */
    /* state */
    int64_t synced;
    int64_t last_u;
    int64_t ev_msgs;      /* messages with events (scan: snapshots and messages with levels) */
    /* scan statistics */
    int32_t px_wire, px_sig, qty_wire, qty_sig;
    /* counters (Python moves them to the report and zeroes them) */
    int64_t line;         /* line number of the last line consumed */
    int64_t blank_lines, messages, snapshots, snapshots_checked, snapshots_not_comparable, restarts;
    int64_t deletes_of_absent_levels, levels_truncated, n_pre, first_pre;
    /* position and output fill, updated by each call */
    int64_t pos, n_msgs, n_ev, n_notes;
    void *book;           /* bb_init / bb_free */
} bb_parser;

/* Allocate the book (0, or -1 when out of memory); bb_free releases it (safe twice). */
int bb_init(bb_parser *p);
void bb_free(bb_parser *p);

int bb_parse(bb_parser *p, const char *buf, size_t len, bb_msg *msgs, size_t max_msgs, lob_event *ev,
             size_t max_ev, bb_note *notes, size_t max_notes);

/* Apply one message decoded by Python (snapshot 1 / delta 0) as bb_parse does its own lines:
 * BB_END, BB_FULL (nothing done) or BB_NOMEM. tl = -1 without a local time. */
int bb_apply(bb_parser *p, int snapshot, int64_t u, int64_t tx, int64_t tl, int64_t line, const bb_level *lv,
             size_t n, bb_msg *msgs, size_t max_msgs, lob_event *ev, size_t max_ev, bb_note *notes,
             size_t max_notes);

#endif
