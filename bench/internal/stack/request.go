package stack

import (
	"context"
	"fmt"
	"io"
	"net/http"
)

// Request sends a request of method to url as the caller of token in the bench's tenant, and
// returns the body of an answer with status want (an error names any other).
func Request(ctx context.Context, method, url, token string, want int) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("X-Tenant-ID", TenantID)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != want {
		return nil, fmt.Errorf("%s %s: %d %.300s", method, url, resp.StatusCode, body)
	}
	return body, nil
}
