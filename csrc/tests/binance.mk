# C unit tests of the Binance line parser (csrc/binance.c), included by csrc/Makefile.
$(BUILD)/test_binance: tests/test_binance.c tests/expect.h binance.c binance.h jsonlines.c jsonlines.h lobsim.h
	mkdir -p $(BUILD)
	$(CC) $(CFLAGS) -I. tests/test_binance.c binance.c jsonlines.c -o $@

READER_TESTS += $(BUILD)/test_binance
