# cross/cross.mk: ARM release builds, ARM tests under qemu-user, .deb packages, plain install.
# Included by the top-level Makefile (`include cross/cross.mk`); usable alone with
# `make -f cross/cross.mk <target>` from the repository root. See cross/README.md.
#
# Every target installs what it needs itself, idempotently (apt packages only when missing,
# `rustup target add`/`component add` are no-ops when present, zig + cargo-zigbuild go into
# $(ZIG_VENV) from PyPI once). Root or sudo is needed only for apt-get and `install`.
#
# Arch names used in target names: aarch64, armv7, armv6 (and amd64 for `deb`/`install`).
#   make cross                  stripped static release binaries for aarch64 armv7 armv6
#   make cross-<arch>           one of them -> $(DIST_DIR)/viprouter-<triple>
#   make test-arm               cargo test for every ARM arch under qemu-user (+ interop, see below)
#   make test-arm-<arch>        one arch
#   make ci-arm                 what CI runs: test-arm-aarch64 test-arm-armv7 (ARMv6 is slowest)
#   make interop-arm-<arch>     the pyzmq suite (tests/interop) against the ARM binary under qemu
#   make deb                    .deb for arm64, armhf (ARMv6 baseline) and amd64 -> $(DIST_DIR)/
#   make deb-<arch>             one of them (deb-armv7 = armhf tuned for ARMv7, see README)
#   make deb-lint               lintian on target/dist/*.deb, failing on any tag not overridden
#   make deb-test               the amd64 .deb on a fresh debootstrapped Debian under systemd-nspawn
#   make man-lint               groff and man-db warnings on man/*
#   make install / uninstall    plain install of the host build under $(DESTDIR)$(PREFIX)

CROSS_MK_DIR := $(patsubst %/,%,$(dir $(lastword $(MAKEFILE_LIST))))

CARGO            ?= cargo
RUSTUP           ?= rustup
PYTHON           ?= python3
CARGO_TARGET_DIR ?= target
DIST_DIR         ?= $(CARGO_TARGET_DIR)/dist
# Separate target dir for test builds: build-std + panic=abort (release) and the unwinding
# test harness cannot share one deps/ directory (E0152 duplicate lang item, CROSS.md §4).
ARM_TEST_DIR     ?= $(CARGO_TARGET_DIR)/arm-test
VENV             ?= .venv
# zig + cargo-zigbuild share the interop venv (.venv, git-ignored) by default.
ZIG_VENV         ?= $(VENV)
CARGO_CROSS_CONFIG := $(CROSS_MK_DIR)/config.toml
SUDO             ?= $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT_GET          ?= DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get

CROSS_ARCHES     ?= aarch64 armv7 armv6
DEB_ARCHES       ?= aarch64 armv6 amd64

# Release triples. Static musl everywhere: no glibc-version coupling with the board's OS image.
# Override e.g. TRIPLE_armv7=armv7-unknown-linux-gnueabihf to get a glibc build; glibc builds
# go through zig with GLIBC_PIN (default 2.28 = Debian buster / Pi OS buster and later).
TRIPLE_aarch64   ?= aarch64-unknown-linux-musl
TRIPLE_armv7     ?= armv7-unknown-linux-musleabihf
TRIPLE_armv6     ?= arm-unknown-linux-musleabihf
TRIPLE_amd64     ?= x86_64-unknown-linux-musl
GLIBC_PIN        ?= 2.28

# qemu-user CPU per arch: the oldest core we claim to support, so instructions it lacks trap.
# cortex-a53 = Pi 3 / Zero 2 (64-bit), cortex-a8 = BeagleBone (no integer divide, unlike
# the Pi 2's cortex-a7), arm1176 = Pi 1 / Zero / Zero W.
QEMU_aarch64     ?= qemu-aarch64-static -cpu cortex-a53
QEMU_armv7       ?= qemu-arm-static -cpu cortex-a8
QEMU_armv6       ?= qemu-arm-static -cpu arm1176
QEMU_amd64       ?=

# Debian architecture per arch. armv6 -> armhf: Raspberry Pi OS "armhf" is ARMv6+VFPv2 hard
# float, and ARMv6 code also runs on every ARMv7 armhf system (BeagleBone, Debian armhf).
# armv7 -> armhf as well, but that package must not be installed on a Pi 1/Zero; its file
# name carries "-armv7" so the two never get mixed up.
DEBARCH_aarch64  := arm64
DEBARCH_armv7    := armhf
DEBARCH_armv6    := armhf
DEBARCH_amd64    := amd64
DEBSUFFIX_armv7  := -armv7

# Targets whose std rustup can download (CROSS.md §1). Everything else is built with
# -Zbuild-std from rust-src, linked by zig. Move a triple here if rustup starts serving it.
PREBUILT_STD_TRIPLES ?= aarch64-unknown-linux-musl aarch64-unknown-linux-gnu \
    armv7-unknown-linux-gnueabihf x86_64-unknown-linux-musl x86_64-unknown-linux-gnu

APT_CROSS_PKGS   ?= qemu-user-static binutils musl-tools
# glibc triples only: target libc for qemu's -L sysroot (runner lines in config.toml).
GNU_SYSROOT_aarch64 ?= libc6-arm64-cross
GNU_SYSROOT_armv7   ?= libc6-armhf-cross
GNU_SYSROOT_armv6   ?= libc6-armhf-cross
APT_LINT_PKGS    ?= lintian

VERSION          ?= $(shell sed -n 's/^version *= *"\(.*\)"/\1/p' Cargo.toml | head -n1)
DEB_REVISION     ?= 1
PREFIX           ?= /usr
SYSCONFDIR       ?= /etc
UNITDIR          ?= /lib/systemd/system
MANDIR           ?= $(PREFIX)/share/man
DESTDIR          ?=

# --- helpers ---------------------------------------------------------------------------------
# $(call triple,<arch>) etc.
triple     = $(TRIPLE_$(1))
is_gnu     = $(findstring -gnu,$(call triple,$(1)))
prebuilt   = $(filter $(call triple,$(1)),$(PREBUILT_STD_TRIPLES))
# zig is the C compiler (and linker) of every ARM triple: libsodium (libsodium-sys-stable, the
# CURVE MESSAGE path, always) and ring (rustls' crypto provider, cargo feature `rabbitmq-tls`,
# on by default) are C. On x86-64 it is needed for glibc pinning and for ring; without ring
# (CARGO_FEATURES=--no-default-features [--features rabbitmq]) the musl build uses Debian's
# musl-gcc for libsodium (.cargo/config.toml [env]).
CARGO_FEATURES   ?=
no_ring    = $(and $(filter --no-default-features,$(CARGO_FEATURES)),$(if $(findstring rabbitmq-tls,$(CARGO_FEATURES)),,yes))
needs_zig  = $(if $(filter x86_64-%,$(call triple,$(1))),$(if $(no_ring),$(call is_gnu,$(1)),yes),yes)
upper      = $(shell echo '$(1)' | tr 'a-z-' 'A-Z_')
zig_target = $(call triple,$(1))$(if $(call is_gnu,$(1)),.$(GLIBC_PIN))
# The cargo command line (without the subcommand's trailing args) for <arch>, <subcommand>.
cargo_cmd  = $(if $(call needs_zig,$(1)),\
    PATH="$(abspath $(ZIG_VENV))/bin:$$PATH" $(if $(call prebuilt,$(1)),,RUSTC_BOOTSTRAP=1) \
      $(abspath $(ZIG_VENV))/bin/cargo-zigbuild $(if $(filter build,$(2)),zigbuild,$(2)) \
      --target $(call zig_target,$(1)) $(if $(call prebuilt,$(1)),,-Zbuild-std=std,panic_abort),\
    $(CARGO) $(2) --target $(call triple,$(1))) --config $(CARGO_CROSS_CONFIG)
# RUSTC_BOOTSTRAP=1 (needed for -Zbuild-std) is in proc-macro2's rerun-if-env-changed list, so
# build-std builds sharing host artifacts with normal builds rebuild all proc-macros every time
# they alternate. build-std triples therefore get their own target dir.
tdir       = $(if $(call prebuilt,$(1)),$(CARGO_TARGET_DIR),$(CARGO_TARGET_DIR)/build-std)
test_tdir  = $(if $(call prebuilt,$(1)),$(ARM_TEST_DIR),$(ARM_TEST_DIR)-build-std)
dist_bin   = $(DIST_DIR)/viprouter-$(call triple,$(1))
qemu_wrap  = $(DIST_DIR)/viprouter-$(call triple,$(1))-qemu

# Install Debian packages that are missing (one apt-get update per call, only if needed).
define apt_ensure
@missing=""; for p in $(1); do \
	  dpkg-query -W -f='$${Status}' "$$p" 2>/dev/null | grep -q 'install ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "apt-get install$$missing"; \
	  $(APT_GET) update -qq && $(APT_GET) install -y -qq --no-install-recommends $$missing; \
	fi
endef

.PHONY: cross-deps cross-deps-apt cross-deps-zig cross test-arm ci-arm deb install uninstall \
    install-bin install-systemd uninstall-systemd deb-lint deb-test man-lint \
    $(foreach a,$(CROSS_ARCHES) amd64,cross-$(a) cross-deps-$(a) test-arm-$(a) interop-arm-$(a) deb-$(a))

cross-deps: cross-deps-apt $(foreach a,$(CROSS_ARCHES),cross-deps-$(a))

cross-deps-apt:
	$(call apt_ensure,$(APT_CROSS_PKGS))

# zig (PyPI "ziglang") and cargo-zigbuild in a venv; cargo-zigbuild finds zig via `python -m
# ziglang`, so the venv's bin/ goes first on PATH in cargo_cmd.
cross-deps-zig: $(ZIG_VENV)/bin/cargo-zigbuild
$(ZIG_VENV)/bin/cargo-zigbuild:
	@if ! $(PYTHON) -c 'import ensurepip, venv' 2>/dev/null; then \
	  $(APT_GET) update -qq && $(APT_GET) install -y -qq --no-install-recommends python3 python3-venv; fi
	$(PYTHON) -m venv $(ZIG_VENV)
	$(ZIG_VENV)/bin/pip install -q --disable-pip-version-check ziglang cargo-zigbuild
	@$(ZIG_VENV)/bin/python -m ziglang version

cross: $(foreach a,$(CROSS_ARCHES),cross-$(a))
	@ls -l $(foreach a,$(CROSS_ARCHES),$(call dist_bin,$(a)))

test-arm: $(foreach a,$(CROSS_ARCHES),test-arm-$(a))
ci-arm: test-arm-aarch64 test-arm-armv7

# The interop suite (tests/interop/*.py via pyzmq) runs against the ARM binary when it exists.
ARM_INTEROP ?= $(if $(wildcard tests/interop/*.py),yes)

define ARCH_RULES
cross-deps-$(1): cross-deps-apt $(if $(call needs_zig,$(1)),cross-deps-zig)
	$(if $(call prebuilt,$(1)),$(RUSTUP) target add $(call triple,$(1)),$(RUSTUP) component add rust-src)
	$(if $(call is_gnu,$(1)),$$(call apt_ensure,$(GNU_SYSROOT_$(1))))

# Release build: $(CARGO_TARGET_DIR)/<triple>/release/viprouter, or for build-std triples
# $(CARGO_TARGET_DIR)/build-std/<triple>/release/viprouter (strip=true in the profile),
# copied to $(DIST_DIR)/viprouter-<triple>, plus a qemu wrapper script for host-side tests.
cross-$(1): cross-deps-$(1)
	CARGO_TARGET_DIR=$(call tdir,$(1)) $$(call cargo_cmd,$(1),build) --release --bin viprouter --locked $(CARGO_FEATURES)
	@mkdir -p $(DIST_DIR)
	cp $(call tdir,$(1))/$(call triple,$(1))/release/viprouter $(call dist_bin,$(1))
	printf '#!/bin/sh\nexec $(QEMU_$(1)) "$$$$(dirname "$$$$0")/viprouter-$(call triple,$(1))" "$$$$@"\n' > $(call qemu_wrap,$(1))
	chmod +x $(call qemu_wrap,$(1))
	@printf '%s: %s bytes\n' $(call dist_bin,$(1)) "$$$$(stat -c %s $(call dist_bin,$(1)))"

# Unit + integration tests (cargo test) built for <arch> and run under qemu-user. Release
# settings except: unwinding (test harness), debug assertions and overflow checks on, no LTO and
# parallel codegen (build time). VIPROUTER_TEST_RUNNER lets tests that spawn a child re-enter
# qemu; VIPROUTER_BIN points integration tests at the shipped binary through its qemu wrapper.
test-arm-$(1): cross-$(1)
	CARGO_TARGET_DIR=$(call test_tdir,$(1)) \
	CARGO_PROFILE_RELEASE_PANIC=unwind CARGO_PROFILE_RELEASE_LTO=false \
	CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 CARGO_PROFILE_RELEASE_DEBUG_ASSERTIONS=true \
	CARGO_PROFILE_RELEASE_OVERFLOW_CHECKS=true \
	CARGO_TARGET_$(call upper,$(call triple,$(1)))_RUNNER="$(QEMU_$(1))" \
	VIPROUTER_TEST_RUNNER="$(QEMU_$(1))" VIPROUTER_BIN="$(abspath $(call qemu_wrap,$(1)))" \
	  $$(call cargo_cmd,$(1),test) --release --locked $(CARGO_FEATURES) $(CARGO_TEST_ARGS)
	$(if $(ARM_INTEROP),$(MAKE) interop-arm-$(1))

# Needs the top-level Makefile's `venv` target (pyzmq + pytest in $(VENV)).
interop-arm-$(1): cross-$(1) venv
	VIPROUTER_BIN="$(abspath $(call qemu_wrap,$(1)))" $(VENV)/bin/python -m pytest tests/interop -q $(INTEROP_ARGS)

deb-$(1): cross-$(1)
	GLIBC_PIN=$(GLIBC_PIN) $(CROSS_MK_DIR)/deb/build-deb.sh --bin $(call dist_bin,$(1)) --arch $(DEBARCH_$(1)) \
	  --version $(VERSION)-$(DEB_REVISION) --triple $(call triple,$(1)) \
	  --out $(DIST_DIR)/viprouter_$(VERSION)-$(DEB_REVISION)_$(DEBARCH_$(1))$(DEBSUFFIX_$(1)).deb
endef
$(foreach a,$(CROSS_ARCHES) amd64,$(eval $(call ARCH_RULES,$(a))))

deb: $(foreach a,$(DEB_ARCHES),deb-$(a))
	@ls -l $(DIST_DIR)/*.deb

# lintian on every built package, every tag level (info and pedantic included): fails on any
# tag that is not overridden; each override carries its reason (cross/deb/build-deb.sh).
deb-lint:
	$(call apt_ensure,$(APT_LINT_PKGS))
	lintian --tag-display-limit 0 --display-info --pedantic --display-experimental \
	  --fail-on error,warning,info,pedantic,experimental $(DIST_DIR)/*.deb
	@echo "lintian: no tag on $(notdir $(wildcard $(DIST_DIR)/*.deb))"

# deb-test: the amd64 package on a fresh Debian (cross/deb/test-deb.py): debootstrap a bookworm
# minbase with systemd (nothing cached), boot it with systemd-nspawn, dpkg -i, a libzmq CURVE
# client (the venv's pyzmq) says hello over the ipc endpoint, stop, remove, reinstall, purge,
# and nothing may be left but what policy allows. Needs root and the Debian mirror (DEB_MIRROR).
DEB_AMD64 = $(DIST_DIR)/viprouter_$(VERSION)-$(DEB_REVISION)_amd64.deb
deb-test: deb-amd64 venv
	$(call apt_ensure,debootstrap systemd-container)
	$(VENV)/bin/python $(CROSS_MK_DIR)/deb/test-deb.py --deb $(DEB_AMD64)

# man-lint: the man pages as lintian and man-db read them (the content is checked against the
# program by tests/manpages.rs).
man-lint:
	$(call apt_ensure,groff-base man-db)
	@for p in man/viprouter.8 man/viprouter.conf.5; do \
	  out=$$(groff -t -man -Tutf8 -ww -z $$p 2>&1; LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -E UTF-8 -l -Tutf8 -Z $$p 2>&1 >/dev/null); \
	  if [ -n "$$out" ]; then echo "$$p:"; echo "$$out"; exit 1; fi; echo "$$p: no warnings"; done

# --- plain install (no package manager) --------------------------------------------------------
# Installs INSTALL_BIN, by default the static build for the machine's own arch
# (cross-$(HOST_ARCH)); on a board, copy target/dist/viprouter-<triple> over and pass
# INSTALL_BIN=that file. (Not BIN: the top-level Makefile uses that for the host build.) The config is installed only if
# absent, so an edited one survives; the user and state dir are created as the .deb does.
HOST_ARCH ?= $(patsubst x86_64,amd64,$(patsubst armv7l,armv7,$(patsubst armv6l,armv6,$(shell uname -m))))
INSTALL_BIN ?= $(call dist_bin,$(HOST_ARCH))

install: $(if $(filter $(INSTALL_BIN),$(call dist_bin,$(HOST_ARCH))),cross-$(HOST_ARCH))
	install -D -m 0755 $(INSTALL_BIN) $(DESTDIR)$(PREFIX)/bin/viprouter
	install -D -m 0644 systemd/viprouter.service $(DESTDIR)$(UNITDIR)/viprouter.service
	install -D -m 0644 systemd/viprouter.socket $(DESTDIR)$(UNITDIR)/viprouter.socket
	install -D -m 0644 systemd/README.md $(DESTDIR)$(PREFIX)/share/doc/viprouter/README.systemd.md
	install -D -m 0644 cross/README.md $(DESTDIR)$(PREFIX)/share/doc/viprouter/README.cross.md
	install -D -m 0644 systemd/viprouter.conf $(DESTDIR)$(PREFIX)/share/doc/viprouter/config.default
	install -D -m 0644 LICENSE $(DESTDIR)$(PREFIX)/share/doc/viprouter/LICENSE
	install -d -m 0755 $(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(MANDIR)/man5
	gzip -9n < man/viprouter.8 > $(DESTDIR)$(MANDIR)/man8/viprouter.8.gz
	gzip -9n < man/viprouter.conf.5 > $(DESTDIR)$(MANDIR)/man5/viprouter.conf.5.gz
	chmod 0644 $(DESTDIR)$(MANDIR)/man8/viprouter.8.gz $(DESTDIR)$(MANDIR)/man5/viprouter.conf.5.gz
	install -d -m 0755 $(DESTDIR)$(SYSCONFDIR)/viprouter
	@if [ -e $(DESTDIR)$(SYSCONFDIR)/viprouter/config ]; then \
	  echo "keeping existing $(DESTDIR)$(SYSCONFDIR)/viprouter/config"; \
	else install -m 0644 systemd/viprouter.conf $(DESTDIR)$(SYSCONFDIR)/viprouter/config; fi
	@if [ -z "$(DESTDIR)" ]; then $(CROSS_MK_DIR)/deb/postinst configure; fi
	@if [ -z "$(DESTDIR)" ] && ! command -v deb-systemd-helper >/dev/null && [ -d /run/systemd/system ]; then \
	  systemctl daemon-reload && systemctl enable --now viprouter.service; fi

# Removes the program and units; keeps /etc/viprouter/config, /var/lib/viprouter and the user
# (as `apt remove` does; `make uninstall PURGE=1` removes those too).
uninstall:
	-@if [ -z "$(DESTDIR)" ] && [ -d /run/systemd/system ]; then systemctl disable --now viprouter.socket viprouter.service || true; fi
	rm -f $(DESTDIR)$(PREFIX)/bin/viprouter $(DESTDIR)$(UNITDIR)/viprouter.service $(DESTDIR)$(UNITDIR)/viprouter.socket
	rm -rf $(DESTDIR)$(PREFIX)/share/doc/viprouter
	rm -f $(DESTDIR)$(MANDIR)/man8/viprouter.8.gz $(DESTDIR)$(MANDIR)/man5/viprouter.conf.5.gz
	@if [ -z "$(DESTDIR)" ] && [ -d /run/systemd/system ]; then systemctl daemon-reload; fi
	@if [ -n "$(PURGE)" ] && [ -z "$(DESTDIR)" ]; then $(CROSS_MK_DIR)/deb/postrm purge; fi

# --- systemd checks --------------------------------------------------------------------------
# systemd-verify: `systemd-analyze verify` on copies of the units whose ExecStart points at a
# built binary (verify insists that ExecStart exists). systemd-check: the end-to-end protocol
# checks of systemd/check-systemd.py against SYSTEMD_CHECK_BIN (a host build by default; pass a
# dist/...-qemu wrapper to check an ARM build).
SYSTEMD_CHECK_BIN ?= $(CARGO_TARGET_DIR)/release/viprouter
.PHONY: systemd-verify systemd-check
# (the host build target/release/viprouter is the top-level Makefile's $(BIN) rule)

systemd-verify: $(if $(filter $(SYSTEMD_CHECK_BIN),$(CARGO_TARGET_DIR)/release/viprouter),$(CARGO_TARGET_DIR)/release/viprouter)
	$(call apt_ensure,systemd)
	@d=$$(mktemp -d) && for u in service socket; do \
	  sed "s#/usr/bin/viprouter#$(abspath $(SYSTEMD_CHECK_BIN))#" systemd/viprouter.$$u > $$d/viprouter.$$u; done && \
	  systemd-analyze verify --man=no $$d/viprouter.service $$d/viprouter.socket; rc=$$?; rm -rf $$d; \
	  [ $$rc = 0 ] && echo "systemd-analyze verify: OK"; exit $$rc

systemd-check: $(if $(filter $(SYSTEMD_CHECK_BIN),$(CARGO_TARGET_DIR)/release/viprouter),$(CARGO_TARGET_DIR)/release/viprouter)
	$(call apt_ensure,systemd)
	$(PYTHON) systemd/check-systemd.py notify $(abspath $(SYSTEMD_CHECK_BIN))
	$(PYTHON) systemd/check-systemd.py activation $(abspath $(SYSTEMD_CHECK_BIN))
