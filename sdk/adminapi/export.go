package adminapi

import (
	"encoding/json"
	"time"
)

// Paths of export and import (access key).
const (
	// PathExport answers the emulator's users, authenticators and counters
	// as an Export (GET; ?includeSecrets=true adds Secrets).
	PathExport = "/api/v1/admin/export"
	// PathImport takes an Export (POST) and answers an ImportResult.
	PathImport = "/api/v1/admin/import"
)

// ExportVersion is the version of the Export document this code writes and
// reads.
const ExportVersion = 1

// MaxImport is the largest Export the import accepts, in bytes (the rest of
// the API takes at most 64 KiB; a state with many users is larger).
const MaxImport = 16 << 20

// Export is a known state of the emulator: users, their active
// authenticators (public keys) and sign counters, so that the same phones
// keep working after an import. Pending operations, inbox messages and
// tokens are not part of it. Secrets (the signing keys) only on request.
type Export struct {
	Version    int            `json:"version"`
	ExportedAt time.Time      `json:"exportedAt"`
	Users      []ExportedUser `json:"users"`
	Secrets    *Secrets       `json:"secrets,omitempty"`
}

// ExportedUser is one user and its authenticators.
type ExportedUser struct {
	UserID    string    `json:"userId"`
	Username  string    `json:"username,omitempty"` // empty: a headless account's user
	Active    bool      `json:"active"`
	CreatedAt time.Time `json:"createdAt"`
	UpdatedAt time.Time `json:"updatedAt"`
	// LastLoginSuccess and LastLoginFailure are the user's last approval
	// that succeeded and that failed (absent: never).
	LastLoginSuccess time.Time               `json:"lastLoginSuccess,omitzero"`
	LastLoginFailure time.Time               `json:"lastLoginFailure,omitzero"`
	Authenticators   []ExportedAuthenticator `json:"authenticators"`
}

// ExportedAuthenticator is one registered device key.
type ExportedAuthenticator struct {
	AuthenticatorID string `json:"authenticatorId"`
	KeyID           string `json:"keyId"`
	AAID            string `json:"aaid"`
	// PublicKey is the base64url (no padding) uncompressed P-256 point,
	// 0x04 || X || Y.
	PublicKey   string    `json:"publicKey"`
	SignCounter uint32    `json:"signCounter"`
	Name        string    `json:"name,omitempty"`
	DeviceID    string    `json:"deviceId,omitempty"`
	Type        string    `json:"type,omitempty"`
	CreatedAt   time.Time `json:"createdAt"`
}

// Secrets are what lets an imported emulator verify what the exported one
// signed: its token signing keys and status-token secret (private keys, in
// the clear: keep the file like a key).
type Secrets struct {
	SigningKeys json.RawMessage `json:"signingKeys"`
}

// ImportResult answers an import: how many users and authenticators it
// wrote, and whether it took the signing keys.
type ImportResult struct {
	Users          int  `json:"users"`
	Authenticators int  `json:"authenticators"`
	SigningKeys    bool `json:"signingKeys"`
}

// EventImported is logged when a state is imported.
const EventImported = "emulator.imported"
