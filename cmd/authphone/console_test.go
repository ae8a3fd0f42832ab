package main

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/authphone/authphone/emulator"
	"github.com/chromedp/chromedp"
)

// chromium finds a headless-capable Chromium, or skips the test.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skip("no Chromium on PATH (Debian: apt-get install chromium; .ci/run installs it): the console's browser test needs one")
	return ""
}

// TestConsoleInChromium drives the console in a real headless Chromium:
// sign in with the access key (an HttpOnly cookie the page's script cannot
// read), see a user enrolled by the CLI appear, watch an approval the CLI
// starts and answers go from pending to succeeded without a reload, and
// check that markup in a transaction text and in a refused request's path
// is shown as text, never run; then use the expire, remove and reset
// buttons. A screenshot (a pending approval with its QR code) is saved as
// a test artefact: go test -artifacts keeps it.
func TestConsoleInChromium(t *testing.T) {
	browser := chromium(t)
	emu, err := emulator.New(emulator.WithAccessKey("console-test-key"))
	if err != nil {
		t.Fatal(err)
	}
	if err := emu.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = emu.Close(context.Background()) })
	cliEnv(t, emu)
	t.Setenv("AUTHPHONE_PIN", "1234")

	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(browser), chromedp.NoSandbox,
		chromedp.WindowSize(1280, 1600), chromedp.Flag("disable-dev-shm-usage", true))
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancel()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	if err := chromedp.Do(ctx); err != nil { // starts the browser, on a context without a deadline
		t.Fatalf("start %s: %v", browser, err)
	}
	ctx, cancel = context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	do := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, steps...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	get := func(what string, a chromedp.Action[string]) string {
		t.Helper()
		v, err := chromedp.Run(ctx, a)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		return v
	}
	eval := func(expr string) []byte {
		t.Helper()
		v, err := chromedp.Run(ctx, chromedp.Evaluate[[]byte](expr, chromedp.EvalAwaitPromise))
		if err != nil {
			t.Fatalf("%s: %v", expr, err)
		}
		return v
	}

	// click presses the element at xpath from the page's own script, again
	// until it is there: the console re-renders its tables on every live
	// update, so a node found by one DevTools call can be gone by the next.
	click := func(what, xpath string) {
		t.Helper()
		expr := `(() => { const n = document.evaluate(` + strconv.Quote(xpath) +
			`, document, null, XPathResult.FIRST_ORDERED_NODE_TYPE, null).singleNodeValue;` +
			` if (!n) return false; n.click(); return true; })()`
		for {
			v, err := chromedp.Run(ctx, chromedp.Evaluate[bool](expr))
			if err != nil {
				t.Fatalf("%s: %v", what, err)
			}
			if v {
				return
			}
			select {
			case <-ctx.Done():
				t.Fatalf("%s: %s never appeared: %v", what, xpath, ctx.Err())
			case <-time.After(20 * time.Millisecond):
			}
		}
	}

	// A wrong key is refused on the page; the right one signs in.
	do("wrong key", chromedp.Navigate(emu.URL()+"/console"), chromedp.WaitVisible(chromedp.ID("accessKey")),
		chromedp.SendKeys(chromedp.ID("accessKey"), "not-the-key"), chromedp.Submit(chromedp.ID("login")),
		chromedp.WaitVisible(chromedp.ID("login-error")))
	do("sign in", chromedp.SendKeys(chromedp.ID("accessKey"), "console-test-key"), chromedp.Submit(chromedp.ID("login")),
		chromedp.WaitVisible(chromedp.ID("users")), chromedp.WaitVisible(`//span[@id="live" and text()="live"]`))
	if c := string(eval(`window.notReloaded = 42; document.cookie`)); c != `""` {
		t.Fatalf("the page's script can read the session cookie: %s", c)
	}

	// A user enrolled by the CLI appears.
	code, out, errOut := runCLI(t, "backend", "enroll", "alice", "--json")
	if code != 0 {
		t.Fatalf("enroll: %d %s", code, errOut)
	}
	var enrol struct {
		Enrollment struct{ AppLinkURI string } `json:"enrollment"`
	}
	if err := json.Unmarshal([]byte(out), &enrol); err != nil {
		t.Fatal(err)
	}
	do("pending enrolment with its QR code", chromedp.WaitVisible(chromedp.CSS(`#pending .card img.qr`)))
	if code, _, errOut := runCLI(t, "--profile", "p", "scan", enrol.Enrollment.AppLinkURI); code != 0 {
		t.Fatalf("scan: %d %s", code, errOut)
	}
	do("user appears", chromedp.WaitVisible(`//table[@id="users"]//td[@class="username" and text()="alice"]`),
		chromedp.WaitVisible(`//table[@id="users"]//li[@data-authenticator-id]`))

	// An approval with markup in its text: pending, then succeeded.
	text := `<b>Pay</b> 10 EUR`
	code, out, errOut = runCLI(t, "backend", "approve", "alice", "--message", text, "--json")
	if code != 0 {
		t.Fatalf("approve: %d %s", code, errOut)
	}
	var ap struct{ TransactionID string }
	if err := json.Unmarshal([]byte(out), &ap); err != nil {
		t.Fatal(err)
	}
	row := `//table[@id="operations"]//tr[@data-op-id="` + ap.TransactionID + `"]`
	do("approval pending", chromedp.WaitVisible(row+`/td[contains(@class,"status") and text()="pending"]`))
	if shown := get("transaction text", chromedp.Text(row+`/td[@class="message"]`)); shown != text {
		t.Fatalf("the transaction text shows as %q, want the literal %q", shown, text)
	}
	// A request whose path is markup is refused and logged: shown as text.
	evil := `/<img src=x onerror="window.pwned=1">`
	resp, err := http.Get(emu.URL() + strings.ReplaceAll(evil, " ", "%20"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	do("refusal in the log", chromedp.WaitVisible(`//table[@id="events"]//td[@class="type" and text()="request.refused"]`))

	if code, _, errOut := runCLI(t, "--profile", "p", "approve"); code != 0 {
		t.Fatalf("phone approve: %d %s", code, errOut)
	}
	do("approval succeeded without a reload", chromedp.WaitVisible(row+`/td[contains(@class,"status") and text()="succeeded"]`),
		chromedp.WaitVisible(`//table[@id="events"]//td[@class="type" and text()="approval.succeeded"]`))
	if m := string(eval(`window.notReloaded`)); m != "42" {
		t.Fatalf("the page reloaded (marker %s)", m)
	}
	if n := string(eval(`document.querySelectorAll("#operations b, #events img, #operations img, #pending b").length`)); n != "0" {
		t.Fatalf("markup from the emulator's data became %s elements", n)
	}
	if p := string(eval(`window.pwned === 1`)); p != "false" {
		t.Fatal("markup from a refused path ran")
	}
	details := get("refusal details", chromedp.Text(`//table[@id="events"]//tr[td[@class="type" and text()="request.refused"]]/td[@class="details"]`))
	if !strings.Contains(details, `<img src=x onerror="window.pwned=1">`) {
		t.Fatalf("refusal details %q", details)
	}

	// A second approval waits with its QR code: the screenshot shows it.
	code, out, errOut = runCLI(t, "backend", "approve", "alice", "--channel", "app", "--message", "Second", "--json")
	if code != 0 {
		t.Fatalf("second approve: %d %s", code, errOut)
	}
	var ap2 struct{ TransactionID string }
	if err := json.Unmarshal([]byte(out), &ap2); err != nil {
		t.Fatal(err)
	}
	card := `//div[@id="pending"]/div[@data-op-id="` + ap2.TransactionID + `"]`
	do("second approval's card", chromedp.WaitVisible(card+`/img[@class="qr"]`))
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)) // 100: PNG
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.ArtifactDir(), "console.png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", path)

	// The tester's buttons: expire it, remove the authenticator.
	row2 := `//table[@id="operations"]//tr[@data-op-id="` + ap2.TransactionID + `"]`
	click("expire button", card+`/button[text()="Expire"]`)
	do("expired", chromedp.WaitVisible(row2+`/td[contains(@class,"status") and text()="failed (expired)"]`), chromedp.WaitNotPresent(card))
	click("remove button", `//table[@id="users"]//li[@data-authenticator-id]/button[text()="Remove"]`)
	do("authenticator removed", chromedp.WaitVisible(`//table[@id="events"]//td[@class="type" and text()="authenticator.removed"]`),
		chromedp.WaitNotPresent(`//table[@id="users"]//li[@data-authenticator-id]`))

	// A change without the console's header is refused even with the cookie.
	if st := string(eval(`fetch("/api/v1/admin/reset", {method: "POST"}).then(r => r.status)`)); st != "403" {
		t.Fatalf("reset without the header: %s", st)
	}
	do("reset button", chromedp.Click(chromedp.ID("reset")),
		chromedp.WaitVisible(`//table[@id="events"]//td[@class="type" and text()="emulator.reset"]`),
		chromedp.WaitNotPresent(`//table[@id="users"]//td[@class="username"]`))
}
