package main

import (
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"unicode/utf8"

	"github.com/authphone/authphone/sdk"
	"github.com/spf13/cobra"
)

func newGetDataCmd(a *app) *cobra.Command {
	var file, contentType string
	cmd := &cobra.Command{
		Use:   "getdata [DATA | --file F | -]",
		Short: "Send bytes through the secure channel to the app's data service",
		Long: `getdata sends DATA (or a file, or stdin with -) to the app's data service
through the cloud, signed with this phone's device key, and prints the
service's answer raw (with --json: {"status","contentType","body"} and
"bodyBase64" for binary answers). With no account on the cloud it first
creates a headless one, which needs protocol version v1_2 on both sides.
Ctrl-C cancels the call.`,
		Example: `  authphone getdata '{"query":"balance"}'
  authphone getdata --file request.json --content-type application/json
  echo hello | authphone getdata - --json`,
		Args: maxArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var payload []byte
			var err error
			switch {
			case file != "" && len(args) > 0:
				return usageErrorf("give DATA or --file, not both")
			case file != "":
				if payload, err = readFile(file, "--file"); err != nil {
					return err
				}
			case len(args) == 1 && args[0] != "-":
				payload = []byte(args[0])
			default:
				if len(args) == 0 && a.io.inTTY {
					return usageErrorf("give DATA, --file F, or - to read stdin")
				}
				if payload, err = io.ReadAll(io.LimitReader(a.io.in, 64<<20)); err != nil {
					return fmt.Errorf("read stdin: %w", err)
				}
			}
			p, err := a.phone(cmd.Context())
			if err != nil {
				return err
			}
			r, err := p.Data(cmd.Context(), payload, contentType)
			var dse *sdk.DataServiceError
			if errors.As(err, &dse) && a.json {
				a.printJSON(dataJSON(dse.Status, dse.ContentType, dse.Body))
			}
			if err != nil {
				return err
			}
			if a.json {
				out := dataJSON(r.Status, r.ContentType, r.Body)
				out["account"] = r.Account
				a.printJSON(out)
				return nil
			}
			_, err = a.io.out.Write(r.Body)
			return err
		},
	}
	cmd.Flags().StringVar(&file, "file", "", "send this file")
	cmd.Flags().StringVar(&contentType, "content-type", "application/octet-stream", "the payload's content type")
	return cmd
}

func dataJSON(status int, ct string, body []byte) map[string]any {
	out := map[string]any{"status": status, "contentType": ct}
	if utf8.Valid(body) {
		out["body"] = string(body)
	} else {
		out["bodyBase64"] = base64.StdEncoding.EncodeToString(body)
	}
	return out
}

func newUpgradeCmd(a *app) *cobra.Command {
	var pin string
	cmd := &cobra.Command{
		Use:   "upgrade [ACCOUNT] --pin PIN",
		Short: "Give a headless account a PIN so it can approve logins (HEADLESS_UPGRADE)",
		Example: `  authphone upgrade --pin 1234
  authphone upgrade 6f0c... --pin 1234 --json`,
		Args: maxArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ref := ""
			if len(args) == 1 {
				ref = args[0]
			}
			if err := a.needPIN(pin); err != nil {
				return err
			}
			if err := checkNewPIN(pin, "--pin"); err != nil {
				return err
			}
			p, err := a.phone(cmd.Context())
			if err != nil {
				return err
			}
			if ref, err = a.accountOn(cmd, p, ref); err != nil {
				return err
			}
			f, err := p.Upgrade(cmd.Context(), ref)
			if err != nil {
				return err
			}
			return a.finish(p, a.runFlow(f, a.answerer(answers{newPIN: pin})), false)
		},
	}
	cmd.Flags().StringVar(&pin, "pin", "", "the PIN to set; or AUTHPHONE_PIN")
	return cmd
}

func newPINCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "pin",
		Short:   "Manage an account's PIN",
		Example: `  authphone pin change --old 1234 --new 5678`,
	}
	var oldPIN, newPIN string
	change := &cobra.Command{
		Use:   "change [ACCOUNT] --old PIN --new PIN",
		Short: "Change an account's PIN (CHANGE_PIN); a wrong old PIN counts toward the lock-out",
		Example: `  authphone pin change --old 1234 --new 5678
  authphone pin change alice --old 1234 --new 5678 --json`,
		Args: maxArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ref := ""
			if len(args) == 1 {
				ref = args[0]
			}
			if oldPIN == "" || newPIN == "" {
				if !a.io.inTTY {
					return usageErrorf("pin change needs --old and --new (there is no terminal to ask)")
				}
			}
			if err := checkNewPIN(newPIN, "--new"); err != nil {
				return err
			}
			p, err := a.phone(cmd.Context())
			if err != nil {
				return err
			}
			if ref, err = a.accountOn(cmd, p, ref); err != nil {
				return err
			}
			f, err := p.ChangePIN(cmd.Context(), ref)
			if err != nil {
				return err
			}
			return a.finish(p, a.runFlow(f, a.answerer(answers{pins: nonEmpty(oldPIN), newPIN: newPIN})), false)
		},
	}
	change.Flags().StringVar(&oldPIN, "old", "", "the current PIN")
	change.Flags().StringVar(&newPIN, "new", "", "the new PIN")
	cmd.AddCommand(change)
	return cmd
}

// nonEmpty is a list of the one PIN a flag gave, or none.
func nonEmpty(pin string) []string {
	if pin == "" {
		return nil
	}
	return []string{pin}
}

// checkNewPIN checks a PIN about to be set against the rules before
// anything is sent: bad input (exit 1), as scan says of an enrolment PIN.
func checkNewPIN(pin, flag string) error {
	if pin == "" {
		return nil
	}
	if err := sdk.ValidatePIN(pin); err != nil {
		return fmt.Errorf("%w: choose another %s; nothing was sent", err, flag)
	}
	return nil
}
