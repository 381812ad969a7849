/* tardis.c - column kernels of the Tardis CSV reader; see tardis.h. */
#include "tardis.h"

#include <string.h>

#define MAX_DIGITS 18

static int valid_offsets(const int32_t *off, int64_t n) {
    return off != 0 && n >= 0 && off[0] >= 0;
}

int64_t tardis_ints(const int32_t *off, const uint8_t *data, int64_t n, int64_t max_value, int64_t unit,
                    int64_t *out) {
    if (!valid_offsets(off, n) || unit <= 0 || max_value < 0) return 0;
    for (int64_t i = 0; i < n; i++) {
        int32_t a = off[i], b = off[i + 1];
        if (b < a || b - a > MAX_DIGITS) return i;
        const uint8_t *p = data + a, *e = data + b;
        int neg = 0;
        if (p < e && *p == '-') { neg = 1; p++; }
        if (p == e) return i;
        int64_t v = 0;  /* at most 18 digits: no overflow */
        for (; p < e; p++) {
            unsigned d = (unsigned)*p - '0';
            if (d > 9) return i;
            v = v * 10 + (int64_t)d;
        }
        if (neg && v != 0) return i;
        if (v > max_value) return i;
        out[i] = v * unit;
    }
    return -1;
}

int64_t tardis_decimals(const int32_t *off, const uint8_t *data, int64_t n, int positive, int64_t *mant,
                        int8_t *fd) {
    if (!valid_offsets(off, n)) return 0;
    for (int64_t i = 0; i < n; i++) {
        int32_t a = off[i], b = off[i + 1];
        if (b < a) return i;
        const uint8_t *p = data + a, *e = data + b;
        int neg = 0;
        if (p < e && *p == '-') { neg = 1; p++; }
        int64_t v = 0;
        int sig = 0, whole = 0, frac = -1;
        for (; p < e; p++) {
            unsigned c = *p;
            if (c == '.') {
                if (frac >= 0 || whole == 0) return i;
                frac = 0;
                continue;
            }
            unsigned d = c - '0';
            if (d > 9) return i;
            if (frac >= 0) frac++; else whole++;
            if (sig || d) {
                if (++sig > MAX_DIGITS) return i;
            }
            v = v * 10 + (int64_t)d;
        }
        if (whole == 0 || frac == 0) return i;  /* "", "-", ".5", "5." */
        if (frac < 0) frac = 0;
        if (frac > MAX_DIGITS) return i;
        if (neg) v = -v;
        if (positive ? v <= 0 : v < 0) return i;
        mant[i] = v;
        fd[i] = (int8_t)frac;
    }
    return -1;
}

int64_t tardis_units(const int64_t *mant, const int8_t *fd, int64_t n, const int64_t *div, const int64_t *mul,
                     int64_t *out) {
    for (int64_t i = 0; i < n; i++) {
        int f = fd[i];
        int64_t m = mant[i];
        if (f < 0 || f > MAX_DIGITS) return i;
        if (div[f] > 0) {
            if (m % div[f]) return i;
            out[i] = m / div[f];
        } else if (mul[f] > 0) {
            int64_t lim = INT64_MAX / mul[f];
            if (m > lim || m < -lim) return i;
            out[i] = m * mul[f];
        } else {
            if (m) return i;
            out[i] = 0;
        }
    }
    return -1;
}

int64_t tardis_choice(const int32_t *off, const uint8_t *data, int64_t n, const int32_t *choice_off,
                      const uint8_t *choices, int32_t nchoices, const int8_t *values, int8_t *out) {
    if (!valid_offsets(off, n) || nchoices < 0) return 0;
    for (int64_t i = 0; i < n; i++) {
        int32_t a = off[i], b = off[i + 1];
        if (b < a) return i;
        int32_t k = 0;
        for (; k < nchoices; k++) {
            int32_t len = choice_off[k + 1] - choice_off[k];
            if (len == b - a && (len == 0 || memcmp(data + a, choices + choice_off[k], (size_t)len) == 0)) break;
        }
        if (k == nchoices) return i;
        out[i] = values[k];
    }
    return -1;
}

int64_t tardis_all_equal(const int32_t *off, const uint8_t *data, int64_t n, const uint8_t *s, int64_t len) {
    if (!valid_offsets(off, n) || len < 0) return 0;
    for (int64_t i = 0; i < n; i++) {
        int32_t a = off[i], b = off[i + 1];
        if (b - a != len || (len && memcmp(data + a, s, (size_t)len) != 0)) return i;
    }
    return -1;
}
