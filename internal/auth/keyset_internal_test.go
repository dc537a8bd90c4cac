package auth

import (
	"fmt"
	"testing"
	"time"

	"github.com/supportchat/supportchat/internal/testenv"
)

func TestUnknownKeyIDsAreBounded(t *testing.T) {
	clk := testenv.NewClock(time.Now())
	ks := newKeySet(New(Options{Now: clk.Now}), issuerKey{tenantID: "shop", issuer: "https://login.example"}, "https://login.example/jwks")

	for i := range 3 * maxUnknownKeys {
		ks.rememberUnknown(fmt.Sprintf("kid-%d", i), "ES256")
		if got := len(ks.unknown); got > maxUnknownKeys {
			t.Fatalf("remembered key ids = %d after %d, want at most %d", got, i+1, maxUnknownKeys)
		}
	}
	if !ks.isUnknown(fmt.Sprintf("kid-%d", 3*maxUnknownKeys-1), "ES256") {
		t.Error("the key id remembered last is not remembered")
	}

	// Full again, half of it remembered for another half TTL: adding one drops the expired half
	// only.
	clear(ks.unknown)
	for i := range maxUnknownKeys / 2 {
		ks.rememberUnknown(fmt.Sprintf("old-%d", i), "ES256")
	}
	clk.Advance(unknownKeyTTL / 2)
	for i := range maxUnknownKeys / 2 {
		ks.rememberUnknown(fmt.Sprintf("new-%d", i), "ES256")
	}
	clk.Advance(unknownKeyTTL / 2)
	if ks.isUnknown("old-0", "ES256") {
		t.Errorf("a key id is remembered after %v, want forgotten", unknownKeyTTL)
	}
	ks.rememberUnknown("fresh", "ES256")
	if got, want := len(ks.unknown), maxUnknownKeys/2+1; got != want {
		t.Errorf("remembered key ids = %d, want %d (the unexpired half and the new one)", got, want)
	}
}
