/*
 * kraken.h - fast path of the Kraken websocket v1 book capture reader (lobsim/data/kraken.py).
 *
 * kr_parse() scans decompressed capture text ("<unix seconds>: <json>" lines, several pairs), skips
 * the other pairs' lines and the capture metadata, converts the pair's book messages it fully
 * understands and applies them to the book it keeps to the subscribed depth, verifying Kraken's
 * CRC32 checksum of the top 10 levels (rebuilt from the digits of the wire strings) after every
 * update that carries one. Events, one record per message with events and a note per checksum
 * mismatch go to the caller's buffers. Any other line stops it with KR_SLOW: Python handles that
 * line (raising the error naming it, or applying it through kr_apply) and calls again. It never
 * reads outside [buf, buf + len).
 *
 * cdef-compatible declarations only below the includes (csrc/build_ffi.py).
 */
#ifndef LOBSIM_KRAKEN_H
#define LOBSIM_KRAKEN_H

#include <stddef.h>
#include <stdint.h>
#include "lobsim.h"

enum {
    KR_END = 0,   /* every line of the buffer consumed */
    KR_SLOW = 1,  /* the line at pos (number line + 1) is for the Python path */
    KR_FULL = 2,  /* an output buffer is full; the line at pos was not consumed */
    KR_BLOCK = 3, /* the first block ends after this line (see block_lines) */
    KR_NOMEM = 4  /* the book could not grow */
};

/* A message with events. Mirrored by _MSG_DTYPE in kraken.py. */
typedef struct kr_msg {
    int64_t line, tx, tl, n_ev;
} kr_msg;

/* A checksum mismatch: ours and Kraken's. */
typedef struct kr_note {
    int64_t line, ours, theirs;
} kr_note;

/* A level of a message given by Python to kr_apply: ticks, lots, side, and the digits of the price and
 * volume strings without the decimal point as hi * 10^19 + lo (the checksum fragments). */
typedef struct kr_level {
    int64_t px, qty, side;
    uint64_t pd_lo, pd_hi, qd_lo, qd_hi;
} kr_level;

typedef struct kr_parser {
    /* configuration */
    int64_t px_mant;
    int32_t px_exp;
    int32_t qty_exp;
    int64_t qty_mant;
    int32_t scan;          /* 1: no book, no output: the decimal statistics and the first block's end */
    int32_t tail_len;      /* the end of the pair's book lines: "PAIR"] */
    char tail[64];
    int64_t block_lines;   /* > 0: KR_BLOCK after the line once line >= it, synced and block_levels > 0 */
    /* state */
    int64_t synced;
    int64_t block_levels;  /* entries of the pair seen */
    int64_t depth0;        /* the depth of the pair's first book message (0: none yet) */
    int32_t px_wire, px_sig, qty_wire, qty_sig;
    /* counters (Python moves them to the report and zeroes them) */
    int64_t line;          /* line number of the last line consumed */
    int64_t blank_lines, capture_metadata_lines, other_lines_skipped, event_messages, book_messages;
    int64_t checksums_checked, republished_entries, levels_truncated, deletes_of_absent_levels;
    int64_t n_no_snap, first_no_snap;
    /* position and output fill */
    int64_t pos, n_msgs, n_ev, n_notes;
    void *book;
} kr_parser;

int kr_init(kr_parser *p);
void kr_free(kr_parser *p);

int kr_parse(kr_parser *p, const char *buf, size_t len, kr_msg *msgs, size_t max_msgs, lob_event *ev,
             size_t max_ev, kr_note *notes, size_t max_notes);

/* Apply one book message decoded by Python (checksum < 0: none): KR_END, KR_FULL (nothing done) or KR_NOMEM. */
int kr_apply(kr_parser *p, int snapshot, int64_t depth, int64_t checksum, int64_t tx, int64_t tl, int64_t line,
             const kr_level *lv, size_t n, kr_msg *msgs, size_t max_msgs, lob_event *ev, size_t max_ev,
             kr_note *notes, size_t max_notes);

/* Kraken's checksum of the book now (for tests). */
uint32_t kr_checksum(kr_parser *p);

#endif
