package backend

import (
	"context"
	"net/http"

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
