package emulator_test

import (
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/authphone/authphone/emulator"
	"github.com/authphone/authphone/sdk/adminapi"
)

// consoleSignIn posts the access key to the console's sign-in form and
// returns the session cookie it sets.
func (c *cloud) consoleSignIn(key string) *http.Cookie {
	c.t.Helper()
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.PostForm(c.url+"/console/login", url.Values{"accessKey": {key}})
	if err != nil {
		c.t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		c.t.Fatalf("sign-in: %d", resp.StatusCode)
	}
	for _, ck := range resp.Cookies() {
		if ck.Name == "authphone_console" {
			return ck
		}
	}
	c.t.Fatal("sign-in set no session cookie")
	return nil
}

// withCookie sends GET path with the cookie and returns the status and body.
func (c *cloud) withCookie(path string, ck *http.Cookie) (int, string) {
	c.t.Helper()
	req, _ := http.NewRequest("GET", c.url+path, nil)
	req.AddCookie(ck)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestConsoleSessionExpires: a console sign-in lasts 12 hours on the
// emulator's clock. The cookie says so (Max-Age), and once the clock has
// moved past it the server no longer takes the cookie, whatever the
// browser keeps: the console shows the sign-in form again with a line
// saying why, and the admin API answers 401.
func TestConsoleSessionExpires(t *testing.T) {
	c := newCloud(t)
	ck := c.consoleSignIn("test-key")
	if ck.MaxAge != int(emulator.ConsoleSessionTTL/time.Second) || emulator.ConsoleSessionTTL != 12*time.Hour {
		t.Fatalf("cookie Max-Age %d, want 12 h (%d s)", ck.MaxAge, int(emulator.ConsoleSessionTTL/time.Second))
	}
	if !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode {
		t.Fatalf("cookie %+v: want HttpOnly, SameSite=Strict", ck)
	}
	signedIn := func(when string) {
		t.Helper()
		if code, body := c.withCookie("/console", ck); code != 200 || !strings.Contains(body, `id="logout"`) {
			t.Fatalf("%s: the console is not shown (%d)", when, code)
		}
		if code, _ := c.withCookie(adminapi.PathEvents, ck); code != 200 {
			t.Fatalf("%s: admin API with the cookie: %d", when, code)
		}
	}
	signedIn("just signed in")
	if _, err := c.srv.AdvanceClock(emulator.ConsoleSessionTTL - time.Minute); err != nil {
		t.Fatal(err)
	}
	signedIn("a minute before the end")

	if _, err := c.srv.AdvanceClock(time.Minute); err != nil {
		t.Fatal(err)
	}
	code, body := c.withCookie("/console", ck)
	if code != 200 || strings.Contains(body, `id="logout"`) || !strings.Contains(body, `id="signin"`) || !strings.Contains(body, "session expired") {
		t.Fatalf("after 12 h the console must ask to sign in again, saying why; got %d %s", code, body)
	}
	code, body = c.withCookie(adminapi.PathEvents, ck)
	if code != 401 || !strings.Contains(body, "sign in again") {
		t.Fatalf("admin API with an expired cookie: %d %s", code, body)
	}
	// A forged expiry is not taken: the HMAC covers it.
	forged := *ck
	parts := strings.SplitN(ck.Value, ".", 3)
	forged.Value = parts[0] + "." + "9999999999" + "." + parts[2]
	if code, _ := c.withCookie(adminapi.PathEvents, &forged); code != 401 {
		t.Fatalf("a cookie with a forged expiry: %d", code)
	}
	// Signing in again gives a fresh 12 hours.
	ck = c.consoleSignIn("test-key")
	signedIn("signed in again")
}
