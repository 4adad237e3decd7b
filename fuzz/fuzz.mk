# Fuzzing with libFuzzer (clang-14): included by the Makefile. See docs/fuzzing.md.
#
#   make fuzz-build                every target into $(BUILD)/fuzz/fuzz_<target> (BUILD=build)
#   make fuzz [FUZZ_SECONDS=60]    each target for N seconds on $(BUILD)/fuzz/corpus-work/<target>
#                                  (make -j2 fuzz runs two at once); fails on a crash, leak or
#                                  timeout, whose input lands in $(BUILD)/fuzz/artifacts/<target>/
#   make fuzz-smoke                what `make test` runs: the committed corpus and the stored
#                                  regressions replayed, then each target for a few seconds
#
# The project's sources are compiled again here, with coverage instrumentation and ASan/UBSan,
# into $(BUILD)/fuzz/obj/ (never mixed with the normal build), and archived so that each target
# links only what it reaches.

FUZZ_CC            ?= clang-14
FUZZ_CXX           ?= clang++-14
FUZZ_SECONDS       ?= 60
FUZZ_SMOKE_SECONDS ?= 1
FUZZ_OUT           := $(BUILD)/fuzz

FUZZ_TARGETS := $(sort $(patsubst fuzz/fuzz_%.c,%,$(wildcard fuzz/fuzz_*.c)))
FUZZ_BINS    := $(patsubst %,$(FUZZ_OUT)/fuzz_%,$(FUZZ_TARGETS))
FUZZ_RUNS    := $(patsubst %,fuzz-run-%,$(FUZZ_TARGETS))

FUZZ_PKGS := libuv json-c yaml-0.1 libcurl openssl $(PKGS_RX)
FUZZ_SAN  := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
FUZZ_BASE := $(CSTD) -O1 -g $(FUZZ_SAN) -pthread
# Project sources keep their warnings visible but do not fail on clang-only ones: the normal
# build (-Werror) is where warnings are enforced. Our own fuzz/ code is held to -Werror.
FUZZ_CFLAGS := $(FUZZ_BASE) -MMD -MP -Icommon -Icontroller -Iproxy -I$(LLHTTP_INC_DIR) \
               $(call pc_cflags,$(FUZZ_PKGS))
FUZZ_LIBS   := $(call pc_libs,$(FUZZ_PKGS)) -lm
FUZZ_CXXFLAGS := -std=c++17 -O1 -g $(FUZZ_SAN) -pthread -MMD -MP -Icommon \
                 $(call pc_cflags,$(PKGS_RX)) -Wall -Wextra

FUZZ_LIB_OBJ    := $(patsubst %.c,$(FUZZ_OUT)/obj/%.o,$(COMMON_SRC) $(CONTROLLER_SRC) $(PROXY_SRC))
FUZZ_CXX_OBJ    := $(patsubst %.cc,$(FUZZ_OUT)/obj/%.o,$(COMMON_CXX_SRC))
FUZZ_LLHTTP_OBJ := $(patsubst $(LLHTTP_SRC_DIR)/%.c,$(FUZZ_OUT)/obj/llhttp/%.o,$(LLHTTP_SRC))
FUZZ_OWN_OBJ    := $(patsubst %.c,$(FUZZ_OUT)/obj/%.o,$(wildcard fuzz/*.c))
FUZZ_LIB        := $(FUZZ_OUT)/liblegate-fuzz.a
# With C++ in the mix (common/rx.cc wraps RE2) the C++ driver links, for its runtime.
FUZZ_LD         := $(if $(COMMON_CXX_SRC),$(FUZZ_CXX),$(FUZZ_CC))

.PHONY: fuzz fuzz-build fuzz-smoke fuzz-toolchain $(FUZZ_RUNS)

# A clear message instead of a link error when the compiler or its fuzzer runtime is missing.
fuzz-toolchain:
	@command -v $(FUZZ_CC) >/dev/null 2>&1 && command -v $(FUZZ_CXX) >/dev/null 2>&1 || { \
	  echo "fuzz: $(FUZZ_CC) or $(FUZZ_CXX) not found (scripts/deps.sh installs clang-14 and libclang-rt-14-dev)" >&2; \
	  exit 1; }
	@test -e "$$($(FUZZ_CC) -print-resource-dir)/lib/linux/libclang_rt.fuzzer-$$(uname -m).a" || { \
	  echo "fuzz: libFuzzer runtime missing (apt-get install libclang-rt-14-dev)" >&2; exit 1; }

fuzz-build: $(FUZZ_BINS)

$(FUZZ_LIB_OBJ): $(FUZZ_OUT)/obj/%.o: %.c | fuzz-toolchain
	$(call msg,FUZZCC,$<)
	@mkdir -p $(dir $@)
	$(Q)$(FUZZ_CC) $(FUZZ_CFLAGS) $(filter-out -Werror,$(WARN)) -fsanitize=fuzzer-no-link -c -o $@ $<

$(FUZZ_CXX_OBJ): $(FUZZ_OUT)/obj/%.o: %.cc | fuzz-toolchain
	$(call msg,FUZZCXX,$<)
	@mkdir -p $(dir $@)
	$(Q)$(FUZZ_CXX) $(FUZZ_CXXFLAGS) -fsanitize=fuzzer-no-link -c -o $@ $<

$(FUZZ_OWN_OBJ): $(FUZZ_OUT)/obj/%.o: %.c | fuzz-toolchain
	$(call msg,FUZZCC,$<)
	@mkdir -p $(dir $@)
	$(Q)$(FUZZ_CC) $(FUZZ_CFLAGS) $(WARN) -fsanitize=fuzzer-no-link -c -o $@ $<

# llhttp is instrumented too: it is the first parser a request meets.
$(FUZZ_LLHTTP_OBJ): $(FUZZ_OUT)/obj/llhttp/%.o: $(LLHTTP_SRC_DIR)/%.c | fuzz-toolchain
	$(call msg,FUZZCC,$<)
	@mkdir -p $(dir $@)
	$(Q)$(FUZZ_CC) $(FUZZ_BASE) -I$(LLHTTP_INC_DIR) -fsanitize=fuzzer-no-link -c -o $@ $<

$(FUZZ_LIB): $(FUZZ_LIB_OBJ) $(FUZZ_CXX_OBJ) $(FUZZ_LLHTTP_OBJ)
	$(call msg,AR,$@)
	$(Q)rm -f $@ && ar rcs $@ $^

$(FUZZ_BINS): $(FUZZ_OUT)/fuzz_%: $(FUZZ_OUT)/obj/fuzz/fuzz_%.o $(FUZZ_OUT)/obj/fuzz/oracle.o \
                                  $(FUZZ_LIB)
	$(call msg,LD,$@)
	$(Q)$(FUZZ_LD) $(FUZZ_BASE) -fsanitize=fuzzer -o $@ $^ $(FUZZ_LIBS)

# Each run records its status; `fuzz` reports them all, then fails if one failed.
$(FUZZ_RUNS): fuzz-run-%: $(FUZZ_OUT)/fuzz_%
	@echo "fuzz $*: $(FUZZ_SECONDS) s, log in $(FUZZ_OUT)/logs/$*.log"
	@FUZZ_OUT=$(FUZZ_OUT) fuzz/run.sh run $* $(FUZZ_SECONDS) >/dev/null || true

fuzz: $(FUZZ_RUNS)
	@FUZZ_OUT=$(FUZZ_OUT) fuzz/run.sh report $(FUZZ_TARGETS)

# Sequential: the smoke test shares the machine with the rest of `make test`.
fuzz-smoke: fuzz-build
	@fail=0; for t in $(FUZZ_TARGETS); do \
	  FUZZ_OUT=$(FUZZ_OUT) fuzz/run.sh smoke $$t $(FUZZ_SMOKE_SECONDS) || fail=1; \
	done; exit $$fail

-include $(wildcard $(FUZZ_OUT)/obj/*/*.d $(FUZZ_OUT)/obj/llhttp/*.d)
