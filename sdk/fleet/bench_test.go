package fleet_test

import (
	"context"
	"strconv"
	"testing"

	"github.com/authphone/authphone/emulator"
	"github.com/authphone/authphone/sdk"
	"github.com/authphone/authphone/sdk/fleet"
)

// BenchmarkFleet runs K biometric phones (relaxed durability) with 16
// approvals in flight against an emulator in this process, over loopback
// HTTP and in process (sdk.InProcess, no sockets: 10 000 long-polls over
// loopback would need 20 000 file descriptors), and reports approvals/s,
// the share of the crypto ceiling measured in the same run, CPU per
// approval and the heap per idle phone. One b.N is one approval, after an
// automatic warm-up (fleet.WarmUpAuto: approvals until the second garbage
// collection, not counted), so that the figures are the steady state's and
// not those of a heap growing into memory it never touched.
func BenchmarkFleet(b *testing.B) {
	for _, tc := range []struct {
		transport string
		phones    int
	}{{"loopback", 100}, {"loopback", 1000}, {"inprocess", 100}, {"inprocess", 1000}, {"inprocess", 10000}} {
		b.Run(tc.transport+"/phones="+strconv.Itoa(tc.phones), func(b *testing.B) {
			cfg := fleet.Config{Phones: tc.phones, Count: max(b.N, 500), Inflight: 16, Approve: 1, Biometric: true,
				Durability: sdk.DurabilityRelaxed, GCPercent: 400, WarmUp: fleet.WarmUpAuto} // as authphone fleet --warmup auto runs
			if tc.transport == "loopback" {
				emu := newCloud(b)
				cfg.Cloud, cfg.AccessKey = emu.URL(), emu.AccessKey()
			} else {
				const base = "http://fleet.invalid"
				emu, err := emulator.New(emulator.WithBaseURL(base))
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { _ = emu.Close(context.Background()) })
				cfg.Cloud, cfg.AccessKey, cfg.Transport = base, emu.AccessKey(), sdk.InProcess{Handler: emu.Handler()}
			}
			rep, err := fleet.Run(context.Background(), cfg)
			if err != nil {
				b.Fatal(err)
			}
			if rep.Failed() {
				b.Fatalf("%+v", rep)
			}
			b.ReportMetric(rep.PerSecond, "approvals/s")
			b.ReportMetric(rep.CeilingPercent, "%ceiling")
			b.ReportMetric(rep.CPUCeilingPercent, "%ceiling-by-cpu")
			b.ReportMetric(rep.CPUPerOpMS*1000, "cpu-µs/op")
			b.ReportMetric(rep.GCCPUPerOpMS*1000, "gc-cpu-µs/op")
			b.ReportMetric(float64(rep.GCCycles), "gc-cycles")
			b.ReportMetric(rep.CryptoDriftPercent, "%crypto-drift")
			b.ReportMetric(float64(rep.HeapPerPhone)/1024, "KiB/idle-phone")
			b.ReportMetric(float64(rep.HeapPerPollingPhone)/1024, "KiB/long-poll")
			b.ReportMetric(rep.WarmUpCPUMS/float64(tc.phones)*1000, "warmup-cpu-µs/phone")
			b.ReportMetric(float64(rep.WarmUpApprovals), "warmup-approvals")
			if rep.GCCycles < 3 && b.N > 1 {
				b.Logf("%d garbage collections in the measured window: its GC share depends on how many fell in it (give -benchtime more approvals: at 10 000 phones, 50000x)", rep.GCCycles)
			}
			if rep.WarmUpUntil != "gc" {
				b.Logf("the warm-up ended by %s, not at a garbage collection: the figures may include a growing heap", rep.WarmUpUntil)
			}
		})
	}
}
