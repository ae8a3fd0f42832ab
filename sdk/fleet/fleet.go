// Package fleet runs many virtual phones in one process against a cloud, for
// load tests: it enrols one user per phone, starts approvals through the
// backend API at a rate (or as fast as an in-flight limit allows), lets the
// phones answer them with a policy, and reports counts, lost approvals,
// throughput, latency percentiles and CPU time per approval against the
// machine's crypto ceiling. All phones share one HTTP transport.
package fleet

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"math"
	mrand "math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/authphone/authphone/flows"
	"github.com/authphone/authphone/keystore"
	"github.com/authphone/authphone/sdk"
	"github.com/authphone/authphone/sdk/backend"
	"github.com/authphone/authphone/sdk/cloudapi"
	"github.com/authphone/authphone/sdk/httplimit"
)

// IdleConnTimeout is how long the fleet's transport keeps an idle
// connection: well below the emulator's server IdleTimeout
// (emulator.DefaultIdleTimeout, 2 minutes) and the 60 s of common load
// balancers, so the fleet does not send a request on a connection the
// server is closing. Should it still meet one (a server with a shorter
// limit), the request is sent again on a fresh connection, signed again.
const IdleConnTimeout = 30 * time.Second

// NewTransport is the fleet's HTTP/1.1 transport for n connections: small
// buffers, since device API messages are a few hundred bytes (and, when
// the long-polls go on HTTP/1.1 too, each idle phone's holds a
// connection), and idle connections dropped after IdleConnTimeout.
func NewTransport(n int) *http.Transport {
	return &http.Transport{MaxIdleConns: 4 * n, MaxIdleConnsPerHost: 4 * n,
		IdleConnTimeout: IdleConnTimeout, ReadBufferSize: 1 << 10, WriteBufferSize: 1 << 10}
}

// ErrBadConfig is wrapped by every configuration error.
var ErrBadConfig = errors.New("bad fleet configuration")

// Think is a delay distribution: the time a phone's user takes to answer.
type Think struct{ Min, Max time.Duration }

// ParseThink reads "0", "50ms" or "uniform:0-2s".
func ParseThink(s string) (Think, error) {
	if rest, ok := strings.CutPrefix(s, "uniform:"); ok {
		lo, hi, ok := strings.Cut(rest, "-")
		if !ok {
			return Think{}, fmt.Errorf("%w: think %q: write uniform:MIN-MAX, e.g. uniform:0-2s", ErrBadConfig, s)
		}
		if _, err := strconv.ParseFloat(lo, 64); err == nil {
			lo += unitOf(hi)
		}
		a, err1 := time.ParseDuration(lo)
		b, err2 := time.ParseDuration(hi)
		if err1 != nil || err2 != nil || a < 0 || b < a {
			return Think{}, fmt.Errorf("%w: think %q: write uniform:MIN-MAX with 0 <= MIN <= MAX, e.g. uniform:0-2s", ErrBadConfig, s)
		}
		return Think{a, b}, nil
	}
	if s == "0" {
		return Think{}, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return Think{}, fmt.Errorf("%w: think %q: write 0, a duration like 50ms, or uniform:0-2s", ErrBadConfig, s)
	}
	return Think{d, d}, nil
}

func unitOf(s string) string {
	i := strings.IndexFunc(s, func(r rune) bool { return (r < '0' || r > '9') && r != '.' })
	if i < 0 {
		return ""
	}
	return s[i:]
}

func (t Think) draw() time.Duration {
	if t.Max <= t.Min {
		return t.Min
	}
	return t.Min + time.Duration(mrand.Int64N(int64(t.Max-t.Min)+1))
}

// String renders t as ParseThink reads it.
func (t Think) String() string {
	if t.Min == t.Max {
		if t.Min == 0 {
			return "0"
		}
		return t.Min.String()
	}
	return "uniform:" + t.Min.String() + "-" + t.Max.String()
}

// ParseAnswer reads approve, deny or mix:P (the share P of approvals that
// the phones approve, 0..1) and returns P.
func ParseAnswer(s string) (float64, error) {
	switch s {
	case "approve":
		return 1, nil
	case "deny":
		return 0, nil
	}
	if v, ok := strings.CutPrefix(s, "mix:"); ok {
		p, err := strconv.ParseFloat(v, 64)
		if err == nil && p >= 0 && p <= 1 {
			return p, nil
		}
	}
	return 0, fmt.Errorf("%w: answer %q: use approve, deny or mix:P with 0 <= P <= 1 (e.g. mix:0.9)", ErrBadConfig, s)
}

// Config describes a fleet run.
type Config struct {
	Cloud     string // the cloud's base URL
	AccessKey string // the backend API's access key
	Phones    int    // K phones, one user each
	// Count approvals, or as many as Duration allows (one of them is set).
	Count    int
	Duration time.Duration
	Rate     float64 // approvals started per second; 0 = as fast as Inflight allows
	Inflight int     // approvals in flight at most (default 16)
	Approve  float64 // the share of approvals the phones approve
	Think    Think
	// Biometric enrols with a simulated biometric; otherwise with PIN.
	Biometric bool
	PIN       string  // the phones' PIN (default 1234)
	KDF       sdk.KDF // the PIN verifiers' Argon2id cost (default sdk.KDFStandard)
	// Durability is how the phones write their sign counters: full (an
	// fsync per approval, the default) or relaxed (no fsync). Relaxed
	// without StateDir keeps each phone's accounts and counters in memory
	// only (sdk.WithMemoryState): the temporary directory they would be
	// written to is removed at the end anyway, so nothing is lost.
	Durability sdk.Durability
	Keep       bool          // keep the users at the end
	Timeout    time.Duration // how long the backend waits for one answer (default 60 s)
	// Transport is the one transport all phones and the backend share
	// (default: NewTransport sized for the fleet, HTTP/1.1; with H2C and
	// a cloud that speaks it, a SplitTransport).
	Transport http.RoundTripper
	// StateDir, if set, keeps the fleet for the next run (--state DIR):
	// the users, each phone's accounts and counters, and the phones' keys
	// (age-encrypted with Passphrase). A run on an existing StateDir
	// reuses its phones and enrols only those missing; its users stay at
	// the end (the directory names them, so they are not orphans) until
	// Remove. Without it the phones live in a temporary directory.
	StateDir   string
	Passphrase string
	// Progress, if set, is called about every 200 ms while approvals run,
	// and once at the end.
	Progress func(Snapshot)
	// H2C sends the phones' long-polls as HTTP/2 streams without TLS on a
	// few connections (SplitTransport), if the cloud speaks it (asked once
	// at start; `authphone emulator` does), instead of a connection each:
	// for fleets that would run out of file descriptors or memory (a
	// parked long-poll is about 4 KiB less on the fleet's side and a
	// socket, 8 KiB of buffers and a goroutine less on the cloud's). It
	// costs CPU: net/http's HTTP/2 is dearer per request than its
	// HTTP/1.1, and a 10 000-phone fleet ran about 12% slower with it
	// (ARCHITECTURE.md), so it is not the default.
	H2C bool
	// GCPercent, if above 0, is the garbage collector's target percentage
	// (runtime/debug.SetGCPercent, as GOGC) while Run runs; the previous
	// one is restored at the end. A fleet's live heap (K phones and their
	// parked long-polls) is marked on every cycle, so a higher target
	// trades memory for CPU: `authphone fleet` sets 400 unless GOGC is set.
	// 0 leaves the process's setting alone.
	GCPercent int
	// WarmUp is how many approvals to run once the long-polls have
	// settled and before the clock starts: the same approvals as the
	// run's, left out of its counts, throughput, latency and CPU figures
	// (the report gives their number and time) except that a lost or
	// unexpected one still counts and fails the run. WarmUpAuto runs them
	// until the garbage collector has finished two cycles of its own, for
	// at most MaxAutoWarmUp: a fleet's first approvals grow its heap into
	// memory the process has never touched (at 10 000 phones about 12 page
	// faults per approval until the heap first reaches its GC goal, and
	// about 1 until the second, whose goal is set by a live heap of
	// approvals in flight rather than the idle one the forced collection
	// before saw), so a short run measures that rather than the steady
	// state. 0, the default, runs none.
	WarmUp int
}

// WarmUpAuto, as Config.WarmUp, runs warm-up approvals until the garbage
// collector has finished two cycles of its own (the heap has reached the
// goal it keeps while approvals run, and from then on reuses memory it has
// used), at most MaxAutoWarmUp.
const WarmUpAuto = -1

// MaxAutoWarmUp bounds a WarmUpAuto warm-up (a process that never
// collects, GOGC=off, would never end it).
const MaxAutoWarmUp = time.Minute

// ParseWarmUp reads --warmup: 0, a number of approvals, or auto.
func ParseWarmUp(s string) (int, error) {
	if s == "auto" {
		return WarmUpAuto, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%w: warm-up %q: write 0, a number of approvals (e.g. 2000) or auto", ErrBadConfig, s)
	}
	return n, nil
}

// Snapshot is the run so far.
type Snapshot struct {
	// WarmingUp is set while the warm-up approvals (Config.WarmUp) run;
	// the other fields are then the warm-up's.
	WarmingUp bool
	Elapsed   time.Duration
	Started   int64
	Done      int64
	Errors    int64
	PerSec    float64
	P50, P99  time.Duration
}

// Report is a finished run.
type Report struct {
	Phones       int     `json:"phones"`
	SecondFactor string  `json:"secondFactor"`
	Answer       float64 `json:"approveShare"`
	Think        string  `json:"think"`
	Inflight     int     `json:"inflight"`
	Rate         float64 `json:"rate,omitempty"`
	Durability   string  `json:"durability"`
	// Protocol is what the fleet's default transport spoke to the cloud:
	// ProtocolH2C or ProtocolHTTP1 (empty with Config.Transport).
	Protocol     string  `json:"protocol,omitempty"`
	GCPercent    int     `json:"gcPercent,omitempty"` // Config.GCPercent, when Run set it
	KDF          string  `json:"kdf"`
	EnrolSeconds float64 `json:"enrolSeconds"`
	// WarmUpSeconds and WarmUpCPUMS are the wait, before the clock
	// starts, for every phone to hold its long-poll (K signed reads),
	// and the CPU time it took; neither counts in the figures below.
	WarmUpSeconds float64 `json:"warmUpSeconds"`
	WarmUpCPUMS   float64 `json:"warmUpCpuMs"`
	// WarmUpApprovals ran after that and before the clock started
	// (Config.WarmUp), for WarmUpApprovalSeconds; WarmUpOutcomes counts
	// them by outcome. None of the figures below counts them, except
	// Lost, Unexpected and Errors. WarmUpUntil says what ended them:
	// "count", "gc" (WarmUpAuto: the collector finished two cycles), "limit"
	// (WarmUpAuto: MaxAutoWarmUp passed first) or "interrupted".
	WarmUpApprovals       int            `json:"warmUpApprovals,omitempty"`
	WarmUpApprovalSeconds float64        `json:"warmUpApprovalSeconds,omitempty"`
	WarmUpOutcomes        map[string]int `json:"warmUpOutcomes,omitempty"`
	WarmUpUntil           string         `json:"warmUpUntil,omitempty"`
	Seconds               float64        `json:"seconds"`
	Started               int            `json:"started"`
	Outcomes              map[string]int `json:"outcomes"` // succeeded, failed, pending, error
	Lost                  int            `json:"lost"`     // approved by the phone, not succeeded at the backend
	Unexpected            int            `json:"unexpected"`
	PerSecond             float64        `json:"approvalsPerSecond"`
	LatencyMS             Latency        `json:"latencyMs"`
	CPUPerOpMS            float64        `json:"cpuPerApprovalMs"`
	// GCCPUPerOpMS is the part of CPUPerOpMS, in ms per approval, that
	// this process's garbage collector spent by runtime/metrics' estimate
	// (an overestimate: a pause counts on every core; in process, the
	// cloud's collection is in it too). The runtime adds to it when a
	// cycle ends, so it counts the GCCycles cycles that ended in the
	// measured window, in full: a window of a few cycles charges their
	// cost by how many happened to end in it.
	GCCPUPerOpMS float64 `json:"gcCpuPerApprovalMs"`
	GCCycles     uint64  `json:"gcCycles"`
	// CryptoMS is the CPU time of an approval's crypto alone (3 P-256
	// signatures, 2 verifications), measured once the phones are enrolled
	// and before the approvals; CeilingPerSecond the approvals per second
	// this machine's cores could do if they did nothing else. CeilingPercent is this run's approvals/s against it
	// (lower when other processes share the cores); CPUCeilingPercent is
	// the share the run would reach with the cores to itself: the crypto's
	// CPU time over the CPU time per approval.
	//
	// The crypto is measured again once the approvals have stopped
	// (CryptoEndMS): a shared or throttled machine's speed can move by
	// 10–40% within minutes, which no figure here could tell from the
	// fleet's own cost. CryptoMS is then the mean of the two, and the
	// ceiling follows from it (without approvals, it is the first
	// measure alone); CryptoDriftPercent is how far the end's is from the
	// start's (positive: the machine was slower at the end).
	CryptoMS           float64 `json:"cryptoCpuMs"`
	CryptoEndMS        float64 `json:"cryptoCpuMsEnd,omitempty"`
	CryptoDriftPercent float64 `json:"cryptoDriftPercent,omitempty"`
	CeilingPerSecond   float64 `json:"cryptoCeilingPerSecond"`
	CeilingPercent     float64 `json:"cryptoCeilingPercent"`
	CPUCeilingPercent  float64 `json:"cpuCeilingPercent"`
	// HeapPerPhone is the live heap an idle phone holds (its SDK object,
	// accounts, keys and keystore entries), measured by letting go of the
	// phones at the end; HeapPerPhoneWithCloud is the heap each enrolled
	// phone added, the in-process cloud's share of state included.
	HeapPerPhone          int64 `json:"heapPerIdlePhoneBytes"`
	HeapPerPhoneWithCloud int64 `json:"heapPerPhoneWithCloudBytes"`
	// HeapPerPollingPhone is the heap each phone's parked long-poll adds
	// (its request, and over a network its connection's buffers on both
	// sides and the cloud's waiter), measured once all are parked.
	HeapPerPollingPhone int64 `json:"heapPerPollingPhoneBytes"`
	// Reused is how many phones came from StateDir; Enrolled how many
	// were enrolled by this run.
	Reused      int      `json:"reusedPhones"`
	Enrolled    int      `json:"enrolledPhones"`
	StateDir    string   `json:"stateDir,omitempty"`
	Interrupted bool     `json:"interrupted,omitempty"`
	Kept        bool     `json:"keptUsers,omitempty"`
	Errors      []string `json:"errors,omitempty"` // the first few
}

// Latency holds percentiles of the backend's view: approval call → final status.
type Latency struct {
	P50 float64 `json:"p50"`
	P90 float64 `json:"p90"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
}

// Failed reports whether anything was lost or failed unexpectedly.
func (r *Report) Failed() bool { return r.Lost > 0 || r.Unexpected > 0 }

type phone struct {
	p        *sdk.Phone
	username string
	userID   string
	decided  decisions // approval message → "approving" | "approved" | "denied" | "error"
	reused   bool      // from the state directory
}

// decisions is what a phone decided about each approval the backend has
// not yet seen end: a handful at most (the approvals in flight on this
// phone), so a map under a mutex, made on first use and emptied as the
// backend reads them. A sync.Map was a hash trie per phone: at 10 000
// phones each approval walked a cold one, and an idle phone kept its root.
type decisions struct {
	mu sync.Mutex
	m  map[string]string
}

func (d *decisions) set(msg, v string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.m == nil {
		d.m = make(map[string]string, 1)
	}
	d.m[msg] = v
}

// swap sets msg to v if it is old.
func (d *decisions) swap(msg, old, v string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.m[msg] == old {
		d.m[msg] = v
	}
}

// take returns msg's decision ("" if none) and forgets it; the map goes
// with its last entry.
func (d *decisions) take(msg string) string {
	d.mu.Lock()
	defer d.mu.Unlock()
	v, ok := d.m[msg]
	if ok {
		delete(d.m, msg)
		if len(d.m) == 0 {
			d.m = nil
		}
	}
	return v
}

type run struct {
	cfg    Config
	be     *backend.Client
	client *http.Client
	phones []*phone
	keys   *keystore.Memory // every phone's keys (names are unique per key)
	memory bool             // the phones keep their state in memory (relaxed, no StateDir)

	mu        sync.Mutex
	latencies []time.Duration
	outcomes  map[string]int
	lost      int
	unexp     int
	errs      []string

	begin     time.Time // of the approvals running now (warm-up or measured); under mu
	warmingUp bool      // under mu
	next      int       // the number of the next approval (its message and phone)

	started, done, nerr atomic.Int64
	polling             atomic.Int64 // phones that have sent their first read
}

func (c *Config) check() error {
	switch {
	case c.Phones < 1:
		return fmt.Errorf("%w: --phones must be at least 1", ErrBadConfig)
	case c.Count < 0 || c.Duration < 0 || c.Rate < 0 || c.Inflight < 0:
		return fmt.Errorf("%w: --count, --duration, --rate and --inflight cannot be negative", ErrBadConfig)
	case c.WarmUp < WarmUpAuto:
		return fmt.Errorf("%w: --warmup cannot be negative (0, a number of approvals, or auto)", ErrBadConfig)
	case c.Count == 0 && c.Duration == 0:
		return fmt.Errorf("%w: give --count N or --duration D", ErrBadConfig)
	case c.Approve < 0 || c.Approve > 1:
		return fmt.Errorf("%w: the approve share must be between 0 and 1", ErrBadConfig)
	case c.Cloud == "":
		return fmt.Errorf("%w: no cloud URL", ErrBadConfig)
	}
	return nil
}

// Run enrols the fleet, runs the approvals and returns the report. A
// cancelled ctx stops starting approvals; those in flight finish (or give up
// after a few seconds), the users are removed unless Keep, and the report of
// what ran is returned with Interrupted set.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	if cfg.Inflight == 0 {
		cfg.Inflight = 16
	}
	if cfg.PIN == "" {
		cfg.PIN = "1234"
	}
	if cfg.KDF.Time == 0 {
		cfg.KDF = sdk.KDFStandard
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 60 * time.Second
	}
	if cfg.GCPercent > 0 {
		defer debug.SetGCPercent(debug.SetGCPercent(cfg.GCPercent))
	}
	protocol := ""
	if cfg.Transport == nil {
		cfg.Transport, protocol = cfg.transport(ctx)
	}
	if cfg.StateDir != "" && cfg.Passphrase == "" {
		return nil, fmt.Errorf("%w: --state keeps the phones' keys encrypted: set %s", ErrBadConfig, keystore.PassphraseEnv)
	}
	dir := cfg.StateDir
	memory := dir == "" && cfg.Durability == sdk.DurabilityRelaxed
	if dir == "" && !memory {
		d, err := os.MkdirTemp("", "authphone-fleet-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(d)
		dir = d
	}
	r := &run{cfg: cfg, client: &http.Client{Transport: cfg.Transport}, outcomes: map[string]int{}, keys: keystore.NewMemory(), memory: memory}
	// The phones enrol by app link: no QR image is rendered for them. The
	// backend's calls carry no one-time signature: one that met a
	// connection the cloud had closed is sent again as it was (the
	// phones sign theirs again, in the SDK).
	beTransport := cfg.Transport
	if _, inProcess := beTransport.(sdk.InProcess); !inProcess {
		beTransport = httplimit.RetryStale{Base: beTransport}
	}
	r.be = backend.New(cfg.Cloud, backend.WithAccessKey(cfg.AccessKey),
		backend.WithHTTPClient(&http.Client{Transport: beTransport}), backend.WithMinimalAnswers())
	if err := r.be.Ping(ctx); err != nil {
		return nil, fmt.Errorf("reach the cloud at %s: %w", cfg.Cloud, err)
	}
	rep := &Report{Protocol: protocol, Phones: cfg.Phones, Answer: cfg.Approve, Think: cfg.Think.String(), Inflight: cfg.Inflight, Rate: cfg.Rate,
		Durability: durabilityNote(cfg.Durability, memory), GCPercent: cfg.GCPercent, SecondFactor: "pin", Kept: cfg.Keep || cfg.StateDir != "", KDF: cfg.KDF.Name,
		StateDir: cfg.StateDir, Outcomes: map[string]int{}}
	if cfg.Biometric {
		rep.SecondFactor = "biometric"
	}
	var saved *savedFleet
	if cfg.StateDir != "" {
		var err error
		if saved, err = r.loadState(ctx); err != nil {
			return nil, err
		}
	}
	heap0 := heap()
	t0 := time.Now()
	err := r.enrol(ctx, dir, saved)
	defer r.cleanup()
	rep.EnrolSeconds = time.Since(t0).Seconds()
	for _, ph := range r.phones {
		switch {
		case ph == nil:
		case ph.reused:
			rep.Reused++
		default:
			rep.Enrolled++
		}
	}
	if cfg.StateDir != "" {
		if serr := r.saveState(ctx); serr != nil && err == nil {
			err = serr
		}
	}
	if err != nil && ctx.Err() == nil {
		return nil, err
	}
	if ctx.Err() != nil { // Ctrl-C while enrolling: report what was done
		rep.Interrupted = true
		return rep, nil
	}
	rep.HeapPerPhoneWithCloud = max(0, int64(heap())-int64(heap0)) / int64(cfg.Phones)
	// The crypto is measured once the enrolments are done and before the
	// phones start, when the cloud is idle too (measured before the
	// enrolments, against an emulator just started in another process,
	// it read up to 37% dearer than at the end: the two shared the cores).
	quiet()
	cost, ceiling := CryptoCeiling(cryptoSample)
	rep.CryptoMS, rep.CeilingPerSecond = ms(cost), ceiling

	heapIdle0 := heap()
	phoneCtx, stopPhones := context.WithCancel(context.WithoutCancel(ctx))
	var pw sync.WaitGroup
	for _, ph := range r.phones {
		pw.Add(1)
		go func() { defer pw.Done(); r.answer(phoneCtx, ph) }()
	}
	// The clock starts once every phone holds its long-poll: K first
	// signed reads are the fleet's warm-up, not its approvals' cost.
	w0, c0 := time.Now(), cpuTime()
	r.settle(ctx)
	rep.WarmUpSeconds, rep.WarmUpCPUMS = time.Since(w0).Seconds(), ms(cpuTime()-c0)
	rep.HeapPerPollingPhone = max(0, int64(heap())-int64(heapIdle0)) / int64(cfg.Phones)
	r.mu.Lock()
	r.begin = time.Now()
	r.mu.Unlock()
	progressDone := make(chan struct{})
	var progWG sync.WaitGroup
	if cfg.Progress != nil {
		progWG.Add(1)
		go func() {
			defer progWG.Done()
			t := time.NewTicker(200 * time.Millisecond)
			defer t.Stop()
			for {
				select {
				case <-progressDone:
					return
				case <-t.C:
					cfg.Progress(r.snapshot())
				}
			}
		}()
	}
	if cfg.WarmUp != 0 {
		r.warmUp(ctx, rep)
	}
	cpu0, gc0, cycles0 := cpuTime(), gcCPU(), gcCycles()
	r.mu.Lock()
	r.begin = time.Now()
	r.mu.Unlock()
	r.drive(ctx, drivePlan{label: "fleet approval #", count: cfg.Count, duration: cfg.Duration})
	elapsed := time.Since(r.begin)
	cpu := cpuTime() - cpu0
	gcTime, cycles := gcCPU()-gc0, gcCycles()-cycles0
	close(progressDone)
	progWG.Wait()
	stopPhones()
	pw.Wait()
	if cfg.Progress != nil {
		cfg.Progress(r.snapshot())
	}

	rep.HeapPerPhone = r.phoneHeap()
	if n := len(r.latencies); n > 0 && rep.CryptoMS > 0 {
		// Measured with the phones stopped, before the users are removed.
		quiet()
		if end, _ := CryptoCeiling(cryptoSample); end > 0 {
			start := rep.CryptoMS
			rep.CryptoEndMS = ms(end)
			rep.CryptoDriftPercent = 100 * (rep.CryptoEndMS - start) / start
			rep.CryptoMS = (start + rep.CryptoEndMS) / 2
			rep.CeilingPerSecond = float64(runtime.GOMAXPROCS(0)) * 1000 / rep.CryptoMS
		}
	}
	rep.Interrupted = ctx.Err() != nil
	rep.Seconds = elapsed.Seconds()
	rep.Started = int(r.started.Load())
	rep.Outcomes, rep.Lost, rep.Unexpected, rep.Errors = r.outcomes, r.lost, r.unexp, r.errs
	n := len(r.latencies)
	if n > 0 {
		rep.PerSecond = float64(n) / elapsed.Seconds()
		rep.CPUPerOpMS = ms(cpu) / float64(n)
		rep.GCCPUPerOpMS, rep.GCCycles = ms(gcTime)/float64(n), cycles
		rep.LatencyMS = latency(r.latencies)
		if rep.CeilingPerSecond > 0 {
			rep.CeilingPercent = 100 * rep.PerSecond / rep.CeilingPerSecond
		}
		if rep.CPUPerOpMS > 0 {
			rep.CPUCeilingPercent = 100 * rep.CryptoMS / rep.CPUPerOpMS
		}
	}
	return rep, nil
}

func durabilityNote(d sdk.Durability, memory bool) string {
	if memory {
		return "relaxed (no --state: each phone's accounts and sign counters kept in memory only, nothing written)"
	}
	if d == sdk.DurabilityRelaxed {
		return "relaxed (sign counter appended to each phone's counters.log without fsync)"
	}
	return "full (sign counter appended to each phone's counters.log and fsynced before it is used)"
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func latency(ls []time.Duration) Latency {
	s := slices.Clone(ls)
	slices.Sort(s)
	at := func(q float64) float64 { return ms(s[min(len(s)-1, int(math.Ceil(q*float64(len(s))))-1)]) }
	return Latency{P50: at(0.50), P90: at(0.90), P99: at(0.99), Max: ms(s[len(s)-1])}
}

func (r *run) snapshot() Snapshot {
	r.mu.Lock()
	begin, warming := r.begin, r.warmingUp
	var p50, p99 time.Duration
	if n := len(r.latencies); n > 0 {
		tail := r.latencies[max(0, n-2000):]
		s := slices.Clone(tail)
		r.mu.Unlock()
		slices.Sort(s)
		p50, p99 = s[(len(s)-1)/2], s[min(len(s)-1, int(math.Ceil(0.99*float64(len(s))))-1)]
	} else {
		r.mu.Unlock()
	}
	el := time.Since(begin)
	done := r.done.Load()
	return Snapshot{WarmingUp: warming, Elapsed: el, Started: r.started.Load(), Done: done, Errors: r.nerr.Load(),
		PerSec: float64(done) / max(el.Seconds(), 1e-9), P50: p50, P99: p99}
}

// warmUp runs the warm-up approvals (Config.WarmUp), notes them in rep
// and leaves the run's counts as they were before it, but for the lost,
// unexpected and errors, which stay.
func (r *run) warmUp(ctx context.Context, rep *Report) {
	r.mu.Lock()
	r.begin, r.warmingUp = time.Now(), true
	r.mu.Unlock()
	plan := drivePlan{label: "fleet warm-up #", count: r.cfg.WarmUp}
	rep.WarmUpUntil = "count"
	if r.cfg.WarmUp == WarmUpAuto {
		// Automatic cycles only: heap() forced those before. The first
		// ends at the goal the forced ones set from the idle fleet; the
		// second at the one set from a fleet running approvals.
		gc0 := gcCycles()
		plan.count, plan.duration = 0, MaxAutoWarmUp
		plan.until = func() bool { return gcCycles() >= gc0+2 }
	}
	ended := r.drive(ctx, plan)
	switch {
	case ctx.Err() != nil:
		rep.WarmUpUntil = "interrupted"
	case r.cfg.WarmUp == WarmUpAuto && ended:
		rep.WarmUpUntil = "gc"
	case r.cfg.WarmUp == WarmUpAuto:
		rep.WarmUpUntil = "limit"
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	rep.WarmUpApprovalSeconds = time.Since(r.begin).Seconds()
	rep.WarmUpApprovals = int(r.started.Swap(0))
	rep.WarmUpOutcomes, r.outcomes = r.outcomes, map[string]int{}
	r.latencies = r.latencies[:0]
	r.done.Store(0)
	// The measured window's clock, in the same step: no snapshot sees
	// it with the warm-up's elapsed time.
	r.begin, r.warmingUp = time.Now(), false
}

// gcCycles is how many cycles the garbage collector has finished on its
// own (runtime.GC's not counted).
func gcCycles() uint64 {
	return readUint64("/gc/cycles/automatic:gc-cycles")
}

// gcCPU is the runtime's estimate of the CPU time this process's
// garbage collector has spent, as of the last cycle's end.
func gcCPU() time.Duration {
	s := []metrics.Sample{{Name: "/cpu/classes/gc/total:cpu-seconds"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindFloat64 {
		return 0
	}
	return time.Duration(s[0].Value.Float64() * float64(time.Second))
}

func readUint64(name string) uint64 {
	s := []metrics.Sample{{Name: name}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return s[0].Value.Uint64()
}

// enrol makes the K phones, a few at a time: those saved in the state
// directory (if their user still exists) are reused, the others enrolled.
func (r *run) enrol(ctx context.Context, dir string, saved *savedFleet) error {
	prefix := fmt.Sprintf("fleet-%d-", time.Now().UnixNano()%1e9)
	r.phones = make([]*phone, r.cfg.Phones)
	var known map[string]bool
	if saved != nil && len(saved.Phones) > 0 {
		us, err := r.be.Users(ctx)
		if err != nil {
			return fmt.Errorf("list the cloud's users to reuse the saved fleet: %w", err)
		}
		known = make(map[string]bool, len(us))
		for _, u := range us {
			known[u.UserID] = true
		}
	}
	sem := make(chan struct{}, max(2, runtime.GOMAXPROCS(0)*2))
	var wg sync.WaitGroup
	var first error
	var once sync.Once
	for i := range r.phones {
		sem <- struct{}{}
		if ctx.Err() != nil {
			<-sem
			break
		}
		pdir := filepath.Join(dir, "phones", strconv.Itoa(i))
		if saved != nil && i < len(saved.Phones) && known[saved.Phones[i].UserID] {
			ph, err := r.reuse(pdir, saved.Phones[i])
			<-sem
			if err == nil {
				r.phones[i] = ph
				continue
			}
		}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			_ = os.RemoveAll(pdir)
			ph, err := r.enrolOne(ctx, pdir, prefix+strconv.Itoa(i))
			if err != nil {
				if ctx.Err() == nil {
					once.Do(func() { first = fmt.Errorf("enrol phone %d: %w", i, err) })
				}
				return
			}
			r.mu.Lock()
			r.phones[i] = ph
			r.mu.Unlock()
		}()
	}
	wg.Wait()
	if first == nil && ctx.Err() != nil {
		first = fmt.Errorf("enrolment interrupted: %w", context.Cause(ctx))
	}
	return first
}

func (r *run) newPhone(dir, username string) (*sdk.Phone, error) {
	where := sdk.WithStateDir(dir)
	if r.memory {
		where = sdk.WithMemoryState()
	}
	return sdk.New("fleet", r.keys, where, sdk.WithCloud(r.cfg.Cloud),
		sdk.WithHTTPClient(r.client), sdk.WithKDF(r.cfg.KDF), sdk.WithDurability(r.cfg.Durability), sdk.WithDeviceName("authphone fleet phone "+username))
}

// reuse opens a saved phone; it must still hold its account.
func (r *run) reuse(dir string, sp savedPhone) (*phone, error) {
	p, err := r.newPhone(dir, sp.Username)
	if err != nil {
		return nil, err
	}
	accts, err := p.Accounts()
	if err != nil || len(accts) != 1 || accts[0].UserID != sp.UserID {
		return nil, fmt.Errorf("saved phone of %s has no account", sp.Username)
	}
	return &phone{p: p, username: sp.Username, userID: sp.UserID, reused: true}, nil
}

func (r *run) enrolOne(ctx context.Context, dir, username string) (*phone, error) {
	p, err := r.newPhone(dir, username)
	if err != nil {
		return nil, err
	}
	// The enroll call is not cut short by ctx: a cancelled call may still
	// have made the user, whose id the fleet then would not know.
	ectx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.cfg.Timeout)
	u, _, err := r.be.Enroll(ectx, cloudapi.EnrollRequest{Username: username})
	cancel()
	if err != nil {
		return nil, err
	}
	if ctx.Err() != nil {
		r.forget(u.UserID)
		return nil, context.Cause(ctx)
	}
	ph := &phone{p: p, username: username, userID: u.UserID}
	var so []sdk.ScanOption
	if r.cfg.Biometric {
		so = append(so, sdk.WithBiometric())
	}
	f, err := p.Scan(ctx, []byte(u.Enrollment.AppLinkURI), so...)
	if err != nil {
		r.forget(u.UserID)
		return nil, err
	}
	if last := flows.Drive(f, flows.Answers{NewPIN: r.cfg.PIN, Biometric: true}.Answer, nil); last.State != flows.Done {
		r.forget(u.UserID)
		return nil, fmt.Errorf("enrolment ended %s: %v", last.State, last.Err)
	}
	return ph, nil
}

// phoneHeap measures the heap the phones hold by letting go of them (and
// of their keys): call it once the phones have stopped.
func (r *run) phoneHeap() int64 {
	// The long-polls the phones dropped leave connections closing in
	// the shared transport: let them go first, so that they are not
	// counted as the phones'.
	r.client.CloseIdleConnections()
	with := heap()
	for range 20 {
		time.Sleep(10 * time.Millisecond)
		h := heap()
		if h >= with-with/200 {
			with = min(with, h)
			break
		}
		with = h
	}
	for _, ph := range r.phones {
		if ph != nil {
			ph.p = nil
		}
	}
	r.keys = nil
	return max(0, int64(with)-int64(heap())) / int64(len(r.phones))
}

func (r *run) forget(userID string) {
	if r.cfg.Keep {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = r.be.DeleteUser(ctx, userID)
}

// cleanup removes every enrolled user unless Keep or StateDir.
func (r *run) cleanup() {
	if r.cfg.Keep || r.cfg.StateDir != "" {
		return
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for _, ph := range r.phones {
		if ph == nil {
			continue
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() { defer func() { <-sem; wg.Done() }(); r.forget(ph.userID) }()
	}
	wg.Wait()
}

// settle waits until every phone has sent its first read and the process
// has stayed quiet (under a tenth of a core) for three 100 ms windows in a
// row, the cloud having parked the long-polls; or 5 s plus 10 ms per phone
// at most (a loaded machine makes the K first reads slow).
func (r *run) settle(ctx context.Context) {
	settleQuiet(ctx, 5*time.Second+time.Duration(len(r.phones))*10*time.Millisecond, func() bool {
		return int(r.polling.Load()) >= len(r.phones)
	})
}

// quiet waits, for a second at most, until the process has used under a
// tenth of a core for three 100 ms windows in a row: the crypto is then
// measured without the tail of the work before it (connections closing,
// the in-process cloud's requests ending).
func quiet() {
	settleQuiet(context.Background(), time.Second, func() bool { return true })
}

// settleQuiet waits, for limit at most, until ready holds and the process
// has used under a tenth of a core for three 100 ms windows in a row.
func settleQuiet(ctx context.Context, limit time.Duration, ready func() bool) {
	deadline := time.Now().Add(limit)
	quiet := 0
	for time.Now().Before(deadline) && ctx.Err() == nil && quiet < 3 {
		c0 := cpuTime()
		time.Sleep(100 * time.Millisecond)
		if ready() && cpuTime()-c0 < 10*time.Millisecond {
			quiet++
		} else {
			quiet = 0
		}
	}
}

// pollWait is how long one long-poll of a phone holds: the multi-account
// inbox's longest wait (cloudapi.MaxInboxesWait, 5 minutes; a cloud that
// holds it less answers sooner and the phone polls again), less up to a
// quarter at random. A phone's first holds anything from a second to the
// longest wait, at random: the phones start polling together, and without
// it the idle phones of a large fleet would all poll again in the same
// stretch (at 60 s, 10 000 phones: about 670 signed reads a second there,
// none before), which slowed the approvals running then. Spread, they poll
// again at an even K per 4.4 minutes (at 60 s it was K per 52 s: 190
// signed reads a second for 10 000 idle phones, about 140 ms of CPU a
// second between the fleet and the emulator).
func pollWait(first bool) time.Duration {
	if first {
		return time.Second + time.Duration(mrand.Int64N(int64(cloudapi.MaxInboxesWait-time.Second)))
	}
	return cloudapi.MaxInboxesWait - time.Duration(mrand.Int64N(int64(cloudapi.MaxInboxesWait/4)))
}

// answer is one phone's user: it waits for requests and answers each.
func (r *run) answer(ctx context.Context, ph *phone) {
	first := true
	for ctx.Err() == nil {
		wait := pollWait(first)
		if first {
			r.polling.Add(1)
			first = false
		}
		req, err := ph.p.Next(ctx, sdk.Select{Wait: wait})
		if err != nil {
			if ctx.Err() == nil && !errors.Is(err, sdk.ErrNoPending) {
				r.fail(ctx, "phone "+ph.username+": "+err.Error())
				select {
				case <-ctx.Done():
				case <-time.After(100 * time.Millisecond):
				}
			}
			continue
		}
		if d := r.cfg.Think.draw(); d > 0 {
			select {
			case <-ctx.Done():
				return
			case <-time.After(d):
			}
		}
		if mrand.Float64() < r.cfg.Approve {
			// The backend can read succeeded before the flow's last update.
			ph.decided.set(req.Message, "approving")
			f, err := ph.p.Approve(ctx, req)
			if err != nil {
				ph.decided.set(req.Message, "error")
				r.fail(ctx, "phone "+ph.username+" approve: "+err.Error())
				continue
			}
			last := flows.Drive(f, flows.Answers{Confirm: true, PIN: r.cfg.PIN, Biometric: true}.Answer, nil)
			if last.State != flows.Done {
				ph.decided.set(req.Message, "error")
				r.fail(ctx, fmt.Sprintf("phone %s approve ended %s: %v", ph.username, last.State, last.Err))
				continue
			}
			ph.decided.swap(req.Message, "approving", "approved")
		} else {
			ph.decided.set(req.Message, "denied")
			if err := ph.p.Deny(ctx, req, "fleet policy"); err != nil {
				ph.decided.set(req.Message, "error")
				r.fail(ctx, "phone "+ph.username+" deny: "+err.Error())
			}
		}
	}
}

func (r *run) fail(ctx context.Context, msg string) {
	if ctx.Err() != nil {
		return // the run is over: a flow cut short is not a failure
	}
	r.nerr.Add(1)
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.errs) < 10 {
		r.errs = append(r.errs, msg)
	}
}

// drivePlan is one stretch of approvals: count of them (0: no limit), for
// duration at most (0: no limit), until until reports true (checked before
// each start), their messages numbered after label.
type drivePlan struct {
	label    string
	count    int
	duration time.Duration
	until    func() bool
}

// drive starts approvals as plan says, at Rate, with at most Inflight at
// once, and waits for those in flight. It reports whether plan.until
// ended them.
func (r *run) drive(ctx context.Context, plan drivePlan) (untilMet bool) {
	stop := ctx
	if plan.duration > 0 {
		c, cancel := context.WithTimeout(ctx, plan.duration)
		defer cancel()
		stop = c
	}
	// In-flight approvals outlive a Ctrl-C by a grace period.
	flight, cancelFlight := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelFlight()
	go func() {
		select {
		case <-flight.Done(): // drive returned
			return
		case <-ctx.Done():
		}
		select {
		case <-flight.Done():
		case <-time.After(5 * time.Second):
			cancelFlight()
		}
	}()
	var tick <-chan time.Time
	if r.cfg.Rate > 0 {
		t := time.NewTicker(time.Duration(float64(time.Second) / r.cfg.Rate))
		defer t.Stop()
		tick = t.C
	}
	// Inflight workers, not a goroutine per approval: a worker's stack
	// has grown to what an approval needs once, not for every approval.
	jobs := make(chan int)
	var wg sync.WaitGroup
	for range r.cfg.Inflight {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				r.started.Add(1)
				r.one(flight, r.phones[i%len(r.phones)], plan.label+strconv.Itoa(i))
			}
		}()
	}
	for n := 0; plan.count == 0 || n < plan.count; n++ {
		if tick != nil {
			select {
			case <-stop.Done():
			case <-tick:
			}
		}
		if stop.Err() != nil {
			break
		}
		if plan.until != nil && plan.until() {
			untilMet = true
			break
		}
		select {
		case <-stop.Done():
		case jobs <- r.next:
			r.next++
		}
		if stop.Err() != nil {
			break
		}
	}
	close(jobs)
	wg.Wait()
	return untilMet
}

// one is one approval, seen from the backend.
func (r *run) one(ctx context.Context, ph *phone, msg string) {
	t0 := time.Now()
	ap, _, err := r.be.Approve(ctx, cloudapi.ApprovalRequest{Username: ph.username, Message: msg})
	if err != nil {
		r.record(ph, msg, "error", 0, "approval call: "+err.Error())
		return
	}
	st, err := r.be.WaitStatus(ctx, ap.StatusToken, r.cfg.Timeout)
	d := time.Since(t0)
	if err != nil {
		r.record(ph, msg, "error", d, "status: "+err.Error())
		return
	}
	r.record(ph, msg, st.Status, d, "")
}

func (r *run) record(ph *phone, msg, status string, d time.Duration, errMsg string) {
	r.done.Add(1)
	decided := ph.decided.take(msg)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.outcomes[status]++
	if d > 0 && (status == cloudapi.StatusSucceeded || status == cloudapi.StatusFailed) {
		r.latencies = append(r.latencies, d)
	}
	switch {
	case decided == "approved" && status != cloudapi.StatusSucceeded:
		r.lost++
		r.note(fmt.Sprintf("lost: %s approved by %s, the backend saw %s %s", msg, ph.username, status, errMsg))
	case decided == "denied" && status == cloudapi.StatusFailed:
	case (decided == "approved" || decided == "approving") && status == cloudapi.StatusSucceeded:
	default:
		r.unexp++
		if errMsg == "" {
			if decided == "" {
				decided = "none"
			}
			errMsg = fmt.Sprintf("phone decision %s, backend status %s", decided, status)
		}
		r.note(msg + ": " + errMsg)
	}
}

func (r *run) note(s string) {
	r.nerr.Add(1)
	if len(r.errs) < 10 {
		r.errs = append(r.errs, s)
	}
}

func heap() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// cryptoSample is how long a run measures its crypto, before and after
// its approvals.
const cryptoSample = 300 * time.Millisecond

// CryptoCeiling measures, for d after an untimed pass of up to 100 ms, the
// CPU time the crypto of one approval takes on this machine — 3 P-256
// signatures (the signed inbox read, the UAF assertion, the cloud's token)
// and 2 verifications — and returns it with the ceiling: the approvals per
// second all its cores (GOMAXPROCS) could do if they did nothing else. It
// is the whole process's CPU time, so call it when nothing else in the
// process works; measured in CPU time, other processes change it only by
// sharing the cores' caches and pipelines (a few %; up to 37% seen against
// a process busy starting).
func CryptoCeiling(d time.Duration) (cost time.Duration, perSecond float64) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	digest := sha256.Sum256([]byte("the signed data of an authentication assertion"))
	n := runtime.GOMAXPROCS(0)
	// An untimed pass first: the first signatures of a pass pay for
	// fresh pages and goroutine stacks (in the process's CPU time, which
	// is what is measured). Without it the measures at a run's start and
	// end were apart by -37% to +13% on one machine; with it (and
	// measured when the process is quiet), within 4%.
	cryptoRun(n, min(d/3, 100*time.Millisecond), key, digest[:])
	cpu0 := cpuTime()
	ops := cryptoRun(n, d, key, digest[:])
	cost = (cpuTime() - cpu0) / time.Duration(max(ops, 1))
	return cost, float64(n) / cost.Seconds()
}

// cryptoRun runs one approval's crypto on n goroutines for d and returns
// how many times it ran.
func cryptoRun(n int, d time.Duration, key *ecdsa.PrivateKey, digest []byte) int64 {
	var ops atomic.Int64
	deadline := time.Now().Add(d)
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
				var sig []byte
				for range 3 {
					sig, _ = ecdsa.SignASN1(rand.Reader, key, digest)
				}
				for range 2 {
					ecdsa.VerifyASN1(&key.PublicKey, digest, sig)
				}
				ops.Add(1)
			}
		}()
	}
	wg.Wait()
	return ops.Load()
}
