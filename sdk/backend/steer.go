package backend

import (
	"context"
	"net/http"

	"github.com/authphone/authphone/sdk/adminapi"
	"github.com/authphone/authphone/sdk/cloudapi"
)

// Chaos reads the emulator's chaos in force (GET /api/v1/admin/chaos, ours).
func (c *Client) Chaos(ctx context.Context) (cloudapi.Chaos, error) {
	var out cloudapi.Chaos
	err := c.do(ctx, http.MethodGet, cloudapi.PathAdminChaos, nil, &out, nil)
	return out, err
}

// SetChaos changes the emulator's chaos (PUT /api/v1/admin/chaos, ours);
// the zero Chaos switches it off. It returns the chaos now in force.
func (c *Client) SetChaos(ctx context.Context, ch cloudapi.Chaos) (cloudapi.Chaos, error) {
	var out cloudapi.Chaos
	err := c.do(ctx, http.MethodPut, cloudapi.PathAdminChaos, ch, &out, nil)
	return out, err
}

// Export reads the emulator's users, authenticators and counters (GET
// /api/v1/admin/export, ours); includeSecrets adds its signing keys. raw,
// if not nil, gets the document as the emulator sent it.
func (c *Client) Export(ctx context.Context, includeSecrets bool, raw *[]byte) (*adminapi.Export, error) {
	path := adminapi.PathExport
	if includeSecrets {
		path += "?includeSecrets=true"
	}
	var out adminapi.Export
	if err := c.do(ctx, http.MethodGet, path, nil, &out, raw); err != nil {
		return nil, err
	}
	return &out, nil
}

// Import writes an exported state into the emulator (POST
// /api/v1/admin/import, ours): all of it, or nothing if anything conflicts.
// doc is an *adminapi.Export or the JSON document itself (json.RawMessage).
func (c *Client) Import(ctx context.Context, doc any) (*adminapi.ImportResult, error) {
	var out adminapi.ImportResult
	if err := c.do(ctx, http.MethodPost, adminapi.PathImport, doc, &out, nil); err != nil {
		return nil, err
	}
	return &out, nil
}
