package emulator_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/authphone/authphone/emulator"
	"github.com/authphone/authphone/internal/pgtest"
	"github.com/authphone/authphone/sdk/adminapi"
	"github.com/authphone/authphone/sdk/cloudapi"
	"github.com/authphone/authphone/sdk/deviceapi"
	"github.com/authphone/authphone/sdk/dispatch"
	"github.com/authphone/authphone/sdk/uaf"
)

// stores opens one fresh store of each kind.
var stores = map[string]func(t *testing.T) emulator.Store{
	"memory": func(t *testing.T) emulator.Store { return emulator.NewMemoryStore() },
	"sqlite": func(t *testing.T) emulator.Store {
		s, err := emulator.OpenSQLite(filepath.Join(t.TempDir(), "cloud.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	},
	"postgres": func(t *testing.T) emulator.Store {
		s, err := emulator.OpenPostgres(context.Background(), pgtest.DB(t))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	},
}

// login runs one pushed approval of d with counter and reports the HTTP
// status of the answer.
func (c *cloud) login(t *testing.T, d *device, username string, counter uint32) int {
	t.Helper()
	c.approve(cloudapi.ApprovalRequest{Username: username})
	msgs := c.inbox(d)
	if len(msgs) == 0 {
		t.Fatal("no push for the approval")
	}
	p, _ := dispatch.Decode([]byte(msgs[len(msgs)-1].Payload))
	var req uaf.AuthenticationRequest
	c.redeem(p, &req)
	code, _ := c.postUAF(deviceapi.PathAuthentication, d.authResponse(t, req, counter, ""))
	return code
}

func (c *cloud) export(secrets bool) []byte {
	c.t.Helper()
	path := adminapi.PathExport
	if secrets {
		path += "?includeSecrets=true"
	}
	var raw json.RawMessage
	if code := c.do("GET", path, backendAuth, nil, &raw); code != 200 {
		c.t.Fatalf("export: %d %s", code, raw)
	}
	return raw
}

// TestExportImportRoundTrip: a state exported from one emulator and
// imported into another, on every store, keeps the users, the phones'
// keys and counters: the same phone logs in, a replayed counter is still
// refused, and with the secrets the signing keys move too.
func TestExportImportRoundTrip(t *testing.T) {
	for name, open := range stores {
		t.Run(name, func(t *testing.T) {
			src := newCloud(t)
			d, h := newDevice(), newDevice()
			h.aaid = "F1D0#0003"
			src.enrolled(d, "alice")
			src.enrolled(h, "bob")
			for n := uint32(1); n <= 3; n++ {
				if code := src.login(t, d, "alice", n); code != 200 {
					t.Fatalf("login %d: %d", n, code)
				}
			}
			plain, full := src.export(false), src.export(true)
			var doc adminapi.Export
			if err := json.Unmarshal(plain, &doc); err != nil || doc.Secrets != nil || len(doc.Users) != 2 {
				t.Fatalf("export without secrets: %v %s", err, plain)
			}
			if bytes.Contains(plain, []byte("private")) || !bytes.Contains(full, []byte("private")) {
				t.Fatal("secrets are in the plain export, or missing from the full one")
			}

			dst := newCloud(t, emulator.WithStore(open(t)))
			var res adminapi.ImportResult
			if code := dst.do("POST", adminapi.PathImport, backendAuth, full, &res); code != 200 ||
				res != (adminapi.ImportResult{Users: 2, Authenticators: 2, SigningKeys: true}) {
				t.Fatalf("import: %d %+v", code, res)
			}
			if code := dst.login(t, d, "alice", 3); code == 200 {
				t.Fatal("the imported cloud took a counter that did not grow")
			}
			if code := dst.login(t, d, "alice", 4); code != 200 {
				t.Fatalf("the same phone after the import: %d", code)
			}
			if code := dst.login(t, h, "bob", 1); code != 200 {
				t.Fatalf("bob's phone after the import: %d", code)
			}
			var u cloudapi.User
			if dst.do("GET", cloudapi.PathUsers+"?username=alice", backendAuth, nil, &u); u.Status != cloudapi.UserActive || len(u.Authenticators) != 1 {
				t.Fatalf("alice after the import: %+v", u)
			}
			// The same signing keys: the JWKS names the same key ids.
			kids := func(c *cloud) []string {
				var set struct{ Keys []struct{ Kid string } }
				c.do("GET", "/.well-known/jwks.json", nil, nil, &set)
				var out []string
				for _, k := range set.Keys {
					out = append(out, k.Kid)
				}
				return out
			}
			if a, b := kids(src), kids(dst); !slices.Equal(a, b) || len(a) == 0 {
				t.Fatalf("signing keys %v, imported %v", a, b)
			}
			// Importing the same state again changes nothing but counters
			// (back to the export's), and re-exports alike.
			if code := dst.do("POST", adminapi.PathImport, backendAuth, plain, &res); code != 200 {
				t.Fatalf("second import: %d", code)
			}
			var again adminapi.Export
			_ = json.Unmarshal(dst.export(false), &again)
			doc.ExportedAt, again.ExportedAt = again.ExportedAt, doc.ExportedAt
			if a, b := mustJSON(doc.Users), mustJSON(again.Users); !bytes.Equal(a, b) {
				t.Fatalf("re-export differs:\n%s\n%s", a, b)
			}
			if !hasEvent(t, dst, func(e adminapi.Event) bool { return e.Type == adminapi.EventImported && e.Data["users"] == "2" }) {
				t.Fatal("no emulator.imported event")
			}
		})
	}
}

func TestImportRefusals(t *testing.T) {
	src := newCloud(t)
	d := newDevice()
	src.enrolled(d, "alice")
	good := src.export(false)

	dst := newCloud(t)
	other := newDevice()
	dst.enrolled(other, "alice") // another alice holds the name here
	before := dst.export(false)

	edit := func(f func(*adminapi.Export)) []byte {
		var doc adminapi.Export
		_ = json.Unmarshal(good, &doc)
		f(&doc)
		return mustJSON(doc)
	}
	for _, tc := range []struct {
		name string
		body []byte
		hdr  map[string]string
		code int
		want string
	}{
		{"no access key", good, nil, 401, "access key"},
		{"not JSON", []byte("{"), backendAuth, 400, "not an export document"},
		{"another version", edit(func(e *adminapi.Export) { e.Version = 9 }), backendAuth, 400, "version 9"},
		{"bad user id", edit(func(e *adminapi.Export) { e.Users[0].UserID = "x" }), backendAuth, 400, "users[0].userId"},
		{"bad key", edit(func(e *adminapi.Export) { e.Users[0].Authenticators[0].PublicKey = "AAAA" }), backendAuth, 400, "P-256"},
		{"bad AAID", edit(func(e *adminapi.Export) { e.Users[0].Authenticators[0].AAID = "PIN" }), backendAuth, 400, "aaid"},
		{"key twice", edit(func(e *adminapi.Export) {
			a := e.Users[0].Authenticators[0]
			a.AuthenticatorID = "6f1f0b1e-0000-4000-8000-000000000000"
			e.Users[0].Authenticators = append(e.Users[0].Authenticators, a)
		}), backendAuth, 400, "keyId"},
		{"name taken here", good, backendAuth, 409, "username alice belongs to another user"},
	} {
		var eb cloudapi.ErrorBody
		if code := dst.do("POST", adminapi.PathImport, tc.hdr, tc.body, &eb); code != tc.code || eb.Status != tc.code || !strings.Contains(eb.Message, tc.want) {
			t.Errorf("%s: %d %+v, want %d %q", tc.name, code, eb, tc.code, tc.want)
		}
	}
	big := append([]byte(`{"version":1,"users":[],"pad":"`), bytes.Repeat([]byte("x"), adminapi.MaxImport)...)
	if code := dst.do("POST", adminapi.PathImport, backendAuth, append(big, `"}`...), nil); code != 413 {
		t.Errorf("too large: %d", code)
	}
	if after := dst.export(false); !bytes.Equal(stripTime(t, before), stripTime(t, after)) {
		t.Fatalf("a refused import changed the state:\n%s\n%s", before, after)
	}
	var eb cloudapi.ErrorBody
	if code := dst.do("GET", adminapi.PathExport+"?includeSecrets=maybe", backendAuth, nil, &eb); code != 400 || !strings.Contains(eb.Message, "includeSecrets") {
		t.Errorf("includeSecrets=maybe: %d %+v", code, eb)
	}
}

func stripTime(t *testing.T, b []byte) []byte {
	var doc adminapi.Export
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	return mustJSON(doc.Users)
}

// FuzzImport: any document given to the import (a --seed file, a POST) is
// taken whole or refused with ErrBadImport, never a panic; a taken one
// exports as it was imported.
func FuzzImport(f *testing.F) {
	f.Add([]byte(`{"version":1,"users":[{"userId":"6f1f0b1e-0000-4000-8000-000000000001","username":"alice","active":true,"authenticators":[]}]}`))
	f.Add([]byte(`{"version":1,"users":[{"userId":"6f1f0b1e-0000-4000-8000-000000000001","authenticators":[{"authenticatorId":"6f1f0b1e-0000-4000-8000-000000000002","keyId":"AAAA","aaid":"F1D0#0001","publicKey":"BAAA"}]}]}`))
	f.Add([]byte(`{"version":1,"users":[],"secrets":{"signingKeys":{"secret":"","keys":[]}}}`))
	f.Add([]byte(`{"version":2}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := emulator.New(emulator.WithAccessKey("k"))
		if err != nil {
			t.Fatal(err)
		}
		res, err := s.ImportJSON(context.Background(), data)
		if err != nil {
			if !errors.Is(err, emulator.ErrBadImport) {
				t.Fatalf("refused without ErrBadImport: %v", err)
			}
			return
		}
		doc, err := s.Export(context.Background(), false)
		if err != nil || len(doc.Users) != res.Users {
			t.Fatalf("imported %+v, exported %d users (%v)", res, len(doc.Users), err)
		}
	})
}

// TestExportResetImport: on every store, export, reset, import, and the
// same phone still logs in (its counter kept growing).
func TestExportResetImport(t *testing.T) {
	for name, open := range stores {
		t.Run(name, func(t *testing.T) {
			c := newCloud(t, emulator.WithStore(open(t)))
			d := newDevice()
			c.enrolled(d, "alice")
			if code := c.login(t, d, "alice", 1); code != 200 {
				t.Fatalf("login: %d", code)
			}
			state := c.export(false)
			if err := c.srv.Reset(context.Background()); err != nil {
				t.Fatal(err)
			}
			if code := c.do("GET", cloudapi.PathUsers+"?username=alice", backendAuth, nil, nil); code != 404 {
				t.Fatalf("alice after the reset: %d", code)
			}
			if _, err := c.srv.ImportJSON(context.Background(), state); err != nil {
				t.Fatal(err)
			}
			if code := c.login(t, d, "alice", 1); code == 200 {
				t.Fatal("the counter was not kept")
			}
			if code := c.login(t, d, "alice", 2); code != 200 {
				t.Fatalf("the same phone after export, reset, import: %d", code)
			}
		})
	}
}
