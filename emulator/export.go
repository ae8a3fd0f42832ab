package emulator

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"regexp"
	"strconv"

	"github.com/authphone/authphone/sdk/adminapi"
	"github.com/authphone/authphone/sdk/cloudapi"
	"github.com/authphone/authphone/sdk/uaf"
	"github.com/google/uuid"
)

// Export reads the emulator's users, their active authenticators and their
// sign counters (and, with includeSecrets, its signing keys) in one
// consistent view of the store.
func (s *Server) Export(ctx context.Context, includeSecrets bool) (*adminapi.Export, error) {
	out := &adminapi.Export{Version: adminapi.ExportVersion, ExportedAt: s.now(), Users: []adminapi.ExportedUser{}}
	err := s.store.View(ctx, func(st Tx) error {
		out.Users = out.Users[:0]
		users, err := st.Users()
		if err != nil {
			return err
		}
		for _, u := range users {
			as, err := activeAuthenticators(st, u.ID)
			if err != nil {
				return err
			}
			eu := adminapi.ExportedUser{UserID: u.ID, Username: u.Username, Active: u.Activated, CreatedAt: u.CreatedAt,
				UpdatedAt: u.UpdatedAt, LastLoginSuccess: u.LastLoginSuccess, LastLoginFailure: u.LastLoginFailure,
				Authenticators: []adminapi.ExportedAuthenticator{}}
			for _, a := range as {
				pub, err := a.PublicKey.Bytes()
				if err != nil {
					return fmt.Errorf("authenticator %s: %w", a.ID, err)
				}
				eu.Authenticators = append(eu.Authenticators, adminapi.ExportedAuthenticator{AuthenticatorID: a.ID, KeyID: a.KeyID,
					AAID: a.AAID, PublicKey: uaf.B64.EncodeToString(pub), SignCounter: a.SignCounter, Name: a.Name,
					DeviceID: a.DeviceID, Type: a.Type, CreatedAt: a.CreatedAt})
			}
			out.Users = append(out.Users, eu)
		}
		if !includeSecrets {
			return nil
		}
		doc, err := st.Meta(metaIssuer)
		if err != nil {
			return err
		}
		out.Secrets = &adminapi.Secrets{SigningKeys: doc}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

var aaidRE = regexp.MustCompile(`^[0-9A-Fa-f]{4}#[0-9A-Fa-f]{4}$`)

// ErrBadImport marks an Export the import refuses as malformed.
var ErrBadImport = errors.New("the state to import is not valid")

// checkExport checks a document on its own (not against the store) and
// returns its authenticators' keys.
func checkExport(doc *adminapi.Export) (map[string]*ecdsa.PublicKey, error) {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", ErrBadImport, fmt.Sprintf(format, a...))
	}
	if doc.Version != adminapi.ExportVersion {
		return nil, bad("version %d is not %d; export it again with this authphone", doc.Version, adminapi.ExportVersion)
	}
	keys := map[string]*ecdsa.PublicKey{}
	seen := map[string]string{} // ids, usernames and keyIDs already in the document
	once := func(kind, v, where string) error {
		if prev, ok := seen[kind+"/"+v]; ok {
			return bad("%s %s appears twice (%s and %s)", kind, v, prev, where)
		}
		seen[kind+"/"+v] = where
		return nil
	}
	for i, u := range doc.Users {
		where := "users[" + strconv.Itoa(i) + "]"
		if _, err := uuid.Parse(u.UserID); err != nil {
			return nil, bad("%s.userId %q is not a UUID", where, u.UserID)
		}
		if err := once("userId", u.UserID, where); err != nil {
			return nil, err
		}
		if u.Username != "" {
			if cloudapi.ValidateUsername(u.Username) != nil {
				return nil, bad("%s.username: %s", where, cloudapi.UsernameRule)
			}
			if err := once("username", u.Username, where); err != nil {
				return nil, err
			}
		}
		if len(u.Authenticators) > cloudapi.MaxAuthenticators {
			return nil, bad("%s has %d authenticators; a user may have at most %d", where, len(u.Authenticators), cloudapi.MaxAuthenticators)
		}
		for j, a := range u.Authenticators {
			aw := where + ".authenticators[" + strconv.Itoa(j) + "]"
			if _, err := uuid.Parse(a.AuthenticatorID); err != nil {
				return nil, bad("%s.authenticatorId %q is not a UUID", aw, a.AuthenticatorID)
			}
			if id, err := uaf.B64.DecodeString(a.KeyID); err != nil || len(id) == 0 {
				return nil, bad("%s.keyId is not base64url", aw)
			}
			if !aaidRE.MatchString(a.AAID) {
				return nil, bad("%s.aaid %q is not an AAID such as F1D0#0001", aw, a.AAID)
			}
			raw, err := uaf.B64.DecodeString(a.PublicKey)
			if err != nil {
				return nil, bad("%s.publicKey is not base64url", aw)
			}
			k, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), raw)
			if err != nil {
				return nil, bad("%s.publicKey is not an uncompressed P-256 point (0x04||X||Y)", aw)
			}
			for _, kv := range [][2]string{{"authenticatorId", a.AuthenticatorID}, {"keyId", a.KeyID}} {
				if err := once(kv[0], kv[1], aw); err != nil {
					return nil, err
				}
			}
			keys[a.AuthenticatorID] = k
		}
	}
	if doc.Secrets != nil {
		if _, err := issuerFromDoc(doc.Secrets.SigningKeys); err != nil {
			return nil, bad("secrets.signingKeys: %v", err)
		}
	}
	return keys, nil
}

// Import writes a state Export made (here or on another emulator, any
// store) in one transaction: all of it or, if anything conflicts, nothing.
// Users and authenticators are matched by id and replaced, so importing
// the same state twice changes nothing; a username or keyID that belongs
// to another user or authenticator is a conflict. With Secrets the signing
// keys are taken too (every replica reloads them).
func (s *Server) Import(ctx context.Context, doc *adminapi.Export) (adminapi.ImportResult, error) {
	keys, err := checkExport(doc)
	if err != nil {
		return adminapi.ImportResult{}, errf(http.StatusBadRequest, "%v", err)
	}
	var res adminapi.ImportResult
	err = s.store.Update(ctx, func(st Tx) error {
		res = adminapi.ImportResult{}
		for _, eu := range doc.Users {
			if eu.Username != "" {
				other, err := st.UserByName(eu.Username)
				if err != nil {
					return err
				}
				if other != nil && other.ID != eu.UserID {
					return errf(http.StatusConflict, "username %s belongs to another user (%s) here; delete it first or reset", eu.Username, other.ID)
				}
			}
			if err := st.PutUser(&User{ID: eu.UserID, Username: eu.Username, CreatedAt: eu.CreatedAt, UpdatedAt: eu.UpdatedAt,
				Activated: eu.Active, LastLoginSuccess: eu.LastLoginSuccess, LastLoginFailure: eu.LastLoginFailure}); err != nil {
				return err
			}
			res.Users++
			for _, ea := range eu.Authenticators {
				if prev, err := st.Authenticator(ea.AuthenticatorID); err != nil {
					return err
				} else if prev != nil && prev.UserID != eu.UserID {
					return errf(http.StatusConflict, "authenticator %s belongs to another user (%s) here; reset first", ea.AuthenticatorID, prev.UserID)
				}
				if prev, err := st.AuthenticatorByKeyID(ea.KeyID); err != nil {
					return err
				} else if prev != nil && prev.ID != ea.AuthenticatorID {
					return errf(http.StatusConflict, "keyId of authenticator %s is registered here as authenticator %s; reset first", ea.AuthenticatorID, prev.ID)
				}
				if err := st.PutAuthenticator(&Authenticator{ID: ea.AuthenticatorID, UserID: eu.UserID, KeyID: ea.KeyID, AAID: ea.AAID,
					PublicKey: keys[ea.AuthenticatorID], SignCounter: ea.SignCounter, Name: ea.Name, DeviceID: ea.DeviceID,
					Type: ea.Type, CreatedAt: ea.CreatedAt}); err != nil {
					return err
				}
				res.Authenticators++
			}
		}
		if doc.Secrets != nil {
			if err := st.PutMeta(metaIssuer, doc.Secrets.SigningKeys); err != nil {
				return err
			}
			st.Wake(issuerWaitKey)
			res.SigningKeys = true
		}
		return s.emit(st, adminapi.Event{Type: adminapi.EventImported, Data: map[string]string{
			"users": strconv.Itoa(res.Users), "authenticators": strconv.Itoa(res.Authenticators), "signingKeys": strconv.FormatBool(res.SigningKeys)}})
	})
	return res, err
}

// ImportJSON reads an Export document (a --seed file) and imports it.
func (s *Server) ImportJSON(ctx context.Context, b []byte) (adminapi.ImportResult, error) {
	var doc adminapi.Export
	if err := json.Unmarshal(b, &doc); err != nil {
		return adminapi.ImportResult{}, fmt.Errorf("%w: not an export document (%v)", ErrBadImport, err)
	}
	res, err := s.Import(ctx, &doc)
	var ae *apiError
	if errors.As(err, &ae) {
		err = fmt.Errorf("%w: %s", ErrBadImport, ae.msg)
	}
	return res, err
}

func (s *Server) handleExport(w http.ResponseWriter, r *http.Request) {
	secrets := false
	if v := r.URL.Query().Get("includeSecrets"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			s.fail(w, r, errf(http.StatusBadRequest, "includeSecrets=%q is not true or false", v))
			return
		}
		secrets = b
	}
	doc, err := s.Export(r.Context(), secrets)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	w.Header().Set("Cache-Control", "no-store") // it may hold private keys
	writeJSON(w, http.StatusOK, doc)
}

func (s *Server) handleImport(w http.ResponseWriter, r *http.Request) {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		if mt, _, _ := mime.ParseMediaType(ct); mt != "application/json" {
			s.fail(w, r, errf(http.StatusUnsupportedMediaType, "content type %q is not supported; send application/json", ct))
			return
		}
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, adminapi.MaxImport))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			s.fail(w, r, errf(http.StatusRequestEntityTooLarge, "the state to import is over %d bytes", adminapi.MaxImport))
			return
		}
		s.fail(w, r, errf(http.StatusBadRequest, "read request body: %v", err))
		return
	}
	var doc adminapi.Export
	if err := json.Unmarshal(body, &doc); err != nil {
		s.fail(w, r, errf(http.StatusBadRequest, "request body is not an export document: %v", err))
		return
	}
	res, err := s.Import(r.Context(), &doc)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}
