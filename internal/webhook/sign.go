package webhook

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
	"time"
)

// secretPrefix starts every signing secret, as the Standard Webhooks specification writes them.
const secretPrefix = "whsec_"

// secretBytes is the size of a signing key: 32 random bytes (PRODUCT.md asks for at least 24).
const secretBytes = 32

// NewSecret returns a new signing secret: "whsec_" and the base64 of 32 random bytes.
func NewSecret() string {
	var b [secretBytes]byte
	_, _ = rand.Read(b[:]) // crypto/rand never fails on supported platforms
	return secretPrefix + base64.StdEncoding.EncodeToString(b[:])
}

// secretKey returns the key of a secret: the bytes its base64 part encodes.
func secretKey(secret string) ([]byte, error) {
	raw, ok := strings.CutPrefix(secret, secretPrefix)
	if !ok {
		return nil, errors.New("a signing secret starts with whsec_")
	}
	return base64.StdEncoding.DecodeString(raw)
}

// Sign returns the webhook-signature header of a delivery with id, sent at ts, with body:
// "v1," and the base64 of HMAC-SHA256(key, "<id>.<ts>.<body>") for each secret, separated by
// spaces (the Standard Webhooks specification).
func Sign(secrets []string, id string, ts time.Time, body []byte) (string, error) {
	parts := make([]string, 0, len(secrets))
	for _, s := range secrets {
		key, err := secretKey(s)
		if err != nil {
			return "", err
		}
		mac := hmac.New(sha256.New, key)
		mac.Write([]byte(id + "." + strconv.FormatInt(ts.Unix(), 10) + "."))
		mac.Write(body)
		parts = append(parts, "v1,"+base64.StdEncoding.EncodeToString(mac.Sum(nil)))
	}
	return strings.Join(parts, " "), nil
}

// Verify reports whether signature (a webhook-signature header) holds a signature of the
// delivery by secret: what a receiver does, kept here for the tests and the snippet of docs/WEBHOOKS.md.
func Verify(secret, id, timestamp string, body []byte, signature string) bool {
	ts, err := strconv.ParseInt(timestamp, 10, 64)
	if err != nil {
		return false
	}
	want, err := Sign([]string{secret}, id, time.Unix(ts, 0), body)
	if err != nil {
		return false
	}
	for _, s := range strings.Fields(signature) {
		if hmac.Equal([]byte(s), []byte(want)) {
			return true
		}
	}
	return false
}
