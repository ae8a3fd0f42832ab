package fleet_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/authphone/authphone/sdk/cloudapi"

	"github.com/authphone/authphone/sdk"

	"github.com/authphone/authphone/emulator"
	"github.com/authphone/authphone/sdk/backend"
	"github.com/authphone/authphone/sdk/fleet"
)

func newCloud(t testing.TB) *emulator.Server {
	t.Helper()
	emu, err := emulator.New()
	if err != nil {
		t.Fatal(err)
	}
	if err := emu.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = emu.Close(context.Background()) })
	return emu
}

func users(t testing.TB, emu *emulator.Server) int {
	t.Helper()
	us, err := backend.New(emu.URL(), backend.WithAccessKey(emu.AccessKey())).Users(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return len(us)
}

func TestFleetMixLeavesNoUsers(t *testing.T) {
	emu := newCloud(t)
	for _, bio := range []bool{true, false} {
		rep, err := fleet.Run(context.Background(), fleet.Config{Cloud: emu.URL(), AccessKey: emu.AccessKey(),
			Phones: 3, Count: 24, Inflight: 4, Approve: 0.5, Biometric: bio})
		if err != nil {
			t.Fatal(err)
		}
		if rep.Failed() || rep.Started != 24 {
			t.Fatalf("biometric=%v: %+v", bio, rep)
		}
		if got := rep.Outcomes["succeeded"] + rep.Outcomes["failed"]; got != 24 {
			t.Fatalf("outcomes %v, want 24 decided", rep.Outcomes)
		}
		if rep.LatencyMS.P50 <= 0 || rep.LatencyMS.Max < rep.LatencyMS.P99 || rep.CeilingPerSecond <= 0 || rep.CPUPerOpMS <= 0 {
			t.Fatalf("figures: %+v", rep)
		}
		// The collector's share is part of the CPU per approval; the
		// crypto, measured at start and end, is their mean, and the
		// ceiling follows from it.
		if rep.GCCPUPerOpMS < 0 || rep.GCCPUPerOpMS > rep.CPUPerOpMS || rep.CryptoEndMS <= 0 {
			t.Fatalf("GC %.3f ms of %.3f, crypto at the end %.3f ms", rep.GCCPUPerOpMS, rep.CPUPerOpMS, rep.CryptoEndMS)
		}
		start := 2*rep.CryptoMS - rep.CryptoEndMS
		if d := 100 * (rep.CryptoEndMS - start) / start; math.Abs(d-rep.CryptoDriftPercent) > 1e-6 {
			t.Fatalf("drift %.3f%%, want %.3f%% (mean %.4f ms, end %.4f ms)", rep.CryptoDriftPercent, d, rep.CryptoMS, rep.CryptoEndMS)
		}
		if want := float64(runtime.GOMAXPROCS(0)) * 1000 / rep.CryptoMS; math.Abs(rep.CeilingPerSecond-want) > 1e-6*want {
			t.Fatalf("ceiling %.1f/s, want %.1f/s from %.4f ms", rep.CeilingPerSecond, want, rep.CryptoMS)
		}
		if n := users(t, emu); n != 0 {
			t.Fatalf("%d users left after the run", n)
		}
	}
}

func TestFleetKeep(t *testing.T) {
	emu := newCloud(t)
	rep, err := fleet.Run(context.Background(), fleet.Config{Cloud: emu.URL(), AccessKey: emu.AccessKey(),
		Phones: 2, Count: 2, Approve: 1, Biometric: true, Keep: true})
	if err != nil || rep.Failed() || rep.Outcomes["succeeded"] != 2 {
		t.Fatalf("%+v %v", rep, err)
	}
	if n := users(t, emu); n != 2 {
		t.Fatalf("--keep: %d users, want 2", n)
	}
}

func TestFleetInterrupted(t *testing.T) {
	emu := newCloud(t)
	ctx, cancel := context.WithCancel(context.Background())
	n := 0
	rep, err := fleet.Run(ctx, fleet.Config{Cloud: emu.URL(), AccessKey: emu.AccessKey(),
		Phones: 2, Duration: time.Hour, Inflight: 2, Approve: 1, Biometric: true,
		Progress: func(s fleet.Snapshot) {
			if n++; s.Done >= 3 {
				cancel()
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Interrupted || rep.Outcomes["succeeded"] < 3 || rep.Failed() {
		t.Fatalf("%+v", rep)
	}
	if n := users(t, emu); n != 0 {
		t.Fatalf("%d users left after Ctrl-C", n)
	}
}

func TestBadConfig(t *testing.T) {
	for _, c := range []fleet.Config{{Cloud: "x", Count: 1}, {Cloud: "x", Phones: 1}, {Cloud: "x", Phones: 1, Count: -1}} {
		if _, err := fleet.Run(context.Background(), c); !errors.Is(err, fleet.ErrBadConfig) {
			t.Errorf("%+v: %v", c, err)
		}
	}
	for _, s := range []string{"x", "mix:", "mix:1.5", "mix:-0.1"} {
		if _, err := fleet.ParseAnswer(s); !errors.Is(err, fleet.ErrBadConfig) {
			t.Errorf("answer %q: %v", s, err)
		}
	}
	for _, s := range []string{"x", "-1s", "uniform:2s-1s", "uniform:1s"} {
		if _, err := fleet.ParseThink(s); !errors.Is(err, fleet.ErrBadConfig) {
			t.Errorf("think %q: %v", s, err)
		}
	}
	if th, err := fleet.ParseThink("uniform:0-2s"); err != nil || th.Min != 0 || th.Max != 2*time.Second {
		t.Errorf("uniform:0-2s: %+v %v", th, err)
	}
	if p, err := fleet.ParseAnswer("mix:0.9"); err != nil || p != 0.9 {
		t.Errorf("mix:0.9: %v %v", p, err)
	}
}

func TestFleetStateIsReused(t *testing.T) {
	emu := newCloud(t)
	dir := t.TempDir()
	cfg := fleet.Config{Cloud: emu.URL(), AccessKey: emu.AccessKey(), Phones: 2, Count: 4, Approve: 1, Biometric: true,
		StateDir: dir, Passphrase: "fleet pass", Durability: sdk.DurabilityRelaxed}
	rep, err := fleet.Run(context.Background(), cfg)
	if err != nil || rep.Failed() || rep.Enrolled != 2 || rep.Reused != 0 || rep.Outcomes["succeeded"] != 4 {
		t.Fatalf("%+v %v", rep, err)
	}
	if n := users(t, emu); n != 2 {
		t.Fatalf("--state: %d users kept, want 2", n)
	}
	raw, _ := os.ReadFile(filepath.Join(dir, "keys.age"))
	if !bytes.HasPrefix(raw, []byte("age-encryption.org/v1")) {
		t.Fatal("the fleet's keys are not encrypted")
	}
	// Again with one more phone: two reused (their sign counters go on
	// from the last run, or the cloud would refuse them), one enrolled.
	cfg.Phones, cfg.Count = 3, 9
	rep, err = fleet.Run(context.Background(), cfg)
	if err != nil || rep.Failed() || rep.Reused != 2 || rep.Enrolled != 1 || rep.Outcomes["succeeded"] != 9 {
		t.Fatalf("%+v %v", rep, err)
	}
	// A user removed behind the fleet's back is enrolled anew.
	us, _ := backend.New(emu.URL(), backend.WithAccessKey(emu.AccessKey())).Users(context.Background())
	if err := backend.New(emu.URL(), backend.WithAccessKey(emu.AccessKey())).DeleteUser(context.Background(), us[0].UserID); err != nil {
		t.Fatal(err)
	}
	rep, err = fleet.Run(context.Background(), cfg)
	if err != nil || rep.Failed() || rep.Reused != 2 || rep.Enrolled != 1 {
		t.Fatalf("%+v %v", rep, err)
	}

	// Bad input: each a clear error, the state left as it was.
	for _, bad := range []struct {
		change func(*fleet.Config)
		says   string
	}{
		{func(c *fleet.Config) { c.Passphrase = "" }, "AUTHPHONE_KEYSTORE_PASSPHRASE"},
		{func(c *fleet.Config) { c.Passphrase = "wrong" }, "wrong keystore passphrase"},
		{func(c *fleet.Config) { c.Biometric = false }, "holds biometric phones; use --second-factor biometric"},
		{func(c *fleet.Config) { other := newCloud(t); c.Cloud, c.AccessKey = other.URL(), other.AccessKey() }, "holds a fleet enrolled at " + emu.URL()},
	} {
		c := cfg
		bad.change(&c)
		if _, err := fleet.Run(context.Background(), c); err == nil || !strings.Contains(err.Error(), bad.says) {
			t.Errorf("got %v, want %q", err, bad.says)
		}
	}
	if n := users(t, emu); n != 3 {
		t.Fatalf("%d users after refused runs, want 3", n)
	}
	n, err := fleet.Remove(context.Background(), cfg)
	if err != nil || n != 3 {
		t.Fatalf("remove: %d %v", n, err)
	}
	if n := users(t, emu); n != 0 {
		t.Fatalf("%d users left after remove", n)
	}
	if _, err := os.Stat(filepath.Join(dir, "fleet.json")); !os.IsNotExist(err) {
		t.Fatalf("state left after remove: %v", err)
	}
	if _, err := fleet.Remove(context.Background(), cfg); !errors.Is(err, fleet.ErrBadConfig) {
		t.Fatalf("remove twice: %v", err)
	}
}

// cancelAfter cancels a context once n enrolments have been sent.
type cancelAfter struct {
	n      atomic.Int32
	after  int32
	cancel context.CancelFunc
}

func (c *cancelAfter) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.URL.Path == cloudapi.PathEnroll && c.n.Add(1) == c.after {
		defer c.cancel()
	}
	return http.DefaultTransport.RoundTrip(r)
}

func TestFleetInterruptedWhileEnrolling(t *testing.T) {
	emu := newCloud(t)
	ctx, cancel := context.WithCancel(context.Background())
	tr := &cancelAfter{after: 3, cancel: cancel}
	rep, err := fleet.Run(ctx, fleet.Config{Cloud: emu.URL(), AccessKey: emu.AccessKey(), Phones: 50, Count: 5, Biometric: true, Transport: tr})
	if err != nil || !rep.Interrupted || rep.Started != 0 || rep.Enrolled >= 50 {
		t.Fatalf("%+v %v", rep, err)
	}
	if n := users(t, emu); n != 0 {
		t.Fatalf("%d users left", n)
	}
}

// GCPercent holds for the run, is in the report, and the process's own
// setting is back afterwards.
func TestFleetGCPercentIsRestored(t *testing.T) {
	emu := newCloud(t)
	before := debug.SetGCPercent(150)
	defer debug.SetGCPercent(before)
	rep, err := fleet.Run(context.Background(), fleet.Config{Cloud: emu.URL(), AccessKey: emu.AccessKey(),
		Phones: 2, Count: 2, Approve: 1, Biometric: true, GCPercent: 400})
	if err != nil || rep.Failed() || rep.GCPercent != 400 {
		t.Fatalf("%+v %v", rep, err)
	}
	if got := debug.SetGCPercent(150); got != 150 {
		t.Fatalf("GC percent after the run = %d, want the process's 150 back", got)
	}
}

// TestFleetRelaxedWithoutStateWritesNothing: a relaxed fleet with no
// StateDir keeps its phones in memory (the report says so), while a full
// one writes and fsyncs each phone's counters in a temporary directory.
func TestFleetRelaxedWithoutStateWritesNothing(t *testing.T) {
	emu := newCloud(t)
	for _, tc := range []struct {
		dur   sdk.Durability
		files bool
		note  string
	}{
		{sdk.DurabilityRelaxed, false, "in memory only"},
		{sdk.DurabilityFull, true, "fsynced"},
	} {
		tmp := t.TempDir()
		t.Setenv("TMPDIR", tmp)
		var sawFiles atomic.Bool
		rep, err := fleet.Run(context.Background(), fleet.Config{Cloud: emu.URL(), AccessKey: emu.AccessKey(),
			Phones: 2, Count: 4, Approve: 1, Biometric: true, Durability: tc.dur,
			Progress: func(fleet.Snapshot) {
				if es, _ := os.ReadDir(tmp); len(es) > 0 {
					sawFiles.Store(true)
				}
			}})
		if err != nil || rep.Failed() || rep.Outcomes["succeeded"] != 4 {
			t.Fatalf("durability %v: %+v %v", tc.dur, rep, err)
		}
		if sawFiles.Load() != tc.files {
			t.Errorf("durability %v: files in TMPDIR while running = %v, want %v", tc.dur, sawFiles.Load(), tc.files)
		}
		if !strings.Contains(rep.Durability, tc.note) {
			t.Errorf("durability %v: report says %q, want it to mention %q", tc.dur, rep.Durability, tc.note)
		}
	}
}

func TestFleetWarmUpIsNotCounted(t *testing.T) {
	emu := newCloud(t)
	// The phones think 100 ms: the warm-up lasts 300 ms at least, so the
	// progress (every 200 ms) sees it.
	var warming, lastWarming atomic.Bool
	rep, err := fleet.Run(context.Background(), fleet.Config{Cloud: emu.URL(), AccessKey: emu.AccessKey(),
		Phones: 2, Count: 4, WarmUp: 6, Inflight: 2, Approve: 1, Biometric: true, Think: fleet.Think{Min: 100 * time.Millisecond, Max: 100 * time.Millisecond},
		Progress: func(s fleet.Snapshot) {
			if s.WarmingUp {
				warming.Store(true)
			}
			lastWarming.Store(s.WarmingUp)
		}})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Failed() || rep.WarmUpApprovals != 6 || rep.WarmUpUntil != "count" || rep.WarmUpOutcomes["succeeded"] != 6 {
		t.Fatalf("warm-up: %+v", rep)
	}
	if rep.Started != 4 || rep.Outcomes["succeeded"] != 4 || len(rep.Outcomes) != 1 {
		t.Fatalf("the measured approvals count the warm-up: started %d, outcomes %v", rep.Started, rep.Outcomes)
	}
	// The throughput is of the 4 measured approvals' latencies alone.
	if rep.WarmUpApprovalSeconds <= 0 || math.Round(rep.PerSecond*rep.Seconds) != 4 {
		t.Fatalf("times: %+v", rep)
	}
	if !warming.Load() || lastWarming.Load() {
		t.Fatalf("progress: warming up seen %v, in the last snapshot %v", warming.Load(), lastWarming.Load())
	}
}

func TestFleetAutoWarmUpEndsAtAGarbageCollection(t *testing.T) {
	emu := newCloud(t)
	// A low target, so that a collection comes within a few approvals
	// whatever the rest of the test binary holds.
	rep, err := fleet.Run(context.Background(), fleet.Config{Cloud: emu.URL(), AccessKey: emu.AccessKey(),
		Phones: 2, Count: 2, WarmUp: fleet.WarmUpAuto, GCPercent: 5, Inflight: 2, Approve: 1, Biometric: true})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Failed() || rep.WarmUpUntil != "gc" || rep.WarmUpApprovals < 1 || rep.Outcomes["succeeded"] != 2 {
		t.Fatalf("%+v", rep)
	}
}

// failFirstApproval answers the backend's first approval call with a 503.
type failFirstApproval struct {
	base   http.RoundTripper
	failed atomic.Bool
}

func (f *failFirstApproval) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Path == cloudapi.PathApproval && f.failed.CompareAndSwap(false, true) {
		return &http.Response{StatusCode: http.StatusServiceUnavailable, Status: "503 Service Unavailable",
			Header: http.Header{"Content-Type": {"text/plain"}}, Body: io.NopCloser(strings.NewReader("injected")), Request: req}, nil
	}
	return f.base.RoundTrip(req)
}

func TestFleetWarmUpFailureFailsTheRun(t *testing.T) {
	emu := newCloud(t)
	tr := &failFirstApproval{base: fleet.NewTransport(4)}
	rep, err := fleet.Run(context.Background(), fleet.Config{Cloud: emu.URL(), AccessKey: emu.AccessKey(), Transport: tr,
		Phones: 2, Count: 3, WarmUp: 3, Inflight: 1, Approve: 1, Biometric: true})
	if err != nil {
		t.Fatal(err)
	}
	if !tr.failed.Load() || rep.WarmUpOutcomes["error"] != 1 {
		t.Fatalf("the injected failure was not in the warm-up: %+v", rep)
	}
	if !rep.Failed() || rep.Unexpected != 1 || len(rep.Errors) == 0 {
		t.Fatalf("a warm-up approval that failed must fail the run: %+v", rep)
	}
	if rep.Outcomes["succeeded"] != 3 || rep.Outcomes["error"] != 0 {
		t.Fatalf("measured outcomes %v", rep.Outcomes)
	}
}

func TestParseWarmUp(t *testing.T) {
	for s, want := range map[string]int{"0": 0, "2000": 2000, "auto": fleet.WarmUpAuto} {
		if got, err := fleet.ParseWarmUp(s); err != nil || got != want {
			t.Errorf("%q: %d %v, want %d", s, got, err, want)
		}
	}
	for _, s := range []string{"", "-1", "x", "1.5", "Auto"} {
		if _, err := fleet.ParseWarmUp(s); !errors.Is(err, fleet.ErrBadConfig) {
			t.Errorf("%q: %v", s, err)
		}
	}
	if _, err := fleet.Run(context.Background(), fleet.Config{Cloud: "x", Phones: 1, Count: 1, WarmUp: -2}); !errors.Is(err, fleet.ErrBadConfig) {
		t.Errorf("WarmUp -2: %v", err)
	}
}

func TestFleetInterruptedWhileWarmingUp(t *testing.T) {
	emu := newCloud(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rep, err := fleet.Run(ctx, fleet.Config{Cloud: emu.URL(), AccessKey: emu.AccessKey(),
		Phones: 2, Count: 5, WarmUp: 1_000_000, Inflight: 2, Approve: 1, Biometric: true,
		Progress: func(s fleet.Snapshot) {
			if s.WarmingUp && s.Done >= 2 {
				cancel()
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Interrupted || rep.WarmUpUntil != "interrupted" || rep.WarmUpOutcomes["succeeded"] < 2 || rep.Started != 0 || rep.Failed() {
		t.Fatalf("%+v", rep)
	}
	if n := users(t, emu); n != 0 {
		t.Fatalf("%d users left after Ctrl-C in the warm-up", n)
	}
}

func TestFleetWarmUpThenDuration(t *testing.T) {
	emu := newCloud(t)
	rep, err := fleet.Run(context.Background(), fleet.Config{Cloud: emu.URL(), AccessKey: emu.AccessKey(),
		Phones: 2, Duration: 300 * time.Millisecond, Rate: 50, WarmUp: 5, Inflight: 2, Approve: 1, Biometric: true})
	if err != nil {
		t.Fatal(err)
	}
	// 50/s for 300 ms starts about 15; the warm-up's 5 are not among them.
	if rep.Failed() || rep.WarmUpApprovals != 5 || rep.Started < 1 || rep.Started > 16 || rep.Outcomes["succeeded"] != rep.Started {
		t.Fatalf("%+v", rep)
	}
}
