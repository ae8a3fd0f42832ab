package main

import (
	"context"
	"encoding/json"
	"regexp"
	"strings"
	"testing"

	"github.com/authphone/authphone/emulator"
)

var camelKey = regexp.MustCompile(`^[a-z][a-zA-Z0-9]*$`)

// checkKeys reports every object key under v that is not lowerCamelCase.
func checkKeys(v any, path string, bad *[]string) {
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			if !camelKey.MatchString(k) {
				*bad = append(*bad, path+"."+k)
			}
			if k != "details" { // a flow's details are the cloud's own words
				checkKeys(e, path+"."+k, bad)
			}
		}
	case []any:
		for _, e := range v {
			checkKeys(e, path+"[]", bad)
		}
	}
}

// checkJSON applies the --json contract to one run: every stdout line is a
// JSON document; all but the last are progress lines (FlowUpdates, or what
// the command prints while it waits); the last is the one result, or, when
// the command failed before it had one, {"error":{"code","message"}} with
// the exit code. It returns the result.
func checkJSON(t *testing.T, args []string, code int, stdout string, camel bool) map[string]any {
	t.Helper()
	name := strings.Join(args, " ")
	lines := strings.Split(strings.TrimSuffix(stdout, "\n"), "\n")
	if stdout == "" {
		t.Errorf("%s: nothing on stdout", name)
		return nil
	}
	var docs []any
	for _, l := range lines {
		var v any
		if err := json.Unmarshal([]byte(l), &v); err != nil {
			t.Errorf("%s: stdout line %q is not JSON", name, l)
			return nil
		}
		docs = append(docs, v)
	}
	for _, d := range docs[:len(docs)-1] {
		m, _ := d.(map[string]any)
		_, isUpdate := m["state"]
		_, isBinding := m["bindingCode"]
		if !isUpdate && !isBinding {
			t.Errorf("%s: more than one result document: %v", name, d)
		}
		if _, isErr := m["error"].(map[string]any); isErr {
			t.Errorf("%s: an error document before the last line", name)
		}
	}
	if camel {
		var bad []string
		for _, d := range docs {
			checkKeys(d, "", &bad)
		}
		if len(bad) > 0 {
			t.Errorf("%s: keys not in lowerCamelCase: %v", name, bad)
		}
	}
	last, _ := docs[len(docs)-1].(map[string]any)
	if e, ok := last["error"].(map[string]any); ok {
		if c, _ := e["code"].(float64); int(c) != code || code == 0 {
			t.Errorf("%s: error document code %v, exit %d", name, e["code"], code)
		}
		if m, _ := e["message"].(string); m == "" {
			t.Errorf("%s: error document without a message", name)
		}
		if len(e) != 2 {
			t.Errorf("%s: error document %v has other fields than code and message", name, e)
		}
	}
	return last
}

// TestJSONOutput: each command prints exactly one JSON document per result
// (FlowUpdate lines before it), errors in one shape, keys in one style.
func TestJSONOutput(t *testing.T) {
	emu, err := emulator.New()
	if err != nil {
		t.Fatal(err)
	}
	if err := emu.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = emu.Close(context.Background()) })
	cliEnv(t, emu)
	do := func(camel bool, want int, args ...string) map[string]any {
		t.Helper()
		args = append(args, "--json")
		code, out, stderr := runCLI(t, args...)
		if code != want {
			t.Errorf("%s: exit %d, want %d (%s)", strings.Join(args, " "), code, want, strings.TrimSpace(stderr))
		}
		return checkJSON(t, args, code, out, camel)
	}

	do(true, 0, "pending")
	do(true, 0, "accounts")
	do(true, 4, "approve", "--pin", "1234")
	do(true, 2, "backend", "aprove")
	do(true, 2, "pending", "--wait", "soon")
	do(true, 0, "version")
	do(true, 0, "backend", "clock")
	en := do(true, 0, "backend", "enroll", "alice")
	link, _ := en["enrollment"].(map[string]any)["appLinkUri"].(string)
	if r := do(true, 0, "scan", link, "--pin", "1234"); r["result"] != "enrolled" {
		t.Errorf("scan result %v", r)
	}
	do(true, 0, "accounts")
	ap := do(true, 0, "backend", "approve", "alice")
	st, _ := ap["statusToken"].(string)
	if r := do(true, 4, "backend", "status", st); r["status"] != "pending" {
		t.Errorf("status document %v", r)
	}
	do(true, 0, "pending")
	if r := do(true, 3, "approve", "--pin", "0000"); r["error"] == nil {
		t.Errorf("a wrong PIN ends in an error document, got %v", r)
	}
	do(true, 3, "backend", "status", st)
	do(true, 0, "backend", "approve", "alice", "--message", "Pay 5 EUR")
	if r := do(true, 0, "approve", "--pin", "1234"); r["result"] != "signed" {
		t.Errorf("approve result %v", r)
	}
	do(true, 0, "backend", "approve", "alice")
	if r := do(true, 0, "deny"); r["result"] != "declined" {
		t.Errorf("deny result %v", r)
	}
	do(true, 0, "trust", "list")
	do(true, 0, "getdata", "hello")
	do(true, 1, "getdata", "--file", "nosuch")
	do(true, 4, "--profile", "laptop", "login", "alice", "--wait", "1ms")
}
