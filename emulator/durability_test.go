package emulator_test

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/authphone/authphone/sdk/cloudapi"
	"github.com/authphone/authphone/sdk/deviceapi"
	"github.com/authphone/authphone/sdk/dispatch"
	"github.com/authphone/authphone/sdk/uaf"
)

// child is this test binary run as an emulator on a SQLite file
// (runChild in child_test.go), so that it can be killed with SIGKILL.
type child struct {
	cmd    *exec.Cmd
	url    string
	lines  chan string // what it prints after its URL
	stderr *strings.Builder
	mu     *sync.Mutex
}

// startChild starts an emulator on db, at addr (host:port, or "" for a
// free port).
func startChild(t *testing.T, db, addr string) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "AUTHPHONE_TEST_CHILD_DB="+db, "AUTHPHONE_TEST_CHILD_ADDR="+addr)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	ch := &child{cmd: cmd, lines: make(chan string, 16), stderr: &strings.Builder{}, mu: &sync.Mutex{}}
	cmd.Stderr = lockedWriter{ch.mu, ch.stderr}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			ch.lines <- sc.Text()
		}
		close(ch.lines)
	}()
	select {
	case ch.url = <-ch.lines:
	case <-time.After(60 * time.Second):
		t.Fatalf("the emulator did not start: %s", ch.errors())
	}
	if !strings.HasPrefix(ch.url, "http://") {
		t.Fatalf("the emulator did not start: %q %s", ch.url, ch.errors())
	}
	return ch
}

func (ch *child) errors() string {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	return ch.stderr.String()
}

// logged reports whether the child's stderr holds want, waiting up to
// within for it: its log lines are copied from a pipe and can trail the
// answers the test has already read.
func (ch *child) logged(want string, within time.Duration) bool {
	deadline := time.Now().Add(within)
	for !strings.Contains(ch.errors(), want) {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
	return true
}

// kill ends the child with SIGKILL: no deferred write, no clean close.
func (ch *child) kill(t *testing.T) {
	t.Helper()
	if err := ch.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = ch.cmd.Wait()
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// abortTB turns a helper's Fatal into a panic that attempt recovers: the
// helpers of device_test.go then serve a load that expects failures.
type abortTB struct{ testing.TB }

type aborted struct{ msg string }

func (abortTB) Helper()                        {}
func (abortTB) Fatal(args ...any)              { panic(aborted{fmt.Sprint(args...)}) }
func (abortTB) Fatalf(format string, a ...any) { panic(aborted{fmt.Sprintf(format, a...)}) }

// attempt runs f against the emulator at url; it returns f's failure, if
// any, instead of failing the test.
func attempt(t testing.TB, url string, f func(c *cloud)) (err error) {
	defer func() {
		if r := recover(); r != nil {
			a, ok := r.(aborted)
			if !ok {
				panic(r)
			}
			err = fmt.Errorf("%s", a.msg)
		}
	}()
	f(&cloud{t: abortTB{t}, url: url})
	return nil
}

// phone is one enrolled device of the load, with what the cloud
// acknowledged.
type phone struct {
	name     string
	dev      *device
	enrolled bool     // the enrolment's status read succeeded
	acked    uint32   // the highest counter the cloud accepted (200)
	sent     uint32   // the highest counter ever sent
	approved []string // status tokens of acknowledged approvals
}

// run enrols the phone if needed, then answers approvals until the cloud
// stops answering.
func (p *phone) run(t testing.TB, url string, stop <-chan struct{}, acks *atomic.Int64) {
	for {
		select {
		case <-stop:
			return
		default:
		}
		err := attempt(t, url, func(c *cloud) {
			if !p.enrolled {
				c.enrolled(p.dev, p.name)
				p.enrolled = true
				acks.Add(1)
				return
			}
			ap := c.approve(cloudapi.ApprovalRequest{Username: p.name})
			p.sent++
			if code, sb := c.answer(p.dev, ap.TransactionID, p.sent); code != 200 {
				c.t.Fatalf("authenticate: %d %+v", code, sb)
			}
			p.acked = p.sent
			p.approved = append(p.approved, ap.StatusToken)
			acks.Add(1)
		})
		if err != nil {
			return // the emulator went away mid-request
		}
	}
}

// TestKill9LosesNothingAcknowledged: an emulator on SQLite killed with
// SIGKILL in the middle of a load of enrolments and approvals, twice, comes
// back with every enrolment and approval it acknowledged, and no counter
// rolled back (the last accepted one is refused as a replay).
func TestKill9LosesNothingAcknowledged(t *testing.T) {
	if testing.Short() {
		t.Skip("starts emulator processes")
	}
	db := filepath.Join(t.TempDir(), "cloud.db")
	var phones []*phone
	for i := range 4 {
		phones = append(phones, &phone{name: fmt.Sprintf("kill9-%d", i), dev: newDevice()})
	}
	for round := range 2 {
		ch := startChild(t, db, "")
		var acks atomic.Int64
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for _, p := range phones {
			wg.Go(func() { p.run(t, ch.url, stop, &acks) })
		}
		// Kill once the load has been acknowledged a few times: requests
		// are in flight at that moment.
		for deadline := time.Now().Add(2 * time.Minute); acks.Load() < 12; time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("the load made no progress: %s", ch.errors())
			}
		}
		ch.kill(t)
		close(stop)
		wg.Wait()
		t.Logf("round %d: %d acknowledged before the kill", round, acks.Load())
	}

	ch := startChild(t, db, "")
	c := &cloud{t: t, url: ch.url}
	for _, p := range phones {
		if !p.enrolled {
			continue
		}
		var u cloudapi.User
		if code := c.do("GET", cloudapi.PathUsers+"?username="+p.name, backendAuth, nil, &u); code != 200 || u.Status != cloudapi.UserActive || len(u.Authenticators) == 0 {
			t.Fatalf("%s, enrolled before a kill: %d %+v", p.name, code, u)
		}
		for _, st := range p.approved {
			if s := c.status(st); s != cloudapi.StatusSucceeded {
				t.Fatalf("%s: an acknowledged approval reads %s after the kill", p.name, s)
			}
		}
		if p.acked > 0 {
			// The last accepted counter is a replay now.
			ap := c.approve(cloudapi.ApprovalRequest{Username: p.name})
			if code, sb := c.answer(p.dev, ap.TransactionID, p.acked); code == 200 || !strings.Contains(sb.Description, "counter") {
				t.Fatalf("%s: counter %d accepted again after the kill: %d %+v", p.name, p.acked, code, sb)
			}
			c.do("DELETE", cloudapi.PathUsers+"/"+u.UserID, backendAuth, nil, nil)
		}
	}
}

// TestWriteFailureChangesNothing: when the emulator's writes start failing
// (a file size limit on the process, like a full disk), each change is
// answered 503 with Retry-After and a message saying nothing was changed,
// nothing of it is visible (no user, no counter used, the approval still
// pending), reads still answer, and after a restart without the limit
// everything acknowledged is there and the refused changes are not.
func TestWriteFailureChangesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("starts emulator processes")
	}
	db := filepath.Join(t.TempDir(), "cloud.db")
	ch := startChild(t, db, "")
	c := &cloud{t: t, url: ch.url}
	d := newDevice()
	c.enrolled(d, "alice")
	ap := c.approve(cloudapi.ApprovalRequest{Username: "alice"})
	var req uaf.AuthenticationRequest
	c.redeem(c.pushFor(d, ap.TransactionID), &req)
	answer := d.authResponse(t, req, 1, "")

	if err := ch.cmd.Process.Signal(syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	if l := <-ch.lines; l != "limited" {
		t.Fatalf("child: %q %s", l, ch.errors())
	}
	// Enrol until a write fails: the file may have room for a few.
	var refused string
	var acked []string
	for i := 0; refused == "" && i < 500; i++ {
		name := fmt.Sprintf("full-%d", i)
		code, hdr, body := rawPost(t, c.url+cloudapi.PathEnroll, mustJSON(cloudapi.EnrollRequest{Username: name}))
		switch code {
		case http.StatusCreated:
			acked = append(acked, name)
		case http.StatusServiceUnavailable:
			if hdr.Get("Retry-After") == "" || !strings.Contains(body, "nothing was changed") {
				t.Fatalf("a failed write answered %d Retry-After=%q %s", code, hdr.Get("Retry-After"), body)
			}
			refused = name
		default:
			t.Fatalf("enrol %s: %d %s", name, code, body)
		}
	}
	if refused == "" {
		t.Fatal("no write failed under the file size limit")
	}
	t.Logf("%d enrolments saved before a write failed", len(acked))
	// The child's stderr reaches us through a pipe, after its answer.
	if !ch.logged("store unavailable", 30*time.Second) {
		t.Fatalf("the emulator logged no store failure: %s", ch.errors())
	}
	if code := c.do("GET", cloudapi.PathUsers+"?username="+refused, backendAuth, nil, nil); code != 404 {
		t.Fatalf("the refused enrolment's user is visible: %d", code)
	}
	// The approval's answer cannot be saved either: refused, counter unused.
	code, sb := c.postUAF(deviceapi.PathAuthentication, answer)
	if code != http.StatusServiceUnavailable || sb.StatusCode != deviceapi.StatusInternal || !strings.Contains(sb.Description, "nothing was changed") {
		t.Fatalf("authentication under the limit: %d %+v", code, sb)
	}
	if s := c.status(ap.StatusToken); s != cloudapi.StatusPending {
		t.Fatalf("the approval whose answer failed reads %s", s)
	}
	ch.kill(t)

	// The same address: the phone's answer names the cloud it was made for.
	ch = startChild(t, db, strings.TrimPrefix(c.url, "http://"))
	c = &cloud{t: t, url: ch.url}
	for _, name := range append(acked, "alice") {
		if code := c.do("GET", cloudapi.PathUsers+"?username="+name, backendAuth, nil, nil); code != 200 {
			t.Fatalf("%s, acknowledged before the failure, is gone: %d", name, code)
		}
	}
	if code := c.do("GET", cloudapi.PathUsers+"?username="+refused, backendAuth, nil, nil); code != 404 {
		t.Fatalf("the refused enrolment's user appeared after the restart: %d", code)
	}
	// Counter 1 was never used: the same answer goes through now.
	if code, sb := c.postUAF(deviceapi.PathAuthentication, answer); code != 200 {
		t.Fatalf("authentication after the restart: %d %+v", code, sb)
	}
	if s := c.status(ap.StatusToken); s != cloudapi.StatusSucceeded {
		t.Fatalf("approval after the restart: %s", s)
	}
}

// rawPost posts JSON with the access key and returns the whole answer.
func rawPost(t *testing.T, url string, body []byte) (int, http.Header, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", url, strings.NewReader(string(body)))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", backendAuth["Authorization"])
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

// pushFor returns the dispatch payload of d's push message for a
// transaction.
func (c *cloud) pushFor(d *device, txID string) dispatch.Payload {
	c.t.Helper()
	for _, m := range c.inbox(d) {
		if m.TransactionID == txID {
			p, err := dispatch.Decode([]byte(m.Payload))
			if err != nil {
				c.t.Fatal(err)
			}
			return p
		}
	}
	c.t.Fatalf("no push message for transaction %s", txID)
	return dispatch.Payload{}
}

// answer approves transaction txID as d, with a sign counter.
func (c *cloud) answer(d *device, txID string, counter uint32) (int, deviceapi.StatusBody) {
	c.t.Helper()
	var req uaf.AuthenticationRequest
	c.redeem(c.pushFor(d, txID), &req)
	return c.postUAF(deviceapi.PathAuthentication, d.authResponse(c.t, req, counter, ""))
}
