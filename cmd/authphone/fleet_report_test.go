package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/authphone/authphone/sdk/fleet"
)

// A large fleet run without warm-up approvals says how to measure its
// steady state; a small one, or one with a warm-up, does not.
func TestFleetReportSuggestsAWarmUpForLargeFleets(t *testing.T) {
	for _, tc := range []struct {
		rep  fleet.Report
		hint bool
	}{
		{fleet.Report{Phones: 10000}, true},
		{fleet.Report{Phones: 1000}, true},
		{fleet.Report{Phones: 999}, false},
		{fleet.Report{Phones: 10000, WarmUpUntil: "gc", WarmUpApprovals: 40000}, false},
	} {
		var out bytes.Buffer
		a := &app{io: &ioStreams{out: &out, err: &out}}
		a.printFleetReport(&tc.rep)
		if got := strings.Contains(out.String(), "run again with --warmup auto"); got != tc.hint {
			t.Errorf("%d phones, warm-up %q: hint %v, want %v:\n%s", tc.rep.Phones, tc.rep.WarmUpUntil, got, tc.hint, out.String())
		}
	}
}
