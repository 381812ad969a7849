# C unit tests of the Kraken line parser, book and checksum (csrc/kraken.c), included by csrc/Makefile.
$(BUILD)/test_kraken: tests/test_kraken.c tests/expect.h kraken.c kraken.h jsonlines.c jsonlines.h lobsim.h
	mkdir -p $(BUILD)
	$(CC) $(CFLAGS) -I. tests/test_kraken.c kraken.c jsonlines.c -o $@

READER_TESTS += $(BUILD)/test_kraken
