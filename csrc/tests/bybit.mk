# C unit tests of the Bybit line parser and book (csrc/bybit.c), included by csrc/Makefile.
$(BUILD)/test_bybit: tests/test_bybit.c tests/expect.h bybit.c bybit.h jsonlines.c jsonlines.h lobsim.h
	mkdir -p $(BUILD)
	$(CC) $(CFLAGS) -I. tests/test_bybit.c bybit.c jsonlines.c -o $@

READER_TESTS += $(BUILD)/test_bybit
