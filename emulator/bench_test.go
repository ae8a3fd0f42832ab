package emulator_test

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/authphone/authphone/emulator"
	"github.com/authphone/authphone/internal/pgtest"
	"github.com/authphone/authphone/sdk/cloudapi"
	"github.com/authphone/authphone/sdk/deviceapi"
)

// benchStores open an empty store of each kind for a benchmark.
var benchStores = []struct {
	name string
	open func(b *testing.B) emulator.Store
}{
	{"memory", func(b *testing.B) emulator.Store { return emulator.NewMemoryStore() }},
	{"sqlite", func(b *testing.B) emulator.Store {
		s, err := emulator.OpenSQLite(filepath.Join(b.TempDir(), "bench.db"))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { s.Close() })
		return s
	}},
	{"sqlite-normal", func(b *testing.B) emulator.Store { // --db-sync normal
		s, err := emulator.OpenSQLite(filepath.Join(b.TempDir(), "bench.db"), emulator.WithSQLiteSync("normal"))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { s.Close() })
		return s
	}},
	{"postgres", func(b *testing.B) emulator.Store {
		s, err := emulator.OpenPostgres(context.Background(), pgtest.DB(b))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { s.Close() })
		return s
	}},
}

// cpuTime is the CPU time this process has used (user and system, all
// threads): the emulator's and the test client's, the same client for
// every store. On a machine shared with other work it moves less than
// the wall time does.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// seed puts n enrolled users into s (emulator.SeedUsers).
func seed(b testing.TB, s emulator.Store, n int) {
	b.Helper()
	if err := emulator.SeedUsers(s, n); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkApprovalInProcess is BenchmarkApproval with the emulator in
// the benchmark's process, one store and size after the other: the one
// to profile (-cpuprofile, -memprofile). Its figures move with whatever
// else the machine runs meanwhile; BenchmarkApproval's ratios do not.
func BenchmarkApprovalInProcess(b *testing.B) {
	for _, path := range benchPaths {
		for _, st := range benchStores {
			for _, users := range []int{0, 1_000, 10_000, 100_000} {
				b.Run(fmt.Sprintf("path=%s/store=%s/users=%d", path, st.name, users), func(b *testing.B) {
					store := st.open(b)
					seed(b, store, users)
					s, err := emulator.New(emulator.WithAccessKey("test-key"), emulator.WithStore(store))
					if err != nil {
						b.Fatal(err)
					}
					if err := s.Start("127.0.0.1:0"); err != nil {
						b.Fatal(err)
					}
					b.Cleanup(func() { _ = s.Close(context.Background()) })
					ap := newBenchApprover(b, &cloud{t: b, url: s.URL()}, path)
					runtime.GC() // the seeding's garbage is not the approvals' cost
					cpu0 := cpuTime()
					for b.Loop() {
						ap.approve(b)
					}
					b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
				})
			}
		}
	}
}

// benchPaths are the two ways a phone answers a push approval:
// "delivered", authphone's phone (approval → the signed multi-account
// inbox read, which carries the UAF request → signed assertion → status),
// and "redeem", the contract's per-token path any phone can take
// (approval → inbox → redeem of the dispatch token → signed assertion →
// status).
var benchPaths = []string{"delivered", "redeem"}

// benchApprover is one enrolled phone answering approvals for "bench".
type benchApprover struct {
	c    *cloud
	d    *device
	pk   *phoneKey // delivered: the phone's device key, bound to d
	path string
}

func newBenchApprover(tb testing.TB, c *cloud, path string) *benchApprover {
	a := &benchApprover{c: c, path: path}
	switch path {
	case "delivered":
		a.pk = newPhoneKey(tb)
		a.d = c.bound(a.pk, "bench")
	case "redeem":
		a.d = newDevice()
		c.enrolled(a.d, "bench")
	default:
		tb.Fatalf("no approval path %q (delivered, redeem)", path)
	}
	return a
}

// approve runs one approval end to end on a's path.
func (a *benchApprover) approve(tb testing.TB) {
	ap := a.c.approve(cloudapi.ApprovalRequest{Username: "bench"})
	a.d.counter++
	var code int
	var sb deviceapi.StatusBody
	if a.pk != nil {
		m, req := a.pk.delivered(a.c, a.d)
		if m.TransactionID != ap.TransactionID {
			tb.Fatalf("delivered %s, want %s", m.TransactionID, ap.TransactionID)
		}
		code, sb = a.c.postUAF(deviceapi.PathAuthentication, a.d.authResponse(tb, req, a.d.counter, ""))
	} else {
		code, sb = a.c.answer(a.d, ap.TransactionID, a.d.counter)
	}
	if code != 200 {
		tb.Fatalf("authenticate: %d %+v", code, sb)
	}
	if got := a.c.status(ap.StatusToken); got != cloudapi.StatusSucceeded {
		tb.Fatalf("status %s", got)
	}
}

// benchChild is an emulator process of BenchmarkApproval.
type benchChild struct {
	name  string // store/users
	store string
	users int
	cmd   *exec.Cmd
	c     *cloud
	a     *benchApprover
	wall  time.Duration // spent in approvals
	n     int           // approvals run
}

// cpu is the CPU time the child has used (user and system, all threads).
func (ch *benchChild) cpu(b *testing.B) time.Duration {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", ch.cmd.Process.Pid))
	if err != nil {
		b.Fatal(err)
	}
	f := strings.Fields(string(raw[bytes.LastIndexByte(raw, ')')+2:])) // fields from the 3rd
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * time.Second / 100 // USER_HZ
}

// turn is how long each child runs approvals in its turn (at least one).
// Every store gets the same turn, so the cost of being switched to (cold
// caches) weighs alike on all; the memory store, faster, runs more
// approvals in it, enough for its figure to include the garbage
// collections a large heap has (with 100 000 users, one per thousands of
// approvals).
const turn = 30 * time.Millisecond

// approve runs one approval end to end (benchApprover.approve).
func (ch *benchChild) approve(b *testing.B) { ch.a.approve(b) }

// BenchmarkApproval is one push approval over loopback, as authphone's
// phone answers it (AUTHPHONE_BENCH_PATH=delivered, the default: approval
// → signed inbox read carrying the UAF request → signed assertion →
// status) or by the contract's per-token redeem (=redeem: approval →
// inbox → redeem → signed assertion → status), on each store with 0, 1 000,
// 10 000 and 100 000 other users enrolled. Each store and size is an
// emulator process of its own (this test binary, runBenchChild), all
// started first and then taking turns of the same length (turn): what
// else the machine does meanwhile slows them alike, so their ratios hold
// on a busy machine. It reports, per store and size, the wall time and the
// emulator's CPU time per approval (/proc/PID/stat), and logs them as a
// table with the ratios of the goals (100 000 users / 0; SQLite / memory).
// AUTHPHONE_BENCH_STORES picks the stores (default
// memory,sqlite,sqlite-normal,postgres); AUTHPHONE_BENCH_USERS the sizes.
func BenchmarkApproval(b *testing.B) {
	stores := strings.Split(cmp.Or(os.Getenv("AUTHPHONE_BENCH_STORES"), "memory,sqlite,sqlite-normal,postgres"), ",")
	var sizes []int
	for _, f := range strings.Split(cmp.Or(os.Getenv("AUTHPHONE_BENCH_USERS"), "0,1000,10000,100000"), ",") {
		n, err := strconv.Atoi(f)
		if err != nil {
			b.Fatalf("AUTHPHONE_BENCH_USERS: %v", err)
		}
		sizes = append(sizes, n)
	}
	path := cmp.Or(os.Getenv("AUTHPHONE_BENCH_PATH"), "delivered")
	var children []*benchChild
	for _, st := range stores {
		for _, n := range sizes {
			env := []string{"AUTHPHONE_BENCH_CHILD=1", "AUTHPHONE_BENCH_USERS=" + strconv.Itoa(n)}
			switch st {
			case "memory":
			case "sqlite", "sqlite-normal":
				env = append(env, "AUTHPHONE_BENCH_DB="+filepath.Join(b.TempDir(), "bench.db"),
					"AUTHPHONE_BENCH_SYNC="+map[string]string{"sqlite": "full", "sqlite-normal": "normal"}[st])
			case "postgres":
				env = append(env, "AUTHPHONE_BENCH_DB="+pgtest.DB(b))
			default:
				b.Fatalf("AUTHPHONE_BENCH_STORES: no store %q (memory, sqlite, sqlite-normal, postgres)", st)
			}
			ch := &benchChild{name: fmt.Sprintf("%s/%d", st, n), store: st, users: n, cmd: exec.Command(os.Args[0], "-test.run=^$")}
			ch.cmd.Env = append(os.Environ(), env...)
			ch.cmd.Stderr = os.Stderr
			children = append(children, ch)
		}
	}
	// Start them all (they seed at once), then wait for each URL.
	lines := make([]chan string, len(children))
	for i, ch := range children {
		stdin, err := ch.cmd.StdinPipe()
		if err != nil {
			b.Fatal(err)
		}
		out, err := ch.cmd.StdoutPipe()
		if err != nil {
			b.Fatal(err)
		}
		if err := ch.cmd.Start(); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = stdin.Close(); _ = ch.cmd.Wait() })
		lines[i] = make(chan string, 1)
		go func() {
			sc := bufio.NewScanner(out)
			if sc.Scan() {
				lines[i] <- sc.Text()
			}
			close(lines[i])
			_, _ = io.Copy(io.Discard, out)
		}()
	}
	deadline := time.After(10 * time.Minute)
	for i, ch := range children {
		select {
		case u, ok := <-lines[i]:
			if !ok || !strings.HasPrefix(u, "http://") {
				b.Fatalf("%s: the emulator did not start (%q)", ch.name, u)
			}
			ch.c = &cloud{t: b, url: u}
		case <-deadline:
			b.Fatalf("%s: the emulator did not start within 10 minutes", ch.name)
		}
		ch.a = newBenchApprover(b, ch.c, path)
		for range 20 { // warm: connections, statement caches
			ch.approve(b)
		}
	}
	cpu0 := make([]time.Duration, len(children))
	for i, ch := range children {
		cpu0[i] = ch.cpu(b)
	}
	round := 0
	for b.Loop() {
		for j := range children {
			ch := children[(round+j)%len(children)] // no store always first
			t := time.Now()
			for {
				ch.approve(b)
				ch.n++
				if time.Since(t) >= turn {
					break
				}
			}
			ch.wall += time.Since(t)
		}
		round++
	}
	b.StopTimer()
	wall := map[string]float64{}
	cpu := map[string]float64{}
	for i, ch := range children {
		n := float64(ch.n)
		wall[ch.name] = float64(ch.wall) / n / 1e6
		cpu[ch.name] = float64(ch.cpu(b)-cpu0[i]) / n / 1e6
		b.ReportMetric(wall[ch.name], ch.name+"-ms")
		b.ReportMetric(cpu[ch.name], ch.name+"-cpu-ms")
	}
	var t strings.Builder
	fmt.Fprintf(&t, "path %s; %d rounds of %s turns; ms per approval: wall (emulator CPU); approvals run:", path, round, turn)
	for _, ch := range children {
		fmt.Fprintf(&t, " %s %d", ch.name, ch.n)
	}
	t.WriteString("\n")
	fmt.Fprintf(&t, "| store |")
	for _, n := range sizes {
		fmt.Fprintf(&t, " %d |", n)
	}
	fmt.Fprintf(&t, " %d / %d |\n", sizes[len(sizes)-1], sizes[0])
	for _, st := range stores {
		fmt.Fprintf(&t, "| %s |", st)
		for _, n := range sizes {
			k := fmt.Sprintf("%s/%d", st, n)
			fmt.Fprintf(&t, " %.2f (%.2f) |", wall[k], cpu[k])
		}
		lo, hi := fmt.Sprintf("%s/%d", st, sizes[0]), fmt.Sprintf("%s/%d", st, sizes[len(sizes)-1])
		fmt.Fprintf(&t, " %.2f× (%.2f×) |\n", wall[hi]/wall[lo], cpu[hi]/cpu[lo])
	}
	for _, st := range stores {
		if st == "memory" {
			continue
		}
		fmt.Fprintf(&t, "%s / memory:", st)
		for _, n := range sizes {
			k, m := fmt.Sprintf("%s/%d", st, n), fmt.Sprintf("memory/%d", n)
			if wall[m] > 0 {
				fmt.Fprintf(&t, " %d users %.2f× (%.2f×);", n, wall[k]/wall[m], cpu[k]/cpu[m])
			}
		}
		t.WriteString("\n")
	}
	b.Log("\n" + t.String())
}
