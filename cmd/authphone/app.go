package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/authphone/authphone/flows"
	"github.com/authphone/authphone/keystore"
	"github.com/authphone/authphone/sdk"
	"github.com/authphone/authphone/sdk/backend"
	"github.com/authphone/authphone/sdk/qr"
	"github.com/authphone/authphone/sdk/uaf"
	"github.com/spf13/cobra"
	"golang.org/x/term"
)

// ioStreams are the command's standard streams and what they are.
type ioStreams struct {
	in       io.Reader
	out, err io.Writer
	inTTY    bool
	outTTY   bool
	readPIN  func(prompt string) (string, error)
}

func newIO() *ioStreams {
	s := &ioStreams{in: os.Stdin, out: os.Stdout, err: os.Stderr,
		inTTY: term.IsTerminal(int(os.Stdin.Fd())), outTTY: term.IsTerminal(int(os.Stdout.Fd()))}
	s.readPIN = func(prompt string) (string, error) {
		fmt.Fprint(os.Stderr, prompt)
		b, err := term.ReadPassword(int(os.Stdin.Fd()))
		fmt.Fprintln(os.Stderr)
		return string(b), err
	}
	return s
}

// app holds the global flags and builds what commands need.
type app struct {
	io        *ioStreams
	profile   string
	cloud     string
	keystore  string
	json      bool
	verbose   bool
	accessKey string
	versions  []string
	facetID   string
	timeout   time.Duration
	faults    []string // --fault: the phone misbehaves (tests)
	// printed is set once a result document went to stdout with --json;
	// an error after it then gets no second document.
	printed bool
}

// defaultTimeout limits each call to the cloud (--timeout).
const defaultTimeout = 30 * time.Second

func envDuration(name string, def time.Duration) time.Duration {
	if d, err := time.ParseDuration(os.Getenv(name)); err == nil && d > 0 {
		return d
	}
	return def
}

// secretEnv names an environment variable that holds a secret, for --help:
// whether it is set, never its value.
func secretEnv(name string) string {
	if os.Getenv(name) != "" {
		return "env " + name + ": (set)"
	}
	return "env " + name
}

// accessKeyValue is --access-key, or AUTHPHONE_ACCESS_KEY.
func (a *app) accessKeyValue() string {
	if a.accessKey != "" {
		return a.accessKey
	}
	return os.Getenv("AUTHPHONE_ACCESS_KEY")
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func (a *app) verboseWriter() io.Writer {
	if a.verbose {
		return a.io.err
	}
	return nil
}

// phone opens the profile's phone with its keystore.
func (a *app) phone(ctx context.Context) (*sdk.Phone, error) {
	if err := uaf.CheckFacetID(a.facetID); err != nil {
		return nil, usageErrorf("--facet-id (or AUTHPHONE_FACET_ID): %v", err)
	}
	dir, err := sdk.ProfileDir(a.profile)
	if err != nil {
		return nil, err
	}
	ks, err := keystore.Open(ctx, keystore.Config{Kind: a.keystore, Profile: a.profile,
		FilePath: filepath.Join(dir, "keystore.age"), Passphrase: os.Getenv(keystore.PassphraseEnv)})
	if err != nil {
		return nil, err
	}
	opts := []sdk.Option{sdk.WithStateDir(dir), sdk.WithCloud(a.cloud), sdk.WithAllowedProtocolVersions(a.versions...),
		sdk.WithTimeout(a.timeout), sdk.WithFacetID(a.facetID)}
	if w := a.verboseWriter(); w != nil {
		opts = append(opts, sdk.WithVerbose(w))
	}
	if len(a.faults) > 0 {
		f, err := sdk.ParseFaults(a.faults...)
		if err != nil {
			return nil, usageErrorf("--fault: %v", err)
		}
		opts = append(opts, sdk.WithFaults(f))
	}
	return sdk.New(a.profile, ks, opts...)
}

func (a *app) backend() (*backend.Client, error) {
	key := a.accessKeyValue()
	if key == "" {
		return nil, usageErrorf("the backend commands need the cloud's access key: pass --access-key or set AUTHPHONE_ACCESS_KEY (the emulator prints it when it starts)")
	}
	opts := []backend.Option{backend.WithAccessKey(key), backend.WithTimeout(a.timeout)}
	if w := a.verboseWriter(); w != nil {
		opts = append(opts, backend.WithVerbose(w))
	}
	return backend.New(a.cloud, opts...), nil
}

// printJSON writes the command's result as one JSON document on a line.
func (a *app) printJSON(v any) {
	a.printed = true
	a.printLine(v)
}

// printLine writes one JSON line that is not the result (a FlowUpdate, a
// binding code while a command waits).
func (a *app) printLine(v any) {
	b, _ := json.Marshal(v)
	fmt.Fprintln(a.io.out, string(b))
}

func (a *app) printf(format string, args ...any) { fmt.Fprintf(a.io.out, format, args...) }

// pin returns the PIN from the flag, AUTHPHONE_PIN, or a hidden prompt.
func (a *app) pin(flag, prompt string) (string, error) {
	if flag != "" {
		return flag, nil
	}
	return a.pinFromEnv(prompt)
}

func (a *app) pinFromEnv(prompt string) (string, error) {
	if v := os.Getenv("AUTHPHONE_PIN"); v != "" {
		return v, nil
	}
	if a.io.inTTY && a.io.readPIN != nil {
		return a.io.readPIN(prompt)
	}
	return "", fmt.Errorf("%w: pass --pin or set AUTHPHONE_PIN (there is no terminal to ask)", sdk.ErrPINRequired)
}

// needPIN fails early, before any token is used, when a flow will ask for a
// PIN that nothing can supply.
func (a *app) needPIN(flag ...string) error {
	if (len(flag) > 0 && flag[0] != "") || os.Getenv("AUTHPHONE_PIN") != "" || (a.io.inTTY && a.io.readPIN != nil) {
		return nil
	}
	return fmt.Errorf("%w: pass --pin or set AUTHPHONE_PIN (there is no terminal to ask); --biometric for a biometric account", sdk.ErrPINRequired)
}

// updateJSON is one FlowUpdate as --json prints it.
type updateJSON struct {
	Type           flows.Type         `json:"type"`
	State          flows.State        `json:"state"`
	Interaction    *flows.Interaction `json:"interaction,omitempty"`
	PreviousResult string             `json:"previousResult,omitempty"`
	Account        *flows.Account     `json:"account,omitempty"`
	Error          string             `json:"error,omitempty"`
}

func (a *app) printUpdate(u flows.Update) {
	if a.json {
		j := updateJSON{Type: u.Type, State: u.State, Interaction: u.CurrentInteraction, Account: u.Account}
		if u.PreviousResult != 0 {
			j.PreviousResult = u.PreviousResult.String()
		}
		if u.Err != nil {
			j.Error = u.Err.Error()
		}
		a.printLine(j)
		return
	}
	line := fmt.Sprintf("%-17s %s", u.Type, u.State)
	if in := u.CurrentInteraction; in != nil {
		line += " " + in.Type.String()
		if in.TransactionText != "" {
			line += fmt.Sprintf("  %q", in.TransactionText)
		}
		keys := make([]string, 0, len(in.Details))
		for k := range in.Details {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			line += fmt.Sprintf("  %s=%q", k, in.Details[k])
		}
		if len(in.Numbers) > 0 {
			line += "  numbers=" + flows.JoinNumbers(in.Numbers)
		}
		if u.PreviousResult == flows.PINFail {
			line += fmt.Sprintf("  (wrong PIN, %s left)", plural(in.RetriesLeft, "attempt"))
		}
	}
	if u.Err != nil {
		line += "  " + u.Err.Error()
	}
	a.printf("%s\n", line)
}

// answers is what the command line says for the user.
type answers struct {
	pins      []string // to verify, in turn: each wrong one counts toward the lock-out
	newPIN    string   // to set
	deny      bool
	biometric bool
	number    int // picked at a number-matching CONFIRM
}

// answerer is the CLI's user: it confirms (or declines with deny), answers
// a biometric prompt when --biometric is given, and takes PINs from the
// flag, the environment or the terminal. After a wrong PIN it asks the
// terminal again, or gives up when there is none.
func (a *app) answerer(ans answers) flows.Answerer {
	tried := 0 // PINs of ans.pins used so far
	return func(f *flows.Flow, u flows.Update) {
		in := u.CurrentInteraction
		if in.Details["method"] == flows.MethodBiometric {
			if ans.biometric {
				_ = f.Biometric()
			} else {
				f.CancelWith(fmt.Errorf("%w: pass --biometric", flows.ErrBiometricRequired))
			}
			return
		}
		switch in.Type {
		case flows.Confirm, flows.ConfirmTransaction:
			if !ans.deny && len(in.Numbers) > 0 {
				if ans.number == 0 {
					f.CancelWith(fmt.Errorf("%w: pass --number N (one of %s)", flows.ErrNumberRequired, flows.JoinNumbers(in.Numbers)))
				} else if err := f.ConfirmNumber(ans.number); err != nil {
					f.CancelWith(err)
				}
				return
			}
			_ = f.Confirm(!ans.deny)
		case flows.VerifySecondFactor:
			if len(ans.pins) > 0 {
				if tried == len(ans.pins) {
					f.CancelWith(flows.ErrWrongPIN) // no --pin left to try
					return
				}
				tried++
				_ = f.InputSecondFactor(ans.pins[tried-1])
				return
			}
			if u.PreviousResult == flows.PINFail && (os.Getenv("AUTHPHONE_PIN") != "" || !a.io.inTTY) {
				f.CancelWith(flows.ErrWrongPIN)
				return
			}
			pin, err := a.pinFromEnv(fmt.Sprintf("PIN (%s left): ", plural(in.RetriesLeft, "attempt")))
			if err != nil {
				f.CancelWith(err)
				return
			}
			_ = f.InputSecondFactor(pin)
		case flows.SetSecondFactor:
			pin, err := a.pin(ans.newPIN, "Choose a PIN: ")
			if err != nil {
				f.CancelWith(err)
				return
			}
			_ = f.InputSecondFactor(pin)
		}
	}
}

// runFlow drives a flow to its end, printing its updates.
func (a *app) runFlow(f *flows.Flow, ans flows.Answerer) flows.Update {
	return flows.Drive(f, ans, a.printUpdate)
}

// exactArgs and friends make argument errors usage errors (exit 2).
func maxArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) > n && n == 0 {
			return usageErrorf("%s takes no arguments, got %d: see '%s --help'", verbPath(cmd), len(args), cmd.CommandPath())
		}
		if len(args) > n {
			return usageErrorf("%s takes at most %s, got %d: see '%s --help'", verbPath(cmd), plural(n, "argument"), len(args), cmd.CommandPath())
		}
		return nil
	}
}

func exactArgs(n int, names string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return usageErrorf("%s needs %s: see '%s --help'", verbPath(cmd), names, cmd.CommandPath())
		}
		return nil
	}
}

// verbPath is the command's path without the program's name, for messages
// that already start with "authphone: ".
func verbPath(cmd *cobra.Command) string {
	if !cmd.HasParent() {
		return cmd.Name()
	}
	return strings.TrimPrefix(cmd.CommandPath(), cmd.Root().Name()+" ")
}

// readInput reads a command's input argument: "-" or nothing (with stdin
// not a terminal) is stdin, an existing file is its bytes, anything else is
// the text itself.
func (a *app) readInput(args []string, what string) ([]byte, error) {
	if len(args) == 0 || args[0] == "-" {
		if len(args) == 0 && a.io.inTTY {
			return nil, usageErrorf("give %s as an argument, or pipe it on stdin", what)
		}
		b, err := io.ReadAll(io.LimitReader(a.io.in, 16<<20))
		if err != nil {
			return nil, fmt.Errorf("read stdin: %w", err)
		}
		return b, nil
	}
	arg := args[0]
	if !strings.ContainsAny(arg, "\n{") && len(arg) < 4096 {
		fi, err := os.Stat(arg)
		switch {
		case err == nil && fi.Mode().IsRegular():
			b, err := os.ReadFile(arg)
			if err != nil {
				return nil, fmt.Errorf("cannot read %s (%v): check its permissions, or give %s as text", arg, errors.Unwrap(err), what)
			}
			if isImageName(arg) && !qr.IsImage(b) {
				return nil, fmt.Errorf("%s is not a PNG or JPEG image: give the image of the QR code, or its text", arg)
			}
			return b, nil
		case err == nil:
			return nil, fmt.Errorf("%s is not a file: give %s", arg, what)
		case looksLikePath(arg):
			return nil, fmt.Errorf("no such file %s: check the path, or give %s as text", arg, what)
		}
	}
	return []byte(arg), nil
}

// looksLikePath tells a file name from payload text: base64url has no dot
// or slash, app links and data: URIs are recognised by their scheme.
func looksLikePath(s string) bool {
	return !strings.Contains(s, "://") && !strings.HasPrefix(s, "data:") && strings.ContainsAny(s, "./\\")
}

func isImageName(s string) bool {
	switch strings.ToLower(filepath.Ext(s)) {
	case ".png", ".jpg", ".jpeg":
		return true
	}
	return false
}

var errSilent = errors.New("silent")

// faultFlag adds --fault to a command that answers an authentication.
func (a *app) faultFlag(cmd *cobra.Command) {
	cmd.Flags().StringArrayVar(&a.faults, "fault", nil, "for tests: answer like a broken or cloned authenticator, "+sdk.FaultNames+
		" (repeat or comma-separate; the cloud must refuse the first three, skew beyond 60s; drop-answer and slow never reach it in time)")
}

// plural is "1 attempt", "0 arguments", "3 attempts".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// readFile reads a file a flag names, saying which flag when it is missing.
func readFile(path, flag string) ([]byte, error) {
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("no such file %s: check %s", path, flag)
	case err != nil:
		return nil, fmt.Errorf("cannot read %s (%v): check %s", path, errors.Unwrap(err), flag)
	}
	return b, nil
}
