package emulator

// The web console (ours) at /console: users with their authenticators,
// pending operations with their QR codes and transaction text, the live
// event log (the SSE stream), and buttons a tester needs (expire an
// operation, remove an authenticator, reset). Served from embedded files,
// html/template and a little plain JavaScript; no build step.
//
// Sign-in: a form posts the access key; the answer sets an HttpOnly,
// SameSite=Strict cookie holding its expiry and an HMAC of the access key
// and that expiry (not the key), which the admin API, the user list and
// authenticator removal accept in place of the bearer token. A session
// lasts ConsoleSessionTTL on the emulator's clock (WithClock,
// AdvanceClock): the cookie's Max-Age says so to the browser, and the
// server refuses an expired cookie whatever the browser does, so the
// console asks to sign in again. A cookie-authenticated change (any method but
// GET) must also carry X-Authphone-Console: 1, which a cross-site form
// cannot send. Every page has a Content-Security-Policy allowing only the
// console's own script and styles, and the script puts every value into
// the page as text, so usernames, transaction texts and refused paths
// cannot inject markup.

import (
	"crypto/hmac"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

//go:embed console
var consoleFiles embed.FS

var consolePages = template.Must(template.ParseFS(consoleFiles, "console/*.html"))

// consoleCookie is the console's session cookie.
const consoleCookie = "authphone_console"

// consoleHeader marks a change made by the console's script.
const consoleHeader = "X-Authphone-Console"

// ConsoleSessionTTL is how long a console sign-in lasts.
const ConsoleSessionTTL = 12 * time.Hour

// consoleSession is the cookie value for a session of the access key that
// ends at expires: "v2.<unix seconds>.<HMAC of both>".
func (s *Server) consoleSession(expires time.Time) string {
	exp := strconv.FormatInt(expires.Unix(), 10)
	m := hmac.New(sha256.New, []byte(s.cfg.accessKey))
	m.Write([]byte("authphone console session v2\x00" + exp))
	return "v2." + exp + "." + hex.EncodeToString(m.Sum(nil))
}

// Console session states of a request.
const (
	consoleNone    = iota // no cookie, or one this emulator did not sign
	consoleExpired        // a genuine cookie past its expiry
	consoleValid
)

// consoleState reads the console's cookie of r.
func (s *Server) consoleState(r *http.Request) int {
	c, err := r.Cookie(consoleCookie)
	if err != nil {
		return consoleNone
	}
	v, ok := strings.CutPrefix(c.Value, "v2.")
	exp, _, ok2 := strings.Cut(v, ".")
	n, err := strconv.ParseInt(exp, 10, 64)
	if !ok || !ok2 || err != nil {
		return consoleNone
	}
	expires := time.Unix(n, 0)
	if !hmac.Equal([]byte(c.Value), []byte(s.consoleSession(expires))) {
		return consoleNone
	}
	if !s.now().Before(expires) {
		return consoleExpired
	}
	return consoleValid
}

// consoleSignedIn reports whether r carries a valid console cookie.
func (s *Server) consoleSignedIn(r *http.Request) bool { return s.consoleState(r) == consoleValid }

// adminAuth requires the access key, or the console's cookie (with the
// console's header on a change).
func (s *Server) adminAuth(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if s.isAccessKey(r) {
			next(w, r)
			return
		}
		if s.consoleSignedIn(r) {
			if r.Method != http.MethodGet && r.Method != http.MethodHead && r.Header.Get(consoleHeader) != "1" {
				writeError(w, http.StatusForbidden, "a change from the console needs the "+consoleHeader+" header; use the console's buttons")
				return
			}
			next(w, r)
			return
		}
		if s.consoleState(r) == consoleExpired {
			writeError(w, http.StatusUnauthorized, "the console session expired: sign in again at /console")
			return
		}
		writeError(w, http.StatusUnauthorized, "missing or wrong access key: send Authorization: Bearer <access key>, or sign in at /console")
	}
}

func securePage(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
}

func (s *Server) page(w http.ResponseWriter, status int, name string, data any) {
	securePage(w)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	if err := consolePages.ExecuteTemplate(w, name, data); err != nil {
		s.cfg.logger.Error("console page", "page", name, "err", err)
	}
}

func (s *Server) handleConsole(w http.ResponseWriter, r *http.Request) {
	switch s.consoleState(r) {
	case consoleNone:
		s.page(w, http.StatusOK, "login.html", map[string]string{})
		return
	case consoleExpired:
		s.page(w, http.StatusOK, "login.html", map[string]string{
			"Error": "Your console session expired (a sign-in lasts " + ConsoleSessionTTL.String() + "): sign in again."})
		return
	}
	s.page(w, http.StatusOK, "console.html", map[string]string{"Base": s.base(r)})
}

func (s *Server) handleConsoleLogin(w http.ResponseWriter, r *http.Request) {
	body, err := readBody(w, r)
	if err != nil {
		s.page(w, http.StatusBadRequest, "login.html", map[string]string{"Error": err.Error()})
		return
	}
	form, err := url.ParseQuery(string(body))
	key := strings.TrimSpace(form.Get("accessKey"))
	if err != nil || key == "" || !hmac.Equal([]byte(key), []byte(s.cfg.accessKey)) {
		s.page(w, http.StatusUnauthorized, "login.html", map[string]string{
			"Error": "That is not this emulator's access key. It is printed when the emulator starts (AUTHPHONE_ACCESS_KEY)."})
		return
	}
	http.SetCookie(w, &http.Cookie{Name: consoleCookie, Value: s.consoleSession(s.now().Add(ConsoleSessionTTL)), Path: "/",
		MaxAge: int(ConsoleSessionTTL / time.Second), HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: strings.HasPrefix(s.base(r), "https://")})
	http.Redirect(w, r, "/console", http.StatusSeeOther)
}

func (s *Server) handleConsoleLogout(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{Name: consoleCookie, Value: "", Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode, MaxAge: -1})
	http.Redirect(w, r, "/console", http.StatusSeeOther)
}

func (s *Server) consoleStatic() http.Handler {
	sub, _ := fs.Sub(consoleFiles, "console")
	files := http.StripPrefix("/console/static/", http.FileServer(http.FS(sub)))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, ".html") {
			writeError(w, http.StatusNotFound, "no such file: "+r.URL.Path)
			return
		}
		securePage(w)
		files.ServeHTTP(w, r)
	})
}

func (s *Server) consoleRoutes() {
	s.mux.HandleFunc("GET /console", s.handleConsole)
	s.mux.HandleFunc("POST /console/login", s.handleConsoleLogin)
	s.mux.HandleFunc("POST /console/logout", s.handleConsoleLogout)
	s.mux.Handle("GET /console/static/", s.consoleStatic())
	// Browsers ask for it with every page: no icon, and no refusal logged.
	s.mux.HandleFunc("GET /favicon.ico", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) })
}
