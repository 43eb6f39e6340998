# recontextd: build, install, uninstall, package.
#
#   make                         release build, Swift runtime linked statically (swift build)
#   sudo make install            PREFIX=/usr/local by default; PREFIX=/usr for the system; DESTDIR honoured
#   sudo make uninstall          the same variables as install
#   make deb                     out/recontextd_VERSION_ARCH.deb (dpkg-deb), laid out for PREFIX=/usr,
#                                binary stripped
#
# What goes where (PREFIX=/usr/local | PREFIX=/usr):
#   binary         $(BINDIR)/recontextd
#   unit           /usr/local/lib/systemd/system | /lib/systemd/system   (ExecStart= names $(BINDIR))
#   configuration  /etc/recontextd/recontextd.yaml, never overwritten: with one there already,
#                  the example goes beside it as recontextd.yaml.example
#   libvirt hook   /etc/libvirt/hooks/qemu when no other hook is there (else hooks/qemu.d/recontextd)
#   man page       $(MANDIR)/man1/recontextd.1, generated from the argument parser
#   completions    bash-completion/completions/recontextd, zsh (site-functions | vendor-completions)/_recontextd,
#                  fish/vendor_completions.d/recontextd.fish under $(DATADIR)
#   docs           $(DOCDIR)/README.md and recontextd.yaml.example
#   guest packages $(GUESTDIR) = $(DATADIR)/recontextd/guest: the companion's .deb and tarball, for
#                  images of VMs with companion="yes" (context.companion-directory)
#
#   make guest-deb               out/recontext-guest_VERSION_all.deb, the guest companion (guest/README.md)
#   make guest-tarball           out/recontext-guest-VERSION.tar.gz with install.sh, for other distributions
#   make guest-test              guest/tests/run.sh under bash, dash and busybox sh (those installed)
#
# BINARY=path installs (or packages) that binary instead of building one; GEN and OUT move the
# generated files and the .deb (tests use both).

PREFIX ?= /usr/local
DESTDIR ?=
SYSCONFDIR ?= /etc
BINDIR ?= $(PREFIX)/bin
DATADIR ?= $(PREFIX)/share
MANDIR ?= $(DATADIR)/man
DOCDIR ?= $(DATADIR)/doc/recontextd
ifeq ($(PREFIX),/usr)
UNITDIR ?= /lib/systemd/system
ZSHCOMPDIR ?= $(DATADIR)/zsh/vendor-completions
else
UNITDIR ?= $(PREFIX)/lib/systemd/system
ZSHCOMPDIR ?= $(DATADIR)/zsh/site-functions
endif
BASHCOMPDIR ?= $(DATADIR)/bash-completion/completions
FISHCOMPDIR ?= $(DATADIR)/fish/vendor_completions.d
CONFDIR ?= $(SYSCONFDIR)/recontextd
HOOKDIR ?= $(SYSCONFDIR)/libvirt/hooks
# The guest companion's packages, for VMs with companion="yes": recontextd reads them from
# context.companion-directory, /usr/share/recontextd/guest by default (PREFIX=/usr, as the .deb).
GUESTDIR ?= $(DATADIR)/recontextd/guest

SWIFT ?= swift
SCRATCH_PATH ?= .build
SWIFT_BUILD_FLAGS ?= -c release --static-swift-stdlib
BINARY ?= $(SCRATCH_PATH)/release/recontextd
GEN ?= $(SCRATCH_PATH)/dist
OUT ?= out
PYTHON ?= python3
INSTALL ?= install

HOOK_SOURCE := systemd/libvirt-hook-qemu
HOOK_MARKER := libvirt's qemu hook for recontextd

# The files made from the binary and the sources, in $(GEN).
GENERATED := $(GEN)/recontextd.service $(GEN)/recontextd.1 $(GEN)/recontextd.bash $(GEN)/_recontextd \
	$(GEN)/recontextd.fish $(GEN)/libvirt-hook-qemu

.PHONY: all build install install-files install-config install-hook install-guest uninstall deb clean-dist \
	guest-deb guest-tarball guest-test

all: build

build:
	$(SWIFT) build --scratch-path $(SCRATCH_PATH) $(SWIFT_BUILD_FLAGS) --product recontextd

$(BINARY):
	$(SWIFT) build --scratch-path $(SCRATCH_PATH) $(SWIFT_BUILD_FLAGS) --product recontextd

# MARK: - Generated files

$(GEN)/recontextd.service: systemd/recontextd.service
	@mkdir -p $(GEN)
	sed 's|/usr/bin/recontextd|$(BINDIR)/recontextd|g' $< > $@.tmp && mv $@.tmp $@

$(GEN)/recontextd.1: $(BINARY) packaging/manpage.py
	@mkdir -p $(GEN)
	$(BINARY) --experimental-dump-help | $(PYTHON) packaging/manpage.py > $@.tmp && mv $@.tmp $@

$(GEN)/recontextd.bash: $(BINARY)
	@mkdir -p $(GEN)
	$(BINARY) --generate-completion-script bash > $@.tmp && mv $@.tmp $@

$(GEN)/_recontextd: $(BINARY)
	@mkdir -p $(GEN)
	$(BINARY) --generate-completion-script zsh > $@.tmp && mv $@.tmp $@

$(GEN)/recontextd.fish: $(BINARY)
	@mkdir -p $(GEN)
	$(BINARY) --generate-completion-script fish > $@.tmp && mv $@.tmp $@

# The hook names the installed binary.
$(GEN)/libvirt-hook-qemu: $(wildcard $(HOOK_SOURCE))
	@mkdir -p $(GEN)
	@if [ -f $(HOOK_SOURCE) ]; then \
		sed 's|^RECONTEXTD_BINARY_DEFAULT=.*|RECONTEXTD_BINARY_DEFAULT=$(BINDIR)/recontextd|' $(HOOK_SOURCE) > $@.tmp && mv $@.tmp $@; \
	else \
		: > $@; \
	fi

# MARK: - Install

install: install-files install-config install-hook
	@echo "installed recontextd in $(DESTDIR)$(PREFIX); edit $(CONFDIR)/recontextd.yaml, then: systemctl daemon-reload && systemctl enable --now recontextd"
	@if [ "$(GUESTDIR)" != /usr/share/recontextd/guest ]; then \
		echo "the guest companion's packages are in $(GUESTDIR): set context.companion-directory to it"; \
	fi

# Everything but the configuration and the hook (also what the .deb is made of).
install-files: $(BINARY) $(GENERATED) install-guest
	$(INSTALL) -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(UNITDIR) $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(BASHCOMPDIR) \
		$(DESTDIR)$(ZSHCOMPDIR) $(DESTDIR)$(FISHCOMPDIR) $(DESTDIR)$(DOCDIR)
	$(INSTALL) -m 0755 $(BINARY) $(DESTDIR)$(BINDIR)/recontextd
	$(INSTALL) -m 0644 $(GEN)/recontextd.service $(DESTDIR)$(UNITDIR)/recontextd.service
	$(INSTALL) -m 0644 $(GEN)/recontextd.1 $(DESTDIR)$(MANDIR)/man1/recontextd.1
	$(INSTALL) -m 0644 $(GEN)/recontextd.bash $(DESTDIR)$(BASHCOMPDIR)/recontextd
	$(INSTALL) -m 0644 $(GEN)/_recontextd $(DESTDIR)$(ZSHCOMPDIR)/_recontextd
	$(INSTALL) -m 0644 $(GEN)/recontextd.fish $(DESTDIR)$(FISHCOMPDIR)/recontextd.fish
	$(INSTALL) -m 0644 README.md $(DESTDIR)$(DOCDIR)/README.md
	$(INSTALL) -m 0644 systemd/recontextd.yaml $(DESTDIR)$(DOCDIR)/recontextd.yaml.example

# The guest companion's .deb and tarball (built into $(GEN)/guest-packages), for images of VMs
# with companion="yes".
install-guest:
	$(MAKE) --no-print-directory guest-deb guest-tarball OUT=$(abspath $(GEN))/guest-packages GEN=$(GEN)
	$(INSTALL) -d $(DESTDIR)$(GUESTDIR)
	$(INSTALL) -m 0644 $(GEN)/guest-packages/recontext-guest_$(GUEST_VERSION)_all.deb \
		$(GEN)/guest-packages/recontext-guest-$(GUEST_VERSION).tar.gz $(DESTDIR)$(GUESTDIR)/

# Never overwrites a configuration: with one there, the example goes beside it.
install-config:
	@$(INSTALL) -d -m 0755 $(DESTDIR)$(CONFDIR)
	@if [ -e $(DESTDIR)$(CONFDIR)/recontextd.yaml ]; then \
		$(INSTALL) -m 0644 systemd/recontextd.yaml $(DESTDIR)$(CONFDIR)/recontextd.yaml.example; \
		echo "kept $(DESTDIR)$(CONFDIR)/recontextd.yaml; the new example is $(DESTDIR)$(CONFDIR)/recontextd.yaml.example"; \
	else \
		$(INSTALL) -m 0640 systemd/recontextd.yaml $(DESTDIR)$(CONFDIR)/recontextd.yaml; \
		echo "installed the example configuration $(DESTDIR)$(CONFDIR)/recontextd.yaml: set this host's facts in it"; \
	fi

# hooks/qemu when it is free or ours; otherwise hooks/qemu.d/recontextd (libvirt >= 6.5 runs both).
install-hook: $(GEN)/libvirt-hook-qemu
	@if [ ! -s $(GEN)/libvirt-hook-qemu ]; then \
		echo "no $(HOOK_SOURCE) in this tree: no libvirt hook installed"; \
	elif [ ! -e $(DESTDIR)$(HOOKDIR)/qemu ] || grep -qF "$(HOOK_MARKER)" $(DESTDIR)$(HOOKDIR)/qemu; then \
		$(INSTALL) -d -m 0755 $(DESTDIR)$(HOOKDIR); \
		$(INSTALL) -m 0755 $(GEN)/libvirt-hook-qemu $(DESTDIR)$(HOOKDIR)/qemu; \
		echo "installed the libvirt hook $(DESTDIR)$(HOOKDIR)/qemu: reload libvirtd (or virtqemud) to use it"; \
	else \
		$(INSTALL) -d -m 0755 $(DESTDIR)$(HOOKDIR)/qemu.d; \
		$(INSTALL) -m 0755 $(GEN)/libvirt-hook-qemu $(DESTDIR)$(HOOKDIR)/qemu.d/recontextd; \
		echo "$(DESTDIR)$(HOOKDIR)/qemu is another hook: installed $(DESTDIR)$(HOOKDIR)/qemu.d/recontextd; reload libvirtd (or virtqemud)"; \
	fi

# MARK: - Uninstall

# Removes what install put there. The configuration goes only when it is still the example; the
# hook only when it is ours.
uninstall:
	rm -f $(DESTDIR)$(BINDIR)/recontextd $(DESTDIR)$(UNITDIR)/recontextd.service \
		$(DESTDIR)$(MANDIR)/man1/recontextd.1 $(DESTDIR)$(BASHCOMPDIR)/recontextd \
		$(DESTDIR)$(ZSHCOMPDIR)/_recontextd $(DESTDIR)$(FISHCOMPDIR)/recontextd.fish \
		$(DESTDIR)$(DOCDIR)/README.md $(DESTDIR)$(DOCDIR)/recontextd.yaml.example \
		$(DESTDIR)$(CONFDIR)/recontextd.yaml.example
	rm -f $(DESTDIR)$(GUESTDIR)/recontext-guest_*_all.deb $(DESTDIR)$(GUESTDIR)/recontext-guest-*.tar.gz
	@rmdir $(DESTDIR)$(GUESTDIR) $(DESTDIR)$(DATADIR)/recontextd 2>/dev/null || true
	@rmdir $(DESTDIR)$(DOCDIR) 2>/dev/null || true
	@if [ -f $(DESTDIR)$(CONFDIR)/recontextd.yaml ]; then \
		if cmp -s systemd/recontextd.yaml $(DESTDIR)$(CONFDIR)/recontextd.yaml; then \
			rm -f $(DESTDIR)$(CONFDIR)/recontextd.yaml; \
		else \
			echo "kept $(DESTDIR)$(CONFDIR)/recontextd.yaml (changed from the example)"; \
		fi; \
	fi
	@rmdir $(DESTDIR)$(CONFDIR) 2>/dev/null || true
	@for hook in $(DESTDIR)$(HOOKDIR)/qemu $(DESTDIR)$(HOOKDIR)/qemu.d/recontextd; do \
		if [ -f $$hook ] && grep -qF "$(HOOK_MARKER)" $$hook; then rm -f $$hook && echo "removed $$hook"; fi; \
	done
	@rmdir $(DESTDIR)$(HOOKDIR)/qemu.d 2>/dev/null || true

# MARK: - Debian package

DEBROOT = $(GEN)/deb/root
DEB_COMPRESS ?= xz
DEB_VERSION = $(shell $(BINARY) --version)
DEB_ARCH = $(shell dpkg --print-architecture)

deb: $(BINARY)
	rm -rf $(DEBROOT)
	$(MAKE) --no-print-directory install-files DESTDIR=$(abspath $(DEBROOT)) PREFIX=/usr BINARY=$(BINARY) \
		GEN=$(GEN)/deb/gen SCRATCH_PATH=$(SCRATCH_PATH)
	strip --strip-unneeded $(DEBROOT)/usr/bin/recontextd
	gzip -9n $(DEBROOT)/usr/share/man/man1/recontextd.1
	$(INSTALL) -d -m 0755 $(DEBROOT)/etc/recontextd $(DEBROOT)/usr/share/recontextd $(DEBROOT)/DEBIAN
	$(INSTALL) -m 0640 systemd/recontextd.yaml $(DEBROOT)/etc/recontextd/recontextd.yaml
	@if [ -s $(GEN)/deb/gen/libvirt-hook-qemu ]; then \
		$(INSTALL) -m 0755 $(GEN)/deb/gen/libvirt-hook-qemu $(DEBROOT)/usr/share/recontextd/libvirt-hook-qemu; \
	fi
	$(INSTALL) -m 0644 packaging/deb/conffiles $(DEBROOT)/DEBIAN/conffiles
	$(INSTALL) -m 0755 packaging/deb/postinst packaging/deb/prerm packaging/deb/postrm $(DEBROOT)/DEBIAN/
	sed -e 's|@VERSION@|$(DEB_VERSION)|' -e 's|@ARCH@|$(DEB_ARCH)|' \
		-e "s|@INSTALLED_SIZE@|$$(du -sk --exclude=DEBIAN $(DEBROOT) | cut -f1)|" \
		-e "s|@DEPENDS@|$$(packaging/deb/depends.sh $(BINARY))|" \
		packaging/deb/control.in > $(DEBROOT)/DEBIAN/control
	@mkdir -p $(OUT)
	dpkg-deb --root-owner-group -Z$(DEB_COMPRESS) --build $(DEBROOT) $(OUT)/recontextd_$(DEB_VERSION)_$(DEB_ARCH).deb

# MARK: - Guest companion

# The version lives in one place: the RECONTEXT_VERSION= line of guest/recontext-apply.
GUEST_VERSION = $(shell sed -n 's/^RECONTEXT_VERSION=//p' guest/recontext-apply)
GUEST_DEBROOT = $(GEN)/guest-deb/root
GUEST_TARDIR = $(GEN)/guest-tar/recontext-guest-$(GUEST_VERSION)
GUEST_UNITS = guest/systemd/recontext-apply.service guest/systemd/recontext-apply@.service \
	guest/systemd/recontext-channel.service
GUEST_RULES = guest/udev/65-recontext.rules guest/udev/66-recontext-channel.rules

guest-deb:
	rm -rf $(GUEST_DEBROOT)
	$(INSTALL) -d -m 0755 $(GUEST_DEBROOT)/usr/sbin $(GUEST_DEBROOT)/lib/udev/rules.d \
		$(GUEST_DEBROOT)/lib/systemd/system $(GUEST_DEBROOT)/etc/recontext/hooks.d \
		$(GUEST_DEBROOT)/usr/share/doc/recontext-guest $(GUEST_DEBROOT)/DEBIAN
	$(INSTALL) -m 0755 guest/recontext-apply guest/recontext-channel $(GUEST_DEBROOT)/usr/sbin/
	$(INSTALL) -m 0644 $(GUEST_RULES) $(GUEST_DEBROOT)/lib/udev/rules.d/
	$(INSTALL) -m 0644 $(GUEST_UNITS) $(GUEST_DEBROOT)/lib/systemd/system/
	$(INSTALL) -m 0644 guest/hooks.d/README $(GUEST_DEBROOT)/etc/recontext/hooks.d/README
	$(INSTALL) -m 0644 guest/README.md $(GUEST_DEBROOT)/usr/share/doc/recontext-guest/README.md
	$(INSTALL) -m 0644 guest/packaging/conffiles $(GUEST_DEBROOT)/DEBIAN/conffiles
	$(INSTALL) -m 0755 guest/packaging/postinst guest/packaging/prerm guest/packaging/postrm $(GUEST_DEBROOT)/DEBIAN/
	sed -e 's|@VERSION@|$(GUEST_VERSION)|' \
		-e "s|@INSTALLED_SIZE@|$$(du -sk --exclude=DEBIAN $(GUEST_DEBROOT) | cut -f1)|" \
		guest/packaging/control.in > $(GUEST_DEBROOT)/DEBIAN/control
	@mkdir -p $(OUT)
	dpkg-deb --root-owner-group -Z$(DEB_COMPRESS) --build $(GUEST_DEBROOT) $(OUT)/recontext-guest_$(GUEST_VERSION)_all.deb

guest-tarball:
	rm -rf $(GEN)/guest-tar
	$(INSTALL) -d -m 0755 $(GUEST_TARDIR)/udev $(GUEST_TARDIR)/systemd $(GUEST_TARDIR)/hooks.d
	$(INSTALL) -m 0755 guest/recontext-apply guest/recontext-channel guest/packaging/install.sh $(GUEST_TARDIR)/
	$(INSTALL) -m 0644 guest/README.md $(GUEST_TARDIR)/
	$(INSTALL) -m 0644 $(GUEST_RULES) $(GUEST_TARDIR)/udev/
	$(INSTALL) -m 0644 $(GUEST_UNITS) $(GUEST_TARDIR)/systemd/
	$(INSTALL) -m 0644 guest/hooks.d/README $(GUEST_TARDIR)/hooks.d/
	@mkdir -p $(OUT)
	tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 -C $(GEN)/guest-tar \
		-czf $(OUT)/recontext-guest-$(GUEST_VERSION).tar.gz recontext-guest-$(GUEST_VERSION)

guest-test:
	@status=0; for shell in bash dash "busybox sh"; do \
		if command -v $${shell%% *} >/dev/null 2>&1; then $$shell guest/tests/run.sh || status=1; \
		else echo "guest-test: no $$shell here, not tested with it"; fi; \
	done; exit $$status

clean-dist:
	rm -rf $(GEN) $(OUT)
