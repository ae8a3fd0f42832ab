package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"image/png"
	"io"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/authphone/authphone/sdk/adminapi"
	"github.com/rogpeppe/go-internal/testscript"
)

func TestMain(m *testing.M) {
	os.Exit(testscript.RunMain(m, map[string]func() int{
		"authphone": func() int {
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return run(ctx, os.Args[1:], newIO())
		},
	}))
}

// TestScripts runs the QA recipes in testdata/script against the real
// binary and a real emulator on 127.0.0.1.
func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir: filepath.Join("..", "..", "testdata", "script"),
		Setup: func(env *testscript.Env) error {
			env.Setenv("HOME", env.WorkDir)
			env.Setenv("XDG_CONFIG_HOME", filepath.Join(env.WorkDir, ".config"))
			// go-keyring's MockInit does not cross exec lines: scripts use the
			// age-encrypted file keystore under $WORK.
			env.Setenv("AUTHPHONE_KEYSTORE", "file")
			env.Setenv("AUTHPHONE_KEYSTORE_PASSPHRASE", "testscript passphrase")
			// The private Secret Service that `make test` starts, for the
			// OS-keyring recipe.
			for _, k := range []string{"DBUS_SESSION_BUS_ADDRESS", "AUTHPHONE_TEST_KEYRING"} {
				if v := os.Getenv(k); v != "" {
					env.Setenv(k, v)
				}
			}
			return nil
		},
		Condition: func(cond string) (bool, error) {
			if cond == "keyring" {
				return os.Getenv("AUTHPHONE_TEST_KEYRING") == "1", nil
			}
			return false, fmt.Errorf("unknown condition %q", cond)
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"waitready": cmdWaitReady,
			"jsonget":   cmdJSONGet,
			"qrpng":     cmdQRPNG,
			"waitfile":  cmdWaitFile,
			"wholepng":  cmdWholePNG,
			"waitpolls": cmdWaitPolls,
			"exits":     cmdExits,
			"blackhole": cmdBlackhole,
			"otherthan": cmdOtherThan,
			"freeaddr":  cmdFreeAddr,
			"httpget":   cmdHTTPGet,
		},
	})
}

// waitready FILE: wait for an emulator's --ready-file and export
// AUTHPHONE_CLOUD, AUTHPHONE_CLOUD_HOSTPORT and AUTHPHONE_ACCESS_KEY from it.
func cmdWaitReady(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 1 {
		ts.Fatalf("usage: waitready FILE")
	}
	path := ts.MkAbs(args[0])
	deadline := time.Now().Add(90 * time.Second)
	for {
		b, err := os.ReadFile(path)
		if err == nil {
			var r struct{ URL, AccessKey string }
			ts.Check(json.Unmarshal(b, &r))
			ts.Setenv("AUTHPHONE_CLOUD", r.URL)
			ts.Setenv("AUTHPHONE_CLOUD_HOSTPORT", strings.TrimPrefix(r.URL, "http://"))
			ts.Setenv("AUTHPHONE_ACCESS_KEY", r.AccessKey)
			return
		}
		if time.Now().After(deadline) {
			ts.Fatalf("emulator did not write %s within 90s", args[0])
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// lookup follows a dotted path through decoded JSON.
func lookup(v any, path string) (any, bool) {
	for _, k := range strings.Split(path, ".") {
		if list, ok := v.([]any); ok { // a list: k is an index
			i, err := strconv.Atoi(k)
			if err != nil || i < 0 || i >= len(list) {
				return nil, false
			}
			v = list[i]
			continue
		}
		m, ok := v.(map[string]any)
		if !ok {
			return nil, false
		}
		if v, ok = m[k]; !ok {
			return nil, false
		}
	}
	return v, true
}

// jsonget FILE PATH VAR: set VAR to the string at PATH (a.b.c) in the JSON
// document FILE (the last line that is a JSON object, for --json output).
func cmdJSONGet(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 3 {
		ts.Fatalf("usage: jsonget FILE PATH VAR")
	}
	v := lastJSON(ts, args[0])
	got, ok := lookup(v, args[1])
	if !ok {
		ts.Fatalf("%s has no %s", args[0], args[1])
	}
	s, ok := got.(string)
	if !ok {
		b, _ := json.Marshal(got)
		s = string(b)
	}
	ts.Setenv(args[2], s)
}

func lastJSON(ts *testscript.TestScript, file string) any {
	lines := strings.Split(strings.TrimSpace(ts.ReadFile(file)), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		var v any
		if json.Unmarshal([]byte(lines[i]), &v) == nil {
			return v
		}
	}
	ts.Fatalf("%s holds no JSON document", file)
	return nil
}

// qrpng FILE PATH OUT: write the PNG of the data: URI at PATH in FILE to OUT.
func cmdQRPNG(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 3 {
		ts.Fatalf("usage: qrpng FILE PATH OUT")
	}
	got, ok := lookup(lastJSON(ts, args[0]), args[1])
	s, _ := got.(string)
	if !ok || !strings.HasPrefix(s, "data:image/png;base64,") {
		ts.Fatalf("%s: %s is not a PNG data: URI", args[0], args[1])
	}
	b, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(s, "data:image/png;base64,"))
	ts.Check(err)
	ts.Check(os.WriteFile(ts.MkAbs(args[2]), b, 0o644))
}

// waitfile FILE: wait up to 20 s for a background command to write FILE.
func cmdWaitFile(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 1 {
		ts.Fatalf("usage: waitfile FILE")
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		if fi, err := os.Stat(ts.MkAbs(args[0])); err == nil && fi.Size() > 0 {
			return
		}
		if time.Now().After(deadline) {
			ts.Fatalf("%s did not appear within 20s", args[0])
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// wholepng FILE: watch for FILE as closely as the machine allows (up to
// 20 s) and check that the first time it is there it is a whole PNG image:
// a writer that creates the file and then fills it (not atomic) is caught
// reading it empty or half-written.
func cmdWholePNG(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 1 {
		ts.Fatalf("usage: wholepng FILE")
	}
	path := ts.MkAbs(args[0])
	deadline := time.Now().Add(20 * time.Second)
	for {
		b, err := os.ReadFile(path)
		if err == nil {
			if _, err := png.Decode(bytes.NewReader(b)); err != nil {
				ts.Fatalf("%s was there before it was whole (%d bytes): %v", args[0], len(b), err)
			}
			return
		}
		if time.Now().After(deadline) {
			ts.Fatalf("%s did not appear within 20s", args[0])
		}
		runtime.Gosched()
	}
}

// waitpolls N: wait up to 20 s until the emulator at $AUTHPHONE_CLOUD holds
// N long-polls (its admin state's longPolls), so the next line acts on a
// request that is surely waiting, however slow the machine.
func cmdWaitPolls(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 1 {
		ts.Fatalf("usage: waitpolls N")
	}
	want, err := strconv.Atoi(args[0])
	ts.Check(err)
	deadline := time.Now().Add(20 * time.Second)
	for {
		req, err := http.NewRequest("GET", ts.Getenv("AUTHPHONE_CLOUD")+adminapi.PathState, nil)
		ts.Check(err)
		req.Header.Set("Authorization", "Bearer "+ts.Getenv("AUTHPHONE_ACCESS_KEY"))
		var st struct{ LongPolls int }
		if resp, err := http.DefaultClient.Do(req); err == nil {
			_ = json.NewDecoder(resp.Body).Decode(&st)
			resp.Body.Close()
		}
		if st.LongPolls >= want {
			return
		}
		if time.Now().After(deadline) {
			ts.Fatalf("the emulator holds %d long-polls after 20s, want %d", st.LongPolls, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// exits CODE COMMAND [ARGS...]: run a command and check its exact exit code
// (testscript's ! only says "not zero"); its stdout and stderr can be
// checked after.
func cmdExits(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 {
		ts.Fatalf("usage: exits CODE COMMAND [ARGS...]")
	}
	want, err := strconv.Atoi(args[0])
	ts.Check(err)
	start := time.Now()
	err = ts.Exec(args[1], args[2:]...)
	got := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		got = ee.ExitCode()
	} else if err != nil {
		ts.Fatalf("%s: %v", args[1], err)
	}
	if got != want {
		ts.Fatalf("%s exited %d, want %d", strings.Join(args[1:], " "), got, want)
	}
	// Generous: a loaded 2-core machine running the race detector can take
	// tens of seconds for what answers at once; a hang waits for minutes.
	if d := time.Since(start); d > 120*time.Second {
		ts.Fatalf("%s took %s: it should answer at once", strings.Join(args[1:], " "), d)
	}
}

// blackhole VAR: listen on a loopback port that accepts connections and
// never answers, and set VAR to its URL (a cloud that hangs).
func cmdBlackhole(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 1 {
		ts.Fatalf("usage: blackhole VAR")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	ts.Check(err)
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c) // held open, never answered
		}
	}()
	ts.Defer(func() { ln.Close() })
	ts.Setenv(args[0], "http://"+ln.Addr().String())
}

// freeaddr VAR: set VAR to a free 127.0.0.1:PORT below the kernel's
// ephemeral range (32768 and up on Linux), for a script that stops its
// emulator and starts another on the same address: a port picked with :0
// was freed by the first and could be taken by any other test's :0 before
// the second binds it; a port no :0 is given cannot.
func cmdFreeAddr(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 1 {
		ts.Fatalf("usage: freeaddr VAR")
	}
	for range 100 {
		addr := "127.0.0.1:" + strconv.Itoa(20000+mrand.IntN(12000))
		if l, err := net.Listen("tcp", addr); err == nil {
			ts.Check(l.Close())
			ts.Setenv(args[0], addr)
			return
		}
	}
	ts.Fatalf("no free port in 20000-31999 after 100 tries")
}

// otherthan LIST N VAR: set VAR to the first number of the JSON list LIST
// that is not N (a wrong but offered choice, for number matching).
func cmdOtherThan(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 3 {
		ts.Fatalf("usage: otherthan LIST N VAR")
	}
	var list []int
	ts.Check(json.Unmarshal([]byte(args[0]), &list))
	for _, n := range list {
		if strconv.Itoa(n) != args[1] {
			ts.Setenv(args[2], strconv.Itoa(n))
			return
		}
	}
	ts.Fatalf("%s has no number other than %s", args[0], args[1])
}

// httpget URL: GET the URL and print "Content-Type: …" and the body on
// stdout; fails unless the answer is 200.
func cmdHTTPGet(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 1 {
		ts.Fatalf("usage: httpget URL")
	}
	resp, err := http.Get(args[0])
	ts.Check(err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	ts.Check(err)
	fmt.Fprintf(ts.Stdout(), "Content-Type: %s\n%s", resp.Header.Get("Content-Type"), b)
	if (resp.StatusCode == http.StatusOK) == neg {
		ts.Fatalf("GET %s: %s", args[0], resp.Status)
	}
}
