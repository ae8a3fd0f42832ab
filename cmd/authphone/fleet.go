package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/authphone/authphone/emulator"
	"github.com/authphone/authphone/keystore"
	"github.com/authphone/authphone/sdk"
	"github.com/authphone/authphone/sdk/fleet"
	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
)

func newFleetCmd(a *app) *cobra.Command {
	var (
		phones, count, inflight         int
		duration                        time.Duration
		rate                            float64
		answer, think, factor, pin, kdf string
		durability, state, warmup       string
		keep, remove, h2c               bool
	)
	cmd := &cobra.Command{
		Use:   "fleet",
		Short: "Load-test: K virtual phones answer approvals started through the backend API",
		Long: `fleet enrols --phones K users, one virtual phone each, in this process
(all phones share one HTTP transport; each idle phone holds a long-poll,
a connection each, or with --h2c a stream of HTTP/2 without TLS on a few
connections, if the cloud speaks it as 'authphone emulator --h2c' does), then starts
approvals through the backend API for --count N approvals or for --duration D, at --rate per second
or as fast as --inflight allows, and lets the phones answer with a policy.
Without --cloud (or AUTHPHONE_CLOUD) it runs against an in-process emulator on a loopback port.

While it runs it shows a progress bar (plain lines when stdout is not a
terminal); at the end it prints a report (--json: one JSON document) with
counts by outcome, lost approvals (approved by the phone, never succeeded at
the backend), approvals/s, latency percentiles of the backend's view
(approval call → final status), CPU time per approval (the whole process,
so an in-process emulator's share included, and the garbage collector's
part of it) and the machine's crypto ceiling, measured before and after
the approvals (the report says when the machine's speed moved in
between). It exits 1 if anything was lost or failed unexpectedly. The users
are removed at the end (also after Ctrl-C, which prints the report of what
ran) unless --keep.

With --state DIR (and --cloud) the fleet is kept for the next run: DIR
holds the users, each phone's accounts and sign counters, and the phones'
keys (age-encrypted with AUTHPHONE_KEYSTORE_PASSPHRASE). The next run with
the same DIR reuses those phones and enrols only the missing ones; the users
stay until --state DIR --remove.

--warmup N runs N approvals before the clock starts, left out of the
report's counts, throughput, latency and CPU figures (a lost or unexpected
one still counts and fails the run); --warmup auto runs them until the
garbage collector has finished two cycles (at most a minute). A large fleet's
first approvals grow the process's heap into memory it has never touched
(at 10 000 phones that cost a sixth to a quarter of a short run's throughput),
so use --warmup auto to measure the steady state of a large fleet.`,
		Example: `  authphone fleet --phones 100 --count 2000 --inflight 16
  authphone fleet --phones 50 --duration 30s --rate 200 --answer mix:0.9 --think uniform:0-50ms
  authphone fleet --cloud http://127.0.0.1:8722 --access-key $KEY --phones 10 --count 100 --second-factor pin --kdf test --json
  authphone fleet --phones 1000 --duration 1m --durability relaxed
  authphone fleet --phones 10000 --count 20000 --durability relaxed --warmup auto
  AUTHPHONE_KEYSTORE_PASSPHRASE=test authphone fleet --cloud http://127.0.0.1:8722 --phones 500 --count 5000 --state ./fleet
  AUTHPHONE_KEYSTORE_PASSPHRASE=test authphone fleet --cloud http://127.0.0.1:8722 --state ./fleet --remove`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			share, err := fleet.ParseAnswer(answer)
			if err != nil {
				return usageErrorf("--answer: %v", err)
			}
			th, err := fleet.ParseThink(think)
			if err != nil {
				return usageErrorf("--think: %v", err)
			}
			if factor != "biometric" && factor != "pin" {
				return usageErrorf("--second-factor %q: use biometric or pin", factor)
			}
			k, err := sdk.ParseKDF(kdf)
			if err != nil {
				return usageErrorf("--kdf: %v", err)
			}
			dur, err := sdk.ParseDurability(durability)
			if err != nil {
				return usageErrorf("--durability: %v", err)
			}
			wu, err := fleet.ParseWarmUp(warmup)
			if err != nil {
				return usageErrorf("--warmup: %v", err)
			}
			remoteCloud := cmd.Flags().Changed("cloud") || os.Getenv("AUTHPHONE_CLOUD") != ""
			cfg := fleet.Config{Cloud: a.cloud, AccessKey: a.accessKeyValue(), Phones: phones, Count: count, Duration: duration,
				Rate: rate, Inflight: inflight, Approve: share, Think: th, Biometric: factor == "biometric", PIN: pin, KDF: k, Durability: dur, Keep: keep, GCPercent: fleetGCPercent(),
				StateDir: state, Passphrase: os.Getenv(keystore.PassphraseEnv), H2C: h2c, WarmUp: wu}
			ctx := cmd.Context()
			if state != "" && !remoteCloud {
				return usageErrorf("--state needs --cloud: the in-process emulator forgets its users when the fleet ends (start one with `authphone emulator --db FILE`)")
			}
			if remove {
				if state == "" {
					return usageErrorf("--remove needs --state DIR: the fleet whose users to remove")
				}
				if cfg.AccessKey == "" {
					return usageErrorf("--remove needs the cloud's access key: pass --access-key or set AUTHPHONE_ACCESS_KEY")
				}
				n, err := fleet.Remove(ctx, cfg)
				if errors.Is(err, fleet.ErrBadConfig) {
					return usageErrorf("%v", err)
				}
				if err != nil {
					return err
				}
				if a.json {
					a.printJSON(map[string]any{"removedUsers": n, "stateDir": state})
				} else {
					a.printf("fleet: removed %d users and the state in %s\n", n, state)
				}
				return nil
			}
			if count == 0 && duration == 0 {
				return usageErrorf("give --count N or --duration D (e.g. --count 1000)")
			}
			if !remoteCloud {
				var opts []emulator.Option
				if h2c {
					opts = append(opts, emulator.WithH2C())
				}
				emu, err := emulator.New(opts...)
				if err != nil {
					return err
				}
				if err := emu.Start("127.0.0.1:0"); err != nil {
					return err
				}
				defer emu.Close(context.Background())
				cfg.Cloud, cfg.AccessKey = emu.URL(), emu.AccessKey()
			} else if cfg.AccessKey == "" {
				return usageErrorf("fleet against --cloud needs its access key: pass --access-key or set AUTHPHONE_ACCESS_KEY")
			}
			cfg.Progress = a.fleetProgress(count)
			rep, err := fleet.Run(ctx, cfg)
			if errors.Is(err, fleet.ErrBadConfig) {
				return usageErrorf("%v", err)
			}
			if err != nil {
				return err
			}
			a.printFleetReport(rep)
			if rep.Failed() {
				return fmt.Errorf("%d lost, %d failed unexpectedly (see the report)", rep.Lost, rep.Unexpected)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.IntVar(&phones, "phones", 10, "how many virtual phones (one user each)")
	f.IntVar(&count, "count", 0, "how many approvals to start")
	f.DurationVar(&duration, "duration", 0, "start approvals for this long instead of --count")
	f.Float64Var(&rate, "rate", 0, "approvals started per second (0: as fast as --inflight allows)")
	f.IntVar(&inflight, "inflight", 16, "approvals in flight at most")
	f.StringVar(&warmup, "warmup", "0", "approvals to run before the clock starts, not counted: N, or auto (until the garbage collector has finished two cycles)")
	f.StringVar(&answer, "answer", "approve", "how the phones answer: approve, deny or mix:P (share P approved)")
	f.StringVar(&think, "think", "0", "the user's delay before answering: 0, a duration (50ms) or uniform:MIN-MAX")
	f.StringVar(&factor, "second-factor", "biometric", "biometric or pin")
	f.StringVar(&pin, "pin", "1234", "the phones' PIN (with --second-factor pin)")
	f.StringVar(&kdf, "kdf", "standard", "the PIN verifiers' Argon2id cost: standard, or test (load tests only, NOT FOR REAL KEYS)")
	f.StringVar(&durability, "durability", "full", "how the phones write their sign counters: full (fsync each) or relaxed (no fsync, faster)")
	f.BoolVar(&keep, "keep", false, "keep the enrolled users at the end")
	f.StringVar(&state, "state", "", "keep the fleet in DIR and reuse it next time (users, counters, keys encrypted with AUTHPHONE_KEYSTORE_PASSPHRASE); needs --cloud")
	f.BoolVar(&h2c, "h2c", false, "send the phones' long-polls as HTTP/2 streams without TLS on a few connections, if the cloud speaks it (fewer sockets and less memory; more CPU)")
	f.BoolVar(&remove, "remove", false, "with --state: remove the saved fleet's users from the cloud, and the state")
	f.StringVar(&a.accessKey, "access-key", "", "the cloud's access key, with --cloud ("+secretEnv("AUTHPHONE_ACCESS_KEY")+")")
	return cmd
}

// fleetProgress draws a progress bar on a terminal, a plain line every
// second otherwise (on stderr, so --json stays one document on stdout).
func (a *app) fleetProgress(count int) func(fleet.Snapshot) {
	if a.io.outTTY && !a.json {
		max := int64(count)
		if max == 0 {
			max = -1
		}
		bar := progressbar.NewOptions64(max, progressbar.OptionSetWriter(a.io.err), progressbar.OptionSetDescription("approvals"),
			progressbar.OptionShowCount(), progressbar.OptionClearOnFinish())
		return func(s fleet.Snapshot) {
			if s.WarmingUp {
				bar.Describe(fmt.Sprintf("warm-up: %d approvals, %.0f/s (not counted)", s.Done, s.PerSec))
				return
			}
			_ = bar.Set64(s.Done)
			bar.Describe(fmt.Sprintf("%.0f/s p50 %s p99 %s errors %d", s.PerSec, s.P50.Round(10*time.Microsecond), s.P99.Round(10*time.Microsecond), s.Errors))
		}
	}
	var last time.Duration
	warming := false
	return func(s fleet.Snapshot) {
		if s.WarmingUp != warming || s.Elapsed < last { // the clock started again
			warming, last = s.WarmingUp, 0
		}
		if s.Elapsed-last < time.Second {
			return
		}
		last = s.Elapsed
		if s.WarmingUp {
			// Not "fleet: T done": scripts reading the progress lines
			// (testdata/fleetpair.sh) see the measured ones only.
			fmt.Fprintf(a.io.err, "fleet warm-up: %s %d/%d approvals %.0f/s (not counted) errors %d\n", s.Elapsed.Round(time.Second),
				s.Done, s.Started, s.PerSec, s.Errors)
			return
		}
		fmt.Fprintf(a.io.err, "fleet: %s done %d/%d %.0f/s p50 %s p99 %s errors %d\n", s.Elapsed.Round(time.Second),
			s.Done, s.Started, s.PerSec, s.P50.Round(10*time.Microsecond), s.P99.Round(10*time.Microsecond), s.Errors)
	}
}

func (a *app) printFleetReport(r *fleet.Report) {
	if a.json {
		a.printJSON(r)
		return
	}
	a.printf("fleet: %d phones, second factor %s, approve share %.2f, think %s, in flight %d", r.Phones, r.SecondFactor, r.Answer, r.Think, r.Inflight)
	if r.Rate > 0 {
		a.printf(", rate %.0f/s", r.Rate)
	}
	a.printf("\n  durability:   %s\n", r.Durability)
	if r.Protocol != "" {
		a.printf("  protocol:     %s\n", r.Protocol)
	}
	if r.GCPercent > 0 {
		a.printf("  GC:           GOGC=%d (set GOGC to choose another)\n", r.GCPercent)
	}
	a.printf("  PIN KDF:      %s\n", kdfNote(r.KDF))
	a.printf("  enrolment:    %.2f s: %d enrolled, %d reused", r.EnrolSeconds, r.Enrolled, r.Reused)
	if r.StateDir != "" {
		a.printf(" (state in %s)", r.StateDir)
	}
	a.printf("\n  warm-up:      %.2f s, %.0f ms CPU: every phone's first long-poll (not counted below)", r.WarmUpSeconds, r.WarmUpCPUMS)
	if r.WarmUpUntil != "" {
		a.printf("\n  warm-up approvals: %d in %.2f s (%s): %d succeeded, %d failed, %d pending, %d errors (not counted below but for lost and unexpected)",
			r.WarmUpApprovals, r.WarmUpApprovalSeconds, warmUpEnd(r.WarmUpUntil), r.WarmUpOutcomes["succeeded"], r.WarmUpOutcomes["failed"],
			r.WarmUpOutcomes["pending"], r.WarmUpOutcomes["error"])
	}
	if r.WarmUpUntil == "" && r.Phones >= largeFleet {
		a.printf("\n  warm-up approvals: none; a fleet this large grows its heap into fresh memory during its first approvals, so for its steady state run again with --warmup auto")
	}
	a.printf("\n  memory:       %.1f KiB heap per idle phone (%.1f KiB with the in-process cloud's share; its parked long-poll %.1f KiB more)\n",
		float64(r.HeapPerPhone)/1024, float64(r.HeapPerPhoneWithCloud)/1024, float64(r.HeapPerPollingPhone)/1024)
	a.printf("  approvals:    %d started in %.2f s: %d succeeded, %d failed, %d pending, %d errors\n", r.Started, r.Seconds,
		r.Outcomes["succeeded"], r.Outcomes["failed"], r.Outcomes["pending"], r.Outcomes["error"])
	a.printf("  lost:         %d   unexpected: %d\n", r.Lost, r.Unexpected)
	a.printf("  throughput:   %.1f approvals/s\n", r.PerSecond)
	a.printf("  latency (ms): p50 %.2f  p90 %.2f  p99 %.2f  max %.2f\n", r.LatencyMS.P50, r.LatencyMS.P90, r.LatencyMS.P99, r.LatencyMS.Max)
	a.printf("  CPU/approval: %.2f ms (whole process)", r.CPUPerOpMS)
	if r.CPUPerOpMS > 0 {
		a.printf(", of it %.3f ms the garbage collector's (%d cycles ended in the measured window%s)",
			r.GCCPUPerOpMS, r.GCCycles, fewCycles(r.GCCycles))
	}
	a.printf("\n")
	if r.CryptoMS > 0 { // not measured when the enrolment was cut short
		a.printf("  crypto ceiling: %.0f approvals/s on this machine (%.3f ms of CPU each); this run: %.1f%% of it, %.1f%% by CPU time\n",
			r.CeilingPerSecond, r.CryptoMS, r.CeilingPercent, r.CPUCeilingPercent)
	}
	if r.CryptoEndMS > 0 {
		a.printf("  machine speed: the crypto took %+.1f%% at the end against the start%s\n", r.CryptoDriftPercent, drifted(r.CryptoDriftPercent))
	}
	if r.Interrupted {
		a.printf("  interrupted: the report covers what ran\n")
	}
	if r.Kept {
		a.printf("  users kept (--keep or --state)\n")
	}
	for _, e := range r.Errors {
		a.printf("  error: %s\n", e)
	}
}

// fewCycles warns of a run too short for its collector: with fewer than
// three cycles in it, its GC share depends on how many happened to fall
// in the window.
func fewCycles(n uint64) string {
	if n < 3 {
		return "; too few for a steady figure: run more approvals"
	}
	return ""
}

// drifted warns when the machine's speed moved during the run by more
// than the figures could absorb.
func drifted(pct float64) string {
	if pct > 5 || pct < -5 {
		return ": the machine's speed moved during the run, so compare runs with care (another process, or a shared host)"
	}
	return ""
}

// largeFleet is the size from which the report suggests --warmup auto
// (at 1 000 phones and more the first approvals of a run measured
// slower than the steady state's).
const largeFleet = 1000

func warmUpEnd(until string) string {
	switch until {
	case "gc":
		return "auto: until two garbage collections"
	case "limit":
		return "auto: stopped at the time limit, before any garbage collection"
	case "interrupted":
		return "interrupted"
	}
	return "as many as --warmup asked"
}

func kdfNote(name string) string {
	if name == "test" {
		return "test (Argon2id t=1 m=64KiB: NOT FOR REAL KEYS)"
	}
	return name + " (Argon2id t=2 m=19MiB)"
}

// fleetGCPercent is the garbage collector's target for a fleet run: 400
// (a fleet's K phones are marked on every cycle; measured on 2 cores it
// cut the CPU per approval by about a sixth at K = 10 000), unless the user
// chose one with GOGC.
func fleetGCPercent() int {
	if os.Getenv("GOGC") != "" {
		return 0
	}
	return 400
}
