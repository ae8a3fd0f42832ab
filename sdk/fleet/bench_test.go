package fleet_test

import (
	"context"
	"strconv"
	"testing"

	"github.com/authphone/authphone/sdk/fleet"
)

// BenchmarkFleet runs K biometric phones with 16 approvals in flight against
// an in-process emulator on loopback, and reports approvals/s, the share of
// the crypto ceiling measured in the same run, CPU per approval and the heap
// per idle phone. One b.N is one approval.
func BenchmarkFleet(b *testing.B) {
	for _, k := range []int{100, 1000} {
		b.Run("phones="+strconv.Itoa(k), func(b *testing.B) {
			emu := newCloud(b)
			rep, err := fleet.Run(context.Background(), fleet.Config{Cloud: emu.URL(), AccessKey: emu.AccessKey(),
				Phones: k, Count: max(b.N, 200), Inflight: 16, Approve: 1, Biometric: true})
			if err != nil {
				b.Fatal(err)
			}
			if rep.Failed() {
				b.Fatalf("%+v", rep)
			}
			b.ReportMetric(rep.PerSecond, "approvals/s")
			b.ReportMetric(rep.CeilingPercent, "%ceiling")
			b.ReportMetric(rep.CPUPerOpMS, "cpu-ms/op")
			b.ReportMetric(float64(rep.HeapPerPhone)/1024, "KiB/idle-phone")
		})
	}
}
