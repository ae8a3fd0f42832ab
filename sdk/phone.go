// Package sdk is the virtual phone: a push authenticator that enrols by
// scanning a dispatch payload (QR code, app link, push), approves or denies
// logins and transactions with a PIN-protected P-256 device key, and speaks
// FIDO UAF 1.1 to the cloud. Every user-visible operation is a flow
// (package flows) that reports its progress and waits for the user's
// answers.
//
// A Phone is one simulated device (a profile): its accounts are kept in
// memory and in a state directory (accounts.json, and a write-ahead log of
// the sign counters; WithMemoryState: in memory only), and its private keys and PIN verifiers in a
// keystore.Store. The backend side of the cloud's API is in sdk/backend.
package sdk

import (
	"context"
	"crypto/ecdsa"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/authphone/authphone/flows"
	"github.com/authphone/authphone/keystore"
	"github.com/authphone/authphone/sdk/deviceapi"
	"github.com/authphone/authphone/sdk/httplimit"
	"github.com/authphone/authphone/sdk/uaf"
	"github.com/go-resty/resty/v2"
)

// DefaultCloud is the emulator's default address.
const DefaultCloud = "http://127.0.0.1:8722"

// FacetID is the facet the virtual phone reports in fcParams unless
// WithFacetID says otherwise.
const FacetID = deviceapi.DefaultFacetID

// Phone is one simulated phone. It is safe for concurrent use; it runs one
// flow at a time.
type Phone struct {
	profile    string
	dir        string
	keys       keystore.Store
	hc         *http.Client // the device API's hot path (call)
	verbose    io.Writer
	restyOnce  sync.Once
	rc         *resty.Client // made on first use (data and trusted-device calls)
	cloud      string
	name       string
	facet      string
	now        func() time.Time
	runner     flows.Runner
	mu         sync.Mutex // guards st and the state files
	st         state
	durability Durability
	memory     bool // WithMemoryState: no state directory

	versions   []string
	maxPayload int
	kdf        KDF
	headlessMu sync.Mutex // one headless account at a time

	dkMu     sync.Mutex                   // guards the device key, unbound and keyCache
	keyCache map[string]*ecdsa.PrivateKey // account keys read from the keystore, by keyID
	dk       *ecdsa.PrivateKey
	dkID     string
	dkJWK    []byte
	// dkFresh: the device key was made by this process and no account
	// using it was kept yet; dkBinding counts bindInbox calls not done.
	dkFresh   bool
	dkBinding int
	unbound   map[string]bool // accounts the cloud does not read in a batch
	faults    Faults
	sleep     func(ctx context.Context, d time.Duration) error
}

type options struct {
	dir     string
	memory  bool
	client  *http.Client
	cloud   string
	name    string
	facetID string
	verbose io.Writer
	now     func() time.Time
	timeout time.Duration

	versions   []string
	maxPayload int
	kdf        KDF
	durability Durability
	faults     Faults
	sleep      func(ctx context.Context, d time.Duration) error
}

// Option configures a Phone.
type Option func(*options)

// WithStateDir sets where the phone keeps its accounts (default:
// $XDG_CONFIG_HOME/authphone/profiles/PROFILE).
func WithStateDir(dir string) Option { return func(o *options) { o.dir = dir } }

// WithMemoryState keeps the phone's accounts and sign counters in memory
// only: the phone reads and writes no state directory, and everything it
// enrolled is gone when the Phone is (its keys and PIN verifiers are
// still in its keystore; give it keystore.NewMemory() for a phone that
// touches no file at all). Counters still only grow, within the Phone.
// For Go tests and load tests that simulate an authenticator; it cannot
// be combined with WithStateDir.
func WithMemoryState() Option { return func(o *options) { o.memory = true } }

// WithHTTPClient sets the HTTP client (default: one that limits every
// request to the WithTimeout limit, long-polls to their wait on top).
func WithHTTPClient(c *http.Client) Option { return func(o *options) { o.client = c } }

// WithTimeout limits each call to the cloud, connecting included (default
// 30 s); a long-poll gets its wait on top. A call past it fails with
// ErrNoAnswer.
func WithTimeout(d time.Duration) Option { return func(o *options) { o.timeout = d } }

// WithCloud sets the cloud used when no dispatch payload names one.
func WithCloud(url string) Option { return func(o *options) { o.cloud = strings.TrimRight(url, "/") } }

// WithDeviceName sets the name the cloud shows for this device.
func WithDeviceName(name string) Option { return func(o *options) { o.name = name } }

// WithFacetID sets the facet ID the phone reports in its UAF answers'
// fcParams (default FacetID); the cloud must list it as trusted.
func WithFacetID(id string) Option { return func(o *options) { o.facetID = id } }

// WithVerbose logs each HTTP exchange to w, with secrets redacted.
func WithVerbose(w io.Writer) Option { return func(o *options) { o.verbose = w } }

// WithClock replaces time.Now, for tests.
func WithClock(now func() time.Time) Option { return func(o *options) { o.now = now } }

// hostname is read once per process (it names new phones).
var hostname = sync.OnceValue(func() string { h, _ := os.Hostname(); return h })

var profileRE = regexp.MustCompile(`^[a-zA-Z0-9_.-]{1,64}$`)

// ProfileDir is the default state directory of a profile.
func ProfileDir(profile string) (string, error) {
	base, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("find the config directory: %w; set XDG_CONFIG_HOME", err)
	}
	return filepath.Join(base, "authphone", "profiles", profile), nil
}

// New returns the phone of a profile, with its secrets in keys.
func New(profile string, keys keystore.Store, opts ...Option) (*Phone, error) {
	if !profileRE.MatchString(profile) {
		return nil, fmt.Errorf("profile %q: use 1-64 characters of a-z A-Z 0-9 _ . -", profile)
	}
	if keys == nil {
		return nil, fmt.Errorf("a phone needs a keystore")
	}
	o := options{cloud: DefaultCloud, now: time.Now, timeout: httplimit.DefaultTimeout,
		versions: DefaultProtocolVersions, maxPayload: DefaultMaxPayload, kdf: KDFStandard}
	for _, opt := range opts {
		opt(&o)
	}
	if o.facetID != "" {
		if err := uaf.CheckFacetID(o.facetID); err != nil {
			return nil, fmt.Errorf("sdk: WithFacetID: %w", err)
		}
	}
	if o.sleep == nil {
		o.sleep = sleepCtx
	}
	if skew, now := o.faults.Skew, o.now; skew != 0 {
		o.now = func() time.Time { return now().Add(skew) }
	}
	if o.memory && o.dir != "" {
		return nil, fmt.Errorf("sdk: WithMemoryState and WithStateDir: a phone keeps its accounts in memory or in a directory, not both")
	}
	if o.dir == "" && !o.memory {
		d, err := ProfileDir(profile)
		if err != nil {
			return nil, err
		}
		o.dir = d
	}
	if o.name == "" {
		host := hostname()
		o.name = "authphone " + profile
		if host != "" {
			o.name += " on " + host
		}
	}
	hc := o.client
	if hc == nil {
		hc = httplimit.Client(o.timeout)
	}
	return &Phone{profile: profile, dir: o.dir, keys: keys, hc: hc, verbose: o.verbose, cloud: o.cloud, name: o.name, now: o.now, facet: o.facetID,
		versions: o.versions, maxPayload: o.maxPayload, kdf: o.kdf, durability: o.durability, faults: o.faults, sleep: o.sleep,
		memory: o.memory, st: state{loaded: o.memory}}, nil
}

// facetID is the facet the phone reports.
func (p *Phone) facetID() string {
	if p.facet == "" {
		return FacetID
	}
	return p.facet
}

// Profile is the phone's profile name.
func (p *Phone) Profile() string { return p.profile }

// Keystore is where the phone keeps its secrets.
func (p *Phone) Keystore() keystore.Store { return p.keys }

// http is a resty client over the phone's HTTP client, for the calls off
// the hot path; made on first use, so an idle phone does not carry one.
func (p *Phone) http() *resty.Client {
	p.restyOnce.Do(func() {
		p.rc = resty.NewWithClient(p.hc)
		p.rc.SetHeader("User-Agent", userAgent)
		if p.verbose != nil {
			logExchanges(p.rc, p.verbose)
		}
	})
	return p.rc
}

// userAgent is what the phone sends as User-Agent.
const userAgent = "authphone-phone/1"

// logExchanges prints one line per request and response; Device-Signature
// and Authorization values are never printed.
func logExchanges(r *resty.Client, w io.Writer) {
	r.OnBeforeRequest(func(_ *resty.Client, req *resty.Request) error {
		fmt.Fprintf(w, "> %s %s\n", req.Method, req.URL)
		return nil
	})
	r.OnAfterResponse(func(_ *resty.Client, resp *resty.Response) error {
		fmt.Fprintf(w, "< %d %s (%s)\n", resp.StatusCode(), resp.Request.URL, resp.Time().Round(time.Microsecond))
		return nil
	})
}
