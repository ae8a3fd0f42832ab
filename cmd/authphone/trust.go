package main

import (
	"errors"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/authphone/authphone/keystore"
	"github.com/authphone/authphone/sdk"
	"github.com/authphone/authphone/sdk/qr"
	"github.com/authphone/authphone/sdk/trustapi"
	"github.com/spf13/cobra"
)

func newLoginCmd(a *app) *cobra.Command {
	var wait time.Duration
	var noWait bool
	cmd := &cobra.Command{
		Use:   "login IDENTIFIER",
		Short: "As a non-trusted device, ask to log in; a trusted device approves; print the tokens",
		Long: `login asks the cloud to log this device in as IDENTIFIER (a username). Every
trusted device of the user gets the request with a binding code, which this
command prints too: check both show the same. When one approves, the OAuth
tokens (ES256 access and id tokens, a refresh token) print at once. Exit 3 if
the request is rejected, 4 if it expires or --wait ends first. --no-wait prints
the request (with its poll token and PKCE verifier) for 'login poll'.`,
		Example: `  authphone --profile laptop login alice --wait 2m
  authphone --profile laptop login alice --json | jq -r .oauth_token.access_token`,
		Args: exactArgs(1, "an IDENTIFIER (the username)"),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := a.phone(cmd.Context())
			if err != nil {
				return err
			}
			lr, err := p.SignInWithDevice(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if noWait {
				a.printJSON(lr)
				return nil
			}
			switch {
			case a.json && !lr.Approved:
				a.printLine(map[string]any{"requestId": lr.RequestID, "bindingCode": lr.BindingCode, "expiresIn": lr.ExpiresIn})
			case lr.Approved && !a.json:
				a.printf("this device is trusted for %s: approved at once\n", args[0])
			case !a.json:
				a.printf("binding code: %s\ncheck that the trusted device shows the same code; waiting up to %s...\n", lr.BindingCode, wait)
			}
			tok, err := p.WaitTokens(cmd.Context(), lr, wait)
			if err != nil {
				return loginErr(err)
			}
			a.printTokens(tok)
			return nil
		},
	}
	cmd.Flags().DurationVar(&wait, "wait", trustapi.DefaultRequestTTL, "how long to wait for a trusted device")
	cmd.Flags().BoolVar(&noWait, "no-wait", false, "print the request as JSON and exit (poll later with 'login poll')")

	var lr sdk.LoginRequest
	var pollWait time.Duration
	poll := &cobra.Command{
		Use:   "poll REQUEST_ID --poll-token T --code-verifier V",
		Short: "Poll a login request once, as RFC 8628 clients do",
		Long: `poll asks once for the tokens of a login request made with 'login --no-wait'.
Exit 0 with the tokens; 4 for authorization_pending or expired_token; 3 for
access_denied; 1 for slow_down (polling faster than the interval) or
invalid_grant (for instance, the tokens were already handed out).`,
		Example: `  authphone login alice --no-wait > req.json
  authphone login poll "$(jq -r .requestId req.json)" --poll-token "$(jq -r .pollToken req.json)" --code-verifier "$(jq -r .codeVerifier req.json)"`,
		Args: exactArgs(1, "a REQUEST_ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := a.phone(cmd.Context())
			if err != nil {
				return err
			}
			lr.RequestID, lr.Cloud = args[0], a.cloud
			tok, err := p.PollTokens(cmd.Context(), &lr, pollWait)
			var oe *trustapi.OAuthError
			if errors.As(err, &oe) {
				switch oe.Code {
				case trustapi.ErrCodePending, trustapi.ErrCodeExpired:
					return timedOut(oe)
				case trustapi.ErrCodeAccessDenied:
					return refused(oe)
				}
				return oe
			}
			if err != nil {
				return err
			}
			a.printTokens(tok)
			return nil
		},
	}
	poll.Flags().StringVar(&lr.PollToken, "poll-token", "", "the request's poll token")
	poll.Flags().StringVar(&lr.CodeVerifier, "code-verifier", "", "the PKCE code verifier")
	poll.Flags().DurationVar(&pollWait, "wait", 0, "hold the poll up to this long (long-poll)")
	cmd.AddCommand(poll)
	return cmd
}

func loginErr(err error) error {
	switch {
	case errors.Is(err, sdk.ErrLoginRejected):
		return refused(err)
	case errors.Is(err, sdk.ErrLoginExpired), errors.Is(err, sdk.ErrLoginPending):
		return timedOut(err)
	}
	return err
}

func (a *app) printTokens(tok *trustapi.TokenResponse) {
	if a.json {
		a.printJSON(tok)
		return
	}
	a.printf("approved: logged in as %s (user %s) by a trusted device\n", tok.ClientUserID, tok.UserID)
	a.printf("access_token:  %s\n", tok.OAuthToken.AccessToken)
	a.printf("id_token:      %s\n", tok.OAuthToken.IDToken)
	a.printf("refresh_token: %s\n", tok.OAuthToken.RefreshToken)
	a.printf("expires_in:    %d\n", tok.OAuthToken.ExpiresIn)
}

func newTrustCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "trust",
		Short: "Pair a new trusted device by QR code, list or remove trusted devices",
		Example: `  authphone --profile laptop trust qr alice --pin 5678     # shows a QR and waits
  authphone --profile phone trust scan pairing.png --pin 1234 # a trusted device approves`,
	}
	var pin, out, pngOut string
	var wait time.Duration
	qrCmd := &cobra.Command{
		Use:   "qr IDENTIFIER --pin PIN",
		Short: "As a new device, show a pairing QR code and wait for a trusted device to approve it",
		Long: `trust qr makes a device key for IDENTIFIER (protected by --pin), shows a QR
code holding its public key, the algorithm, the user's id and a timestamp,
and waits until a trusted device scans and approves it (within 3 minutes).
The device is then trusted: it approves logins and other devices itself.`,
		Example: `  authphone --profile laptop trust qr alice --pin 5678
  authphone --profile laptop trust qr alice --pin 5678 --png pairing.png --out pairing.json`,
		Args: exactArgs(1, "an IDENTIFIER (the username)"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := a.needPIN(pin); err != nil {
				return err
			}
			pinv, _ := a.pin(pin, "Choose a PIN: ")
			p, err := a.phone(cmd.Context())
			if err != nil {
				return err
			}
			pr, err := p.StartPairing(cmd.Context(), args[0], pinv)
			if err != nil {
				return err
			}
			// Written whole (a temp file renamed) before the wait, so a
			// process that sees the file never reads half of it.
			if pngOut != "" {
				img, err := qr.PNG(pr.QRText, 400)
				if err == nil {
					err = keystore.WriteFileAtomic(pngOut, img, 0o644)
				}
				if err != nil {
					return fmt.Errorf("write %s: %w; pick another --png", pngOut, err)
				}
			}
			if out != "" {
				if err := keystore.WriteFileAtomic(out, []byte(pr.QRText), 0o644); err != nil {
					return fmt.Errorf("write %s: %w; pick another --out", out, err)
				}
			}
			if a.json {
				a.printLine(pr.QR) // a line while it waits; the result follows
			} else {
				drawQR(a.io.out, pr.QRText)
				a.printf("%s\n\nscan this with a trusted device of %s (authphone trust scan); waiting up to %s...\n", pr.QRText, args[0], wait)
			}
			acct, err := p.WaitPairing(cmd.Context(), pr, wait)
			if err != nil {
				if errors.Is(err, sdk.ErrPairingExpired) {
					return timedOut(err)
				}
				return err
			}
			if a.json {
				a.printJSON(map[string]any{"result": "trusted", "account": acct})
			} else {
				a.printf("trusted: %s (user %s) on %s, account %s\n", acct.Username, acct.UserID, acct.Cloud, acct.ID)
			}
			return nil
		},
	}
	qrCmd.Flags().StringVar(&pin, "pin", "", "the new device's PIN; or AUTHPHONE_PIN")
	qrCmd.Flags().DurationVar(&wait, "wait", trustapi.PairingMaxAge, "how long to wait for the approval")
	qrCmd.Flags().StringVar(&out, "out", "", "also write the QR's text to this file")
	qrCmd.Flags().StringVar(&pngOut, "png", "", "also write the QR code as a PNG image to this file")

	var scanPINs []string
	var scanBiometric bool
	scan := &cobra.Command{
		Use:   "scan INPUT",
		Short: "As a trusted device, approve a new device's pairing QR (text, PNG/JPEG or data: URI)",
		Example: `  authphone --profile phone trust scan pairing.png --pin 1234
  authphone --profile phone trust scan "$(cat pairing.json)" --pin 1234`,
		Args: exactArgs(1, "the pairing QR (its text, a file, or - for stdin)"),
		RunE: func(cmd *cobra.Command, args []string) error {
			in, err := a.readInput(args, "a pairing QR")
			if err != nil {
				return err
			}
			if text, err := qrText(in); err == nil {
				if q, err := trustapi.ParsePairingQR(text); err == nil {
					if err := a.sameCloud(cmd, q.Cloud); err != nil {
						return err
					}
				}
			}
			if scanBiometric && len(scanPINs) > 0 {
				return usageErrorf("give --pin or --biometric, not both")
			}
			if !scanBiometric {
				if err := a.needPIN(scanPINs...); err != nil {
					return err
				}
			}
			p, err := a.phone(cmd.Context())
			if err != nil {
				return err
			}
			f, err := p.TrustScan(cmd.Context(), in)
			if err != nil {
				return err
			}
			return a.finish(p, a.runFlow(f, a.answerer(answers{pins: scanPINs, biometric: scanBiometric})), false)
		},
	}
	scan.Flags().StringArrayVar(&scanPINs, "pin", nil, "this device's PIN (again for another try after a wrong one); or AUTHPHONE_PIN")
	scan.Flags().BoolVar(&scanBiometric, "biometric", false, "answer with the simulated biometric")

	list := &cobra.Command{
		Use:     "list [ACCOUNT]",
		Short:   "List the trusted devices of an account's user",
		Example: `  authphone trust list alice`,
		Args:    maxArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := a.phone(cmd.Context())
			if err != nil {
				return err
			}
			ref := ""
			if len(args) == 1 {
				ref = args[0]
			}
			if ref, err = a.accountOn(cmd, p, ref); err != nil {
				return err
			}
			devs, err := p.TrustedDevices(cmd.Context(), ref)
			if err != nil {
				return err
			}
			if a.json {
				a.printJSON(devs)
				return nil
			}
			tw := tabwriter.NewWriter(a.io.out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "AUTHENTICATOR\tNAME\tAAID\tCREATED")
			for _, d := range devs {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", d.AuthenticatorID, d.Name, d.AAID, d.CreatedAt.Format(time.RFC3339))
			}
			return tw.Flush()
		},
	}
	var account string
	remove := &cobra.Command{
		Use:     "remove AUTHENTICATOR_ID [--account ACCOUNT]",
		Short:   "Remove a trusted device of the user (signed by this trusted device)",
		Example: `  authphone trust remove 0d3c... --account alice`,
		Args:    exactArgs(1, "an AUTHENTICATOR_ID (see 'trust list')"),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := a.phone(cmd.Context())
			if err != nil {
				return err
			}
			ref, err := a.accountOn(cmd, p, account)
			if err != nil {
				return err
			}
			if err := p.RemoveTrustedDevice(cmd.Context(), ref, args[0]); err != nil {
				return err
			}
			if a.json {
				a.printJSON(map[string]string{"result": "removed", "authenticatorId": args[0]})
			} else {
				a.printf("removed trusted device %s\n", args[0])
			}
			return nil
		},
	}
	remove.Flags().StringVar(&account, "account", "", "the account whose user owns the device (default: the only one)")
	cmd.AddCommand(qrCmd, scan, list, remove)
	return cmd
}
