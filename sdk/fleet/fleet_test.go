package fleet_test

import (
	"context"
	"errors"
	"testing"
	"time"

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
