package main

import (
	"runtime/debug"
	"strings"
	"testing"
)

// recordsRevision is whether Go stamped this binary with its own
// vcs.revision (test binaries are not), which wins over the linked one.
func recordsRevision() bool {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return false
	}
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" {
			return true
		}
	}
	return false
}

// A build that records no vcs.revision (GOFLAGS=-buildvcs=false) reports
// the commit make passes with -ldflags "-X main.commit=…".
func TestVersionReportsLinkedCommit(t *testing.T) {
	old := commit
	t.Cleanup(func() { commit = old })
	commit = "0123456789abcdef0123456789abcdef01234567"
	b := readBuildInfo()
	if b.Commit != commit && !recordsRevision() {
		t.Fatalf("commit = %q, want the linked %q", b.Commit, commit)
	}
	if !strings.Contains(versionString(), "(commit "+b.Commit) {
		t.Fatalf("versionString() = %q, want it to name commit %s", versionString(), b.Commit)
	}
}
