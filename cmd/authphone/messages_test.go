package main

import (
	"bytes"
	"context"
	"image"
	"image/png"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/authphone/authphone/emulator"
	"github.com/spf13/cobra"
)

// runCLI runs the command line in this process and returns its exit code,
// stdout and stderr.
func runCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), args, &ioStreams{in: strings.NewReader(""), out: &out, err: &errb})
	return code, out.String(), errb.String()
}

// cliEnv points the command line at a fresh profile directory, the file
// keystore and (if emu is not nil) an emulator.
func cliEnv(t *testing.T, emu *emulator.Server) {
	dir := t.TempDir()
	t.Setenv("HOME", dir)
	t.Setenv("XDG_CONFIG_HOME", filepath.Join(dir, ".config"))
	t.Setenv("AUTHPHONE_KEYSTORE", "file")
	t.Setenv("AUTHPHONE_KEYSTORE_PASSPHRASE", "messages test passphrase")
	t.Setenv("AUTHPHONE_PIN", "")
	t.Setenv("AUTHPHONE_PROFILE", "")
	if emu != nil {
		t.Setenv("AUTHPHONE_CLOUD", emu.URL())
		t.Setenv("AUTHPHONE_ACCESS_KEY", emu.AccessKey())
	}
	t.Chdir(dir)
}

var (
	// what went wrong, then (after ": " or "; ") what to do
	messageShape = regexp.MustCompile(`^authphone: \S.*?[:;] \S.*$`)
	// Go or library internals a user cannot act on
	internals = regexp.MustCompile(`strconv\.|time: invalid|open [^ ]+: no such file|: EOF$|gozxing|exception|%!|\(s\)|\bnil\b`)
)

// checkMessage applies the rules of issue 8 to one error output: one line,
// "authphone: <what went wrong>: <what to do>", no part said twice, no
// internals, plurals right.
func checkMessage(t *testing.T, args []string, stderr string) {
	t.Helper()
	line := strings.TrimSuffix(stderr, "\n")
	if line == "" || strings.Contains(line, "\n") {
		t.Errorf("%s: want one line on stderr, got %q", strings.Join(args, " "), stderr)
		return
	}
	if !messageShape.MatchString(line) {
		t.Errorf("%s: %q does not say what to do (authphone: <what went wrong>: <what to do>)", strings.Join(args, " "), line)
	}
	if m := internals.FindString(line); m != "" {
		t.Errorf("%s: %q shows internals (%q)", strings.Join(args, " "), line, m)
	}
	seen := map[string]bool{}
	for _, part := range regexp.MustCompile(`[:;] `).Split(strings.TrimPrefix(line, "authphone: "), -1) {
		part = strings.TrimSpace(part)
		if seen[part] {
			t.Errorf("%s: %q says %q twice", strings.Join(args, " "), line, part)
		}
		seen[part] = true
	}
	if regexp.MustCompile(`\b1 (attempts|arguments|authenticators|seconds)\b`).MatchString(line) {
		t.Errorf("%s: %q: wrong plural", strings.Join(args, " "), line)
	}
}

// TestErrorMessages runs the mistakes a new user makes and checks each
// answer's exit code and message.
func TestErrorMessages(t *testing.T) {
	emu, err := emulator.New()
	if err != nil {
		t.Fatal(err)
	}
	if err := emu.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = emu.Close(context.Background()) })
	cliEnv(t, emu)

	// An enrolled phone, and files to get wrong.
	code, out, stderr := runCLI(t, "backend", "enroll", "alice", "--json")
	if code != 0 {
		t.Fatalf("enroll: %d %s", code, stderr)
	}
	link := regexp.MustCompile(`"appLinkUri":"([^"]+)"`).FindStringSubmatch(out)
	if link == nil {
		t.Fatalf("no app link in %s", out)
	}
	if code, _, stderr := runCLI(t, "scan", strings.ReplaceAll(link[1], `\u0026`, "&"), "--pin", "1234"); code != 0 {
		t.Fatalf("scan: %d %s", code, stderr)
	}
	if err := os.WriteFile("broken.png", []byte("\x89PNG\r\n\x1a\nnot really"), 0o644); err != nil {
		t.Fatal(err)
	}
	blank := image.NewGray(image.Rect(0, 0, 64, 64))
	for i := range blank.Pix {
		blank.Pix[i] = 0xff
	}
	var buf bytes.Buffer
	_ = png.Encode(&buf, blank)
	if err := os.WriteFile("blank.png", buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}

	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"approve", "--pin", "1234"}, 4, "no pending request: nothing is waiting"},
		{[]string{"deny"}, 4, "no pending request"},
		{[]string{"approve"}, 4, "no pending request: nothing is waiting"}, // no PIN either: nothing pending comes first
		{[]string{"approve", "--wait", "1s"}, 2, "a PIN is required"},      // found before waiting
		{[]string{"trust", "foo"}, 2, "its commands are list, qr, remove, scan; see 'authphone trust --help'"},
		{[]string{"backend", "users", "delete", "nobody"}, 1, "`authphone backend users` lists the users"},
		{[]string{"backend", "verify-token", "garbage"}, 1, "invalid access token: not a compact JWS: check it is an access_token"},
		{[]string{"pin", "change", "--old", "1234", "--new", "12"}, 1, "the PIN must be 4 to 64 characters: choose another --new"},
		{[]string{"upgrade", "--pin", "12"}, 1, "the PIN must be 4 to 64 characters: choose another --pin"},
		{[]string{"approve", "nosuch", "--pin", "1234"}, 4, "`authphone pending` lists"},
		{[]string{"approve", "--match", "Mallory", "--pin", "1234"}, 4, `whose message contains "Mallory"`},
		{[]string{"getdata", "--file", "nosuch.json"}, 1, "no such file nosuch.json: check --file"},
		{[]string{"scan", "missing.png", "--pin", "1234"}, 1, "no such file missing.png"},
		{[]string{"scan", "broken.png", "--pin", "1234"}, 1, "not a readable PNG or JPEG image: give"},
		{[]string{"scan", "blank.png", "--pin", "1234"}, 1, "no readable QR code in the image: give"},
		{[]string{"trust", "scan", "garbage", "--pin", "1234"}, 1, "not a pairing QR code"},
		{[]string{"pending", "--wait", "soon"}, 2, "not a duration"},
		{[]string{"backend", "approve", "alice", "--wait", "10"}, 2, "not a duration"},
		{[]string{"approve", "a", "b"}, 2, "takes at most 1 argument,"},
		{[]string{"pending", "extra"}, 2, "takes no arguments"},
		{[]string{"backend", "status"}, 2, "authphone: backend status needs a STATUS_TOKEN: see"},
		{[]string{"backend", "aprove"}, 2, `did you mean "approve"`},
		{[]string{"accounts", "remove", "nobody"}, 1, "no such account"},
		{[]string{"upgrade", "--pin", "1234"}, 1, "not headless"},
		{[]string{"--keystore", "bogus", "pending"}, 1, "choose auto, os, file or memory"},
		{[]string{"backend", "ping", "--cloud", "http://127.0.0.1:1"}, 1, "cannot reach the cloud at http://127.0.0.1:1"},
		{[]string{"backend", "approve", "nobody"}, 1, "no user named nobody"},
		{[]string{"backend", "clock", "--advance", "5s"}, 1, "--clock-control"},
		{[]string{"scan", "--bogus"}, 2, "unknown flag: --bogus"},
	} {
		code, _, stderr := runCLI(t, c.args...)
		if code != c.code {
			t.Errorf("%s: exit %d, want %d (%s)", strings.Join(c.args, " "), code, c.code, strings.TrimSpace(stderr))
		}
		if !strings.Contains(stderr, c.want) {
			t.Errorf("%s: %q does not say %q", strings.Join(c.args, " "), strings.TrimSpace(stderr), c.want)
		}
		checkMessage(t, c.args, stderr)
	}

	// A wrong PIN: the count is worded right down to the last attempt.
	var last string
	for range 4 {
		_, _, last = runCLI(t, "pin", "change", "--old", "0000", "--new", "5678")
	}
	if !strings.Contains(last, "wrong PIN: 1 attempt left before the account locks") {
		t.Errorf("fourth wrong PIN: %q", last)
	}
	checkMessage(t, []string{"pin", "change"}, last)
}

// TestHelpShowsNoSecrets: with the access key, the keystore passphrase and
// the PIN in the environment, no command's --help prints any of them.
func TestHelpShowsNoSecrets(t *testing.T) {
	cliEnv(t, nil)
	secrets := map[string]string{
		"AUTHPHONE_ACCESS_KEY":          "secret-access-key-4711",
		"AUTHPHONE_KEYSTORE_PASSPHRASE": "secret-passphrase-4712",
		"AUTHPHONE_PIN":                 "secret-pin-4713",
	}
	for k, v := range secrets {
		t.Setenv(k, v)
	}
	var paths [][]string
	var walk func(c *cobra.Command, path []string)
	walk = func(c *cobra.Command, path []string) {
		paths = append(paths, path)
		for _, s := range c.Commands() {
			walk(s, append(append([]string{}, path...), s.Name()))
		}
	}
	walk(newRoot(&app{io: newIO()}), nil)
	if len(paths) < 30 {
		t.Fatalf("walked only %d commands", len(paths))
	}
	for _, p := range paths {
		code, out, stderr := runCLI(t, append(p, "--help")...)
		if code != 0 {
			t.Errorf("%v --help: exit %d %s", p, code, stderr)
		}
		for k, v := range secrets {
			if strings.Contains(out+stderr, v) {
				t.Errorf("authphone %s --help prints %s", strings.Join(p, " "), k)
			}
		}
	}
	_, out, _ := runCLI(t, "backend", "--help")
	if !strings.Contains(out, "AUTHPHONE_ACCESS_KEY: (set)") {
		t.Errorf("backend --help does not say the access key is set:\n%s", out)
	}
}

// TestNotACloud: a server that is not an authphone cloud (a 404 without the
// API's error body) gets a line that says so and names --cloud, not
// "404 Not Found: ".
func TestNotACloud(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNotFound) }))
	t.Cleanup(srv.Close)
	cliEnv(t, nil)
	t.Setenv("AUTHPHONE_ACCESS_KEY", "some-key")
	args := []string{"backend", "ping", "--cloud", srv.URL}
	code, _, stderr := runCLI(t, args...)
	if code != 1 || !strings.Contains(stderr, srv.URL+" answered 404 Not Found without the API's error body: check --cloud") {
		t.Fatalf("exit %d: %q", code, stderr)
	}
	checkMessage(t, args, stderr)
}
