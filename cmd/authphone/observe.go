package main

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/authphone/authphone/sdk/adminapi"
	"github.com/spf13/cobra"
)

// The emulator's inspection commands (admin API, ours).

func (a *app) printEvent(e adminapi.Event) {
	var b strings.Builder
	fmt.Fprintf(&b, "%d  %s  %s", e.ID, e.Time.Format(time.RFC3339), e.Type)
	for _, kv := range [][2]string{{"user", e.Username}, {"op", e.OperationID}, {"authenticator", e.AuthenticatorID},
		{"status", e.Status}, {"reason", e.Reason}} {
		if kv[1] != "" {
			fmt.Fprintf(&b, "  %s=%q", kv[0], kv[1])
		}
	}
	keys := make([]string, 0, len(e.Data))
	for k := range e.Data {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(&b, "  %s=%q", k, e.Data[k])
	}
	a.printf("%s\n", b.String())
}

func newBackendEventsCmd(a *app) *cobra.Command {
	var since int64
	var limit int
	var follow bool
	var until string
	cmd := &cobra.Command{
		Use:   "events [--since ID] [--follow [--until TYPE]]",
		Short: "Show the emulator's event log, or follow it as it grows",
		Long: `events prints the emulator's ordered event log: enrolments, approvals
created, answered and expired, tokens issued, refreshed and revoked, data
relayed, requests refused with their reason, webhook deliveries. One event a
line: ID, time, type, then who and why. --since ID starts after an ID (the
last one you saw). --follow keeps printing events as they happen (over the
SSE stream) until interrupted, or with --until TYPE until an event of that
type (e.g. approval.succeeded) has been printed; with --json each event is
one JSON line.`,
		Example: `  authphone backend events
  authphone backend events --since 42 --json
  authphone backend events --follow
  authphone backend events --follow --until approval.succeeded --json`,
		Args: maxArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			if since < 0 {
				return usageErrorf("--since %d is not an event ID: give 0 or more", since)
			}
			if limit < 1 || limit > adminapi.MaxEvents {
				return usageErrorf("--limit %d is not from 1 to %d", limit, adminapi.MaxEvents)
			}
			if until != "" && !follow {
				return usageErrorf("--until needs --follow")
			}
			c, err := a.backend()
			if err != nil {
				return err
			}
			if !follow {
				out, err := c.EventLog(cmd.Context(), since, limit)
				if err != nil {
					return err
				}
				if a.json {
					a.printJSON(out)
					return nil
				}
				for _, e := range out.Events {
					a.printEvent(e)
				}
				return nil
			}
			for e, err := range c.Events(cmd.Context(), since) {
				if err != nil {
					return err
				}
				if a.json {
					a.printLine(e)
				} else {
					a.printEvent(e)
				}
				if e.Type == until {
					return nil
				}
			}
			return nil // interrupted
		},
	}
	cmd.Flags().Int64Var(&since, "since", 0, "show the events after this ID")
	cmd.Flags().IntVar(&limit, "limit", adminapi.MaxEvents, "show at most this many (without --follow)")
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing new events until interrupted")
	cmd.Flags().StringVar(&until, "until", "", "with --follow: stop after an event of this type")
	return cmd
}

func newBackendOperationsCmd(a *app) *cobra.Command {
	var status string
	cmd := &cobra.Command{
		Use:   "operations [--status pending|succeeded|failed|all]",
		Short: "List the emulator's enrolments, approvals, login requests and pairings",
		Long: `operations lists what the emulator is waiting for (by default the
pending ones) or has done: kind, status, ID, user, the transaction text or
device name, and how many inbox messages wait for a phone. Login requests
and pairings read succeeded when approved, failed when rejected, cancelled
or expired. --json prints the API's answer, inbox messages and their
dispatch payloads included.`,
		Example: `  authphone backend operations
  authphone backend operations --status all --json`,
		Args: maxArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.backend()
			if err != nil {
				return err
			}
			ops, err := c.Operations(cmd.Context(), status)
			if err != nil {
				return err
			}
			if a.json {
				a.printJSON(adminapi.OperationsResponse{Operations: ops})
				return nil
			}
			for _, op := range ops {
				st := op.Status
				if op.Reason != "" {
					st += " (" + op.Reason + ")"
				}
				a.printf("%-9s %-22s %s  user=%s", op.Kind, st, op.ID, orDash(op.Username))
				if op.Message != "" {
					a.printf("  %q", op.Message)
				}
				if len(op.Inbox) > 0 {
					a.printf("  inbox=%d", len(op.Inbox))
				}
				a.printf("\n")
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&status, "status", "pending", "which operations: pending, succeeded, failed or all")
	expire := &cobra.Command{
		Use:     "expire OPERATION_ID",
		Short:   "End a pending operation now, as if its time were up",
		Example: `  authphone backend operations expire 3f2a...`,
		Args:    exactArgs(1, "OPERATION_ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.backend()
			if err != nil {
				return err
			}
			if err := c.ExpireOperation(cmd.Context(), args[0]); err != nil {
				return err
			}
			if a.json {
				a.printJSON(map[string]string{"operationId": args[0], "status": "failed", "reason": "expired"})
			} else {
				a.printf("expired %s\n", args[0])
			}
			return nil
		},
	}
	cmd.AddCommand(expire)
	return cmd
}

func (a *app) printState(s *adminapi.State) {
	a.printf("users:           %d\nauthenticators:  %d (%d removed)\npending:         %d\ntransactions:    %d\n"+
		"login requests:  %d\npairings:        %d\ninbox messages:  %d\nrefresh tokens:  %d\nwebhooks:        %d\nlast event:      %d\nlong-polls:      %d\n",
		s.Users, s.Authenticators, s.DeletedAuthenticators, s.PendingOperations, s.Transactions, s.LoginRequests, s.Pairings,
		s.InboxItems, s.RefreshTokens, s.Webhooks, s.LastEventID, s.LongPolls)
}

func newBackendStateCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:     "state",
		Short:   "Count what the emulator holds: users, authenticators, pending operations…",
		Example: `  authphone backend state --json`,
		Args:    maxArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.backend()
			if err != nil {
				return err
			}
			s, err := c.State(cmd.Context())
			if err != nil {
				return err
			}
			if a.json {
				a.printJSON(s)
			} else {
				a.printState(s)
			}
			return nil
		},
	}
}

func newBackendResetCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "reset",
		Short: "Make the emulator forget every user, authenticator, operation and token",
		Long: `reset empties the emulator for the next test: users, authenticators,
operations, tokens and messages go; the signing keys, the access key, the
webhooks and the event log stay (the log records the reset). Phones still
holding keys for it get "unknown" answers.`,
		Example: `  authphone backend reset`,
		Args:    maxArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.backend()
			if err != nil {
				return err
			}
			s, err := c.Reset(cmd.Context())
			if err != nil {
				return err
			}
			if a.json {
				a.printJSON(s)
			} else {
				a.printf("reset; last event %d\n", s.LastEventID)
			}
			return nil
		},
	}
}

func newBackendWebhooksCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "webhooks",
		Short: "List the emulator's webhooks (add and remove them with the subcommands)",
		Long: `The emulator posts every event of its log, one JSON event per request,
to each webhook, signed: Authphone-Signature is "v1=" and the hex
HMAC-SHA256 of "<Authphone-Timestamp>.<body>" under the webhook's secret
(check it with backend.WebhookVerifier). Failed deliveries are retried after
1, 2, 4, 8 and 16 s; every attempt is in the event log.`,
		Example: `  authphone backend webhooks
  authphone backend webhooks add http://127.0.0.1:9000/hook
  authphone backend webhooks remove wh-1a2b3c4d5e6f`,
		Args: maxArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.backend()
			if err != nil {
				return err
			}
			hooks, err := c.Webhooks(cmd.Context())
			if err != nil {
				return err
			}
			if a.json {
				a.printJSON(map[string]any{"webhooks": hooks})
				return nil
			}
			for _, h := range hooks {
				a.printf("%s  %s\n", h.ID, h.URL)
			}
			return nil
		},
	}
	var secret string
	add := &cobra.Command{
		Use:   "add URL [--secret S]",
		Short: "Register a webhook; prints its secret",
		Example: `  authphone backend webhooks add http://127.0.0.1:9000/hook
  authphone backend webhooks add https://rp.example.test/hook --secret "$HOOK_SECRET" --json`,
		Args: exactArgs(1, "URL"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.backend()
			if err != nil {
				return err
			}
			h, err := c.AddWebhook(cmd.Context(), args[0], secret)
			if err != nil {
				return err
			}
			if a.json {
				a.printJSON(h)
			} else {
				a.printf("webhook %s  %s\nsecret: %s\n", h.ID, h.URL, h.Secret)
			}
			return nil
		},
	}
	add.Flags().StringVar(&secret, "secret", "", "the shared secret deliveries are signed with (default: a new one)")
	remove := &cobra.Command{
		Use:     "remove WEBHOOK_ID",
		Short:   "Stop deliveries to a webhook",
		Example: `  authphone backend webhooks remove wh-1a2b3c4d5e6f`,
		Args:    exactArgs(1, "WEBHOOK_ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.backend()
			if err != nil {
				return err
			}
			if err := c.RemoveWebhook(cmd.Context(), args[0]); err != nil {
				return err
			}
			if a.json {
				a.printJSON(map[string]string{"removed": args[0]})
			} else {
				a.printf("removed %s\n", args[0])
			}
			return nil
		},
	}
	cmd.AddCommand(add, remove)
	return cmd
}
