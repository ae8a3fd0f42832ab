package main

import (
	"github.com/authphone/authphone/sdk/cloudapi"
	"github.com/spf13/cobra"
)

// newBackendChaosCmd reads or switches the emulator's chaos at run time.
func newBackendChaosCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "chaos [SPEC|off]",
		Short: "Read or switch the emulator's chaos (latency, 503s, lost pushes) while it runs",
		Long: `chaos without SPEC prints the chaos in force; with SPEC
(` + cloudapi.ChaosNames + `) it switches to exactly that: settings not
named are off. "off" turns it all off. The admin API itself is never
delayed or failed, so chaos can always be switched off again.`,
		Example: `  authphone backend chaos latency=300ms,error-rate=0.2
  authphone backend chaos drop-push=1 --json
  authphone backend chaos off
  authphone backend chaos`,
		Args: maxArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.backend()
			if err != nil {
				return err
			}
			var ch cloudapi.Chaos
			if len(args) == 0 {
				ch, err = c.Chaos(cmd.Context())
			} else {
				want, perr := cloudapi.ParseChaos(args[0])
				if perr != nil {
					return usageErrorf("%v", perr)
				}
				ch, err = c.SetChaos(cmd.Context(), want)
			}
			if err != nil {
				return err
			}
			if a.json {
				a.printJSON(ch)
			} else {
				a.printf("chaos: %s\n", ch)
			}
			return nil
		},
	}
}
