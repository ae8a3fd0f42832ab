package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/authphone/authphone/emulator"
	"github.com/authphone/authphone/keystore"
	"github.com/authphone/authphone/sdk/cloudapi"
	"github.com/authphone/authphone/sdk/deviceapi"
	"github.com/authphone/authphone/sdk/trustapi"
	"github.com/authphone/authphone/sdk/uaf"
	"github.com/spf13/cobra"
)

func newEmulatorCmd(a *app) *cobra.Command {
	var addr, readyFile string
	var enrollTTL, approvalTTL time.Duration
	var quiet, clockControl, h2c bool
	var dataService, policyFile string
	var versions, facets []string
	var maxData int64
	var dataTimeout time.Duration
	var loginTTL, accessTTL, pollInterval time.Duration
	var clientID string
	var dbPath, dbSync, publicURL string
	var retention time.Duration
	var loginLimit, deviceLimit int
	var chaos, seed string
	var webhooks []string
	var webhookSecret string
	cmd := &cobra.Command{
		Use:   "emulator",
		Short: "Run the local authentication cloud in the foreground",
		Long: `Runs the emulated authentication cloud: the backend REST API (Nevis
Authentication Cloud compatible), the FIDO UAF 1.1 device API and the token
issuer. It prints its base URL and access key (with --json, one JSON line
{"url":…,"accessKey":…}), logs each request, and stops cleanly on
SIGINT/SIGTERM. State is kept in memory, or with --db in a SQLite file that
a restart picks up again (users, keys, counters, tokens, the signing keys and
the generated access key), or in PostgreSQL, where several emulators on one
database (replicas, behind the proxy --public-url names) serve as one
cloud. getData calls go to --data-service with a 60-second ES256 JWT the
service verifies with /.well-known/jwks.json. For testing a backend's
retries and timeouts, --chaos adds latency, 503s and lost pushes (switch it
at run time with 'authphone backend chaos'). Every event of the log goes to
each --webhook URL, signed with --webhook-secret (printed when made up); the
console at /console shows users, operations and the live log.`,
		Example: `  authphone emulator
  authphone emulator --addr 127.0.0.1:0 --json
  authphone emulator --access-key dev-key --approval-ttl 30s
  authphone emulator --clock-control --approval-ttl 5s   # then: authphone backend clock --advance 6s
  authphone emulator --data-service http://127.0.0.1:9000/data
  authphone emulator --trusted-facet android:apk-key-hash:c2hvcC1hcHA
  authphone emulator --registration-policy nevisfido-policy.json
  authphone emulator --db ~/.local/share/authphone/cloud.db
  authphone emulator --db postgres://authphone@127.0.0.1/cloud --public-url http://127.0.0.1:8700
  authphone emulator --addr 0.0.0.0:8722 --device-limit 200 --login-limit 5
  authphone emulator --h2c   # then: authphone fleet --cloud http://127.0.0.1:8722 --h2c ...
  authphone emulator --chaos latency=200ms,error-rate=0.05,drop-push=0.1
  authphone emulator --seed state.json   # starts with the users and phones 'backend export' saved
  authphone emulator --webhook http://127.0.0.1:9000/hook --webhook-secret "$HOOK_SECRET"`,
		Args: maxArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			if loginLimit < 0 || deviceLimit < 0 {
				return usageErrorf("--login-limit and --device-limit take a count, 0 or more (0: no limit)")
			}
			if retention <= 0 {
				return fmt.Errorf("--retention %s is not a positive duration; use e.g. 1h", retention)
			}
			for _, id := range facets {
				if err := uaf.CheckFacetID(id); err != nil {
					return usageErrorf("--trusted-facet: %v", err)
				}
			}
			ch, err := cloudapi.ParseChaos(chaos)
			if err != nil {
				return usageErrorf("--chaos: %v", err)
			}
			level := slog.LevelInfo
			if quiet {
				level = slog.LevelWarn
			}
			var h slog.Handler = slog.NewTextHandler(a.io.err, &slog.HandlerOptions{Level: level})
			if a.json {
				h = slog.NewJSONHandler(a.io.err, &slog.HandlerOptions{Level: level})
			}
			opts := []emulator.Option{emulator.WithLogger(slog.New(h)), emulator.WithEnrollTTL(enrollTTL), emulator.WithApprovalTTL(approvalTTL),
				emulator.WithProtocolVersions(versions...), emulator.WithTrustedFacets(facets...), emulator.WithMaxData(maxData), emulator.WithDataTimeout(dataTimeout),
				emulator.WithLoginTTL(loginTTL), emulator.WithAccessTokenTTL(accessTTL), emulator.WithClientID(clientID),
				emulator.WithPollInterval(pollInterval), emulator.WithRetention(retention), emulator.WithChaos(ch),
				emulator.WithLoginRateLimit(loginLimit, time.Minute), emulator.WithDeviceRateLimit(deviceLimit, time.Second)}
			if dataService != "" {
				opts = append(opts, emulator.WithDataService(dataService))
			}
			if h2c {
				opts = append(opts, emulator.WithH2C())
			}
			if policyFile != "" {
				pol, err := readPolicy(policyFile)
				if err != nil {
					return usageErrorf("--registration-policy: %v", err)
				}
				opts = append(opts, emulator.WithRegistrationPolicy(pol))
			}
			if clockControl {
				opts = append(opts, emulator.WithClockControl())
			}
			if webhookSecret == "" {
				webhookSecret = os.Getenv("AUTHPHONE_WEBHOOK_SECRET")
			}
			if len(webhooks) > 0 && webhookSecret == "" {
				webhookSecret = emulator.NewWebhookSecret()
			}
			for _, u := range webhooks {
				if err := emulator.CheckWebhookURL(u); err != nil {
					return usageErrorf("--webhook: %v", err)
				}
				opts = append(opts, emulator.WithWebhook(u, webhookSecret))
			}
			switch {
			case emulator.IsPostgresURL(dbPath):
				store, err := emulator.OpenPostgres(cmd.Context(), dbPath)
				if err != nil {
					return fmt.Errorf("%w; check --db, or pass none to keep state in memory", err)
				}
				defer store.Close()
				opts = append(opts, emulator.WithStore(store))
			case dbPath != "":
				store, err := emulator.OpenSQLite(dbPath, emulator.WithSQLiteSync(dbSync))
				if err != nil {
					return fmt.Errorf("%w; pass another --db, or none to keep state in memory", err)
				}
				defer store.Close()
				opts = append(opts, emulator.WithStore(store))
			}
			if publicURL != "" {
				u, err := url.Parse(publicURL)
				if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
					return fmt.Errorf("--public-url %q is not an http(s) URL such as https://auth.example.test", publicURL)
				}
				opts = append(opts, emulator.WithBaseURL(publicURL))
			}
			if k := a.accessKeyValue(); k != "" {
				opts = append(opts, emulator.WithAccessKey(k))
			}
			var seedDoc []byte
			if seed != "" {
				if seedDoc, err = readFile(seed, "--seed"); err != nil {
					return err
				}
			}
			emu, err := emulator.New(opts...)
			if err != nil {
				return err
			}
			if seedDoc != nil {
				if _, err := emu.ImportJSON(cmd.Context(), seedDoc); err != nil {
					return fmt.Errorf("--seed %s: %w", seed, err)
				}
			}
			if err := emu.Start(addr); err != nil {
				return fmt.Errorf("%w; is another emulator running? pick another --addr (127.0.0.1:0 picks a free port)", err)
			}
			ready := map[string]string{"url": emu.URL(), "accessKey": emu.AccessKey()}
			if len(webhooks) > 0 {
				ready["webhookSecret"] = webhookSecret
			}
			if a.json {
				a.printJSON(ready)
			} else {
				a.printf("authphone emulator listening on %s\n", emu.URL())
				a.printf("access key: %s\n", emu.AccessKey())
				a.printf("console:    %s/console\n\n", emu.URL())
				if len(webhooks) > 0 {
					a.printf("webhooks:   %s (secret %s)\n\n", strings.Join(webhooks, ", "), webhookSecret)
				}
				a.printf("  export AUTHPHONE_CLOUD=%s\n  export AUTHPHONE_ACCESS_KEY=%s\n\n", emu.URL(), emu.AccessKey())
			}
			if readyFile != "" {
				b, _ := json.Marshal(ready)
				if err := keystore.WriteFileAtomic(readyFile, b, 0o600); err != nil {
					return err
				}
			}
			<-cmd.Context().Done()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if !a.json {
				fmt.Fprintln(a.io.err, "authphone emulator: stopping")
			}
			return emu.Close(ctx)
		},
	}
	f := cmd.Flags()
	f.StringVar(&addr, "addr", "127.0.0.1:8722", "address to listen on (127.0.0.1:0 picks a free port)")
	f.StringVar(&a.accessKey, "access-key", "", "fix the backend access key (default: a new HS512 JWT each start; "+secretEnv("AUTHPHONE_ACCESS_KEY")+")")
	f.DurationVar(&enrollTTL, "enroll-ttl", 5*time.Minute, "how long an enrolment stays pending")
	f.DurationVar(&approvalTTL, "approval-ttl", 2*time.Minute, "how long an approval stays pending")
	f.StringVar(&dbPath, "db", "", "keep state in this SQLite file, or in PostgreSQL (postgres://user@host/db, shared by replicas); default: memory")
	f.StringVar(&publicURL, "public-url", "", "the URL phones and backends reach the cloud at, written into payloads and tokens (replicas behind a proxy)")
	f.StringVar(&dbSync, "db-sync", "full", "SQLite commit durability: full (survives power loss) or normal (faster; survives a crash of the emulator)")
	f.DurationVar(&retention, "retention", emulator.Retention, "how long finished or expired operations are kept before they are forgotten")
	f.IntVar(&loginLimit, "login-limit", emulator.DefaultLoginRate, "login requests without a device signature allowed per user per minute (more: 429; 0: no limit)")
	f.IntVar(&deviceLimit, "device-limit", 0, "device API requests allowed per client IP per second (more: 429; 0, the default: no limit, as a fleet comes from one address)")
	f.StringVar(&readyFile, "ready-file", "", "write {\"url\",\"accessKey\"} as JSON to this file once listening (for scripts)")
	f.BoolVar(&quiet, "quiet", false, "log only warnings and errors")
	f.BoolVar(&h2c, "h2c", false, "also answer HTTP/2 without TLS (for 'authphone fleet --h2c'; its slow-client limits are weaker than HTTP/1.1's: loopback or a trusted network only)")
	f.BoolVar(&clockControl, "clock-control", false, "for tests: let 'authphone backend clock --advance DUR' move this emulator's clock forward, expiring operations without waiting")
	f.StringVar(&policyFile, "registration-policy", "", "a JSON file with the UAF policy enrolments send (e.g. a real server's), instead of the cloud's AAID list")
	f.StringVar(&dataService, "data-service", "", "the app's data service that getData forwards to (default: a built-in echo)")
	f.StringSliceVar(&facets, "trusted-facet", []string{deviceapi.DefaultFacetID}, "facet IDs the cloud trusts besides its own origin (repeat or comma-separate), served at "+deviceapi.PathFacets)
	f.StringSliceVar(&versions, "protocol-versions", []string{"v1_1", "v1_2"}, "second-factor server protocol versions served; headless accounts need v1_2")
	f.Int64Var(&maxData, "max-data", emulator.DefaultMaxData, "largest getData payload, in bytes")
	f.DurationVar(&dataTimeout, "data-timeout", 10*time.Second, "how long the data service may take")
	f.DurationVar(&loginTTL, "login-ttl", trustapi.DefaultRequestTTL, "how long a login request waits for a trusted device")
	f.DurationVar(&accessTTL, "access-token-ttl", trustapi.DefaultAccessTokenLifetime, "life of access and id tokens")
	f.DurationVar(&pollInterval, "poll-interval", trustapi.DefaultPollInterval, "least time between token polls (faster: slow_down)")
	f.StringVar(&clientID, "client-id", trustapi.DefaultClientID, "the audience (aud) of access and id tokens")
	f.StringVar(&seed, "seed", "", "start with the state in this file (written by 'authphone backend export'): users, authenticators, counters")
	f.StringVar(&chaos, "chaos", "off", "for tests: misbehave like a flaky cloud, "+cloudapi.ChaosNames+": added latency, 503s (nothing done), pushes that never reach the inbox; the admin API is spared")
	f.StringArrayVar(&webhooks, "webhook", nil, "post every event to this URL (repeatable); see 'authphone backend webhooks --help'")
	f.StringVar(&webhookSecret, "webhook-secret", "", "the secret --webhook deliveries are signed with (default: a new one, printed; "+secretEnv("AUTHPHONE_WEBHOOK_SECRET")+")")
	return cmd
}

// readPolicy reads a UAF policy ({"accepted":[[…]],"disallowed"?:[…]}) from
// a JSON file.
func readPolicy(path string) (uaf.Policy, error) {
	var p uaf.Policy
	b, err := os.ReadFile(path)
	if err != nil {
		return p, err
	}
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return p, fmt.Errorf("%s is not a UAF policy: %v", path, err)
	}
	if len(p.Accepted) == 0 {
		return p, fmt.Errorf("%s accepts no authenticator: give \"accepted\":[[{…}]]", path)
	}
	return p, nil
}
