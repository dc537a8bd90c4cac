package auth_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/supportchat/supportchat/internal/auth"
	"github.com/supportchat/supportchat/internal/devissuer"
	"github.com/supportchat/supportchat/internal/testenv"
)

// wantAuthenticate checks the outcome of v.Authenticate: nil when want is nil, otherwise an
// error wrapping want.
func wantAuthenticate(t *testing.T, v *auth.Verifier, f *frontIssuer, token string, want error) {
	t.Helper()
	_, err := v.Authenticate(t.Context(), f.tenant("shop"), token)
	if !errors.Is(err, want) {
		t.Fatalf("Authenticate() error = %v, want %v", err, want)
	}
}

// eventually polls cond in real time until it holds, failing the test after a wide margin.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 15s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestAuthenticateRefusesDroppedKeyAfterMaxAge(t *testing.T) {
	iss := testenv.NewIssuer(t, audience, "roles", "support_admin")
	clk := testenv.NewClock(time.Now())
	v := newVerifier(clk, auth.Options{}) // KeysMaxAge: 15m by default
	ten := tenantOf("shop", iss)
	cached := iss.Token(t, "cust-1", false)   // verified once, so kept in the token cache
	uncached := iss.Token(t, "cust-2", false) // first presented after the drop
	if _, err := v.Authenticate(t.Context(), ten, cached); err != nil {
		t.Fatalf("Authenticate(before the drop) error = %v", err)
	}
	leaked := iss.KeyID("RS256")
	if _, err := iss.RotateKey("RS256"); err != nil {
		t.Fatal(err)
	}
	if err := iss.DropKey(leaked); err != nil {
		t.Fatal(err)
	}

	steps := []struct {
		name        string
		advance     time.Duration
		token       string
		wantErr     error
		wantFetches int
	}{
		{"within the max age, a cached token of the dropped key is still accepted", 15*time.Minute - time.Second, cached, nil, 1},
		{"once the max age has passed, the cached token is refused", time.Second, cached, auth.ErrInvalidToken, 2},
		{"a token of the dropped key never seen before is refused too", 0, uncached, auth.ErrInvalidToken, 2},
		{"a token of the new key is accepted", 0, iss.Token(t, "cust-3", false), nil, 2},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			clk.Advance(s.advance)
			_, err := v.Authenticate(t.Context(), ten, s.token)
			if !errors.Is(err, s.wantErr) {
				t.Errorf("Authenticate() error = %v, want %v", err, s.wantErr)
			}
			if got := iss.JWKSFetches(); got != s.wantFetches {
				t.Errorf("JWKS fetches = %d, want %d", got, s.wantFetches)
			}
		})
	}
}

func TestKeysMaxAgeFollowsCacheControl(t *testing.T) {
	tests := []struct {
		name       string
		header     http.Header
		keysMaxAge time.Duration
		want       time.Duration
	}{
		{"no Cache-Control: KeysMaxAge", nil, 0, 15 * time.Minute},
		{"max-age below KeysMaxAge", http.Header{"Cache-Control": {"public, max-age=300"}}, 0, 5 * time.Minute},
		{"max-age less the Age of a cached response", http.Header{"Cache-Control": {"max-age=300"}, "Age": {"120"}}, 0, 3 * time.Minute},
		{"max-age above KeysMaxAge is capped", http.Header{"Cache-Control": {"max-age=86400"}}, 0, 15 * time.Minute},
		{"max-age below a minute is raised to a minute", http.Header{"Cache-Control": {"max-age=5"}}, 0, time.Minute},
		{"no-store counts as a minute", http.Header{"Cache-Control": {"no-store"}}, 0, time.Minute},
		{"a configured KeysMaxAge below a minute wins", http.Header{"Cache-Control": {"no-cache"}}, 20 * time.Second, 20 * time.Second},
		{"a configured KeysMaxAge caps max-age", http.Header{"Cache-Control": {"max-age=600"}}, 2 * time.Minute, 2 * time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFrontIssuer(t)
			f.jwksHeader = tt.header
			clk := testenv.NewClock(time.Now())
			v := newVerifier(clk, auth.Options{KeysMaxAge: tt.keysMaxAge})
			token := f.token(t)

			wantAuthenticate(t, v, f, token, nil)
			clk.Advance(tt.want - time.Second)
			wantAuthenticate(t, v, f, token, nil)
			if got := f.requests("/jwks"); got != 1 {
				t.Fatalf("JWKS fetches a second before the max age = %d, want 1", got)
			}
			clk.Advance(time.Second)
			wantAuthenticate(t, v, f, token, nil)
			if got := f.requests("/jwks"); got != 2 {
				t.Errorf("JWKS fetches at the max age = %d, want 2", got)
			}
		})
	}
}

func TestAuthenticateKeepsKeysForAGraceWhileTheJWKSIsDown(t *testing.T) {
	f := newFrontIssuer(t)
	clk := testenv.NewClock(time.Now())
	obs := &observer{}
	v := newVerifier(clk, auth.Options{Observer: obs, KeysMaxAge: 15 * time.Minute, FailureBackoff: 5 * time.Second})
	token := f.token(t)
	wantAuthenticate(t, v, f, token, nil)

	f.jwksDown.Store(true)
	steps := []struct {
		name       string
		advance    time.Duration
		wantErr    error
		wantFailed int // failed JWKS fetches, counted once the step is done
	}{
		{"the first request past the max age tries a fetch, then uses the old keys", 15 * time.Minute, nil, 1},
		{"within the failure backoff the old keys answer without a fetch", time.Second, nil, 1},
		{"after the backoff the old keys answer at once, a fetch is retried in the background", 5 * time.Second, nil, 2},
		{"a max age past the max age, the old keys are no longer used", 15*time.Minute - 6*time.Second, auth.ErrIssuerUnavailable, 3},
		{"within the backoff the failure answers from memory", time.Second, auth.ErrIssuerUnavailable, 3},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			clk.Advance(s.advance)
			wantAuthenticate(t, v, f, token, s.wantErr)
			eventually(t, "failed fetches", func() bool { return obs.count("shop error") >= s.wantFailed })
			if got := obs.count("shop error"); got != s.wantFailed {
				t.Errorf("failed fetches = %d, want %d", got, s.wantFailed)
			}
		})
	}

	f.jwksDown.Store(false)
	clk.Advance(5 * time.Second)
	wantAuthenticate(t, v, f, token, nil)
}

func TestAuthenticateFollowsAChangedJWKSURI(t *testing.T) {
	f := newFrontIssuer(t)
	moved := testenv.NewIssuer(t, audience, "roles", "support_admin") // the keys at the new jwks_uri
	f.route("/v2/jwks", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(moved.JWKS())
	})
	clk := testenv.NewClock(time.Now())
	v := newVerifier(clk, auth.Options{RediscoverInterval: time.Hour, KeysMaxAge: 15 * time.Minute})
	// Tokens valid for a day, as the clock moves by more than an hour.
	dayLong := func(c map[string]any) {
		c["iss"], c["exp"] = f.server.URL, clk.Now().Add(24*time.Hour).Unix()
	}
	before := f.TokenWith(t, "RS256", dayLong)
	after := moved.TokenWith(t, "RS256", dayLong)
	wantAuthenticate(t, v, f, before, nil)
	f.moveJWKS("/v2/jwks")

	steps := []struct {
		name            string
		advance         time.Duration
		token           string
		wantErr         error
		wantDiscoveries int
	}{
		{"before the rediscovery, a token of a key at the new jwks_uri is refused", 0, after, auth.ErrInvalidToken, 1},
		{"a refresh of the keys before the rediscovery interval keeps the old jwks_uri", 59 * time.Minute, after, auth.ErrInvalidToken, 1},
		{"the first refresh past the interval discovers again and fetches the new jwks_uri", 15 * time.Minute, after, nil, 2},
		{"a token of a key only at the old jwks_uri is refused", 0, before, auth.ErrInvalidToken, 2},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			clk.Advance(s.advance)
			wantAuthenticate(t, v, f, s.token, s.wantErr)
			if got := f.requests("/.well-known/openid-configuration"); got != s.wantDiscoveries {
				t.Errorf("discoveries = %d, want %d", got, s.wantDiscoveries)
			}
		})
	}
}

// unknownKeyToken returns a valid token of iss signed by a key it never published, under a
// random key id.
func unknownKeyToken(t *testing.T, iss *testenv.Issuer, key *ecdsa.PrivateKey) string {
	t.Helper()
	kid := make([]byte, 8)
	_, _ = rand.Read(kid)
	token, err := devissuer.SignJWT("ES256", hex.EncodeToString(kid), key, iss.Claims("cust-1", "", false, time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	return token
}

func TestAuthenticateAcceptsANewKeyRightAfterABurstOfUnknownKeyIDs(t *testing.T) {
	iss := testenv.NewIssuer(t, audience, "roles", "support_admin")
	clk := testenv.NewClock(time.Now())
	v := newVerifier(clk, auth.Options{}) // RefetchInterval: 1s by default
	ten := tenantOf("shop", iss)
	if _, err := v.Authenticate(t.Context(), ten, iss.Token(t, "cust-1", false)); err != nil {
		t.Fatalf("Authenticate(valid) error = %v", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}

	const burst = 200
	tokens := make([]string, burst)
	for i := range tokens {
		tokens[i] = unknownKeyToken(t, iss, key)
	}
	errs := make([]error, burst)
	var wg sync.WaitGroup
	for i, token := range tokens {
		wg.Go(func() { _, errs[i] = v.Authenticate(t.Context(), ten, token) })
	}
	wg.Wait()
	for i, err := range errs {
		if !errors.Is(err, auth.ErrInvalidToken) {
			t.Fatalf("Authenticate(unknown key id #%d) error = %v, want ErrInvalidToken", i, err)
		}
	}
	if got := iss.JWKSFetches(); got > 2 {
		t.Errorf("JWKS fetches after a burst of %d unknown key ids = %d, want at most 2 (first use, one refetch)", burst, got)
	}

	if _, err := iss.RotateKey("RS256"); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Second)
	if _, err := v.Authenticate(t.Context(), ten, iss.Token(t, "cust-2", false)); err != nil {
		t.Fatalf("Authenticate(new key, 1s after the burst) error = %v, want nil", err)
	}
	if got := iss.JWKSFetches(); got > 3 {
		t.Errorf("JWKS fetches = %d, want at most 3", got)
	}
}

func TestAuthenticateRemembersUnknownKeyIDs(t *testing.T) {
	iss := testenv.NewIssuer(t, audience, "roles", "support_admin")
	clk := testenv.NewClock(time.Now())
	v := newVerifier(clk, auth.Options{RefetchInterval: time.Second})
	ten := tenantOf("shop", iss)
	if _, err := v.Authenticate(t.Context(), ten, iss.Token(t, "cust-1", false)); err != nil {
		t.Fatalf("Authenticate(valid) error = %v", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	unknown := unknownKeyToken(t, iss, key)

	steps := []struct {
		name        string
		advance     time.Duration
		wantFetches int
	}{
		{"an unknown key id refetches the keys", 0, 2},
		{"the same key id past the refetch interval does not", 2 * time.Second, 2},
		{"the same key id a minute after the refetch does again", time.Minute, 3},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			clk.Advance(s.advance)
			if _, err := v.Authenticate(t.Context(), ten, unknown); !errors.Is(err, auth.ErrInvalidToken) {
				t.Errorf("Authenticate(unknown key id) error = %v, want ErrInvalidToken", err)
			}
			if got := iss.JWKSFetches(); got != s.wantFetches {
				t.Errorf("JWKS fetches = %d, want %d", got, s.wantFetches)
			}
		})
	}
}
