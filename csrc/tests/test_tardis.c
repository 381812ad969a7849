/* test_tardis.c - the Tardis CSV column kernels: exact conversions, refusals at the right row,
 * and garbage / every byte value without reading out of bounds (run under ASan/UBSan). */
#include <stdlib.h>
#include <string.h>

#include "expect.h"
#include "tardis.h"

/* Build an Arrow-layout column of the strings in `s` (n of them) in fresh heap buffers sized exactly. */
typedef struct {
    int32_t *off;
    uint8_t *data;
} column;

static column col(const char **s, int n) {
    column c;
    size_t total = 0;
    for (int i = 0; i < n; i++) total += strlen(s[i]);
    c.off = malloc(sizeof(int32_t) * (size_t)(n + 1));
    c.data = malloc(total ? total : 1);
    int32_t at = 0;
    for (int i = 0; i < n; i++) {
        c.off[i] = at;
        memcpy(c.data + at, s[i], strlen(s[i]));
        at += (int32_t)strlen(s[i]);
    }
    c.off[n] = at;
    return c;
}

static void drop(column c) {
    free(c.off);
    free(c.data);
}

static void test_ints(void) {
    const char *ok[] = {"0", "1543622400000", "-0", "999999999999999999"};
    column c = col(ok, 4);
    int64_t out[4];
    EXPECT_EQ(tardis_ints(c.off, c.data, 4, INT64_MAX, 1, out), -1);
    EXPECT_EQ(out[1], 1543622400000LL);
    EXPECT_EQ(out[2], 0);
    EXPECT_EQ(out[3], 999999999999999999LL);
    EXPECT_EQ(tardis_ints(c.off, c.data, 4, INT64_MAX / 1000, 1000, out), 3);  /* out of range */
    EXPECT_EQ(out[1], 1543622400000000LL);
    drop(c);
    const char *bad[] = {"1", "", "-", "-5", "1.5", "1e5", " 1", "1234567890123456789", "x"};
    for (int k = 1; k < 9; k++) {
        const char *two[] = {bad[0], bad[k]};
        column b = col(two, 2);
        EXPECT_EQ(tardis_ints(b.off, b.data, 2, INT64_MAX, 1, out), 1);
        drop(b);
    }
}

static void test_decimals(void) {
    const char *ok[] = {"6421.5", "0.000000000000000001", "00012", "-0", "123456789012345678", "1.10"};
    column c = col(ok, 6);
    int64_t m[6];
    int8_t f[6];
    EXPECT_EQ(tardis_decimals(c.off, c.data, 6, 0, m, f), -1);
    EXPECT(m[0] == 64215 && f[0] == 1);
    EXPECT(m[1] == 1 && f[1] == 18);
    EXPECT(m[2] == 12 && f[2] == 0);
    EXPECT(m[3] == 0 && f[3] == 0);
    EXPECT(m[4] == 123456789012345678LL && f[4] == 0);
    EXPECT(m[5] == 110 && f[5] == 2);
    EXPECT_EQ(tardis_decimals(c.off, c.data, 6, 1, m, f), 3);  /* -0 is not positive */
    drop(c);
    const char *bad[] = {"1", "", "-", ".5", "5.", "1..2", "1.2.3", "1e-05", "NaN", "-1", "1 ", "1,5",
                         "0.0000000000000000001", "1234567890123456789", "12345678901.12345678"};
    int nbad = (int)(sizeof bad / sizeof *bad);
    for (int k = 1; k < nbad; k++) {
        const char *two[] = {bad[0], bad[k]};
        column b = col(two, 2);
        EXPECT_EQ(tardis_decimals(b.off, b.data, 2, 0, m, f), 1);
        drop(b);
    }
}

static void test_units(void) {
    /* tick 0.5: fd 0 -> mul 2; fd 1 -> div 5; fd 2 -> div 50 */
    int64_t div[19] = {0}, mul[19] = {0};
    mul[0] = 2;
    div[1] = 5;
    div[2] = 50;
    int64_t m[] = {6421, 64215, 642150, 64216, INT64_MAX / 2 + 1};
    int8_t f[] = {0, 1, 2, 1, 0};
    int64_t out[5];
    EXPECT_EQ(tardis_units(m, f, 3, div, mul, out), -1);
    EXPECT(out[0] == 12842 && out[1] == 12843 && out[2] == 12843);
    EXPECT_EQ(tardis_units(m, f, 4, div, mul, out), 3);  /* not a multiple */
    int64_t m2[] = {1, INT64_MAX / 2 + 1};
    int8_t f2[] = {0, 0};
    EXPECT_EQ(tardis_units(m2, f2, 2, div, mul, out), 1);  /* overflow */
    int64_t m3[] = {0, 5};
    int8_t f3[] = {3, 3};  /* fd 3: div 0 and mul 0 -> only 0 */
    EXPECT_EQ(tardis_units(m3, f3, 2, div, mul, out), 1);
    int8_t f4[] = {0, 19};
    EXPECT_EQ(tardis_units(m3, f4, 2, div, mul, out), 1);
}

static void test_choice_and_equal(void) {
    const char *choices[] = {"bid", "ask", ""};
    column ch = col(choices, 3);
    int8_t values[] = {1, -1, 0};
    const char *s[] = {"bid", "ask", "", "ask"};
    column c = col(s, 4);
    int8_t out[4];
    EXPECT_EQ(tardis_choice(c.off, c.data, 4, ch.off, ch.data, 3, values, out), -1);
    EXPECT(out[0] == 1 && out[1] == -1 && out[2] == 0 && out[3] == -1);
    EXPECT_EQ(tardis_choice(c.off, c.data, 4, ch.off, ch.data, 2, values, out), 2);
    EXPECT_EQ(tardis_all_equal(c.off, c.data, 1, (const uint8_t *)"bid", 3), -1);
    EXPECT_EQ(tardis_all_equal(c.off, c.data, 4, (const uint8_t *)"bid", 3), 1);
    EXPECT_EQ(tardis_all_equal(c.off, c.data, 0, (const uint8_t *)"bid", 3), -1);
    drop(c);
    drop(ch);
}

static void test_garbage(void) {
    /* every byte value in every position of short strings: no crash, no out-of-bounds read */
    uint8_t buf[4];
    int32_t off[2] = {0, 0};
    int64_t o64;
    int8_t o8;
    int32_t coff[2] = {0, 3};
    int8_t val = 1;
    srand(7);
    for (int len = 0; len <= 4; len++) {
        for (int t = 0; t < 5000; t++) {
            uint8_t *d = malloc(len ? (size_t)len : 1);
            for (int k = 0; k < len; k++) d[k] = (uint8_t)(t < 256 && k == 0 ? t : rand() & 255);
            memcpy(buf, d, (size_t)len);
            off[1] = len;
            int64_t r = tardis_ints(off, d, 1, INT64_MAX, 1, &o64);
            EXPECT(r == -1 || r == 0);
            r = tardis_decimals(off, d, 1, 1, &o64, &o8);
            EXPECT(r == -1 || r == 0);
            r = tardis_choice(off, d, 1, coff, (const uint8_t *)"bid", 1, &val, &o8);
            EXPECT(r == -1 || r == 0);
            free(d);
        }
    }
    /* bad arguments are refusals, not crashes */
    EXPECT_EQ(tardis_ints(0, buf, 1, 1, 1, &o64), 0);
    EXPECT_EQ(tardis_decimals(0, buf, 1, 1, &o64, &o8), 0);
    int32_t rev[2] = {3, 1};  /* offsets going backwards */
    EXPECT_EQ(tardis_ints(rev, buf, 1, 1, 1, &o64), 0);
    EXPECT_EQ(tardis_decimals(rev, buf, 1, 1, &o64, &o8), 0);
    EXPECT_EQ(tardis_choice(rev, buf, 1, coff, (const uint8_t *)"bid", 1, &val, &o8), 0);
}

int main(void) {
    test_ints();
    test_decimals();
    test_units();
    test_choice_and_equal();
    test_garbage();
    return report();
}
