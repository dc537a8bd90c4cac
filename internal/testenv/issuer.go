package testenv

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"testing"
	"time"

	"github.com/supportchat/supportchat/internal/devissuer"
	"github.com/supportchat/supportchat/internal/tenant"
)

// Issuer is a local OpenID Connect issuer (devissuer) with helpers that craft good and bad
// tokens for tests.
type Issuer struct {
	*devissuer.Issuer
	audience   string
	adminClaim string
	adminValue string
}

// nameClaim is the claim that carries display names in the test issuers' tokens.
const nameClaim = "name"

// NewIssuer starts an issuer whose tokens have audience and, for admins, adminValue in an array
// at adminClaim (a claim name or dotted path such as realm_access.roles). It is closed when the
// test ends.
func NewIssuer(tb testing.TB, audience, adminClaim, adminValue string) *Issuer {
	tb.Helper()
	iss, err := devissuer.New(devissuer.Options{
		Audience:   audience,
		AdminClaim: adminClaim,
		AdminValue: adminValue,
		NameClaim:  nameClaim,
	})
	if err != nil {
		tb.Fatalf("testenv: start issuer: %v", err)
	}
	tb.Cleanup(func() {
		if err := iss.Close(); err != nil {
			tb.Errorf("testenv: close issuer: %v", err)
		}
	})
	return &Issuer{Issuer: iss, audience: audience, adminClaim: adminClaim, adminValue: adminValue}
}

// OIDC returns the settings of a tenant that trusts this issuer.
func (iss *Issuer) OIDC() tenant.OIDC {
	return tenant.OIDC{
		Issuer:      iss.URL(),
		Audience:    iss.audience,
		AdminClaim:  iss.adminClaim,
		AdminValues: []string{iss.adminValue},
		NameClaim:   nameClaim,
	}
}

// Token returns a valid RS256 token for sub, an admin or a customer, valid for an hour.
func (iss *Issuer) Token(tb testing.TB, sub string, admin bool) string {
	tb.Helper()
	token, err := iss.Mint(sub, "", admin, time.Hour)
	if err != nil {
		tb.Fatalf("testenv: mint token: %v", err)
	}
	return token
}

// TokenWith returns a token signed with alg (RS256 or ES256) by the issuer's current key. Its
// claims are those of a valid customer token for sub "user-1", changed by mutate if not nil.
func (iss *Issuer) TokenWith(tb testing.TB, alg string, mutate func(claims map[string]any)) string {
	tb.Helper()
	claims := iss.Claims("user-1", "", false, time.Hour)
	if mutate != nil {
		mutate(claims)
	}
	token, err := iss.Sign(alg, claims)
	if err != nil {
		tb.Fatalf("testenv: sign token: %v", err)
	}
	return token
}

// HS256 returns claims signed with HMAC-SHA256, as in the algorithm confusion attack: the kid
// is the issuer's RS256 key and the secret is that public key's JWK.
func (iss *Issuer) HS256(tb testing.TB, claims map[string]any) string {
	tb.Helper()
	kid := iss.KeyID("RS256")
	var secret []byte
	for _, k := range iss.JWKS().Keys {
		if k.KeyID == kid {
			b, err := json.Marshal(k)
			if err != nil {
				tb.Fatalf("testenv: marshal key: %v", err)
			}
			secret = b
		}
	}
	header := map[string]any{"alg": "HS256", "typ": "JWT", "kid": kid}
	return compactJWS(tb, header, claims, func(input []byte) []byte {
		mac := hmac.New(sha256.New, secret)
		mac.Write(input)
		return mac.Sum(nil)
	})
}

// None returns claims in an unsigned token (alg "none", empty signature).
func (iss *Issuer) None(tb testing.TB, claims map[string]any) string {
	tb.Helper()
	header := map[string]any{"alg": "none", "typ": "JWT"}
	return compactJWS(tb, header, claims, func([]byte) []byte { return nil })
}

// SignWithUnknownKey returns claims signed with RS256 by a fresh key that is not in the JWKS,
// under the kid of the issuer's current RS256 key.
func (iss *Issuer) SignWithUnknownKey(tb testing.TB, claims map[string]any) string {
	tb.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		tb.Fatalf("testenv: generate key: %v", err)
	}
	token, err := devissuer.SignJWT("RS256", iss.KeyID("RS256"), key, claims)
	if err != nil {
		tb.Fatalf("testenv: sign token: %v", err)
	}
	return token
}

// SignWithUnknownKid returns claims signed with RS256 by a fresh key that is not in the JWKS,
// under a key id the issuer never published (the verifier may refetch the JWKS for it).
func (iss *Issuer) SignWithUnknownKid(tb testing.TB, claims map[string]any) string {
	tb.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		tb.Fatalf("testenv: generate key: %v", err)
	}
	token, err := devissuer.SignJWT("RS256", "never-published-"+iss.KeyID("RS256"), key, claims)
	if err != nil {
		tb.Fatalf("testenv: sign token: %v", err)
	}
	return token
}

// compactJWS builds header.payload.signature by hand, for tokens go-jose refuses to sign.
func compactJWS(tb testing.TB, header, claims map[string]any, sign func(signingInput []byte) []byte) string {
	tb.Helper()
	h, err := json.Marshal(header)
	if err != nil {
		tb.Fatalf("testenv: marshal header: %v", err)
	}
	c, err := json.Marshal(claims)
	if err != nil {
		tb.Fatalf("testenv: marshal claims: %v", err)
	}
	enc := base64.RawURLEncoding
	input := enc.EncodeToString(h) + "." + enc.EncodeToString(c)
	return input + "." + enc.EncodeToString(sign([]byte(input)))
}
