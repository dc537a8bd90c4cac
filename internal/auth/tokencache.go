package auth

import (
	"crypto/sha256"
	"sync"
	"time"
)

// Verified tokens are remembered, keyed by a hash of the token (never the token itself), so a
// client's next request skips parsing and the signature check. An entry is used only for the
// same tenant, issuer and audience, until tokenCacheMargin before the token's exp, and while the
// tenant's key set is within its max age and still holds the key that signed it: a key the
// issuer drops stops verifying cached tokens as soon as the key set is refreshed, and a set past
// its max age sends the token back to full verification, which refreshes the set.
const (
	tokenCacheMargin = 30 * time.Second
	// maxCachedTokens bounds the cache; it is emptied when full.
	maxCachedTokens = 100000
)

type cachedToken struct {
	key        issuerKey
	identity   string // identityKey of the tenant's identity configuration when verified
	kid        string
	principal  Principal
	validUntil time.Time
	keys       *keySet
}

// tokenCache maps token hashes to verified principals.
type tokenCache struct {
	mu      sync.RWMutex
	entries map[[sha256.Size]byte]cachedToken
}

func newTokenCache() *tokenCache {
	return &tokenCache{entries: make(map[[sha256.Size]byte]cachedToken)}
}

// get returns the principal of the token with hash h if it was verified for key and the
// identity configuration identified by identity, and can still be trusted at now.
func (c *tokenCache) get(h [sha256.Size]byte, key issuerKey, identity string, now time.Time) (Principal, bool) {
	c.mu.RLock()
	e, ok := c.entries[h]
	c.mu.RUnlock()
	if !ok || e.key != key || e.identity != identity || !now.Before(e.validUntil) || !e.keys.has(e.kid) {
		return Principal{}, false
	}
	return e.principal, true
}

// put remembers a verified token.
func (c *tokenCache) put(h [sha256.Size]byte, e cachedToken) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.entries) >= maxCachedTokens {
		clear(c.entries)
	}
	c.entries[h] = e
}
