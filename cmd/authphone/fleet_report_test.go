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

// The report says when its garbage-collection share rests on too few
// cycles, and when the machine's speed moved during the run; a run cut
// short in its enrolment has neither figure, and says nothing of them.
func TestFleetReportWarnsOfFewCyclesAndDrift(t *testing.T) {
	for _, tc := range []struct {
		rep               fleet.Report
		few, drift, cycle bool
	}{
		{fleet.Report{Phones: 100, CPUPerOpMS: 0.3, GCCycles: 25, CryptoMS: 0.17, CryptoEndMS: 0.17, CryptoDriftPercent: 1.5}, false, false, true},
		{fleet.Report{Phones: 10000, CPUPerOpMS: 0.3, GCCycles: 2, CryptoMS: 0.17, CryptoEndMS: 0.17, CryptoDriftPercent: -0.5}, true, false, true},
		{fleet.Report{Phones: 100, CPUPerOpMS: 0.3, GCCycles: 9, CryptoMS: 0.18, CryptoEndMS: 0.2, CryptoDriftPercent: 18}, false, true, true},
		{fleet.Report{Phones: 100, CPUPerOpMS: 0.3, GCCycles: 9, CryptoMS: 0.16, CryptoEndMS: 0.15, CryptoDriftPercent: -7}, false, true, true},
		{fleet.Report{Phones: 100, Interrupted: true}, false, false, false},
	} {
		var out bytes.Buffer
		a := &app{io: &ioStreams{out: &out, err: &out}}
		a.printFleetReport(&tc.rep)
		s := out.String()
		if got := strings.Contains(s, "too few for a steady figure"); got != tc.few {
			t.Errorf("%d cycles: few-cycles warning %v, want %v:\n%s", tc.rep.GCCycles, got, tc.few, s)
		}
		if got := strings.Contains(s, "speed moved during the run"); got != tc.drift {
			t.Errorf("drift %.1f%%: warning %v, want %v:\n%s", tc.rep.CryptoDriftPercent, got, tc.drift, s)
		}
		if got := strings.Contains(s, "garbage collector's") && strings.Contains(s, "crypto ceiling"); got != tc.cycle {
			t.Errorf("GC and crypto lines shown %v, want %v:\n%s", got, tc.cycle, s)
		}
	}
}
