package main

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/authphone/authphone/emulator"
	"github.com/authphone/authphone/flows"
	"github.com/authphone/authphone/keystore"
	"github.com/authphone/authphone/sdk"
	"github.com/authphone/authphone/sdk/backend"
	"github.com/authphone/authphone/sdk/cloudapi"
	"github.com/authphone/authphone/sdk/qr"
	"github.com/authphone/authphone/sdk/trustapi"
	"github.com/spf13/cobra"
)

func newDemoCmd(a *app) *cobra.Command {
	var noQR bool
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Walk through every flow against an in-process emulator",
		Long: `Demo starts an emulator on a free loopback port in this process and walks
through the flows: enrol a user by scanning the real QR image, approve a push
login, sign a transaction whose text is shown, deny one, send getData from
a new phone (a headless account), upgrade it with a PIN and approve a login
with it, sign a laptop in from the phone (tokens verified with the JWKS),
and pair a desktop by QR. It prints each step
and its FlowUpdates and exits 0 only if every step ended as it should. It
uses the memory keystore and a temporary profile, so it runs anywhere.`,
		Example: `  authphone demo
  make demo`,
		Args: maxArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.demo(cmd.Context(), !noQR)
		},
	}
	cmd.Flags().BoolVar(&noQR, "no-qr", false, "do not draw the enrolment QR code")
	return cmd
}

type demoRun struct {
	a     *app
	step  int
	fails []string
}

func (d *demoRun) header(title string) {
	d.step++
	if !d.a.json {
		d.a.printf("\n==> %d. %s\n", d.step, title)
	}
}

func (d *demoRun) check(ok bool, what string) {
	mark := "ok  "
	if !ok {
		mark = "FAIL"
		d.fails = append(d.fails, what)
	}
	if d.a.json {
		d.a.printJSON(map[string]any{"step": d.step, "check": what, "ok": ok})
	} else {
		d.a.printf("     [%s] %s\n", mark, what)
	}
}

func (a *app) demo(ctx context.Context, showQR bool) error {
	d := &demoRun{a: a}
	emu, err := emulator.New()
	if err != nil {
		return err
	}
	if err := emu.Start("127.0.0.1:0"); err != nil {
		return err
	}
	defer emu.Close(context.Background())
	be := backend.New(emu.URL(), backend.WithAccessKey(emu.AccessKey()))
	dir, err := os.MkdirTemp("", "authphone-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	phone, err := sdk.New("demo", keystore.NewMemory(), sdk.WithStateDir(dir), sdk.WithCloud(emu.URL()), sdk.WithDeviceName("authphone demo phone"))
	if err != nil {
		return err
	}
	if !a.json {
		a.printf("authphone demo: emulator on %s (memory keystore, temporary profile)\n", emu.URL())
	}
	const pin = "4711"

	d.header("Enrol alice: the backend asks for a QR code, the phone scans the PNG")
	u, _, err := be.Enroll(ctx, cloudapi.EnrollRequest{Username: "alice"})
	if err != nil {
		return err
	}
	if showQR && !a.json {
		drawQR(a.io.out, qrContent(u.Enrollment.AppLinkURI))
	}
	if !a.json {
		a.printf("     app link: %s\n", u.Enrollment.AppLinkURI)
	}
	png, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(u.Enrollment.QRCode.DataURI, "data:image/png;base64,"))
	f, err := phone.Scan(ctx, png)
	if err != nil {
		return err
	}
	last := a.runFlow(f, flows.Answers{NewPIN: pin}.Answer)
	d.check(last.State == flows.Done, "ENROL ended DONE")
	st, err := be.Status(ctx, u.Enrollment.StatusToken, 0)
	d.check(err == nil && st.Status == cloudapi.StatusSucceeded, "the backend sees the enrolment succeeded")
	if len(d.fails) > 0 {
		return d.result()
	}

	d.header("Push login: the backend asks, the phone approves with its PIN")
	d.approval(ctx, be, phone, cloudapi.ApprovalRequest{Username: "alice", NotificationMessage: "Log in to the demo shop?"},
		flows.Answers{Confirm: true, PIN: pin}, flows.Login, cloudapi.StatusSucceeded)

	d.header("Sign a transaction: the phone shows the text before signing")
	d.approval(ctx, be, phone, cloudapi.ApprovalRequest{Username: "alice", Message: "Pay <b>100.00 EUR</b> to Bob<br>IBAN CH93 0076 2011 6238 5295 7"},
		flows.Answers{Confirm: true, PIN: pin}, flows.SignTransaction, cloudapi.StatusSucceeded)

	d.header("Deny one: the phone declines, the backend sees it failed")
	d.approval(ctx, be, phone, cloudapi.ApprovalRequest{Username: "alice", Message: "Pay 9999.00 EUR to Mallory"},
		flows.Answers{Confirm: false}, flows.SignTransaction, cloudapi.StatusFailed)

	d.headless(ctx, emu, be, dir)
	d.trustedDevice(ctx, emu, be, phone, dir, pin)
	return d.result()
}

// trustedDevice shows the Cotter part: a laptop asks to log in as alice, the
// phone approves, the laptop gets tokens the backend verifies; then a
// desktop is paired by QR and approves a login itself.
func (d *demoRun) trustedDevice(ctx context.Context, emu *emulator.Server, be *backend.Client, phone *sdk.Phone, dir, pin string) {
	a := d.a
	d.header("A laptop asks to log in as alice; the phone approves; the laptop gets tokens")
	laptop, err := sdk.New("demo-laptop", keystore.NewMemory(), sdk.WithStateDir(dir+"/laptop"), sdk.WithCloud(emu.URL()),
		sdk.WithDeviceName("demo laptop"))
	if err != nil {
		d.check(false, err.Error())
		return
	}
	lr, err := laptop.SignInWithDevice(ctx, "alice")
	if err != nil {
		d.check(false, err.Error())
		return
	}
	if !a.json {
		a.printf("     laptop shows binding code %s\n", lr.BindingCode)
	}
	type result struct {
		tok *trustapi.TokenResponse
		err error
	}
	got := make(chan result, 1)
	go func() {
		tok, err := laptop.WaitTokens(ctx, lr, 10*time.Second)
		got <- result{tok, err}
	}()
	r, err := phone.Next(ctx, sdk.Select{Wait: 5 * time.Second})
	if err != nil || r.Login == nil {
		d.check(false, fmt.Sprintf("the phone did not get the login request: %v", err))
		return
	}
	f, err := phone.Approve(ctx, r)
	if err != nil {
		d.check(false, err.Error())
		return
	}
	last := a.runFlow(f, flows.Answers{Confirm: true, PIN: pin}.Answer)
	d.check(last.State == flows.Done && r.Login.BindingCode == lr.BindingCode, "APPROVE_DEVICE ended DONE, same binding code on both screens")
	res := <-got
	d.check(res.err == nil, "the laptop received its tokens")
	if res.err != nil {
		return
	}
	claims, err := be.VerifyAccessToken(ctx, res.tok.OAuthToken.AccessToken)
	d.check(err == nil && claims.Identifier == "alice", "the backend verified the access token with the JWKS")

	d.header("Pair a desktop by QR: it shows a QR, the phone scans and approves it")
	desktop, err := sdk.New("demo-desktop", keystore.NewMemory(), sdk.WithStateDir(dir+"/desktop"), sdk.WithCloud(emu.URL()),
		sdk.WithDeviceName("demo desktop"))
	if err != nil {
		d.check(false, err.Error())
		return
	}
	pr, err := desktop.StartPairing(ctx, "alice", "9753")
	if err != nil {
		d.check(false, err.Error())
		return
	}
	if !a.json {
		a.printf("     desktop QR: %s\n", pr.QRText)
	}
	paired := make(chan error, 1)
	go func() {
		_, err := desktop.WaitPairing(ctx, pr, 10*time.Second)
		paired <- err
	}()
	png, err := qr.PNG(pr.QRText, 400)
	if err != nil {
		d.check(false, err.Error())
		return
	}
	f, err = phone.TrustScan(ctx, png)
	if err != nil {
		d.check(false, err.Error())
		return
	}
	last = a.runFlow(f, flows.Answers{Confirm: true, PIN: pin}.Answer)
	d.check(last.State == flows.Done, "the phone approved the pairing (APPROVE_DEVICE)")
	d.check(<-paired == nil, "the desktop is now a trusted device of alice")
}

// headless shows the nextAuth part: getData from a phone with no account
// makes a headless account; the upgrade gives it a PIN; the backend names
// the user; the phone approves a login.
func (d *demoRun) headless(ctx context.Context, emu *emulator.Server, be *backend.Client, dir string) {
	a := d.a
	d.header("getData from a new phone: a headless account is made, the data service answers")
	phone, err := sdk.New("demo-headless", keystore.NewMemory(), sdk.WithStateDir(dir+"/headless"), sdk.WithCloud(emu.URL()))
	if err != nil {
		d.check(false, err.Error())
		return
	}
	body, err := phone.GetData(ctx, []byte(`{"query":"balance"}`))
	d.check(err == nil, "getData answered")
	if err != nil {
		return
	}
	if !a.json {
		a.printf("     data service: %s", body)
	}
	accts, _ := phone.Accounts()
	d.check(len(accts) == 1 && accts[0].Headless, "the phone holds one headless account (AAID F1D0#0000)")
	if len(accts) != 1 {
		return
	}
	userID := accts[0].UserID

	d.header("Upgrade the headless account: choose a PIN")
	f, err := phone.Upgrade(ctx, "")
	if err != nil {
		d.check(false, err.Error())
		return
	}
	last := a.runFlow(f, flows.Answers{NewPIN: "2468"}.Answer)
	d.check(last.State == flows.Done && last.Account != nil && last.Account.UserID == userID, "HEADLESS_UPGRADE ended DONE, same user")
	_, err = be.RenameUser(ctx, userID, "zoe")
	d.check(err == nil, "the backend names the user zoe")

	d.header("zoe approves a login on the upgraded phone")
	d.approval(ctx, be, phone, cloudapi.ApprovalRequest{Username: "zoe", NotificationMessage: "Log in as zoe?"},
		flows.Answers{Confirm: true, PIN: "2468"}, flows.Login, cloudapi.StatusSucceeded)
}

// approval runs one approval end to end and checks how it ended.
func (d *demoRun) approval(ctx context.Context, be *backend.Client, phone *sdk.Phone, req cloudapi.ApprovalRequest, ans flows.Answers, typ flows.Type, want string) {
	ap, _, err := be.Approve(ctx, req)
	if err != nil {
		d.check(false, "approval request: "+err.Error())
		return
	}
	r, err := phone.Next(ctx, sdk.Select{Wait: 5 * time.Second})
	if err != nil {
		d.check(false, "push message: "+err.Error())
		return
	}
	if !d.a.json {
		msg := r.Text()
		if msg == "" {
			msg = r.Notification
		}
		d.a.printf("     push message %s: %q\n", r.ID, msg)
	}
	f, err := phone.Approve(ctx, r)
	if err != nil {
		d.check(false, "start flow: "+err.Error())
		return
	}
	last := d.a.runFlow(f, ans.Answer)
	if want == cloudapi.StatusSucceeded {
		d.check(last.State == flows.Done && last.Type == typ, fmt.Sprintf("%s ended DONE", typ))
	} else {
		d.check(last.State == flows.Error && errors.Is(last.Err, flows.ErrDeclined), fmt.Sprintf("%s ended ERROR (declined)", typ))
	}
	st, err := be.WaitStatus(ctx, ap.StatusToken, 5*time.Second)
	d.check(err == nil && st.Status == want, "the backend's status is "+want)
}

func (d *demoRun) result() error {
	if len(d.fails) > 0 {
		return fmt.Errorf("demo failed: %s", strings.Join(d.fails, "; "))
	}
	if d.a.json {
		d.a.printJSON(map[string]any{"result": "ok", "steps": d.step})
	} else {
		d.a.printf("\nauthphone demo: all %d steps ended as they should\n", d.step)
	}
	return nil
}
