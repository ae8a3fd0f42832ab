package main

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/authphone/authphone/flows"
	"github.com/authphone/authphone/sdk"
	"github.com/authphone/authphone/sdk/deviceapi"
	"github.com/authphone/authphone/sdk/dispatch"
	"github.com/spf13/cobra"
)

// finish reports a flow's end: a result line (or JSON document), or the
// error that decides the exit code. declining is true when the user asked to
// decline, so a declined flow is a success.
func (a *app) finish(p *sdk.Phone, last flows.Update, declining bool) error {
	if last.State == flows.Error {
		if declining && errors.Is(last.Err, flows.ErrDeclined) {
			if a.json {
				a.printJSON(map[string]any{"result": "declined", "type": last.Type, "account": last.Account})
			} else {
				a.printf("declined\n")
			}
			return nil
		}
		return last.Err
	}
	verb := map[flows.Type]string{flows.Enrol: "enrolled", flows.Login: "approved", flows.SignTransaction: "signed",
		flows.Deregister: "removed", flows.ChangePIN: "PIN changed", flows.HeadlessUpgrade: "upgraded",
		flows.ApproveDevice: "approved the device"}[last.Type]
	var acct *sdk.Account
	if last.Account != nil && last.Type != flows.Deregister {
		acct, _ = p.Account(last.Account.ID)
	}
	if a.json {
		out := map[string]any{"result": verb, "type": last.Type}
		if acct != nil {
			out["account"] = acct
		} else {
			out["account"] = last.Account
		}
		a.printJSON(out)
		return nil
	}
	if last.Account != nil {
		name := last.Account.Username
		if name == "" {
			name = last.Account.UserID
		}
		a.printf("%s: %s (user %s) on %s, account %s\n", verb, name, last.Account.UserID, last.Account.Cloud, last.Account.ID)
	} else {
		a.printf("%s\n", verb)
	}
	return nil
}

func newScanCmd(a *app) *cobra.Command {
	var pins []string
	var deny, biometric bool
	cmd := &cobra.Command{
		Use:   "scan [INPUT]",
		Short: "Read a dispatch payload (QR image, app link, base64url, JSON, data: URI) and run its flow",
		Long: `Scan reads a dispatch payload and runs its flow: ENROL for an enrolment,
LOGIN or SIGN_TRANSACTION for an approval, DEREGISTER for a removal.
INPUT is a PNG/JPEG file of the QR code, a file holding the text, the text
itself (base64url payload, app link, JSON or data:image/png;base64 URI), or -
for standard input. Running scan is the user's confirmation; --deny declines.
What the phone can check offline (the input, the PIN's format, the kind of
second factor) is checked before the token is used, so a mistake there
leaves the QR code or request usable.`,
		Example: `  authphone scan qr.png --pin 1234
  authphone scan 'http://127.0.0.1:8722/open?dispatchTokenResponse=eyJ...' --pin 1234
  authphone backend enroll bob --json | jq -r .enrollment.qrCode.dataUri | authphone scan - --pin 1234
  authphone scan approval.png --deny
  authphone scan qr.png --biometric`,
		Args: maxArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if biometric && len(pins) > 0 {
				return usageErrorf("give --pin or --biometric, not both")
			}
			in, err := a.readInput(args, "a QR image, app link or payload")
			if err != nil {
				return err
			}
			if pl, err := dispatch.Decode(in); err == nil {
				if err := a.sameCloud(cmd, pl.Base()); err != nil {
					return err
				}
			}
			if !deny && !biometric {
				if err := a.needPIN(pins...); err != nil {
					return err
				}
			}
			p, err := a.phone(cmd.Context())
			if err != nil {
				return err
			}
			if !deny {
				if _, err := p.CheckScan(cmd.Context(), in, a.factor(pins, biometric), first(pins)); err != nil && !errors.Is(err, dispatch.ErrNotDispatch) && !errors.Is(err, dispatch.ErrInvalid) {
					return err
				}
			}
			var opts []sdk.ScanOption
			if biometric {
				opts = append(opts, sdk.WithBiometric())
			}
			f, err := p.Scan(cmd.Context(), in, opts...)
			if err != nil {
				return err
			}
			return a.finish(p, a.runFlow(f, a.answerer(answers{pins: pins, newPIN: first(pins), deny: deny, biometric: biometric})), deny)
		},
	}
	cmd.Flags().StringArrayVar(&pins, "pin", nil, "the PIN to set (enrolment) or to enter (approval); again for another try after a wrong one; or AUTHPHONE_PIN")
	cmd.Flags().BoolVar(&deny, "deny", false, "decline instead of approving")
	cmd.Flags().BoolVar(&biometric, "biometric", false, "use a simulated biometric as the second factor (enrols AAID F1D0#0003; answers its prompts)")
	a.faultFlag(cmd)
	return cmd
}

func first(ss []string) string {
	if len(ss) == 0 {
		return ""
	}
	return ss[0]
}

// factor is the second factor the command line answers with: the
// biometric, a PIN given as a flag, or either (AUTHPHONE_PIN or a prompt
// only when a PIN is asked for).
func (a *app) factor(pins []string, biometric bool) sdk.Factor {
	switch {
	case biometric:
		return sdk.FactorBiometric
	case len(pins) > 0:
		return sdk.FactorPIN
	case os.Getenv("AUTHPHONE_PIN") != "" || a.io.inTTY:
		return sdk.FactorAny
	}
	return sdk.FactorPIN
}

// onCloud applies an explicit --cloud to a phone command: only accounts on
// that cloud take part, and a profile with none there is an error.
func (a *app) onCloud(cmd *cobra.Command, p *sdk.Phone) (string, error) {
	if f := cmd.Flag("cloud"); f == nil || !f.Changed {
		return "", nil
	}
	accts, err := p.Accounts()
	if err != nil {
		return "", err
	}
	want := strings.TrimRight(a.cloud, "/")
	var others []string
	for _, ac := range accts {
		if strings.TrimRight(ac.Cloud, "/") == want {
			return want, nil
		}
		if !slices.Contains(others, ac.Cloud) {
			others = append(others, ac.Cloud)
		}
	}
	if len(others) == 0 {
		return "", fmt.Errorf("%w on %s: this phone (profile %s) has no accounts; scan an enrolment QR first", sdk.ErrNoAccount, want, a.profile)
	}
	return "", fmt.Errorf("%w on %s: the accounts of profile %s are on %s; drop --cloud, or enrol on %s first", sdk.ErrNoAccount, want, a.profile, strings.Join(others, ", "), want)
}

// cloudFlag is an explicit --cloud, without a trailing slash, or "".
func (a *app) cloudFlag(cmd *cobra.Command) string {
	if f := cmd.Flag("cloud"); f == nil || !f.Changed {
		return ""
	}
	return strings.TrimRight(a.cloud, "/")
}

// accountOn applies an explicit --cloud to a command that names one
// account (or means the only one): the account must be on that cloud. It
// returns the reference to pass on: ref itself, or the account id.
func (a *app) accountOn(cmd *cobra.Command, p *sdk.Phone, ref string) (string, error) {
	want := a.cloudFlag(cmd)
	if want == "" {
		return ref, nil
	}
	if ref != "" {
		ac, err := p.Account(ref)
		if err != nil {
			return "", err
		}
		if strings.TrimRight(ac.Cloud, "/") != want {
			return "", fmt.Errorf("%w on %s: %s is on %s; drop --cloud, or name an account on %s", sdk.ErrNoAccount, want, ac.Name(), ac.Cloud, want)
		}
		return ac.ID, nil
	}
	if _, err := a.onCloud(cmd, p); err != nil {
		return "", err
	}
	accts, err := p.Accounts()
	if err != nil {
		return "", err
	}
	var on []*sdk.Account
	for _, ac := range accts {
		if strings.TrimRight(ac.Cloud, "/") == want {
			on = append(on, ac)
		}
	}
	if len(on) > 1 {
		return "", usageErrorf("profile %s has %d accounts on %s: name one (username, user id or account id)", a.profile, len(on), want)
	}
	return on[0].ID, nil
}

// sameCloud refuses an explicit --cloud that is not the cloud a QR code
// names (before anything is sent: the QR code stays usable).
func (a *app) sameCloud(cmd *cobra.Command, qrCloud string) error {
	want := a.cloudFlag(cmd)
	if want == "" || qrCloud == "" || strings.TrimRight(qrCloud, "/") == want {
		return nil
	}
	return usageErrorf("this QR code is from %s, not --cloud %s: drop --cloud (a QR code names its cloud)", strings.TrimRight(qrCloud, "/"), want)
}

func (a *app) printRequests(rs []sdk.Request) {
	if a.json {
		if rs == nil {
			rs = []sdk.Request{}
		}
		a.printJSON(rs)
		return
	}
	if len(rs) == 0 {
		return // nothing pending: nothing on stdout, so `[ -z "$(authphone pending)" ]` works
	}
	tw := tabwriter.NewWriter(a.io.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tACCOUNT\tKIND\tEXPIRES\tMESSAGE")
	for _, r := range rs {
		msg := r.Text()
		if msg == "" {
			msg = r.Notification
		}
		if len(r.NumberChoices) > 0 {
			msg = strings.TrimSpace(msg + " [numbers " + flows.JoinNumbers(r.NumberChoices) + "]")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.ID, r.Account.Name(), r.Kind, time.Until(r.ExpiresAt).Round(time.Second), strings.ReplaceAll(msg, "\n", " / "))
	}
	_ = tw.Flush()
}

// hasAccounts tells whether the profile holds any account.
func hasAccounts(p *sdk.Phone) (bool, error) {
	accts, err := p.Accounts()
	return len(accts) > 0, err
}

func newPendingCmd(a *app) *cobra.Command {
	var wait time.Duration
	cmd := &cobra.Command{
		Use:   "pending",
		Short: "List the push messages waiting for this phone",
		Long: `pending lists the requests waiting for this phone: approvals (ID is the
backend's transactionId), other devices' login requests (ID is the request
id) and removal notices. With nothing pending it prints nothing (with
--json, []) and exits 0; with --wait it waits for one and exits 4 if none
comes.`,
		Example: `  authphone pending
  authphone pending --wait 30s --json`,
		Args: maxArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := a.phone(cmd.Context())
			if err != nil {
				return err
			}
			cloud, err := a.onCloud(cmd, p)
			if err != nil {
				return err
			}
			var rs []sdk.Request
			if ok, err := hasAccounts(p); err != nil {
				return err
			} else if ok {
				if rs, err = p.Pending(cmd.Context(), wait); err != nil {
					return err
				}
			}
			rs = slices.DeleteFunc(rs, func(r sdk.Request) bool { return !(sdk.Select{Cloud: cloud}).Keep(r) })
			a.printRequests(rs)
			if len(rs) == 0 && wait > 0 {
				return timedOut(fmt.Errorf("%w arrived within %s", sdk.ErrNoPending, wait))
			}
			return nil
		},
	}
	cmd.Flags().DurationVar(&wait, "wait", 0, "wait up to this long for a message to arrive")
	return cmd
}

// next picks the request sel names, after the checks that need no cloud:
// an empty profile has nothing pending (exit 4), and then the command's own
// checks (before, if not nil) run before anything is asked of the cloud.
func (a *app) next(cmd *cobra.Command, p *sdk.Phone, sel sdk.Select, before func() error) (sdk.Request, error) {
	cloud, err := a.onCloud(cmd, p)
	if err != nil {
		return sdk.Request{}, err
	}
	sel.Cloud = cloud
	if ok, err := hasAccounts(p); err != nil {
		return sdk.Request{}, err
	} else if !ok {
		return sdk.Request{}, timedOut(fmt.Errorf("%w: this phone (profile %s) has no accounts; scan an enrolment QR first", sdk.ErrNoPending, a.profile))
	}
	if before != nil {
		if err := before(); err != nil {
			return sdk.Request{}, err
		}
	}
	r, err := p.Next(cmd.Context(), sel)
	if errors.Is(err, sdk.ErrNoPending) {
		hint := "nothing is waiting for this phone (profile " + a.profile + "); wait for a request with --wait DUR"
		if sel.ID != "" || sel.Match != "" {
			hint = "`authphone pending` lists what is waiting"
		}
		return r, timedOut(fmt.Errorf("%w: %s", err, hint))
	}
	return r, err
}

func newApproveCmd(a *app) *cobra.Command {
	var sel sdk.Select
	var pins []string
	var biometric bool
	var number int
	cmd := &cobra.Command{
		Use:   "approve [ID]",
		Short: "Approve the given, or the oldest, pending request",
		Long: `Approve runs the flow of a pending push request: LOGIN, SIGN_TRANSACTION
(the transaction text is shown), APPROVE_DEVICE (another device's login
request, with its binding code) or DEREGISTER. Without ID it takes the oldest;
ID is the backend's transactionId (or a login request's id), or a prefix;
--match keeps only requests whose message contains TEXT; --wait waits for one.
--pin may be given more than once: after a wrong PIN the next one is tried,
and each wrong one counts toward the lock-out, as on a phone. A
number-matching request offers three numbers at CONFIRM: --number picks
the one the service shows (a wrong one fails the approval, exit 3; none
is a usage error, exit 2, and the request stays pending). Nothing
pending: exit 4.`,
		Example: `  authphone approve --pin 1234
  authphone approve --wait 30s --match 'Pay 100' --pin 1234 --json
  authphone approve --pin 0000 --pin 1234   # a wrong PIN, then the right one
  authphone approve --number 42 --pin 1234  # number matching: the number the web page shows
  authphone approve --pin 1234 --fault stale-counter   # a cloned authenticator: the cloud refuses it`,
		Args: maxArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if biometric && len(pins) > 0 {
				return usageErrorf("give --pin or --biometric, not both")
			}
			if len(args) == 1 {
				sel.ID = args[0]
			}
			p, err := a.phone(cmd.Context())
			if err != nil {
				return err
			}
			// No way to get a PIN is a usage error (exit 2), found before
			// waiting for a request; without --wait, nothing pending (exit 4)
			// is the answer that comes first.
			pinCheck := func() error {
				if biometric {
					return nil
				}
				return a.needPIN(pins...)
			}
			var before func() error
			if sel.Wait > 0 {
				before = pinCheck
			}
			r, err := a.next(cmd, p, sel, before)
			if err != nil {
				return err
			}
			if err := pinCheck(); err != nil {
				return err
			}
			if err := p.CheckRequest(cmd.Context(), r, a.factor(pins, biometric)); err != nil {
				return err
			}
			if len(r.NumberChoices) > 0 && number == 0 {
				return usageErrorf("%v: pass --number N (one of %s); the request is still pending", flows.ErrNumberRequired, flows.JoinNumbers(r.NumberChoices))
			}
			f, err := p.Approve(cmd.Context(), r)
			if err != nil {
				return err
			}
			return a.finish(p, a.runFlow(f, a.answerer(answers{pins: pins, biometric: biometric, number: number})), false)
		},
	}
	cmd.Flags().DurationVar(&sel.Wait, "wait", 0, "wait up to this long for a request to arrive")
	cmd.Flags().StringVar(&sel.Match, "match", "", "only a request whose message contains TEXT")
	cmd.Flags().StringArrayVar(&pins, "pin", nil, "the PIN (again for another try after a wrong one); or AUTHPHONE_PIN, or a prompt on a terminal")
	cmd.Flags().BoolVar(&biometric, "biometric", false, "answer with the simulated biometric (accounts enrolled with --biometric)")
	cmd.Flags().IntVar(&number, "number", 0, "number matching: the number the service shows (one of the three the request offers)")
	a.faultFlag(cmd)
	return cmd
}

func newDenyCmd(a *app) *cobra.Command {
	var sel sdk.Select
	var reason string
	cmd := &cobra.Command{
		Use:   "deny [ID]",
		Short: "Decline the given, or the oldest, pending request",
		Long: `deny runs the request's flow and declines it at CONFIRM, printing its
FlowUpdates like approve (with --json, one line each, then the result).
With --reason it declines at once with that reason, without a flow.
Nothing pending: exit 4.`,
		Example: `  authphone deny
  authphone deny --wait 30s --match 'Pay 1000' --json`,
		Args: maxArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				sel.ID = args[0]
			}
			p, err := a.phone(cmd.Context())
			if err != nil {
				return err
			}
			r, err := a.next(cmd, p, sel, nil)
			if err != nil {
				return err
			}
			if r.Kind == deviceapi.InboxDeregistration {
				return fmt.Errorf("request %s is a removal notice, which cannot be declined: approve it to forget the account", r.ID)
			}
			if reason == "" {
				if err := p.CheckRequest(cmd.Context(), r, sdk.FactorAny); err != nil {
					return err
				}
				f, err := p.Approve(cmd.Context(), r)
				if err != nil {
					return err
				}
				return a.finish(p, a.runFlow(f, a.answerer(answers{deny: true})), true)
			}
			if err := p.Deny(cmd.Context(), r, reason); err != nil {
				return err
			}
			if a.json {
				a.printJSON(map[string]any{"result": "declined", "id": r.ID, "account": r.Account})
			} else {
				a.printf("declined %s for %s\n", r.ID, r.Account.Name())
			}
			return nil
		},
	}
	cmd.Flags().DurationVar(&sel.Wait, "wait", 0, "wait up to this long for a request to arrive")
	cmd.Flags().StringVar(&sel.Match, "match", "", "only a request whose message contains TEXT")
	cmd.Flags().StringVar(&reason, "reason", "", "decline at once with this reason (sent to the cloud), without running the flow")
	return cmd
}

func newAccountsCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "accounts",
		Short: "List this phone's accounts",
		Example: `  authphone accounts
  authphone --profile phone2 accounts --json
  authphone accounts --cloud http://127.0.0.1:8722   # only the accounts on that cloud`,
		Args:                       subcommandArgs(maxArgs(0)),
		SuggestionsMinimumDistance: 2,
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := a.phone(cmd.Context())
			if err != nil {
				return err
			}
			accts, err := p.Accounts()
			if err != nil {
				return err
			}
			if f := cmd.Flag("cloud"); f != nil && f.Changed {
				accts = slices.DeleteFunc(accts, func(ac *sdk.Account) bool { return strings.TrimRight(ac.Cloud, "/") != strings.TrimRight(a.cloud, "/") })
			}
			if a.json {
				if accts == nil {
					accts = []*sdk.Account{}
				}
				a.printJSON(accts)
				return nil
			}
			if len(accts) == 0 {
				a.printf("no accounts on profile %s; scan an enrolment QR code first\n", a.profile)
				return nil
			}
			tw := tabwriter.NewWriter(a.io.out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ACCOUNT\tUSERNAME\tUSER ID\tCLOUD\tAAID\tHEADLESS\tCREATED")
			for _, ac := range accts {
				name := ac.Username
				if name == "" {
					name = "-"
				}
				state := "no"
				if ac.Headless {
					state = "yes"
				}
				if ac.Locked() {
					state += " (locked)"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", ac.ID, name, ac.UserID, ac.Cloud, ac.AAID, state, ac.CreatedAt.Format(time.RFC3339))
			}
			return tw.Flush()
		},
	}
	var force bool
	rm := &cobra.Command{
		Use:   "remove ACCOUNT",
		Short: "Deregister an account with its cloud and delete its key",
		Example: `  authphone accounts remove alice
  authphone accounts remove 3f2a9c --force   # the cloud is gone: forget it locally`,
		Args: exactArgs(1, "the account (username, user id or account id)"),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := a.phone(cmd.Context())
			if err != nil {
				return err
			}
			ref, err := a.accountOn(cmd, p, args[0])
			if err != nil {
				return err
			}
			ac, err := p.RemoveAccount(cmd.Context(), ref, force)
			if err != nil {
				return err
			}
			if a.json {
				a.printJSON(map[string]any{"result": "removed", "account": ac})
			} else {
				a.printf("removed %s (account %s)\n", ac.Name(), ac.ID)
			}
			return nil
		},
	}
	rm.Flags().BoolVar(&force, "force", false, "remove the account from this phone even if the cloud cannot be told")
	cmd.AddCommand(rm, newAccountsExportCmd(a), newAccountsImportCmd(a))
	return cmd
}
