/*
 * tardis.h - column kernels of the Tardis CSV reader (lobsim/data/tardis.py).
 *
 * pyarrow's CSV reader splits the file into string columns (Arrow layout:
 * int32 offsets[n + 1] into a byte buffer); these kernels convert whole
 * columns in one pass each. Each returns -1 when every row converted, else
 * the index of the first row it refused (the caller then re-runs its exact,
 * slower validation on that block to name the problem): nothing is ever
 * guessed. They read only data[off[0] .. off[n]) and never write past out[n).
 */
#ifndef LOBSIM_TARDIS_H
#define LOBSIM_TARDIS_H

#include <stdint.h>

/* -?[0-9]+ of at most 18 characters, value in [0, max_value] -> out[i] = value * unit. */
int64_t tardis_ints(const int32_t *off, const uint8_t *data, int64_t n, int64_t max_value, int64_t unit,
                    int64_t *out);

/* -?[0-9]+(\.[0-9]+)? with at most 18 significant digits (leading zeros of the whole part and the
   sign not counted) -> value = mant[i] / 10**fd[i] exactly. positive = 1: the value must be > 0,
   0: >= 0 (a minus sign on a zero is fine). */
int64_t tardis_decimals(const int32_t *off, const uint8_t *data, int64_t n, int positive, int64_t *mant,
                        int8_t *fd);

/* Exact units (ticks / lots) of mant / 10**fd: for each fd (0..18) either div[fd] > 0 (the unit is
   div[fd] / 10**fd: mant must be a multiple of it), or mul[fd] > 0 (the unit is finer: mant * mul[fd],
   which must fit int64), or both 0 (the unit is too large: only 0 converts). */
int64_t tardis_units(const int64_t *mant, const int8_t *fd, int64_t n, const int64_t *div, const int64_t *mul,
                     int64_t *out);

/* Map each string to values[k] of the k-th choice (choices: nchoices strings in Arrow layout, choice_off
   [nchoices + 1]). */
int64_t tardis_choice(const int32_t *off, const uint8_t *data, int64_t n, const int32_t *choice_off,
                      const uint8_t *choices, int32_t nchoices, const int8_t *values, int8_t *out);

/* Every string equals s[0 .. len). */
int64_t tardis_all_equal(const int32_t *off, const uint8_t *data, int64_t n, const uint8_t *s, int64_t len);

#endif
