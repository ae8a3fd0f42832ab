package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/authphone/authphone/sdk/backend"
	"github.com/authphone/authphone/sdk/cloudapi"
	"github.com/authphone/authphone/sdk/trustapi"
	"github.com/spf13/cobra"
)

func newBackendCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "backend",
		Short: "Call the cloud's backend REST API, as a relying party's server does",
		Long: `The backend commands script the cloud's REST API (enroll, approval,
status, introspect, intent, users) with --cloud and --access-key
(AUTHPHONE_ACCESS_KEY). --json prints the API's own response.`,
		Example: `  export AUTHPHONE_ACCESS_KEY=...   # printed by 'authphone emulator'
  authphone backend enroll alice --qr
  authphone backend approve alice --message 'Pay <b>10 EUR</b>' --wait 60s`,
	}
	cmd.PersistentFlags().StringVar(&a.accessKey, "access-key", "", "the cloud's access key ("+secretEnv("AUTHPHONE_ACCESS_KEY")+")")
	cmd.AddCommand(newBackendEnrollCmd(a), newBackendApproveCmd(a), newBackendStatusCmd(a), newBackendIntrospectCmd(a),
		newBackendIntentCmd(a), newBackendUsersCmd(a), newBackendPingCmd(a), newBackendVerifyTokenCmd(a),
		newBackendRefreshCmd(a), newBackendRotateKeyCmd(a), newBackendClockCmd(a), newBackendChaosCmd(a),
		newBackendEventsCmd(a), newBackendOperationsCmd(a), newBackendStateCmd(a), newBackendResetCmd(a), newBackendWebhooksCmd(a),
		newBackendExportCmd(a), newBackendImportCmd(a))
	return cmd
}

func (a *app) printRaw(raw []byte) {
	var v any
	if json.Unmarshal(raw, &v) == nil {
		a.printJSON(v)
		return
	}
	a.printf("%s\n", raw)
}

func newBackendPingCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:     "ping",
		Short:   "Check that the cloud answers and the access key is right",
		Example: `  authphone backend ping`,
		Args:    maxArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.backend()
			if err != nil {
				return err
			}
			if err := c.Ping(cmd.Context()); err != nil {
				return err
			}
			if a.json {
				a.printJSON(map[string]string{"result": "PONG"})
			} else {
				a.printf("PONG\n")
			}
			return nil
		},
	}
}

func newBackendEnrollCmd(a *app) *cobra.Command {
	var showQR bool
	cmd := &cobra.Command{
		Use:   "enroll USERNAME",
		Short: "Start enrolling a user: prints the app link (and the QR code with --qr)",
		Example: `  authphone backend enroll alice --qr
  authphone backend enroll alice --json | jq -r .enrollment.appLinkUri`,
		Args: exactArgs(1, "a USERNAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.backend()
			if err != nil {
				return err
			}
			u, raw, err := c.Enroll(cmd.Context(), cloudapi.EnrollRequest{Username: args[0]})
			if err != nil {
				return err
			}
			if a.json {
				a.printRaw(raw)
				return nil
			}
			if showQR {
				drawQR(a.io.out, qrContent(u.Enrollment.AppLinkURI))
			}
			a.printf("user:         %s (%s, %s)\n", u.Username, u.UserID, u.Status)
			a.printf("app link:     %s\n", u.Enrollment.AppLinkURI)
			a.printf("status token: %s\n", u.Enrollment.StatusToken)
			return nil
		},
	}
	cmd.Flags().BoolVar(&showQR, "qr", false, "draw the enrolment QR code in the terminal")
	return cmd
}

// statusResult prints a status and turns it into the exit code: 0
// succeeded, 3 failed (declined, rejected), 4 failed because it expired or
// still pending (an answer, not an error), 1 unknown.
func (a *app) statusResult(st *cloudapi.StatusResponse, waited time.Duration) error {
	if a.json {
		a.printJSON(st)
	} else {
		a.printf("status: %s\n", st.Status)
		if st.Reason != "" {
			a.printf("reason: %s\n", st.Reason)
		}
		if st.Token != "" {
			a.printf("token:  %s\n", st.Token)
		}
	}
	switch st.Status {
	case cloudapi.StatusFailed:
		if st.Reason == cloudapi.ReasonExpired {
			return timedOut(fmt.Errorf("the transaction expired: nobody answered it in time; start a new one"))
		}
		why := st.Reason
		if why == "" {
			why = "declined or rejected"
		}
		return refused(fmt.Errorf("the transaction failed (%s): the user or the phone said no", why))
	case cloudapi.StatusPending:
		if waited > 0 {
			return timedOut(fmt.Errorf("still pending after %s: wait longer with --wait", waited))
		}
		return timedOut(fmt.Errorf("still pending: read it again, or wait with --wait"))
	case cloudapi.StatusUnknown:
		return fmt.Errorf("the cloud does not know this transaction: it was purged, or the token is from another cloud")
	}
	return nil
}

func newBackendApproveCmd(a *app) *cobra.Command {
	var req cloudapi.ApprovalRequest
	var wait time.Duration
	cmd := &cobra.Command{
		Use:   "approve USERNAME",
		Short: "Ask a user's phone to approve a login or a transaction",
		Example: `  authphone backend approve alice
  authphone backend approve alice --message 'Pay <b>100 EUR</b> to Bob' --wait 60s
  authphone backend approve alice --channel app --json | jq -r .appLinkUri
  authphone backend approve alice --authenticator "*" --wait 60s
  authphone backend approve alice --number-matching --wait 60s   # prints the number to show the user`,
		Args: exactArgs(1, "a USERNAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.backend()
			if err != nil {
				return err
			}
			req.Username = args[0]
			ap, raw, err := c.Approve(cmd.Context(), req)
			if err != nil {
				return err
			}
			if wait == 0 {
				if a.json {
					a.printRaw(raw)
					return nil
				}
				if ap.AppLinkURI != "" {
					drawQR(a.io.out, qrContent(ap.AppLinkURI))
					a.printf("app link:     %s\n", ap.AppLinkURI)
				}
				a.printf("transaction:  %s\nstatus token: %s\n", ap.TransactionID, ap.StatusToken)
				if ap.Number != 0 {
					a.printf("number:       %d\n", ap.Number)
				}
				return nil
			}
			if !a.json {
				a.printf("transaction:  %s\nstatus token: %s\n", ap.TransactionID, ap.StatusToken)
				if ap.Number != 0 {
					a.printf("number:       %d\n", ap.Number)
				}
				a.printf("waiting up to %s for the phone...\n", wait)
			}
			st, err := c.WaitStatus(cmd.Context(), ap.StatusToken, wait)
			if err != nil {
				return err
			}
			return a.statusResult(st, wait)
		},
	}
	f := cmd.Flags()
	f.StringVar(&req.Message, "message", "", "transaction text shown on the phone (tags html b br em i strong u)")
	f.StringVar(&req.NotificationMessage, "notification", "", "the push notification's text")
	f.StringVar(&req.Channel, "channel", "push", "push (to the phone's inbox) or app (a QR code / app link)")
	f.StringVar(&req.AuthenticatorID, "authenticator", "", "the authenticator ID to ask, or * for any of the user's (the first answer wins); default: the last registered")
	f.BoolVar(&req.Prompt, "prompt", false, "set the request's prompt flag")
	f.BoolVar(&req.NumberMatching, "number-matching", false, "number matching: the answer carries a two-digit number for the user to pick on the phone (with --json, read it without --wait)")
	f.DurationVar(&wait, "wait", 0, "wait up to this long for the result (exit 3 if denied or rejected, 4 if it expired or is still pending)")
	return cmd
}

func newBackendStatusCmd(a *app) *cobra.Command {
	var wait time.Duration
	cmd := &cobra.Command{
		Use:   "status STATUS_TOKEN",
		Short: "Read a transaction's status at once (long-polls with --wait)",
		Long: `status reads a transaction's status and answers at once: succeeded (exit
0), failed (exit 3 when declined or rejected; exit 4 with reason expired),
pending (exit 4: an answer, not an error), unknown (exit 1). With --wait it
holds until the status leaves pending or the wait ends.`,
		Example: `  authphone backend status st.4b1c...
  authphone backend status st.4b1c... --wait 30s --json`,
		Args: exactArgs(1, "a STATUS_TOKEN"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.backend()
			if err != nil {
				return err
			}
			var st *cloudapi.StatusResponse
			if wait > 0 {
				st, err = c.WaitStatus(cmd.Context(), args[0], wait)
			} else {
				st, err = c.Status(cmd.Context(), args[0], 0) // answers at once
			}
			if err != nil {
				return err
			}
			return a.statusResult(st, wait)
		},
	}
	cmd.Flags().DurationVar(&wait, "wait", 0, "hold until the status leaves pending, up to this long (exit 4 if still pending)")
	return cmd
}

func newBackendIntrospectCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:     "introspect TOKEN",
		Short:   "Ask the cloud whether a token is active (RFC 7662)",
		Example: `  authphone backend introspect eyJhbGciOiJFUzI1NiIs...`,
		Args:    exactArgs(1, "a TOKEN"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.backend()
			if err != nil {
				return err
			}
			in, err := c.Introspect(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if a.json {
				a.printJSON(in)
				return nil
			}
			a.printf("active: %v\n", in.Active)
			if in.Active {
				a.printf("sub:    %s\nscope:  %s\nexp:    %s\n", in.Sub, in.Scope, time.Unix(in.Exp, 0).UTC().Format(time.RFC3339))
			}
			return nil
		},
	}
}

func newBackendIntentCmd(a *app) *cobra.Command {
	var op string
	var channels []string
	cmd := &cobra.Command{
		Use:   "intent USERNAME --operation enroll|approve",
		Short: "Make a single-use token a frontend may use for one user and operation",
		Example: `  authphone backend intent alice --operation approve
  authphone backend intent alice --operation approve --channel push`,
		Args: exactArgs(1, "a USERNAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.backend()
			if err != nil {
				return err
			}
			tok, err := c.Intent(cmd.Context(), cloudapi.IntentRequest{Username: args[0], Operation: op, Channels: channels})
			if err != nil {
				return err
			}
			if a.json {
				a.printJSON(cloudapi.IntentResponse{Token: tok})
			} else {
				a.printf("%s\n", tok)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&op, "operation", "", "enroll or approve")
	cmd.Flags().StringSliceVar(&channels, "channel", nil, "limit the token to these channels: app, push, sms (repeat or comma-separate; default all)")
	_ = cmd.MarkFlagRequired("operation")
	return cmd
}

func (a *app) printUser(u *cloudapi.User) {
	a.printf("%s  %s  %s  %s\n", u.UserID, orDash(u.Username), u.Status, plural(len(u.Authenticators), "authenticator"))
	for _, au := range u.Authenticators {
		a.printf("    %s  %s  %s  %s\n", au.AuthenticatorID, au.Name, au.Type, au.CreatedAt.Format(time.RFC3339))
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func newBackendUsersCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "users [USERNAME]",
		Short: "Show one user, or list them all",
		Example: `  authphone backend users
  authphone backend users alice --json`,
		Args: maxArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.backend()
			if err != nil {
				return err
			}
			if len(args) == 1 {
				u, err := c.User(cmd.Context(), args[0])
				if err != nil {
					return err
				}
				if a.json {
					a.printJSON(u)
				} else {
					a.printUser(u)
				}
				return nil
			}
			us, err := c.Users(cmd.Context())
			if err != nil {
				return err
			}
			if a.json {
				a.printJSON(cloudapi.UserList{Users: us})
				return nil
			}
			for i := range us {
				a.printUser(&us[i])
			}
			return nil
		},
	}
	del := &cobra.Command{
		Use:     "delete USERID",
		Short:   "Delete a user and its authenticators",
		Example: `  authphone backend users delete 6f0c...`,
		Args:    exactArgs(1, "a USERID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.backend()
			if err != nil {
				return err
			}
			if err := c.DeleteUser(cmd.Context(), args[0]); err != nil {
				return err
			}
			if a.json {
				a.printJSON(map[string]string{"result": "deleted", "userId": args[0]})
			} else {
				a.printf("deleted user %s\n", args[0])
			}
			return nil
		},
	}
	rename := &cobra.Command{
		Use:     "rename USERID USERNAME",
		Short:   "Give a user a (new) username",
		Example: `  authphone backend users rename 6f0c... alice`,
		Args:    exactArgs(2, "a USERID and a USERNAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.backend()
			if err != nil {
				return err
			}
			u, err := c.RenameUser(cmd.Context(), args[0], args[1])
			if err != nil {
				return err
			}
			if a.json {
				a.printJSON(u)
			} else {
				a.printUser(u)
			}
			return nil
		},
	}
	rmAuth := &cobra.Command{
		Use:     "remove-authenticator AUTHENTICATOR_ID",
		Short:   "Remove one authenticator; its phone gets a removal notice",
		Example: `  authphone backend users remove-authenticator 0d3c...`,
		Args:    exactArgs(1, "an AUTHENTICATOR_ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.backend()
			if err != nil {
				return err
			}
			if err := c.DeleteAuthenticator(cmd.Context(), args[0]); err != nil {
				return err
			}
			if a.json {
				a.printJSON(map[string]string{"result": "removed", "authenticatorId": args[0]})
			} else {
				a.printf("removed authenticator %s\n", args[0])
			}
			return nil
		},
	}
	cmd.AddCommand(del, rename, rmAuth)
	return cmd
}

func newBackendVerifyTokenCmd(a *app) *cobra.Command {
	var audience, issuer string
	cmd := &cobra.Command{
		Use:   "verify-token JWT",
		Short: "Check a trusted-device access token against the cloud's JWKS (signature, iss, aud, exp, nbf)",
		Example: `  authphone backend verify-token eyJhbGciOiJFUzI1NiIs...
  authphone backend verify-token "$TOKEN" --audience authphone-app --json`,
		Args: exactArgs(1, "a JWT"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts := []backend.Option{backend.WithAudience(audience)}
			if issuer != "" {
				opts = append(opts, backend.WithIssuer(issuer))
			}
			c := backend.New(a.cloud, append(opts, backend.WithTimeout(a.timeout))...)
			claims, err := c.VerifyAccessToken(cmd.Context(), args[0])
			if errors.Is(err, backend.ErrInvalidToken) {
				return fmt.Errorf("%w: check it is an access_token that authphone login printed, from --cloud %s for --audience %s", err, a.cloud, audience)
			}
			if err != nil {
				return err
			}
			if a.json {
				a.printJSON(map[string]any{"valid": true, "claims": claims})
				return nil
			}
			a.printf("valid: user %s (%s), %s, expires %s\n", claims.Subject, claims.Identifier, claims.AuthMethod, claims.Expiry.UTC().Format(time.RFC3339))
			return nil
		},
	}
	cmd.Flags().StringVar(&audience, "audience", trustapi.DefaultClientID, "the audience the token must carry (the client id)")
	cmd.Flags().StringVar(&issuer, "issuer", "", "the issuer the token must carry (default: --cloud)")
	return cmd
}

func newBackendRefreshCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "refresh REFRESH_TOKEN",
		Short: "Exchange a refresh token for new tokens (the old one stops working)",
		Example: `  authphone backend refresh rt_...
  authphone backend refresh rt_... --json | jq -r .refresh_token`,
		Args: exactArgs(1, "a REFRESH_TOKEN"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c := backend.New(a.cloud, backend.WithTimeout(a.timeout))
			out, err := c.Refresh(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if a.json {
				a.printJSON(out)
				return nil
			}
			a.printf("access_token:  %s\nid_token:      %s\nrefresh_token: %s\nexpires_in:    %d\n", out.AccessToken, out.IDToken, out.RefreshToken, out.ExpiresIn)
			return nil
		},
	}
}

func newBackendRotateKeyCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:     "rotate-key",
		Short:   "Make the emulator sign new tokens with a new key; old tokens stay valid until they expire",
		Example: `  authphone backend rotate-key`,
		Args:    maxArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.backend()
			if err != nil {
				return err
			}
			kid, err := c.RotateSigningKey(cmd.Context())
			if err != nil {
				return err
			}
			if a.json {
				a.printJSON(map[string]string{"kid": kid})
			} else {
				a.printf("new signing key: %s\n", kid)
			}
			return nil
		},
	}
}

func newBackendClockCmd(a *app) *cobra.Command {
	var advance time.Duration
	cmd := &cobra.Command{
		Use:   "clock [--advance DUR]",
		Short: "Read the emulator's clock, or move it forward so operations expire without waiting",
		Long: `clock prints the emulator's time and how far ahead of real time it runs.
--advance moves it forward (the emulator must run with --clock-control): an
enrolment, approval, login request or pairing due to expire within DUR has
expired at once, and waiting long-polls answer. Phones keep real time and
go on working (their signatures' freshness is checked against the unmoved
clock); tokens issued afterwards carry the moved time.`,
		Example: `  authphone backend clock
  authphone backend clock --advance 3m --json`,
		Args: maxArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			if f := cmd.Flag("advance"); f.Changed && advance <= 0 {
				return usageErrorf("--advance %s is not a positive duration: give e.g. 90s", advance)
			}
			c, err := a.backend()
			if err != nil {
				return err
			}
			var out *cloudapi.ClockResponse
			if advance > 0 {
				out, err = c.AdvanceClock(cmd.Context(), advance)
			} else {
				out, err = c.Clock(cmd.Context())
			}
			if err != nil {
				return err
			}
			if a.json {
				a.printJSON(out)
			} else {
				a.printf("now:    %s\noffset: %s\n", out.Now.Format(time.RFC3339Nano), out.Offset)
			}
			return nil
		},
	}
	cmd.Flags().DurationVar(&advance, "advance", 0, "move the clock forward by this much")
	return cmd
}
