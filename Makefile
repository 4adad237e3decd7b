# Legate's build: one non-recursive Makefile. `make` builds both binaries into build/;
# `make demo` and `make test` are the two commands a newcomer needs (see README.md).
#
#   make [V=1] [SANITIZE=address,undefined] [CC=clang]
#
# SANITIZE builds go to their own directory so they never mix objects with normal builds.

CC       ?= cc
V        ?= 0
SANITIZE ?=
PYTHON   ?= /usr/bin/python3

ifeq ($(SANITIZE),)
BUILD    ?= build
else
BUILD    ?= build/san-$(subst $(comma),-,$(SANITIZE))
endif
comma := ,

LLHTTP_SRC_DIR ?= /usr/share/llhttp
LLHTTP_INC_DIR ?= /usr/share/include/llhttp

PKGS_COMMON     := json-c
PKGS_CONTROLLER := libuv json-c yaml-0.1 libcurl
PKGS_PROXY      := libuv json-c openssl
PKGS_TEST       := check
# RE2 (common/rx.cc, C++): the regex engine of prefix_regex, host_regex, regex_rewrite, ...
PKGS_RX         := re2

pc_cflags = $(shell pkg-config --cflags $(1) 2>/dev/null)
pc_libs   = $(shell pkg-config --libs $(1) 2>/dev/null)

CSTD      := -std=c11 -D_GNU_SOURCE
WARN      := -Wall -Wextra -Werror -Wno-format-zero-length -Wshadow -Wstrict-prototypes \
             -Wmissing-prototypes -Wvla
OPT       ?= -O2 -g
CFLAGS    ?=
LDFLAGS   ?=
ALL_CFLAGS = $(CSTD) $(OPT) $(WARN) -MMD -MP -Icommon -pthread $(CFLAGS)
CXXFLAGS  ?=
ALL_CXXFLAGS = -std=c++17 $(OPT) -Wall -Wextra -Werror -MMD -MP -Icommon -pthread \
               $(call pc_cflags,$(PKGS_RX)) $(CXXFLAGS)
ifneq ($(SANITIZE),)
ALL_CFLAGS += -fsanitize=$(SANITIZE) -fno-omit-frame-pointer -fno-sanitize-recover=all
ALL_CXXFLAGS += -fsanitize=$(SANITIZE) -fno-omit-frame-pointer -fno-sanitize-recover=all
LDFLAGS    += -fsanitize=$(SANITIZE)
endif

ifeq ($(V),1)
Q :=
msg = @true
else
Q := @
msg = @printf '  %-8s %s\n' $(1) $(2);
endif

# ---- sources -------------------------------------------------------------------------------
COMMON_SRC     := $(sort $(wildcard common/*.c))
COMMON_CXX_SRC := $(sort $(wildcard common/*.cc))
CONTROLLER_SRC := $(sort $(filter-out controller/main.c,$(wildcard controller/*.c)))
PROXY_SRC      := $(sort $(filter-out proxy/main.c,$(wildcard proxy/*.c)))
LLHTTP_SRC     := $(LLHTTP_SRC_DIR)/api.c $(LLHTTP_SRC_DIR)/http.c $(LLHTTP_SRC_DIR)/llhttp.c
UNIT_SRC       := $(sort $(wildcard test/unit/test_*.c))

obj = $(patsubst %.c,$(BUILD)/obj/%.o,$(1))
COMMON_OBJ     := $(call obj,$(COMMON_SRC)) $(patsubst %.cc,$(BUILD)/obj/%.o,$(COMMON_CXX_SRC))
CONTROLLER_OBJ := $(call obj,$(CONTROLLER_SRC))
PROXY_OBJ      := $(call obj,$(PROXY_SRC))
LLHTTP_OBJ     := $(patsubst $(LLHTTP_SRC_DIR)/%.c,$(BUILD)/obj/llhttp/%.o,$(LLHTTP_SRC))
UNIT_BIN       := $(patsubst test/unit/%.c,$(BUILD)/test/%,$(UNIT_SRC))

CONTROLLER_BIN := $(BUILD)/legate-controller
PROXY_BIN      := $(BUILD)/legate-proxy

$(CONTROLLER_OBJ) $(BUILD)/obj/controller/main.o: ALL_CFLAGS += $(call pc_cflags,$(PKGS_CONTROLLER))
$(PROXY_OBJ) $(BUILD)/obj/proxy/main.o: ALL_CFLAGS += $(call pc_cflags,$(PKGS_PROXY)) -I$(LLHTTP_INC_DIR)
$(COMMON_OBJ): ALL_CFLAGS += $(call pc_cflags,$(PKGS_COMMON))
$(BUILD)/obj/test/%.o: ALL_CFLAGS += $(call pc_cflags,$(PKGS_CONTROLLER) $(PKGS_PROXY) $(PKGS_TEST)) -I$(LLHTTP_INC_DIR) -Icontroller -Iproxy

RX_LIBS         := $(call pc_libs,$(PKGS_RX)) -lstdc++
CONTROLLER_LIBS := $(call pc_libs,$(PKGS_CONTROLLER)) $(RX_LIBS) -lm
PROXY_LIBS      := $(call pc_libs,$(PKGS_PROXY)) $(RX_LIBS) -lm
TEST_LIBS       := $(call pc_libs,$(PKGS_CONTROLLER) $(PKGS_PROXY) $(PKGS_TEST)) $(RX_LIBS) -lm

# Keep objects that only feed test binaries.
.SECONDARY:

.PHONY: all clean test unit e2e demo deps format format-check bench profile install check-deps
all: $(CONTROLLER_BIN) $(PROXY_BIN)

$(BUILD)/obj/%.o: %.c
	$(call msg,CC,$<)
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(BUILD)/obj/%.o: %.cc
	$(call msg,CXX,$<)
	@mkdir -p $(dir $@)
	$(Q)$(CXX) $(ALL_CXXFLAGS) -c -o $@ $<

# llhttp's generated C is not ours: compile it without our warning set.
$(BUILD)/obj/llhttp/%.o: $(LLHTTP_SRC_DIR)/%.c
	$(call msg,CC,$<)
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(CSTD) $(OPT) -I$(LLHTTP_INC_DIR) $(filter -fsanitize=%,$(ALL_CFLAGS)) -c -o $@ $<

$(BUILD)/libcommon.a: $(COMMON_OBJ)
$(BUILD)/libcontroller.a: $(CONTROLLER_OBJ)
$(BUILD)/libproxy.a: $(PROXY_OBJ) $(LLHTTP_OBJ)
$(BUILD)/%.a:
	$(call msg,AR,$@)
	@mkdir -p $(dir $@)
	$(Q)rm -f $@ && ar rcs $@ $^

$(CONTROLLER_BIN): $(BUILD)/obj/controller/main.o $(BUILD)/libcontroller.a $(BUILD)/libcommon.a
	$(call msg,LD,$@)
	$(Q)$(CC) -pthread $(LDFLAGS) -o $@ $^ $(CONTROLLER_LIBS)

$(PROXY_BIN): $(BUILD)/obj/proxy/main.o $(BUILD)/libproxy.a $(BUILD)/libcommon.a
	$(call msg,LD,$@)
	$(Q)$(CC) -pthread $(LDFLAGS) -o $@ $^ $(PROXY_LIBS)

# Helpers shared by the unit suites (test/unit/harness.h), archived: a suite links them only
# when it uses them.
$(BUILD)/libtest.a: $(BUILD)/obj/test/unit/harness.o

$(BUILD)/test/%: $(BUILD)/obj/test/unit/%.o $(BUILD)/libtest.a $(BUILD)/libcontroller.a $(BUILD)/libproxy.a $(BUILD)/libcommon.a
	$(call msg,LD,$@)
	@mkdir -p $(dir $@)
	$(Q)$(CC) -pthread $(LDFLAGS) -o $@ $^ $(TEST_LIBS)

# ---- dependencies --------------------------------------------------------------------------
# scripts/deps.sh installs missing Debian packages; it runs only when a check fails.
deps:
	@scripts/deps.sh --check >/dev/null 2>&1 || scripts/deps.sh

# ---- tests ---------------------------------------------------------------------------------
unit: $(UNIT_BIN)
	@fail=0; for t in $(UNIT_BIN); do \
	  CK_FORK=yes $$t || fail=1; \
	done; exit $$fail

e2e: all
	LEGATE_BUILD=$(abspath $(BUILD)) $(PYTHON) -m pytest -q -p no:cacheprovider test/kubeapi test/e2e

test: deps
	@$(MAKE) --no-print-directory all unit
	@$(MAKE) --no-print-directory e2e
	@$(MAKE) --no-print-directory helm-check
	@$(MAKE) --no-print-directory fuzz-smoke
	@$(MAKE) --no-print-directory format-check

demo: deps
	@$(MAKE) --no-print-directory all
	@scripts/demo.sh $(BUILD)

bench: deps
	@$(MAKE) --no-print-directory all $(BUILD)/bench-router
	$(BUILD)/bench-router | tee bench/results/router-$$(date +%Y%m%d-%H%M%S).md
	bench/proxy.sh
profile: deps ; @$(MAKE) --no-print-directory all && LEGATE_BUILD=$(abspath $(BUILD)) bench/profile.sh $(PROFILE_ARGS)

$(BUILD)/bench-router: $(BUILD)/obj/bench/router.o $(BUILD)/libproxy.a $(BUILD)/libcommon.a
	$(call msg,LD,$@)
	$(Q)$(CC) -pthread $(LDFLAGS) -o $@ $^ $(PROXY_LIBS)
$(BUILD)/obj/bench/%.o: ALL_CFLAGS += $(call pc_cflags,$(PKGS_PROXY)) -I$(LLHTTP_INC_DIR) -Iproxy

# ---- packaging (Helm chart, plain manifests, image) ---------------------------------------
IMAGE ?= legate:$(shell sed -n 's/^appVersion: *"*\([^"]*\)"*$$/\1/p' helm/legate/Chart.yaml)
.PHONY: tools manifests helm-check image
tools:
	@scripts/fetch-tools.sh >/dev/null
manifests:
	@scripts/render-manifests.sh
helm-check:
	@LEGATE_BUILD=$(abspath $(BUILD)) test/helm/check.sh
image:
	docker build -t $(IMAGE) .

# ---- formatting ----------------------------------------------------------------------------
FORMAT_FILES = $(sort $(wildcard common/*.[ch] controller/*.[ch] proxy/*.[ch] test/unit/*.[ch] fuzz/*.[ch] bench/*.[ch]))
format:
	clang-format -i $(FORMAT_FILES)
format-check:
	@clang-format --dry-run --Werror $(FORMAT_FILES) && echo "format-check: ok"

# ---- install -------------------------------------------------------------------------------
PREFIX  ?= /usr/local
DESTDIR ?=
install: all
	install -d $(DESTDIR)$(PREFIX)/bin
	install -m 0755 $(CONTROLLER_BIN) $(PROXY_BIN) $(DESTDIR)$(PREFIX)/bin/

clean:
	rm -rf build

-include fuzz/fuzz.mk
-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
