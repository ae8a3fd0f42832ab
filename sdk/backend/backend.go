// Package backend is a client for the cloud's backend-facing REST API
// (cloud-api.md): what a relying party's server calls to enrol users, start
// approvals and read their status. It works against the emulator and, by
// changing the base URL and access key, against a Nevis-compatible cloud.
package backend

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/authphone/authphone/sdk/cloudapi"
	"github.com/authphone/authphone/sdk/httplimit"
	"github.com/authphone/authphone/sdk/internal/bufpool"
	"github.com/authphone/authphone/sdk/trustapi"
	"github.com/go-resty/resty/v2"
)

// Client calls the backend API. Build it with New; it is safe for
// concurrent use.
type Client struct {
	base     string
	r        *resty.Client // the calls off the hot path (forms, streams, JWKS)
	hc       *http.Client  // do's calls, through net/http directly
	direct   bool          // hc adds nothing to its transport: do calls the transport itself
	header   http.Header   // what every call of do sends
	verbose  io.Writer
	audience string
	issuer   string
	refetch  time.Duration
	now      func() time.Time
	jwks     jwksCache
}

// Error is a refusal from the API: its HTTP status and error body.
type Error struct {
	Status  int
	Text    string
	Message string
}

func (e *Error) Error() string {
	return fmt.Sprintf("%d %s: %s", e.Status, e.Text, e.Message)
}

// ErrUnreachable means the cloud could not be reached.
var ErrUnreachable = errors.New("cannot reach the cloud")

// ErrNoAnswer means the cloud took the request but did not answer within
// the time limit (WithTimeout).
var ErrNoAnswer = errors.New("the cloud did not answer in time")

type options struct {
	accessKey string
	client    *http.Client
	verbose   io.Writer
	audience  string
	issuer    string
	refetch   time.Duration
	timeout   time.Duration
	now       func() time.Time
	minimal   bool
}

// Option configures a Client.
type Option func(*options)

// WithAccessKey sets the access key (or an intent token) sent as a bearer
// token.
func WithAccessKey(k string) Option { return func(o *options) { o.accessKey = k } }

// WithHTTPClient sets the HTTP client.
func WithHTTPClient(c *http.Client) Option { return func(o *options) { o.client = c } }

// WithTimeout limits each call, connecting included (default 30 s); a
// status long-poll gets its wait on top. A call past it fails with
// ErrNoAnswer.
func WithTimeout(d time.Duration) Option { return func(o *options) { o.timeout = d } }

// WithClock replaces time.Now when checking a token's exp and nbf, for
// tests whose emulator runs on a moved clock.
func WithClock(now func() time.Time) Option { return func(o *options) { o.now = now } }

// WithMinimalAnswers asks the cloud (Prefer: return=minimal, RFC 7240) to
// leave the QR image out of enrol and approval answers: their qrCode then
// carries only its URL, and the cloud renders no PNG nobody looks at. For
// load tests and scripts that use the app link.
func WithMinimalAnswers() Option { return func(o *options) { o.minimal = true } }

// WithVerbose logs each exchange to w; the access key is never printed.
func WithVerbose(w io.Writer) Option { return func(o *options) { o.verbose = w } }

// New returns a client for the cloud at baseURL.
func New(baseURL string, opts ...Option) *Client {
	o := options{audience: trustapi.DefaultClientID, refetch: DefaultJWKSRefetchInterval, now: time.Now}
	for _, opt := range opts {
		opt(&o)
	}
	hc := o.client
	if hc == nil {
		hc = httplimit.Client(o.timeout)
	}
	r := resty.NewWithClient(hc)
	header := http.Header{"User-Agent": {userAgent}, "Accept": {"application/json"}}
	r.SetHeader("User-Agent", userAgent)
	if o.minimal {
		r.SetHeader("Prefer", "return=minimal")
		header["Prefer"] = []string{"return=minimal"}
	}
	if o.accessKey != "" {
		r.SetAuthToken(o.accessKey)
		header["Authorization"] = []string{"Bearer " + o.accessKey}
	}
	if o.verbose != nil {
		w := o.verbose
		r.OnBeforeRequest(func(_ *resty.Client, req *resty.Request) error {
			fmt.Fprintf(w, "> %s %s (Authorization: [redacted])\n", req.Method, req.URL)
			return nil
		})
		r.OnAfterResponse(func(_ *resty.Client, resp *resty.Response) error {
			fmt.Fprintf(w, "< %d %s (%s)\n", resp.StatusCode(), resp.Request.URL, resp.Time().Round(time.Microsecond))
			return nil
		})
	}
	base := strings.TrimRight(baseURL, "/")
	if o.issuer == "" {
		o.issuer = base
	}
	direct := hc.Jar == nil && hc.Timeout == 0 && hc.CheckRedirect == nil
	return &Client{base: base, r: r, hc: hc, direct: direct, header: header, verbose: o.verbose, audience: o.audience, issuer: o.issuer, refetch: o.refetch, now: o.now}
}

// BaseURL is the cloud's base URL.
func (c *Client) BaseURL() string { return c.base }

// userAgent is what the client sends as User-Agent.
const userAgent = "authphone-backend/1"

// do sends one JSON call and decodes its answer into out; raw, if not nil,
// gets the answer's bytes. It goes through net/http directly: the headers
// are set in place, the answer read into a pooled buffer.
func (c *Client) do(ctx context.Context, method, path string, body any, out any, raw *[]byte) error {
	var b []byte
	if body != nil {
		var err error
		if b, err = json.Marshal(body); err != nil {
			return err
		}
	}
	u := c.base + path
	start := time.Now()
	if c.verbose != nil {
		fmt.Fprintf(c.verbose, "> %s %s (Authorization: [redacted])\n", method, u)
	}
	resp, err := c.send(ctx, method, u, b)
	if err != nil {
		return err
	}
	var ans []byte
	if n := resp.ContentLength; raw != nil && n > 0 && n <= 1<<20 {
		// The caller keeps the answer: read it where it stays.
		ans = make([]byte, n)
		if _, err = io.ReadFull(resp.Body, ans); err == nil {
			var more [1]byte
			if k, _ := resp.Body.Read(more[:]); k > 0 {
				err = errors.New("the answer is longer than its Content-Length")
			}
		}
		*raw = ans
	} else {
		buf := bufpool.Get()
		defer bufpool.Put(buf)
		_, err = buf.ReadFrom(resp.Body)
		ans = buf.Bytes()
		if raw != nil {
			*raw = bytes.Clone(ans)
		}
	}
	resp.Body.Close()
	if err != nil {
		return c.transportError(ctx, err)
	}
	if c.verbose != nil {
		fmt.Fprintf(c.verbose, "< %d %s (%s)\n", resp.StatusCode, u, time.Since(start).Round(time.Microsecond))
	}
	if resp.StatusCode > 399 {
		var eb cloudapi.ErrorBody
		if json.Unmarshal(ans, &eb) != nil || eb.Message == "" {
			eb = cloudapi.ErrorBody{Status: resp.StatusCode, Error: http.StatusText(resp.StatusCode), Message: strings.TrimSpace(string(ans))}
		}
		return &Error{Status: resp.StatusCode, Text: eb.Error, Message: eb.Message}
	}
	if out != nil {
		if err := decode(ans, out); err != nil {
			return fmt.Errorf("the cloud at %s answered %s with something unexpected: %w", c.base, path, err)
		}
	}
	return nil
}

// send sends one call. When the http.Client adds nothing to its transport
// (no cookie jar, time limit or redirect policy of its own) the request
// goes to the transport directly, as the client would send it; an answer
// that redirects is then handed to an http.Client, which follows it as it
// would have (the request is not sent twice).
func (c *Client) send(ctx context.Context, method, u string, b []byte) (*http.Response, error) {
	var rd io.Reader
	if b != nil {
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return nil, err
	}
	h := req.Header
	for k, v := range c.header {
		h[k] = v
	}
	if b != nil {
		h["Content-Type"] = jsonValue
	}
	if !c.direct || req.URL.User != nil {
		resp, err := c.hc.Do(req)
		if err != nil {
			return nil, c.transportError(ctx, err)
		}
		return resp, nil
	}
	rt := c.hc.Transport
	if rt == nil {
		rt = http.DefaultTransport
	}
	resp, err := rt.RoundTrip(req)
	if err != nil {
		op := method[:1] + strings.ToLower(method[1:])
		return nil, c.transportError(ctx, &url.Error{Op: op, URL: u, Err: err})
	}
	if isRedirect(resp) {
		// The client gets the answer already received as its first
		// exchange's, then follows the redirect on the transport.
		resp, err = (&http.Client{Transport: &answered{resp: resp, rt: rt}}).Do(req)
		if err != nil {
			return nil, c.transportError(ctx, err)
		}
	}
	return resp, nil
}

// answered is a transport whose first exchange is already done: it
// answers resp, then sends on rt.
type answered struct {
	resp *http.Response
	rt   http.RoundTripper
}

func (t *answered) RoundTrip(req *http.Request) (*http.Response, error) {
	if resp := t.resp; resp != nil {
		t.resp = nil
		if req.Body != nil {
			req.Body.Close()
		}
		resp.Request = req
		return resp, nil
	}
	return t.rt.RoundTrip(req)
}

// jsonValue is the Content-Type of a call's body (a shared header value,
// never changed in place).
var jsonValue = []string{"application/json"}

func isRedirect(resp *http.Response) bool {
	switch resp.StatusCode {
	case http.StatusMovedPermanently, http.StatusFound, http.StatusSeeOther, http.StatusTemporaryRedirect, http.StatusPermanentRedirect:
		return resp.Header.Get("Location") != ""
	}
	return false
}

// decode is json.Unmarshal(b, out) for a zero *out; the answers of
// enroll, approval and status are read by hand (cloudapi.DecodeUser, ...).
func decode(b []byte, out any) error {
	switch out := out.(type) {
	case *cloudapi.User:
		return cloudapi.DecodeUser(b, out)
	case *cloudapi.ApprovalResponse:
		return cloudapi.DecodeApprovalResponse(b, out)
	case *cloudapi.StatusResponse:
		return cloudapi.DecodeStatusResponse(b, out)
	}
	return json.Unmarshal(b, out)
}

// transportError explains a call that got no answer: ctx ended (its
// cause), the time limit passed (ErrNoAnswer), or the cloud could not be
// reached (ErrUnreachable).
func (c *Client) transportError(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	var le *httplimit.Error
	if errors.As(err, &le) {
		return fmt.Errorf("%w: %w", ErrNoAnswer, le)
	}
	return fmt.Errorf("%w at %s: %s; is the cloud (authphone emulator) running there?", ErrUnreachable, c.base, httplimit.Reason(err))
}

// Ping checks the cloud and the access key (GET /ping).
func (c *Client) Ping(ctx context.Context) error {
	return c.do(ctx, http.MethodGet, cloudapi.PathPing, nil, nil, nil)
}

// Enroll starts an enrolment (POST /api/v1/users/enroll); the answer holds
// the QR code and app link for the phone. raw, if not nil, gets the API's
// own JSON.
func (c *Client) Enroll(ctx context.Context, req cloudapi.EnrollRequest) (*cloudapi.User, []byte, error) {
	var out cloudapi.User
	var raw []byte
	if err := c.do(ctx, http.MethodPost, cloudapi.PathEnroll, req, &out, &raw); err != nil {
		return nil, nil, err
	}
	return &out, raw, nil
}

// Approve starts an approval (POST /api/v1/approval).
func (c *Client) Approve(ctx context.Context, req cloudapi.ApprovalRequest) (*cloudapi.ApprovalResponse, []byte, error) {
	var out cloudapi.ApprovalResponse
	var raw []byte
	if err := c.do(ctx, http.MethodPost, cloudapi.PathApproval, req, &out, &raw); err != nil {
		return nil, nil, err
	}
	return &out, raw, nil
}

// Status reads a transaction's status (POST /api/v1/status); with wait > 0
// the cloud holds the answer until the status leaves pending or wait ends.
func (c *Client) Status(ctx context.Context, statusToken string, wait time.Duration) (*cloudapi.StatusResponse, error) {
	path := cloudapi.PathStatus
	if wait > 0 {
		path += "?wait=" + url.QueryEscape(wait.String())
	}
	var out cloudapi.StatusResponse
	if err := c.do(ctx, http.MethodPost, path, cloudapi.StatusRequest{StatusToken: statusToken}, &out, nil); err != nil {
		return nil, err
	}
	return &out, nil
}

// WaitStatus long-polls until the transaction leaves pending, ctx ends, or
// timeout passes (0: no limit but ctx); it returns the last status read.
func (c *Client) WaitStatus(ctx context.Context, statusToken string, timeout time.Duration) (*cloudapi.StatusResponse, error) {
	var deadline time.Time
	if timeout > 0 {
		deadline = time.Now().Add(timeout)
	}
	for {
		wait := cloudapi.MaxWait
		if !deadline.IsZero() {
			wait = min(wait, time.Until(deadline))
		}
		if wait <= 0 {
			return c.Status(ctx, statusToken, 0)
		}
		st, err := c.Status(ctx, statusToken, wait)
		if err != nil || st.Status != cloudapi.StatusPending {
			return st, err
		}
		if !deadline.IsZero() && !time.Now().Before(deadline) {
			return st, nil
		}
	}
}

// Introspect asks about any token the cloud issued (RFC 7662).
func (c *Client) Introspect(ctx context.Context, token string) (*cloudapi.Introspection, error) {
	req := c.r.R().SetContext(ctx).SetFormData(map[string]string{"token": token})
	resp, err := req.Post(c.base + cloudapi.PathIntrospect)
	if err != nil {
		return nil, c.transportError(ctx, err)
	}
	if resp.IsError() {
		var eb cloudapi.ErrorBody
		_ = json.Unmarshal(resp.Body(), &eb)
		return nil, &Error{Status: resp.StatusCode(), Text: http.StatusText(resp.StatusCode()), Message: eb.Message}
	}
	var out cloudapi.Introspection
	if err := json.Unmarshal(resp.Body(), &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Intent makes a single-use token for one user and operation.
func (c *Client) Intent(ctx context.Context, req cloudapi.IntentRequest) (string, error) {
	var out cloudapi.IntentResponse
	if err := c.do(ctx, http.MethodPost, cloudapi.PathIntent, req, &out, nil); err != nil {
		return "", err
	}
	return out.Token, nil
}

// User finds a user by username.
func (c *Client) User(ctx context.Context, username string) (*cloudapi.User, error) {
	var out cloudapi.User
	if err := c.do(ctx, http.MethodGet, cloudapi.PathUsers+"?username="+url.QueryEscape(username), nil, &out, nil); err != nil {
		return nil, err
	}
	return &out, nil
}

// UserByID reads a user.
func (c *Client) UserByID(ctx context.Context, userID string) (*cloudapi.User, error) {
	var out cloudapi.User
	if err := c.do(ctx, http.MethodGet, cloudapi.PathUsers+"/"+url.PathEscape(userID), nil, &out, nil); err != nil {
		return nil, err
	}
	return &out, nil
}

// Users lists every user (ours).
func (c *Client) Users(ctx context.Context) ([]cloudapi.User, error) {
	var out cloudapi.UserList
	if err := c.do(ctx, http.MethodGet, cloudapi.PathUsers, nil, &out, nil); err != nil {
		return nil, err
	}
	return out.Users, nil
}

// RenameUser gives a user a username (PATCH /api/v1/users/{userId}, ours).
func (c *Client) RenameUser(ctx context.Context, userID, username string) (*cloudapi.User, error) {
	var out cloudapi.User
	if err := c.do(ctx, http.MethodPatch, cloudapi.PathUsers+"/"+url.PathEscape(userID), cloudapi.PatchUserRequest{Username: username}, &out, nil); err != nil {
		return nil, err
	}
	return &out, nil
}

// DeleteUser deletes a user and its authenticators.
func (c *Client) DeleteUser(ctx context.Context, userID string) error {
	return c.do(ctx, http.MethodDelete, cloudapi.PathUsers+"/"+url.PathEscape(userID), nil, nil, nil)
}

// DeleteAuthenticator removes one authenticator; its phone is told by a
// deregistration message.
func (c *Client) DeleteAuthenticator(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodDelete, cloudapi.PathAuthenticators+"/"+url.PathEscape(id), nil, nil, nil)
}
