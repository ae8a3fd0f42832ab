package main

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/authphone/authphone/keystore"
	"github.com/authphone/authphone/sdk"
	"github.com/spf13/cobra"
)

// run executes the command line and returns the exit code.
func run(ctx context.Context, args []string, s *ioStreams) int {
	a := &app{io: s}
	root := newRoot(a)
	root.SetArgs(args)
	root.SetIn(s.in)
	root.SetOut(s.out)
	root.SetErr(s.err)
	err := root.ExecuteContext(ctx)
	if err != nil {
		err = a.explain(err)
	}
	if err == nil {
		return exitOK
	}
	if err == errSilent {
		return exitError
	}
	code := exitCode(err)
	var ce *codedError
	cobraUsage := !errors.As(err, &ce) && isCobraUsage(err)
	if code == exitError && cobraUsage {
		code = exitUsage
	}
	if code == exitUsage && cobraUsage {
		fmt.Fprintf(s.err, "authphone: %s: see 'authphone --help'\n", message(err))
	} else {
		fmt.Fprintf(s.err, "authphone: %s\n", message(err))
	}
	if (a.json || wantsJSON(args)) && !a.printed {
		a.printJSON(map[string]any{"error": map[string]any{"code": code, "message": message(err)}})
	}
	return code
}

// wantsJSON tells whether --json is among args, for an error found before
// the flags were parsed (a bad flag value, an unknown command).
func wantsJSON(args []string) bool {
	for _, a := range args {
		if a == "--" {
			return false
		}
		if a == "--json" || a == "--json=true" {
			return true
		}
	}
	return false
}

// isCobraUsage recognises cobra's own usage errors (unknown command or
// flag), which it returns as plain errors.
func isCobraUsage(err error) bool {
	m := err.Error()
	return strings.HasPrefix(m, "unknown command") || strings.HasPrefix(m, "unknown flag") ||
		strings.HasPrefix(m, "unknown shorthand flag") || strings.Contains(m, "flag needs an argument") ||
		strings.HasPrefix(m, "invalid argument") || strings.HasPrefix(m, "required flag")
}

func newRoot(a *app) *cobra.Command {
	root := &cobra.Command{
		Use:   "authphone",
		Short: "A scriptable virtual phone for push authenticators, and a local cloud to test it against",
		Long: `authphone is a virtual phone for push authenticators (FIDO UAF 1.1, Nevis
Authentication Cloud compatible): it enrols by scanning a QR code or app link,
approves or denies logins and transactions with a PIN-protected device key,
and can also act as the relying party's backend and run the cloud itself.`,
		Example: `  # Terminal 1: a local cloud
  authphone emulator
  # Terminal 2: the backend enrols alice; the phone scans the QR image
  export AUTHPHONE_ACCESS_KEY=...   # printed by the emulator
  authphone backend enroll alice --json | jq -r .enrollment.appLinkUri > link.txt
  authphone scan link.txt --pin 1234
  authphone backend approve alice --message 'Pay 10 EUR' &
  authphone approve --wait 10s --pin 1234`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.Version = versionString()
	root.SetVersionTemplate("{{.Version}}\n")
	pf := root.PersistentFlags()
	pf.StringVar(&a.profile, "profile", envOr("AUTHPHONE_PROFILE", "default"), "which simulated phone (env AUTHPHONE_PROFILE)")
	pf.StringVar(&a.cloud, "cloud", envOr("AUTHPHONE_CLOUD", sdk.DefaultCloud), "the cloud's base URL (env AUTHPHONE_CLOUD)")
	pf.StringVar(&a.keystore, "keystore", envOr("AUTHPHONE_KEYSTORE", keystore.KindAuto), "where device keys live: auto, os, file, memory (env AUTHPHONE_KEYSTORE)")
	pf.DurationVar(&a.timeout, "timeout", envDuration("AUTHPHONE_TIMEOUT", defaultTimeout),
		"limit on each call to the cloud, connecting included; long-polls get their --wait on top (env AUTHPHONE_TIMEOUT)")
	pf.BoolVar(&a.json, "json", false, "machine-readable output: one JSON document, or one JSON line per FlowUpdate then the result")
	pf.BoolVar(&a.verbose, "verbose", envOr("AUTHPHONE_VERBOSE", "") != "", "print HTTP exchanges on stderr, secrets redacted (env AUTHPHONE_VERBOSE)")
	pf.StringSliceVar(&a.versions, "allowed-protocol-versions", splitList(envOr("AUTHPHONE_ALLOWED_PROTOCOL_VERSIONS", strings.Join(sdk.DefaultProtocolVersions, ","))),
		"second-factor server protocol versions the phone allows; headless accounts need v1_2 (env AUTHPHONE_ALLOWED_PROTOCOL_VERSIONS)")
	pf.StringVar(&a.facetID, "facet-id", envOr("AUTHPHONE_FACET_ID", sdk.FacetID), "the UAF facet ID the phone reports; the cloud must trust it (env AUTHPHONE_FACET_ID)")
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return usageErrorf("%s: see '%s --help'", flagError(err), c.CommandPath())
	})

	root.AddCommand(newScanCmd(a), newPendingCmd(a), newApproveCmd(a), newDenyCmd(a), newAccountsCmd(a),
		newQRCmd(a), newGetDataCmd(a), newUpgradeCmd(a), newPINCmd(a), newLoginCmd(a), newTrustCmd(a), newBackendCmd(a), newEmulatorCmd(a), newDemoCmd(a), newFleetCmd(a), newVersionCmd(a))
	root.InitDefaultCompletionCmd()
	for _, c := range root.Commands() {
		if c.Name() == "completion" {
			c.Example = "  source <(authphone completion bash)\n  authphone completion zsh > \"${fpath[1]}/_authphone\""
			for _, sh := range c.Commands() {
				sh.Example = "  authphone completion " + sh.Name() + " --help"
			}
		}
	}
	guardGroups(root)
	return root
}

// guardGroups makes a group command (one with subcommands and nothing of
// its own to run) answer an unknown subcommand with a usage error (exit 2)
// and a suggestion, instead of printing its help and exiting 0. A group
// given no subcommand at all is a missing argument (cli.md: exit 2): its
// help goes to stderr, so a script's stdout stays empty, then one line
// says what is missing. The root alone still prints its help and exits 0:
// `authphone` with nothing is asking what the tool is.
func guardGroups(c *cobra.Command) {
	for _, s := range c.Commands() {
		guardGroups(s)
	}
	if !c.HasSubCommands() || c.Runnable() {
		return
	}
	c.SuggestionsMinimumDistance = 2
	c.Args = subcommandArgs(maxArgs(0))
	c.RunE = func(cmd *cobra.Command, _ []string) error {
		if !cmd.HasParent() {
			return cmd.Help()
		}
		cmd.SetOut(cmd.ErrOrStderr())
		_ = cmd.Help()
		msg := fmt.Sprintf("%q needs a command: ", cmd.CommandPath())
		if names := commandNames(cmd); len(names) <= 8 {
			msg += "its commands are " + strings.Join(names, ", ") + "; "
		}
		return usageErrorf("%ssee '%s --help'", msg, cmd.CommandPath())
	}
}

// subcommandArgs checks a command's arguments with next; when they do not
// fit, a first argument is taken for a mistyped subcommand.
func subcommandArgs(next cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		err := next(cmd, args)
		if err == nil || len(args) == 0 || !cmd.HasSubCommands() {
			return err
		}
		msg := fmt.Sprintf("unknown command %q for %q: ", args[0], cmd.CommandPath())
		names := commandNames(cmd)
		if sug := cmd.SuggestionsFor(args[0]); len(sug) > 0 {
			msg += fmt.Sprintf("did you mean %q? ", sug[0])
		} else if len(names) <= 8 {
			msg += "its commands are " + strings.Join(names, ", ") + "; "
		}
		return usageErrorf("%ssee '%s --help'", msg, cmd.CommandPath())
	}
}

// commandNames lists cmd's subcommands a user can run.
func commandNames(cmd *cobra.Command) []string {
	var names []string
	for _, s := range cmd.Commands() {
		if s.IsAvailableCommand() {
			names = append(names, s.Name())
		}
	}
	return names
}

// flagError words a flag's parse error for people: pflag quotes the Go
// parser's own message ("time: invalid duration", "strconv.ParseInt: …").
func flagError(err error) string {
	m := err.Error()
	head, tail, ok := strings.Cut(m, " flag: ")
	if !ok {
		return m
	}
	switch {
	case strings.HasPrefix(tail, "time: "):
		tail = "not a duration (a number with a unit, such as 500ms, 30s or 2m)"
	case strings.HasPrefix(tail, "strconv.ParseInt"), strings.HasPrefix(tail, "strconv.ParseUint"):
		tail = "not a whole number"
	case strings.HasPrefix(tail, "strconv.ParseBool"):
		tail = "not true or false"
	case strings.HasPrefix(tail, "strconv.ParseFloat"):
		tail = "not a number"
	}
	return head + " flag: " + tail
}

func splitList(s string) []string {
	var out []string
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}
